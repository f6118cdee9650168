/*
 * ermctl, the admin command line of ermd: the command table, the context a
 * command runs in, and the output helpers. ermctl speaks to the daemon only
 * through liberm.
 */
#ifndef ERMCTL_H
#define ERMCTL_H

#include <getopt.h>

#include <jansson.h>

#include "erm.h"

/* Exit statuses; usage() in ermctl.c lists them for the user. */
#define CTL_EXIT_OK		0
#define CTL_EXIT_FAILED		1
#define CTL_EXIT_USAGE		2
#define CTL_EXIT_NOT_RUNNING	3
#define CTL_EXIT_NOPERM		77	/* sysexits EX_NOPERM */
#define CTL_EXIT_CONFIG		78	/* sysexits EX_CONFIG */

#define CTL_TIMEOUT_DEFAULT	30000	/* ms; --timeout overrides */

enum ctl_output {
	CTL_OUT_HUMAN,		/* stdout is a terminal: aligned key: value */
	CTL_OUT_PLAIN,		/* piped: one key=value per line */
	CTL_OUT_JSON,		/* --json: one JSON object per line */
};

struct ctl_cmd;

struct ctl {
	const char		*socket;	/* --socket, or NULL */
	int			 timeout_ms;	/* 0 waits forever */
	int			 json;		/* --json given */
	enum ctl_output		 out;
	struct erm_client	*client;	/* connected on first use */
	const struct ctl_cmd	*cmd;		/* the command running */
};

/*
 * One row per command, in the manner of tmux's cmd_entry: "config reload"
 * is name "config", subname "reload". exec gets argv starting at the last
 * word of the command name (so getopt sees the command's own options from
 * argv[1]) and returns an exit status.
 */
struct ctl_cmd {
	const char	*name;
	const char	*subname;	/* NULL: a one-word command */
	const char	*usage;		/* arguments, for the usage text */
	const char	*help;		/* one line */
	int		(*exec)(struct ctl *, int, char **);
};

/*
 * Options every command accepts after its name as well as before it. A
 * command's getopt_long table ends with CTL_COMMON_OPTIONS and passes
 * whatever it does not handle itself to ctl_option().
 */
enum {
	CTL_OPT_JSON = 0x100,
	CTL_OPT_SOCKET,
	CTL_OPT_TIMEOUT,
};
#define CTL_COMMON_OPTIONS						\
	{ "json", no_argument, NULL, CTL_OPT_JSON },			\
	{ "socket", required_argument, NULL, CTL_OPT_SOCKET },		\
	{ "timeout", required_argument, NULL, CTL_OPT_TIMEOUT },	\
	{ "help", no_argument, NULL, 'h' },				\
	{ NULL, 0, NULL, 0 }
#define CTL_SHORTOPTS	"+:h"

/* ermctl.c */
void		 ctl_warnx(const char *, ...)
		    __attribute__((format(printf, 1, 2)));
int		 ctl_option(struct ctl *, int, char **);
int		 ctl_usage_error(struct ctl *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));
/*
 * Parse the common options of a command that takes from min to max plain
 * arguments (what names one in "which WHAT?" when too few come). Returns
 * -1 with the arguments in argv[optind .. argc), or an exit status.
 * ctl_no_args and ctl_one_arg are its two common cases.
 */
int		 ctl_plain_args(struct ctl *, int, char **, int min, int max,
		    const char *what);
int		 ctl_no_args(struct ctl *, int, char **);
const char	*ctl_socket_path(const struct ctl *);
enum erm_status	 ctl_connect(struct ctl *);
enum erm_status	 ctl_call(struct ctl *, const char *, json_t *, json_t **);
int		 ctl_fail(struct ctl *, const char *, enum erm_status);
/*
 * Call method with params (stolen; NULL means they could not be built) and
 * print the result; *keep (may be NULL) gets the result instead of it being
 * freed. Returns an exit status.
 */
int		 ctl_call_print(struct ctl *, const char *, json_t *,
		    json_t **keep);
/*
 * The one argument a command takes after its options (what names it in the
 * usage message: "which backup?"). Returns -1 with *arg set, or an exit
 * status.
 */
int		 ctl_one_arg(struct ctl *, int, char **, const char *what,
		    const char **arg);
/* A whole number >= min for option opt; -1 after a usage message. */
int		 ctl_parse_count(struct ctl *, const char *opt, const char *s,
		    int64_t min, int64_t *out);
/*
 * A duration for option opt in milliseconds: a whole number with a unit
 * ms, s, m, h or d; a bare number counts in bare_ms (1: milliseconds, as
 * the protocol's *_ms fields; 1000: seconds, as timeout(1)). At least
 * min_ms. -1 after a usage message.
 */
int		 ctl_parse_duration(struct ctl *, const char *opt,
		    const char *s, int64_t bare_ms, int64_t min_ms,
		    int64_t *out);
/*
 * The absolute form of a path given on the command line (the daemon takes
 * absolute paths only): relative to the current directory, without "."
 * components, repeated or trailing slashes. Nothing else is resolved (no
 * symlink, no ".."): the daemon decides what may be reached. Returns a
 * malloc'ed string, or NULL after a message.
 */
char		*ctl_absolute(const char *);

/* ermctl_print.c */
void		 print_result(const struct ctl *, json_t *);
void		 print_event(const struct ctl *, json_t *);

/* ermctl_daemon.c: session, daemon, events and metrics commands */
int		 cmd_status(struct ctl *, int, char **);
int		 cmd_ping(struct ctl *, int, char **);
int		 cmd_version(struct ctl *, int, char **);
int		 cmd_metrics(struct ctl *, int, char **);
int		 cmd_events(struct ctl *, int, char **);
int		 cmd_config_reload(struct ctl *, int, char **);

/* ermctl_breaker.c: breaker and classify commands */
int		 cmd_breaker_list(struct ctl *, int, char **);
int		 cmd_breaker_show(struct ctl *, int, char **);
int		 cmd_breaker_reset(struct ctl *, int, char **);
int		 cmd_breaker_open(struct ctl *, int, char **);
int		 cmd_breaker_close(struct ctl *, int, char **);
int		 cmd_breaker_disable(struct ctl *, int, char **);
int		 cmd_classify(struct ctl *, int, char **);

/* ermctl_run.c */
int		 cmd_run(struct ctl *, int, char **);

/* ermctl_storage.c: fallback storage commands */
int		 cmd_storage_status(struct ctl *, int, char **);
int		 cmd_storage_check(struct ctl *, int, char **);
int		 cmd_storage_put(struct ctl *, int, char **);
int		 cmd_storage_get(struct ctl *, int, char **);

/* ermctl_errors.c: recorded errors (issue 4) */
int		 cmd_errors(struct ctl *, int, char **);
int		 cmd_stats(struct ctl *, int, char **);

/* ermctl_backup.c: backup and oplog commands */
int		 cmd_backup_create(struct ctl *, int, char **);
int		 cmd_backup_list(struct ctl *, int, char **);
int		 cmd_backup_show(struct ctl *, int, char **);
int		 cmd_backup_restore(struct ctl *, int, char **);
int		 cmd_backup_verify(struct ctl *, int, char **);
int		 cmd_backup_prune(struct ctl *, int, char **);
int		 cmd_oplog(struct ctl *, int, char **);

/* ermctl_workflow.c: workflow commands */
int		 cmd_workflow_submit(struct ctl *, int, char **);
int		 cmd_workflow_list(struct ctl *, int, char **);
int		 cmd_workflow_show(struct ctl *, int, char **);
int		 cmd_workflow_cancel(struct ctl *, int, char **);
int		 cmd_workflow_watch(struct ctl *, int, char **);

#endif
