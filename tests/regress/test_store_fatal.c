/*
 * A failed fsync of the database is fatal (BEHAVIOUR.md §5): with one
 * fsync of the SQLite files failing under a stream of pipelined reports
 * from several connections, no request is answered with success after the
 * failure (every reply from then on is 1006), ermd exits non-zero on its
 * own, and after a restart every acknowledged report is stored and nothing
 * but the failing batch itself may be stored besides.
 *
 * The failure comes from a small LD_PRELOAD library (failsync.c, built by
 * the Makefile) that replaces fsync and fdatasync: once
 * the trigger file exists it counts the syncs of files named ermd.db* and
 * fails the FS_NTH-th with EIO, once, after 100 ms (as a dying disk takes
 * its time): requests keep queueing behind the failing commit meanwhile,
 * which is what a store that went on committing would acknowledge.
 */

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

static struct daemon	d;

static void
stop(void)
{
	if (d.pid > 0)
		ck_assert_int_eq(daemon_stop(&d), 0);
}

/*
 * The interposer, tests/regress/failsync.c, is built by the Makefile beside
 * this test; FAILSYNC_SO names it (as `make regress` sets it), else
 * build/tests/failsync.so.
 */
static const char *
failsync_so(void)
{
	const char	*p = getenv("FAILSYNC_SO");

	return (p != NULL && *p != '\0' ? p : "build/tests/failsync.so");
}

#define FS_CONNS	8
#define FS_BEFORE	5	/* per connection, acknowledged before */
#define FS_STREAM	60	/* per connection, streamed after */
#define FS_PACE_US	2000	/* between rounds of one per connection */
#define FS_NTH		"3"	/* the fsync that fails, once armed */

/*
 * Send report n of connection conn: 0, or -1 once ermd has gone (it
 * closes the connections when it exits).
 */
static int
send_report(int fd, int conn, int n)
{
	char	buf[256], id[40];

	test_uuid(id, sizeof(id), conn, n);
	snprintf(buf, sizeof(buf), "{\"id\":%d,\"method\":\"error.report\","
	    "\"params\":{\"operation\":\"fsync-fatal\",\"id\":\"%s\","
	    "\"errno\":%d}}", n, id, 1 + n % 100);
	return (raw_try_send_frame(fd, buf));
}

/* Wait up to ms for ermd to exit by itself; its wait status, or -1. */
static int
wait_exit(struct daemon *dm, int ms)
{
	double	until = mono_ms() + ms;
	int	status;

	while (mono_ms() < until) {
		if (waitpid(dm->pid, &status, WNOHANG) == dm->pid) {
			dm->pid = 0;
			return (status);
		}
		usleep(10000);
	}
	return (-1);
}

/* The number of jobs in the batch whose commit failed, from the log. */
static int
failed_batch_size(const struct daemon *dm)
{
	char	 line[1024];
	FILE	*fp;
	int	 n = -1;

	ck_assert_ptr_nonnull(fp = fopen(dm->log, "r"));
	while (n == -1 && fgets(line, sizeof(line), fp) != NULL) {
		const char	*p = strstr(line, "store: batch of ");

		if (p != NULL && strstr(p, " failed: ") != NULL)
			n = atoi(p + strlen("store: batch of "));
	}
	fclose(fp);
	return (n);
}

/*
 * Eight connections each get five reports acknowledged, the interposer
 * is armed, and each then streams sixty more. Per connection, replies
 * come in the order of the requests (completions run in submission
 * order), so a success after that connection's first 1006 would be a
 * write committed after the failure. After the restart: every
 * acknowledged id is stored; a stored id that was not acknowledged can
 * only be one of the failing batch (its frames may be in the WAL: a 1006
 * says the outcome is unknown, not that nothing was written), so there
 * are at most as many as that batch held.
 */
START_TEST(nothing_acknowledged_after_failed_fsync)
{
	char		 trigger[256], id[40], env_pre[300];
	char		 env_trig[300], env_asan[300];
	const char	*env[] = { env_pre, env_trig, env_asan,
	    "ERMD_TEST_FAIL_SYNC_NTH=" FS_NTH, NULL };
	const char	*asan = getenv("ASAN_OPTIONS");
	int		 fds[FS_CONNS], got[FS_CONNS], failed[FS_CONNS];
	int		 alive[FS_CONNS];
	int		 i, n, code, status, acked = 0, nfail = 0, extra;
	int		 batch, live;
	struct pollfd	 pfd[FS_CONNS];
	json_t		*acks, *stored, *r, *e;
	size_t		 k;
	double		 t0, took;
	const char	*key;

	daemon_prepare(&d);
	ck_assert_msg(access(failsync_so(), R_OK) == 0, "%s: %s (make "
	    "regress builds it)", failsync_so(), strerror(errno));
	snprintf(trigger, sizeof(trigger), "%s/fail-sync", d.dir);
	snprintf(env_pre, sizeof(env_pre), "LD_PRELOAD=%s", failsync_so());
	/* An ASan daemon wants its runtime first; the interposer is not. */
	snprintf(env_asan, sizeof(env_asan), "ASAN_OPTIONS=%s%s"
	    "verify_asan_link_order=0", asan != NULL ? asan : "",
	    asan != NULL && *asan != '\0' ? ":" : "");
	snprintf(env_trig, sizeof(env_trig), "ERMD_TEST_FAIL_SYNC=%s",
	    trigger);
	daemon_start_env(&d, NULL, NULL, env, -1);

	acks = json_object();
	for (i = 0; i < FS_CONNS; i++) {
		ck_assert_int_ne(fds[i] = raw_connect(d.sock), -1);
		for (n = 0; n < FS_BEFORE; n++)
			ck_assert_int_eq(send_report(fds[i], i, n), 0);
	}
	for (i = 0; i < FS_CONNS; i++)
		for (n = 0; n < FS_BEFORE; n++) {
			ck_assert_ptr_nonnull(r = raw_recv(fds[i], 10000));
			ck_assert_int_eq(reply_code(r), 0);
			test_uuid(id, sizeof(id), i, (int)json_integer_value(
			    json_object_get(r, "id")));
			json_object_set_new(acks, id, json_true());
			acked++;
			json_decref(r);
		}

	/*
	 * Arm the interposer, then stream without waiting for replies: a
	 * round of one request per connection every FS_PACE_US, so that the
	 * stream spans many commits, the failing batch holds requests from
	 * several connections, and more keep arriving behind it while its
	 * fsync takes its time. Replies are read as they come; a
	 * connection is finished when all its replies came or ermd closed
	 * it.
	 */
	ck_assert_int_ne(n = open(trigger, O_WRONLY | O_CREAT, 0600), -1);
	close(n);
	t0 = mono_ms();
	for (i = 0; i < FS_CONNS; i++) {
		got[i] = failed[i] = 0;
		alive[i] = 1;
	}
	for (n = FS_BEFORE;; n++) {
		for (live = 0, i = 0; i < FS_CONNS; i++) {
			if (alive[i] && n < FS_BEFORE + FS_STREAM &&
			    send_report(fds[i], i, n) == -1)
				alive[i] = 0;	/* ermd has gone */
			pfd[i].fd = alive[i] ? fds[i] : -1;
			pfd[i].events = POLLIN;
			live += alive[i];
		}
		if (live == 0)
			break;
		if (n < FS_BEFORE + FS_STREAM) {
			usleep(FS_PACE_US);
			if (poll(pfd, FS_CONNS, 0) <= 0)
				continue;
		} else
			ck_assert_msg(poll(pfd, FS_CONNS, 10000) > 0,
			    "no reply for 10 s");
		for (i = 0; i < FS_CONNS; i++) {
			if (pfd[i].revents == 0)
				continue;
			if ((r = raw_recv(fds[i], 10000)) == NULL) {
				alive[i] = 0;	/* ermd closed it */
				continue;
			}
			if (++got[i] == FS_STREAM)
				alive[i] = 0;
			code = reply_code(r);
			test_uuid(id, sizeof(id), i, (int)json_integer_value(
			    json_object_get(r, "id")));
			json_decref(r);
			if (code == 0) {
				if (failed[i])
					daemon_dump_log(&d);
				ck_assert_msg(!failed[i], "conn %d: %s "
				    "acknowledged after a 1006", i, id);
				json_object_set_new(acks, id, json_true());
				acked++;
				continue;
			}
			ck_assert_msg(code == 1006, "conn %d: %s got %d", i,
			    id, code);
			failed[i]++;
			nfail++;
		}
	}
	for (i = 0; i < FS_CONNS; i++)
		close(fds[i]);

	/* It exits by itself, promptly, and not with 0. */
	status = wait_exit(&d, 10000);
	took = mono_ms() - t0;
	if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) == 0)
		daemon_dump_log(&d);
	ck_assert_msg(status != -1, "ermd did not exit after the failed "
	    "fsync");
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) != 0,
	    "ermd exited with status %#x", status);
	ck_assert_msg(nfail > 0, "no request got 1006");
	ck_assert_int_gt(batch = failed_batch_size(&d), 0);
	ck_assert(daemon_log_has(&d, "the store failed to commit", 0));

	/* Without the interposer: what the database holds. */
	d.env = NULL;
	daemon_restart(&d);
	ck_assert_int_ne(fds[0] = raw_connect(d.sock), -1);
	r = call_on(fds[0], "{\"id\":1,\"method\":\"error.list\",\"params\":"
	    "{\"limit\":1000}}");
	stored = json_object();
	json_array_foreach(json_object_get(result(r), "errors"), k, e)
		json_object_set_new(stored, json_string_value(
		    json_object_get(e, "id")), json_true());
	json_decref(r);
	close(fds[0]);
	json_object_foreach(acks, key, e)
		ck_assert_msg(json_object_get(stored, key) != NULL,
		    "acknowledged %s is missing", key);
	extra = (int)json_object_size(stored) - acked;
	ck_assert_int_eq((int)json_object_size(acks), acked);
	ck_assert_int_ge(extra, 0);
	ck_assert_msg(extra <= batch, "%d stored but not acknowledged, more "
	    "than the failing batch's %d", extra, batch);
	ck_assert_int_eq(db_int(&d, "SELECT count(*) FROM errors"),
	    (int64_t)json_object_size(stored));
	fprintf(stderr, "nothing_acknowledged_after_failed_fsync: %d "
	    "acknowledged (%d before arming), %d got 1006, failing batch "
	    "%d, %d of it stored; exited %d after %.0f ms\n", acked,
	    FS_CONNS * FS_BEFORE, nfail, batch, extra, WEXITSTATUS(status),
	    took);
	json_decref(stored);
	json_decref(acks);
}
END_TEST

int
main(void)
{
	Suite	*s = suite_create("store_fatal");
	TCase	*tc = tcase_create("store_fatal");
	SRunner	*sr;
	int	 failed;

	tcase_set_timeout(tc, 120);
	tcase_add_checked_fixture(tc, NULL, stop);
	tcase_add_test(tc, nothing_acknowledged_after_failed_fsync);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return (failed ? 1 : 0);
}
