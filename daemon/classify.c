/*
 * Error objects, categories and strategies, and the classifier of
 * BEHAVIOUR.md section 3; see classify.h.
 */

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "classify.h"
#include "erm_proto.h"
#include "names.h"

#define LEN(a)	(sizeof(a) / sizeof((a)[0]))

static const char *const category_names[CAT_COUNT] = {
	[CAT_NETWORK_ERROR] = "NETWORK_ERROR",
	[CAT_STORAGE_ERROR] = "STORAGE_ERROR",
	[CAT_AUTHENTICATION_ERROR] = "AUTHENTICATION_ERROR",
	[CAT_QUOTA_EXCEEDED] = "QUOTA_EXCEEDED",
	[CAT_FILE_NOT_FOUND] = "FILE_NOT_FOUND",
	[CAT_CORRUPTED_DATA] = "CORRUPTED_DATA",
	[CAT_TIMEOUT_ERROR] = "TIMEOUT_ERROR",
	[CAT_RATE_LIMIT_ERROR] = "RATE_LIMIT_ERROR",
	[CAT_PERMISSION_ERROR] = "PERMISSION_ERROR",
	[CAT_SYSTEM_ERROR] = "SYSTEM_ERROR",
};

static const char *const strategy_names[STRAT_COUNT] = {
	[STRAT_RETRY_WITH_BACKOFF] = "retry_with_backoff",
	[STRAT_RETRY] = "retry",
	[STRAT_FALLBACK_STORAGE] = "fallback_storage",
	[STRAT_ROLLBACK] = "rollback",
	[STRAT_ESCALATE] = "escalate",
	[STRAT_SKIP_AND_LOG] = "skip_and_log",
};

const char *
category_name(enum category c)
{
	if (c <= CAT_NONE || c >= CAT_COUNT)
		return (NULL);
	return (category_names[c]);
}

enum category
category_from_name(const char *s)
{
	int	c = name_index(category_names, CAT_NONE + 1, CAT_COUNT, s);

	return (c == -1 ? CAT_NONE : (enum category)c);
}

const char *
strategy_name(enum strategy s)
{
	if (s <= STRAT_NONE || s >= STRAT_COUNT)
		return (NULL);
	return (strategy_names[s]);
}

enum strategy
strategy_from_name(const char *s)
{
	int	i = name_index(strategy_names, STRAT_NONE + 1, STRAT_COUNT, s);

	return (i == -1 ? STRAT_NONE : (enum strategy)i);
}

/*
 * Split s at commas into at most max words of at most wordsz-1 bytes, with
 * the spaces around each word dropped. Returns the count, or -1 with err
 * set. An all-blank s has no words.
 */
static int
split_words(const char *s, char words[][64], int max, char *err, size_t errsz)
{
	const char	*p = s, *end, *a, *b;
	int		 n = 0;

	while (*p == ' ' || *p == '\t')
		p++;
	if (*p == '\0')
		return (0);
	for (;;) {
		if ((end = strchr(p, ',')) == NULL)
			end = p + strlen(p);
		for (a = p; a < end && (*a == ' ' || *a == '\t'); a++)
			;
		for (b = end; b > a && (b[-1] == ' ' || b[-1] == '\t'); b--)
			;
		if (a == b) {
			snprintf(err, errsz, "empty item in list '%s'", s);
			return (-1);
		}
		if (n == max) {
			snprintf(err, errsz, "more than %d items in '%s'",
			    max, s);
			return (-1);
		}
		if ((size_t)(b - a) >= sizeof(words[0])) {
			snprintf(err, errsz, "'%.*s...' is too long", 32, a);
			return (-1);
		}
		memcpy(words[n], a, (size_t)(b - a));
		words[n][b - a] = '\0';
		n++;
		if (*end == '\0')
			return (n);
		p = end + 1;
	}
}

int
catset_parse(const char *s, catset *out, char *err, size_t errsz)
{
	char		words[CAT_COUNT * 2][64];
	int		n, i;
	catset		set = 0;
	enum category	c;

	if ((n = split_words(s, words, (int)LEN(words), err, errsz)) == -1)
		return (-1);
	for (i = 0; i < n; i++) {
		if ((c = category_from_name(words[i])) == CAT_NONE) {
			snprintf(err, errsz, "unknown category '%s'",
			    words[i]);
			return (-1);
		}
		set |= CATSET_BIT(c);
	}
	*out = set;
	return (0);
}

json_t *
catset_to_json(catset set)
{
	json_t	*a;
	int	 c;

	if ((a = json_array()) == NULL)
		return (NULL);
	for (c = CAT_NONE + 1; c < CAT_COUNT; c++)
		if ((set & CATSET_BIT(c)) &&
		    json_array_append_new(a, json_string(category_names[c]))) {
			json_decref(a);
			return (NULL);
		}
	return (a);
}

int
catset_from_json(const json_t *v, catset *out, const char *field,
    struct param_err *e)
{
	char		 err[128];
	size_t		 i;
	json_t		*x;
	catset		 set = 0;
	enum category	 c;

	if (json_is_string(v)) {
		if (catset_parse(json_string_value(v), out, err,
		    sizeof(err)) == -1)
			return (param_fail(e, field, "%s", err));
		return (0);
	}
	if (!json_is_array(v))
		return (param_fail(e, field,
		    "must be an array of category names"));
	json_array_foreach(v, i, x) {
		if (!json_is_string(x))
			return (param_fail(e, field,
			    "must be an array of category names"));
		if ((c = category_from_name(json_string_value(x))) == CAT_NONE)
			return (param_fail(e, field, "unknown category '%.64s'",
			    json_string_value(x)));
		set |= CATSET_BIT(c);
	}
	*out = set;
	return (0);
}

/* ---- errno names ------------------------------------------------------- */

/*
 * Every Linux errno name. Aliases (EWOULDBLOCK, EDEADLOCK, ENOTSUP) come
 * after the name they alias, so a number maps back to the usual name.
 */
#define E(x)	{ #x, x }
static const struct {
	const char	*name;
	int		 num;
} errno_names[] = {
	E(EPERM), E(ENOENT), E(ESRCH), E(EINTR), E(EIO), E(ENXIO), E(E2BIG),
	E(ENOEXEC), E(EBADF), E(ECHILD), E(EAGAIN), E(ENOMEM), E(EACCES),
	E(EFAULT), E(ENOTBLK), E(EBUSY), E(EEXIST), E(EXDEV), E(ENODEV),
	E(ENOTDIR), E(EISDIR), E(EINVAL), E(ENFILE), E(EMFILE), E(ENOTTY),
	E(ETXTBSY), E(EFBIG), E(ENOSPC), E(ESPIPE), E(EROFS), E(EMLINK),
	E(EPIPE), E(EDOM), E(ERANGE), E(EDEADLK), E(ENAMETOOLONG), E(ENOLCK),
	E(ENOSYS), E(ENOTEMPTY), E(ELOOP), E(ENOMSG), E(EIDRM), E(ECHRNG),
	E(EL2NSYNC), E(EL3HLT), E(EL3RST), E(ELNRNG), E(EUNATCH), E(ENOCSI),
	E(EL2HLT), E(EBADE), E(EBADR), E(EXFULL), E(ENOANO), E(EBADRQC),
	E(EBADSLT), E(EBFONT), E(ENOSTR), E(ENODATA), E(ETIME), E(ENOSR),
	E(ENONET), E(ENOPKG), E(EREMOTE), E(ENOLINK), E(EADV), E(ESRMNT),
	E(ECOMM), E(EPROTO), E(EMULTIHOP), E(EDOTDOT), E(EBADMSG),
	E(EOVERFLOW), E(ENOTUNIQ), E(EBADFD), E(EREMCHG), E(ELIBACC),
	E(ELIBBAD), E(ELIBSCN), E(ELIBMAX), E(ELIBEXEC), E(EILSEQ),
	E(ERESTART), E(ESTRPIPE), E(EUSERS), E(ENOTSOCK), E(EDESTADDRREQ),
	E(EMSGSIZE), E(EPROTOTYPE), E(ENOPROTOOPT), E(EPROTONOSUPPORT),
	E(ESOCKTNOSUPPORT), E(EOPNOTSUPP), E(EPFNOSUPPORT), E(EAFNOSUPPORT),
	E(EADDRINUSE), E(EADDRNOTAVAIL), E(ENETDOWN), E(ENETUNREACH),
	E(ENETRESET), E(ECONNABORTED), E(ECONNRESET), E(ENOBUFS), E(EISCONN),
	E(ENOTCONN), E(ESHUTDOWN), E(ETOOMANYREFS), E(ETIMEDOUT),
	E(ECONNREFUSED), E(EHOSTDOWN), E(EHOSTUNREACH), E(EALREADY),
	E(EINPROGRESS), E(ESTALE), E(EUCLEAN), E(ENOTNAM), E(ENAVAIL),
	E(EISNAM), E(EREMOTEIO), E(EDQUOT), E(ENOMEDIUM), E(EMEDIUMTYPE),
	E(ECANCELED), E(ENOKEY), E(EKEYEXPIRED), E(EKEYREVOKED),
	E(EKEYREJECTED), E(EOWNERDEAD), E(ENOTRECOVERABLE), E(ERFKILL),
	E(EHWPOISON),
	E(EWOULDBLOCK), E(EDEADLOCK), E(ENOTSUP),
};
#undef E

/*
 * errno_names in name order, for a binary search: error.report looks a
 * name up per request, and scanning the 134 names took 3% of the loop.
 */
_Static_assert(LEN(errno_names) <= 256, "by_name holds uint8_t indices");
static uint8_t		by_name[LEN(errno_names)];
static pthread_once_t	by_name_once = PTHREAD_ONCE_INIT;

static int
by_name_cmp(const void *a, const void *b)
{
	return (strcmp(errno_names[*(const uint8_t *)a].name,
	    errno_names[*(const uint8_t *)b].name));
}

static void
by_name_sort(void)
{
	size_t	i;

	for (i = 0; i < LEN(errno_names); i++)
		by_name[i] = (uint8_t)i;
	qsort(by_name, LEN(by_name), sizeof(by_name[0]), by_name_cmp);
}

int
errno_from_name(const char *name)
{
	size_t	lo = 0, hi = LEN(by_name), mid;
	int	c;

	pthread_once(&by_name_once, by_name_sort);
	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if ((c = strcmp(name, errno_names[by_name[mid]].name)) == 0)
			return (errno_names[by_name[mid]].num);
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return (-1);
}

const char *
errno_to_name(int num)
{
	size_t	i;

	for (i = 0; i < LEN(errno_names); i++)
		if (errno_names[i].num == num)
			return (errno_names[i].name);
	return (NULL);
}

/* ---- error objects ----------------------------------------------------- */

void
errobj_init(struct erm_errobj *eo)
{
	memset(eo, 0, sizeof(*eo));
}

void
errobj_clear(struct erm_errobj *eo)
{
	free(eo->message);
	errobj_init(eo);
}

static const char *const errobj_members[] = {
	"category", "errno", "http_status", "exit_code", "signal",
	"exception", "message", "retry_after_ms", NULL
};

/*
 * Name the failing field "prefix.name" when there is a prefix. A name too
 * long for param_err is cut; it stays recognisable.
 */
static int
fail_at(struct param_err *e, const char *prefix, const char *name,
    const char *reason)
{
	char	f[sizeof(e->field)];

	if (prefix == NULL || *prefix == '\0')
		return (param_fail(e, name, "%s", reason));
	if (snprintf(f, sizeof(f), "%s.%s", prefix, name) >= (int)sizeof(f))
		f[sizeof(f) - 1] = '\0';
	return (param_fail(e, f, "%s", reason));
}

/* Re-aim a failure reported by a params.h getter at prefix.field. */
static int
refail_at(struct param_err *e, const char *prefix)
{
	char	name[sizeof(e->field)], reason[sizeof(e->reason)];

	memcpy(name, e->field, sizeof(name));
	memcpy(reason, e->reason, sizeof(reason));
	return (fail_at(e, prefix, name, reason));
}

static int
eo_int(const json_t *obj, const char *prefix, const char *key, int64_t min,
    int64_t max, int64_t *out, struct param_err *e)
{
	if (param_int(obj, key, min, max, 0, out, e) == -1)
		return (refail_at(e, prefix));
	return (0);
}

static int
eo_str(const json_t *obj, const char *prefix, const char *key, size_t maxlen,
    const char **out, struct param_err *e)
{
	if (param_str(obj, key, maxlen, out, e) == -1)
		return (refail_at(e, prefix));
	return (0);
}

int
errobj_from_json(const json_t *obj, struct erm_errobj *eo,
    int allow_other_members, struct param_err *e)
{
	return (errobj_from_json_at(obj, NULL, eo, allow_other_members, e));
}

int
errobj_from_json_at(const json_t *obj, const char *prefix,
    struct erm_errobj *eo, int allow_other_members, struct param_err *e)
{
	char		 r[160];
	const char	*s;
	json_t		*v;
	int64_t		 n;
	int		 num;

	errobj_init(eo);
	if (!json_is_object(obj))
		return (param_fail(e, prefix != NULL ? prefix : "error",
		    "must be an object"));
	if (!allow_other_members && params_only(obj, errobj_members, e) == -1)
		return (refail_at(e, prefix));

	if (eo_str(obj, prefix, "category", 64, &s, e) == -1)
		goto fail;
	if (s != NULL) {
		if ((eo->category = category_from_name(s)) == CAT_NONE) {
			snprintf(r, sizeof(r), "unknown category '%.64s'", s);
			fail_at(e, prefix, "category", r);
			goto fail;
		}
		eo->have |= EO_CATEGORY;
	}

	if ((v = json_object_get(obj, "errno")) != NULL) {
		if (json_is_string(v)) {
			s = json_string_value(v);
			if (json_string_length(v) != strlen(s) ||
			    (num = errno_from_name(s)) == -1) {
				snprintf(r, sizeof(r),
				    "unknown errno name '%.32s'", s);
				fail_at(e, prefix, "errno", r);
				goto fail;
			}
			eo->err_no = num;
			snprintf(eo->errno_name, sizeof(eo->errno_name), "%s",
			    s);
		} else if (json_is_integer(v)) {
			if (eo_int(obj, prefix, "errno", 1, 4095, &n, e) == -1)
				goto fail;
			eo->err_no = (int)n;
			if ((s = errno_to_name(eo->err_no)) != NULL)
				snprintf(eo->errno_name,
				    sizeof(eo->errno_name), "%s", s);
		} else {
			fail_at(e, prefix, "errno",
			    "must be an integer or an errno name");
			goto fail;
		}
		eo->have |= EO_ERRNO;
	}

	if (json_object_get(obj, "http_status") != NULL) {
		if (eo_int(obj, prefix, "http_status", 100, 599, &n, e) == -1)
			goto fail;
		eo->http_status = (int)n;
		eo->have |= EO_HTTP_STATUS;
	}
	if (json_object_get(obj, "exit_code") != NULL) {
		if (eo_int(obj, prefix, "exit_code", 0, 255, &n, e) == -1)
			goto fail;
		eo->exit_code = (int)n;
		eo->have |= EO_EXIT_CODE;
	}
	if (json_object_get(obj, "signal") != NULL) {
		if (eo_int(obj, prefix, "signal", 1, 64, &n, e) == -1)
			goto fail;
		eo->signal = (int)n;
		eo->have |= EO_SIGNAL;
	}
	if (eo_str(obj, prefix, "exception", ERROBJ_EXCEPTION_MAX, &s,
	    e) == -1)
		goto fail;
	if (s != NULL) {
		if (*s == '\0') {
			fail_at(e, prefix, "exception", "must not be empty");
			goto fail;
		}
		snprintf(eo->exception, sizeof(eo->exception), "%s", s);
		eo->have |= EO_EXCEPTION;
	}
	if (eo_str(obj, prefix, "message", ERROBJ_MESSAGE_MAX, &s, e) == -1)
		goto fail;
	if (s != NULL) {
		if ((eo->message = strdup(s)) == NULL) {
			fail_at(e, prefix, "message", "out of memory");
			goto fail;
		}
		eo->have |= EO_MESSAGE;
	}
	if (json_object_get(obj, "retry_after_ms") != NULL) {
		if (eo_int(obj, prefix, "retry_after_ms", 0, INT64_MAX / 4, &n,
		    e) == -1)
			goto fail;
		eo->retry_after_ms = n;
		eo->have |= EO_RETRY_AFTER;
	}

	if (eo->have == 0) {
		param_fail(e, prefix != NULL ? prefix : "error",
		    "an error object needs at least one of category, errno, "
		    "http_status, exit_code, signal, exception, message, "
		    "retry_after_ms");
		goto fail;
	}
	return (0);
fail:
	errobj_clear(eo);
	return (-1);
}

json_t *
errobj_to_json(const struct erm_errobj *eo)
{
	json_t	*o;
	int	 rc = 0;

	if ((o = json_object()) == NULL)
		return (NULL);
	if (eo->have & EO_CATEGORY)
		rc |= json_object_set_new(o, "category",
		    json_string(category_name(eo->category)));
	if (eo->have & EO_ERRNO)
		rc |= json_object_set_new(o, "errno",
		    eo->errno_name[0] != '\0' ? json_string(eo->errno_name) :
		    json_integer(eo->err_no));
	if (eo->have & EO_HTTP_STATUS)
		rc |= json_object_set_new(o, "http_status",
		    json_integer(eo->http_status));
	if (eo->have & EO_EXIT_CODE)
		rc |= json_object_set_new(o, "exit_code",
		    json_integer(eo->exit_code));
	if (eo->have & EO_SIGNAL)
		rc |= json_object_set_new(o, "signal",
		    json_integer(eo->signal));
	if (eo->have & EO_EXCEPTION)
		rc |= json_object_set_new(o, "exception",
		    json_string(eo->exception));
	if ((eo->have & EO_MESSAGE) && eo->message != NULL)
		rc |= json_object_set_new(o, "message",
		    json_string(eo->message));
	if (eo->have & EO_RETRY_AFTER)
		rc |= json_object_set_new(o, "retry_after_ms",
		    json_integer(eo->retry_after_ms));
	if (rc != 0) {
		json_decref(o);
		return (NULL);
	}
	return (o);
}

char *
errobj_text(const struct erm_errobj *eo)
{
	struct erm_buf	b = { NULL, 0, 0, 1 << 20 };
	int		ok;

	ok = erm_jw_begin(&b, NULL) == 0;
	if (ok && (eo->have & EO_CATEGORY))
		ok = erm_jw_str(&b, "category", category_name(eo->category)) ==
		    0;
	if (ok && (eo->have & EO_ERRNO))
		ok = (eo->errno_name[0] != '\0' ? erm_jw_str(&b, "errno",
		    eo->errno_name) : erm_jw_int(&b, "errno", eo->err_no)) == 0;
	if (ok && (eo->have & EO_HTTP_STATUS))
		ok = erm_jw_int(&b, "http_status", eo->http_status) == 0;
	if (ok && (eo->have & EO_EXIT_CODE))
		ok = erm_jw_int(&b, "exit_code", eo->exit_code) == 0;
	if (ok && (eo->have & EO_SIGNAL))
		ok = erm_jw_int(&b, "signal", eo->signal) == 0;
	if (ok && (eo->have & EO_EXCEPTION))
		ok = erm_jw_str(&b, "exception", eo->exception) == 0;
	if (ok && (eo->have & EO_MESSAGE) && eo->message != NULL)
		ok = erm_jw_str(&b, "message", eo->message) == 0;
	if (ok && (eo->have & EO_RETRY_AFTER))
		ok = erm_jw_int(&b, "retry_after_ms", eo->retry_after_ms) == 0;
	return (erm_buf_string(&b, ok && erm_jw_end(&b) == 0));
}

/* ---- the default table of BEHAVIOUR.md section 3 ----------------------- */

static const struct {
	int		 num;
	enum category	 cat;
} errno_table[] = {
	{ ECONNREFUSED, CAT_NETWORK_ERROR },
	{ ECONNRESET, CAT_NETWORK_ERROR },
	{ ECONNABORTED, CAT_NETWORK_ERROR },
	{ ENETUNREACH, CAT_NETWORK_ERROR },
	{ EHOSTUNREACH, CAT_NETWORK_ERROR },
	{ ENETDOWN, CAT_NETWORK_ERROR },
	{ ENOTCONN, CAT_NETWORK_ERROR },
	{ EPIPE, CAT_NETWORK_ERROR },
	{ ETIMEDOUT, CAT_TIMEOUT_ERROR },
	{ ENOSPC, CAT_STORAGE_ERROR },
	{ EIO, CAT_STORAGE_ERROR },
	{ EROFS, CAT_STORAGE_ERROR },
	{ EDQUOT, CAT_QUOTA_EXCEEDED },
	{ EACCES, CAT_PERMISSION_ERROR },
	{ EPERM, CAT_PERMISSION_ERROR },
	{ ENOENT, CAT_FILE_NOT_FOUND },
	{ ENOTDIR, CAT_FILE_NOT_FOUND },
	{ EBADMSG, CAT_CORRUPTED_DATA },
	{ EILSEQ, CAT_CORRUPTED_DATA },
	{ ENOMEM, CAT_SYSTEM_ERROR },
	{ EMFILE, CAT_SYSTEM_ERROR },
	{ ENFILE, CAT_SYSTEM_ERROR },
	{ EAGAIN, CAT_SYSTEM_ERROR },
};

static const struct {
	int		 status;
	enum category	 cat;
} http_table[] = {
	{ 502, CAT_NETWORK_ERROR },
	{ 503, CAT_NETWORK_ERROR },
	{ 408, CAT_TIMEOUT_ERROR },
	{ 504, CAT_TIMEOUT_ERROR },
	{ 500, CAT_STORAGE_ERROR },
	{ 507, CAT_QUOTA_EXCEEDED },
	{ 413, CAT_QUOTA_EXCEEDED },
	{ 401, CAT_AUTHENTICATION_ERROR },
	{ 407, CAT_AUTHENTICATION_ERROR },
	{ 403, CAT_PERMISSION_ERROR },
	{ 404, CAT_FILE_NOT_FOUND },
	{ 410, CAT_FILE_NOT_FOUND },
	{ 422, CAT_CORRUPTED_DATA },
	{ 429, CAT_RATE_LIMIT_ERROR },
};

static const struct {
	const char	*name;
	enum category	 cat;
} exception_table[] = {
	{ "ConnectionError", CAT_NETWORK_ERROR },
	{ "ConnectionRefusedError", CAT_NETWORK_ERROR },
	{ "ConnectionResetError", CAT_NETWORK_ERROR },
	{ "ConnectionAbortedError", CAT_NETWORK_ERROR },
	{ "BrokenPipeError", CAT_NETWORK_ERROR },
	{ "TimeoutError", CAT_TIMEOUT_ERROR },
	{ "AuthenticationError", CAT_AUTHENTICATION_ERROR },
	{ "PermissionError", CAT_PERMISSION_ERROR },
	{ "FileNotFoundError", CAT_FILE_NOT_FOUND },
	{ "UnicodeDecodeError", CAT_CORRUPTED_DATA },
	{ "JSONDecodeError", CAT_CORRUPTED_DATA },
};

/*
 * "OSError without a better match": Python's OSError and its two old
 * aliases. They are the weakest exception match, see classify().
 */
static const char *const oserror_names[] = {
	"OSError", "IOError", "EnvironmentError",
};

/* The built-in message rules, after the configured ones. */
static const struct {
	const char	*word;
	enum category	 cat;
} message_table[] = {
	{ "checksum", CAT_CORRUPTED_DATA },
	{ "corrupt", CAT_CORRUPTED_DATA },
};

static const struct strategy_plan default_plan[CAT_COUNT] = {
	[CAT_NETWORK_ERROR] = { STRAT_RETRY_WITH_BACKOFF,
	    STRAT_FALLBACK_STORAGE, STRAT_NONE },
	[CAT_STORAGE_ERROR] = { STRAT_RETRY_WITH_BACKOFF, STRAT_ROLLBACK,
	    STRAT_FALLBACK_STORAGE },
	[CAT_AUTHENTICATION_ERROR] = { STRAT_ESCALATE, STRAT_SKIP_AND_LOG,
	    STRAT_NONE },
	[CAT_QUOTA_EXCEEDED] = { STRAT_ESCALATE, STRAT_SKIP_AND_LOG,
	    STRAT_NONE },
	[CAT_FILE_NOT_FOUND] = { STRAT_SKIP_AND_LOG, STRAT_NONE, STRAT_NONE },
	[CAT_CORRUPTED_DATA] = { STRAT_ROLLBACK, STRAT_SKIP_AND_LOG,
	    STRAT_NONE },
	[CAT_TIMEOUT_ERROR] = { STRAT_RETRY_WITH_BACKOFF, STRAT_NONE,
	    STRAT_NONE },
	[CAT_RATE_LIMIT_ERROR] = { STRAT_RETRY_WITH_BACKOFF, STRAT_NONE,
	    STRAT_NONE },
	[CAT_PERMISSION_ERROR] = { STRAT_ESCALATE, STRAT_SKIP_AND_LOG,
	    STRAT_NONE },
	[CAT_SYSTEM_ERROR] = { STRAT_RETRY, STRAT_ESCALATE, STRAT_NONE },
};

/* ---- configuration ----------------------------------------------------- */

void
classify_config_init(struct classify_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	memcpy(cfg->plan, default_plan, sizeof(cfg->plan));
}

static void
rule_free(struct classify_rule *r)
{
	regfree(&r->re);
	free(r->pattern);
}

void
classify_config_free(struct classify_config *cfg)
{
	size_t	i;

	for (i = 0; i < cfg->nrules; i++)
		rule_free(&cfg->rules[i]);
	free(cfg->rules);
	memset(cfg, 0, sizeof(*cfg));
}

static void
trim(char *s)
{
	char	*p = s, *end;

	while (*p == ' ' || *p == '\t')
		p++;
	end = p + strlen(p);
	while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	memmove(s, p, (size_t)(end - p));
	s[end - p] = '\0';
}

/* Strictly a decimal 0..CLASSIFY_RULE_MAX_N, no sign, no spaces. */
static int
rule_number(const char *s)
{
	int	n = 0;

	if (*s == '\0' || strlen(s) > 4)
		return (-1);
	for (; *s != '\0'; s++) {
		if (*s < '0' || *s > '9')
			return (-1);
		n = n * 10 + (*s - '0');
	}
	return (n);
}

static int
set_rule(struct classify_config *cfg, const char *key, const char *value,
    char *err, size_t errsz)
{
	struct classify_rule	 r, *nr;
	char			*buf = NULL, *arrow, *p;
	size_t			 i;
	int			 n, rc;
	char			 rerr[128];

	if (strncmp(key, "rule.", 5) != 0 ||
	    (n = rule_number(key + 5)) == -1) {
		snprintf(err, errsz, "unknown key '%s' (expected rule.N, N "
		    "0..%d)", key, CLASSIFY_RULE_MAX_N);
		return (-1);
	}
	if ((buf = strdup(value)) == NULL) {
		snprintf(err, errsz, "out of memory");
		return (-1);
	}
	/* The last "=>" splits, so a regex may itself contain "=>". */
	arrow = NULL;
	for (p = buf; (p = strstr(p, "=>")) != NULL; p += 2)
		arrow = p;
	if (arrow == NULL) {
		snprintf(err, errsz, "%s: expected 'REGEX => CATEGORY'", key);
		goto fail;
	}
	*arrow = '\0';
	trim(buf);
	trim(arrow + 2);
	memset(&r, 0, sizeof(r));
	r.n = n;
	if ((r.category = category_from_name(arrow + 2)) == CAT_NONE) {
		snprintf(err, errsz, "%s: unknown category '%s'", key,
		    arrow + 2);
		goto fail;
	}
	if (*buf == '\0') {
		snprintf(err, errsz, "%s: empty regular expression", key);
		goto fail;
	}
	if (strlen(buf) > CLASSIFY_REGEX_MAX) {
		snprintf(err, errsz, "%s: regular expression longer than %d "
		    "bytes", key, CLASSIFY_REGEX_MAX);
		goto fail;
	}
	if ((rc = regcomp(&r.re, buf, REG_EXTENDED | REG_ICASE |
	    REG_NOSUB)) != 0) {
		regerror(rc, &r.re, rerr, sizeof(rerr));
		snprintf(err, errsz, "%s: bad regular expression '%s': %s",
		    key, buf, rerr);
		goto fail;
	}
	r.pattern = buf;
	buf = NULL;

	for (i = 0; i < cfg->nrules; i++)
		if (cfg->rules[i].n >= n)
			break;
	if (i < cfg->nrules && cfg->rules[i].n == n) {
		rule_free(&cfg->rules[i]);
		cfg->rules[i] = r;
		return (0);
	}
	if (cfg->nrules == CLASSIFY_MAX_RULES) {
		snprintf(err, errsz, "%s: more than %d rules", key,
		    CLASSIFY_MAX_RULES);
		rule_free(&r);
		return (-1);
	}
	if ((nr = reallocarray(cfg->rules, cfg->nrules + 1,
	    sizeof(*nr))) == NULL) {
		snprintf(err, errsz, "out of memory");
		rule_free(&r);
		return (-1);
	}
	cfg->rules = nr;
	memmove(&nr[i + 1], &nr[i], (cfg->nrules - i) * sizeof(*nr));
	nr[i] = r;
	cfg->nrules++;
	return (0);
fail:
	free(buf);
	return (-1);
}

static int
set_strategy(struct classify_config *cfg, const char *key, const char *value,
    char *err, size_t errsz)
{
	char			 words[4][64];
	enum category		 c;
	enum strategy		 s[3] = { STRAT_NONE, STRAT_NONE, STRAT_NONE };
	int			 n, i;

	if ((c = category_from_name(key)) == CAT_NONE) {
		snprintf(err, errsz, "unknown category '%s'", key);
		return (-1);
	}
	if ((n = split_words(value, words, 3, err, errsz)) == -1)
		return (-1);
	if (n == 0) {
		snprintf(err, errsz, "%s: expected primary[,fallback[,then]]",
		    key);
		return (-1);
	}
	for (i = 0; i < n; i++)
		if ((s[i] = strategy_from_name(words[i])) == STRAT_NONE) {
			snprintf(err, errsz, "%s: unknown strategy '%s'", key,
			    words[i]);
			return (-1);
		}
	cfg->plan[c].primary = s[0];
	cfg->plan[c].fallback = s[1];
	cfg->plan[c].then = s[2];
	return (0);
}

int
classify_config_set(struct classify_config *cfg, const char *section,
    const char *key, const char *value, char *err, size_t errsz)
{
	if (strcmp(section, "classify") == 0)
		return (set_rule(cfg, key, value, err, errsz));
	if (strcmp(section, "strategy") == 0)
		return (set_strategy(cfg, key, value, err, errsz));
	snprintf(err, errsz, "unknown section '%s'", section);
	return (-1);
}

/* ---- classification ---------------------------------------------------- */

/* The exception's type name without a module path: "a.b.C" -> "C". */
static const char *
exception_base(const char *name)
{
	const char	*dot = strrchr(name, '.');

	return (dot != NULL && dot[1] != '\0' ? dot + 1 : name);
}

static void	result_set(struct classify_result *, enum category,
		    const char *, ...) __attribute__((format(printf, 3, 4)));

/* The category and the name of the rule that gave it. */
static void
result_set(struct classify_result *res, enum category c, const char *fmt, ...)
{
	va_list	ap;

	res->category = c;
	va_start(ap, fmt);
	vsnprintf(res->matched, sizeof(res->matched), fmt, ap);
	va_end(ap);
}

/*
 * The first rule that matches wins:
 *   1. an explicit category                          "category"
 *   2. errno in the table                            "errno:ECONNRESET"
 *   3. http_status in the table                      "http_status:503"
 *   4. exception in the table (not OSError)          "exception:TimeoutError"
 *   5. configured rules on the message, in N order   "rule.3"
 *   6. built-in message words checksum, corrupt      "message:checksum"
 *   7. exception OSError / IOError / EnvironmentError "exception:OSError"
 *   8. exit_code 124                                 "exit_code:124"
 *   9. a signal                                      "signal:9"
 *  10. SYSTEM_ERROR                                  "default"
 * A value that is present but not in its table (errno EINVAL, HTTP 418,
 * exception ValueError, exit code 1) does not stop the search: the next
 * level is tried and, if nothing matches, the default applies. OSError is
 * placed after the message rules because BEHAVIOUR.md gives it only
 * "without a better match": a message saying "checksum" says more than the
 * exception's base class does.
 */
static void
classify_match(const struct classify_config *cfg, const struct erm_errobj *eo,
    struct classify_result *res)
{
	const char	*base;
	size_t		 i;

	if (eo->have & EO_CATEGORY) {
		result_set(res, eo->category, "category");
		return;
	}
	if (eo->have & EO_ERRNO)
		for (i = 0; i < LEN(errno_table); i++)
			if (errno_table[i].num == eo->err_no) {
				if (eo->errno_name[0] != '\0')
					result_set(res, errno_table[i].cat,
					    "errno:%s", eo->errno_name);
				else
					result_set(res, errno_table[i].cat,
					    "errno:%d", eo->err_no);
				return;
			}
	if (eo->have & EO_HTTP_STATUS)
		for (i = 0; i < LEN(http_table); i++)
			if (http_table[i].status == eo->http_status) {
				result_set(res, http_table[i].cat,
				    "http_status:%d", eo->http_status);
				return;
			}
	if (eo->have & EO_EXCEPTION) {
		base = exception_base(eo->exception);
		for (i = 0; i < LEN(exception_table); i++)
			if (strcmp(base, exception_table[i].name) == 0) {
				result_set(res, exception_table[i].cat,
				    "exception:%s", eo->exception);
				return;
			}
	}
	if ((eo->have & EO_MESSAGE) && eo->message != NULL) {
		for (i = 0; cfg != NULL && i < cfg->nrules; i++)
			if (regexec(&cfg->rules[i].re, eo->message, 0, NULL,
			    0) == 0) {
				result_set(res, cfg->rules[i].category,
				    "rule.%d", cfg->rules[i].n);
				return;
			}
		for (i = 0; i < LEN(message_table); i++)
			if (strcasestr(eo->message, message_table[i].word) !=
			    NULL) {
				result_set(res, message_table[i].cat,
				    "message:%s", message_table[i].word);
				return;
			}
	}
	if (eo->have & EO_EXCEPTION) {
		base = exception_base(eo->exception);
		for (i = 0; i < LEN(oserror_names); i++)
			if (strcmp(base, oserror_names[i]) == 0) {
				result_set(res, CAT_STORAGE_ERROR,
				    "exception:%s", eo->exception);
				return;
			}
	}
	if ((eo->have & EO_EXIT_CODE) && eo->exit_code == 124) {
		result_set(res, CAT_TIMEOUT_ERROR, "exit_code:%d", 124);
		return;
	}
	if (eo->have & EO_SIGNAL) {
		result_set(res, CAT_SYSTEM_ERROR, "signal:%d", eo->signal);
		return;
	}
	result_set(res, CAT_SYSTEM_ERROR, "default");
}

void
classify(const struct classify_config *cfg, const struct erm_errobj *eo,
    catset retry_on, struct classify_result *res)
{
	memset(res, 0, sizeof(*res));
	classify_match(cfg, eo, res);
	res->strategy = cfg != NULL ? cfg->plan[res->category] :
	    default_plan[res->category];
	res->retryable = (retry_on & CATSET_BIT(res->category)) != 0;
}

json_t *
classify_result_to_json(const struct classify_result *res)
{
	const char	*fb = strategy_name(res->strategy.fallback);

	return (json_pack("{s:s, s:{s:s, s:o}, s:b, s:s}",
	    "category", category_name(res->category),
	    "strategy",
	    "primary", strategy_name(res->strategy.primary),
	    "fallback", fb != NULL ? json_string(fb) : json_null(),
	    "retryable", res->retryable,
	    "matched", res->matched));
}
