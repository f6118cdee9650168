/* The worker thread pool; see worker.h. */

#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include <event2/event.h>

#include "worker.h"

#define MAX_WORKERS	16

struct task {
	struct task	*next;
	worker_fn	 fn;
	worker_done_fn	 done;
	void		*arg;
};

static struct {
	pthread_mutex_t	 mu;
	pthread_cond_t	 cv;
	struct task	*queue, **qtail;	/* under mu */
	struct task	*done, **dtail;		/* under mu */
	unsigned	 pending;		/* under mu */
	int		 stopping;		/* under mu */
	pthread_t	 threads[MAX_WORKERS];
	int		 nthreads;
	int		 pipe[2];
	struct event	*ev;
} wp = { .pipe = { -1, -1 } };

static void *
worker_main(void *unused)
{
	struct task	*t;
	char		 c = 0;

	(void)unused;
	for (;;) {
		pthread_mutex_lock(&wp.mu);
		while (wp.queue == NULL && !wp.stopping)
			pthread_cond_wait(&wp.cv, &wp.mu);
		if (wp.queue == NULL) {
			pthread_mutex_unlock(&wp.mu);
			return (NULL);
		}
		t = wp.queue;
		if ((wp.queue = t->next) == NULL)
			wp.qtail = &wp.queue;
		pthread_mutex_unlock(&wp.mu);

		t->fn(t->arg);

		pthread_mutex_lock(&wp.mu);
		t->next = NULL;
		*wp.dtail = t;
		wp.dtail = &t->next;
		pthread_mutex_unlock(&wp.mu);
		(void)!write(wp.pipe[1], &c, 1);
	}
}

static void
deliver(void)
{
	struct task	*list, *t;

	pthread_mutex_lock(&wp.mu);
	list = wp.done;
	wp.done = NULL;
	wp.dtail = &wp.done;
	pthread_mutex_unlock(&wp.mu);
	while ((t = list) != NULL) {
		list = t->next;
		pthread_mutex_lock(&wp.mu);
		wp.pending--;
		pthread_mutex_unlock(&wp.mu);
		if (t->done != NULL)
			t->done(t->arg);
		free(t);
	}
}

static void
wakeup(int fd, short ev, void *arg)
{
	char	buf[256];

	(void)ev;
	(void)arg;
	while (read(fd, buf, sizeof(buf)) > 0)
		;
	deliver();
}

int
worker_init(struct event_base *base, int nthreads)
{
	int	i;

	if (nthreads < 1)
		nthreads = 1;
	if (nthreads > MAX_WORKERS)
		nthreads = MAX_WORKERS;
	pthread_mutex_init(&wp.mu, NULL);
	pthread_cond_init(&wp.cv, NULL);
	wp.qtail = &wp.queue;
	wp.dtail = &wp.done;
	wp.stopping = 0;
	if (pipe2(wp.pipe, O_NONBLOCK | O_CLOEXEC) == -1)
		return (-1);
	wp.ev = event_new(base, wp.pipe[0], EV_READ | EV_PERSIST, wakeup,
	    NULL);
	if (wp.ev == NULL || event_add(wp.ev, NULL) == -1)
		return (-1);
	for (i = 0; i < nthreads; i++) {
		if (pthread_create(&wp.threads[i], NULL, worker_main,
		    NULL) != 0)
			break;
		(void)pthread_setname_np(wp.threads[i], "ermd-worker");
		wp.nthreads++;
	}
	return (wp.nthreads > 0 ? 0 : -1);
}

void
worker_shutdown(void)
{
	int	i;

	if (wp.ev == NULL)
		return;
	pthread_mutex_lock(&wp.mu);
	wp.stopping = 1;
	pthread_cond_broadcast(&wp.cv);
	pthread_mutex_unlock(&wp.mu);
	for (i = 0; i < wp.nthreads; i++)
		pthread_join(wp.threads[i], NULL);
	wp.nthreads = 0;
	deliver();
	event_free(wp.ev);
	wp.ev = NULL;
	close(wp.pipe[0]);
	close(wp.pipe[1]);
	wp.pipe[0] = wp.pipe[1] = -1;
	pthread_mutex_destroy(&wp.mu);
	pthread_cond_destroy(&wp.cv);
}

int
worker_submit(worker_fn fn, worker_done_fn done, void *arg)
{
	struct task	*t;

	if (wp.ev == NULL || (t = calloc(1, sizeof(*t))) == NULL)
		return (-1);
	t->fn = fn;
	t->done = done;
	t->arg = arg;
	pthread_mutex_lock(&wp.mu);
	*wp.qtail = t;
	wp.qtail = &t->next;
	wp.pending++;
	pthread_cond_signal(&wp.cv);
	pthread_mutex_unlock(&wp.mu);
	return (0);
}

unsigned
worker_pending(void)
{
	unsigned	n;

	if (wp.ev == NULL)
		return (0);
	pthread_mutex_lock(&wp.mu);
	n = wp.pending;
	pthread_mutex_unlock(&wp.mu);
	return (n);
}
