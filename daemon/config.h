/*
 * The configuration: one table of options for the fixed sections, and a
 * registry through which each module validates its own named sections
 * ([breaker.NAME], [root.NAME], ...). A reload parses into a new config and
 * is swapped in only when it is valid (Redis config.c, OpenBSD parse.y).
 */
#ifndef CONFIG_H
#define CONFIG_H

#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#define ERMD_SYSCONF_FILE	"/etc/ermd/ermd.conf"
#define ERMD_DEFAULT_SOCKET	"/run/ermd/ermd.sock"
#define ERMD_DEFAULT_STATE	"/var/lib/ermd"

enum durability { DURABILITY_FULL, DURABILITY_NORMAL };

/* A key=value of a module-owned section, kept for the module to apply. */
struct config_entry {
	char	*section;	/* "breaker.s3", "retry", ... */
	char	*key;
	char	*value;
	char	*file;
	int	 line;
};

struct config {
	/* [daemon] */
	char		*socket;
	char		*state_dir;
	char		*admin_group;		/* name or number; "" none */
	gid_t		 admin_gid;
	int		 has_admin_gid;
	int64_t		 socket_mode;
	int64_t		 max_connections;
	int64_t		 max_frame;
	int64_t		 idle_timeout_ms;
	int64_t		 read_timeout_ms;
	int64_t		 max_output_bytes;
	int64_t		 max_frames_per_wakeup;
	int64_t		 max_inflight;		/* per connection */
	int64_t		 max_breakers;
	int64_t		 max_ops;		/* running at once */
	/* [store] */
	char		*store_path;		/* "" means <state_dir>/ermd.db */
	int		 durability;
	int64_t		 breaker_journal_bytes;

	struct config_entry	*entries;
	size_t			 nentries;

	/* Problems found, each "file:line: message"; valid when nerrors == 0. */
	char		**errors;
	size_t		  nerrors;
};

/*
 * A module's named sections. prefix "breaker" owns [breaker] and, when named
 * is set, [breaker.NAME]. check validates one key; it returns -1 with a
 * message in err for a bad key or value.
 */
struct config_kind {
	const char	*prefix;
	int		 named;
	int		(*check)(const char *section, const char *key,
			    const char *value, char *err, size_t errsz);
	const char	*const *keys;	/* known keys, for suggestions */
	/*
	 * Take the kind's sections from a config that has just come into
	 * force (at start and after each successful reload); NULL if the
	 * module reads cfg->entries itself.
	 */
	void		(*apply)(const struct config *);
};

/*
 * Checks across keys, run after the whole config is read; each problem is
 * reported with config_add_error.
 */
void		 config_register_validator(void (*fn)(struct config *));

/*
 * Is entry i the first of its section (whose keys may be spread over the
 * main file and drop-ins)? For a validator that checks each section once.
 */
int		 config_first_of_section(const struct config *, size_t i);
/* Record a problem found by a validate hook ("file:line: message"). */
void		 config_add_error(struct config *, const char *file, int line,
		    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

void		 config_register_kind(const struct config_kind *);
/* Call apply of every registered kind with cfg. */
void		 config_apply(const struct config *cfg);

/*
 * Parse path (NULL: built-in defaults only) and its drop-in directory
 * PATH.d/NAME.conf in name order. Always returns a config (NULL only when out of
 * memory); check nerrors. socket and state_dir overrides (from -S and -D)
 * replace the file's values when not NULL.
 */
struct config	*config_load(const char *path, const char *socket_override,
		    const char *state_override);
void		 config_free(struct config *);

/* The effective database path. */
const char	*config_store_path(const struct config *);

/* The fixed sections' options, for documentation checks: 0, or -1 past
 * the last. */
int		 config_option_info(size_t i, const char **section,
		    const char **key, const char **def);

#endif
