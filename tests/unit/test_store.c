/* The store: migrations, group commit, per-job failure, reads. */

#include <check.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include <errno.h>
#include <unistd.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "config.h"
#include "schema.h"
#include "store.h"
#include "worker.h"

static char			 dir[64], dbpath[256];
static volatile int		 fail_sync;	/* make every fsync fail with EIO */
static volatile int		 fail_syncs;	/* make the next n fail */
static int			 fatal_calls;

/*
 * These definitions interpose on libc's for libsqlite3 too (the executable
 * comes first in symbol lookup), so a test can make the disk fail an fsync
 * the way a dying disk does. fail_syncs is set before the writer is let
 * go (under gate_mu) and then only read and lowered by the writer thread.
 */
static int
sync_fails(void)
{
	if (fail_syncs > 0) {
		fail_syncs--;
		return (1);
	}
	return (fail_sync);
}

int
fsync(int fd)
{
	if (sync_fails()) {
		errno = EIO;
		return (-1);
	}
	return ((int)syscall(SYS_fsync, fd));
}

int
fdatasync(int fd)
{
	if (sync_fails()) {
		errno = EIO;
		return (-1);
	}
	return ((int)syscall(SYS_fdatasync, fd));
}
static struct event_base	*base;
static int			 done_ok, done_fail, last_err;

static void
setup(void)
{
	char	*cause;

	snprintf(dir, sizeof(dir), "/tmp/ermd-store-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(dbpath, sizeof(dbpath), "%s/ermd.db", dir);
	base = event_base_new();
	ck_assert_int_eq(store_open(base, dbpath, DURABILITY_FULL, &cause), 0);
	done_ok = done_fail = 0;
}

static void
teardown(void)
{
	char	cmd[128];

	store_close();
	event_base_free(base);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	ck_assert_int_eq(system(cmd), 0);
}

static int
insert_job(struct store_tx *tx, void *arg)
{
	char	key[32];

	snprintf(key, sizeof(key), "k%d", (int)(intptr_t)arg);
	return (store_tx_exec(tx, "INSERT INTO meta (key, value) VALUES (?, ?)",
	    "ti", key, (int64_t)(intptr_t)arg));
}

static void
count_done(void *arg, const struct store_result *r)
{
	(void)arg;
	if (r->ok)
		done_ok++;
	else {
		done_fail++;
		last_err = r->err;
	}
}

static void
run_until(int total)
{
	while (done_ok + done_fail < total)
		event_base_loop(base, EVLOOP_ONCE);
}

static int
count_row(const struct store_row *row, void *arg)
{
	*(int64_t *)arg = store_row_int(row, 0);
	return (0);
}

static int64_t
count_rows(const char *like)
{
	int64_t	n = -1;

	ck_assert_int_eq(store_query(count_row, &n,
	    "SELECT count(*) FROM meta WHERE key LIKE ?", "t", like), 0);
	return (n);
}

START_TEST(migrated_to_latest)
{
	struct store_stats	st;
	int			n;

	for (n = 0; schema_migrations[n] != NULL; n++)
		;
	store_get_stats(&st);
	ck_assert_int_eq(st.schema_version, n);
	ck_assert_int_eq(count_rows("created_at"), 1);
}
END_TEST

/*
 * Hold the writer inside the first job until every other job is queued:
 * the rest must then share one transaction, so 501 jobs take exactly two
 * commits.
 */
static pthread_mutex_t	gate_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t	gate_cv = PTHREAD_COND_INITIALIZER;
static int		gate_open, gate_entered;

static int
gate_job(struct store_tx *tx, void *arg)
{
	(void)tx;
	(void)arg;
	pthread_mutex_lock(&gate_mu);
	gate_entered = 1;
	pthread_cond_broadcast(&gate_cv);
	while (!gate_open)
		pthread_cond_wait(&gate_cv, &gate_mu);
	pthread_mutex_unlock(&gate_mu);
	return (0);
}

/* Park the writer in fn, a batch of its own; what is queued next is one
 * batch. */
static void
gate_hold_in(store_job_fn fn, void *arg)
{
	gate_open = gate_entered = 0;
	ck_assert_int_eq(store_submit(fn, count_done, arg), 0);
	pthread_mutex_lock(&gate_mu);
	while (!gate_entered)
		pthread_cond_wait(&gate_cv, &gate_mu);
	pthread_mutex_unlock(&gate_mu);
}

static void
gate_hold(void)
{
	gate_hold_in(gate_job, NULL);
}

static void
gate_release(void)
{
	pthread_mutex_lock(&gate_mu);
	gate_open = 1;
	pthread_cond_broadcast(&gate_cv);
	pthread_mutex_unlock(&gate_mu);
}

START_TEST(group_commit_batches_waiting_jobs)
{
	struct store_stats	st;
	int			i;

	gate_hold();
	for (i = 0; i < 500; i++)
		ck_assert_int_eq(store_submit(insert_job, count_done,
		    (void *)(intptr_t)i), 0);
	gate_release();
	run_until(501);
	ck_assert_int_eq(done_ok, 501);
	store_get_stats(&st);
	ck_assert_uint_eq(st.jobs, 501);
	ck_assert_uint_eq(st.commits, 2);
	ck_assert_uint_eq(st.reruns, 0);	/* no savepoints needed */
	ck_assert_int_eq(count_rows("k%"), 500);
}
END_TEST

static int
insert_then_fail(struct store_tx *tx, void *arg)
{
	if (insert_job(tx, arg) == -1)
		return (-1);
	return (store_tx_fail(tx, EINVAL, "refused by the job"));
}

/*
 * A job that fails alone is rolled back alone; its neighbours commit, once
 * each, although the batch ran twice (the second time with savepoints).
 */
START_TEST(failed_job_rolls_back_alone)
{
	struct store_stats	st;

	gate_hold();
	/* The four below are one batch. */
	store_submit(insert_job, count_done, (void *)(intptr_t)1);
	store_submit(insert_then_fail, count_done, (void *)(intptr_t)2);
	store_submit(insert_job, count_done, (void *)(intptr_t)3);
	store_submit(insert_job, count_done, (void *)(intptr_t)1); /* dup */
	gate_release();
	run_until(5);
	ck_assert_int_eq(done_ok, 3);
	ck_assert_int_eq(done_fail, 2);
	ck_assert_int_eq(count_rows("k1"), 1);
	ck_assert_int_eq(count_rows("k2"), 0);
	ck_assert_int_eq(count_rows("k3"), 1);
	ck_assert_int_eq(store_fatal(), 0);
	store_get_stats(&st);
	ck_assert_uint_eq(st.commits, 2);
	ck_assert_uint_eq(st.reruns, 1);
}
END_TEST

/* Batch hooks: an aggregate written once per batch, counted right. */
static int64_t	hook_pending;	/* writer thread */
static int	hook_begins;	/* writer thread; read after the batch */

static void
hook_begin(void)
{
	hook_pending = 0;
	hook_begins++;
}

static int
hook_end(struct store_tx *tx)
{
	if (hook_pending == 0)
		return (0);
	return (store_tx_exec(tx, "INSERT INTO meta (key, value) VALUES "
	    "('sum', ?) ON CONFLICT (key) DO UPDATE SET value = value + "
	    "excluded.value", "i", hook_pending));
}

static int
counted_job(struct store_tx *tx, void *arg)
{
	if (insert_job(tx, arg) == -1)
		return (-1);
	hook_pending++;
	return (0);
}

static int
read_value(const struct store_row *row, void *arg)
{
	*(int64_t *)arg = store_row_int(row, 0);
	return (0);
}

START_TEST(batch_hooks_aggregate_once)
{
	int64_t	sum = -1;

	hook_begins = 0;
	store_batch_hooks(hook_begin, hook_end);
	gate_hold();
	/* One batch, run twice: the duplicate fails alone. */
	store_submit(counted_job, count_done, (void *)(intptr_t)1);
	store_submit(counted_job, count_done, (void *)(intptr_t)2);
	store_submit(counted_job, count_done, (void *)(intptr_t)1);
	store_submit(counted_job, count_done, (void *)(intptr_t)3);
	gate_release();
	run_until(5);
	ck_assert_int_eq(done_ok, 4);
	ck_assert_int_eq(done_fail, 1);
	ck_assert_int_eq(hook_begins, 3);	/* gate's, and twice this */
	ck_assert_int_eq(store_query(read_value, &sum, "SELECT value FROM "
	    "meta WHERE key = 'sum'", NULL), 0);
	ck_assert_int_eq(sum, 3);
	store_batch_hooks(NULL, NULL);
}
END_TEST

/* store_tx_changes counts the job's own rows, not its batch's. */
static int64_t	changes_seen[4];

static int
changes_job(struct store_tx *tx, void *arg)
{
	int	i = (int)(intptr_t)arg;

	if (insert_job(tx, arg) == -1)
		return (-1);
	changes_seen[i] = store_tx_changes(tx);
	return (0);
}

START_TEST(changes_are_per_job)
{
	int	i;

	gate_hold();
	for (i = 0; i < 4; i++)
		store_submit(changes_job, count_done, (void *)(intptr_t)i);
	gate_release();
	run_until(5);
	for (i = 0; i < 4; i++)
		ck_assert_int_eq(changes_seen[i], 1);
}
END_TEST

/*
 * Background reads: on a worker, with their own connection, seeing what
 * is committed; a read held up does not hold up writes or the loop.
 */
static int	read_gate;		/* under gate_mu */
static int	read_entered;		/* under gate_mu */
static int	read_done, read_ok;

static int
gated_count(struct store_rd *rd, void *arg)
{
	pthread_mutex_lock(&gate_mu);
	read_entered = 1;
	pthread_cond_broadcast(&gate_cv);
	while (!read_gate)
		pthread_cond_wait(&gate_cv, &gate_mu);
	pthread_mutex_unlock(&gate_mu);
	return (store_rd_query(rd, count_row, arg, "SELECT count(*) FROM "
	    "meta WHERE key LIKE 'k%'", NULL));
}

static int
bad_read(struct store_rd *rd, void *arg)
{
	return (store_rd_query(rd, count_row, arg, "SELECT nonsense FROM "
	    "nowhere", NULL));
}

static void
read_finished(void *arg, int ok)
{
	(void)arg;
	read_done++;
	read_ok = ok;
}

START_TEST(background_reads)
{
	int64_t	n = -1;

	ck_assert_int_eq(worker_init(base, 1), 0);
	read_gate = read_entered = read_done = 0;
	ck_assert_int_eq(store_submit(insert_job, count_done,
	    (void *)(intptr_t)1), 0);
	run_until(1);
	ck_assert_int_eq(store_read_submit(gated_count, read_finished, &n), 0);
	pthread_mutex_lock(&gate_mu);
	while (!read_entered)
		pthread_cond_wait(&gate_cv, &gate_mu);
	pthread_mutex_unlock(&gate_mu);
	/* The read waits on its worker; a write commits meanwhile. */
	ck_assert_int_eq(store_submit(insert_job, count_done,
	    (void *)(intptr_t)2), 0);
	run_until(2);
	ck_assert_int_eq(done_ok, 2);
	ck_assert_int_eq(read_done, 0);
	pthread_mutex_lock(&gate_mu);
	read_gate = 1;
	pthread_cond_broadcast(&gate_cv);
	pthread_mutex_unlock(&gate_mu);
	while (read_done == 0)
		event_base_loop(base, EVLOOP_ONCE);
	ck_assert_int_eq(read_ok, 1);
	ck_assert_int_eq(n, 2);		/* began after both commits */
	ck_assert_int_eq(store_read_submit(bad_read, read_finished, &n), 0);
	while (read_done == 1)
		event_base_loop(base, EVLOOP_ONCE);
	ck_assert_int_eq(read_ok, 0);
	worker_shutdown();
}
END_TEST

static int64_t	seen_in_tx;

static int
read_own_write(struct store_tx *tx, void *arg)
{
	(void)arg;
	if (store_tx_exec(tx, "INSERT INTO meta (key, value) VALUES ('own', 1)",
	    NULL) == -1)
		return (-1);
	return (store_tx_query(tx, count_row, &seen_in_tx,
	    "SELECT count(*) FROM meta WHERE key = 'own'", NULL));
}

START_TEST(job_reads_its_batch)
{
	seen_in_tx = -1;
	store_submit(read_own_write, count_done, NULL);
	run_until(1);
	ck_assert_int_eq(done_ok, 1);
	ck_assert_int_eq(seen_in_tx, 1);
	ck_assert_int_eq(count_rows("own"), 1);
}
END_TEST

START_TEST(reopen_keeps_data_and_version)
{
	char	*cause;

	store_submit(insert_job, count_done, (void *)(intptr_t)7);
	run_until(1);
	store_close();
	ck_assert_int_eq(store_open(base, dbpath, DURABILITY_NORMAL, &cause),
	    0);
	ck_assert_int_eq(count_rows("k7"), 1);
	ck_assert_int_eq(count_rows("created_at"), 1);
}
END_TEST

static int
bump_version(struct store_tx *tx, void *arg)
{
	(void)arg;
	return (store_tx_exec(tx, "PRAGMA user_version = 1000", NULL));
}

START_TEST(newer_schema_refused)
{
	char	*cause = NULL;

	store_submit(bump_version, count_done, NULL);
	run_until(1);
	store_close();
	ck_assert_int_eq(store_open(base, dbpath, DURABILITY_FULL, &cause), -1);
	ck_assert_ptr_nonnull(strstr(cause, "schema 1000 is newer"));
	free(cause);
	/* teardown closes again: harmless */
}
END_TEST

static void
on_fatal(void)
{
	fatal_calls++;
}

/* A failed fsync is never retried: the jobs fail with EIO, the store is
 * marked fatal and the owner is told once the completions have run. */
START_TEST(failed_fsync_is_fatal)
{
	fatal_calls = 0;
	store_on_fatal(on_fatal);
	store_submit(insert_job, count_done, (void *)(intptr_t)1);
	run_until(1);
	ck_assert_int_eq(done_ok, 1);
	fail_sync = 1;
	store_submit(insert_job, count_done, (void *)(intptr_t)2);
	run_until(2);
	fail_sync = 0;
	ck_assert_int_eq(done_fail, 1);
	ck_assert_int_eq(last_err, EIO);
	ck_assert_int_eq(store_fatal(), 1);
	ck_assert_int_eq(fatal_calls, 1);
	store_on_fatal(NULL);
}
END_TEST

/* Wait at the gate, then insert: the batch has a row to commit. */
static int
gate_insert_job(struct store_tx *tx, void *arg)
{
	gate_job(tx, arg);
	return (insert_job(tx, arg));
}

/*
 * From the failed commit on nothing is committed: after a failed fsync
 * the file may not hold what SQLite wrote. The batch queued behind the
 * failing one and jobs submitted afterwards are still taken (their
 * completions run) but all fail with EIO, and reopening the file shows
 * none of their rows. Only the one fsync fails: without the rule the next
 * batch would commit.
 */
START_TEST(nothing_commits_after_fatal)
{
	char	*cause;
	int	 i;

	fatal_calls = 0;
	store_on_fatal(on_fatal);
	store_submit(insert_job, count_done, (void *)(intptr_t)1);
	run_until(1);
	ck_assert_int_eq(done_ok, 1);

	gate_hold_in(gate_insert_job, (void *)(intptr_t)2);
	for (i = 0; i < 10; i++)	/* one batch, behind the failing one */
		ck_assert_int_eq(store_submit(insert_job, count_done,
		    (void *)(intptr_t)(100 + i)), 0);
	pthread_mutex_lock(&gate_mu);
	fail_syncs = 1;
	pthread_mutex_unlock(&gate_mu);
	gate_release();
	run_until(12);
	ck_assert_int_eq(store_fatal(), 1);
	ck_assert_int_ge(fatal_calls, 1);
	ck_assert_int_eq(done_ok, 1);
	ck_assert_int_eq(done_fail, 11);
	ck_assert_int_eq(last_err, EIO);

	for (i = 0; i < 10; i++)	/* submitted after the failure */
		ck_assert_int_eq(store_submit(insert_job, count_done,
		    (void *)(intptr_t)(110 + i)), 0);
	run_until(22);
	ck_assert_int_eq(done_ok, 1);
	ck_assert_int_eq(done_fail, 21);
	ck_assert_int_eq(last_err, EIO);
	ck_assert_int_eq(fail_syncs, 0);	/* the writer did sync, once */
	ck_assert_int_eq(count_rows("k1__"), 0);	/* reads still work */
	store_on_fatal(NULL);

	/* What the file holds, as the next start sees it. */
	store_close();
	ck_assert_int_eq(store_open(base, dbpath, DURABILITY_FULL, &cause), 0);
	ck_assert_int_eq(count_rows("k1"), 1);
	ck_assert_int_eq(count_rows("k1__"), 0);
}
END_TEST

static int
insert_blob(struct store_tx *tx, void *arg)
{
	static char	blob[256 * 1024];

	return (store_tx_exec(tx, "INSERT INTO meta (key, value) VALUES (?, ?)",
	    "tb", (const char *)arg, blob, sizeof(blob)));
}

/* ENOSPC fails the batch, leaves the store usable, and writes resume once
 * space returns. Needs root for the small tmpfs. */
START_TEST(enospc_is_survivable)
{
	char	mnt[128], filler[160], cmd[256], *cause;
	FILE	*fp;
	char	buf[65536];

	if (geteuid() != 0) {
		fprintf(stderr, "enospc_is_survivable: skipped (needs root)\n");
		return;
	}
	store_close();
	snprintf(mnt, sizeof(mnt), "%s/tmpfs", dir);
	ck_assert_int_eq(mkdir(mnt, 0700), 0);
	snprintf(cmd, sizeof(cmd), "mount -t tmpfs -o size=2m tmpfs %s", mnt);
	ck_assert_int_eq(system(cmd), 0);
	snprintf(dbpath, sizeof(dbpath), "%s/ermd.db", mnt);
	ck_assert_int_eq(store_open(base, dbpath, DURABILITY_FULL, &cause), 0);
	snprintf(filler, sizeof(filler), "%s/filler", mnt);
	fp = fopen(filler, "w");
	memset(buf, 'x', sizeof(buf));
	while (fwrite(buf, 1, sizeof(buf), fp) == sizeof(buf))
		;
	fclose(fp);
	store_submit(insert_blob, count_done, "big1");
	run_until(1);
	ck_assert_int_eq(done_fail, 1);
	ck_assert_int_eq(last_err, ENOSPC);
	ck_assert_int_eq(store_fatal(), 0);
	ck_assert_int_eq(count_rows("created_at"), 1);	/* reads still work */
	unlink(filler);
	store_submit(insert_blob, count_done, "big2");
	run_until(2);
	ck_assert_int_eq(done_ok, 1);
	ck_assert_int_eq(count_rows("big%"), 1);
	store_close();
	snprintf(cmd, sizeof(cmd), "umount %s", mnt);
	ck_assert_int_eq(system(cmd), 0);
	snprintf(dbpath, sizeof(dbpath), "%s/ermd.db", dir);
	ck_assert_int_eq(store_open(base, dbpath, DURABILITY_FULL, &cause), 0);
}
END_TEST

int
main(void)
{
	Suite	*s = suite_create("store");
	TCase	*tc = tcase_create("store");
	SRunner	*sr;
	int	 failed;

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, migrated_to_latest);
	tcase_add_test(tc, group_commit_batches_waiting_jobs);
	tcase_add_test(tc, failed_job_rolls_back_alone);
	tcase_add_test(tc, batch_hooks_aggregate_once);
	tcase_add_test(tc, changes_are_per_job);
	tcase_add_test(tc, background_reads);
	tcase_add_test(tc, job_reads_its_batch);
	tcase_add_test(tc, reopen_keeps_data_and_version);
	tcase_add_test(tc, newer_schema_refused);
	tcase_add_test(tc, failed_fsync_is_fatal);
	tcase_add_test(tc, nothing_commits_after_fatal);
	tcase_add_test(tc, enospc_is_survivable);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return (failed ? 1 : 0);
}
