/*
 * Fallback storage without a socket: keys, config checks, failover and
 * weighted round robin, passive ejection on the manual clock, active checks
 * of dir backends, puts that fall through, gets, and reloads that keep
 * health.
 */

#include <sys/stat.h>

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/evp.h>

#include "clock.h"
#include "config.h"
#include "erm_proto.h"
#include "events.h"
#include "storage.h"
#include "worker.h"

static char			 dir[64];
static struct event_base	*base;
static struct config		*cfg;
static json_t			*events;
static struct subscriber	 sub;

static void
deliver(void *ctx, const uint8_t *frame, size_t len)
{
	json_t	*j;

	(void)ctx;
	j = json_loadb((const char *)frame + 4, len - 4, 0, NULL);
	ck_assert_ptr_nonnull(j);
	json_array_append(events, json_object_get(j, "params"));
	json_decref(j);
}

static void
setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/ermd-storage-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	base = event_base_new();
	clock_init(base, 1);
	ck_assert_int_eq(worker_init(base, 2), 0);
	storage_register();
	ck_assert_int_eq(storage_start(base), 0);
	events = json_array();
	sub.mask = 1u << EV_STORAGE_HEALTH;
	sub.deliver = deliver;
	events_subscribe(&sub);
}

static void
teardown(void)
{
	char	cmd[128];

	events_unsubscribe(&sub);
	storage_stop();
	worker_shutdown();
	clock_shutdown();
	config_free(cfg);
	cfg = NULL;
	event_base_free(base);
	json_decref(events);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	(void)!system(cmd);
}

/* Write text (with %1$s standing for the temp dir) as the config, load
 * it and apply it. */
static void
configure(const char *fmt)
{
	char		 path[128], text[4096];
	FILE		*fp;
	size_t		 i;

	snprintf(path, sizeof(path), "%s/ermd.conf", dir);
	snprintf(text, sizeof(text), fmt, dir);
	ck_assert_ptr_nonnull(fp = fopen(path, "w"));
	fputs(text, fp);
	fclose(fp);
	config_free(cfg);
	cfg = config_load(path, NULL, NULL);
	for (i = 0; i < cfg->nerrors; i++)
		fprintf(stderr, "%s\n", cfg->errors[i]);
	ck_assert_uint_eq(cfg->nerrors, 0);
	config_apply(cfg);
}

static void
mkdirs(const char *const *names)
{
	char	p[128];

	for (; *names != NULL; names++) {
		snprintf(p, sizeof(p), "%s/%s", dir, *names);
		ck_assert_int_eq(mkdir(p, 0755), 0);
	}
}

static json_t *
backend(const char *name)
{
	static json_t	*last;
	json_t		*s, *b;
	size_t		 i;

	json_decref(last);
	last = s = storage_status();
	json_array_foreach(json_object_get(s, "backends"), i, b)
		if (strcmp(json_string_value(json_object_get(b, "name")),
		    name) == 0)
			return (b);
	ck_abort_msg("no backend %s", name);
	return (NULL);
}

static int
healthy(const char *name)
{
	return (json_is_true(json_object_get(backend(name), "healthy")));
}

/* ---- async helpers ---------------------------------------------------- */

struct waited {
	int			done;
	struct storage_outcome	o;
};

static void
waited(struct storage_outcome *o, void *arg)
{
	struct waited	*w = arg;

	w->o = *o;
	w->done = 1;
}

static void
wait_for(struct waited *w)
{
	while (!w->done)
		ck_assert_int_ne(event_base_loop(base, EVLOOP_ONCE), -1);
}

static void
check_now(const char *name)
{
	struct waited		w = { 0 };
	struct storage_outcome	now;

	ck_assert_int_eq(storage_check(name, waited, &w, &now), 0);
	/* Never answered from inside storage_check. */
	ck_assert_int_eq(w.done, 0);
	wait_for(&w);
	ck_assert_int_eq(w.o.code, 0);
	json_decref(w.o.result);
}

static int
entries(const char *p)
{
	struct dirent	*de;
	DIR		*d;
	int		 n = 0;

	ck_assert_ptr_nonnull(d = opendir(p));
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.' || (strcmp(de->d_name, ".") != 0 &&
		    strcmp(de->d_name, "..") != 0))
			n++;
	closedir(d);
	return (n);
}

static const char *
write_file(const char *name, size_t size, int fill)
{
	static char	p[128];
	char		*buf = malloc(size + 1);
	int		 fd;

	memset(buf, fill, size);
	snprintf(p, sizeof(p), "%s/%s", dir, name);
	fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	ck_assert_int_eq(write(fd, buf, size), (ssize_t)size);
	close(fd);
	free(buf);
	return (p);
}

static void
sha256_of(size_t size, int fill, char out[65])
{
	unsigned char	 d[32];
	char		*buf = malloc(size + 1);
	int		 i;

	memset(buf, fill, size);
	EVP_Digest(buf, size, d, NULL, EVP_sha256(), NULL);
	for (i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", d[i]);
	free(buf);
}

static struct waited
put(const char *key, const char *src)
{
	struct waited		w = { 0 };
	struct storage_outcome	now;
	struct stat		sb;
	int			fd;

	ck_assert_int_ne(fd = open(src, O_RDONLY), -1);
	fstat(fd, &sb);
	if (storage_put(key, fd, (uint64_t)sb.st_size, waited, &w,
	    &now) == -1) {
		w.o = now;
		return (w);
	}
	wait_for(&w);
	return (w);
}

/* ---- tests ------------------------------------------------------------ */

START_TEST(keys)
{
	static const char *const good[] = { "a", "A-z_0.9", "x..y",
	    "report-2024.tar.gz", NULL };
	static const char *const bad[] = { "", ".", "..", ".hidden", "a/b",
	    "../x", "a b", "é", "a\\b", NULL };
	char	why[96], longkey[300];
	int	i;

	for (i = 0; good[i] != NULL; i++)
		ck_assert_msg(storage_key_valid(good[i], why, sizeof(why)) == 0,
		    "%s: %s", good[i], why);
	for (i = 0; bad[i] != NULL; i++)
		ck_assert_msg(storage_key_valid(bad[i], why, sizeof(why)) == -1,
		    "%s accepted", bad[i]);
	memset(longkey, 'k', sizeof(longkey));
	longkey[255] = '\0';
	ck_assert_int_eq(storage_key_valid(longkey, why, sizeof(why)), 0);
	longkey[255] = 'k';
	longkey[256] = '\0';
	ck_assert_int_eq(storage_key_valid(longkey, why, sizeof(why)), -1);
}
END_TEST

START_TEST(config_errors)
{
	char		 path[128], want[2048];
	FILE		*fp;
	struct config	*c;
	size_t		 i;
	char		 got[2048] = "";

	snprintf(path, sizeof(path), "%s/bad.conf", dir);
	fp = fopen(path, "w");
	fputs("[storage]\n"				/* 1 */
	    "policy = random\n"				/* 2 */
	    "check_interval_ms = 5\n"			/* 3 */
	    "healthy_treshold = 2\n"			/* 4 */
	    "[backend]\n"				/* 5 */
	    "type = dir\n"				/* 6 */
	    "[backend.a b]\n"				/* 7 */
	    "type = dir\n"				/* 8 */
	    "[backend.web]\n"				/* 9 */
	    "url = ftp://x\n"				/* 10 */
	    "tls_verify = maybe\n"			/* 11 */
	    "weight = 0\n"				/* 12 */
	    "path = relative\n"				/* 13 */
	    "eject_base_ms = 1\n", fp);			/* 14 */
	fclose(fp);
	c = config_load(path, NULL, NULL);
	for (i = 0; i < c->nerrors; i++) {
		strcat(got, c->errors[i]);
		strcat(got, "\n");
	}
	snprintf(want, sizeof(want),
	    "%1$s:2: policy: 'random' is not one of failover, round_robin\n"
	    "%1$s:3: check_interval_ms: 5 is out of range (100 to 86400000)\n"
	    "%1$s:4: unknown key 'healthy_treshold' in [storage]; did you "
	    "mean 'healthy_threshold'?\n"
	    "%1$s:6: backends are named: [backend.NAME]\n"
	    "%1$s:8: [backend.a b]: a backend name is 1-64 bytes of A-Z a-z "
	    "0-9 . _ -\n"
	    "%1$s:10: url: must be an http:// or https:// URL without spaces "
	    "(at most 1748 bytes)\n"
	    "%1$s:11: tls_verify: 'maybe' is not true or false\n"
	    "%1$s:12: weight: 0 is out of range (1 to 10000)\n"
	    "%1$s:13: path: must be an absolute path (at most 3796 bytes)\n"
	    "%1$s:14: unknown key 'eject_base_ms' in [backend.web]\n", path);
	ck_assert_str_eq(got, want);
	config_free(c);
}
END_TEST

START_TEST(failover_order_and_exclude)
{
	static const char *const d[] = { "a", "b", "c", NULL };
	struct storage_choice	 ch;
	const char		*ex[2];
	json_t			*s;

	mkdirs(d);
	/* Priority first, then the order of the sections. */
	configure("[backend.a]\npath = %1$s/a\npriority = 2\n"
	    "[backend.b]\npath = %1$s/b\npriority = 1\n"
	    "[backend.c]\ntype = dir\npath = %1$s/c\npriority = 1\n");
	ck_assert_int_eq(storage_select_next(NULL, 0, &ch), 0);
	ck_assert_str_eq(ch.name, "b");
	ck_assert_int_eq(ch.type, STORAGE_DIR);
	ex[0] = "b";
	ck_assert_int_eq(storage_select_next(ex, 1, &ch), 0);
	ck_assert_str_eq(ch.name, "c");
	ex[1] = "c";
	ck_assert_int_eq(storage_select_next(ex, 2, &ch), 0);
	ck_assert_str_eq(ch.name, "a");
	s = storage_status();
	ck_assert_str_eq(json_string_value(json_object_get(s, "policy")),
	    "failover");
	ck_assert_str_eq(json_string_value(json_object_get(s, "current")),
	    "b");
	json_decref(s);
	/* An ejected backend is skipped. */
	ck_assert_int_eq(storage_observe("b", 0, 1, "x", -1, &(int){ 0 }), 0);
	configure("[storage]\neject_consecutive_failures = 1\n"
	    "[backend.a]\npath = %1$s/a\npriority = 2\n"
	    "[backend.b]\npath = %1$s/b\npriority = 1\n"
	    "[backend.c]\ntype = dir\npath = %1$s/c\npriority = 1\n");
	ck_assert_int_eq(storage_observe("b", 0, 1, "boom", -1, &(int){ 0 }),
	    0);
	ck_assert_int_eq(storage_select_next(NULL, 0, &ch), 0);
	ck_assert_str_eq(ch.name, "c");
	ex[0] = "c";
	ck_assert_int_eq(storage_select_next(ex, 1, &ch), 0);
	ck_assert_str_eq(ch.name, "a");
	ex[1] = "a";
	ck_assert_int_eq(storage_select_next(ex, 2, &ch), -1);
}
END_TEST

START_TEST(weighted_round_robin)
{
	static const char *const d[] = { "a", "b", "c", NULL };
	struct storage_choice	 ch;
	const char		*ex[1] = { "c" };
	int			 n[3] = { 0, 0, 0 }, i, run = 0, maxrun = 0;
	char			 last = 0;

	mkdirs(d);
	configure("[storage]\npolicy = round_robin\n"
	    "[backend.a]\npath = %1$s/a\nweight = 1\n"
	    "[backend.b]\npath = %1$s/b\nweight = 2\n"
	    "[backend.c]\npath = %1$s/c\nweight = 7\n");
	for (i = 0; i < 1000; i++) {
		ck_assert_int_eq(storage_select_next(NULL, 0, &ch), 0);
		n[ch.name[0] - 'a']++;
		run = ch.name[0] == last ? run + 1 : 1;
		last = ch.name[0];
		if (run > maxrun)
			maxrun = run;
	}
	/* Smooth WRR is exact over every whole cycle of 10. */
	ck_assert_int_eq(n[0], 100);
	ck_assert_int_eq(n[1], 200);
	ck_assert_int_eq(n[2], 700);
	/* ... and spread: c never gets more than 3 in a row. */
	ck_assert_int_le(maxrun, 3);
	n[0] = n[1] = n[2] = 0;
	for (i = 0; i < 300; i++) {
		ck_assert_int_eq(storage_select_next(ex, 1, &ch), 0);
		n[ch.name[0] - 'a']++;
	}
	ck_assert_int_eq(n[0], 100);
	ck_assert_int_eq(n[1], 200);
	ck_assert_int_eq(n[2], 0);
}
END_TEST

START_TEST(ejection_grows_and_is_capped)
{
	static const char *const d[] = { "a", NULL };
	json_t		*b, *ev;
	uint64_t	 t0;
	int		 i, k, h;
	const int64_t	 want[] = { 1000, 2000, 3000, 3500, 3500 };

	mkdirs(d);
	configure("[storage]\neject_consecutive_failures = 3\n"
	    "eject_base_ms = 1000\neject_max_ms = 3500\n"
	    "check_interval_ms = 86400000\n"
	    "[backend.a]\npath = %1$s/a\n");
	for (k = 0; k < 5; k++) {
		t0 = clock_now_ms();
		/* A success in between starts the count again. */
		storage_observe("a", 0, 1, "e1", -1, &h);
		storage_observe("a", 0, 1, "e2", -1, &h);
		storage_observe("a", 1, 1, NULL, 5, &h);
		storage_observe("a", 0, 1, "e3", -1, &h);
		storage_observe("a", 0, 1, "e4", -1, &h);
		ck_assert_int_eq(h, 1);
		/* Not counted: a missing object. */
		storage_observe("a", 0, 0, "ENOENT", -1, &h);
		ck_assert_int_eq(h, 1);
		storage_observe("a", 0, 1, "e5", -1, &h);
		ck_assert_int_eq(h, 0);
		b = backend("a");
		ck_assert_int_eq(json_integer_value(json_object_get(b,
		    "ejected_until")), t0 + want[k]);
		ck_assert_int_eq(json_integer_value(json_object_get(b,
		    "times_ejected")), k + 1);
		ck_assert_str_eq(json_string_value(json_object_get(b,
		    "last_error")), "e5");
		/* Failures while ejected do not extend it. */
		storage_observe("a", 0, 1, "e6", -1, &h);
		clock_advance((uint64_t)want[k] - 1);
		ck_assert_int_eq(healthy("a"), 0);
		clock_advance(1);
		ck_assert_int_eq(healthy("a"), 1);
	}
	ck_assert_uint_eq(json_array_size(events), 10);
	json_array_foreach(events, i, ev) {
		ck_assert_str_eq(json_string_value(json_object_get(ev,
		    "backend")), "a");
		ck_assert_int_eq(json_is_true(json_object_get(ev, "healthy")),
		    i % 2);
		ck_assert_str_eq(json_string_value(json_object_get(ev,
		    "reason")), i % 2 ? "ejection_ended" : "ejected");
	}
	/* A backend left alone for eject_max_ms starts over at the base. */
	clock_advance(3500);
	t0 = clock_now_ms();
	for (i = 0; i < 3; i++)
		storage_observe("a", 0, 1, "x", -1, &h);
	ck_assert_int_eq(json_integer_value(json_object_get(backend("a"),
	    "ejected_until")), t0 + 1000);
	ck_assert_int_eq(storage_observe("nope", 0, 1, "x", -1, &h), -1);
}
END_TEST

START_TEST(active_checks_thresholds)
{
	static const char *const d[] = { "a", "b", NULL };
	char		 pa[128];
	json_t		*b, *ev;
	int		 i, h;

	mkdirs(d);
	configure("[storage]\nunhealthy_threshold = 2\nhealthy_threshold = 3\n"
	    "eject_consecutive_failures = 1\n"
	    "[backend.a]\npath = %1$s/a\n[backend.b]\npath = %1$s/b\n"
	    "[backend.a2]\npath = %1$s/a\npriority = 9\n");
	check_now(NULL);
	check_now(NULL);
	b = backend("a");
	ck_assert_int_eq(json_is_true(json_object_get(b, "healthy")), 1);
	ck_assert_ptr_nonnull(json_object_get(b, "last_check_at"));
	ck_assert_ptr_nonnull(json_object_get(b, "latency_ms"));
	/* The probes are gone, and two backends on one directory do not
	 * trip over each other's probe. */
	snprintf(pa, sizeof(pa), "%s/a", dir);
	ck_assert_int_eq(entries(pa), 0);
	ck_assert_int_eq(healthy("a2"), 1);

	/* The directory goes away: two failed checks mark it unhealthy. */
	snprintf(pa, sizeof(pa), "%s/a", dir);
	ck_assert_int_eq(rmdir(pa), 0);
	check_now("a");
	ck_assert_int_eq(healthy("a"), 1);
	check_now("a");
	ck_assert_int_eq(healthy("a"), 0);
	ck_assert_ptr_nonnull(strstr(json_string_value(json_object_get(
	    backend("a"), "last_error")), "No such file or directory"));
	ck_assert_int_eq(healthy("b"), 1);
	/* Back: three passing checks make it healthy again. */
	ck_assert_int_eq(mkdir(pa, 0755), 0);
	check_now("a");
	check_now("a");
	ck_assert_int_eq(healthy("a"), 0);
	check_now("a");
	ck_assert_int_eq(healthy("a"), 1);

	/* A passing check un-ejects at once. */
	storage_observe("b", 0, 1, "boom", -1, &h);
	ck_assert_int_eq(h, 0);
	check_now("b");
	ck_assert_int_eq(healthy("b"), 1);
	ck_assert_ptr_null(json_object_get(backend("b"), "ejected_until"));

	ck_assert_uint_eq(json_array_size(events), 4);
	{
		static const char *const reasons[] = { "checks_failed",
		    "checks_passed", "ejected", "check_passed" };

		json_array_foreach(events, i, ev)
			ck_assert_str_eq(json_string_value(json_object_get(ev,
			    "reason")), reasons[i]);
	}
	ev = json_array_get(events, 0);
	ck_assert_ptr_nonnull(strstr(json_string_value(json_object_get(ev,
	    "error")), "check: open"));
	/* Unknown backend. */
	{
		struct storage_outcome	now;

		ck_assert_int_eq(storage_check("zz", waited, NULL, &now), -1);
		ck_assert_int_eq(now.code, ERM_NOT_FOUND);
		json_decref(now.data);
	}
}
END_TEST

START_TEST(put_falls_through_and_get_finds)
{
	static const char *const d[] = { "b", "out", NULL };
	struct storage_outcome	 now;
	struct storage_dest	 dest;
	struct waited		 w;
	char			 sha[65], p[160];
	const char		*src;
	json_t			*t;
	struct stat		 sb;

	mkdirs(d);
	/* a's directory does not exist: the put falls back to b. */
	configure("[backend.a]\npath = %1$s/a\n[backend.b]\npath = %1$s/b\n"
	    "priority = 1\n");
	src = write_file("src", 300000, 'q');
	sha256_of(300000, 'q', sha);
	w = put("obj-1", src);
	ck_assert_int_eq(w.o.code, 0);
	ck_assert_str_eq(json_string_value(json_object_get(w.o.result,
	    "backend")), "b");
	ck_assert_str_eq(json_string_value(json_object_get(w.o.result,
	    "sha256")), sha);
	ck_assert_int_eq(json_integer_value(json_object_get(w.o.result,
	    "size")), 300000);
	ck_assert(json_is_true(json_object_get(w.o.result, "fallback_used")));
	t = json_object_get(w.o.result, "tried");
	ck_assert_uint_eq(json_array_size(t), 2);
	ck_assert_str_eq(json_string_value(json_object_get(json_array_get(t,
	    0), "backend")), "a");
	ck_assert(json_is_false(json_object_get(json_array_get(t, 0), "ok")));
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(
	    json_array_get(t, 0), "error"), "errno")), "ENOENT");
	ck_assert(json_is_true(json_object_get(json_array_get(t, 1), "ok")));
	json_decref(w.o.result);
	snprintf(p, sizeof(p), "%s/b/obj-1", dir);
	ck_assert_int_eq(stat(p, &sb), 0);
	ck_assert_int_eq(sb.st_size, 300000);
	/* The failure counted against a. */
	ck_assert_int_eq(json_integer_value(json_object_get(backend("a"),
	    "consecutive_failures")), 1);

	/* get: a has nothing (it fails), b has it. */
	memset(&dest, 0, sizeof(dest));
	snprintf(p, sizeof(p), "%s/out", dir);
	dest.dirfd = open(p, O_RDONLY | O_DIRECTORY);
	snprintf(dest.name, sizeof(dest.name), "copy");
	snprintf(dest.path, sizeof(dest.path), "%s/out/copy", dir);
	dest.mode = 0640;
	memset(&w, 0, sizeof(w));
	ck_assert_int_eq(storage_get("obj-1", &dest, waited, &w, &now), 0);
	wait_for(&w);
	ck_assert_int_eq(w.o.code, 0);
	ck_assert_str_eq(json_string_value(json_object_get(w.o.result,
	    "backend")), "b");
	ck_assert_str_eq(json_string_value(json_object_get(w.o.result,
	    "sha256")), sha);
	json_decref(w.o.result);
	snprintf(p, sizeof(p), "%s/out/copy", dir);
	ck_assert_int_eq(stat(p, &sb), 0);
	ck_assert_int_eq(sb.st_size, 300000);
	ck_assert_int_eq(sb.st_mode & 0777, 0640);

	/* A large object goes through the two-thread copy. */
	src = write_file("large", (5 << 20) + 7, 'L');
	sha256_of((5 << 20) + 7, 'L', sha);
	w = put("large", src);
	ck_assert_int_eq(w.o.code, 0);
	ck_assert_str_eq(json_string_value(json_object_get(w.o.result,
	    "sha256")), sha);
	json_decref(w.o.result);
	snprintf(p, sizeof(p), "%s/out", dir);
	dest.dirfd = open(p, O_RDONLY | O_DIRECTORY);
	memset(&w, 0, sizeof(w));
	ck_assert_int_eq(storage_get("large", &dest, waited, &w, &now), 0);
	wait_for(&w);
	ck_assert_int_eq(w.o.code, 0);
	ck_assert_str_eq(json_string_value(json_object_get(w.o.result,
	    "sha256")), sha);
	ck_assert_int_eq(json_integer_value(json_object_get(w.o.result,
	    "size")), (5 << 20) + 7);
	json_decref(w.o.result);
	src = write_file("src", 300000, 'q');

	/* A key nobody has, with every backend answering: not found. */
	snprintf(p, sizeof(p), "%s/a", dir);
	mkdir(p, 0755);
	snprintf(p, sizeof(p), "%s/out", dir);
	dest.dirfd = open(p, O_RDONLY | O_DIRECTORY);
	memset(&w, 0, sizeof(w));
	ck_assert_int_eq(storage_get("nope", &dest, waited, &w, &now), 0);
	wait_for(&w);
	ck_assert_int_eq(w.o.code, ERM_NOT_FOUND);
	json_decref(w.o.data);

	/* Nothing healthy: 1007 at once. */
	configure("[storage]\neject_consecutive_failures = 1\n"
	    "[backend.a]\npath = %1$s/a\n");
	storage_observe("a", 0, 1, "x", -1, &(int){ 0 });
	w = put("obj-2", src);
	ck_assert_int_eq(w.o.code, ERM_UNAVAILABLE);
	json_decref(w.o.data);
}
END_TEST

START_TEST(http_location_hides_userinfo)
{
	struct storage_choice	ch;
	json_t			*b;

	configure("[backend.web]\nurl = https://user:secret@127.0.0.1:1/x/\n"
	    "[backend.plain]\nurl = http://127.0.0.1:1/a@b\npriority = 1\n");
	b = backend("web");
	ck_assert_str_eq(json_string_value(json_object_get(b, "location")),
	    "https://127.0.0.1:1/x");
	ck_assert_str_eq(json_string_value(json_object_get(b, "type")),
	    "http");
	ck_assert_str_eq(json_string_value(json_object_get(backend("plain"),
	    "location")), "http://127.0.0.1:1/a@b");
	ck_assert_int_eq(storage_select_next(NULL, 0, &ch), 0);
	ck_assert_str_eq(ch.location, "https://127.0.0.1:1/x");
	ck_assert_int_eq(ch.type, STORAGE_HTTP);
}
END_TEST

START_TEST(reload_keeps_health)
{
	static const char *const d[] = { "a", "b", "c", NULL };
	int	h;

	mkdirs(d);
	configure("[storage]\neject_consecutive_failures = 1\n"
	    "[backend.a]\npath = %1$s/a\n[backend.b]\npath = %1$s/b\n");
	storage_observe("a", 0, 1, "x", -1, &h);
	storage_observe("b", 0, 1, "x", -1, &h);
	ck_assert_int_eq(healthy("a"), 0);
	/* a stays where it was; b moves; c is new. */
	configure("[storage]\neject_consecutive_failures = 1\n"
	    "[backend.a]\npath = %1$s/a\n[backend.b]\npath = %1$s/c\n"
	    "[backend.c]\npath = %1$s/c\n");
	ck_assert_int_eq(healthy("a"), 0);
	ck_assert_int_eq(healthy("b"), 1);
	ck_assert_int_eq(healthy("c"), 1);
	ck_assert_int_eq(storage_backend_exists("c"), 1);
	configure("[backend.c]\npath = %1$s/c\n");
	ck_assert_int_eq(storage_backend_exists("a"), 0);
	ck_assert_int_eq(storage_observe("a", 1, 1, NULL, -1, &h), -1);
}
END_TEST

int
main(void)
{
	Suite	*s = suite_create("storage");
	TCase	*tc = tcase_create("storage");
	SRunner	*sr;
	int	 failed;

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, keys);
	tcase_add_test(tc, config_errors);
	tcase_add_test(tc, failover_order_and_exclude);
	tcase_add_test(tc, weighted_round_robin);
	tcase_add_test(tc, ejection_grows_and_is_capped);
	tcase_add_test(tc, active_checks_thresholds);
	tcase_add_test(tc, put_falls_through_and_get_finds);
	tcase_add_test(tc, http_location_hides_userinfo);
	tcase_add_test(tc, reload_keeps_health);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return (failed ? 1 : 0);
}
