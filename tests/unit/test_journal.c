/*
 * The breaker outcome journal: records come back exactly, in order, across
 * files, and from a process killed right after appending them; a torn or
 * damaged tail is dropped, never misread; rotation and removal; files grow
 * as they fill; a full disk breaks it loudly.
 */

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <signal.h>
#include <unistd.h>

#include "journal.h"

static char	dir[64], prefix[256];

static struct {
	struct journal_rec	 r[1 << 16];
	int			 n;
	char			 error[256];
	int			 errors;
} seen;

static void
keep(const struct journal_rec *r, void *arg)
{
	(void)arg;
	if (seen.n < (int)(sizeof(seen.r) / sizeof(seen.r[0])))
		seen.r[seen.n] = *r;
	seen.n++;
}

static void
on_error(const char *msg, void *arg)
{
	(void)arg;
	snprintf(seen.error, sizeof(seen.error), "%s", msg);
	seen.errors++;
}

static void
setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/ermd-journal-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(prefix, sizeof(prefix), "%s/ermd.db-breakers", dir);
	memset(&seen, 0, sizeof(seen));
}

static void
teardown(void)
{
	char	cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	ck_assert_int_eq(system(cmd), 0);
}

/* Take what is buffered and write it, as the store's writer would. */
static void
flush(struct journal *j)
{
	struct journal_batch	*b = journal_take(j);

	if (b != NULL) {
		(void)journal_batch_write(b);
		journal_batch_done(b);
	}
}

static struct journal *
jopen(uint64_t min_seq, unsigned *old)
{
	struct journal	*j;
	char		 err[256];

	seen.n = 0;
	j = journal_open(prefix, min_seq, keep, on_error, NULL, old, err,
	    sizeof(err));
	ck_assert_msg(j != NULL, "%s", err);
	return (j);
}

static int
exists(unsigned n)
{
	char	path[300];

	snprintf(path, sizeof(path), "%s.%u", prefix, n);
	return (access(path, F_OK) == 0);
}

static off_t
size_of(unsigned n)
{
	char		path[300];
	struct stat	st;

	snprintf(path, sizeof(path), "%s.%u", prefix, n);
	ck_assert_int_eq(stat(path, &st), 0);
	return (st.st_size);
}

START_TEST(records_come_back)
{
	struct journal	*j;
	unsigned	 old;

	j = jopen(0, &old);
	ck_assert_uint_eq(old, 0);
	ck_assert(exists(1));
	ck_assert_uint_eq(journal_append(j, "s3", 2, 0, 0, 1000), 1);
	ck_assert_uint_eq(journal_append(j, "db.main", 7, 1, 0, 1001), 2);
	ck_assert_uint_eq(journal_append(j, "s3", 2, 1, 1, 1002), 3);
	ck_assert_uint_eq(journal_seq(j), 3);
	ck_assert_uint_eq(journal_bytes(j), 3 * 24 + 2 + 7 + 2);
	flush(j);
	journal_close(j);
	/* Closed, a file is cut to what it holds. */
	ck_assert_int_eq(size_of(1), 8 + 3 * 24 + 11);

	j = jopen(0, &old);
	ck_assert_uint_eq(old, 1);
	ck_assert(exists(2));
	ck_assert_int_eq(seen.n, 3);
	ck_assert_uint_eq(seen.r[0].seq, 1);
	ck_assert_str_eq(seen.r[0].name, "s3");
	ck_assert_uint_eq(seen.r[0].namelen, 2);
	ck_assert_int_eq(seen.r[0].failure, 0);
	ck_assert_int_eq(seen.r[0].slow, 0);
	ck_assert_uint_eq(seen.r[0].at, 1000);
	ck_assert_str_eq(seen.r[1].name, "db.main");
	ck_assert_int_eq(seen.r[1].failure, 1);
	ck_assert_int_eq(seen.r[1].slow, 0);
	ck_assert_uint_eq(seen.r[1].at, 1001);
	ck_assert_uint_eq(seen.r[2].seq, 3);
	ck_assert_int_eq(seen.r[2].failure, 1);
	ck_assert_int_eq(seen.r[2].slow, 1);
	/* Seqs go on after the files' (or the owner's, if higher). */
	ck_assert_uint_eq(journal_append(j, "s3", 2, 0, 0, 1003), 4);
	journal_close(j);		/* writes what is buffered */
	j = jopen(50, &old);
	ck_assert_uint_eq(old, 2);
	ck_assert_int_eq(seen.n, 4);
	ck_assert_uint_eq(seen.r[3].seq, 4);
	ck_assert_uint_eq(journal_append(j, "s3", 2, 0, 0, 1004), 51);
	/* Files 1 and 2 go once the owner says so, with the next write. */
	journal_remove(j, old);
	ck_assert(exists(1) && exists(2));
	flush(j);
	ck_assert(!exists(1) && !exists(2) && exists(3));
	journal_close(j);
	j = jopen(0, &old);
	ck_assert_uint_eq(old, 3);
	ck_assert_int_eq(seen.n, 1);
	ck_assert_uint_eq(seen.r[0].seq, 51);
	journal_close(j);
}
END_TEST

/*
 * An eviction is a record of its own, in seq order with the outcomes; a
 * flags byte that mixes it with an outcome is damage, not a record.
 */
START_TEST(evictions_come_back)
{
	struct journal	*j;
	unsigned	 old;
	unsigned char	 flags = 4 | 1;
	char		 path[300];
	int		 fd;

	j = jopen(0, &old);
	ck_assert_uint_eq(journal_append(j, "s3", 2, 1, 0, 1000), 1);
	ck_assert_uint_eq(journal_append_evicted(j, "s3", 2, 2000), 2);
	ck_assert_uint_eq(journal_append(j, "s3", 2, 0, 1, 2001), 3);
	ck_assert_uint_eq(journal_append_evicted(j, "db", 2, 2002), 4);
	ck_assert_uint_eq(journal_append_evicted(j, "", 0, 2003), 0);
	journal_close(j);
	j = jopen(0, &old);
	ck_assert_int_eq(seen.n, 4);
	ck_assert_int_eq(seen.r[0].evicted, 0);
	ck_assert_int_eq(seen.r[0].failure, 1);
	ck_assert_int_eq(seen.r[1].evicted, 1);
	ck_assert_int_eq(seen.r[1].failure, 0);
	ck_assert_int_eq(seen.r[1].slow, 0);
	ck_assert_str_eq(seen.r[1].name, "s3");
	ck_assert_uint_eq(seen.r[1].at, 2000);
	ck_assert_int_eq(seen.r[2].evicted, 0);
	ck_assert_int_eq(seen.r[2].slow, 1);
	ck_assert_int_eq(seen.r[3].evicted, 1);
	ck_assert_str_eq(seen.r[3].name, "db");
	journal_close(j);

	/* The third record's flags: an eviction and a failure at once. */
	snprintf(path, sizeof(path), "%s.1", prefix);
	fd = open(path, O_WRONLY);
	ck_assert_int_ne(fd, -1);
	ck_assert_int_eq(pwrite(fd, &flags, 1, 8 + 2 * 26 + 5), 1);
	close(fd);
	j = jopen(0, &old);
	ck_assert_int_eq(seen.n, 2);		/* file 1 ends at it */
	ck_assert_uint_eq(seen.r[1].seq, 2);
	journal_close(j);
}
END_TEST

START_TEST(torn_tail_is_dropped)
{
	struct journal	*j;
	unsigned	 old;
	char		 path[300];
	int		 fd;

	j = jopen(0, &old);
	journal_append(j, "a", 1, 0, 0, 1);
	journal_append(j, "bb", 2, 0, 0, 2);
	journal_append(j, "ccc", 3, 1, 0, 3);
	journal_close(j);
	snprintf(path, sizeof(path), "%s.1", prefix);
	/* Cut the last record short, as a power cut might. */
	ck_assert_int_eq(truncate(path, 8 + 25 + 26 + 20), 0);
	j = jopen(0, &old);
	ck_assert_int_eq(seen.n, 2);
	ck_assert_str_eq(seen.r[1].name, "bb");
	ck_assert_uint_eq(journal_append(j, "d", 1, 0, 0, 4), 3);
	journal_close(j);

	/* A flipped byte in the second record ends the file there. */
	ck_assert_int_eq(truncate(path, 8 + 25 + 26), 0);
	fd = open(path, O_WRONLY);
	ck_assert_int_ne(fd, -1);
	ck_assert_int_eq(pwrite(fd, "X", 1, 8 + 25 + 24), 1);	/* "bb" */
	close(fd);
	j = jopen(0, &old);
	ck_assert_int_eq(seen.n, 2);		/* "a" in 1, "d" in 2 */
	ck_assert_str_eq(seen.r[0].name, "a");
	ck_assert_str_eq(seen.r[1].name, "d");
	ck_assert_uint_eq(seen.r[1].seq, 3);
	journal_close(j);
}
END_TEST

START_TEST(foreign_file_is_refused)
{
	struct journal	*j;
	char		 path[300], err[256];
	unsigned	 old;
	FILE		*f;

	snprintf(path, sizeof(path), "%s.7", prefix);
	f = fopen(path, "w");
	fputs("not a journal at all", f);
	fclose(f);
	j = journal_open(prefix, 0, keep, on_error, NULL, &old, err,
	    sizeof(err));
	ck_assert_ptr_null(j);
	ck_assert_str_eq(err + strlen(err) - strlen(": not a breaker journal"),
	    ": not a breaker journal");
	ck_assert(exists(7));			/* never removed */
	/* An empty file (created, never written) is no journal's loss. */
	f = fopen(path, "w");
	fclose(f);
	j = jopen(0, &old);
	ck_assert_uint_eq(old, 7);
	ck_assert_int_eq(seen.n, 0);
	ck_assert(exists(8));
	journal_close(j);
}
END_TEST

START_TEST(rotation)
{
	struct journal	*j;
	unsigned	 old, closed;

	j = jopen(0, &old);
	journal_append(j, "a", 1, 0, 0, 1);
	closed = journal_rotate(j);
	ck_assert_uint_eq(closed, 1);
	ck_assert_uint_eq(journal_rotate(j), 0);	/* one at a time */
	ck_assert_uint_eq(journal_bytes(j), 0);
	journal_append(j, "b", 1, 0, 0, 2);
	flush(j);
	ck_assert_int_eq(size_of(1), 8 + 25);
	ck_assert_uint_eq(journal_rotate(j), 2);
	ck_assert_int_eq(size_of(2), 8 + 25);
	journal_remove(j, closed);
	flush(j);			/* file 1 goes, 3 starts */
	ck_assert(!exists(1));
	ck_assert(exists(2) && exists(3));
	journal_close(j);
	j = jopen(0, &old);
	ck_assert_int_eq(seen.n, 1);
	ck_assert_str_eq(seen.r[0].name, "b");
	ck_assert_uint_eq(old, 3);
	journal_close(j);
}
END_TEST

/*
 * A rotation cuts the file to its records. One asked for while a batch
 * that allocates the file's next step is out waits for that batch, which
 * would otherwise extend the cut file again, a megabyte of zeros.
 */
START_TEST(rotation_waits_for_a_growing_batch)
{
	struct journal		*j;
	struct journal_batch	*b;
	unsigned		 old;
	uint64_t		 n;

	j = jopen(0, &old);
	for (n = 0; n < (1u << 19) / 26 + 1; n++)	/* past half */
		ck_assert_uint_ne(journal_append(j, "s3", 2, 0, 0, 1), 0);
	ck_assert_ptr_nonnull(b = journal_take(j));	/* grows the file */
	ck_assert_uint_eq(journal_rotate(j), 0);
	ck_assert_int_eq(journal_batch_write(b), 0);
	journal_batch_done(b);
	ck_assert_int_eq(size_of(1), 2 << 20);
	ck_assert_uint_eq(journal_rotate(j), 1);
	flush(j);
	ck_assert_int_eq(size_of(1), (off_t)(8 + n * 26));
	journal_close(j);
	j = jopen(0, &old);
	ck_assert_uint_eq((uint64_t)seen.n, n);
	journal_close(j);
}
END_TEST

/*
 * Appends go straight into the file, which grows a step at a time: no
 * ceiling but the disk's. Names of 1 to JOURNAL_NAME_MAX bytes only.
 */
START_TEST(file_grows)
{
	struct journal	*j;
	unsigned	 old;
	char		 name[JOURNAL_NAME_MAX + 1];
	uint64_t	 i, n = (3u << 20) / (24 + JOURNAL_NAME_MAX) + 1;

	j = jopen(0, &old);
	ck_assert_uint_eq(journal_append(j, "", 0, 0, 0, 1), 0);
	memset(name, 'x', sizeof(name));
	ck_assert_uint_eq(journal_append(j, name, JOURNAL_NAME_MAX + 1, 0, 0,
	    1), 0);
	for (i = 0; i < n; i++)
		ck_assert_uint_eq(journal_append(j, name, JOURNAL_NAME_MAX,
		    i & 1, 0, i), i + 1);
	ck_assert_uint_eq(journal_bytes(j), n * (24 + JOURNAL_NAME_MAX));
	ck_assert_int_ge(size_of(1), (off_t)(8 + n * (24 + JOURNAL_NAME_MAX)));
	journal_close(j);
	j = jopen(0, &old);
	ck_assert_uint_eq((uint64_t)seen.n, n);
	ck_assert_uint_eq(seen.r[2047].seq, 2048);
	ck_assert_int_eq(seen.r[2047].failure, 1);
	journal_close(j);
}
END_TEST

/*
 * What was appended is in the file the moment journal_append returns: a
 * process killed then, with nothing taken or written by the store, loses
 * none of it.
 */
START_TEST(records_survive_a_kill)
{
	struct journal	*j;
	unsigned	 old;
	pid_t		 pid;
	int		 status, i;
	char		 name[16];

	if ((pid = fork()) == 0) {
		char	err[256];

		j = journal_open(prefix, 0, keep, on_error, NULL, &old, err,
		    sizeof(err));
		if (j == NULL)
			_exit(1);
		for (i = 0; i < 1000; i++) {
			snprintf(name, sizeof(name), "k%d", i);
			if (journal_append(j, name, strlen(name), i % 3 == 0,
			    0, (uint64_t)i) != (uint64_t)i + 1)
				_exit(2);
		}
		kill(getpid(), SIGKILL);
		_exit(3);
	}
	ck_assert_int_ne(pid, -1);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	j = jopen(0, &old);
	ck_assert_uint_eq(old, 1);
	ck_assert_int_eq(seen.n, 1000);
	for (i = 0; i < 1000; i++) {
		snprintf(name, sizeof(name), "k%d", i);
		ck_assert_str_eq(seen.r[i].name, name);
		ck_assert_uint_eq(seen.r[i].seq, (uint64_t)i + 1);
		ck_assert_int_eq(seen.r[i].failure, i % 3 == 0);
	}
	journal_close(j);
}
END_TEST

/*
 * Batches (the syncs the store's writer makes) taken one after the other
 * and written in that order keep the records' order across a rotation; a
 * batch that never got written (the store failed) breaks the journal.
 */
START_TEST(batches_in_order)
{
	struct journal		*j;
	struct journal_batch	*b[20];
	unsigned		 old;
	char			 name[16];
	int			 i, k;

	j = jopen(0, &old);
	for (i = 0; i < 20; i++) {
		for (k = 0; k < 100; k++) {
			snprintf(name, sizeof(name), "b%d", i * 100 + k);
			journal_append(j, name, strlen(name), k & 1, 0,
			    (uint64_t)(i * 100 + k));
		}
		if (i == 10)
			journal_rotate(j);
		b[i] = journal_take(j);
		ck_assert_ptr_nonnull(b[i]);
	}
	ck_assert_ptr_null(journal_take(j));	/* nothing new */
	for (i = 0; i < 20; i++)
		ck_assert_int_eq(journal_batch_write(b[i]), 0);
	/* The store may run a job twice: the second write is none. */
	ck_assert_int_eq(journal_batch_write(b[3]), 0);
	for (i = 0; i < 20; i++)
		journal_batch_done(b[i]);
	ck_assert_int_eq(seen.errors, 0);
	journal_close(j);
	j = jopen(0, &old);
	ck_assert_uint_eq(old, 2);
	ck_assert_int_eq(seen.n, 2000);
	for (i = 0; i < 2000; i++) {
		snprintf(name, sizeof(name), "b%d", i);
		ck_assert_str_eq(seen.r[i].name, name);
		ck_assert_uint_eq(seen.r[i].seq, (uint64_t)i + 1);
		ck_assert_uint_eq(seen.r[i].at, (uint64_t)i);
		ck_assert_int_eq(seen.r[i].failure, i & 1);
	}
	journal_append(j, "x", 1, 0, 0, 1);
	b[0] = journal_take(j);
	journal_batch_done(b[0]);		/* never written */
	ck_assert_int_eq(seen.errors, 1);
	ck_assert_str_eq(seen.error, "not written");
	ck_assert(journal_broken(j));
	ck_assert_uint_eq(journal_append(j, "x", 1, 0, 0, 1), 0);
	ck_assert_ptr_null(journal_take(j));
	journal_close(j);
}
END_TEST

/*
 * A 2 MiB tmpfs on dir/tmpfs for the journal (prefix), in a mount
 * namespace of this test's own process (Check forks one per test): a
 * failure cannot leave it behind. -1 after saying why (the test skips).
 */
static int
small_tmpfs(const char *test, char *mnt, size_t sz)
{
	if (geteuid() != 0) {
		fprintf(stderr, "%s: skipped (needs root)\n", test);
		return (-1);
	}
	snprintf(mnt, sz, "%s/tmpfs", dir);
	ck_assert_int_eq(mkdir(mnt, 0700), 0);
	if (unshare(CLONE_NEWNS) == -1 || mount(NULL, "/", NULL, MS_REC |
	    MS_PRIVATE, NULL) == -1 || mount("tmpfs", mnt, "tmpfs", 0,
	    "size=2m") == -1) {
		fprintf(stderr, "%s: skipped (mount tmpfs: %s)\n", test,
		    strerror(errno));
		return (-1);
	}
	snprintf(prefix, sizeof(prefix), "%s/ermd.db-breakers", mnt);
	return (0);
}

/* Fill the file system of mnt with mnt/filler (its path in path). */
static void
fill(const char *mnt, char *path, size_t sz)
{
	char	 buf[65536];
	FILE	*fp;

	snprintf(path, sz, "%s/filler", mnt);
	ck_assert_ptr_nonnull(fp = fopen(path, "w"));
	memset(buf, 'x', sizeof(buf));
	while (fwrite(buf, 1, sizeof(buf), fp) == sizeof(buf))
		;
	fclose(fp);
}

/*
 * Past half its last step, the file's next step is allocated by the batch
 * (on the store's writer, not on the loop): once that batch is done, a
 * disk that fills up leaves the journal a whole step more to append into.
 */
START_TEST(grows_ahead_in_the_batch)
{
	struct journal	*j;
	unsigned	 old;
	char		 mnt[128], path[300];
	uint64_t	 n;

	if (small_tmpfs("grows_ahead_in_the_batch", mnt, sizeof(mnt)) == -1)
		return;
	j = jopen(0, &old);
	for (n = 0; n < (1u << 19) / 26 + 1; n++)	/* past half */
		ck_assert_uint_ne(journal_append(j, "s3", 2, 0, 0, 1), 0);
	ck_assert_int_eq(size_of(1), 1 << 20);
	flush(j);
	ck_assert_int_eq(size_of(1), 2 << 20);
	fill(mnt, path, sizeof(path));
	while (journal_append(j, "s3", 2, 0, 0, 1) != 0)
		n++;
	ck_assert_uint_eq(n, ((2u << 20) - 8) / 26);
	ck_assert_int_eq(seen.errors, 1);
	journal_close(j);
	ck_assert_int_eq(umount(mnt), 0);
}
END_TEST

/*
 * A full disk breaks the journal when its file cannot grow, says why, and
 * refuses more records; a new file starts once there is room.
 */
START_TEST(full_disk)
{
	struct journal	*j;
	unsigned	 old;
	char		 mnt[128], path[300], want[400];
	int		 i;
	uint64_t	 n;

	if (small_tmpfs("full_disk", mnt, sizeof(mnt)) == -1)
		return;
	j = jopen(0, &old);
	ck_assert_int_eq(journal_revive(j), -1);	/* not broken */
	fill(mnt, path, sizeof(path));
	/* The file's first step was allocated before the disk filled. */
	for (n = 0; journal_append(j, "s3", 2, 0, 0, 1) != 0; n++)
		;
	ck_assert_uint_eq(n, ((1u << 20) - 8) / 26);	/* after the magic */
	ck_assert_int_eq(seen.errors, 1);
	snprintf(want, sizeof(want), "%s.1: cannot grow: No space left on "
	    "device", prefix);
	ck_assert_str_eq(seen.error, want);
	ck_assert(journal_broken(j));
	ck_assert_uint_eq(journal_append(j, "s3", 2, 0, 0, 1), 0);
	ck_assert_ptr_null(journal_take(j));

	/* Tried again while still full: a new file cannot start. */
	ck_assert_int_eq(journal_revive(j), 0);
	ck_assert_int_eq(seen.errors, 2);
	snprintf(want, sizeof(want), "%s.2: cannot start a new file: No "
	    "space left on device", prefix);
	ck_assert_str_eq(seen.error, want);
	ck_assert(journal_broken(j));
	ck_assert(!exists(2));			/* nothing half made */

	/* Room again: the next file takes the records. */
	ck_assert_int_eq(unlink(path), 0);
	ck_assert_int_eq(journal_revive(j), 0);
	ck_assert(!journal_broken(j));
	for (i = 0; i < 3; i++)
		ck_assert_uint_eq(journal_append(j, "s3", 2, 1, 0, 7),
		    n + 1 + (uint64_t)i);
	flush(j);
	ck_assert_int_eq(seen.errors, 2);
	journal_close(j);
	ck_assert_int_eq(size_of(3), 8 + 3 * 26);

	/*
	 * Reading: file 1 up to where the disk filled, then file 3, in seq
	 * order.
	 */
	j = jopen(0, &old);
	ck_assert_uint_eq(old, 3);
	ck_assert_int_eq(size_of(1), 8 + (off_t)n * 26);
	ck_assert_int_eq(seen.n, (int)n + 3);
	for (i = 0; i < 3; i++) {
		ck_assert_uint_eq(seen.r[seen.n - 3 + i].seq,
		    n + 1 + (uint64_t)i);
		ck_assert_int_eq(seen.r[seen.n - 3 + i].failure, 1);
		ck_assert_uint_eq(seen.r[seen.n - 3 + i].at, 7);
	}
	journal_close(j);
	ck_assert_int_eq(umount(mnt), 0);
}
END_TEST

int
main(void)
{
	Suite	*s = suite_create("journal");
	TCase	*tc = tcase_create("journal");
	SRunner	*sr;
	int	 failed;

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, records_come_back);
	tcase_add_test(tc, evictions_come_back);
	tcase_add_test(tc, torn_tail_is_dropped);
	tcase_add_test(tc, foreign_file_is_refused);
	tcase_add_test(tc, rotation);
	tcase_add_test(tc, rotation_waits_for_a_growing_batch);
	tcase_add_test(tc, file_grows);
	tcase_add_test(tc, records_survive_a_kill);
	tcase_add_test(tc, batches_in_order);
	tcase_add_test(tc, full_disk);
	tcase_add_test(tc, grows_ahead_in_the_batch);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return (failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE);
}
