/*
 * ermctl commands of the decision core: breaker list, show, reset, open,
 * close and disable, and classify.
 */

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ermctl.h"

enum {
	CLS_OPT_ERRNO = 0x200,
	CLS_OPT_HTTP,
	CLS_OPT_EXCEPTION,
	CLS_OPT_MESSAGE,
	CLS_OPT_EXIT,
	CLS_OPT_SIGNAL,
	CLS_OPT_CATEGORY,
};

int
cmd_breaker_list(struct ctl *ctx, int argc, char **argv)
{
	static const struct option	 opts[] = {
		{ "state", required_argument, NULL, 's' },
		CTL_COMMON_OPTIONS
	};
	const char			*state = NULL;
	int				 ch, r;

	optind = 0;
	while ((ch = getopt_long(argc, argv, CTL_SHORTOPTS "s:", opts,
	    NULL)) != -1) {
		if (ch == 's')
			state = optarg;
		else if ((r = ctl_option(ctx, ch, argv)) != -1)
			return (r);
	}
	if (optind < argc)
		return (ctl_usage_error(ctx, "unexpected argument '%s'",
		    argv[optind]));
	return (ctl_call_print(ctx, "breaker.list", state != NULL ?
	    json_pack("{s:s}", "state", state) : json_object(), NULL));
}

int
cmd_breaker_show(struct ctl *ctx, int argc, char **argv)
{
	const char	*name;
	int		 r;

	if ((r = ctl_one_arg(ctx, argc, argv, "breaker", &name)) != -1)
		return (r);
	return (ctl_call_print(ctx, "breaker.get", json_pack("{s:s}", "name",
	    name), NULL));
}

int
cmd_breaker_reset(struct ctl *ctx, int argc, char **argv)
{
	const char	*name;
	int		 r;

	if ((r = ctl_one_arg(ctx, argc, argv, "breaker", &name)) != -1)
		return (r);
	return (ctl_call_print(ctx, "breaker.reset", json_pack("{s:s}", "name",
	    name), NULL));
}

/* breaker open, close and disable are breaker.force to one state. */
static int
breaker_force(struct ctl *ctx, int argc, char **argv, const char *state)
{
	const char	*name;
	int		 r;

	if ((r = ctl_one_arg(ctx, argc, argv, "breaker", &name)) != -1)
		return (r);
	return (ctl_call_print(ctx, "breaker.force", json_pack("{s:s, s:s}",
	    "name", name, "state", state), NULL));
}

int
cmd_breaker_open(struct ctl *ctx, int argc, char **argv)
{
	return (breaker_force(ctx, argc, argv, "forced_open"));
}

int
cmd_breaker_close(struct ctl *ctx, int argc, char **argv)
{
	return (breaker_force(ctx, argc, argv, "closed"));
}

int
cmd_breaker_disable(struct ctl *ctx, int argc, char **argv)
{
	return (breaker_force(ctx, argc, argv, "disabled"));
}

/* A positive int, in full. */
static int
parse_pos_int(const char *s, int *out)
{
	char	*end;
	long	 v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (*s == '\0' || *end != '\0' || errno != 0 || v <= 0 || v > INT_MAX)
		return (-1);
	*out = (int)v;
	return (0);
}

/* An errno by number or by name ("ECONNRESET", any case). */
static int
parse_errno(const char *s, int *out)
{
	const char	*name;
	int		 e;

	if (parse_pos_int(s, out) == 0)
		return (0);
	for (e = 1; e < 4096; e++) {
		if ((name = strerrorname_np(e)) != NULL &&
		    strcasecmp(name, s) == 0) {
			*out = e;
			return (0);
		}
	}
	return (-1);
}

/* A signal by number or by name ("TERM", "SIGTERM", any case). */
static int
parse_signal(const char *s, int *out)
{
	const char	*name;
	int		 sig;

	if (parse_pos_int(s, out) == 0)
		return (0);
	if (strncasecmp(s, "SIG", 3) == 0)
		s += 3;
	for (sig = 1; sig < NSIG; sig++) {
		if ((name = sigabbrev_np(sig)) != NULL &&
		    strcasecmp(name, s) == 0) {
			*out = sig;
			return (0);
		}
	}
	return (-1);
}

static const char classify_help[] =
"\n"
"Describe the error with any of:\n"
"  --errno E      an errno, by number or name (ECONNRESET)\n"
"  --http N       an HTTP status\n"
"  --exception T  an exception type name (ConnectionResetError)\n"
"  --message M    the error message (the daemon's message rules see it)\n"
"  --exit-code N  a process's exit status (124 is a timeout)\n"
"  --signal S     the signal that killed a process, by number or name\n"
"  --category C   an explicit category (wins over everything else)\n";

int
cmd_classify(struct ctl *ctx, int argc, char **argv)
{
	static const struct option	 opts[] = {
		{ "errno", required_argument, NULL, CLS_OPT_ERRNO },
		{ "http", required_argument, NULL, CLS_OPT_HTTP },
		{ "exception", required_argument, NULL, CLS_OPT_EXCEPTION },
		{ "message", required_argument, NULL, CLS_OPT_MESSAGE },
		{ "exit-code", required_argument, NULL, CLS_OPT_EXIT },
		{ "signal", required_argument, NULL, CLS_OPT_SIGNAL },
		{ "category", required_argument, NULL, CLS_OPT_CATEGORY },
		CTL_COMMON_OPTIONS
	};
	struct erm_errinfo		 e;
	struct erm_classification	 cl;
	json_t				*out;
	enum erm_status			 st;
	int				 ch, r;

	memset(&e, 0, sizeof(e));
	optind = 0;
	while ((ch = getopt_long(argc, argv, CTL_SHORTOPTS, opts,
	    NULL)) != -1) {
		switch (ch) {
		case CLS_OPT_ERRNO:
			if (parse_errno(optarg, &e.errnum) == -1)
				return (ctl_usage_error(ctx, "--errno needs a "
				    "number or a name such as ECONNRESET: '%s'",
				    optarg));
			break;
		case CLS_OPT_HTTP:
			if (parse_pos_int(optarg, &e.http_status) == -1)
				return (ctl_usage_error(ctx, "--http needs a "
				    "status code: '%s'", optarg));
			break;
		case CLS_OPT_EXIT:
			if (parse_pos_int(optarg, &e.exit_code) == -1)
				return (ctl_usage_error(ctx, "--exit-code "
				    "needs a status above 0: '%s'", optarg));
			break;
		case CLS_OPT_SIGNAL:
			if (parse_signal(optarg, &e.signal) == -1)
				return (ctl_usage_error(ctx, "--signal needs a "
				    "number or a name such as TERM: '%s'",
				    optarg));
			break;
		case CLS_OPT_EXCEPTION:
			e.exception = optarg;
			break;
		case CLS_OPT_MESSAGE:
			e.message = optarg;
			break;
		case CLS_OPT_CATEGORY:
			e.category = optarg;
			break;
		default:
			if ((r = ctl_option(ctx, ch, argv)) != -1) {
				if (ch == 'h')
					fputs(classify_help, stdout);
				return (r);
			}
		}
	}
	if (optind < argc)
		return (ctl_usage_error(ctx, "unexpected argument '%s'",
		    argv[optind]));
	if (e.category == NULL && e.errnum == 0 && e.http_status == 0 &&
	    e.exit_code == 0 && e.signal == 0 && e.exception == NULL &&
	    e.message == NULL)
		return (ctl_usage_error(ctx, "describe the error with at least "
		    "one option"));

	if ((st = ctl_connect(ctx)) != ERM_OK ||
	    (st = erm_classify(ctx->client, &e, &cl)) != ERM_OK)
		return (ctl_fail(ctx, "error.classify", st));
	/* The shape of the daemon's reply, so --json reads the same. */
	out = json_pack("{s:s, s:{s:s, s:o}, s:b, s:s}",
	    "category", cl.category,
	    "strategy", "primary", cl.primary, "fallback",
	    cl.fallback[0] != '\0' ? json_string(cl.fallback) : json_null(),
	    "retryable", cl.retryable,
	    "matched", cl.matched);
	if (out == NULL) {
		ctl_warnx("error.classify: out of memory");
		return (CTL_EXIT_FAILED);
	}
	print_result(ctx, out);
	json_decref(out);
	return (CTL_EXIT_OK);
}
