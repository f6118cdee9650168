/* The daemon clock and its timer heap; see clock.h. */

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "clock.h"
#include "log.h"

struct clock_timer {
	uint64_t	 when;
	uint64_t	 seq;		/* ties fire in arming order */
	size_t		 slot;		/* index in the heap, or NOT_ARMED */
	clock_cb	 cb;
	void		*arg;
};

#define NOT_ARMED	((size_t)-1)

static struct {
	int			  manual;
	/*
	 * Manual mode: moved by the loop, read by every thread (store jobs
	 * stamp rows), hence atomic. Relaxed is enough: a reader needs a
	 * time, not an order with anything else the loop wrote.
	 */
	_Atomic uint64_t	  now;
	uint64_t		  wall0, mono0;	/* real mode anchor */
	struct event_base	 *base;
	struct event		 *ev;		/* fires for the heap's head */
	uint64_t		  ev_when;	/* what ev is armed for, or 0 */
	struct clock_timer	**heap;
	size_t			  n, cap;
	uint64_t		  seq;
} clk;

static uint64_t
ts_ms(clockid_t id)
{
	struct timespec	ts;

	if (clock_gettime(id, &ts) == -1)
		fatal("clock_gettime");
	return ((uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000);
}

uint64_t
clock_now_ms(void)
{
	if (clk.manual)
		return (atomic_load_explicit(&clk.now, memory_order_relaxed));
	return (clk.wall0 + (ts_ms(CLOCK_MONOTONIC) - clk.mono0));
}

int
clock_is_manual(void)
{
	return (clk.manual);
}

static int
before(const struct clock_timer *a, const struct clock_timer *b)
{
	return (a->when < b->when || (a->when == b->when && a->seq < b->seq));
}

static void
heap_place(size_t i, struct clock_timer *t)
{
	clk.heap[i] = t;
	t->slot = i;
}

static void
heap_up(size_t i)
{
	struct clock_timer	*t = clk.heap[i];

	while (i > 0 && before(t, clk.heap[(i - 1) / 2])) {
		heap_place(i, clk.heap[(i - 1) / 2]);
		i = (i - 1) / 2;
	}
	heap_place(i, t);
}

static void
heap_down(size_t i)
{
	struct clock_timer	*t = clk.heap[i];
	size_t			 c;

	for (;;) {
		c = 2 * i + 1;
		if (c >= clk.n)
			break;
		if (c + 1 < clk.n && before(clk.heap[c + 1], clk.heap[c]))
			c++;
		if (!before(clk.heap[c], t))
			break;
		heap_place(i, clk.heap[c]);
		i = c;
	}
	heap_place(i, t);
}

static void
heap_remove(struct clock_timer *t)
{
	size_t			 i = t->slot;
	struct clock_timer	*last;

	t->slot = NOT_ARMED;
	last = clk.heap[--clk.n];
	if (i == clk.n)
		return;
	heap_place(i, last);
	if (i > 0 && before(last, clk.heap[(i - 1) / 2]))
		heap_up(i);
	else
		heap_down(i);
}

/*
 * Real mode: keep the single libevent timer aimed at the earliest deadline.
 * Manual mode: time stands still, but a timer armed for now (or earlier)
 * is due already and fires on the next pass of the loop, as it would in
 * real mode.
 */
static void
rearm(void)
{
	struct timeval	tv;
	uint64_t	now, when, d;

	if (clk.manual) {
		if (clk.ev != NULL && clk.n > 0 && clk.heap[0]->when <= clk.now &&
		    clk.ev_when == 0) {
			clk.ev_when = clk.now;
			event_active(clk.ev, EV_TIMEOUT, 0);
		}
		return;
	}
	if (clk.ev == NULL)
		return;
	if (clk.n == 0) {
		if (clk.ev_when != 0)
			evtimer_del(clk.ev);
		clk.ev_when = 0;
		return;
	}
	when = clk.heap[0]->when;
	if (when == clk.ev_when)
		return;
	now = clock_now_ms();
	d = when > now ? when - now : 0;
	tv.tv_sec = (time_t)(d / 1000);
	tv.tv_usec = (suseconds_t)(d % 1000) * 1000;
	evtimer_add(clk.ev, &tv);
	clk.ev_when = when;
}

/* Fire every timer due at or before limit, each one seeing its deadline. */
static void
fire_due(uint64_t limit)
{
	struct clock_timer	*t;

	while (clk.n > 0 && clk.heap[0]->when <= limit) {
		t = clk.heap[0];
		heap_remove(t);
		if (clk.manual && t->when > clk.now)
			atomic_store_explicit(&clk.now, t->when,
			    memory_order_relaxed);
		t->cb(t->arg);
	}
}

static void
clock_event(int fd, short ev, void *arg)
{
	(void)fd;
	(void)ev;
	(void)arg;
	clk.ev_when = 0;
	fire_due(clock_now_ms());
	rearm();
}

void
clock_init(struct event_base *base, int manual)
{
	clock_shutdown();
	clk.manual = manual;
	clk.wall0 = ts_ms(CLOCK_REALTIME);
	clk.mono0 = ts_ms(CLOCK_MONOTONIC);
	atomic_store_explicit(&clk.now, clk.wall0, memory_order_relaxed);
	clk.base = base;
	if (base != NULL &&
	    (clk.ev = evtimer_new(base, clock_event, NULL)) == NULL)
		fatalx("evtimer_new");
}

void
clock_shutdown(void)
{
	while (clk.n > 0)
		heap_remove(clk.heap[0]);
	free(clk.heap);
	if (clk.ev != NULL)
		event_free(clk.ev);
	memset(&clk, 0, sizeof(clk));
}

void
clock_advance(uint64_t ms)
{
	uint64_t	target;

	if (!clk.manual)
		return;
	target = clock_now_ms() + ms;
	fire_due(target);
	atomic_store_explicit(&clk.now, target, memory_order_relaxed);
}

struct clock_timer *
clock_timer_new(clock_cb cb, void *arg)
{
	struct clock_timer	*t;

	if ((t = calloc(1, sizeof(*t))) == NULL)
		return (NULL);
	t->slot = NOT_ARMED;
	t->cb = cb;
	t->arg = arg;
	return (t);
}

void
clock_timer_free(struct clock_timer *t)
{
	if (t == NULL)
		return;
	clock_timer_cancel(t);
	free(t);
}

void
clock_timer_at(struct clock_timer *t, uint64_t when_ms)
{
	struct clock_timer	**h;

	if (t->slot != NOT_ARMED)
		heap_remove(t);
	if (clk.n == clk.cap) {
		size_t	ncap = clk.cap ? clk.cap * 2 : 64;

		if ((h = reallocarray(clk.heap, ncap, sizeof(*h))) == NULL)
			fatal("%s", __func__);	/* timers cannot be lost */
		clk.heap = h;
		clk.cap = ncap;
	}
	t->when = when_ms;
	t->seq = clk.seq++;
	heap_place(clk.n++, t);
	heap_up(t->slot);
	rearm();
}

void
clock_timer_after(struct clock_timer *t, uint64_t ms)
{
	clock_timer_at(t, clock_now_ms() + ms);
}

void
clock_timer_cancel(struct clock_timer *t)
{
	if (t->slot == NOT_ARMED)
		return;
	heap_remove(t);
	rearm();
}

int
clock_timer_pending(const struct clock_timer *t)
{
	return (t->slot != NOT_ARMED);
}
