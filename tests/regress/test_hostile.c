/*
 * Hostile params against a real ermd: thousands of requests to every
 * method, with params drawn at random from what a careless or hostile
 * client sends - wrong types, numbers at and past every limit, empty,
 * huge and odd strings, unknown members, nesting past the depth limit -
 * mixed with plausible values and with real ids the daemon handed out
 * earlier in the run, so that the checks behind the first one are reached
 * too. Every reply must be a success or an error with a documented code
 * and a message, never an internal error; no method may keep a client
 * waiting unless waiting is what it was asked for; and afterwards the
 * daemon must still serve, store and stop cleanly (under `make asan`,
 * without a leak). The same for the config file (hundreds of damaged
 * copies of the documented config through `ermd -t` and config.reload)
 * for ermctl (working command lines with a word swapped or put in:
 * every exit status one that ermctl(1) documents, never a crash), and for
 * the metrics listener (mangled HTTP requests: a documented status or,
 * for a head that never ended, a close; no connection slot lost).
 *
 * The choices are a fixed sequence: HOSTILE_SEED (default 1) and HOSTILE_N
 * (the number of requests, default 4000) replay or widen it (the ids the
 * daemon hands out differ from run to run); a failure names the seed, the
 * request number and the request. HOSTILE_VERBOSE prints each request's
 * method, reply code and message.
 */

#include <sys/socket.h>
#include <sys/stat.h>

#include <limits.h>
#include <poll.h>

#include <check.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

static struct daemon	d;

/* ---- a reproducible source of choices ---------------------------------- */

static uint64_t	rng_state;

static uint64_t
rnd(void)
{
	/* xorshift64*: small, and the same sequence everywhere. */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return (rng_state * 2685821657736338717ULL);
}

static size_t
pick(size_t n)
{
	return ((size_t)(rnd() % n));
}

/* ---- what requests are made of ----------------------------------------- */

struct method {
	const char		*name;
	const char *const	*params;
	int			 may_wait;	/* may rightly keep us
						   waiting */
};

#define P(...)		((const char *const[]){ __VA_ARGS__, NULL })
#define NOPARAMS	((const char *const[]){ NULL })

static const struct method methods[] = {
	{ "hello", P("client", "protocol"), 0 },
	{ "ping", NOPARAMS, 0 },
	{ "status", NOPARAMS, 0 },
	{ "config.reload", NOPARAMS, 0 },
	{ "debug.advance", P("ms"), 0 },
	{ "events.subscribe", P("types"), 0 },
	{ "metrics.get", NOPARAMS, 0 },
	{ "metrics.prometheus", NOPARAMS, 0 },
	{ "breaker.acquire", P("name", "wait_ms"), 1 },
	{ "breaker.record", P("name", "permit", "outcome", "duration_ms",
	    "error"), 0 },
	{ "breaker.get", P("name"), 0 },
	{ "breaker.list", P("state"), 0 },
	{ "breaker.configure", P("name", "config"), 0 },
	{ "breaker.force", P("name", "state"), 0 },
	{ "breaker.reset", P("name"), 0 },
	{ "retry.next", P("policy", "key", "attempt", "error", "elapsed_ms",
	    "prev_delay_ms"), 0 },
	{ "retry.policy", P("name"), 0 },
	{ "error.classify", P("category", "errno", "http_status",
	    "exit_code", "signal", "exception", "message", "retry_after_ms"),
	    0 },
	{ "error.report", P("operation", "id", "severity", "path", "context",
	    "category", "errno", "http_status", "exit_code", "signal",
	    "exception", "message", "retry_after_ms"), 0 },
	{ "error.list", P("since", "until", "category", "operation",
	    "severity", "limit", "before_id"), 0 },
	{ "error.stats", P("window_ms"), 0 },
	{ "op.begin", P("operation", "breaker", "policy", "backup",
	    "deadline_ms"), 0 },
	{ "op.fail", P("op", "error"), 0 },
	{ "op.succeed", P("op", "result"), 0 },
	{ "op.get", P("op"), 0 },
	{ "backup.create", P("path", "tag", "progress"), 0 },
	{ "backup.restore", P("id", "path", "version", "progress"), 0 },
	{ "backup.verify", P("id"), 0 },
	{ "backup.prune", P("older_than_ms", "keep_last", "path"), 0 },
	{ "backup.get", P("id"), 0 },
	{ "backup.list", P("path", "tag", "limit"), 0 },
	{ "oplog.list", P("path", "limit"), 0 },
	{ "storage.status", NOPARAMS, 0 },
	{ "storage.select", P("exclude"), 0 },
	{ "storage.report", P("backend", "ok", "error", "latency_ms"), 0 },
	{ "storage.check", P("backend"), 0 },
	{ "storage.put", P("key", "path"), 0 },
	{ "storage.get", P("key", "path"), 0 },
	{ "workflow.create", P("name", "steps", "rollback_on_failure",
	    "compensation", "continue_on_compensation_error", "run"), 0 },
	{ "workflow.get", P("id"), 0 },
	{ "workflow.wait", P("id", "timeout_ms"), 1 },
	{ "workflow.run", P("id"), 0 },
	{ "workflow.cancel", P("id"), 0 },
	{ "workflow.list", P("state", "limit"), 0 },
	{ "workflow.step_result", P("id", "step", "ok", "error", "output"),
	    0 },
	{ "no.such.method", P("x"), 0 },
};
#define NMETHODS	(sizeof(methods) / sizeof(methods[0]))

/* Member names of the objects inside params: steps, errors, configs. */
static const char *const inner_names[] = {
	"name", "action", "after", "compensate", "retry", "breaker",
	"timeout_ms", "idempotent", "type", "argv", "env", "cwd", "src", "dst",
	"path", "content", "content_base64", "backup_id", "method", "url",
	"headers", "body", "expect_status", "ms", "category", "errno",
	"http_status", "exit_code", "signal", "exception", "message",
	"retry_after_ms", "window", "failure_threshold", "window_size",
	"minimum_calls", "failure_rate_threshold", "slow_call_ms",
	"slow_call_rate_threshold", "recovery_timeout_ms", "recovery_backoff",
	"max_recovery_timeout_ms", "half_open_max_calls",
	"half_open_max_wait_ms", "permit_ttl_ms", "idle_evict_ms", "ignore",
	"max_attempts", "base_delay_ms", "max_delay_ms", "multiplier",
	"jitter", "backoff", "retry_on", "max_elapsed_ms", "step", "ok",
	"output", "x",
};
#define NINNER	(sizeof(inner_names) / sizeof(inner_names[0]))

/*
 * Step action types. "exec" is left out on purpose, and no string this
 * test sends is "exec": it runs as root, for whom exec is allowed, and it
 * must not run programs named by chance.
 */
static const char *const action_types[] = { "copy", "move", "write",
	"delete", "mkdir", "backup", "restore", "http", "sleep", "client",
	"nope" };
#define NACTIONS	(sizeof(action_types) / sizeof(action_types[0]))

static const char *const fixed_strings[] = {
	"", "x", "b1", "s3", "default", "closed", "open", "half_open",
	"forced_open", "disabled", "metrics_only", "success", "failure",
	"ignored", "latest", "parallel", "sequential", "consecutive", "count",
	"time", "exponential", "full", "equal", "decorrelated", "none",
	"NETWORK_ERROR", "TIMEOUT_ERROR", "STORAGE_ERROR", "nope_ERROR",
	"ECONNRESET", "ENOSPC", "EAGAIN", "ETIMEDOUT", "critical", "warning",
	"info", "error", "../../etc/passwd", "/etc/shadow", "/",
	"%s%n%x%p", "-1", "1e999", "\xc3\xa9\xe2\x80\xa8", "\x7f",
	"http://127.0.0.1:1/x", "d1", "d2", "GET", "PUT",
	"2026-01-01T00:00:00Z", "0190a0b0-0000-7000-8000-000000000000",
	"breaker.state", "alert", "workflow.step", "*", "ConnectionError",
	"TimeoutError", "OSError",
};
#define NFIXED	(sizeof(fixed_strings) / sizeof(fixed_strings[0]))

static const json_int_t ints[] = {
	0, 1, -1, 2, 3, 7, 100, 1000, 65535, 2147483647LL, 2147483648LL,
	-2147483649LL, 9007199254740993LL, INT64_MAX, INT64_MIN, 86400000,
	300000, 599,
};
#define NINTS	(sizeof(ints) / sizeof(ints[0]))

static const double reals[] = { 0.5, -0.0, 1e308, -1e308, 3.25, 1e-300,
	99.5, 100.0 };
#define NREALS	(sizeof(reals) / sizeof(reals[0]))

/* Paths under the root and the directories of this run. */
static char	root_dir[256], root_file[300], root_sub[300], root_new[300];

/*
 * What the daemon handed back - workflow, backup and op ids, permits,
 * names - kept by kind, so that requests reach past "not found".
 */
enum { POOL_WORKFLOW, POOL_BACKUP, POOL_OP, POOL_PERMIT, POOL_NAME,
	NPOOLS };
#define POOL_SIZE	32

static struct pool {
	char	*v[POOL_SIZE];
	size_t	 n, next;
} pools[NPOOLS];

static void
pool_add(int kind, const char *s)
{
	struct pool	*p = &pools[kind];
	size_t		 len = strlen(s);

	/* "exec" may come back in no request: see action_types. */
	if (len == 0 || len > 200 || strcmp(s, "exec") == 0)
		return;
	free(p->v[p->next]);
	p->v[p->next] = strdup(s);
	p->next = (p->next + 1) % POOL_SIZE;
	if (p->n < POOL_SIZE)
		p->n++;
}

static void
pools_free(void)
{
	size_t	i, j;

	for (i = 0; i < NPOOLS; i++) {
		for (j = 0; j < pools[i].n; j++)
			free(pools[i].v[j]);
		memset(&pools[i], 0, sizeof(pools[i]));
	}
}

/* Keep the ids, ops, permits and names in a reply to method. */
static void
harvest(const char *method, const json_t *v, int depth)
{
	const char	*k;
	json_t		*m;
	size_t		 i;

	if (depth > 6)
		return;
	if (json_is_object(v))
		json_object_foreach((json_t *)v, k, m) {
			if (!json_is_string(m))
				harvest(method, m, depth + 1);
			else if (strcmp(k, "id") == 0 &&
			    strncmp(method, "workflow.", 9) == 0)
				pool_add(POOL_WORKFLOW, json_string_value(m));
			else if (strcmp(k, "id") == 0 &&
			    strncmp(method, "backup.", 7) == 0)
				pool_add(POOL_BACKUP, json_string_value(m));
			else if (strcmp(k, "op") == 0)
				pool_add(POOL_OP, json_string_value(m));
			else if (strcmp(k, "permit") == 0)
				pool_add(POOL_PERMIT, json_string_value(m));
			else if (strcmp(k, "name") == 0)
				pool_add(POOL_NAME, json_string_value(m));
		}
	else if (json_is_array(v))
		json_array_foreach(v, i, m)
			harvest(method, m, depth + 1);
}

/* A string from pool kind, or from any pool when kind is -1. */
static const char *
pooled(int kind)
{
	struct pool	*p;

	if (kind < 0)
		kind = (int)pick(NPOOLS);
	p = &pools[kind];
	return (p->n > 0 ? p->v[pick(p->n)] : NULL);
}

static json_t	*gen_value(int depth);

static json_t *
gen_string(void)
{
	static char	 long_s[70001];
	const char	*p;

	switch (pick(12)) {
	case 0:
		if (long_s[0] == '\0')
			memset(long_s, 'a', sizeof(long_s) - 1);
		return (json_string(long_s));
	case 1:
		return (json_string(root_file));
	case 2:
		return (json_string(root_sub));
	case 3:
		return (json_string(root_new));
	case 4:
		return (json_string(root_dir));
	case 5:
	case 6:
	case 7:
		if ((p = pooled(-1)) != NULL)
			return (json_string(p));
		/* FALLTHROUGH */
	default:
		return (json_string(fixed_strings[pick(NFIXED)]));
	}
}

static json_t *
gen_int(void)
{
	return (json_integer(ints[pick(NINTS)]));
}

static json_t *
gen_array(int depth, json_t *(*elem)(int))
{
	json_t	*a = json_array();
	size_t	 i, n = pick(5);

	for (i = 0; i < n; i++)
		json_array_append_new(a, elem(depth + 1));
	return (a);
}

/* An object of inner names, each with a value of any kind. */
static json_t *
gen_object(int depth)
{
	json_t	*o = json_object();
	size_t	 i, n = pick(6);

	for (i = 0; i < n; i++)
		json_object_set_new(o, inner_names[pick(NINNER)],
		    gen_value(depth + 1));
	return (o);
}

/* Arrays nested past the frame decoder's depth limit of 32. */
static json_t *
gen_deep(void)
{
	json_t	*v = json_integer(1), *a;
	int	 i;

	for (i = 0; i < 40; i++) {
		a = json_array();
		json_array_append_new(a, v);
		v = a;
	}
	return (v);
}

static json_t *
gen_error(int depth)
{
	static const char *const names[] = { "category", "errno",
	    "http_status", "exit_code", "signal", "exception", "message",
	    "retry_after_ms", "x" };
	json_t	*o = json_object();
	size_t	 i, n = pick(4);

	for (i = 0; i < n; i++)
		json_object_set_new(o, names[pick(9)], pick(2) ?
		    gen_string() : gen_value(depth + 1));
	return (o);
}

static json_t *
gen_step(int depth)
{
	json_t	*s = json_object(), *a = json_object();
	size_t	 i, n = pick(4);

	json_object_set_new(s, "name", pick(4) ? json_sprintf("s%zu",
	    pick(6)) : gen_value(depth + 1));
	json_object_set_new(a, "type", json_string(action_types[pick(
	    NACTIONS)]));
	for (i = 0; i < n; i++)
		json_object_set_new(a, inner_names[pick(NINNER)], pick(2) ?
		    gen_string() : gen_value(depth + 1));
	if (pick(3) == 0)
		json_object_set_new(a, "ms", json_integer((json_int_t)pick(
		    50)));
	json_object_set_new(s, "action", a);
	if (pick(2))
		json_object_set_new(s, "after", pick(3) ? gen_array(depth,
		    gen_value) : json_pack("[s]", "s1"));
	if (pick(3) == 0)
		json_object_set_new(s, "compensate", gen_object(depth + 1));
	if (pick(3) == 0)
		json_object_set_new(s, inner_names[pick(NINNER)],
		    gen_value(depth + 1));
	return (s);
}

static json_t *
gen_value(int depth)
{
	if (depth > 3)
		return (pick(2) ? gen_string() : gen_int());
	switch (pick(16)) {
	case 0:
		return (json_null());
	case 1:
		return (json_true());
	case 2:
		return (json_false());
	case 3:
	case 4:
		return (gen_int());
	case 5:
		return (json_real(reals[pick(NREALS)]));
	case 6:
	case 7:
	case 8:
	case 9:
		return (gen_string());
	case 10:
		return (gen_array(depth, gen_value));
	case 11:
	case 12:
		return (gen_object(depth));
	case 13:
		return (pick(8) == 0 ? gen_deep() : gen_error(depth));
	case 14:
		return (gen_step(depth));
	default:
		return (gen_array(depth, pick(2) ? gen_step : gen_value));
	}
}

static json_t *
one_of(const char *const *v, size_t n)
{
	return (json_string(v[pick(n)]));
}

#define ONE_OF(...)	one_of((const char *const[]){ __VA_ARGS__ },	\
	    sizeof((const char *const[]){ __VA_ARGS__ }) / sizeof(char *))

/* A real id of kind from earlier replies, mostly. */
static json_t *
gen_id(int kind)
{
	const char	*p;

	if (pick(6) != 0 && (p = pooled(kind)) != NULL)
		return (json_string(p));
	return (ONE_OF("0190a0b0-0000-7000-8000-000000000000", "x", ""));
}

static json_t *
gen_good_error(void)
{
	json_t	*e = json_object();

	switch (pick(4)) {
	case 0:
		json_object_set_new(e, "errno", ONE_OF("ECONNRESET",
		    "ENOSPC", "ETIMEDOUT", "EACCES"));
		break;
	case 1:
		json_object_set_new(e, "http_status", json_integer(
		    (json_int_t)(pick(2) ? 503 : 429)));
		json_object_set_new(e, "retry_after_ms", json_integer(
		    (json_int_t)pick(2000)));
		break;
	case 2:
		json_object_set_new(e, "category", ONE_OF("NETWORK_ERROR",
		    "STORAGE_ERROR", "TIMEOUT_ERROR", "CORRUPTED_DATA",
		    "AUTHENTICATION_ERROR"));
		break;
	default:
		json_object_set_new(e, "exception", ONE_OF("ConnectionError",
		    "TimeoutError", "OSError", "ValueError"));
		break;
	}
	json_object_set_new(e, "message", ONE_OF("connection reset by peer",
	    "disk full", "timed out"));
	return (e);
}

static json_t *
gen_good_config(void)
{
	json_t	*c = json_object();

	json_object_set_new(c, "window", ONE_OF("consecutive", "count",
	    "time"));
	json_object_set_new(c, "window_size", json_integer(
	    (json_int_t)(1 + pick(20))));
	json_object_set_new(c, "failure_threshold", json_integer(
	    (json_int_t)(1 + pick(5))));
	json_object_set_new(c, "minimum_calls", json_integer(
	    (json_int_t)(1 + pick(5))));
	json_object_set_new(c, "recovery_timeout_ms", json_integer(
	    (json_int_t)(1 + pick(500))));
	json_object_set_new(c, "half_open_max_calls", json_integer(
	    (json_int_t)(1 + pick(3))));
	return (c);
}

/* A step that can run: an action of each kind with what it needs. */
static json_t *
gen_good_step(size_t i)
{
	json_t	*a;
	char	 dir[320];

	switch (pick(9)) {
	case 0:
		a = json_pack("{s:s, s:s, s:s}", "type", "write", "path",
		    root_new, "content", "x");
		break;
	case 1:
		a = json_pack("{s:s, s:s, s:s}", "type", "copy", "src",
		    root_file, "dst", root_new);
		break;
	case 2:
		snprintf(dir, sizeof(dir), "%s/d%zu", root_dir, pick(3));
		a = json_pack("{s:s, s:s}", "type", "mkdir", "path", dir);
		break;
	case 3:
		a = json_pack("{s:s, s:s}", "type", "delete", "path",
		    root_new);
		break;
	case 4:
		a = json_pack("{s:s, s:s}", "type", "backup", "path",
		    root_file);
		break;
	case 5:
		a = pick(2) ? json_pack("{s:s, s:s}", "type", "restore",
		    "path", root_file) : json_pack("{s:s, s:o}", "type",
		    "restore", "backup_id", gen_id(POOL_BACKUP));
		break;
	case 6:
		a = json_pack("{s:s, s:s, s:s}", "type", "http", "method",
		    "GET", "url", "http://127.0.0.1:1/x");
		break;
	case 7:
		a = json_pack("{s:s}", "type", "client");
		break;
	default:
		a = json_pack("{s:s, s:I}", "type", "sleep", "ms",
		    (json_int_t)pick(30));
		break;
	}
	return (json_pack("{s:s%, s:o}", "name", i == 0 ? "s0" : i == 1 ?
	    "s1" : i == 2 ? "s2" : "s3", (size_t)2, "action", a));
}

static json_t *
gen_good_steps(void)
{
	json_t	*steps = json_array(), *s;
	size_t	 i, n = 1 + pick(4);

	for (i = 0; i < n; i++) {
		s = gen_good_step(i);
		if (i > 0 && pick(3) == 0)
			json_object_set_new(s, "after", pick(2) ?
			    json_array() : json_pack("[s]", "s0"));
		if (pick(4) == 0)
			json_object_set_new(s, "compensate", json_pack(
			    "{s:s, s:s}", "type", "delete", "path", root_new));
		json_array_append_new(steps, s);
	}
	return (steps);
}

/* A value such as a well-meaning client would send for param name. */
static json_t *
gen_plausible(const char *m_name, const char *name)
{
	char	uuid[40];
	size_t	len = strlen(name);

	if (strcmp(name, "steps") == 0)
		return (gen_good_steps());
	if (strcmp(name, "error") == 0)
		return (gen_good_error());
	if (strcmp(name, "config") == 0)
		return (gen_good_config());
	if (strcmp(name, "context") == 0 || strcmp(name, "result") == 0 ||
	    strcmp(name, "output") == 0)
		return (json_pack("{s:s, s:i}", "k", "v", "n", 1));
	if (strcmp(name, "backup") == 0)
		return (json_pack("[s]", root_file));
	if (strcmp(name, "exclude") == 0)
		return (json_pack("[s]", pick(2) ? "d1" : "d2"));
	if (strcmp(name, "types") == 0)
		return (json_pack("[ss]", "breaker.state", "workflow.step"));
	if (strcmp(name, "ok") == 0 || strcmp(name, "progress") == 0 ||
	    strcmp(name, "run") == 0 ||
	    strcmp(name, "rollback_on_failure") == 0 ||
	    strcmp(name, "continue_on_compensation_error") == 0)
		return (json_boolean(pick(2)));
	if ((len > 3 && strcmp(name + len - 3, "_ms") == 0) ||
	    strcmp(name, "attempt") == 0 || strcmp(name, "limit") == 0 ||
	    strcmp(name, "keep_last") == 0)
		return (json_integer((json_int_t)pick(3000)));
	if (strcmp(name, "since") == 0 || strcmp(name, "until") == 0)
		return (json_integer((json_int_t)time(NULL) * 1000 -
		    (json_int_t)pick(100000)));
	if (strcmp(name, "protocol") == 0)
		return (json_integer(1));
	if (strcmp(name, "http_status") == 0)
		return (json_integer(pick(2) ? 503 : 404));
	if (strcmp(name, "errno") == 0)
		return (ONE_OF("ECONNRESET", "ENOSPC", "ENOENT"));
	if (strcmp(name, "exit_code") == 0 || strcmp(name, "signal") == 0)
		return (json_integer((json_int_t)(1 + pick(15))));
	if (strcmp(name, "id") == 0 && strcmp(m_name, "error.report") == 0) {
		test_uuid(uuid, sizeof(uuid), 7, (int)pick(1000));
		return (json_string(uuid));
	}
	if (strcmp(name, "op") == 0)
		return (gen_id(POOL_OP));
	if (strcmp(name, "permit") == 0)
		return (gen_id(POOL_PERMIT));
	if (strcmp(name, "id") == 0 && strncmp(m_name, "workflow.", 9) == 0)
		return (gen_id(POOL_WORKFLOW));
	if (strcmp(name, "id") == 0 && strncmp(m_name, "backup.", 7) == 0)
		return (gen_id(POOL_BACKUP));
	if (strcmp(name, "id") == 0 || strcmp(name, "before_id") == 0)
		return (gen_id(-1));
	if (strcmp(name, "name") == 0 || strcmp(name, "key") == 0 ||
	    strcmp(name, "breaker") == 0)
		return (ONE_OF("b1", "s3", "default", "flows"));
	if (strcmp(name, "policy") == 0)
		return (pick(5) ? json_string("default") : ONE_OF("nope"));
	if (strcmp(name, "operation") == 0 || strcmp(name, "tag") == 0 ||
	    strcmp(name, "client") == 0)
		return (ONE_OF("upload", "sync", "hostile"));
	if (strcmp(name, "severity") == 0)
		return (ONE_OF("critical", "error", "warning", "info"));
	if (strcmp(name, "category") == 0)
		return (ONE_OF("NETWORK_ERROR", "STORAGE_ERROR",
		    "TIMEOUT_ERROR", "PERMISSION_ERROR"));
	if (strcmp(name, "outcome") == 0)
		return (ONE_OF("success", "failure", "ignored"));
	if (strcmp(name, "state") == 0 && strncmp(m_name, "workflow.", 9) == 0)
		return (ONE_OF("pending", "running", "succeeded", "failed",
		    "compensating", "cancelled"));
	if (strcmp(name, "state") == 0)
		return (ONE_OF("closed", "open", "half_open", "forced_open",
		    "disabled", "metrics_only"));
	if (strcmp(name, "version") == 0)
		return (json_string("latest"));
	if (strcmp(name, "compensation") == 0)
		return (ONE_OF("sequential", "parallel"));
	if (strcmp(name, "backend") == 0)
		return (ONE_OF("d1", "d2", "nope"));
	if (strcmp(name, "path") == 0)
		return (pick(2) ? json_string(root_file) : gen_string());
	if (strcmp(name, "step") == 0)
		return (ONE_OF("s0", "s1"));
	if (strcmp(name, "message") == 0 || strcmp(name, "exception") == 0)
		return (ONE_OF("connection reset by peer", "OSError"));
	return (gen_string());
}

/*
 * Params of three kinds: plausible with one member made hostile (most,
 * so that the checks behind the first are reached), all at random, or
 * not an object at all.
 */
static json_t *
gen_params(const struct method *m)
{
	json_t	*p;
	size_t	 i, n, mode = pick(20);

	if (mode == 0)
		return (gen_value(1));		/* not an object */
	if (mode == 1)
		return (NULL);			/* no params member */
	p = json_object();
	for (n = 0; m->params[n] != NULL; n++)
		;
	for (i = 0; i < n; i++) {
		if (mode < 6)
			json_object_set_new(p, m->params[i], pick(2) ?
			    gen_plausible(m->name, m->params[i]) :
			    gen_value(1));
		else if (i == 0 || pick(5) != 0)
			json_object_set_new(p, m->params[i],
			    gen_plausible(m->name, m->params[i]));
	}
	if (mode >= 6 && mode < 12 && n > 0)
		json_object_set_new(p, m->params[pick(n)], gen_value(1));
	if (pick(12) == 0)
		json_object_set_new(p, inner_names[pick(NINNER)],
		    gen_value(1));
	return (p);
}

/* ---- the checks ---------------------------------------------------------- */

static int
documented_code(json_int_t c)
{
	return (c == -32700 || c == -32600 || c == -32601 || c == -32602 ||
	    (c >= 1001 && c <= 1010));
}

/*
 * The reply to request id on fd, skipping event frames; NULL when none
 * came within wait_ms.
 */
static json_t *
reply_to(int fd, json_int_t id, int wait_ms)
{
	json_t	*r, *rid;

	for (;;) {
		if ((r = raw_recv(fd, wait_ms)) == NULL)
			return (NULL);
		if (json_object_get(r, "event") != NULL) {
			json_decref(r);
			continue;
		}
		rid = json_object_get(r, "id");
		/* A frame that could not be parsed is answered with id null. */
		if (json_is_null(rid) || (json_is_integer(rid) &&
		    json_integer_value(rid) == id))
			return (r);
		json_decref(r);
	}
}

static void
check_reply(const json_t *r, const char *req, unsigned long seed, int n)
{
	json_t		*res = json_object_get(r, "result");
	json_t		*err = json_object_get(r, "error");
	json_int_t	 code;

	ck_assert_msg((res == NULL) != (err == NULL),
	    "seed %lu request %d: neither result nor error, or both: %.2000s",
	    seed, n, req);
	if (err == NULL)
		return;
	code = json_integer_value(json_object_get(err, "code"));
	ck_assert_msg(documented_code(code),
	    "seed %lu request %d: code %" JSON_INTEGER_FORMAT " for %.2000s",
	    seed, n, code, req);
	ck_assert_msg(json_string_length(json_object_get(err, "message")) > 0,
	    "seed %lu request %d: error without a message: %.2000s", seed, n,
	    req);
}

static void
start(void)
{
	char	conf[2048], path[512];

	daemon_prepare(&d);
	snprintf(root_dir, sizeof(root_dir), "%s/root", d.dir);
	snprintf(root_file, sizeof(root_file), "%s/f", root_dir);
	snprintf(root_sub, sizeof(root_sub), "%s/sub/g", root_dir);
	snprintf(root_new, sizeof(root_new), "%s/new", root_dir);
	ck_assert_int_eq(mkdir(root_dir, 0755), 0);
	snprintf(path, sizeof(path), "%s/sub", root_dir);
	ck_assert_int_eq(mkdir(path, 0755), 0);
	write_text(root_file, "the file\n");
	write_text(root_sub, "another\n");
	snprintf(path, sizeof(path), "%s/d1", d.dir);
	ck_assert_int_eq(mkdir(path, 0755), 0);
	snprintf(path, sizeof(path), "%s/d2", d.dir);
	ck_assert_int_eq(mkdir(path, 0755), 0);
	snprintf(conf, sizeof(conf),
	    "[root.r]\n"
	    "path = %s\n"
	    "[storage]\n"
	    "check_interval_ms = 3600000\n"
	    "[backend.d1]\n"
	    "path = %s/d1\n"
	    "priority = 1\n"
	    "[backend.d2]\n"
	    "path = %s/d2\n"
	    "priority = 2\n", root_dir, d.dir, d.dir);
	daemon_start_env(&d, conf, NULL, NULL, -1);
}

/*
 * Every method the daemon dispatches is in methods[] above: a new method
 * is fed hostile params from the day it lands. Read from the dispatch
 * table's source, rows of the form { "name", flags, handler }.
 */
static void
assert_table_complete(void)
{
	const char	*src = read_text("daemon/dispatch.c"), *p, *q;
	char		 name[64];
	size_t		 i, len, rows = 0;

	for (p = strstr(src, "\t{ \""); p != NULL;
	    p = strstr(p + 1, "\t{ \"")) {
		p += 4;
		if ((q = strchr(p, '"')) == NULL || (len = (size_t)(q - p)) >=
		    sizeof(name))
			continue;
		memcpy(name, p, len);
		name[len] = '\0';
		for (i = 0; i < NMETHODS; i++)
			if (strcmp(methods[i].name, name) == 0)
				break;
		ck_assert_msg(i < NMETHODS, "method %s is not in "
		    "test_hostile.c's methods[]", name);
		rows++;
	}
	ck_assert_uint_ge(rows, 40);
}

START_TEST(random_params_to_every_method)
{
	const char	*env;
	unsigned long	 seed = 1;
	int		 n, total = 4000, fd, waited = 0, verbose;
	int		 fds[64], nfds = 0, per[NMETHODS] = { 0 };
	json_t		*req, *params, *r;
	char		*text;
	size_t		 i;

	if ((env = getenv("HOSTILE_SEED")) != NULL)
		seed = strtoul(env, NULL, 10);
	if ((env = getenv("HOSTILE_N")) != NULL)
		total = atoi(env);
	verbose = getenv("HOSTILE_VERBOSE") != NULL;
	rng_state = seed * 0x9E3779B97F4A7C15ULL + 1;
	assert_table_complete();
	start();
	ck_assert_int_ne(fd = raw_connect(d.sock), -1);
	for (n = 1; n <= total; n++) {
		const struct method *m = &methods[pick(NMETHODS)];

		params = gen_params(m);
		req = json_pack("{s:I, s:s}", "id", (json_int_t)n, "method",
		    m->name);
		if (params != NULL)
			json_object_set_new(req, "params", params);
		text = json_dumps(req, JSON_COMPACT | JSON_ENCODE_ANY);
		json_decref(req);
		ck_assert_ptr_nonnull(text);
		if (strlen(text) > 1000000) {
			/* Past the frame limit: test_protocol's business. */
			free(text);
			continue;
		}
		raw_send_frame(fd, text);
		r = reply_to(fd, n, m->may_wait ? 300 : 10000);
		if (r == NULL) {
			/*
			 * Only a method asked to wait may keep us waiting:
			 * leave it that connection and go on on a new one.
			 */
			ck_assert_msg(m->may_wait, "seed %lu request %d: "
			    "no reply in 10 s to %.2000s", seed, n, text);
			waited++;
			if (nfds == 64) {
				close(fds[0]);
				memmove(fds, fds + 1, sizeof(int) * 63);
				nfds--;
			}
			fds[nfds++] = fd;
			ck_assert_int_ne(fd = raw_connect(d.sock), -1);
			free(text);
			continue;
		}
		check_reply(r, text, seed, n);
		if (verbose)
			fprintf(stderr, "%d %s %d %s\n", n, m->name,
			    reply_code(r), json_string_value(json_object_get(
			    json_object_get(r, "error"), "message")));
		if (json_object_get(r, "result") != NULL)
			harvest(m->name, json_object_get(r, "result"), 0);
		per[m - methods]++;
		json_decref(r);
		free(text);
	}
	for (i = 0; i < (size_t)nfds; i++)
		close(fds[i]);
	close(fd);
	/* Every method was reached, and answered. */
	for (i = 0; i < NMETHODS && total >= 2000; i++)
		ck_assert_msg(per[i] > 0, "%s never answered", methods[i].name);
	fprintf(stderr, "hostile: seed %lu, %d requests, %d left waiting\n",
	    seed, total, waited);

	/* Still serving, and still storing what it is given. */
	assert_serves(&d);
	ck_assert_int_ne(fd = raw_connect(d.sock), -1);
	r = call_on(fd, "{\"id\":1,\"method\":\"error.report\",\"params\":"
	    "{\"id\":\"0190a0b0-0000-7000-8000-0000000000ff\","
	    "\"operation\":\"after\",\"message\":\"still here\"}}");
	ck_assert_int_eq(reply_code(r), 0);
	json_decref(r);
	r = call_on(fd, "{\"id\":2,\"method\":\"error.list\",\"params\":"
	    "{\"operation\":\"after\"}}");
	ck_assert_int_eq(json_array_size(json_object_get(result(r),
	    "errors")), 1);
	json_decref(r);
	r = call_on(fd, "{\"id\":3,\"method\":\"breaker.acquire\",\"params\":"
	    "{\"name\":\"after-the-storm\"}}");
	ck_assert(json_is_true(json_object_get(result(r), "allowed")));
	json_decref(r);
	close(fd);
	pools_free();
	ck_assert_int_eq(daemon_stop(&d), 0);
}
END_TEST

/* ---- hostile configs ----------------------------------------------------- */

static const char *const bad_values[] = {
	"", "-1", "0", "1", "99999999999999999999", "1e309", "-0.5", "nan",
	"abc", "true", "no", "1,2,3", ",", "  x  ", "/nonexistent/dir", "/",
	"%s%n", "0x10", "100ms", "1 2", "\"quoted\"", "; comment",
	"# not a comment", "\xc3\xa9", "\x01\x7f", "relative/dir",
	"ftp://example.invalid/", "http://", "0660", "99999", "nogroup",
};
#define NBADVALUES	(sizeof(bad_values) / sizeof(bad_values[0]))

static const char *const bad_lines[] = {
	"[", "]", "[]", "[daemon", "= x", "key", "[backend.]", "[root.]",
	"[breaker.]", "[nope]", "x = y", "[daemon]", "[store]", "[breaker.a b]",
	"[retry.p]", "  [daemon]  ", "\t= ", "[backend.x]\nurl = ftp://x",
	"[root.x]\npath = relative/dir", "[alert.x]", "[breaker.b1]",
	"[backend.d1]", "failure_threshold = 0", "window = count",
	"window_size = 0", "[retry.default]", "max_attempts = -3",
};
#define NBADLINES	(sizeof(bad_lines) / sizeof(bad_lines[0]))

#define MAXLINES	1024

/*
 * The documented config (every key the shipped file shows, set), with its
 * example paths moved into this run's directory so that a reload applying
 * it touches nothing outside.
 */
static char	*base[MAXLINES];
static size_t	 nbase;

static void
load_base(void)
{
	char	 path[300], line[1024], *p, moved[1400];
	FILE	*f;

	snprintf(path, sizeof(path), "%s/documented.conf", d.dir);
	ck_assert_int_ge(documented_conf(path), 99);
	ck_assert_ptr_nonnull(f = fopen(path, "r"));
	while (nbase < MAXLINES && fgets(line, sizeof(line), f) != NULL) {
		if ((p = strstr(line, "/var/lib/ermd/fallback")) != NULL)
			snprintf(moved, sizeof(moved), "path = %s/d1\n", d.dir);
		else if ((p = strstr(line, "/srv/data")) != NULL)
			snprintf(moved, sizeof(moved), "path = %s\n",
			    root_dir);
		else
			snprintf(moved, sizeof(moved), "%s", line);
		base[nbase++] = strdup(moved);
	}
	fclose(f);
}

static void
free_base(void)
{
	while (nbase > 0)
		free(base[--nbase]);
}

static int
is_key_line(const char *l)
{
	return (l[0] >= 'a' && l[0] <= 'z' && strstr(l, " = ") != NULL);
}

/*
 * The base with one to four changes: a key's value made hostile, a line
 * put in, a line taken out.
 */
static void
write_mutant(const char *path)
{
	char	*lines[MAXLINES + 8], *owned[8], *eq;
	char	 longv[6000];
	size_t	 n = nbase, i, j, k, nowned = 0, changes = 1 + pick(4);
	FILE	*f;

	memcpy(lines, base, nbase * sizeof(char *));
	for (k = 0; k < changes; k++) {
		i = pick(n);
		switch (pick(4)) {
		case 0:
		case 1:
			for (j = 0; j < n && !is_key_line(lines[i]); j++)
				i = (i + 1) % n;
			if (!is_key_line(lines[i]))
				break;
			eq = strstr(lines[i], " = ");
			if (pick(10) == 0) {
				memset(longv, 'x', sizeof(longv) - 1);
				longv[sizeof(longv) - 1] = '\0';
			} else
				snprintf(longv, sizeof(longv), "%s",
				    bad_values[pick(NBADVALUES)]);
			if (asprintf(&owned[nowned], "%.*s = %s\n",
			    (int)(eq - lines[i]), lines[i], longv) == -1)
				ck_abort_msg("asprintf");
			lines[i] = owned[nowned++];
			break;
		case 2:
			if (n == MAXLINES + 8)
				break;
			memmove(lines + i + 1, lines + i, (n - i) *
			    sizeof(char *));
			if (asprintf(&owned[nowned], "%s\n",
			    bad_lines[pick(NBADLINES)]) == -1)
				ck_abort_msg("asprintf");
			lines[i] = owned[nowned++];
			n++;
			break;
		default:
			memmove(lines + i, lines + i + 1, (n - i - 1) *
			    sizeof(char *));
			n--;
			break;
		}
	}
	ck_assert_ptr_nonnull(f = fopen(path, "w"));
	for (i = 0; i < n; i++)
		fputs(lines[i], f);
	ck_assert_int_eq(fclose(f), 0);
	while (nowned > 0)
		free(owned[--nowned]);
}

/*
 * `ermd -t` on hundreds of damaged configs: each is either ok (exit 0,
 * "configuration ok") or refused with exit 78 and messages that name the
 * file - never a crash. Then a running ermd reloads damaged configs: each
 * reload is taken (0) or refused (1003) and the daemon keeps serving;
 * it exits 0 at the end (no leak under make asan).
 */
START_TEST(damaged_configs_are_refused_clearly)
{
	char		 path[300], out[16384], want[400];
	const char	*argv[] = { ermd_path(), "-t", "-c", path, NULL };
	const char	*env;
	unsigned long	 seed = 1;
	int		 n, rc, ok = 0, refused = 0, taken = 0, fd;
	json_t		*r;

	if ((env = getenv("HOSTILE_SEED")) != NULL)
		seed = strtoul(env, NULL, 10);
	rng_state = seed * 0x9E3779B97F4A7C15ULL + 2;
	start();
	load_base();
	snprintf(path, sizeof(path), "%s/mutant.conf", d.dir);
	for (n = 1; n <= 200; n++) {
		write_mutant(path);
		rc = run_prog(out, sizeof(out), argv);
		ck_assert_msg(rc == 0 || rc == 78, "seed %lu config %d: "
		    "ermd -t exited %d:\n%.4000s\n--- the config:\n%.8000s",
		    seed, n, rc, out, read_text(path));
		if (rc == 0) {
			snprintf(want, sizeof(want), "%s: configuration ok\n",
			    path);
			ck_assert_str_eq(out, want);
			ok++;
		} else {
			ck_assert_msg(strncmp(out, path, strlen(path)) == 0,
			    "seed %lu config %d: refused without naming the "
			    "file: %.2000s", seed, n, out);
			refused++;
		}
	}
	/* Both kinds came up: the changes are neither all fatal nor all
	 * harmless. */
	ck_assert_int_gt(ok, 10);
	ck_assert_int_gt(refused, 10);

	ck_assert_int_ne(fd = raw_connect(d.sock), -1);
	for (n = 1; n <= 60; n++) {
		write_mutant(d.conf);
		r = call_on(fd, "{\"id\":%d,\"method\":\"config.reload\"}", n);
		rc = reply_code(r);
		ck_assert_msg(rc == 0 || rc == 1003, "seed %lu reload %d: "
		    "code %d", seed, n, rc);
		if (rc == 0)
			taken++;
		json_decref(r);
		r = call_on(fd, "{\"id\":1,\"method\":\"ping\"}");
		ck_assert_int_eq(reply_code(r), 0);
		json_decref(r);
	}
	ck_assert_int_gt(taken, 0);
	/* The undamaged config again (a taken mutant may have set
	 * max_connections to 1), then a new connection is served. */
	{
		FILE	*f;
		size_t	 i;

		ck_assert_ptr_nonnull(f = fopen(d.conf, "w"));
		for (i = 0; i < nbase; i++)
			fputs(base[i], f);
		ck_assert_int_eq(fclose(f), 0);
	}
	r = call_on(fd, "{\"id\":1,\"method\":\"config.reload\"}");
	ck_assert_int_eq(reply_code(r), 0);
	json_decref(r);
	close(fd);
	fprintf(stderr, "hostile configs: seed %lu, %d ok and %d refused by "
	    "-t, %d of 60 reloads taken\n", seed, ok, refused, taken);
	free_base();
	assert_serves(&d);
	ck_assert_int_eq(daemon_stop(&d), 0);
}
END_TEST

/* ---- hostile ermctl command lines --------------------------------------- */

/*
 * ermctl command lines that work, taken apart: a word swapped, a word put
 * in. Left out of both lists on purpose: what runs until interrupted or
 * runs programs (events, run, errors --follow, workflow watch, submit
 * --wait). File arguments are names relative to this run's directory,
 * the working directory here, or its absolute paths.
 */
/* "@" stands for a file under the root, "wf" for a workflow file. */
static const char *const ctl_lines[] = {
	"status", "ping", "version", "metrics", "metrics --prometheus",
	"config reload", "breaker list", "breaker list --state open",
	"breaker show b1", "breaker reset b1", "breaker open b1",
	"breaker close b1", "breaker disable b1",
	"classify --errno ECONNRESET", "classify --http 503 --message x",
	"errors", "errors --since 1h --limit 5", "stats", "stats --window 5m",
	"storage status", "storage check", "storage put key1 @",
	"storage get key1 out.bin", "backup create --tag t @", "backup list",
	"backup list --path @", "backup restore --yes @", "backup verify",
	"backup prune --keep-last 3", "oplog --limit 3", "workflow submit wf",
	"workflow list", "workflow list --state running", "completion bash",
	"help",
};
#define NLINES	(sizeof(ctl_lines) / sizeof(ctl_lines[0]))

/* Words to put in or swap in. */
static const char *const ctl_words[] = {
	"reload", "list", "show", "reset", "open", "close", "disable",
	"status", "check", "put", "get", "create", "restore", "verify",
	"prune", "submit", "cancel", "bash", "nope", "", "--json",
	"--timeout", "--prometheus", "--state", "--errno", "--http",
	"--exception", "--message", "--exit-code", "--signal", "--category",
	"--since", "--op", "--severity", "--limit", "--window", "--tag",
	"--path", "--yes", "--keep-last", "--older-than", "--help", "-h",
	"-V", "--", "-", "--timeout=0", "--limit=-1", "--bogus", "-x",
	"b1", "s3", "closed", "forced_open", "ECONNRESET", "503", "-1", "0",
	"99999999999999999999", "1h", "5m", "-5s", "1e9", "critical",
	"NETWORK_ERROR", "key1", "out.bin", "wf.json", "sub", "%s%n",
	"\xc3\xa9", "--state=open", "--errno=", "--http=abc",
};
#define NCTL	(sizeof(ctl_words) / sizeof(ctl_words[0]))

START_TEST(random_ermctl_command_lines)
{
	char		 ctl[4096], cwd[4096], out[65536], asan[512], wf[400];
	const char	*argv[16], *env, *old_asan;
	char		 line[2048], words[200], *w, *save = NULL;
	unsigned long	 seed = 1;
	size_t		 i, len;
	int		 base_argc;
	int		 n, rc, argc, err_fd, null_fd, seen[6] = { 0 };

	if ((env = getenv("HOSTILE_SEED")) != NULL)
		seed = strtoul(env, NULL, 10);
	rng_state = seed * 0x9E3779B97F4A7C15ULL + 3;
	start();
	ck_assert_ptr_nonnull(realpath(ermctl_path(), ctl));
	ck_assert_ptr_nonnull(getcwd(cwd, sizeof(cwd)));
	ck_assert_int_eq(chdir(d.dir), 0);
	snprintf(wf, sizeof(wf), "%s/wf.json", d.dir);
	write_text(wf, "{\"name\":\"w\",\"steps\":[{\"name\":\"a\","
	    "\"action\":{\"type\":\"sleep\",\"ms\":1}}]}");
	/* Under make asan, a sanitizer report must not pass for exit 1. */
	old_asan = getenv("ASAN_OPTIONS");
	snprintf(asan, sizeof(asan), "%s%sexitcode=86",
	    old_asan != NULL ? old_asan : "", old_asan != NULL ? ":" : "");
	setenv("ASAN_OPTIONS", asan, 1);
	ck_assert_int_ne(err_fd = dup(STDERR_FILENO), -1);
	ck_assert_int_ne(null_fd = open("/dev/null", O_WRONLY), -1);
	dup2(null_fd, STDERR_FILENO);
	close(null_fd);
	for (n = 1; n <= 300; n++) {
		argc = 0;
		argv[argc++] = ctl;
		argv[argc++] = "--socket";
		argv[argc++] = d.sock;
		argv[argc++] = "--timeout";
		argv[argc++] = "10000";
		/* A line that works, then a word swapped, a word put in. */
		snprintf(words, sizeof(words), "%s", ctl_lines[pick(NLINES)]);
		base_argc = argc;
		for (w = strtok_r(words, " ", &save); w != NULL && argc < 12;
		    w = strtok_r(NULL, " ", &save))
			argv[argc++] = strcmp(w, "@") == 0 ? root_file :
			    strcmp(w, "wf") == 0 ? wf : w;
		if (pick(3) == 0)
			argv[base_argc + pick((size_t)(argc - base_argc))] =
			    ctl_words[pick(NCTL)];
		if (pick(3) == 0 && argc < 15) {
			i = base_argc + pick((size_t)(argc - base_argc + 1));
			memmove(argv + i + 1, argv + i,
			    (size_t)(argc - (int)i) * sizeof(char *));
			argv[i] = pick(8) == 0 ? root_new :
			    ctl_words[pick(NCTL)];
			argc++;
		}
		argv[argc] = NULL;
		for (line[0] = '\0', i = 3; i < (size_t)argc; i++) {
			len = strlen(line);
			snprintf(line + len, sizeof(line) - len, " '%s'",
			    argv[i]);
		}
		rc = run_prog(out, sizeof(out), argv);
		if (rc == 0 || rc == 1 || rc == 2 || rc == 3 || rc == 77 ||
		    rc == 78) {
			seen[rc == 77 ? 4 : rc == 78 ? 5 : rc]++;
			continue;
		}
		dup2(err_fd, STDERR_FILENO);
		ck_abort_msg("seed %lu line %d: ermctl%s exited %d", seed, n,
		    line, rc);
	}
	/* Its complaints went to /dev/null; the test's own go to stderr. */
	dup2(err_fd, STDERR_FILENO);
	close(err_fd);
	if (old_asan != NULL)
		setenv("ASAN_OPTIONS", old_asan, 1);
	else
		unsetenv("ASAN_OPTIONS");
	fprintf(stderr, "hostile ermctl: seed %lu, exit 0: %d, 1: %d, 2: %d, "
	    "3: %d, 77: %d, 78: %d\n", seed, seen[0], seen[1], seen[2],
	    seen[3], seen[4], seen[5]);
	ck_assert_int_gt(seen[0], 30);
	ck_assert_int_gt(seen[2], 30);
	ck_assert_int_eq(chdir(cwd), 0);
	assert_serves(&d);
	ck_assert_int_eq(daemon_stop(&d), 0);
}
END_TEST

/* ---- the metrics listener --------------------------------------------- */

#define HTTP_HEAD_MAX	8192	/* httpd.c's HTTPD_MAX_HEAD */

static const char *const http_base[] = {
	"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: */*\r\n\r\n",
	"HEAD /metrics HTTP/1.0\r\n\r\n",
	"GET /metrics?name[]=ermd_errors_total HTTP/1.1\r\n\r\n",
	"POST /metrics HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello",
	"GET / HTTP/1.1\r\nConnection: keep-alive\r\n\r\n",
	"GET /metrics HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
};
#define NHTTP	(sizeof(http_base) / sizeof(http_base[0]))

static const char *const http_bits[] = {
	"\r\n", "\r\n\r\n", "\n", " ", "\t", "%s%n%x", "\xc3\xa9", "\xff\xfe",
	"HTTP/9.9", "/metrics", "GET", "HEAD", "?", "..", "\x7f", ":",
	"Host: x\r\n",
};
#define NBITS	(sizeof(http_bits) / sizeof(http_bits[0]))

/* Put n bytes of b at position at of the request (len bytes, cap). */
static size_t
http_insert(char *req, size_t len, size_t cap, size_t at, const char *b,
    size_t n)
{
	if (len + n > cap)
		n = cap - len;
	memmove(req + at + n, req + at, len - at);
	memmove(req + at, b, n);	/* b may be in req (a word doubled) */
	return (len + n);
}

/* A request as a careless or hostile client writes one: len bytes. */
static size_t
http_mutant(char *req, size_t cap)
{
	const char	*b;
	size_t		 len, i, k, n;
	char		 fill[10000];

	if (pick(10) == 0) {			/* noise */
		len = pick(pick(4) == 0 ? cap : 300);
		for (i = 0; i < len; i++)
			req[i] = (char)rnd();
		return (len);
	}
	len = strlen(strcpy(req, http_base[pick(NHTTP)]));
	for (k = 1 + pick(3); k > 0; k--) {
		switch (pick(7)) {
		case 0:				/* a byte changed */
			if (len > 0)
				req[pick(len)] = (char)(pick(3) == 0 ? 0 :
				    rnd());
			break;
		case 1:				/* a piece put in */
			b = http_bits[pick(NBITS)];
			len = http_insert(req, len, cap, pick(len + 1), b,
			    strlen(b));
			break;
		case 2:				/* cut short */
			len = pick(len + 1);
			break;
		case 3:				/* a long run */
			n = pick(4) == 0 ? HTTP_HEAD_MAX + pick(200) - 100 :
			    pick(600);
			memset(fill, "A /\r\n\0 "[pick(7)], n);
			len = http_insert(req, len, cap, pick(len + 1), fill,
			    n);
			break;
		case 4:				/* many headers */
			for (i = pick(400); i > 0; i--)
				len = http_insert(req, len, cap, len > 2 ?
				    len - 2 : len, "X-A: b\r\n", 8);
			break;
		case 5:				/* bare LFs */
			for (i = 0; i < len; i++)
				if (req[i] == '\r')
					req[i] = pick(2) ? ' ' : '\n';
			break;
		default:			/* a word doubled */
			i = pick(len + 1);
			n = pick(len - i + 1);
			len = http_insert(req, len, cap, i, req + i, n);
			break;
		}
	}
	return (len);
}

/* Whitespace-separated words of the request line, as a server reads it. */
static int
http_line_is(const char *req, size_t len, const char *method,
    const char *target)
{
	char	line[512], *m, *t, *save = NULL;
	size_t	n = strcspn(req, "\r\n");

	if (n > len)
		n = len;
	if (n >= sizeof(line))
		n = sizeof(line) - 1;
	memcpy(line, req, n);
	line[n] = '\0';
	if ((m = strtok_r(line, " \t\v\f", &save)) == NULL ||
	    (t = strtok_r(NULL, " \t\v\f", &save)) == NULL)
		return (0);
	t[strcspn(t, "?")] = '\0';
	return (strcmp(m, method) == 0 && strcmp(t, target) == 0);
}

/* The answer, whole (the server closes), or what came within 10 s. */
static size_t
http_exchange(int port, const char *req, size_t len, char *out, size_t cap)
{
	struct pollfd	 p;
	size_t		 got = 0;
	ssize_t		 n;
	double		 t0 = mono_ms();
	int		 fd;

	ck_assert_int_ne(fd = tcp_connect(port), -1);
	/* The server may answer 431 and close before all of it is sent. */
	for (n = 0; (size_t)n < len; ) {
		ssize_t w = send(fd, req + n, len - (size_t)n, MSG_NOSIGNAL);

		if (w <= 0)
			break;
		n += w;
	}
	(void)shutdown(fd, SHUT_WR);
	p.fd = fd;
	p.events = POLLIN;
	while (got + 1 < cap && mono_ms() - t0 < 10000 &&
	    poll(&p, 1, 100) >= 0) {
		if (!(p.revents & (POLLIN | POLLHUP | POLLERR)))
			continue;
		if ((n = read(fd, out + got, cap - 1 - got)) <= 0)
			break;
		got += (size_t)n;
	}
	ck_assert_msg(mono_ms() - t0 < 10000, "the listener kept a client "
	    "waiting past its 5 s timeout");
	out[got] = '\0';
	close(fd);
	return (got);
}

/* Of 16 connections open at once, how many get a 200 for GET /metrics. */
static int
slots_serve(int port)
{
	char	out[16];
	int	fds[16], i, ok = 0;
	size_t	got;
	ssize_t	rd;

	for (i = 0; i < 16; i++)
		ck_assert_int_ne(fds[i] = tcp_connect(port), -1);
	for (i = 0; i < 16; i++) {
		got = 0;
		if (write(fds[i], http_base[0], strlen(http_base[0])) ==
		    (ssize_t)strlen(http_base[0])) {
			for (; got < 13; got += (size_t)rd)
				if ((rd = read(fds[i], out + got, 13 -
				    got)) <= 0)
					break;
		}
		out[got] = '\0';
		ok += strcmp(out, "HTTP/1.1 200 ") == 0;
		close(fds[i]);
	}
	return (ok);
}

/*
 * The optional metrics listener is the one socket that speaks HTTP, to
 * whatever can reach its port. Hundreds of requests - working ones with
 * bytes changed, pieces put in, cut short, heads past the 8 KiB bound,
 * hundreds of headers, bare LFs, plain noise - each get a well-formed
 * answer with a status among those documented, or, when the head never
 * ended, the connection closed with nothing said; metrics go only to GET
 * or HEAD of /metrics; and afterwards all 16 connections the listener
 * allows still get the metrics (none was lost to a request that went
 * wrong), and the daemon serves.
 */
START_TEST(random_requests_to_the_metrics_listener)
{
	static char	 req[HTTP_HEAD_MAX * 2 + 4096], out[1 << 20];
	char		 conf[128], *body, *cl;
	const char	*env, *head_end;
	unsigned long	 seed = 1;
	size_t		 len, got, headlen;
	int		 port = free_port(), n, status, by[600] = { 0 };
	int		 k, ok = 0;

	if ((env = getenv("HOSTILE_SEED")) != NULL)
		seed = strtoul(env, NULL, 10);
	rng_state = seed * 0x9E3779B97F4A7C15ULL + 4;
	snprintf(conf, sizeof(conf), "[metrics]\nlisten = 127.0.0.1:%d\n",
	    port);
	daemon_start(&d, conf, NULL);
	for (n = 1; n <= 500; n++) {
		len = http_mutant(req, sizeof(req) - 1);
		req[len] = '\0';
		got = http_exchange(port, req, len, out, sizeof(out));
		headlen = len < HTTP_HEAD_MAX + 1 ? len : HTTP_HEAD_MAX + 1;
		head_end = memmem(req, headlen, "\r\n\r\n", 4);
		if (got == 0) {
			ck_assert_msg(head_end == NULL && len <= HTTP_HEAD_MAX,
			    "seed %lu request %d: closed without an answer:"
			    "\n%.300s", seed, n, req);
			by[0]++;
			continue;
		}
		ck_assert_msg(sscanf(out, "HTTP/1.1 %d ", &status) == 1 &&
		    (status == 200 || status == 400 || status == 404 ||
		    status == 405 || status == 431), "seed %lu request %d: "
		    "answered %.80s\n--- to:\n%.300s", seed, n, out, req);
		by[status]++;
		/* The head ended within the bound, or the bound was hit. */
		ck_assert_msg((head_end != NULL) == (status != 431),
		    "seed %lu request %d: %d for a head of %zu bytes %s its "
		    "end", seed, n, status, len, head_end ? "with" : "without");
		ck_assert_ptr_nonnull(body = strstr(out, "\r\n\r\n"));
		*body = '\0';
		body += 4;
		ck_assert_ptr_nonnull(cl = strstr(out, "\r\nContent-Length: "));
		ck_assert_msg(strtoul(cl + 18, NULL, 10) == strlen(body) ||
		    (status == 200 && *body == '\0'), "seed %lu request %d: "
		    "Content-Length %lu, body of %zu bytes", seed, n,
		    strtoul(cl + 18, NULL, 10), strlen(body));
		if (status == 200)
			ck_assert_msg(http_line_is(req, len, "GET", "/metrics")
			    || http_line_is(req, len, "HEAD", "/metrics"),
			    "seed %lu request %d: metrics for:\n%.300s", seed,
			    n, req);
		if (status == 405)
			ck_assert_ptr_nonnull(strstr(out,
			    "\r\nAllow: GET, HEAD"));
	}
	fprintf(stderr, "hostile http: seed %lu, closed: %d, 200: %d, 400: %d,"
	    " 404: %d, 405: %d, 431: %d\n", seed, by[0], by[200], by[400],
	    by[404], by[405], by[431]);
	ck_assert_int_gt(by[200], 20);
	ck_assert_int_gt(by[400] + by[404] + by[405], 20);
	ck_assert_int_gt(by[431], 5);
	/*
	 * Every connection slot is free again: 16 at once get metrics. A
	 * slot comes free once the listener has seen its client close, a
	 * moment after the answer: try for up to 5 s (a lost slot never
	 * comes back).
	 */
	for (k = 0; k < 50 && (ok = slots_serve(port)) < 16; k++)
		usleep(100000);
	ck_assert_msg(ok == 16, "%d of 16 connections got metrics", ok);
	assert_serves(&d);
	ck_assert_int_eq(daemon_stop(&d), 0);
}
END_TEST

int
main(void)
{
	Suite	*s = suite_create("hostile");
	TCase	*tc = tcase_create("params");
	SRunner	*sr;
	int	 failed;

	tcase_add_test(tc, random_params_to_every_method);
	tcase_set_timeout(tc, 600);
	suite_add_tcase(s, tc);
	tc = tcase_create("ermctl");
	tcase_add_test(tc, random_ermctl_command_lines);
	tcase_set_timeout(tc, 600);
	suite_add_tcase(s, tc);
	tc = tcase_create("http");
	tcase_add_test(tc, random_requests_to_the_metrics_listener);
	tcase_set_timeout(tc, 600);
	suite_add_tcase(s, tc);
	tc = tcase_create("config");
	tcase_add_test(tc, damaged_configs_are_refused_clearly);
	tcase_set_timeout(tc, 600);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return (failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE);
}
