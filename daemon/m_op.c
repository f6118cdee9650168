/* The op.* methods: operations with recovery over the socket. */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backup.h"
#include "breaker.h"
#include "clock.h"
#include "config.h"
#include "conn.h"
#include "decide.h"
#include "dispatch.h"
#include "erm_proto.h"
#include "ermd.h"
#include "alerts.h"
#include "errors.h"
#include "events.h"
#include "forward.h"
#include "log.h"
#include "methods.h"
#include "metrics.h"
#include "op.h"
#include "report.h"
#include "storage.h"
#include "store.h"

#define OPERATION_MAX	256
#define OP_BACKUPS_MAX	64

/* A finished op's row, copied for the writer thread. */
struct op_row {
	struct ermd_req	*req;		/* NULL: nothing waits */
	int		 status;
	char		 id[UUID_STRLEN + 1];
	char		*operation, *state, *reason, *breaker;
	int		 attempts, failures, recovered;
	int64_t		 started_at, finished_at, uid, pid;
	char		*errors, *backups;
	char		*outbox;	/* erm_recoveries row, or NULL */
	int		 severity;	/* of the outbox row */
};

static struct metric	*m_recovered, *m_failed;

static int
row_run(struct store_tx *tx, void *arg)
{
	struct op_row	*r = arg;

	if (store_tx_exec(tx, "INSERT OR REPLACE INTO ops (id, operation, "
	    "state, reason, breaker, attempts, failures, recovered, "
	    "started_at, finished_at, errors, backups, peer_uid, peer_pid) "
	    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
	    "tttttiiiiittii", r->id, r->operation, r->state, r->reason,
	    r->breaker, (int64_t)r->attempts, (int64_t)r->failures,
	    (int64_t)r->recovered, r->started_at, r->finished_at, r->errors,
	    r->backups, r->uid, r->pid) == -1)
		return (-1);
	/* The outbox row commits with the op it carries. */
	if (r->outbox != NULL && forward_tx_enqueue(tx, FWD_RECOVERIES, r->id,
	    r->outbox, r->severity, r->finished_at) == -1)
		return (-1);
	return (0);
}

static void
row_free(struct op_row *r)
{
	free(r->operation);
	free(r->state);
	free(r->reason);
	free(r->breaker);
	free(r->errors);
	free(r->backups);
	free(r->outbox);
	free(r);
}

static void
row_done(void *arg, const struct store_result *res)
{
	struct op_row	*r = arg;

	if (!res->ok)
		log_warnx("op %s: cannot store: %s", r->id, res->msg);
	else if (r->outbox != NULL)
		forward_enqueued(FWD_RECOVERIES, 1);
	if (r->req != NULL) {
		if (!res->ok) {
			json_decref(r->req->result);
			r->req->result = NULL;
			req_fail(r->req, ERM_IO_ERROR, json_pack("{s:s, s:s}",
			    "errno", res->err == ENOSPC ? "ENOSPC" : "EIO",
			    "path", config_store_path(ermd.cfg)),
			    "the op's outcome could not be stored: %s",
			    res->msg);
			req_finish(r->req, REQ_ERROR);
		} else
			req_finish(r->req, r->status);
	}
	row_free(r);
}

/*
 * End op in state, publish op.finished, and store it; req (may be NULL)
 * is answered with status once the row is committed. Returns what the
 * handler returns.
 */
static int
finish(struct op *op, enum op_state state, const char *reason,
    struct ermd_req *req, int status)
{
	struct op_row	*r;

	op_finish(op, state, reason);
	op_count_finished(op);
	if (op->failures > 0)
		metric_inc(state == OP_SUCCEEDED ? m_recovered : m_failed);
	events_emit(EV_OP_FINISHED, json_pack("{s:s, s:s, s:s, s:i, s:b, s:s?}",
	    "op", op->id, "operation", op->operation, "state",
	    op_state_name(state), "attempts", op->attempts, "recovered",
	    state == OP_SUCCEEDED && op->failures > 0, "reason",
	    op->reason[0] ? op->reason : NULL));
	if ((r = calloc(1, sizeof(*r))) == NULL)
		goto oom;
	r->req = req;
	r->status = status;
	memcpy(r->id, op->id, sizeof(r->id));
	r->operation = strdup(op->operation);
	r->state = strdup(op_state_name(state));
	r->reason = op->reason[0] ? strdup(op->reason) : NULL;
	r->breaker = op->breaker ? strdup(op->breaker) : NULL;
	r->attempts = op->attempts;
	r->failures = op->failures;
	r->recovered = state == OP_SUCCEEDED && op->failures > 0;
	r->started_at = (int64_t)op->started_at;
	r->finished_at = (int64_t)op->finished_at;
	r->uid = (int64_t)op->uid;
	r->pid = (int64_t)op->pid;
	r->errors = erm_json_text(op->errors, 1 << 24);
	r->backups = erm_json_text(op->backups, 1 << 24);
	r->outbox = forward_recovery_row(op);
	r->severity = state == OP_SUCCEEDED ? SEV_INFO : SEV_ERROR;
	decide_flush();		/* the breaker's change commits first */
	if (r->operation == NULL || r->state == NULL || r->errors == NULL ||
	    r->backups == NULL || store_submit(row_run, row_done, r) == -1) {
		row_free(r);
		goto oom;
	}
	return (req != NULL ? REQ_ASYNC : status);
oom:
	log_warnx("op %s: out of memory storing it", op->id);
	return (status);
}

static int
not_found(struct ermd_req *req, const char *id)
{
	return (req_fail(req, ERM_NOT_FOUND, json_pack("{s:s, s:s}", "kind",
	    "op", "name", id), "no op %s", id));
}

/* The running op a request names, or a reply saying why there is none. */
static struct op *
running_op(struct ermd_req *req, int *rc)
{
	struct param_err	 e;
	const char		*id;
	struct op		*op;

	*rc = REQ_ERROR;
	if (param_str_req(req->params, "op", UUID_STRLEN, &id, &e) == -1) {
		req_param_fail(req, &e);
		return (NULL);
	}
	if ((op = op_find(id)) == NULL) {
		not_found(req, id);
		return (NULL);
	}
	if (op->state != OP_RUNNING) {
		req_fail(req, ERM_CONFLICT, json_pack("{s:s}", "state",
		    op_state_name(op->state)), "op %s has already %s", id,
		    op->state == OP_SUCCEEDED ? "succeeded" : "ended");
		return (NULL);
	}
	if (op->owner != req->conn->id) {
		/* An op belongs to the connection that began it: its breaker
		 * permits are leases of that connection. */
		req_fail(req, ERM_PERMISSION_DENIED, json_pack("{s:I}", "uid",
		    (json_int_t)req->conn->uid), "op %s belongs to another "
		    "connection", id);
		return (NULL);
	}
	return (op);
}

/*
 * The part of op.begin after its backups (if any) are made: the budget,
 * the breaker's permit for the first attempt, the reply.
 */
static int
begin_rest(struct ermd_req *req, struct op *op)
{
	struct breaker_permit_info	pi;
	int				rc;

	(void)retry_budget_note_request(decide_budget(), op->key, &op->policy);
	if (op->breaker != NULL) {
		memset(&pi, 0, sizeof(pi));
		rc = breaker_acquire(decide_breakers(), op->breaker,
		    req->conn->id, &pi);
		if (rc == ERM_BREAKER_OPEN) {
			req_fail(req, rc, json_pack("{s:s, s:s, s:I, s:s}",
			    "breaker", op->breaker, "state",
			    breaker_state_name(pi.state), "retry_after_ms",
			    (json_int_t)pi.retry_after_ms, "op", op->id),
			    "breaker %s is %s", op->breaker,
			    breaker_state_name(pi.state));
			return (decide_reply(req, finish(op, OP_REJECTED,
			    "breaker_open", NULL, REQ_ERROR)));
		}
		if (rc != 0) {
			op_finish(op, OP_FAILED, "bad request");
			return (req_fail(req, rc, rc == ERM_LIMIT_EXCEEDED ?
			    json_pack("{s:s, s:I}", "limit", "max_breakers",
			    "value", (json_int_t)ermd.cfg->max_breakers) : NULL,
			    "breaker %s: cannot acquire", op->breaker));
		}
		snprintf(op->permit, sizeof(op->permit), "%s", pi.permit);
	}
	req->result = json_pack("{s:s, s:i, s:O}", "op", op->id, "attempt", 1,
	    "backups", op->backups);
	if (op->permit[0] != '\0')
		json_object_set_new(req->result, "permit",
		    json_string(op->permit));
	return (decide_reply(req, REQ_OK));
}

/* op.begin waiting for the backups of its paths. */
struct begin_wait {
	struct ermd_req		*req;
	char			 id[UUID_STRLEN + 1];
	size_t			 pending;
	struct backup_err	 err;		/* the first failure */
	int			 failed;
};

static void
begin_backed_up(void *arg, json_t *result, const struct backup_err *e)
{
	struct begin_wait	*w = arg;
	struct ermd_req		*req = w->req;
	struct op		*op = op_find(w->id);
	int			 rc;

	if (e != NULL && !w->failed) {
		w->failed = 1;
		w->err.code = e->code;
		memcpy(w->err.msg, e->msg, sizeof(w->err.msg));
		w->err.data = json_incref(e->data);
	} else if (e == NULL && op != NULL)
		json_array_append_new(op->backups, json_pack("{s:O, s:O}",
		    "path", json_object_get(result, "path"), "backup_id",
		    json_object_get(result, "id")));
	if (--w->pending > 0)
		return;
	if (op == NULL || op->state != OP_RUNNING)
		rc = req_fail(req, ERM_CANCELLED, NULL, "the op ended while its "
		    "backups were made");
	else if (w->failed) {
		(void)finish(op, OP_FAILED, "backup_failed", NULL, REQ_OK);
		rc = req_fail(req, w->err.code, w->err.data, "backup: %s",
		    w->err.msg);
		w->err.data = NULL;	/* req_fail stole it */
	} else
		rc = begin_rest(req, op);
	json_decref(w->err.data);
	free(w);
	if (rc != REQ_ASYNC)
		req_finish(req, rc);
}

/* Start a backup of every path in paths (validated); REQ_ASYNC or error. */
static int
begin_backups(struct ermd_req *req, struct op *op, json_t *paths)
{
	struct begin_wait	*w;
	struct peer		 p;
	json_t			*v;
	size_t			 i;

	if ((w = calloc(1, sizeof(*w))) == NULL)
		return (req_fail(req, ERM_INTERNAL_ERROR, NULL,
		    "out of memory"));
	w->req = req;
	memcpy(w->id, op->id, sizeof(w->id));
	w->pending = json_array_size(paths);
	backup_peer(req->conn, &p);
	json_array_foreach(paths, i, v) {
		if (backup_create_async(json_string_value(v),
		    json_string_length(v), NULL, &p, begin_backed_up,
		    w) == NULL) {
			/* Those already started still call back. */
			w->failed = 1;
			w->err.code = ERM_INTERNAL_ERROR;
			snprintf(w->err.msg, sizeof(w->err.msg),
			    "out of memory");
			w->pending -= json_array_size(paths) - i;
			if (w->pending == 0) {
				free(w);
				op_finish(op, OP_FAILED, "backup_failed");
				return (req_fail(req, ERM_INTERNAL_ERROR, NULL,
				    "out of memory"));
			}
			break;
		}
	}
	return (REQ_ASYNC);
}

int
m_op_begin(struct ermd_req *req)
{
	static const char *const allowed[] = { "operation", "breaker",
	    "policy", "backup", "deadline_ms", NULL };
	struct param_err	 e;
	struct op		*op;
	const char		*operation, *breaker, *pname;
	json_t			*paths, *v;
	int64_t			 deadline;
	size_t			 i;

	if (params_only(req->params, allowed, &e) == -1 ||
	    param_str_req(req->params, "operation", OPERATION_MAX, &operation,
	    &e) == -1 ||
	    param_str(req->params, "breaker", BREAKER_NAME_MAX, &breaker,
	    &e) == -1 ||
	    param_int(req->params, "deadline_ms", 0, INT64_C(315360000000), 0,
	    &deadline, &e) == -1)
		return (req_param_fail(req, &e));
	if (operation[0] == '\0') {
		param_fail(&e, "operation", "must not be empty");
		return (req_param_fail(req, &e));
	}
	if (breaker != NULL && !breaker_name_valid(breaker)) {
		param_fail(&e, "breaker", "1-128 bytes of A-Z a-z 0-9 . _ : / -");
		return (req_param_fail(req, &e));
	}
	paths = json_object_get(req->params, "backup");
	if (paths != NULL && (!json_is_array(paths) ||
	    json_array_size(paths) > OP_BACKUPS_MAX)) {
		param_fail(&e, "backup", "must be an array of at most %d paths",
		    OP_BACKUPS_MAX);
		return (req_param_fail(req, &e));
	}
	json_array_foreach(paths, i, v)
		if (!json_is_string(v)) {
			param_fail(&e, "backup", "must be an array of paths");
			return (req_param_fail(req, &e));
		}
	/* Each running op is held in memory until its client ends it. */
	if (op_running() >= (size_t)ermd.cfg->max_ops)
		return (req_fail(req, ERM_LIMIT_EXCEEDED, json_pack("{s:s, s:I}",
		    "limit", "max_ops", "value", (json_int_t)ermd.cfg->max_ops),
		    "too many running ops"));
	if ((op = op_new(operation, req->conn->id, req->conn->uid,
	    req->conn->pid)) == NULL)
		return (req_fail(req, ERM_INTERNAL_ERROR, NULL,
		    "out of memory"));
	if (decide_request_policy(req, "policy", &op->policy, &pname) != 0) {
		op_finish(op, OP_FAILED, "bad request");
		return (REQ_ERROR);
	}
	op->deadline_ms = deadline;
	op->key = strdup(breaker != NULL ? breaker : pname);
	op->breaker = breaker != NULL ? strdup(breaker) : NULL;
	if (json_array_size(paths) > 0)
		return (begin_backups(req, op, paths));
	return (begin_rest(req, op));
}

/* Record the attempt's outcome on the op's breaker, with its permit. */
static void
record_attempt(struct op *op, enum breaker_outcome outcome,
    enum category cat, const json_t *error)
{
	struct breaker_call		call;
	struct breaker_record_result	res;

	if (op->breaker == NULL)
		return;
	memset(&call, 0, sizeof(call));
	call.outcome = outcome;
	call.duration_ms = (int64_t)(clock_now_ms() - op->attempt_at);
	call.category = cat;
	call.error = error;
	(void)breaker_record(decide_breakers(), op->breaker,
	    op->permit[0] ? op->permit : NULL, &call, &res);
	op->permit[0] = '\0';
}

/*
 * Answer op.fail with the decision d and, unless it is a retry, end the
 * op. Returns what the handler returns.
 */
static int
conclude(struct ermd_req *req, struct op *op, const struct classify_result *cr,
    struct op_decided *d)
{
	json_t	*strategy;
	int	 rc;

	strategy = classify_result_to_json(cr);
	json_decref(req->result);
	req->result = json_pack("{s:s, s:s, s:O, s:i, s:o}", "decision",
	    op_decision_name(d->decision), "category",
	    category_name(cr->category), "strategy",
	    json_object_get(strategy, "strategy"), "attempt", op->attempts,
	    "rolled_back", d->rolled_back != NULL ? d->rolled_back :
	    json_array());
	d->rolled_back = NULL;		/* stolen by the reply */
	json_decref(strategy);
	if (d->decision == DECIDE_RETRY) {
		/* "attempt" stays the one that failed: the next is attempt+1. */
		op->attempts++;
		op->last_delay_ms = d->delay_ms;
		op->attempt_at = clock_now_ms() + (uint64_t)d->delay_ms;
		snprintf(op->permit, sizeof(op->permit), "%s", d->permit);
		json_object_set_new(req->result, "delay_ms",
		    json_integer(d->delay_ms));
		if (d->permit[0] != '\0')
			json_object_set_new(req->result, "permit",
			    json_string(d->permit));
		return (decide_reply(req, REQ_OK));
	}
	if (d->decision == DECIDE_FALLBACK)
		json_object_set_new(req->result, "backend",
		    json_string(d->backend));
	if (d->decision == DECIDE_ESCALATE) {
		log_warnx("op %s (%s): escalated after %d attempt%s: %s",
		    op->id, op->operation, op->attempts,
		    op->attempts == 1 ? "" : "s", category_name(cr->category));
		alerts_escalate(op, category_name(cr->category)); /* issue 4 */
	}
	else if (d->decision == DECIDE_SKIP)
		log_info("op %s (%s): skipped: %s", op->id, op->operation,
		    category_name(cr->category));
	else if (d->decision == DECIDE_ROLLBACK)
		log_info("op %s (%s): rolled back %zu file%s", op->id,
		    op->operation, json_array_size(json_object_get(req->result,
		    "rolled_back")), json_array_size(json_object_get(
		    req->result, "rolled_back")) == 1 ? "" : "s");
	rc = finish(op, OP_FAILED, op_decision_name(d->decision), req, REQ_OK);
	return (rc == REQ_ASYNC ? REQ_ASYNC : decide_reply(req, rc));
}

/* op.fail carrying out a rollback: every backup of the op restored. */
struct rollback_wait {
	struct ermd_req		*req;
	char			 id[UUID_STRLEN + 1];
	struct classify_result	 cr;
	int			 step;
	size_t			 pending;
	int			 failed;
	json_t			*rolled_back;
};

static void
rolled_back(void *arg, json_t *result, const struct backup_err *e)
{
	struct rollback_wait	*w = arg;
	struct ermd_req		*req = w->req;
	struct op		*op = op_find(w->id);
	struct op_decided	 d;
	struct erm_errobj	 none;
	int			 rc;

	memset(&d, 0, sizeof(d));
	if (e != NULL) {
		w->failed = 1;
		log_warnx("op %s: rollback: %s", w->id, e->msg);
	} else
		json_array_append_new(w->rolled_back, json_pack("{s:O, s:O}",
		    "path", json_object_get(result, "path"), "backup_id",
		    json_object_get(result, "id")));
	if (--w->pending > 0)
		return;
	if (op == NULL || op->state != OP_RUNNING)
		rc = req_fail(req, ERM_CANCELLED, NULL, "the op ended during "
		    "its rollback");
	else if (w->failed) {
		/* Go on with the plan after the rollback. */
		op->rollback_failed = 1;
		errobj_init(&none);
		op_decide_after(op, &w->cr, &none, w->step, &d);
		d.rolled_back = json_incref(w->rolled_back);
		rc = conclude(req, op, &w->cr, &d);
	} else {
		memset(&d, 0, sizeof(d));
		d.decision = DECIDE_ROLLBACK;
		d.strategy = STRAT_ROLLBACK;
		d.rolled_back = json_incref(w->rolled_back);
		rc = conclude(req, op, &w->cr, &d);
	}
	json_decref(d.rolled_back);
	json_decref(w->rolled_back);
	free(w);
	if (rc != REQ_ASYNC)
		req_finish(req, rc);
}

static int
start_rollback(struct ermd_req *req, struct op *op,
    const struct classify_result *cr, const struct op_decided *d)
{
	struct rollback_wait	*w;
	struct peer		 p;
	json_t			*b;
	size_t			 i, n = json_array_size(op->backups);

	if ((w = calloc(1, sizeof(*w))) == NULL ||
	    (w->rolled_back = json_array()) == NULL) {
		free(w);
		return (req_fail(req, ERM_INTERNAL_ERROR, NULL,
		    "out of memory"));
	}
	w->req = req;
	memcpy(w->id, op->id, sizeof(w->id));
	w->cr = *cr;
	w->step = d->step;
	w->pending = n;
	backup_peer(req->conn, &p);
	json_array_foreach(op->backups, i, b) {
		if (backup_restore_async(json_string_value(json_object_get(b,
		    "backup_id")), NULL, 0, &p, rolled_back, w) == NULL) {
			w->failed = 1;
			w->pending -= n - i;
			if (w->pending == 0) {
				json_decref(w->rolled_back);
				free(w);
				return (req_fail(req, ERM_INTERNAL_ERROR, NULL,
				    "out of memory"));
			}
			break;
		}
	}
	return (REQ_ASYNC);
}

int
m_op_fail(struct ermd_req *req)
{
	static const char *const allowed[] = { "op", "error", NULL };
	struct param_err	 e;
	struct erm_errobj	 eo;
	struct classify_result	 cr;
	struct op_decided	 d;
	struct op		*op;
	json_t			*ej, *err;
	int			 rc;

	if (params_only(req->params, allowed, &e) == -1)
		return (req_param_fail(req, &e));
	if ((op = running_op(req, &rc)) == NULL)
		return (rc);
	ej = json_object_get(req->params, "error");
	if (ej == NULL || !json_is_object(ej)) {
		param_fail(&e, "error", ej == NULL ? "missing" :
		    "must be an error object");
		return (req_param_fail(req, &e));
	}
	errobj_init(&eo);
	if (errobj_from_json_at(ej, "error", &eo, 0, &e) == -1)
		return (req_param_fail(req, &e));
	decide_classify(&eo, &cr);
	err = errobj_to_json(&eo);
	record_attempt(op, OUTCOME_FAILURE, cr.category, err);
	json_object_set_new(err, "category",
	    json_string(category_name(cr.category)));
	json_object_set_new(err, "attempt", json_integer(op->attempts));
	json_object_set_new(err, "at", json_integer(
	    (json_int_t)clock_now_ms()));
	json_array_append_new(op->errors, err);
	op->failures++;

	op_decide(op, &cr, &eo, &d);
	errobj_clear(&eo);
	if (d.decision == DECIDE_ROLLBACK)
		return (start_rollback(req, op, &cr, &d));
	return (conclude(req, op, &cr, &d));
}

int
m_op_succeed(struct ermd_req *req)
{
	static const char *const allowed[] = { "op", "result", NULL };
	struct param_err	 e;
	struct op		*op;
	json_t			*result;
	int			 rc;

	if (params_only(req->params, allowed, &e) == -1)
		return (req_param_fail(req, &e));
	result = json_object_get(req->params, "result");
	if (result != NULL && !json_is_object(result)) {
		param_fail(&e, "result", "must be an object");
		return (req_param_fail(req, &e));
	}
	if ((op = running_op(req, &rc)) == NULL)
		return (rc);
	record_attempt(op, OUTCOME_SUCCESS, CAT_NONE, NULL);
	req->result = json_pack("{s:s, s:i, s:b}", "op", op->id, "attempts",
	    op->attempts, "recovered", op->failures > 0);
	rc = finish(op, OP_SUCCEEDED, NULL, req, REQ_OK);
	return (rc == REQ_ASYNC ? REQ_ASYNC : decide_reply(req, rc));
}

/* A stored op, for op.get of one that left memory. */
static int
stored_op(const struct store_row *row, void *arg)
{
	json_t		**out = arg;
	json_t		 *errors, *backups;

	errors = erm_json_parse_text(store_row_text(row, 6));
	backups = erm_json_parse_text(store_row_text(row, 7));
	*out = json_pack("{s:s, s:s, s:s, s:i, s:o, s:o, s:I, s:I, s:b}",
	    "op", store_row_text(row, 0), "operation", store_row_text(row, 1),
	    "state", store_row_text(row, 2), "attempts",
	    (int)store_row_int(row, 3), "errors",
	    errors ? errors : json_array(), "backups",
	    backups ? backups : json_array(), "started_at",
	    (json_int_t)store_row_int(row, 4), "finished_at",
	    (json_int_t)store_row_int(row, 5), "recovered",
	    (int)store_row_int(row, 8));
	if (*out != NULL && !store_row_isnull(row, 9))
		json_object_set_new(*out, "reason",
		    json_string(store_row_text(row, 9)));
	if (*out != NULL && !store_row_isnull(row, 10))
		json_object_set_new(*out, "breaker",
		    json_string(store_row_text(row, 10)));
	return (1);
}

int
m_op_get(struct ermd_req *req)
{
	static const char *const allowed[] = { "op", NULL };
	struct param_err	 e;
	struct op		*op;
	const char		*id;
	json_t			*found = NULL;

	if (params_only(req->params, allowed, &e) == -1 ||
	    param_str_req(req->params, "op", UUID_STRLEN, &id, &e) == -1)
		return (req_param_fail(req, &e));
	if ((op = op_find(id)) != NULL) {
		req->result = op_to_json(op);
		return (REQ_OK);
	}
	if (store_query(stored_op, &found, "SELECT id, operation, state, "
	    "attempts, started_at, finished_at, errors, backups, recovered, "
	    "reason, breaker FROM ops WHERE id = ?", "t", id) == -1)
		return (req_fail(req, ERM_IO_ERROR, json_pack("{s:s, s:s}",
		    "errno", "EIO", "path", config_store_path(ermd.cfg)),
		    "cannot read the stored ops"));
	if (found == NULL)
		return (not_found(req, id));
	req->result = found;
	return (REQ_OK);
}

/*
 * A connection that closes abandons its running ops: each is logged up to
 * ABANDON_LOGGED, then one line says how many more (a client may leave
 * thousands behind).
 */
#define ABANDON_LOGGED	10

static void
conn_closed(struct conn *c)
{
	struct op	*op;
	size_t		 n = 0;

	while ((op = op_running_of(c->id)) != NULL) {
		if (n++ < ABANDON_LOGGED)
			log_info("op %s (%s): abandoned: its connection closed",
			    op->id, op->operation);
		op->permit[0] = '\0';	/* the breaker released it already */
		(void)finish(op, OP_FAILED, "abandoned", NULL, REQ_OK);
	}
	if (n > ABANDON_LOGGED)
		log_info("%zu more ops abandoned with that connection",
		    n - ABANDON_LOGGED);
}

static int
count_row(const struct store_row *row, void *arg)
{
	uint64_t	*v = arg;

	v[0] = (uint64_t)store_row_int(row, 0);
	v[1] = (uint64_t)store_row_int(row, 1);
	v[2] = (uint64_t)store_row_int(row, 2);
	return (1);
}

static void
report_metrics(json_t *m)
{
	uint64_t	a, s, f;

	op_recoveries(&a, &s, &f);
	json_object_set_new(m, "successful_recoveries",
	    json_integer((json_int_t)s));
	json_object_set_new(m, "failed_recoveries",
	    json_integer((json_int_t)f));
	json_object_set_new(m, "recovery_rate", a == 0 ? json_integer(-1) :
	    json_real(100.0 * (double)s / (double)a));
}

static const struct reporter reporter = { NULL, report_metrics };

/*
 * fallback_storage: the next healthy backend the op has not been given
 * yet, so that an op failing on its fallback moves on down the list.
 */
static int
fallback_backend(struct op *op, char *backend, size_t len)
{
	struct storage_choice	 c;
	const char		*names[64];
	size_t			 i, n = json_array_size(op->fallbacks);

	if (n > 64)
		n = 64;
	for (i = 0; i < n; i++)
		names[i] = json_string_value(json_array_get(op->fallbacks, i));
	if (storage_select_next(names, n, &c) == -1)
		return (-1);
	snprintf(backend, len, "%s", c.name);
	json_array_append_new(op->fallbacks, json_string(c.name));
	return (0);
}

static const struct op_recovery recovery = { fallback_backend };

void
m_op_start(void)
{
	static const char *const lr[] = { "result", NULL };
	struct metric_family	*f;
	uint64_t		 v[3] = { 0, 0, 0 };

	op_start();
	op_set_recovery(&recovery);
	/* Recovery figures cover every op ever stored, pruned ones too. */
	(void)store_query(count_row, v, "SELECT count(*) + (SELECT recovered "
	    "+ failed FROM ops_pruned), coalesce(sum(state = 'succeeded'), 0) "
	    "+ (SELECT recovered FROM ops_pruned), "
	    "coalesce(sum(state != 'succeeded'), 0) + (SELECT failed FROM "
	    "ops_pruned) FROM ops WHERE failures > 0", NULL);
	op_recoveries_init(v[0], v[1], v[2]);
	f = metrics_family("ermd_recoveries_total", "Ops that failed at least "
	    "once, by how they ended.", METRIC_COUNTER, lr);
	m_recovered = metrics_series(f, "recovered");
	m_failed = metrics_series(f, "failed");
	metric_add(m_recovered, (double)v[1]);
	metric_add(m_failed, (double)v[2]);
	conn_on_close(conn_closed);
	report_register(&reporter);
}

void
m_op_stop(void)
{
	op_stop();
}
