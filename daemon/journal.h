/*
 * The breaker outcome journal: an append-only log of the outcomes breaker
 * windows took, so that a busy breaker costs a few bytes of sequential
 * writing per call instead of a rewrite of its snapshot, and of the
 * breakers evicted, so that a replay never hands a breaker made again the
 * outcomes of the one evicted before it.
 *
 * Files are PREFIX.N (N = 1, 2, ...), each starting with an 8-byte magic,
 * then records in host byte order:
 *
 *	u32 check	FNV-1a of every byte after it, name included
 *	u8  namelen	1..JOURNAL_NAME_MAX
 *	u8  flags	an outcome: bit 0 failure, bit 1 slow;
 *			an eviction: 4 alone
 *	u16 zero
 *	u64 seq		1, 2, ... across files, never reused
 *	u64 at		the daemon clock, ms
 *	    name
 *
 * The current file is mapped into memory and its blocks are allocated a
 * step (1 MiB) ahead - by the batch on the other thread once half the
 * last step is used, on the loop only when appends outrun that - so
 * appending is a copy into the page cache on the loop: a record is there for a restart the moment journal_append
 * returns, however the process dies after; only a power cut can lose it
 * before it is synced. A full disk shows as a file that cannot grow (an
 * error, never SIGBUS). journal_take() hands the sync over as a batch,
 * which the owner runs on another thread (ermd: the store's writer, inside
 * the job that stores the snapshots, so a reply that waits for that job
 * waits for the journal to be on disk too) and hands back on the loop;
 * the same batch removes the files the owner is done with. Batches must
 * be written one at a time, in the order they were taken. A file is cut
 * to its records when it is let go; reading one left allocated by a
 * crash stops at its zeros. Reading stops at the first record that is
 * short or fails its check: a torn tail is dropped, never misread. Which
 * records still matter is the owner's business: it keeps, beside each
 * snapshot, the seq the snapshot already includes.
 */
#ifndef JOURNAL_H
#define JOURNAL_H

#include <stddef.h>
#include <stdint.h>

#define JOURNAL_NAME_MAX	255

struct journal;

struct journal_rec {
	uint64_t	 seq;
	uint64_t	 at;
	int		 failure, slow;
	int		 evicted;	/* no outcome: the breaker went */
	size_t		 namelen;
	char		 name[JOURNAL_NAME_MAX + 1];
};

/* Called for each intact record while opening, in seq order. */
typedef void	(*journal_replay_fn)(const struct journal_rec *, void *arg);
/*
 * Called on the loop when the journal breaks: its file cannot grow (from
 * journal_append), a new file cannot start (journal_rotate or
 * journal_revive), or a sync failed (journal_batch_done). What is in the
 * files stays; the owner keeps later outcomes some other way.
 */
typedef void	(*journal_error_fn)(const char *msg, void *arg);

/*
 * Read every PREFIX.N in order (fn for each record), then start a new
 * file after them; min_seq is the highest seq the owner has seen (records
 * get higher ones). *old is set to the highest N read (0: none): those
 * files may be removed with journal_remove() once the owner has stored
 * what they hold. NULL with a message in err when a file cannot be read;
 * when the new one cannot be created (a full disk) the journal comes back
 * broken (journal_broken), with the reason in err.
 */
struct journal	*journal_open(const char *prefix, uint64_t min_seq,
		    journal_replay_fn fn, journal_error_fn on_error, void *arg,
		    unsigned *old, char *err, size_t errsz);
/*
 * Append one record to the current file; its seq, or 0 when the journal
 * is broken (or breaks now: its file cannot grow) or the name is not 1 to
 * JOURNAL_NAME_MAX bytes: the caller must then keep the outcome some
 * other way.
 */
uint64_t	 journal_append(struct journal *, const char *name, size_t len,
		    int failure, int slow, uint64_t at);
/* The same for the eviction of breaker name. */
uint64_t	 journal_append_evicted(struct journal *, const char *name,
		    size_t len, uint64_t at);
/* The highest seq handed out. */
uint64_t	 journal_seq(const struct journal *);
/* Bytes appended to the current file, synced or not. */
uint64_t	 journal_bytes(const struct journal *);
int		 journal_broken(const struct journal *);
/*
 * On the loop: the sync of what was appended since the last batch (and
 * of the file a rotation let go), the removals asked for and the next
 * step's allocation when it is due, as a batch; NULL when there is
 * nothing to do or the journal is broken.
 */
struct journal_batch	*journal_take(struct journal *);
/*
 * On another thread: fdatasync the files, allocate the next step, then
 * remove the files the owner is done with (only after everything newer
 * is on disk). 0, or -1 with
 * the reason kept for journal_batch_done. A second call does nothing and
 * returns what the first did.
 */
int		 journal_batch_write(struct journal_batch *);
/*
 * Back on the loop, written or not: a batch that was not written breaks
 * the journal (on_error is called once; the records stay in the files,
 * but the owner can no longer count on the disk having them); frees the
 * batch.
 */
void		 journal_batch_done(struct journal_batch *);
/*
 * Records appended from now on go to a new file, started here (on the
 * loop: a rare open and allocation). Returns the number of the file it
 * closes (with every older one it is what journal_remove() may drop
 * later), or 0 when the last rotation's file is not synced yet, a batch
 * taken to grow the current file is not done yet (the file is cut to its
 * records here, and that batch would extend it again), or the journal is
 * broken. When the new file cannot start, the journal breaks (on_error)
 * and the number is still returned.
 */
unsigned	 journal_rotate(struct journal *);
/*
 * A broken journal tries again (the disk may have room now): a new file
 * starts, here, and takes the records from now on; the file that failed
 * stays as it is. If it cannot start, the journal stays broken and
 * on_error is called again. 0 when it tried; -1 when the journal is not
 * broken or a batch taken before is not done yet.
 */
int		 journal_revive(struct journal *);
/* Remove the files numbered up to upto (with the next batch). */
void		 journal_remove(struct journal *, unsigned upto);
/*
 * At shutdown: sync what is not synced yet (here, on the loop), cut the
 * file to its records, and free the journal once the last batch taken is
 * done.
 */
void		 journal_close(struct journal *);

#endif
