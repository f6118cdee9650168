/* One client connection; see conn.h. */

#include <sys/socket.h>
#include <sys/types.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "clock.h"
#include "config.h"
#include "conn.h"
#include "dispatch.h"
#include "erm_proto.h"
#include "ermd.h"
#include "log.h"

#define IN_INITIAL	4096
#define IN_KEEP		65536	/* shrink back after a large frame */
#define MAX_HOOKS	8

static struct conn	*live;		/* doubly linked */
static struct conn	*dead_list;	/* singly linked through next */
static unsigned		 nlive;
static uint64_t		 next_id = 1;
static struct event	*reap_ev;
static conn_close_hook	 hooks[MAX_HOOKS];
static int		 nhooks;

static void	conn_read(int, short, void *);
static void	conn_write(int, short, void *);
static void	conn_flush(struct conn *);

void
conn_on_close(conn_close_hook fn)
{
	if (nhooks < MAX_HOOKS)
		hooks[nhooks++] = fn;
}

unsigned
conn_count(void)
{
	return (nlive);
}

static void
conn_free(struct conn *c)
{
	clock_timer_free(c->read_timer);
	clock_timer_free(c->idle_timer);
	if (c->ev_read != NULL)
		event_free(c->ev_read);
	if (c->ev_write != NULL)
		event_free(c->ev_write);
	if (c->out != NULL)
		evbuffer_free(c->out);
	free(c->in);
	free(c);
}

/*
 * Connections are never freed from inside their own callbacks (a handler
 * deep in dispatch may still hold the pointer): conn_close moves them to the
 * dead list and this event, run from the loop, frees the ones no request
 * refers to any more.
 */
static void
reap(int fd, short ev, void *arg)
{
	struct conn	**pp, *c;

	(void)fd;
	(void)ev;
	(void)arg;
	for (pp = &dead_list; (c = *pp) != NULL;) {
		if (c->refs > 0) {
			pp = &c->next;
			continue;
		}
		*pp = c->next;
		conn_free(c);
	}
}

static void
schedule_reap(void)
{
	if (reap_ev == NULL)
		reap_ev = event_new(ermd.base, -1, 0, reap, NULL);
	if (reap_ev != NULL)
		event_active(reap_ev, 0, 0);
}

void
conn_ref(struct conn *c)
{
	c->refs++;
}

void
conn_unref(struct conn *c)
{
	if (--c->refs == 0 && c->dead)
		schedule_reap();
}

void
conn_request_begin(struct conn *c)
{
	conn_ref(c);
	c->inflight++;
}

void
conn_request_end(struct conn *c)
{
	c->inflight--;
	if (c->paused && !c->dead && c->inflight < ermd.cfg->max_inflight) {
		c->paused = 0;
		log_debug("conn %llu: reading again",
		    (unsigned long long)c->id);
		event_add(c->ev_read, NULL);
		/* The frames read before the pause go first. */
		event_active(c->ev_read, EV_READ, 0);
	}
	conn_unref(c);
}

/* Too many requests unanswered: read nothing more for now. */
static void
pause_reading(struct conn *c)
{
	log_debug("conn %llu: %d requests unanswered, not reading",
	    (unsigned long long)c->id, c->inflight);
	c->paused = 1;
	event_del(c->ev_read);
	/* What waits in the buffer is not a slow client's partial frame. */
	clock_timer_cancel(c->read_timer);
}

static void
read_timeout(void *arg)
{
	struct conn	*c = arg;

	log_debug("conn %llu: partial frame older than %lld ms",
	    (unsigned long long)c->id, (long long)ermd.cfg->read_timeout_ms);
	conn_fatal(c, ERM_TIMEOUT, json_pack("{s:s, s:I}", "limit",
	    "read_timeout_ms", "value", (json_int_t)ermd.cfg->read_timeout_ms),
	    "partial frame not completed within read_timeout_ms");
}

static void
arm_idle(struct conn *c)
{
	if (ermd.cfg->idle_timeout_ms > 0)
		clock_timer_after(c->idle_timer,
		    (uint64_t)ermd.cfg->idle_timeout_ms);
	else
		clock_timer_cancel(c->idle_timer);
}

/* Subscribers and connections with requests in flight are not idle. */
static void
idle_timeout(void *arg)
{
	struct conn	*c = arg;

	if (c->refs > 1 || c->sub.mask != 0) {
		arm_idle(c);
		return;
	}
	log_debug("conn %llu: idle", (unsigned long long)c->id);
	conn_close(c, "idle timeout");
}

static void
deliver_event(void *ctx, const uint8_t *frame, size_t len)
{
	conn_send_frame(ctx, frame, len);
}

static void
read_peer(struct conn *c)
{
	struct ucred	cred;
	socklen_t	len = sizeof(cred);
	gid_t		groups[CONN_MAX_GROUPS];

	c->uid = (uid_t)-1;
	c->gid = (gid_t)-1;
	if (getsockopt(c->fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) {
		c->pid = cred.pid;
		c->uid = cred.uid;
		c->gid = cred.gid;
	}
	/* Supplementary groups of the peer as of connect (Linux >= 4.13). */
	len = sizeof(groups);
	if (getsockopt(c->fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) == 0) {
		c->ngroups = (int)(len / sizeof(gid_t));
		memcpy(c->groups, groups, len);
	}
}

struct conn *
conn_new(int fd)
{
	struct conn	*c;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		goto fail;
	c->fd = fd;
	c->id = next_id++;
	c->refs = 1;
	c->in_cap = IN_INITIAL;
	if ((c->in = malloc(c->in_cap)) == NULL ||
	    (c->out = evbuffer_new()) == NULL ||
	    (c->ev_read = event_new(ermd.base, fd, EV_READ | EV_PERSIST,
	    conn_read, c)) == NULL ||
	    (c->ev_write = event_new(ermd.base, fd, EV_WRITE, conn_write,
	    c)) == NULL ||
	    (c->read_timer = clock_timer_new(read_timeout, c)) == NULL ||
	    (c->idle_timer = clock_timer_new(idle_timeout, c)) == NULL ||
	    event_add(c->ev_read, NULL) == -1)
		goto fail;
	read_peer(c);
	c->sub.deliver = deliver_event;
	c->sub.ctx = c;
	c->next = live;
	if (live != NULL)
		live->prev = c;
	live = c;
	nlive++;
	arm_idle(c);
	log_debug("conn %llu: uid %d pid %d", (unsigned long long)c->id,
	    (int)c->uid, (int)c->pid);
	return (c);
fail:
	log_warnx("%s: out of memory", __func__);
	if (c != NULL)
		conn_free(c);
	close(fd);
	return (NULL);
}

void
conn_close(struct conn *c, const char *why)
{
	int	i;

	if (c->dead)
		return;
	log_debug("conn %llu: closed (%s)", (unsigned long long)c->id, why);
	c->dead = 1;
	events_unsubscribe(&c->sub);
	event_del(c->ev_read);
	event_del(c->ev_write);
	clock_timer_cancel(c->read_timer);
	clock_timer_cancel(c->idle_timer);
	close(c->fd);
	c->fd = -1;
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		live = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	nlive--;
	c->prev = NULL;
	c->next = dead_list;
	dead_list = c;
	for (i = 0; i < nhooks; i++)
		hooks[i](c);
	conn_unref(c);
}

void
conn_close_all(void)
{
	while (live != NULL)
		conn_close(live, "shutdown");
}

int
conn_is_admin(const struct conn *c)
{
	int	i;

	if (c->uid == 0 || c->uid == ermd.euid)
		return (1);
	if (!ermd.cfg->has_admin_gid)
		return (0);
	if (c->gid == ermd.cfg->admin_gid)
		return (1);
	for (i = 0; i < c->ngroups; i++)
		if (c->groups[i] == ermd.cfg->admin_gid)
			return (1);
	return (0);
}

void
conn_send_frame(struct conn *c, const uint8_t *frame, size_t len)
{
	if (c->dead)
		return;
	if (evbuffer_get_length(c->out) + len >
	    (size_t)ermd.cfg->max_output_bytes) {
		log_warnx("conn %llu (pid %d): more than %lld bytes unread, "
		    "closing", (unsigned long long)c->id, (int)c->pid,
		    (long long)ermd.cfg->max_output_bytes);
		conn_close(c, "output limit");
		return;
	}
	if (evbuffer_add(c->out, frame, len) == -1) {
		conn_close(c, "out of memory");
		return;
	}
	if (!c->in_callback)
		conn_flush(c);
}

/*
 * Replies are serialised into one scratch buffer reused for every frame
 * (the loop is single-threaded), then copied into the connection's output.
 * A buffer grown by a large reply is given back once it is done.
 */
static struct erm_buf	scratch;

#define SCRATCH_KEEP	65536

static void
scratch_reset(void)
{
	static const uint8_t	hdr[ERM_FRAME_HDR] = { 0, 0, 0, 0 };

	if (scratch.cap > SCRATCH_KEEP)
		erm_buf_free(&scratch);
	scratch.len = 0;
	scratch.max = UINT32_MAX;
	(void)erm_buf_add(&scratch, hdr, sizeof(hdr));
}

static void
scratch_send(struct conn *c, int ok)
{
	if (!ok || scratch.len <= ERM_FRAME_HDR) {
		log_warnx("conn %llu: cannot encode a reply",
		    (unsigned long long)c->id);
		conn_close(c, "encode failure");
		return;
	}
	erm_frame_header(scratch.p, (uint32_t)(scratch.len - ERM_FRAME_HDR));
	conn_send_frame(c, scratch.p, scratch.len);
}

void
conn_send(struct conn *c, json_t *msg)
{
	if (c->dead)
		return;
	scratch_reset();
	scratch_send(c, erm_json_write(&scratch, msg) == 0);
}

/* {"id": id, "result": result} with result as a value or as its text. */
static void
send_result(struct conn *c, json_t *id, const json_t *result,
    const char *text)
{
	int	ok;

	if (c->dead)
		return;
	scratch_reset();
	ok = erm_buf_add(&scratch, "{\"id\":", 6) == 0 &&
	    erm_json_write(&scratch, id) == 0 &&
	    erm_buf_add(&scratch, ",\"result\":", 10) == 0 &&
	    (text != NULL ? erm_buf_add(&scratch, text, strlen(text)) :
	    erm_json_write(&scratch, result)) == 0 &&
	    erm_buf_add(&scratch, "}", 1) == 0;
	scratch_send(c, ok);
}

void
conn_send_result(struct conn *c, json_t *id, json_t *result)
{
	send_result(c, id, result, NULL);
}

void
conn_send_result_text(struct conn *c, json_t *id, const char *result)
{
	send_result(c, id, NULL, result);
}

void
conn_fatal(struct conn *c, int code, json_t *data, const char *msg)
{
	json_t	*m;

	m = json_pack("{s:n, s:{s:i, s:s}}", "id", "error", "code", code,
	    "message", msg);
	if (m != NULL && data != NULL)
		json_object_set(json_object_get(m, "error"), "data", data);
	json_decref(data);
	if (m != NULL) {
		c->in_callback = 0;
		conn_send(c, m);
		json_decref(m);
	}
	conn_close(c, msg);
}

static void
conn_flush(struct conn *c)
{
	int	n;

	if (c->dead || evbuffer_get_length(c->out) == 0)
		return;
	n = evbuffer_write(c->out, c->fd);
	if (n == -1 && errno != EAGAIN && errno != EINTR) {
		conn_close(c, "write error");
		return;
	}
	if (evbuffer_get_length(c->out) > 0)
		event_add(c->ev_write, NULL);
}

static void
conn_write(int fd, short ev, void *arg)
{
	(void)fd;
	(void)ev;
	conn_flush(arg);
}

/*
 * Make room for the rest of the frame at the front of the buffer. The
 * header has already passed erm_frame_parse, so the declared length is at
 * most max_frame: the buffer never grows past max_frame + 4.
 */
static int
grow_input(struct conn *c)
{
	size_t	 need, ncap;
	uint8_t	*p;

	need = ERM_FRAME_HDR + erm_frame_declared(c->in, c->in_len);
	if (need <= c->in_cap)
		return (0);
	ncap = c->in_cap * 2 > need ? c->in_cap * 2 : need;
	if (ncap > (size_t)ermd.cfg->max_frame + ERM_FRAME_HDR)
		ncap = (size_t)ermd.cfg->max_frame + ERM_FRAME_HDR;
	if ((p = realloc(c->in, ncap)) == NULL)
		return (-1);
	c->in = p;
	c->in_cap = ncap;
	return (0);
}

/*
 * Handle up to max_frames_per_wakeup complete frames from the input buffer.
 * Returns 1 when complete frames are left over (the caller comes back on
 * the next loop pass, so one busy pipeline cannot starve the others).
 */
static int
process_input(struct conn *c)
{
	const uint8_t	*body;
	size_t		 blen, used, off = 0;
	int64_t		 n = 0;
	int		 more = 0;
	json_t		*data;

	while (!c->dead) {
		if (n == ermd.cfg->max_frames_per_wakeup) {
			more = 1;
			break;
		}
		if (c->inflight >= ermd.cfg->max_inflight) {
			pause_reading(c);
			break;
		}
		switch (erm_frame_parse(c->in + off, c->in_len - off,
		    (size_t)ermd.cfg->max_frame, &body, &blen, &used)) {
		case ERM_FRAME_MORE:
			goto done;
		case ERM_FRAME_EMPTY:
			data = json_pack("{s:s, s:i}", "limit", "min_frame",
			    "value", 1);
			conn_fatal(c, ERM_LIMIT_EXCEEDED, data,
			    "zero-length frame");
			return (0);
		case ERM_FRAME_TOO_BIG:
			data = json_pack("{s:s, s:I}", "limit", "max_frame",
			    "value", (json_int_t)ermd.cfg->max_frame);
			conn_fatal(c, ERM_LIMIT_EXCEEDED, data,
			    "frame larger than max_frame");
			return (0);
		case ERM_FRAME_OK:
			/*
			 * The frame that was partial is complete: its deadline
			 * goes before dispatch, where a handler may move the
			 * clock (debug.advance) past it.
			 */
			clock_timer_cancel(c->read_timer);
			c->requests++;
			dispatch_frame(c, body, blen);
			off += used;
			n++;
			break;
		}
	}
done:
	if (c->dead)
		return (0);
	if (off > 0) {
		memmove(c->in, c->in + off, c->in_len - off);
		c->in_len -= off;
		arm_idle(c);
	}
	if (c->in_len == 0) {
		clock_timer_cancel(c->read_timer);
		if (c->in_cap > IN_KEEP) {
			uint8_t	*p = realloc(c->in, IN_INITIAL);

			if (p != NULL) {
				c->in = p;
				c->in_cap = IN_INITIAL;
			}
		}
	} else if (!c->paused && !clock_timer_pending(c->read_timer) &&
	    ermd.cfg->read_timeout_ms > 0)
		clock_timer_after(c->read_timer,
		    (uint64_t)ermd.cfg->read_timeout_ms);
	return (more);
}

static void
conn_read(int fd, short ev, void *arg)
{
	struct conn	*c = arg;
	ssize_t		 n;
	int		 backlog;

	(void)ev;
	conn_ref(c);
	c->in_callback = 1;
	/* Frames left from the last pass go first, before reading more. */
	backlog = process_input(c);
	if (!backlog && !c->dead && !c->paused) {
		if (c->in_len == c->in_cap && grow_input(c) == -1) {
			conn_close(c, "out of memory");
			goto out;
		}
		n = read(fd, c->in + c->in_len, c->in_cap - c->in_len);
		if (n == 0) {
			conn_close(c, "peer closed");
			goto out;
		}
		if (n == -1) {
			if (errno != EAGAIN && errno != EINTR)
				conn_close(c, "read error");
			goto out;
		}
		c->in_len += (size_t)n;
		backlog = process_input(c);
		if (!c->dead && c->in_len >= ERM_FRAME_HDR &&
		    grow_input(c) == -1)
			conn_close(c, "out of memory");
	}
	if (backlog && !c->dead && !c->paused)
		event_active(c->ev_read, EV_READ, 0);
out:
	c->in_callback = 0;
	conn_flush(c);
	conn_unref(c);
}
