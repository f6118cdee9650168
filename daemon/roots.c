/* The roots that confine every path a client names; see roots.h. */

#include <sys/stat.h>
#include <sys/syscall.h>

#include <linux/openat2.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "erm_proto.h"
#include "log.h"
#include "roots.h"

struct root {
	char		 name[ROOT_NAME_MAX];
	char		*path;		/* canonical (realpath) */
	char		*conf_path;	/* as configured */
	int		 fd;		/* O_RDONLY | O_DIRECTORY */
	int		 flags;
	uid_t		*users;
	size_t		 nusers;
	gid_t		*groups;
	size_t		 ngroups;
};

static struct root	*roots;
static size_t		 nroots;

/* Cleared (for good) the first time the kernel says it has no openat2. */
static int		 have_openat2 = 1;

static const char *const root_keys[] = {
	"path", "allow_users", "allow_groups", "allow_hardlinks", NULL
};

/* ---- config ------------------------------------------------------------ */

/* Parse "yes"/"no" (and true/false, on/off, 1/0); -1 for anything else. */
static int
parse_bool(const char *s)
{
	if (strcmp(s, "yes") == 0 || strcmp(s, "true") == 0 ||
	    strcmp(s, "on") == 0 || strcmp(s, "1") == 0)
		return (1);
	if (strcmp(s, "no") == 0 || strcmp(s, "false") == 0 ||
	    strcmp(s, "off") == 0 || strcmp(s, "0") == 0)
		return (0);
	return (-1);
}

/* A user or group given by name or number; -1 when there is none. */
static int
parse_id(const char *word, int group, uint32_t *out)
{
	struct passwd	*pw;
	struct group	*gr;
	char		*end;
	unsigned long	 v;

	if (isdigit((unsigned char)word[0])) {
		errno = 0;
		v = strtoul(word, &end, 10);
		if (errno != 0 || *end != '\0' || v >= UINT32_MAX)
			return (-1);
		*out = (uint32_t)v;
		return (0);
	}
	if (group) {
		if ((gr = getgrnam(word)) == NULL)
			return (-1);
		*out = gr->gr_gid;
	} else {
		if ((pw = getpwnam(word)) == NULL)
			return (-1);
		*out = pw->pw_uid;
	}
	return (0);
}

/*
 * Parse a list of users or groups separated by commas or blanks. With out
 * NULL only check it. Returns the number of entries, or -1 with err set.
 */
static int
parse_ids(const char *value, int group, uint32_t **out, char *err,
    size_t errsz)
{
	char		*copy, *p, *word;
	uint32_t	*v = NULL, *nv, id;
	int		 n = 0;

	if ((copy = strdup(value)) == NULL) {
		snprintf(err, errsz, "out of memory");
		return (-1);
	}
	p = copy;
	while ((word = strsep(&p, ", \t")) != NULL) {
		if (*word == '\0')
			continue;
		if (parse_id(word, group, &id) == -1) {
			snprintf(err, errsz, "%s: no %s named '%.64s'",
			    group ? "allow_groups" : "allow_users",
			    group ? "group" : "user", word);
			free(v);
			free(copy);
			return (-1);
		}
		if (out != NULL) {
			if ((nv = reallocarray(v, (size_t)n + 1,
			    sizeof(*v))) == NULL) {
				snprintf(err, errsz, "out of memory");
				free(v);
				free(copy);
				return (-1);
			}
			v = nv;
			v[n] = id;
		}
		n++;
	}
	free(copy);
	if (out != NULL)
		*out = v;
	return (n);
}

static int
root_check(const char *section, const char *key, const char *value,
    char *err, size_t errsz)
{
	if (strcmp(section, "root") == 0) {
		snprintf(err, errsz, "[root] needs a name: [root.NAME]");
		return (-1);
	}
	if (strlen(section) - 5 >= ROOT_NAME_MAX) {
		snprintf(err, errsz, "[%s]: a root's name is at most %d bytes",
		    section, ROOT_NAME_MAX - 1);
		return (-1);
	}
	if (strcmp(key, "path") == 0) {
		if (value[0] != '/') {
			snprintf(err, errsz, "path: '%s' is not an absolute "
			    "path", value);
			return (-1);
		}
		if (strlen(value) >= PATH_MAX - NAME_MAX) {
			snprintf(err, errsz, "path: longer than %d bytes",
			    PATH_MAX - NAME_MAX - 1);
			return (-1);
		}
		return (0);
	}
	if (strcmp(key, "allow_users") == 0)
		return (parse_ids(value, 0, NULL, err, errsz) == -1 ? -1 : 0);
	if (strcmp(key, "allow_groups") == 0)
		return (parse_ids(value, 1, NULL, err, errsz) == -1 ? -1 : 0);
	if (strcmp(key, "allow_hardlinks") == 0) {
		if (parse_bool(value) == -1) {
			snprintf(err, errsz, "allow_hardlinks: '%s' is not yes "
			    "or no", value);
			return (-1);
		}
		return (0);
	}
	return (-1);		/* unknown key: the parser suggests one */
}

/*
 * What root_check cannot see key by key: each [root.NAME] has a path. Its
 * keys may be spread over the main file and drop-ins; a missing path is
 * reported once, at the section's first key (as storage.c does for a
 * backend). A section with no key at all leaves no entry and so no root:
 * the parser keeps no record of bare headers. Whether the directory
 * exists is not checked here (nor does storage.c check a dir backend's
 * directory): root_open leaves out, with a warning, a root it cannot open
 * when the config comes into force.
 */
static void
root_validate(struct config *cfg)
{
	const struct config_entry	*first;
	size_t				 i, j;
	int				 has_path;

	for (i = 0; i < cfg->nentries; i++) {
		first = &cfg->entries[i];
		if (strncmp(first->section, "root.", 5) != 0 ||
		    !config_first_of_section(cfg, i))
			continue;
		has_path = 0;
		for (j = i; j < cfg->nentries && !has_path; j++)
			has_path = strcmp(cfg->entries[j].section,
			    first->section) == 0 &&
			    strcmp(cfg->entries[j].key, "path") == 0;
		if (!has_path)
			config_add_error(cfg, first->file, first->line,
			    "[%s]: needs path = DIR", first->section);
	}
}

static void
root_release(struct root *r)
{
	if (r->fd != -1)
		close(r->fd);
	free(r->path);
	free(r->conf_path);
	free(r->users);
	free(r->groups);
}

static void
free_roots(struct root *v, size_t n)
{
	size_t	i;

	for (i = 0; i < n; i++)
		root_release(&v[i]);
	free(v);
}

static struct root *
find_or_add(struct root **v, size_t *n, const char *name)
{
	struct root	*nv;
	size_t		 i;

	for (i = 0; i < *n; i++)
		if (strcmp((*v)[i].name, name) == 0)
			return (&(*v)[i]);
	if ((nv = reallocarray(*v, *n + 1, sizeof(**v))) == NULL)
		return (NULL);
	*v = nv;
	memset(&nv[*n], 0, sizeof(nv[*n]));
	nv[*n].fd = -1;
	snprintf(nv[*n].name, sizeof(nv[*n].name), "%s", name);
	return (&nv[(*n)++]);
}

/* Open a configured root; 0, or -1 after a warning (the root is left out). */
static int
root_open(struct root *r)
{
	char	real[PATH_MAX];

	if (r->conf_path == NULL) {		/* root_validate refuses it */
		log_warnx("[root.%s] has no path; it is ignored", r->name);
		return (-1);
	}
	r->fd = open(r->conf_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (r->fd == -1) {
		log_warn("[root.%s] %s: cannot open; it is ignored", r->name,
		    r->conf_path);
		return (-1);
	}
	if (realpath(r->conf_path, real) == NULL ||
	    (r->path = strdup(real)) == NULL) {
		log_warn("[root.%s] %s: realpath", r->name, r->conf_path);
		return (-1);
	}
	return (0);
}

/*
 * Set allow_users or allow_groups from en. Names are resolved again here:
 * the user may have gone since the config was checked, and then the root
 * allows nobody but admins (an empty list would mean everyone).
 */
static int
set_ids(struct root *r, const struct config_entry *en)
{
	uint32_t	*ids;
	char		 err[256];
	int		 group = strcmp(en->key, "allow_groups") == 0, cnt;

	if ((cnt = parse_ids(en->value, group, &ids, err,
	    sizeof(err))) == -1) {
		log_warnx("%s:%d: %s; [root.%s] allows only admins", en->file,
		    en->line, err, r->name);
		if ((ids = malloc(sizeof(*ids))) == NULL)
			return (-1);
		ids[0] = UINT32_MAX;
		cnt = 1;
	}
	if (group) {
		free(r->groups);
		r->groups = ids;
		r->ngroups = (size_t)cnt;
	} else {
		free(r->users);
		r->users = ids;
		r->nusers = (size_t)cnt;
	}
	return (0);
}

/*
 * A config came into force: open its roots and swap them in. Copies in
 * flight keep their own duplicates of the old roots' descriptors.
 */
static void
root_apply(const struct config *cfg)
{
	const struct config_entry	*en;
	struct root			*v = NULL, *r;
	size_t				 n = 0, i, kept;

	for (i = 0; i < cfg->nentries; i++) {
		en = &cfg->entries[i];
		if (strncmp(en->section, "root.", 5) != 0)
			continue;
		if ((r = find_or_add(&v, &n, en->section + 5)) == NULL)
			goto oom;
		if (strcmp(en->key, "path") == 0) {
			free(r->conf_path);
			if ((r->conf_path = strdup(en->value)) == NULL)
				goto oom;
		} else if (strcmp(en->key, "allow_hardlinks") == 0) {
			r->flags &= ~ROOT_ALLOW_HARDLINKS;
			if (parse_bool(en->value) == 1)
				r->flags |= ROOT_ALLOW_HARDLINKS;
		} else if (set_ids(r, en) == -1)
			goto oom;
	}
	for (i = 0, kept = 0; i < n; i++) {
		if (root_open(&v[i]) == -1) {
			root_release(&v[i]);
			continue;
		}
		log_debug("root %s: %s", v[i].name, v[i].path);
		v[kept++] = v[i];
	}
	free_roots(roots, nroots);
	roots = v;
	nroots = kept;
	return;
oom:
	log_warnx("%s: out of memory; the roots are unchanged", __func__);
	free_roots(v, n);
}

void
roots_register(void)
{
	static const struct config_kind	kind = {
		"root", 1, root_check, root_keys, root_apply
	};

	config_register_kind(&kind);
	config_register_validator(root_validate);
}

void
roots_clear(void)
{
	free_roots(roots, nroots);
	roots = NULL;
	nroots = 0;
}

unsigned
roots_count(void)
{
	return ((unsigned)nroots);
}

/* ---- matching (loop thread, no I/O) ------------------------------------ */

static int
deny(struct root_err *e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int
deny(struct root_err *e, const char *fmt, ...)
{
	va_list	ap;

	e->code = ERM_PERMISSION_DENIED;
	e->err = 0;
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
	return (-1);
}

static int
io_fail(struct root_err *e, int err, const char *what)
{
	e->code = ERM_IO_ERROR;
	e->err = err;
	snprintf(e->msg, sizeof(e->msg), "%.128s: %s", what, strerror(err));
	return (-1);
}

/*
 * The text of a path: absolute, no NUL, shorter than PATH_MAX, and
 * canonical (no empty, "." or ".." component, no trailing slash), so that
 * what is recorded and matched is exactly what is opened.
 */
static int
path_check(const char *path, size_t len, struct root_err *e)
{
	const char	*p, *end, *slash;
	size_t		 l;

	if (len == 0)
		return (deny(e, "the path is empty"));
	if (memchr(path, '\0', len) != NULL)
		return (deny(e, "the path contains a NUL byte"));
	if (len >= PATH_MAX)
		return (deny(e, "the path is longer than %d bytes",
		    PATH_MAX - 1));
	if (path[0] != '/')
		return (deny(e, "'%.128s' is not an absolute path", path));
	end = path + len;
	for (p = path + 1; p <= end; p = slash + 1) {
		if ((slash = memchr(p, '/', (size_t)(end - p))) == NULL)
			slash = end;
		l = (size_t)(slash - p);
		if (l == 0)
			return (deny(e, "'%.128s' has an empty component "
			    "('//' or a trailing '/')", path));
		if ((l == 1 && p[0] == '.') ||
		    (l == 2 && p[0] == '.' && p[1] == '.'))
			return (deny(e, "'%.128s': '.' and '..' components "
			    "are refused", path));
		if (l > NAME_MAX)
			return (deny(e, "'%.64s...': a component is longer "
			    "than %d bytes", path, NAME_MAX));
	}
	return (0);
}

int
peer_in_group(const struct peer *p, gid_t gid)
{
	int	i;

	if (p->gid == gid)
		return (1);
	for (i = 0; i < p->ngroups; i++)
		if (p->groups[i] == gid)
			return (1);
	return (0);
}

static int
root_allows(const struct root *r, const struct peer *p)
{
	size_t	i;

	if (p->admin || (r->nusers == 0 && r->ngroups == 0))
		return (1);
	for (i = 0; i < r->nusers; i++)
		if (r->users[i] == p->uid)
			return (1);
	for (i = 0; i < r->ngroups; i++)
		if (peer_in_group(p, r->groups[i]))
			return (1);
	return (0);
}

/* The length of dir when path lies strictly beneath it, else 0. */
static size_t
beneath(const char *path, const char *dir)
{
	size_t	l;

	if (dir == NULL)
		return (0);
	if (strcmp(dir, "/") == 0)
		return (path[1] != '\0' ? 1 : 0);
	l = strlen(dir);
	if (strncmp(path, dir, l) != 0 || path[l] != '/' || path[l + 1] == '\0')
		return (0);
	return (l + 1);
}

/* The root with the longest directory holding path; *skip its length. */
static struct root *
match(const char *path, size_t *skip)
{
	struct root	*best = NULL;
	size_t		 i, l, bl = 0;

	for (i = 0; i < nroots; i++) {
		l = beneath(path, roots[i].path);
		if (l == 0)
			l = beneath(path, roots[i].conf_path);
		if (l > bl) {
			bl = l;
			best = &roots[i];
		}
	}
	*skip = bl;
	return (best);
}

int
roots_find(const char *path, size_t len, const struct peer *p,
    struct root_path *out, struct root_err *e)
{
	struct root	*r;
	size_t		 skip;

	memset(out, 0, sizeof(*out));
	out->rootfd = -1;
	if (path_check(path, len, e) == -1)
		return (-1);
	if ((r = match(path, &skip)) == NULL)
		return (deny(e, "'%.128s' is not beneath any root", path));
	if (!root_allows(r, p))
		return (deny(e, "root '%s' does not allow uid %u", r->name,
		    (unsigned)p->uid));
	if ((out->path = strdup(path)) == NULL ||
	    (out->rootfd = fcntl(r->fd, F_DUPFD_CLOEXEC, 3)) == -1) {
		io_fail(e, errno, "root");
		root_path_clear(out);
		return (-1);
	}
	out->rel = out->path + skip;
	out->flags = r->flags;
	snprintf(out->root, sizeof(out->root), "%s", r->name);
	return (0);
}

int
roots_visible(const char *path, const struct peer *p)
{
	struct root	*r;
	size_t		 skip;

	if (p->admin)
		return (1);
	if ((r = match(path, &skip)) == NULL)
		return (0);
	return (root_allows(r, p));
}

void
root_path_clear(struct root_path *rp)
{
	if (rp->rootfd != -1)
		close(rp->rootfd);
	rp->rootfd = -1;
	free(rp->path);
	rp->path = rp->rel = NULL;
}

/* ---- walking (worker threads) ------------------------------------------ */

int
peer_may(const struct peer *p, const struct stat *st, int want)
{
	int	bits;

	if (p->uid == 0) {
		/* Root executes only what has an x bit; all else it may. */
		if ((want & X_OK) && !S_ISDIR(st->st_mode))
			return ((st->st_mode & 0111) != 0);
		return (1);
	}
	if (st->st_uid == p->uid)
		bits = (st->st_mode >> 6) & 7;
	else if (peer_in_group(p, st->st_gid))
		bits = (st->st_mode >> 3) & 7;
	else
		bits = st->st_mode & 7;
	return ((bits & want) == want);
}

/*
 * Open one component beneath dirfd: never a symlink (O_NOFOLLOW), never
 * out of dirfd (RESOLVE_BENEATH; name is a single component that is not
 * "." or "..", so the O_NOFOLLOW fallback is as strict).
 */
static int
open_beneath(int dirfd, const char *name, int flags)
{
	struct open_how	how;
	int		fd, tries;

	flags |= O_NOFOLLOW | O_CLOEXEC;
	if (__atomic_load_n(&have_openat2, __ATOMIC_RELAXED)) {
		memset(&how, 0, sizeof(how));
		how.flags = (uint64_t)flags;
		how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
		    RESOLVE_NO_MAGICLINKS;
		/* EAGAIN: a rename raced the lookup; the kernel asks again. */
		for (tries = 0; tries < 8; tries++) {
			fd = (int)syscall(SYS_openat2, dirfd, name, &how,
			    sizeof(how));
			if (fd != -1 || errno != EAGAIN)
				break;
		}
		if (fd != -1 || errno != ENOSYS)
			return (fd);
		__atomic_store_n(&have_openat2, 0, __ATOMIC_RELAXED);
		log_info("no openat2 in this kernel: paths are walked with "
		    "O_NOFOLLOW");
	}
	return (openat(dirfd, name, flags));
}

void
roots_use_openat2(int on)
{
	__atomic_store_n(&have_openat2, on, __ATOMIC_RELAXED);
}

/* Turn a failed open of component what into an error. */
static int
open_fail(struct root_err *e, int err, const char *what)
{
	switch (err) {
	case ELOOP:
		return (deny(e, "'%.128s' is a symbolic link", what));
	case EXDEV:
		return (deny(e, "'%.128s' leads out of the root", what));
	case ENOTDIR:
		(void)deny(e, "'%.128s' is not a directory", what);
		e->err = ENOTDIR;	/* a caller may report it as such */
		return (-1);
	case EACCES:
	case EPERM:
		return (deny(e, "ermd may not open '%.128s'", what));
	case ENAMETOOLONG:
		return (deny(e, "'%.128s' is too long", what));
	default:
		return (io_fail(e, err, what));
	}
}

static const char *
type_name(mode_t m)
{
	if (S_ISDIR(m))
		return ("a directory");
	if (S_ISLNK(m))
		return ("a symbolic link");
	if (S_ISFIFO(m))
		return ("a FIFO");
	if (S_ISSOCK(m))
		return ("a socket");
	if (S_ISCHR(m) || S_ISBLK(m))
		return ("a device");
	return ("not a regular file");
}

/*
 * Walk rp's directories from its root; with p, check that the peer may
 * search each (the root included). Returns an O_PATH descriptor of the
 * last directory and *name the last component, or -1 with e set.
 */
static int
walk(const struct root_path *rp, const struct peer *p, const char **name,
    struct root_err *e)
{
	const char	*c, *slash;
	char		 comp[NAME_MAX + 1];
	struct stat	 st;
	size_t		 l;
	int		 dirfd, fd;

	if ((dirfd = fcntl(rp->rootfd, F_DUPFD_CLOEXEC, 3)) == -1)
		return (io_fail(e, errno, "root"));
	if (p != NULL && (fstat(dirfd, &st) == -1 || !peer_may(p, &st,
	    X_OK))) {
		close(dirfd);
		return (deny(e, "uid %u may not search root '%s'",
		    (unsigned)p->uid, rp->root));
	}
	for (c = rp->rel; (slash = strchr(c, '/')) != NULL; c = slash + 1) {
		l = (size_t)(slash - c);
		memcpy(comp, c, l);
		comp[l] = '\0';
		fd = open_beneath(dirfd, comp, O_PATH | O_DIRECTORY);
		close(dirfd);
		if (fd == -1)
			return (open_fail(e, errno, comp));
		dirfd = fd;
		if (fstat(dirfd, &st) == -1) {
			close(dirfd);
			return (io_fail(e, errno, comp));
		}
		if (p != NULL && !peer_may(p, &st, X_OK)) {
			close(dirfd);
			return (deny(e, "uid %u may not search '%.128s'",
			    (unsigned)p->uid, comp));
		}
	}
	*name = c;
	return (dirfd);
}

int
roots_open_read(const struct root_path *rp, const struct peer *p, int *fdp,
    struct stat *st, struct root_err *e)
{
	struct stat	 st2;
	const char	*name;
	char		 proc[64];
	int		 dirfd, pfd, fd;

	*fdp = -1;
	if ((dirfd = walk(rp, p, &name, e)) == -1)
		return (-1);
	/* O_PATH opens nothing: a FIFO or a device is only looked at. */
	pfd = open_beneath(dirfd, name, O_PATH);
	if (pfd == -1) {
		open_fail(e, errno, name);
		close(dirfd);
		return (-1);
	}
	if (fstat(pfd, st) == -1) {
		io_fail(e, errno, name);
		goto fail;
	}
	if (!S_ISREG(st->st_mode)) {
		deny(e, "'%.128s' is %s", name, type_name(st->st_mode));
		goto fail;
	}
	if (st->st_nlink > 1 && !(rp->flags & ROOT_ALLOW_HARDLINKS)) {
		deny(e, "'%.128s' has %lu hard links (allow_hardlinks is off "
		    "for root '%s')", name, (unsigned long)st->st_nlink,
		    rp->root);
		goto fail;
	}
	if (!peer_may(p, st, R_OK)) {
		deny(e, "uid %u may not read '%.128s'", (unsigned)p->uid,
		    name);
		goto fail;
	}
	/*
	 * Reopen the very inode looked at, for reading. Without /proc, open
	 * the name again and make sure it is still the same file.
	 */
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", pfd);
	fd = open(proc, O_RDONLY | O_NOCTTY | O_CLOEXEC | O_NOATIME);
	if (fd == -1 && errno == EPERM)
		fd = open(proc, O_RDONLY | O_NOCTTY | O_CLOEXEC);
	if (fd == -1 && errno == ENOENT)
		fd = open_beneath(dirfd, name, O_RDONLY | O_NOCTTY |
		    O_NONBLOCK);
	if (fd == -1) {
		open_fail(e, errno, name);
		goto fail;
	}
	if (fstat(fd, &st2) == -1 || st2.st_ino != st->st_ino ||
	    st2.st_dev != st->st_dev || !S_ISREG(st2.st_mode)) {
		close(fd);
		deny(e, "'%.128s' changed while it was opened", name);
		goto fail;
	}
	*st = st2;
	close(pfd);
	close(dirfd);
	*fdp = fd;
	return (0);
fail:
	close(pfd);
	close(dirfd);
	return (-1);
}

int
roots_open_parent(const struct root_path *rp, const struct peer *p,
    int *dirfdp, const char **name, int *exists, struct stat *st,
    struct root_err *e)
{
	struct stat	dst;
	int		pathfd, dirfd;

	*dirfdp = -1;
	if ((pathfd = walk(rp, p, name, e)) == -1)
		return (-1);
	/* "." of a directory already walked to: no lookup to subvert. */
	dirfd = openat(pathfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	close(pathfd);
	if (dirfd == -1)
		return (open_fail(e, errno, "the file's directory"));
	if (fstatat(dirfd, *name, st, AT_SYMLINK_NOFOLLOW) == 0) {
		*exists = 1;
		if (!S_ISREG(st->st_mode)) {
			deny(e, "'%.128s' is %s", *name,
			    type_name(st->st_mode));
			goto fail;
		}
		if (st->st_nlink > 1 && !(rp->flags & ROOT_ALLOW_HARDLINKS)) {
			deny(e, "'%.128s' has %lu hard links (allow_hardlinks "
			    "is off for root '%s')", *name,
			    (unsigned long)st->st_nlink, rp->root);
			goto fail;
		}
		if (!peer_may(p, st, W_OK)) {
			deny(e, "uid %u may not write '%.128s'",
			    (unsigned)p->uid, *name);
			goto fail;
		}
	} else if (errno == ENOENT) {
		*exists = 0;
		if (fstat(dirfd, &dst) == -1) {
			io_fail(e, errno, "the file's directory");
			goto fail;
		}
		if (!peer_may(p, &dst, W_OK | X_OK)) {
			deny(e, "uid %u may not create '%.128s'",
			    (unsigned)p->uid, *name);
			goto fail;
		}
	} else {
		open_fail(e, errno, *name);
		goto fail;
	}
	*dirfdp = dirfd;
	return (0);
fail:
	close(dirfd);
	return (-1);
}

int
roots_same_parent(const struct root_path *rp, int dirfd)
{
	struct root_err	 e;
	struct stat	 a, b;
	const char	*name;
	int		 fd, same;

	if ((fd = walk(rp, NULL, &name, &e)) == -1)
		return (0);
	same = fstat(fd, &a) == 0 && fstat(dirfd, &b) == 0 &&
	    a.st_dev == b.st_dev && a.st_ino == b.st_ino;
	close(fd);
	return (same);
}
