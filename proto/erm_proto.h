/*
 * The ermd wire format: framing, error codes and limits, shared by the daemon
 * and every client. No sockets and no event loop here.
 *
 * Bump ERM_PROTO_VERSION whenever a message changes in a way an existing
 * client would notice.
 */
#ifndef ERM_PROTO_H
#define ERM_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#define ERM_PROTO_VERSION	1

/* A frame is a 4-byte big-endian length followed by that many bytes. */
#define ERM_FRAME_HDR		4
#define ERM_MAX_FRAME_DEFAULT	(1024 * 1024)
#define ERM_MAX_DEPTH		32

/* Error codes of PROTOCOL.md §3. */
enum erm_code {
	ERM_PARSE_ERROR		= -32700,
	ERM_INVALID_REQUEST	= -32600,
	ERM_METHOD_NOT_FOUND	= -32601,
	ERM_INVALID_PARAMS	= -32602,
	ERM_INTERNAL_ERROR	= -32603,
	ERM_NOT_FOUND		= 1001,
	ERM_PERMISSION_DENIED	= 1002,
	ERM_CONFLICT		= 1003,
	ERM_BREAKER_OPEN	= 1004,
	ERM_LIMIT_EXCEEDED	= 1005,
	ERM_IO_ERROR		= 1006,
	ERM_UNAVAILABLE		= 1007,
	ERM_CORRUPTED		= 1008,
	ERM_TIMEOUT		= 1009,
	ERM_CANCELLED		= 1010,
};

/* The code's name as in the table ("parse_error"), or "unknown". */
const char	*erm_code_name(int code);

/*
 * Result of looking at the front of a byte buffer for one frame.
 * ERM_FRAME_MORE: not enough bytes yet (the header may be partial).
 * ERM_FRAME_OK: a complete frame; *body and *body_len describe it and
 *   *consumed is the number of bytes to drop from the buffer.
 * ERM_FRAME_EMPTY: the header declares zero bytes.
 * ERM_FRAME_TOO_BIG: the header declares more than max_frame bytes.
 * The header is checked as soon as its four bytes are present, so a caller
 * never has to hold or allocate more than max_frame + 4 bytes.
 */
enum erm_frame_result {
	ERM_FRAME_MORE,
	ERM_FRAME_OK,
	ERM_FRAME_EMPTY,
	ERM_FRAME_TOO_BIG,
};

enum erm_frame_result
		 erm_frame_parse(const uint8_t *buf, size_t len, size_t max_frame,
		    const uint8_t **body, size_t *body_len, size_t *consumed);

/*
 * The declared length of the frame at the front of buf, or 0 when fewer than
 * four bytes are present. Lets a reader size its buffer after the header has
 * passed erm_frame_parse's checks.
 */
uint32_t	 erm_frame_declared(const uint8_t *buf, size_t len);

/* Write the 4-byte header for a body of len bytes into hdr. */
void		 erm_frame_header(uint8_t hdr[ERM_FRAME_HDR], uint32_t len);

/*
 * Parse buf as one JSON value with jansson's strict rules (valid UTF-8, no
 * duplicate keys, no NUL in strings, 64-bit integers), refusing nesting
 * deeper than max_depth before descending into it. Returns a new reference,
 * or NULL with a static description in *err.
 */
json_t		*erm_json_parse(const uint8_t *buf, size_t len, int max_depth,
		    const char **err);

/*
 * One decoded request envelope. Fields are borrowed from the parsed document,
 * which the envelope holds a reference to; erm_envelope_clear releases it.
 */
struct erm_envelope {
	json_t		*doc;		/* new reference: the whole object */
	json_t		*id;		/* borrowed; NULL when absent/unusable */
	const char	*method;	/* borrowed */
	json_t		*params;	/* borrowed; never NULL after success */
};

/*
 * Decode one frame body as a request. On failure returns the error code
 * (ERM_PARSE_ERROR or ERM_INVALID_REQUEST), fills msg with a human reason,
 * and leaves env->id set when the id itself was usable so the error reply can
 * echo it. Returns 0 on success.
 */
int		 erm_envelope_decode(const uint8_t *body, size_t len,
		    struct erm_envelope *env, char *msg, size_t msgsz);
void		 erm_envelope_clear(struct erm_envelope *env);

/*
 * A growable byte buffer with a ceiling fixed when it is made: it never
 * grows past max bytes.
 */
struct erm_buf {
	uint8_t		*p;
	size_t		 len, cap, max;
};

int		 erm_buf_add(struct erm_buf *, const void *, size_t);
void		 erm_buf_free(struct erm_buf *);
/*
 * When ok, the bytes as a NUL-terminated string the caller frees (the
 * buffer gives it up); else, or when the NUL does not fit, the buffer is
 * freed and the result is NULL.
 */
char		*erm_buf_string(struct erm_buf *, int ok);

/*
 * Append the compact JSON text of v (the same text as jansson's
 * json_dumpb with JSON_COMPACT | JSON_ENCODE_ANY). Returns -1, leaving the
 * buffer as it was, when v is NULL, holds a non-finite real, nests deeper
 * than 128 levels or the text would pass the buffer's ceiling.
 */
int		 erm_json_write(struct erm_buf *, const json_t *v);

/*
 * The compact text of v as a NUL-terminated string the caller frees, or
 * NULL when v is NULL, cannot be written, or is longer than max bytes.
 */
char		*erm_json_text(const json_t *v, size_t max);

/*
 * An object written straight into a buffer, member by member, for the
 * replies and rows of hot paths that would otherwise build a jansson tree
 * only to serialise it. erm_jw_begin opens an object (as member key, or
 * at the top with key NULL), erm_jw_end closes it; each member adds the
 * comma it needs. Strings must be valid UTF-8 (they are escaped as
 * erm_json_write does); a NULL string is written as null. Each returns 0,
 * or -1 when the buffer reached its ceiling (the text is then incomplete).
 */
int		 erm_jw_begin(struct erm_buf *, const char *key);
int		 erm_jw_end(struct erm_buf *);
int		 erm_jw_str(struct erm_buf *, const char *key, const char *s);
int		 erm_jw_int(struct erm_buf *, const char *key, int64_t v);
int		 erm_jw_bool(struct erm_buf *, const char *key, int v);

/*
 * Parse text that ermd itself wrote (a stored column): NULL for NULL or for
 * text that does not parse. Nesting up to 64 levels is accepted.
 */
json_t		*erm_json_parse_text(const char *s);

/*
 * Serialise obj compactly and append a complete frame to a caller buffer.
 * Returns a malloc'ed frame (header + body) and its size in *len, or NULL when
 * serialisation fails or the body would exceed max_frame.
 */
uint8_t		*erm_frame_encode(const json_t *obj, size_t max_frame, size_t *len);

#endif
