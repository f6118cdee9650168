/*
 * Retry policies, the retry decision and the host-wide retry budget; see
 * retry.h.
 */

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sys/random.h>

#include "clock.h"
#include "htab.h"
#include "opts.h"
#include "retry.h"

static const char *const backoff_words[] = {
	"constant", "linear", "exponential", NULL
};
static const char *const jitter_words[] = {
	"none", "full", "equal", "decorrelated", NULL
};

#define P(f)	offsetof(struct retry_policy, f)
static const struct opt retry_opts[] = {
	{ "max_attempts", OPT_INT, 1, 10000, P(max_attempts), NULL },
	{ "base_delay_ms", OPT_INT, 0, OPT_MAX_MS, P(base_delay_ms), NULL },
	{ "max_delay_ms", OPT_INT, 0, OPT_MAX_MS, P(max_delay_ms), NULL },
	{ "backoff", OPT_ENUM, 0, 0, P(backoff), backoff_words },
	{ "factor", OPT_NUM, 1, 1000, P(factor), NULL },
	{ "jitter", OPT_ENUM, 0, 0, P(jitter), jitter_words },
	{ "retry_on", OPT_CATSET, 0, 0, P(retry_on), NULL },
	{ "max_elapsed_ms", OPT_INT, 0, OPT_MAX_MS, P(max_elapsed_ms), NULL },
	{ "respect_retry_after", OPT_BOOL, 0, 0, P(respect_retry_after),
	    NULL },
	{ "max_retry_after_ms", OPT_INT, 0, OPT_MAX_MS, P(max_retry_after_ms),
	    NULL },
	{ "budget_percent", OPT_NUM, 0, 1000, P(budget_percent), NULL },
	{ "budget_min_per_s", OPT_NUM, 0, 1000000, P(budget_min_per_s), NULL },
	{ "budget_window_ms", OPT_INT, 10, 86400000, P(budget_window_ms),
	    NULL },
	{ NULL, OPT_INT, 0, 0, 0, NULL }
};
#undef P

void
retry_policy_defaults(struct retry_policy *p)
{
	memset(p, 0, sizeof(*p));
	p->max_attempts = 3;
	p->base_delay_ms = 1000;
	p->max_delay_ms = 60000;
	p->backoff = BACKOFF_EXPONENTIAL;
	p->factor = 2.0;
	p->jitter = JITTER_FULL;
	p->retry_on = CATSET_BIT(CAT_NETWORK_ERROR) |
	    CATSET_BIT(CAT_STORAGE_ERROR) | CATSET_BIT(CAT_TIMEOUT_ERROR) |
	    CATSET_BIT(CAT_RATE_LIMIT_ERROR) | CATSET_BIT(CAT_SYSTEM_ERROR);
	p->max_elapsed_ms = 0;
	p->respect_retry_after = 1;
	p->max_retry_after_ms = 300000;
	p->budget_percent = 20;
	p->budget_min_per_s = 3;
	p->budget_window_ms = 10000;
}

int
retry_policy_set(struct retry_policy *p, const char *key, const char *value,
    char *err, size_t errsz)
{
	int	i;

	if ((i = opt_find(retry_opts, key)) == -1) {
		snprintf(err, errsz, "unknown retry key '%s'", key);
		return (-1);
	}
	return (opt_parse(&retry_opts[i], p, value, err, errsz));
}

int
retry_policy_from_json(const struct retry_policy *base, const json_t *obj,
    const char *prefix, struct retry_policy *out, struct param_err *e)
{
	struct retry_policy	p = *base;

	if (opts_from_json(retry_opts, &p, obj, prefix, NULL, NULL, e) == -1)
		return (-1);
	*out = p;
	return (0);
}

json_t *
retry_policy_to_json(const struct retry_policy *p)
{
	return (opts_to_json(retry_opts, p));
}

/* ---- named policies ---------------------------------------------------- */

struct named_policy {
	char			 name[OPT_NAME_MAX + 1];
	struct retry_policy	 given;		/* the keys its section set */
	uint64_t		 mask;		/* which ones */
	struct retry_policy	 eff;		/* defaults + given */
};

struct retry_policies {
	struct retry_policy	 defaults;
	struct named_policy	*v;
	size_t			 n;
};

struct retry_policies *
retry_policies_new(void)
{
	struct retry_policies	*rp;

	if ((rp = calloc(1, sizeof(*rp))) == NULL)
		return (NULL);
	retry_policy_defaults(&rp->defaults);
	return (rp);
}

void
retry_policies_free(struct retry_policies *rp)
{
	if (rp == NULL)
		return;
	free(rp->v);
	free(rp);
}

static void
named_resolve(const struct retry_policies *rp, struct named_policy *np)
{
	np->eff = rp->defaults;
	opts_overlay(retry_opts, &np->eff, &np->given, np->mask);
}

int
retry_policies_set(struct retry_policies *rp, const char *name,
    const char *key, const char *value, char *err, size_t errsz)
{
	struct named_policy	*np = NULL, *v;
	size_t			 i;
	int			 o;

	if (name == NULL) {
		if (retry_policy_set(&rp->defaults, key, value, err,
		    errsz) == -1)
			return (-1);
		for (i = 0; i < rp->n; i++)
			named_resolve(rp, &rp->v[i]);
		return (0);
	}
	if (!opt_name_valid(name)) {
		snprintf(err, errsz, "bad policy name '%.64s' (1-%d bytes of "
		    "A-Z a-z 0-9 . _ : / -)", name, OPT_NAME_MAX);
		return (-1);
	}
	if ((o = opt_find(retry_opts, key)) == -1) {
		snprintf(err, errsz, "unknown retry key '%s'", key);
		return (-1);
	}
	for (i = 0; i < rp->n; i++)
		if (strcmp(rp->v[i].name, name) == 0) {
			np = &rp->v[i];
			break;
		}
	if (np == NULL) {
		if (rp->n == RETRY_MAX_POLICIES) {
			snprintf(err, errsz, "more than %d retry policies",
			    RETRY_MAX_POLICIES);
			return (-1);
		}
		if ((v = reallocarray(rp->v, rp->n + 1, sizeof(*v))) == NULL) {
			snprintf(err, errsz, "out of memory");
			return (-1);
		}
		rp->v = v;
		np = &v[rp->n];
		memset(np, 0, sizeof(*np));
		snprintf(np->name, sizeof(np->name), "%s", name);
		retry_policy_defaults(&np->given);
		if (opt_parse(&retry_opts[o], &np->given, value, err,
		    errsz) == -1)
			return (-1);
		rp->n++;
	} else if (opt_parse(&retry_opts[o], &np->given, value, err,
	    errsz) == -1)
		return (-1);
	np->mask |= OPT_BIT(o);
	named_resolve(rp, np);
	return (0);
}

const struct retry_policy *
retry_policies_get(const struct retry_policies *rp, const char *name)
{
	size_t	i;

	if (name == NULL)
		return (&rp->defaults);
	for (i = 0; i < rp->n; i++)
		if (strcmp(rp->v[i].name, name) == 0)
			return (&rp->v[i].eff);
	return (NULL);
}

size_t
retry_policies_count(const struct retry_policies *rp)
{
	return (rp->n);
}

const char *
retry_policies_name(const struct retry_policies *rp, size_t i)
{
	return (i < rp->n ? rp->v[i].name : NULL);
}

/* ---- randomness -------------------------------------------------------- */

void
retry_rng_seed(struct retry_rng *r, uint64_t seed)
{
	r->s = seed;
}

void
retry_rng_seed_random(struct retry_rng *r)
{
	uint64_t	seed;
	struct timespec	ts;

	if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) !=
	    (ssize_t)sizeof(seed)) {
		clock_gettime(CLOCK_MONOTONIC, &ts);
		seed = (uint64_t)ts.tv_sec * 1000000007ULL ^
		    (uint64_t)ts.tv_nsec ^ (uint64_t)getpid() << 32;
	}
	r->s = seed;
}

uint64_t
retry_rng_next(struct retry_rng *r)
{
	uint64_t	z;

	z = (r->s += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return (z ^ (z >> 31));
}

int64_t
retry_rng_uniform(struct retry_rng *r, int64_t lo, int64_t hi)
{
	uint64_t	range, x, thresh;

	if (hi <= lo)
		return (lo);
	range = (uint64_t)hi - (uint64_t)lo + 1;
	if (range == 0)
		return ((int64_t)retry_rng_next(r));
	/* Reject the low values that would make x % range favour some. */
	thresh = (0 - range) % range;
	do
		x = retry_rng_next(r);
	while (x < thresh);
	return (lo + (int64_t)(x % range));
}

/* ---- budget ------------------------------------------------------------ */

/*
 * One key's window: RETRY_BUDGET_SLOTS slots of `width` ms, aligned to
 * multiples of width on the daemon clock. Slot number s = now / width holds
 * what happened in [s*width, (s+1)*width); an event counts while the current
 * slot number is less than its own + RETRY_BUDGET_SLOTS, so it is forgotten
 * between 0.9 and 1.0 window after it happened (with the default 10 s
 * window: at the tenth one-second boundary after it). Sums are kept beside
 * the slots, so a request or a decision is O(1) (moving forward clears at
 * most RETRY_BUDGET_SLOTS slots).
 *
 * Keys are forgotten by retry_budget_expire(), which the owner calls now
 * and then to look at a slice of the table: a key idle for a whole window
 * has sums of zero, so one that comes back starts from the same place.
 * Nothing on the request path keeps an order among the keys: with 100,000
 * of them, relinking another key per request (the CLOCK list this replaced
 * moved one for each touch) misses the cache on it and its neighbour, and
 * cost 0.9 us of CPU per acquire+record pair at 64 clients. A full table
 * makes room by sampling instead (see evict()).
 */
struct bkey {
	uint32_t	 ret[RETRY_BUDGET_SLOTS];
	uint64_t	 ret_sum;
	/*
	 * What every breaker.acquire touches, packed against the node and the
	 * name: with many keys each acquire finds its key cold in the cache.
	 */
	uint32_t	 req[RETRY_BUDGET_SLOTS];
	uint64_t	 req_sum;
	uint64_t	 last;			/* last touch, ms */
	uint64_t	 width;			/* ms per slot */
	uint64_t	 head;			/* number of the newest slot */
	unsigned	 epoch;			/* see key_get() */
	struct hnode	 node;			/* beside the name it keys */
	char		 name[];
};

struct retry_budget {
	struct htab		 keys;
	size_t			 max_keys;
	size_t			 scan;		/* retry_budget_expire's bucket */
	uint64_t		 rnd;		/* evict()'s samples */
	unsigned		 epoch;		/* retry_budget_reconfigured() */
	struct retry_counters	 counters;
};

struct retry_budget *
retry_budget_new(size_t max_keys)
{
	struct retry_budget	*b;

	if ((b = calloc(1, sizeof(*b))) == NULL)
		return (NULL);
	htab_init(&b->keys);
	b->max_keys = max_keys != 0 ? max_keys : RETRY_BUDGET_MAX_KEYS;
	b->rnd = htab_hash(&b, sizeof(b));	/* keyed per process */
	return (b);
}

static void
key_free(struct retry_budget *b, struct bkey *k)
{
	htab_remove(&b->keys, &k->node);
	free(k);
}

void
retry_budget_free(struct retry_budget *b)
{
	struct hnode	*n, *next;
	size_t		 it;

	if (b == NULL)
		return;
	for (n = htab_next(&b->keys, NULL, &it); n != NULL; n = next) {
		next = htab_next(&b->keys, n, &it);
		key_free(b, HTAB_ENTRY(n, struct bkey, node));
	}
	htab_free(&b->keys);
	free(b);
}

static uint64_t
slot_width(const struct retry_policy *p)
{
	uint64_t	w = (uint64_t)p->budget_window_ms / RETRY_BUDGET_SLOTS;

	return (w > 0 ? w : 1);
}

/* Move k's newest slot up to now, forgetting the slots that fall out. */
static void
key_advance(struct bkey *k, uint64_t now)
{
	uint64_t	s = now / k->width, i;
	size_t		j;

	if (s <= k->head)
		return;
	if (s - k->head >= RETRY_BUDGET_SLOTS) {
		memset(k->req, 0, sizeof(k->req));
		memset(k->ret, 0, sizeof(k->ret));
		k->req_sum = k->ret_sum = 0;
	} else
		for (i = k->head + 1; i <= s; i++) {
			j = i % RETRY_BUDGET_SLOTS;
			k->req_sum -= k->req[j];
			k->ret_sum -= k->ret[j];
			k->req[j] = k->ret[j] = 0;
		}
	k->head = s;
}

/*
 * A key taking a new window after a reload keeps what it counted, as if it
 * all happened now: the budget errs on the side of fewer retries, for at
 * most one window.
 */
static void
key_rewidth(struct bkey *k, uint64_t width, uint64_t now)
{
	size_t	j;

	k->width = width;
	k->head = now / width;
	memset(k->req, 0, sizeof(k->req));
	memset(k->ret, 0, sizeof(k->ret));
	j = k->head % RETRY_BUDGET_SLOTS;
	k->req[j] = k->req_sum > UINT32_MAX ? UINT32_MAX : (uint32_t)k->req_sum;
	k->ret[j] = k->ret_sum > UINT32_MAX ? UINT32_MAX : (uint32_t)k->ret_sum;
	k->req_sum = k->req[j];
	k->ret_sum = k->ret[j];
}

/* The next node after n in the table's order, wrapping at its end. */
static struct hnode *
next_around(const struct htab *h, const struct hnode *n, size_t *bucket)
{
	struct hnode	*next;

	if ((next = htab_next(h, n, bucket)) == NULL) {
		*bucket = 0;
		next = htab_at(h, bucket);
	}
	return (next);
}

/*
 * Full: drop the least recently used of EVICT_SAMPLE keys that follow one
 * another from a random bucket on, as Redis approximates LRU. A client
 * inventing keys pushes out idle keys and its own, rarely a busy one; the
 * limit only has to hold against it, not be exact. With no more keys than
 * the sample, every key is looked at: exact LRU.
 */
#define EVICT_SAMPLE	8

static void
evict(struct retry_budget *b)
{
	struct hnode	*n;
	struct bkey	*k, *victim = NULL;
	size_t		 bucket, i, want;

	if (b->keys.n == 0)
		return;
	/* An LCG step (Knuth's MMIX constants); its high bits are good. */
	b->rnd = b->rnd * UINT64_C(6364136223846793005) +
	    UINT64_C(1442695040888963407);
	bucket = (size_t)(b->rnd >> 32) & (b->keys.nb - 1);
	if ((n = htab_at(&b->keys, &bucket)) == NULL) {
		bucket = 0;
		n = htab_at(&b->keys, &bucket);
	}
	want = b->keys.n < EVICT_SAMPLE ? b->keys.n : EVICT_SAMPLE;
	for (i = 0; i < want; i++) {
		k = HTAB_ENTRY(n, struct bkey, node);
		if (victim == NULL || k->last < victim->last)
			victim = k;
		n = next_around(&b->keys, n, &bucket);
	}
	key_free(b, victim);
}

size_t
retry_budget_expire(struct retry_budget *b, size_t visits)
{
	struct hnode	*n, *next;
	struct bkey	*k;
	uint64_t	 now = clock_now_ms();
	size_t		 seen = 0, freed = 0;

	if (b->scan >= b->keys.nb)
		b->scan = 0;
	/* Whole buckets, so that the next call starts at a bucket. */
	while (seen < visits && b->keys.n > 0) {
		for (n = b->keys.b[b->scan]; n != NULL; n = next) {
			next = n->hnext;
			k = HTAB_ENTRY(n, struct bkey, node);
			if (now >= k->last &&
			    now - k->last >= k->width * RETRY_BUDGET_SLOTS) {
				key_free(b, k);
				freed++;
			}
			seen++;
		}
		if (++b->scan >= b->keys.nb) {
			b->scan = 0;
			break;		/* once round at most */
		}
	}
	return (freed);
}

/* Find or make key, advanced to now. */
static struct bkey *
key_get(struct retry_budget *b, const char *key, const struct retry_policy *p)
{
	struct hnode	*n;
	struct bkey	*k;
	size_t		 len;
	uint64_t	 now = clock_now_ms(), width = slot_width(p);

	len = strlen(key);
	if (len == 0 || len > RETRY_KEY_MAX)
		return (NULL);
	if ((n = htab_find(&b->keys, key, len)) != NULL)
		k = HTAB_ENTRY(n, struct bkey, node);
	else {
		/* Full: a key that goes starts over if it comes back. */
		if (b->keys.n >= b->max_keys)
			evict(b);
		if ((k = calloc(1, sizeof(*k) + len + 1)) == NULL)
			return (NULL);
		memcpy(k->name, key, len + 1);
		k->width = width;
		k->head = now / width;
		if (htab_insert(&b->keys, &k->node, k->name, len) == -1) {
			free(k);
			return (NULL);
		}
	}
	/*
	 * A key counts in the window of the policy that made it, whoever
	 * uses it after (a breaker's acquires under the [retry] defaults,
	 * an op of a named policy on the same breaker): moving it to each
	 * user's window in turn would re-age its counts at every switch,
	 * and a key used in turn by two windows would never forget. It
	 * takes a new window only after a reload (a new epoch).
	 */
	k->last = now;
	if (k->width != width && k->epoch != b->epoch)
		key_rewidth(k, width, now);
	else
		key_advance(k, now);
	k->epoch = b->epoch;
	return (k);
}

int
retry_budget_note_request(struct retry_budget *b, const char *key,
    const struct retry_policy *p)
{
	struct bkey	*k;
	size_t		 j;

	if ((k = key_get(b, key, p)) == NULL)
		return (-1);
	j = k->head % RETRY_BUDGET_SLOTS;
	if (k->req[j] < UINT32_MAX) {
		k->req[j]++;
		k->req_sum++;
	}
	return (0);
}

void
retry_budget_window(struct retry_budget *b, const char *key,
    uint64_t *requests, uint64_t *retries)
{
	struct hnode	*n;
	struct bkey	*k;

	*requests = *retries = 0;
	if ((n = htab_find(&b->keys, key, strlen(key))) == NULL)
		return;
	k = HTAB_ENTRY(n, struct bkey, node);
	key_advance(k, clock_now_ms());
	*requests = k->req_sum;
	*retries = k->ret_sum;
}

size_t
retry_budget_nkeys(const struct retry_budget *b)
{
	return (b->keys.n);
}

void
retry_budget_reconfigured(struct retry_budget *b)
{
	b->epoch++;
}

const struct htab *
retry_budget_keys(const struct retry_budget *b)
{
	return (&b->keys);
}

const struct retry_counters *
retry_budget_counters(const struct retry_budget *b)
{
	return (&b->counters);
}

/*
 * Take one retry from key's budget if there is one left: the retries
 * granted in the window must stay below max(budget_min_per_s x window
 * seconds, budget_percent % x requests in the window).
 */
static int
budget_take(struct retry_budget *b, const char *key,
    const struct retry_policy *p, int *granted)
{
	struct bkey	*k;
	double		 floor_n, pct_n;
	size_t		 j;

	*granted = 0;
	if ((k = key_get(b, key, p)) == NULL)
		return (-1);
	floor_n = p->budget_min_per_s * ((double)p->budget_window_ms / 1000.0);
	pct_n = p->budget_percent / 100.0 * (double)k->req_sum;
	if ((double)k->ret_sum >= (floor_n > pct_n ? floor_n : pct_n))
		return (0);
	j = k->head % RETRY_BUDGET_SLOTS;
	if (k->ret[j] < UINT32_MAX) {
		k->ret[j]++;
		k->ret_sum++;
	}
	*granted = 1;
	return (0);
}

/* ---- the decision ------------------------------------------------------ */

static const char *const reason_names[RETRY_NREASONS] = {
	[RETRY_RETRYABLE] = "retryable",
	[RETRY_EXHAUSTED] = "exhausted",
	[RETRY_NON_RETRYABLE] = "non_retryable",
	[RETRY_BUDGET_EXHAUSTED] = "budget_exhausted",
	[RETRY_DEADLINE] = "deadline",
};

const char *
retry_reason_name(enum retry_reason r)
{
	if (r < 0 || r >= RETRY_NREASONS)
		return ("unknown");
	return (reason_names[r]);
}

int64_t
retry_backoff_ms(const struct retry_policy *p, int64_t attempt)
{
	double	d, b = (double)p->base_delay_ms;

	if (attempt < 1)
		attempt = 1;
	switch (p->backoff) {
	case BACKOFF_CONSTANT:
		d = b;
		break;
	case BACKOFF_LINEAR:
		d = b * (double)attempt;
		break;
	default:
		/* pow may reach inf; the cap below handles it. */
		d = b * pow(p->factor, (double)(attempt - 1));
		break;
	}
	if (!(d < (double)p->max_delay_ms))
		return (p->max_delay_ms);
	return ((int64_t)floor(d));
}

static int64_t
jittered(const struct retry_policy *p, int64_t attempt, int64_t prev,
    struct retry_rng *rng)
{
	int64_t	d, half, b, hi;

	switch (p->jitter) {
	case JITTER_NONE:
		return (retry_backoff_ms(p, attempt));
	case JITTER_FULL:
		d = retry_backoff_ms(p, attempt);
		return (retry_rng_uniform(rng, 0, d));
	case JITTER_EQUAL:
		/* d/2 + U[0, d/2], with the odd millisecond on the top. */
		d = retry_backoff_ms(p, attempt);
		half = d / 2;
		return (half + retry_rng_uniform(rng, 0, d - half));
	default:
		/*
		 * Decorrelated (AWS "Exponential Backoff and Jitter"):
		 * min(max_delay, U[b, 3*prev]), prev = b at first. It ignores
		 * `backoff`: the growth comes from prev.
		 */
		b = p->base_delay_ms;
		if (prev < 0)
			prev = b;
		if (prev > (int64_t)OPT_MAX_MS)
			prev = (int64_t)OPT_MAX_MS;
		hi = 3 * prev;
		if (hi < b)
			hi = b;
		d = retry_rng_uniform(rng, b, hi);
		return (d < p->max_delay_ms ? d : p->max_delay_ms);
	}
}

static void
decided(struct retry_decision *out, int retry, int64_t delay,
    enum retry_reason reason)
{
	out->retry = retry;
	out->delay_ms = retry ? delay : 0;
	out->reason = reason;
}

void
retry_count(struct retry_budget *b, const struct retry_decision *d)
{
	if (b == NULL)
		return;
	if (d->retry)
		b->counters.granted++;
	else
		b->counters.denied[d->reason]++;
}

void
retry_check(const struct retry_policy *p, int64_t attempt, enum category cat,
    int64_t elapsed_ms, int64_t prev_delay_ms, int64_t retry_after_ms,
    struct retry_rng *rng, struct retry_decision *out)
{
	int64_t	delay, ra;

	memset(out, 0, sizeof(*out));
	if (attempt < 1)
		attempt = 1;
	if (attempt >= p->max_attempts) {
		decided(out, 0, 0, RETRY_EXHAUSTED);
		return;
	}
	if (cat != CAT_NONE && (p->retry_on & CATSET_BIT(cat)) == 0) {
		decided(out, 0, 0, RETRY_NON_RETRYABLE);
		return;
	}

	delay = jittered(p, attempt, prev_delay_ms, rng);
	if (p->respect_retry_after && retry_after_ms >= 0) {
		ra = retry_after_ms < p->max_retry_after_ms ? retry_after_ms :
		    p->max_retry_after_ms;
		if (ra > delay)
			delay = ra;
	}

	if (p->max_elapsed_ms > 0 && elapsed_ms >= 0 &&
	    (elapsed_ms > INT64_MAX - delay ||
	    elapsed_ms + delay > p->max_elapsed_ms)) {
		decided(out, 0, 0, RETRY_DEADLINE);
		return;
	}
	decided(out, 1, delay, RETRY_RETRYABLE);
}

int
retry_grant(const struct retry_policy *p, struct retry_budget *b,
    const char *key, struct retry_decision *d)
{
	int	granted, rc = 0;

	if (b != NULL && key != NULL) {
		if ((rc = budget_take(b, key, p, &granted)) == -1 || !granted)
			decided(d, 0, 0, RETRY_BUDGET_EXHAUSTED);
	}
	retry_count(b, d);
	return (rc);
}

int
retry_decide(const struct retry_policy *p, struct retry_budget *b,
    const char *key, int64_t attempt, enum category cat, int64_t elapsed_ms,
    int64_t prev_delay_ms, int64_t retry_after_ms, struct retry_rng *rng,
    struct retry_decision *out)
{
	retry_check(p, attempt, cat, elapsed_ms, prev_delay_ms,
	    retry_after_ms, rng, out);
	if (!out->retry) {
		retry_count(b, out);
		return (0);
	}
	return (retry_grant(p, b, key, out));
}

json_t *
retry_decision_to_json(const struct retry_decision *d)
{
	return (json_pack("{s:b, s:I, s:s}", "retry", d->retry,
	    "delay_ms", (json_int_t)d->delay_ms,
	    "reason", retry_reason_name(d->reason)));
}
