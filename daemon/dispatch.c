/* The method table and request life cycle; see dispatch.h. */

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "conn.h"
#include "dispatch.h"
#include "erm_proto.h"
#include "log.h"
#include "methods.h"
#include "metrics.h"

/* Sorted by name: lookups are a binary search. */
static const struct ermd_method methods[] = {
	{ "backup.create",	0,		m_backup_create },
	{ "backup.get",		0,		m_backup_get },
	{ "backup.list",	0,		m_backup_list },
	{ "backup.prune",	M_ADMIN,	m_backup_prune },
	{ "backup.restore",	0,		m_backup_restore },
	{ "backup.verify",	0,		m_backup_verify },
	{ "breaker.acquire",	0,		m_breaker_acquire },
	{ "breaker.configure",	M_ADMIN,	m_breaker_configure },
	{ "breaker.force",	M_ADMIN,	m_breaker_force },
	{ "breaker.get",	0,		m_breaker_get },
	{ "breaker.list",	0,		m_breaker_list },
	{ "breaker.record",	0,		m_breaker_record },
	{ "breaker.reset",	M_ADMIN,	m_breaker_reset },
	{ "config.reload",	M_ADMIN,	m_config_reload },
	{ "debug.advance",	M_DEBUG,	m_debug_advance },
	{ "error.classify",	0,		m_error_classify },
	{ "error.list",		0,		m_error_list },
	{ "error.report",	0,		m_error_report },
	{ "error.stats",	0,		m_error_stats },
	{ "events.subscribe",	0,		m_events_subscribe },
	{ "hello",		0,		m_hello },
	{ "metrics.get",	0,		m_metrics_get },
	{ "metrics.prometheus",	0,		m_metrics_prometheus },
	{ "op.begin",		0,		m_op_begin },
	{ "op.fail",		0,		m_op_fail },
	{ "op.get",		0,		m_op_get },
	{ "op.succeed",		0,		m_op_succeed },
	{ "oplog.list",		0,		m_oplog_list },
	{ "ping",		0,		m_ping },
	{ "retry.next",		0,		m_retry_next },
	{ "retry.policy",	0,		m_retry_policy },
	{ "status",		0,		m_status },
	{ "storage.check",	0,		m_storage_check },
	{ "storage.get",	0,		m_storage_get },
	{ "storage.put",	0,		m_storage_put },
	{ "storage.report",	0,		m_storage_report },
	{ "storage.select",	0,		m_storage_select },
	{ "storage.status",	0,		m_storage_status },
	{ "workflow.cancel",	0,		m_workflow_cancel },
	{ "workflow.create",	0,		m_workflow_create },
	{ "workflow.get",	0,		m_workflow_get },
	{ "workflow.list",	0,		m_workflow_list },
	{ "workflow.run",	0,		m_workflow_run },
	{ "workflow.step_result", 0,		m_workflow_step_result },
	{ "workflow.wait",	0,		m_workflow_wait },
};
#define NMETHODS	(sizeof(methods) / sizeof(methods[0]))

/* Per-method series, plus one slot for requests that named no method. */
static struct {
	struct metric	*ok, *error, *duration;
} series[NMETHODS + 1];

uint64_t
mono_ns(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec);
}

void
dispatch_init(void)
{
	static const char *const lr[] = { "method", "result", NULL };
	static const char *const lm[] = { "method", NULL };
	struct metric_family	*req, *dur;
	const char		*name;
	size_t			 i;

	req = metrics_family("ermd_requests_total",
	    "Requests handled, by method and result.", METRIC_COUNTER, lr);
	dur = metrics_family("ermd_request_duration_seconds",
	    "Time from a request's arrival to its reply.", METRIC_HISTOGRAM,
	    lm);
	for (i = 0; i <= NMETHODS; i++) {
		name = i < NMETHODS ? methods[i].name : "unknown";
		if (i < NMETHODS && (methods[i].flags & M_DEBUG) &&
		    !clock_is_manual())
			name = "unknown";
		series[i].ok = metrics_series(req, name, "ok");
		series[i].error = metrics_series(req, name, "error");
		series[i].duration = metrics_series(dur, name);
	}
}

static int
method_cmp(const void *key, const void *elem)
{
	return (strcmp(key, ((const struct ermd_method *)elem)->name));
}

static const struct ermd_method *
lookup(const char *name)
{
	const struct ermd_method	*m;

	m = bsearch(name, methods, NMETHODS, sizeof(methods[0]), method_cmp);
	if (m != NULL && (m->flags & M_DEBUG) && !clock_is_manual())
		return (NULL);
	return (m);
}

json_t *
dispatch_method_names(void)
{
	json_t	*a = json_array();
	size_t	 i;

	for (i = 0; a != NULL && i < NMETHODS; i++)
		if (!(methods[i].flags & M_DEBUG) || clock_is_manual())
			json_array_append_new(a, json_string(methods[i].name));
	return (a);
}

int
req_fail(struct ermd_req *req, int code, json_t *data, const char *fmt, ...)
{
	va_list	ap;

	req->code = code;
	va_start(ap, fmt);
	vsnprintf(req->msg, sizeof(req->msg), fmt, ap);
	va_end(ap);
	json_decref(req->data);
	req->data = data;
	return (REQ_ERROR);
}

int
req_param_fail(struct ermd_req *req, const struct param_err *e)
{
	return (req_fail(req, ERM_INVALID_PARAMS, json_pack("{s:s, s:s}",
	    "field", e->field, "reason", e->reason), "%s: %s", e->field,
	    e->reason));
}

/* An error reply; id may be NULL (sent as null). data is borrowed. */
static void
send_error(struct conn *c, json_t *id, int code, const char *msg,
    json_t *data)
{
	json_t	*reply, *err;

	err = json_pack("{s:i, s:s}", "code", code, "message", msg);
	if (err != NULL && data != NULL)
		json_object_set(err, "data", data);
	reply = json_pack("{s:O?, s:o}", "id", id, "error", err);
	if (reply == NULL) {
		conn_close(c, "out of memory");
		return;
	}
	conn_send(c, reply);
	json_decref(reply);
}

static void
count(int idx, int ok, uint64_t t0)
{
	metric_inc(ok ? series[idx].ok : series[idx].error);
	metric_observe(series[idx].duration, (double)(mono_ns() - t0) / 1e9);
}

void
req_finish(struct ermd_req *req, int status)
{
	if (status == REQ_OK && req->result_text != NULL)
		conn_send_result_text(req->conn, req->id, req->result_text);
	else if (status == REQ_OK) {
		if (req->result == NULL)
			req->result = json_object();
		conn_send_result(req->conn, req->id, req->result);
	} else {
		if (req->code == ERM_INTERNAL_ERROR)
			log_warnx("%s: internal error: %s", req->method->name,
			    req->msg);
		send_error(req->conn, req->id, req->code, req->msg, req->data);
	}
	count(req->method_index, status == REQ_OK, req->t0_ns);
	conn_request_end(req->conn);
	json_decref(req->result);
	free(req->result_text);
	json_decref(req->data);
	json_decref(req->doc);
	free(req);
}

void
dispatch_frame(struct conn *c, const uint8_t *body, size_t len)
{
	struct erm_envelope		 env;
	const struct ermd_method	*m;
	struct ermd_req			*req;
	char				 msg[256];
	uint64_t			 t0 = mono_ns();
	int				 code, rc;
	json_t				*data;

	if ((code = erm_envelope_decode(body, len, &env, msg,
	    sizeof(msg))) != 0) {
		send_error(c, env.id, code, msg, NULL);
		erm_envelope_clear(&env);
		count(NMETHODS, 0, t0);
		return;
	}
	if ((m = lookup(env.method)) == NULL) {
		data = json_pack("{s:s}", "method", env.method);
		snprintf(msg, sizeof(msg), "unknown method '%.64s'",
		    env.method);
		send_error(c, env.id, ERM_METHOD_NOT_FOUND, msg, data);
		json_decref(data);
		erm_envelope_clear(&env);
		count(NMETHODS, 0, t0);
		return;
	}
	if ((m->flags & M_ADMIN) && !conn_is_admin(c)) {
		data = json_pack("{s:I}", "uid", (json_int_t)c->uid);
		snprintf(msg, sizeof(msg), "%s needs uid 0 or the admin group",
		    m->name);
		send_error(c, env.id, ERM_PERMISSION_DENIED, msg, data);
		json_decref(data);
		erm_envelope_clear(&env);
		count((int)(m - methods), 0, t0);
		return;
	}
	if ((req = calloc(1, sizeof(*req))) == NULL) {
		erm_envelope_clear(&env);
		conn_close(c, "out of memory");
		return;
	}
	req->conn = c;
	req->method = m;
	req->method_index = (int)(m - methods);
	req->doc = env.doc;		/* the envelope's reference moves here */
	req->id = env.id;
	req->params = env.params;
	req->t0_ns = t0;
	conn_request_begin(c);
	rc = m->exec(req);
	if (rc != REQ_ASYNC)
		req_finish(req, rc);
}
