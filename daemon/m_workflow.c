/* The workflow.* methods. */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backup.h"
#include "classify.h"
#include "config.h"
#include "conn.h"
#include "dispatch.h"
#include "erm_proto.h"
#include "ermd.h"
#include "log.h"
#include "methods.h"
#include "workflow.h"

void	wf_note_conn(struct conn *);

static int
not_found(struct ermd_req *req, const char *id)
{
	return (req_fail(req, ERM_NOT_FOUND, json_pack("{s:s, s:s}", "kind",
	    "workflow", "name", id), "no workflow %s", id));
}

static int
limit_fail(struct ermd_req *req, const char *limit, int64_t value)
{
	return (req_fail(req, ERM_LIMIT_EXCEEDED, json_pack("{s:s, s:I}",
	    "limit", limit, "value", (json_int_t)value), "%s (%lld) reached",
	    limit, (long long)value));
}

/* The creator, or an admin, may run, cancel and answer a workflow. */
static int
may_touch(struct ermd_req *req, const struct workflow *wf)
{
	if (req->conn->uid == wf->peer.uid || conn_is_admin(req->conn))
		return (1);
	req_fail(req, ERM_PERMISSION_DENIED, json_pack("{s:I}", "uid",
	    (json_int_t)req->conn->uid), "workflow %s belongs to uid %u",
	    wf->id, (unsigned)wf->peer.uid);
	return (0);
}

static void
created(void *arg, int ok, const char *msg)
{
	struct ermd_req	*req = arg;

	if (!ok) {
		json_decref(req->result);
		req->result = NULL;
		req_fail(req, ERM_IO_ERROR, json_pack("{s:s, s:s}", "errno",
		    "EIO", "path", config_store_path(ermd.cfg)),
		    "the workflow could not be stored: %s", msg);
		req_finish(req, REQ_ERROR);
		return;
	}
	req_finish(req, REQ_OK);
}

int
m_workflow_create(struct ermd_req *req)
{
	static const char *const allowed[] = { "name", "steps",
	    "rollback_on_failure", "compensation",
	    "continue_on_compensation_error", "run", NULL };
	static const char *const modes[] = { "sequential", "parallel", NULL };
	struct param_err	 e;
	struct workflow		*wf;
	const char		*name;
	int			 rollback, mode, cont, run;

	if (params_only(req->params, allowed, &e) == -1 ||
	    param_str_req(req->params, "name", WF_NAME_MAX, &name, &e) == -1 ||
	    param_bool(req->params, "rollback_on_failure", 1, &rollback,
	    &e) == -1 ||
	    param_enum(req->params, "compensation", modes, WF_COMP_SEQUENTIAL,
	    &mode, &e) == -1 ||
	    param_bool(req->params, "continue_on_compensation_error", 0, &cont,
	    &e) == -1 ||
	    param_bool(req->params, "run", 1, &run, &e) == -1)
		return (req_param_fail(req, &e));
	if (json_object_get(req->params, "steps") == NULL) {
		param_fail(&e, "steps", "missing");
		return (req_param_fail(req, &e));
	}
	if (json_array_size(json_object_get(req->params, "steps")) >
	    (size_t)wf_set.max_steps)
		return (limit_fail(req, "workflow.max_steps",
		    wf_set.max_steps));
	if (run && wf_running_count() >= (unsigned)wf_set.max_running)
		return (limit_fail(req, "workflow.max_running",
		    wf_set.max_running));
	if ((wf = wf_alloc()) == NULL ||
	    (wf->spec = json_deep_copy(req->params)) == NULL ||
	    (wf->name = strdup(name)) == NULL) {
		wf_free(wf);
		return (req_fail(req, ERM_INTERNAL_ERROR, NULL,
		    "out of memory"));
	}
	wf->rollback = rollback;
	wf->comp_mode = mode;
	wf->continue_comp = cont;
	if (wf_graph_parse(wf, json_object_get(wf->spec, "steps"),
	    (size_t)wf_set.max_steps, &e) == -1) {
		wf_free(wf);
		return (req_param_fail(req, &e));
	}
	backup_peer(req->conn, &wf->peer);
	wf->exec_allowed = wf_exec_permitted(&wf->peer);
	if (wf_uses_exec(wf) && !wf->exec_allowed) {
		wf_free(wf);
		return (req_fail(req, ERM_PERMISSION_DENIED, json_pack("{s:I}",
		    "uid", (json_int_t)req->conn->uid), "exec steps are only "
		    "for workflow.exec_allow_groups"));
	}
	wf->owner = req->conn->id;
	wf_note_conn(req->conn);
	wf_submit(wf, run, created, req);
	req->result = json_pack("{s:s, s:s}", "id", wf->id, "state",
	    wf_state_name(wf->state));
	return (REQ_ASYNC);
}

static struct workflow *
named(struct ermd_req *req, const char *const *allowed, const char **idp)
{
	struct param_err	 e;
	const char		*id;
	struct workflow		*wf;

	if (params_only(req->params, allowed, &e) == -1 ||
	    param_str_req(req->params, "id", UUID_STRLEN, &id, &e) == -1) {
		req_param_fail(req, &e);
		return (NULL);
	}
	*idp = id;
	if ((wf = wf_find(id)) == NULL)
		not_found(req, id);
	return (wf);
}

/* 409 with the workflow's state: "has finished" and the like, or (what
 * NULL) "is STATE". */
static int
state_conflict(struct ermd_req *req, const char *id, enum wf_state state,
    const char *what)
{
	return (req_fail(req, ERM_CONFLICT, json_pack("{s:s}", "state",
	    wf_state_name(state)), "workflow %s %s%s", id, what != NULL ?
	    what : "is ", what != NULL ? "" : wf_state_name(state)));
}

/*
 * The live workflow params {id} name, if the peer may touch it; NULL
 * after failing req: not found, not allowed, or (finished says how) 409
 * when it has finished and is in the store only.
 */
static struct workflow *
touchable(struct ermd_req *req, const char *const *allowed, const char **id,
    const char *finished)
{
	struct workflow	*wf, *old;

	if ((wf = named(req, allowed, id)) == NULL) {
		if (req->code == ERM_NOT_FOUND &&
		    (old = wf_load(*id)) != NULL) {
			state_conflict(req, *id, old->state, finished);
			wf_free(old);
		}
		return (NULL);
	}
	return (may_touch(req, wf) ? wf : NULL);
}

static int
final_reply(struct ermd_req *req, const char *id)
{
	struct workflow	*wf = wf_load(id);

	if (wf == NULL)
		return (not_found(req, id));
	req->result = wf_to_json(wf);
	wf_free(wf);
	return (REQ_OK);
}

int
m_workflow_get(struct ermd_req *req)
{
	static const char *const allowed[] = { "id", NULL };
	struct param_err	 e;
	struct workflow		*wf;
	const char		*id;

	if (params_only(req->params, allowed, &e) == -1 ||
	    param_str_req(req->params, "id", UUID_STRLEN, &id, &e) == -1)
		return (req_param_fail(req, &e));
	if ((wf = wf_find(id)) == NULL)
		return (final_reply(req, id));
	req->result = wf_to_json(wf);
	return (REQ_OK);
}

int
m_workflow_wait(struct ermd_req *req)
{
	static const char *const allowed[] = { "id", "timeout_ms", NULL };
	struct param_err	 e;
	struct workflow		*wf;
	const char		*id;
	int64_t			 timeout;

	if (params_only(req->params, allowed, &e) == -1 ||
	    param_str_req(req->params, "id", UUID_STRLEN, &id, &e) == -1 ||
	    param_int(req->params, "timeout_ms", 0, INT64_C(86400000) * 365,
	    0, &timeout, &e) == -1)
		return (req_param_fail(req, &e));
	if ((wf = wf_find(id)) == NULL)
		return (final_reply(req, id));
	if (json_object_get(req->params, "timeout_ms") != NULL &&
	    timeout == 0 && !wf_state_final(wf->state))
		return (req_fail(req, ERM_TIMEOUT, NULL, "workflow %s is "
		    "still %s", wf->id, wf_state_name(wf->state)));
	wf_wait(wf, req, timeout);
	return (REQ_ASYNC);
}

int
m_workflow_run(struct ermd_req *req)
{
	static const char *const allowed[] = { "id", NULL };
	struct workflow	*wf;
	const char	*id;

	if ((wf = touchable(req, allowed, &id, "has finished")) == NULL)
		return (REQ_ERROR);
	if (wf->state != WF_PENDING)
		return (state_conflict(req, id, wf->state, NULL));
	if (wf_running_count() >= (unsigned)wf_set.max_running)
		return (limit_fail(req, "workflow.max_running",
		    wf_set.max_running));
	wf_run(wf);
	req->result = json_pack("{s:s, s:s}", "id", wf->id, "state",
	    "running");
	return (REQ_OK);
}

int
m_workflow_cancel(struct ermd_req *req)
{
	static const char *const allowed[] = { "id", NULL };
	struct workflow	*wf;
	const char	*id;

	if ((wf = touchable(req, allowed, &id, "has already finished")) ==
	    NULL)
		return (REQ_ERROR);
	if (wf_state_final(wf->state))
		return (state_conflict(req, id, wf->state,
		    "has already finished"));
	wf_cancel(wf);
	wf_wait(wf, req, 0);
	return (REQ_ASYNC);
}

int
m_workflow_list(struct ermd_req *req)
{
	static const char *const allowed[] = { "state", "limit", NULL };
	static const char *const states[] = { "pending", "running",
	    "succeeded", "failed", "compensating", "compensated", "cancelled",
	    NULL };
	struct param_err	 e;
	int			 state;
	int64_t			 limit;
	json_t			*a;

	if (params_only(req->params, allowed, &e) == -1 ||
	    param_enum(req->params, "state", states, -1, &state, &e) == -1 ||
	    param_int(req->params, "limit", 1, 10000, 100, &limit, &e) == -1)
		return (req_param_fail(req, &e));
	if ((a = wf_list(state, limit)) == NULL)
		return (req_fail(req, ERM_IO_ERROR, json_pack("{s:s, s:s}",
		    "errno", "EIO", "path", config_store_path(ermd.cfg)),
		    "cannot read the stored workflows"));
	req->result = json_pack("{s:o}", "workflows", a);
	return (REQ_OK);
}

int
m_workflow_step_result(struct ermd_req *req)
{
	static const char *const allowed[] = { "id", "step", "ok", "error",
	    "output", NULL };
	struct param_err	 e;
	struct erm_errobj	 eo;
	struct workflow		*wf;
	const char		*id, *step;
	json_t			*err, *out;
	int			 ok, rc;

	if (params_only(req->params, allowed, &e) == -1 ||
	    param_str_req(req->params, "id", UUID_STRLEN, &id, &e) == -1 ||
	    param_str_req(req->params, "step", WF_STEP_NAME_MAX, &step,
	    &e) == -1)
		return (req_param_fail(req, &e));
	if (json_object_get(req->params, "ok") == NULL) {
		param_fail(&e, "ok", "missing");
		return (req_param_fail(req, &e));
	}
	if (param_bool(req->params, "ok", 0, &ok, &e) == -1)
		return (req_param_fail(req, &e));
	err = json_object_get(req->params, "error");
	if (err != NULL) {
		errobj_init(&eo);
		if (!json_is_object(err) || errobj_from_json_at(err, "error",
		    &eo, 0, &e) == -1) {
			if (!json_is_object(err))
				param_fail(&e, "error", "must be an error "
				    "object");
			return (req_param_fail(req, &e));
		}
		errobj_clear(&eo);
	}
	out = json_object_get(req->params, "output");
	if (out != NULL && !json_is_object(out)) {
		param_fail(&e, "output", "must be an object");
		return (req_param_fail(req, &e));
	}
	if ((wf = wf_find(id)) == NULL) {
		if ((wf = wf_load(id)) == NULL)
			return (not_found(req, id));
		wf_free(wf);
		req->result = json_pack("{s:b}", "accepted", 0);
		return (REQ_OK);
	}
	rc = wf_step_result(wf, step, ok, err, out, req->conn->id);
	if (rc == -2)
		return (req_fail(req, ERM_NOT_FOUND, json_pack("{s:s, s:s}",
		    "kind", "step", "name", step), "workflow %s has no step "
		    "%s", id, step));
	req->result = json_pack("{s:b}", "accepted", rc == 0);
	return (REQ_OK);
}
