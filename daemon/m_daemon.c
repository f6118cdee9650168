/* Session and daemon methods: hello, ping, status, reload, clock, events,
 * metrics. */

#include <stdlib.h>
#include <unistd.h>

#include "clock.h"
#include "config.h"
#include "conn.h"
#include "dispatch.h"
#include "erm_proto.h"
#include "ermd.h"
#include "events.h"
#include "methods.h"
#include "metrics.h"
#include "report.h"
#include "store.h"

#define MAX_REPORTERS	16

static const struct reporter	*reporters[MAX_REPORTERS];
static int			 nreporters;

void
report_register(const struct reporter *r)
{
	if (nreporters < MAX_REPORTERS)
		reporters[nreporters++] = r;
}

int
m_hello(struct ermd_req *req)
{
	static const char *const allowed[] = { "client", "protocol", NULL };
	struct param_err	 e;
	const char		*client;
	int64_t			 proto;

	if (params_only(req->params, allowed, &e) == -1 ||
	    param_str(req->params, "client", 128, &client, &e) == -1 ||
	    param_int(req->params, "protocol", 0, INT32_MAX,
	    ERM_PROTO_VERSION, &proto, &e) == -1)
		return (req_param_fail(req, &e));
	if (proto != ERM_PROTO_VERSION) {
		param_fail(&e, "protocol", "this ermd speaks protocol %d",
		    ERM_PROTO_VERSION);
		return (req_param_fail(req, &e));
	}
	req->result = json_pack("{s:s, s:s, s:i, s:I, s:o}", "server", "ermd",
	    "version", ERMD_VERSION, "protocol", ERM_PROTO_VERSION,
	    "max_frame", (json_int_t)ermd.cfg->max_frame, "methods",
	    dispatch_method_names());
	return (REQ_OK);
}

int
m_ping(struct ermd_req *req)
{
	static const char *const allowed[] = { NULL };
	struct param_err	 e;

	if (params_only(req->params, allowed, &e) == -1)
		return (req_param_fail(req, &e));
	/* The health check every client polls: built without json_pack's
	 * format parsing. */
	if ((req->result = json_object()) == NULL ||
	    json_object_set_new_nocheck(req->result, "pong", json_true()) ||
	    json_object_set_new_nocheck(req->result, "now",
	    json_integer((json_int_t)clock_now_ms())))
		return (req_fail(req, ERM_INTERNAL_ERROR, NULL,
		    "out of memory"));
	return (REQ_OK);
}

static json_int_t
uptime_ms(void)
{
	return ((json_int_t)(clock_now_ms() - ermd.started_at));
}

int
m_status(struct ermd_req *req)
{
	static const char *const allowed[] = { NULL };
	struct param_err	 e;

	if (params_only(req->params, allowed, &e) == -1)
		return (req_param_fail(req, &e));
	req->result = json_pack("{s:s, s:I, s:I, s:I, s:I,"
	    " s:{s:i, s:i}, s:i, s:i, s:i, s:{s:s, s:b, s:s}}",
	    "version", ERMD_VERSION,
	    "pid", (json_int_t)getpid(),
	    "uptime_ms", uptime_ms(),
	    "connections", (json_int_t)conn_count(),
	    "config_generation", (json_int_t)ermd.config_generation,
	    "breakers", "total", 0, "open", 0,
	    "errors_total", 0,
	    "outbox_backlog", 0,
	    "workflows_running", 0,
	    "store", "path", config_store_path(ermd.cfg), "ok", !store_fatal(),
	    "durability", ermd.cfg->durability == DURABILITY_FULL ? "full" :
	    "normal");
	for (int i = 0; req->result != NULL && i < nreporters; i++)
		if (reporters[i]->status != NULL)
			reporters[i]->status(req->result);
	return (REQ_OK);
}

int
m_config_reload(struct ermd_req *req)
{
	static const char *const allowed[] = { NULL };
	struct param_err	 e;
	json_t			*errors;

	if (params_only(req->params, allowed, &e) == -1)
		return (req_param_fail(req, &e));
	if (ermd_reload(&errors) == -1)
		return (req_fail(req, ERM_CONFLICT, json_pack("{s:o}",
		    "errors", errors), "invalid config; the old one is kept"));
	req->result = json_pack("{s:I}", "config_generation",
	    (json_int_t)ermd.config_generation);
	return (REQ_OK);
}

int
m_debug_advance(struct ermd_req *req)
{
	static const char *const allowed[] = { "ms", NULL };
	struct param_err	 e;
	int64_t			 ms;

	if (params_only(req->params, allowed, &e) == -1 ||
	    param_int_req(req->params, "ms", 0, INT64_C(3153600000000), &ms,
	    &e) == -1)
		return (req_param_fail(req, &e));
	clock_advance((uint64_t)ms);
	req->result = json_pack("{s:I}", "now", (json_int_t)clock_now_ms());
	return (REQ_OK);
}

int
m_events_subscribe(struct ermd_req *req)
{
	static const char *const allowed[] = { "types", NULL };
	struct param_err	 e;
	json_t			*types, *v, *out;
	uint32_t		 mask = 0;
	size_t			 i;
	int			 t;

	if (params_only(req->params, allowed, &e) == -1)
		return (req_param_fail(req, &e));
	types = json_object_get(req->params, "types");
	if (types == NULL)
		mask = EVENTS_ALL;
	else if (!json_is_array(types)) {
		param_fail(&e, "types", "must be an array of event types");
		return (req_param_fail(req, &e));
	}
	json_array_foreach(types, i, v) {
		if (!json_is_string(v) ||
		    (t = event_type_parse(json_string_value(v))) == -1) {
			param_fail(&e, "types", "unknown event type %s%.64s%s",
			    json_is_string(v) ? "'" : "",
			    json_is_string(v) ? json_string_value(v) :
			    "(not a string)", json_is_string(v) ? "'" : "");
			return (req_param_fail(req, &e));
		}
		mask |= 1u << t;
	}
	req->conn->sub.mask = mask;
	if (mask != 0)
		events_subscribe(&req->conn->sub);
	else
		events_unsubscribe(&req->conn->sub);
	out = json_array();
	for (t = 0; t < EV_NTYPES; t++)
		if (mask & (1u << t))
			json_array_append_new(out,
			    json_string(event_type_name(t)));
	req->result = json_pack("{s:o}", "subscribed", out);
	return (REQ_OK);
}

int
m_metrics_get(struct ermd_req *req)
{
	static const char *const allowed[] = { NULL };
	struct param_err	 e;

	if (params_only(req->params, allowed, &e) == -1)
		return (req_param_fail(req, &e));
	/*
	 * The contract's full shape in its empty state; each capability's
	 * reporter fills in what it owns.
	 */
	req->result = json_pack("{s:i, s:{}, s:i, s:i, s:i, s:{}, s:s,"
	    " s:{s:i, s:i}, s:{s:i, s:i}, s:{}, s:i, s:i, s:i, s:I, s:I}",
	    "total_errors", 0,
	    "errors_by_category",
	    "successful_recoveries", 0,
	    "failed_recoveries", 0,
	    "recovery_rate", -1,
	    "circuit_breakers",
	    "circuit_breaker_state", "closed",
	    "retries", "granted", 0, "denied", 0,
	    "backups", "count", 0, "bytes", 0,
	    "workflows",
	    "outbox_backlog", 0,
	    "forwarded_total", 0,
	    "forward_failures_total", 0,
	    "connections", (json_int_t)conn_count(),
	    "uptime_ms", uptime_ms());
	for (int i = 0; req->result != NULL && i < nreporters; i++)
		if (reporters[i]->metrics != NULL)
			reporters[i]->metrics(req->result);
	return (REQ_OK);
}

int
m_metrics_prometheus(struct ermd_req *req)
{
	static const char *const allowed[] = { NULL };
	struct param_err	 e;
	char			*text;
	size_t			 len;

	if (params_only(req->params, allowed, &e) == -1)
		return (req_param_fail(req, &e));
	if ((text = metrics_render(&len)) == NULL)
		return (req_fail(req, ERM_INTERNAL_ERROR, NULL,
		    "out of memory rendering metrics"));
	req->result = json_pack("{s:s%}", "text", text, len);
	free(text);
	return (REQ_OK);
}
