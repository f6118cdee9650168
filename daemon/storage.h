/*
 * Fallback storage (BEHAVIOUR.md §8): the configured backends (a directory,
 * or an http URL served by a WebDAV-style server), the health ermd keeps for
 * each one for the whole host (active checks, passive ejection), the
 * selection policy (failover or weighted round robin), and puts and gets
 * that fall through the backends. The protocol handlers are in m_storage.c.
 *
 * Keys are 1-255 bytes of [A-Za-z0-9._-] not starting with '.': a key is
 * one file name in a dir backend and one path segment of an http backend's
 * URL, so it can never reach outside the backend, and the names ermd keeps
 * for itself (temp files, probes) all start with '.'.
 */
#ifndef STORAGE_H
#define STORAGE_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

struct config;
struct event_base;

#define STORAGE_KEY_MAX		255
#define STORAGE_NAME_MAX	64
#define STORAGE_LOCATION_MAX	2048

enum storage_type { STORAGE_DIR, STORAGE_HTTP };
enum storage_policy { POLICY_FAILOVER, POLICY_ROUND_ROBIN };

/* Register the [storage] and [backend.NAME] config sections. */
void		 storage_register(void);
/*
 * Start: metrics, and the HTTP client on base. Backends come with the
 * config (config_apply). Returns -1 if the HTTP client cannot start.
 */
int		 storage_start(struct event_base *base);
/* Stop checks and timers; operations in flight finish with 1007. */
void		 storage_stop(void);

/* 0 when key is a valid key, else -1 with the reason in why. */
int		 storage_key_valid(const char *key, char *why, size_t whysz);

/* ---- selection and health ------------------------------------------ */

struct storage_choice {
	char			name[STORAGE_NAME_MAX + 1];
	enum storage_type	type;
	char			location[STORAGE_LOCATION_MAX];	/* path or
								 * URL, no
								 * userinfo */
};

/*
 * The backend to use next under the policy, skipping the healthy backends
 * named in exclude (nexclude names; unknown names are ignored): the
 * lowest-priority healthy one for failover, the next by smooth weighted
 * round robin for round_robin (which this advances). Returns 0 with *out
 * filled, or -1 when no healthy backend is left.
 *
 * This is the seam for op.fail's "fallback" decision when ops land: pass
 * the backends the op already tried, return the choice as op.fail's
 * `backend`.
 */
int		 storage_select_next(const char *const *exclude,
		    size_t nexclude, struct storage_choice *out);
/* 1 when a backend of that name is configured. */
int		 storage_backend_exists(const char *name);
/* New reference: the result of storage.status. */
json_t		*storage_status(void);

/*
 * A passive observation from a client (storage.report) or from ermd's own
 * puts and gets. counts is 0 for a failure that says nothing about the
 * backend's health (a missing object). error is a short text for
 * last_error (may be NULL). latency_ms < 0: not given. Returns -1 when
 * there is no such backend, else 0 with *healthy set.
 */
int		 storage_observe(const char *name, int ok, int counts,
		    const char *error, int64_t latency_ms, int *healthy);

/* ---- operations ---------------------------------------------------- */

/*
 * How an operation ended. code 0: result is a new reference to the reply.
 * Otherwise code is an ERM_* error with msg, and data a new reference or
 * NULL. The callback takes result and data over.
 */
struct storage_outcome {
	int	 code;
	char	 msg[256];
	json_t	*result;
	json_t	*data;
};
typedef void	(*storage_done_fn)(struct storage_outcome *, void *arg);

/*
 * Run the active checks of backend name (NULL: all) now, and call done
 * with storage.status once each has finished a check that started after
 * this call. Returns -1 with *now filled when it cannot start (no such
 * backend); done is then not called.
 */
int		 storage_check(const char *name, storage_done_fn done,
		    void *arg, struct storage_outcome *now);

/*
 * Store size bytes of fd (read with pread from offset 0; the descriptor is
 * taken over and closed when done) under key: try the selected backend,
 * then fall back in policy order. done gets storage.put's reply. Returns -1
 * with *now filled (and fd closed) when nothing could start.
 */
int		 storage_put(const char *key, int fd, uint64_t size,
		    storage_done_fn done, void *arg,
		    struct storage_outcome *now);

/*
 * Where storage_get writes: the file name in an open directory (the
 * descriptor is taken over). The object is written to a temp file there,
 * fsynced, given mode and (when chown is set) uid/gid, and renamed over
 * name; the directory is fsynced.
 */
struct storage_dest {
	int		 dirfd;
	char		 name[NAME_MAX + 1];
	char		 path[PATH_MAX];	/* for errors */
	mode_t		 mode;
	int		 chown;
	uid_t		 uid;
	gid_t		 gid;
};

/*
 * Fetch key into dest from the first backend that has it: healthy backends
 * in policy order, then the others. done gets storage.get's reply, or 1001
 * when every backend answered that it has no such key. Returns -1 with *now
 * filled (and dest->dirfd closed) when nothing could start.
 */
int		 storage_get(const char *key, const struct storage_dest *dest,
		    storage_done_fn done, void *arg,
		    struct storage_outcome *now);

#endif
