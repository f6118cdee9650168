/*
 * Retry policies, the retry decision (BEHAVIOUR.md section 2) and the host-wide
 * retry budget that stops a retry storm across every process on the host.
 * No I/O: time comes from clock_now_ms(), randomness from a retry_rng the
 * caller owns.
 */
#ifndef RETRY_H
#define RETRY_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "classify.h"
#include "htab.h"
#include "params.h"

enum retry_backoff {
	BACKOFF_CONSTANT,
	BACKOFF_LINEAR,
	BACKOFF_EXPONENTIAL,
};

enum retry_jitter {
	JITTER_NONE,
	JITTER_FULL,
	JITTER_EQUAL,
	JITTER_DECORRELATED,
};

/* One policy: every key of `[retry]` / `[retry.NAME]`, defaults: section 2. */
struct retry_policy {
	int64_t		 max_attempts;		/* total, first included */
	int64_t		 base_delay_ms;
	int64_t		 max_delay_ms;
	int		 backoff;		/* enum retry_backoff */
	double		 factor;
	int		 jitter;		/* enum retry_jitter */
	catset		 retry_on;
	int64_t		 max_elapsed_ms;	/* 0: off */
	int		 respect_retry_after;
	int64_t		 max_retry_after_ms;
	double		 budget_percent;
	double		 budget_min_per_s;
	int64_t		 budget_window_ms;
};

void		 retry_policy_defaults(struct retry_policy *p);
/*
 * Set one key from a config-file value ("max_attempts", "5"). Returns 0, or
 * -1 with a message in err ("factor must be between 1 and 1000").
 */
int		 retry_policy_set(struct retry_policy *p, const char *key,
		    const char *value, char *err, size_t errsz);
/*
 * A policy object given in a request (retry.next `policy`, op.begin
 * `policy`, a workflow step's `retry`): *out = *base with the members of obj
 * applied, strictly (unknown member or bad value: -1, e naming
 * "prefix.member"). base and out may be the same.
 */
int		 retry_policy_from_json(const struct retry_policy *base,
		    const json_t *obj, const char *prefix,
		    struct retry_policy *out, struct param_err *e);
/* New reference: every key, as retry.policy returns it. */
json_t		*retry_policy_to_json(const struct retry_policy *p);

/*
 * The defaults of `[retry]` and every `[retry.NAME]`. A named policy is the
 * defaults with the keys its section set laid over them, whatever the order
 * of the sections in the file.
 */
#define RETRY_MAX_POLICIES	1024
struct retry_policies;

struct retry_policies *retry_policies_new(void);
void		 retry_policies_free(struct retry_policies *rp);
/* name NULL: the `[retry]` defaults. Returns 0 or -1 with err. */
int		 retry_policies_set(struct retry_policies *rp, const char *name,
		    const char *key, const char *value, char *err,
		    size_t errsz);
/*
 * The effective policy (borrowed): name NULL for the defaults. NULL for an
 * unknown name.
 */
const struct retry_policy *retry_policies_get(const struct retry_policies *rp,
		    const char *name);
size_t		 retry_policies_count(const struct retry_policies *rp);
/* The name of the i-th named policy, in the order they were first set. */
const char	*retry_policies_name(const struct retry_policies *rp, size_t i);

/* ---- randomness -------------------------------------------------------- */

/* SplitMix64: tiny, seedable, plenty for jitter. Not for secrets. */
struct retry_rng {
	uint64_t	 s;
};

void		 retry_rng_seed(struct retry_rng *r, uint64_t seed);
/* Seed from getrandom(2), falling back to the clock. */
void		 retry_rng_seed_random(struct retry_rng *r);
uint64_t	 retry_rng_next(struct retry_rng *r);
/* Uniform over [lo, hi] inclusive, without modulo bias; lo <= hi. */
int64_t		 retry_rng_uniform(struct retry_rng *r, int64_t lo, int64_t hi);

/* ---- budget ------------------------------------------------------------ */

enum retry_reason {
	RETRY_RETRYABLE,
	RETRY_EXHAUSTED,
	RETRY_NON_RETRYABLE,
	RETRY_BUDGET_EXHAUSTED,
	RETRY_DEADLINE,
	RETRY_NREASONS
};

/* "retryable", "exhausted", ... as on the wire. */
const char	*retry_reason_name(enum retry_reason r);

/* Decisions taken through a budget, for metrics. */
struct retry_counters {
	uint64_t	 granted;
	uint64_t	 denied[RETRY_NREASONS];	/* by reason */
};

#define RETRY_KEY_MAX		256
#define RETRY_BUDGET_SLOTS	10
#define RETRY_BUDGET_MAX_KEYS	100000

/*
 * Per-key sliding windows of requests and granted retries. Each key keeps
 * RETRY_BUDGET_SLOTS slots of budget_window_ms / 10 each; see retry.c for
 * the exact sliding rule. max_keys 0 means RETRY_BUDGET_MAX_KEYS.
 */
struct retry_budget;

struct retry_budget *retry_budget_new(size_t max_keys);
void		 retry_budget_free(struct retry_budget *b);
/*
 * Count one request under key with p's window: op.begin, breaker.acquire of
 * the breaker named key, and retry.next with attempt = 1 (call it before
 * retry_decide). Returns -1 when key is empty or longer than RETRY_KEY_MAX,
 * or on allocation failure.
 */
int		 retry_budget_note_request(struct retry_budget *b,
		    const char *key, const struct retry_policy *p);
/* What key's window holds now; 0/0 for an unknown key. */
void		 retry_budget_window(struct retry_budget *b, const char *key,
		    uint64_t *requests, uint64_t *retries);
size_t		 retry_budget_nkeys(const struct retry_budget *b);
/*
 * Forget the keys idle for a whole window of their own, looking at about
 * visits keys from where the last call stopped (at most the whole table
 * once); returns how many went. Call it now and then: a key nobody uses
 * stays until a call reaches it, its window reading zero meanwhile.
 */
size_t		 retry_budget_expire(struct retry_budget *b, size_t visits);
/*
 * The policies changed (a reload): a key keeps counting in the window of
 * the policy that made it until then, and takes the window of the next
 * policy that uses it after.
 */
void		 retry_budget_reconfigured(struct retry_budget *b);
/* The table of keys, for htab_prefetch() only. */
const struct htab *retry_budget_keys(const struct retry_budget *b);
const struct retry_counters *
		 retry_budget_counters(const struct retry_budget *b);

/* ---- the decision ------------------------------------------------------ */

struct retry_decision {
	int			 retry;
	int64_t			 delay_ms;	/* 0 when not retrying */
	enum retry_reason	 reason;
};

/*
 * The base delay after attempt n failed, capped at max_delay_ms, before
 * jitter (rounded down to whole ms).
 */
int64_t		 retry_backoff_ms(const struct retry_policy *p,
		    int64_t attempt);

/*
 * Decide whether to retry after `attempt` attempts (the failed one
 * included). Checks, in order: exhausted (attempt >= max_attempts),
 * non_retryable (cat not in retry_on; CAT_NONE, "no error given", counts as
 * retryable), then the delay (backoff, cap, jitter, Retry-After floor),
 * deadline (max_elapsed_ms > 0, elapsed_ms known (>= 0) and elapsed_ms +
 * delay > max_elapsed_ms), and last the budget of key (b or key NULL: no
 * budget check) - so only a retry that would otherwise be granted consumes
 * budget. prev_delay_ms and retry_after_ms are -1 when not known. rng is
 * used only by the jitters that draw. b's counters are updated. Returns 0,
 * or -1 when the budget cannot track key (see note_request): *out is then a
 * refusal with reason budget_exhausted.
 */
int		 retry_decide(const struct retry_policy *p,
		    struct retry_budget *b, const char *key, int64_t attempt,
		    enum category cat, int64_t elapsed_ms,
		    int64_t prev_delay_ms, int64_t retry_after_ms,
		    struct retry_rng *rng, struct retry_decision *out);
/*
 * retry_decide in two steps, for a caller that must get something else
 * between the policy's yes and the budget: op.fail takes the breaker's
 * permit first, so that a retry the breaker refuses spends no budget.
 * retry_check decides on everything but the budget and counts nothing;
 * a refusal from it is counted with retry_count. retry_grant takes the
 * budget for a retry retry_check allowed (*d may turn into a refusal,
 * budget_exhausted) and counts the decision; its return is retry_decide's.
 */
void		 retry_check(const struct retry_policy *p, int64_t attempt,
		    enum category cat, int64_t elapsed_ms,
		    int64_t prev_delay_ms, int64_t retry_after_ms,
		    struct retry_rng *rng, struct retry_decision *d);
void		 retry_count(struct retry_budget *b,
		    const struct retry_decision *d);
int		 retry_grant(const struct retry_policy *p,
		    struct retry_budget *b, const char *key,
		    struct retry_decision *d);
/* New reference: {retry, delay_ms, reason}, the result of retry.next. */
json_t		*retry_decision_to_json(const struct retry_decision *d);

#endif
