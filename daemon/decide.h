/*
 * The decision core inside the daemon: the breaker registry, the retry
 * policies and budget, the classifier's config, their config sections, the
 * durability of breakers, and their events and metrics. The logic lives in
 * breaker.c, retry.c and classify.c; this module gives it a home.
 */
#ifndef DECIDE_H
#define DECIDE_H

#include "breaker.h"
#include "classify.h"
#include "retry.h"

struct ermd_req;

/* modules_register: the [breaker], [retry], [classify], [strategy] kinds. */
void		 decide_register(void);
/* modules_start: registries, stored breakers, hooks, metrics. */
void		 decide_start(void);
void		 decide_stop(void);

struct breakers	*decide_breakers(void);
struct retry_budget *decide_budget(void);
struct retry_rng *decide_rng(void);
/* The named policy (NULL: the [retry] defaults), or NULL when unknown. */
const struct retry_policy *decide_policy(const char *name);
/* Classify with the config in force and the default policy's retry_on. */
void		 decide_classify(const struct erm_errobj *,
		    struct classify_result *);

/*
 * The retry policy named by member of req's params: a string names a
 * configured policy (1001 when unknown), an object overrides the [retry]
 * defaults, absent means the defaults. *name is the policy's name, the
 * budget key when nothing better is given ("default" for the defaults and
 * for objects). Returns 0, or REQ_ERROR with req's error set.
 */
int		 decide_request_policy(struct ermd_req *req,
		    const char *member, struct retry_policy *out,
		    const char **name);

/*
 * Finish a request that changed or read breakers. A state change is durable
 * before any reply that reveals it: when one is waiting to be written (or
 * is being written), the request waits for that commit and this returns
 * REQ_ASYNC; otherwise it returns status and window counters are written in
 * the background within the same loop pass.
 */
int		 decide_reply(struct ermd_req *, int status);
/*
 * Queue the snapshots of every changed breaker now. A store job submitted
 * after this commits after them, so a reply that waits for that job also
 * waits for the breakers.
 */
void		 decide_flush(void);

#endif
