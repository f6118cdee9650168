/*
 * Unit tests of daemon/classify.c: error objects (strict unpacking, errno
 * names), the default classification table of BEHAVIOUR.md section 3 row
 * by row, the precedence between the fields, configured message rules and
 * the strategy table.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>
#include <jansson.h>

#include "classify.h"
#include "erm_proto.h"
#include "retry.h"

#define LEN(a)	(sizeof(a) / sizeof((a)[0]))

static catset
default_retry_on(void)
{
	struct retry_policy	p;

	retry_policy_defaults(&p);
	return (p.retry_on);
}

/* Parse text, unpack it as an error object and classify it. */
static void
classify_text(const struct classify_config *cfg, const char *text,
    struct classify_result *res)
{
	json_error_t		 jerr;
	json_t			*o;
	struct erm_errobj	 eo;
	struct param_err	 pe;

	o = json_loads(text, 0, &jerr);
	ck_assert_msg(o != NULL, "bad test JSON %s: %s", text, jerr.text);
	ck_assert_msg(errobj_from_json(o, &eo, 0, &pe) == 0,
	    "%s refused: %s: %s", text, pe.field, pe.reason);
	classify(cfg, &eo, default_retry_on(), res);
	errobj_clear(&eo);
	json_decref(o);
}

/* Unpack text and expect a failure naming field (and reason, if given). */
static void
expect_param_err(const char *text, int allow_other, const char *field,
    const char *reason)
{
	json_error_t		 jerr;
	json_t			*o;
	struct erm_errobj	 eo;
	struct param_err	 pe;

	o = json_loads(text, 0, &jerr);
	ck_assert_msg(o != NULL, "bad test JSON %s: %s", text, jerr.text);
	memset(&pe, 0, sizeof(pe));
	ck_assert_msg(errobj_from_json(o, &eo, allow_other, &pe) == -1,
	    "%s accepted", text);
	ck_assert_str_eq(pe.field, field);
	if (reason != NULL)
		ck_assert_msg(strstr(pe.reason, reason) != NULL,
		    "%s: reason '%s' lacks '%s'", text, pe.reason, reason);
	/* A failed unpack leaves nothing to free. */
	ck_assert_ptr_null(eo.message);
	ck_assert_uint_eq(eo.have, 0);
	json_decref(o);
}

/* ---- names -------------------------------------------------------------- */

START_TEST(test_category_names)
{
	static const char *const want[] = {
		"NETWORK_ERROR", "STORAGE_ERROR", "AUTHENTICATION_ERROR",
		"QUOTA_EXCEEDED", "FILE_NOT_FOUND", "CORRUPTED_DATA",
		"TIMEOUT_ERROR", "RATE_LIMIT_ERROR", "PERMISSION_ERROR",
		"SYSTEM_ERROR",
	};
	size_t	i;

	ck_assert_int_eq(CAT_COUNT - 1, (int)LEN(want));
	for (i = 0; i < LEN(want); i++) {
		ck_assert_str_eq(category_name((enum category)(i + 1)),
		    want[i]);
		ck_assert_int_eq(category_from_name(want[i]), (int)i + 1);
	}
	ck_assert_ptr_null(category_name(CAT_NONE));
	ck_assert_ptr_null(category_name(CAT_COUNT));
	ck_assert_int_eq(category_from_name("network_error"), CAT_NONE);
	ck_assert_int_eq(category_from_name("NETWORK_ERROR "), CAT_NONE);
	ck_assert_int_eq(category_from_name(""), CAT_NONE);
}
END_TEST

START_TEST(test_strategy_names)
{
	static const char *const want[] = {
		"retry_with_backoff", "retry", "fallback_storage", "rollback",
		"escalate", "skip_and_log",
	};
	size_t	i;

	ck_assert_int_eq(STRAT_COUNT - 1, (int)LEN(want));
	for (i = 0; i < LEN(want); i++) {
		ck_assert_str_eq(strategy_name((enum strategy)(i + 1)),
		    want[i]);
		ck_assert_int_eq(strategy_from_name(want[i]), (int)i + 1);
	}
	ck_assert_ptr_null(strategy_name(STRAT_NONE));
	ck_assert_int_eq(strategy_from_name("Retry"), STRAT_NONE);
	ck_assert_int_eq(strategy_from_name("none"), STRAT_NONE);
}
END_TEST

START_TEST(test_catset)
{
	catset	 s;
	char	 err[128];
	json_t	*j;

	ck_assert_int_eq(catset_parse("NETWORK_ERROR, TIMEOUT_ERROR,"
	    "SYSTEM_ERROR", &s, err, sizeof(err)), 0);
	ck_assert_uint_eq(s, CATSET_BIT(CAT_NETWORK_ERROR) |
	    CATSET_BIT(CAT_TIMEOUT_ERROR) | CATSET_BIT(CAT_SYSTEM_ERROR));
	ck_assert_int_eq(catset_parse("  ", &s, err, sizeof(err)), 0);
	ck_assert_uint_eq(s, 0);
	ck_assert_int_eq(catset_parse("NETWORK_ERROR,,TIMEOUT_ERROR", &s, err,
	    sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "empty item"));
	ck_assert_int_eq(catset_parse("NETWORK_ERROR,NOPE", &s, err,
	    sizeof(err)), -1);
	ck_assert_str_eq(err, "unknown category 'NOPE'");

	j = catset_to_json(CATSET_BIT(CAT_SYSTEM_ERROR) |
	    CATSET_BIT(CAT_NETWORK_ERROR));
	ck_assert_int_eq(json_array_size(j), 2);
	ck_assert_str_eq(json_string_value(json_array_get(j, 0)),
	    "NETWORK_ERROR");
	ck_assert_str_eq(json_string_value(json_array_get(j, 1)),
	    "SYSTEM_ERROR");
	json_decref(j);
}
END_TEST

START_TEST(test_errno_names)
{
	static const struct {
		const char	*name;
		int		 num;
	} names[] = {
#define E(x)	{ #x, x }
		E(ECONNREFUSED), E(ECONNRESET), E(ECONNABORTED),
		E(ENETUNREACH), E(EHOSTUNREACH), E(ENETDOWN), E(ENOTCONN),
		E(EPIPE), E(ETIMEDOUT), E(ENOSPC), E(EIO), E(EROFS), E(EDQUOT),
		E(EACCES), E(EPERM), E(ENOENT), E(ENOTDIR), E(EBADMSG),
		E(EILSEQ), E(ENOMEM), E(EMFILE), E(ENFILE), E(EAGAIN),
		E(EINVAL), E(EEXIST), E(EBUSY), E(EINTR), E(EHWPOISON),
#undef E
	};
	size_t	i;

	for (i = 0; i < LEN(names); i++) {
		ck_assert_int_eq(errno_from_name(names[i].name), names[i].num);
		ck_assert_str_eq(errno_to_name(names[i].num), names[i].name);
	}
	/* Aliases name the same number; the number maps back to the first. */
	ck_assert_int_eq(errno_from_name("EWOULDBLOCK"), EAGAIN);
	ck_assert_str_eq(errno_to_name(EWOULDBLOCK), "EAGAIN");
	ck_assert_int_eq(errno_from_name("ENOTSUP"), EOPNOTSUPP);
	ck_assert_int_eq(errno_from_name("econnreset"), -1);
	ck_assert_int_eq(errno_from_name("ENOPE"), -1);
	ck_assert_ptr_null(errno_to_name(4000));

	/* Every name the table has is found, the first and last included. */
	for (i = 1; i < 4096; i++)
		if (errno_to_name((int)i) != NULL)
			ck_assert_int_eq(errno_from_name(errno_to_name((int)i)),
			    (int)i);
	ck_assert_int_eq(errno_from_name("E2BIG"), E2BIG);
	ck_assert_int_eq(errno_from_name("EXFULL"), EXFULL);
	ck_assert_int_eq(errno_from_name(""), -1);
	ck_assert_int_eq(errno_from_name("E"), -1);
	ck_assert_int_eq(errno_from_name("EZZZ"), -1);
	ck_assert_int_eq(errno_from_name("ECONNRESE"), -1);
}
END_TEST

/* ---- error objects ------------------------------------------------------ */

/* errobj_text writes what errobj_to_json builds, member for member. */
static void
text_as_json(const struct erm_errobj *eo)
{
	json_t	*v = errobj_to_json(eo);
	char	*want = erm_json_text(v, 1 << 20), *got = errobj_text(eo);

	ck_assert_ptr_nonnull(want);
	ck_assert_ptr_nonnull(got);
	ck_assert_str_eq(got, want);
	free(want);
	free(got);
	json_decref(v);
}

START_TEST(test_errobj_full)
{
	json_t			*o, *back;
	struct erm_errobj	 eo;
	struct param_err	 pe;

	o = json_pack("{s:s, s:s, s:i, s:i, s:i, s:s, s:s, s:i}",
	    "category", "NETWORK_ERROR", "errno", "ECONNRESET",
	    "http_status", 503, "exit_code", 1, "signal", 9,
	    "exception", "ConnectionResetError", "message", "peer reset",
	    "retry_after_ms", 2500);
	ck_assert_int_eq(errobj_from_json(o, &eo, 0, &pe), 0);
	ck_assert_uint_eq(eo.have, EO_CATEGORY | EO_ERRNO | EO_HTTP_STATUS |
	    EO_EXIT_CODE | EO_SIGNAL | EO_EXCEPTION | EO_MESSAGE |
	    EO_RETRY_AFTER);
	ck_assert_int_eq(eo.category, CAT_NETWORK_ERROR);
	ck_assert_int_eq(eo.err_no, ECONNRESET);
	ck_assert_str_eq(eo.errno_name, "ECONNRESET");
	ck_assert_int_eq(eo.http_status, 503);
	ck_assert_int_eq(eo.exit_code, 1);
	ck_assert_int_eq(eo.signal, 9);
	ck_assert_str_eq(eo.exception, "ConnectionResetError");
	ck_assert_str_eq(eo.message, "peer reset");
	ck_assert_int_eq(eo.retry_after_ms, 2500);
	back = errobj_to_json(&eo);
	ck_assert_msg(json_equal(o, back), "round trip differs");
	json_decref(back);
	text_as_json(&eo);
	errobj_clear(&eo);
	ck_assert_ptr_null(eo.message);
	json_decref(o);

	/* Escapes in the text; nothing at all. */
	o = json_pack("{s:s, s:s}", "message", "a \"quoted\"\nline\\",
	    "exception", "E\t1");
	ck_assert_int_eq(errobj_from_json(o, &eo, 0, &pe), 0);
	text_as_json(&eo);
	errobj_clear(&eo);
	json_decref(o);
	errobj_init(&eo);
	text_as_json(&eo);
}
END_TEST

START_TEST(test_errobj_errno_forms)
{
	json_t			*o, *back;
	struct erm_errobj	 eo;
	struct param_err	 pe;

	/* A number with a name keeps both, and is written back by name. */
	o = json_pack("{s:i}", "errno", ECONNRESET);
	ck_assert_int_eq(errobj_from_json(o, &eo, 0, &pe), 0);
	ck_assert_int_eq(eo.err_no, ECONNRESET);
	ck_assert_str_eq(eo.errno_name, "ECONNRESET");
	back = errobj_to_json(&eo);
	ck_assert_str_eq(json_string_value(json_object_get(back, "errno")),
	    "ECONNRESET");
	json_decref(back);
	errobj_clear(&eo);
	json_decref(o);

	/* A number without a name is kept as a number. */
	o = json_pack("{s:i}", "errno", 4000);
	ck_assert_int_eq(errobj_from_json(o, &eo, 0, &pe), 0);
	ck_assert_int_eq(eo.err_no, 4000);
	ck_assert_str_eq(eo.errno_name, "");
	text_as_json(&eo);
	back = errobj_to_json(&eo);
	ck_assert_int_eq(json_integer_value(json_object_get(back, "errno")),
	    4000);
	json_decref(back);
	errobj_clear(&eo);
	json_decref(o);

	/* An alias keeps the name the client used. */
	o = json_pack("{s:s}", "errno", "EWOULDBLOCK");
	ck_assert_int_eq(errobj_from_json(o, &eo, 0, &pe), 0);
	ck_assert_int_eq(eo.err_no, EAGAIN);
	ck_assert_str_eq(eo.errno_name, "EWOULDBLOCK");
	errobj_clear(&eo);
	json_decref(o);
}
END_TEST

static const struct bad_case {
	const char	*text;
	int		 allow_other;
	const char	*field;
	const char	*reason;
} bad_cases[] = {
	{ "{}", 0, "error", "at least one" },
	{ "{\"operation\": \"x\"}", 1, "error", "at least one" },
	{ "{\"errno\": 104, \"bogus\": 1}", 0, "bogus", "unknown member" },
	{ "{\"category\": \"NETWORK\"}", 0, "category", "unknown category" },
	{ "{\"category\": 1}", 0, "category", "string" },
	{ "{\"errno\": \"ENOPE\"}", 0, "errno", "unknown errno name" },
	{ "{\"errno\": \"econnreset\"}", 0, "errno", "unknown errno name" },
	{ "{\"errno\": 1.5}", 0, "errno", "integer or an errno name" },
	{ "{\"errno\": true}", 0, "errno", "integer or an errno name" },
	{ "{\"errno\": null}", 0, "errno", "integer or an errno name" },
	{ "{\"errno\": 0}", 0, "errno", "between" },
	{ "{\"errno\": -5}", 0, "errno", "between" },
	{ "{\"errno\": 4096}", 0, "errno", "between" },
	{ "{\"http_status\": \"503\"}", 0, "http_status", "integer" },
	{ "{\"http_status\": 99}", 0, "http_status", "between 100 and 599" },
	{ "{\"http_status\": 600}", 0, "http_status", "between 100 and 599" },
	{ "{\"exit_code\": 256}", 0, "exit_code", "between 0 and 255" },
	{ "{\"exit_code\": -1}", 0, "exit_code", "between 0 and 255" },
	{ "{\"signal\": 0}", 0, "signal", "between 1 and 64" },
	{ "{\"signal\": 65}", 0, "signal", "between 1 and 64" },
	{ "{\"signal\": \"KILL\"}", 0, "signal", "integer" },
	{ "{\"exception\": 5}", 0, "exception", "string" },
	{ "{\"exception\": \"\"}", 0, "exception", "empty" },
	{ "{\"message\": [\"x\"]}", 0, "message", "string" },
	{ "{\"retry_after_ms\": -1}", 0, "retry_after_ms", "between" },
	{ "{\"retry_after_ms\": 1.0}", 0, "retry_after_ms", "integer" },
	/* The other members are checked even when others are allowed. */
	{ "{\"operation\": \"x\", \"errno\": \"ENOPE\"}", 1, "errno", NULL },
};

START_TEST(test_errobj_bad)
{
	const struct bad_case	*c = &bad_cases[_i];

	expect_param_err(c->text, c->allow_other, c->field, c->reason);
}
END_TEST

START_TEST(test_errobj_limits)
{
	char			*big;
	json_t			*o;
	struct erm_errobj	 eo;
	struct param_err	 pe;

	big = malloc(ERROBJ_MESSAGE_MAX + 2);
	memset(big, 'm', ERROBJ_MESSAGE_MAX + 1);
	big[ERROBJ_MESSAGE_MAX] = '\0';
	o = json_pack("{s:s}", "message", big);
	ck_assert_int_eq(errobj_from_json(o, &eo, 0, &pe), 0);
	ck_assert_uint_eq(strlen(eo.message), ERROBJ_MESSAGE_MAX);
	errobj_clear(&eo);
	json_decref(o);
	big[ERROBJ_MESSAGE_MAX] = 'm';
	big[ERROBJ_MESSAGE_MAX + 1] = '\0';
	o = json_pack("{s:s}", "message", big);
	ck_assert_int_eq(errobj_from_json(o, &eo, 0, &pe), -1);
	ck_assert_str_eq(pe.field, "message");
	json_decref(o);

	memset(big, 'E', ERROBJ_EXCEPTION_MAX + 1);
	big[ERROBJ_EXCEPTION_MAX] = '\0';
	o = json_pack("{s:s}", "exception", big);
	ck_assert_int_eq(errobj_from_json(o, &eo, 0, &pe), 0);
	errobj_clear(&eo);
	json_decref(o);
	big[ERROBJ_EXCEPTION_MAX] = 'E';
	big[ERROBJ_EXCEPTION_MAX + 1] = '\0';
	o = json_pack("{s:s}", "exception", big);
	ck_assert_int_eq(errobj_from_json(o, &eo, 0, &pe), -1);
	ck_assert_str_eq(pe.field, "exception");
	json_decref(o);
	free(big);

	/* Not an object at all. */
	o = json_string("ECONNRESET");
	ck_assert_int_eq(errobj_from_json_at(o, "error", &eo, 0, &pe), -1);
	ck_assert_str_eq(pe.field, "error");
	json_decref(o);
}
END_TEST

START_TEST(test_errobj_prefix)
{
	json_t			*o;
	struct erm_errobj	 eo;
	struct param_err	 pe;

	o = json_pack("{s:i, s:i}", "errno", 104, "bogus", 1);
	ck_assert_int_eq(errobj_from_json_at(o, "error", &eo, 0, &pe), -1);
	ck_assert_str_eq(pe.field, "error.bogus");
	json_decref(o);
	o = json_pack("{s:i}", "http_status", 42);
	ck_assert_int_eq(errobj_from_json_at(o, "error", &eo, 0, &pe), -1);
	ck_assert_str_eq(pe.field, "error.http_status");
	json_decref(o);
	o = json_pack("{s:s}", "errno", "EWHAT");
	ck_assert_int_eq(errobj_from_json_at(o, "error", &eo, 0, &pe), -1);
	ck_assert_str_eq(pe.field, "error.errno");
	json_decref(o);
	o = json_object();
	ck_assert_int_eq(errobj_from_json_at(o, "error", &eo, 0, &pe), -1);
	ck_assert_str_eq(pe.field, "error");
	json_decref(o);
}
END_TEST

START_TEST(test_errobj_allow_other)
{
	json_t			*o;
	struct erm_errobj	 eo;
	struct param_err	 pe;

	o = json_pack("{s:s, s:s, s:{}, s:s}", "operation", "upload",
	    "severity", "error", "context", "errno", "EIO");
	ck_assert_int_eq(errobj_from_json(o, &eo, 1, &pe), 0);
	ck_assert_uint_eq(eo.have, EO_ERRNO);
	ck_assert_int_eq(eo.err_no, EIO);
	errobj_clear(&eo);
	ck_assert_int_eq(errobj_from_json(o, &eo, 0, &pe), -1);
	json_decref(o);
}
END_TEST

/* ---- the default table -------------------------------------------------- */

static const struct row {
	const char	*text;
	enum category	 cat;
	const char	*matched;
} rows[] = {
	/* NETWORK_ERROR */
	{ "{\"errno\":\"ECONNREFUSED\"}", CAT_NETWORK_ERROR,
	    "errno:ECONNREFUSED" },
	{ "{\"errno\":\"ECONNRESET\"}", CAT_NETWORK_ERROR, "errno:ECONNRESET" },
	{ "{\"errno\":\"ECONNABORTED\"}", CAT_NETWORK_ERROR,
	    "errno:ECONNABORTED" },
	{ "{\"errno\":\"ENETUNREACH\"}", CAT_NETWORK_ERROR,
	    "errno:ENETUNREACH" },
	{ "{\"errno\":\"EHOSTUNREACH\"}", CAT_NETWORK_ERROR,
	    "errno:EHOSTUNREACH" },
	{ "{\"errno\":\"ENETDOWN\"}", CAT_NETWORK_ERROR, "errno:ENETDOWN" },
	{ "{\"errno\":\"ENOTCONN\"}", CAT_NETWORK_ERROR, "errno:ENOTCONN" },
	{ "{\"errno\":\"EPIPE\"}", CAT_NETWORK_ERROR, "errno:EPIPE" },
	{ "{\"errno\":104}", CAT_NETWORK_ERROR, "errno:ECONNRESET" },
	{ "{\"http_status\":502}", CAT_NETWORK_ERROR, "http_status:502" },
	{ "{\"http_status\":503}", CAT_NETWORK_ERROR, "http_status:503" },
	{ "{\"exception\":\"ConnectionError\"}", CAT_NETWORK_ERROR,
	    "exception:ConnectionError" },
	{ "{\"exception\":\"ConnectionRefusedError\"}", CAT_NETWORK_ERROR,
	    "exception:ConnectionRefusedError" },
	{ "{\"exception\":\"ConnectionResetError\"}", CAT_NETWORK_ERROR,
	    "exception:ConnectionResetError" },
	{ "{\"exception\":\"ConnectionAbortedError\"}", CAT_NETWORK_ERROR,
	    "exception:ConnectionAbortedError" },
	{ "{\"exception\":\"BrokenPipeError\"}", CAT_NETWORK_ERROR,
	    "exception:BrokenPipeError" },
	/* A module path in front of the type name still matches. */
	{ "{\"exception\":\"requests.exceptions.ConnectionError\"}",
	    CAT_NETWORK_ERROR,
	    "exception:requests.exceptions.ConnectionError" },
	/* TIMEOUT_ERROR */
	{ "{\"errno\":\"ETIMEDOUT\"}", CAT_TIMEOUT_ERROR, "errno:ETIMEDOUT" },
	{ "{\"http_status\":408}", CAT_TIMEOUT_ERROR, "http_status:408" },
	{ "{\"http_status\":504}", CAT_TIMEOUT_ERROR, "http_status:504" },
	{ "{\"exit_code\":124}", CAT_TIMEOUT_ERROR, "exit_code:124" },
	{ "{\"exception\":\"TimeoutError\"}", CAT_TIMEOUT_ERROR,
	    "exception:TimeoutError" },
	/* STORAGE_ERROR */
	{ "{\"errno\":\"ENOSPC\"}", CAT_STORAGE_ERROR, "errno:ENOSPC" },
	{ "{\"errno\":\"EIO\"}", CAT_STORAGE_ERROR, "errno:EIO" },
	{ "{\"errno\":\"EROFS\"}", CAT_STORAGE_ERROR, "errno:EROFS" },
	{ "{\"http_status\":500}", CAT_STORAGE_ERROR, "http_status:500" },
	{ "{\"exception\":\"OSError\"}", CAT_STORAGE_ERROR,
	    "exception:OSError" },
	{ "{\"exception\":\"IOError\"}", CAT_STORAGE_ERROR,
	    "exception:IOError" },
	/* QUOTA_EXCEEDED */
	{ "{\"errno\":\"EDQUOT\"}", CAT_QUOTA_EXCEEDED, "errno:EDQUOT" },
	{ "{\"http_status\":507}", CAT_QUOTA_EXCEEDED, "http_status:507" },
	{ "{\"http_status\":413}", CAT_QUOTA_EXCEEDED, "http_status:413" },
	/* AUTHENTICATION_ERROR */
	{ "{\"http_status\":401}", CAT_AUTHENTICATION_ERROR,
	    "http_status:401" },
	{ "{\"http_status\":407}", CAT_AUTHENTICATION_ERROR,
	    "http_status:407" },
	{ "{\"exception\":\"AuthenticationError\"}", CAT_AUTHENTICATION_ERROR,
	    "exception:AuthenticationError" },
	/* PERMISSION_ERROR */
	{ "{\"errno\":\"EACCES\"}", CAT_PERMISSION_ERROR, "errno:EACCES" },
	{ "{\"errno\":\"EPERM\"}", CAT_PERMISSION_ERROR, "errno:EPERM" },
	{ "{\"http_status\":403}", CAT_PERMISSION_ERROR, "http_status:403" },
	{ "{\"exception\":\"PermissionError\"}", CAT_PERMISSION_ERROR,
	    "exception:PermissionError" },
	/* FILE_NOT_FOUND */
	{ "{\"errno\":\"ENOENT\"}", CAT_FILE_NOT_FOUND, "errno:ENOENT" },
	{ "{\"errno\":\"ENOTDIR\"}", CAT_FILE_NOT_FOUND, "errno:ENOTDIR" },
	{ "{\"http_status\":404}", CAT_FILE_NOT_FOUND, "http_status:404" },
	{ "{\"http_status\":410}", CAT_FILE_NOT_FOUND, "http_status:410" },
	{ "{\"exception\":\"FileNotFoundError\"}", CAT_FILE_NOT_FOUND,
	    "exception:FileNotFoundError" },
	/* CORRUPTED_DATA */
	{ "{\"errno\":\"EBADMSG\"}", CAT_CORRUPTED_DATA, "errno:EBADMSG" },
	{ "{\"errno\":\"EILSEQ\"}", CAT_CORRUPTED_DATA, "errno:EILSEQ" },
	{ "{\"http_status\":422}", CAT_CORRUPTED_DATA, "http_status:422" },
	{ "{\"exception\":\"UnicodeDecodeError\"}", CAT_CORRUPTED_DATA,
	    "exception:UnicodeDecodeError" },
	{ "{\"exception\":\"JSONDecodeError\"}", CAT_CORRUPTED_DATA,
	    "exception:JSONDecodeError" },
	{ "{\"exception\":\"json.decoder.JSONDecodeError\"}",
	    CAT_CORRUPTED_DATA, "exception:json.decoder.JSONDecodeError" },
	{ "{\"message\":\"block checksum mismatch\"}", CAT_CORRUPTED_DATA,
	    "message:checksum" },
	{ "{\"message\":\"Database disk image is CORRUPTED\"}",
	    CAT_CORRUPTED_DATA, "message:corrupt" },
	/* RATE_LIMIT_ERROR */
	{ "{\"http_status\":429}", CAT_RATE_LIMIT_ERROR, "http_status:429" },
	/* SYSTEM_ERROR: listed errnos, signals, anything else */
	{ "{\"errno\":\"ENOMEM\"}", CAT_SYSTEM_ERROR, "errno:ENOMEM" },
	{ "{\"errno\":\"EMFILE\"}", CAT_SYSTEM_ERROR, "errno:EMFILE" },
	{ "{\"errno\":\"ENFILE\"}", CAT_SYSTEM_ERROR, "errno:ENFILE" },
	{ "{\"errno\":\"EAGAIN\"}", CAT_SYSTEM_ERROR, "errno:EAGAIN" },
	{ "{\"errno\":\"EWOULDBLOCK\"}", CAT_SYSTEM_ERROR,
	    "errno:EWOULDBLOCK" },
	{ "{\"signal\":9}", CAT_SYSTEM_ERROR, "signal:9" },
	{ "{\"signal\":11}", CAT_SYSTEM_ERROR, "signal:11" },
	{ "{\"errno\":\"EINVAL\"}", CAT_SYSTEM_ERROR, "default" },
	{ "{\"errno\":4000}", CAT_SYSTEM_ERROR, "default" },
	{ "{\"http_status\":418}", CAT_SYSTEM_ERROR, "default" },
	{ "{\"http_status\":501}", CAT_SYSTEM_ERROR, "default" },
	{ "{\"exception\":\"ValueError\"}", CAT_SYSTEM_ERROR, "default" },
	{ "{\"exception\":\"connectionerror\"}", CAT_SYSTEM_ERROR, "default" },
	{ "{\"exit_code\":1}", CAT_SYSTEM_ERROR, "default" },
	{ "{\"exit_code\":0}", CAT_SYSTEM_ERROR, "default" },
	{ "{\"message\":\"something odd\"}", CAT_SYSTEM_ERROR, "default" },
	{ "{\"retry_after_ms\":100}", CAT_SYSTEM_ERROR, "default" },
	/* An explicit category */
	{ "{\"category\":\"QUOTA_EXCEEDED\"}", CAT_QUOTA_EXCEEDED,
	    "category" },
};

START_TEST(test_default_table)
{
	const struct row	*r = &rows[_i];
	struct classify_result	 res;
	catset			 retry_on = default_retry_on();

	classify_text(NULL, r->text, &res);
	ck_assert_msg(res.category == r->cat, "%s: got %s, want %s", r->text,
	    category_name(res.category), category_name(r->cat));
	ck_assert_str_eq(res.matched, r->matched);
	ck_assert_int_eq(res.retryable,
	    (retry_on & CATSET_BIT(r->cat)) != 0);
}
END_TEST

/* The defaults of section 2 decide what is retryable. */
START_TEST(test_retryable)
{
	static const struct {
		const char	*text;
		int		 retryable;
	} cases[] = {
		{ "{\"errno\":\"ECONNRESET\"}", 1 },
		{ "{\"errno\":\"EIO\"}", 1 },
		{ "{\"errno\":\"ETIMEDOUT\"}", 1 },
		{ "{\"http_status\":429}", 1 },
		{ "{\"signal\":9}", 1 },
		{ "{\"errno\":\"EDQUOT\"}", 0 },
		{ "{\"http_status\":401}", 0 },
		{ "{\"errno\":\"ENOENT\"}", 0 },
		{ "{\"errno\":\"EBADMSG\"}", 0 },
		{ "{\"errno\":\"EACCES\"}", 0 },
	};
	struct classify_result	res;
	size_t			i;

	for (i = 0; i < LEN(cases); i++) {
		classify_text(NULL, cases[i].text, &res);
		ck_assert_msg(res.retryable == cases[i].retryable, "%s",
		    cases[i].text);
	}
}
END_TEST

/* ---- precedence --------------------------------------------------------- */

static const struct row precedence[] = {
	/* category beats everything */
	{ "{\"category\":\"RATE_LIMIT_ERROR\",\"errno\":\"ECONNRESET\","
	    "\"http_status\":500,\"exception\":\"TimeoutError\","
	    "\"message\":\"checksum\",\"exit_code\":124,\"signal\":9}",
	    CAT_RATE_LIMIT_ERROR, "category" },
	/* errno beats http_status, exception, message, exit, signal */
	{ "{\"errno\":\"ENOSPC\",\"http_status\":503}", CAT_STORAGE_ERROR,
	    "errno:ENOSPC" },
	{ "{\"errno\":\"EPIPE\",\"exception\":\"TimeoutError\"}",
	    CAT_NETWORK_ERROR, "errno:EPIPE" },
	{ "{\"errno\":\"EACCES\",\"message\":\"checksum\"}",
	    CAT_PERMISSION_ERROR, "errno:EACCES" },
	{ "{\"errno\":\"ENOENT\",\"exit_code\":124}", CAT_FILE_NOT_FOUND,
	    "errno:ENOENT" },
	/* an errno outside the table falls through to the next level */
	{ "{\"errno\":\"EINVAL\",\"http_status\":503}", CAT_NETWORK_ERROR,
	    "http_status:503" },
	{ "{\"errno\":4000,\"exception\":\"TimeoutError\"}",
	    CAT_TIMEOUT_ERROR, "exception:TimeoutError" },
	/* http_status beats exception and below */
	{ "{\"http_status\":429,\"exception\":\"ConnectionError\"}",
	    CAT_RATE_LIMIT_ERROR, "http_status:429" },
	{ "{\"http_status\":404,\"message\":\"corrupt\"}", CAT_FILE_NOT_FOUND,
	    "http_status:404" },
	{ "{\"http_status\":418,\"exception\":\"PermissionError\"}",
	    CAT_PERMISSION_ERROR, "exception:PermissionError" },
	/* exception beats message and exit code */
	{ "{\"exception\":\"FileNotFoundError\",\"message\":\"checksum\"}",
	    CAT_FILE_NOT_FOUND, "exception:FileNotFoundError" },
	{ "{\"exception\":\"BrokenPipeError\",\"exit_code\":124}",
	    CAT_NETWORK_ERROR, "exception:BrokenPipeError" },
	/* OSError is only taken without a better match... */
	{ "{\"exception\":\"OSError\",\"errno\":\"ECONNREFUSED\"}",
	    CAT_NETWORK_ERROR, "errno:ECONNREFUSED" },
	{ "{\"exception\":\"OSError\",\"message\":\"bad checksum\"}",
	    CAT_CORRUPTED_DATA, "message:checksum" },
	/* ...but it is better than an exit code or a signal */
	{ "{\"exception\":\"OSError\",\"errno\":\"EINVAL\",\"signal\":9}",
	    CAT_STORAGE_ERROR, "exception:OSError" },
	{ "{\"exception\":\"OSError\",\"exit_code\":124}", CAT_STORAGE_ERROR,
	    "exception:OSError" },
	/* message rules beat exit code and signal */
	{ "{\"message\":\"corrupt\",\"exit_code\":124}", CAT_CORRUPTED_DATA,
	    "message:corrupt" },
	{ "{\"message\":\"checksum\",\"signal\":6}", CAT_CORRUPTED_DATA,
	    "message:checksum" },
	/* an unknown exception falls through to the message */
	{ "{\"exception\":\"ValueError\",\"message\":\"checksum\"}",
	    CAT_CORRUPTED_DATA, "message:checksum" },
	/* exit code 124 beats a signal; other exit codes do not */
	{ "{\"exit_code\":124,\"signal\":15}", CAT_TIMEOUT_ERROR,
	    "exit_code:124" },
	{ "{\"exit_code\":137,\"signal\":9}", CAT_SYSTEM_ERROR, "signal:9" },
	/* the first built-in word in table order names the match */
	{ "{\"message\":\"corrupt block, checksum bad\"}", CAT_CORRUPTED_DATA,
	    "message:checksum" },
};

START_TEST(test_precedence)
{
	const struct row	*r = &precedence[_i];
	struct classify_result	 res;

	classify_text(NULL, r->text, &res);
	ck_assert_msg(res.category == r->cat, "%s: got %s, want %s", r->text,
	    category_name(res.category), category_name(r->cat));
	ck_assert_str_eq(res.matched, r->matched);
}
END_TEST

/* ---- configured rules --------------------------------------------------- */

static void
set_ok(struct classify_config *cfg, const char *section, const char *key,
    const char *value)
{
	char	err[256];

	ck_assert_msg(classify_config_set(cfg, section, key, value, err,
	    sizeof(err)) == 0, "[%s] %s = %s: %s", section, key, value, err);
}

static void
set_bad(struct classify_config *cfg, const char *section, const char *key,
    const char *value, const char *want)
{
	char	err[256];

	err[0] = '\0';
	ck_assert_msg(classify_config_set(cfg, section, key, value, err,
	    sizeof(err)) == -1, "[%s] %s = %s accepted", section, key, value);
	ck_assert_msg(strstr(err, want) != NULL, "error '%s' lacks '%s'", err,
	    want);
}

START_TEST(test_rules_order)
{
	struct classify_config	cfg;
	struct classify_result	res;

	classify_config_init(&cfg);
	/* Set out of order: they are checked in N order. */
	set_ok(&cfg, "classify", "rule.10", "quota => AUTHENTICATION_ERROR");
	set_ok(&cfg, "classify", "rule.3", "^quota .* => QUOTA_EXCEEDED");
	set_ok(&cfg, "classify", "rule.7", "checksum => STORAGE_ERROR");
	ck_assert_uint_eq(cfg.nrules, 3);
	ck_assert_int_eq(cfg.rules[0].n, 3);
	ck_assert_int_eq(cfg.rules[1].n, 7);
	ck_assert_int_eq(cfg.rules[2].n, 10);

	classify_text(&cfg, "{\"message\":\"quota exceeded for user\"}", &res);
	ck_assert_int_eq(res.category, CAT_QUOTA_EXCEEDED);
	ck_assert_str_eq(res.matched, "rule.3");
	ck_assert_int_eq(res.retryable, 0);
	/* Case-insensitive, and rule.3 is anchored: rule.10 takes this one. */
	classify_text(&cfg, "{\"message\":\"over QUOTA\"}", &res);
	ck_assert_int_eq(res.category, CAT_AUTHENTICATION_ERROR);
	ck_assert_str_eq(res.matched, "rule.10");
	classify_text(&cfg, "{\"message\":\"QUOTA EXCEEDED\"}", &res);
	ck_assert_str_eq(res.matched, "rule.3");
	/* Configured rules come before the built-in message words. */
	classify_text(&cfg, "{\"message\":\"bad checksum\"}", &res);
	ck_assert_int_eq(res.category, CAT_STORAGE_ERROR);
	ck_assert_str_eq(res.matched, "rule.7");
	classify_text(&cfg, "{\"message\":\"corrupt header\"}", &res);
	ck_assert_str_eq(res.matched, "message:corrupt");
	/* ...and after errno, http_status and exception. */
	classify_text(&cfg, "{\"message\":\"quota x\",\"errno\":\"EIO\"}",
	    &res);
	ck_assert_str_eq(res.matched, "errno:EIO");
	classify_text(&cfg, "{\"message\":\"quota x\",\"http_status\":503}",
	    &res);
	ck_assert_str_eq(res.matched, "http_status:503");
	classify_text(&cfg, "{\"message\":\"quota x\","
	    "\"exception\":\"TimeoutError\"}", &res);
	ck_assert_str_eq(res.matched, "exception:TimeoutError");
	/* ...and before OSError, exit codes and signals. */
	classify_text(&cfg, "{\"message\":\"quota x\","
	    "\"exception\":\"OSError\",\"exit_code\":124,\"signal\":9}", &res);
	ck_assert_str_eq(res.matched, "rule.3");

	/* Setting rule.N again replaces it in place. */
	set_ok(&cfg, "classify", "rule.3", "  ^over   =>   RATE_LIMIT_ERROR  ");
	ck_assert_uint_eq(cfg.nrules, 3);
	ck_assert_str_eq(cfg.rules[0].pattern, "^over");
	classify_text(&cfg, "{\"message\":\"over QUOTA\"}", &res);
	ck_assert_int_eq(res.category, CAT_RATE_LIMIT_ERROR);
	ck_assert_str_eq(res.matched, "rule.3");
	ck_assert_int_eq(res.retryable, 1);

	/* The last "=>" splits: a regex may contain one. */
	set_ok(&cfg, "classify", "rule.0", "a=>b => FILE_NOT_FOUND");
	classify_text(&cfg, "{\"message\":\"xa=>by\"}", &res);
	ck_assert_int_eq(res.category, CAT_FILE_NOT_FOUND);
	ck_assert_str_eq(res.matched, "rule.0");
	classify_config_free(&cfg);
}
END_TEST

START_TEST(test_rules_bad)
{
	struct classify_config	cfg;

	classify_config_init(&cfg);
	set_bad(&cfg, "classify", "rule.1", "([a-z] => NETWORK_ERROR",
	    "bad regular expression");
	set_bad(&cfg, "classify", "rule.1", "timeout => TIMEOUT",
	    "unknown category 'TIMEOUT'");
	set_bad(&cfg, "classify", "rule.1", "timeout", "expected 'REGEX =>");
	set_bad(&cfg, "classify", "rule.1", " => TIMEOUT_ERROR",
	    "empty regular expression");
	set_bad(&cfg, "classify", "rule", "x => TIMEOUT_ERROR", "unknown key");
	set_bad(&cfg, "classify", "rule.x", "x => TIMEOUT_ERROR",
	    "unknown key");
	set_bad(&cfg, "classify", "rule.-1", "x => TIMEOUT_ERROR",
	    "unknown key");
	set_bad(&cfg, "classify", "rule.10000", "x => TIMEOUT_ERROR",
	    "unknown key");
	set_bad(&cfg, "classify", "rules.1", "x => TIMEOUT_ERROR",
	    "unknown key");
	set_bad(&cfg, "classifier", "rule.1", "x => TIMEOUT_ERROR",
	    "unknown section");
	ck_assert_uint_eq(cfg.nrules, 0);
	classify_config_free(&cfg);
}
END_TEST

/* ---- strategies --------------------------------------------------------- */

START_TEST(test_strategy_defaults)
{
	static const struct {
		enum category	 cat;
		enum strategy	 primary, fallback, then;
	} want[] = {
		{ CAT_NETWORK_ERROR, STRAT_RETRY_WITH_BACKOFF,
		    STRAT_FALLBACK_STORAGE, STRAT_NONE },
		{ CAT_STORAGE_ERROR, STRAT_RETRY_WITH_BACKOFF, STRAT_ROLLBACK,
		    STRAT_FALLBACK_STORAGE },
		{ CAT_AUTHENTICATION_ERROR, STRAT_ESCALATE, STRAT_SKIP_AND_LOG,
		    STRAT_NONE },
		{ CAT_QUOTA_EXCEEDED, STRAT_ESCALATE, STRAT_SKIP_AND_LOG,
		    STRAT_NONE },
		{ CAT_FILE_NOT_FOUND, STRAT_SKIP_AND_LOG, STRAT_NONE,
		    STRAT_NONE },
		{ CAT_CORRUPTED_DATA, STRAT_ROLLBACK, STRAT_SKIP_AND_LOG,
		    STRAT_NONE },
		{ CAT_TIMEOUT_ERROR, STRAT_RETRY_WITH_BACKOFF, STRAT_NONE,
		    STRAT_NONE },
		{ CAT_RATE_LIMIT_ERROR, STRAT_RETRY_WITH_BACKOFF, STRAT_NONE,
		    STRAT_NONE },
		{ CAT_PERMISSION_ERROR, STRAT_ESCALATE, STRAT_SKIP_AND_LOG,
		    STRAT_NONE },
		{ CAT_SYSTEM_ERROR, STRAT_RETRY, STRAT_ESCALATE, STRAT_NONE },
	};
	struct classify_config	cfg;
	struct classify_result	res;
	struct erm_errobj	eo;
	size_t			i;

	classify_config_init(&cfg);
	for (i = 0; i < LEN(want); i++) {
		errobj_init(&eo);
		eo.have = EO_CATEGORY;
		eo.category = want[i].cat;
		classify(&cfg, &eo, 0, &res);
		ck_assert_int_eq(res.strategy.primary, want[i].primary);
		ck_assert_int_eq(res.strategy.fallback, want[i].fallback);
		ck_assert_int_eq(res.strategy.then, want[i].then);
		/* NULL config: the same defaults. */
		classify(NULL, &eo, 0, &res);
		ck_assert_int_eq(res.strategy.primary, want[i].primary);
		ck_assert_int_eq(res.strategy.fallback, want[i].fallback);
		ck_assert_int_eq(res.strategy.then, want[i].then);
		ck_assert_int_eq(res.retryable, 0);
	}
	classify_config_free(&cfg);
}
END_TEST

START_TEST(test_strategy_config)
{
	struct classify_config	cfg;
	struct classify_result	res;

	classify_config_init(&cfg);
	set_ok(&cfg, "strategy", "NETWORK_ERROR", "retry , escalate");
	set_ok(&cfg, "strategy", "FILE_NOT_FOUND",
	    "escalate,skip_and_log,rollback");
	set_ok(&cfg, "strategy", "STORAGE_ERROR", "rollback");
	classify_text(&cfg, "{\"errno\":\"ECONNRESET\"}", &res);
	ck_assert_int_eq(res.strategy.primary, STRAT_RETRY);
	ck_assert_int_eq(res.strategy.fallback, STRAT_ESCALATE);
	ck_assert_int_eq(res.strategy.then, STRAT_NONE);
	classify_text(&cfg, "{\"errno\":\"ENOENT\"}", &res);
	ck_assert_int_eq(res.strategy.primary, STRAT_ESCALATE);
	ck_assert_int_eq(res.strategy.fallback, STRAT_SKIP_AND_LOG);
	ck_assert_int_eq(res.strategy.then, STRAT_ROLLBACK);
	classify_text(&cfg, "{\"errno\":\"EIO\"}", &res);
	ck_assert_int_eq(res.strategy.primary, STRAT_ROLLBACK);
	ck_assert_int_eq(res.strategy.fallback, STRAT_NONE);
	ck_assert_int_eq(res.strategy.then, STRAT_NONE);

	set_bad(&cfg, "strategy", "NETWORK", "retry", "unknown category");
	set_bad(&cfg, "strategy", "NETWORK_ERROR", "retry,explode",
	    "unknown strategy 'explode'");
	set_bad(&cfg, "strategy", "NETWORK_ERROR", "", "expected primary");
	set_bad(&cfg, "strategy", "NETWORK_ERROR", "retry,,escalate",
	    "empty item");
	set_bad(&cfg, "strategy", "NETWORK_ERROR",
	    "retry,escalate,rollback,skip_and_log", "more than 3");
	/* A failed set leaves the old plan. */
	classify_text(&cfg, "{\"errno\":\"ECONNRESET\"}", &res);
	ck_assert_int_eq(res.strategy.primary, STRAT_RETRY);
	classify_config_free(&cfg);
}
END_TEST

START_TEST(test_result_json)
{
	struct classify_result	 res;
	json_t			*j, *want;

	classify_text(NULL, "{\"errno\":\"ECONNRESET\"}", &res);
	j = classify_result_to_json(&res);
	want = json_pack("{s:s, s:{s:s, s:s}, s:b, s:s}",
	    "category", "NETWORK_ERROR",
	    "strategy", "primary", "retry_with_backoff",
	    "fallback", "fallback_storage",
	    "retryable", 1, "matched", "errno:ECONNRESET");
	ck_assert_msg(json_equal(j, want), "%s", json_dumps(j, 0));
	json_decref(j);
	json_decref(want);

	classify_text(NULL, "{\"exit_code\":124}", &res);
	j = classify_result_to_json(&res);
	want = json_pack("{s:s, s:{s:s, s:n}, s:b, s:s}",
	    "category", "TIMEOUT_ERROR",
	    "strategy", "primary", "retry_with_backoff", "fallback",
	    "retryable", 1, "matched", "exit_code:124");
	ck_assert_msg(json_equal(j, want), "exit 124 result");
	json_decref(j);
	json_decref(want);
}
END_TEST

static Suite *
classify_suite(void)
{
	Suite	*s = suite_create("classify");
	TCase	*tc;

	tc = tcase_create("names");
	tcase_add_test(tc, test_category_names);
	tcase_add_test(tc, test_strategy_names);
	tcase_add_test(tc, test_catset);
	tcase_add_test(tc, test_errno_names);
	suite_add_tcase(s, tc);

	tc = tcase_create("errobj");
	tcase_add_test(tc, test_errobj_full);
	tcase_add_test(tc, test_errobj_errno_forms);
	tcase_add_loop_test(tc, test_errobj_bad, 0, (int)LEN(bad_cases));
	tcase_add_test(tc, test_errobj_limits);
	tcase_add_test(tc, test_errobj_prefix);
	tcase_add_test(tc, test_errobj_allow_other);
	suite_add_tcase(s, tc);

	tc = tcase_create("table");
	tcase_add_loop_test(tc, test_default_table, 0, (int)LEN(rows));
	tcase_add_test(tc, test_retryable);
	tcase_add_loop_test(tc, test_precedence, 0, (int)LEN(precedence));
	suite_add_tcase(s, tc);

	tc = tcase_create("config");
	tcase_add_test(tc, test_rules_order);
	tcase_add_test(tc, test_rules_bad);
	tcase_add_test(tc, test_strategy_defaults);
	tcase_add_test(tc, test_strategy_config);
	tcase_add_test(tc, test_result_json);
	suite_add_tcase(s, tc);
	return (s);
}

int
main(void)
{
	SRunner	*sr;
	int	 failed;

	sr = srunner_create(classify_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return (failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE);
}
