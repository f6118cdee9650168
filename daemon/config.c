/* Configuration parsing, validation and defaults; see config.h. */

#include <ctype.h>
#include <errno.h>
#include <glob.h>
#include <grp.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ini.h>

#include "config.h"

enum opt_type { T_STR, T_INT, T_MODE, T_ENUM };

struct option {
	const char		*section;
	const char		*key;
	enum opt_type		 type;
	int64_t			 min, max;
	const char		*def;
	size_t			 off;
	const char *const	*words;		/* T_ENUM */
};

static const char *const durability_words[] = { "full", "normal", NULL };

#define OFF(f)	offsetof(struct config, f)

/*
 * Every key of the fixed sections. conf/ermd.conf documents each one with
 * this default; tests/unit/test_config.c checks the two agree.
 */
static const struct option options[] = {
	{ "daemon", "socket", T_STR, 1, 107, ERMD_DEFAULT_SOCKET, OFF(socket),
	    NULL },
	{ "daemon", "state_dir", T_STR, 1, PATH_MAX - 64, ERMD_DEFAULT_STATE,
	    OFF(state_dir), NULL },
	{ "daemon", "admin_group", T_STR, 0, 64, "", OFF(admin_group), NULL },
	{ "daemon", "socket_mode", T_MODE, 0, 0777, "0660", OFF(socket_mode),
	    NULL },
	{ "daemon", "max_connections", T_INT, 1, 1000000, "1024",
	    OFF(max_connections), NULL },
	{ "daemon", "max_frame", T_INT, 1024, 256 * 1024 * 1024, "1048576",
	    OFF(max_frame), NULL },
	{ "daemon", "idle_timeout_ms", T_INT, 0, INT64_C(86400000) * 365, "0",
	    OFF(idle_timeout_ms), NULL },
	{ "daemon", "read_timeout_ms", T_INT, 0, INT64_C(86400000), "10000",
	    OFF(read_timeout_ms), NULL },
	{ "daemon", "max_output_bytes", T_INT, 65536, INT64_C(1) << 32,
	    "8388608", OFF(max_output_bytes), NULL },
	{ "daemon", "max_frames_per_wakeup", T_INT, 1, 100000, "64",
	    OFF(max_frames_per_wakeup), NULL },
	{ "daemon", "max_inflight", T_INT, 1, 1000000, "256",
	    OFF(max_inflight), NULL },
	{ "daemon", "max_breakers", T_INT, 1, 1000000, "10000",
	    OFF(max_breakers), NULL },
	{ "daemon", "max_ops", T_INT, 1, 1000000, "10000", OFF(max_ops),
	    NULL },
	{ "store", "path", T_STR, 0, PATH_MAX - 16, "", OFF(store_path), NULL },
	{ "store", "durability", T_ENUM, 0, 0, "full", OFF(durability),
	    durability_words },
	{ "store", "breaker_journal_bytes", T_INT, 65536, INT64_C(1) << 40,
	    "67108864", OFF(breaker_journal_bytes), NULL },
};
#define NOPTIONS	(sizeof(options) / sizeof(options[0]))

#define MAX_KINDS	16
static const struct config_kind	*kinds[MAX_KINDS];
static size_t			 nkinds;

void
config_register_kind(const struct config_kind *k)
{
	size_t	i;

	for (i = 0; i < nkinds; i++)
		if (kinds[i] == k)
			return;
	if (nkinds < MAX_KINDS)
		kinds[nkinds++] = k;
}

static void	(*validators[MAX_KINDS])(struct config *);
static size_t	  nvalidators;

void
config_register_validator(void (*fn)(struct config *))
{
	size_t	i;

	for (i = 0; i < nvalidators; i++)
		if (validators[i] == fn)
			return;
	if (nvalidators < MAX_KINDS)
		validators[nvalidators++] = fn;
}

void
config_apply(const struct config *cfg)
{
	size_t	i;

	for (i = 0; i < nkinds; i++)
		if (kinds[i]->apply != NULL)
			kinds[i]->apply(cfg);
}

struct parse {
	struct config	*cfg;
	const char	*file;
	FILE		*fp;
	int		 line;
	int		 oom;
	char		*linebuf;
	size_t		 linecap;
};

static void
add_error(struct parse *p, int line, const char *fmt, ...)
{
	char	 buf[512], *s, **v;
	va_list	 ap;
	int	 n;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (line > 0)
		n = asprintf(&s, "%s:%d: %s", p->file, line, buf);
	else
		n = asprintf(&s, "%s: %s", p->file, buf);
	if (n == -1) {
		p->oom = 1;
		return;
	}
	v = reallocarray(p->cfg->errors, p->cfg->nerrors + 1, sizeof(*v));
	if (v == NULL) {
		free(s);
		p->oom = 1;
		return;
	}
	v[p->cfg->nerrors++] = s;
	p->cfg->errors = v;
}

/* Levenshtein distance, for "did you mean" suggestions. */
static size_t
distance(const char *a, const char *b)
{
	size_t	la = strlen(a), lb = strlen(b), i, j, prev, tmp;
	size_t	row[65];

	if (la > 64 || lb > 64)
		return (SIZE_MAX);
	for (j = 0; j <= lb; j++)
		row[j] = j;
	for (i = 1; i <= la; i++) {
		prev = row[0];
		row[0] = i;
		for (j = 1; j <= lb; j++) {
			tmp = row[j];
			row[j] = prev + (a[i - 1] == b[j - 1] ? 0 : 1);
			if (row[j - 1] + 1 < row[j])
				row[j] = row[j - 1] + 1;
			if (tmp + 1 < row[j])
				row[j] = tmp + 1;
			prev = tmp;
		}
	}
	return (row[lb]);
}

/* The closest of the candidates to word within 3 edits, or NULL. */
struct nearest {
	const char	*best;
	size_t		 d;
};

static void
consider(struct nearest *n, const char *word, const char *cand)
{
	size_t	d = distance(word, cand);

	if (d <= 3 && d < n->d) {
		n->best = cand;
		n->d = d;
	}
}

static const struct config_kind *
find_kind(const char *section, int *named)
{
	size_t	i, l;

	for (i = 0; i < nkinds; i++) {
		l = strlen(kinds[i]->prefix);
		if (strcmp(section, kinds[i]->prefix) == 0) {
			*named = 0;
			return (kinds[i]);
		}
		if (kinds[i]->named && strncmp(section, kinds[i]->prefix,
		    l) == 0 && section[l] == '.' && section[l + 1] != '\0') {
			*named = 1;
			return (kinds[i]);
		}
	}
	return (NULL);
}

static int
is_fixed_section(const char *section)
{
	size_t	i;

	for (i = 0; i < NOPTIONS; i++)
		if (strcmp(options[i].section, section) == 0)
			return (1);
	return (0);
}

static void
unknown_section(struct parse *p, const char *section)
{
	struct nearest	 n = { NULL, SIZE_MAX };
	size_t		 i;

	for (i = 0; i < NOPTIONS; i++)
		consider(&n, section, options[i].section);
	for (i = 0; i < nkinds; i++)
		consider(&n, section, kinds[i]->prefix);
	if (n.best != NULL)
		add_error(p, p->line, "unknown section [%s]; did you mean [%s]?",
		    section, n.best);
	else
		add_error(p, p->line, "unknown section [%s]", section);
}

static void
unknown_key(struct parse *p, const char *section, const char *key,
    const char *const *kindkeys)
{
	struct nearest	 n = { NULL, SIZE_MAX };
	const char	*where = NULL;
	size_t		 i;

	for (i = 0; i < NOPTIONS; i++) {
		if (strcmp(options[i].section, section) != 0)
			continue;
		consider(&n, key, options[i].key);
	}
	for (i = 0; kindkeys != NULL && kindkeys[i] != NULL; i++)
		consider(&n, key, kindkeys[i]);
	if (n.best == NULL) {
		/* A key put under the wrong fixed section. */
		for (i = 0; i < NOPTIONS; i++)
			if (strcmp(options[i].key, key) == 0) {
				where = options[i].section;
				break;
			}
	}
	if (n.best != NULL)
		add_error(p, p->line, "unknown key '%s' in [%s]; did you mean "
		    "'%s'?", key, section, n.best);
	else if (where != NULL)
		add_error(p, p->line, "unknown key '%s' in [%s]; it belongs in "
		    "[%s]", key, section, where);
	else
		add_error(p, p->line, "unknown key '%s' in [%s]", key, section);
}

/* Parse a whole decimal integer, refusing trailing junk and overflow. */
static int
parse_int(const char *s, int base, int64_t *out)
{
	char		*end;
	long long	 v;

	if (*s == '\0' || isspace((unsigned char)*s))
		return (-1);
	errno = 0;
	v = strtoll(s, &end, base);
	if (errno != 0 || *end != '\0')
		return (-1);
	*out = v;
	return (0);
}

/* Apply value to one option of cfg; -1 with a message in err. */
static int
set_option(struct config *cfg, const struct option *o, const char *value,
    char *err, size_t errsz)
{
	char	*base = (char *)cfg + o->off, *s;
	int64_t	 v;
	size_t	 i;

	switch (o->type) {
	case T_STR:
		if (strlen(value) > (size_t)o->max) {
			snprintf(err, errsz, "%s is longer than %lld bytes",
			    o->key, (long long)o->max);
			return (-1);
		}
		if ((s = strdup(value)) == NULL) {
			snprintf(err, errsz, "out of memory");
			return (-1);
		}
		free(*(char **)base);
		*(char **)base = s;
		return (0);
	case T_INT:
	case T_MODE:
		if (parse_int(value, o->type == T_MODE ? 8 : 10, &v) == -1) {
			snprintf(err, errsz, "%s: '%s' is not %s", o->key,
			    value, o->type == T_MODE ? "an octal mode" :
			    "an integer");
			return (-1);
		}
		if (v < o->min || v > o->max) {
			snprintf(err, errsz, o->type == T_MODE ?
			    "%s: %llo is out of range (%llo to %llo)" :
			    "%s: %lld is out of range (%lld to %lld)", o->key,
			    (long long)v, (long long)o->min,
			    (long long)o->max);
			return (-1);
		}
		*(int64_t *)base = v;
		return (0);
	case T_ENUM:
		for (i = 0; o->words[i] != NULL; i++)
			if (strcmp(value, o->words[i]) == 0) {
				*(int *)base = (int)i;
				return (0);
			}
		snprintf(err, errsz, "%s: '%s' is not one of", o->key, value);
		for (i = 0; o->words[i] != NULL; i++) {
			size_t	l = strlen(err);

			snprintf(err + l, errsz - l, "%s %s", i ? "," : "",
			    o->words[i]);
		}
		return (-1);
	}
	return (-1);
}

static int
add_entry(struct parse *p, const char *section, const char *key,
    const char *value)
{
	struct config		*cfg = p->cfg;
	struct config_entry	*v, *e;

	v = reallocarray(cfg->entries, cfg->nentries + 1, sizeof(*v));
	if (v == NULL)
		return (-1);
	cfg->entries = v;
	e = &v[cfg->nentries];
	e->section = strdup(section);
	e->key = strdup(key);
	e->value = strdup(value);
	e->file = strdup(p->file);
	e->line = p->line;
	if (e->section == NULL || e->key == NULL || e->value == NULL ||
	    e->file == NULL) {
		free(e->section);
		free(e->key);
		free(e->value);
		free(e->file);
		return (-1);
	}
	cfg->nentries++;
	return (0);
}

static int
on_key(void *user, const char *section, const char *key,
    const char *value)
{
	struct parse			*p = user;
	const struct config_kind	*k;
	char				 err[256];
	size_t				 i;
	int				 named;

	if (*section == '\0') {
		add_error(p, p->line, "'%s' is outside any section", key);
		return (1);
	}
	for (i = 0; i < NOPTIONS; i++) {
		if (strcmp(options[i].section, section) != 0 ||
		    strcmp(options[i].key, key) != 0)
			continue;
		if (set_option(p->cfg, &options[i], value, err,
		    sizeof(err)) == -1)
			add_error(p, p->line, "%s", err);
		return (1);
	}
	if (is_fixed_section(section)) {
		unknown_key(p, section, key, NULL);
		return (1);
	}
	if ((k = find_kind(section, &named)) == NULL) {
		unknown_section(p, section);
		return (1);
	}
	err[0] = '\0';
	if (k->check(section, key, value, err, sizeof(err)) == -1) {
		if (err[0] == '\0')
			unknown_key(p, section, key, k->keys);
		else
			add_error(p, p->line, "%s", err);
		return (1);
	}
	if (add_entry(p, section, key, value) == -1)
		p->oom = 1;
	return (1);
}

/*
 * inih calls the reader once per line, which is how line numbers are kept
 * (Debian's inih is built without INI_HANDLER_LINENO). The reader also does
 * the syntax check itself so that every bad line is reported, not only the
 * first one inih would return.
 */
static char *
read_line(char *str, int num, void *stream)
{
	struct parse	*p = stream;
	ssize_t		 n;
	char		*s;

	if ((n = getline(&p->linebuf, &p->linecap, p->fp)) == -1)
		return (NULL);
	p->line++;
	if (n >= num - 1) {
		add_error(p, p->line, "line longer than %d bytes", num - 2);
		snprintf(str, (size_t)num, "\n");
		return (str);
	}
	for (s = p->linebuf; isspace((unsigned char)*s); s++)
		;
	if (*s != '\0' && *s != ';' && *s != '#') {
		if (*s == '[') {
			if (strchr(s, ']') == NULL)
				add_error(p, p->line, "section header without "
				    "']'");
		} else if (strchr(s, '=') == NULL) {
			add_error(p, p->line, "expected 'key = value'");
			snprintf(str, (size_t)num, "\n");
			return (str);
		}
	}
	memcpy(str, p->linebuf, (size_t)n + 1);
	return (str);
}

static void
parse_file(struct config *cfg, const char *path)
{
	struct parse	p;

	memset(&p, 0, sizeof(p));
	p.cfg = cfg;
	p.file = path;
	if ((p.fp = fopen(path, "r")) == NULL) {
		add_error(&p, 0, "cannot open: %s", strerror(errno));
		return;
	}
	(void)ini_parse_stream(read_line, &p, on_key, &p);
	if (ferror(p.fp))
		add_error(&p, 0, "read error: %s", strerror(errno));
	fclose(p.fp);
	free(p.linebuf);
	if (p.oom)
		add_error(&p, 0, "out of memory");
}

int
config_first_of_section(const struct config *cfg, size_t i)
{
	size_t	j;

	for (j = 0; j < i; j++)
		if (strcmp(cfg->entries[j].section,
		    cfg->entries[i].section) == 0)
			return (0);
	return (1);
}

void
config_add_error(struct config *cfg, const char *file, int line,
    const char *fmt, ...)
{
	struct parse	p;
	char		buf[400];
	va_list		ap;

	memset(&p, 0, sizeof(p));
	p.cfg = cfg;
	p.file = file;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	add_error(&p, line, "%s", buf);
}

static void
resolve_admin_group(struct config *cfg, const char *file)
{
	struct group	*gr;
	struct parse	 p;
	int64_t		 gid;

	memset(&p, 0, sizeof(p));
	p.cfg = cfg;
	p.file = file;
	cfg->has_admin_gid = 0;
	if (cfg->admin_group[0] == '\0')
		return;
	if (parse_int(cfg->admin_group, 10, &gid) == 0 && gid >= 0 &&
	    gid < INT32_MAX) {
		cfg->admin_gid = (gid_t)gid;
		cfg->has_admin_gid = 1;
		return;
	}
	if ((gr = getgrnam(cfg->admin_group)) == NULL) {
		add_error(&p, 0, "daemon.admin_group: no group named '%s'",
		    cfg->admin_group);
		return;
	}
	cfg->admin_gid = gr->gr_gid;
	cfg->has_admin_gid = 1;
}

struct config *
config_load(const char *path, const char *socket_override,
    const char *state_override)
{
	struct config	*cfg;
	char		 err[256], *pattern = NULL;
	glob_t		 g;
	size_t		 i;

	if ((cfg = calloc(1, sizeof(*cfg))) == NULL)
		return (NULL);
	for (i = 0; i < NOPTIONS; i++)
		if (set_option(cfg, &options[i], options[i].def, err,
		    sizeof(err)) == -1) {
			config_free(cfg);
			return (NULL);
		}
	if (path != NULL) {
		parse_file(cfg, path);
		if (asprintf(&pattern, "%s.d/*.conf", path) != -1 &&
		    glob(pattern, 0, NULL, &g) == 0) {
			for (i = 0; i < g.gl_pathc; i++)
				parse_file(cfg, g.gl_pathv[i]);
			globfree(&g);
		}
		free(pattern);
	}
	if (socket_override != NULL)
		(void)set_option(cfg, &options[0], socket_override, err,
		    sizeof(err));
	if (state_override != NULL)
		(void)set_option(cfg, &options[1], state_override, err,
		    sizeof(err));
	resolve_admin_group(cfg, path != NULL ? path : "(defaults)");
	for (i = 0; i < nvalidators; i++)
		validators[i](cfg);
	return (cfg);
}

void
config_free(struct config *cfg)
{
	size_t	i;

	if (cfg == NULL)
		return;
	for (i = 0; i < NOPTIONS; i++)
		if (options[i].type == T_STR)
			free(*(char **)((char *)cfg + options[i].off));
	for (i = 0; i < cfg->nentries; i++) {
		free(cfg->entries[i].section);
		free(cfg->entries[i].key);
		free(cfg->entries[i].value);
		free(cfg->entries[i].file);
	}
	free(cfg->entries);
	for (i = 0; i < cfg->nerrors; i++)
		free(cfg->errors[i]);
	free(cfg->errors);
	free(cfg);
}

const char *
config_store_path(const struct config *cfg)
{
	static char	buf[PATH_MAX];

	if (cfg->store_path[0] != '\0')
		return (cfg->store_path);
	snprintf(buf, sizeof(buf), "%s/ermd.db", cfg->state_dir);
	return (buf);
}

int
config_option_info(size_t i, const char **section, const char **key,
    const char **def)
{
	if (i >= NOPTIONS)
		return (-1);
	*section = options[i].section;
	*key = options[i].key;
	*def = options[i].def;
	return (0);
}
