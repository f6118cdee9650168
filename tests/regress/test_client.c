/* ermctl and liberm against a real ermd: outputs, exit codes, pipelining. */

#include <sys/stat.h>
#include <sys/wait.h>

#include <check.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "erm.h"
#include "harness.h"

static struct daemon	d;

static void
start(void)
{
	daemon_start(&d, "[daemon]\nmax_connections = 64\n", NULL);
}

static void
stop(void)
{
	if (d.pid > 0)
		ck_assert_int_eq(daemon_stop(&d), 0);
}

START_TEST(ermctl_status_plain_and_json)
{
	static const char *const plain[] = { "status", NULL };
	static const char *const json[] = { "--json", "status", NULL };
	char	 out[8192], want[256];
	json_t	*j;

	ck_assert_int_eq(ermctl(&d, out, sizeof(out), plain), 0);
	ck_assert_ptr_nonnull(strstr(out, "version=0.1.0\n"));
	ck_assert_ptr_nonnull(strstr(out, "config_generation=0\n"));
	snprintf(want, sizeof(want), "store.path=%s/ermd.db\n", d.state);
	ck_assert_ptr_nonnull(strstr(out, want));
	ck_assert_ptr_nonnull(strstr(out, "store.durability=full\n"));

	ck_assert_int_eq(ermctl(&d, out, sizeof(out), json), 0);
	j = json_loads(out, 0, NULL);
	ck_assert_ptr_nonnull(j);
	ck_assert_int_eq(json_integer_value(json_object_get(j,
	    "connections")), 1);
	ck_assert(json_is_true(json_object_get(json_object_get(j, "store"),
	    "ok")));
	json_decref(j);
}
END_TEST

START_TEST(ermctl_ping_version_metrics)
{
	static const char *const ping[] = { "ping", NULL };
	static const char *const version[] = { "version", NULL };
	static const char *const prom[] = { "metrics", "--prometheus", NULL };
	static const char *const metrics[] = { "metrics", NULL };
	static char	out[1 << 20];

	ck_assert_int_eq(ermctl(&d, out, sizeof(out), ping), 0);
	ck_assert_ptr_nonnull(strstr(out, "pong=true\n"));
	ck_assert_int_eq(ermctl(&d, out, sizeof(out), version), 0);
	ck_assert_str_eq(out, "ermctl=0.1.0\nermd=0.1.0\nprotocol=1\n");
	ck_assert_int_eq(ermctl(&d, out, sizeof(out), prom), 0);
	ck_assert_ptr_nonnull(strstr(out, "# TYPE ermd_requests_total "
	    "counter\n"));
	/* This connection at least; the previous one's close may not have
	 * been seen yet. */
	ck_assert_ptr_nonnull(strstr(out, "\nermd_connections "));
	ck_assert_int_ge(atoi(strstr(out, "\nermd_connections ") + 18), 1);
	ck_assert_int_eq(ermctl(&d, out, sizeof(out), metrics), 0);
	ck_assert_ptr_nonnull(strstr(out, "circuit_breaker_state=closed\n"));
	ck_assert_ptr_nonnull(strstr(out, "connections=1\n"));
}
END_TEST

START_TEST(ermctl_exit_codes)
{
	static const char *const bogus[] = { "frobnicate", NULL };
	static const char *const extra[] = { "status", "extra", NULL };
	static const char *const reload[] = { "config", "reload", NULL };
	const char	*argv[] = { ermctl_path(), "--socket", "/nonexistent/x",
	    "ping", NULL };
	char		 out[4096];

	ck_assert_int_eq(ermctl(&d, out, sizeof(out), bogus), 2);
	ck_assert_int_eq(ermctl(&d, out, sizeof(out), extra), 2);
	ck_assert_int_eq(run_prog(out, sizeof(out), argv), 3);
	/* An invalid config on reload: 78, the old config kept. */
	daemon_write_conf(&d, "[daemon]\nmax_connections = -1\n");
	ck_assert_int_eq(ermctl(&d, out, sizeof(out), reload), 78);
	daemon_write_conf(&d, "[daemon]\nmax_connections = 65\n");
	ck_assert_int_eq(ermctl(&d, out, sizeof(out), reload), 0);
	ck_assert_str_eq(out, "config_generation=1\n");
	assert_serves(&d);
}
END_TEST

/*
 * ermctl run --backup with a relative path: made absolute from the current
 * directory, as backup create does, so the daemon backs it up (it refused
 * the bare name with 1002, and the command never ran) and restores it on a
 * rollback.
 */
START_TEST(ermctl_run_backup_relative_path)
{
	char		 conf[512], root[200], file[256], cwd[PATH_MAX];
	char		 out[4096], abs[PATH_MAX];
	const char	*args[] = { "run", "--backup", "state.json", "--",
	    "/bin/sh", "-c", "echo broken > state.json; exit 3", NULL };
	const char	*dot[] = { "run", "--backup", "./state.json", "--",
	    "/bin/true", NULL };

	ck_assert_int_eq(daemon_stop_keep(&d), 0);
	snprintf(root, sizeof(root), "%s/data", d.dir);
	ck_assert_int_eq(mkdir(root, 0755), 0);
	snprintf(file, sizeof(file), "%s/state.json", root);
	write_text(file, "{\"ok\":true}\n");
	snprintf(conf, sizeof(conf), "[root.data]\npath = %s\n"
	    "[strategy]\nSYSTEM_ERROR = rollback,escalate\n", root);
	daemon_write_conf(&d, conf);
	daemon_restart(&d);

	ck_assert_ptr_nonnull(getcwd(cwd, sizeof(cwd)));
	/* ermctl's path may be relative to where the suite started. */
	ck_assert_ptr_nonnull(realpath(ermctl_path(), abs));
	ck_assert_int_eq(setenv("ERMCTL", abs, 1), 0);
	ck_assert_int_eq(chdir(root), 0);
	/* The command's own status: it ran, failed, and was rolled back. */
	ck_assert_int_eq(ermctl(&d, out, sizeof(out), args), 3);
	ck_assert_str_eq(read_text(file), "{\"ok\":true}\n");
	ck_assert_int_eq(ermctl(&d, out, sizeof(out), dot), 0);
	ck_assert_int_eq(chdir(cwd), 0);
	assert_serves(&d);
}
END_TEST

/* errors --since pings the daemon first: not running is 3, as elsewhere. */
START_TEST(ermctl_errors_since_not_running)
{
	const char	*since[] = { ermctl_path(), "--socket", "/nonexistent/x",
	    "errors", "--since", "1h", NULL };
	const char	*plain[] = { ermctl_path(), "--socket", "/nonexistent/x",
	    "errors", NULL };
	char		 out[4096];

	ck_assert_int_eq(run_prog(out, sizeof(out), since), 3);
	ck_assert_int_eq(run_prog(out, sizeof(out), plain), 3);
}
END_TEST

/* errors --follow --severity: followed events are filtered as the listing. */
START_TEST(ermctl_errors_follow_severity)
{
	char	 path[256];
	pid_t	 pid;
	static const char *const follow[] = { "errors", "--follow",
	    "--severity", "critical", NULL };
	int	 fd, status;

	fd = raw_connect(d.sock);
	ck_assert_int_ne(fd, -1);
	json_decref(call_on(fd, "{\"id\":1,\"method\":\"error.report\","
	    "\"params\":{\"operation\":\"sev-before\",\"severity\":"
	    "\"critical\",\"message\":\"m\"}}"));
	snprintf(path, sizeof(path), "%s/follow.out", d.dir);
	pid = ermctl_start(&d, path, follow);
	/* Subscribed once the listing is out (it subscribes first). */
	ck_assert(file_has(path, "sev-before", 5000));
	json_decref(call_on(fd, "{\"id\":2,\"method\":\"error.report\","
	    "\"params\":{\"operation\":\"sev-info\",\"severity\":"
	    "\"info\",\"message\":\"m\"}}"));
	json_decref(call_on(fd, "{\"id\":3,\"method\":\"error.report\","
	    "\"params\":{\"operation\":\"sev-critical\",\"severity\":"
	    "\"critical\",\"message\":\"m\"}}"));
	/* Events come in order: once the critical one is out, the info one
	 * would have been before it. */
	ck_assert(file_has(path, "sev-critical", 5000));
	kill(pid, SIGTERM);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	ck_assert(file_has(path, "sev-critical", 5000));
	ck_assert_ptr_null(strstr(read_text(path), "sev-info"));
	close(fd);
	assert_serves(&d);
}
END_TEST

/* 200 requests in flight on one handle, collected in reverse order. */
START_TEST(liberm_pipelining)
{
	struct erm_client	*c;
	int64_t			 ids[200];
	json_t			*r, *p;
	int			 i;

	ck_assert_int_eq(erm_connect(&c, d.sock), ERM_OK);
	erm_set_timeout(c, 10000);
	for (i = 0; i < 200; i++) {
		p = json_pack("{s:s}", "client", "regress");
		ck_assert_int_eq(erm_send(c, i % 2 ? "ping" : "hello", p,
		    &ids[i]), ERM_OK);
		json_decref(p);
	}
	for (i = 199; i >= 0; i--) {
		enum erm_status	st = erm_wait(c, ids[i], &r);

		if (i % 2) {
			/* ping takes no params: the daemon names the field */
			ck_assert_int_eq(st, ERM_EREPLY);
			ck_assert_int_eq(erm_last_error(c)->code, -32602);
			ck_assert_str_eq(json_string_value(json_object_get(
			    erm_last_error(c)->data, "field")), "client");
		} else {
			ck_assert_int_eq(st, ERM_OK);
			ck_assert_str_eq(json_string_value(json_object_get(r,
			    "server")), "ermd");
			json_decref(r);
		}
	}
	ck_assert_int_eq(erm_call(c, "ping", NULL, &r), ERM_OK);
	ck_assert(json_is_true(json_object_get(r, "pong")));
	json_decref(r);
	erm_close(c);
}
END_TEST

START_TEST(liberm_connect_errors)
{
	struct erm_client	*c = NULL;

	ck_assert_int_eq(erm_connect(&c, "/nonexistent/ermd.sock"),
	    ERM_ECONNECT);
	setenv("ERMD_SOCKET", d.sock, 1);
	ck_assert_int_eq(erm_connect(&c, NULL), ERM_OK);
	ck_assert_str_eq(erm_socket_path(c), d.sock);
	erm_close(c);
	unsetenv("ERMD_SOCKET");
}
END_TEST

/* The daemon's limit on frames reaches a liberm caller as 1005. */
START_TEST(liberm_oversized_request)
{
	struct erm_client	*c;
	json_t			*p, *r = NULL;
	char			*big = malloc(2 << 20);

	memset(big, 'x', (2 << 20) - 1);
	big[(2 << 20) - 1] = '\0';
	p = json_pack("{s:s}", "client", big);
	free(big);
	ck_assert_int_eq(erm_connect(&c, d.sock), ERM_OK);
	ck_assert_int_eq(erm_call(c, "hello", p, &r), ERM_EREPLY);
	ck_assert_int_eq(erm_last_error(c)->code, 1005);
	json_decref(p);
	erm_close(c);
	assert_serves(&d);
}
END_TEST

int
main(void)
{
	Suite	*s = suite_create("client");
	TCase	*tc = tcase_create("client");
	SRunner	*sr;
	int	 failed;

	tcase_set_timeout(tc, 60);
	tcase_add_checked_fixture(tc, start, stop);
	tcase_add_test(tc, ermctl_status_plain_and_json);
	tcase_add_test(tc, ermctl_ping_version_metrics);
	tcase_add_test(tc, ermctl_exit_codes);
	tcase_add_test(tc, liberm_pipelining);
	tcase_add_test(tc, liberm_connect_errors);
	tcase_add_test(tc, liberm_oversized_request);
	tcase_add_test(tc, ermctl_run_backup_relative_path);
	tcase_add_test(tc, ermctl_errors_since_not_running);
	tcase_add_test(tc, ermctl_errors_follow_severity);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return (failed ? 1 : 0);
}
