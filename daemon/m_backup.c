/* Backup methods: backup.create, .list, .get, .restore, .verify, .prune and
 * oplog.list, over backup.c. */

#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "backup.h"
#include "clock.h"
#include "conn.h"
#include "dispatch.h"
#include "erm_proto.h"
#include "ermd.h"
#include "methods.h"

#define TAG_MAX		256
#define ID_MAX		64
#define LIMIT_MAX	1000
#define PROGRESS_MS	250

/* A request waiting for backup.c, and its progress ticker. */
struct mreq {
	struct ermd_req		*req;
	struct backup_job	*job;
	struct event		*tick;
};

void
backup_peer(const struct conn *c, struct peer *p)
{
	memset(p, 0, sizeof(*p));
	p->uid = c->uid;
	p->gid = c->gid;
	p->pid = c->pid;
	p->admin = conn_is_admin(c);
	p->ngroups = c->ngroups < PEER_MAX_GROUPS ? c->ngroups :
	    PEER_MAX_GROUPS;
	memcpy(p->groups, c->groups, (size_t)p->ngroups * sizeof(gid_t));
}

static void
finished(void *arg, json_t *result, const struct backup_err *e)
{
	struct mreq	*m = arg;

	if (m->tick != NULL)
		event_free(m->tick);
	if (e == NULL) {
		m->req->result = json_incref(result);
		req_finish(m->req, REQ_OK);
	} else {
		req_fail(m->req, e->code, json_incref(e->data), "%s", e->msg);
		req_finish(m->req, REQ_ERROR);
	}
	free(m);
}

/*
 * Progress of a long copy, for a person watching: a backup.progress event
 * to this connection only, on real time (like the watchdog, it answers
 * someone who does not share the daemon's clock).
 */
static void
tick(evutil_socket_t fd, short ev, void *arg)
{
	struct mreq	*m = arg;
	uint64_t	 done, total;
	json_t		*msg;

	(void)fd;
	(void)ev;
	backup_job_progress(m->job, &done, &total);
	msg = json_pack("{s:s, s:{s:s, s:I, s:O, s:I, s:I}}", "method",
	    "event", "params", "type", "backup.progress", "at",
	    (json_int_t)clock_now_ms(), "request", m->req->id, "done",
	    (json_int_t)done, "total", (json_int_t)total);
	if (msg != NULL)
		conn_send(m->req->conn, msg);
	json_decref(msg);
}

static void
start_ticks(struct mreq *m)
{
	struct timeval	tv = { 0, PROGRESS_MS * 1000 };

	m->tick = event_new(ermd.base, -1, EV_PERSIST, tick, m);
	if (m->tick != NULL && event_add(m->tick, &tv) == -1) {
		event_free(m->tick);
		m->tick = NULL;
	}
}

static struct mreq *
mreq_new(struct ermd_req *req)
{
	struct mreq	*m;

	if ((m = calloc(1, sizeof(*m))) != NULL)
		m->req = req;
	return (m);
}

/* backup.c could not take the request: shutting down, or out of memory. */
static int
not_started(struct ermd_req *req, struct mreq *m)
{
	free(m);
	return (req_fail(req, ERM_UNAVAILABLE, json_pack("{s:s}", "reason",
	    "backups are stopping or out of memory"), "cannot start the %s",
	    req->method->name));
}

/*
 * The path member: any string (what it may hold is for the confinement
 * check, which answers 1002), so only its type is a params error.
 */
static int
get_path(struct ermd_req *req, int required, const char **path, size_t *len,
    struct param_err *e)
{
	json_t	*v = json_object_get(req->params, "path");

	*path = NULL;
	*len = 0;
	if (v == NULL)
		return (required ? param_fail(e, "path", "missing") : 0);
	if (!json_is_string(v))
		return (param_fail(e, "path", "must be a string"));
	*path = json_string_value(v);
	*len = json_string_length(v);
	return (0);
}

int
m_backup_create(struct ermd_req *req)
{
	static const char *const allowed[] = { "path", "tag", "progress",
	    NULL };
	struct param_err	 e;
	struct peer		 p;
	struct mreq		*m;
	const char		*path, *tag;
	size_t			 len;
	int			 progress;

	if (params_only(req->params, allowed, &e) == -1 ||
	    get_path(req, 1, &path, &len, &e) == -1 ||
	    param_str(req->params, "tag", TAG_MAX, &tag, &e) == -1 ||
	    param_bool(req->params, "progress", 0, &progress, &e) == -1)
		return (req_param_fail(req, &e));
	backup_peer(req->conn, &p);
	if ((m = mreq_new(req)) == NULL ||
	    (m->job = backup_create_async(path, len, tag, &p, finished,
	    m)) == NULL)
		return (not_started(req, m));
	if (progress)
		start_ticks(m);
	return (REQ_ASYNC);
}

int
m_backup_restore(struct ermd_req *req)
{
	static const char *const allowed[] = { "id", "path", "version",
	    "progress", NULL };
	static const char *const versions[] = { "latest", NULL };
	struct param_err	 e;
	struct peer		 p;
	struct mreq		*m;
	const char		*id, *path;
	size_t			 len;
	int			 progress, version;

	if (params_only(req->params, allowed, &e) == -1 ||
	    param_str(req->params, "id", ID_MAX, &id, &e) == -1 ||
	    get_path(req, 0, &path, &len, &e) == -1 ||
	    param_enum(req->params, "version", versions, 0, &version,
	    &e) == -1 ||
	    param_bool(req->params, "progress", 0, &progress, &e) == -1)
		return (req_param_fail(req, &e));
	if ((id == NULL) == (path == NULL)) {
		param_fail(&e, "id", id == NULL ? "missing: give id, or path" :
		    "give id or path, not both");
		return (req_param_fail(req, &e));
	}
	if (id != NULL && json_object_get(req->params, "version") != NULL) {
		param_fail(&e, "version", "only with path");
		return (req_param_fail(req, &e));
	}
	backup_peer(req->conn, &p);
	if ((m = mreq_new(req)) == NULL ||
	    (m->job = backup_restore_async(id, path, len, &p, finished,
	    m)) == NULL)
		return (not_started(req, m));
	if (progress)
		start_ticks(m);
	return (REQ_ASYNC);
}

int
m_backup_verify(struct ermd_req *req)
{
	static const char *const allowed[] = { "id", NULL };
	struct param_err	 e;
	struct peer		 p;
	struct mreq		*m;
	const char		*id;

	if (params_only(req->params, allowed, &e) == -1 ||
	    param_str(req->params, "id", ID_MAX, &id, &e) == -1)
		return (req_param_fail(req, &e));
	backup_peer(req->conn, &p);
	if ((m = mreq_new(req)) == NULL ||
	    backup_verify_async(id, &p, finished, m) == -1)
		return (not_started(req, m));
	return (REQ_ASYNC);
}

int
m_backup_prune(struct ermd_req *req)
{
	static const char *const allowed[] = { "older_than_ms", "keep_last",
	    "path", NULL };
	struct backup_prune	 rules;
	struct param_err	 e;
	struct peer		 p;
	struct mreq		*m;
	size_t			 len;

	memset(&rules, 0, sizeof(rules));
	if (params_only(req->params, allowed, &e) == -1 ||
	    param_int(req->params, "older_than_ms", 0,
	    INT64_C(3153600000000), -1, &rules.older_than_ms, &e) == -1 ||
	    param_int(req->params, "keep_last", 1, 1000000, 0,
	    &rules.keep_last, &e) == -1 ||
	    get_path(req, 0, &rules.path, &len, &e) == -1)
		return (req_param_fail(req, &e));
	if (rules.path != NULL && strlen(rules.path) != len) {
		param_fail(&e, "path", "contains a NUL byte");
		return (req_param_fail(req, &e));
	}
	rules.configured = rules.older_than_ms == -1 && rules.keep_last == 0;
	backup_peer(req->conn, &p);
	if ((m = mreq_new(req)) == NULL ||
	    backup_prune_async(&rules, &p, finished, m) == -1)
		return (not_started(req, m));
	return (REQ_ASYNC);
}

/* Turn a read's outcome into the request's. */
static int
read_reply(struct ermd_req *req, json_t *result, struct backup_err *be)
{
	if (result != NULL) {
		req->result = result;
		return (REQ_OK);
	}
	return (req_fail(req, be->code, be->data, "%s", be->msg));
}

int
m_backup_get(struct ermd_req *req)
{
	static const char *const allowed[] = { "id", NULL };
	struct backup_err	 be;
	struct param_err	 e;
	struct peer		 p;
	const char		*id;

	if (params_only(req->params, allowed, &e) == -1 ||
	    param_str_req(req->params, "id", ID_MAX, &id, &e) == -1)
		return (req_param_fail(req, &e));
	backup_peer(req->conn, &p);
	return (read_reply(req, backup_get(id, &p, &be), &be));
}

int
m_backup_list(struct ermd_req *req)
{
	static const char *const allowed[] = { "path", "tag", "limit", NULL };
	struct backup_err	 be;
	struct param_err	 e;
	struct peer		 p;
	const char		*path, *tag;
	int64_t			 limit;

	if (params_only(req->params, allowed, &e) == -1 ||
	    param_str(req->params, "path", 4096, &path, &e) == -1 ||
	    param_str(req->params, "tag", TAG_MAX, &tag, &e) == -1 ||
	    param_int(req->params, "limit", 1, LIMIT_MAX, 100, &limit,
	    &e) == -1)
		return (req_param_fail(req, &e));
	backup_peer(req->conn, &p);
	return (read_reply(req, backup_list(path, tag, limit, &p, &be), &be));
}

int
m_oplog_list(struct ermd_req *req)
{
	static const char *const allowed[] = { "path", "limit", NULL };
	struct backup_err	 be;
	struct param_err	 e;
	struct peer		 p;
	const char		*path;
	int64_t			 limit;

	if (params_only(req->params, allowed, &e) == -1 ||
	    param_str(req->params, "path", 4096, &path, &e) == -1 ||
	    param_int(req->params, "limit", 1, LIMIT_MAX, 100, &limit,
	    &e) == -1)
		return (req_param_fail(req, &e));
	backup_peer(req->conn, &p);
	return (read_reply(req, oplog_list(path, limit, &p, &be), &be));
}
