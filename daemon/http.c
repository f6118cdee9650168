/* HTTP requests run by libcurl's multi interface on the loop; see http.h. */

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <curl/curl.h>
#include <event2/event.h>

#include "http.h"

/*
 * How libcurl runs on libevent (curl's hiperfifo pattern): libcurl tells us
 * through sock_cb which descriptors to watch for what, and through timer_cb
 * when it next wants to be called without I/O. Each readiness or timeout
 * becomes one curl_multi_socket_action() call, after which finished
 * transfers are collected and their callbacks run.
 *
 * These timers run on real time, not on the daemon clock, even with
 * --manual-clock: they pace libcurl's own protocol work (connect and
 * transfer timeouts, retransmission of Expect waits, DNS), which happens
 * on real sockets whatever a test does to the daemon's clock. Timeouts
 * given to http_request() are real time for the same reason. Callers that
 * need deterministic time (health-check intervals, backoffs) keep those
 * timers on the daemon clock and use HTTP only for the I/O itself.
 */

struct sockinfo {
	struct sockinfo	*next, *prev;
	curl_socket_t	 fd;
	struct event	*ev;
};

struct http_req {
	struct http_req		*next, *prev;
	CURL			*easy;
	struct curl_slist	*hdrs;
	http_done_fn		 done;
	void			*arg;
	char			 errbuf[CURL_ERROR_SIZE];
	int			 in_callback;

	/* Request body. */
	uint8_t			*body_buf;	/* owned copy */
	int			 body_fd;
	uint64_t		 body_len, body_off;

	/* Response. */
	char			*resp;		/* NUL-terminated */
	size_t			 resp_len, resp_cap;
	uint64_t		 resp_max;
	int			 resp_fd;
	uint64_t		 resp_written;
	char			*hbuf;		/* header lines */
	size_t			 hlen, hcap;

	void			(*tap)(void *, int, const void *, size_t);
	void			*tap_arg;

	int			 io_err;	/* errno of our side */
	const char		*io_what;	/* what failed on our side */
	int			 io_local;	/* body fd or resp_fd failed */
};

static struct {
	struct event_base	*base;
	CURLM			*multi;
	struct event		*timer;
	struct http_req		*reqs;
	struct sockinfo		*socks;
	unsigned		 inflight;
	int			 users;
	int			 global;	/* curl_global_init done */
} h;

static void	check_done(void);

/* ---- the loop side -------------------------------------------------- */

static void
event_cb(int fd, short what, void *arg)
{
	int	action = 0, running;

	(void)arg;
	if (what & EV_READ)
		action |= CURL_CSELECT_IN;
	if (what & EV_WRITE)
		action |= CURL_CSELECT_OUT;
	curl_multi_socket_action(h.multi, fd, action, &running);
	/* libcurl stops its timer itself (timer_cb with -1); a callback
	 * below may have started a request that needs it. */
	check_done();
}

static void
timeout_cb(int fd, short what, void *arg)
{
	int	running;

	(void)fd;
	(void)what;
	(void)arg;
	curl_multi_socket_action(h.multi, CURL_SOCKET_TIMEOUT, 0, &running);
	check_done();
}

/* libcurl: when to call curl_multi_socket_action(CURL_SOCKET_TIMEOUT). */
static int
timer_cb(CURLM *multi, long timeout_ms, void *arg)
{
	struct timeval	tv;

	(void)multi;
	(void)arg;
	if (timeout_ms < 0) {
		evtimer_del(h.timer);
		return (0);
	}
	/* 0 means "now": go through the loop rather than recursing. */
	tv.tv_sec = timeout_ms / 1000;
	tv.tv_usec = (timeout_ms % 1000) * 1000;
	return (evtimer_add(h.timer, &tv) == 0 ? 0 : -1);
}

static void
sock_free(struct sockinfo *si)
{
	if (si->ev != NULL)
		event_free(si->ev);
	if (si->next != NULL)
		si->next->prev = si->prev;
	if (si->prev != NULL)
		si->prev->next = si->next;
	else
		h.socks = si->next;
	free(si);
}

/* libcurl: watch s for what (or stop watching it). */
static int
sock_cb(CURL *easy, curl_socket_t s, int what, void *arg, void *sockp)
{
	struct sockinfo	*si = sockp;
	short		 kind;

	(void)easy;
	(void)arg;
	if (what == CURL_POLL_REMOVE) {
		if (si != NULL) {
			curl_multi_assign(h.multi, s, NULL);
			sock_free(si);
		}
		return (0);
	}
	if (si == NULL) {
		if ((si = calloc(1, sizeof(*si))) == NULL)
			return (-1);
		si->fd = s;
		if ((si->next = h.socks) != NULL)
			si->next->prev = si;
		h.socks = si;
		curl_multi_assign(h.multi, s, si);
	} else if (si->ev != NULL) {
		event_free(si->ev);
		si->ev = NULL;
	}
	kind = EV_PERSIST;
	if (what & CURL_POLL_IN)
		kind |= EV_READ;
	if (what & CURL_POLL_OUT)
		kind |= EV_WRITE;
	if ((si->ev = event_new(h.base, s, kind, event_cb, NULL)) == NULL ||
	    event_add(si->ev, NULL) == -1)
		return (-1);
	return (0);
}

/* ---- transfers ------------------------------------------------------ */

static size_t
read_cb(char *buf, size_t size, size_t nitems, void *arg)
{
	struct http_req	*r = arg;
	uint64_t	 left = r->body_len - r->body_off;
	size_t		 want = size * nitems;
	ssize_t		 n;

	if (want > left)
		want = (size_t)left;
	if (want == 0)
		return (0);
	if (r->body_fd < 0) {
		memcpy(buf, r->body_buf + r->body_off, want);
		n = (ssize_t)want;
	} else {
		do
			n = pread(r->body_fd, buf, want, (off_t)r->body_off);
		while (n == -1 && errno == EINTR);
		if (n <= 0) {
			/* A file that shrank under us must not be padded. */
			r->io_err = n == 0 ? EIO : errno;
			r->io_local = 1;
			r->io_what = n == 0 ? "the body file shrank while "
			    "being sent" : "reading the body file";
			return (CURL_READFUNC_ABORT);
		}
		if (r->tap != NULL)
			r->tap(r->tap_arg, 1, buf, (size_t)n);
	}
	r->body_off += (uint64_t)n;
	return ((size_t)n);
}

/* libcurl rewinds an upload it must send again (a reused connection that
 * turned out closed); only a rewind to the start is needed. */
static int
seek_cb(void *arg, curl_off_t offset, int origin)
{
	struct http_req	*r = arg;

	if (origin != SEEK_SET || offset != 0)
		return (CURL_SEEKFUNC_CANTSEEK);
	r->body_off = 0;
	if (r->tap != NULL && r->body_fd >= 0)
		r->tap(r->tap_arg, 1, NULL, 0);
	return (CURL_SEEKFUNC_OK);
}

static size_t
write_cb(char *data, size_t size, size_t nmemb, void *arg)
{
	struct http_req	*r = arg;
	size_t		 n = size * nmemb, done = 0, ncap;
	ssize_t		 w;
	char		*p;

	if (r->resp_max > 0 && (r->resp_fd >= 0 ? r->resp_written :
	    r->resp_len) + n > r->resp_max) {
		r->io_err = EFBIG;
		r->io_what = "the response body is over the limit";
		return (0);
	}
	if (r->tap != NULL)
		r->tap(r->tap_arg, 0, data, n);
	if (r->resp_fd >= 0) {
		while (done < n) {
			w = write(r->resp_fd, data + done, n - done);
			if (w == -1 && errno == EINTR)
				continue;
			if (w <= 0) {
				r->io_err = w == 0 ? EIO : errno;
				r->io_local = 1;
				r->io_what = "writing the response body";
				return (0);
			}
			done += (size_t)w;
		}
		r->resp_written += n;
		return (n);
	}
	if (r->resp_len + n + 1 > r->resp_cap) {
		ncap = r->resp_cap ? r->resp_cap : 4096;
		while (ncap < r->resp_len + n + 1)
			ncap *= 2;
		if ((p = realloc(r->resp, ncap)) == NULL) {
			r->io_err = ENOMEM;
			r->io_what = "out of memory";
			return (0);
		}
		r->resp = p;
		r->resp_cap = ncap;
	}
	memcpy(r->resp + r->resp_len, data, n);
	r->resp_len += n;
	r->resp[r->resp_len] = '\0';
	return (n);
}

static size_t
header_cb(char *data, size_t size, size_t nitems, void *arg)
{
	struct http_req	*r = arg;
	size_t		 n = size * nitems, ncap;
	char		*p;

	/* A new status line: an interim response (100 Continue) is over. */
	if (n >= 5 && memcmp(data, "HTTP/", 5) == 0)
		r->hlen = 0;
	if (r->hlen + n + 1 > HTTP_MAX_HEADER_BYTES) {
		r->io_err = EFBIG;
		r->io_what = "the response headers are over the limit";
		return (0);
	}
	if (r->hlen + n + 1 > r->hcap) {
		ncap = r->hcap ? r->hcap : 1024;
		while (ncap < r->hlen + n + 1)
			ncap *= 2;
		if ((p = realloc(r->hbuf, ncap)) == NULL) {
			r->io_err = ENOMEM;
			r->io_what = "out of memory";
			return (0);
		}
		r->hbuf = p;
		r->hcap = ncap;
	}
	memcpy(r->hbuf + r->hlen, data, n);
	r->hlen += n;
	r->hbuf[r->hlen] = '\0';
	return (n);
}

static void
req_unlink(struct http_req *r)
{
	if (r->next != NULL)
		r->next->prev = r->prev;
	if (r->prev != NULL)
		r->prev->next = r->next;
	else
		h.reqs = r->next;
	h.inflight--;
}

static void
req_free(struct http_req *r)
{
	if (r->easy != NULL)
		curl_easy_cleanup(r->easy);
	curl_slist_free_all(r->hdrs);
	free(r->body_buf);
	free(r->resp);
	free(r->hbuf);
	free(r);
}

/*
 * Split the header block into name/value pairs in place. The status line
 * and anything without a colon are skipped. Returns the number of pairs;
 * *out is malloc'ed (NULL when there are none).
 */
static size_t
parse_headers(char *buf, char ***out)
{
	char	**v = NULL, *line, *next, *colon, *e;
	size_t	  n = 0, cap = 0;

	*out = NULL;
	for (line = buf; line != NULL && *line != '\0'; line = next) {
		if ((next = strchr(line, '\n')) != NULL)
			*next++ = '\0';
		if ((colon = strchr(line, ':')) == NULL ||
		    strncmp(line, "HTTP/", 5) == 0)
			continue;
		*colon++ = '\0';
		while (*colon == ' ' || *colon == '\t')
			colon++;
		e = colon + strlen(colon);
		while (e > colon && isspace((unsigned char)e[-1]))
			*--e = '\0';
		if (n + 2 > cap) {
			size_t	 ncap = cap ? cap * 2 : 32;
			char	**nv = reallocarray(v, ncap, sizeof(*v));

			if (nv == NULL)
				break;
			v = nv;
			cap = ncap;
		}
		v[n++] = line;
		v[n++] = colon;
	}
	*out = v;
	return (n / 2);
}

/* The errno-style cause of a failed transfer. */
static int
map_error(struct http_req *r, CURLcode rc)
{
	long	oserr = 0;

	if (r->io_err != 0)
		return (r->io_err);
	curl_easy_getinfo(r->easy, CURLINFO_OS_ERRNO, &oserr);
	switch (rc) {
	case CURLE_OPERATION_TIMEDOUT:
		return (ETIMEDOUT);
	case CURLE_COULDNT_CONNECT:
		return (oserr != 0 ? (int)oserr : ECONNREFUSED);
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
		return (EHOSTUNREACH);
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
		return (oserr != 0 ? (int)oserr : ECONNRESET);
	case CURLE_OUT_OF_MEMORY:
		return (ENOMEM);
	case CURLE_FILESIZE_EXCEEDED:
		return (EFBIG);
	case CURLE_UNSUPPORTED_PROTOCOL:
	case CURLE_URL_MALFORMAT:
		return (EINVAL);
	default:
		return (EPROTO);
	}
}

/* Run the callback of a finished transfer and free it. */
static void
finish(struct http_req *r, CURLcode rc)
{
	struct http_response	 resp;
	curl_off_t		 us = 0;
	char			 msg[CURL_ERROR_SIZE + 64];

	memset(&resp, 0, sizeof(resp));
	curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &resp.status);
	curl_easy_getinfo(r->easy, CURLINFO_TOTAL_TIME_T, &us);
	resp.elapsed_ms = (uint64_t)us / 1000;
	resp.err = rc == CURLE_OK ? 0 : map_error(r, rc);
	resp.local = rc != CURLE_OK && r->io_local;
	if (rc == CURLE_OK)
		resp.error = "";
	else if (r->io_what != NULL) {
		snprintf(msg, sizeof(msg), "%s%s%s", r->io_what,
		    r->io_err != EFBIG && r->io_err != EIO ? ": " : "",
		    r->io_err != EFBIG && r->io_err != EIO ?
		    strerror(r->io_err) : "");
		resp.error = msg;
	} else
		resp.error = r->errbuf[0] != '\0' ? r->errbuf :
		    curl_easy_strerror(rc);
	resp.body = r->resp != NULL ? r->resp : "";
	resp.body_len = r->resp_len;
	resp.body_bytes = r->resp_written;
	if (r->hbuf != NULL)
		resp.nhdr = parse_headers(r->hbuf, &resp.hdr);
	r->in_callback = 1;
	r->done(&resp, r->arg);
	free(resp.hdr);
	req_free(r);
}

/* Collect every finished transfer and run its callback. */
static void
check_done(void)
{
	struct http_req	*r;
	CURLMsg		*m;
	CURLcode	 rc;
	char		*priv;
	int		 left;

	while ((m = curl_multi_info_read(h.multi, &left)) != NULL) {
		if (m->msg != CURLMSG_DONE)
			continue;
		rc = m->data.result;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &priv);
		r = (struct http_req *)(void *)priv;
		curl_multi_remove_handle(h.multi, r->easy);
		req_unlink(r);
		finish(r, rc);
	}
}

int
http_init(struct event_base *base)
{
	if (h.users > 0) {
		h.users++;
		return (0);
	}
	if (!h.global) {
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
			return (-1);
		h.global = 1;
	}
	h.base = base;
	if ((h.multi = curl_multi_init()) == NULL)
		return (-1);
	if ((h.timer = evtimer_new(base, timeout_cb, NULL)) == NULL) {
		curl_multi_cleanup(h.multi);
		h.multi = NULL;
		return (-1);
	}
	curl_multi_setopt(h.multi, CURLMOPT_SOCKETFUNCTION, sock_cb);
	curl_multi_setopt(h.multi, CURLMOPT_TIMERFUNCTION, timer_cb);
	/* Keep a few idle connections per host for the next request. */
	curl_multi_setopt(h.multi, CURLMOPT_MAX_HOST_CONNECTIONS, 0L);
	curl_multi_setopt(h.multi, CURLMOPT_MAXCONNECTS, 32L);
	h.users = 1;
	return (0);
}

void
http_shutdown(void)
{
	struct http_response	 resp;
	struct http_req		*r;

	if (h.users == 0 || --h.users > 0)
		return;
	/* h.users is 0 now, so callbacks below cannot start new requests. */
	while ((r = h.reqs) != NULL) {
		curl_multi_remove_handle(h.multi, r->easy);
		req_unlink(r);
		memset(&resp, 0, sizeof(resp));
		resp.err = ECANCELED;
		resp.error = "the daemon is shutting down";
		resp.body = "";
		r->in_callback = 1;
		r->done(&resp, r->arg);	/* http_request refuses now */
		req_free(r);
	}
	curl_multi_cleanup(h.multi);
	h.multi = NULL;
	while (h.socks != NULL)
		sock_free(h.socks);
	event_free(h.timer);
	h.timer = NULL;
	curl_global_cleanup();
	h.global = 0;
}

unsigned
http_inflight(void)
{
	return (h.inflight);
}

static int
has_header(const char *const *headers, const char *name)
{
	size_t	l = strlen(name);

	for (; headers != NULL && *headers != NULL; headers++)
		if (strncasecmp(*headers, name, l) == 0 &&
		    (*headers)[l] == ':')
			return (1);
	return (0);
}

struct http_req *
http_request(const char *method, const char *url, const char *const *headers,
    const struct http_body *body, const struct http_options *opts,
    http_done_fn done, void *arg)
{
	static const struct http_options	 defaults = { .resp_fd = -1 };
	struct http_req				*r;
	struct curl_slist			*l;
	const char *const			*hp;
	int					 has_body;
	CURL					*e;

	if (h.users <= 0 || h.multi == NULL) {
		errno = ESHUTDOWN;
		return (NULL);
	}
	if (strncasecmp(url, "http://", 7) != 0 &&
	    strncasecmp(url, "https://", 8) != 0) {
		errno = EINVAL;
		return (NULL);
	}
	if (opts == NULL)
		opts = &defaults;
	if ((r = calloc(1, sizeof(*r))) == NULL)
		return (NULL);
	r->done = done;
	r->arg = arg;
	r->body_fd = -1;
	r->resp_fd = opts->resp_fd;
	r->resp_max = opts->max_response_bytes;
	if (r->resp_fd < 0 && r->resp_max == 0)
		r->resp_max = HTTP_DEFAULT_MAX_RESPONSE;
	r->tap = opts->tap;
	r->tap_arg = opts->tap_arg;
	has_body = body != NULL && (body->fd >= 0 || body->buf != NULL);
	if (has_body && body->fd >= 0) {
		r->body_fd = body->fd;
		r->body_len = body->len;
	} else if (has_body) {
		if ((r->body_buf = malloc(body->len ? body->len : 1)) == NULL)
			goto fail;
		memcpy(r->body_buf, body->buf, body->len);
		r->body_len = body->len;
	}
	if ((r->easy = e = curl_easy_init()) == NULL)
		goto fail;

	for (hp = headers; hp != NULL && *hp != NULL; hp++) {
		if ((l = curl_slist_append(r->hdrs, *hp)) == NULL)
			goto fail;
		r->hdrs = l;
	}
	/* Expect: 100-continue costs a round trip (or a second's wait on
	 * servers that ignore it) for every upload. */
	if (!has_header(headers, "Expect")) {
		if ((l = curl_slist_append(r->hdrs, "Expect:")) == NULL)
			goto fail;
		r->hdrs = l;
	}

	if (curl_easy_setopt(e, CURLOPT_URL, url) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https") !=
	    CURLE_OK) {
		errno = EINVAL;
		goto fail_keep_errno;
	}
	curl_easy_setopt(e, CURLOPT_PRIVATE, r);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(e, CURLOPT_USERAGENT, "ermd/" ERMD_VERSION);
	curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->hdrs);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, header_cb);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
	if (opts->timeout_ms > 0)
		curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, opts->timeout_ms);
	if (opts->connect_timeout_ms > 0)
		curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
		    opts->connect_timeout_ms);
	if (opts->ca_file != NULL)
		curl_easy_setopt(e, CURLOPT_CAINFO, opts->ca_file);
	if (opts->client_cert != NULL)
		curl_easy_setopt(e, CURLOPT_SSLCERT, opts->client_cert);
	if (opts->client_key != NULL)
		curl_easy_setopt(e, CURLOPT_SSLKEY, opts->client_key);
	if (opts->insecure) {
		curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
	}

	/*
	 * Every body goes out through the read callback (upload mode, which
	 * sends Content-Length); the method string is set afterwards so that
	 * POST and others can carry a body the same way PUT does.
	 */
	if (has_body) {
		curl_easy_setopt(e, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE,
		    (curl_off_t)r->body_len);
		curl_easy_setopt(e, CURLOPT_READFUNCTION, read_cb);
		curl_easy_setopt(e, CURLOPT_READDATA, r);
		curl_easy_setopt(e, CURLOPT_SEEKFUNCTION, seek_cb);
		curl_easy_setopt(e, CURLOPT_SEEKDATA, r);
	}
	if (strcmp(method, "HEAD") == 0)
		curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
	else if (strcmp(method, "GET") != 0 || has_body)
		curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);

	if (curl_multi_add_handle(h.multi, e) != CURLM_OK) {
		errno = ENOMEM;
		goto fail_keep_errno;
	}
	if ((r->next = h.reqs) != NULL)
		r->next->prev = r;
	h.reqs = r;
	h.inflight++;
	return (r);
fail:
	errno = ENOMEM;
fail_keep_errno:
	req_free(r);
	return (NULL);
}

void
http_cancel(struct http_req *r)
{
	if (r == NULL || r->in_callback)
		return;
	curl_multi_remove_handle(h.multi, r->easy);
	req_unlink(r);
	req_free(r);
}

const char *
http_header(const struct http_response *resp, const char *name)
{
	const char	*v = NULL;
	size_t		 i;

	for (i = 0; i < resp->nhdr; i++)
		if (strcasecmp(resp->hdr[2 * i], name) == 0)
			v = resp->hdr[2 * i + 1];
	return (v);
}

int
http_retry_after_ms(const char *value, uint64_t now_ms, int64_t *delay_ms)
{
	const char	*p = value;
	uint64_t	 secs = 0;
	time_t		 t;
	int64_t		 when;

	while (*p == ' ' || *p == '\t')
		p++;
	if (isdigit((unsigned char)*p)) {
		for (; isdigit((unsigned char)*p); p++) {
			if (secs > (uint64_t)INT64_MAX / 10000)
				secs = (uint64_t)INT64_MAX / 1000;
			else
				secs = secs * 10 + (uint64_t)(*p - '0');
		}
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p != '\0')
			return (-1);
		*delay_ms = secs >= (uint64_t)INT64_MAX / 1000 ? INT64_MAX :
		    (int64_t)secs * 1000;
		return (0);
	}
	/* An HTTP date has a weekday name first in all three forms. */
	if (!isalpha((unsigned char)*p) || (t = curl_getdate(p, NULL)) == -1)
		return (-1);
	when = (int64_t)t * 1000;
	*delay_ms = when > (int64_t)now_ms ? when - (int64_t)now_ms : 0;
	return (0);
}

const char *
http_describe(const struct http_response *resp, char *buf, size_t bufsz)
{
	if (resp->err != 0)
		snprintf(buf, bufsz, "%s", resp->error != NULL &&
		    resp->error[0] != '\0' ? resp->error : strerror(resp->err));
	else
		snprintf(buf, bufsz, "HTTP %ld", resp->status);
	return (buf);
}
