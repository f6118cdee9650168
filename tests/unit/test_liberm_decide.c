/*
 * liberm's decision-core calls and `ermctl run` against a fake daemon: a
 * thread holds the other end of a socket pair, records every request and
 * answers each with the next scripted reply. The cases then check the
 * exact requests sent (methods and params, member for member, as
 * PROTOCOL.md names them) and what erm_execute decided.
 *
 * erm.c, erm_decide.c, ermctl_run.c and ermctl_parse.c are included
 * whole: libermd.a has none of them, and the cases need client_new() to
 * wrap a socket pair. The few ermctl.c helpers ermctl_run.c calls are
 * stubbed below.
 */

#include "erm.c"
#include "erm_decide.c"
#include "ermctl_run.c"
#include "ermctl_parse.c"
#include "frames.h"

#include <sys/stat.h>

#include <pthread.h>

#include <check.h>

static struct erm_client	*cl;
static int			 srv = -1;

/* ---- the fake daemon ---------------------------------------------------- */

struct fake {
	const char *const	*script;	/* reply bodies; NULL ends */
	json_t			*reqs;		/* every request, in order */
	pthread_t		 thread;
};

static struct fake	fake;

/*
 * Answer each request with the next scripted body ("\"result\":{...}" or
 * "\"error\":{...}"); past the script, -32603 so that a request too many
 * shows up in the recorded list and in the outcome.
 */
static void *
fake_main(void *arg)
{
	json_t	*req;
	char	 buf[4096];
	size_t	 i = 0;

	(void)arg;
	while ((req = frames_recv(srv, 1024 * 1024)) != NULL) {
		json_array_append_new(fake.reqs, req);
		snprintf(buf, sizeof(buf), "{\"id\":%lld,%s}",
		    (long long)json_integer_value(json_object_get(req, "id")),
		    fake.script[i] != NULL ? fake.script[i] :
		    "\"error\":{\"code\":-32603,\"message\":\"unscripted\"}");
		if (fake.script[i] != NULL)
			i++;
		(void)frames_send(srv, buf);
	}
	return (NULL);
}

static void
fake_start(const char *const *script)
{
	fake.script = script;
	ck_assert_ptr_nonnull(fake.reqs = json_array());
	ck_assert_int_eq(pthread_create(&fake.thread, NULL, fake_main,
	    NULL), 0);
}

/* Hang up our side, wait for the fake and return how many requests came. */
static size_t
fake_stop(void)
{
	shutdown(cl->fd, SHUT_WR);
	ck_assert_int_eq(pthread_join(fake.thread, NULL), 0);
	return (json_array_size(fake.reqs));
}

/* Request i was method with exactly the params in text. */
static void
check_req(size_t i, const char *method, const char *text)
{
	json_t		*req, *want;
	json_error_t	 jerr;
	char		*got;

	req = json_array_get(fake.reqs, i);
	ck_assert_msg(req != NULL, "no request %zu", i);
	ck_assert_str_eq(json_string_value(json_object_get(req, "method")),
	    method);
	want = json_loads(text, 0, &jerr);
	ck_assert_msg(want != NULL, "bad test JSON: %s", jerr.text);
	got = json_dumps(json_object_get(req, "params"), JSON_COMPACT |
	    JSON_SORT_KEYS);
	ck_assert_msg(json_equal(want, json_object_get(req, "params")),
	    "%s params: got %s, want %s", method, got, text);
	free(got);
	json_decref(want);
}

static void
setup(void)
{
	int	sv[2];

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0,
	    sv), 0);
	ck_assert_ptr_nonnull(cl = client_new("socketpair"));
	cl->fd = sv[0];
	srv = sv[1];
	memset(&fake, 0, sizeof(fake));
}

static void
teardown(void)
{
	erm_close(cl);
	cl = NULL;
	if (srv != -1)
		close(srv);
	srv = -1;
	json_decref(fake.reqs);
	fake.reqs = NULL;
}

static int64_t
mono_ms(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
}

/* ---- the protected function -------------------------------------------- */

/* Fails its first `fails` calls with err, then succeeds. */
struct flaky {
	int			 fails;
	int			 calls;
	struct erm_errinfo	 err;
	volatile sig_atomic_t	*cancel;	/* set on the first call */
};

static int
flaky_fn(void *arg, struct erm_errinfo *err)
{
	struct flaky	*f = arg;

	f->calls++;
	if (f->cancel != NULL)
		*f->cancel = 1;
	if (f->calls <= f->fails) {
		*err = f->err;
		return (-1);
	}
	return (0);
}

#define BEGIN_OK	"\"result\":{\"op\":\"op-1\",\"attempt\":1," \
			"\"backups\":[]}"

/* ---- erm_execute -------------------------------------------------------- */

START_TEST(test_exec_first_try)
{
	static const char *const script[] = {
		BEGIN_OK,
		"\"result\":{\"op\":\"op-1\",\"attempts\":1,"
		    "\"recovered\":false}",
		NULL
	};
	struct flaky		f = { 0 };
	struct erm_exec_result	res;

	fake_start(script);
	ck_assert_int_eq(erm_execute(cl, "upload", flaky_fn, &f, NULL, &res),
	    ERM_OK);
	ck_assert_int_eq(fake_stop(), 2);
	check_req(0, "op.begin", "{\"operation\":\"upload\"}");
	check_req(1, "op.succeed", "{\"op\":\"op-1\"}");
	ck_assert_int_eq(f.calls, 1);
	ck_assert_int_eq(res.attempts, 1);
	ck_assert_int_eq(res.recovered, 0);
	ck_assert_str_eq(res.op, "op-1");
	ck_assert_str_eq(res.decision, "");
	ck_assert_int_eq(res.slept_ms, 0);
}
END_TEST

/*
 * Two failures, each answered "retry" with a small delay, then success:
 * the delays waited are the ones the daemon gave, and the permits in the
 * replies are the daemon's business (nothing of them goes back).
 */
START_TEST(test_exec_retry_then_succeed)
{
	static const char *const script[] = {
		"\"result\":{\"op\":\"op-7\",\"attempt\":1,\"permit\":\"p1\","
		    "\"backups\":[{\"path\":\"/srv/a\",\"backup_id\":\"b1\"}]}",
		"\"result\":{\"decision\":\"retry\",\"category\":"
		    "\"NETWORK_ERROR\",\"strategy\":\"retry_with_backoff\","
		    "\"attempt\":1,\"delay_ms\":3,\"permit\":\"p2\","
		    "\"rolled_back\":[]}",
		"\"result\":{\"decision\":\"retry\",\"category\":"
		    "\"NETWORK_ERROR\",\"strategy\":\"retry_with_backoff\","
		    "\"attempt\":2,\"delay_ms\":5,\"permit\":\"p3\","
		    "\"rolled_back\":[]}",
		"\"result\":{\"op\":\"op-7\",\"attempts\":3,"
		    "\"recovered\":true}",
		NULL
	};
	static const char *const backup[] = { "/srv/a", NULL };
	struct flaky		 f = { .fails = 2,
				    .err = { .errnum = ECONNRESET } };
	struct erm_exec_opts	 o = { .breaker = "db", .policy = "net",
				    .backup = backup };
	struct erm_exec_result	 res;
	char			 want[128];
	int64_t			 t0, took;

	fake_start(script);
	t0 = mono_ms();
	ck_assert_int_eq(erm_execute(cl, "upload", flaky_fn, &f, &o, &res),
	    ERM_OK);
	took = mono_ms() - t0;
	ck_assert_int_eq(fake_stop(), 4);
	check_req(0, "op.begin", "{\"operation\":\"upload\",\"breaker\":"
	    "\"db\",\"policy\":\"net\",\"backup\":[\"/srv/a\"]}");
	snprintf(want, sizeof(want), "{\"op\":\"op-7\",\"error\":"
	    "{\"errno\":%d}}", ECONNRESET);
	check_req(1, "op.fail", want);
	check_req(2, "op.fail", want);
	check_req(3, "op.succeed", "{\"op\":\"op-7\"}");
	ck_assert_int_eq(f.calls, 3);
	ck_assert_int_eq(res.attempts, 3);
	ck_assert_int_eq(res.recovered, 1);
	ck_assert_int_eq(res.slept_ms, 8);
	ck_assert_int_ge(took, 8);
	ck_assert_str_eq(res.category, "NETWORK_ERROR");
	ck_assert_str_eq(res.strategy, "retry_with_backoff");
	ck_assert_str_eq(res.decision, "");
}
END_TEST

START_TEST(test_exec_escalate)
{
	static const char *const script[] = {
		BEGIN_OK,
		"\"result\":{\"decision\":\"escalate\",\"category\":"
		    "\"PERMISSION_ERROR\",\"strategy\":\"escalate\","
		    "\"attempt\":1,\"rolled_back\":[]}",
		NULL
	};
	struct flaky		f = { .fails = 5, .err = { .http_status = 403,
				    .message = "forbidden" } };
	struct erm_exec_result	res;

	fake_start(script);
	ck_assert_int_eq(erm_execute(cl, "upload", flaky_fn, &f, NULL, &res),
	    ERM_EREPLY);
	ck_assert_int_eq(fake_stop(), 2);
	check_req(1, "op.fail", "{\"op\":\"op-1\",\"error\":{\"http_status\":"
	    "403,\"message\":\"forbidden\"}}");
	ck_assert_int_eq(f.calls, 1);
	ck_assert_str_eq(res.decision, "escalate");
	ck_assert_str_eq(res.category, "PERMISSION_ERROR");
	ck_assert_int_eq(res.attempts, 1);
	ck_assert_int_eq(res.recovered, 0);
	ck_assert_int_ne(res.fn_result, 0);
	/* A decision is not a daemon error. */
	ck_assert_int_eq(erm_last_error(cl)->code, 0);
}
END_TEST

START_TEST(test_exec_rejected_at_begin)
{
	static const char *const script[] = {
		"\"error\":{\"code\":1004,\"message\":\"breaker db is open\","
		    "\"data\":{\"breaker\":\"db\",\"state\":\"open\","
		    "\"retry_after_ms\":1500}}",
		NULL
	};
	struct flaky		f = { 0 };
	struct erm_exec_opts	o = { .breaker = "db" };
	struct erm_exec_result	res;

	fake_start(script);
	ck_assert_int_eq(erm_execute(cl, "upload", flaky_fn, &f, &o, &res),
	    ERM_EREPLY);
	ck_assert_int_eq(fake_stop(), 1);
	check_req(0, "op.begin", "{\"operation\":\"upload\",\"breaker\":"
	    "\"db\"}");
	ck_assert_int_eq(f.calls, 0);
	ck_assert_int_eq(res.attempts, 0);
	ck_assert_str_eq(res.decision, "rejected");
	ck_assert_int_eq(res.retry_after_ms, 1500);
	ck_assert_str_eq(res.op, "");
	ck_assert_int_eq(erm_last_error(cl)->code, ERM_CODE_BREAKER_OPEN);
}
END_TEST

/* The breaker opened on this failure: op.fail refuses the next attempt. */
START_TEST(test_exec_rejected_retry)
{
	static const char *const script[] = {
		BEGIN_OK,
		"\"error\":{\"code\":1004,\"message\":\"breaker db is open\","
		    "\"data\":{\"breaker\":\"db\",\"state\":\"open\","
		    "\"retry_after_ms\":60000}}",
		NULL
	};
	struct flaky		f = { .fails = 5,
				    .err = { .exit_code = 1 } };
	struct erm_exec_result	res;

	fake_start(script);
	ck_assert_int_eq(erm_execute(cl, "upload", flaky_fn, &f, NULL, &res),
	    ERM_EREPLY);
	ck_assert_int_eq(fake_stop(), 2);
	ck_assert_int_eq(f.calls, 1);
	ck_assert_str_eq(res.decision, "rejected");
	ck_assert_int_eq(res.retry_after_ms, 60000);
	ck_assert_int_eq(res.attempts, 1);
}
END_TEST

START_TEST(test_exec_fallback)
{
	static const char *const script[] = {
		BEGIN_OK,
		"\"result\":{\"decision\":\"fallback\",\"category\":"
		    "\"NETWORK_ERROR\",\"strategy\":\"fallback_storage\","
		    "\"attempt\":3,\"rolled_back\":[{\"path\":\"/srv/a\","
		    "\"backup_id\":\"b1\"}],\"backend\":\"secondary\"}",
		NULL
	};
	struct flaky		f = { .fails = 5, .err = {
				    .exception = "ConnectionResetError" } };
	struct erm_exec_result	res;

	fake_start(script);
	ck_assert_int_eq(erm_execute(cl, "upload", flaky_fn, &f, NULL, &res),
	    ERM_EREPLY);
	ck_assert_int_eq(fake_stop(), 2);
	check_req(1, "op.fail", "{\"op\":\"op-1\",\"error\":{\"exception\":"
	    "\"ConnectionResetError\"}}");
	ck_assert_str_eq(res.decision, "fallback");
	ck_assert_str_eq(res.backend, "secondary");
	ck_assert_str_eq(res.strategy, "fallback_storage");
	ck_assert_int_eq(res.rolled_back, 1);
}
END_TEST

/*
 * A retry whose delay would start the next attempt past the deadline ends
 * the op at once, without waiting.
 */
START_TEST(test_exec_deadline)
{
	static const char *const script[] = {
		BEGIN_OK,
		"\"result\":{\"decision\":\"retry\",\"category\":"
		    "\"TIMEOUT_ERROR\",\"strategy\":\"retry_with_backoff\","
		    "\"attempt\":1,\"delay_ms\":10000,\"rolled_back\":[]}",
		NULL
	};
	struct flaky		f = { .fails = 5,
				    .err = { .errnum = ETIMEDOUT } };
	struct erm_exec_opts	o = { .deadline_ms = 50 };
	struct erm_exec_result	res;

	fake_start(script);
	ck_assert_int_eq(erm_execute(cl, "upload", flaky_fn, &f, &o, &res),
	    ERM_ETIMEDOUT);
	ck_assert_int_eq(fake_stop(), 2);
	check_req(0, "op.begin", "{\"operation\":\"upload\","
	    "\"deadline_ms\":50}");
	ck_assert_str_eq(res.decision, "deadline");
	ck_assert_int_eq(res.attempts, 1);
	ck_assert_int_eq(res.slept_ms, 0);
}
END_TEST

/* The cancel flag stops further attempts; the failure is still reported. */
START_TEST(test_exec_cancel)
{
	static const char *const script[] = {
		BEGIN_OK,
		"\"result\":{\"decision\":\"retry\",\"category\":"
		    "\"SYSTEM_ERROR\",\"strategy\":\"retry\",\"attempt\":1,"
		    "\"delay_ms\":1,\"rolled_back\":[]}",
		NULL
	};
	static volatile sig_atomic_t	cancel;
	struct flaky			f = { .fails = 5,
					    .err = { .signal = SIGINT },
					    .cancel = &cancel };
	struct erm_exec_opts		o = { .cancel = &cancel };
	struct erm_exec_result		res;

	cancel = 0;
	fake_start(script);
	ck_assert_int_eq(erm_execute(cl, "upload", flaky_fn, &f, &o, &res),
	    ERM_ESYS);
	ck_assert_int_eq(errno, EINTR);
	ck_assert_int_eq(fake_stop(), 2);
	check_req(1, "op.fail", "{\"op\":\"op-1\",\"error\":{\"signal\":2}}");
	ck_assert_str_eq(res.decision, "cancelled");
	ck_assert_int_eq(f.calls, 1);

	/* Set before the start: nothing is asked at all. */
	ck_assert_int_eq(erm_execute(cl, "upload", flaky_fn, &f, &o, &res),
	    ERM_ESYS);
	ck_assert_str_eq(res.decision, "cancelled");
	ck_assert_int_eq(res.attempts, 0);
}
END_TEST

/*
 * A policy object goes as `policy` (and wins over a name); a failure with
 * no description is reported as an unspecified one.
 */
START_TEST(test_exec_policy_object)
{
	static const char *const script[] = {
		BEGIN_OK,
		"\"result\":{\"decision\":\"skip\",\"category\":"
		    "\"SYSTEM_ERROR\",\"strategy\":\"skip_and_log\","
		    "\"attempt\":1,\"rolled_back\":[]}",
		NULL
	};
	struct flaky		 f = { .fails = 1 };
	struct erm_exec_opts	 o = { .policy = "ignored" };
	struct erm_exec_result	 res;

	o.policy_object = json_pack("{s:i, s:i, s:[s]}", "max_attempts", 5,
	    "base_delay_ms", 1000, "retry_on", "NETWORK_ERROR");
	fake_start(script);
	ck_assert_int_eq(erm_execute(cl, "upload", flaky_fn, &f, &o, &res),
	    ERM_EREPLY);
	json_decref(o.policy_object);
	ck_assert_int_eq(fake_stop(), 2);
	check_req(0, "op.begin", "{\"operation\":\"upload\",\"policy\":"
	    "{\"max_attempts\":5,\"base_delay_ms\":1000,\"retry_on\":"
	    "[\"NETWORK_ERROR\"]}}");
	check_req(1, "op.fail", "{\"op\":\"op-1\",\"error\":{\"message\":"
	    "\"unspecified failure\"}}");
	ck_assert_str_eq(res.decision, "skip");
}
END_TEST

/* Replies that break the contract are ERM_EPROTO, not a guess. */
START_TEST(test_exec_bad_replies)
{
	static const char *const script[] = {
		"\"result\":{\"attempt\":1}",		/* no op */
		BEGIN_OK,
		"\"result\":{\"category\":\"X\"}",	/* no decision */
		NULL
	};
	struct flaky		f = { .fails = 5, .err = { .exit_code = 2 } };
	struct erm_exec_result	res;

	fake_start(script);
	ck_assert_int_eq(erm_execute(cl, "upload", flaky_fn, &f, NULL, &res),
	    ERM_EPROTO);
	ck_assert_int_eq(f.calls, 0);
	ck_assert_int_eq(erm_execute(cl, "upload", flaky_fn, &f, NULL, &res),
	    ERM_EPROTO);
	ck_assert_int_eq(f.calls, 1);
	ck_assert_int_eq(fake_stop(), 3);

	ck_assert_int_eq(erm_execute(NULL, "x", flaky_fn, &f, NULL, &res),
	    ERM_EINVAL);
	ck_assert_int_eq(erm_execute(cl, NULL, flaky_fn, &f, NULL, &res),
	    ERM_EINVAL);
	ck_assert_int_eq(erm_execute(cl, "x", NULL, &f, NULL, NULL),
	    ERM_EINVAL);
}
END_TEST

/* The decorator: the operation is named after the function. */
ERM_RECOVERABLE(store_blob, struct flaky, cl, NULL)
{
	arg->calls++;
	if (arg->calls == 1) {
		err->exception = "ConnectionResetError";
		return (-1);
	}
	return (0);
}

START_TEST(test_exec_macro)
{
	static const char *const script[] = {
		BEGIN_OK,
		"\"result\":{\"decision\":\"retry\",\"category\":"
		    "\"NETWORK_ERROR\",\"strategy\":\"retry_with_backoff\","
		    "\"attempt\":1,\"delay_ms\":1,\"rolled_back\":[]}",
		"\"result\":{\"op\":\"op-1\",\"attempts\":2,"
		    "\"recovered\":true}",
		NULL
	};
	struct flaky		f = { 0 };
	struct erm_exec_result	res;

	fake_start(script);
	ck_assert_int_eq(store_blob(&f, &res), ERM_OK);
	ck_assert_int_eq(fake_stop(), 3);
	check_req(0, "op.begin", "{\"operation\":\"store_blob\"}");
	ck_assert_int_eq(f.calls, 2);
	ck_assert_int_eq(res.recovered, 1);
}
END_TEST

/* ---- breakers, retry.next, error.classify ------------------------------- */

START_TEST(test_breaker_calls)
{
	static const char *const script[] = {
		"\"result\":{\"allowed\":true,\"permit\":\"pm-1\","
		    "\"state\":\"closed\"}",
		"\"result\":{\"allowed\":true,\"permit\":\"pm-2\","
		    "\"state\":\"half_open\"}",
		"\"error\":{\"code\":1004,\"message\":\"open\",\"data\":"
		    "{\"breaker\":\"db\",\"state\":\"open\","
		    "\"retry_after_ms\":250}}",
		"\"result\":{\"state\":\"closed\",\"recorded\":true}",
		"\"result\":{\"state\":\"closed\",\"recorded\":false}",
		"\"result\":{\"name\":\"db\",\"state\":\"closed\"}",
		"\"result\":{\"allowed\":true,\"state\":\"closed\"}",
		NULL
	};
	struct erm_errinfo	 e = { .exception = "TimeoutError",
				    .message = "slow" };
	char			 permit[ERM_PERMIT_MAX];
	int64_t			 after;
	int			 recorded;
	json_t			*b;

	fake_start(script);
	ck_assert_int_eq(erm_breaker_acquire(cl, "db", 0, permit, &after),
	    ERM_OK);
	ck_assert_str_eq(permit, "pm-1");
	ck_assert_int_eq(after, -1);
	ck_assert_int_eq(erm_breaker_acquire(cl, "db", 250, permit, NULL),
	    ERM_OK);
	ck_assert_str_eq(permit, "pm-2");
	ck_assert_int_eq(erm_breaker_acquire(cl, "db", 0, permit, &after),
	    ERM_EREPLY);
	ck_assert_int_eq(erm_last_error(cl)->code, ERM_CODE_BREAKER_OPEN);
	ck_assert_int_eq(after, 250);
	ck_assert_str_eq(permit, "");
	ck_assert_int_eq(erm_breaker_record(cl, "db", "pm-1", ERM_FAILURE,
	    12, &e, &recorded), ERM_OK);
	ck_assert_int_eq(recorded, 1);
	ck_assert_int_eq(erm_breaker_record(cl, "db", NULL, ERM_IGNORED, -1,
	    NULL, &recorded), ERM_OK);
	ck_assert_int_eq(recorded, 0);
	ck_assert_int_eq(erm_breaker_get(cl, "db", &b), ERM_OK);
	ck_assert_str_eq(json_string_value(json_object_get(b, "state")),
	    "closed");
	json_decref(b);
	/* A permit the contract promises is missing. */
	ck_assert_int_eq(erm_breaker_acquire(cl, "db", 0, permit, NULL),
	    ERM_EPROTO);
	ck_assert_int_eq(fake_stop(), 7);

	check_req(0, "breaker.acquire", "{\"name\":\"db\"}");
	check_req(1, "breaker.acquire", "{\"name\":\"db\",\"wait_ms\":250}");
	check_req(3, "breaker.record", "{\"name\":\"db\",\"permit\":\"pm-1\","
	    "\"outcome\":\"failure\",\"duration_ms\":12,\"error\":"
	    "{\"exception\":\"TimeoutError\",\"message\":\"slow\"}}");
	check_req(4, "breaker.record", "{\"name\":\"db\",\"outcome\":"
	    "\"ignored\"}");
	check_req(5, "breaker.get", "{\"name\":\"db\"}");

	ck_assert_int_eq(erm_breaker_record(cl, "db", NULL,
	    (enum erm_outcome)7, -1, NULL, NULL), ERM_EINVAL);
	ck_assert_int_eq(erm_breaker_acquire(cl, NULL, 0, permit, NULL),
	    ERM_EINVAL);
}
END_TEST

START_TEST(test_retry_next)
{
	static const char *const script[] = {
		"\"result\":{\"retry\":true,\"delay_ms\":1500,"
		    "\"reason\":\"retryable\"}",
		"\"result\":{\"retry\":false,\"delay_ms\":0,"
		    "\"reason\":\"exhausted\"}",
		"\"result\":{\"retry\":\"yes\",\"delay_ms\":0,"
		    "\"reason\":\"retryable\"}",
		NULL
	};
	struct erm_errinfo		e = { .http_status = 503,
					    .retry_after_ms = 1500 };
	struct erm_retry_decision	d;

	fake_start(script);
	ck_assert_int_eq(erm_retry_next(cl, "net", "db", 1, &e, 20, -1, &d),
	    ERM_OK);
	ck_assert_int_eq(d.retry, 1);
	ck_assert_int_eq(d.delay_ms, 1500);
	ck_assert_str_eq(d.reason, "retryable");
	ck_assert_int_eq(erm_retry_next(cl, NULL, NULL, 3, NULL, -1, 800, &d),
	    ERM_OK);
	ck_assert_int_eq(d.retry, 0);
	ck_assert_str_eq(d.reason, "exhausted");
	ck_assert_int_eq(erm_retry_next(cl, NULL, NULL, 1, NULL, -1, -1, &d),
	    ERM_EPROTO);
	ck_assert_int_eq(fake_stop(), 3);
	check_req(0, "retry.next", "{\"policy\":\"net\",\"key\":\"db\","
	    "\"attempt\":1,\"error\":{\"http_status\":503,"
	    "\"retry_after_ms\":1500},\"elapsed_ms\":20}");
	check_req(1, "retry.next", "{\"attempt\":3,\"prev_delay_ms\":800}");
	ck_assert_int_eq(erm_retry_next(cl, NULL, NULL, 0, NULL, -1, -1, &d),
	    ERM_EINVAL);
}
END_TEST

START_TEST(test_classify)
{
	static const char *const script[] = {
		"\"result\":{\"category\":\"NETWORK_ERROR\",\"strategy\":"
		    "{\"primary\":\"retry_with_backoff\",\"fallback\":"
		    "\"fallback_storage\"},\"retryable\":true,\"matched\":"
		    "\"errno ECONNREFUSED\"}",
		"\"result\":{\"category\":\"FILE_NOT_FOUND\",\"strategy\":"
		    "{\"primary\":\"skip_and_log\",\"fallback\":null},"
		    "\"retryable\":false,\"matched\":\"http 404\"}",
		NULL
	};
	struct erm_errinfo		e = { .errnum = ECONNREFUSED,
					    .message = "refused" };
	struct erm_errinfo		h = { .http_status = 404 };
	struct erm_errinfo		none = { 0 };
	struct erm_classification	c;
	char				want[128];

	fake_start(script);
	ck_assert_int_eq(erm_classify(cl, &e, &c), ERM_OK);
	ck_assert_str_eq(c.category, "NETWORK_ERROR");
	ck_assert_str_eq(c.primary, "retry_with_backoff");
	ck_assert_str_eq(c.fallback, "fallback_storage");
	ck_assert_int_eq(c.retryable, 1);
	ck_assert_str_eq(c.matched, "errno ECONNREFUSED");
	ck_assert_int_eq(erm_classify(cl, &h, &c), ERM_OK);
	ck_assert_str_eq(c.fallback, "");
	ck_assert_int_eq(c.retryable, 0);
	ck_assert_int_eq(fake_stop(), 2);
	/* error.classify takes the error object's members flat. */
	snprintf(want, sizeof(want), "{\"errno\":%d,\"message\":"
	    "\"refused\"}", ECONNREFUSED);
	check_req(0, "error.classify", want);
	check_req(1, "error.classify", "{\"http_status\":404}");
	ck_assert_int_eq(erm_classify(cl, &none, &c), ERM_EINVAL);
}
END_TEST

START_TEST(test_errinfo_json)
{
	struct erm_errinfo	 all = { .category = "TIMEOUT_ERROR",
				    .errnum = EIO, .http_status = 504,
				    .exit_code = 124, .signal = 9,
				    .exception = "TimeoutError",
				    .message = "m", .retry_after_ms = 7 };
	struct erm_errinfo	 none = { 0 }, neg = { .errnum = -1,
				    .http_status = -1, .exit_code = -1,
				    .signal = -1, .retry_after_ms = -1 };
	struct erm_errinfo	 bad = { .message = "\xff" };
	json_t			*j, *want;

	ck_assert_int_eq(erm_errinfo_json(&all, &j), ERM_OK);
	want = json_pack("{s:s, s:i, s:i, s:i, s:i, s:s, s:s, s:i}",
	    "category", "TIMEOUT_ERROR", "errno", EIO, "http_status", 504,
	    "exit_code", 124, "signal", 9, "exception", "TimeoutError",
	    "message", "m", "retry_after_ms", 7);
	ck_assert(json_equal(j, want));
	json_decref(j);
	json_decref(want);
	ck_assert_int_eq(erm_errinfo_json(&none, &j), ERM_EINVAL);
	ck_assert_ptr_null(j);
	ck_assert_int_eq(erm_errinfo_json(&neg, &j), ERM_EINVAL);
	ck_assert_int_eq(erm_errinfo_json(&bad, &j), ERM_EINVAL);
	ck_assert_int_eq(erm_errinfo_json(NULL, &j), ERM_EINVAL);
}
END_TEST

/* ---- ermctl run ---------------------------------------------------------- */

/* What ermctl_run.c uses of ermctl.c, reduced to the exit statuses. */
void
ctl_warnx(const char *fmt, ...)
{
	va_list	ap;

	fputs("ermctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

int
ctl_usage_error(struct ctl *ctx, const char *fmt, ...)
{
	(void)ctx;
	(void)fmt;
	return (CTL_EXIT_USAGE);
}

int
ctl_option(struct ctl *ctx, int ch, char **argv)
{
	(void)ctx;
	(void)argv;
	return (ch == 'h' ? CTL_EXIT_OK : CTL_EXIT_USAGE);
}

enum erm_status
ctl_connect(struct ctl *ctx)
{
	return (ctx->client != NULL ? ERM_OK : ERM_ECONNECT);
}

int
ctl_fail(struct ctl *ctx, const char *what, enum erm_status st)
{
	(void)what;
	if (ctx->client == NULL)
		return (CTL_EXIT_NOT_RUNNING);
	if (st == ERM_EREPLY &&
	    erm_last_error(ctx->client)->code == ERM_PERMISSION_DENIED)
		return (CTL_EXIT_NOPERM);
	return (CTL_EXIT_FAILED);
}

static char	tmpdir[64];

static void
run_setup(void)
{
	setup();
	/* No terminal: the child keeps our process group's place. */
	ck_assert_ptr_nonnull(freopen("/dev/null", "r", stdin));
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_run.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void
run_teardown(void)
{
	char	cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", tmpdir);
	teardown();
}

/* Run `ermctl run ARGS...` (a NULL-terminated list) on the fake daemon. */
static int
ermctl_run(const char *first, ...)
{
	struct ctl	 ctx;
	char		*argv[32];
	const char	*a;
	va_list		 ap;
	int		 argc = 0;

	memset(&ctx, 0, sizeof(ctx));
	ctx.client = cl;
	argv[argc++] = "run";
	va_start(ap, first);
	for (a = first; a != NULL && argc < 31; a = va_arg(ap, const char *))
		argv[argc++] = (char *)a;
	va_end(ap);
	argv[argc] = NULL;
	return (cmd_run(&ctx, argc, argv));
}

#define ESCALATE(cat)	"\"result\":{\"decision\":\"escalate\"," \
			"\"category\":\"" cat "\",\"strategy\":\"escalate\"," \
			"\"attempt\":1,\"rolled_back\":[]}"

/* run --timeout: a bare number is seconds; zero is refused. */
START_TEST(test_run_duration)
{
	static const struct {
		const char	*s;
		int64_t		 ms;	/* -1: refused */
	} cases[] = {
		{ "30s", 30000 }, { "500ms", 500 }, { "2m", 120000 },
		{ "30", 30000 }, { "1h", 3600000 }, { "1d", 86400000 },
		{ "0", -1 }, { "0ms", -1 }, { "", -1 },
		{ "-5s", -1 }, { "5x", -1 }, { "1.5s", -1 }, { " 5", -1 },
		{ "s", -1 }, { "99999999999999999999", -1 },
		{ "9223372036854775807m", -1 },
	};
	size_t	i;
	int64_t	ms;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		ms = -1;
		if (ctl_parse_duration(NULL, "--timeout", cases[i].s, 1000, 1,
		    &ms) == -1)
			ms = -1;
		ck_assert_msg(ms == cases[i].ms, "'%s': got %lld, want %lld",
		    cases[i].s, (long long)ms, (long long)cases[i].ms);
	}
}
END_TEST

START_TEST(test_run_usage)
{
	/* Nothing reaches the daemon: no fake is started. */
	ck_assert_int_eq(ermctl_run(NULL), CTL_EXIT_USAGE);
	ck_assert_int_eq(ermctl_run("--op", "x", NULL), CTL_EXIT_USAGE);
	ck_assert_int_eq(ermctl_run("--timeout", "3x", "--", "true", NULL),
	    CTL_EXIT_USAGE);
	ck_assert_int_eq(ermctl_run("--policy", "{bad", "--", "true", NULL),
	    CTL_EXIT_USAGE);
	ck_assert_int_eq(ermctl_run("--nope", "--", "true", NULL),
	    CTL_EXIT_USAGE);
}
END_TEST

/* A failing command's exit status goes to the daemon and comes back out. */
START_TEST(test_run_exit_status)
{
	static const char *const script[] = {
		BEGIN_OK, ESCALATE("SYSTEM_ERROR"), NULL
	};

	fake_start(script);
	ck_assert_int_eq(ermctl_run("--breaker", "db", "--policy", "net",
	    "--", "sh", "-c", "exit 3", NULL), 3);
	ck_assert_int_eq(fake_stop(), 2);
	check_req(0, "op.begin", "{\"operation\":\"sh\",\"breaker\":\"db\","
	    "\"policy\":\"net\"}");
	check_req(1, "op.fail", "{\"op\":\"op-1\",\"error\":"
	    "{\"exit_code\":3}}");
}
END_TEST

/* Fails once, is run again after the daemon's delay, then succeeds. */
START_TEST(test_run_retry)
{
	static const char *const script[] = {
		BEGIN_OK,
		"\"result\":{\"decision\":\"retry\",\"category\":"
		    "\"SYSTEM_ERROR\",\"strategy\":\"retry\",\"attempt\":1,"
		    "\"delay_ms\":2,\"rolled_back\":[]}",
		"\"result\":{\"op\":\"op-1\",\"attempts\":2,"
		    "\"recovered\":true}",
		NULL
	};
	char	script_text[256];

	snprintf(script_text, sizeof(script_text),
	    "test -e %s/once || { touch %s/once; exit 1; }", tmpdir, tmpdir);
	fake_start(script);
	ck_assert_int_eq(ermctl_run("--op", "nightly", "--policy",
	    "{\"max_attempts\":5}", "--", "/bin/sh", "-c", script_text, NULL),
	    CTL_EXIT_OK);
	ck_assert_int_eq(fake_stop(), 3);
	check_req(0, "op.begin", "{\"operation\":\"nightly\",\"policy\":"
	    "{\"max_attempts\":5}}");
	check_req(1, "op.fail", "{\"op\":\"op-1\",\"error\":"
	    "{\"exit_code\":1}}");
	check_req(2, "op.succeed", "{\"op\":\"op-1\"}");
}
END_TEST

/*
 * Is pid running? An orphan's zombie counts as dead: whoever inherited it
 * (init in a container may not reap) is not our concern.
 */
static int
alive(pid_t pid)
{
	char	path[64], buf[256], *p;
	FILE	*fp;
	int	 zombie;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if ((fp = fopen(path, "r")) == NULL)
		return (0);
	p = fgets(buf, sizeof(buf), fp);
	fclose(fp);
	if (p == NULL || (p = strrchr(buf, ')')) == NULL)
		return (0);
	zombie = p[1] == ' ' && (p[2] == 'Z' || p[2] == 'X');
	return (!zombie);
}

/* --timeout kills the whole process group and counts as exit 124. */
START_TEST(test_run_timeout)
{
	static const char *const script[] = {
		BEGIN_OK, ESCALATE("TIMEOUT_ERROR"), NULL
	};
	char	text[256], pidfile[128], buf[32];
	FILE	*fp;
	pid_t	 grandchild;
	int64_t	 t0;

	/* The shell starts a sleeper in the background and waits for it. */
	snprintf(pidfile, sizeof(pidfile), "%s/pid", tmpdir);
	snprintf(text, sizeof(text), "sleep 30 & echo $! > %s; wait",
	    pidfile);
	fake_start(script);
	t0 = mono_ms();
	ck_assert_int_eq(ermctl_run("--timeout", "200ms", "--", "sh", "-c",
	    text, NULL), RUN_EXIT_TIMEOUT);
	ck_assert_int_lt(mono_ms() - t0, 4000);
	ck_assert_int_eq(fake_stop(), 2);
	check_req(1, "op.fail", "{\"op\":\"op-1\",\"error\":"
	    "{\"exit_code\":124}}");
	ck_assert_ptr_nonnull(fp = fopen(pidfile, "r"));
	ck_assert_ptr_nonnull(fgets(buf, sizeof(buf), fp));
	fclose(fp);
	grandchild = (pid_t)atoi(buf);
	ck_assert_int_gt(grandchild, 0);
	/* The sleeper was in the group: it died too. */
	for (t0 = mono_ms(); alive(grandchild) && mono_ms() - t0 < 2000;)
		usleep(10000);
	ck_assert(!alive(grandchild));
}
END_TEST

START_TEST(test_run_signal)
{
	static const char *const script[] = {
		BEGIN_OK, ESCALATE("SYSTEM_ERROR"), NULL
	};

	fake_start(script);
	ck_assert_int_eq(ermctl_run("--", "sh", "-c", "kill -TERM $$", NULL),
	    128 + SIGTERM);
	ck_assert_int_eq(fake_stop(), 2);
	check_req(1, "op.fail", "{\"op\":\"op-1\",\"error\":"
	    "{\"signal\":15}}");
}
END_TEST

/* A breaker that refuses at op.begin: 75, and the command never runs. */
START_TEST(test_run_rejected)
{
	static const char *const script[] = {
		"\"error\":{\"code\":1004,\"message\":\"breaker db is open\","
		    "\"data\":{\"breaker\":\"db\",\"state\":\"open\","
		    "\"retry_after_ms\":1500}}",
		NULL
	};
	char		marker[128];
	struct stat	sb;

	snprintf(marker, sizeof(marker), "%s/ran", tmpdir);
	fake_start(script);
	ck_assert_int_eq(ermctl_run("--breaker", "db", "--", "touch", marker,
	    NULL), RUN_EXIT_TEMPFAIL);
	ck_assert_int_eq(fake_stop(), 1);
	ck_assert_int_eq(stat(marker, &sb), -1);
}
END_TEST

/* A command that cannot be run: its errno goes to the daemon; 127. */
START_TEST(test_run_not_found)
{
	static const char *const script[] = {
		BEGIN_OK,
		"\"result\":{\"decision\":\"skip\",\"category\":"
		    "\"FILE_NOT_FOUND\",\"strategy\":\"skip_and_log\","
		    "\"attempt\":1,\"rolled_back\":[]}",
		NULL
	};
	char	want[128];

	fake_start(script);
	ck_assert_int_eq(ermctl_run("--", "/nonexistent/ermd-test-cmd", NULL),
	    RUN_EXIT_NOTFOUND);
	ck_assert_int_eq(fake_stop(), 2);
	check_req(0, "op.begin", "{\"operation\":\"ermd-test-cmd\"}");
	snprintf(want, sizeof(want), "{\"op\":\"op-1\",\"error\":{\"errno\":"
	    "%d,\"message\":\"cannot execute the command\"}}", ENOENT);
	check_req(1, "op.fail", want);
}
END_TEST

static Suite *
decide_suite(void)
{
	Suite	*s = suite_create("liberm decide");
	TCase	*tc = tcase_create("fake daemon");
	TCase	*tr = tcase_create("ermctl run");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 20);
	tcase_add_test(tc, test_exec_first_try);
	tcase_add_test(tc, test_exec_retry_then_succeed);
	tcase_add_test(tc, test_exec_escalate);
	tcase_add_test(tc, test_exec_rejected_at_begin);
	tcase_add_test(tc, test_exec_rejected_retry);
	tcase_add_test(tc, test_exec_fallback);
	tcase_add_test(tc, test_exec_deadline);
	tcase_add_test(tc, test_exec_cancel);
	tcase_add_test(tc, test_exec_policy_object);
	tcase_add_test(tc, test_exec_bad_replies);
	tcase_add_test(tc, test_exec_macro);
	tcase_add_test(tc, test_breaker_calls);
	tcase_add_test(tc, test_retry_next);
	tcase_add_test(tc, test_classify);
	tcase_add_test(tc, test_errinfo_json);
	suite_add_tcase(s, tc);

	tcase_add_checked_fixture(tr, run_setup, run_teardown);
	tcase_set_timeout(tr, 30);
	tcase_add_test(tr, test_run_duration);
	tcase_add_test(tr, test_run_usage);
	tcase_add_test(tr, test_run_exit_status);
	tcase_add_test(tr, test_run_retry);
	tcase_add_test(tr, test_run_timeout);
	tcase_add_test(tr, test_run_signal);
	tcase_add_test(tr, test_run_rejected);
	tcase_add_test(tr, test_run_not_found);
	suite_add_tcase(s, tr);
	return (s);
}

int
main(void)
{
	SRunner	*sr;
	int	 failed;

	sr = srunner_create(decide_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return (failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE);
}
