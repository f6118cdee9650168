/*
 * The optional metrics listener ([metrics] listen, off by default): GET
 * /metrics answers the same Prometheus text as metrics.prometheus, and
 * nothing else is served. It is bounded like the control socket: at most
 * HTTPD_MAX_CONNS connections (more are closed at once), a request head of
 * at most HTTPD_MAX_HEAD bytes, HTTPD_TIMEOUT_S seconds to send it, no
 * body, one request per connection.
 *
 * After the answer the connection is closed the way HTTP servers do it
 * (Apache's and nginx's lingering close): the write side is shut, and what
 * the client still sends (a body, the rest of a head too large) is read
 * and dropped until it closes too, at most HTTPD_LINGER_MAX bytes or
 * HTTPD_TIMEOUT_S seconds of silence. Closing with bytes unread would
 * reset the connection, and a reset can throw the answer away before the
 * client has read it.
 */

#include <sys/socket.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "config.h"
#include "httpd.h"
#include "log.h"
#include "metrics.h"

#define HTTPD_MAX_CONNS		16
#define HTTPD_MAX_HEAD		8192
#define HTTPD_TIMEOUT_S		5
#define HTTPD_LINGER_MAX	65536

struct hconn {
	struct bufferevent	*bev;
	size_t			 lingered;	/* bytes dropped after */
};

static struct {
	struct event_base	*base;
	struct evconnlistener	*lst;
	char			 listen[128];	/* in force */
	char			 want[128];	/* from the config */
	int			 conns;
	int			 running;
	uint64_t		 served;
} hd;

/* "HOST:PORT" or "[V6]:PORT" into a sockaddr; -1 when malformed. */
static int
parse_listen(const char *s, struct sockaddr_storage *ss, socklen_t *len,
    char *err, size_t errsz)
{
	struct sockaddr_in	*sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6	*sin6 = (struct sockaddr_in6 *)ss;
	char			 host[64];
	const char		*colon;
	char			*end;
	long			 port;
	size_t			 hl;

	memset(ss, 0, sizeof(*ss));
	if (s[0] == '[') {
		if ((colon = strstr(s, "]:")) == NULL)
			goto bad;
		hl = (size_t)(colon - s - 1);
		colon++;
		s++;
	} else {
		if ((colon = strrchr(s, ':')) == NULL)
			goto bad;
		hl = (size_t)(colon - s);
	}
	if (hl == 0 || hl >= sizeof(host))
		goto bad;
	memcpy(host, s, hl);
	host[hl] = '\0';
	errno = 0;
	port = strtol(colon + 1, &end, 10);
	if (colon[1] == '\0' || *end != '\0' || errno != 0 || port < 1 ||
	    port > 65535)
		goto bad;
	if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)port);
		*len = sizeof(*sin);
		return (0);
	}
	if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)port);
		*len = sizeof(*sin6);
		return (0);
	}
bad:
	snprintf(err, errsz, "listen: '%s' is not ADDRESS:PORT (a numeric "
	    "address, e.g. 127.0.0.1:9464)", s);
	return (-1);
}

static int
metrics_check(const char *section, const char *key, const char *value,
    char *err, size_t errsz)
{
	struct sockaddr_storage	ss;
	socklen_t		len;

	(void)section;
	if (strcmp(key, "listen") != 0)
		return (-1);
	if (value[0] == '\0')
		return (0);
	return (parse_listen(value, &ss, &len, err, errsz));
}

static void
conn_close(struct hconn *c)
{
	bufferevent_free(c->bev);
	free(c);
	hd.conns--;
}

static void
on_linger_read(struct bufferevent *bev, void *arg)
{
	struct hconn	*c = arg;
	struct evbuffer	*in = bufferevent_get_input(bev);

	c->lingered += evbuffer_get_length(in);
	evbuffer_drain(in, evbuffer_get_length(in));
	if (c->lingered > HTTPD_LINGER_MAX)
		conn_close(c);
}

static void
on_event(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	(void)what;
	conn_close(arg);	/* EOF, error or timeout */
}

static void
on_written(struct bufferevent *bev, void *arg)
{
	struct hconn	*c = arg;

	if (evbuffer_get_length(bufferevent_get_output(bev)) > 0)
		return;
	if (shutdown(bufferevent_getfd(bev), SHUT_WR) == -1) {
		conn_close(c);
		return;
	}
	bufferevent_setcb(bev, on_linger_read, NULL, on_event, c);
	bufferevent_disable(bev, EV_WRITE);
	bufferevent_enable(bev, EV_READ);
	on_linger_read(bev, c);		/* what came with the request */
}

static void
respond(struct hconn *c, int status, const char *reason, const char *ctype,
    const char *body, size_t len)
{
	struct bufferevent	*bev = c->bev;
	struct evbuffer		*out = bufferevent_get_output(bev);

	evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n"
	    "Content-Length: %zu\r\nConnection: close\r\n%s\r\n", status,
	    reason, ctype, len, status == 405 ? "Allow: GET, HEAD\r\n" : "");
	if (body != NULL)
		evbuffer_add(out, body, len);
	bufferevent_disable(bev, EV_READ);
	bufferevent_setcb(bev, NULL, on_written, on_event, c);
	bufferevent_enable(bev, EV_WRITE);
}

static void
on_read(struct bufferevent *bev, void *arg)
{
	struct hconn		*c = arg;
	struct evbuffer		*in = bufferevent_get_input(bev);
	struct evbuffer_ptr	 p;
	char			 line[256], method[16], target[200];
	const char		*msg;
	char			*text;
	size_t			 len, n;
	int			 head;

	p = evbuffer_search(in, "\r\n\r\n", 4, NULL);
	if (p.pos < 0) {
		if (evbuffer_get_length(in) > HTTPD_MAX_HEAD) {
			msg = "request head too large\n";
			respond(c, 431, "Request Header Fields Too Large",
			    "text/plain", msg, strlen(msg));
		}
		return;
	}
	n = evbuffer_get_length(in);
	if (n > sizeof(line) - 1)
		n = sizeof(line) - 1;
	evbuffer_copyout(in, line, n);
	line[n] = '\0';
	line[strcspn(line, "\r\n")] = '\0';
	if (sscanf(line, "%15s %199s HTTP/1.%*c", method, target) != 2) {
		msg = "bad request\n";
		respond(c, 400, "Bad Request", "text/plain", msg,
		    strlen(msg));
		return;
	}
	head = strcmp(method, "HEAD") == 0;
	if (strcmp(method, "GET") != 0 && !head) {
		msg = "only GET /metrics\n";
		respond(c, 405, "Method Not Allowed", "text/plain", msg,
		    strlen(msg));
		return;
	}
	target[strcspn(target, "?")] = '\0';
	if (strcmp(target, "/metrics") != 0) {
		msg = "only GET /metrics\n";
		respond(c, 404, "Not Found", "text/plain", msg, strlen(msg));
		return;
	}
	if ((text = metrics_render(&len)) == NULL) {
		msg = "out of memory\n";
		respond(c, 500, "Internal Server Error", "text/plain", msg,
		    strlen(msg));
		return;
	}
	hd.served++;
	/* HEAD: the length of what GET would send, and no body. */
	respond(c, 200, "OK", "text/plain; version=0.0.4; charset=utf-8",
	    head ? NULL : text, len);
	free(text);
}

static void
on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
    int salen, void *arg)
{
	struct bufferevent	*bev;
	struct hconn		*c;
	struct timeval		 tv = { HTTPD_TIMEOUT_S, 0 };

	(void)l;
	(void)sa;
	(void)salen;
	(void)arg;
	if (hd.conns >= HTTPD_MAX_CONNS ||
	    (c = calloc(1, sizeof(*c))) == NULL) {
		evutil_closesocket(fd);
		return;
	}
	if ((bev = bufferevent_socket_new(hd.base, fd,
	    BEV_OPT_CLOSE_ON_FREE)) == NULL) {
		free(c);
		evutil_closesocket(fd);
		return;
	}
	c->bev = bev;
	hd.conns++;
	bufferevent_setcb(bev, on_read, NULL, on_event, c);
	bufferevent_set_timeouts(bev, &tv, &tv);
	bufferevent_setwatermark(bev, EV_READ, 0, HTTPD_MAX_HEAD + 1);
	bufferevent_enable(bev, EV_READ);
}

static void
resume_accept(evutil_socket_t fd, short ev, void *arg)
{
	(void)fd;
	(void)ev;
	(void)arg;
	if (hd.lst != NULL)
		evconnlistener_enable(hd.lst);
}

static void
on_listen_error(struct evconnlistener *l, void *arg)
{
	struct timeval	tv = { 1, 0 };

	(void)arg;
	/* EMFILE and the like: pause a second rather than spin. */
	log_warn("metrics listener: accept");
	evconnlistener_disable(l);
	(void)event_base_once(hd.base, -1, EV_TIMEOUT, resume_accept, NULL,
	    &tv);
}

static void
rebind(void)
{
	struct sockaddr_storage	ss;
	socklen_t		len;
	char			err[200];

	if (strcmp(hd.want, hd.listen) == 0 && (hd.lst != NULL ||
	    hd.want[0] == '\0'))
		return;
	if (hd.lst != NULL) {
		evconnlistener_free(hd.lst);
		hd.lst = NULL;
		log_info("metrics listener on %s closed", hd.listen);
	}
	hd.listen[0] = '\0';
	if (hd.want[0] == '\0')
		return;
	if (parse_listen(hd.want, &ss, &len, err, sizeof(err)) == -1) {
		log_warnx("metrics listener: %s", err);
		return;
	}
	hd.lst = evconnlistener_new_bind(hd.base, on_accept, NULL,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC,
	    64, (struct sockaddr *)&ss, (int)len);
	if (hd.lst == NULL) {
		log_warn("metrics listener: cannot listen on %s", hd.want);
		return;
	}
	evconnlistener_set_error_cb(hd.lst, on_listen_error);
	snprintf(hd.listen, sizeof(hd.listen), "%s", hd.want);
	log_info("metrics listener on http://%s/metrics", hd.listen);
}

static void
metrics_apply(const struct config *cfg)
{
	size_t	i;

	hd.want[0] = '\0';
	for (i = 0; i < cfg->nentries; i++)
		if (strcmp(cfg->entries[i].section, "metrics") == 0 &&
		    strcmp(cfg->entries[i].key, "listen") == 0)
			snprintf(hd.want, sizeof(hd.want), "%s",
			    cfg->entries[i].value);
	if (hd.running)
		rebind();
}

void
httpd_register(void)
{
	static const char *const keys[] = { "listen", NULL };
	static const struct config_kind	kind = {
		"metrics", 0, metrics_check, keys, metrics_apply
	};

	config_register_kind(&kind);
}

void
httpd_start(struct event_base *base)
{
	hd.base = base;
	hd.running = 1;
	/* The config, applied after the modules start, binds it. */
}

void
httpd_stop(void)
{
	hd.running = 0;
	if (hd.lst != NULL) {
		evconnlistener_free(hd.lst);
		hd.lst = NULL;
	}
}
