/*
 * Unit tests of the workflow step graph (daemon/workflow.c): sequential
 * defaults, parallel branches, joins, and every refusal (cycles, unknown
 * and duplicate names, malformed actions) naming the step and the field.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>
#include <jansson.h>

#include "ermd.h"
#include "workflow.h"

/* The daemon's globals, which the linked modules refer to. */
struct ermd	ermd;

int
ermd_reload(json_t **errors)
{
	(void)errors;
	return (-1);
}

void
ermd_shutdown(int code)
{
	(void)code;
}

static struct workflow	*wf;
static json_t		*steps;

static int
parse(const char *text, struct param_err *e)
{
	json_error_t	je;

	wf_free(wf);
	json_decref(steps);
	wf = wf_alloc();
	steps = json_loads(text, 0, &je);
	ck_assert_msg(steps != NULL, "bad test JSON: %s", je.text);
	memset(e, 0, sizeof(*e));
	return (wf_graph_parse(wf, steps, 1000, e));
}

static void
teardown(void)
{
	wf_free(wf);
	json_decref(steps);
	wf = NULL;
	steps = NULL;
}

#define SLEEP	"{\"type\":\"sleep\",\"ms\":1}"

START_TEST(plain_list_is_sequential)
{
	struct param_err	e;

	ck_assert_int_eq(parse("[{\"name\":\"a\",\"action\":" SLEEP "},"
	    "{\"name\":\"b\",\"action\":" SLEEP "},"
	    "{\"name\":\"c\",\"action\":" SLEEP "}]", &e), 0);
	ck_assert_uint_eq(wf->nsteps, 3);
	ck_assert_uint_eq(wf->steps[0].nafter, 0);
	ck_assert_uint_eq(wf->steps[1].nafter, 1);
	ck_assert_uint_eq(wf->steps[1].after[0], 0);
	ck_assert_uint_eq(wf->steps[2].nafter, 1);
	ck_assert_uint_eq(wf->steps[2].after[0], 1);
}
END_TEST

START_TEST(empty_after_starts_a_branch)
{
	struct param_err	e;

	ck_assert_int_eq(parse("[{\"name\":\"a\",\"action\":" SLEEP "},"
	    "{\"name\":\"b\",\"after\":[],\"action\":" SLEEP "},"
	    "{\"name\":\"c\",\"action\":" SLEEP "},"
	    "{\"name\":\"j\",\"after\":[\"a\",\"c\"],\"action\":" SLEEP "}]",
	    &e), 0);
	ck_assert_uint_eq(wf->steps[1].nafter, 0);
	/* c follows b, the step before it in the list. */
	ck_assert_uint_eq(wf->steps[2].nafter, 1);
	ck_assert_uint_eq(wf->steps[2].after[0], 1);
	ck_assert_uint_eq(wf->steps[3].nafter, 2);
	ck_assert_uint_eq(wf->steps[3].after[0], 0);
	ck_assert_uint_eq(wf->steps[3].after[1], 2);
	/* Names may be used before the step that bears them. */
	ck_assert_int_eq(parse("[{\"name\":\"a\",\"after\":[\"b\"],\"action\":"
	    SLEEP "},{\"name\":\"b\",\"after\":[],\"action\":" SLEEP "}]", &e),
	    0);
}
END_TEST

static const struct {
	const char	*steps;
	const char	*field;
	const char	*reason;	/* a substring */
} refusals[] = {
	{ "[{\"name\":\"a\",\"after\":[\"c\"],\"action\":" SLEEP "},"
	  "{\"name\":\"b\",\"after\":[\"a\"],\"action\":" SLEEP "},"
	  "{\"name\":\"c\",\"after\":[\"b\"],\"action\":" SLEEP "}]",
	  "steps[0].after", "step 'a' is on a cycle" },
	{ "[{\"name\":\"x\",\"after\":[],\"action\":" SLEEP "},"
	  "{\"name\":\"a\",\"after\":[\"b\"],\"action\":" SLEEP "},"
	  "{\"name\":\"b\",\"after\":[\"a\"],\"action\":" SLEEP "}]",
	  "steps[1].after", "step 'a' is on a cycle" },
	{ "[{\"name\":\"a\",\"after\":[\"a\"],\"action\":" SLEEP "}]",
	  "steps[0].after", "step 'a' waits for itself" },
	{ "[{\"name\":\"a\",\"action\":" SLEEP "},{\"name\":\"b\",\"after\":"
	  "[\"nope\"],\"action\":" SLEEP "}]", "steps[1].after",
	  "step 'b' waits for unknown step 'nope'" },
	{ "[{\"name\":\"a\",\"action\":" SLEEP "},{\"name\":\"a\",\"action\":"
	  SLEEP "}]", "steps[1].name", "step 'a' appears twice" },
	{ "[{\"name\":\"\",\"action\":" SLEEP "}]", "steps[0].name", "empty" },
	{ "[{\"name\":\"a\"}]", "steps[0].action", "step 'a'" },
	{ "[{\"name\":\"a\",\"action\":" SLEEP ",\"colour\":1}]",
	  "steps[0].colour", "" },
	{ "[{\"name\":\"a\",\"action\":{\"type\":\"exec\",\"argv\":[]}}]",
	  "steps[0].action.argv", "" },
	{ "[{\"name\":\"a\",\"action\":{\"type\":\"exec\",\"argv\":[\"ls\"],"
	  "\"cwd\":\"tmp\"}}]", "steps[0].action.cwd", "absolute" },
	{ "[{\"name\":\"a\",\"action\":{\"type\":\"exec\",\"argv\":[\"ls\"],"
	  "\"env\":{\"A=B\":\"x\"}}}]", "steps[0].action.env", "" },
	{ "[{\"name\":\"a\",\"action\":{\"type\":\"write\",\"path\":\"/x\"}}]",
	  "steps[0].action.content", "exactly one" },
	{ "[{\"name\":\"a\",\"action\":{\"type\":\"write\",\"path\":\"/x\","
	  "\"content_base64\":\"!!\"}}]", "steps[0].action.content", "base64" },
	{ "[{\"name\":\"a\",\"action\":{\"type\":\"copy\",\"src\":\"/x\"}}]",
	  "steps[0].action.dst", "missing" },
	{ "[{\"name\":\"a\",\"action\":{\"type\":\"http\",\"method\":\"GET\","
	  "\"url\":\"ftp://x\"}}]", "steps[0].action.url", "" },
	{ "[{\"name\":\"a\",\"action\":{\"type\":\"http\",\"method\":\"GET\","
	  "\"url\":\"http://x\",\"expect_status\":[99]}}]",
	  "steps[0].action.expect_status", "" },
	{ "[{\"name\":\"a\",\"action\":{\"type\":\"sleep\"}}]",
	  "steps[0].action.ms", "" },
	{ "[{\"name\":\"a\",\"action\":{\"type\":\"teleport\"}}]",
	  "steps[0].action.type", "" },
	{ "[{\"name\":\"a\",\"action\":" SLEEP ",\"compensate\":{\"type\":"
	  "\"restore\"}}]", "steps[0].compensate.path", "exactly one" },
	{ "[{\"name\":\"a\",\"action\":" SLEEP ",\"timeout_ms\":0}]",
	  "steps[0].timeout_ms", "" },
	{ "[]", "steps", "" },
	{ "{}", "steps", "" },
};

START_TEST(refused)
{
	struct param_err	e;

	ck_assert_int_eq(parse(refusals[_i].steps, &e), -1);
	ck_assert_str_eq(e.field, refusals[_i].field);
	ck_assert_msg(strstr(e.reason, refusals[_i].reason) != NULL,
	    "reason '%s' lacks '%s'", e.reason, refusals[_i].reason);
}
END_TEST

START_TEST(too_many_steps)
{
	struct param_err	 e;
	json_t			*a = json_array();
	int			 i;

	for (i = 0; i < 1001; i++)
		json_array_append_new(a, json_pack("{s:s+, s:{s:s, s:i}}",
		    "name", "s", "x", "action", "type", "sleep", "ms", 0));
	wf_free(wf);
	wf = wf_alloc();
	ck_assert_int_eq(wf_graph_parse(wf, a, 1000, &e), -1);
	ck_assert_str_eq(e.field, "steps");
	json_decref(a);
}
END_TEST

START_TEST(long_chain_and_wide_fan)
{
	struct param_err	 e;
	json_t			*a = json_array(), *after = json_array();
	char			 name[32];
	int			 i;

	/* 1000 steps: 999 parallel, one join waiting for all. */
	for (i = 0; i < 999; i++) {
		snprintf(name, sizeof(name), "p%d", i);
		json_array_append_new(a, json_pack("{s:s, s:[], s:{s:s, s:i}}",
		    "name", name, "after", "action", "type", "sleep", "ms", 0));
		json_array_append_new(after, json_string(name));
	}
	json_array_append_new(a, json_pack("{s:s, s:o, s:{s:s, s:i}}", "name",
	    "join", "after", after, "action", "type", "sleep", "ms", 0));
	wf_free(wf);
	wf = wf_alloc();
	ck_assert_int_eq(wf_graph_parse(wf, a, 1000, &e), 0);
	ck_assert_uint_eq(wf->steps[999].nafter, 999);
	json_decref(a);
}
END_TEST

START_TEST(uses_exec)
{
	struct param_err	e;

	ck_assert_int_eq(parse("[{\"name\":\"a\",\"action\":" SLEEP "}]", &e),
	    0);
	ck_assert_int_eq(wf_uses_exec(wf), 0);
	ck_assert_int_eq(parse("[{\"name\":\"a\",\"action\":" SLEEP ","
	    "\"compensate\":{\"type\":\"exec\",\"argv\":[\"/bin/true\"]}}]",
	    &e), 0);
	ck_assert_int_eq(wf_uses_exec(wf), 1);
}
END_TEST

START_TEST(state_names)
{
	ck_assert_str_eq(wf_state_name(WF_COMPENSATED), "compensated");
	ck_assert_str_eq(wf_step_state_name(WS_COMPENSATION_FAILED),
	    "compensation_failed");
	ck_assert_int_eq(wf_state_from_name("cancelled"), WF_CANCELLED);
	ck_assert_int_eq(wf_step_state_from_name("skipped"), WS_SKIPPED);
	ck_assert_int_eq(wf_state_from_name("nope"), -1);
	ck_assert(wf_state_final(WF_FAILED));
	ck_assert(!wf_state_final(WF_COMPENSATING));
}
END_TEST

int
main(void)
{
	Suite	*s = suite_create("workflow");
	TCase	*tc = tcase_create("graph");
	SRunner	*sr;
	int	 failed;

	tcase_add_checked_fixture(tc, NULL, teardown);
	tcase_add_test(tc, plain_list_is_sequential);
	tcase_add_test(tc, empty_after_starts_a_branch);
	tcase_add_loop_test(tc, refused, 0,
	    (int)(sizeof(refusals) / sizeof(refusals[0])));
	tcase_add_test(tc, too_many_steps);
	tcase_add_test(tc, long_chain_and_wide_fan);
	tcase_add_test(tc, uses_exec);
	tcase_add_test(tc, state_names);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return (failed ? 1 : 0);
}
