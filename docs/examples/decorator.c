/*
 * Decorator usage: the seed's @recovery_operation(recovery_manager) in C.
 * ERM_RECOVERABLE defines process_data(arg, res), which runs the body
 * below through erm_execute as the operation "process_data": the body
 * fails once with a connection error and then succeeds, so the call
 * returns ERM_OK with res.recovered set.
 *
 * Connects to $ERMD_SOCKET. Exits 0 when the decorated call recovered.
 */

#include <stdio.h>
#include <string.h>

#include "erm.h"

static struct erm_client	*recovery_manager;

struct data {
	const char	*text;
	int		 calls;
	size_t		 processed;
};

ERM_RECOVERABLE(process_data, struct data, recovery_manager, NULL)
{
	if (++arg->calls == 1) {
		err->exception = "ConnectionError";
		err->message = "backend went away";
		return (-1);
	}
	arg->processed = strlen(arg->text);
	return (0);
}

int
main(void)
{
	struct data		d = { "test data", 0, 0 };
	struct erm_exec_result	res;
	enum erm_status		st;

	if ((st = erm_connect(&recovery_manager, NULL)) != ERM_OK) {
		fprintf(stderr, "connect: %s\n", erm_strerror(st));
		return (1);
	}
	erm_set_timeout(recovery_manager, 10000);

	st = process_data(&d, &res);
	printf("process_data: %s; %zu bytes processed in %d attempts\n",
	    st == ERM_OK ? "ok" : erm_strerror(st), d.processed, res.attempts);
	erm_close(recovery_manager);
	return (st == ERM_OK && res.recovered ? 0 : 1);
}
