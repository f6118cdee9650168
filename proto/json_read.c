/*
 * A strict JSON parser that builds jansson values, for request frames.
 *
 * It accepts exactly what json_loadb(JSON_REJECT_DUPLICATES |
 * JSON_DECODE_ANY) accepts and builds equal values (the fuzz target and
 * tests/unit/test_json_read.c check both against jansson), but reads the
 * buffer with a pointer instead of jansson's per-character stream, which
 * made parsing the largest cost of a small request. On top of jansson's
 * rules it refuses nesting deeper than a limit before recursing into it.
 *
 * The grammar is RFC 8259 with jansson's choices: input must be valid
 * UTF-8 (no overlong forms, no surrogates, nothing past U+10FFFF); strings
 * may not contain NUL (\u0000); a duplicate key in an object is an error;
 * integers are numbers without fraction or exponent and must fit in 64
 * bits; reals must not overflow a double. One deliberate difference: jansson
 * skips NUL bytes between tokens (a quirk of its read buffer); a NUL byte is
 * not JSON, and this parser refuses it.
 */

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "erm_proto.h"

struct reader {
	const unsigned char	*p, *end;
	int			 max_depth;
	const char		*err;
	char			*tmp;		/* string unescape buffer */
	size_t			 tmpcap;
};

static json_t	*read_value(struct reader *, int depth);

static void
skip_ws(struct reader *r)
{
	while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' ||
	    *r->p == '\n' || *r->p == '\r'))
		r->p++;
}

static json_t *
fail(struct reader *r, const char *why)
{
	if (r->err == NULL)
		r->err = why;
	return (NULL);
}

/*
 * Length of the valid UTF-8 sequence at p (1-4), or 0 when it is not one.
 * Follows RFC 3629: no overlong forms, no UTF-16 surrogates, at most
 * U+10FFFF.
 */
static size_t
utf8_len(const unsigned char *p, const unsigned char *end)
{
	unsigned char	c = p[0];
	size_t		n, i;
	unsigned	cp;

	if (c < 0x80)
		return (1);
	if (c < 0xc2 || c > 0xf4)
		return (0);
	n = c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
	if ((size_t)(end - p) < n)
		return (0);
	cp = c & (0xff >> (n + 1));
	for (i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return (0);
		cp = cp << 6 | (p[i] & 0x3f);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
	    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
		return (0);
	return (n);
}

static int
hex4(const unsigned char *p, const unsigned char *end, unsigned *out)
{
	unsigned	v = 0;
	int		i;

	if (end - p < 4)
		return (-1);
	for (i = 0; i < 4; i++) {
		v <<= 4;
		if (p[i] >= '0' && p[i] <= '9')
			v |= p[i] - '0';
		else if (p[i] >= 'a' && p[i] <= 'f')
			v |= p[i] - 'a' + 10;
		else if (p[i] >= 'A' && p[i] <= 'F')
			v |= p[i] - 'A' + 10;
		else
			return (-1);
	}
	*out = v;
	return (0);
}

static int
tmp_reserve(struct reader *r, size_t need)
{
	char	*t;
	size_t	 cap;

	if (need <= r->tmpcap)
		return (0);
	cap = r->tmpcap ? r->tmpcap : 64;
	while (cap < need)
		cap *= 2;
	if ((t = realloc(r->tmp, cap)) == NULL)
		return (-1);
	r->tmp = t;
	r->tmpcap = cap;
	return (0);
}

/*
 * Read the string starting after its opening quote. A string without
 * escapes is used in place; one with escapes is decoded into r->tmp (never
 * longer than the source). Sets *s and *len; -1 on a malformed string.
 */
static int
read_string(struct reader *r, const char **s, size_t *len)
{
	const unsigned char	*start = r->p, *q;
	size_t			 n, o;
	unsigned		 cp, lo;
	int			 escaped = 0;

	for (q = r->p; q < r->end && *q != '"'; ) {
		if (*q < 0x20)
			return (fail(r, "control character in a string"),
			    -1);
		if (*q == '\\') {
			escaped = 1;
			if (q + 1 >= r->end) {
				q = r->end;	/* a backslash ends the input */
				break;
			}
			q += 2;
			continue;
		}
		if ((n = utf8_len(q, r->end)) == 0)
			return (fail(r, "invalid UTF-8"), -1);
		q += n;
	}
	if (q >= r->end)
		return (fail(r, "unterminated string"), -1);
	r->p = q + 1;
	if (!escaped) {
		*s = (const char *)start;
		*len = (size_t)(q - start);
		return (0);
	}
	if (tmp_reserve(r, (size_t)(q - start)) == -1)
		return (fail(r, "out of memory"), -1);
	for (o = 0; start < q; ) {
		if (*start != '\\') {
			r->tmp[o++] = (char)*start++;
			continue;
		}
		start++;
		switch (*start++) {
		case '"':
			r->tmp[o++] = '"';
			break;
		case '\\':
			r->tmp[o++] = '\\';
			break;
		case '/':
			r->tmp[o++] = '/';
			break;
		case 'b':
			r->tmp[o++] = '\b';
			break;
		case 'f':
			r->tmp[o++] = '\f';
			break;
		case 'n':
			r->tmp[o++] = '\n';
			break;
		case 'r':
			r->tmp[o++] = '\r';
			break;
		case 't':
			r->tmp[o++] = '\t';
			break;
		case 'u':
			if (hex4(start, q, &cp) == -1)
				return (fail(r, "invalid \\u escape"), -1);
			start += 4;
			if (cp >= 0xdc00 && cp <= 0xdfff)
				return (fail(r, "lone low surrogate"), -1);
			if (cp >= 0xd800 && cp <= 0xdbff) {
				if (q - start < 6 || start[0] != '\\' ||
				    start[1] != 'u' ||
				    hex4(start + 2, q, &lo) == -1 ||
				    lo < 0xdc00 || lo > 0xdfff)
					return (fail(r, "unpaired surrogate"),
					    -1);
				start += 6;
				cp = 0x10000 + ((cp - 0xd800) << 10) +
				    (lo - 0xdc00);
			}
			if (cp == 0)
				return (fail(r, "\\u0000 is not allowed"), -1);
			/* The escape is at least as long as its UTF-8. */
			if (cp < 0x80)
				r->tmp[o++] = (char)cp;
			else if (cp < 0x800) {
				r->tmp[o++] = (char)(0xc0 | cp >> 6);
				r->tmp[o++] = (char)(0x80 | (cp & 0x3f));
			} else if (cp < 0x10000) {
				r->tmp[o++] = (char)(0xe0 | cp >> 12);
				r->tmp[o++] = (char)(0x80 | (cp >> 6 & 0x3f));
				r->tmp[o++] = (char)(0x80 | (cp & 0x3f));
			} else {
				r->tmp[o++] = (char)(0xf0 | cp >> 18);
				r->tmp[o++] = (char)(0x80 | (cp >> 12 & 0x3f));
				r->tmp[o++] = (char)(0x80 | (cp >> 6 & 0x3f));
				r->tmp[o++] = (char)(0x80 | (cp & 0x3f));
			}
			break;
		default:
			return (fail(r, "invalid escape"), -1);
		}
	}
	*s = r->tmp;
	*len = o;
	return (0);
}

static json_t *
read_number(struct reader *r)
{
	const unsigned char	*start = r->p, *q = r->p;
	char			 buf[64], *end, *heap = NULL, *text;
	int			 real = 0;
	long long		 ll;
	double			 d;
	size_t			 n;
	json_t			*v;

	if (q < r->end && *q == '-')
		q++;
	if (q < r->end && *q == '0')
		q++;
	else if (q < r->end && *q >= '1' && *q <= '9')
		while (q < r->end && *q >= '0' && *q <= '9')
			q++;
	else
		return (fail(r, "invalid number"));
	if (q < r->end && *q == '.') {
		real = 1;
		if (++q >= r->end || *q < '0' || *q > '9')
			return (fail(r, "invalid number"));
		while (q < r->end && *q >= '0' && *q <= '9')
			q++;
	}
	if (q < r->end && (*q == 'e' || *q == 'E')) {
		real = 1;
		if (++q < r->end && (*q == '+' || *q == '-'))
			q++;
		if (q >= r->end || *q < '0' || *q > '9')
			return (fail(r, "invalid number"));
		while (q < r->end && *q >= '0' && *q <= '9')
			q++;
	}
	/* A digit right after a leading zero ("01") is not JSON. */
	if (q < r->end && *q >= '0' && *q <= '9')
		return (fail(r, "invalid number"));
	n = (size_t)(q - start);
	if (n < sizeof(buf))
		text = buf;
	else if ((text = heap = malloc(n + 1)) == NULL)
		return (fail(r, "out of memory"));
	memcpy(text, start, n);
	text[n] = '\0';
	errno = 0;
	if (!real) {
		ll = strtoll(text, &end, 10);
		v = errno == ERANGE ? fail(r, "integer out of range") :
		    json_integer(ll);
	} else {
		d = strtod(text, &end);
		/*
		 * As jansson: overflow (an infinite result) is an error;
		 * underflow, to zero or to a subnormal, is not, though strtod
		 * says ERANGE for both.
		 */
		v = errno == ERANGE && isinf(d) ? fail(r, "real out of range") :
		    json_real(d);
	}
	free(heap);
	r->p = q;
	if (v == NULL)
		return (fail(r, "out of memory"));
	return (v);
}

static json_t *
read_object(struct reader *r, int depth)
{
	json_t		*obj, *v;
	const char	*key;
	size_t		 klen;
	char		 kbuf[128], *k;

	if ((obj = json_object()) == NULL)
		return (fail(r, "out of memory"));
	skip_ws(r);
	if (r->p < r->end && *r->p == '}') {
		r->p++;
		return (obj);
	}
	for (;;) {
		skip_ws(r);
		if (r->p >= r->end || *r->p != '"')
			goto bad;
		r->p++;
		if (read_string(r, &key, &klen) == -1)
			goto bad;
		/* The key may live in the unescape buffer: keep a copy. */
		k = klen < sizeof(kbuf) ? kbuf : malloc(klen + 1);
		if (k == NULL) {
			fail(r, "out of memory");
			goto bad;
		}
		memcpy(k, key, klen);
		k[klen] = '\0';
		if (json_object_getn(obj, k, klen) != NULL) {
			fail(r, "duplicate object key");
			goto badkey;
		}
		skip_ws(r);
		if (r->p >= r->end || *r->p != ':') {
			fail(r, "expected ':'");
			goto badkey;
		}
		r->p++;
		if ((v = read_value(r, depth + 1)) == NULL)
			goto badkey;
		if (json_object_setn_new_nocheck(obj, k, klen, v) == -1) {
			fail(r, "out of memory");
			goto badkey;
		}
		if (k != kbuf)
			free(k);
		skip_ws(r);
		if (r->p < r->end && *r->p == ',') {
			r->p++;
			continue;
		}
		if (r->p < r->end && *r->p == '}') {
			r->p++;
			return (obj);
		}
		goto bad;
	}
badkey:
	if (k != kbuf)
		free(k);
bad:
	json_decref(obj);
	return (fail(r, "invalid object"));
}

static json_t *
read_array(struct reader *r, int depth)
{
	json_t	*arr, *v;

	if ((arr = json_array()) == NULL)
		return (fail(r, "out of memory"));
	skip_ws(r);
	if (r->p < r->end && *r->p == ']') {
		r->p++;
		return (arr);
	}
	for (;;) {
		if ((v = read_value(r, depth + 1)) == NULL ||
		    json_array_append_new(arr, v) == -1)
			break;
		skip_ws(r);
		if (r->p < r->end && *r->p == ',') {
			r->p++;
			continue;
		}
		if (r->p < r->end && *r->p == ']') {
			r->p++;
			return (arr);
		}
		break;
	}
	json_decref(arr);
	return (fail(r, "invalid array"));
}

static int
literal(struct reader *r, const char *word, size_t n)
{
	if ((size_t)(r->end - r->p) < n || memcmp(r->p, word, n) != 0)
		return (0);
	r->p += n;
	return (1);
}

static json_t *
read_value(struct reader *r, int depth)
{
	const char	*s;
	size_t		 len;
	json_t		*v;

	skip_ws(r);
	if (r->p >= r->end)
		return (fail(r, "unexpected end of input"));
	switch (*r->p) {
	case '{':
	case '[':
		if (depth >= r->max_depth)
			return (fail(r, "nested too deeply"));
		return (*r->p++ == '{' ? read_object(r, depth) :
		    read_array(r, depth));
	case '"':
		r->p++;
		if (read_string(r, &s, &len) == -1)
			return (NULL);
		if ((v = json_stringn_nocheck(s, len)) == NULL)
			return (fail(r, "out of memory"));
		return (v);
	case 't':
		return (literal(r, "true", 4) ? json_true() :
		    fail(r, "invalid token"));
	case 'f':
		return (literal(r, "false", 5) ? json_false() :
		    fail(r, "invalid token"));
	case 'n':
		return (literal(r, "null", 4) ? json_null() :
		    fail(r, "invalid token"));
	default:
		if (*r->p == '-' || (*r->p >= '0' && *r->p <= '9'))
			return (read_number(r));
		return (fail(r, "invalid token"));
	}
}

json_t *
erm_json_parse(const uint8_t *buf, size_t len, int max_depth,
    const char **err)
{
	struct reader	 r;
	json_t		*v;

	memset(&r, 0, sizeof(r));
	r.p = buf;
	r.end = buf + len;
	r.max_depth = max_depth;
	v = read_value(&r, 0);
	if (v != NULL) {
		skip_ws(&r);
		if (r.p != r.end) {
			json_decref(v);
			v = fail(&r, "trailing characters after the value");
		}
	}
	free(r.tmp);
	if (v == NULL && err != NULL)
		*err = r.err != NULL ? r.err : "invalid JSON";
	return (v);
}

json_t *
erm_json_parse_text(const char *s)
{
	if (s == NULL)
		return (NULL);
	return (erm_json_parse((const uint8_t *)s, strlen(s), 64, NULL));
}
