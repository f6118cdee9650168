/* The compact JSON writer: the same text as jansson's dumper, bounded. */

#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "erm_proto.h"

static void
same_as_jansson(json_t *v)
{
	struct erm_buf	 b = { NULL, 0, 0, 1 << 20 };
	char		*want = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);

	ck_assert_ptr_nonnull(want);
	ck_assert_int_eq(erm_json_write(&b, v), 0);
	ck_assert_uint_eq(b.len, strlen(want));
	ck_assert_msg(memcmp(b.p, want, b.len) == 0, "want %s got %.*s", want,
	    (int)b.len, b.p);
	free(want);
	erm_buf_free(&b);
}

START_TEST(table_of_values)
{
	static const char *const texts[] = {
		"{}", "[]", "null", "true", "false", "0", "-1",
		"9223372036854775807", "-9223372036854775808",
		"1.5", "-0.0", "1e300", "2.5e-300", "0.1", "100.0",
		"\"\"", "\"plain\"", "\"q\\\"b\\\\s/\"",
		"\"\\b\\f\\n\\r\\t\\u0001\\u001f\\u007f\"",
		"\"\\u00e9\\u4e2d\\ud83d\\ude00\"",
		"{\"a\":1,\"b\":[1,2,{\"c\":null}],\"\\n\":\"x\"}",
		"[[[[[[[[[[[]]]]]]]]]]]",
		"{\"z\":1,\"a\":2,\"m\":3}",
		NULL
	};
	size_t	i;
	json_t	*v;

	for (i = 0; texts[i] != NULL; i++) {
		v = json_loads(texts[i], JSON_DECODE_ANY, NULL);
		ck_assert_msg(v != NULL, "%s", texts[i]);
		same_as_jansson(v);
		json_decref(v);
	}
}
END_TEST

/* Random trees of every type, compared with jansson's text. */
static json_t *
random_value(unsigned *seed, int depth)
{
	json_t	*v;
	int	 i, n;
	char	 s[16];

	switch (depth > 4 ? rand_r(seed) % 5 : rand_r(seed) % 7) {
	case 0:
		return (json_integer((json_int_t)rand_r(seed) -
		    RAND_MAX / 2));
	case 1:
		return (json_real((double)rand_r(seed) / 7.0));
	case 2:
		n = rand_r(seed) % 8;
		for (i = 0; i < n; i++)
			s[i] = (char)(1 + rand_r(seed) % 127);
		s[n] = '\0';
		return (json_string(s));
	case 3:
		return (rand_r(seed) % 2 ? json_true() : json_false());
	case 4:
		return (json_null());
	case 5:
		v = json_array();
		n = rand_r(seed) % 5;
		for (i = 0; i < n; i++)
			json_array_append_new(v, random_value(seed, depth + 1));
		return (v);
	default:
		v = json_object();
		n = rand_r(seed) % 5;
		for (i = 0; i < n; i++) {
			snprintf(s, sizeof(s), "k%d\t%d", i, rand_r(seed) % 9);
			json_object_set_new(v, s, random_value(seed,
			    depth + 1));
		}
		return (v);
	}
}

START_TEST(random_trees)
{
	unsigned	seed = 12345;
	int		i;
	json_t		*v;

	for (i = 0; i < 5000; i++) {
		v = random_value(&seed, 0);
		same_as_jansson(v);
		json_decref(v);
	}
}
END_TEST

/*
 * Objects written member by member: the text jansson gives for the same
 * object (members in the order written), escapes and nesting included,
 * and -1 at the buffer's ceiling.
 */
START_TEST(member_writer)
{
	struct erm_buf	 b = { NULL, 0, 0, 1 << 20 };
	json_t		*want;
	char		*text, *wt;

	ck_assert_int_eq(erm_jw_begin(&b, NULL), 0);
	ck_assert_int_eq(erm_jw_str(&b, "id", "q\"b\\s\n\x01\xc3\xa9"), 0);
	ck_assert_int_eq(erm_jw_begin(&b, "strategy"), 0);
	ck_assert_int_eq(erm_jw_end(&b), 0);
	ck_assert_int_eq(erm_jw_begin(&b, "in"), 0);
	ck_assert_int_eq(erm_jw_str(&b, "none", NULL), 0);
	ck_assert_int_eq(erm_jw_bool(&b, "t", 1), 0);
	ck_assert_int_eq(erm_jw_bool(&b, "f", 0), 0);
	ck_assert_int_eq(erm_jw_end(&b), 0);
	ck_assert_int_eq(erm_jw_int(&b, "min", INT64_MIN), 0);
	ck_assert_int_eq(erm_jw_int(&b, "max", INT64_MAX), 0);
	ck_assert_int_eq(erm_jw_str(&b, "\t", ""), 0);
	ck_assert_int_eq(erm_jw_end(&b), 0);
	ck_assert_ptr_nonnull(text = erm_buf_string(&b, 1));
	ck_assert_ptr_null(b.p);		/* given up to text */
	ck_assert_uint_eq(b.len, 0);
	want = json_pack("{s:s, s:{}, s:{s:n, s:b, s:b}, s:I, s:I, s:s}",
	    "id", "q\"b\\s\n\x01\xc3\xa9", "strategy", "in", "none", "t", 1,
	    "f", 0, "min", (json_int_t)INT64_MIN, "max", (json_int_t)INT64_MAX,
	    "\t", "");
	ck_assert_ptr_nonnull(want);
	wt = json_dumps(want, JSON_COMPACT | JSON_PRESERVE_ORDER);
	ck_assert_str_eq(text, wt);
	free(wt);
	free(text);
	json_decref(want);

	/* The ceiling: a member that does not fit fails; no string. */
	b.max = 8;
	ck_assert_int_eq(erm_jw_begin(&b, NULL), 0);
	ck_assert_int_eq(erm_jw_str(&b, "k", "v"), 0);	/* {"k":"v" */
	ck_assert_int_eq(erm_jw_str(&b, "k", "v"), -1);
	ck_assert_ptr_null(erm_buf_string(&b, 0));
	ck_assert_ptr_null(b.p);
}
END_TEST

START_TEST(limits_and_refusals)
{
	struct erm_buf	 b = { NULL, 0, 0, 10 };
	json_t		*v;

	v = json_string("123456789");		/* 11 bytes with quotes */
	ck_assert_int_eq(erm_json_write(&b, v), -1);
	ck_assert_uint_eq(b.len, 0);		/* nothing half-written */
	json_decref(v);
	v = json_string("1234567");		/* 9 bytes */
	ck_assert_int_eq(erm_json_write(&b, v), 0);
	ck_assert_uint_eq(b.len, 9);
	ck_assert_int_eq(erm_json_write(&b, v), -1);
	ck_assert_uint_eq(b.len, 9);
	json_decref(v);
	erm_buf_free(&b);
	ck_assert_int_eq(erm_json_write(&b, NULL), -1);
	/* Nesting past the writer's depth limit is refused, not recursed. */
	{
		json_t	*inner;
		int	 i;

		b.max = 1 << 20;
		v = json_array();
		for (i = 0; i < 200; i++) {
			inner = json_array();
			json_array_append_new(inner, v);
			v = inner;
		}
		ck_assert_int_eq(erm_json_write(&b, v), -1);
		ck_assert_uint_eq(b.len, 0);
		json_decref(v);
	}
	erm_buf_free(&b);
}
END_TEST

int
main(void)
{
	Suite	*s = suite_create("json_write");
	TCase	*tc = tcase_create("json_write");
	SRunner	*sr;
	int	 failed;

	tcase_add_test(tc, table_of_values);
	tcase_add_test(tc, random_trees);
	tcase_add_test(tc, limits_and_refusals);
	tcase_add_test(tc, member_writer);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return (failed ? 1 : 0);
}
