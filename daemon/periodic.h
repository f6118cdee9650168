/*
 * Work run every so often on the daemon clock (the retention prunes of
 * errors, workflows and backups): never two runs at once, and, when a run
 * ends saying more is due (it did one batch of many), the next at once.
 *
 * The owner's run function starts a run and ends it, then or later, with
 * periodic_done(). A tick that finds a run still going is kept for its
 * end: the next run starts as soon as it is done (ticks missed meanwhile
 * make one run, not several). Each tick comes an interval after the one
 * before, an early one (more, or a tick kept) included.
 */
#ifndef PERIODIC_H
#define PERIODIC_H

#include <stdint.h>

struct clock_timer;

struct periodic {
	void			(*run)(struct periodic *);
	struct clock_timer	*timer;
	int64_t			 every;		/* ms; 0: stopped */
	int			 busy;		/* a run not done yet */
	int			 due;		/* a tick came meanwhile */
};

/* Ready to run every every_ms (0: not at all); -1 out of memory. */
int	 periodic_start(struct periodic *, void (*run)(struct periodic *),
	    int64_t every_ms);
/* A new interval (a reload): the next run every_ms from now; 0 stops. */
void	 periodic_every(struct periodic *, int64_t every_ms);
/* A run has ended; more: another is due at once. */
void	 periodic_done(struct periodic *, int more);
void	 periodic_stop(struct periodic *);

#endif
