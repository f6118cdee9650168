/*
 * The HTTP client against a tiny HTTP/1.1 server on a loopback socket in
 * the same process: methods and bodies, headers, files in and out, limits,
 * timeouts, refused and dropped connections, cancel, shutdown, Retry-After.
 */

#include <sys/socket.h>
#include <sys/stat.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "http.h"
#include "worker.h"

static int			 lfd = -1;
static int			 port;
static struct event_base	*base;
static char			 tmpdir[64];

/* ---- the server ----------------------------------------------------- */

/* Byte i of a /big/ body: no period, so a part out of order shows. */
static char
big_byte(uint64_t i)
{
	return ((char)('a' + (uint32_t)(i * 2654435761u) % 26));
}

static void
send_all(int fd, const void *buf, size_t len)
{
	const char	*p = buf;
	ssize_t		 n;

	while (len > 0) {
		if ((n = send(fd, p, len, MSG_NOSIGNAL)) <= 0)
			return;
		p += n;
		len -= (size_t)n;
	}
}

static void
reply(int fd, int status, const char *extra, const char *body, size_t len)
{
	char	hdr[1024];
	int	n;

	n = snprintf(hdr, sizeof(hdr), "HTTP/1.1 %d X\r\nContent-Length: %zu"
	    "\r\nConnection: close\r\n%s\r\n", status, len, extra);
	send_all(fd, hdr, (size_t)n);
	if (body != NULL)
		send_all(fd, body, len);
}

/*
 * One connection: read the head and the body (Content-Length), answer by
 * path, close. /slow never answers; /drop closes without a word.
 */
static void *
serve(void *arg)
{
	int	 fd = (int)(intptr_t)arg;
	char	*buf, method[16], path[256], extra[512], *eoh, *cl;
	size_t	 len = 0, cap = 1 << 20, clen = 0, hlen;
	ssize_t	 n;

	buf = malloc(cap + 1);
	for (;;) {
		n = recv(fd, buf + len, cap - len, 0);
		if (n <= 0)
			goto out;
		len += (size_t)n;
		buf[len] = '\0';
		if ((eoh = strstr(buf, "\r\n\r\n")) != NULL)
			break;
	}
	hlen = (size_t)(eoh - buf) + 4;
	if ((cl = strcasestr(buf, "\r\nContent-Length:")) != NULL && cl < eoh)
		clen = strtoul(cl + 17, NULL, 10);
	while (len < hlen + clen && len < cap) {
		if ((n = recv(fd, buf + len, cap - len, 0)) <= 0)
			goto out;
		len += (size_t)n;
	}
	if (sscanf(buf, "%15s %255s", method, path) != 2)
		goto out;
	if (strcmp(path, "/slow") == 0) {
		while (recv(fd, extra, sizeof(extra), 0) > 0)
			;
	} else if (strcmp(path, "/drop") == 0) {
		/* nothing */
	} else if (strcmp(path, "/hello") == 0) {
		reply(fd, 200, "X-Test: a\r\nX-Test: b \r\nRetry-After: 7\r\n",
		    strcmp(method, "HEAD") == 0 ? NULL : "hello", 5);
	} else if (strcmp(path, "/echo") == 0) {
		char	*ua = strcasestr(buf, "\r\nUser-Agent:");
		char	 uabuf[64] = "";

		if (ua != NULL && ua < eoh)
			sscanf(ua + 13, " %63[^\r]", uabuf);
		snprintf(extra, sizeof(extra), "X-Method: %s\r\nX-UA: %s\r\n"
		    "X-Expect: %s\r\n", method, uabuf,
		    strcasestr(buf, "Expect:") != NULL ? "yes" : "no");
		reply(fd, 201, extra, buf + hlen, clen);
	} else if (strncmp(path, "/big/", 5) == 0) {
		size_t	 sz = strtoul(path + 5, NULL, 10);
		char	*b = malloc(sz + 1);

		size_t	 i;

		for (i = 0; i < sz; i++)
			b[i] = big_byte(i);
		reply(fd, 200, "", b, sz);
		free(b);
	} else if (strcmp(path, "/busy") == 0) {
		reply(fd, 503, "Retry-After: 120\r\nContent-Type: text/html\r\n",
		    "<html>busy</html>", 17);
	} else
		reply(fd, 404, "", "no", 2);
out:
	close(fd);
	free(buf);
	return (NULL);
}

static void *
server_main(void *unused)
{
	pthread_t	t;
	int		fd;

	(void)unused;
	for (;;) {
		if ((fd = accept(lfd, NULL, NULL)) == -1)
			return (NULL);
		pthread_create(&t, NULL, serve, (void *)(intptr_t)fd);
		pthread_detach(t);
	}
}

static void
setup(void)
{
	struct sockaddr_in	sin;
	socklen_t		sl = sizeof(sin);
	pthread_t		t;

	lfd = socket(AF_INET, SOCK_STREAM, 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(lfd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	ck_assert_int_eq(listen(lfd, 64), 0);
	getsockname(lfd, (struct sockaddr *)&sin, &sl);
	port = ntohs(sin.sin_port);
	pthread_create(&t, NULL, server_main, NULL);
	pthread_detach(t);
	base = event_base_new();
	ck_assert_int_eq(worker_init(base, 2), 0);
	ck_assert_int_eq(http_init(base), 0);
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/ermd-http-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void
teardown(void)
{
	char	cmd[128];

	http_shutdown();
	worker_shutdown();
	event_base_free(base);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	(void)!system(cmd);
}

/* ---- the client side ------------------------------------------------ */

struct got {
	int		 done;
	long		 status;
	int		 err;
	int		 local;
	char		 error[256];
	char		*body;
	size_t		 body_len;
	uint64_t	 body_bytes;
	char		 test[64], method[16], ua[64], expect[8];
	char		 retry_after[64];
	int		 has_ctype;
};

static void
collect(const struct http_response *r, void *arg)
{
	struct got	*g = arg;
	const char	*v;

	g->done++;
	g->status = r->status;
	g->err = r->err;
	g->local = r->local;
	snprintf(g->error, sizeof(g->error), "%s", r->error);
	g->body = malloc(r->body_len + 1);
	memcpy(g->body, r->body, r->body_len + 1);
	g->body_len = r->body_len;
	g->body_bytes = r->body_bytes;
	if ((v = http_header(r, "x-test")) != NULL)
		snprintf(g->test, sizeof(g->test), "%s", v);
	if ((v = http_header(r, "X-Method")) != NULL)
		snprintf(g->method, sizeof(g->method), "%s", v);
	if ((v = http_header(r, "X-UA")) != NULL)
		snprintf(g->ua, sizeof(g->ua), "%s", v);
	if ((v = http_header(r, "X-Expect")) != NULL)
		snprintf(g->expect, sizeof(g->expect), "%s", v);
	if ((v = http_header(r, "Retry-After")) != NULL)
		snprintf(g->retry_after, sizeof(g->retry_after), "%s", v);
	g->has_ctype = http_header(r, "content-type") != NULL;
}

static void
run_until(const int *flag, int n)
{
	while (*flag < n)
		ck_assert_int_ne(event_base_loop(base, EVLOOP_ONCE), -1);
}

static char *
url(const char *path)
{
	static char	buf[8][128];
	static int	i;

	i = (i + 1) % 8;
	snprintf(buf[i], sizeof(buf[i]), "http://127.0.0.1:%d%s", port, path);
	return (buf[i]);
}

START_TEST(get_with_headers)
{
	struct got	g = { 0 };

	ck_assert_ptr_nonnull(http_request("GET", url("/hello"), NULL, NULL,
	    NULL, collect, &g));
	/* The callback never runs inside http_request. */
	ck_assert_int_eq(g.done, 0);
	ck_assert_uint_eq(http_inflight(), 1);
	run_until(&g.done, 1);
	ck_assert_int_eq(g.err, 0);
	ck_assert_int_eq(g.status, 200);
	ck_assert_str_eq(g.body, "hello");
	ck_assert_str_eq(g.test, "b");		/* the last one, trimmed */
	ck_assert_str_eq(g.retry_after, "7");
	ck_assert_int_eq(g.has_ctype, 0);
	ck_assert_uint_eq(http_inflight(), 0);
	free(g.body);
}
END_TEST

START_TEST(head_has_no_body)
{
	struct got	g = { 0 };

	http_request("HEAD", url("/hello"), NULL, NULL, NULL, collect, &g);
	run_until(&g.done, 1);
	ck_assert_int_eq(g.err, 0);
	ck_assert_int_eq(g.status, 200);
	ck_assert_uint_eq(g.body_len, 0);
	ck_assert_str_eq(g.test, "b");
	free(g.body);
}
END_TEST

struct tapped {
	uint64_t	up, down;
	int		restarts;
};

static void
tap(void *arg, int upload, const void *data, size_t len)
{
	struct tapped	*t = arg;

	if (data == NULL)
		t->restarts++;
	else if (upload)
		t->up += len;
	else
		t->down += len;
}

START_TEST(bodies_from_buffer_and_file)
{
	static const char *const hdrs[] = { "Content-Type: application/json",
	    NULL };
	struct http_body	 b = { "{\"a\":1}", 7, -1 };
	struct http_options	 o = { .resp_fd = -1 };
	struct tapped		 t = { 0, 0, 0 };
	struct got		 g[3];
	char			 path[128];
	/* Four of the file reader's buffers, the last one part full. */
	static char		 data[900000];
	unsigned		 x = 1;
	int			 fd, i;

	memset(g, 0, sizeof(g));
	http_request("POST", url("/echo"), hdrs, &b, NULL, collect, &g[0]);
	http_request("DELETE", url("/echo"), NULL, NULL, NULL, collect, &g[1]);
	/* No period: a part sent twice or out of order shows. */
	for (i = 0; i < (int)sizeof(data); i++) {
		x = x * 1103515245 + 12345;
		data[i] = (char)('a' + (x >> 16) % 26);
	}
	snprintf(path, sizeof(path), "%s/body", tmpdir);
	fd = open(path, O_RDWR | O_CREAT, 0600);
	ck_assert_int_eq(write(fd, data, sizeof(data)), sizeof(data));
	b.buf = NULL;
	b.fd = fd;
	b.len = sizeof(data);
	o.tap = tap;
	o.tap_arg = &t;
	o.max_response_bytes = sizeof(data);
	http_request("PUT", url("/echo"), NULL, &b, &o, collect, &g[2]);
	/* The descriptor is the caller's again as soon as the call returns. */
	close(fd);
	i = 0;
	while (g[0].done + g[1].done + g[2].done < 3)
		event_base_loop(base, EVLOOP_ONCE);
	ck_assert_int_eq(g[0].status, 201);
	ck_assert_str_eq(g[0].method, "POST");
	ck_assert_str_eq(g[0].body, "{\"a\":1}");
	ck_assert_str_eq(g[0].ua, "ermd/" ERMD_VERSION);
	ck_assert_str_eq(g[0].expect, "no");
	ck_assert_str_eq(g[1].method, "DELETE");
	ck_assert_uint_eq(g[1].body_len, 0);
	ck_assert_int_eq(g[2].err, 0);
	ck_assert_str_eq(g[2].method, "PUT");
	ck_assert_uint_eq(g[2].body_len, sizeof(data));
	ck_assert_int_eq(memcmp(g[2].body, data, sizeof(data)), 0);
	ck_assert_uint_eq(t.up, sizeof(data));
	ck_assert_uint_eq(t.down, sizeof(data));
	ck_assert_int_eq(t.restarts, 0);
	for (i = 0; i < 3; i++)
		free(g[i].body);
}
END_TEST

START_TEST(response_to_file_and_tap)
{
	struct http_options	 o = { .resp_fd = -1 };
	struct tapped		 t = { 0, 0, 0 };
	struct got		 g = { 0 };
	struct stat		 sb;
	char			 path[128], buf[65536];
	uint64_t		 n;
	ssize_t			 got, i;
	int			 fd;

	snprintf(path, sizeof(path), "%s/out", tmpdir);
	fd = open(path, O_RDWR | O_CREAT, 0600);
	o.resp_fd = fd;
	o.tap = tap;
	o.tap_arg = &t;
	http_request("GET", url("/big/3000000"), NULL, NULL, &o, collect, &g);
	run_until(&g.done, 1);
	ck_assert_int_eq(g.err, 0);
	ck_assert_uint_eq(g.body_len, 0);
	ck_assert_uint_eq(g.body_bytes, 3000000);
	ck_assert_uint_eq(t.down, 3000000);
	fstat(fd, &sb);
	ck_assert_int_eq(sb.st_size, 3000000);
	ck_assert_int_eq(lseek(fd, 0, SEEK_SET), 0);
	for (n = 0; n < 3000000; n += (uint64_t)got) {
		ck_assert_int_gt(got = read(fd, buf, sizeof(buf)), 0);
		for (i = 0; i < got; i++)
			ck_assert_int_eq(buf[i], big_byte(n + (uint64_t)i));
	}
	close(fd);
	free(g.body);
}
END_TEST

/*
 * The response file is written by a worker, not by the loop: with a pipe
 * whose reader starts only from a timer on the loop, a write on the loop
 * would block it for ever (the test would time out); here the loop runs
 * the timer while the worker waits on the full pipe, and then every byte
 * arrives, in order.
 */
struct drain {
	int		 fd;
	uint64_t	 n;
	int		 bad;
	pthread_t	 t;
};

static void *
drain_main(void *arg)
{
	struct drain	*d = arg;
	char		 buf[65536];
	ssize_t		 n, i;

	while ((n = read(d->fd, buf, sizeof(buf))) > 0) {
		for (i = 0; i < n; i++)
			if (buf[i] != big_byte(d->n + (uint64_t)i))
				d->bad++;
		d->n += (uint64_t)n;
	}
	return (NULL);
}

static void
start_drain(evutil_socket_t fd, short what, void *arg)
{
	struct drain	*d = arg;

	(void)fd;
	(void)what;
	pthread_create(&d->t, NULL, drain_main, d);
}

START_TEST(response_file_that_blocks)
{
	struct http_options	 o = { .resp_fd = -1 };
	struct drain		 d = { .fd = -1 };
	struct got		 g = { 0 };
	struct timeval		 tv = { 0, 50000 };
	int			 p[2];

	ck_assert_int_eq(pipe(p), 0);
	d.fd = p[0];
	o.resp_fd = p[1];
	http_request("GET", url("/big/3000000"), NULL, NULL, &o, collect, &g);
	close(p[1]);			/* the transfer has its own */
	ck_assert_int_eq(event_base_once(base, -1, EV_TIMEOUT, start_drain,
	    &d, &tv), 0);
	run_until(&g.done, 1);
	ck_assert_int_eq(g.err, 0);
	ck_assert_int_eq(g.status, 200);
	ck_assert_uint_eq(g.body_bytes, 3000000);
	pthread_join(d.t, NULL);	/* EOF: the last copy is closed */
	ck_assert_uint_eq(d.n, 3000000);
	ck_assert_int_eq(d.bad, 0);
	close(p[0]);
	free(g.body);
}
END_TEST

/* A body file that fails is the transfer's failure, told as ours. */
START_TEST(body_file_failures)
{
	struct http_options	 o = { .resp_fd = -1 };
	struct http_body	 b = { NULL, 600000, -1 };
	struct got		 g[2];
	char			 path[128], data[1000];

	memset(g, 0, sizeof(g));
	memset(data, 'a', sizeof(data));
	snprintf(path, sizeof(path), "%s/short", tmpdir);
	b.fd = open(path, O_RDWR | O_CREAT, 0600);
	ck_assert_int_eq(write(b.fd, data, sizeof(data)), sizeof(data));
	/* Said to be 600,000 bytes long, the file has 1,000. */
	http_request("PUT", url("/echo"), NULL, &b, NULL, collect, &g[0]);
	close(b.fd);
	/* A response file that cannot be written. */
	o.resp_fd = open(path, O_RDONLY);
	http_request("GET", url("/big/3000000"), NULL, NULL, &o, collect,
	    &g[1]);
	close(o.resp_fd);
	while (g[0].done + g[1].done < 2)
		event_base_loop(base, EVLOOP_ONCE);
	ck_assert_int_eq(g[0].err, EIO);
	ck_assert_int_eq(g[0].local, 1);
	ck_assert_str_eq(g[0].error, "the body file shrank while being sent");
	ck_assert_int_eq(g[1].err, EBADF);
	ck_assert_int_eq(g[1].local, 1);
	ck_assert_str_eq(g[1].error, "writing the response body: "
	    "Bad file descriptor");
	ck_assert_uint_eq(g[1].body_bytes, 0);
	free(g[0].body);
	free(g[1].body);
}
END_TEST

START_TEST(limits_and_failures)
{
	struct http_options	o = { .resp_fd = -1 };
	struct got		g[6];
	int			i, n = 0, dead;
	struct sockaddr_in	sin;

	memset(g, 0, sizeof(g));
	/* A body over the limit fails with EFBIG. */
	o.max_response_bytes = 1000;
	http_request("GET", url("/big/1001"), NULL, NULL, &o, collect, &g[0]);
	/* Exactly the limit is fine. */
	http_request("GET", url("/big/1000"), NULL, NULL, &o, collect, &g[1]);
	/* Or kept short, when the start is all the caller reads. */
	o.truncate_response = 1;
	http_request("GET", url("/big/100000"), NULL, NULL, &o, collect,
	    &g[5]);
	o.truncate_response = 0;
	/* No answer within the timeout. */
	o.max_response_bytes = 0;
	o.timeout_ms = 300;
	http_request("GET", url("/slow"), NULL, NULL, &o, collect, &g[2]);
	/* The server hangs up without a word. */
	http_request("GET", url("/drop"), NULL, NULL, NULL, collect, &g[3]);
	/* Nobody listens. */
	dead = socket(AF_INET, SOCK_STREAM, 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	bind(dead, (struct sockaddr *)&sin, sizeof(sin));
	{
		socklen_t	sl = sizeof(sin);
		char		u[64];

		getsockname(dead, (struct sockaddr *)&sin, &sl);
		snprintf(u, sizeof(u), "http://127.0.0.1:%d/x",
		    ntohs(sin.sin_port));
		http_request("GET", u, NULL, NULL, NULL, collect, &g[4]);
	}
	for (;;) {
		for (n = 0, i = 0; i < 6; i++)
			n += g[i].done;
		if (n == 6)
			break;
		event_base_loop(base, EVLOOP_ONCE);
	}
	close(dead);
	ck_assert_int_eq(g[0].err, EFBIG);
	ck_assert_int_eq(g[1].err, 0);
	ck_assert_uint_eq(g[1].body_len, 1000);
	ck_assert_int_eq(g[2].err, ETIMEDOUT);
	ck_assert_int_eq(g[2].status, 0);
	ck_assert_int_eq(g[3].err, ECONNRESET);
	ck_assert_int_eq(g[4].err, ECONNREFUSED);
	ck_assert_str_ne(g[4].error, "");
	ck_assert_int_eq(g[5].err, 0);
	ck_assert_int_eq(g[5].status, 200);
	ck_assert_uint_eq(g[5].body_len, 1000);
	for (i = 0; i < 1000; i++)
		ck_assert_int_eq(g[5].body[i], big_byte((uint64_t)i));
	for (i = 0; i < 6; i++)
		free(g[i].body);
}
END_TEST

START_TEST(error_status_is_a_response)
{
	struct got	g = { 0 };
	char		desc[64];
	int64_t		d;

	http_request("GET", url("/busy"), NULL, NULL, NULL, collect, &g);
	run_until(&g.done, 1);
	ck_assert_int_eq(g.err, 0);
	ck_assert_int_eq(g.status, 503);
	ck_assert_str_eq(g.body, "<html>busy</html>");
	ck_assert_int_eq(http_retry_after_ms(g.retry_after, 0, &d), 0);
	ck_assert_int_eq(d, 120000);
	{
		struct http_response	r = { .status = 503 };

		ck_assert_str_eq(http_describe(&r, desc, sizeof(desc)),
		    "HTTP 503");
	}
	free(g.body);
}
END_TEST

START_TEST(bad_urls_are_refused_up_front)
{
	struct got	g = { 0 };

	errno = 0;
	ck_assert_ptr_null(http_request("GET", "ftp://127.0.0.1/x", NULL,
	    NULL, NULL, collect, &g));
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_uint_eq(http_inflight(), 0);
}
END_TEST

static void
must_not_run(const struct http_response *r, void *arg)
{
	(void)r;
	(void)arg;
	ck_abort_msg("a cancelled request called back");
}

START_TEST(cancel_and_many_at_once)
{
	struct http_options	 o = { .resp_fd = -1, .timeout_ms = 5000 };
	struct http_req		*slow;
	static struct got	 g[200];
	int			 i, n;

	slow = http_request("GET", url("/slow"), NULL, NULL, &o,
	    must_not_run, NULL);
	ck_assert_ptr_nonnull(slow);
	for (i = 0; i < 200; i++)
		ck_assert_ptr_nonnull(http_request("GET", url("/hello"), NULL,
		    NULL, NULL, collect, &g[i]));
	/* Cancel while the slow one is connected and waiting. */
	for (i = 0; i < 5; i++)
		event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
	http_cancel(slow);
	for (;;) {
		for (n = 0, i = 0; i < 200; i++)
			n += g[i].done;
		if (n == 200)
			break;
		event_base_loop(base, EVLOOP_ONCE);
	}
	for (i = 0; i < 200; i++) {
		ck_assert_int_eq(g[i].status, 200);
		ck_assert_str_eq(g[i].body, "hello");
		free(g[i].body);
	}
	ck_assert_uint_eq(http_inflight(), 0);
}
END_TEST

struct chained {
	int	done;
	int	second_err;
};

static void
second(const struct http_response *r, void *arg)
{
	struct chained	*c = arg;

	c->second_err = r->err;
	c->done++;
}

static void
first(const struct http_response *r, void *arg)
{
	struct chained	*c = arg;

	ck_assert_int_eq(r->status, 200);
	/* A callback may start the next request. */
	ck_assert_ptr_nonnull(http_request("GET", url("/slow"), NULL, NULL,
	    NULL, second, c));
	c->done++;
}

static void
then_hello(const struct http_response *r, void *arg)
{
	struct chained	*c = arg;

	ck_assert_int_eq(r->status, 200);
	if (++c->done < 3)
		ck_assert_ptr_nonnull(http_request("GET", url("/hello"), NULL,
		    NULL, NULL, then_hello, c));
}

/* A request started from a callback runs: the callback comes after
 * libcurl's last call of the round, which must not stop its timer. */
START_TEST(callback_starts_the_next_request)
{
	struct chained	c = { 0, 0 };

	http_request("GET", url("/hello"), NULL, NULL, NULL, then_hello, &c);
	run_until(&c.done, 3);
	ck_assert_uint_eq(http_inflight(), 0);
}
END_TEST

START_TEST(shutdown_cancels_in_flight)
{
	struct chained	c = { 0, -1 };

	http_request("GET", url("/hello"), NULL, NULL, NULL, first, &c);
	run_until(&c.done, 1);
	/* A user beyond the first keeps the client running. */
	ck_assert_int_eq(http_init(base), 0);
	http_shutdown();
	ck_assert_uint_eq(http_inflight(), 1);
	http_shutdown();
	ck_assert_int_eq(c.done, 2);
	ck_assert_int_eq(c.second_err, ECANCELED);
	ck_assert_ptr_null(http_request("GET", url("/hello"), NULL, NULL,
	    NULL, collect, NULL));
	ck_assert_int_eq(errno, ESHUTDOWN);
	/* teardown's shutdown is a no-op now; start again for it. */
	ck_assert_int_eq(http_init(base), 0);
}
END_TEST

START_TEST(retry_after_values)
{
	int64_t		d;
	/* Sun, 06 Nov 1994 08:49:37 GMT */
	const uint64_t	t = UINT64_C(784111777000);

	ck_assert_int_eq(http_retry_after_ms("0", t, &d), 0);
	ck_assert_int_eq(d, 0);
	ck_assert_int_eq(http_retry_after_ms(" 120 ", t, &d), 0);
	ck_assert_int_eq(d, 120000);
	ck_assert_int_eq(http_retry_after_ms("99999999999999999999999", t,
	    &d), 0);
	ck_assert_int_eq(d, INT64_MAX);
	ck_assert_int_eq(http_retry_after_ms("Sun, 06 Nov 1994 08:50:37 GMT",
	    t, &d), 0);
	ck_assert_int_eq(d, 60000);
	ck_assert_int_eq(http_retry_after_ms("Sunday, 06-Nov-94 08:49:47 GMT",
	    t, &d), 0);
	ck_assert_int_eq(d, 10000);
	ck_assert_int_eq(http_retry_after_ms("Sun Nov  6 08:49:57 1994", t,
	    &d), 0);
	ck_assert_int_eq(d, 20000);
	/* A date in the past means now. */
	ck_assert_int_eq(http_retry_after_ms("Sat, 05 Nov 1994 08:49:37 GMT",
	    t, &d), 0);
	ck_assert_int_eq(d, 0);
	ck_assert_int_eq(http_retry_after_ms("", t, &d), -1);
	ck_assert_int_eq(http_retry_after_ms("-5", t, &d), -1);
	ck_assert_int_eq(http_retry_after_ms("12s", t, &d), -1);
	ck_assert_int_eq(http_retry_after_ms("soon", t, &d), -1);
}
END_TEST

int
main(void)
{
	Suite	*s = suite_create("http");
	TCase	*tc = tcase_create("http");
	SRunner	*sr;
	int	 failed;

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 20);
	tcase_add_test(tc, get_with_headers);
	tcase_add_test(tc, head_has_no_body);
	tcase_add_test(tc, bodies_from_buffer_and_file);
	tcase_add_test(tc, response_to_file_and_tap);
	tcase_add_test(tc, response_file_that_blocks);
	tcase_add_test(tc, body_file_failures);
	tcase_add_test(tc, limits_and_failures);
	tcase_add_test(tc, error_status_is_a_response);
	tcase_add_test(tc, bad_urls_are_refused_up_front);
	tcase_add_test(tc, cancel_and_many_at_once);
	tcase_add_test(tc, callback_starts_the_next_request);
	tcase_add_test(tc, shutdown_cancels_in_flight);
	tcase_add_test(tc, retry_after_values);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return (failed ? 1 : 0);
}
