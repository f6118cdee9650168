/* The breaker outcome journal; see journal.h. */

#include <sys/mman.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "journal.h"
#include "log.h"

#define MAGIC		"ERMJRNL1"
#define MAGIC_LEN	8
#define HDR_LEN		24
#define STEP		((size_t)1 << 20)	/* a file grows by this */

/* A record's flags byte: an outcome (failure, slow), or an eviction. */
#define FLAG_FAILURE	1
#define FLAG_SLOW	2
#define FLAG_EVICTED	4

static int
flags_valid(unsigned flags)
{
	return ((flags & ~(FLAG_FAILURE | FLAG_SLOW)) == 0 ||
	    flags == FLAG_EVICTED);
}

struct journal {
	char			*prefix;
	journal_error_fn	 on_error;
	void			*arg;
	uint64_t		 seq;
	unsigned		 cur;		/* the file appends go to */
	int			 broken;
	int			 closing;
	unsigned		 outstanding;	/* batches taken, not done */

	/*
	 * The current file, mapped: an append is a copy into the page
	 * cache, there for a restart even if the process dies the next
	 * instant. Its blocks are allocated before they are mapped, so a
	 * full disk shows as an error here, never as SIGBUS on a copy.
	 */
	int			 fd;		/* -1 when broken */
	char			*map;
	size_t			 off;		/* where the next record goes */
	size_t			 size;		/* allocated and mapped */
	int			 dirty;		/* appended since the last take */
	int			 old_fd;	/* the file before a rotation,
						   to sync once more, or -1 */
	int			 growing;	/* a batch allocates ahead */
	unsigned		 remove_upto, remove_sent;

	/* The files' side: only journal_batch_write touches it. */
	unsigned		 removed;	/* files up to it are gone */
};

struct journal_batch {
	struct journal	*j;
	int		 fd, old_fd;	/* to fdatasync, or -1 */
	/* The next step of file grow_file, from grow_at, allocated here. */
	int		 grow_fd;
	unsigned	 grow_file;
	size_t		 grow_at;
	int		 grown;
	unsigned	 remove_upto;
	int		 tried, written;
	char		 msg[256];	/* why it was not */
};

static uint32_t
fnv1a(const unsigned char *p, size_t n, uint32_t h)
{
	while (n-- > 0) {
		h ^= *p++;
		h *= 16777619u;
	}
	return (h);
}

static int
file_path(const struct journal *j, unsigned n, char *path, size_t sz)
{
	int	 len = snprintf(path, sz, "%s.%u", j->prefix, n);

	return (len < 0 || (size_t)len >= sz ? -1 : 0);
}

/* ---- reading ----------------------------------------------------------- */

static int
all_zero(const unsigned char *p, size_t n)
{
	while (n-- > 0)
		if (*p++ != 0)
			return (0);
	return (1);
}

/* The numbers N of the existing PREFIX.N, ascending. */
static int
list_files(const char *prefix, unsigned **out, size_t *nout)
{
	char		 dir[PATH_MAX];
	const char	*base, *slash = strrchr(prefix, '/'), *p;
	size_t		 blen, n = 0, cap = 0, i, k;
	unsigned	*v = NULL, *nv, num, t;
	unsigned long	 l;
	struct dirent	*de;
	DIR		*d;
	char		*end;

	if (slash == NULL) {
		strcpy(dir, ".");
		base = prefix;
	} else {
		if ((size_t)(slash - prefix) >= sizeof(dir))
			return (-1);
		memcpy(dir, prefix, (size_t)(slash - prefix));
		dir[slash - prefix] = '\0';
		if (dir[0] == '\0')
			strcpy(dir, "/");
		base = slash + 1;
	}
	blen = strlen(base);
	if ((d = opendir(dir)) == NULL)
		return (-1);
	while ((de = readdir(d)) != NULL) {
		if (strncmp(de->d_name, base, blen) != 0 ||
		    de->d_name[blen] != '.')
			continue;
		p = de->d_name + blen + 1;
		if (*p < '1' || *p > '9')
			continue;
		errno = 0;
		l = strtoul(p, &end, 10);
		if (*end != '\0' || errno != 0 || l > UINT_MAX / 2)
			continue;
		num = (unsigned)l;
		if (n == cap) {
			cap = cap ? cap * 2 : 8;
			if ((nv = reallocarray(v, cap, sizeof(*v))) == NULL) {
				free(v);
				closedir(d);
				return (-1);
			}
			v = nv;
		}
		v[n++] = num;
	}
	closedir(d);
	for (i = 1; i < n; i++)		/* a handful of files */
		for (k = i; k > 0 && v[k - 1] > v[k]; k--) {
			t = v[k];
			v[k] = v[k - 1];
			v[k - 1] = t;
		}
	*out = v;
	*nout = n;
	return (0);
}

static int
replay_file(struct journal *j, const char *path, journal_replay_fn fn,
    void *arg, char *err, size_t errsz)
{
	FILE			*f;
	unsigned char		 hdr[HDR_LEN];
	char			 magic[MAGIC_LEN];
	struct journal_rec	 r;
	uint32_t		 check;
	size_t			 got;
	long			 at;
	int			 torn = 0;

	if ((f = fopen(path, "re")) == NULL) {
		snprintf(err, errsz, "%s: %s", path, strerror(errno));
		return (-1);
	}
	got = fread(magic, 1, MAGIC_LEN, f);
	if (got < MAGIC_LEN && !ferror(f)) {
		fclose(f);		/* created, never written */
		return (0);
	}
	if (got < MAGIC_LEN || memcmp(magic, MAGIC, MAGIC_LEN) != 0) {
		snprintf(err, errsz, "%s: %s", path, ferror(f) ?
		    strerror(errno) : "not a breaker journal");
		fclose(f);
		return (-1);
	}
	for (;;) {
		at = ftell(f);
		if ((got = fread(hdr, 1, HDR_LEN, f)) != HDR_LEN) {
			torn = got > 0;
			break;
		}
		if (all_zero(hdr, HDR_LEN))
			break;		/* the allocated rest of the file */
		memcpy(&check, hdr, 4);
		memset(&r, 0, sizeof(r));
		r.namelen = hdr[4];
		r.failure = hdr[5] & FLAG_FAILURE;
		r.slow = (hdr[5] & FLAG_SLOW) != 0;
		r.evicted = (hdr[5] & FLAG_EVICTED) != 0;
		memcpy(&r.seq, hdr + 8, 8);
		memcpy(&r.at, hdr + 16, 8);
		if (r.namelen == 0 || !flags_valid(hdr[5]) ||
		    fread(r.name, 1, r.namelen, f) != r.namelen ||
		    fnv1a((unsigned char *)r.name, r.namelen,
		    fnv1a(hdr + 4, HDR_LEN - 4, 2166136261u)) != check ||
		    r.seq <= j->seq) {
			torn = 1;
			break;
		}
		r.name[r.namelen] = '\0';
		j->seq = r.seq;
		fn(&r, arg);
	}
	if (ferror(f)) {
		snprintf(err, errsz, "%s: %s", path, strerror(errno));
		fclose(f);
		return (-1);
	}
	if (torn)
		log_warnx("%s: ignoring what follows byte %ld: a torn or "
		    "damaged record", path, at);
	fclose(f);
	return (0);
}

/* ---- the files' side (the store's writer thread) ------------------------ */

static int
batch_fail(struct journal_batch *b, const char *what)
{
	snprintf(b->msg, sizeof(b->msg), "%s: %s", what,
	    strerror(errno ? errno : EIO));
	return (-1);
}

int
journal_batch_write(struct journal_batch *b)
{
	struct journal	*j = b->j;
	char		 path[PATH_MAX];
	unsigned	 n;

	/* Once only: the store may run the job holding it twice. */
	if (b->tried)
		return (b->written ? 0 : -1);
	b->tried = 1;
	if (b->old_fd != -1 && fdatasync(b->old_fd) == -1)
		return (batch_fail(b, "fdatasync"));
	if (b->fd != -1 && fdatasync(b->fd) == -1)
		return (batch_fail(b, "fdatasync"));
	b->written = 1;
	/* Off the loop: allocating can wait on the file system. */
	if (b->grow_fd != -1)
		b->grown = posix_fallocate(b->grow_fd, (off_t)b->grow_at,
		    (off_t)STEP) == 0;
	/* Only now that everything newer is safely written. */
	for (n = j->removed + 1; n <= b->remove_upto; n++)
		if (file_path(j, n, path, sizeof(path)) == 0)
			(void)unlink(path);
	if (b->remove_upto > j->removed)
		j->removed = b->remove_upto;
	return (0);
}

/* ---- the current file (on the loop) ------------------------------------- */

/*
 * Start PREFIX.n: the magic first, then STEP bytes allocated and mapped.
 * A file that cannot be made whole is removed again, so that a restart
 * never reads a file without its magic.
 */
static int
file_start(struct journal *j, unsigned n)
{
	char	 path[PATH_MAX];
	void	*map;
	int	 fd, e;

	if (file_path(j, n, path, sizeof(path)) == -1) {
		errno = ENAMETOOLONG;
		return (-1);
	}
	if ((fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC,
	    0600)) == -1)
		return (-1);
	if (pwrite(fd, MAGIC, MAGIC_LEN, 0) != MAGIC_LEN)
		goto fail;
	if ((e = posix_fallocate(fd, 0, (off_t)STEP)) != 0) {
		errno = e;
		goto fail;
	}
	if ((map = mmap(NULL, STEP, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
	    0)) == MAP_FAILED)
		goto fail;
	j->fd = fd;
	j->map = map;
	j->off = MAGIC_LEN;
	j->size = STEP;
	return (0);
fail:
	e = errno;
	(void)unlink(path);
	close(fd);
	errno = e;
	return (-1);
}

/* Map STEP more bytes of the current file, allocated already. */
static int
file_map_more(struct journal *j)
{
	void	*map;

	if ((map = mremap(j->map, j->size, j->size + STEP,
	    MREMAP_MAYMOVE)) == MAP_FAILED)
		return (-1);
	j->map = map;
	j->size += STEP;
	return (0);
}

/*
 * Allocate and map STEP more bytes here, on the loop: only when appends
 * ran past what a batch allocated ahead (see journal_take).
 */
static int
file_grow(struct journal *j)
{
	int	e;

	if ((e = posix_fallocate(j->fd, (off_t)j->size, (off_t)STEP)) != 0) {
		errno = e;
		return (-1);
	}
	return (file_map_more(j));
}

/*
 * Let go of the current file: unmapped, cut to what was appended (a
 * restart reads no allocated rest), its fd returned for a last sync.
 */
static int
file_stop(struct journal *j)
{
	int	fd = j->fd;

	if (fd == -1)
		return (-1);
	(void)munmap(j->map, j->size);
	(void)ftruncate(fd, (off_t)j->off);
	j->fd = -1;
	j->map = NULL;
	j->off = j->size = 0;
	return (fd);
}

/* The current file failed: broken until journal_revive(). */
static void
fail_now(struct journal *j, const char *what)
{
	char	msg[300];
	int	fd;

	snprintf(msg, sizeof(msg), "%s.%u: %s: %s", j->prefix, j->cur, what,
	    strerror(errno ? errno : EIO));
	if ((fd = file_stop(j)) != -1)
		close(fd);
	j->broken = 1;
	j->dirty = 0;
	if (j->on_error != NULL && !j->closing)
		j->on_error(msg, j->arg);
}

static void
journal_free(struct journal *j)
{
	int	fd;

	if ((fd = file_stop(j)) != -1) {
		/* At shutdown, on the loop: the last outcomes too. */
		(void)fdatasync(fd);
		close(fd);
	}
	if (j->old_fd != -1) {
		(void)fdatasync(j->old_fd);
		close(j->old_fd);
	}
	free(j->prefix);
	free(j);
}

/* ---- the loop's side --------------------------------------------------- */

struct journal *
journal_open(const char *prefix, uint64_t min_seq, journal_replay_fn fn,
    journal_error_fn on_error, void *arg, unsigned *old, char *err,
    size_t errsz)
{
	struct journal	*j;
	char		 path[PATH_MAX];
	unsigned	*files = NULL;
	size_t		 nfiles = 0, i;

	*old = 0;
	if ((j = calloc(1, sizeof(*j))) == NULL ||
	    (j->prefix = strdup(prefix)) == NULL) {
		free(j);
		snprintf(err, errsz, "out of memory");
		return (NULL);
	}
	j->fd = j->old_fd = -1;
	j->on_error = on_error;
	j->arg = arg;
	if (list_files(prefix, &files, &nfiles) == -1) {
		snprintf(err, errsz, "%s: cannot list: %s", prefix,
		    strerror(errno));
		goto fail;
	}
	for (i = 0; i < nfiles; i++) {
		if (file_path(j, files[i], path, sizeof(path)) == -1) {
			snprintf(err, errsz, "%s: path too long", prefix);
			goto fail;
		}
		if (replay_file(j, path, fn, arg, err, errsz) == -1)
			goto fail;
	}
	if (j->seq < min_seq)
		j->seq = min_seq;
	if (nfiles > 0) {
		*old = files[nfiles - 1];
		j->cur = files[nfiles - 1] + 1;
		j->removed = j->remove_sent = files[0] - 1;
	} else
		j->cur = 1;
	if (file_start(j, j->cur) == -1) {
		snprintf(err, errsz, "%s.%u: %s", prefix, j->cur,
		    strerror(errno));
		j->broken = 1;
	}
	free(files);
	return (j);
fail:
	free(files);
	journal_free(j);
	return (NULL);
}

static uint64_t
append(struct journal *j, const char *name, size_t len, unsigned flags,
    uint64_t at)
{
	unsigned char	*p;
	uint32_t	 check;
	size_t		 need = HDR_LEN + len;

	if (j->broken || len == 0 || len > JOURNAL_NAME_MAX)
		return (0);
	while (j->off + need > j->size)
		if (file_grow(j) == -1) {
			fail_now(j, "cannot grow");
			return (0);
		}
	p = (unsigned char *)j->map + j->off;
	p[4] = (unsigned char)len;
	p[5] = (unsigned char)flags;
	p[6] = p[7] = 0;
	j->seq++;
	memcpy(p + 8, &j->seq, 8);
	memcpy(p + 16, &at, 8);
	memcpy(p + HDR_LEN, name, len);
	check = fnv1a(p + HDR_LEN, len, fnv1a(p + 4, HDR_LEN - 4,
	    2166136261u));
	memcpy(p, &check, 4);
	j->off += need;
	j->dirty = 1;
	return (j->seq);
}

uint64_t
journal_append(struct journal *j, const char *name, size_t len, int failure,
    int slow, uint64_t at)
{
	return (append(j, name, len, (failure ? FLAG_FAILURE : 0) |
	    (slow ? FLAG_SLOW : 0), at));
}

uint64_t
journal_append_evicted(struct journal *j, const char *name, size_t len,
    uint64_t at)
{
	return (append(j, name, len, FLAG_EVICTED, at));
}

uint64_t
journal_seq(const struct journal *j)
{
	return (j->seq);
}

uint64_t
journal_bytes(const struct journal *j)
{
	return (j->fd == -1 ? 0 : j->off - MAGIC_LEN);
}

int
journal_broken(const struct journal *j)
{
	return (j->broken);
}

struct journal_batch *
journal_take(struct journal *j)
{
	struct journal_batch	*b;
	int			 fd = -1;

	if (j->broken || (!j->dirty && j->old_fd == -1 &&
	    j->remove_upto <= j->remove_sent && (j->growing ||
	    j->size - j->off >= STEP / 2)))
		return (NULL);
	if ((b = calloc(1, sizeof(*b))) == NULL ||
	    (j->dirty && (fd = dup(j->fd)) == -1)) {
		free(b);
		return (NULL);		/* kept for the next one */
	}
	b->j = j;
	b->fd = fd;
	/* Past half the last step: the batch allocates the next one. */
	b->grow_fd = -1;
	if (j->fd != -1 && !j->growing && j->size - j->off < STEP / 2 &&
	    (b->grow_fd = dup(j->fd)) != -1) {
		b->grow_file = j->cur;
		b->grow_at = j->size;
		j->growing = 1;
	}
	b->old_fd = j->old_fd;
	b->remove_upto = j->remove_sent = j->remove_upto;
	j->old_fd = -1;
	j->dirty = 0;
	j->outstanding++;
	return (b);
}

void
journal_batch_done(struct journal_batch *b)
{
	struct journal	*j = b->j;

	j->outstanding--;
	if (b->fd != -1)
		close(b->fd);
	if (b->old_fd != -1)
		close(b->old_fd);
	if (b->grow_fd != -1) {
		close(b->grow_fd);
		j->growing = 0;
		/* Unless the loop had to grow it meanwhile, or moved on. */
		if (b->grown && j->fd != -1 && j->cur == b->grow_file &&
		    j->size == b->grow_at && file_map_more(j) == -1)
			fail_now(j, "cannot map");
	}
	if (!b->written && !j->broken) {
		/* Not on the disk as it should be: trust snapshots only. */
		errno = 0;
		if (j->closing)
			log_warnx("%s: the last outcomes may not be on the "
			    "disk: %s", j->prefix, b->msg[0] != '\0' ?
			    b->msg : "not written");
		else {
			j->broken = 1;
			if (j->fd != -1)
				close(file_stop(j));
			j->dirty = 0;
			if (j->on_error != NULL)
				j->on_error(b->msg[0] != '\0' ? b->msg :
				    "not written", j->arg);
		}
	}
	free(b);
	if (j->closing && j->outstanding == 0)
		journal_free(j);
}

unsigned
journal_rotate(struct journal *j)
{
	unsigned	closed = j->cur;

	/* One at a time; and not under a batch that grows the file. */
	if (j->old_fd != -1 || j->growing || j->broken)
		return (0);
	j->old_fd = file_stop(j);
	j->dirty = 0;
	j->cur++;
	if (file_start(j, j->cur) == -1)
		fail_now(j, "cannot start a new file");
	return (closed);
}

int
journal_revive(struct journal *j)
{
	if (!j->broken || j->outstanding > 0 || j->closing)
		return (-1);
	/* The file a write failed in stays as it is; a new one starts. */
	j->cur++;
	if (file_start(j, j->cur) == -1) {
		fail_now(j, "cannot start a new file");
		return (0);
	}
	j->broken = 0;
	log_info("%s.%u: the journal is written again", j->prefix, j->cur);
	return (0);
}

void
journal_remove(struct journal *j, unsigned upto)
{
	if (upto > j->remove_upto)
		j->remove_upto = upto;
}

void
journal_close(struct journal *j)
{
	struct journal_batch	*b;

	j->closing = 1;
	if (j->outstanding > 0) {
		/* Batches in the store's queue run before it closes; the
		 * last one's done frees the journal. */
		return;
	}
	if ((b = journal_take(j)) != NULL) {
		(void)journal_batch_write(b);
		journal_batch_done(b);		/* frees j */
		return;
	}
	journal_free(j);
}
