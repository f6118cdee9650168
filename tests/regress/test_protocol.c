/*
 * The wire protocol against a real ermd: every envelope error with its code
 * (each followed by a ping that still works), framing limits, pipelining,
 * the connection limit, slow and non-reading clients, signals.
 */

#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <check.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

static struct daemon	d;

static void
start_plain(void)
{
	daemon_start(&d, NULL, NULL);
}

static void
start_manual(void)
{
	static const char *const args[] = { "--manual-clock", NULL };

	daemon_start(&d, NULL, args);
}

static void
stop(void)
{
	ck_assert_int_eq(daemon_stop(&d), 0);
}

/* Send one frame, expect an error with code (and id) on the same
 * connection, then a ping on that same connection still works. */
static json_t *
expect_error_then_ping(const char *frame, int code, const char *id_json)
{
	int	 fd = raw_connect(d.sock);
	json_t	*r, *id, *p;

	ck_assert_int_ne(fd, -1);
	raw_send_frame(fd, frame);
	r = raw_recv(fd, 5000);
	ck_assert_msg(r != NULL, "no reply to %s", frame);
	ck_assert_int_eq(reply_code(r), code);
	id = json_object_get(r, "id");
	if (id_json == NULL)
		ck_assert_msg(json_is_null(id), "id should be null for %s",
		    frame);
	else {
		json_t	*want = json_loads(id_json, JSON_DECODE_ANY, NULL);

		ck_assert_msg(json_equal(id, want), "id mismatch for %s",
		    frame);
		json_decref(want);
	}
	ck_assert_ptr_nonnull(json_object_get(json_object_get(r, "error"),
	    "message"));
	p = raw_call(fd, "{\"id\":99,\"method\":\"ping\"}");
	ck_assert_ptr_nonnull(p);
	ck_assert_int_eq(reply_code(p), 0);
	json_decref(p);
	close(fd);
	return (r);
}

static const char *
err_data_str(const json_t *r, const char *key)
{
	return (json_string_value(json_object_get(json_object_get(
	    json_object_get(r, "error"), "data"), key)));
}

START_TEST(envelope_errors_keep_the_connection)
{
	json_t	*r;

	json_decref(expect_error_then_ping("{\"id\":1,", -32700, NULL));
	json_decref(expect_error_then_ping("not json at all", -32700, NULL));
	json_decref(expect_error_then_ping(
	    "{\"id\":1,\"method\":\"p\xc3\x28\"}", -32700, NULL));
	json_decref(expect_error_then_ping(
	    "{\"id\":1,\"method\":\"ping\",\"method\":\"status\"}", -32700,
	    NULL));
	json_decref(expect_error_then_ping("[1,2,3]", -32600, NULL));
	json_decref(expect_error_then_ping("42", -32600, NULL));
	json_decref(expect_error_then_ping("{\"method\":\"ping\"}", -32600,
	    NULL));
	json_decref(expect_error_then_ping("{\"id\":1.5,\"method\":\"ping\"}",
	    -32600, NULL));
	json_decref(expect_error_then_ping("{\"id\":7}", -32600, "7"));
	json_decref(expect_error_then_ping("{\"id\":\"a\",\"method\":3}",
	    -32600, "\"a\""));
	json_decref(expect_error_then_ping(
	    "{\"id\":8,\"method\":\"ping\",\"params\":[]}", -32600, "8"));
	json_decref(expect_error_then_ping(
	    "{\"id\":8,\"method\":\"ping\",\"params\":null}", -32600, "8"));
	r = expect_error_then_ping("{\"id\":9,\"method\":\"no.such\"}", -32601,
	    "9");
	ck_assert_str_eq(err_data_str(r, "method"), "no.such");
	json_decref(r);
	r = expect_error_then_ping(
	    "{\"id\":10,\"method\":\"ping\",\"params\":{\"bogus\":1}}", -32602,
	    "10");
	ck_assert_str_eq(err_data_str(r, "field"), "bogus");
	ck_assert_str_eq(err_data_str(r, "reason"), "unknown member");
	json_decref(r);
	r = expect_error_then_ping(
	    "{\"id\":11,\"method\":\"hello\",\"params\":{\"protocol\":2}}",
	    -32602, "11");
	ck_assert_str_eq(err_data_str(r, "field"), "protocol");
	json_decref(r);
	/* 33 levels of nesting: refused before parsing. */
	json_decref(expect_error_then_ping("{\"id\":12,\"method\":\"ping\","
	    "\"params\":{\"a\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]"
	    "]]]]]]]]]]]]]]]}}", -32700, NULL));
	/* debug.advance does not exist without --manual-clock. */
	json_decref(expect_error_then_ping(
	    "{\"id\":13,\"method\":\"debug.advance\",\"params\":{\"ms\":1}}",
	    -32601, "13"));
	assert_serves(&d);
}
END_TEST

START_TEST(hello_and_ping)
{
	int	 fd = raw_connect(d.sock);
	json_t	*r, *res;

	r = raw_call(fd, "{\"jsonrpc\":\"2.0\",\"id\":\"h\",\"method\":\"hello\","
	    "\"params\":{\"client\":\"regress\",\"protocol\":1}}");
	res = json_object_get(r, "result");
	ck_assert_str_eq(json_string_value(json_object_get(res, "server")),
	    "ermd");
	ck_assert_int_eq(json_integer_value(json_object_get(res, "protocol")),
	    1);
	ck_assert_int_eq(json_integer_value(json_object_get(res,
	    "max_frame")), 1048576);
	{
		json_t	*ms = json_object_get(res, "methods"), *v;
		size_t	 i;
		int	 ping = 0, debug = 0;

		json_array_foreach(ms, i, v) {
			ping += strcmp(json_string_value(v), "ping") == 0;
			debug += strcmp(json_string_value(v),
			    "debug.advance") == 0;
		}
		ck_assert_int_eq(ping, 1);
		ck_assert_int_eq(debug, 0);	/* not without --manual-clock */
	}
	json_decref(r);
	r = raw_call(fd, "{\"id\":1,\"method\":\"ping\"}");
	ck_assert(json_is_true(json_object_get(json_object_get(r, "result"),
	    "pong")));
	json_decref(r);
	close(fd);
}
END_TEST

static void
send_header(int fd, uint32_t n)
{
	unsigned char	h[4] = { (unsigned char)(n >> 24),
	    (unsigned char)(n >> 16), (unsigned char)(n >> 8),
	    (unsigned char)n };

	raw_send_bytes(fd, h, 4);
}

START_TEST(oversized_and_zero_frames_close)
{
	int	 fd;
	json_t	*r;

	/* max_frame + 1: refused from the header alone, no body sent. */
	fd = raw_connect(d.sock);
	send_header(fd, 1048577);
	r = raw_recv(fd, 5000);
	ck_assert_ptr_nonnull(r);
	ck_assert_int_eq(reply_code(r), 1005);
	ck_assert(json_is_null(json_object_get(r, "id")));
	ck_assert_str_eq(err_data_str(r, "limit"), "max_frame");
	ck_assert_int_eq(raw_closed(fd, 5000), 1);
	json_decref(r);
	close(fd);

	fd = raw_connect(d.sock);
	send_header(fd, 0xffffffffu);
	r = raw_recv(fd, 5000);
	ck_assert_int_eq(reply_code(r), 1005);
	ck_assert_int_eq(raw_closed(fd, 5000), 1);
	json_decref(r);
	close(fd);

	fd = raw_connect(d.sock);
	send_header(fd, 0);
	r = raw_recv(fd, 5000);
	ck_assert_int_eq(reply_code(r), 1005);
	ck_assert(json_is_null(json_object_get(r, "id")));
	ck_assert_int_eq(raw_closed(fd, 5000), 1);
	json_decref(r);
	close(fd);

	/* Exactly max_frame is fine (padding spaces inside the object). */
	{
		size_t	 n = 1048576;
		char	*big = malloc(n + 1);
		const char *head = "{\"id\":5,\"method\":\"ping\"";

		memset(big, ' ', n);
		memcpy(big, head, strlen(head));
		big[n - 1] = '}';
		big[n] = '\0';
		fd = raw_connect(d.sock);
		raw_send_frame(fd, big);
		r = raw_recv(fd, 5000);
		ck_assert_int_eq(reply_code(r), 0);
		json_decref(r);
		close(fd);
		free(big);
	}
	assert_serves(&d);
}
END_TEST

START_TEST(byte_at_a_time)
{
	const char	*req = "{\"id\":42,\"method\":\"ping\"}";
	unsigned char	 frame[64];
	size_t		 len = strlen(req), i;
	int		 fd = raw_connect(d.sock);
	json_t		*r;

	frame[0] = 0;
	frame[1] = 0;
	frame[2] = 0;
	frame[3] = (unsigned char)len;
	memcpy(frame + 4, req, len);
	for (i = 0; i < len + 4; i++) {
		raw_send_bytes(fd, frame + i, 1);
		usleep(1000);
	}
	r = raw_recv(fd, 5000);
	ck_assert_int_eq(json_integer_value(json_object_get(r, "id")), 42);
	ck_assert_int_eq(reply_code(r), 0);
	json_decref(r);
	close(fd);
}
END_TEST

START_TEST(pipelined_200)
{
	char	 buf[200 * 64], req[64];
	size_t	 off = 0, len;
	int	 fd = raw_connect(d.sock), i, seen[200];
	json_t	*r;

	for (i = 0; i < 200; i++) {
		len = (size_t)snprintf(req, sizeof(req),
		    "{\"id\":%d,\"method\":\"%s\"}", i, i % 2 ? "ping" :
		    "status");
		buf[off++] = 0;
		buf[off++] = 0;
		buf[off++] = 0;
		buf[off++] = (char)len;
		memcpy(buf + off, req, len);
		off += len;
	}
	raw_send_bytes(fd, buf, off);	/* one write: 200 requests */
	memset(seen, 0, sizeof(seen));
	for (i = 0; i < 200; i++) {
		r = raw_recv(fd, 5000);
		ck_assert_ptr_nonnull(r);
		ck_assert_int_eq(reply_code(r), 0);
		seen[json_integer_value(json_object_get(r, "id"))]++;
		json_decref(r);
	}
	for (i = 0; i < 200; i++)
		ck_assert_int_eq(seen[i], 1);
	close(fd);
}
END_TEST

START_TEST(connection_limit)
{
	static int	fds[1100];
	struct rlimit	rl;
	int		i, extra;
	json_t		*r;

	getrlimit(RLIMIT_NOFILE, &rl);
	rl.rlim_cur = rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);
	ck_assert_uint_ge(rl.rlim_cur, 1100);
	for (i = 0; i < 1024; i++) {
		fds[i] = raw_connect(d.sock);
		ck_assert_int_ne(fds[i], -1);
	}
	/* Each of the 1024 is served (the accept queue has been drained). */
	r = raw_call(fds[1023], "{\"id\":1,\"method\":\"status\"}");
	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(r,
	    "result"), "connections")), 1024);
	json_decref(r);
	extra = raw_connect(d.sock);
	ck_assert_int_ne(extra, -1);
	r = raw_recv(extra, 5000);
	ck_assert_ptr_nonnull(r);
	ck_assert_int_eq(reply_code(r), 1005);
	ck_assert_str_eq(err_data_str(r, "limit"), "max_connections");
	ck_assert_int_eq(raw_closed(extra, 5000), 1);
	json_decref(r);
	close(extra);
	for (i = 0; i < 1024; i++)
		close(fds[i]);
	/* The slots come back. */
	for (i = 0; i < 50; i++) {
		int	fd = raw_connect(d.sock);

		r = raw_call(fd, "{\"id\":1,\"method\":\"status\"}");
		close(fd);
		if (r != NULL && reply_code(r) == 0 &&
		    json_integer_value(json_object_get(json_object_get(r,
		    "result"), "connections")) == 1) {
			json_decref(r);
			break;
		}
		json_decref(r);
		usleep(20000);
	}
	ck_assert_int_lt(i, 50);
	assert_serves(&d);
}
END_TEST

/* A partial frame older than read_timeout_ms closes the connection; time
 * moves with the manual clock. */
START_TEST(slowloris_partial_frame)
{
	int	 slow = raw_connect(d.sock), ctl = raw_connect(d.sock);
	json_t	*r;

	raw_send_bytes(slow, "\0\0\0\x20{\"id\":1,", 12);
	r = raw_call(ctl, "{\"id\":1,\"method\":\"debug.advance\","
	    "\"params\":{\"ms\":9999}}");
	ck_assert_int_eq(reply_code(r), 0);
	json_decref(r);
	/* More bytes of the same frame do not reset the deadline. */
	raw_send_bytes(slow, "\"method", 7);
	usleep(50000);
	r = raw_call(ctl, "{\"id\":2,\"method\":\"debug.advance\","
	    "\"params\":{\"ms\":1}}");
	json_decref(r);
	r = raw_recv(slow, 5000);
	ck_assert_ptr_nonnull(r);
	ck_assert_int_eq(reply_code(r), 1009);
	ck_assert(json_is_null(json_object_get(r, "id")));
	ck_assert_int_eq(raw_closed(slow, 5000), 1);
	json_decref(r);
	close(slow);
	close(ctl);
	assert_serves(&d);
}
END_TEST

/* A client that sends but never reads is cut off at max_output_bytes;
 * others are not disturbed. */
START_TEST(client_that_never_reads)
{
	char	 buf[100 * 64];
	size_t	 off = 0, len;
	int	 fd = raw_connect(d.sock), i, rounds, closed = 0;
	int	 sz = 4096;

	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
	for (i = 0; i < 100; i++) {
		char	req[64];

		len = (size_t)snprintf(req, sizeof(req),
		    "{\"id\":%d,\"method\":\"metrics.prometheus\"}", i);
		buf[off++] = 0;
		buf[off++] = 0;
		buf[off++] = 0;
		buf[off++] = (char)len;
		memcpy(buf + off, req, len);
		off += len;
	}
	/* 30 s at most: a slow (sanitized) daemon takes longer to fill its
	 * output past the bound than a plain one, and time is no part of it. */
	for (rounds = 0; rounds < 6000 && !closed; rounds++) {
		if (send(fd, buf, off, MSG_NOSIGNAL | MSG_DONTWAIT) == -1 &&
		    errno != EAGAIN)
			closed = 1;
		usleep(5000);
	}
	ck_assert_msg(closed, "ermd kept a non-reading client open");
	close(fd);
	assert_serves(&d);
}
END_TEST

START_TEST(sigterm_exits_zero)
{
	ck_assert_int_eq(daemon_stop(&d), 0);
	ck_assert_int_eq(access(d.sock, F_OK), -1);
	start_plain();	/* teardown stops it again */
}
END_TEST

START_TEST(second_ermd_refused_and_stale_socket_removed)
{
	char		 out[4096];
	const char	*argv[] = { ermd_path(), "-f", "-S", d.sock, "-D",
	    d.state, NULL };

	ck_assert_int_eq(run_prog(out, sizeof(out), argv), 1);
	assert_serves(&d);
	/* A stale socket file (ermd killed) is replaced on the next start. */
	daemon_kill9(&d);
	ck_assert_int_eq(access(d.sock, F_OK), 0);
	ck_assert_int_eq(raw_connect(d.sock), -1);
	daemon_restart(&d);
	assert_serves(&d);
}
END_TEST

START_TEST(refuses_to_replace_a_non_socket)
{
	char		 path[160], out[4096];
	const char	*argv[] = { ermd_path(), "-f", "-S", path, "-D",
	    d.state, NULL };
	FILE		*fp;

	snprintf(path, sizeof(path), "%s/not-a-socket", d.dir);
	fp = fopen(path, "w");
	fputs("precious", fp);
	fclose(fp);
	ck_assert_int_eq(run_prog(out, sizeof(out), argv), 1);
	fp = fopen(path, "r");
	ck_assert(fgets(out, sizeof(out), fp) != NULL);
	fclose(fp);
	ck_assert_str_eq(out, "precious");
}
END_TEST

/*
 * A frame that arrived in two reads armed the read deadline; once whole it
 * must not be cut off by its own handler moving the clock past it.
 */
START_TEST(split_frame_that_advances_the_clock)
{
	const char	*req = "{\"id\":9,\"method\":\"debug.advance\","
	    "\"params\":{\"ms\":20000}}";
	unsigned char	 hdr[4] = { 0, 0, 0, 0 };
	size_t		 len = strlen(req);
	int		 fd = raw_connect(d.sock);
	json_t		*r;

	hdr[3] = (unsigned char)len;
	raw_send_bytes(fd, hdr, 4);
	raw_send_bytes(fd, req, 10);
	usleep(50000);		/* the daemon reads the partial frame */
	raw_send_bytes(fd, req + 10, len - 10);
	r = raw_recv(fd, 5000);
	ck_assert_ptr_nonnull(r);
	ck_assert_int_eq(reply_code(r), 0);
	json_decref(r);
	r = raw_call(fd, "{\"id\":10,\"method\":\"ping\"}");
	ck_assert_int_eq(reply_code(r), 0);
	json_decref(r);
	close(fd);
}
END_TEST

/*
 * A request that waits does not hold up the ones behind it on the same
 * connection: the replies come back out of order, each with its id.
 */
START_TEST(slow_request_does_not_block_the_connection)
{
	int	 fd = raw_connect(d.sock), ctl = raw_connect(d.sock);
	json_t	*r;

	r = raw_call(ctl, "{\"id\":1,\"method\":\"breaker.force\","
	    "\"params\":{\"name\":\"slow\",\"state\":\"forced_open\"}}");
	ck_assert_int_eq(reply_code(r), 0);
	json_decref(r);
	raw_send_frame(fd, "{\"id\":\"waits\",\"method\":"
	    "\"breaker.acquire\",\"params\":{\"name\":\"slow\","
	    "\"wait_ms\":60000}}");
	raw_send_frame(fd, "{\"id\":\"quick\",\"method\":\"ping\"}");
	r = raw_recv(fd, 5000);
	ck_assert_ptr_nonnull(r);
	ck_assert_str_eq(json_string_value(json_object_get(r, "id")), "quick");
	json_decref(r);
	/* The waiting one ends at its deadline, with its own id. */
	r = raw_call(ctl, "{\"id\":2,\"method\":\"debug.advance\","
	    "\"params\":{\"ms\":60000}}");
	json_decref(r);
	r = raw_recv(fd, 5000);
	ck_assert_ptr_nonnull(r);
	ck_assert_str_eq(json_string_value(json_object_get(r, "id")), "waits");
	ck_assert_int_eq(reply_code(r), 1004);
	json_decref(r);
	close(fd);
	close(ctl);
}
END_TEST

static void
start_limited(void)
{
	static const char *const args[] = { "--manual-clock", NULL };

	daemon_start(&d, "[daemon]\nmax_inflight = 4\nread_timeout_ms = 100\n",
	    args);
}

/*
 * Past [daemon] max_inflight unanswered requests, a connection is not
 * read: a client that pipelines waits without end holds a bounded amount
 * of memory. The frames behind wait in the buffer, untouched by
 * read_timeout_ms, and are handled once answers go out.
 */
START_TEST(unanswered_requests_are_bounded)
{
	int	 fd = raw_connect(d.sock), ctl = raw_connect(d.sock), i;
	json_t	*r;
	char	 req[160];

	r = raw_call(ctl, "{\"id\":1,\"method\":\"breaker.force\","
	    "\"params\":{\"name\":\"slow\",\"state\":\"forced_open\"}}");
	ck_assert_int_eq(reply_code(r), 0);
	json_decref(r);
	for (i = 0; i < 4; i++) {
		snprintf(req, sizeof(req), "{\"id\":%d,\"method\":"
		    "\"breaker.acquire\",\"params\":{\"name\":\"slow\","
		    "\"wait_ms\":60000}}", i);
		raw_send_frame(fd, req);
	}
	raw_send_frame(fd, "{\"id\":\"behind\",\"method\":\"ping\"}");
	ck_assert_ptr_null(r = raw_recv(fd, 300));
	/* Past read_timeout_ms, the connection is still there. */
	r = raw_call(ctl, "{\"id\":2,\"method\":\"debug.advance\","
	    "\"params\":{\"ms\":1000}}");
	json_decref(r);
	ck_assert_ptr_null(r = raw_recv(fd, 300));
	/* The waits end at their deadline; then the ping is read. */
	r = raw_call(ctl, "{\"id\":3,\"method\":\"debug.advance\","
	    "\"params\":{\"ms\":60000}}");
	json_decref(r);
	for (i = 0; i < 4; i++) {
		ck_assert_ptr_nonnull(r = raw_recv(fd, 5000));
		ck_assert_int_eq(reply_code(r), 1004);
		json_decref(r);
	}
	ck_assert_ptr_nonnull(r = raw_recv(fd, 5000));
	ck_assert_str_eq(json_string_value(json_object_get(r, "id")),
	    "behind");
	ck_assert(json_is_true(json_object_get(json_object_get(r, "result"),
	    "pong")));
	json_decref(r);
	close(fd);
	close(ctl);
	assert_serves(&d);
}
END_TEST

int
main(void)
{
	Suite	*s = suite_create("protocol");
	TCase	*tc = tcase_create("plain"), *tm = tcase_create("manual");
	SRunner	*sr;
	int	 failed;

	tcase_set_timeout(tc, 120);
	tcase_add_checked_fixture(tc, start_plain, stop);
	tcase_add_test(tc, envelope_errors_keep_the_connection);
	tcase_add_test(tc, hello_and_ping);
	tcase_add_test(tc, oversized_and_zero_frames_close);
	tcase_add_test(tc, byte_at_a_time);
	tcase_add_test(tc, pipelined_200);
	tcase_add_test(tc, connection_limit);
	tcase_add_test(tc, client_that_never_reads);
	tcase_add_test(tc, sigterm_exits_zero);
	tcase_add_test(tc, second_ermd_refused_and_stale_socket_removed);
	tcase_add_test(tc, refuses_to_replace_a_non_socket);
	suite_add_tcase(s, tc);
	tcase_set_timeout(tm, 60);
	tcase_add_checked_fixture(tm, start_manual, stop);
	tcase_add_test(tm, slowloris_partial_frame);
	tcase_add_test(tm, split_frame_that_advances_the_clock);
	tcase_add_test(tm, slow_request_does_not_block_the_connection);
	suite_add_tcase(s, tm);
	tm = tcase_create("limited");
	tcase_set_timeout(tm, 60);
	tcase_add_checked_fixture(tm, start_limited, stop);
	tcase_add_test(tm, unanswered_requests_are_bounded);
	suite_add_tcase(s, tm);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return (failed ? 1 : 0);
}
