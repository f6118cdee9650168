/*
 * ermctl commands for backups: backup create, list, show, restore, verify,
 * prune, and the oplog.
 */

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "erm_proto.h"
#include "ermctl.h"

#define POLL_MS		200	/* how often progress is looked at */
#define SHOW_AFTER_MS	500	/* quick copies show no progress line */

static double
now_ms(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6);
}

static const char *
human_size(double bytes, char *buf, size_t sz)
{
	static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	int			 u = 0;

	while (bytes >= 1024 && u < 4) {
		bytes /= 1024;
		u++;
	}
	snprintf(buf, sz, u == 0 ? "%.0f %s" : "%.1f %s", bytes, units[u]);
	return (buf);
}

/* One progress line on stderr (a terminal), rewritten in place. */
static void
show_progress(const char *what, const char *path, json_t *ev)
{
	double	done, total;
	char	a[32], b[32];

	done = (double)json_integer_value(json_object_get(ev, "done"));
	total = (double)json_integer_value(json_object_get(ev, "total"));
	fprintf(stderr, "\r\033[K%s %s: %3.0f%% (%s of %s)", what, path,
	    total > 0 ? 100.0 * done / total : 100.0,
	    human_size(done, a, sizeof(a)), human_size(total, b, sizeof(b)));
	fflush(stderr);
}

/*
 * Call a copying method (backup.create, backup.restore). It asks for
 * progress events: on a terminal they draw a progress line once the copy
 * has run for half a second, and for --timeout they are what counts: the
 * call gives up after that long without progress, not after that long in
 * all, so a large file is never cut off while it is being copied.
 */
static enum erm_status
call_copy(struct ctl *ctx, const char *method, json_t *params,
    const char *what, const char *path, json_t **result)
{
	enum erm_status	 st;
	json_t		*ev;
	int64_t		 id, done, last = -1;
	double		 t0 = now_ms(), moved = t0;
	int		 tty, shown = 0;

	tty = isatty(STDERR_FILENO) && ctx->out != CTL_OUT_JSON;
	json_object_set_new(params, "progress", json_true());
	if ((st = ctl_connect(ctx)) != ERM_OK)
		return (st);
	erm_set_timeout(ctx->client, POLL_MS);
	if ((st = erm_send(ctx->client, method, params, &id)) != ERM_OK)
		goto out;
	for (;;) {
		/*
		 * Events first: once erm_wait has the outcome, another call
		 * on the handle would clear its error.
		 */
		while (erm_next_event(ctx->client, 0, &ev) == ERM_OK) {
			if (json_is_integer(json_object_get(ev, "request")) &&
			    json_integer_value(json_object_get(ev,
			    "request")) == id) {
				done = json_integer_value(json_object_get(ev,
				    "done"));
				if (done != last) {
					last = done;
					moved = now_ms();
				}
				if (tty && now_ms() - t0 >= SHOW_AFTER_MS) {
					show_progress(what, path, ev);
					shown = 1;
				}
			}
			json_decref(ev);
		}
		if ((st = erm_wait(ctx->client, id, result)) != ERM_ETIMEDOUT)
			break;
		if (ctx->timeout_ms > 0 && now_ms() - moved > ctx->timeout_ms)
			break;
	}
out:
	if (shown)
		fputs("\r\033[K", stderr);
	erm_set_timeout(ctx->client, ctx->timeout_ms);
	return (st);
}

int
cmd_backup_create(struct ctl *ctx, int argc, char **argv)
{
	static const struct option	 opts[] = {
		{ "tag", required_argument, NULL, 't' },
		CTL_COMMON_OPTIONS
	};
	json_t				*params, *result = NULL;
	enum erm_status			 st;
	const char			*tag = NULL;
	char				*path;
	int				 ch, r;

	optind = 0;
	while ((ch = getopt_long(argc, argv, CTL_SHORTOPTS "t:", opts,
	    NULL)) != -1) {
		if (ch == 't')
			tag = optarg;
		else if ((r = ctl_option(ctx, ch, argv)) != -1)
			return (r);
	}
	if (optind != argc - 1)
		return (ctl_usage_error(ctx, optind == argc ? "which file?" :
		    "one file at a time"));
	if ((path = ctl_absolute(argv[optind])) == NULL)
		return (CTL_EXIT_FAILED);
	params = json_pack("{s:s, s:s*}", "path", path, "tag", tag);
	if (params == NULL) {
		free(path);
		ctl_warnx("out of memory");
		return (CTL_EXIT_FAILED);
	}
	st = call_copy(ctx, "backup.create", params, "backing up", path,
	    &result);
	json_decref(params);
	free(path);
	if (st != ERM_OK)
		return (ctl_fail(ctx, "backup.create", st));
	print_result(ctx, result);
	json_decref(result);
	return (CTL_EXIT_OK);
}

int
cmd_backup_list(struct ctl *ctx, int argc, char **argv)
{
	static const struct option	 opts[] = {
		{ "path", required_argument, NULL, 'p' },
		{ "tag", required_argument, NULL, 't' },
		{ "limit", required_argument, NULL, 'n' },
		CTL_COMMON_OPTIONS
	};
	json_t				*params;
	char				*path = NULL;
	const char			*tag = NULL;
	int64_t				 limit = -1;
	int				 ch, r;

	optind = 0;
	while ((ch = getopt_long(argc, argv, CTL_SHORTOPTS "p:t:n:", opts,
	    NULL)) != -1) {
		switch (ch) {
		case 'p':
			free(path);
			if ((path = ctl_absolute(optarg)) == NULL)
				return (CTL_EXIT_FAILED);
			break;
		case 't':
			tag = optarg;
			break;
		case 'n':
			if (ctl_parse_count(ctx, "--limit", optarg, 0, &limit) == -1)
				goto usage;
			break;
		default:
			if ((r = ctl_option(ctx, ch, argv)) != -1) {
				free(path);
				return (r);
			}
		}
	}
	if (optind < argc) {
		ctl_usage_error(ctx, "unexpected argument '%s'", argv[optind]);
		goto usage;
	}
	params = json_pack("{s:s*, s:s*}", "path", path, "tag", tag);
	if (params != NULL && limit >= 0)
		json_object_set_new(params, "limit", json_integer(limit));
	free(path);
	return (ctl_call_print(ctx, "backup.list", params, NULL));
usage:
	free(path);
	return (CTL_EXIT_USAGE);
}

int
cmd_backup_show(struct ctl *ctx, int argc, char **argv)
{
	const char	*id = NULL;
	int		 r;

	if ((r = ctl_one_arg(ctx, argc, argv, "backup", &id)) != -1)
		return (r);
	return (ctl_call_print(ctx, "backup.get", json_pack("{s:s}", "id",
	    id), NULL));
}

/*
 * The backup a restore would use, for the confirmation: by id, or the
 * latest of path. A new reference, or NULL after a message (*rc set).
 */
static json_t *
restore_target(struct ctl *ctx, const char *id, const char *path, int *rc)
{
	json_t		*params, *result = NULL, *b;
	enum erm_status	 st;
	const char	*method = id != NULL ? "backup.get" : "backup.list";

	params = id != NULL ? json_pack("{s:s}", "id", id) :
	    json_pack("{s:s, s:i}", "path", path, "limit", 1);
	st = ctl_call(ctx, method, params, &result);
	json_decref(params);
	if (st != ERM_OK) {
		*rc = ctl_fail(ctx, method, st);
		return (NULL);
	}
	if (id != NULL)
		return (result);
	b = json_incref(json_array_get(json_object_get(result, "backups"), 0));
	json_decref(result);
	if (b == NULL) {
		ctl_warnx("no backup of %s", path);
		*rc = CTL_EXIT_FAILED;
	}
	return (b);
}

/* Ask on the terminal; 1 when the answer is yes. */
static int
confirm(json_t *b)
{
	char		 line[64], when[64], size[32];
	time_t		 t;
	struct tm	 tm;

	t = (time_t)(json_integer_value(json_object_get(b, "created_at")) /
	    1000);
	localtime_r(&t, &tm);
	strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
	fprintf(stderr, "Replace %s with backup %s (%s, taken %s)? [y/N] ",
	    json_string_value(json_object_get(b, "path")),
	    json_string_value(json_object_get(b, "id")),
	    human_size((double)json_integer_value(json_object_get(b, "size")),
	    size, sizeof(size)), when);
	fflush(stderr);
	if (fgets(line, sizeof(line), stdin) == NULL)
		return (0);
	line[strcspn(line, "\n")] = '\0';
	return (strcmp(line, "y") == 0 || strcmp(line, "Y") == 0 ||
	    strcmp(line, "yes") == 0);
}

/* A backup id: 16 lowercase hex digits (a file so named: ./NAME). */
static int
is_id(const char *s)
{
	return (strlen(s) == 16 && strspn(s, "0123456789abcdef") == 16);
}

/* backup restore ID|FILE: an id, or a file (its latest backup). */
int
cmd_backup_restore(struct ctl *ctx, int argc, char **argv)
{
	static const struct option	 opts[] = {
		{ "yes", no_argument, NULL, 'y' },
		CTL_COMMON_OPTIONS
	};
	json_t				*params, *result = NULL, *b;
	enum erm_status			 st;
	const char			*arg, *id = NULL;
	char				*path = NULL;
	int				 ch, r, yes = 0;

	optind = 0;
	while ((ch = getopt_long(argc, argv, CTL_SHORTOPTS "y", opts,
	    NULL)) != -1) {
		if (ch == 'y')
			yes = 1;
		else if ((r = ctl_option(ctx, ch, argv)) != -1)
			return (r);
	}
	if (optind != argc - 1)
		return (ctl_usage_error(ctx, optind == argc ? "which backup or "
		    "file?" : "one backup at a time"));
	arg = argv[optind];
	if (is_id(arg))
		id = arg;
	else if ((path = ctl_absolute(arg)) == NULL)
		return (CTL_EXIT_FAILED);
	if (!yes && !isatty(STDIN_FILENO)) {
		free(path);
		return (ctl_usage_error(ctx, "a restore replaces the file: "
		    "confirm it on a terminal, or pass --yes"));
	}
	if (!yes) {
		r = CTL_EXIT_FAILED;
		if ((b = restore_target(ctx, id, path, &r)) == NULL) {
			free(path);
			return (r);
		}
		r = confirm(b);
		json_decref(b);
		if (!r) {
			ctl_warnx("not restored");
			free(path);
			return (CTL_EXIT_FAILED);
		}
	}
	params = id != NULL ? json_pack("{s:s}", "id", id) :
	    json_pack("{s:s}", "path", path);
	if (params == NULL) {
		free(path);
		ctl_warnx("out of memory");
		return (CTL_EXIT_FAILED);
	}
	st = call_copy(ctx, "backup.restore", params, "restoring", id != NULL ?
	    id : path, &result);
	json_decref(params);
	free(path);
	if (st != ERM_OK)
		return (ctl_fail(ctx, "backup.restore", st));
	print_result(ctx, result);
	json_decref(result);
	return (CTL_EXIT_OK);
}

int
cmd_backup_verify(struct ctl *ctx, int argc, char **argv)
{
	json_t		*params, *result = NULL;
	enum erm_status	 st;
	int		 r;

	if ((r = ctl_plain_args(ctx, argc, argv, 0, 1, NULL)) != -1)
		return (r);
	params = optind < argc ? json_pack("{s:s}", "id", argv[optind]) :
	    json_object();
	st = ctl_call(ctx, "backup.verify", params, &result);
	json_decref(params);
	if (st != ERM_OK)
		return (ctl_fail(ctx, "backup.verify", st));
	print_result(ctx, result);
	/* Corruption found is a failure a script should notice. */
	r = json_array_size(json_object_get(result, "corrupted")) > 0 ?
	    CTL_EXIT_FAILED : CTL_EXIT_OK;
	json_decref(result);
	return (r);
}

int
cmd_backup_prune(struct ctl *ctx, int argc, char **argv)
{
	static const struct option	 opts[] = {
		{ "older-than", required_argument, NULL, 'o' },
		{ "keep-last", required_argument, NULL, 'k' },
		{ "path", required_argument, NULL, 'p' },
		CTL_COMMON_OPTIONS
	};
	json_t				*params;
	char				*path = NULL;
	int64_t				 older = -1, keep = -1;
	int				 ch, r;

	optind = 0;
	while ((ch = getopt_long(argc, argv, CTL_SHORTOPTS "o:k:p:", opts,
	    NULL)) != -1) {
		switch (ch) {
		case 'o':
			if (ctl_parse_duration(ctx, "--older-than", optarg,
			    1, 0, &older) == -1)
				goto usage;
			break;
		case 'k':
			if (ctl_parse_count(ctx, "--keep-last", optarg,
			    0, &keep) == -1)
				goto usage;
			break;
		case 'p':
			free(path);
			if ((path = ctl_absolute(optarg)) == NULL)
				return (CTL_EXIT_FAILED);
			break;
		default:
			if ((r = ctl_option(ctx, ch, argv)) != -1) {
				free(path);
				return (r);
			}
		}
	}
	if (optind < argc) {
		ctl_usage_error(ctx, "unexpected argument '%s'", argv[optind]);
		goto usage;
	}
	params = json_pack("{s:s*}", "path", path);
	if (params != NULL && older >= 0)
		json_object_set_new(params, "older_than_ms",
		    json_integer(older));
	if (params != NULL && keep >= 0)
		json_object_set_new(params, "keep_last", json_integer(keep));
	free(path);
	return (ctl_call_print(ctx, "backup.prune", params, NULL));
usage:
	free(path);
	return (CTL_EXIT_USAGE);
}

int
cmd_oplog(struct ctl *ctx, int argc, char **argv)
{
	static const struct option	 opts[] = {
		{ "path", required_argument, NULL, 'p' },
		{ "limit", required_argument, NULL, 'n' },
		CTL_COMMON_OPTIONS
	};
	json_t				*params;
	char				*path = NULL;
	int64_t				 limit = -1;
	int				 ch, r;

	optind = 0;
	while ((ch = getopt_long(argc, argv, CTL_SHORTOPTS "p:n:", opts,
	    NULL)) != -1) {
		switch (ch) {
		case 'p':
			free(path);
			if ((path = ctl_absolute(optarg)) == NULL)
				return (CTL_EXIT_FAILED);
			break;
		case 'n':
			if (ctl_parse_count(ctx, "--limit", optarg, 0, &limit) == -1)
				goto usage;
			break;
		default:
			if ((r = ctl_option(ctx, ch, argv)) != -1) {
				free(path);
				return (r);
			}
		}
	}
	if (optind < argc) {
		ctl_usage_error(ctx, "unexpected argument '%s'", argv[optind]);
		goto usage;
	}
	params = json_pack("{s:s*}", "path", path);
	if (params != NULL && limit >= 0)
		json_object_set_new(params, "limit", json_integer(limit));
	free(path);
	return (ctl_call_print(ctx, "oplog.list", params, NULL));
usage:
	free(path);
	return (CTL_EXIT_USAGE);
}
