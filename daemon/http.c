/* HTTP requests run by libcurl's multi interface on the loop; see http.h. */

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <curl/curl.h>
#include <event2/event.h>

#include "http.h"
#include "worker.h"

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

struct fio;

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
	struct fio		*up;		/* or from a file */
	uint64_t		 body_len, body_off;

	/* Response. */
	char			*resp;		/* NUL-terminated */
	size_t			 resp_len, resp_cap;
	uint64_t		 resp_max;
	int			 resp_truncate;
	struct fio		*down;		/* or to a file */
	uint64_t		 resp_taken;	/* by write_cb, for down */
	uint64_t		 resp_written;	/* to the file */
	/* Done, but down still has bytes to write: finish() waits. */
	int			 finishing;
	CURLcode		 rc;
	char			*hbuf;		/* header lines */
	size_t			 hlen, hcap;

	void			(*tap)(void *, int, const void *, size_t);
	void			*tap_arg;

	int			 io_err;	/* errno of our side */
	const char		*io_what;	/* what failed on our side */
	int			 io_local;	/* a body file failed */
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
static void	complete(struct http_req *, CURLcode);

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

/* ---- body files, off the loop ---------------------------------------- */

/*
 * A body file is read or written by the worker pool, never on the loop: a
 * disk that stalls (a failing drive, a hung network file system) must not
 * stall the daemon. Two buffers take turns: on the loop libcurl drains one
 * (upload) or fills one (download) while a worker fills the other from the
 * file or writes it out. When libcurl gets ahead of the disk its transfer
 * is paused (CURL_READFUNC_PAUSE, CURL_WRITEFUNC_PAUSE) and resumed when
 * the worker is done. One task per file is out at a time, so the file is
 * read and written in order. The tap (hashing) stays on the loop, in
 * stream order, as the bytes pass through libcurl's callbacks.
 *
 * The worker has a descriptor of its own (a dup), and a transfer that ends
 * while a task is out (a failure, a cancel, shutdown) leaves the state to
 * that task, which frees it when it completes: the caller may close its
 * descriptor at once, and the task cannot touch another file.
 */
#define FIO_CHUNK	(256 * 1024)

struct fio {
	struct http_req	*r;		/* NULL: the transfer is gone */
	int		 fd;		/* a dup of the caller's */
	int		 upload;
	char		*buf[2];
	size_t		 cap[2];
	size_t		 len[2];	/* bytes held */
	int		 ready[2];	/* upload: filled from the file */
	int		 cur;		/* the buffer libcurl uses */
	size_t		 pos;		/* upload: of buf[cur] given out */
	uint64_t	 file_off;	/* upload: the next byte to read */
	unsigned	 gen;		/* upload: moves at a rewind */
	int		 paused;	/* libcurl waits for the worker */
	/* The task out, if busy. */
	int		 busy;
	int		 task_buf;
	uint64_t	 task_off;
	size_t		 task_len;
	unsigned	 task_gen;
	size_t		 task_done;
	int		 task_err;
};

static struct fio *
fio_new(int fd, int upload)
{
	struct fio	*f;

	if ((f = calloc(1, sizeof(*f))) == NULL)
		return (NULL);
	if ((f->fd = fcntl(fd, F_DUPFD_CLOEXEC, 0)) == -1) {
		free(f);
		return (NULL);
	}
	f->upload = upload;
	return (f);
}

static void
fio_free(struct fio *f)
{
	close(f->fd);
	free(f->buf[0]);
	free(f->buf[1]);
	free(f);
}

/* The transfer is over: free f now, or when its task completes. */
static void
fio_release(struct fio *f)
{
	if (f == NULL)
		return;
	if (f->busy)
		f->r = NULL;
	else
		fio_free(f);
}

/* Room for n bytes in buffer i. */
static int
fio_room(struct fio *f, int i, size_t n)
{
	char	*p;

	if (f->cap[i] >= n)
		return (0);
	if ((p = realloc(f->buf[i], n)) == NULL)
		return (-1);
	f->buf[i] = p;
	f->cap[i] = n;
	return (0);
}

/*
 * On a worker, touching the task's fields and buffer only: read task_len
 * bytes at task_off into the buffer (upload), or write the buffer at the
 * file's offset (download). A read that ends early means the file shrank:
 * it must not be padded.
 */
static void
fio_task(void *arg)
{
	struct fio	*f = arg;
	char		*p = f->buf[f->task_buf];
	size_t		 left;
	ssize_t		 n;

	f->task_err = 0;
	f->task_done = 0;
	while ((left = f->task_len - f->task_done) > 0) {
		n = f->upload ? pread(f->fd, p + f->task_done, left,
		    (off_t)(f->task_off + f->task_done)) :
		    write(f->fd, p + f->task_done, left);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0) {
			f->task_err = n == 0 ? EIO : errno;
			return;
		}
		f->task_done += (size_t)n;
	}
}

static void	fio_task_done(void *);

static int
fio_submit(struct http_req *r, struct fio *f)
{
	if (worker_submit(fio_task, fio_task_done, f) == -1) {
		r->io_err = ENOMEM;
		r->io_local = 1;
		r->io_what = "cannot queue the body file's I/O";
		return (-1);
	}
	f->busy = 1;
	return (0);
}

/* Let a paused transfer go on: libcurl calls back for what it waits on. */
static void
fio_resume(struct http_req *r, struct fio *f)
{
	if (!f->paused || r->finishing)
		return;
	f->paused = 0;
	curl_easy_pause(r->easy, CURLPAUSE_CONT);
}

/* Upload: start reading the next part of the file into a free buffer. */
static int
upload_fill(struct http_req *r, struct fio *f)
{
	uint64_t	left = r->body_len - f->file_off;
	int		i;

	if (f->busy || left == 0)
		return (0);
	if (!f->ready[f->cur])
		i = f->cur;
	else if (!f->ready[!f->cur])
		i = !f->cur;
	else
		return (0);
	if (fio_room(f, i, FIO_CHUNK) == -1) {
		r->io_err = ENOMEM;
		r->io_what = "out of memory";
		return (-1);
	}
	f->task_buf = i;
	f->task_off = f->file_off;
	f->task_len = left < FIO_CHUNK ? (size_t)left : FIO_CHUNK;
	f->task_gen = f->gen;
	if (fio_submit(r, f) == -1)
		return (-1);
	f->file_off += f->task_len;
	return (0);
}

static void
upload_filled(struct http_req *r, struct fio *f)
{
	int	i = f->task_buf;

	if (f->task_gen != f->gen)
		(void)upload_fill(r, f);	/* read before a rewind */
	else if (f->task_err != 0) {
		r->io_err = f->task_err;
		r->io_local = 1;
		r->io_what = f->task_err == EIO ? "the body file shrank "
		    "while being sent" : "reading the body file";
	} else {
		f->len[i] = f->task_len;
		f->ready[i] = 1;
		(void)upload_fill(r, f);	/* a failure aborts later */
	}
	fio_resume(r, f);
}

/* Download: hand buffer cur to a worker; libcurl fills the other. */
static int
download_flush(struct http_req *r, struct fio *f)
{
	f->task_buf = f->cur;
	f->task_len = f->len[f->cur];
	if (fio_submit(r, f) == -1)
		return (-1);
	f->cur = !f->cur;
	return (0);
}

/* After the transfer: write what is left, then finish. */
static void
download_finish(struct http_req *r, struct fio *f)
{
	if (f->busy)
		return;
	if (r->io_err == 0 && f->len[f->cur] > 0 &&
	    download_flush(r, f) == 0)
		return;
	complete(r, r->io_err != 0 ? CURLE_WRITE_ERROR : r->rc);
}

static void
download_written(struct http_req *r, struct fio *f)
{
	if (f->task_err != 0) {
		r->io_err = f->task_err;
		r->io_local = 1;
		r->io_what = "writing the response body";
	} else
		r->resp_written += f->task_len;
	f->len[f->task_buf] = 0;
	if (r->finishing)
		download_finish(r, f);
	else
		fio_resume(r, f);
}

/* On the loop, when a task is done. */
static void
fio_task_done(void *arg)
{
	struct fio	*f = arg;

	f->busy = 0;
	if (f->r == NULL) {
		fio_free(f);
		return;
	}
	if (f->upload)
		upload_filled(f->r, f);
	else
		download_written(f->r, f);
	/* A resumed transfer may have ended at once. */
	check_done();
}

/* ---- transfers ------------------------------------------------------ */

static size_t
read_cb(char *buf, size_t size, size_t nitems, void *arg)
{
	struct http_req	*r = arg;
	struct fio	*f = r->up;
	uint64_t	 left = r->body_len - r->body_off;
	size_t		 want = size * nitems, n;

	if (want > left)
		want = (size_t)left;
	if (want == 0)
		return (0);
	if (f == NULL) {
		memcpy(buf, r->body_buf + r->body_off, want);
		r->body_off += want;
		return (want);
	}
	if (r->io_err != 0)
		return (CURL_READFUNC_ABORT);
	if (!f->ready[f->cur]) {
		if (upload_fill(r, f) == -1)
			return (CURL_READFUNC_ABORT);
		f->paused = 1;
		return (CURL_READFUNC_PAUSE);
	}
	n = f->len[f->cur] - f->pos;
	if (n > want)
		n = want;
	memcpy(buf, f->buf[f->cur] + f->pos, n);
	if (r->tap != NULL)
		r->tap(r->tap_arg, 1, buf, n);
	f->pos += n;
	r->body_off += n;
	if (f->pos == f->len[f->cur]) {
		f->ready[f->cur] = 0;
		f->pos = 0;
		f->cur = !f->cur;
		(void)upload_fill(r, f);	/* a failure aborts later */
	}
	return (n);
}

/* libcurl rewinds an upload it must send again (a reused connection that
 * turned out closed); only a rewind to the start is needed. */
static int
seek_cb(void *arg, curl_off_t offset, int origin)
{
	struct http_req	*r = arg;
	struct fio	*f = r->up;

	if (origin != SEEK_SET || offset != 0)
		return (CURL_SEEKFUNC_CANTSEEK);
	r->body_off = 0;
	if (f != NULL) {
		f->gen++;		/* a task out reads for nothing */
		f->ready[0] = f->ready[1] = 0;
		f->cur = 0;
		f->pos = 0;
		f->file_off = 0;
		if (r->tap != NULL)
			r->tap(r->tap_arg, 1, NULL, 0);
	}
	return (CURL_SEEKFUNC_OK);
}

/* Add n bytes to the in-memory response body. */
static int
resp_append(struct http_req *r, const char *data, size_t n)
{
	size_t	 ncap;
	char	*p;

	if (r->resp_len + n + 1 > r->resp_cap) {
		ncap = r->resp_cap ? r->resp_cap : 4096;
		while (ncap < r->resp_len + n + 1)
			ncap *= 2;
		if ((p = realloc(r->resp, ncap)) == NULL) {
			r->io_err = ENOMEM;
			r->io_what = "out of memory";
			return (-1);
		}
		r->resp = p;
		r->resp_cap = ncap;
	}
	memcpy(r->resp + r->resp_len, data, n);
	r->resp_len += n;
	r->resp[r->resp_len] = '\0';
	return (0);
}

static size_t
write_cb(char *data, size_t size, size_t nmemb, void *arg)
{
	struct http_req	*r = arg;
	struct fio	*f = r->down;
	size_t		 n = size * nmemb, keep;

	if (f == NULL && r->resp_truncate && r->resp_len + n > r->resp_max) {
		/* Keep the start; take the rest and drop it. */
		if (r->tap != NULL)
			r->tap(r->tap_arg, 0, data, n);
		keep = (size_t)(r->resp_max - r->resp_len);
		if (keep > 0 && resp_append(r, data, keep) == -1)
			return (0);
		return (n);
	}
	if (r->resp_max > 0 && (f != NULL ? r->resp_taken : r->resp_len) +
	    n > r->resp_max) {
		r->io_err = EFBIG;
		r->io_what = "the response body is over the limit";
		return (0);
	}
	if (f != NULL) {
		if (r->io_err != 0)
			return (0);
		if (f->len[f->cur] > 0 && f->len[f->cur] + n > FIO_CHUNK) {
			if (f->busy) {
				/* Both buffers taken: wait for the disk. */
				f->paused = 1;
				return (CURL_WRITEFUNC_PAUSE);
			}
			if (download_flush(r, f) == -1)
				return (0);
		}
		if (fio_room(f, f->cur, n > FIO_CHUNK ? n : FIO_CHUNK) == -1) {
			r->io_err = ENOMEM;
			r->io_what = "out of memory";
			return (0);
		}
		memcpy(f->buf[f->cur] + f->len[f->cur], data, n);
		f->len[f->cur] += n;
		r->resp_taken += n;
		if (r->tap != NULL)
			r->tap(r->tap_arg, 0, data, n);
		return (n);
	}
	if (r->tap != NULL)
		r->tap(r->tap_arg, 0, data, n);
	if (resp_append(r, data, n) == -1)
		return (0);
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
	fio_release(r->up);
	fio_release(r->down);
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
		if (rc == CURLE_OK && r->down != NULL) {
			/* The file must hold every byte before the callback. */
			r->finishing = 1;
			r->rc = rc;
			download_finish(r, r->down);
			continue;
		}
		complete(r, rc);
	}
}

static void
complete(struct http_req *r, CURLcode rc)
{
	req_unlink(r);
	finish(r, rc);
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
	r->resp_max = opts->max_response_bytes;
	if (opts->resp_fd < 0 && r->resp_max == 0)
		r->resp_max = HTTP_DEFAULT_MAX_RESPONSE;
	r->resp_truncate = opts->resp_fd < 0 && opts->truncate_response;
	r->tap = opts->tap;
	r->tap_arg = opts->tap_arg;
	if (opts->resp_fd >= 0) {
		if ((r->down = fio_new(opts->resp_fd, 0)) == NULL)
			goto fail_keep_errno;
		r->down->r = r;
	}
	has_body = body != NULL && (body->fd >= 0 || body->buf != NULL);
	if (has_body && body->fd >= 0) {
		if ((r->up = fio_new(body->fd, 1)) == NULL)
			goto fail_keep_errno;
		r->up->r = r;
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
