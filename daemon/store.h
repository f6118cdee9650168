/*
 * The SQLite store: WAL mode, schema migrations by user_version, reads on the
 * event-loop thread and writes group-committed by one writer thread.
 *
 * A write is a job: a function run on the writer thread inside the current
 * batch's transaction, and a completion run back on the loop thread once the
 * transaction holding it has committed (or failed). Every job queued while a
 * commit is in progress joins the next batch, so one fsync covers as many
 * replies as arrived meanwhile; a reply that must be durable is sent from the
 * completion. Jobs must only touch their own argument: the writer thread
 * shares nothing else with the loop.
 *
 * A failed commit is never retried. For ENOSPC the batch's jobs fail with
 * that errno and the store keeps serving (reads work; writes resume when
 * space returns). For any other commit failure the jobs fail, then
 * store_fatal() turns true and the daemon exits non-zero. From that moment
 * nothing more is committed: after a failed fsync the file may have lost
 * what SQLite wrote, so every job still queued, and every job submitted
 * later, fails with EIO without a transaction being begun. Reads go on.
 *
 * Only this module includes <sqlite3.h>.
 */
#ifndef STORE_H
#define STORE_H

#include <stddef.h>
#include <stdint.h>

struct event_base;
struct store_tx;
struct store_row;

struct store_result {
	int	ok;
	int	err;		/* errno-style code when !ok */
	char	msg[160];
};

/*
 * Runs on the writer thread; returns 0, or -1 after store_tx_fail. It may
 * run twice: when another job of its batch fails on its own, the batch is
 * rolled back and run again with each job in a savepoint. So a job must
 * only change the database, or set (not accumulate into) its argument.
 */
typedef int	(*store_job_fn)(struct store_tx *, void *arg);
/* Runs on the loop thread once the job's batch has committed or failed. */
typedef void	(*store_done_fn)(void *arg, const struct store_result *);
/* Called for each result row of a read. Return non-zero to stop. */
typedef int	(*store_row_fn)(const struct store_row *, void *arg);

/*
 * Open (creating) the database at path and migrate its schema. durability is
 * enum durability of config.h. Returns -1 with *cause set (malloc'ed).
 */
int		 store_open(struct event_base *, const char *path,
		    int durability, char **cause);
/* Finish queued jobs, stop the writer and close. */
void		 store_close(void);
int		 store_fatal(void);
/* Called on the loop thread after a fatal batch's completions have run. */
void		 store_on_fatal(void (*fn)(void));
void		 store_set_durability(int durability);

/*
 * One pair of hooks run on the writer thread inside every batch's
 * transaction: begin before its jobs (again when the batch runs again),
 * end after them, before the commit. For an aggregate the jobs accumulate
 * in writer-only memory and end writes once per batch instead of once per
 * job. An end that fails (-1 after store_tx_fail) fails the whole batch.
 * NULL: none.
 */
void		 store_batch_hooks(void (*begin)(void),
		    int (*end)(struct store_tx *));

/*
 * Queue a write. done may be NULL. Returns -1 when the store is closed.
 * Once store_fatal() is true the job is still queued, so that its
 * completion runs (later, on the loop) reporting failure.
 */
int		 store_submit(store_job_fn fn, store_done_fn done, void *arg);

/*
 * Statements. fmt has one letter per '?' parameter: i (int64_t), d (double),
 * t (const char *, NULL binds NULL), b (const void *, size_t), n (NULL).
 */
int		 store_tx_exec(struct store_tx *, const char *sql,
		    const char *fmt, ...);
/* A query inside a job, seeing the batch's uncommitted writes. */
int		 store_tx_query(struct store_tx *, store_row_fn, void *arg,
		    const char *sql, const char *fmt, ...);
/* Mark the job failed with an errno-style code and message. */
int		 store_tx_fail(struct store_tx *, int err, const char *msg);
/* Rows changed by this job's statements so far (not its batch's). */
int64_t		 store_tx_changes(const struct store_tx *);

/* A read on the loop thread; sees committed data only. -1 on error. */
int		 store_query(store_row_fn, void *arg, const char *sql,
		    const char *fmt, ...);

int64_t		 store_row_int(const struct store_row *, int col);
const char	*store_row_text(const struct store_row *, int col);
int		 store_row_isnull(const struct store_row *, int col);

/*
 * Reads too slow for the loop (a scan of a large table): fn runs on a
 * worker thread with a read connection of its own, seeing what is
 * committed; done runs on the loop after it with ok = fn returned 0 (0
 * too when the connection could not be opened). fn touches only its
 * argument and the store_rd. -1 when the store or the worker pool is not
 * running.
 */
struct store_rd;
typedef int	(*store_read_fn)(struct store_rd *, void *arg);
typedef void	(*store_read_done_fn)(void *arg, int ok);
int		 store_read_submit(store_read_fn fn, store_read_done_fn done,
		    void *arg);
/* A query inside a store_read_fn; 0 or -1 (logged). */
int		 store_rd_query(struct store_rd *, store_row_fn, void *arg,
		    const char *sql, const char *fmt, ...);

struct store_stats {
	uint64_t	jobs;
	uint64_t	commits;
	uint64_t	reruns;		/* batches run again, jobs isolated */
	uint64_t	failures;
	int		schema_version;
};
void		 store_get_stats(struct store_stats *);

#endif
