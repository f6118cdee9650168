/*
 * Alerts (BEHAVIOUR.md section 6, [alerts]): raised by an op that
 * escalates, a breaker that opens, an error rate over error_rate_per_min
 * and a forwarding pause; a key is raised at most once per dedup_ms. Each
 * alert is stored (and queued for the Supabase alerts table); once that
 * has committed it is published as an `alert` event and handed to the
 * webhook and exec sinks. One that cannot be stored is only logged.
 */
#ifndef ALERTS_H
#define ALERTS_H

#include <jansson.h>

struct event_base;
struct op;

void	alerts_register(void);
void	alerts_start(struct event_base *);
void	alerts_stop(void);

/*
 * Raise an alert unless one with the same key was raised within dedup_ms.
 * severity is "info", "warning", "error" or "critical"; details (stolen,
 * may be NULL) is an object. Returns 1 raised, 0 suppressed.
 */
int	alert_raise(const char *kind, const char *key, const char *severity,
	    const char *message, json_t *details);

/* m_op.c: an op whose failure ended in escalate. */
void	alerts_escalate(const struct op *, const char *category);
/* decide.c: a breaker moved to open. */
void	alerts_breaker_opened(const char *name, const char *reason);

#endif
