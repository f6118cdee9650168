/*
 * Fallback storage against real components: dir backends on real
 * filesystems (a full tmpfs, a read-only one), an http backend served by a
 * real nginx with WebDAV started here on a loopback port (plain and TLS),
 * failover and recovery, check timeouts (a server that never answers, a
 * directory whose check blocks), weighted round robin, ejection times,
 * path confinement, and kill -9 in the middle of a put.
 */

#include <sys/inotify.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

static struct daemon	d;
static int		cfd = -1;	/* a connection to d */

/* ---- nginx ---------------------------------------------------------- */

struct nginx {
	pid_t	pid;
	int	port;
	int	tls;
	char	dir[160];
};

static const char *
nginx_path(void)
{
	return (access("/usr/sbin/nginx", X_OK) == 0 ? "/usr/sbin/nginx" :
	    "nginx");
}

static int
have_nginx(void)
{
	const char	*argv[] = { "/bin/sh", "-c",
	    "command -v nginx || test -x /usr/sbin/nginx", NULL };

	if (run_prog(NULL, 0, argv) == 0)
		return (1);
	fprintf(stderr, "nginx not found (make check installs it): the "
	    "tests that need it are skipped\n");
	return (0);
}

static int
port_open(int port)
{
	struct sockaddr_in	sin;
	int			fd, ok;

	fd = socket(AF_INET, SOCK_STREAM, 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ok = connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0;
	close(fd);
	return (ok);
}

static void
sleep_ms(int ms)
{
	struct timespec	ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

/*
 * A failed check ends a test's process at once, without its clean-up, so
 * what must not outlive a failure (an nginx, a daemon, a mount) is noted in
 * a file that the runner process reads when every test is over.
 */
static char	notes[64];

static void
note(const char *fmt, ...)
{
	va_list	 ap;
	FILE	*fp;

	if ((fp = fopen(notes, "a")) == NULL)
		return;
	va_start(ap, fmt);
	vfprintf(fp, fmt, ap);
	va_end(ap);
	fputc('\n', fp);
	fclose(fp);
}

/* Is pid still a process whose command line mentions dir? */
static int
ours(pid_t pid, const char *dir)
{
	char	p[64], buf[4096];
	ssize_t	n, i;
	int	fd;

	snprintf(p, sizeof(p), "/proc/%d/cmdline", (int)pid);
	if ((fd = open(p, O_RDONLY)) == -1)
		return (0);
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return (0);
	for (i = 0; i < n; i++)
		if (buf[i] == '\0')
			buf[i] = ' ';
	buf[n] = '\0';
	return (strstr(buf, dir) != NULL);
}

static void
cleanup_notes(void)
{
	char	 line[512], what[16], arg[400];
	pid_t	 pid;
	FILE	*fp;

	if ((fp = fopen(notes, "r")) == NULL)
		return;
	while (fgets(line, sizeof(line), fp) != NULL) {
		if (sscanf(line, "kill %d %399s", &pid, arg) == 2 &&
		    ours(pid, arg))
			kill(pid, SIGKILL);
	}
	rewind(fp);
	while (fgets(line, sizeof(line), fp) != NULL)
		if (sscanf(line, "%15s %399s", what, arg) == 2 &&
		    strcmp(what, "umount") == 0)
			(void)umount2(arg, MNT_DETACH);
	fclose(fp);
	unlink(notes);
}

/* Start (or start again, on the same port) the nginx of n. */
static void
nginx_start(struct nginx *n)
{
	char		 port[16], conf[200], elog[200], prefix[200];
	const char	*argv[] = { "/bin/sh", "tests/nginx-dav.sh", "conf",
	    n->dir, port, n->tls ? "tls" : NULL, NULL };
	int		 i, st;

	if (n->port == 0)
		n->port = free_port();
	snprintf(port, sizeof(port), "%d", n->port);
	ck_assert_int_eq(run_prog(NULL, 0, argv), 0);
	snprintf(conf, sizeof(conf), "%s/nginx.conf", n->dir);
	snprintf(elog, sizeof(elog), "%s/error.log", n->dir);
	snprintf(prefix, sizeof(prefix), "%s/", n->dir);
	n->pid = fork();
	ck_assert_int_ne(n->pid, -1);
	if (n->pid == 0) {
		int	fd = open("/dev/null", O_RDWR);

		dup2(fd, 0);
		dup2(fd, 1);
		dup2(fd, 2);
		execl(nginx_path(), "nginx", "-e", elog, "-p", prefix, "-c",
		    conf, "-g", "daemon off;", (char *)NULL);
		_exit(127);
	}
	note("kill %d %s", (int)n->pid, n->dir);
	for (i = 0; i < 1000; i++) {
		if (port_open(n->port))
			return;
		if (waitpid(n->pid, &st, WNOHANG) == n->pid)
			break;
		sleep_ms(5);
	}
	{
		char	cmd[300];

		snprintf(cmd, sizeof(cmd), "cat %s >&2", elog);
		(void)!system(cmd);
	}
	ck_abort_msg("nginx did not start on port %d", n->port);
}

static void
nginx_stop(struct nginx *n)
{
	int	i, st;

	if (n->pid <= 0)
		return;
	kill(n->pid, SIGQUIT);
	for (i = 0; i < 500; i++) {
		if (waitpid(n->pid, &st, WNOHANG) == n->pid)
			break;
		sleep_ms(10);
	}
	if (i == 500) {
		kill(n->pid, SIGKILL);
		waitpid(n->pid, &st, 0);
	}
	n->pid = 0;
	/* The port is closed once the master is gone. */
	ck_assert(!port_open(n->port));
}

/* A private nginx with its files under the daemon's temp dir. */
static void
nginx_init(struct nginx *n, int tls)
{
	char	p[200];

	memset(n, 0, sizeof(*n));
	n->tls = tls;
	snprintf(n->dir, sizeof(n->dir), "%s/nginx", d.dir);
	ck_assert_int_eq(mkdir(n->dir, 0700), 0);
	snprintf(p, sizeof(p), "%s/data", n->dir);
	ck_assert_int_eq(mkdir(p, 0755), 0);
	snprintf(p, sizeof(p), "%s/data/store", n->dir);
	ck_assert_int_eq(mkdir(p, 0755), 0);
	nginx_start(n);
}

/* ---- the daemon ----------------------------------------------------- */

static void
start(const char *fmt, const char *const *args, ...)
{
	static char	conf[8192];
	va_list		ap;

	va_start(ap, args);
	vsnprintf(conf, sizeof(conf), fmt, ap);
	va_end(ap);
	daemon_start_env(&d, conf, args, NULL, -1);
	note("kill %d %s", (int)d.pid, d.dir);
	cfd = raw_connect(d.sock);
	ck_assert_int_ne(cfd, -1);
}

static void
stop(void)
{
	if (cfd != -1)
		close(cfd);
	cfd = -1;
	if (d.pid > 0)
		ck_assert_int_eq(daemon_stop(&d), 0);
}

static void
path(char *out, size_t outsz, const char *name)
{
	snprintf(out, outsz, "%s/%s", d.dir, name);
}

static void
mkdir_in(const char *name, mode_t mode)
{
	char	p[200];

	path(p, sizeof(p), name);
	ck_assert_int_eq(mkdir(p, mode), 0);
	chmod(p, mode);
}

static json_t *
call(const char *fmt, ...)
{
	char	 buf[8192];
	va_list	 ap;
	json_t	*r;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	r = raw_call(cfd, buf);
	ck_assert_msg(r != NULL, "no reply to %s", buf);
	return (r);
}

static int
code_and_free(json_t *r)
{
	int	c = reply_code(r);

	json_decref(r);
	return (c);
}

static const char *
str(json_t *o, const char *k)
{
	json_t	*v = json_object_get(o, k);

	ck_assert_msg(json_is_string(v), "%s is not a string", k);
	return (json_string_value(v));
}

/* The backend name's object in a status. */
static json_t *
in_status(json_t *status, const char *name)
{
	json_t	*b;
	size_t	 i;

	json_array_foreach(json_object_get(status, "backends"), i, b)
		if (strcmp(str(b, "name"), name) == 0)
			return (b);
	ck_abort_msg("no backend %s", name);
	return (NULL);
}

static int
healthy_after_check(const char *name)
{
	json_t	*r = call("{\"id\":1,\"method\":\"storage.check\","
	    "\"params\":{\"backend\":\"%s\"}}", name);
	int	 h;

	h = json_is_true(json_object_get(in_status(result(r), name),
	    "healthy"));
	json_decref(r);
	return (h);
}

/* A file of size bytes, random (fill < 0) or of one byte value. */
static void
make_file(const char *p, size_t size, int fill)
{
	char	*buf = malloc(65536);
	size_t	 n, i;
	int	 fd;

	fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	ck_assert_int_ne(fd, -1);
	srandom((unsigned)size);
	while (size > 0) {
		n = size < 65536 ? size : 65536;
		for (i = 0; i < n; i++)
			buf[i] = (char)(fill < 0 ? random() : fill);
		ck_assert_int_eq(write(fd, buf, n), (ssize_t)n);
		size -= n;
	}
	close(fd);
	free(buf);
}

static void
sha256_file(const char *p, char out[65])
{
	char		 buf[256];
	const char	*argv[] = { "/usr/bin/sha256sum", p, NULL };

	ck_assert_int_eq(run_prog(buf, sizeof(buf), argv), 0);
	memcpy(out, buf, 64);
	out[64] = '\0';
}

static int
same_file(const char *a, const char *b)
{
	const char	*argv[] = { "/usr/bin/cmp", "-s", a, b, NULL };

	return (run_prog(NULL, 0, argv) == 0);
}

static int
exists(const char *p)
{
	return (access(p, F_OK) == 0);
}

/* Names in dir (not . and ..). */
static int
count_entries(const char *dir, const char *prefix)
{
	struct dirent	*de;
	DIR		*dp;
	int		 n = 0;

	ck_assert_ptr_nonnull(dp = opendir(dir));
	while ((de = readdir(dp)) != NULL)
		if (strcmp(de->d_name, ".") != 0 &&
		    strcmp(de->d_name, "..") != 0 &&
		    strncmp(de->d_name, prefix, strlen(prefix)) == 0)
			n++;
	closedir(dp);
	return (n);
}

/* A connection subscribed to storage.health events. */
static int
events_conn(void)
{
	int	 fd = raw_connect(d.sock);
	json_t	*r;

	ck_assert_int_ne(fd, -1);
	r = raw_call(fd, "{\"id\":1,\"method\":\"events.subscribe\","
	    "\"params\":{\"types\":[\"storage.health\"]}}");
	ck_assert_int_eq(code_and_free(r), 0);
	return (fd);
}

/* The next storage.health event for backend (new reference). */
static json_t *
next_event(int fd, const char *backend)
{
	json_t	*m, *p;

	while ((m = raw_recv(fd, 5000)) != NULL) {
		p = json_object_get(m, "params");
		if (p != NULL && strcmp(str(p, "type"), "storage.health") ==
		    0 && strcmp(str(p, "backend"), backend) == 0) {
			json_incref(p);
			json_decref(m);
			return (p);
		}
		json_decref(m);
	}
	ck_abort_msg("no storage.health event for %s", backend);
	return (NULL);
}

static void
expect_event(int fd, const char *backend, int healthy, const char *reason)
{
	json_t	*e = next_event(fd, backend);

	ck_assert_int_eq(json_is_true(json_object_get(e, "healthy")), healthy);
	ck_assert_str_eq(str(e, "reason"), reason);
	json_decref(e);
}

/* The tried list of a put as "name:ok,name:ERRNO|status,..." */
static const char *
tried(json_t *res)
{
	static char	 buf[512];
	json_t		*t, *err, *v;
	size_t		 i;

	buf[0] = '\0';
	json_array_foreach(json_object_get(res, "tried"), i, t) {
		size_t	l = strlen(buf);

		err = json_object_get(t, "error");
		if (json_is_true(json_object_get(t, "ok")))
			snprintf(buf + l, sizeof(buf) - l, "%s%s:ok",
			    i ? "," : "", str(t, "backend"));
		else if ((v = json_object_get(err, "errno")) != NULL)
			snprintf(buf + l, sizeof(buf) - l, "%s%s:%s",
			    i ? "," : "", str(t, "backend"),
			    json_string_value(v));
		else
			snprintf(buf + l, sizeof(buf) - l, "%s%s:%lld",
			    i ? "," : "", str(t, "backend"),
			    (long long)json_integer_value(json_object_get(err,
			    "http_status")));
	}
	return (buf);
}

/* ---- tests ---------------------------------------------------------- */

/*
 * An http backend first, two dirs behind it. nginx stops: the put falls
 * back and says so; unhealthy_threshold failed checks take the http
 * backend out; it comes back after healthy_threshold passing checks.
 */
START_TEST(failover_when_nginx_stops_and_recovery)
{
	struct nginx	 n;
	char		 src[200], out[200], p[300], sha[65], buf[4096];
	json_t		*r, *res, *s;
	int		 ev;

	if (!have_nginx())
		return;
	daemon_prepare(&d);
	nginx_init(&n, 0);
	mkdir_in("a", 0755);
	mkdir_in("b", 0755);
	start("[storage]\n"
	    "unhealthy_threshold = 3\n"
	    "healthy_threshold = 2\n"
	    "check_interval_ms = 3600000\n"
	    "eject_consecutive_failures = 100\n"
	    "[backend.web]\n"
	    "url = http://127.0.0.1:%d/store/\n"
	    "timeout_ms = 10000\n"
	    "[backend.a]\n"
	    "path = %s/a\n"
	    "priority = 1\n"
	    "[backend.b]\n"
	    "path = %s/b\n"
	    "priority = 2\n", NULL, n.port, d.dir, d.dir);
	ev = events_conn();

	r = call("{\"id\":1,\"method\":\"storage.check\"}");
	s = result(r);
	ck_assert_str_eq(str(s, "current"), "web");
	ck_assert(json_is_true(json_object_get(in_status(s, "web"),
	    "healthy")));
	ck_assert_str_eq(str(in_status(s, "web"), "location"),
	    str(in_status(s, "web"), "location"));
	json_decref(r);

	/* 1: to nginx. */
	path(src, sizeof(src), "src1");
	make_file(src, 1 << 20, -1);
	sha256_file(src, sha);
	r = call("{\"id\":2,\"method\":\"storage.put\",\"params\":"
	    "{\"key\":\"k1\",\"path\":\"%s\"}}", src);
	res = result(r);
	ck_assert_str_eq(str(res, "backend"), "web");
	ck_assert_str_eq(str(res, "sha256"), sha);
	ck_assert_int_eq(json_integer_value(json_object_get(res, "size")),
	    1 << 20);
	ck_assert_str_eq(tried(res), "web:ok");
	ck_assert(json_is_false(json_object_get(res, "fallback_used")));
	json_decref(r);
	snprintf(p, sizeof(p), "%s/data/store/k1", n.dir);
	ck_assert(same_file(src, p));

	/* 2: nginx is gone; the put falls back to a and lists both tries. */
	nginx_stop(&n);
	path(src, sizeof(src), "src2");
	make_file(src, 300000, -1);
	r = call("{\"id\":3,\"method\":\"storage.put\",\"params\":"
	    "{\"key\":\"k2\",\"path\":\"%s\"}}", src);
	res = result(r);
	ck_assert_str_eq(str(res, "backend"), "a");
	ck_assert_str_eq(tried(res), "web:ECONNREFUSED,a:ok");
	ck_assert(json_is_true(json_object_get(res, "fallback_used")));
	json_decref(r);
	path(p, sizeof(p), "a/k2");
	ck_assert(same_file(src, p));

	/* 3: three failed checks mark web unhealthy, with an event. */
	ck_assert_int_eq(healthy_after_check("web"), 1);
	ck_assert_int_eq(healthy_after_check("web"), 1);
	ck_assert_int_eq(healthy_after_check("web"), 0);
	expect_event(ev, "web", 0, "checks_failed");
	r = call("{\"id\":4,\"method\":\"storage.status\"}");
	s = result(r);
	ck_assert_str_eq(str(s, "current"), "a");
	ck_assert_ptr_nonnull(strstr(str(in_status(s, "web"), "last_error"),
	    "PUT .ermd-probe"));
	json_decref(r);

	/* 4: web is not even tried now. */
	r = call("{\"id\":5,\"method\":\"storage.put\",\"params\":"
	    "{\"key\":\"k3\",\"path\":\"%s\"}}", src);
	res = result(r);
	ck_assert_str_eq(tried(res), "a:ok");
	ck_assert(json_is_true(json_object_get(res, "fallback_used")));
	json_decref(r);

	/* k1 lives only on web: the get tries everything and fails. */
	path(out, sizeof(out), "out1");
	r = call("{\"id\":6,\"method\":\"storage.get\",\"params\":"
	    "{\"key\":\"k1\",\"path\":\"%s\"}}", out);
	ck_assert_int_eq(reply_code(r), 1007);
	json_decref(r);
	ck_assert(!exists(out));

	/* 5: nginx back: one passing check is not enough, two are. */
	nginx_start(&n);
	ck_assert_int_eq(healthy_after_check("web"), 0);
	ck_assert_int_eq(healthy_after_check("web"), 1);
	expect_event(ev, "web", 1, "checks_passed");

	path(src, sizeof(src), "src1");
	r = call("{\"id\":7,\"method\":\"storage.put\",\"params\":"
	    "{\"key\":\"k4\",\"path\":\"%s\"}}", src);
	ck_assert_str_eq(tried(result(r)), "web:ok");
	json_decref(r);

	/* Gets: k1 from web; k2 is not on web (404) and comes from a. */
	r = call("{\"id\":8,\"method\":\"storage.get\",\"params\":"
	    "{\"key\":\"k1\",\"path\":\"%s\"}}", out);
	res = result(r);
	ck_assert_str_eq(str(res, "backend"), "web");
	ck_assert_str_eq(str(res, "sha256"), sha);
	json_decref(r);
	ck_assert(same_file(src, out));
	r = call("{\"id\":9,\"method\":\"storage.get\",\"params\":"
	    "{\"key\":\"k2\",\"path\":\"%s\"}}", out);
	ck_assert_str_eq(str(result(r), "backend"), "a");
	json_decref(r);
	path(src, sizeof(src), "src2");
	ck_assert(same_file(src, out));
	/* No backend has it: 1001. */
	r = call("{\"id\":10,\"method\":\"storage.get\",\"params\":"
	    "{\"key\":\"nothing\",\"path\":\"%s\"}}", out);
	ck_assert_int_eq(reply_code(r), 1001);
	json_decref(r);

	/* ermctl, end to end. */
	{
		const char	*put[] = { "storage", "put", "k5", src, NULL };
		const char	*get[] = { "storage", "get", "k5", out, NULL };
		const char	*chk[] = { "storage", "check", NULL };
		const char	*sts[] = { "storage", "status", NULL };

		unlink(out);
		ck_assert_int_eq(ermctl(&d, buf, sizeof(buf), put), 0);
		ck_assert_ptr_nonnull(strstr(buf, "backend=web\n"));
		ck_assert_int_eq(ermctl(&d, buf, sizeof(buf), get), 0);
		ck_assert(same_file(src, out));
		ck_assert_int_eq(ermctl(&d, buf, sizeof(buf), chk), 0);
		ck_assert_int_eq(ermctl(&d, buf, sizeof(buf), sts), 0);
		ck_assert_ptr_nonnull(strstr(buf, "current=web\n"));
		nginx_stop(&n);
		/* One failed check of three: still healthy, exit 0. */
		ck_assert_int_eq(ermctl(&d, buf, sizeof(buf), chk), 0);
	}

	r = call("{\"id\":11,\"method\":\"metrics.prometheus\"}");
	ck_assert_ptr_nonnull(strstr(str(result(r), "text"),
	    "ermd_storage_backend_healthy{backend=\"web\"} 1\n"));
	ck_assert_ptr_nonnull(strstr(str(result(r), "text"),
	    "ermd_storage_puts_total{backend=\"web\",result=\"error\"} 1\n"));
	json_decref(r);
	close(ev);
	assert_serves(&d);
	stop();
}
END_TEST

/* TLS options: a CA file, no CA file, verification off. */
START_TEST(tls_backends)
{
	struct nginx	 n;
	char		 src[200];
	json_t		*r, *s;

	if (!have_nginx())
		return;
	daemon_prepare(&d);
	nginx_init(&n, 1);
	start("[storage]\n"
	    "unhealthy_threshold = 1\n"
	    "check_interval_ms = 3600000\n"
	    "[backend.ca]\n"
	    "url = https://127.0.0.1:%d/store\n"
	    "ca_file = %s/cert.pem\n"
	    "[backend.noca]\n"
	    "url = https://127.0.0.1:%d/store\n"
	    "[backend.insecure]\n"
	    "url = https://127.0.0.1:%d/store\n"
	    "tls_verify = false\n", NULL, n.port, n.dir, n.port, n.port);
	r = call("{\"id\":1,\"method\":\"storage.check\"}");
	s = result(r);
	ck_assert(json_is_true(json_object_get(in_status(s, "ca"),
	    "healthy")));
	ck_assert(json_is_false(json_object_get(in_status(s, "noca"),
	    "healthy")));
	ck_assert_ptr_nonnull(strstr(str(in_status(s, "noca"), "last_error"),
	    "certificate"));
	ck_assert(json_is_true(json_object_get(in_status(s, "insecure"),
	    "healthy")));
	json_decref(r);
	path(src, sizeof(src), "src");
	make_file(src, 5000, 'x');
	r = call("{\"id\":2,\"method\":\"storage.put\",\"params\":"
	    "{\"key\":\"t\",\"path\":\"%s\"}}", src);
	ck_assert_str_eq(tried(result(r)), "ca:ok");
	json_decref(r);
	nginx_stop(&n);
	stop();
}
END_TEST

/* Is a tmpfs test possible here? Mounting needs root. */
static int
can_mount(void)
{
	if (geteuid() == 0)
		return (1);
	fprintf(stderr, "not root: the tmpfs tests are skipped\n");
	return (0);
}

/*
 * A dir backend on a 1 MiB tmpfs: a 2 MiB put runs out of space half way,
 * leaves nothing behind and falls back; filled up, the backend fails its
 * checks; emptied, it passes again.
 */
START_TEST(full_tmpfs)
{
	char	 full[200], src[200], fill[220], buf[4096];
	json_t	*r;
	int	 fd;
	ssize_t	 w;

	if (!can_mount())
		return;
	daemon_prepare(&d);
	mkdir_in("full", 0755);
	mkdir_in("a", 0755);
	path(full, sizeof(full), "full");
	ck_assert_int_eq(mount("tmpfs", full, "tmpfs", 0, "size=1m"), 0);
	note("umount %s", full);
	start("[storage]\n"
	    "unhealthy_threshold = 1\n"
	    "healthy_threshold = 1\n"
	    "check_interval_ms = 3600000\n"
	    "[backend.full]\n"
	    "path = %s\n"
	    "[backend.a]\n"
	    "path = %s/a\n"
	    "priority = 1\n", NULL, full, d.dir);

	path(src, sizeof(src), "big");
	make_file(src, 2 << 20, -1);
	r = call("{\"id\":1,\"method\":\"storage.put\",\"params\":"
	    "{\"key\":\"big\",\"path\":\"%s\"}}", src);
	ck_assert_str_eq(tried(result(r)), "full:ENOSPC,a:ok");
	json_decref(r);
	/* Nothing half written: no object, no temp file. */
	ck_assert_int_eq(count_entries(full, ""), 0);

	/* Fill it to the last byte: the checks fail. */
	snprintf(fill, sizeof(fill), "%s/filler", full);
	fd = open(fill, O_WRONLY | O_CREAT, 0600);
	memset(buf, 'f', sizeof(buf));
	while ((w = write(fd, buf, sizeof(buf))) > 0)
		;
	ck_assert_int_eq(errno, ENOSPC);
	close(fd);
	ck_assert_int_eq(healthy_after_check("full"), 0);
	{
		const char	*chk[] = { "storage", "check", "full", NULL };

		/* Unhealthy after the check: exit 1, for scripts. */
		ck_assert_int_eq(ermctl(&d, NULL, 0, chk), 1);
	}
	r = call("{\"id\":2,\"method\":\"storage.status\"}");
	ck_assert_ptr_nonnull(strstr(str(in_status(result(r), "full"),
	    "last_error"), "No space left on device"));
	json_decref(r);
	path(src, sizeof(src), "small");
	make_file(src, 4096, 's');
	r = call("{\"id\":3,\"method\":\"storage.put\",\"params\":"
	    "{\"key\":\"small\",\"path\":\"%s\"}}", src);
	ck_assert_str_eq(tried(result(r)), "a:ok");
	json_decref(r);

	unlink(fill);
	ck_assert_int_eq(healthy_after_check("full"), 1);
	r = call("{\"id\":4,\"method\":\"storage.put\",\"params\":"
	    "{\"key\":\"small\",\"path\":\"%s\"}}", src);
	ck_assert_str_eq(tried(result(r)), "full:ok");
	json_decref(r);
	assert_serves(&d);
	close(cfd);
	cfd = -1;
	ck_assert_int_eq(daemon_stop_keep(&d), 0);
	ck_assert_int_eq(umount(full), 0);
	snprintf(buf, sizeof(buf), "rm -rf %s", d.dir);
	(void)!system(buf);
	d.dir[0] = '\0';
}
END_TEST

/* A read-only directory (a read-only mount as root, mode 0555 if not). */
START_TEST(read_only_directory)
{
	char	 ro[200], src[200], buf[300];
	json_t	*r;
	int	 root = geteuid() == 0;

	daemon_prepare(&d);
	mkdir_in("ro", 0755);
	mkdir_in("a", 0755);
	path(ro, sizeof(ro), "ro");
	if (root) {
		ck_assert_int_eq(mount("tmpfs", ro, "tmpfs", MS_RDONLY,
		    "size=1m"), 0);
		note("umount %s", ro);
	} else
		chmod(ro, 0555);
	/* The check at start fails once; the one below, twice. */
	start("[storage]\n"
	    "unhealthy_threshold = 2\n"
	    "check_interval_ms = 3600000\n"
	    "[backend.ro]\n"
	    "path = %s\n"
	    "[backend.a]\n"
	    "path = %s/a\n"
	    "priority = 1\n", NULL, ro, d.dir);
	path(src, sizeof(src), "src");
	make_file(src, 10000, 'r');
	r = call("{\"id\":1,\"method\":\"storage.put\",\"params\":"
	    "{\"key\":\"x\",\"path\":\"%s\"}}", src);
	ck_assert_str_eq(tried(result(r)), root ? "ro:EROFS,a:ok" :
	    "ro:EACCES,a:ok");
	json_decref(r);
	ck_assert_int_eq(healthy_after_check("ro"), 0);
	ck_assert_int_eq(healthy_after_check("a"), 1);
	if (cfd != -1)
		close(cfd);
	cfd = -1;
	ck_assert_int_eq(daemon_stop_keep(&d), 0);
	if (root)
		ck_assert_int_eq(umount(ro), 0);
	snprintf(buf, sizeof(buf), "rm -rf %s", d.dir);
	(void)!system(buf);
	d.dir[0] = '\0';
}
END_TEST

/* 1000 selects under weights 1, 3, 6: each within ±5% of its share. */
START_TEST(weighted_round_robin_1000_selects)
{
	static const char *const names[] = { "x", "y", "z" };
	const int	 want[] = { 100, 300, 600 };
	int		 got[3] = { 0, 0, 0 }, i, k;
	char		 req[256], src[200];
	json_t		*r;

	daemon_prepare(&d);
	mkdir_in("x", 0755);
	mkdir_in("y", 0755);
	mkdir_in("z", 0755);
	start("[storage]\n"
	    "policy = round_robin\n"
	    "[backend.x]\npath = %1$s/x\nweight = 1\n"
	    "[backend.y]\npath = %1$s/y\nweight = 3\n"
	    "[backend.z]\npath = %1$s/z\nweight = 6\n", NULL, d.dir);
	/* Pipelined, to keep it quick; replies come back in order here. */
	for (i = 0; i < 1000; i++) {
		snprintf(req, sizeof(req), "{\"id\":%d,\"method\":"
		    "\"storage.select\"}", i);
		raw_send_frame(cfd, req);
	}
	for (i = 0; i < 1000; i++) {
		ck_assert_ptr_nonnull(r = raw_recv(cfd, 5000));
		for (k = 0; k < 3; k++)
			if (strcmp(str(result(r), "backend"), names[k]) == 0)
				got[k]++;
		json_decref(r);
	}
	for (k = 0; k < 3; k++)
		ck_assert_msg(got[k] >= want[k] - 50 && got[k] <= want[k] + 50,
		    "%s: %d of 1000, want %d ± 50", names[k], got[k], want[k]);

	r = call("{\"id\":1,\"method\":\"storage.select\",\"params\":"
	    "{\"exclude\":[\"z\",\"y\"]}}");
	ck_assert_str_eq(str(result(r), "backend"), "x");
	ck_assert_str_eq(str(result(r), "type"), "dir");
	json_decref(r);
	ck_assert_int_eq(code_and_free(call("{\"id\":1,\"method\":"
	    "\"storage.select\",\"params\":{\"exclude\":[\"x\",\"y\","
	    "\"z\"]}}")), 1007);
	ck_assert_int_eq(code_and_free(call("{\"id\":1,\"method\":"
	    "\"storage.select\",\"params\":{\"exclude\":[\"w\"]}}")), 1001);
	ck_assert_int_eq(code_and_free(call("{\"id\":1,\"method\":"
	    "\"storage.select\",\"params\":{\"exclude\":\"x\"}}")), -32602);

	/* Puts follow the same rotation: 10 puts land 1, 3, 6. */
	path(src, sizeof(src), "src");
	make_file(src, 100, 'p');
	for (i = 0; i < 10; i++) {
		r = call("{\"id\":1,\"method\":\"storage.put\",\"params\":"
		    "{\"key\":\"k%d\",\"path\":\"%s\"}}", i, src);
		ck_assert_int_eq(code_and_free(r), 0);
	}
	for (k = 0; k < 3; k++) {
		char	p[200];

		path(p, sizeof(p), names[k]);
		ck_assert_int_eq(count_entries(p, "k"), want[k] / 100);
	}
	assert_serves(&d);
	stop();
}
END_TEST

/*
 * Passive ejection on the manual clock: each ejection in a row lasts
 * eject_base_ms longer, up to eject_max_ms; time ends it, and so does a
 * passing active check.
 */
START_TEST(ejection_times_grow_per_ejection)
{
	static const char *const args[] = { "--manual-clock", NULL };
	const int64_t	 want[] = { 1000, 2000, 2500, 2500 };
	json_t		*r, *b;
	json_int_t	 now, until;
	int		 ev, k, i;

	daemon_prepare(&d);
	mkdir_in("a", 0755);
	start("[storage]\n"
	    "eject_consecutive_failures = 3\n"
	    "eject_base_ms = 1000\n"
	    "eject_max_ms = 2500\n"
	    "check_interval_ms = 3600000\n"
	    "[backend.a]\npath = %s/a\n", args, d.dir);
	/* The first check (due at start) runs now, not in the middle. */
	ck_assert_int_eq(healthy_after_check("a"), 1);
	ev = events_conn();
	for (k = 0; k < 4; k++) {
		for (i = 0; i < 3; i++) {
			r = call("{\"id\":1,\"method\":\"storage.report\","
			    "\"params\":{\"backend\":\"a\",\"ok\":false,"
			    "\"error\":{\"errno\":\"EIO\",\"message\":"
			    "\"disk said no\"}}}");
			ck_assert_int_eq(json_is_true(json_object_get(
			    result(r), "healthy")), i < 2);
			json_decref(r);
		}
		expect_event(ev, "a", 0, "ejected");
		r = call("{\"id\":1,\"method\":\"ping\"}");
		now = json_integer_value(json_object_get(result(r), "now"));
		json_decref(r);
		r = call("{\"id\":1,\"method\":\"storage.status\"}");
		b = in_status(result(r), "a");
		until = json_integer_value(json_object_get(b,
		    "ejected_until"));
		ck_assert_int_eq(until - now, want[k]);
		ck_assert_str_eq(str(b, "last_error"), "disk said no");
		ck_assert(json_is_false(json_object_get(b, "healthy")));
		json_decref(r);
		r = call("{\"id\":1,\"method\":\"storage.select\"}");
		ck_assert_int_eq(code_and_free(r), 1007);
		r = call("{\"id\":1,\"method\":\"debug.advance\","
		    "\"params\":{\"ms\":%lld}}", (long long)want[k] - 1);
		json_decref(r);
		r = call("{\"id\":1,\"method\":\"storage.report\",\"params\":"
		    "{\"backend\":\"a\",\"ok\":true,\"latency_ms\":3}}");
		ck_assert(json_is_false(json_object_get(result(r),
		    "healthy")));
		json_decref(r);
		r = call("{\"id\":1,\"method\":\"debug.advance\","
		    "\"params\":{\"ms\":1}}");
		json_decref(r);
		expect_event(ev, "a", 1, "ejection_ended");
	}
	/* A missing object is not the backend's fault: not counted. */
	for (i = 0; i < 5; i++) {
		r = call("{\"id\":1,\"method\":\"storage.report\",\"params\":"
		    "{\"backend\":\"a\",\"ok\":false,\"error\":{\"http_status\":"
		    "404}}}");
		ck_assert(json_is_true(json_object_get(result(r), "healthy")));
		json_decref(r);
	}
	/* Ejected again; a passing check ends it at once. */
	for (i = 0; i < 3; i++)
		json_decref(call("{\"id\":1,\"method\":\"storage.report\","
		    "\"params\":{\"backend\":\"a\",\"ok\":false}}"));
	expect_event(ev, "a", 0, "ejected");
	ck_assert_int_eq(healthy_after_check("a"), 1);
	expect_event(ev, "a", 1, "check_passed");

	/* Bad reports. */
	ck_assert_int_eq(code_and_free(call("{\"id\":1,\"method\":"
	    "\"storage.report\",\"params\":{\"backend\":\"zz\",\"ok\":true}}")),
	    1001);
	ck_assert_int_eq(code_and_free(call("{\"id\":1,\"method\":"
	    "\"storage.report\",\"params\":{\"backend\":\"a\"}}")), -32602);
	r = call("{\"id\":1,\"method\":\"storage.report\",\"params\":"
	    "{\"backend\":\"a\",\"ok\":false,\"error\":{\"bogus\":1}}}");
	ck_assert_str_eq(str(json_object_get(json_object_get(r, "error"),
	    "data"), "field"), "error.bogus");
	json_decref(r);
	ck_assert_int_eq(code_and_free(call("{\"id\":1,\"method\":"
	    "\"storage.report\",\"params\":{\"backend\":\"a\",\"ok\":false,"
	    "\"error\":{\"http_status\":99}}}")), -32602);
	ck_assert_int_eq(code_and_free(call("{\"id\":1,\"method\":"
	    "\"storage.check\",\"params\":{\"backend\":\"zz\"}}")), 1001);
	close(ev);
	assert_serves(&d);
	stop();
}
END_TEST

/* Wait (busy) until a name starting with prefix appears in dir. */
static int
appears(const char *dir, const char *prefix, int ms)
{
	struct timespec	t0, t;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		if (count_entries(dir, prefix) > 0)
			return (1);
		clock_gettime(CLOCK_MONOTONIC, &t);
		if ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) /
		    1000000 > ms)
			return (0);
	}
}

/*
 * kill -9 while a put is being written, to a dir backend and to nginx:
 * the key never holds part of the object; the temp file left in the dir
 * backend is removed when ermd starts again.
 */
START_TEST(kill9_during_put_leaves_nothing_half)
{
	struct nginx	 n;
	char		 src[200], src2[200], dir[200], key[300], body[300];
	char		 body2[300];
	json_t		*r;
	int		 fd, web = have_nginx();

	daemon_prepare(&d);
	mkdir_in("a", 0755);
	if (web)
		nginx_init(&n, 0);
	path(src, sizeof(src), "big");
	make_file(src, 96 << 20, -1);
	path(dir, sizeof(dir), "a");
	snprintf(key, sizeof(key), "%s/k", dir);
	start("[storage]\n"
	    "check_interval_ms = 3600000\n"
	    "[backend.a]\npath = %s/a\n", NULL, d.dir);

	fd = raw_connect(d.sock);
	snprintf(body, sizeof(body), "{\"id\":1,\"method\":\"storage.put\","
	    "\"params\":{\"key\":\"k\",\"path\":\"%s\"}}", src);
	raw_send_frame(fd, body);
	ck_assert_msg(appears(dir, ".ermd-tmp-", 10000), "no temp file seen");
	daemon_kill9(&d);
	ck_assert(!exists(key));
	ck_assert_int_eq(count_entries(dir, ".ermd-tmp-"), 1);
	close(fd);
	close(cfd);
	cfd = -1;

	/* Started again: the leftover goes, and a put goes through. */
	daemon_restart(&d);
	note("kill %d %s", (int)d.pid, d.dir);
	cfd = raw_connect(d.sock);
	for (fd = 0; fd < 500 && count_entries(dir, ".ermd-tmp-") > 0; fd++)
		sleep_ms(10);
	ck_assert_int_eq(count_entries(dir, ".ermd-tmp-"), 0);
	ck_assert(!exists(key));
	r = call("%s", body);
	ck_assert_str_eq(str(result(r), "backend"), "a");
	json_decref(r);
	ck_assert(same_file(src, key));

	/* A put over the key, killed half way, leaves the old object. */
	path(src2, sizeof(src2), "big2");
	make_file(src2, (96 << 20) + 1, -1);
	fd = raw_connect(d.sock);
	snprintf(body2, sizeof(body2), "{\"id\":1,\"method\":\"storage.put\","
	    "\"params\":{\"key\":\"k\",\"path\":\"%s\"}}", src2);
	raw_send_frame(fd, body2);
	ck_assert_msg(appears(dir, ".ermd-tmp-", 10000), "no temp file seen");
	daemon_kill9(&d);
	close(fd);
	close(cfd);
	ck_assert(same_file(src, key));
	unlink(src2);
	daemon_restart(&d);
	note("kill %d %s", (int)d.pid, d.dir);
	cfd = raw_connect(d.sock);

	/* The same against nginx: it keeps the body aside until the
	 * request is complete, and drops it when the connection dies. */
	if (web) {
		char	tmp[300], p[300], conf[512];

		snprintf(conf, sizeof(conf), "[storage]\n"
		    "check_interval_ms = 3600000\n"
		    "[backend.web]\nurl = http://127.0.0.1:%d/store\n",
		    n.port);
		daemon_write_conf(&d, conf);
		ck_assert_int_eq(code_and_free(call("{\"id\":1,\"method\":"
		    "\"config.reload\"}")), 0);
		fd = raw_connect(d.sock);
		snprintf(body, sizeof(body), "{\"id\":1,\"method\":"
		    "\"storage.put\",\"params\":{\"key\":\"w\",\"path\":"
		    "\"%s\"}}", src);
		raw_send_frame(fd, body);
		snprintf(tmp, sizeof(tmp), "%s/tmp/body", n.dir);
		ck_assert_msg(appears(tmp, "", 10000), "nginx got no body");
		daemon_kill9(&d);
		close(fd);
		close(cfd);
		cfd = -1;
		for (fd = 0; fd < 500 && count_entries(tmp, "") > 0; fd++)
			sleep_ms(10);
		ck_assert_int_eq(count_entries(tmp, ""), 0);
		snprintf(p, sizeof(p), "%s/data/store/w", n.dir);
		ck_assert(!exists(p));
		nginx_stop(&n);
	} else {
		close(cfd);
		cfd = -1;
		daemon_kill9(&d);
	}
	snprintf(body, sizeof(body), "rm -rf %s", d.dir);
	(void)!system(body);
	d.dir[0] = '\0';
}
END_TEST

/* Connect as another uid (and group), call, return the reply's code. */
static int
call_as(uid_t uid, gid_t gid, const char *json)
{
	int	p[2], status, code = -1;
	pid_t	pid;

	ck_assert_int_eq(pipe(p), 0);
	pid = fork();
	if (pid == 0) {
		int	 fd;
		json_t	*r;

		if (setgroups(0, NULL) == -1 || setgid(gid) == -1 ||
		    setuid(uid) == -1)
			_exit(100);
		if ((fd = raw_connect(d.sock)) == -1)
			_exit(101);
		r = raw_call(fd, json);
		code = r == NULL ? -1 : reply_code(r);
		if (write(p[1], &code, sizeof(code)) != sizeof(code))
			_exit(102);
		_exit(0);
	}
	close(p[1]);
	if (read(p[0], &code, sizeof(code)) != sizeof(code))
		code = -2;
	close(p[0]);
	waitpid(pid, &status, 0);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	    "child failed with %d", WEXITSTATUS(status));
	return (code);
}

static int
put_code(const char *key, const char *p)
{
	return (code_and_free(call("{\"id\":1,\"method\":\"storage.put\","
	    "\"params\":{\"key\":\"%s\",\"path\":\"%s\"}}", key, p)));
}

static int
get_code(const char *key, const char *p)
{
	return (code_and_free(call("{\"id\":1,\"method\":\"storage.get\","
	    "\"params\":{\"key\":\"%s\",\"path\":\"%s\"}}", key, p)));
}

/*
 * Keys never leave the backend; paths are absolute, plain, free of
 * symlinks, and read or written only as the peer itself could.
 */
START_TEST(keys_and_paths_are_confined)
{
	char		 src[200], p[300], q[300], req[1024], longkey[300];
	struct stat	 sb;
	json_t		*r;

	daemon_prepare(&d);
	mkdir_in("a", 0755);
	start("[daemon]\nsocket_mode = 0666\n"
	    "[storage]\ncheck_interval_ms = 3600000\n"
	    "[backend.a]\npath = %s/a\n", NULL, d.dir);
	chmod(d.dir, 0755);
	path(src, sizeof(src), "src");
	make_file(src, 1000, 'c');

	ck_assert_int_eq(put_code("../x", src), -32602);
	ck_assert_int_eq(put_code("a/b", src), -32602);
	ck_assert_int_eq(put_code("", src), -32602);
	ck_assert_int_eq(put_code(".hidden", src), -32602);
	memset(longkey, 'k', 256);
	longkey[256] = '\0';
	ck_assert_int_eq(put_code(longkey, src), -32602);
	longkey[255] = '\0';
	ck_assert_int_eq(put_code(longkey, src), 0);
	r = call("{\"id\":1,\"method\":\"storage.put\",\"params\":{\"key\":"
	    "\"x\",\"path\":\"%s\",\"extra\":1}}", src);
	ck_assert_str_eq(str(json_object_get(json_object_get(r, "error"),
	    "data"), "field"), "extra");
	json_decref(r);

	ck_assert_int_eq(put_code("x", "relative/file"), -32602);
	snprintf(p, sizeof(p), "%s/a/../src", d.dir);
	ck_assert_int_eq(put_code("x", p), -32602);
	snprintf(p, sizeof(p), "%s/", d.dir);
	ck_assert_int_eq(put_code("x", p), -32602);
	/* Symlinks, to the file and in the way; not regular; missing. */
	snprintf(p, sizeof(p), "%s/link", d.dir);
	ck_assert_int_eq(symlink(src, p), 0);
	ck_assert_int_eq(put_code("x", p), 1002);
	snprintf(q, sizeof(q), "%s/dirlink", d.dir);
	ck_assert_int_eq(symlink(d.dir, q), 0);
	snprintf(p, sizeof(p), "%s/dirlink/src", d.dir);
	ck_assert_int_eq(put_code("x", p), 1002);
	ck_assert_int_eq(put_code("x", d.dir), 1002);
	ck_assert_int_eq(put_code("x", "/dev/null"), 1002);
	snprintf(p, sizeof(p), "%s/missing", d.dir);
	r = call("{\"id\":1,\"method\":\"storage.put\",\"params\":"
	    "{\"key\":\"x\",\"path\":\"%s\"}}", p);
	ck_assert_int_eq(reply_code(r), 1006);
	ck_assert_str_eq(str(json_object_get(json_object_get(r, "error"),
	    "data"), "errno"), "ENOENT");
	json_decref(r);

	ck_assert_int_eq(put_code("x", src), 0);
	/* get: a symlink at the target is refused, and left alone. */
	snprintf(p, sizeof(p), "%s/link", d.dir);
	ck_assert_int_eq(get_code("x", p), 1002);
	ck_assert_int_eq(lstat(p, &sb), 0);
	ck_assert(S_ISLNK(sb.st_mode));
	snprintf(p, sizeof(p), "%s/nodir/out", d.dir);
	ck_assert_int_eq(get_code("x", p), 1006);
	ck_assert_int_eq(get_code("missing-key", src), 1001);

	if (geteuid() == 0) {
		/* As nobody: a root-only file, a closed directory, a
		 * directory nobody may not write, then one it may. */
		mkdir_in("closed", 0700);
		mkdir_in("open", 0777);
		chmod(src, 0600);
		snprintf(req, sizeof(req), "{\"id\":1,\"method\":"
		    "\"storage.put\",\"params\":{\"key\":\"n\",\"path\":"
		    "\"%s\"}}", src);
		ck_assert_int_eq(call_as(65534, 65534, req), 1002);
		chmod(src, 0644);
		ck_assert_int_eq(call_as(65534, 65534, req), 0);
		snprintf(p, sizeof(p), "%s/closed/f", d.dir);
		make_file(p, 10, 'z');
		snprintf(req, sizeof(req), "{\"id\":1,\"method\":"
		    "\"storage.put\",\"params\":{\"key\":\"n\",\"path\":"
		    "\"%s\"}}", p);
		ck_assert_int_eq(call_as(65534, 65534, req), 1002);
		snprintf(req, sizeof(req), "{\"id\":1,\"method\":"
		    "\"storage.get\",\"params\":{\"key\":\"n\",\"path\":"
		    "\"%s/out\"}}", d.dir);
		ck_assert_int_eq(call_as(65534, 65534, req), 1002);
		/* Replacing root's file in a directory nobody may write. */
		snprintf(req, sizeof(req), "{\"id\":1,\"method\":"
		    "\"storage.get\",\"params\":{\"key\":\"n\",\"path\":"
		    "\"%s\"}}", src);
		ck_assert_int_eq(call_as(65534, 65534, req), 1002);
		snprintf(req, sizeof(req), "{\"id\":1,\"method\":"
		    "\"storage.get\",\"params\":{\"key\":\"n\",\"path\":"
		    "\"%s/open/out\"}}", d.dir);
		ck_assert_int_eq(call_as(65534, 65534, req), 0);
		snprintf(p, sizeof(p), "%s/open/out", d.dir);
		ck_assert_int_eq(stat(p, &sb), 0);
		ck_assert_int_eq(sb.st_uid, 65534);
		ck_assert_int_eq(sb.st_size, 1000);
		/* In a sticky directory, root's file is not nobody's. */
		snprintf(p, sizeof(p), "%s/open", d.dir);
		chmod(p, 01777);
		snprintf(p, sizeof(p), "%s/open/roots", d.dir);
		make_file(p, 10, 'r');
		chmod(p, 0666);
		snprintf(req, sizeof(req), "{\"id\":1,\"method\":"
		    "\"storage.get\",\"params\":{\"key\":\"n\",\"path\":"
		    "\"%s\"}}", p);
		ck_assert_int_eq(call_as(65534, 65534, req), 1002);
	}
	assert_serves(&d);
	stop();
}
END_TEST

/*
 * A loopback listener that never answers: the kernel completes each
 * handshake into the backlog and the request sits there unread.
 */
static int
silent_listener(int *port)
{
	struct sockaddr_in	sin;
	socklen_t		sl = sizeof(sin);
	int			fd;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ne(fd, -1);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	ck_assert_int_eq(listen(fd, 64), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sin, &sl), 0);
	*port = ntohs(sin.sin_port);
	return (fd);
}

/* The value of one Prometheus sample line (name{labels}), -1 if absent. */
static long long
sample(const char *line)
{
	json_t		*r = call("{\"id\":1,\"method\":"
	    "\"metrics.prometheus\"}");
	const char	*t = str(result(r), "text"), *p;
	char		 want[300];
	long long	 v = -1;

	snprintf(want, sizeof(want), "\n%s ", line);
	if ((p = strstr(t, want)) != NULL)
		v = strtoll(p + strlen(want), NULL, 10);
	json_decref(r);
	return (v);
}

/* The daemon clock (manual): ping's now. */
static json_int_t
daemon_now(void)
{
	json_t		*r = call("{\"id\":1,\"method\":\"ping\"}");
	json_int_t	 now = json_integer_value(json_object_get(result(r),
	    "now"));

	json_decref(r);
	return (now);
}

/*
 * Is msg the last_error of a check that ran out of its ms? The check's
 * own timer is its deadline (libcurl's comes a second later), so the
 * message is always the same.
 */
static int
check_timed_out(const char *msg, int ms)
{
	char	ours[64];

	snprintf(ours, sizeof(ours), "check: timed out after %d ms", ms);
	return (strcmp(msg, ours) == 0);
}

/*
 * check_timeout_ms: an http backend whose server takes the connection and
 * never answers fails each check when the timeout runs out, and
 * unhealthy_threshold such failures (the one at start included) take it
 * out. The manual clock holds the periodic checks still; the timeout
 * itself is real time (storage.c says why).
 */
START_TEST(check_timeout_marks_unhealthy)
{
	static const char *const args[] = { "--manual-clock", NULL };
	const char	*chk[] = { "storage", "check", "hang", NULL };
	const char	*sts[] = { "storage", "status", NULL };
	char		 url[100], buf[4096], want[1024], lasterr[256];
	json_t		*r, *s, *b, *e;
	json_int_t	 now;
	int		 lfd, port, ev;

	daemon_prepare(&d);
	mkdir_in("a", 0755);
	lfd = silent_listener(&port);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/store", port);
	start("[storage]\n"
	    "check_interval_ms = 3600000\n"
	    "check_timeout_ms = 300\n"
	    "unhealthy_threshold = 3\n"
	    "healthy_threshold = 2\n"
	    "eject_consecutive_failures = 0\n"
	    "[backend.hang]\n"
	    "url = %s\n"
	    "[backend.a]\n"
	    "path = %s/a\n"
	    "priority = 1\n", args, url, d.dir);
	ev = events_conn();

	/* The check at start and this one: two failures, still healthy. */
	r = call("{\"id\":1,\"method\":\"storage.check\",\"params\":"
	    "{\"backend\":\"hang\"}}");
	s = result(r);
	b = in_status(s, "hang");
	ck_assert(json_is_true(json_object_get(b, "healthy")));
	ck_assert_msg(check_timed_out(str(b, "last_error"), 300), "%s",
	    str(b, "last_error"));
	ck_assert_str_eq(str(s, "current"), "hang");
	json_decref(r);
	ck_assert_int_eq(sample("ermd_storage_checks_total{backend=\"hang\","
	    "result=\"error\"}"), 2);

	/* The third: unhealthy, with an event naming the timeout. */
	r = call("{\"id\":1,\"method\":\"storage.check\",\"params\":"
	    "{\"backend\":\"hang\"}}");
	ck_assert(json_is_false(json_object_get(in_status(result(r), "hang"),
	    "healthy")));
	json_decref(r);
	e = next_event(ev, "hang");
	ck_assert(json_is_false(json_object_get(e, "healthy")));
	ck_assert_str_eq(str(e, "reason"), "checks_failed");
	ck_assert_msg(check_timed_out(str(e, "error"), 300), "%s",
	    str(e, "error"));
	ck_assert_ptr_null(json_object_get(e, "ejected_until"));
	json_decref(e);

	/* storage.status, member by member. */
	now = daemon_now();
	r = call("{\"id\":1,\"method\":\"storage.status\"}");
	s = result(r);
	ck_assert_str_eq(str(s, "policy"), "failover");
	ck_assert_str_eq(str(s, "current"), "a");
	b = in_status(s, "hang");
	ck_assert_str_eq(str(b, "type"), "http");
	ck_assert_str_eq(str(b, "location"), url);
	ck_assert_int_eq(json_integer_value(json_object_get(b, "priority")),
	    0);
	ck_assert_int_eq(json_integer_value(json_object_get(b, "weight")), 1);
	ck_assert(json_is_false(json_object_get(b, "healthy")));
	ck_assert_msg(check_timed_out(str(b, "last_error"), 300), "%s",
	    str(b, "last_error"));
	snprintf(lasterr, sizeof(lasterr), "%s", str(b, "last_error"));
	ck_assert_int_eq(json_integer_value(json_object_get(b,
	    "last_check_at")), now);
	/* Checks have their own count; consecutive_failures drives
	 * ejection from reports and operations. */
	ck_assert_int_eq(json_integer_value(json_object_get(b,
	    "consecutive_failures")), 0);
	ck_assert_int_eq(json_integer_value(json_object_get(b,
	    "times_ejected")), 0);
	ck_assert_ptr_null(json_object_get(b, "ejected_until"));
	/* No check has passed: no latency to show. */
	ck_assert_ptr_null(json_object_get(b, "latency_ms"));
	ck_assert_uint_eq(json_object_size(b), 10);
	json_decref(r);

	ck_assert_int_eq(sample("ermd_storage_checks_total{backend=\"hang\","
	    "result=\"error\"}"), 3);
	ck_assert_int_eq(sample("ermd_storage_checks_total{backend=\"hang\","
	    "result=\"ok\"}"), 0);
	ck_assert_int_eq(sample("ermd_storage_backend_healthy{backend="
	    "\"hang\"}"), 0);
	r = call("{\"id\":1,\"method\":\"storage.select\"}");
	ck_assert_str_eq(str(result(r), "backend"), "a");
	json_decref(r);

	/* ermctl: status shows the same; check exits 1 (unhealthy). */
	ck_assert_int_eq(ermctl(&d, buf, sizeof(buf), sts), 0);
	snprintf(want, sizeof(want), "policy=failover\n"
	    "backends.0.name=hang\n"
	    "backends.0.type=http\n"
	    "backends.0.location=%s\n"
	    "backends.0.priority=0\n"
	    "backends.0.weight=1\n"
	    "backends.0.healthy=false\n"
	    "backends.0.consecutive_failures=0\n"
	    "backends.0.last_check_at=%lld\n"
	    "backends.0.last_error=%s\n"
	    "backends.0.times_ejected=0\n"
	    "backends.1.name=a\n", url, (long long)now, lasterr);
	ck_assert_msg(strncmp(buf, want, strlen(want)) == 0,
	    "storage status:\n%s\nwant it to start:\n%s", buf, want);
	ck_assert_ptr_nonnull(strstr(buf, "\ncurrent=a\n"));
	ck_assert_int_eq(ermctl(&d, buf, sizeof(buf), chk), 1);
	ck_assert_int_eq(sample("ermd_storage_checks_total{backend=\"hang\","
	    "result=\"error\"}"), 4);

	close(ev);
	close(lfd);
	assert_serves(&d);
	stop();
}
END_TEST

/* Does the check of backend name, run now, pass? (storage.check) */
static json_t *
check_one(const char *name)
{
	json_t	*r = call("{\"id\":1,\"method\":\"storage.check\","
	    "\"params\":{\"backend\":\"%s\"}}", name);
	json_t	*b = json_incref(in_status(result(r), name));

	json_decref(r);
	return (b);
}

/*
 * A dir backend whose check blocks (its probe name made a FIFO: the open
 * for writing waits for a reader): the check fails after check_timeout_ms
 * (set per backend here); the blocked call cannot be interrupted, so until
 * it returns every new check of that backend fails at once, and
 * unhealthy_threshold of them take the backend out. Once unblocked, it
 * comes back after healthy_threshold passing checks.
 */
START_TEST(blocked_dir_check_times_out)
{
	static const char *const args[] = { "--manual-clock", NULL };
	char		 dir[200], fifo[512], probe[256], tok[256];
	char		 evbuf[4096];
	struct inotify_event *ie;
	struct pollfd	 pfd;
	json_t		*b, *e, *r;
	ssize_t		 n, off;
	long long	 ok0;
	int		 ino, ev, rfd, i;

	daemon_prepare(&d);
	mkdir_in("slow", 0755);
	mkdir_in("a", 0755);
	path(dir, sizeof(dir), "slow");
	start("[storage]\n"
	    "check_interval_ms = 3600000\n"
	    "unhealthy_threshold = 3\n"
	    "healthy_threshold = 2\n"
	    "eject_consecutive_failures = 0\n"
	    "[backend.slow]\n"
	    "path = %s\n"
	    "check_timeout_ms = 300\n"
	    "[backend.a]\n"
	    "path = %s/a\n"
	    "priority = 1\n", args, dir, d.dir);
	ev = events_conn();

	/* A passing check shows the probe's name. */
	ino = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	ck_assert_int_ne(ino, -1);
	ck_assert_int_ne(inotify_add_watch(ino, dir, IN_CREATE), -1);
	b = check_one("slow");
	ck_assert(json_is_true(json_object_get(b, "healthy")));
	ck_assert_ptr_null(json_object_get(b, "last_error"));
	json_decref(b);
	probe[0] = '\0';
	n = read(ino, evbuf, sizeof(evbuf));
	for (off = 0; off < n; off += (ssize_t)(sizeof(*ie) + ie->len)) {
		ie = (struct inotify_event *)(void *)(evbuf + off);
		if (ie->len > 0 && strncmp(ie->name, ".ermd-probe-", 12) == 0)
			snprintf(probe, sizeof(probe), "%s", ie->name);
	}
	close(ino);
	ck_assert_msg(probe[0] != '\0', "no probe seen in %s", dir);
	ck_assert_int_eq(count_entries(dir, ""), 0);
	snprintf(fifo, sizeof(fifo), "%s/%s", dir, probe);
	ck_assert_int_eq(mkfifo(fifo, 0600), 0);
	ok0 = sample("ermd_storage_checks_total{backend=\"slow\","
	    "result=\"ok\"}");
	ck_assert_int_eq(ok0, 2);

	/* 1: blocked, fails at its timeout; 2, 3: fail at once. */
	b = check_one("slow");
	ck_assert(json_is_true(json_object_get(b, "healthy")));
	ck_assert_str_eq(str(b, "last_error"), "check: timed out after 300 ms");
	json_decref(b);
	b = check_one("slow");
	ck_assert(json_is_true(json_object_get(b, "healthy")));
	ck_assert_str_eq(str(b, "last_error"),
	    "check: the previous check is still blocked");
	json_decref(b);
	b = check_one("slow");
	ck_assert(json_is_false(json_object_get(b, "healthy")));
	ck_assert_str_eq(str(b, "last_error"),
	    "check: the previous check is still blocked");
	ck_assert_int_eq(json_integer_value(json_object_get(b,
	    "consecutive_failures")), 0);
	ck_assert_ptr_null(json_object_get(b, "ejected_until"));
	ck_assert(json_is_integer(json_object_get(b, "latency_ms")));
	json_decref(b);
	e = next_event(ev, "slow");
	ck_assert(json_is_false(json_object_get(e, "healthy")));
	ck_assert_str_eq(str(e, "reason"), "checks_failed");
	ck_assert_str_eq(str(e, "error"),
	    "check: the previous check is still blocked");
	json_decref(e);
	ck_assert_int_eq(sample("ermd_storage_checks_total{backend=\"slow\","
	    "result=\"error\"}"), 3);
	ck_assert_int_eq(sample("ermd_storage_backend_healthy{backend="
	    "\"slow\"}"), 0);
	r = call("{\"id\":1,\"method\":\"storage.status\"}");
	ck_assert_str_eq(str(result(r), "current"), "a");
	json_decref(r);
	/* a is not held up by slow's blocked check. */
	b = check_one("a");
	ck_assert(json_is_true(json_object_get(b, "healthy")));
	ck_assert_ptr_null(json_object_get(b, "last_error"));
	json_decref(b);

	/* Unblock: read the probe, see the writer close it, remove it. */
	rfd = open(fifo, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	ck_assert_int_ne(rfd, -1);
	pfd.fd = rfd;
	pfd.events = POLLIN;
	tok[0] = '\0';
	for (off = 0;;) {
		pfd.revents = 0;
		ck_assert_int_eq(poll(&pfd, 1, 10000), 1);
		n = read(rfd, tok + off, sizeof(tok) - 1 - (size_t)off);
		if (n == -1 && errno == EAGAIN)
			continue;
		ck_assert_int_ne(n, -1);
		if (n == 0 && off > 0)
			break;		/* the worker closed it */
		off += n;
		tok[off] = '\0';
	}
	close(rfd);
	ck_assert_msg(strncmp(tok, "ermd probe slow ", 16) == 0, "%s", tok);
	ck_assert_int_eq(unlink(fifo), 0);
	/*
	 * The worker's end reaches the loop a moment after it closed the
	 * FIFO; until then a check still fails at once. Then checks pass:
	 * one is not enough, two are.
	 */
	for (i = 0; i < 200; i++) {
		b = check_one("slow");
		json_decref(b);
		if (sample("ermd_storage_checks_total{backend=\"slow\","
		    "result=\"ok\"}") == ok0 + 1)
			break;
	}
	ck_assert_int_lt(i, 200);
	b = check_one("slow");
	ck_assert(json_is_true(json_object_get(b, "healthy")));
	json_decref(b);
	expect_event(ev, "slow", 1, "checks_passed");
	ck_assert_int_eq(count_entries(dir, ""), 0);

	close(ev);
	assert_serves(&d);
	stop();
}
END_TEST

/* Config checking, and reloads that add, keep and drop backends. */
START_TEST(config_check_and_reload)
{
	char		 conf[200], out[4096], want[2048];
	const char	*argv[] = { ermd_path(), "-t", "-c", conf, NULL };
	FILE		*fp;
	json_t		*r, *s;
	int		 h;

	daemon_prepare(&d);
	snprintf(conf, sizeof(conf), "%s/bad.conf", d.dir);
	fp = fopen(conf, "w");
	fputs("[storage]\npolicy = random\n[backend.x]\nweight = -1\n"
	    "[backend.y]\npaht = /x\npriority = 1\n"
	    "[backend.z]\ntype = http\npath = /x\n", fp);
	fclose(fp);
	ck_assert_int_eq(run_prog(out, sizeof(out), argv), 78);
	snprintf(want, sizeof(want),
	    "%1$s:2: policy: 'random' is not one of failover, round_robin\n"
	    "%1$s:4: weight: -1 is out of range (1 to 10000)\n"
	    "%1$s:6: unknown key 'paht' in [backend.y]; did you mean "
	    "'path'?\n"
	    "%1$s:7: [backend.y]: needs path = DIR (type = dir) or url = URL "
	    "(type = http)\n"
	    "%1$s:9: [backend.z]: type = http needs url\n"
	    "%1$s:10: [backend.z]: path is for type = dir\n", conf);
	ck_assert_str_eq(out, want);

	mkdir_in("a", 0755);
	mkdir_in("b", 0755);
	start("[storage]\neject_consecutive_failures = 1\n"
	    "check_interval_ms = 3600000\n"
	    "[backend.a]\npath = %s/a\n", NULL, d.dir);
	/* Let the start-up check finish first: a passing check ends an
	 * ejection, so one landing after the report would undo it. */
	json_decref(call("{\"id\":1,\"method\":\"storage.check\"}"));
	r = call("{\"id\":1,\"method\":\"storage.report\",\"params\":"
	    "{\"backend\":\"a\",\"ok\":false}}");
	ck_assert(json_is_false(json_object_get(result(r), "healthy")));
	json_decref(r);
	/* A backend without a place: the reload is refused. */
	snprintf(out, sizeof(out), "[storage]\neject_consecutive_failures = 1"
	    "\ncheck_interval_ms = 3600000\n[backend.a]\npath = %s/a\n"
	    "[backend.c]\ntype = dir\n", d.dir);
	daemon_write_conf(&d, out);
	r = call("{\"id\":1,\"method\":\"config.reload\"}");
	ck_assert_int_eq(reply_code(r), 1003);
	ck_assert_ptr_nonnull(strstr(json_string_value(json_array_get(
	    json_object_get(json_object_get(json_object_get(r, "error"),
	    "data"), "errors"), 0)), "[backend.c]: needs path"));
	json_decref(r);
	snprintf(out, sizeof(out), "[storage]\neject_consecutive_failures = 1"
	    "\ncheck_interval_ms = 3600000\n[backend.a]\npath = %s/a\n"
	    "[backend.b]\npath = %s/b\n", d.dir, d.dir);
	daemon_write_conf(&d, out);
	r = call("{\"id\":1,\"method\":\"config.reload\"}");
	ck_assert_int_eq(reply_code(r), 0);
	json_decref(r);
	r = call("{\"id\":1,\"method\":\"storage.status\"}");
	s = result(r);
	/* a kept its ejection; b is new and healthy. */
	ck_assert_uint_eq(json_array_size(json_object_get(s, "backends")), 2);
	h = json_is_true(json_object_get(in_status(s, "a"), "healthy"));
	ck_assert_int_eq(h, 0);
	ck_assert(json_is_true(json_object_get(in_status(s, "b"),
	    "healthy")));
	ck_assert_str_eq(str(s, "current"), "b");
	json_decref(r);
	stop();
	d.dir[0] = '\0';
}
END_TEST

int
main(void)
{
	Suite	*s = suite_create("storage_fallback");
	TCase	*tc = tcase_create("storage_fallback");
	SRunner	*sr;
	int	 failed;

	snprintf(notes, sizeof(notes), "/tmp/ermd-storage-notes.%d",
	    (int)getpid());
	tcase_add_unchecked_fixture(tc, NULL, cleanup_notes);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, failover_when_nginx_stops_and_recovery);
	tcase_add_test(tc, tls_backends);
	tcase_add_test(tc, full_tmpfs);
	tcase_add_test(tc, read_only_directory);
	tcase_add_test(tc, weighted_round_robin_1000_selects);
	tcase_add_test(tc, ejection_times_grow_per_ejection);
	tcase_add_test(tc, kill9_during_put_leaves_nothing_half);
	tcase_add_test(tc, keys_and_paths_are_confined);
	tcase_add_test(tc, config_check_and_reload);
	tcase_add_test(tc, check_timeout_marks_unhealthy);
	tcase_add_test(tc, blocked_dir_check_times_out);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return (failed ? 1 : 0);
}
