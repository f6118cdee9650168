/* The regress harness; see harness.h. */

#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <check.h>
#include <sqlite3.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

const char *
ermd_path(void)
{
	const char	*p = getenv("ERMD");

	return (p != NULL ? p : "build/ermd");
}

const char *
ermctl_path(void)
{
	const char	*p = getenv("ERMCTL");

	return (p != NULL ? p : "build/ermctl");
}

static void
sleep_ms(int ms)
{
	struct timespec	ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

void
daemon_write_conf(struct daemon *d, const char *conf)
{
	FILE	*fp;

	ck_assert_ptr_nonnull(fp = fopen(d->conf, "w"));
	fputs(conf, fp);
	fclose(fp);
}

void
daemon_dump_log(const struct daemon *d)
{
	char	buf[4096];
	FILE	*fp;
	size_t	n;

	if ((fp = fopen(d->log, "r")) == NULL)
		return;
	fprintf(stderr, "---- ermd log (%s) ----\n", d->log);
	while ((n = fread(buf, 1, sizeof(buf), fp)) > 0)
		fwrite(buf, 1, n, stderr);
	fprintf(stderr, "---- end of log ----\n");
	fclose(fp);
}

static void
spawn(struct daemon *d)
{
	const char	*argv[32];
	int		 argc = 0, i, fd;
	json_t		*r;

	argv[argc++] = ermd_path();
	argv[argc++] = "-f";
	argv[argc++] = "-v";
	argv[argc++] = "-S";
	argv[argc++] = d->sock;
	argv[argc++] = "-D";
	argv[argc++] = d->state;
	if (d->has_conf) {
		argv[argc++] = "-c";
		argv[argc++] = d->conf;
	}
	for (i = 0; d->args != NULL && d->args[i] != NULL && argc < 30; i++)
		argv[argc++] = d->args[i];
	argv[argc] = NULL;

	d->pid = fork();
	ck_assert_int_ne(d->pid, -1);
	if (d->pid == 0) {
		char	pidbuf[32];

		fd = open(d->log, O_WRONLY | O_CREAT | O_APPEND, 0600);
		dup2(fd, STDERR_FILENO);
		dup2(fd, STDOUT_FILENO);
		for (i = 0; d->env != NULL && d->env[i] != NULL; i++)
			putenv((char *)d->env[i]);
		if (d->nofile > 0) {
			struct rlimit	rl = { (rlim_t)d->nofile,
			    (rlim_t)d->nofile };

			setrlimit(RLIMIT_NOFILE, &rl);
		}
		if (d->pass_fd >= 0) {
			dup2(d->pass_fd, 3);
			snprintf(pidbuf, sizeof(pidbuf), "%d", (int)getpid());
			setenv("LISTEN_FDS", "1", 1);
			setenv("LISTEN_PID", pidbuf, 1);
		}
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	for (i = 0; i < 500; i++) {
		if ((fd = raw_connect(d->sock)) != -1) {
			r = raw_call(fd, "{\"id\":0,\"method\":\"ping\"}");
			close(fd);
			if (r != NULL && reply_code(r) == 0) {
				json_decref(r);
				return;
			}
			json_decref(r);
		}
		if (waitpid(d->pid, NULL, WNOHANG) == d->pid)
			break;
		sleep_ms(10);
	}
	daemon_dump_log(d);
	ck_abort_msg("ermd did not start");
}

void
daemon_prepare(struct daemon *d)
{
	memset(d, 0, sizeof(*d));
	d->pass_fd = -1;
	snprintf(d->dir, sizeof(d->dir), "/tmp/ermd-regress-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(d->dir));
	snprintf(d->sock, sizeof(d->sock), "%s/ermd.sock", d->dir);
	snprintf(d->state, sizeof(d->state), "%s/state", d->dir);
	snprintf(d->log, sizeof(d->log), "%s/ermd.log", d->dir);
	snprintf(d->conf, sizeof(d->conf), "%s/ermd.conf", d->dir);
}

/* The daemon started last: call_on shows its log when a reply is missing. */
static const struct daemon	*last_started;

void
daemon_start_env(struct daemon *d, const char *conf, const char *const *args,
    const char *const *env, int pass_fd)
{
	if (d->dir[0] == '\0')
		daemon_prepare(d);
	d->env = env;
	d->pass_fd = pass_fd;
	if (conf != NULL) {
		daemon_write_conf(d, conf);
		d->has_conf = 1;
	}
	d->args = args;
	last_started = d;
	spawn(d);
}

void
daemon_start(struct daemon *d, const char *conf, const char *const *args)
{
	daemon_prepare(d);
	daemon_start_env(d, conf, args, NULL, -1);
}

void
daemon_restart(struct daemon *d)
{
	last_started = d;
	spawn(d);
}

static int
stop(struct daemon *d, int keep)
{
	int	status, i;
	char	cmd[128];

	if (d->pid <= 0)
		return (-1);
	kill(d->pid, SIGTERM);
	for (i = 0; i < 1000; i++) {
		if (waitpid(d->pid, &status, WNOHANG) == d->pid)
			break;
		sleep_ms(10);
	}
	if (i == 1000) {
		kill(d->pid, SIGKILL);
		waitpid(d->pid, &status, 0);
	}
	d->pid = 0;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", d->dir);
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
		if (!keep) {
			(void)!system(cmd);
			d->dir[0] = '\0';
		}
	} else
		daemon_dump_log(d);
	return (WIFEXITED(status) ? WEXITSTATUS(status) :
	    128 + WTERMSIG(status));
}

int
daemon_stop(struct daemon *d)
{
	return (stop(d, 0));
}

int
daemon_stop_keep(struct daemon *d)
{
	return (stop(d, 1));
}

void
daemon_kill9(struct daemon *d)
{
	kill(d->pid, SIGKILL);
	waitpid(d->pid, NULL, 0);
	d->pid = 0;
}

int
raw_connect(const char *sock)
{
	struct sockaddr_un	sun;
	int			fd;

	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return (-1);
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", sock);
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		close(fd);
		return (-1);
	}
	return (fd);
}

void
raw_send_bytes(int fd, const void *buf, size_t len)
{
	const char	*p = buf;
	ssize_t		 n;

	while (len > 0) {
		n = send(fd, p, len, MSG_NOSIGNAL);
		if (n == -1 && errno == EINTR)
			continue;
		ck_assert_msg(n > 0, "send: %s", strerror(errno));
		p += n;
		len -= (size_t)n;
	}
}

int
raw_try_send_frame(int fd, const char *json)
{
	size_t		 len = strlen(json), off = 0;
	unsigned char	*buf;
	ssize_t		 n;
	int		 rc = 0;

	ck_assert_ptr_nonnull(buf = malloc(len + 4));
	buf[0] = (unsigned char)(len >> 24);
	buf[1] = (unsigned char)(len >> 16);
	buf[2] = (unsigned char)(len >> 8);
	buf[3] = (unsigned char)len;
	memcpy(buf + 4, json, len);
	while (off < len + 4) {
		n = send(fd, buf + off, len + 4 - off, MSG_NOSIGNAL);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0) {
			rc = -1;
			break;
		}
		off += (size_t)n;
	}
	free(buf);
	return (rc);
}

void
raw_send_frame(int fd, const char *json)
{
	ck_assert_msg(raw_try_send_frame(fd, json) == 0, "send: %s",
	    strerror(errno));
}

void
test_uuid(char *out, size_t sz, int group, int n)
{
	snprintf(out, sz, "0190a000-%04x-7000-8000-%012x", group, n);
}

/* Read exactly len bytes; 0 ok, -1 EOF/error/timeout. */
static int
read_full(int fd, void *buf, size_t len, int timeout_ms)
{
	struct pollfd	 pfd = { fd, POLLIN, 0 };
	char		*p = buf;
	ssize_t		 n;

	while (len > 0) {
		if (poll(&pfd, 1, timeout_ms) <= 0)
			return (-1);
		n = read(fd, p, len);
		if (n <= 0)
			return (-1);
		p += n;
		len -= (size_t)n;
	}
	return (0);
}

json_t *
raw_recv(int fd, int timeout_ms)
{
	unsigned char	 hdr[4];
	uint32_t	 len;
	char		*body;
	json_t		*j;

	if (read_full(fd, hdr, 4, timeout_ms) == -1)
		return (NULL);
	len = (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 |
	    (uint32_t)hdr[2] << 8 | hdr[3];
	ck_assert_uint_le(len, 64u << 20);
	body = malloc(len);
	if (read_full(fd, body, len, timeout_ms) == -1) {
		free(body);
		return (NULL);
	}
	j = json_loadb(body, len, 0, NULL);
	free(body);
	ck_assert_ptr_nonnull(j);
	return (j);
}

int
raw_closed(int fd, int timeout_ms)
{
	struct pollfd	pfd = { fd, POLLIN, 0 };
	char		buf[65536];
	ssize_t		n;

	for (;;) {
		if (poll(&pfd, 1, timeout_ms) <= 0)
			return (0);
		n = read(fd, buf, sizeof(buf));
		if (n == 0 || (n == -1 && errno == ECONNRESET))
			return (1);
		if (n == -1)
			return (0);
	}
}

json_t *
raw_call(int fd, const char *json)
{
	json_t	*req, *r;

	req = json_loads(json, 0, NULL);
	raw_send_frame(fd, json);
	for (;;) {
		if ((r = raw_recv(fd, 10000)) == NULL)
			break;
		if (req != NULL && json_equal(json_object_get(r, "id"),
		    json_object_get(req, "id")))
			break;
		json_decref(r);		/* an event or another reply */
	}
	json_decref(req);
	return (r);
}

int
reply_code(const json_t *reply)
{
	json_t	*e = json_object_get(reply, "error");

	if (e == NULL)
		return (0);
	return ((int)json_integer_value(json_object_get(e, "code")));
}

void
assert_serves(const struct daemon *d)
{
	int	 fd;
	json_t	*r;

	fd = raw_connect(d->sock);
	ck_assert_int_ne(fd, -1);
	r = raw_call(fd, "{\"id\":\"still\",\"method\":\"ping\"}");
	ck_assert_ptr_nonnull(r);
	ck_assert(json_is_true(json_object_get(json_object_get(r, "result"),
	    "pong")));
	json_decref(r);
	close(fd);
}

int
run_prog(char *out, size_t outsz, const char *const *argv)
{
	int	p[2], status;
	pid_t	pid;
	size_t	len = 0;
	ssize_t	n;
	char	discard[4096];

	ck_assert_int_eq(pipe(p), 0);
	pid = fork();
	ck_assert_int_ne(pid, -1);
	if (pid == 0) {
		dup2(p[1], STDOUT_FILENO);
		close(p[0]);
		close(p[1]);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	close(p[1]);
	for (;;) {
		if (out != NULL && len + 1 < outsz)
			n = read(p[0], out + len, outsz - 1 - len);
		else
			n = read(p[0], discard, sizeof(discard));
		if (n <= 0)
			break;
		if (out != NULL && len + 1 < outsz)
			len += (size_t)n;
	}
	if (out != NULL && outsz > 0)
		out[len] = '\0';
	close(p[0]);
	waitpid(pid, &status, 0);
	return (WIFEXITED(status) ? WEXITSTATUS(status) :
	    128 + WTERMSIG(status));
}

/* ermctl --socket SOCK ARGS... into argv (32 slots, NULL-terminated). */
static void
ermctl_argv(const struct daemon *d, const char *const *args,
    const char *argv[32])
{
	int	argc = 0, i;

	argv[argc++] = ermctl_path();
	argv[argc++] = "--socket";
	argv[argc++] = d->sock;
	for (i = 0; args[i] != NULL && argc < 31; i++)
		argv[argc++] = args[i];
	argv[argc] = NULL;
}

int
ermctl(const struct daemon *d, char *out, size_t outsz,
    const char *const *args)
{
	const char	*argv[32];

	ermctl_argv(d, args, argv);
	return (run_prog(out, outsz, argv));
}

pid_t
ermctl_start(const struct daemon *d, const char *out_path,
    const char *const *args)
{
	const char	*argv[32];
	int		 fd;
	pid_t		 pid;

	ermctl_argv(d, args, argv);
	ck_assert_int_ne(fd = open(out_path, O_WRONLY | O_CREAT | O_TRUNC,
	    0600), -1);
	ck_assert_int_ne(pid = fork(), -1);
	if (pid == 0) {
		dup2(fd, STDOUT_FILENO);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	close(fd);
	return (pid);
}

double
mono_ms(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6);
}

int64_t
db_int(const struct daemon *d, const char *sql)
{
	sqlite3		*db;
	sqlite3_stmt	*st = NULL;
	char		 path[300];
	int64_t		 v = -1;

	snprintf(path, sizeof(path), "%s/ermd.db", d->state);
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) !=
	    SQLITE_OK) {
		sqlite3_close(db);
		return (-1);
	}
	sqlite3_busy_timeout(db, 5000);
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return (v);
}

json_t *
call_on(int fd, const char *fmt, ...)
{
	char	*buf;
	va_list	 ap;
	json_t	*r;
	int	 n;

	va_start(ap, fmt);
	n = vasprintf(&buf, fmt, ap);
	va_end(ap);
	ck_assert_int_ge(n, 0);
	r = raw_call(fd, buf);
	if (r == NULL && last_started != NULL)
		daemon_dump_log(last_started);
	ck_assert_msg(r != NULL, "no reply to %s", buf);
	free(buf);
	return (r);
}

void
advance_on(int fd, int64_t ms)
{
	json_t	*r = call_on(fd, "{\"id\":1,\"method\":\"debug.advance\","
	    "\"params\":{\"ms\":%lld}}", (long long)ms);

	result(r);
	json_decref(r);
}

json_t *
result(json_t *r)
{
	char	*text;

	if (reply_code(r) != 0) {
		text = json_dumps(r, JSON_COMPACT);
		ck_abort_msg("error %d: %s", reply_code(r), text);
	}
	return (json_object_get(r, "result"));
}

int
mount_small_tmpfs(const char *dir, const char *size)
{
	char	opts[64];

	if (geteuid() != 0) {
		fprintf(stderr, "%s: skipped (mounting a tmpfs needs root)\n",
		    dir);
		return (-1);
	}
	snprintf(opts, sizeof(opts), "size=%s,mode=0700", size);
	if (unshare(CLONE_NEWNS) == -1 || mount(NULL, "/", NULL, MS_REC |
	    MS_PRIVATE, NULL) == -1 || mount("tmpfs", dir, "tmpfs", 0,
	    opts) == -1) {
		fprintf(stderr, "%s: skipped (mount tmpfs: %s)\n", dir,
		    strerror(errno));
		return (-1);
	}
	return (0);
}

void
fill_up(const char *dir)
{
	static char	block[65536];
	char		path[300];
	int		fd;

	snprintf(path, sizeof(path), "%s/filler", dir);
	ck_assert_int_ne(fd = open(path, O_WRONLY | O_CREAT, 0600), -1);
	while (write(fd, block, sizeof(block)) > 0)
		;
	while (write(fd, block, 512) > 0)
		;
	ck_assert_int_eq(errno, ENOSPC);
	close(fd);
}

void
write_text(const char *path, const char *text)
{
	FILE	*fp = fopen(path, "w");

	ck_assert_msg(fp != NULL, "%s: %s", path, strerror(errno));
	fputs(text, fp);
	ck_assert_int_eq(fclose(fp), 0);
}

static char	text_buf[1 << 20];

/* path's text into text_buf; -1 when it cannot be opened. */
static int
slurp(const char *path)
{
	FILE	*fp;
	size_t	 n;

	if ((fp = fopen(path, "r")) == NULL)
		return (-1);
	n = fread(text_buf, 1, sizeof(text_buf) - 1, fp);
	fclose(fp);
	text_buf[n] = '\0';
	return (0);
}

const char *
read_text(const char *path)
{
	ck_assert_msg(slurp(path) == 0, "%s: %s", path, strerror(errno));
	return (text_buf);
}

int
file_has(const char *path, const char *needle, int wait_ms)
{
	int	i;

	for (i = 0; i <= wait_ms / 20; i++) {
		if (i > 0)
			sleep_ms(20);
		if (slurp(path) == 0 && strstr(text_buf, needle) != NULL)
			return (1);
	}
	return (0);
}

int
documented_conf(const char *dst)
{
	char	 line[1024], *p;
	FILE	*in, *out;
	int	 keys = 0, backend = 0;

	ck_assert_ptr_nonnull(in = fopen("conf/ermd.conf", "r"));
	ck_assert_ptr_nonnull(out = fopen(dst, "w"));
	while (fgets(line, sizeof(line), in) != NULL) {
		p = line;
		if (line[0] == '[' || strncmp(line, "#[", 2) == 0)
			backend = strstr(line, "[backend.") != NULL;
		if (backend && strncmp(line, "#url =", 6) == 0)
			continue;
		if (strncmp(line, "#[", 2) == 0) {
			if ((p = strstr(line + 1, ".NAME]")) != NULL)
				memcpy(p, ".doc]\n", 7);
			p = line + 1;
		} else if (line[0] == '#' && line[1] >= 'a' &&
		    line[1] <= 'z' && strstr(line, " =") != NULL) {
			p = line + 1;
			keys++;
		}
		fputs(p, out);
	}
	fclose(in);
	ck_assert_int_eq(fclose(out), 0);
	return (keys);
}

int
daemon_log_has(const struct daemon *d, const char *needle, int wait_ms)
{
	return (file_has(d->log, needle, wait_ms));
}

void
daemon_stop_unmount(struct daemon *d)
{
	char	cmd[300];

	ck_assert_int_eq(daemon_stop_keep(d), 0);
	ck_assert_int_eq(umount(d->state), 0);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", d->dir);
	ck_assert_int_eq(system(cmd), 0);
	d->dir[0] = '\0';
}

int
free_port(void)
{
	struct sockaddr_in	sin;
	socklen_t		len = sizeof(sin);
	int			fd, port;

	fd = socket(AF_INET, SOCK_STREAM, 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	port = ntohs(sin.sin_port);
	close(fd);
	return (port);
}

int
tcp_connect(int port)
{
	struct sockaddr_in	sin;
	int			fd;

	fd = socket(AF_INET, SOCK_STREAM, 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == -1) {
		close(fd);
		return (-1);
	}
	return (fd);
}
