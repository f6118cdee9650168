/*
 * The Supabase forwarder against a real PostgreSQL 15 and the
 * PostgREST-conformant endpoint of tests/supabase (with
 * docs/supabase/schema.sql applied as users apply it). Every scenario of
 * SUPABASE-TESTING.md "What the forwarder tests must show" ends with an
 * exact count by id in the real table: normal flow, endpoint down then up,
 * 503/429 with Retry-After, a reset mid-request, a hang, kill -9 with rows
 * in the outbox, a 413 that forces a split, a 57014 that halves, a poison
 * row dead-lettered while the rest land, a wrong key (paused, alerted,
 * nothing lost, resumed by config.reload); and the key file's checks and
 * the outbox bound. Beyond those, the rest of section 6's contract: every
 * pausing answer (403, 404 PGRST205, 400 PGRST204, made for real in the
 * schema; a 401/403 page over 64 KiB), the 5-min retry of a paused lane,
 * every retried status, Retry-After as an HTTP date and its 24 h cap, and
 * batches split on batch_max_bytes to the byte.
 *
 * ermd runs with --manual-clock: backoffs and Retry-After are on the
 * daemon clock, so a test moves time to make a retry due and can show that
 * nothing is sent before it is. HTTP itself runs in real time.
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
#include <time.h>
#include <unistd.h>

#include "harness.h"

#define KEY		"sb_secret_test"
#define PY		"/usr/bin/python3"

static struct daemon	d;
static char		pgdir[256], pghost[256], pgport[16], pgdb[64];
static pid_t		ep_pid;
static int		ep_port;

static const char *const manual[] = { "--manual-clock", NULL };

/* ---- the endpoint -------------------------------------------------------- */

/*
 * Start postgrest.py on port (0: any); returns its pid and *got the port,
 * or -1. (No ck_assert here: main calls it outside any test.)
 */
static pid_t
ep_start(int port, int *got)
{
	char	 pbuf[16], line[64];
	int	 p[2], i;
	pid_t	 pid;

	snprintf(pbuf, sizeof(pbuf), "%d", port);
	if (pipe(p) == -1)
		return (-1);
	if ((pid = fork()) == 0) {
		dup2(p[1], 1);
		close(p[0]);
		close(p[1]);
		execl(PY, PY, "tests/supabase/postgrest.py", "--port", pbuf,
		    "--pghost", pghost, "--pgport", pgport, "--dbname", pgdb,
		    "--secret-key", KEY, "--anon-key", "sb_publishable_test",
		    "--die-with-parent", (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	/* The first line is "PORT <n>". */
	for (i = 0; i < (int)sizeof(line) - 1; i++)
		if (read(p[0], line + i, 1) != 1 || line[i] == '\n')
			break;
	line[i] = '\0';
	close(p[0]);
	if (sscanf(line, "PORT %d", got) != 1) {
		fprintf(stderr, "postgrest.py did not start: '%s'\n", line);
		return (-1);
	}
	return (pid);
}

static void
ep_stop(pid_t pid)
{
	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
}

/* An admin call (/_test/...) with curl; returns the JSON reply. */
static json_t *
admin_at(int port, const char *method, const char *path, const char *body)
{
	char		 url[256], out[1 << 20];
	const char	*argv[12];
	json_error_t	 e;
	json_t		*j;
	int		 n = 0;

	snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
	argv[n++] = "/usr/bin/curl";
	argv[n++] = "-s";
	argv[n++] = "-X";
	argv[n++] = method;
	if (body != NULL) {
		argv[n++] = "-H";
		argv[n++] = "Content-Type: application/json";
		argv[n++] = "--data-binary";
		argv[n++] = body;
	}
	argv[n++] = url;
	argv[n] = NULL;
	ck_assert_int_eq(run_prog(out, sizeof(out), argv), 0);
	j = json_loads(out, JSON_DECODE_ANY, &e);
	ck_assert_msg(j != NULL, "%s %s: not JSON: %.200s", method, path, out);
	return (j);
}

static json_t *
admin(const char *method, const char *path, const char *body)
{
	return (admin_at(ep_port, method, path, body));
}

static void
fault(const char *rule)
{
	json_decref(admin("POST", "/_test/faults", rule));
}

/* Requests the endpoint has recorded for table. */
static json_t *
requests(const char *table)
{
	char	path[128];
	json_t	*r, *a;

	snprintf(path, sizeof(path), "/_test/requests?table=%s", table);
	r = admin("GET", path, NULL);
	a = json_incref(json_object_get(r, "requests"));
	json_decref(r);
	return (a);
}

static size_t
nrequests(const char *table)
{
	json_t	*a = requests(table);
	size_t	 n = json_array_size(a);

	json_decref(a);
	return (n);
}

/*
 * Every id in ids must be in table exactly once (counts by id), and the
 * table must hold exactly expect rows in all (unless expect is -1).
 */
static void
assert_landed_once(const char *table, json_t *ids, int expect)
{
	json_t		*body, *r, *counts, *v;
	char		*text;
	const char	*id;
	size_t		 i;

	body = json_pack("{s:s, s:O}", "table", table, "ids", ids);
	text = json_dumps(body, JSON_COMPACT);
	r = admin("POST", "/_test/count", text);
	free(text);
	json_decref(body);
	counts = json_object_get(r, "counts");
	json_array_foreach(ids, i, v) {
		id = json_string_value(v);
		ck_assert_msg(json_integer_value(json_object_get(counts, id)) ==
		    1, "%s: id %s is there %lld times", table, id,
		    (long long)json_integer_value(json_object_get(counts,
		    id)));
	}
	if (expect >= 0)
		ck_assert_int_eq(json_integer_value(json_object_get(r,
		    "count")), expect);
	json_decref(r);
}

/* ---- ermd ---------------------------------------------------------------- */

static void	sql(const char *);

/*
 * The schema changes the pause tests make (a table or column renamed,
 * INSERT revoked) are undone here too, so that a test that failed half
 * way leaves nothing behind for the next one.
 */
static void
setup(void)
{
	sql("DO $$ BEGIN "
	    "IF to_regclass('public.erm_errors_moved') IS NOT NULL THEN "
	    "ALTER TABLE public.erm_errors_moved RENAME TO erm_errors; END IF; "
	    "IF EXISTS (SELECT 1 FROM information_schema.columns WHERE "
	    "table_schema = 'public' AND table_name = 'erm_errors' AND "
	    "column_name = 'matched_moved') THEN ALTER TABLE public.erm_errors "
	    "RENAME COLUMN matched_moved TO matched; END IF; END $$; "
	    "GRANT INSERT ON public.erm_errors TO service_role");
	json_decref(admin("POST", "/_test/reset", "{\"truncate\":true}"));
}

static void
stop(void)
{
	if (d.pid > 0)
		ck_assert_int_eq(daemon_stop(&d), 0);
}

static void
write_key(const char *key, mode_t mode)
{
	char	path[256];
	int	fd;

	snprintf(path, sizeof(path), "%s/key", d.dir);
	unlink(path);
	ck_assert_int_ne(fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode),
	    -1);
	ck_assert_int_eq(write(fd, key, strlen(key)), (ssize_t)strlen(key));
	ck_assert_int_eq(write(fd, "\n", 1), 1);
	close(fd);
	ck_assert_int_eq(chmod(path, mode), 0);
}

/* The config forwarding to port, with extra [supabase] lines. */
static void
fwd_conf(char *conf, size_t sz, int port, const char *extra)
{
	ck_assert_int_lt(snprintf(conf, sz, "[supabase]\nurl = "
	    "http://127.0.0.1:%d\nkey_file = %s/key\nflush_interval_ms = 0\n"
	    "timeout_ms = 2000\n%s", port, d.dir, extra ? extra : ""),
	    (int)sz);
}

/* Start ermd forwarding to port, with extra [supabase] lines. */
static void
start_fwd(int port, const char *key, const char *extra)
{
	char	conf[2048];

	daemon_prepare(&d);
	write_key(key, 0600);
	fwd_conf(conf, sizeof(conf), port, extra);
	daemon_start_env(&d, conf, manual, NULL, -1);
}

/* Rewrite the config with other extra lines and config.reload it. */
static void
reload_fwd(int fd, const char *extra)
{
	char	 conf[2048];
	json_t	*r;

	fwd_conf(conf, sizeof(conf), ep_port, extra);
	daemon_write_conf(&d, conf);
	r = call_on(fd, "{\"id\":1,\"method\":\"config.reload\"}");
	result(r);
	json_decref(r);
}

static json_t *
fwd_status(int fd)
{
	json_t	*r = call_on(fd, "{\"id\":1,\"method\":\"status\"}");
	json_t	*f = json_incref(json_object_get(result(r), "forward"));

	ck_assert_ptr_nonnull(f);
	json_object_set_new(f, "outbox_backlog", json_incref(json_object_get(
	    result(r), "outbox_backlog")));
	json_decref(r);
	return (f);
}

static json_int_t
fwd_num(int fd, const char *key)
{
	json_t		*f = fwd_status(fd);
	json_int_t	 v = json_integer_value(json_object_get(f, key));

	json_decref(f);
	return (v);
}

/* Wait (real time) until nothing is waiting to be forwarded. */
static void
wait_drained(int fd)
{
	int	i;

	for (i = 0; i < 400; i++) {
		if (fwd_num(fd, "outbox_backlog") == 0)
			return;
		usleep(25000);
	}
	daemon_dump_log(&d);
	ck_abort_msg("the outbox did not drain");
}

/* Wait until the endpoint has recorded at least n requests for table. */
static void
wait_requests(const char *table, size_t n)
{
	int	i;

	for (i = 0; i < 400; i++) {
		if (nrequests(table) >= n)
			return;
		usleep(25000);
	}
	daemon_dump_log(&d);
	ck_abort_msg("fewer than %zu requests came", n);
}

/* Report n errors; their ids are appended to ids. */
static void
report_n(int fd, int n, json_t *ids, const char *extra)
{
	json_t	*r;
	int	 i;

	for (i = 0; i < n; i++) {
		r = call_on(fd, "{\"id\":1,\"method\":\"error.report\","
		    "\"params\":{\"operation\":\"fwd\",\"errno\":\"EIO\","
		    "\"message\":\"row %d\"%s}}", i, extra ? extra : "");
		json_array_append(ids, json_object_get(result(r), "id"));
		json_decref(r);
	}
}

/* Run SQL as the superuser (/_test/sql). */
static void
sql(const char *stmt)
{
	json_t	*body = json_pack("{s:s}", "sql", stmt), *r;
	char	*text = json_dumps(body, JSON_COMPACT);

	r = admin("POST", "/_test/sql", text);
	ck_assert_msg(json_object_get(r, "rows") != NULL, "%s: %s", stmt,
	    json_string_value(json_object_get(r, "error")));
	json_decref(r);
	free(text);
	json_decref(body);
}

/* Wait (real time) until the forward status member key is at least n. */
static void
wait_fwd(int fd, const char *key, json_int_t n)
{
	int	i;

	for (i = 0; i < 400; i++) {
		if (fwd_num(fd, key) >= n)
			return;
		usleep(25000);
	}
	daemon_dump_log(&d);
	ck_abort_msg("forward %s did not reach %lld", key, (long long)n);
}

/* Wait (real time) until the backlog of lane kind is n. */
static void
wait_backlog(int fd, const char *kind, json_int_t n)
{
	json_t	*f;
	int	 i, ok;

	for (i = 0; i < 400; i++) {
		f = fwd_status(fd);
		ok = json_integer_value(json_object_get(json_object_get(f,
		    "backlog"), kind)) == n;
		json_decref(f);
		if (ok)
			return;
		usleep(25000);
	}
	daemon_dump_log(&d);
	ck_abort_msg("the %s backlog did not reach %lld", kind, (long long)n);
}

/* The params of the next alert event of that kind on sub (new ref). */
static json_t *
next_alert(int sub, const char *kind)
{
	json_t	*ev, *p;
	int	 i;

	for (i = 0; i < 10; i++) {
		if ((ev = raw_recv(sub, 10000)) == NULL)
			break;
		p = json_object_get(ev, "params");
		if (strcmp(json_string_value(json_object_get(p, "kind")),
		    kind) == 0) {
			json_incref(p);
			json_decref(ev);
			return (p);
		}
		json_decref(ev);
	}
	daemon_dump_log(&d);
	ck_abort_msg("no %s alert came", kind);
	return (NULL);
}

static int
subscribe_alerts(void)
{
	int	sub = raw_connect(d.sock);

	json_decref(call_on(sub, "{\"id\":1,\"method\":\"events.subscribe\","
	    "\"params\":{\"types\":[\"alert\"]}}"));
	return (sub);
}

/* The value of one Prometheus series ("name{labels}"), or -1. */
static long long
metric_of(int fd, const char *series)
{
	json_t		*r;
	const char	*t, *p;
	char		 line[256];
	long long	 n = -1;

	snprintf(line, sizeof(line), "\n%s ", series);
	r = call_on(fd, "{\"id\":1,\"method\":\"metrics.prometheus\"}");
	t = json_string_value(json_object_get(result(r), "text"));
	if ((p = strstr(t, line)) != NULL)
		n = atoll(p + strlen(line));
	json_decref(r);
	return (n);
}

/* Member key of request i of reqs, as an integer (-1 when null). */
static json_int_t
req_int(json_t *reqs, size_t i, const char *key)
{
	json_t	*v = json_object_get(json_array_get(reqs, i), key);

	return (json_is_integer(v) ? json_integer_value(v) : -1);
}

static const char *
req_str(json_t *reqs, size_t i, const char *key)
{
	const char	*s = json_string_value(json_object_get(json_array_get(
	    reqs, i), key));

	return (s != NULL ? s : "(null)");
}

/* The daemon clock (ms since the epoch), from ping. */
static int64_t
daemon_now(int fd)
{
	json_t	*r = call_on(fd, "{\"id\":1,\"method\":\"ping\"}");
	int64_t	 now;

	now = json_integer_value(json_object_get(result(r), "now"));

	json_decref(r);
	return (now);
}

/*
 * The lane of erm_errors is paused for reason: so says status, with
 * failures failed requests and backlog rows kept.
 */
static void
assert_paused(int fd, const char *reason, int failures, int backlog)
{
	json_t	*f = fwd_status(fd), *p = json_object_get(f, "paused");
	char	 last[256];

	ck_assert_uint_eq(json_array_size(p), 1);
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(p,
	    0), "table")), "erm_errors");
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(p,
	    0), "reason")), reason);
	snprintf(last, sizeof(last), "erm_errors: %s", reason);
	ck_assert_str_eq(json_string_value(json_object_get(f, "last_error")),
	    last);
	ck_assert_int_eq(json_integer_value(json_object_get(f, "failures")),
	    failures);
	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(f,
	    "backlog"), "errors")), backlog);
	ck_assert_int_eq(json_integer_value(json_object_get(f,
	    "dead_letters")), 0);
	json_decref(f);
}

/*
 * Move the daemon clock ms - 1 ahead: a moment later the endpoint has still
 * seen n requests to erm_errors. The caller moves the last millisecond.
 */
static void
nothing_sent_before(int fd, int64_t ms, size_t n)
{
	advance_on(fd, ms - 1);
	usleep(300000);
	ck_assert_uint_eq(nrequests("erm_errors"), n);
}

/* ---- scenarios ----------------------------------------------------------- */

START_TEST(normal_flow)
{
	json_t		*ids = json_array(), *reqs, *h, *r, *rec = json_array();
	char		 op[64], logbuf[1 << 16];
	int		 fd, logfd;
	ssize_t		 n;

	start_fwd(ep_port, KEY, NULL);
	fd = raw_connect(d.sock);
	report_n(fd, 30, ids, ",\"context\":{\"k\":[1,2]},\"path\":\"/p\"");
	/* A finished op goes to erm_recoveries. */
	r = call_on(fd, "{\"id\":1,\"method\":\"op.begin\",\"params\":"
	    "{\"operation\":\"upload\"}}");
	snprintf(op, sizeof(op), "%s", json_string_value(json_object_get(
	    result(r), "op")));
	json_decref(r);
	json_decref(call_on(fd, "{\"id\":1,\"method\":\"op.succeed\","
	    "\"params\":{\"op\":\"%s\"}}", op));
	json_array_append_new(rec, json_string(op));
	wait_drained(fd);
	assert_landed_once("erm_errors", ids, 30);
	assert_landed_once("erm_recoveries", rec, 1);

	/* Exactly the request shape of BEHAVIOUR.md section 6. */
	reqs = requests("erm_errors");
	h = json_object_get(json_array_get(reqs, 0), "headers");
	ck_assert_str_eq(json_string_value(json_object_get(h, "apikey")), KEY);
	ck_assert_str_eq(json_string_value(json_object_get(h,
	    "authorization")), "Bearer " KEY);
	ck_assert_str_eq(json_string_value(json_object_get(h, "prefer")),
	    "return=minimal, resolution=ignore-duplicates, missing=default");
	ck_assert_str_eq(json_string_value(json_object_get(h,
	    "content-type")), "application/json");
	ck_assert_str_eq(json_string_value(json_object_get(h, "user-agent")),
	    "ermd/0.1.0");
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(
	    json_array_get(reqs, 0), "params"), "on_conflict")), "id");
	ck_assert_ptr_nonnull(strstr(json_string_value(json_object_get(
	    json_object_get(json_array_get(reqs, 0), "params"), "columns")),
	    "id,at,host,operation,category,severity,message"));
	json_decref(reqs);

	/* Marked forwarded; the key is nowhere in status or the log. */
	r = call_on(fd, "{\"id\":1,\"method\":\"error.list\",\"params\":"
	    "{\"limit\":1}}");
	ck_assert(json_is_true(json_object_get(json_array_get(json_object_get(
	    result(r), "errors"), 0), "forwarded")));
	json_decref(r);
	r = call_on(fd, "{\"id\":1,\"method\":\"status\"}");
	{
		char	*s = json_dumps(r, JSON_COMPACT);

		ck_assert_ptr_null(strstr(s, KEY));
		ck_assert_ptr_nonnull(strstr(s, "\"forwarded\":31"));
		free(s);
	}
	json_decref(r);
	ck_assert_int_ne(logfd = open(d.log, O_RDONLY), -1);
	n = read(logfd, logbuf, sizeof(logbuf) - 1);
	close(logfd);
	logbuf[n > 0 ? n : 0] = '\0';
	ck_assert_ptr_null(strstr(logbuf, KEY));
	json_decref(ids);
	json_decref(rec);
	close(fd);
}
END_TEST

START_TEST(endpoint_down_then_up)
{
	json_t	*ids = json_array(), *f;
	pid_t	 pid;
	int	 fd, port, port2;

	/* An endpoint of this test's own, on a port that is then free. */
	ck_assert_int_gt(pid = ep_start(0, &port), 0);
	start_fwd(port, KEY, NULL);
	ep_stop(pid);
	fd = raw_connect(d.sock);
	report_n(fd, 10, ids, NULL);
	/* Refused: retried after a backoff, the rows kept. */
	for (int i = 0; i < 200 && fwd_num(fd, "failures") < 1; i++)
		usleep(25000);
	f = fwd_status(fd);
	ck_assert_int_ge(json_integer_value(json_object_get(f, "failures")), 1);
	ck_assert_int_eq(json_integer_value(json_object_get(f,
	    "outbox_backlog")), 10);
	ck_assert_ptr_nonnull(strstr(json_string_value(json_object_get(f,
	    "last_error")), "erm_errors"));
	json_decref(f);
	advance_on(fd, 300000);	/* still down: fails again */
	usleep(200000);
	ck_assert_int_gt(pid = ep_start(port, &port2), 0);
	ck_assert_int_eq(port2, port);
	advance_on(fd, 300000);	/* every backoff is due by now */
	wait_drained(fd);
	assert_landed_once("erm_errors", ids, 10);
	json_decref(ids);
	close(fd);
	ck_assert_int_eq(daemon_stop(&d), 0);
	ep_stop(pid);
}
END_TEST

START_TEST(retry_after_is_honoured)
{
	json_t	*ids = json_array(), *reqs;
	double	 t1, t2;
	int	 fd;

	start_fwd(ep_port, KEY, NULL);
	fault("{\"status\":503,\"headers\":{\"Retry-After\":\"2\"},"
	    "\"count\":1}");
	fd = raw_connect(d.sock);
	report_n(fd, 5, ids, NULL);
	wait_requests("erm_errors", 1);
	/* Full jitter at attempt 1 is at most 1 s: Retry-After wins. */
	nothing_sent_before(fd, 2000, 1);
	advance_on(fd, 1);
	wait_drained(fd);
	ck_assert_uint_eq(nrequests("erm_errors"), 2);
	assert_landed_once("erm_errors", ids, 5);

	/* 429 with an HTML body, then a 520 from a proxy: both retried. */
	fault("{\"status\":429,\"headers\":{\"Retry-After\":\"7\"}}");
	report_n(fd, 3, ids, NULL);
	wait_requests("erm_errors", 3);
	nothing_sent_before(fd, 7000, 3);
	fault("{\"status\":520,\"body\":\"<html>cf</html>\"}");
	advance_on(fd, 1);
	wait_requests("erm_errors", 4);
	advance_on(fd, 300000);
	wait_drained(fd);
	assert_landed_once("erm_errors", ids, 8);
	reqs = requests("erm_errors");
	ck_assert_int_eq(json_integer_value(json_object_get(json_array_get(
	    reqs, 3), "status")), 520);
	t1 = json_real_value(json_object_get(json_array_get(reqs, 0),
	    "mono_ms"));
	t2 = json_real_value(json_object_get(json_array_get(reqs, 1),
	    "mono_ms"));
	ck_assert(t2 >= t1);
	json_decref(reqs);
	json_decref(ids);
	close(fd);
}
END_TEST

START_TEST(reset_mid_request)
{
	json_t	*ids = json_array();
	int	 fd;

	start_fwd(ep_port, KEY, NULL);
	/* The rows are inserted, then the connection is reset: the resend
	 * must not duplicate them. */
	fault("{\"action\":\"reset\",\"after_insert\":true}");
	fd = raw_connect(d.sock);
	report_n(fd, 6, ids, NULL);
	wait_requests("erm_errors", 1);
	for (int i = 0; i < 200 && fwd_num(fd, "failures") < 1; i++)
		usleep(25000);
	advance_on(fd, 300000);
	wait_drained(fd);
	/* A plain reset half way through the body. */
	fault("{\"action\":\"reset\"}");
	report_n(fd, 4, ids, NULL);
	for (int i = 0; i < 200 && fwd_num(fd, "failures") < 2; i++)
		usleep(25000);
	advance_on(fd, 300000);
	wait_drained(fd);
	assert_landed_once("erm_errors", ids, 10);
	/*
	 * Both resets happened (libcurl may itself resend on a fresh
	 * connection when a reused one dies before any answer, which is
	 * harmless for the same reason).
	 */
	{
		json_t	*reqs = requests("erm_errors"), *q;
		size_t	 i;
		int	 resets = 0;

		json_array_foreach(reqs, i, q)
			if (json_is_string(json_object_get(q, "fault")) &&
			    strcmp(json_string_value(json_object_get(q,
			    "fault")), "reset") == 0)
				resets++;
		ck_assert_int_eq(resets, 2);
		json_decref(reqs);
	}
	json_decref(ids);
	close(fd);
}
END_TEST

START_TEST(hang_times_out_then_succeeds)
{
	json_t	*ids = json_array(), *f;
	int	 fd, i;

	start_fwd(ep_port, KEY, NULL);	/* timeout_ms = 2000 */
	fault("{\"action\":\"hang\"}");
	fd = raw_connect(d.sock);
	report_n(fd, 5, ids, NULL);
	for (i = 0; i < 200 && fwd_num(fd, "failures") < 1; i++)
		usleep(25000);
	f = fwd_status(fd);
	ck_assert_int_eq(json_integer_value(json_object_get(f, "failures")), 1);
	ck_assert_int_eq(json_integer_value(json_object_get(f,
	    "outbox_backlog")), 5);
	json_decref(f);
	advance_on(fd, 300000);
	wait_drained(fd);
	assert_landed_once("erm_errors", ids, 5);
	json_decref(ids);
	close(fd);
}
END_TEST

START_TEST(kill9_with_rows_in_the_outbox)
{
	json_t	*ids = json_array();
	int	 fd;

	start_fwd(ep_port, KEY, NULL);
	fault("{\"status\":503,\"count\":-1}");
	fd = raw_connect(d.sock);
	report_n(fd, 20, ids, NULL);
	wait_requests("erm_errors", 1);
	close(fd);
	daemon_kill9(&d);
	json_decref(admin("DELETE", "/_test/faults", NULL));
	daemon_restart(&d);
	fd = raw_connect(d.sock);
	wait_drained(fd);
	assert_landed_once("erm_errors", ids, 20);
	json_decref(ids);
	close(fd);
}
END_TEST

START_TEST(too_large_splits)
{
	json_t	*ids = json_array(), *reqs, *q;
	char	 pad[1000], extra[1100];
	size_t	 i;
	int	 fd, saw413 = 0;

	/* Rows of about 1 KiB; the endpoint refuses bodies over 8000. */
	start_fwd(ep_port, KEY, NULL);
	fault("{\"body_limit\":8000,\"count\":-1}");
	fd = raw_connect(d.sock);
	memset(pad, 'x', 900);
	pad[900] = '\0';
	snprintf(extra, sizeof(extra), ",\"context\":{\"p\":\"%s\"}", pad);
	/* The first row goes alone and is held back: the rest queue up. */
	fault("{\"action\":\"delay\",\"delay_ms\":300}");
	report_n(fd, 30, ids, extra);
	wait_drained(fd);
	assert_landed_once("erm_errors", ids, 30);
	reqs = requests("erm_errors");
	json_array_foreach(reqs, i, q) {
		if (json_integer_value(json_object_get(q, "status")) == 413)
			saw413 = 1;
		else
			ck_assert_int_le(json_integer_value(json_object_get(q,
			    "body_size")), 8000);
	}
	ck_assert(saw413);
	json_decref(reqs);
	json_decref(ids);
	close(fd);
}
END_TEST

START_TEST(statement_timeout_halves)
{
	json_t	*ids = json_array(), *reqs, *q;
	size_t	 i;
	int	 fd, saw57014 = 0;

	start_fwd(ep_port, KEY, "batch_max_rows = 40\n");
	json_decref(admin("POST", "/_test/slow",
	    "{\"table\":\"erm_errors\",\"per_row_ms\":20}"));
	json_decref(admin("POST", "/_test/statement_timeout",
	    "{\"role\":\"service_role\",\"ms\":300}"));
	fd = raw_connect(d.sock);
	fault("{\"action\":\"delay\",\"delay_ms\":300}");
	report_n(fd, 40, ids, NULL);
	wait_drained(fd);
	json_decref(admin("POST", "/_test/statement_timeout",
	    "{\"role\":\"service_role\",\"ms\":null}"));
	assert_landed_once("erm_errors", ids, 40);
	reqs = requests("erm_errors");
	json_array_foreach(reqs, i, q)
		if (json_is_string(json_object_get(q, "code")) &&
		    strcmp(json_string_value(json_object_get(q, "code")),
		    "57014") == 0)
			saw57014 = 1;
	ck_assert(saw57014);
	json_decref(reqs);
	json_decref(ids);
	close(fd);
}
END_TEST

START_TEST(poison_row_dead_lettered)
{
	json_t	*ids = json_array(), *good = json_array(), *ev, *v;
	char	 body[256];
	int	 fd, sub, i;
	size_t	 k;
	const char *poison;

	start_fwd(ep_port, KEY, NULL);
	sub = raw_connect(d.sock);
	json_decref(call_on(sub, "{\"id\":1,\"method\":\"events.subscribe\","
	    "\"params\":{\"types\":[\"alert\"]}}"));
	fd = raw_connect(d.sock);
	/* Held back while the poison is set up, then one batch of 16. */
	fault("{\"action\":\"delay\",\"delay_ms\":500}");
	report_n(fd, 1, ids, NULL);	/* goes alone, delayed */
	report_n(fd, 16, ids, NULL);
	poison = json_string_value(json_array_get(ids, 11));
	snprintf(body, sizeof(body), "{\"table\":\"erm_errors\",\"id\":\"%s\"}",
	    poison);
	json_decref(admin("POST", "/_test/poison", body));
	wait_drained(fd);
	json_array_foreach(ids, k, v)
		if (k != 11)
			json_array_append(good, v);
	assert_landed_once("erm_errors", good, 16);
	ck_assert_int_eq(fwd_num(fd, "dead_letters"), 1);
	for (i = 0; i < 5; i++) {
		ev = raw_recv(sub, 5000);
		ck_assert_ptr_nonnull(ev);
		if (strcmp(json_string_value(json_object_get(json_object_get(ev,
		    "params"), "kind")), "forward_dead_letter") == 0) {
			json_decref(ev);
			break;
		}
		json_decref(ev);
	}
	ck_assert_int_lt(i, 5);
	/* Nothing more is sent for it. */
	ck_assert_int_eq(fwd_num(fd, "outbox_backlog"), 0);
	json_decref(good);
	json_decref(ids);
	close(fd);
	close(sub);
}
END_TEST

START_TEST(wrong_key_pauses_then_reload_resumes)
{
	json_t	*ids = json_array(), *f, *ev, *r, *alert = json_array();
	int	 fd, sub;

	start_fwd(ep_port, "sb_secret_wrong", NULL);
	sub = raw_connect(d.sock);
	json_decref(call_on(sub, "{\"id\":1,\"method\":\"events.subscribe\","
	    "\"params\":{\"types\":[\"alert\"]}}"));
	fd = raw_connect(d.sock);
	report_n(fd, 7, ids, NULL);
	ev = raw_recv(sub, 10000);
	ck_assert_ptr_nonnull(ev);
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(ev,
	    "params"), "kind")), "forward_paused");
	json_array_append(alert, json_object_get(json_object_get(ev, "params"),
	    "id"));
	json_decref(ev);
	f = fwd_status(fd);
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(
	    json_object_get(f, "paused"), 0), "table")), "erm_errors");
	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(f,
	    "backlog"), "errors")), 7);
	json_decref(f);
	/* More rows while paused: kept, not sent. */
	report_n(fd, 3, ids, NULL);
	usleep(200000);
	ck_assert_uint_eq(nrequests("erm_errors"), 1);
	/* Fix the key and reload. */
	write_key(KEY, 0600);
	r = call_on(fd, "{\"id\":1,\"method\":\"config.reload\"}");
	result(r);
	json_decref(r);
	wait_drained(fd);
	assert_landed_once("erm_errors", ids, 10);
	/* The pause's alert was stored and lands once the key works. */
	assert_landed_once("erm_alerts", alert, -1);
	json_decref(alert);
	f = fwd_status(fd);
	ck_assert_uint_eq(json_array_size(json_object_get(f, "paused")), 0);
	json_decref(f);
	json_decref(ids);
	close(fd);
	close(sub);
}
END_TEST

START_TEST(key_file_checks)
{
	char		 out[4096], conf[512], path[256], src[256];
	const char	*argv[6];

	daemon_prepare(&d);
	write_key(KEY, 0640);
	snprintf(conf, sizeof(conf), "%s/ermd.conf", d.dir);
	snprintf(out, sizeof(out), "[supabase]\nurl = http://127.0.0.1:1\n"
	    "key_file = %s/key\n", d.dir);
	daemon_write_conf(&d, out);
	argv[0] = ermd_path();
	argv[1] = "-t";
	argv[2] = "-c";
	argv[3] = conf;
	argv[4] = NULL;
	/* Readable by the group: refused (start and -t alike). */
	ck_assert_int_ne(run_prog(out, sizeof(out), argv), 0);
	/* Fixed: accepted. */
	write_key(KEY, 0600);
	ck_assert_int_eq(run_prog(out, sizeof(out), argv), 0);
	/* $CREDENTIALS_DIRECTORY/supabase_key when key_file is not set. */
	snprintf(out, sizeof(out), "[supabase]\nurl = http://127.0.0.1:1\n");
	daemon_write_conf(&d, out);
	ck_assert_int_ne(run_prog(out, sizeof(out), argv), 0);
	snprintf(path, sizeof(path), "%s/supabase_key", d.dir);
	snprintf(src, sizeof(src), "%s/key", d.dir);
	ck_assert_int_eq(rename(src, path), 0);
	setenv("CREDENTIALS_DIRECTORY", d.dir, 1);
	ck_assert_int_eq(run_prog(out, sizeof(out), argv), 0);
	unsetenv("CREDENTIALS_DIRECTORY");
	snprintf(out, sizeof(out), "rm -rf %s", d.dir);
	ck_assert_int_eq(system(out), 0);
	memset(&d, 0, sizeof(d));
}
END_TEST

START_TEST(outbox_bound_drops_counted)
{
	json_t		*ids = json_array(), *r;
	static char	 prom[1 << 20];
	const char *const pargs[] = { "metrics", "--prometheus", NULL };
	int	 fd;

	start_fwd(ep_port, KEY, "outbox_max_rows = 5\n");
	fault("{\"status\":503,\"count\":-1}");
	fd = raw_connect(d.sock);
	report_n(fd, 3, ids, ",\"severity\":\"info\"");
	report_n(fd, 5, ids, ",\"severity\":\"critical\"");
	for (int i = 0; i < 200 && fwd_num(fd, "dropped") < 3; i++)
		usleep(25000);
	ck_assert_int_eq(fwd_num(fd, "dropped"), 3);
	ck_assert_int_eq(fwd_num(fd, "outbox_backlog"), 5);
	ck_assert_int_eq(ermctl(&d, prom, sizeof(prom), pargs), 0);
	ck_assert_ptr_nonnull(strstr(prom, "ermd_forward_dropped_total 3\n"));
	json_decref(admin("DELETE", "/_test/faults", NULL));
	advance_on(fd, 300000);
	wait_drained(fd);
	/* The five critical ones landed; the info ones were dropped. */
	r = json_array();
	for (size_t i = 3; i < 8; i++)
		json_array_append(r, json_array_get(ids, i));
	assert_landed_once("erm_errors", r, 5);
	json_decref(r);
	json_decref(ids);
	close(fd);
}
END_TEST

/*
 * The schema or grant problems that pause a lane (BEHAVIOUR.md section 6),
 * made for real in PostgreSQL so that the endpoint answers as PostgREST
 * would: INSERT revoked (403 42501), the table renamed away (404
 * PGRST205), a column renamed away (400 PGRST204).
 */
static const struct {
	const char	*breaks, *fixes, *code;
	int		 status;
} pauses[] = {
	{ "REVOKE INSERT ON public.erm_errors FROM service_role",
	    "GRANT INSERT ON public.erm_errors TO service_role", "42501", 403 },
	{ "ALTER TABLE public.erm_errors RENAME TO erm_errors_moved",
	    "ALTER TABLE public.erm_errors_moved RENAME TO erm_errors",
	    "PGRST205", 404 },
	{ "ALTER TABLE public.erm_errors RENAME COLUMN matched TO "
	    "matched_moved", "ALTER TABLE public.erm_errors RENAME COLUMN "
	    "matched_moved TO matched", "PGRST204", 400 },
};

START_TEST(pause_statuses_then_reload_resumes)
{
	json_t	*ids = json_array(), *alert = json_array(), *a, *reqs, *f;
	char	 reason[64];
	int	 fd, sub;

	snprintf(reason, sizeof(reason), "HTTP %d %s", pauses[_i].status,
	    pauses[_i].code);
	/* Rows wait for the flush interval: one batch of 7, on cue. */
	start_fwd(ep_port, KEY, "flush_interval_ms = 1000\n");
	sql(pauses[_i].breaks);
	sub = subscribe_alerts();
	fd = raw_connect(d.sock);
	report_n(fd, 7, ids, NULL);
	ck_assert_uint_eq(nrequests("erm_errors"), 0);
	advance_on(fd, 1000);
	a = next_alert(sub, "forward_paused");
	ck_assert_str_eq(json_string_value(json_object_get(a, "key")),
	    "forward_paused:erm_errors");
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(a,
	    "details"), "table")), "erm_errors");
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(a,
	    "details"), "reason")), reason);
	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(a,
	    "details"), "backlog")), 7);
	json_array_append(alert, json_object_get(a, "id"));
	json_decref(a);
	assert_paused(fd, reason, 1, 7);
	/* More rows, and 5 min less 1 ms: nothing more is sent. */
	report_n(fd, 3, ids, NULL);
	nothing_sent_before(fd, 300000, 1);
	assert_paused(fd, reason, 1, 10);
	/* Only that table's lane: the alert went to erm_alerts meanwhile. */
	wait_backlog(fd, "alerts", 0);
	assert_landed_once("erm_alerts", alert, 1);
	/* Fixed, and config.reload: one batch of all 10 lands. */
	sql(pauses[_i].fixes);
	reload_fwd(fd, "flush_interval_ms = 1000\n");
	wait_drained(fd);
	reqs = requests("erm_errors");
	ck_assert_uint_eq(json_array_size(reqs), 2);
	ck_assert_int_eq(req_int(reqs, 0, "status"), pauses[_i].status);
	ck_assert_str_eq(req_str(reqs, 0, "code"), pauses[_i].code);
	ck_assert_int_eq(req_int(reqs, 0, "rows"), 7);
	ck_assert_int_eq(req_int(reqs, 1, "status"), 201);
	ck_assert_int_eq(req_int(reqs, 1, "rows"), 10);
	json_decref(reqs);
	assert_landed_once("erm_errors", ids, 10);
	assert_landed_once("erm_alerts", alert, 1);
	f = fwd_status(fd);
	ck_assert_uint_eq(json_array_size(json_object_get(f, "paused")), 0);
	ck_assert_int_eq(json_integer_value(json_object_get(f, "failures")), 1);
	ck_assert_int_eq(json_integer_value(json_object_get(f, "forwarded")),
	    11);
	json_decref(f);
	ck_assert_int_eq(metric_of(fd, "ermd_forwarded_total{table="
	    "\"errors\"}"), 10);
	ck_assert_int_eq(metric_of(fd, "ermd_forward_failures_total{table="
	    "\"errors\"}"), 1);
	ck_assert_int_eq(metric_of(fd, "ermd_alerts_total{kind="
	    "\"forward_paused\"}"), 1);
	json_decref(alert);
	json_decref(ids);
	close(fd);
	close(sub);
}
END_TEST

/* Answers retried after a backoff, besides 503, 429 and 520. */
static const struct {
	int		 status;
	const char	*rule, *error;
} retries[] = {
	{ 408, "{\"status\":408}", "HTTP 408" },
	{ 500, "{\"status\":500,\"body\":{\"code\":\"XX000\",\"message\":"
	    "\"internal error\",\"details\":null,\"hint\":null}}",
	    "HTTP 500 XX000" },
	{ 500, "{\"status\":500}", "HTTP 500" },
	{ 502, "{\"status\":502}", "HTTP 502" },
	{ 504, "{\"status\":504}", "HTTP 504" },
	{ 521, "{\"status\":521,\"body\":\"<html>cf 521</html>\"}",
	    "HTTP 521" },
	{ 522, "{\"status\":522,\"body\":\"<html>cf 522</html>\"}",
	    "HTTP 522" },
	{ 523, "{\"status\":523,\"body\":\"<html>cf 523</html>\"}",
	    "HTTP 523" },
	{ 524, "{\"status\":524,\"body\":\"<html>cf 524</html>\"}",
	    "HTTP 524" },
};

START_TEST(retry_statuses)
{
	json_t	*ids = json_array(), *reqs, *f;
	char	 last[64];
	int	 fd;

	start_fwd(ep_port, KEY, "flush_interval_ms = 1000\n");
	fault(retries[_i].rule);
	fd = raw_connect(d.sock);
	report_n(fd, 7, ids, NULL);
	advance_on(fd, 1000);		/* one batch of 7 */
	wait_fwd(fd, "failures", 1);
	/*
	 * Kept for a retry: not paused, not dead-lettered (not halved
	 * either: the retry below carries all 7). The backlog is not
	 * checked here: a jitter of 0 may have sent the retry already.
	 */
	f = fwd_status(fd);
	snprintf(last, sizeof(last), "erm_errors: %s", retries[_i].error);
	ck_assert_str_eq(json_string_value(json_object_get(f, "last_error")),
	    last);
	ck_assert_uint_eq(json_array_size(json_object_get(f, "paused")), 0);
	ck_assert_int_eq(json_integer_value(json_object_get(f,
	    "dead_letters")), 0);
	json_decref(f);
	/* Full jitter at attempt 1 is at most 1 s on the daemon clock. */
	advance_on(fd, 1000);
	wait_drained(fd);
	reqs = requests("erm_errors");
	ck_assert_uint_eq(json_array_size(reqs), 2);
	ck_assert_int_eq(req_int(reqs, 0, "status"), retries[_i].status);
	ck_assert_int_eq(req_int(reqs, 0, "rows"), 7);
	ck_assert_int_eq(req_int(reqs, 1, "status"), 201);
	ck_assert_int_eq(req_int(reqs, 1, "rows"), 7);
	json_decref(reqs);
	assert_landed_once("erm_errors", ids, 7);
	ck_assert_int_eq(fwd_num(fd, "failures"), 1);
	ck_assert_int_eq(fwd_num(fd, "dead_letters"), 0);
	ck_assert_int_eq(metric_of(fd, "ermd_forwarded_total{table="
	    "\"errors\"}"), 7);
	ck_assert_int_eq(metric_of(fd, "ermd_forward_failures_total{table="
	    "\"errors\"}"), 1);
	json_decref(ids);
	close(fd);
}
END_TEST

/* An IMF-fixdate (RFC 9110), as Retry-After carries it. */
static void
http_date(int64_t secs, char *buf, size_t sz)
{
	struct tm	tm;
	time_t		t = (time_t)secs;

	ck_assert_ptr_nonnull(gmtime_r(&t, &tm));
	ck_assert_uint_gt(strftime(buf, sz, "%a, %d %b %Y %H:%M:%S GMT", &tm),
	    0);
}

START_TEST(retry_after_http_date)
{
	json_t	*ids = json_array(), *reqs;
	char	 date[64], rule[256];
	int64_t	 now, when;
	int	 fd;

	start_fwd(ep_port, KEY, NULL);
	fd = raw_connect(d.sock);
	/* The daemon clock stands still: the date is 29-30 s after it. */
	now = daemon_now(fd);
	when = now / 1000 + 30;
	http_date(when, date, sizeof(date));
	snprintf(rule, sizeof(rule), "{\"status\":429,\"headers\":"
	    "{\"Retry-After\":\"%s\"}}", date);
	fault(rule);
	report_n(fd, 5, ids, NULL);
	wait_requests("erm_errors", 1);
	wait_fwd(fd, "failures", 1);
	nothing_sent_before(fd, when * 1000 - now, 1);
	advance_on(fd, 1);
	wait_drained(fd);
	assert_landed_once("erm_errors", ids, 5);

	/* A date three days ahead waits 24 h, the cap. */
	now = daemon_now(fd);
	ck_assert_int_eq(now, when * 1000);
	http_date(when + 3 * 86400, date, sizeof(date));
	snprintf(rule, sizeof(rule), "{\"status\":503,\"headers\":"
	    "{\"Retry-After\":\"%s\"}}", date);
	fault(rule);
	report_n(fd, 3, ids, NULL);
	wait_requests("erm_errors", 3);
	wait_fwd(fd, "failures", 2);
	nothing_sent_before(fd, 86400000, 3);
	advance_on(fd, 1);
	wait_drained(fd);
	reqs = requests("erm_errors");
	ck_assert_uint_eq(json_array_size(reqs), 4);
	ck_assert_int_eq(req_int(reqs, 0, "status"), 429);
	ck_assert_int_eq(req_int(reqs, 1, "status"), 201);
	ck_assert_int_eq(req_int(reqs, 1, "rows"), 5);
	ck_assert_int_eq(req_int(reqs, 2, "status"), 503);
	ck_assert_int_eq(req_int(reqs, 3, "status"), 201);
	ck_assert_int_eq(req_int(reqs, 3, "rows"), 3);
	json_decref(reqs);
	assert_landed_once("erm_errors", ids, 8);
	json_decref(ids);
	close(fd);
}
END_TEST

/*
 * Hold rows back: the next row goes alone and is told to come back in
 * 10 s (daemon clock), then n - 1 more wait in the outbox behind it.
 */
static void
hold_rows(int fd, int n, json_t *ids, const char *extra, size_t seen,
    int failures)
{
	fault("{\"status\":503,\"headers\":{\"Retry-After\":\"10\"}}");
	report_n(fd, 1, ids, extra);
	wait_requests("erm_errors", seen + 1);
	wait_fwd(fd, "failures", failures);
	report_n(fd, n - 1, ids, extra);
}

START_TEST(batch_max_bytes_splits)
{
	static const int first[] = { 3, 3, 3, 1 }, second[] = { 2, 2, 1 };
	json_t		*ids = json_array(), *reqs;
	char		 pad[701], extra[800], lines[64];
	int64_t		 len, max;
	size_t		 i;
	int		 fd;

	/*
	 * Rows of one size: "row N" with one digit, the same errno and
	 * padding; the id and timestamps have a fixed width.
	 */
	memset(pad, 'x', 700);
	pad[700] = '\0';
	snprintf(extra, sizeof(extra), ",\"context\":{\"p\":\"%s\"}", pad);
	start_fwd(ep_port, KEY, NULL);
	fd = raw_connect(d.sock);
	hold_rows(fd, 10, ids, extra, 0, 1);
	ck_assert_int_eq(db_int(&d, "SELECT count(*) FROM outbox WHERE "
	    "kind = 0 AND dead = 0"), 10);
	ck_assert_int_eq(db_int(&d, "SELECT count(DISTINCT length(body)) "
	    "FROM outbox WHERE kind = 0"), 1);
	len = db_int(&d, "SELECT length(body) FROM outbox WHERE kind = 0 "
	    "LIMIT 1");
	ck_assert_int_gt(len, 700);
	reqs = requests("erm_errors");
	ck_assert_int_eq(req_int(reqs, 0, "body_size"), len + 2);
	json_decref(reqs);

	/* An array of k rows is k (len + 1) + 1 bytes: 3 fit exactly. */
	max = 3 * (len + 1) + 1;
	snprintf(lines, sizeof(lines), "batch_max_bytes = %lld\n",
	    (long long)max);
	reload_fwd(fd, lines);
	advance_on(fd, 10000);
	wait_drained(fd);
	reqs = requests("erm_errors");
	ck_assert_uint_eq(json_array_size(reqs), 5);
	for (i = 0; i < 4; i++) {
		ck_assert_int_eq(req_int(reqs, i + 1, "status"), 201);
		ck_assert_int_eq(req_int(reqs, i + 1, "rows"), first[i]);
		ck_assert_int_eq(req_int(reqs, i + 1, "body_size"),
		    first[i] * (len + 1) + 1);
	}
	json_decref(reqs);
	assert_landed_once("erm_errors", ids, 10);

	/* One byte less: 3 rows no longer fit. */
	hold_rows(fd, 5, ids, extra, 5, 2);
	snprintf(lines, sizeof(lines), "batch_max_bytes = %lld\n",
	    (long long)max - 1);
	reload_fwd(fd, lines);
	advance_on(fd, 10000);
	wait_drained(fd);
	reqs = requests("erm_errors");
	ck_assert_uint_eq(json_array_size(reqs), 9);
	ck_assert_int_eq(req_int(reqs, 5, "status"), 503);
	for (i = 0; i < 3; i++) {
		ck_assert_int_eq(req_int(reqs, i + 6, "status"), 201);
		ck_assert_int_eq(req_int(reqs, i + 6, "rows"), second[i]);
		ck_assert_int_eq(req_int(reqs, i + 6, "body_size"),
		    second[i] * (len + 1) + 1);
	}
	json_decref(reqs);
	assert_landed_once("erm_errors", ids, 15);
	ck_assert_int_eq(metric_of(fd, "ermd_forwarded_total{table="
	    "\"errors\"}"), 15);
	json_decref(ids);
	close(fd);
}
END_TEST

START_TEST(paused_lane_retried_every_5_min)
{
	json_t	*ids = json_array(), *alert = json_array(), *a, *reqs, *f;
	int	 fd, sub;

	start_fwd(ep_port, KEY, NULL);
	sql("REVOKE INSERT ON public.erm_errors FROM service_role");
	sub = subscribe_alerts();
	fd = raw_connect(d.sock);
	report_n(fd, 7, ids, NULL);
	a = next_alert(sub, "forward_paused");
	json_array_append(alert, json_object_get(a, "id"));
	json_decref(a);
	assert_paused(fd, "HTTP 403 42501", 1, 7);
	ck_assert_uint_eq(nrequests("erm_errors"), 1);
	report_n(fd, 3, ids, NULL);
	/* The clock has not moved since the pause: 5 min less 1 ms. */
	nothing_sent_before(fd, 300000, 1);
	advance_on(fd, 1);
	wait_requests("erm_errors", 2);
	wait_fwd(fd, "failures", 2);
	/* Still refused: paused again (and alerted: dedup_ms has passed). */
	assert_paused(fd, "HTTP 403 42501", 2, 10);
	a = next_alert(sub, "forward_paused");
	json_array_append(alert, json_object_get(a, "id"));
	json_decref(a);
	/* Accepted from now on: the next 5-min retry sends everything. */
	sql("GRANT INSERT ON public.erm_errors TO service_role");
	nothing_sent_before(fd, 300000, 2);
	advance_on(fd, 1);
	wait_drained(fd);
	reqs = requests("erm_errors");
	ck_assert_uint_eq(json_array_size(reqs), 3);
	ck_assert_int_eq(req_int(reqs, 0, "status"), 403);
	ck_assert_int_eq(req_int(reqs, 1, "status"), 403);
	ck_assert_int_eq(req_int(reqs, 1, "rows"), 10);
	ck_assert_int_eq(req_int(reqs, 2, "status"), 201);
	ck_assert_int_eq(req_int(reqs, 2, "rows"), 10);
	json_decref(reqs);
	assert_landed_once("erm_errors", ids, 10);
	assert_landed_once("erm_alerts", alert, 2);
	f = fwd_status(fd);
	ck_assert_uint_eq(json_array_size(json_object_get(f, "paused")), 0);
	json_decref(f);
	ck_assert_int_eq(metric_of(fd, "ermd_forward_failures_total{table="
	    "\"errors\"}"), 2);
	ck_assert_int_eq(metric_of(fd, "ermd_alerts_total{kind="
	    "\"forward_paused\"}"), 2);
	json_decref(alert);
	json_decref(ids);
	close(fd);
	close(sub);
}
END_TEST

/* A gateway's 401/403 page of 70 KB: past the 64 KiB the lane reads. */
START_TEST(large_error_page_pauses)
{
	static const int status[] = { 401, 403 };
	json_t	*ids = json_array(), *alert = json_array(), *a, *rule;
	json_t	*reqs;
	char	*page, *text, reason[32];
	int	 fd, sub;

	ck_assert_ptr_nonnull(page = malloc(70000 + 1));
	memset(page, 'x', 70000);
	memcpy(page, "<html><body>", 12);
	memcpy(page + 70000 - 14, "</body></html>", 14);
	page[70000] = '\0';
	rule = json_pack("{s:i, s:s, s:i, s:s}", "status", status[_i], "body",
	    page, "count", -1, "table", "erm_errors");
	text = json_dumps(rule, JSON_COMPACT);
	snprintf(reason, sizeof(reason), "HTTP %d", status[_i]);
	start_fwd(ep_port, KEY, NULL);
	fault(text);
	sub = subscribe_alerts();
	fd = raw_connect(d.sock);
	report_n(fd, 5, ids, NULL);
	a = next_alert(sub, "forward_paused");
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(a,
	    "details"), "reason")), reason);
	json_array_append(alert, json_object_get(a, "id"));
	json_decref(a);
	assert_paused(fd, reason, 1, 5);
	nothing_sent_before(fd, 300000, 1);
	json_decref(admin("DELETE", "/_test/faults", NULL));
	reload_fwd(fd, NULL);
	wait_drained(fd);
	reqs = requests("erm_errors");
	ck_assert_uint_eq(json_array_size(reqs), 2);
	ck_assert_int_eq(req_int(reqs, 0, "status"), status[_i]);
	ck_assert_int_eq(req_int(reqs, 1, "status"), 201);
	ck_assert_int_eq(req_int(reqs, 1, "rows"), 5);
	json_decref(reqs);
	assert_landed_once("erm_errors", ids, 5);
	assert_landed_once("erm_alerts", alert, 1);
	ck_assert_int_eq(fwd_num(fd, "failures"), 1);
	free(text);
	json_decref(rule);
	free(page);
	json_decref(alert);
	json_decref(ids);
	close(fd);
	close(sub);
}
END_TEST

static int
pg_start(void)
{
	FILE	*fp;
	char	 line[200];

	if ((fp = popen("sh tests/supabase/pg.sh start", "r")) == NULL)
		return (-1);
	while (fgets(line, sizeof(line), fp) != NULL) {
		line[strcspn(line, "\n")] = '\0';
		if (strncmp(line, "PGDIR=", 6) == 0)
			snprintf(pgdir, sizeof(pgdir), "%.190s", line + 6);
		else if (strncmp(line, "PGHOST=", 7) == 0)
			snprintf(pghost, sizeof(pghost), "%.190s", line + 7);
		else if (strncmp(line, "PGPORT=", 7) == 0)
			snprintf(pgport, sizeof(pgport), "%.15s", line + 7);
		else if (strncmp(line, "PGDATABASE=", 11) == 0)
			snprintf(pgdb, sizeof(pgdb), "%.63s", line + 11);
	}
	if (pclose(fp) != 0 || pgdir[0] == '\0')
		return (-1);
	return (0);
}

int
main(void)
{
	Suite	*s = suite_create("forward");
	TCase	*tc = tcase_create("forward");
	SRunner	*sr;
	char	 cmd[512];
	int	 failed;

	if (access(PY, X_OK) == -1 || access("/usr/bin/curl", X_OK) == -1 ||
	    pg_start() == -1) {
		fprintf(stderr, "forward: PostgreSQL, python3-psycopg2 or curl "
		    "missing (make check installs them)\n");
		return (1);
	}
	if ((ep_pid = ep_start(0, &ep_port)) == -1) {
		snprintf(cmd, sizeof(cmd), "sh tests/supabase/pg.sh stop %s",
		    pgdir);
		(void)system(cmd);
		return (1);
	}
	tcase_set_timeout(tc, 120);
	tcase_add_checked_fixture(tc, setup, stop);
	tcase_add_test(tc, normal_flow);
	tcase_add_test(tc, endpoint_down_then_up);
	tcase_add_test(tc, retry_after_is_honoured);
	tcase_add_test(tc, reset_mid_request);
	tcase_add_test(tc, hang_times_out_then_succeeds);
	tcase_add_test(tc, kill9_with_rows_in_the_outbox);
	tcase_add_test(tc, too_large_splits);
	tcase_add_test(tc, statement_timeout_halves);
	tcase_add_test(tc, poison_row_dead_lettered);
	tcase_add_test(tc, wrong_key_pauses_then_reload_resumes);
	tcase_add_test(tc, key_file_checks);
	tcase_add_test(tc, outbox_bound_drops_counted);
	tcase_add_loop_test(tc, pause_statuses_then_reload_resumes, 0,
	    (int)(sizeof(pauses) / sizeof(pauses[0])));
	tcase_add_loop_test(tc, retry_statuses, 0,
	    (int)(sizeof(retries) / sizeof(retries[0])));
	tcase_add_test(tc, retry_after_http_date);
	tcase_add_test(tc, batch_max_bytes_splits);
	tcase_add_test(tc, paused_lane_retried_every_5_min);
	tcase_add_loop_test(tc, large_error_page_pauses, 0, 2);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	ep_stop(ep_pid);
	snprintf(cmd, sizeof(cmd), "sh tests/supabase/pg.sh stop %s", pgdir);
	if (system(cmd) != 0)
		fprintf(stderr, "forward: pg.sh stop failed\n");
	return (failed ? 1 : 0);
}
