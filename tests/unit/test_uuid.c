/* UUIDv7: layout (version, variant, time), order, and the syntax check. */

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "uuid.h"

START_TEST(layout_and_time)
{
	char		u[UUID_STRLEN + 1], ts[13];
	uint64_t	now;

	clock_init(NULL, 1);
	now = clock_now_ms();
	uuid7(u);
	ck_assert_uint_eq(strlen(u), 36);
	ck_assert(uuid_valid(u));
	ck_assert_int_eq(u[14], '7');			/* version 7 */
	ck_assert(strchr("89ab", u[19]) != NULL);	/* RFC variant */
	/* The first 48 bits are the daemon clock's milliseconds. */
	memcpy(ts, u, 8);
	memcpy(ts + 8, u + 9, 4);
	ts[12] = '\0';
	ck_assert_uint_eq(strtoull(ts, NULL, 16), now);
	clock_shutdown();
}
END_TEST

START_TEST(sorted_within_and_across_milliseconds)
{
	char	prev[UUID_STRLEN + 1], cur[UUID_STRLEN + 1];
	int	i;

	clock_init(NULL, 1);
	uuid7(prev);
	for (i = 0; i < 10000; i++) {
		if (i % 1000 == 999)
			clock_advance(1);
		uuid7(cur);
		ck_assert_msg(strcmp(prev, cur) < 0, "%s !< %s", prev, cur);
		memcpy(prev, cur, sizeof(prev));
	}
	clock_shutdown();
}
END_TEST

START_TEST(syntax)
{
	ck_assert(uuid_valid("01a228b7-1b06-7131-818e-280b1cd195d7"));
	ck_assert(uuid_valid("01A228B7-1B06-7131-818E-280B1CD195D7"));
	ck_assert(!uuid_valid("01a228b7-1b06-7131-818e-280b1cd195d"));
	ck_assert(!uuid_valid("01a228b7x1b06-7131-818e-280b1cd195d7"));
	ck_assert(!uuid_valid("01a228b7-1b06-7131-818e-280b1cd195dg"));
	ck_assert(!uuid_valid(""));
}
END_TEST

int
main(void)
{
	Suite	*s = suite_create("uuid");
	TCase	*tc = tcase_create("uuid");
	SRunner	*sr;
	int	 failed;

	tcase_add_test(tc, layout_and_time);
	tcase_add_test(tc, sorted_within_and_across_milliseconds);
	tcase_add_test(tc, syntax);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return (failed ? 1 : 0);
}
