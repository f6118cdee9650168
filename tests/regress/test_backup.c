/*
 * Backups against a real ermd: round trips (empty, small, 100 MiB, sparse),
 * deduplication, mode/mtime/owner restored, retention, a corrupted object
 * (refused, then replaced by the next backup of its content), events,
 * metrics and the oplog, peer permissions, params, leftovers removed at
 * start, a root without path refused by the config check, and the ermctl
 * commands (confirmation on a terminal included).
 */

#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>

#include <grp.h>
#include <poll.h>
#include <pty.h>
#include <time.h>

#include "test_backup.h"

static struct bk	b;

static void
stop(void)
{
	if (b.d.pid > 0)
		ck_assert_int_eq(daemon_stop(&b.d), 0);
}

/* Back up path, scribble over it, restore by id: the bytes come back. */
static void
round_trip(const char *path, int dedup)
{
	char		 want[65], got[65];
	json_t		*r;
	char		*id;

	bk_sha256(path, want);
	r = bk_ok(bk_create(&b, path));
	ck_assert_str_eq(bk_str(r, "sha256"), want);
	ck_assert_str_eq(bk_str(r, "path"), path);
	ck_assert(json_equal(json_object_get(bk_result(r), "deduplicated"),
	    dedup ? json_true() : json_false()));
	id = strdup(bk_str(r, "id"));
	json_decref(r);
	bk_random_file(path, 12345, 99);
	r = bk_ok(bk_rpc(&b, "backup.restore", json_pack("{s:s}", "id", id)));
	ck_assert(json_is_true(json_object_get(bk_result(r), "restored")));
	ck_assert_str_eq(bk_str(r, "sha256"), want);
	json_decref(r);
	bk_sha256(path, got);
	ck_assert_str_eq(got, want);
	free(id);
}

START_TEST(round_trips)
{
	static const size_t	 sizes[] = { 0, 1, 4097, 3 << 20 };
	char			 path[256];
	size_t			 i;

	bk_start(&b, NULL, NULL);
	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		snprintf(path, sizeof(path), "%s/f%zu", b.root, sizes[i]);
		bk_random_file(path, sizes[i], (unsigned)i + 1);
		round_trip(path, 0);
	}
	assert_serves(&b.d);
}
END_TEST

/*
 * 100 MiB: the round trip, and a ping on another connection answered
 * while the copy runs (copies are off the event loop).
 */
START_TEST(large_file_does_not_stall_others)
{
	char	 path[256], want[65], got[65], *req;
	json_t	*r, *p;
	int	 fd;

	bk_start(&b, NULL, NULL);
	snprintf(path, sizeof(path), "%s/big", b.root);
	bk_random_file(path, 100 << 20, 7);
	bk_sha256(path, want);

	fd = raw_connect(b.d.sock);
	ck_assert_int_ne(fd, -1);
	p = json_pack("{s:s, s:s, s:{s:s}}", "id", "big", "method",
	    "backup.create", "params", "path", path);
	req = json_dumps(p, JSON_COMPACT);
	json_decref(p);
	raw_send_frame(fd, req);
	free(req);
	/*
	 * Another client is served while the copy runs: its ping is answered
	 * before the backup's reply exists (a copy on the loop would have
	 * made the ping wait for it).
	 */
	assert_serves(&b.d);
	{
		struct pollfd	pfd = { fd, POLLIN, 0 };

		ck_assert_msg(poll(&pfd, 1, 0) == 0, "the backup finished "
		    "before another client's ping was answered");
	}
	r = raw_recv(fd, 30000);
	ck_assert_ptr_nonnull(r);
	close(fd);
	ck_assert_int_eq(reply_code(r), 0);
	ck_assert_str_eq(bk_str(r, "sha256"), want);
	json_decref(r);

	round_trip(path, 1);
	bk_sha256(path, got);
	ck_assert_str_eq(got, want);
}
END_TEST

/* Holes stay holes: in the object and in the restored file. */
START_TEST(sparse_round_trip)
{
	char		 path[256], obj[512], want[65], got[65];
	struct stat	 st;
	json_t		*r;
	int		 fd;

	bk_start(&b, NULL, NULL);
	snprintf(path, sizeof(path), "%s/sparse", b.root);
	ck_assert_int_ne(fd = open(path, O_WRONLY | O_CREAT, 0644), -1);
	ck_assert_int_eq(ftruncate(fd, 64 << 20), 0);
	ck_assert_int_eq(pwrite(fd, "first", 5, 1 << 20), 5);
	ck_assert_int_eq(pwrite(fd, "second", 6, 40 << 20), 6);
	close(fd);
	bk_sha256(path, want);
	r = bk_ok(bk_create(&b, path));
	ck_assert_str_eq(bk_str(r, "sha256"), want);
	bk_object(&b, want, obj, sizeof(obj));
	json_decref(r);
	ck_assert_int_eq(stat(obj, &st), 0);
	ck_assert_int_eq(st.st_size, 64 << 20);
	ck_assert_msg(st.st_blocks * 512 < (1 << 20),
	    "the object is not sparse: %lld blocks", (long long)st.st_blocks);

	ck_assert_int_eq(unlink(path), 0);
	r = bk_ok(bk_rpc(&b, "backup.restore", json_pack("{s:s, s:s}",
	    "path", path, "version", "latest")));
	json_decref(r);
	bk_sha256(path, got);
	ck_assert_str_eq(got, want);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_msg(st.st_blocks * 512 < (1 << 20),
	    "the restored file is not sparse: %lld blocks",
	    (long long)st.st_blocks);
}
END_TEST

START_TEST(identical_content_is_stored_once)
{
	char	 a[256], c[256], obj[512];
	json_t	*r1, *r2, *m;

	bk_start(&b, NULL, NULL);
	snprintf(a, sizeof(a), "%s/a", b.root);
	snprintf(c, sizeof(c), "%s/c", b.root);
	bk_random_file(a, 100000, 3);
	bk_random_file(c, 100000, 3);
	r1 = bk_ok(bk_create(&b, a));
	r2 = bk_ok(bk_create(&b, c));
	ck_assert_str_eq(bk_str(r1, "sha256"), bk_str(r2, "sha256"));
	ck_assert(json_is_false(json_object_get(bk_result(r1),
	    "deduplicated")));
	ck_assert(json_is_true(json_object_get(bk_result(r2),
	    "deduplicated")));
	ck_assert_str_ne(bk_str(r1, "id"), bk_str(r2, "id"));
	bk_object(&b, bk_str(r1, "sha256"), obj, sizeof(obj));
	ck_assert(bk_exists(obj));
	/* One object file, temp files gone. */
	ck_assert_int_eq(bk_count_objects(&b), 1);
	m = bk_rpc(&b, "metrics.get", NULL);
	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(
	    bk_result(m), "backups"), "count")), 2);
	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(
	    bk_result(m), "backups"), "bytes")), 100000);
	json_decref(m);
	json_decref(r1);
	json_decref(r2);
}
END_TEST

START_TEST(mode_mtime_owner_restored)
{
	struct timespec	 ts[2] = { { 1000000000, 0 }, { 1234567890,
	    123456789 } };
	char		 path[256];
	struct stat	 st;
	json_t		*r;

	bk_start(&b, NULL, NULL);
	snprintf(path, sizeof(path), "%s/m", b.root);
	bk_random_file(path, 5000, 4);
	ck_assert_int_eq(chmod(path, 0640), 0);
	if (geteuid() == 0)
		ck_assert_int_eq(chown(path, 1234, 2345), 0);
	ck_assert_int_eq(utimensat(AT_FDCWD, path, ts, 0), 0);
	r = bk_ok(bk_create(&b, path));
	ck_assert_int_eq(bk_int(r, "mode"), 0640);
	ck_assert_int_eq(bk_int(r, "mtime"), 1234567890123);
	json_decref(r);

	bk_random_file(path, 10, 5);
	ck_assert_int_eq(chmod(path, 0600), 0);
	if (geteuid() == 0)
		ck_assert_int_eq(chown(path, 0, 0), 0);
	json_decref(bk_ok(bk_rpc(&b, "backup.restore", json_pack("{s:s}",
	    "path", path))));
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_int_eq(st.st_mode & 07777, 0640);
	ck_assert_int_eq(st.st_size, 5000);
	ck_assert_int_eq(st.st_mtim.tv_sec, 1234567890);
	ck_assert_int_eq(st.st_mtim.tv_nsec, 123456789);
	if (geteuid() == 0) {
		ck_assert_int_eq(st.st_uid, 1234);
		ck_assert_int_eq(st.st_gid, 2345);
	}
}
END_TEST

static json_t *
list_ids(const char *path)
{
	json_t	*r, *ids, *v;
	size_t	 i;

	r = bk_ok(bk_rpc(&b, "backup.list", json_pack("{s:s}", "path",
	    path)));
	ids = json_array();
	json_array_foreach(json_object_get(bk_result(r), "backups"), i, v)
		json_array_append(ids, json_object_get(v, "id"));
	json_decref(r);
	return (ids);
}

static void
advance(json_int_t ms)
{
	json_decref(bk_ok(bk_rpc(&b, "debug.advance", json_pack("{s:I}",
	    "ms", ms))));
}

/* The timer's prune commits after debug.advance replies: wait for it. */
static json_t *
list_ids_when(const char *path, size_t n)
{
	json_t	*list;
	int	 i;

	for (i = 0; i < 200; i++) {
		list = list_ids(path);
		if (json_array_size(list) == n)
			break;
		json_decref(list);
		list = NULL;
		usleep(10000);
	}
	ck_assert_msg(list != NULL, "%s: never %zu backups", path, n);
	return (list);
}

/* oplog entries of prunes that removed nothing (no backup_id). */
static int
bare_prunes(void)
{
	json_t	*r, *e;
	size_t	 i;
	int	 n = 0;

	r = bk_ok(bk_rpc(&b, "oplog.list", json_pack("{s:i}", "limit",
	    1000)));
	json_array_foreach(json_object_get(bk_result(r), "entries"), i, e)
		if (strcmp(json_string_value(json_object_get(e, "action")),
		    "prune") == 0 && json_object_get(e, "backup_id") == NULL)
			n++;
	json_decref(r);
	return (n);
}

/*
 * Removed objects are renamed into objects/trash, which a worker empties:
 * wait for it to hold nothing (10 s at most).
 */
static int
trash_emptied(void)
{
	char	trash[256];
	int	i, n = -1;

	snprintf(trash, sizeof(trash), "%s/trash", b.objects);
	for (i = 0; i < 100 && (n = bk_count_files(trash)) != 0; i++)
		usleep(100000);
	return (n);
}

/*
 * keep_last keeps the newest of each path, on backup.prune and on the
 * hourly timer; max_age_ms removes what is older; objects go with their
 * last record.
 */
START_TEST(prune_keeps_the_newest)
{
	static const char *const args[] = { "--manual-clock", NULL };
	char		 path[256], other[256], obj[512], first_sha[65];
	json_t		*ids[6], *r, *list;
	int		 i, n;

	/*
	 * read_timeout_ms = 0: conn.c cancels a connection's read timer only
	 * after dispatching the frame, so a debug.advance whose header came
	 * in a read of its own fires that timer and loses its reply.
	 */
	bk_start(&b, "[daemon]\nread_timeout_ms = 0\n[backup]\nkeep_last = 3\n"
	    "max_age_ms = 36000000\n", args);
	snprintf(path, sizeof(path), "%s/p", b.root);
	snprintf(other, sizeof(other), "%s/other", b.root);
	bk_random_file(other, 100, 77);
	json_decref(bk_ok(bk_create(&b, other)));
	for (i = 0; i < 5; i++) {
		bk_random_file(path, 1000, (unsigned)(100 + i));
		r = bk_ok(bk_create(&b, path));
		ids[i] = json_incref(json_object_get(bk_result(r), "id"));
		if (i == 0)
			snprintf(first_sha, sizeof(first_sha), "%s",
			    bk_str(r, "sha256"));
		json_decref(r);
		advance(1000);
	}
	bk_object(&b, first_sha, obj, sizeof(obj));
	ck_assert(bk_exists(obj));

	r = bk_ok(bk_rpc(&b, "backup.prune", NULL));
	ck_assert_int_eq(bk_int(r, "removed"), 2);
	ck_assert_int_eq(bk_int(r, "bytes_freed"), 2000);
	json_decref(r);
	list = list_ids(path);
	ck_assert_int_eq(json_array_size(list), 3);
	for (i = 0; i < 3; i++)
		ck_assert(json_equal(json_array_get(list, (size_t)i),
		    ids[4 - i]));
	json_decref(list);
	ck_assert(!bk_exists(obj));
	ck_assert_int_eq(trash_emptied(), 0);
	list = list_ids(other);
	ck_assert_int_eq(json_array_size(list), 1);
	json_decref(list);

	/* Two more; the hourly prune brings the path back to three. */
	bk_random_file(path, 1000, 200);
	json_decref(bk_ok(bk_create(&b, path)));
	bk_random_file(path, 1000, 201);
	r = bk_ok(bk_create(&b, path));
	ids[5] = json_incref(json_object_get(bk_result(r), "id"));
	json_decref(r);
	list = list_ids(path);
	ck_assert_int_eq(json_array_size(list), 5);
	json_decref(list);
	advance(3600000);
	list = list_ids_when(path, 3);
	ck_assert(json_equal(json_array_get(list, 0), ids[5]));
	json_decref(list);

	/* Explicit rules: keep_last for one path, then older_than_ms. */
	r = bk_ok(bk_rpc(&b, "backup.prune", json_pack("{s:i, s:s}",
	    "keep_last", 1, "path", path)));
	ck_assert_int_eq(bk_int(r, "removed"), 2);
	json_decref(r);
	list = list_ids(path);
	ck_assert_int_eq(json_array_size(list), 1);
	ck_assert(json_equal(json_array_get(list, 0), ids[5]));
	json_decref(list);
	advance(10);
	r = bk_ok(bk_rpc(&b, "backup.prune", json_pack("{s:i}",
	    "older_than_ms", 5)));
	ck_assert_int_eq(bk_int(r, "removed"), 2);	/* p and other */
	json_decref(r);
	r = bk_ok(bk_rpc(&b, "backup.list", NULL));
	ck_assert_int_eq(json_array_size(json_object_get(bk_result(r),
	    "backups")), 0);
	json_decref(r);
	/* Every object went with its last record, and left the trash. */
	ck_assert_int_eq(bk_count_objects(&b), 0);
	ck_assert_int_eq(trash_emptied(), 0);
	r = bk_rpc(&b, "metrics.get", NULL);
	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(
	    bk_result(r), "backups"), "bytes")), 0);
	json_decref(r);

	/* max_age_ms on the hourly timer. */
	bk_random_file(path, 10, 300);
	json_decref(bk_ok(bk_create(&b, path)));
	advance(36000000 + 3600000);	/* older, then an hourly run */
	list = list_ids_when(path, 0);
	json_decref(list);
	/* An hourly run that removes nothing is in the oplog too. */
	n = bare_prunes();
	advance(3600000);
	for (i = 0; i < 200 && bare_prunes() == n; i++)
		usleep(10000);
	ck_assert_int_eq(bare_prunes(), n + 1);
	for (i = 0; i < 6; i++)
		json_decref(ids[i]);
}
END_TEST

static void
flip_byte(const char *path, off_t off)
{
	unsigned char	c;
	int		fd;

	ck_assert_int_ne(fd = open(path, O_RDWR), -1);
	ck_assert_int_eq(pread(fd, &c, 1, off), 1);
	c ^= 0x01;
	ck_assert_int_eq(pwrite(fd, &c, 1, off), 1);
	close(fd);
}

/*
 * A flipped byte in a stored object: restore refuses with 1008 and leaves
 * the target alone, verify reports it, the oplog has it, and the next
 * backup of the same content stores a good copy again.
 */
START_TEST(corrupted_object_is_refused)
{
	char		 path[256], obj[512], sha[65], now[65], orig[65];
	char		*id;
	struct stat	 before, after;
	json_t		*r, *v;

	bk_start(&b, NULL, NULL);
	snprintf(path, sizeof(path), "%s/c", b.root);
	bk_random_file(path, 200000, 11);
	bk_sha256(path, orig);
	r = bk_ok(bk_create(&b, path));
	snprintf(sha, sizeof(sha), "%s", bk_str(r, "sha256"));
	id = strdup(bk_str(r, "id"));
	json_decref(r);
	bk_object(&b, sha, obj, sizeof(obj));
	flip_byte(obj, 123456);

	bk_random_file(path, 777, 12);
	bk_sha256(path, now);
	ck_assert_int_eq(stat(path, &before), 0);
	r = bk_rpc(&b, "backup.restore", json_pack("{s:s}", "id", id));
	ck_assert_int_eq(reply_code(r), 1008);
	ck_assert_str_eq(json_string_value(json_object_get(bk_edata(r),
	    "expected")), sha);
	v = json_object_get(bk_edata(r), "actual");
	ck_assert(json_is_string(v));
	ck_assert_str_ne(json_string_value(v), sha);
	json_decref(r);
	ck_assert_int_eq(stat(path, &after), 0);
	ck_assert_int_eq(before.st_ino, after.st_ino);
	ck_assert_int_eq(before.st_mtim.tv_nsec, after.st_mtim.tv_nsec);
	bk_sha256(path, sha);
	ck_assert_str_eq(sha, now);
	/* No temp file was left beside the target. */
	ck_assert_int_eq(bk_count_files(b.root), 1);

	r = bk_ok(bk_rpc(&b, "backup.verify", NULL));
	ck_assert_int_eq(bk_int(r, "checked"), 1);
	ck_assert_int_eq(bk_int(r, "ok"), 0);
	ck_assert_str_eq(json_string_value(json_array_get(json_object_get(
	    bk_result(r), "corrupted"), 0)), id);
	json_decref(r);
	r = bk_rpc(&b, "backup.verify", json_pack("{s:s}", "id", id));
	ck_assert_int_eq(json_array_size(json_object_get(bk_result(r),
	    "corrupted")), 1);
	json_decref(r);
	r = bk_ok(bk_rpc(&b, "oplog.list", json_pack("{s:i}", "limit", 10)));
	v = json_array_get(json_object_get(bk_result(r), "entries"), 0);
	ck_assert_str_eq(json_string_value(json_object_get(v, "action")),
	    "verify");
	ck_assert(json_is_false(json_object_get(v, "ok")));
	json_decref(r);

	/* The same content backed up again: a good copy, restorable. */
	bk_random_file(path, 200000, 11);
	r = bk_ok(bk_create(&b, path));
	ck_assert(json_is_false(json_object_get(bk_result(r),
	    "deduplicated")));
	json_decref(r);
	bk_random_file(path, 5, 13);
	json_decref(bk_ok(bk_rpc(&b, "backup.restore", json_pack("{s:s}",
	    "id", id))));
	bk_sha256(path, now);
	ck_assert_str_eq(now, orig);
	free(id);
	assert_serves(&b.d);
}
END_TEST

/*
 * A stored object corrupted in place (same size): backing up the same
 * content again reports deduplicated, and leaves a good object behind
 * that the old backup and the new one both verify and restore from.
 */
START_TEST(dedup_replaces_a_corrupted_object)
{
	static const off_t	 offs[] = { 0, 4096, 150001 };
	char			 path[256], obj[512], orig[65], now[65];
	char			*id[2];
	json_t			*r;
	size_t			 i;

	bk_start(&b, NULL, NULL);
	snprintf(path, sizeof(path), "%s/d", b.root);
	bk_random_file(path, 200000, 41);
	bk_sha256(path, orig);
	r = bk_ok(bk_create(&b, path));
	ck_assert(json_is_false(json_object_get(bk_result(r),
	    "deduplicated")));
	id[0] = strdup(bk_str(r, "id"));
	json_decref(r);
	bk_object(&b, orig, obj, sizeof(obj));
	for (i = 0; i < sizeof(offs) / sizeof(offs[0]); i++)
		flip_byte(obj, offs[i]);

	/* The file itself is unchanged: the same content again. */
	r = bk_ok(bk_create(&b, path));
	ck_assert_str_eq(bk_str(r, "sha256"), orig);
	ck_assert(json_is_true(json_object_get(bk_result(r),
	    "deduplicated")));
	id[1] = strdup(bk_str(r, "id"));
	json_decref(r);
	ck_assert_int_eq(bk_count_objects(&b), 1);
	bk_sha256(obj, now);
	ck_assert_str_eq(now, orig);

	r = bk_ok(bk_rpc(&b, "backup.verify", NULL));
	ck_assert_int_eq(bk_int(r, "checked"), 2);
	ck_assert_int_eq(bk_int(r, "ok"), 2);
	json_decref(r);
	for (i = 0; i < 2; i++) {
		r = bk_ok(bk_rpc(&b, "backup.verify", json_pack("{s:s}", "id",
		    id[i])));
		ck_assert_int_eq(bk_int(r, "ok"), 1);
		json_decref(r);
		bk_random_file(path, 99, (unsigned)(50 + i));
		json_decref(bk_ok(bk_rpc(&b, "backup.restore",
		    json_pack("{s:s}", "id", id[i]))));
		bk_sha256(path, now);
		ck_assert_str_eq(now, orig);
		free(id[i]);
	}
	assert_serves(&b.d);
}
END_TEST

START_TEST(events_metrics_and_oplog)
{
	char		 path[256], *s;
	json_t		*r, *ev, *req;
	int		 fd, got_created = 0, got_restored = 0, i, nprune;

	bk_start(&b, NULL, NULL);
	snprintf(path, sizeof(path), "%s/e", b.root);
	bk_random_file(path, 1000, 21);
	fd = raw_connect(b.d.sock);
	ck_assert_int_ne(fd, -1);
	r = raw_call(fd, "{\"id\":1,\"method\":\"events.subscribe\",\"params\":"
	    "{\"types\":[\"backup.created\",\"backup.restored\"]}}");
	ck_assert_int_eq(reply_code(r), 0);
	json_decref(r);
	json_decref(bk_ok(bk_create(&b, path)));
	json_decref(bk_ok(bk_rpc(&b, "backup.restore", json_pack("{s:s}",
	    "path", path))));
	for (i = 0; i < 2; i++) {
		ck_assert_ptr_nonnull(ev = raw_recv(fd, 5000));
		s = (char *)json_string_value(json_object_get(json_object_get(
		    ev, "params"), "type"));
		ck_assert_str_eq(json_string_value(json_object_get(
		    json_object_get(ev, "params"), "path")), path);
		if (strcmp(s, "backup.created") == 0)
			got_created++;
		if (strcmp(s, "backup.restored") == 0)
			got_restored++;
		json_decref(ev);
	}
	close(fd);
	ck_assert_int_eq(got_created, 1);
	ck_assert_int_eq(got_restored, 1);

	r = bk_ok(bk_rpc(&b, "metrics.prometheus", NULL));
	s = (char *)bk_str(r, "text");
	ck_assert_ptr_nonnull(strstr(s, "\nermd_backups_total 1\n"));
	ck_assert_ptr_nonnull(strstr(s, "\nermd_backup_bytes 1000\n"));
	json_decref(r);

	/* A refused path is in the oplog too, with the peer's uid. */
	r = bk_rpc(&b, "backup.create", json_pack("{s:s}", "path",
	    "/etc/passwd"));
	ck_assert_int_eq(reply_code(r), 1002);
	json_decref(r);
	req = json_pack("{s:s, s:i}", "path", path, "limit", 5);
	r = bk_ok(bk_rpc(&b, "oplog.list", req));
	ck_assert_int_eq(json_array_size(json_object_get(bk_result(r),
	    "entries")), 2);
	ev = json_array_get(json_object_get(bk_result(r), "entries"), 0);
	ck_assert_str_eq(json_string_value(json_object_get(ev, "action")),
	    "restore");
	ck_assert_int_eq(json_integer_value(json_object_get(ev, "uid")),
	    (json_int_t)geteuid());
	ck_assert(json_is_true(json_object_get(ev, "ok")));
	json_decref(r);
	r = bk_ok(bk_rpc(&b, "oplog.list", json_pack("{s:i}", "limit", 1)));
	ev = json_array_get(json_object_get(bk_result(r), "entries"), 0);
	ck_assert_str_eq(json_string_value(json_object_get(ev, "path")),
	    "/etc/passwd");
	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(
	    ev, "error"), "code")), 1002);
	json_decref(r);

	/* A refused restore by path: logged with the path as sent. */
	r = bk_rpc(&b, "backup.restore", json_pack("{s:s}", "path",
	    "/etc/passwd"));
	ck_assert_int_eq(reply_code(r), 1002);
	json_decref(r);
	r = bk_ok(bk_rpc(&b, "oplog.list", json_pack("{s:s}", "path",
	    "/etc/passwd")));
	ck_assert_int_eq(json_array_size(json_object_get(bk_result(r),
	    "entries")), 2);
	ev = json_array_get(json_object_get(bk_result(r), "entries"), 0);
	ck_assert_str_eq(json_string_value(json_object_get(ev, "action")),
	    "restore");
	ck_assert_str_eq(json_string_value(json_object_get(ev, "path")),
	    "/etc/passwd");
	ck_assert(json_is_false(json_object_get(ev, "ok")));
	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(
	    ev, "error"), "code")), 1002);
	json_decref(r);

	/* A prune that removes nothing still leaves one entry. */
	r = bk_ok(bk_rpc(&b, "backup.prune", json_pack("{s:i}", "keep_last",
	    100)));
	ck_assert_int_eq(bk_int(r, "removed"), 0);
	json_decref(r);
	r = bk_ok(bk_rpc(&b, "oplog.list", NULL));
	for (i = 0, nprune = 0; i < (int)json_array_size(
	    json_object_get(bk_result(r), "entries")); i++) {
		ev = json_array_get(json_object_get(bk_result(r), "entries"),
		    (size_t)i);
		if (strcmp(json_string_value(json_object_get(ev, "action")),
		    "prune") == 0)
			nprune++;
	}
	ck_assert_int_eq(nprune, 1);
	ev = json_array_get(json_object_get(bk_result(r), "entries"), 0);
	ck_assert_str_eq(json_string_value(json_object_get(ev, "action")),
	    "prune");
	ck_assert(json_is_true(json_object_get(ev, "ok")));
	ck_assert_ptr_null(json_object_get(ev, "backup_id"));
	ck_assert_int_eq(json_integer_value(json_object_get(ev, "uid")),
	    (json_int_t)geteuid());
	json_decref(r);
}
END_TEST

START_TEST(bad_params_and_unknown_ids)
{
	static const char *const bad[] = {
		"{\"id\":1,\"method\":\"backup.create\"}",
		"{\"id\":1,\"method\":\"backup.create\",\"params\":"
		    "{\"path\":1}}",
		"{\"id\":1,\"method\":\"backup.create\",\"params\":"
		    "{\"path\":\"/x\",\"bogus\":1}}",
		"{\"id\":1,\"method\":\"backup.restore\",\"params\":{}}",
		"{\"id\":1,\"method\":\"backup.restore\",\"params\":"
		    "{\"id\":\"a\",\"path\":\"/x\"}}",
		"{\"id\":1,\"method\":\"backup.restore\",\"params\":"
		    "{\"path\":\"/x\",\"version\":\"oldest\"}}",
		"{\"id\":1,\"method\":\"backup.list\",\"params\":"
		    "{\"limit\":0}}",
		"{\"id\":1,\"method\":\"backup.list\",\"params\":"
		    "{\"limit\":1001}}",
		"{\"id\":1,\"method\":\"backup.get\",\"params\":{}}",
		"{\"id\":1,\"method\":\"backup.prune\",\"params\":"
		    "{\"keep_last\":0}}",
		"{\"id\":1,\"method\":\"oplog.list\",\"params\":"
		    "{\"limit\":-1}}",
	};
	json_t	*r;
	size_t	 i;
	int	 fd;

	bk_start(&b, NULL, NULL);
	fd = raw_connect(b.d.sock);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		r = raw_call(fd, bad[i]);
		ck_assert_msg(reply_code(r) == -32602, "%s: got %d", bad[i],
		    reply_code(r));
		json_decref(r);
	}
	close(fd);
	r = bk_rpc(&b, "backup.get", json_pack("{s:s}", "id", "nope"));
	ck_assert_int_eq(reply_code(r), 1001);
	ck_assert_str_eq(json_string_value(json_object_get(bk_edata(r),
	    "kind")), "backup");
	ck_assert_str_eq(json_string_value(json_object_get(bk_edata(r),
	    "name")), "nope");
	json_decref(r);
	r = bk_rpc(&b, "backup.restore", json_pack("{s:s}", "id", "nope"));
	ck_assert_int_eq(reply_code(r), 1001);
	json_decref(r);
	r = bk_rpc(&b, "backup.verify", json_pack("{s:s}", "id", "nope"));
	ck_assert_int_eq(reply_code(r), 1001);
	json_decref(r);
	r = bk_rpc(&b, "backup.create", json_pack("{s:s+}", "path", b.root,
	    "/missing"));
	ck_assert_int_eq(reply_code(r), 1006);
	ck_assert_str_eq(json_string_value(json_object_get(bk_edata(r),
	    "errno")), "ENOENT");
	json_decref(r);
	assert_serves(&b.d);
}
END_TEST

/*
 * Connect as uid (with an extra group), send req (stolen), return the reply
 * code; *nlisted (when not NULL) gets the size of result.backups.
 */
static int
call_as_n(uid_t uid, gid_t gid, gid_t extra, json_t *req, int *nlisted)
{
	int	 p[2], status, code = -1, res[2] = { -1, -1 };
	pid_t	 pid;
	char	*s = json_dumps(req, JSON_COMPACT);

	json_decref(req);
	ck_assert_int_eq(pipe(p), 0);
	if ((pid = fork()) == 0) {
		gid_t	 groups[1] = { extra };
		int	 fd;
		json_t	*r;

		if (setgroups(extra ? 1 : 0, groups) == -1 ||
		    setgid(gid) == -1 || setuid(uid) == -1)
			_exit(100);
		if ((fd = raw_connect(b.d.sock)) == -1)
			_exit(101);
		r = raw_call(fd, s);
		res[0] = r == NULL ? -1 : reply_code(r);
		res[1] = (int)json_array_size(json_object_get(json_object_get(r,
		    "result"), "backups"));
		if (write(p[1], res, sizeof(res)) != sizeof(res))
			_exit(102);
		_exit(0);
	}
	close(p[1]);
	if (read(p[0], res, sizeof(res)) == sizeof(res))
		code = res[0];
	else
		code = -2;
	if (nlisted != NULL)
		*nlisted = res[1];
	close(p[0]);
	waitpid(pid, &status, 0);
	free(s);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	    "child failed with %d", WEXITSTATUS(status));
	return (code);
}

static int
call_as(uid_t uid, gid_t gid, gid_t extra, json_t *req)
{
	return (call_as_n(uid, gid, extra, req, NULL));
}

static json_t *
req_for(const char *method, json_t *params)
{
	return (json_pack("{s:i, s:s, s:o}", "id", 1, "method", method,
	    "params", params));
}

/*
 * A peer backs up what it could read itself and restores over what it
 * could write itself, within the roots that allow it.
 */
START_TEST(peer_permissions)
{
	char	conf[512], open_[256], secret[256], locked[256], sub[256];
	char	deep[256], mine[256];
	int	n;

	if (geteuid() != 0)
		return;		/* switching uids needs root */
	bk_start(&b, "[daemon]\nsocket_mode = 0666\n", NULL);
	ck_assert_int_eq(chmod(b.d.dir, 0755), 0);
	snprintf(open_, sizeof(open_), "%s/open", b.root);
	snprintf(secret, sizeof(secret), "%s/secret", b.root);
	snprintf(locked, sizeof(locked), "%s/locked", b.root);
	snprintf(sub, sizeof(sub), "%s/sub", b.root);
	snprintf(deep, sizeof(deep), "%s/sub/deep", b.root);
	snprintf(mine, sizeof(mine), "%s/mine", b.root);
	bk_random_file(open_, 100, 1);
	bk_random_file(secret, 100, 2);
	ck_assert_int_eq(chmod(secret, 0600), 0);
	bk_random_file(locked, 100, 3);
	ck_assert_int_eq(chmod(locked, 0644), 0);
	ck_assert_int_eq(mkdir(sub, 0700), 0);
	bk_random_file(deep, 100, 4);
	bk_random_file(mine, 100, 5);
	ck_assert_int_eq(chown(mine, 65534, 65534), 0);

	ck_assert_int_eq(call_as(65534, 65534, 0, req_for("backup.create",
	    json_pack("{s:s}", "path", open_))), 0);
	ck_assert_int_eq(call_as(65534, 65534, 0, req_for("backup.create",
	    json_pack("{s:s}", "path", secret))), 1002);
	/* A directory it may not search hides what is inside. */
	ck_assert_int_eq(call_as(65534, 65534, 0, req_for("backup.create",
	    json_pack("{s:s}", "path", deep))), 1002);
	ck_assert_int_eq(call_as(65534, 65534, 0, req_for("backup.create",
	    json_pack("{s:s}", "path", mine))), 0);
	/* Restores: over its own file yes, over root's 0644 file no. */
	ck_assert_int_eq(call_as(65534, 65534, 0, req_for("backup.restore",
	    json_pack("{s:s}", "path", mine))), 0);
	json_decref(bk_ok(bk_create(&b, locked)));
	ck_assert_int_eq(call_as(65534, 65534, 0, req_for("backup.restore",
	    json_pack("{s:s}", "path", locked))), 1002);
	ck_assert_int_eq(call_as(65534, 65534, 0, req_for("backup.prune",
	    json_pack("{}"))), 1002);
	assert_serves(&b.d);
	ck_assert_int_eq(daemon_stop_keep(&b.d), 0);

	/* allow_users / allow_groups on the root. */
	snprintf(conf, sizeof(conf), "[daemon]\nsocket_mode = 0666\n"
	    "[root.data]\npath = %s\nallow_users = 1000\nallow_groups = 4242\n",
	    b.root);
	daemon_write_conf(&b.d, conf);
	daemon_restart(&b.d);
	ck_assert_int_eq(call_as(65534, 65534, 0, req_for("backup.create",
	    json_pack("{s:s}", "path", open_))), 1002);
	ck_assert_int_eq(call_as(65534, 65534, 4242, req_for("backup.create",
	    json_pack("{s:s}", "path", open_))), 0);
	ck_assert_int_eq(call_as(1000, 1000, 0, req_for("backup.create",
	    json_pack("{s:s}", "path", open_))), 0);
	/* Not allowed on the root: its backups are not shown either. */
	ck_assert_int_eq(call_as_n(65534, 65534, 0, req_for("backup.list",
	    json_pack("{}")), &n), 0);
	ck_assert_int_eq(n, 0);
	ck_assert_int_eq(call_as_n(1000, 1000, 0, req_for("backup.list",
	    json_pack("{}")), &n), 0);
	ck_assert_int_gt(n, 0);
	assert_serves(&b.d);
}
END_TEST

/* Temp files a crash left in objects/tmp/ and beside targets go at start. */
START_TEST(leftovers_removed_at_start)
{
	char	 tmp[512], intent[512], target[256], path[512];
	FILE	*fp;

	bk_start(&b, NULL, NULL);
	ck_assert_int_eq(daemon_stop_keep(&b.d), 0);
	snprintf(tmp, sizeof(tmp), "%s/tmp/0123456789abcdef.tmp", b.objects);
	bk_random_file(tmp, 1000, 1);
	snprintf(target, sizeof(target), "%s/.ermd-restore-00000000000000aa",
	    b.root);
	bk_random_file(target, 1000, 2);
	snprintf(intent, sizeof(intent), "%s/restoring/00000000000000aa",
	    b.d.state);
	ck_assert_ptr_nonnull(fp = fopen(intent, "w"));
	fputs(target, fp);
	fclose(fp);
	/* A note naming a path outside every root is dropped, not followed. */
	snprintf(path, sizeof(path), "%s/restoring/00000000000000bb",
	    b.d.state);
	ck_assert_ptr_nonnull(fp = fopen(path, "w"));
	fprintf(fp, "%s/.ermd-restore-x", b.outside);
	fclose(fp);
	snprintf(path, sizeof(path), "%s/.ermd-restore-x", b.outside);
	bk_random_file(path, 10, 3);
	daemon_restart(&b.d);
	ck_assert(!bk_exists(tmp));
	ck_assert(!bk_exists(target));
	ck_assert(!bk_exists(intent));
	ck_assert(bk_exists(path));
	assert_serves(&b.d);
}
END_TEST

/*
 * Run ermctl on a pseudo-terminal, answering its question with answer;
 * the output (both streams) goes to out. Returns the exit status.
 */
static int
ermctl_pty(const char *answer, const char *const *args, char *out,
    size_t outsz)
{
	const char	*argv[16];
	struct pollfd	 pfd;
	size_t		 len = 0;
	ssize_t		 n;
	pid_t		 pid;
	int		 mfd, argc = 0, status, answered = 0, i;

	argv[argc++] = ermctl_path();
	argv[argc++] = "--socket";
	argv[argc++] = b.d.sock;
	for (i = 0; args[i] != NULL && argc < 15; i++)
		argv[argc++] = args[i];
	argv[argc] = NULL;
	if ((pid = forkpty(&mfd, NULL, NULL, NULL)) == 0) {
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	ck_assert_int_ne(pid, -1);
	pfd.fd = mfd;
	pfd.events = POLLIN;
	out[0] = '\0';
	while (poll(&pfd, 1, 10000) > 0) {
		if ((n = read(mfd, out + len, outsz - 1 - len)) <= 0)
			break;
		len += (size_t)n;
		out[len] = '\0';
		if (!answered && strstr(out, "[y/N]") != NULL) {
			ck_assert_int_eq(write(mfd, answer, strlen(answer)),
			    (ssize_t)strlen(answer));
			answered = 1;
		}
	}
	close(mfd);
	waitpid(pid, &status, 0);
	return (WIFEXITED(status) ? WEXITSTATUS(status) : 128);
}

/*
 * A [root.NAME] without path is a config error: ermd -t exits 78 with
 * file:line: message, and a reload to such a config is refused, the
 * roots in force kept.
 */
START_TEST(root_without_path_is_a_config_error)
{
	char		 conf[256], text[512], out[1024], want[512], file[256];
	const char	*argv[] = { ermd_path(), "-t", "-c", conf, NULL };
	json_t		*r, *errors;
	FILE		*fp;

	bk_start(&b, NULL, NULL);
	snprintf(conf, sizeof(conf), "%s/nopath.conf", b.d.dir);
	ck_assert_ptr_nonnull(fp = fopen(conf, "w"));
	fprintf(fp, "[root.data]\npath = %s\n[root.web]\nallow_users = 0\n"
	    "allow_hardlinks = yes\n", b.root);
	fclose(fp);
	ck_assert_int_eq(run_prog(out, sizeof(out), argv), 78);
	snprintf(want, sizeof(want), "%s:4: [root.web]: needs path = DIR\n",
	    conf);
	ck_assert_str_eq(out, want);

	snprintf(text, sizeof(text), "[root.data]\nallow_hardlinks = no\n");
	daemon_write_conf(&b.d, text);
	r = bk_rpc(&b, "config.reload", NULL);
	ck_assert_int_eq(reply_code(r), 1003);
	errors = json_object_get(bk_edata(r), "errors");
	ck_assert_uint_eq(json_array_size(errors), 1);
	snprintf(want, sizeof(want), "%s:2: [root.data]: needs path = DIR",
	    b.d.conf);
	ck_assert_str_eq(json_string_value(json_array_get(errors, 0)), want);
	json_decref(r);
	snprintf(file, sizeof(file), "%s/f", b.root);
	bk_random_file(file, 10, 1);
	json_decref(bk_ok(bk_create(&b, file)));
	assert_serves(&b.d);
}
END_TEST

START_TEST(ermctl_commands)
{
	char		 path[256], out[8192], want[65], got[65], id[32];
	char		*p;
	const char	*create[] = { "backup", "create", "--tag", "nightly",
	    path, NULL };
	const char	*restore[] = { "backup", "restore", path, NULL };
	const char	*restore_yes[] = { "backup", "restore", "--yes", path,
	    NULL };
	const char	*list[] = { "--json", "backup", "list", "--tag",
	    "nightly", NULL };
	const char	*show[] = { "backup", "show", id, NULL };
	const char	*verify[] = { "backup", "verify", NULL };
	const char	*prune[] = { "backup", "prune", "--keep-last", "1",
	    NULL };
	const char	*prune_old[] = { "backup", "prune", "--older-than",
	    "1d", NULL };
	const char	*prune_bad[] = { "backup", "prune", "--older-than",
	    "1y", NULL };
	const char	*oplog[] = { "oplog", "--limit", "2", NULL };
	const char	*bad[] = { "backup", "restore", NULL };

	bk_start(&b, NULL, NULL);
	snprintf(path, sizeof(path), "%s/ctl", b.root);
	bk_random_file(path, 3000, 31);
	bk_sha256(path, want);
	ck_assert_int_eq(ermctl(&b.d, out, sizeof(out), create), 0);
	ck_assert_ptr_nonnull(strstr(out, "tag=nightly\n"));
	ck_assert_ptr_nonnull(p = strstr(out, "id="));
	snprintf(id, sizeof(id), "%.16s", p + 3);
	ck_assert_int_eq(ermctl(&b.d, out, sizeof(out), list), 0);
	ck_assert_ptr_nonnull(strstr(out, id));
	ck_assert_int_eq(ermctl(&b.d, out, sizeof(out), show), 0);
	ck_assert_ptr_nonnull(strstr(out, want));

	/* No terminal and no --yes: refused with 2, the file untouched. */
	bk_random_file(path, 10, 32);
	ck_assert_int_eq(ermctl(&b.d, out, sizeof(out), restore), 2);
	bk_sha256(path, got);
	ck_assert_str_ne(got, want);
	/* On a terminal, "n" keeps the file and "y" restores it. */
	ck_assert_int_eq(ermctl_pty("n\n", restore, out, sizeof(out)), 1);
	ck_assert_ptr_nonnull(strstr(out, "not restored"));
	bk_sha256(path, got);
	ck_assert_str_ne(got, want);
	ck_assert_int_eq(ermctl_pty("y\n", restore, out, sizeof(out)), 0);
	ck_assert_ptr_nonnull(strstr(out, "restored"));
	bk_sha256(path, got);
	ck_assert_str_eq(got, want);
	bk_random_file(path, 10, 33);
	ck_assert_int_eq(ermctl(&b.d, out, sizeof(out), restore_yes), 0);
	bk_sha256(path, got);
	ck_assert_str_eq(got, want);

	ck_assert_int_eq(ermctl(&b.d, out, sizeof(out), verify), 0);
	ck_assert_ptr_nonnull(strstr(out, "checked=1\n"));
	json_decref(bk_ok(bk_create(&b, path)));
	/* A duration, with a unit: nothing is a day old yet. */
	ck_assert_int_eq(ermctl(&b.d, out, sizeof(out), prune_old), 0);
	ck_assert_ptr_nonnull(strstr(out, "removed=0\n"));
	ck_assert_int_eq(ermctl(&b.d, out, sizeof(out), prune_bad), 2);
	ck_assert_int_eq(ermctl(&b.d, out, sizeof(out), prune), 0);
	ck_assert_ptr_nonnull(strstr(out, "removed=1\n"));
	ck_assert_int_eq(ermctl(&b.d, out, sizeof(out), oplog), 0);
	ck_assert_ptr_nonnull(strstr(out, "entries.0.action=prune\n"));
	ck_assert_int_eq(ermctl(&b.d, out, sizeof(out), bad), 2);
	assert_serves(&b.d);
}
END_TEST

int
main(void)
{
	Suite	*s = suite_create("backup");
	TCase	*tc = tcase_create("backup");
	SRunner	*sr;
	int	 failed;

	tcase_set_timeout(tc, 120);
	tcase_add_checked_fixture(tc, NULL, stop);
	tcase_add_test(tc, round_trips);
	tcase_add_test(tc, large_file_does_not_stall_others);
	tcase_add_test(tc, sparse_round_trip);
	tcase_add_test(tc, identical_content_is_stored_once);
	tcase_add_test(tc, mode_mtime_owner_restored);
	tcase_add_test(tc, prune_keeps_the_newest);
	tcase_add_test(tc, corrupted_object_is_refused);
	tcase_add_test(tc, dedup_replaces_a_corrupted_object);
	tcase_add_test(tc, events_metrics_and_oplog);
	tcase_add_test(tc, bad_params_and_unknown_ids);
	tcase_add_test(tc, peer_permissions);
	tcase_add_test(tc, leftovers_removed_at_start);
	tcase_add_test(tc, root_without_path_is_a_config_error);
	tcase_add_test(tc, ermctl_commands);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return (failed ? 1 : 0);
}
