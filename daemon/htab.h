/*
 * A small chained hash table of intrusive nodes keyed by bytes, shared by the
 * breaker registry (names, permits, connection owners) and the retry budget
 * (keys). Keys are hashed with SipHash-1-3 under a per-process random key, so
 * a client that picks names cannot pile them into one chain.
 */
#ifndef HTAB_H
#define HTAB_H

#include <stddef.h>
#include <stdint.h>

/* Embed one of these in each entry; the key stays owned by the entry. */
struct hnode {
	struct hnode	*hnext;
	uint64_t	 hash;
	const void	*key;
	size_t		 keylen;
};

struct htab {
	struct hnode	**b;
	size_t		  nb;		/* buckets: 0 or a power of two */
	size_t		  n;		/* entries */
};

/* The entry that embeds node as member. */
#define HTAB_ENTRY(node, type, member)					\
	((type *)(void *)((char *)(node) - offsetof(type, member)))

void		 htab_init(struct htab *h);
/* Frees the bucket array only: the entries belong to the caller. */
void		 htab_free(struct htab *h);
uint64_t	 htab_hash(const void *key, size_t len);
struct hnode	*htab_find(const struct htab *h, const void *key, size_t len);
/*
 * Link node under key (borrowed: it must live as long as the node is in the
 * table, typically a field of the entry). The key must not be present yet.
 * Returns -1 when the table cannot grow (nothing is changed then).
 */
int		 htab_insert(struct htab *h, struct hnode *node,
		    const void *key, size_t len);
void		 htab_remove(struct htab *h, struct hnode *node);
/*
 * Start loading, without waiting for it, what a find of key in each of the
 * n tables will read: its bucket, then the bucket's first entry and the
 * cache line before the node (entries keep their busiest fields there).
 * Called before looking one key up in several large tables, their cache
 * misses overlap instead of following one another. A hint only: nothing
 * changes, and a find afterwards is as correct without it.
 */
void		 htab_prefetch(const struct htab *const *tabs, size_t n,
		    const void *key, size_t len);
/*
 * Iterate: start with cur NULL; *bucket is the iterator's state. Fetch the
 * next node before removing cur; inserting during a walk is not allowed
 * (it may rehash).
 */
struct hnode	*htab_next(const struct htab *h, const struct hnode *cur,
		    size_t *bucket);
/*
 * The first node of the first non-empty bucket from *bucket on (which it
 * sets, for htab_next to go on from), or NULL past the last: a walk that
 * starts anywhere, e.g. at a random bucket.
 */
struct hnode	*htab_at(const struct htab *h, size_t *bucket);

#endif
