/*
 * Retry configuration: the seed's RetryConfig as a policy object given
 * with the request instead of a [retry.NAME] section of the daemon's
 * config. Its members are the keys of [retry] (BEHAVIOUR.md §2).
 *
 * First the policy's decisions are asked for directly with retry.next
 * (no waiting): attempts 1-4 of a timeout are retried with exponential
 * backoff (1 s, 2 s, 4 s, 8 s, full jitter: anywhere up to that), the 5th
 * is the last (exhausted), and a permission error is not retried at all.
 * Then the same object guards an operation with erm_execute.
 *
 * Connects to $ERMD_SOCKET. Exits 0 when every decision is as described
 * and the operation succeeded on its second attempt.
 */

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "erm.h"

/* retry_config = RetryConfig(max_attempts=5, base_delay=1.0, ...) */
static json_t *
retry_config(void)
{
	return (json_pack("{s:i, s:i, s:i, s:s, s:f, s:s, s:[s, s]}",
	    "max_attempts", 5,
	    "base_delay_ms", 1000,
	    "max_delay_ms", 60000,
	    "backoff", "exponential",
	    "factor", 2.0,
	    "jitter", "full",
	    "retry_on", "NETWORK_ERROR", "TIMEOUT_ERROR"));
}

/* retry.next with a policy object (erm_retry_next takes a name). */
static int
ask(struct erm_client *c, json_t *policy, int attempt, const char *category,
    int *retry, long long *delay, const char **reason, json_t **result)
{
	json_t		*params;
	enum erm_status	 st;

	params = json_pack("{s:O, s:i, s:{s:s}}", "policy", policy,
	    "attempt", attempt, "error", "category", category);
	st = erm_call(c, "retry.next", params, result);
	json_decref(params);
	if (st != ERM_OK) {
		fprintf(stderr, "retry.next: %s: %s\n", erm_strerror(st),
		    erm_last_error(c)->message);
		return (-1);
	}
	*retry = json_is_true(json_object_get(*result, "retry"));
	*delay = json_integer_value(json_object_get(*result, "delay_ms"));
	*reason = json_string_value(json_object_get(*result, "reason"));
	return (*reason != NULL ? 0 : -1);
}

static int
times_out_once(void *arg, struct erm_errinfo *err)
{
	int	*calls = arg;

	if (++*calls == 1) {
		err->errnum = ETIMEDOUT;
		return (-1);
	}
	return (0);
}

int
main(void)
{
	struct erm_client	*c;
	struct erm_exec_opts	 opts = { 0 };
	struct erm_exec_result	 res;
	json_t			*policy, *result;
	const char		*reason;
	long long		 delay, cap;
	enum erm_status		 st;
	int			 attempt, retry, calls = 0, ok = 1;

	if ((st = erm_connect(&c, NULL)) != ERM_OK) {
		fprintf(stderr, "connect: %s\n", erm_strerror(st));
		return (1);
	}
	erm_set_timeout(c, 10000);
	policy = retry_config();

	for (attempt = 1, cap = 1000; attempt <= 5; attempt++, cap *= 2) {
		if (ask(c, policy, attempt, "TIMEOUT_ERROR", &retry, &delay,
		    &reason, &result) == -1) {
			ok = 0;
			break;
		}
		printf("attempt %d failed: retry %s, delay %lld ms (%s)\n",
		    attempt, retry ? "yes" : "no", delay, reason);
		if (attempt < 5)
			ok &= retry && delay >= 0 && delay <= cap &&
			    strcmp(reason, "retryable") == 0;
		else
			ok &= !retry && strcmp(reason, "exhausted") == 0;
		json_decref(result);
	}
	if (ask(c, policy, 1, "PERMISSION_ERROR", &retry, &delay, &reason,
	    &result) == 0) {
		printf("permission error: retry %s (%s)\n",
		    retry ? "yes" : "no", reason);
		ok &= !retry && strcmp(reason, "non_retryable") == 0;
		json_decref(result);
	} else
		ok = 0;

	opts.policy_object = policy;
	st = erm_execute(c, "retry_config_example", times_out_once, &calls,
	    &opts, &res);
	printf("operation: %s after %d attempts, %lld ms waited\n",
	    st == ERM_OK ? "succeeded" : erm_strerror(st), res.attempts,
	    (long long)res.slept_ms);
	ok &= st == ERM_OK && res.attempts == 2;

	json_decref(policy);
	erm_close(c);
	return (ok ? 0 : 1);
}
