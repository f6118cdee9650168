/*
 * liberm: one blocking connection to ermd — framing, reply matching by id,
 * the event queue and timeouts. It never prints, never exits and keeps no
 * global state; everything lives in the handle.
 */

#include <sys/types.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "erm_proto.h"
#include "erm.h"

#define ERM_API		__attribute__((visibility("default")))

/*
 * Ceiling on one frame in either direction. The daemon refuses requests
 * above its max_frame (1 MiB by default), but its replies (a long
 * breaker.list, error.list) may be larger; past 64 MiB it is not ermd.
 */
#define CLIENT_MAX_FRAME	(64 * 1024 * 1024)

/* The receive buffer starts here and shrinks back after a big frame. */
#define CLIENT_RBUF_MIN		(64 * 1024)
#define CLIENT_RBUF_KEEP	(1024 * 1024)

/*
 * Events nobody collects are dropped oldest first past this many, so a
 * subscriber that only makes calls cannot grow without bound.
 */
#define CLIENT_EVENTS_MAX	4096

/*
 * A request in flight. It stays on the list from erm_send until its reply
 * is collected by erm_wait, so a reply can only match an id we sent and
 * waiting for an id we never sent fails at once instead of hanging.
 */
struct erm_pending {
	TAILQ_ENTRY(erm_pending) entry;
	int64_t		 id;
	int		 abandoned;	/* erm_call gave up: drop the reply */
	json_t		*reply;		/* new reference once it arrived */
};
TAILQ_HEAD(erm_pending_list, erm_pending);

struct erm_event {
	TAILQ_ENTRY(erm_event) entry;
	json_t		*params;	/* new reference */
};
TAILQ_HEAD(erm_event_list, erm_event);

struct erm_client {
	int			 fd;
	char			*path;
	int			 timeout_ms;
	int64_t			 next_id;

	/*
	 * Once the stream is unusable (EOF, garbage, a failed system call)
	 * every further I/O returns the same status, errno and message.
	 * Replies and events that arrived before stay collectable.
	 */
	enum erm_status		 broken;
	int			 broken_errno;
	char			 broken_msg[256];
	int			 wdead;		/* writes fail; read until EOF */

	uint8_t			*rbuf;		/* [rstart, rend) unparsed */
	size_t			 rsize, rstart, rend;
	uint8_t			*wbuf;		/* [wstart, wend) unsent */
	size_t			 wsize, wstart, wend;

	struct erm_pending_list	 pending;
	struct erm_event_list	 events;
	size_t			 nevents;
	json_t			*stray;		/* an error reply with id null */

	struct erm_error	 err;
};

static const char *const status_names[] = {
	[ERM_OK] = "success",
	[ERM_EREPLY] = "the daemon returned an error",
	[ERM_ECONNECT] = "cannot connect to the daemon",
	[ERM_ESYS] = "system call failed",
	[ERM_EPROTO] = "protocol error",
	[ERM_ECLOSED] = "connection closed by the daemon",
	[ERM_ETIMEDOUT] = "timed out",
	[ERM_ENOMEM] = "out of memory",
	[ERM_EINVAL] = "invalid argument",
};

static int64_t
now_ms(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
}

/* An absolute deadline timeout_ms from now; -1 (never) when negative. */
static int64_t
deadline_after(int timeout_ms)
{
	if (timeout_ms < 0)
		return (-1);
	return (now_ms() + timeout_ms);
}

static int
poll_timeout(int64_t deadline)
{
	int64_t	left;

	if (deadline < 0)
		return (-1);
	left = deadline - now_ms();
	if (left < 0)
		return (0);
	if (left > INT_MAX)
		return (INT_MAX);
	return ((int)left);
}

static void
err_clear(struct erm_client *c)
{
	json_decref(c->err.data);
	c->err.data = NULL;
	c->err.code = 0;
	c->err.message[0] = '\0';
}

/*
 * Describe a local failure in the handle's error (code 0, no data) and
 * return status. errno is left as it was so that ERM_ESYS keeps it.
 */
static enum erm_status
client_fail(struct erm_client *c, enum erm_status status, const char *fmt,
    ...)
{
	va_list	ap;
	int	saved = errno;

	err_clear(c);
	va_start(ap, fmt);
	vsnprintf(c->err.message, sizeof(c->err.message), fmt, ap);
	va_end(ap);
	errno = saved;
	return (status);
}

/* Mark the stream unusable; every later I/O returns the same failure. */
static enum erm_status
client_break(struct erm_client *c, enum erm_status status, const char *fmt,
    ...)
{
	va_list	ap;
	int	saved = errno;

	c->broken = status;
	c->broken_errno = saved;
	va_start(ap, fmt);
	vsnprintf(c->broken_msg, sizeof(c->broken_msg), fmt, ap);
	va_end(ap);
	/* Nothing more can be sent; the queued bytes are lost. */
	c->wstart = c->wend = 0;
	errno = saved;
	return (client_fail(c, status, "%s", c->broken_msg));
}

static enum erm_status
client_broken(struct erm_client *c)
{
	errno = c->broken_errno;
	return (client_fail(c, c->broken, "%s", c->broken_msg));
}

static struct erm_pending *
pending_find(struct erm_client *c, int64_t id)
{
	struct erm_pending	*p;

	TAILQ_FOREACH(p, &c->pending, entry)
		if (p->id == id)
			return (p);
	return (NULL);
}

static void
pending_free(struct erm_client *c, struct erm_pending *p)
{
	TAILQ_REMOVE(&c->pending, p, entry);
	json_decref(p->reply);
	free(p);
}

/* Queue an event's params (borrowed; a reference is taken). */
static enum erm_status
client_queue_event(struct erm_client *c, json_t *params)
{
	struct erm_event	*ev;

	if (c->nevents >= CLIENT_EVENTS_MAX) {
		ev = TAILQ_FIRST(&c->events);
		TAILQ_REMOVE(&c->events, ev, entry);
		json_decref(ev->params);
		free(ev);
		c->nevents--;
	}
	if ((ev = malloc(sizeof(*ev))) == NULL)
		return (client_fail(c, ERM_ENOMEM, "out of memory"));
	ev->params = json_incref(params);
	TAILQ_INSERT_TAIL(&c->events, ev, entry);
	c->nevents++;
	return (ERM_OK);
}

/* A reply must carry exactly one of an object result or a coded error. */
static int
reply_valid(json_t *msg)
{
	json_t	*result, *error, *code, *message;

	result = json_object_get(msg, "result");
	error = json_object_get(msg, "error");
	if ((result == NULL) == (error == NULL))
		return (0);
	if (result != NULL)
		return (json_is_object(result));
	if (!json_is_object(error))
		return (0);
	code = json_object_get(error, "code");
	message = json_object_get(error, "message");
	return (json_is_integer(code) &&
	    (message == NULL || json_is_string(message)));
}

/*
 * Sort one frame body: an event goes to the queue, a reply to its pending
 * request, an error with id null (the daemon could not tell which request
 * it answers, e.g. a frame over its limit) to whoever waits next.
 */
static enum erm_status
client_message(struct erm_client *c, const uint8_t *body, size_t len)
{
	json_error_t		 jerr;
	json_t			*msg, *method, *params, *id;
	struct erm_pending	*p;
	enum erm_status		 st = ERM_OK;

	msg = json_loadb((const char *)body, len, JSON_REJECT_DUPLICATES,
	    &jerr);
	if (msg == NULL)
		return (client_break(c, ERM_EPROTO,
		    "invalid JSON from the daemon: %s", jerr.text));
	if (!json_is_object(msg)) {
		st = client_break(c, ERM_EPROTO,
		    "message from the daemon is not an object");
		goto out;
	}

	if ((method = json_object_get(msg, "method")) != NULL) {
		if (!json_is_string(method)) {
			st = client_break(c, ERM_EPROTO,
			    "'method' from the daemon is not a string");
			goto out;
		}
		/* Notifications a newer daemon may add are ignored. */
		if (strcmp(json_string_value(method), "event") != 0)
			goto out;
		params = json_object_get(msg, "params");
		if (!json_is_object(params)) {
			st = client_break(c, ERM_EPROTO,
			    "event without a params object");
			goto out;
		}
		st = client_queue_event(c, params);
		goto out;
	}

	id = json_object_get(msg, "id");
	if (id == NULL) {
		st = client_break(c, ERM_EPROTO,
		    "message with neither 'id' nor 'method'");
		goto out;
	}
	if (!reply_valid(msg)) {
		st = client_break(c, ERM_EPROTO,
		    "malformed reply (needs an object 'result' or an 'error' "
		    "with an integer 'code')");
		goto out;
	}
	if (json_is_null(id)) {
		if (json_object_get(msg, "error") == NULL) {
			st = client_break(c, ERM_EPROTO,
			    "successful reply with id null");
			goto out;
		}
		json_decref(c->stray);
		c->stray = msg;
		return (ERM_OK);
	}
	if (!json_is_integer(id) ||
	    (p = pending_find(c, json_integer_value(id))) == NULL ||
	    p->reply != NULL) {
		st = client_break(c, ERM_EPROTO,
		    "reply to a request that is not in flight");
		goto out;
	}
	if (p->abandoned)
		pending_free(c, p);
	else {
		p->reply = msg;
		return (ERM_OK);
	}
out:
	json_decref(msg);
	return (st);
}

/* Handle every complete frame at the front of the receive buffer. */
static enum erm_status
client_parse(struct erm_client *c)
{
	const uint8_t	*body;
	size_t		 len, consumed;
	enum erm_status	 st;

	for (;;) {
		switch (erm_frame_parse(c->rbuf + c->rstart,
		    c->rend - c->rstart, CLIENT_MAX_FRAME, &body, &len,
		    &consumed)) {
		case ERM_FRAME_MORE:
			return (ERM_OK);
		case ERM_FRAME_EMPTY:
			return (client_break(c, ERM_EPROTO,
			    "empty frame from the daemon"));
		case ERM_FRAME_TOO_BIG:
			return (client_break(c, ERM_EPROTO,
			    "frame of %lu bytes from the daemon exceeds the "
			    "%d MiB limit", (unsigned long)erm_frame_declared(
			    c->rbuf + c->rstart, c->rend - c->rstart),
			    CLIENT_MAX_FRAME / (1024 * 1024)));
		case ERM_FRAME_OK:
			st = client_message(c, body, len);
			c->rstart += consumed;
			if (st != ERM_OK)
				return (st);
			break;
		}
	}
}

/*
 * Make room for the next read. The frame at the front is always incomplete
 * (client_parse took the complete ones) and its header, once present, has
 * passed the size check, so the buffer never exceeds CLIENT_MAX_FRAME + 4.
 */
static enum erm_status
client_rbuf_room(struct erm_client *c)
{
	size_t	 have, need;
	uint8_t	*nb;

	if (c->rstart == c->rend) {
		c->rstart = c->rend = 0;
		if (c->rsize > CLIENT_RBUF_KEEP) {
			free(c->rbuf);
			c->rbuf = NULL;
			c->rsize = 0;
		}
	}
	have = c->rend - c->rstart;
	need = CLIENT_RBUF_MIN;
	if (have >= ERM_FRAME_HDR && ERM_FRAME_HDR +
	    (size_t)erm_frame_declared(c->rbuf + c->rstart, have) > need)
		need = ERM_FRAME_HDR +
		    erm_frame_declared(c->rbuf + c->rstart, have);
	if (c->rstart > 0 && (c->rend == c->rsize || c->rsize < need)) {
		memmove(c->rbuf, c->rbuf + c->rstart, have);
		c->rstart = 0;
		c->rend = have;
	}
	if (c->rsize < need) {
		if ((nb = realloc(c->rbuf, need)) == NULL)
			return (client_fail(c, ERM_ENOMEM, "out of memory"));
		c->rbuf = nb;
		c->rsize = need;
	}
	return (ERM_OK);
}

static enum erm_status
client_read(struct erm_client *c)
{
	ssize_t		n;
	enum erm_status	st;

	if ((st = client_rbuf_room(c)) != ERM_OK)
		return (st);
	n = recv(c->fd, c->rbuf + c->rend, c->rsize - c->rend, MSG_DONTWAIT);
	if (n == -1) {
		if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
			return (ERM_OK);
		/* The daemon closed with our requests unread: a hang-up too. */
		if (errno != ECONNRESET)
			return (client_break(c, ERM_ESYS, "recv: %s",
			    strerror(errno)));
	}
	if (n <= 0)
		return (client_break(c, ERM_ECLOSED,
		    "the daemon closed the connection%s",
		    c->rend > c->rstart ? " mid-frame" : ""));
	c->rend += (size_t)n;
	return (client_parse(c));
}

/*
 * A write that fails because the daemon hung up does not end the handle at
 * once: the daemon may have said why (an id-null error, say, for a request
 * over its max_frame) before closing, so reading goes on until EOF.
 */
static enum erm_status
client_write(struct erm_client *c)
{
	ssize_t	n;

	n = send(c->fd, c->wbuf + c->wstart, c->wend - c->wstart,
	    MSG_NOSIGNAL | MSG_DONTWAIT);
	if (n == -1) {
		if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
			return (ERM_OK);
		if (errno == EPIPE || errno == ECONNRESET) {
			c->wdead = 1;
			c->wstart = c->wend = 0;
			return (ERM_OK);
		}
		return (client_break(c, ERM_ESYS, "send: %s",
		    strerror(errno)));
	}
	c->wstart += (size_t)n;
	if (c->wstart == c->wend)
		c->wstart = c->wend = 0;
	return (ERM_OK);
}

/*
 * One round of I/O: wait until the socket is readable (or writable while
 * bytes are queued) or the deadline passes, then move what can be moved.
 * Reading while writing keeps a pipelining caller from deadlocking with a
 * daemon that stops reading while its replies go unread.
 */
static enum erm_status
client_io(struct erm_client *c, int64_t deadline)
{
	struct pollfd	pfd;
	enum erm_status	st;
	int		n;

	if (c->broken != ERM_OK)
		return (client_broken(c));
	pfd.fd = c->fd;
	pfd.events = POLLIN;
	if (c->wend > c->wstart)
		pfd.events |= POLLOUT;
	pfd.revents = 0;
	n = poll(&pfd, 1, poll_timeout(deadline));
	if (n == -1) {
		if (errno == EINTR)
			return (ERM_OK);
		return (client_fail(c, ERM_ESYS, "poll: %s", strerror(errno)));
	}
	if (n == 0)
		return (client_fail(c, ERM_ETIMEDOUT,
		    "no answer from the daemon in time"));
	if (pfd.revents & POLLNVAL) {
		errno = EBADF;
		return (client_break(c, ERM_ESYS, "socket is not open"));
	}
	/* Read first: the daemon's last words come before its hang-up. */
	if (pfd.revents & (POLLIN | POLLHUP | POLLERR)) {
		if ((st = client_read(c)) != ERM_OK)
			return (st);
	}
	if ((pfd.revents & (POLLOUT | POLLERR)) && c->wend > c->wstart)
		return (client_write(c));
	return (ERM_OK);
}

/* Append one request frame to the send queue. */
static enum erm_status
client_queue_request(struct erm_client *c, int64_t id, const char *method,
    json_t *params)
{
	json_t		*req;
	size_t		 n, need;
	uint8_t		*nb;
	enum erm_status	 st = ERM_OK;

	req = json_object();
	if (req == NULL || json_object_set_new(req, "id",
	    json_integer(id)) == -1)
		goto nomem;
	if (json_object_set_new(req, "method", json_string(method)) == -1) {
		st = client_fail(c, ERM_EINVAL,
		    "method name is not valid UTF-8");
		goto out;
	}
	if (params != NULL) {
		if (json_object_set(req, "params", params) == -1)
			goto nomem;
	} else if (json_object_set_new(req, "params", json_object()) == -1)
		goto nomem;

	n = json_dumpb(req, NULL, 0, JSON_COMPACT);
	if (n == 0) {
		st = client_fail(c, ERM_EINVAL, "params cannot be serialised");
		goto out;
	}
	if (n > CLIENT_MAX_FRAME) {
		st = client_fail(c, ERM_EINVAL, "request of %zu bytes exceeds "
		    "the %d MiB limit", n, CLIENT_MAX_FRAME / (1024 * 1024));
		goto out;
	}
	if (c->wstart > 0) {
		memmove(c->wbuf, c->wbuf + c->wstart, c->wend - c->wstart);
		c->wend -= c->wstart;
		c->wstart = 0;
	}
	need = c->wend + ERM_FRAME_HDR + n;
	if (need > c->wsize) {
		if ((nb = realloc(c->wbuf, need)) == NULL)
			goto nomem;
		c->wbuf = nb;
		c->wsize = need;
	}
	if (json_dumpb(req, (char *)c->wbuf + c->wend + ERM_FRAME_HDR, n,
	    JSON_COMPACT) != n)
		goto nomem;
	erm_frame_header(c->wbuf + c->wend, (uint32_t)n);
	c->wend += ERM_FRAME_HDR + n;
	goto out;
nomem:
	st = client_fail(c, ERM_ENOMEM, "out of memory");
out:
	json_decref(req);
	return (st);
}

/*
 * Queue a request and write it out by the deadline. On ERM_OK the request
 * is written (or the daemon hung up: c->wdead, and the reply wait tells
 * why); on ERM_ETIMEDOUT it stays queued and in flight, to be written by
 * later calls; on any other status it was never sent and *id is unset.
 */
static enum erm_status
client_send(struct erm_client *c, const char *method, json_t *params,
    int64_t *id, int64_t deadline)
{
	struct erm_pending	*p;
	enum erm_status		 st;

	if (method == NULL || *method == '\0')
		return (client_fail(c, ERM_EINVAL, "no method"));
	if (params != NULL && !json_is_object(params))
		return (client_fail(c, ERM_EINVAL,
		    "params must be an object"));
	if (c->broken != ERM_OK)
		return (client_broken(c));
	if (c->wdead)
		goto closed;

	/*
	 * Bytes left from an earlier timed-out send go first; refusing a new
	 * request until they are out caps the queue at about two frames.
	 */
	while (c->wend > c->wstart && !c->wdead) {
		if ((st = client_io(c, deadline)) != ERM_OK)
			return (st);
	}
	if (c->wdead)
		goto closed;

	if ((p = calloc(1, sizeof(*p))) == NULL)
		return (client_fail(c, ERM_ENOMEM, "out of memory"));
	p->id = c->next_id;
	if ((st = client_queue_request(c, p->id, method, params)) != ERM_OK) {
		free(p);
		return (st);
	}
	c->next_id++;
	TAILQ_INSERT_TAIL(&c->pending, p, entry);
	*id = p->id;

	while (c->wend > c->wstart && !c->wdead) {
		if ((st = client_io(c, deadline)) == ERM_OK)
			continue;
		if (st == ERM_ETIMEDOUT)
			return (st);
		/*
		 * The daemon said why before it hung up (the read side saw
		 * EOF before the write side failed): the wait reports it.
		 */
		if (c->stray != NULL)
			return (ERM_OK);
		pending_free(c, p);
		return (st);
	}
	return (ERM_OK);
closed:
	errno = EPIPE;
	return (client_fail(c, ERM_ECLOSED,
	    "the daemon closed the connection"));
}

/* Fill the handle's error from an error reply; steals reply. */
static enum erm_status
client_take_error(struct erm_client *c, json_t *reply)
{
	json_t		*error, *message, *data;

	err_clear(c);
	error = json_object_get(reply, "error");
	c->err.code = (int)json_integer_value(json_object_get(error, "code"));
	message = json_object_get(error, "message");
	snprintf(c->err.message, sizeof(c->err.message), "%s",
	    json_is_string(message) ? json_string_value(message) : "");
	data = json_object_get(error, "data");
	if (data != NULL && !json_is_null(data))
		c->err.data = json_incref(data);
	json_decref(reply);
	return (ERM_EREPLY);
}

static enum erm_status
client_take_stray(struct erm_client *c)
{
	json_t	*reply = c->stray;

	c->stray = NULL;
	return (client_take_error(c, reply));
}

/* Collect the reply to id, doing I/O until it arrives or the deadline. */
static enum erm_status
client_wait(struct erm_client *c, int64_t id, json_t **result,
    int64_t deadline)
{
	struct erm_pending	*p;
	json_t			*reply;
	enum erm_status		 st;

	if ((p = pending_find(c, id)) == NULL || p->abandoned)
		return (client_fail(c, ERM_EINVAL,
		    "request %lld is not in flight", (long long)id));
	while (p->reply == NULL) {
		if (c->stray != NULL) {
			pending_free(c, p);
			return (client_take_stray(c));
		}
		if ((st = client_io(c, deadline)) == ERM_OK)
			continue;
		/* A broken stream will never bring this reply. */
		if (st != ERM_ETIMEDOUT && c->broken != ERM_OK)
			pending_free(c, p);
		return (st);
	}
	reply = json_incref(p->reply);
	pending_free(c, p);
	if (json_object_get(reply, "error") != NULL)
		return (client_take_error(c, reply));
	if (result != NULL)
		*result = json_incref(json_object_get(reply, "result"));
	json_decref(reply);
	return (ERM_OK);
}

/* A handle with no socket yet; NULL when out of memory. */
static struct erm_client *
client_new(const char *path)
{
	struct erm_client	*c;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return (NULL);
	c->fd = -1;
	c->next_id = 1;
	TAILQ_INIT(&c->pending);
	TAILQ_INIT(&c->events);
	if ((c->path = strdup(path)) == NULL) {
		free(c);
		errno = ENOMEM;
		return (NULL);
	}
	return (c);
}

ERM_API const char *
erm_strerror(enum erm_status status)
{
	if ((unsigned)status >= sizeof(status_names) / sizeof(status_names[0]))
		return ("unknown status");
	return (status_names[status]);
}

ERM_API enum erm_status
erm_connect(struct erm_client **out, const char *path)
{
	struct erm_client	*c;
	struct sockaddr_un	 sun;
	const char		*env;
	int			 saved;

	if (out == NULL)
		return (ERM_EINVAL);
	*out = NULL;
	if (path == NULL) {
		env = getenv("ERMD_SOCKET");
		path = (env != NULL && *env != '\0') ? env : ERM_DEFAULT_SOCKET;
	}
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (*path == '\0') {
		errno = ENOENT;
		return (ERM_EINVAL);
	}
	if (strlen(path) >= sizeof(sun.sun_path)) {
		errno = ENAMETOOLONG;
		return (ERM_EINVAL);
	}
	memcpy(sun.sun_path, path, strlen(path) + 1);

	if ((c = client_new(path)) == NULL)
		return (ERM_ENOMEM);
	if ((c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		goto fail;
	if (connect(c->fd, (struct sockaddr *)&sun, sizeof(sun)) == -1)
		goto fail;
	*out = c;
	return (ERM_OK);
fail:
	saved = errno;
	erm_close(c);
	errno = saved;
	if (saved == ECONNREFUSED || saved == ENOENT)
		return (ERM_ECONNECT);
	return (ERM_ESYS);
}

ERM_API void
erm_close(struct erm_client *c)
{
	struct erm_pending	*p;
	struct erm_event	*ev;

	if (c == NULL)
		return;
	while ((p = TAILQ_FIRST(&c->pending)) != NULL)
		pending_free(c, p);
	while ((ev = TAILQ_FIRST(&c->events)) != NULL) {
		TAILQ_REMOVE(&c->events, ev, entry);
		json_decref(ev->params);
		free(ev);
	}
	json_decref(c->stray);
	err_clear(c);
	if (c->fd != -1)
		close(c->fd);
	free(c->rbuf);
	free(c->wbuf);
	free(c->path);
	free(c);
}

ERM_API const char *
erm_socket_path(const struct erm_client *c)
{
	if (c == NULL)
		return (NULL);
	return (c->path);
}

ERM_API void
erm_set_timeout(struct erm_client *c, int timeout_ms)
{
	if (c == NULL)
		return;
	c->timeout_ms = timeout_ms > 0 ? timeout_ms : 0;
}

ERM_API enum erm_status
erm_call(struct erm_client *c, const char *method, json_t *params,
    json_t **result)
{
	struct erm_pending	*p;
	int64_t			 deadline, id = -1;
	enum erm_status		 st;

	if (c == NULL)
		return (ERM_EINVAL);
	err_clear(c);
	deadline = c->timeout_ms > 0 ? deadline_after(c->timeout_ms) : -1;
	st = client_send(c, method, params, &id, deadline);
	if (st == ERM_OK)
		st = client_wait(c, id, result, deadline);
	/*
	 * The caller will not wait again for a request that timed out:
	 * drop its reply when it comes.
	 */
	if (st == ERM_ETIMEDOUT && (p = pending_find(c, id)) != NULL) {
		if (p->reply != NULL)
			pending_free(c, p);
		else
			p->abandoned = 1;
	}
	return (st);
}

ERM_API enum erm_status
erm_send(struct erm_client *c, const char *method, json_t *params,
    int64_t *id)
{
	struct erm_pending	*p;
	int64_t			 deadline, sent = -1;
	enum erm_status		 st;

	if (c == NULL || id == NULL)
		return (ERM_EINVAL);
	err_clear(c);
	deadline = c->timeout_ms > 0 ? deadline_after(c->timeout_ms) : -1;
	/*
	 * ERM_ETIMEDOUT with *id -1: bytes of an earlier request were still
	 * going out and this one was not queued. With a real id: it is queued
	 * and in flight, and erm_wait collects its reply.
	 */
	st = client_send(c, method, params, &sent, deadline);
	if (st == ERM_OK || st == ERM_ETIMEDOUT)
		*id = sent;
	if (st != ERM_OK || (!c->wdead && c->broken == ERM_OK))
		return (st);

	/*
	 * The daemon hung up while we wrote. Read what it still said so the
	 * caller gets its reason (ERM_EREPLY) rather than a bare ERM_ECLOSED.
	 */
	while (c->stray == NULL && (st = client_io(c, deadline)) == ERM_OK)
		;
	if ((p = pending_find(c, sent)) != NULL && p->reply != NULL)
		return (ERM_OK);	/* it was answered after all */
	if (p != NULL)
		pending_free(c, p);
	*id = -1;
	if (c->stray != NULL)
		return (client_take_stray(c));
	return (st == ERM_ETIMEDOUT ? client_fail(c, ERM_ECLOSED,
	    "the daemon closed the connection") : st);
}

ERM_API enum erm_status
erm_wait(struct erm_client *c, int64_t id, json_t **result)
{
	if (c == NULL)
		return (ERM_EINVAL);
	err_clear(c);
	return (client_wait(c, id, result,
	    c->timeout_ms > 0 ? deadline_after(c->timeout_ms) : -1));
}

ERM_API const struct erm_error *
erm_last_error(const struct erm_client *c)
{
	if (c == NULL)
		return (NULL);
	return (&c->err);
}

ERM_API enum erm_status
erm_subscribe(struct erm_client *c, const char *const *types)
{
	json_t		*params, *list;
	size_t		 i;
	enum erm_status	 st;

	if (c == NULL)
		return (ERM_EINVAL);
	if ((params = json_object()) == NULL)
		return (client_fail(c, ERM_ENOMEM, "out of memory"));
	if (types != NULL) {
		if ((list = json_array()) == NULL ||
		    json_object_set_new(params, "types", list) == -1) {
			json_decref(params);
			return (client_fail(c, ERM_ENOMEM, "out of memory"));
		}
		for (i = 0; types[i] != NULL; i++) {
			if (json_array_append_new(list,
			    json_string(types[i])) == -1) {
				json_decref(params);
				return (client_fail(c, ERM_EINVAL,
				    "event type is not valid UTF-8"));
			}
		}
	}
	st = erm_call(c, "events.subscribe", params, NULL);
	json_decref(params);
	return (st);
}

ERM_API enum erm_status
erm_next_event(struct erm_client *c, int timeout_ms, json_t **event)
{
	struct erm_event	*ev;
	int64_t			 deadline;
	enum erm_status		 st;

	if (c == NULL || event == NULL)
		return (ERM_EINVAL);
	err_clear(c);
	deadline = deadline_after(timeout_ms);
	while ((ev = TAILQ_FIRST(&c->events)) == NULL) {
		if (c->stray != NULL)
			return (client_take_stray(c));
		if ((st = client_io(c, deadline)) != ERM_OK)
			return (st);
	}
	TAILQ_REMOVE(&c->events, ev, entry);
	c->nevents--;
	*event = ev->params;	/* the queue's reference passes on */
	free(ev);
	return (ERM_OK);
}

ERM_API int
erm_fd(const struct erm_client *c)
{
	if (c == NULL)
		return (-1);
	return (c->fd);
}
