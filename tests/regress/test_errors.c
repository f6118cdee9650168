/*
 * Error tracking over the socket: error.report is answered only once the
 * row is committed and stores an id once (even while its first write is in
 * flight), error.list filters and pages, error.stats counts and takes the
 * recovery rate from the stored ops, retention prunes on the daemon clock,
 * bad input is refused with the field named, acknowledged reports survive
 * kill -9 at any moment, a full state directory gives 1006 ENOSPC
 * while reads go on, finished ops are pruned with the errors (their
 * recovery counts kept), and a list that scans the table leaves the loop
 * free.
 */

#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>

#include <check.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "harness.h"

static struct daemon	d;

static const char *const manual[] = { "--manual-clock", NULL };

static void
stop(void)
{
	if (d.pid > 0)
		ck_assert_int_eq(daemon_stop(&d), 0);
}

static json_int_t
num_at(json_t *r, const char *a, const char *b)
{
	json_t	*v = json_object_get(result(r), a);

	if (b != NULL)
		v = json_object_get(v, b);
	ck_assert_msg(json_is_integer(v), "%s.%s is not an integer", a,
	    b ? b : "");
	return (json_integer_value(v));
}

static json_t *
report(int fd, const char *params)
{
	return (call_on(fd, "{\"id\":1,\"method\":\"error.report\","
	    "\"params\":%s}", params));
}

/*
 * Advance the clock by ms and let the prunes it starts finish. One prune
 * job runs at a time: the ticks inside a long advance find the first (of
 * the first tick's time) still going, so one more runs once it is done,
 * started by the next advance with the cutoff of the end of the long one.
 * A report after each advance commits after the prune before it. Reports
 * two errors, operations "z" and "w".
 */
static void
prune_after(int fd, int64_t ms)
{
	advance_on(fd, ms);
	json_decref(report(fd, "{\"operation\":\"z\",\"errno\":5}"));
	advance_on(fd, 1000);
	json_decref(report(fd, "{\"operation\":\"w\",\"errno\":5}"));
}

static size_t
list_count(int fd, const char *params)
{
	json_t	*r = call_on(fd, "{\"id\":1,\"method\":\"error.list\","
	    "\"params\":%s}", params);
	size_t	 n = json_array_size(json_object_get(result(r), "errors"));

	json_decref(r);
	return (n);
}

START_TEST(report_list_stats)
{
	static const char *const reports[] = {
		"{\"operation\":\"upload\",\"errno\":\"ECONNRESET\","
		    "\"message\":\"reset by peer\"}",
		"{\"operation\":\"upload\",\"http_status\":503,"
		    "\"severity\":\"warning\"}",
		"{\"operation\":\"upload\",\"http_status\":429}",
		"{\"operation\":\"fsck\",\"errno\":\"ENOENT\",\"path\":\"/a\","
		    "\"severity\":\"critical\",\"context\":{\"try\":1}}",
		"{\"operation\":\"login\",\"http_status\":401,"
		    "\"severity\":\"info\"}",
	};
	char	 next[64], *c;
	static char	 prom[1 << 20];
	json_t	*r, *e, *seen;
	size_t	 i, pages;
	int	 fd;
	const char *const promargs[] = { "metrics", "--prometheus", NULL };

	daemon_start(&d, NULL, manual);
	fd = raw_connect(d.sock);
	for (i = 0; i < sizeof(reports) / sizeof(reports[0]); i++) {
		r = report(fd, reports[i]);
		ck_assert_int_eq(strlen(json_string_value(json_object_get(
		    result(r), "id"))), 36);
		if (i == 0) {
			ck_assert_str_eq(json_string_value(json_object_get(
			    result(r), "category")), "NETWORK_ERROR");
			ck_assert_str_eq(json_string_value(json_object_get(
			    json_object_get(result(r), "strategy"),
			    "primary")), "retry_with_backoff");
		}
		json_decref(r);
		advance_on(fd, 1000);
	}
	/* Filters. */
	ck_assert_uint_eq(list_count(fd, "{}"), 5);
	ck_assert_uint_eq(list_count(fd, "{\"operation\":\"upload\"}"), 3);
	ck_assert_uint_eq(list_count(fd, "{\"category\":\"RATE_LIMIT_ERROR\"}"),
	    1);
	ck_assert_uint_eq(list_count(fd, "{\"severity\":\"critical\"}"), 1);
	ck_assert_uint_eq(list_count(fd, "{\"operation\":\"upload\","
	    "\"severity\":\"error\"}"), 2);
	r = call_on(fd, "{\"id\":1,\"method\":\"ping\"}");
	ck_assert_uint_eq(list_count(fd, "{\"since\":0,\"until\":1}"), 0);
	json_decref(r);
	/* Newest first, and the fields of one. */
	r = call_on(fd, "{\"id\":1,\"method\":\"error.list\",\"params\":"
	    "{\"operation\":\"fsck\"}}");
	e = json_array_get(json_object_get(result(r), "errors"), 0);
	ck_assert_str_eq(json_string_value(json_object_get(e, "errno")),
	    "ENOENT");
	ck_assert_str_eq(json_string_value(json_object_get(e, "path")), "/a");
	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(e,
	    "context"), "try")), 1);
	ck_assert(json_is_false(json_object_get(e, "forwarded")));
	ck_assert_str_eq(json_string_value(json_object_get(e, "category")),
	    "FILE_NOT_FOUND");
	json_decref(r);
	/* Paging: 2 + 2 + 1, newest first, each id once. */
	seen = json_object();
	next[0] = '\0';
	for (pages = 0; pages < 10; pages++) {
		json_int_t	prev_at = INT64_MAX;

		if (next[0] == '\0')
			r = call_on(fd, "{\"id\":1,\"method\":\"error.list\","
			    "\"params\":{\"limit\":2}}");
		else
			r = call_on(fd, "{\"id\":1,\"method\":\"error.list\","
			    "\"params\":{\"limit\":2,\"before_id\":\"%s\"}}",
			    next);
		json_array_foreach(json_object_get(result(r), "errors"), i, e) {
			ck_assert_int_lt(json_integer_value(json_object_get(e,
			    "at")), prev_at);
			prev_at = json_integer_value(json_object_get(e, "at"));
			json_object_set(seen, json_string_value(
			    json_object_get(e, "id")), json_true());
		}
		if (json_object_get(result(r), "next") == NULL) {
			json_decref(r);
			break;
		}
		snprintf(next, sizeof(next), "%s", json_string_value(
		    json_object_get(result(r), "next")));
		/* Ids compare in any case, as error.report's do. */
		for (c = next; *c != '\0'; c++)
			*c = (char)toupper((unsigned char)*c);
		json_decref(r);
	}
	ck_assert_uint_eq(pages, 2);
	ck_assert_uint_eq(json_object_size(seen), 5);
	json_decref(seen);

	/* Stats, all time and over a window. */
	r = call_on(fd, "{\"id\":1,\"method\":\"error.stats\"}");
	ck_assert_int_eq(num_at(r, "total", NULL), 5);
	ck_assert_int_eq(num_at(r, "by_category", "NETWORK_ERROR"), 2);
	ck_assert_int_eq(num_at(r, "by_category", "CORRUPTED_DATA"), 0);
	ck_assert_int_eq(num_at(r, "by_operation", "upload"), 3);
	ck_assert_int_eq(num_at(r, "by_severity", "error"), 2);
	ck_assert_int_eq(num_at(r, "by_severity", "info"), 1);
	ck_assert_int_eq(num_at(r, "recoveries", "attempted"), 0);
	ck_assert_int_eq(num_at(r, "recoveries", "rate"), -1);
	json_decref(r);
	r = call_on(fd, "{\"id\":1,\"method\":\"error.stats\","
	    "\"params\":{\"window_ms\":2500}}");
	ck_assert_int_eq(num_at(r, "total", NULL), 2);
	json_decref(r);
	r = call_on(fd, "{\"id\":1,\"method\":\"status\"}");
	ck_assert_int_eq(num_at(r, "errors_total", NULL), 5);
	json_decref(r);
	r = call_on(fd, "{\"id\":1,\"method\":\"metrics.get\"}");
	ck_assert_int_eq(num_at(r, "total_errors", NULL), 5);
	ck_assert_int_eq(num_at(r, "errors_by_category", "NETWORK_ERROR"), 2);
	ck_assert_int_eq(num_at(r, "errors_by_category", "SYSTEM_ERROR"), 0);
	json_decref(r);
	ck_assert_int_eq(ermctl(&d, prom, sizeof(prom), promargs), 0);
	ck_assert_ptr_nonnull(strstr(prom, "# TYPE ermd_errors_total counter"));
	ck_assert_ptr_nonnull(strstr(prom,
	    "ermd_errors_total{category=\"NETWORK_ERROR\"} 2\n"));
	ck_assert_ptr_nonnull(strstr(prom,
	    "ermd_errors_total{category=\"CORRUPTED_DATA\"} 0\n"));

	/* Counters come back after a restart. */
	close(fd);
	ck_assert_int_eq(daemon_stop_keep(&d), 0);
	daemon_restart(&d);
	fd = raw_connect(d.sock);
	r = call_on(fd, "{\"id\":1,\"method\":\"status\"}");
	ck_assert_int_eq(num_at(r, "errors_total", NULL), 5);
	json_decref(r);
	ck_assert_uint_eq(list_count(fd, "{}"), 5);
	close(fd);
}
END_TEST

/*
 * The same id twice: pipelined in one write (the second arrives while the
 * first is still being written) and again after the commit. Every reply
 * carries the first result, and the row and the counters exist once.
 */
START_TEST(same_id_stored_once)
{
	static const char id[] = "0190a000-0000-7000-8000-00000000abcd";
	char	 buf[1024];
	json_t	*r, *a, *b;
	int	 fd, n;
	uint8_t	 frame[2048];
	size_t	 len = 0, blen;

	daemon_start(&d, NULL, NULL);
	fd = raw_connect(d.sock);
	for (n = 0; n < 2; n++) {
		blen = (size_t)snprintf(buf, sizeof(buf), "{\"id\":%d,"
		    "\"method\":\"error.report\",\"params\":{\"operation\":"
		    "\"op%d\",\"id\":\"%s\",\"http_status\":%d}}", n + 10, n,
		    id, n == 0 ? 503 : 404);
		frame[len] = (uint8_t)(blen >> 24);
		frame[len + 1] = (uint8_t)(blen >> 16);
		frame[len + 2] = (uint8_t)(blen >> 8);
		frame[len + 3] = (uint8_t)blen;
		memcpy(frame + len + 4, buf, blen);
		len += 4 + blen;
	}
	raw_send_bytes(fd, frame, len);
	a = raw_recv(fd, 10000);
	b = raw_recv(fd, 10000);
	ck_assert_ptr_nonnull(a);
	ck_assert_ptr_nonnull(b);
	ck_assert(json_equal(result(a), result(b)));
	ck_assert_str_eq(json_string_value(json_object_get(result(a),
	    "category")), "NETWORK_ERROR");
	/* After the commit, and in uppercase: still the first result. */
	r = report(fd, "{\"operation\":\"op2\",\"id\":"
	    "\"0190A000-0000-7000-8000-00000000ABCD\",\"errno\":\"EACCES\"}");
	ck_assert(json_equal(result(r), result(a)));
	json_decref(r);
	json_decref(a);
	json_decref(b);
	ck_assert_uint_eq(list_count(fd, "{}"), 1);
	r = call_on(fd, "{\"id\":1,\"method\":\"status\"}");
	ck_assert_int_eq(num_at(r, "errors_total", NULL), 1);
	json_decref(r);
	close(fd);
}
END_TEST

START_TEST(bad_input_is_refused)
{
	static const struct {
		const char	*method;
		const char	*params;
		int		 code;
		const char	*field;
	} cases[] = {
		{ "error.report", "{}", -32602, "operation" },
		{ "error.report", "{\"operation\":\"x\"}", -32602, "error" },
		{ "error.report", "{\"operation\":\"\",\"errno\":5}", -32602,
		    "operation" },
		{ "error.report", "{\"operation\":5,\"errno\":5}", -32602,
		    "operation" },
		{ "error.report", "{\"operation\":\"x\",\"errno\":5,"
		    "\"oops\":1}", -32602, "oops" },
		{ "error.report", "{\"operation\":\"x\",\"errno\":5,"
		    "\"id\":\"not-a-uuid\"}", -32602, "id" },
		{ "error.report", "{\"operation\":\"x\",\"errno\":5,"
		    "\"severity\":\"fatal\"}", -32602, "severity" },
		{ "error.report", "{\"operation\":\"x\",\"errno\":5,"
		    "\"context\":[1]}", -32602, "context" },
		{ "error.report", "{\"operation\":\"x\",\"errno\":\"EWHAT\"}",
		    -32602, "errno" },
		{ "error.report", "{\"operation\":\"x\",\"http_status\":99}",
		    -32602, "http_status" },
		{ "error.list", "{\"limit\":0}", -32602, "limit" },
		{ "error.list", "{\"limit\":1001}", -32602, "limit" },
		{ "error.list", "{\"category\":\"NETWORK\"}", -32602,
		    "category" },
		{ "error.list", "{\"since\":-1}", -32602, "since" },
		{ "error.list", "{\"before_id\":"
		    "\"0190a000-0000-7000-8000-000000000000\"}", 1001, NULL },
		{ "error.list", "{\"x\":1}", -32602, "x" },
		{ "error.stats", "{\"window_ms\":0}", -32602, "window_ms" },
		{ "error.stats", "{\"window_ms\":\"1\"}", -32602, "window_ms" },
	};
	char	 big[20000 + 200];
	json_t	*r;
	size_t	 i;
	int	 fd;

	daemon_start(&d, NULL, NULL);
	fd = raw_connect(d.sock);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		r = call_on(fd, "{\"id\":1,\"method\":\"%s\",\"params\":%s}",
		    cases[i].method, cases[i].params);
		ck_assert_msg(reply_code(r) == cases[i].code,
		    "%s %s: got %d", cases[i].method, cases[i].params,
		    reply_code(r));
		if (cases[i].field != NULL)
			ck_assert_str_eq(json_string_value(json_object_get(
			    json_object_get(json_object_get(r, "error"),
			    "data"), "field")), cases[i].field);
		json_decref(r);
	}
	/* A context over 16 KiB. */
	snprintf(big, sizeof(big), "{\"id\":1,\"method\":\"error.report\","
	    "\"params\":{\"operation\":\"x\",\"errno\":5,\"context\":"
	    "{\"s\":\"%0*d\"}}}", 17000, 0);
	r = raw_call(fd, big);
	ck_assert_int_eq(reply_code(r), -32602);
	json_decref(r);
	ck_assert_uint_eq(list_count(fd, "{}"), 0);
	close(fd);
	assert_serves(&d);
}
END_TEST

START_TEST(reported_event)
{
	json_t	*r, *frame, *ev;
	int	 sub, fd;

	daemon_start(&d, NULL, NULL);
	sub = raw_connect(d.sock);
	fd = raw_connect(d.sock);
	json_decref(call_on(sub, "{\"id\":1,\"method\":\"events.subscribe\","
	    "\"params\":{\"types\":[\"error.reported\"]}}"));
	r = report(fd, "{\"operation\":\"sync\",\"exception\":"
	    "\"TimeoutError\",\"severity\":\"warning\"}");
	frame = raw_recv(sub, 5000);
	ck_assert_ptr_nonnull(frame);
	ck_assert_str_eq(json_string_value(json_object_get(frame, "method")),
	    "event");
	ev = json_object_get(frame, "params");
	ck_assert_str_eq(json_string_value(json_object_get(ev, "type")),
	    "error.reported");
	ck_assert_str_eq(json_string_value(json_object_get(ev, "id")),
	    json_string_value(json_object_get(result(r), "id")));
	ck_assert_str_eq(json_string_value(json_object_get(ev, "category")),
	    "TIMEOUT_ERROR");
	ck_assert_str_eq(json_string_value(json_object_get(ev, "severity")),
	    "warning");
	json_decref(frame);
	json_decref(r);
	close(sub);
	close(fd);
}
END_TEST

/* Recoveries in error.stats come from the stored ops. */
START_TEST(stats_recoveries_from_ops)
{
	char	 op[64];
	json_t	*r;
	int	 fd, i;

	daemon_start(&d, "[retry]\njitter = none\nbase_delay_ms = 10\n"
	    "max_attempts = 2\n", manual);
	fd = raw_connect(d.sock);
	for (i = 0; i < 3; i++) {
		r = call_on(fd, "{\"id\":1,\"method\":\"op.begin\",\"params\":"
		    "{\"operation\":\"upload\"}}");
		snprintf(op, sizeof(op), "%s", json_string_value(
		    json_object_get(result(r), "op")));
		json_decref(r);
		if (i < 2)
			json_decref(call_on(fd, "{\"id\":2,\"method\":"
			    "\"op.fail\",\"params\":{\"op\":\"%s\",\"error\":"
			    "{\"errno\":\"ECONNREFUSED\"}}}", op));
		if (i == 0)
			json_decref(call_on(fd, "{\"id\":3,\"method\":"
			    "\"op.succeed\",\"params\":{\"op\":\"%s\"}}", op));
		else if (i == 1)
			json_decref(call_on(fd, "{\"id\":3,\"method\":"
			    "\"op.fail\",\"params\":{\"op\":\"%s\",\"error\":"
			    "{\"errno\":\"ECONNREFUSED\"}}}", op));
		else
			json_decref(call_on(fd, "{\"id\":3,\"method\":"
			    "\"op.succeed\",\"params\":{\"op\":\"%s\"}}", op));
	}
	r = call_on(fd, "{\"id\":1,\"method\":\"error.stats\"}");
	ck_assert_int_eq(num_at(r, "recoveries", "attempted"), 2);
	ck_assert_int_eq(num_at(r, "recoveries", "succeeded"), 1);
	ck_assert_int_eq(num_at(r, "recoveries", "failed"), 1);
	ck_assert(json_real_value(json_object_get(json_object_get(result(r),
	    "recoveries"), "rate")) == 50.0);
	json_decref(r);
	close(fd);
}
END_TEST

START_TEST(retention_on_the_daemon_clock)
{
	json_t	*r;
	int	 fd, i;

	daemon_start(&d, "[errors]\nmax_age_ms = 60000\nmax_rows = 5\n"
	    "prune_interval_ms = 1000\n", manual);
	fd = raw_connect(d.sock);
	for (i = 0; i < 8; i++)
		json_decref(report(fd, "{\"operation\":\"x\",\"errno\":5}"));
	ck_assert_uint_eq(list_count(fd, "{}"), 8);
	advance_on(fd, 1000);
	/* The prune is a store job: a report after it commits after it. */
	json_decref(report(fd, "{\"operation\":\"y\",\"errno\":5}"));
	ck_assert_uint_eq(list_count(fd, "{\"operation\":\"x\"}"), 5);
	prune_after(fd, 61000);	/* reports z and w */
	ck_assert_uint_eq(list_count(fd, "{\"operation\":\"x\"}"), 0);
	ck_assert_uint_eq(list_count(fd, "{\"operation\":\"y\"}"), 0);
	ck_assert_uint_eq(list_count(fd, "{}"), 2);
	/* Counters are not lowered by pruning. */
	r = call_on(fd, "{\"id\":1,\"method\":\"status\"}");
	ck_assert_int_eq(num_at(r, "errors_total", NULL), 11);
	json_decref(r);
	close(fd);
}
END_TEST

START_TEST(ermctl_errors_and_stats)
{
	char		 out[16384], path[256];
	const char	*list[] = { "errors", "--since", "1h", "--op", "upload",
	    NULL };
	const char	*js[] = { "--json", "errors", "--category",
	    "FILE_NOT_FOUND", NULL };
	const char	*stats[] = { "stats", "--window", "1d", NULL };
	const char	*bad[] = { "errors", "--since", "soon", NULL };
	const char	*no_window[] = { "stats", "--window", "0", NULL };
	pid_t		 pid;
	static const char *const follow[] = { "errors", "--follow", "--op",
	    "sync", NULL };
	int		 fd, status;

	daemon_start(&d, NULL, NULL);
	fd = raw_connect(d.sock);
	json_decref(report(fd, "{\"operation\":\"upload\",\"errno\":"
	    "\"ECONNRESET\"}"));
	json_decref(report(fd, "{\"operation\":\"fsck\",\"errno\":\"ENOENT\"}"));
	ck_assert_int_eq(ermctl(&d, out, sizeof(out), list), 0);
	ck_assert_ptr_nonnull(strstr(out, "errors.0.operation=upload"));
	ck_assert_ptr_null(strstr(out, "fsck"));
	ck_assert_int_eq(ermctl(&d, out, sizeof(out), js), 0);
	ck_assert_ptr_nonnull(strstr(out, "\"category\":\"FILE_NOT_FOUND\""));
	ck_assert_int_eq(ermctl(&d, out, sizeof(out), stats), 0);
	ck_assert_ptr_nonnull(strstr(out, "total=2"));
	ck_assert_ptr_nonnull(strstr(out, "by_category.NETWORK_ERROR=1"));
	ck_assert_int_eq(ermctl(&d, out, sizeof(out), bad), 2);
	ck_assert_int_eq(ermctl(&d, out, sizeof(out), no_window), 2);

	/* --follow lists, then prints what is reported, until SIGTERM. */
	json_decref(report(fd, "{\"operation\":\"sync\",\"errno\":"
	    "\"ENOENT\"}"));
	snprintf(path, sizeof(path), "%s/follow.out", d.dir);
	pid = ermctl_start(&d, path, follow);
	/* Subscribed once the listing is out (it subscribes first). */
	ck_assert(file_has(path, "errors.0.id=", 5000));
	ck_assert_ptr_nonnull(strstr(read_text(path),
	    "errors.0.category=FILE_NOT_FOUND"));
	json_decref(report(fd, "{\"operation\":\"other\",\"errno\":5}"));
	json_decref(report(fd, "{\"operation\":\"sync\",\"errno\":"
	    "\"ETIMEDOUT\"}"));
	ck_assert(file_has(path, "TIMEOUT_ERROR", 5000));
	kill(pid, SIGTERM);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	ck_assert_ptr_null(strstr(read_text(path), "operation=other"));
	close(fd);
}
END_TEST

/* ---- kill -9 under a stream of reports ---------------------------------- */

#define K9_CYCLES	100
#define K9_CONNS	4
#define K9_PER_CYCLE	400	/* reports sent per cycle, at most */
#define K9_WINDOW	8	/* outstanding per connection */

static uint64_t
now_us(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000);
}

static void
send_report(int fd, int cycle, int n)
{
	char	buf[256], id[40];

	test_uuid(id, sizeof(id), cycle, n);
	snprintf(buf, sizeof(buf), "{\"id\":%d,\"method\":\"error.report\","
	    "\"params\":{\"operation\":\"k9\",\"id\":\"%s\",\"errno\":%d}}",
	    n, id, 1 + n % 100);
	raw_send_frame(fd, buf);
}

/* The ids stored among the newest 1000 (every id of one cycle). */
static json_t *
stored_ids(int fd)
{
	json_t	*r, *ids = json_object(), *e;
	size_t	 i;

	r = call_on(fd, "{\"id\":1,\"method\":\"error.list\",\"params\":"
	    "{\"limit\":1000}}");
	json_array_foreach(json_object_get(result(r), "errors"), i, e)
		json_object_set(ids, json_string_value(json_object_get(e,
		    "id")), json_true());
	json_decref(r);
	return (ids);
}

/*
 * 100 times: four connections stream pipelined reports with known ids,
 * ermd gets SIGKILL at a random moment, and after the restart every id
 * that was acknowledged is stored; at the end the database passes
 * PRAGMA integrity_check.
 */
START_TEST(kill9_durability)
{
	int		 fds[K9_CONNS], out[K9_CONNS], cycle, i, sent, acked;
	int		 total_acked = 0, found;
	json_t		*acks, *ids, *r, *v;
	const char	*key;
	uint64_t	 t0, kill_at;
	char		 db[256], check[256], buf[512];
	const char	*argv[] = { "/usr/bin/python3", "-c", buf, NULL };
	struct pollfd	 pfd[K9_CONNS];

	srandom((unsigned)time(NULL));
	daemon_start(&d, "[store]\ndurability = normal\n", NULL);
	for (cycle = 0; cycle < K9_CYCLES; cycle++) {
		acks = json_object();
		sent = acked = 0;
		for (i = 0; i < K9_CONNS; i++) {
			ck_assert_int_ne(fds[i] = raw_connect(d.sock), -1);
			out[i] = 0;
		}
		t0 = now_us();
		kill_at = t0 + 1000 + (uint64_t)(random() % 30000);
		while (now_us() < kill_at) {
			for (i = 0; i < K9_CONNS; i++) {
				while (out[i] < K9_WINDOW &&
				    sent < K9_PER_CYCLE) {
					send_report(fds[i], cycle, sent++);
					out[i]++;
				}
				pfd[i].fd = fds[i];
				pfd[i].events = POLLIN;
			}
			if (poll(pfd, K9_CONNS, 1) <= 0)
				continue;
			for (i = 0; i < K9_CONNS; i++) {
				if (!(pfd[i].revents & POLLIN))
					continue;
				r = raw_recv(fds[i], 1000);
				if (r == NULL)
					continue;
				out[i]--;
				ck_assert_msg(reply_code(r) == 0,
				    "report failed: %d", reply_code(r));
				v = json_object_get(result(r), "id");
				json_object_set(acks, json_string_value(v),
				    json_true());
				acked++;
				json_decref(r);
			}
		}
		daemon_kill9(&d);
		for (i = 0; i < K9_CONNS; i++)
			close(fds[i]);
		daemon_restart(&d);
		fds[0] = raw_connect(d.sock);
		ids = stored_ids(fds[0]);
		found = 0;
		json_object_foreach(acks, key, v) {
			ck_assert_msg(json_object_get(ids, key) != NULL,
			    "cycle %d: acknowledged %s is missing", cycle,
			    key);
			found++;
		}
		ck_assert_int_eq(found, acked);
		total_acked += acked;
		json_decref(ids);
		json_decref(acks);
		close(fds[0]);
	}
	fprintf(stderr, "kill9_durability: %d cycles, %d acknowledged "
	    "reports, none lost\n", K9_CYCLES, total_acked);
	ck_assert_int_gt(total_acked, K9_CYCLES);
	ck_assert_int_eq(daemon_stop_keep(&d), 0);
	snprintf(db, sizeof(db), "%s/ermd.db", d.state);
	snprintf(buf, sizeof(buf), "import sqlite3; c = sqlite3.connect('%s');"
	    " print(c.execute('PRAGMA integrity_check').fetchone()[0])", db);
	ck_assert_int_eq(run_prog(check, sizeof(check), argv), 0);
	ck_assert_str_eq(check, "ok\n");
	snprintf(buf, sizeof(buf), "rm -rf %s", d.dir);
	ck_assert_int_eq(system(buf), 0);
}
END_TEST

/* ---- ENOSPC ------------------------------------------------------------- */

/*
 * The state directory on a 2 MiB tmpfs, filled up: reports fail with
 * 1006 ENOSPC, list, stats, status and ping keep working, nothing
 * half-stored shows up, and reports work again once space returns.
 */
START_TEST(enospc_on_the_state_dir)
{
	char	 filler[300], ctx[8300], buf[9000];
	json_t	*r, *data;
	int	 fd, i, refused = 0;
	size_t	 before;

	daemon_prepare(&d);
	ck_assert_int_eq(mkdir(d.state, 0700), 0);
	if (mount_small_tmpfs(d.state, "2m") == -1)
		return;
	daemon_start_env(&d, NULL, NULL, NULL, -1);
	fd = raw_connect(d.sock);
	json_decref(report(fd, "{\"operation\":\"a\",\"errno\":5}"));
	fill_up(d.state);
	memset(ctx, 'x', 8000);
	ctx[8000] = '\0';
	/* The WAL may still have room for a few; then it fails. */
	for (i = 0; i < 200 && !refused; i++) {
		snprintf(buf, sizeof(buf), "{\"id\":1,\"method\":"
		    "\"error.report\",\"params\":{\"operation\":\"full\","
		    "\"errno\":28,\"context\":{\"pad\":\"%s\"}}}", ctx);
		r = call_on(fd, "%s", buf);
		if (reply_code(r) != 0) {
			ck_assert_int_eq(reply_code(r), 1006);
			data = json_object_get(json_object_get(r, "error"),
			    "data");
			ck_assert_str_eq(json_string_value(json_object_get(data,
			    "errno")), "ENOSPC");
			ck_assert(json_is_string(json_object_get(data,
			    "path")));
			refused = 1;
		}
		json_decref(r);
	}
	ck_assert_msg(refused, "no report was refused on a full disk");
	before = list_count(fd, "{\"limit\":1000}");
	ck_assert_uint_ge(before, 1);
	r = call_on(fd, "{\"id\":1,\"method\":\"error.stats\"}");
	ck_assert_int_eq(num_at(r, "total", NULL), (json_int_t)before);
	json_decref(r);
	r = call_on(fd, "{\"id\":1,\"method\":\"status\"}");
	ck_assert(json_is_true(json_object_get(json_object_get(result(r),
	    "store"), "ok")));
	json_decref(r);
	assert_serves(&d);

	/* Space returns: so does service. */
	snprintf(filler, sizeof(filler), "%s/filler", d.state);
	ck_assert_int_eq(unlink(filler), 0);
	r = report(fd, "{\"operation\":\"after\",\"errno\":5}");
	ck_assert_int_eq(reply_code(r), 0);
	json_decref(r);
	ck_assert_uint_eq(list_count(fd, "{\"operation\":\"after\"}"), 1);
	close(fd);
	assert_serves(&d);
	daemon_stop_unmount(&d);
}
END_TEST

/*
 * Finished ops go with the errors, by [errors] max_age_ms: the table no
 * longer holds them, error.stats no longer counts them and after a
 * restart op.get no longer finds them, but the recovery counters keep
 * them, across the restart too.
 */
START_TEST(finished_ops_pruned_with_the_errors)
{
	static const char *const outcome[3][2] = {
		{ "op.fail", "op.succeed" },	/* recovered */
		{ "op.fail", "op.fail" },	/* failed after a retry */
		{ "op.succeed", NULL },		/* never failed */
	};
	char	 ops[3][64];
	json_t	*r;
	int	 fd, i, j, fail;

	daemon_start(&d, "[errors]\nmax_age_ms = 60000\n"
	    "prune_interval_ms = 1000\n[retry]\njitter = none\n"
	    "base_delay_ms = 10\nmax_attempts = 2\n", manual);
	fd = raw_connect(d.sock);
	for (i = 0; i < 3; i++) {
		r = call_on(fd, "{\"id\":1,\"method\":\"op.begin\",\"params\":"
		    "{\"operation\":\"upload\"}}");
		snprintf(ops[i], sizeof(ops[i]), "%s", json_string_value(
		    json_object_get(result(r), "op")));
		json_decref(r);
		for (j = 0; j < 2 && outcome[i][j] != NULL; j++) {
			fail = strcmp(outcome[i][j], "op.fail") == 0;
			r = call_on(fd, "{\"id\":2,\"method\":\"%s\","
			    "\"params\":{\"op\":\"%s\"%s}}", outcome[i][j],
			    ops[i], fail ? ",\"error\":{\"errno\":"
			    "\"ECONNREFUSED\"}" : "");
			result(r);
			json_decref(r);
		}
	}
	r = call_on(fd, "{\"id\":1,\"method\":\"error.stats\"}");
	ck_assert_int_eq(num_at(r, "recoveries", "attempted"), 2);
	json_decref(r);
	ck_assert_int_eq(db_int(&d, "SELECT count(*) FROM ops"), 3);

	prune_after(fd, 61000);
	ck_assert_int_eq(db_int(&d, "SELECT count(*) FROM ops"), 0);
	ck_assert_int_eq(db_int(&d, "SELECT recovered FROM ops_pruned"), 1);
	ck_assert_int_eq(db_int(&d, "SELECT failed FROM ops_pruned"), 1);
	r = call_on(fd, "{\"id\":1,\"method\":\"error.stats\"}");
	ck_assert_int_eq(num_at(r, "recoveries", "attempted"), 0);
	json_decref(r);
	close(fd);

	/* op.get finds the most recent in memory; a restart forgets them. */
	ck_assert_int_eq(daemon_stop_keep(&d), 0);
	daemon_restart(&d);
	fd = raw_connect(d.sock);
	for (i = 0; i < 3; i++) {
		r = call_on(fd, "{\"id\":1,\"method\":\"op.get\","
		    "\"params\":{\"op\":\"%s\"}}", ops[i]);
		ck_assert_int_eq(reply_code(r), 1001);
		json_decref(r);
	}
	r = call_on(fd, "{\"id\":1,\"method\":\"metrics.get\"}");
	ck_assert_int_eq(num_at(r, "successful_recoveries", NULL), 1);
	ck_assert_int_eq(num_at(r, "failed_recoveries", NULL), 1);
	json_decref(r);
	close(fd);
	assert_serves(&d);
}
END_TEST

/*
 * error.list is read off the loop: a filter that no row matches walks all
 * of 300,000 rows (written straight into the stopped daemon's database),
 * and a ping sent right behind it on the same connection is answered
 * first. Then the list answers, empty and whole.
 */
START_TEST(long_list_does_not_hold_the_loop)
{
	char		 path[300], id[40];
	sqlite3		*db;
	sqlite3_stmt	*st;
	json_t		*r;
	int		 fd, i;

	daemon_start(&d, NULL, NULL);
	ck_assert_int_eq(daemon_stop_keep(&d), 0);
	snprintf(path, sizeof(path), "%s/ermd.db", d.state);
	ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
	ck_assert_int_eq(sqlite3_exec(db, "BEGIN", NULL, NULL, NULL),
	    SQLITE_OK);
	ck_assert_int_eq(sqlite3_prepare_v2(db, "INSERT INTO errors (id, at, "
	    "operation, category, strategy, matched, severity, message, "
	    "error) VALUES (?, ?, 'bulk', 'NETWORK_ERROR', 'RETRY', "
	    "'errno ECONNRESET', 'error', 'reset', '{}')", -1, &st, NULL),
	    SQLITE_OK);
	for (i = 0; i < 300000; i++) {
		snprintf(id, sizeof(id), "00000000-0000-7000-8000-%012d", i);
		sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, 1000 + i);
		ck_assert_int_eq(sqlite3_step(st), SQLITE_DONE);
		sqlite3_reset(st);
	}
	sqlite3_finalize(st);
	ck_assert_int_eq(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL),
	    SQLITE_OK);
	sqlite3_close(db);
	daemon_restart(&d);

	fd = raw_connect(d.sock);
	ck_assert_int_ge(fd, 0);
	raw_send_frame(fd, "{\"id\":1,\"method\":\"error.list\","
	    "\"params\":{\"category\":\"PERMISSION_ERROR\"}}");
	raw_send_frame(fd, "{\"id\":2,\"method\":\"ping\"}");
	r = raw_recv(fd, 30000);
	ck_assert_ptr_nonnull(r);
	ck_assert_int_eq(json_integer_value(json_object_get(r, "id")), 2);
	json_decref(r);
	r = raw_recv(fd, 30000);
	ck_assert_ptr_nonnull(r);
	ck_assert_int_eq(json_integer_value(json_object_get(r, "id")), 1);
	ck_assert_uint_eq(json_array_size(json_object_get(result(r),
	    "errors")), 0);
	ck_assert_ptr_null(json_object_get(result(r), "next"));
	json_decref(r);
	ck_assert_uint_eq(list_count(fd, "{\"operation\":\"bulk\","
	    "\"limit\":1000}"), 1000);
	close(fd);
	assert_serves(&d);
}
END_TEST

int
main(void)
{
	Suite	*s = suite_create("errors");
	TCase	*tc = tcase_create("errors");
	SRunner	*sr;
	int	 failed;

	tcase_set_timeout(tc, 180);
	tcase_add_checked_fixture(tc, NULL, stop);
	tcase_add_test(tc, report_list_stats);
	tcase_add_test(tc, same_id_stored_once);
	tcase_add_test(tc, bad_input_is_refused);
	tcase_add_test(tc, reported_event);
	tcase_add_test(tc, stats_recoveries_from_ops);
	tcase_add_test(tc, retention_on_the_daemon_clock);
	tcase_add_test(tc, ermctl_errors_and_stats);
	tcase_add_test(tc, kill9_durability);
	tcase_add_test(tc, enospc_on_the_state_dir);
	tcase_add_test(tc, long_list_does_not_hold_the_loop);
	tcase_add_test(tc, finished_ops_pruned_with_the_errors);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return (failed ? 1 : 0);
}
