/* Event fan-out to subscribers; see events.h. */

#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "erm_proto.h"
#include "events.h"
#include "log.h"
#include "names.h"

static const char *const type_names[EV_NTYPES] = {
	[EV_BREAKER_STATE] = "breaker.state",
	[EV_ERROR_REPORTED] = "error.reported",
	[EV_OP_FINISHED] = "op.finished",
	[EV_WORKFLOW_STATE] = "workflow.state",
	[EV_WORKFLOW_STEP] = "workflow.step",
	[EV_BACKUP_CREATED] = "backup.created",
	[EV_BACKUP_RESTORED] = "backup.restored",
	[EV_STORAGE_HEALTH] = "storage.health",
	[EV_ALERT] = "alert",
};

static struct subscriber	*subs;

const char *
event_type_name(enum event_type t)
{
	return (t < EV_NTYPES ? type_names[t] : "unknown");
}

int
event_type_parse(const char *s)
{
	return (name_index(type_names, 0, EV_NTYPES, s));
}

void
events_subscribe(struct subscriber *s)
{
	if (s->next != NULL || s->prev != NULL || subs == s)
		return;		/* already subscribed: only the mask changed */
	s->prev = NULL;
	s->next = subs;
	if (subs != NULL)
		subs->prev = s;
	subs = s;
}

void
events_unsubscribe(struct subscriber *s)
{
	if (s->prev != NULL)
		s->prev->next = s->next;
	else if (subs == s)
		subs = s->next;
	else
		return;
	if (s->next != NULL)
		s->next->prev = s->prev;
	s->next = s->prev = NULL;
}

/*
 * The frame is serialised once and the same bytes go to every subscriber. A
 * subscriber may unsubscribe itself from inside deliver (a connection that
 * overflows its output limit is closed), so the next pointer is read first.
 */
int
events_wanted(enum event_type t)
{
	struct subscriber	*s;

	for (s = subs; s != NULL; s = s->next)
		if (s->mask & (1u << t))
			return (1);
	return (0);
}

int
events_emit(enum event_type t, json_t *fields)
{
	struct subscriber	*s, *next;
	json_t			*params, *msg;
	uint8_t			*frame;
	size_t			 len;
	int			 n = 0;

	for (s = subs; s != NULL; s = s->next)
		if (s->mask & (1u << t))
			break;
	if (s == NULL) {
		json_decref(fields);
		return (0);
	}
	params = json_pack("{s:s, s:I}", "type", type_names[t], "at",
	    (json_int_t)clock_now_ms());
	if (params != NULL && fields != NULL)
		json_object_update_missing(params, fields);
	json_decref(fields);
	msg = json_pack("{s:s, s:o}", "method", "event", "params", params);
	if (msg == NULL) {
		log_warnx("%s: out of memory", __func__);
		return (0);
	}
	frame = erm_frame_encode(msg, UINT32_MAX, &len);
	json_decref(msg);
	if (frame == NULL) {
		log_warnx("%s: cannot encode a %s event", __func__,
		    type_names[t]);
		return (0);
	}
	for (s = subs; s != NULL; s = next) {
		next = s->next;
		if (s->mask & (1u << t)) {
			s->deliver(s->ctx, frame, len);
			n++;
		}
	}
	free(frame);
	return (n);
}
