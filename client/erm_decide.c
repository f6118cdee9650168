/*
 * liberm's decision-core calls: typed wrappers for breaker.*, retry.next
 * and error.classify, and erm_execute, the client half of the op.* protocol
 * (execute_with_recovery). Everything goes through erm_call; this file
 * knows the methods' members and nothing about the connection.
 */

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "erm.h"

#ifndef ERM_API
#define ERM_API		__attribute__((visibility("default")))
#endif

/* erm_execute sleeps in slices this long so that a cancel is seen soon. */
#define DECIDE_SLEEP_SLICE_MS	100

static const char *const outcome_names[] = {
	[ERM_SUCCESS] = "success",
	[ERM_FAILURE] = "failure",
	[ERM_IGNORED] = "ignored",
};

static int64_t
decide_now_ms(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
}

/*
 * Copy the string member key of obj into dst. Returns -1 when it is
 * missing or not a string, or (without cut) when it does not fit; a
 * missing member is fine (dst "") when optional.
 */
#define DS_OPTIONAL	0x1
#define DS_CUT		0x2
static int
decide_str(json_t *obj, const char *key, char *dst, size_t size, int flags)
{
	json_t	*v = json_object_get(obj, key);
	size_t	 len;

	dst[0] = '\0';
	if (v == NULL || json_is_null(v))
		return ((flags & DS_OPTIONAL) ? 0 : -1);
	if (!json_is_string(v))
		return (-1);
	len = json_string_length(v);
	if (len >= size) {
		if (!(flags & DS_CUT))
			return (-1);
		len = size - 1;
	}
	memcpy(dst, json_string_value(v), len);
	dst[len] = '\0';
	return (0);
}

/* The integer member key of obj, or def when it is absent or not one. */
static int64_t
decide_int(json_t *obj, const char *key, int64_t def)
{
	json_t	*v = json_object_get(obj, key);

	return (json_is_integer(v) ? (int64_t)json_integer_value(v) : def);
}

/* Set key to a new string; -1 when s is not UTF-8 or out of memory. */
static int
decide_set_str(json_t *obj, const char *key, const char *s)
{
	return (json_object_set_new(obj, key, json_string(s)));
}

static int
decide_set_int(json_t *obj, const char *key, int64_t v)
{
	return (json_object_set_new(obj, key, json_integer((json_int_t)v)));
}

static int
errinfo_empty(const struct erm_errinfo *e)
{
	return (e->category == NULL && e->errnum <= 0 &&
	    e->http_status <= 0 && e->exit_code <= 0 && e->signal <= 0 &&
	    e->exception == NULL && e->message == NULL &&
	    e->retry_after_ms <= 0);
}

ERM_API enum erm_status
erm_errinfo_json(const struct erm_errinfo *e, json_t **out)
{
	json_t	*o;

	if (out == NULL)
		return (ERM_EINVAL);
	*out = NULL;
	if (e == NULL || errinfo_empty(e))
		return (ERM_EINVAL);
	if ((o = json_object()) == NULL)
		return (ERM_ENOMEM);
	if ((e->category != NULL &&
	    decide_set_str(o, "category", e->category) == -1) ||
	    (e->errnum > 0 && decide_set_int(o, "errno", e->errnum) == -1) ||
	    (e->http_status > 0 &&
	    decide_set_int(o, "http_status", e->http_status) == -1) ||
	    (e->exit_code > 0 &&
	    decide_set_int(o, "exit_code", e->exit_code) == -1) ||
	    (e->signal > 0 && decide_set_int(o, "signal", e->signal) == -1) ||
	    (e->exception != NULL &&
	    decide_set_str(o, "exception", e->exception) == -1) ||
	    (e->message != NULL &&
	    decide_set_str(o, "message", e->message) == -1) ||
	    (e->retry_after_ms > 0 &&
	    decide_set_int(o, "retry_after_ms", e->retry_after_ms) == -1)) {
		json_decref(o);
		/* json_string refuses invalid UTF-8; the rest is memory. */
		return (ERM_EINVAL);
	}
	*out = o;
	return (ERM_OK);
}

/*
 * Add err as obj's "error" member (as_member) or merge its members into
 * obj (error.classify takes them flat). Nothing is added for NULL or an
 * empty err.
 */
static enum erm_status
decide_add_error(json_t *obj, const struct erm_errinfo *err, int as_member)
{
	json_t		*ej;
	enum erm_status	 st;

	if (err == NULL || errinfo_empty(err))
		return (ERM_OK);
	if ((st = erm_errinfo_json(err, &ej)) != ERM_OK)
		return (st);
	if (as_member) {
		if (json_object_set_new(obj, "error", ej) == -1)
			return (ERM_ENOMEM);
		return (ERM_OK);
	}
	if (json_object_update(obj, ej) == -1) {
		json_decref(ej);
		return (ERM_ENOMEM);
	}
	json_decref(ej);
	return (ERM_OK);
}

/* retry_after_ms from the data of the 1004 the handle holds, else -1. */
static int64_t
decide_retry_after(struct erm_client *c)
{
	const struct erm_error	*e = erm_last_error(c);

	if (e == NULL || e->code != ERM_CODE_BREAKER_OPEN)
		return (-1);
	return (decide_int(e->data, "retry_after_ms", -1));
}

/* Call method with params (stolen) and keep the result in *result. */
static enum erm_status
decide_call(struct erm_client *c, const char *method, json_t *params,
    json_t **result)
{
	enum erm_status	st;

	st = erm_call(c, method, params, result);
	json_decref(params);
	return (st);
}

ERM_API enum erm_status
erm_breaker_acquire(struct erm_client *c, const char *name, int wait_ms,
    char permit[ERM_PERMIT_MAX], int64_t *retry_after_ms)
{
	json_t		*params, *result = NULL;
	char		 buf[ERM_PERMIT_MAX];
	enum erm_status	 st;

	if (retry_after_ms != NULL)
		*retry_after_ms = -1;
	if (permit != NULL)
		permit[0] = '\0';
	if (c == NULL || name == NULL)
		return (ERM_EINVAL);
	if ((params = json_object()) == NULL)
		return (ERM_ENOMEM);
	if (decide_set_str(params, "name", name) == -1 ||
	    (wait_ms > 0 && decide_set_int(params, "wait_ms", wait_ms) == -1)) {
		json_decref(params);
		return (ERM_EINVAL);
	}
	st = decide_call(c, "breaker.acquire", params, &result);
	if (st == ERM_EREPLY && retry_after_ms != NULL)
		*retry_after_ms = decide_retry_after(c);
	if (st != ERM_OK)
		return (st);
	if (decide_str(result, "permit", buf, sizeof(buf), 0) == -1)
		st = ERM_EPROTO;
	else if (permit != NULL)
		memcpy(permit, buf, sizeof(buf));
	json_decref(result);
	return (st);
}

ERM_API enum erm_status
erm_breaker_record(struct erm_client *c, const char *name,
    const char *permit, enum erm_outcome outcome, int64_t duration_ms,
    const struct erm_errinfo *err, int *recorded)
{
	json_t		*params, *result = NULL, *v;
	enum erm_status	 st;

	if (recorded != NULL)
		*recorded = 0;
	if (c == NULL || name == NULL || (unsigned)outcome >=
	    sizeof(outcome_names) / sizeof(outcome_names[0]))
		return (ERM_EINVAL);
	if ((params = json_object()) == NULL)
		return (ERM_ENOMEM);
	if (decide_set_str(params, "name", name) == -1 ||
	    (permit != NULL &&
	    decide_set_str(params, "permit", permit) == -1) ||
	    decide_set_str(params, "outcome", outcome_names[outcome]) == -1 ||
	    (duration_ms >= 0 &&
	    decide_set_int(params, "duration_ms", duration_ms) == -1)) {
		json_decref(params);
		return (ERM_EINVAL);
	}
	if ((st = decide_add_error(params, err, 1)) != ERM_OK) {
		json_decref(params);
		return (st);
	}
	if ((st = decide_call(c, "breaker.record", params, &result)) != ERM_OK)
		return (st);
	v = json_object_get(result, "recorded");
	if (!json_is_boolean(v))
		st = ERM_EPROTO;
	else if (recorded != NULL)
		*recorded = json_is_true(v);
	json_decref(result);
	return (st);
}

ERM_API enum erm_status
erm_breaker_get(struct erm_client *c, const char *name, json_t **out)
{
	json_t	*params;

	if (out != NULL)
		*out = NULL;
	if (c == NULL || name == NULL || out == NULL)
		return (ERM_EINVAL);
	if ((params = json_pack("{s:s}", "name", name)) == NULL)
		return (ERM_EINVAL);
	return (decide_call(c, "breaker.get", params, out));
}

ERM_API enum erm_status
erm_retry_next(struct erm_client *c, const char *policy, const char *key,
    int attempt, const struct erm_errinfo *err, int64_t elapsed_ms,
    int64_t prev_delay_ms, struct erm_retry_decision *out)
{
	json_t		*params, *result = NULL, *retry;
	enum erm_status	 st;

	if (out != NULL)
		memset(out, 0, sizeof(*out));
	if (c == NULL || out == NULL || attempt < 1)
		return (ERM_EINVAL);
	if ((params = json_object()) == NULL)
		return (ERM_ENOMEM);
	if ((policy != NULL &&
	    decide_set_str(params, "policy", policy) == -1) ||
	    (key != NULL && decide_set_str(params, "key", key) == -1) ||
	    decide_set_int(params, "attempt", attempt) == -1 ||
	    (elapsed_ms >= 0 &&
	    decide_set_int(params, "elapsed_ms", elapsed_ms) == -1) ||
	    (prev_delay_ms >= 0 &&
	    decide_set_int(params, "prev_delay_ms", prev_delay_ms) == -1)) {
		json_decref(params);
		return (ERM_EINVAL);
	}
	if ((st = decide_add_error(params, err, 1)) != ERM_OK) {
		json_decref(params);
		return (st);
	}
	if ((st = decide_call(c, "retry.next", params, &result)) != ERM_OK)
		return (st);
	retry = json_object_get(result, "retry");
	if (!json_is_boolean(retry) ||
	    !json_is_integer(json_object_get(result, "delay_ms")) ||
	    decide_str(result, "reason", out->reason, sizeof(out->reason),
	    0) == -1) {
		memset(out, 0, sizeof(*out));
		st = ERM_EPROTO;
	} else {
		out->retry = json_is_true(retry);
		out->delay_ms = decide_int(result, "delay_ms", 0);
	}
	json_decref(result);
	return (st);
}

ERM_API enum erm_status
erm_classify(struct erm_client *c, const struct erm_errinfo *err,
    struct erm_classification *out)
{
	json_t		*params, *result = NULL, *strategy, *retryable;
	enum erm_status	 st;

	if (out != NULL)
		memset(out, 0, sizeof(*out));
	if (c == NULL || out == NULL || err == NULL || errinfo_empty(err))
		return (ERM_EINVAL);
	if ((params = json_object()) == NULL)
		return (ERM_ENOMEM);
	if ((st = decide_add_error(params, err, 0)) != ERM_OK) {
		json_decref(params);
		return (st);
	}
	if ((st = decide_call(c, "error.classify", params, &result)) != ERM_OK)
		return (st);
	strategy = json_object_get(result, "strategy");
	retryable = json_object_get(result, "retryable");
	if (decide_str(result, "category", out->category,
	    sizeof(out->category), 0) == -1 || !json_is_object(strategy) ||
	    decide_str(strategy, "primary", out->primary,
	    sizeof(out->primary), 0) == -1 ||
	    decide_str(strategy, "fallback", out->fallback,
	    sizeof(out->fallback), DS_OPTIONAL) == -1 ||
	    !json_is_boolean(retryable) ||
	    decide_str(result, "matched", out->matched, sizeof(out->matched),
	    DS_OPTIONAL | DS_CUT) == -1) {
		memset(out, 0, sizeof(*out));
		st = ERM_EPROTO;
	} else
		out->retryable = json_is_true(retryable);
	json_decref(result);
	return (st);
}

/* ---- erm_execute ------------------------------------------------------ */

static int
exec_cancelled(const struct erm_exec_opts *opts)
{
	return (opts != NULL && opts->cancel != NULL && *opts->cancel != 0);
}

static enum erm_status
exec_stop(struct erm_exec_result *res, const char *decision,
    enum erm_status st)
{
	snprintf(res->decision, sizeof(res->decision), "%s", decision);
	if (st == ERM_ESYS)
		errno = EINTR;
	return (st);
}

/* The params of op.begin; a new reference in *out. */
static enum erm_status
exec_begin_params(const char *operation, const struct erm_exec_opts *opts,
    json_t **out)
{
	json_t	*p, *list;
	size_t	 i;

	*out = NULL;
	if ((p = json_object()) == NULL)
		return (ERM_ENOMEM);
	if (decide_set_str(p, "operation", operation) == -1)
		goto bad;
	if (opts == NULL)
		goto done;
	if (opts->breaker != NULL &&
	    decide_set_str(p, "breaker", opts->breaker) == -1)
		goto bad;
	if (opts->policy_object != NULL) {
		if (!json_is_object(opts->policy_object) ||
		    json_object_set(p, "policy", opts->policy_object) == -1)
			goto bad;
	} else if (opts->policy != NULL &&
	    decide_set_str(p, "policy", opts->policy) == -1)
		goto bad;
	if (opts->backup != NULL) {
		if ((list = json_array()) == NULL ||
		    json_object_set_new(p, "backup", list) == -1)
			goto bad;
		for (i = 0; opts->backup[i] != NULL; i++)
			if (json_array_append_new(list,
			    json_string(opts->backup[i])) == -1)
				goto bad;
	}
	if (opts->deadline_ms > 0 &&
	    decide_set_int(p, "deadline_ms", opts->deadline_ms) == -1)
		goto bad;
done:
	*out = p;
	return (ERM_OK);
bad:
	json_decref(p);
	return (ERM_EINVAL);
}

/*
 * op.fail for the attempt that just failed. Returns ERM_OK with *delay set
 * when the decision is "retry"; ERM_EREPLY with res->decision set when the
 * daemon ended the op (or refused the next attempt); any other status when
 * the call itself failed.
 */
static enum erm_status
exec_fail(struct erm_client *c, struct erm_exec_result *res,
    const struct erm_errinfo *err, int64_t *delay)
{
	static const struct erm_errinfo	 unspecified = {
		.message = "unspecified failure"
	};
	json_t				*params, *result = NULL, *v;
	char				 decision[sizeof(res->decision)];
	enum erm_status			 st;

	if (errinfo_empty(err))
		err = &unspecified;
	if ((params = json_pack("{s:s}", "op", res->op)) == NULL)
		return (ERM_ENOMEM);
	if ((st = decide_add_error(params, err, 1)) != ERM_OK) {
		json_decref(params);
		return (st);
	}
	st = decide_call(c, "op.fail", params, &result);
	if (st == ERM_EREPLY &&
	    erm_last_error(c)->code == ERM_CODE_BREAKER_OPEN) {
		res->retry_after_ms = decide_retry_after(c);
		return (exec_stop(res, "rejected", st));
	}
	if (st != ERM_OK)
		return (st);

	/* A decision word from a newer daemon still ends the op: cut it. */
	if (decide_str(result, "decision", decision, sizeof(decision),
	    DS_CUT) == -1 || decision[0] == '\0') {
		st = ERM_EPROTO;
		goto out;
	}
	decide_str(result, "category", res->category, sizeof(res->category),
	    DS_OPTIONAL | DS_CUT);
	/* strategy is a word; take the primary if it comes as an object. */
	v = json_object_get(result, "strategy");
	if (json_is_object(v))
		decide_str(v, "primary", res->strategy, sizeof(res->strategy),
		    DS_OPTIONAL | DS_CUT);
	else
		decide_str(result, "strategy", res->strategy,
		    sizeof(res->strategy), DS_OPTIONAL | DS_CUT);
	v = json_object_get(result, "rolled_back");
	if (json_is_array(v))
		res->rolled_back += (int)json_array_size(v);

	if (strcmp(decision, "retry") == 0) {
		*delay = decide_int(result, "delay_ms", 0);
		if (*delay < 0)
			*delay = 0;
		goto out;
	}
	decide_str(result, "backend", res->backend, sizeof(res->backend),
	    DS_OPTIONAL | DS_CUT);
	memcpy(res->decision, decision, sizeof(decision));
	st = ERM_EREPLY;
out:
	json_decref(result);
	return (st);
}

static enum erm_status
exec_succeed(struct erm_client *c, struct erm_exec_result *res)
{
	json_t		*params, *result = NULL, *v;
	enum erm_status	 st;

	res->recovered = res->attempts > 1;
	if ((params = json_pack("{s:s}", "op", res->op)) == NULL)
		return (ERM_ENOMEM);
	if ((st = decide_call(c, "op.succeed", params, &result)) != ERM_OK)
		return (st);
	/* The daemon's count wins: it is what op.get will show. */
	res->attempts = (int)decide_int(result, "attempts", res->attempts);
	if (json_is_boolean(v = json_object_get(result, "recovered")))
		res->recovered = json_is_true(v);
	json_decref(result);
	return (ERM_OK);
}

/*
 * Wait delay ms before the next attempt, in slices so that a cancel is
 * noticed. Stops at once, without waiting, when the attempt would start
 * past the deadline.
 */
static enum erm_status
exec_wait(struct erm_exec_result *res, const struct erm_exec_opts *opts,
    int64_t start, int64_t delay)
{
	struct timespec	ts;
	int64_t		end, left;

	if (opts != NULL && opts->deadline_ms > 0 &&
	    decide_now_ms() + delay - start > opts->deadline_ms)
		return (exec_stop(res, "deadline", ERM_ETIMEDOUT));
	end = decide_now_ms() + delay;
	while ((left = end - decide_now_ms()) > 0) {
		if (exec_cancelled(opts))
			return (exec_stop(res, "cancelled", ERM_ESYS));
		if (left > DECIDE_SLEEP_SLICE_MS)
			left = DECIDE_SLEEP_SLICE_MS;
		ts.tv_sec = left / 1000;
		ts.tv_nsec = (left % 1000) * 1000000;
		/* EINTR: a signal; the loop looks at the cancel flag. */
		(void)nanosleep(&ts, NULL);
	}
	res->slept_ms += delay;
	return (ERM_OK);
}

static void
exec_result_init(struct erm_exec_result *res)
{
	memset(res, 0, sizeof(*res));
	res->retry_after_ms = -1;
}

ERM_API enum erm_status
erm_execute(struct erm_client *c, const char *operation, erm_fn fn,
    void *arg, const struct erm_exec_opts *opts, struct erm_exec_result *res)
{
	struct erm_exec_result	 local;
	struct erm_errinfo	 err;
	json_t			*params, *result = NULL;
	int64_t			 start, delay = 0;
	enum erm_status		 st;

	if (res == NULL)
		res = &local;
	exec_result_init(res);
	if (c == NULL || operation == NULL || fn == NULL)
		return (ERM_EINVAL);
	start = decide_now_ms();
	if (exec_cancelled(opts))
		return (exec_stop(res, "cancelled", ERM_ESYS));

	if ((st = exec_begin_params(operation, opts, &params)) != ERM_OK)
		return (st);
	st = decide_call(c, "op.begin", params, &result);
	if (st == ERM_EREPLY &&
	    erm_last_error(c)->code == ERM_CODE_BREAKER_OPEN) {
		res->retry_after_ms = decide_retry_after(c);
		return (exec_stop(res, "rejected", st));
	}
	if (st != ERM_OK)
		return (st);
	if (decide_str(result, "op", res->op, sizeof(res->op), 0) == -1 ||
	    res->op[0] == '\0')
		st = ERM_EPROTO;
	json_decref(result);
	if (st != ERM_OK)
		return (st);

	for (;;) {
		memset(&err, 0, sizeof(err));
		res->attempts++;
		if ((res->fn_result = fn(arg, &err)) == 0)
			return (exec_succeed(c, res));
		if ((st = exec_fail(c, res, &err, &delay)) != ERM_OK)
			return (st);
		if ((st = exec_wait(res, opts, start, delay)) != ERM_OK)
			return (st);
		if (exec_cancelled(opts))
			return (exec_stop(res, "cancelled", ERM_ESYS));
	}
}
