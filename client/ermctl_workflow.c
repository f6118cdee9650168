/*
 * ermctl commands for workflows: workflow submit, list, show, cancel and
 * watch. submit --wait and watch end with an exit status that tells the
 * final state: 0 succeeded, 1 failed, 4 compensated, 5 cancelled.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ermctl.h"

#define WF_EXIT_COMPENSATED	4
#define WF_EXIT_CANCELLED	5

/* What watch draws: the workflow's steps and their states. */
struct view {
	struct ctl	*ctx;
	json_t		*wf;		/* workflow.get's shape */
	int		 tty;
	int		 lines;		/* drawn last time (tty) */
};

static int
final_status(const json_t *wf)
{
	const char	*s = json_string_value(json_object_get(wf, "state"));

	if (s == NULL)
		return (CTL_EXIT_FAILED);
	if (strcmp(s, "succeeded") == 0)
		return (CTL_EXIT_OK);
	if (strcmp(s, "compensated") == 0)
		return (WF_EXIT_COMPENSATED);
	if (strcmp(s, "cancelled") == 0)
		return (WF_EXIT_CANCELLED);
	return (CTL_EXIT_FAILED);
}

/* Redraw the table in place (a terminal). */
static void
draw(struct view *v)
{
	json_t	*s;
	size_t	 i;
	int	 n = 0;

	if (v->lines > 0)
		fprintf(stdout, "\033[%dA", v->lines);
	fprintf(stdout, "\r\033[Kworkflow %s (%s): %s\n",
	    json_string_value(json_object_get(v->wf, "name")),
	    json_string_value(json_object_get(v->wf, "id")),
	    json_string_value(json_object_get(v->wf, "state")));
	n++;
	json_array_foreach(json_object_get(v->wf, "steps"), i, s) {
		fprintf(stdout, "\033[K  %-24s %-20s", json_string_value(
		    json_object_get(s, "name")), json_string_value(
		    json_object_get(s, "state")));
		if (json_integer_value(json_object_get(s, "attempts")) > 1)
			fprintf(stdout, " attempt %lld", (long long)
			    json_integer_value(json_object_get(s, "attempts")));
		if (json_object_get(s, "error") != NULL)
			fprintf(stdout, " %s", json_string_value(
			    json_object_get(json_object_get(s, "error"),
			    "message")) ? json_string_value(json_object_get(
			    json_object_get(s, "error"), "message")) : "");
		fputc('\n', stdout);
		n++;
	}
	v->lines = n;
	fflush(stdout);
}

static void
on_event(void *arg, const json_t *ev)
{
	struct view	*v = arg;
	const char	*step;
	json_t		*s;
	size_t		 i;

	step = json_string_value(json_object_get(ev, "step"));
	if (v->ctx->out == CTL_OUT_JSON || !v->tty) {
		print_event(v->ctx, (json_t *)ev);
		return;
	}
	if (v->wf == NULL) {
		/* submit --wait: the first event names the workflow. */
		json_t	*p = json_pack("{s:O}", "id",
		    json_object_get(ev, "id"));

		if (p == NULL || ctl_call(v->ctx, "workflow.get", p,
		    &v->wf) != ERM_OK) {
			json_decref(p);
			return;
		}
		json_decref(p);
	}
	if (step == NULL)
		json_object_set(v->wf, "state", json_object_get(ev, "state"));
	else
		json_array_foreach(json_object_get(v->wf, "steps"), i, s)
			if (strcmp(json_string_value(json_object_get(s,
			    "name")), step) == 0) {
				json_object_set(s, "state",
				    json_object_get(ev, "state"));
				json_object_set(s, "attempts",
				    json_object_get(ev, "attempts"));
				if (json_object_get(ev, "error") != NULL)
					json_object_set(s, "error",
					    json_object_get(ev, "error"));
			}
	draw(v);
}

/* The end of submit --wait and watch: the final workflow, an exit status. */
static int
finish(struct view *v, json_t *final)
{
	if (v->tty && v->ctx->out != CTL_OUT_JSON) {
		json_decref(v->wf);
		v->wf = json_incref(final);
		draw(v);
	} else
		print_result(v->ctx, final);
	json_decref(v->wf);
	v->wf = NULL;
	return (final_status(final));
}

int
cmd_workflow_submit(struct ctl *ctx, int argc, char **argv)
{
	static const struct option	 opts[] = {
		{ "wait", no_argument, NULL, 'w' },
		CTL_COMMON_OPTIONS
	};
	struct erm_workflow		*wf = NULL;
	struct view			 v;
	json_error_t			 je;
	json_t				*spec, *final = NULL, *res = NULL;
	enum erm_status			 st;
	int				 ch, r, wait = 0;

	optind = 0;
	while ((ch = getopt_long(argc, argv, CTL_SHORTOPTS "w", opts,
	    NULL)) != -1) {
		if (ch == 'w') {
			wait = 1;
			continue;
		}
		if ((r = ctl_option(ctx, ch, argv)) != -1)
			return (r);
	}
	if (optind == argc)
		return (ctl_usage_error(ctx, "which file?"));
	if (optind < argc - 1)
		return (ctl_usage_error(ctx, "unexpected argument '%s'",
		    argv[optind + 1]));
	if (strcmp(argv[optind], "-") == 0)
		spec = json_loadf(stdin, JSON_REJECT_DUPLICATES, &je);
	else
		spec = json_load_file(argv[optind], JSON_REJECT_DUPLICATES,
		    &je);
	if (spec == NULL || !json_is_object(spec)) {
		ctl_warnx("%s:%d: %s", argv[optind], je.line, spec == NULL ?
		    je.text : "not a JSON object (the workflow.create params)");
		json_decref(spec);
		return (CTL_EXIT_FAILED);
	}
	/*
	 * "run": false stores the workflow without running it, so it would
	 * never end: refuse the pair at once, as systemd-run refuses --wait
	 * with --no-block, rather than wait for ever or run it regardless.
	 */
	if (wait && json_is_false(json_object_get(spec, "run"))) {
		json_decref(spec);
		return (ctl_usage_error(ctx, "--wait conflicts with \"run\": "
		    "false in %s (a workflow that is not run never ends)",
		    argv[optind]));
	}
	if (!wait) {
		st = ctl_call(ctx, "workflow.create", spec, &res);
		json_decref(spec);
		if (st != ERM_OK)
			return (ctl_fail(ctx, "workflow.create", st));
		print_result(ctx, res);
		json_decref(res);
		return (CTL_EXIT_OK);
	}
	if ((st = ctl_connect(ctx)) != ERM_OK) {
		json_decref(spec);
		return (ctl_fail(ctx, "workflow.create", st));
	}
	if (erm_workflow_new("x", &wf) != ERM_OK ||
	    json_object_update(erm_workflow_params(wf), spec) == -1) {
		json_decref(spec);
		erm_workflow_free(wf);
		ctl_warnx("out of memory");
		return (CTL_EXIT_FAILED);
	}
	json_decref(spec);
	memset(&v, 0, sizeof(v));
	v.ctx = ctx;
	v.tty = isatty(STDOUT_FILENO);
	/* A workflow takes as long as it takes: no --timeout here. */
	erm_set_timeout(ctx->client, 0);
	st = erm_workflow_execute(ctx->client, wf, on_event, &v, &final);
	erm_workflow_free(wf);
	if (st != ERM_OK)
		return (ctl_fail(ctx, "workflow", st));
	r = finish(&v, final);
	json_decref(final);
	return (r);
}

int
cmd_workflow_list(struct ctl *ctx, int argc, char **argv)
{
	static const struct option	 opts[] = {
		{ "state", required_argument, NULL, 's' },
		{ "limit", required_argument, NULL, 'n' },
		CTL_COMMON_OPTIONS
	};
	json_t				*params;
	char				*end;
	long				 limit;
	int				 ch, r;

	if ((params = json_object()) == NULL)
		return (CTL_EXIT_FAILED);
	optind = 0;
	while ((ch = getopt_long(argc, argv, CTL_SHORTOPTS "s:n:", opts,
	    NULL)) != -1) {
		switch (ch) {
		case 's':
			json_object_set_new(params, "state",
			    json_string(optarg));
			break;
		case 'n':
			errno = 0;
			limit = strtol(optarg, &end, 10);
			if (*optarg == '\0' || *end != '\0' || errno != 0 ||
			    limit < 1) {
				json_decref(params);
				return (ctl_usage_error(ctx, "--limit needs a "
				    "number, 1 or more: '%s'", optarg));
			}
			json_object_set_new(params, "limit",
			    json_integer(limit));
			break;
		default:
			if ((r = ctl_option(ctx, ch, argv)) != -1) {
				json_decref(params);
				return (r);
			}
		}
	}
	if (optind < argc) {
		json_decref(params);
		return (ctl_usage_error(ctx, "unexpected argument '%s'",
		    argv[optind]));
	}
	return (ctl_call_print(ctx, "workflow.list", params, NULL));
}

int
cmd_workflow_show(struct ctl *ctx, int argc, char **argv)
{
	const char	*id = NULL;
	int		 r;

	if ((r = ctl_one_arg(ctx, argc, argv, "workflow", &id)) != -1)
		return (r);
	return (ctl_call_print(ctx, "workflow.get", json_pack("{s:s}", "id",
	    id), NULL));
}

int
cmd_workflow_cancel(struct ctl *ctx, int argc, char **argv)
{
	const char	*id = NULL;
	int		 r;

	if ((r = ctl_one_arg(ctx, argc, argv, "workflow", &id)) != -1)
		return (r);
	return (ctl_call_print(ctx, "workflow.cancel", json_pack("{s:s}", "id",
	    id), NULL));
}

int
cmd_workflow_watch(struct ctl *ctx, int argc, char **argv)
{
	struct view	 v;
	json_t		*params, *final = NULL;
	enum erm_status	 st;
	const char	*id = NULL;
	int		 r;

	if ((r = ctl_one_arg(ctx, argc, argv, "workflow", &id)) != -1)
		return (r);
	memset(&v, 0, sizeof(v));
	v.ctx = ctx;
	v.tty = isatty(STDOUT_FILENO);
	if ((params = json_pack("{s:s}", "id", id)) == NULL)
		return (CTL_EXIT_FAILED);
	st = ctl_call(ctx, "workflow.get", params, &v.wf);
	json_decref(params);
	if (st != ERM_OK)
		return (ctl_fail(ctx, "workflow.get", st));
	if (v.tty && ctx->out != CTL_OUT_JSON)
		draw(&v);
	erm_set_timeout(ctx->client, 0);
	st = erm_workflow_wait(ctx->client, id, 0, on_event, &v, &final);
	if (st != ERM_OK) {
		json_decref(v.wf);
		return (ctl_fail(ctx, "workflow.wait", st));
	}
	r = finish(&v, final);
	json_decref(final);
	return (r);
}
