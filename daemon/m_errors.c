/* The error.* methods that record and read errors: report, list, stats. */

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "decide.h"
#include "dispatch.h"
#include "erm_proto.h"
#include "ermd.h"
#include "errors.h"
#include "methods.h"
#include "store.h"

static int
io_error(struct ermd_req *req, int err, const char *what)
{
	return (req_fail(req, ERM_IO_ERROR, json_pack("{s:s, s:s}", "errno",
	    err == ENOSPC ? "ENOSPC" : "EIO", "path",
	    config_store_path(ermd.cfg)), "%s", what));
}

static void
reported(struct error_report *r, void *arg, const struct store_result *res)
{
	struct ermd_req	*req = arg;

	if (!res->ok) {
		io_error(req, res->err, res->err == ENOSPC ?
		    "the error could not be stored: no space left on the "
		    "state directory" : "the error could not be stored");
		req_finish(req, REQ_ERROR);
		return;
	}
	if ((req->result_text = error_report_result(r)) == NULL) {
		req_fail(req, ERM_INTERNAL_ERROR, NULL, "out of memory");
		req_finish(req, REQ_ERROR);
		return;
	}
	req_finish(req, REQ_OK);
}

/*
 * error.report: classify with the decision core's classifier, store, and
 * answer from the completion of the commit that holds the row. The same
 * id again gets the first result: from the store when committed, else by
 * waiting for the write in progress.
 */
int
m_error_report(struct ermd_req *req)
{
	static const char *const allowed[] = { "operation", "id", "severity",
	    "path", "context", "category", "errno", "http_status",
	    "exit_code", "signal", "exception", "message", "retry_after_ms",
	    NULL };
	struct param_err	 e;
	struct erm_errobj	 eo;
	struct classify_result	 cr;
	struct error_report	*r = NULL, found;
	const char		*op, *id, *path;
	json_t			*ctx;
	char			 lid[UUID_STRLEN + 1];
	int			 sev, rc;
	size_t			 i;

	errobj_init(&eo);
	if (params_only(req->params, allowed, &e) == -1 ||
	    param_str_req(req->params, "operation", ERROR_OPERATION_MAX, &op,
	    &e) == -1 ||
	    param_str(req->params, "id", UUID_STRLEN, &id, &e) == -1 ||
	    param_enum(req->params, "severity", severity_names, SEV_ERROR,
	    &sev, &e) == -1 ||
	    param_str(req->params, "path", ERROR_PATH_MAX, &path, &e) == -1)
		return (req_param_fail(req, &e));
	if (op[0] == '\0') {
		param_fail(&e, "operation", "must not be empty");
		return (req_param_fail(req, &e));
	}
	if (id != NULL && !uuid_valid(id)) {
		param_fail(&e, "id", "must be a UUID");
		return (req_param_fail(req, &e));
	}
	ctx = json_object_get(req->params, "context");
	if (ctx != NULL && !json_is_object(ctx)) {
		param_fail(&e, "context", "must be an object");
		return (req_param_fail(req, &e));
	}
	if (errobj_from_json(req->params, &eo, 1, &e) == -1)
		return (req_param_fail(req, &e));
	decide_classify(&eo, &cr);

	if (id != NULL) {
		/* Ids are compared in lowercase, as PostgreSQL's uuid does. */
		for (i = 0; i <= UUID_STRLEN; i++)
			lid[i] = (char)tolower((unsigned char)id[i]);
		memset(&found, 0, sizeof(found));
		snprintf(found.id, sizeof(found.id), "%s", lid);
		if ((rc = errors_lookup(lid, &found)) == -1) {
			errobj_clear(&eo);
			return (io_error(req, EIO, "cannot read the errors"));
		}
		if (rc == 1) {
			errobj_clear(&eo);
			if ((req->result_text = error_report_result(
			    &found)) == NULL)
				return (req_fail(req, ERM_INTERNAL_ERROR, NULL,
				    "out of memory"));
			return (REQ_OK);
		}
	}
	if ((r = error_report_new(id != NULL ? lid : NULL)) == NULL)
		goto oom;
	r->category = cr.category;
	r->primary = cr.strategy.primary;
	r->fallback = cr.strategy.fallback;
	snprintf(r->matched, sizeof(r->matched), "%s", cr.matched);
	r->severity = sev;
	if ((r->operation = strdup(op)) == NULL ||
	    (path != NULL && (r->path = strdup(path)) == NULL) ||
	    (eo.message != NULL && (r->message = strdup(eo.message)) == NULL))
		goto oom;
	if (ctx != NULL && (r->context = erm_json_text(ctx,
	    ERROR_CONTEXT_MAX)) == NULL) {
		error_report_free(r);
		errobj_clear(&eo);
		param_fail(&e, "context", "must be at most %d bytes of JSON",
		    ERROR_CONTEXT_MAX);
		return (req_param_fail(req, &e));
	}
	if ((r->error = errobj_text(&eo)) == NULL)
		goto oom;
	errobj_clear(&eo);
	if (errors_submit(r, reported, req) == -1)
		return (req_fail(req, ERM_UNAVAILABLE, json_pack("{s:s}",
		    "reason", "store closed"), "the store is closed"));
	return (REQ_ASYNC);
oom:
	error_report_free(r);
	errobj_clear(&eo);
	return (req_fail(req, ERM_INTERNAL_ERROR, NULL, "out of memory"));
}

static void
listed(json_t *result, int notfound, void *arg)
{
	struct ermd_req	*req = arg;
	const char	*before;

	if ((req->result = result) != NULL) {
		req_finish(req, REQ_OK);
		return;
	}
	if (notfound) {
		before = json_string_value(json_object_get(req->params,
		    "before_id"));
		req_fail(req, ERM_NOT_FOUND, json_pack("{s:s, s:s}", "kind",
		    "error", "name", before), "no error %s", before);
	} else
		io_error(req, EIO, "cannot read the errors");
	req_finish(req, REQ_ERROR);
}

/* error.list: the filters are checked here, the rows read on a worker. */
int
m_error_list(struct ermd_req *req)
{
	static const char *const allowed[] = { "since", "until", "category",
	    "operation", "severity", "limit", "before_id", NULL };
	struct param_err	 e;
	struct error_filter	 f;
	char			 lbefore[UUID_STRLEN + 1];
	size_t			 i;
	int			 sev;

	memset(&f, 0, sizeof(f));
	if (params_only(req->params, allowed, &e) == -1 ||
	    param_int(req->params, "since", 0, INT64_MAX, 0, &f.since,
	    &e) == -1 ||
	    param_int(req->params, "until", 0, INT64_MAX, INT64_MAX, &f.until,
	    &e) == -1 ||
	    param_str(req->params, "category", 64, &f.category, &e) == -1 ||
	    param_str(req->params, "operation", ERROR_OPERATION_MAX,
	    &f.operation, &e) == -1 ||
	    param_enum(req->params, "severity", severity_names, -1, &sev,
	    &e) == -1 ||
	    param_int(req->params, "limit", 1, 1000, 100, &f.limit, &e) == -1 ||
	    param_str(req->params, "before_id", UUID_STRLEN, &f.before_id,
	    &e) == -1)
		return (req_param_fail(req, &e));
	if (f.before_id != NULL) {
		/* Ids are compared in lowercase, as error.report stores them. */
		for (i = 0; f.before_id[i] != '\0'; i++)
			lbefore[i] = (char)tolower((unsigned char)f.before_id[i]);
		lbefore[i] = '\0';
		f.before_id = lbefore;
	}
	if (f.category != NULL && category_from_name(f.category) == CAT_NONE) {
		param_fail(&e, "category", "unknown category '%s'",
		    f.category);
		return (req_param_fail(req, &e));
	}
	f.severity = sev >= 0 ? severity_names[sev] : NULL;
	if (errors_list(&f, listed, req) == -1)
		return (io_error(req, EIO, "cannot read the errors"));
	return (REQ_ASYNC);
}

static void
stats_ready(json_t *result, void *arg)
{
	struct ermd_req	*req = arg;

	if ((req->result = result) == NULL) {
		io_error(req, EIO, "cannot read the errors");
		req_finish(req, REQ_ERROR);
		return;
	}
	req_finish(req, REQ_OK);
}

/* error.stats: its scans run on a worker, so a large table never holds
 * up the loop. */
int
m_error_stats(struct ermd_req *req)
{
	static const char *const allowed[] = { "window_ms", NULL };
	struct param_err	 e;
	int64_t			 window;

	if (params_only(req->params, allowed, &e) == -1 ||
	    param_int(req->params, "window_ms", 1, INT64_C(3153600000000), 0,
	    &window, &e) == -1)
		return (req_param_fail(req, &e));
	if (errors_stats(window, stats_ready, req) == -1)
		return (io_error(req, EIO, "cannot read the errors"));
	return (REQ_ASYNC);
}
