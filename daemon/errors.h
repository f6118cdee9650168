/*
 * Error tracking: every reported error is stored before it is answered,
 * once per id, counted by category, listed and summed for error.list and
 * error.stats, and pruned in the background by age and count ([errors]).
 */
#ifndef ERRORS_H
#define ERRORS_H

#include <stdint.h>

#include <jansson.h>

#include "classify.h"
#include "htab.h"
#include "uuid.h"

#define ERROR_OPERATION_MAX	256
#define ERROR_PATH_MAX		4096
#define ERROR_CONTEXT_MAX	16384	/* bytes of the context's JSON text */

enum severity { SEV_INFO, SEV_WARNING, SEV_ERROR, SEV_CRITICAL, SEV_COUNT };

/* "info" ... "critical", NULL-terminated (for param_enum). */
extern const char *const severity_names[];

struct store_result;
struct error_report;

/*
 * Called on the loop once the report is durable (or failed): res->ok, and
 * r holds the first result for its id (dup is set when the id was stored
 * already). Each waiter gets its own call.
 */
typedef void	(*error_done_fn)(struct error_report *r, void *arg,
		    const struct store_result *res);

struct error_waiter {
	error_done_fn		 done;
	void			*arg;
	struct error_waiter	*next;
};

/* A report on its way to the store; owned by errors.c once submitted. */
struct error_report {
	struct hnode		 node;		/* pending, by id */
	char			 id[UUID_STRLEN + 1];
	int64_t			 at;
	char			*operation;
	enum category		 category;
	enum strategy		 primary, fallback;
	char			 matched[160];
	enum severity		 severity;
	char			*message;	/* NULL: none */
	char			*path;		/* NULL: none */
	char			*context;	/* JSON text; NULL: none */
	char			*error;		/* the error object's JSON text */
	char			*row;		/* the row forwarded (JSON) */
	int			 dup;		/* the id was stored already */
	struct error_waiter	*waiters;
};

/* modules_register: the [errors] section. */
void		 errors_register(void);
/* modules_start: counters from the store, metrics, reporters, timers. */
void		 errors_start(void);
void		 errors_stop(void);

/* A report with id (or NULL: a new UUIDv7) and at set to now. */
struct error_report *error_report_new(const char *id);
void		 error_report_free(struct error_report *);

/*
 * Store r (stolen) and call done when it is durable. When a report with
 * the same id is still being written, r is freed and done waits for that
 * one. Returns -1 when the store is closed (r is freed).
 */
int		 errors_submit(struct error_report *r, error_done_fn done,
		    void *arg);
/*
 * The stored first result for id into r's category, strategy and at:
 * 1 found, 0 not, -1 on a read error.
 */
int		 errors_lookup(const char *id, struct error_report *r);

/* {id, category, strategy: {primary, fallback}, at} as JSON text. */
char		*error_report_result(const struct error_report *);

struct error_filter {
	int64_t		 since, until;
	const char	*category, *operation, *severity;
	int64_t		 limit;
	const char	*before_id;
};
/*
 * error.list, read on a worker thread; done gets on the loop the result (a
 * new reference), or NULL with notfound set when before_id is unknown, or
 * NULL on a read error. The filter's strings are copied; severity must be
 * one of severity_names. -1 when it cannot be started.
 */
typedef void	(*errors_list_fn)(json_t *result, int notfound, void *arg);
int		 errors_list(const struct error_filter *, errors_list_fn done,
		    void *arg);
/*
 * error.stats's result over the last window_ms (0: all time), computed on
 * a worker thread; done gets it on the loop (a new reference, NULL on a
 * read error). -1 when it cannot be started.
 */
typedef void	(*errors_stats_fn)(json_t *result, void *arg);
int		 errors_stats(int64_t window_ms, errors_stats_fn done,
		    void *arg);

/* Errors ever stored, in all and by category. */
uint64_t	 errors_total(void);

/*
 * Called with every newly stored report (after its commit), for modules
 * that follow errors (alerts). NULL: none.
 */
void		 errors_on_stored(void (*fn)(const struct error_report *));

#endif
