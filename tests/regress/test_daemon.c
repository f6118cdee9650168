/*
 * The daemon around the protocol: config checking and reloading, admin
 * gating by peer credentials, systemd integration (notify, watchdog, socket
 * activation, journal priorities), idle timeout, events and metrics.
 */

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <check.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

static struct daemon	d;

static void
stop(void)
{
	if (d.pid > 0)
		ck_assert_int_eq(daemon_stop(&d), 0);
}

static json_t *
call_fd(int fd)
{
	json_t	*r = raw_call(fd, "{\"id\":1,\"method\":\"status\"}");

	ck_assert_ptr_nonnull(r);
	return (r);
}

static json_t *
call(const char *json)
{
	int	 fd = raw_connect(d.sock);
	json_t	*r;

	ck_assert_int_ne(fd, -1);
	r = raw_call(fd, json);
	close(fd);
	ck_assert_ptr_nonnull(r);
	return (r);
}

static json_int_t
status_int(const char *key)
{
	json_t		*r = call("{\"id\":1,\"method\":\"status\"}");
	json_int_t	 v;

	v = json_integer_value(json_object_get(json_object_get(r, "result"),
	    key));
	json_decref(r);
	return (v);
}

START_TEST(check_config_good_and_bad)
{
	char		 out[4096], path[160], dpath[160], want[1024];
	const char	*argv[] = { ermd_path(), "-t", "-c", path, NULL };
	FILE		*fp;

	daemon_prepare(&d);
	snprintf(path, sizeof(path), "%s/good.conf", d.dir);
	fp = fopen(path, "w");
	fputs("[daemon]\nmax_connections = 12\n[store]\ndurability = normal\n",
	    fp);
	fclose(fp);
	ck_assert_int_eq(run_prog(out, sizeof(out), argv), 0);
	snprintf(want, sizeof(want), "%s: configuration ok\n", path);
	ck_assert_str_eq(out, want);

	snprintf(path, sizeof(path), "%s/bad.conf", d.dir);
	fp = fopen(path, "w");
	fputs("[daemon]\nmax_conections = 12\n[store]\ndurability = maybe\n",
	    fp);
	fclose(fp);
	ck_assert_int_eq(run_prog(out, sizeof(out), argv), 78);
	snprintf(want, sizeof(want),
	    "%1$s:2: unknown key 'max_conections' in [daemon]; did you mean "
	    "'max_connections'?\n"
	    "%1$s:4: durability: 'maybe' is not one of full, normal\n", path);
	ck_assert_str_eq(out, want);

	/* The shipped config is valid as it is. */
	argv[3] = "conf/ermd.conf";
	ck_assert_int_eq(run_prog(out, sizeof(out), argv), 0);

	/* ...and with every key it documents set to the default it shows. */
	snprintf(dpath, sizeof(dpath), "%s/documented.conf", d.dir);
	ck_assert_int_ge(documented_conf(dpath), 99);
	argv[3] = dpath;
	ck_assert_msg(run_prog(out, sizeof(out), argv) == 0, "%s", out);

	/* Starting with a bad config fails with 78 too. */
	{
		const char	*start[] = { ermd_path(), "-f", "-c", path,
		    "-S", "/nonexistent/x.sock", NULL };

		ck_assert_int_eq(run_prog(NULL, 0, start), 78);
	}
	snprintf(out, sizeof(out), "rm -rf %s", d.dir);
	(void)!system(out);
	d.dir[0] = '\0';
}
END_TEST

START_TEST(reload_swaps_only_valid_configs)
{
	json_t	*r;
	size_t	 n;

	daemon_start(&d, "[daemon]\nmax_connections = 100\n", NULL);
	ck_assert_int_eq(status_int("config_generation"), 0);

	daemon_write_conf(&d, "[daemon]\nmax_connections = 0\nbogus = 1\n");
	r = call("{\"id\":1,\"method\":\"config.reload\"}");
	ck_assert_int_eq(reply_code(r), 1003);
	n = json_array_size(json_object_get(json_object_get(json_object_get(r,
	    "error"), "data"), "errors"));
	ck_assert_int_eq(n, 2);
	json_decref(r);
	ck_assert_int_eq(status_int("config_generation"), 0);

	daemon_write_conf(&d, "[daemon]\nmax_connections = 50\n");
	r = call("{\"id\":1,\"method\":\"config.reload\"}");
	ck_assert_int_eq(reply_code(r), 0);
	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(r,
	    "result"), "config_generation")), 1);
	json_decref(r);

	/* SIGHUP does the same. */
	kill(d.pid, SIGHUP);
	for (n = 0; n < 200 && status_int("config_generation") != 2; n++)
		usleep(10000);
	ck_assert_int_eq(status_int("config_generation"), 2);
	assert_serves(&d);
}
END_TEST

/* Connect as another uid (and groups), call method, return the code. */
static int
call_as(uid_t uid, gid_t extra_group, const char *json)
{
	int	p[2], status, code = -1;
	pid_t	pid;

	ck_assert_int_eq(pipe(p), 0);
	pid = fork();
	if (pid == 0) {
		gid_t	 groups[1] = { extra_group };
		int	 fd;
		json_t	*r;

		if (setgroups(extra_group ? 1 : 0, groups) == -1 ||
		    setgid(uid) == -1 || setuid(uid) == -1)
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

START_TEST(admin_methods_need_credentials)
{
	if (geteuid() != 0)
		return;		/* switching uids needs root */
	daemon_start(&d, "[daemon]\nsocket_mode = 0666\nadmin_group = 4242\n",
	    NULL);
	chmod(d.dir, 0755);
	ck_assert_int_eq(call_as(65534, 0,
	    "{\"id\":1,\"method\":\"ping\"}"), 0);
	ck_assert_int_eq(call_as(65534, 0,
	    "{\"id\":1,\"method\":\"config.reload\"}"), 1002);
	ck_assert_int_eq(call_as(65534, 4242,
	    "{\"id\":1,\"method\":\"config.reload\"}"), 0);
	ck_assert_int_eq(call_as(0, 0,
	    "{\"id\":1,\"method\":\"config.reload\"}"), 0);
	assert_serves(&d);
}
END_TEST

START_TEST(socket_mode_applied_at_bind)
{
	struct stat	sb;

	daemon_start(&d, "[daemon]\nsocket_mode = 0600\n", NULL);
	ck_assert_int_eq(stat(d.sock, &sb), 0);
	ck_assert(S_ISSOCK(sb.st_mode));
	ck_assert_int_eq(sb.st_mode & 0777, 0600);
}
END_TEST

/* Read datagrams from the notify socket until one contains want. */
static int
notify_saw(int fd, const char *want, int timeout_ms)
{
	struct pollfd	pfd = { fd, POLLIN, 0 };
	char		buf[1024];
	ssize_t		n;

	while (poll(&pfd, 1, timeout_ms) > 0) {
		n = recv(fd, buf, sizeof(buf) - 1, 0);
		if (n <= 0)
			return (0);
		buf[n] = '\0';
		if (strstr(buf, want) != NULL)
			return (1);
	}
	return (0);
}

START_TEST(sd_notify_ready_watchdog_stopping)
{
	static char		 env1[200];
	static const char	*env[] = { env1, "WATCHDOG_USEC=200000",
	    "JOURNAL_STREAM=8:1234", NULL };
	struct sockaddr_un	 sun;
	int			 fd, status;

	daemon_prepare(&d);
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/notify", d.dir);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	snprintf(env1, sizeof(env1), "NOTIFY_SOCKET=%s", sun.sun_path);
	daemon_start_env(&d, NULL, NULL, env, -1);
	ck_assert(notify_saw(fd, "READY=1", 5000));
	ck_assert(notify_saw(fd, "WATCHDOG=1", 5000));
	ck_assert(notify_saw(fd, "WATCHDOG=1", 5000));
	kill(d.pid, SIGTERM);
	ck_assert(notify_saw(fd, "STOPPING=1", 5000));
	waitpid(d.pid, &status, 0);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	d.pid = 0;
	/* With JOURNAL_STREAM set, lines carry a priority prefix. */
	ck_assert(daemon_log_has(&d, "<6>ermd 0.1.0 ready on", 0));
	close(fd);
	snprintf(env1, sizeof(env1), "rm -rf %s", d.dir);
	(void)!system(env1);
	d.dir[0] = '\0';
}
END_TEST

START_TEST(socket_activation)
{
	struct sockaddr_un	sun;
	int			lfd;

	daemon_prepare(&d);
	lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	ck_assert_uint_lt(strlen(d.sock), sizeof(sun.sun_path));
	memcpy(sun.sun_path, d.sock, strlen(d.sock) + 1);
	ck_assert_int_eq(bind(lfd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	ck_assert_int_eq(listen(lfd, 16), 0);
	daemon_start_env(&d, NULL, NULL, NULL, lfd);
	close(lfd);
	assert_serves(&d);
	ck_assert(daemon_log_has(&d, "socket passed by systemd", 0));
	ck_assert_int_eq(daemon_stop_keep(&d), 0);
	/* The socket file belongs to systemd: ermd leaves it. */
	ck_assert_int_eq(access(d.sock, F_OK), 0);
	{
		char	cmd[160];

		snprintf(cmd, sizeof(cmd), "rm -rf %s", d.dir);
		(void)!system(cmd);
		d.dir[0] = '\0';
	}
}
END_TEST

START_TEST(idle_timeout_on_the_daemon_clock)
{
	static const char *const args[] = { "--manual-clock", NULL };
	int	 idle, sub, ctl;
	json_t	*r;

	daemon_start(&d, "[daemon]\nidle_timeout_ms = 1000\n", args);
	idle = raw_connect(d.sock);
	sub = raw_connect(d.sock);
	ctl = raw_connect(d.sock);
	r = raw_call(sub, "{\"id\":1,\"method\":\"events.subscribe\"}");
	json_decref(r);
	r = raw_call(idle, "{\"id\":1,\"method\":\"ping\"}");
	json_decref(r);
	r = raw_call(ctl, "{\"id\":1,\"method\":\"debug.advance\","
	    "\"params\":{\"ms\":999}}");
	json_decref(r);
	ck_assert_int_eq(raw_closed(idle, 100), 0);
	/* ctl's own request re-armed its timer; idle's did not move. */
	r = raw_call(ctl, "{\"id\":2,\"method\":\"debug.advance\","
	    "\"params\":{\"ms\":1}}");
	json_decref(r);
	ck_assert_int_eq(raw_closed(idle, 5000), 1);
	ck_assert_int_eq(raw_closed(sub, 200), 0);	/* subscribers stay */
	r = raw_call(sub, "{\"id\":3,\"method\":\"ping\"}");
	ck_assert_int_eq(reply_code(r), 0);
	json_decref(r);
	close(idle);
	close(sub);
	close(ctl);
	assert_serves(&d);
}
END_TEST

START_TEST(events_subscribe_types)
{
	json_t	*r, *sub;

	daemon_start(&d, NULL, NULL);
	r = call("{\"id\":1,\"method\":\"events.subscribe\"}");
	sub = json_object_get(json_object_get(r, "result"), "subscribed");
	ck_assert_int_eq(json_array_size(sub), 9);
	ck_assert_str_eq(json_string_value(json_array_get(sub, 0)),
	    "breaker.state");
	json_decref(r);
	r = call("{\"id\":1,\"method\":\"events.subscribe\",\"params\":"
	    "{\"types\":[\"alert\",\"op.finished\"]}}");
	sub = json_object_get(json_object_get(r, "result"), "subscribed");
	ck_assert_int_eq(json_array_size(sub), 2);
	ck_assert_str_eq(json_string_value(json_array_get(sub, 0)),
	    "op.finished");
	ck_assert_str_eq(json_string_value(json_array_get(sub, 1)), "alert");
	json_decref(r);
	r = call("{\"id\":1,\"method\":\"events.subscribe\",\"params\":"
	    "{\"types\":[\"alert\",\"nope\"]}}");
	ck_assert_int_eq(reply_code(r), -32602);
	json_decref(r);
	r = call("{\"id\":1,\"method\":\"events.subscribe\",\"params\":"
	    "{\"types\":\"alert\"}}");
	ck_assert_int_eq(reply_code(r), -32602);
	json_decref(r);
	assert_serves(&d);
}
END_TEST

START_TEST(metrics_prometheus_counts_requests)
{
	json_t		*r;
	const char	*text;
	int		 i;

	daemon_start(&d, NULL, NULL);
	for (i = 0; i < 5; i++)
		json_decref(call("{\"id\":1,\"method\":\"ping\"}"));
	json_decref(call("{\"id\":1,\"method\":\"ping\",\"params\":{\"x\":1}}"));
	r = call("{\"id\":1,\"method\":\"metrics.prometheus\"}");
	text = json_string_value(json_object_get(json_object_get(r, "result"),
	    "text"));
	ck_assert_ptr_nonnull(text);
	/* Five from this test, one from the harness's readiness check. */
	ck_assert_ptr_nonnull(strstr(text,
	    "ermd_requests_total{method=\"ping\",result=\"ok\"} 6\n"));
	ck_assert_ptr_nonnull(strstr(text,
	    "ermd_requests_total{method=\"ping\",result=\"error\"} 1\n"));
	ck_assert_ptr_nonnull(strstr(text,
	    "ermd_requests_total{method=\"status\",result=\"ok\"} 0\n"));
	ck_assert_ptr_nonnull(strstr(text,
	    "# TYPE ermd_request_duration_seconds histogram\n"));
	ck_assert_ptr_nonnull(strstr(text,
	    "ermd_request_duration_seconds_count{method=\"ping\"} 7\n"));
	/* This connection at least; the previous one's close may not have
	 * been seen yet. */
	ck_assert_ptr_nonnull(strstr(text, "\nermd_connections "));
	ck_assert_int_ge(atoi(strstr(text, "\nermd_connections ") + 18), 1);
	json_decref(r);
	r = call("{\"id\":1,\"method\":\"metrics.get\"}");
	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(r,
	    "result"), "connections")), 1);
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(r,
	    "result"), "circuit_breaker_state")), "closed");
	json_decref(r);
}
END_TEST

static int
count_in_file(const char *path, const char *needle)
{
	char	line[1024];
	FILE	*fp = fopen(path, "r");
	int	n = 0;

	if (fp == NULL)
		return (0);
	while (fgets(line, sizeof(line), fp) != NULL)
		if (strstr(line, needle) != NULL)
			n++;
	fclose(fp);
	return (n);
}

/*
 * Out of descriptors, ermd pauses accepting for a second instead of
 * spinning on EMFILE, keeps serving the connections it has, and accepts
 * again once descriptors are free.
 */
START_TEST(emfile_pauses_accepting)
{
	int	 fds[100], i, n, fd;
	json_t	*r;

	daemon_prepare(&d);
	d.nofile = 48;
	daemon_start_env(&d, NULL, NULL, NULL, -1);
	fds[0] = raw_connect(d.sock);
	r = call_fd(fds[0]);
	json_decref(r);
	for (i = 1; i < 100; i++)
		fds[i] = raw_connect(d.sock);	/* the backlog takes them */
	sleep(2);
	/* An accepted connection is still served. */
	r = call_fd(fds[0]);
	ck_assert_int_eq(reply_code(r), 0);
	json_decref(r);
	n = count_in_file(d.log, "out of file descriptors");
	ck_assert_int_ge(n, 1);
	ck_assert_int_le(n, 4);		/* about one a second, not a spin */
	for (i = 1; i < 100; i++)
		if (fds[i] != -1)
			close(fds[i]);
	/* Descriptors are free again: a new connection is served. */
	fd = raw_connect(d.sock);
	r = raw_call(fd, "{\"id\":5,\"method\":\"ping\"}");
	ck_assert_ptr_nonnull(r);
	ck_assert_int_eq(reply_code(r), 0);
	json_decref(r);
	close(fd);
	close(fds[0]);
}
END_TEST

int
main(void)
{
	Suite	*s = suite_create("daemon");
	TCase	*tc = tcase_create("daemon");
	SRunner	*sr;
	int	 failed;

	tcase_set_timeout(tc, 60);
	tcase_add_checked_fixture(tc, NULL, stop);
	tcase_add_test(tc, check_config_good_and_bad);
	tcase_add_test(tc, reload_swaps_only_valid_configs);
	tcase_add_test(tc, admin_methods_need_credentials);
	tcase_add_test(tc, socket_mode_applied_at_bind);
	tcase_add_test(tc, sd_notify_ready_watchdog_stopping);
	tcase_add_test(tc, socket_activation);
	tcase_add_test(tc, idle_timeout_on_the_daemon_clock);
	tcase_add_test(tc, events_subscribe_types);
	tcase_add_test(tc, metrics_prometheus_counts_requests);
	tcase_add_test(tc, emfile_pauses_accepting);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return (failed ? 1 : 0);
}
