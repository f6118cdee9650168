/* Metric families and their Prometheus text rendering; see metrics.h. */

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "metrics.h"

#define MAX_LABELS	3

static const double buckets[] = {
	0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
	0.1, 0.25, 0.5, 1, 2.5, 5, 10,
};
#define NBUCKETS	(sizeof(buckets) / sizeof(buckets[0]))

struct metric {
	struct metric		*next;
	char			*values[MAX_LABELS];
	double			 v;		/* counter/gauge; histogram sum */
	uint64_t		 count;		/* histogram */
	uint64_t		 le[NBUCKETS];	/* histogram, cumulative later */
};

struct metric_family {
	struct metric_family	*next;
	char			*name;
	char			*help;
	enum metric_type	 type;
	const char		*labels[MAX_LABELS];
	int			 nlabels;
	metric_read_fn		 read;
	metric_collect_fn	 collect;
	struct metric		*series, **tail;
};

static struct metric_family	*families, **ftail = &families;

struct metric_family *
metrics_family(const char *name, const char *help, enum metric_type type,
    const char *const *labels)
{
	struct metric_family	*f;
	int			 i;

	for (f = families; f != NULL; f = f->next)
		if (strcmp(f->name, name) == 0)
			return (f);
	if ((f = calloc(1, sizeof(*f))) == NULL)
		return (NULL);
	f->name = strdup(name);
	f->help = strdup(help);
	f->type = type;
	for (i = 0; labels != NULL && labels[i] != NULL && i < MAX_LABELS; i++)
		f->labels[i] = labels[i];
	f->nlabels = i;
	f->tail = &f->series;
	if (f->name == NULL || f->help == NULL) {
		free(f->name);
		free(f->help);
		free(f);
		return (NULL);
	}
	*ftail = f;
	ftail = &f->next;
	return (f);
}

struct metric *
metrics_series(struct metric_family *f, ...)
{
	const char	*vals[MAX_LABELS];
	struct metric	*m;
	va_list		 ap;
	int		 i;

	if (f == NULL)
		return (NULL);
	va_start(ap, f);
	for (i = 0; i < f->nlabels; i++)
		vals[i] = va_arg(ap, const char *);
	va_end(ap);
	for (m = f->series; m != NULL; m = m->next) {
		for (i = 0; i < f->nlabels; i++)
			if (strcmp(m->values[i], vals[i]) != 0)
				break;
		if (i == f->nlabels)
			return (m);
	}
	if ((m = calloc(1, sizeof(*m))) == NULL)
		return (NULL);
	for (i = 0; i < f->nlabels; i++)
		if ((m->values[i] = strdup(vals[i])) == NULL) {
			while (i-- > 0)
				free(m->values[i]);
			free(m);
			return (NULL);
		}
	*f->tail = m;
	f->tail = &m->next;
	return (m);
}

void
metrics_gauge_fn(const char *name, const char *help, metric_read_fn fn)
{
	struct metric_family	*f;

	if ((f = metrics_family(name, help, METRIC_GAUGE, NULL)) != NULL)
		f->read = fn;
}

void
metric_inc(struct metric *m)
{
	if (m != NULL)
		m->v += 1;
}

void
metric_add(struct metric *m, double d)
{
	if (m != NULL)
		m->v += d;
}

void
metric_set(struct metric *m, double d)
{
	if (m != NULL)
		m->v = d;
}

void
metric_observe(struct metric *m, double s)
{
	size_t	i;

	if (m == NULL)
		return;
	m->v += s;
	m->count++;
	for (i = 0; i < NBUCKETS; i++)
		if (s <= buckets[i]) {
			m->le[i]++;
			break;
		}
}

void
metrics_collector(const char *name, const char *help, enum metric_type type,
    const char *const *labels, metric_collect_fn fn)
{
	struct metric_family	*f;

	if (type == METRIC_HISTOGRAM)
		return;		/* collectors emit plain values only */
	if ((f = metrics_family(name, help, type, labels)) != NULL)
		f->collect = fn;
}

/* A growable string for the rendered text. */
struct out {
	char	*s;
	size_t	 len, cap;
	int	 oom;
};

static void
out_printf(struct out *o, const char *fmt, ...)
{
	va_list	 ap;
	int	 n;
	char	*p;

	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(o->s + o->len, o->cap - o->len, fmt, ap);
		va_end(ap);
		if (n < 0) {
			o->oom = 1;
			return;
		}
		if ((size_t)n < o->cap - o->len) {
			o->len += (size_t)n;
			return;
		}
		if ((p = realloc(o->s, o->cap * 2 + (size_t)n)) == NULL) {
			o->oom = 1;
			return;
		}
		o->s = p;
		o->cap = o->cap * 2 + (size_t)n;
	}
}

/* Label values escaped as the text format requires: \\, \" and \n. */
static void
out_labels(struct out *o, const struct metric_family *f,
    const struct metric *m, const char *extra_name, const char *extra_val)
{
	const char	*c;
	int		 i, any = 0;

	if (f->nlabels == 0 && extra_name == NULL)
		return;
	out_printf(o, "{");
	for (i = 0; i < f->nlabels; i++) {
		out_printf(o, "%s%s=\"", any++ ? "," : "", f->labels[i]);
		for (c = m->values[i]; *c != '\0'; c++) {
			if (*c == '\\' || *c == '"')
				out_printf(o, "\\%c", *c);
			else if (*c == '\n')
				out_printf(o, "\\n");
			else
				out_printf(o, "%c", *c);
		}
		out_printf(o, "\"");
	}
	if (extra_name != NULL)
		out_printf(o, "%s%s=\"%s\"", any ? "," : "", extra_name,
		    extra_val);
	out_printf(o, "}");
}

static void
out_value(struct out *o, double v)
{
	if (isnan(v))
		out_printf(o, " NaN\n");
	else if (v == (double)(int64_t)v && fabs(v) < 1e15)
		out_printf(o, " %lld\n", (long long)v);
	else
		out_printf(o, " %.17g\n", v);
}

static const char *
type_word(enum metric_type t)
{
	switch (t) {
	case METRIC_COUNTER:
		return ("counter");
	case METRIC_GAUGE:
		return ("gauge");
	default:
		return ("histogram");
	}
}

struct metric_emitter {
	struct out			*o;
	const struct metric_family	*f;
};

void
metric_emit(struct metric_emitter *e, double value, ...)
{
	struct metric	m;
	va_list		ap;
	int		i;

	memset(&m, 0, sizeof(m));
	va_start(ap, value);
	for (i = 0; i < e->f->nlabels; i++)
		m.values[i] = va_arg(ap, char *);
	va_end(ap);
	out_printf(e->o, "%s", e->f->name);
	out_labels(e->o, e->f, &m, NULL, NULL);
	out_value(e->o, value);
}

static void
render_family(struct out *o, const struct metric_family *f)
{
	const struct metric	*m;
	char			 le[32];
	uint64_t		 cum;
	size_t			 i;

	out_printf(o, "# HELP %s %s\n# TYPE %s %s\n", f->name, f->help,
	    f->name, type_word(f->type));
	if (f->read != NULL) {
		out_printf(o, "%s", f->name);
		out_value(o, f->read());
		return;
	}
	if (f->collect != NULL) {
		struct metric_emitter	e = { o, f };

		f->collect(&e);
		return;
	}
	for (m = f->series; m != NULL; m = m->next) {
		if (f->type != METRIC_HISTOGRAM) {
			out_printf(o, "%s", f->name);
			out_labels(o, f, m, NULL, NULL);
			out_value(o, m->v);
			continue;
		}
		for (cum = 0, i = 0; i < NBUCKETS; i++) {
			cum += m->le[i];
			snprintf(le, sizeof(le), "%g", buckets[i]);
			out_printf(o, "%s_bucket", f->name);
			out_labels(o, f, m, "le", le);
			out_value(o, (double)cum);
		}
		out_printf(o, "%s_bucket", f->name);
		out_labels(o, f, m, "le", "+Inf");
		out_value(o, (double)m->count);
		out_printf(o, "%s_sum", f->name);
		out_labels(o, f, m, NULL, NULL);
		out_value(o, m->v);
		out_printf(o, "%s_count", f->name);
		out_labels(o, f, m, NULL, NULL);
		out_value(o, (double)m->count);
	}
}

char *
metrics_render(size_t *len)
{
	struct metric_family	*f;
	struct out		 o = { NULL, 0, 4096, 0 };

	if ((o.s = malloc(o.cap)) == NULL)
		return (NULL);
	o.s[0] = '\0';
	for (f = families; f != NULL; f = f->next)
		render_family(&o, f);
	if (o.oom) {
		free(o.s);
		return (NULL);
	}
	if (len != NULL)
		*len = o.len;
	return (o.s);
}

void
metrics_reset(void)
{
	struct metric_family	*f, *fn;
	struct metric		*m, *mn;
	int			 i;

	for (f = families; f != NULL; f = fn) {
		fn = f->next;
		for (m = f->series; m != NULL; m = mn) {
			mn = m->next;
			for (i = 0; i < f->nlabels; i++)
				free(m->values[i]);
			free(m);
		}
		free(f->name);
		free(f->help);
		free(f);
	}
	families = NULL;
	ftail = &families;
}
