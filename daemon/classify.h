/*
 * Error objects (PROTOCOL.md section 4), error categories and recovery
 * strategies, and the classifier that maps an error object to a category, a
 * strategy and the name of the rule that matched (BEHAVIOUR.md section 3).
 */
#ifndef CLASSIFY_H
#define CLASSIFY_H

#include <stddef.h>
#include <stdint.h>

#include <regex.h>

#include <jansson.h>

#include "params.h"

/*
 * Categories, with the exact strings of PROTOCOL.md section 4. CAT_NONE (0)
 * means "not given", so a zeroed struct never claims a category by accident.
 */
enum category {
	CAT_NONE = 0,
	CAT_NETWORK_ERROR,
	CAT_STORAGE_ERROR,
	CAT_AUTHENTICATION_ERROR,
	CAT_QUOTA_EXCEEDED,
	CAT_FILE_NOT_FOUND,
	CAT_CORRUPTED_DATA,
	CAT_TIMEOUT_ERROR,
	CAT_RATE_LIMIT_ERROR,
	CAT_PERMISSION_ERROR,
	CAT_SYSTEM_ERROR,
	CAT_COUNT			/* one past the last real category */
};

/* A set of categories is a bit mask: bit (1 << cat). */
typedef uint32_t	catset;
#define CATSET_BIT(c)	((catset)1 << (c))
#define CATSET_ALL	((catset)(((1u << CAT_COUNT) - 1) & ~1u))

/* The exact string, or NULL for CAT_NONE and out-of-range values. */
const char	*category_name(enum category c);
/* CAT_NONE when s is not exactly one of the strings. */
enum category	 category_from_name(const char *s);
/*
 * "A,B, C" (spaces around names allowed; "" is the empty set). Returns -1
 * with a message in err naming the bad word.
 */
int		 catset_parse(const char *s, catset *out, char *err,
		    size_t errsz);
/* New reference: an array of category strings in enum order. */
json_t		*catset_to_json(catset set);
/* An array of category strings, or the same as one "A,B" string. */
int		 catset_from_json(const json_t *v, catset *out,
		    const char *field, struct param_err *e);

/* Strategies, with the exact strings of PROTOCOL.md section 4. */
enum strategy {
	STRAT_NONE = 0,
	STRAT_RETRY_WITH_BACKOFF,
	STRAT_RETRY,
	STRAT_FALLBACK_STORAGE,
	STRAT_ROLLBACK,
	STRAT_ESCALATE,
	STRAT_SKIP_AND_LOG,
	STRAT_COUNT
};

const char	*strategy_name(enum strategy s);
enum strategy	 strategy_from_name(const char *s);

/*
 * What op.fail tries for a category, in order. The wire shows primary and
 * fallback only (`strategy: {primary, fallback|null}`); `then` is the
 * further step BEHAVIOUR.md gives STORAGE_ERROR ("rollback, then
 * fallback_storage") and is kept for op.fail.
 */
struct strategy_plan {
	enum strategy	 primary;
	enum strategy	 fallback;	/* STRAT_NONE: none */
	enum strategy	 then;		/* STRAT_NONE: none */
};

/* ---- error objects ----------------------------------------------------- */

#define ERROBJ_EXCEPTION_MAX	128
#define ERROBJ_MESSAGE_MAX	4096
#define ERRNO_NAME_MAX		19

/* Bits of erm_errobj.have: which members were present. */
#define EO_CATEGORY	0x01
#define EO_ERRNO	0x02
#define EO_HTTP_STATUS	0x04
#define EO_EXIT_CODE	0x08
#define EO_SIGNAL	0x10
#define EO_EXCEPTION	0x20
#define EO_MESSAGE	0x40
#define EO_RETRY_AFTER	0x80

/*
 * An error object. errno keeps both forms: a client may send 104 or
 * "ECONNRESET"; err_no is the Linux number and errno_name the name (the
 * name the client used, or the canonical name of the number, or "" for a
 * number that has no name here). Numbers are Linux errno values whatever
 * system the client runs on.
 */
struct erm_errobj {
	unsigned	 have;
	enum category	 category;
	int		 err_no;
	char		 errno_name[ERRNO_NAME_MAX + 1];
	int		 http_status;		/* 100..599 */
	int		 exit_code;		/* 0..255 */
	int		 signal;		/* 1..64 */
	char		 exception[ERROBJ_EXCEPTION_MAX + 1];
	char		*message;		/* owned; errobj_clear frees */
	int64_t		 retry_after_ms;	/* >= 0 */
};

void		 errobj_init(struct erm_errobj *eo);
/* Free the message and empty the object. */
void		 errobj_clear(struct erm_errobj *eo);

/*
 * Fill eo from obj, strictly: every member typed and range-checked, at least
 * one present, an unknown errno name refused. Unknown members are refused
 * too unless allow_other_members (error.report mixes its own fields with
 * the error's). prefix ("error", or NULL at top level) is put in front of
 * the field named by a failure, "error.errno". Returns 0 or -1 with e filled;
 * eo is empty after a failure. Call errobj_clear when done.
 */
int		 errobj_from_json(const json_t *obj, struct erm_errobj *eo,
		    int allow_other_members, struct param_err *e);
int		 errobj_from_json_at(const json_t *obj, const char *prefix,
		    struct erm_errobj *eo, int allow_other_members,
		    struct param_err *e);
/*
 * New reference: the members present. errno is written as its name when it
 * has one (portable across systems), else as the number.
 */
json_t		*errobj_to_json(const struct erm_errobj *eo);
/* The same as compact JSON text (malloc'ed; NULL when out of memory). */
char		*errobj_text(const struct erm_errobj *eo);

/* errno names <-> Linux numbers; -1 / NULL when unknown. */
int		 errno_from_name(const char *name);
const char	*errno_to_name(int num);

/* ---- classification ---------------------------------------------------- */

#define CLASSIFY_MAX_RULES	256
#define CLASSIFY_RULE_MAX_N	9999
#define CLASSIFY_REGEX_MAX	1024

/* A configured message rule: `[classify] rule.N = REGEX => CATEGORY`. */
struct classify_rule {
	int		 n;
	char		*pattern;
	regex_t		 re;
	enum category	 category;
};

struct classify_config {
	struct classify_rule	*rules;		/* sorted by n */
	size_t			 nrules;
	struct strategy_plan	 plan[CAT_COUNT];
};

/* The built-in defaults: no configured rules, the table of section 3. */
void		 classify_config_init(struct classify_config *cfg);
void		 classify_config_free(struct classify_config *cfg);

/*
 * One config-file line. section "classify": key "rule.N" (N 0..9999),
 * value "REGEX => CATEGORY" (split at the last "=>"; POSIX extended regex,
 * matched case-insensitively against the message; setting rule.N again
 * replaces it). section "strategy": key a category, value
 * "primary[,fallback[,then]]". Returns 0, or -1 with a message in err.
 */
int		 classify_config_set(struct classify_config *cfg,
		    const char *section, const char *key, const char *value,
		    char *err, size_t errsz);

struct classify_result {
	enum category		 category;
	struct strategy_plan	 strategy;
	int			 retryable;
	char			 matched[160];	/* "errno:ECONNRESET", ... */
};

/*
 * Classify eo (precedence of BEHAVIOUR.md section 3; classify.c has the
 * order in full). retryable is whether the category is in retry_on, which
 * the caller takes from the effective default retry policy (retry.h) so
 * that a `[retry] retry_on` change shows here too. cfg NULL means the
 * defaults.
 */
void		 classify(const struct classify_config *cfg,
		    const struct erm_errobj *eo, catset retry_on,
		    struct classify_result *res);
/*
 * New reference: {category, strategy: {primary, fallback|null}, retryable,
 * matched}, the result of error.classify.
 */
json_t		*classify_result_to_json(const struct classify_result *res);

#endif
