/*
 * The decision core's home in the daemon: registries, config sections,
 * breaker durability, events and metrics. See decide.h.
 */

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


#include "alerts.h"
#include "clock.h"
#include "config.h"
#include "conn.h"
#include "decide.h"
#include "dispatch.h"
#include "erm_proto.h"
#include "ermd.h"
#include "events.h"
#include "htab.h"
#include "journal.h"
#include "log.h"
#include "metrics.h"
#include "report.h"
#include "store.h"

/*
 * A breaker whose snapshot must be written: by name, because the breaker
 * itself may be evicted before the write.
 */
struct dirty {
	struct hnode	 node;
	char		 name[BREAKER_NAME_MAX + 1];
	int		 state_change;
	int		 gone;		/* evicted: delete the row */
};

/* One write of snapshots, and the replies that wait for it. */
struct flush {
	size_t		 nrows;
	struct {
		char	*name;
		char	*snapshot;	/* NULL: delete */
	}		*rows;
	int		 state_change;
	struct journal_batch *jb;	/* journal records to write first */
	uint64_t	 journal_seq;	/* the snapshots include up to it */
	unsigned	 retire;	/* journal files done with, or 0 */
	uint64_t	 failures;	/* dc.flush_failures when made */
	struct {
		struct ermd_req	*req;
		int		 status;
	}		*waiters;
	size_t		 nwaiters, capwaiters;
};

static struct {
	struct breakers		*breakers;
	struct retry_policies	*policies;
	struct retry_budget	*budget;
	struct retry_rng	 rng;
	struct classify_config	 classify;
	int			 classify_init;
	struct htab		 dirty;
	size_t			 dirty_state;	/* dirty with a state change */
	struct flush		*state_flush;	/* in flight, with a change */
	struct clock_timer	*flush_timer;
	struct clock_timer	*budget_timer;
	uint64_t		 flush_failures;
	uint64_t		 flush_retry_ms;	/* after a failure */
	struct journal		*journal;	/* NULL: snapshots only */
	uint64_t		 journal_retry_at;	/* when broken */
	struct {
		char		**names;	/* still to write */
		size_t		  n, pos;
		unsigned	  retire;	/* journal files it replaces */
		uint64_t	  failures;	/* flush_failures at the start */
		int		  on;
	}			 compact;
} dc;

/*
 * Retry-budget keys idle for a window are forgotten by a timer, a tenth of
 * the table (at least BUDGET_EXPIRE_MIN keys) this often: each key is
 * looked at about once in the default window of 10 s, off the request
 * path.
 */
#define BUDGET_EXPIRE_MS	1000
#define BUDGET_EXPIRE_MIN	1024
/*
 * Window counters of a busy breaker change on every call; they are
 * written at most this often (a state change is written at once).
 */
#define FLUSH_INTERVAL_MS	100
/* Snapshots a compaction of the journal adds to each flush. */
#define COMPACT_BATCH		2000
/*
 * Snapshots a failed flush could not store are tried again after this
 * long, doubling to FLUSH_RETRY_MAX_MS while flushes keep failing (each
 * failure is logged).
 */
#define FLUSH_RETRY_MS		1000
#define FLUSH_RETRY_MAX_MS	60000
/*
 * A journal broken by a failed write (a full disk) is tried again this
 * long after: each failure rewrites every breaker's snapshot, so not
 * often.
 */
#define JOURNAL_RETRY_MS	60000

/* ---- config ------------------------------------------------------------ */

static const char	*breaker_keys[OPT_MAX + 1];
static const char	*retry_keys[OPT_MAX + 1];
static const char *const classify_keys[] = { "rule.N", NULL };
static const char	*strategy_keys[CAT_COUNT + 1];

/* Fill keys with the member names of obj (a new reference it consumes). */
static void
keys_of(json_t *obj, const char **keys, size_t max)
{
	const char	*k;
	json_t		*v;
	size_t		 n = 0;

	json_object_foreach(obj, k, v) {
		if (n + 1 >= max)
			break;
		keys[n++] = strdup(k);
	}
	keys[n] = NULL;
	json_decref(obj);
}

static int
key_known(const char *const *keys, const char *key)
{
	size_t	i;

	for (i = 0; keys[i] != NULL; i++)
		if (strcmp(keys[i], key) == 0)
			return (1);
	return (0);
}

static const char *
section_name(const char *section, const char *prefix)
{
	size_t	l = strlen(prefix);

	if (strncmp(section, prefix, l) == 0 && section[l] == '.')
		return (section + l + 1);
	return (NULL);
}

static int
check_breaker(const char *section, const char *key, const char *value,
    char *err, size_t errsz)
{
	struct breaker_config	 cfg;
	const char		*name = section_name(section, "breaker");

	if (name != NULL && !breaker_name_valid(name)) {
		snprintf(err, errsz, "[%s]: a breaker name is 1-128 bytes of "
		    "A-Z a-z 0-9 . _ : / -", section);
		return (-1);
	}
	if (!key_known(breaker_keys, key))
		return (-1);		/* unknown key: the parser suggests */
	breaker_config_defaults(&cfg);
	return (breaker_config_set(&cfg, NULL, key, value, err, errsz));
}

static int
check_retry(const char *section, const char *key, const char *value,
    char *err, size_t errsz)
{
	struct retry_policy	 p;
	const char		*name = section_name(section, "retry");

	if (name != NULL && !opt_name_valid(name)) {
		snprintf(err, errsz, "[%s]: a policy name is 1-128 bytes of "
		    "A-Z a-z 0-9 . _ : / -", section);
		return (-1);
	}
	if (!key_known(retry_keys, key))
		return (-1);
	retry_policy_defaults(&p);
	return (retry_policy_set(&p, key, value, err, errsz));
}

static int
check_classify(const char *section, const char *key, const char *value,
    char *err, size_t errsz)
{
	struct classify_config	 cfg;
	int			 rc;

	if (strcmp(section, "strategy") == 0 &&
	    category_from_name(key) == CAT_NONE)
		return (-1);
	if (strcmp(section, "classify") == 0 && strncmp(key, "rule.", 5) != 0)
		return (-1);
	classify_config_init(&cfg);
	rc = classify_config_set(&cfg, section, key, value, err, errsz);
	classify_config_free(&cfg);
	return (rc);
}

/* The [breaker] defaults and one section per [breaker.NAME] of cfg. */
static size_t
collect_breakers(const struct config *cfg, struct breaker_config *defaults,
    struct breaker_section **out, const char **firstfile, int *firstline)
{
	struct breaker_section	*secs = NULL, *s;
	size_t			 i, j, n = 0;
	const char		*name;
	char			 err[256];

	breaker_config_defaults(defaults);
	for (i = 0; i < cfg->nentries; i++)
		if (strcmp(cfg->entries[i].section, "breaker") == 0)
			(void)breaker_config_set(defaults, NULL,
			    cfg->entries[i].key, cfg->entries[i].value, err,
			    sizeof(err));
	for (i = 0; i < cfg->nentries; i++) {
		if ((name = section_name(cfg->entries[i].section,
		    "breaker")) == NULL)
			continue;
		for (j = 0; j < n; j++)
			if (strcmp(secs[j].name, name) == 0)
				break;
		if (j == n) {
			s = reallocarray(secs, n + 1, sizeof(*secs));
			if (s == NULL)
				break;
			secs = s;
			memset(&secs[n], 0, sizeof(secs[n]));
			secs[n].name = name;
			secs[n].cfg = *defaults;
			if (firstfile != NULL) {
				firstfile[n] = cfg->entries[i].file;
				firstline[n] = cfg->entries[i].line;
			}
			n++;
		}
		(void)breaker_config_set(&secs[j].cfg, &secs[j].mask,
		    cfg->entries[i].key, cfg->entries[i].value, err,
		    sizeof(err));
	}
	*out = secs;
	return (n);
}

/* Checks across keys: a section's combination must make sense. */
static void
validate(struct config *cfg)
{
	struct breaker_config	 defaults;
	struct breaker_section	*secs;
	const char		**files;
	int			 *lines;
	size_t			  i, n;
	char			  err[256];

	/* At most one section per entry. */
	files = calloc(cfg->nentries + 1, sizeof(*files));
	lines = calloc(cfg->nentries + 1, sizeof(*lines));
	if (files == NULL || lines == NULL) {
		free(files);
		free(lines);
		config_add_error(cfg, "(config)", 0, "out of memory");
		return;
	}
	n = collect_breakers(cfg, &defaults, &secs, files, lines);
	if (breaker_config_check(&defaults, err, sizeof(err)) == -1)
		config_add_error(cfg, cfg->nentries ? cfg->entries[0].file :
		    "(defaults)", 0, "[breaker]: %s", err);
	for (i = 0; i < n; i++)
		if (breaker_config_check(&secs[i].cfg, err, sizeof(err)) == -1)
			config_add_error(cfg, files[i], lines[i],
			    "[breaker.%s]: %s", secs[i].name, err);
	free(secs);
	free(files);
	free(lines);
}

static void
apply(const struct config *cfg)
{
	struct breaker_config	 defaults;
	struct breaker_section	*secs;
	struct retry_policies	*rp;
	struct classify_config	 cc;
	const char		*name;
	size_t			 i, n;
	char			 err[256];

	n = collect_breakers(cfg, &defaults, &secs, NULL, NULL);
	breakers_set_limits(dc.breakers, (size_t)cfg->max_breakers,
	    BREAKER_MAX_PERMITS);
	if (breakers_apply_config(dc.breakers, &defaults, secs, n, err,
	    sizeof(err)) == -1)
		log_warnx("breakers: config not applied: %s", err);
	free(secs);

	if ((rp = retry_policies_new()) != NULL) {
		for (i = 0; i < cfg->nentries; i++) {
			if (strcmp(cfg->entries[i].section, "retry") == 0)
				name = NULL;
			else if ((name = section_name(cfg->entries[i].section,
			    "retry")) == NULL)
				continue;
			(void)retry_policies_set(rp, name, cfg->entries[i].key,
			    cfg->entries[i].value, err, sizeof(err));
		}
		retry_policies_free(dc.policies);
		dc.policies = rp;
		retry_budget_reconfigured(dc.budget);
	}

	classify_config_init(&cc);
	for (i = 0; i < cfg->nentries; i++)
		if (strcmp(cfg->entries[i].section, "classify") == 0 ||
		    strcmp(cfg->entries[i].section, "strategy") == 0)
			(void)classify_config_set(&cc, cfg->entries[i].section,
			    cfg->entries[i].key, cfg->entries[i].value, err,
			    sizeof(err));
	if (dc.classify_init)
		classify_config_free(&dc.classify);
	dc.classify = cc;
	dc.classify_init = 1;
}

static const struct config_kind breaker_kind = { "breaker", 1, check_breaker,
    breaker_keys, NULL };
static const struct config_kind retry_kind = { "retry", 1, check_retry,
    retry_keys, NULL };
static const struct config_kind classify_kind = { "classify", 0,
    check_classify, classify_keys, NULL };
static const struct config_kind strategy_kind = { "strategy", 0,
    check_classify, strategy_keys, apply };

void
decide_register(void)
{
	struct breaker_config	bc;
	struct retry_policy	rp;
	int			c;

	breaker_config_defaults(&bc);
	keys_of(breaker_config_to_json(&bc), breaker_keys,
	    sizeof(breaker_keys) / sizeof(breaker_keys[0]));
	retry_policy_defaults(&rp);
	keys_of(retry_policy_to_json(&rp), retry_keys,
	    sizeof(retry_keys) / sizeof(retry_keys[0]));
	for (c = 1; c < CAT_COUNT; c++)
		strategy_keys[c - 1] = category_name(c);
	config_register_kind(&breaker_kind);
	config_register_kind(&retry_kind);
	config_register_kind(&classify_kind);
	/* Its apply hook installs all four kinds' sections at once. */
	config_register_kind(&strategy_kind);
	config_register_validator(validate);
}

/* ---- accessors --------------------------------------------------------- */

struct breakers *
decide_breakers(void)
{
	return (dc.breakers);
}

struct retry_budget *
decide_budget(void)
{
	return (dc.budget);
}

struct retry_rng *
decide_rng(void)
{
	return (&dc.rng);
}

const struct retry_policy *
decide_policy(const char *name)
{
	return (retry_policies_get(dc.policies, name));
}

void
decide_classify(const struct erm_errobj *eo, struct classify_result *res)
{
	const struct retry_policy	*p = decide_policy(NULL);

	classify(&dc.classify, eo, p != NULL ? p->retry_on : 0, res);
}

/*
 * The policy a request names: a string names a configured policy, an
 * object overrides the [retry] defaults. *out is filled; *name is the
 * policy's name for the budget key ("default" for the defaults or an
 * object).
 */
int
decide_request_policy(struct ermd_req *req, const char *member,
    struct retry_policy *out, const char **name)
{
	struct param_err		 e;
	const struct retry_policy	*p;
	json_t				*v = json_object_get(req->params,
					    member);

	*name = "default";
	if (v == NULL || json_is_object(v)) {
		if ((p = decide_policy(NULL)) == NULL)
			return (req_fail(req, ERM_INTERNAL_ERROR, NULL,
			    "no default retry policy"));
		if (v == NULL) {
			*out = *p;
			return (0);
		}
		if (retry_policy_from_json(p, v, member, out, &e) == -1)
			return (req_param_fail(req, &e));
		return (0);
	}
	if (!json_is_string(v)) {
		param_fail(&e, member, "must be a policy name or object");
		return (req_param_fail(req, &e));
	}
	*name = json_string_value(v);
	/* "default" names the [retry] defaults, as in retry.policy. */
	if ((p = decide_policy(strcmp(*name, "default") == 0 ? NULL :
	    *name)) == NULL)
		return (req_fail(req, ERM_NOT_FOUND, json_pack("{s:s, s:s}",
		    "kind", "policy", "name", *name), "no retry policy named "
		    "%s", *name));
	*out = *p;
	return (0);
}

/* ---- durability -------------------------------------------------------- */

/*
 * Breakers change on almost every call (window counters), but only a state
 * change must be on disk before the reply that shows it. Changed breakers
 * are marked dirty by name; a flush writes the snapshots of all of them in
 * one store job, so a burst of calls costs one write. A reply waits only
 * when a state change is among the unwritten ones (or still being
 * written).
 *
 * An outcome that only moved a window (the common call) is not a reason
 * to rewrite a snapshot: it is appended to the journal (journal.c), a few
 * bytes of sequential writing, where a snapshot upsert would dirty a page
 * of the breakers table per call once there are many breakers. Each
 * snapshot row keeps the journal seq it includes; at start-up the journal
 * records after it are put back into the window (a breaker with records
 * and no row is made again). The journal's file is mapped, so a record is
 * in the page cache before its reply: a kill -9 loses no outcome. The
 * journal is synced and the snapshots written within FLUSH_INTERVAL_MS,
 * so a power cut can lose the outcomes of the last moment, never a state.
 *
 * Past [store] breaker_journal_bytes the journal starts a new file and a
 * compaction rewrites the snapshot of every breaker with outcomes
 * journalled since its last one (breaker_journaled), COMPACT_BATCH per
 * flush; once the flush with the last of them has committed (and none
 * failed meanwhile) the older journal files are removed. A flush that
 * fails marks its breakers journalled again.
 */
static void
arm_flush(void)
{
	if (dc.flush_timer != NULL && !clock_timer_pending(dc.flush_timer))
		clock_timer_after(dc.flush_timer, FLUSH_INTERVAL_MS);
}

static void
mark_dirty(const char *name, int state_change, int gone)
{
	struct hnode	*h;
	struct dirty	*d;
	size_t		 len = strlen(name);

	if ((h = htab_find(&dc.dirty, name, len)) != NULL)
		d = HTAB_ENTRY(h, struct dirty, node);
	else {
		if ((d = calloc(1, sizeof(*d))) == NULL) {
			log_warnx("breakers: out of memory marking %s", name);
			return;
		}
		memcpy(d->name, name, len + 1);
		if (htab_insert(&dc.dirty, &d->node, d->name, len) == -1) {
			free(d);
			return;
		}
	}
	if (state_change && !d->state_change) {
		d->state_change = 1;
		dc.dirty_state++;
	}
	d->gone = gone;
	arm_flush();
}

static int
flush_run(struct store_tx *tx, void *arg)
{
	struct flush	*f = arg;
	int64_t		 now = (int64_t)clock_now_ms();
	size_t		 i;

	/* The journal first: a reply waiting for this job waits for it. */
	if (f->jb != NULL)
		(void)journal_batch_write(f->jb);
	for (i = 0; i < f->nrows; i++) {
		if (f->rows[i].snapshot == NULL) {
			if (store_tx_exec(tx, "DELETE FROM breakers WHERE "
			    "name = ?", "t", f->rows[i].name) == -1)
				return (-1);
		} else if (store_tx_exec(tx, "INSERT INTO breakers (name, "
		    "snapshot, updated_at, journal_seq) VALUES (?, ?, ?, ?) "
		    "ON CONFLICT (name) DO UPDATE SET snapshot = "
		    "excluded.snapshot, updated_at = excluded.updated_at, "
		    "journal_seq = excluded.journal_seq", "ttii",
		    f->rows[i].name, f->rows[i].snapshot, now,
		    (int64_t)f->journal_seq) == -1)
			return (-1);
	}
	return (0);
}

static void
flush_free(struct flush *f)
{
	size_t	i;

	if (f->jb != NULL)
		journal_batch_done(f->jb);	/* not written: breaks it */
	for (i = 0; i < f->nrows; i++) {
		free(f->rows[i].name);
		free(f->rows[i].snapshot);
	}
	free(f->rows);
	free(f->waiters);
	free(f);
}

static void
flush_done(void *arg, const struct store_result *res)
{
	struct flush	*f = arg;
	struct ermd_req	*req;
	struct breaker	*b;
	size_t		 i;

	if (dc.state_flush == f)
		dc.state_flush = NULL;
	if (f->jb != NULL) {
		journal_batch_done(f->jb);
		f->jb = NULL;
	}
	if (!res->ok) {
		dc.flush_retry_ms = dc.flush_retry_ms == 0 ? FLUSH_RETRY_MS :
		    dc.flush_retry_ms * 2;
		if (dc.flush_retry_ms > FLUSH_RETRY_MAX_MS)
			dc.flush_retry_ms = FLUSH_RETRY_MAX_MS;
		log_warnx("breakers: cannot store snapshots: %s; trying again "
		    "in %llu ms", res->msg, (unsigned long long)dc.flush_retry_ms);
		dc.flush_failures++;
		/*
		 * Their journal records are still the only copy, and their
		 * rows go again (a newer change already queued stays as it
		 * is): later, not at once, so that a full disk is not
		 * hammered; replies do not wait for these.
		 */
		for (i = 0; i < f->nrows; i++) {
			if ((b = breaker_find(dc.breakers, f->rows[i].name)) !=
			    NULL)
				breaker_set_journaled(b, 1);
			if (htab_find(&dc.dirty, f->rows[i].name,
			    strlen(f->rows[i].name)) == NULL)
				mark_dirty(f->rows[i].name, 0, 0);
		}
		if (dc.flush_timer != NULL)
			clock_timer_after(dc.flush_timer, dc.flush_retry_ms);
	} else {
		dc.flush_retry_ms = 0;
		if (f->retire != 0 && dc.journal != NULL &&
		    f->failures == dc.flush_failures) {
			journal_remove(dc.journal, f->retire);
			arm_flush();	/* the removal goes with a batch */
		}
	}
	for (i = 0; i < f->nwaiters; i++) {
		req = f->waiters[i].req;
		if (!res->ok) {
			json_decref(req->result);
			req->result = NULL;
			req_fail(req, ERM_IO_ERROR, json_pack("{s:s, s:s}",
			    "errno", res->err == ENOSPC ? "ENOSPC" : "EIO",
			    "path", config_store_path(ermd.cfg)),
			    "the breaker's new state could not be stored: %s",
			    res->msg);
			req_finish(req, REQ_ERROR);
		} else
			req_finish(req, f->waiters[i].status);
	}
	flush_free(f);
}

static void
compact_end(void)
{
	while (dc.compact.pos < dc.compact.n)
		free(dc.compact.names[dc.compact.pos++]);
	free(dc.compact.names);
	memset(&dc.compact, 0, sizeof(dc.compact));
}

static void
collect_name(void *arg, const struct breaker *b)
{
	char	*name;

	(void)arg;
	if (!breaker_journaled(b))
		return;		/* its snapshot has every record it had */
	if ((name = strdup(breaker_name(b))) == NULL)
		return;		/* rewritten at the next compaction */
	dc.compact.names[dc.compact.n++] = name;
}

/* Names in SQLite's BINARY order (memcmp; names hold no NUL). */
static int
cmp_name(const void *a, const void *b)
{
	return (strcmp(*(char *const *)a, *(char *const *)b));
}

/*
 * Start a compaction when the journal's file is full: the snapshot of
 * every breaker with outcomes journalled since its last one is rewritten
 * (those may have records in the files it replaces; the others' records
 * there are in their snapshots already), COMPACT_BATCH per flush so that
 * no loop pass serialises them all. The flush after the last of them
 * retires the old files, once it has committed (flush_done), and only if
 * no flush failed meanwhile. Then queue the next batch.
 */
static void
compact_step(void)
{
	size_t	i, total;

	if (!dc.compact.on) {
		if (dc.journal == NULL || journal_broken(dc.journal) ||
		    journal_bytes(dc.journal) <
		    (uint64_t)ermd.cfg->breaker_journal_bytes)
			return;
		total = breakers_count(dc.breakers, NULL);
		if ((dc.compact.names = calloc(total + 1,
		    sizeof(char *))) == NULL)
			return;		/* try again at the next flush */
		if ((dc.compact.retire = journal_rotate(dc.journal)) == 0) {
			compact_end();
			return;
		}
		dc.compact.on = 1;
		dc.compact.failures = dc.flush_failures;
		breakers_foreach(dc.breakers, collect_name, NULL);
		/*
		 * In the table's key order: each batch then rewrites rows
		 * that sit together, an eighth of the pages the same rows
		 * in hash order touch (measured at 100,000 breakers: 90 MB
		 * written for a compaction instead of 727).
		 */
		qsort(dc.compact.names, dc.compact.n, sizeof(char *),
		    cmp_name);
		log_info("breakers: journal file %u full, rewriting %zu "
		    "snapshots", dc.compact.retire, dc.compact.n);
	}
	for (i = 0; i < COMPACT_BATCH && dc.compact.pos < dc.compact.n;
	    i++) {
		mark_dirty(dc.compact.names[dc.compact.pos], 0, 0);
		free(dc.compact.names[dc.compact.pos++]);
	}
}

/* Serialise every dirty breaker into a new store job; NULL when none. */
static struct flush *
flush_now(void)
{
	struct flush		*f;
	struct hnode		*h, *next;
	struct dirty		*d;
	struct breaker		*b;
	struct journal_batch	*jb;
	json_t			*snap;
	size_t			 bucket = 0, n = 0;

	/* A broken journal is tried again now and then (journal_failed). */
	if (dc.journal != NULL && journal_broken(dc.journal) &&
	    clock_now_ms() >= dc.journal_retry_at)
		(void)journal_revive(dc.journal);
	jb = dc.journal != NULL ? journal_take(dc.journal) : NULL;
	if (dc.dirty.n == 0 && jb == NULL)
		return (NULL);
	if ((f = calloc(1, sizeof(*f))) == NULL ||
	    (f->rows = calloc(dc.dirty.n + 1, sizeof(*f->rows))) == NULL) {
		free(f);
		if (jb != NULL)
			journal_batch_done(jb);
		log_warnx("breakers: out of memory writing snapshots");
		return (NULL);
	}
	f->jb = jb;
	for (h = htab_next(&dc.dirty, NULL, &bucket); h != NULL; h = next) {
		next = htab_next(&dc.dirty, h, &bucket);
		d = HTAB_ENTRY(h, struct dirty, node);
		f->rows[n].name = strdup(d->name);
		b = d->gone ? NULL : breaker_find(dc.breakers, d->name);
		if (b != NULL && (snap = breaker_snapshot(b)) != NULL) {
			f->rows[n].snapshot = erm_json_text(snap, 1 << 24);
			json_decref(snap);
			/* Every record journalled so far is in it now. */
			breaker_set_journaled(b, 0);
		}
		f->state_change |= d->state_change;
		n++;
		htab_remove(&dc.dirty, h);
		free(d);
	}
	f->nrows = n;
	dc.dirty_state = 0;
	if (dc.journal != NULL)
		f->journal_seq = journal_seq(dc.journal);
	if (dc.compact.on && dc.compact.pos == dc.compact.n) {
		f->retire = dc.compact.retire;
		f->failures = dc.compact.failures;
		compact_end();
	}
	if (store_submit(flush_run, flush_done, f) == -1) {
		flush_free(f);
		return (NULL);
	}
	if (f->state_change)
		dc.state_flush = f;
	return (f);
}

void
decide_flush(void)
{
	(void)flush_now();
}

static void
budget_timer_cb(void *arg)
{
	size_t	n = retry_budget_nkeys(dc.budget) / 10;

	(void)arg;
	(void)retry_budget_expire(dc.budget, n > BUDGET_EXPIRE_MIN ? n :
	    BUDGET_EXPIRE_MIN);
	clock_timer_after(dc.budget_timer, BUDGET_EXPIRE_MS);
}

static void
flush_timer_cb(void *arg)
{
	(void)arg;
	compact_step();
	(void)flush_now();
	if (dc.compact.on)
		arm_flush();
}

static int
wait_for(struct flush *f, struct ermd_req *req, int status)
{
	void	*p;
	size_t	 cap;

	if (f->nwaiters == f->capwaiters) {
		cap = f->capwaiters ? f->capwaiters * 2 : 8;
		if ((p = reallocarray(f->waiters, cap,
		    sizeof(*f->waiters))) == NULL)
			return (status);	/* reply now rather than never */
		f->waiters = p;
		f->capwaiters = cap;
	}
	f->waiters[f->nwaiters].req = req;
	f->waiters[f->nwaiters].status = status;
	f->nwaiters++;
	return (REQ_ASYNC);
}

int
decide_reply(struct ermd_req *req, int status)
{
	struct flush	*f;

	if (dc.dirty_state > 0 && (f = flush_now()) != NULL)
		return (wait_for(f, req, status));
	if (dc.state_flush != NULL)
		return (wait_for(dc.state_flush, req, status));
	return (status);
}

/* ---- hooks: events, logs, persistence ---------------------------------- */

static void
on_transition(void *arg, const struct breaker *b, enum breaker_state from,
    enum breaker_state to, const char *reason)
{
	(void)arg;
	log_info("breaker %s: %s -> %s (%s)", breaker_name(b),
	    breaker_state_name(from), breaker_state_name(to), reason);
	mark_dirty(breaker_name(b), 1, 0);
	events_emit(EV_BREAKER_STATE, json_pack("{s:s, s:s, s:s, s:s}",
	    "name", breaker_name(b), "from", breaker_state_name(from), "to",
	    breaker_state_name(to), "reason", reason));
	if (to == BRK_OPEN)
		alerts_breaker_opened(breaker_name(b), reason);	/* issue 4 */
}

static void
on_change(void *arg, const struct breaker *b)
{
	(void)arg;
	mark_dirty(breaker_name(b), 0, 0);
}

static void
on_outcome(void *arg, const struct breaker *b, int failure, int slow,
    uint64_t at)
{
	const char	*name = breaker_name(b);

	(void)arg;
	if (dc.journal == NULL || journal_append(dc.journal, name,
	    strlen(name), failure, slow, at) == 0)
		mark_dirty(name, 0, 0);		/* the snapshot keeps it */
	else
		arm_flush();
}

/*
 * The eviction is logged too: until the row's delete is stored, the row
 * and the records of the breaker's life are still there, and a replay
 * must not hand them to a breaker of the same name made since.
 */
static void
on_evict(void *arg, const struct breaker *b)
{
	const char	*name = breaker_name(b);

	(void)arg;
	log_debug("breaker %s: evicted after idling", name);
	if (dc.journal != NULL)
		(void)journal_append_evicted(dc.journal, name, strlen(name),
		    clock_now_ms());
	mark_dirty(name, 0, 1);
}

static const struct breaker_hooks hooks = {
	on_transition, on_change, on_evict, on_outcome, NULL
};

static void	mark_each(void *, const struct breaker *);

/* At start-up: the journal seq each restored snapshot includes. */
struct restored {
	struct htab	 seqs;		/* of struct restored_seq */
	uint64_t	 max_seq;
	size_t		 n, replayed;
};

struct restored_seq {
	struct hnode	 node;
	uint64_t	 seq;
	int		 evicted;	/* since its snapshot */
	char		 name[];
};

static struct restored_seq *
restored_add(struct restored *r, const char *name, size_t len, uint64_t seq)
{
	struct restored_seq	*rs;

	if ((rs = calloc(1, sizeof(*rs) + len + 1)) == NULL)
		fatalx("breakers: out of memory restoring");
	rs->seq = seq;
	memcpy(rs->name, name, len);
	if (htab_insert(&r->seqs, &rs->node, rs->name, len) == -1)
		fatalx("breakers: out of memory restoring");
	return (rs);
}

static int
load_row(const struct store_row *row, void *arg)
{
	struct restored		*r = arg;
	struct restored_seq	*rs;
	const char		*name = store_row_text(row, 0);
	json_t			*snap;
	char			 err[256];

	snap = erm_json_parse_text(store_row_text(row, 1));
	if (snap == NULL || breaker_restore(dc.breakers, snap, err,
	    sizeof(err)) == -1) {
		log_warnx("breaker %s: stored state unreadable, starting "
		    "afresh: %s", name, snap == NULL ? "not JSON" : err);
		json_decref(snap);
		return (0);
	}
	json_decref(snap);
	r->n++;
	rs = restored_add(r, name, strlen(name),
	    (uint64_t)store_row_int(row, 2));
	if (rs->seq > r->max_seq)
		r->max_seq = rs->seq;
	return (0);
}

/*
 * A journal record newer than its breaker's snapshot goes back in. An
 * eviction ends what the snapshot and the records before it gave the
 * breaker; records after it make the breaker again.
 */
static void
replay(const struct journal_rec *rec, void *arg)
{
	struct restored		*r = arg;
	struct restored_seq	*rs = NULL;
	struct hnode		*h;

	if ((h = htab_find(&r->seqs, rec->name, rec->namelen)) != NULL) {
		rs = HTAB_ENTRY(h, struct restored_seq, node);
		if (rec->seq <= rs->seq)
			return;		/* in the snapshot already */
	}
	if (rec->evicted) {
		breaker_replay_evicted(dc.breakers, rec->name);
		if (rs == NULL)
			rs = restored_add(r, rec->name, rec->namelen, 0);
		rs->evicted = 1;
		return;
	}
	/*
	 * No snapshot, or an eviction since: a breaker made since, made
	 * again here. (Records of one evicted while the journal was broken
	 * make it again too; the sweep after the replay evicts it again.)
	 */
	if (breaker_replay_outcome(dc.breakers, rec->name, rec->failure,
	    rec->slow, rec->at, rs == NULL || rs->evicted) == 0)
		r->replayed++;
}

/* The rows of breakers evicted and not made again go (flush_now). */
static void
restored_evictions(struct restored *r)
{
	struct hnode		*h;
	struct restored_seq	*rs;
	size_t			 bucket = 0;

	for (h = htab_next(&r->seqs, NULL, &bucket); h != NULL;
	    h = htab_next(&r->seqs, h, &bucket)) {
		rs = HTAB_ENTRY(h, struct restored_seq, node);
		if (rs->evicted && breaker_find(dc.breakers, rs->name) == NULL)
			mark_dirty(rs->name, 0, 1);
	}
}

static void
restored_free(struct restored *r)
{
	struct hnode	*h, *next;
	size_t		 bucket = 0;

	for (h = htab_next(&r->seqs, NULL, &bucket); h != NULL; h = next) {
		next = htab_next(&r->seqs, h, &bucket);
		htab_remove(&r->seqs, h);
		free(HTAB_ENTRY(h, struct restored_seq, node));
	}
	htab_free(&r->seqs);
}

static void
journal_failed(const char *msg, void *arg)
{
	(void)arg;
	log_warnx("breakers: journal: %s; window counters go into the "
	    "snapshots until it is written again (tried every %d s)", msg,
	    JOURNAL_RETRY_MS / 1000);
	dc.journal_retry_at = clock_now_ms() + JOURNAL_RETRY_MS;
	/* The outcomes of the lost write are in memory: store them. */
	breakers_foreach(dc.breakers, mark_each, NULL);
}

static void
mark_each(void *arg, const struct breaker *b)
{
	(void)arg;
	mark_dirty(breaker_name(b), 0, 0);
}

static void
conn_closed(struct conn *c)
{
	breaker_release_owner(dc.breakers, c->id);
}

/* ---- metrics and reports ----------------------------------------------- */

static void
emit_state(void *arg, const struct breaker *b)
{
	metric_emit(arg, (double)breaker_state(b), breaker_name(b));
}

static void
collect_state(struct metric_emitter *e)
{
	breakers_foreach(dc.breakers, emit_state, e);
}

static void
emit_transitions(void *arg, const struct breaker *b)
{
	int	s;

	for (s = 0; s < BRK_NSTATES; s++)
		metric_emit(arg, (double)breaker_transitions(b, s),
		    breaker_name(b), breaker_state_name(s));
}

static void
collect_transitions(struct metric_emitter *e)
{
	breakers_foreach(dc.breakers, emit_transitions, e);
}

static void
emit_not_permitted(void *arg, const struct breaker *b)
{
	metric_emit(arg, (double)breaker_not_permitted(b), breaker_name(b));
}

static void
collect_not_permitted(struct metric_emitter *e)
{
	breakers_foreach(dc.breakers, emit_not_permitted, e);
}

static void
collect_retries(struct metric_emitter *e)
{
	const struct retry_counters	*rc = retry_budget_counters(dc.budget);
	int				 r;

	metric_emit(e, (double)rc->granted, "retry");
	for (r = RETRY_EXHAUSTED; r < RETRY_NREASONS; r++)
		metric_emit(e, (double)rc->denied[r], retry_reason_name(r));
}

static void
report_status(json_t *status)
{
	size_t	by[BRK_NSTATES], total;

	total = breakers_count(dc.breakers, by);
	json_object_set_new(status, "breakers", json_pack("{s:I, s:I}",
	    "total", (json_int_t)total, "open",
	    (json_int_t)(by[BRK_OPEN] + by[BRK_FORCED_OPEN])));
}

static void
add_state(void *arg, const struct breaker *b)
{
	json_object_set_new(arg, breaker_name(b),
	    json_string(breaker_state_name(breaker_state(b))));
}

/* The most severe state: open > half_open > closed (forced_open counts as
 * open; disabled and metrics_only never refuse, so they count as closed). */
static void
report_metrics(json_t *m)
{
	const struct retry_counters	*rc = retry_budget_counters(dc.budget);
	json_t				*all = json_object();
	size_t				 by[BRK_NSTATES];
	uint64_t			 denied = 0;
	const char			*worst = "closed";
	int				 r;

	breakers_foreach(dc.breakers, add_state, all);
	json_object_set_new(m, "circuit_breakers", all);
	breakers_count(dc.breakers, by);
	if (by[BRK_OPEN] + by[BRK_FORCED_OPEN] > 0)
		worst = "open";
	else if (by[BRK_HALF_OPEN] > 0)
		worst = "half_open";
	json_object_set_new(m, "circuit_breaker_state", json_string(worst));
	for (r = RETRY_EXHAUSTED; r < RETRY_NREASONS; r++)
		denied += rc->denied[r];
	json_object_set_new(m, "retries", json_pack("{s:I, s:I}", "granted",
	    (json_int_t)rc->granted, "denied", (json_int_t)denied));
}

static const struct reporter reporter = { report_status, report_metrics };

void
decide_start(void)
{
	static const char *const lb[] = { "breaker", NULL };
	static const char *const lbt[] = { "breaker", "to", NULL };
	static const char *const ld[] = { "decision", NULL };
	struct restored	 r;
	struct flush	*f;
	char		 prefix[PATH_MAX], err[512];
	unsigned	 old = 0;

	memset(&r, 0, sizeof(r));
	htab_init(&r.seqs);
	htab_init(&dc.dirty);
	retry_rng_seed_random(&dc.rng);
	if ((dc.breakers = breakers_new(NULL)) == NULL ||
	    (dc.budget = retry_budget_new(0)) == NULL ||
	    (dc.policies = retry_policies_new()) == NULL)
		fatalx("decide: out of memory");
	classify_config_init(&dc.classify);
	dc.classify_init = 1;
	apply(ermd.cfg);
	if (store_query(load_row, &r, "SELECT name, snapshot, journal_seq "
	    "FROM breakers", NULL) == -1)
		fatalx("breakers: cannot read the stored breakers");
	if ((size_t)snprintf(prefix, sizeof(prefix), "%s-breakers",
	    config_store_path(ermd.cfg)) >= sizeof(prefix))
		fatalx("breakers: the journal's path is too long");
	if ((dc.journal = journal_open(prefix, r.max_seq, replay,
	    journal_failed, &r, &old, err, sizeof(err))) == NULL)
		fatalx("breakers: journal: %s", err);
	if (journal_broken(dc.journal)) {
		log_warnx("breakers: journal: %s; window counters go into "
		    "the snapshots until it is written again (tried every "
		    "%d s)", err, JOURNAL_RETRY_MS / 1000);
		dc.journal_retry_at = clock_now_ms() + JOURNAL_RETRY_MS;
	}
	if (r.n > 0)
		log_info("breakers: %zu restored, %zu journalled outcomes "
		    "replayed", r.n, r.replayed);
	restored_evictions(&r);
	restored_free(&r);
	breakers_set_hooks(dc.breakers, &hooks);
	/* Breakers idle past idle_evict_ms go now (with their rows). */
	breakers_sweep(dc.breakers);
	/* What restoring and replaying changed (an open timeout that ran
	 * out while the daemon was down, window counters) is stored too;
	 * then the journal files read are no longer needed. */
	breakers_foreach(dc.breakers, mark_each, NULL);
	if ((dc.flush_timer = clock_timer_new(flush_timer_cb, NULL)) == NULL ||
	    (dc.budget_timer = clock_timer_new(budget_timer_cb, NULL)) == NULL)
		fatalx("decide: out of memory");
	clock_timer_after(dc.budget_timer, BUDGET_EXPIRE_MS);
	if ((f = flush_now()) != NULL) {
		f->retire = old;
		f->failures = dc.flush_failures;
	} else if (old != 0)
		journal_remove(dc.journal, old);
	conn_on_close(conn_closed);
	report_register(&reporter);
	metrics_collector("ermd_breaker_state", "Breaker state: 0 closed, "
	    "1 half_open, 2 open, 3 forced_open, 4 disabled, 5 metrics_only.",
	    METRIC_GAUGE, lb, collect_state);
	metrics_collector("ermd_breaker_transitions_total", "Breaker state "
	    "changes, by the state entered.", METRIC_COUNTER, lbt,
	    collect_transitions);
	metrics_collector("ermd_breaker_not_permitted_total", "Calls a "
	    "breaker refused.", METRIC_COUNTER, lb, collect_not_permitted);
	metrics_collector("ermd_retry_decisions_total", "Retry decisions: "
	    "granted retries and refusals by reason.", METRIC_COUNTER, ld,
	    collect_retries);
}

void
decide_stop(void)
{
	(void)flush_now();	/* store_close writes it before exiting */
	compact_end();
	journal_close(dc.journal);
	dc.journal = NULL;
	clock_timer_free(dc.flush_timer);
	dc.flush_timer = NULL;
	clock_timer_free(dc.budget_timer);
	dc.budget_timer = NULL;
}
