/*
 * ermctl: parse the command line, find the command in the table, run it and
 * turn what happened into an exit status.
 */

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "erm_proto.h"
#include "ermctl.h"

static int	cmd_help(struct ctl *, int, char **);
static int	cmd_completion(struct ctl *, int, char **);
/* ermctl_completion.c */
int		ctl_completion_bash(FILE *, const struct ctl_cmd *, size_t);

/*
 * The commands. A new family (breaker, classify, run, errors, backup,
 * workflow, storage) is a few rows here and an ermctl_<family>.c.
 */
static const struct ctl_cmd ctl_cmds[] = {
	{ "status", NULL, "",
	    "show the daemon's status", cmd_status },
	{ "ping", NULL, "",
	    "check that the daemon answers; show the round trip",
	    cmd_ping },
	{ "version", NULL, "",
	    "show the versions of ermctl and of the daemon", cmd_version },
	{ "metrics", NULL, "[--prometheus]",
	    "show the metrics (Prometheus text with --prometheus)",
	    cmd_metrics },
	{ "events", NULL, "[--type TYPE]...",
	    "print events as they happen until interrupted", cmd_events },
	{ "config", "reload", "",
	    "reload the daemon's config; show the new generation",
	    cmd_config_reload },
	{ "breaker", "list", "[--state STATE]",
	    "list the circuit breakers", cmd_breaker_list },
	{ "breaker", "show", "NAME",
	    "show one breaker: state, config, window", cmd_breaker_show },
	{ "breaker", "reset", "NAME",
	    "close a breaker and empty its window", cmd_breaker_reset },
	{ "breaker", "open", "NAME",
	    "force a breaker open (forced_open)", cmd_breaker_open },
	{ "breaker", "close", "NAME",
	    "force a breaker closed", cmd_breaker_close },
	{ "breaker", "disable", "NAME",
	    "disable a breaker: permit all, record nothing",
	    cmd_breaker_disable },
	{ "classify", NULL, "[--errno E] [--http N] [--exception T] "
	    "[--message M] [--exit-code N] [--signal N] [--category C]",
	    "show the category and strategy the daemon gives an error",
	    cmd_classify },
	{ "errors", NULL, "[--since D] [--category C] [--op O] "
	    "[--severity S] [--limit N] [--follow]",
	    "list recorded errors, newest first (--follow: then as they come)",
	    cmd_errors },
	{ "stats", NULL, "[--window D]",
	    "show error counts and the recovery rate", cmd_stats },
	{ "run", NULL, "[--op NAME] [--breaker B] [--policy P] "
	    "[--timeout D] [--backup PATH]... -- CMD...",
	    "run a command, retried as the daemon decides", cmd_run },
	{ "storage", "status", "",
	    "show the storage backends and their health",
	    cmd_storage_status },
	{ "storage", "check", "[BACKEND]",
	    "run the health checks now (exit 1 if one is unhealthy)",
	    cmd_storage_check },
	{ "storage", "put", "KEY FILE",
	    "store FILE under KEY, falling back as needed", cmd_storage_put },
	{ "storage", "get", "KEY FILE",
	    "fetch KEY into FILE from the first backend that has it",
	    cmd_storage_get },
	{ "backup", "create", "[--tag TAG] FILE",
	    "copy FILE into the daemon's verified backup store",
	    cmd_backup_create },
	{ "backup", "list", "[--path FILE] [--tag TAG] [--limit N]",
	    "list backups, newest first", cmd_backup_list },
	{ "backup", "show", "ID",
	    "show one backup", cmd_backup_show },
	{ "backup", "restore", "[--yes] ID|FILE",
	    "put a backup (or FILE's latest) back, atomically",
	    cmd_backup_restore },
	{ "backup", "verify", "[ID]",
	    "check stored copies against their sha256 (exit 1 if bad)",
	    cmd_backup_verify },
	{ "backup", "prune", "[--older-than D] [--keep-last N] [--path FILE]",
	    "remove old backups (the configured retention without rules)",
	    cmd_backup_prune },
	{ "oplog", NULL, "[--path FILE] [--limit N]",
	    "show the audit trail of backups, restores and prunes",
	    cmd_oplog },
	{ "workflow", "submit", "[--wait] FILE.json",
	    "create a workflow from FILE (workflow.create params; - is stdin)",
	    cmd_workflow_submit },
	{ "workflow", "list", "[--state STATE] [--limit N]",
	    "list workflows, newest first", cmd_workflow_list },
	{ "workflow", "show", "ID",
	    "show one workflow and its steps", cmd_workflow_show },
	{ "workflow", "cancel", "ID",
	    "cancel a workflow; show it once it has stopped",
	    cmd_workflow_cancel },
	{ "workflow", "watch", "ID",
	    "follow a workflow's steps live until it ends (exit status: "
	    "0 succeeded, 1 failed, 4 compensated, 5 cancelled)",
	    cmd_workflow_watch },
	{ "completion", "bash", "",
	    "print a bash completion script (source it)", cmd_completion },
	{ "help", NULL, "",
	    "show this help", cmd_help },
};
#define NCMDS	(sizeof(ctl_cmds) / sizeof(ctl_cmds[0]))

static const char usage_head[] =
"usage: ermctl [--socket PATH] [--json] [--timeout MS] COMMAND [ARGS]\n";

static const char usage_tail[] =
"\n"
"Options (before or after the command):\n"
"  --socket PATH  the daemon's socket (default: $ERMD_SOCKET, else\n"
"                 " ERM_DEFAULT_SOCKET ")\n"
"  --json         print results as JSON, one object per line\n"
"  --timeout MS   give up on a reply after MS milliseconds (default 30000;\n"
"                 0 waits forever)\n"
"  -h, --help     show this help; `ermctl COMMAND --help` for one command\n"
"  -V, --version  show ermctl's version (no daemon needed)\n"
"\n"
"Output:\n"
"  On a terminal: aligned \"key: value\" lines, nested objects indented\n"
"  and list items marked \"- \". When piped: one \"key=value\" line per\n"
"  value, nested keys joined with dots (store.path=/var/lib/ermd/ermd.db,\n"
"  breakers.0.name=db), no padding, control characters escaped as \\n,\n"
"  \\t, \\xHH. Events print one line each: on a terminal the local time, the\n"
"  type, then key=value fields; when piped all fields as key=value pairs\n"
"  (type=... at=<unix ms> ...), values with spaces double-quoted. With\n"
"  --json, results and events are the daemon's JSON objects (ping adds\n"
"  rtt_ms). Errors go to stderr as \"ermctl: METHOD: CODE_NAME (CODE):\n"
"  MESSAGE\".\n"
"\n"
"Exit status:\n"
"  0   success\n"
"  1   failure: an error from the daemon not listed below, a timeout, a\n"
"      lost connection, or any other failure\n"
"  2   usage error: unknown command or option, missing or extra argument\n"
"  3   the daemon is not running (its socket refuses or does not exist)\n"
"  77  permission denied (daemon error 1002, or the socket is not\n"
"      accessible)\n"
"  78  config error: config reload found the new config invalid (1003);\n"
"      each problem is printed on stderr as file:line: message\n";

static void
usage(FILE *fp)
{
	const struct ctl_cmd	*cmd;
	char			 line[128];
	size_t			 i;

	fputs(usage_head, fp);
	fputs("\nCommands:\n", fp);
	for (i = 0; i < NCMDS; i++) {
		cmd = &ctl_cmds[i];
		snprintf(line, sizeof(line), "%s%s%s%s%s", cmd->name,
		    cmd->subname != NULL ? " " : "",
		    cmd->subname != NULL ? cmd->subname : "",
		    *cmd->usage != '\0' ? " " : "", cmd->usage);
		fprintf(fp, "  %-24s %s\n", line, cmd->help);
	}
	fputs(usage_tail, fp);
}

static void
cmd_usage(const struct ctl_cmd *cmd, FILE *fp)
{
	fprintf(fp, "usage: ermctl [--socket PATH] [--json] [--timeout MS] "
	    "%s%s%s%s%s\n", cmd->name, cmd->subname != NULL ? " " : "",
	    cmd->subname != NULL ? cmd->subname : "",
	    *cmd->usage != '\0' ? " " : "", cmd->usage);
}

void
ctl_warnx(const char *fmt, ...)
{
	va_list	ap;

	fflush(stdout);
	fputs("ermctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* Print a usage complaint and the running command's usage; returns 2. */
int
ctl_usage_error(struct ctl *ctx, const char *fmt, ...)
{
	va_list	ap;

	fputs("ermctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	if (ctx->cmd != NULL)
		cmd_usage(ctx->cmd, stderr);
	else
		fputs("Try 'ermctl --help'.\n", stderr);
	return (CTL_EXIT_USAGE);
}

static int
parse_timeout(const char *s, int *out)
{
	char	*end;
	long	 v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (*s == '\0' || *end != '\0' || errno != 0 || v < 0 || v > INT_MAX)
		return (-1);
	*out = (int)v;
	return (0);
}

/*
 * Handle an option getopt_long returned that the command did not: the
 * common ones, --help and errors. Returns -1 to go on parsing, or the exit
 * status the command should return at once.
 */
int
ctl_option(struct ctl *ctx, int ch, char **argv)
{
	switch (ch) {
	case CTL_OPT_JSON:
		ctx->json = 1;
		ctx->out = CTL_OUT_JSON;
		return (-1);
	case CTL_OPT_SOCKET:
		ctx->socket = optarg;
		return (-1);
	case CTL_OPT_TIMEOUT:
		if (parse_timeout(optarg, &ctx->timeout_ms) == -1)
			return (ctl_usage_error(ctx,
			    "--timeout needs milliseconds, 0 or more: '%s'",
			    optarg));
		return (-1);
	case 'h':
		if (ctx->cmd != NULL)
			cmd_usage(ctx->cmd, stdout);
		else
			usage(stdout);
		return (CTL_EXIT_OK);
	case ':':
		return (ctl_usage_error(ctx, "option '%s' needs an argument",
		    argv[optind - 1]));
	default:
		if (optopt != 0 && optopt < 0x100)
			return (ctl_usage_error(ctx, "unknown option '-%c'",
			    optopt));
		return (ctl_usage_error(ctx, "unknown option '%s'",
		    argv[optind - 1]));
	}
}

int
ctl_plain_args(struct ctl *ctx, int argc, char **argv, int min, int max,
    const char *what)
{
	static const struct option	 opts[] = { CTL_COMMON_OPTIONS };
	int				 ch, r;

	optind = 0;
	while ((ch = getopt_long(argc, argv, CTL_SHORTOPTS, opts,
	    NULL)) != -1)
		if ((r = ctl_option(ctx, ch, argv)) != -1)
			return (r);
	if (argc - optind > max)
		return (ctl_usage_error(ctx, "unexpected argument '%s'",
		    argv[optind + max]));
	if (argc - optind < min)
		return (ctl_usage_error(ctx, "which %s?", what != NULL ? what :
		    "argument"));
	return (-1);
}

/* Parse the options of a command that takes no arguments of its own. */
int
ctl_no_args(struct ctl *ctx, int argc, char **argv)
{
	return (ctl_plain_args(ctx, argc, argv, 0, 0, NULL));
}

const char *
ctl_socket_path(const struct ctl *ctx)
{
	const char	*env;

	if (ctx->client != NULL)
		return (erm_socket_path(ctx->client));
	if (ctx->socket != NULL)
		return (ctx->socket);
	if ((env = getenv("ERMD_SOCKET")) != NULL && *env != '\0')
		return (env);
	return (ERM_DEFAULT_SOCKET);
}

enum erm_status
ctl_connect(struct ctl *ctx)
{
	enum erm_status	st;

	if (ctx->client != NULL)
		return (ERM_OK);
	st = erm_connect(&ctx->client, ctx->socket);
	if (st == ERM_OK)
		erm_set_timeout(ctx->client, ctx->timeout_ms);
	return (st);
}

/* Connect if need be and call method; *result as for erm_call. */
enum erm_status
ctl_call(struct ctl *ctx, const char *method, json_t *params,
    json_t **result)
{
	enum erm_status	st;

	if ((st = ctl_connect(ctx)) != ERM_OK)
		return (st);
	return (erm_call(ctx->client, method, params, result));
}

/*
 * Say on stderr why what (a method name, or a command) failed with status
 * st, and return the exit status that goes with it.
 */
int
ctl_call_print(struct ctl *ctx, const char *method, json_t *params,
    json_t **keep)
{
	json_t		*result = NULL;
	enum erm_status	 st;

	if (params == NULL) {
		ctl_warnx("%s: out of memory or not UTF-8", method);
		return (CTL_EXIT_FAILED);
	}
	st = ctl_call(ctx, method, params, &result);
	json_decref(params);
	if (st != ERM_OK)
		return (ctl_fail(ctx, method, st));
	print_result(ctx, result);
	if (keep != NULL)
		*keep = result;
	else
		json_decref(result);
	return (CTL_EXIT_OK);
}

int
ctl_one_arg(struct ctl *ctx, int argc, char **argv, const char *what,
    const char **arg)
{
	int	r;

	if ((r = ctl_plain_args(ctx, argc, argv, 1, 1, what)) == -1)
		*arg = argv[optind];
	return (r);
}

int
ctl_fail(struct ctl *ctx, const char *what, enum erm_status st)
{
	const struct erm_error	*e;
	char			*data = NULL;
	int			 saved = errno;

	if (ctx->client == NULL) {
		/* erm_connect failed: there is no handle, errno says why. */
		if (st == ERM_ECONNECT) {
			ctl_warnx("cannot connect to %s: %s (is ermd running?)",
			    ctl_socket_path(ctx), strerror(saved));
			return (CTL_EXIT_NOT_RUNNING);
		}
		ctl_warnx("cannot connect to %s: %s", ctl_socket_path(ctx),
		    st == ERM_ESYS || st == ERM_EINVAL ? strerror(saved) :
		    erm_strerror(st));
		if (st == ERM_ESYS && (saved == EACCES || saved == EPERM))
			return (CTL_EXIT_NOPERM);
		return (CTL_EXIT_FAILED);
	}

	e = erm_last_error(ctx->client);
	switch (st) {
	case ERM_EREPLY:
		if (e->data != NULL)
			data = json_dumps(e->data, JSON_COMPACT |
			    JSON_ENCODE_ANY);
		ctl_warnx("%s: %s (%d): %s%s%s", what, erm_code_name(e->code),
		    e->code, e->message, data != NULL ? " " : "",
		    data != NULL ? data : "");
		free(data);
		if (e->code == ERM_PERMISSION_DENIED)
			return (CTL_EXIT_NOPERM);
		return (CTL_EXIT_FAILED);
	case ERM_ETIMEDOUT:
		ctl_warnx("%s: no reply from the daemon within %d ms", what,
		    ctx->timeout_ms);
		return (CTL_EXIT_FAILED);
	default:
		if (e->message[0] != '\0')
			ctl_warnx("%s: %s", what, e->message);
		else
			ctl_warnx("%s: %s", what, erm_strerror(st));
		return (CTL_EXIT_FAILED);
	}
}

static int
cmd_help(struct ctl *ctx, int argc, char **argv)
{
	int	r;

	if ((r = ctl_no_args(ctx, argc, argv)) != -1)
		return (r);
	usage(stdout);
	return (CTL_EXIT_OK);
}

/* The completion script is generated from ctl_cmds, so it lives here. */
static int
cmd_completion(struct ctl *ctx, int argc, char **argv)
{
	int	r;

	if ((r = ctl_no_args(ctx, argc, argv)) != -1)
		return (r);
	if (ctl_completion_bash(stdout, ctl_cmds, NCMDS) == -1)
		return (CTL_EXIT_FAILED);
	return (CTL_EXIT_OK);
}

/*
 * Find the row for argv[0] (and argv[1] for two-word commands). Sets *skip
 * to the number of words the name took. NULL with a message when none.
 */
static const struct ctl_cmd *
find_cmd(int argc, char **argv, int *skip)
{
	const struct ctl_cmd	*cmd;
	size_t			 i;
	int			 family = 0;

	for (i = 0; i < NCMDS; i++) {
		cmd = &ctl_cmds[i];
		if (strcmp(cmd->name, argv[0]) != 0)
			continue;
		if (cmd->subname == NULL) {
			*skip = 1;
			return (cmd);
		}
		family = 1;
		if (argc > 1 && strcmp(cmd->subname, argv[1]) == 0) {
			*skip = 2;
			return (cmd);
		}
	}
	if (!family) {
		ctl_warnx("unknown command '%s'", argv[0]);
		fputs("Try 'ermctl --help'.\n", stderr);
		return (NULL);
	}
	if (argc > 1)
		ctl_warnx("unknown command '%s %s'", argv[0], argv[1]);
	else
		ctl_warnx("'%s' needs a subcommand", argv[0]);
	for (i = 0; i < NCMDS; i++)
		if (strcmp(ctl_cmds[i].name, argv[0]) == 0)
			cmd_usage(&ctl_cmds[i], stderr);
	return (NULL);
}

int
main(int argc, char **argv)
{
	static const struct option	 opts[] = {
		{ "version", no_argument, NULL, 'V' },
		CTL_COMMON_OPTIONS
	};
	struct ctl			 ctx;
	int				 ch, r, skip;

	memset(&ctx, 0, sizeof(ctx));
	ctx.timeout_ms = CTL_TIMEOUT_DEFAULT;

	opterr = 0;
	while ((ch = getopt_long(argc, argv, CTL_SHORTOPTS "V", opts,
	    NULL)) != -1) {
		if (ch == 'V') {
			printf("ermctl %s\n", ERMD_VERSION);
			return (CTL_EXIT_OK);
		}
		if ((r = ctl_option(&ctx, ch, argv)) != -1)
			return (r);
	}
	argc -= optind;
	argv += optind;
	if (argc == 0) {
		usage(stderr);
		return (CTL_EXIT_USAGE);
	}
	if ((ctx.cmd = find_cmd(argc, argv, &skip)) == NULL)
		return (CTL_EXIT_USAGE);

	/* A --json after the command name switches ctx.out over later. */
	if (!ctx.json)
		ctx.out = isatty(STDOUT_FILENO) ? CTL_OUT_HUMAN : CTL_OUT_PLAIN;
	/* The command's options start after its (last) name word. */
	r = ctx.cmd->exec(&ctx, argc - (skip - 1), argv + (skip - 1));
	erm_close(ctx.client);

	if (fflush(stdout) == EOF || ferror(stdout)) {
		ctl_warnx("write error on stdout: %s", strerror(errno));
		if (r == CTL_EXIT_OK)
			r = CTL_EXIT_FAILED;
	}
	return (r);
}
