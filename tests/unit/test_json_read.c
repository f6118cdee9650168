/*
 * The strict JSON parser against jansson: for every input both accept or
 * both refuse, and what they build is equal.
 */

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "erm_proto.h"

/* Parse with both; they must agree. Returns 1 when accepted. */
static int
agree(const uint8_t *buf, size_t len)
{
	json_error_t	 jerr;
	json_t		*a, *b;
	const char	*why = NULL;
	int		 ok;

	a = erm_json_parse(buf, len, 1000, &why);
	/*
	 * jansson skips NUL bytes in its input (it uses NUL as a sentinel in
	 * its read buffer); a NUL byte is not JSON, and ermd refuses it.
	 */
	if (memchr(buf, '\0', len) != NULL) {
		ck_assert_msg(a == NULL, "accepted a NUL byte");
		return (0);
	}
	b = json_loadb((const char *)buf, len, JSON_REJECT_DUPLICATES |
	    JSON_DECODE_ANY, &jerr);
	ck_assert_msg((a == NULL) == (b == NULL),
	    "disagree on [%.*s]: ours %s, jansson %s", (int)len, buf,
	    a ? "accepts" : why, b ? "accepts" : jerr.text);
	if (a != NULL)
		ck_assert_msg(json_equal(a, b), "different values for [%.*s]",
		    (int)len, buf);
	else
		ck_assert_ptr_nonnull(why);
	ok = a != NULL;
	json_decref(a);
	json_decref(b);
	return (ok);
}

static int
agree_str(const char *s)
{
	return (agree((const uint8_t *)s, strlen(s)));
}

START_TEST(accepted_inputs)
{
	static const char *const ok[] = {
		"{}", " [ ] ", "0", "-0", "1", "-1", "123456789",
		"9223372036854775807", "-9223372036854775808",
		"0.5", "-0.5e10", "1E2", "1e-2", "1e-400", "2.5E+3",
		"9e-309", "-4.9e-324", "2.2250738585072014e-308",
		"true", "false", "null", "\"\"", "\"a\\\"b\"",
		"\"\\/\\b\\f\\n\\r\\t\\\\\"", "\"\\u00e9\\u4E2D\"",
		"\"\\ud83d\\ude00\"", "\"\xc3\xa9\xe4\xb8\xad\xf0\x9f\x98\x80\"",
		"{\"a\":{\"a\":{\"a\":[]}}}", "[1,[2,[3,{\"x\":null}]]]",
		"{\"\":1}", "{\"a\":1,\"A\":2}", "\t\r\n{\"k\" : [ 1 , 2 ] }\n",
		"\"\x7f\"", "{\"id\":1,\"method\":\"ping\",\"params\":{}}",
		NULL
	};
	size_t	i;

	for (i = 0; ok[i] != NULL; i++)
		ck_assert_msg(agree_str(ok[i]) == 1, "refused %s", ok[i]);
}
END_TEST

START_TEST(refused_inputs)
{
	static const char *const bad[] = {
		"", " ", "{", "}", "[", "[1,]", "{\"a\":1,}", "{,}", "[,1]",
		"01", "-", "1.", ".5", "1e", "1e+", "+1", "0x10", "1.5.2",
		"9223372036854775808", "-9223372036854775809", "1e400",
		"-1e400", "1.8e308",
		"tru", "truex", "nul", "NaN", "Infinity", "'a'",
		"\"abc", "\"\\x\"", "\"\\\"\\", "\"\\", "\"\\u12\"", "\"\\u12g4\"",
		"\"\\ud83d\"", "\"\\ude00\"", "\"\\ud83d\\u0041\"",
		"\"\\u0000\"", "{\"a\\u0000\":1}",
		"\"\x01\"", "\"tab\there\"",
		"\"\xc3\x28\"", "\"\xc0\xaf\"", "\"\xe0\x80\xaf\"",
		"\"\xed\xa0\x80\"", "\"\xf4\x90\x80\x80\"", "\"\xff\"",
		"\"\xe4\xb8\"", "\xef\xbb\xbf{}",
		"{\"a\":1,\"a\":2}", "{\"x\":{\"b\":1,\"b\":1}}",
		"{\"a\" 1}", "{1:2}", "[1 2]", "{} {}", "[] x",
		NULL
	};
	size_t	i;

	for (i = 0; bad[i] != NULL; i++)
		ck_assert_msg(agree_str(bad[i]) == 0, "accepted %s", bad[i]);
}
END_TEST

START_TEST(embedded_nul_byte)
{
	static const uint8_t	in[] = { '[', '1', 0, ']' };
	static const uint8_t	str[] = { '"', 'a', 0, 'b', '"' };
	const char		*why;

	ck_assert_ptr_null(erm_json_parse(in, sizeof(in), 32, &why));
	ck_assert_ptr_null(erm_json_parse(str, sizeof(str), 32, &why));
	ck_assert_str_eq(why, "control character in a string");
}
END_TEST

START_TEST(depth_limit)
{
	char		 buf[200];
	const char	*why;
	json_t		*v;
	int		 i;

	for (i = 0; i < 33; i++)
		buf[i] = '[';
	for (i = 0; i < 33; i++)
		buf[33 + i] = ']';
	v = erm_json_parse((uint8_t *)buf, 66, 33, &why);
	ck_assert_ptr_nonnull(v);
	json_decref(v);
	ck_assert_ptr_null(erm_json_parse((uint8_t *)buf, 66, 32, &why));
	ck_assert_str_eq(why, "nested too deeply");
	v = erm_json_parse((uint8_t *)buf + 1, 64, 32, &why);
	ck_assert_ptr_nonnull(v);
	json_decref(v);
}
END_TEST

/*
 * Mutations of valid requests: flip, insert and delete bytes at random and
 * check that both parsers still agree on every result.
 */
START_TEST(random_mutations)
{
	static const char *const seeds[] = {
		"{\"id\":1,\"method\":\"ping\",\"params\":{}}",
		"{\"id\":\"x\\u00e9\",\"method\":\"a.b\",\"params\":{\"n\":"
		    "[1,2.5e3,-0,true,null,\"\\ud83d\\ude00\"]}}",
		"[\"\xe4\xb8\xad\",{\"k\":{\"j\":[]}},-12.5E-3]",
	};
	unsigned	seed = 4242;
	uint8_t		buf[256];
	size_t		len, k;
	int		i, j, accepted = 0;

	for (i = 0; i < 20000; i++) {
		const char	*s = seeds[i % 3];

		len = strlen(s);
		memcpy(buf, s, len);
		for (j = 0; j < 1 + rand_r(&seed) % 3; j++) {
			k = (size_t)rand_r(&seed) % len;
			switch (rand_r(&seed) % 3) {
			case 0:
				buf[k] = (uint8_t)rand_r(&seed);
				break;
			case 1:
				if (len + 1 < sizeof(buf)) {
					memmove(buf + k + 1, buf + k, len - k);
					buf[k] = (uint8_t)"{}[]\",:\\u0e-."
					    [rand_r(&seed) % 14];
					len++;
				}
				break;
			default:
				if (len > 1) {
					memmove(buf + k, buf + k + 1,
					    len - k - 1);
					len--;
				}
				break;
			}
		}
		accepted += agree(buf, len);
	}
	ck_assert_int_gt(accepted, 100);	/* both paths were exercised */
}
END_TEST

int
main(void)
{
	Suite	*s = suite_create("json_read");
	TCase	*tc = tcase_create("json_read");
	SRunner	*sr;
	int	 failed;

	tcase_add_test(tc, accepted_inputs);
	tcase_add_test(tc, refused_inputs);
	tcase_add_test(tc, embedded_nul_byte);
	tcase_add_test(tc, depth_limit);
	tcase_add_test(tc, random_mutations);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return (failed ? 1 : 0);
}
