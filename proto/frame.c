/* Frame codec and request-envelope decoding for the ermd wire protocol. */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "erm_proto.h"

static const struct {
	int		 code;
	const char	*name;
} code_names[] = {
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
};

/* Part of liberm's public API too (erm.h), hence visible. */
__attribute__((visibility("default"))) const char *
erm_code_name(int code)
{
	size_t	i;

	for (i = 0; i < sizeof(code_names) / sizeof(code_names[0]); i++)
		if (code_names[i].code == code)
			return (code_names[i].name);
	return ("unknown");
}

uint32_t
erm_frame_declared(const uint8_t *buf, size_t len)
{
	if (len < ERM_FRAME_HDR)
		return (0);
	return ((uint32_t)buf[0] << 24 | (uint32_t)buf[1] << 16 |
	    (uint32_t)buf[2] << 8 | (uint32_t)buf[3]);
}

void
erm_frame_header(uint8_t hdr[ERM_FRAME_HDR], uint32_t len)
{
	hdr[0] = (uint8_t)(len >> 24);
	hdr[1] = (uint8_t)(len >> 16);
	hdr[2] = (uint8_t)(len >> 8);
	hdr[3] = (uint8_t)len;
}

/*
 * The header is judged the moment its four bytes are present, before any
 * body byte is looked at: a reader that follows the result never buffers or
 * allocates more than max_frame + 4 bytes, whatever length a peer declares.
 */
enum erm_frame_result
erm_frame_parse(const uint8_t *buf, size_t len, size_t max_frame,
    const uint8_t **body, size_t *body_len, size_t *consumed)
{
	uint32_t	n;

	if (len < ERM_FRAME_HDR)
		return (ERM_FRAME_MORE);
	n = erm_frame_declared(buf, len);
	if (n == 0)
		return (ERM_FRAME_EMPTY);
	if (n > max_frame)
		return (ERM_FRAME_TOO_BIG);
	if (len - ERM_FRAME_HDR < n)
		return (ERM_FRAME_MORE);
	*body = buf + ERM_FRAME_HDR;
	*body_len = n;
	*consumed = ERM_FRAME_HDR + (size_t)n;
	return (ERM_FRAME_OK);
}

void
erm_envelope_clear(struct erm_envelope *env)
{
	json_decref(env->doc);
	memset(env, 0, sizeof(*env));
}

int
erm_envelope_decode(const uint8_t *body, size_t len, struct erm_envelope *env,
    char *msg, size_t msgsz)
{
	json_t		*id, *method, *params, *v;
	const char	*key, *why;

	memset(env, 0, sizeof(*env));
	/*
	 * Any JSON value parses, so that a well-formed non-object reaches the
	 * envelope check below and gets -32600 rather than a parse error.
	 */
	if ((env->doc = erm_json_parse(body, len, ERM_MAX_DEPTH,
	    &why)) == NULL) {
		snprintf(msg, msgsz, "invalid JSON: %s", why);
		return (ERM_PARSE_ERROR);
	}
	if (!json_is_object(env->doc)) {
		snprintf(msg, msgsz, "request is not a JSON object");
		return (ERM_INVALID_REQUEST);
	}

	id = json_object_get(env->doc, "id");
	if (id != NULL && (json_is_integer(id) || json_is_string(id)))
		env->id = id;
	json_object_foreach(env->doc, key, v) {
		if (strcmp(key, "id") != 0 && strcmp(key, "method") != 0 &&
		    strcmp(key, "params") != 0 && strcmp(key, "jsonrpc") != 0) {
			snprintf(msg, msgsz, "unknown member '%.64s'", key);
			return (ERM_INVALID_REQUEST);
		}
	}
	if (id == NULL) {
		snprintf(msg, msgsz, "'id' is missing");
		return (ERM_INVALID_REQUEST);
	}
	if (env->id == NULL) {
		snprintf(msg, msgsz, "'id' must be an integer or a string");
		return (ERM_INVALID_REQUEST);
	}
	v = json_object_get(env->doc, "jsonrpc");
	if (v != NULL && (!json_is_string(v) ||
	    strcmp(json_string_value(v), "2.0") != 0)) {
		snprintf(msg, msgsz, "'jsonrpc' must be \"2.0\"");
		return (ERM_INVALID_REQUEST);
	}
	method = json_object_get(env->doc, "method");
	if (method == NULL || !json_is_string(method)) {
		snprintf(msg, msgsz, "'method' is %s",
		    method == NULL ? "missing" : "not a string");
		return (ERM_INVALID_REQUEST);
	}
	env->method = json_string_value(method);
	params = json_object_get(env->doc, "params");
	if (params == NULL) {
		params = json_object();
		if (params == NULL || json_object_set_new(env->doc, "params",
		    params) == -1) {
			snprintf(msg, msgsz, "out of memory");
			return (ERM_INTERNAL_ERROR);
		}
	} else if (!json_is_object(params)) {
		snprintf(msg, msgsz, "'params' must be an object");
		return (ERM_INVALID_REQUEST);
	}
	env->params = params;
	return (0);
}

uint8_t *
erm_frame_encode(const json_t *obj, size_t max_frame, size_t *len)
{
	struct erm_buf	b = { NULL, 0, 0, 0 };
	uint8_t		hdr[ERM_FRAME_HDR] = { 0, 0, 0, 0 };

	if (!json_is_object(obj) && !json_is_array(obj))
		return (NULL);	/* a frame carries a container, as json_dumpb */
	b.max = max_frame > UINT32_MAX ? UINT32_MAX : max_frame;
	b.max += ERM_FRAME_HDR;
	if (erm_buf_add(&b, hdr, sizeof(hdr)) == -1 ||
	    erm_json_write(&b, obj) == -1 || b.len == ERM_FRAME_HDR) {
		erm_buf_free(&b);
		return (NULL);
	}
	erm_frame_header(b.p, (uint32_t)(b.len - ERM_FRAME_HDR));
	*len = b.len;
	return (b.p);
}
