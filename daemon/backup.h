/*
 * File backups and rollback: a content-addressed store of verified copies
 * under the state directory, their records and the oplog in SQLite,
 * restores that replace a file atomically, and retention.
 *
 * Copies and hashes run on the worker pool; the record or oplog entry of
 * every operation is a store job, and the caller's callback runs from that
 * job's completion, so a reply that reports a backup or a restore is sent
 * only once it is durable. The asynchronous entry points are meant for any
 * module that needs a backup (the protocol handlers in m_backup.c today, an
 * op module's rollback later): each calls its callback exactly once, on the
 * loop thread, never from inside the call itself.
 */
#ifndef BACKUP_H
#define BACKUP_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "roots.h"

struct event_base;
struct backup_job;

struct backup_err {
	int	 code;		/* ERM_* */
	char	 msg[256];
	json_t	*data;		/* new reference, or NULL */
};

/*
 * The outcome of an asynchronous operation: result (borrowed) on success,
 * or e (borrowed; NULL on success). Called once, on the loop thread.
 */
typedef void	(*backup_cb)(void *arg, json_t *result,
		    const struct backup_err *e);

struct conn;

/* The credentials of a connection, as backups and roots check them. */
void		 backup_peer(const struct conn *, struct peer *);

/* Register the [backup] and [root.NAME] config sections. */
void		 backup_register(void);
/*
 * Open the object store under state_dir (creating it), remove what a crash
 * left behind, load the counters, register metrics and the reporter, and
 * start the retention timer. Needs the store and the worker pool running.
 * Exits through fatal() when the state directory is unusable (start-up).
 */
void		 backup_start(struct event_base *, const char *state_dir);
/* Stop the timer and the roots; copies in flight still complete. */
void		 backup_stop(void);

/*
 * backup.create: copy path (len bytes, not NUL-terminated necessarily) as
 * the peer. tag may be NULL. Returns a handle for backup_job_progress(),
 * valid until cb runs, or NULL when out of memory (cb is not called).
 */
struct backup_job *backup_create_async(const char *path, size_t len,
		    const char *tag, const struct peer *, backup_cb, void *);
/*
 * backup.restore: the backup id, or (id NULL) the latest backup of path
 * (len bytes). Same conventions as backup_create_async.
 */
struct backup_job *backup_restore_async(const char *id, const char *path,
		    size_t len, const struct peer *, backup_cb, void *);
/*
 * The ways a copy may move bytes (or'ed; all by default). Plain read and
 * write is always allowed. For tests, which have no file system that
 * refuses the others.
 */
#define BACKUP_COPY_CLONE	0x01	/* ioctl FICLONE */
#define BACKUP_COPY_DIRECT	0x02	/* O_DIRECT writes */
#define BACKUP_COPY_CFR		0x04	/* copy_file_range */
void		 backup_copy_methods(unsigned);

/* Bytes copied so far and the file's size. */
void		 backup_job_progress(const struct backup_job *,
		    uint64_t *done, uint64_t *total);

/* backup.verify: one backup, or (id NULL) every one the peer may see. */
int		 backup_verify_async(const char *id, const struct peer *,
		    backup_cb, void *);

/* Retention rules of one prune; see PROTOCOL.md backup.prune. */
struct backup_prune {
	int		 configured;	/* [backup]'s rules; the next two
					 * are unused */
	int64_t		 keep_last;	/* 0: no count rule */
	int64_t		 older_than_ms;	/* -1: no age rule */
	const char	*path;		/* only this path; NULL: all */
};
/* backup.prune. Returns -1 (cb not called) when out of memory. */
int		 backup_prune_async(const struct backup_prune *,
		    const struct peer *, backup_cb, void *);

/*
 * Reads, on the loop thread. Each returns a new reference, or NULL with e
 * filled (e->data a new reference for the error reply, which steals it).
 */
json_t		*backup_get(const char *id, const struct peer *,
		    struct backup_err *);
json_t		*backup_list(const char *path, const char *tag,
		    int64_t limit, const struct peer *, struct backup_err *);
json_t		*oplog_list(const char *path, int64_t limit,
		    const struct peer *, struct backup_err *);

#endif
