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

#include <signal.h>
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

/*
 * ===================================================================
 * The decision core: circuit breakers, retry decisions, classification
 * and operations with recovery (PROTOCOL.md "Circuit breakers" to
 * "Operations with recovery"; semantics in BEHAVIOUR.md §1-§3). These are
 * typed wrappers over erm_call, in erm_decide.c. Like the rest of liberm
 * they never print or exit; a daemon error is ERM_EREPLY with
 * erm_last_error() describing it. A reply that lacks a member the contract
 * promises is ERM_EPROTO.
 * ===================================================================
 */

/* The daemon error code of a breaker that does not permit the call. */
#define ERM_CODE_BREAKER_OPEN	1004

/* Room, with the NUL, for what the daemon hands out. */
#define ERM_PERMIT_MAX		128	/* a breaker permit */
#define ERM_ID_MAX		128	/* an op id */
#define ERM_NAME_MAX		129	/* a breaker or backend name (1-128) */

/*
 * An error object (PROTOCOL.md §4). A member is absent when it is NULL (a
 * string) or 0 or less (a number), so a zeroed struct is empty and a
 * designated initializer sets only what is known:
 *
 *	struct erm_errinfo e = { .errnum = ECONNRESET };
 *
 * Strings are borrowed: they must stay valid until the function given the
 * struct returns. A category, when given, wins over every other member.
 */
struct erm_errinfo {
	const char	*category;	/* "NETWORK_ERROR", ... */
	int		 errnum;	/* an errno value: the "errno" member */
	int		 http_status;
	int		 exit_code;
	int		 signal;	/* the signal that ended a process */
	const char	*exception;	/* a type name: "TimeoutError" */
	const char	*message;
	int64_t		 retry_after_ms;	/* e.g. from HTTP Retry-After */
};

/*
 * *out becomes a new reference to e as an error object, holding only the
 * members present. ERM_EINVAL when none is (the protocol wants at least
 * one) or a string is not valid UTF-8.
 */
enum erm_status	 erm_errinfo_json(const struct erm_errinfo *e, json_t **out);

/* ---- circuit breakers --------------------------------------------- */

enum erm_outcome {
	ERM_SUCCESS,
	ERM_FAILURE,
	ERM_IGNORED,	/* counts as neither; a half-open permit goes back */
};

/*
 * breaker.acquire: ask breaker name (created on first use) for a permit to
 * make one call, waiting up to wait_ms (0: answer at once). ERM_OK: permit
 * (when not NULL) holds it, for erm_breaker_record. ERM_EREPLY with
 * erm_last_error()->code ERM_CODE_BREAKER_OPEN: the call is not permitted
 * and *retry_after_ms (when not NULL) is how long until the breaker may let
 * one through. *retry_after_ms is -1 in every other case.
 */
enum erm_status	 erm_breaker_acquire(struct erm_client *, const char *name,
		    int wait_ms, char permit[ERM_PERMIT_MAX],
		    int64_t *retry_after_ms);

/*
 * breaker.record: the outcome of the call made under permit, or with
 * permit NULL a free-standing observation. duration_ms < 0 and err NULL
 * (or empty) are left out. *recorded (when not NULL) is 0 when the daemon
 * counted nothing: the permit was from an earlier generation of the
 * breaker, or the breaker is disabled.
 */
enum erm_status	 erm_breaker_record(struct erm_client *, const char *name,
		    const char *permit, enum erm_outcome outcome,
		    int64_t duration_ms, const struct erm_errinfo *err,
		    int *recorded);

/* breaker.get: *out is a new reference to the breaker object. */
enum erm_status	 erm_breaker_get(struct erm_client *, const char *name,
		    json_t **out);

/* ---- retry decisions and classification ---------------------------- */

struct erm_retry_decision {
	int		 retry;		/* 1: call again after delay_ms */
	int64_t		 delay_ms;
	char		 reason[24];	/* "retryable", "exhausted",
					   "non_retryable", "budget_exhausted",
					   "deadline" */
};

/*
 * retry.next: may another attempt be made? attempt is the number made so
 * far, the failed one included (1 or more). policy names a retry policy
 * (NULL: the daemon's [retry] defaults); key names the retry budget (NULL:
 * the policy's); err is the failed attempt's error (NULL or empty: none);
 * elapsed_ms and prev_delay_ms are left out when negative.
 */
enum erm_status	 erm_retry_next(struct erm_client *, const char *policy,
		    const char *key, int attempt, const struct erm_errinfo *err,
		    int64_t elapsed_ms, int64_t prev_delay_ms,
		    struct erm_retry_decision *out);

struct erm_classification {
	char		 category[32];	/* "NETWORK_ERROR", ... */
	char		 primary[24];	/* a strategy: "retry", ... */
	char		 fallback[24];	/* "" when there is none */
	int		 retryable;
	char		 matched[64];	/* the rule that matched; cut to fit */
};

/* error.classify: the category and strategies the daemon gives err. */
enum erm_status	 erm_classify(struct erm_client *,
		    const struct erm_errinfo *err,
		    struct erm_classification *out);

/* ---- operations with recovery (execute_with_recovery) -------------- */

/*
 * The code erm_execute protects. It returns 0 on success; anything else is
 * a failure, described in *err (zeroed before each call; left empty it is
 * reported as the message "unspecified failure", a SYSTEM_ERROR).
 */
typedef int	(*erm_fn)(void *arg, struct erm_errinfo *err);

struct erm_exec_opts {
	const char		*breaker;	/* guarding breaker, or NULL */
	const char		*policy;	/* retry policy name, or NULL */
	json_t			*policy_object;	/* borrowed; wins over policy */
	const char *const	*backup;	/* NULL-terminated paths to back
						   up before the first call */
	int64_t			 deadline_ms;	/* > 0: no attempt starts later
						   than this after the start */
	const volatile sig_atomic_t *cancel;	/* set (say, by a signal
						   handler): no more attempts */
};

struct erm_exec_result {
	char		 op[ERM_ID_MAX];	/* the op's id, or "" */
	char		 decision[16];	/* why it stopped without success:
					   "rejected", "fallback", "rollback",
					   "escalate", "skip", "deadline",
					   "cancelled"; "" otherwise */
	char		 category[32];	/* the last failure's category */
	char		 strategy[24];	/* the strategy op.fail applied */
	char		 backend[ERM_NAME_MAX];	/* "fallback": use this one */
	int		 attempts;	/* calls of fn made */
	int		 recovered;	/* it succeeded after a failure */
	int		 rolled_back;	/* backups the daemon restored */
	int		 fn_result;	/* what fn returned last */
	int64_t		 slept_ms;	/* the retry delays waited, in total */
	int64_t		 retry_after_ms;	/* "rejected": the breaker's
						   retry_after_ms; else -1 */
};

/*
 * Run fn(arg, err) as the operation named operation, the daemon deciding
 * what to do after each failure: op.begin (with opts; NULL for none), then
 * fn; on success op.succeed; on failure op.fail, and for the decision
 * "retry" wait delay_ms and call fn again. The daemon acquires and records
 * the breaker's permits inside op.*: nothing more is needed from the
 * caller. res (may be NULL) says what happened. Returns:
 *
 *   ERM_OK         fn succeeded.
 *   ERM_EREPLY     the daemon ended the op without success. res->decision
 *                  is "rejected" when the breaker did not permit the call
 *                  (1004 from op.begin, or from op.fail for the next
 *                  attempt; erm_last_error() has it); or the decision of
 *                  op.fail that ended it ("fallback" with res->backend,
 *                  "rollback", "escalate", "skip"; erm_last_error()->code
 *                  is 0); or "" for any other error reply.
 *   ERM_ETIMEDOUT  res->decision "deadline": the next attempt would start
 *                  past opts->deadline_ms; or "" for the handle's timeout.
 *   ERM_ESYS       res->decision "cancelled" (errno EINTR): *opts->cancel
 *                  became non-zero.
 *   other          the connection failed.
 *
 * res->fn_result 0 with a status other than ERM_OK means fn succeeded but
 * op.succeed failed: the work is done, the daemon's record of it is not.
 * When erm_execute stops on its own (deadline, cancel, a lost connection)
 * while the daemon expects another attempt, the protocol has no way to say
 * so: the daemon ends the op as failed ("abandoned") when the connection
 * closes.
 */
enum erm_status	 erm_execute(struct erm_client *, const char *operation,
		    erm_fn fn, void *arg, const struct erm_exec_opts *opts,
		    struct erm_exec_result *res);

/*
 * The seed's @recovery_operation decorator: give a function erm_execute's
 * protection. The body follows the macro and sees `arg` (a type *) and
 * `err` (a struct erm_errinfo *); it returns 0 or fills err.
 *
 *	ERM_RECOVERABLE(upload, struct job, client, &upload_opts)
 *	{
 *		if (put_file(arg->path) == -1) {
 *			err->errnum = errno;
 *			return (-1);
 *		}
 *		return (0);
 *	}
 *
 * defines `static enum erm_status upload(struct job *arg, struct
 * erm_exec_result *res)`, which runs the body through erm_execute as the
 * operation "upload". client and opts are evaluated at each call, so they
 * may name variables set up later (opts may be NULL).
 */
#define ERM_RECOVERABLE(name, type, client, opts)			\
static int	name##_erm_body(type *, struct erm_errinfo *);		\
static int								\
name##_erm_fn(void *arg, struct erm_errinfo *err)			\
{									\
	return (name##_erm_body(arg, err));				\
}									\
static enum erm_status							\
name(type *arg, struct erm_exec_result *res)				\
{									\
	return (erm_execute((client), #name, name##_erm_fn, arg,	\
	    (opts), res));						\
}									\
static int								\
name##_erm_body(type *arg, struct erm_errinfo *err)

/*
 * Fallback storage: the seed's execute_with_fallback. fn is called with a
 * backend the daemon chooses (storage.select: its name, "dir" or "http",
 * and its path or URL); it returns 0 on success or fills err. Each try is
 * reported (storage.report) so the daemon's view of the backend's health
 * follows; after a failure the next healthy backend not yet tried is used.
 * Returns ERM_OK with res->backend the backend that worked, or ERM_EREPLY
 * when every healthy backend failed (res->fn_result the last failure) or
 * none was left to try (erm_last_error: 1007).
 */
typedef int	(*erm_backend_fn)(void *arg, const char *backend,
		    const char *type, const char *location,
		    struct erm_errinfo *err);

struct erm_fallback_result {
	char		 backend[ERM_NAME_MAX];	/* the one that worked */
	int		 tries;
	int		 fn_result;		/* of the last try */
};

enum erm_status	 erm_execute_with_fallback(struct erm_client *,
		    erm_backend_fn fn, void *arg,
		    struct erm_fallback_result *res);

/*
 * ===================================================================
 * Workflows (PROTOCOL.md "Workflows"): the seed's create_recovery_workflow
 * and execute_recovery_workflow, in erm_workflow.c. A workflow is built
 * step by step and submitted; the daemon runs it, records every step, and
 * finishes or compensates it even across a crash. Steps of type "client"
 * run in the submitting process, through C callbacks, while
 * erm_workflow_execute follows the workflow.
 * ===================================================================
 */

struct erm_workflow;

/*
 * A client step's work, or its rollback. Return 0 on success (and, if
 * wanted, set *output to a new reference to an object: the step's output)
 * or non-zero after filling err (at least one member).
 */
typedef int	(*erm_step_fn)(void *arg, const char *step, json_t **output,
		    struct erm_errinfo *err);
/* Progress: each workflow.state and workflow.step event of the workflow
 * (borrowed), as PROTOCOL.md describes them. */
typedef void	(*erm_progress_fn)(void *arg, const json_t *event);

/* A new, empty workflow named name; free it with erm_workflow_free. */
enum erm_status	 erm_workflow_new(const char *name, struct erm_workflow **out);
void		 erm_workflow_free(struct erm_workflow *);
/*
 * The workflow.create params being built (borrowed), for the options:
 * rollback_on_failure, compensation, continue_on_compensation_error, run.
 */
json_t		*erm_workflow_params(struct erm_workflow *);
/*
 * Add a step the daemon runs: action and compensate (may be NULL) are
 * action objects, stolen. after is a NULL-terminated list of step names;
 * NULL means "after the step added before" and an empty list ({ NULL })
 * starts a parallel branch.
 */
enum erm_status	 erm_workflow_add(struct erm_workflow *, const char *name,
		    json_t *action, json_t *compensate,
		    const char *const *after);
/* Add a client step: fn runs it, rollback (may be NULL) undoes it. */
enum erm_status	 erm_workflow_add_client(struct erm_workflow *,
		    const char *name, erm_step_fn fn, erm_step_fn rollback,
		    void *arg, const char *const *after);
/* The step added last (borrowed), to set retry, breaker, timeout_ms or
 * idempotent on it; NULL when there is none. */
json_t		*erm_workflow_last_step(struct erm_workflow *);
/* Submit (workflow.create) without following it; id gets its id. */
enum erm_status	 erm_workflow_submit(struct erm_client *,
		    struct erm_workflow *, char *id, size_t idlen);
/*
 * Submit and follow the workflow to its end: client steps are run as the
 * daemon asks, progress (may be NULL) sees every transition, and *final
 * is a new reference to the finished workflow (workflow.get's shape).
 * ERM_OK whatever the final state: see erm_workflow_state(*final). The
 * handle subscribes to the workflow events; use it for nothing else
 * meanwhile. Closing the handle during the run fails its client steps.
 * ERM_EINVAL when the params say "run": false (it would never end).
 */
enum erm_status	 erm_workflow_execute(struct erm_client *,
		    struct erm_workflow *, erm_progress_fn progress, void *arg,
		    json_t **final);
/*
 * Follow a workflow by id until it is final (timeout_ms 0: no limit; else
 * ERM_ETIMEDOUT after about that long). Client steps are not run here: on
 * the creating handle they are answered as failed (no callback).
 */
enum erm_status	 erm_workflow_wait(struct erm_client *, const char *id,
		    int timeout_ms, erm_progress_fn progress, void *arg,
		    json_t **final);
/* workflow.cancel; *final (may be NULL) as erm_workflow_wait's. */
enum erm_status	 erm_workflow_cancel(struct erm_client *, const char *id,
		    json_t **final);
/* The state member of a workflow object ("" when missing). */
const char	*erm_workflow_state(const json_t *wf);

#ifdef __cplusplus
}
#endif

#endif
