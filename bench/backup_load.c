/*
 * backup_load: drive ermd's backup.create over one Unix socket and time it
 * from the first request to the last durable reply.
 *
 *   backup_load -s SOCK FILE...   back up each FILE, -w at a time (64)
 *   backup_load -s SOCK -         the same, one FILE per line of stdin
 *
 * Prints one line: files=N ok=N errors=N dedup=N bytes=B seconds=S
 * rate=files/s gbps=G. The first error reply is printed on stderr.
 */

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "erm_proto.h"

static double
now(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((double)ts.tv_sec + (double)ts.tv_nsec / 1e9);
}

static void
send_all(int fd, const uint8_t *p, size_t len)
{
	ssize_t	n;

	while (len > 0) {
		if ((n = write(fd, p, len)) == -1) {
			if (errno == EINTR)
				continue;
			perror("write");
			exit(1);
		}
		p += n;
		len -= (size_t)n;
	}
}

static void
send_create(int fd, int id, const char *path)
{
	json_t	*req;
	uint8_t	*frame;
	size_t	 len;

	req = json_pack("{s:i, s:s, s:{s:s}}", "id", id, "method",
	    "backup.create", "params", "path", path);
	if (req == NULL || (frame = erm_frame_encode(req, 1 << 20,
	    &len)) == NULL) {
		fprintf(stderr, "cannot encode a request for %s\n", path);
		exit(1);
	}
	send_all(fd, frame, len);
	free(frame);
	json_decref(req);
}

struct inbuf {
	uint8_t	*buf;
	size_t	 len, cap;
};

/* The next reply (a new reference); exits on EOF. Events are skipped. */
static json_t *
next_reply(int fd, struct inbuf *in)
{
	const uint8_t	*body;
	size_t		 blen, used;
	ssize_t		 n;
	json_t		*msg;

	for (;;) {
		if (erm_frame_parse(in->buf, in->len, 64 << 20, &body, &blen,
		    &used) == ERM_FRAME_OK) {
			msg = json_loadb((const char *)body, blen, 0, NULL);
			memmove(in->buf, in->buf + used, in->len - used);
			in->len -= used;
			if (msg != NULL && json_object_get(msg, "id") != NULL)
				return (msg);
			json_decref(msg);
			continue;
		}
		if (in->len == in->cap) {
			in->cap = in->cap ? in->cap * 2 : 65536;
			if ((in->buf = realloc(in->buf, in->cap)) == NULL)
				exit(1);
		}
		n = read(fd, in->buf + in->len, in->cap - in->len);
		if (n <= 0) {
			fprintf(stderr, "the daemon closed the connection\n");
			exit(1);
		}
		in->len += (size_t)n;
	}
}

/* Paths from stdin, one per line. */
static char **
read_list(int *n)
{
	char	**v = NULL, *line = NULL;
	size_t	  cap = 0, lcap = 0;
	ssize_t	  len;

	*n = 0;
	while ((len = getline(&line, &lcap, stdin)) > 0) {
		if (line[len - 1] == '\n')
			line[len - 1] = '\0';
		if ((size_t)*n == cap) {
			cap = cap ? cap * 2 : 1024;
			if ((v = realloc(v, cap * sizeof(*v))) == NULL)
				exit(1);
		}
		if ((v[(*n)++] = strdup(line)) == NULL)
			exit(1);
	}
	free(line);
	return (v);
}

int
main(int argc, char **argv)
{
	struct sockaddr_un	 sun;
	struct inbuf		 in = { NULL, 0, 0 };
	const char		*sock = NULL;
	json_t			*r, *res, *err;
	double			 t0, t;
	int			 ch, fd, window = 64, sent = 0, got = 0;
	int			 ok = 0, errors = 0, dedup = 0, nfiles;
	long long		 bytes = 0;
	char			*s;

	while ((ch = getopt(argc, argv, "s:w:")) != -1) {
		switch (ch) {
		case 's':
			sock = optarg;
			break;
		case 'w':
			window = atoi(optarg);
			break;
		default:
			goto usage;
		}
	}
	argc -= optind;
	argv += optind;
	if (sock == NULL || argc == 0 || window < 1)
		goto usage;
	if (strcmp(argv[0], "-") == 0)
		argv = read_list(&argc);
	nfiles = argc;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", sock);
	if ((fd = socket(AF_UNIX, SOCK_STREAM, 0)) == -1 ||
	    connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		perror(sock);
		return (1);
	}
	t0 = now();
	while (got < nfiles) {
		while (sent < nfiles && sent - got < window) {
			send_create(fd, sent, argv[sent]);
			sent++;
		}
		r = next_reply(fd, &in);
		got++;
		if ((res = json_object_get(r, "result")) != NULL) {
			ok++;
			bytes += json_integer_value(json_object_get(res,
			    "size"));
			dedup += json_is_true(json_object_get(res,
			    "deduplicated"));
		} else if ((err = json_object_get(r, "error")) != NULL) {
			if (errors++ == 0) {
				s = json_dumps(err, JSON_COMPACT);
				fprintf(stderr, "error: %s\n", s);
				free(s);
			}
		}
		json_decref(r);
	}
	t = now() - t0;
	close(fd);
	printf("files=%d ok=%d errors=%d dedup=%d bytes=%lld seconds=%.4f "
	    "rate=%.1f gbps=%.3f\n", nfiles, ok, errors, dedup, bytes, t,
	    nfiles / t, (double)bytes / 1e9 / t);
	free(in.buf);
	return (errors > 0);
usage:
	fprintf(stderr, "usage: backup_load -s SOCK [-w WINDOW] FILE...|-\n");
	return (2);
}
