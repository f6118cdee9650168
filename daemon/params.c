/* Strict request-param getters; see params.h. */

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "params.h"

int
param_fail(struct param_err *e, const char *field, const char *fmt, ...)
{
	va_list	ap;

	snprintf(e->field, sizeof(e->field), "%s", field);
	va_start(ap, fmt);
	vsnprintf(e->reason, sizeof(e->reason), fmt, ap);
	va_end(ap);
	return (-1);
}

int
params_only(const json_t *obj, const char *const *allowed, struct param_err *e)
{
	const char	*key;
	json_t		*v;
	size_t		 i;

	json_object_foreach((json_t *)obj, key, v) {
		for (i = 0; allowed[i] != NULL; i++)
			if (strcmp(key, allowed[i]) == 0)
				break;
		if (allowed[i] == NULL)
			return (param_fail(e, key, "unknown member"));
	}
	return (0);
}

static int
get_int(const json_t *obj, const char *key, int64_t min, int64_t max,
    int64_t *out, struct param_err *e, int required)
{
	json_t		*v = json_object_get(obj, key);
	json_int_t	 n;

	if (v == NULL)
		return (required ? param_fail(e, key, "missing") : 0);
	if (!json_is_integer(v))
		return (param_fail(e, key, "must be an integer"));
	n = json_integer_value(v);
	if (n < min || n > max)
		return (param_fail(e, key, "must be between %lld and %lld",
		    (long long)min, (long long)max));
	*out = n;
	return (0);
}

int
param_int(const json_t *obj, const char *key, int64_t min, int64_t max,
    int64_t def, int64_t *out, struct param_err *e)
{
	*out = def;
	return (get_int(obj, key, min, max, out, e, 0));
}

int
param_int_req(const json_t *obj, const char *key, int64_t min, int64_t max,
    int64_t *out, struct param_err *e)
{
	return (get_int(obj, key, min, max, out, e, 1));
}

int
param_bool(const json_t *obj, const char *key, int def, int *out,
    struct param_err *e)
{
	json_t	*v = json_object_get(obj, key);

	*out = def;
	if (v == NULL)
		return (0);
	if (!json_is_boolean(v))
		return (param_fail(e, key, "must be true or false"));
	*out = json_is_true(v);
	return (0);
}

static int
get_str(const json_t *obj, const char *key, size_t maxlen, const char **out,
    struct param_err *e, int required)
{
	json_t	*v = json_object_get(obj, key);

	*out = NULL;
	if (v == NULL)
		return (required ? param_fail(e, key, "missing") : 0);
	if (!json_is_string(v))
		return (param_fail(e, key, "must be a string"));
	if (json_string_length(v) > maxlen)
		return (param_fail(e, key, "longer than %zu bytes", maxlen));
	if (strlen(json_string_value(v)) != json_string_length(v))
		return (param_fail(e, key, "contains a NUL byte"));
	*out = json_string_value(v);
	return (0);
}

int
param_str(const json_t *obj, const char *key, size_t maxlen, const char **out,
    struct param_err *e)
{
	return (get_str(obj, key, maxlen, out, e, 0));
}

int
param_str_req(const json_t *obj, const char *key, size_t maxlen,
    const char **out, struct param_err *e)
{
	return (get_str(obj, key, maxlen, out, e, 1));
}

int
param_enum(const json_t *obj, const char *key, const char *const *words,
    int def, int *out, struct param_err *e)
{
	const char	*s;
	int		 i;

	*out = def;
	if (get_str(obj, key, 64, &s, e, 0) == -1)
		return (-1);
	if (s == NULL)
		return (0);
	for (i = 0; words[i] != NULL; i++)
		if (strcmp(s, words[i]) == 0) {
			*out = i;
			return (0);
		}
	return (param_fail(e, key, "unknown value '%s'", s));
}
