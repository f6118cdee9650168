/*
 * ermctl commands about the daemon itself: status, ping, version, metrics,
 * events and config reload.
 */

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "erm_proto.h"
#include "ermctl.h"

/* Call a method without params and print its result. */
static int
call_and_print(struct ctl *ctx, const char *method)
{
	json_t		*result = NULL;
	enum erm_status	 st;

	if ((st = ctl_call(ctx, method, NULL, &result)) != ERM_OK)
		return (ctl_fail(ctx, method, st));
	print_result(ctx, result);
	json_decref(result);
	return (CTL_EXIT_OK);
}

int
cmd_status(struct ctl *ctx, int argc, char **argv)
{
	int	r;

	if ((r = ctl_no_args(ctx, argc, argv)) != -1)
		return (r);
	return (call_and_print(ctx, "status"));
}

static double
mono_ms(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6);
}

/*
 * The round trip is timed from the request to the reply on a connection
 * that is already open, so it measures the daemon, not connect().
 */
int
cmd_ping(struct ctl *ctx, int argc, char **argv)
{
	json_t		*result = NULL;
	enum erm_status	 st;
	double		 t0, rtt;
	int		 r;

	if ((r = ctl_no_args(ctx, argc, argv)) != -1)
		return (r);
	if ((st = ctl_connect(ctx)) != ERM_OK)
		return (ctl_fail(ctx, "ping", st));
	t0 = mono_ms();
	if ((st = erm_call(ctx->client, "ping", NULL, &result)) != ERM_OK)
		return (ctl_fail(ctx, "ping", st));
	rtt = mono_ms() - t0;
	/* Round to microseconds: more digits would be noise. */
	json_object_set_new(result, "rtt_ms",
	    json_real((double)(long long)(rtt * 1000.0 + 0.5) / 1000.0));
	print_result(ctx, result);
	json_decref(result);
	return (CTL_EXIT_OK);
}

/*
 * ermctl's own version always prints; the daemon's comes from hello and is
 * missing (with the daemon's failure on stderr) when it cannot be asked.
 */
int
cmd_version(struct ctl *ctx, int argc, char **argv)
{
	json_t		*out, *params, *result = NULL, *v;
	enum erm_status	 st;
	int		 r;

	if ((r = ctl_no_args(ctx, argc, argv)) != -1)
		return (r);
	out = json_pack("{s:s}", "ermctl", ERMD_VERSION);
	params = json_pack("{s:s, s:i}", "client", "ermctl", "protocol",
	    ERM_PROTO_VERSION);
	if (out == NULL || params == NULL) {
		json_decref(out);
		json_decref(params);
		ctl_warnx("out of memory");
		return (CTL_EXIT_FAILED);
	}
	st = ctl_call(ctx, "hello", params, &result);
	json_decref(params);
	if (st == ERM_OK) {
		if ((v = json_object_get(result, "version")) != NULL)
			json_object_set(out, "ermd", v);
		if ((v = json_object_get(result, "protocol")) != NULL)
			json_object_set(out, "protocol", v);
		json_decref(result);
	}
	print_result(ctx, out);
	json_decref(out);
	if (st != ERM_OK)
		return (ctl_fail(ctx, "hello", st));
	return (CTL_EXIT_OK);
}

int
cmd_metrics(struct ctl *ctx, int argc, char **argv)
{
	static const struct option	 opts[] = {
		{ "prometheus", no_argument, NULL, 'p' },
		CTL_COMMON_OPTIONS
	};
	json_t				*result = NULL, *text;
	enum erm_status			 st;
	const char			*s;
	size_t				 len;
	int				 ch, r, prom = 0;

	optind = 0;
	while ((ch = getopt_long(argc, argv, CTL_SHORTOPTS "p", opts,
	    NULL)) != -1) {
		if (ch == 'p')
			prom = 1;
		else if ((r = ctl_option(ctx, ch, argv)) != -1)
			return (r);
	}
	if (optind < argc)
		return (ctl_usage_error(ctx, "unexpected argument '%s'",
		    argv[optind]));
	if (!prom || ctx->out == CTL_OUT_JSON)
		return (call_and_print(ctx, prom ? "metrics.prometheus" :
		    "metrics.get"));

	/* The exposition text goes out as it came, for a scraper or a file. */
	if ((st = ctl_call(ctx, "metrics.prometheus", NULL, &result)) != ERM_OK)
		return (ctl_fail(ctx, "metrics.prometheus", st));
	text = json_object_get(result, "text");
	if (!json_is_string(text)) {
		json_decref(result);
		ctl_warnx("metrics.prometheus: the reply has no 'text'");
		return (CTL_EXIT_FAILED);
	}
	s = json_string_value(text);
	len = json_string_length(text);
	fwrite(s, 1, len, stdout);
	if (len > 0 && s[len - 1] != '\n')
		fputc('\n', stdout);
	json_decref(result);
	return (CTL_EXIT_OK);
}

/*
 * SIGINT and SIGTERM end `ermctl events` cleanly (exit 0): the handler
 * writes to a pipe that is polled beside the daemon's socket.
 */
static int	events_sigpipe[2] = { -1, -1 };

static void
events_signal(int sig)
{
	int	saved = errno;
	char	c = (char)sig;

	if (write(events_sigpipe[1], &c, 1) == -1) {
		/* The pipe is full: a stop is already pending. */
	}
	errno = saved;
}

static int
events_loop(struct ctl *ctx)
{
	struct pollfd	 pfd[2];
	json_t		*ev;
	enum erm_status	 st;

	for (;;) {
		/* Drain what liberm queued (some may have come with replies). */
		while ((st = erm_next_event(ctx->client, 0, &ev)) == ERM_OK) {
			print_event(ctx, ev);
			json_decref(ev);
		}
		if (st != ERM_ETIMEDOUT)
			return (ctl_fail(ctx, "events", st));
		pfd[0].fd = erm_fd(ctx->client);
		pfd[0].events = POLLIN;
		pfd[1].fd = events_sigpipe[0];
		pfd[1].events = POLLIN;
		if (poll(pfd, 2, -1) == -1) {
			if (errno == EINTR)
				continue;
			ctl_warnx("poll: %s", strerror(errno));
			return (CTL_EXIT_FAILED);
		}
		if (pfd[1].revents & POLLIN)
			return (CTL_EXIT_OK);
	}
}

int
cmd_events(struct ctl *ctx, int argc, char **argv)
{
	static const struct option	 opts[] = {
		{ "type", required_argument, NULL, 't' },
		CTL_COMMON_OPTIONS
	};
	struct sigaction		 sa;
	const char			**types;
	enum erm_status			 st;
	int				 ch, r, ntypes = 0;

	/* At most one type per argument: argc bounds the list. */
	if ((types = calloc((size_t)argc + 1, sizeof(*types))) == NULL) {
		ctl_warnx("out of memory");
		return (CTL_EXIT_FAILED);
	}
	optind = 0;
	while ((ch = getopt_long(argc, argv, CTL_SHORTOPTS "t:", opts,
	    NULL)) != -1) {
		if (ch == 't')
			types[ntypes++] = optarg;
		else if ((r = ctl_option(ctx, ch, argv)) != -1)
			goto out;
	}
	if (optind < argc) {
		r = ctl_usage_error(ctx, "unexpected argument '%s'",
		    argv[optind]);
		goto out;
	}

	if (pipe2(events_sigpipe, O_CLOEXEC | O_NONBLOCK) == -1) {
		ctl_warnx("pipe: %s", strerror(errno));
		r = CTL_EXIT_FAILED;
		goto out;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = events_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	if ((st = ctl_connect(ctx)) != ERM_OK ||
	    (st = erm_subscribe(ctx->client, ntypes > 0 ? types : NULL)) !=
	    ERM_OK) {
		r = ctl_fail(ctx, "events.subscribe", st);
		goto out;
	}
	r = events_loop(ctx);
out:
	free(types);
	return (r);
}

int
cmd_config_reload(struct ctl *ctx, int argc, char **argv)
{
	const struct erm_error	*e;
	json_t			*result = NULL, *errors, *v;
	enum erm_status		 st;
	size_t			 i;
	int			 r;

	if ((r = ctl_no_args(ctx, argc, argv)) != -1)
		return (r);
	st = ctl_call(ctx, "config.reload", NULL, &result);
	if (st == ERM_OK) {
		print_result(ctx, result);
		json_decref(result);
		return (CTL_EXIT_OK);
	}
	if (st != ERM_EREPLY ||
	    (e = erm_last_error(ctx->client))->code != ERM_CONFLICT)
		return (ctl_fail(ctx, "config.reload", st));

	/* The new config is invalid and the old one stays: say where. */
	ctl_warnx("config.reload: %s (%d): %s", erm_code_name(e->code),
	    e->code, e->message);
	errors = json_object_get(e->data, "errors");
	json_array_foreach(errors, i, v) {
		if (json_is_string(v))
			fprintf(stderr, "%s\n", json_string_value(v));
	}
	return (CTL_EXIT_CONFIG);
}
