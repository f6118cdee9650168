/*
 * Basic usage: execute_with_recovery in C. A flaky operation fails twice
 * with a connection reset, then succeeds; erm_execute asks the daemon
 * after each failure and waits the delay it gives (NETWORK_ERROR is
 * retried with backoff by default). With a FILE argument the daemon backs
 * it up before the first attempt (FILE must lie beneath a [root.NAME] of
 * the daemon's config).
 *
 * Connects to $ERMD_SOCKET (else /run/ermd/ermd.sock). Exits 0 when the
 * operation succeeded on its third attempt.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "erm.h"

struct job {
	const char	*path;
	int		 calls;
};

/* The risky operation: 0 on success, else fill err and return -1. */
static int
risky_operation(void *arg, struct erm_errinfo *err)
{
	struct job	*job = arg;

	if (++job->calls < 3) {
		err->errnum = ECONNRESET;
		err->message = "connection reset by peer";
		return (-1);
	}
	printf("processed %s on call %d\n", job->path, job->calls);
	return (0);
}

int
main(int argc, char **argv)
{
	struct erm_client	*c;
	struct erm_exec_opts	 opts = { 0 };
	struct erm_exec_result	 res;
	const char		*backup[2] = { NULL, NULL };
	struct job		 job = { "(no file)", 0 };
	enum erm_status		 st;

	if (argc > 1) {
		job.path = backup[0] = argv[1];
		opts.backup = backup;	/* create_backup=True */
	}
	if ((st = erm_connect(&c, NULL)) != ERM_OK) {
		fprintf(stderr, "connect: %s\n", erm_strerror(st));
		return (1);
	}
	erm_set_timeout(c, 10000);

	st = erm_execute(c, "operation_name", risky_operation, &job, &opts,
	    &res);
	if (st == ERM_OK)
		printf("Operation succeeded after %d attempts "
		    "(recovered: %s)\n", res.attempts,
		    res.recovered ? "yes" : "no");
	else if (res.decision[0] != '\0')
		printf("Operation failed: %s (%s) after %d attempts\n",
		    res.decision, res.category, res.attempts);
	else
		printf("Operation failed: %s: %s\n", erm_strerror(st),
		    erm_last_error(c)->message);
	erm_close(c);
	return (st == ERM_OK && res.attempts == 3 && res.recovered ? 0 : 1);
}
