/* Alerts: rules, dedup, storage and sinks; see alerts.h. */

#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "alerts.h"
#include "clock.h"
#include "config.h"
#include "erm_proto.h"
#include "errors.h"
#include "events.h"
#include "forward.h"
#include "htab.h"
#include "http.h"
#include "log.h"
#include "metrics.h"
#include "op.h"
#include "opts.h"
#include "store.h"
#include "uuid.h"

/*
 * Dedup remembers each key raised within the last dedup_ms. The keys come
 * from breakers (one each, and there are at most [daemon] max_breakers at
 * once; twice that leaves room for idle ones evicted and others created
 * within one window), escalations (one per operation name), the error
 * rate (one) and forwarding (two per table). DEDUP_KEYS_OTHER is the share
 * of all but the breakers. Past the bound the key raised longest ago is
 * forgotten, so a storm of new names weakens dedup for the oldest key
 * only, instead of turning it off for every new one.
 */
#define DEDUP_KEYS_OTHER	4096
#define EXEC_ARGS_MAX	64
#define EXEC_RUNNING_MAX 16	/* sinks running at once; more are skipped */
/*
 * A webhook POST that meets a transport error, a 429 or a 5xx is sent
 * again, up to WEBHOOK_ATTEMPTS in all, after 1 s and then 5 s on the
 * daemon clock; at most WEBHOOK_PENDING alerts wait for a webhook at once
 * (past that a failure is not retried).
 */
#define WEBHOOK_ATTEMPTS	3
#define WEBHOOK_FIRST_DELAY_MS	1000
#define WEBHOOK_PENDING		64

struct settings {
	int64_t	error_rate_per_min;
	int64_t	dedup_ms;
	int64_t	webhook_timeout_ms;
	int64_t	exec_timeout_ms;
	char	*webhook_url;
	char	*exec;
};

/* The integer keys; webhook_url and exec are checked by alerts_check. */
#define C(f)	offsetof(struct settings, f)
static const struct opt alerts_opts[] = {
	{ "error_rate_per_min", OPT_INT, 0, 1000000000,
	    C(error_rate_per_min), NULL },
	{ "dedup_ms", OPT_INT, 0, 86400000, C(dedup_ms), NULL },
	{ "webhook_timeout_ms", OPT_INT, 100, 600000, C(webhook_timeout_ms),
	    NULL },
	{ "exec_timeout_ms", OPT_INT, 100, 600000, C(exec_timeout_ms), NULL },
	{ NULL, OPT_INT, 0, 0, 0, NULL }
};
#undef C

static const struct settings alerts_defaults = {
	.error_rate_per_min = 0,
	.dedup_ms = 300000,
	.webhook_timeout_ms = 5000,
	.exec_timeout_ms = 10000,
};

static const char *const alerts_keys[] = {
	"error_rate_per_min", "dedup_ms", "webhook_timeout_ms",
	"exec_timeout_ms", "webhook_url", "exec", NULL
};

/*
 * A key raised within dedup_ms. The entries are also on a list in the
 * order they were raised (the daemon clock never goes back), so the
 * oldest, whose window ends first, is at the head: expired keys and, at
 * the bound, the one to forget are found there in O(1).
 */
struct seen {
	struct hnode	 node;
	struct seen	*prev, *next;	/* al.oldest ... al.newest */
	char		*key;
	uint64_t	 at;		/* raised */
};

/* One alert on its way to the webhook. */
struct hook {
	struct hook		*prev, *next;
	char			*text;		/* the alert's JSON */
	char			*key;
	int			 attempt;	/* POSTs sent so far */
	int			 in_flight;
	struct clock_timer	*timer;		/* the next attempt */
};

struct child {
	pid_t		 pid;
	int		 pidfd;
	struct event	*ev_exit, *ev_timeout;
	char		 key[128];
};

static struct {
	struct settings		 set;
	struct htab		 seen;
	struct seen		*oldest, *newest;
	size_t			 seen_max;	/* from max_breakers */
	int			 seen_full;	/* at seen_max: said so */
	int			 running, http_up;
	struct event_base	*base;
	/* Errors per second over the last minute, on the daemon clock. */
	uint64_t		 rate_sec[60];
	uint32_t		 rate_n[60];
	struct child		*kids[EXEC_RUNNING_MAX];
	struct hook		*hooks;		/* sent or waiting to be */
	int			 nhooks;
	struct metric_family	*m_total;
	struct metric		*m_suppressed, *m_sink_fail;
} al;

/* ---- config ------------------------------------------------------------- */

/*
 * Split an exec line into words in place, as systemd's ExecStart= does:
 * blanks separate words; 'single quotes' keep everything literally,
 * "double quotes" and bare words take a backslash as an escape for the
 * next character. Returns the number of words (at most max), or -1 with
 * a message for an unterminated quote, a trailing backslash or too many
 * words.
 */
static int
split_words(char *s, char **argv, int max, char *err, size_t errsz)
{
	char	*r = s, *w = s, q;
	int	 argc = 0;

	for (;;) {
		while (*r == ' ' || *r == '\t')
			r++;
		if (*r == '\0')
			return (argc);
		if (argc == max) {
			snprintf(err, errsz, "exec: more than %d words", max);
			return (-1);
		}
		argv[argc++] = w;
		while (*r != '\0' && *r != ' ' && *r != '\t') {
			if (*r == '\'' || *r == '"') {
				q = *r++;
				while (*r != '\0' && *r != q) {
					if (q == '"' && *r == '\\' &&
					    r[1] != '\0')
						r++;
					*w++ = *r++;
				}
				if (*r == '\0') {
					snprintf(err, errsz, "exec: no closing "
					    "%c", q);
					return (-1);
				}
				r++;
			} else if (*r == '\\') {
				if (*++r == '\0') {
					snprintf(err, errsz, "exec: a "
					    "backslash at the end");
					return (-1);
				}
				*w++ = *r++;
			} else
				*w++ = *r++;
		}
		/* r is at a blank or the end; w never passes r. */
		if (*r != '\0')
			r++;
		*w++ = '\0';
	}
}

static int
alerts_check(const char *section, const char *key, const char *value,
    char *err, size_t errsz)
{
	struct settings	scratch;

	(void)section;
	if (strcmp(key, "webhook_url") == 0) {
		if (value[0] != '\0' && strncmp(value, "http://", 7) != 0 &&
		    strncmp(value, "https://", 8) != 0) {
			snprintf(err, errsz, "webhook_url: '%s' is not an "
			    "http:// or https:// URL", value);
			return (-1);
		}
		return (0);
	}
	if (strcmp(key, "exec") == 0) {
		char	*copy, *argv[EXEC_ARGS_MAX];
		int	 argc;

		if ((copy = strdup(value)) == NULL) {
			snprintf(err, errsz, "out of memory");
			return (-1);
		}
		argc = split_words(copy, argv, EXEC_ARGS_MAX, err, errsz);
		if (argc > 0 && argv[0][0] != '/') {
			snprintf(err, errsz, "exec: the program must be an "
			    "absolute path: '%s'", value);
			argc = -1;
		}
		free(copy);
		return (argc == -1 ? -1 : 0);
	}
	return (opts_check_conf(alerts_opts, &scratch, key, value, err,
	    errsz));
}

static void
alerts_apply(const struct config *cfg)
{
	struct settings	s;
	size_t		i;

	s = alerts_defaults;
	opts_from_config(alerts_opts, &s, cfg, "alerts");
	for (i = 0; i < cfg->nentries; i++) {
		const struct config_entry	*e = &cfg->entries[i];

		if (strcmp(e->section, "alerts") != 0)
			continue;
		if (strcmp(e->key, "webhook_url") == 0) {
			free(s.webhook_url);
			s.webhook_url = e->value[0] ? strdup(e->value) : NULL;
		} else if (strcmp(e->key, "exec") == 0) {
			free(s.exec);
			s.exec = e->value[0] ? strdup(e->value) : NULL;
		}
	}
	free(al.set.webhook_url);
	free(al.set.exec);
	al.set = s;
	/* A lower bound after a reload takes effect at the next raise. */
	al.seen_max = 2 * (size_t)cfg->max_breakers + DEDUP_KEYS_OTHER;
}

void
alerts_register(void)
{
	static const struct config_kind	kind = {
		"alerts", 0, alerts_check, alerts_keys, alerts_apply
	};

	config_register_kind(&kind);
	al.set = alerts_defaults;
}

/* ---- storage ------------------------------------------------------------ */

/*
 * An alert on its way to the store. The writer thread reads the copies
 * of its fields only; alert, for the event and the sinks once the row has
 * committed, is touched on the loop thread alone.
 */
struct alert_job {
	char	 id[UUID_STRLEN + 1];
	int64_t	 at;
	char	*key, *kind, *severity, *message, *details;
	char	*row;		/* the outbox row, or NULL */
	int	 sev;
	json_t	*alert;		/* new reference */
};

static void	deliver(const json_t *);

static void
job_free(struct alert_job *j)
{
	json_decref(j->alert);
	free(j->key);
	free(j->kind);
	free(j->severity);
	free(j->message);
	free(j->details);
	free(j->row);
	free(j);
}

static int
alert_run(struct store_tx *tx, void *arg)
{
	struct alert_job	*j = arg;

	if (store_tx_exec(tx, "INSERT OR IGNORE INTO alerts (id, at, key, "
	    "kind, severity, message, details) VALUES (?, ?, ?, ?, ?, ?, ?)",
	    "tittttt", j->id, j->at, j->key, j->kind, j->severity, j->message,
	    j->details) == -1)
		return (-1);
	if (j->row != NULL && forward_tx_enqueue(tx, FWD_ALERTS, j->id,
	    j->row, j->sev, j->at) == -1)
		return (-1);
	return (0);
}

/*
 * An alert that cannot be stored is not sent anywhere either: the sinks
 * must never tell of an alert the alerts table (and Supabase) will not
 * have. The log keeps its text, at critical level.
 */
static void
not_stored(const json_t *a, const char *why)
{
	log_crit("alert %s: cannot store it: %s; not sent: (%s) %s",
	    json_string_value(json_object_get(a, "key")), why,
	    json_string_value(json_object_get(a, "severity")),
	    json_string_value(json_object_get(a, "message")));
}

static void
alert_done(void *arg, const struct store_result *res)
{
	struct alert_job	*j = arg;

	if (!res->ok)
		not_stored(j->alert, res->msg);
	else {
		if (j->row != NULL)
			forward_enqueued(FWD_ALERTS, 1);
		deliver(j->alert);
	}
	job_free(j);
}

static int
severity_of(const char *s)
{
	int	i;

	for (i = 0; severity_names[i] != NULL; i++)
		if (strcmp(severity_names[i], s) == 0)
			return (i);
	return (SEV_ERROR);
}

/*
 * Store a (borrowed) and queue its outbox row; the event and the sinks
 * follow from alert_done once both have committed (BEHAVIOUR.md section
 * 6: stored locally first).
 */
static void
store_alert(json_t *a)
{
	struct alert_job	*j;
	json_t			*row;
	char			 at[40];

	if ((j = calloc(1, sizeof(*j))) == NULL) {
		not_stored(a, "out of memory");
		return;
	}
	j->alert = json_incref(a);
	snprintf(j->id, sizeof(j->id), "%s",
	    json_string_value(json_object_get(a, "id")));
	j->at = json_integer_value(json_object_get(a, "at"));
	j->key = strdup(json_string_value(json_object_get(a, "key")));
	j->kind = strdup(json_string_value(json_object_get(a, "kind")));
	j->severity = strdup(json_string_value(json_object_get(a,
	    "severity")));
	j->message = strdup(json_string_value(json_object_get(a, "message")));
	j->details = erm_json_text(json_object_get(a, "details"), 1 << 20);
	j->sev = severity_of(j->severity);
	if (forward_enabled()) {
		row = json_deep_copy(a);
		json_object_set_new(row, "at", json_string(forward_time(j->at,
		    at, sizeof(at))));
		json_object_set_new(row, "host", json_string(forward_host()));
		j->row = erm_json_text(row, 1 << 20);
		json_decref(row);
	}
	if (j->key == NULL || j->kind == NULL || j->severity == NULL ||
	    j->message == NULL || j->details == NULL ||
	    (forward_enabled() && j->row == NULL)) {
		not_stored(a, "out of memory, or too large");
		job_free(j);
	} else if (store_submit(alert_run, alert_done, j) == -1) {
		not_stored(a, "the store is closed");
		job_free(j);
	}
}

/* ---- sinks -------------------------------------------------------------- */

static void
hook_free(struct hook *h)
{
	if (h->prev != NULL)
		h->prev->next = h->next;
	else
		al.hooks = h->next;
	if (h->next != NULL)
		h->next->prev = h->prev;
	al.nhooks--;
	clock_timer_free(h->timer);
	free(h->text);
	free(h->key);
	free(h);
}

static void	hook_send(struct hook *);

static void
hook_again(void *arg)
{
	hook_send(arg);
}

static void
webhook_done(const struct http_response *resp, void *arg)
{
	struct hook	*h = arg;
	char		 what[128];
	uint64_t	 delay;
	int		 k;

	h->in_flight = 0;
	if (resp->err == 0 && resp->status >= 200 && resp->status < 300) {
		hook_free(h);
		return;
	}
	if (al.running && resp->err != ECANCELED &&
	    h->attempt < WEBHOOK_ATTEMPTS && (resp->err != 0 ||
	    resp->status == 429 || resp->status >= 500)) {
		for (delay = WEBHOOK_FIRST_DELAY_MS, k = 1; k < h->attempt;
		    k++)
			delay *= 5;
		log_info("alert %s: webhook: %s; again in %llu ms", h->key,
		    http_describe(resp, what, sizeof(what)),
		    (unsigned long long)delay);
		clock_timer_after(h->timer, delay);
		return;
	}
	metric_inc(al.m_sink_fail);
	log_warnx("alert %s: webhook: %s%s", h->key,
	    http_describe(resp, what, sizeof(what)), h->attempt > 1 ?
	    " (the last attempt)" : "");
	hook_free(h);
}

static void
hook_send(struct hook *h)
{
	static const char *const hdrs[] = {
		"Content-Type: application/json", "User-Agent: ermd/" ERMD_VERSION,
		NULL
	};
	struct http_options	 o;
	struct http_body	 body;

	memset(&o, 0, sizeof(o));
	o.timeout_ms = (long)al.set.webhook_timeout_ms;
	o.connect_timeout_ms = (long)al.set.webhook_timeout_ms;
	o.max_response_bytes = 65536;
	o.resp_fd = -1;
	body.buf = h->text;
	body.len = strlen(h->text);
	body.fd = -1;
	h->attempt++;
	if (al.set.webhook_url == NULL || !al.http_up ||
	    http_request("POST", al.set.webhook_url, hdrs, &body, &o,
	    webhook_done, h) == NULL) {
		metric_inc(al.m_sink_fail);
		log_warnx("alert %s: webhook: cannot start the request",
		    h->key);
		hook_free(h);
		return;
	}
	h->in_flight = 1;
}

static void
webhook(const json_t *a)
{
	struct hook	*h;

	if (al.set.webhook_url == NULL || !al.http_up)
		return;
	if ((h = calloc(1, sizeof(*h))) == NULL ||
	    (h->text = erm_json_text(a, 1 << 20)) == NULL ||
	    (h->key = strdup(json_string_value(json_object_get(a,
	    "key")))) == NULL || (h->timer = clock_timer_new(hook_again,
	    h)) == NULL) {
		if (h != NULL) {
			free(h->text);
			free(h->key);
		}
		free(h);
		metric_inc(al.m_sink_fail);
		log_warnx("alert: webhook: out of memory");
		return;
	}
	/* Past the bound, this one gets a single attempt. */
	if (al.nhooks >= WEBHOOK_PENDING)
		h->attempt = WEBHOOK_ATTEMPTS - 1;
	if ((h->next = al.hooks) != NULL)
		h->next->prev = h;
	al.hooks = h;
	al.nhooks++;
	hook_send(h);
}

static void
child_free(struct child *c)
{
	int	i;

	for (i = 0; i < EXEC_RUNNING_MAX; i++)
		if (al.kids[i] == c)
			al.kids[i] = NULL;
	if (c->ev_exit != NULL)
		event_free(c->ev_exit);
	if (c->ev_timeout != NULL)
		event_free(c->ev_timeout);
	if (c->pidfd != -1)
		close(c->pidfd);
	free(c);
}

static void
child_exited(evutil_socket_t fd, short ev, void *arg)
{
	struct child	*c = arg;
	int		 status = 0;

	(void)fd;
	(void)ev;
	while (waitpid(c->pid, &status, 0) == -1 && errno == EINTR)
		;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		metric_inc(al.m_sink_fail);
		if (WIFSIGNALED(status))
			log_warnx("alert %s: exec: killed by signal %d%s",
			    c->key, WTERMSIG(status), WTERMSIG(status) ==
			    SIGKILL ? " (timeout?)" : "");
		else
			log_warnx("alert %s: exec: exit status %d", c->key,
			    WEXITSTATUS(status));
	}
	child_free(c);
}

static void
child_timeout(evutil_socket_t fd, short ev, void *arg)
{
	struct child	*c = arg;

	(void)fd;
	(void)ev;
	log_warnx("alert %s: exec: still running after %lld ms: killed",
	    c->key, (long long)al.set.exec_timeout_ms);
	(void)killpg(c->pid, SIGKILL);
}

/*
 * Run the exec sink: argv split as split_words does (no shell), a
 * cleared environment with the alert in ERMD_ALERT_*, the alert's JSON on
 * stdin, stdout and stderr to /dev/null, in a process group of its own
 * that is killed after exec_timeout_ms.
 */
static void
exec_sink(const json_t *a)
{
	struct timeval	 tv;
	struct child	*c;
	char		*copy, *argv[EXEC_ARGS_MAX + 1];
	char		*envp[8], *text, buf[4096];
	int		 argc = 0, slot, p[2] = { -1, -1 }, devnull, i, n = 0;
	pid_t		 pid;

	if (al.set.exec == NULL)
		return;
	for (slot = 0; slot < EXEC_RUNNING_MAX && al.kids[slot] != NULL; slot++)
		;
	if (slot == EXEC_RUNNING_MAX) {
		metric_inc(al.m_sink_fail);
		log_warnx("alert: exec: %d already running; not run",
		    EXEC_RUNNING_MAX);
		return;
	}
	if ((copy = strdup(al.set.exec)) == NULL)
		return;
	/* Checked when the config was read. */
	if ((argc = split_words(copy, argv, EXEC_ARGS_MAX, buf,
	    sizeof(buf))) == -1)
		argc = 0;
	argv[argc] = NULL;
	text = erm_json_text(a, 1 << 20);
	memset(envp, 0, sizeof(envp));
	envp[n++] = strdup("PATH=/usr/local/bin:/usr/bin:/bin");
	snprintf(buf, sizeof(buf), "ERMD_ALERT_KIND=%s",
	    json_string_value(json_object_get(a, "kind")));
	envp[n++] = strdup(buf);
	snprintf(buf, sizeof(buf), "ERMD_ALERT_KEY=%s",
	    json_string_value(json_object_get(a, "key")));
	envp[n++] = strdup(buf);
	snprintf(buf, sizeof(buf), "ERMD_ALERT_SEVERITY=%s",
	    json_string_value(json_object_get(a, "severity")));
	envp[n++] = strdup(buf);
	snprintf(buf, sizeof(buf), "ERMD_ALERT_MESSAGE=%s",
	    json_string_value(json_object_get(a, "message")));
	envp[n++] = strdup(buf);
	for (i = 0; i < n; i++)
		if (envp[i] == NULL)
			goto out;
	if (argc == 0 || text == NULL || pipe2(p, O_CLOEXEC) == -1)
		goto out;
	if ((devnull = open("/dev/null", O_WRONLY | O_CLOEXEC)) == -1)
		goto out;
	switch (pid = fork()) {
	case -1:
		close(devnull);
		goto out;
	case 0:
		/* Async-signal-safe calls only: the daemon has threads. */
		(void)setpgid(0, 0);
		(void)prctl(PR_SET_PDEATHSIG, SIGKILL);
		(void)signal(SIGPIPE, SIG_DFL);
		if (dup2(p[0], 0) == -1 || dup2(devnull, 1) == -1 ||
		    dup2(devnull, 2) == -1)
			_exit(126);
		(void)syscall(SYS_close_range, 3, ~0U, 0);
		execve(argv[0], argv, envp);
		_exit(127);
	}
	close(devnull);
	(void)setpgid(pid, pid);
	close(p[0]);
	p[0] = -1;
	/* A small alert fits the pipe's buffer; a reader that never reads
	 * does not block the loop. */
	(void)fcntl(p[1], F_SETFL, O_NONBLOCK);
	if (write(p[1], text, strlen(text)) == -1) {
		/* the program ignores its input: fine */
	}
	close(p[1]);
	p[1] = -1;
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		(void)killpg(pid, SIGKILL);
		while (waitpid(pid, NULL, 0) == -1 && errno == EINTR)
			;
		goto out;
	}
	c->pid = pid;
	c->pidfd = -1;
	snprintf(c->key, sizeof(c->key), "%s",
	    json_string_value(json_object_get(a, "key")));
	tv.tv_sec = (time_t)(al.set.exec_timeout_ms / 1000);
	tv.tv_usec = (suseconds_t)(al.set.exec_timeout_ms % 1000) * 1000;
	if ((c->pidfd = (int)syscall(SYS_pidfd_open, pid, 0)) == -1 ||
	    (c->ev_exit = event_new(al.base, c->pidfd, EV_READ, child_exited,
	    c)) == NULL || (c->ev_timeout = evtimer_new(al.base,
	    child_timeout, c)) == NULL || event_add(c->ev_exit, NULL) == -1 ||
	    evtimer_add(c->ev_timeout, &tv) == -1) {
		(void)killpg(pid, SIGKILL);
		while (waitpid(pid, NULL, 0) == -1 && errno == EINTR)
			;
		child_free(c);
		goto out;
	}
	al.kids[slot] = c;
out:
	if (p[0] != -1)
		close(p[0]);
	if (p[1] != -1)
		close(p[1]);
	for (i = 0; i < n; i++)
		free(envp[i]);
	free(text);
	free(copy);
}

/* ---- raising ------------------------------------------------------------ */

static void
seen_unlink(struct seen *s)
{
	if (s->prev != NULL)
		s->prev->next = s->next;
	else
		al.oldest = s->next;
	if (s->next != NULL)
		s->next->prev = s->prev;
	else
		al.newest = s->prev;
	s->prev = s->next = NULL;
}

static void
seen_append(struct seen *s)
{
	s->next = NULL;
	if ((s->prev = al.newest) != NULL)
		s->prev->next = s;
	else
		al.oldest = s;
	al.newest = s;
}

static void
seen_forget(struct seen *s)
{
	seen_unlink(s);
	htab_remove(&al.seen, &s->node);
	free(s->key);
	free(s);
}

/*
 * 1 when key was raised within dedup_ms; else remember it, raised now,
 * and return 0. Keys whose window has passed are forgotten first, from
 * the head of the list; when al.seen_max keys are still held, the oldest
 * goes (its window ends soonest), so the new key is always remembered.
 */
static int
deduplicated(const char *key, uint64_t now)
{
	struct hnode	*n;
	struct seen	*s;

	while ((s = al.oldest) != NULL &&
	    now >= s->at + (uint64_t)al.set.dedup_ms)
		seen_forget(s);
	if ((n = htab_find(&al.seen, key, strlen(key))) != NULL)
		return (1);	/* still in its window: expired ones are gone */
	if (al.seen.n < al.seen_max)
		al.seen_full = 0;
	else if (!al.seen_full) {
		/* Once per storm: the next line would be one per alert. */
		log_warnx("alert %s: dedup holds %zu keys, its bound; the "
		    "oldest are forgotten before their dedup_ms", key,
		    al.seen.n);
		al.seen_full = 1;
	}
	while (al.seen.n >= al.seen_max && al.oldest != NULL)
		seen_forget(al.oldest);
	if ((s = calloc(1, sizeof(*s))) == NULL ||
	    (s->key = strdup(key)) == NULL) {
		free(s);
		return (0);
	}
	s->at = now;
	if (htab_insert(&al.seen, &s->node, s->key, strlen(s->key)) == -1) {
		free(s->key);
		free(s);
		return (0);
	}
	seen_append(s);
	return (0);
}

int
alert_raise(const char *kind, const char *key, const char *severity,
    const char *message, json_t *details)
{
	char		 id[UUID_STRLEN + 1];
	uint64_t	 now = clock_now_ms();
	json_t		*a;

	if (!al.running || deduplicated(key, now)) {
		if (al.running)
			metric_inc(al.m_suppressed);
		json_decref(details);
		return (0);
	}
	uuid7(id);
	a = json_pack("{s:s, s:I, s:s, s:s, s:s, s:s, s:o}", "id", id, "at",
	    (json_int_t)now, "key", key, "kind", kind, "severity", severity,
	    "message", message, "details", details != NULL ? details :
	    json_object());
	if (a == NULL)
		return (0);
	log_warnx("alert %s (%s): %s", key, severity, message);
	metric_inc(metrics_series(al.m_total, kind));
	store_alert(a);
	json_decref(a);
	return (1);
}

/*
 * A stored alert (borrowed) goes out: the `alert` event, the webhook and
 * the exec sink. A completion can run after alerts_stop (store_close
 * finishes the queued jobs): the alert is stored and will be forwarded,
 * but the HTTP client and the children are gone, so the sinks are not
 * run then.
 */
static void
deliver(const json_t *a)
{
	events_emit(EV_ALERT, json_deep_copy(a));
	if (!al.running) {
		log_info("alert %s: stored while stopping; webhook and exec "
		    "not run", json_string_value(json_object_get(a, "key")));
		return;
	}
	webhook(a);
	exec_sink(a);
}

static void
forward_alert(const char *kind, const char *key, const char *severity,
    const char *message, json_t *details)
{
	(void)alert_raise(kind, key, severity, message, details);
}

void
alerts_escalate(const struct op *op, const char *category)
{
	char	key[400], msg[512];

	snprintf(key, sizeof(key), "escalate:%s", op->operation);
	snprintf(msg, sizeof(msg), "%s escalated after %d attempt%s: %s",
	    op->operation, op->attempts, op->attempts == 1 ? "" : "s",
	    category);
	(void)alert_raise("escalate", key, "critical", msg, json_pack(
	    "{s:s, s:s, s:i, s:s}", "op", op->id, "operation", op->operation,
	    "attempts", op->attempts, "category", category));
}

void
alerts_breaker_opened(const char *name, const char *reason)
{
	char	key[200], msg[300];

	snprintf(key, sizeof(key), "breaker_open:%s", name);
	snprintf(msg, sizeof(msg), "breaker %s opened (%s)", name, reason);
	(void)alert_raise("breaker_open", key, "error", msg,
	    json_pack("{s:s, s:s}", "breaker", name, "reason", reason));
}

/* Count a stored error in its second; alert when the minute has too many. */
static void
error_stored(const struct error_report *r)
{
	uint64_t	sec = clock_now_ms() / 1000, total = 0;
	int		i, slot = (int)(sec % 60);
	char		msg[200];

	(void)r;
	if (al.rate_sec[slot] != sec) {
		al.rate_sec[slot] = sec;
		al.rate_n[slot] = 0;
	}
	al.rate_n[slot]++;
	if (al.set.error_rate_per_min == 0)
		return;
	for (i = 0; i < 60; i++)
		if (al.rate_sec[i] + 60 > sec)
			total += al.rate_n[i];
	if (total <= (uint64_t)al.set.error_rate_per_min)
		return;
	snprintf(msg, sizeof(msg), "%llu errors in the last minute (limit "
	    "%lld)", (unsigned long long)total,
	    (long long)al.set.error_rate_per_min);
	(void)alert_raise("error_rate", "error_rate", "warning", msg,
	    json_pack("{s:I, s:I}", "errors", (json_int_t)total, "limit",
	    (json_int_t)al.set.error_rate_per_min));
}

void
alerts_start(struct event_base *base)
{
	static const char *const lk[] = { "kind", NULL };
	static const char *const kinds[] = { "escalate", "breaker_open",
	    "error_rate", "forward_paused", "forward_dead_letter", NULL };
	static const char *const ls[] = { "sink", NULL };
	int			 i;

	al.base = base;
	htab_init(&al.seen);
	if (http_init(base) == -1)
		fatalx("alerts: cannot start the HTTP client");
	al.http_up = 1;
	al.m_total = metrics_family("ermd_alerts_total", "Alerts raised, by "
	    "kind.", METRIC_COUNTER, lk);
	for (i = 0; kinds[i] != NULL; i++)
		(void)metrics_series(al.m_total, kinds[i]);
	al.m_suppressed = metrics_series(metrics_family(
	    "ermd_alerts_suppressed_total", "Alerts not raised again within "
	    "dedup_ms of the same key.", METRIC_COUNTER, NULL));
	al.m_sink_fail = metrics_series(metrics_family(
	    "ermd_alert_sink_failures_total", "Webhook or exec deliveries "
	    "of alerts that failed.", METRIC_COUNTER, ls), "any");
	errors_on_stored(error_stored);
	forward_set_alert(forward_alert);
	al.running = 1;
}

void
alerts_stop(void)
{
	struct hook	*h, *hnext;
	int		 i;

	al.running = 0;
	forward_set_alert(NULL);
	errors_on_stored(NULL);
	for (i = 0; i < EXEC_RUNNING_MAX; i++)
		if (al.kids[i] != NULL) {
			(void)killpg(al.kids[i]->pid, SIGKILL);
			while (waitpid(al.kids[i]->pid, NULL, 0) == -1 &&
			    errno == EINTR)
				;
			child_free(al.kids[i]);
		}
	while (al.oldest != NULL)
		seen_forget(al.oldest);
	htab_free(&al.seen);
	/* Waiting for a retry: dropped. In flight: the shutdown below
	 * cancels them, and webhook_done frees them. */
	for (h = al.hooks; h != NULL; h = hnext) {
		hnext = h->next;
		if (!h->in_flight)
			hook_free(h);
	}
	if (al.http_up) {
		http_shutdown();
		al.http_up = 0;
	}
}
