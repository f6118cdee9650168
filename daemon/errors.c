/* Error tracking: storage, counters and retention of reports; see errors.h. */

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "config.h"
#include "erm_proto.h"
#include "errors.h"
#include "events.h"
#include "forward.h"
#include "log.h"
#include "metrics.h"
#include "opts.h"
#include "periodic.h"
#include "report.h"
#include "store.h"

#define PRUNE_BATCH	10000	/* rows deleted per job, so others wait little */

const char *const severity_names[] = {
	"info", "warning", "error", "critical", NULL
};

struct settings {
	int64_t	max_age_ms;
	int64_t	max_rows;
	int64_t	prune_interval_ms;
};

#define C(f)	offsetof(struct settings, f)
static const struct opt errors_opts[] = {
	{ "max_age_ms", OPT_INT, 0, 3153600000000.0, C(max_age_ms), NULL },
	{ "max_rows", OPT_INT, 0, 1000000000, C(max_rows), NULL },
	{ "prune_interval_ms", OPT_INT, 0, 86400000, C(prune_interval_ms),
	    NULL },
	{ NULL, OPT_INT, 0, 0, 0, NULL }
};
#undef C

static const struct settings errors_defaults = {
	.max_age_ms = INT64_C(2592000000),
	.max_rows = 1000000,
	.prune_interval_ms = 60000,
};

static const char *const errors_keys[] = {
	"max_age_ms", "max_rows", "prune_interval_ms", NULL
};

/* Module state; loop thread only. */
static struct {
	struct settings		 set;
	struct htab		 pending;	/* reports being written, by id */
	uint64_t		 total[CAT_COUNT];
	struct metric		*m_total[CAT_COUNT];
	struct periodic		 prune;
	void			(*on_stored)(const struct error_report *);
} er;

/* ---- config ------------------------------------------------------------- */

static int
errors_check(const char *section, const char *key, const char *value,
    char *err, size_t errsz)
{
	struct settings	scratch;

	(void)section;
	return (opts_check_conf(errors_opts, &scratch, key, value, err, errsz));
}

static void
errors_apply(const struct config *cfg)
{
	er.set = errors_defaults;
	opts_from_config(errors_opts, &er.set, cfg, "errors");
	periodic_every(&er.prune, er.set.prune_interval_ms);
}

void
errors_register(void)
{
	static const struct config_kind	kind = {
		"errors", 0, errors_check, errors_keys, errors_apply
	};

	config_register_kind(&kind);
	er.set = errors_defaults;
}

/* ---- reports ------------------------------------------------------------ */

struct error_report *
error_report_new(const char *id)
{
	struct error_report	*r;

	if ((r = calloc(1, sizeof(*r))) == NULL)
		return (NULL);
	if (id != NULL)
		snprintf(r->id, sizeof(r->id), "%s", id);
	else
		uuid7(r->id);
	r->at = (int64_t)clock_now_ms();
	r->severity = SEV_ERROR;
	return (r);
}

void
error_report_free(struct error_report *r)
{
	struct error_waiter	*w;

	if (r == NULL)
		return;
	while ((w = r->waiters) != NULL) {
		r->waiters = w->next;
		free(w);
	}
	free(r->operation);
	free(r->message);
	free(r->path);
	free(r->context);
	free(r->error);
	free(r->row);
	free(r);
}

char *
error_report_result(const struct error_report *r)
{
	struct erm_buf	b = { NULL, 0, 0, 4096 };

	return (erm_buf_string(&b, erm_jw_begin(&b, NULL) == 0 &&
	    erm_jw_str(&b, "id", r->id) == 0 &&
	    erm_jw_str(&b, "category", category_name(r->category)) == 0 &&
	    erm_jw_begin(&b, "strategy") == 0 &&
	    erm_jw_str(&b, "primary", strategy_name(r->primary)) == 0 &&
	    erm_jw_str(&b, "fallback", r->fallback == STRAT_NONE ? NULL :
	    strategy_name(r->fallback)) == 0 &&
	    erm_jw_end(&b) == 0 &&
	    erm_jw_int(&b, "at", r->at) == 0 &&
	    erm_jw_end(&b) == 0));
}

static int
first_result(const struct store_row *row, void *arg)
{
	struct error_report	*r = arg;

	r->category = category_from_name(store_row_text(row, 0));
	r->primary = strategy_from_name(store_row_text(row, 1));
	r->fallback = store_row_isnull(row, 2) ? STRAT_NONE :
	    strategy_from_name(store_row_text(row, 2));
	r->at = store_row_int(row, 3);
	r->dup = 1;
	return (1);
}

int
errors_lookup(const char *id, struct error_report *r)
{
	r->dup = 0;
	if (store_query(first_result, r, "SELECT category, strategy, "
	    "fallback, at FROM errors WHERE id = ?", "t", id) == -1)
		return (-1);
	return (r->dup);
}

/*
 * New rows per category in the batch being written: writer thread only.
 * error_counts is moved once per batch (counts_end) rather than once per
 * row, in the same transaction as the rows, so the counters survive
 * pruning and restarts.
 */
static uint64_t	batch_counts[CAT_COUNT];

static void
counts_begin(void)
{
	memset(batch_counts, 0, sizeof(batch_counts));
}

static int
counts_end(struct store_tx *tx)
{
	int	c;

	for (c = CAT_NONE + 1; c < CAT_COUNT; c++)
		if (batch_counts[c] > 0 && store_tx_exec(tx, "UPDATE "
		    "error_counts SET n = n + ? WHERE category = ?", "it",
		    (int64_t)batch_counts[c], category_name(c)) == -1)
			return (-1);
	return (0);
}

/*
 * The writer thread's part. INSERT OR IGNORE keeps the first row of an id
 * (the loop has checked the committed rows and the pending ones, so this
 * is a second line of defence); a new row counts towards its category
 * once everything of the job has succeeded.
 */
static int
report_run(struct store_tx *tx, void *arg)
{
	struct error_report	*r = arg;
	const char		*fb;

	fb = r->fallback == STRAT_NONE ? NULL : strategy_name(r->fallback);
	if (store_tx_exec(tx, "INSERT OR IGNORE INTO errors (id, at, "
	    "operation, category, strategy, fallback, matched, severity, "
	    "message, path, context, error) "
	    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", "titttttttttt",
	    r->id, r->at, r->operation, category_name(r->category),
	    strategy_name(r->primary), fb, r->matched,
	    severity_names[r->severity], r->message, r->path, r->context,
	    r->error) == -1)
		return (-1);
	if (store_tx_changes(tx) == 0)
		return (store_tx_query(tx, first_result, r, "SELECT category, "
		    "strategy, fallback, at FROM errors WHERE id = ?", "t",
		    r->id) == -1 ? -1 : 0);
	/* The outbox row commits with the error it carries. */
	if (r->row != NULL && forward_tx_enqueue(tx, FWD_ERRORS, r->id,
	    r->row, (int)r->severity, r->at) == -1)
		return (-1);
	batch_counts[r->category]++;
	return (0);
}

static void
report_done(void *arg, const struct store_result *res)
{
	struct error_report	*r = arg;
	struct error_waiter	*w;

	htab_remove(&er.pending, &r->node);
	if (res->ok && !r->dup) {
		er.total[r->category]++;
		if (er.m_total[r->category] != NULL)
			metric_inc(er.m_total[r->category]);
		if (events_wanted(EV_ERROR_REPORTED))
			events_emit(EV_ERROR_REPORTED, json_pack("{s:s, s:s, "
			    "s:s, s:s, s:s?, s:I}", "id", r->id, "operation",
			    r->operation, "category", category_name(
			    r->category), "severity", severity_names[
			    r->severity], "message", r->message, "at",
			    (json_int_t)r->at));
		if (r->row != NULL)
			forward_enqueued(FWD_ERRORS, 1);
		if (er.on_stored != NULL)
			er.on_stored(r);
	}
	for (w = r->waiters; w != NULL; w = w->next) {
		w->done(r, w->arg, res);
		r->dup = 1;	/* every later waiter sees a repeat */
	}
	error_report_free(r);
}

int
errors_submit(struct error_report *r, error_done_fn done, void *arg)
{
	struct error_waiter	*w, **wp;
	struct error_report	*first;
	struct hnode		*n;

	if ((w = calloc(1, sizeof(*w))) == NULL) {
		error_report_free(r);
		return (-1);
	}
	w->done = done;
	w->arg = arg;
	/* The same id being written: wait for that write's outcome. */
	if ((n = htab_find(&er.pending, r->id, strlen(r->id))) != NULL) {
		first = HTAB_ENTRY(n, struct error_report, node);
		for (wp = &first->waiters; *wp != NULL; wp = &(*wp)->next)
			;
		*wp = w;
		error_report_free(r);
		return (0);
	}
	r->waiters = w;
	r->row = forward_error_row(r);
	if (htab_insert(&er.pending, &r->node, r->id, strlen(r->id)) == -1 ||
	    store_submit(report_run, report_done, r) == -1) {
		if (htab_find(&er.pending, r->id, strlen(r->id)) == &r->node)
			htab_remove(&er.pending, &r->node);
		error_report_free(r);
		return (-1);
	}
	return (0);
}

/* ---- list and stats ----------------------------------------------------- */

struct list_ctx {
	json_t	*errors;
	int64_t	 limit, n;
	char	 last[UUID_STRLEN + 1];
	int	 more;
};

static int
list_row(const struct store_row *row, void *arg)
{
	struct list_ctx	*c = arg;
	json_t		*o, *eo, *v;
	const char	*t;

	if (c->n == c->limit) {
		c->more = 1;
		return (1);
	}
	t = store_row_text(row, 0);
	o = json_pack("{s:s, s:I, s:s, s:s, s:s, s:s, s:b}", "id", t,
	    "at", (json_int_t)store_row_int(row, 1), "operation",
	    store_row_text(row, 2), "category", store_row_text(row, 3),
	    "severity", store_row_text(row, 4), "message",
	    store_row_isnull(row, 5) ? "" : store_row_text(row, 5),
	    "forwarded", (int)store_row_int(row, 9));
	if (o == NULL)
		return (1);
	snprintf(c->last, sizeof(c->last), "%s", t);
	eo = erm_json_parse_text(store_row_text(row, 8));
	if (eo != NULL) {
		if ((v = json_object_get(eo, "errno")) != NULL)
			json_object_set(o, "errno", v);
		if ((v = json_object_get(eo, "http_status")) != NULL)
			json_object_set(o, "http_status", v);
		json_decref(eo);
	}
	if (!store_row_isnull(row, 6))
		json_object_set_new(o, "path",
		    json_string(store_row_text(row, 6)));
	if (!store_row_isnull(row, 7) && (v = erm_json_parse_text(
	    store_row_text(row, 7))) != NULL)
		json_object_set_new(o, "context", v);
	json_array_append_new(c->errors, o);
	c->n++;
	return (0);
}

static int
seq_row(const struct store_row *row, void *arg)
{
	*(int64_t *)arg = store_row_int(row, 0);
	return (1);
}

/*
 * error.list, read off the loop: a filter that few rows match walks the
 * table back to its start (a category nobody reported scans every row).
 * The filter's strings are copied: the request may be gone by then.
 */
struct list_job {
	struct error_filter	 f;
	char			 category[64 + 1];
	char			 operation[ERROR_OPERATION_MAX + 1];
	char			 before_id[UUID_STRLEN + 1];
	json_t			*out;
	int			 notfound;
	errors_list_fn		 done;
	void			*arg;
};

static int
list_run(struct store_rd *rd, void *arg)
{
	struct list_job	*j = arg;
	struct list_ctx	 c;
	int64_t		 before = INT64_MAX;

	if (j->f.before_id != NULL) {
		before = -1;
		if (store_rd_query(rd, seq_row, &before, "SELECT seq FROM "
		    "errors WHERE id = ?", "t", j->f.before_id) == -1)
			return (-1);
		if (before == -1) {
			j->notfound = 1;
			return (-1);
		}
	}
	memset(&c, 0, sizeof(c));
	c.limit = j->f.limit;
	if ((c.errors = json_array()) == NULL)
		return (-1);
	/* One statement for every combination: an absent filter binds NULL. */
	if (store_rd_query(rd, list_row, &c, "SELECT id, at, operation, "
	    "category, severity, message, path, context, error, forwarded "
	    "FROM errors WHERE seq < ? AND at >= ? AND at <= ? "
	    "AND (? IS NULL OR category = ?) AND (? IS NULL OR operation = ?) "
	    "AND (? IS NULL OR severity = ?) ORDER BY seq DESC LIMIT ?",
	    "iiitttttti", before, j->f.since, j->f.until, j->f.category,
	    j->f.category, j->f.operation, j->f.operation, j->f.severity,
	    j->f.severity, j->f.limit + 1) == -1) {
		json_decref(c.errors);
		return (-1);
	}
	if ((j->out = json_pack("{s:o}", "errors", c.errors)) == NULL)
		return (-1);
	if (c.more)
		json_object_set_new(j->out, "next", json_string(c.last));
	return (0);
}

static void
list_done(void *arg, int ok)
{
	struct list_job	*j = arg;

	if (!ok) {
		json_decref(j->out);
		j->out = NULL;
	}
	j->done(j->out, j->notfound, j->arg);	/* steals out */
	free(j);
}

static const char *
copy_into(char *dst, size_t size, const char *src)
{
	if (src == NULL)
		return (NULL);
	snprintf(dst, size, "%s", src);
	return (dst);
}

int
errors_list(const struct error_filter *f, errors_list_fn done, void *arg)
{
	struct list_job	*j;

	if ((j = calloc(1, sizeof(*j))) == NULL)
		return (-1);
	j->f = *f;
	j->f.category = copy_into(j->category, sizeof(j->category),
	    f->category);
	j->f.operation = copy_into(j->operation, sizeof(j->operation),
	    f->operation);
	j->f.before_id = copy_into(j->before_id, sizeof(j->before_id),
	    f->before_id);
	/* severity points into the static severity_names. */
	j->done = done;
	j->arg = arg;
	if (store_read_submit(list_run, list_done, j) == -1) {
		free(j);
		return (-1);
	}
	return (0);
}

static int
count_into(const struct store_row *row, void *arg)
{
	json_t	*o = arg;

	json_object_set_new(o, store_row_text(row, 0),
	    json_integer((json_int_t)store_row_int(row, 1)));
	return (0);
}

static int
recoveries_row(const struct store_row *row, void *arg)
{
	int64_t	*v = arg;

	v[0] = store_row_int(row, 0);
	v[1] = store_row_int(row, 1);
	v[2] = store_row_int(row, 2);
	return (1);
}

#define STATS_MAX_OPERATIONS	1000

/*
 * error.stats, computed off the loop: four scans of a table that can be
 * large.
 */
struct stats_job {
	int64_t		 since;
	json_t		*out;
	errors_stats_fn	 done;
	void		*arg;
};

static int
stats_run(struct store_rd *rd, void *arg)
{
	struct stats_job	*j = arg;
	json_t			*bycat, *byop, *bysev;
	int64_t			 total = 0, rec[3] = { 0, 0, 0 };
	int			 i;

	bycat = json_object();
	byop = json_object();
	bysev = json_object();
	j->out = json_pack("{s:o, s:o, s:o}", "by_category", bycat,
	    "by_operation", byop, "by_severity", bysev);
	if (j->out == NULL)
		return (-1);
	for (i = CAT_NONE + 1; i < CAT_COUNT; i++)
		json_object_set_new(bycat, category_name(i), json_integer(0));
	for (i = 0; i < SEV_COUNT; i++)
		json_object_set_new(bysev, severity_names[i], json_integer(0));
	if (store_rd_query(rd, seq_row, &total, "SELECT count(*) FROM errors "
	    "WHERE at >= ?", "i", j->since) == -1 ||
	    store_rd_query(rd, count_into, bycat, "SELECT category, count(*) "
	    "FROM errors WHERE at >= ? GROUP BY category", "i", j->since) ==
	    -1 || store_rd_query(rd, count_into, bysev, "SELECT severity, "
	    "count(*) FROM errors WHERE at >= ? GROUP BY severity", "i",
	    j->since) == -1 || store_rd_query(rd, count_into, byop, "SELECT "
	    "operation, count(*) AS n FROM errors WHERE at >= ? GROUP BY "
	    "operation ORDER BY n DESC LIMIT ?", "ii", j->since,
	    (int64_t)STATS_MAX_OPERATIONS) == -1 ||
	    store_rd_query(rd, recoveries_row, rec, "SELECT count(*), "
	    "coalesce(sum(state = 'succeeded'), 0), "
	    "coalesce(sum(state != 'succeeded'), 0) FROM ops "
	    "WHERE failures > 0 AND finished_at >= ?", "i", j->since) == -1)
		return (-1);
	json_object_set_new(j->out, "total", json_integer((json_int_t)total));
	json_object_set_new(j->out, "recoveries", json_pack("{s:I, s:I, s:I, "
	    "s:o}", "attempted", (json_int_t)rec[0], "succeeded",
	    (json_int_t)rec[1], "failed", (json_int_t)rec[2], "rate",
	    rec[0] == 0 ? json_integer(-1) :
	    json_real(100.0 * (double)rec[1] / (double)rec[0])));
	return (0);
}

static void
stats_done(void *arg, int ok)
{
	struct stats_job	*j = arg;

	if (!ok) {
		json_decref(j->out);
		j->out = NULL;
	}
	j->done(j->out, j->arg);	/* steals out */
	free(j);
}

int
errors_stats(int64_t window_ms, errors_stats_fn done, void *arg)
{
	struct stats_job	*j;

	if ((j = calloc(1, sizeof(*j))) == NULL)
		return (-1);
	/* The daemon clock is the loop's: read it here. */
	j->since = window_ms > 0 ? (int64_t)clock_now_ms() - window_ms : 0;
	j->done = done;
	j->arg = arg;
	if (store_read_submit(stats_run, stats_done, j) == -1) {
		free(j);
		return (-1);
	}
	return (0);
}

uint64_t
errors_total(void)
{
	uint64_t	n = 0;
	int		i;

	for (i = 0; i < CAT_COUNT; i++)
		n += er.total[i];
	return (n);
}

void
errors_on_stored(void (*fn)(const struct error_report *))
{
	er.on_stored = fn;
}

/* ---- retention ---------------------------------------------------------- */

struct prune_job {
	int64_t	before;		/* delete rows older than this */
	int64_t	max_rows;	/* 0: no count limit */
	int64_t	removed;
	int64_t	alerts_removed;
	int64_t	ops_removed;
};

/*
 * The oldest finished ops, at most PRUNE_BATCH of them, finished before
 * ?1: the same rows for the count and the delete (one transaction).
 */
#define OLD_OPS	"SELECT rowid, state, failures FROM ops WHERE " \
		"finished_at < ?1 ORDER BY finished_at, rowid LIMIT ?2"

static int
prune_run(struct store_tx *tx, void *arg)
{
	struct prune_job	*p = arg;
	int64_t			 n, before;

	p->removed = p->alerts_removed = p->ops_removed = 0;
	if (p->before > 0) {
		if (store_tx_exec(tx, "DELETE FROM errors WHERE seq IN (SELECT "
		    "seq FROM errors WHERE at < ? ORDER BY seq LIMIT ?)", "ii",
		    p->before, (int64_t)PRUNE_BATCH) == -1)
			return (-1);
		p->removed = store_tx_changes(tx);
	}
	if (p->max_rows > 0 && p->removed < PRUNE_BATCH) {
		n = PRUNE_BATCH - p->removed;
		before = store_tx_changes(tx);
		if (store_tx_exec(tx, "DELETE FROM errors WHERE seq IN (SELECT "
		    "seq FROM errors WHERE seq <= (SELECT seq FROM errors "
		    "ORDER BY seq DESC LIMIT 1 OFFSET ?) ORDER BY seq LIMIT ?)",
		    "ii", p->max_rows, n) == -1)
			return (-1);
		p->removed += store_tx_changes(tx) - before;
	}
	/* Alerts are kept as long as errors (by age; they are few). */
	if (p->before > 0) {
		before = store_tx_changes(tx);
		if (store_tx_exec(tx, "DELETE FROM alerts WHERE rowid IN "
		    "(SELECT rowid FROM alerts WHERE at < ? LIMIT ?)", "ii",
		    p->before, (int64_t)PRUNE_BATCH) == -1)
			return (-1);
		p->alerts_removed = store_tx_changes(tx) - before;
	}
	/*
	 * Finished ops too (error.stats takes its recovery rate from them);
	 * those that failed at least once still count in
	 * ermd_recoveries_total after a restart.
	 */
	if (p->before > 0) {
		if (store_tx_exec(tx, "UPDATE ops_pruned SET recovered = "
		    "recovered + (SELECT coalesce(sum(failures > 0 AND "
		    "state = 'succeeded'), 0) FROM (" OLD_OPS ")), failed = "
		    "failed + (SELECT coalesce(sum(failures > 0 AND "
		    "state != 'succeeded'), 0) FROM (" OLD_OPS "))", "ii",
		    p->before, (int64_t)PRUNE_BATCH) == -1)
			return (-1);
		before = store_tx_changes(tx);
		if (store_tx_exec(tx, "DELETE FROM ops WHERE rowid IN (SELECT "
		    "rowid FROM (" OLD_OPS "))", "ii", p->before,
		    (int64_t)PRUNE_BATCH) == -1)
			return (-1);
		p->ops_removed = store_tx_changes(tx) - before;
	}
	return (0);
}

static void
prune_done(void *arg, const struct store_result *res)
{
	struct prune_job	*p = arg;

	if (!res->ok)
		log_warnx("errors: prune: %s", res->msg);
	else if (p->removed > 0)
		log_debug("errors: pruned %lld", (long long)p->removed);
	/* A full batch means more is due: go on at once, a batch a job. */
	periodic_done(&er.prune, res->ok && (p->removed == PRUNE_BATCH ||
	    p->alerts_removed == PRUNE_BATCH || p->ops_removed == PRUNE_BATCH));
	free(p);
}

static void
prune_start(struct periodic *pr)
{
	struct prune_job	*p;
	int64_t			 now = (int64_t)clock_now_ms();

	if ((er.set.max_age_ms == 0 && er.set.max_rows == 0) ||
	    (p = calloc(1, sizeof(*p))) == NULL) {
		periodic_done(pr, 0);
		return;
	}
	p->before = er.set.max_age_ms > 0 ? now - er.set.max_age_ms : 0;
	p->max_rows = er.set.max_rows;
	if (store_submit(prune_run, prune_done, p) == -1) {
		free(p);
		periodic_done(pr, 0);
	}
}

/* ---- start and stop ----------------------------------------------------- */

static int
counts_row(const struct store_row *row, void *arg)
{
	enum category	c;

	(void)arg;
	if ((c = category_from_name(store_row_text(row, 0))) != CAT_NONE)
		er.total[c] = (uint64_t)store_row_int(row, 1);
	return (0);
}

static void
report_status(json_t *s)
{
	json_object_set_new(s, "errors_total",
	    json_integer((json_int_t)errors_total()));
}

static void
report_metrics(json_t *m)
{
	json_t	*by;
	int	 i;

	json_object_set_new(m, "total_errors",
	    json_integer((json_int_t)errors_total()));
	if ((by = json_object()) == NULL)
		return;
	for (i = CAT_NONE + 1; i < CAT_COUNT; i++)
		json_object_set_new(by, category_name(i),
		    json_integer((json_int_t)er.total[i]));
	json_object_set_new(m, "errors_by_category", by);
}

static const struct reporter reporter = { report_status, report_metrics };

void
errors_start(void)
{
	static const char *const lc[] = { "category", NULL };
	struct metric_family	*f;
	int			 i;

	htab_init(&er.pending);
	if (store_query(counts_row, NULL, "SELECT category, n FROM "
	    "error_counts", NULL) == -1)
		log_warnx("errors: cannot read the counters");
	store_batch_hooks(counts_begin, counts_end);
	f = metrics_family("ermd_errors_total", "Errors reported, by "
	    "category.", METRIC_COUNTER, lc);
	for (i = CAT_NONE + 1; i < CAT_COUNT && f != NULL; i++) {
		er.m_total[i] = metrics_series(f, category_name(i));
		metric_add(er.m_total[i], (double)er.total[i]);
	}
	report_register(&reporter);
	if (periodic_start(&er.prune, prune_start,
	    er.set.prune_interval_ms) == -1)
		fatalx("errors: out of memory");
}

void
errors_stop(void)
{
	periodic_stop(&er.prune);
	/* Pending reports are freed by their completions (store_close). */
}
