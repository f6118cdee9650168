/*
 * The metrics of issue 4 as Prometheus sees them: the HTTP listener
 * ([metrics] listen, off by default; GET /metrics only; bounded), and the
 * exposition text checked by `promtool check metrics` (Debian's
 * prometheus package; make check unpacks promtool into build/ and passes
 * $PROMTOOL) with every family of BEHAVIOUR.md section 9 that exists so
 * far, series at zero before anything happened.
 */

#include <sys/socket.h>
#include <sys/wait.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

static struct daemon	d;

static void
stop(void)
{
	if (d.pid > 0)
		ck_assert_int_eq(daemon_stop(&d), 0);
}

/* Send req, read the whole answer (the server closes); returns its size. */
static size_t
http(int port, const char *req, char *out, size_t outsz)
{
	size_t	len = 0;
	ssize_t	n;
	int	fd;

	out[0] = '\0';
	if ((fd = tcp_connect(port)) == -1)
		return (0);
	ck_assert_int_eq(write(fd, req, strlen(req)), (ssize_t)strlen(req));
	while (len + 1 < outsz && (n = read(fd, out + len,
	    outsz - 1 - len)) > 0)
		len += (size_t)n;
	out[len] = '\0';
	close(fd);
	return (len);
}

static const char *const families[] = {
	"ermd_errors_total", "ermd_recoveries_total", "ermd_breaker_state",
	"ermd_breaker_transitions_total", "ermd_breaker_not_permitted_total",
	"ermd_retry_decisions_total", "ermd_requests_total",
	"ermd_request_duration_seconds", "ermd_backups_total",
	"ermd_backup_bytes", "ermd_storage_backend_healthy",
	"ermd_outbox_backlog", "ermd_forwarded_total",
	"ermd_forward_failures_total", "ermd_connections",
	"ermd_forward_dropped_total", "ermd_alerts_total", "ermd_workflows",
	"ermd_workflow_transitions_total", NULL
};

START_TEST(listener_and_promtool)
{
	static char	 out[1 << 20], big[10000];
	char		 conf[256], req[128], path[300], cmd[1024];
	const char	*promtool = getenv("PROMTOOL"), *body;
	int		 port = free_port(), fds[20], i, n, fd, open_after;
	int		 tries;
	FILE		*fp;
	json_t		*r;

	snprintf(conf, sizeof(conf), "[metrics]\nlisten = 127.0.0.1:%d\n"
	    "[breaker.s3]\nfailure_threshold = 5\n", port);
	daemon_start(&d, conf, NULL);
	fd = raw_connect(d.sock);
	r = raw_call(fd, "{\"id\":1,\"method\":\"error.report\",\"params\":"
	    "{\"operation\":\"x\",\"errno\":\"ECONNRESET\"}}");
	ck_assert_int_eq(reply_code(r), 0);
	json_decref(r);
	r = raw_call(fd, "{\"id\":1,\"method\":\"breaker.record\",\"params\":"
	    "{\"name\":\"s3\",\"outcome\":\"success\"}}");
	json_decref(r);

	ck_assert_uint_gt(http(port, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
	    out, sizeof(out)), 0);
	ck_assert_msg(strncmp(out, "HTTP/1.1 200 OK\r\n", 17) == 0, "%.100s",
	    out);
	ck_assert_ptr_nonnull(strstr(out,
	    "Content-Type: text/plain; version=0.0.4"));
	ck_assert_ptr_nonnull(body = strstr(out, "\r\n\r\n"));
	body += 4;
	for (i = 0; families[i] != NULL; i++) {
		snprintf(req, sizeof(req), "# TYPE %s ", families[i]);
		ck_assert_msg(strstr(body, req) != NULL, "no family %s",
		    families[i]);
		snprintf(req, sizeof(req), "# HELP %s ", families[i]);
		ck_assert_msg(strstr(body, req) != NULL, "no HELP for %s",
		    families[i]);
	}
	ck_assert_ptr_nonnull(strstr(body,
	    "ermd_errors_total{category=\"NETWORK_ERROR\"} 1\n"));
	ck_assert_ptr_nonnull(strstr(body,
	    "ermd_errors_total{category=\"QUOTA_EXCEEDED\"} 0\n"));
	ck_assert_ptr_nonnull(strstr(body, "ermd_outbox_backlog 0\n"));
	ck_assert_ptr_nonnull(strstr(body,
	    "ermd_workflows{state=\"compensated\"} 0\n"));

	/* promtool, on exactly what the listener served. */
	if (promtool != NULL && access(promtool, X_OK) == 0) {
		snprintf(path, sizeof(path), "%s/metrics.txt", d.dir);
		ck_assert_ptr_nonnull(fp = fopen(path, "w"));
		fputs(body, fp);
		fclose(fp);
		snprintf(cmd, sizeof(cmd), "%.500s check metrics < %s 2>&1",
		    promtool, path);
		ck_assert_ptr_nonnull(fp = popen(cmd, "r"));
		n = (int)fread(big, 1, sizeof(big) - 1, fp);
		big[n > 0 ? n : 0] = '\0';
		ck_assert_msg(pclose(fp) == 0, "promtool check metrics:\n%s",
		    big);
		fprintf(stderr, "promtool check metrics: ok\n");
	} else
		fprintf(stderr, "promtool check metrics: skipped ($PROMTOOL "
		    "not set; make check sets it)\n");

	/* Only GET /metrics. */
	http(port, "GET / HTTP/1.1\r\n\r\n", out, sizeof(out));
	ck_assert_msg(strncmp(out, "HTTP/1.1 404", 12) == 0, "%.60s", out);
	http(port, "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n", out,
	    sizeof(out));
	ck_assert_msg(strncmp(out, "HTTP/1.1 405", 12) == 0, "%.60s", out);
	http(port, "HEAD /metrics HTTP/1.1\r\n\r\n", out, sizeof(out));
	ck_assert_msg(strncmp(out, "HTTP/1.1 200", 12) == 0, "%.60s", out);
	ck_assert_ptr_null(strstr(out, "# TYPE"));
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	memcpy(big, "GET /metrics HTTP/1.1\r\nX: ", 26);
	http(port, big, out, sizeof(out));
	ck_assert_msg(strncmp(out, "HTTP/1.1 431", 12) == 0, "%.60s", out);

	/*
	 * At most 16 connections: the rest are closed at once. The last
	 * answer's connection holds its slot until the listener has seen
	 * this side close, a moment: tried again for up to 5 s while fewer
	 * than 16 stay open (never more).
	 */
	for (tries = 0; tries < 25; tries++) {
		for (i = 0; i < 20; i++)
			ck_assert_int_ne(fds[i] = tcp_connect(port), -1);
		usleep(200000);
		open_after = 0;
		for (i = 0; i < 20; i++) {
			struct pollfd	p = { fds[i], POLLIN, 0 };
			char		c;

			if (poll(&p, 1, 0) == 1 && read(fds[i], &c, 1) == 0)
				continue;
			open_after++;
		}
		for (i = 0; i < 20; i++)
			close(fds[i]);
		ck_assert_int_le(open_after, 16);
		if (open_after == 16)
			break;
	}
	ck_assert_int_eq(open_after, 16);
	usleep(100000);
	http(port, "GET /metrics HTTP/1.1\r\n\r\n", out, sizeof(out));
	ck_assert(strncmp(out, "HTTP/1.1 200", 12) == 0);

	/* Off again after a reload without it. */
	daemon_write_conf(&d, "");
	r = raw_call(fd, "{\"id\":1,\"method\":\"config.reload\"}");
	ck_assert_int_eq(reply_code(r), 0);
	json_decref(r);
	ck_assert_int_eq(tcp_connect(port), -1);
	close(fd);
	assert_serves(&d);
}
END_TEST

/*
 * A request with more than the listener reads (here a body it never
 * wants) and a client slow to read the answer: the whole answer arrives
 * all the same. Closing with the body unread would reset the connection
 * and throw away what the client had not read yet.
 */
START_TEST(answer_survives_unread_request_bytes)
{
	static char	 out[1 << 20], body[30000];
	struct sockaddr_in	 sin;
	char		 conf[128], head[128];
	const char	*cl, *text;
	int		 port = free_port(), fd, rcvbuf = 4096;
	size_t		 got = 0;
	ssize_t		 n;

	snprintf(conf, sizeof(conf), "[metrics]\nlisten = 127.0.0.1:%d\n",
	    port);
	daemon_start(&d, conf, NULL);
	/* A small receive buffer, set before connecting. */
	ck_assert_int_ne(fd = socket(AF_INET, SOCK_STREAM, 0), -1);
	ck_assert_int_eq(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf,
	    sizeof(rcvbuf)), 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	memset(body, 'x', sizeof(body));
	snprintf(head, sizeof(head), "GET /metrics HTTP/1.1\r\n"
	    "Content-Length: %zu\r\n\r\n", sizeof(body));
	ck_assert_int_eq(write(fd, head, strlen(head)), (ssize_t)strlen(head));
	ck_assert_int_eq(write(fd, body, sizeof(body)), (ssize_t)sizeof(body));
	usleep(300000);		/* the answer waits in the buffers */
	while (got + 1 < sizeof(out) &&
	    (n = read(fd, out + got, sizeof(out) - 1 - got)) > 0)
		got += (size_t)n;
	ck_assert_msg(n == 0, "read: %s after %zu bytes", strerror(errno),
	    got);
	out[got] = '\0';
	close(fd);
	ck_assert_msg(strncmp(out, "HTTP/1.1 200 OK\r\n", 17) == 0, "%.60s",
	    out);
	ck_assert_ptr_nonnull(cl = strstr(out, "\r\nContent-Length: "));
	ck_assert_ptr_nonnull(text = strstr(out, "\r\n\r\n"));
	text += 4;
	/* More than the 4 KiB the client's buffer held at first. */
	ck_assert_uint_gt(strlen(text), 16384);
	ck_assert_uint_eq(strtoul(cl + 18, NULL, 10), strlen(text));
	assert_serves(&d);
}
END_TEST

/*
 * Sixteen clients (all the listener takes) ask for an answer larger than
 * the kernel will queue for them (tcp_wmem's largest send buffer), read
 * nothing and reset their connections while it is still being written:
 * each slot is freed, and the next client gets metrics.
 */
START_TEST(slots_survive_clients_that_reset)
{
	static char	 out[64];
	struct sockaddr_in	 sin;
	struct linger	 reset = { 1, 0 };
	const char	*get = "GET /metrics HTTP/1.1\r\n\r\n";
	char		 conf[160];
	long		 wmem_min, wmem_def, wmem_max = 4194304;
	int		 port = free_port(), fds[16], i, n, rcvbuf = 4096, fd;
	FILE		*f;
	json_t		*r;

	if ((f = fopen("/proc/sys/net/ipv4/tcp_wmem", "r")) != NULL) {
		if (fscanf(f, "%ld %ld %ld", &wmem_min, &wmem_def,
		    &wmem_max) != 3)
			wmem_max = 4194304;
		fclose(f);
	}
	/* About 500 bytes of metrics a breaker. */
	n = (int)(wmem_max / 400) + 1000;
	snprintf(conf, sizeof(conf), "[metrics]\nlisten = 127.0.0.1:%d\n"
	    "[daemon]\nmax_breakers = %d\n", port, n + 10);
	daemon_start(&d, conf, NULL);
	fd = raw_connect(d.sock);
	for (i = 0; i < n; i++) {
		r = call_on(fd, "{\"id\":1,\"method\":\"breaker.record\","
		    "\"params\":{\"name\":\"b%06d\",\"outcome\":"
		    "\"success\"}}", i);
		ck_assert_int_eq(reply_code(r), 0);
		json_decref(r);
	}
	close(fd);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	for (i = 0; i < 16; i++) {
		ck_assert_int_ne(fds[i] = socket(AF_INET, SOCK_STREAM, 0), -1);
		ck_assert_int_eq(setsockopt(fds[i], SOL_SOCKET, SO_RCVBUF,
		    &rcvbuf, sizeof(rcvbuf)), 0);
		ck_assert_int_eq(connect(fds[i], (struct sockaddr *)&sin,
		    sizeof(sin)), 0);
		ck_assert_int_eq(write(fds[i], get, strlen(get)),
		    (ssize_t)strlen(get));
	}
	usleep(500000);		/* the answers fill the buffers */
	for (i = 0; i < 16; i++) {
		ck_assert_int_eq(setsockopt(fds[i], SOL_SOCKET, SO_LINGER,
		    &reset, sizeof(reset)), 0);
		close(fds[i]);
	}
	/* Rendering 16 answers takes a while under a sanitizer: the slots
	 * must come free, however long that takes (a leaked one never does). */
	for (i = 0; i < 100; i++) {
		usleep(100000);
		http(port, "HEAD /metrics HTTP/1.1\r\n\r\n", out, sizeof(out));
		if (strncmp(out, "HTTP/1.1 200", 12) == 0)
			break;
	}
	ck_assert_msg(strncmp(out, "HTTP/1.1 200", 12) == 0, "10 s after 16 "
	    "resets: %.40s", out);
	assert_serves(&d);
}
END_TEST

/* Off by default: nothing listens, and the text is the same over the
 * socket. */
START_TEST(off_by_default)
{
	char		 out[64];
	const char	*args[] = { "metrics", "--prometheus", NULL };
	static char	 text[1 << 20];

	daemon_start(&d, NULL, NULL);
	ck_assert_uint_eq(http(9464, "GET /metrics HTTP/1.1\r\n\r\n", out,
	    sizeof(out)) == 0 || strstr(out, "ermd") == NULL, 1);
	ck_assert_int_eq(ermctl(&d, text, sizeof(text), args), 0);
	ck_assert_ptr_nonnull(strstr(text, "# TYPE ermd_errors_total counter"));
}
END_TEST

int
main(void)
{
	Suite	*s = suite_create("errors_metrics");
	TCase	*tc = tcase_create("errors_metrics");
	SRunner	*sr;
	int	 failed;

	tcase_set_timeout(tc, 60);
	tcase_add_checked_fixture(tc, NULL, stop);
	tcase_add_test(tc, listener_and_promtool);
	tcase_add_test(tc, answer_survives_unread_request_bytes);
	tcase_add_test(tc, slots_survive_clients_that_reset);
	tcase_add_test(tc, off_by_default);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return (failed ? 1 : 0);
}
