/*
 * Backups when things go wrong: ermd killed with SIGKILL at random moments
 * of restores (the target is always the old file or the backup, and no
 * temp file survives the next start), and a full state directory (1006
 * ENOSPC, no partial object, the daemon keeps serving and resumes when
 * space returns).
 */

#include <sys/stat.h>
#include <sys/wait.h>

#include <dirent.h>
#include <time.h>

#include "test_backup.h"

static struct bk	b;

static void
stop(void)
{
	if (b.d.pid > 0)
		ck_assert_int_eq(daemon_stop(&b.d), 0);
}

/* Files named .ermd-restore-* in dir. */
static int
restore_temps(const char *dir)
{
	DIR		*d;
	struct dirent	*de;
	int		 n = 0;

	ck_assert_ptr_nonnull(d = opendir(dir));
	while ((de = readdir(d)) != NULL)
		if (strncmp(de->d_name, ".ermd-restore-", 14) == 0)
			n++;
	closedir(d);
	return (n);
}

/* Replace path with new content the way an editor would (complete). */
static void
replace(const char *path, size_t len, unsigned seed)
{
	char	tmp[300];

	snprintf(tmp, sizeof(tmp), "%s.new", path);
	bk_random_file(tmp, len, seed);
	ck_assert_int_eq(rename(tmp, path), 0);
}

static void
send_restore(int fd, const char *id)
{
	char	req[128];

	snprintf(req, sizeof(req), "{\"id\":1,\"method\":\"backup.restore\","
	    "\"params\":{\"id\":\"%s\"}}", id);
	raw_send_frame(fd, req);
}

/*
 * 100 cycles: the target holds fresh content A, a restore of the 1 MiB
 * backup B starts, ermd gets SIGKILL somewhere between the request and a
 * while after a restore would have finished. The target's SHA-256 is A's
 * or B's, never anything else, and after a restart no temp file is left.
 */
START_TEST(kill9_during_restores)
{
	char		 target[256], shaB[65], shaA[65], got[65], id[32];
	char		 intents[256];
	json_t		*r;
	double		 t0, took;
	int		 cycle, fd, old = 0, restored = 0, delay_us;

	bk_start(&b, NULL, NULL);
	snprintf(target, sizeof(target), "%s/t", b.root);
	snprintf(intents, sizeof(intents), "%s/restoring", b.d.state);
	bk_random_file(target, 1 << 20, 1);
	bk_sha256(target, shaB);
	r = bk_ok(bk_create(&b, target));
	snprintf(id, sizeof(id), "%s", bk_str(r, "id"));
	json_decref(r);

	/*
	 * How long a restore takes here (the slowest of three): the kills
	 * spread over twice that, and every tenth cycle kills at once or
	 * after three times that, so both sides of the rename are hit even
	 * on a loaded machine.
	 */
	for (took = 0, cycle = 0; cycle < 3; cycle++) {
		replace(target, 1 << 20, 2);
		t0 = mono_ms();
		json_decref(bk_ok(bk_rpc(&b, "backup.restore", json_pack(
		    "{s:s}", "id", id))));
		if (mono_ms() - t0 > took)
			took = mono_ms() - t0;
	}
	srandom(42);
	for (cycle = 0; cycle < 100; cycle++) {
		replace(target, 1 << 20, 1000 + (unsigned)cycle);
		bk_sha256(target, shaA);
		ck_assert_int_ne(fd = raw_connect(b.d.sock), -1);
		send_restore(fd, id);
		if (cycle % 10 == 0)
			delay_us = 0;
		else if (cycle % 10 == 5)
			delay_us = (int)(took * 3000);
		else
			delay_us = (int)(random() % (long)(took * 2000 + 1));
		usleep((useconds_t)delay_us);
		daemon_kill9(&b.d);
		close(fd);
		bk_sha256(target, got);
		if (strcmp(got, shaA) == 0)
			old++;
		else if (strcmp(got, shaB) == 0)
			restored++;
		else
			ck_abort_msg("cycle %d (kill after %d us): the target "
			    "is neither the old file nor the backup", cycle,
			    delay_us);
		daemon_restart(&b.d);
		ck_assert_int_eq(restore_temps(b.root), 0);
		ck_assert_int_eq(bk_count_files(intents), 0);
	}
	fprintf(stderr, "kill -9: %d targets untouched, %d restored (a "
	    "restore takes up to %.1f ms here)\n", old, restored, took);
	ck_assert_int_eq(old + restored, 100);
	ck_assert_msg(old > 0 && restored > 0, "the kills never landed on "
	    "both sides of the rename (%d old, %d restored)", old, restored);
	/* The store is intact: the backup still verifies and restores. */
	r = bk_ok(bk_rpc(&b, "backup.verify", NULL));
	ck_assert_int_eq(bk_int(r, "ok"), bk_int(r, "checked"));
	json_decref(r);
	json_decref(bk_ok(bk_rpc(&b, "backup.restore", json_pack("{s:s}",
	    "id", id))));
	bk_sha256(target, got);
	ck_assert_str_eq(got, shaB);
}
END_TEST

static void
expect_enospc(json_t *r)
{
	char	*s = json_dumps(r, JSON_COMPACT);

	ck_assert_msg(reply_code(r) == 1006, "expected 1006: %s", s);
	ck_assert_str_eq(json_string_value(json_object_get(bk_edata(r),
	    "errno")), "ENOSPC");
	ck_assert(json_is_string(json_object_get(bk_edata(r), "path")));
	free(s);
	json_decref(r);
}

/*
 * The state directory on a 2 MiB tmpfs: a 3 MiB backup fails with 1006
 * ENOSPC and leaves nothing behind, reads and pings keep working, a small
 * backup works; with the disk full even a small one fails cleanly, and
 * once space returns backups work again.
 */
START_TEST(enospc_on_the_state_dir)
{
	char	 big[256], small[256], small2[256], filler[300];
	char	 tmpdir[300];
	json_t	*r;
	int	 objects;

	bk_prepare(&b);
	ck_assert_int_eq(mkdir(b.d.state, 0700), 0);
	if (mount_small_tmpfs(b.d.state, "2m") == -1)
		return;
	bk_launch(&b, NULL, NULL);
	snprintf(big, sizeof(big), "%s/big", b.root);
	snprintf(small, sizeof(small), "%s/small", b.root);
	snprintf(small2, sizeof(small2), "%s/small2", b.root);
	snprintf(tmpdir, sizeof(tmpdir), "%s/tmp", b.objects);
	bk_random_file(big, 3 << 20, 1);
	bk_random_file(small, 10000, 2);
	bk_random_file(small2, 10000, 3);

	expect_enospc(bk_create(&b, big));
	ck_assert_int_eq(bk_count_files(tmpdir), 0);
	ck_assert_int_eq(bk_count_objects(&b), 0);
	assert_serves(&b.d);
	json_decref(bk_ok(bk_create(&b, small)));
	objects = bk_count_objects(&b);
	ck_assert_int_eq(objects, 1);

	/* Full: the copy or the commit fails, and nothing is left over. */
	fill_up(b.d.state);
	expect_enospc(bk_create(&b, small2));
	ck_assert_int_eq(bk_count_files(tmpdir), 0);
	ck_assert_int_eq(bk_count_objects(&b), objects);
	r = bk_ok(bk_rpc(&b, "backup.list", NULL));
	ck_assert_int_eq(json_array_size(json_object_get(bk_result(r),
	    "backups")), 1);
	json_decref(r);
	assert_serves(&b.d);

	/* Space returns: so does service. */
	snprintf(filler, sizeof(filler), "%s/filler", b.d.state);
	ck_assert_int_eq(unlink(filler), 0);
	json_decref(bk_ok(bk_create(&b, small2)));
	json_decref(bk_ok(bk_rpc(&b, "backup.restore", json_pack("{s:s}",
	    "path", small))));
	assert_serves(&b.d);

	daemon_stop_unmount(&b.d);
}
END_TEST

int
main(void)
{
	Suite	*s = suite_create("backup_faults");
	TCase	*tc = tcase_create("backup_faults");
	SRunner	*sr;
	int	 failed;

	tcase_set_timeout(tc, 150);
	tcase_add_checked_fixture(tc, NULL, stop);
	tcase_add_test(tc, kill9_during_restores);
	tcase_add_test(tc, enospc_on_the_state_dir);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return (failed ? 1 : 0);
}
