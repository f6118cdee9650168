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

/*
 * The daemon's clock (it moves with debug.advance) in *now. Returns the
 * status of the ping, for ctl_fail to tell "not running" from the rest.
 */
static enum erm_status
daemon_now(struct ctl *ctx, int64_t *now)
{
	json_t		*result = NULL;
	enum erm_status	 st;

	if ((st = ctl_call(ctx, "ping", NULL, &result)) != ERM_OK)
		return (st);
	*now = json_integer_value(json_object_get(result, "now"));
	json_decref(result);
	return (ERM_OK);
}

/*
 * Whether event ev passes the filter of error.list's params for key: no
 * filter, or a member key equal to it (error.list compares exactly).
 */
static int
event_matches(json_t *ev, json_t *params, const char *key)
{
	const char	*want, *have;

	if ((want = json_string_value(json_object_get(params, key))) == NULL)
		return (1);
	have = json_string_value(json_object_get(ev, key));
	return (have != NULL && strcmp(want, have) == 0);
}

static int
follow(struct ctl *ctx, json_t *params)
{
	struct sigaction	 sa;
	enum erm_status		 st;
	json_t			*ev;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = follow_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	while (!follow_stop) {
		st = erm_next_event(ctx->client, 250, &ev);
		if (st == ERM_ETIMEDOUT)
			continue;
		if (st != ERM_OK)
			return (ctl_fail(ctx, "events", st));
		/* The same filters as the listing before it. */
		if (event_matches(ev, params, "category") &&
		    event_matches(ev, params, "operation") &&
		    event_matches(ev, params, "severity")) {
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
		if ((st = daemon_now(ctx, &now)) != ERM_OK) {
			json_decref(params);
			return (ctl_fail(ctx, "ping", st));
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
