/*
 * Alerts over the socket: the rules of BEHAVIOUR.md section 6 (escalate, a
 * breaker opening, the error rate per minute; the forwarding pause is in
 * test_forward.c), dedup on the daemon clock, past 4096 keys and at its
 * bound, and the sinks: a webhook against a local HTTP server and an exec
 * program given the alert, killed when it outlives exec_timeout_ms, and
 * run only for an alert that was stored (not on a full disk).
 */

#include <sys/stat.h>
#include <sys/wait.h>

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

#define PY	"/usr/bin/python3"

static struct daemon	d;

static const char *const manual[] = { "--manual-clock", NULL };

static void
stop(void)
{
	if (d.pid > 0)
		ck_assert_int_eq(daemon_stop(&d), 0);
}

static int
subscribe(void)
{
	int	sub = raw_connect(d.sock);

	json_decref(call_on(sub, "{\"id\":1,\"method\":\"events.subscribe\","
	    "\"params\":{\"types\":[\"alert\"]}}"));
	return (sub);
}

/* The next alert event's params (new reference), or NULL within ms. */
static json_t *
next_alert(int sub, int ms)
{
	json_t	*ev = raw_recv(sub, ms), *p;

	if (ev == NULL)
		return (NULL);
	p = json_incref(json_object_get(ev, "params"));
	json_decref(ev);
	return (p);
}

static const char *
s_of(json_t *o, const char *k)
{
	return (json_string_value(json_object_get(o, k)));
}

/* The value of the series named (with its labels) by series; -1: none. */
static int
metric_of(int fd, const char *series)
{
	json_t		*r;
	const char	*t, *p;
	char		 line[256];
	int		 n = -1;

	snprintf(line, sizeof(line), "\n%s ", series);
	r = call_on(fd, "{\"id\":1,\"method\":\"metrics.prometheus\"}");
	t = json_string_value(json_object_get(result(r), "text"));
	if ((p = strstr(t, line)) != NULL)
		n = atoi(p + strlen(line));
	json_decref(r);
	return (n);
}

static void
escalate_once(int fd, const char *operation)
{
	char	 op[64];
	json_t	*r;

	r = call_on(fd, "{\"id\":1,\"method\":\"op.begin\",\"params\":"
	    "{\"operation\":\"%s\"}}", operation);
	snprintf(op, sizeof(op), "%s", s_of(result(r), "op"));
	json_decref(r);
	r = call_on(fd, "{\"id\":2,\"method\":\"op.fail\",\"params\":"
	    "{\"op\":\"%s\",\"error\":{\"http_status\":401}}}", op);
	ck_assert_str_eq(s_of(result(r), "decision"), "escalate");
	json_decref(r);
}

START_TEST(escalate_and_dedup)
{
	json_t	*a, *r;
	int	 fd, sub;

	daemon_start(&d, NULL, manual);
	sub = subscribe();
	fd = raw_connect(d.sock);
	escalate_once(fd, "login");
	ck_assert_ptr_nonnull(a = next_alert(sub, 5000));
	ck_assert_str_eq(s_of(a, "kind"), "escalate");
	ck_assert_str_eq(s_of(a, "key"), "escalate:login");
	ck_assert_str_eq(s_of(a, "severity"), "critical");
	ck_assert_str_eq(s_of(json_object_get(a, "details"), "category"),
	    "AUTHENTICATION_ERROR");
	ck_assert_int_eq(strlen(s_of(a, "id")), 36);
	json_decref(a);
	/* Same key within dedup_ms: not raised; another key is. */
	escalate_once(fd, "login");
	ck_assert_ptr_null(next_alert(sub, 300));
	escalate_once(fd, "sync");
	ck_assert_ptr_nonnull(a = next_alert(sub, 5000));
	ck_assert_str_eq(s_of(a, "key"), "escalate:sync");
	json_decref(a);
	/* After dedup_ms (300000 by default): raised again. */
	advance_on(fd, 300000);
	escalate_once(fd, "login");
	ck_assert_ptr_nonnull(a = next_alert(sub, 5000));
	ck_assert_str_eq(s_of(a, "key"), "escalate:login");
	json_decref(a);
	r = call_on(fd, "{\"id\":1,\"method\":\"metrics.prometheus\"}");
	ck_assert_ptr_nonnull(strstr(s_of(result(r), "text"),
	    "ermd_alerts_total{kind=\"escalate\"} 3\n"));
	ck_assert_ptr_nonnull(strstr(s_of(result(r), "text"),
	    "ermd_alerts_suppressed_total 1\n"));
	json_decref(r);
	close(fd);
	close(sub);
}
END_TEST

/* Alerts are kept as long as errors: [errors] max_age_ms prunes both. */
START_TEST(alerts_pruned_with_errors)
{
	int	 fd;

	daemon_start(&d, "[errors]\nmax_age_ms = 60000\n"
	    "prune_interval_ms = 1000\n", manual);
	fd = raw_connect(d.sock);
	escalate_once(fd, "login");
	escalate_once(fd, "sync");
	/* An error.report's reply follows the commit of what came before. */
	json_decref(call_on(fd, "{\"id\":1,\"method\":\"error.report\","
	    "\"params\":{\"operation\":\"x\",\"errno\":5}}"));
	ck_assert_int_eq(db_int(&d, "SELECT count(*) FROM alerts"), 2);
	advance_on(fd, 30000);
	escalate_once(fd, "later");
	advance_on(fd, 31000);
	/* One prune runs at a time: let the next tick run after it. */
	json_decref(call_on(fd, "{\"id\":1,\"method\":\"error.report\","
	    "\"params\":{\"operation\":\"x\",\"errno\":5}}"));
	advance_on(fd, 1000);
	json_decref(call_on(fd, "{\"id\":1,\"method\":\"error.report\","
	    "\"params\":{\"operation\":\"x\",\"errno\":5}}"));
	ck_assert_int_eq(db_int(&d, "SELECT count(*) FROM alerts"), 1);
	ck_assert_int_eq(db_int(&d, "SELECT count(*) FROM alerts WHERE "
	    "key = 'escalate:later'"), 1);
	close(fd);
}
END_TEST

START_TEST(breaker_opened)
{
	json_t	*a;
	int	 fd, sub, i;

	daemon_start(&d, NULL, manual);
	sub = subscribe();
	fd = raw_connect(d.sock);
	for (i = 0; i < 5; i++)
		json_decref(call_on(fd, "{\"id\":1,\"method\":"
		    "\"breaker.record\",\"params\":{\"name\":\"s3\","
		    "\"outcome\":\"failure\",\"error\":{\"errno\":"
		    "\"ECONNRESET\"}}}"));
	ck_assert_ptr_nonnull(a = next_alert(sub, 5000));
	ck_assert_str_eq(s_of(a, "kind"), "breaker_open");
	ck_assert_str_eq(s_of(a, "key"), "breaker_open:s3");
	ck_assert_str_eq(s_of(json_object_get(a, "details"), "breaker"), "s3");
	json_decref(a);
	close(fd);
	close(sub);
}
END_TEST

static void
breaker_fails(int fd, const char *name)
{
	json_decref(call_on(fd, "{\"id\":1,\"method\":\"breaker.record\","
	    "\"params\":{\"name\":\"%s\",\"outcome\":\"failure\","
	    "\"error\":{\"errno\":5}}}", name));
}

/*
 * Dedup holds past 4096 keys (the old bound, where a new key was raised
 * each time without being remembered): 4200 breakers open, then the last
 * one opens twice more within dedup_ms and is raised once.
 */
START_TEST(dedup_past_4096_keys)
{
	char	name[16];
	int	fd, i;

	daemon_start(&d, "[breaker]\nfailure_threshold = 1\n", manual);
	fd = raw_connect(d.sock);
	for (i = 0; i < 4200; i++) {
		snprintf(name, sizeof(name), "b%04d", i);
		breaker_fails(fd, name);
	}
	ck_assert_int_eq(metric_of(fd, "ermd_alerts_total{kind="
	    "\"breaker_open\"}"), 4200);
	for (i = 0; i < 2; i++) {
		advance_on(fd, 60000);
		json_decref(call_on(fd, "{\"id\":1,\"method\":"
		    "\"breaker.force\",\"params\":{\"name\":\"b4199\","
		    "\"state\":\"closed\"}}"));
		breaker_fails(fd, "b4199");
	}
	ck_assert_int_eq(metric_of(fd, "ermd_alerts_total{kind="
	    "\"breaker_open\"}"), 4200);
	ck_assert_int_eq(metric_of(fd, "ermd_alerts_suppressed_total"), 2);
	close(fd);
}
END_TEST

/*
 * At its bound (2 x max_breakers + 4096 keys: 4098 here) dedup forgets
 * the key raised longest ago and remembers the new one: of 4099
 * escalations, the last and the second stay deduplicated, the first
 * is raised again.
 */
START_TEST(dedup_forgets_the_oldest_at_its_bound)
{
	char	op[16];
	int	fd, i;

	daemon_start(&d, "[daemon]\nmax_breakers = 1\n", manual);
	fd = raw_connect(d.sock);
	for (i = 0; i < 4099; i++) {
		snprintf(op, sizeof(op), "o%04d", i);
		escalate_once(fd, op);
	}
	ck_assert_int_eq(metric_of(fd, "ermd_alerts_total{kind="
	    "\"escalate\"}"), 4099);
	advance_on(fd, 1000);
	escalate_once(fd, "o4098");
	escalate_once(fd, "o0001");
	ck_assert_int_eq(metric_of(fd, "ermd_alerts_suppressed_total"), 2);
	escalate_once(fd, "o0000");
	ck_assert_int_eq(metric_of(fd, "ermd_alerts_total{kind="
	    "\"escalate\"}"), 4100);
	ck_assert_int_eq(metric_of(fd, "ermd_alerts_suppressed_total"), 2);
	ck_assert(daemon_log_has(&d, "dedup holds 4098 keys, its bound", 0));
	close(fd);
}
END_TEST

START_TEST(error_rate_per_minute)
{
	json_t	*a;
	int	 fd, sub, i;

	daemon_start(&d, "[alerts]\nerror_rate_per_min = 5\n", manual);
	sub = subscribe();
	fd = raw_connect(d.sock);
	for (i = 0; i < 5; i++)
		json_decref(call_on(fd, "{\"id\":1,\"method\":\"error.report\","
		    "\"params\":{\"operation\":\"x\",\"errno\":5}}"));
	ck_assert_ptr_null(next_alert(sub, 200));
	/* The sixth in the same minute passes the limit; more are deduped. */
	for (i = 0; i < 5; i++)
		json_decref(call_on(fd, "{\"id\":1,\"method\":\"error.report\","
		    "\"params\":{\"operation\":\"x\",\"errno\":5}}"));
	ck_assert_ptr_nonnull(a = next_alert(sub, 5000));
	ck_assert_str_eq(s_of(a, "kind"), "error_rate");
	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(a,
	    "details"), "errors")), 6);
	json_decref(a);
	ck_assert_ptr_null(next_alert(sub, 200));
	/* A minute later the window is empty again. */
	advance_on(fd, 301000);
	json_decref(call_on(fd, "{\"id\":1,\"method\":\"error.report\","
	    "\"params\":{\"operation\":\"x\",\"errno\":5}}"));
	ck_assert_ptr_null(next_alert(sub, 200));
	close(fd);
	close(sub);
}
END_TEST

/* A local HTTP server that appends each POST body, one per line. */
/* Answers the first POST 503, the others 204; logs "STATUS type body". */
static const char webhook_py[] =
"import http.server, sys\n"
"out = sys.argv[1]\n"
"seen = [0]\n"
"class H(http.server.BaseHTTPRequestHandler):\n"
"    def do_POST(self):\n"
"        n = int(self.headers.get('Content-Length', 0))\n"
"        b = self.rfile.read(n)\n"
"        seen[0] += 1\n"
"        st = 503 if seen[0] == 1 else 204\n"
"        with open(out, 'ab') as f:\n"
"            f.write(str(st).encode() + b' ' +"
" self.headers.get('Content-Type', '').encode() + b' ' + b + b'\\n')\n"
"        self.send_response(st)\n"
"        self.send_header('Content-Length', '0')\n"
"        self.end_headers()\n"
"    def log_message(self, *a):\n"
"        pass\n"
"s = http.server.HTTPServer(('127.0.0.1', 0), H)\n"
"print('PORT', s.server_address[1], flush=True)\n"
"s.serve_forever()\n";

/* ermd_alert_sink_failures_total{sink="any"}. */
static int
sink_failures(int fd)
{
	return (metric_of(fd, "ermd_alert_sink_failures_total{sink=\"any\"}"));
}

START_TEST(webhook_sink)
{
	char	 out[256], conf[512], line[64];
	int	 p[2], fd, port = 0, i;
	pid_t	 pid;

	daemon_prepare(&d);
	snprintf(out, sizeof(out), "%s/webhook.out", d.dir);
	ck_assert_int_eq(pipe(p), 0);
	if ((pid = fork()) == 0) {
		dup2(p[1], 1);
		close(p[0]);
		execl(PY, PY, "-c", webhook_py, out, (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	for (i = 0; i < (int)sizeof(line) - 1; i++)
		if (read(p[0], line + i, 1) != 1 || line[i] == '\n')
			break;
	line[i] = '\0';
	close(p[0]);
	ck_assert_int_eq(sscanf(line, "PORT %d", &port), 1);
	snprintf(conf, sizeof(conf), "[alerts]\nwebhook_url = "
	    "http://127.0.0.1:%d/hook\n", port);
	daemon_start_env(&d, conf, manual, NULL, -1);
	fd = raw_connect(d.sock);
	escalate_once(fd, "billing");
	/* Refused with 503 first: sent again 1 s later (daemon clock). */
	ck_assert_msg(file_has(out, "503 application/json {", 5000),
	    "the webhook got no alert");
	ck_assert(!file_has(out, "204 ", 300));
	advance_on(fd, 1000);
	ck_assert_msg(file_has(out, "204 application/json {", 5000),
	    "the webhook was not tried again");
	ck_assert(file_has(out, "\"key\":\"escalate:billing\"", 0));
	ck_assert(file_has(out, "\"kind\":\"escalate\"", 0));
	ck_assert_int_eq(sink_failures(fd), 0);
	/*
	 * With the receiver gone, three attempts (now, +1 s, +5 s), then
	 * one failed delivery.
	 */
	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
	escalate_once(fd, "payroll");
	for (i = 0; i < 100 && sink_failures(fd) == 0; i++) {
		advance_on(fd, 1000);
		usleep(20000);
	}
	ck_assert_int_eq(sink_failures(fd), 1);
	ck_assert_int_ge(i, 6);			/* not before +6 s */
	close(fd);
}
END_TEST

START_TEST(exec_sink_and_timeout)
{
	char	 script[256], out[256], conf[1024], text[8192];
	json_t	*r;
	FILE	*fp;
	int	 fd, i;

	daemon_prepare(&d);
	snprintf(script, sizeof(script), "%s/sink.sh", d.dir);
	/* A blank in an argument: quoted in the exec line. */
	snprintf(out, sizeof(out), "%s/sink out", d.dir);
	ck_assert_ptr_nonnull(fp = fopen(script, "w"));
	/* Sleeps for the breaker alert: the timeout must kill it. */
	fprintf(fp, "#!/bin/sh\nout=$1\ncase \"$ERMD_ALERT_KIND\" in\n"
	    "breaker_open) exec sleep 60;;\nesac\n"
	    "{ echo \"kind=$ERMD_ALERT_KIND key=$ERMD_ALERT_KEY "
	    "sev=$ERMD_ALERT_SEVERITY home=${HOME:-unset}\"; cat; echo; } "
	    ">> \"$out\"\n");
	fclose(fp);
	ck_assert_int_eq(chmod(script, 0755), 0);
	snprintf(conf, sizeof(conf), "[alerts]\nexec = %s \"%s\"\n"
	    "exec_timeout_ms = 300\n", script, out);
	daemon_start_env(&d, conf, manual, NULL, -1);
	fd = raw_connect(d.sock);
	escalate_once(fd, "deploy");
	ck_assert_msg(file_has(out, "kind=escalate key=escalate:deploy "
	    "sev=critical home=unset", 5000), "the exec sink did not run");
	ck_assert(file_has(out, "\"message\":\"deploy escalated", 1000));
	for (i = 0; i < 5; i++)
		json_decref(call_on(fd, "{\"id\":1,\"method\":"
		    "\"breaker.record\",\"params\":{\"name\":\"b\","
		    "\"outcome\":\"failure\",\"error\":{\"errno\":5}}}"));
	/* Killed after 300 ms and counted as a failed delivery. */
	for (i = 0; i < 100; i++) {
		r = call_on(fd, "{\"id\":1,\"method\":\"metrics.prometheus\"}");
		snprintf(text, sizeof(text), "%s", strstr(s_of(result(r),
		    "text"), "ermd_alert_sink_failures_total") ?
		    strstr(s_of(result(r), "text"),
		    "ermd_alert_sink_failures_total") : "");
		json_decref(r);
		if (strstr(text, "ermd_alert_sink_failures_total{sink=\"any\"} "
		    "1\n") != NULL)
			break;
		usleep(50000);
	}
	ck_assert_int_lt(i, 100);
	close(fd);
	assert_serves(&d);
	/* An exec line that does not parse is a config error. */
	{
		char		 path[300], got[1024], want[1024];
		const char	*argv[] = { ermd_path(), "-t", "-c", path, NULL };

		snprintf(path, sizeof(path), "%s/bad.conf", d.dir);
		ck_assert_ptr_nonnull(fp = fopen(path, "w"));
		fputs("[alerts]\nexec = /bin/echo 'unclosed\n", fp);
		fclose(fp);
		ck_assert_int_eq(run_prog(got, sizeof(got), argv), 78);
		snprintf(want, sizeof(want), "%s:2: exec: no closing '\n",
		    path);
		ck_assert_str_eq(got, want);
	}
}
END_TEST

/*
 * An alert goes out only once it is stored: with the state directory on a
 * full 2 MiB tmpfs, a breaker alert whose row cannot be stored is logged
 * and never reaches the exec sink; once space returns, the next one is
 * stored and does.
 */
START_TEST(alert_not_sent_unless_stored)
{
	char	 script[256], out[256], conf[1024], name[16], needle[128];
	char	 sql[200];
	json_t	*r;
	FILE	*fp;
	int	 fd, i, code, failed = -1;

	daemon_prepare(&d);
	ck_assert_int_eq(mkdir(d.state, 0700), 0);
	if (mount_small_tmpfs(d.state, "2m") == -1)
		return;
	snprintf(script, sizeof(script), "%s/sink.sh", d.dir);
	snprintf(out, sizeof(out), "%s/sink.out", d.dir);
	ck_assert_ptr_nonnull(fp = fopen(script, "w"));
	fprintf(fp, "#!/bin/sh\necho \"key=$ERMD_ALERT_KEY\" >> \"$1\"\n");
	fclose(fp);
	ck_assert_int_eq(chmod(script, 0755), 0);
	snprintf(conf, sizeof(conf), "[alerts]\nexec = %s %s\n"
	    "[breaker]\nfailure_threshold = 1\n", script, out);
	daemon_start_env(&d, conf, manual, NULL, -1);
	fd = raw_connect(d.sock);
	fill_up(d.state);
	/* The WAL may still have room for a few alerts. */
	for (i = 0; i < 500 && failed == -1; i++) {
		snprintf(name, sizeof(name), "f%03d", i);
		r = call_on(fd, "{\"id\":1,\"method\":\"breaker.record\","
		    "\"params\":{\"name\":\"%s\",\"outcome\":\"failure\","
		    "\"error\":{\"errno\":5}}}", name);
		code = reply_code(r);
		json_decref(r);
		snprintf(needle, sizeof(needle), "alert breaker_open:%s: "
		    "cannot store it", name);
		if (daemon_log_has(&d, needle, code != 0 ? 2000 : 0))
			failed = i;
	}
	ck_assert_msg(failed != -1, "no alert failed to store on a full disk");
	snprintf(needle, sizeof(needle), "key=breaker_open:f%03d\n", failed);
	ck_assert_msg(!file_has(out, needle, 1000), "an alert that was not "
	    "stored reached the exec sink");
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM alerts WHERE key = "
	    "'breaker_open:f%03d'", failed);
	ck_assert_int_eq(db_int(&d, sql), 0);

	/* Space returns: the next alert is stored, then run. */
	snprintf(sql, sizeof(sql), "%s/filler", d.state);
	ck_assert_int_eq(unlink(sql), 0);
	breaker_fails(fd, "after");
	ck_assert_msg(file_has(out, "key=breaker_open:after\n", 5000),
	    "the alert stored after space returned did not reach the sink");
	ck_assert_int_eq(db_int(&d, "SELECT count(*) FROM alerts WHERE key = "
	    "'breaker_open:after'"), 1);
	close(fd);
	assert_serves(&d);
	daemon_stop_unmount(&d);
}
END_TEST

int
main(void)
{
	Suite	*s = suite_create("alerts");
	TCase	*tc = tcase_create("alerts");
	SRunner	*sr;
	int	 failed;

	tcase_set_timeout(tc, 60);
	tcase_add_checked_fixture(tc, NULL, stop);
	tcase_add_test(tc, escalate_and_dedup);
	tcase_add_test(tc, alerts_pruned_with_errors);
	tcase_add_test(tc, breaker_opened);
	tcase_add_test(tc, dedup_past_4096_keys);
	tcase_add_test(tc, dedup_forgets_the_oldest_at_its_bound);
	tcase_add_test(tc, error_rate_per_minute);
	tcase_add_test(tc, webhook_sink);
	tcase_add_test(tc, exec_sink_and_timeout);
	tcase_add_test(tc, alert_not_sent_unless_stored);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return (failed ? 1 : 0);
}
