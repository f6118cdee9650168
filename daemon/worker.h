/*
 * A small pool of threads for work that must not block the event loop
 * (large file copies, hashing). A task runs on a worker thread; its
 * completion runs back on the loop thread. Tasks must only touch their own
 * argument while on the worker.
 */
#ifndef WORKER_H
#define WORKER_H

struct event_base;

typedef void	(*worker_fn)(void *arg);	/* on a worker thread */
typedef void	(*worker_done_fn)(void *arg);	/* on the loop thread */

int	worker_init(struct event_base *, int nthreads);
/* Wait for queued tasks, deliver their completions, stop the threads. */
void	worker_shutdown(void);
/* Queue a task; -1 when the pool is not running or out of memory. */
int	worker_submit(worker_fn fn, worker_done_fn done, void *arg);
/* Tasks queued or running. */
unsigned worker_pending(void);

#endif
