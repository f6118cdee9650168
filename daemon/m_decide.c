/* Breaker, retry and classification methods: breaker.*, retry.*,
 * error.classify. */

#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "config.h"
#include "conn.h"
#include "decide.h"
#include "dispatch.h"
#include "erm_proto.h"
#include "ermd.h"
#include "methods.h"

#define RETRY_WAIT_MAX_MS	INT64_C(300000)

/* A breaker error code from breaker.c as a protocol error. */
static int
breaker_fail(struct ermd_req *req, int rc, const char *name,
    const struct breaker_permit_info *pi)
{
	struct breaker	*b;

	switch (rc) {
	case ERM_INVALID_PARAMS:
		return (req_fail(req, rc, json_pack("{s:s, s:s}", "field",
		    "name", "reason", "1-128 bytes of A-Z a-z 0-9 . _ : / -"),
		    "name: not a valid breaker name"));
	case ERM_NOT_FOUND:
		return (req_fail(req, rc, json_pack("{s:s, s:s}", "kind",
		    "breaker", "name", name), "no breaker named %s", name));
	case ERM_BREAKER_OPEN:
		return (req_fail(req, rc, json_pack("{s:s, s:s, s:I}",
		    "breaker", name, "state", breaker_state_name(pi->state),
		    "retry_after_ms", (json_int_t)pi->retry_after_ms),
		    "breaker %s is %s", name, breaker_state_name(pi->state)));
	case ERM_LIMIT_EXCEEDED:
		return (req_fail(req, rc, json_pack("{s:s, s:I}", "limit",
		    pi != NULL && pi->limit != NULL ? pi->limit :
		    "max_breakers", "value", (json_int_t)ermd.cfg->max_breakers),
		    "too many breakers"));
	case ERM_CONFLICT:
		b = breaker_find(decide_breakers(), name);
		return (req_fail(req, rc, json_pack("{s:s}", "state",
		    b != NULL ? breaker_state_name(breaker_state(b)) : "closed"),
		    "illegal transition for breaker %s", name));
	default:
		return (req_fail(req, ERM_INTERNAL_ERROR, NULL,
		    "breaker %s: out of memory", name));
	}
}

/* ---- breaker.acquire, with an optional wait for a permit ---------------- */

struct acquire_wait {
	struct ermd_req		*req;
	struct clock_timer	*timer;
	char			 name[BREAKER_NAME_MAX + 1];
	uint64_t		 deadline;
	struct acquire_wait	*prev, *next;	/* all waits, for the stop */
};

static struct acquire_wait	*waits;

static int	acquire_try(struct ermd_req *, const char *, uint64_t,
		    struct acquire_wait *);

static void
wait_free(struct acquire_wait *w)
{
	if (w->prev != NULL)
		w->prev->next = w->next;
	else
		waits = w->next;
	if (w->next != NULL)
		w->next->prev = w->prev;
	clock_timer_free(w->timer);
	free(w);
}

static void
acquire_again(void *arg)
{
	struct acquire_wait	*w = arg;
	struct ermd_req		*req = w->req;
	int			 rc;

	if (req->conn->dead)
		rc = req_fail(req, ERM_CANCELLED, NULL, "connection closed");
	else
		rc = acquire_try(req, w->name, w->deadline, w);
	if (rc == REQ_ASYNC)
		return;		/* still waiting, or waiting for a commit */
	wait_free(w);
	req_finish(req, rc);
}

/*
 * Stopping: every wait still running ends now, answered as if its wait_ms
 * had run out, so that its reply goes out before the connections close.
 */
void
m_breaker_stop(void)
{
	struct acquire_wait	*w;

	while ((w = waits) != NULL) {
		w->deadline = 0;
		acquire_again(w);
	}
}

/*
 * The replies of the pair every protected call makes, written as text
 * (no jansson tree per call).
 */
static char *
acquired(const struct breaker_permit_info *pi)
{
	struct erm_buf	b = { NULL, 0, 0, 1024 };

	return (erm_buf_string(&b, erm_jw_begin(&b, NULL) == 0 &&
	    erm_jw_bool(&b, "allowed", 1) == 0 &&
	    erm_jw_str(&b, "permit", pi->permit) == 0 &&
	    erm_jw_str(&b, "state", breaker_state_name(pi->state)) == 0 &&
	    erm_jw_end(&b) == 0));
}

static char *
recorded(const struct breaker_record_result *res)
{
	struct erm_buf	b = { NULL, 0, 0, 256 };

	return (erm_buf_string(&b, erm_jw_begin(&b, NULL) == 0 &&
	    erm_jw_str(&b, "state", breaker_state_name(res->state)) == 0 &&
	    erm_jw_bool(&b, "recorded", res->recorded) == 0 &&
	    erm_jw_end(&b) == 0));
}

static int
reply_text(struct ermd_req *req, char *text)
{
	if ((req->result_text = text) == NULL)
		return (req_fail(req, ERM_INTERNAL_ERROR, NULL,
		    "out of memory"));
	return (REQ_OK);
}

/*
 * Try for a permit; when refused and the caller allowed a wait, come back
 * when the breaker says (retry_after_ms) or at the deadline, whichever is
 * first. w is the wait already in progress, or NULL on the first try.
 */
static int
acquire_try(struct ermd_req *req, const char *name, uint64_t deadline,
    struct acquire_wait *w)
{
	struct breaker_permit_info	 pi;
	uint64_t			 now = clock_now_ms(), next;
	int				 rc, st;

	memset(&pi, 0, sizeof(pi));
	rc = breaker_acquire(decide_breakers(), name, req->conn->id, &pi);
	if (rc == ERM_BREAKER_OPEN && now < deadline && pi.retry_after_ms >= 0) {
		next = now + (uint64_t)(pi.retry_after_ms > 0 ?
		    pi.retry_after_ms : 1);
		if (next > deadline)
			next = deadline;
		if (w == NULL) {
			if ((w = calloc(1, sizeof(*w))) == NULL ||
			    (w->timer = clock_timer_new(acquire_again,
			    w)) == NULL) {
				free(w);
				return (req_fail(req, ERM_INTERNAL_ERROR, NULL,
				    "out of memory"));
			}
			w->req = req;
			w->deadline = deadline;
			snprintf(w->name, sizeof(w->name), "%s", name);
			if ((w->next = waits) != NULL)
				waits->prev = w;
			waits = w;
		}
		clock_timer_at(w->timer, next);
		return (REQ_ASYNC);
	}
	if (rc != 0)
		st = breaker_fail(req, rc, name, &pi);
	else {
		st = reply_text(req, acquired(&pi));
	}
	if (w != NULL) {
		/* A later try: the wait ends here, whatever the outcome. */
		st = decide_reply(req, st);
		if (st == REQ_ASYNC)
			wait_free(w);
		return (st);
	}
	return (decide_reply(req, st));
}

int
m_breaker_acquire(struct ermd_req *req)
{
	static const char *const allowed[] = { "name", "wait_ms", NULL };
	const struct retry_policy	*p = decide_policy(NULL);
	const struct htab		*tabs[2];
	struct param_err		 e;
	const char			*name;
	int64_t				 wait_ms;

	if (params_only(req->params, allowed, &e) == -1 ||
	    param_str_req(req->params, "name", BREAKER_NAME_MAX, &name,
	    &e) == -1 ||
	    param_int(req->params, "wait_ms", 0, RETRY_WAIT_MAX_MS, 0,
	    &wait_ms, &e) == -1)
		return (req_param_fail(req, &e));
	if (!breaker_name_valid(name))
		return (breaker_fail(req, ERM_INVALID_PARAMS, name, NULL));
	/*
	 * Both lookups below take the name to a table that may hold 100,000
	 * entries: start both tables' cache misses at once.
	 */
	tabs[0] = retry_budget_keys(decide_budget());
	tabs[1] = breakers_by_name(decide_breakers());
	htab_prefetch(tabs, 2, name, strlen(name));
	/* Every acquire is a request in the retry budget of that name. */
	(void)retry_budget_note_request(decide_budget(), name, p);
	return (acquire_try(req, name, clock_now_ms() + (uint64_t)wait_ms,
	    NULL));
}

/* The error object of a request (member "error"), classified. */
static int
unpack_error(struct ermd_req *req, const char *member, struct erm_errobj *eo,
    struct classify_result *cr, json_t **error_json)
{
	struct param_err	 e;
	json_t			*v = json_object_get(req->params, member);

	errobj_init(eo);
	memset(cr, 0, sizeof(*cr));
	*error_json = NULL;
	if (v == NULL)
		return (0);
	if (!json_is_object(v)) {
		param_fail(&e, member, "must be an error object");
		return (req_param_fail(req, &e));
	}
	if (errobj_from_json_at(v, member, eo, 0, &e) == -1)
		return (req_param_fail(req, &e));
	decide_classify(eo, cr);
	*error_json = errobj_to_json(eo);
	return (0);
}

int
m_breaker_record(struct ermd_req *req)
{
	static const char *const allowed[] = { "name", "permit", "outcome",
	    "duration_ms", "error", NULL };
	static const char *const outcomes[] = { "success", "failure",
	    "ignored", NULL };
	struct param_err		 e;
	struct erm_errobj		 eo;
	struct classify_result		 cr;
	struct breaker_call		 call;
	struct breaker_record_result	 res;
	const char			*name, *permit;
	json_t				*ej = NULL;
	int64_t				 duration;
	int				 outcome, rc;

	if (params_only(req->params, allowed, &e) == -1 ||
	    param_str_req(req->params, "name", BREAKER_NAME_MAX, &name,
	    &e) == -1 ||
	    param_str(req->params, "permit", BREAKER_PERMIT_MAX, &permit,
	    &e) == -1 ||
	    param_enum(req->params, "outcome", outcomes, -1, &outcome,
	    &e) == -1 ||
	    param_int(req->params, "duration_ms", 0, INT64_C(315360000000),
	    -1, &duration, &e) == -1)
		return (req_param_fail(req, &e));
	if (outcome == -1) {
		param_fail(&e, "outcome", "missing");
		return (req_param_fail(req, &e));
	}
	if (unpack_error(req, "error", &eo, &cr, &ej) != 0)
		return (REQ_ERROR);
	memset(&call, 0, sizeof(call));
	call.outcome = (enum breaker_outcome)outcome;
	call.duration_ms = duration;
	call.category = cr.category;
	call.error = ej;
	rc = breaker_record(decide_breakers(), name, permit, &call, &res);
	json_decref(ej);
	errobj_clear(&eo);
	if (rc != 0)
		return (breaker_fail(req, rc, name, NULL));
	return (decide_reply(req, reply_text(req, recorded(&res))));
}

int
m_breaker_get(struct ermd_req *req)
{
	static const char *const allowed[] = { "name", NULL };
	struct param_err	 e;
	struct breaker		*b;
	const char		*name;

	if (params_only(req->params, allowed, &e) == -1 ||
	    param_str_req(req->params, "name", BREAKER_NAME_MAX, &name,
	    &e) == -1)
		return (req_param_fail(req, &e));
	if (!breaker_name_valid(name))
		return (breaker_fail(req, ERM_INVALID_PARAMS, name, NULL));
	if ((b = breaker_find(decide_breakers(), name)) == NULL)
		return (breaker_fail(req, ERM_NOT_FOUND, name, NULL));
	req->result = breaker_to_json(b);
	return (decide_reply(req, REQ_OK));
}

int
m_breaker_list(struct ermd_req *req)
{
	static const char *const allowed[] = { "state", NULL };
	static const char *const states[] = { "closed", "half_open", "open",
	    "forced_open", "disabled", "metrics_only", NULL };
	struct param_err	 e;
	int			 state;

	if (params_only(req->params, allowed, &e) == -1 ||
	    param_enum(req->params, "state", states, -1, &state, &e) == -1)
		return (req_param_fail(req, &e));
	req->result = breakers_list_json(decide_breakers(), state);
	return (decide_reply(req, REQ_OK));
}

int
m_breaker_configure(struct ermd_req *req)
{
	static const char *const allowed[] = { "name", "config", NULL };
	struct param_err	 e;
	struct breaker		*b = NULL;
	const char		*name;
	json_t			*config;
	int			 rc;

	if (params_only(req->params, allowed, &e) == -1 ||
	    param_str_req(req->params, "name", BREAKER_NAME_MAX, &name,
	    &e) == -1)
		return (req_param_fail(req, &e));
	config = json_object_get(req->params, "config");
	if (config == NULL || !json_is_object(config)) {
		param_fail(&e, "config", config == NULL ? "missing" :
		    "must be an object");
		return (req_param_fail(req, &e));
	}
	rc = breaker_configure(decide_breakers(), name, config, &e, &b);
	if (rc == ERM_INVALID_PARAMS)
		return (req_param_fail(req, &e));
	if (rc != 0)
		return (breaker_fail(req, rc, name, NULL));
	req->result = breaker_to_json(b);
	return (decide_reply(req, REQ_OK));
}

int
m_breaker_force(struct ermd_req *req)
{
	static const char *const allowed[] = { "name", "state", NULL };
	static const char *const states[] = { "closed", "half_open", "open",
	    "forced_open", "disabled", "metrics_only", NULL };
	struct param_err	 e;
	struct breaker		*b = NULL;
	const char		*name;
	int			 state, rc;

	if (params_only(req->params, allowed, &e) == -1 ||
	    param_str_req(req->params, "name", BREAKER_NAME_MAX, &name,
	    &e) == -1 ||
	    param_enum(req->params, "state", states, -1, &state, &e) == -1)
		return (req_param_fail(req, &e));
	if (state == -1 || state == BRK_OPEN) {
		param_fail(&e, "state", state == -1 ? "missing" :
		    "must be forced_open, disabled, metrics_only, closed or "
		    "half_open");
		return (req_param_fail(req, &e));
	}
	if ((rc = breaker_force(decide_breakers(), name,
	    (enum breaker_state)state, &b)) != 0)
		return (breaker_fail(req, rc, name, NULL));
	req->result = breaker_to_json(b);
	return (decide_reply(req, REQ_OK));
}

int
m_breaker_reset(struct ermd_req *req)
{
	static const char *const allowed[] = { "name", NULL };
	struct param_err	 e;
	struct breaker		*b = NULL;
	const char		*name;
	int			 rc;

	if (params_only(req->params, allowed, &e) == -1 ||
	    param_str_req(req->params, "name", BREAKER_NAME_MAX, &name,
	    &e) == -1)
		return (req_param_fail(req, &e));
	if ((rc = breaker_reset(decide_breakers(), name, &b)) != 0)
		return (breaker_fail(req, rc, name, NULL));
	req->result = breaker_to_json(b);
	return (decide_reply(req, REQ_OK));
}

/* ---- retry ------------------------------------------------------------- */

int
m_retry_next(struct ermd_req *req)
{
	static const char *const allowed[] = { "policy", "key", "attempt",
	    "error", "elapsed_ms", "prev_delay_ms", NULL };
	struct param_err	 e;
	struct retry_policy	 p;
	struct retry_decision	 d;
	struct erm_errobj	 eo;
	struct classify_result	 cr;
	const char		*pname, *key;
	json_t			*ej;
	int64_t			 attempt, elapsed, prev;

	if (params_only(req->params, allowed, &e) == -1 ||
	    param_str(req->params, "key", RETRY_KEY_MAX, &key, &e) == -1 ||
	    param_int_req(req->params, "attempt", 1, INT32_MAX, &attempt,
	    &e) == -1 ||
	    param_int(req->params, "elapsed_ms", 0, INT64_C(315360000000), -1,
	    &elapsed, &e) == -1 ||
	    param_int(req->params, "prev_delay_ms", 0, INT64_C(315360000000),
	    -1, &prev, &e) == -1)
		return (req_param_fail(req, &e));
	if (decide_request_policy(req, "policy", &p, &pname) != 0)
		return (REQ_ERROR);
	if (key != NULL && key[0] == '\0') {
		param_fail(&e, "key", "must not be empty");
		return (req_param_fail(req, &e));
	}
	if (unpack_error(req, "error", &eo, &cr, &ej) != 0)
		return (REQ_ERROR);
	json_decref(ej);
	if (key == NULL)
		key = pname;
	if (attempt == 1)
		(void)retry_budget_note_request(decide_budget(), key, &p);
	(void)retry_decide(&p, decide_budget(), key, attempt, cr.category,
	    elapsed, prev, (eo.have & EO_RETRY_AFTER) ? eo.retry_after_ms : -1,
	    decide_rng(), &d);
	errobj_clear(&eo);
	req->result = retry_decision_to_json(&d);
	return (REQ_OK);
}

int
m_retry_policy(struct ermd_req *req)
{
	static const char *const allowed[] = { "name", NULL };
	struct param_err		 e;
	const struct retry_policy	*p;
	const char			*name;

	if (params_only(req->params, allowed, &e) == -1 ||
	    param_str_req(req->params, "name", OPT_NAME_MAX, &name, &e) == -1)
		return (req_param_fail(req, &e));
	p = strcmp(name, "default") == 0 ? decide_policy(NULL) :
	    decide_policy(name);
	if (p == NULL)
		return (req_fail(req, ERM_NOT_FOUND, json_pack("{s:s, s:s}",
		    "kind", "policy", "name", name), "no retry policy named %s",
		    name));
	req->result = retry_policy_to_json(p);
	return (REQ_OK);
}

int
m_error_classify(struct ermd_req *req)
{
	struct param_err	 e;
	struct erm_errobj	 eo;
	struct classify_result	 cr;

	errobj_init(&eo);
	if (errobj_from_json(req->params, &eo, 0, &e) == -1)
		return (req_param_fail(req, &e));
	decide_classify(&eo, &cr);
	errobj_clear(&eo);
	req->result = classify_result_to_json(&cr);
	return (REQ_OK);
}
