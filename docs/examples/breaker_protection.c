/*
 * Circuit breaker protection: acquire a permit before each call to an
 * unreliable service and record how the call went. The service always
 * refuses, so after failure_threshold (5) consecutive failures the breaker
 * opens and the next acquire is refused with 1004 and retry_after_ms:
 * the service is left alone until the recovery timeout (60 s) passes.
 *
 * The breaker gets a fresh name per run. breaker.configure sets the
 * seed's CircuitBreakerConfig (failure_threshold=5, recovery_timeout=60 s)
 * when we are an admin; otherwise the daemon's defaults, the same values
 * unless its config changed them, apply.
 *
 * Connects to $ERMD_SOCKET. Exits 0 when the breaker opened after 5
 * failures and then refused a call.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "erm.h"

#define FAILURE_THRESHOLD	5

/* The service: refuses every connection. */
static int
unreliable_service(struct erm_errinfo *err)
{
	err->errnum = ECONNREFUSED;
	err->message = "connection refused";
	return (-1);
}

int
main(void)
{
	struct erm_client	*c;
	struct erm_errinfo	 err;
	char			 name[64], permit[ERM_PERMIT_MAX];
	json_t			*cfg, *b;
	int64_t			 retry_after;
	enum erm_status		 st;
	int			 call, failures = 0, recorded, ok = 0;

	if ((st = erm_connect(&c, NULL)) != ERM_OK) {
		fprintf(stderr, "connect: %s\n", erm_strerror(st));
		return (1);
	}
	erm_set_timeout(c, 10000);
	snprintf(name, sizeof(name), "example.unreliable.%ld", (long)getpid());

	cfg = json_pack("{s:s, s:{s:s, s:i, s:i}}", "name", name, "config",
	    "window", "consecutive", "failure_threshold", FAILURE_THRESHOLD,
	    "recovery_timeout_ms", 60000);
	if (erm_call(c, "breaker.configure", cfg, NULL) != ERM_OK)
		printf("breaker.configure: %s (using the daemon's defaults)\n",
		    erm_last_error(c)->message);
	json_decref(cfg);

	for (call = 1; call <= 2 * FAILURE_THRESHOLD; call++) {
		st = erm_breaker_acquire(c, name, 0, permit, &retry_after);
		if (st == ERM_EREPLY &&
		    erm_last_error(c)->code == ERM_CODE_BREAKER_OPEN) {
			printf("call %d: not permitted, retry after %lld ms\n",
			    call, (long long)retry_after);
			ok = failures == FAILURE_THRESHOLD && retry_after > 0;
			break;
		}
		if (st != ERM_OK) {
			fprintf(stderr, "breaker.acquire: %s: %s\n",
			    erm_strerror(st), erm_last_error(c)->message);
			break;
		}
		err = (struct erm_errinfo){ 0 };
		if (unreliable_service(&err) == 0)
			st = erm_breaker_record(c, name, permit, ERM_SUCCESS,
			    1, NULL, &recorded);
		else {
			failures++;
			st = erm_breaker_record(c, name, permit, ERM_FAILURE,
			    1, &err, &recorded);
		}
		if (st != ERM_OK) {
			fprintf(stderr, "breaker.record: %s\n",
			    erm_strerror(st));
			break;
		}
		printf("call %d: failed (recorded: %s)\n", call,
		    recorded ? "yes" : "no");
	}

	if (erm_breaker_get(c, name, &b) == ERM_OK) {
		printf("breaker %s is %s\n", name, json_string_value(
		    json_object_get(b, "state")));
		json_decref(b);
	}
	erm_close(c);
	return (ok ? 0 : 1);
}
