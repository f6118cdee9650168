/* Work run every so often on the daemon clock; see periodic.h. */

#include <stddef.h>

#include "clock.h"
#include "periodic.h"

static void
tick(void *arg)
{
	struct periodic	*p = arg;

	if (p->every > 0)
		clock_timer_after(p->timer, (uint64_t)p->every);
	if (p->busy) {
		p->due = 1;
		return;
	}
	p->busy = 1;
	p->due = 0;
	p->run(p);
}

int
periodic_start(struct periodic *p, void (*run)(struct periodic *),
    int64_t every_ms)
{
	p->run = run;
	p->busy = p->due = 0;
	p->every = 0;
	if ((p->timer = clock_timer_new(tick, p)) == NULL)
		return (-1);
	periodic_every(p, every_ms);
	return (0);
}

void
periodic_every(struct periodic *p, int64_t every_ms)
{
	if (p->timer == NULL || every_ms == p->every)
		return;
	p->every = every_ms;
	if (every_ms > 0)
		clock_timer_after(p->timer, (uint64_t)every_ms);
	else
		clock_timer_cancel(p->timer);
}

void
periodic_done(struct periodic *p, int more)
{
	p->busy = 0;
	if ((more || p->due) && p->timer != NULL)
		clock_timer_after(p->timer, 0);
}

void
periodic_stop(struct periodic *p)
{
	clock_timer_free(p->timer);
	p->timer = NULL;
	p->every = 0;
}
