/*
 * The metrics registry: counter, gauge and histogram families with labels,
 * rendered as Prometheus text (format 0.0.4). Series are created up front by
 * their owners so that every series a dashboard expects exists at zero.
 */
#ifndef METRICS_H
#define METRICS_H

#include <stddef.h>
#include <stdint.h>

enum metric_type { METRIC_COUNTER, METRIC_GAUGE, METRIC_HISTOGRAM };

struct metric_family;
struct metric;

/* A gauge whose value is read when the text is rendered. */
typedef double	(*metric_read_fn)(void);

/*
 * Register a family. labels is a NULL-terminated list of label names (NULL
 * for none). Counters' names must end in _total; histograms are in seconds
 * and use the default buckets. Returns NULL only when out of memory.
 */
struct metric_family *metrics_family(const char *name, const char *help,
		    enum metric_type, const char *const *labels);
/* The series with these label values (as many as the family has labels),
 * created at zero on first use. */
struct metric	*metrics_series(struct metric_family *, ...);
/* A family with no labels whose value comes from fn. */
void		 metrics_gauge_fn(const char *name, const char *help,
		    metric_read_fn fn);

/*
 * A family whose series are produced when the text is rendered, for things
 * that come and go (one series per breaker): collect calls metric_emit once
 * per series with as many label values as the family has labels.
 */
struct metric_emitter;
typedef void	(*metric_collect_fn)(struct metric_emitter *);
void		 metrics_collector(const char *name, const char *help,
		    enum metric_type, const char *const *labels,
		    metric_collect_fn fn);
void		 metric_emit(struct metric_emitter *, double value, ...);

void		 metric_inc(struct metric *);
void		 metric_add(struct metric *, double);
void		 metric_set(struct metric *, double);
void		 metric_observe(struct metric *, double seconds);

/* Render every family; returns a malloc'ed NUL-terminated string. */
char		*metrics_render(size_t *len);
void		 metrics_reset(void);

#endif
