/* State the whole daemon shares: the loop, the config in force, counters. */
#ifndef ERMD_H
#define ERMD_H

#include <stdint.h>
#include <sys/types.h>

struct event_base;
struct config;

struct ermd {
	struct event_base	*base;
	struct config		*cfg;		/* the config in force */
	const char		*config_path;	/* NULL: built-in defaults */
	const char		*socket_override;
	const char		*state_override;
	uint64_t		 config_generation;
	uint64_t		 started_at;	/* clock_now_ms() at start */
	uid_t			 euid;
	int			 exit_code;	/* when the loop ends */
};

extern struct ermd	 ermd;

/*
 * Parse the config again and swap it in when valid. Returns 0, or -1 with
 * *errors (a new reference to a JSON array of "file:line: message" strings).
 */
struct json_t;
int	ermd_reload(struct json_t **errors);

/* Stop the loop; the daemon exits with code once shutdown is done. */
void	ermd_shutdown(int code);

#endif
