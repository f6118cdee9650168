/* Typed option tables: parse, unpack and render; see opts.h. */

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "classify.h"
#include "config.h"
#include "opts.h"

#define FIELD(o, base)	((void *)((char *)(base) + (o)->off))
#define CFIELD(o, base)	((const void *)((const char *)(base) + (o)->off))

int
opt_find(const struct opt *tab, const char *name)
{
	int	i;

	for (i = 0; tab[i].name != NULL; i++)
		if (strcmp(tab[i].name, name) == 0)
			return (i);
	return (-1);
}

static int
range_err(const struct opt *o, char *err, size_t errsz)
{
	snprintf(err, errsz, "%s must be between %.15g and %.15g", o->name,
	    o->min, o->max);
	return (-1);
}

static void
words_list(const struct opt *o, char *buf, size_t bufsz)
{
	size_t	i, len = 0;

	buf[0] = '\0';
	for (i = 0; o->words[i] != NULL && len < bufsz; i++)
		len += (size_t)snprintf(buf + len, bufsz - len, "%s%s",
		    i > 0 ? ", " : "", o->words[i]);
}

/* A bound as a long long: INT64 rows may use the full range. */
static long long
bound(double d)
{
	if (d >= 9223372036854775807.0)
		return (INT64_MAX);
	if (d <= -9223372036854775808.0)
		return (INT64_MIN);
	return ((long long)d);
}

/*
 * conf: the messages of config.c's fixed sections ("N is out of range
 * (MIN to MAX)", "is not one of A, B") instead of the option tables' own.
 */
static int
parse_value(const struct opt *o, void *dst, const char *value, int conf,
    char *err, size_t errsz)
{
	char		 words[128], *end;
	long long	 ll;
	double		 d;
	catset		 set;
	int		 i;

	switch (o->type) {
	case OPT_INT:
		errno = 0;
		ll = strtoll(value, &end, 10);
		if (*value == '\0' || *end != '\0' || errno != 0) {
			snprintf(err, errsz, "%s: '%s' is not an integer",
			    o->name, value);
			return (-1);
		}
		if ((double)ll < o->min || (double)ll > o->max) {
			if (!conf)
				return (range_err(o, err, errsz));
			snprintf(err, errsz, "%s: %lld is out of range (%lld "
			    "to %lld)", o->name, ll, bound(o->min),
			    bound(o->max));
			return (-1);
		}
		*(int64_t *)FIELD(o, dst) = ll;
		return (0);
	case OPT_NUM:
		errno = 0;
		d = strtod(value, &end);
		if (*value == '\0' || *end != '\0' || errno != 0 ||
		    !isfinite(d)) {
			snprintf(err, errsz, "%s: '%s' is not a number",
			    o->name, value);
			return (-1);
		}
		if (!(d >= o->min && d <= o->max)) {
			if (!conf)
				return (range_err(o, err, errsz));
			snprintf(err, errsz, "%s: %.15g is out of range (%.15g "
			    "to %.15g)", o->name, d, o->min, o->max);
			return (-1);
		}
		*(double *)FIELD(o, dst) = d;
		return (0);
	case OPT_BOOL:
		if (strcmp(value, "true") == 0 || strcmp(value, "yes") == 0 ||
		    strcmp(value, "on") == 0 || strcmp(value, "1") == 0)
			i = 1;
		else if (strcmp(value, "false") == 0 ||
		    strcmp(value, "no") == 0 || strcmp(value, "off") == 0 ||
		    strcmp(value, "0") == 0)
			i = 0;
		else {
			snprintf(err, errsz, "%s: '%s' is not true or false",
			    o->name, value);
			return (-1);
		}
		*(int *)FIELD(o, dst) = i;
		return (0);
	case OPT_ENUM:
		for (i = 0; o->words[i] != NULL; i++)
			if (strcmp(value, o->words[i]) == 0) {
				*(int *)FIELD(o, dst) = i;
				return (0);
			}
		words_list(o, words, sizeof(words));
		if (conf)
			snprintf(err, errsz, "%s: '%s' is not one of %s",
			    o->name, value, words);
		else
			snprintf(err, errsz, "%s: unknown value '%s' (one of: "
			    "%s)", o->name, value, words);
		return (-1);
	case OPT_CATSET:
		if (catset_parse(value, &set, words, sizeof(words)) == -1) {
			snprintf(err, errsz, "%s: %s", o->name, words);
			return (-1);
		}
		*(catset *)FIELD(o, dst) = set;
		return (0);
	}
	snprintf(err, errsz, "%s: bad option type", o->name);
	return (-1);
}

int
opt_parse(const struct opt *o, void *dst, const char *value, char *err,
    size_t errsz)
{
	return (parse_value(o, dst, value, 0, err, errsz));
}

int
opt_parse_conf(const struct opt *o, void *dst, const char *value, char *err,
    size_t errsz)
{
	return (parse_value(o, dst, value, 1, err, errsz));
}

int
opts_check_conf(const struct opt *tab, void *scratch, const char *key,
    const char *value, char *err, size_t errsz)
{
	int	i;

	if ((i = opt_find(tab, key)) == -1)
		return (-1);
	return (opt_parse_conf(&tab[i], scratch, value, err, errsz));
}

void
opts_from_config(const struct opt *tab, void *dst, const struct config *cfg,
    const char *section)
{
	const struct config_entry	*e;
	char				 err[256];
	size_t				 i;
	int				 r;

	for (i = 0; i < cfg->nentries; i++) {
		e = &cfg->entries[i];
		if (strcmp(e->section, section) == 0 &&
		    (r = opt_find(tab, e->key)) != -1)
			(void)opt_parse(&tab[r], dst, e->value, err,
			    sizeof(err));
	}
}

int
opt_from_json(const struct opt *o, void *dst, const json_t *v,
    const char *field, struct param_err *e)
{
	char		words[128];
	double		d;
	json_int_t	n;
	int		i;

	switch (o->type) {
	case OPT_INT:
		if (!json_is_integer(v))
			return (param_fail(e, field, "must be an integer"));
		n = json_integer_value(v);
		if ((double)n < o->min || (double)n > o->max)
			return (param_fail(e, field,
			    "must be between %.15g and %.15g", o->min,
			    o->max));
		*(int64_t *)FIELD(o, dst) = n;
		return (0);
	case OPT_NUM:
		if (!json_is_number(v))
			return (param_fail(e, field, "must be a number"));
		d = json_number_value(v);
		if (!(d >= o->min && d <= o->max))
			return (param_fail(e, field,
			    "must be between %.15g and %.15g", o->min,
			    o->max));
		*(double *)FIELD(o, dst) = d;
		return (0);
	case OPT_BOOL:
		if (!json_is_boolean(v))
			return (param_fail(e, field, "must be true or false"));
		*(int *)FIELD(o, dst) = json_is_true(v);
		return (0);
	case OPT_ENUM:
		if (json_is_string(v))
			for (i = 0; o->words[i] != NULL; i++)
				if (strcmp(json_string_value(v),
				    o->words[i]) == 0) {
					*(int *)FIELD(o, dst) = i;
					return (0);
				}
		words_list(o, words, sizeof(words));
		return (param_fail(e, field, "must be one of: %s", words));
	case OPT_CATSET:
		return (catset_from_json(v, (catset *)FIELD(o, dst), field, e));
	}
	return (param_fail(e, field, "bad option type"));
}

int
opts_from_json(const struct opt *tab, void *dst, const json_t *obj,
    const char *prefix, uint64_t *set, uint64_t *unset, struct param_err *e)
{
	const char	*key;
	json_t		*v;
	char		 field[sizeof(e->field)];
	int		 i;

	if (set != NULL)
		*set = 0;
	if (unset != NULL)
		*unset = 0;
	if (!json_is_object(obj))
		return (param_fail(e, prefix != NULL ? prefix : "config",
		    "must be an object"));
	json_object_foreach((json_t *)obj, key, v) {
		if (prefix == NULL || snprintf(field, sizeof(field), "%s.%s",
		    prefix, key) >= (int)sizeof(field))
			snprintf(field, sizeof(field), "%s", key);
		if ((i = opt_find(tab, key)) == -1)
			return (param_fail(e, field, "unknown member"));
		if (json_is_null(v) && unset != NULL) {
			*unset |= OPT_BIT(i);
			continue;
		}
		if (opt_from_json(&tab[i], dst, v, field, e) == -1)
			return (-1);
		if (set != NULL)
			*set |= OPT_BIT(i);
	}
	return (0);
}

json_t *
opt_number_json(double d)
{
	if (d == floor(d) && fabs(d) < 9007199254740992.0)
		return (json_integer((json_int_t)d));
	return (json_real(d));
}

json_t *
opts_to_json(const struct opt *tab, const void *src)
{
	json_t			*o, *v;
	const struct opt	*p;

	if ((o = json_object()) == NULL)
		return (NULL);
	for (p = tab; p->name != NULL; p++) {
		switch (p->type) {
		case OPT_INT:
			v = json_integer(*(const int64_t *)CFIELD(p, src));
			break;
		case OPT_NUM:
			v = opt_number_json(*(const double *)CFIELD(p, src));
			break;
		case OPT_BOOL:
			v = json_boolean(*(const int *)CFIELD(p, src));
			break;
		case OPT_ENUM:
			v = json_string(p->words[*(const int *)CFIELD(p, src)]);
			break;
		case OPT_CATSET:
			v = catset_to_json(*(const catset *)CFIELD(p, src));
			break;
		default:
			v = NULL;
			break;
		}
		if (json_object_set_new(o, p->name, v) == -1) {
			json_decref(o);
			return (NULL);
		}
	}
	return (o);
}

static size_t
opt_size(const struct opt *o)
{
	switch (o->type) {
	case OPT_INT:
		return (sizeof(int64_t));
	case OPT_NUM:
		return (sizeof(double));
	case OPT_BOOL:
	case OPT_ENUM:
		return (sizeof(int));
	case OPT_CATSET:
		return (sizeof(catset));
	}
	return (0);
}

void
opts_overlay(const struct opt *tab, void *dst, const void *src,
    uint64_t mask)
{
	int	i;

	for (i = 0; tab[i].name != NULL; i++)
		if (mask & OPT_BIT(i))
			memcpy(FIELD(&tab[i], dst), CFIELD(&tab[i], src),
			    opt_size(&tab[i]));
}

int
opt_name_valid(const char *name)
{
	size_t	i;
	char	c;

	for (i = 0; (c = name[i]) != '\0'; i++) {
		if (i == OPT_NAME_MAX)
			return (0);
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		    (c >= '0' && c <= '9') || c == '.' || c == '_' ||
		    c == ':' || c == '/' || c == '-'))
			return (0);
	}
	return (i > 0);
}
