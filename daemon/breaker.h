/*
 * Circuit breakers (BEHAVIOUR.md section 1): the state machine of one
 * breaker, its windows, permits and leases, and the host-wide registry of
 * breakers by name. No sockets and no SQLite: the owner hears about
 * changes through hooks and persists snapshots; every time and timer comes
 * from clock.h.
 */
#ifndef BREAKER_H
#define BREAKER_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "classify.h"
#include "htab.h"
#include "opts.h"
#include "params.h"

#define BREAKER_NAME_MAX	OPT_NAME_MAX
#define BREAKER_PERMIT_MAX	40		/* a permit id, NUL included */
#define BREAKER_MAX_BREAKERS	10000		/* daemon.max_breakers */
#define BREAKER_MAX_PERMITS	1000000		/* outstanding, all breakers */
#define BREAKER_TIME_WINDOW_MAX	3600		/* seconds, window = time */

/* In the order of the ermd_breaker_state gauge (BEHAVIOUR.md section 9). */
enum breaker_state {
	BRK_CLOSED,
	BRK_HALF_OPEN,
	BRK_OPEN,
	BRK_FORCED_OPEN,
	BRK_DISABLED,
	BRK_METRICS_ONLY,
	BRK_NSTATES
};

enum breaker_window {
	WINDOW_CONSECUTIVE,
	WINDOW_COUNT,
	WINDOW_TIME,
};

enum breaker_outcome {
	OUTCOME_SUCCESS,
	OUTCOME_FAILURE,
	OUTCOME_IGNORED,
};

/* "closed", "half_open", ...; NULL when out of range. */
const char	*breaker_state_name(enum breaker_state s);
/* The state, or -1. */
int		 breaker_state_from_name(const char *s);
/* "success" / "failure" / "ignored" to the outcome, or -1. */
int		 breaker_outcome_from_name(const char *s);
/* 1 when name is 1-128 bytes of [A-Za-z0-9._:/-]. */
int		 breaker_name_valid(const char *name);

/* Every key of `[breaker]` / `[breaker.NAME]`, defaults in section 1. */
struct breaker_config {
	double		 failure_rate_threshold;
	int64_t		 window_size;		/* calls, or seconds (time) */
	int64_t		 minimum_calls;
	double		 slow_call_rate_threshold;
	int64_t		 recovery_timeout_ms;
	double		 recovery_backoff;
	int64_t		 max_recovery_timeout_ms;
	int64_t		 half_open_max_calls;
	int64_t		 half_open_max_wait_ms;	/* 0: off */
	int64_t		 idle_evict_ms;		/* 0: never */
	/*
	 * Last, next to struct breaker's busy fields: what every acquire and
	 * record of a closed breaker reads.
	 */
	int64_t		 failure_threshold;
	int64_t		 slow_call_ms;		/* 0: off */
	int64_t		 permit_ttl_ms;
	int		 window;		/* enum breaker_window */
	catset		 ignore;
};

void		 breaker_config_defaults(struct breaker_config *cfg);
/*
 * One config-file line of `[breaker]` or `[breaker.NAME]`. *mask (may be
 * NULL) gets the key's bit, so a `[breaker.NAME]` section overrides only
 * what it sets. Returns 0, or -1 with a message in err.
 */
int		 breaker_config_set(struct breaker_config *cfg, uint64_t *mask,
		    const char *key, const char *value, char *err,
		    size_t errsz);
/* Checks across keys (a time window of at most 3600 s). 0 or -1 with err. */
int		 breaker_config_check(const struct breaker_config *cfg,
		    char *err, size_t errsz);
/* New reference: every key, as `config` in breaker.get. */
json_t		*breaker_config_to_json(const struct breaker_config *cfg);

/* One `[breaker.NAME]` section as the config parser collected it. */
struct breaker_section {
	const char		*name;		/* borrowed */
	struct breaker_config	 cfg;
	uint64_t		 mask;		/* the keys the section set */
};

struct breaker;
struct breakers;

/*
 * Set by the owner of the registry. on_transition: every real state change
 * (never a self-transition), after it took effect; reason is a short word
 * ("failure_threshold", "failure_rate", "slow_call_rate",
 * "recovery_timeout", "half_open_success", "half_open_failure",
 * "half_open_timeout", "permit_expired", "owner_closed", "forced",
 * "reset"). on_change: something durable changed (state, opened_at,
 * open_count, generation, configure overrides, window counters); called
 * once at the end of the operation that changed it, so the owner can write
 * breaker_snapshot() before replying. on_evict: the breaker is about to be
 * freed by idle eviction. Hooks must not call back into the registry except
 * the read-only accessors and breaker_to_json / breaker_snapshot.
 */
struct breaker_hooks {
	void	(*on_transition)(void *arg, const struct breaker *b,
		    enum breaker_state from, enum breaker_state to,
		    const char *reason);
	void	(*on_change)(void *arg, const struct breaker *b);
	void	(*on_evict)(void *arg, const struct breaker *b);
	/*
	 * on_outcome: an outcome went into the window of a closed or
	 * metrics_only breaker. The owner may log it and replay it with
	 * breaker_replay_outcome() after a restart instead of writing a
	 * snapshot. When something else durable changed too (a new
	 * breaker, a last_error, a state), on_change follows for the
	 * snapshot, which the owner takes after this call. NULL: on_change
	 * is called instead.
	 */
	void	(*on_outcome)(void *arg, const struct breaker *b, int failure,
		    int slow, uint64_t at);
	void	 *arg;
};

/*
 * A registry with the built-in defaults, BREAKER_MAX_BREAKERS and
 * BREAKER_MAX_PERMITS. clock_init() must have been called. hooks may be
 * NULL; it is copied.
 */
struct breakers	*breakers_new(const struct breaker_hooks *hooks);
/* Frees every breaker and permit; calls no hook. */
void		 breakers_free(struct breakers *reg);
/*
 * Replace the hooks (NULL: none). At start-up: breakers_new(NULL),
 * breakers_apply_config(), breaker_restore() of every stored snapshot, then
 * the hooks, then write a snapshot of every breaker (breakers_foreach):
 * that way creating the configured breakers cannot overwrite stored state
 * before it is read, and what restoring changed (a breaker whose open
 * timeout ran out while the daemon was down is half-open now) is stored.
 */
void		 breakers_set_hooks(struct breakers *reg,
		    const struct breaker_hooks *hooks);
/*
 * Put an outcome logged through on_outcome back into the window of the
 * named breaker, at its time, judging nothing (a state change it caused
 * was stored when it happened). At start-up, after breaker_restore() and
 * before the hooks. With create, a breaker not there is made (closed,
 * its config from the file) as the outcome made it, its last call at the
 * outcome's time. -1 when there is no such breaker (and create is 0 or
 * max_breakers is reached), it is not closed or metrics_only, or the
 * outcome has left a time window.
 */
int		 breaker_replay_outcome(struct breakers *reg, const char *name,
		    int failure, int slow, uint64_t at, int create);
/*
 * The named breaker was evicted at this point of the log replayed (the
 * owner logged on_evict): what restoring and replaying gave it so far
 * goes, as the eviction did before the restart; outcomes replayed later
 * make it again (create). Nothing when there is no such breaker.
 */
void		 breaker_replay_evicted(struct breakers *reg,
		    const char *name);
void		 breakers_set_limits(struct breakers *reg, size_t max_breakers,
		    size_t max_permits);
/*
 * Install the `[breaker]` defaults and the `[breaker.NAME]` sections of a
 * (re)loaded config: every breaker's effective config becomes defaults,
 * then its section, then its breaker.configure overrides. Breakers named
 * by a section are created (they are "configured": never evicted). Checks
 * everything first: on -1 (message in err) nothing changed.
 */
int		 breakers_apply_config(struct breakers *reg,
		    const struct breaker_config *defaults,
		    const struct breaker_section *secs, size_t nsecs, char *err,
		    size_t errsz);

/*
 * The functions below return 0 or a protocol error code (erm_proto.h):
 * ERM_INVALID_PARAMS (bad name, state or config), ERM_NOT_FOUND,
 * ERM_CONFLICT (illegal forced transition), ERM_BREAKER_OPEN (not
 * permitted), ERM_LIMIT_EXCEEDED (max_breakers for a new name, or
 * max_permits), ERM_INTERNAL_ERROR (out of memory). Breakers are created on
 * first use by acquire, record, force and configure.
 */

/*
 * breaker.acquire. owner identifies the connection (0: none) so that
 * breaker_release_owner() can end its leases. On 0, out->permit is the
 * lease; on ERM_BREAKER_OPEN, out->retry_after_ms says when to come back
 * (open: time left before half-open; forced_open: the breaker's
 * recovery_timeout_ms, as a polling interval, since it never leaves by
 * itself; half_open with every trial permit out: until the oldest trial
 * lease expires or half_open_max_wait_ms runs out, whichever is first).
 * out->state is the state after the call; on ERM_LIMIT_EXCEEDED out->limit
 * is "max_breakers" or "max_permits" (for error data {limit, value}). The
 * caller counts the request in the retry budget (retry_budget_note_request)
 * itself.
 */
struct breaker_permit_info {
	int			 allowed;
	char			 permit[BREAKER_PERMIT_MAX];
	enum breaker_state	 state;
	int64_t			 retry_after_ms;
	const char		*limit;		/* ERM_LIMIT_EXCEEDED: which */
};

int		 breaker_acquire(struct breakers *reg, const char *name,
		    uint64_t owner, struct breaker_permit_info *out);
/*
 * The same, for a call due at `from` (daemon clock, ms; earlier means now):
 * the lease, and its permit_ttl_ms, run from then. op.fail gives the permit
 * of a retry with the delay to wait first; the permit must outlive it.
 */
int		 breaker_acquire_from(struct breakers *reg, const char *name,
		    uint64_t owner, uint64_t from,
		    struct breaker_permit_info *out);

/*
 * breaker.record. permit NULL records a free-standing observation. category
 * is the error's category as classified by the caller (CAT_NONE when there
 * is no error); a failure in one of the breaker's `ignore` categories is an
 * ignored outcome. error (borrowed, may be NULL) is kept as last_error when
 * a failure is recorded. recorded is 0 when the permit is not an
 * outstanding lease of this breaker (issued in an earlier generation,
 * expired, released or already recorded), when the breaker is disabled,
 * and for a free-standing outcome while open, forced_open, or half_open
 * with every trial slot taken.
 */
struct breaker_call {
	enum breaker_outcome	 outcome;
	int64_t			 duration_ms;	/* -1: unknown, never slow */
	enum category		 category;
	const json_t		*error;
};

struct breaker_record_result {
	enum breaker_state	 state;
	int			 recorded;
};

int		 breaker_record(struct breakers *reg, const char *name,
		    const char *permit, const struct breaker_call *call,
		    struct breaker_record_result *res);

/*
 * breaker.force: to forced_open, disabled, metrics_only, closed or
 * half_open. closed -> half_open and metrics_only -> half_open are
 * ERM_CONFLICT; forcing the current state changes nothing and emits no
 * event. *out (may be NULL) is the breaker, for breaker_to_json.
 */
int		 breaker_force(struct breakers *reg, const char *name,
		    enum breaker_state to, struct breaker **out);
/*
 * breaker.reset: closed, window emptied, open_count 0; ERM_NOT_FOUND when
 * there is no such breaker.
 */
int		 breaker_reset(struct breakers *reg, const char *name,
		    struct breaker **out);
/*
 * breaker.configure: config's members override the breaker's config (they
 * add to earlier breaker.configure calls; a member set to null drops that
 * override). Failures name "config.member" in e.
 */
int		 breaker_configure(struct breakers *reg, const char *name,
		    const json_t *config, struct param_err *e,
		    struct breaker **out);
/* A connection closed: end every lease it holds (BEHAVIOUR.md section 1). */
void		 breaker_release_owner(struct breakers *reg, uint64_t owner);

/*
 * The breaker, brought up to date (a due half-open or re-open happens
 * now), or NULL when there is none by that name.
 */
struct breaker	*breaker_find(struct breakers *reg, const char *name);

/*
 * Whether outcomes went to on_outcome since the owner last cleared the
 * mark, which it does as it takes the breaker's snapshot: then the
 * owner's journal holds what its stored snapshot lacks.
 */
int		 breaker_journaled(const struct breaker *b);
void		 breaker_set_journaled(struct breaker *b, int journaled);

/* New reference: the result of breaker.get. */
json_t		*breaker_to_json(const struct breaker *b);
/* New reference: {breakers: [...]} sorted by name; state -1 for all. */
json_t		*breakers_list_json(struct breakers *reg, int state);
/* Number of breakers; by_state (may be NULL) gets the count per state. */
size_t		 breakers_count(const struct breakers *reg,
		    size_t by_state[BRK_NSTATES]);
size_t		 breakers_permits(const struct breakers *reg);
/* The table of breakers by name, for htab_prefetch() only. */
const struct htab *breakers_by_name(const struct breakers *reg);
/* Calls fn for every breaker, in no particular order. */
void		 breakers_foreach(struct breakers *reg,
		    void (*fn)(void *arg, const struct breaker *b), void *arg);
/*
 * Evict unconfigured closed breakers without leases idle for their
 * idle_evict_ms. A timer runs this every idle_evict_ms of the defaults,
 * clamped to 1..60 s; call it directly to evict now.
 */
void		 breakers_sweep(struct breakers *reg);

/* Read-only accessors, for hooks and metrics. */
const char	*breaker_name(const struct breaker *b);
enum breaker_state breaker_state(const struct breaker *b);
uint64_t	 breaker_not_permitted(const struct breaker *b);
uint64_t	 breaker_transitions(const struct breaker *b,
		    enum breaker_state to);
size_t		 breaker_permits(const struct breaker *b);
const struct breaker_config *breaker_config(const struct breaker *b);

/*
 * Durability (BEHAVIOUR.md section 1): a snapshot holds state, generation,
 * open_count, opened_at, the half-open trial, the window counters, the
 * breaker.configure overrides and last_error (new reference). Restoring
 * creates or overwrites the breaker: a breaker that was open stays open
 * until opened_at + its recovery timeout; half-open leases that were out
 * when the daemon stopped count as failures (their connections are gone).
 * A window whose type or size no longer matches the config starts empty.
 * Returns 0, or -1 with a message in err.
 */
json_t		*breaker_snapshot(const struct breaker *b);
int		 breaker_restore(struct breakers *reg, const json_t *snap,
		    char *err, size_t errsz);

#endif
