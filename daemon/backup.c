/* Verified, deduplicated backups and atomic restores; see backup.h. */

#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/stat.h>

#include <linux/fs.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/evp.h>

#include "backup.h"
#include "clock.h"
#include "config.h"
#include "erm_proto.h"
#include "events.h"
#include "log.h"
#include "metrics.h"
#include "opts.h"
#include "periodic.h"
#include "report.h"
#include "store.h"
#include "worker.h"

#define ID_LEN		16		/* hex digits of a backup id */
#define SHA_HEX		64
#define CHUNK		(1024 * 1024)	/* one read, write and hash */
#define NSLOTS		8		/* chunks between copier and hasher */
#define DIRECT_MIN	(8 * CHUNK)	/* O_DIRECT for copies this large */
#define SYNC_BEHIND	(8 * CHUNK)	/* dirty data a buffered copy leaves */
#define CHANGE_TRIES	3		/* copies of a file that keeps changing */
#define RESTORE_PREFIX	".ermd-restore-"
/* What the oplog keeps of a path as sent (a refused one may be huge). */
#define LOGGED_PATH(len)	((len) < PATH_MAX ? (len) : PATH_MAX)

/* ---- settings ([backup]) ---------------------------------------------- */

static struct settings {
	int64_t	keep_last;
	int64_t	max_age_ms;
	int64_t	max_bytes;
	int64_t	prune_interval_ms;
	int64_t	max_pending;
	int64_t	oplog_max_age_ms;
} set;

#define C(f)	offsetof(struct settings, f)
static const struct opt backup_opts[] = {
	{ "keep_last", OPT_INT, 0, 1000000, C(keep_last), NULL },
	{ "max_age_ms", OPT_INT, 0, 3153600000000.0, C(max_age_ms), NULL },
	{ "max_bytes", OPT_INT, 0, (double)INT64_MAX, C(max_bytes), NULL },
	{ "prune_interval_ms", OPT_INT, 0, 3153600000000.0,
	    C(prune_interval_ms), NULL },
	{ "max_pending", OPT_INT, 1, 1000000, C(max_pending), NULL },
	{ "oplog_max_age_ms", OPT_INT, 0, 3153600000000.0,
	    C(oplog_max_age_ms), NULL },
	{ NULL, OPT_INT, 0, 0, 0, NULL }
};
#undef C

static const struct settings backup_defaults = {
	.keep_last = 10,
	.max_age_ms = 604800000,
	.max_bytes = 0,
	.prune_interval_ms = 3600000,
	.max_pending = 1024,
	.oplog_max_age_ms = INT64_C(2592000000),
};

static const char *const backup_keys[] = {
	"keep_last", "max_age_ms", "max_bytes", "prune_interval_ms",
	"max_pending", "oplog_max_age_ms", NULL
};

/* ---- module state (loop thread unless noted) ---------------------------- */

static struct {
	struct event_base	*base;
	char			*state_dir;
	char			*objdir;	/* <state_dir>/objects */
	int			 objfd;		/* read-only after start */
	int			 tmpfd;		/* objects/tmp */
	int			 trashfd;	/* objects/trash */
	int			 corruptfd;	/* objects/corrupt */
	int			 intentfd;	/* <state_dir>/restoring */
	int			 running;
	int			 applied;	/* a config came into force */
	int			 trash_busy;	/* a worker empties the trash */
	int			 trash_again;
	unsigned		 pending;	/* creates and restores */
	uint64_t		 count;		/* records */
	uint64_t		 bytes;		/* stored object bytes */
	struct metric		*created;
	struct periodic		 prune;		/* the scheduled prune */
} bk = { .objfd = -1, .tmpfd = -1, .trashfd = -1, .corruptfd = -1,
    .intentfd = -1 };

/*
 * Pins: objects that a copy in flight is about to reference or is reading.
 * The collector never moves a pinned object, and a create pins its object
 * before looking whether it exists, so "it is there, count it as
 * deduplicated" can never race with its removal. Shared with the workers,
 * under pin_mu.
 */
struct pin {
	struct pin	*next;
	char		 sha[SHA_HEX + 1];
	int		 n;
};
static pthread_mutex_t	 pin_mu = PTHREAD_MUTEX_INITIALIZER;
static struct pin	*pins[256];

/* ---- small helpers ---------------------------------------------------- */

static const char hexdigits[] = "0123456789abcdef";

static void
hex(const unsigned char *in, size_t n, char *out)
{
	size_t	i;

	for (i = 0; i < n; i++) {
		out[2 * i] = hexdigits[in[i] >> 4];
		out[2 * i + 1] = hexdigits[in[i] & 15];
	}
	out[2 * n] = '\0';
}

/* ID_LEN random hex digits. */
static void
random_id(char *out)
{
	unsigned char	b[ID_LEN / 2];
	size_t		off = 0;
	ssize_t		n;

	while (off < sizeof(b)) {
		n = getrandom(b + off, sizeof(b) - off, 0);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			fatal("getrandom");
		off += (size_t)n;
	}
	hex(b, sizeof(b), out);
}

static int
is_sha(const char *s)
{
	size_t	i;

	for (i = 0; i < SHA_HEX; i++)
		if (s[i] == '\0' || strchr(hexdigits, s[i]) == NULL)
			return (0);
	return (s[SHA_HEX] == '\0');
}

/* "ab/abcdef..." for an object, relative to objects/. */
static void
object_name(const char *sha, char out[SHA_HEX + 4])
{
	snprintf(out, SHA_HEX + 4, "%.2s/%s", sha, sha);
}

static const char *
errno_name(int err)
{
	const char	*s = strerrorname_np(err);

	return (s != NULL ? s : "EIO");
}

static unsigned
bucket(const char *sha)
{
	const char	*a = strchr(hexdigits, sha[0]);
	const char	*b = strchr(hexdigits, sha[1]);

	return ((unsigned)((a - hexdigits) * 16 + (b - hexdigits)) & 255);
}

static int
pin_count_locked(const char *sha)
{
	struct pin	*p;

	for (p = pins[bucket(sha)]; p != NULL; p = p->next)
		if (strcmp(p->sha, sha) == 0)
			return (p->n);
	return (0);
}

/* Any thread. Out of memory is fatal: an unpinned object could be lost. */
static void
pin(const char *sha)
{
	struct pin	*p;
	unsigned	 b = bucket(sha);

	pthread_mutex_lock(&pin_mu);
	for (p = pins[b]; p != NULL; p = p->next)
		if (strcmp(p->sha, sha) == 0)
			break;
	if (p == NULL) {
		if ((p = calloc(1, sizeof(*p))) == NULL)
			fatalx("%s: out of memory", __func__);
		snprintf(p->sha, sizeof(p->sha), "%s", sha);
		p->next = pins[b];
		pins[b] = p;
	}
	p->n++;
	pthread_mutex_unlock(&pin_mu);
}

static void
unpin(const char *sha)
{
	struct pin	**pp, *p;

	pthread_mutex_lock(&pin_mu);
	for (pp = &pins[bucket(sha)]; (p = *pp) != NULL; pp = &p->next)
		if (strcmp(p->sha, sha) == 0) {
			if (--p->n == 0) {
				*pp = p->next;
				free(p);
			}
			break;
		}
	pthread_mutex_unlock(&pin_mu);
}

/* ---- the copy engine (worker threads) ---------------------------------- */

/*
 * One pass over a file: read it, write the copy, and hash exactly the bytes
 * written, so that an object's name is the hash of what the object holds
 * even when the source changes under the copy.
 *
 * Large copies run as a pipeline of two threads: the worker reads and
 * writes chunk after chunk while a hasher thread hashes the chunks already
 * written (SHA-256 is the slower half: on one core it is the whole cost).
 * How the bytes travel depends on what the file systems allow, best first:
 *   - FICLONE: the copy shares the source's extents and costs nothing; the
 *     clone is then read and hashed.
 *   - O_DIRECT writes from the buffer being hashed (copies >= DIRECT_MIN):
 *     the data goes to the disk once, no dirty page cache piles up, and the
 *     final fsync has little left to do.
 *   - copy_file_range into the page cache, then the copy read back and
 *     hashed, with sync_file_range keeping writeback going behind it.
 *   - read and write through one buffer (small files, or when the others
 *     are refused).
 * Holes in the source stay holes in the copy (SEEK_DATA/SEEK_HOLE); they
 * are hashed as the zeros they read as.
 */
struct slot {
	unsigned char	*buf;
	uint64_t	 len;
	int		 zero;		/* len zeros; buf unused */
	int		 full;
};

struct pipeline {
	pthread_mutex_t	 mu;
	pthread_cond_t	 cv;
	struct slot	 slot[NSLOTS];
	unsigned	 nslots;
	unsigned	 head;		/* the copier's next slot */
	int		 eof;
	int		 threaded;
	pthread_t	 thread;
	EVP_MD_CTX	*ctx;
};

enum copy_mode { COPY_CLONE, COPY_DIRECT, COPY_CFR, COPY_RW, COPY_HASH };
static const char *const mode_names[] = {
	"clone", "direct", "copy_file_range", "read/write", "hash"
};

struct copy {
	int		 src;
	int		 dst;		/* -1: only hash src */
	uint64_t	 size;
	uint64_t	*done;		/* progress (atomic) */
	unsigned char	 md[32];
	enum copy_mode	 mode;
	int		 err;
	int		 on_dst;	/* err came from writing */
	int		 changed;	/* src shrank under the copy */
	int		 cfr_worked;	/* copy_file_range moved bytes */
};

static const unsigned char	zeros[65536];
static unsigned			methods = BACKUP_COPY_CLONE |
				    BACKUP_COPY_DIRECT | BACKUP_COPY_CFR;

void
backup_copy_methods(unsigned m)
{
	__atomic_store_n(&methods, m, __ATOMIC_RELAXED);
}

static void
hash_slot(EVP_MD_CTX *ctx, const struct slot *s)
{
	uint64_t	left;
	size_t		n;

	if (!s->zero) {
		EVP_DigestUpdate(ctx, s->buf, (size_t)s->len);
		return;
	}
	for (left = s->len; left > 0; left -= n) {
		n = left < sizeof(zeros) ? (size_t)left : sizeof(zeros);
		EVP_DigestUpdate(ctx, zeros, n);
	}
}

static void *
hasher_main(void *arg)
{
	struct pipeline	*p = arg;
	struct slot	*s;
	unsigned	 tail = 0;

	for (;;) {
		s = &p->slot[tail % p->nslots];
		pthread_mutex_lock(&p->mu);
		while (!s->full && !p->eof)
			pthread_cond_wait(&p->cv, &p->mu);
		if (!s->full) {
			pthread_mutex_unlock(&p->mu);
			return (NULL);
		}
		pthread_mutex_unlock(&p->mu);
		hash_slot(p->ctx, s);
		pthread_mutex_lock(&p->mu);
		s->full = 0;
		pthread_cond_broadcast(&p->cv);
		pthread_mutex_unlock(&p->mu);
		tail++;
	}
}

static void
pipeline_free(struct pipeline *p)
{
	unsigned	i;

	for (i = 0; i < p->nslots; i++)
		free(p->slot[i].buf);
	EVP_MD_CTX_free(p->ctx);
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->cv);
}

/* Buffers sized for the copy; a hasher thread when it is large. */
static int
pipeline_init(struct pipeline *p, uint64_t size)
{
	size_t		bufsz = CHUNK;
	unsigned	i;

	memset(p, 0, sizeof(*p));
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
	p->threaded = size > CHUNK;
	p->nslots = p->threaded ? NSLOTS : 1;
	if (!p->threaded)
		bufsz = (size_t)((size + 4095) & ~(uint64_t)4095);
	if (bufsz == 0)
		bufsz = 4096;
	for (i = 0; i < p->nslots; i++)
		if (posix_memalign((void **)&p->slot[i].buf, 4096,
		    bufsz) != 0) {
			p->slot[i].buf = NULL;
			goto fail;
		}
	if ((p->ctx = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestInit_ex(p->ctx, EVP_sha256(), NULL) != 1)
		goto fail;
	if (p->threaded && pthread_create(&p->thread, NULL, hasher_main,
	    p) != 0)
		goto fail;
	return (0);
fail:
	pipeline_free(p);
	errno = ENOMEM;
	return (-1);
}

/* The copier's next buffer, once the hasher is done with it. */
static unsigned char *
pipeline_buf(struct pipeline *p)
{
	struct slot	*s = &p->slot[p->head % p->nslots];

	if (p->threaded) {
		pthread_mutex_lock(&p->mu);
		while (s->full)
			pthread_cond_wait(&p->cv, &p->mu);
		pthread_mutex_unlock(&p->mu);
	}
	return (s->buf);
}

/* Hand the current buffer (or a run of zeros) to the hasher. */
static void
pipeline_put(struct pipeline *p, uint64_t len, int zero)
{
	struct slot	*s;

	if (len == 0)
		return;
	if (zero)
		pipeline_buf(p);
	s = &p->slot[p->head % p->nslots];
	s->len = len;
	s->zero = zero;
	if (!p->threaded)
		hash_slot(p->ctx, s);
	else {
		pthread_mutex_lock(&p->mu);
		s->full = 1;
		pthread_cond_broadcast(&p->cv);
		pthread_mutex_unlock(&p->mu);
	}
	p->head++;
}

static void
pipeline_end(struct pipeline *p, unsigned char md[32])
{
	unsigned	n;

	if (p->threaded) {
		pthread_mutex_lock(&p->mu);
		p->eof = 1;
		pthread_cond_broadcast(&p->cv);
		pthread_mutex_unlock(&p->mu);
		pthread_join(p->thread, NULL);
	}
	EVP_DigestFinal_ex(p->ctx, md, &n);
}

static int
pread_full(int fd, unsigned char *buf, size_t len, off_t off, size_t *got)
{
	ssize_t	n;

	*got = 0;
	while (*got < len) {
		n = pread(fd, buf + *got, len - *got, off + (off_t)*got);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			return (-1);
		if (n == 0)
			break;
		*got += (size_t)n;
	}
	return (0);
}

static int
pwrite_full(int fd, const unsigned char *buf, size_t len, off_t off)
{
	ssize_t	n;

	while (len > 0) {
		n = pwrite(fd, buf, len, off);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1)
			return (-1);
		buf += n;
		len -= (size_t)n;
		off += n;
	}
	return (0);
}

static void
set_direct(int fd, int on)
{
	int	fl = fcntl(fd, F_GETFL);

	if (fl != -1)
		(void)fcntl(fd, F_SETFL, on ? fl | O_DIRECT : fl & ~O_DIRECT);
}

/*
 * Move one data chunk [off, off + len) and leave in buf what the hasher
 * must see. Returns the bytes moved (0 when the source ended early) or -1.
 */
static ssize_t
copy_chunk(struct copy *c, unsigned char *buf, size_t len, off_t off)
{
	loff_t	in, out;
	ssize_t	n;
	size_t	got, wlen;

	switch (c->mode) {
	case COPY_CFR:
		in = out = off;
		n = copy_file_range(c->src, &in, c->dst, &out, len, 0);
		if (n == -1 && !c->cfr_worked && (errno == EXDEV ||
		    errno == EOPNOTSUPP || errno == EINVAL ||
		    errno == ENOSYS)) {
			c->mode = COPY_RW;	/* refused: fall back */
			return (copy_chunk(c, buf, len, off));
		}
		if (n == -1) {
			c->on_dst = 1;
			return (-1);
		}
		if (n == 0)
			return (0);
		c->cfr_worked = 1;
		if (pread_full(c->dst, buf, (size_t)n, off, &got) == -1)
			return (-1);
		if (got != (size_t)n) {
			errno = EIO;
			return (-1);
		}
		return (n);
	case COPY_CLONE:
	case COPY_HASH:
		if (pread_full(c->mode == COPY_CLONE ? c->dst : c->src, buf,
		    len, off, &got) == -1)
			return (-1);
		return ((ssize_t)got);
	case COPY_DIRECT:
	case COPY_RW:
		if (pread_full(c->src, buf, len, off, &got) == -1)
			return (-1);
		if (got == 0)
			return (0);
		wlen = got;
		if (c->mode == COPY_DIRECT && (got & 4095) != 0) {
			/* The last block goes out whole; ftruncate trims. */
			wlen = (got + 4095) & ~(size_t)4095;
			memset(buf + got, 0, wlen - got);
		}
		if (pwrite_full(c->dst, buf, wlen, off) == -1) {
			if (c->mode == COPY_DIRECT && errno == EINVAL) {
				/* An alignment the device refuses. */
				set_direct(c->dst, 0);
				c->mode = COPY_RW;
				if (pwrite_full(c->dst, buf, got, off) == 0)
					return ((ssize_t)got);
			}
			c->on_dst = 1;
			return (-1);
		}
		return ((ssize_t)got);
	}
	return (-1);
}

/*
 * Copy (or, with dst -1, only hash) c->size bytes; fills c->md. Returns 0,
 * or -1 with c->err (and c->on_dst, c->changed) set.
 */
static int
copy_run(struct copy *c)
{
	struct pipeline	 p;
	unsigned char	*buf;
	off_t		 off = 0, data, hole, synced = 0;
	off_t		 end = (off_t)c->size;
	size_t		 len;
	ssize_t		 n;
	unsigned	 allowed = __atomic_load_n(&methods, __ATOMIC_RELAXED);
	int		 rfd, holes = 1, rc = -1;

	c->err = c->on_dst = c->changed = c->cfr_worked = 0;
	c->mode = COPY_RW;
	if (c->dst == -1)
		c->mode = COPY_HASH;
	else if (c->size > 0 && (allowed & BACKUP_COPY_CLONE) &&
	    ioctl(c->dst, FICLONE, c->src) == 0)
		c->mode = COPY_CLONE;
	else if (c->size >= DIRECT_MIN) {
		if (allowed & BACKUP_COPY_CFR)
			c->mode = COPY_CFR;
		if ((allowed & BACKUP_COPY_DIRECT) && fcntl(c->dst, F_SETFL,
		    fcntl(c->dst, F_GETFL) | O_DIRECT) == 0)
			c->mode = COPY_DIRECT;
	}
	rfd = c->mode == COPY_CLONE ? c->dst : c->src;
	if (pipeline_init(&p, c->size) == -1) {
		c->err = errno;
		return (-1);
	}
	while (off < end) {
		data = holes ? lseek(rfd, off, SEEK_DATA) : off;
		if (data == -1 && errno == ENXIO)
			data = end;		/* a hole to the end */
		else if (data == -1) {
			holes = 0;		/* no SEEK_DATA here */
			data = off;
		}
		if (data > end)
			data = end;
		if (data > off) {
			pipeline_put(&p, (uint64_t)(data - off), 1);
			__atomic_add_fetch(c->done, (uint64_t)(data - off),
			    __ATOMIC_RELAXED);
			off = data;
			continue;
		}
		hole = holes ? lseek(rfd, off, SEEK_HOLE) : end;
		if (hole == -1 || hole > end)
			hole = end;
		while (off < hole) {
			len = hole - off > CHUNK ? CHUNK : (size_t)(hole - off);
			buf = pipeline_buf(&p);
			if ((n = copy_chunk(c, buf, len, off)) == -1) {
				c->err = errno;
				goto out;
			}
			if (n == 0) {
				c->changed = 1;	/* the source shrank */
				c->err = ESTALE;
				goto out;
			}
			pipeline_put(&p, (uint64_t)n, 0);
			if ((c->mode == COPY_CFR || c->mode == COPY_RW) &&
			    c->size >= DIRECT_MIN) {
				/* Keep writeback going behind the copy. */
				sync_file_range(c->dst, off, n,
				    SYNC_FILE_RANGE_WRITE);
				if (off - synced >= SYNC_BEHIND) {
					sync_file_range(c->dst, synced,
					    off - synced,
					    SYNC_FILE_RANGE_WAIT_BEFORE |
					    SYNC_FILE_RANGE_WRITE |
					    SYNC_FILE_RANGE_WAIT_AFTER);
					synced = off;
				}
			}
			off += n;
			__atomic_add_fetch(c->done, (uint64_t)n,
			    __ATOMIC_RELAXED);
		}
	}
	rc = 0;
out:
	pipeline_end(&p, c->md);
	pipeline_free(&p);
	if (c->mode == COPY_DIRECT)
		set_direct(c->dst, 0);
	/* Trailing holes and the last direct block: set the exact size. */
	if (rc == 0 && c->dst != -1 && c->mode != COPY_CLONE &&
	    ftruncate(c->dst, end) == -1) {
		c->err = errno;
		c->on_dst = 1;
		rc = -1;
	}
	return (rc);
}

/* ---- jobs ------------------------------------------------------------- */

enum job_kind { JOB_CREATE, JOB_RESTORE, JOB_VERIFY, JOB_PRUNE };

struct rec {
	char		 id[ID_LEN + 1];
	char		*path;
	char		 sha[SHA_HEX + 1];
	int64_t		 size;
	int64_t		 mode;
	int64_t		 uid;
	int64_t		 gid;
	int64_t		 mtime_ns;
	char		*tag;
	int64_t		 created_at;
	int64_t		 peer_uid;
	int64_t		 peer_pid;
};

struct vitem {				/* verify: one record */
	char		 id[ID_LEN + 1];
	char		 sha[SHA_HEX + 1];
	int		 bad;
};

struct orphan {			/* prune: an object left unused */
	char		 sha[SHA_HEX + 1];
	int64_t		 size;
};

struct backup_job {
	enum job_kind	 kind;
	backup_cb	 cb;
	void		*arg;
	struct peer	 peer;
	struct root_path rp;
	struct rec	 rec;
	int64_t		 at;		/* for the oplog */
	char		*name;		/* what the caller named */
	uint64_t	 done;		/* bytes copied (atomic) */
	uint64_t	 total;		/* (atomic) */
	int		 counted;	/* in bk.pending */
	int		 by_id;		/* a restore named its backup */
	int		 missing;	/* restore: the path has no backup */
	int		 items_pinned;
	int		 pinned;	/* rec.sha is pinned */
	int		 dedup;
	int		 placed;	/* this job put an object in place */
	int		 row_new;	/* ... and its row */

	/* The outcome: code 0, or an error filled by job_fail(). */
	int		 code;
	int		 err;		/* errno, for ERM_IO_ERROR */
	char		*errpath;
	char		 actual[SHA_HEX + 1];	/* 1008; "" missing */
	char		 msg[256];

	/* verify */
	struct vitem	*items;
	size_t		 nitems;
	/* prune */
	struct backup_prune rules;
	char		*prune_path;
	int64_t		 cutoff, oplog_cutoff, max_bytes;
	struct rec	*removed;
	size_t		 nremoved;
	struct orphan	*orphans;
	size_t		 norphans;
	int64_t		 freed;
};

static int
job_fail(struct backup_job *j, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int
job_fail(struct backup_job *j, int code, const char *fmt, ...)
{
	va_list	ap;

	j->code = code;
	va_start(ap, fmt);
	vsnprintf(j->msg, sizeof(j->msg), fmt, ap);
	va_end(ap);
	return (-1);
}

/* ERM_IO_ERROR for errno err on path. */
static int
job_io(struct backup_job *j, int err, const char *path, const char *what)
{
	free(j->errpath);
	j->errpath = strdup(path);
	j->err = err;
	return (job_fail(j, ERM_IO_ERROR, "%s %.128s: %s", what, path,
	    strerror(err)));
}

static int
job_root_fail(struct backup_job *j, const struct root_err *e)
{
	if (e->code == ERM_IO_ERROR) {
		free(j->errpath);
		j->errpath = strdup(j->rp.path != NULL ? j->rp.path : "");
		j->err = e->err;
	}
	return (job_fail(j, e->code, "%s", e->msg));
}

static struct backup_job *
job_new(enum job_kind kind, const struct peer *p, backup_cb cb, void *arg)
{
	struct backup_job	*j;

	if ((j = calloc(1, sizeof(*j))) == NULL)
		return (NULL);
	j->kind = kind;
	j->cb = cb;
	j->arg = arg;
	j->peer = *p;
	j->rp.rootfd = -1;
	j->at = (int64_t)clock_now_ms();
	return (j);
}

static void
job_free(struct backup_job *j)
{
	size_t	i;

	if (j->pinned)
		unpin(j->rec.sha);
	for (i = 0; j->items_pinned && i < j->nitems; i++)
		unpin(j->items[i].sha);
	if (j->counted)
		bk.pending--;
	root_path_clear(&j->rp);
	free(j->rec.path);
	free(j->rec.tag);
	free(j->name);
	free(j->errpath);
	free(j->items);
	free(j->prune_path);
	for (i = 0; i < j->nremoved; i++)
		free(j->removed[i].path);
	free(j->removed);
	free(j->orphans);
	free(j);
}

/* The error data of PROTOCOL.md §3 for j's failure; a new reference. */
static json_t *
job_error_data(const struct backup_job *j)
{
	switch (j->code) {
	case ERM_PERMISSION_DENIED:
		return (json_pack("{s:I}", "uid", (json_int_t)j->peer.uid));
	case ERM_IO_ERROR:
		return (json_pack("{s:s, s:s}", "errno", errno_name(j->err),
		    "path", j->errpath != NULL ? j->errpath : ""));
	case ERM_CORRUPTED:
		return (json_pack("{s:s, s:s?}", "expected", j->rec.sha,
		    "actual", j->actual[0] != '\0' ? j->actual : NULL));
	case ERM_NOT_FOUND:
		return (json_pack("{s:s, s:s}", "kind", "backup", "name",
		    j->name != NULL ? j->name : ""));
	case ERM_CONFLICT:
		return (json_pack("{s:s}", "state", "modified"));
	case ERM_UNAVAILABLE:
		return (json_pack("{s:s}", "reason", j->msg));
	case ERM_LIMIT_EXCEEDED:
		return (json_pack("{s:s, s:I}", "limit", "backup.max_pending",
		    "value", (json_int_t)set.max_pending));
	default:
		return (NULL);
	}
}

/* Call j's callback with its outcome (result: borrowed) and free it. */
static void
job_finish(struct backup_job *j, json_t *result)
{
	struct backup_err	e;

	if (j->code == 0)
		j->cb(j->arg, result != NULL ? result : json_object(), NULL);
	else {
		memset(&e, 0, sizeof(e));
		e.code = j->code;
		snprintf(e.msg, sizeof(e.msg), "%s", j->msg);
		e.data = job_error_data(j);
		j->cb(j->arg, NULL, &e);
		json_decref(e.data);
	}
	job_free(j);
}

void
backup_job_progress(const struct backup_job *j, uint64_t *done,
    uint64_t *total)
{
	*done = __atomic_load_n(&j->done, __ATOMIC_RELAXED);
	*total = __atomic_load_n(&j->total, __ATOMIC_RELAXED);
}

/* ---- the oplog -------------------------------------------------------- */

static int
oplog_add(struct store_tx *tx, int64_t at, const char *action,
    const char *path, const char *id, const struct peer *p, int code,
    const char *msg)
{
	return (store_tx_exec(tx, "INSERT INTO oplog (at, action, path, "
	    "backup_id, uid, pid, ok, error_code, error_message) "
	    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", "itttiiiit", at, action,
	    path, id, (int64_t)p->uid, (int64_t)p->pid, (int64_t)(code == 0),
	    (int64_t)code, code == 0 ? NULL : msg));
}

static const char *
job_action(const struct backup_job *j)
{
	return (j->kind == JOB_CREATE ? "backup" : j->kind == JOB_RESTORE ?
	    "restore" : j->kind == JOB_VERIFY ? "verify" : "prune");
}

/*
 * The path an oplog line names: the record's, else the resolved one, else
 * (a refused path) the path as sent. A restore by id names an id, not a
 * path; a prune names its path rule, if any.
 */
static const char *
job_path(const struct backup_job *j)
{
	if (j->rec.path != NULL)
		return (j->rec.path);
	if (j->rp.path != NULL)
		return (j->rp.path);
	if (j->kind == JOB_PRUNE)
		return (j->prune_path);
	if (j->kind == JOB_CREATE || (j->kind == JOB_RESTORE && !j->by_id))
		return (j->name);
	return (NULL);
}

/* Writer thread: a create's record (when it succeeded) and its oplog line. */
static int
record_tx(struct store_tx *tx, void *arg)
{
	struct backup_job	*j = arg;
	struct rec		*r = &j->rec;
	int64_t			 before;

	if (j->kind == JOB_CREATE && j->code == 0) {
		before = store_tx_changes(tx);
		if (store_tx_exec(tx, "INSERT OR IGNORE INTO backup_object "
		    "(sha256, size, created_at) VALUES (?, ?, ?)", "tii",
		    r->sha, r->size, r->created_at) == -1)
			return (-1);
		j->row_new = store_tx_changes(tx) > before;
		if (store_tx_exec(tx, "INSERT INTO backup (id, path, sha256, "
		    "size, mode, uid, gid, mtime_ns, tag, created_at, "
		    "peer_uid, peer_pid) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, "
		    "?, ?, ?)", "tttiiiiitiii", r->id, r->path, r->sha,
		    r->size, r->mode, r->uid, r->gid, r->mtime_ns, r->tag,
		    r->created_at, r->peer_uid, r->peer_pid) == -1)
			return (-1);
	}
	return (oplog_add(tx, j->at, job_action(j), job_path(j),
	    j->rec.id[0] != '\0' ? j->rec.id : j->by_id ? j->name : NULL,
	    &j->peer, j->code, j->msg));
}

static void	job_logged(void *, const struct store_result *);

/* A zero timeout on the loop: the callback never runs inside the call. */
static void
deferred(evutil_socket_t fd, short ev, void *arg)
{
	(void)fd;
	(void)ev;
	job_logged(arg, NULL);
}

/* Write j's record and oplog line; its callback runs after the commit. */
static void
job_log(struct backup_job *j)
{
	struct timeval	tv = { 0, 0 };

	if (store_submit(record_tx, job_logged, j) == 0)
		return;
	if (j->code == 0)
		job_fail(j, ERM_UNAVAILABLE, "the store is closed");
	if (event_base_once(bk.base, -1, EV_TIMEOUT, deferred, j,
	    &tv) == -1) {
		log_warnx("%s: cannot defer a reply", __func__);
		job_free(j);
	}
}

/* ---- the collector (loop thread) -------------------------------------- */

static int
row_found(const struct store_row *row, void *arg)
{
	(void)row;
	*(int *)arg = 1;
	return (1);
}

/*
 * A descriptor of the trash directory for one emptying, opened anew: a
 * duplicate would share its read position with bk.trashfd, left at the
 * end by the last read, and the walk would see nothing.
 */
static int
trash_open(void)
{
	return (openat(bk.trashfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
}

static void
trash_work(void *arg)
{
	int		 fd = (int)(intptr_t)arg;
	DIR		*d;
	struct dirent	*de;

	if ((d = fdopendir(fd)) == NULL) {
		close(fd);
		return;
	}
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			(void)unlinkat(dirfd(d), de->d_name, 0);
	closedir(d);
}

static void	trash_empty(void);

static void
trash_done(void *arg)
{
	(void)arg;
	bk.trash_busy = 0;
	if (bk.trash_again) {
		bk.trash_again = 0;
		trash_empty();
	}
}

/* Unlink what is in the trash, off the loop (freeing extents takes time). */
static void
trash_empty(void)
{
	int	fd;

	if (bk.trash_busy) {
		bk.trash_again = 1;
		return;
	}
	if ((fd = trash_open()) == -1)
		return;
	bk.trash_busy = 1;
	if (worker_submit(trash_work, trash_done, (void *)(intptr_t)fd) ==
	    -1) {
		bk.trash_busy = 0;
		trash_work((void *)(intptr_t)fd);	/* at shutdown */
	}
}

/*
 * Take sha's object out of the store when nothing refers to it: no pin and
 * no row (a create that dedups onto it pins it first, and a create that
 * committed a row is seen by the read). The rename into the trash is the
 * removal; the unlink follows on a worker.
 */
static void
gc_object(const char *sha)
{
	char	name[SHA_HEX + 4];
	int	found = 0;

	pthread_mutex_lock(&pin_mu);
	if (pin_count_locked(sha) == 0 && store_query(row_found, &found,
	    "SELECT 1 FROM backup_object WHERE sha256 = ?", "t", sha) == 0 &&
	    !found) {
		object_name(sha, name);
		if (renameat(bk.objfd, name, bk.trashfd, sha) == -1 &&
		    errno != ENOENT)
			log_warn("%s: %s", __func__, name);
	}
	pthread_mutex_unlock(&pin_mu);
}

/*
 * Move a corrupted object aside (objects/corrupt/): later restores fail
 * at once as missing, and the bad bytes are kept for a post-mortem. fd is
 * the object the caller read and found bad.
 *
 * Only when the caller's pin is the only one, and only when the name
 * still holds the very file the caller read. A create renames its fresh,
 * verified copy over the name while it holds a pin, so: a create in
 * flight (a second pin) is about to put a good copy there, and a create
 * that finished after the caller opened the object has already put one
 * there (another inode). Either way the object under the name is not the
 * bad one, and moving it would lose a good copy. Creates pin under
 * pin_mu, so no new one can start renaming while this runs.
 */
static void
quarantine(const char *sha, int fd)
{
	struct stat	read_st, now_st;
	char		name[SHA_HEX + 4];

	if (fstat(fd, &read_st) == -1)
		return;
	object_name(sha, name);
	pthread_mutex_lock(&pin_mu);
	if (pin_count_locked(sha) == 1 && fstatat(bk.objfd, name, &now_st,
	    AT_SYMLINK_NOFOLLOW) == 0 && now_st.st_dev == read_st.st_dev &&
	    now_st.st_ino == read_st.st_ino && renameat(bk.objfd, name,
	    bk.corruptfd, sha) == 0)
		log_warnx("object %s is corrupted; moved to %s/corrupt/", sha,
		    bk.objdir);
	pthread_mutex_unlock(&pin_mu);
}

/* ---- create ----------------------------------------------------------- */

static int
same_file(const struct stat *a, const struct stat *b)
{
	return (a->st_dev == b->st_dev && a->st_ino == b->st_ino &&
	    a->st_size == b->st_size &&
	    a->st_mtim.tv_sec == b->st_mtim.tv_sec &&
	    a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
	    a->st_ctim.tv_sec == b->st_ctim.tv_sec &&
	    a->st_ctim.tv_nsec == b->st_ctim.tv_nsec);
}

/* Copy the file into objects/tmp/; on success *tfd and tmpname hold it. */
static int
create_copy(struct backup_job *j, int *tfd, char *tmpname, struct stat *st,
    unsigned char md[32])
{
	struct root_err	 re;
	struct stat	 st2;
	struct copy	 c;
	int		 fd, try;
	char		 id[ID_LEN + 1];

	for (try = 0; try < CHANGE_TRIES; try++) {
		if (roots_open_read(&j->rp, &j->peer, &fd, st, &re) == -1)
			return (job_root_fail(j, &re));
		__atomic_store_n(&j->total, (uint64_t)st->st_size,
		    __ATOMIC_RELAXED);
		__atomic_store_n(&j->done, 0, __ATOMIC_RELAXED);
		random_id(id);
		snprintf(tmpname, ID_LEN + 8, "%s.tmp", id);
		*tfd = openat(bk.tmpfd, tmpname, O_RDWR | O_CREAT | O_EXCL |
		    O_CLOEXEC, 0600);
		if (*tfd == -1) {
			close(fd);
			return (job_io(j, errno, bk.objdir, "cannot write in"));
		}
		memset(&c, 0, sizeof(c));
		c.src = fd;
		c.dst = *tfd;
		c.size = (uint64_t)st->st_size;
		c.done = &j->done;
		if (copy_run(&c) == 0 && fstat(fd, &st2) == 0 &&
		    same_file(st, &st2)) {
			close(fd);
			memcpy(md, c.md, 32);
			log_debug("backup %s: %s, %lld bytes (%s)",
			    j->rec.id, j->rp.path, (long long)st->st_size,
			    mode_names[c.mode]);
			return (0);
		}
		close(fd);
		close(*tfd);
		*tfd = -1;
		(void)unlinkat(bk.tmpfd, tmpname, 0);
		if (c.err != 0 && !c.changed)
			return (job_io(j, c.err, c.on_dst ? bk.objdir :
			    j->rp.path, c.on_dst ? "cannot write in" :
			    "cannot read"));
	}
	return (job_fail(j, ERM_CONFLICT, "'%.128s' kept changing while it "
	    "was copied (%d tries)", j->rp.path, CHANGE_TRIES));
}

/*
 * Worker: copy and hash, fsync the copy and rename it into place, then
 * fsync the shard directory, so the object the record will name is
 * durable before the record is written.
 *
 * When an object of that name is already there the backup is
 * deduplicated (the store keeps one object per content), but the fresh
 * copy still replaces it. The name only says what the object held when it
 * was written: a copy corrupted since then would have the right name and
 * size, and dropping our copy, verified a moment ago, for it would leave
 * a backup that cannot be restored. The rename is atomic: a restore or
 * verify reading the old object keeps reading it through its own fd, and
 * every later open finds the new one; every record that names the object
 * (old ones too) now names good bytes. The cost is an fsync of a copy
 * that was written anyway.
 */
static void
create_work(void *arg)
{
	struct backup_job	*j = arg;
	struct stat		 st, ost;
	unsigned char		 md[32];
	char			 tmpname[ID_LEN + 8], name[SHA_HEX + 4];
	char			 shard[3];
	int			 tfd = -1, sfd;

	if (create_copy(j, &tfd, tmpname, &st, md) == -1)
		return;
	hex(md, sizeof(md), j->rec.sha);
	j->rec.size = st.st_size;
	j->rec.mode = st.st_mode & 07777;
	j->rec.uid = st.st_uid;
	j->rec.gid = st.st_gid;
	j->rec.mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 +
	    st.st_mtim.tv_nsec;
	pin(j->rec.sha);
	j->pinned = 1;
	object_name(j->rec.sha, name);
	if (fstatat(bk.objfd, name, &ost, AT_SYMLINK_NOFOLLOW) == 0 &&
	    S_ISREG(ost.st_mode))
		j->dedup = 1;
	if (fsync(tfd) == -1) {
		job_io(j, errno, bk.objdir, "cannot fsync in");
		goto fail;
	}
	if (renameat(bk.tmpfd, tmpname, bk.objfd, name) == -1) {
		job_io(j, errno, bk.objdir, "cannot rename in");
		goto fail;
	}
	/* gc_object keeps it if a record names it: safe when dedup too. */
	j->placed = 1;
	close(tfd);
	memcpy(shard, j->rec.sha, 2);
	shard[2] = '\0';
	if ((sfd = openat(bk.objfd, shard, O_RDONLY | O_DIRECTORY |
	    O_CLOEXEC)) == -1 || fsync(sfd) == -1)
		job_io(j, errno, bk.objdir, "cannot fsync");
	if (sfd != -1)
		close(sfd);
	return;
fail:
	close(tfd);
	(void)unlinkat(bk.tmpfd, tmpname, 0);
}

static json_t *
create_result(const struct backup_job *j)
{
	const struct rec	*r = &j->rec;

	return (json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, "
	    "s:s*, s:b}", "id", r->id, "path", r->path, "sha256", r->sha,
	    "size", (json_int_t)r->size, "mode", (json_int_t)r->mode,
	    "uid", (json_int_t)r->uid, "gid", (json_int_t)r->gid,
	    "mtime", (json_int_t)(r->mtime_ns / 1000000),
	    "created_at", (json_int_t)r->created_at, "tag", r->tag,
	    "deduplicated", j->dedup));
}

static void
create_worked(void *arg)
{
	struct backup_job	*j = arg;

	j->rec.created_at = (int64_t)clock_now_ms();
	job_log(j);
}

/* The record is committed (or not): count it, announce it, answer. */
static void
create_logged(struct backup_job *j)
{
	json_t	*result;

	if (j->code != 0) {
		if (j->placed) {
			unpin(j->rec.sha);
			j->pinned = 0;
			gc_object(j->rec.sha);	/* no partial objects */
		}
		job_finish(j, NULL);
		return;
	}
	bk.count++;
	if (j->row_new)
		bk.bytes += (uint64_t)j->rec.size;
	metric_inc(bk.created);
	events_emit(EV_BACKUP_CREATED, json_pack("{s:s, s:s, s:s, s:I, s:b, "
	    "s:I, s:s*}", "id", j->rec.id, "path", j->rec.path, "sha256",
	    j->rec.sha, "size", (json_int_t)j->rec.size, "deduplicated",
	    j->dedup, "uid", (json_int_t)j->peer.uid, "tag", j->rec.tag));
	result = create_result(j);
	job_finish(j, result);
	json_decref(result);
}

/* A job may start another copy: under max_pending. */
static int
job_admit(struct backup_job *j)
{
	if (bk.pending >= (unsigned)set.max_pending)
		return (job_fail(j, ERM_LIMIT_EXCEEDED, "%u copies are queued "
		    "or running (backup.max_pending)", bk.pending));
	bk.pending++;
	j->counted = 1;
	return (0);
}

struct backup_job *
backup_create_async(const char *path, size_t len, const char *tag,
    const struct peer *p, backup_cb cb, void *arg)
{
	struct backup_job	*j;
	struct root_err		 re;

	if (!bk.running || (j = job_new(JOB_CREATE, p, cb, arg)) == NULL)
		return (NULL);
	random_id(j->rec.id);
	j->rec.peer_uid = p->uid;
	j->rec.peer_pid = p->pid;
	if ((tag != NULL && (j->rec.tag = strdup(tag)) == NULL) ||
	    (j->name = strndup(path, LOGGED_PATH(len))) == NULL) {
		job_free(j);
		return (NULL);
	}
	if (roots_find(path, len, p, &j->rp, &re) == -1)
		job_root_fail(j, &re);
	else if (job_admit(j) == -1)
		;
	else if ((j->rec.path = strdup(j->rp.path)) == NULL ||
	    worker_submit(create_work, create_worked, j) == -1)
		job_fail(j, ERM_UNAVAILABLE, "cannot start the copy");
	else
		return (j);
	j->rec.id[0] = '\0';	/* no record: the oplog line names none */
	job_log(j);
	return (j);
}

/* ---- restore ---------------------------------------------------------- */

static int
read_rec(const struct store_row *row, void *arg)
{
	struct rec	*r = arg;
	const char	*s;

	snprintf(r->id, sizeof(r->id), "%s", store_row_text(row, 0));
	r->path = strdup(store_row_text(row, 1));
	snprintf(r->sha, sizeof(r->sha), "%s", store_row_text(row, 2));
	r->size = store_row_int(row, 3);
	r->mode = store_row_int(row, 4);
	r->uid = store_row_int(row, 5);
	r->gid = store_row_int(row, 6);
	r->mtime_ns = store_row_int(row, 7);
	if ((s = store_row_text(row, 8)) != NULL)
		r->tag = strdup(s);
	r->created_at = store_row_int(row, 9);
	r->peer_uid = store_row_int(row, 10);
	r->peer_pid = store_row_int(row, 11);
	return (1);
}

#define REC_COLS	"id, path, sha256, size, mode, uid, gid, mtime_ns, " \
			"tag, created_at, peer_uid, peer_pid"

/* Load the record with id (or the latest of path); 1 found, 0 not, -1. */
static int
load_rec(struct rec *r, const char *id, const char *path)
{
	memset(r, 0, sizeof(*r));
	if (id != NULL && store_query(read_rec, r, "SELECT " REC_COLS
	    " FROM backup WHERE id = ?", "t", id) == -1)
		return (-1);
	if (id == NULL && store_query(read_rec, r, "SELECT " REC_COLS
	    " FROM backup WHERE path = ? ORDER BY created_at DESC, seq DESC "
	    "LIMIT 1", "t", path) == -1)
		return (-1);
	if (r->id[0] == '\0')
		return (0);
	if (r->path == NULL) {
		free(r->tag);
		return (-1);
	}
	return (1);
}

/*
 * A pending restore is written down before its temp file exists, so a
 * crash at any moment leaves a note of what to remove at the next start.
 */
static int
intent_write(const char *name, const char *tmppath)
{
	int	fd, rc = -1, saved;
	size_t	len = strlen(tmppath);

	fd = openat(bk.intentfd, name, O_WRONLY | O_CREAT | O_EXCL |
	    O_CLOEXEC, 0600);
	if (fd == -1)
		return (-1);
	if (pwrite_full(fd, (const unsigned char *)tmppath, len, 0) == 0 &&
	    fsync(fd) == 0 && fsync(bk.intentfd) == 0)
		rc = 0;
	saved = errno;
	close(fd);
	if (rc == -1)
		(void)unlinkat(bk.intentfd, name, 0);
	errno = saved;
	return (rc);
}

/*
 * The owner a restored file gets: the recorded one when the peer could
 * give it itself (root, or its own uid / a group it is in); otherwise
 * the current file's, or the peer's for a new file. Set-id bits go when
 * the owner is not the recorded one, as chown(2) would clear them.
 */
static void
restore_owner(const struct backup_job *j, int exists, const struct stat *st,
    uid_t *uid, gid_t *gid, mode_t *mode)
{
	const struct peer	*p = &j->peer;
	const struct rec	*r = &j->rec;

	if (p->uid == 0 || p->uid == (uid_t)r->uid)
		*uid = (uid_t)r->uid;
	else
		*uid = exists ? st->st_uid : p->uid;
	if (p->uid == 0 || peer_in_group(p, (gid_t)r->gid))
		*gid = (gid_t)r->gid;
	else
		*gid = exists ? st->st_gid : p->gid;
	*mode = (mode_t)r->mode & 07777;
	if (*uid != (uid_t)r->uid)
		*mode &= ~(mode_t)S_ISUID;
	if (*gid != (gid_t)r->gid)
		*mode &= ~(mode_t)S_ISGID;
}

/* Write the temp file beside the target: copy, verify, owner, mode, mtime. */
static int
restore_write(struct backup_job *j, int ofd, const struct stat *ost, int tfd,
    int exists, const struct stat *tst)
{
	struct timespec	 ts[2];
	struct copy	 c;
	uid_t		 uid;
	gid_t		 gid;
	mode_t		 mode;
	char		 got[SHA_HEX + 1];

	memset(&c, 0, sizeof(c));
	c.src = ofd;
	c.dst = tfd;
	c.size = (uint64_t)ost->st_size;
	c.done = &j->done;
	if (copy_run(&c) == -1) {
		if (c.on_dst)
			return (job_io(j, c.err, j->rp.path, "cannot write"));
		return (job_io(j, c.err, bk.objdir, "cannot read the copy in"));
	}
	hex(c.md, sizeof(c.md), got);
	if (strcmp(got, j->rec.sha) != 0) {
		snprintf(j->actual, sizeof(j->actual), "%s", got);
		quarantine(j->rec.sha, ofd);
		return (job_fail(j, ERM_CORRUPTED, "the stored copy of backup "
		    "%s does not match its sha256; '%.128s' is untouched",
		    j->rec.id, j->rp.path));
	}
	restore_owner(j, exists, tst, &uid, &gid, &mode);
	if (fchown(tfd, uid, gid) == -1)
		mode &= ~(mode_t)(S_ISUID | S_ISGID);	/* ermd keeps it */
	ts[0].tv_nsec = UTIME_OMIT;
	ts[1].tv_sec = (time_t)(j->rec.mtime_ns / 1000000000);
	ts[1].tv_nsec = (long)(j->rec.mtime_ns % 1000000000);
	if (fchmod(tfd, mode) == -1 || futimens(tfd, ts) == -1)
		return (job_io(j, errno, j->rp.path, "cannot set the mode of"));
	if (fsync(tfd) == -1)
		return (job_io(j, errno, j->rp.path, "cannot fsync"));
	return (0);
}

/*
 * Worker: restore into a temp file in the target's directory, verified and
 * fsynced, then rename it over the target and fsync the directory. The
 * target is either untouched or wholly the backup, at every moment.
 */
static void
restore_work(void *arg)
{
	struct backup_job	*j = arg;
	struct root_err		 re;
	struct stat		 ost, tst;
	const char		*name;
	char			 oname[SHA_HEX + 4], id[ID_LEN + 1];
	char			 tmp[sizeof(RESTORE_PREFIX) + ID_LEN];
	char			*tmppath = NULL;
	int			 ofd = -1, dfd, tfd = -1, exists, intent = 0;

	/* The target first: a path is refused before it is looked up. */
	if (roots_open_parent(&j->rp, &j->peer, &dfd, &name, &exists, &tst,
	    &re) == -1) {
		job_root_fail(j, &re);
		return;
	}
	if (j->missing) {
		job_fail(j, ERM_NOT_FOUND, "no backup of %.128s", j->rp.path);
		goto out;
	}
	object_name(j->rec.sha, oname);
	if ((ofd = openat(bk.objfd, oname, O_RDONLY | O_NOFOLLOW |
	    O_CLOEXEC)) == -1) {
		if (errno == ENOENT)
			job_fail(j, ERM_CORRUPTED, "the stored copy of backup "
			    "%s is missing; '%.128s' is untouched", j->rec.id,
			    j->rec.path);
		else
			job_io(j, errno, bk.objdir, "cannot open the copy in");
		goto out;
	}
	if (fstat(ofd, &ost) == -1) {
		job_io(j, errno, bk.objdir, "cannot stat the copy in");
		goto out;
	}
	__atomic_store_n(&j->total, (uint64_t)ost.st_size, __ATOMIC_RELAXED);
	random_id(id);
	snprintf(tmp, sizeof(tmp), "%s%s", RESTORE_PREFIX, id);
	if (asprintf(&tmppath, "%.*s%s", (int)(name - j->rp.path), j->rp.path,
	    tmp) == -1) {
		tmppath = NULL;
		job_fail(j, ERM_INTERNAL_ERROR, "out of memory");
		goto out;
	}
	if (intent_write(id, tmppath) == -1) {
		job_io(j, errno, bk.state_dir, "cannot write in");
		goto out;
	}
	intent = 1;
	if ((tfd = openat(dfd, tmp, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW |
	    O_CLOEXEC, 0600)) == -1) {
		job_io(j, errno, j->rp.path, "cannot create a file beside");
		goto out;
	}
	if (restore_write(j, ofd, &ost, tfd, exists, &tst) == -1)
		goto unlink;
	if (!roots_same_parent(&j->rp, dfd)) {
		job_fail(j, ERM_PERMISSION_DENIED, "the directory of '%.128s' "
		    "moved during the restore", j->rp.path);
		goto unlink;
	}
	if (renameat(dfd, tmp, dfd, name) == -1) {
		job_io(j, errno, j->rp.path, "cannot rename over");
		goto unlink;
	}
	if (fsync(dfd) == -1)
		job_io(j, errno, j->rp.path, "cannot fsync the directory of");
	goto out;
unlink:
	(void)unlinkat(dfd, tmp, 0);
out:
	if (intent)
		(void)unlinkat(bk.intentfd, id, 0);
	if (tfd != -1)
		close(tfd);
	close(dfd);
	if (ofd != -1)
		close(ofd);
	free(tmppath);
}

static void
restore_worked(void *arg)
{
	job_log(arg);
}

static void
restore_logged(struct backup_job *j)
{
	json_t	*result;

	if (j->code != 0) {
		job_finish(j, NULL);
		return;
	}
	events_emit(EV_BACKUP_RESTORED, json_pack("{s:s, s:s, s:s, s:I}",
	    "id", j->rec.id, "path", j->rec.path, "sha256", j->rec.sha, "uid",
	    (json_int_t)j->peer.uid));
	result = json_pack("{s:s, s:s, s:s, s:I, s:b}", "id", j->rec.id,
	    "path", j->rec.path, "sha256", j->rec.sha, "size",
	    (json_int_t)j->rec.size, "restored", 1);
	job_finish(j, result);
	json_decref(result);
}

struct backup_job *
backup_restore_async(const char *id, const char *path, size_t len,
    const struct peer *p, backup_cb cb, void *arg)
{
	struct backup_job	*j;
	struct root_err		 re;
	int			 found;

	if (!bk.running || (j = job_new(JOB_RESTORE, p, cb, arg)) == NULL)
		return (NULL);
	j->by_id = id != NULL;
	if ((j->name = id != NULL ? strdup(id) : strndup(path,
	    LOGGED_PATH(len))) == NULL) {
		job_free(j);
		return (NULL);
	}
	/* A path is checked before anything is looked up for it. */
	if (id == NULL && roots_find(path, len, p, &j->rp, &re) == -1) {
		job_root_fail(j, &re);
		goto log;
	}
	found = load_rec(&j->rec, id, j->rp.path);
	if (found == -1) {
		job_io(j, errno, bk.state_dir, "cannot read the records in");
		goto log;
	}
	if (found == 0 && id != NULL) {
		job_fail(j, ERM_NOT_FOUND, "no backup with id %.64s", id);
		goto log;
	}
	/* None of path: the worker still checks it, for 1002 before 1001. */
	j->missing = found == 0;
	if (id != NULL && roots_find(j->rec.path, strlen(j->rec.path), p,
	    &j->rp, &re) == -1) {
		job_root_fail(j, &re);
		goto log;
	}
	if (job_admit(j) == -1)
		goto log;
	/* Pinned from the lookup on: a prune cannot take the object away. */
	if (!j->missing) {
		pin(j->rec.sha);
		j->pinned = 1;
	}
	__atomic_store_n(&j->total, (uint64_t)j->rec.size, __ATOMIC_RELAXED);
	if (worker_submit(restore_work, restore_worked, j) == 0)
		return (j);
	job_fail(j, ERM_UNAVAILABLE, "cannot start the copy");
log:
	job_log(j);
	return (j);
}

/* ---- verify ----------------------------------------------------------- */

struct vload {
	const struct peer	*peer;
	struct vitem		*items;
	size_t			 n, cap;
	int			 oom;
	int			 hidden;
};

static int
read_vitem(const struct store_row *row, void *arg)
{
	struct vload	*v = arg;
	struct vitem	*nv;

	if (!roots_visible(store_row_text(row, 2), v->peer)) {
		v->hidden++;
		return (0);
	}
	if (v->n == v->cap) {
		v->cap = v->cap ? v->cap * 2 : 64;
		if ((nv = reallocarray(v->items, v->cap,
		    sizeof(*nv))) == NULL) {
			v->oom = 1;
			return (1);
		}
		v->items = nv;
	}
	memset(&v->items[v->n], 0, sizeof(v->items[v->n]));
	snprintf(v->items[v->n].id, sizeof(v->items[v->n].id), "%s",
	    store_row_text(row, 0));
	snprintf(v->items[v->n].sha, sizeof(v->items[v->n].sha), "%s",
	    store_row_text(row, 1));
	v->n++;
	return (0);
}

/* Worker: hash each distinct object once; a mismatch or absence is bad. */
static void
verify_work(void *arg)
{
	struct backup_job	*j = arg;
	struct vitem		*it;
	struct copy		 c;
	struct stat		 st;
	char			 name[SHA_HEX + 4], got[SHA_HEX + 1];
	size_t			 i;
	int			 fd, bad;

	/* The items come sorted by sha256: each object is hashed once. */
	for (i = 0; i < j->nitems; i++) {
		it = &j->items[i];
		if (i > 0 && strcmp(j->items[i - 1].sha, it->sha) == 0) {
			it->bad = j->items[i - 1].bad;
			continue;
		}
		object_name(it->sha, name);
		bad = 1;
		fd = openat(bk.objfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
		if (fd != -1 && fstat(fd, &st) == 0) {
			memset(&c, 0, sizeof(c));
			c.src = fd;
			c.dst = -1;
			c.size = (uint64_t)st.st_size;
			c.done = &j->done;
			if (copy_run(&c) == 0) {
				hex(c.md, sizeof(c.md), got);
				bad = strcmp(got, it->sha) != 0;
			}
		}
		if (bad && fd != -1)
			quarantine(it->sha, fd);
		if (fd != -1)
			close(fd);
		it->bad = bad;
	}
}

static void
verify_logged(struct backup_job *j)
{
	json_t	*bad, *result;
	size_t	 i, nbad = 0;

	bad = json_array();
	for (i = 0; i < j->nitems; i++)
		if (j->items[i].bad) {
			json_array_append_new(bad, json_string(j->items[i].id));
			nbad++;
		}
	result = json_pack("{s:I, s:I, s:o}", "checked",
	    (json_int_t)j->nitems, "ok", (json_int_t)(j->nitems - nbad),
	    "corrupted", bad);
	job_finish(j, result);
	json_decref(result);
}

/* Writer thread: an oplog line for each corrupted backup found. */
static int
verify_tx(struct store_tx *tx, void *arg)
{
	struct backup_job	*j = arg;
	size_t			 i;

	for (i = 0; i < j->nitems; i++)
		if (j->items[i].bad && oplog_add(tx, j->at, "verify", NULL,
		    j->items[i].id, &j->peer, ERM_CORRUPTED,
		    "the stored copy does not match its sha256") == -1)
			return (-1);
	return (0);
}

static void
verify_stored(void *arg, const struct store_result *res)
{
	(void)res;		/* the report stands even if the log failed */
	verify_logged(arg);
}

static void
verify_worked(void *arg)
{
	struct backup_job	*j = arg;
	size_t			 i;

	for (i = 0; i < j->nitems; i++)
		if (j->items[i].bad) {
			if (store_submit(verify_tx, verify_stored, j) == 0)
				return;
			break;
		}
	verify_logged(j);
}

int
backup_verify_async(const char *id, const struct peer *p, backup_cb cb,
    void *arg)
{
	struct backup_job	*j;
	struct vload		 v;
	size_t			 i;
	int			 rc;

	if (!bk.running || (j = job_new(JOB_VERIFY, p, cb, arg)) == NULL)
		return (-1);
	memset(&v, 0, sizeof(v));
	v.peer = p;
	if (id != NULL)
		rc = store_query(read_vitem, &v, "SELECT id, sha256, path FROM "
		    "backup WHERE id = ?", "t", id);
	else
		rc = store_query(read_vitem, &v, "SELECT id, sha256, path FROM "
		    "backup ORDER BY sha256", NULL);
	j->items = v.items;
	j->nitems = v.n;
	if (rc == -1 || v.oom)
		job_fail(j, ERM_INTERNAL_ERROR, "cannot read the records");
	else if (id != NULL && v.hidden > 0)
		job_fail(j, ERM_PERMISSION_DENIED, "backup %s is beneath no "
		    "root uid %u may use", id, (unsigned)p->uid);
	else if (id != NULL && v.n == 0) {
		j->name = strdup(id);
		job_fail(j, ERM_NOT_FOUND, "no backup with id %.64s", id);
	}
	if (j->code == 0) {
		for (i = 0; i < j->nitems; i++)
			pin(j->items[i].sha);
		j->items_pinned = 1;
		if (worker_submit(verify_work, verify_worked, j) == 0)
			return (0);
		job_fail(j, ERM_UNAVAILABLE, "cannot start the check");
	}
	job_log(j);
	return (0);
}

/* ---- prune ------------------------------------------------------------ */

struct plist {
	struct backup_job	*j;
	int			 oom;
	int64_t			 seq;		/* last row read */
};

static int
read_victim(const struct store_row *row, void *arg)
{
	struct plist	*pl = arg;
	struct backup_job *j = pl->j;
	struct rec	*nv, *r;

	if ((nv = reallocarray(j->removed, j->nremoved + 1,
	    sizeof(*nv))) == NULL) {
		pl->oom = 1;
		return (1);
	}
	j->removed = nv;
	r = &nv[j->nremoved];
	memset(r, 0, sizeof(*r));
	pl->seq = store_row_int(row, 0);
	snprintf(r->id, sizeof(r->id), "%s", store_row_text(row, 1));
	if ((r->path = strdup(store_row_text(row, 2))) == NULL) {
		pl->oom = 1;
		return (1);
	}
	snprintf(r->sha, sizeof(r->sha), "%s", store_row_text(row, 3));
	j->nremoved++;
	return (0);
}

static int
read_orphan(const struct store_row *row, void *arg)
{
	struct plist	*pl = arg;
	struct backup_job *j = pl->j;
	struct orphan	*nv;

	if ((nv = reallocarray(j->orphans, j->norphans + 1,
	    sizeof(*nv))) == NULL) {
		pl->oom = 1;
		return (1);
	}
	j->orphans = nv;
	snprintf(nv[j->norphans].sha, sizeof(nv->sha), "%s",
	    store_row_text(row, 0));
	nv[j->norphans].size = store_row_int(row, 1);
	j->norphans++;
	return (0);
}

static int
read_int(const struct store_row *row, void *arg)
{
	*(int64_t *)arg = store_row_int(row, 0);
	return (1);
}

static int
prune_remove(struct store_tx *tx, struct backup_job *j, size_t from)
{
	size_t	i;

	for (i = from; i < j->nremoved; i++)
		if (store_tx_exec(tx, "DELETE FROM backup WHERE id = ?", "t",
		    j->removed[i].id) == -1 ||
		    oplog_add(tx, j->at, "prune", j->removed[i].path,
		    j->removed[i].id, &j->peer, 0, NULL) == -1)
			return (-1);
	return (0);
}

/*
 * max_bytes: remove the oldest backups while the objects still referenced
 * hold more than the limit. An object's bytes are freed with its last
 * reference.
 */
static int
prune_bytes(struct store_tx *tx, struct backup_job *j, struct plist *pl)
{
	int64_t	live = 0, size, refs;
	size_t	from;

	if (store_tx_query(tx, read_int, &live, "SELECT COALESCE(SUM(size), "
	    "0) FROM backup_object o WHERE EXISTS (SELECT 1 FROM backup b "
	    "WHERE b.sha256 = o.sha256)", NULL) == -1)
		return (-1);
	while (live > j->max_bytes) {
		from = j->nremoved;
		if (store_tx_query(tx, read_victim, pl, "SELECT seq, id, path, "
		    "sha256 FROM backup ORDER BY created_at, seq LIMIT 1",
		    NULL) == -1)
			return (-1);
		if (pl->oom)
			return (store_tx_fail(tx, ENOMEM, "out of memory"));
		if (j->nremoved == from)
			break;
		if (prune_remove(tx, j, from) == -1)
			return (-1);
		refs = size = 0;
		if (store_tx_query(tx, read_int, &refs, "SELECT COUNT(*) FROM "
		    "backup WHERE sha256 = ?", "t", j->removed[from].sha) ==
		    -1 || store_tx_query(tx, read_int, &size, "SELECT size "
		    "FROM backup_object WHERE sha256 = ?", "t",
		    j->removed[from].sha) == -1)
			return (-1);
		if (refs == 0)
			live -= size;
	}
	return (0);
}

/* Writer thread: the whole prune is one transaction. */
static int
prune_tx(struct store_tx *tx, void *arg)
{
	struct backup_job	*j = arg;
	struct plist		 pl = { j, 0, 0 };
	size_t			 i;

	/* A second run (store.h) starts from nothing again. */
	for (i = 0; i < j->nremoved; i++)
		free(j->removed[i].path);
	j->nremoved = j->norphans = 0;
	j->freed = 0;
	if (store_tx_query(tx, read_victim, &pl, "SELECT seq, id, path, "
	    "sha256 FROM (SELECT seq, id, path, sha256, created_at, "
	    "ROW_NUMBER() OVER (PARTITION BY path ORDER BY created_at DESC, "
	    "seq DESC) AS rn FROM backup WHERE ?3 IS NULL OR path = ?3) "
	    "WHERE (?1 > 0 AND rn > ?1) OR (?2 > 0 AND created_at < ?2) "
	    "ORDER BY seq", "iit", j->rules.keep_last, j->cutoff,
	    j->prune_path) == -1)
		return (-1);
	if (pl.oom)
		return (store_tx_fail(tx, ENOMEM, "out of memory"));
	if (prune_remove(tx, j, 0) == -1)
		return (-1);
	if (j->max_bytes > 0 && prune_bytes(tx, j, &pl) == -1)
		return (-1);
	/*
	 * Every prune is in the oplog (BEHAVIOUR.md 4), the hourly one
	 * too: one line per removed backup, or this one when it removed
	 * nothing.
	 */
	if (j->nremoved == 0 && oplog_add(tx, j->at,
	    "prune", j->prune_path, NULL, &j->peer, 0, NULL) == -1)
		return (-1);
	if (store_tx_query(tx, read_orphan, &pl, "SELECT sha256, size FROM "
	    "backup_object o WHERE NOT EXISTS (SELECT 1 FROM backup b WHERE "
	    "b.sha256 = o.sha256)", NULL) == -1)
		return (-1);
	if (pl.oom)
		return (store_tx_fail(tx, ENOMEM, "out of memory"));
	for (i = 0; i < j->norphans; i++) {
		if (store_tx_exec(tx, "DELETE FROM backup_object WHERE "
		    "sha256 = ?", "t", j->orphans[i].sha) == -1)
			return (-1);
		j->freed += j->orphans[i].size;
	}
	if (j->oplog_cutoff > 0 && store_tx_exec(tx, "DELETE FROM oplog "
	    "WHERE at < ?", "i", j->oplog_cutoff) == -1)
		return (-1);
	return (0);
}

static void
prune_stored(void *arg, const struct store_result *res)
{
	struct backup_job	*j = arg;
	json_t			*result;
	size_t			 i;

	if (!res->ok) {
		/* Nothing of the prune stayed: log the failure on its own. */
		job_io(j, res->err, bk.state_dir, "cannot prune the records "
		    "in");
		job_log(j);
		return;
	}
	bk.count -= j->nremoved < bk.count ? j->nremoved : bk.count;
	bk.bytes -= (uint64_t)j->freed < bk.bytes ? (uint64_t)j->freed :
	    bk.bytes;
	for (i = 0; i < j->norphans; i++)
		gc_object(j->orphans[i].sha);
	if (j->norphans > 0)
		trash_empty();
	if (j->nremoved > 0)
		log_info("prune: %zu backups removed, %lld bytes freed",
		    j->nremoved, (long long)j->freed);
	result = json_pack("{s:I, s:I}", "removed", (json_int_t)j->nremoved,
	    "bytes_freed", (json_int_t)j->freed);
	job_finish(j, result);
	json_decref(result);
}

int
backup_prune_async(const struct backup_prune *rules, const struct peer *p,
    backup_cb cb, void *arg)
{
	struct backup_job	*j;
	int64_t			 now = (int64_t)clock_now_ms(), age;

	if (!bk.running || (j = job_new(JOB_PRUNE, p, cb, arg)) == NULL)
		return (-1);
	j->rules = *rules;
	j->rules.path = NULL;
	if (rules->path != NULL && (j->prune_path = strdup(rules->path)) ==
	    NULL) {
		job_free(j);
		return (-1);
	}
	if (rules->configured) {
		j->rules.keep_last = set.keep_last;
		age = set.max_age_ms > 0 ? set.max_age_ms : -1;
		if (rules->path == NULL)
			j->max_bytes = set.max_bytes;
	} else
		age = rules->older_than_ms;
	j->cutoff = age >= 0 ? now - age : 0;
	if (set.oplog_max_age_ms > 0)
		j->oplog_cutoff = now - set.oplog_max_age_ms;
	if (store_submit(prune_tx, prune_stored, j) == -1) {
		job_free(j);
		return (-1);
	}
	return (0);
}

/* ---- completions after the record or oplog commit ---------------------- */

static void
job_logged(void *arg, const struct store_result *res)
{
	struct backup_job	*j = arg;

	/* A failed commit fails an operation that had succeeded. */
	if (res != NULL && !res->ok && j->code == 0) {
		j->row_new = 0;
		job_io(j, res->err, bk.state_dir, "cannot record the backup "
		    "in");
	} else if (res != NULL && !res->ok)
		log_warnx("oplog: %s", res->msg);
	switch (j->kind) {
	case JOB_CREATE:
		create_logged(j);
		break;
	case JOB_RESTORE:
		restore_logged(j);
		break;
	case JOB_VERIFY:
		verify_logged(j);
		break;
	case JOB_PRUNE:
		job_finish(j, NULL);
		break;
	}
}

/* ---- reads ------------------------------------------------------------- */

static json_t *
rec_json(const struct store_row *row)
{
	const char	*tag = store_row_text(row, 8);

	return (json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:s*, "
	    "s:I, s:{s:I, s:I}}", "id", store_row_text(row, 0), "path",
	    store_row_text(row, 1), "sha256", store_row_text(row, 2), "size",
	    (json_int_t)store_row_int(row, 3), "mode",
	    (json_int_t)store_row_int(row, 4), "uid",
	    (json_int_t)store_row_int(row, 5), "gid",
	    (json_int_t)store_row_int(row, 6), "mtime",
	    (json_int_t)(store_row_int(row, 7) / 1000000), "tag", tag,
	    "created_at", (json_int_t)store_row_int(row, 9), "peer", "uid",
	    (json_int_t)store_row_int(row, 10), "pid",
	    (json_int_t)store_row_int(row, 11)));
}

struct lrows {
	const struct peer	*peer;
	json_t			*list;
	int64_t			 limit;
	int			 hidden;
	int			 oplog;
};

static int
read_list_row(const struct store_row *row, void *arg)
{
	struct lrows	*l = arg;
	json_t		*o;
	const char	*path = store_row_text(row, l->oplog ? 2 : 1);

	if (l->oplog ? !(l->peer->admin || (path != NULL &&
	    roots_visible(path, l->peer)) ||
	    store_row_int(row, 4) == (int64_t)l->peer->uid) :
	    !roots_visible(path, l->peer)) {
		l->hidden++;
		return (0);
	}
	if (!l->oplog)
		o = rec_json(row);
	else {
		o = json_pack("{s:I, s:s, s:s*, s:s*, s:I, s:I, s:b}", "at",
		    (json_int_t)store_row_int(row, 0), "action",
		    store_row_text(row, 1), "path", path, "backup_id",
		    store_row_text(row, 3), "uid",
		    (json_int_t)store_row_int(row, 4), "pid",
		    (json_int_t)store_row_int(row, 5), "ok",
		    (int)store_row_int(row, 6));
		if (o != NULL && store_row_int(row, 7) != 0)
			json_object_set_new(o, "error", json_pack("{s:I, s:s}",
			    "code", (json_int_t)store_row_int(row, 7),
			    "message", store_row_text(row, 8) != NULL ?
			    store_row_text(row, 8) : ""));
	}
	if (o == NULL)
		return (1);
	json_array_append_new(l->list, o);
	return ((int64_t)json_array_size(l->list) >= l->limit);
}

static json_t *
read_fail(struct backup_err *e)
{
	memset(e, 0, sizeof(*e));
	e->code = ERM_IO_ERROR;
	snprintf(e->msg, sizeof(e->msg), "cannot read the records: %s",
	    strerror(errno));
	e->data = json_pack("{s:s, s:s}", "errno", errno_name(errno), "path",
	    bk.state_dir != NULL ? bk.state_dir : "");
	return (NULL);
}

json_t *
backup_get(const char *id, const struct peer *p, struct backup_err *e)
{
	struct lrows	l = { p, json_array(), 1, 0, 0 };
	json_t		*o;

	memset(e, 0, sizeof(*e));
	if (l.list == NULL || store_query(read_list_row, &l, "SELECT "
	    REC_COLS " FROM backup WHERE id = ?", "t", id) == -1) {
		json_decref(l.list);
		return (read_fail(e));
	}
	if (json_array_size(l.list) == 1) {
		o = json_incref(json_array_get(l.list, 0));
		json_decref(l.list);
		return (o);
	}
	json_decref(l.list);
	if (l.hidden) {
		e->code = ERM_PERMISSION_DENIED;
		snprintf(e->msg, sizeof(e->msg), "backup %s is beneath no "
		    "root uid %u may use", id, (unsigned)p->uid);
		e->data = json_pack("{s:I}", "uid", (json_int_t)p->uid);
	} else {
		e->code = ERM_NOT_FOUND;
		snprintf(e->msg, sizeof(e->msg), "no backup with id %.64s", id);
		e->data = json_pack("{s:s, s:s}", "kind", "backup", "name", id);
	}
	return (NULL);
}

json_t *
backup_list(const char *path, const char *tag, int64_t limit,
    const struct peer *p, struct backup_err *e)
{
	struct lrows	 l = { p, json_array(), limit, 0, 0 };
	char		 sql[512];
	int		 rc;

	memset(e, 0, sizeof(*e));
	snprintf(sql, sizeof(sql), "SELECT " REC_COLS " FROM backup%s%s%s "
	    "ORDER BY created_at DESC, seq DESC", path != NULL || tag != NULL ?
	    " WHERE " : "", path != NULL ? "path = ?1" : "",
	    tag != NULL ? (path != NULL ? " AND tag = ?2" : "tag = ?2") : "");
	if (l.list == NULL)
		return (read_fail(e));
	if (path != NULL && tag != NULL)
		rc = store_query(read_list_row, &l, sql, "tt", path, tag);
	else if (path != NULL)
		rc = store_query(read_list_row, &l, sql, "t", path);
	else if (tag != NULL)
		rc = store_query(read_list_row, &l, sql, "tt", NULL, tag);
	else
		rc = store_query(read_list_row, &l, sql, NULL);
	if (rc == -1) {
		json_decref(l.list);
		return (read_fail(e));
	}
	return (json_pack("{s:o}", "backups", l.list));
}

json_t *
oplog_list(const char *path, int64_t limit, const struct peer *p,
    struct backup_err *e)
{
	struct lrows	l = { p, json_array(), limit, 0, 1 };
	int		rc;

	memset(e, 0, sizeof(*e));
	if (l.list == NULL)
		return (read_fail(e));
	if (path != NULL)
		rc = store_query(read_list_row, &l, "SELECT at, action, path, "
		    "backup_id, uid, pid, ok, error_code, error_message FROM "
		    "oplog WHERE path = ? ORDER BY seq DESC", "t", path);
	else
		rc = store_query(read_list_row, &l, "SELECT at, action, path, "
		    "backup_id, uid, pid, ok, error_code, error_message FROM "
		    "oplog ORDER BY seq DESC", NULL);
	if (rc == -1) {
		json_decref(l.list);
		return (read_fail(e));
	}
	return (json_pack("{s:o}", "entries", l.list));
}

/* ---- start-up: leftovers of a crash ----------------------------------- */

/* Remove every entry of the directory dfd (not recursive). */
static void
empty_dir(int dfd, const char *what)
{
	DIR		*d;
	struct dirent	*de;
	int		 fd, n = 0;

	if ((fd = fcntl(dfd, F_DUPFD_CLOEXEC, 3)) == -1 ||
	    (d = fdopendir(fd)) == NULL) {
		log_warn("%s: %s", __func__, what);
		return;
	}
	rewinddir(d);
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name,
		    "..") == 0)
			continue;
		if (unlinkat(dfd, de->d_name, 0) == 0)
			n++;
	}
	closedir(d);
	if (n > 0)
		log_info("removed %d leftover file%s from %s", n,
		    n == 1 ? "" : "s", what);
}

static int
cmp_sha(const void *a, const void *b)
{
	return (strcmp(*(char *const *)a, *(char *const *)b));
}

struct shaset {
	char	**v;
	size_t	  n, cap;
	int	  oom;
};

static int
read_sha(const struct store_row *row, void *arg)
{
	struct shaset	*s = arg;
	char		**nv;

	if (s->n == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 256;
		if ((nv = reallocarray(s->v, s->cap, sizeof(*nv))) == NULL) {
			s->oom = 1;
			return (1);
		}
		s->v = nv;
	}
	if ((s->v[s->n] = strdup(store_row_text(row, 0))) == NULL) {
		s->oom = 1;
		return (1);
	}
	s->n++;
	return (0);
}

/*
 * Objects renamed in place by a create whose record never committed (a
 * crash between the two) have no row: remove them. No client is connected
 * yet, so nothing can be reusing them.
 */
static void
sweep_objects(void)
{
	struct shaset	 s = { NULL, 0, 0, 0 };
	struct dirent	*de;
	DIR		*d;
	char		 shard[3], *key;
	int		 fd, i, n = 0;

	if (store_query(read_sha, &s, "SELECT sha256 FROM backup_object",
	    NULL) == -1 || s.oom) {
		log_warnx("%s: cannot read the object list; not sweeping",
		    __func__);
		goto out;
	}
	if (s.n > 0)
		qsort(s.v, s.n, sizeof(*s.v), cmp_sha);
	for (i = 0; i < 256; i++) {
		snprintf(shard, sizeof(shard), "%02x", i);
		if ((fd = openat(bk.objfd, shard, O_RDONLY | O_DIRECTORY |
		    O_CLOEXEC)) == -1 || (d = fdopendir(fd)) == NULL) {
			if (fd != -1)
				close(fd);
			continue;
		}
		while ((de = readdir(d)) != NULL) {
			if (!is_sha(de->d_name))
				continue;
			key = de->d_name;
			if (s.n > 0 && bsearch(&key, s.v, s.n, sizeof(*s.v),
			    cmp_sha) != NULL)
				continue;
			if (unlinkat(dirfd(d), de->d_name, 0) == 0)
				n++;
		}
		closedir(d);
	}
	if (n > 0)
		log_info("removed %d object%s no record refers to", n,
		    n == 1 ? "" : "s");
out:
	for (i = 0; i < (int)s.n; i++)
		free(s.v[i]);
	free(s.v);
}

/*
 * Remove the temp files of restores a crash interrupted, from the notes
 * in <state_dir>/restoring/. Runs once the roots are open (the first
 * config apply); a temp file is only looked for beneath its root.
 */
static void
clean_restores(void)
{
	struct peer	 self;
	struct root_path rp;
	struct root_err	 re;
	struct stat	 st;
	struct dirent	*de;
	const char	*name;
	char		 path[PATH_MAX];
	DIR		*d;
	ssize_t		 n;
	int		 fd, dfd, exists;

	memset(&self, 0, sizeof(self));
	self.admin = 1;		/* uid 0: no permission check to fail */
	if ((fd = fcntl(bk.intentfd, F_DUPFD_CLOEXEC, 3)) == -1 ||
	    (d = fdopendir(fd)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		fd = openat(bk.intentfd, de->d_name, O_RDONLY | O_CLOEXEC |
		    O_NOFOLLOW);
		n = fd == -1 ? -1 : pread(fd, path, sizeof(path) - 1, 0);
		if (fd != -1)
			close(fd);
		if (n > 0) {
			path[n] = '\0';
			if (roots_find(path, (size_t)n, &self, &rp, &re) == 0) {
				if (roots_open_parent(&rp, &self, &dfd, &name,
				    &exists, &st, &re) == 0) {
					if (exists && strncmp(name,
					    RESTORE_PREFIX,
					    strlen(RESTORE_PREFIX)) == 0 &&
					    unlinkat(dfd, name, 0) == 0)
						log_info("removed %s, left by "
						    "an interrupted restore",
						    path);
					close(dfd);
				}
				root_path_clear(&rp);
			} else
				log_warnx("%s was left by an interrupted "
				    "restore: %s", path, re.msg);
		}
		(void)unlinkat(bk.intentfd, de->d_name, 0);
	}
	closedir(d);
}

/* ---- config, timer, metrics ------------------------------------------- */

static int
backup_check(const char *section, const char *key, const char *value,
    char *err, size_t errsz)
{
	struct settings	scratch;

	(void)section;
	/* [backup] has always refused a sign or a blank before the digits. */
	if (opt_find(backup_opts, key) != -1 &&
	    (value[0] == ' ' || value[0] == '+')) {
		snprintf(err, errsz, "%s: '%s' is not an integer", key, value);
		return (-1);
	}
	return (opts_check_conf(backup_opts, &scratch, key, value, err,
	    errsz));
}

static void
backup_apply(const struct config *cfg)
{
	set = backup_defaults;
	opts_from_config(backup_opts, &set, cfg, "backup");
	if (!bk.running)
		return;
	periodic_every(&bk.prune, set.prune_interval_ms);
	if (!bk.applied) {
		bk.applied = 1;
		clean_restores();
	}
}

void
backup_register(void)
{
	static const struct config_kind	kind = {
		"backup", 0, backup_check, backup_keys, backup_apply
	};

	/* [root.NAME] first: its apply opens the roots that ours uses. */
	roots_register();
	config_register_kind(&kind);
	set = backup_defaults;
}

static void
prune_done(void *arg, json_t *result, const struct backup_err *e)
{
	(void)arg;
	(void)result;
	if (e != NULL)
		log_warnx("scheduled prune: %s", e->msg);
	periodic_done(&bk.prune, 0);
}

static void
prune_start(struct periodic *p)
{
	struct backup_prune	rules = { 1, 0, -1, NULL };
	struct peer		self;

	memset(&self, 0, sizeof(self));
	self.uid = geteuid();
	self.gid = getegid();
	self.pid = getpid();
	self.admin = 1;
	if (backup_prune_async(&rules, &self, prune_done, NULL) == -1) {
		log_warnx("scheduled prune: cannot start");
		periodic_done(p, 0);
	}
}

static double
read_bytes(void)
{
	return ((double)bk.bytes);
}

static void
report_metrics(json_t *m)
{
	json_object_set_new(m, "backups", json_pack("{s:I, s:I}", "count",
	    (json_int_t)bk.count, "bytes", (json_int_t)bk.bytes));
}

/* Make dir (relative to at) if need be and open it. */
static int
open_dir(int at, const char *dir)
{
	int	fd;

	if (mkdirat(at, dir, 0700) == -1 && errno != EEXIST)
		return (-1);
	fd = openat(at, dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	return (fd);
}

void
backup_start(struct event_base *base, const char *state_dir)
{
	static const struct reporter	rep = { NULL, report_metrics };
	int				*fds[] = { &bk.objfd, &bk.tmpfd,
	    &bk.trashfd, &bk.corruptfd, &bk.intentfd };
	char				shard[3];
	int				sfd, i;
	int64_t				v;

	bk.base = base;
	/* A second start (tests) replaces what the first one opened. */
	free(bk.state_dir);
	free(bk.objdir);
	for (i = 0; i < 5; i++)
		if (*fds[i] != -1) {
			close(*fds[i]);
			*fds[i] = -1;
		}
	if ((bk.state_dir = strdup(state_dir)) == NULL ||
	    asprintf(&bk.objdir, "%s/objects", state_dir) == -1)
		fatalx("%s: out of memory", __func__);
	if ((sfd = open(state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		fatal("backups: %s", state_dir);
	if ((bk.objfd = open_dir(sfd, "objects")) == -1 ||
	    (bk.tmpfd = open_dir(bk.objfd, "tmp")) == -1 ||
	    (bk.trashfd = open_dir(bk.objfd, "trash")) == -1 ||
	    (bk.corruptfd = open_dir(bk.objfd, "corrupt")) == -1 ||
	    (bk.intentfd = open_dir(sfd, "restoring")) == -1)
		fatal("backups: %s", bk.objdir);
	for (i = 0; i < 256; i++) {
		snprintf(shard, sizeof(shard), "%02x", i);
		if (mkdirat(bk.objfd, shard, 0700) == -1 && errno != EEXIST)
			fatal("backups: %s/%s", bk.objdir, shard);
	}
	if (fsync(bk.objfd) == -1 || fsync(sfd) == -1)
		fatal("backups: fsync %s", bk.objdir);
	close(sfd);
	empty_dir(bk.tmpfd, "objects/tmp");
	empty_dir(bk.trashfd, "objects/trash");
	sweep_objects();

	v = 0;
	if (store_query(read_int, &v, "SELECT COUNT(*) FROM backup", NULL) ==
	    0)
		bk.count = (uint64_t)v;
	v = 0;
	if (store_query(read_int, &v, "SELECT COALESCE(SUM(size), 0) FROM "
	    "backup_object", NULL) == 0)
		bk.bytes = (uint64_t)v;
	bk.created = metrics_series(metrics_family("ermd_backups_total",
	    "Backups created.", METRIC_COUNTER, NULL));
	metrics_gauge_fn("ermd_backup_bytes", "Bytes held by the backup "
	    "store (each distinct content once).", read_bytes);
	report_register(&rep);
	if (periodic_start(&bk.prune, prune_start,
	    set.prune_interval_ms) == -1)
		fatalx("%s: out of memory", __func__);
	bk.running = 1;
	bk.applied = 0;
}

void
backup_stop(void)
{
	if (!bk.running)
		return;
	bk.running = 0;
	periodic_stop(&bk.prune);
	roots_clear();
}
