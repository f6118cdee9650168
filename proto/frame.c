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

int
erm_json_depth(const uint8_t *buf, size_t len, int limit)
{
	size_t	i;
	int	depth = 0, max = 0, in_str = 0;

	for (i = 0; i < len; i++) {
		uint8_t	c = buf[i];

		if (in_str) {
			if (c == '\\')
				i++;	/* the escaped byte cannot end the string */
			else if (c == '"')
				in_str = 0;
			continue;
		}
		switch (c) {
		case '"':
			in_str = 1;
			break;
		case '{':
		case '[':
			if (++depth > max) {
				max = depth;
				if (max > limit)
					return (max);
			}
			break;
		case '}':
		case ']':
			depth--;
			break;
		}
	}
	return (max);
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
	json_error_t	 jerr;
	json_t		*id, *method, *params, *v;
	const char	*key;

	memset(env, 0, sizeof(*env));
	if (erm_json_depth(body, len, ERM_MAX_DEPTH) > ERM_MAX_DEPTH) {
		snprintf(msg, msgsz, "JSON nested deeper than %d levels",
		    ERM_MAX_DEPTH);
		return (ERM_PARSE_ERROR);
	}
	/*
	 * jansson rejects invalid UTF-8 and, with this flag, duplicate keys;
	 * DECODE_ANY lets a well-formed non-object reach the envelope check
	 * below and get -32600 rather than a parse error.
	 */
	env->doc = json_loadb((const char *)body, len,
	    JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
	if (env->doc == NULL) {
		snprintf(msg, msgsz, "invalid JSON: %s", jerr.text);
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
	size_t	 n;
	uint8_t	*frame;

	n = json_dumpb(obj, NULL, 0, JSON_COMPACT);
	if (n == 0 || n > max_frame)
		return (NULL);
	if ((frame = malloc(ERM_FRAME_HDR + n)) == NULL)
		return (NULL);
	if (json_dumpb(obj, (char *)frame + ERM_FRAME_HDR, n,
	    JSON_COMPACT) != n) {
		free(frame);
		return (NULL);
	}
	erm_frame_header(frame, (uint32_t)n);
	*len = ERM_FRAME_HDR + n;
	return (frame);
}
