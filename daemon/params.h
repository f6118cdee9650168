/*
 * Strict unpacking of request params: every member known, every type and
 * range checked, and a failure names the member (PROTOCOL.md §2: typos must
 * not silently change behaviour). Handlers turn a failed check into -32602
 * with data {"field", "reason"}.
 */
#ifndef PARAMS_H
#define PARAMS_H

#include <stdint.h>

#include <jansson.h>

struct param_err {
	char	field[64];
	char	reason[160];
};

/* Fill e and return -1; for use as `return (param_fail(e, ...));`. */
int	param_fail(struct param_err *e, const char *field, const char *fmt, ...)
	    __attribute__((format(printf, 3, 4)));

/* -1 naming the first member of obj not in the NULL-terminated list. */
int	params_only(const json_t *obj, const char *const *allowed,
	    struct param_err *e);

/*
 * Typed getters. A missing member leaves *out at def (set by the getter) and
 * succeeds unless the getter is a _req variant. Integers must be JSON
 * integers within [min, max]; numbers accept integers and reals.
 */
int	param_int(const json_t *obj, const char *key, int64_t min, int64_t max,
	    int64_t def, int64_t *out, struct param_err *e);
int	param_int_req(const json_t *obj, const char *key, int64_t min,
	    int64_t max, int64_t *out, struct param_err *e);
int	param_bool(const json_t *obj, const char *key, int def, int *out,
	    struct param_err *e);
/* *out is borrowed from obj; NULL when absent and not required. */
int	param_str(const json_t *obj, const char *key, size_t maxlen,
	    const char **out, struct param_err *e);
int	param_str_req(const json_t *obj, const char *key, size_t maxlen,
	    const char **out, struct param_err *e);
/* One of a NULL-terminated list of words; *out is its index, or def. */
int	param_enum(const json_t *obj, const char *key, const char *const *words,
	    int def, int *out, struct param_err *e);

#endif
