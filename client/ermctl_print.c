/*
 * How ermctl shows a result or an event: aligned and indented for a person
 * at a terminal, one key=value line per value for a pipe, or the daemon's
 * JSON as it came. Everything the daemon sent is escaped before it reaches
 * a terminal.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ermctl.h"

/*
 * Write len bytes of s with control characters escaped (C0, DEL and the C1
 * range U+0080-U+009F, which some terminals obey). With quote, wrap the text
 * in double quotes and escape '"' and '\' too (logfmt values).
 */
static void
put_str(FILE *fp, const char *s, size_t len, int quote)
{
	const unsigned char	*p = (const unsigned char *)s;
	size_t			 i;

	if (quote)
		fputc('"', fp);
	for (i = 0; i < len; i++) {
		if (p[i] == '\n')
			fputs("\\n", fp);
		else if (p[i] == '\t')
			fputs("\\t", fp);
		else if (p[i] == '\r')
			fputs("\\r", fp);
		else if (p[i] < 0x20 || p[i] == 0x7f)
			fprintf(fp, "\\x%02x", p[i]);
		else if (p[i] == 0xc2 && i + 1 < len && p[i + 1] >= 0x80 &&
		    p[i + 1] <= 0x9f) {
			fprintf(fp, "\\u%04x", p[i + 1]);
			i++;
		} else if (quote && (p[i] == '"' || p[i] == '\\')) {
			fputc('\\', fp);
			fputc(p[i], fp);
		} else
			fputc(p[i], fp);
	}
	if (quote)
		fputc('"', fp);
}

/* Does a logfmt value need double quotes? */
static int
needs_quotes(const char *s, size_t len)
{
	size_t	i;

	if (len == 0)
		return (1);
	for (i = 0; i < len; i++)
		if (s[i] == ' ' || s[i] == '=' || s[i] == '"' ||
		    s[i] == '\\' || (unsigned char)s[i] < 0x20)
			return (1);
	return (0);
}

/* A scalar (or an empty container) as text; quote as for put_str. */
static void
put_scalar(FILE *fp, json_t *v, int human, int logfmt)
{
	const char	*s;
	size_t		 len;

	switch (json_typeof(v)) {
	case JSON_STRING:
		s = json_string_value(v);
		len = json_string_length(v);
		if (human && len == 0)
			fputs("\"\"", fp);	/* not a blank after the colon */
		else
			put_str(fp, s, len, logfmt && needs_quotes(s, len));
		break;
	case JSON_INTEGER:
		fprintf(fp, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		break;
	case JSON_REAL:
		fprintf(fp, human ? "%g" : "%.15g", json_real_value(v));
		break;
	case JSON_TRUE:
		fputs("true", fp);
		break;
	case JSON_FALSE:
		fputs("false", fp);
		break;
	case JSON_NULL:
		fputs("null", fp);
		break;
	case JSON_OBJECT:
		fputs("{}", fp);
		break;
	case JSON_ARRAY:
		fputs("[]", fp);
		break;
	}
}

static int
nonempty_container(json_t *v)
{
	return ((json_is_object(v) && json_object_size(v) > 0) ||
	    (json_is_array(v) && json_array_size(v) > 0));
}

static void	human_array(FILE *, json_t *, int);

/*
 * An object as "key: value" lines at indent, values aligned one column
 * past the longest key. With dash, the first line is a list item ("- ").
 */
static void
human_object(FILE *fp, json_t *obj, int indent, int dash)
{
	const char	*key;
	json_t		*v;
	size_t		 width = 0, n;
	int		 first = 1;

	json_object_foreach(obj, key, v) {
		if (!nonempty_container(v) && strlen(key) > width)
			width = strlen(key);
	}
	json_object_foreach(obj, key, v) {
		if (first && dash)
			fprintf(fp, "%*s- ", indent - 2, "");
		else
			fprintf(fp, "%*s", indent, "");
		first = 0;
		n = strlen(key);
		put_str(fp, key, n, 0);
		fputc(':', fp);
		if (nonempty_container(v)) {
			fputc('\n', fp);
			if (json_is_object(v))
				human_object(fp, v, indent + 2, 0);
			else
				human_array(fp, v, indent + 2);
			continue;
		}
		fprintf(fp, "%*s ", (int)(width - n), "");
		put_scalar(fp, v, 1, 0);
		fputc('\n', fp);
	}
}

static void
human_array(FILE *fp, json_t *arr, int indent)
{
	json_t	*v;
	size_t	 i;

	json_array_foreach(arr, i, v) {
		if (json_is_object(v) && json_object_size(v) > 0)
			human_object(fp, v, indent + 2, 1);
		else if (json_is_array(v) && json_array_size(v) > 0) {
			fprintf(fp, "%*s-\n", indent, "");
			human_array(fp, v, indent + 2);
		} else {
			fprintf(fp, "%*s- ", indent, "");
			put_scalar(fp, v, 1, 0);
			fputc('\n', fp);
		}
	}
}

/*
 * A growable dotted key path ("store.path", "breakers.0.name") for the
 * flat output; push returns the length to pop back to.
 */
struct path {
	char	*buf;
	size_t	 len, cap;
};

static size_t
path_push(struct path *p, const char *key)
{
	size_t	 old = p->len, klen = strlen(key), need;
	char	*nb;

	need = old + (old > 0) + klen + 1;
	if (need > p->cap) {
		if ((nb = realloc(p->buf, need * 2)) == NULL) {
			/* Out of memory: print the key alone rather than fail. */
			return (old);
		}
		p->buf = nb;
		p->cap = need * 2;
	}
	if (old > 0)
		p->buf[p->len++] = '.';
	memcpy(p->buf + p->len, key, klen + 1);
	p->len += klen;
	return (old);
}

static void
path_pop(struct path *p, size_t len)
{
	p->len = len;
	if (p->buf != NULL)
		p->buf[len] = '\0';
}

/*
 * Every scalar under v as path=value: one per line, or, with logfmt, all
 * on one line separated by spaces (skipping the top-level keys in skip).
 */
static void
flat(FILE *fp, struct path *p, json_t *v, int logfmt, int *first,
    const char *const *skip)
{
	const char	*key;
	json_t		*e;
	size_t		 i, old;
	char		 idx[32];
	int		 skipped;

	if (nonempty_container(v)) {
		if (json_is_object(v)) {
			json_object_foreach(v, key, e) {
				skipped = 0;
				for (i = 0; p->len == 0 && skip != NULL &&
				    skip[i] != NULL; i++)
					if (strcmp(skip[i], key) == 0)
						skipped = 1;
				if (skipped)
					continue;
				old = path_push(p, key);
				flat(fp, p, e, logfmt, first, NULL);
				path_pop(p, old);
			}
		} else {
			json_array_foreach(v, i, e) {
				snprintf(idx, sizeof(idx), "%zu", i);
				old = path_push(p, idx);
				flat(fp, p, e, logfmt, first, NULL);
				path_pop(p, old);
			}
		}
		return;
	}
	if (logfmt && !*first)
		fputc(' ', fp);
	*first = 0;
	if (p->buf != NULL)
		put_str(fp, p->buf, p->len, 0);
	fputc('=', fp);
	put_scalar(fp, v, 0, logfmt);
	if (!logfmt)
		fputc('\n', fp);
}

void
print_result(const struct ctl *ctx, json_t *obj)
{
	struct path	p = { NULL, 0, 0 };
	int		first = 1;

	switch (ctx->out) {
	case CTL_OUT_JSON:
		json_dumpf(obj, stdout, JSON_COMPACT | JSON_ENCODE_ANY);
		fputc('\n', stdout);
		break;
	case CTL_OUT_HUMAN:
		if (json_is_object(obj))
			human_object(stdout, obj, 0, 0);
		else {
			put_scalar(stdout, obj, 1, 0);
			fputc('\n', stdout);
		}
		break;
	case CTL_OUT_PLAIN:
		flat(stdout, &p, obj, 0, &first, NULL);
		free(p.buf);
		break;
	}
}

/*
 * One event, one line, flushed at once so that a pipe sees it as it
 * happens. A terminal gets "YYYY-MM-DD HH:MM:SS.mmm TYPE key=value ...".
 */
void
print_event(const struct ctl *ctx, json_t *ev)
{
	static const char *const	 skip[] = { "type", "at", NULL };
	struct path			 p = { NULL, 0, 0 };
	json_t				*at, *type;
	struct tm			 tm;
	time_t				 t;
	char				 when[64];
	int				 first = 1;

	switch (ctx->out) {
	case CTL_OUT_JSON:
		json_dumpf(ev, stdout, JSON_COMPACT);
		fputc('\n', stdout);
		break;
	case CTL_OUT_HUMAN:
		at = json_object_get(ev, "at");
		type = json_object_get(ev, "type");
		when[0] = '\0';
		if (json_is_integer(at)) {
			t = (time_t)(json_integer_value(at) / 1000);
			if (localtime_r(&t, &tm) != NULL &&
			    strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S",
			    &tm) > 0)
				snprintf(when + strlen(when), sizeof(when) -
				    strlen(when), ".%03d",
				    (int)(json_integer_value(at) % 1000));
		}
		fputs(when[0] != '\0' ? when : "-", stdout);
		fputc(' ', stdout);
		if (json_is_string(type))
			put_str(stdout, json_string_value(type),
			    json_string_length(type), 0);
		else
			fputc('-', stdout);
		first = 0;
		flat(stdout, &p, ev, 1, &first, skip);
		fputc('\n', stdout);
		break;
	case CTL_OUT_PLAIN:
		flat(stdout, &p, ev, 1, &first, NULL);
		fputc('\n', stdout);
		break;
	}
	free(p.buf);
	fflush(stdout);
}
