/*
 * Unit tests of proto/frame.c: the frame codec and the request envelope,
 * driven by tables of malformed input with the exact result each must get.
 */

#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>
#include <jansson.h>

#include "erm_proto.h"

#define LEN(a)		(sizeof(a) / sizeof((a)[0]))
#define STR(s)		(const uint8_t *)(s), sizeof(s) - 1

/* ---- frame parsing ----------------------------------------------------- */

/* A small max_frame keeps the table's frames short. */
#define SMALL_MAX	8

static const struct frame_case {
	const char	*name;
	const uint8_t	*buf;
	size_t		 len;
	size_t		 max_frame;
	enum erm_frame_result want;
	size_t		 body_off;	/* OK only: body offset, */
	size_t		 body_len;	/* body length */
	size_t		 consumed;	/* and bytes to drop */
} frame_cases[] = {
	{ "empty buffer", STR(""), SMALL_MAX, ERM_FRAME_MORE, 0, 0, 0 },
	{ "1-byte header", STR("\0"), SMALL_MAX, ERM_FRAME_MORE, 0, 0, 0 },
	{ "2-byte header", STR("\0\0"), SMALL_MAX, ERM_FRAME_MORE, 0, 0, 0 },
	{ "3-byte header", STR("\0\0\0"), SMALL_MAX, ERM_FRAME_MORE, 0, 0, 0 },
	/* Three bytes say nothing yet, not even that the frame is too big. */
	{ "3-byte header ff", STR("\xff\xff\xff"), SMALL_MAX,
	    ERM_FRAME_MORE, 0, 0, 0 },
	{ "zero length", STR("\0\0\0\0"), SMALL_MAX, ERM_FRAME_EMPTY, 0, 0, 0 },
	{ "zero length, more bytes behind", STR("\0\0\0\0\0\0\0\1x"),
	    SMALL_MAX, ERM_FRAME_EMPTY, 0, 0, 0 },
	{ "length 1, no body", STR("\0\0\0\1"), SMALL_MAX,
	    ERM_FRAME_MORE, 0, 0, 0 },
	{ "length 1", STR("\0\0\0\1x"), SMALL_MAX, ERM_FRAME_OK, 4, 1, 5 },
	{ "length max, complete", STR("\0\0\0\x08" "12345678"), SMALL_MAX,
	    ERM_FRAME_OK, 4, 8, 12 },
	{ "length max, one byte short", STR("\0\0\0\x08" "1234567"),
	    SMALL_MAX, ERM_FRAME_MORE, 0, 0, 0 },
	{ "length max+1, header only", STR("\0\0\0\x09"), SMALL_MAX,
	    ERM_FRAME_TOO_BIG, 0, 0, 0 },
	{ "length max+1, complete", STR("\0\0\0\x09" "123456789"), SMALL_MAX,
	    ERM_FRAME_TOO_BIG, 0, 0, 0 },
	{ "length 0x00000100", STR("\0\0\1\0"), SMALL_MAX,
	    ERM_FRAME_TOO_BIG, 0, 0, 0 },
	{ "length 0x80000000", STR("\x80\0\0\0"), SMALL_MAX,
	    ERM_FRAME_TOO_BIG, 0, 0, 0 },
	{ "length 0xffffffff", STR("\xff\xff\xff\xff"), SMALL_MAX,
	    ERM_FRAME_TOO_BIG, 0, 0, 0 },
	{ "length 0xffffffff, default max", STR("\xff\xff\xff\xff"),
	    ERM_MAX_FRAME_DEFAULT, ERM_FRAME_TOO_BIG, 0, 0, 0 },
	{ "length default max+1", STR("\0\x10\0\x01"), ERM_MAX_FRAME_DEFAULT,
	    ERM_FRAME_TOO_BIG, 0, 0, 0 },
	{ "length default max, header only", STR("\0\x10\0\0"),
	    ERM_MAX_FRAME_DEFAULT, ERM_FRAME_MORE, 0, 0, 0 },
	/* Nothing is too big for a limit past 32 bits: the body is awaited. */
	{ "length 0xffffffff, max SIZE_MAX", STR("\xff\xff\xff\xff"),
	    SIZE_MAX, ERM_FRAME_MORE, 0, 0, 0 },
	{ "max 0 refuses length 1", STR("\0\0\0\1x"), 0,
	    ERM_FRAME_TOO_BIG, 0, 0, 0 },
	{ "two frames back to back", STR("\0\0\0\2ab\0\0\0\3cde"), SMALL_MAX,
	    ERM_FRAME_OK, 4, 2, 6 },
	{ "frame then partial header", STR("\0\0\0\2ab\0\0"), SMALL_MAX,
	    ERM_FRAME_OK, 4, 2, 6 },
	{ "frame then too-big header", STR("\0\0\0\2ab\xff\xff\xff\xff"),
	    SMALL_MAX, ERM_FRAME_OK, 4, 2, 6 },
};

START_TEST(frame_table)
{
	const struct frame_case	*c = &frame_cases[_i];
	const uint8_t		*body = NULL;
	size_t			 body_len = 0, consumed = 0;
	enum erm_frame_result	 r;

	r = erm_frame_parse(c->buf, c->len, c->max_frame, &body, &body_len,
	    &consumed);
	ck_assert_msg(r == c->want, "%s: result %d, want %d", c->name, r,
	    c->want);
	if (c->want != ERM_FRAME_OK)
		return;
	ck_assert_msg(body == c->buf + c->body_off, "%s: body at %td, want %zu",
	    c->name, body - c->buf, c->body_off);
	ck_assert_msg(body_len == c->body_len, "%s: body_len %zu, want %zu",
	    c->name, body_len, c->body_len);
	ck_assert_msg(consumed == c->consumed, "%s: consumed %zu, want %zu",
	    c->name, consumed, c->consumed);
}
END_TEST

/* A frame of exactly the default limit, and one byte short of it. */
START_TEST(frame_default_max)
{
	size_t		 n = ERM_MAX_FRAME_DEFAULT, body_len, consumed;
	const uint8_t	*body;
	uint8_t		*buf;

	buf = calloc(1, ERM_FRAME_HDR + n);
	ck_assert_ptr_nonnull(buf);
	erm_frame_header(buf, (uint32_t)n);
	ck_assert_int_eq(erm_frame_parse(buf, ERM_FRAME_HDR + n, n, &body,
	    &body_len, &consumed), ERM_FRAME_OK);
	ck_assert_ptr_eq(body, buf + ERM_FRAME_HDR);
	ck_assert_uint_eq(body_len, n);
	ck_assert_uint_eq(consumed, ERM_FRAME_HDR + n);
	ck_assert_int_eq(erm_frame_parse(buf, ERM_FRAME_HDR + n - 1, n, &body,
	    &body_len, &consumed), ERM_FRAME_MORE);
	ck_assert_int_eq(erm_frame_parse(buf, ERM_FRAME_HDR + n, n - 1, &body,
	    &body_len, &consumed), ERM_FRAME_TOO_BIG);
	free(buf);
}
END_TEST

/*
 * Feed a stream of frames one byte at a time as a connection would: each
 * prefix is MORE until the last byte of a frame arrives, which gives OK.
 */
START_TEST(frame_byte_at_a_time)
{
	static const uint8_t	 stream[] =
	    "\0\0\0\x05hello" "\0\0\0\x01!" "\0\0\0\x08" "12345678";
	static const struct {
		const char	*body;
		size_t		 end;	/* just past the frame */
	} want[] = { { "hello", 9 }, { "!", 14 }, { "12345678", 26 } };
	const uint8_t		*body;
	size_t			 start = 0, avail, body_len, consumed;
	size_t			 k = 0;
	enum erm_frame_result	 r;

	for (avail = 0; avail <= sizeof(stream) - 1; avail++) {
		r = erm_frame_parse(stream + start, avail - start, SMALL_MAX,
		    &body, &body_len, &consumed);
		if (k < LEN(want) && avail == want[k].end) {
			ck_assert_msg(r == ERM_FRAME_OK, "byte %zu: result %d",
			    avail, r);
			ck_assert_uint_eq(body_len, strlen(want[k].body));
			ck_assert_mem_eq(body, want[k].body, body_len);
			ck_assert_uint_eq(start + consumed, want[k].end);
			start += consumed;
			k++;
		} else
			ck_assert_msg(r == ERM_FRAME_MORE,
			    "byte %zu: result %d", avail, r);
	}
	ck_assert_uint_eq(k, LEN(want));
	ck_assert_uint_eq(start, sizeof(stream) - 1);
}
END_TEST

START_TEST(frame_declared_and_header)
{
	static const uint32_t	 lens[] = { 0, 1, 0xff, 0x100, 0x01020304,
	    ERM_MAX_FRAME_DEFAULT, 0x7fffffff, 0x80000000, 0xffffffff };
	uint8_t			 hdr[ERM_FRAME_HDR];
	size_t			 i;

	for (i = 0; i < LEN(lens); i++) {
		erm_frame_header(hdr, lens[i]);
		ck_assert_uint_eq(erm_frame_declared(hdr, sizeof(hdr)),
		    lens[i]);
		/* Short buffers declare nothing. */
		ck_assert_uint_eq(erm_frame_declared(hdr, 3), 0);
		ck_assert_uint_eq(erm_frame_declared(hdr, 0), 0);
	}
	erm_frame_header(hdr, 0x01020304);
	ck_assert_mem_eq(hdr, "\x01\x02\x03\x04", 4);
}
END_TEST

/* ---- envelope decoding ------------------------------------------------- */

enum id_want {
	ID_NULL,	/* env->id must be NULL */
	ID_INT,		/* a JSON integer equal to id_int */
	ID_STRING,	/* a JSON string equal to id_str */
};

static const struct env_case {
	const char	*name;
	const char	*body;
	size_t		 len;
	int		 code;
	enum id_want	 id;
	json_int_t	 id_int;
	const char	*id_str;
} env_cases[] = {
#define C(name, body, code, id, n, s)	\
	{ name, body, sizeof(body) - 1, code, id, n, s }
	/* Not JSON at all, or not valid UTF-8 JSON: -32700. */
	C("empty body", "", ERM_PARSE_ERROR, ID_NULL, 0, NULL),
	C("whitespace only", "  \n", ERM_PARSE_ERROR, ID_NULL, 0, NULL),
	C("not JSON", "hello", ERM_PARSE_ERROR, ID_NULL, 0, NULL),
	C("truncated object", "{\"id\":1,\"method\":\"ping\"",
	    ERM_PARSE_ERROR, ID_NULL, 0, NULL),
	C("trailing garbage", "{\"id\":1,\"method\":\"ping\"} x",
	    ERM_PARSE_ERROR, ID_NULL, 0, NULL),
	C("two objects",
	    "{\"id\":1,\"method\":\"a\"}{\"id\":2,\"method\":\"b\"}",
	    ERM_PARSE_ERROR, ID_NULL, 0, NULL),
	C("trailing NUL byte", "{\"id\":1,\"method\":\"ping\"}\0",
	    ERM_PARSE_ERROR, ID_NULL, 0, NULL),
	C("single quotes", "{'id':1,'method':'ping'}",
	    ERM_PARSE_ERROR, ID_NULL, 0, NULL),
	C("invalid UTF-8 C3 28 in a value",
	    "{\"id\":1,\"method\":\"a\xc3\x28\"}",
	    ERM_PARSE_ERROR, ID_NULL, 0, NULL),
	C("invalid UTF-8 in a key",
	    "{\"id\":1,\"method\":\"m\",\"\xc3\x28\":1}",
	    ERM_PARSE_ERROR, ID_NULL, 0, NULL),
	C("invalid UTF-8 lone continuation byte",
	    "{\"id\":\"\x80\",\"method\":\"m\"}",
	    ERM_PARSE_ERROR, ID_NULL, 0, NULL),
	C("invalid UTF-8 overlong slash", "{\"id\":1,\"method\":\"\xc0\xaf\"}",
	    ERM_PARSE_ERROR, ID_NULL, 0, NULL),
	C("invalid UTF-8 surrogate", "{\"id\":1,\"method\":\"\xed\xa0\x80\"}",
	    ERM_PARSE_ERROR, ID_NULL, 0, NULL),
	C("duplicate id", "{\"id\":1,\"id\":2,\"method\":\"m\"}",
	    ERM_PARSE_ERROR, ID_NULL, 0, NULL),
	C("duplicate method", "{\"id\":1,\"method\":\"a\",\"method\":\"b\"}",
	    ERM_PARSE_ERROR, ID_NULL, 0, NULL),
	C("duplicate key inside params",
	    "{\"id\":1,\"method\":\"m\",\"params\":{\"a\":1,\"a\":1}}",
	    ERM_PARSE_ERROR, ID_NULL, 0, NULL),
	/*
	 * Valid JSON that jansson cannot hold is a parse error too: an integer
	 * beyond int64 and a \u0000 inside a string. PROTOCOL.md is silent on
	 * both; these rows pin the current choice.
	 */
	C("id integer beyond int64",
	    "{\"id\":99999999999999999999,\"method\":\"m\"}",
	    ERM_PARSE_ERROR, ID_NULL, 0, NULL),
	C("escaped NUL in a string", "{\"id\":1,\"method\":\"a\\u0000b\"}",
	    ERM_PARSE_ERROR, ID_NULL, 0, NULL),

	/* Well-formed JSON that is not a request object: -32600, no id. */
	C("array", "[1,2,3]", ERM_INVALID_REQUEST, ID_NULL, 0, NULL),
	C("array of a request", "[{\"id\":1,\"method\":\"m\"}]",
	    ERM_INVALID_REQUEST, ID_NULL, 0, NULL),
	C("number", "42", ERM_INVALID_REQUEST, ID_NULL, 0, NULL),
	C("string", "\"ping\"", ERM_INVALID_REQUEST, ID_NULL, 0, NULL),
	C("null", "null", ERM_INVALID_REQUEST, ID_NULL, 0, NULL),
	C("true", "true", ERM_INVALID_REQUEST, ID_NULL, 0, NULL),
	C("empty object", "{}", ERM_INVALID_REQUEST, ID_NULL, 0, NULL),

	/* id. */
	C("missing id", "{\"method\":\"ping\"}",
	    ERM_INVALID_REQUEST, ID_NULL, 0, NULL),
	C("id null", "{\"id\":null,\"method\":\"ping\"}",
	    ERM_INVALID_REQUEST, ID_NULL, 0, NULL),
	C("id float", "{\"id\":1.5,\"method\":\"ping\"}",
	    ERM_INVALID_REQUEST, ID_NULL, 0, NULL),
	C("id float with integral value", "{\"id\":1.0,\"method\":\"ping\"}",
	    ERM_INVALID_REQUEST, ID_NULL, 0, NULL),
	C("id exponent", "{\"id\":1e3,\"method\":\"ping\"}",
	    ERM_INVALID_REQUEST, ID_NULL, 0, NULL),
	C("id object", "{\"id\":{\"n\":1},\"method\":\"ping\"}",
	    ERM_INVALID_REQUEST, ID_NULL, 0, NULL),
	C("id array", "{\"id\":[1],\"method\":\"ping\"}",
	    ERM_INVALID_REQUEST, ID_NULL, 0, NULL),
	C("id boolean", "{\"id\":true,\"method\":\"ping\"}",
	    ERM_INVALID_REQUEST, ID_NULL, 0, NULL),
	C("id string", "{\"id\":\"abc\",\"method\":\"ping\"}",
	    0, ID_STRING, 0, "abc"),
	C("id empty string", "{\"id\":\"\",\"method\":\"ping\"}",
	    0, ID_STRING, 0, ""),
	C("id integer", "{\"id\":7,\"method\":\"ping\"}", 0, ID_INT, 7, NULL),
	C("id zero", "{\"id\":0,\"method\":\"ping\"}", 0, ID_INT, 0, NULL),
	C("id negative", "{\"id\":-3,\"method\":\"ping\"}",
	    0, ID_INT, -3, NULL),
	C("id int64 max",
	    "{\"id\":9223372036854775807,\"method\":\"ping\"}",
	    0, ID_INT, INT64_MAX, NULL),
	C("id last", "{\"method\":\"ping\",\"params\":{},\"id\":9}",
	    0, ID_INT, 9, NULL),

	/* method: -32600, and the id is kept for the reply. */
	C("missing method", "{\"id\":5}", ERM_INVALID_REQUEST, ID_INT, 5, NULL),
	C("missing method, params given", "{\"id\":\"x\",\"params\":{}}",
	    ERM_INVALID_REQUEST, ID_STRING, 0, "x"),
	C("method number", "{\"id\":5,\"method\":123}",
	    ERM_INVALID_REQUEST, ID_INT, 5, NULL),
	C("method null", "{\"id\":5,\"method\":null}",
	    ERM_INVALID_REQUEST, ID_INT, 5, NULL),
	C("method object", "{\"id\":5,\"method\":{}}",
	    ERM_INVALID_REQUEST, ID_INT, 5, NULL),
	C("method array", "{\"id\":5,\"method\":[\"ping\"]}",
	    ERM_INVALID_REQUEST, ID_INT, 5, NULL),

	/* params. */
	C("params array", "{\"id\":6,\"method\":\"m\",\"params\":[]}",
	    ERM_INVALID_REQUEST, ID_INT, 6, NULL),
	C("params null", "{\"id\":6,\"method\":\"m\",\"params\":null}",
	    ERM_INVALID_REQUEST, ID_INT, 6, NULL),
	C("params string", "{\"id\":6,\"method\":\"m\",\"params\":\"{}\"}",
	    ERM_INVALID_REQUEST, ID_INT, 6, NULL),
	C("params number", "{\"id\":6,\"method\":\"m\",\"params\":0}",
	    ERM_INVALID_REQUEST, ID_INT, 6, NULL),
	C("params false", "{\"id\":6,\"method\":\"m\",\"params\":false}",
	    ERM_INVALID_REQUEST, ID_INT, 6, NULL),
	C("params absent", "{\"id\":6,\"method\":\"m\"}", 0, ID_INT, 6, NULL),
	C("params empty", "{\"id\":6,\"method\":\"m\",\"params\":{}}",
	    0, ID_INT, 6, NULL),
	C("params object", "{\"id\":6,\"method\":\"m\",\"params\":{\"a\":[1]}}",
	    0, ID_INT, 6, NULL),

	/* Other members. */
	C("unknown member", "{\"id\":8,\"method\":\"m\",\"foo\":1}",
	    ERM_INVALID_REQUEST, ID_INT, 8, NULL),
	C("unknown member only", "{\"foo\":1}",
	    ERM_INVALID_REQUEST, ID_NULL, 0, NULL),
	C("member differing in case", "{\"id\":8,\"Method\":\"m\"}",
	    ERM_INVALID_REQUEST, ID_INT, 8, NULL),
	C("result member in a request",
	    "{\"id\":8,\"method\":\"m\",\"result\":{}}",
	    ERM_INVALID_REQUEST, ID_INT, 8, NULL),
	C("jsonrpc 2.0", "{\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"m\"}",
	    0, ID_INT, 9, NULL),
	C("jsonrpc 1.0", "{\"jsonrpc\":\"1.0\",\"id\":9,\"method\":\"m\"}",
	    ERM_INVALID_REQUEST, ID_INT, 9, NULL),
	C("jsonrpc number", "{\"jsonrpc\":2.0,\"id\":9,\"method\":\"m\"}",
	    ERM_INVALID_REQUEST, ID_INT, 9, NULL),
	C("jsonrpc null", "{\"jsonrpc\":null,\"id\":9,\"method\":\"m\"}",
	    ERM_INVALID_REQUEST, ID_INT, 9, NULL),
	C("jsonrpc 2.0 with NUL tail", "{\"jsonrpc\":\"2.0\\u0000\",\"id\":9,"
	    "\"method\":\"m\"}", ERM_PARSE_ERROR, ID_NULL, 0, NULL),

	/* Strings that look like structure do not count toward the depth. */
	C("brackets inside a string",
	    "{\"id\":1,\"method\":\"m\",\"params\":{\"s\":\""
	    "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["
	    "{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{{\"}}",
	    0, ID_INT, 1, NULL),
	C("escaped quote then brackets inside a string",
	    "{\"id\":1,\"method\":\"m\",\"params\":{\"s\":\"\\\""
	    "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\\\"\"}}",
	    0, ID_INT, 1, NULL),
	/*
	 * An escaped backslash ends just before the closing quote; a scanner
	 * that took \" there for an escaped quote would read the brackets of
	 * the next string as structure.
	 */
	C("escaped backslash before the closing quote",
	    "{\"id\":\"\\\\\",\"method\":\"m\",\"params\":{\"s\":\""
	    "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\"}}",
	    0, ID_STRING, 0, "\\"),
	C("escaped quote in method", "{\"id\":1,\"method\":\"a\\\"b\"}",
	    0, ID_INT, 1, NULL),
	C("unicode escapes", "{\"id\":\"\\u00e9\\ud83d\\ude00\","
	    "\"method\":\"m\"}", 0, ID_STRING, 0, "\xc3\xa9\xf0\x9f\x98\x80"),
	C("raw UTF-8", "{\"id\":\"\xc3\xa9\xf0\x9f\x98\x80\",\"method\":\"m\"}",
	    0, ID_STRING, 0, "\xc3\xa9\xf0\x9f\x98\x80"),
	C("whitespace around", " \t\r\n{ \"id\" : 1 , \"method\" : \"m\" }\n",
	    0, ID_INT, 1, NULL),
#undef C
};

START_TEST(envelope_table)
{
	const struct env_case	*c = &env_cases[_i];
	struct erm_envelope	 env;
	char			 msg[256];
	int			 code;

	msg[0] = '\0';
	code = erm_envelope_decode((const uint8_t *)c->body, c->len, &env, msg,
	    sizeof(msg));
	ck_assert_msg(code == c->code, "%s: code %d (%s), want %d", c->name,
	    code, msg, c->code);
	if (code != 0)
		ck_assert_msg(msg[0] != '\0', "%s: no message", c->name);

	switch (c->id) {
	case ID_NULL:
		ck_assert_msg(env.id == NULL, "%s: id set", c->name);
		break;
	case ID_INT:
		ck_assert_msg(json_is_integer(env.id), "%s: id not an integer",
		    c->name);
		ck_assert_msg(json_integer_value(env.id) == c->id_int,
		    "%s: id %" JSON_INTEGER_FORMAT
		    ", want %" JSON_INTEGER_FORMAT, c->name,
		    json_integer_value(env.id), c->id_int);
		break;
	case ID_STRING:
		ck_assert_msg(json_is_string(env.id), "%s: id not a string",
		    c->name);
		ck_assert_str_eq(json_string_value(env.id), c->id_str);
		break;
	}

	if (code == 0) {
		ck_assert_msg(json_is_object(env.doc), "%s: no doc", c->name);
		ck_assert_ptr_eq(env.id, json_object_get(env.doc, "id"));
		ck_assert_ptr_nonnull(env.method);
		ck_assert_ptr_eq(env.method, json_string_value(
		    json_object_get(env.doc, "method")));
		ck_assert_msg(json_is_object(env.params), "%s: params",
		    c->name);
	}
	erm_envelope_clear(&env);
	ck_assert_ptr_null(env.doc);
	ck_assert_ptr_null(env.id);
	ck_assert_ptr_null(env.method);
	ck_assert_ptr_null(env.params);
}
END_TEST

START_TEST(envelope_fields)
{
	static const char	 absent[] = "{\"id\":1,\"method\":\"ping\"}";
	static const char	 given[] = "{\"id\":1,"
	    "\"method\":\"breaker.get\",\"params\":{\"name\":\"db\"}}";
	static const char	 quoted[] = "{\"id\":1,\"method\":\"a\\\"b\"}";
	struct erm_envelope	 env;
	char			 msg[128];

	ck_assert_int_eq(erm_envelope_decode((const uint8_t *)absent,
	    sizeof(absent) - 1, &env, msg, sizeof(msg)), 0);
	ck_assert_str_eq(env.method, "ping");
	ck_assert_uint_eq(json_object_size(env.params), 0);
	/* The {} stands in the document, so it lives as long as env does. */
	ck_assert_ptr_eq(env.params, json_object_get(env.doc, "params"));
	erm_envelope_clear(&env);

	ck_assert_int_eq(erm_envelope_decode((const uint8_t *)given,
	    sizeof(given) - 1, &env, msg, sizeof(msg)), 0);
	ck_assert_str_eq(env.method, "breaker.get");
	ck_assert_uint_eq(json_object_size(env.params), 1);
	ck_assert_str_eq(json_string_value(json_object_get(env.params,
	    "name")), "db");
	erm_envelope_clear(&env);

	ck_assert_int_eq(erm_envelope_decode((const uint8_t *)quoted,
	    sizeof(quoted) - 1, &env, msg, sizeof(msg)), 0);
	ck_assert_str_eq(env.method, "a\"b");
	erm_envelope_clear(&env);
}
END_TEST

/* The body is not NUL-terminated: the decoder must stop at len. */
START_TEST(envelope_uses_len)
{
	static const char	 body[] =
	    "{\"id\":1,\"method\":\"ping\"}GARBAGE";
	struct erm_envelope	 env;
	char			 msg[128];

	ck_assert_int_eq(erm_envelope_decode((const uint8_t *)body,
	    sizeof(body) - 1 - 7, &env, msg, sizeof(msg)), 0);
	ck_assert_str_eq(env.method, "ping");
	erm_envelope_clear(&env);
	ck_assert_int_eq(erm_envelope_decode((const uint8_t *)body,
	    sizeof(body) - 1 - 8, &env, msg, sizeof(msg)), ERM_PARSE_ERROR);
	erm_envelope_clear(&env);
}
END_TEST

/* A short message buffer is filled, truncated and NUL-terminated. */
START_TEST(envelope_short_msg)
{
	static const char	 body[] = "{\"id\":1,\"method\":\"m\","
	    "\"a_rather_long_unknown_member_name\":1}";
	struct erm_envelope	 env;
	char			 msg[8];

	memset(msg, 'x', sizeof(msg));
	ck_assert_int_eq(erm_envelope_decode((const uint8_t *)body,
	    sizeof(body) - 1, &env, msg, sizeof(msg)), ERM_INVALID_REQUEST);
	ck_assert_uint_eq(strlen(msg), sizeof(msg) - 1);
	erm_envelope_clear(&env);
}
END_TEST

/*
 * A request whose deepest value sits at depth levels: the envelope object is
 * level 1, params level 2, and the rest are arrays inside params.a.
 */
static char *
nested_request(int levels, size_t *len)
{
	static const char	 head[] =
	    "{\"id\":1,\"method\":\"m\",\"params\":{\"a\":";
	char			*s, *p;
	int			 arrays = levels - 2, i;

	s = malloc(sizeof(head) + 2 * (size_t)arrays + 4);
	ck_assert_ptr_nonnull(s);
	p = s + strlen(strcpy(s, head));
	for (i = 0; i < arrays; i++)
		*p++ = '[';
	*p++ = '1';
	for (i = 0; i < arrays; i++)
		*p++ = ']';
	*p++ = '}';
	*p++ = '}';
	*p = '\0';
	*len = (size_t)(p - s);
	return (s);
}

/* Bare arrays nested levels deep. */
static char *
nested_arrays(int levels, size_t *len)
{
	char	*s;

	s = malloc(2 * (size_t)levels + 1);
	ck_assert_ptr_nonnull(s);
	memset(s, '[', (size_t)levels);
	memset(s + levels, ']', (size_t)levels);
	s[2 * levels] = '\0';
	*len = 2 * (size_t)levels;
	return (s);
}

START_TEST(envelope_depth)
{
	static const struct {
		char	*(*make)(int, size_t *);
		int	 levels;
		int	 code;
	} cases[] = {
		{ nested_request, ERM_MAX_DEPTH - 1, 0 },
		{ nested_request, ERM_MAX_DEPTH, 0 },
		{ nested_request, ERM_MAX_DEPTH + 1, ERM_PARSE_ERROR },
		{ nested_request, 1000, ERM_PARSE_ERROR },
		/* Not a request, but only the depth decides which error. */
		{ nested_arrays, ERM_MAX_DEPTH, ERM_INVALID_REQUEST },
		{ nested_arrays, ERM_MAX_DEPTH + 1, ERM_PARSE_ERROR },
		{ nested_arrays, 100000, ERM_PARSE_ERROR },
	};
	struct erm_envelope	 env;
	char			 msg[128], *s;
	size_t			 i, len;
	int			 code;

	ck_assert_int_eq(ERM_MAX_DEPTH, 32);
	for (i = 0; i < LEN(cases); i++) {
		s = cases[i].make(cases[i].levels, &len);
		code = erm_envelope_decode((const uint8_t *)s, len, &env, msg,
		    sizeof(msg));
		ck_assert_msg(code == cases[i].code,
		    "case %zu, depth %d: code %d (%s), want %d", i,
		    cases[i].levels, code, msg, cases[i].code);
		erm_envelope_clear(&env);
		free(s);
	}
}
END_TEST

/* ---- encoding ---------------------------------------------------------- */

START_TEST(encode_round_trip)
{
	json_t			*obj, *back;
	json_error_t		 jerr;
	struct erm_envelope	 env;
	const uint8_t		*body;
	uint8_t			*frame;
	size_t			 len, body_len, consumed;
	char			 msg[128];

	obj = json_pack("{s:I, s:s, s:{s:s, s:[i, b, n], s:f}}", "id",
	    (json_int_t)42, "method", "breaker.record", "params", "name",
	    "db.\xc3\xa9", "list", 1, 1, "rate", 0.5);
	ck_assert_ptr_nonnull(obj);
	frame = erm_frame_encode(obj, ERM_MAX_FRAME_DEFAULT, &len);
	ck_assert_ptr_nonnull(frame);
	ck_assert_uint_eq(erm_frame_declared(frame, len), len - ERM_FRAME_HDR);

	ck_assert_int_eq(erm_frame_parse(frame, len, ERM_MAX_FRAME_DEFAULT,
	    &body, &body_len, &consumed), ERM_FRAME_OK);
	ck_assert_uint_eq(consumed, len);
	/* Compact: no blanks between tokens. */
	ck_assert_ptr_null(memchr(body, ' ', body_len));
	ck_assert_ptr_null(memchr(body, '\n', body_len));

	back = json_loadb((const char *)body, body_len, JSON_REJECT_DUPLICATES,
	    &jerr);
	ck_assert_ptr_nonnull(back);
	ck_assert(json_equal(obj, back));
	json_decref(back);

	ck_assert_int_eq(erm_envelope_decode(body, body_len, &env, msg,
	    sizeof(msg)), 0);
	ck_assert_int_eq(json_integer_value(env.id), 42);
	ck_assert_str_eq(env.method, "breaker.record");
	ck_assert(json_equal(env.params, json_object_get(obj, "params")));
	erm_envelope_clear(&env);

	free(frame);
	json_decref(obj);
}
END_TEST

START_TEST(encode_limit)
{
	json_t	*obj;
	uint8_t	*frame;
	char	*big;
	size_t	 len = 12345, n, slen;

	/* {"a":"xxxx"} is 8 bytes plus the string. */
	obj = json_pack("{s:s}", "a", "xxxx");
	ck_assert_ptr_nonnull(obj);
	n = 12;
	frame = erm_frame_encode(obj, n, &len);
	ck_assert_ptr_nonnull(frame);
	ck_assert_uint_eq(len, ERM_FRAME_HDR + n);
	ck_assert_mem_eq(frame, "\0\0\0\x0c{\"a\":\"xxxx\"}", len);
	free(frame);

	len = 12345;
	ck_assert_ptr_null(erm_frame_encode(obj, n - 1, &len));
	ck_assert_uint_eq(len, 12345);	/* untouched on failure */
	ck_assert_ptr_null(erm_frame_encode(obj, 0, &len));
	json_decref(obj);

	/* A body one byte past the default limit. */
	slen = ERM_MAX_FRAME_DEFAULT - 8 + 1;
	big = malloc(slen + 1);
	ck_assert_ptr_nonnull(big);
	memset(big, 'x', slen);
	big[slen] = '\0';
	obj = json_pack("{s:s}", "a", big);
	ck_assert_ptr_nonnull(obj);
	ck_assert_ptr_null(erm_frame_encode(obj, ERM_MAX_FRAME_DEFAULT, &len));
	frame = erm_frame_encode(obj, ERM_MAX_FRAME_DEFAULT + 1, &len);
	ck_assert_ptr_nonnull(frame);
	ck_assert_uint_eq(len, ERM_FRAME_HDR + ERM_MAX_FRAME_DEFAULT + 1);
	free(frame);
	json_decref(obj);
	free(big);
}
END_TEST

/* Only objects and arrays serialise without JSON_ENCODE_ANY. */
START_TEST(encode_not_container)
{
	json_t	*s;
	size_t	 len;

	s = json_string("ping");
	ck_assert_ptr_nonnull(s);
	ck_assert_ptr_null(erm_frame_encode(s, ERM_MAX_FRAME_DEFAULT, &len));
	json_decref(s);
}
END_TEST

/* ---- error codes ------------------------------------------------------- */

START_TEST(code_names)
{
	static const struct {
		int		 code;
		const char	*name;
	} cases[] = {
		{ ERM_PARSE_ERROR, "parse_error" },
		{ ERM_INVALID_REQUEST, "invalid_request" },
		{ ERM_METHOD_NOT_FOUND, "method_not_found" },
		{ ERM_INVALID_PARAMS, "invalid_params" },
		{ ERM_INTERNAL_ERROR, "internal_error" },
		{ ERM_NOT_FOUND, "not_found" },
		{ ERM_PERMISSION_DENIED, "permission_denied" },
		{ ERM_CONFLICT, "conflict" },
		{ ERM_BREAKER_OPEN, "breaker_open" },
		{ ERM_LIMIT_EXCEEDED, "limit_exceeded" },
		{ ERM_IO_ERROR, "io_error" },
		{ ERM_UNAVAILABLE, "unavailable" },
		{ ERM_CORRUPTED, "corrupted" },
		{ ERM_TIMEOUT, "timeout" },
		{ ERM_CANCELLED, "cancelled" },
		/* PROTOCOL.md §3 has no other code. */
		{ 0, "unknown" },
		{ 1000, "unknown" },
		{ 1011, "unknown" },
		{ -32604, "unknown" },
		{ -32000, "unknown" },
		{ INT_MIN, "unknown" },
		{ INT_MAX, "unknown" },
	};
	size_t	i;

	/* The numbers themselves are the contract (PROTOCOL.md §3). */
	ck_assert_int_eq(ERM_PARSE_ERROR, -32700);
	ck_assert_int_eq(ERM_INVALID_REQUEST, -32600);
	ck_assert_int_eq(ERM_METHOD_NOT_FOUND, -32601);
	ck_assert_int_eq(ERM_INVALID_PARAMS, -32602);
	ck_assert_int_eq(ERM_INTERNAL_ERROR, -32603);
	ck_assert_int_eq(ERM_NOT_FOUND, 1001);
	ck_assert_int_eq(ERM_PERMISSION_DENIED, 1002);
	ck_assert_int_eq(ERM_CONFLICT, 1003);
	ck_assert_int_eq(ERM_BREAKER_OPEN, 1004);
	ck_assert_int_eq(ERM_LIMIT_EXCEEDED, 1005);
	ck_assert_int_eq(ERM_IO_ERROR, 1006);
	ck_assert_int_eq(ERM_UNAVAILABLE, 1007);
	ck_assert_int_eq(ERM_CORRUPTED, 1008);
	ck_assert_int_eq(ERM_TIMEOUT, 1009);
	ck_assert_int_eq(ERM_CANCELLED, 1010);

	for (i = 0; i < LEN(cases); i++)
		ck_assert_str_eq(erm_code_name(cases[i].code), cases[i].name);
}
END_TEST

static Suite *
frame_suite(void)
{
	Suite	*s;
	TCase	*tc;

	s = suite_create("frame");

	tc = tcase_create("parse");
	tcase_add_loop_test(tc, frame_table, 0, (int)LEN(frame_cases));
	tcase_add_test(tc, frame_default_max);
	tcase_add_test(tc, frame_byte_at_a_time);
	tcase_add_test(tc, frame_declared_and_header);
	suite_add_tcase(s, tc);

	tc = tcase_create("envelope");
	tcase_add_loop_test(tc, envelope_table, 0, (int)LEN(env_cases));
	tcase_add_test(tc, envelope_fields);
	tcase_add_test(tc, envelope_uses_len);
	tcase_add_test(tc, envelope_short_msg);
	tcase_add_test(tc, envelope_depth);
	suite_add_tcase(s, tc);

	tc = tcase_create("encode");
	tcase_add_test(tc, encode_round_trip);
	tcase_add_test(tc, encode_limit);
	tcase_add_test(tc, encode_not_container);
	suite_add_tcase(s, tc);

	tc = tcase_create("codes");
	tcase_add_test(tc, code_names);
	suite_add_tcase(s, tc);

	return (s);
}

int
main(void)
{
	SRunner	*sr;
	int	 failed;

	sr = srunner_create(frame_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return (failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE);
}
