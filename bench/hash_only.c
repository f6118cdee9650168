/*
 * hash_only FILE... (or -: one FILE per line of stdin): SHA-256 of the
 * files with libcrypto alone, read(2) in 1 MiB chunks, one thread: what any
 * verified copy of the same bytes must at least do. Prints one line:
 * files=N bytes=B seconds=S gbps=G.
 */

#include <sys/stat.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#define CHUNK	(1024 * 1024)

static double
now(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((double)ts.tv_sec + (double)ts.tv_nsec / 1e9);
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
	EVP_MD_CTX	*ctx;
	unsigned char	*buf, md[32];
	unsigned	 mdlen;
	double		 t0, t;
	size_t		 total = 0;
	ssize_t		 n;
	int		 i, fd;

	if (argc < 2) {
		fprintf(stderr, "usage: hash_only FILE...|-\n");
		return (2);
	}
	argc--;
	argv++;
	if (strcmp(argv[0], "-") == 0)
		argv = read_list(&argc);
	if ((buf = malloc(CHUNK)) == NULL || (ctx = EVP_MD_CTX_new()) == NULL)
		return (1);
	t0 = now();
	for (i = 0; i < argc; i++) {
		if ((fd = open(argv[i], O_RDONLY)) == -1) {
			perror(argv[i]);
			return (1);
		}
		EVP_DigestInit_ex(ctx, EVP_sha256(), NULL);
		while ((n = read(fd, buf, CHUNK)) > 0) {
			EVP_DigestUpdate(ctx, buf, (size_t)n);
			total += (size_t)n;
		}
		EVP_DigestFinal_ex(ctx, md, &mdlen);
		close(fd);
	}
	t = now() - t0;
	printf("files=%d bytes=%zu seconds=%.4f gbps=%.3f\n", argc, total,
	    t, (double)total / 1e9 / t);
	EVP_MD_CTX_free(ctx);
	free(buf);
	return (0);
}
