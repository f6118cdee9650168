/*
 * One client connection: its buffers, framing, timeouts, credentials and
 * deferred free.
 */
#ifndef CONN_H
#define CONN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include "events.h"

#define CONN_MAX_GROUPS	64

struct conn {
	struct conn		*next, *prev;	/* all live connections */
	uint64_t		 id;		/* never reused */
	int			 fd;
	pid_t			 pid;
	uid_t			 uid;
	gid_t			 gid;
	gid_t			 groups[CONN_MAX_GROUPS];
	int			 ngroups;

	struct event		*ev_read;
	struct event		*ev_write;
	struct evbuffer		*out;
	uint8_t			*in;		/* at most max_frame + 4 bytes */
	size_t			 in_len, in_cap;
	struct clock_timer	*read_timer;	/* a partial frame is pending */
	struct clock_timer	*idle_timer;
	struct subscriber	 sub;		/* events; mask 0 = none */

	int			 refs;		/* requests in flight + 1 */
	int			 inflight;	/* requests not answered yet */
	int			 paused;	/* not read: inflight at the
						   limit */
	int			 dead;		/* closed, waiting for refs */
	int			 in_callback;	/* defer flushes to the end */
	uint64_t		 requests;
};

/* Take a new accepted socket; returns NULL (and closes fd) on failure. */
struct conn	*conn_new(int fd);
/* Close now; the memory goes once no request holds it. */
void		 conn_close(struct conn *, const char *why);
void		 conn_ref(struct conn *);
void		 conn_unref(struct conn *);
/*
 * A request read from c starts, and ends (its answer queued). While
 * [daemon] max_inflight of a connection's requests are unanswered (each
 * holds memory: a commit, a breaker or a workflow to wait for), ermd
 * reads no more of its frames; they wait in the socket, and the client's
 * writes block, until an answer goes out.
 */
void		 conn_request_begin(struct conn *);
void		 conn_request_end(struct conn *);

/* Queue one message (borrowed) as a frame; closes on the output limit. */
void		 conn_send(struct conn *, json_t *msg);
/* Queue {"id": id, "result": result} (both borrowed) without building the
 * envelope as a value. */
void		 conn_send_result(struct conn *, json_t *id, json_t *result);
/* The same with the result's JSON text. */
void		 conn_send_result_text(struct conn *, json_t *id,
		    const char *result);
void		 conn_send_frame(struct conn *, const uint8_t *frame, size_t len);
/* Send an error frame with id null (data stolen), then close. */
void		 conn_fatal(struct conn *, int code, json_t *data,
		    const char *msg);

int		 conn_is_admin(const struct conn *);
unsigned	 conn_count(void);
/* Close every connection (shutdown). */
void		 conn_close_all(void);

/* Something to run for each connection that closes (leases, ops, ...). */
typedef void	(*conn_close_hook)(struct conn *);
void		 conn_on_close(conn_close_hook);

#endif
