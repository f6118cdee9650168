/*
 * liberm: the C client library of ermd, the host-wide error-recovery daemon.
 *
 * A handle is one connection to the daemon's Unix socket. Calls are
 * synchronous (erm_call) or pipelined (erm_send + erm_wait). Parameters and
 * results are jansson values. The library never exits and never prints: every
 * function returns an enum erm_status, and a daemon-side error is described by
 * erm_last_error(). A handle is not safe to share between threads without a
 * lock; use one handle per thread.
 */
#ifndef ERM_H
#define ERM_H

#include <stdint.h>

#include <jansson.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ERM_DEFAULT_SOCKET	"/run/ermd/ermd.sock"

enum erm_status {
	ERM_OK = 0,
	ERM_EREPLY,	/* the daemon answered with an error: erm_last_error() */
	ERM_ECONNECT,	/* could not connect (daemon not running?) */
	ERM_ESYS,	/* a system call failed; errno is kept */
	ERM_EPROTO,	/* the daemon sent something that is not protocol */
	ERM_ECLOSED,	/* the daemon closed the connection */
	ERM_ETIMEDOUT,	/* no answer within the handle's timeout */
	ERM_ENOMEM,
	ERM_EINVAL,	/* a bad argument to a library function */
};

/* A daemon-side error reply (PROTOCOL.md §3). */
struct erm_error {
	int		 code;		/* e.g. 1004 */
	char		 message[256];
	json_t		*data;		/* borrowed from the handle, or NULL */
};

struct erm_client;

/* A short description of a status; never NULL. */
const char	*erm_strerror(enum erm_status);

/*
 * Connect to path, or $ERMD_SOCKET when path is NULL, or ERM_DEFAULT_SOCKET.
 * On success *out is a new handle the caller frees with erm_close().
 */
enum erm_status	 erm_connect(struct erm_client **out, const char *path);
void		 erm_close(struct erm_client *);

/* The socket path the handle is connected to. */
const char	*erm_socket_path(const struct erm_client *);

/*
 * How long erm_call, erm_send, erm_wait and erm_subscribe may block; 0 (the
 * default) waits forever. erm_next_event takes its own timeout. When
 * erm_send times out, *id is the request's id if it was queued (it will
 * still be sent and its reply can be collected) or -1 if it was not.
 */
void		 erm_set_timeout(struct erm_client *, int timeout_ms);

/*
 * Call method with params (borrowed; NULL means {}) and wait for its reply.
 * On ERM_OK *result (when result is not NULL) is a new reference to the
 * result object. On ERM_EREPLY erm_last_error() describes the error.
 * Events that arrive meanwhile are queued for erm_next_event().
 */
enum erm_status	 erm_call(struct erm_client *, const char *method,
		    json_t *params, json_t **result);

/*
 * Pipelining: send a request without waiting; *id receives its id. Replies
 * are matched by id, so several requests may be in flight at once and their
 * replies may be collected in any order with erm_wait().
 */
enum erm_status	 erm_send(struct erm_client *, const char *method,
		    json_t *params, int64_t *id);
enum erm_status	 erm_wait(struct erm_client *, int64_t id, json_t **result);

/*
 * The last error on this handle: after ERM_EREPLY the daemon's error; after
 * a local failure (ERM_EPROTO, ERM_ECLOSED, ...) code 0 and a message that
 * says what went wrong.
 */
const struct erm_error *erm_last_error(const struct erm_client *);

/* The name of a daemon error code ("breaker_open"), or "unknown". */
const char	*erm_code_name(int code);

/*
 * Events: subscribe (types is a NULL-terminated list, NULL for all), then
 * take events one at a time. erm_next_event waits up to timeout_ms (-1:
 * forever, 0: only what is already queued or readable) and returns
 * ERM_ETIMEDOUT when none came; *event is a new reference to the event's
 * params object ({"type", "at", ...}).
 */
enum erm_status	 erm_subscribe(struct erm_client *, const char *const *types);
enum erm_status	 erm_next_event(struct erm_client *, int timeout_ms,
		    json_t **event);

/* The file descriptor, for callers that poll several sources. */
int		 erm_fd(const struct erm_client *);

#ifdef __cplusplus
}
#endif

#endif
