/* The actions of workflow steps, each ending once through its callback. */

#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "backup.h"
#include "classify.h"
#include "clock.h"
#include "erm_proto.h"
#include "ermd.h"
#include "http.h"
#include "log.h"
#include "roots.h"
#include "wf_exec.h"
#include "workflow.h"
#include "worker.h"

enum act_type { A_EXEC, A_SLEEP, A_FILE, A_BACKUP, A_HTTP, A_NONE };
enum file_op { F_WRITE, F_MKDIR, F_DELETE, F_COPY, F_MOVE };

struct file_job;

struct wf_act {
	enum act_type		 type;
	wf_act_done		 done;
	void			*arg;
	struct clock_timer	*timer;		/* deadline or sleep */
	struct clock_timer	*kill_timer;
	int			 stopped, timed_out, ended;
	int64_t			 timeout_ms;

	/* exec */
	pid_t			 pid;
	int			 pidfd, outfd;
	struct event		*ev_out, *ev_exit;
	char			*out;
	size_t			 outlen;
	int			 truncated;

	/* http */
	struct http_req		*http;
	json_t			*expect;	/* borrowed */

	/* the outcome, for a deferred delivery */
	int			 ok;
	json_t			*error, *output;
};

static const char *
errno_name(int err)
{
	const char	*n = errno_to_name(err);

	return (n != NULL ? n : "EIO");
}

static void
act_free(struct wf_act *a)
{
	if (a->timer != NULL)
		clock_timer_free(a->timer);
	if (a->kill_timer != NULL)
		clock_timer_free(a->kill_timer);
	if (a->ev_out != NULL)
		event_free(a->ev_out);
	if (a->ev_exit != NULL)
		event_free(a->ev_exit);
	if (a->outfd != -1)
		close(a->outfd);
	if (a->pidfd != -1)
		close(a->pidfd);
	free(a->out);
	json_decref(a->error);
	json_decref(a->output);
	free(a);
}

static void
deliver(evutil_socket_t fd, short what, void *arg)
{
	struct wf_act	*a = arg;
	json_t		*err = a->error, *out = a->output;

	(void)fd;
	(void)what;
	a->error = a->output = NULL;
	a->done(a->arg, a->ok, err, out);
	act_free(a);
}

/* End the action with its outcome; the callback runs from the loop. */
static void
act_end(struct wf_act *a, int ok, json_t *error, json_t *output)
{
	struct timeval	tv = { 0, 0 };

	if (a->ended) {
		json_decref(error);
		json_decref(output);
		return;
	}
	a->ended = 1;
	a->ok = ok;
	a->error = error;
	a->output = output;
	if (a->timer != NULL)
		clock_timer_cancel(a->timer);
	if (event_base_once(ermd.base, -1, EV_TIMEOUT, deliver, a, &tv) == -1)
		fatalx("workflow: cannot defer an action's end");
}

static json_t *
err_msg(const char *category, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static json_t *
err_msg(const char *category, const char *fmt, ...)
{
	char	 buf[512];
	va_list	 ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (category == NULL)
		return (json_pack("{s:s}", "message", buf));
	return (json_pack("{s:s, s:s}", "category", category, "message",
	    buf));
}

static json_t *
err_errno(int err, const char *what)
{
	return (json_pack("{s:s, s:s}", "errno", errno_name(err), "message",
	    what));
}

/* ---- exec ------------------------------------------------------------ */

/* Bytes as a JSON string, invalid UTF-8 replaced by '?'. */
static json_t *
text_json(const char *p, size_t len)
{
	unsigned char	*s, c, c1;
	json_t		*j;
	size_t		 i = 0, n, k;

	if ((s = malloc(len + 1)) == NULL)
		return (json_string(""));
	memcpy(s, p, len);
	while (i < len) {
		c = s[i];
		c1 = i + 1 < len ? s[i + 1] : 0;
		if (c < 0x80)
			n = 1;
		else if (c >= 0xc2 && c <= 0xdf)
			n = 2;
		else if ((c & 0xf0) == 0xe0 && !(c == 0xe0 && c1 < 0xa0) &&
		    !(c == 0xed && c1 >= 0xa0))
			n = 3;
		else if (c >= 0xf0 && c <= 0xf4 && !(c == 0xf0 && c1 < 0x90) &&
		    !(c == 0xf4 && c1 >= 0x90))
			n = 4;
		else
			n = 0;
		for (k = 1; n > 1 && k < n; k++)
			if (i + k >= len || (s[i + k] & 0xc0) != 0x80)
				n = 0;
		if (n == 0 || s[i] == 0) {
			s[i++] = '?';
			continue;
		}
		i += n;
	}
	j = json_stringn((char *)s, len);
	free(s);
	return (j != NULL ? j : json_string(""));
}

static void
exec_read(evutil_socket_t fd, short what, void *arg)
{
	struct wf_act	*a = arg;
	char		 buf[16384];
	ssize_t		 n;
	size_t		 room;

	(void)what;
	for (;;) {
		n = read(fd, buf, sizeof(buf));
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno == EAGAIN)
			return;
		if (n <= 0) {
			event_del(a->ev_out);
			close(a->outfd);
			a->outfd = -1;
			return;
		}
		room = WF_OUTPUT_MAX - a->outlen;
		if ((size_t)n > room) {
			a->truncated = 1;
			n = (ssize_t)room;
		}
		if (n > 0) {
			memcpy(a->out + a->outlen, buf, (size_t)n);
			a->outlen += (size_t)n;
		}
	}
}

static void
exec_exited(evutil_socket_t fd, short what, void *arg)
{
	struct wf_act	*a = arg;
	json_t		*out, *err = NULL;
	int		 st, ok;

	(void)fd;
	(void)what;
	/*
	 * The leader is a zombie now, so its pid (the group's id) cannot be
	 * reused yet: what it left running in its group goes with it.
	 */
	(void)killpg(a->pid, SIGKILL);
	while (waitpid(a->pid, &st, 0) == -1 && errno == EINTR)
		;
	event_del(a->ev_exit);
	if (a->kill_timer != NULL)
		clock_timer_cancel(a->kill_timer);
	if (a->outfd != -1)
		exec_read(a->outfd, EV_READ, a);
	out = json_pack("{s:o, s:b}", "text", text_json(a->out, a->outlen),
	    "truncated", a->truncated);
	ok = WIFEXITED(st) && WEXITSTATUS(st) == 0 && !a->timed_out &&
	    !a->stopped;
	if (WIFEXITED(st))
		json_object_set_new(out, "exit_code",
		    json_integer(WEXITSTATUS(st)));
	else if (WIFSIGNALED(st))
		json_object_set_new(out, "signal", json_integer(WTERMSIG(st)));
	if (a->timed_out)
		err = err_msg("TIMEOUT_ERROR", "timed out after %lld ms",
		    (long long)a->timeout_ms);
	else if (a->stopped)
		err = err_msg(NULL, "stopped");
	else if (WIFEXITED(st) && WEXITSTATUS(st) != 0) {
		err = json_pack("{s:i, s:s}", "exit_code", WEXITSTATUS(st),
		    "message", "the program exited non-zero");
		if (WEXITSTATUS(st) == 127)
			json_object_set_new(err, "message",
			    json_string("the program could not be run"));
	} else if (WIFSIGNALED(st))
		err = json_pack("{s:i, s:s}", "signal", WTERMSIG(st),
		    "message", "the program was killed by a signal");
	act_end(a, ok, err, out);
}

static void
exec_kill(void *arg)
{
	struct wf_act	*a = arg;

	log_info("workflow: pid %d did not end after SIGTERM: SIGKILL",
	    (int)a->pid);
	(void)killpg(a->pid, SIGKILL);
}

static void
exec_term(struct wf_act *a)
{
	(void)killpg(a->pid, SIGTERM);
	if (a->kill_timer == NULL &&
	    (a->kill_timer = clock_timer_new(exec_kill, a)) == NULL) {
		(void)killpg(a->pid, SIGKILL);
		return;
	}
	clock_timer_after(a->kill_timer, (uint64_t)wf_set.kill_grace_ms);
}

static void
free_vec(char **v)
{
	size_t	i;

	if (v == NULL)
		return;
	for (i = 0; v[i] != NULL; i++)
		free(v[i]);
	free(v);
}

/*
 * The paths to try for argv[0]: itself when it holds a '/', else each
 * directory of PATH from env (or a fixed default) in turn. No shell ever
 * sees the argv.
 */
static char **
exec_paths(const char *prog, const json_t *env)
{
	const char	*path;
	char		**v, *dirs, *d, *save = NULL;
	size_t		 n = 0;

	path = json_string_value(json_object_get(env, "PATH"));
	if ((v = calloc(66, sizeof(*v))) == NULL)
		return (NULL);
	if (strchr(prog, '/') != NULL) {
		v[0] = strdup(prog);
		return (v);
	}
	if (path == NULL)
		path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:"
		    "/sbin:/bin";
	if ((dirs = strdup(path)) == NULL)
		return (v);
	for (d = strtok_r(dirs, ":", &save); d != NULL && n < 64;
	    d = strtok_r(NULL, ":", &save))
		if (asprintf(&v[n], "%s/%s", d, prog) != -1)
			n++;
		else
			v[n] = NULL;
	free(dirs);
	return (v);
}

static int
exec_start(struct wf_act *a, const json_t *action)
{
	const json_t	*jargv = json_object_get(action, "argv");
	const json_t	*env = json_object_get(action, "env");
	const char	*cwd;
	const char	*k;
	json_t		*v;
	char		**argv = NULL, **envp = NULL, **paths = NULL;
	size_t		 i, n;
	int		 p[2] = { -1, -1 }, devnull, rc = -1;
	pid_t		 pid;
	sigset_t	 all, old;

	cwd = json_string_value(json_object_get(action, "cwd"));
	n = json_array_size(jargv);
	if ((argv = calloc(n + 1, sizeof(*argv))) == NULL ||
	    (envp = calloc(json_object_size(env) + 1, sizeof(*envp))) == NULL)
		goto done;
	for (i = 0; i < n; i++)
		if ((argv[i] = strdup(json_string_value(json_array_get(jargv,
		    i)))) == NULL)
			goto done;
	i = 0;
	json_object_foreach((json_t *)env, k, v)
		if (asprintf(&envp[i++], "%s=%s", k, json_string_value(v)) ==
		    -1) {
			envp[--i] = NULL;
			goto done;
		}
	if ((paths = exec_paths(argv[0], env)) == NULL ||
	    (a->out = malloc(WF_OUTPUT_MAX)) == NULL)
		goto done;
	if (pipe2(p, O_CLOEXEC) == -1)
		goto done;
	if ((devnull = open("/dev/null", O_RDONLY | O_CLOEXEC)) == -1)
		goto done;
	/*
	 * Signals stay blocked across the fork until the child has put every
	 * handler back to the default: the daemon's handlers write to the
	 * loop's signal pipe, which the child shares until it closes it, so
	 * a SIGTERM meant for the child would otherwise stop the daemon.
	 */
	sigfillset(&all);
	(void)pthread_sigmask(SIG_SETMASK, &all, &old);
	switch (pid = fork()) {
	case -1:
		(void)pthread_sigmask(SIG_SETMASK, &old, NULL);
		close(devnull);
		goto done;
	case 0:
		/* Async-signal-safe calls only: the daemon has threads. */
		for (i = 1; i < NSIG; i++)
			(void)signal((int)i, SIG_DFL);
		(void)sigprocmask(SIG_SETMASK, &old, NULL);
		(void)setpgid(0, 0);
		/* A daemon killed outright takes its programs with it. */
		(void)prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (dup2(devnull, 0) == -1 || dup2(p[1], 1) == -1 ||
		    dup2(p[1], 2) == -1)
			_exit(126);
		(void)syscall(SYS_close_range, 3, ~0U, 0);
		if (cwd != NULL && chdir(cwd) == -1)
			_exit(126);
		for (i = 0; paths[i] != NULL; i++)
			execve(paths[i], argv, envp);
		_exit(127);
	}
	(void)pthread_sigmask(SIG_SETMASK, &old, NULL);
	close(devnull);
	(void)setpgid(pid, pid);	/* either side may win the race */
	close(p[1]);
	p[1] = -1;
	a->pid = pid;
	a->outfd = p[0];
	(void)fcntl(a->outfd, F_SETFL, O_NONBLOCK);
	if ((a->pidfd = (int)syscall(SYS_pidfd_open, pid, 0)) == -1 ||
	    (a->ev_out = event_new(ermd.base, a->outfd, EV_READ | EV_PERSIST,
	    exec_read, a)) == NULL ||
	    (a->ev_exit = event_new(ermd.base, a->pidfd, EV_READ,
	    exec_exited, a)) == NULL ||
	    event_add(a->ev_out, NULL) == -1 ||
	    event_add(a->ev_exit, NULL) == -1) {
		/* Cannot watch it: do not leave it running unwatched. */
		(void)killpg(pid, SIGKILL);
		while (waitpid(pid, NULL, 0) == -1 && errno == EINTR)
			;
		goto done;
	}
	rc = 0;
done:
	if (p[1] != -1)
		close(p[1]);
	if (rc == -1 && p[0] != -1 && a->outfd != p[0])
		close(p[0]);
	free_vec(argv);
	free_vec(envp);
	free_vec(paths);
	return (rc);
}

/* ---- files ------------------------------------------------------------ */

struct file_job {
	struct wf_act		*a;
	enum file_op		 op;
	struct peer		 peer;
	struct root_path	 src, dst;
	int			 has_src;
	char			*content;
	size_t			 clen;
	int			 ok;
	struct root_err		 err;
};

static int
fail_io(struct file_job *j, int err, const char *what)
{
	j->err.code = ERM_IO_ERROR;
	j->err.err = err;
	snprintf(j->err.msg, sizeof(j->err.msg), "%s: %s", what,
	    strerror(err));
	return (-1);
}

/* Write len bytes (or, fd >= 0, the file fd) to a temp file in dirfd and
 * rename it over name. */
static int
replace_file(struct file_job *j, int dirfd, const char *name, int srcfd,
    mode_t mode)
{
	char	 tmp[64], buf[65536];
	ssize_t	 n, w;
	size_t	 off = 0;
	int	 fd;

	snprintf(tmp, sizeof(tmp), ".ermd-wf.%d.%lx", (int)getpid(),
	    (unsigned long)random());
	if ((fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
	    mode)) == -1)
		return (fail_io(j, errno, "create"));
	if (srcfd == -1) {
		while (off < j->clen) {
			if ((w = write(fd, j->content + off, j->clen - off)) ==
			    -1) {
				if (errno == EINTR)
					continue;
				goto fail;
			}
			off += (size_t)w;
		}
	} else
		while ((n = read(srcfd, buf, sizeof(buf))) != 0) {
			if (n == -1) {
				if (errno == EINTR)
					continue;
				goto fail;
			}
			for (off = 0; off < (size_t)n; off += (size_t)w)
				if ((w = write(fd, buf + off, (size_t)n -
				    off)) == -1)
					goto fail;
		}
	if (geteuid() == 0)
		(void)fchown(fd, j->peer.uid, j->peer.gid);
	if (fchmod(fd, mode) == -1 || fsync(fd) == -1)
		goto fail;
	close(fd);
	if (renameat(dirfd, tmp, dirfd, name) == -1) {
		(void)fail_io(j, errno, "rename");
		(void)unlinkat(dirfd, tmp, 0);
		return (-1);
	}
	(void)fsync(dirfd);
	return (0);
fail:
	(void)fail_io(j, errno, "write");
	close(fd);
	(void)unlinkat(dirfd, tmp, 0);
	return (-1);
}

static void
file_run(void *arg)
{
	struct file_job	*j = arg;
	struct stat	 st, st2;
	const char	*name, *name2;
	int		 dirfd = -1, dirfd2 = -1, fd = -1, exists, exists2;

	j->ok = 0;
	switch (j->op) {
	case F_WRITE:
		if (roots_open_parent(&j->dst, &j->peer, &dirfd, &name,
		    &exists, &st, &j->err) == -1)
			break;
		j->ok = replace_file(j, dirfd, name, -1, exists ?
		    st.st_mode & 07777 : 0644) == 0;
		break;
	case F_MKDIR:
		/*
		 * A name that is there but is no regular file is refused,
		 * with *exists and *st telling what was found: a directory
		 * is what was asked for, so the step is done (a re-run).
		 * Decided on that, never on the message: a parent that is
		 * a regular file is refused as "'x' is not a directory"
		 * (j->err.err ENOTDIR), and must fail.
		 */
		exists = 0;
		if (roots_open_parent(&j->dst, &j->peer, &dirfd, &name,
		    &exists, &st, &j->err) == -1) {
			if (exists && S_ISDIR(st.st_mode))
				j->ok = 1;
			break;
		}
		if (exists) {
			snprintf(j->err.msg, sizeof(j->err.msg),
			    "a file is in the way");
			j->err.code = ERM_IO_ERROR;
			j->err.err = EEXIST;
			break;
		}
		if (mkdirat(dirfd, name, 0755) == -1 && errno != EEXIST) {
			(void)fail_io(j, errno, "mkdir");
			break;
		}
		if (geteuid() == 0)
			(void)fchownat(dirfd, name, j->peer.uid, j->peer.gid,
			    AT_SYMLINK_NOFOLLOW);
		j->ok = 1;
		break;
	case F_DELETE:
		if (roots_open_parent(&j->dst, &j->peer, &dirfd, &name,
		    &exists, &st, &j->err) == -1)
			break;
		if (exists && unlinkat(dirfd, name, 0) == -1 &&
		    errno != ENOENT) {
			(void)fail_io(j, errno, "unlink");
			break;
		}
		j->ok = 1;
		break;
	case F_COPY:
		if (roots_open_read(&j->src, &j->peer, &fd, &st, &j->err) ==
		    -1 || roots_open_parent(&j->dst, &j->peer, &dirfd, &name,
		    &exists, &st2, &j->err) == -1)
			break;
		j->ok = replace_file(j, dirfd, name, fd, st.st_mode & 07777) ==
		    0;
		break;
	case F_MOVE:
		if (roots_open_parent(&j->src, &j->peer, &dirfd, &name,
		    &exists, &st, &j->err) == -1 ||
		    roots_open_parent(&j->dst, &j->peer, &dirfd2, &name2,
		    &exists2, &st2, &j->err) == -1)
			break;
		if (!exists && exists2) {
			j->ok = 1;	/* moved before a restart */
			break;
		}
		if (renameat(dirfd, name, dirfd2, name2) == -1) {
			(void)fail_io(j, errno, "rename");
			break;
		}
		(void)fsync(dirfd2);
		j->ok = 1;
		break;
	}
	if (fd != -1)
		close(fd);
	if (dirfd != -1)
		close(dirfd);
	if (dirfd2 != -1)
		close(dirfd2);
}

static void
file_job_free(struct file_job *j)
{
	root_path_clear(&j->dst);
	if (j->has_src)
		root_path_clear(&j->src);
	free(j->content);
	free(j);
}

/*
 * A refusal that an errno caused (a path component that is no directory:
 * ENOTDIR) is reported by its errno, as an I/O error is.
 */
static json_t *
root_err_json(const struct root_err *e)
{
	if (e->code == ERM_IO_ERROR || e->err != 0)
		return (json_pack("{s:s, s:s}", "errno",
		    errno_name(e->err), "message", e->msg));
	return (json_pack("{s:s, s:s}", "category", "PERMISSION_ERROR",
	    "message", e->msg));
}

static void
file_done(void *arg)
{
	struct file_job	*j = arg;

	if (j->ok)
		act_end(j->a, 1, NULL, NULL);
	else
		act_end(j->a, 0, root_err_json(&j->err), NULL);
	file_job_free(j);
}

static int
find_path(const json_t *action, const char *key, const struct peer *p,
    struct root_path *rp, json_t **err)
{
	const json_t	*v = json_object_get(action, key);
	struct root_err	 e;

	if (roots_find(json_string_value(v), json_string_length(v), p, rp,
	    &e) == -1) {
		*err = root_err_json(&e);
		return (-1);
	}
	return (0);
}

static int
b64_val(int c)
{
	if (c >= 'A' && c <= 'Z')
		return (c - 'A');
	if (c >= 'a' && c <= 'z')
		return (c - 'a' + 26);
	if (c >= '0' && c <= '9')
		return (c - '0' + 52);
	if (c == '+' || c == '-')
		return (62);
	if (c == '/' || c == '_')
		return (63);
	return (-1);
}

/* Decode base64 (padding optional); -1 on a bad character. */
int
wf_b64_decode(const char *s, char **out, size_t *outlen)
{
	size_t		 n = strlen(s), o = 0, i;
	uint32_t	 acc = 0;
	int		 bits = 0, v;
	char		*p;

	if ((p = malloc(n / 4 * 3 + 4)) == NULL)
		return (-1);
	for (i = 0; i < n; i++) {
		if (s[i] == '=')
			break;
		if ((v = b64_val((unsigned char)s[i])) == -1) {
			free(p);
			return (-1);
		}
		acc = acc << 6 | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			p[o++] = (char)(acc >> bits & 0xff);
		}
	}
	*out = p;
	*outlen = o;
	return (0);
}

static int
file_start(struct wf_act *a, const json_t *action, const char *type,
    const struct peer *p, json_t **err)
{
	struct file_job	*j;
	const char	*c;

	if ((j = calloc(1, sizeof(*j))) == NULL)
		return (-1);
	j->a = a;
	j->peer = *p;
	j->dst.rootfd = j->src.rootfd = -1;
	if (strcmp(type, "write") == 0) {
		j->op = F_WRITE;
		if ((c = json_string_value(json_object_get(action,
		    "content"))) != NULL) {
			j->clen = json_string_length(json_object_get(action,
			    "content"));
			if ((j->content = malloc(j->clen + 1)) != NULL)
				memcpy(j->content, c, j->clen);
		} else if (wf_b64_decode(json_string_value(json_object_get(
		    action, "content_base64")), &j->content, &j->clen) == -1)
			j->content = NULL;
		if (j->content == NULL) {
			free(j);
			return (-1);
		}
	} else if (strcmp(type, "mkdir") == 0)
		j->op = F_MKDIR;
	else if (strcmp(type, "delete") == 0)
		j->op = F_DELETE;
	else
		j->op = strcmp(type, "copy") == 0 ? F_COPY : F_MOVE;
	if (j->op == F_COPY || j->op == F_MOVE) {
		if (find_path(action, "src", p, &j->src, err) == -1)
			goto refused;
		j->has_src = 1;
		if (find_path(action, "dst", p, &j->dst, err) == -1)
			goto refused;
	} else if (find_path(action, "path", p, &j->dst, err) == -1)
		goto refused;
	if (worker_submit(file_run, file_done, j) == -1) {
		*err = err_msg("SYSTEM_ERROR", "the worker pool is stopped");
		goto refused;
	}
	return (0);
refused:
	/* Refused before any I/O: an ordinary failure of the step. */
	free(j->content);
	j->content = NULL;
	file_job_free(j);
	return (1);
}

/* ---- backup, restore --------------------------------------------------- */

static void
backup_done(void *arg, json_t *result, const struct backup_err *e)
{
	struct wf_act	*a = arg;

	if (e == NULL)
		act_end(a, 1, NULL, json_incref(result));
	else
		act_end(a, 0, json_pack("{s:s, s:i, s:s}", "category",
		    e->code == ERM_PERMISSION_DENIED ? "PERMISSION_ERROR" :
		    e->code == ERM_CORRUPTED ? "CORRUPTED_DATA" :
		    e->code == ERM_NOT_FOUND ? "FILE_NOT_FOUND" :
		    "STORAGE_ERROR", "code", e->code, "message", e->msg),
		    NULL);
}

/* ---- http -------------------------------------------------------------- */

static void
http_done(const struct http_response *r, void *arg)
{
	struct wf_act	*a = arg;
	json_t		*out, *v;
	size_t		 i;
	int		 ok = 0;
	char		 desc[128];

	a->http = NULL;
	if (r->err != 0) {
		act_end(a, 0, r->err == ETIMEDOUT ? err_msg("TIMEOUT_ERROR",
		    "%s", http_describe(r, desc, sizeof(desc))) :
		    json_pack("{s:s, s:s}", "errno", errno_name(r->err),
		    "message", http_describe(r, desc, sizeof(desc))), NULL);
		return;
	}
	if (a->expect == NULL)
		ok = r->status >= 200 && r->status <= 299;
	else
		json_array_foreach(a->expect, i, v)
			if (json_integer_value(v) == r->status)
				ok = 1;
	out = json_pack("{s:i, s:o}", "status", (int)r->status, "body",
	    text_json(r->body, r->body_len > 65536 ? 65536 : r->body_len));
	act_end(a, ok, ok ? NULL : json_pack("{s:i, s:s}", "http_status",
	    (int)r->status, "message", "unexpected HTTP status"), out);
}

static int
http_start(struct wf_act *a, const json_t *action)
{
	const json_t		*h = json_object_get(action, "headers");
	const char		*k, *body;
	const char		**hdrs;
	json_t			*v;
	struct http_body	 b = { NULL, 0, -1 };
	struct http_options	 o;
	size_t			 i = 0;

	memset(&o, 0, sizeof(o));
	o.resp_fd = -1;
	o.timeout_ms = a->timeout_ms;
	if ((hdrs = calloc(json_object_size(h) + 1, sizeof(*hdrs))) == NULL)
		return (-1);
	json_object_foreach((json_t *)h, k, v) {
		if (asprintf((char **)&hdrs[i], "%s: %s", k,
		    json_string_value(v)) == -1)
			break;
		i++;
	}
	if ((body = json_string_value(json_object_get(action, "body"))) !=
	    NULL) {
		b.buf = body;
		b.len = json_string_length(json_object_get(action, "body"));
	}
	a->expect = json_object_get(action, "expect_status");
	a->http = http_request(json_string_value(json_object_get(action,
	    "method")), json_string_value(json_object_get(action, "url")),
	    hdrs, &b, &o, http_done, a);
	while (i > 0)
		free((char *)hdrs[--i]);
	free(hdrs);
	return (a->http == NULL ? -1 : 0);
}

/* ---- the common part -------------------------------------------------- */

static void
act_deadline(void *arg)
{
	struct wf_act	*a = arg;

	switch (a->type) {
	case A_SLEEP:
		if (a->timed_out || a->stopped)
			act_end(a, 0, a->stopped ? err_msg(NULL, "stopped") :
			    err_msg("TIMEOUT_ERROR", "timed out after %lld ms",
			    (long long)a->timeout_ms), NULL);
		else
			act_end(a, 1, NULL, NULL);
		break;
	case A_EXEC:
		a->timed_out = 1;
		exec_term(a);
		break;
	default:
		break;
	}
}

struct wf_act *
wf_act_start(const json_t *action, const struct peer *p, int64_t timeout_ms,
    wf_act_done done, void *arg)
{
	struct wf_act	*a;
	const char	*type = json_string_value(json_object_get(action,
	    "type"));
	json_t		*err = NULL;
	int64_t		 ms;
	int		 rc;

	if ((a = calloc(1, sizeof(*a))) == NULL)
		return (NULL);
	a->done = done;
	a->arg = arg;
	a->pidfd = a->outfd = -1;
	a->timeout_ms = timeout_ms;
	a->type = A_NONE;
	if ((a->timer = clock_timer_new(act_deadline, a)) == NULL)
		goto fail;
	if (strcmp(type, "exec") == 0) {
		a->type = A_EXEC;
		if (exec_start(a, action) == -1) {
			act_end(a, 0, err_errno(errno, "cannot start the "
			    "program"), NULL);
			return (a);
		}
		if (timeout_ms > 0)
			clock_timer_after(a->timer, (uint64_t)timeout_ms);
	} else if (strcmp(type, "sleep") == 0) {
		a->type = A_SLEEP;
		ms = json_integer_value(json_object_get(action, "ms"));
		if (timeout_ms > 0 && timeout_ms < ms) {
			a->timed_out = 1;
			ms = timeout_ms;
		}
		clock_timer_after(a->timer, (uint64_t)ms);
	} else if (strcmp(type, "backup") == 0 ||
	    strcmp(type, "restore") == 0) {
		const json_t	*path = json_object_get(action, "path");

		a->type = A_BACKUP;
		if (strcmp(type, "backup") == 0 ?
		    backup_create_async(json_string_value(path),
		    json_string_length(path), "workflow", p, backup_done,
		    a) == NULL :
		    backup_restore_async(json_string_value(json_object_get(
		    action, "backup_id")), json_string_value(path),
		    json_string_length(path), p, backup_done, a) == NULL)
			goto fail;
	} else if (strcmp(type, "http") == 0) {
		a->type = A_HTTP;
		if (http_start(a, action) == -1)
			act_end(a, 0, err_errno(errno, "cannot start the "
			    "request"), NULL);
	} else {
		a->type = A_FILE;
		if ((rc = file_start(a, action, type, p, &err)) == -1)
			goto fail;
		if (rc == 1)
			act_end(a, 0, err, NULL);
	}
	return (a);
fail:
	act_free(a);
	return (NULL);
}

void
wf_act_stop(struct wf_act *a)
{
	if (a->ended || a->stopped)
		return;
	a->stopped = 1;
	switch (a->type) {
	case A_EXEC:
		exec_term(a);
		break;
	case A_SLEEP:
		clock_timer_cancel(a->timer);
		act_deadline(a);
		break;
	case A_HTTP:
		if (a->http != NULL) {
			http_cancel(a->http);
			a->http = NULL;
		}
		act_end(a, 0, err_msg(NULL, "stopped"), NULL);
		break;
	default:
		/* File actions, backups and restores finish on their own;
		 * their outcome stands. */
		break;
	}
}
