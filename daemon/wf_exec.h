/*
 * The actions of workflow steps: programs (fork and execve, a process
 * group, capped output, a timeout that kills the group), sleeps, file
 * actions confined to the roots (on the worker pool), backups and
 * restores, and HTTP requests.
 */
#ifndef WF_EXEC_H
#define WF_EXEC_H

#include <stdint.h>

#include <jansson.h>

#include "roots.h"

#define WF_OUTPUT_MAX	(1024 * 1024)

struct wf_act;

/*
 * The outcome of an action: ok, or an error object (new reference, stolen
 * by the callee). output (new reference, stolen) may be NULL. Called once,
 * on the loop thread, never from inside wf_act_start.
 */
typedef void	(*wf_act_done)(void *arg, int ok, json_t *error,
		    json_t *output);

/*
 * Start action (borrowed; checked by wf_action_check) as peer, with a
 * deadline of timeout_ms (0: none). Returns NULL when it could not be
 * started at all (done is not called); otherwise done is called exactly
 * once.
 */
struct wf_act	*wf_act_start(const json_t *action, const struct peer *,
		    int64_t timeout_ms, wf_act_done, void *arg);
/* Stop the action early; done is still called, with a cancelled error. */
void		 wf_act_stop(struct wf_act *);

#endif
