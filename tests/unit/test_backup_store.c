/*
 * The backup module driven directly (no socket): copies checked against
 * libcrypto's own SHA-256, holes kept, deduplication and the counters,
 * retention rules on a manual clock (keep_last, older_than_ms, max_bytes),
 * corruption found and moved aside, a file that changes under the copy,
 * the max_pending limit, and callbacks that never run inside the call.
 */

#include <sys/stat.h>

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/evp.h>

#include "backup.h"
#include "clock.h"
#include "config.h"
#include "erm_proto.h"
#include "report.h"
#include "store.h"
#include "worker.h"

static struct event_base	*base;
static struct config		*cfg;
static const struct reporter	*reporter;
static char			 dir[64], state[128], root[128];
static struct peer		 self;

/* backup.c registers its reporter here (m_daemon.c is not linked in). */
void
report_register(const struct reporter *r)
{
	reporter = r;
}

static void
start(const char *extra)
{
	char	 conf[256], *cause;
	FILE	*fp;

	snprintf(dir, sizeof(dir), "/tmp/ermd-backup-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(state, sizeof(state), "%s/state", dir);
	snprintf(root, sizeof(root), "%s/root", dir);
	ck_assert_int_eq(mkdir(state, 0700), 0);
	ck_assert_int_eq(mkdir(root, 0755), 0);
	snprintf(conf, sizeof(conf), "%s/ermd.conf", dir);
	ck_assert_ptr_nonnull(fp = fopen(conf, "w"));
	fprintf(fp, "[root.r]\npath = %s\n%s", root, extra != NULL ? extra :
	    "");
	fclose(fp);

	base = event_base_new();
	clock_init(base, 1);
	backup_register();
	cfg = config_load(conf, NULL, state);
	ck_assert_uint_eq(cfg->nerrors, 0);
	snprintf(conf, sizeof(conf), "%s/ermd.db", state);
	ck_assert_int_eq(store_open(base, conf, DURABILITY_NORMAL, &cause), 0);
	ck_assert_int_eq(worker_init(base, 4), 0);
	backup_start(base, state);
	config_apply(cfg);
	memset(&self, 0, sizeof(self));
	self.uid = geteuid();
	self.gid = getegid();
	self.pid = getpid();
	self.admin = 1;
}

static void
setup(void)
{
	start(NULL);
}

static void
teardown(void)
{
	char	cmd[128];

	backup_stop();
	worker_shutdown();
	store_close();
	clock_shutdown();
	config_free(cfg);
	event_base_free(base);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	ck_assert_int_eq(system(cmd), 0);
}

struct outcome {
	int		 done;
	int		 code;
	json_t		*result;
	json_t		*data;
};

static void
got(void *arg, json_t *result, const struct backup_err *e)
{
	struct outcome	*o = arg;

	o->done++;
	o->code = e != NULL ? e->code : 0;
	o->result = json_incref(result);
	o->data = e != NULL ? json_incref(e->data) : NULL;
}

static void
wait_for(struct outcome *o)
{
	while (!o->done)
		event_base_loop(base, EVLOOP_ONCE);
	ck_assert_int_eq(o->done, 1);
}

static void
clear(struct outcome *o)
{
	json_decref(o->result);
	json_decref(o->data);
	memset(o, 0, sizeof(*o));
}

static const char *
rstr(const struct outcome *o, const char *key)
{
	return (json_string_value(json_object_get(o->result, key)));
}

/* Back up path; the outcome is left in o. */
static void
create(const char *path, struct outcome *o)
{
	memset(o, 0, sizeof(*o));
	ck_assert_ptr_nonnull(backup_create_async(path, strlen(path), NULL,
	    &self, got, o));
	wait_for(o);
}

static void
restore(const char *id, struct outcome *o)
{
	memset(o, 0, sizeof(*o));
	ck_assert_ptr_nonnull(backup_restore_async(id, NULL, 0, &self, got,
	    o));
	wait_for(o);
}

static void
prune(const struct backup_prune *rules, struct outcome *o)
{
	memset(o, 0, sizeof(*o));
	ck_assert_int_eq(backup_prune_async(rules, &self, got, o), 0);
	wait_for(o);
}

static void
path_in(char *out, size_t sz, const char *name)
{
	snprintf(out, sz, "%s/%s", root, name);
}

static void
random_file(const char *path, size_t len, unsigned seed)
{
	unsigned char	*buf = malloc(len + 1);
	size_t		 i;
	int		 fd;

	srandom(seed);
	for (i = 0; i < len; i++)
		buf[i] = (unsigned char)random();
	ck_assert_int_ne(fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644),
	    -1);
	ck_assert_int_eq(write(fd, buf, len), (ssize_t)len);
	close(fd);
	free(buf);
}

/* SHA-256 of a file by libcrypto alone, in hex. */
static void
sha_file(const char *path, char out[65])
{
	unsigned char	 buf[65536], md[32];
	EVP_MD_CTX	*ctx = EVP_MD_CTX_new();
	unsigned	 n, i;
	ssize_t		 r;
	int		 fd;

	ck_assert_int_ne(fd = open(path, O_RDONLY), -1);
	EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
	while ((r = read(fd, buf, sizeof(buf))) > 0)
		EVP_DigestUpdate(ctx, buf, (size_t)r);
	close(fd);
	EVP_DigestFinal_ex(ctx, md, &n);
	EVP_MD_CTX_free(ctx);
	for (i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

static void
object_path(const char *sha, char *out, size_t sz)
{
	snprintf(out, sz, "%s/objects/%.2s/%s", state, sha, sha);
}

/*
 * Each way of moving bytes (O_DIRECT, copy_file_range, read/write; this
 * file system has no FICLONE) on a file large enough to be pipelined.
 */
static const unsigned copy_methods[] = {
	BACKUP_COPY_CLONE | BACKUP_COPY_DIRECT | BACKUP_COPY_CFR,
	BACKUP_COPY_CFR,
	0,
};

START_TEST(large_copy_matches_libcrypto)
{
	struct outcome	 o;
	char		 p[256], want[65], now[65], id[32];

	backup_copy_methods(copy_methods[_i]);
	path_in(p, sizeof(p), "large");
	random_file(p, 20 << 20, (unsigned)_i + 1);	/* > DIRECT_MIN */
	sha_file(p, want);
	create(p, &o);
	ck_assert_int_eq(o.code, 0);
	ck_assert_str_eq(rstr(&o, "sha256"), want);
	snprintf(id, sizeof(id), "%s", rstr(&o, "id"));
	clear(&o);
	object_path(want, p, sizeof(p));
	sha_file(p, now);
	ck_assert_str_eq(now, want);

	path_in(p, sizeof(p), "large");
	random_file(p, 5, 2);
	restore(id, &o);
	ck_assert_int_eq(o.code, 0);
	clear(&o);
	sha_file(p, now);
	ck_assert_str_eq(now, want);
}
END_TEST

START_TEST(holes_are_kept)
{
	struct outcome	 o;
	struct stat	 st;
	char		 p[256], obj[256], want[65], now[65], id[32];
	int		 fd;

	backup_copy_methods(copy_methods[_i]);
	path_in(p, sizeof(p), "sparse");
	ck_assert_int_ne(fd = open(p, O_WRONLY | O_CREAT, 0644), -1);
	ck_assert_int_eq(pwrite(fd, "data", 4, 16 << 20), 4);
	ck_assert_int_eq(ftruncate(fd, 48 << 20), 0);	/* trailing hole */
	close(fd);
	sha_file(p, want);
	create(p, &o);
	ck_assert_int_eq(o.code, 0);
	ck_assert_str_eq(rstr(&o, "sha256"), want);
	snprintf(id, sizeof(id), "%s", rstr(&o, "id"));
	clear(&o);
	object_path(want, obj, sizeof(obj));
	ck_assert_int_eq(stat(obj, &st), 0);
	ck_assert_int_eq(st.st_size, 48 << 20);
	ck_assert_int_lt(st.st_blocks * 512, 1 << 20);
	ck_assert_int_eq(unlink(p), 0);
	restore(id, &o);
	ck_assert_int_eq(o.code, 0);
	clear(&o);
	ck_assert_int_eq(stat(p, &st), 0);
	ck_assert_int_eq(st.st_size, 48 << 20);
	ck_assert_int_lt(st.st_blocks * 512, 1 << 20);
	sha_file(p, now);
	ck_assert_str_eq(now, want);
}
END_TEST

static json_int_t
reported(const char *key)
{
	json_t		*m = json_object();
	json_int_t	 v;

	ck_assert_ptr_nonnull(reporter);
	reporter->metrics(m);
	v = json_integer_value(json_object_get(json_object_get(m, "backups"),
	    key));
	json_decref(m);
	return (v);
}

START_TEST(dedup_and_counters)
{
	struct outcome	o1, o2;
	char		a[256], c[256];

	path_in(a, sizeof(a), "a");
	path_in(c, sizeof(c), "c");
	random_file(a, 3000, 5);
	random_file(c, 3000, 5);
	create(a, &o1);
	create(c, &o2);
	ck_assert_int_eq(o1.code, 0);
	ck_assert_int_eq(o2.code, 0);
	ck_assert(json_is_false(json_object_get(o1.result, "deduplicated")));
	ck_assert(json_is_true(json_object_get(o2.result, "deduplicated")));
	ck_assert_str_eq(rstr(&o1, "sha256"), rstr(&o2, "sha256"));
	ck_assert_int_eq(reported("count"), 2);
	ck_assert_int_eq(reported("bytes"), 3000);
	clear(&o1);
	clear(&o2);
}
END_TEST

/* A callback never runs inside the call that asked for it. */
START_TEST(callbacks_are_never_inline)
{
	struct outcome	o;

	memset(&o, 0, sizeof(o));
	ck_assert_ptr_nonnull(backup_create_async("/nowhere/x", 10, NULL,
	    &self, got, &o));
	ck_assert_int_eq(o.done, 0);
	wait_for(&o);
	ck_assert_int_eq(o.code, ERM_PERMISSION_DENIED);
	clear(&o);
	ck_assert_ptr_nonnull(backup_restore_async("0000", NULL, 0, &self,
	    got, &o));
	ck_assert_int_eq(o.done, 0);
	wait_for(&o);
	ck_assert_int_eq(o.code, ERM_NOT_FOUND);
	clear(&o);
}
END_TEST

static int
count_backups(const char *path)
{
	struct backup_err	 e;
	json_t			*l;
	int			 n;

	l = backup_list(path, NULL, 1000, &self, &e);
	ck_assert_ptr_nonnull(l);
	n = (int)json_array_size(json_object_get(l, "backups"));
	json_decref(l);
	return (n);
}

START_TEST(retention_rules)
{
	struct backup_prune	rules;
	struct outcome		o;
	char			p[256], q[256];
	int			i;

	path_in(p, sizeof(p), "p");
	path_in(q, sizeof(q), "q");
	for (i = 0; i < 4; i++) {
		random_file(p, 1000, (unsigned)(10 + i));
		create(p, &o);
		clear(&o);
		clock_advance(1000);
	}
	random_file(q, 1000, 20);
	create(q, &o);
	clear(&o);
	clock_advance(1000);

	/* keep_last 2 for p only. */
	memset(&rules, 0, sizeof(rules));
	rules.keep_last = 2;
	rules.older_than_ms = -1;
	rules.path = p;
	prune(&rules, &o);
	ck_assert_int_eq(o.code, 0);
	ck_assert_int_eq(json_integer_value(json_object_get(o.result,
	    "removed")), 2);
	ck_assert_int_eq(json_integer_value(json_object_get(o.result,
	    "bytes_freed")), 2000);
	clear(&o);
	ck_assert_int_eq(count_backups(p), 2);
	ck_assert_int_eq(count_backups(q), 1);
	ck_assert_int_eq(reported("bytes"), 3000);

	/* older_than_ms: p's two are 3 s and 2 s old, q's 1 s. */
	rules.keep_last = 0;
	rules.older_than_ms = 1500;
	rules.path = NULL;
	prune(&rules, &o);
	ck_assert_int_eq(json_integer_value(json_object_get(o.result,
	    "removed")), 2);
	clear(&o);
	ck_assert_int_eq(count_backups(p), 0);
	ck_assert_int_eq(count_backups(q), 1);
	ck_assert_int_eq(reported("count"), 1);
	ck_assert_int_eq(reported("bytes"), 1000);
}
END_TEST

/* max_bytes: the oldest go until the stored bytes fit. */
START_TEST(max_bytes)
{
	struct backup_prune	rules = { 1, 0, -1, NULL };
	struct outcome		o;
	char			p[256], name[16];
	int			i;

	teardown();
	start("[backup]\nkeep_last = 0\nmax_age_ms = 0\nmax_bytes = 2500\n");
	for (i = 0; i < 4; i++) {
		snprintf(name, sizeof(name), "f%d", i);
		path_in(p, sizeof(p), name);
		random_file(p, 1000, (unsigned)(30 + i));
		create(p, &o);
		clear(&o);
		clock_advance(10);
	}
	prune(&rules, &o);
	ck_assert_int_eq(o.code, 0);
	ck_assert_int_eq(json_integer_value(json_object_get(o.result,
	    "removed")), 2);
	clear(&o);
	ck_assert_int_eq(reported("bytes"), 2000);
	path_in(p, sizeof(p), "f0");
	ck_assert_int_eq(count_backups(p), 0);
	path_in(p, sizeof(p), "f3");
	ck_assert_int_eq(count_backups(p), 1);
}
END_TEST

static void
flip(const char *path)
{
	unsigned char	c;
	int		fd;

	ck_assert_int_ne(fd = open(path, O_RDWR), -1);
	ck_assert_int_eq(pread(fd, &c, 1, 10), 1);
	c ^= 0x80;
	ck_assert_int_eq(pwrite(fd, &c, 1, 10), 1);
	close(fd);
}

START_TEST(corruption_found_and_moved_aside)
{
	struct outcome	 o;
	char		 p[256], obj[256], moved[256], sha[65], id[32];

	path_in(p, sizeof(p), "c");
	random_file(p, 5000, 40);
	create(p, &o);
	snprintf(sha, sizeof(sha), "%s", rstr(&o, "sha256"));
	snprintf(id, sizeof(id), "%s", rstr(&o, "id"));
	clear(&o);
	object_path(sha, obj, sizeof(obj));
	flip(obj);
	memset(&o, 0, sizeof(o));
	ck_assert_int_eq(backup_verify_async(NULL, &self, got, &o), 0);
	wait_for(&o);
	ck_assert_int_eq(o.code, 0);
	ck_assert_int_eq(json_array_size(json_object_get(o.result,
	    "corrupted")), 1);
	clear(&o);
	snprintf(moved, sizeof(moved), "%s/objects/corrupt/%s", state, sha);
	ck_assert_int_eq(access(moved, F_OK), 0);
	ck_assert_int_eq(access(obj, F_OK), -1);

	/* Missing now: 1008 with actual null, the target untouched. */
	restore(id, &o);
	ck_assert_int_eq(o.code, ERM_CORRUPTED);
	ck_assert(json_is_null(json_object_get(o.data, "actual")));
	ck_assert_str_eq(json_string_value(json_object_get(o.data,
	    "expected")), sha);
	clear(&o);

	/* The same content again makes a good object. */
	create(p, &o);
	ck_assert(json_is_false(json_object_get(o.result, "deduplicated")));
	clear(&o);
	restore(id, &o);
	ck_assert_int_eq(o.code, 0);
	clear(&o);
}
END_TEST

struct scribbler {
	char		 path[256];
	atomic_int	 stop;
};

static void *
scribble(void *arg)
{
	struct scribbler	*s = arg;
	unsigned char		 c = 0;
	int			 fd = open(s->path, O_WRONLY);

	while (!atomic_load(&s->stop)) {
		(void)!pwrite(fd, &c, 1, (off_t)(random() % (20 << 20)));
		c++;
	}
	close(fd);
	return (NULL);
}

/*
 * A file written to all through its backup: either the copy is refused
 * (1003, it kept changing) or the object holds exactly what its name
 * says. A torn copy is never stored under a hash it does not have.
 */
START_TEST(file_changing_under_the_copy)
{
	struct scribbler	 s;
	struct outcome		 o;
	pthread_t		 t;
	char			 obj[256], now[65];
	int			 i, refused = 0;

	path_in(s.path, sizeof(s.path), "busy");
	random_file(s.path, 20 << 20, 50);
	atomic_init(&s.stop, 0);
	ck_assert_int_eq(pthread_create(&t, NULL, scribble, &s), 0);
	for (i = 0; i < 3; i++) {
		create(s.path, &o);
		if (o.code == ERM_CONFLICT)
			refused++;
		else {
			ck_assert_int_eq(o.code, 0);
			object_path(rstr(&o, "sha256"), obj, sizeof(obj));
			sha_file(obj, now);
			ck_assert_str_eq(now, rstr(&o, "sha256"));
		}
		clear(&o);
	}
	atomic_store(&s.stop, 1);
	pthread_join(t, NULL);
	ck_assert_int_gt(refused, 0);
}
END_TEST

START_TEST(max_pending_limit)
{
	struct outcome	o[6];
	char		p[256];
	int		i, limited = 0, ok = 0;

	teardown();
	start("[backup]\nmax_pending = 2\n");
	path_in(p, sizeof(p), "x");
	random_file(p, 4 << 20, 60);
	memset(o, 0, sizeof(o));
	for (i = 0; i < 6; i++)
		ck_assert_ptr_nonnull(backup_create_async(p, strlen(p), NULL,
		    &self, got, &o[i]));
	for (i = 0; i < 6; i++) {
		wait_for(&o[i]);
		if (o[i].code == ERM_LIMIT_EXCEEDED)
			limited++;
		else if (o[i].code == 0)
			ok++;
		clear(&o[i]);
	}
	ck_assert_int_eq(ok, 2);
	ck_assert_int_eq(limited, 4);
}
END_TEST

int
main(void)
{
	Suite	*s = suite_create("backup_store");
	TCase	*tc = tcase_create("backup");
	SRunner	*sr;
	int	 failed;

	tcase_set_timeout(tc, 60);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_loop_test(tc, large_copy_matches_libcrypto, 0, 3);
	tcase_add_loop_test(tc, holes_are_kept, 0, 3);
	tcase_add_test(tc, dedup_and_counters);
	tcase_add_test(tc, callbacks_are_never_inline);
	tcase_add_test(tc, retention_rules);
	tcase_add_test(tc, max_bytes);
	tcase_add_test(tc, corruption_found_and_moved_aside);
	tcase_add_test(tc, file_changing_under_the_copy);
	tcase_add_test(tc, max_pending_limit);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return (failed ? 1 : 0);
}
