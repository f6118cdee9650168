/*
 * Unit tests of daemon/retry.c: policy keys and defaults, each backoff and
 * jitter (exact values, and bounds and means over many seeded draws), the
 * Retry-After floor, every reason, and the retry budget's arithmetic and
 * sliding window on the manual clock.
 */

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>
#include <jansson.h>

#include "clock.h"
#include "retry.h"

#define LEN(a)	(sizeof(a) / sizeof((a)[0]))

static void
setup(void)
{
	uint64_t	now;

	clock_init(NULL, 1);
	/* Start on a 10 s boundary so budget slots line up with the test. */
	now = clock_now_ms();
	clock_advance(10000 - now % 10000);
}

static void
teardown(void)
{
	clock_shutdown();
}

static void
pset(struct retry_policy *p, const char *key, const char *value)
{
	char	err[160];

	ck_assert_msg(retry_policy_set(p, key, value, err, sizeof(err)) == 0,
	    "%s = %s: %s", key, value, err);
}

/* A policy without jitter: delays are exact. */
static void
plain_policy(struct retry_policy *p)
{
	retry_policy_defaults(p);
	p->jitter = JITTER_NONE;
}

static struct retry_decision
decide(const struct retry_policy *p, struct retry_budget *b, const char *key,
    int64_t attempt, enum category cat, int64_t elapsed, int64_t prev,
    int64_t ra)
{
	struct retry_decision	d;
	struct retry_rng	rng;

	retry_rng_seed(&rng, 1);
	ck_assert_int_eq(retry_decide(p, b, key, attempt, cat, elapsed, prev,
	    ra, &rng, &d), 0);
	return (d);
}

/* ---- policies ----------------------------------------------------------- */

START_TEST(test_defaults)
{
	struct retry_policy	 p;
	json_t			*j, *want;

	retry_policy_defaults(&p);
	j = retry_policy_to_json(&p);
	want = json_pack("{s:i, s:i, s:i, s:s, s:i, s:s, "
	    "s:[s, s, s, s, s], s:i, s:b, s:i, s:i, s:i, s:i}",
	    "max_attempts", 3, "base_delay_ms", 1000, "max_delay_ms", 60000,
	    "backoff", "exponential", "factor", 2, "jitter", "full",
	    "retry_on", "NETWORK_ERROR", "STORAGE_ERROR", "TIMEOUT_ERROR",
	    "RATE_LIMIT_ERROR", "SYSTEM_ERROR",
	    "max_elapsed_ms", 0, "respect_retry_after", 1,
	    "max_retry_after_ms", 300000, "budget_percent", 20,
	    "budget_min_per_s", 3, "budget_window_ms", 10000);
	ck_assert_msg(json_equal(j, want), "%s", json_dumps(j, JSON_SORT_KEYS));
	json_decref(j);
	json_decref(want);
}
END_TEST

START_TEST(test_policy_set)
{
	struct retry_policy	p;
	char			err[160];

	retry_policy_defaults(&p);
	pset(&p, "max_attempts", "7");
	pset(&p, "base_delay_ms", "250");
	pset(&p, "max_delay_ms", "0");
	pset(&p, "backoff", "linear");
	pset(&p, "factor", "1.5");
	pset(&p, "jitter", "decorrelated");
	pset(&p, "retry_on", "NETWORK_ERROR, QUOTA_EXCEEDED");
	pset(&p, "max_elapsed_ms", "90000");
	pset(&p, "respect_retry_after", "no");
	pset(&p, "max_retry_after_ms", "1000");
	pset(&p, "budget_percent", "12.5");
	pset(&p, "budget_min_per_s", "0.5");
	pset(&p, "budget_window_ms", "2000");
	ck_assert_int_eq(p.max_attempts, 7);
	ck_assert_int_eq(p.base_delay_ms, 250);
	ck_assert_int_eq(p.max_delay_ms, 0);
	ck_assert_int_eq(p.backoff, BACKOFF_LINEAR);
	ck_assert_double_eq(p.factor, 1.5);
	ck_assert_int_eq(p.jitter, JITTER_DECORRELATED);
	ck_assert_uint_eq(p.retry_on, CATSET_BIT(CAT_NETWORK_ERROR) |
	    CATSET_BIT(CAT_QUOTA_EXCEEDED));
	ck_assert_int_eq(p.max_elapsed_ms, 90000);
	ck_assert_int_eq(p.respect_retry_after, 0);
	ck_assert_int_eq(p.max_retry_after_ms, 1000);
	ck_assert_double_eq(p.budget_percent, 12.5);
	ck_assert_double_eq(p.budget_min_per_s, 0.5);
	ck_assert_int_eq(p.budget_window_ms, 2000);
	pset(&p, "respect_retry_after", "on");
	ck_assert_int_eq(p.respect_retry_after, 1);
	pset(&p, "retry_on", "");
	ck_assert_uint_eq(p.retry_on, 0);

	ck_assert_int_eq(retry_policy_set(&p, "max_attempt", "3", err,
	    sizeof(err)), -1);
	ck_assert_str_eq(err, "unknown retry key 'max_attempt'");
	ck_assert_int_eq(retry_policy_set(&p, "max_attempts", "0", err,
	    sizeof(err)), -1);
	ck_assert_str_eq(err, "max_attempts must be between 1 and 10000");
	ck_assert_int_eq(retry_policy_set(&p, "max_attempts", "3x", err,
	    sizeof(err)), -1);
	ck_assert_str_eq(err, "max_attempts: '3x' is not an integer");
	ck_assert_int_eq(retry_policy_set(&p, "max_attempts", "", err,
	    sizeof(err)), -1);
	ck_assert_int_eq(retry_policy_set(&p, "base_delay_ms", "-1", err,
	    sizeof(err)), -1);
	ck_assert_int_eq(retry_policy_set(&p, "factor", "0.5", err,
	    sizeof(err)), -1);
	ck_assert_int_eq(retry_policy_set(&p, "factor", "nan", err,
	    sizeof(err)), -1);
	ck_assert_int_eq(retry_policy_set(&p, "backoff", "fibonacci", err,
	    sizeof(err)), -1);
	ck_assert_str_eq(err, "backoff: unknown value 'fibonacci' (one of: "
	    "constant, linear, exponential)");
	ck_assert_int_eq(retry_policy_set(&p, "jitter", "FULL", err,
	    sizeof(err)), -1);
	ck_assert_int_eq(retry_policy_set(&p, "respect_retry_after", "maybe",
	    err, sizeof(err)), -1);
	ck_assert_int_eq(retry_policy_set(&p, "retry_on", "NETWORK", err,
	    sizeof(err)), -1);
	ck_assert_str_eq(err, "retry_on: unknown category 'NETWORK'");
	ck_assert_int_eq(retry_policy_set(&p, "budget_window_ms", "9", err,
	    sizeof(err)), -1);
	/* Nothing above changed what was set. */
	ck_assert_int_eq(p.max_attempts, 7);
	ck_assert_double_eq(p.factor, 1.5);
}
END_TEST

START_TEST(test_policy_json)
{
	struct retry_policy	 base, p;
	struct param_err	 e;
	json_t			*o;

	retry_policy_defaults(&base);
	o = json_pack("{s:i, s:s, s:[s], s:f, s:b}", "max_attempts", 5,
	    "jitter", "none", "retry_on", "TIMEOUT_ERROR", "factor", 3.0,
	    "respect_retry_after", 0);
	ck_assert_int_eq(retry_policy_from_json(&base, o, "policy", &p, &e),
	    0);
	ck_assert_int_eq(p.max_attempts, 5);
	ck_assert_int_eq(p.jitter, JITTER_NONE);
	ck_assert_uint_eq(p.retry_on, CATSET_BIT(CAT_TIMEOUT_ERROR));
	ck_assert_double_eq(p.factor, 3.0);
	ck_assert_int_eq(p.respect_retry_after, 0);
	/* The rest is the base's. */
	ck_assert_int_eq(p.base_delay_ms, 1000);
	ck_assert_int_eq(p.budget_window_ms, 10000);
	json_decref(o);

	/* A comma string is accepted for retry_on too. */
	o = json_pack("{s:s}", "retry_on", "TIMEOUT_ERROR,NETWORK_ERROR");
	ck_assert_int_eq(retry_policy_from_json(&base, o, "policy", &p, &e),
	    0);
	ck_assert_uint_eq(p.retry_on, CATSET_BIT(CAT_TIMEOUT_ERROR) |
	    CATSET_BIT(CAT_NETWORK_ERROR));
	json_decref(o);

	static const struct {
		const char	*text;
		const char	*field;
	} bad[] = {
		{ "{\"max_attempt\": 3}", "policy.max_attempt" },
		{ "{\"max_attempts\": \"3\"}", "policy.max_attempts" },
		{ "{\"max_attempts\": 3.0}", "policy.max_attempts" },
		{ "{\"max_attempts\": 0}", "policy.max_attempts" },
		{ "{\"max_attempts\": null}", "policy.max_attempts" },
		{ "{\"factor\": \"2\"}", "policy.factor" },
		{ "{\"factor\": 0.9}", "policy.factor" },
		{ "{\"jitter\": \"random\"}", "policy.jitter" },
		{ "{\"backoff\": 1}", "policy.backoff" },
		{ "{\"retry_on\": [\"NOPE\"]}", "policy.retry_on" },
		{ "{\"retry_on\": [1]}", "policy.retry_on" },
		{ "{\"respect_retry_after\": 1}",
		    "policy.respect_retry_after" },
		{ "{\"budget_percent\": -1}", "policy.budget_percent" },
	};
	size_t		i;
	json_error_t	jerr;

	for (i = 0; i < LEN(bad); i++) {
		o = json_loads(bad[i].text, 0, &jerr);
		p = base;
		p.max_attempts = 99;
		ck_assert_msg(retry_policy_from_json(&base, o, "policy", &p,
		    &e) == -1, "%s accepted", bad[i].text);
		ck_assert_str_eq(e.field, bad[i].field);
		/* out is untouched on failure */
		ck_assert_int_eq(p.max_attempts, 99);
		json_decref(o);
	}
	o = json_string("x");
	ck_assert_int_eq(retry_policy_from_json(&base, o, "policy", &p, &e),
	    -1);
	ck_assert_str_eq(e.field, "policy");
	json_decref(o);

	/* Round trip: to_json then from_json gives the same policy. */
	base.factor = 1.25;
	base.jitter = JITTER_EQUAL;
	o = retry_policy_to_json(&base);
	retry_policy_defaults(&p);
	ck_assert_int_eq(retry_policy_from_json(&p, o, NULL, &p, &e), 0);
	ck_assert_mem_eq(&p, &base, sizeof(p));
	json_decref(o);
}
END_TEST

START_TEST(test_named_policies)
{
	struct retry_policies		*rp = retry_policies_new();
	const struct retry_policy	*p;
	char				 err[160];

	ck_assert_int_eq(retry_policies_set(rp, "upload", "max_attempts", "5",
	    err, sizeof(err)), 0);
	/* A default set after the section still reaches it... */
	ck_assert_int_eq(retry_policies_set(rp, NULL, "base_delay_ms", "200",
	    err, sizeof(err)), 0);
	/* ...except for the keys the section set itself. */
	ck_assert_int_eq(retry_policies_set(rp, NULL, "max_attempts", "9",
	    err, sizeof(err)), 0);
	p = retry_policies_get(rp, "upload");
	ck_assert_ptr_nonnull(p);
	ck_assert_int_eq(p->max_attempts, 5);
	ck_assert_int_eq(p->base_delay_ms, 200);
	p = retry_policies_get(rp, NULL);
	ck_assert_int_eq(p->max_attempts, 9);
	ck_assert_ptr_null(retry_policies_get(rp, "download"));
	ck_assert_uint_eq(retry_policies_count(rp), 1);
	ck_assert_str_eq(retry_policies_name(rp, 0), "upload");
	ck_assert_ptr_null(retry_policies_name(rp, 1));

	ck_assert_int_eq(retry_policies_set(rp, "bad name", "max_attempts",
	    "5", err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "bad policy name"));
	ck_assert_int_eq(retry_policies_set(rp, "upload", "nope", "5", err,
	    sizeof(err)), -1);
	ck_assert_int_eq(retry_policies_set(rp, "fresh", "max_attempts", "0",
	    err, sizeof(err)), -1);
	ck_assert_ptr_null(retry_policies_get(rp, "fresh"));
	retry_policies_free(rp);
}
END_TEST

/* ---- backoff ------------------------------------------------------------ */

START_TEST(test_backoff_exact)
{
	static const int64_t	expo[] = { 1000, 2000, 4000, 8000, 16000,
	    32000, 60000, 60000, 60000 };
	static const int64_t	lin[] = { 1000, 2000, 3000, 4000, 5000 };
	static const int64_t	f15[] = { 1000, 1500, 2250, 3375, 5062, 7593,
	    10000, 10000 };
	struct retry_policy	p;
	size_t			i;

	plain_policy(&p);
	for (i = 0; i < LEN(expo); i++)
		ck_assert_int_eq(retry_backoff_ms(&p, (int64_t)i + 1), expo[i]);
	/* Far past the cap, pow() overflows to inf: still the cap. */
	ck_assert_int_eq(retry_backoff_ms(&p, 5000), 60000);

	p.backoff = BACKOFF_LINEAR;
	p.max_delay_ms = 4500;
	for (i = 0; i < LEN(lin); i++)
		ck_assert_int_eq(retry_backoff_ms(&p, (int64_t)i + 1),
		    lin[i] < 4500 ? lin[i] : 4500);

	p.backoff = BACKOFF_CONSTANT;
	p.base_delay_ms = 750;
	for (i = 1; i <= 10; i++)
		ck_assert_int_eq(retry_backoff_ms(&p, (int64_t)i), 750);
	p.max_delay_ms = 500;
	ck_assert_int_eq(retry_backoff_ms(&p, 1), 500);

	/* Non-integer growth is rounded down. */
	p.backoff = BACKOFF_EXPONENTIAL;
	p.base_delay_ms = 1000;
	p.factor = 1.5;
	p.max_delay_ms = 10000;
	for (i = 0; i < LEN(f15); i++)
		ck_assert_int_eq(retry_backoff_ms(&p, (int64_t)i + 1), f15[i]);
}
END_TEST

/* The decision carries the same delay when there is no jitter. */
START_TEST(test_decision_delay_no_jitter)
{
	struct retry_policy	p;
	struct retry_decision	d;

	plain_policy(&p);
	p.max_attempts = 10;
	d = decide(&p, NULL, NULL, 1, CAT_NETWORK_ERROR, -1, -1, -1);
	ck_assert(d.retry);
	ck_assert_int_eq(d.delay_ms, 1000);
	ck_assert_int_eq(d.reason, RETRY_RETRYABLE);
	d = decide(&p, NULL, NULL, 4, CAT_NETWORK_ERROR, -1, -1, -1);
	ck_assert_int_eq(d.delay_ms, 8000);
	d = decide(&p, NULL, NULL, 9, CAT_NETWORK_ERROR, -1, -1, -1);
	ck_assert_int_eq(d.delay_ms, 60000);
}
END_TEST

/* ---- jitter, over many seeded draws ------------------------------------- */

#define DRAWS	200000

struct stats {
	int64_t	min, max;
	double	mean;
	int64_t	at_max;		/* draws equal to the upper bound */
};

static struct stats
draw(const struct retry_policy *p, int64_t attempt, int64_t prev,
    uint64_t seed)
{
	struct retry_rng	rng;
	struct retry_decision	d;
	struct stats		s = { INT64_MAX, INT64_MIN, 0, 0 };
	double			sum = 0;
	int			i;

	retry_rng_seed(&rng, seed);
	for (i = 0; i < DRAWS; i++) {
		ck_assert_int_eq(retry_decide(p, NULL, NULL, attempt,
		    CAT_TIMEOUT_ERROR, -1, prev, -1, &rng, &d), 0);
		ck_assert(d.retry);
		if (d.delay_ms < s.min)
			s.min = d.delay_ms;
		if (d.delay_ms > s.max)
			s.max = d.delay_ms;
		sum += (double)d.delay_ms;
	}
	s.mean = sum / DRAWS;
	return (s);
}

START_TEST(test_jitter_full)
{
	struct retry_policy	p;
	struct stats		s;

	retry_policy_defaults(&p);
	p.max_attempts = 10;
	s = draw(&p, 3, -1, 42);		/* d = 4000 */
	ck_assert_int_ge(s.min, 0);
	ck_assert_int_le(s.max, 4000);
	ck_assert_int_lt(s.min, 40);		/* the range is used in full */
	ck_assert_int_gt(s.max, 3960);
	ck_assert_msg(fabs(s.mean - 2000) < 20, "mean %f", s.mean);
	/* At the cap: U[0, 60000]. */
	s = draw(&p, 9, -1, 7);
	ck_assert_int_le(s.max, 60000);
	ck_assert_msg(fabs(s.mean - 30000) < 300, "mean %f", s.mean);
}
END_TEST

START_TEST(test_jitter_equal)
{
	struct retry_policy	p;
	struct stats		s;

	retry_policy_defaults(&p);
	p.max_attempts = 10;
	p.jitter = JITTER_EQUAL;
	s = draw(&p, 3, -1, 42);		/* d = 4000: [2000, 4000] */
	ck_assert_int_ge(s.min, 2000);
	ck_assert_int_le(s.max, 4000);
	ck_assert_int_lt(s.min, 2020);
	ck_assert_int_gt(s.max, 3980);
	ck_assert_msg(fabs(s.mean - 3000) < 15, "mean %f", s.mean);
	/* An odd d: [d/2 rounded down, d]. */
	p.backoff = BACKOFF_CONSTANT;
	p.base_delay_ms = 1001;
	s = draw(&p, 1, -1, 3);
	ck_assert_int_eq(s.min, 500);
	ck_assert_int_eq(s.max, 1001);
	/* d = 1: both values come up. */
	p.base_delay_ms = 1;
	s = draw(&p, 1, -1, 3);
	ck_assert_int_eq(s.min, 0);
	ck_assert_int_eq(s.max, 1);
}
END_TEST

START_TEST(test_jitter_decorrelated)
{
	struct retry_policy	p;
	struct stats		s;

	retry_policy_defaults(&p);
	p.max_attempts = 10;
	p.jitter = JITTER_DECORRELATED;
	/* First retry: prev is b, so U[1000, 3000]. */
	s = draw(&p, 1, -1, 42);
	ck_assert_int_ge(s.min, 1000);
	ck_assert_int_le(s.max, 3000);
	ck_assert_int_lt(s.min, 1020);
	ck_assert_int_gt(s.max, 2980);
	ck_assert_msg(fabs(s.mean - 2000) < 10, "mean %f", s.mean);
	/* prev 5000: U[1000, 15000], whatever the attempt number. */
	s = draw(&p, 5, 5000, 43);
	ck_assert_int_ge(s.min, 1000);
	ck_assert_int_le(s.max, 15000);
	ck_assert_msg(fabs(s.mean - 8000) < 60, "mean %f", s.mean);
	/* prev below b/3: U[b, max(b, 3*prev)] is just b. */
	s = draw(&p, 2, 100, 44);
	ck_assert_int_eq(s.min, 1000);
	ck_assert_int_eq(s.max, 1000);
	/* Capped at max_delay: U[1000, 300000] -> min(60000, .). */
	s = draw(&p, 2, 100000, 45);
	ck_assert_int_ge(s.min, 1000);
	ck_assert_int_eq(s.max, 60000);
	/* P(draw >= 60000) = 240001 / 299001, so the mean is known too. */
	ck_assert_msg(fabs(s.mean - (59000.0 / 299001 * 30500 +
	    240001.0 / 299001 * 60000)) < 300, "mean %f", s.mean);
}
END_TEST

START_TEST(test_jitter_none)
{
	struct retry_policy	p;
	struct stats		s;

	plain_policy(&p);
	p.max_attempts = 10;
	s = draw(&p, 2, -1, 1);
	ck_assert_int_eq(s.min, 2000);
	ck_assert_int_eq(s.max, 2000);
}
END_TEST

START_TEST(test_rng)
{
	struct retry_rng	a, b;
	int			i, counts[3] = { 0, 0, 0 };
	int64_t			v;

	retry_rng_seed(&a, 99);
	retry_rng_seed(&b, 99);
	for (i = 0; i < 100; i++)
		ck_assert_uint_eq(retry_rng_next(&a), retry_rng_next(&b));
	retry_rng_seed(&b, 100);
	ck_assert_uint_ne(retry_rng_next(&a), retry_rng_next(&b));
	ck_assert_int_eq(retry_rng_uniform(&a, 5, 5), 5);
	ck_assert_int_eq(retry_rng_uniform(&a, 5, 4), 5);
	for (i = 0; i < 30000; i++) {
		v = retry_rng_uniform(&a, 0, 2);
		ck_assert(v >= 0 && v <= 2);
		counts[v]++;
	}
	for (i = 0; i < 3; i++)
		ck_assert_msg(abs(counts[i] - 10000) < 400, "%d: %d", i,
		    counts[i]);
	v = retry_rng_uniform(&a, INT64_MIN, INT64_MAX);
	(void)v;
	retry_rng_seed_random(&a);
	retry_rng_seed_random(&b);
	ck_assert_uint_ne(retry_rng_next(&a), retry_rng_next(&b));
}
END_TEST

/* ---- Retry-After -------------------------------------------------------- */

START_TEST(test_retry_after)
{
	struct retry_policy	p;
	struct retry_decision	d;

	plain_policy(&p);
	p.max_attempts = 10;
	/* Raises the delay to at least that value... */
	d = decide(&p, NULL, NULL, 1, CAT_RATE_LIMIT_ERROR, -1, -1, 5000);
	ck_assert_int_eq(d.delay_ms, 5000);
	/* ...never lowers it... */
	d = decide(&p, NULL, NULL, 3, CAT_RATE_LIMIT_ERROR, -1, -1, 500);
	ck_assert_int_eq(d.delay_ms, 4000);
	d = decide(&p, NULL, NULL, 1, CAT_RATE_LIMIT_ERROR, -1, -1, 0);
	ck_assert_int_eq(d.delay_ms, 1000);
	/* ...may pass max_delay_ms... */
	d = decide(&p, NULL, NULL, 1, CAT_RATE_LIMIT_ERROR, -1, -1, 120000);
	ck_assert_int_eq(d.delay_ms, 120000);
	/* ...but is capped at max_retry_after_ms. */
	d = decide(&p, NULL, NULL, 1, CAT_RATE_LIMIT_ERROR, -1, -1, 400000);
	ck_assert_int_eq(d.delay_ms, 300000);
	p.max_retry_after_ms = 2000;
	d = decide(&p, NULL, NULL, 1, CAT_RATE_LIMIT_ERROR, -1, -1, 400000);
	ck_assert_int_eq(d.delay_ms, 2000);
	/* The cap is not a floor. */
	p.max_retry_after_ms = 500;
	d = decide(&p, NULL, NULL, 1, CAT_RATE_LIMIT_ERROR, -1, -1, 400000);
	ck_assert_int_eq(d.delay_ms, 1000);
	/* Ignored when respect_retry_after is off. */
	p.max_retry_after_ms = 300000;
	p.respect_retry_after = 0;
	d = decide(&p, NULL, NULL, 1, CAT_RATE_LIMIT_ERROR, -1, -1, 5000);
	ck_assert_int_eq(d.delay_ms, 1000);
	/* It applies after jitter: full jitter, floor 3000 -> >= 3000. */
	p.respect_retry_after = 1;
	p.jitter = JITTER_FULL;
	d = decide(&p, NULL, NULL, 1, CAT_RATE_LIMIT_ERROR, -1, -1, 3000);
	ck_assert_int_eq(d.delay_ms, 3000);
}
END_TEST

/* ---- reasons ------------------------------------------------------------ */

START_TEST(test_reasons)
{
	struct retry_policy	 p;
	struct retry_decision	 d;
	struct retry_budget	*b = retry_budget_new(0);
	json_t			*j;

	plain_policy(&p);
	/* attempt counts the failed one: 2 of 3 made, one more allowed. */
	d = decide(&p, b, NULL, 2, CAT_NETWORK_ERROR, -1, -1, -1);
	ck_assert(d.retry);
	ck_assert_int_eq(d.delay_ms, 2000);
	ck_assert_str_eq(retry_reason_name(d.reason), "retryable");
	d = decide(&p, b, NULL, 3, CAT_NETWORK_ERROR, -1, -1, -1);
	ck_assert(!d.retry);
	ck_assert_int_eq(d.delay_ms, 0);
	ck_assert_str_eq(retry_reason_name(d.reason), "exhausted");
	d = decide(&p, b, NULL, 4, CAT_NETWORK_ERROR, -1, -1, -1);
	ck_assert_str_eq(retry_reason_name(d.reason), "exhausted");
	/* exhausted is checked before non_retryable */
	d = decide(&p, b, NULL, 3, CAT_QUOTA_EXCEEDED, -1, -1, -1);
	ck_assert_str_eq(retry_reason_name(d.reason), "exhausted");
	d = decide(&p, b, NULL, 1, CAT_QUOTA_EXCEEDED, -1, -1, -1);
	ck_assert(!d.retry);
	ck_assert_int_eq(d.delay_ms, 0);
	ck_assert_str_eq(retry_reason_name(d.reason), "non_retryable");
	d = decide(&p, b, NULL, 1, CAT_FILE_NOT_FOUND, -1, -1, -1);
	ck_assert_str_eq(retry_reason_name(d.reason), "non_retryable");
	/* No error given: retryable. */
	d = decide(&p, b, NULL, 1, CAT_NONE, -1, -1, -1);
	ck_assert(d.retry);
	/* max_attempts 1: never retried. */
	p.max_attempts = 1;
	d = decide(&p, b, NULL, 1, CAT_NETWORK_ERROR, -1, -1, -1);
	ck_assert_str_eq(retry_reason_name(d.reason), "exhausted");

	/* deadline: elapsed + delay > max_elapsed_ms, strictly. */
	p.max_attempts = 5;
	p.max_elapsed_ms = 10000;
	d = decide(&p, b, NULL, 1, CAT_NETWORK_ERROR, 9000, -1, -1);
	ck_assert(d.retry);
	ck_assert_int_eq(d.delay_ms, 1000);
	d = decide(&p, b, NULL, 1, CAT_NETWORK_ERROR, 9001, -1, -1);
	ck_assert(!d.retry);
	ck_assert_int_eq(d.delay_ms, 0);
	ck_assert_str_eq(retry_reason_name(d.reason), "deadline");
	/* The Retry-After floor counts toward the deadline. */
	d = decide(&p, b, NULL, 1, CAT_NETWORK_ERROR, 0, -1, 10001);
	ck_assert_str_eq(retry_reason_name(d.reason), "deadline");
	/* Unknown elapsed time: no deadline check. */
	d = decide(&p, b, NULL, 1, CAT_NETWORK_ERROR, -1, -1, 50000);
	ck_assert(d.retry);
	ck_assert_int_eq(d.delay_ms, 50000);
	/* max_elapsed_ms 0 is off. */
	p.max_elapsed_ms = 0;
	d = decide(&p, b, NULL, 1, CAT_NETWORK_ERROR, INT64_MAX / 2, -1, -1);
	ck_assert(d.retry);
	/* non_retryable is checked before the deadline */
	p.max_elapsed_ms = 1;
	d = decide(&p, b, NULL, 1, CAT_PERMISSION_ERROR, 5000, -1, -1);
	ck_assert_str_eq(retry_reason_name(d.reason), "non_retryable");

	ck_assert_uint_eq(retry_budget_counters(b)->granted, 5);
	ck_assert_uint_eq(retry_budget_counters(b)->denied[RETRY_EXHAUSTED],
	    4);
	ck_assert_uint_eq(
	    retry_budget_counters(b)->denied[RETRY_NON_RETRYABLE], 3);
	ck_assert_uint_eq(retry_budget_counters(b)->denied[RETRY_DEADLINE],
	    2);

	j = retry_decision_to_json(&d);
	ck_assert_str_eq(json_string_value(json_object_get(j, "reason")),
	    "non_retryable");
	ck_assert(json_is_false(json_object_get(j, "retry")));
	ck_assert_int_eq(json_integer_value(json_object_get(j, "delay_ms")),
	    0);
	json_decref(j);
	ck_assert_str_eq(retry_reason_name(RETRY_BUDGET_EXHAUSTED),
	    "budget_exhausted");
	retry_budget_free(b);
}
END_TEST

/* ---- budget ------------------------------------------------------------- */

static void
requests(struct retry_budget *b, const char *key,
    const struct retry_policy *p, int n)
{
	int	i;

	for (i = 0; i < n; i++)
		ck_assert_int_eq(retry_budget_note_request(b, key, p), 0);
}

/* n retry decisions under key; returns how many were granted. */
static int
retries(struct retry_budget *b, const char *key,
    const struct retry_policy *p, int n)
{
	struct retry_decision	d;
	int			i, granted = 0;

	for (i = 0; i < n; i++) {
		d = decide(p, b, key, 1, CAT_NETWORK_ERROR, -1, -1, -1);
		if (d.retry)
			granted++;
		else
			ck_assert_int_eq(d.reason, RETRY_BUDGET_EXHAUSTED);
	}
	return (granted);
}

START_TEST(test_budget_storm)
{
	struct retry_policy	 p;
	struct retry_budget	*b = retry_budget_new(0);
	uint64_t		 req, ret;

	plain_policy(&p);
	requests(b, "svc", &p, 1000);
	ck_assert_int_eq(retries(b, "svc", &p, 1000), 200);
	retry_budget_window(b, "svc", &req, &ret);
	ck_assert_uint_eq(req, 1000);
	ck_assert_uint_eq(ret, 200);
	ck_assert_uint_eq(retry_budget_counters(b)->granted, 200);
	ck_assert_uint_eq(
	    retry_budget_counters(b)->denied[RETRY_BUDGET_EXHAUSTED], 800);
	/* More requests make room again: 20% of 1500 = 300. */
	requests(b, "svc", &p, 500);
	ck_assert_int_eq(retries(b, "svc", &p, 1000), 100);
	retry_budget_free(b);
}
END_TEST

START_TEST(test_budget_floor)
{
	struct retry_policy	 p;
	struct retry_budget	*b = retry_budget_new(0);

	plain_policy(&p);
	/* No requests at all: the floor of 3/s over 10 s. */
	ck_assert_int_eq(retries(b, "a", &p, 100), 30);
	/* 100 requests: 20% is 20 < 30, so still 30 in all. */
	requests(b, "b", &p, 100);
	ck_assert_int_eq(retries(b, "b", &p, 100), 30);
	/* 200 requests: 40 > 30. */
	requests(b, "c", &p, 200);
	ck_assert_int_eq(retries(b, "c", &p, 100), 40);
	/* A fractional floor: 0.25/s x 10 s = 2.5 -> 0, 1, 2 granted. */
	p.budget_min_per_s = 0.25;
	ck_assert_int_eq(retries(b, "d", &p, 10), 3);
	/* No floor, no requests: nothing. */
	p.budget_min_per_s = 0;
	ck_assert_int_eq(retries(b, "e", &p, 10), 0);
	/* budget_percent 0 leaves only the floor. */
	p.budget_min_per_s = 1;
	p.budget_percent = 0;
	requests(b, "f", &p, 1000);
	ck_assert_int_eq(retries(b, "f", &p, 100), 10);
	retry_budget_free(b);
}
END_TEST

/* Only a retry that would otherwise be granted takes budget. */
START_TEST(test_budget_only_granted_consume)
{
	struct retry_policy	 p;
	struct retry_budget	*b = retry_budget_new(0);
	struct retry_decision	 d;
	uint64_t		 req, ret;
	int			 i;

	plain_policy(&p);
	p.budget_min_per_s = 0;
	p.max_elapsed_ms = 5000;
	requests(b, "k", &p, 10);		/* 20% of 10: 2 retries */
	for (i = 0; i < 5; i++) {
		d = decide(&p, b, "k", 3, CAT_NETWORK_ERROR, -1, -1, -1);
		ck_assert_int_eq(d.reason, RETRY_EXHAUSTED);
		d = decide(&p, b, "k", 1, CAT_QUOTA_EXCEEDED, -1, -1, -1);
		ck_assert_int_eq(d.reason, RETRY_NON_RETRYABLE);
		d = decide(&p, b, "k", 1, CAT_NETWORK_ERROR, 4500, -1, -1);
		ck_assert_int_eq(d.reason, RETRY_DEADLINE);
	}
	retry_budget_window(b, "k", &req, &ret);
	ck_assert_uint_eq(req, 10);
	ck_assert_uint_eq(ret, 0);
	ck_assert_int_eq(retries(b, "k", &p, 5), 2);
	/* Refusals for lack of budget do not count either. */
	retry_budget_window(b, "k", &req, &ret);
	ck_assert_uint_eq(ret, 2);
	retry_budget_free(b);
}
END_TEST

START_TEST(test_budget_keys_independent)
{
	struct retry_policy	 p;
	struct retry_budget	*b = retry_budget_new(0);

	plain_policy(&p);
	ck_assert_int_eq(retries(b, "a", &p, 40), 30);
	ck_assert_int_eq(retries(b, "b", &p, 40), 30);
	/* No key, or no budget: no budget check. */
	ck_assert_int_eq(retries(b, NULL, &p, 40), 40);
	ck_assert_int_eq(retries(NULL, "a", &p, 40), 40);
	ck_assert_uint_eq(retry_budget_nkeys(b), 2);
	retry_budget_free(b);
}
END_TEST

START_TEST(test_budget_sliding)
{
	struct retry_policy	 p;
	struct retry_budget	*b = retry_budget_new(0);
	uint64_t		 req, ret;

	plain_policy(&p);
	/* t = 0 (a slot boundary): 1000 requests, 200 retries. */
	requests(b, "svc", &p, 1000);
	ck_assert_int_eq(retries(b, "svc", &p, 300), 200);
	/* Everything still counts until the tenth slot boundary. */
	clock_advance(9999);
	ck_assert_int_eq(retries(b, "svc", &p, 10), 0);
	retry_budget_window(b, "svc", &req, &ret);
	ck_assert_uint_eq(req, 1000);
	ck_assert_uint_eq(ret, 200);
	clock_advance(1);			/* t = 10000 */
	retry_budget_window(b, "svc", &req, &ret);
	ck_assert_uint_eq(req, 0);
	ck_assert_uint_eq(ret, 0);
	ck_assert_int_eq(retries(b, "svc", &p, 100), 30);

	/* Two halves: t = 20000 and t = 25000, 500 requests each. */
	clock_advance(10000);
	requests(b, "svc", &p, 500);
	clock_advance(5000);
	requests(b, "svc", &p, 500);
	ck_assert_int_eq(retries(b, "svc", &p, 300), 200);
	/* t = 30000: the first half is gone, the 200 granted stay. */
	clock_advance(5000);
	retry_budget_window(b, "svc", &req, &ret);
	ck_assert_uint_eq(req, 500);
	ck_assert_uint_eq(ret, 200);
	ck_assert_int_eq(retries(b, "svc", &p, 10), 0);
	/* t = 35000: all gone. */
	clock_advance(5000);
	ck_assert_int_eq(retries(b, "svc", &p, 100), 30);
	retry_budget_free(b);
}
END_TEST

/* Slots are budget_window_ms / 10 wide: a 2 s window slides by 200 ms. */
START_TEST(test_budget_small_window)
{
	struct retry_policy	 p;
	struct retry_budget	*b = retry_budget_new(0);
	uint64_t		 req, ret;

	plain_policy(&p);
	p.budget_window_ms = 2000;		/* floor 3 x 2 = 6 */
	clock_advance(150);			/* inside slot 0 */
	requests(b, "k", &p, 100);
	ck_assert_int_eq(retries(b, "k", &p, 30), 20);
	clock_advance(1849);			/* t = 1999: slot 9 */
	retry_budget_window(b, "k", &req, &ret);
	ck_assert_uint_eq(req, 100);
	clock_advance(1);			/* t = 2000: slot 10 */
	retry_budget_window(b, "k", &req, &ret);
	ck_assert_uint_eq(req, 0);
	ck_assert_uint_eq(ret, 0);
	ck_assert_int_eq(retries(b, "k", &p, 30), 6);
	retry_budget_free(b);
}
END_TEST

/*
 * A key counts in the window of the policy that made it, whoever uses it:
 * two policies with different windows taking turns on one key (a breaker's
 * acquires under the defaults, an op of a named policy on that breaker)
 * must not keep its counts young for ever.
 */
START_TEST(test_budget_two_windows)
{
	struct retry_policy	 p, q;
	struct retry_budget	*b = retry_budget_new(0);
	uint64_t		 req, ret;
	int			 i;

	plain_policy(&p);			/* 10 s */
	q = p;
	q.budget_window_ms = 2000;
	requests(b, "k", &p, 100);
	ck_assert_int_eq(retries(b, "k", &p, 50), 30);
	/* Taking turns every second until t = 9000: still all counted. */
	for (i = 1; i <= 9; i++) {
		clock_advance(1000);
		ck_assert_int_eq(retries(b, "k", i % 2 ? &q : &p, 1), 0);
	}
	retry_budget_window(b, "k", &req, &ret);
	ck_assert_uint_eq(req, 100);
	ck_assert_uint_eq(ret, 30);
	/* t = 10000: the window of the key's maker has passed. */
	clock_advance(1000);
	retry_budget_window(b, "k", &req, &ret);
	ck_assert_uint_eq(req, 0);
	ck_assert_uint_eq(ret, 0);
	/* q's own floor: 3/s x 2 s. */
	ck_assert_int_eq(retries(b, "k", &q, 10), 6);
	retry_budget_free(b);
}
END_TEST

/* After a reload a key takes its next user's window, conservatively. */
START_TEST(test_budget_rewidth)
{
	struct retry_policy	 p, q;
	struct retry_budget	*b = retry_budget_new(0);
	uint64_t		 req, ret;

	plain_policy(&p);
	q = p;
	q.budget_window_ms = 2000;
	requests(b, "k", &p, 100);
	ck_assert_int_eq(retries(b, "k", &p, 50), 30);
	clock_advance(5000);
	retry_budget_reconfigured(b);
	/* Now under the 2 s window: what was counted is still there... */
	requests(b, "k", &q, 1);
	retry_budget_window(b, "k", &req, &ret);
	ck_assert_uint_eq(req, 101);
	ck_assert_uint_eq(ret, 30);
	ck_assert_int_eq(retries(b, "k", &q, 10), 0);
	/* ...for one 2 s window. */
	clock_advance(2000);
	ck_assert_int_eq(retries(b, "k", &q, 10), 6);
	retry_budget_free(b);
}
END_TEST

START_TEST(test_budget_expiry_and_limits)
{
	struct retry_policy	 p;
	struct retry_budget	*b;
	char			 key[RETRY_KEY_MAX + 2];
	uint64_t		 req, ret;
	int			 i;

	plain_policy(&p);
	b = retry_budget_new(0);
	requests(b, "old", &p, 1);
	clock_advance(5000);
	requests(b, "young", &p, 1);
	ck_assert_uint_eq(retry_budget_nkeys(b), 2);
	/*
	 * A key idle for a whole window reads zero at once, and is forgotten
	 * by the next expiry pass that reaches it.
	 */
	clock_advance(5000);
	requests(b, "other", &p, 1);
	ck_assert_uint_eq(retry_budget_nkeys(b), 3);
	retry_budget_window(b, "old", &req, &ret);
	ck_assert_uint_eq(req, 0);
	retry_budget_window(b, "young", &req, &ret);
	ck_assert_uint_eq(req, 1);
	ck_assert_uint_eq(retry_budget_expire(b, 1000), 1);
	ck_assert_uint_eq(retry_budget_nkeys(b), 2);
	/* One ms short of young's window: it stays. */
	clock_advance(4999);
	ck_assert_uint_eq(retry_budget_expire(b, 1000), 0);
	clock_advance(1);
	ck_assert_uint_eq(retry_budget_expire(b, 1000), 1);
	clock_advance(5000);
	ck_assert_uint_eq(retry_budget_expire(b, 1000), 1);
	ck_assert_uint_eq(retry_budget_nkeys(b), 0);

	/* Key length. */
	memset(key, 'k', sizeof(key));
	key[RETRY_KEY_MAX] = '\0';
	ck_assert_int_eq(retry_budget_note_request(b, key, &p), 0);
	key[RETRY_KEY_MAX] = 'k';
	key[RETRY_KEY_MAX + 1] = '\0';
	ck_assert_int_eq(retry_budget_note_request(b, key, &p), -1);
	ck_assert_int_eq(retry_budget_note_request(b, "", &p), -1);
	retry_budget_free(b);

	/*
	 * Full: with no more keys than the eviction samples, the least
	 * recently used one makes room, exactly.
	 */
	b = retry_budget_new(8);
	for (i = 0; i < 8; i++) {
		snprintf(key, sizeof(key), "k%d", i);
		requests(b, key, &p, 100);
		clock_advance(1);
	}
	requests(b, "k0", &p, 1);		/* k1 is now the oldest */
	requests(b, "k8", &p, 100);
	ck_assert_uint_eq(retry_budget_nkeys(b), 8);
	retry_budget_window(b, "k0", &req, &ret);
	ck_assert_uint_eq(req, 101);
	retry_budget_window(b, "k1", &req, &ret);
	ck_assert_uint_eq(req, 0);
	clock_advance(1);
	requests(b, "k9", &p, 1);		/* then k2 */
	retry_budget_window(b, "k2", &req, &ret);
	ck_assert_uint_eq(req, 0);
	for (i = 3; i <= 9; i++) {
		snprintf(key, sizeof(key), "k%d", i);
		retry_budget_window(b, key, &req, &ret);
		ck_assert_uint_eq(req, i == 9 ? 1 : 100);
	}
	retry_budget_free(b);
}
END_TEST

/*
 * A client inventing keys in a full table: each new key evicts the oldest
 * of a sample, so the busy keys, used all along, stay.
 */
START_TEST(test_budget_flood_keeps_busy_keys)
{
	struct retry_policy	 p;
	struct retry_budget	*b = retry_budget_new(1000);
	char			 key[32];
	uint64_t		 req, ret;
	int			 i, j, kept = 0;

	plain_policy(&p);
	for (i = 0; i < 1000; i++) {
		snprintf(key, sizeof(key), "idle-%d", i);
		requests(b, key, &p, 1);
	}
	clock_advance(1);
	/* 10 busy keys, each used after every 100 invented ones. */
	for (i = 0; i < 5000; i++) {
		if (i % 100 == 0) {
			clock_advance(1);
			for (j = 0; j < 10; j++) {
				snprintf(key, sizeof(key), "busy-%d", j);
				requests(b, key, &p, 1);
			}
		}
		snprintf(key, sizeof(key), "flood-%d", i);
		requests(b, key, &p, 1);
		ck_assert_uint_le(retry_budget_nkeys(b), 1000);
	}
	for (j = 0; j < 10; j++) {
		snprintf(key, sizeof(key), "busy-%d", j);
		retry_budget_window(b, key, &req, &ret);
		kept += req > 0;
	}
	/*
	 * A busy key goes only when it is sampled and the 7 other keys of
	 * its sample are as new as it is: at most the 110 keys used since
	 * its last use, of 1000. The samples are random, but over the 5000
	 * evictions that happens with a probability far below one in a
	 * million.
	 */
	ck_assert_int_eq(kept, 10);
	retry_budget_free(b);
}
END_TEST

START_TEST(test_budget_many_keys)
{
	struct retry_policy	 p;
	struct retry_budget	*b = retry_budget_new(0);
	char			 key[32];
	uint64_t		 req, ret, n;
	int			 i;

	plain_policy(&p);
	for (i = 0; i < RETRY_BUDGET_MAX_KEYS; i++) {
		snprintf(key, sizeof(key), "service-%d", i);
		ck_assert_int_eq(retry_budget_note_request(b, key, &p), 0);
	}
	ck_assert_uint_eq(retry_budget_nkeys(b), RETRY_BUDGET_MAX_KEYS);
	for (i = 0; i < RETRY_BUDGET_MAX_KEYS; i += 997) {
		snprintf(key, sizeof(key), "service-%d", i);
		retry_budget_window(b, key, &req, &ret);
		ck_assert_uint_eq(req, 1);
	}
	/* One more key evicts one of them. */
	ck_assert_int_eq(retry_budget_note_request(b, "extra", &p), 0);
	ck_assert_uint_eq(retry_budget_nkeys(b), RETRY_BUDGET_MAX_KEYS);
	for (i = 0, n = 0; i < RETRY_BUDGET_MAX_KEYS; i++) {
		snprintf(key, sizeof(key), "service-%d", i);
		retry_budget_window(b, key, &req, &ret);
		n += req;
	}
	ck_assert_uint_eq(n, RETRY_BUDGET_MAX_KEYS - 1);
	/*
	 * All of them expire together, in one whole pass (but the one that
	 * made room for "late", which came first: the table was full).
	 */
	clock_advance(10000);
	ck_assert_int_eq(retry_budget_note_request(b, "late", &p), 0);
	ck_assert_uint_eq(retry_budget_expire(b, SIZE_MAX),
	    RETRY_BUDGET_MAX_KEYS - 1);
	ck_assert_uint_eq(retry_budget_nkeys(b), 1);
	/* A pass looks at whole buckets, about as many keys as asked. */
	for (i = 0; i < 5000; i++) {
		snprintf(key, sizeof(key), "again-%d", i);
		ck_assert_int_eq(retry_budget_note_request(b, key, &p), 0);
	}
	clock_advance(10000);
	for (i = 0, n = 0; i < 10 && retry_budget_nkeys(b) > 0; i++)
		n += retry_budget_expire(b, 1000);
	ck_assert_uint_eq(n, 5001);
	ck_assert_uint_ge(i, 5);
	retry_budget_free(b);
}
END_TEST

static Suite *
retry_suite(void)
{
	Suite	*s = suite_create("retry");
	TCase	*tc;

	tc = tcase_create("policy");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_defaults);
	tcase_add_test(tc, test_policy_set);
	tcase_add_test(tc, test_policy_json);
	tcase_add_test(tc, test_named_policies);
	suite_add_tcase(s, tc);

	tc = tcase_create("delay");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_backoff_exact);
	tcase_add_test(tc, test_decision_delay_no_jitter);
	tcase_add_test(tc, test_jitter_full);
	tcase_add_test(tc, test_jitter_equal);
	tcase_add_test(tc, test_jitter_decorrelated);
	tcase_add_test(tc, test_jitter_none);
	tcase_add_test(tc, test_rng);
	tcase_add_test(tc, test_retry_after);
	tcase_add_test(tc, test_reasons);
	suite_add_tcase(s, tc);

	tc = tcase_create("budget");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_budget_storm);
	tcase_add_test(tc, test_budget_floor);
	tcase_add_test(tc, test_budget_only_granted_consume);
	tcase_add_test(tc, test_budget_keys_independent);
	tcase_add_test(tc, test_budget_sliding);
	tcase_add_test(tc, test_budget_small_window);
	tcase_add_test(tc, test_budget_rewidth);
	tcase_add_test(tc, test_budget_two_windows);
	tcase_add_test(tc, test_budget_expiry_and_limits);
	tcase_add_test(tc, test_budget_many_keys);
	tcase_add_test(tc, test_budget_flood_keeps_busy_keys);
	suite_add_tcase(s, tc);
	return (s);
}

int
main(void)
{
	SRunner	*sr;
	int	 failed;

	sr = srunner_create(retry_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return (failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE);
}
