/*
 * Operations with recovery (the op.* methods): a client's call tracked
 * from op.begin to op.succeed or the end of op.fail's decisions, with the
 * strategy table, the retry policy, the breaker and the budget applied to
 * each failure. Finished ops are stored for op.get and the recovery
 * figures.
 */
#ifndef OP_H
#define OP_H

#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include "classify.h"
#include "htab.h"
#include "retry.h"
#include "uuid.h"

enum op_state { OP_RUNNING, OP_SUCCEEDED, OP_FAILED, OP_REJECTED };

struct op {
	struct hnode		 node;		/* by id */
	char			 id[UUID_STRLEN + 1];
	char			*operation;
	char			*breaker;	/* NULL: none */
	char			*key;		/* the retry budget's key */
	struct retry_policy	 policy;
	uint64_t		 owner;		/* connection id */
	uid_t			 uid;
	pid_t			 pid;
	enum op_state		 state;
	char			 reason[32];	/* how a failed op ended */
	int			 attempts;
	int			 failures;
	char			 permit[64];	/* the current attempt's */
	uint64_t		 started_at;
	uint64_t		 attempt_at;	/* when this attempt began */
	uint64_t		 finished_at;
	int64_t			 deadline_ms;	/* 0: none */
	int64_t			 last_delay_ms;	/* -1: none yet */
	json_t			*errors;	/* [error objects + at, attempt] */
	json_t			*backups;	/* [{path, backup_id}] */
	json_t			*fallbacks;	/* [backend names given] */
	int			 rollback_failed;
	struct op		*next, *prev;	/* its connection's running
						   ops, or the recent ones */
};

/* What op.fail decided. */
enum op_decision {
	DECIDE_RETRY,
	DECIDE_FALLBACK,
	DECIDE_ROLLBACK,
	DECIDE_ESCALATE,
	DECIDE_SKIP,
};

const char	*op_decision_name(enum op_decision);
const char	*op_state_name(enum op_state);

/*
 * Hooks other capabilities fill in when they run. fallback names the next
 * healthy storage backend (fallback_storage); it returns 0 when it could
 * act. Rollback is carried out by the op.fail handler (restores run off
 * the loop); op_decide only says when it can act: the op has backups and
 * no rollback of it has failed yet.
 */
struct op_recovery {
	int	(*fallback)(struct op *, char *backend, size_t len);
};
void		 op_set_recovery(const struct op_recovery *);

void		 op_start(void);
void		 op_stop(void);

struct op	*op_new(const char *operation, uint64_t owner, uid_t, pid_t);
struct op	*op_find(const char *id);
/* Move a running op to a final state and out of the running list. */
void		 op_finish(struct op *, enum op_state, const char *reason);
void		 op_free(struct op *);

struct op_decided {
	enum op_decision	 decision;
	enum strategy		 strategy;	/* the one that acted */
	int			 step;		/* its place in the plan */
	int64_t			 delay_ms;
	char			 permit[64];	/* for the next attempt */
	char			 backend[130];
	json_t			*rolled_back;	/* new reference */
};

/*
 * Apply the strategy plan of cr to a failure of op: the primary while it
 * can act (a retry with attempts, budget, deadline and breaker permit
 * left; a rollback with backups to restore; a fallback with a backend),
 * then the fallback, then the plan's further step, and escalate when
 * nothing else could act.
 */
void		 op_decide(struct op *, const struct classify_result *cr,
		    const struct erm_errobj *eo, struct op_decided *out);
/* The same, trying only the plan's steps after step (a rollback that
 * failed goes on with what follows it). */
void		 op_decide_after(struct op *, const struct classify_result *cr,
		    const struct erm_errobj *eo, int step,
		    struct op_decided *out);

/* op.get's object for op (new reference). */
json_t		*op_to_json(const struct op *);

/* Recovery figures since the store began: attempted/succeeded/failed. */
void		 op_recoveries(uint64_t *attempted, uint64_t *succeeded,
		    uint64_t *failed);
void		 op_recoveries_init(uint64_t attempted, uint64_t succeeded,
		    uint64_t failed);
void		 op_count_finished(const struct op *);
/* A running op of the connection owner, or NULL (O(1)). */
struct op	*op_running_of(uint64_t owner);
/* How many ops are running. */
size_t		 op_running(void);

#endif
