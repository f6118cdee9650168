/*
 * erm_execute_with_fallback: run a caller's function against the storage
 * backends the daemon chooses, falling back down the list; the C form of
 * the seed's execute_with_fallback.
 */

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "erm.h"

#define ERM_API		__attribute__((visibility("default")))

/* At most this many backends are tried (a storage config has a handful). */
#define FALLBACK_MAX	64

static int64_t
now_ms(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
}

/* storage.report of one try; failures here do not change the outcome. */
static void
report(struct erm_client *c, const char *backend, int ok,
    const struct erm_errinfo *err, int64_t latency_ms)
{
	json_t	*p, *ej = NULL, *r = NULL;

	p = json_pack("{s:s, s:b, s:I}", "backend", backend, "ok", ok,
	    "latency_ms", (json_int_t)latency_ms);
	if (p == NULL)
		return;
	if (!ok && err != NULL && erm_errinfo_json(err, &ej) == ERM_OK &&
	    json_object_size(ej) > 0)
		json_object_set_new(p, "error", ej);
	else
		json_decref(ej);
	(void)erm_call(c, "storage.report", p, &r);
	json_decref(p);
	json_decref(r);
}

ERM_API enum erm_status
erm_execute_with_fallback(struct erm_client *c, erm_backend_fn fn, void *arg,
    struct erm_fallback_result *res)
{
	struct erm_errinfo	 err;
	json_t			*exclude, *p, *r;
	enum erm_status		 st = ERM_EINVAL;
	int64_t			 t0;
	int			 i;

	if (c == NULL || fn == NULL || res == NULL)
		return (ERM_EINVAL);
	memset(res, 0, sizeof(*res));
	if ((exclude = json_array()) == NULL)
		return (ERM_ENOMEM);
	for (i = 0; i < FALLBACK_MAX; i++) {
		p = json_pack("{s:O}", "exclude", exclude);
		r = NULL;
		st = p == NULL ? ERM_ENOMEM : erm_call(c, "storage.select", p,
		    &r);
		json_decref(p);
		if (st != ERM_OK)
			break;		/* 1007 when no healthy backend is left */
		snprintf(res->backend, sizeof(res->backend), "%s",
		    json_string_value(json_object_get(r, "backend")));
		memset(&err, 0, sizeof(err));
		res->tries++;
		t0 = now_ms();
		res->fn_result = fn(arg, res->backend,
		    json_string_value(json_object_get(r, "type")),
		    json_string_value(json_object_get(r, "location")), &err);
		report(c, res->backend, res->fn_result == 0, &err,
		    now_ms() - t0);
		json_decref(r);
		if (res->fn_result == 0) {
			st = ERM_OK;
			break;
		}
		json_array_append_new(exclude, json_string(res->backend));
		res->backend[0] = '\0';
		st = ERM_EREPLY;
	}
	json_decref(exclude);
	return (st);
}
