/*
 * A recovery workflow: the seed's create_recovery_workflow and
 * execute_recovery_workflow. Three steps, each a C function with its
 * rollback, run by this process as client steps while the daemon records
 * every transition; a fourth step, run by the daemon itself, sleeps. The
 * third step fails, so the daemon compensates the two that succeeded,
 * newest first, by calling their rollbacks here.
 *
 * Connects to $ERMD_SOCKET. Prints each transition as it happens. Exits 0
 * when the workflow ends compensated with the rollbacks of steps 2 and 1
 * run, in that order.
 */

#include <stdio.h>
#include <string.h>

#include "erm.h"

struct trail {
	char	log[256];
};

static void
note(struct trail *t, const char *what, const char *step)
{
	size_t	n = strlen(t->log);

	snprintf(t->log + n, sizeof(t->log) - n, "%s%s:%s", n ? " " : "",
	    what, step);
}

static int
do_step(void *arg, const char *step, json_t **output, struct erm_errinfo *err)
{
	struct trail	*t = arg;

	note(t, "run", step);
	if (strcmp(step, "migrate_schema") == 0) {
		err->category = "STORAGE_ERROR";
		err->message = "the schema migration failed";
		return (-1);
	}
	*output = json_pack("{s:s}", "done", step);
	return (0);
}

static int
undo_step(void *arg, const char *step, json_t **output,
    struct erm_errinfo *err)
{
	struct trail	*t = arg;

	(void)output;
	(void)err;
	note(t, "undo", step);
	return (0);
}

static void
progress(void *arg, const json_t *ev)
{
	(void)arg;
	if (json_object_get(ev, "step") != NULL)
		printf("  step %-16s %s\n", json_string_value(json_object_get(ev,
		    "step")), json_string_value(json_object_get(ev, "state")));
	else
		printf("workflow %s\n", json_string_value(json_object_get(ev,
		    "state")));
}

int
main(void)
{
	struct erm_client	*c;
	struct erm_workflow	*wf;
	struct trail		 t = { "" };
	json_t			*final = NULL;
	enum erm_status		 st;
	int			 ok;

	if ((st = erm_connect(&c, NULL)) != ERM_OK) {
		fprintf(stderr, "connect: %s\n", erm_strerror(st));
		return (1);
	}
	/* workflow = create_recovery_workflow("deploy", steps) */
	if (erm_workflow_new("deploy", &wf) != ERM_OK ||
	    erm_workflow_add_client(wf, "stop_service", do_step, undo_step, &t,
	    NULL) != ERM_OK ||
	    erm_workflow_add_client(wf, "copy_release", do_step, undo_step,
	    &t, NULL) != ERM_OK ||
	    erm_workflow_add_client(wf, "migrate_schema", do_step, undo_step,
	    &t, NULL) != ERM_OK ||
	    erm_workflow_add(wf, "settle", json_pack("{s:s, s:i}", "type",
	    "sleep", "ms", 10), NULL, NULL) != ERM_OK) {
		fprintf(stderr, "cannot build the workflow\n");
		return (1);
	}
	/* A transient failure of the first step would be retried. */
	json_object_set_new(erm_workflow_last_step(wf), "timeout_ms",
	    json_integer(60000));
	/* execute_recovery_workflow(workflow) */
	st = erm_workflow_execute(c, wf, progress, NULL, &final);
	if (st != ERM_OK) {
		fprintf(stderr, "workflow: %s: %s\n", erm_strerror(st),
		    erm_last_error(c)->message);
		return (1);
	}
	printf("final state %s; %s\n", erm_workflow_state(final), t.log);
	ok = strcmp(erm_workflow_state(final), "compensated") == 0 &&
	    strcmp(t.log, "run:stop_service run:copy_release "
	    "run:migrate_schema undo:copy_release undo:stop_service") == 0;
	json_decref(final);
	erm_workflow_free(wf);
	erm_close(c);
	return (ok ? 0 : 1);
}
