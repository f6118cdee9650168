/* SQLite store with a group-committing writer thread; see store.h. */

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <sqlite3.h>

#include "config.h"
#include "log.h"
#include "schema.h"
#include "store.h"
#include "worker.h"

struct job {
	struct job		*next;
	store_job_fn		 fn;
	store_done_fn		 done;
	void			*arg;
	struct store_result	 res;
};

struct store_tx {
	sqlite3			*db;
	struct job		*job;
	int64_t			 changes;
};

struct store_row {
	sqlite3_stmt		*st;
};

/* A read on a worker thread (store_read_submit). */
struct store_rd {
	sqlite3			*db;
};

struct bg_read {
	store_read_fn		 fn;
	store_read_done_fn	 done;
	void			*arg;
	int			 ok;
};

/*
 * The background read connection: opened on first use by a worker, used
 * by one worker at a time (bg_mu), closed by store_close after the worker
 * pool has stopped.
 */
static struct {
	pthread_mutex_t		 mu;
	sqlite3			*db;
	char			*path;
} bg = { PTHREAD_MUTEX_INITIALIZER, NULL, NULL };

static struct {
	sqlite3			*wdb;		/* writer thread only */
	sqlite3			*rdb;		/* loop thread only */
	pthread_t		 thread;
	int			 running;
	pthread_mutex_t		 mu;
	pthread_cond_t		 cv;
	struct job		*queue, **queue_tail;	/* under mu */
	struct job		*done, **done_tail;	/* under mu */
	int			 stopping;		/* under mu */
	int			 fatal;			/* under mu; sticky */
	int			 durability;		/* under mu */
	int			 applied_durability;	/* writer thread */
	int			 pipe[2];
	struct event		*ev;
	struct store_stats	 stats;			/* under mu */
	void			(*batch_begin)(void);	/* under mu */
	int			(*batch_end)(struct store_tx *); /* under mu */
	void			(*on_fatal)(void);
} st = { .pipe = { -1, -1 } };

/* The hooks a batch runs with, read under mu when it is taken. */
struct batch_hooks {
	void	(*begin)(void);
	int	(*end)(struct store_tx *);
};

static int
sqlite_errno(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_FULL:
		return (ENOSPC);
	case SQLITE_READONLY:
		return (EROFS);
	case SQLITE_NOMEM:
		return (ENOMEM);
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return (EBUSY);
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
		return (EBADMSG);
	case SQLITE_CONSTRAINT:
		return (EEXIST);
	case SQLITE_CANTOPEN:
		return (ENOENT);
	default:
		return (EIO);
	}
}

static int
set_fail(struct store_result *r, int err, const char *msg)
{
	r->ok = 0;
	r->err = err;
	snprintf(r->msg, sizeof(r->msg), "%s", msg);
	return (-1);
}

/*
 * Bind fmt's parameters; -1 on a bad format letter or a bind error.
 * Strings and blobs are bound SQLITE_STATIC, without a copy: the caller's
 * values outlive the statement's run, and release() clears the bindings
 * before anything else can step it.
 */
static int
bind_args(sqlite3_stmt *s, const char *fmt, va_list ap)
{
	const void	*blob;
	size_t		 len;
	int		 i, rc = SQLITE_OK;

	for (i = 0; fmt != NULL && fmt[i] != '\0' && rc == SQLITE_OK; i++) {
		switch (fmt[i]) {
		case 'i':
			rc = sqlite3_bind_int64(s, i + 1, va_arg(ap, int64_t));
			break;
		case 'd':
			rc = sqlite3_bind_double(s, i + 1, va_arg(ap, double));
			break;
		case 't':
			rc = sqlite3_bind_text(s, i + 1, va_arg(ap,
			    const char *), -1, SQLITE_STATIC);
			break;
		case 'b':
			blob = va_arg(ap, const void *);
			len = va_arg(ap, size_t);
			rc = sqlite3_bind_blob64(s, i + 1, blob, len,
			    SQLITE_STATIC);
			break;
		case 'n':
			rc = sqlite3_bind_null(s, i + 1);
			break;
		default:
			return (-1);
		}
	}
	return (rc == SQLITE_OK ? 0 : -1);
}

/*
 * Prepared statements, kept per connection. Compiling a statement cost more
 * than running it on the hot paths (a breaker snapshot's upsert, the
 * transaction's SAVEPOINT and COMMIT), so each connection keeps the last
 * STMT_CACHE it ran. Callers pass SQL text that is almost always a string
 * literal: the pointer finds the entry and the text confirms it. The writer
 * connection's cache is used by the writer thread only (and by start-up
 * before it runs), the reader's by the loop thread only.
 */
#define STMT_CACHE	64

struct stmt_cache {
	struct {
		const char	*sql;
		sqlite3_stmt	*st;
		int		 busy;	/* stepping: a nested use prepares anew */
	}		 e[STMT_CACHE];
	unsigned	 next;
};

static struct stmt_cache	wcache, rcache;

static struct stmt_cache *
cache_of(sqlite3 *db)
{
	if (db == st.wdb)
		return (&wcache);
	if (db == st.rdb)
		return (&rcache);
	return (NULL);
}

static void
cache_clear(struct stmt_cache *c)
{
	unsigned	i;

	for (i = 0; i < STMT_CACHE; i++)
		sqlite3_finalize(c->e[i].st);
	memset(c, 0, sizeof(*c));
}

/* A statement for sql, ready to bind; *slot is its cache entry or -1. */
static int
prepare(sqlite3 *db, const char *sql, sqlite3_stmt **out, int *slot)
{
	struct stmt_cache	*c = cache_of(db);
	unsigned		 i;
	int			 rc;

	*slot = -1;
	for (i = 0; c != NULL && i < STMT_CACHE; i++)
		if (c->e[i].sql == sql && !c->e[i].busy &&
		    strcmp(sqlite3_sql(c->e[i].st), sql) == 0) {
			*out = c->e[i].st;
			*slot = (int)i;
			c->e[i].busy = 1;
			return (SQLITE_OK);
		}
	rc = sqlite3_prepare_v3(db, sql, -1, c != NULL ?
	    SQLITE_PREPARE_PERSISTENT : 0, out, NULL);
	if (rc != SQLITE_OK || c == NULL || *out == NULL)
		return (rc);
	i = c->next++ % STMT_CACHE;
	if (c->e[i].busy)
		return (rc);		/* in use further up: do not cache */
	sqlite3_finalize(c->e[i].st);
	c->e[i].sql = sql;
	c->e[i].st = *out;
	c->e[i].busy = 1;
	*slot = (int)i;
	return (rc);
}

static void
release(sqlite3 *db, sqlite3_stmt *s, int slot)
{
	struct stmt_cache	*c = cache_of(db);

	if (slot < 0) {
		sqlite3_finalize(s);
		return;
	}
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	c->e[slot].busy = 0;
}

/*
 * Bind and step sql to completion, calling fn for each row. Returns the
 * sqlite result code.
 */
static int
run(sqlite3 *db, store_row_fn fn, void *arg, const char *sql,
    const char *fmt, va_list ap)
{
	sqlite3_stmt		*s;
	struct store_row	 row;
	int			 rc, slot;

	if ((rc = prepare(db, sql, &s, &slot)) != SQLITE_OK)
		return (rc);
	if (s == NULL)
		return (SQLITE_OK);	/* only a comment or blanks */
	if (bind_args(s, fmt, ap) == -1) {
		release(db, s, slot);
		return (SQLITE_MISUSE);
	}
	row.st = s;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW)
		if (fn != NULL && fn(&row, arg) != 0) {
			rc = SQLITE_DONE;
			break;
		}
	release(db, s, slot);
	return (rc == SQLITE_DONE ? SQLITE_OK : rc);
}

static int
runf(sqlite3 *db, const char *sql, const char *fmt, ...)
{
	va_list	ap;
	int	rc;

	va_start(ap, fmt);
	rc = run(db, NULL, NULL, sql, fmt, ap);
	va_end(ap);
	return (rc);
}

/* One statement without parameters or rows, through the cache. */
static int
run_plain(sqlite3 *db, const char *sql)
{
	return (runf(db, sql, NULL));
}

int
store_tx_exec(struct store_tx *tx, const char *sql, const char *fmt, ...)
{
	va_list	ap;
	int	rc;

	va_start(ap, fmt);
	rc = run(tx->db, NULL, NULL, sql, fmt, ap);
	va_end(ap);
	if (rc != SQLITE_OK)
		return (set_fail(&tx->job->res, sqlite_errno(rc),
		    sqlite3_errmsg(tx->db)));
	tx->changes += sqlite3_changes(tx->db);
	return (0);
}

int
store_tx_query(struct store_tx *tx, store_row_fn fn, void *arg,
    const char *sql, const char *fmt, ...)
{
	va_list	ap;
	int	rc;

	va_start(ap, fmt);
	rc = run(tx->db, fn, arg, sql, fmt, ap);
	va_end(ap);
	if (rc != SQLITE_OK)
		return (set_fail(&tx->job->res, sqlite_errno(rc),
		    sqlite3_errmsg(tx->db)));
	return (0);
}

int
store_tx_fail(struct store_tx *tx, int err, const char *msg)
{
	return (set_fail(&tx->job->res, err, msg));
}

int64_t
store_tx_changes(const struct store_tx *tx)
{
	return (tx->changes);
}

int
store_query(store_row_fn fn, void *arg, const char *sql, const char *fmt, ...)
{
	va_list	ap;
	int	rc;

	if (st.rdb == NULL)
		return (-1);
	va_start(ap, fmt);
	rc = run(st.rdb, fn, arg, sql, fmt, ap);
	va_end(ap);
	if (rc != SQLITE_OK) {
		log_warnx("store: read failed: %s", sqlite3_errmsg(st.rdb));
		errno = sqlite_errno(rc);
		return (-1);
	}
	return (0);
}

static sqlite3	*open_db(const char *, int, char **);

static void
bg_run(void *arg)
{
	struct bg_read		*r = arg;
	struct store_rd		 rd;
	char			*cause = NULL;

	pthread_mutex_lock(&bg.mu);
	if (bg.db == NULL && bg.path != NULL &&
	    (bg.db = open_db(bg.path, SQLITE_OPEN_READONLY, &cause)) == NULL) {
		log_warnx("store: background reads: %s", cause);
		free(cause);
	}
	if (bg.db != NULL) {
		/* One read transaction: every query sees the same commit. */
		rd.db = bg.db;
		if (run_plain(bg.db, "BEGIN") == SQLITE_OK) {
			r->ok = r->fn(&rd, r->arg) == 0;
			(void)run_plain(bg.db, "COMMIT");
		}
	}
	pthread_mutex_unlock(&bg.mu);
}

static void
bg_done(void *arg)
{
	struct bg_read	*r = arg;

	r->done(r->arg, r->ok);
	free(r);
}

int
store_read_submit(store_read_fn fn, store_read_done_fn done, void *arg)
{
	struct bg_read	*r;

	if (!st.running || (r = calloc(1, sizeof(*r))) == NULL)
		return (-1);
	r->fn = fn;
	r->done = done;
	r->arg = arg;
	if (worker_submit(bg_run, bg_done, r) == -1) {
		free(r);
		return (-1);
	}
	return (0);
}

int
store_rd_query(struct store_rd *rd, store_row_fn fn, void *arg,
    const char *sql, const char *fmt, ...)
{
	va_list	ap;
	int	rc;

	va_start(ap, fmt);
	rc = run(rd->db, fn, arg, sql, fmt, ap);
	va_end(ap);
	if (rc != SQLITE_OK) {
		log_warnx("store: background read failed: %s",
		    sqlite3_errmsg(rd->db));
		return (-1);
	}
	return (0);
}

int64_t
store_row_int(const struct store_row *r, int col)
{
	return (sqlite3_column_int64(r->st, col));
}

const char *
store_row_text(const struct store_row *r, int col)
{
	return ((const char *)sqlite3_column_text(r->st, col));
}

int
store_row_isnull(const struct store_row *r, int col)
{
	return (sqlite3_column_type(r->st, col) == SQLITE_NULL);
}

static int
exec_plain(sqlite3 *db, const char *sql)
{
	return (sqlite3_exec(db, sql, NULL, NULL, NULL));
}

static void
apply_durability(sqlite3 *db, int durability)
{
	exec_plain(db, durability == DURABILITY_NORMAL ?
	    "PRAGMA synchronous=NORMAL" : "PRAGMA synchronous=FULL");
}

/*
 * Run one batch inside one transaction. A job that fails on its own (a
 * constraint, a refused value) must leave the others intact; a savepoint
 * around every job would cost two statements per job, so the batch first
 * runs without them, and only when a job fails alone is it rolled back and
 * run again with a savepoint per job (job functions may run twice; see
 * store.h). When SQLite itself abandons the transaction (it does on
 * SQLITE_FULL and I/O errors) every job of the batch fails with that error.
 * Returns 1 when the failure is one the daemon must not survive.
 */
static int
run_batch(struct job *batch, int durability, const struct batch_hooks *h,
    int *isolated)
{
	struct store_tx	 tx;
	struct job	*j, hook;
	size_t		 n;
	int		 rc, err = 0, fatal = 0, isolate = 0;
	char		 msg[160] = "";

	memset(&tx, 0, sizeof(tx));
	tx.db = st.wdb;
	if (durability != st.applied_durability) {
		apply_durability(st.wdb, durability);
		st.applied_durability = durability;
	}
again:
	if ((rc = run_plain(st.wdb, "BEGIN IMMEDIATE")) != SQLITE_OK) {
		err = sqlite_errno(rc);
		snprintf(msg, sizeof(msg), "begin: %s", sqlite3_errmsg(st.wdb));
		goto fail;
	}
	if (h->begin != NULL)
		h->begin();
	for (j = batch; j != NULL; j = j->next) {
		memset(&j->res, 0, sizeof(j->res));
		j->res.ok = 1;
		tx.job = j;
		tx.changes = 0;
		if (isolate)
			run_plain(st.wdb, "SAVEPOINT job");
		if (j->fn(&tx, j->arg) == 0) {
			if (isolate)
				run_plain(st.wdb, "RELEASE job");
			continue;
		}
		j->res.ok = 0;
		if (sqlite3_get_autocommit(st.wdb)) {
			/* SQLite rolled the whole transaction back. */
			err = j->res.err;
			snprintf(msg, sizeof(msg), "%s", j->res.msg);
			goto fail;
		}
		if (!isolate) {
			/* Failed alone: start over, each job isolated. */
			run_plain(st.wdb, "ROLLBACK");
			isolate = *isolated = 1;
			goto again;
		}
		run_plain(st.wdb, "ROLLBACK TO job");
		run_plain(st.wdb, "RELEASE job");
	}
	if (h->end != NULL) {
		memset(&hook, 0, sizeof(hook));
		tx.job = &hook;
		tx.changes = 0;
		if (h->end(&tx) == -1) {
			err = hook.res.err;
			snprintf(msg, sizeof(msg), "%s", hook.res.msg);
			if (!sqlite3_get_autocommit(st.wdb))
				run_plain(st.wdb, "ROLLBACK");
			goto fail;
		}
	}
	if ((rc = run_plain(st.wdb, "COMMIT")) == SQLITE_OK)
		return (0);
	err = sqlite_errno(rc);
	snprintf(msg, sizeof(msg), "commit: %s", sqlite3_errmsg(st.wdb));
	if (!sqlite3_get_autocommit(st.wdb))
		run_plain(st.wdb, "ROLLBACK");
fail:
	/* ENOSPC is survivable: nothing was half-written, space may return. */
	fatal = err != ENOSPC;
	for (n = 0, j = batch; j != NULL; j = j->next, n++)
		set_fail(&j->res, err, msg);
	log_crit("store: batch of %zu jobs failed: %s", n, msg);
	return (fatal);
}

/*
 * After a fatal failure nothing more is committed: a failed fsync may have
 * cost the kernel's dirty pages, so the file no longer holds what SQLite
 * believes it wrote, and a later commit would be acknowledged on top of
 * that. The batch fails without a transaction being begun.
 */
static void
refuse_batch(struct job *batch)
{
	struct job	*j;

	for (j = batch; j != NULL; j = j->next)
		set_fail(&j->res, EIO, "the store failed earlier; "
		    "nothing more is committed");
}

static void *
writer_main(void *unused)
{
	struct job		*batch, *j;
	struct batch_hooks	 hooks;
	size_t			 n;
	int			 durability, fatal, refused, isolated;
	char			 c = 0;

	(void)unused;
	for (;;) {
		pthread_mutex_lock(&st.mu);
		while (st.queue == NULL && !st.stopping)
			pthread_cond_wait(&st.cv, &st.mu);
		if (st.queue == NULL && st.stopping) {
			pthread_mutex_unlock(&st.mu);
			break;
		}
		batch = st.queue;
		st.queue = NULL;
		st.queue_tail = &st.queue;
		durability = st.durability;
		hooks.begin = st.batch_begin;
		hooks.end = st.batch_end;
		refused = st.fatal;
		pthread_mutex_unlock(&st.mu);

		isolated = fatal = 0;
		if (refused)
			refuse_batch(batch);
		else
			fatal = run_batch(batch, durability, &hooks, &isolated);

		for (n = 0, j = batch; j != NULL; j = j->next)
			n++;
		pthread_mutex_lock(&st.mu);
		st.stats.jobs += n;
		st.stats.commits += (uint64_t)!refused;
		st.stats.reruns += (uint64_t)isolated;
		if (!batch->res.ok)
			st.stats.failures++;
		if (fatal)
			st.fatal = 1;
		*st.done_tail = batch;
		for (j = batch; j->next != NULL; j = j->next)
			;
		st.done_tail = &j->next;
		pthread_mutex_unlock(&st.mu);
		/* Wake the loop; a full pipe already means it will wake. */
		(void)write(st.pipe[1], &c, 1);
	}
	return (NULL);
}

/* Run completions on the loop thread, in submission order. */
static void
deliver_done(void)
{
	struct job	*list, *j, *next;

	pthread_mutex_lock(&st.mu);
	list = st.done;
	st.done = NULL;
	st.done_tail = &st.done;
	pthread_mutex_unlock(&st.mu);
	for (j = list; j != NULL; j = next) {
		next = j->next;
		if (j->done != NULL)
			j->done(j->arg, &j->res);
		free(j);
	}
	if (list != NULL && st.on_fatal != NULL && store_fatal())
		st.on_fatal();
}

void
store_on_fatal(void (*fn)(void))
{
	st.on_fatal = fn;
}

static void
store_wakeup(int fd, short ev, void *arg)
{
	char	buf[256];

	(void)ev;
	(void)arg;
	while (read(fd, buf, sizeof(buf)) > 0)
		;
	deliver_done();
}

int
store_submit(store_job_fn fn, store_done_fn done, void *arg)
{
	struct job	*j;

	if (!st.running)
		return (-1);
	if ((j = calloc(1, sizeof(*j))) == NULL)
		return (-1);
	j->fn = fn;
	j->done = done;
	j->arg = arg;
	pthread_mutex_lock(&st.mu);
	*st.queue_tail = j;
	st.queue_tail = &j->next;
	pthread_cond_signal(&st.cv);
	pthread_mutex_unlock(&st.mu);
	return (0);
}

void
store_batch_hooks(void (*begin)(void), int (*end)(struct store_tx *))
{
	pthread_mutex_lock(&st.mu);
	st.batch_begin = begin;
	st.batch_end = end;
	pthread_mutex_unlock(&st.mu);
}

int
store_fatal(void)
{
	int	f;

	pthread_mutex_lock(&st.mu);
	f = st.fatal;
	pthread_mutex_unlock(&st.mu);
	return (f);
}

void
store_set_durability(int durability)
{
	pthread_mutex_lock(&st.mu);
	st.durability = durability;
	pthread_mutex_unlock(&st.mu);
}

void
store_get_stats(struct store_stats *out)
{
	pthread_mutex_lock(&st.mu);
	*out = st.stats;
	pthread_mutex_unlock(&st.mu);
}

static int
get_version(sqlite3 *db)
{
	sqlite3_stmt	*s;
	int		 v = -1;

	if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &s,
	    NULL) != SQLITE_OK)
		return (-1);
	if (sqlite3_step(s) == SQLITE_ROW)
		v = sqlite3_column_int(s, 0);
	sqlite3_finalize(s);
	return (v);
}

/* Apply every migration past the database's user_version, each atomically. */
static int
migrate(sqlite3 *db, char **cause)
{
	char	*sql, *err = NULL;
	int	 v, n;

	if ((v = get_version(db)) < 0) {
		asprintf(cause, "reading user_version: %s", sqlite3_errmsg(db));
		return (-1);
	}
	for (n = 0; schema_migrations[n] != NULL; n++)
		;
	if (v > n) {
		asprintf(cause, "database schema %d is newer than this ermd "
		    "(%d); refusing to open it", v, n);
		return (-1);
	}
	for (; v < n; v++) {
		if (asprintf(&sql, "BEGIN IMMEDIATE; %s PRAGMA user_version = "
		    "%d; COMMIT;", schema_migrations[v], v + 1) == -1) {
			asprintf(cause, "out of memory");
			return (-1);
		}
		if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK) {
			asprintf(cause, "migration %d: %s", v + 1, err);
			sqlite3_free(err);
			exec_plain(db, "ROLLBACK");
			free(sql);
			return (-1);
		}
		free(sql);
		log_info("store: schema migrated to version %d", v + 1);
	}
	st.stats.schema_version = n;
	return (0);
}

static sqlite3 *
open_db(const char *path, int flags, char **cause)
{
	sqlite3	*db;

	if (sqlite3_open_v2(path, &db, flags | SQLITE_OPEN_NOMUTEX,
	    NULL) != SQLITE_OK) {
		asprintf(cause, "%s: %s", path, db != NULL ?
		    sqlite3_errmsg(db) : "out of memory");
		sqlite3_close(db);
		return (NULL);
	}
	sqlite3_busy_timeout(db, 5000);
	sqlite3_extended_result_codes(db, 1);
	return (db);
}

int
store_open(struct event_base *base, const char *path, int durability,
    char **cause)
{
	static int	configured;

	*cause = NULL;
	/*
	 * Memory statistics take a global mutex around every SQLite
	 * allocation; ermd reads none of them. Only possible before SQLite
	 * is first initialised (it fails harmlessly afterwards).
	 */
	if (!configured) {
		(void)sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
		configured = 1;
	}
	free(bg.path);
	if ((bg.path = strdup(path)) == NULL) {
		asprintf(cause, "out of memory");
		return (-1);
	}
	st.wdb = open_db(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE,
	    cause);
	if (st.wdb == NULL)
		goto fail;
	/*
	 * 32 MiB of page cache for the writer: a hundred thousand breaker
	 * snapshots stay in memory instead of being read back for each
	 * upsert.
	 */
	if (exec_plain(st.wdb, "PRAGMA journal_mode=WAL") != SQLITE_OK ||
	    exec_plain(st.wdb, "PRAGMA foreign_keys=ON") != SQLITE_OK ||
	    exec_plain(st.wdb, "PRAGMA cache_size=-32768") != SQLITE_OK) {
		asprintf(cause, "%s: %s", path, sqlite3_errmsg(st.wdb));
		goto fail;
	}
	apply_durability(st.wdb, durability);
	st.applied_durability = durability;
	if (migrate(st.wdb, cause) == -1)
		goto fail;
	if ((st.rdb = open_db(path, SQLITE_OPEN_READONLY, cause)) == NULL)
		goto fail;
	if (pipe2(st.pipe, O_NONBLOCK | O_CLOEXEC) == -1) {
		asprintf(cause, "pipe: %s", strerror(errno));
		goto fail;
	}
	st.ev = event_new(base, st.pipe[0], EV_READ | EV_PERSIST,
	    store_wakeup, NULL);
	if (st.ev == NULL || event_add(st.ev, NULL) == -1) {
		asprintf(cause, "event_new failed");
		goto fail;
	}
	pthread_mutex_init(&st.mu, NULL);
	pthread_cond_init(&st.cv, NULL);
	st.queue_tail = &st.queue;
	st.done_tail = &st.done;
	st.durability = durability;
	st.stopping = 0;
	st.fatal = 0;
	if (pthread_create(&st.thread, NULL, writer_main, NULL) != 0) {
		asprintf(cause, "cannot start the writer thread");
		goto fail;
	}
	(void)pthread_setname_np(st.thread, "ermd-writer");	/* top -H */
	st.running = 1;
	return (0);
fail:
	store_close();
	return (-1);
}

void
store_close(void)
{
	if (st.running) {
		pthread_mutex_lock(&st.mu);
		st.stopping = 1;
		pthread_cond_signal(&st.cv);
		pthread_mutex_unlock(&st.mu);
		pthread_join(st.thread, NULL);
		st.running = 0;
		st.batch_begin = NULL;
		st.batch_end = NULL;
		deliver_done();
		pthread_mutex_destroy(&st.mu);
		pthread_cond_destroy(&st.cv);
	}
	if (st.ev != NULL)
		event_free(st.ev);
	st.ev = NULL;
	if (st.pipe[0] != -1) {
		close(st.pipe[0]);
		close(st.pipe[1]);
	}
	st.pipe[0] = st.pipe[1] = -1;
	cache_clear(&rcache);
	cache_clear(&wcache);
	sqlite3_close(st.rdb);
	sqlite3_close(st.wdb);
	st.rdb = st.wdb = NULL;
	pthread_mutex_lock(&bg.mu);
	sqlite3_close(bg.db);
	bg.db = NULL;
	pthread_mutex_unlock(&bg.mu);
	memset(&st.stats, 0, sizeof(st.stats));
}
