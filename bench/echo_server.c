/* Answer each ermd frame on a Unix socket with a ping reply, at least cost. */

/*
 * This is the floor ermd's ping is measured against: one thread, one
 * level-triggered epoll registration per connection (plain epoll, no
 * libevent), one read() into the connection's buffer, and one write() of the
 * replies to every complete frame that read brought in. Each reply has the
 * shape of ermd's, {"id":<the request's id>,"result":{"pong":true,"now":<ms>}},
 * so the only work besides the syscalls is finding the id, which ermd has to
 * do as well. Bad framing closes the connection. Prints nothing.
 */

#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>

#include <err.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "erm_proto.h"

#define RBUF_INIT	(64 * 1024)
#define WBUF_MAX	(16 * 1024 * 1024)
#define MAX_EVENTS	256
#define MAX_ID		64	/* longest id token copied into a reply */

struct conn {
	int		 fd;
	uint32_t	 events;
	uint8_t		*rbuf;
	size_t		 rlen;
	size_t		 rcap;
	uint8_t		*wbuf;
	size_t		 woff;
	size_t		 wlen;
	size_t		 wcap;
};

static volatile sig_atomic_t	quit;

static void
on_signal(int sig)
{
	(void)sig;
	quit = 1;
}

/*
 * The raw text of the outermost object's "id" value (a number or a string
 * with its quotes), or "null" when there is none.
 */
static void
find_id(const uint8_t *b, size_t len, const uint8_t **id, size_t *idlen)
{
	size_t	i, k, s;
	int	depth = 0;

	*id = (const uint8_t *)"null";
	*idlen = 4;
	for (i = 0; i < len; i++) {
		switch (b[i]) {
		case '{':
		case '[':
			depth++;
			continue;
		case '}':
		case ']':
			depth--;
			continue;
		case '"':
			break;
		default:
			continue;
		}
		for (k = i + 1; k < len && b[k] != '"'; k++)
			if (b[k] == '\\')
				k++;
		if (k >= len)
			return;
		if (depth == 1 && k - i == 3 &&
		    memcmp(b + i + 1, "id", 2) == 0) {
			for (k++; k < len && (b[k] == ' ' || b[k] == ':'); k++)
				;
			s = k;
			if (k < len && b[k] == '"') {
				for (k++; k < len && b[k] != '"'; k++)
					if (b[k] == '\\')
						k++;
				k++;
			} else
				while (k < len && b[k] != ',' && b[k] != '}' &&
				    b[k] != ' ')
					k++;
			if (k > len || k == s || k - s > MAX_ID)
				return;
			*id = b + s;
			*idlen = k - s;
			return;
		}
		i = k;
	}
}

static void
conn_watch(int ep, struct conn *c, uint32_t events)
{
	struct epoll_event	ev;

	if (c->events == events)
		return;
	memset(&ev, 0, sizeof(ev));
	ev.events = events;
	ev.data.ptr = c;
	if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) == -1)
		err(1, "epoll_ctl");
	c->events = events;
}

static void
conn_close(struct conn *c)
{
	close(c->fd);
	free(c->rbuf);
	free(c->wbuf);
	free(c);
}

/*
 * Write what is pending. While a connection has unsent replies it is not
 * read, so a client that does not read cannot make the buffer grow.
 * Returns -1 when the connection is dead.
 */
static int
conn_flush(int ep, struct conn *c)
{
	ssize_t	n;

	while (c->woff < c->wlen) {
		n = write(c->fd, c->wbuf + c->woff, c->wlen - c->woff);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				conn_watch(ep, c, EPOLLOUT);
				return (0);
			}
			return (-1);
		}
		c->woff += (size_t)n;
	}
	c->woff = c->wlen = 0;
	conn_watch(ep, c, EPOLLIN);
	return (0);
}

static int
reply_append(struct conn *c, const uint8_t *id, size_t idlen,
    const char *now, size_t nowlen)
{
	static const char	 pre[] = "{\"id\":";
	static const char	 mid[] = ",\"result\":{\"pong\":true,\"now\":";
	size_t			 body, need;
	uint8_t			*p;

	body = sizeof(pre) - 1 + idlen + sizeof(mid) - 1 + nowlen + 2;
	need = ERM_FRAME_HDR + body;
	if (c->wlen + need > c->wcap) {
		if (c->wlen + need > WBUF_MAX)
			return (-1);
		c->wcap = (c->wlen + need) * 2;
		if ((c->wbuf = realloc(c->wbuf, c->wcap)) == NULL)
			err(1, "realloc");
	}
	p = c->wbuf + c->wlen;
	erm_frame_header(p, (uint32_t)body);
	p += ERM_FRAME_HDR;
	memcpy(p, pre, sizeof(pre) - 1);
	p += sizeof(pre) - 1;
	memcpy(p, id, idlen);
	p += idlen;
	memcpy(p, mid, sizeof(mid) - 1);
	p += sizeof(mid) - 1;
	memcpy(p, now, nowlen);
	p += nowlen;
	*p++ = '}';
	*p++ = '}';
	c->wlen += need;
	return (0);
}

/* One read, then replies to every complete frame in one write. */
static int
conn_read(int ep, struct conn *c)
{
	const uint8_t	*body, *id;
	struct timespec	 ts;
	char		 now[24];
	size_t		 off = 0, blen, used, idlen, nowlen = 0;
	ssize_t		 n;

	if (c->rlen == c->rcap) {
		/* The frame in the buffer is bigger: the header was checked. */
		c->rcap *= 2;
		if ((c->rbuf = realloc(c->rbuf, c->rcap)) == NULL)
			err(1, "realloc");
	}
	n = read(c->fd, c->rbuf + c->rlen, c->rcap - c->rlen);
	if (n == -1)
		return (errno == EAGAIN || errno == EINTR ? 0 : -1);
	if (n == 0)
		return (-1);
	c->rlen += (size_t)n;

	for (;;) {
		switch (erm_frame_parse(c->rbuf + off, c->rlen - off,
		    ERM_MAX_FRAME_DEFAULT, &body, &blen, &used)) {
		case ERM_FRAME_OK:
			break;
		case ERM_FRAME_MORE:
			goto out;
		default:
			return (-1);
		}
		if (nowlen == 0) {
			clock_gettime(CLOCK_REALTIME, &ts);
			nowlen = (size_t)snprintf(now, sizeof(now), "%lld",
			    (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
		}
		find_id(body, blen, &id, &idlen);
		if (reply_append(c, id, idlen, now, nowlen) == -1)
			return (-1);
		off += used;
	}
out:
	if (off > 0) {
		memmove(c->rbuf, c->rbuf + off, c->rlen - off);
		c->rlen -= off;
	}
	return (c->wlen > 0 ? conn_flush(ep, c) : 0);
}

static int
listen_unix(const char *path)
{
	struct sockaddr_un	sun;
	struct stat		st;
	int			fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path))
		errx(1, "%s: path too long", path);
	memcpy(sun.sun_path, path, strlen(path));
	/* A stale socket from an earlier run, but never any other file. */
	if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
		unlink(path);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0)) == -1)
		err(1, "socket");
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1)
		err(1, "bind %s", path);
	if (listen(fd, 1024) == -1)
		err(1, "listen");
	return (fd);
}

int
main(int argc, char *argv[])
{
	struct epoll_event	 ev, evs[MAX_EVENTS];
	struct sigaction	 sa;
	struct conn		*c;
	int			 lfd, ep, fd, i, n;

	if (argc != 2) {
		fprintf(stderr, "usage: echo_server SOCKET\n");
		return (2);
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	lfd = listen_unix(argv[1]);
	if ((ep = epoll_create1(EPOLL_CLOEXEC)) == -1)
		err(1, "epoll_create1");
	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN;
	ev.data.ptr = NULL;	/* NULL marks the listener */
	if (epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev) == -1)
		err(1, "epoll_ctl");

	while (!quit) {
		if ((n = epoll_wait(ep, evs, MAX_EVENTS, -1)) == -1) {
			if (errno == EINTR)
				continue;
			err(1, "epoll_wait");
		}
		for (i = 0; i < n; i++) {
			if ((c = evs[i].data.ptr) == NULL) {
				fd = accept4(lfd, NULL, NULL,
				    SOCK_NONBLOCK | SOCK_CLOEXEC);
				if (fd == -1)
					continue;
				if ((c = calloc(1, sizeof(*c))) == NULL ||
				    (c->rbuf = malloc(RBUF_INIT)) == NULL)
					err(1, "malloc");
				c->fd = fd;
				c->rcap = RBUF_INIT;
				ev.events = c->events = EPOLLIN;
				ev.data.ptr = c;
				if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) == -1)
					err(1, "epoll_ctl");
				continue;
			}
			/*
			 * Closing removes the fd from the epoll set, and
			 * each connection appears once per epoll_wait, so
			 * freeing here cannot leave a stale pointer.
			 */
			if ((evs[i].events & EPOLLOUT &&
			    conn_flush(ep, c) == -1) ||
			    (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR) &&
			    c->events & EPOLLIN && conn_read(ep, c) == -1))
				conn_close(c);
		}
	}
	unlink(argv[1]);
	return (0);
}
