/*
 * Helpers shared by the backup regress suites: a daemon with a root in its
 * temp dir, JSON calls, files with known content and their SHA-256.
 */
#ifndef TEST_BACKUP_H
#define TEST_BACKUP_H

#include <sys/stat.h>
#include <sys/wait.h>

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

/* The daemon's temp dir holds root/ (the root "data") and outside/. */
struct bk {
	struct daemon	d;
	char		root[160];
	char		outside[160];
	char		objects[160];
};

/* Make the temp dir, root/ and outside/. */
static inline void
bk_prepare(struct bk *b)
{
	daemon_prepare(&b->d);
	snprintf(b->root, sizeof(b->root), "%s/root", b->d.dir);
	snprintf(b->outside, sizeof(b->outside), "%s/outside", b->d.dir);
	snprintf(b->objects, sizeof(b->objects), "%s/objects", b->d.state);
	ck_assert_int_eq(mkdir(b->root, 0755), 0);
	ck_assert_int_eq(mkdir(b->outside, 0755), 0);
}

/* Start ermd with [root.data], extra config text (or NULL) and args. */
static inline void
bk_launch(struct bk *b, const char *extra, const char *const *args)
{
	char	conf[2048];

	snprintf(conf, sizeof(conf), "[root.data]\npath = %s\n%s", b->root,
	    extra != NULL ? extra : "");
	daemon_start_env(&b->d, conf, args, NULL, -1);
}

static inline void
bk_start(struct bk *b, const char *extra, const char *const *args)
{
	bk_prepare(b);
	bk_launch(b, extra, args);
}

/* Call method with params (stolen; NULL for {}); the reply, new ref. */
static inline json_t *
bk_rpc(const struct bk *b, const char *method, json_t *params)
{
	static int	 id;
	json_t		*req, *r;
	char		*s;
	int		 fd;

	req = json_pack("{s:i, s:s, s:o}", "id", ++id, "method", method,
	    "params", params != NULL ? params : json_object());
	ck_assert_ptr_nonnull(req);
	s = json_dumps(req, JSON_COMPACT);
	json_decref(req);
	fd = raw_connect(b->d.sock);
	ck_assert_int_ne(fd, -1);
	r = raw_call(fd, s);
	close(fd);
	free(s);
	ck_assert_msg(r != NULL, "%s: no reply", method);
	return (r);
}

static inline json_t *
bk_result(json_t *reply)
{
	return (json_object_get(reply, "result"));
}

static inline const char *
bk_str(json_t *reply, const char *key)
{
	return (json_string_value(json_object_get(bk_result(reply), key)));
}

static inline json_int_t
bk_int(json_t *reply, const char *key)
{
	return (json_integer_value(json_object_get(bk_result(reply), key)));
}

static inline json_t *
bk_edata(json_t *reply)
{
	return (json_object_get(json_object_get(reply, "error"), "data"));
}

/* Expect success; the reply for more checks (the caller releases it). */
static inline json_t *
bk_ok(json_t *reply)
{
	char	*s;

	if (reply_code(reply) != 0) {
		s = json_dumps(reply, JSON_COMPACT);
		ck_abort_msg("unexpected error: %s", s);
	}
	return (reply);
}

static inline json_t *
bk_create(const struct bk *b, const char *path)
{
	return (bk_rpc(b, "backup.create", json_pack("{s:s}", "path", path)));
}

static inline void
bk_write(const char *path, const void *buf, size_t len)
{
	int	fd;

	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	ck_assert_msg(fd != -1, "%s: %s", path, strerror(errno));
	ck_assert_int_eq(write(fd, buf, len), (ssize_t)len);
	close(fd);
}

/* A file of len pseudo-random bytes (seeded by seed). */
static inline void
bk_random_file(const char *path, size_t len, unsigned seed)
{
	char	*buf = malloc(len + 1);
	size_t	 i;

	ck_assert_ptr_nonnull(buf);
	srandom(seed);
	for (i = 0; i < len; i++)
		buf[i] = (char)random();
	bk_write(path, buf, len);
	free(buf);
}

/* The SHA-256 of a file, by sha256sum(1): not the daemon's own code. */
static inline void
bk_sha256(const char *path, char out[65])
{
	const char	*argv[] = { "/usr/bin/sha256sum", path, NULL };
	char		 buf[512];

	ck_assert_int_eq(run_prog(buf, sizeof(buf), argv), 0);
	ck_assert_msg(strlen(buf) > 64, "sha256sum %s: %s", path, buf);
	memcpy(out, buf, 64);
	out[64] = '\0';
}

static inline int
bk_exists(const char *path)
{
	struct stat	st;

	return (lstat(path, &st) == 0);
}

/* The object file of a sha256 in the store. */
static inline void
bk_object(const struct bk *b, const char *sha, char *out, size_t outsz)
{
	snprintf(out, outsz, "%s/%.2s/%s", b->objects, sha, sha);
}

/* Regular files beneath dir, counted by find(1) with extra tests. */
static inline int
bk_count_find(const char *dir, const char *tests)
{
	char	cmd[512], out[64];
	FILE	*fp;
	int	 n = -1;

	snprintf(cmd, sizeof(cmd), "find %s -type f %s | wc -l", dir, tests);
	ck_assert_ptr_nonnull(fp = popen(cmd, "r"));
	if (fgets(out, sizeof(out), fp) != NULL)
		n = atoi(out);
	pclose(fp);
	return (n);
}

static inline int
bk_count_files(const char *dir)
{
	return (bk_count_find(dir, ""));
}

/* Objects in the store (temp, trash and quarantine not counted). */
static inline int
bk_count_objects(const struct bk *b)
{
	return (bk_count_find(b->objects, "-path '*/[0-9a-f][0-9a-f]/*'"));
}

#endif
