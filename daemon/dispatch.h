/*
 * Requests and the method table. The dispatcher checks the envelope, finds
 * the method, checks M_ADMIN against the peer's credentials, and calls the
 * handler. Only the dispatcher writes replies.
 *
 * A handler returns REQ_OK with req->result set (a new reference; NULL
 * means {}) or, on hot paths, req->result_text (the result's JSON text,
 * malloc'ed; written with erm_jw_*), REQ_ERROR after req_fail(), or
 * REQ_ASYNC when it keeps the
 * request and finishes it later with req_finish(). An async request holds a
 * reference on its connection, so a reply to a connection that has since
 * closed is dropped safely.
 */
#ifndef DISPATCH_H
#define DISPATCH_H

#include <stdint.h>

#include <jansson.h>

#include "params.h"

struct conn;

enum { REQ_ERROR = -1, REQ_OK = 0, REQ_ASYNC = 1 };

#define M_ADMIN		0x01	/* uid 0, the daemon's uid, or admin group */
#define M_DEBUG		0x02	/* exists only with --manual-clock */

struct ermd_req;

struct ermd_method {
	const char	*name;
	int		 flags;
	int		(*exec)(struct ermd_req *);
};

struct ermd_req {
	struct conn			*conn;
	const struct ermd_method	*method;
	json_t				*doc;		/* new reference */
	json_t				*id;		/* borrowed from doc */
	json_t				*params;	/* borrowed from doc */
	json_t				*result;	/* new reference */
	char				*result_text;	/* or this, owned */
	uint64_t			 t0_ns;
	int				 code;
	char				 msg[256];
	json_t				*data;		/* new reference */
	int				 method_index;
};

/* Handle one complete frame body from conn. */
void		 dispatch_frame(struct conn *, const uint8_t *body, size_t len);

/* Record an error on req and return REQ_ERROR. data is stolen (may be NULL). */
int		 req_fail(struct ermd_req *, int code, json_t *data,
		    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* -32602 with data {"field", "reason"} from a failed param check. */
int		 req_param_fail(struct ermd_req *, const struct param_err *);
/* Finish an async request with the outcome its handler recorded. */
void		 req_finish(struct ermd_req *, int status);

/* The methods a peer may see in hello (NULL-terminated in a JSON array). */
json_t		*dispatch_method_names(void);
void		 dispatch_init(void);

/* Monotonic nanoseconds, for request durations (not the daemon clock). */
uint64_t	 mono_ns(void);

#endif
