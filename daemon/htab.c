/* A chained hash table of intrusive nodes; see htab.h. */

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sys/random.h>

#include "htab.h"

#define HTAB_MIN	16

static uint64_t	sip_k0, sip_k1;
static int	sip_seeded;

/*
 * The key only has to be unknown to clients; when getrandom is unavailable
 * (very early boot), the time and pid are still not something a client
 * chooses.
 */
static void
sip_seed(void)
{
	uint64_t	k[2];
	struct timespec	ts;

	if (getrandom(k, sizeof(k), GRND_NONBLOCK) != (ssize_t)sizeof(k)) {
		clock_gettime(CLOCK_MONOTONIC, &ts);
		k[0] = (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15ULL ^
		    (uint64_t)getpid();
		k[1] = (uint64_t)ts.tv_sec * 0xbf58476d1ce4e5b9ULL;
	}
	sip_k0 = k[0];
	sip_k1 = k[1];
	sip_seeded = 1;
}

#define ROTL(x, b)	(uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND do {							\
	v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0; v0 = ROTL(v0, 32);	\
	v2 += v3; v3 = ROTL(v3, 16); v3 ^= v2;				\
	v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0;				\
	v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2; v2 = ROTL(v2, 32);	\
} while (0)

/* SipHash-1-3: one compression round, three finalisation rounds. */
uint64_t
htab_hash(const void *key, size_t len)
{
	const uint8_t	*p = key;
	uint64_t	 v0, v1, v2, v3, m, b;
	size_t		 i, j, end = len & ~(size_t)7;

	if (!sip_seeded)
		sip_seed();
	v0 = 0x736f6d6570736575ULL ^ sip_k0;
	v1 = 0x646f72616e646f6dULL ^ sip_k1;
	v2 = 0x6c7967656e657261ULL ^ sip_k0;
	v3 = 0x7465646279746573ULL ^ sip_k1;
	for (i = 0; i < end; i += 8) {
		m = 0;
		for (j = 0; j < 8; j++)
			m |= (uint64_t)p[i + j] << (8 * j);
		v3 ^= m;
		SIPROUND;
		v0 ^= m;
	}
	b = (uint64_t)len << 56;
	for (j = 0; j < (len & 7); j++)
		b |= (uint64_t)p[end + j] << (8 * j);
	v3 ^= b;
	SIPROUND;
	v0 ^= b;
	v2 ^= 0xff;
	SIPROUND;
	SIPROUND;
	SIPROUND;
	return (v0 ^ v1 ^ v2 ^ v3);
}

void
htab_init(struct htab *h)
{
	memset(h, 0, sizeof(*h));
}

void
htab_free(struct htab *h)
{
	free(h->b);
	memset(h, 0, sizeof(*h));
}

struct hnode *
htab_find(const struct htab *h, const void *key, size_t len)
{
	struct hnode	*n;
	uint64_t	 hash;

	if (h->n == 0)
		return (NULL);
	hash = htab_hash(key, len);
	for (n = h->b[hash & (h->nb - 1)]; n != NULL; n = n->hnext)
		if (n->hash == hash && n->keylen == len &&
		    memcmp(n->key, key, len) == 0)
			return (n);
	return (NULL);
}

void
htab_prefetch(const struct htab *const *tabs, size_t n, const void *key,
    size_t len)
{
	struct hnode	*node;
	uint64_t	 hash = htab_hash(key, len);
	size_t		 i;

	/* All the buckets first: reading one below waits for it. */
	for (i = 0; i < n; i++)
		if (tabs[i]->nb != 0)
			__builtin_prefetch(&tabs[i]->b[hash &
			    (tabs[i]->nb - 1)]);
	for (i = 0; i < n; i++)
		if (tabs[i]->nb != 0 &&
		    (node = tabs[i]->b[hash & (tabs[i]->nb - 1)]) != NULL) {
			__builtin_prefetch(node);
			__builtin_prefetch((const char *)node - 64);
		}
}

/* Keep the load at most one entry per bucket; doubling keeps it amortised. */
static int
grow(struct htab *h)
{
	struct hnode	**nb, *n, *next;
	size_t		  cap, i;

	cap = h->nb == 0 ? HTAB_MIN : h->nb * 2;
	if ((nb = calloc(cap, sizeof(*nb))) == NULL)
		return (-1);
	for (i = 0; i < h->nb; i++)
		for (n = h->b[i]; n != NULL; n = next) {
			next = n->hnext;
			n->hnext = nb[n->hash & (cap - 1)];
			nb[n->hash & (cap - 1)] = n;
		}
	free(h->b);
	h->b = nb;
	h->nb = cap;
	return (0);
}

int
htab_insert(struct htab *h, struct hnode *node, const void *key, size_t len)
{
	size_t	i;

	if (h->n >= h->nb && grow(h) == -1)
		return (-1);
	node->key = key;
	node->keylen = len;
	node->hash = htab_hash(key, len);
	i = node->hash & (h->nb - 1);
	node->hnext = h->b[i];
	h->b[i] = node;
	h->n++;
	return (0);
}

void
htab_remove(struct htab *h, struct hnode *node)
{
	struct hnode	**pp;

	for (pp = &h->b[node->hash & (h->nb - 1)]; *pp != NULL;
	    pp = &(*pp)->hnext)
		if (*pp == node) {
			*pp = node->hnext;
			node->hnext = NULL;
			h->n--;
			return;
		}
}

struct hnode *
htab_at(const struct htab *h, size_t *bucket)
{
	size_t	i;

	for (i = *bucket; i < h->nb; i++)
		if (h->b[i] != NULL) {
			*bucket = i;
			return (h->b[i]);
		}
	return (NULL);
}

struct hnode *
htab_next(const struct htab *h, const struct hnode *cur, size_t *bucket)
{
	if (cur != NULL && cur->hnext != NULL)
		return (cur->hnext);
	*bucket = cur == NULL ? 0 : *bucket + 1;
	return (htab_at(h, bucket));
}
