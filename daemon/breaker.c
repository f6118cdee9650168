/*
 * Circuit breakers: one breaker's state machine, windows, permits and
 * leases, and the registry by name; see breaker.h.
 */

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "breaker.h"
#include "clock.h"
#include "erm_proto.h"
#include "htab.h"
#include "log.h"
#include "names.h"

/* ---- names and config -------------------------------------------------- */

static const char *const state_names[BRK_NSTATES] = {
	[BRK_CLOSED] = "closed",
	[BRK_HALF_OPEN] = "half_open",
	[BRK_OPEN] = "open",
	[BRK_FORCED_OPEN] = "forced_open",
	[BRK_DISABLED] = "disabled",
	[BRK_METRICS_ONLY] = "metrics_only",
};

static const char *const window_words[] = {
	"consecutive", "count", "time", NULL
};

#define C(f)	offsetof(struct breaker_config, f)
static const struct opt breaker_opts[] = {
	{ "window", OPT_ENUM, 0, 0, C(window), window_words },
	{ "failure_threshold", OPT_INT, 1, 1000000, C(failure_threshold),
	    NULL },
	{ "window_size", OPT_INT, 1, 10000, C(window_size), NULL },
	{ "failure_rate_threshold", OPT_NUM, 0.01, 100,
	    C(failure_rate_threshold), NULL },
	{ "minimum_calls", OPT_INT, 1, 1000000, C(minimum_calls), NULL },
	{ "slow_call_ms", OPT_INT, 0, OPT_MAX_MS, C(slow_call_ms), NULL },
	{ "slow_call_rate_threshold", OPT_NUM, 0.01, 100,
	    C(slow_call_rate_threshold), NULL },
	{ "recovery_timeout_ms", OPT_INT, 0, OPT_MAX_MS,
	    C(recovery_timeout_ms), NULL },
	{ "recovery_backoff", OPT_NUM, 1, 100, C(recovery_backoff), NULL },
	{ "max_recovery_timeout_ms", OPT_INT, 0, OPT_MAX_MS,
	    C(max_recovery_timeout_ms), NULL },
	{ "half_open_max_calls", OPT_INT, 1, 10000, C(half_open_max_calls),
	    NULL },
	{ "half_open_max_wait_ms", OPT_INT, 0, OPT_MAX_MS,
	    C(half_open_max_wait_ms), NULL },
	{ "permit_ttl_ms", OPT_INT, 1, OPT_MAX_MS, C(permit_ttl_ms), NULL },
	{ "idle_evict_ms", OPT_INT, 0, OPT_MAX_MS, C(idle_evict_ms), NULL },
	{ "ignore", OPT_CATSET, 0, 0, C(ignore), NULL },
	{ NULL, OPT_INT, 0, 0, 0, NULL }
};
#undef C

const char *
breaker_state_name(enum breaker_state s)
{
	if (s < 0 || s >= BRK_NSTATES)
		return (NULL);
	return (state_names[s]);
}

int
breaker_state_from_name(const char *s)
{
	return (name_index(state_names, 0, BRK_NSTATES, s));
}

int
breaker_outcome_from_name(const char *s)
{
	if (strcmp(s, "success") == 0)
		return (OUTCOME_SUCCESS);
	if (strcmp(s, "failure") == 0)
		return (OUTCOME_FAILURE);
	if (strcmp(s, "ignored") == 0)
		return (OUTCOME_IGNORED);
	return (-1);
}

int
breaker_name_valid(const char *name)
{
	return (opt_name_valid(name));
}

void
breaker_config_defaults(struct breaker_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->window = WINDOW_CONSECUTIVE;
	cfg->failure_threshold = 5;
	cfg->window_size = 100;
	cfg->failure_rate_threshold = 50;
	cfg->minimum_calls = 10;
	cfg->slow_call_ms = 0;
	cfg->slow_call_rate_threshold = 100;
	cfg->recovery_timeout_ms = 60000;
	cfg->recovery_backoff = 1.0;
	cfg->max_recovery_timeout_ms = 600000;
	cfg->half_open_max_calls = 1;
	cfg->half_open_max_wait_ms = 0;
	cfg->permit_ttl_ms = 30000;
	cfg->idle_evict_ms = 3600000;
	cfg->ignore = 0;
}

int
breaker_config_set(struct breaker_config *cfg, uint64_t *mask,
    const char *key, const char *value, char *err, size_t errsz)
{
	int	i;

	if ((i = opt_find(breaker_opts, key)) == -1) {
		snprintf(err, errsz, "unknown breaker key '%s'", key);
		return (-1);
	}
	if (opt_parse(&breaker_opts[i], cfg, value, err, errsz) == -1)
		return (-1);
	if (mask != NULL)
		*mask |= OPT_BIT(i);
	return (0);
}

int
breaker_config_check(const struct breaker_config *cfg, char *err,
    size_t errsz)
{
	if (cfg->window == WINDOW_TIME &&
	    cfg->window_size > BREAKER_TIME_WINDOW_MAX) {
		snprintf(err, errsz, "window_size must be at most %d (seconds) "
		    "with window = time", BREAKER_TIME_WINDOW_MAX);
		return (-1);
	}
	return (0);
}

json_t *
breaker_config_to_json(const struct breaker_config *cfg)
{
	return (opts_to_json(breaker_opts, cfg));
}

/* ---- structures -------------------------------------------------------- */

/*
 * The sliding window of closed (and metrics_only) state. Every type keeps
 * the sums and the streak of consecutive failures; `count` adds a ring of
 * window_size bytes (bit 0 failure, bit 1 slow: one byte per call, 100
 * bytes by default, at most 10 KB), `time` a ring of window_size one-second
 * buckets of 12 bytes (1.2 KB by default, at most 43 KB). For
 * `consecutive` the sums count every call since the window was last
 * emptied; they are shown, not judged.
 */
struct tbucket {
	uint32_t	 calls, failures, slow;
};

struct window {
	int		 type;
	int64_t		 size;
	uint64_t	 calls, failures, slow;
	uint64_t	 consecutive;
	uint8_t		*ring;			/* count */
	size_t		 pos, filled;
	struct tbucket	*tb;			/* time */
	uint64_t	 head;			/* newest second in tb */
};

#define SLOT_FAILURE	0x1
#define SLOT_SLOW	0x2

/*
 * A lease. Permits are the only per-call state: each sits in its breaker's
 * FIFO (issue order, so the head expires first), in the registry's table by
 * id, and in its owner's list. Every state change frees all of a breaker's
 * permits (they belong to the old generation), so an outstanding permit is
 * always of the current generation and `trial` equals "the breaker is
 * half-open".
 */
struct owner;

struct permit {
	struct hnode	 node;
	struct breaker	*b;
	struct permit	*prev, *next;		/* breaker FIFO */
	struct owner	*owner;
	struct permit	*oprev, *onext;		/* owner list */
	uint64_t	 issued;		/* the lease runs from here */
	int		 trial;
	char		 id[BREAKER_PERMIT_MAX];
};

struct owner {
	struct hnode	 node;
	uint64_t	 id;
	struct permit	*first;
};

struct breaker {
	/* Cold: read when the state changes, or by breaker.get. */
	struct breaker_config	*api;		/* breaker.configure, or NULL */
	uint64_t		 api_mask;
	int			 file;		/* has a [breaker.NAME] */
	int			 from_trial;	/* see ho_calls */
	uint64_t		 open_count;
	uint64_t		 opened_at;
	uint64_t		 open_until;	/* open: half-open is due */
	uint64_t		 state_since;
	uint64_t		 not_permitted;
	uint64_t		 transitions[BRK_NSTATES];
	/*
	 * The half-open trial: permits out, outcomes in. A failed trial's
	 * counts stay on show while it is open again (from_trial).
	 */
	uint64_t		 ho_calls, ho_failures, ho_slow, ho_consec;
	struct clock_timer	*state_timer;	/* half-open due, max wait */
	struct clock_timer	*lease_timer;	/* oldest lease expires */
	json_t			*last_error;
	struct window		 w;
	struct breaker_config	 cfg;		/* effective */
	/*
	 * Hot: what an acquire and a record of a closed breaker touch, packed
	 * against the end of cfg and the node. With 100,000 breakers every
	 * acquire finds its breaker cold in the cache, and each cache line
	 * spread over the struct is a miss; this way it is two or three.
	 */
	struct breakers		*reg;
	enum breaker_state	 state;
	int			 dirty;
	int			 journaled;	/* see breaker_journaled() */
	uint64_t		 generation;
	uint64_t		 last_call;
	int64_t			 ho_out;
	struct permit		*pfirst, *plast;
	size_t			 npermits;
	uint64_t		 lease_due;	/* lease_timer's deadline, or 0
						   when it is not armed */
	/* Last, beside the name it points at: a lookup compares both. */
	struct hnode		 node;
	char			 name[];
};

struct file_section {
	char			*name;
	struct breaker_config	 cfg;
	uint64_t		 mask;
};

struct breakers {
	struct htab		 byname;
	struct htab		 permits;
	struct htab		 owners;
	struct breaker_config	 defaults;
	struct file_section	*secs;
	size_t			 nsecs;
	size_t			 max_breakers, max_permits;
	size_t			 npermits;
	size_t			 by_state[BRK_NSTATES];
	uint64_t		 permit_seq;
	struct permit		*spare;		/* see permit_alloc() */
	size_t			 nspare;
	struct breaker_hooks	 hooks;
	struct clock_timer	*sweep_timer;
};

static void	trial_check(struct breaker *, const char *);

/* ---- windows ----------------------------------------------------------- */

static int
window_init(struct window *w, int type, int64_t size)
{
	memset(w, 0, sizeof(*w));
	w->type = type;
	w->size = size;
	if (type == WINDOW_COUNT &&
	    (w->ring = calloc((size_t)size, 1)) == NULL)
		return (-1);
	if (type == WINDOW_TIME &&
	    (w->tb = calloc((size_t)size, sizeof(*w->tb))) == NULL)
		return (-1);
	w->head = clock_now_ms() / 1000;
	return (0);
}

static void
window_free(struct window *w)
{
	free(w->ring);
	free(w->tb);
	memset(w, 0, sizeof(*w));
}

static void
window_reset(struct window *w)
{
	w->calls = w->failures = w->slow = w->consecutive = 0;
	w->pos = w->filled = 0;
	if (w->ring != NULL)
		memset(w->ring, 0, (size_t)w->size);
	if (w->tb != NULL)
		memset(w->tb, 0, (size_t)w->size * sizeof(*w->tb));
	w->head = clock_now_ms() / 1000;
}

/*
 * Time windows: bucket (s mod size) holds second s. Moving the newest
 * second forward clears the buckets of the seconds that fall out of
 * (now - size, now], at most size of them, so an outcome recorded at second
 * k counts while the clock reads seconds k .. k + size - 1.
 */
static void
window_advance(struct window *w, uint64_t now)
{
	uint64_t	 s = now / 1000, i;
	struct tbucket	*t;

	if (w->type != WINDOW_TIME || s <= w->head)
		return;
	if (s - w->head >= (uint64_t)w->size) {
		memset(w->tb, 0, (size_t)w->size * sizeof(*w->tb));
		w->calls = w->failures = w->slow = 0;
	} else
		for (i = w->head + 1; i <= s; i++) {
			t = &w->tb[i % (uint64_t)w->size];
			w->calls -= t->calls;
			w->failures -= t->failures;
			w->slow -= t->slow;
			memset(t, 0, sizeof(*t));
		}
	w->head = s;
}

/* The sums as they stand at now, without moving the window (for reads). */
static void
window_sums(const struct window *w, uint64_t now, uint64_t *calls,
    uint64_t *failures, uint64_t *slow)
{
	uint64_t		 s = now / 1000, i;
	const struct tbucket	*t;

	*calls = w->calls;
	*failures = w->failures;
	*slow = w->slow;
	if (w->type != WINDOW_TIME || s <= w->head)
		return;
	if (s - w->head >= (uint64_t)w->size) {
		*calls = *failures = *slow = 0;
		return;
	}
	for (i = w->head + 1; i <= s; i++) {
		t = &w->tb[i % (uint64_t)w->size];
		*calls -= t->calls;
		*failures -= t->failures;
		*slow -= t->slow;
	}
}

static void
window_add(struct window *w, int failure, int slow, uint64_t now)
{
	uint8_t		 old, bits;
	struct tbucket	*t;

	if (failure)
		w->consecutive++;
	else
		w->consecutive = 0;
	switch (w->type) {
	case WINDOW_COUNT:
		if (w->filled == (size_t)w->size) {
			old = w->ring[w->pos];
			w->calls--;
			if (old & SLOT_FAILURE)
				w->failures--;
			if (old & SLOT_SLOW)
				w->slow--;
		} else
			w->filled++;
		bits = (failure ? SLOT_FAILURE : 0) | (slow ? SLOT_SLOW : 0);
		w->ring[w->pos] = bits;
		w->pos = (w->pos + 1) % (size_t)w->size;
		break;
	case WINDOW_TIME:
		window_advance(w, now);
		t = &w->tb[(now / 1000) % (uint64_t)w->size];
		t->calls++;
		t->failures += failure ? 1 : 0;
		t->slow += slow ? 1 : 0;
		break;
	}
	w->calls++;
	w->failures += failure ? 1 : 0;
	w->slow += slow ? 1 : 0;
}

/* ---- small helpers ----------------------------------------------------- */

static int
is_configured(const struct breaker *b)
{
	return (b->file || b->api_mask != 0);
}

/* recovery_timeout_ms x recovery_backoff^(open_count - 1), capped. */
static uint64_t
recovery_ms(const struct breaker *b)
{
	double	d;
	double	k = b->open_count > 0 ? (double)(b->open_count - 1) : 0;

	d = (double)b->cfg.recovery_timeout_ms * pow(b->cfg.recovery_backoff,
	    k);
	if (!(d < (double)b->cfg.max_recovery_timeout_ms))
		return ((uint64_t)b->cfg.max_recovery_timeout_ms);
	return ((uint64_t)floor(d));
}

static void
flush(struct breaker *b)
{
	struct breakers	*reg = b->reg;

	if (!b->dirty)
		return;
	b->dirty = 0;
	if (reg->hooks.on_change != NULL)
		reg->hooks.on_change(reg->hooks.arg, b);
}

/* ---- permits ----------------------------------------------------------- */

/*
 * A permit lives for one call, so the busiest path allocates and frees one
 * per acquire. Freed permits wait on a list for the next acquire, up to
 * PERMIT_SPARE of them: malloc takes a chunk of this size from its small
 * bins, touching neighbouring chunks, which are cold once the heap holds
 * many breakers (a measured quarter of a microsecond per acquire at
 * 100,000 breakers).
 */
#define PERMIT_SPARE	256

static struct permit *
permit_alloc(struct breakers *reg)
{
	struct permit	*p;

	if ((p = reg->spare) == NULL)
		return (calloc(1, sizeof(*p)));
	reg->spare = p->next;
	reg->nspare--;
	memset(p, 0, sizeof(*p));
	return (p);
}

static void
permit_release(struct breakers *reg, struct permit *p)
{
	if (reg->nspare >= PERMIT_SPARE) {
		free(p);
		return;
	}
	p->next = reg->spare;
	reg->spare = p;
	reg->nspare++;
}

static void
permit_free(struct permit *p)
{
	struct breaker	*b = p->b;
	struct breakers	*reg = b->reg;
	struct owner	*o = p->owner;

	if (p->prev != NULL)
		p->prev->next = p->next;
	else
		b->pfirst = p->next;
	if (p->next != NULL)
		p->next->prev = p->prev;
	else
		b->plast = p->prev;
	b->npermits--;
	reg->npermits--;
	htab_remove(&reg->permits, &p->node);
	if (o != NULL) {
		if (p->oprev != NULL)
			p->oprev->onext = p->onext;
		else
			o->first = p->onext;
		if (p->onext != NULL)
			p->onext->oprev = p->oprev;
		if (o->first == NULL) {
			htab_remove(&reg->owners, &o->node);
			free(o);
		}
	}
	permit_release(reg, p);
}

/*
 * The lease timer must fire no later than the oldest lease's expiry. It is
 * left armed when leases end (firing early, it finds nothing to expire and
 * arms itself for the new oldest) and moved only when it would fire too
 * late, so a busy breaker's acquire and record touch no timer at all.
 */
static void
lease_timer_arm(struct breaker *b)
{
	uint64_t	due;

	if (b->pfirst == NULL)
		return;
	due = b->pfirst->issued + (uint64_t)b->cfg.permit_ttl_ms;
	/* lease_due, not the timer: the timer is another cache line. */
	if (b->lease_due == 0 || b->lease_due > due) {
		clock_timer_at(b->lease_timer, due);
		b->lease_due = due;
	}
}

/* All permits become stale at a state change. */
static void
drop_permits(struct breaker *b)
{
	while (b->pfirst != NULL)
		permit_free(b->pfirst);
	b->ho_out = 0;
	clock_timer_cancel(b->lease_timer);
	b->lease_due = 0;
}

static void
permit_id(struct breakers *reg, const struct breaker *b, char *id)
{
	snprintf(id, BREAKER_PERMIT_MAX, "%" PRIx64 "-%" PRIx64,
	    b->generation, reg->permit_seq++);
}

/*
 * A new lease from `from` (now, or later for a call that is due later).
 * The breaker's FIFO stays in lease order, so that its head expires
 * first: a permit whose lease starts later goes behind the others.
 */
static int
permit_new(struct breaker *b, uint64_t owner, int trial, uint64_t from,
    char *id)
{
	struct breakers	*reg = b->reg;
	struct permit	*p, *after;
	struct owner	*o = NULL;
	struct hnode	*n;

	if (reg->npermits >= reg->max_permits)
		return (ERM_LIMIT_EXCEEDED);
	if ((p = permit_alloc(reg)) == NULL)
		return (ERM_INTERNAL_ERROR);
	if (owner != 0) {
		if ((n = htab_find(&reg->owners, &owner,
		    sizeof(owner))) != NULL)
			o = HTAB_ENTRY(n, struct owner, node);
		else {
			if ((o = calloc(1, sizeof(*o))) == NULL) {
				permit_release(reg, p);
				return (ERM_INTERNAL_ERROR);
			}
			o->id = owner;
			if (htab_insert(&reg->owners, &o->node, &o->id,
			    sizeof(o->id)) == -1) {
				free(o);
				permit_release(reg, p);
				return (ERM_INTERNAL_ERROR);
			}
		}
	}
	permit_id(reg, b, p->id);
	if (htab_insert(&reg->permits, &p->node, p->id, strlen(p->id)) == -1) {
		if (o != NULL && o->first == NULL) {
			htab_remove(&reg->owners, &o->node);
			free(o);
		}
		permit_release(reg, p);
		return (ERM_INTERNAL_ERROR);
	}
	p->b = b;
	p->issued = from;
	p->trial = trial;
	for (after = b->plast; after != NULL && after->issued > from;
	    after = after->prev)
		;
	p->prev = after;
	p->next = after != NULL ? after->next : b->pfirst;
	if (p->prev != NULL)
		p->prev->next = p;
	else
		b->pfirst = p;
	if (p->next != NULL)
		p->next->prev = p;
	else
		b->plast = p;
	b->npermits++;
	reg->npermits++;
	if (o != NULL) {
		p->owner = o;
		p->onext = o->first;
		if (o->first != NULL)
			o->first->oprev = p;
		o->first = p;
	}
	if (b->pfirst == p)
		lease_timer_arm(b);
	memcpy(id, p->id, BREAKER_PERMIT_MAX);
	return (0);
}

/* ---- transitions ------------------------------------------------------- */

static void
state_timer_arm(struct breaker *b)
{
	switch (b->state) {
	case BRK_OPEN:
		clock_timer_at(b->state_timer, b->open_until);
		break;
	case BRK_HALF_OPEN:
		if (b->cfg.half_open_max_wait_ms > 0)
			clock_timer_at(b->state_timer, b->state_since +
			    (uint64_t)b->cfg.half_open_max_wait_ms);
		else
			clock_timer_cancel(b->state_timer);
		break;
	default:
		clock_timer_cancel(b->state_timer);
		break;
	}
}

static void
trial_reset(struct breaker *b)
{
	b->ho_out = 0;
	b->ho_calls = b->ho_failures = b->ho_slow = b->ho_consec = 0;
}

/*
 * Every state change goes through here: the old generation's permits are
 * dropped, the generation moves, the state's own bookkeeping starts, and
 * the owner hears of it. A self-transition is not a change.
 */
static void
transition(struct breaker *b, enum breaker_state to, const char *reason)
{
	struct breakers		*reg = b->reg;
	enum breaker_state	 from = b->state;
	uint64_t		 now = clock_now_ms();

	if (from == to)
		return;
	drop_permits(b);
	reg->by_state[from]--;
	reg->by_state[to]++;
	b->state = to;
	b->generation++;
	b->state_since = now;
	b->transitions[to]++;
	b->from_trial = from == BRK_HALF_OPEN && to == BRK_OPEN;
	if (to == BRK_HALF_OPEN)
		trial_reset(b);
	switch (to) {
	case BRK_OPEN:
		b->open_count++;
		b->opened_at = now;
		b->open_until = now + recovery_ms(b);
		break;
	case BRK_FORCED_OPEN:
		b->opened_at = now;
		break;
	case BRK_HALF_OPEN:
		/* The trial is what counts now; closing empties it again. */
	case BRK_CLOSED:
	case BRK_DISABLED:
	case BRK_METRICS_ONLY:
		window_reset(&b->w);
		break;
	default:
		break;
	}
	state_timer_arm(b);
	b->dirty = 1;
	log_debug("breaker %s: %s -> %s (%s)", b->name, state_names[from],
	    state_names[to], reason);
	if (reg->hooks.on_transition != NULL)
		reg->hooks.on_transition(reg->hooks.arg, b, from, to, reason);
}

/* Closed: open when the window says so. */
static void
closed_check(struct breaker *b)
{
	const struct breaker_config	*c = &b->cfg;
	const struct window		*w = &b->w;
	uint64_t			 min;

	if (c->window == WINDOW_CONSECUTIVE) {
		if (w->consecutive >= (uint64_t)c->failure_threshold)
			transition(b, BRK_OPEN, "failure_threshold");
		return;
	}
	min = (uint64_t)c->minimum_calls;
	if (c->window == WINDOW_COUNT && min > (uint64_t)c->window_size)
		min = (uint64_t)c->window_size;
	if (w->calls == 0 || w->calls < min)
		return;
	/* Compare f/calls >= t/100 without dividing. */
	if ((double)w->failures * 100.0 >=
	    c->failure_rate_threshold * (double)w->calls)
		transition(b, BRK_OPEN, "failure_rate");
	else if ((double)w->slow * 100.0 >=
	    c->slow_call_rate_threshold * (double)w->calls)
		transition(b, BRK_OPEN, "slow_call_rate");
}

/*
 * Half-open: decide as soon as the outcome is certain. Consecutive windows
 * need every trial call to succeed, so one failure opens. Rate windows
 * judge the failure and slow rates over all half_open_max_calls trial
 * calls: once the failures (or slow calls) so far reach the threshold of
 * that total, the remaining calls cannot bring the rate back under it.
 * Otherwise it closes when every trial call has reported.
 */
static void
trial_check(struct breaker *b, const char *fail_reason)
{
	const struct breaker_config	*c = &b->cfg;
	double				 n;

	if (b->state != BRK_HALF_OPEN)
		return;
	n = (double)c->half_open_max_calls;
	if ((double)b->ho_calls > n)
		n = (double)b->ho_calls;
	if (c->window == WINDOW_CONSECUTIVE) {
		if (b->ho_failures > 0) {
			transition(b, BRK_OPEN, fail_reason);
			return;
		}
	} else if ((double)b->ho_failures * 100.0 >=
	    c->failure_rate_threshold * n ||
	    (double)b->ho_slow * 100.0 >= c->slow_call_rate_threshold * n) {
		transition(b, BRK_OPEN, fail_reason);
		return;
	}
	if (b->ho_calls >= (uint64_t)c->half_open_max_calls)
		transition(b, BRK_CLOSED, "half_open_success");
}

static void
trial_outcome(struct breaker *b, int failure, int slow, const char *reason)
{
	b->ho_calls++;
	if (failure) {
		b->ho_failures++;
		b->ho_consec++;
	} else
		b->ho_consec = 0;
	if (slow)
		b->ho_slow++;
	b->dirty = 1;
	trial_check(b, reason);
}

/*
 * A lease ends without an outcome (TTL or its connection closed). In
 * half-open it counts as a failure, so no breaker stays stuck waiting for
 * a client that went away; otherwise it is just released.
 */
static void
lease_end(struct permit *p, const char *reason)
{
	struct breaker	*b = p->b;
	int		 trial = p->trial && b->state == BRK_HALF_OPEN;

	permit_free(p);
	if (trial) {
		b->ho_out--;
		trial_outcome(b, 1, 0, reason);
	}
	lease_timer_arm(b);
}

static void
expire_leases(struct breaker *b, uint64_t now)
{
	struct permit	*p;

	while ((p = b->pfirst) != NULL &&
	    p->issued + (uint64_t)b->cfg.permit_ttl_ms <= now)
		lease_end(p, "permit_expired");
	lease_timer_arm(b);
}

/*
 * Bring b up to date at now: what the timers would have done had they
 * fired already (they fire at the deadline; a request may get here first).
 */
static void
poll_breaker(struct breaker *b, uint64_t now)
{
	expire_leases(b, now);
	if (b->state == BRK_OPEN && now >= b->open_until)
		transition(b, BRK_HALF_OPEN, "recovery_timeout");
	if (b->state == BRK_HALF_OPEN && b->cfg.half_open_max_wait_ms > 0 &&
	    now >= b->state_since + (uint64_t)b->cfg.half_open_max_wait_ms)
		transition(b, BRK_OPEN, "half_open_timeout");
}

static void
state_timer_cb(void *arg)
{
	struct breaker	*b = arg;

	poll_breaker(b, clock_now_ms());
	flush(b);
}

static void
lease_timer_cb(void *arg)
{
	struct breaker	*b = arg;

	b->lease_due = 0;
	expire_leases(b, clock_now_ms());
	flush(b);
}

/* ---- the registry ------------------------------------------------------ */

static void	sweep_timer_arm(struct breakers *);

static void
sweep_timer_cb(void *arg)
{
	struct breakers	*reg = arg;

	breakers_sweep(reg);
	sweep_timer_arm(reg);
}

static void
sweep_timer_arm(struct breakers *reg)
{
	int64_t	period = reg->defaults.idle_evict_ms;

	if (period <= 0) {
		clock_timer_cancel(reg->sweep_timer);
		return;
	}
	if (period < 1000)
		period = 1000;
	if (period > 60000)
		period = 60000;
	clock_timer_after(reg->sweep_timer, (uint64_t)period);
}

struct breakers *
breakers_new(const struct breaker_hooks *hooks)
{
	struct breakers	*reg;

	if ((reg = calloc(1, sizeof(*reg))) == NULL)
		return (NULL);
	htab_init(&reg->byname);
	htab_init(&reg->permits);
	htab_init(&reg->owners);
	breaker_config_defaults(&reg->defaults);
	reg->max_breakers = BREAKER_MAX_BREAKERS;
	reg->max_permits = BREAKER_MAX_PERMITS;
	if (hooks != NULL)
		reg->hooks = *hooks;
	/*
	 * Permit ids from before a restart must not name a new permit: the
	 * sequence starts somewhere else each time.
	 */
	reg->permit_seq = htab_hash(&reg, sizeof(reg)) >> 16;	/* keyed */
	if ((reg->sweep_timer = clock_timer_new(sweep_timer_cb, reg)) == NULL) {
		free(reg);
		return (NULL);
	}
	sweep_timer_arm(reg);
	return (reg);
}

static void
breaker_free(struct breaker *b)
{
	struct breakers	*reg = b->reg;

	drop_permits(b);
	htab_remove(&reg->byname, &b->node);
	reg->by_state[b->state]--;
	clock_timer_free(b->state_timer);
	clock_timer_free(b->lease_timer);
	window_free(&b->w);
	json_decref(b->last_error);
	free(b->api);
	free(b);
}

void
breakers_free(struct breakers *reg)
{
	struct hnode	*n, *next;
	struct permit	*p;
	size_t		 it;
	size_t		 i;

	if (reg == NULL)
		return;
	for (n = htab_next(&reg->byname, NULL, &it); n != NULL; n = next) {
		next = htab_next(&reg->byname, n, &it);
		breaker_free(HTAB_ENTRY(n, struct breaker, node));
	}
	while ((p = reg->spare) != NULL) {
		reg->spare = p->next;
		free(p);
	}
	for (i = 0; i < reg->nsecs; i++)
		free(reg->secs[i].name);
	free(reg->secs);
	htab_free(&reg->byname);
	htab_free(&reg->permits);
	htab_free(&reg->owners);
	clock_timer_free(reg->sweep_timer);
	free(reg);
}

void
breakers_set_hooks(struct breakers *reg, const struct breaker_hooks *hooks)
{
	if (hooks != NULL)
		reg->hooks = *hooks;
	else
		memset(&reg->hooks, 0, sizeof(reg->hooks));
}

void
breakers_set_limits(struct breakers *reg, size_t max_breakers,
    size_t max_permits)
{
	reg->max_breakers = max_breakers;
	reg->max_permits = max_permits;
}

static const struct file_section *
section_find(const struct breakers *reg, const char *name)
{
	size_t	i;

	for (i = 0; i < reg->nsecs; i++)
		if (strcmp(reg->secs[i].name, name) == 0)
			return (&reg->secs[i]);
	return (NULL);
}

/* defaults, then the [breaker.NAME] section, then breaker.configure. */
static void
effective_config(const struct breakers *reg, const char *name,
    const struct breaker_config *api, uint64_t api_mask,
    struct breaker_config *out, int *file)
{
	const struct file_section	*s;

	*out = reg->defaults;
	if ((s = section_find(reg, name)) != NULL)
		opts_overlay(breaker_opts, out, &s->cfg, s->mask);
	if (file != NULL)
		*file = s != NULL;
	if (api != NULL)
		opts_overlay(breaker_opts, out, api, api_mask);
}

/*
 * Install cfg as b's config. A new window type or size starts an empty
 * window (allocated first, so a failure changes nothing); timers and the
 * trial are re-judged under the new values. The effective config itself is
 * not durable (it is derived again from the config file and the
 * breaker.configure overrides), so only a new window marks b dirty.
 */
static int
apply_config(struct breaker *b, const struct breaker_config *cfg)
{
	struct window	w;

	if (cfg->window != b->cfg.window ||
	    cfg->window_size != b->cfg.window_size) {
		if (window_init(&w, cfg->window, cfg->window_size) == -1) {
			window_free(&w);
			return (-1);
		}
		window_free(&b->w);
		b->w = w;
		b->dirty = 1;
	}
	b->cfg = *cfg;
	if (b->state == BRK_OPEN)
		b->open_until = b->opened_at + recovery_ms(b);
	state_timer_arm(b);
	lease_timer_arm(b);
	poll_breaker(b, clock_now_ms());
	trial_check(b, "half_open_failure");
	return (0);
}

static struct breaker *
lookup(const struct breakers *reg, const char *name)
{
	struct hnode	*n;

	if ((n = htab_find(&reg->byname, name, strlen(name))) == NULL)
		return (NULL);
	return (HTAB_ENTRY(n, struct breaker, node));
}

/* Find name or make it; *rc gets the error code when NULL is returned. */
static struct breaker *
get_or_create(struct breakers *reg, const char *name, int *rc)
{
	struct breaker	*b;
	size_t		 len;
	uint64_t	 now = clock_now_ms();

	if (!breaker_name_valid(name)) {
		*rc = ERM_INVALID_PARAMS;
		return (NULL);
	}
	if ((b = lookup(reg, name)) != NULL)
		return (b);
	if (reg->byname.n >= reg->max_breakers) {
		*rc = ERM_LIMIT_EXCEEDED;
		return (NULL);
	}
	len = strlen(name);
	*rc = ERM_INTERNAL_ERROR;
	if ((b = calloc(1, sizeof(*b) + len + 1)) == NULL)
		return (NULL);
	memcpy(b->name, name, len + 1);
	b->reg = reg;
	b->state = BRK_CLOSED;
	b->state_since = b->last_call = now;
	effective_config(reg, name, NULL, 0, &b->cfg, &b->file);
	if (window_init(&b->w, b->cfg.window, b->cfg.window_size) == -1 ||
	    (b->state_timer = clock_timer_new(state_timer_cb, b)) == NULL ||
	    (b->lease_timer = clock_timer_new(lease_timer_cb, b)) == NULL ||
	    htab_insert(&reg->byname, &b->node, b->name, len) == -1) {
		clock_timer_free(b->state_timer);
		clock_timer_free(b->lease_timer);
		window_free(&b->w);
		free(b);
		return (NULL);
	}
	reg->by_state[BRK_CLOSED]++;
	b->dirty = 1;
	*rc = 0;
	return (b);
}

int
breakers_apply_config(struct breakers *reg,
    const struct breaker_config *defaults, const struct breaker_section *secs,
    size_t nsecs, char *err, size_t errsz)
{
	struct file_section	*ns = NULL;
	struct breaker_config	 c;
	struct breaker		*b;
	struct hnode		*n;
	size_t			 i, j, it;
	int			 rc;

	if (breaker_config_check(defaults, err, errsz) == -1)
		return (-1);
	for (i = 0; i < nsecs; i++) {
		if (!breaker_name_valid(secs[i].name)) {
			snprintf(err, errsz, "bad breaker name '%.64s'",
			    secs[i].name);
			return (-1);
		}
		c = *defaults;
		opts_overlay(breaker_opts, &c, &secs[i].cfg, secs[i].mask);
		if (breaker_config_check(&c, err, errsz) == -1)
			return (-1);
	}
	if (nsecs > 0 && (ns = calloc(nsecs, sizeof(*ns))) == NULL)
		goto oom;
	for (i = 0; i < nsecs; i++) {
		if ((ns[i].name = strdup(secs[i].name)) == NULL) {
			for (j = 0; j < i; j++)
				free(ns[j].name);
			free(ns);
			goto oom;
		}
		ns[i].cfg = secs[i].cfg;
		ns[i].mask = secs[i].mask;
	}
	for (i = 0; i < reg->nsecs; i++)
		free(reg->secs[i].name);
	free(reg->secs);
	reg->secs = ns;
	reg->nsecs = nsecs;
	reg->defaults = *defaults;

	for (n = htab_next(&reg->byname, NULL, &it); n != NULL;
	    n = htab_next(&reg->byname, n, &it)) {
		b = HTAB_ENTRY(n, struct breaker, node);
		effective_config(reg, b->name, b->api, b->api_mask, &c,
		    &b->file);
		/*
		 * The breaker.configure layer was checked against the old
		 * config; a breaker it no longer fits keeps its config.
		 */
		if (breaker_config_check(&c, err, errsz) == -1)
			log_warnx("breaker %s: config kept: %s", b->name, err);
		else if (apply_config(b, &c) == -1)
			log_warnx("breaker %s: config kept: out of memory",
			    b->name);
	}
	/*
	 * Created after the walk: inserting could rehash under it. Past
	 * max_breakers a section's breaker is created on first use instead,
	 * like any other.
	 */
	for (i = 0; i < nsecs; i++)
		if (lookup(reg, secs[i].name) == NULL)
			(void)get_or_create(reg, secs[i].name, &rc);
	for (n = htab_next(&reg->byname, NULL, &it); n != NULL;
	    n = htab_next(&reg->byname, n, &it))
		flush(HTAB_ENTRY(n, struct breaker, node));
	sweep_timer_arm(reg);
	return (0);
oom:
	snprintf(err, errsz, "out of memory");
	return (-1);
}

/* ---- the operations ---------------------------------------------------- */

/* How long a refused acquire should wait; see breaker.h. */
static int64_t
refusal_retry_after(const struct breaker *b, uint64_t now)
{
	uint64_t	when, w;

	switch (b->state) {
	case BRK_OPEN:
		return (b->open_until > now ? (int64_t)(b->open_until - now) :
		    0);
	case BRK_FORCED_OPEN:
		return (b->cfg.recovery_timeout_ms);
	case BRK_HALF_OPEN:
		when = b->pfirst != NULL ?
		    b->pfirst->issued + (uint64_t)b->cfg.permit_ttl_ms :
		    now + (uint64_t)b->cfg.permit_ttl_ms;
		if (b->cfg.half_open_max_wait_ms > 0) {
			w = b->state_since +
			    (uint64_t)b->cfg.half_open_max_wait_ms;
			if (w < when)
				when = w;
		}
		return (when > now ? (int64_t)(when - now) : 0);
	default:
		return (-1);
	}
}

/* Would an acquire now be refused? (half-open: every trial slot taken) */
static int
refuses(const struct breaker *b)
{
	switch (b->state) {
	case BRK_OPEN:
	case BRK_FORCED_OPEN:
		return (1);
	case BRK_HALF_OPEN:
		return ((uint64_t)b->ho_out + b->ho_calls >=
		    (uint64_t)b->cfg.half_open_max_calls);
	default:
		return (0);
	}
}

int
breaker_acquire(struct breakers *reg, const char *name, uint64_t owner,
    struct breaker_permit_info *out)
{
	return (breaker_acquire_from(reg, name, owner, 0, out));
}

int
breaker_acquire_from(struct breakers *reg, const char *name, uint64_t owner,
    uint64_t from, struct breaker_permit_info *out)
{
	struct breaker	*b;
	uint64_t	 now = clock_now_ms();
	int		 rc;

	if (from < now)
		from = now;

	memset(out, 0, sizeof(*out));
	out->retry_after_ms = -1;
	if ((b = get_or_create(reg, name, &rc)) == NULL) {
		if (rc == ERM_LIMIT_EXCEEDED)
			out->limit = "max_breakers";
		return (rc);
	}
	poll_breaker(b, now);
	b->last_call = now;
	if (refuses(b)) {
		b->not_permitted++;
		out->state = b->state;
		out->retry_after_ms = refusal_retry_after(b, now);
		flush(b);
		return (ERM_BREAKER_OPEN);
	}
	switch (b->state) {
	case BRK_DISABLED:
		/* Disabled records nothing, so its permits need no lease. */
		permit_id(reg, b, out->permit);
		rc = 0;
		break;
	case BRK_HALF_OPEN:
		if ((rc = permit_new(b, owner, 1, from, out->permit)) == 0)
			b->ho_out++;
		break;
	default:
		rc = permit_new(b, owner, 0, from, out->permit);
		break;
	}
	out->state = b->state;
	out->allowed = rc == 0;
	if (rc == ERM_LIMIT_EXCEEDED)
		out->limit = "max_permits";
	flush(b);
	return (rc);
}

int
breaker_record(struct breakers *reg, const char *name, const char *permit,
    const struct breaker_call *call, struct breaker_record_result *res)
{
	struct breaker		*b;
	struct hnode		*n;
	struct permit		*p = NULL;
	enum breaker_outcome	 outcome = call->outcome;
	uint64_t		 now = clock_now_ms(), gen;
	int			 rc, trial, failure = 0, slow = 0;
	int			 windowed = 0;

	memset(res, 0, sizeof(*res));
	/* An outstanding permit names its breaker: no lookup by name. */
	if (permit != NULL &&
	    (n = htab_find(&reg->permits, permit, strlen(permit))) != NULL) {
		p = HTAB_ENTRY(n, struct permit, node);
		if (strcmp(p->b->name, name) != 0)
			p = NULL;
	}
	if (p != NULL)
		b = p->b;
	else if ((b = get_or_create(reg, name, &rc)) == NULL)
		return (rc);
	/*
	 * poll_breaker ends the permit if its lease ran out or the state
	 * changes (every permit of the old generation ends): then it is no
	 * outstanding lease any more.
	 */
	gen = b->generation;
	if (p != NULL && p->issued + (uint64_t)b->cfg.permit_ttl_ms <= now)
		p = NULL;
	poll_breaker(b, now);
	if (b->generation != gen)
		p = NULL;
	b->last_call = now;

	if (permit != NULL) {
		if (p == NULL)
			goto out;		/* not an outstanding lease */
		trial = p->trial;
		permit_free(p);
		lease_timer_arm(b);
		if (trial)
			b->ho_out--;
	} else {
		switch (b->state) {
		case BRK_CLOSED:
		case BRK_METRICS_ONLY:
			trial = 0;
			break;
		case BRK_HALF_OPEN:
			/* A free-standing outcome takes a free trial slot. */
			if (refuses(b))
				goto out;
			trial = 1;
			break;
		default:
			goto out;
		}
	}
	if (outcome == OUTCOME_FAILURE && call->category != CAT_NONE &&
	    (b->cfg.ignore & CATSET_BIT(call->category)))
		outcome = OUTCOME_IGNORED;
	res->recorded = 1;
	if (outcome == OUTCOME_IGNORED)
		goto out;		/* the permit went back above */

	failure = outcome == OUTCOME_FAILURE;
	slow = b->cfg.slow_call_ms > 0 &&
	    call->duration_ms > b->cfg.slow_call_ms;
	if (failure && call->error != NULL) {
		json_decref(b->last_error);
		b->last_error = json_deep_copy(call->error);
	}
	if (trial)
		trial_outcome(b, failure, slow, "half_open_failure");
	else {
		window_add(&b->w, failure, slow, now);
		windowed = 1;
		if (failure && call->error != NULL)
			b->dirty = 1;		/* last_error: a snapshot */
		if (b->state == BRK_CLOSED)
			closed_check(b);
	}
out:
	res->state = b->state;
	/*
	 * Every outcome the window took is logged, also when a snapshot is
	 * due anyway (a new breaker, a last_error, a state change): the
	 * snapshot, taken later, includes the record's seq, so a replay
	 * never counts it twice, and until then the log is what survives a
	 * kill -9.
	 */
	if (windowed && reg->hooks.on_outcome != NULL) {
		b->journaled = 1;
		reg->hooks.on_outcome(reg->hooks.arg, b, failure, slow, now);
	} else if (windowed)
		b->dirty = 1;
	flush(b);
	return (0);
}

int
breaker_replay_outcome(struct breakers *reg, const char *name, int failure,
    int slow, uint64_t at, int create)
{
	struct breaker	*b = lookup(reg, name);
	int		 rc;

	if (b == NULL && create) {
		if ((b = get_or_create(reg, name, &rc)) == NULL)
			return (-1);
		b->state_since = b->last_call = at;
	} else if (b != NULL && at > b->last_call)
		b->last_call = at;	/* a made one's later records */
	if (b == NULL || (b->state != BRK_CLOSED &&
	    b->state != BRK_METRICS_ONLY))
		return (-1);
	if (b->w.type == WINDOW_TIME &&
	    at / 1000 + (uint64_t)b->w.size <= b->w.head)
		return (-1);
	window_add(&b->w, failure, slow, at);
	return (0);
}

void
breaker_replay_evicted(struct breakers *reg, const char *name)
{
	struct breaker	*b;
	int		 section, rc;

	if ((b = lookup(reg, name)) == NULL)
		return;
	section = b->file;
	breaker_free(b);
	/* A section names it now (added since): it is there from the
	 * start, as a new one. */
	if (section)
		(void)get_or_create(reg, name, &rc);
}

int
breaker_force(struct breakers *reg, const char *name, enum breaker_state to,
    struct breaker **out)
{
	struct breaker	*b;
	int		 rc;

	if (out != NULL)
		*out = NULL;
	if (to != BRK_FORCED_OPEN && to != BRK_DISABLED &&
	    to != BRK_METRICS_ONLY && to != BRK_CLOSED && to != BRK_HALF_OPEN)
		return (ERM_INVALID_PARAMS);
	if ((b = get_or_create(reg, name, &rc)) == NULL)
		return (rc);
	if (out != NULL)
		*out = b;
	poll_breaker(b, clock_now_ms());
	if (to == BRK_HALF_OPEN &&
	    (b->state == BRK_CLOSED || b->state == BRK_METRICS_ONLY)) {
		flush(b);
		return (ERM_CONFLICT);
	}
	transition(b, to, "forced");
	flush(b);
	return (0);
}

int
breaker_reset(struct breakers *reg, const char *name, struct breaker **out)
{
	struct breaker	*b;

	if (out != NULL)
		*out = NULL;
	if (!breaker_name_valid(name))
		return (ERM_INVALID_PARAMS);
	if ((b = lookup(reg, name)) == NULL)
		return (ERM_NOT_FOUND);
	if (out != NULL)
		*out = b;
	if (b->state != BRK_CLOSED)
		transition(b, BRK_CLOSED, "reset");
	else
		window_reset(&b->w);
	b->open_count = 0;
	b->dirty = 1;
	flush(b);
	return (0);
}

int
breaker_configure(struct breakers *reg, const char *name,
    const json_t *config, struct param_err *e, struct breaker **out)
{
	struct breaker		*b;
	struct breaker_config	 given, eff, *api;
	uint64_t		 set, unset, mask;
	char			 err[160];
	int			 rc;

	if (out != NULL)
		*out = NULL;
	if (!breaker_name_valid(name)) {
		param_fail(e, "name", "must be 1-%d bytes of A-Z a-z 0-9 . _ "
		    ": / -", BREAKER_NAME_MAX);
		return (ERM_INVALID_PARAMS);
	}
	/* Only the keys in the mask matter; the rest is a placeholder. */
	if ((b = lookup(reg, name)) != NULL)
		given = b->api != NULL ? *b->api : b->cfg;
	else
		breaker_config_defaults(&given);
	if (opts_from_json(breaker_opts, &given, config, "config", &set,
	    &unset, e) == -1)
		return (ERM_INVALID_PARAMS);
	if ((b = get_or_create(reg, name, &rc)) == NULL) {
		param_fail(e, "name", "cannot create breaker");
		return (rc);
	}
	if (out != NULL)
		*out = b;
	mask = ((b->api != NULL ? b->api_mask : 0) | set) & ~unset;
	effective_config(reg, name, &given, mask, &eff, NULL);
	if (breaker_config_check(&eff, err, sizeof(err)) == -1) {
		param_fail(e, "config", "%s", err);
		flush(b);
		return (ERM_INVALID_PARAMS);
	}
	if (b->api == NULL && (b->api = malloc(sizeof(*b->api))) == NULL) {
		flush(b);
		return (ERM_INTERNAL_ERROR);
	}
	api = b->api;
	if (apply_config(b, &eff) == -1) {
		flush(b);
		return (ERM_INTERNAL_ERROR);
	}
	*api = given;
	b->api_mask = mask;
	b->dirty = 1;
	flush(b);
	return (0);
}

void
breaker_release_owner(struct breakers *reg, uint64_t owner)
{
	struct hnode	*n;
	struct owner	*o;
	struct breaker	*b;

	/*
	 * Ending one lease can re-open a breaker, which frees all its
	 * permits, possibly more of this owner's and the owner itself: look
	 * the owner up again each time round.
	 */
	while ((n = htab_find(&reg->owners, &owner, sizeof(owner))) != NULL) {
		o = HTAB_ENTRY(n, struct owner, node);
		b = o->first->b;
		lease_end(o->first, "owner_closed");
		flush(b);
	}
}

int
breaker_journaled(const struct breaker *b)
{
	return (b->journaled);
}

void
breaker_set_journaled(struct breaker *b, int journaled)
{
	b->journaled = journaled;
}

struct breaker *
breaker_find(struct breakers *reg, const char *name)
{
	struct breaker	*b;

	if (!breaker_name_valid(name) || (b = lookup(reg, name)) == NULL)
		return (NULL);
	poll_breaker(b, clock_now_ms());
	flush(b);
	return (b);
}

/* ---- reading ----------------------------------------------------------- */

static json_t *
rate_json(uint64_t part, uint64_t calls, int judged)
{
	if (!judged || calls == 0)
		return (json_integer(-1));
	return (opt_number_json((double)part * 100.0 / (double)calls));
}

static json_t *
window_json(const struct breaker *b, uint64_t now)
{
	uint64_t	calls, failures, slow, consec, min;
	int		judged;

	if (b->state == BRK_HALF_OPEN || (b->state == BRK_OPEN &&
	    b->from_trial)) {
		calls = b->ho_calls;
		failures = b->ho_failures;
		slow = b->ho_slow;
		consec = b->ho_consec;
		judged = 1;
	} else {
		window_sums(&b->w, now, &calls, &failures, &slow);
		consec = b->w.consecutive;
		min = (uint64_t)b->cfg.minimum_calls;
		if (b->cfg.window == WINDOW_COUNT &&
		    min > (uint64_t)b->cfg.window_size)
			min = (uint64_t)b->cfg.window_size;
		judged = b->cfg.window == WINDOW_CONSECUTIVE || calls >= min;
	}
	return (json_pack("{s:I, s:I, s:I, s:o, s:o, s:I}",
	    "calls", (json_int_t)calls,
	    "failures", (json_int_t)failures,
	    "slow_calls", (json_int_t)slow,
	    "failure_rate", rate_json(failures, calls, judged),
	    "slow_call_rate", rate_json(slow, calls, judged),
	    "consecutive_failures", (json_int_t)consec));
}

json_t *
breaker_to_json(const struct breaker *b)
{
	json_t		*o;
	uint64_t	 now = clock_now_ms();
	int		 rc = 0;

	o = json_pack("{s:s, s:s, s:o, s:o, s:I, s:I, s:I}",
	    "name", b->name,
	    "state", state_names[b->state],
	    "config", breaker_config_to_json(&b->cfg),
	    "window", window_json(b, now),
	    "not_permitted", (json_int_t)b->not_permitted,
	    "open_count", (json_int_t)b->open_count,
	    "generation", (json_int_t)b->generation);
	if (o == NULL)
		return (NULL);
	if (b->opened_at != 0 && (b->state == BRK_OPEN ||
	    b->state == BRK_HALF_OPEN || b->state == BRK_FORCED_OPEN))
		rc |= json_object_set_new(o, "opened_at",
		    json_integer((json_int_t)b->opened_at));
	if (refuses(b))
		rc |= json_object_set_new(o, "retry_after_ms",
		    json_integer(refusal_retry_after(b, now)));
	if (b->last_error != NULL)
		rc |= json_object_set(o, "last_error", b->last_error);
	if (rc != 0) {
		json_decref(o);
		return (NULL);
	}
	return (o);
}

static int
cmp_breaker(const void *a, const void *b)
{
	const struct breaker	*x = *(const struct breaker *const *)a;
	const struct breaker	*y = *(const struct breaker *const *)b;

	return (strcmp(x->name, y->name));
}

json_t *
breakers_list_json(struct breakers *reg, int state)
{
	struct breaker	**v;
	struct hnode	 *n;
	json_t		 *a, *o;
	size_t		  it, i, k = 0;

	/* Bring every breaker up to date first (hooks may run). */
	for (n = htab_next(&reg->byname, NULL, &it); n != NULL;
	    n = htab_next(&reg->byname, n, &it)) {
		poll_breaker(HTAB_ENTRY(n, struct breaker, node),
		    clock_now_ms());
		flush(HTAB_ENTRY(n, struct breaker, node));
	}
	if ((v = calloc(reg->byname.n + 1, sizeof(*v))) == NULL)
		return (NULL);
	for (n = htab_next(&reg->byname, NULL, &it); n != NULL;
	    n = htab_next(&reg->byname, n, &it))
		if (state < 0 || HTAB_ENTRY(n, struct breaker, node)->state ==
		    (enum breaker_state)state)
			v[k++] = HTAB_ENTRY(n, struct breaker, node);
	qsort(v, k, sizeof(*v), cmp_breaker);
	if ((a = json_array()) == NULL)
		goto fail;
	for (i = 0; i < k; i++)
		if ((o = breaker_to_json(v[i])) == NULL ||
		    json_array_append_new(a, o) == -1)
			goto fail;
	free(v);
	return (json_pack("{s:o}", "breakers", a));
fail:
	json_decref(a);
	free(v);
	return (NULL);
}

size_t
breakers_count(const struct breakers *reg, size_t by_state[BRK_NSTATES])
{
	if (by_state != NULL)
		memcpy(by_state, reg->by_state, sizeof(reg->by_state));
	return (reg->byname.n);
}

const struct htab *
breakers_by_name(const struct breakers *reg)
{
	return (&reg->byname);
}

size_t
breakers_permits(const struct breakers *reg)
{
	return (reg->npermits);
}

void
breakers_foreach(struct breakers *reg,
    void (*fn)(void *arg, const struct breaker *b), void *arg)
{
	struct hnode	*n;
	size_t		 it;

	for (n = htab_next(&reg->byname, NULL, &it); n != NULL;
	    n = htab_next(&reg->byname, n, &it))
		fn(arg, HTAB_ENTRY(n, struct breaker, node));
}

void
breakers_sweep(struct breakers *reg)
{
	struct hnode	*n, *next;
	struct breaker	*b;
	uint64_t	 now = clock_now_ms();
	size_t		 it;

	for (n = htab_next(&reg->byname, NULL, &it); n != NULL; n = next) {
		next = htab_next(&reg->byname, n, &it);
		b = HTAB_ENTRY(n, struct breaker, node);
		/* A last call after now: a replayed one, on a clock set
		 * back. Idle it is not. */
		if (is_configured(b) || b->state != BRK_CLOSED ||
		    b->npermits > 0 || b->cfg.idle_evict_ms <= 0 ||
		    b->last_call > now ||
		    now - b->last_call < (uint64_t)b->cfg.idle_evict_ms)
			continue;
		if (reg->hooks.on_evict != NULL)
			reg->hooks.on_evict(reg->hooks.arg, b);
		breaker_free(b);
	}
}

const char *
breaker_name(const struct breaker *b)
{
	return (b->name);
}

enum breaker_state
breaker_state(const struct breaker *b)
{
	return (b->state);
}

uint64_t
breaker_not_permitted(const struct breaker *b)
{
	return (b->not_permitted);
}

uint64_t
breaker_transitions(const struct breaker *b, enum breaker_state to)
{
	return (to >= 0 && to < BRK_NSTATES ? b->transitions[to] : 0);
}

size_t
breaker_permits(const struct breaker *b)
{
	return (b->npermits);
}

const struct breaker_config *
breaker_config(const struct breaker *b)
{
	return (&b->cfg);
}

/* ---- durability -------------------------------------------------------- */

#define SNAPSHOT_VERSION	1

static json_t *
window_snapshot(const struct window *w, uint64_t now)
{
	json_t		*o, *a;
	char		*ring;
	size_t		 i, k;
	uint64_t	 s, sec;
	struct tbucket	 t;

	o = json_pack("{s:s, s:I, s:I, s:I, s:I, s:I}",
	    "type", window_words[w->type],
	    "size", (json_int_t)w->size,
	    "calls", (json_int_t)w->calls,
	    "failures", (json_int_t)w->failures,
	    "slow_calls", (json_int_t)w->slow,
	    "consecutive_failures", (json_int_t)w->consecutive);
	if (o == NULL)
		return (NULL);
	if (w->type == WINDOW_COUNT) {
		/* Oldest first, a digit a call: bit 0 failure, bit 1 slow. */
		if ((ring = malloc(w->filled + 1)) == NULL)
			goto fail;
		for (i = 0; i < w->filled; i++) {
			k = (w->pos + (size_t)w->size - w->filled + i) %
			    (size_t)w->size;
			ring[i] = (char)('0' + w->ring[k]);
		}
		ring[w->filled] = '\0';
		if (json_object_set_new(o, "ring", json_string(ring)) == -1) {
			free(ring);
			goto fail;
		}
		free(ring);
	} else if (w->type == WINDOW_TIME) {
		/* [second, calls, failures, slow] of each live bucket. */
		if ((a = json_array()) == NULL ||
		    json_object_set_new(o, "buckets", a) == -1)
			goto fail;
		s = now / 1000;
		for (sec = s + 1 > (uint64_t)w->size ?
		    s + 1 - (uint64_t)w->size : 0; sec <= s; sec++) {
			if (sec > w->head ||
			    w->head - sec >= (uint64_t)w->size)
				continue;
			t = w->tb[sec % (uint64_t)w->size];
			if (t.calls == 0)
				continue;
			if (json_array_append_new(a, json_pack("[I, i, i, i]",
			    (json_int_t)sec, (int)t.calls, (int)t.failures,
			    (int)t.slow)) == -1)
				goto fail;
		}
	}
	return (o);
fail:
	json_decref(o);
	return (NULL);
}

/* New reference: only the keys breaker.configure set. */
static json_t *
api_config_json(const struct breaker *b)
{
	json_t	*all, *o;
	int	 i, rc = 0;

	if ((all = breaker_config_to_json(b->api)) == NULL)
		return (NULL);
	if ((o = json_object()) == NULL) {
		json_decref(all);
		return (NULL);
	}
	for (i = 0; breaker_opts[i].name != NULL; i++)
		if (b->api_mask & OPT_BIT(i))
			rc |= json_object_set(o, breaker_opts[i].name,
			    json_object_get(all, breaker_opts[i].name));
	json_decref(all);
	if (rc != 0) {
		json_decref(o);
		return (NULL);
	}
	return (o);
}

json_t *
breaker_snapshot(const struct breaker *b)
{
	json_t	*o;
	int	 rc = 0;

	o = json_pack("{s:i, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:o, "
	    "s:{s:I, s:I, s:I, s:I, s:I, s:b}}",
	    "v", SNAPSHOT_VERSION,
	    "name", b->name,
	    "state", state_names[b->state],
	    "generation", (json_int_t)b->generation,
	    "open_count", (json_int_t)b->open_count,
	    "opened_at", (json_int_t)b->opened_at,
	    "state_since", (json_int_t)b->state_since,
	    "not_permitted", (json_int_t)b->not_permitted,
	    "window", window_snapshot(&b->w, clock_now_ms()),
	    "half_open",
	    "outstanding", (json_int_t)b->ho_out,
	    "calls", (json_int_t)b->ho_calls,
	    "failures", (json_int_t)b->ho_failures,
	    "slow_calls", (json_int_t)b->ho_slow,
	    "consecutive_failures", (json_int_t)b->ho_consec,
	    "shown", b->from_trial);
	if (o == NULL)
		return (NULL);
	if (b->api != NULL && b->api_mask != 0)
		rc |= json_object_set_new(o, "config", api_config_json(b));
	if (b->last_error != NULL)
		rc |= json_object_set(o, "last_error", b->last_error);
	if (rc != 0) {
		json_decref(o);
		return (NULL);
	}
	return (o);
}

/* A non-negative integer member, or -1. */
static int
snap_uint(const json_t *o, const char *key, uint64_t *out, char *err,
    size_t errsz)
{
	json_t	*v = json_object_get(o, key);

	if (!json_is_integer(v) || json_integer_value(v) < 0) {
		snprintf(err, errsz, "snapshot: '%s' missing or not a "
		    "non-negative integer", key);
		return (-1);
	}
	*out = (uint64_t)json_integer_value(v);
	return (0);
}

/*
 * Load the window counters of a snapshot into w, when the snapshot's type
 * and size are w's; otherwise w stays empty (config changed meanwhile).
 */
static int
window_restore(struct window *w, const json_t *o, uint64_t now, char *err,
    size_t errsz)
{
	const char	*type, *ring;
	json_t		*a, *x;
	json_int_t	 size, sec, c, f, s;
	uint64_t	 calls, failures, slow, consec, nows = now / 1000;
	size_t		 i, len, skip;
	struct tbucket	*t;

	if (o == NULL)
		return (0);
	if (json_unpack((json_t *)o, "{s:s, s:I}", "type", &type, "size",
	    &size) == -1) {
		snprintf(err, errsz, "snapshot: bad window");
		return (-1);
	}
	if (strcmp(type, window_words[w->type]) != 0 || size != w->size)
		return (0);
	if (snap_uint(o, "calls", &calls, err, errsz) == -1 ||
	    snap_uint(o, "failures", &failures, err, errsz) == -1 ||
	    snap_uint(o, "slow_calls", &slow, err, errsz) == -1 ||
	    snap_uint(o, "consecutive_failures", &consec, err, errsz) == -1)
		return (-1);
	window_reset(w);
	w->consecutive = consec;
	switch (w->type) {
	case WINDOW_CONSECUTIVE:
		w->calls = calls;
		w->failures = failures;
		w->slow = slow;
		break;
	case WINDOW_COUNT:
		if ((ring = json_string_value(json_object_get(o,
		    "ring"))) == NULL) {
			snprintf(err, errsz, "snapshot: window ring missing");
			return (-1);
		}
		len = strlen(ring);
		skip = len > (size_t)w->size ? len - (size_t)w->size : 0;
		for (i = skip; i < len; i++) {
			if (ring[i] < '0' || ring[i] > '3') {
				snprintf(err, errsz, "snapshot: bad window "
				    "ring");
				window_reset(w);
				return (-1);
			}
			window_add(w, (ring[i] - '0') & SLOT_FAILURE,
			    ((ring[i] - '0') & SLOT_SLOW) != 0, now);
		}
		w->consecutive = consec;
		break;
	case WINDOW_TIME:
		a = json_object_get(o, "buckets");
		if (!json_is_array(a)) {
			snprintf(err, errsz, "snapshot: window buckets "
			    "missing");
			return (-1);
		}
		w->head = nows;
		json_array_foreach(a, i, x) {
			if (json_unpack(x, "[I, I, I, I]", &sec, &c, &f,
			    &s) == -1 || sec < 0 || c < 0 || f < 0 || s < 0 ||
			    c > UINT32_MAX || f > c || s > c) {
				snprintf(err, errsz, "snapshot: bad window "
				    "bucket");
				window_reset(w);
				return (-1);
			}
			if ((uint64_t)sec > nows ||
			    nows - (uint64_t)sec >= (uint64_t)w->size)
				continue;	/* fell out while down */
			t = &w->tb[(uint64_t)sec % (uint64_t)w->size];
			t->calls += (uint32_t)c;
			t->failures += (uint32_t)f;
			t->slow += (uint32_t)s;
			w->calls += (uint64_t)c;
			w->failures += (uint64_t)f;
			w->slow += (uint64_t)s;
		}
		break;
	}
	return (0);
}

int
breaker_restore(struct breakers *reg, const json_t *snap, char *err,
    size_t errsz)
{
	struct breaker		*b;
	struct breaker_config	 given, eff;
	struct param_err	 pe;
	const char		*name, *sname;
	json_t			*cfg, *ho, *le;
	uint64_t		 gen, oc, oa, since, np, out, hc, hf, hs, hcs;
	uint64_t		 now = clock_now_ms(), mask = 0;
	int			 state, rc, v;

	if (json_unpack((json_t *)snap, "{s:i, s:s, s:s}", "v", &v, "name",
	    &name, "state", &sname) == -1 || v != SNAPSHOT_VERSION) {
		snprintf(err, errsz, "snapshot: not a version %d breaker "
		    "snapshot", SNAPSHOT_VERSION);
		return (-1);
	}
	if ((state = breaker_state_from_name(sname)) == -1) {
		snprintf(err, errsz, "snapshot: unknown state '%.32s'", sname);
		return (-1);
	}
	if (snap_uint(snap, "generation", &gen, err, errsz) == -1 ||
	    snap_uint(snap, "open_count", &oc, err, errsz) == -1 ||
	    snap_uint(snap, "opened_at", &oa, err, errsz) == -1 ||
	    snap_uint(snap, "state_since", &since, err, errsz) == -1 ||
	    snap_uint(snap, "not_permitted", &np, err, errsz) == -1)
		return (-1);
	ho = json_object_get(snap, "half_open");
	if (!json_is_object(ho) ||
	    snap_uint(ho, "outstanding", &out, err, errsz) == -1 ||
	    snap_uint(ho, "calls", &hc, err, errsz) == -1 ||
	    snap_uint(ho, "failures", &hf, err, errsz) == -1 ||
	    snap_uint(ho, "slow_calls", &hs, err, errsz) == -1 ||
	    snap_uint(ho, "consecutive_failures", &hcs, err, errsz) == -1) {
		snprintf(err, errsz, "snapshot: bad half_open");
		return (-1);
	}
	breaker_config_defaults(&given);
	if ((cfg = json_object_get(snap, "config")) != NULL &&
	    opts_from_json(breaker_opts, &given, cfg, "config", &mask, NULL,
	    &pe) == -1) {
		snprintf(err, errsz, "snapshot: %s: %s", pe.field, pe.reason);
		return (-1);
	}
	if ((b = get_or_create(reg, name, &rc)) == NULL) {
		snprintf(err, errsz, "snapshot: cannot create breaker "
		    "'%.64s' (%s)", name, rc == ERM_LIMIT_EXCEEDED ?
		    "max_breakers reached" : rc == ERM_INVALID_PARAMS ?
		    "bad name" : "out of memory");
		return (-1);
	}
	effective_config(reg, name, &given, mask, &eff, &b->file);
	if (breaker_config_check(&eff, err, errsz) == -1)
		return (-1);
	if (mask != 0) {
		if (b->api == NULL &&
		    (b->api = malloc(sizeof(*b->api))) == NULL) {
			snprintf(err, errsz, "out of memory");
			return (-1);
		}
		*b->api = given;
	}
	b->api_mask = mask;
	if (apply_config(b, &eff) == -1) {
		snprintf(err, errsz, "out of memory");
		return (-1);
	}

	/* Put the breaker back exactly as it was, then let time catch up. */
	drop_permits(b);
	reg->by_state[b->state]--;
	reg->by_state[state]++;
	b->state = (enum breaker_state)state;
	b->generation = gen;
	b->open_count = oc;
	b->opened_at = oa;
	b->state_since = since;
	b->not_permitted = np;
	b->last_call = now;
	if (window_restore(&b->w, json_object_get(snap, "window"), now, err,
	    errsz) == -1)
		return (-1);
	trial_reset(b);
	b->ho_calls = hc;
	b->ho_failures = hf;
	b->ho_slow = hs;
	b->ho_consec = hcs;
	b->from_trial = b->state == BRK_OPEN &&
	    json_is_true(json_object_get(ho, "shown"));
	if (b->state == BRK_OPEN)
		b->open_until = b->opened_at + recovery_ms(b);
	json_decref(b->last_error);
	b->last_error = NULL;
	if ((le = json_object_get(snap, "last_error")) != NULL)
		b->last_error = json_deep_copy(le);
	state_timer_arm(b);
	b->dirty = 0;

	/* Leases out at the stop ended with their connections. */
	while (b->state == BRK_HALF_OPEN && out-- > 0)
		trial_outcome(b, 1, 0, "owner_closed");
	poll_breaker(b, now);
	flush(b);
	return (0);
}
