/*
 * Forwarding to Supabase (BEHAVIOUR.md section 6): a durable outbox in the
 * store, filled in the same transactions as the records it carries, and a
 * forwarder per table that sends it in batches through the daemon's HTTP
 * client, idempotently (rows keyed by UUID, ignore-duplicates), and handles
 * every class of response without ever dropping a row silently.
 */
#ifndef FORWARD_H
#define FORWARD_H

#include <stdint.h>

#include <jansson.h>

struct event_base;
struct store_tx;
struct error_report;
struct op;

enum fwd_kind { FWD_ERRORS, FWD_RECOVERIES, FWD_ALERTS, FWD_NKINDS };

/* modules_register: the [supabase] section and its key checks. */
void		 forward_register(void);
/* modules_start / modules_stop. */
void		 forward_start(struct event_base *);
void		 forward_stop(void);

/* 1 when [supabase] url is set: records are queued for forwarding. */
int		 forward_enabled(void);

/*
 * The erm_errors row of r as JSON text (malloc'ed), or NULL when
 * forwarding is off. Loop thread.
 */
char		*forward_error_row(const struct error_report *r);
/*
 * Writer thread: queue a row in the outbox inside the caller's job. Only
 * its arguments are touched. Returns 0 or -1 (the job fails).
 */
int		 forward_tx_enqueue(struct store_tx *, enum fwd_kind,
		    const char *id, const char *body, int severity,
		    int64_t now);
/* Loop thread, after the commit that queued n rows of kind. */
void		 forward_enqueued(enum fwd_kind, int n);

/*
 * The erm_recoveries row of a finished op as JSON text (malloc'ed), or
 * NULL when forwarding is off: queued with forward_tx_enqueue in the job
 * that stores the op, so the two commit together. Loop thread.
 */
char		*forward_recovery_row(const struct op *);

/*
 * Where the forwarder's own alerts go (a pause, a dead-lettered row):
 * set by alerts.c; without it they are logged and published as events.
 */
typedef void	(*forward_alert_fn)(const char *kind, const char *key,
		    const char *severity, const char *message,
		    json_t *details);
void		 forward_set_alert(forward_alert_fn);

/* RFC 3339 UTC with milliseconds, for unix ms; returns buf. */
const char	*forward_time(int64_t ms, char *buf, size_t sz);
/* The host name sent in every row. */
const char	*forward_host(void);

#endif
