/*
 * The daemon's one clock: every timer, window, lease and backoff reads time
 * and schedules work through here, so that `ermd --manual-clock` (and unit
 * tests) can move time deterministically with clock_advance().
 */
#ifndef CLOCK_H
#define CLOCK_H

#include <stdint.h>

struct event_base;
struct clock_timer;

typedef void	(*clock_cb)(void *arg);

/*
 * Start the clock. With manual set, time stands still at the wall-clock time
 * of this call until clock_advance() moves it; base may be NULL then (unit
 * tests). Without manual, timers fire from base.
 */
void		 clock_init(struct event_base *base, int manual);
void		 clock_shutdown(void);
int		 clock_is_manual(void);

/*
 * Unix epoch milliseconds. In real mode it is derived from CLOCK_MONOTONIC
 * anchored to the wall clock at start, so it never goes backwards when the
 * wall clock is stepped. Any thread may call it; everything else here is for
 * the loop's thread only.
 */
uint64_t	 clock_now_ms(void);

/*
 * Manual mode only: move time forward by ms, firing every timer that became
 * due, in deadline order, each seeing clock_now_ms() equal to its deadline.
 * Timers armed by callbacks for a time inside the window fire too.
 */
void		 clock_advance(uint64_t ms);

/* A one-shot timer; the caller owns it and frees it with clock_timer_free. */
struct clock_timer *clock_timer_new(clock_cb cb, void *arg);
void		 clock_timer_free(struct clock_timer *t);
/* (Re)arm to fire at the absolute time when_ms (past times fire soon). */
void		 clock_timer_at(struct clock_timer *t, uint64_t when_ms);
void		 clock_timer_after(struct clock_timer *t, uint64_t ms);
void		 clock_timer_cancel(struct clock_timer *t);
int		 clock_timer_pending(const struct clock_timer *t);

#endif
