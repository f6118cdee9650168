/* Event fan-out and the Prometheus rendering of the metrics registry. */

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "events.h"
#include "metrics.h"

struct sink {
	int	count;
	char	last[512];
};

static void
deliver(void *ctx, const uint8_t *frame, size_t len)
{
	struct sink	*s = ctx;

	s->count++;
	ck_assert_uint_ge(len, 4);
	ck_assert_uint_eq((size_t)frame[3] | (size_t)frame[2] << 8, len - 4);
	snprintf(s->last, sizeof(s->last), "%.*s", (int)(len - 4),
	    (const char *)frame + 4);
}

START_TEST(fan_out_by_mask)
{
	struct sink		a = { 0, "" }, b = { 0, "" };
	struct subscriber	sa = { 1u << EV_ALERT, deliver, &a, NULL, NULL };
	struct subscriber	sb = { EVENTS_ALL, deliver, &b, NULL, NULL };
	char			want[256];

	clock_init(NULL, 1);
	events_subscribe(&sa);
	events_subscribe(&sb);
	events_subscribe(&sb);		/* twice is once */
	ck_assert_int_eq(events_emit(EV_ALERT, json_pack("{s:s}", "key",
	    "k1")), 2);
	snprintf(want, sizeof(want), "{\"method\":\"event\",\"params\":"
	    "{\"type\":\"alert\",\"at\":%llu,\"key\":\"k1\"}}",
	    (unsigned long long)clock_now_ms());
	ck_assert_str_eq(a.last, want);
	ck_assert_str_eq(b.last, want);
	ck_assert_int_eq(events_emit(EV_BREAKER_STATE, NULL), 1);
	ck_assert_int_eq(a.count, 1);
	ck_assert_int_eq(b.count, 2);
	events_unsubscribe(&sb);
	events_unsubscribe(&sb);
	ck_assert_int_eq(events_emit(EV_BREAKER_STATE, NULL), 0);
	events_unsubscribe(&sa);
	ck_assert_int_eq(events_emit(EV_ALERT, NULL), 0);
	clock_shutdown();
}
END_TEST

/* A subscriber that unsubscribes itself while being delivered to (as a
 * connection closed for its output limit does) does not break the walk. */
static struct subscriber	*self_sub;

static void
deliver_and_leave(void *ctx, const uint8_t *frame, size_t len)
{
	deliver(ctx, frame, len);
	events_unsubscribe(self_sub);
}

START_TEST(unsubscribe_during_delivery)
{
	struct sink		a = { 0, "" }, b = { 0, "" }, c = { 0, "" };
	struct subscriber	sa = { EVENTS_ALL, deliver, &a, NULL, NULL };
	struct subscriber	sb = { EVENTS_ALL, deliver_and_leave, &b, NULL,
	    NULL };
	struct subscriber	sc = { EVENTS_ALL, deliver, &c, NULL, NULL };

	clock_init(NULL, 1);
	events_subscribe(&sa);
	events_subscribe(&sb);
	events_subscribe(&sc);
	self_sub = &sb;
	ck_assert_int_eq(events_emit(EV_OP_FINISHED, NULL), 3);
	ck_assert_int_eq(events_emit(EV_OP_FINISHED, NULL), 2);
	ck_assert_int_eq(a.count + b.count + c.count, 5);
	events_unsubscribe(&sa);
	events_unsubscribe(&sc);
	clock_shutdown();
}
END_TEST

START_TEST(type_names_round_trip)
{
	int	t;

	for (t = 0; t < EV_NTYPES; t++)
		ck_assert_int_eq(event_type_parse(event_type_name(t)), t);
	ck_assert_int_eq(event_type_parse("nope"), -1);
	ck_assert_str_eq(event_type_name(EV_WORKFLOW_STEP), "workflow.step");
}
END_TEST

static double
seven(void)
{
	return (7);
}

static void
collect_two(struct metric_emitter *e)
{
	metric_emit(e, 2, "s3");
	metric_emit(e, 0, "db");
}

START_TEST(prometheus_collector)
{
	static const char *const l[] = { "breaker", NULL };
	char	*text;

	metrics_reset();
	metrics_collector("ermd_b", "Per breaker.", METRIC_GAUGE, l,
	    collect_two);
	text = metrics_render(NULL);
	ck_assert_str_eq(text, "# HELP ermd_b Per breaker.\n"
	    "# TYPE ermd_b gauge\n"
	    "ermd_b{breaker=\"s3\"} 2\n"
	    "ermd_b{breaker=\"db\"} 0\n");
	free(text);
	metrics_reset();
}
END_TEST

START_TEST(prometheus_text)
{
	static const char *const l[] = { "method", "result", NULL };
	static const char *const h[] = { "method", NULL };
	struct metric_family	*c, *hist;
	char			*text;

	metrics_reset();
	c = metrics_family("ermd_x_total", "Things.", METRIC_COUNTER, l);
	metric_inc(metrics_series(c, "ping", "ok"));
	metric_add(metrics_series(c, "ping", "ok"), 2);
	(void)metrics_series(c, "a\"b\\c\nd", "error");
	hist = metrics_family("ermd_t_seconds", "Time.", METRIC_HISTOGRAM, h);
	metric_observe(metrics_series(hist, "m"), 0.0003);
	metric_observe(metrics_series(hist, "m"), 3);
	metrics_gauge_fn("ermd_g", "A gauge.", seven);
	text = metrics_render(NULL);
	ck_assert_str_eq(text,
	    "# HELP ermd_x_total Things.\n"
	    "# TYPE ermd_x_total counter\n"
	    "ermd_x_total{method=\"ping\",result=\"ok\"} 3\n"
	    "ermd_x_total{method=\"a\\\"b\\\\c\\nd\",result=\"error\"} 0\n"
	    "# HELP ermd_t_seconds Time.\n"
	    "# TYPE ermd_t_seconds histogram\n"
	    "ermd_t_seconds_bucket{method=\"m\",le=\"0.0001\"} 0\n"
	    "ermd_t_seconds_bucket{method=\"m\",le=\"0.00025\"} 0\n"
	    "ermd_t_seconds_bucket{method=\"m\",le=\"0.0005\"} 1\n"
	    "ermd_t_seconds_bucket{method=\"m\",le=\"0.001\"} 1\n"
	    "ermd_t_seconds_bucket{method=\"m\",le=\"0.0025\"} 1\n"
	    "ermd_t_seconds_bucket{method=\"m\",le=\"0.005\"} 1\n"
	    "ermd_t_seconds_bucket{method=\"m\",le=\"0.01\"} 1\n"
	    "ermd_t_seconds_bucket{method=\"m\",le=\"0.025\"} 1\n"
	    "ermd_t_seconds_bucket{method=\"m\",le=\"0.05\"} 1\n"
	    "ermd_t_seconds_bucket{method=\"m\",le=\"0.1\"} 1\n"
	    "ermd_t_seconds_bucket{method=\"m\",le=\"0.25\"} 1\n"
	    "ermd_t_seconds_bucket{method=\"m\",le=\"0.5\"} 1\n"
	    "ermd_t_seconds_bucket{method=\"m\",le=\"1\"} 1\n"
	    "ermd_t_seconds_bucket{method=\"m\",le=\"2.5\"} 1\n"
	    "ermd_t_seconds_bucket{method=\"m\",le=\"5\"} 2\n"
	    "ermd_t_seconds_bucket{method=\"m\",le=\"10\"} 2\n"
	    "ermd_t_seconds_bucket{method=\"m\",le=\"+Inf\"} 2\n"
	    "ermd_t_seconds_sum{method=\"m\"} 3.0003000000000002\n"
	    "ermd_t_seconds_count{method=\"m\"} 2\n"
	    "# HELP ermd_g A gauge.\n"
	    "# TYPE ermd_g gauge\n"
	    "ermd_g 7\n");
	free(text);
	metrics_reset();
}
END_TEST

int
main(void)
{
	Suite	*s = suite_create("events");
	TCase	*tc = tcase_create("events");
	SRunner	*sr;
	int	 failed;

	tcase_add_test(tc, fan_out_by_mask);
	tcase_add_test(tc, unsubscribe_during_delivery);
	tcase_add_test(tc, type_names_round_trip);
	tcase_add_test(tc, prometheus_text);
	tcase_add_test(tc, prometheus_collector);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return (failed ? 1 : 0);
}
