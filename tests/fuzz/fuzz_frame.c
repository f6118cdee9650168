/*
 * libFuzzer target for proto/frame.c: the input is a byte stream from a
 * client, cut into frames and decoded the way a connection does it.
 *
 * Build and run: make fuzz (FUZZ_SECONDS=n), or by hand:
 *	clang -g -O1 -fsanitize=fuzzer,address,undefined -Iproto \
 *	    tests/fuzz/fuzz_frame.c proto/frame.c proto/json_read.c proto/json_write.c -ljansson -lm
 *	./a.out -max_len=4096 corpus/
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "erm_proto.h"

/* Small, so that inputs of a few KiB reach TOO_BIG and the exact limit. */
#define FUZZ_MAX_FRAME	4096

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

/*
 * erm_json_write must produce exactly the text of jansson's own dumper for
 * whatever a client could make the daemon hold.
 */
static void
check_writer(const json_t *v)
{
	struct erm_buf	 b = { NULL, 0, 0, 1 << 20 };
	char		*want;

	want = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
	if (erm_json_write(&b, v) == -1) {
		if (want != NULL)
			abort();
		return;
	}
	if (want == NULL || strlen(want) != b.len ||
	    memcmp(want, b.p, b.len) != 0)
		abort();
	free(want);
	erm_buf_free(&b);
}

static void
decode(const uint8_t *body, size_t len)
{
	struct erm_envelope	 env;
	char			 msg[128];
	int			 code;

	code = erm_envelope_decode(body, len, &env, msg, sizeof(msg));
	if (env.doc != NULL)
		check_writer(env.doc);
	if (code == 0) {
		/* What a successful decode promises its caller. */
		if (!json_is_object(env.doc) || env.method == NULL ||
		    !json_is_object(env.params) ||
		    !(json_is_integer(env.id) || json_is_string(env.id)))
			abort();
	} else {
		if (code != ERM_PARSE_ERROR && code != ERM_INVALID_REQUEST &&
		    code != ERM_INTERNAL_ERROR)
			abort();
		if (memchr(msg, '\0', sizeof(msg)) == NULL)
			abort();
		/* An id kept for the error reply is always a usable one. */
		if (env.id != NULL &&
		    !(json_is_integer(env.id) || json_is_string(env.id)))
			abort();
	}
	erm_envelope_clear(&env);
}

/*
 * The parser must agree with jansson on every input: both accept (building
 * equal values) or both refuse. jansson skips NUL bytes, which ermd
 * refuses; its own depth limit (2048) is far past any input tried here.
 */
static void
check_parser(const uint8_t *data, size_t size)
{
	json_t		*a, *b;
	const char	*why;

	a = erm_json_parse(data, size, 4096, &why);
	if (memchr(data, '\0', size) != NULL) {
		if (a != NULL)
			abort();
		return;
	}
	b = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES |
	    JSON_DECODE_ANY, NULL);
	if ((a == NULL) != (b == NULL) || (a != NULL && !json_equal(a, b)))
		abort();
	json_decref(a);
	json_decref(b);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t		*body;
	size_t			 off = 0, body_len, consumed;
	enum erm_frame_result	 r;

	/*
	 * Consume frames from the front of the buffer until one is incomplete
	 * or refused, as a connection's read callback does; a refused header
	 * ends the connection, so nothing after it is looked at.
	 */
	if (size < 2000)
		check_parser(data, size);
	for (;;) {
		body = NULL;
		body_len = consumed = 0;
		r = erm_frame_parse(data + off, size - off, FUZZ_MAX_FRAME,
		    &body, &body_len, &consumed);
		if (r != ERM_FRAME_OK)
			break;
		if (body != data + off + ERM_FRAME_HDR || body_len == 0 ||
		    body_len > FUZZ_MAX_FRAME ||
		    consumed != ERM_FRAME_HDR + body_len ||
		    consumed > size - off)
			abort();
		decode(body, body_len);
		off += consumed;
	}
	if (r == ERM_FRAME_MORE && size - off >= ERM_FRAME_HDR &&
	    erm_frame_declared(data + off, size - off) <= size - off -
	    ERM_FRAME_HDR)
		abort();	/* MORE although the whole frame is there */

	/* The whole input as one frame body, as from a client that sent it. */
	decode(data, size);
	return (0);
}
