/*
 * Unit tests of daemon/opts.c as the module sections use it: the
 * config-file messages of opt_parse_conf (the words of config.c's fixed
 * sections), opts_check_conf on unknown keys, the full int64 range, and
 * opts_from_config taking the last value of a section's key.
 */

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "config.h"
#include "opts.h"

struct target {
	int64_t	 count;
	int64_t	 bytes;
	double	 ratio;
	int	 mode;
	int	 on;
};

static const char *const mode_words[] = { "failover", "round_robin", NULL };

#define C(f)	offsetof(struct target, f)
static const struct opt tab[] = {
	{ "count", OPT_INT, 1, 10000, C(count), NULL },
	{ "bytes", OPT_INT, 0, (double)INT64_MAX, C(bytes), NULL },
	{ "ratio", OPT_NUM, 0.5, 2, C(ratio), NULL },
	{ "mode", OPT_ENUM, 0, 0, C(mode), mode_words },
	{ "on", OPT_BOOL, 0, 0, C(on), NULL },
	{ NULL, OPT_INT, 0, 0, 0, NULL }
};
#undef C

static int
check(const char *key, const char *value, char *err, size_t errsz)
{
	struct target	t;

	err[0] = '\0';
	return (opts_check_conf(tab, &t, key, value, err, errsz));
}

START_TEST(test_conf_messages)
{
	char	err[256];

	ck_assert_int_eq(check("count", "0", err, sizeof(err)), -1);
	ck_assert_str_eq(err, "count: 0 is out of range (1 to 10000)");
	ck_assert_int_eq(check("count", "12x", err, sizeof(err)), -1);
	ck_assert_str_eq(err, "count: '12x' is not an integer");
	ck_assert_int_eq(check("count", "", err, sizeof(err)), -1);
	ck_assert_str_eq(err, "count: '' is not an integer");
	ck_assert_int_eq(check("mode", "random", err, sizeof(err)), -1);
	ck_assert_str_eq(err, "mode: 'random' is not one of failover, "
	    "round_robin");
	ck_assert_int_eq(check("on", "maybe", err, sizeof(err)), -1);
	ck_assert_str_eq(err, "on: 'maybe' is not true or false");
	ck_assert_int_eq(check("ratio", "3", err, sizeof(err)), -1);
	ck_assert_str_eq(err, "ratio: 3 is out of range (0.5 to 2)");
	/* The full int64 range prints exactly. */
	ck_assert_int_eq(check("bytes", "-1", err, sizeof(err)), -1);
	ck_assert_str_eq(err, "bytes: -1 is out of range "
	    "(0 to 9223372036854775807)");
	ck_assert_int_eq(check("bytes", "9223372036854775807", err,
	    sizeof(err)), 0);
	ck_assert_int_eq(check("bytes", "9223372036854775808", err,
	    sizeof(err)), -1);
	ck_assert_str_eq(err, "bytes: '9223372036854775808' is not an "
	    "integer");
	ck_assert_int_eq(check("count", "10000", err, sizeof(err)), 0);
	ck_assert_int_eq(check("mode", "round_robin", err, sizeof(err)), 0);
}
END_TEST

START_TEST(test_conf_unknown_key)
{
	char	err[256];

	/* config.c reports an unknown key itself, from an empty err. */
	ck_assert_int_eq(check("nope", "1", err, sizeof(err)), -1);
	ck_assert_str_eq(err, "");
}
END_TEST

START_TEST(test_plain_messages_unchanged)
{
	struct target	t;
	char		err[256];

	ck_assert_int_eq(opt_parse(&tab[0], &t, "0", err, sizeof(err)), -1);
	ck_assert_str_eq(err, "count must be between 1 and 10000");
	ck_assert_int_eq(opt_parse(&tab[3], &t, "x", err, sizeof(err)), -1);
	ck_assert_str_eq(err, "mode: unknown value 'x' (one of: failover, "
	    "round_robin)");
}
END_TEST

START_TEST(test_from_config)
{
	struct config_entry	e[] = {
		{ "mine", "count", "5", "f", 1 },
		{ "other", "count", "7", "f", 2 },
		{ "mine", "mode", "round_robin", "f", 3 },
		{ "mine", "count", "9", "f", 4 },
		{ "mine", "webhook", "not a row", "f", 5 },
	};
	struct config		cfg;
	struct target		t = { 1, 2, 1, 0, 1 };

	memset(&cfg, 0, sizeof(cfg));
	cfg.entries = e;
	cfg.nentries = sizeof(e) / sizeof(e[0]);
	opts_from_config(tab, &t, &cfg, "mine");
	ck_assert_int_eq(t.count, 9);		/* the last one wins */
	ck_assert_int_eq(t.mode, 1);
	ck_assert_int_eq(t.bytes, 2);		/* not given: untouched */
	ck_assert_int_eq(t.on, 1);
}
END_TEST

static Suite *
opts_suite(void)
{
	Suite	*s = suite_create("opts");
	TCase	*tc = tcase_create("conf");

	tcase_add_test(tc, test_conf_messages);
	tcase_add_test(tc, test_conf_unknown_key);
	tcase_add_test(tc, test_plain_messages_unchanged);
	tcase_add_test(tc, test_from_config);
	suite_add_tcase(s, tc);
	return (s);
}

int
main(void)
{
	SRunner	*sr;
	int	 failed;

	sr = srunner_create(opts_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return (failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE);
}
