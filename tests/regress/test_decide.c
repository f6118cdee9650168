/*
 * The decision core over the socket: breaker leases and disconnects,
 * durability across kill -9, events, forced states, the retry budget under
 * a storm from many processes, ops, and ermctl run / classify.
 */

#include <sys/stat.h>
#include <sys/wait.h>

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "erm.h"
#include "harness.h"

static struct daemon	d;

static const char *const manual[] = { "--manual-clock", NULL };

static void
stop(void)
{
	if (d.pid > 0)
		ck_assert_int_eq(daemon_stop(&d), 0);
}

/* kill -9 the daemon, start it again; a connection to the new one. */
static int
kill9_and_reconnect(int fd)
{
	close(fd);
	daemon_kill9(&d);
	daemon_restart(&d);
	return (raw_connect(d.sock));
}

static const char *
rstr(json_t *r, const char *key)
{
	return (json_string_value(json_object_get(result(r), key)));
}

static json_int_t
rnum(json_t *r, const char *key)
{
	return (json_integer_value(json_object_get(result(r), key)));
}

static const char *
state_of(int fd, const char *name)
{
	static char	 s[32];
	json_t		*r = call_on(fd, "{\"id\":1,\"method\":\"breaker.get\","
	    "\"params\":{\"name\":\"%s\"}}", name);

	snprintf(s, sizeof(s), "%s", rstr(r, "state"));
	json_decref(r);
	return (s);
}

static void
fail_n(int fd, const char *name, int n)
{
	int	 i;

	for (i = 0; i < n; i++)
		json_decref(call_on(fd, "{\"id\":1,\"method\":\"breaker.record\","
		    "\"params\":{\"name\":\"%s\",\"outcome\":\"failure\","
		    "\"error\":{\"errno\":\"ECONNRESET\"}}}", name));
}

START_TEST(consecutive_failures_open_and_recover)
{
	int	 fd;
	json_t	*r;

	daemon_start(&d, "[breaker.s3]\nrecovery_timeout_ms = 1000\n", manual);
	fd = raw_connect(d.sock);
	fail_n(fd, "s3", 4);
	ck_assert_str_eq(state_of(fd, "s3"), "closed");
	fail_n(fd, "s3", 1);
	ck_assert_str_eq(state_of(fd, "s3"), "open");
	r = call_on(fd, "{\"id\":2,\"method\":\"breaker.acquire\","
	    "\"params\":{\"name\":\"s3\"}}");
	ck_assert_int_eq(reply_code(r), 1004);
	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(
	    json_object_get(r, "error"), "data"), "retry_after_ms")), 1000);
	json_decref(r);
	/* The timer moves it to half_open without any traffic. */
	advance_on(fd, 1000);
	ck_assert_str_eq(state_of(fd, "s3"), "half_open");
	r = call_on(fd, "{\"id\":3,\"method\":\"breaker.acquire\","
	    "\"params\":{\"name\":\"s3\"}}");
	ck_assert(json_is_true(json_object_get(result(r), "allowed")));
	{
		char	permit[64];

		snprintf(permit, sizeof(permit), "%s", rstr(r, "permit"));
		json_decref(r);
		/* Exactly one trial permit by default. */
		r = call_on(fd, "{\"id\":4,\"method\":\"breaker.acquire\","
		    "\"params\":{\"name\":\"s3\"}}");
		ck_assert_int_eq(reply_code(r), 1004);
		json_decref(r);
		r = call_on(fd, "{\"id\":5,\"method\":\"breaker.record\","
		    "\"params\":{\"name\":\"s3\",\"permit\":\"%s\","
		    "\"outcome\":\"success\"}}", permit);
		ck_assert_str_eq(rstr(r, "state"), "closed");
		ck_assert(json_is_true(json_object_get(result(r),
		    "recorded")));
		json_decref(r);
	}
	close(fd);
	assert_serves(&d);
}
END_TEST

/* breaker.acquire with wait_ms waits for the breaker to let a call
 * through; past the wait it is refused as usual. */
START_TEST(acquire_waits_for_half_open)
{
	int	 fd, waiter;
	json_t	*r;

	daemon_start(&d, "[breaker.w]\nrecovery_timeout_ms = 1000\n"
	    "failure_threshold = 1\n", manual);
	fd = raw_connect(d.sock);
	waiter = raw_connect(d.sock);
	fail_n(fd, "w", 1);
	raw_send_frame(waiter, "{\"id\":7,\"method\":\"breaker.acquire\","
	    "\"params\":{\"name\":\"w\",\"wait_ms\":5000}}");
	ck_assert_ptr_null(raw_recv(waiter, 200));	/* still waiting */
	advance_on(fd, 1000);
	r = raw_recv(waiter, 5000);
	ck_assert_ptr_nonnull(r);
	ck_assert(json_is_true(json_object_get(result(r), "allowed")));
	ck_assert_str_eq(rstr(r, "state"), "half_open");
	json_decref(r);
	/* The only trial permit is out: a second waiter gives up at its
	 * deadline with 1004. */
	raw_send_frame(waiter, "{\"id\":8,\"method\":\"breaker.acquire\","
	    "\"params\":{\"name\":\"w\",\"wait_ms\":100}}");
	ck_assert_ptr_null(raw_recv(waiter, 200));
	advance_on(fd, 100);
	r = raw_recv(waiter, 5000);
	ck_assert_ptr_nonnull(r);
	ck_assert_int_eq(reply_code(r), 1004);
	json_decref(r);
	close(waiter);
	close(fd);
	assert_serves(&d);
}
END_TEST

/*
 * A wait still running when ermd stops is answered then, as if its
 * wait_ms had run out, before the connection closes; ermd exits 0.
 */
START_TEST(acquire_wait_answered_at_stop)
{
	int	 fd, waiter;
	json_t	*r;

	daemon_start(&d, NULL, NULL);
	fd = raw_connect(d.sock);
	waiter = raw_connect(d.sock);
	r = call_on(fd, "{\"id\":1,\"method\":\"breaker.force\","
	    "\"params\":{\"name\":\"held\",\"state\":\"forced_open\"}}");
	ck_assert_int_eq(reply_code(r), 0);
	json_decref(r);
	close(fd);
	raw_send_frame(waiter, "{\"id\":9,\"method\":\"breaker.acquire\","
	    "\"params\":{\"name\":\"held\",\"wait_ms\":300000}}");
	ck_assert_ptr_null(raw_recv(waiter, 300));	/* waiting */
	ck_assert_int_eq(daemon_stop_keep(&d), 0);
	r = raw_recv(waiter, 5000);
	ck_assert_ptr_nonnull(r);
	ck_assert_int_eq(json_integer_value(json_object_get(r, "id")), 9);
	ck_assert_int_eq(reply_code(r), 1004);
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(
	    json_object_get(r, "error"), "data"), "state")), "forced_open");
	json_decref(r);
	ck_assert(raw_closed(waiter, 5000));
	close(waiter);
	daemon_restart(&d);
	assert_serves(&d);
}
END_TEST

/* A half-open permit whose connection closes counts as a failure. */
START_TEST(lease_of_a_closed_connection)
{
	int	 fd, holder;
	json_t	*r;

	daemon_start(&d, "[breaker.db]\nrecovery_timeout_ms = 500\n"
	    "failure_threshold = 1\n", manual);
	fd = raw_connect(d.sock);
	fail_n(fd, "db", 1);
	advance_on(fd, 500);
	ck_assert_str_eq(state_of(fd, "db"), "half_open");
	holder = raw_connect(d.sock);
	r = call_on(holder, "{\"id\":1,\"method\":\"breaker.acquire\","
	    "\"params\":{\"name\":\"db\"}}");
	ck_assert(json_is_true(json_object_get(result(r), "allowed")));
	json_decref(r);
	close(holder);
	usleep(100000);
	ck_assert_str_eq(state_of(fd, "db"), "open");
	r = call_on(fd, "{\"id\":1,\"method\":\"breaker.get\","
	    "\"params\":{\"name\":\"db\"}}");
	ck_assert_int_eq(rnum(r, "open_count"), 2);
	json_decref(r);
	close(fd);
}
END_TEST

/* A permit not recorded within permit_ttl_ms: in closed it is released
 * without an outcome; a late record of it records nothing. */
START_TEST(permit_ttl_and_stale_generation)
{
	int	 fd;
	json_t	*r;
	char	 permit[64];

	daemon_start(&d, "[breaker]\npermit_ttl_ms = 100\n", manual);
	fd = raw_connect(d.sock);
	r = call_on(fd, "{\"id\":1,\"method\":\"breaker.acquire\","
	    "\"params\":{\"name\":\"x\"}}");
	snprintf(permit, sizeof(permit), "%s", rstr(r, "permit"));
	json_decref(r);
	advance_on(fd, 150);
	r = call_on(fd, "{\"id\":2,\"method\":\"breaker.record\","
	    "\"params\":{\"name\":\"x\",\"permit\":\"%s\","
	    "\"outcome\":\"failure\"}}", permit);
	ck_assert(json_is_false(json_object_get(result(r), "recorded")));
	json_decref(r);
	r = call_on(fd, "{\"id\":3,\"method\":\"breaker.get\","
	    "\"params\":{\"name\":\"x\"}}");
	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(
	    result(r), "window"), "failures")), 0);
	json_decref(r);
	close(fd);
}
END_TEST

START_TEST(state_survives_kill9)
{
	int	 fd;
	json_t	*r;

	daemon_start(&d, "[breaker.s3]\nrecovery_timeout_ms = 600000\n", NULL);
	fd = raw_connect(d.sock);
	/*
	 * Window counters are written in the background; the reply that
	 * reveals s3's opening waits for a commit that comes after them.
	 */
	fail_n(fd, "other", 3);
	fail_n(fd, "s3", 5);
	ck_assert_str_eq(state_of(fd, "s3"), "open");
	fd = kill9_and_reconnect(fd);
	ck_assert_str_eq(state_of(fd, "s3"), "open");
	r = call_on(fd, "{\"id\":1,\"method\":\"breaker.get\","
	    "\"params\":{\"name\":\"s3\"}}");
	ck_assert_int_eq(rnum(r, "open_count"), 1);
	ck_assert_int_eq(rnum(r, "generation"), 1);
	ck_assert_int_le(rnum(r, "retry_after_ms"), 600000);
	ck_assert_int_gt(rnum(r, "retry_after_ms"), 590000);
	json_decref(r);
	/* Counters recorded before a state change's commit are kept. */
	r = call_on(fd, "{\"id\":1,\"method\":\"breaker.get\","
	    "\"params\":{\"name\":\"other\"}}");
	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(
	    result(r), "window"), "consecutive_failures")), 3);
	json_decref(r);
	close(fd);
}
END_TEST

/*
 * Outcomes that only move windows go to the journal; past
 * breaker_journal_bytes a compaction rewrites the snapshots and removes
 * the old file. After kill -9 every window is exact: snapshot plus the
 * journal records after it.
 */
static void
record_n(int fd, const char *name, const char *outcome, int n)
{
	int	 i;

	for (i = 0; i < n; i++)
		json_decref(call_on(fd, "{\"id\":1,\"method\":"
		    "\"breaker.record\",\"params\":{\"name\":\"%s\","
		    "\"outcome\":\"%s\"}}", name, outcome));
}

/*
 * The records in a breaker journal file, walked by their lengths (see
 * daemon/journal.h) up to the first without a name: the allocated rest.
 */
static int
journal_records(const char *path)
{
	unsigned char	 hdr[24];
	FILE		*f;
	int		 n = 0;

	ck_assert_ptr_nonnull(f = fopen(path, "r"));
	ck_assert_int_eq(fseek(f, 8, SEEK_SET), 0);
	while (fread(hdr, 1, sizeof(hdr), f) == sizeof(hdr) && hdr[4] != 0 &&
	    fseek(f, hdr[4], SEEK_CUR) == 0)
		n++;
	fclose(f);
	return (n);
}

/*
 * Whether journal file n exists once the store's writer has caught up
 * (it writes in the background of the reply that ran the timer): waits
 * up to 10 s for the expected answer.
 */
static int
journal_exists(unsigned n, int expect)
{
	char	path[300];
	int	i, e = !expect;

	snprintf(path, sizeof(path), "%s/ermd.db-breakers.%u", d.state, n);
	for (i = 0; i < 1000 && (e = access(path, F_OK) == 0) != expect; i++)
		usleep(10000);
	return (e);
}

/* Run the flush timer until journal file n is gone (the compaction's
 * commit comes back to the loop in the background). */
static void
flush_until_gone(int fd, unsigned n)
{
	char	path[300];
	int	i, k;

	snprintf(path, sizeof(path), "%s/ermd.db-breakers.%u", d.state, n);
	for (i = 0; i < 50; i++) {
		advance_on(fd, 100);
		for (k = 0; k < 100 && access(path, F_OK) == 0; k++)
			usleep(10000);
		if (access(path, F_OK) != 0)
			return;
	}
	ck_abort_msg("%s is still there", path);
}

/*
 * Force an unrelated breaker open: its reply waits for a commit that holds
 * everything recorded before it (journal records and snapshots). Then
 * kill -9, restart, and return a new connection.
 */
static int
commit_and_kill9(int fd)
{
	json_decref(call_on(fd, "{\"id\":1,\"method\":\"breaker.force\","
	    "\"params\":{\"name\":\"zz\",\"state\":\"forced_open\"}}"));
	return (kill9_and_reconnect(fd));
}

static void
expect_window(int fd, const char *name, int calls, int failures)
{
	json_t	*r, *w;

	r = call_on(fd, "{\"id\":1,\"method\":\"breaker.get\","
	    "\"params\":{\"name\":\"%s\"}}", name);
	w = json_object_get(result(r), "window");
	ck_assert_msg(json_integer_value(json_object_get(w, "calls")) ==
	    calls && json_integer_value(json_object_get(w, "failures")) ==
	    failures, "%s: window %s, want %d calls, %d failures", name,
	    json_dumps(w, 0), calls, failures);
	json_decref(r);
}

/*
 * Every recorded outcome survives a kill -9 at once: the clock stands
 * still (no flush has run, nothing reached SQLite), yet after the restart
 * each window holds exactly what the replies confirmed.
 */
START_TEST(window_survives_kill9_at_once)
{
	int	 fd, i;
	char	 name[16];

	daemon_start(&d, "[breaker]\nwindow = count\nwindow_size = 50\n"
	    "minimum_calls = 50\nfailure_rate_threshold = 100\n", manual);
	fd = raw_connect(d.sock);
	for (i = 0; i < 20; i++) {
		snprintf(name, sizeof(name), "k%02d", i);
		record_n(fd, name, "success", 1 + i);
		record_n(fd, name, "failure", i % 7);
	}
	fd = kill9_and_reconnect(fd);
	for (i = 0; i < 20; i++) {
		snprintf(name, sizeof(name), "k%02d", i);
		expect_window(fd, name, 1 + i + i % 7, i % 7);
	}
	close(fd);
	assert_serves(&d);
}
END_TEST

static void
expect_gone(int fd, const char *name)
{
	json_t	*r;

	r = call_on(fd, "{\"id\":1,\"method\":\"breaker.get\","
	    "\"params\":{\"name\":\"%s\"}}", name);
	ck_assert_msg(reply_code(r) == 1001, "%s: still there", name);
	json_decref(r);
}

/*
 * A breaker evicted and made again before the eviction was stored comes
 * back after a kill -9 with the new one's outcomes only: first while the
 * old row is still there, then once it has gone. One evicted and not
 * made again stays gone.
 */
START_TEST(evicted_breaker_comes_back_new)
{
	int	 fd;

	daemon_start(&d, "[breaker]\nwindow = count\nwindow_size = 50\n"
	    "minimum_calls = 50\nfailure_rate_threshold = 100\n"
	    "idle_evict_ms = 1000\n", manual);
	fd = raw_connect(d.sock);
	record_n(fd, "ev", "failure", 5);
	record_n(fd, "ex", "failure", 5);
	advance_on(fd, 1000);	/* rows stored at 100, evicted at 1000 */
	expect_gone(fd, "ev");
	expect_gone(fd, "ex");
	record_n(fd, "ev", "success", 2);
	fd = kill9_and_reconnect(fd);
	expect_window(fd, "ev", 2, 0);
	expect_gone(fd, "ex");

	/* Now the row's delete is stored before the breaker is made
	 * again: its records are all the replay has. */
	record_n(fd, "ew", "failure", 5);
	advance_on(fd, 1000);
	expect_gone(fd, "ew");
	advance_on(fd, 100);
	record_n(fd, "ew", "success", 1);
	record_n(fd, "ew", "failure", 1);
	fd = kill9_and_reconnect(fd);
	expect_window(fd, "ew", 2, 1);
	expect_gone(fd, "ex");
	close(fd);
	assert_serves(&d);
}
END_TEST

START_TEST(window_counters_journal_and_compaction)
{
	int	 fd, i;
	char	 name[16];

	daemon_start(&d, "[store]\nbreaker_journal_bytes = 65536\n"
	    "[breaker]\nwindow = count\nwindow_size = 100\n"
	    "minimum_calls = 100\nfailure_threshold = 1000\n", manual);
	fd = raw_connect(d.sock);
	/* 300 breakers x 10 outcomes: about 85 KB of journal. */
	for (i = 0; i < 300; i++) {
		snprintf(name, sizeof(name), "w%03d", i);
		record_n(fd, name, "success", 10 - i % 5);
		record_n(fd, name, "failure", i % 5);
	}
	ck_assert(journal_exists(1, 1));
	advance_on(fd, 100);	/* written; full, so compacted; file 2 */
	ck_assert(journal_exists(2, 1));
	record_n(fd, "w000", "failure", 2);
	record_n(fd, "w299", "success", 3);
	flush_until_gone(fd, 1);	/* these, and file 1 goes */
	ck_assert(journal_exists(2, 1));
	/* No timer now: see commit_and_kill9. */
	record_n(fd, "w001", "failure", 1);
	fd = commit_and_kill9(fd);
	for (i = 0; i < 300; i++) {
		snprintf(name, sizeof(name), "w%03d", i);
		expect_window(fd, name, 10 + (i == 0 ? 2 : 0) + (i == 299 ?
		    3 : 0) + (i == 1 ? 1 : 0), i % 5 + (i == 0 ? 2 : 0) +
		    (i == 1 ? 1 : 0));
	}
	/* Start-up rewrote the snapshots: file 2 goes with the next
	 * batch, and 3 takes the new records. */
	ck_assert(journal_exists(3, 1));
	record_n(fd, "w002", "success", 1);
	flush_until_gone(fd, 2);
	fd = kill9_and_reconnect(fd);
	expect_window(fd, "w002", 11, 2);
	expect_window(fd, "w000", 12, 2);
	close(fd);
}
END_TEST

/*
 * A state change whose snapshot could not be stored (a full disk: the
 * reply says 1006) is stored once space returns, though nothing changes
 * the breaker again: after kill -9 it is still forced open.
 */
START_TEST(failed_snapshot_is_stored_later)
{
	char	 path[300], name[16];
	json_t	*r;
	int	 fd, i, code = 0;

	daemon_prepare(&d);
	ck_assert_int_eq(mkdir(d.state, 0700), 0);
	if (mount_small_tmpfs(d.state, "2m") == -1)
		return;
	daemon_start_env(&d, NULL, manual, NULL, -1);
	fd = raw_connect(d.sock);
	fill_up(d.state);
	/* The WAL may still have room for a few. */
	for (i = 0; i < 500 && code == 0; i++) {
		snprintf(name, sizeof(name), "f%03d", i);
		r = call_on(fd, "{\"id\":1,\"method\":\"breaker.force\","
		    "\"params\":{\"name\":\"%s\",\"state\":"
		    "\"forced_open\"}}", name);
		code = reply_code(r);
		json_decref(r);
	}
	ck_assert_int_eq(code, 1006);
	ck_assert(daemon_log_has(&d, "trying again in 1000 ms", 10000));
	snprintf(path, sizeof(path), "%s/filler", d.state);
	ck_assert_int_eq(unlink(path), 0);
	advance_on(fd, 1000);
	fd = commit_and_kill9(fd);
	r = call_on(fd, "{\"id\":1,\"method\":\"breaker.get\","
	    "\"params\":{\"name\":\"%s\"}}", name);
	ck_assert_str_eq(json_string_value(json_object_get(result(r),
	    "state")), "forced_open");
	json_decref(r);
	close(fd);
	assert_serves(&d);
	daemon_stop_unmount(&d);
}
END_TEST

/*
 * A compaction rewrites only the snapshots of breakers with outcomes
 * journalled since their last one: after a first compaction of all 100,
 * a journal file filled by 5 of them rewrites those 5, and the other 95,
 * whose records in the files removed were in their snapshots already,
 * keep every outcome across kill -9.
 */
START_TEST(compaction_rewrites_only_what_moved)
{
	int	 fd, i;
	char	 name[16];

	daemon_start(&d, "[store]\nbreaker_journal_bytes = 65536\n"
	    "[breaker]\nwindow = count\nwindow_size = 1000\n"
	    "minimum_calls = 1000\nfailure_threshold = 100000\n", manual);
	fd = raw_connect(d.sock);
	/* 100 x 25 records of 28 bytes: past 64 KiB. */
	for (i = 0; i < 100; i++) {
		snprintf(name, sizeof(name), "m%03d", i);
		record_n(fd, name, "success", 25);
	}
	advance_on(fd, 100);
	ck_assert_msg(daemon_log_has(&d, "journal file 1 full, rewriting 100 "
	    "snapshots", 10000), "no compaction of the 100");
	flush_until_gone(fd, 1);
	/* 5 x 480 more on 5 of them. */
	for (i = 0; i < 5; i++) {
		snprintf(name, sizeof(name), "m%03d", i * 20);
		record_n(fd, name, "failure", 480);
	}
	advance_on(fd, 100);
	ck_assert_msg(daemon_log_has(&d, "journal file 2 full, rewriting 5 "
	    "snapshots", 10000), "the compaction did not take only the 5");
	flush_until_gone(fd, 2);
	fd = commit_and_kill9(fd);
	for (i = 0; i < 100; i++) {
		snprintf(name, sizeof(name), "m%03d", i);
		expect_window(fd, name, i % 20 == 0 ? 505 : 25,
		    i % 20 == 0 ? 480 : 0);
	}
	close(fd);
}
END_TEST

/*
 * A full disk breaks the journal: the daemon says so, keeps serving, and
 * the windows go into the snapshots again, which are written once space
 * returns. A minute later (daemon clock) the journal starts a new file
 * and outcomes go there again. After kill -9 every outcome is there.
 */
START_TEST(journal_on_a_full_disk)
{
	char	 path[300];
	json_t	*r;
	int	 fd, i;

	daemon_prepare(&d);
	ck_assert_int_eq(mkdir(d.state, 0700), 0);
	if (mount_small_tmpfs(d.state, "3m") == -1)
		return;
	daemon_start_env(&d, "[breaker]\nwindow = count\n"
	    "window_size = 1000\nminimum_calls = 1000\n"
	    "failure_threshold = 100000\n", manual, NULL, -1);
	fd = raw_connect(d.sock);
	record_n(fd, "j", "success", 3);
	advance_on(fd, 100);
	fill_up(d.state);
	/*
	 * The journal's file had its first step allocated before the disk
	 * filled: outcomes go there until it is used up (about 42,000 of
	 * them), then the file cannot grow.
	 */
	for (i = 0; i < 60 && !daemon_log_has(&d, "window counters go into "
	    "the snapshots", 0); i++)
		record_n(fd, "j", "success", 1000);
	ck_assert_msg(i >= 40 && i < 60, "the journal did not report the "
	    "full disk (after %d000 outcomes)", i);
	ck_assert(daemon_log_has(&d, "ermd.db-breakers.1: cannot grow: No "
	    "space left on device", 0));
	expect_window(fd, "j", 1000, 0);
	r = call_on(fd, "{\"id\":1,\"method\":\"status\"}");
	ck_assert(json_is_true(json_object_get(json_object_get(result(r),
	    "store"), "ok")));
	json_decref(r);
	/* Space returns: the next snapshot holds the whole window. */
	snprintf(path, sizeof(path), "%s/filler", d.state);
	ck_assert_int_eq(unlink(path), 0);
	record_n(fd, "j", "failure", 2);
	/* A minute on, the next flush starts journal file 2... */
	advance_on(fd, 60000);
	record_n(fd, "j", "success", 1);
	advance_on(fd, 100);
	ck_assert(journal_exists(2, 1));
	ck_assert_msg(daemon_log_has(&d, "ermd.db-breakers.2: the journal is "
	    "written again", 10000), "the journal was not tried again");
	/* ...and outcomes go there again, at once. */
	record_n(fd, "j", "failure", 4);
	snprintf(path, sizeof(path), "%s/ermd.db-breakers.2", d.state);
	ck_assert_int_eq(journal_records(path), 4);
	fd = commit_and_kill9(fd);
	/* The last 1000: 993 of the first successes, 2 failures, a
	 * success, 4 failures. */
	expect_window(fd, "j", 1000, 6);
	close(fd);
	assert_serves(&d);
	daemon_stop_unmount(&d);
}
END_TEST

/*
 * ermctl events --type: only the types asked for, one line each, until
 * SIGTERM (exit 0).
 */
START_TEST(ermctl_events_by_type)
{
	static const char *const events[] = { "events", "--type",
	    "breaker.state", NULL };
	char	 out[300], buf[4096];
	FILE	*fp;
	pid_t	 pid;
	int	 fd, status, i;
	size_t	 n;

	daemon_start(&d, NULL, NULL);
	snprintf(out, sizeof(out), "%s/events.out", d.dir);
	pid = ermctl_start(&d, out, events);
	fd = raw_connect(d.sock);
	/* Subscribing takes a moment: force until the first line shows. */
	for (i = 0; i < 200; i++) {
		json_decref(call_on(fd, "{\"id\":1,\"method\":"
		    "\"breaker.force\",\"params\":{\"name\":\"ev\","
		    "\"state\":\"%s\"}}", i % 2 ? "closed" : "forced_open"));
		if ((fp = fopen(out, "r")) != NULL) {
			n = fread(buf, 1, sizeof(buf) - 1, fp);
			fclose(fp);
			buf[n] = '\0';
			if (strstr(buf, "name=ev ") != NULL)
				break;
		}
		usleep(20000);
	}
	ck_assert_int_lt(i, 200);
	json_decref(call_on(fd, "{\"id\":1,\"method\":\"error.report\","
	    "\"params\":{\"operation\":\"x\",\"errno\":5}}"));
	json_decref(call_on(fd, "{\"id\":1,\"method\":\"breaker.force\","
	    "\"params\":{\"name\":\"last\",\"state\":\"forced_open\"}}"));
	for (i = 0; i < 250; i++) {
		fp = fopen(out, "r");
		n = fread(buf, 1, sizeof(buf) - 1, fp);
		fclose(fp);
		buf[n] = '\0';
		if (strstr(buf, "type=breaker.state at=") != NULL &&
		    strstr(buf, "name=last from=closed to=forced_open "
		    "reason=forced\n") != NULL)
			break;
		usleep(20000);
	}
	ck_assert_int_lt(i, 250);
	ck_assert_ptr_null(strstr(buf, "error.reported"));
	kill(pid, SIGTERM);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	close(fd);
}
END_TEST

START_TEST(events_and_forced_states)
{
	int	 fd, sub;
	json_t	*r, *ev;

	daemon_start(&d, NULL, manual);
	fd = raw_connect(d.sock);
	sub = raw_connect(d.sock);
	json_decref(call_on(sub, "{\"id\":1,\"method\":\"events.subscribe\","
	    "\"params\":{\"types\":[\"breaker.state\"]}}"));
	r = call_on(fd, "{\"id\":1,\"method\":\"breaker.force\","
	    "\"params\":{\"name\":\"b\",\"state\":\"forced_open\"}}");
	ck_assert_str_eq(rstr(r, "state"), "forced_open");
	json_decref(r);
	ev = raw_recv(sub, 5000);
	ck_assert_ptr_nonnull(ev);
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(ev,
	    "params"), "type")), "breaker.state");
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(ev,
	    "params"), "from")), "closed");
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(ev,
	    "params"), "to")), "forced_open");
	json_decref(ev);
	/* The same state again: no event. */
	json_decref(call_on(fd, "{\"id\":2,\"method\":\"breaker.force\","
	    "\"params\":{\"name\":\"b\",\"state\":\"forced_open\"}}"));
	ck_assert_ptr_null(raw_recv(sub, 200));
	/* closed -> half_open is illegal. */
	json_decref(call_on(fd, "{\"id\":3,\"method\":\"breaker.force\","
	    "\"params\":{\"name\":\"b\",\"state\":\"closed\"}}"));
	ev = raw_recv(sub, 5000);
	json_decref(ev);
	r = call_on(fd, "{\"id\":4,\"method\":\"breaker.force\","
	    "\"params\":{\"name\":\"b\",\"state\":\"half_open\"}}");
	ck_assert_int_eq(reply_code(r), 1003);
	json_decref(r);
	/* disabled permits everything and records nothing. */
	json_decref(call_on(fd, "{\"id\":5,\"method\":\"breaker.force\","
	    "\"params\":{\"name\":\"b\",\"state\":\"disabled\"}}"));
	r = call_on(fd, "{\"id\":6,\"method\":\"breaker.record\","
	    "\"params\":{\"name\":\"b\",\"outcome\":\"failure\"}}");
	ck_assert(json_is_false(json_object_get(result(r), "recorded")));
	json_decref(r);
	r = call_on(fd, "{\"id\":7,\"method\":\"breaker.reset\","
	    "\"params\":{\"name\":\"b\"}}");
	ck_assert_str_eq(rstr(r, "state"), "closed");
	ck_assert_int_eq(rnum(r, "open_count"), 0);
	json_decref(r);
	r = call_on(fd, "{\"id\":8,\"method\":\"breaker.reset\","
	    "\"params\":{\"name\":\"nope\"}}");
	ck_assert_int_eq(reply_code(r), 1001);
	json_decref(r);
	r = call_on(fd, "{\"id\":9,\"method\":\"breaker.acquire\","
	    "\"params\":{\"name\":\"bad name!\"}}");
	ck_assert_int_eq(reply_code(r), -32602);
	json_decref(r);
	close(sub);
	close(fd);
	assert_serves(&d);
}
END_TEST

/* The next breaker.state event on sub: it must be name's from -> to. */
static void
expect_transition(int sub, const char *name, const char *from,
    const char *to, const char *reason)
{
	json_t	*ev = raw_recv(sub, 5000), *p;

	ck_assert_ptr_nonnull(ev);
	p = json_object_get(ev, "params");
	ck_assert_str_eq(json_string_value(json_object_get(p, "type")),
	    "breaker.state");
	ck_assert_str_eq(json_string_value(json_object_get(p, "name")), name);
	ck_assert_str_eq(json_string_value(json_object_get(p, "from")), from);
	ck_assert_str_eq(json_string_value(json_object_get(p, "to")), to);
	ck_assert_str_eq(json_string_value(json_object_get(p, "reason")),
	    reason);
	json_decref(ev);
}

/*
 * The rules the unit tests drive on the state machine, here over the
 * socket with the daemon's own timers: ignored categories, recovery
 * backoff, and each way a trial ends (permit_expired, half_open_timeout,
 * owner_closed), with the reasons the events carry; then max_breakers and
 * idle eviction.
 */
START_TEST(breaker_rules_over_the_wire)
{
	int	 fd, sub, other;
	json_t	*r;
	char	 name[16];
	int	 i;

	daemon_start(&d, "[daemon]\nmax_breakers = 4\n"
	    "[breaker]\nfailure_threshold = 1\nrecovery_timeout_ms = 1000\n"
	    "recovery_backoff = 2.0\nmax_recovery_timeout_ms = 10000\n"
	    "permit_ttl_ms = 300\nhalf_open_max_wait_ms = 500\n"
	    "idle_evict_ms = 60000\nignore = NETWORK_ERROR\n", manual);
	fd = raw_connect(d.sock);
	sub = raw_connect(d.sock);
	json_decref(call_on(sub, "{\"id\":1,\"method\":\"events.subscribe\","
	    "\"params\":{\"types\":[\"breaker.state\"]}}"));
	/* An ignored category does not count; a storage error opens it. */
	r = call_on(fd, "{\"id\":1,\"method\":\"breaker.record\",\"params\":"
	    "{\"name\":\"a\",\"outcome\":\"failure\",\"error\":"
	    "{\"errno\":\"ECONNREFUSED\"}}}");
	ck_assert_str_eq(rstr(r, "state"), "closed");
	json_decref(r);
	r = call_on(fd, "{\"id\":2,\"method\":\"breaker.record\",\"params\":"
	    "{\"name\":\"a\",\"outcome\":\"failure\",\"error\":"
	    "{\"errno\":\"EIO\"}}}");
	ck_assert_str_eq(rstr(r, "state"), "open");
	json_decref(r);
	expect_transition(sub, "a", "closed", "open", "failure_threshold");
	r = call_on(fd, "{\"id\":3,\"method\":\"breaker.get\",\"params\":"
	    "{\"name\":\"a\"}}");
	ck_assert_int_eq(rnum(r, "retry_after_ms"), 1000);
	ck_assert_int_eq(rnum(r, "open_count"), 1);
	json_decref(r);

	/* Half-open by its timer; the trial permit runs out. */
	advance_on(fd, 1000);
	expect_transition(sub, "a", "open", "half_open", "recovery_timeout");
	r = call_on(fd, "{\"id\":4,\"method\":\"breaker.acquire\",\"params\":"
	    "{\"name\":\"a\"}}");
	ck_assert(json_is_true(json_object_get(result(r), "allowed")));
	json_decref(r);
	advance_on(fd, 300);
	expect_transition(sub, "a", "half_open", "open", "permit_expired");
	/* Opened twice: 1000 x 2.0. */
	r = call_on(fd, "{\"id\":5,\"method\":\"breaker.get\",\"params\":"
	    "{\"name\":\"a\"}}");
	ck_assert_int_eq(rnum(r, "retry_after_ms"), 2000);
	json_decref(r);

	/* Nobody tries within half_open_max_wait_ms. */
	advance_on(fd, 2000);
	expect_transition(sub, "a", "open", "half_open", "recovery_timeout");
	advance_on(fd, 500);
	expect_transition(sub, "a", "half_open", "open", "half_open_timeout");

	/* The trial's connection goes away. */
	advance_on(fd, 4000);
	expect_transition(sub, "a", "open", "half_open", "recovery_timeout");
	other = raw_connect(d.sock);
	r = call_on(other, "{\"id\":6,\"method\":\"breaker.acquire\","
	    "\"params\":{\"name\":\"a\"}}");
	ck_assert(json_is_true(json_object_get(result(r), "allowed")));
	json_decref(r);
	close(other);
	expect_transition(sub, "a", "half_open", "open", "owner_closed");
	r = call_on(fd, "{\"id\":7,\"method\":\"breaker.get\",\"params\":"
	    "{\"name\":\"a\"}}");
	ck_assert_int_eq(rnum(r, "open_count"), 4);
	ck_assert_int_eq(rnum(r, "retry_after_ms"), 8000);
	json_decref(r);

	/* Four breakers at most: a and three more. */
	for (i = 0; i < 3; i++) {
		snprintf(name, sizeof(name), "b%d", i);
		r = call_on(fd, "{\"id\":8,\"method\":\"breaker.acquire\","
		    "\"params\":{\"name\":\"%s\"}}", name);
		ck_assert(json_is_true(json_object_get(result(r), "allowed")));
		json_decref(call_on(fd, "{\"id\":9,\"method\":"
		    "\"breaker.record\",\"params\":{\"name\":\"%s\","
		    "\"permit\":\"%s\",\"outcome\":\"success\"}}", name,
		    rstr(r, "permit")));
		json_decref(r);
	}
	r = call_on(fd, "{\"id\":10,\"method\":\"breaker.acquire\","
	    "\"params\":{\"name\":\"late\"}}");
	ck_assert_int_eq(reply_code(r), 1005);
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(
	    json_object_get(r, "error"), "data"), "limit")), "max_breakers");
	json_decref(r);
	/* Idle closed breakers are evicted; the open one stays. */
	advance_on(fd, 120000);
	r = call_on(fd, "{\"id\":11,\"method\":\"breaker.get\",\"params\":"
	    "{\"name\":\"b0\"}}");
	ck_assert_int_eq(reply_code(r), 1001);
	json_decref(r);
	r = call_on(fd, "{\"id\":12,\"method\":\"breaker.get\",\"params\":"
	    "{\"name\":\"a\"}}");
	ck_assert_int_eq(reply_code(r), 0);
	json_decref(r);
	r = call_on(fd, "{\"id\":13,\"method\":\"breaker.acquire\","
	    "\"params\":{\"name\":\"late\"}}");
	ck_assert(json_is_true(json_object_get(result(r), "allowed")));
	json_decref(r);
	close(sub);
	close(fd);
	assert_serves(&d);
}
END_TEST

/*
 * A storm: 10 processes, 100 first attempts and 100 retries each, all
 * under one budget key. budget_percent = 20 of 1000 requests allows 200
 * retries in the window (the 3/s floor over 10 s is only 30).
 */
START_TEST(retry_budget_under_a_storm)
{
	pid_t	pids[10];
	int	i, status, fd;
	json_t	*r, *res;
	json_int_t granted = 0, denied = 0;

	daemon_start(&d, "[retry.storm]\nmax_attempts = 1000\n"
	    "base_delay_ms = 1\njitter = none\n", manual);
	for (i = 0; i < 10; i++) {
		if ((pids[i] = fork()) == 0) {
			int	 c = raw_connect(d.sock), j;
			json_t	*x;

			for (j = 0; j < 100; j++) {
				x = call_on(c, "{\"id\":1,\"method\":"
				    "\"retry.next\",\"params\":{\"policy\":"
				    "\"storm\",\"attempt\":1,\"error\":"
				    "{\"errno\":\"ETIMEDOUT\"}}}");
				json_decref(x);
			}
			_exit(0);
		}
	}
	for (i = 0; i < 10; i++) {
		waitpid(pids[i], &status, 0);
		ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}
	/* Every one of those 1000 was itself a granted retry decision (the
	 * first attempt failed); count the second attempts now. */
	fd = raw_connect(d.sock);
	r = call_on(fd, "{\"id\":1,\"method\":\"metrics.get\"}");
	res = json_object_get(result(r), "retries");
	granted = json_integer_value(json_object_get(res, "granted"));
	denied = json_integer_value(json_object_get(res, "denied"));
	json_decref(r);
	ck_assert_int_eq(granted + denied, 1000);
	ck_assert_int_eq(granted, 200);
	ck_assert_int_eq(denied, 800);
	r = call_on(fd, "{\"id\":2,\"method\":\"retry.next\",\"params\":"
	    "{\"policy\":\"storm\",\"attempt\":2,\"error\":{\"errno\":"
	    "\"ETIMEDOUT\"}}}");
	ck_assert(json_is_false(json_object_get(result(r), "retry")));
	ck_assert_str_eq(rstr(r, "reason"), "budget_exhausted");
	json_decref(r);
	/* The window slides: after budget_window_ms the budget is back. */
	advance_on(fd, 10000);
	json_decref(call_on(fd, "{\"id\":3,\"method\":\"retry.next\","
	    "\"params\":{\"policy\":\"storm\",\"attempt\":1}}"));
	r = call_on(fd, "{\"id\":4,\"method\":\"retry.next\",\"params\":"
	    "{\"policy\":\"storm\",\"attempt\":2}}");
	ck_assert(json_is_true(json_object_get(result(r), "retry")));
	json_decref(r);
	close(fd);
}
END_TEST

START_TEST(retry_next_reasons)
{
	int	 fd;
	json_t	*r;

	daemon_start(&d, NULL, manual);
	fd = raw_connect(d.sock);
	r = call_on(fd, "{\"id\":1,\"method\":\"retry.next\",\"params\":"
	    "{\"policy\":{\"jitter\":\"none\"},\"attempt\":1,"
	    "\"error\":{\"http_status\":503}}}");
	ck_assert(json_is_true(json_object_get(result(r), "retry")));
	ck_assert_int_eq(rnum(r, "delay_ms"), 1000);
	ck_assert_str_eq(rstr(r, "reason"), "retryable");
	json_decref(r);
	r = call_on(fd, "{\"id\":2,\"method\":\"retry.next\",\"params\":"
	    "{\"policy\":{\"jitter\":\"none\"},\"attempt\":2,"
	    "\"error\":{\"http_status\":429,\"retry_after_ms\":5000}}}");
	ck_assert_int_eq(rnum(r, "delay_ms"), 5000);
	json_decref(r);
	r = call_on(fd, "{\"id\":3,\"method\":\"retry.next\",\"params\":"
	    "{\"attempt\":3,\"error\":{\"http_status\":503}}}");
	ck_assert_str_eq(rstr(r, "reason"), "exhausted");
	json_decref(r);
	r = call_on(fd, "{\"id\":4,\"method\":\"retry.next\",\"params\":"
	    "{\"attempt\":1,\"error\":{\"http_status\":401}}}");
	ck_assert_str_eq(rstr(r, "reason"), "non_retryable");
	json_decref(r);
	r = call_on(fd, "{\"id\":5,\"method\":\"retry.next\",\"params\":"
	    "{\"policy\":{\"max_elapsed_ms\":1500,\"jitter\":\"none\"},"
	    "\"attempt\":2,\"elapsed_ms\":1000,\"error\":{\"errno\":5}}}");
	ck_assert_str_eq(rstr(r, "reason"), "deadline");
	json_decref(r);
	r = call_on(fd, "{\"id\":6,\"method\":\"retry.next\",\"params\":"
	    "{\"policy\":\"nope\",\"attempt\":1}}");
	ck_assert_int_eq(reply_code(r), 1001);
	json_decref(r);
	r = call_on(fd, "{\"id\":7,\"method\":\"retry.next\",\"params\":"
	    "{\"policy\":{\"max_atempts\":1},\"attempt\":1}}");
	ck_assert_int_eq(reply_code(r), -32602);
	json_decref(r);
	r = call_on(fd, "{\"id\":8,\"method\":\"retry.policy\","
	    "\"params\":{\"name\":\"default\"}}");
	ck_assert_int_eq(rnum(r, "max_attempts"), 3);
	json_decref(r);
	close(fd);
	assert_serves(&d);
}
END_TEST

START_TEST(ops_retry_then_succeed)
{
	int	 fd;
	json_t	*r;
	char	 op[64];

	daemon_start(&d, "[retry]\njitter = none\nbase_delay_ms = 10\n",
	    manual);
	fd = raw_connect(d.sock);
	r = call_on(fd, "{\"id\":1,\"method\":\"op.begin\",\"params\":"
	    "{\"operation\":\"upload\",\"breaker\":\"s3\"}}");
	snprintf(op, sizeof(op), "%s", rstr(r, "op"));
	ck_assert_int_eq(rnum(r, "attempt"), 1);
	ck_assert_ptr_nonnull(rstr(r, "permit"));
	json_decref(r);
	r = call_on(fd, "{\"id\":2,\"method\":\"op.fail\",\"params\":"
	    "{\"op\":\"%s\",\"error\":{\"errno\":\"ECONNREFUSED\"}}}", op);
	ck_assert_str_eq(rstr(r, "decision"), "retry");
	ck_assert_str_eq(rstr(r, "category"), "NETWORK_ERROR");
	ck_assert_int_eq(rnum(r, "attempt"), 1);
	ck_assert_int_eq(rnum(r, "delay_ms"), 10);
	json_decref(r);
	r = call_on(fd, "{\"id\":3,\"method\":\"op.succeed\",\"params\":"
	    "{\"op\":\"%s\"}}", op);
	ck_assert_int_eq(rnum(r, "attempts"), 2);
	ck_assert(json_is_true(json_object_get(result(r), "recovered")));
	json_decref(r);
	r = call_on(fd, "{\"id\":4,\"method\":\"op.get\",\"params\":"
	    "{\"op\":\"%s\"}}", op);
	ck_assert_str_eq(rstr(r, "state"), "succeeded");
	ck_assert_int_eq(json_array_size(json_object_get(result(r),
	    "errors")), 1);
	json_decref(r);
	r = call_on(fd, "{\"id\":5,\"method\":\"op.succeed\",\"params\":"
	    "{\"op\":\"%s\"}}", op);
	ck_assert_int_eq(reply_code(r), 1003);
	json_decref(r);
	/* Stored: op.get works after a restart. */
	close(fd);
	ck_assert_int_eq(daemon_stop_keep(&d), 0);
	daemon_restart(&d);
	fd = raw_connect(d.sock);
	r = call_on(fd, "{\"id\":6,\"method\":\"op.get\",\"params\":"
	    "{\"op\":\"%s\"}}", op);
	ck_assert_str_eq(rstr(r, "state"), "succeeded");
	json_decref(r);
	r = call_on(fd, "{\"id\":7,\"method\":\"metrics.get\"}");
	ck_assert_int_eq(rnum(r, "successful_recoveries"), 1);
	json_decref(r);
	close(fd);
}
END_TEST

/*
 * op.fail's retry: "attempt" is the attempt that failed (the next is
 * attempt+1); its permit outlives the delay it comes with, though the
 * delay is longer than permit_ttl_ms; a retry the breaker refuses spends
 * no retry budget.
 */
START_TEST(ops_retry_permit_and_budget)
{
	int	 fd;
	json_t	*r, *m;
	char	 op[64];

	daemon_start(&d, "[breaker]\npermit_ttl_ms = 1000\n"
	    "[breaker.once]\nfailure_threshold = 1\n", manual);
	fd = raw_connect(d.sock);
	r = call_on(fd, "{\"id\":1,\"method\":\"op.begin\",\"params\":"
	    "{\"operation\":\"up\",\"breaker\":\"s3\",\"deadline_ms\":0}}");
	snprintf(op, sizeof(op), "%s", rstr(r, "op"));
	json_decref(r);
	r = call_on(fd, "{\"id\":2,\"method\":\"op.fail\",\"params\":"
	    "{\"op\":\"%s\",\"error\":{\"errno\":\"ECONNREFUSED\","
	    "\"retry_after_ms\":5000}}}", op);
	ck_assert_str_eq(rstr(r, "decision"), "retry");
	ck_assert_int_eq(rnum(r, "attempt"), 1);
	ck_assert_int_eq(rnum(r, "delay_ms"), 5000);
	json_decref(r);
	/* Waited as told, then the lease's own 1 s less a moment. */
	advance_on(fd, 5999);
	r = call_on(fd, "{\"id\":3,\"method\":\"op.succeed\",\"params\":"
	    "{\"op\":\"%s\"}}", op);
	ck_assert_int_eq(rnum(r, "attempts"), 2);
	json_decref(r);
	/* The success went in with the permit: the failure streak ended. */
	r = call_on(fd, "{\"id\":4,\"method\":\"breaker.get\",\"params\":"
	    "{\"name\":\"s3\"}}");
	m = json_object_get(result(r), "window");
	ck_assert_int_eq(json_integer_value(json_object_get(m,
	    "consecutive_failures")), 0);
	ck_assert_int_eq(json_integer_value(json_object_get(m, "calls")), 2);
	json_decref(r);

	/* The failure opens "once": no permit for a retry, no budget. */
	r = call_on(fd, "{\"id\":5,\"method\":\"metrics.get\"}");
	m = json_object_get(result(r), "retries");
	ck_assert_int_eq(json_integer_value(json_object_get(m, "granted")), 1);
	json_decref(r);
	r = call_on(fd, "{\"id\":6,\"method\":\"op.begin\",\"params\":"
	    "{\"operation\":\"up\",\"breaker\":\"once\"}}");
	snprintf(op, sizeof(op), "%s", rstr(r, "op"));
	json_decref(r);
	r = call_on(fd, "{\"id\":7,\"method\":\"op.fail\",\"params\":"
	    "{\"op\":\"%s\",\"error\":{\"errno\":\"ECONNREFUSED\"}}}", op);
	ck_assert_str_ne(rstr(r, "decision"), "retry");
	json_decref(r);
	r = call_on(fd, "{\"id\":8,\"method\":\"metrics.get\"}");
	m = json_object_get(result(r), "retries");
	ck_assert_int_eq(json_integer_value(json_object_get(m, "granted")), 1);
	json_decref(r);

	/* "default" names the [retry] defaults here too. */
	r = call_on(fd, "{\"id\":9,\"method\":\"retry.next\",\"params\":"
	    "{\"policy\":\"default\",\"attempt\":3}}");
	ck_assert_str_eq(rstr(r, "reason"), "exhausted");
	json_decref(r);
	/* A name that cannot be a breaker's is bad params everywhere. */
	r = call_on(fd, "{\"id\":10,\"method\":\"breaker.get\",\"params\":"
	    "{\"name\":\"no spaces\"}}");
	ck_assert_int_eq(reply_code(r), -32602);
	json_decref(r);
	close(fd);
	assert_serves(&d);
}
END_TEST

START_TEST(ops_strategies_and_abandon)
{
	int	 fd, other;
	json_t	*r;
	char	 op[64];

	daemon_start(&d, NULL, manual);
	fd = raw_connect(d.sock);
	/* AUTHENTICATION_ERROR: escalate at once. */
	r = call_on(fd, "{\"id\":1,\"method\":\"op.begin\",\"params\":"
	    "{\"operation\":\"login\"}}");
	snprintf(op, sizeof(op), "%s", rstr(r, "op"));
	json_decref(r);
	r = call_on(fd, "{\"id\":2,\"method\":\"op.fail\",\"params\":"
	    "{\"op\":\"%s\",\"error\":{\"http_status\":401}}}", op);
	ck_assert_str_eq(rstr(r, "decision"), "escalate");
	json_decref(r);
	/* FILE_NOT_FOUND: skip. */
	r = call_on(fd, "{\"id\":3,\"method\":\"op.begin\",\"params\":"
	    "{\"operation\":\"read\"}}");
	snprintf(op, sizeof(op), "%s", rstr(r, "op"));
	json_decref(r);
	r = call_on(fd, "{\"id\":4,\"method\":\"op.fail\",\"params\":"
	    "{\"op\":\"%s\",\"error\":{\"errno\":\"ENOENT\"}}}", op);
	ck_assert_str_eq(rstr(r, "decision"), "skip");
	json_decref(r);
	/* An op whose connection closes ends failed, abandoned. */
	other = raw_connect(d.sock);
	r = call_on(other, "{\"id\":5,\"method\":\"op.begin\",\"params\":"
	    "{\"operation\":\"copy\"}}");
	snprintf(op, sizeof(op), "%s", rstr(r, "op"));
	json_decref(r);
	close(other);
	usleep(100000);
	r = call_on(fd, "{\"id\":6,\"method\":\"op.get\",\"params\":"
	    "{\"op\":\"%s\"}}", op);
	ck_assert_str_eq(rstr(r, "state"), "failed");
	ck_assert_str_eq(rstr(r, "reason"), "abandoned");
	json_decref(r);
	r = call_on(fd, "{\"id\":7,\"method\":\"op.get\",\"params\":"
	    "{\"op\":\"00000000-0000-7000-8000-000000000000\"}}");
	ck_assert_int_eq(reply_code(r), 1001);
	json_decref(r);
	/* A forced-open breaker rejects op.begin; the op is recorded. */
	json_decref(call_on(fd, "{\"id\":8,\"method\":\"breaker.force\","
	    "\"params\":{\"name\":\"q\",\"state\":\"forced_open\"}}"));
	r = call_on(fd, "{\"id\":9,\"method\":\"op.begin\",\"params\":"
	    "{\"operation\":\"x\",\"breaker\":\"q\"}}");
	ck_assert_int_eq(reply_code(r), 1004);
	snprintf(op, sizeof(op), "%s", json_string_value(json_object_get(
	    json_object_get(json_object_get(r, "error"), "data"), "op")));
	json_decref(r);
	r = call_on(fd, "{\"id\":10,\"method\":\"op.get\",\"params\":"
	    "{\"op\":\"%s\"}}", op);
	ck_assert_str_eq(rstr(r, "state"), "rejected");
	json_decref(r);
	close(fd);
	assert_serves(&d);
}
END_TEST

static int
run_ctl(char *out, size_t outsz, const char *const *args)
{
	return (ermctl(&d, out, outsz, args));
}

static json_t *
begin_on(int fd, const char *operation)
{
	return (call_on(fd, "{\"id\":1,\"method\":\"op.begin\","
	    "\"params\":{\"operation\":\"%s\"}}", operation));
}

/* One more op.begin on fd past max_ops: 1005 naming the limit. */
static void
expect_max_ops(int fd)
{
	json_t	*r = begin_on(fd, "over"), *data;

	ck_assert_int_eq(reply_code(r), 1005);
	data = json_object_get(json_object_get(r, "error"), "data");
	ck_assert_str_eq(json_string_value(json_object_get(data, "limit")),
	    "max_ops");
	ck_assert_int_eq(json_integer_value(json_object_get(data, "value")),
	    3);
	json_decref(r);
}

/*
 * [daemon] max_ops bounds the ops running at once, every connection
 * together: an op that ends, and the ops of a connection that closes,
 * make room again, exactly.
 */
START_TEST(running_ops_are_bounded)
{
	int	 a, b, i;
	json_t	*r;
	char	 op[64];

	daemon_start(&d, "[daemon]\nmax_ops = 3\n", NULL);
	a = raw_connect(d.sock);
	b = raw_connect(d.sock);
	for (i = 0; i < 3; i++) {
		r = begin_on(a, "held");
		ck_assert_int_eq(reply_code(r), 0);
		if (i == 0)
			snprintf(op, sizeof(op), "%s", rstr(r, "op"));
		json_decref(r);
	}
	expect_max_ops(a);
	expect_max_ops(b);
	r = call_on(a, "{\"id\":2,\"method\":\"op.succeed\","
	    "\"params\":{\"op\":\"%s\"}}", op);
	ck_assert_int_eq(reply_code(r), 0);
	json_decref(r);
	r = begin_on(b, "b1");
	ck_assert_int_eq(reply_code(r), 0);
	json_decref(r);
	expect_max_ops(b);
	/* a's two running ops end with its connection. */
	close(a);
	usleep(100000);
	for (i = 0; i < 2; i++) {
		r = begin_on(b, "b2");
		ck_assert_int_eq(reply_code(r), 0);
		json_decref(r);
	}
	expect_max_ops(b);
	close(b);
	assert_serves(&d);
}
END_TEST

/* ermctl run: a command that fails twice, then succeeds. */
START_TEST(ermctl_run_recovers)
{
	char		 out[4096], script[256], counter[256];
	const char	*args[] = { "run", "--op", "flaky", "--policy",
	    "{\"base_delay_ms\":1,\"jitter\":\"none\",\"max_attempts\":5}",
	    "--", "/bin/sh", script, NULL };
	FILE		*fp;

	daemon_start(&d, NULL, NULL);
	snprintf(counter, sizeof(counter), "%s/count", d.dir);
	snprintf(script, sizeof(script), "%s/flaky.sh", d.dir);
	fp = fopen(script, "w");
	fprintf(fp, "n=$(cat %s 2>/dev/null || echo 0)\nn=$((n+1))\n"
	    "echo $n > %s\n[ $n -ge 3 ]\n", counter, counter);
	fclose(fp);
	ck_assert_int_eq(run_ctl(out, sizeof(out), args), 0);
	fp = fopen(counter, "r");
	ck_assert(fgets(out, sizeof(out), fp) != NULL);
	fclose(fp);
	ck_assert_str_eq(out, "3\n");
	/* --timeout: a bare number is seconds (as timeout(1)); 0 is refused. */
	{
		const char	*t0[] = { "run", "--timeout", "0", "--",
		    "/bin/true", NULL };
		const char	*t2[] = { "run", "--timeout", "2", "--",
		    "/bin/sh", "-c", "sleep 0.1", NULL };
		const char	*tx[] = { "run", "--timeout", "2x", "--",
		    "/bin/true", NULL };

		ck_assert_int_eq(run_ctl(out, sizeof(out), t0), 2);
		ck_assert_int_eq(run_ctl(out, sizeof(out), tx), 2);
		ck_assert_int_eq(run_ctl(out, sizeof(out), t2), 0);
	}
}
END_TEST

/* ermctl run: a command that always fails until the breaker opens, then
 * is refused with 75 without being run. */
START_TEST(ermctl_run_until_breaker_opens)
{
	char		 out[4096], marker[256];
	const char	*fail[] = { "run", "--breaker", "svc", "--policy",
	    "{\"max_attempts\":1}", "--", "/bin/sh", "-c", "exit 7", NULL };
	const char	*touch[] = { "run", "--breaker", "svc", "--",
	    "/usr/bin/touch", marker, NULL };
	int		 i;

	daemon_start(&d, "[breaker.svc]\nfailure_threshold = 3\n", NULL);
	snprintf(marker, sizeof(marker), "%s/ran", d.dir);
	for (i = 0; i < 3; i++)
		ck_assert_int_eq(run_ctl(out, sizeof(out), fail), 7);
	ck_assert_int_eq(run_ctl(out, sizeof(out), touch), 75);
	ck_assert_int_eq(access(marker, F_OK), -1);
}
END_TEST

START_TEST(ermctl_classify_and_breakers)
{
	static const char *const c1[] = { "classify", "--errno", "ECONNRESET",
	    NULL };
	static const char *const c2[] = { "classify", "--message",
	    "checksum mismatch", NULL };
	static const char *const c3[] = { "classify", "--http", "404", NULL };
	static const char *const open[] = { "breaker", "open", "api", NULL };
	static const char *const list[] = { "breaker", "list", NULL };
	char	out[8192];

	daemon_start(&d, NULL, NULL);
	ck_assert_int_eq(run_ctl(out, sizeof(out), c1), 0);
	ck_assert_ptr_nonnull(strstr(out, "category=NETWORK_ERROR\n"));
	ck_assert_ptr_nonnull(strstr(out, "matched=errno:ECONNRESET\n"));
	ck_assert_int_eq(run_ctl(out, sizeof(out), c2), 0);
	ck_assert_ptr_nonnull(strstr(out, "category=CORRUPTED_DATA\n"));
	ck_assert_int_eq(run_ctl(out, sizeof(out), c3), 0);
	ck_assert_ptr_nonnull(strstr(out, "category=FILE_NOT_FOUND\n"));
	ck_assert_ptr_nonnull(strstr(out, "strategy.primary=skip_and_log\n"));
	ck_assert_int_eq(run_ctl(out, sizeof(out), open), 0);
	ck_assert_int_eq(run_ctl(out, sizeof(out), list), 0);
	ck_assert_ptr_nonnull(strstr(out, "breakers.0.name=api\n"));
	ck_assert_ptr_nonnull(strstr(out, "breakers.0.state=forced_open\n"));
}
END_TEST

/* The seed's usage examples, compiled against liberm, run for real. */
START_TEST(examples_run)
{
	static const char *const names[] = { "basic_usage",
	    "breaker_protection", "retry_config", "decorator", NULL };
	char		 path[256], env[300], out[8192];
	const char	*argv[2];
	int		 i;

	daemon_start(&d, NULL, NULL);
	snprintf(env, sizeof(env), "ERMD_SOCKET=%s", d.sock);
	putenv(env);
	for (i = 0; names[i] != NULL; i++) {
		snprintf(path, sizeof(path), "build/examples/%s", names[i]);
		if (access(path, X_OK) != 0)
			continue;	/* built only by `make all` */
		argv[0] = path;
		argv[1] = NULL;
		ck_assert_msg(run_prog(out, sizeof(out), argv) == 0,
		    "%s failed: %s", names[i], out);
	}
}
END_TEST

START_TEST(bad_config_sections)
{
	char		 out[4096], path[200];
	const char	*argv[] = { ermd_path(), "-t", "-c", path, NULL };
	FILE		*fp;

	daemon_prepare(&d);
	snprintf(path, sizeof(path), "%s/b.conf", d.dir);
	fp = fopen(path, "w");
	fputs("[breaker.s3]\nfailure_treshold = 3\n"
	    "[retry.x]\njitter = some\n"
	    "[classify]\nrule.1 = ([ => NETWORK_ERROR\n"
	    "[strategy]\nNETWORK_ERROR = retry,nonsense\n", fp);
	fclose(fp);
	ck_assert_int_eq(run_prog(out, sizeof(out), argv), 78);
	ck_assert_ptr_nonnull(strstr(out, ":2: unknown key 'failure_treshold' "
	    "in [breaker.s3]; did you mean 'failure_threshold'?"));
	ck_assert_ptr_nonnull(strstr(out, ":4: "));
	ck_assert_ptr_nonnull(strstr(out, ":6: "));
	ck_assert_ptr_nonnull(strstr(out, ":8: "));
	snprintf(out, sizeof(out), "rm -rf %s", d.dir);
	(void)!system(out);
	d.dir[0] = '\0';
}
END_TEST

/* op.begin backs files up; a CORRUPTED_DATA failure rolls them back. */
START_TEST(ops_backup_and_rollback)
{
	char	 conf[512], root[200], file[256], op[64];
	int	 fd;
	json_t	*r, *rb;

	daemon_prepare(&d);
	snprintf(root, sizeof(root), "%s/data", d.dir);
	ck_assert_int_eq(mkdir(root, 0755), 0);
	snprintf(file, sizeof(file), "%s/report.csv", root);
	write_text(file, "good\n");
	snprintf(conf, sizeof(conf), "[root.data]\npath = %s\n", root);
	daemon_start_env(&d, conf, manual, NULL, -1);
	fd = raw_connect(d.sock);
	r = call_on(fd, "{\"id\":1,\"method\":\"op.begin\",\"params\":"
	    "{\"operation\":\"rewrite\",\"backup\":[\"%s\"]}}", file);
	snprintf(op, sizeof(op), "%s", rstr(r, "op"));
	ck_assert_int_eq(json_array_size(json_object_get(result(r),
	    "backups")), 1);
	json_decref(r);
	write_text(file, "half-written garbage");
	r = call_on(fd, "{\"id\":2,\"method\":\"op.fail\",\"params\":"
	    "{\"op\":\"%s\",\"error\":{\"errno\":\"EBADMSG\"}}}", op);
	ck_assert_str_eq(rstr(r, "decision"), "rollback");
	ck_assert_str_eq(rstr(r, "category"), "CORRUPTED_DATA");
	rb = json_object_get(result(r), "rolled_back");
	ck_assert_int_eq(json_array_size(rb), 1);
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(rb,
	    0), "path")), file);
	json_decref(r);
	ck_assert_str_eq(read_text(file), "good\n");
	/* A path outside every root: op.begin fails, nothing is run. */
	r = call_on(fd, "{\"id\":3,\"method\":\"op.begin\",\"params\":"
	    "{\"operation\":\"x\",\"backup\":[\"/etc/passwd\"]}}");
	ck_assert_int_eq(reply_code(r), 1002);
	json_decref(r);
	close(fd);
	assert_serves(&d);
}
END_TEST

/* ermctl run --backup: a command that breaks the file and fails gets its
 * file back when the strategy says rollback. */
START_TEST(ermctl_run_backup_rollback)
{
	char		 conf[512], root[200], file[256], script[300];
	char		 out[4096];
	const char	*args[] = { "run", "--backup", file, "--", "/bin/sh",
	    "-c", script, NULL };

	daemon_prepare(&d);
	snprintf(root, sizeof(root), "%s/data", d.dir);
	ck_assert_int_eq(mkdir(root, 0755), 0);
	snprintf(file, sizeof(file), "%s/state.json", root);
	write_text(file, "{\"ok\":true}\n");
	snprintf(conf, sizeof(conf), "[root.data]\npath = %s\n"
	    "[strategy]\nSYSTEM_ERROR = rollback,escalate\n", root);
	daemon_start_env(&d, conf, NULL, NULL, -1);
	snprintf(script, sizeof(script), "echo broken > %s; exit 3", file);
	ck_assert_int_eq(run_ctl(out, sizeof(out), args), 3);
	ck_assert_str_eq(read_text(file), "{\"ok\":true}\n");
}
END_TEST

static const char *
storage_conf(char *buf, size_t len)
{
	char	a[200], b[200];

	snprintf(a, sizeof(a), "%s/primary", d.dir);
	snprintf(b, sizeof(b), "%s/secondary", d.dir);
	ck_assert_int_eq(mkdir(a, 0755), 0);
	ck_assert_int_eq(mkdir(b, 0755), 0);
	snprintf(buf, len, "[retry]\nmax_attempts = 1\n"
	    "[backend.primary]\npath = %s\npriority = 1\n"
	    "[backend.secondary]\npath = %s\npriority = 2\n", a, b);
	return (buf);
}

/* fallback_storage: each failure names the next healthy backend. */
START_TEST(ops_fallback_storage)
{
	char	 conf[1024], op[64];
	int	 fd;
	json_t	*r;

	daemon_prepare(&d);
	daemon_start_env(&d, storage_conf(conf, sizeof(conf)), manual, NULL,
	    -1);
	fd = raw_connect(d.sock);
	r = call_on(fd, "{\"id\":1,\"method\":\"op.begin\",\"params\":"
	    "{\"operation\":\"upload\"}}");
	snprintf(op, sizeof(op), "%s", rstr(r, "op"));
	json_decref(r);
	r = call_on(fd, "{\"id\":2,\"method\":\"op.fail\",\"params\":"
	    "{\"op\":\"%s\",\"error\":{\"errno\":\"ECONNREFUSED\"}}}", op);
	ck_assert_str_eq(rstr(r, "decision"), "fallback");
	ck_assert_str_eq(rstr(r, "backend"), "primary");
	json_decref(r);
	close(fd);
}
END_TEST

struct tries {
	char	names[4][64];
	int	n;
};

static int
store_somewhere(void *arg, const char *backend, const char *type,
    const char *location, struct erm_errinfo *err)
{
	struct tries	*t = arg;

	ck_assert_str_eq(type, "dir");
	ck_assert_ptr_nonnull(strstr(location, backend));
	snprintf(t->names[t->n++], sizeof(t->names[0]), "%s", backend);
	if (strcmp(backend, "primary") == 0) {
		err->errnum = 111;	/* ECONNREFUSED */
		return (-1);
	}
	return (0);
}

/* liberm's execute_with_fallback: the primary fails, the secondary works,
 * and the daemon heard about both. */
START_TEST(liberm_execute_with_fallback)
{
	char				 conf[1024];
	struct erm_client		*c;
	struct erm_fallback_result	 res;
	struct tries			 t;
	json_t				*r, *b;
	size_t				 i;

	daemon_prepare(&d);
	daemon_start_env(&d, storage_conf(conf, sizeof(conf)), NULL, NULL,
	    -1);
	memset(&t, 0, sizeof(t));
	ck_assert_int_eq(erm_connect(&c, d.sock), ERM_OK);
	ck_assert_int_eq(erm_execute_with_fallback(c, store_somewhere, &t,
	    &res), ERM_OK);
	ck_assert_str_eq(res.backend, "secondary");
	ck_assert_int_eq(res.tries, 2);
	ck_assert_int_eq(t.n, 2);
	ck_assert_str_eq(t.names[0], "primary");
	ck_assert_int_eq(erm_call(c, "storage.status", NULL, &r), ERM_OK);
	json_array_foreach(json_object_get(r, "backends"), i, b)
		if (strcmp(json_string_value(json_object_get(b, "name")),
		    "primary") == 0)
			ck_assert_int_eq(json_integer_value(json_object_get(b,
			    "consecutive_failures")), 1);
	json_decref(r);
	erm_close(c);
}
END_TEST

/* ---- strategy plans, jitter, classification, retry_on ----------------- */

/* The {primary, fallback} plan a classify or op.fail reply shows. */
static void
expect_plan(json_t *r, const char *primary, const char *fallback)
{
	json_t	*s = json_object_get(result(r), "strategy");

	ck_assert_str_eq(json_string_value(json_object_get(s, "primary")),
	    primary);
	if (fallback == NULL)
		ck_assert(json_is_null(json_object_get(s, "fallback")));
	else
		ck_assert_str_eq(json_string_value(json_object_get(s,
		    "fallback")), fallback);
}

/* Two attempts in all: one retry, then the plan moves on. */
#define PLAN_POLICY	"{\"max_attempts\":2,\"jitter\":\"none\"," \
			"\"base_delay_ms\":10}"

/*
 * Start ermd with [root.data] (its path into root) and, when backends,
 * the two dir backends of storage_conf; returns a connection.
 */
static int
start_with_root(char *root, size_t len, int backends)
{
	char	conf[2048], sconf[1024];

	daemon_prepare(&d);
	snprintf(root, len, "%s/data", d.dir);
	ck_assert_int_eq(mkdir(root, 0755), 0);
	snprintf(conf, sizeof(conf), "[root.data]\npath = %s\n%s", root,
	    backends ? storage_conf(sconf, sizeof(sconf)) : "");
	daemon_start_env(&d, conf, manual, NULL, -1);
	return (raw_connect(d.sock));
}

/* op.begin under PLAN_POLICY backing path up: the op's id into op. */
static void
begin_backed_up_op(int fd, const char *path, char *op, size_t len)
{
	json_t	*r, *b;

	r = call_on(fd, "{\"id\":1,\"method\":\"op.begin\",\"params\":"
	    "{\"operation\":\"save\",\"policy\":" PLAN_POLICY ","
	    "\"backup\":[\"%s\"]}}", path);
	ck_assert_int_eq(json_array_size(json_object_get(result(r),
	    "backups")), 1);
	b = json_array_get(json_object_get(result(r), "backups"), 0);
	ck_assert_str_eq(json_string_value(json_object_get(b, "path")), path);
	snprintf(op, len, "%s", rstr(r, "op"));
	json_decref(r);
}

/* An op.fail of op with a STORAGE_ERROR (EIO); a new reference. */
static json_t *
fail_eio(int fd, const char *op)
{
	json_t	*r;

	r = call_on(fd, "{\"id\":2,\"method\":\"op.fail\",\"params\":"
	    "{\"op\":\"%s\",\"error\":{\"errno\":\"EIO\"}}}", op);
	ck_assert_str_eq(rstr(r, "category"), "STORAGE_ERROR");
	expect_plan(r, "retry_with_backoff", "rollback");
	return (r);
}

/* The first failure of an op under PLAN_POLICY: a retry after 10 ms. */
static void
first_failure_retries(int fd, const char *op)
{
	json_t	*r = fail_eio(fd, op);

	ck_assert_str_eq(rstr(r, "decision"), "retry");
	ck_assert_int_eq(rnum(r, "attempt"), 1);
	ck_assert_int_eq(rnum(r, "delay_ms"), 10);
	ck_assert_int_eq(json_array_size(json_object_get(result(r),
	    "rolled_back")), 0);
	json_decref(r);
}

static void
expect_op_end(int fd, const char *op, const char *reason)
{
	json_t	*r = call_on(fd, "{\"id\":3,\"method\":\"op.get\","
	    "\"params\":{\"op\":\"%s\"}}", op);

	ck_assert_str_eq(rstr(r, "state"), "failed");
	ck_assert_str_eq(rstr(r, "reason"), reason);
	ck_assert_int_eq(rnum(r, "attempts"), 2);
	json_decref(r);
}

/*
 * Make every restore of path's only backup fail: its stored object goes
 * (the restore then says the copy is missing and leaves path untouched).
 */
static void
lose_backup_object(int fd, const char *path)
{
	char		 obj[512];
	const char	*sha;
	json_t		*r, *b;

	r = call_on(fd, "{\"id\":4,\"method\":\"backup.list\","
	    "\"params\":{\"path\":\"%s\"}}", path);
	b = json_object_get(result(r), "backups");
	ck_assert_int_eq(json_array_size(b), 1);
	sha = json_string_value(json_object_get(json_array_get(b, 0),
	    "sha256"));
	ck_assert_ptr_nonnull(sha);
	snprintf(obj, sizeof(obj), "%s/objects/%.2s/%s", d.state, sha, sha);
	ck_assert_msg(unlink(obj) == 0, "%s: %s", obj, strerror(errno));
	json_decref(r);
}

/*
 * The newest oplog entry of path: a restore that worked, or one that
 * failed with code.
 */
static void
expect_last_restore(int fd, const char *path, int code)
{
	json_t	*r, *e;

	r = call_on(fd, "{\"id\":5,\"method\":\"oplog.list\","
	    "\"params\":{\"path\":\"%s\",\"limit\":1}}", path);
	e = json_array_get(json_object_get(result(r), "entries"), 0);
	ck_assert_ptr_nonnull(e);
	ck_assert_str_eq(json_string_value(json_object_get(e, "action")),
	    "restore");
	ck_assert_int_eq(json_is_true(json_object_get(e, "ok")), code == 0);
	if (code != 0)
		ck_assert_int_eq(json_integer_value(json_object_get(
		    json_object_get(e, "error"), "code")), code);
	json_decref(r);
}

/*
 * STORAGE_ERROR's plan, in order: retry_with_backoff while the policy
 * allows, then rollback (the op has backups), then, when the rollback
 * cannot restore, fallback_storage on a healthy backend.
 */
START_TEST(ops_storage_error_plan)
{
	char	 root[200], a[256], b[256], op[64];
	int	 fd;
	json_t	*r, *rb;

	fd = start_with_root(root, sizeof(root), 1);
	snprintf(a, sizeof(a), "%s/a.txt", root);
	snprintf(b, sizeof(b), "%s/b.txt", root);
	write_text(a, "alpha\n");
	write_text(b, "bravo\n");

	/* Retry, then the rollback restores the backup. */
	begin_backed_up_op(fd, a, op, sizeof(op));
	first_failure_retries(fd, op);
	write_text(a, "half-written");
	r = fail_eio(fd, op);
	ck_assert_str_eq(rstr(r, "decision"), "rollback");
	ck_assert_int_eq(rnum(r, "attempt"), 2);
	ck_assert_ptr_null(json_object_get(result(r), "delay_ms"));
	ck_assert_ptr_null(json_object_get(result(r), "backend"));
	rb = json_object_get(result(r), "rolled_back");
	ck_assert_int_eq(json_array_size(rb), 1);
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(rb,
	    0), "path")), a);
	ck_assert_ptr_nonnull(json_string_value(json_object_get(
	    json_array_get(rb, 0), "backup_id")));
	json_decref(r);
	ck_assert_str_eq(read_text(a), "alpha\n");
	expect_last_restore(fd, a, 0);
	expect_op_end(fd, op, "rollback");

	/* Retry, a rollback that cannot restore, then fallback_storage. */
	begin_backed_up_op(fd, b, op, sizeof(op));
	lose_backup_object(fd, b);
	first_failure_retries(fd, op);
	write_text(b, "half-written");
	r = fail_eio(fd, op);
	ck_assert_str_eq(rstr(r, "decision"), "fallback");
	ck_assert_str_eq(rstr(r, "backend"), "primary");
	ck_assert_int_eq(rnum(r, "attempt"), 2);
	ck_assert_int_eq(json_array_size(json_object_get(result(r),
	    "rolled_back")), 0);
	json_decref(r);
	ck_assert_str_eq(read_text(b), "half-written");
	expect_last_restore(fd, b, 1008);	/* tried, and failed */
	expect_op_end(fd, op, "fallback");
	close(fd);
	assert_serves(&d);
}
END_TEST

/* The same without a storage backend: the plan ends in escalate. */
START_TEST(ops_storage_error_plan_escalates)
{
	char	 root[200], c[256], op[64];
	int	 fd;
	json_t	*r;

	fd = start_with_root(root, sizeof(root), 0);
	snprintf(c, sizeof(c), "%s/c.txt", root);
	write_text(c, "charlie\n");
	begin_backed_up_op(fd, c, op, sizeof(op));
	lose_backup_object(fd, c);
	first_failure_retries(fd, op);
	write_text(c, "half-written");
	r = fail_eio(fd, op);
	ck_assert_str_eq(rstr(r, "decision"), "escalate");
	ck_assert_int_eq(rnum(r, "attempt"), 2);
	ck_assert_ptr_null(json_object_get(result(r), "backend"));
	ck_assert_int_eq(json_array_size(json_object_get(result(r),
	    "rolled_back")), 0);
	json_decref(r);
	ck_assert_str_eq(read_text(c), "half-written");
	expect_last_restore(fd, c, 1008);
	expect_op_end(fd, op, "escalate");
	close(fd);
	assert_serves(&d);
}
END_TEST

/*
 * n op.fail retries of a new op under policy (a NETWORK_ERROR each):
 * every delay d_i lies in [lo, min(3 d_{i-1}, hi)], d_0 = lo. Returns
 * the op's id in op (still running).
 */
static void
decorrelated_steps(int fd, const char *policy, int n, json_int_t lo,
    json_int_t hi, char *op, size_t len)
{
	json_t		*r;
	json_int_t	 prev = lo, delay, top;
	int		 i;

	r = call_on(fd, "{\"id\":1,\"method\":\"op.begin\",\"params\":"
	    "{\"operation\":\"poll\",\"policy\":%s}}", policy);
	snprintf(op, len, "%s", rstr(r, "op"));
	json_decref(r);
	for (i = 1; i <= n; i++) {
		r = call_on(fd, "{\"id\":2,\"method\":\"op.fail\",\"params\":"
		    "{\"op\":\"%s\",\"error\":{\"errno\":\"ECONNREFUSED\"}}}",
		    op);
		ck_assert_str_eq(rstr(r, "decision"), "retry");
		ck_assert_int_eq(rnum(r, "attempt"), i);
		delay = rnum(r, "delay_ms");
		top = 3 * prev < hi ? 3 * prev : hi;
		ck_assert_msg(delay >= lo && delay <= top, "retry %d: "
		    "delay_ms %lld outside [%lld, %lld] (previous %lld)", i,
		    (long long)delay, (long long)lo, (long long)top,
		    (long long)prev);
		prev = delay;
		json_decref(r);
	}
}

/*
 * Decorrelated jitter in op.fail: min(max_delay, U[b, 3 prev]) with prev
 * the op's last delay (b at first).
 */
START_TEST(ops_decorrelated_jitter)
{
	char	 op[64];
	int	 fd;
	json_t	*r;

	daemon_start(&d, NULL, manual);
	fd = raw_connect(d.sock);
	/* Nine retries of ten attempts; then exhausted, and NETWORK_ERROR's
	 * fallback_storage has no backend here: escalate. */
	decorrelated_steps(fd, "{\"jitter\":\"decorrelated\","
	    "\"base_delay_ms\":100,\"max_delay_ms\":100000,"
	    "\"max_attempts\":10}", 9, 100, 100000, op, sizeof(op));
	r = call_on(fd, "{\"id\":3,\"method\":\"op.fail\",\"params\":"
	    "{\"op\":\"%s\",\"error\":{\"errno\":\"ECONNREFUSED\"}}}", op);
	ck_assert_str_eq(rstr(r, "decision"), "escalate");
	ck_assert_int_eq(rnum(r, "attempt"), 10);
	json_decref(r);
	/* A max_delay_ms just above b caps every step. */
	decorrelated_steps(fd, "{\"jitter\":\"decorrelated\","
	    "\"base_delay_ms\":100,\"max_delay_ms\":150,"
	    "\"max_attempts\":10}", 8, 100, 150, op, sizeof(op));
	json_decref(call_on(fd, "{\"id\":4,\"method\":\"op.succeed\","
	    "\"params\":{\"op\":\"%s\"}}", op));
	/*
	 * The last delay is the op's own, whatever strategy set it: a
	 * SYSTEM_ERROR's plain `retry` retries at once (0 ms), so the next
	 * decorrelated delay is drawn from U[b, max(b, 3 x 0)]: exactly b.
	 */
	r = call_on(fd, "{\"id\":5,\"method\":\"op.begin\",\"params\":"
	    "{\"operation\":\"poll\",\"policy\":{\"jitter\":\"decorrelated\","
	    "\"base_delay_ms\":100,\"max_attempts\":10}}}");
	snprintf(op, sizeof(op), "%s", rstr(r, "op"));
	json_decref(r);
	r = call_on(fd, "{\"id\":6,\"method\":\"op.fail\",\"params\":"
	    "{\"op\":\"%s\",\"error\":{\"errno\":\"ENOMEM\"}}}", op);
	ck_assert_str_eq(rstr(r, "decision"), "retry");
	ck_assert_str_eq(rstr(r, "category"), "SYSTEM_ERROR");
	ck_assert_int_eq(rnum(r, "delay_ms"), 0);
	json_decref(r);
	r = call_on(fd, "{\"id\":7,\"method\":\"op.fail\",\"params\":"
	    "{\"op\":\"%s\",\"error\":{\"errno\":\"ECONNREFUSED\"}}}", op);
	ck_assert_str_eq(rstr(r, "decision"), "retry");
	ck_assert_int_eq(rnum(r, "attempt"), 2);
	ck_assert_int_eq(rnum(r, "delay_ms"), 100);
	json_decref(r);
	/* retry.next's prev_delay_ms plays the same part. */
	r = call_on(fd, "{\"id\":8,\"method\":\"retry.next\",\"params\":"
	    "{\"policy\":{\"jitter\":\"decorrelated\",\"base_delay_ms\":100},"
	    "\"attempt\":1,\"prev_delay_ms\":0,"
	    "\"error\":{\"errno\":\"ECONNREFUSED\"}}}");
	ck_assert_int_eq(rnum(r, "delay_ms"), 100);
	json_decref(r);
	close(fd);
	assert_serves(&d);
}
END_TEST

/* error.classify of err (JSON text) gives category, named by matched. */
static void
expect_class(int fd, const char *err, const char *category,
    const char *matched)
{
	json_t	*r = call_on(fd, "{\"id\":1,\"method\":\"error.classify\","
	    "\"params\":%s}", err);

	ck_assert_msg(strcmp(rstr(r, "category"), category) == 0 &&
	    strcmp(rstr(r, "matched"), matched) == 0, "%s: got %s (%s), want "
	    "%s (%s)", err, rstr(r, "category"), rstr(r, "matched"), category,
	    matched);
	json_decref(r);
}

/*
 * error.classify through the daemon: the tables BEHAVIOUR.md section 3
 * gives, and its precedence, one pair at a time.
 */
START_TEST(classify_over_the_wire)
{
	int	 fd;
	json_t	*r;

	daemon_start(&d, "[classify]\nrule.1 = disk => QUOTA_EXCEEDED\n",
	    manual);
	fd = raw_connect(d.sock);
	r = call_on(fd, "{\"id\":1,\"method\":\"error.classify\","
	    "\"params\":{\"exception\":\"OSError\"}}");
	ck_assert_str_eq(rstr(r, "category"), "STORAGE_ERROR");
	ck_assert_str_eq(rstr(r, "matched"), "exception:OSError");
	expect_plan(r, "retry_with_backoff", "rollback");
	ck_assert(json_is_true(json_object_get(result(r), "retryable")));
	json_decref(r);
	r = call_on(fd, "{\"id\":2,\"method\":\"error.classify\","
	    "\"params\":{\"exit_code\":124}}");
	ck_assert_str_eq(rstr(r, "category"), "TIMEOUT_ERROR");
	ck_assert_str_eq(rstr(r, "matched"), "exit_code:124");
	expect_plan(r, "retry_with_backoff", NULL);
	json_decref(r);
	r = call_on(fd, "{\"id\":3,\"method\":\"error.classify\","
	    "\"params\":{\"signal\":9}}");
	ck_assert_str_eq(rstr(r, "category"), "SYSTEM_ERROR");
	ck_assert_str_eq(rstr(r, "matched"), "signal:9");
	expect_plan(r, "retry", "escalate");
	json_decref(r);
	expect_class(fd, "{\"exit_code\":1}", "SYSTEM_ERROR", "default");

	/* Precedence, pair by pair. */
	expect_class(fd, "{\"category\":\"FILE_NOT_FOUND\","
	    "\"errno\":\"ECONNRESET\"}", "FILE_NOT_FOUND", "category");
	expect_class(fd, "{\"errno\":\"ECONNRESET\",\"http_status\":404}",
	    "NETWORK_ERROR", "errno:ECONNRESET");
	expect_class(fd, "{\"http_status\":429,\"exception\":"
	    "\"TimeoutError\"}", "RATE_LIMIT_ERROR", "http_status:429");
	expect_class(fd, "{\"exception\":\"PermissionError\",\"message\":"
	    "\"disk full\"}", "PERMISSION_ERROR", "exception:PermissionError");
	expect_class(fd, "{\"exception\":\"TimeoutError\",\"message\":"
	    "\"checksum mismatch\"}", "TIMEOUT_ERROR",
	    "exception:TimeoutError");
	expect_class(fd, "{\"message\":\"disk full\",\"exit_code\":124}",
	    "QUOTA_EXCEEDED", "rule.1");
	expect_class(fd, "{\"message\":\"checksum mismatch\","
	    "\"exit_code\":124}", "CORRUPTED_DATA", "message:checksum");
	expect_class(fd, "{\"message\":\"disk checksum\"}", "QUOTA_EXCEEDED",
	    "rule.1");
	/* OSError only "without a better match" (proto/PROTOCOL.md). */
	expect_class(fd, "{\"exception\":\"OSError\",\"message\":"
	    "\"disk full\"}", "QUOTA_EXCEEDED", "rule.1");
	expect_class(fd, "{\"exit_code\":124,\"signal\":9}", "TIMEOUT_ERROR",
	    "exit_code:124");
	/* A value no table knows does not decide. */
	expect_class(fd, "{\"errno\":\"EINVAL\",\"http_status\":503}",
	    "NETWORK_ERROR", "http_status:503");
	close(fd);
	assert_serves(&d);
}
END_TEST

/* error.classify's retryable and retry.next's reason for a TIMEOUT_ERROR. */
static void
expect_timeout_retryable(int fd, int retryable)
{
	json_t	*r;

	r = call_on(fd, "{\"id\":1,\"method\":\"error.classify\","
	    "\"params\":{\"errno\":\"ETIMEDOUT\"}}");
	ck_assert_str_eq(rstr(r, "category"), "TIMEOUT_ERROR");
	ck_assert_int_eq(json_is_true(json_object_get(result(r),
	    "retryable")), retryable);
	json_decref(r);
	r = call_on(fd, "{\"id\":2,\"method\":\"retry.next\",\"params\":"
	    "{\"attempt\":1,\"error\":{\"errno\":\"ETIMEDOUT\"}}}");
	ck_assert_int_eq(json_is_true(json_object_get(result(r), "retry")),
	    retryable);
	ck_assert_str_eq(rstr(r, "reason"), retryable ? "retryable" :
	    "non_retryable");
	ck_assert_int_eq(rnum(r, "delay_ms"), retryable ? 1000 : 0);
	json_decref(r);
}

static json_int_t
reload(int fd)
{
	json_t		*r = call_on(fd, "{\"id\":3,\"method\":"
	    "\"config.reload\"}");
	json_int_t	 g = rnum(r, "config_generation");

	json_decref(r);
	return (g);
}

/* A [retry] retry_on change by config.reload reaches both methods. */
START_TEST(retry_on_follows_reload)
{
	static const char without[] = "[retry]\njitter = none\n"
	    "retry_on = NETWORK_ERROR,STORAGE_ERROR\n";
	static const char with[] = "[retry]\njitter = none\n"
	    "retry_on = NETWORK_ERROR,STORAGE_ERROR,TIMEOUT_ERROR\n";
	int		 fd;
	json_int_t	 g;

	daemon_start(&d, without, manual);
	fd = raw_connect(d.sock);
	expect_timeout_retryable(fd, 0);
	daemon_write_conf(&d, with);
	g = reload(fd);
	expect_timeout_retryable(fd, 1);
	daemon_write_conf(&d, without);
	ck_assert_int_eq(reload(fd), g + 1);
	expect_timeout_retryable(fd, 0);
	close(fd);
	assert_serves(&d);
}
END_TEST

int
main(void)
{
	Suite	*s = suite_create("decide");
	TCase	*tc = tcase_create("decide");
	SRunner	*sr;
	int	 failed;

	tcase_set_timeout(tc, 120);
	tcase_add_checked_fixture(tc, NULL, stop);
	tcase_add_test(tc, consecutive_failures_open_and_recover);
	tcase_add_test(tc, lease_of_a_closed_connection);
	tcase_add_test(tc, acquire_waits_for_half_open);
	tcase_add_test(tc, acquire_wait_answered_at_stop);
	tcase_add_test(tc, permit_ttl_and_stale_generation);
	tcase_add_test(tc, state_survives_kill9);
	tcase_add_test(tc, window_survives_kill9_at_once);
	tcase_add_test(tc, evicted_breaker_comes_back_new);
	tcase_add_test(tc, window_counters_journal_and_compaction);
	tcase_add_test(tc, journal_on_a_full_disk);
	tcase_add_test(tc, compaction_rewrites_only_what_moved);
	tcase_add_test(tc, failed_snapshot_is_stored_later);
	tcase_add_test(tc, ermctl_events_by_type);
	tcase_add_test(tc, events_and_forced_states);
	tcase_add_test(tc, breaker_rules_over_the_wire);
	tcase_add_test(tc, retry_budget_under_a_storm);
	tcase_add_test(tc, retry_next_reasons);
	tcase_add_test(tc, ops_retry_then_succeed);
	tcase_add_test(tc, ops_retry_permit_and_budget);
	tcase_add_test(tc, ops_strategies_and_abandon);
	tcase_add_test(tc, running_ops_are_bounded);
	tcase_add_test(tc, ermctl_run_recovers);
	tcase_add_test(tc, ermctl_run_until_breaker_opens);
	tcase_add_test(tc, ermctl_classify_and_breakers);
	tcase_add_test(tc, examples_run);
	tcase_add_test(tc, bad_config_sections);
	tcase_add_test(tc, ops_backup_and_rollback);
	tcase_add_test(tc, ermctl_run_backup_rollback);
	tcase_add_test(tc, ops_fallback_storage);
	tcase_add_test(tc, liberm_execute_with_fallback);
	tcase_add_test(tc, ops_storage_error_plan);
	tcase_add_test(tc, ops_storage_error_plan_escalates);
	tcase_add_test(tc, ops_decorrelated_jitter);
	tcase_add_test(tc, classify_over_the_wire);
	tcase_add_test(tc, retry_on_follows_reload);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return (failed ? 1 : 0);
}
