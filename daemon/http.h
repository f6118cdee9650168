/*
 * The daemon's one HTTP client: asynchronous requests run by libcurl's multi
 * interface on the daemon's libevent loop, so that no transfer ever blocks
 * the loop. Fallback storage uses it for its http backends; the Supabase
 * forwarder and webhook alerts are meant to use it too.
 *
 * A request is started with http_request() and ends exactly once with its
 * callback, always later on the loop (never from inside http_request()),
 * unless it is cancelled first with http_cancel(). Only this module includes
 * <curl/curl.h>.
 */
#ifndef HTTP_H
#define HTTP_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct event_base;
struct http_req;

/* Ceiling on a response body kept in memory when options say 0. */
#define HTTP_DEFAULT_MAX_RESPONSE	(1024 * 1024)
/* Ceiling on the response headers of one request. */
#define HTTP_MAX_HEADER_BYTES		(64 * 1024)

/*
 * What to send. Either a buffer (copied by http_request, so the caller may
 * free it at once), or len bytes of an open file read with pread from offset
 * 0 (http_request duplicates the descriptor, so the caller may close its
 * own at once). Leave both empty (buf NULL, fd -1) for no body. A file is
 * read, and a response file written, on the worker pool (worker.h), never
 * on the loop: a request with either needs the pool running.
 */
struct http_body {
	const void	*buf;
	size_t		 len;
	int		 fd;		/* -1: use buf */
};

struct http_options {
	long		 timeout_ms;		/* whole transfer; 0: none */
	long		 connect_timeout_ms;	/* 0: libcurl's (300 s) */
	const char	*ca_file;		/* NULL: the system's CAs */
	const char	*client_cert;		/* PEM, or NULL */
	const char	*client_key;		/* PEM, or NULL */
	int		 insecure;		/* skip TLS peer/host checks */
	/*
	 * In-memory response bodies longer than this fail the request with
	 * EFBIG (0: HTTP_DEFAULT_MAX_RESPONSE). With resp_fd, the bytes
	 * written to it are limited instead (0: no limit).
	 */
	uint64_t	 max_response_bytes;
	/*
	 * In-memory bodies: keep the first max_response_bytes and drop the
	 * rest instead of failing (what a caller reads of an error page is
	 * its start). body_len is then what was kept.
	 */
	int		 truncate_response;
	/*
	 * >= 0: write the response body to this descriptor instead of
	 * keeping it in memory, with write(2) at its file offset (through a
	 * duplicate, so the caller may close its own at once). Every byte is
	 * written before the callback runs.
	 */
	int		 resp_fd;
	/*
	 * Called on the loop, in order, with every chunk of the request body
	 * as it is sent (fd bodies only) and of the response body as it
	 * arrives, for hashing; data NULL means "start again" (libcurl
	 * rewound the upload). May be NULL.
	 */
	void		(*tap)(void *arg, int upload, const void *data,
			    size_t len);
	void		*tap_arg;
};

struct http_response {
	long		 status;	/* HTTP status; 0 when none came */
	/*
	 * 0 when the whole response came (whatever its status), else an
	 * errno-style cause (status may still be set when the failure came
	 * after the headers): ETIMEDOUT, ECONNREFUSED (or the connect(2) errno),
	 * EHOSTUNREACH (name not resolved), ECONNRESET, EFBIG (response over
	 * the limit), EPROTO (TLS or protocol failure), ECANCELED (shutdown),
	 * ENOMEM, or the errno of reading the body file or writing resp_fd.
	 */
	int		 err;
	const char	*error;		/* libcurl's text, "" when err is 0 */
	int		 local;		/* err is from reading the body file
					 * or writing resp_fd, not the peer */
	const char	*body;		/* NUL-terminated; "" with resp_fd */
	size_t		 body_len;
	uint64_t	 body_bytes;	/* written to resp_fd */
	uint64_t	 elapsed_ms;	/* real time */
	/* private */
	char		**hdr;		/* name, value, name, value, ... */
	size_t		  nhdr;
};

/* The response and everything it points to are valid during the call only. */
typedef void	(*http_done_fn)(const struct http_response *, void *arg);

/*
 * Start the client on base. Modules that use HTTP call it from their start
 * and call http_shutdown() from their stop; the client runs while any of
 * them does. Returns -1 if libcurl cannot be set up.
 */
int		 http_init(struct event_base *base);
/*
 * When the last user stops: end every transfer in flight, calling its
 * callback with err ECANCELED, and free the client.
 */
void		 http_shutdown(void);

/*
 * Start a request. method is "GET", "HEAD", "PUT", "POST", "DELETE" or
 * another token; url is http:// or https:// (other schemes are refused by
 * libcurl). headers is a NULL-terminated list of "Name: value" lines (may be
 * NULL); body and opts may be NULL. Redirects are not followed; the
 * "Expect: 100-continue" handshake is off unless a header asks for it.
 * Returns the request (for http_cancel), or NULL with errno set when it
 * could not be started; done is then never called.
 */
struct http_req	*http_request(const char *method, const char *url,
		    const char *const *headers, const struct http_body *body,
		    const struct http_options *opts, http_done_fn done,
		    void *arg);
/* Stop a request in flight; its callback is not called. */
void		 http_cancel(struct http_req *);
/* Transfers in flight. */
unsigned	 http_inflight(void);

/*
 * A response header's value (the last one of that name, case-insensitive,
 * surrounding blanks removed), or NULL.
 */
const char	*http_header(const struct http_response *, const char *name);

/*
 * Parse a Retry-After value: delay-seconds, or an HTTP date (IMF-fixdate,
 * RFC 850 or asctime) compared with now_ms (unix ms). Sets *delay_ms (0 for
 * a date in the past; huge values saturate at INT64_MAX) and returns 0, or
 * -1 when the value is neither. The caller applies its own cap.
 */
int		 http_retry_after_ms(const char *value, uint64_t now_ms,
		    int64_t *delay_ms);

/* A short description of a response for logs and errors: "HTTP 503",
 * "connection refused", ... Returns buf. */
const char	*http_describe(const struct http_response *, char *buf,
		    size_t bufsz);

#endif
