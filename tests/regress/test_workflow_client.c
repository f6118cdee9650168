/*
 * Workflows from the client side: liberm's builder and erm_workflow_execute
 * running client steps and their rollbacks through C callbacks, progress
 * callbacks, erm_workflow_wait, and the ermctl workflow commands with
 * their exit statuses.
 */

#include <sys/stat.h>

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "erm.h"
#include "harness.h"

static struct daemon	d;

static void
stop(void)
{
	if (d.pid > 0)
		ck_assert_int_eq(daemon_stop(&d), 0);
}

static struct erm_client *
client(void)
{
	struct erm_client	*c;

	ck_assert_int_eq(erm_connect(&c, d.sock), ERM_OK);
	erm_set_timeout(c, 20000);
	return (c);
}

struct trail {
	char	log[512];
	int	events;
	int	fail_at;	/* which step number fails, 0: none */
	int	n;
};

static void
note(struct trail *t, const char *what, const char *step)
{
	size_t	n = strlen(t->log);

	snprintf(t->log + n, sizeof(t->log) - n, "%s%s:%s", n ? " " : "",
	    what, step);
}

static int
run(void *arg, const char *step, json_t **out, struct erm_errinfo *err)
{
	struct trail	*t = arg;

	note(t, "run", step);
	if (++t->n == t->fail_at) {
		err->category = "NETWORK_ERROR";
		err->message = "no route";
		return (-1);
	}
	*out = json_pack("{s:i}", "n", t->n);
	return (0);
}

static int
undo(void *arg, const char *step, json_t **out, struct erm_errinfo *err)
{
	(void)out;
	(void)err;
	note(arg, "undo", step);
	return (0);
}

static void
progress(void *arg, const json_t *ev)
{
	struct trail	*t = arg;

	ck_assert_ptr_nonnull(json_object_get(ev, "type"));
	t->events++;
}

static struct erm_workflow *
three(struct trail *t)
{
	struct erm_workflow	*wf;

	ck_assert_int_eq(erm_workflow_new("three", &wf), ERM_OK);
	ck_assert_int_eq(erm_workflow_add_client(wf, "one", run, undo, t,
	    NULL), ERM_OK);
	ck_assert_int_eq(erm_workflow_add_client(wf, "two", run, undo, t,
	    NULL), ERM_OK);
	ck_assert_int_eq(erm_workflow_add_client(wf, "three", run, undo, t,
	    NULL), ERM_OK);
	return (wf);
}

START_TEST(client_steps_succeed)
{
	struct erm_client	*c;
	struct erm_workflow	*wf;
	struct trail		 t;
	json_t			*final = NULL;

	daemon_start(&d, NULL, NULL);
	c = client();
	memset(&t, 0, sizeof(t));
	wf = three(&t);
	ck_assert_int_eq(erm_workflow_execute(c, wf, progress, &t, &final),
	    ERM_OK);
	ck_assert_str_eq(erm_workflow_state(final), "succeeded");
	ck_assert_str_eq(t.log, "run:one run:two run:three");
	ck_assert_int_gt(t.events, 6);
	ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(
	    json_array_get(json_object_get(final, "steps"), 2), "output"),
	    "n")), 3);
	json_decref(final);
	erm_workflow_free(wf);
	erm_close(c);
}
END_TEST

START_TEST(client_rollbacks_run_in_reverse)
{
	struct erm_client	*c;
	struct erm_workflow	*wf;
	struct trail		 t;
	json_t			*final = NULL, *s;

	daemon_start(&d, NULL, NULL);
	c = client();
	memset(&t, 0, sizeof(t));
	t.fail_at = 3;
	wf = three(&t);
	ck_assert_int_eq(erm_workflow_execute(c, wf, NULL, NULL, &final),
	    ERM_OK);
	ck_assert_str_eq(erm_workflow_state(final), "compensated");
	ck_assert_str_eq(t.log, "run:one run:two run:three undo:two undo:one");
	s = json_array_get(json_object_get(final, "steps"), 2);
	ck_assert_str_eq(json_string_value(json_object_get(s, "state")),
	    "failed");
	ck_assert_str_eq(json_string_value(json_object_get(json_object_get(s,
	    "error"), "category")), "NETWORK_ERROR");
	json_decref(final);
	erm_workflow_free(wf);
	erm_close(c);
}
END_TEST

START_TEST(parallel_builder_and_wait)
{
	static const char *const branch[] = { NULL };
	static const char *const join[] = { "a", "b", NULL };
	struct erm_client	*c;
	struct erm_workflow	*wf;
	struct trail		 t;
	char			 id[ERM_ID_MAX];
	json_t			*final = NULL;

	daemon_start(&d, NULL, NULL);
	c = client();
	memset(&t, 0, sizeof(t));
	ck_assert_int_eq(erm_workflow_new("fan", &wf), ERM_OK);
	ck_assert_int_eq(erm_workflow_add(wf, "a", json_pack("{s:s, s:i}",
	    "type", "sleep", "ms", 50), NULL, branch), ERM_OK);
	ck_assert_int_eq(erm_workflow_add(wf, "b", json_pack("{s:s, s:i}",
	    "type", "sleep", "ms", 50), NULL, branch), ERM_OK);
	ck_assert_int_eq(erm_workflow_add(wf, "j", json_pack("{s:s, s:i}",
	    "type", "sleep", "ms", 1), NULL, join), ERM_OK);
	json_object_set_new(erm_workflow_last_step(wf), "timeout_ms",
	    json_integer(5000));
	/* A bad step is refused by the daemon with the field named. */
	ck_assert_int_eq(erm_workflow_add(wf, "j", json_pack("{s:s}", "type",
	    "sleep"), NULL, NULL), ERM_OK);
	ck_assert_int_eq(erm_workflow_submit(c, wf, id, sizeof(id)),
	    ERM_EREPLY);
	ck_assert_int_eq(erm_last_error(c)->code, -32602);
	json_array_remove(json_object_get(erm_workflow_params(wf), "steps"),
	    3);
	ck_assert_int_eq(erm_workflow_submit(c, wf, id, sizeof(id)), ERM_OK);
	ck_assert_int_eq(erm_workflow_wait(c, id, 10000, progress, &t,
	    &final), ERM_OK);
	ck_assert_str_eq(erm_workflow_state(final), "succeeded");
	json_decref(final);
	erm_workflow_free(wf);
	erm_close(c);
}
END_TEST

START_TEST(ermctl_workflow_commands)
{
	char		 out[16384], ok[256], bad[256], slow[256], id[64], *p;
	const char	*a[8];
	int		 rc;

	daemon_start(&d, NULL, NULL);
	snprintf(ok, sizeof(ok), "%s/ok.json", d.dir);
	snprintf(bad, sizeof(bad), "%s/bad.json", d.dir);
	snprintf(slow, sizeof(slow), "%s/slow.json", d.dir);
	write_text(ok, "{\"name\":\"ok\",\"steps\":[{\"name\":\"e\",\"action\":"
	    "{\"type\":\"exec\",\"argv\":[\"echo\",\"hello\"]}}]}");
	write_text(bad, "{\"name\":\"bad\",\"steps\":[{\"name\":\"s\",\"action\":"
	    "{\"type\":\"sleep\",\"ms\":1},\"compensate\":{\"type\":\"sleep\","
	    "\"ms\":1}},{\"name\":\"f\",\"action\":{\"type\":\"exec\",\"argv\":"
	    "[\"false\"]}}]}");
	write_text(slow, "{\"name\":\"slow\",\"steps\":[{\"name\":\"z\","
	    "\"action\":{\"type\":\"exec\",\"argv\":[\"sleep\",\"300\"]}}]}");

	a[0] = "workflow"; a[1] = "submit"; a[2] = "--wait"; a[3] = ok;
	a[4] = NULL;
	rc = ermctl(&d, out, sizeof(out), a);
	ck_assert_int_eq(rc, 0);
	ck_assert_ptr_nonnull(strstr(out, "state=succeeded"));
	ck_assert_ptr_nonnull(strstr(out, "hello"));
	a[3] = bad;
	ck_assert_int_eq(ermctl(&d, out, sizeof(out), a), 4);
	ck_assert_ptr_nonnull(strstr(out, "state=compensated"));

	/* Without --wait: the id, then cancel it. */
	a[2] = slow;
	a[3] = NULL;
	ck_assert_int_eq(ermctl(&d, out, sizeof(out), a), 0);
	ck_assert_ptr_nonnull(p = strstr(out, "id="));
	snprintf(id, sizeof(id), "%.36s", p + 3);
	a[1] = "show"; a[2] = id; a[3] = NULL;
	ck_assert_int_eq(ermctl(&d, out, sizeof(out), a), 0);
	ck_assert_ptr_nonnull(strstr(out, "name=slow"));
	a[1] = "cancel";
	ck_assert_int_eq(ermctl(&d, out, sizeof(out), a), 0);
	ck_assert_ptr_nonnull(strstr(out, "state=cancelled"));
	a[1] = "watch";
	ck_assert_int_eq(ermctl(&d, out, sizeof(out), a), 5);
	a[1] = "cancel";
	ck_assert_int_eq(ermctl(&d, out, sizeof(out), a), 1);

	a[1] = "list"; a[2] = "--state"; a[3] = "compensated"; a[4] = NULL;
	ck_assert_int_eq(ermctl(&d, out, sizeof(out), a), 0);
	ck_assert_ptr_nonnull(strstr(out, "name=bad"));
	ck_assert_ptr_null(strstr(out, "name=ok"));
	a[1] = "show"; a[2] = "01900000-0000-7000-8000-000000000000";
	a[3] = NULL;
	ck_assert_int_eq(ermctl(&d, out, sizeof(out), a), 1);
	a[1] = "show"; a[2] = NULL;
	ck_assert_int_eq(ermctl(&d, out, sizeof(out), a), 2);
	assert_serves(&d);
}
END_TEST

/*
 * submit --wait of a workflow whose file says "run": false: a usage error
 * at once (it would never end), nothing created. Under timeout(1), so
 * that a wait for ever fails as 124 instead of hanging the suite; liberm's
 * erm_workflow_execute refuses the same params.
 */
START_TEST(ermctl_submit_wait_not_run)
{
	char			 out[16384], idle[256];
	const char		*argv[] = { "/bin/sh", "-c",
	    "exec /usr/bin/timeout -k 2 10 \"$0\" --socket \"$1\" "
	    "workflow submit --wait \"$2\" 2>&1", ermctl_path(), d.sock,
	    idle, NULL };
	const char		*list[] = { "workflow", "list", NULL };
	struct erm_client	*c;
	struct erm_workflow	*wf;
	json_t			*final = NULL;

	daemon_start(&d, NULL, NULL);
	snprintf(idle, sizeof(idle), "%s/idle.json", d.dir);
	write_text(idle, "{\"name\":\"idle\",\"run\":false,\"steps\":"
	    "[{\"name\":\"e\",\"action\":{\"type\":\"sleep\",\"ms\":1}}]}");
	ck_assert_int_eq(run_prog(out, sizeof(out), argv), 2);
	ck_assert_ptr_nonnull(strstr(out, "--wait conflicts with \"run\": "
	    "false"));
	ck_assert_int_eq(ermctl(&d, out, sizeof(out), list), 0);
	ck_assert_ptr_null(strstr(out, "name=idle"));

	c = client();
	ck_assert_int_eq(erm_workflow_new("idle", &wf), ERM_OK);
	ck_assert_int_eq(erm_workflow_add(wf, "e", json_pack("{s:s, s:i}",
	    "type", "sleep", "ms", 1), NULL, NULL), ERM_OK);
	json_object_set_new(erm_workflow_params(wf), "run", json_false());
	ck_assert_int_eq(erm_workflow_execute(c, wf, NULL, NULL, &final),
	    ERM_EINVAL);
	ck_assert_ptr_null(final);
	erm_workflow_free(wf);
	erm_close(c);
	assert_serves(&d);
}
END_TEST

int
main(void)
{
	Suite	*s = suite_create("workflow_client");
	TCase	*tc = tcase_create("workflow_client");
	SRunner	*sr;
	int	 failed;

	tcase_set_timeout(tc, 60);
	tcase_add_checked_fixture(tc, NULL, stop);
	tcase_add_test(tc, client_steps_succeed);
	tcase_add_test(tc, client_rollbacks_run_in_reverse);
	tcase_add_test(tc, parallel_builder_and_wait);
	tcase_add_test(tc, ermctl_workflow_commands);
	tcase_add_test(tc, ermctl_submit_wait_not_run);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return (failed ? 1 : 0);
}
