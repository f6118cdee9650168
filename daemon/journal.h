/*
 * The breaker outcome journal: an append-only log of the outcomes that
 * only moved a breaker's window, so that a busy breaker costs a few bytes
 * of sequential writing per call instead of a rewrite of its snapshot.
 *
 * Files are PREFIX.N (N = 1, 2, ...), each starting with an 8-byte magic,
 * then records in host byte order:
 *
 *	u32 check	FNV-1a of every byte after it, name included
 *	u8  namelen	1..JOURNAL_NAME_MAX
 *	u8  flags	bit 0 failure, bit 1 slow
 *	u16 zero
 *	u64 seq		1, 2, ... across files, never reused
 *	u64 at		the daemon clock, ms
 *	    name
 *
 * Appending only fills a memory buffer. journal_take() hands what is
 * buffered over as a batch, which the owner writes on the thread that
 * owns the files (ermd: the store's writer, inside the job that stores
 * the snapshots, so a reply that waits for that job waits for the
 * journal too) and hands back on the loop. Batches must be written one at
 * a time, in the order they were taken. Reading stops at the first record
 * that is short or fails its check: a torn tail is dropped, never
 * misread. Which records still matter is the owner's business: it keeps,
 * beside each snapshot, the seq the snapshot already includes.
 */
#ifndef JOURNAL_H
#define JOURNAL_H

#include <stddef.h>
#include <stdint.h>

#define JOURNAL_NAME_MAX	255
#define JOURNAL_BUF_MAX		(8u << 20)	/* unwritten bytes at most */

struct journal;

struct journal_rec {
	uint64_t	 seq;
	uint64_t	 at;
	int		 failure, slow;
	size_t		 namelen;
	char		 name[JOURNAL_NAME_MAX + 1];
};

/* Called for each intact record while opening, in seq order. */
typedef void	(*journal_replay_fn)(const struct journal_rec *, void *arg);
/* Called on the loop when a write failed: what was buffered is lost. */
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
 * Buffer one record; its seq, or 0 when the journal is broken (a write
 * failed) or JOURNAL_BUF_MAX bytes wait to be written: the caller must
 * then keep the outcome some other way.
 */
uint64_t	 journal_append(struct journal *, const char *name, size_t len,
		    int failure, int slow, uint64_t at);
/* The highest seq handed out. */
uint64_t	 journal_seq(const struct journal *);
/* Bytes appended to the current file, written or not. */
uint64_t	 journal_bytes(const struct journal *);
int		 journal_broken(const struct journal *);
/*
 * On the loop: what is buffered, with a pending rotation and removal, as
 * a batch to write (the buffer starts afresh); NULL when there is nothing
 * to do or the journal is broken.
 */
struct journal_batch	*journal_take(struct journal *);
/*
 * On the thread that owns the files: write and fdatasync the batch,
 * start the next file where a rotation fell, remove the files the owner
 * is done with (only after everything newer is written). 0, or -1 with
 * the reason kept for journal_batch_done. A second call does nothing and
 * returns what the first did.
 */
int		 journal_batch_write(struct journal_batch *);
/*
 * Back on the loop, written or not: a batch that was not written breaks
 * the journal (on_error is called once); frees the batch.
 */
void		 journal_batch_done(struct journal_batch *);
/*
 * Records appended from now on go to a new file. Returns the number of
 * the file it closes (with every older one it is what journal_remove()
 * may drop later), or 0 when a rotation is already pending.
 */
unsigned	 journal_rotate(struct journal *);
/*
 * A broken journal tries again (the disk may have room now): records are
 * taken again and the next batch writes them to a new file; the file a
 * write failed in stays as it is (its torn tail ends it when read). If
 * that batch fails too, the journal is broken again and on_error is
 * called again. -1 when the journal is not broken or the batch that broke
 * it is not done yet.
 */
int		 journal_revive(struct journal *);
/* Remove the files numbered up to upto (with the next batch). */
void		 journal_remove(struct journal *, unsigned upto);
/*
 * At shutdown: write what is still buffered (here, on the loop) and free
 * the journal once the last batch taken is done.
 */
void		 journal_close(struct journal *);

#endif
