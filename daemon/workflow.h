/*
 * Durable recovery workflows: the step graph, the state machine of a
 * workflow and its steps, and their records in the store.
 *
 * Every transition of a workflow or a step is written by a store job, and
 * the next action starts only from that job's completion, so after a crash
 * the tables say exactly what may have run: a step recorded `running` may
 * or may not have finished, one recorded `succeeded` has finished and is
 * never run again. The actions themselves live in wf_exec.c.
 */
#ifndef WORKFLOW_H
#define WORKFLOW_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include "params.h"
#include "retry.h"
#include "roots.h"
#include "uuid.h"

#define WF_NAME_MAX		256
#define WF_STEP_NAME_MAX	128
#define WF_MAX_RUNNING_DEFAULT	256
#define WF_MAX_STEPS_DEFAULT	1000

enum wf_state {
	WF_PENDING,
	WF_RUNNING,
	WF_SUCCEEDED,
	WF_FAILED,
	WF_COMPENSATING,
	WF_COMPENSATED,
	WF_CANCELLED,
	WF_NSTATES
};

enum wf_step_state {
	WS_PENDING,
	WS_RUNNING,
	WS_SUCCEEDED,
	WS_FAILED,
	WS_SKIPPED,
	WS_COMPENSATING,
	WS_COMPENSATED,
	WS_COMPENSATION_FAILED,
	WS_NSTATES
};

enum wf_comp_mode { WF_COMP_SEQUENTIAL, WF_COMP_PARALLEL };

struct wf_act;
struct clock_timer;
struct ermd_req;

struct wf_step {
	char			*name;
	json_t			*action;	/* borrowed (spec) */
	json_t			*compensate;	/* or NULL */
	size_t			*after;		/* step indices */
	size_t			 nafter;
	int			 idempotent;
	int64_t			 timeout_ms;	/* 0: none */
	char			*breaker;
	int			 has_retry;
	struct retry_policy	 retry;

	enum wf_step_state	 state;
	int			 attempts;
	uint64_t		 started_at, finished_at;
	int64_t			 done_seq;	/* completion order */
	json_t			*error;		/* or NULL */
	json_t			*output;	/* new ref. or NULL */

	/* Runtime only. */
	struct wf_act		*act;		/* running action */
	struct clock_timer	*retry_timer;
	int			 stopping;	/* a stop was asked */
	int			 launching;	/* `running` committing */
	int			 client_wait;	/* act: a client wait */
	char			 permit[64];
	uint64_t		 attempt_at;
};

struct wf_waiter {
	struct ermd_req		*req;
	struct clock_timer	*timer;
	struct workflow		*wf;
	struct wf_waiter	*next;
};

struct workflow {
	char			 id[UUID_STRLEN + 1];
	char			*name;
	json_t			*spec;		/* create params */
	enum wf_state		 state;
	int			 rollback;
	enum wf_comp_mode	 comp_mode;
	int			 continue_comp;
	int			 exec_allowed;
	uint64_t		 created_at, started_at, finished_at;
	json_t			*error;
	struct wf_step		*steps;
	size_t			 nsteps;
	struct peer		 peer;
	uint64_t		 owner;		/* creator; 0: gone */

	/* Runtime only. */
	int			 failing;	/* failed or cancelled */
	int			 cancelled;
	int			 commits;	/* store jobs in flight */
	int			 stored;	/* the table has its row... */
	enum wf_state		 stored_state;	/* ...in this state */
	struct wf_waiter	*waiters;
	struct workflow		*next, *prev;
};

const char	*wf_state_name(enum wf_state);
const char	*wf_step_state_name(enum wf_step_state);
int		 wf_state_from_name(const char *);
int		 wf_step_state_from_name(const char *);
int		 wf_state_final(enum wf_state);

/*
 * Parse and check the steps of a create request: names unique, `after`
 * naming known steps, no cycle, each action well formed. Fills wf->steps
 * (borrowing from steps, which the caller keeps alive in wf->spec).
 * Returns 0, or -1 with e naming the field ("steps[2].after", and the step
 * in the reason).
 */
int		 wf_graph_parse(struct workflow *wf, json_t *steps,
		    size_t max_steps, struct param_err *e);
/* Check one action object; prefix names it in e. */
int		 wf_action_check(const json_t *action, const char *prefix,
		    struct param_err *e);
/* Does the action (or compensation) of any step run a program? */
int		 wf_uses_exec(const struct workflow *wf);

struct workflow	*wf_alloc(void);
void		 wf_free(struct workflow *);
/* New reference: the workflow.get shape. */
json_t		*wf_to_json(const struct workflow *);

/* ---- the engine (the daemon) ------------------------------------------ */

struct wf_settings {
	int64_t		 max_running;
	int64_t		 max_steps;
	int64_t		 kill_grace_ms;
	int64_t		 max_age_ms;	/* finished ones kept; 0: for ever */
	int64_t		 prune_interval_ms;
	gid_t		*exec_gids;	/* exec_allow_groups, resolved */
	size_t		 nexec_gids;	/* 0: the admin group */
};
extern struct wf_settings	wf_set;

void		 workflow_register(void);
void		 workflow_start(void);
void		 workflow_stop(void);

struct workflow	*wf_find(const char *id);
unsigned	 wf_running_count(void);
/* Store wf (new) and, when run, start it; cb runs once it is durable. */
int		 wf_submit(struct workflow *, int run,
		    void (*cb)(void *, int ok, const char *msg), void *arg);
/* Start a pending workflow. */
void		 wf_run(struct workflow *);
/* Cancel a workflow that is not final. */
void		 wf_cancel(struct workflow *);
/* Call req back when wf reaches a final state (or at once when it is). */
void		 wf_wait(struct workflow *, struct ermd_req *,
		    int64_t timeout_ms);
/* A client step's result. Returns 0, or -1 when the step does not wait. */
int		 wf_step_result(struct workflow *, const char *step, int ok,
		    json_t *error, json_t *output, uint64_t conn);
/* Load a workflow from the store (any state); NULL when unknown. */
struct workflow	*wf_load(const char *id);
/* New reference: summaries, newest first. */
json_t		*wf_list(int state, int64_t limit);
/* May this peer run programs? */
int		 wf_exec_permitted(const struct peer *);

#endif
