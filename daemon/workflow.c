/*
 * Durable workflows: the step graph, the state machine, its records in the
 * store, and the resumption of unfinished workflows at start.
 *
 * The rule that makes a workflow survive a crash: a transition is applied
 * in memory, written by a store job, and the action it leads to starts
 * only from that job's completion. Store jobs commit in the order they
 * were submitted, so the `succeeded` of a step is durable before the
 * `running` of a step after it, and that `running` is durable before its
 * action starts. What the tables say at a crash is therefore an upper
 * bound on what ran: a step recorded `running` may have run (all, part or
 * none of it); one recorded `succeeded` ran to its end and is never run
 * again. Group commit lets every workflow's transitions of one loop pass
 * share one fsync.
 */

#include <ctype.h>
#include <errno.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "breaker.h"
#include "classify.h"
#include "clock.h"
#include "config.h"
#include "conn.h"
#include "decide.h"
#include "dispatch.h"
#include "erm_proto.h"
#include "ermd.h"
#include "events.h"
#include "http.h"
#include "log.h"
#include "metrics.h"
#include "names.h"
#include "opts.h"
#include "periodic.h"
#include "report.h"
#include "store.h"
#include "wf_exec.h"
#include "workflow.h"

/* Breaker permits of workflow steps belong to no connection. */
#define WF_BREAKER_OWNER	(UINT64_MAX - 1)

#define WF_MAX_AGE_DEFAULT	INT64_C(604800000)	/* 7 days */
#define WF_PRUNE_EVERY_DEFAULT	60000
#define WF_PRUNE_BATCH		500	/* workflows deleted per job */

struct wf_settings	wf_set = { WF_MAX_RUNNING_DEFAULT,
			    WF_MAX_STEPS_DEFAULT, 5000, WF_MAX_AGE_DEFAULT,
			    WF_PRUNE_EVERY_DEFAULT, NULL, 0 };

static const char *const wf_state_names[WF_NSTATES] = { "pending",
    "running", "succeeded", "failed", "compensating", "compensated",
    "cancelled" };
static const char *const ws_names[WS_NSTATES] = { "pending", "running",
    "succeeded", "failed", "skipped", "compensating", "compensated",
    "compensation_failed" };

const char *
wf_state_name(enum wf_state s)
{
	return ((unsigned)s < WF_NSTATES ? wf_state_names[s] : "?");
}

const char *
wf_step_state_name(enum wf_step_state s)
{
	return ((unsigned)s < WS_NSTATES ? ws_names[s] : "?");
}

int
wf_state_from_name(const char *s)
{
	return (name_index(wf_state_names, 0, WF_NSTATES, s));
}

int
wf_step_state_from_name(const char *s)
{
	return (name_index(ws_names, 0, WS_NSTATES, s));
}

int
wf_state_final(enum wf_state s)
{
	return (s == WF_SUCCEEDED || s == WF_FAILED || s == WF_COMPENSATED ||
	    s == WF_CANCELLED);
}

/* ---- the graph ---------------------------------------------------------- */

/* e->field = prefix.member, truncated to fit. */
static void
set_field(struct param_err *e, const char *prefix, const char *member)
{
	char	f[256];
	size_t	l;

	if (snprintf(f, sizeof(f), "%s.%s", prefix, member) < 0)
		return;
	l = strlen(f);
	if (l >= sizeof(e->field))
		l = sizeof(e->field) - 1;
	memcpy(e->field, f, l);
	e->field[l] = '\0';
}

static int
only(const json_t *o, const char *const *allowed, const char *prefix,
    struct param_err *e)
{
	char	m[64];

	if (params_only(o, allowed, e) == -1) {
		memcpy(m, e->field, sizeof(m));
		set_field(e, prefix, m);
		return (-1);
	}
	return (0);
}

static int
str_member(const json_t *o, const char *key, const char *prefix, int req,
    int absolute, size_t maxlen, struct param_err *e)
{
	const json_t	*v = json_object_get(o, key);
	char		 f[64];

	snprintf(f, sizeof(f), "%s.%s", prefix, key);
	if (v == NULL) {
		if (req)
			return (param_fail(e, f, "missing"));
		return (0);
	}
	if (!json_is_string(v))
		return (param_fail(e, f, "must be a string"));
	if (json_string_length(v) > maxlen)
		return (param_fail(e, f, "longer than %zu bytes", maxlen));
	if (strlen(json_string_value(v)) != json_string_length(v))
		return (param_fail(e, f, "must not hold a NUL byte"));
	if (absolute && json_string_value(v)[0] != '/')
		return (param_fail(e, f, "must be an absolute path"));
	return (0);
}

static int
str_map(const json_t *o, const char *key, const char *prefix, int env,
    struct param_err *e)
{
	const json_t	*m = json_object_get(o, key), *v;
	const char	*k;
	char		 f[64];

	snprintf(f, sizeof(f), "%s.%s", prefix, key);
	if (m == NULL)
		return (0);
	if (!json_is_object(m) || json_object_size(m) > 1024)
		return (param_fail(e, f, "must be an object of at most 1024 "
		    "strings"));
	json_object_foreach((json_t *)m, k, v) {
		if (!json_is_string(v) ||
		    strlen(json_string_value(v)) != json_string_length(v))
			return (param_fail(e, f, "'%.64s' must be a string",
			    k));
		if (k[0] == '\0' || (env && strchr(k, '=') != NULL) ||
		    (!env && strpbrk(k, ":\r\n") != NULL))
			return (param_fail(e, f, "bad name '%.64s'", k));
		if (!env && strpbrk(json_string_value(v), "\r\n") != NULL)
			return (param_fail(e, f, "'%.64s' holds a line break",
			    k));
	}
	return (0);
}

int	wf_b64_decode(const char *, char **, size_t *);

int
wf_action_check(const json_t *a, const char *prefix, struct param_err *e)
{
	static const char *const types[] = { "exec", "copy", "move", "write",
	    "delete", "mkdir", "backup", "restore", "http", "sleep", "client",
	    NULL };
	static const char *const k_exec[] = { "type", "argv", "env", "cwd",
	    NULL };
	static const char *const k_2[] = { "type", "src", "dst", NULL };
	static const char *const k_write[] = { "type", "path", "content",
	    "content_base64", NULL };
	static const char *const k_path[] = { "type", "path", NULL };
	static const char *const k_restore[] = { "type", "path", "backup_id",
	    NULL };
	static const char *const k_http[] = { "type", "method", "url",
	    "headers", "body", "expect_status", NULL };
	static const char *const k_sleep[] = { "type", "ms", NULL };
	static const char *const k_client[] = { "type", NULL };
	const json_t	*v;
	const char	*s;
	char		 f[64], *dec;
	size_t		 i, n;
	int		 t;
	int64_t		 ms;

	if (!json_is_object(a))
		return (param_fail(e, prefix, "must be an action object"));
	snprintf(f, sizeof(f), "%s.type", prefix);
	if (param_enum(a, "type", types, -1, &t, e) == -1 || t == -1) {
		if (t == -1 && json_object_get(a, "type") == NULL)
			param_fail(e, "type", "missing");
		snprintf(e->field, sizeof(e->field), "%s", f);
		return (-1);
	}
	switch (t) {
	case 0:
		if (only(a, k_exec, prefix, e) == -1 ||
		    str_member(a, "cwd", prefix, 0, 1, 4096, e) == -1 ||
		    str_map(a, "env", prefix, 1, e) == -1)
			return (-1);
		v = json_object_get(a, "argv");
		snprintf(f, sizeof(f), "%s.argv", prefix);
		n = json_array_size(v);
		if (!json_is_array(v) || n == 0 || n > 4096)
			return (param_fail(e, f, "must be an array of 1 to "
			    "4096 strings"));
		for (i = 0; i < n; i++) {
			s = json_string_value(json_array_get(v, i));
			if (s == NULL || strlen(s) !=
			    json_string_length(json_array_get(v, i)))
				return (param_fail(e, f, "element %zu must be "
				    "a string without NUL bytes", i));
		}
		if (json_string_value(json_array_get(v, 0))[0] == '\0')
			return (param_fail(e, f, "argv[0] must not be empty"));
		return (0);
	case 1:
	case 2:
		return (only(a, k_2, prefix, e) == -1 ||
		    str_member(a, "src", prefix, 1, 1, 4096, e) == -1 ||
		    str_member(a, "dst", prefix, 1, 1, 4096, e) == -1 ? -1 : 0);
	case 3:
		if (only(a, k_write, prefix, e) == -1 ||
		    str_member(a, "path", prefix, 1, 1, 4096, e) == -1)
			return (-1);
		snprintf(f, sizeof(f), "%s.content", prefix);
		if ((json_object_get(a, "content") == NULL) ==
		    (json_object_get(a, "content_base64") == NULL))
			return (param_fail(e, f, "give exactly one of content "
			    "and content_base64"));
		if (json_object_get(a, "content") != NULL)
			return (str_member(a, "content", prefix, 1, 0,
			    16 << 20, e));
		if (str_member(a, "content_base64", prefix, 1, 0, 16 << 20,
		    e) == -1)
			return (-1);
		if (wf_b64_decode(json_string_value(json_object_get(a,
		    "content_base64")), &dec, &n) == -1)
			return (param_fail(e, f, "content_base64 is not "
			    "base64"));
		free(dec);
		return (0);
	case 4:
	case 5:
	case 6:
		return (only(a, k_path, prefix, e) == -1 ||
		    str_member(a, "path", prefix, 1, 1, 4096, e) == -1 ?
		    -1 : 0);
	case 7:
		if (only(a, k_restore, prefix, e) == -1 ||
		    str_member(a, "path", prefix, 0, 1, 4096, e) == -1 ||
		    str_member(a, "backup_id", prefix, 0, 0, UUID_STRLEN,
		    e) == -1)
			return (-1);
		if ((json_object_get(a, "path") == NULL) ==
		    (json_object_get(a, "backup_id") == NULL)) {
			snprintf(f, sizeof(f), "%s.path", prefix);
			return (param_fail(e, f, "give exactly one of path and "
			    "backup_id"));
		}
		return (0);
	case 8:
		if (only(a, k_http, prefix, e) == -1 ||
		    str_member(a, "method", prefix, 1, 0, 16, e) == -1 ||
		    str_member(a, "url", prefix, 1, 0, 8192, e) == -1 ||
		    str_member(a, "body", prefix, 0, 0, 16 << 20, e) == -1 ||
		    str_map(a, "headers", prefix, 0, e) == -1)
			return (-1);
		s = json_string_value(json_object_get(a, "method"));
		for (i = 0; s[i] != '\0'; i++)
			if (!isupper((unsigned char)s[i]))
				break;
		snprintf(f, sizeof(f), "%s.method", prefix);
		if (i == 0 || s[i] != '\0')
			return (param_fail(e, f, "must be an upper-case "
			    "token"));
		s = json_string_value(json_object_get(a, "url"));
		snprintf(f, sizeof(f), "%s.url", prefix);
		if (strncmp(s, "http://", 7) != 0 &&
		    strncmp(s, "https://", 8) != 0)
			return (param_fail(e, f, "must be an http:// or "
			    "https:// URL"));
		v = json_object_get(a, "expect_status");
		snprintf(f, sizeof(f), "%s.expect_status", prefix);
		if (v != NULL && (!json_is_array(v) ||
		    json_array_size(v) == 0 || json_array_size(v) > 500))
			return (param_fail(e, f, "must be an array of HTTP "
			    "statuses"));
		for (i = 0; i < json_array_size(v); i++)
			if (!json_is_integer(json_array_get(v, i)) ||
			    json_integer_value(json_array_get(v, i)) < 100 ||
			    json_integer_value(json_array_get(v, i)) > 599)
				return (param_fail(e, f, "element %zu is not "
				    "an HTTP status", i));
		return (0);
	case 9:
		if (only(a, k_sleep, prefix, e) == -1)
			return (-1);
		snprintf(f, sizeof(f), "%s.ms", prefix);
		if (param_int_req(a, "ms", 0, 86400000, &ms, e) == -1) {
			snprintf(e->field, sizeof(e->field), "%s", f);
			return (-1);
		}
		return (0);
	default:
		return (only(a, k_client, prefix, e));
	}
}

static int
is_exec(const json_t *a)
{
	const char	*t = json_string_value(json_object_get(a, "type"));

	return (t != NULL && strcmp(t, "exec") == 0);
}

int
wf_uses_exec(const struct workflow *wf)
{
	size_t	i;

	for (i = 0; i < wf->nsteps; i++)
		if (is_exec(wf->steps[i].action) ||
		    (wf->steps[i].compensate != NULL &&
		    is_exec(wf->steps[i].compensate)))
			return (1);
	return (0);
}

static ssize_t
step_index(const struct workflow *wf, size_t n, const char *name)
{
	size_t	i;

	for (i = 0; i < n; i++)
		if (strcmp(wf->steps[i].name, name) == 0)
			return ((ssize_t)i);
	return (-1);
}

/*
 * Kahn's algorithm over the `after` edges. Returns -1 when every step can
 * be ordered, else the index of a step on (or behind) a cycle.
 */
static ssize_t
find_cycle(const struct workflow *wf)
{
	size_t	*indeg, *queue, i, j, k, head = 0, tail = 0;
	ssize_t	 bad = -1;

	indeg = calloc(wf->nsteps, sizeof(*indeg));
	queue = calloc(wf->nsteps, sizeof(*queue));
	if (indeg == NULL || queue == NULL) {
		free(indeg);
		free(queue);
		return (0);
	}
	for (i = 0; i < wf->nsteps; i++)
		indeg[i] = wf->steps[i].nafter;
	for (i = 0; i < wf->nsteps; i++)
		if (indeg[i] == 0)
			queue[tail++] = i;
	while (head < tail) {
		i = queue[head++];
		/* Steps that wait for i. */
		for (j = 0; j < wf->nsteps; j++)
			for (k = 0; k < wf->steps[j].nafter; k++)
				if (wf->steps[j].after[k] == i &&
				    --indeg[j] == 0)
					queue[tail++] = j;
	}
	if (tail < wf->nsteps)
		for (i = 0; i < wf->nsteps && bad == -1; i++)
			if (indeg[i] > 0)
				bad = (ssize_t)i;
	free(indeg);
	free(queue);
	return (bad);
}

static int
step_retry(struct wf_step *s, const json_t *r, const char *prefix,
    struct param_err *e)
{
	const struct retry_policy	*p;
	char				 f[64];

	snprintf(f, sizeof(f), "%s.retry", prefix);
	if (r == NULL)
		return (0);
	if (json_is_string(r)) {
		if ((p = decide_policy(json_string_value(r))) == NULL)
			return (param_fail(e, f, "no retry policy '%.64s'",
			    json_string_value(r)));
		s->retry = *p;
	} else if (json_is_object(r)) {
		if ((p = decide_policy(NULL)) == NULL)
			retry_policy_defaults(&s->retry);
		else
			s->retry = *p;
		if (retry_policy_from_json(&s->retry, r, f, &s->retry,
		    e) == -1)
			return (-1);
	} else
		return (param_fail(e, f, "must be a policy name or object"));
	s->has_retry = 1;
	return (0);
}

int
wf_graph_parse(struct workflow *wf, json_t *steps, size_t max_steps,
    struct param_err *e)
{
	static const char *const allowed[] = { "name", "action", "compensate",
	    "after", "retry", "breaker", "timeout_ms", "idempotent", NULL };
	struct wf_step	*s;
	json_t		*js, *after, *v;
	const char	*name, *br;
	char		 prefix[48], f[64];
	size_t		 i, j, n;
	ssize_t		 k;

	n = json_array_size(steps);
	if (!json_is_array(steps) || n == 0)
		return (param_fail(e, "steps", "must be a non-empty array"));
	if (n > max_steps)
		return (param_fail(e, "steps", "more than workflow.max_steps "
		    "(%zu) steps", max_steps));
	if ((wf->steps = calloc(n, sizeof(*wf->steps))) == NULL)
		return (param_fail(e, "steps", "out of memory"));
	wf->nsteps = 0;
	for (i = 0; i < n; i++) {
		js = json_array_get(steps, i);
		s = &wf->steps[i];
		snprintf(prefix, sizeof(prefix), "steps[%zu]", i);
		if (!json_is_object(js))
			return (param_fail(e, prefix, "must be an object"));
		if (only(js, allowed, prefix, e) == -1 ||
		    str_member(js, "name", prefix, 1, 0, WF_STEP_NAME_MAX,
		    e) == -1)
			return (-1);
		name = json_string_value(json_object_get(js, "name"));
		snprintf(f, sizeof(f), "%s.name", prefix);
		if (name[0] == '\0')
			return (param_fail(e, f, "must not be empty"));
		if (step_index(wf, i, name) != -1)
			return (param_fail(e, f, "step '%s' appears twice",
			    name));
		if ((s->name = strdup(name)) == NULL)
			return (param_fail(e, f, "out of memory"));
		wf->nsteps = i + 1;
		snprintf(f, sizeof(f), "%s.action", prefix);
		if (json_object_get(js, "action") == NULL)
			return (param_fail(e, f, "missing (step '%s')", name));
		if (wf_action_check(json_object_get(js, "action"), f, e) == -1)
			return (-1);
		s->action = json_object_get(js, "action");
		snprintf(f, sizeof(f), "%s.compensate", prefix);
		if ((s->compensate = json_object_get(js, "compensate")) !=
		    NULL && wf_action_check(s->compensate, f, e) == -1)
			return (-1);
		if (param_int(js, "timeout_ms", 1, INT64_C(86400000) * 365, 0,
		    &s->timeout_ms, e) == -1 ||
		    param_bool(js, "idempotent", 0, &s->idempotent, e) == -1 ||
		    param_str(js, "breaker", BREAKER_NAME_MAX, &br, e) == -1) {
			memcpy(f, e->field, sizeof(f));
			set_field(e, prefix, f);
			return (-1);
		}
		if (br != NULL) {
			snprintf(f, sizeof(f), "%s.breaker", prefix);
			if (!breaker_name_valid(br))
				return (param_fail(e, f, "bad breaker name"));
			if ((s->breaker = strdup(br)) == NULL)
				return (param_fail(e, f, "out of memory"));
		}
		if (step_retry(s, json_object_get(js, "retry"), prefix,
		    e) == -1)
			return (-1);
	}
	/* Second pass: the names in `after` are all known now. */
	for (i = 0; i < n; i++) {
		js = json_array_get(steps, i);
		s = &wf->steps[i];
		snprintf(f, sizeof(f), "steps[%zu].after", i);
		after = json_object_get(js, "after");
		if (after == NULL) {
			/* A plain list runs in order. */
			s->nafter = i > 0 ? 1 : 0;
			if ((s->after = calloc(1, sizeof(*s->after))) == NULL)
				return (param_fail(e, f, "out of memory"));
			s->after[0] = i - 1;
			continue;
		}
		if (!json_is_array(after) || json_array_size(after) > n)
			return (param_fail(e, f, "must be an array of step "
			    "names (step '%s')", s->name));
		if ((s->after = calloc(json_array_size(after) + 1,
		    sizeof(*s->after))) == NULL)
			return (param_fail(e, f, "out of memory"));
		json_array_foreach(after, j, v) {
			if (!json_is_string(v))
				return (param_fail(e, f, "must be an array of "
				    "step names (step '%s')", s->name));
			k = step_index(wf, n, json_string_value(v));
			if (k == -1)
				return (param_fail(e, f, "step '%s' waits for "
				    "unknown step '%.128s'", s->name,
				    json_string_value(v)));
			if ((size_t)k == i)
				return (param_fail(e, f, "step '%s' waits for "
				    "itself", s->name));
			s->after[s->nafter++] = (size_t)k;
		}
	}
	if ((k = find_cycle(wf)) != -1) {
		snprintf(f, sizeof(f), "steps[%zd].after", k);
		return (param_fail(e, f, "step '%s' is on a cycle",
		    wf->steps[k].name));
	}
	return (0);
}

struct workflow *
wf_alloc(void)
{
	return (calloc(1, sizeof(struct workflow)));
}

void
wf_free(struct workflow *wf)
{
	size_t	i;

	if (wf == NULL)
		return;
	for (i = 0; i < wf->nsteps; i++) {
		free(wf->steps[i].name);
		free(wf->steps[i].after);
		free(wf->steps[i].breaker);
		json_decref(wf->steps[i].error);
		json_decref(wf->steps[i].output);
		if (wf->steps[i].retry_timer != NULL)
			clock_timer_free(wf->steps[i].retry_timer);
	}
	free(wf->steps);
	free(wf->name);
	json_decref(wf->spec);
	json_decref(wf->error);
	free(wf);
}

json_t *
wf_to_json(const struct workflow *wf)
{
	const struct wf_step	*s;
	json_t			*o, *steps, *js;
	size_t			 i;

	steps = json_array();
	for (i = 0; i < wf->nsteps; i++) {
		s = &wf->steps[i];
		js = json_pack("{s:s, s:s, s:i}", "name", s->name, "state",
		    wf_step_state_name(s->state), "attempts", s->attempts);
		if (s->started_at)
			json_object_set_new(js, "started_at",
			    json_integer((json_int_t)s->started_at));
		if (s->finished_at)
			json_object_set_new(js, "finished_at",
			    json_integer((json_int_t)s->finished_at));
		if (s->error != NULL)
			json_object_set(js, "error", s->error);
		if (s->output != NULL)
			json_object_set(js, "output", s->output);
		json_array_append_new(steps, js);
	}
	o = json_pack("{s:s, s:s, s:s, s:I, s:o}", "id", wf->id, "name",
	    wf->name, "state", wf_state_name(wf->state), "created_at",
	    (json_int_t)wf->created_at, "steps", steps);
	if (wf->started_at)
		json_object_set_new(o, "started_at",
		    json_integer((json_int_t)wf->started_at));
	if (wf->finished_at)
		json_object_set_new(o, "finished_at",
		    json_integer((json_int_t)wf->finished_at));
	if (wf->error != NULL)
		json_object_set(o, "error", wf->error);
	return (o);
}

/* ---- records ------------------------------------------------------------ */

struct srec {
	int64_t		 idx;
	char		*name, *error, *output;
	const char	*state;
	int64_t		 attempts, started, finished, done_seq;
};

struct wrec {
	struct workflow	*wf;
	char		 id[UUID_STRLEN + 1];
	int		 insert;
	int		 has_wf;
	char		*name, *spec, *peer, *error;
	const char	*state;
	enum wf_state	 wf_state;	/* state, when has_wf */
	int		 row_written;	/* the workflows row took it */
	int64_t		 created, started, finished, exec_allowed;
	struct srec	*steps;
	size_t		 n, cap;
	ssize_t		 launch;	/* step to start after */
	int		 comp;		/* ... its compensation */
	void		(*cb)(void *, int, const char *);
	void		*cbarg;
};

static struct {
	struct workflow	*head;
	int64_t		 seq;		/* completion order */
	int		 started;
	struct metric_family *fam;
	uint64_t	 transitions;
	/*
	 * Rows of the workflows table by state, kept as the commits that
	 * change them complete (and the prunes), so that metrics and status
	 * need no scan of a table that holds days of workflows.
	 */
	int64_t		 stored[WF_NSTATES];
} W;

/* What an action's callback gets: the step it belongs to. */
struct step_ref {
	struct workflow	*wf;
	size_t		 i;
};

static void	advance(struct workflow *);
static void	step_ended(void *, int, json_t *, json_t *);
static void	comp_ended(void *, int, json_t *, json_t *);
static void	launch(struct workflow *, size_t, int comp);
static void	finish_waiters(struct workflow *);

static char *
text_of(const json_t *v)
{
	return (v != NULL ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) :
	    NULL);
}

static struct wrec *
rec_new(struct workflow *wf)
{
	struct wrec	*r;

	if ((r = calloc(1, sizeof(*r))) == NULL)
		fatalx("workflow: out of memory");
	r->wf = wf;
	memcpy(r->id, wf->id, sizeof(r->id));
	r->launch = -1;
	return (r);
}

static void
rec_wf(struct wrec *r)
{
	struct workflow	*wf = r->wf;

	r->has_wf = 1;
	r->wf_state = wf->state;
	r->state = wf_state_name(wf->state);
	r->started = (int64_t)wf->started_at;
	r->finished = (int64_t)wf->finished_at;
	r->error = text_of(wf->error);
}

static void
rec_step(struct wrec *r, size_t i)
{
	struct wf_step	*s = &r->wf->steps[i];
	struct srec	*x;

	if (r->n == r->cap) {
		r->cap = r->cap ? r->cap * 2 : 4;
		if ((r->steps = reallocarray(r->steps, r->cap,
		    sizeof(*r->steps))) == NULL)
			fatalx("workflow: out of memory");
	}
	x = &r->steps[r->n++];
	x->idx = (int64_t)i;
	x->name = r->insert ? strdup(s->name) : NULL;
	x->state = wf_step_state_name(s->state);
	x->attempts = s->attempts;
	x->started = (int64_t)s->started_at;
	x->finished = (int64_t)s->finished_at;
	x->done_seq = s->done_seq;
	x->error = text_of(s->error);
	x->output = text_of(s->output);
	W.transitions++;
}

static void
rec_free(struct wrec *r)
{
	size_t	i;

	for (i = 0; i < r->n; i++) {
		free(r->steps[i].name);
		free(r->steps[i].error);
		free(r->steps[i].output);
	}
	free(r->steps);
	free(r->name);
	free(r->spec);
	free(r->peer);
	free(r->error);
	free(r);
}

static int
rec_run(struct store_tx *tx, void *arg)
{
	struct wrec	*r = arg;
	struct srec	*x;
	size_t		 i;
	int64_t		 before = store_tx_changes(tx);

	if (r->insert && store_tx_exec(tx, "INSERT INTO workflows (id, name, "
	    "state, spec, created_at, started_at, finished_at, error, peer, "
	    "exec_allowed) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
	    "ttttiiitti", r->id, r->name, r->state, r->spec, r->created,
	    r->started, r->finished, r->error, r->peer, r->exec_allowed) == -1)
		return (-1);
	if (!r->insert && r->has_wf && store_tx_exec(tx, "UPDATE workflows "
	    "SET state = ?, started_at = ?, finished_at = ?, error = ? "
	    "WHERE id = ?", "tiitt", r->state, r->started, r->finished,
	    r->error, r->id) == -1)
		return (-1);
	/* Not when a prune took the row meanwhile (see W.stored). */
	r->row_written = store_tx_changes(tx) > before;
	for (i = 0; i < r->n; i++) {
		x = &r->steps[i];
		if (r->insert) {
			if (store_tx_exec(tx, "INSERT INTO workflow_steps "
			    "(workflow_id, idx, name, state, attempts, "
			    "started_at, finished_at, done_seq, error, output) "
			    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
			    "tittiiiitt", r->id, x->idx, x->name, x->state,
			    x->attempts, x->started, x->finished, x->done_seq,
			    x->error, x->output) == -1)
				return (-1);
		} else if (store_tx_exec(tx, "UPDATE workflow_steps SET "
		    "state = ?, attempts = ?, started_at = ?, finished_at = ?, "
		    "done_seq = ?, error = ?, output = ? WHERE workflow_id = ? "
		    "AND idx = ?", "tiiiittti", x->state, x->attempts,
		    x->started, x->finished, x->done_seq, x->error, x->output,
		    r->id, x->idx) == -1)
			return (-1);
	}
	return (0);
}

static void	free_if_done(struct workflow *);

static void
rec_done(void *arg, const struct store_result *res)
{
	struct wrec	*r = arg;
	struct workflow	*wf = r->wf;

	wf->commits--;
	if (!res->ok)
		log_warnx("workflow %s: cannot record a transition: %s",
		    r->id, res->msg);
	else if (r->has_wf && r->row_written) {
		if (wf->stored)
			W.stored[wf->stored_state]--;
		W.stored[r->wf_state]++;
		wf->stored = 1;
		wf->stored_state = r->wf_state;
	}
	if (r->cb != NULL)
		r->cb(r->cbarg, res->ok, res->msg);
	if (!W.started) {
		/*
		 * Shutting down (the store is flushing its queue): nothing
		 * new starts; the restart rules take it from the records.
		 */
		rec_free(r);
		return;
	}
	if (r->launch >= 0 && res->ok)
		launch(wf, (size_t)r->launch, r->comp);
	else if (r->launch >= 0) {
		/* Not durable: the action must not start. */
		struct step_ref	*ref;

		wf->steps[r->launch].launching = 0;
		if ((ref = malloc(sizeof(*ref))) == NULL)
			fatalx("workflow: out of memory");
		ref->wf = wf;
		ref->i = (size_t)r->launch;
		(r->comp ? comp_ended : step_ended)(ref, 0, json_pack(
		    "{s:s, s:s}", "category", "STORAGE_ERROR", "message",
		    "the step's start could not be recorded"), NULL);
	}
	rec_free(r);
	if (wf_state_final(wf->state) && wf->commits == 0)
		finish_waiters(wf);
	else
		advance(wf);
	free_if_done(wf);
}

static void
rec_submit(struct wrec *r)
{
	if (!W.started) {
		/* Not recorded: the last record stands, and is safe. */
		rec_free(r);
		return;
	}
	r->wf->commits++;
	if (store_submit(rec_run, rec_done, r) == -1)
		fatalx("workflow: the store is closed");
}

static void
emit_state(struct workflow *wf, enum wf_state from)
{
	events_emit(EV_WORKFLOW_STATE, json_pack("{s:s, s:s, s:s, s:s}",
	    "id", wf->id, "name", wf->name, "state", wf_state_name(wf->state),
	    "from", wf_state_name(from)));
}

static void
emit_step(struct workflow *wf, size_t i)
{
	struct wf_step	*s = &wf->steps[i];
	json_t		*f;

	f = json_pack("{s:s, s:s, s:s, s:i}", "id", wf->id, "step", s->name,
	    "state", wf_step_state_name(s->state), "attempts", s->attempts);
	/* A step still running after an error is about to retry. */
	if (s->error != NULL && (s->state == WS_FAILED ||
	    s->state == WS_RUNNING || s->state == WS_COMPENSATION_FAILED))
		json_object_set(f, "error", s->error);
	events_emit(EV_WORKFLOW_STEP, f);
}

static void
set_wf_state(struct workflow *wf, enum wf_state st)
{
	enum wf_state	from = wf->state;

	if (from == st)
		return;
	wf->state = st;
	if (st == WF_RUNNING && wf->started_at == 0)
		wf->started_at = clock_now_ms();
	if (wf_state_final(st))
		wf->finished_at = clock_now_ms();
	emit_state(wf, from);
}

static void
set_step_state(struct workflow *wf, size_t i, enum wf_step_state st)
{
	struct wf_step	*s = &wf->steps[i];

	s->state = st;
	if (st == WS_RUNNING && s->started_at == 0)
		s->started_at = clock_now_ms();
	if (st == WS_SUCCEEDED || st == WS_FAILED || st == WS_COMPENSATED ||
	    st == WS_COMPENSATION_FAILED)
		s->finished_at = clock_now_ms();
	emit_step(wf, i);
}

/* ---- the engine --------------------------------------------------------- */

struct workflow *
wf_find(const char *id)
{
	struct workflow	*wf;

	for (wf = W.head; wf != NULL; wf = wf->next)
		if (strcmp(wf->id, id) == 0)
			return (wf);
	return (NULL);
}

unsigned
wf_running_count(void)
{
	struct workflow	*wf;
	unsigned	 n = 0;

	for (wf = W.head; wf != NULL; wf = wf->next)
		if (wf->state == WF_RUNNING || wf->state == WF_COMPENSATING)
			n++;
	return (n);
}

static void
link_wf(struct workflow *wf)
{
	wf->next = W.head;
	if (W.head != NULL)
		W.head->prev = wf;
	W.head = wf;
}

static void
unlink_wf(struct workflow *wf)
{
	if (wf->prev != NULL)
		wf->prev->next = wf->next;
	else
		W.head = wf->next;
	if (wf->next != NULL)
		wf->next->prev = wf->prev;
	wf->next = wf->prev = NULL;
}

/* A finished workflow leaves memory once nothing refers to it. */
static void
free_if_done(struct workflow *wf)
{
	size_t	i;

	if (!wf_state_final(wf->state) || wf->commits > 0 ||
	    wf->waiters != NULL)
		return;
	for (i = 0; i < wf->nsteps; i++)
		if (wf->steps[i].act != NULL)
			return;
	unlink_wf(wf);
	wf_free(wf);
}

static void
waiter_reply(struct wf_waiter *w, int timeout)
{
	struct ermd_req	*req = w->req;
	int		 rc = REQ_OK;

	if (timeout)
		rc = req_fail(req, ERM_TIMEOUT, NULL, "workflow %s is still %s",
		    w->wf->id, wf_state_name(w->wf->state));
	else
		req->result = wf_to_json(w->wf);
	clock_timer_free(w->timer);
	free(w);
	req_finish(req, rc);
}

static void
finish_waiters(struct workflow *wf)
{
	struct wf_waiter	*w;

	while ((w = wf->waiters) != NULL) {
		wf->waiters = w->next;
		waiter_reply(w, 0);
	}
}

static void
waiter_timeout(void *arg)
{
	struct wf_waiter	*w = arg, **pp;
	struct workflow		*wf = w->wf;

	for (pp = &wf->waiters; *pp != NULL; pp = &(*pp)->next)
		if (*pp == w) {
			*pp = w->next;
			break;
		}
	waiter_reply(w, 1);
	free_if_done(wf);
}

void
wf_wait(struct workflow *wf, struct ermd_req *req, int64_t timeout_ms)
{
	struct wf_waiter	*w;

	if ((w = calloc(1, sizeof(*w))) == NULL ||
	    (w->timer = clock_timer_new(waiter_timeout, w)) == NULL)
		fatalx("workflow: out of memory");
	w->req = req;
	w->wf = wf;
	w->next = wf->waiters;
	wf->waiters = w;
	if (wf_state_final(wf->state) && wf->commits == 0) {
		finish_waiters(wf);
		free_if_done(wf);
		return;
	}
	if (timeout_ms > 0)
		clock_timer_after(w->timer, (uint64_t)timeout_ms);
}

static int
all_after_succeeded(const struct workflow *wf, const struct wf_step *s)
{
	size_t	i;

	for (i = 0; i < s->nafter; i++)
		if (wf->steps[s->after[i]].state != WS_SUCCEEDED)
			return (0);
	return (1);
}

/* Start step i: record it running, then (from the commit) its action. */
static void
start_step(struct workflow *wf, size_t i, int comp)
{
	struct wf_step	*s = &wf->steps[i];
	struct wrec	*r = rec_new(wf);

	if (comp)
		set_step_state(wf, i, WS_COMPENSATING);
	else {
		s->attempts++;
		set_step_state(wf, i, WS_RUNNING);
	}
	s->launching = 1;
	rec_step(r, i);
	r->launch = (ssize_t)i;
	r->comp = comp;
	rec_submit(r);
}

static void	attempt_failed(struct workflow *, size_t, json_t *,
		    json_t *);


static void
client_step_send(struct workflow *wf, size_t i, int comp);

static void
launch(struct workflow *wf, size_t i, int comp)
{
	struct wf_step			*s = &wf->steps[i];
	struct breaker_permit_info	 pi;
	struct step_ref			*ref;
	const json_t			*a;
	int				 rc;

	a = comp ? s->compensate : s->action;
	s->launching = 0;
	if (!comp && (s->stopping || wf->failing)) {
		/* Stopped before its action started. */
		attempt_failed(wf, i, json_pack("{s:s}", "message",
		    "stopped before it started"), NULL);
		return;
	}
	if ((ref = malloc(sizeof(*ref))) == NULL)
		fatalx("workflow: out of memory");
	ref->wf = wf;
	ref->i = i;
	s->attempt_at = clock_now_ms();
	s->permit[0] = '\0';
	if (!comp && s->breaker != NULL) {
		memset(&pi, 0, sizeof(pi));
		rc = breaker_acquire(decide_breakers(), s->breaker,
		    WF_BREAKER_OWNER, &pi);
		if (rc != 0) {
			free(ref);
			attempt_failed(wf, i, json_pack("{s:s, s:I, s:s}",
			    "category", "SYSTEM_ERROR", "retry_after_ms",
			    (json_int_t)pi.retry_after_ms, "message",
			    rc == ERM_BREAKER_OPEN ? "the step's breaker is "
			    "open" : "the step's breaker cannot be used"),
			    NULL);
			return;
		}
		snprintf(s->permit, sizeof(s->permit), "%s", pi.permit);
	}
	if (strcmp(json_string_value(json_object_get(a, "type")),
	    "client") == 0) {
		free(ref);
		client_step_send(wf, i, comp);
		return;
	}
	if (is_exec(a) && !wf->exec_allowed) {
		(comp ? comp_ended : step_ended)(ref, 0, json_pack("{s:s, s:s}",
		    "category", "PERMISSION_ERROR", "message", "the creator "
		    "may not run programs"), NULL);
		return;
	}
	s->act = wf_act_start(a, &wf->peer, s->timeout_ms,
	    comp ? comp_ended : step_ended, ref);
	if (s->act == NULL)
		(comp ? comp_ended : step_ended)(ref, 0, json_pack("{s:s}",
		    "message", "out of memory"), NULL);
}

/* ---- client steps ------------------------------------------------------- */

struct client_wait {
	struct workflow		*wf;
	size_t			 i;
	int			 comp;
	struct clock_timer	*timer;
};

static struct conn	*find_conn(uint64_t id);

static int
is_client(const struct wf_step *s)
{
	return (strcmp(json_string_value(json_object_get(s->action, "type")),
	    "client") == 0);
}

/* Is the step (or its compensation) waiting for its client's answer? */
static int
waiting_client(const struct wf_step *s)
{
	return (s->act != NULL && s->client_wait);
}

/* End a client wait with an outcome (err and out stolen). */
static void
client_done(struct workflow *wf, size_t i, int ok, json_t *err, json_t *out)
{
	struct wf_step		*s = &wf->steps[i];
	struct client_wait	*cw = (struct client_wait *)s->act;
	struct step_ref		*ref;
	int			 comp = cw->comp;

	clock_timer_free(cw->timer);
	free(cw);
	s->act = NULL;
	s->client_wait = 0;
	if ((ref = malloc(sizeof(*ref))) == NULL)
		fatalx("workflow: out of memory");
	ref->wf = wf;
	ref->i = i;
	(comp ? comp_ended : step_ended)(ref, ok, err, out);
}

static void
client_timeout(void *arg)
{
	struct client_wait	*cw = arg;

	client_done(cw->wf, cw->i, 0, json_pack("{s:s, s:s}", "category",
	    "TIMEOUT_ERROR", "message", "the client did not answer in time"),
	    NULL);
}

static void
client_step_send(struct workflow *wf, size_t i, int comp)
{
	struct wf_step		*s = &wf->steps[i];
	struct client_wait	*cw;
	struct conn		*c = wf->owner ? find_conn(wf->owner) : NULL;
	json_t			*msg, *err;

	if (c == NULL) {
		err = json_pack("{s:s, s:s}", "category", "NETWORK_ERROR",
		    "message", "the creating client is gone");
		if (comp) {
			struct step_ref	*ref;

			if ((ref = malloc(sizeof(*ref))) == NULL)
				fatalx("workflow: out of memory");
			ref->wf = wf;
			ref->i = i;
			comp_ended(ref, 0, err, NULL);
		} else
			attempt_failed(wf, i, err, NULL);
		return;
	}
	if ((cw = calloc(1, sizeof(*cw))) == NULL ||
	    (cw->timer = clock_timer_new(client_timeout, cw)) == NULL)
		fatalx("workflow: out of memory");
	cw->wf = wf;
	cw->i = i;
	cw->comp = comp;
	/* The step's act slot holds the wait. */
	s->act = (struct wf_act *)cw;
	s->client_wait = 1;
	if (s->timeout_ms > 0)
		clock_timer_after(cw->timer, (uint64_t)s->timeout_ms);
	msg = json_pack("{s:s, s:{s:s, s:I, s:s, s:s, s:s, s:i, s:s}}",
	    "method", "event", "params", "type", "workflow.step", "at",
	    (json_int_t)clock_now_ms(), "id", wf->id, "step", s->name,
	    "state", comp ? "compensating" : "running", "attempts",
	    s->attempts, "action", "client");
	conn_send(c, msg);
	json_decref(msg);
}

int
wf_step_result(struct workflow *wf, const char *step, int ok, json_t *error,
    json_t *output, uint64_t conn)
{
	ssize_t			 i = step_index(wf, wf->nsteps, step);

	if (i == -1)
		return (-2);
	if (!waiting_client(&wf->steps[i]) || conn != wf->owner)
		return (-1);
	client_done(wf, (size_t)i, ok, ok ? NULL : error != NULL ?
	    json_deep_copy(error) : json_pack("{s:s}", "message",
	    "the client reported a failure"), output != NULL ?
	    json_deep_copy(output) : NULL);
	return (0);
}

/* ---- outcomes ----------------------------------------------------------- */

/* Classify an error object in place (adds "category"); returns it. */
static enum category
classify_err(json_t *err)
{
	struct erm_errobj	eo;
	struct classify_result	cr;
	struct param_err	pe;

	errobj_init(&eo);
	if (err == NULL || errobj_from_json(err, &eo, 1, &pe) == -1) {
		errobj_clear(&eo);
		return (CAT_NONE);
	}
	decide_classify(&eo, &cr);
	errobj_clear(&eo);
	if (json_object_get(err, "category") == NULL)
		json_object_set_new(err, "category",
		    json_string(category_name(cr.category)));
	return (cr.category);
}

static void
record_breaker(struct wf_step *s, int ok, enum category cat,
    const json_t *err)
{
	struct breaker_call		call;
	struct breaker_record_result	res;

	if (s->breaker == NULL || s->permit[0] == '\0')
		return;
	memset(&call, 0, sizeof(call));
	call.outcome = ok ? OUTCOME_SUCCESS : OUTCOME_FAILURE;
	call.duration_ms = (int64_t)(clock_now_ms() - s->attempt_at);
	call.category = cat;
	call.error = err;
	(void)breaker_record(decide_breakers(), s->breaker, s->permit, &call,
	    &res);
	s->permit[0] = '\0';
}

static void
retry_fire(void *arg)
{
	struct step_ref	*ref = arg;
	struct workflow	*wf = ref->wf;
	size_t		 i = ref->i;

	free(ref);
	wf->steps[i].launching = 1;
	if (wf->failing) {
		wf->steps[i].launching = 0;
		attempt_failed(wf, i, json_pack("{s:s}", "message",
		    "stopped while waiting to retry"), NULL);
		return;
	}
	start_step(wf, i, 0);
}

/* Steps still doing something (running, starting, waiting to retry). */
static int
busy_steps(const struct workflow *wf)
{
	size_t	i;
	int	n = 0;

	for (i = 0; i < wf->nsteps; i++)
		if (wf->steps[i].state == WS_RUNNING ||
		    wf->steps[i].state == WS_COMPENSATING)
			n++;
	return (n);
}

/* The first failure: stop the running siblings and skip what waits. */
static void
begin_failing(struct workflow *wf, struct wrec *r)
{
	struct wf_step	*s;
	size_t		 i;

	wf->failing = 1;
	for (i = 0; i < wf->nsteps; i++) {
		s = &wf->steps[i];
		if (s->state == WS_PENDING) {
			set_step_state(wf, i, WS_SKIPPED);
			rec_step(r, i);
		} else if (s->state == WS_RUNNING) {
			s->stopping = 1;
			if (s->retry_timer != NULL &&
			    clock_timer_pending(s->retry_timer)) {
				clock_timer_cancel(s->retry_timer);
				s->error = s->error ? s->error : json_pack(
				    "{s:s}", "message", "stopped");
				set_step_state(wf, i, WS_FAILED);
				rec_step(r, i);
			} else if (waiting_client(s)) {
				struct client_wait *cw =
				    (struct client_wait *)s->act;

				clock_timer_free(cw->timer);
				free(cw);
				s->act = NULL;
				s->client_wait = 0;
				json_decref(s->error);
				s->error = json_pack("{s:s}", "message",
				    "stopped");
				set_step_state(wf, i, WS_FAILED);
				rec_step(r, i);
			} else if (s->act != NULL)
				wf_act_stop(s->act);
		}
	}
}

static void
attempt_failed(struct workflow *wf, size_t i, json_t *err, json_t *out)
{
	struct wf_step		*s = &wf->steps[i];
	struct retry_decision	 d;
	struct step_ref		*ref;
	struct wrec		*r;
	enum category		 cat;

	cat = classify_err(err);
	record_breaker(s, 0, cat, err);
	json_decref(s->error);
	s->error = err;
	if (out != NULL) {
		json_decref(s->output);
		s->output = out;
	}
	if (s->has_retry && !s->stopping && !wf->failing) {
		memset(&d, 0, sizeof(d));
		(void)retry_decide(&s->retry, decide_budget(), s->breaker ?
		    s->breaker : "workflow", s->attempts, cat, -1, -1,
		    json_integer_value(json_object_get(err,
		    "retry_after_ms")) > 0 ? json_integer_value(
		    json_object_get(err, "retry_after_ms")) : -1,
		    decide_rng(), &d);
		if (d.retry) {
			if (s->retry_timer != NULL)
				clock_timer_free(s->retry_timer);
			if ((ref = malloc(sizeof(*ref))) == NULL ||
			    (s->retry_timer = clock_timer_new(retry_fire,
			    ref)) == NULL)
				fatalx("workflow: out of memory");
			ref->wf = wf;
			ref->i = i;
			emit_step(wf, i);
			clock_timer_after(s->retry_timer,
			    (uint64_t)d.delay_ms);
			return;
		}
	}
	r = rec_new(wf);
	set_step_state(wf, i, WS_FAILED);
	rec_step(r, i);
	if (!wf->failing) {
		json_decref(wf->error);
		wf->error = json_pack("{s:s, s:O}", "step", s->name, "error",
		    err);
		begin_failing(wf, r);
		rec_wf(r);
	}
	rec_submit(r);
}

static void
step_ended(void *arg, int ok, json_t *err, json_t *out)
{
	struct step_ref	*ref = arg;
	struct workflow	*wf;
	struct wf_step	*s;
	struct wrec	*r;
	size_t		 i;

	if (ref == NULL) {
		json_decref(err);
		json_decref(out);
		return;
	}
	wf = ref->wf;
	i = ref->i;
	free(ref);
	s = &wf->steps[i];
	s->act = NULL;
	if (!ok) {
		if (err == NULL)
			err = json_pack("{s:s}", "message", "failed");
		attempt_failed(wf, i, err, out);
		return;
	}
	record_breaker(s, 1, CAT_NONE, NULL);
	json_decref(s->error);
	s->error = NULL;
	json_decref(s->output);
	s->output = out;
	s->done_seq = ++W.seq;
	r = rec_new(wf);
	set_step_state(wf, i, WS_SUCCEEDED);
	rec_step(r, i);
	rec_submit(r);
}

static void
comp_ended(void *arg, int ok, json_t *err, json_t *out)
{
	struct step_ref	*ref = arg;
	struct workflow	*wf;
	struct wf_step	*s;
	struct wrec	*r;
	size_t		 i;

	json_decref(out);
	if (ref == NULL) {
		json_decref(err);
		return;
	}
	wf = ref->wf;
	i = ref->i;
	free(ref);
	s = &wf->steps[i];
	s->act = NULL;
	r = rec_new(wf);
	if (ok)
		set_step_state(wf, i, WS_COMPENSATED);
	else {
		json_decref(s->error);
		s->error = json_pack("{s:s, s:o}", "message", "compensation "
		    "failed", "compensation", err != NULL ? err :
		    json_object());
		set_step_state(wf, i, WS_COMPENSATION_FAILED);
	}
	rec_step(r, i);
	rec_submit(r);
}

static void
finish_wf(struct workflow *wf, enum wf_state st)
{
	struct wrec	*r = rec_new(wf);

	set_wf_state(wf, st);
	rec_wf(r);
	rec_submit(r);
}

/* Which step compensates next in sequential mode: the latest to finish. */
static ssize_t
next_comp(const struct workflow *wf)
{
	ssize_t	best = -1;
	size_t	i;

	for (i = 0; i < wf->nsteps; i++)
		if (wf->steps[i].state == WS_SUCCEEDED &&
		    wf->steps[i].compensate != NULL && (best == -1 ||
		    wf->steps[i].done_seq > wf->steps[best].done_seq))
			best = (ssize_t)i;
	return (best);
}

static int
comp_failed(const struct workflow *wf)
{
	size_t	i;

	for (i = 0; i < wf->nsteps; i++)
		if (wf->steps[i].state == WS_COMPENSATION_FAILED)
			return (1);
	return (0);
}

/*
 * Look at a workflow and start whatever may start now. Called from the
 * completion of each of its records, so what it starts follows a durable
 * state.
 */
static void
advance(struct workflow *wf)
{
	struct wrec	*r;
	ssize_t		 k;
	size_t		 i, done = 0;

	switch (wf->state) {
	case WF_RUNNING:
		if (wf->failing) {
			if (busy_steps(wf) > 0)
				return;
			if (!wf->rollback) {
				finish_wf(wf, wf->cancelled &&
				    !comp_failed(wf) ? WF_CANCELLED :
				    WF_FAILED);
				return;
			}
			r = rec_new(wf);
			set_wf_state(wf, WF_COMPENSATING);
			rec_wf(r);
			rec_submit(r);
			return;
		}
		for (i = 0; i < wf->nsteps; i++) {
			if (wf->steps[i].state == WS_SUCCEEDED)
				done++;
			else if (wf->steps[i].state == WS_PENDING &&
			    all_after_succeeded(wf, &wf->steps[i]))
				start_step(wf, i, 0);
		}
		if (done == wf->nsteps)
			finish_wf(wf, WF_SUCCEEDED);
		else if (busy_steps(wf) == 0) {
			/*
			 * Nothing runs and nothing can start: some step is
			 * failed or skipped though the workflow is not
			 * failing, a record the engine should never leave.
			 * Nothing would ever move it on (nor end a wait), so
			 * fail it as a failure would: skip what waits, then
			 * compensate what succeeded.
			 */
			log_warnx("workflow %s (%s): no step can start; "
			    "failing it", wf->id, wf->name);
			r = rec_new(wf);
			if (!wf->cancelled) {
				json_decref(wf->error);
				wf->error = json_pack("{s:s, s:s}", "category",
				    "SYSTEM_ERROR", "message", "no step can "
				    "start");
			}
			begin_failing(wf, r);
			rec_wf(r);
			rec_submit(r);
		}
		return;
	case WF_COMPENSATING:
		if (busy_steps(wf) > 0 && wf->comp_mode == WF_COMP_SEQUENTIAL)
			return;
		if (comp_failed(wf) && !wf->continue_comp) {
			if (busy_steps(wf) == 0)
				finish_wf(wf, WF_FAILED);
			return;
		}
		if (wf->comp_mode == WF_COMP_SEQUENTIAL) {
			if ((k = next_comp(wf)) != -1) {
				start_step(wf, (size_t)k, 1);
				return;
			}
		} else
			while ((k = next_comp(wf)) != -1)
				start_step(wf, (size_t)k, 1);
		if (busy_steps(wf) > 0)
			return;
		finish_wf(wf, comp_failed(wf) ? WF_FAILED : wf->cancelled ?
		    WF_CANCELLED : WF_COMPENSATED);
		return;
	default:
		return;
	}
}

/* ---- requests ----------------------------------------------------------- */

static char *
peer_text(const struct peer *p)
{
	json_t	*g = json_array(), *o;
	char	*s;
	int	 i;

	for (i = 0; i < p->ngroups; i++)
		json_array_append_new(g, json_integer(p->groups[i]));
	o = json_pack("{s:I, s:I, s:I, s:b, s:o}", "uid", (json_int_t)p->uid,
	    "gid", (json_int_t)p->gid, "pid", (json_int_t)p->pid, "admin",
	    p->admin, "groups", g);
	s = text_of(o);
	json_decref(o);
	return (s);
}

static void
peer_parse(const char *text, struct peer *p)
{
	json_error_t	 je;
	json_t		*o = json_loads(text, 0, &je), *v;
	size_t		 i;

	memset(p, 0, sizeof(*p));
	p->uid = (uid_t)-1;
	p->gid = (gid_t)-1;
	if (o == NULL)
		return;
	p->uid = (uid_t)json_integer_value(json_object_get(o, "uid"));
	p->gid = (gid_t)json_integer_value(json_object_get(o, "gid"));
	p->pid = (pid_t)json_integer_value(json_object_get(o, "pid"));
	p->admin = json_is_true(json_object_get(o, "admin"));
	json_array_foreach(json_object_get(o, "groups"), i, v)
		if (p->ngroups < PEER_MAX_GROUPS)
			p->groups[p->ngroups++] = (gid_t)json_integer_value(v);
	json_decref(o);
}

int
wf_submit(struct workflow *wf, int run, void (*cb)(void *, int,
    const char *), void *arg)
{
	struct wrec	*r;
	size_t		 i;

	uuid7(wf->id);
	wf->created_at = clock_now_ms();
	wf->state = WF_PENDING;
	link_wf(wf);
	if (run) {
		wf->state = WF_RUNNING;
		wf->started_at = wf->created_at;
	}
	r = rec_new(wf);
	r->insert = 1;
	r->name = strdup(wf->name);
	r->spec = text_of(wf->spec);
	r->peer = peer_text(&wf->peer);
	r->created = (int64_t)wf->created_at;
	r->exec_allowed = wf->exec_allowed;
	rec_wf(r);
	for (i = 0; i < wf->nsteps; i++)
		rec_step(r, i);
	r->cb = cb;
	r->cbarg = arg;
	emit_state(wf, WF_PENDING);
	rec_submit(r);
	return (0);
}

void
wf_run(struct workflow *wf)
{
	struct wrec	*r = rec_new(wf);

	set_wf_state(wf, WF_RUNNING);
	rec_wf(r);
	rec_submit(r);
}

void
wf_cancel(struct workflow *wf)
{
	struct wrec	*r = rec_new(wf);
	size_t		 i;

	if (wf->failing || wf->state == WF_COMPENSATING) {
		/* Already on its way to a failure: that outcome stands. */
		rec_free(r);
		return;
	}
	wf->cancelled = 1;
	json_decref(wf->error);
	wf->error = json_pack("{s:i, s:s}", "code", ERM_CANCELLED, "message",
	    "cancelled");
	if (wf->state == WF_PENDING) {
		for (i = 0; i < wf->nsteps; i++) {
			set_step_state(wf, i, WS_SKIPPED);
			rec_step(r, i);
		}
		set_wf_state(wf, WF_CANCELLED);
	} else if (wf->state == WF_RUNNING && !wf->failing)
		begin_failing(wf, r);
	rec_wf(r);
	rec_submit(r);
}

/* ---- loading and resuming ----------------------------------------------- */

struct load_ctx {
	struct workflow	*wf;
	int		 err;
};

static int
load_wf_row(const struct store_row *row, void *arg)
{
	struct load_ctx		*lc = arg;
	struct workflow		*wf;
	struct param_err	 e;
	json_error_t		 je;
	const char		*t;

	if ((wf = wf_alloc()) == NULL)
		return (1);
	snprintf(wf->id, sizeof(wf->id), "%s", store_row_text(row, 0));
	wf->name = strdup(store_row_text(row, 1));
	wf->state = wf_state_from_name(store_row_text(row, 2));
	wf->stored = 1;
	wf->stored_state = wf->state;
	wf->spec = json_loads(store_row_text(row, 3), 0, &je);
	wf->created_at = (uint64_t)store_row_int(row, 4);
	wf->started_at = (uint64_t)store_row_int(row, 5);
	wf->finished_at = (uint64_t)store_row_int(row, 6);
	if ((t = store_row_text(row, 7)) != NULL)
		wf->error = json_loads(t, JSON_DECODE_ANY, &je);
	peer_parse(store_row_text(row, 8), &wf->peer);
	wf->exec_allowed = (int)store_row_int(row, 9);
	lc->wf = wf;
	if (wf->spec == NULL || (int)wf->state == -1) {
		lc->err = 1;
		return (1);
	}
	wf->rollback = !json_is_false(json_object_get(wf->spec,
	    "rollback_on_failure"));
	t = json_string_value(json_object_get(wf->spec, "compensation"));
	wf->comp_mode = t != NULL && strcmp(t, "parallel") == 0 ?
	    WF_COMP_PARALLEL : WF_COMP_SEQUENTIAL;
	wf->continue_comp = json_is_true(json_object_get(wf->spec,
	    "continue_on_compensation_error"));
	if (wf_graph_parse(wf, json_object_get(wf->spec, "steps"), SIZE_MAX,
	    &e) == -1) {
		log_warnx("workflow %s: its stored steps no longer parse: "
		    "%s: %s", wf->id, e.field, e.reason);
		lc->err = 2;
	}
	return (1);
}

static int
load_step_row(const struct store_row *row, void *arg)
{
	struct workflow	*wf = arg;
	struct wf_step	*s;
	json_error_t	 je;
	int64_t		 i = store_row_int(row, 0);
	const char	*t;
	int		 st;

	if (i < 0 || (size_t)i >= wf->nsteps)
		return (0);
	s = &wf->steps[i];
	if ((st = wf_step_state_from_name(store_row_text(row, 1))) != -1)
		s->state = st;
	s->attempts = (int)store_row_int(row, 2);
	s->started_at = (uint64_t)store_row_int(row, 3);
	s->finished_at = (uint64_t)store_row_int(row, 4);
	s->done_seq = store_row_int(row, 5);
	if ((t = store_row_text(row, 6)) != NULL)
		s->error = json_loads(t, JSON_DECODE_ANY, &je);
	if ((t = store_row_text(row, 7)) != NULL)
		s->output = json_loads(t, JSON_DECODE_ANY, &je);
	return (0);
}

static struct workflow *
load_one(const char *id, int *err)
{
	struct load_ctx	lc = { NULL, 0 };

	if (store_query(load_wf_row, &lc, "SELECT id, name, state, spec, "
	    "created_at, started_at, finished_at, error, peer, exec_allowed "
	    "FROM workflows WHERE id = ?", "t", id) == -1) {
		*err = 1;
		return (NULL);
	}
	*err = lc.err;
	if (lc.wf == NULL || lc.err == 1) {
		wf_free(lc.wf);
		return (NULL);
	}
	if (lc.err == 0 && store_query(load_step_row, lc.wf, "SELECT idx, "
	    "state, attempts, started_at, finished_at, done_seq, error, "
	    "output FROM workflow_steps WHERE workflow_id = ?", "t", id) == -1)
		*err = 1;
	return (lc.wf);
}

struct workflow *
wf_load(const char *id)
{
	int	err;

	return (load_one(id, &err));
}

static int
list_row(const struct store_row *row, void *arg)
{
	json_t	*a = arg, *o;

	o = json_pack("{s:s, s:s, s:s, s:I}", "id", store_row_text(row, 0),
	    "name", store_row_text(row, 1), "state", store_row_text(row, 2),
	    "created_at", (json_int_t)store_row_int(row, 3));
	if (!store_row_isnull(row, 4))
		json_object_set_new(o, "started_at",
		    json_integer(store_row_int(row, 4)));
	if (!store_row_isnull(row, 5))
		json_object_set_new(o, "finished_at",
		    json_integer(store_row_int(row, 5)));
	json_object_set_new(o, "steps", json_integer(store_row_int(row, 6)));
	json_array_append_new(a, o);
	return (0);
}

json_t *
wf_list(int state, int64_t limit)
{
	json_t	*a = json_array();
	int	 rc;

	if (state >= 0)
		rc = store_query(list_row, a, "SELECT id, name, state, "
		    "created_at, nullif(started_at, 0), "
		    "nullif(finished_at, 0), "
		    "(SELECT count(*) FROM workflow_steps WHERE workflow_id = "
		    "id) FROM workflows WHERE state = ? ORDER BY id DESC "
		    "LIMIT ?", "ti", wf_state_name(state), limit);
	else
		rc = store_query(list_row, a, "SELECT id, name, state, "
		    "created_at, nullif(started_at, 0), "
		    "nullif(finished_at, 0), "
		    "(SELECT count(*) FROM workflow_steps WHERE workflow_id = "
		    "id) FROM workflows ORDER BY id DESC LIMIT ?", "i", limit);
	if (rc == -1) {
		json_decref(a);
		return (NULL);
	}
	return (a);
}

static int
id_row(const struct store_row *row, void *arg)
{
	json_array_append_new(arg, json_string(store_row_text(row, 0)));
	return (0);
}

static int
seq_row(const struct store_row *row, void *arg)
{
	*(int64_t *)arg = store_row_int(row, 0);
	return (1);
}

/* May a step cut short by a crash simply run again? */
static int
may_rerun(const struct wf_step *s)
{
	return (!is_client(s) && (!is_exec(s->action) || s->idempotent));
}

/*
 * The restart rules (BEHAVIOUR.md section 7, PROTOCOL.md): a step recorded
 * running runs again unless it runs a program and is not marked
 * idempotent (or is a client step, whose client is gone): that one fails,
 * and the workflow compensates. A compensation recorded running runs
 * again under the same rule, else it counts as failed.
 *
 * A workflow that was already failing, or whose cancel was recorded, runs
 * nothing again: the crash cut its stop short, so what was running ends
 * failed as the stop would have ended it, and advance() goes on from
 * there to the same end (compensation if rollback_on_failure, then
 * compensated, failed or cancelled). The cancel is known by its error
 * code, as it leaves the workflow `running` until its steps have stopped
 * and no step need have failed yet. Whether the workflow is failing is
 * settled before any step is touched, so a step that could run again is
 * stopped (failed) when another cannot, whatever their order, and never
 * left pending only to be skipped.
 */
static void
resume(struct workflow *wf, struct wrec *r)
{
	struct wf_step	*s;
	size_t		 i;
	int		 stopping, named = 0;

	wf->owner = 0;
	wf->cancelled = wf->error != NULL && json_integer_value(
	    json_object_get(wf->error, "code")) == ERM_CANCELLED;
	if (wf->cancelled && wf->state == WF_RUNNING)
		wf->failing = 1;
	for (i = 0; i < wf->nsteps; i++)
		if (wf->steps[i].state == WS_FAILED)
			wf->failing = 1;
	stopping = wf->failing;
	for (i = 0; i < wf->nsteps; i++)
		if (wf->steps[i].state == WS_RUNNING &&
		    !may_rerun(&wf->steps[i]))
			wf->failing = 1;
	for (i = 0; i < wf->nsteps; i++) {
		s = &wf->steps[i];
		if (s->state == WS_RUNNING) {
			if (wf->failing) {
				json_decref(s->error);
				s->error = json_pack("{s:s, s:s}", "category",
				    "SYSTEM_ERROR", "message", stopping ?
				    "interrupted by a restart while stopping" :
				    is_client(s) ? "interrupted by a restart; "
				    "the client is gone" : !may_rerun(s) ?
				    "interrupted by a restart; not idempotent, "
				    "not run again" : "interrupted by a "
				    "restart; stopped, as another step may not "
				    "run again");
				s->state = WS_FAILED;
				s->finished_at = clock_now_ms();
				/* The workflow's error names the first. */
				if (!stopping && !named && !may_rerun(s)) {
					json_decref(wf->error);
					wf->error = json_pack("{s:s, s:O}",
					    "step", s->name, "error", s->error);
					named = 1;
				}
			} else
				s->state = WS_PENDING;	/* runs again */
			rec_step(r, i);
		} else if (s->state == WS_COMPENSATING) {
			if (s->compensate != NULL && ((is_exec(s->compensate) &&
			    !s->idempotent) || strcmp(json_string_value(
			    json_object_get(s->compensate, "type")),
			    "client") == 0)) {
				s->error = json_pack("{s:s, s:s}", "message",
				    "compensation failed", "reason",
				    "interrupted by a restart; not idempotent");
				s->state = WS_COMPENSATION_FAILED;
			} else
				s->state = WS_SUCCEEDED;
			rec_step(r, i);
		}
	}
	/* A failure recorded but not yet acted on: skip what waits. */
	if (wf->failing && wf->state == WF_RUNNING)
		for (i = 0; i < wf->nsteps; i++)
			if (wf->steps[i].state == WS_PENDING) {
				wf->steps[i].state = WS_SKIPPED;
				rec_step(r, i);
			}
	rec_wf(r);
}

static void
resume_all(evutil_socket_t fd, short what, void *arg)
{
	json_t		*ids = json_array(), *v;
	struct workflow	*wf;
	struct wrec	*r;
	size_t		 i;
	int		 err;

	(void)fd;
	(void)what;
	(void)arg;
	(void)store_query(seq_row, &W.seq, "SELECT coalesce(max(done_seq), 0) "
	    "FROM workflow_steps", NULL);
	(void)store_query(id_row, ids, "SELECT id FROM workflows WHERE state "
	    "IN ('pending', 'running', 'compensating') ORDER BY id", NULL);
	json_array_foreach(ids, i, v) {
		wf = load_one(json_string_value(v), &err);
		if (wf == NULL)
			continue;
		link_wf(wf);
		r = rec_new(wf);
		if (err != 0) {
			set_wf_state(wf, WF_FAILED);
			json_decref(wf->error);
			wf->error = json_pack("{s:s}", "message", "the stored "
			    "workflow could not be read back");
			rec_wf(r);
		} else if (wf->state != WF_PENDING) {
			log_info("workflow %s (%s): resuming, %s", wf->id,
			    wf->name, wf_state_name(wf->state));
			resume(wf, r);
		}
		rec_submit(r);
	}
	json_decref(ids);
}

/* ---- connections -------------------------------------------------------- */

static struct {
	struct conn	**v;
	size_t		  n, cap;
} conns;

static struct conn *
find_conn(uint64_t id)
{
	size_t	i;

	for (i = 0; i < conns.n; i++)
		if (conns.v[i]->id == id)
			return (conns.v[i]);
	return (NULL);
}

/* A connection that created workflows with client steps is remembered. */
void	wf_note_conn(struct conn *);

void
wf_note_conn(struct conn *c)
{
	if (find_conn(c->id) != NULL)
		return;
	if (conns.n == conns.cap) {
		conns.cap = conns.cap ? conns.cap * 2 : 8;
		if ((conns.v = reallocarray(conns.v, conns.cap,
		    sizeof(*conns.v))) == NULL)
			fatalx("workflow: out of memory");
	}
	conns.v[conns.n++] = c;
}

static void
conn_closed(struct conn *c)
{
	struct workflow	*wf, *next;
	size_t		 i;

	for (i = 0; i < conns.n; i++)
		if (conns.v[i] == c) {
			conns.v[i] = conns.v[--conns.n];
			break;
		}
	for (wf = W.head; wf != NULL; wf = next) {
		next = wf->next;
		if (wf->owner != c->id)
			continue;
		wf->owner = 0;
		for (i = 0; i < wf->nsteps; i++)
			if (waiting_client(&wf->steps[i]))
				client_done(wf, i, 0, json_pack("{s:s, s:s}",
				    "category", "NETWORK_ERROR", "message",
				    "the client disconnected"), NULL);
		free_if_done(wf);
	}
}

/* ---- permissions, config, start ----------------------------------------- */

int
wf_exec_permitted(const struct peer *p)
{
	size_t	i;

	if (p->uid == 0 || p->uid == ermd.euid)
		return (1);
	if (wf_set.nexec_gids == 0)
		return (p->admin);
	for (i = 0; i < wf_set.nexec_gids; i++)
		if (peer_in_group(p, wf_set.exec_gids[i]))
			return (1);
	return (0);
}

/*
 * exec_allow_groups ("ops, 1001 deploy") to gids, resolved when the config
 * is read (getgrnam may ask NSS over the network: never per request).
 * -1 with the first unknown name in err.
 */
static int
resolve_groups(const char *value, gid_t **out, size_t *nout, char *err,
    size_t errsz)
{
	char		*list, *g, *save = NULL, *end;
	struct group	*gr;
	gid_t		*v = NULL, *nv;
	size_t		 n = 0;
	unsigned long	 l;

	*out = NULL;
	*nout = 0;
	if ((list = strdup(value)) == NULL) {
		snprintf(err, errsz, "out of memory");
		return (-1);
	}
	for (g = strtok_r(list, ", \t", &save); g != NULL;
	    g = strtok_r(NULL, ", \t", &save)) {
		errno = 0;
		l = strtoul(g, &end, 10);
		if (*end != '\0' || errno != 0 || l > UINT32_MAX - 1) {
			if ((gr = getgrnam(g)) == NULL) {
				snprintf(err, errsz, "exec_allow_groups: no "
				    "group '%s'", g);
				goto fail;
			}
			l = gr->gr_gid;
		}
		if ((nv = reallocarray(v, n + 1, sizeof(*v))) == NULL) {
			snprintf(err, errsz, "out of memory");
			goto fail;
		}
		v = nv;
		v[n++] = (gid_t)l;
	}
	free(list);
	*out = v;
	*nout = n;
	return (0);
fail:
	free(list);
	free(v);
	return (-1);
}

static const char *const wf_keys[] = { "max_running", "max_steps",
    "exec_allow_groups", "kill_grace_ms", "max_age_ms", "prune_interval_ms",
    NULL };

#define C(f)	offsetof(struct wf_settings, f)
static const struct opt wf_opts[] = {
	{ "max_running", OPT_INT, 1, 1000000, C(max_running), NULL },
	{ "max_steps", OPT_INT, 1, 1000000, C(max_steps), NULL },
	{ "kill_grace_ms", OPT_INT, 1, 1000000, C(kill_grace_ms), NULL },
	{ "max_age_ms", OPT_INT, 0, OPT_MAX_MS, C(max_age_ms), NULL },
	{ "prune_interval_ms", OPT_INT, 0, 86400000, C(prune_interval_ms),
	    NULL },
	{ NULL, OPT_INT, 0, 0, 0, NULL }
};
#undef C

static int
wf_check(const char *section, const char *key, const char *value, char *err,
    size_t errsz)
{
	struct wf_settings	 scratch;
	const struct opt	*o;
	char			 why[256];
	gid_t			*gids;
	size_t			 n;
	int			 i;

	(void)section;
	if (strcmp(key, "exec_allow_groups") == 0) {
		if (resolve_groups(value, &gids, &n, err, errsz) == -1)
			return (-1);
		free(gids);
		return (0);
	}
	if ((i = opt_find(wf_opts, key)) == -1)
		return (-1);
	/* [workflow] has always said the same for junk and out of range. */
	o = &wf_opts[i];
	if (opts_check_conf(wf_opts, &scratch, key, value, why,
	    sizeof(why)) == -1) {
		snprintf(err, errsz, "%s: '%s' must be an integer from %.15g "
		    "to %.15g", key, value, o->min, o->max);
		return (-1);
	}
	return (0);
}

/* ---- retention ---------------------------------------------------------- */

/*
 * Finished workflows (and their steps, outputs included) older than
 * [workflow] max_age_ms are deleted every prune_interval_ms, as Temporal
 * drops closed workflows after the namespace's retention period. A batch
 * a job; a full batch goes on at once. Unfinished ones are never pruned.
 */
static struct periodic	prune;

struct prune_job {
	int64_t	before;
	int64_t	removed;
	int64_t	by_state[WF_NSTATES];	/* of removed */
};

#define OLD_WORKFLOWS	"SELECT id FROM workflows WHERE finished_at > 0 " \
			"AND finished_at < ?1 AND state IN ('succeeded', " \
			"'failed', 'compensated', 'cancelled') " \
			"ORDER BY finished_at, id LIMIT ?2"

static int
pruned_row(const struct store_row *row, void *arg)
{
	struct prune_job	*p = arg;
	int			 st = wf_state_from_name(store_row_text(row, 0));

	if (st >= 0)
		p->by_state[st] = store_row_int(row, 1);
	return (0);
}

static int
prune_run(struct store_tx *tx, void *arg)
{
	struct prune_job	*p = arg;
	int64_t			 before;

	/* The same rows each time: the subquery is ordered, in one
	 * transaction. */
	memset(p->by_state, 0, sizeof(p->by_state));
	if (store_tx_query(tx, pruned_row, p, "SELECT state, count(*) FROM "
	    "workflows WHERE id IN (" OLD_WORKFLOWS ") GROUP BY state", "ii",
	    p->before, (int64_t)WF_PRUNE_BATCH) == -1)
		return (-1);
	if (store_tx_exec(tx, "DELETE FROM workflow_steps WHERE workflow_id "
	    "IN (" OLD_WORKFLOWS ")", "ii", p->before,
	    (int64_t)WF_PRUNE_BATCH) == -1)
		return (-1);
	before = store_tx_changes(tx);
	if (store_tx_exec(tx, "DELETE FROM workflows WHERE id IN ("
	    OLD_WORKFLOWS ")", "ii", p->before, (int64_t)WF_PRUNE_BATCH) == -1)
		return (-1);
	p->removed = store_tx_changes(tx) - before;
	return (0);
}

static void
prune_done(void *arg, const struct store_result *res)
{
	struct prune_job	*p = arg;
	int			 i;

	if (!res->ok)
		log_warnx("workflow: prune: %s", res->msg);
	else {
		for (i = 0; i < WF_NSTATES; i++)
			W.stored[i] -= p->by_state[i];
		if (p->removed > 0)
			log_debug("workflow: pruned %lld",
			    (long long)p->removed);
	}
	periodic_done(&prune, res->ok && p->removed == WF_PRUNE_BATCH);
	free(p);
}

static void
prune_start(struct periodic *pr)
{
	struct prune_job	*p;

	if (wf_set.max_age_ms == 0 || (p = calloc(1, sizeof(*p))) == NULL) {
		periodic_done(pr, 0);
		return;
	}
	p->before = (int64_t)clock_now_ms() - wf_set.max_age_ms;
	if (store_submit(prune_run, prune_done, p) == -1) {
		free(p);
		periodic_done(pr, 0);
	}
}

static void
wf_apply(const struct config *cfg)
{
	size_t	i;

	wf_set.max_running = WF_MAX_RUNNING_DEFAULT;
	wf_set.max_steps = WF_MAX_STEPS_DEFAULT;
	wf_set.kill_grace_ms = 5000;
	wf_set.max_age_ms = WF_MAX_AGE_DEFAULT;
	wf_set.prune_interval_ms = WF_PRUNE_EVERY_DEFAULT;
	opts_from_config(wf_opts, &wf_set, cfg, "workflow");
	periodic_every(&prune, wf_set.prune_interval_ms);
	free(wf_set.exec_gids);
	wf_set.exec_gids = NULL;
	wf_set.nexec_gids = 0;
	for (i = 0; i < cfg->nentries; i++) {
		const struct config_entry *e = &cfg->entries[i];
		char			   err[256];

		if (strcmp(e->section, "workflow") != 0 ||
		    strcmp(e->key, "exec_allow_groups") != 0)
			continue;
		free(wf_set.exec_gids);
		/* Checked a moment ago; a group gone since is left out. */
		if (resolve_groups(e->value, &wf_set.exec_gids,
		    &wf_set.nexec_gids, err, sizeof(err)) == -1)
			log_warnx("workflow: %s", err);
	}
}

void
workflow_register(void)
{
	static const struct config_kind	kind = {
		"workflow", 0, wf_check, wf_keys, wf_apply
	};

	config_register_kind(&kind);
}

/* At start: the rows of the workflows table by state (see W.stored). */
static int
stored_row(const struct store_row *row, void *arg)
{
	int	st = wf_state_from_name(store_row_text(row, 0));

	(void)arg;
	if (st >= 0)
		W.stored[st] = store_row_int(row, 1);
	return (0);
}

static void
report_status(json_t *st)
{
	json_object_set_new(st, "workflows_running",
	    json_integer(wf_running_count()));
}

static void
report_metrics(json_t *m)
{
	json_t	*o = json_object();
	int	 i;

	for (i = 0; i < WF_NSTATES; i++)
		json_object_set_new(o, wf_state_name(i),
		    json_integer(W.stored[i]));
	json_object_set_new(m, "workflows", o);
}

static const struct reporter	reporter = { report_status,
    report_metrics };

static double
read_running(void)
{
	return (wf_running_count());
}

static void
collect_transitions(struct metric_emitter *e)
{
	metric_emit(e, (double)W.transitions);
}

/* ermd_workflows{state}: every state, at zero when none is in it. */
static void
collect_states(struct metric_emitter *e)
{
	int	i;

	for (i = 0; i < WF_NSTATES; i++)
		metric_emit(e, (double)W.stored[i], wf_state_name(i));
}

void
workflow_start(void)
{
	struct timeval	tv = { 0, 0 };

	if (http_init(ermd.base) == -1)
		fatalx("workflow: cannot start the HTTP client");
	memset(W.stored, 0, sizeof(W.stored));
	if (store_query(stored_row, NULL, "SELECT state, count(*) FROM "
	    "workflows GROUP BY state", NULL) == -1)
		log_warnx("workflow: cannot count the stored workflows");
	report_register(&reporter);
	conn_on_close(conn_closed);
	metrics_gauge_fn("ermd_workflows_running", "Workflows running or "
	    "compensating now.", read_running);
	metrics_collector("ermd_workflow_transitions_total", "Workflow and "
	    "step transitions recorded since start.", METRIC_COUNTER, NULL,
	    collect_transitions);
	{
		static const char *const ls[] = { "state", NULL };

		metrics_collector("ermd_workflows", "Stored workflows by "
		    "state.", METRIC_GAUGE, ls, collect_states);
	}
	if (periodic_start(&prune, prune_start,
	    wf_set.prune_interval_ms) == -1)
		fatalx("workflow: out of memory");
	W.started = 1;
	/* After the config (and its roots) come into force. */
	if (event_base_once(ermd.base, -1, EV_TIMEOUT, resume_all, NULL,
	    &tv) == -1)
		fatalx("workflow: cannot schedule the resumption");
}

void
workflow_stop(void)
{
	struct workflow	*wf;
	size_t		 i;

	/*
	 * Running programs are stopped; their steps stay `running` in the
	 * store and follow the restart rules next time.
	 */
	W.started = 0;
	periodic_stop(&prune);
	for (wf = W.head; wf != NULL; wf = wf->next)
		for (i = 0; i < wf->nsteps; i++)
			if (wf->steps[i].act != NULL &&
			    !wf->steps[i].client_wait)
				wf_act_stop(wf->steps[i].act);
	http_shutdown();
}
