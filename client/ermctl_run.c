/*
 * ermctl run: run a command as an op, the daemon deciding after each
 * failure whether to run it again (erm_execute does the op.* protocol).
 * The command is execvp'd without a shell, in its own process group so
 * that a timeout can kill everything it started.
 */

#include <sys/types.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "ermctl.h"

#define RUN_EXIT_TEMPFAIL	75	/* EX_TEMPFAIL: the breaker refused */
#define RUN_EXIT_TIMEOUT	124	/* as timeout(1) */
#define RUN_EXIT_NOEXEC		126	/* found but not executable */
#define RUN_EXIT_NOTFOUND	127
#define RUN_KILL_GRACE_MS	5000	/* from SIGTERM to SIGKILL */

enum {
	RUN_OPT_OP = 0x200,
	RUN_OPT_BREAKER,
	RUN_OPT_POLICY,
	RUN_OPT_TIMEOUT,
	RUN_OPT_BACKUP,
};

#define RUN_BACKUPS_MAX	64

/* One `ermctl run`: what to run and how the last attempt went. */
struct run {
	char		**argv;
	int64_t		  timeout_ms;	/* 0: none */
	int		  attempt;
	int		  status;	/* as a shell reports it: 128+N, 124 */
	int		  tty;		/* fd of our terminal when we own it */
};

/*
 * Signals reach the loop through a pipe: SIGCHLD wakes the wait for the
 * child; SIGINT, SIGTERM, SIGHUP and SIGQUIT are passed on to the child's
 * process group and stop further attempts.
 */
static int			run_sigpipe[2] = { -1, -1 };
static volatile sig_atomic_t	run_stop;

static void
run_signal(int sig)
{
	int	saved = errno;
	char	c = (char)sig;

	if (sig != SIGCHLD)
		run_stop = sig;
	if (write(run_sigpipe[1], &c, 1) == -1) {
		/* Full: the loop is behind, and run_stop says enough. */
	}
	errno = saved;
}

static int64_t
run_now_ms(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
}

/*
 * Terminal hand-over. When ermctl runs in the foreground of a terminal,
 * the child's group becomes the foreground while it runs, so that it can
 * read the terminal and Ctrl-C reaches it; ermctl takes the terminal back
 * after. SIGTTOU is blocked meanwhile: by then we may be in the background.
 */
static void
run_tty_give(int tty, pid_t pgrp)
{
	sigset_t	set, old;

	if (tty == -1)
		return;
	sigemptyset(&set);
	sigaddset(&set, SIGTTOU);
	sigprocmask(SIG_BLOCK, &set, &old);
	(void)tcsetpgrp(tty, pgrp);
	sigprocmask(SIG_SETMASK, &old, NULL);
}

/* The child: its own group, the terminal if we had it, then the command. */
static void __attribute__((noreturn))
run_child(struct run *r, int errfd)
{
	int	e;

	(void)setpgid(0, 0);
	run_tty_give(r->tty, getpid());
	execvp(r->argv[0], r->argv);
	e = errno;
	if (write(errfd, &e, sizeof(e)) == -1) {
		/* The parent then sees only the exit status. */
	}
	_exit(e == ENOENT ? RUN_EXIT_NOTFOUND : RUN_EXIT_NOEXEC);
}

/*
 * Wait for the child, killing its group at the timeout (SIGTERM, SIGKILL
 * RUN_KILL_GRACE_MS later) and passing stop signals on. Returns the wait
 * status; *timed_out says whether the timeout killed it.
 */
static int
run_wait(struct run *r, pid_t pid, int *timed_out)
{
	struct pollfd	pfd;
	int64_t		now, deadline, kill_at = -1;
	char		sigs[64];
	ssize_t		n, i;
	pid_t		w;
	int		status, wait_ms;

	*timed_out = 0;
	deadline = r->timeout_ms > 0 ? run_now_ms() + r->timeout_ms : -1;
	for (;;) {
		w = waitpid(pid, &status, WNOHANG |
		    (r->tty != -1 ? WUNTRACED : 0));
		if (w == pid && WIFSTOPPED(status)) {
			/* Ctrl-Z: stop with it, as a shell job would. */
			run_tty_give(r->tty, getpgrp());
			raise(SIGTSTP);
			run_tty_give(r->tty, pid);
			(void)kill(-pid, SIGCONT);
			continue;
		}
		if (w == pid)
			return (status);
		if (w == -1 && errno != EINTR) {
			ctl_warnx("run: waitpid: %s", strerror(errno));
			return (-1);
		}

		now = run_now_ms();
		if (deadline != -1 && now >= deadline) {
			(void)kill(-pid, SIGTERM);
			(void)kill(-pid, SIGCONT);
			*timed_out = 1;
			deadline = -1;
			kill_at = now + RUN_KILL_GRACE_MS;
		}
		if (kill_at != -1 && now >= kill_at) {
			(void)kill(-pid, SIGKILL);
			kill_at = -1;
		}
		wait_ms = -1;
		if (deadline != -1)
			wait_ms = (int)(deadline - now);
		if (kill_at != -1 && (wait_ms == -1 || kill_at - now < wait_ms))
			wait_ms = (int)(kill_at - now);

		pfd.fd = run_sigpipe[0];
		pfd.events = POLLIN;
		if (poll(&pfd, 1, wait_ms) == -1 && errno != EINTR) {
			ctl_warnx("run: poll: %s", strerror(errno));
			return (-1);
		}
		while ((n = read(run_sigpipe[0], sigs, sizeof(sigs))) > 0)
			for (i = 0; i < n; i++)
				if (sigs[i] != SIGCHLD)
					(void)kill(-pid, sigs[i]);
	}
}

/*
 * One attempt, the erm_fn of erm_execute: run the command and describe how
 * it failed as an error object. r->status gets the shell-style status.
 */
static int
run_once(void *arg, struct erm_errinfo *err)
{
	struct run	*r = arg;
	pid_t		 pid;
	int		 fds[2], e, status, timed_out;
	ssize_t		 n;

	r->attempt++;
	r->status = RUN_EXIT_NOEXEC;
	if (pipe2(fds, O_CLOEXEC) == -1) {
		ctl_warnx("run: pipe: %s", strerror(errno));
		err->errnum = errno;
		return (-1);
	}
	fflush(stdout);
	fflush(stderr);
	if ((pid = fork()) == -1) {
		e = errno;
		ctl_warnx("run: fork: %s", strerror(e));
		close(fds[0]);
		close(fds[1]);
		err->errnum = e;
		return (-1);
	}
	if (pid == 0) {
		close(fds[0]);
		run_child(r, fds[1]);
	}
	/* Both sides set the group, so neither has to wait for the other. */
	(void)setpgid(pid, pid);
	run_tty_give(r->tty, pid);
	close(fds[1]);
	/* EOF when exec succeeds (close-on-exec); errno when it fails. */
	while ((n = read(fds[0], &e, sizeof(e))) == -1 && errno == EINTR)
		;
	close(fds[0]);

	status = run_wait(r, pid, &timed_out);
	run_tty_give(r->tty, getpgrp());
	if (n == (ssize_t)sizeof(e)) {
		ctl_warnx("run: attempt %d: cannot execute '%s': %s",
		    r->attempt, r->argv[0], strerror(e));
		r->status = e == ENOENT ? RUN_EXIT_NOTFOUND : RUN_EXIT_NOEXEC;
		err->errnum = e;
		err->message = "cannot execute the command";
		return (-1);
	}
	if (status == -1) {
		err->message = "lost track of the command";
		return (-1);
	}
	if (timed_out) {
		ctl_warnx("run: attempt %d: '%s' timed out after %lld ms",
		    r->attempt, r->argv[0], (long long)r->timeout_ms);
		r->status = RUN_EXIT_TIMEOUT;
		err->exit_code = RUN_EXIT_TIMEOUT;
		return (-1);
	}
	if (WIFSIGNALED(status)) {
		ctl_warnx("run: attempt %d: '%s' killed by signal %d (%s)",
		    r->attempt, r->argv[0], WTERMSIG(status),
		    strsignal(WTERMSIG(status)));
		r->status = 128 + WTERMSIG(status);
		err->signal = WTERMSIG(status);
		/* Ctrl-C at the terminal went to the child: the user's stop. */
		if (r->tty != -1 && (WTERMSIG(status) == SIGINT ||
		    WTERMSIG(status) == SIGQUIT))
			run_stop = WTERMSIG(status);
		return (-1);
	}
	r->status = WEXITSTATUS(status);
	if (r->status == 0)
		return (0);
	ctl_warnx("run: attempt %d: '%s' exited with status %d", r->attempt,
	    r->argv[0], r->status);
	err->exit_code = r->status;
	return (-1);
}

static int
run_setup_signals(void)
{
	static const int	 sigs[] = { SIGCHLD, SIGINT, SIGTERM, SIGHUP,
				    SIGQUIT };
	struct sigaction	 sa, old;
	size_t			 i;

	if (run_sigpipe[0] == -1 &&
	    pipe2(run_sigpipe, O_CLOEXEC | O_NONBLOCK) == -1) {
		ctl_warnx("run: pipe: %s", strerror(errno));
		return (-1);
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = run_signal;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_RESTART;
	for (i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
		/* Ignored at start (nohup, `cmd &` in a script): stays so. */
		if (sigaction(sigs[i], NULL, &old) == 0 &&
		    old.sa_handler == SIG_IGN && sigs[i] != SIGCHLD)
			continue;
		sigaction(sigs[i], &sa, NULL);
	}
	return (0);
}

/* Say why the op ended without success; returns the exit status. */
static int
run_report(struct ctl *ctx, struct run *r, const struct erm_exec_result *res,
    const char *breaker, enum erm_status st)
{
	if (strcmp(res->decision, "rejected") == 0) {
		if (res->attempts == 0)
			ctl_warnx("run: breaker %s does not permit the call "
			    "(retry after %lld ms); '%s' not run",
			    breaker != NULL ? breaker : "?",
			    (long long)res->retry_after_ms, r->argv[0]);
		else
			ctl_warnx("run: breaker %s refused attempt %d "
			    "(retry after %lld ms); giving up on '%s'",
			    breaker != NULL ? breaker : "?", res->attempts + 1,
			    (long long)res->retry_after_ms, r->argv[0]);
		return (RUN_EXIT_TEMPFAIL);
	}
	if (strcmp(res->decision, "cancelled") == 0) {
		ctl_warnx("run: '%s' interrupted after %d attempt%s",
		    r->argv[0], res->attempts, res->attempts == 1 ? "" : "s");
		if (res->attempts == 0)
			return (128 + (run_stop != 0 ? run_stop : SIGINT));
		return (r->status);
	}
	if (res->decision[0] != '\0') {
		ctl_warnx("run: '%s' failed: decision %s%s%s%s after %d "
		    "attempt%s", r->argv[0], res->decision,
		    res->category[0] != '\0' ? " (" : "", res->category,
		    res->category[0] != '\0' ? ")" : "",
		    res->attempts, res->attempts == 1 ? "" : "s");
		if (res->backend[0] != '\0')
			ctl_warnx("run: fallback backend: %s", res->backend);
		if (res->rolled_back > 0)
			ctl_warnx("run: %d file%s restored from backup",
			    res->rolled_back, res->rolled_back == 1 ? "" : "s");
		return (r->status);
	}
	/* The daemon could not be asked, or answered with an error. */
	if (res->attempts > 0 && res->fn_result == 0) {
		ctl_fail(ctx, "op.succeed", st);
		ctl_warnx("run: '%s' succeeded but the daemon did not record "
		    "it", r->argv[0]);
		return (CTL_EXIT_OK);
	}
	if (res->attempts > 0) {
		ctl_fail(ctx, "op.fail", st);
		return (r->status);
	}
	return (ctl_fail(ctx, "op.begin", st));
}

static const char run_help[] =
"\n"
"Runs CMD (no shell) as the op NAME (default: CMD's base name). After a\n"
"failure the daemon decides: run it again after a delay, or stop.\n"
"  --breaker B   guard every attempt with breaker B\n"
"  --policy P    retry policy: a name, or a JSON object\n"
"  --backup PATH back PATH up before the first attempt; when the daemon\n"
"                decides to roll back, it restores PATH (repeatable)\n"
"  --timeout D   kill an attempt after D (30s, 500ms, 2m; a bare number is\n"
"                seconds): SIGTERM to its process group, SIGKILL 5 s later;\n"
"                it counts as exit status 124 (a TIMEOUT_ERROR)\n"
"Exit status: that of the last attempt (128+N after signal N, 124 after a\n"
"timeout, 126/127 when CMD cannot be run), 75 when the breaker refused,\n"
"or ermctl's own (1, 3, 77) when the daemon could not be asked.\n";

int
cmd_run(struct ctl *ctx, int argc, char **argv)
{
	static const struct option	 opts[] = {
		{ "op", required_argument, NULL, RUN_OPT_OP },
		{ "breaker", required_argument, NULL, RUN_OPT_BREAKER },
		{ "policy", required_argument, NULL, RUN_OPT_POLICY },
		/* Shadows the common --timeout (reply wait) after `run`. */
		{ "timeout", required_argument, NULL, RUN_OPT_TIMEOUT },
		{ "backup", required_argument, NULL, RUN_OPT_BACKUP },
		CTL_COMMON_OPTIONS
	};
	struct erm_exec_opts		 eo;
	struct erm_exec_result		 res;
	struct run			 r;
	json_error_t			 jerr;
	json_t				*policy = NULL;
	const char			*op = NULL, *slash;
	const char			*backups[RUN_BACKUPS_MAX + 1];
	enum erm_status			 st;
	int				 ch, i, ret, nbackups = 0;

	memset(&eo, 0, sizeof(eo));
	memset(&r, 0, sizeof(r));
	run_stop = 0;
	r.tty = -1;
	optind = 0;
	while ((ch = getopt_long(argc, argv, CTL_SHORTOPTS, opts,
	    NULL)) != -1) {
		switch (ch) {
		case RUN_OPT_OP:
			op = optarg;
			break;
		case RUN_OPT_BREAKER:
			eo.breaker = optarg;
			break;
		case RUN_OPT_POLICY:
			eo.policy = optarg;
			break;
		case RUN_OPT_BACKUP:
			if (nbackups == RUN_BACKUPS_MAX) {
				ret = ctl_usage_error(ctx, "at most %d --backup "
				    "paths", RUN_BACKUPS_MAX);
				goto out;
			}
			/* As every other command: the daemon takes absolute
			 * paths only. */
			if ((backups[nbackups] = ctl_absolute(optarg)) ==
			    NULL) {
				ret = CTL_EXIT_FAILED;
				goto out;
			}
			nbackups++;
			break;
		case RUN_OPT_TIMEOUT:
			if (ctl_parse_duration(ctx, "--timeout", optarg,
			    1000, 1, &r.timeout_ms) == -1) {
				ret = CTL_EXIT_USAGE;
				goto out;
			}
			break;
		default:
			if ((ret = ctl_option(ctx, ch, argv)) != -1) {
				if (ch == 'h')
					fputs(run_help, stdout);
				goto out;
			}
		}
	}
	if (optind >= argc) {
		ret = ctl_usage_error(ctx, "no command to run");
		goto out;
	}
	r.argv = argv + optind;
	backups[nbackups] = NULL;
	if (nbackups > 0)
		eo.backup = backups;
	if (op == NULL)
		op = (slash = strrchr(r.argv[0], '/')) != NULL ? slash + 1 :
		    r.argv[0];
	/* A policy given as a JSON object rather than a name. */
	if (eo.policy != NULL && eo.policy[0] == '{') {
		policy = json_loads(eo.policy, JSON_REJECT_DUPLICATES, &jerr);
		if (!json_is_object(policy)) {
			ret = ctl_usage_error(ctx, "--policy: not a JSON "
			    "object: %s", policy == NULL ? jerr.text : "");
			goto out;
		}
		eo.policy_object = policy;
	}

	if ((st = ctl_connect(ctx)) != ERM_OK) {
		ret = ctl_fail(ctx, "run", st);
		goto out;
	}
	if (run_setup_signals() == -1) {
		ret = CTL_EXIT_FAILED;
		goto out;
	}
	if (isatty(STDIN_FILENO) && tcgetpgrp(STDIN_FILENO) == getpgrp())
		r.tty = STDIN_FILENO;
	eo.cancel = &run_stop;

	st = erm_execute(ctx->client, op, run_once, &r, &eo, &res);
	if (st == ERM_OK) {
		if (res.recovered)
			ctl_warnx("run: '%s' succeeded on attempt %d",
			    r.argv[0], res.attempts);
		ret = CTL_EXIT_OK;
	} else
		ret = run_report(ctx, &r, &res, eo.breaker, st);
out:
	for (i = 0; i < nbackups; i++)
		free((char *)backups[i]);	/* ctl_absolute's */
	json_decref(policy);
	return (ret);
}
