/*
 * Event fan-out: modules publish typed events, and every subscriber whose
 * mask includes the type gets the same serialised frame. Subscribers are
 * connections in the daemon and plain callbacks in tests.
 */
#ifndef EVENTS_H
#define EVENTS_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

enum event_type {
	EV_BREAKER_STATE,
	EV_ERROR_REPORTED,
	EV_OP_FINISHED,
	EV_WORKFLOW_STATE,
	EV_WORKFLOW_STEP,
	EV_BACKUP_CREATED,
	EV_BACKUP_RESTORED,
	EV_STORAGE_HEALTH,
	EV_ALERT,
	EV_NTYPES
};

#define EVENTS_ALL	((1u << EV_NTYPES) - 1)

struct subscriber {
	uint32_t	  mask;
	/* Receives a complete frame; the bytes are only valid during the call. */
	void		(*deliver)(void *ctx, const uint8_t *frame, size_t len);
	void		 *ctx;
	struct subscriber *next;	/* owned by events.c */
	struct subscriber *prev;
};

const char	*event_type_name(enum event_type);
/* The type named s, or -1. */
int		 event_type_parse(const char *s);

void		 events_subscribe(struct subscriber *);
void		 events_unsubscribe(struct subscriber *);
/*
 * Publish an event of type t with the members of fields (steals the
 * reference; may be NULL). "type" and "at" are added. Returns how many
 * subscribers got it.
 */
int		 events_emit(enum event_type t, json_t *fields);
/* Whether any subscriber takes t: skip building fields when none does. */
int		 events_wanted(enum event_type t);

#endif
