/*
 * ermctl commands for recorded errors: errors (list, or follow as they are
 * reported) and stats.
 */

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "erm_proto.h"
#include "ermctl.h"

static volatile sig_atomic_t	follow_stop;

static void
follow_signal(int sig)
{
	(void)sig;
	follow_stop = 1;
}

/* The daemon's clock (it moves with debug.advance), or -1. */
static int64_t
daemon_now(struct ctl *ctx)
{
	json_t		*result = NULL;
	int64_t		 now;

	if (ctl_call(ctx, "ping", NULL, &result) != ERM_OK)
		return (-1);
	now = json_integer_value(json_object_get(result, "now"));
	json_decref(result);
	return (now);
}

static int
follow(struct ctl *ctx, json_t *params)
{
	struct sigaction	 sa;
	enum erm_status		 st;
	json_t			*ev, *v;
	const char		*cat = NULL, *op = NULL;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = follow_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	if ((v = json_object_get(params, "category")) != NULL)
		cat = json_string_value(v);
	if ((v = json_object_get(params, "operation")) != NULL)
		op = json_string_value(v);
	while (!follow_stop) {
		st = erm_next_event(ctx->client, 250, &ev);
		if (st == ERM_ETIMEDOUT)
			continue;
		if (st != ERM_OK)
			return (ctl_fail(ctx, "events", st));
		if ((cat == NULL || strcmp(cat, json_string_value(
		    json_object_get(ev, "category"))) == 0) &&
		    (op == NULL || strcmp(op, json_string_value(
		    json_object_get(ev, "operation"))) == 0)) {
			print_event(ctx, ev);
			fflush(stdout);
		}
		json_decref(ev);
	}
	return (CTL_EXIT_OK);
}

int
cmd_errors(struct ctl *ctx, int argc, char **argv)
{
	static const struct option	 opts[] = {
		{ "since", required_argument, NULL, 's' },
		{ "category", required_argument, NULL, 'c' },
		{ "op", required_argument, NULL, 'o' },
		{ "severity", required_argument, NULL, 'S' },
		{ "limit", required_argument, NULL, 'n' },
		{ "follow", no_argument, NULL, 'f' },
		CTL_COMMON_OPTIONS
	};
	static const char *const types[] = { "error.reported", NULL };
	json_t				*params, *result = NULL;
	enum erm_status			 st;
	int64_t				 since = -1, limit = -1, now;
	int				 ch, r, follow_on = 0;

	if ((params = json_object()) == NULL) {
		ctl_warnx("out of memory");
		return (CTL_EXIT_FAILED);
	}
	optind = 0;
	while ((ch = getopt_long(argc, argv, CTL_SHORTOPTS "s:c:o:S:n:f",
	    opts, NULL)) != -1) {
		switch (ch) {
		case 's':
			if (ctl_parse_duration(ctx, "--since", optarg, 1, 0,
			    &since) == -1)
				goto usage;
			break;
		case 'c':
			json_object_set_new(params, "category",
			    json_string(optarg));
			break;
		case 'o':
			json_object_set_new(params, "operation",
			    json_string(optarg));
			break;
		case 'S':
			json_object_set_new(params, "severity",
			    json_string(optarg));
			break;
		case 'n':
			if (ctl_parse_count(ctx, "--limit", optarg,
			    1, &limit) == -1)
				goto usage;
			json_object_set_new(params, "limit",
			    json_integer(limit));
			break;
		case 'f':
			follow_on = 1;
			break;
		default:
			if ((r = ctl_option(ctx, ch, argv)) != -1) {
				json_decref(params);
				return (r);
			}
		}
	}
	if (optind < argc) {
		ctl_usage_error(ctx, "unexpected argument '%s'", argv[optind]);
		goto usage;
	}
	if (since >= 0) {
		if ((now = daemon_now(ctx)) == -1) {
			json_decref(params);
			return (ctl_fail(ctx, "ping", ERM_EREPLY));
		}
		json_object_set_new(params, "since",
		    json_integer(now > since ? now - since : 0));
	}
	/* Subscribe before listing, so nothing falls between the two. */
	if (follow_on && ((st = ctl_connect(ctx)) != ERM_OK ||
	    (st = erm_subscribe(ctx->client, types)) != ERM_OK)) {
		json_decref(params);
		return (ctl_fail(ctx, "events.subscribe", st));
	}
	st = ctl_call(ctx, "error.list", params, &result);
	if (st != ERM_OK) {
		json_decref(params);
		return (ctl_fail(ctx, "error.list", st));
	}
	print_result(ctx, result);
	fflush(stdout);
	json_decref(result);
	r = follow_on ? follow(ctx, params) : CTL_EXIT_OK;
	json_decref(params);
	return (r);
usage:
	json_decref(params);
	return (CTL_EXIT_USAGE);
}

int
cmd_stats(struct ctl *ctx, int argc, char **argv)
{
	static const struct option	 opts[] = {
		{ "window", required_argument, NULL, 'w' },
		CTL_COMMON_OPTIONS
	};
	json_t				*params, *result = NULL;
	enum erm_status			 st;
	int64_t				 window;
	int				 ch, r;

	if ((params = json_object()) == NULL) {
		ctl_warnx("out of memory");
		return (CTL_EXIT_FAILED);
	}
	optind = 0;
	while ((ch = getopt_long(argc, argv, CTL_SHORTOPTS "w:", opts,
	    NULL)) != -1) {
		if (ch == 'w') {
			if (ctl_parse_duration(ctx, "--window", optarg, 1, 1,
			    &window) == -1) {
				json_decref(params);
				return (CTL_EXIT_USAGE);
			}
			json_object_set_new(params, "window_ms",
			    json_integer(window));
		} else if ((r = ctl_option(ctx, ch, argv)) != -1) {
			json_decref(params);
			return (r);
		}
	}
	if (optind < argc) {
		json_decref(params);
		return (ctl_usage_error(ctx, "unexpected argument '%s'",
		    argv[optind]));
	}
	st = ctl_call(ctx, "error.stats", params, &result);
	json_decref(params);
	if (st != ERM_OK)
		return (ctl_fail(ctx, "error.stats", st));
	print_result(ctx, result);
	json_decref(result);
	return (CTL_EXIT_OK);
}
