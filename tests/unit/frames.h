/*
 * Framed I/O for unit tests that play the daemon's side of a socket pair
 * (test_liberm, test_liberm_decide). Included by each; nothing asserts
 * here, so a fake daemon may run in a thread.
 */
#ifndef TEST_FRAMES_H
#define TEST_FRAMES_H

#include <sys/socket.h>

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "erm_proto.h"

/* All of buf, or -1 (SIGPIPE is not raised). */
static inline int
frames_write_all(int fd, const void *buf, size_t len)
{
	const uint8_t	*p = buf;
	ssize_t		 n;

	while (len > 0) {
		n = send(fd, p, len, MSG_NOSIGNAL);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			return (-1);
		p += n;
		len -= (size_t)n;
	}
	return (0);
}

/* Exactly len bytes, or -1 at EOF or on an error. */
static inline int
frames_read_all(int fd, void *buf, size_t len)
{
	uint8_t	*p = buf;
	ssize_t	 n;

	while (len > 0) {
		n = read(fd, p, len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n <= 0)
			return (-1);
		p += n;
		len -= (size_t)n;
	}
	return (0);
}

/* One frame holding text; 0 or -1. */
static inline int
frames_send(int fd, const char *text)
{
	uint8_t	hdr[ERM_FRAME_HDR];

	erm_frame_header(hdr, (uint32_t)strlen(text));
	if (frames_write_all(fd, hdr, sizeof(hdr)) == -1)
		return (-1);
	return (frames_write_all(fd, text, strlen(text)));
}

/* One frame of at most max bytes, parsed: a new reference, NULL at EOF. */
static inline json_t *
frames_recv(int fd, uint32_t max)
{
	uint8_t	 hdr[ERM_FRAME_HDR];
	char	*body;
	uint32_t n;
	json_t	*msg;

	if (frames_read_all(fd, hdr, sizeof(hdr)) == -1)
		return (NULL);
	n = erm_frame_declared(hdr, sizeof(hdr));
	if (n == 0 || n > max || (body = malloc(n)) == NULL)
		return (NULL);
	if (frames_read_all(fd, body, n) == -1) {
		free(body);
		return (NULL);
	}
	msg = json_loadb(body, n, JSON_REJECT_DUPLICATES, NULL);
	free(body);
	return (msg);
}

#endif
