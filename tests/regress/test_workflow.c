/*
 * Workflows over the socket: sequential and parallel runs, failure and
 * compensation in both orders, failing compensations, retries and
 * breakers, timeouts that kill a whole process group, argv that no shell
 * sees, programs' cleared environment and 1 MiB output cap, client steps (and a client that goes away), crash-resume under
 * kill -9 at random moments, and retention of finished workflows (with
 * the counts by state kept equal to the table).
 */

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <check.h>
#include <errno.h>
#include <grp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

static struct daemon	d;
static char		root[192];
static char		p_buf[4096];

static const char *const manual[] = { "--manual-clock", NULL };

static void
stop(void)
{
	if (d.pid > 0)
		ck_assert_int_eq(daemon_stop(&d), 0);
}

/* Start with extra config and extra environment for ermd (may be NULL). */
static void
start_conf_env(const char *const *args, const char *extra,
    const char *const *env)
{
	char	conf[1024];

	memset(&d, 0, sizeof(d));
	d.pass_fd = -1;
	daemon_prepare(&d);
	snprintf(root, sizeof(root), "%s/root", d.dir);
	ck_assert_int_eq(mkdir(root, 0755), 0);
	snprintf(conf, sizeof(conf), "%s\n[root.t]\npath = %s\n", extra,
	    root);
	daemon_start_env(&d, conf, args, env, -1);
}

static void
start_conf(const char *const *args, const char *extra)
{
	start_conf_env(args, extra, NULL);
}

static void
start(const char *const *args)
{
	start_conf(args, "");
}

/* Create a workflow from params (JSON text); returns its id (static). */
static const char *
create(int fd, const char *params)
{
	static char	 id[64];
	json_t		*r = call_on(fd, "{\"id\":1,\"method\":\"workflow.create\","
	    "\"params\":%s}", params);

	snprintf(id, sizeof(id), "%s", json_string_value(json_object_get(
	    result(r), "id")));
	json_decref(r);
	return (id);
}

/* workflow.wait; the reply's result (new reference). */
static json_t *
wait_wf(int fd, const char *id)
{
	json_t	*r = call_on(fd, "{\"id\":2,\"method\":\"workflow.wait\","
	    "\"params\":{\"id\":\"%s\",\"timeout_ms\":20000}}", id);
	json_t	*res = json_incref(result(r));

	json_decref(r);
	return (res);
}

/* workflow.get's reply (new reference), an error or not. */
static json_t *
get_wf(int fd, const char *id)
{
	return (call_on(fd, "{\"id\":1,\"method\":\"workflow.get\","
	    "\"params\":{\"id\":\"%s\"}}", id));
}

static const char *
wf_state(const json_t *w)
{
	return (json_string_value(json_object_get(w, "state")));
}

static const json_t *
step_of(const json_t *w, const char *name)
{
	const json_t	*s;
	size_t		 i;

	json_array_foreach(json_object_get(w, "steps"), i, s)
		if (strcmp(json_string_value(json_object_get(s, "name")),
		    name) == 0)
			return (s);
	ck_abort_msg("no step %s", name);
	return (NULL);
}

static const char *
step_state(const json_t *w, const char *name)
{
	return (json_string_value(json_object_get(step_of(w, name), "state")));
}

static void
slurp(const char *name, char *buf, size_t len)
{
	char	 path[256];
	FILE	*f;
	size_t	 n = 0;

	snprintf(path, sizeof(path), "%s/%s", root, name);
	buf[0] = '\0';
	if ((f = fopen(path, "r")) == NULL)
		return;
	n = fread(buf, 1, len - 1, f);
	buf[n] = '\0';
	fclose(f);
}

/* An exec action that appends word to root/file. */
static char *
append(char *buf, size_t len, const char *word, const char *file)
{
	snprintf(buf, len, "{\"type\":\"exec\",\"argv\":[\"/bin/sh\",\"-c\","
	    "\"echo %s >> %s/%s\"]}", word, root, file);
	return (buf);
}

/* n sequential steps s1..sn appending runN / compN; step fail fails. */
static char *
chain(char *out, size_t len, const char *name, int n, int fail,
    const char *extra)
{
	char	a[512], c[512], w[16], cw[16];
	size_t	off;
	int	i;

	off = (size_t)snprintf(out, len, "{\"name\":\"%s\"%s,\"steps\":[",
	    name, extra);
	for (i = 1; i <= n; i++) {
		snprintf(w, sizeof(w), "run%d", i);
		snprintf(cw, sizeof(cw), "comp%d", i);
		if (i == fail)
			snprintf(a, sizeof(a), "{\"type\":\"exec\",\"argv\":"
			    "[\"/bin/false\"]}");
		else
			append(a, sizeof(a), w, "m");
		off += (size_t)snprintf(out + off, len - off, "%s{\"name\":"
		    "\"s%d\",\"action\":%s,\"compensate\":%s}", i > 1 ? "," :
		    "", i, a, append(c, sizeof(c), cw, "m"));
	}
	snprintf(out + off, len - off, "]}");
	return (out);
}

START_TEST(sequential_success)
{
	char	 p[8192], m[256];
	json_t	*w;
	int	 fd;

	start(NULL);
	fd = raw_connect(d.sock);
	w = wait_wf(fd, create(fd, chain(p, sizeof(p), "seq", 5, 0, "")));
	ck_assert_str_eq(wf_state(w), "succeeded");
	ck_assert_str_eq(step_state(w, "s5"), "succeeded");
	slurp("m", m, sizeof(m));
	ck_assert_str_eq(m, "run1\nrun2\nrun3\nrun4\nrun5\n");
	/* Finished: running or cancelling it again is a conflict. */
	{
		static const char *const methods[] = { "workflow.run",
		    "workflow.cancel" };
		json_t	*r;
		int	 i;

		for (i = 0; i < 2; i++) {
			r = call_on(fd, "{\"id\":3,\"method\":\"%s\","
			    "\"params\":{\"id\":\"%s\"}}", methods[i],
			    json_string_value(json_object_get(w, "id")));
			ck_assert_int_eq(reply_code(r), 1003);
			ck_assert_str_eq(json_string_value(json_object_get(
			    json_object_get(json_object_get(r, "error"),
			    "data"), "state")), "succeeded");
			json_decref(r);
		}
	}
	json_decref(w);
	close(fd);
	assert_serves(&d);
}
END_TEST

START_TEST(failure_compensates_in_reverse)
{
	char	 p[8192], m[256];
	json_t	*w;
	int	 fd;

	start(NULL);
	fd = raw_connect(d.sock);
	w = wait_wf(fd, create(fd, chain(p, sizeof(p), "f3", 5, 3, "")));
	ck_assert_str_eq(wf_state(w), "compensated");
	ck_assert_str_eq(step_state(w, "s1"), "compensated");
	ck_assert_str_eq(step_state(w, "s2"), "compensated");
	ck_assert_str_eq(step_state(w, "s3"), "failed");
	ck_assert_str_eq(step_state(w, "s4"), "skipped");
	ck_assert_str_eq(step_state(w, "s5"), "skipped");
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(w,
	    "error"), "step")), "s3");
	slurp("m", m, sizeof(m));
	ck_assert_str_eq(m, "run1\nrun2\ncomp2\ncomp1\n");
	json_decref(w);
	close(fd);
}
END_TEST

START_TEST(without_rollback_fails)
{
	char	 p[8192], m[256];
	json_t	*w;
	int	 fd;

	start(NULL);
	fd = raw_connect(d.sock);
	w = wait_wf(fd, create(fd, chain(p, sizeof(p), "nr", 3, 2,
	    ",\"rollback_on_failure\":false")));
	ck_assert_str_eq(wf_state(w), "failed");
	ck_assert_str_eq(step_state(w, "s1"), "succeeded");
	slurp("m", m, sizeof(m));
	ck_assert_str_eq(m, "run1\n");
	json_decref(w);
	close(fd);
}
END_TEST

static int
pid_gone(pid_t pid)
{
	char	 path[64], buf[256], *p;
	FILE	*f;
	int	 zombie = 0;

	if (kill(pid, 0) == -1 && errno == ESRCH)
		return (1);
	/* Reparented and not reaped (no init in the container): a zombie. */
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if ((f = fopen(path, "r")) == NULL)
		return (1);
	if (fgets(buf, sizeof(buf), f) != NULL &&
	    (p = strrchr(buf, ')')) != NULL)
		zombie = p[2] == 'Z' || p[2] == 'X';
	fclose(f);
	return (zombie);
}

static pid_t
read_pid(const char *name)
{
	char	buf[64];
	int	i;

	for (i = 0; i < 500; i++) {
		slurp(name, buf, sizeof(buf));
		if (buf[0] != '\0' && strchr(buf, '\n') != NULL)
			return ((pid_t)atoi(buf));
		usleep(10000);
	}
	ck_abort_msg("no pid in %s", name);
	return (-1);
}

START_TEST(parallel_failure_stops_siblings)
{
	char	 p[8192], m[256];
	json_t	*w;
	pid_t	 bg;
	int	 fd;

	start(NULL);
	fd = raw_connect(d.sock);
	snprintf(p, sizeof(p), "{\"name\":\"par\",\"steps\":["
	    "{\"name\":\"long\",\"after\":[],\"action\":{\"type\":\"exec\","
	    "\"argv\":[\"/bin/sh\",\"-c\",\"sleep 300 & echo $! > %s/bg; "
	    "wait\"]},\"compensate\":{\"type\":\"exec\",\"argv\":[\"/bin/sh\","
	    "\"-c\",\"echo clong >> %s/m\"]}},"
	    "{\"name\":\"quick\",\"after\":[],\"action\":{\"type\":\"exec\","
	    "\"argv\":[\"/bin/sh\",\"-c\",\"echo quick >> %s/m\"]},"
	    "\"compensate\":{\"type\":\"exec\",\"argv\":[\"/bin/sh\",\"-c\","
	    "\"echo cquick >> %s/m\"]}},"
	    "{\"name\":\"bad\",\"after\":[],\"action\":{\"type\":\"exec\","
	    "\"argv\":[\"/bin/sh\",\"-c\",\"sleep 0.3; exit 3\"]}},"
	    "{\"name\":\"never\",\"after\":[\"long\",\"quick\",\"bad\"],"
	    "\"action\":{\"type\":\"sleep\",\"ms\":1}}]}", root, root, root,
	    root);
	w = wait_wf(fd, create(fd, p));
	bg = read_pid("bg");
	ck_assert_str_eq(wf_state(w), "compensated");
	ck_assert_str_eq(step_state(w, "bad"), "failed");
	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(
	    step_of(w, "bad"), "error"), "exit_code")), 3);
	ck_assert_str_eq(step_state(w, "long"), "failed");
	ck_assert_str_eq(step_state(w, "quick"), "compensated");
	ck_assert_str_eq(step_state(w, "never"), "skipped");
	slurp("m", m, sizeof(m));
	ck_assert_str_eq(m, "quick\ncquick\n");
	ck_assert_msg(pid_gone(bg), "the stopped step's child %d lives", bg);
	json_decref(w);
	close(fd);
}
END_TEST

/*
 * Parallel compensation: each compensation marks that it started, then
 * waits (up to 10 s) until all three have. Run one after another, the
 * first would wait for the others in vain and fail; so the workflow ends
 * compensated only when all three ran at the same time.
 */
START_TEST(parallel_compensation)
{
	char		 p[8192], comp[3][1024];
	json_t		*w, *r;
	int		 fd, i;
	const char	*names = "abc";

	start(NULL);
	for (i = 0; i < 3; i++)
		snprintf(comp[i], sizeof(comp[i]), "{\"type\":\"exec\",\"argv\":"
		    "[\"/bin/sh\",\"-c\",\"/usr/bin/touch %1$s/started-%2$c; "
		    "i=0; while [ $i -lt 200 ]; do [ -e %1$s/started-a ] && "
		    "[ -e %1$s/started-b ] && [ -e %1$s/started-c ] && exit 0; "
		    "/bin/sleep 0.05; i=$((i+1)); done; exit 1\"]}",
		    d.dir, names[i]);
	snprintf(p, sizeof(p), "{\"name\":\"pc\",\"compensation\":"
	    "\"parallel\",\"steps\":["
	    "{\"name\":\"a\",\"after\":[],\"action\":{\"type\":\"sleep\","
	    "\"ms\":1},\"compensate\":%s},"
	    "{\"name\":\"b\",\"after\":[],\"action\":{\"type\":\"sleep\","
	    "\"ms\":1},\"compensate\":%s},"
	    "{\"name\":\"c\",\"after\":[],\"action\":{\"type\":\"sleep\","
	    "\"ms\":1},\"compensate\":%s},"
	    "{\"name\":\"fail\",\"after\":[\"a\",\"b\",\"c\"],\"action\":"
	    "{\"type\":\"exec\",\"argv\":[\"/bin/false\"]}}]}",
	    comp[0], comp[1], comp[2]);
	r = call_on(fd = raw_connect(d.sock), "{\"id\":1,\"method\":"
	    "\"workflow.create\",\"params\":%s}", p);
	w = wait_wf(fd, json_string_value(json_object_get(result(r), "id")));
	ck_assert_str_eq(wf_state(w), "compensated");
	ck_assert_str_eq(step_state(w, "a"), "compensated");
	ck_assert_str_eq(step_state(w, "b"), "compensated");
	ck_assert_str_eq(step_state(w, "c"), "compensated");
	json_decref(w);
	json_decref(r);
	close(fd);
}
END_TEST

/* s1, s2 (whose compensation fails), s3 fails. */
static json_t *
failing_comp(int fd, int cont)
{
	char	p[8192], a1[512], c1[512], a2[512];

	snprintf(p, sizeof(p), "{\"name\":\"fc\",\"continue_on_compensation_"
	    "error\":%s,\"steps\":[{\"name\":\"s1\",\"action\":%s,"
	    "\"compensate\":%s},{\"name\":\"s2\",\"action\":%s,\"compensate\":"
	    "{\"type\":\"exec\",\"argv\":[\"/bin/false\"]}},{\"name\":\"s3\","
	    "\"action\":{\"type\":\"exec\",\"argv\":[\"/bin/false\"]}}]}",
	    cont ? "true" : "false", append(a1, sizeof(a1), "run1", "m"),
	    append(c1, sizeof(c1), "comp1", "m"),
	    append(a2, sizeof(a2), "run2", "m"));
	return (wait_wf(fd, create(fd, p)));
}

START_TEST(failing_compensation_stops)
{
	char	 m[256];
	json_t	*w;
	int	 fd;

	start(NULL);
	fd = raw_connect(d.sock);
	w = failing_comp(fd, 0);
	ck_assert_str_eq(wf_state(w), "failed");
	ck_assert_str_eq(step_state(w, "s2"), "compensation_failed");
	ck_assert_str_eq(step_state(w, "s1"), "succeeded");
	slurp("m", m, sizeof(m));
	ck_assert_str_eq(m, "run1\nrun2\n");
	json_decref(w);
	close(fd);
}
END_TEST

START_TEST(failing_compensation_continues)
{
	char	 m[256];
	json_t	*w;
	int	 fd;

	start(NULL);
	fd = raw_connect(d.sock);
	w = failing_comp(fd, 1);
	ck_assert_str_eq(wf_state(w), "failed");
	ck_assert_str_eq(step_state(w, "s2"), "compensation_failed");
	ck_assert_str_eq(step_state(w, "s1"), "compensated");
	slurp("m", m, sizeof(m));
	ck_assert_str_eq(m, "run1\nrun2\ncomp1\n");
	json_decref(w);
	close(fd);
}
END_TEST

START_TEST(retries_a_flaky_step)
{
	char	 p[8192];
	json_t	*w;
	int	 fd;

	start(NULL);
	fd = raw_connect(d.sock);
	/* Fails twice, then succeeds: a counter in a file. */
	snprintf(p, sizeof(p), "{\"name\":\"flaky\",\"steps\":[{\"name\":"
	    "\"f\",\"retry\":{\"max_attempts\":5,\"base_delay_ms\":10,"
	    "\"jitter\":\"none\"},\"action\":{\"type\":\"exec\",\"argv\":"
	    "[\"/bin/sh\",\"-c\",\"n=$(cat %s/n 2>/dev/null || echo 0); "
	    "n=$((n+1)); echo $n > %s/n; [ $n -ge 3 ]\"]}}]}", root, root);
	w = wait_wf(fd, create(fd, p));
	ck_assert_str_eq(wf_state(w), "succeeded");
	ck_assert_int_eq(json_integer_value(json_object_get(step_of(w, "f"),
	    "attempts")), 3);
	json_decref(w);
	close(fd);
}
END_TEST

START_TEST(breaker_guards_a_step)
{
	char	 p[8192], m[64];
	json_t	*w, *r;
	int	 fd;

	start(NULL);
	fd = raw_connect(d.sock);
	r = call_on(fd, "{\"id\":1,\"method\":\"breaker.force\",\"params\":"
	    "{\"name\":\"wfb\",\"state\":\"forced_open\"}}");
	(void)result(r);
	json_decref(r);
	snprintf(p, sizeof(p), "{\"name\":\"br\",\"steps\":[{\"name\":\"g\","
	    "\"breaker\":\"wfb\",\"action\":{\"type\":\"exec\",\"argv\":"
	    "[\"/bin/sh\",\"-c\",\"echo ran >> %s/m\"]}}]}", root);
	w = wait_wf(fd, create(fd, p));
	ck_assert_str_eq(wf_state(w), "compensated");
	ck_assert_str_eq(step_state(w, "g"), "failed");
	slurp("m", m, sizeof(m));
	ck_assert_str_eq(m, "");
	json_decref(w);
	close(fd);
}
END_TEST

START_TEST(timeout_kills_the_process_group)
{
	char	 p[8192];
	json_t	*w, *r;
	pid_t	 bg;
	int	 fd;

	start(manual);
	fd = raw_connect(d.sock);
	/* The group ignores SIGTERM: SIGKILL must follow, 5 s later. */
	snprintf(p, sizeof(p), "{\"name\":\"to\",\"steps\":[{\"name\":\"t\","
	    "\"timeout_ms\":200,\"action\":{\"type\":\"exec\",\"argv\":"
	    "[\"/bin/sh\",\"-c\",\"trap '' TERM; sleep 300 & echo $! > "
	    "%s/bg; wait; wait\"]}}]}", root);
	create(fd, p);
	bg = read_pid("bg");
	advance_on(fd, 200);
	usleep(200000);
	ck_assert_msg(!pid_gone(bg), "SIGTERM is ignored: %d still runs", bg);
	advance_on(fd, 5000);
	r = call_on(fd, "{\"id\":4,\"method\":\"workflow.list\",\"params\":"
	    "{}}");
	w = wait_wf(fd, json_string_value(json_object_get(json_array_get(
	    json_object_get(result(r), "workflows"), 0), "id")));
	ck_assert_str_eq(wf_state(w), "compensated");
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(
	    step_of(w, "t"), "error"), "category")), "TIMEOUT_ERROR");
	ck_assert_msg(pid_gone(bg), "orphan %d survived the timeout", bg);
	json_decref(w);
	json_decref(r);
	close(fd);
}
END_TEST

START_TEST(argv_is_literal)
{
	char	 p[8192], m[64];
	json_t	*w;
	int	 fd;

	start(NULL);
	fd = raw_connect(d.sock);
	snprintf(p, sizeof(p), "{\"name\":\"lit\",\"steps\":[{\"name\":\"e\","
	    "\"action\":{\"type\":\"exec\",\"argv\":[\"echo\",\"; touch "
	    "%s/pwned\",\"$(touch %s/pwned2)\"],\"env\":{\"X\":\"1\"}}}]}",
	    root, root);
	w = wait_wf(fd, create(fd, p));
	ck_assert_str_eq(wf_state(w), "succeeded");
	snprintf(m, sizeof(m), "%s", json_string_value(json_object_get(
	    json_object_get(step_of(w, "e"), "output"), "text")));
	ck_assert_ptr_nonnull(strstr(m, "; touch "));
	ck_assert_int_eq(access("pwned", F_OK), -1);
	slurp("pwned", m, sizeof(m));
	ck_assert_int_eq(chdir(root), 0);
	ck_assert_int_eq(access("pwned", F_OK), -1);
	ck_assert_int_eq(access("pwned2", F_OK), -1);
	ck_assert_int_eq(chdir("/"), 0);
	json_decref(w);
	close(fd);
}
END_TEST

/* A step's output text (borrowed). */
static const char *
out_text(const json_t *w, const char *name)
{
	const json_t	*t;

	t = json_object_get(json_object_get(step_of(w, name), "output"),
	    "text");

	ck_assert_msg(json_is_string(t), "step %s has no output text", name);
	return (json_string_value(t));
}

static int
cmp_line(const void *a, const void *b)
{
	return (strcmp(*(char *const *)a, *(char *const *)b));
}

/* The lines of text sorted, each ending in a newline (static). */
static const char *
sorted_lines(const char *text)
{
	static char	 out[4096];
	char		 copy[4096], *lines[64], *l, *save = NULL;
	size_t		 n = 0, i, off = 0;

	snprintf(copy, sizeof(copy), "%s", text);
	for (l = strtok_r(copy, "\n", &save); l != NULL && n < 64;
	    l = strtok_r(NULL, "\n", &save))
		lines[n++] = l;
	qsort(lines, n, sizeof(lines[0]), cmp_line);
	out[0] = '\0';
	for (i = 0; i < n; i++)
		off += (size_t)snprintf(out + off, sizeof(out) - off, "%s\n",
		    lines[i]);
	return (out);
}

/* Does ermd's own environment hold entry ("NAME=value")? */
static int
daemon_env_has(const char *entry)
{
	char	 path[64], buf[65536];
	size_t	 n, i;
	FILE	*f;

	snprintf(path, sizeof(path), "/proc/%d/environ", (int)d.pid);
	if ((f = fopen(path, "r")) == NULL)
		return (0);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	for (i = 0; i < n; i += strlen(buf + i) + 1)
		if (strcmp(buf + i, entry) == 0)
			return (1);
	return (0);
}

/*
 * Programs get an empty environment plus the step's env, and nothing of
 * the daemon's: /usr/bin/env prints exactly what the step gave. argv[0]
 * without a '/' is looked for in env.PATH, else in the fixed default.
 */
START_TEST(exec_environment_is_cleared)
{
	static const char *const env[] = { "ERMD_TEST_SECRET=hunter2",
	    "ERMD_TEST_OTHER=leak", NULL };
	json_t		*w, *err;
	const json_t	*o;
	int		 fd;

	start_conf_env(NULL, "", env);
	/* The premise: the daemon itself has them (and PATH, HOME...). */
	ck_assert(daemon_env_has("ERMD_TEST_SECRET=hunter2"));
	ck_assert(daemon_env_has("ERMD_TEST_OTHER=leak"));
	fd = raw_connect(d.sock);
	w = wait_wf(fd, create(fd, "{\"name\":\"env\",\"steps\":["
	    "{\"name\":\"bare\",\"action\":{\"type\":\"exec\",\"argv\":"
	    "[\"/usr/bin/env\"]}},"
	    "{\"name\":\"given\",\"action\":{\"type\":\"exec\",\"argv\":"
	    "[\"/usr/bin/env\"],\"env\":{\"B\":\"two words\",\"A\":\"1\","
	    "\"EMPTY\":\"\",\"PATH\":\"/nowhere\"}}},"
	    "{\"name\":\"search\",\"action\":{\"type\":\"exec\",\"argv\":"
	    "[\"env\"],\"env\":{\"ONLY\":\"this\"}}}]}"));
	ck_assert_str_eq(wf_state(w), "succeeded");
	/* Nothing at all: no PATH, no HOME, nothing of the daemon's. */
	ck_assert_str_eq(out_text(w, "bare"), "");
	o = json_object_get(step_of(w, "bare"), "output");
	ck_assert_int_eq(json_integer_value(json_object_get(o, "exit_code")),
	    0);
	ck_assert(json_is_false(json_object_get(o, "truncated")));
	ck_assert_str_eq(sorted_lines(out_text(w, "given")),
	    "A=1\nB=two words\nEMPTY=\nPATH=/nowhere\n");
	/* "env" found in the default path; the env holds no PATH for it. */
	ck_assert_str_eq(out_text(w, "search"), "ONLY=this\n");
	json_decref(w);

	/* env.PATH is where a bare name is looked for, and only there. */
	w = wait_wf(fd, create(fd, "{\"name\":\"nopath\","
	    "\"rollback_on_failure\":false,\"steps\":[{\"name\":\"e\","
	    "\"action\":{\"type\":\"exec\",\"argv\":[\"env\"],\"env\":"
	    "{\"PATH\":\"/nowhere\"}}}]}"));
	ck_assert_str_eq(wf_state(w), "failed");
	ck_assert_str_eq(step_state(w, "e"), "failed");
	err = json_object_get(step_of(w, "e"), "error");
	ck_assert_int_eq(json_integer_value(json_object_get(err, "exit_code")),
	    127);
	ck_assert_str_eq(json_string_value(json_object_get(err, "message")),
	    "the program could not be run");
	ck_assert_str_eq(out_text(w, "e"), "");
	json_decref(w);
	assert_serves(&d);
	close(fd);
}
END_TEST

/* Is text n bytes of c? */
static int
all_of(const char *text, int c, size_t n)
{
	size_t	i;

	for (i = 0; i < n; i++)
		if (text[i] != c)
			return (0);
	return (text[n] == '\0');
}

/*
 * Output is capped at 1 MiB of stdout and stderr together: the first MiB
 * is kept and marked truncated, the rest is read and dropped, so a program
 * that writes 3 MiB is not blocked and finishes; exit 0 still succeeds.
 */
START_TEST(exec_output_capped_at_1_mib)
{
	char		 p[8192], m[64];
	json_t		*w;
	const json_t	*o;
	int		 fd;

	start(NULL);
	fd = raw_connect(d.sock);
	snprintf(p, sizeof(p), "{\"name\":\"cap\",\"steps\":["
	    /* exactly the cap: kept whole, not truncated */
	    "{\"name\":\"exact\",\"action\":{\"type\":\"exec\",\"argv\":"
	    "[\"/bin/sh\",\"-c\",\"head -c 1048576 /dev/zero | "
	    "tr '\\\\000' a\"]}},"
	    /* 1 MiB of a, then 2 MiB of b: the first MiB is kept */
	    "{\"name\":\"over\",\"action\":{\"type\":\"exec\",\"argv\":"
	    "[\"/bin/sh\",\"-c\",\"head -c 1048576 /dev/zero | "
	    "tr '\\\\000' a; head -c 2097152 /dev/zero | tr '\\\\000' b; "
	    "echo end > %s/over-done\"]}},"
	    /* stderr counts toward the same cap */
	    "{\"name\":\"both\",\"action\":{\"type\":\"exec\",\"argv\":"
	    "[\"/bin/sh\",\"-c\",\"head -c 1048575 /dev/zero | "
	    "tr '\\\\000' a; printf bc >&2\"]}}]}", root);
	w = wait_wf(fd, create(fd, p));
	ck_assert_str_eq(wf_state(w), "succeeded");

	o = json_object_get(step_of(w, "exact"), "output");
	ck_assert_str_eq(step_state(w, "exact"), "succeeded");
	ck_assert_uint_eq(strlen(out_text(w, "exact")), 1048576);
	ck_assert(all_of(out_text(w, "exact"), 'a', 1048576));
	ck_assert(json_is_false(json_object_get(o, "truncated")));
	ck_assert_int_eq(json_integer_value(json_object_get(o, "exit_code")),
	    0);

	o = json_object_get(step_of(w, "over"), "output");
	ck_assert_str_eq(step_state(w, "over"), "succeeded");
	ck_assert_ptr_null(json_object_get(step_of(w, "over"), "error"));
	ck_assert_int_eq(json_integer_value(json_object_get(step_of(w,
	    "over"), "attempts")), 1);
	ck_assert_uint_eq(strlen(out_text(w, "over")), 1048576);
	ck_assert(all_of(out_text(w, "over"), 'a', 1048576));
	ck_assert(json_is_true(json_object_get(o, "truncated")));
	ck_assert_int_eq(json_integer_value(json_object_get(o, "exit_code")),
	    0);
	ck_assert_uint_eq(json_object_size(o), 3);
	/* It ran to its end after the cap. */
	slurp("over-done", m, sizeof(m));
	ck_assert_str_eq(m, "end\n");

	o = json_object_get(step_of(w, "both"), "output");
	ck_assert_uint_eq(strlen(out_text(w, "both")), 1048576);
	ck_assert_uint_eq(strspn(out_text(w, "both"), "a"), 1048575);
	ck_assert_int_eq(out_text(w, "both")[1048575], 'b');
	ck_assert(json_is_true(json_object_get(o, "truncated")));
	json_decref(w);

	/* The same from the database, as workflow.get reads it. */
	{
		json_t	*r = call_on(fd, "{\"id\":1,\"method\":"
		    "\"workflow.list\",\"params\":{}}");
		json_t	*g = get_wf(fd, json_string_value(json_object_get(
		    json_array_get(json_object_get(result(r), "workflows"), 0),
		    "id")));

		ck_assert_uint_eq(strlen(out_text(result(g), "over")),
		    1048576);
		ck_assert(json_is_true(json_object_get(json_object_get(
		    step_of(result(g), "over"), "output"), "truncated")));
		json_decref(g);
		json_decref(r);
	}
	assert_serves(&d);
	close(fd);
}
END_TEST

START_TEST(file_actions)
{
	char	 p[8192], m[64];
	json_t	*w;
	int	 fd;

	start(NULL);
	fd = raw_connect(d.sock);
	snprintf(p, sizeof(p), "{\"name\":\"files\",\"steps\":["
	    "{\"name\":\"mk\",\"action\":{\"type\":\"mkdir\",\"path\":\"%s/d\"}},"
	    "{\"name\":\"w\",\"action\":{\"type\":\"write\",\"path\":\"%s/d/a\","
	    "\"content\":\"hello\"}},"
	    "{\"name\":\"cp\",\"action\":{\"type\":\"copy\",\"src\":\"%s/d/a\","
	    "\"dst\":\"%s/b\"}},"
	    "{\"name\":\"mv\",\"action\":{\"type\":\"move\",\"src\":\"%s/b\","
	    "\"dst\":\"%s/c\"}},"
	    "{\"name\":\"rm\",\"action\":{\"type\":\"delete\",\"path\":"
	    "\"%s/d/a\"}}]}", root, root, root, root, root, root, root);
	w = wait_wf(fd, create(fd, p));
	ck_assert_str_eq(wf_state(w), "succeeded");
	slurp("c", m, sizeof(m));
	ck_assert_str_eq(m, "hello");
	slurp("d/a", m, sizeof(m));
	ck_assert_str_eq(m, "");
	json_decref(w);
	/* mkdir of a directory that is there: done (as a re-run is). */
	snprintf(p, sizeof(p), "{\"name\":\"again\",\"steps\":[{\"name\":"
	    "\"mk\",\"action\":{\"type\":\"mkdir\",\"path\":\"%s/d\"}}]}",
	    root);
	w = wait_wf(fd, create(fd, p));
	ck_assert_str_eq(wf_state(w), "succeeded");
	json_decref(w);
	/* mkdir beneath a regular file: ENOTDIR, and nothing made. */
	snprintf(p, sizeof(p), "{\"name\":\"under\",\"steps\":[{\"name\":"
	    "\"mk\",\"action\":{\"type\":\"mkdir\",\"path\":\"%s/c/sub\"}}]}",
	    root);
	w = wait_wf(fd, create(fd, p));
	ck_assert_str_eq(wf_state(w), "compensated");
	ck_assert_str_eq(step_state(w, "mk"), "failed");
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(
	    step_of(w, "mk"), "error"), "errno")), "ENOTDIR");
	{
		struct stat	 st;
		char		 path[256];

		snprintf(path, sizeof(path), "%s/c", root);
		ck_assert_int_eq(lstat(path, &st), 0);
		ck_assert(S_ISREG(st.st_mode));
		snprintf(path, sizeof(path), "%s/c/sub", root);
		ck_assert_int_eq(lstat(path, &st), -1);
		ck_assert_int_eq(errno, ENOTDIR);
	}
	slurp("c", m, sizeof(m));
	ck_assert_str_eq(m, "hello");
	json_decref(w);
	/* Outside the roots: refused when the step runs. */
	w = wait_wf(fd, create(fd, "{\"name\":\"out\",\"steps\":[{\"name\":"
	    "\"w\",\"action\":{\"type\":\"write\",\"path\":\"/etc/ermd-x\","
	    "\"content\":\"x\"}}]}"));
	ck_assert_str_eq(wf_state(w), "compensated");
	ck_assert_int_eq(access("/etc/ermd-x", F_OK), -1);
	json_decref(w);
	close(fd);
}
END_TEST

START_TEST(backup_and_restore_actions)
{
	char	 p[8192], m[64], path[256];
	json_t	*w;
	FILE	*f;
	int	 fd;

	start(NULL);
	fd = raw_connect(d.sock);
	snprintf(path, sizeof(path), "%s/app.conf", root);
	ck_assert_ptr_nonnull(f = fopen(path, "w"));
	fputs("old\n", f);
	fclose(f);
	/* Back up, overwrite, fail: the compensation restores the file. */
	snprintf(p, sizeof(p), "{\"name\":\"br\",\"steps\":["
	    "{\"name\":\"b\",\"action\":{\"type\":\"backup\",\"path\":\"%s\"}},"
	    "{\"name\":\"w\",\"action\":{\"type\":\"write\",\"path\":\"%s\","
	    "\"content\":\"new\\n\"},\"compensate\":{\"type\":\"restore\","
	    "\"path\":\"%s\"}},"
	    "{\"name\":\"x\",\"action\":{\"type\":\"http\",\"method\":"
	    "\"GET\",\"url\":\"http://127.0.0.1:1/\"}}]}", path, path, path);
	w = wait_wf(fd, create(fd, p));
	ck_assert_str_eq(wf_state(w), "compensated");
	ck_assert_str_eq(step_state(w, "w"), "compensated");
	ck_assert_ptr_nonnull(json_object_get(json_object_get(step_of(w, "b"),
	    "output"), "sha256"));
	/* The refused connection is a network error. */
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(
	    step_of(w, "x"), "error"), "category")), "NETWORK_ERROR");
	slurp("app.conf", m, sizeof(m));
	ck_assert_str_eq(m, "old\n");
	json_decref(w);
	close(fd);
}
END_TEST

/*
 * A loopback HTTP server in a child: the first request gets 503, the
 * others 200 "ok". Returns the port; *pid is the child.
 */
static int
http_server(pid_t *pid)
{
	struct sockaddr_in	 sin;
	socklen_t		 len = sizeof(sin);
	char			 buf[4096];
	const char		*reply;
	int			 s, c, n = 0;

	ck_assert_int_ne(s = socket(AF_INET, SOCK_STREAM, 0), -1);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(s, (struct sockaddr *)&sin, sizeof(sin)), 0);
	ck_assert_int_eq(listen(s, 8), 0);
	ck_assert_int_eq(getsockname(s, (struct sockaddr *)&sin, &len), 0);
	if ((*pid = fork()) == 0) {
		for (;;) {
			if ((c = accept(s, NULL, NULL)) == -1)
				_exit(1);
			(void)read(c, buf, sizeof(buf));
			reply = n++ == 0 ? "HTTP/1.1 503 Busy\r\nContent-Length: "
			    "0\r\nConnection: close\r\n\r\n" : "HTTP/1.1 200 OK"
			    "\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";
			(void)write(c, reply, strlen(reply));
			close(c);
		}
	}
	close(s);
	return (ntohs(sin.sin_port));
}

START_TEST(http_action_retries)
{
	char	 p[4096];
	json_t	*w, *out;
	pid_t	 srv;
	int	 fd, port;

	port = http_server(&srv);
	start(NULL);
	fd = raw_connect(d.sock);
	snprintf(p, sizeof(p), "{\"name\":\"web\",\"steps\":[{\"name\":"
	    "\"h\",\"timeout_ms\":5000,\"retry\":{\"max_attempts\":3,"
	    "\"base_delay_ms\":10,\"jitter\":\"none\"},\"action\":"
	    "{\"type\":\"http\",\"method\":\"POST\",\"url\":"
	    "\"http://127.0.0.1:%d/x\",\"headers\":{\"X-Test\":\"1\"},"
	    "\"body\":\"hello\",\"expect_status\":[200,201]}}]}", port);
	w = wait_wf(fd, create(fd, p));
	kill(srv, SIGKILL);
	waitpid(srv, NULL, 0);
	ck_assert_str_eq(wf_state(w), "succeeded");
	ck_assert_int_eq(json_integer_value(json_object_get(step_of(w, "h"),
	    "attempts")), 2);
	out = json_object_get(step_of(w, "h"), "output");
	ck_assert_int_eq(json_integer_value(json_object_get(out, "status")),
	    200);
	ck_assert_str_eq(json_string_value(json_object_get(out, "body")), "ok");
	json_decref(w);
	close(fd);
}
END_TEST

/* As uid 65534 (nobody), in a child: the code of creating params. */
static int
create_as_nobody(const char *params)
{
	json_t	*r;
	pid_t	 pid;
	int	 st, fd, code;

	if ((pid = fork()) == 0) {
		if (setgroups(0, NULL) == -1 || setgid(65534) == -1 ||
		    setuid(65534) == -1)
			_exit(100);
		if ((fd = raw_connect(d.sock)) == -1)
			_exit(101);
		r = call_on(fd, "{\"id\":1,\"method\":\"workflow.create\","
		    "\"params\":%s}", params);
		code = reply_code(r);
		_exit(code == 0 ? 0 : code == 1002 ? 2 : code == -32602 ? 3 :
		    4);
	}
	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	ck_assert(WIFEXITED(st));
	return (WEXITSTATUS(st));
}

START_TEST(exec_only_for_allowed_peers)
{
	static const char exec_wf[] = "{\"name\":\"e\",\"steps\":[{\"name\":"
	    "\"a\",\"action\":{\"type\":\"sleep\",\"ms\":1},\"compensate\":"
	    "{\"type\":\"exec\",\"argv\":[\"/bin/true\"]}}]}";
	static const char sleep_wf[] = "{\"name\":\"s\",\"steps\":[{\"name\":"
	    "\"a\",\"action\":{\"type\":\"sleep\",\"ms\":1}}]}";

	if (geteuid() != 0)
		return;		/* needs to become another user */
	start_conf(NULL, "[daemon]\nsocket_mode = 0666\n");
	ck_assert_int_eq(chmod(d.dir, 0755), 0);
	/* An exec compensation counts too. */
	ck_assert_int_eq(create_as_nobody(exec_wf), 2);
	ck_assert_int_eq(create_as_nobody(sleep_wf), 0);
	ck_assert_int_eq(daemon_stop_keep(&d), 0);
	daemon_write_conf(&d, "[daemon]\nsocket_mode = 0666\n"
	    "[workflow]\nexec_allow_groups = 65534\n");
	daemon_restart(&d);
	ck_assert_int_eq(create_as_nobody(exec_wf), 0);
	assert_serves(&d);
	/* Group names are resolved when the config is read: a name that
	 * is no group is a config error, not a silent "nobody". */
	{
		char	 path[300], out[1024], want[1024];
		const char *argv[] = { ermd_path(), "-t", "-c", path, NULL };
		FILE	*fp;

		snprintf(path, sizeof(path), "%s/groups.conf", d.dir);
		fp = fopen(path, "w");
		fputs("[workflow]\nexec_allow_groups = nogroup, "
		    "no-such-group-ermd\n", fp);
		fclose(fp);
		ck_assert_int_eq(run_prog(out, sizeof(out), argv), 78);
		snprintf(want, sizeof(want), "%s:2: exec_allow_groups: no "
		    "group 'no-such-group-ermd'\n", path);
		ck_assert_str_eq(out, want);
	}
}
END_TEST

START_TEST(limits_status_and_metrics)
{
	char	 p[4096];
	json_t	*r;
	int	 fd;

	start_conf(NULL, "[workflow]\nmax_running = 1\nmax_steps = 3\n");
	fd = raw_connect(d.sock);
	create(fd, "{\"name\":\"slow\",\"steps\":[{\"name\":\"z\",\"action\":"
	    "{\"type\":\"exec\",\"argv\":[\"sleep\",\"300\"]}}]}");
	r = call_on(fd, "{\"id\":1,\"method\":\"status\"}");
	ck_assert_int_eq(json_integer_value(json_object_get(result(r),
	    "workflows_running")), 1);
	json_decref(r);
	r = call_on(fd, "{\"id\":1,\"method\":\"workflow.create\",\"params\":"
	    "{\"name\":\"two\",\"steps\":[{\"name\":\"a\",\"action\":"
	    "{\"type\":\"sleep\",\"ms\":1}}]}}");
	ck_assert_int_eq(reply_code(r), 1005);
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(
	    json_object_get(r, "error"), "data"), "limit")),
	    "workflow.max_running");
	json_decref(r);
	/* Not running: allowed, and still counted against max_steps. */
	snprintf(p, sizeof(p), "{\"id\":1,\"method\":\"workflow.create\","
	    "\"params\":{\"name\":\"four\",\"run\":false,\"steps\":["
	    "{\"name\":\"a\",\"action\":{\"type\":\"sleep\",\"ms\":1}},"
	    "{\"name\":\"b\",\"action\":{\"type\":\"sleep\",\"ms\":1}},"
	    "{\"name\":\"c\",\"action\":{\"type\":\"sleep\",\"ms\":1}},"
	    "{\"name\":\"d\",\"action\":{\"type\":\"sleep\",\"ms\":1}}]}}");
	r = call_on(fd, "%s", p);
	ck_assert_int_eq(reply_code(r), 1005);
	json_decref(r);
	r = call_on(fd, "{\"id\":1,\"method\":\"workflow.create\",\"params\":"
	    "{\"name\":\"later\",\"run\":false,\"steps\":[{\"name\":\"a\","
	    "\"action\":{\"type\":\"sleep\",\"ms\":1}}]}}");
	ck_assert_str_eq(wf_state(result(r)), "pending");
	json_decref(r);
	r = call_on(fd, "{\"id\":1,\"method\":\"metrics.get\"}");
	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(
	    result(r), "workflows"), "pending")), 1);
	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(
	    result(r), "workflows"), "running")), 1);
	json_decref(r);
	close(fd);
	assert_serves(&d);
}
END_TEST

/*
 * metrics.get's workflows by state (kept as commits complete) are what the
 * table holds.
 */
static void
expect_counts_as_stored(int fd)
{
	static const char *const states[] = { "pending", "running",
	    "succeeded", "failed", "compensating", "compensated", "cancelled" };
	char	 sql[128];
	json_t	*r, *o;
	size_t	 i;

	r = call_on(fd, "{\"id\":1,\"method\":\"metrics.get\"}");
	o = json_object_get(result(r), "workflows");
	ck_assert_uint_eq(json_object_size(o), 7);
	for (i = 0; i < 7; i++) {
		snprintf(sql, sizeof(sql), "SELECT count(*) FROM workflows "
		    "WHERE state = '%s'", states[i]);
		ck_assert_msg(json_integer_value(json_object_get(o, states[i]))
		    == db_int(&d, sql), "%s: %lld counted, %lld stored",
		    states[i], (long long)json_integer_value(json_object_get(o,
		    states[i])), (long long)db_int(&d, sql));
	}
	json_decref(r);
}

/*
 * Finished workflows older than [workflow] max_age_ms go, steps and all,
 * on the daemon clock; younger ones and unfinished ones stay.
 */
START_TEST(finished_workflows_are_pruned)
{
	static const char quick[] = "{\"name\":\"%s\",\"steps\":[{\"name\":"
	    "\"a\",\"action\":{\"type\":\"exec\",\"argv\":[\"true\"]}}]}";
	char	 p[512], old[64], young[64], held[64], sql[256];
	json_t	*r, *w;
	int	 fd;

	start_conf(manual, "[workflow]\nmax_age_ms = 60000\n"
	    "prune_interval_ms = 1000\n");
	fd = raw_connect(d.sock);
	snprintf(p, sizeof(p), quick, "old");
	snprintf(old, sizeof(old), "%s", create(fd, p));
	w = wait_wf(fd, old);
	ck_assert_str_eq(wf_state(w), "succeeded");
	json_decref(w);
	snprintf(held, sizeof(held), "%s", create(fd, "{\"name\":\"held\","
	    "\"run\":false,\"steps\":[{\"name\":\"a\",\"action\":"
	    "{\"type\":\"sleep\",\"ms\":1}}]}"));
	advance_on(fd, 30000);
	snprintf(p, sizeof(p), quick, "young");
	snprintf(young, sizeof(young), "%s", create(fd, p));
	w = wait_wf(fd, young);
	ck_assert_str_eq(wf_state(w), "succeeded");
	json_decref(w);

	/* old finished 61 s ago, young 31 s ago. */
	advance_on(fd, 31000);
	/*
	 * One prune job at a time: the ticks inside the long advance found
	 * the first (of the first tick's time) still going, so one more runs
	 * once it is done; the next advance starts it, with the cutoff of
	 * the end of the long one. A create after that commits after it.
	 */
	create(fd, "{\"name\":\"b1\",\"run\":false,\"steps\":[{\"name\":"
	    "\"a\",\"action\":{\"type\":\"sleep\",\"ms\":1}}]}");
	advance_on(fd, 1000);
	create(fd, "{\"name\":\"b2\",\"run\":false,\"steps\":[{\"name\":"
	    "\"a\",\"action\":{\"type\":\"sleep\",\"ms\":1}}]}");

	r = get_wf(fd, old);
	ck_assert_int_eq(reply_code(r), 1001);
	json_decref(r);
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM workflow_steps "
	    "WHERE workflow_id = '%s'", old);
	ck_assert_int_eq(db_int(&d, sql), 0);
	r = get_wf(fd, young);
	ck_assert_str_eq(wf_state(result(r)), "succeeded");
	json_decref(r);
	r = get_wf(fd, held);
	ck_assert_str_eq(wf_state(result(r)), "pending");
	json_decref(r);
	ck_assert_int_eq(db_int(&d, "SELECT count(*) FROM workflows"), 4);
	r = call_on(fd, "{\"id\":1,\"method\":\"metrics.get\"}");
	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(
	    result(r), "workflows"), "succeeded")), 1);
	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(
	    result(r), "workflows"), "pending")), 3);
	json_decref(r);
	expect_counts_as_stored(fd);
	close(fd);
	/* Counted again from the table after a restart. */
	ck_assert_int_eq(daemon_stop_keep(&d), 0);
	daemon_restart(&d);
	fd = raw_connect(d.sock);
	expect_counts_as_stored(fd);
	close(fd);
	assert_serves(&d);

	/* The retention keys, checked as the others of [workflow]. */
	{
		char	 path[300], out[1024], want[1024];
		const char *argv[] = { ermd_path(), "-t", "-c", path, NULL };
		FILE	*fp;

		snprintf(path, sizeof(path), "%s/retention.conf", d.dir);
		ck_assert_ptr_nonnull(fp = fopen(path, "w"));
		fputs("[workflow]\nmax_age_ms = -1\nprune_interval_ms = 1d\n",
		    fp);
		fclose(fp);
		ck_assert_int_eq(run_prog(out, sizeof(out), argv), 78);
		snprintf(want, sizeof(want), "%1$s:2: max_age_ms: '-1' must be "
		    "an integer from 0 to 315360000000\n%1$s:3: "
		    "prune_interval_ms: '1d' must be an integer from 0 to "
		    "86400000\n", path);
		ck_assert_str_eq(out, want);
	}
}
END_TEST

START_TEST(bad_graphs_are_refused)
{
	static const struct {
		const char	*steps;
		const char	*field;
		const char	*names;
	} bad[] = {
		{ "[{\"name\":\"a\",\"action\":{\"type\":\"sleep\",\"ms\":1},"
		  "\"after\":[\"b\"]},{\"name\":\"b\",\"action\":{\"type\":"
		  "\"sleep\",\"ms\":1},\"after\":[\"a\"]}]", "steps[0].after",
		  "'a'" },
		{ "[{\"name\":\"a\",\"action\":{\"type\":\"sleep\",\"ms\":1},"
		  "\"after\":[\"zz\"]}]", "steps[0].after", "'zz'" },
		{ "[{\"name\":\"a\",\"action\":{\"type\":\"sleep\",\"ms\":1}},"
		  "{\"name\":\"a\",\"action\":{\"type\":\"sleep\",\"ms\":1}}]",
		  "steps[1].name", "'a'" },
		{ "[{\"name\":\"a\",\"action\":{\"type\":\"exec\",\"argv\":"
		  "\"ls\"}}]", "steps[0].action.argv", "" },
		{ "[{\"name\":\"a\",\"action\":{\"type\":\"nope\"}}]",
		  "steps[0].action.type", "" },
		{ "[]", "steps", "" },
	};
	json_t	*r, *data;
	size_t	 i;
	int	 fd;

	start(NULL);
	fd = raw_connect(d.sock);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		r = call_on(fd, "{\"id\":1,\"method\":\"workflow.create\","
		    "\"params\":{\"name\":\"x\",\"steps\":%s}}", bad[i].steps);
		ck_assert_int_eq(reply_code(r), -32602);
		data = json_object_get(json_object_get(r, "error"), "data");
		ck_assert_str_eq(json_string_value(json_object_get(data,
		    "field")), bad[i].field);
		ck_assert_ptr_nonnull(strstr(json_string_value(json_object_get(
		    data, "reason")), bad[i].names));
		json_decref(r);
	}
	r = get_wf(fd, "01900000-0000-7000-8000-000000000000");
	ck_assert_int_eq(reply_code(r), 1001);
	json_decref(r);
	close(fd);
	assert_serves(&d);
}
END_TEST

START_TEST(cancel_and_pending)
{
	json_t	*r, *w;
	char	 id[64];
	int	 fd;

	start(NULL);
	fd = raw_connect(d.sock);
	snprintf(id, sizeof(id), "%s", create(fd, "{\"name\":\"p\",\"run\":"
	    "false,\"steps\":[{\"name\":\"a\",\"action\":{\"type\":\"sleep\","
	    "\"ms\":1}}]}"));
	r = get_wf(fd, id);
	ck_assert_str_eq(wf_state(result(r)), "pending");
	json_decref(r);
	r = call_on(fd, "{\"id\":1,\"method\":\"workflow.run\",\"params\":"
	    "{\"id\":\"%s\"}}", id);
	ck_assert_str_eq(wf_state(result(r)), "running");
	json_decref(r);
	w = wait_wf(fd, id);
	ck_assert_str_eq(wf_state(w), "succeeded");
	json_decref(w);
	r = call_on(fd, "{\"id\":1,\"method\":\"workflow.cancel\",\"params\":"
	    "{\"id\":\"%s\"}}", id);
	ck_assert_int_eq(reply_code(r), 1003);
	json_decref(r);
	/* A long step, cancelled: stopped, the step before compensated. */
	snprintf(id, sizeof(id), "%s", create(fd, "{\"name\":\"c\",\"steps\":"
	    "[{\"name\":\"a\",\"action\":{\"type\":\"sleep\",\"ms\":1},"
	    "\"compensate\":{\"type\":\"sleep\",\"ms\":1}},{\"name\":\"b\","
	    "\"action\":{\"type\":\"exec\",\"argv\":[\"sleep\",\"300\"]}}]}"));
	usleep(300000);
	r = call_on(fd, "{\"id\":1,\"method\":\"workflow.cancel\",\"params\":"
	    "{\"id\":\"%s\"}}", id);
	ck_assert_str_eq(wf_state(result(r)), "cancelled");
	ck_assert_str_eq(step_state(result(r), "a"), "compensated");
	ck_assert_str_eq(step_state(result(r), "b"), "failed");
	json_decref(r);
	close(fd);
}
END_TEST

START_TEST(client_steps)
{
	json_t	*r, *ev, *w;
	char	 id[64];
	int	 fd, fd2;

	start(NULL);
	fd = raw_connect(d.sock);
	snprintf(id, sizeof(id), "%s", create(fd, "{\"name\":\"cl\",\"steps\":"
	    "[{\"name\":\"mine\",\"action\":{\"type\":\"client\"}}]}"));
	ev = raw_recv(fd, 5000);
	ck_assert_ptr_nonnull(ev);
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(ev,
	    "params"), "type")), "workflow.step");
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(ev,
	    "params"), "step")), "mine");
	json_decref(ev);
	r = call_on(fd, "{\"id\":5,\"method\":\"workflow.step_result\","
	    "\"params\":{\"id\":\"%s\",\"step\":\"mine\",\"ok\":true,"
	    "\"output\":{\"n\":1}}}", id);
	ck_assert(json_is_true(json_object_get(result(r), "accepted")));
	json_decref(r);
	w = wait_wf(fd, id);
	ck_assert_str_eq(wf_state(w), "succeeded");
	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(
	    step_of(w, "mine"), "output"), "n")), 1);
	json_decref(w);

	/* A client that goes away mid-step fails its step. */
	snprintf(id, sizeof(id), "%s", create(fd, "{\"name\":\"gone\","
	    "\"steps\":[{\"name\":\"pre\",\"action\":{\"type\":\"sleep\","
	    "\"ms\":1},\"compensate\":{\"type\":\"sleep\",\"ms\":1}},"
	    "{\"name\":\"mine\",\"action\":{\"type\":\"client\"}}]}"));
	ev = raw_recv(fd, 5000);
	ck_assert_ptr_nonnull(ev);
	json_decref(ev);
	close(fd);
	fd2 = raw_connect(d.sock);
	w = wait_wf(fd2, id);
	ck_assert_str_eq(wf_state(w), "compensated");
	ck_assert_str_eq(step_state(w, "mine"), "failed");
	ck_assert_str_eq(step_state(w, "pre"), "compensated");
	json_decref(w);
	close(fd2);
}
END_TEST

/* Poll workflow.get until step name is state. */
static json_t *
get_when(int fd, const char *id, const char *name, const char *state)
{
	json_t	*r;
	int	 i;

	for (i = 0; i < 500; i++) {
		r = get_wf(fd, id);
		if (strcmp(step_state(result(r), name), state) == 0)
			return (r);
		json_decref(r);
		usleep(10000);
	}
	ck_abort_msg("step %s never became %s", name, state);
	return (NULL);
}

START_TEST(restart_rules)
{
	char	 a[64], b[64], m[64];
	json_t	*r, *w;
	int	 fd;

	start(NULL);
	fd = raw_connect(d.sock);
	/* Idempotent: run again after kill -9 (attempt 2). */
	snprintf(a, sizeof(a), "%s", create(fd, "{\"name\":\"idem\","
	    "\"steps\":[{\"name\":\"z\",\"idempotent\":true,\"action\":"
	    "{\"type\":\"exec\",\"argv\":[\"sleep\",\"300\"]}}]}"));
	/* Not idempotent: failed, and the step before it compensated. */
	snprintf(p_buf, sizeof(p_buf), "{\"name\":\"once\",\"steps\":["
	    "{\"name\":\"pre\",\"action\":{\"type\":\"sleep\",\"ms\":1},"
	    "\"compensate\":{\"type\":\"write\",\"path\":\"%s/undone\","
	    "\"content\":\"yes\"}},{\"name\":\"z\",\"action\":{\"type\":"
	    "\"exec\",\"argv\":[\"sleep\",\"300\"]}}]}", root);
	snprintf(b, sizeof(b), "%s", create(fd, p_buf));
	json_decref(get_when(fd, a, "z", "running"));
	json_decref(get_when(fd, b, "z", "running"));
	close(fd);
	daemon_kill9(&d);
	daemon_restart(&d);
	fd = raw_connect(d.sock);
	r = get_when(fd, a, "z", "running");
	ck_assert_int_eq(json_integer_value(json_object_get(step_of(result(r),
	    "z"), "attempts")), 2);
	json_decref(r);
	w = wait_wf(fd, b);
	ck_assert_str_eq(wf_state(w), "compensated");
	ck_assert_str_eq(step_state(w, "z"), "failed");
	ck_assert_ptr_nonnull(strstr(json_string_value(json_object_get(
	    json_object_get(step_of(w, "z"), "error"), "message")),
	    "restart"));
	slurp("undone", m, sizeof(m));
	ck_assert_str_eq(m, "yes");
	json_decref(w);
	r = call_on(fd, "{\"id\":1,\"method\":\"workflow.cancel\","
	    "\"params\":{\"id\":\"%s\"}}", a);
	ck_assert_str_eq(wf_state(result(r)), "cancelled");
	json_decref(r);
	close(fd);
}
END_TEST

/*
 * A cancel cut short by kill -9: a's program ignores SIGTERM, so the
 * cancel is recorded (b skipped, the workflow's error 1010) while a is
 * still recorded running, waiting the 5 s before SIGKILL; the daemon
 * dies in that window. After the restart the cancel goes on: a is failed
 * and never run again, although it is idempotent, b stays skipped, and
 * the workflow ends cancelled, as it would have without the crash,
 * rather than running for ever.
 */
START_TEST(cancel_survives_a_crash)
{
	char	 p[4096], id[64], sql[512], m[64];
	json_t	*r, *w;
	pid_t	 pg;
	int	 fd, i;

	start(NULL);
	fd = raw_connect(d.sock);
	snprintf(p, sizeof(p), "{\"name\":\"cc\",\"steps\":["
	    "{\"name\":\"a\",\"idempotent\":true,\"action\":{\"type\":\"exec\","
	    "\"argv\":[\"/bin/sh\",\"-c\",\"trap '' TERM; echo $$ > %s/pg; "
	    "echo x >> %s/runs; sleep 30\"]}},"
	    "{\"name\":\"b\",\"after\":[\"a\"],\"action\":{\"type\":\"sleep\","
	    "\"ms\":1}}]}", root, root);
	snprintf(id, sizeof(id), "%s", create(fd, p));
	/* The trap is set once the pid is written. */
	pg = read_pid("pg");
	/* Not waited for: the reply comes only once the cancel is done. */
	snprintf(p, sizeof(p), "{\"id\":9,\"method\":\"workflow.cancel\","
	    "\"params\":{\"id\":\"%s\"}}", id);
	raw_send_frame(fd, p);
	/* Kill once the cancel is durable, well inside the grace period. */
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM workflow_steps s, "
	    "workflows w WHERE s.workflow_id = w.id AND w.id = '%s' AND "
	    "((s.name = 'a' AND s.state = 'running') OR (s.name = 'b' AND "
	    "s.state = 'skipped')) AND w.state = 'running' AND "
	    "w.error LIKE '%%1010%%'", id);
	for (i = 0; i < 500 && db_int(&d, sql) != 2; i++)
		usleep(10000);
	ck_assert_int_eq(db_int(&d, sql), 2);
	daemon_kill9(&d);
	close(fd);
	(void)kill(-pg, SIGKILL);	/* whatever outlived its parent */
	daemon_restart(&d);

	fd = raw_connect(d.sock);
	/* Shorter than the harness's 10 s for a reply. */
	r = call_on(fd, "{\"id\":2,\"method\":\"workflow.wait\",\"params\":"
	    "{\"id\":\"%s\",\"timeout_ms\":5000}}", id);
	ck_assert_msg(reply_code(r) == 0, "workflow.wait did not return: "
	    "code %d", reply_code(r));
	w = result(r);
	ck_assert_str_eq(wf_state(w), "cancelled");
	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(w,
	    "error"), "code")), 1010);
	ck_assert_str_eq(step_state(w, "a"), "failed");
	ck_assert_int_eq(json_integer_value(json_object_get(step_of(w, "a"),
	    "attempts")), 1);
	ck_assert_str_eq(step_state(w, "b"), "skipped");
	ck_assert_int_eq(json_integer_value(json_object_get(step_of(w, "b"),
	    "attempts")), 0);
	json_decref(r);
	slurp("runs", m, sizeof(m));
	ck_assert_str_eq(m, "x\n");
	/* It no longer counts toward max_running. */
	r = call_on(fd, "{\"id\":1,\"method\":\"status\"}");
	ck_assert_int_eq(json_integer_value(json_object_get(result(r),
	    "workflows_running")), 0);
	json_decref(r);
	close(fd);
	assert_serves(&d);
}
END_TEST

/*
 * kill -9 (and every fifth time SIGTERM) at random moments in 10-step
 * workflows. Each step appends to its
 * own marker (and its compensation to another); none is idempotent, so a
 * step cut short by the kill must be failed and compensated, never run
 * again, and no step that completed runs twice.
 */
START_TEST(crash_resume)
{
	char		 p[16384], a[512], c[512], w[16], m[256], id[64];
	json_t		*res;
	size_t		 off;
	int		 round, i, fd, lines, n[3] = { 0, 0, 0 };
	unsigned	 seed = (unsigned)time(NULL);
	const char	*st;

	srandom(seed);
	start(NULL);
	for (round = 0; round < 20; round++) {
		off = (size_t)snprintf(p, sizeof(p), "{\"name\":\"crash%d\","
		    "\"steps\":[", round);
		for (i = 0; i < 10; i++) {
			snprintf(w, sizeof(w), "r%d.%d", round, i);
			if (i % 3 == 2)
				/* Not a program: run again after a crash. */
				snprintf(a, sizeof(a), "{\"type\":\"write\","
				    "\"path\":\"%s/%s\",\"content\":\"x\\n\"}",
				    root, w);
			else
				snprintf(a, sizeof(a), "{\"type\":\"exec\","
				    "\"argv\":[\"/bin/sh\",\"-c\",\"echo x >> "
				    "%s/%s; sleep 0.0%d\"]}", root, w, i % 4);
			snprintf(w, sizeof(w), "c%d.%d", round, i);
			append(c, sizeof(c), "x", w);
			off += (size_t)snprintf(p + off, sizeof(p) - off,
			    "%s{\"name\":\"s%d\",\"action\":%s,\"compensate\":"
			    "%s}", i ? "," : "", i, a, c);
		}
		snprintf(p + off, sizeof(p) - off, "]}");
		fd = raw_connect(d.sock);
		snprintf(id, sizeof(id), "%s", create(fd, p));
		close(fd);
		usleep((useconds_t)(random() % 250000));
		/* Every fifth restart is an orderly one. */
		if (round % 5 == 4)
			ck_assert_int_eq(daemon_stop_keep(&d), 0);
		else
			daemon_kill9(&d);
		daemon_restart(&d);
		fd = raw_connect(d.sock);
		res = wait_wf(fd, id);
		close(fd);
		st = wf_state(res);
		ck_assert_msg(strcmp(st, "succeeded") == 0 ||
		    strcmp(st, "compensated") == 0 || strcmp(st, "failed") == 0,
		    "round %d (seed %u): %s", round, seed, st);
		for (i = 0; i < 10; i++) {
			snprintf(w, sizeof(w), "s%d", i);
			snprintf(a, sizeof(a), "r%d.%d", round, i);
			slurp(a, m, sizeof(m));
			lines = (int)(strlen(m) / 2);
			ck_assert_msg(lines <= 1, "round %d (seed %u): step %d "
			    "ran %d times", round, seed, i, lines);
			if (strcmp(step_state(res, w), "succeeded") == 0 ||
			    strcmp(step_state(res, w), "compensated") == 0)
				ck_assert_msg(lines == 1, "round %d: step %d "
				    "completed without running", round, i);
			if (strcmp(step_state(res, w), "skipped") == 0 ||
			    strcmp(step_state(res, w), "pending") == 0)
				ck_assert_msg(lines == 0, "round %d: skipped "
				    "step %d ran", round, i);
			snprintf(a, sizeof(a), "c%d.%d", round, i);
			slurp(a, m, sizeof(m));
			ck_assert_msg(strlen(m) <= 2, "round %d: compensation "
			    "%d ran twice", round, i);
			if (strcmp(step_state(res, w), "compensated") == 0)
				ck_assert_msg(strlen(m) == 2, "round %d: %d "
				    "compensated without running", round, i);
		}
		n[st[0] == 's' ? 0 : st[0] == 'c' ? 1 : 2]++;
		if (strcmp(st, "succeeded") == 0)
			for (i = 0; i < 10; i++) {
				snprintf(w, sizeof(w), "s%d", i);
				ck_assert_str_eq(step_state(res, w),
				    "succeeded");
			}
		json_decref(res);
	}
	fprintf(stderr, "crash_resume: 20 restarts (seed %u): %d succeeded, "
	    "%d compensated, %d failed\n", seed, n[0], n[1], n[2]);
	fd = raw_connect(d.sock);
	expect_counts_as_stored(fd);
	close(fd);
	assert_serves(&d);
}
END_TEST

int
main(void)
{
	Suite	*s = suite_create("workflow");
	TCase	*tc = tcase_create("workflow");
	TCase	*crash = tcase_create("crash");
	SRunner	*sr;
	int	 failed;

	tcase_set_timeout(tc, 60);
	tcase_add_checked_fixture(tc, NULL, stop);
	tcase_add_test(tc, sequential_success);
	tcase_add_test(tc, failure_compensates_in_reverse);
	tcase_add_test(tc, without_rollback_fails);
	tcase_add_test(tc, parallel_failure_stops_siblings);
	tcase_add_test(tc, parallel_compensation);
	tcase_add_test(tc, failing_compensation_stops);
	tcase_add_test(tc, failing_compensation_continues);
	tcase_add_test(tc, retries_a_flaky_step);
	tcase_add_test(tc, breaker_guards_a_step);
	tcase_add_test(tc, timeout_kills_the_process_group);
	tcase_add_test(tc, argv_is_literal);
	tcase_add_test(tc, exec_environment_is_cleared);
	tcase_add_test(tc, exec_output_capped_at_1_mib);
	tcase_add_test(tc, file_actions);
	tcase_add_test(tc, backup_and_restore_actions);
	tcase_add_test(tc, exec_only_for_allowed_peers);
	tcase_add_test(tc, http_action_retries);
	tcase_add_test(tc, limits_status_and_metrics);
	tcase_add_test(tc, finished_workflows_are_pruned);
	tcase_add_test(tc, bad_graphs_are_refused);
	tcase_add_test(tc, cancel_and_pending);
	tcase_add_test(tc, client_steps);
	tcase_add_test(tc, restart_rules);
	tcase_add_test(tc, cancel_survives_a_crash);
	suite_add_tcase(s, tc);
	tcase_set_timeout(crash, 150);
	tcase_add_checked_fixture(crash, NULL, stop);
	tcase_add_test(crash, crash_resume);
	suite_add_tcase(s, crash);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return (failed ? 1 : 0);
}
