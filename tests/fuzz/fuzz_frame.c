/*
 * libFuzzer target for proto/frame.c: the input is a byte stream from a
 * client, cut into frames and decoded the way a connection does it.
 *
 * Build and run: make fuzz (FUZZ_SECONDS=n), or by hand:
 *	clang -g -O1 -fsanitize=fuzzer,address,undefined -Iproto \
 *	    tests/fuzz/fuzz_frame.c proto/frame.c -ljansson
 *	./a.out -max_len=4096 corpus/
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "erm_proto.h"

/* Small, so that inputs of a few KiB reach TOO_BIG and the exact limit. */
#define FUZZ_MAX_FRAME	4096

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static void
decode(const uint8_t *body, size_t len)
{
	struct erm_envelope	 env;
	char			 msg[128];
	int			 code;

	code = erm_envelope_decode(body, len, &env, msg, sizeof(msg));
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
