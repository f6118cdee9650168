/* The worker pool: tasks run off the loop, completions on it, in full. */

#include <check.h>
#include <pthread.h>
#include <stdlib.h>

#include <event2/event.h>

#include "worker.h"

struct item {
	pthread_t	ran_on;
	int		value;
	int		done;
};

static pthread_t	loop_thread;
static int		ndone;

static void
work(void *arg)
{
	struct item	*it = arg;

	it->ran_on = pthread_self();
	it->value *= 2;
}

static void
finish(void *arg)
{
	struct item	*it = arg;

	ck_assert(pthread_equal(pthread_self(), loop_thread));
	it->done = 1;
	ndone++;
}

START_TEST(tasks_complete_on_the_loop)
{
	struct event_base	*base = event_base_new();
	static struct item	 items[1000];
	int			 i;

	loop_thread = pthread_self();
	ndone = 0;
	ck_assert_int_eq(worker_init(base, 4), 0);
	for (i = 0; i < 1000; i++) {
		items[i].value = i;
		ck_assert_int_eq(worker_submit(work, finish, &items[i]), 0);
	}
	while (ndone < 1000)
		event_base_loop(base, EVLOOP_ONCE);
	for (i = 0; i < 1000; i++) {
		ck_assert_int_eq(items[i].value, 2 * i);
		ck_assert_int_eq(items[i].done, 1);
		ck_assert(!pthread_equal(items[i].ran_on, loop_thread));
	}
	ck_assert_uint_eq(worker_pending(), 0);
	worker_shutdown();
	event_base_free(base);
}
END_TEST

START_TEST(shutdown_drains_the_queue)
{
	struct event_base	*base = event_base_new();
	static struct item	 items[100];
	int			 i;

	loop_thread = pthread_self();
	ndone = 0;
	ck_assert_int_eq(worker_init(base, 2), 0);
	for (i = 0; i < 100; i++) {
		items[i].value = i;
		worker_submit(work, finish, &items[i]);
	}
	worker_shutdown();
	ck_assert_int_eq(ndone, 100);
	ck_assert_int_eq(worker_submit(work, finish, &items[0]), -1);
	event_base_free(base);
}
END_TEST

int
main(void)
{
	Suite	*s = suite_create("worker");
	TCase	*tc = tcase_create("worker");
	SRunner	*sr;
	int	 failed;

	tcase_add_test(tc, tasks_complete_on_the_loop);
	tcase_add_test(tc, shutdown_drains_the_queue);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return (failed ? 1 : 0);
}
