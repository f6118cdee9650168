/*
 * liberm against a fake daemon: the test holds the other end of a socket
 * pair and writes exactly the frames each case needs (out-of-order replies,
 * interleaved events, oversized or broken frames, a hang-up), so no real
 * ermd and no sleeps are involved. Cases where both ends must move at once
 * run the fake daemon in a forked child.
 *
 * erm.c is included whole: libermd.a has proto/ but not the client, and the
 * cases need client_new() to wrap one end of a socketpair in a handle.
 */

#include "erm.c"
#include "frames.h"

#include <sys/stat.h>
#include <sys/wait.h>

#include <check.h>

static struct erm_client	*cl;
static int			 srv = -1;

static void
setup(void)
{
	int	sv[2];

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0,
	    sv), 0);
	ck_assert_ptr_nonnull(cl = client_new("socketpair"));
	cl->fd = sv[0];
	srv = sv[1];
}

static void
teardown(void)
{
	erm_close(cl);
	cl = NULL;
	if (srv != -1)
		close(srv);
	srv = -1;
}

static void
write_all(int fd, const void *buf, size_t len)
{
	ck_assert_msg(frames_write_all(fd, buf, len) == 0, "write: %s",
	    strerror(errno));
}

/* The fake daemon sends one frame holding text. */
static void
srv_send(int fd, const char *text)
{
	ck_assert_msg(frames_send(fd, text) == 0, "write: %s",
	    strerror(errno));
}

/* The fake daemon reads one request; a new reference, NULL at EOF. */
static json_t *
srv_recv(int fd)
{
	return (frames_recv(fd, 64 * 1024 * 1024));
}

static int64_t
req_id(json_t *req)
{
	return (json_integer_value(json_object_get(req, "id")));
}

/* Run fn(fd) as the fake daemon in a child on the server end. */
static pid_t
srv_fork(void (*fn)(int))
{
	pid_t	pid;

	ck_assert_int_ne(pid = fork(), -1);
	if (pid == 0) {
		close(cl->fd);
		fn(srv);
		_exit(0);
	}
	close(srv);
	srv = -1;
	return (pid);
}

static void
srv_reap(pid_t pid)
{
	int	status;

	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

START_TEST(test_pipeline_out_of_order)
{
	json_t	*req, *res, *ev, *p;
	int64_t	 id[3];
	char	 buf[256];
	int	 i;

	p = json_pack("{s:i}", "n", 7);
	ck_assert_int_eq(erm_send(cl, "a", p, &id[0]), ERM_OK);
	ck_assert_int_eq(erm_send(cl, "b", NULL, &id[1]), ERM_OK);
	ck_assert_int_eq(erm_send(cl, "c", NULL, &id[2]), ERM_OK);
	json_decref(p);
	ck_assert(id[0] != id[1] && id[1] != id[2] && id[0] != id[2]);

	for (i = 0; i < 3; i++) {
		ck_assert_ptr_nonnull(req = srv_recv(srv));
		ck_assert_int_eq(req_id(req), id[i]);
		ck_assert_str_eq(json_string_value(json_object_get(req,
		    "method")), i == 0 ? "a" : i == 1 ? "b" : "c");
		ck_assert(json_is_object(json_object_get(req, "params")));
		if (i == 0)
			ck_assert_int_eq(json_integer_value(json_object_get(
			    json_object_get(req, "params"), "n")), 7);
		json_decref(req);
	}

	/* Replies 3, 1, 2 with events between them. */
	snprintf(buf, sizeof(buf), "{\"id\":%lld,\"result\":{\"r\":3}}",
	    (long long)id[2]);
	srv_send(srv, buf);
	srv_send(srv, "{\"method\":\"event\",\"params\":{\"type\":\"alert\","
	    "\"at\":1,\"seq\":1}}");
	snprintf(buf, sizeof(buf), "{\"id\":%lld,\"result\":{\"r\":1}}",
	    (long long)id[0]);
	srv_send(srv, buf);
	srv_send(srv, "{\"method\":\"event\",\"params\":{\"type\":\"alert\","
	    "\"at\":2,\"seq\":2}}");
	snprintf(buf, sizeof(buf), "{\"id\":%lld,\"result\":{\"r\":2}}",
	    (long long)id[1]);
	srv_send(srv, buf);

	ck_assert_int_eq(erm_wait(cl, id[1], &res), ERM_OK);
	ck_assert_int_eq(json_integer_value(json_object_get(res, "r")), 2);
	json_decref(res);
	ck_assert_int_eq(erm_wait(cl, id[2], &res), ERM_OK);
	ck_assert_int_eq(json_integer_value(json_object_get(res, "r")), 3);
	json_decref(res);
	ck_assert_int_eq(erm_wait(cl, id[0], NULL), ERM_OK);

	/* Both events were queued, in order. */
	ck_assert_int_eq(erm_next_event(cl, 0, &ev), ERM_OK);
	ck_assert_int_eq(json_integer_value(json_object_get(ev, "seq")), 1);
	json_decref(ev);
	ck_assert_int_eq(erm_next_event(cl, 0, &ev), ERM_OK);
	ck_assert_int_eq(json_integer_value(json_object_get(ev, "seq")), 2);
	json_decref(ev);
	ck_assert_int_eq(erm_next_event(cl, 0, &ev), ERM_ETIMEDOUT);

	/* A reply is collected once; an id never sent is refused at once. */
	ck_assert_int_eq(erm_wait(cl, id[1], NULL), ERM_EINVAL);
	ck_assert_int_eq(erm_wait(cl, 12345, NULL), ERM_EINVAL);
}
END_TEST

START_TEST(test_error_reply)
{
	const struct erm_error	*e;
	int64_t			 id;
	char			 buf[256];

	ck_assert_int_eq(erm_send(cl, "breaker.acquire", NULL, &id), ERM_OK);
	snprintf(buf, sizeof(buf), "{\"id\":%lld,\"error\":{\"code\":1004,"
	    "\"message\":\"breaker db is open\",\"data\":{\"breaker\":\"db\","
	    "\"retry_after_ms\":500}}}", (long long)id);
	srv_send(srv, buf);
	ck_assert_int_eq(erm_wait(cl, id, NULL), ERM_EREPLY);
	e = erm_last_error(cl);
	ck_assert_int_eq(e->code, ERM_BREAKER_OPEN);
	ck_assert_str_eq(e->message, "breaker db is open");
	ck_assert_ptr_nonnull(e->data);
	ck_assert_int_eq(json_integer_value(json_object_get(e->data,
	    "retry_after_ms")), 500);

	/* The next call starts with a clean error. */
	ck_assert_int_eq(erm_send(cl, "ping", NULL, &id), ERM_OK);
	snprintf(buf, sizeof(buf), "{\"id\":%lld,\"result\":{}}",
	    (long long)id);
	srv_send(srv, buf);
	ck_assert_int_eq(erm_wait(cl, id, NULL), ERM_OK);
	ck_assert_int_eq(erm_last_error(cl)->code, 0);
	ck_assert_ptr_null(erm_last_error(cl)->data);
}
END_TEST

/* A header past the 64 MiB ceiling is refused before any body arrives. */
START_TEST(test_oversized_frame)
{
	uint8_t	hdr[ERM_FRAME_HDR];
	int64_t	id;

	ck_assert_int_eq(erm_send(cl, "error.list", NULL, &id), ERM_OK);
	erm_frame_header(hdr, CLIENT_MAX_FRAME + 1);
	write_all(srv, hdr, sizeof(hdr));
	ck_assert_int_eq(erm_wait(cl, id, NULL), ERM_EPROTO);
	ck_assert_ptr_nonnull(strstr(erm_last_error(cl)->message,
	    "exceeds"));
	ck_assert_uint_le(cl->rsize, CLIENT_RBUF_MIN);
	/* The handle stays broken. */
	ck_assert_int_eq(erm_send(cl, "ping", NULL, &id), ERM_EPROTO);
}
END_TEST

static const char *const bad_frames[] = {
	"",				/* zero length */
	"{\"id\":1,",			/* not JSON */
	"[1,2]",			/* not an object */
	"{\"id\":1,\"id\":1,\"result\":{}}",	/* duplicate key */
	"{\"id\":99,\"result\":{}}",	/* an id never sent */
	"{\"id\":\"x\",\"result\":{}}",	/* an id we do not use */
	"{\"id\":1}",			/* neither result nor error */
	"{\"id\":1,\"result\":{},\"error\":{\"code\":1}}",	/* both */
	"{\"id\":1,\"result\":[]}",	/* result not an object */
	"{\"id\":1,\"error\":{\"message\":\"x\"}}",	/* error, no code */
	"{\"result\":{}}",		/* no id, no method */
	"{\"method\":\"event\",\"params\":[]}",	/* event params */
	"{\"method\":7}",		/* method not a string */
};

START_TEST(test_bad_frames)
{
	int64_t	id;

	ck_assert_int_eq(erm_send(cl, "ping", NULL, &id), ERM_OK);
	ck_assert_int_eq(id, 1);
	srv_send(srv, bad_frames[_i]);
	ck_assert_int_eq(erm_wait(cl, id, NULL), ERM_EPROTO);
}
END_TEST

/* A notification this client does not know is skipped, not fatal. */
START_TEST(test_unknown_notification)
{
	int64_t	id;

	ck_assert_int_eq(erm_send(cl, "ping", NULL, &id), ERM_OK);
	srv_send(srv, "{\"method\":\"future.thing\",\"params\":{}}");
	srv_send(srv, "{\"id\":1,\"result\":{\"pong\":true}}");
	ck_assert_int_eq(erm_wait(cl, id, NULL), ERM_OK);
}
END_TEST

/* A frame that arrives in pieces is assembled across reads. */
START_TEST(test_partial_frame)
{
	const char	*text = "{\"method\":\"event\",\"params\":"
			    "{\"type\":\"alert\",\"at\":5}}";
	uint8_t		 hdr[ERM_FRAME_HDR];
	json_t		*ev;

	erm_frame_header(hdr, (uint32_t)strlen(text));
	write_all(srv, hdr, 2);
	ck_assert_int_eq(erm_next_event(cl, 0, &ev), ERM_ETIMEDOUT);
	write_all(srv, hdr + 2, 2);
	write_all(srv, text, 10);
	ck_assert_int_eq(erm_next_event(cl, 0, &ev), ERM_ETIMEDOUT);
	write_all(srv, text + 10, strlen(text) - 10);
	ck_assert_int_eq(erm_next_event(cl, 0, &ev), ERM_OK);
	ck_assert_int_eq(json_integer_value(json_object_get(ev, "at")), 5);
	json_decref(ev);
}
END_TEST

/*
 * The daemon hangs up: what it answered before stays collectable, the
 * rest gets ERM_ECLOSED.
 */
START_TEST(test_closed)
{
	int64_t	id1, id2;
	json_t	*ev;

	ck_assert_int_eq(erm_send(cl, "a", NULL, &id1), ERM_OK);
	ck_assert_int_eq(erm_send(cl, "b", NULL, &id2), ERM_OK);
	srv_send(srv, "{\"id\":1,\"result\":{\"ok\":true}}");
	srv_send(srv, "{\"method\":\"event\",\"params\":{\"type\":\"alert\","
	    "\"at\":1}}");
	close(srv);
	srv = -1;
	ck_assert_int_eq(erm_wait(cl, id2, NULL), ERM_ECLOSED);
	ck_assert_int_eq(erm_wait(cl, id1, NULL), ERM_OK);
	ck_assert_int_eq(erm_next_event(cl, -1, &ev), ERM_OK);
	json_decref(ev);
	ck_assert_int_eq(erm_next_event(cl, -1, &ev), ERM_ECLOSED);
	ck_assert_int_eq(erm_call(cl, "ping", NULL, NULL), ERM_ECLOSED);
}
END_TEST

START_TEST(test_closed_mid_frame)
{
	int64_t	id;

	ck_assert_int_eq(erm_send(cl, "a", NULL, &id), ERM_OK);
	write_all(srv, "\0\0\0\x10{\"id\"", 9);
	close(srv);
	srv = -1;
	ck_assert_int_eq(erm_wait(cl, id, NULL), ERM_ECLOSED);
	ck_assert_ptr_nonnull(strstr(erm_last_error(cl)->message,
	    "mid-frame"));
}
END_TEST

/*
 * erm_call gives up after the handle's timeout; the late reply is dropped
 * when it comes and does not confuse the next call.
 */
START_TEST(test_timeout)
{
	json_t	*res, *req;

	erm_set_timeout(cl, 20);
	ck_assert_int_eq(erm_call(cl, "slow", NULL, &res), ERM_ETIMEDOUT);
	ck_assert_ptr_nonnull(req = srv_recv(srv));
	ck_assert_int_eq(req_id(req), 1);
	json_decref(req);
	srv_send(srv, "{\"id\":1,\"result\":{\"late\":true}}");
	srv_send(srv, "{\"id\":2,\"result\":{\"fresh\":true}}");
	ck_assert_int_eq(erm_call(cl, "fast", NULL, &res), ERM_OK);
	ck_assert(json_is_true(json_object_get(res, "fresh")));
	json_decref(res);
	ck_assert(TAILQ_EMPTY(&cl->pending));

	/* erm_wait keeps the request: a later wait still collects it. */
	erm_set_timeout(cl, 10);
	ck_assert_int_eq(erm_send(cl, "x", NULL, &(int64_t){ 0 }), ERM_OK);
	ck_assert_int_eq(erm_wait(cl, 3, NULL), ERM_ETIMEDOUT);
	srv_send(srv, "{\"id\":3,\"result\":{}}");
	ck_assert_int_eq(erm_wait(cl, 3, NULL), ERM_OK);
}
END_TEST

/* An error with id null (the daemon could not tell whose) goes to the waiter. */
START_TEST(test_null_id_error)
{
	srv_send(srv, "{\"id\":null,\"error\":{\"code\":1005,"
	    "\"message\":\"frame too large\",\"data\":{\"limit\":1048576}}}");
	ck_assert_int_eq(erm_call(cl, "ping", NULL, NULL), ERM_EREPLY);
	ck_assert_int_eq(erm_last_error(cl)->code, ERM_LIMIT_EXCEEDED);
	ck_assert(TAILQ_EMPTY(&cl->pending));
}
END_TEST

START_TEST(test_bad_arguments)
{
	json_t	*arr = json_array();
	int64_t	 id;
	json_t	*ev;

	ck_assert_int_eq(erm_send(cl, NULL, NULL, &id), ERM_EINVAL);
	ck_assert_int_eq(erm_send(cl, "", NULL, &id), ERM_EINVAL);
	ck_assert_int_eq(erm_send(cl, "x", arr, &id), ERM_EINVAL);
	ck_assert_int_eq(erm_send(cl, "\xff", NULL, &id), ERM_EINVAL);
	ck_assert_int_eq(erm_call(NULL, "x", NULL, NULL), ERM_EINVAL);
	ck_assert_int_eq(erm_next_event(cl, 0, NULL), ERM_EINVAL);
	ck_assert_int_eq(erm_next_event(NULL, 0, &ev), ERM_EINVAL);
	ck_assert_ptr_null(erm_last_error(NULL));
	ck_assert_int_eq(erm_fd(NULL), -1);
	erm_close(NULL);
	json_decref(arr);
	/* Nothing was sent: the first real request still gets id 1. */
	ck_assert_int_eq(erm_send(cl, "x", NULL, &id), ERM_OK);
	ck_assert_int_eq(id, 1);
}
END_TEST

START_TEST(test_strerror)
{
	int	s;

	for (s = ERM_OK; s <= ERM_EINVAL; s++)
		ck_assert_ptr_nonnull(erm_strerror((enum erm_status)s));
	ck_assert_str_eq(erm_strerror((enum erm_status)999),
	    "unknown status");
}
END_TEST

/* An echo daemon: replies {"method", "params"} and honours a few methods. */
static void
echo_server(int fd)
{
	json_t	*req, *rep;
	char	*big;
	size_t	 len;
	uint8_t	*frame;
	int	 i;

	while ((req = srv_recv(fd)) != NULL) {
		const char *m = json_string_value(json_object_get(req,
		    "method"));

		if (strcmp(m, "events.subscribe") == 0) {
			rep = json_pack("{s:O, s:{s:[s]}}", "id",
			    json_object_get(req, "id"), "result",
			    "subscribed", "alert");
		} else if (strcmp(m, "big") == 0) {
			/* Larger than the daemon's 1 MiB default frame. */
			len = 3 * 1024 * 1024;
			big = malloc(len + 1);
			memset(big, 'x', len);
			big[len] = '\0';
			rep = json_pack("{s:O, s:{s:s}}", "id",
			    json_object_get(req, "id"), "result", "blob", big);
			free(big);
		} else if (strcmp(m, "chatty") == 0) {
			for (i = 0; i < 3; i++) {
				rep = json_pack("{s:s, s:{s:s, s:i, s:i}}",
				    "method", "event", "params", "type",
				    "alert", "at", 1, "i", i);
				frame = erm_frame_encode(rep, CLIENT_MAX_FRAME,
				    &len);
				write_all(fd, frame, len);
				free(frame);
				json_decref(rep);
			}
			rep = json_pack("{s:O, s:{}}", "id",
			    json_object_get(req, "id"), "result");
		} else if (strcmp(m, "bye") == 0) {
			json_decref(req);
			break;
		} else {
			rep = json_pack("{s:O, s:{s:s, s:O}}", "id",
			    json_object_get(req, "id"), "result", "method", m,
			    "params", json_object_get(req, "params"));
		}
		frame = erm_frame_encode(rep, CLIENT_MAX_FRAME, &len);
		write_all(fd, frame, len);
		free(frame);
		json_decref(rep);
		json_decref(req);
	}
	close(fd);
}

START_TEST(test_call_roundtrip)
{
	const char *const	 types[] = { "alert", NULL };
	json_t			*res, *ev, *p;
	pid_t			 pid;
	int			 i;

	pid = srv_fork(echo_server);
	p = json_pack("{s:s}", "k", "v");
	ck_assert_int_eq(erm_call(cl, "echo", p, &res), ERM_OK);
	json_decref(p);
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(res,
	    "params"), "k")), "v");
	json_decref(res);

	/* A reply over 1 MiB is fine; the buffer shrinks back after it. */
	ck_assert_int_eq(erm_call(cl, "big", NULL, &res), ERM_OK);
	ck_assert_uint_eq(json_string_length(json_object_get(res, "blob")),
	    3 * 1024 * 1024);
	json_decref(res);
	ck_assert_int_eq(erm_call(cl, "echo", NULL, NULL), ERM_OK);
	ck_assert_uint_le(cl->rsize, CLIENT_RBUF_KEEP);

	/* Events that come while a call waits are queued for later. */
	ck_assert_int_eq(erm_subscribe(cl, types), ERM_OK);
	ck_assert_int_eq(erm_call(cl, "chatty", NULL, NULL), ERM_OK);
	for (i = 0; i < 3; i++) {
		ck_assert_int_eq(erm_next_event(cl, 1000, &ev), ERM_OK);
		ck_assert_int_eq(json_integer_value(json_object_get(ev, "i")),
		    i);
		json_decref(ev);
	}
	ck_assert_int_eq(erm_call(cl, "bye", NULL, NULL), ERM_ECLOSED);
	srv_reap(pid);
}
END_TEST

/*
 * Many requests in flight while the daemon answers each as it reads:
 * writing must not deadlock against replies nobody reads yet.
 */
START_TEST(test_pipeline_many)
{
	enum { N = 2000 };
	json_t	*p, *res;
	int64_t	*ids;
	pid_t	 pid;
	char	 pad[2048];
	int	 i;

	pid = srv_fork(echo_server);
	memset(pad, 'p', sizeof(pad) - 1);
	pad[sizeof(pad) - 1] = '\0';
	ck_assert_ptr_nonnull(ids = calloc(N, sizeof(*ids)));
	for (i = 0; i < N; i++) {
		p = json_pack("{s:i, s:s}", "i", i, "pad", pad);
		ck_assert_int_eq(erm_send(cl, "echo", p, &ids[i]), ERM_OK);
		json_decref(p);
	}
	for (i = N - 1; i >= 0; i--) {
		ck_assert_int_eq(erm_wait(cl, ids[i], &res), ERM_OK);
		ck_assert_int_eq(json_integer_value(json_object_get(
		    json_object_get(res, "params"), "i")), i);
		json_decref(res);
	}
	free(ids);
	ck_assert_int_eq(erm_call(cl, "bye", NULL, NULL), ERM_ECLOSED);
	srv_reap(pid);
}
END_TEST

/*
 * The daemon reads a header over its max_frame, answers 1005 with id null
 * and hangs up while the client is still writing: erm_call reports the
 * daemon's reason, not just a broken pipe.
 */
static void
refuse_server(int fd)
{
	uint8_t	hdr[ERM_FRAME_HDR];

	if (frames_read_all(fd, hdr, sizeof(hdr)) == -1)
		_exit(1);
	srv_send(fd, "{\"id\":null,\"error\":{\"code\":1005,\"message\":"
	    "\"frame too large\",\"data\":{\"limit\":1048576}}}");
	close(fd);
}

START_TEST(test_refused_while_writing)
{
	json_t		*p;
	char		*big;
	pid_t		 pid;
	enum erm_status	 st;

	pid = srv_fork(refuse_server);
	big = malloc(4 * 1024 * 1024);
	memset(big, 'y', 4 * 1024 * 1024 - 1);
	big[4 * 1024 * 1024 - 1] = '\0';
	p = json_pack("{s:s}", "blob", big);
	free(big);
	st = erm_call(cl, "backup.create", p, NULL);
	json_decref(p);
	ck_assert_int_eq(st, ERM_EREPLY);
	ck_assert_int_eq(erm_last_error(cl)->code, ERM_LIMIT_EXCEEDED);
	ck_assert_int_eq(erm_call(cl, "ping", NULL, NULL), ERM_ECLOSED);
	srv_reap(pid);
}
END_TEST

/* Events nobody collects are capped, oldest dropped first. */
static void
flood_server(int fd)
{
	json_t	*ev;
	uint8_t	*frame;
	size_t	 len;
	int	 i;

	for (i = 0; i < CLIENT_EVENTS_MAX + 10; i++) {
		ev = json_pack("{s:s, s:{s:s, s:i, s:i}}", "method", "event",
		    "params", "type", "alert", "at", 1, "i", i);
		frame = erm_frame_encode(ev, CLIENT_MAX_FRAME, &len);
		write_all(fd, frame, len);
		free(frame);
		json_decref(ev);
	}
	close(fd);
}

START_TEST(test_event_cap)
{
	json_t	*ev;
	pid_t	 pid;
	int	 n = 0, first = -1;

	pid = srv_fork(flood_server);
	/* Reading to EOF queues every event the daemon sent. */
	ck_assert_int_eq(erm_call(cl, "ping", NULL, NULL), ERM_ECLOSED);
	srv_reap(pid);
	ck_assert_uint_eq(cl->nevents, CLIENT_EVENTS_MAX);
	while (erm_next_event(cl, 0, &ev) == ERM_OK) {
		if (first == -1)
			first = (int)json_integer_value(json_object_get(ev,
			    "i"));
		n++;
		json_decref(ev);
	}
	ck_assert_int_eq(n, CLIENT_EVENTS_MAX);
	ck_assert_int_eq(first, 10);
}
END_TEST

START_TEST(test_connect)
{
	struct erm_client	*c;
	struct sockaddr_un	 sun;
	char			 dir[] = "/tmp/test_liberm.XXXXXX";
	char			 path[64], longpath[200];
	int			 lfd, afd;
	json_t			*req;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/ermd.sock", dir);

	/* Nothing there: "daemon not running", errno kept. */
	ck_assert_int_eq(erm_connect(&c, path), ERM_ECONNECT);
	ck_assert_int_eq(errno, ENOENT);
	ck_assert_ptr_null(c);

	/* A socket file nobody listens on: refused, also not running. */
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	ck_assert_int_ne(lfd = socket(AF_UNIX, SOCK_STREAM, 0), -1);
	ck_assert_int_eq(bind(lfd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	close(lfd);
	ck_assert_int_eq(erm_connect(&c, path), ERM_ECONNECT);
	ck_assert_int_eq(errno, ECONNREFUSED);
	unlink(path);

	/* A listener, found through $ERMD_SOCKET. */
	ck_assert_int_ne(lfd = socket(AF_UNIX, SOCK_STREAM, 0), -1);
	ck_assert_int_eq(bind(lfd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	ck_assert_int_eq(listen(lfd, 4), 0);
	setenv("ERMD_SOCKET", path, 1);
	ck_assert_int_eq(erm_connect(&c, NULL), ERM_OK);
	unsetenv("ERMD_SOCKET");
	ck_assert_str_eq(erm_socket_path(c), path);
	ck_assert_int_ge(erm_fd(c), 0);
	ck_assert_int_ne(afd = accept(lfd, NULL, NULL), -1);
	ck_assert_int_eq(erm_send(c, "ping", NULL, &(int64_t){ 0 }), ERM_OK);
	ck_assert_ptr_nonnull(req = srv_recv(afd));
	json_decref(req);
	srv_send(afd, "{\"id\":1,\"result\":{\"pong\":true}}");
	ck_assert_int_eq(erm_wait(c, 1, NULL), ERM_OK);
	erm_close(c);
	close(afd);
	close(lfd);
	unlink(path);
	rmdir(dir);

	/* A path that does not fit in sun_path. */
	memset(longpath, 'a', sizeof(longpath) - 1);
	longpath[0] = '/';
	longpath[sizeof(longpath) - 1] = '\0';
	ck_assert_int_eq(erm_connect(&c, longpath), ERM_EINVAL);
	ck_assert_int_eq(erm_connect(&c, ""), ERM_EINVAL);
	ck_assert_int_eq(erm_connect(NULL, path), ERM_EINVAL);
}
END_TEST

static Suite *
liberm_suite(void)
{
	Suite	*s = suite_create("liberm");
	TCase	*tc = tcase_create("fake daemon");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 20);
	tcase_add_test(tc, test_pipeline_out_of_order);
	tcase_add_test(tc, test_error_reply);
	tcase_add_test(tc, test_oversized_frame);
	tcase_add_loop_test(tc, test_bad_frames, 0,
	    sizeof(bad_frames) / sizeof(bad_frames[0]));
	tcase_add_test(tc, test_unknown_notification);
	tcase_add_test(tc, test_partial_frame);
	tcase_add_test(tc, test_closed);
	tcase_add_test(tc, test_closed_mid_frame);
	tcase_add_test(tc, test_timeout);
	tcase_add_test(tc, test_null_id_error);
	tcase_add_test(tc, test_bad_arguments);
	tcase_add_test(tc, test_strerror);
	tcase_add_test(tc, test_call_roundtrip);
	tcase_add_test(tc, test_pipeline_many);
	tcase_add_test(tc, test_refused_while_writing);
	tcase_add_test(tc, test_event_cap);
	tcase_add_test(tc, test_connect);
	suite_add_tcase(s, tc);
	return (s);
}

int
main(void)
{
	SRunner	*sr;
	int	 failed;

	sr = srunner_create(liberm_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return (failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE);
}
