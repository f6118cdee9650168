/*
 * A compact JSON writer for jansson values, producing the same text as
 * json_dumpb(v, JSON_COMPACT | JSON_ENCODE_ANY) at a fraction of the cost.
 *
 * jansson's dumper guards every object and array against reference loops by
 * formatting the container's address with snprintf and keeping it in a hash
 * table; on a small reply that bookkeeping costs more than the text itself.
 * Values built by ermd never contain loops, so this writer walks the tree
 * directly, with a depth limit instead of the loop check.
 */

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "erm_proto.h"

/* Deeper than any message ermd accepts or builds; a loop ends here. */
#define WRITE_MAX_DEPTH	(ERM_MAX_DEPTH * 4)

static int
reserve(struct erm_buf *b, size_t n)
{
	size_t	 ncap;
	uint8_t	*p;

	if (b->len + n <= b->cap)
		return (0);
	if (b->len + n > b->max)
		return (-1);
	ncap = b->cap ? b->cap : 256;
	while (ncap < b->len + n)
		ncap *= 2;
	if (ncap > b->max)
		ncap = b->max;
	if ((p = realloc(b->p, ncap)) == NULL)
		return (-1);
	b->p = p;
	b->cap = ncap;
	return (0);
}

int
erm_buf_add(struct erm_buf *b, const void *data, size_t n)
{
	if (reserve(b, n) == -1)
		return (-1);
	memcpy(b->p + b->len, data, n);
	b->len += n;
	return (0);
}

void
erm_buf_free(struct erm_buf *b)
{
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
}

static int
put_int(struct erm_buf *b, json_int_t v)
{
	char			 tmp[24], *p = tmp + sizeof(tmp);
	unsigned long long	 u;

	u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
	do {
		*--p = (char)('0' + u % 10);
		u /= 10;
	} while (u != 0);
	if (v < 0)
		*--p = '-';
	return (erm_buf_add(b, p, (size_t)(tmp + sizeof(tmp) - p)));
}

/*
 * As jansson: %.17g, ".0" when the text would read as an integer, and the
 * exponent without '+' or leading zeros ("1e+05" becomes "1e5").
 */
static int
put_real(struct erm_buf *b, double d)
{
	char	tmp[40], *e, *src, *dst;
	int	n;

	if (!isfinite(d))
		return (-1);
	n = snprintf(tmp, sizeof(tmp) - 2, "%.17g", d);
	if (n < 0 || (size_t)n >= sizeof(tmp) - 2)
		return (-1);
	if ((e = strchr(tmp, 'e')) != NULL) {
		src = dst = e + 1;
		if (*src == '+')
			src++;
		else if (*src == '-')
			*dst++ = *src++;
		while (*src == '0' && src[1] != '\0')
			src++;
		memmove(dst, src, strlen(src) + 1);
		n = (int)strlen(tmp);
	} else if (strchr(tmp, '.') == NULL) {
		tmp[n++] = '.';
		tmp[n++] = '0';
	}
	return (erm_buf_add(b, tmp, (size_t)n));
}

/*
 * Escape as jansson does without flags: '"', '\\' and control characters;
 * everything else, UTF-8 included, is copied as it is (jansson values hold
 * valid UTF-8 by construction).
 */
static int
put_string(struct erm_buf *b, const char *s, size_t len)
{
	static const char	 hex[] = "0123456789ABCDEF";
	const unsigned char	*p = (const unsigned char *)s, *end = p + len;
	const unsigned char	*run;
	char			 esc[6];

	if (erm_buf_add(b, "\"", 1) == -1)
		return (-1);
	while (p < end) {
		for (run = p; p < end && *p >= 0x20 && *p != '"' && *p != '\\';
		    p++)
			;
		if (p > run && erm_buf_add(b, run, (size_t)(p - run)) == -1)
			return (-1);
		if (p == end)
			break;
		esc[0] = '\\';
		switch (*p) {
		case '"':
		case '\\':
			esc[1] = (char)*p;
			break;
		case '\b':
			esc[1] = 'b';
			break;
		case '\f':
			esc[1] = 'f';
			break;
		case '\n':
			esc[1] = 'n';
			break;
		case '\r':
			esc[1] = 'r';
			break;
		case '\t':
			esc[1] = 't';
			break;
		default:
			memcpy(esc + 1, "u00", 3);
			esc[4] = hex[*p >> 4];
			esc[5] = hex[*p & 0xf];
			if (erm_buf_add(b, esc, 6) == -1)
				return (-1);
			p++;
			continue;
		}
		if (erm_buf_add(b, esc, 2) == -1)
			return (-1);
		p++;
	}
	return (erm_buf_add(b, "\"", 1));
}

static int
put_value(struct erm_buf *b, const json_t *v, int depth)
{
	const char	*key;
	json_t		*item;
	void		*it;
	size_t		 i, n;

	if (depth > WRITE_MAX_DEPTH)
		return (-1);
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		if (erm_buf_add(b, "{", 1) == -1)
			return (-1);
		for (i = 0, it = json_object_iter((json_t *)v); it != NULL;
		    it = json_object_iter_next((json_t *)v, it), i++) {
			key = json_object_iter_key(it);
			if ((i > 0 && erm_buf_add(b, ",", 1) == -1) ||
			    put_string(b, key, json_object_iter_key_len(it)) ==
			    -1 || erm_buf_add(b, ":", 1) == -1 ||
			    put_value(b, json_object_iter_value(it),
			    depth + 1) == -1)
				return (-1);
		}
		return (erm_buf_add(b, "}", 1));
	case JSON_ARRAY:
		if (erm_buf_add(b, "[", 1) == -1)
			return (-1);
		n = json_array_size(v);
		for (i = 0; i < n; i++) {
			item = json_array_get(v, i);
			if ((i > 0 && erm_buf_add(b, ",", 1) == -1) ||
			    put_value(b, item, depth + 1) == -1)
				return (-1);
		}
		return (erm_buf_add(b, "]", 1));
	case JSON_STRING:
		return (put_string(b, json_string_value(v),
		    json_string_length(v)));
	case JSON_INTEGER:
		return (put_int(b, json_integer_value(v)));
	case JSON_REAL:
		return (put_real(b, json_real_value(v)));
	case JSON_TRUE:
		return (erm_buf_add(b, "true", 4));
	case JSON_FALSE:
		return (erm_buf_add(b, "false", 5));
	case JSON_NULL:
		return (erm_buf_add(b, "null", 4));
	}
	return (-1);
}

char *
erm_buf_string(struct erm_buf *b, int ok)
{
	char	*s;

	if (!ok || erm_buf_add(b, "", 1) == -1) {
		erm_buf_free(b);
		return (NULL);
	}
	s = (char *)b->p;
	b->p = NULL;
	b->len = b->cap = 0;
	return (s);
}

char *
erm_json_text(const json_t *v, size_t max)
{
	struct erm_buf	b = { NULL, 0, 0, max + 1 };

	return (erm_buf_string(&b, v != NULL && erm_json_write(&b, v) == 0));
}

int
erm_json_write(struct erm_buf *b, const json_t *v)
{
	size_t	mark = b->len;

	if (v == NULL || put_value(b, v, 0) == -1) {
		b->len = mark;
		return (-1);
	}
	return (0);
}

/* ---- objects written member by member ----------------------------------- */

/* The comma before a member, unless it is the first of its object. */
static int
jw_key(struct erm_buf *b, const char *key)
{
	if (b->len > 0 && b->p[b->len - 1] != '{' &&
	    erm_buf_add(b, ",", 1) == -1)
		return (-1);
	if (key == NULL)
		return (0);
	if (put_string(b, key, strlen(key)) == -1)
		return (-1);
	return (erm_buf_add(b, ":", 1));
}

int
erm_jw_begin(struct erm_buf *b, const char *key)
{
	if (key != NULL && jw_key(b, key) == -1)
		return (-1);
	return (erm_buf_add(b, "{", 1));
}

int
erm_jw_end(struct erm_buf *b)
{
	return (erm_buf_add(b, "}", 1));
}

int
erm_jw_str(struct erm_buf *b, const char *key, const char *s)
{
	if (jw_key(b, key) == -1)
		return (-1);
	if (s == NULL)
		return (erm_buf_add(b, "null", 4));
	return (put_string(b, s, strlen(s)));
}

int
erm_jw_int(struct erm_buf *b, const char *key, int64_t v)
{
	if (jw_key(b, key) == -1)
		return (-1);
	return (put_int(b, (json_int_t)v));
}

int
erm_jw_bool(struct erm_buf *b, const char *key, int v)
{
	if (jw_key(b, key) == -1)
		return (-1);
	return (v ? erm_buf_add(b, "true", 4) : erm_buf_add(b, "false", 5));
}
