/*
 * Path confinement against a real ermd: a table of hostile paths (every
 * one refused with 1002 by backup.create and backup.restore, and nothing
 * outside the root opened: an outside canary keeps its content, atime and
 * mtime), targets that turn into symlinks, and a race that swaps a
 * directory and a symlink while backups and restores run.
 */

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <dirent.h>
#include <signal.h>
#include <time.h>

#include "test_backup.h"

static struct bk	b;

static void
stop(void)
{
	if (b.d.pid > 0)
		ck_assert_int_eq(daemon_stop(&b.d), 0);
}

/* What a canary looked like: any open for reading moves its atime. */
struct canary {
	char		path[256];
	struct stat	st;
	char		sha[65];
};

static void
canary_make(struct canary *c, const char *path)
{
	struct timespec	ts[2];

	snprintf(c->path, sizeof(c->path), "%s", path);
	bk_write(path, "canary: must never be read or written\n", 38);
	/* Three days old: relatime would move an atime this old on a read. */
	clock_gettime(CLOCK_REALTIME, &ts[0]);
	ts[0].tv_sec -= 3 * 86400;
	ts[1] = ts[0];
	ck_assert_int_eq(utimensat(AT_FDCWD, path, ts, 0), 0);
	ck_assert_int_eq(stat(path, &c->st), 0);
	bk_sha256(path, c->sha);
	/* sha256sum read it; put the times back. */
	ck_assert_int_eq(utimensat(AT_FDCWD, path, ts, 0), 0);
	ck_assert_int_eq(stat(path, &c->st), 0);
}

static void
canary_check(const struct canary *c)
{
	struct stat	st;
	char		sha[65];

	ck_assert_int_eq(stat(c->path, &st), 0);
	ck_assert_msg(st.st_atim.tv_sec == c->st.st_atim.tv_sec &&
	    st.st_atim.tv_nsec == c->st.st_atim.tv_nsec,
	    "%s was read (atime moved)", c->path);
	ck_assert_msg(st.st_mtim.tv_sec == c->st.st_mtim.tv_sec &&
	    st.st_mtim.tv_nsec == c->st.st_mtim.tv_nsec &&
	    st.st_ino == c->st.st_ino, "%s was written", c->path);
	bk_sha256(c->path, sha);
	ck_assert_str_eq(sha, c->sha);
}

/* The names in dir, sorted and joined, to see that nothing was added. */
static void
listing(const char *dir, char *out, size_t outsz)
{
	struct dirent	**v;
	int		  n, i;
	size_t		  len = 0;

	out[0] = '\0';
	n = scandir(dir, &v, NULL, alphasort);
	ck_assert_int_ge(n, 0);
	for (i = 0; i < n; i++) {
		len += (size_t)snprintf(out + len, outsz - len, "%s/",
		    v[i]->d_name);
		free(v[i]);
	}
	free(v);
}

static void
make_socket(const char *path)
{
	struct sockaddr_un	sun;
	int			fd;

	ck_assert_int_ne(fd = socket(AF_UNIX, SOCK_STREAM, 0), -1);
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	ck_assert_uint_lt(strlen(path), sizeof(sun.sun_path));
	memcpy(sun.sun_path, path, strlen(path) + 1);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	close(fd);
}

static json_t *
path_params(const char *path, size_t len)
{
	return (json_pack("{s:s%}", "path", path, len));
}

/* Both methods refuse the path with 1002 and the peer's uid. */
static void
refused(const char *what, const char *path, size_t len)
{
	json_t	*r;

	r = bk_rpc(&b, "backup.create", path_params(path, len));
	ck_assert_msg(reply_code(r) == 1002, "backup.create %s: %d", what,
	    reply_code(r));
	ck_assert_int_eq(json_integer_value(json_object_get(bk_edata(r),
	    "uid")), (json_int_t)geteuid());
	json_decref(r);
	r = bk_rpc(&b, "backup.restore", path_params(path, len));
	ck_assert_msg(reply_code(r) == 1002, "backup.restore %s: %d", what,
	    reply_code(r));
	json_decref(r);
}

/*
 * A NUL byte: the frame decoder refuses any \u0000 (-32700, id null) before
 * a method sees it; were it let through, the path check answers 1002.
 */
static void
refused_nul(const char *path, size_t len)
{
	static const char *const methods[] = { "backup.create",
	    "backup.restore" };
	json_t	*req, *r;
	char	*s;
	int	 fd, i, code;

	for (i = 0; i < 2; i++) {
		req = json_pack("{s:i, s:s, s:o}", "id", 1, "method",
		    methods[i], "params", path_params(path, len));
		s = json_dumps(req, JSON_COMPACT);
		json_decref(req);
		ck_assert_int_ne(fd = raw_connect(b.d.sock), -1);
		raw_send_frame(fd, s);
		ck_assert_ptr_nonnull(r = raw_recv(fd, 5000));
		code = reply_code(r);
		ck_assert_msg(code == -32700 || code == 1002,
		    "%s with a NUL byte: %d", methods[i], code);
		json_decref(r);
		close(fd);
		free(s);
	}
}

START_TEST(hostile_paths_are_refused)
{
	struct canary	 canary, evil;
	char		 R[200], O[200], before[4096], after[4096], p[512];
	char		 longp[6000], comp[300];
	size_t		 i, n = 0, len;
	struct {
		const char	*what;
		char		 path[512];
	} t[40];

#define ADD(w, ...)	do {						\
	t[n].what = (w);						\
	snprintf(t[n].path, sizeof(t[n].path), __VA_ARGS__);		\
	n++;								\
} while (0)

	bk_start(&b, NULL, NULL);
	snprintf(R, sizeof(R), "%s", b.root);
	snprintf(O, sizeof(O), "%s", b.outside);
	snprintf(p, sizeof(p), "%s/canary", O);
	canary_make(&canary, p);
	snprintf(p, sizeof(p), "%s/rootevil", b.d.dir);
	ck_assert_int_eq(mkdir(p, 0755), 0);
	snprintf(p, sizeof(p), "%s/rootevil/canary", b.d.dir);
	canary_make(&evil, p);

	snprintf(p, sizeof(p), "%s/file", R);
	bk_random_file(p, 100, 1);
	snprintf(p, sizeof(p), "%s/sub", R);
	ck_assert_int_eq(mkdir(p, 0755), 0);
	snprintf(p, sizeof(p), "%s/sub/file", R);
	bk_random_file(p, 100, 2);
	snprintf(p, sizeof(p), "%s/abs_link", R);
	ck_assert_int_eq(symlink(canary.path, p), 0);
	snprintf(p, sizeof(p), "%s/rel_link", R);
	ck_assert_int_eq(symlink("../outside/canary", p), 0);
	snprintf(p, sizeof(p), "%s/dir_link", R);
	ck_assert_int_eq(symlink(O, p), 0);
	snprintf(p, sizeof(p), "%s/rdir_link", R);
	ck_assert_int_eq(symlink("../outside", p), 0);
	snprintf(p, sizeof(p), "%s/proc_link", R);
	snprintf(longp, sizeof(longp), "/proc/self/root%s", canary.path);
	ck_assert_int_eq(symlink(longp, p), 0);
	snprintf(p, sizeof(p), "%s/proc_dir", R);
	ck_assert_int_eq(symlink("/proc/self/root", p), 0);
	snprintf(p, sizeof(p), "%s/inner_link", R);
	ck_assert_int_eq(symlink("file", p), 0);
	snprintf(p, sizeof(p), "%s/sub_link", R);
	ck_assert_int_eq(symlink("sub", p), 0);
	snprintf(p, sizeof(p), "%s/loop", R);
	ck_assert_int_eq(symlink("loop", p), 0);
	snprintf(p, sizeof(p), "%s/fifo", R);
	ck_assert_int_eq(mkfifo(p, 0644), 0);
	snprintf(p, sizeof(p), "%s/sock", R);
	make_socket(p);
	snprintf(p, sizeof(p), "%s/hard", R);
	ck_assert_int_eq(link(canary.path, p), 0);
	ck_assert_int_eq(stat(canary.path, &canary.st), 0);	/* nlink */
	if (geteuid() == 0) {
		snprintf(p, sizeof(p), "%s/dev", R);
		ck_assert_int_eq(mknod(p, S_IFCHR | 0666, makedev(1, 3)), 0);
		ADD("a device node", "%s/dev", R);
	}

	ADD("'..' out of the root", "%s/../outside/canary", R);
	ADD("'..' inside the root", "%s/sub/../file", R);
	ADD("a '.' component", "%s/./file", R);
	ADD("an absolute path outside", "%s", canary.path);
	ADD("/etc/passwd", "/etc/passwd");
	ADD("a sibling that shares the root's prefix", "%s/rootevil/canary",
	    b.d.dir);
	ADD("a relative path", "root/file");
	ADD("an empty path", "%s", "");
	ADD("/", "/");
	ADD("the root itself", "%s", R);
	ADD("a trailing slash", "%s/file/", R);
	ADD("an empty component", "%s//file", R);
	ADD("a file used as a directory", "%s/file/x", R);
	ADD("an absolute symlink", "%s/abs_link", R);
	ADD("a relative symlink out", "%s/rel_link", R);
	ADD("an absolute symlink in the middle", "%s/dir_link/canary", R);
	ADD("a relative symlink in the middle", "%s/rdir_link/canary", R);
	ADD("a symlink to /proc/self/root/...", "%s/proc_link", R);
	ADD("/proc/self/root in the middle", "%s/proc_dir%s", R, canary.path);
	ADD("/proc/self/root/<root>/file", "/proc/self/root%s/file", R);
	ADD("a symlink inside the root", "%s/inner_link", R);
	ADD("a symlink to a directory inside", "%s/sub_link/file", R);
	ADD("a symlink loop", "%s/loop", R);
	ADD("a FIFO", "%s/fifo", R);
	ADD("a socket", "%s/sock", R);
	ADD("a directory", "%s/sub", R);
	ADD("a hard link to a file outside", "%s/hard", R);

	listing(O, before, sizeof(before));
	for (i = 0; i < n; i++)
		refused(t[i].what, t[i].path, strlen(t[i].path));

	/* A NUL byte, and over-long paths and components. */
	len = (size_t)snprintf(p, sizeof(p), "%s/file", R);
	memcpy(p + len, "\0/../../outside/canary", 23);
	refused_nul(p, len + 22);
	snprintf(longp, sizeof(longp), "%s", R);
	while (strlen(longp) < 5000)
		strcat(longp, "/aaaaaaaa");
	refused("a path over PATH_MAX", longp, strlen(longp));
	memset(comp, 'a', 299);
	comp[299] = '\0';
	snprintf(longp, sizeof(longp), "%s/%s", R, comp);
	refused("a component over NAME_MAX", longp, strlen(longp));

	canary_check(&canary);
	canary_check(&evil);
	listing(O, after, sizeof(after));
	ck_assert_str_eq(before, after);
	/* And the ordinary file next to all this still works. */
	snprintf(p, sizeof(p), "%s/file", R);
	json_decref(bk_ok(bk_create(&b, p)));
	ck_assert_msg(n + 3 >= 20, "only %zu hostile paths", n + 3);
	assert_serves(&b.d);
#undef ADD
}
END_TEST

/*
 * A restore whose target (or a directory on its way) has become a symlink
 * out of the root is refused, and the file outside is not touched.
 */
START_TEST(targets_turned_into_symlinks)
{
	struct canary	 canary;
	char		 p[256], dir[256], real[256], f[256];
	json_t		*r;

	bk_start(&b, NULL, NULL);
	snprintf(p, sizeof(p), "%s/canary", b.outside);
	canary_make(&canary, p);
	snprintf(p, sizeof(p), "%s/victim", b.root);
	bk_random_file(p, 1000, 5);
	json_decref(bk_ok(bk_create(&b, p)));
	ck_assert_int_eq(unlink(p), 0);
	ck_assert_int_eq(symlink(canary.path, p), 0);
	r = bk_rpc(&b, "backup.restore", json_pack("{s:s}", "path", p));
	ck_assert_int_eq(reply_code(r), 1002);
	json_decref(r);

	snprintf(dir, sizeof(dir), "%s/vdir", b.root);
	snprintf(real, sizeof(real), "%s/vdir.real", b.root);
	snprintf(f, sizeof(f), "%s/vdir/canary", b.root);
	ck_assert_int_eq(mkdir(dir, 0755), 0);
	bk_random_file(f, 1000, 6);
	json_decref(bk_ok(bk_create(&b, f)));
	ck_assert_int_eq(rename(dir, real), 0);
	ck_assert_int_eq(symlink(b.outside, dir), 0);
	r = bk_rpc(&b, "backup.restore", json_pack("{s:s}", "path", f));
	ck_assert_int_eq(reply_code(r), 1002);
	json_decref(r);
	r = bk_rpc(&b, "backup.create", json_pack("{s:s}", "path", f));
	ck_assert_int_eq(reply_code(r), 1002);
	json_decref(r);
	canary_check(&canary);
	ck_assert_int_eq(bk_count_files(b.outside), 1);
	assert_serves(&b.d);
}
END_TEST

/* The swapper: the directory and a symlink out, in turn, for ms. */
static pid_t
start_swapper(const char *dir, const char *real, const char *to)
{
	pid_t	pid;

	if ((pid = fork()) != 0)
		return (pid);
	for (;;) {
		if (rename(dir, real) == -1 || symlink(to, dir) == -1)
			_exit(1);
		usleep(300);
		if (unlink(dir) == -1 || rename(real, dir) == -1)
			_exit(2);
		usleep(300);
	}
}

/*
 * Backups and restores of race/f run while race/ keeps turning into a
 * symlink to outside/ and back. Each one either works on the real file or
 * is refused; outside/f (different content) is never backed up, written
 * or replaced, and nothing is created outside.
 */
START_TEST(race_swapping_a_directory_and_a_symlink)
{
	struct canary	 canary;
	char		 dir[256], real[256], f[256], want[65], out[4096];
	char		 before[4096], *reqs[2];
	json_t		*r, *p;
	pid_t		 swapper;
	int		 i, k, fds[4], ok[2] = { 0, 0 }, denied = 0, code;
	int		 status;

	bk_start(&b, NULL, NULL);
	snprintf(dir, sizeof(dir), "%s/race", b.root);
	snprintf(real, sizeof(real), "%s/race.real", b.root);
	snprintf(f, sizeof(f), "%s/race/f", b.root);
	ck_assert_int_eq(mkdir(dir, 0755), 0);
	bk_random_file(f, 64 * 1024, 8);
	bk_sha256(f, want);
	snprintf(out, sizeof(out), "%s/f", b.outside);
	canary_make(&canary, out);
	json_decref(bk_ok(bk_create(&b, f)));
	listing(b.outside, before, sizeof(before));

	p = json_pack("{s:s, s:s, s:{s:s}}", "id", "c", "method",
	    "backup.create", "params", "path", f);
	reqs[0] = json_dumps(p, JSON_COMPACT);
	json_decref(p);
	p = json_pack("{s:s, s:s, s:{s:s}}", "id", "r", "method",
	    "backup.restore", "params", "path", f);
	reqs[1] = json_dumps(p, JSON_COMPACT);
	json_decref(p);
	for (k = 0; k < 4; k++)
		ck_assert_int_ne(fds[k] = raw_connect(b.d.sock), -1);

	swapper = start_swapper(dir, real, b.outside);
	for (i = 0; i < 150; i++) {
		/* Four in flight at once: two backups, two restores. */
		for (k = 0; k < 4; k++)
			raw_send_frame(fds[k], reqs[k & 1]);
		for (k = 0; k < 4; k++) {
			ck_assert_ptr_nonnull(r = raw_recv(fds[k], 10000));
			code = reply_code(r);
			if (code == 0) {
				ok[k & 1]++;
				ck_assert_str_eq(bk_str(r, "sha256"), want);
			} else if (code == 1002)
				denied++;
			else
				/* race/ missing between two renames. */
				ck_assert_msg(code == 1006 && strcmp(
				    json_string_value(json_object_get(
				    bk_edata(r), "errno")), "ENOENT") == 0,
				    "unexpected %d", code);
			json_decref(r);
		}
	}
	kill(swapper, SIGKILL);
	waitpid(swapper, &status, 0);
	if (!bk_exists(dir))
		ck_assert_int_eq(rename(real, dir), 0);
	else if (bk_exists(real)) {
		ck_assert_int_eq(unlink(dir), 0);
		ck_assert_int_eq(rename(real, dir), 0);
	}
	for (k = 0; k < 4; k++)
		close(fds[k]);
	free(reqs[0]);
	free(reqs[1]);

	canary_check(&canary);
	listing(b.outside, out, sizeof(out));
	ck_assert_str_eq(before, out);
	bk_sha256(f, out);
	ck_assert_str_eq(out, want);
	ck_assert_msg(ok[0] > 0 && ok[1] > 0 && denied > 0,
	    "the race never went both ways: %d backups, %d restores, %d "
	    "refused", ok[0], ok[1], denied);
	fprintf(stderr, "race: %d backups and %d restores done, %d refused\n",
	    ok[0], ok[1], denied);
	assert_serves(&b.d);
}
END_TEST

int
main(void)
{
	Suite	*s = suite_create("backup_paths");
	TCase	*tc = tcase_create("backup_paths");
	SRunner	*sr;
	int	 failed;

	tcase_set_timeout(tc, 120);
	tcase_add_checked_fixture(tc, NULL, stop);
	tcase_add_test(tc, hostile_paths_are_refused);
	tcase_add_test(tc, targets_turned_into_symlinks);
	tcase_add_test(tc, race_swapping_a_directory_and_a_symlink);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return (failed ? 1 : 0);
}
