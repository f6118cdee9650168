/*
 * Unit tests of daemon/breaker.c on the manual clock: the state machine
 * scenarios of Resilience4j's CircuitBreakerStateMachineTest, gobreaker's
 * gobreaker_test.go, pybreaker's and Polly's breaker tests, as they apply
 * to BEHAVIOUR.md section 1 - windows, half-open permits, ignored outcomes,
 * generations, leases, forced states, recovery backoff, eviction, limits,
 * snapshots - with exact values.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>
#include <jansson.h>

#include "breaker.h"
#include "clock.h"
#include "erm_proto.h"

#define LEN(a)	(sizeof(a) / sizeof((a)[0]))

/* ---- what the hooks saw ------------------------------------------------- */

struct event {
	char			 name[64];
	enum breaker_state	 from, to;
	char			 reason[32];
	uint64_t		 at;
};

static struct {
	struct event	 t[512];
	int		 n;
	int		 changes;
	int		 evicted;
	char		 evicted_name[64];
} ev;

static uint64_t	t0;		/* the test's start, on a 10 s boundary */

static void
on_transition(void *arg, const struct breaker *b, enum breaker_state from,
    enum breaker_state to, const char *reason)
{
	struct event	*e;

	(void)arg;
	ck_assert_int_ne(from, to);
	ck_assert_int_eq(breaker_state(b), to);
	ck_assert_int_lt(ev.n, (int)LEN(ev.t));
	e = &ev.t[ev.n++];
	snprintf(e->name, sizeof(e->name), "%s", breaker_name(b));
	e->from = from;
	e->to = to;
	snprintf(e->reason, sizeof(e->reason), "%s", reason);
	e->at = clock_now_ms();
}

static void
on_change(void *arg, const struct breaker *b)
{
	(void)arg;
	(void)b;
	ev.changes++;
}

static void
on_evict(void *arg, const struct breaker *b)
{
	(void)arg;
	ev.evicted++;
	snprintf(ev.evicted_name, sizeof(ev.evicted_name), "%s",
	    breaker_name(b));
}

static const struct breaker_hooks hooks = {
	on_transition, on_change, on_evict, NULL, NULL
};

/* What on_outcome saw, for the journal's owner (decide.c). */
static struct {
	struct {
		char		 name[64];
		int		 failure, slow;
		uint64_t	 at;
	}	 t[64];
	int	 n;
} outs;

static void
on_outcome(void *arg, const struct breaker *b, int failure, int slow,
    uint64_t at)
{
	(void)arg;
	ck_assert_int_lt(outs.n, (int)LEN(outs.t));
	snprintf(outs.t[outs.n].name, sizeof(outs.t[0].name), "%s",
	    breaker_name(b));
	outs.t[outs.n].failure = failure;
	outs.t[outs.n].slow = slow;
	outs.t[outs.n].at = at;
	outs.n++;
}

static const struct breaker_hooks journal_hooks = {
	on_transition, on_change, on_evict, on_outcome, NULL
};

static void
setup(void)
{
	clock_init(NULL, 1);
	clock_advance(10000 - clock_now_ms() % 10000);
	t0 = clock_now_ms();
	memset(&ev, 0, sizeof(ev));
}

static void
teardown(void)
{
	clock_shutdown();
}

/* ---- helpers ------------------------------------------------------------ */

static struct breakers *
mkreg(const struct breaker_config *cfg)
{
	struct breakers	*reg = breakers_new(&hooks);
	char		 err[160];

	ck_assert_ptr_nonnull(reg);
	if (cfg != NULL)
		ck_assert_msg(breakers_apply_config(reg, cfg, NULL, 0, err,
		    sizeof(err)) == 0, "%s", err);
	return (reg);
}

static struct breaker_permit_info	last;

static int
acq_as(struct breakers *reg, const char *name, uint64_t owner, char *permit)
{
	int	rc;

	rc = breaker_acquire(reg, name, owner, &last);
	if (permit != NULL)
		memcpy(permit, last.permit, BREAKER_PERMIT_MAX);
	ck_assert_int_eq(last.allowed, rc == 0);
	return (rc);
}

static int
acq(struct breakers *reg, const char *name, char *permit)
{
	return (acq_as(reg, name, 0, permit));
}

/* Record; returns `recorded`. */
static int
rec_full(struct breakers *reg, const char *name, const char *permit,
    enum breaker_outcome o, int64_t duration, enum category cat,
    const json_t *error)
{
	struct breaker_call		c = { o, duration, cat, error };
	struct breaker_record_result	r;

	ck_assert_int_eq(breaker_record(reg, name, permit, &c, &r), 0);
	return (r.recorded);
}

static int
rec(struct breakers *reg, const char *name, const char *permit,
    enum breaker_outcome o)
{
	return (rec_full(reg, name, permit, o, -1, CAT_NONE, NULL));
}

/* One permitted call with its outcome. */
static void
call_d(struct breakers *reg, const char *name, enum breaker_outcome o,
    int64_t duration)
{
	char	p[BREAKER_PERMIT_MAX];

	ck_assert_int_eq(acq(reg, name, p), 0);
	ck_assert(rec_full(reg, name, p, o, duration, CAT_NONE, NULL));
}

static void
call(struct breakers *reg, const char *name, enum breaker_outcome o)
{
	call_d(reg, name, o, -1);
}

static enum breaker_state
st(struct breakers *reg, const char *name)
{
	struct breaker	*b = breaker_find(reg, name);

	ck_assert_ptr_nonnull(b);
	return (breaker_state(b));
}

static json_t *
get(struct breakers *reg, const char *name)
{
	struct breaker	*b = breaker_find(reg, name);

	ck_assert_ptr_nonnull(b);
	return (breaker_to_json(b));
}

/* A top-level integer of breaker.get, or -999 when absent. */
static int64_t
gint(struct breakers *reg, const char *name, const char *key)
{
	json_t	*j = get(reg, name), *v;
	int64_t	 n = -999;

	if ((v = json_object_get(j, key)) != NULL) {
		ck_assert(json_is_integer(v));
		n = json_integer_value(v);
	}
	json_decref(j);
	return (n);
}

/* A number of breaker.get's window. */
static double
wnum(struct breakers *reg, const char *name, const char *key)
{
	json_t	*j = get(reg, name), *v;
	double	 d;

	v = json_object_get(json_object_get(j, "window"), key);
	ck_assert_msg(json_is_number(v), "window.%s", key);
	d = json_number_value(v);
	json_decref(j);
	return (d);
}

static void
expect_event(int i, const char *name, enum breaker_state from,
    enum breaker_state to, const char *reason)
{
	ck_assert_int_lt(i, ev.n);
	ck_assert_str_eq(ev.t[i].name, name);
	ck_assert_str_eq(breaker_state_name(ev.t[i].from),
	    breaker_state_name(from));
	ck_assert_str_eq(breaker_state_name(ev.t[i].to),
	    breaker_state_name(to));
	ck_assert_str_eq(ev.t[i].reason, reason);
}

static void
cset(struct breaker_config *c, const char *key, const char *value)
{
	char	err[160];

	ck_assert_msg(breaker_config_set(c, NULL, key, value, err,
	    sizeof(err)) == 0, "%s = %s: %s", key, value, err);
}

/* forced_open, then half_open: a fresh trial without waiting. */
static void
to_half_open(struct breakers *reg, const char *name)
{
	ck_assert_int_eq(breaker_force(reg, name, BRK_FORCED_OPEN, NULL), 0);
	ck_assert_int_eq(breaker_force(reg, name, BRK_HALF_OPEN, NULL), 0);
	ck_assert_int_eq(st(reg, name), BRK_HALF_OPEN);
}

/* ---- names and config --------------------------------------------------- */

START_TEST(test_names)
{
	struct breakers	*reg = mkreg(NULL);
	char		 name[BREAKER_NAME_MAX + 2];

	ck_assert(breaker_name_valid("db"));
	ck_assert(breaker_name_valid("svc.payments:v2/eu-west_1"));
	ck_assert(!breaker_name_valid(""));
	ck_assert(!breaker_name_valid("a b"));
	ck_assert(!breaker_name_valid("caf\xc3\xa9"));
	ck_assert(!breaker_name_valid("x;y"));
	memset(name, 'n', sizeof(name));
	name[BREAKER_NAME_MAX] = '\0';
	ck_assert(breaker_name_valid(name));
	ck_assert_int_eq(acq(reg, name, NULL), 0);
	name[BREAKER_NAME_MAX] = 'n';
	name[BREAKER_NAME_MAX + 1] = '\0';
	ck_assert(!breaker_name_valid(name));
	ck_assert_int_eq(acq(reg, name, NULL), ERM_INVALID_PARAMS);
	ck_assert_int_eq(acq(reg, "bad name", NULL), ERM_INVALID_PARAMS);
	ck_assert_ptr_null(breaker_find(reg, "bad name"));
	ck_assert_ptr_null(breaker_find(reg, "absent"));
	ck_assert_int_eq(breaker_state_from_name("half_open"), BRK_HALF_OPEN);
	ck_assert_int_eq(breaker_state_from_name("half-open"), -1);
	ck_assert_str_eq(breaker_state_name(BRK_METRICS_ONLY), "metrics_only");
	ck_assert_int_eq(breaker_outcome_from_name("ignored"),
	    OUTCOME_IGNORED);
	ck_assert_int_eq(breaker_outcome_from_name("ok"), -1);
	breakers_free(reg);
}
END_TEST

START_TEST(test_config_defaults)
{
	struct breaker_config	 c;
	json_t			*j, *want;

	breaker_config_defaults(&c);
	j = breaker_config_to_json(&c);
	want = json_pack("{s:s, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i, "
	    "s:i, s:i, s:i, s:i, s:[]}",
	    "window", "consecutive", "failure_threshold", 5,
	    "window_size", 100, "failure_rate_threshold", 50,
	    "minimum_calls", 10, "slow_call_ms", 0,
	    "slow_call_rate_threshold", 100, "recovery_timeout_ms", 60000,
	    "recovery_backoff", 1, "max_recovery_timeout_ms", 600000,
	    "half_open_max_calls", 1, "half_open_max_wait_ms", 0,
	    "permit_ttl_ms", 30000, "idle_evict_ms", 3600000, "ignore");
	ck_assert_msg(json_equal(j, want), "%s", json_dumps(j, JSON_SORT_KEYS));
	json_decref(j);
	json_decref(want);
}
END_TEST

START_TEST(test_config_set)
{
	struct breaker_config	c;
	uint64_t		mask = 0;
	char			err[160];

	breaker_config_defaults(&c);
	ck_assert_int_eq(breaker_config_set(&c, &mask, "window", "count", err,
	    sizeof(err)), 0);
	ck_assert_int_eq(breaker_config_set(&c, &mask, "ignore",
	    "FILE_NOT_FOUND,QUOTA_EXCEEDED", err, sizeof(err)), 0);
	ck_assert_int_eq(c.window, WINDOW_COUNT);
	ck_assert_uint_eq(c.ignore, CATSET_BIT(CAT_FILE_NOT_FOUND) |
	    CATSET_BIT(CAT_QUOTA_EXCEEDED));
	ck_assert_uint_eq(mask, OPT_BIT(0) | OPT_BIT(14));
	cset(&c, "recovery_backoff", "1.5");
	ck_assert_double_eq(c.recovery_backoff, 1.5);
	cset(&c, "failure_rate_threshold", "33.3");
	ck_assert_double_eq(c.failure_rate_threshold, 33.3);

	ck_assert_int_eq(breaker_config_set(&c, &mask, "treshold", "5", err,
	    sizeof(err)), -1);
	ck_assert_str_eq(err, "unknown breaker key 'treshold'");
	ck_assert_int_eq(breaker_config_set(&c, &mask, "window", "sliding",
	    err, sizeof(err)), -1);
	ck_assert_str_eq(err, "window: unknown value 'sliding' (one of: "
	    "consecutive, count, time)");
	ck_assert_int_eq(breaker_config_set(&c, &mask, "failure_threshold",
	    "0", err, sizeof(err)), -1);
	ck_assert_int_eq(breaker_config_set(&c, &mask, "window_size",
	    "10001", err, sizeof(err)), -1);
	ck_assert_int_eq(breaker_config_set(&c, &mask,
	    "failure_rate_threshold", "101", err, sizeof(err)), -1);
	ck_assert_int_eq(breaker_config_set(&c, &mask, "recovery_backoff",
	    "0.5", err, sizeof(err)), -1);
	ck_assert_int_eq(breaker_config_set(&c, &mask, "half_open_max_calls",
	    "0", err, sizeof(err)), -1);
	ck_assert_int_eq(breaker_config_set(&c, &mask, "permit_ttl_ms", "0",
	    err, sizeof(err)), -1);
	ck_assert_int_eq(breaker_config_set(&c, &mask, "ignore", "NOPE", err,
	    sizeof(err)), -1);
	ck_assert_uint_eq(mask, OPT_BIT(0) | OPT_BIT(14));

	cset(&c, "window", "time");
	cset(&c, "window_size", "3600");
	ck_assert_int_eq(breaker_config_check(&c, err, sizeof(err)), 0);
	cset(&c, "window_size", "3601");
	ck_assert_int_eq(breaker_config_check(&c, err, sizeof(err)), -1);
	cset(&c, "window", "count");
	ck_assert_int_eq(breaker_config_check(&c, err, sizeof(err)), 0);
}
END_TEST

/* Defaults < [breaker.NAME] < breaker.configure, in any order. */
START_TEST(test_config_layers)
{
	struct breakers		*reg = mkreg(NULL);
	struct breaker_config	 d, s;
	struct breaker_section	 sec;
	struct param_err	 e;
	json_t			*cfg;
	char			 err[160];
	uint64_t		 mask = 0;

	breaker_config_defaults(&d);
	cset(&d, "failure_threshold", "7");
	cset(&d, "recovery_timeout_ms", "1000");
	breaker_config_defaults(&s);
	ck_assert_int_eq(breaker_config_set(&s, &mask, "failure_threshold",
	    "2", err, sizeof(err)), 0);
	sec.name = "db";
	sec.cfg = s;
	sec.mask = mask;
	ck_assert_int_eq(breakers_apply_config(reg, &d, &sec, 1, err,
	    sizeof(err)), 0);
	/* The section's breaker exists at once. */
	ck_assert_ptr_nonnull(breaker_find(reg, "db"));
	ck_assert_int_eq(breaker_config(breaker_find(reg, "db"))->
	    failure_threshold, 2);
	ck_assert_int_eq(breaker_config(breaker_find(reg, "db"))->
	    recovery_timeout_ms, 1000);
	ck_assert_int_eq(acq(reg, "other", NULL), 0);
	ck_assert_int_eq(breaker_config(breaker_find(reg, "other"))->
	    failure_threshold, 7);

	cfg = json_pack("{s:i}", "recovery_timeout_ms", 5000);
	ck_assert_int_eq(breaker_configure(reg, "db", cfg, &e, NULL), 0);
	json_decref(cfg);
	ck_assert_int_eq(breaker_config(breaker_find(reg, "db"))->
	    recovery_timeout_ms, 5000);

	/* A reload: new defaults reach what neither layer above set. */
	cset(&d, "failure_threshold", "9");
	cset(&d, "recovery_timeout_ms", "3000");
	cset(&d, "half_open_max_calls", "4");
	ck_assert_int_eq(breakers_apply_config(reg, &d, &sec, 1, err,
	    sizeof(err)), 0);
	ck_assert_int_eq(breaker_config(breaker_find(reg, "db"))->
	    failure_threshold, 2);
	ck_assert_int_eq(breaker_config(breaker_find(reg, "db"))->
	    recovery_timeout_ms, 5000);
	ck_assert_int_eq(breaker_config(breaker_find(reg, "db"))->
	    half_open_max_calls, 4);
	ck_assert_int_eq(breaker_config(breaker_find(reg, "other"))->
	    failure_threshold, 9);
	/* Dropping the section: back to the defaults, configure stays. */
	ck_assert_int_eq(breakers_apply_config(reg, &d, NULL, 0, err,
	    sizeof(err)), 0);
	ck_assert_int_eq(breaker_config(breaker_find(reg, "db"))->
	    failure_threshold, 9);
	ck_assert_int_eq(breaker_config(breaker_find(reg, "db"))->
	    recovery_timeout_ms, 5000);

	/* Invalid configs change nothing. */
	sec.name = "bad name";
	ck_assert_int_eq(breakers_apply_config(reg, &d, &sec, 1, err,
	    sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "bad breaker name"));
	sec.name = "db";
	cset(&sec.cfg, "window", "time");
	cset(&sec.cfg, "window_size", "5000");
	sec.mask |= OPT_BIT(0) | OPT_BIT(2);
	ck_assert_int_eq(breakers_apply_config(reg, &d, &sec, 1, err,
	    sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "window_size must be at most 3600"));
	ck_assert_int_eq(breaker_config(breaker_find(reg, "db"))->
	    failure_threshold, 9);
	breakers_free(reg);
}
END_TEST

/* ---- consecutive window (gobreaker TestDefaultCircuitBreaker) ---------- */

START_TEST(test_consecutive)
{
	struct breakers	*reg = mkreg(NULL);
	char		 p[BREAKER_PERMIT_MAX];
	int		 i;

	for (i = 0; i < 4; i++)
		call(reg, "cb", OUTCOME_FAILURE);
	ck_assert_int_eq(st(reg, "cb"), BRK_CLOSED);
	ck_assert_int_eq(wnum(reg, "cb", "consecutive_failures"), 4);
	call(reg, "cb", OUTCOME_SUCCESS);	/* resets the streak */
	ck_assert_int_eq(wnum(reg, "cb", "consecutive_failures"), 0);
	for (i = 0; i < 4; i++)
		call(reg, "cb", OUTCOME_FAILURE);
	ck_assert_int_eq(st(reg, "cb"), BRK_CLOSED);
	ck_assert_int_eq(ev.n, 0);
	/* The 5th consecutive failure opens. */
	call(reg, "cb", OUTCOME_FAILURE);
	ck_assert_int_eq(st(reg, "cb"), BRK_OPEN);
	ck_assert_int_eq(ev.n, 1);
	expect_event(0, "cb", BRK_CLOSED, BRK_OPEN, "failure_threshold");
	ck_assert_int_eq(wnum(reg, "cb", "calls"), 10);
	ck_assert_int_eq(wnum(reg, "cb", "failures"), 9);
	ck_assert_int_eq(wnum(reg, "cb", "consecutive_failures"), 5);
	ck_assert_double_eq(wnum(reg, "cb", "failure_rate"), 90);
	ck_assert_int_eq(gint(reg, "cb", "opened_at"), (int64_t)t0);
	ck_assert_int_eq(gint(reg, "cb", "open_count"), 1);
	ck_assert_int_eq(gint(reg, "cb", "generation"), 1);

	/* Open refuses with the time left. */
	ck_assert_int_eq(acq(reg, "cb", NULL), ERM_BREAKER_OPEN);
	ck_assert_int_eq(last.state, BRK_OPEN);
	ck_assert_int_eq(last.retry_after_ms, 60000);
	clock_advance(59000);
	ck_assert_int_eq(acq(reg, "cb", NULL), ERM_BREAKER_OPEN);
	ck_assert_int_eq(last.retry_after_ms, 1000);
	ck_assert_int_eq(gint(reg, "cb", "retry_after_ms"), 1000);
	ck_assert_int_eq(gint(reg, "cb", "not_permitted"), 2);
	/* Free-standing observations are not recorded while open. */
	ck_assert(!rec(reg, "cb", NULL, OUTCOME_FAILURE));

	/* The timer moves it at the deadline, without traffic. */
	clock_advance(999);
	ck_assert_int_eq(ev.n, 1);
	clock_advance(1);
	ck_assert_int_eq(ev.n, 2);
	expect_event(1, "cb", BRK_OPEN, BRK_HALF_OPEN, "recovery_timeout");
	ck_assert_uint_eq(ev.t[1].at, t0 + 60000);
	ck_assert_int_eq(st(reg, "cb"), BRK_HALF_OPEN);
	ck_assert_int_eq(gint(reg, "cb", "retry_after_ms"), -999);

	/* Exactly one trial permit (half_open_max_calls = 1). */
	ck_assert_int_eq(acq(reg, "cb", p), 0);
	ck_assert_int_eq(last.state, BRK_HALF_OPEN);
	ck_assert_int_eq(acq(reg, "cb", NULL), ERM_BREAKER_OPEN);
	ck_assert_int_eq(last.state, BRK_HALF_OPEN);
	ck_assert_int_eq(last.retry_after_ms, 30000);
	ck_assert(rec(reg, "cb", p, OUTCOME_SUCCESS));
	ck_assert_int_eq(st(reg, "cb"), BRK_CLOSED);
	expect_event(2, "cb", BRK_HALF_OPEN, BRK_CLOSED, "half_open_success");
	/* Entering closed empties the window. */
	ck_assert_int_eq(wnum(reg, "cb", "calls"), 0);
	ck_assert_int_eq(wnum(reg, "cb", "failures"), 0);
	ck_assert_int_eq(wnum(reg, "cb", "failure_rate"), -1);
	ck_assert_int_eq(gint(reg, "cb", "generation"), 3);
	ck_assert_int_eq(gint(reg, "cb", "opened_at"), -999);
	ck_assert_uint_eq(breaker_transitions(breaker_find(reg, "cb"),
	    BRK_OPEN), 1);
	breakers_free(reg);
}
END_TEST

/* pybreaker test_failed_call_after_timeout: a failed trial re-opens. */
START_TEST(test_half_open_failure_reopens)
{
	struct breaker_config	 c;
	struct breakers		*reg;
	char			 p[BREAKER_PERMIT_MAX];

	breaker_config_defaults(&c);
	cset(&c, "failure_threshold", "2");
	cset(&c, "half_open_max_calls", "3");
	cset(&c, "recovery_timeout_ms", "1000");
	reg = mkreg(&c);
	call(reg, "cb", OUTCOME_FAILURE);
	call(reg, "cb", OUTCOME_FAILURE);
	ck_assert_int_eq(st(reg, "cb"), BRK_OPEN);
	clock_advance(1000);
	ck_assert_int_eq(st(reg, "cb"), BRK_HALF_OPEN);
	call(reg, "cb", OUTCOME_SUCCESS);
	ck_assert_int_eq(st(reg, "cb"), BRK_HALF_OPEN);
	ck_assert_int_eq(acq(reg, "cb", p), 0);	/* third permit, kept */
	/* One trial failure can no longer close it: open at once. */
	call(reg, "cb", OUTCOME_FAILURE);
	ck_assert_int_eq(st(reg, "cb"), BRK_OPEN);
	expect_event(2, "cb", BRK_HALF_OPEN, BRK_OPEN, "half_open_failure");
	ck_assert_int_eq(gint(reg, "cb", "open_count"), 2);
	ck_assert_int_eq(gint(reg, "cb", "opened_at"), (int64_t)t0 + 1000);
	/* The kept permit is of an older generation. */
	ck_assert(!rec(reg, "cb", p, OUTCOME_SUCCESS));
	ck_assert_int_eq(st(reg, "cb"), BRK_OPEN);
	ck_assert_uint_eq(breaker_permits(breaker_find(reg, "cb")), 0);
	/* And all three successes close it. */
	clock_advance(1000);
	call(reg, "cb", OUTCOME_SUCCESS);
	call(reg, "cb", OUTCOME_SUCCESS);
	ck_assert_int_eq(st(reg, "cb"), BRK_HALF_OPEN);
	call(reg, "cb", OUTCOME_SUCCESS);
	ck_assert_int_eq(st(reg, "cb"), BRK_CLOSED);
	breakers_free(reg);
}
END_TEST

/* The next acquire moves an expired open breaker (no timer needed). */
START_TEST(test_half_open_lazily)
{
	struct breaker_config	 c;
	struct breakers		*reg;

	breaker_config_defaults(&c);
	cset(&c, "failure_threshold", "1");
	cset(&c, "recovery_timeout_ms", "0");
	reg = mkreg(&c);
	call(reg, "cb", OUTCOME_FAILURE);
	/* Due now; the timer has not had a chance to fire. */
	ck_assert_int_eq(breaker_state(breaker_find(reg, "cb")), BRK_HALF_OPEN);
	ck_assert_int_eq(ev.n, 2);
	expect_event(1, "cb", BRK_OPEN, BRK_HALF_OPEN, "recovery_timeout");
	breakers_free(reg);

	/* The same through acquire, on a breaker that was never looked at. */
	memset(&ev, 0, sizeof(ev));
	reg = mkreg(&c);
	ck_assert_int_eq(acq(reg, "cb", NULL), 0);
	ck_assert(rec(reg, "cb", last.permit, OUTCOME_FAILURE));
	ck_assert_int_eq(acq(reg, "cb", NULL), 0);
	ck_assert_int_eq(last.state, BRK_HALF_OPEN);
	ck_assert_int_eq(ev.n, 2);
	/* The timer, when it fires, finds nothing left to do. */
	clock_advance(0);
	ck_assert_int_eq(ev.n, 2);
	breakers_free(reg);
}
END_TEST

/*
 * R4j shouldOnlyPermitFourCallsInHalfOpenState and
 * shouldIncreaseCounterOnReleasePermission.
 */
START_TEST(test_half_open_permits)
{
	struct breaker_config	 c;
	struct breakers		*reg;
	char			 p[4][BREAKER_PERMIT_MAX];
	int			 i, round;

	breaker_config_defaults(&c);
	cset(&c, "half_open_max_calls", "4");
	reg = mkreg(&c);
	for (round = 0; round < 2; round++) {
		to_half_open(reg, "cb");
		for (i = 0; i < 4; i++)
			ck_assert_int_eq(acq(reg, "cb", p[i]), 0);
		ck_assert_int_eq(acq(reg, "cb", NULL), ERM_BREAKER_OPEN);
		ck_assert_int_eq(acq(reg, "cb", NULL), ERM_BREAKER_OPEN);
		ck_assert_int_eq(gint(reg, "cb", "retry_after_ms"), 30000);
	}
	/* An ignored outcome gives its permit back. */
	ck_assert(rec(reg, "cb", p[0], OUTCOME_IGNORED));
	ck_assert_int_eq(st(reg, "cb"), BRK_HALF_OPEN);
	ck_assert_int_eq(acq(reg, "cb", p[0]), 0);
	ck_assert_int_eq(acq(reg, "cb", NULL), ERM_BREAKER_OPEN);
	ck_assert_int_eq(gint(reg, "cb", "not_permitted"), 5);
	/* A recorded one does not. */
	ck_assert(rec(reg, "cb", p[1], OUTCOME_SUCCESS));
	ck_assert_int_eq(acq(reg, "cb", NULL), ERM_BREAKER_OPEN);
	ck_assert(rec(reg, "cb", p[0], OUTCOME_SUCCESS));
	ck_assert(rec(reg, "cb", p[2], OUTCOME_SUCCESS));
	ck_assert_int_eq(st(reg, "cb"), BRK_HALF_OPEN);
	ck_assert(rec(reg, "cb", p[3], OUTCOME_SUCCESS));
	ck_assert_int_eq(st(reg, "cb"), BRK_CLOSED);
	breakers_free(reg);
}
END_TEST

/* Resilience4j shouldTransitionToHalfOpenAfterWaitInterval, with a cap. */
START_TEST(test_recovery_backoff)
{
	static const int64_t	want[] = { 1000, 2000, 4000, 5000, 5000 };
	struct breaker_config	 c;
	struct breakers		*reg;
	size_t			 i;

	breaker_config_defaults(&c);
	cset(&c, "failure_threshold", "1");
	cset(&c, "recovery_timeout_ms", "1000");
	cset(&c, "recovery_backoff", "2");
	cset(&c, "max_recovery_timeout_ms", "5000");
	reg = mkreg(&c);
	call(reg, "cb", OUTCOME_FAILURE);
	for (i = 0; i < LEN(want); i++) {
		ck_assert_int_eq(st(reg, "cb"), BRK_OPEN);
		ck_assert_int_eq(gint(reg, "cb", "open_count"), (int64_t)i + 1);
		ck_assert_int_eq(gint(reg, "cb", "retry_after_ms"), want[i]);
		clock_advance((uint64_t)want[i] - 1);
		ck_assert_int_eq(breaker_state(breaker_find(reg, "cb")),
		    BRK_OPEN);
		clock_advance(1);
		ck_assert_int_eq(breaker_state(breaker_find(reg, "cb")),
		    BRK_HALF_OPEN);
		call(reg, "cb", OUTCOME_FAILURE);
	}
	/* open_count only goes back to 0 with breaker.reset. */
	clock_advance(5000);
	call(reg, "cb", OUTCOME_SUCCESS);
	ck_assert_int_eq(st(reg, "cb"), BRK_CLOSED);
	call(reg, "cb", OUTCOME_FAILURE);
	ck_assert_int_eq(gint(reg, "cb", "open_count"), 7);
	ck_assert_int_eq(gint(reg, "cb", "retry_after_ms"), 5000);
	ck_assert_int_eq(breaker_reset(reg, "cb", NULL), 0);
	ck_assert_int_eq(gint(reg, "cb", "open_count"), 0);
	call(reg, "cb", OUTCOME_FAILURE);
	ck_assert_int_eq(gint(reg, "cb", "open_count"), 1);
	ck_assert_int_eq(gint(reg, "cb", "retry_after_ms"), 1000);
	breakers_free(reg);
}
END_TEST

/* Timers chain inside one clock_advance, each at its own deadline. */
START_TEST(test_timer_chain)
{
	static const struct {
		enum breaker_state	 to;
		uint64_t		 at;
	} want[] = {
		{ BRK_HALF_OPEN, 1000 }, { BRK_OPEN, 1500 },
		{ BRK_HALF_OPEN, 3500 }, { BRK_OPEN, 4000 },
		{ BRK_HALF_OPEN, 8000 }, { BRK_OPEN, 8500 },
	};
	struct breaker_config	 c;
	struct breakers		*reg;
	size_t			 i;

	breaker_config_defaults(&c);
	cset(&c, "failure_threshold", "1");
	cset(&c, "recovery_timeout_ms", "1000");
	cset(&c, "recovery_backoff", "2");
	cset(&c, "half_open_max_wait_ms", "500");
	reg = mkreg(&c);
	call(reg, "cb", OUTCOME_FAILURE);
	clock_advance(10000);
	ck_assert_int_eq(ev.n, 1 + (int)LEN(want));
	for (i = 0; i < LEN(want); i++) {
		ck_assert_int_eq(ev.t[i + 1].to, want[i].to);
		ck_assert_uint_eq(ev.t[i + 1].at, t0 + want[i].at);
		ck_assert_str_eq(ev.t[i + 1].reason,
		    want[i].to == BRK_OPEN ? "half_open_timeout" :
		    "recovery_timeout");
	}
	ck_assert_int_eq(gint(reg, "cb", "open_count"), 4);
	ck_assert_int_eq(gint(reg, "cb", "retry_after_ms"), 6500);
	breakers_free(reg);
}
END_TEST

/* half_open_max_wait_ms: a trial nobody runs ends in open. */
START_TEST(test_half_open_max_wait)
{
	struct breaker_config	 c;
	struct breakers		*reg;
	char			 p[BREAKER_PERMIT_MAX];

	breaker_config_defaults(&c);
	cset(&c, "half_open_max_wait_ms", "15000");
	cset(&c, "half_open_max_calls", "2");
	reg = mkreg(&c);
	to_half_open(reg, "cb");
	ck_assert_int_eq(acq(reg, "cb", p), 0);
	clock_advance(10000);
	ck_assert_int_eq(acq(reg, "cb", NULL), 0);
	/* Full: the max wait (5 s left) ends before the oldest lease (20 s). */
	ck_assert_int_eq(acq(reg, "cb", NULL), ERM_BREAKER_OPEN);
	ck_assert_int_eq(last.retry_after_ms, 5000);
	ck_assert(rec(reg, "cb", p, OUTCOME_SUCCESS));
	clock_advance(4999);
	ck_assert_int_eq(breaker_state(breaker_find(reg, "cb")), BRK_HALF_OPEN);
	clock_advance(1);
	ck_assert_int_eq(breaker_state(breaker_find(reg, "cb")), BRK_OPEN);
	expect_event(ev.n - 1, "cb", BRK_HALF_OPEN, BRK_OPEN,
	    "half_open_timeout");
	ck_assert_int_eq(gint(reg, "cb", "retry_after_ms"), 60000);
	breakers_free(reg);
}
END_TEST

/* ---- count window (R4j shouldOpenAfterFailureRateThresholdExceeded) ---- */

START_TEST(test_count_window)
{
	struct breaker_config	 c;
	struct breakers		*reg;

	breaker_config_defaults(&c);
	cset(&c, "window", "count");
	cset(&c, "window_size", "5");
	cset(&c, "minimum_calls", "10");	/* capped at window_size */
	reg = mkreg(&c);
	call(reg, "cb", OUTCOME_FAILURE);
	ck_assert_int_eq(wnum(reg, "cb", "failure_rate"), -1);
	ck_assert_int_eq(wnum(reg, "cb", "calls"), 1);
	ck_assert_int_eq(wnum(reg, "cb", "failures"), 1);
	call(reg, "cb", OUTCOME_FAILURE);
	call(reg, "cb", OUTCOME_FAILURE);
	call(reg, "cb", OUTCOME_SUCCESS);
	ck_assert_int_eq(wnum(reg, "cb", "failure_rate"), -1);
	ck_assert_int_eq(wnum(reg, "cb", "slow_call_rate"), -1);
	ck_assert_int_eq(st(reg, "cb"), BRK_CLOSED);
	call(reg, "cb", OUTCOME_SUCCESS);
	ck_assert_int_eq(st(reg, "cb"), BRK_OPEN);
	expect_event(0, "cb", BRK_CLOSED, BRK_OPEN, "failure_rate");
	ck_assert_int_eq(wnum(reg, "cb", "calls"), 5);
	ck_assert_int_eq(wnum(reg, "cb", "failures"), 3);
	ck_assert_double_eq(wnum(reg, "cb", "failure_rate"), 60);
	ck_assert_double_eq(wnum(reg, "cb", "slow_call_rate"), 0);
	ck_assert_int_eq(acq(reg, "cb", NULL), ERM_BREAKER_OPEN);
	ck_assert_int_eq(gint(reg, "cb", "not_permitted"), 1);
	breakers_free(reg);
}
END_TEST

/* The ring forgets the oldest outcome; >= threshold opens. */
START_TEST(test_count_ring)
{
	static const struct {
		enum breaker_outcome	 o;
		double			 rate;
		enum breaker_state	 state;
	} steps[] = {
		{ OUTCOME_SUCCESS, -1, BRK_CLOSED },
		{ OUTCOME_SUCCESS, -1, BRK_CLOSED },
		{ OUTCOME_SUCCESS, -1, BRK_CLOSED },
		{ OUTCOME_FAILURE, 25, BRK_CLOSED },	/* S S S F */
		{ OUTCOME_FAILURE, 50, BRK_CLOSED },	/* S S F F */
		{ OUTCOME_SUCCESS, 50, BRK_CLOSED },	/* S F F S */
		{ OUTCOME_SUCCESS, 50, BRK_CLOSED },	/* F F S S */
		{ OUTCOME_SUCCESS, 25, BRK_CLOSED },	/* F S S S */
		{ OUTCOME_FAILURE, 25, BRK_CLOSED },	/* S S S F */
		{ OUTCOME_FAILURE, 50, BRK_CLOSED },	/* S S F F */
		{ OUTCOME_FAILURE, 75, BRK_OPEN },	/* S F F F */
	};
	struct breaker_config	 c;
	struct breakers		*reg;
	size_t			 i;

	breaker_config_defaults(&c);
	cset(&c, "window", "count");
	cset(&c, "window_size", "4");
	cset(&c, "minimum_calls", "4");
	cset(&c, "failure_rate_threshold", "75");
	reg = mkreg(&c);
	for (i = 0; i < LEN(steps); i++) {
		call(reg, "cb", steps[i].o);
		ck_assert_msg(wnum(reg, "cb", "failure_rate") == steps[i].rate,
		    "step %zu: rate %g", i, wnum(reg, "cb", "failure_rate"));
		ck_assert_int_eq(st(reg, "cb"), steps[i].state);
		ck_assert_int_eq(wnum(reg, "cb", "calls"), i < 4 ? i + 1 : 4);
	}
	/* Exactly at the threshold opens too. */
	cset(&c, "failure_rate_threshold", "50");
	breakers_free(reg);
	reg = mkreg(&c);
	call(reg, "x", OUTCOME_FAILURE);
	call(reg, "x", OUTCOME_SUCCESS);
	call(reg, "x", OUTCOME_FAILURE);
	call(reg, "x", OUTCOME_SUCCESS);
	ck_assert_int_eq(st(reg, "x"), BRK_OPEN);
	breakers_free(reg);
}
END_TEST

/* R4j shouldOpenAfterSlowCallRateThresholdExceeded */
START_TEST(test_slow_calls)
{
	struct breaker_config	 c;
	struct breakers		*reg;
	int			 i;

	breaker_config_defaults(&c);
	cset(&c, "window", "count");
	cset(&c, "window_size", "5");
	cset(&c, "minimum_calls", "5");
	cset(&c, "slow_call_ms", "4000");
	cset(&c, "slow_call_rate_threshold", "50");
	reg = mkreg(&c);
	call_d(reg, "cb", OUTCOME_FAILURE, 5000);	/* slow */
	call_d(reg, "cb", OUTCOME_SUCCESS, 5000);	/* slow */
	call_d(reg, "cb", OUTCOME_FAILURE, 100);
	call_d(reg, "cb", OUTCOME_SUCCESS, 100);
	ck_assert_int_eq(st(reg, "cb"), BRK_CLOSED);
	call_d(reg, "cb", OUTCOME_SUCCESS, 5000);	/* slow */
	ck_assert_int_eq(st(reg, "cb"), BRK_OPEN);
	expect_event(0, "cb", BRK_CLOSED, BRK_OPEN, "slow_call_rate");
	ck_assert_int_eq(wnum(reg, "cb", "slow_calls"), 3);
	ck_assert_double_eq(wnum(reg, "cb", "slow_call_rate"), 60);
	ck_assert_double_eq(wnum(reg, "cb", "failure_rate"), 40);

	/* Slow means strictly greater; no duration is never slow. */
	for (i = 0; i < 5; i++)
		call_d(reg, "eq", OUTCOME_SUCCESS, 4000);
	call(reg, "eq", OUTCOME_SUCCESS);
	ck_assert_int_eq(wnum(reg, "eq", "slow_calls"), 0);
	ck_assert_int_eq(st(reg, "eq"), BRK_CLOSED);
	call_d(reg, "eq", OUTCOME_SUCCESS, 4001);
	ck_assert_int_eq(wnum(reg, "eq", "slow_calls"), 1);

	/* slow_call_ms = 0 is off: nothing is slow. */
	breakers_free(reg);
	cset(&c, "slow_call_ms", "0");
	reg = mkreg(&c);
	for (i = 0; i < 5; i++)
		call_d(reg, "off", OUTCOME_SUCCESS, 999999);
	ck_assert_int_eq(wnum(reg, "off", "slow_calls"), 0);
	ck_assert_int_eq(st(reg, "off"), BRK_CLOSED);
	breakers_free(reg);
}
END_TEST

/* ---- time window (gobreaker TestRollingWindowCircuitBreaker) ------------ */

START_TEST(test_time_window)
{
	struct breaker_config	 c;
	struct breakers		*reg;

	breaker_config_defaults(&c);
	cset(&c, "window", "time");
	cset(&c, "window_size", "5");
	cset(&c, "minimum_calls", "3");
	reg = mkreg(&c);
	call(reg, "cb", OUTCOME_FAILURE);		/* second 0 */
	call(reg, "cb", OUTCOME_FAILURE);
	ck_assert_int_eq(wnum(reg, "cb", "calls"), 2);
	ck_assert_int_eq(wnum(reg, "cb", "failure_rate"), -1);
	clock_advance(4999);				/* second 4 */
	ck_assert_int_eq(wnum(reg, "cb", "calls"), 2);
	clock_advance(1);				/* second 5 */
	ck_assert_int_eq(wnum(reg, "cb", "calls"), 0);
	ck_assert_int_eq(wnum(reg, "cb", "failures"), 0);
	call(reg, "cb", OUTCOME_SUCCESS);
	ck_assert_int_eq(wnum(reg, "cb", "calls"), 1);
	clock_advance(2000);				/* second 7 */
	call(reg, "cb", OUTCOME_FAILURE);
	ck_assert_int_eq(st(reg, "cb"), BRK_CLOSED);
	call(reg, "cb", OUTCOME_FAILURE);
	ck_assert_int_eq(st(reg, "cb"), BRK_OPEN);
	ck_assert_int_eq(wnum(reg, "cb", "calls"), 3);
	ck_assert_int_eq(wnum(reg, "cb", "failures"), 2);
	ck_assert_msg(wnum(reg, "cb", "failure_rate") > 66.66 &&
	    wnum(reg, "cb", "failure_rate") < 66.67, "rate");
	breakers_free(reg);
}
END_TEST

/* Buckets leave one second at a time; minimum_calls is not capped. */
START_TEST(test_time_buckets)
{
	struct breaker_config	 c;
	struct breakers		*reg;
	int			 i;

	breaker_config_defaults(&c);
	cset(&c, "window", "time");
	cset(&c, "window_size", "5");
	cset(&c, "minimum_calls", "10");
	reg = mkreg(&c);
	call(reg, "cb", OUTCOME_FAILURE);		/* second 0 */
	clock_advance(1000);
	call(reg, "cb", OUTCOME_FAILURE);		/* second 1 */
	clock_advance(1500);
	call(reg, "cb", OUTCOME_SUCCESS);		/* second 2 */
	call(reg, "cb", OUTCOME_SUCCESS);
	clock_advance(2500);				/* second 5 */
	ck_assert_int_eq(wnum(reg, "cb", "calls"), 3);
	ck_assert_int_eq(wnum(reg, "cb", "failures"), 1);
	clock_advance(1000);				/* second 6 */
	ck_assert_int_eq(wnum(reg, "cb", "calls"), 2);
	ck_assert_int_eq(wnum(reg, "cb", "failures"), 0);
	clock_advance(1000);				/* second 7 */
	ck_assert_int_eq(wnum(reg, "cb", "calls"), 0);
	/* Far in the future: every bucket is stale at once. */
	call(reg, "cb", OUTCOME_FAILURE);
	clock_advance(3600000);
	ck_assert_int_eq(wnum(reg, "cb", "calls"), 0);
	for (i = 0; i < 9; i++)
		call(reg, "cb", OUTCOME_FAILURE);
	ck_assert_int_eq(wnum(reg, "cb", "failure_rate"), -1);
	ck_assert_int_eq(st(reg, "cb"), BRK_CLOSED);
	call(reg, "cb", OUTCOME_FAILURE);
	ck_assert_int_eq(st(reg, "cb"), BRK_OPEN);
	breakers_free(reg);
}
END_TEST

/* ---- half-open with rate windows ---------------------------------------- */

/* R4j shouldTransitionBackToOpenStateWhenFailureRateIsAboveThreshold */
START_TEST(test_half_open_rate)
{
	struct breaker_config	 c;
	struct breakers		*reg;
	char			 p[4][BREAKER_PERMIT_MAX], msg[160];
	int			 i;

	breaker_config_defaults(&c);
	cset(&c, "window", "count");
	cset(&c, "window_size", "10");
	cset(&c, "half_open_max_calls", "4");
	reg = mkreg(&c);
	to_half_open(reg, "cb");
	for (i = 0; i < 4; i++)
		ck_assert_int_eq(acq(reg, "cb", p[i]), 0);
	ck_assert(rec(reg, "cb", p[0], OUTCOME_FAILURE));
	ck_assert_int_eq(st(reg, "cb"), BRK_HALF_OPEN);
	ck_assert_int_eq(wnum(reg, "cb", "calls"), 1);
	ck_assert_double_eq(wnum(reg, "cb", "failure_rate"), 100);
	/* 2 of 4 failed: 50 % whatever the other two say. */
	ck_assert(rec(reg, "cb", p[1], OUTCOME_FAILURE));
	ck_assert_int_eq(st(reg, "cb"), BRK_OPEN);
	expect_event(ev.n - 1, "cb", BRK_HALF_OPEN, BRK_OPEN,
	    "half_open_failure");
	/* The failed trial stays on show while open. */
	ck_assert_int_eq(wnum(reg, "cb", "calls"), 2);
	ck_assert_int_eq(wnum(reg, "cb", "failures"), 2);
	ck_assert_int_eq(wnum(reg, "cb", "consecutive_failures"), 2);
	ck_assert(!rec(reg, "cb", p[2], OUTCOME_SUCCESS));
	ck_assert(!rec(reg, "cb", p[3], OUTCOME_SUCCESS));

	/* R4j shouldTransitionBackToClosedStateWhenFailureIsBelowThreshold */
	to_half_open(reg, "cb");
	call(reg, "cb", OUTCOME_FAILURE);
	call(reg, "cb", OUTCOME_SUCCESS);
	call(reg, "cb", OUTCOME_SUCCESS);
	ck_assert_int_eq(st(reg, "cb"), BRK_HALF_OPEN);
	call(reg, "cb", OUTCOME_SUCCESS);
	ck_assert_int_eq(st(reg, "cb"), BRK_CLOSED);
	ck_assert_int_eq(wnum(reg, "cb", "calls"), 0);
	call(reg, "cb", OUTCOME_SUCCESS);
	ck_assert_int_eq(wnum(reg, "cb", "calls"), 1);

	/* R4j shouldTransitionBackToOpenStateWhenSlowCallRateIs...Threshold */
	cset(&c, "slow_call_ms", "4000");
	cset(&c, "slow_call_rate_threshold", "50");
	cset(&c, "failure_rate_threshold", "100");
	ck_assert_int_eq(breakers_apply_config(reg, &c, NULL, 0, msg,
	    sizeof(msg)), 0);
	to_half_open(reg, "cb");
	call_d(reg, "cb", OUTCOME_SUCCESS, 5000);
	ck_assert_int_eq(st(reg, "cb"), BRK_HALF_OPEN);
	call_d(reg, "cb", OUTCOME_SUCCESS, 5000);
	ck_assert_int_eq(st(reg, "cb"), BRK_OPEN);
	breakers_free(reg);
}
END_TEST

/* ---- ignored outcomes --------------------------------------------------- */

/* R4j shouldReleasePermissionWhenExceptionIgnored */
START_TEST(test_ignored_half_open)
{
	struct breaker_config	 c;
	struct breakers		*reg;
	char			 p[BREAKER_PERMIT_MAX];
	int			 i;

	breaker_config_defaults(&c);
	cset(&c, "window", "count");
	cset(&c, "window_size", "5");
	cset(&c, "half_open_max_calls", "4");
	cset(&c, "ignore", "FILE_NOT_FOUND");
	reg = mkreg(&c);
	to_half_open(reg, "cb");
	for (i = 0; i < 3; i++) {
		call(reg, "cb", OUTCOME_SUCCESS);
		ck_assert_int_eq(st(reg, "cb"), BRK_HALF_OPEN);
		ck_assert_int_eq(wnum(reg, "cb", "calls"), i + 1);
	}
	/* An error of an ignored category: the permit comes back. */
	ck_assert_int_eq(acq(reg, "cb", p), 0);
	ck_assert(rec_full(reg, "cb", p, OUTCOME_FAILURE, -1,
	    CAT_FILE_NOT_FOUND, NULL));
	ck_assert_int_eq(st(reg, "cb"), BRK_HALF_OPEN);
	ck_assert_int_eq(wnum(reg, "cb", "calls"), 3);
	ck_assert_int_eq(acq(reg, "cb", p), 0);
	ck_assert(rec(reg, "cb", p, OUTCOME_FAILURE));
	/* 1 of 4: 25 % < 50 %, closes. */
	ck_assert_int_eq(st(reg, "cb"), BRK_CLOSED);

	/* R4j shouldIgnoreExceptionsAndThenTransitionToClosed */
	to_half_open(reg, "cb");
	for (i = 0; i < 4; i++)
		call(reg, "cb", OUTCOME_IGNORED);
	ck_assert_int_eq(st(reg, "cb"), BRK_HALF_OPEN);
	ck_assert_int_eq(wnum(reg, "cb", "calls"), 0);
	for (i = 0; i < 3; i++)
		call(reg, "cb", OUTCOME_SUCCESS);
	ck_assert_int_eq(st(reg, "cb"), BRK_HALF_OPEN);
	call(reg, "cb", OUTCOME_SUCCESS);
	ck_assert_int_eq(st(reg, "cb"), BRK_CLOSED);
	breakers_free(reg);
}
END_TEST

START_TEST(test_ignored_closed)
{
	struct breaker_config	 c;
	struct breakers		*reg;
	char			 p[BREAKER_PERMIT_MAX];
	int			 i, changes;

	breaker_config_defaults(&c);
	cset(&c, "failure_threshold", "2");
	cset(&c, "ignore", "FILE_NOT_FOUND, QUOTA_EXCEEDED");
	reg = mkreg(&c);
	call(reg, "cb", OUTCOME_FAILURE);
	changes = ev.changes;
	for (i = 0; i < 5; i++) {
		ck_assert_int_eq(acq(reg, "cb", p), 0);
		ck_assert(rec_full(reg, "cb", p, OUTCOME_FAILURE, 10,
		    i % 2 ? CAT_FILE_NOT_FOUND : CAT_QUOTA_EXCEEDED, NULL));
		call(reg, "cb", OUTCOME_IGNORED);
		ck_assert(rec(reg, "cb", NULL, OUTCOME_IGNORED));
	}
	/* Nothing changed: not the window, not the streak, nothing durable. */
	ck_assert_int_eq(st(reg, "cb"), BRK_CLOSED);
	ck_assert_int_eq(wnum(reg, "cb", "calls"), 1);
	ck_assert_int_eq(wnum(reg, "cb", "consecutive_failures"), 1);
	ck_assert_int_eq(ev.changes, changes);
	ck_assert_uint_eq(breaker_permits(breaker_find(reg, "cb")), 0);
	/* A success with an ignored category's error is still a success. */
	ck_assert_int_eq(acq(reg, "cb", p), 0);
	ck_assert(rec_full(reg, "cb", p, OUTCOME_SUCCESS, -1,
	    CAT_FILE_NOT_FOUND, NULL));
	ck_assert_int_eq(wnum(reg, "cb", "consecutive_failures"), 0);
	/* Other categories count. */
	ck_assert_int_eq(acq(reg, "cb", p), 0);
	ck_assert(rec_full(reg, "cb", p, OUTCOME_FAILURE, -1,
	    CAT_NETWORK_ERROR, NULL));
	ck_assert_int_eq(acq(reg, "cb", p), 0);
	ck_assert(rec_full(reg, "cb", p, OUTCOME_FAILURE, -1,
	    CAT_NETWORK_ERROR, NULL));
	ck_assert_int_eq(st(reg, "cb"), BRK_OPEN);
	breakers_free(reg);
}
END_TEST

/* ---- generations and permits -------------------------------------------- */

START_TEST(test_generations)
{
	struct breaker_config	 c;
	struct breakers		*reg;
	char			 old[BREAKER_PERMIT_MAX], p[BREAKER_PERMIT_MAX];
	char			 q[BREAKER_PERMIT_MAX];

	breaker_config_defaults(&c);
	cset(&c, "failure_threshold", "2");
	cset(&c, "recovery_timeout_ms", "1000");
	reg = mkreg(&c);
	ck_assert_int_eq(acq(reg, "cb", old), 0);
	ck_assert_int_eq(gint(reg, "cb", "generation"), 0);
	call(reg, "cb", OUTCOME_FAILURE);
	call(reg, "cb", OUTCOME_FAILURE);
	ck_assert_int_eq(gint(reg, "cb", "generation"), 1);
	/* A late result cannot flip the new state. */
	ck_assert(!rec(reg, "cb", old, OUTCOME_SUCCESS));
	ck_assert_int_eq(st(reg, "cb"), BRK_OPEN);
	clock_advance(1000);
	ck_assert_int_eq(gint(reg, "cb", "generation"), 2);
	ck_assert_int_eq(acq(reg, "cb", p), 0);
	ck_assert(!rec(reg, "cb", old, OUTCOME_FAILURE));
	ck_assert_int_eq(st(reg, "cb"), BRK_HALF_OPEN);
	ck_assert(rec(reg, "cb", p, OUTCOME_SUCCESS));
	ck_assert_int_eq(gint(reg, "cb", "generation"), 3);
	/* Recorded twice: the second is not. */
	ck_assert_int_eq(acq(reg, "cb", p), 0);
	ck_assert(rec(reg, "cb", p, OUTCOME_FAILURE));
	ck_assert(!rec(reg, "cb", p, OUTCOME_FAILURE));
	ck_assert_int_eq(wnum(reg, "cb", "calls"), 1);
	/* Unknown permits and another breaker's permits are not. */
	ck_assert(!rec(reg, "cb", "3-deadbeef", OUTCOME_FAILURE));
	ck_assert(!rec(reg, "cb", "", OUTCOME_FAILURE));
	ck_assert_int_eq(acq(reg, "other", q), 0);
	ck_assert(!rec(reg, "cb", q, OUTCOME_FAILURE));
	ck_assert_int_eq(st(reg, "cb"), BRK_CLOSED);
	/* ...and the other breaker's permit is still good. */
	ck_assert(rec(reg, "other", q, OUTCOME_SUCCESS));
	/* Each permit is distinct. */
	ck_assert_int_eq(acq(reg, "cb", p), 0);
	ck_assert_int_eq(acq(reg, "cb", q), 0);
	ck_assert_str_ne(p, q);
	breakers_free(reg);
}
END_TEST

/* Without a permit, an outcome is a free-standing observation. */
START_TEST(test_free_standing)
{
	struct breaker_config	 c;
	struct breakers		*reg;
	char			 p[BREAKER_PERMIT_MAX];

	breaker_config_defaults(&c);
	cset(&c, "half_open_max_calls", "2");
	reg = mkreg(&c);
	ck_assert(rec(reg, "new", NULL, OUTCOME_FAILURE));	/* creates it */
	ck_assert_int_eq(wnum(reg, "new", "failures"), 1);
	to_half_open(reg, "new");
	/* In half-open it takes a free trial slot... */
	ck_assert_int_eq(acq(reg, "new", p), 0);
	ck_assert(rec(reg, "new", NULL, OUTCOME_SUCCESS));
	ck_assert_int_eq(st(reg, "new"), BRK_HALF_OPEN);
	/* ...and is not recorded when there is none. */
	ck_assert(!rec(reg, "new", NULL, OUTCOME_FAILURE));
	ck_assert_int_eq(st(reg, "new"), BRK_HALF_OPEN);
	ck_assert(rec(reg, "new", p, OUTCOME_SUCCESS));
	ck_assert_int_eq(st(reg, "new"), BRK_CLOSED);
	/* Forced open: not recorded. */
	ck_assert_int_eq(breaker_force(reg, "new", BRK_FORCED_OPEN, NULL), 0);
	ck_assert(!rec(reg, "new", NULL, OUTCOME_FAILURE));
	breakers_free(reg);
}
END_TEST

/* ---- leases ------------------------------------------------------------- */

START_TEST(test_lease_ttl)
{
	struct breaker_config	 c;
	struct breakers		*reg;
	char			 p[BREAKER_PERMIT_MAX], q[BREAKER_PERMIT_MAX];

	breaker_config_defaults(&c);
	cset(&c, "permit_ttl_ms", "1000");
	reg = mkreg(&c);
	/* Closed: released without an outcome. */
	ck_assert_int_eq(acq(reg, "cb", p), 0);
	clock_advance(500);
	ck_assert_int_eq(acq(reg, "cb", q), 0);
	ck_assert_uint_eq(breaker_permits(breaker_find(reg, "cb")), 2);
	clock_advance(499);
	ck_assert_uint_eq(breaker_permits(breaker_find(reg, "cb")), 2);
	clock_advance(1);			/* p is 1000 ms old */
	ck_assert_uint_eq(breaker_permits(breaker_find(reg, "cb")), 1);
	ck_assert(!rec(reg, "cb", p, OUTCOME_FAILURE));
	ck_assert_int_eq(wnum(reg, "cb", "calls"), 0);
	clock_advance(500);
	ck_assert_uint_eq(breaker_permits(breaker_find(reg, "cb")), 0);
	ck_assert_uint_eq(breakers_permits(reg), 0);
	ck_assert_int_eq(st(reg, "cb"), BRK_CLOSED);
	ck_assert_int_eq(ev.n, 0);

	/* Half-open: counts as a failure, so it re-opens. */
	to_half_open(reg, "cb");
	ck_assert_int_eq(acq(reg, "cb", p), 0);
	clock_advance(999);
	ck_assert_int_eq(breaker_state(breaker_find(reg, "cb")), BRK_HALF_OPEN);
	clock_advance(1);
	ck_assert_int_eq(breaker_state(breaker_find(reg, "cb")), BRK_OPEN);
	expect_event(ev.n - 1, "cb", BRK_HALF_OPEN, BRK_OPEN,
	    "permit_expired");
	ck_assert(!rec(reg, "cb", p, OUTCOME_SUCCESS));

	/*
	 * The lease timer stays armed for a lease already recorded; firing
	 * early it expires nothing and waits for the oldest lease left.
	 */
	ck_assert_int_eq(acq(reg, "lz", p), 0);		/* due +1000 */
	clock_advance(100);
	ck_assert(rec(reg, "lz", p, OUTCOME_SUCCESS));
	clock_advance(500);
	ck_assert_int_eq(acq(reg, "lz", q), 0);		/* due +1600 */
	clock_advance(400);				/* +1000: early */
	ck_assert_uint_eq(breaker_permits(breaker_find(reg, "lz")), 1);
	clock_advance(599);
	ck_assert_uint_eq(breaker_permits(breaker_find(reg, "lz")), 1);
	clock_advance(1);				/* +1600 */
	ck_assert_uint_eq(breaker_permits(breaker_find(reg, "lz")), 0);
	ck_assert(!rec(reg, "lz", q, OUTCOME_SUCCESS));
	breakers_free(reg);
}
END_TEST

START_TEST(test_lease_owner)
{
	struct breaker_config	 c;
	struct breakers		*reg;
	char			 p[BREAKER_PERMIT_MAX], q[BREAKER_PERMIT_MAX];
	int			 i;

	breaker_config_defaults(&c);
	reg = mkreg(&c);
	/* Closed: the connection's leases are released, nothing else. */
	for (i = 0; i < 3; i++)
		ck_assert_int_eq(acq_as(reg, "a", 7, NULL), 0);
	ck_assert_int_eq(acq_as(reg, "b", 7, NULL), 0);
	ck_assert_int_eq(acq_as(reg, "b", 8, q), 0);
	ck_assert_uint_eq(breakers_permits(reg), 5);
	breaker_release_owner(reg, 7);
	ck_assert_uint_eq(breaker_permits(breaker_find(reg, "a")), 0);
	ck_assert_uint_eq(breaker_permits(breaker_find(reg, "b")), 1);
	ck_assert_int_eq(st(reg, "a"), BRK_CLOSED);
	ck_assert_int_eq(wnum(reg, "a", "calls"), 0);
	ck_assert(rec(reg, "b", q, OUTCOME_SUCCESS));
	breaker_release_owner(reg, 7);		/* nothing left: no-op */
	breaker_release_owner(reg, 12345);

	/* Half-open: the trial permit of a gone connection is a failure. */
	to_half_open(reg, "h");
	ck_assert_int_eq(acq_as(reg, "h", 9, p), 0);
	breaker_release_owner(reg, 9);
	ck_assert_int_eq(st(reg, "h"), BRK_OPEN);
	expect_event(ev.n - 1, "h", BRK_HALF_OPEN, BRK_OPEN, "owner_closed");
	breakers_free(reg);
}
END_TEST

/*
 * Freed permits are kept for the next acquire (permit_alloc): one used again
 * must carry nothing over, neither its trial flag, nor its owner, nor its
 * id. 300 in flight is more than the spare list keeps.
 */
START_TEST(test_permits_reused)
{
	struct breaker_config	 c;
	struct breakers		*reg;
	static char		 old[300][BREAKER_PERMIT_MAX];
	char			 p[BREAKER_PERMIT_MAX];
	int			 i;

	breaker_config_defaults(&c);
	reg = mkreg(&c);
	for (i = 0; i < 300; i++)
		ck_assert_int_eq(acq_as(reg, "a", 7, old[i]), 0);
	for (i = 0; i < 300; i++)
		ck_assert(rec(reg, "a", old[i], OUTCOME_SUCCESS));
	ck_assert_uint_eq(breakers_permits(reg), 0);
	/* A trial permit, freed, then given to a closed breaker's call. */
	to_half_open(reg, "h");
	ck_assert_int_eq(acq_as(reg, "h", 9, p), 0);
	ck_assert(rec(reg, "h", p, OUTCOME_SUCCESS));
	ck_assert_int_eq(st(reg, "h"), BRK_CLOSED);
	ck_assert_int_eq(acq(reg, "h", p), 0);
	ck_assert(rec(reg, "h", p, OUTCOME_FAILURE));
	ck_assert_int_eq(st(reg, "h"), BRK_CLOSED);
	ck_assert_int_eq(wnum(reg, "h", "calls"), 1);
	ck_assert_int_eq(wnum(reg, "h", "failures"), 1);
	/* Owner 7's permits went back; new ones of no owner outlive it. */
	for (i = 0; i < 300; i++)
		ck_assert_int_eq(acq(reg, "a", NULL), 0);
	breaker_release_owner(reg, 7);
	breaker_release_owner(reg, 9);
	ck_assert_uint_eq(breaker_permits(breaker_find(reg, "a")), 300);
	/* The old ids name nothing, though their memory is in use again. */
	for (i = 0; i < 300; i++)
		ck_assert(!rec(reg, "a", old[i], OUTCOME_FAILURE));
	ck_assert_uint_eq(breaker_permits(breaker_find(reg, "a")), 300);
	ck_assert_int_eq(wnum(reg, "a", "failures"), 0);
	breakers_free(reg);
}
END_TEST

/*
 * A lease that starts later (op.fail's retry, due after its delay) runs
 * its TTL from then, and does not hold back the expiry of the leases
 * issued after it that start now.
 */
START_TEST(test_lease_from_later)
{
	struct breaker_config	 c;
	struct breakers		*reg;
	struct breaker_permit_info pi;
	char			 later[BREAKER_PERMIT_MAX], now[BREAKER_PERMIT_MAX];

	breaker_config_defaults(&c);
	cset(&c, "permit_ttl_ms", "1000");
	cset(&c, "half_open_max_calls", "2");
	reg = mkreg(&c);
	to_half_open(reg, "h");
	ck_assert_int_eq(breaker_acquire_from(reg, "h", 0, clock_now_ms() +
	    5000, &pi), 0);
	memcpy(later, pi.permit, sizeof(later));
	ck_assert_int_eq(acq(reg, "h", now), 0);
	/* The one issued now expires on its own timer, a failure. */
	clock_advance(1000);
	ck_assert_int_eq(st(reg, "h"), BRK_OPEN);
	breakers_free(reg);

	reg = mkreg(&c);
	ck_assert_int_eq(breaker_acquire_from(reg, "c", 0, clock_now_ms() +
	    5000, &pi), 0);
	memcpy(later, pi.permit, sizeof(later));
	ck_assert_int_eq(acq(reg, "c", now), 0);
	clock_advance(1000);
	ck_assert_uint_eq(breaker_permits(breaker_find(reg, "c")), 1);
	ck_assert(!rec(reg, "c", now, OUTCOME_SUCCESS));
	clock_advance(4999);			/* 5999: 999 ms into its lease */
	ck_assert(rec(reg, "c", later, OUTCOME_SUCCESS));
	ck_assert_int_eq(wnum(reg, "c", "calls"), 1);
	/* Another, left alone: gone 1000 ms after its start. */
	ck_assert_int_eq(breaker_acquire_from(reg, "c", 0, clock_now_ms() +
	    5000, &pi), 0);
	clock_advance(5999);
	ck_assert_uint_eq(breaker_permits(breaker_find(reg, "c")), 1);
	clock_advance(1);
	ck_assert_uint_eq(breaker_permits(breaker_find(reg, "c")), 0);
	breakers_free(reg);
}
END_TEST

/*
 * Ending one lease re-opens the breaker, which drops the rest of its
 * permits, this owner's and another's: the release must cope.
 */
START_TEST(test_lease_owner_reopens)
{
	struct breaker_config	 c;
	struct breakers		*reg;
	char			 q[BREAKER_PERMIT_MAX];

	breaker_config_defaults(&c);
	cset(&c, "window", "count");
	cset(&c, "half_open_max_calls", "4");
	reg = mkreg(&c);
	to_half_open(reg, "h");
	ck_assert_int_eq(acq_as(reg, "z", 5, NULL), 0);
	ck_assert_int_eq(acq_as(reg, "h", 5, NULL), 0);
	ck_assert_int_eq(acq_as(reg, "h", 5, NULL), 0);
	ck_assert_int_eq(acq_as(reg, "h", 5, NULL), 0);
	ck_assert_int_eq(acq_as(reg, "h", 6, q), 0);
	breaker_release_owner(reg, 5);
	/* Two failures of four made it open; the third lease went with it. */
	ck_assert_int_eq(st(reg, "h"), BRK_OPEN);
	ck_assert_uint_eq(breakers_permits(reg), 0);
	ck_assert(!rec(reg, "h", q, OUTCOME_SUCCESS));
	breaker_release_owner(reg, 6);
	ck_assert_int_eq(st(reg, "z"), BRK_CLOSED);
	breakers_free(reg);
}
END_TEST

/* ---- manual states ------------------------------------------------------ */

/* R4j shouldForceOpenCircuitBreaker */
START_TEST(test_forced_open)
{
	struct breakers	*reg = mkreg(NULL);
	struct breaker	*b;
	int		 i;

	ck_assert_int_eq(breaker_force(reg, "cb", BRK_FORCED_OPEN, &b), 0);
	ck_assert_ptr_nonnull(b);
	ck_assert_int_eq(breaker_state(b), BRK_FORCED_OPEN);
	expect_event(0, "cb", BRK_CLOSED, BRK_FORCED_OPEN, "forced");
	ck_assert_int_eq(acq(reg, "cb", NULL), ERM_BREAKER_OPEN);
	ck_assert_int_eq(last.state, BRK_FORCED_OPEN);
	ck_assert_int_eq(last.retry_after_ms, 60000);
	for (i = 0; i < 20; i++)
		clock_advance(60000);
	ck_assert_int_eq(acq(reg, "cb", NULL), ERM_BREAKER_OPEN);
	ck_assert_int_eq(st(reg, "cb"), BRK_FORCED_OPEN);
	ck_assert_int_eq(gint(reg, "cb", "not_permitted"), 2);
	ck_assert_int_eq(gint(reg, "cb", "retry_after_ms"), 60000);
	ck_assert_int_eq(gint(reg, "cb", "opened_at"), (int64_t)t0);
	ck_assert_int_eq(gint(reg, "cb", "open_count"), 0);
	ck_assert_int_eq(ev.n, 1);
	breakers_free(reg);
}
END_TEST

/* R4j shouldDisableCircuitBreaker */
START_TEST(test_disabled)
{
	struct breakers	*reg = mkreg(NULL);
	char		 p[BREAKER_PERMIT_MAX];
	int		 i;

	call(reg, "cb", OUTCOME_FAILURE);
	ck_assert_int_eq(breaker_force(reg, "cb", BRK_DISABLED, NULL), 0);
	ck_assert_int_eq(wnum(reg, "cb", "calls"), 0);
	for (i = 0; i < 20; i++) {
		ck_assert_int_eq(acq(reg, "cb", p), 0);
		ck_assert_int_eq(last.state, BRK_DISABLED);
		ck_assert(!rec(reg, "cb", p, OUTCOME_FAILURE));
		ck_assert(!rec(reg, "cb", NULL, OUTCOME_FAILURE));
	}
	ck_assert_int_eq(st(reg, "cb"), BRK_DISABLED);
	ck_assert_int_eq(wnum(reg, "cb", "calls"), 0);
	/* Disabled permits are not leases: nothing to expire or release. */
	ck_assert_uint_eq(breakers_permits(reg), 0);
	ck_assert_int_eq(ev.n, 1);
	breakers_free(reg);
}
END_TEST

/* R4j shouldRecordMetricsInMetricsOnlyState */
START_TEST(test_metrics_only)
{
	struct breaker_config	 c;
	struct breakers		*reg;
	int			 i;

	breaker_config_defaults(&c);
	cset(&c, "window", "count");
	cset(&c, "window_size", "5");
	reg = mkreg(&c);
	call(reg, "cb", OUTCOME_SUCCESS);
	ck_assert_int_eq(breaker_force(reg, "cb", BRK_METRICS_ONLY, NULL), 0);
	ck_assert_int_eq(wnum(reg, "cb", "calls"), 0);
	for (i = 0; i < 3; i++)
		call(reg, "cb", OUTCOME_FAILURE);
	ck_assert_int_eq(wnum(reg, "cb", "failure_rate"), -1);
	call(reg, "cb", OUTCOME_SUCCESS);
	call(reg, "cb", OUTCOME_SUCCESS);
	ck_assert_double_eq(wnum(reg, "cb", "failure_rate"), 60);
	ck_assert_int_eq(st(reg, "cb"), BRK_METRICS_ONLY);
	for (i = 0; i < 10; i++)
		call(reg, "cb", OUTCOME_FAILURE);
	ck_assert_int_eq(st(reg, "cb"), BRK_METRICS_ONLY);
	ck_assert_double_eq(wnum(reg, "cb", "failure_rate"), 100);
	ck_assert_int_eq(wnum(reg, "cb", "consecutive_failures"), 10);
	ck_assert_int_eq(ev.n, 1);
	breakers_free(reg);
}
END_TEST

/* Bring name into state s by the usual roads. */
static void
put_in(struct breakers *reg, const char *name, enum breaker_state s)
{
	switch (s) {
	case BRK_CLOSED:
		call(reg, name, OUTCOME_SUCCESS);
		break;
	case BRK_OPEN:
		call(reg, name, OUTCOME_FAILURE);	/* threshold 1 */
		break;
	case BRK_HALF_OPEN:
		call(reg, name, OUTCOME_FAILURE);
		ck_assert_int_eq(breaker_force(reg, name, BRK_HALF_OPEN, NULL),
		    0);
		break;
	default:
		ck_assert_int_eq(breaker_force(reg, name, s, NULL), 0);
		break;
	}
	ck_assert_int_eq(st(reg, name), s);
}

/* Legal forced transitions: any -> any but closed/metrics_only -> half_open. */
START_TEST(test_force_matrix)
{
	static const enum breaker_state	from[] = { BRK_CLOSED, BRK_OPEN,
	    BRK_HALF_OPEN, BRK_FORCED_OPEN, BRK_DISABLED, BRK_METRICS_ONLY };
	static const enum breaker_state	to[] = { BRK_FORCED_OPEN,
	    BRK_DISABLED, BRK_METRICS_ONLY, BRK_CLOSED, BRK_HALF_OPEN };
	struct breaker_config	 c;
	struct breakers		*reg;
	char			 name[64];
	size_t			 i, j;
	int			 n, rc, gen, illegal;

	breaker_config_defaults(&c);
	cset(&c, "failure_threshold", "1");
	reg = mkreg(&c);
	for (i = 0; i < LEN(from); i++)
		for (j = 0; j < LEN(to); j++) {
			snprintf(name, sizeof(name), "%s-%s",
			    breaker_state_name(from[i]),
			    breaker_state_name(to[j]));
			put_in(reg, name, from[i]);
			n = ev.n;
			gen = (int)gint(reg, name, "generation");
			rc = breaker_force(reg, name, to[j], NULL);
			illegal = to[j] == BRK_HALF_OPEN &&
			    (from[i] == BRK_CLOSED ||
			    from[i] == BRK_METRICS_ONLY);
			if (illegal) {
				ck_assert_msg(rc == ERM_CONFLICT, "%s", name);
				ck_assert_int_eq(st(reg, name), from[i]);
				ck_assert_int_eq(ev.n, n);
			} else if (from[i] == to[j]) {
				ck_assert_msg(rc == 0, "%s", name);
				ck_assert_int_eq(ev.n, n);
				ck_assert_int_eq(gint(reg, name, "generation"),
				    gen);
			} else {
				ck_assert_msg(rc == 0, "%s", name);
				ck_assert_int_eq(st(reg, name), to[j]);
				ck_assert_int_eq(ev.n, n + 1);
				expect_event(n, name, from[i], to[j],
				    "forced");
				ck_assert_int_eq(gint(reg, name, "generation"),
				    gen + 1);
			}
		}
	ck_assert_int_eq(breaker_force(reg, "x", BRK_OPEN, NULL),
	    ERM_INVALID_PARAMS);
	ck_assert_int_eq(breaker_force(reg, "bad name", BRK_CLOSED, NULL),
	    ERM_INVALID_PARAMS);
	breakers_free(reg);
}
END_TEST

START_TEST(test_reset)
{
	struct breaker_config	 c;
	struct breakers		*reg;
	struct breaker		*b;
	int			 gen;

	breaker_config_defaults(&c);
	cset(&c, "failure_threshold", "2");
	reg = mkreg(&c);
	ck_assert_int_eq(breaker_reset(reg, "cb", &b), ERM_NOT_FOUND);
	ck_assert_ptr_null(b);
	ck_assert_int_eq(breaker_reset(reg, "bad name", NULL),
	    ERM_INVALID_PARAMS);
	call(reg, "cb", OUTCOME_FAILURE);
	call(reg, "cb", OUTCOME_FAILURE);
	ck_assert_int_eq(breaker_reset(reg, "cb", &b), 0);
	ck_assert_int_eq(breaker_state(b), BRK_CLOSED);
	expect_event(1, "cb", BRK_OPEN, BRK_CLOSED, "reset");
	ck_assert_int_eq(gint(reg, "cb", "open_count"), 0);
	ck_assert_int_eq(wnum(reg, "cb", "calls"), 0);
	/* R4j shouldResetClosedState: no event, same generation. */
	call(reg, "cb", OUTCOME_FAILURE);
	call(reg, "cb", OUTCOME_SUCCESS);
	gen = (int)gint(reg, "cb", "generation");
	ck_assert_int_eq(breaker_reset(reg, "cb", NULL), 0);
	ck_assert_int_eq(wnum(reg, "cb", "calls"), 0);
	ck_assert_int_eq(gint(reg, "cb", "generation"), gen);
	ck_assert_int_eq(ev.n, 2);
	breakers_free(reg);
}
END_TEST

/* ---- hooks -------------------------------------------------------------- */

START_TEST(test_on_change)
{
	struct breaker_config	 c;
	struct breakers		*reg;
	char			 p[BREAKER_PERMIT_MAX];

	breaker_config_defaults(&c);
	cset(&c, "failure_threshold", "1");
	reg = mkreg(&c);
	ck_assert_int_eq(acq(reg, "cb", p), 0);	/* a new breaker */
	ck_assert_int_eq(ev.changes, 1);
	ck_assert_int_eq(acq(reg, "cb", NULL), 0);	/* not durable */
	ck_assert_int_eq(ev.changes, 1);
	ck_assert(rec(reg, "cb", p, OUTCOME_SUCCESS));	/* window counters */
	ck_assert_int_eq(ev.changes, 2);
	ck_assert(rec(reg, "cb", NULL, OUTCOME_FAILURE)); /* window + state */
	ck_assert_int_eq(ev.changes, 3);
	ck_assert_int_eq(acq(reg, "cb", NULL), ERM_BREAKER_OPEN);
	ck_assert_int_eq(ev.changes, 3);
	ck_assert_ptr_nonnull(breaker_find(reg, "cb"));
	ck_assert_int_eq(ev.changes, 3);
	clock_advance(60000);				/* timer: state */
	ck_assert_int_eq(ev.changes, 4);
	breakers_free(reg);
}
END_TEST

/* ---- reading ------------------------------------------------------------ */

START_TEST(test_get_shape)
{
	struct breaker_config	 c;
	struct breakers		*reg;
	json_t			*j, *err, *want;
	const char		*key;
	json_t			*v;
	char			 p[BREAKER_PERMIT_MAX];
	int			 n;

	breaker_config_defaults(&c);
	cset(&c, "failure_threshold", "1");
	reg = mkreg(&c);
	call(reg, "cb", OUTCOME_SUCCESS);
	j = get(reg, "cb");
	n = 0;
	json_object_foreach(j, key, v)
		n++;
	ck_assert_int_eq(n, 7);
	ck_assert_str_eq(json_string_value(json_object_get(j, "name")), "cb");
	ck_assert_str_eq(json_string_value(json_object_get(j, "state")),
	    "closed");
	want = breaker_config_to_json(&c);
	ck_assert(json_equal(json_object_get(j, "config"), want));
	json_decref(want);
	want = json_pack("{s:i, s:i, s:i, s:i, s:i, s:i}", "calls", 1,
	    "failures", 0, "slow_calls", 0, "failure_rate", 0,
	    "slow_call_rate", 0, "consecutive_failures", 0);
	ck_assert_msg(json_equal(json_object_get(j, "window"), want), "%s",
	    json_dumps(json_object_get(j, "window"), 0));
	json_decref(want);
	ck_assert_int_eq(json_integer_value(json_object_get(j,
	    "not_permitted")), 0);
	ck_assert_int_eq(json_integer_value(json_object_get(j, "open_count")),
	    0);
	ck_assert_int_eq(json_integer_value(json_object_get(j, "generation")),
	    0);
	json_decref(j);

	err = json_pack("{s:s, s:s}", "errno", "ECONNRESET", "message",
	    "peer reset");
	ck_assert_int_eq(acq(reg, "cb", p), 0);
	ck_assert(rec_full(reg, "cb", p, OUTCOME_FAILURE, 20,
	    CAT_NETWORK_ERROR, err));
	clock_advance(1500);
	j = get(reg, "cb");
	ck_assert_str_eq(json_string_value(json_object_get(j, "state")),
	    "open");
	ck_assert_int_eq(json_integer_value(json_object_get(j, "opened_at")),
	    (json_int_t)t0);
	ck_assert_int_eq(json_integer_value(json_object_get(j,
	    "retry_after_ms")), 58500);
	ck_assert(json_equal(json_object_get(j, "last_error"), err));
	json_decref(j);
	json_decref(err);
	breakers_free(reg);
}
END_TEST

START_TEST(test_list_and_counts)
{
	struct breaker_config	 c;
	struct breakers		*reg;
	json_t			*j, *a;
	size_t			 by[BRK_NSTATES];

	breaker_config_defaults(&c);
	cset(&c, "failure_threshold", "1");
	reg = mkreg(&c);
	call(reg, "charlie", OUTCOME_FAILURE);
	call(reg, "alpha", OUTCOME_SUCCESS);
	call(reg, "bravo", OUTCOME_SUCCESS);
	ck_assert_int_eq(breaker_force(reg, "delta", BRK_DISABLED, NULL), 0);
	j = breakers_list_json(reg, -1);
	a = json_object_get(j, "breakers");
	ck_assert_int_eq(json_array_size(a), 4);
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(a,
	    0), "name")), "alpha");
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(a,
	    1), "name")), "bravo");
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(a,
	    3), "name")), "delta");
	json_decref(j);
	j = breakers_list_json(reg, BRK_OPEN);
	a = json_object_get(j, "breakers");
	ck_assert_int_eq(json_array_size(a), 1);
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(a,
	    0), "name")), "charlie");
	json_decref(j);
	j = breakers_list_json(reg, BRK_HALF_OPEN);
	ck_assert_int_eq(json_array_size(json_object_get(j, "breakers")), 0);
	json_decref(j);
	ck_assert_uint_eq(breakers_count(reg, by), 4);
	ck_assert_uint_eq(by[BRK_CLOSED], 2);
	ck_assert_uint_eq(by[BRK_OPEN], 1);
	ck_assert_uint_eq(by[BRK_DISABLED], 1);
	ck_assert_uint_eq(by[BRK_HALF_OPEN], 0);
	/* The list brings breakers up to date: charlie is half-open now. */
	clock_advance(60000);
	j = breakers_list_json(reg, BRK_HALF_OPEN);
	ck_assert_int_eq(json_array_size(json_object_get(j, "breakers")), 1);
	json_decref(j);
	ck_assert_uint_eq(breakers_count(reg, by), 4);
	ck_assert_uint_eq(by[BRK_OPEN], 0);
	ck_assert_uint_eq(by[BRK_HALF_OPEN], 1);
	breakers_free(reg);
}
END_TEST

/* ---- breaker.configure -------------------------------------------------- */

START_TEST(test_configure)
{
	struct breakers		*reg = mkreg(NULL);
	struct param_err	 e;
	struct breaker		*b;
	json_t			*cfg;
	json_error_t		 jerr;
	size_t			 i;
	static const struct {
		const char	*text;
		const char	*field;
	} bad[] = {
		{ "{\"threshold\": 3}", "config.threshold" },
		{ "{\"failure_threshold\": \"3\"}",
		    "config.failure_threshold" },
		{ "{\"failure_threshold\": 0}", "config.failure_threshold" },
		{ "{\"window\": \"sliding\"}", "config.window" },
		{ "{\"ignore\": [\"NOPE\"]}", "config.ignore" },
		{ "{\"recovery_backoff\": true}", "config.recovery_backoff" },
		{ "{\"window\": \"time\", \"window_size\": 3601}", "config" },
	};

	/* Creates the breaker; merges; null drops an override. */
	cfg = json_pack("{s:i, s:s}", "failure_threshold", 2, "ignore",
	    "QUOTA_EXCEEDED");
	ck_assert_int_eq(breaker_configure(reg, "cb", cfg, &e, &b), 0);
	json_decref(cfg);
	ck_assert_int_eq(breaker_config(b)->failure_threshold, 2);
	ck_assert_uint_eq(breaker_config(b)->ignore,
	    CATSET_BIT(CAT_QUOTA_EXCEEDED));
	cfg = json_pack("{s:i}", "recovery_timeout_ms", 1000);
	ck_assert_int_eq(breaker_configure(reg, "cb", cfg, &e, &b), 0);
	json_decref(cfg);
	ck_assert_int_eq(breaker_config(b)->failure_threshold, 2);
	ck_assert_int_eq(breaker_config(b)->recovery_timeout_ms, 1000);
	cfg = json_pack("{s:n}", "failure_threshold");
	ck_assert_int_eq(breaker_configure(reg, "cb", cfg, &e, &b), 0);
	json_decref(cfg);
	ck_assert_int_eq(breaker_config(b)->failure_threshold, 5);
	ck_assert_int_eq(breaker_config(b)->recovery_timeout_ms, 1000);

	for (i = 0; i < LEN(bad); i++) {
		cfg = json_loads(bad[i].text, 0, &jerr);
		ck_assert_int_eq(breaker_configure(reg, "cb", cfg, &e, NULL),
		    ERM_INVALID_PARAMS);
		ck_assert_str_eq(e.field, bad[i].field);
		json_decref(cfg);
	}
	/* Nothing of the refused configs stuck. */
	ck_assert_int_eq(breaker_config(b)->window, WINDOW_CONSECUTIVE);
	ck_assert_int_eq(breaker_config(b)->recovery_timeout_ms, 1000);
	cfg = json_object();
	ck_assert_int_eq(breaker_configure(reg, "bad name", cfg, &e, NULL),
	    ERM_INVALID_PARAMS);
	ck_assert_str_eq(e.field, "name");
	json_decref(cfg);

	/* A new timeout applies to an open breaker from its opened_at. */
	call(reg, "cb", OUTCOME_FAILURE);
	ck_assert_int_eq(breaker_force(reg, "cb", BRK_CLOSED, NULL), 0);
	cfg = json_pack("{s:i}", "failure_threshold", 1);
	ck_assert_int_eq(breaker_configure(reg, "cb", cfg, &e, NULL), 0);
	json_decref(cfg);
	call(reg, "cb", OUTCOME_FAILURE);
	ck_assert_int_eq(gint(reg, "cb", "retry_after_ms"), 1000);
	clock_advance(400);
	cfg = json_pack("{s:i}", "recovery_timeout_ms", 5000);
	ck_assert_int_eq(breaker_configure(reg, "cb", cfg, &e, NULL), 0);
	json_decref(cfg);
	ck_assert_int_eq(gint(reg, "cb", "retry_after_ms"), 4600);
	clock_advance(4599);
	ck_assert_int_eq(breaker_state(breaker_find(reg, "cb")), BRK_OPEN);
	clock_advance(1);
	ck_assert_int_eq(breaker_state(breaker_find(reg, "cb")), BRK_HALF_OPEN);

	/* A new window type starts empty. */
	ck_assert_int_eq(breaker_force(reg, "cb", BRK_CLOSED, NULL), 0);
	call(reg, "cb", OUTCOME_SUCCESS);
	ck_assert_int_eq(wnum(reg, "cb", "calls"), 1);
	cfg = json_pack("{s:s, s:i}", "window", "count", "window_size", 3);
	ck_assert_int_eq(breaker_configure(reg, "cb", cfg, &e, NULL), 0);
	json_decref(cfg);
	ck_assert_int_eq(wnum(reg, "cb", "calls"), 0);
	breakers_free(reg);
}
END_TEST

/* ---- eviction and limits ------------------------------------------------ */

START_TEST(test_eviction)
{
	struct breaker_config	 c, s;
	struct breaker_section	 sec;
	struct breakers		*reg = breakers_new(&hooks);
	char			 err[160], p[BREAKER_PERMIT_MAX];

	breaker_config_defaults(&c);
	cset(&c, "idle_evict_ms", "5000");
	cset(&c, "failure_threshold", "1");
	breaker_config_defaults(&s);
	sec.name = "conf";
	sec.cfg = s;
	sec.mask = 0;
	ck_assert_int_eq(breakers_apply_config(reg, &c, &sec, 1, err,
	    sizeof(err)), 0);
	call(reg, "idle", OUTCOME_SUCCESS);
	call(reg, "busy", OUTCOME_SUCCESS);
	call(reg, "open", OUTCOME_FAILURE);
	ck_assert_int_eq(acq(reg, "held", p), 0);
	ck_assert_int_eq(breaker_force(reg, "off", BRK_DISABLED, NULL), 0);
	ck_assert_uint_eq(breakers_count(reg, NULL), 6);
	clock_advance(4999);
	breakers_sweep(reg);
	ck_assert_int_eq(ev.evicted, 0);
	call(reg, "busy", OUTCOME_SUCCESS);
	/* The sweep timer (every idle_evict_ms here) finds "idle". */
	clock_advance(1);
	ck_assert_int_eq(ev.evicted, 1);
	ck_assert_str_eq(ev.evicted_name, "idle");
	ck_assert_ptr_null(breaker_find(reg, "idle"));
	ck_assert_uint_eq(breakers_count(reg, NULL), 5);
	clock_advance(5000);
	ck_assert_int_eq(ev.evicted, 2);
	ck_assert_str_eq(ev.evicted_name, "busy");
	/* Open, configured, leased and forced breakers stay... */
	ck_assert_ptr_nonnull(breaker_find(reg, "conf"));
	ck_assert_ptr_nonnull(breaker_find(reg, "held"));
	ck_assert_ptr_nonnull(breaker_find(reg, "off"));
	/* ...until their lease ends. */
	clock_advance(25000);			/* the lease expired at 30 s */
	ck_assert_ptr_null(breaker_find(reg, "held"));
	ck_assert_int_eq(ev.evicted, 3);
	/* "open" went half-open at 60 s, nobody came: never evicted. */
	clock_advance(600000);
	ck_assert_ptr_nonnull(breaker_find(reg, "open"));
	ck_assert_ptr_nonnull(breaker_find(reg, "conf"));
	ck_assert_ptr_nonnull(breaker_find(reg, "off"));
	/* An evicted breaker comes back fresh on next use. */
	ck_assert_int_eq(acq(reg, "idle", NULL), 0);
	ck_assert_int_eq(gint(reg, "idle", "generation"), 0);
	breakers_free(reg);
}
END_TEST

START_TEST(test_max_breakers)
{
	struct breaker_config	 c;
	struct breakers		*reg;
	struct param_err	 e;
	json_t			*cfg;
	char			 p[BREAKER_PERMIT_MAX];

	breaker_config_defaults(&c);
	cset(&c, "idle_evict_ms", "1000");
	reg = mkreg(&c);
	breakers_set_limits(reg, 3, 3);
	ck_assert_int_eq(acq(reg, "a", p), 0);
	ck_assert_int_eq(acq(reg, "b", NULL), 0);
	ck_assert_int_eq(acq(reg, "c", NULL), 0);
	ck_assert_int_eq(acq(reg, "d", NULL), ERM_LIMIT_EXCEEDED);
	ck_assert_str_eq(last.limit, "max_breakers");
	ck_assert_int_eq(breaker_force(reg, "d", BRK_DISABLED, NULL),
	    ERM_LIMIT_EXCEEDED);
	cfg = json_object();
	ck_assert_int_eq(breaker_configure(reg, "d", cfg, &e, NULL),
	    ERM_LIMIT_EXCEEDED);
	json_decref(cfg);
	{
		struct breaker_call		bc = { OUTCOME_FAILURE, -1,
		    CAT_NONE, NULL };
		struct breaker_record_result	r;

		ck_assert_int_eq(breaker_record(reg, "d", NULL, &bc, &r),
		    ERM_LIMIT_EXCEEDED);
	}
	ck_assert_ptr_null(breaker_find(reg, "d"));
	/* max_permits 3: a, b and c hold one each. */
	ck_assert_int_eq(acq(reg, "a", NULL), ERM_LIMIT_EXCEEDED);
	ck_assert_str_eq(last.limit, "max_permits");
	ck_assert(rec(reg, "a", p, OUTCOME_SUCCESS));
	ck_assert_int_eq(acq(reg, "a", NULL), 0);
	/* Existing names still work; eviction makes room. */
	breakers_set_limits(reg, 3, 100);
	breaker_release_owner(reg, 0);
	clock_advance(30000);			/* leases gone, idle, swept */
	ck_assert_uint_eq(breakers_count(reg, NULL), 0);
	ck_assert_int_eq(acq(reg, "d", NULL), 0);
	breakers_free(reg);
}
END_TEST

START_TEST(test_many_breakers)
{
	struct breakers	*reg = mkreg(NULL);
	char		 name[32];
	int		 i;

	for (i = 0; i < BREAKER_MAX_BREAKERS; i++) {
		snprintf(name, sizeof(name), "svc-%d", i);
		call(reg, name, i % 2 ? OUTCOME_FAILURE : OUTCOME_SUCCESS);
	}
	ck_assert_uint_eq(breakers_count(reg, NULL), BREAKER_MAX_BREAKERS);
	ck_assert_int_eq(acq(reg, "one-too-many", NULL), ERM_LIMIT_EXCEEDED);
	ck_assert_int_eq(wnum(reg, "svc-9999", "failures"), 1);
	ck_assert_uint_eq(breakers_permits(reg), 0);
	breakers_free(reg);
}
END_TEST

/* ---- snapshots ---------------------------------------------------------- */

/* Snapshot name, throw the registry away, restore into a new one. */
static struct breakers *
restart(struct breakers *reg, const char *name,
    const struct breaker_config *c)
{
	json_t	*snap, *copy;
	char	*text, err[160];

	snap = breaker_snapshot(breaker_find(reg, name));
	ck_assert_ptr_nonnull(snap);
	/* Through text, as the store keeps it. */
	text = json_dumps(snap, JSON_COMPACT);
	json_decref(snap);
	breakers_free(reg);
	copy = json_loads(text, 0, NULL);
	free(text);
	reg = mkreg(c);
	ck_assert_msg(breaker_restore(reg, copy, err, sizeof(err)) == 0,
	    "%s", err);
	json_decref(copy);
	return (reg);
}

/*
 * With on_outcome set, every outcome the window takes is handed to it; one
 * that only moves the window calls on_change no more, and anything else
 * durable (a last_error, a state change) still goes to on_change too.
 */
START_TEST(test_on_outcome)
{
	struct breaker_config	 c;
	struct breakers		*reg;
	char			 p[BREAKER_PERMIT_MAX];
	json_t			*err = json_pack("{s:s}", "message", "boom");

	memset(&outs, 0, sizeof(outs));
	breaker_config_defaults(&c);
	cset(&c, "failure_threshold", "3");
	cset(&c, "slow_call_ms", "100");
	reg = mkreg(&c);
	breakers_set_hooks(reg, &journal_hooks);
	ck_assert_int_eq(acq(reg, "cb", p), 0);		/* a new breaker */
	ck_assert_int_eq(ev.changes, 1);
	ck_assert(rec_full(reg, "cb", p, OUTCOME_SUCCESS, 250, CAT_NONE,
	    NULL));
	ck_assert_int_eq(ev.changes, 1);
	ck_assert_int_eq(outs.n, 1);
	ck_assert_str_eq(outs.t[0].name, "cb");
	ck_assert_int_eq(outs.t[0].failure, 0);
	ck_assert_int_eq(outs.t[0].slow, 1);
	ck_assert_uint_eq(outs.t[0].at, t0);
	clock_advance(5);
	ck_assert(rec(reg, "cb", NULL, OUTCOME_FAILURE));	/* no error */
	ck_assert_int_eq(outs.n, 2);
	ck_assert_int_eq(outs.t[1].failure, 1);
	ck_assert_int_eq(outs.t[1].slow, 0);
	ck_assert_uint_eq(outs.t[1].at, t0 + 5);
	ck_assert_int_eq(ev.changes, 1);
	/* last_error is for the snapshot; the window's part is logged. */
	ck_assert(rec_full(reg, "cb", NULL, OUTCOME_FAILURE, -1,
	    CAT_NETWORK_ERROR, err));
	ck_assert_int_eq(outs.n, 3);
	ck_assert_int_eq(ev.changes, 2);
	/* A failure that opens the breaker: logged, and a state change. */
	ck_assert(rec(reg, "cb", NULL, OUTCOME_FAILURE));
	ck_assert_int_eq(st(reg, "cb"), BRK_OPEN);
	ck_assert_int_eq(outs.n, 4);
	ck_assert_int_eq(ev.changes, 3);
	/* Ignored outcomes change nothing durable. */
	ck_assert(rec(reg, "other", NULL, OUTCOME_IGNORED));
	ck_assert_int_eq(outs.n, 4);
	json_decref(err);
	breakers_free(reg);
}
END_TEST

/*
 * A snapshot plus the outcomes after it, replayed, give the window the
 * breaker had; replaying judges nothing, and refuses what cannot belong.
 */
START_TEST(test_replay_outcome)
{
	struct breaker_config	 c;
	struct breakers		*reg;
	json_t			*before, *after;
	int			 i, from, to;

	memset(&outs, 0, sizeof(outs));
	breaker_config_defaults(&c);
	cset(&c, "window", "count");
	cset(&c, "window_size", "5");
	cset(&c, "failure_rate_threshold", "100");
	cset(&c, "slow_call_ms", "100");
	reg = mkreg(&c);
	breakers_set_hooks(reg, &journal_hooks);
	for (i = 0; i < 3; i++)
		call_d(reg, "cb", i == 1 ? OUTCOME_FAILURE : OUTCOME_SUCCESS,
		    i * 80);
	from = outs.n;		/* the snapshot below includes these */
	for (i = 0; i < 6; i++)
		call_d(reg, "cb", i % 2 ? OUTCOME_FAILURE : OUTCOME_SUCCESS,
		    i * 40);
	ck_assert_int_eq(outs.n, 9);
	to = outs.n;
	before = get(reg, "cb");
	/* The snapshot is taken after the first three only. */
	breakers_free(reg);
	reg = mkreg(&c);
	breakers_set_hooks(reg, &journal_hooks);
	for (i = 0; i < 3; i++)
		call_d(reg, "cb", i == 1 ? OUTCOME_FAILURE : OUTCOME_SUCCESS,
		    i * 80);
	reg = restart(reg, "cb", &c);
	for (i = from; i < to; i++)
		ck_assert_int_eq(breaker_replay_outcome(reg, "cb",
		    outs.t[i].failure, outs.t[i].slow, outs.t[i].at, 0), 0);
	after = get(reg, "cb");
	ck_assert_msg(json_equal(json_object_get(before, "window"),
	    json_object_get(after, "window")), "%s vs %s",
	    json_dumps(json_object_get(before, "window"), 0),
	    json_dumps(json_object_get(after, "window"), 0));
	ck_assert_int_eq(wnum(reg, "cb", "calls"), 5);
	ck_assert_int_eq(wnum(reg, "cb", "failures"), 3);
	ck_assert_int_eq(wnum(reg, "cb", "slow_calls"), 3);
	json_decref(before);
	json_decref(after);
	ck_assert_int_eq(breaker_replay_outcome(reg, "nobody", 0, 0, t0, 0),
	    -1);
	/* With create, a breaker made since the last snapshot is made
	 * again, closed, its last call at the outcome's time. */
	ck_assert_int_eq(breaker_replay_outcome(reg, "fresh", 1, 0, t0, 1), 0);
	ck_assert_int_eq(breaker_replay_outcome(reg, "fresh", 0, 1, t0 + 5,
	    1), 0);
	ck_assert_int_eq(st(reg, "fresh"), BRK_CLOSED);
	ck_assert_int_eq(wnum(reg, "fresh", "calls"), 2);
	ck_assert_int_eq(wnum(reg, "fresh", "failures"), 1);
	ck_assert_int_eq(wnum(reg, "fresh", "slow_calls"), 1);
	ck_assert_int_eq(breaker_replay_outcome(reg, "not a name", 0, 0, t0,
	    1), -1);
	breakers_free(reg);

	/* Replaying never judges: a threshold crossed stays unjudged. */
	breaker_config_defaults(&c);
	cset(&c, "failure_threshold", "2");
	reg = mkreg(&c);
	call(reg, "k", OUTCOME_SUCCESS);
	ck_assert_int_eq(breaker_replay_outcome(reg, "k", 1, 0, t0, 0), 0);
	ck_assert_int_eq(breaker_replay_outcome(reg, "k", 1, 0, t0, 0), 0);
	ck_assert_int_eq(st(reg, "k"), BRK_CLOSED);
	ck_assert_int_eq(wnum(reg, "k", "consecutive_failures"), 2);
	/* An open breaker takes none. */
	ck_assert_int_eq(breaker_force(reg, "k", BRK_FORCED_OPEN, NULL), 0);
	ck_assert_int_eq(breaker_replay_outcome(reg, "k", 0, 0, t0, 0), -1);
	breakers_free(reg);

	/* Time windows: into the bucket of its second, unless gone. */
	breaker_config_defaults(&c);
	cset(&c, "window", "time");
	cset(&c, "window_size", "10");
	reg = mkreg(&c);
	call(reg, "t", OUTCOME_SUCCESS);			/* second 0 */
	clock_advance(12000);
	call(reg, "t", OUTCOME_SUCCESS);			/* second 12 */
	ck_assert_int_eq(breaker_replay_outcome(reg, "t", 1, 0, t0 + 1000, 0),
	    -1);						/* left */
	ck_assert_int_eq(breaker_replay_outcome(reg, "t", 1, 0, t0 + 5000, 0),
	    0);
	ck_assert_int_eq(wnum(reg, "t", "calls"), 2);
	ck_assert_int_eq(wnum(reg, "t", "failures"), 1);
	clock_advance(3000);			/* second 15: second 5 left */
	ck_assert_int_eq(wnum(reg, "t", "calls"), 1);
	ck_assert_int_eq(wnum(reg, "t", "failures"), 0);
	breakers_free(reg);
}
END_TEST

/*
 * An eviction in the log replayed: the breaker goes with what it had, and
 * the outcomes after make it anew. One a section names now is there from
 * the start, as a new one with the section's config.
 */
START_TEST(test_replay_evicted)
{
	struct breaker_config	 c, sc;
	struct breaker_section	 sec;
	struct breakers		*reg;
	uint64_t		 t0 = clock_now_ms(), mask = 0;
	char			 err[160];

	breaker_config_defaults(&c);
	cset(&c, "failure_threshold", "3");
	reg = mkreg(&c);
	call(reg, "old", OUTCOME_FAILURE);
	call(reg, "old", OUTCOME_FAILURE);
	reg = restart(reg, "old", &c);
	ck_assert_int_eq(wnum(reg, "old", "consecutive_failures"), 2);
	breaker_replay_evicted(reg, "old");
	ck_assert_ptr_null(breaker_find(reg, "old"));
	breaker_replay_evicted(reg, "never");	/* nothing to do */
	ck_assert_int_eq(breaker_replay_outcome(reg, "old", 1, 0, t0, 0), -1);
	ck_assert_int_eq(breaker_replay_outcome(reg, "old", 1, 0, t0, 1), 0);
	ck_assert_int_eq(wnum(reg, "old", "consecutive_failures"), 1);
	ck_assert_int_eq(wnum(reg, "old", "calls"), 1);

	/* A section added since names it. */
	call(reg, "db", OUTCOME_FAILURE);
	reg = restart(reg, "db", &c);
	breaker_config_defaults(&sc);
	ck_assert_int_eq(breaker_config_set(&sc, &mask, "failure_threshold",
	    "9", err, sizeof(err)), 0);
	sec.name = "db";
	sec.cfg = sc;
	sec.mask = mask;
	ck_assert_int_eq(breakers_apply_config(reg, &c, &sec, 1, err,
	    sizeof(err)), 0);
	ck_assert_int_eq(wnum(reg, "db", "calls"), 1);
	breaker_replay_evicted(reg, "db");
	ck_assert_ptr_nonnull(breaker_find(reg, "db"));
	ck_assert_int_eq(wnum(reg, "db", "calls"), 0);
	ck_assert_int_eq(breaker_config(breaker_find(reg, "db"))->
	    failure_threshold, 9);
	breakers_free(reg);
}
END_TEST

/* b's snapshot is want (which it consumes). */
static void
expect_snapshot(struct breakers *reg, const char *name, json_t *want)
{
	json_t	*got = breaker_snapshot(breaker_find(reg, name));

	ck_assert_msg(got != NULL && json_equal(got, want), "snapshot %s, "
	    "want %s", json_dumps(got, JSON_COMPACT), json_dumps(want,
	    JSON_COMPACT));
	json_decref(got);
	json_decref(want);
}

/*
 * The snapshot, every member: a count window's ring (a digit a call, bit
 * 0 failure, bit 1 slow) with last_error, and a time window's buckets
 * with the breaker.configure overrides.
 */
START_TEST(test_snapshot_text)
{
	struct breaker_config	 c;
	struct breakers		*reg;
	struct param_err	 e;
	json_t			*err = json_pack("{s:s}", "errno", "EIO"), *cfg;
	uint64_t		 t0 = clock_now_ms();

	breaker_config_defaults(&c);
	cset(&c, "window", "count");
	cset(&c, "window_size", "4");
	cset(&c, "failure_rate_threshold", "100");
	cset(&c, "slow_call_ms", "100");
	reg = mkreg(&c);
	call_d(reg, "cb", OUTCOME_SUCCESS, 250);
	ck_assert(rec_full(reg, "cb", NULL, OUTCOME_FAILURE, -1, CAT_NONE,
	    err));
	expect_snapshot(reg, "cb", json_pack("{s:i, s:s, s:s, s:i, s:i, s:i, "
	    "s:I, s:i, s:{s:s, s:i, s:i, s:i, s:i, s:i, s:s}, s:{s:i, s:i, "
	    "s:i, s:i, s:i, s:b}, s:O}", "v", 1, "name", "cb", "state",
	    "closed", "generation", 0, "open_count", 0, "opened_at", 0,
	    "state_since", (json_int_t)t0, "not_permitted", 0, "window",
	    "type", "count", "size", 4, "calls", 2, "failures", 1,
	    "slow_calls", 1, "consecutive_failures", 1, "ring", "21",
	    "half_open", "outstanding", 0, "calls", 0, "failures", 0,
	    "slow_calls", 0, "consecutive_failures", 0, "shown", 0,
	    "last_error", err));
	breakers_free(reg);

	breaker_config_defaults(&c);
	cset(&c, "window", "time");
	cset(&c, "window_size", "10");
	cset(&c, "failure_rate_threshold", "100");
	reg = mkreg(&c);
	call(reg, "t", OUTCOME_SUCCESS);
	clock_advance(1000);
	call(reg, "t", OUTCOME_FAILURE);
	cfg = json_pack("{s:i}", "failure_threshold", 7);
	ck_assert_int_eq(breaker_configure(reg, "t", cfg, &e, NULL), 0);
	expect_snapshot(reg, "t", json_pack("{s:i, s:s, s:s, s:i, s:i, s:i, "
	    "s:I, s:i, s:{s:s, s:i, s:i, s:i, s:i, s:i, s:[[I, i, i, i], "
	    "[I, i, i, i]]}, s:{s:i, s:i, s:i, s:i, s:i, s:b}, s:O}", "v", 1,
	    "name", "t", "state", "closed", "generation", 0, "open_count", 0,
	    "opened_at", 0, "state_since", (json_int_t)t0, "not_permitted", 0,
	    "window", "type", "time", "size", 10, "calls", 2, "failures", 1,
	    "slow_calls", 0, "consecutive_failures", 1, "buckets",
	    (json_int_t)(t0 / 1000), 1, 0, 0, (json_int_t)(t0 / 1000 + 1), 1,
	    1, 0, "half_open", "outstanding", 0, "calls", 0, "failures", 0,
	    "slow_calls", 0, "consecutive_failures", 0, "shown", 0, "config",
	    cfg));
	json_decref(cfg);
	json_decref(err);
	breakers_free(reg);
}
END_TEST

START_TEST(test_snapshot_open)
{
	struct breaker_config	 c;
	struct breakers		*reg;

	breaker_config_defaults(&c);
	cset(&c, "failure_threshold", "1");
	cset(&c, "recovery_backoff", "2");
	reg = mkreg(&c);
	call(reg, "cb", OUTCOME_FAILURE);
	clock_advance(60000);
	call(reg, "cb", OUTCOME_FAILURE);	/* open_count 2: 120 s */
	clock_advance(20000);
	ck_assert_int_eq(gint(reg, "cb", "retry_after_ms"), 100000);
	reg = restart(reg, "cb", &c);
	ev.n = 0;
	/* Open for the remainder of its timeout. */
	ck_assert_int_eq(st(reg, "cb"), BRK_OPEN);
	ck_assert_int_eq(gint(reg, "cb", "retry_after_ms"), 100000);
	ck_assert_int_eq(gint(reg, "cb", "open_count"), 2);
	ck_assert_int_eq(gint(reg, "cb", "generation"), 3);
	ck_assert_int_eq(gint(reg, "cb", "opened_at"), (int64_t)t0 + 60000);
	ck_assert_int_eq(acq(reg, "cb", NULL), ERM_BREAKER_OPEN);
	clock_advance(99999);
	ck_assert_int_eq(breaker_state(breaker_find(reg, "cb")), BRK_OPEN);
	clock_advance(1);
	ck_assert_int_eq(breaker_state(breaker_find(reg, "cb")), BRK_HALF_OPEN);
	ck_assert_int_eq(ev.n, 1);
	ck_assert_uint_eq(ev.t[0].at, t0 + 60000 + 120000);
	breakers_free(reg);
}
END_TEST

/* Down longer than the timeout: half-open at once, and the owner hears. */
START_TEST(test_snapshot_open_expired)
{
	struct breaker_config	 c;
	struct breakers		*reg;
	json_t			*snap;
	char			 err[160];

	breaker_config_defaults(&c);
	cset(&c, "failure_threshold", "1");
	reg = mkreg(&c);
	call(reg, "cb", OUTCOME_FAILURE);
	snap = breaker_snapshot(breaker_find(reg, "cb"));
	breakers_free(reg);
	clock_advance(3600000);			/* the daemon was down */
	memset(&ev, 0, sizeof(ev));
	reg = mkreg(&c);
	ck_assert_int_eq(breaker_restore(reg, snap, err, sizeof(err)), 0);
	json_decref(snap);
	ck_assert_int_eq(breaker_state(breaker_find(reg, "cb")), BRK_HALF_OPEN);
	ck_assert_int_eq(ev.n, 1);
	expect_event(0, "cb", BRK_OPEN, BRK_HALF_OPEN, "recovery_timeout");
	ck_assert_int_eq(ev.changes, 1);
	breakers_free(reg);
}
END_TEST

/* Trial leases out at the stop count as failures. */
START_TEST(test_snapshot_half_open)
{
	struct breaker_config	 c;
	struct breakers		*reg;

	breaker_config_defaults(&c);
	cset(&c, "window", "count");
	cset(&c, "half_open_max_calls", "4");
	reg = mkreg(&c);
	to_half_open(reg, "cb");
	call(reg, "cb", OUTCOME_SUCCESS);
	call(reg, "cb", OUTCOME_SUCCESS);
	ck_assert_int_eq(acq(reg, "cb", NULL), 0);
	reg = restart(reg, "cb", &c);
	/* 2 successes, 1 lost lease = failure: 1/4 < 50 %, still trying. */
	ck_assert_int_eq(st(reg, "cb"), BRK_HALF_OPEN);
	ck_assert_int_eq(wnum(reg, "cb", "calls"), 3);
	ck_assert_int_eq(wnum(reg, "cb", "failures"), 1);
	call(reg, "cb", OUTCOME_SUCCESS);
	ck_assert_int_eq(st(reg, "cb"), BRK_CLOSED);

	/* Consecutive: one lost lease re-opens. */
	breakers_free(reg);
	breaker_config_defaults(&c);
	reg = mkreg(&c);
	to_half_open(reg, "cb");
	ck_assert_int_eq(acq(reg, "cb", NULL), 0);
	reg = restart(reg, "cb", &c);
	ck_assert_int_eq(st(reg, "cb"), BRK_OPEN);
	breakers_free(reg);
}
END_TEST

/* Window counters survive, and behave the same afterwards. */
START_TEST(test_snapshot_windows)
{
	struct breaker_config	 c;
	struct breakers		*reg;
	json_t			*before, *after;
	int			 i;

	breaker_config_defaults(&c);
	cset(&c, "window", "count");
	cset(&c, "window_size", "6");
	cset(&c, "slow_call_ms", "100");
	reg = mkreg(&c);
	for (i = 0; i < 8; i++)
		call_d(reg, "cb", i % 3 ? OUTCOME_SUCCESS : OUTCOME_FAILURE,
		    i * 30);
	before = get(reg, "cb");
	reg = restart(reg, "cb", &c);
	after = get(reg, "cb");
	ck_assert_msg(json_equal(json_object_get(before, "window"),
	    json_object_get(after, "window")), "%s vs %s",
	    json_dumps(json_object_get(before, "window"), 0),
	    json_dumps(json_object_get(after, "window"), 0));
	json_decref(before);
	json_decref(after);
	/* The ring order came back too: the oldest leave first. */
	ck_assert_int_eq(wnum(reg, "cb", "failures"), 2);
	call(reg, "cb", OUTCOME_SUCCESS);	/* pushes out i=2 (S) */
	ck_assert_int_eq(wnum(reg, "cb", "failures"), 2);
	call(reg, "cb", OUTCOME_SUCCESS);	/* pushes out i=3 (F) */
	ck_assert_int_eq(wnum(reg, "cb", "failures"), 1);
	breakers_free(reg);

	/* Time windows: buckets keep their seconds. */
	breaker_config_defaults(&c);
	cset(&c, "window", "time");
	cset(&c, "window_size", "10");
	reg = mkreg(&c);
	call(reg, "t", OUTCOME_FAILURE);		/* second 0 */
	clock_advance(3000);
	call(reg, "t", OUTCOME_SUCCESS);		/* second 3 */
	call(reg, "t", OUTCOME_FAILURE);
	clock_advance(2000);				/* second 5 */
	reg = restart(reg, "t", &c);
	ck_assert_int_eq(wnum(reg, "t", "calls"), 3);
	ck_assert_int_eq(wnum(reg, "t", "failures"), 2);
	clock_advance(5000);				/* second 10 */
	ck_assert_int_eq(wnum(reg, "t", "calls"), 2);
	ck_assert_int_eq(wnum(reg, "t", "failures"), 1);
	clock_advance(3000);				/* second 13 */
	ck_assert_int_eq(wnum(reg, "t", "calls"), 0);
	breakers_free(reg);

	/* A window whose config changed meanwhile starts empty. */
	breaker_config_defaults(&c);
	cset(&c, "failure_threshold", "3");
	reg = mkreg(&c);
	call(reg, "k", OUTCOME_FAILURE);
	call(reg, "k", OUTCOME_FAILURE);
	cset(&c, "window", "count");
	reg = restart(reg, "k", &c);
	ck_assert_int_eq(wnum(reg, "k", "calls"), 0);
	breakers_free(reg);

	/* Consecutive windows keep their streak. */
	breaker_config_defaults(&c);
	cset(&c, "failure_threshold", "3");
	reg = mkreg(&c);
	call(reg, "k", OUTCOME_FAILURE);
	call(reg, "k", OUTCOME_FAILURE);
	reg = restart(reg, "k", &c);
	ck_assert_int_eq(wnum(reg, "k", "consecutive_failures"), 2);
	call(reg, "k", OUTCOME_FAILURE);
	ck_assert_int_eq(st(reg, "k"), BRK_OPEN);
	breakers_free(reg);
}
END_TEST

START_TEST(test_snapshot_config_and_errors)
{
	struct breakers		*reg = mkreg(NULL);
	struct param_err	 e;
	json_t			*cfg, *snap, *err;
	char			 msg[160];

	cfg = json_pack("{s:i, s:[s]}", "failure_threshold", 2, "ignore",
	    "QUOTA_EXCEEDED");
	ck_assert_int_eq(breaker_configure(reg, "cb", cfg, &e, NULL), 0);
	json_decref(cfg);
	err = json_pack("{s:i}", "http_status", 503);
	ck_assert(rec_full(reg, "cb", NULL, OUTCOME_FAILURE, -1,
	    CAT_NETWORK_ERROR, err));
	snap = breaker_snapshot(breaker_find(reg, "cb"));
	ck_assert_int_eq(json_object_size(json_object_get(snap, "config")), 2);
	json_decref(snap);
	reg = restart(reg, "cb", NULL);
	ck_assert_int_eq(breaker_config(breaker_find(reg, "cb"))->
	    failure_threshold, 2);
	ck_assert_uint_eq(breaker_config(breaker_find(reg, "cb"))->ignore,
	    CATSET_BIT(CAT_QUOTA_EXCEEDED));
	snap = get(reg, "cb");
	ck_assert(json_equal(json_object_get(snap, "last_error"), err));
	json_decref(snap);
	json_decref(err);
	/* A configured breaker is not evicted after a restart either. */
	clock_advance(7200000);
	ck_assert_ptr_nonnull(breaker_find(reg, "cb"));

	/* Bad snapshots are refused with a reason. */
	snap = json_pack("{s:i, s:s, s:s}", "v", 2, "name", "x", "state",
	    "closed");
	ck_assert_int_eq(breaker_restore(reg, snap, msg, sizeof(msg)), -1);
	ck_assert_ptr_nonnull(strstr(msg, "version"));
	json_decref(snap);
	snap = json_pack("{s:i, s:s, s:s}", "v", 1, "name", "x", "state",
	    "ajar");
	ck_assert_int_eq(breaker_restore(reg, snap, msg, sizeof(msg)), -1);
	ck_assert_ptr_nonnull(strstr(msg, "unknown state"));
	json_decref(snap);
	snap = json_pack("{s:i, s:s, s:s}", "v", 1, "name", "x", "state",
	    "open");
	ck_assert_int_eq(breaker_restore(reg, snap, msg, sizeof(msg)), -1);
	ck_assert_ptr_nonnull(strstr(msg, "generation"));
	json_decref(snap);
	ck_assert_ptr_null(breaker_find(reg, "x"));
	breakers_free(reg);
}
END_TEST

static Suite *
breaker_suite(void)
{
	Suite	*s = suite_create("breaker");
	TCase	*tc;

	tc = tcase_create("config");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_names);
	tcase_add_test(tc, test_config_defaults);
	tcase_add_test(tc, test_config_set);
	tcase_add_test(tc, test_config_layers);
	tcase_add_test(tc, test_configure);
	suite_add_tcase(s, tc);

	tc = tcase_create("states");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_consecutive);
	tcase_add_test(tc, test_half_open_failure_reopens);
	tcase_add_test(tc, test_half_open_lazily);
	tcase_add_test(tc, test_half_open_permits);
	tcase_add_test(tc, test_recovery_backoff);
	tcase_add_test(tc, test_timer_chain);
	tcase_add_test(tc, test_half_open_max_wait);
	tcase_add_test(tc, test_forced_open);
	tcase_add_test(tc, test_disabled);
	tcase_add_test(tc, test_metrics_only);
	tcase_add_test(tc, test_force_matrix);
	tcase_add_test(tc, test_reset);
	tcase_add_test(tc, test_on_change);
	tcase_add_test(tc, test_on_outcome);
	tcase_add_test(tc, test_replay_outcome);
	suite_add_tcase(s, tc);

	tc = tcase_create("windows");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_count_window);
	tcase_add_test(tc, test_count_ring);
	tcase_add_test(tc, test_slow_calls);
	tcase_add_test(tc, test_time_window);
	tcase_add_test(tc, test_time_buckets);
	tcase_add_test(tc, test_half_open_rate);
	tcase_add_test(tc, test_ignored_half_open);
	tcase_add_test(tc, test_ignored_closed);
	suite_add_tcase(s, tc);

	tc = tcase_create("permits");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_generations);
	tcase_add_test(tc, test_free_standing);
	tcase_add_test(tc, test_lease_ttl);
	tcase_add_test(tc, test_lease_owner);
	tcase_add_test(tc, test_permits_reused);
	tcase_add_test(tc, test_lease_from_later);
	tcase_add_test(tc, test_lease_owner_reopens);
	suite_add_tcase(s, tc);

	tc = tcase_create("registry");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_get_shape);
	tcase_add_test(tc, test_list_and_counts);
	tcase_add_test(tc, test_eviction);
	tcase_add_test(tc, test_max_breakers);
	tcase_add_test(tc, test_many_breakers);
	suite_add_tcase(s, tc);

	tc = tcase_create("durability");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_replay_evicted);
	tcase_add_test(tc, test_snapshot_text);
	tcase_add_test(tc, test_snapshot_open);
	tcase_add_test(tc, test_snapshot_open_expired);
	tcase_add_test(tc, test_snapshot_half_open);
	tcase_add_test(tc, test_snapshot_windows);
	tcase_add_test(tc, test_snapshot_config_and_errors);
	suite_add_tcase(s, tc);
	return (s);
}

int
main(void)
{
	SRunner	*sr;
	int	 failed;

	sr = srunner_create(breaker_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return (failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE);
}
