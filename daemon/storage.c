/* Fallback storage backends, their health, selection, puts and gets; see
 * storage.h. */

#include <sys/random.h>
#include <sys/stat.h>

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/evp.h>

#include "clock.h"
#include "config.h"
#include "erm_proto.h"
#include "events.h"
#include "http.h"
#include "log.h"
#include "metrics.h"
#include "opts.h"
#include "storage.h"
#include "worker.h"

/*
 * Time. Check intervals and ejections run on the daemon clock, so that
 * --manual-clock tests move them with debug.advance. A check's timeout and
 * the latencies shown are real time on purpose: they bound and measure real
 * I/O (a write to a disk, a request to a server), which does not stop when
 * a test holds the daemon's clock still; a check timeout on the manual
 * clock would fire the moment a test advanced past it, whatever the I/O
 * did.
 */

#define TMP_PREFIX	".ermd-tmp-"	/* puts in progress, dir backends */
#define GET_PREFIX	".ermd-get-"	/* gets in progress, at the target */
#define PROBE_PREFIX	".ermd-probe-"	/* active checks */
#define COPY_BUF	(1024 * 1024)
#define ERROR_BODY_MAX	(64 * 1024)	/* bodies of failed requests */

struct check_cfg {
	int64_t	interval_ms;
	int64_t	timeout_ms;
	int64_t	unhealthy;
	int64_t	healthy;
};

struct settings {
	int		 policy;
	struct check_cfg check;
	int64_t		 eject_failures;
	int64_t		 eject_base_ms;
	int64_t		 eject_max_ms;
	int64_t		 max_inflight;
};

struct check_batch {
	int		 remaining;
	storage_done_fn	 done;
	void		*arg;
};

struct check_waiter {
	struct check_waiter	*next;
	uint64_t		 want;	/* a check with seq >= want ends it */
	struct check_batch	*batch;
};

struct check;

struct backend {
	struct backend		*next;		/* config order */
	int			 refs;		/* the list, and each op */
	int			 removed;
	int			 kept;		/* from the previous config */
	int			 order;
	char			 name[STORAGE_NAME_MAX + 1];
	enum storage_type	 type;
	char			*path;		/* dir */
	char			*url;		/* http, no trailing '/' */
	char			*location;	/* shown; no userinfo */
	int64_t			 priority;
	int64_t			 weight;
	struct check_cfg	 check;
	int64_t			 timeout_ms;
	int64_t			 connect_timeout_ms;
	char			*ca_file, *client_cert, *client_key;
	int			 tls_verify;

	/* Health. */
	int			 active_healthy;
	int64_t			 check_successes;	/* in a row */
	int64_t			 check_failures;	/* in a row */
	int64_t			 consecutive_failures;	/* passive */
	uint64_t		 ejected_until;		/* 0: not */
	int64_t			 times_ejected;
	uint64_t		 last_eject_end;
	uint64_t		 last_check_at;		/* 0: never */
	char			 last_error[256];
	int64_t			 latency_ms;		/* -1: none */
	int			 shown_healthy;		/* last announced */
	int64_t			 rr_current;

	/* Checks. */
	struct clock_timer	*check_timer;
	struct clock_timer	*eject_timer;
	struct check		*checking;
	uint64_t		 check_seq;		/* last started */
	int			 stuck;		/* abandoned dir checks */
	struct check_waiter	*waiters;

	struct metric		*m_healthy;
	struct metric		*m_put_ok, *m_put_err, *m_get_ok, *m_get_err;
	struct metric		*m_check_ok, *m_check_err, *m_ejections;
	struct metric		*m_put_bytes;
};

static struct {
	struct event_base	*base;
	struct backend		*list;
	struct settings		 set;
	int			 started;
	int			 stopping;
	int			 applied;
	int			 next_order;
	char			 host_tag[17];	/* in probe names */
	int64_t			 inflight;
	struct put		*puts;		/* in flight */
	struct get		*gets;		/* in flight */
	struct metric_family	*f_healthy, *f_puts, *f_gets, *f_checks;
	struct metric_family	*f_ejections, *f_put_bytes;
	struct metric		*m_fallbacks;
} st;

static const char *const policy_words[] = { "failover", "round_robin", NULL };
static const char *const type_words[] = { "dir", "http", NULL };

/* ---- small helpers -------------------------------------------------- */

static uint64_t
mono_ms(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000);
}

static void
outcome_fail(struct storage_outcome *o, int code, json_t *data,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void
outcome_fail(struct storage_outcome *o, int code, json_t *data,
    const char *fmt, ...)
{
	va_list	ap;

	o->code = code;
	o->result = NULL;
	o->data = data;
	va_start(ap, fmt);
	vsnprintf(o->msg, sizeof(o->msg), fmt, ap);
	va_end(ap);
}

static const char *
errno_name(int e)
{
	const char	*s = strerrorname_np(e);

	return (s != NULL ? s : "EIO");
}

/* A random suffix for temp names: 16 hex digits. */
static void
random_suffix(char out[17])
{
	unsigned char	r[8];
	size_t		i;

	if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r)) {
		uint64_t	x = mono_ms() ^ (uint64_t)getpid() << 32 ^
		    (uint64_t)(uintptr_t)out;

		memcpy(r, &x, sizeof(r));
	}
	for (i = 0; i < sizeof(r); i++)
		snprintf(out + 2 * i, 3, "%02x", r[i]);
}

static void
hex(const unsigned char *d, size_t n, char *out)
{
	size_t	i;

	for (i = 0; i < n; i++)
		snprintf(out + 2 * i, 3, "%02x", d[i]);
}

static int
sha_final(EVP_MD_CTX *md, char out[65])
{
	unsigned char	d[EVP_MAX_MD_SIZE];
	unsigned int	n = 0;

	if (EVP_DigestFinal_ex(md, d, &n) != 1 || n != 32)
		return (-1);
	hex(d, n, out);
	return (0);
}

/* Run fn on the loop soon, never from inside the caller. */
static void
defer(void (*fn)(int, short, void *), void *arg)
{
	struct timeval	tv = { 0, 0 };

	if (event_base_once(st.base, -1, EV_TIMEOUT, fn, arg, &tv) == -1)
		fn(-1, EV_TIMEOUT, arg);	/* out of memory: inline */
}

int
storage_key_valid(const char *key, char *why, size_t whysz)
{
	size_t	i, n = strlen(key);

	if (n == 0 || n > STORAGE_KEY_MAX) {
		snprintf(why, whysz, "must be 1 to %d bytes", STORAGE_KEY_MAX);
		return (-1);
	}
	if (key[0] == '.') {
		snprintf(why, whysz, "must not start with '.'");
		return (-1);
	}
	for (i = 0; i < n; i++)
		if (!isalnum((unsigned char)key[i]) && key[i] != '.' &&
		    key[i] != '_' && key[i] != '-') {
			snprintf(why, whysz, "may hold only A-Z a-z 0-9 . _ -");
			return (-1);
		}
	return (0);
}

static int
name_valid(const char *s)
{
	size_t	i, n = strlen(s);

	if (n == 0 || n > STORAGE_NAME_MAX)
		return (0);
	for (i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '.' &&
		    s[i] != '_' && s[i] != '-')
			return (0);
	return (1);
}

/* ---- configuration -------------------------------------------------- */

/*
 * [storage] and [backend.NAME]: the typed keys of each, landing in struct
 * settings and struct backend; the check keys are in both. The path and
 * url keys are strings, checked by check_location.
 */
#define S(f)	offsetof(struct settings, f)
static const struct opt storage_opts[] = {
	{ "policy", OPT_ENUM, 0, 0, S(policy), policy_words },
	{ "check_interval_ms", OPT_INT, 100, 86400000, S(check.interval_ms),
	    NULL },
	{ "check_timeout_ms", OPT_INT, 1, 600000, S(check.timeout_ms), NULL },
	{ "unhealthy_threshold", OPT_INT, 1, 1000, S(check.unhealthy), NULL },
	{ "healthy_threshold", OPT_INT, 1, 1000, S(check.healthy), NULL },
	{ "eject_consecutive_failures", OPT_INT, 0, 1000, S(eject_failures),
	    NULL },
	{ "eject_base_ms", OPT_INT, 0, 86400000, S(eject_base_ms), NULL },
	{ "eject_max_ms", OPT_INT, 0, 604800000, S(eject_max_ms), NULL },
	{ "max_inflight", OPT_INT, 1, 100000, S(max_inflight), NULL },
	{ NULL, OPT_INT, 0, 0, 0, NULL }
};
#undef S

/* OPT_ENUM stores an int: type is an enum of int's size. */
#define B(f)	offsetof(struct backend, f)
static const struct opt backend_opts[] = {
	{ "type", OPT_ENUM, 0, 0, B(type), type_words },
	{ "priority", OPT_INT, 0, 1000000, B(priority), NULL },
	{ "weight", OPT_INT, 1, 10000, B(weight), NULL },
	{ "timeout_ms", OPT_INT, 0, 86400000, B(timeout_ms), NULL },
	{ "connect_timeout_ms", OPT_INT, 0, 600000, B(connect_timeout_ms),
	    NULL },
	{ "tls_verify", OPT_BOOL, 0, 0, B(tls_verify), NULL },
	{ "check_interval_ms", OPT_INT, 100, 86400000, B(check.interval_ms),
	    NULL },
	{ "check_timeout_ms", OPT_INT, 1, 600000, B(check.timeout_ms), NULL },
	{ "unhealthy_threshold", OPT_INT, 1, 1000, B(check.unhealthy), NULL },
	{ "healthy_threshold", OPT_INT, 1, 1000, B(check.healthy), NULL },
	{ NULL, OPT_INT, 0, 0, 0, NULL }
};
#undef B
_Static_assert(sizeof(enum storage_type) == sizeof(int),
    "backend_opts stores type as an int");

static const char *const storage_keys[] = { "policy", "check_interval_ms",
    "check_timeout_ms", "unhealthy_threshold", "healthy_threshold",
    "eject_consecutive_failures", "eject_base_ms", "eject_max_ms",
    "max_inflight", NULL };
static const char *const backend_keys[] = { "type", "path", "url",
    "priority", "weight", "timeout_ms", "connect_timeout_ms", "ca_file",
    "client_cert", "client_key", "tls_verify", "check_interval_ms",
    "check_timeout_ms", "unhealthy_threshold", "healthy_threshold", NULL };

/*
 * A string key of [backend.NAME]: 0 when value is good, -1 with err
 * filled when not, 1 when key is not one.
 */
static int
check_location(const char *key, const char *value, char *err, size_t errsz)
{
	if (strcmp(key, "path") == 0 || strcmp(key, "ca_file") == 0 ||
	    strcmp(key, "client_cert") == 0 ||
	    strcmp(key, "client_key") == 0) {
		/* Empty is unset (the default), except for a dir's path. */
		if (value[0] == '\0' && strcmp(key, "path") != 0)
			return (0);
		if (value[0] != '/' || strlen(value) > PATH_MAX - 300) {
			snprintf(err, errsz, "%s: must be an absolute path "
			    "(at most %d bytes)", key, PATH_MAX - 300);
			return (-1);
		}
		return (0);
	}
	if (strcmp(key, "url") == 0) {
		if ((strncasecmp(value, "http://", 7) != 0 &&
		    strncasecmp(value, "https://", 8) != 0) ||
		    strlen(value) > STORAGE_LOCATION_MAX - 300 ||
		    strpbrk(value, " \t\"<>\\^`{|}") != NULL) {
			snprintf(err, errsz, "%s: must be an http:// or "
			    "https:// URL without spaces (at most %d bytes)",
			    key, STORAGE_LOCATION_MAX - 300);
			return (-1);
		}
		return (0);
	}
	return (1);
}

static int
check_storage(const char *section, const char *key, const char *value,
    char *err, size_t errsz)
{
	struct settings	scratch;

	(void)section;
	return (opts_check_conf(storage_opts, &scratch, key, value, err,
	    errsz));
}

static int
check_backend(const char *section, const char *key, const char *value,
    char *err, size_t errsz)
{
	struct backend	scratch;
	int		r;

	if (strcmp(section, "backend") == 0) {
		snprintf(err, errsz, "backends are named: [backend.NAME]");
		return (-1);
	}
	if (!name_valid(section + strlen("backend."))) {
		snprintf(err, errsz, "[%s]: a backend name is 1-%d bytes of "
		    "A-Z a-z 0-9 . _ -", section, STORAGE_NAME_MAX);
		return (-1);
	}
	if ((r = check_location(key, value, err, errsz)) != 1)
		return (r);
	return (opts_check_conf(backend_opts, &scratch, key, value, err,
	    errsz));
}

static void	storage_apply(const struct config *);

static const struct config_kind storage_kind = { "storage", 0, check_storage,
    storage_keys, storage_apply };
static const struct config_kind backend_kind = { "backend", 1, check_backend,
    backend_keys, NULL };

/*
 * What needs several keys of a [backend.NAME]: a type and the location
 * that goes with it. Reported at the section's first key.
 */
static void
validate(struct config *cfg)
{
	const struct config_entry	*e, *first, *path, *url, *type;
	size_t				 i, j;

	for (i = 0; i < cfg->nentries; i++) {
		first = &cfg->entries[i];
		if (strncmp(first->section, "backend.", 8) != 0 ||
		    !config_first_of_section(cfg, i))
			continue;
		path = url = type = NULL;
		for (j = i; j < cfg->nentries; j++) {
			e = &cfg->entries[j];
			if (strcmp(e->section, first->section) != 0)
				continue;
			if (strcmp(e->key, "path") == 0)
				path = e;
			else if (strcmp(e->key, "url") == 0)
				url = e;
			else if (strcmp(e->key, "type") == 0)
				type = e;
		}
		if (type == NULL && path != NULL && url != NULL)
			config_add_error(cfg, url->file, url->line, "[%s]: "
			    "path and url: a backend has one (set type)",
			    first->section);
		else if (type != NULL && strcmp(type->value, "http") == 0) {
			if (url == NULL)
				config_add_error(cfg, type->file, type->line,
				    "[%s]: type = http needs url",
				    first->section);
			if (path != NULL)
				config_add_error(cfg, path->file, path->line,
				    "[%s]: path is for type = dir",
				    first->section);
		} else if (type != NULL || url == NULL) {
			if (path == NULL)
				config_add_error(cfg, first->file,
				    first->line, "[%s]: needs path = DIR "
				    "(type = dir) or url = URL (type = http)",
				    first->section);
			if (url != NULL)
				config_add_error(cfg, url->file, url->line,
				    "[%s]: url is for type = http",
				    first->section);
		}
	}
}

void
storage_register(void)
{
	config_register_kind(&storage_kind);
	config_register_kind(&backend_kind);
	config_register_validator(validate);
}

/* ---- backends and health -------------------------------------------- */

static int
is_ejected(const struct backend *b)
{
	return (b->ejected_until != 0);
}

static int
is_healthy(const struct backend *b)
{
	return (b->active_healthy && !is_ejected(b));
}

static void	check_notify(struct backend *, uint64_t seq);

static void
backend_unref(struct backend *b)
{
	if (--b->refs > 0)
		return;
	clock_timer_free(b->check_timer);
	clock_timer_free(b->eject_timer);
	free(b->path);
	free(b->url);
	free(b->location);
	free(b->ca_file);
	free(b->client_cert);
	free(b->client_key);
	free(b);
}

/*
 * Announce a change of a backend's health (healthy = checks passing and
 * not ejected) as an event, a metric and a log line.
 */
static void
announce(struct backend *b, const char *reason)
{
	int	h = is_healthy(b);
	json_t	*ev;

	if (h == b->shown_healthy || b->removed)
		return;
	b->shown_healthy = h;
	metric_set(b->m_healthy, h);
	if (h)
		log_info("storage: backend %s is healthy (%s)", b->name,
		    reason);
	else
		log_warnx("storage: backend %s is unhealthy (%s%s%s)", b->name,
		    reason, b->last_error[0] ? ": " : "", b->last_error);
	ev = json_pack("{s:s, s:b, s:s}", "backend", b->name, "healthy", h,
	    "reason", reason);
	if (ev != NULL && !h && b->last_error[0] != '\0')
		json_object_set_new(ev, "error", json_string(b->last_error));
	if (ev != NULL && is_ejected(b))
		json_object_set_new(ev, "ejected_until",
		    json_integer((json_int_t)b->ejected_until));
	events_emit(EV_STORAGE_HEALTH, ev);
}

static void
end_ejection(struct backend *b, const char *reason)
{
	if (!is_ejected(b))
		return;
	b->ejected_until = 0;
	b->last_eject_end = clock_now_ms();
	b->consecutive_failures = 0;
	clock_timer_cancel(b->eject_timer);
	announce(b, reason);
}

static void
eject_expired(void *arg)
{
	end_ejection(arg, "ejection_ended");
}

/*
 * Passive ejection (Envoy's outlier detection): eject_consecutive_failures
 * failures in a row eject the backend for eject_base_ms times the number of
 * ejections in a row, at most eject_max_ms. Ejections count as "in a row"
 * until the backend has gone eject_max_ms without one; failures reported
 * while it is ejected do not extend the ejection.
 */
static void
eject(struct backend *b)
{
	uint64_t	now = clock_now_ms();
	int64_t		d;

	if (b->last_eject_end != 0 && now - b->last_eject_end >=
	    (uint64_t)st.set.eject_max_ms)
		b->times_ejected = 0;
	b->times_ejected++;
	d = st.set.eject_base_ms * b->times_ejected;
	if (d > st.set.eject_max_ms || d < 0)
		d = st.set.eject_max_ms;
	b->consecutive_failures = 0;
	b->ejected_until = now + (uint64_t)d;
	if (d == 0)
		b->ejected_until = now + 1;
	metric_inc(b->m_ejections);
	clock_timer_at(b->eject_timer, b->ejected_until);
	announce(b, "ejected");
}

static void
observe(struct backend *b, int ok, int counts, const char *error,
    int64_t latency_ms)
{
	if (b->removed)
		return;
	if (latency_ms >= 0)
		b->latency_ms = latency_ms;
	if (ok) {
		b->consecutive_failures = 0;
		return;
	}
	if (error != NULL && *error != '\0')
		snprintf(b->last_error, sizeof(b->last_error), "%s", error);
	if (!counts || is_ejected(b))
		return;
	b->consecutive_failures++;
	if (st.set.eject_failures > 0 &&
	    b->consecutive_failures >= st.set.eject_failures)
		eject(b);
}

static struct backend *
find(const char *name)
{
	struct backend	*b;

	for (b = st.list; b != NULL; b = b->next)
		if (strcmp(b->name, name) == 0)
			return (b);
	return (NULL);
}

int
storage_backend_exists(const char *name)
{
	return (find(name) != NULL);
}

int
storage_observe(const char *name, int ok, int counts, const char *error,
    int64_t latency_ms, int *healthy)
{
	struct backend	*b;

	if ((b = find(name)) == NULL)
		return (-1);
	observe(b, ok, counts, error, latency_ms);
	*healthy = is_healthy(b);
	return (0);
}

/* ---- selection ------------------------------------------------------ */

static int
in_list(const char *name, const char *const *list, size_t n)
{
	size_t	i;

	for (i = 0; i < n; i++)
		if (list[i] != NULL && strcmp(list[i], name) == 0)
			return (1);
	return (0);
}

/* a goes before b in failover order. */
static int
before(const struct backend *a, const struct backend *b)
{
	return (a->priority < b->priority || (a->priority == b->priority &&
	    a->order < b->order));
}

/*
 * Smooth weighted round robin (nginx): every candidate gains its weight,
 * the one with the most is chosen and loses the total. Over any window of
 * sum(weights) picks each backend is chosen exactly weight times, spread
 * evenly. With advance 0 this only says which one would be chosen.
 */
static struct backend *
pick(const char *const *exclude, size_t nexclude, int advance)
{
	struct backend	*b, *best = NULL;
	int64_t		 total = 0;

	for (b = st.list; b != NULL; b = b->next) {
		if (!is_healthy(b) || in_list(b->name, exclude, nexclude))
			continue;
		if (st.set.policy == POLICY_FAILOVER) {
			if (best == NULL || before(b, best))
				best = b;
			continue;
		}
		total += b->weight;
		if (best == NULL || b->rr_current + b->weight >
		    best->rr_current + best->weight)
			best = b;
	}
	if (best == NULL || st.set.policy == POLICY_FAILOVER || !advance)
		return (best);
	for (b = st.list; b != NULL; b = b->next)
		if (is_healthy(b) && !in_list(b->name, exclude, nexclude))
			b->rr_current += b->weight;
	best->rr_current -= total;
	return (best);
}

static void
fill_choice(const struct backend *b, struct storage_choice *out)
{
	snprintf(out->name, sizeof(out->name), "%s", b->name);
	out->type = b->type;
	snprintf(out->location, sizeof(out->location), "%s", b->location);
}

int
storage_select_next(const char *const *exclude, size_t nexclude,
    struct storage_choice *out)
{
	struct backend	*b;

	if ((b = pick(exclude, nexclude, 1)) == NULL)
		return (-1);
	fill_choice(b, out);
	return (0);
}

/* The first backend in failover order, healthy or not. */
static struct backend *
top_priority(void)
{
	struct backend	*b, *best = NULL;

	for (b = st.list; b != NULL; b = b->next)
		if (best == NULL || before(b, best))
			best = b;
	return (best);
}

static json_t *
backend_json(const struct backend *b)
{
	json_t	*o;

	o = json_pack("{s:s, s:s, s:s, s:I, s:I, s:b, s:I}",
	    "name", b->name,
	    "type", type_words[b->type],
	    "location", b->location,
	    "priority", (json_int_t)b->priority,
	    "weight", (json_int_t)b->weight,
	    "healthy", is_healthy(b),
	    "consecutive_failures", (json_int_t)b->consecutive_failures);
	if (o == NULL)
		return (NULL);
	if (is_ejected(b))
		json_object_set_new(o, "ejected_until",
		    json_integer((json_int_t)b->ejected_until));
	if (b->last_check_at != 0)
		json_object_set_new(o, "last_check_at",
		    json_integer((json_int_t)b->last_check_at));
	if (b->last_error[0] != '\0')
		json_object_set_new(o, "last_error",
		    json_string(b->last_error));
	if (b->latency_ms >= 0)
		json_object_set_new(o, "latency_ms",
		    json_integer((json_int_t)b->latency_ms));
	json_object_set_new(o, "times_ejected",
	    json_integer((json_int_t)b->times_ejected));
	return (o);
}

json_t *
storage_status(void)
{
	struct backend	*b, *cur;
	json_t		*arr, *o;

	if ((arr = json_array()) == NULL)
		return (NULL);
	for (b = st.list; b != NULL; b = b->next)
		json_array_append_new(arr, backend_json(b));
	cur = pick(NULL, 0, 0);
	o = json_pack("{s:s, s:o, s:s?}", "policy",
	    policy_words[st.set.policy], "backends", arr, "current",
	    cur != NULL ? cur->name : NULL);
	if (o != NULL && cur == NULL)
		json_object_set_new(o, "current", json_null());
	return (o);
}

/* ---- active checks -------------------------------------------------- */

struct check {
	struct backend		*b;
	uint64_t		 seq;
	uint64_t		 t0;		/* mono ms */
	struct event		*tmo;
	char			 probe[STORAGE_NAME_MAX + 32];
	/* dir: the worker's */
	char			*dir;
	char			 token[96];
	int			 err;
	char			 what[160];
	/* http */
	int			 phase;
	struct http_req		*req;
	char			*url;
};

static void	start_check(struct backend *);

static void
check_free(struct check *c)
{
	if (c->tmo != NULL)
		event_free(c->tmo);
	free(c->dir);
	free(c->url);
	backend_unref(c->b);
	free(c);
}

/*
 * The outcome of check seq of b: thresholds, un-ejection, the next
 * periodic check, and the storage.check callers waiting for it.
 */
static void
check_result(struct backend *b, uint64_t seq, int ok, const char *msg,
    int64_t latency_ms)
{
	const char	*reason = ok ? "checks_passed" : "checks_failed";

	b->checking = NULL;
	if (b->removed || st.stopping) {
		check_notify(b, seq);
		return;
	}
	b->last_check_at = clock_now_ms();
	metric_inc(ok ? b->m_check_ok : b->m_check_err);
	if (ok) {
		b->check_failures = 0;
		b->check_successes++;
		b->latency_ms = latency_ms;
		if (!b->active_healthy &&
		    b->check_successes >= b->check.healthy)
			b->active_healthy = 1;
		/* A passing check ends an ejection (Envoy's default). */
		if (is_ejected(b)) {
			b->ejected_until = 0;
			b->last_eject_end = clock_now_ms();
			b->consecutive_failures = 0;
			clock_timer_cancel(b->eject_timer);
			reason = "check_passed";
		}
	} else {
		b->check_successes = 0;
		b->check_failures++;
		snprintf(b->last_error, sizeof(b->last_error), "check: %s",
		    msg);
		if (b->active_healthy &&
		    b->check_failures >= b->check.unhealthy)
			b->active_healthy = 0;
		log_debug("storage: check of %s failed: %s", b->name, msg);
	}
	announce(b, reason);
	clock_timer_after(b->check_timer, (uint64_t)b->check.interval_ms);
	check_notify(b, seq);
}

/* A check is over (not abandoned): record it and free it. */
static void
check_complete(struct check *c, int ok, const char *msg)
{
	struct backend	*b = c->b;
	uint64_t	 seq = c->seq;
	int64_t		 lat = (int64_t)(mono_ms() - c->t0);

	b->refs++;
	check_free(c);
	check_result(b, seq, ok, msg, lat);
	backend_unref(b);
}

/* Worker: write, read back and delete a probe file. */
static void
dir_check_work(void *arg)
{
	struct check	*c = arg;
	char		 buf[sizeof(c->token)];
	size_t		 n = strlen(c->token);
	ssize_t		 r;
	int		 dfd, fd = -1;

	if ((dfd = open(c->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1) {
		c->err = errno;
		snprintf(c->what, sizeof(c->what), "open %s", c->dir);
		return;
	}
	fd = openat(dfd, c->probe, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC |
	    O_NOFOLLOW, 0600);
	if (fd == -1) {
		c->err = errno;
		snprintf(c->what, sizeof(c->what), "create probe");
		goto out;
	}
	if ((r = write(fd, c->token, n)) != (ssize_t)n) {
		c->err = r == -1 ? errno : ENOSPC;
		snprintf(c->what, sizeof(c->what), "write probe");
		goto out;
	}
	if (fsync(fd) == -1) {
		c->err = errno;
		snprintf(c->what, sizeof(c->what), "fsync probe");
		goto out;
	}
	close(fd);
	if ((fd = openat(dfd, c->probe, O_RDONLY | O_CLOEXEC |
	    O_NOFOLLOW)) == -1) {
		c->err = errno;
		snprintf(c->what, sizeof(c->what), "reopen probe");
		goto out;
	}
	r = read(fd, buf, sizeof(buf));
	if (r != (ssize_t)n || memcmp(buf, c->token, n) != 0) {
		c->err = r == -1 ? errno : EIO;
		snprintf(c->what, sizeof(c->what), "probe read back %s",
		    r == -1 ? "failed" : "differs");
		goto out;
	}
	if (unlinkat(dfd, c->probe, 0) == -1) {
		c->err = errno;
		snprintf(c->what, sizeof(c->what), "delete probe");
	}
out:
	if (fd != -1)
		close(fd);
	close(dfd);
}

static void
dir_check_done(void *arg)
{
	struct check	*c = arg;
	char		 msg[256];

	if (c->b->checking != c) {
		/* Abandoned after its timeout: only the memory is left. */
		c->b->stuck--;
		check_free(c);
		return;
	}
	if (c->err != 0)
		snprintf(msg, sizeof(msg), "%s: %s", c->what,
		    strerror(c->err));
	check_complete(c, c->err == 0, c->err == 0 ? NULL : msg);
}

static void	http_check_step(const struct http_response *, void *);

static int
http_check_send(struct check *c, const char *method)
{
	struct http_options	 o;
	struct http_body	 body = { c->token, strlen(c->token), -1 };
	int64_t			 left;

	memset(&o, 0, sizeof(o));
	o.resp_fd = -1;
	o.max_response_bytes = ERROR_BODY_MAX;
	/*
	 * The check's own timer (check_timeout) is its deadline, so that a
	 * slow check always fails the same way; libcurl's timeout, a second
	 * later, only keeps a request from outliving it.
	 */
	left = c->b->check.timeout_ms - (int64_t)(mono_ms() - c->t0);
	o.timeout_ms = (long)(left > 1 ? left : 1) + 1000;
	o.connect_timeout_ms = o.timeout_ms;
	o.ca_file = c->b->ca_file;
	o.client_cert = c->b->client_cert;
	o.client_key = c->b->client_key;
	o.insecure = !c->b->tls_verify;
	c->req = http_request(method, c->url, NULL, strcmp(method, "PUT") == 0 ?
	    &body : NULL, &o, http_check_step, c);
	return (c->req != NULL ? 0 : -1);
}

/* PUT the probe, GET it back, DELETE it. */
static void
http_check_step(const struct http_response *r, void *arg)
{
	static const char *const phases[] = { "PUT", "GET", "DELETE" };
	struct check	*c = arg;
	char		 desc[200], msg[320];
	int		 ok;

	c->req = NULL;
	if (r->err == 0 && r->status >= 200 && r->status < 300)
		ok = c->phase != 1 || (r->body_len == strlen(c->token) &&
		    memcmp(r->body, c->token, r->body_len) == 0);
	else
		ok = c->phase == 2 && r->err == 0 && r->status == 404;
	if (!ok) {
		if (r->err == 0 && r->status >= 200 && r->status < 300)
			snprintf(desc, sizeof(desc), "probe read back differs");
		else
			http_describe(r, desc, sizeof(desc));
		snprintf(msg, sizeof(msg), "%s %s: %s", phases[c->phase],
		    c->probe, desc);
		check_complete(c, 0, msg);
		return;
	}
	if (++c->phase == 3) {
		check_complete(c, 1, NULL);
		return;
	}
	if (http_check_send(c, phases[c->phase]) == -1) {
		snprintf(msg, sizeof(msg), "%s %s: %s", phases[c->phase],
		    c->probe, strerror(errno));
		check_complete(c, 0, msg);
	}
}

static void
check_timeout(int fd, short what, void *arg)
{
	struct check	*c = arg;
	struct backend	*b = c->b;
	char		 msg[96];

	(void)fd;
	(void)what;
	snprintf(msg, sizeof(msg), "timed out after %lld ms",
	    (long long)b->check.timeout_ms);
	if (b->type == STORAGE_HTTP) {
		http_cancel(c->req);
		c->req = NULL;
		check_complete(c, 0, msg);
		return;
	}
	/*
	 * A blocked disk cannot be interrupted: the worker keeps the check
	 * and frees it when the call returns; until then new checks of this
	 * backend fail at once instead of piling up threads.
	 */
	event_free(c->tmo);
	c->tmo = NULL;
	b->stuck++;
	b->refs++;
	check_result(b, c->seq, 0, msg, -1);
	backend_unref(b);
}

static void
start_check(struct backend *b)
{
	struct check	*c;
	struct timeval	 tv;
	const char	*why = NULL;
	char		 msg[128];
	uint64_t	 seq;

	if (b->checking != NULL || b->removed || st.stopping)
		return;
	seq = ++b->check_seq;
	if (b->stuck > 0)
		why = "the previous check is still blocked";
	else if ((c = calloc(1, sizeof(*c))) == NULL)
		why = "out of memory";
	if (why != NULL) {
		check_result(b, seq, 0, why, -1);
		return;
	}
	c->b = b;
	b->refs++;
	c->seq = seq;
	c->t0 = mono_ms();
	/*
	 * One probe name per backend and host: backends that share a
	 * directory or a server (on this host or others) never check
	 * each other's probe.
	 */
	snprintf(c->probe, sizeof(c->probe), "%s%s-%s", PROBE_PREFIX, b->name,
	    st.host_tag);
	snprintf(c->token, sizeof(c->token), "ermd probe %s %llu %llu\n",
	    b->name, (unsigned long long)seq,
	    (unsigned long long)clock_now_ms());
	b->checking = c;
	tv.tv_sec = (time_t)(b->check.timeout_ms / 1000);
	tv.tv_usec = (suseconds_t)(b->check.timeout_ms % 1000) * 1000;
	if ((c->tmo = evtimer_new(st.base, check_timeout, c)) == NULL ||
	    evtimer_add(c->tmo, &tv) == -1) {
		check_complete(c, 0, "out of memory");
		return;
	}
	if (b->type == STORAGE_DIR) {
		if ((c->dir = strdup(b->path)) == NULL ||
		    worker_submit(dir_check_work, dir_check_done, c) == -1)
			check_complete(c, 0, "cannot queue the check");
		return;
	}
	if (asprintf(&c->url, "%s/%s", b->url, c->probe) == -1) {
		c->url = NULL;
		check_complete(c, 0, "out of memory");
		return;
	}
	if (http_check_send(c, "PUT") == -1) {
		snprintf(msg, sizeof(msg), "PUT %s: %s", c->probe,
		    strerror(errno));
		check_complete(c, 0, msg);
	}
}

static void
check_due(void *arg)
{
	start_check(arg);
}

static void
batch_done(int fd, short what, void *arg)
{
	struct check_batch	*cb = arg;
	struct storage_outcome	 o;

	(void)fd;
	(void)what;
	memset(&o, 0, sizeof(o));
	if (st.stopping)
		outcome_fail(&o, ERM_UNAVAILABLE, json_pack("{s:s}", "reason",
		    "shutting down"), "ermd is shutting down");
	else if ((o.result = storage_status()) == NULL)
		outcome_fail(&o, ERM_INTERNAL_ERROR, NULL, "out of memory");
	cb->done(&o, cb->arg);
	free(cb);
}

static void
batch_drop(struct check_batch *cb)
{
	if (--cb->remaining > 0)
		return;
	/* Never from inside storage_check; at stop, the loop is over. */
	if (st.stopping)
		batch_done(-1, EV_TIMEOUT, cb);
	else
		defer(batch_done, cb);
}

/* Wake the storage.check callers that check seq of b satisfies. */
static void
check_notify(struct backend *b, uint64_t seq)
{
	struct check_waiter	*w, **wp;

	for (wp = &b->waiters; (w = *wp) != NULL;) {
		if (w->want <= seq || b->removed || st.stopping) {
			*wp = w->next;
			batch_drop(w->batch);
			free(w);
		} else
			wp = &w->next;
	}
	/* Someone waits for a check that started after this one. */
	if (b->waiters != NULL && b->checking == NULL)
		start_check(b);
}

int
storage_check(const char *name, storage_done_fn done, void *arg,
    struct storage_outcome *now)
{
	struct check_batch	*cb;
	struct check_waiter	*w;
	struct backend		*b;

	memset(now, 0, sizeof(*now));
	if (name != NULL && find(name) == NULL) {
		outcome_fail(now, ERM_NOT_FOUND, json_pack("{s:s, s:s}",
		    "kind", "backend", "name", name), "no backend named '%s'",
		    name);
		return (-1);
	}
	if ((cb = calloc(1, sizeof(*cb))) == NULL) {
		outcome_fail(now, ERM_INTERNAL_ERROR, NULL, "out of memory");
		return (-1);
	}
	cb->done = done;
	cb->arg = arg;
	cb->remaining = 1;	/* held until every backend is asked */
	for (b = st.list; b != NULL; b = b->next) {
		if (name != NULL && strcmp(b->name, name) != 0)
			continue;
		if ((w = calloc(1, sizeof(*w))) == NULL)
			continue;
		w->want = b->check_seq + 1;
		w->batch = cb;
		w->next = b->waiters;
		b->waiters = w;
		cb->remaining++;
		start_check(b);
	}
	batch_drop(cb);
	return (0);
}

/* ---- copying with a hash -------------------------------------------- */

struct copy {
	uint64_t	 bytes;
	char		 sha[65];
	int		 err;
	int		 dest_side;	/* the failure is the destination's */
	char		 what[128];
};

/*
 * Large copies hash on a second thread while the worker reads and writes:
 * both only read a buffer, the hasher takes the chunks in order, and a
 * buffer is refilled only once it is hashed, so the hash is of exactly the
 * bytes written. (On the dev VM a 16 MiB put spends about 11 ms hashing and
 * 6 ms copying; overlapped, the copy costs little more than the hash.)
 */
#define COPY_NBUF	3
#define PIPE_MIN	(4 * COPY_BUF)	/* smaller copies hash inline */

struct hasher {
	pthread_mutex_t	 mu;
	pthread_cond_t	 cv;
	EVP_MD_CTX	*md;
	uint8_t		*buf[COPY_NBUF];
	size_t		 len[COPY_NBUF];
	uint64_t	 filled, hashed;	/* chunks */
	int		 quit;
};

static void *
hasher_main(void *arg)
{
	struct hasher	*hs = arg;
	size_t		 i;

	pthread_mutex_lock(&hs->mu);
	for (;;) {
		while (hs->hashed == hs->filled && !hs->quit)
			pthread_cond_wait(&hs->cv, &hs->mu);
		if (hs->hashed == hs->filled)
			break;
		i = (size_t)(hs->hashed % COPY_NBUF);
		pthread_mutex_unlock(&hs->mu);
		EVP_DigestUpdate(hs->md, hs->buf[i], hs->len[i]);
		pthread_mutex_lock(&hs->mu);
		hs->hashed++;
		pthread_cond_broadcast(&hs->cv);
	}
	pthread_mutex_unlock(&hs->mu);
	return (NULL);
}

static void
hasher_stop(struct hasher *hs, pthread_t t)
{
	pthread_mutex_lock(&hs->mu);
	hs->quit = 1;
	pthread_cond_broadcast(&hs->cv);
	pthread_mutex_unlock(&hs->mu);
	pthread_join(t, NULL);
	pthread_mutex_destroy(&hs->mu);
	pthread_cond_destroy(&hs->cv);
}

/*
 * Copy size bytes of in (from offset 0, with pread) to out, hashing them;
 * size UINT64_MAX copies to the end of in. On a worker thread.
 */
static int
copy_hash(int in, int out, uint64_t size, struct copy *cp)
{
	struct hasher	 hs;
	pthread_t	 t;
	uint64_t	 off = 0;
	size_t		 want, done, b, i, nbuf;
	ssize_t		 n, w;
	int		 threaded = 0, rc = -1;

	memset(&hs, 0, sizeof(hs));
	cp->bytes = 0;
	nbuf = size >= PIPE_MIN && size != UINT64_MAX ? COPY_NBUF : 1;
	for (i = 0; i < nbuf; i++)
		if ((hs.buf[i] = malloc(COPY_BUF)) == NULL)
			goto oom;
	if ((hs.md = EVP_MD_CTX_new()) == NULL)
		goto oom;
	EVP_DigestInit_ex(hs.md, EVP_sha256(), NULL);
	if (nbuf > 1) {
		pthread_mutex_init(&hs.mu, NULL);
		pthread_cond_init(&hs.cv, NULL);
		if (pthread_create(&t, NULL, hasher_main, &hs) == 0)
			threaded = 1;
		else {
			pthread_mutex_destroy(&hs.mu);
			pthread_cond_destroy(&hs.cv);
			nbuf = 1;
		}
	}
	while (off < size) {
		b = threaded ? (size_t)(hs.filled % COPY_NBUF) : 0;
		if (threaded) {
			pthread_mutex_lock(&hs.mu);
			while (hs.filled - hs.hashed >= COPY_NBUF)
				pthread_cond_wait(&hs.cv, &hs.mu);
			pthread_mutex_unlock(&hs.mu);
		}
		want = size - off < COPY_BUF ? (size_t)(size - off) : COPY_BUF;
		n = pread(in, hs.buf[b], want, (off_t)off);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			cp->err = errno;
			snprintf(cp->what, sizeof(cp->what), "read");
			goto out;
		}
		if (n == 0) {
			if (size == UINT64_MAX)
				break;
			cp->err = EIO;
			snprintf(cp->what, sizeof(cp->what), "the source "
			    "shrank while being copied");
			goto out;
		}
		if (threaded) {
			pthread_mutex_lock(&hs.mu);
			hs.len[b] = (size_t)n;
			hs.filled++;
			pthread_cond_broadcast(&hs.cv);
			pthread_mutex_unlock(&hs.mu);
		} else
			EVP_DigestUpdate(hs.md, hs.buf[b], (size_t)n);
		for (done = 0; done < (size_t)n; done += (size_t)w) {
			w = write(out, hs.buf[b] + done, (size_t)n - done);
			if (w == -1 && errno == EINTR) {
				w = 0;
				continue;
			}
			if (w <= 0) {
				cp->err = w == 0 ? ENOSPC : errno;
				cp->dest_side = 1;
				snprintf(cp->what, sizeof(cp->what), "write");
				goto out;
			}
		}
		off += (uint64_t)n;
	}
	if (threaded) {
		hasher_stop(&hs, t);
		threaded = 0;
	}
	cp->bytes = off;
	sha_final(hs.md, cp->sha);
	rc = 0;
	goto out;
oom:
	cp->err = ENOMEM;
	snprintf(cp->what, sizeof(cp->what), "out of memory");
out:
	if (threaded)
		hasher_stop(&hs, t);
	EVP_MD_CTX_free(hs.md);
	for (i = 0; i < COPY_NBUF; i++)
		free(hs.buf[i]);
	return (rc);
}

/* Create a temp file named prefix+random in dfd. */
static int
create_temp(int dfd, const char *prefix, char *name, size_t namesz,
    mode_t mode)
{
	char	sfx[17];
	int	fd, tries;

	for (tries = 0; tries < 8; tries++) {
		random_suffix(sfx);
		snprintf(name, namesz, "%s%s", prefix, sfx);
		fd = openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL |
		    O_CLOEXEC | O_NOFOLLOW, mode);
		if (fd != -1 || errno != EEXIST)
			return (fd);
	}
	return (-1);
}

/* Remove what kill -9 left of puts in progress. On a worker thread. */
static void
sweep_work(void *arg)
{
	char		*dir = arg;
	struct dirent	*de;
	DIR		*d;
	int		 n = 0;

	if ((d = opendir(dir)) == NULL)
		return;
	while ((de = readdir(d)) != NULL)
		if (strncmp(de->d_name, TMP_PREFIX, strlen(TMP_PREFIX)) == 0 &&
		    unlinkat(dirfd(d), de->d_name, 0) == 0)
			n++;
	closedir(d);
	if (n > 0)
		log_info("storage: removed %d unfinished put%s in %s", n,
		    n == 1 ? "" : "s", dir);
}

static void
sweep_done(void *arg)
{
	free(arg);
}

/* ---- puts ----------------------------------------------------------- */

struct put {
	struct put	*next, *prev;
	char		 key[STORAGE_KEY_MAX + 1];
	int		 fd;
	uint64_t	 size;
	storage_done_fn	 done;
	void		*arg;
	json_t		*tried;		/* [{backend, ok, error?}] */
	char		**names;	/* tried, for exclusion */
	size_t		 nnames;
	struct backend	*b;		/* the attempt in flight */
	uint64_t	 t0;		/* mono ms of the attempt */
	/* dir attempt, on the worker */
	char		*dir;
	struct copy	 cp;
	/* http attempt */
	EVP_MD_CTX	*md;
	struct http_req	*req;
};

static void	put_next(struct put *);

static void
put_free(struct put *p)
{
	size_t	i;

	if (p->next != NULL)
		p->next->prev = p->prev;
	if (p->prev != NULL)
		p->prev->next = p->next;
	else
		st.puts = p->next;
	if (p->fd != -1)
		close(p->fd);
	json_decref(p->tried);
	for (i = 0; i < p->nnames; i++)
		free(p->names[i]);
	free(p->names);
	free(p->dir);
	EVP_MD_CTX_free(p->md);
	free(p);
	st.inflight--;
}

/* An error object (PROTOCOL.md §4) for a failed attempt. */
static json_t *
error_object(int err, long http_status, const char *message)
{
	json_t	*o = json_object();

	if (o == NULL)
		return (NULL);
	if (err != 0)
		json_object_set_new(o, "errno", json_string(errno_name(err)));
	if (http_status > 0)
		json_object_set_new(o, "http_status",
		    json_integer(http_status));
	json_object_set_new(o, "message", json_string(message));
	return (o);
}

static void
put_finish(struct put *p, int ok, const char *sha)
{
	struct storage_outcome	 o;
	struct backend		*top;
	int			 fb;

	memset(&o, 0, sizeof(o));
	if (ok) {
		top = top_priority();
		fb = json_array_size(p->tried) > 1 ||
		    (st.set.policy == POLICY_FAILOVER && top != NULL &&
		    strcmp(top->name, p->b->name) != 0);
		if (fb)
			metric_inc(st.m_fallbacks);
		o.result = json_pack("{s:s, s:s, s:I, s:s, s:O, s:b}",
		    "key", p->key, "backend", p->b->name,
		    "size", (json_int_t)p->size, "sha256", sha,
		    "tried", p->tried, "fallback_used", fb);
		if (o.result == NULL)
			outcome_fail(&o, ERM_INTERNAL_ERROR, NULL,
			    "out of memory");
	} else if (st.stopping)
		outcome_fail(&o, ERM_UNAVAILABLE, json_pack("{s:s, s:O}",
		    "reason", "shutting down", "tried", p->tried),
		    "ermd is shutting down");
	else if (json_array_size(p->tried) == 0)
		outcome_fail(&o, ERM_UNAVAILABLE, json_pack("{s:s, s:O}",
		    "reason", "no healthy backend", "tried", p->tried),
		    "no healthy storage backend");
	else
		outcome_fail(&o, ERM_UNAVAILABLE, json_pack("{s:s, s:O}",
		    "reason", "every backend failed", "tried", p->tried),
		    "every storage backend failed (%zu tried)",
		    json_array_size(p->tried));
	if (p->b != NULL) {
		backend_unref(p->b);
		p->b = NULL;
	}
	p->done(&o, p->arg);
	put_free(p);
}

/* One attempt ended. */
static void
put_attempt_done(struct put *p, int ok, int err, long http_status,
    const char *message, const char *sha)
{
	struct backend	*b = p->b;
	json_t		*t;

	t = json_pack("{s:s, s:b}", "backend", b->name, "ok", ok);
	if (t != NULL && !ok)
		json_object_set_new(t, "error", error_object(err, http_status,
		    message));
	json_array_append_new(p->tried, t);
	observe(b, ok, 1, ok ? NULL : message,
	    ok ? (int64_t)(mono_ms() - p->t0) : -1);
	metric_inc(ok ? b->m_put_ok : b->m_put_err);
	if (ok) {
		metric_add(b->m_put_bytes, (double)p->size);
		put_finish(p, 1, sha);
		return;
	}
	log_info("storage: put %s to %s failed: %s", p->key, b->name,
	    message);
	backend_unref(b);
	p->b = NULL;
	put_next(p);
}

/* Worker: temp file, copy with hash, fsync, rename, fsync the dir. */
static void
dir_put_work(void *arg)
{
	struct put	*p = arg;
	char		 tmp[64];
	int		 dfd, fd = -1;

	memset(&p->cp, 0, sizeof(p->cp));
	tmp[0] = '\0';
	if ((dfd = open(p->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1) {
		p->cp.err = errno;
		snprintf(p->cp.what, sizeof(p->cp.what), "open %s", p->dir);
		return;
	}
	if ((fd = create_temp(dfd, TMP_PREFIX, tmp, sizeof(tmp), 0644)) ==
	    -1) {
		p->cp.err = errno;
		snprintf(p->cp.what, sizeof(p->cp.what), "create temp file");
		tmp[0] = '\0';
		goto fail;
	}
	if (copy_hash(p->fd, fd, p->size, &p->cp) == -1)
		goto fail;
	if (fsync(fd) == -1) {
		p->cp.err = errno;
		snprintf(p->cp.what, sizeof(p->cp.what), "fsync");
		goto fail;
	}
	if (close(fd) == -1) {
		fd = -1;
		p->cp.err = errno;
		snprintf(p->cp.what, sizeof(p->cp.what), "close");
		goto fail;
	}
	fd = -1;
	if (renameat(dfd, tmp, dfd, p->key) == -1) {
		p->cp.err = errno;
		snprintf(p->cp.what, sizeof(p->cp.what), "rename");
		goto fail;
	}
	if (fsync(dfd) == -1) {
		/* The object is in place; only its durability is unknown. */
		p->cp.err = errno;
		snprintf(p->cp.what, sizeof(p->cp.what), "fsync directory");
	}
	close(dfd);
	return;
fail:
	if (fd != -1)
		close(fd);
	if (tmp[0] != '\0')
		unlinkat(dfd, tmp, 0);
	close(dfd);
}

static void
dir_put_done(void *arg)
{
	struct put	*p = arg;
	char		 msg[256];

	if (p->cp.err == 0) {
		put_attempt_done(p, 1, 0, 0, NULL, p->cp.sha);
		return;
	}
	snprintf(msg, sizeof(msg), "%s: %s", p->cp.what,
	    strerror(p->cp.err));
	put_attempt_done(p, 0, p->cp.err, 0, msg, NULL);
}

static void
put_tap(void *arg, int upload, const void *data, size_t len)
{
	struct put	*p = arg;

	if (!upload)
		return;
	if (data == NULL)
		EVP_DigestInit_ex(p->md, EVP_sha256(), NULL);
	else
		EVP_DigestUpdate(p->md, data, len);
}

static void
http_put_done(const struct http_response *r, void *arg)
{
	struct put	*p = arg;
	char		 desc[200], sha[65];

	p->req = NULL;
	if (r->err == 0 && r->status >= 200 && r->status < 300 &&
	    sha_final(p->md, sha) == 0) {
		put_attempt_done(p, 1, 0, 0, NULL, sha);
		return;
	}
	http_describe(r, desc, sizeof(desc));
	put_attempt_done(p, 0, r->err, r->err == 0 ? r->status : 0, desc,
	    NULL);
}

static void
http_opts(const struct backend *b, struct http_options *o)
{
	memset(o, 0, sizeof(*o));
	o->resp_fd = -1;
	o->timeout_ms = (long)b->timeout_ms;
	o->connect_timeout_ms = (long)b->connect_timeout_ms;
	o->ca_file = b->ca_file;
	o->client_cert = b->client_cert;
	o->client_key = b->client_key;
	o->insecure = !b->tls_verify;
	o->max_response_bytes = ERROR_BODY_MAX;
}

/* Start an attempt on p->b; -1 (with msg) when it cannot start. */
static int
put_start(struct put *p, char *msg, size_t msgsz, int *err)
{
	struct backend		*b = p->b;
	struct http_options	 o;
	struct http_body	 body = { NULL, (size_t)p->size, p->fd };
	char			*url;

	p->t0 = mono_ms();
	if (b->type == STORAGE_DIR) {
		free(p->dir);
		if ((p->dir = strdup(b->path)) == NULL ||
		    worker_submit(dir_put_work, dir_put_done, p) == -1) {
			*err = ENOMEM;
			snprintf(msg, msgsz, "cannot queue the copy");
			return (-1);
		}
		return (0);
	}
	if (p->md == NULL && (p->md = EVP_MD_CTX_new()) == NULL) {
		*err = ENOMEM;
		snprintf(msg, msgsz, "out of memory");
		return (-1);
	}
	EVP_DigestInit_ex(p->md, EVP_sha256(), NULL);
	http_opts(b, &o);
	o.tap = put_tap;
	o.tap_arg = p;
	if (asprintf(&url, "%s/%s", b->url, p->key) == -1) {
		*err = ENOMEM;
		snprintf(msg, msgsz, "out of memory");
		return (-1);
	}
	p->req = http_request("PUT", url, NULL, &body, &o, http_put_done, p);
	free(url);
	if (p->req == NULL) {
		*err = errno;
		snprintf(msg, msgsz, "cannot start the request: %s",
		    strerror(errno));
		return (-1);
	}
	return (0);
}

static int
put_remember(struct put *p, const char *name)
{
	char	**v;

	if ((v = reallocarray(p->names, p->nnames + 1, sizeof(*v))) == NULL)
		return (-1);
	p->names = v;
	if ((v[p->nnames] = strdup(name)) == NULL)
		return (-1);
	p->nnames++;
	return (0);
}

/* Try the next backend the policy gives, or finish. */
static void
put_next(struct put *p)
{
	struct backend	*b;
	char		 msg[256];
	int		 err;

	while (!st.stopping && (b = pick((const char *const *)p->names,
	    p->nnames, 1)) != NULL) {
		if (put_remember(p, b->name) == -1)
			break;
		p->b = b;
		b->refs++;
		if (put_start(p, msg, sizeof(msg), &err) == 0)
			return;
		json_array_append_new(p->tried, json_pack("{s:s, s:b, s:o}",
		    "backend", b->name, "ok", 0, "error", error_object(err, 0,
		    msg)));
		metric_inc(b->m_put_err);
		backend_unref(b);
		p->b = NULL;
	}
	put_finish(p, 0, NULL);
}

int
storage_put(const char *key, int fd, uint64_t size, storage_done_fn done,
    void *arg, struct storage_outcome *now)
{
	struct put	*p;

	memset(now, 0, sizeof(*now));
	if (st.stopping || !st.started) {
		close(fd);
		outcome_fail(now, ERM_UNAVAILABLE, json_pack("{s:s}", "reason",
		    "shutting down"), "ermd is shutting down");
		return (-1);
	}
	if (st.inflight >= st.set.max_inflight) {
		close(fd);
		outcome_fail(now, ERM_LIMIT_EXCEEDED, json_pack("{s:s, s:I}",
		    "limit", "storage.max_inflight", "value",
		    (json_int_t)st.set.max_inflight),
		    "too many storage operations in flight");
		return (-1);
	}
	if (pick(NULL, 0, 0) == NULL) {
		close(fd);
		outcome_fail(now, ERM_UNAVAILABLE, json_pack("{s:s}", "reason",
		    "no healthy backend"), "no healthy storage backend");
		return (-1);
	}
	if ((p = calloc(1, sizeof(*p))) == NULL ||
	    (p->tried = json_array()) == NULL) {
		free(p);
		close(fd);
		outcome_fail(now, ERM_INTERNAL_ERROR, NULL, "out of memory");
		return (-1);
	}
	st.inflight++;
	if ((p->next = st.puts) != NULL)
		p->next->prev = p;
	st.puts = p;
	snprintf(p->key, sizeof(p->key), "%s", key);
	p->fd = fd;
	p->size = size;
	p->done = done;
	p->arg = arg;
	put_next(p);
	return (0);
}

/* ---- gets ----------------------------------------------------------- */

struct get {
	struct get		*next, *prev;
	char			 key[STORAGE_KEY_MAX + 1];
	struct storage_dest	 dest;
	storage_done_fn		 done;
	void			*arg;
	struct backend		**order;	/* refs held */
	size_t			 norder, idx;
	json_t			*tried;
	int			 failures;	/* not "no such key" */
	/* the attempt */
	uint64_t		 t0;
	char			*dir;		/* dir backend */
	char			 tmp[64];	/* at the destination */
	int			 tmpfd;
	int			 notfound;
	struct copy		 cp;
	EVP_MD_CTX		*md;
	struct http_req		*req;
};

static void	get_next(struct get *);

static void
get_free(struct get *g)
{
	size_t	i;

	if (g->next != NULL)
		g->next->prev = g->prev;
	if (g->prev != NULL)
		g->prev->next = g->next;
	else
		st.gets = g->next;
	for (i = 0; i < g->norder; i++)
		backend_unref(g->order[i]);
	free(g->order);
	if (g->tmpfd != -1)
		close(g->tmpfd);
	if (g->tmp[0] != '\0')
		unlinkat(g->dest.dirfd, g->tmp, 0);
	close(g->dest.dirfd);
	json_decref(g->tried);
	free(g->dir);
	EVP_MD_CTX_free(g->md);
	free(g);
	st.inflight--;
}

static void
get_finish(struct get *g, struct storage_outcome *o)
{
	g->done(o, g->arg);
	get_free(g);
}

static void
get_fail_dest(struct get *g, int err, const char *what)
{
	struct storage_outcome	o;

	memset(&o, 0, sizeof(o));
	outcome_fail(&o, ERM_IO_ERROR, json_pack("{s:s, s:s}", "errno",
	    errno_name(err), "path", g->dest.path), "%s %s: %s", what,
	    g->dest.path, strerror(err));
	get_finish(g, &o);
}

/*
 * Make the temp file at the destination final: fsync, owner and mode,
 * rename over the target, fsync the directory. On a worker thread.
 */
static int
dest_commit(struct get *g)
{
	if (fsync(g->tmpfd) == -1) {
		g->cp.err = errno;
		snprintf(g->cp.what, sizeof(g->cp.what), "fsync");
		return (-1);
	}
	if ((g->dest.chown && fchown(g->tmpfd, g->dest.uid, g->dest.gid) ==
	    -1) || fchmod(g->tmpfd, g->dest.mode) == -1) {
		g->cp.err = errno;
		snprintf(g->cp.what, sizeof(g->cp.what), "set owner and mode "
		    "of");
		return (-1);
	}
	if (renameat(g->dest.dirfd, g->tmp, g->dest.dirfd, g->dest.name) ==
	    -1) {
		g->cp.err = errno;
		snprintf(g->cp.what, sizeof(g->cp.what), "rename over");
		return (-1);
	}
	g->tmp[0] = '\0';
	if (fsync(g->dest.dirfd) == -1) {
		g->cp.err = errno;
		snprintf(g->cp.what, sizeof(g->cp.what), "fsync the directory "
		    "of");
		return (-1);
	}
	return (0);
}

static void
get_success(struct get *g, struct backend *b)
{
	struct storage_outcome	o;

	memset(&o, 0, sizeof(o));
	observe(b, 1, 1, NULL, (int64_t)(mono_ms() - g->t0));
	metric_inc(b->m_get_ok);
	o.result = json_pack("{s:s, s:s, s:I, s:s}", "key", g->key, "backend",
	    b->name, "size", (json_int_t)g->cp.bytes, "sha256", g->cp.sha);
	if (o.result == NULL)
		outcome_fail(&o, ERM_INTERNAL_ERROR, NULL, "out of memory");
	get_finish(g, &o);
}

/* The backend of the attempt failed (or had no such key). */
static void
get_attempt_failed(struct get *g, int err, long http_status,
    const char *message)
{
	struct backend	*b = g->order[g->idx];
	json_t		*t;

	t = json_pack("{s:s, s:b}", "backend", b->name, "ok", 0);
	if (t != NULL)
		json_object_set_new(t, "error", error_object(err, http_status,
		    message));
	json_array_append_new(g->tried, t);
	if (!g->notfound) {
		g->failures++;
		observe(b, 0, 1, message, -1);
		metric_inc(b->m_get_err);
	}
	g->idx++;
	get_next(g);
}

/* Worker: open the key, copy it to a temp file at the destination. */
static void
dir_get_work(void *arg)
{
	struct get	*g = arg;
	struct stat	 sb;
	int		 dfd, fd = -1;

	memset(&g->cp, 0, sizeof(g->cp));
	g->notfound = 0;
	if ((dfd = open(g->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1) {
		g->cp.err = errno;
		snprintf(g->cp.what, sizeof(g->cp.what), "open %s", g->dir);
		return;
	}
	fd = openat(dfd, g->key, O_RDONLY | O_NOFOLLOW | O_NONBLOCK |
	    O_CLOEXEC);
	close(dfd);
	if (fd == -1) {
		g->cp.err = errno;
		g->notfound = errno == ENOENT;
		snprintf(g->cp.what, sizeof(g->cp.what), "open");
		return;
	}
	if (fstat(fd, &sb) == -1 || !S_ISREG(sb.st_mode)) {
		g->cp.err = EINVAL;
		snprintf(g->cp.what, sizeof(g->cp.what), "not a regular file");
		close(fd);
		return;
	}
	if ((g->tmpfd = create_temp(g->dest.dirfd, GET_PREFIX, g->tmp,
	    sizeof(g->tmp), 0600)) == -1) {
		g->tmp[0] = '\0';
		g->cp.err = errno;
		g->cp.dest_side = 1;
		snprintf(g->cp.what, sizeof(g->cp.what), "create a temp file "
		    "beside");
		close(fd);
		return;
	}
	if (copy_hash(fd, g->tmpfd, (uint64_t)sb.st_size, &g->cp) == 0 &&
	    dest_commit(g) == -1)
		g->cp.dest_side = 1;
	close(fd);
}

static void
dir_get_done(void *arg)
{
	struct get	*g = arg;
	char		 msg[256];

	if (g->cp.err == 0) {
		get_success(g, g->order[g->idx]);
		return;
	}
	if (g->cp.dest_side) {
		get_fail_dest(g, g->cp.err, g->cp.what);
		return;
	}
	if (g->tmpfd != -1) {
		close(g->tmpfd);
		g->tmpfd = -1;
	}
	if (g->tmp[0] != '\0') {
		unlinkat(g->dest.dirfd, g->tmp, 0);
		g->tmp[0] = '\0';
	}
	snprintf(msg, sizeof(msg), "%s: %s", g->cp.what, strerror(g->cp.err));
	get_attempt_failed(g, g->cp.err, 0, msg);
}

static void
commit_work(void *arg)
{
	struct get	*g = arg;

	memset(g->cp.what, 0, sizeof(g->cp.what));
	g->cp.err = 0;
	(void)dest_commit(g);
}

static void
commit_done(void *arg)
{
	struct get	*g = arg;

	if (g->cp.err != 0)
		get_fail_dest(g, g->cp.err, g->cp.what);
	else
		get_success(g, g->order[g->idx]);
}

static void
get_tap(void *arg, int upload, const void *data, size_t len)
{
	struct get	*g = arg;

	if (upload || data == NULL)
		return;
	EVP_DigestUpdate(g->md, data, len);
}

static void
http_get_done(const struct http_response *r, void *arg)
{
	struct get	*g = arg;
	char		 desc[200];

	g->req = NULL;
	if (r->err == 0 && r->status == 200) {
		g->cp.bytes = r->body_bytes;
		sha_final(g->md, g->cp.sha);
		if (worker_submit(commit_work, commit_done, g) == -1)
			get_fail_dest(g, ENOMEM, "queue the commit of");
		return;
	}
	close(g->tmpfd);
	g->tmpfd = -1;
	unlinkat(g->dest.dirfd, g->tmp, 0);
	g->tmp[0] = '\0';
	/* A failure to write the temp file is the destination's. */
	if (r->local) {
		get_fail_dest(g, r->err, "write");
		return;
	}
	g->notfound = r->err == 0 && (r->status == 404 || r->status == 410);
	http_describe(r, desc, sizeof(desc));
	get_attempt_failed(g, r->err, r->err == 0 ? r->status : 0, desc);
}

static void
get_next(struct get *g)
{
	struct storage_outcome	 o;
	struct http_options	 opts;
	struct backend		*b;
	char			*url;

	memset(&o, 0, sizeof(o));
	for (; g->idx < g->norder && !st.stopping; g->idx++) {
		b = g->order[g->idx];
		if (b->removed)
			continue;
		g->t0 = mono_ms();
		g->notfound = 0;
		memset(&g->cp, 0, sizeof(g->cp));
		if (b->type == STORAGE_DIR) {
			free(g->dir);
			if ((g->dir = strdup(b->path)) != NULL &&
			    worker_submit(dir_get_work, dir_get_done, g) == 0)
				return;
			get_attempt_failed(g, ENOMEM, 0, "cannot queue the copy");
			return;
		}
		if ((g->tmpfd = create_temp(g->dest.dirfd, GET_PREFIX, g->tmp,
		    sizeof(g->tmp), 0600)) == -1) {
			g->tmp[0] = '\0';
			get_fail_dest(g, errno, "create a temp file beside");
			return;
		}
		if (g->md == NULL && (g->md = EVP_MD_CTX_new()) == NULL)
			goto oom;
		EVP_DigestInit_ex(g->md, EVP_sha256(), NULL);
		http_opts(b, &opts);
		opts.resp_fd = g->tmpfd;
		opts.max_response_bytes = 0;
		opts.tap = get_tap;
		opts.tap_arg = g;
		if (asprintf(&url, "%s/%s", b->url, g->key) == -1)
			goto oom;
		g->req = http_request("GET", url, NULL, NULL, &opts,
		    http_get_done, g);
		free(url);
		if (g->req != NULL)
			return;
	oom:
		close(g->tmpfd);
		g->tmpfd = -1;
		unlinkat(g->dest.dirfd, g->tmp, 0);
		g->tmp[0] = '\0';
		get_attempt_failed(g, ENOMEM, 0, "cannot start the request");
		return;
	}
	if (st.stopping)
		outcome_fail(&o, ERM_UNAVAILABLE, json_pack("{s:s, s:O}",
		    "reason", "shutting down", "tried", g->tried),
		    "ermd is shutting down");
	else if (g->failures == 0 && json_array_size(g->tried) > 0)
		outcome_fail(&o, ERM_NOT_FOUND, json_pack("{s:s, s:s}", "kind",
		    "key", "name", g->key), "no backend has key '%s'", g->key);
	else
		outcome_fail(&o, ERM_UNAVAILABLE, json_pack("{s:s, s:O}",
		    "reason", "every backend failed", "tried", g->tried),
		    "no backend could be read for key '%s'", g->key);
	get_finish(g, &o);
}

static int
get_order_cmp(const void *a, const void *b)
{
	const struct backend	*x = *(struct backend *const *)a;
	const struct backend	*y = *(struct backend *const *)b;

	if (is_healthy(x) != is_healthy(y))
		return (is_healthy(x) ? -1 : 1);
	return (before(x, y) ? -1 : before(y, x) ? 1 : 0);
}

int
storage_get(const char *key, const struct storage_dest *dest,
    storage_done_fn done, void *arg, struct storage_outcome *now)
{
	struct backend	*b;
	struct get	*g;
	size_t		 n = 0;

	memset(now, 0, sizeof(*now));
	if (st.stopping || !st.started || st.inflight >=
	    st.set.max_inflight || st.list == NULL) {
		close(dest->dirfd);
		if (st.list == NULL)
			outcome_fail(now, ERM_UNAVAILABLE, json_pack("{s:s}",
			    "reason", "no backend configured"),
			    "no storage backend is configured");
		else if (st.inflight >= st.set.max_inflight)
			outcome_fail(now, ERM_LIMIT_EXCEEDED,
			    json_pack("{s:s, s:I}", "limit",
			    "storage.max_inflight", "value",
			    (json_int_t)st.set.max_inflight),
			    "too many storage operations in flight");
		else
			outcome_fail(now, ERM_UNAVAILABLE, json_pack("{s:s}",
			    "reason", "shutting down"),
			    "ermd is shutting down");
		return (-1);
	}
	for (b = st.list; b != NULL; b = b->next)
		n++;
	if ((g = calloc(1, sizeof(*g))) == NULL ||
	    (g->order = calloc(n, sizeof(*g->order))) == NULL ||
	    (g->tried = json_array()) == NULL) {
		if (g != NULL)
			free(g->order);
		free(g);
		close(dest->dirfd);
		outcome_fail(now, ERM_INTERNAL_ERROR, NULL, "out of memory");
		return (-1);
	}
	st.inflight++;
	if ((g->next = st.gets) != NULL)
		g->next->prev = g;
	st.gets = g;
	snprintf(g->key, sizeof(g->key), "%s", key);
	g->dest = *dest;
	g->done = done;
	g->arg = arg;
	g->tmpfd = -1;
	for (b = st.list; b != NULL; b = b->next) {
		g->order[g->norder++] = b;
		b->refs++;
	}
	qsort(g->order, g->norder, sizeof(*g->order), get_order_cmp);
	get_next(g);
	return (0);
}

/* ---- applying a config ---------------------------------------------- */

static void
settings_defaults(struct settings *s)
{
	s->policy = POLICY_FAILOVER;
	s->check.interval_ms = 10000;
	s->check.timeout_ms = 2000;
	s->check.unhealthy = 3;
	s->check.healthy = 2;
	s->eject_failures = 5;
	s->eject_base_ms = 30000;
	s->eject_max_ms = 300000;
	s->max_inflight = 64;
}

/* *dst becomes a copy of v; an empty v leaves it unset (NULL). */
static int
replace_str(char **dst, const char *v)
{
	char	*s = NULL;

	if (v[0] != '\0' && (s = strdup(v)) == NULL)
		return (-1);
	free(*dst);
	*dst = s;
	return (0);
}

/* The URL without "user:password@", for showing. */
static char *
strip_userinfo(const char *url)
{
	const char	*p = strstr(url, "://"), *host, *at, *slash;
	char		*s;

	if (p == NULL)
		return (strdup(url));
	host = p + 3;
	slash = strchr(host, '/');
	at = strchr(host, '@');
	if (at == NULL || (slash != NULL && at > slash))
		return (strdup(url));
	if (asprintf(&s, "%.*s%s", (int)(host - url), url, at + 1) == -1)
		return (NULL);
	return (s);
}

/* A backend built from the [backend.NAME] entries of cfg, or NULL. */
static struct backend *
build(const struct config *cfg, const char *section, int order)
{
	const struct config_entry	*e, *first = NULL;
	struct backend			*b;
	size_t				 i, l;
	int				 bad = 0, typed = 0;

	if ((b = calloc(1, sizeof(*b))) == NULL)
		return (NULL);
	snprintf(b->name, sizeof(b->name), "%s", section + strlen("backend."));
	b->order = order;
	b->weight = 1;
	b->check = st.set.check;
	b->timeout_ms = 300000;
	b->connect_timeout_ms = 10000;
	b->tls_verify = 1;
	b->latency_ms = -1;
	b->refs = 1;
	opts_from_config(backend_opts, b, cfg, section);
	for (i = 0; i < cfg->nentries; i++) {
		e = &cfg->entries[i];
		if (strcmp(e->section, section) != 0)
			continue;
		if (first == NULL)
			first = e;
		if (strcmp(e->key, "type") == 0)
			typed = 1;
		else if (strcmp(e->key, "path") == 0)
			bad |= replace_str(&b->path, e->value);
		else if (strcmp(e->key, "url") == 0)
			bad |= replace_str(&b->url, e->value);
		else if (strcmp(e->key, "ca_file") == 0)
			bad |= replace_str(&b->ca_file, e->value);
		else if (strcmp(e->key, "client_cert") == 0)
			bad |= replace_str(&b->client_cert, e->value);
		else if (strcmp(e->key, "client_key") == 0)
			bad |= replace_str(&b->client_key, e->value);
	}
	/* validate() refused configs where these do not hold. */
	if (!typed)
		b->type = b->url != NULL ? STORAGE_HTTP : STORAGE_DIR;
	if (b->type == STORAGE_DIR && (b->path == NULL || b->url != NULL)) {
		log_warnx("%s:%d: [%s] needs path (and no url) for type = dir; "
		    "backend ignored", first->file, first->line, section);
		bad = 1;
	} else if (b->type == STORAGE_HTTP && (b->url == NULL ||
	    b->path != NULL)) {
		log_warnx("%s:%d: [%s] needs url (and no path) for type = "
		    "http; backend ignored", first->file, first->line,
		    section);
		bad = 1;
	}
	if (!bad && b->type == STORAGE_HTTP) {
		l = strlen(b->url);
		while (l > 0 && b->url[l - 1] == '/')
			b->url[--l] = '\0';
		b->location = strip_userinfo(b->url);
	} else if (!bad)
		b->location = strdup(b->path);
	if (bad || b->location == NULL ||
	    (b->check_timer = clock_timer_new(check_due, b)) == NULL ||
	    (b->eject_timer = clock_timer_new(eject_expired, b)) == NULL) {
		backend_unref(b);
		return (NULL);
	}
	return (b);
}

static void
backend_metrics(struct backend *b)
{
	b->m_healthy = metrics_series(st.f_healthy, b->name);
	b->m_put_ok = metrics_series(st.f_puts, b->name, "ok");
	b->m_put_err = metrics_series(st.f_puts, b->name, "error");
	b->m_get_ok = metrics_series(st.f_gets, b->name, "ok");
	b->m_get_err = metrics_series(st.f_gets, b->name, "error");
	b->m_check_ok = metrics_series(st.f_checks, b->name, "ok");
	b->m_check_err = metrics_series(st.f_checks, b->name, "error");
	b->m_ejections = metrics_series(st.f_ejections, b->name);
	b->m_put_bytes = metrics_series(st.f_put_bytes, b->name);
}

/* Take a backend out of service: waiters are answered, timers stop. */
static void
detach(struct backend *b)
{
	b->removed = 1;
	/* Not in service any more (a backend of the same name in the new
	 * config sets the series again). */
	metric_set(b->m_healthy, 0);
	clock_timer_cancel(b->check_timer);
	clock_timer_cancel(b->eject_timer);
	check_notify(b, UINT64_MAX);
	backend_unref(b);
}

static int
same_place(const struct backend *a, const struct backend *b)
{
	if (a->type != b->type)
		return (0);
	if (a->type == STORAGE_DIR)
		return (strcmp(a->path, b->path) == 0);
	return (strcmp(a->url, b->url) == 0);
}

/*
 * A config came into force: take [storage] and the backends. A backend
 * that keeps its name, type and location keeps its health; anything else
 * starts healthy, with a check right away.
 */
static void
storage_apply(const struct config *cfg)
{
	const struct config_entry	*e;
	struct backend			*old, *b, *nb, *list = NULL, **tail;
	struct settings			 s;
	size_t				 i, j;
	int				 first = !st.applied;

	settings_defaults(&s);
	opts_from_config(storage_opts, &s, cfg, "storage");
	st.set = s;

	/* Backends in the order their sections first appear. */
	tail = &list;
	for (i = 0; i < cfg->nentries; i++) {
		e = &cfg->entries[i];
		if (strncmp(e->section, "backend.", 8) != 0)
			continue;
		for (j = 0; j < i; j++)
			if (strcmp(cfg->entries[j].section, e->section) == 0)
				break;
		if (j < i || (nb = build(cfg, e->section,
		    st.next_order++)) == NULL)
			continue;
		*tail = nb;
		tail = &nb->next;
	}

	/* Keep the state of backends that stay where they were. */
	for (nb = list; nb != NULL; nb = nb->next) {
		if ((old = find(nb->name)) == NULL || !same_place(old, nb))
			continue;
		nb->active_healthy = old->active_healthy;
		nb->check_successes = old->check_successes;
		nb->check_failures = old->check_failures;
		nb->consecutive_failures = old->consecutive_failures;
		nb->times_ejected = old->times_ejected;
		nb->last_eject_end = old->last_eject_end;
		nb->last_check_at = old->last_check_at;
		nb->latency_ms = old->latency_ms;
		nb->shown_healthy = old->shown_healthy;
		memcpy(nb->last_error, old->last_error,
		    sizeof(nb->last_error));
		if (is_ejected(old)) {
			nb->ejected_until = old->ejected_until;
			clock_timer_at(nb->eject_timer, nb->ejected_until);
		}
		/* The check in flight is the old backend's; check anew. */
		nb->check_seq = old->check_seq;
		nb->waiters = old->waiters;
		old->waiters = NULL;
		nb->stuck = 0;
		nb->order = old->order;
		nb->kept = 1;
	}
	for (b = st.list; b != NULL; b = old) {
		old = b->next;
		b->next = NULL;
		detach(b);
	}
	st.list = list;

	for (b = st.list; b != NULL; b = b->next) {
		backend_metrics(b);
		if (b->kept) {
			clock_timer_after(b->check_timer,
			    (uint64_t)b->check.interval_ms);
			if (b->waiters != NULL)
				start_check(b);
		} else {
			b->active_healthy = 1;
			b->shown_healthy = 1;
			clock_timer_after(b->check_timer, 0);
		}
		metric_set(b->m_healthy, is_healthy(b));
		b->rr_current = 0;
		if (first && b->type == STORAGE_DIR) {
			char	*dir = strdup(b->path);

			if (dir != NULL && worker_submit(sweep_work, sweep_done,
			    dir) == -1)
				free(dir);
		}
	}
	st.applied = 1;
}

/* ---- start and stop ------------------------------------------------- */

/* 16 hex digits from the host name (FNV-1a), stable across restarts. */
static void
host_tag(char out[17])
{
	char		 host[256];
	uint64_t	 h = UINT64_C(14695981039346656037);
	const char	*p;

	if (gethostname(host, sizeof(host)) == -1)
		snprintf(host, sizeof(host), "localhost");
	host[sizeof(host) - 1] = '\0';
	for (p = host; *p != '\0'; p++) {
		h ^= (unsigned char)*p;
		h *= UINT64_C(1099511628211);
	}
	snprintf(out, 17, "%016llx", (unsigned long long)h);
}

int
storage_start(struct event_base *base)
{
	static const char *const lb[] = { "backend", NULL };
	static const char *const lbr[] = { "backend", "result", NULL };

	st.base = base;
	settings_defaults(&st.set);
	host_tag(st.host_tag);
	if (http_init(base) == -1)
		return (-1);
	st.f_healthy = metrics_family("ermd_storage_backend_healthy",
	    "1 while a storage backend passes its checks and is not ejected.",
	    METRIC_GAUGE, lb);
	st.f_puts = metrics_family("ermd_storage_puts_total",
	    "Attempts to store an object, by backend and result.",
	    METRIC_COUNTER, lbr);
	st.f_gets = metrics_family("ermd_storage_gets_total",
	    "Reads of an object from a backend, by result (a missing key "
	    "is not counted).", METRIC_COUNTER, lbr);
	st.f_checks = metrics_family("ermd_storage_checks_total",
	    "Active health checks, by backend and result.", METRIC_COUNTER,
	    lbr);
	st.f_ejections = metrics_family("ermd_storage_ejections_total",
	    "Passive ejections of a backend after reported failures.",
	    METRIC_COUNTER, lb);
	st.f_put_bytes = metrics_family("ermd_storage_put_bytes_total",
	    "Bytes stored, by backend.", METRIC_COUNTER, lb);
	st.m_fallbacks = metrics_series(metrics_family(
	    "ermd_storage_fallbacks_total",
	    "storage.put calls that stored on a backend other than the "
	    "first choice.", METRIC_COUNTER, NULL));
	st.started = 1;
	st.stopping = 0;
	return (0);
}

/* The http request of a put or get in flight, if any, ends now. */
static int
cancel_one(void)
{
	struct http_response	 r;
	struct put		*p;
	struct get		*g;

	memset(&r, 0, sizeof(r));
	r.err = ECANCELED;
	r.error = "the daemon is shutting down";
	r.body = "";
	for (p = st.puts; p != NULL; p = p->next)
		if (p->req != NULL) {
			http_cancel(p->req);
			http_put_done(&r, p);
			return (1);
		}
	for (g = st.gets; g != NULL; g = g->next)
		if (g->req != NULL) {
			http_cancel(g->req);
			http_get_done(&r, g);
			return (1);
		}
	return (0);
}

void
storage_stop(void)
{
	struct backend	*b, *next;

	if (!st.started)
		return;
	st.stopping = 1;
	/* Copies on the workers finish (worker_shutdown delivers them). */
	while (cancel_one())
		;
	for (b = st.list; b != NULL; b = next) {
		next = b->next;
		if (b->checking != NULL && b->type == STORAGE_HTTP) {
			http_cancel(b->checking->req);
			check_free(b->checking);
			b->checking = NULL;
		}
		detach(b);
	}
	st.list = NULL;
	http_shutdown();
	st.started = 0;
}
