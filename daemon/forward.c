/*
 * Forwarding to Supabase: the outbox and one forwarder per table; see
 * forward.h.
 *
 * Each table has a lane. A lane sends one batch at a time: the oldest rows
 * of its kind that are neither delivered nor dead-lettered, at most
 * batch_max_rows (or the lane's reduced cap) and batch_max_bytes. A batch
 * goes when the lane holds batch_max_rows rows, or flush_interval_ms after
 * the first row came. Its rows leave the outbox only in the store job that
 * follows a 2xx, so a crash at any point resends them, and the resend is
 * harmless: rows are keyed by the UUID ermd made and sent with
 * `on_conflict=id` and `resolution=ignore-duplicates`.
 *
 * Responses (BEHAVIOUR.md section 6): a transport error, 408, 429, 5xx
 * gateway classes and 520-524 retry the batch after a full-jitter backoff
 * (base 1 s, cap 5 min, no limit on attempts) and never before Retry-After
 * (capped at 24 h); a 500 with 57014 and a 413 halve the lane's cap (sticky
 * until a reload); a single row still refused with 413 is dead-lettered.
 * 401, 403, 404 PGRST205 and 400 PGRST204 pause the lane (rows kept, an
 * alert raised, retried every 5 min and on reload). Any other 4xx bisects:
 * the cap halves until a single row is refused on its own, which is
 * dead-lettered (kept in the outbox with dead = 1, counted, alerted); the
 * cap then returns to the configured size. All timers are on the daemon
 * clock; only the HTTP I/O runs in real time.
 */

#include <sys/stat.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "classify.h"
#include "clock.h"
#include "config.h"
#include "erm_proto.h"
#include "errors.h"
#include "events.h"
#include "forward.h"
#include "http.h"
#include "log.h"
#include "metrics.h"
#include "op.h"
#include "opts.h"
#include "report.h"
#include "store.h"
#include "uuid.h"

#define BACKOFF_BASE_MS		1000
#define BACKOFF_CAP_MS		300000
#define RETRY_AFTER_CAP_MS	INT64_C(86400000)
#define PAUSE_RETRY_MS		300000
#define KEY_MAX			4096

static const char *const kind_names[FWD_NKINDS] = {
	"errors", "recoveries", "alerts"
};

/* Every column ermd may send, per table: the `columns` parameter. */
static const char *const kind_columns[FWD_NKINDS] = {
	"id,at,host,operation,category,severity,message,errno,errno_name,"
	    "http_status,exit_code,signal,exception,retry_after_ms,path,"
	    "context,strategy,fallback_strategy,matched",
	"id,op,host,operation,state,reason,attempts,recovered,category,"
	    "strategy,started_at,finished_at,errors,backups",
	"id,at,host,key,kind,severity,message,details",
};

struct settings {
	char	*url;
	char	*key_file;
	char	*table[FWD_NKINDS];
	char	*ca_file;
	int64_t	 batch_max_rows;
	int64_t	 batch_max_bytes;
	int64_t	 flush_interval_ms;
	int64_t	 timeout_ms;
	int64_t	 connect_timeout_ms;
	int64_t	 outbox_max_rows;
};

/* The integer keys; str_keys are checked by supabase_check. */
#define C(f)	offsetof(struct settings, f)
static const struct opt supabase_opts[] = {
	{ "batch_max_rows", OPT_INT, 1, 100000, C(batch_max_rows), NULL },
	{ "batch_max_bytes", OPT_INT, 1024, 64 << 20, C(batch_max_bytes),
	    NULL },
	{ "flush_interval_ms", OPT_INT, 0, 3600000, C(flush_interval_ms),
	    NULL },
	{ "timeout_ms", OPT_INT, 100, 3600000, C(timeout_ms), NULL },
	{ "connect_timeout_ms", OPT_INT, 100, 3600000, C(connect_timeout_ms),
	    NULL },
	{ "outbox_max_rows", OPT_INT, 1, 1000000000, C(outbox_max_rows),
	    NULL },
	{ NULL, OPT_INT, 0, 0, 0, NULL }
};
#undef C

/* The strings are set by forward_apply. */
static const struct settings supabase_defaults = {
	.batch_max_rows = 500,
	.batch_max_bytes = 524288,
	.flush_interval_ms = 1000,
	.timeout_ms = 30000,
	.connect_timeout_ms = 10000,
	.outbox_max_rows = 1000000,
};

static const char *const str_keys[] = {
	"url", "key_file", "errors_table", "recoveries_table", "alerts_table",
	"ca_file", NULL
};

static const char *const supabase_keys[] = {
	"url", "key_file", "errors_table", "recoveries_table", "alerts_table",
	"ca_file", "batch_max_rows", "batch_max_bytes", "flush_interval_ms",
	"timeout_ms", "connect_timeout_ms", "outbox_max_rows", NULL
};

struct batch {
	int64_t		*seq;
	char		**id;
	size_t		 n;
};

struct lane {
	enum fwd_kind		 kind;
	struct clock_timer	*timer;		/* backoffs, flush interval */
	struct event		*now_ev;	/* "send at once" */
	struct http_req		*req;
	int			 busy;		/* a batch in flight or settling */
	int			 backing_off;
	int			 paused;
	char			 pause_reason[200];
	int			 attempt;	/* failures in a row */
	int64_t			 cap;		/* 0: batch_max_rows */
	int			 bisecting;
	int64_t			 backlog;
	struct batch		 b;
	struct metric		*m_sent, *m_fail, *m_dead;
};

static struct {
	struct settings		 set;
	char			*key;		/* never logged */
	char			 host[256];
	int			 enabled;
	int			 running;
	int			 http_up;
	struct lane		 lane[FWD_NKINDS];
	uint64_t		 forwarded, failures, dropped, dead;
	char			 last_error[256];
	int64_t			 last_error_at;
	int			 dropping;
	forward_alert_fn	 alert;
	struct metric		*m_dropped;
} fw;

static void	lane_kick(struct lane *, int now);
static void	lane_send(struct lane *);

/* ---- config ------------------------------------------------------------- */

static int
is_str_key(const char *key)
{
	size_t	i;

	for (i = 0; str_keys[i] != NULL; i++)
		if (strcmp(str_keys[i], key) == 0)
			return (1);
	return (0);
}

/* A PostgREST table name: what may go in a URL path unescaped. */
static int
table_name_ok(const char *s)
{
	size_t	i;

	if (s[0] == '\0' || strlen(s) > 63)
		return (0);
	for (i = 0; s[i] != '\0'; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '_')
			return (0);
	return (1);
}

static int
supabase_check(const char *section, const char *key, const char *value,
    char *err, size_t errsz)
{
	struct settings	scratch;

	(void)section;
	if (is_str_key(key)) {
		if (strcmp(key, "url") == 0 && value[0] != '\0' &&
		    strncmp(value, "http://", 7) != 0 &&
		    strncmp(value, "https://", 8) != 0) {
			snprintf(err, errsz, "url: '%s' is not an http:// or "
			    "https:// URL", value);
			return (-1);
		}
		if (strstr(key, "_table") != NULL && !table_name_ok(value)) {
			snprintf(err, errsz, "%s: '%s' is not a table name "
			    "(letters, digits, _)", key, value);
			return (-1);
		}
		return (0);
	}
	return (opts_check_conf(supabase_opts, &scratch, key, value, err,
	    errsz));
}

static const struct config_entry *
entry(const struct config *cfg, const char *key)
{
	const struct config_entry	*e = NULL;
	size_t				 i;

	/* The last one wins, as for every other key. */
	for (i = 0; i < cfg->nentries; i++)
		if (strcmp(cfg->entries[i].section, "supabase") == 0 &&
		    strcmp(cfg->entries[i].key, key) == 0)
			e = &cfg->entries[i];
	return (e);
}

/*
 * The key's file: key_file, else $CREDENTIALS_DIRECTORY/supabase_key.
 * Returns 0 with path filled, or -1 when there is none.
 */
static int
key_path(const char *key_file, char *path, size_t sz)
{
	const char	*cd;

	if (key_file != NULL && key_file[0] != '\0') {
		if ((size_t)snprintf(path, sz, "%s", key_file) >= sz)
			return (-1);
		return (0);
	}
	if ((cd = getenv("CREDENTIALS_DIRECTORY")) == NULL || cd[0] == '\0')
		return (-1);
	if ((size_t)snprintf(path, sz, "%s/supabase_key", cd) >= sz)
		return (-1);
	return (0);
}

/*
 * Read the key from path: refused when the file is not a regular file or
 * can be read by group or others. Returns a malloc'ed key with surrounding
 * blanks removed, or NULL with a message in err (never the key).
 */
static char *
read_key(const char *path, char *err, size_t errsz)
{
	struct stat	 st;
	char		 buf[KEY_MAX + 1], *s, *e;
	ssize_t		 n;
	int		 fd;

	if ((fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) == -1) {
		snprintf(err, errsz, "key file %s: %s", path, strerror(errno));
		return (NULL);
	}
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
		snprintf(err, errsz, "key file %s: not a regular file", path);
		close(fd);
		return (NULL);
	}
	if (st.st_mode & (S_IRWXG | S_IRWXO)) {
		snprintf(err, errsz, "key file %s: readable by group or others "
		    "(mode %04o); chmod 600 it", path,
		    (unsigned)(st.st_mode & 07777));
		close(fd);
		return (NULL);
	}
	n = read(fd, buf, KEY_MAX);
	close(fd);
	if (n < 0) {
		snprintf(err, errsz, "key file %s: %s", path, strerror(errno));
		return (NULL);
	}
	buf[n] = '\0';
	for (s = buf; *s != '\0' && isspace((unsigned char)*s); s++)
		;
	for (e = s + strlen(s); e > s && isspace((unsigned char)e[-1]); e--)
		;
	*e = '\0';
	if (*s == '\0' || strpbrk(s, "\r\n") != NULL) {
		snprintf(err, errsz, "key file %s: %s", path, *s == '\0' ?
		    "empty" : "more than one line");
		explicit_bzero(buf, sizeof(buf));
		return (NULL);
	}
	s = strdup(s);
	explicit_bzero(buf, sizeof(buf));
	if (s == NULL)
		snprintf(err, errsz, "out of memory");
	return (s);
}

/* Checks across keys: a url needs a key, and the key file must be safe. */
static void
validate(struct config *cfg)
{
	const struct config_entry	*url, *kf;
	char				 path[PATH_MAX], err[512], *k;

	if ((url = entry(cfg, "url")) == NULL || url->value[0] == '\0')
		return;
	kf = entry(cfg, "key_file");
	if (key_path(kf != NULL ? kf->value : NULL, path, sizeof(path)) ==
	    -1) {
		config_add_error(cfg, url->file, url->line, "[supabase]: url "
		    "needs key_file (or $CREDENTIALS_DIRECTORY/supabase_key)");
		return;
	}
	if ((k = read_key(path, err, sizeof(err))) == NULL) {
		config_add_error(cfg, kf != NULL ? kf->file : url->file,
		    kf != NULL ? kf->line : url->line, "[supabase]: %s", err);
		return;
	}
	explicit_bzero(k, strlen(k));
	free(k);
}

static void
settings_free(struct settings *s)
{
	int	i;

	free(s->url);
	free(s->key_file);
	free(s->ca_file);
	for (i = 0; i < FWD_NKINDS; i++)
		free(s->table[i]);
	memset(s, 0, sizeof(*s));
}

static char *
str_or(const struct config *cfg, const char *key, const char *def)
{
	const struct config_entry	*e = entry(cfg, key);

	if (e == NULL)
		return (def != NULL ? strdup(def) : NULL);
	return (strdup(e->value));
}

/* An optional file's path: NULL when absent or empty (the shipped config
 * shows these keys as "key ="). */
static char *
path_or_null(const struct config *cfg, const char *key)
{
	const struct config_entry	*e = entry(cfg, key);

	if (e == NULL || e->value[0] == '\0')
		return (NULL);
	return (strdup(e->value));
}

static void
forward_apply(const struct config *cfg)
{
	struct settings	s;
	char		path[PATH_MAX], err[512];
	size_t		i;
	int		k;

	s = supabase_defaults;
	opts_from_config(supabase_opts, &s, cfg, "supabase");
	s.url = str_or(cfg, "url", "");
	s.key_file = path_or_null(cfg, "key_file");
	s.ca_file = path_or_null(cfg, "ca_file");
	s.table[FWD_ERRORS] = str_or(cfg, "errors_table", "erm_errors");
	s.table[FWD_RECOVERIES] = str_or(cfg, "recoveries_table",
	    "erm_recoveries");
	s.table[FWD_ALERTS] = str_or(cfg, "alerts_table", "erm_alerts");
	/* A trailing slash would double in the request's path. */
	if (s.url != NULL)
		for (i = strlen(s.url); i > 0 && s.url[i - 1] == '/'; i--)
			s.url[i - 1] = '\0';
	settings_free(&fw.set);
	fw.set = s;
	if (fw.key != NULL) {
		explicit_bzero(fw.key, strlen(fw.key));
		free(fw.key);
		fw.key = NULL;
	}
	fw.enabled = 0;
	if (s.url != NULL && s.url[0] != '\0') {
		if (key_path(s.key_file, path, sizeof(path)) == -1 ||
		    (fw.key = read_key(path, err, sizeof(err))) == NULL)
			log_warnx("supabase: forwarding off: %s",
			    fw.key == NULL ? err : "no key");
		else
			fw.enabled = 1;
	}
	/* A reload resumes paused lanes and resets the halved caps. */
	for (k = 0; k < FWD_NKINDS; k++) {
		struct lane	*l = &fw.lane[k];

		if (l->paused) {
			l->paused = 0;
			l->backing_off = 0;
			l->attempt = 0;
			if (l->timer != NULL)
				clock_timer_cancel(l->timer);
		}
		l->cap = 0;
		l->bisecting = 0;
		if (fw.running)
			lane_kick(l, 1);
	}
}

void
forward_register(void)
{
	static const struct config_kind	kind = {
		"supabase", 0, supabase_check, supabase_keys, forward_apply
	};

	config_register_kind(&kind);
	config_register_validator(validate);
}

int
forward_enabled(void)
{
	return (fw.enabled);
}

void
forward_set_alert(forward_alert_fn fn)
{
	fw.alert = fn;
}

/* ---- rows --------------------------------------------------------------- */

const char *
forward_time(int64_t ms, char *buf, size_t sz)
{
	struct tm	tm;
	time_t		t = (time_t)(ms / 1000);

	gmtime_r(&t, &tm);
	snprintf(buf, sz, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
	    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
	    tm.tm_min, tm.tm_sec, (int)(ms % 1000));
	return (buf);
}

const char *
forward_host(void)
{
	if (fw.host[0] == '\0' && gethostname(fw.host, sizeof(fw.host)) == -1)
		snprintf(fw.host, sizeof(fw.host), "unknown");
	fw.host[sizeof(fw.host) - 1] = '\0';
	return (fw.host);
}

char *
forward_error_row(const struct error_report *r)
{
	json_t		*row, *eo, *v;
	char		 at[40], *text;
	const char	*name;
	int		 num;

	if (!fw.enabled)
		return (NULL);
	row = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s}",
	    "id", r->id, "at", forward_time(r->at, at, sizeof(at)),
	    "host", forward_host(), "operation", r->operation,
	    "category", category_name(r->category),
	    "severity", severity_names[r->severity],
	    "strategy", strategy_name(r->primary), "matched", r->matched);
	if (row == NULL)
		return (NULL);
	if (r->fallback != STRAT_NONE)
		json_object_set_new(row, "fallback_strategy",
		    json_string(strategy_name(r->fallback)));
	if (r->message != NULL)
		json_object_set_new(row, "message", json_string(r->message));
	if (r->path != NULL)
		json_object_set_new(row, "path", json_string(r->path));
	if (r->context != NULL && (v = erm_json_parse_text(r->context)) != NULL)
		json_object_set_new(row, "context", v);
	if ((eo = erm_json_parse_text(r->error)) != NULL) {
		if ((v = json_object_get(eo, "errno")) != NULL) {
			if (json_is_string(v)) {
				name = json_string_value(v);
				num = errno_from_name(name);
			} else {
				num = (int)json_integer_value(v);
				name = errno_to_name(num);
			}
			if (num >= 0)
				json_object_set_new(row, "errno",
				    json_integer(num));
			if (name != NULL)
				json_object_set_new(row, "errno_name",
				    json_string(name));
		}
		if ((v = json_object_get(eo, "http_status")) != NULL)
			json_object_set(row, "http_status", v);
		if ((v = json_object_get(eo, "exit_code")) != NULL)
			json_object_set(row, "exit_code", v);
		if ((v = json_object_get(eo, "signal")) != NULL)
			json_object_set(row, "signal", v);
		if ((v = json_object_get(eo, "exception")) != NULL)
			json_object_set(row, "exception", v);
		if ((v = json_object_get(eo, "retry_after_ms")) != NULL)
			json_object_set(row, "retry_after_ms", v);
		json_decref(eo);
	}
	text = erm_json_text(row, 1 << 24);
	json_decref(row);
	return (text);
}

int
forward_tx_enqueue(struct store_tx *tx, enum fwd_kind kind, const char *id,
    const char *body, int severity, int64_t now)
{
	return (store_tx_exec(tx, "INSERT INTO outbox (kind, row_id, body, "
	    "severity, created_at) VALUES (?, ?, ?, ?, ?)", "ittii",
	    (int64_t)kind, id, body, (int64_t)severity, now));
}

char *
forward_recovery_row(const struct op *op)
{
	json_t		*row, *last;
	char		 a[40], b[40], *text;
	const char	*cat;

	if (!fw.enabled)
		return (NULL);
	row = json_pack("{s:s, s:s, s:s, s:s, s:s, s:i, s:b, s:s, s:s,"
	    " s:O, s:O}", "id", op->id, "op", op->id, "host", forward_host(),
	    "operation", op->operation, "state", op_state_name(op->state),
	    "attempts", op->attempts, "recovered",
	    op->state == OP_SUCCEEDED && op->failures > 0, "started_at",
	    forward_time((int64_t)op->started_at, a, sizeof(a)),
	    "finished_at", forward_time((int64_t)op->finished_at, b,
	    sizeof(b)), "errors", op->errors, "backups", op->backups);
	if (row == NULL)
		return (NULL);
	if (op->reason[0] != '\0')
		json_object_set_new(row, "reason", json_string(op->reason));
	last = json_array_get(op->errors, json_array_size(op->errors) - 1);
	if ((cat = json_string_value(json_object_get(last, "category"))) !=
	    NULL)
		json_object_set_new(row, "category", json_string(cat));
	text = erm_json_text(row, 1 << 24);
	json_decref(row);
	return (text);
}

/* ---- the outbox bound --------------------------------------------------- */

struct drop_job {
	int64_t	n;
	int64_t	dropped;
	int64_t	backlog[FWD_NKINDS];
};

static int
backlog_row(const struct store_row *row, void *arg)
{
	int64_t	*b = arg;
	int64_t	 k = store_row_int(row, 0);

	if (k >= 0 && k < FWD_NKINDS)
		b[k] = store_row_int(row, 1);
	return (0);
}

/*
 * Past outbox_max_rows the oldest undelivered rows of the lowest severity
 * go, counted (ermd_forward_dropped_total) and logged: never silently.
 */
static int
drop_run(struct store_tx *tx, void *arg)
{
	struct drop_job	*d = arg;

	if (store_tx_exec(tx, "DELETE FROM outbox WHERE seq IN (SELECT seq "
	    "FROM outbox WHERE dead = 0 ORDER BY severity, seq LIMIT ?)", "i",
	    d->n) == -1)
		return (-1);
	d->dropped = store_tx_changes(tx);
	return (store_tx_query(tx, backlog_row, d->backlog, "SELECT kind, "
	    "count(*) FROM outbox WHERE dead = 0 GROUP BY kind", NULL));
}

static void
drop_done(void *arg, const struct store_result *res)
{
	struct drop_job	*d = arg;
	int		 k;

	fw.dropping = 0;
	if (res->ok) {
		for (k = 0; k < FWD_NKINDS; k++)
			fw.lane[k].backlog = d->backlog[k];
		fw.dropped += (uint64_t)d->dropped;
		if (fw.m_dropped != NULL)
			metric_add(fw.m_dropped, (double)d->dropped);
		log_warnx("supabase: outbox over outbox_max_rows = %lld: "
		    "dropped the %lld oldest rows of the lowest severity",
		    (long long)fw.set.outbox_max_rows, (long long)d->dropped);
	}
	free(d);
}

static int64_t
backlog_total(void)
{
	int64_t	n = 0;
	int	k;

	for (k = 0; k < FWD_NKINDS; k++)
		n += fw.lane[k].backlog;
	return (n);
}

static void
bound_outbox(void)
{
	struct drop_job	*d;
	int64_t		 over = backlog_total() - fw.set.outbox_max_rows;

	if (over <= 0 || fw.dropping || (d = calloc(1, sizeof(*d))) == NULL)
		return;
	d->n = over;
	fw.dropping = 1;
	if (store_submit(drop_run, drop_done, d) == -1) {
		fw.dropping = 0;
		free(d);
	}
}

void
forward_enqueued(enum fwd_kind kind, int n)
{
	fw.lane[kind].backlog += n;
	if (!fw.running)
		return;
	bound_outbox();
	lane_kick(&fw.lane[kind], 0);
}

/* ---- alerts of the forwarder -------------------------------------------- */

static void
raise_alert(const char *kind, const char *key, const char *severity,
    const char *message, json_t *details)
{
	if (fw.alert != NULL) {
		fw.alert(kind, key, severity, message, details);
		return;
	}
	log_warnx("alert %s: %s", key, message);
	events_emit(EV_ALERT, json_pack("{s:s, s:s, s:s, s:s, s:O?}", "kind",
	    kind, "key", key, "severity", severity, "message", message,
	    "details", details));
	json_decref(details);
}

/* ---- lanes -------------------------------------------------------------- */

static void
batch_clear(struct batch *b)
{
	size_t	i;

	for (i = 0; i < b->n; i++)
		free(b->id[i]);
	free(b->id);
	free(b->seq);
	memset(b, 0, sizeof(*b));
}

static int64_t
lane_cap(const struct lane *l)
{
	return (l->cap > 0 && l->cap < fw.set.batch_max_rows ? l->cap :
	    fw.set.batch_max_rows);
}

static void
lane_timer(void *arg)
{
	struct lane	*l = arg;

	if (l->backing_off) {
		l->backing_off = 0;
		l->paused = 0;		/* a paused lane tries again */
	}
	lane_send(l);
}

static void
lane_now(evutil_socket_t fd, short ev, void *arg)
{
	(void)fd;
	(void)ev;
	lane_send(arg);
}

/*
 * Decide when the lane sends next: at once when it is full (or now is
 * asked), else flush_interval_ms after its first waiting row. "At once"
 * is a zero timeout on the loop, not a daemon-clock timer, so that it
 * happens under --manual-clock too.
 */
static void
lane_kick(struct lane *l, int now)
{
	static const struct timeval	zero = { 0, 0 };

	if (!fw.running || !fw.enabled || l->busy || l->backing_off ||
	    l->paused || l->backlog <= 0)
		return;
	if (now || l->backlog >= lane_cap(l) || fw.set.flush_interval_ms == 0) {
		clock_timer_cancel(l->timer);
		evtimer_add(l->now_ev, &zero);
	} else if (!clock_timer_pending(l->timer))
		clock_timer_after(l->timer,
		    (uint64_t)fw.set.flush_interval_ms);
}

static void
set_last_error(const struct lane *l, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
set_last_error(const struct lane *l, const char *fmt, ...)
{
	va_list	ap;
	char	msg[200];

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(fw.last_error, sizeof(fw.last_error), "%s: %s",
	    fw.set.table[l->kind], msg);
	fw.last_error_at = (int64_t)clock_now_ms();
}

/* ---- settling a batch: delivered or dead-lettered ----------------------- */

struct settle {
	struct lane	*lane;		/* loop thread only */
	enum fwd_kind	 kind;
	struct batch	 b;
	int		 dead;		/* dead-letter instead of delete */
	char		 error[200];
	int64_t		 now;
};

static int
settle_run(struct store_tx *tx, void *arg)
{
	struct settle	*s = arg;
	size_t		 i;
	const char	*mark = NULL;

	if (!s->dead) {
		if (s->kind == FWD_ERRORS)
			mark = "UPDATE errors SET forwarded = 1 WHERE id = ?";
		else if (s->kind == FWD_RECOVERIES)
			mark = "UPDATE ops SET forwarded = 1 WHERE id = ?";
	}
	for (i = 0; i < s->b.n; i++) {
		if (s->dead) {
			if (store_tx_exec(tx, "UPDATE outbox SET dead = 1, "
			    "dead_at = ?, error = ? WHERE seq = ?", "iti",
			    s->now, s->error, s->b.seq[i]) == -1)
				return (-1);
			continue;
		}
		if (store_tx_exec(tx, "DELETE FROM outbox WHERE seq = ?", "i",
		    s->b.seq[i]) == -1)
			return (-1);
		if (mark != NULL && store_tx_exec(tx, mark, "t",
		    s->b.id[i]) == -1)
			return (-1);
	}
	return (0);
}

static void
settle_done(void *arg, const struct store_result *res)
{
	struct settle	*s = arg;
	struct lane	*l = s->lane;

	l->busy = 0;
	if (!fw.running) {
		batch_clear(&s->b);
		free(s);
		return;
	}
	if (!res->ok) {
		/* The rows stay; they go again (a resend is harmless). */
		log_warnx("supabase: %s: cannot record the outcome of a "
		    "batch: %s", fw.set.table[l->kind], res->msg);
		l->backing_off = 1;
		clock_timer_after(l->timer, BACKOFF_BASE_MS);
	} else if (s->dead) {
		l->backlog -= (int64_t)s->b.n;
		fw.dead += s->b.n;
		metric_add(l->m_dead, (double)s->b.n);
		lane_kick(l, 1);
	} else {
		l->backlog -= (int64_t)s->b.n;
		fw.forwarded += s->b.n;
		metric_add(l->m_sent, (double)s->b.n);
		lane_kick(l, 1);
	}
	if (l->backlog < 0)
		l->backlog = 0;
	batch_clear(&s->b);
	free(s);
}

static void
settle(struct lane *l, int dead, const char *error)
{
	struct settle	*s;

	if ((s = calloc(1, sizeof(*s))) == NULL) {
		l->busy = 0;
		batch_clear(&l->b);
		return;
	}
	s->lane = l;
	s->kind = l->kind;
	s->b = l->b;
	memset(&l->b, 0, sizeof(l->b));
	s->dead = dead;
	snprintf(s->error, sizeof(s->error), "%s", error ? error : "");
	s->now = (int64_t)clock_now_ms();
	if (store_submit(settle_run, settle_done, s) == -1) {
		batch_clear(&s->b);
		free(s);
		l->busy = 0;
	}
}

/* ---- responses ---------------------------------------------------------- */

static int64_t
full_jitter(int attempt)
{
	int64_t	ceiling = BACKOFF_BASE_MS;
	int	i;

	for (i = 1; i < attempt && ceiling < BACKOFF_CAP_MS; i++)
		ceiling *= 2;
	if (ceiling > BACKOFF_CAP_MS)
		ceiling = BACKOFF_CAP_MS;
	return ((int64_t)arc4random_uniform((uint32_t)ceiling + 1));
}

static void
retry_later(struct lane *l, const struct http_response *resp)
{
	const char	*ra;
	int64_t		 delay, after;

	l->attempt++;
	delay = full_jitter(l->attempt);
	if (resp != NULL && (ra = http_header(resp, "Retry-After")) != NULL &&
	    http_retry_after_ms(ra, clock_now_ms(), &after) == 0) {
		if (after > RETRY_AFTER_CAP_MS)
			after = RETRY_AFTER_CAP_MS;
		if (after > delay)
			delay = after;
	}
	l->busy = 0;
	batch_clear(&l->b);
	l->backing_off = 1;
	clock_timer_after(l->timer, (uint64_t)delay);
}

/* The PostgREST/PostgreSQL code of an error body, if it is JSON. */
static void
body_code(const struct http_response *resp, char *code, size_t sz)
{
	json_t		*j;
	const char	*why, *c;

	code[0] = '\0';
	if (resp->body_len == 0 || resp->body[0] != '{')
		return;
	j = erm_json_parse((const uint8_t *)resp->body, resp->body_len,
	    ERM_MAX_DEPTH, &why);
	if ((c = json_string_value(json_object_get(j, "code"))) != NULL)
		snprintf(code, sz, "%s", c);
	json_decref(j);
}

static int
retryable_status(long st)
{
	return (st == 408 || st == 429 || st == 500 || st == 502 ||
	    st == 503 || st == 504 || (st >= 520 && st <= 524));
}

static void
pause_lane(struct lane *l, const char *why)
{
	char	key[128], msg[300];

	l->paused = 1;
	l->busy = 0;
	batch_clear(&l->b);
	snprintf(l->pause_reason, sizeof(l->pause_reason), "%s", why);
	log_warnx("supabase: forwarding to %s paused: %s (rows are kept; "
	    "retried every %d s and on config reload)", fw.set.table[l->kind],
	    why, PAUSE_RETRY_MS / 1000);
	snprintf(key, sizeof(key), "forward_paused:%s", fw.set.table[l->kind]);
	snprintf(msg, sizeof(msg), "forwarding to %s paused: %s",
	    fw.set.table[l->kind], why);
	raise_alert("forward_paused", key, "critical", msg,
	    json_pack("{s:s, s:s, s:I}", "table", fw.set.table[l->kind],
	    "reason", why, "backlog", (json_int_t)l->backlog));
	l->backing_off = 1;
	clock_timer_after(l->timer, PAUSE_RETRY_MS);
}

static void
dead_letter(struct lane *l, const char *why)
{
	char	key[128], msg[300];

	log_warnx("supabase: %s: row %s refused on its own (%s): "
	    "dead-lettered", fw.set.table[l->kind], l->b.id[0], why);
	snprintf(key, sizeof(key), "forward_dead_letter:%s",
	    fw.set.table[l->kind]);
	snprintf(msg, sizeof(msg), "a row for %s was refused and "
	    "dead-lettered: %s", fw.set.table[l->kind], why);
	raise_alert("forward_dead_letter", key, "error", msg,
	    json_pack("{s:s, s:s, s:s}", "table", fw.set.table[l->kind],
	    "id", l->b.id[0], "reason", why));
	l->cap = 0;
	l->bisecting = 0;
	settle(l, 1, why);
}

static void
sent(const struct http_response *resp, void *arg)
{
	struct lane	*l = arg;
	char		 code[64], what[128];
	size_t		 n = l->b.n;
	long		 st = resp->status;

	l->req = NULL;
	if (!fw.running) {
		batch_clear(&l->b);
		l->busy = 0;
		return;
	}
	if (resp->err == 0 && st >= 200 && st < 300) {
		l->attempt = 0;
		/*
		 * Bisecting: this half was clean, so try twice as many; a
		 * refusal halves again, until the bad row is alone.
		 */
		if (l->bisecting && (l->cap *= 2) >= fw.set.batch_max_rows) {
			l->cap = 0;
			l->bisecting = 0;
		}
		settle(l, 0, NULL);
		return;
	}
	fw.failures++;
	metric_inc(l->m_fail);
	if (resp->err != 0) {
		http_describe(resp, what, sizeof(what));
		set_last_error(l, "%s", what);
		retry_later(l, resp);
		return;
	}
	body_code(resp, code, sizeof(code));
	set_last_error(l, "HTTP %ld%s%s", st, code[0] ? " " : "", code);
	if (st == 500 && strcmp(code, "57014") == 0 && n > 1) {
		l->cap = (int64_t)n / 2;
		l->busy = 0;
		batch_clear(&l->b);
		lane_kick(l, 1);
	} else if (retryable_status(st))
		retry_later(l, resp);
	else if (st == 413) {
		if (n > 1) {
			l->cap = (int64_t)n / 2;
			l->busy = 0;
			batch_clear(&l->b);
			lane_kick(l, 1);
		} else
			dead_letter(l, "HTTP 413: the row alone is too large");
	} else if (st == 401 || st == 403 || (st == 404 &&
	    strcmp(code, "PGRST205") == 0) || (st == 400 &&
	    strcmp(code, "PGRST204") == 0)) {
		snprintf(what, sizeof(what), "HTTP %ld%s%s", st,
		    code[0] ? " " : "", code);
		pause_lane(l, what);
	} else if (st >= 400 && st < 500) {
		if (n > 1) {
			l->cap = (int64_t)n / 2;
			l->bisecting = 1;
			l->busy = 0;
			batch_clear(&l->b);
			lane_kick(l, 1);
		} else {
			snprintf(what, sizeof(what), "HTTP %ld%s%s", st,
			    code[0] ? " " : "", code);
			dead_letter(l, what);
		}
	} else
		retry_later(l, resp);	/* 1xx, 3xx, other 5xx */
}

/* ---- sending ------------------------------------------------------------ */

struct collect {
	struct lane	*l;
	struct erm_buf	 body;
	int64_t		 max_rows, max_bytes;
	int		 full;
};

static int
collect_row(const struct store_row *row, void *arg)
{
	struct collect	*c = arg;
	struct batch	*b = &c->l->b;
	const char	*text = store_row_text(row, 2);
	size_t		 len = strlen(text);

	/* The first row goes whatever its size: a 413 settles it. */
	if (b->n > 0 && c->body.len + len + 2 > (size_t)c->max_bytes) {
		c->full = 1;
		return (1);
	}
	if (erm_buf_add(&c->body, b->n == 0 ? "[" : ",", 1) == -1 ||
	    erm_buf_add(&c->body, text, len) == -1)
		return (1);
	b->seq[b->n] = store_row_int(row, 0);
	if ((b->id[b->n] = strdup(store_row_text(row, 1))) == NULL)
		return (1);
	b->n++;
	return (0);
}

static void
lane_send(struct lane *l)
{
	struct collect		 c;
	struct http_options	 o;
	struct http_body	 body;
	char			 url[2048], apikey[KEY_MAX + 16];
	char			 auth[KEY_MAX + 32], ua[64];
	const char		*hdrs[7];
	int64_t			 cap;

	if (!fw.running || !fw.enabled || l->busy || l->paused)
		return;
	cap = lane_cap(l);
	memset(&c, 0, sizeof(c));
	c.l = l;
	c.max_rows = cap;
	c.max_bytes = fw.set.batch_max_bytes;
	c.body.max = (size_t)fw.set.batch_max_bytes + (1 << 20);
	batch_clear(&l->b);
	if ((l->b.seq = calloc((size_t)cap, sizeof(*l->b.seq))) == NULL ||
	    (l->b.id = calloc((size_t)cap, sizeof(*l->b.id))) == NULL)
		goto fail;
	if (store_query(collect_row, &c, "SELECT seq, row_id, body FROM "
	    "outbox WHERE kind = ? AND dead = 0 ORDER BY seq LIMIT ?", "ii",
	    (int64_t)l->kind, cap) == -1)
		goto fail;
	if (l->b.n == 0) {
		l->backlog = 0;
		batch_clear(&l->b);
		erm_buf_free(&c.body);
		return;
	}
	if (erm_buf_add(&c.body, "]", 1) == -1)
		goto fail;
	if ((size_t)snprintf(url, sizeof(url), "%s/rest/v1/%s?on_conflict=id"
	    "&columns=%s", fw.set.url, fw.set.table[l->kind],
	    kind_columns[l->kind]) >= sizeof(url))
		goto fail;
	snprintf(apikey, sizeof(apikey), "apikey: %s", fw.key);
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", fw.key);
	snprintf(ua, sizeof(ua), "User-Agent: ermd/%s", ERMD_VERSION);
	hdrs[0] = apikey;
	hdrs[1] = auth;
	hdrs[2] = "Content-Type: application/json";
	hdrs[3] = "Prefer: return=minimal, resolution=ignore-duplicates, "
	    "missing=default";
	hdrs[4] = ua;
	hdrs[5] = NULL;
	memset(&o, 0, sizeof(o));
	o.timeout_ms = (long)fw.set.timeout_ms;
	o.connect_timeout_ms = (long)fw.set.connect_timeout_ms;
	o.ca_file = fw.set.ca_file;
	/* An error page may be large; its start is all the lane reads. */
	o.max_response_bytes = 65536;
	o.truncate_response = 1;
	o.resp_fd = -1;
	body.buf = c.body.p;
	body.len = c.body.len;
	body.fd = -1;
	l->busy = 1;
	l->req = http_request("POST", url, hdrs, &body, &o, sent, l);
	explicit_bzero(apikey, sizeof(apikey));
	explicit_bzero(auth, sizeof(auth));
	erm_buf_free(&c.body);
	if (l->req == NULL) {
		set_last_error(l, "cannot start a request: %s",
		    strerror(errno));
		retry_later(l, NULL);
	}
	return;
fail:
	erm_buf_free(&c.body);
	batch_clear(&l->b);
	log_warnx("supabase: %s: cannot build a batch", fw.set.table[l->kind]);
	l->backing_off = 1;
	clock_timer_after(l->timer, BACKOFF_BASE_MS);
}

/* ---- status, metrics, start and stop ------------------------------------ */

static void
report_status(json_t *s)
{
	json_t	*f, *backlog, *paused;
	int	 k;

	json_object_set_new(s, "outbox_backlog",
	    json_integer((json_int_t)backlog_total()));
	backlog = json_object();
	paused = json_array();
	for (k = 0; k < FWD_NKINDS; k++) {
		json_object_set_new(backlog, kind_names[k],
		    json_integer((json_int_t)fw.lane[k].backlog));
		if (fw.lane[k].paused && fw.set.table[k] != NULL)
			json_array_append_new(paused, json_pack("{s:s, s:s}",
			    "table", fw.set.table[k], "reason",
			    fw.lane[k].pause_reason));
	}
	f = json_pack("{s:b, s:o, s:o, s:I, s:I, s:I, s:I}", "enabled",
	    fw.enabled, "backlog", backlog, "paused", paused, "forwarded",
	    (json_int_t)fw.forwarded, "failures", (json_int_t)fw.failures,
	    "dead_letters", (json_int_t)fw.dead, "dropped",
	    (json_int_t)fw.dropped);
	if (f != NULL && fw.last_error[0] != '\0') {
		json_object_set_new(f, "last_error",
		    json_string(fw.last_error));
		json_object_set_new(f, "last_error_at",
		    json_integer((json_int_t)fw.last_error_at));
	}
	if (f != NULL)
		json_object_set_new(s, "forward", f);
}

static void
report_metrics(json_t *m)
{
	json_object_set_new(m, "outbox_backlog",
	    json_integer((json_int_t)backlog_total()));
	json_object_set_new(m, "forwarded_total",
	    json_integer((json_int_t)fw.forwarded));
	json_object_set_new(m, "forward_failures_total",
	    json_integer((json_int_t)fw.failures));
}

static const struct reporter reporter = { report_status, report_metrics };

static double
read_backlog(void)
{
	return ((double)backlog_total());
}

static int
dead_row(const struct store_row *row, void *arg)
{
	*(uint64_t *)arg = (uint64_t)store_row_int(row, 0);
	return (1);
}

void
forward_start(struct event_base *base)
{
	static const char *const lt[] = { "table", NULL };
	struct metric_family	*fs, *ff, *fd;
	int64_t			 backlog[FWD_NKINDS] = { 0, 0, 0 };
	int			 k;

	if (http_init(base) == -1)
		fatalx("supabase: cannot start the HTTP client");
	fw.http_up = 1;
	(void)forward_host();
	if (store_query(backlog_row, backlog, "SELECT kind, count(*) FROM "
	    "outbox WHERE dead = 0 GROUP BY kind", NULL) == -1 ||
	    store_query(dead_row, &fw.dead, "SELECT count(*) FROM outbox "
	    "WHERE dead = 1", NULL) == -1)
		log_warnx("supabase: cannot read the outbox");
	metrics_gauge_fn("ermd_outbox_backlog", "Rows in the outbox waiting "
	    "to be forwarded to Supabase.", read_backlog);
	fs = metrics_family("ermd_forwarded_total", "Rows delivered to "
	    "Supabase, by table.", METRIC_COUNTER, lt);
	ff = metrics_family("ermd_forward_failures_total", "Failed requests "
	    "to Supabase (each is retried, halved, paused or bisected), by "
	    "table.", METRIC_COUNTER, lt);
	fd = metrics_family("ermd_forward_dead_letters_total", "Rows refused "
	    "on their own and kept aside in the outbox, by table.",
	    METRIC_COUNTER, lt);
	fw.m_dropped = metrics_series(metrics_family(
	    "ermd_forward_dropped_total", "Undelivered rows dropped because "
	    "the outbox passed outbox_max_rows.", METRIC_COUNTER, NULL));
	for (k = 0; k < FWD_NKINDS; k++) {
		struct lane	*l = &fw.lane[k];

		l->kind = k;
		l->backlog = backlog[k];
		if ((l->timer = clock_timer_new(lane_timer, l)) == NULL ||
		    (l->now_ev = evtimer_new(base, lane_now, l)) == NULL)
			fatalx("supabase: out of memory");
		l->m_sent = metrics_series(fs, kind_names[k]);
		l->m_fail = metrics_series(ff, kind_names[k]);
		l->m_dead = metrics_series(fd, kind_names[k]);
	}
	report_register(&reporter);
	fw.running = 1;
	/* The config is applied after the modules start; it kicks the lanes. */
}

void
forward_stop(void)
{
	int	k;

	fw.running = 0;
	for (k = 0; k < FWD_NKINDS; k++) {
		if (fw.lane[k].req != NULL) {
			http_cancel(fw.lane[k].req);
			fw.lane[k].req = NULL;
		}
		batch_clear(&fw.lane[k].b);
		if (fw.lane[k].timer != NULL) {
			clock_timer_free(fw.lane[k].timer);
			fw.lane[k].timer = NULL;
		}
		if (fw.lane[k].now_ev != NULL) {
			event_free(fw.lane[k].now_ev);
			fw.lane[k].now_ev = NULL;
		}
	}
	if (fw.http_up) {
		http_shutdown();
		fw.http_up = 0;
	}
	if (fw.key != NULL) {
		explicit_bzero(fw.key, strlen(fw.key));
		free(fw.key);
		fw.key = NULL;
	}
}
