/*
 * liberm's workflows: build a workflow step by step, submit it, run its
 * client steps through C callbacks while the daemon drives the graph, and
 * wait with progress - the C form of the seed's create_recovery_workflow
 * and execute_recovery_workflow. Everything goes through erm_call and the
 * event queue of the handle.
 */

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "erm.h"

#ifndef ERM_API
#define ERM_API		__attribute__((visibility("default")))
#endif

/* How long the event loop waits before asking whether the workflow ended. */
#define WF_POLL_MS	1000

struct wf_client_step {
	char		*name;
	erm_step_fn	 fn;
	erm_step_fn	 rollback;
	void		*arg;
};

struct erm_workflow {
	json_t			*params;	/* create params */
	struct wf_client_step	*cs;
	size_t			 ncs;
};

ERM_API enum erm_status
erm_workflow_new(const char *name, struct erm_workflow **out)
{
	struct erm_workflow	*wf;

	if (out == NULL)
		return (ERM_EINVAL);
	*out = NULL;
	if (name == NULL || name[0] == '\0')
		return (ERM_EINVAL);
	if ((wf = calloc(1, sizeof(*wf))) == NULL)
		return (ERM_ENOMEM);
	wf->params = json_pack("{s:s, s:[]}", "name", name, "steps");
	if (wf->params == NULL) {
		free(wf);
		return (ERM_EINVAL);
	}
	*out = wf;
	return (ERM_OK);
}

ERM_API void
erm_workflow_free(struct erm_workflow *wf)
{
	size_t	i;

	if (wf == NULL)
		return;
	for (i = 0; i < wf->ncs; i++)
		free(wf->cs[i].name);
	free(wf->cs);
	json_decref(wf->params);
	free(wf);
}

ERM_API json_t *
erm_workflow_params(struct erm_workflow *wf)
{
	return (wf != NULL ? wf->params : NULL);
}

ERM_API json_t *
erm_workflow_last_step(struct erm_workflow *wf)
{
	json_t	*steps;

	if (wf == NULL)
		return (NULL);
	steps = json_object_get(wf->params, "steps");
	if (json_array_size(steps) == 0)
		return (NULL);
	return (json_array_get(steps, json_array_size(steps) - 1));
}

ERM_API enum erm_status
erm_workflow_add(struct erm_workflow *wf, const char *name, json_t *action,
    json_t *compensate, const char *const *after)
{
	json_t	*step = NULL, *a;
	size_t	 i;

	if (wf == NULL || name == NULL || action == NULL)
		goto inval;
	if ((step = json_pack("{s:s, s:O}", "name", name, "action",
	    action)) == NULL)
		goto inval;
	if (compensate != NULL &&
	    json_object_set(step, "compensate", compensate) == -1)
		goto inval;
	if (after != NULL) {
		if ((a = json_array()) == NULL ||
		    json_object_set_new(step, "after", a) == -1)
			goto inval;
		for (i = 0; after[i] != NULL; i++)
			if (json_array_append_new(a, json_string(after[i])) ==
			    -1)
				goto inval;
	}
	if (json_array_append_new(json_object_get(wf->params, "steps"),
	    step) == -1) {
		step = NULL;
		goto inval;
	}
	json_decref(action);
	json_decref(compensate);
	return (ERM_OK);
inval:
	json_decref(step);
	json_decref(action);
	json_decref(compensate);
	return (ERM_EINVAL);
}

ERM_API enum erm_status
erm_workflow_add_client(struct erm_workflow *wf, const char *name,
    erm_step_fn fn, erm_step_fn rollback, void *arg,
    const char *const *after)
{
	struct wf_client_step	*cs;
	enum erm_status		 st;

	if (wf == NULL || name == NULL || fn == NULL)
		return (ERM_EINVAL);
	if ((cs = realloc(wf->cs, (wf->ncs + 1) * sizeof(*cs))) == NULL)
		return (ERM_ENOMEM);
	wf->cs = cs;
	cs = &wf->cs[wf->ncs];
	if ((cs->name = strdup(name)) == NULL)
		return (ERM_ENOMEM);
	cs->fn = fn;
	cs->rollback = rollback;
	cs->arg = arg;
	st = erm_workflow_add(wf, name, json_pack("{s:s}", "type", "client"),
	    rollback != NULL ? json_pack("{s:s}", "type", "client") : NULL,
	    after);
	if (st != ERM_OK) {
		free(cs->name);
		return (st);
	}
	wf->ncs++;
	return (ERM_OK);
}

ERM_API enum erm_status
erm_workflow_submit(struct erm_client *c, struct erm_workflow *wf, char *id,
    size_t idlen)
{
	json_t		*res = NULL;
	const char	*s;
	enum erm_status	 st;

	if (c == NULL || wf == NULL || id == NULL || idlen == 0)
		return (ERM_EINVAL);
	if ((st = erm_call(c, "workflow.create", wf->params, &res)) != ERM_OK)
		return (st);
	s = json_string_value(json_object_get(res, "id"));
	if (s == NULL || strlen(s) >= idlen) {
		json_decref(res);
		return (ERM_EPROTO);
	}
	memcpy(id, s, strlen(s) + 1);
	json_decref(res);
	return (ERM_OK);
}

static int
is_final(const char *state)
{
	return (state != NULL && (strcmp(state, "succeeded") == 0 ||
	    strcmp(state, "failed") == 0 || strcmp(state, "compensated") == 0 ||
	    strcmp(state, "cancelled") == 0));
}

/* Run a client step (or its rollback) and answer the daemon. */
static enum erm_status
run_client_step(struct erm_client *c, struct erm_workflow *wf,
    const char *id, const json_t *ev)
{
	const char		*name = json_string_value(json_object_get(ev,
	    "step"));
	const char		*state = json_string_value(json_object_get(ev,
	    "state"));
	struct erm_errinfo	 err;
	struct wf_client_step	*cs = NULL;
	json_t			*out = NULL, *params, *ej = NULL;
	enum erm_status		 st;
	size_t			 i;
	int			 rc;

	for (i = 0; wf != NULL && name != NULL && i < wf->ncs; i++)
		if (strcmp(wf->cs[i].name, name) == 0)
			cs = &wf->cs[i];
	memset(&err, 0, sizeof(err));
	if (cs == NULL) {
		err.message = "no callback for this step in this process";
		rc = -1;
	} else if (state != NULL && strcmp(state, "compensating") == 0)
		rc = cs->rollback != NULL ? cs->rollback(cs->arg, name, &out,
		    &err) : 0;
	else
		rc = cs->fn(cs->arg, name, &out, &err);
	if (rc != 0 && erm_errinfo_json(&err, &ej) != ERM_OK)
		ej = json_pack("{s:s}", "message", "the step failed");
	params = json_pack("{s:s, s:s?, s:b}", "id", id, "step", name,
	    "ok", rc == 0);
	if (params == NULL) {
		json_decref(out);
		json_decref(ej);
		return (ERM_ENOMEM);
	}
	if (ej != NULL)
		json_object_set_new(params, "error", ej);
	if (out != NULL && json_is_object(out))
		json_object_set(params, "output", out);
	json_decref(out);
	st = erm_call(c, "workflow.step_result", params, NULL);
	json_decref(params);
	return (st);
}

/*
 * The loop of erm_workflow_execute and erm_workflow_wait: hand events of
 * the workflow to progress, run client steps, and ask the daemon whether
 * the workflow is final when a final state goes by or WF_POLL_MS pass
 * quietly (and, when following an existing workflow, at once).
 * timeout_ms 0: no limit.
 */
static enum erm_status
follow(struct erm_client *c, struct erm_workflow *wf, const char *id,
    int timeout_ms, erm_progress_fn progress, void *arg, json_t **final)
{
	json_t		*ev, *res, *p;
	enum erm_status	 st;
	int		 waited = 0, check;
	const char	*evid, *type;

	*final = NULL;
	/* Following an existing workflow: it may be over already. */
	check = wf == NULL;
	for (;;) {
		if (check) {
			p = json_pack("{s:s, s:i}", "id", id, "timeout_ms", 0);
			res = NULL;
			st = erm_call(c, "workflow.wait", p, &res);
			json_decref(p);
			if (st == ERM_OK) {
				*final = res;
				return (ERM_OK);
			}
			if (st != ERM_EREPLY || erm_last_error(c)->code != 1009)
				return (st);
			if (timeout_ms > 0 && waited >= timeout_ms)
				return (ERM_ETIMEDOUT);
		}
		ev = NULL;
		st = erm_next_event(c, WF_POLL_MS, &ev);
		if (st != ERM_OK && st != ERM_ETIMEDOUT)
			return (st);
		check = st == ERM_ETIMEDOUT;
		if (ev != NULL) {
			evid = json_string_value(json_object_get(ev, "id"));
			type = json_string_value(json_object_get(ev, "type"));
			if (evid != NULL && strcmp(evid, id) == 0) {
				if (json_object_get(ev, "action") != NULL) {
					st = run_client_step(c, wf, id, ev);
					if (st != ERM_OK && st != ERM_EREPLY) {
						json_decref(ev);
						return (st);
					}
				} else if (progress != NULL)
					progress(arg, ev);
				if (type != NULL && strcmp(type,
				    "workflow.state") == 0 && is_final(
				    json_string_value(json_object_get(ev,
				    "state"))))
					check = 1;
			}
			json_decref(ev);
		} else
			waited += WF_POLL_MS;
	}
}

static enum erm_status
subscribe(struct erm_client *c)
{
	static const char *const types[] = { "workflow.state",
	    "workflow.step", NULL };

	return (erm_subscribe(c, types));
}

ERM_API enum erm_status
erm_workflow_execute(struct erm_client *c, struct erm_workflow *wf,
    erm_progress_fn progress, void *arg, json_t **final)
{
	char		id[ERM_ID_MAX];
	enum erm_status	st;

	if (c == NULL || wf == NULL || final == NULL)
		return (ERM_EINVAL);
	*final = NULL;
	/* A workflow created with "run": false would never end. */
	if (json_is_false(json_object_get(wf->params, "run")))
		return (ERM_EINVAL);
	/* Subscribed first, so no transition goes by unseen. */
	if ((st = subscribe(c)) != ERM_OK ||
	    (st = erm_workflow_submit(c, wf, id, sizeof(id))) != ERM_OK)
		return (st);
	return (follow(c, wf, id, 0, progress, arg, final));
}

ERM_API enum erm_status
erm_workflow_wait(struct erm_client *c, const char *id, int timeout_ms,
    erm_progress_fn progress, void *arg, json_t **final)
{
	enum erm_status	st;

	if (c == NULL || id == NULL || final == NULL)
		return (ERM_EINVAL);
	*final = NULL;
	if ((st = subscribe(c)) != ERM_OK)
		return (st);
	return (follow(c, NULL, id, timeout_ms, progress, arg, final));
}

ERM_API enum erm_status
erm_workflow_cancel(struct erm_client *c, const char *id, json_t **final)
{
	json_t		*p;
	enum erm_status	 st;

	if (c == NULL || id == NULL)
		return (ERM_EINVAL);
	if ((p = json_pack("{s:s}", "id", id)) == NULL)
		return (ERM_ENOMEM);
	st = erm_call(c, "workflow.cancel", p, final);
	json_decref(p);
	return (st);
}

ERM_API const char *
erm_workflow_state(const json_t *wf)
{
	const char	*s = json_string_value(json_object_get(wf, "state"));

	return (s != NULL ? s : "");
}
