/*
 * Typed option tables, one row per key (name, type, range, where it lands),
 * in the manner of Redis config.c: the [retry] and [breaker] families parse
 * config-file strings, unpack JSON objects strictly and render their
 * effective values through the same rows, so the three never disagree.
 */
#ifndef OPTS_H
#define OPTS_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "params.h"

struct config;

/*
 * Storage of each type in the target struct: OPT_INT int64_t, OPT_NUM
 * double, OPT_BOOL int, OPT_ENUM int (index into words), OPT_CATSET catset.
 */
enum opt_type {
	OPT_INT,
	OPT_NUM,
	OPT_BOOL,
	OPT_ENUM,
	OPT_CATSET,
};

struct opt {
	const char		*name;
	enum opt_type		 type;
	double			 min, max;	/* INT, NUM: inclusive */
	size_t			 off;		/* offsetof() in the target */
	const char *const	*words;		/* OPT_ENUM; NULL-terminated */
};

/* A table ends with a NULL name; at most OPT_MAX rows (mask bits). */
#define OPT_MAX		64
#define OPT_BIT(i)	((uint64_t)1 << (i))

/* Longest duration any *_ms option accepts: ten years. */
#define OPT_MAX_MS	315360000000.0

/* The row index of name, or -1. */
int	 opt_find(const struct opt *tab, const char *name);

/*
 * Parse a config-file value into dst: integers and numbers in full (no
 * trailing junk), booleans true/false/yes/no/on/off/1/0, enums by exact
 * word, category sets as "A,B". Returns 0, or -1 with a message in err.
 */
int	 opt_parse(const struct opt *o, void *dst, const char *value,
	    char *err, size_t errsz);

/*
 * opt_parse with the messages of config.c's fixed sections, which the
 * module sections ([alerts], [errors], [backup], [supabase], [workflow])
 * have always given: "KEY: N is out of range (MIN to MAX)" and "KEY: 'V'
 * is not one of A, B". The other failures read as from opt_parse.
 */
int	 opt_parse_conf(const struct opt *o, void *dst, const char *value,
	    char *err, size_t errsz);

/*
 * A config_kind check over tab: -1 with err untouched when key is not a
 * row (config.c then reports the unknown key), else opt_parse_conf into
 * scratch, a target struct the caller throws away.
 */
int	 opts_check_conf(const struct opt *tab, void *scratch,
	    const char *key, const char *value, char *err, size_t errsz);

/*
 * Parse into dst every row of tab given in [section] of cfg, the last one
 * winning. cfg has been checked: a value that does not parse is skipped.
 */
void	 opts_from_config(const struct opt *tab, void *dst,
	    const struct config *cfg, const char *section);

/* The same for one JSON value; a failure names field. */
int	 opt_from_json(const struct opt *o, void *dst, const json_t *v,
	    const char *field, struct param_err *e);

/*
 * Unpack every member of obj into dst, strictly: a member that is not a row
 * is refused naming "prefix.member". *set (may be NULL) gets the bits of the
 * rows given. When unset is not NULL a member whose value is null is
 * accepted and its bit put in *unset ("drop this override"); otherwise null
 * is a type error. dst may be partly written after a failure.
 */
int	 opts_from_json(const struct opt *tab, void *dst, const json_t *obj,
	    const char *prefix, uint64_t *set, uint64_t *unset,
	    struct param_err *e);

/* New reference: {name: value} for every row. */
json_t	*opts_to_json(const struct opt *tab, const void *src);

/* Copy the rows in mask from src to dst. */
void	 opts_overlay(const struct opt *tab, void *dst, const void *src,
	    uint64_t mask);

/* New reference: an integer when d is integral, else a real. */
json_t	*opt_number_json(double d);

/* 1 when name is 1..128 bytes of [A-Za-z0-9._:/-] (breakers, policies). */
#define OPT_NAME_MAX	128
int	 opt_name_valid(const char *name);

#endif
