/* Operations with recovery: the registry and op.fail's decisions; see op.h. */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "breaker.h"
#include "clock.h"
#include "decide.h"
#include "log.h"
#include "op.h"

/* Finished ops kept in memory for op.get; older ones are read back. */
#define OP_RECENT	1024

/* The running ops of one connection, so that its close finds them. */
struct op_owner {
	struct hnode		 node;		/* by id */
	uint64_t		 id;
	struct op		*first;		/* linked by next/prev */
};

static struct {
	struct htab		 byid;		/* running and recent */
	struct htab		 owners;	/* of running ops */
	size_t			 nrunning;
	struct op		*recent, *recent_tail;
	size_t			 nrecent;
	struct op_recovery	 recovery;
	uint64_t		 attempted, succeeded, failed;
} ops;

static const char *const decision_names[] = {
	"retry", "fallback", "rollback", "escalate", "skip",
};

static const char *const state_names[] = {
	"running", "succeeded", "failed", "rejected",
};

const char *
op_decision_name(enum op_decision d)
{
	return (decision_names[d]);
}

const char *
op_state_name(enum op_state s)
{
	return (state_names[s]);
}

void
op_set_recovery(const struct op_recovery *r)
{
	ops.recovery = *r;
}

void
op_start(void)
{
	htab_init(&ops.byid);
	htab_init(&ops.owners);
}

void
op_free(struct op *op)
{
	if (op == NULL)
		return;
	free(op->operation);
	free(op->breaker);
	free(op->key);
	json_decref(op->errors);
	json_decref(op->backups);
	json_decref(op->fallbacks);
	free(op);
}

void
op_stop(void)
{
	struct hnode	*h, *next;
	size_t		 bucket = 0;

	for (h = htab_next(&ops.byid, NULL, &bucket); h != NULL; h = next) {
		next = htab_next(&ops.byid, h, &bucket);
		htab_remove(&ops.byid, h);
		op_free(HTAB_ENTRY(h, struct op, node));
	}
	htab_free(&ops.byid);
	bucket = 0;
	for (h = htab_next(&ops.owners, NULL, &bucket); h != NULL; h = next) {
		next = htab_next(&ops.owners, h, &bucket);
		htab_remove(&ops.owners, h);
		free(HTAB_ENTRY(h, struct op_owner, node));
	}
	htab_free(&ops.owners);
	ops.nrunning = 0;
	ops.recent = ops.recent_tail = NULL;
	ops.nrecent = 0;
}

static struct op_owner *
owner_find(uint64_t id)
{
	struct hnode	*h = htab_find(&ops.owners, &id, sizeof(id));

	return (h != NULL ? HTAB_ENTRY(h, struct op_owner, node) : NULL);
}

/* Put a new running op on its connection's list; -1 out of memory. */
static int
owner_link(struct op *op)
{
	struct op_owner	*o;

	if ((o = owner_find(op->owner)) == NULL) {
		if ((o = calloc(1, sizeof(*o))) == NULL)
			return (-1);
		o->id = op->owner;
		if (htab_insert(&ops.owners, &o->node, &o->id,
		    sizeof(o->id)) == -1) {
			free(o);
			return (-1);
		}
	}
	op->prev = NULL;
	op->next = o->first;
	if (o->first != NULL)
		o->first->prev = op;
	o->first = op;
	ops.nrunning++;
	return (0);
}

static void
owner_unlink(struct op *op)
{
	struct op_owner	*o = owner_find(op->owner);

	if (op->prev != NULL)
		op->prev->next = op->next;
	else if (o != NULL)
		o->first = op->next;
	if (op->next != NULL)
		op->next->prev = op->prev;
	op->next = op->prev = NULL;
	ops.nrunning--;
	if (o != NULL && o->first == NULL) {
		htab_remove(&ops.owners, &o->node);
		free(o);
	}
}

struct op *
op_new(const char *operation, uint64_t owner, uid_t uid, pid_t pid)
{
	struct op	*op;

	if ((op = calloc(1, sizeof(*op))) == NULL)
		return (NULL);
	uuid7(op->id);
	op->operation = strdup(operation);
	op->errors = json_array();
	op->backups = json_array();
	op->fallbacks = json_array();
	op->owner = owner;
	op->uid = uid;
	op->pid = pid;
	op->state = OP_RUNNING;
	op->attempts = 1;
	op->started_at = op->attempt_at = clock_now_ms();
	op->last_delay_ms = -1;
	if (op->operation == NULL || op->errors == NULL ||
	    op->backups == NULL || op->fallbacks == NULL ||
	    htab_insert(&ops.byid, &op->node, op->id, strlen(op->id)) == -1) {
		op_free(op);
		return (NULL);
	}
	if (owner_link(op) == -1) {
		htab_remove(&ops.byid, &op->node);
		op_free(op);
		return (NULL);
	}
	return (op);
}

struct op *
op_find(const char *id)
{
	struct hnode	*h = htab_find(&ops.byid, id, strlen(id));

	return (h != NULL ? HTAB_ENTRY(h, struct op, node) : NULL);
}

/*
 * A finished op stays findable among the OP_RECENT most recent ones; the
 * oldest is dropped from memory (its row in the store remains).
 */
void
op_finish(struct op *op, enum op_state state, const char *reason)
{
	struct op	*old;

	if (op->state == OP_RUNNING)
		owner_unlink(op);
	op->state = state;
	op->finished_at = clock_now_ms();
	snprintf(op->reason, sizeof(op->reason), "%s", reason != NULL ?
	    reason : "");
	op->next = NULL;
	op->prev = ops.recent_tail;
	if (ops.recent_tail != NULL)
		ops.recent_tail->next = op;
	else
		ops.recent = op;
	ops.recent_tail = op;
	if (++ops.nrecent > OP_RECENT) {
		old = ops.recent;
		ops.recent = old->next;
		ops.recent->prev = NULL;
		ops.nrecent--;
		htab_remove(&ops.byid, &old->node);
		op_free(old);
	}
}

void
op_count_finished(const struct op *op)
{
	if (op->failures == 0)
		return;		/* nothing had to be recovered */
	ops.attempted++;
	if (op->state == OP_SUCCEEDED)
		ops.succeeded++;
	else
		ops.failed++;
}

void
op_recoveries_init(uint64_t attempted, uint64_t succeeded, uint64_t failed)
{
	ops.attempted = attempted;
	ops.succeeded = succeeded;
	ops.failed = failed;
}

struct op *
op_running_of(uint64_t owner)
{
	struct op_owner	*o = owner_find(owner);

	return (o != NULL ? o->first : NULL);
}

size_t
op_running(void)
{
	return (ops.nrunning);
}

void
op_recoveries(uint64_t *attempted, uint64_t *succeeded, uint64_t *failed)
{
	*attempted = ops.attempted;
	*succeeded = ops.succeeded;
	*failed = ops.failed;
}

/*
 * Can a retry strategy act? The policy decides (attempts, category,
 * deadline, budget); a plain `retry` retries at once rather than after a
 * backoff. With a breaker, the next attempt also needs a permit: an open
 * breaker makes the retry impossible and the plan moves on. The permit is
 * taken before the budget, so a retry the breaker refuses spends none; its
 * lease runs from when the retry is due, so that waiting the delay as told
 * cannot outlive it.
 */
static int
try_retry(struct op *op, enum strategy s, const struct classify_result *cr,
    const struct erm_errobj *eo, struct op_decided *out)
{
	struct retry_policy		 p = op->policy;
	struct retry_decision		 d;
	struct breaker_permit_info	 pi;
	struct breaker_call		 back;
	struct breaker_record_result	 res;
	uint64_t			 now = clock_now_ms();
	int64_t				 elapsed = (int64_t)(now - op->started_at);

	if (s == STRAT_RETRY) {
		p.base_delay_ms = 0;
		p.jitter = JITTER_NONE;
	}
	if (op->deadline_ms > 0 && (p.max_elapsed_ms == 0 ||
	    op->deadline_ms < p.max_elapsed_ms))
		p.max_elapsed_ms = op->deadline_ms;
	retry_check(&p, op->attempts, cr->category, elapsed, op->last_delay_ms,
	    (eo->have & EO_RETRY_AFTER) ? eo->retry_after_ms : -1,
	    decide_rng(), &d);
	if (!d.retry) {
		retry_count(decide_budget(), &d);
		return (0);
	}
	out->permit[0] = '\0';
	if (op->breaker != NULL) {
		memset(&pi, 0, sizeof(pi));
		if (breaker_acquire_from(decide_breakers(), op->breaker,
		    op->owner, now + (uint64_t)d.delay_ms, &pi) != 0)
			return (0);
		snprintf(out->permit, sizeof(out->permit), "%s", pi.permit);
	}
	(void)retry_grant(&p, decide_budget(), op->key, &d);
	if (!d.retry) {
		/* No budget: the permit goes back, counting nothing. */
		if (out->permit[0] != '\0') {
			memset(&back, 0, sizeof(back));
			back.outcome = OUTCOME_IGNORED;
			(void)breaker_record(decide_breakers(), op->breaker,
			    out->permit, &back, &res);
			out->permit[0] = '\0';
		}
		return (0);
	}
	out->decision = DECIDE_RETRY;
	out->delay_ms = d.delay_ms;
	return (1);
}

static int
try_strategy(struct op *op, enum strategy s, const struct classify_result *cr,
    const struct erm_errobj *eo, struct op_decided *out)
{
	switch (s) {
	case STRAT_RETRY_WITH_BACKOFF:
	case STRAT_RETRY:
		return (try_retry(op, s, cr, eo, out));
	case STRAT_ROLLBACK:
		if (json_array_size(op->backups) == 0 || op->rollback_failed)
			return (0);
		out->decision = DECIDE_ROLLBACK;
		return (1);
	case STRAT_FALLBACK_STORAGE:
		if (ops.recovery.fallback == NULL ||
		    ops.recovery.fallback(op, out->backend,
		    sizeof(out->backend)) != 0)
			return (0);
		out->decision = DECIDE_FALLBACK;
		return (1);
	case STRAT_ESCALATE:
		out->decision = DECIDE_ESCALATE;
		return (1);
	case STRAT_SKIP_AND_LOG:
		out->decision = DECIDE_SKIP;
		return (1);
	default:
		return (0);
	}
}

void
op_decide(struct op *op, const struct classify_result *cr,
    const struct erm_errobj *eo, struct op_decided *out)
{
	op_decide_after(op, cr, eo, -1, out);
}

void
op_decide_after(struct op *op, const struct classify_result *cr,
    const struct erm_errobj *eo, int step, struct op_decided *out)
{
	const enum strategy	plan[] = { cr->strategy.primary,
	    cr->strategy.fallback, cr->strategy.then };
	int			i;

	memset(out, 0, sizeof(*out));
	for (i = step + 1; i < (int)(sizeof(plan) / sizeof(plan[0])); i++) {
		if (plan[i] == STRAT_NONE)
			continue;
		if (try_strategy(op, plan[i], cr, eo, out)) {
			out->strategy = plan[i];
			out->step = i;
			return;
		}
	}
	/* Nothing in the plan could act: someone has to look at it. */
	out->decision = DECIDE_ESCALATE;
	out->strategy = STRAT_ESCALATE;
	out->step = 3;
}

json_t *
op_to_json(const struct op *op)
{
	json_t	*o;

	o = json_pack("{s:s, s:s, s:s, s:i, s:O, s:O, s:I}", "op", op->id,
	    "operation", op->operation, "state", op_state_name(op->state),
	    "attempts", op->attempts, "errors", op->errors, "backups",
	    op->backups, "started_at", (json_int_t)op->started_at);
	if (o == NULL)
		return (NULL);
	if (op->state != OP_RUNNING) {
		json_object_set_new(o, "finished_at",
		    json_integer((json_int_t)op->finished_at));
		json_object_set_new(o, "recovered",
		    json_boolean(op->state == OP_SUCCEEDED &&
		    op->failures > 0));
	}
	if (op->reason[0] != '\0')
		json_object_set_new(o, "reason", json_string(op->reason));
	if (op->breaker != NULL)
		json_object_set_new(o, "breaker", json_string(op->breaker));
	return (o);
}
