/*
 * The daemon clock: manual time, timer order, re-arming, real mode; and
 * periodic work on it.
 */

#include <check.h>
#include <stdint.h>
#include <stdlib.h>

#include <event2/event.h>

#include "clock.h"
#include "periodic.h"

static char	order[32];
static int	norder;
static uint64_t	seen_at[32];

static void
record(void *arg)
{
	char	c = (char)(intptr_t)arg;

	seen_at[norder] = clock_now_ms();
	order[norder++] = c;
	order[norder] = '\0';
}

static void
reset(void)
{
	norder = 0;
	order[0] = '\0';
}

START_TEST(manual_time_stands_still)
{
	uint64_t	t0;

	clock_init(NULL, 1);
	t0 = clock_now_ms();
	ck_assert_uint_gt(t0, UINT64_C(1600000000000));
	ck_assert_uint_eq(clock_now_ms(), t0);
	clock_advance(1500);
	ck_assert_uint_eq(clock_now_ms(), t0 + 1500);
	clock_advance(0);
	ck_assert_uint_eq(clock_now_ms(), t0 + 1500);
	clock_shutdown();
}
END_TEST

START_TEST(timers_fire_in_deadline_order)
{
	struct clock_timer	*a, *b, *c, *d;
	uint64_t		 t0;

	reset();
	clock_init(NULL, 1);
	t0 = clock_now_ms();
	a = clock_timer_new(record, (void *)(intptr_t)'a');
	b = clock_timer_new(record, (void *)(intptr_t)'b');
	c = clock_timer_new(record, (void *)(intptr_t)'c');
	d = clock_timer_new(record, (void *)(intptr_t)'d');
	clock_timer_after(a, 300);
	clock_timer_after(b, 100);
	clock_timer_after(c, 200);
	clock_timer_after(d, 100);	/* same deadline as b: armed later */
	ck_assert_int_eq(clock_timer_pending(a), 1);
	clock_advance(99);
	ck_assert_str_eq(order, "");
	clock_advance(1);
	ck_assert_str_eq(order, "bd");
	ck_assert_uint_eq(seen_at[0], t0 + 100);
	clock_advance(1000);
	ck_assert_str_eq(order, "bdca");
	ck_assert_uint_eq(seen_at[2], t0 + 200);
	ck_assert_uint_eq(seen_at[3], t0 + 300);
	ck_assert_uint_eq(clock_now_ms(), t0 + 1100);
	ck_assert_int_eq(clock_timer_pending(a), 0);
	clock_timer_free(a);
	clock_timer_free(b);
	clock_timer_free(c);
	clock_timer_free(d);
	clock_shutdown();
}
END_TEST

START_TEST(cancel_and_rearm)
{
	struct clock_timer	*a, *b;

	reset();
	clock_init(NULL, 1);
	a = clock_timer_new(record, (void *)(intptr_t)'a');
	b = clock_timer_new(record, (void *)(intptr_t)'b');
	clock_timer_after(a, 100);
	clock_timer_after(b, 200);
	clock_timer_cancel(a);
	clock_timer_after(b, 50);	/* re-arming moves it */
	clock_advance(60);
	ck_assert_str_eq(order, "b");
	clock_advance(1000);
	ck_assert_str_eq(order, "b");
	clock_timer_free(a);
	clock_timer_free(b);
	clock_shutdown();
}
END_TEST

static struct clock_timer	*chain;

static void
rearm_self(void *arg)
{
	record(arg);
	if (norder < 5)
		clock_timer_after(chain, 10);
}

/* A timer armed from a callback inside the advanced window fires too. */
START_TEST(callbacks_can_rearm_within_window)
{
	uint64_t	t0;

	reset();
	clock_init(NULL, 1);
	t0 = clock_now_ms();
	chain = clock_timer_new(rearm_self, (void *)(intptr_t)'x');
	clock_timer_after(chain, 10);
	clock_advance(35);
	ck_assert_str_eq(order, "xxx");
	ck_assert_uint_eq(seen_at[2], t0 + 30);
	clock_advance(100);
	ck_assert_str_eq(order, "xxxxx");
	clock_timer_free(chain);
	clock_shutdown();
}
END_TEST

START_TEST(many_timers_heap)
{
	struct clock_timer	*t[1000];
	int			 i, total = 0;

	reset();
	clock_init(NULL, 1);
	for (i = 0; i < 1000; i++) {
		t[i] = clock_timer_new(record, (void *)(intptr_t)'.');
		clock_timer_after(t[i], (uint64_t)((i * 7919) % 1000) + 1);
	}
	for (i = 0; i < 1000; i += 2)
		clock_timer_cancel(t[i]);
	norder = 0;
	for (i = 1; i <= 1000; i++) {
		int	before = norder;

		clock_advance(1);
		ck_assert_int_le(norder - before, 1);
		total += norder - before;
		if (norder >= 31)
			norder = 0;	/* only counting, keep the buffer */
	}
	ck_assert_int_eq(total, 500);
	for (i = 0; i < 1000; i++) {
		ck_assert_int_eq(clock_timer_pending(t[i]), 0);
		clock_timer_free(t[i]);
	}
	clock_shutdown();
}
END_TEST

static void
stop_loop(void *arg)
{
	record((void *)(intptr_t)'r');
	event_base_loopbreak(arg);
}

START_TEST(real_mode_fires_from_the_loop)
{
	struct event_base	*base = event_base_new();
	struct clock_timer	*t;
	uint64_t		 t0;

	reset();
	clock_init(base, 0);
	t0 = clock_now_ms();
	t = clock_timer_new(stop_loop, base);
	clock_timer_after(t, 20);
	event_base_dispatch(base);
	ck_assert_str_eq(order, "r");
	ck_assert_uint_ge(seen_at[0], t0 + 20);
	clock_timer_free(t);
	clock_shutdown();
	event_base_free(base);
}
END_TEST

/* With a loop, a manual-clock timer due now fires on the next pass
 * without any advance; one in the future still waits for an advance. */
START_TEST(manual_due_now_fires_from_the_loop)
{
	struct event_base	*base = event_base_new();
	struct clock_timer	*now, *later;

	reset();
	clock_init(base, 1);
	now = clock_timer_new(record, (void *)(intptr_t)'n');
	later = clock_timer_new(record, (void *)(intptr_t)'l');
	clock_timer_after(later, 5);
	clock_timer_after(now, 0);
	event_base_loop(base, EVLOOP_NONBLOCK);
	ck_assert_str_eq(order, "n");
	event_base_loop(base, EVLOOP_NONBLOCK);
	ck_assert_str_eq(order, "n");
	clock_advance(5);
	ck_assert_str_eq(order, "nl");
	clock_timer_free(now);
	clock_timer_free(later);
	clock_shutdown();
	event_base_free(base);
}
END_TEST

/* periodic: runs that end at once unless told to stay busy. */
static int	runs, stay_busy;

static void
count_run(struct periodic *p)
{
	seen_at[runs++ % 32] = clock_now_ms();
	if (!stay_busy)
		periodic_done(p, 0);
}

START_TEST(periodic_runs)
{
	struct periodic	p;
	uint64_t	t0;

	runs = stay_busy = 0;
	clock_init(NULL, 1);
	t0 = clock_now_ms();
	ck_assert_int_eq(periodic_start(&p, count_run, 100), 0);
	clock_advance(250);
	ck_assert_int_eq(runs, 2);
	ck_assert_uint_eq(seen_at[1], t0 + 200);

	/*
	 * A run still going: the ticks meanwhile make one run, as soon as
	 * it is done. A run done with more to do: another at once.
	 */
	stay_busy = 1;
	clock_advance(50);			/* t0 + 300 */
	ck_assert_int_eq(runs, 3);
	clock_advance(300);
	ck_assert_int_eq(runs, 3);
	periodic_done(&p, 0);
	clock_advance(0);
	ck_assert_int_eq(runs, 4);		/* still busy */
	ck_assert_uint_eq(seen_at[3], t0 + 600);
	stay_busy = 0;
	periodic_done(&p, 1);
	clock_advance(0);
	ck_assert_int_eq(runs, 5);
	clock_advance(99);
	ck_assert_int_eq(runs, 5);
	clock_advance(1);			/* the tick's own pace */
	ck_assert_int_eq(runs, 6);
	ck_assert_uint_eq(seen_at[5], t0 + 700);

	/* A new interval counts from now; 0 stops; so does stop. */
	periodic_every(&p, 0);
	clock_advance(10000);
	ck_assert_int_eq(runs, 6);
	periodic_every(&p, 30);
	clock_advance(30);
	ck_assert_int_eq(runs, 7);
	periodic_stop(&p);
	clock_advance(10000);
	ck_assert_int_eq(runs, 7);
	periodic_done(&p, 1);			/* a late end: harmless */
	clock_advance(10000);
	ck_assert_int_eq(runs, 7);
	clock_shutdown();
}
END_TEST

int
main(void)
{
	Suite	*s = suite_create("clock");
	TCase	*tc = tcase_create("clock");
	SRunner	*sr;
	int	 failed;

	tcase_add_test(tc, manual_time_stands_still);
	tcase_add_test(tc, timers_fire_in_deadline_order);
	tcase_add_test(tc, cancel_and_rearm);
	tcase_add_test(tc, callbacks_can_rearm_within_window);
	tcase_add_test(tc, many_timers_heap);
	tcase_add_test(tc, real_mode_fires_from_the_loop);
	tcase_add_test(tc, manual_due_now_fires_from_the_loop);
	tcase_add_test(tc, periodic_runs);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return (failed ? 1 : 0);
}
