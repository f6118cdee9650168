/*
 * Path confinement (roots.c) without a daemon: the [root.NAME] and
 * [backup] config checks, matching a path to the longest root and its
 * allow lists, the walk with openat2 and with the O_NOFOLLOW fallback over
 * the same hostile tree, the peer's permission checks, and a directory
 * moved during a restore.
 */

#include <sys/stat.h>

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backup.h"
#include "config.h"
#include "erm_proto.h"
#include "report.h"
#include "roots.h"

static char		 dir[64];
static struct config	*cfg;

/* backup.c registers a reporter; m_daemon.c is not linked in. */
void
report_register(const struct reporter *r)
{
	(void)r;
}

static const char *
write_conf(const char *text)
{
	static char	path[128];
	FILE		*fp;

	snprintf(path, sizeof(path), "%s/ermd.conf", dir);
	ck_assert_ptr_nonnull(fp = fopen(path, "w"));
	fputs(text, fp);
	fclose(fp);
	return (path);
}

static void
mk(const char *rel, mode_t mode)
{
	char	p[256];

	snprintf(p, sizeof(p), "%s/%s", dir, rel);
	if (S_ISDIR(mode))
		ck_assert_int_eq(mkdir(p, mode & 07777), 0);
	else {
		int fd = open(p, O_WRONLY | O_CREAT | O_EXCL, mode & 07777);

		ck_assert_int_ne(fd, -1);
		ck_assert_int_eq(write(fd, "content\n", 8), 8);
		close(fd);
		ck_assert_int_eq(chmod(p, mode & 07777), 0);
	}
}

static void
ln(const char *to, const char *rel)
{
	char	p[256];

	snprintf(p, sizeof(p), "%s/%s", dir, rel);
	ck_assert_int_eq(symlink(to, p), 0);
}

/*
 * dir/a (root "a"), dir/a/b (root "b", nested), dir/c (root "c", only
 * uid 1000 and group 4242), dir/d reached through the symlink dir/dl
 * (root "d"), and outside/ beside them.
 */
static void
setup(void)
{
	char	text[1024], p[256];

	snprintf(dir, sizeof(dir), "/tmp/ermd-roots-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	ck_assert_int_eq(chmod(dir, 0755), 0);
	mk("a", S_IFDIR | 0755);
	mk("a/b", S_IFDIR | 0755);
	mk("c", S_IFDIR | 0755);
	mk("d", S_IFDIR | 0755);
	mk("outside", S_IFDIR | 0755);
	mk("outside/secret", 0644);
	ln("d", "dl");
	mk("a/file", 0644);
	mk("a/private", 0600);
	mk("a/sub", S_IFDIR | 0755);
	mk("a/sub/file", 0644);
	mk("a/closed", S_IFDIR | 0700);
	mk("a/closed/file", 0644);
	mk("a/ro", S_IFDIR | 0555);
	snprintf(p, sizeof(p), "%s/outside/secret", dir);
	ln(p, "a/abs");
	ln("../outside/secret", "a/rel");
	ln("../outside", "a/out");
	ln("sub", "a/in");
	ln("/proc/self/root/etc/passwd", "a/proc");
	snprintf(p, sizeof(p), "%s/a/fifo", dir);
	ck_assert_int_eq(mkfifo(p, 0644), 0);
	snprintf(text, sizeof(text), "%s/a/hard", dir);
	snprintf(p, sizeof(p), "%s/outside/secret", dir);
	ck_assert_int_eq(link(p, text), 0);
	ck_assert_int_eq(chmod(text, 0644), 0);

	backup_register();
	snprintf(text, sizeof(text),
	    "[root.a]\npath = %1$s/a\n"
	    "[root.b]\npath = %1$s/a/b\nallow_hardlinks = yes\n"
	    "[root.c]\npath = %1$s/c\nallow_users = 1000\n"
	    "allow_groups = 4242\n"
	    "[root.d]\npath = %1$s/dl\n", dir);
	cfg = config_load(write_conf(text), NULL, NULL);
	ck_assert_uint_eq(cfg->nerrors, 0);
	config_apply(cfg);
	ck_assert_uint_eq(roots_count(), 4);
	roots_use_openat2(1);
}

static void
teardown(void)
{
	char	cmd[128];

	roots_clear();
	config_free(cfg);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	ck_assert_int_eq(system(cmd), 0);
}

static struct peer
peer(uid_t uid, gid_t gid, gid_t extra)
{
	struct peer	p;

	memset(&p, 0, sizeof(p));
	p.uid = uid;
	p.gid = gid;
	p.pid = 1;
	if (extra != 0) {
		p.groups[0] = extra;
		p.ngroups = 1;
	}
	return (p);
}

static int
find(const char *rel, const struct peer *p, struct root_path *rp)
{
	struct root_err	e;
	char		path[PATH_MAX + 100];
	int		rc;

	snprintf(path, sizeof(path), "%s%s", rel[0] == '/' ? dir : "", rel);
	rc = roots_find(path, strlen(path), p, rp, &e);
	if (rc == -1)
		ck_assert_int_eq(e.code, ERM_PERMISSION_DENIED);
	return (rc);
}

START_TEST(config_errors)
{
	static const struct {
		const char	*text;
		const char	*want;
	} t[] = {
		{ "[root]\npath = /x\n", "[root] needs a name" },
		{ "[root.a]\npath = x\n", "is not an absolute path" },
		{ "[root.a]\nallow_users = nosuchuser-ermd\n",
		    "no user named 'nosuchuser-ermd'" },
		{ "[root.a]\nallow_groups = nosuchgroup-ermd\n",
		    "no group named 'nosuchgroup-ermd'" },
		{ "[root.a]\nallow_hardlinks = maybe\n", "not yes or no" },
		{ "[root.a]\npaht = /x\n", "did you mean 'path'?" },
		{ "[root.a]\nallow_users = 0\n", "[root.a]: needs path = DIR" },
		{ "[backup]\nkeep_last = -1\n", "out of range" },
		{ "[backup]\nmax_age_ms = soon\n", "is not an integer" },
		{ "[backup]\nkeep_lats = 3\n", "did you mean 'keep_last'?" },
		{ "[backup.x]\nkeep_last = 3\n", "unknown section" },
	};
	struct config	*c;
	const char	*p;
	char		 want[256], dropin[128];
	FILE		*fp;
	size_t		 i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		c = config_load(write_conf(t[i].text), NULL, NULL);
		ck_assert_msg(c->nerrors == 1 && strstr(c->errors[0],
		    t[i].want) != NULL, "%s: %s", t[i].text, c->nerrors ?
		    c->errors[0] : "(no error)");
		config_free(c);
	}
	c = config_load(write_conf("[root.x]\npath = /srv\nallow_users = 0, "
	    "root 1000\nallow_groups = 0\nallow_hardlinks = no\n[backup]\n"
	    "keep_last = 0\nmax_bytes = 1000000\n"), NULL, NULL);
	ck_assert_uint_eq(c->nerrors, 0);
	config_free(c);

	/* No path: reported once, at the section's first key. */
	p = write_conf("[root.ok]\npath = /srv\n[root.a]\n# none\n"
	    "allow_hardlinks = yes\nallow_users = 0\n");
	c = config_load(p, NULL, NULL);
	snprintf(want, sizeof(want), "%s:5: [root.a]: needs path = DIR", p);
	ck_assert_uint_eq(c->nerrors, 1);
	ck_assert_str_eq(c->errors[0], want);
	config_free(c);
	/* A section spread over a drop-in: its path may be in either. */
	snprintf(dropin, sizeof(dropin), "%s/ermd.conf.d", dir);
	ck_assert_int_eq(mkdir(dropin, 0700), 0);
	snprintf(dropin, sizeof(dropin), "%s/ermd.conf.d/a.conf", dir);
	ck_assert_ptr_nonnull(fp = fopen(dropin, "w"));
	fputs("[root.a]\npath = /srv/a\n", fp);
	fclose(fp);
	c = config_load(p, NULL, NULL);
	ck_assert_msg(c->nerrors == 0, "%s", c->nerrors ? c->errors[0] : "");
	config_free(c);
	ck_assert_int_eq(unlink(dropin), 0);
}
END_TEST

START_TEST(matching_and_allow_lists)
{
	static const char *const refused[] = {
		"/a", "/a/", "/a//file", "/a/./file", "/a/sub/../file",
		"/a/../outside/secret", "/ab/file", "/outside/secret", "a/file",
		"", "/", "/etc/passwd",
	};
	struct peer	 anyone = peer(1001, 1001, 0), p;
	struct root_path rp;
	struct root_err	 e;
	char		 longp[PATH_MAX + 64], path[256], comp[300];
	size_t		 i;

	ck_assert_int_eq(find("/a/file", &anyone, &rp), 0);
	ck_assert_str_eq(rp.root, "a");
	ck_assert_str_eq(rp.rel, "file");
	root_path_clear(&rp);
	ck_assert_int_eq(find("/a/b/x/y", &anyone, &rp), 0);
	ck_assert_str_eq(rp.root, "b");		/* the longest match */
	ck_assert_str_eq(rp.rel, "x/y");
	ck_assert_int_eq(rp.flags & ROOT_ALLOW_HARDLINKS, ROOT_ALLOW_HARDLINKS);
	root_path_clear(&rp);
	/* A root configured through a symlink: both spellings match. */
	ck_assert_int_eq(find("/dl/x", &anyone, &rp), 0);
	ck_assert_str_eq(rp.root, "d");
	root_path_clear(&rp);
	ck_assert_int_eq(find("/d/x", &anyone, &rp), 0);
	ck_assert_str_eq(rp.root, "d");
	root_path_clear(&rp);

	for (i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
		ck_assert_msg(find(refused[i], &anyone, &rp) == -1, "%s",
		    refused[i]);
	snprintf(path, sizeof(path), "%s/a/file", dir);
	ck_assert_int_eq(roots_find(path, strlen(path) + 1, &anyone, &rp, &e),
	    -1);				/* the NUL counted in */
	ck_assert_ptr_nonnull(strstr(e.msg, "NUL"));
	snprintf(longp, sizeof(longp), "%s/a/", dir);
	while (strlen(longp) < PATH_MAX)
		strcat(longp, "x/");
	strcat(longp, "f");
	ck_assert_int_eq(roots_find(longp, strlen(longp), &anyone, &rp, &e),
	    -1);
	strcpy(comp, "/a/");
	memset(comp + 3, 'n', NAME_MAX + 1);
	comp[3 + NAME_MAX + 1] = '\0';
	ck_assert_int_eq(find(comp, &anyone, &rp), -1);

	/* Root c: uid 1000, group 4242 (primary or supplementary), admins. */
	ck_assert_int_eq(find("/c/x", &anyone, &rp), -1);
	p = peer(1000, 1000, 0);
	ck_assert_int_eq(find("/c/x", &p, &rp), 0);
	root_path_clear(&rp);
	p = peer(1001, 4242, 0);
	ck_assert_int_eq(find("/c/x", &p, &rp), 0);
	root_path_clear(&rp);
	p = peer(1001, 1001, 4242);
	ck_assert_int_eq(find("/c/x", &p, &rp), 0);
	root_path_clear(&rp);
	p = peer(1001, 1001, 0);
	p.admin = 1;
	ck_assert_int_eq(find("/c/x", &p, &rp), 0);
	root_path_clear(&rp);
	snprintf(path, sizeof(path), "%s/c/x", dir);
	ck_assert(!roots_visible(path, &anyone));
	ck_assert(roots_visible(path, &p));
}
END_TEST

/* Open for reading as uid 1001; the outcome code (0 when opened). */
static int
open_read(const char *rel)
{
	struct peer	 p = peer(1001, 1001, 0);
	struct root_path rp;
	struct root_err	 e;
	struct stat	 st;
	int		 fd, rc;

	if (find(rel, &p, &rp) == -1)
		return (ERM_PERMISSION_DENIED);
	rc = roots_open_read(&rp, &p, &fd, &st, &e);
	root_path_clear(&rp);
	if (rc == 0) {
		ck_assert(S_ISREG(st.st_mode));
		close(fd);
		return (0);
	}
	return (e.code);
}

static void
hostile_tree(void)
{
	static const struct {
		const char	*rel;
		int		 code;
	} t[] = {
		{ "/a/file", 0 },
		{ "/a/sub/file", 0 },
		{ "/a/private", ERM_PERMISSION_DENIED },	/* 0600 root */
		{ "/a/closed/file", ERM_PERMISSION_DENIED },	/* 0700 */
		{ "/a/abs", ERM_PERMISSION_DENIED },
		{ "/a/rel", ERM_PERMISSION_DENIED },
		{ "/a/out/secret", ERM_PERMISSION_DENIED },
		{ "/a/in/file", ERM_PERMISSION_DENIED },
		{ "/a/proc", ERM_PERMISSION_DENIED },
		{ "/a/fifo", ERM_PERMISSION_DENIED },
		{ "/a/sub", ERM_PERMISSION_DENIED },
		{ "/a/hard", ERM_PERMISSION_DENIED },
		{ "/a/file/x", ERM_PERMISSION_DENIED },
		{ "/a/missing", ERM_IO_ERROR },
		{ "/a/nodir/file", ERM_IO_ERROR },
	};
	size_t	i;

	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		ck_assert_msg(open_read(t[i].rel) == t[i].code, "%s: %d",
		    t[i].rel, open_read(t[i].rel));
}

START_TEST(walk_with_openat2)
{
	roots_use_openat2(1);
	hostile_tree();
}
END_TEST

START_TEST(walk_with_the_fallback)
{
	roots_use_openat2(0);
	hostile_tree();
}
END_TEST

START_TEST(hard_links_allowed_per_root)
{
	struct peer	 p = peer(0, 0, 0);
	struct root_path rp;
	struct root_err	 e;
	struct stat	 st;
	char		 a[256], b[256];
	int		 fd;

	snprintf(a, sizeof(a), "%s/a/b/one", dir);
	snprintf(b, sizeof(b), "%s/a/b/two", dir);
	close(open(a, O_WRONLY | O_CREAT, 0644));
	ck_assert_int_eq(link(a, b), 0);
	ck_assert_int_eq(find("/a/b/one", &p, &rp), 0);
	ck_assert_int_eq(roots_open_read(&rp, &p, &fd, &st, &e), 0);
	ck_assert_int_eq(st.st_nlink, 2);
	close(fd);
	root_path_clear(&rp);
}
END_TEST

START_TEST(parents_for_restores)
{
	struct peer	 root = peer(0, 0, 0), user = peer(1001, 1001, 0);
	struct root_path rp;
	struct root_err	 e;
	struct stat	 st;
	const char	*name;
	char		 from[256], to[256];
	int		 dfd, exists;

	ck_assert_int_eq(find("/a/sub/file", &root, &rp), 0);
	ck_assert_int_eq(roots_open_parent(&rp, &root, &dfd, &name, &exists,
	    &st, &e), 0);
	ck_assert_str_eq(name, "file");
	ck_assert_int_eq(exists, 1);
	ck_assert(roots_same_parent(&rp, dfd));
	/* The directory moves away and another takes its name. */
	snprintf(from, sizeof(from), "%s/a/sub", dir);
	snprintf(to, sizeof(to), "%s/a/sub.old", dir);
	ck_assert_int_eq(rename(from, to), 0);
	ck_assert_int_eq(mkdir(from, 0755), 0);
	ck_assert(!roots_same_parent(&rp, dfd));
	close(dfd);
	root_path_clear(&rp);

	/* A new file: the peer must be able to write the directory. */
	ck_assert_int_eq(find("/a/sub/new", &user, &rp), 0);
	ck_assert_int_eq(roots_open_parent(&rp, &user, &dfd, &name, &exists,
	    &st, &e), -1);
	ck_assert_int_eq(e.code, ERM_PERMISSION_DENIED);
	root_path_clear(&rp);
	ck_assert_int_eq(find("/a/sub/new", &root, &rp), 0);
	ck_assert_int_eq(roots_open_parent(&rp, &root, &dfd, &name, &exists,
	    &st, &e), 0);
	ck_assert_int_eq(exists, 0);
	close(dfd);
	root_path_clear(&rp);
	/* Over another's 0644 file: uid 1001 may not write it. */
	ck_assert_int_eq(find("/a/file", &user, &rp), 0);
	ck_assert_int_eq(roots_open_parent(&rp, &user, &dfd, &name, &exists,
	    &st, &e), -1);
	root_path_clear(&rp);
	/* Over a symlink, a FIFO, a hard link: refused. */
	ck_assert_int_eq(find("/a/abs", &root, &rp), 0);
	ck_assert_int_eq(roots_open_parent(&rp, &root, &dfd, &name, &exists,
	    &st, &e), -1);
	root_path_clear(&rp);
	ck_assert_int_eq(find("/a/fifo", &root, &rp), 0);
	ck_assert_int_eq(roots_open_parent(&rp, &root, &dfd, &name, &exists,
	    &st, &e), -1);
	root_path_clear(&rp);
	ck_assert_int_eq(find("/a/hard", &root, &rp), 0);
	ck_assert_int_eq(roots_open_parent(&rp, &root, &dfd, &name, &exists,
	    &st, &e), -1);
	root_path_clear(&rp);
}
END_TEST

START_TEST(peer_permission_bits)
{
	struct stat	st;
	struct peer	owner = peer(10, 20, 0), member = peer(11, 21, 20);
	struct peer	other = peer(12, 22, 0), root = peer(0, 0, 0);

	memset(&st, 0, sizeof(st));
	st.st_uid = 10;
	st.st_gid = 20;
	st.st_mode = S_IFREG | 0640;
	ck_assert(peer_may(&owner, &st, R_OK | W_OK));
	ck_assert(peer_may(&member, &st, R_OK));
	ck_assert(!peer_may(&member, &st, W_OK));
	ck_assert(!peer_may(&other, &st, R_OK));
	ck_assert(peer_may(&root, &st, R_OK | W_OK));
	ck_assert(!peer_may(&root, &st, X_OK));
	st.st_mode = S_IFDIR | 0710;
	ck_assert(peer_may(&member, &st, X_OK));
	ck_assert(!peer_may(&member, &st, R_OK));
	ck_assert(peer_may(&root, &st, X_OK));
	/* The owner's bits apply to the owner even when "other" has more. */
	st.st_mode = S_IFREG | 0007;
	ck_assert(!peer_may(&owner, &st, R_OK));
	ck_assert(peer_may(&other, &st, R_OK));
}
END_TEST

int
main(void)
{
	Suite	*s = suite_create("backup_roots");
	TCase	*tc = tcase_create("backup_roots");
	SRunner	*sr;
	int	 failed;

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, config_errors);
	tcase_add_test(tc, matching_and_allow_lists);
	tcase_add_test(tc, walk_with_openat2);
	tcase_add_test(tc, walk_with_the_fallback);
	tcase_add_test(tc, hard_links_allowed_per_root);
	tcase_add_test(tc, parents_for_restores);
	tcase_add_test(tc, peer_permission_bits);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return (failed ? 1 : 0);
}
