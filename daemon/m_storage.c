/* Fallback storage methods: storage.status, select, report, check, put and
 * get; the logic is in storage.c. */

#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conn.h"
#include "dispatch.h"
#include "erm_proto.h"
#include "methods.h"
#include "storage.h"

/*
 * Paths in storage.put and storage.get name files on the host that the
 * daemon reads or writes for the peer, so they are confined to what the
 * peer could do itself: the path is absolute, without "." or ".."; it is
 * walked from "/" one component at a time with O_NOFOLLOW, so a symlink
 * anywhere is refused; the peer (SO_PEERCRED uid, gid and groups) must
 * have search permission on every directory on the way, read permission
 * on a put's source, and write permission on a get's directory (and on the
 * file it replaces), judged by the mode bits (ACLs are not consulted).
 *
 * SEAM: BEHAVIOUR.md §4 confines backup paths beneath configured
 * [root.NAME] roots with openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS).
 * When daemon/roots.c lands, walk_parent() below gives way to its
 * resolution, so that storage paths obey the same roots; the permission
 * checks on the final file stay.
 */

struct speer {
	uid_t		 uid;
	gid_t		 gid;
	const gid_t	*groups;
	int		 ngroups;
};

struct pfail {
	int	code;
	int	err;
	char	msg[200];
};

static void
speer_of(const struct conn *c, struct speer *p)
{
	p->uid = c->uid;
	p->gid = c->gid;
	p->groups = c->groups;
	p->ngroups = c->ngroups;
}

static int
speer_in_group(const struct speer *p, gid_t g)
{
	int	i;

	if (p->gid == g)
		return (1);
	for (i = 0; i < p->ngroups; i++)
		if (p->groups[i] == g)
			return (1);
	return (0);
}

/* May the peer do want (a mask of 4 read, 2 write, 1 search) on sb? */
static int
speer_may(const struct speer *p, const struct stat *sb, unsigned want)
{
	unsigned	m;

	if (p->uid == 0)
		return (1);
	if (sb->st_uid == p->uid)
		m = (sb->st_mode >> 6) & 7;
	else if (speer_in_group(p, sb->st_gid))
		m = (sb->st_mode >> 3) & 7;
	else
		m = sb->st_mode & 7;
	return ((m & want) == want);
}

static int
pfail(struct pfail *f, int code, int err, const char *fmt, const char *path)
{
	f->code = code;
	f->err = err;
	snprintf(f->msg, sizeof(f->msg), fmt, path);
	return (-1);
}

/* The failure of an open or stat of a path component. */
static int
pfail_errno(struct pfail *f, int err, const char *path)
{
	if (err == EACCES || err == EPERM)
		return (pfail(f, ERM_PERMISSION_DENIED, err,
		    "%s: permission denied", path));
	if (err == ELOOP)
		return (pfail(f, ERM_PERMISSION_DENIED, err,
		    "%s: a symlink is in the way", path));
	f->code = ERM_IO_ERROR;
	f->err = err;
	snprintf(f->msg, sizeof(f->msg), "%s: %s", path, strerror(err));
	return (-1);
}

/* -32602 reasons for a path that is not absolute and plain. */
static const char *
path_syntax(const char *path)
{
	const char	*c, *e;
	size_t		 l;

	if (path[0] != '/')
		return ("must be an absolute path");
	if (strlen(path) >= PATH_MAX)
		return ("is too long");
	for (c = path; *c != '\0'; c = e) {
		while (*c == '/')
			c++;
		if ((e = strchr(c, '/')) == NULL)
			e = c + strlen(c);
		l = (size_t)(e - c);
		if ((l == 1 && c[0] == '.') || (l == 2 && c[0] == '.' &&
		    c[1] == '.'))
			return ("must not hold . or .. components");
		if (l > NAME_MAX)
			return ("has a component longer than NAME_MAX");
	}
	l = strlen(path);
	if (path[l - 1] == '/')
		return ("must name a file, not end with /");
	return (NULL);
}

/*
 * Open the directory holding path's last component (walked as described
 * at the top) and copy that component into name. Returns an O_RDONLY
 * directory descriptor, or -1 with f filled.
 */
static int
walk_parent(const struct speer *p, const char *path, char *name,
    size_t namesz, struct pfail *f)
{
	char		 buf[PATH_MAX], *comp, *slash, *save;
	struct stat	 sb;
	int		 cur, next, d;

	snprintf(buf, sizeof(buf), "%s", path);
	slash = strrchr(buf, '/');
	snprintf(name, namesz, "%s", slash + 1);
	*slash = '\0';
	if ((cur = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC)) == -1)
		return (pfail_errno(f, errno, "/"));
	for (comp = strtok_r(buf, "/", &save); comp != NULL;
	    comp = strtok_r(NULL, "/", &save)) {
		if (fstat(cur, &sb) == -1) {
			pfail_errno(f, errno, path);
			goto fail;
		}
		if (!speer_may(p, &sb, 1)) {
			pfail(f, ERM_PERMISSION_DENIED, EACCES,
			    "%s: permission denied (search)", path);
			goto fail;
		}
		next = openat(cur, comp, O_PATH | O_DIRECTORY | O_NOFOLLOW |
		    O_CLOEXEC);
		if (next == -1) {
			d = errno;
			if (fstatat(cur, comp, &sb, AT_SYMLINK_NOFOLLOW) == 0 &&
			    S_ISLNK(sb.st_mode))
				d = ELOOP;
			pfail_errno(f, d, path);
			goto fail;
		}
		close(cur);
		cur = next;
	}
	if (fstat(cur, &sb) == -1) {
		pfail_errno(f, errno, path);
		goto fail;
	}
	if (!speer_may(p, &sb, 1)) {
		pfail(f, ERM_PERMISSION_DENIED, EACCES,
		    "%s: permission denied (search)", path);
		goto fail;
	}
	next = openat(cur, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (next == -1)
		pfail_errno(f, errno, path);
	close(cur);
	return (next);
fail:
	close(cur);
	return (-1);
}

/* Open a put's source for reading as the peer could; -1 with f. */
static int
open_source(const struct speer *p, const char *path, uint64_t *size,
    struct pfail *f)
{
	char		 name[NAME_MAX + 1];
	struct stat	 sb, sb2;
	int		 dfd, fd;

	if ((dfd = walk_parent(p, path, name, sizeof(name), f)) == -1)
		return (-1);
	/* Look before opening: opening a device can have effects. */
	if (fstatat(dfd, name, &sb, AT_SYMLINK_NOFOLLOW) == -1) {
		close(dfd);
		return (pfail_errno(f, errno, path));
	}
	if (S_ISLNK(sb.st_mode)) {
		close(dfd);
		return (pfail(f, ERM_PERMISSION_DENIED, ELOOP,
		    "%s: is a symlink", path));
	}
	if (!S_ISREG(sb.st_mode)) {
		close(dfd);
		return (pfail(f, ERM_PERMISSION_DENIED, EINVAL,
		    "%s: not a regular file", path));
	}
	if (!speer_may(p, &sb, 4)) {
		close(dfd);
		return (pfail(f, ERM_PERMISSION_DENIED, EACCES,
		    "%s: permission denied (read)", path));
	}
	fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK |
	    O_NOCTTY | O_CLOEXEC);
	close(dfd);
	if (fd == -1)
		return (pfail_errno(f, errno, path));
	if (fstat(fd, &sb2) == -1 || sb2.st_dev != sb.st_dev ||
	    sb2.st_ino != sb.st_ino || !S_ISREG(sb2.st_mode)) {
		close(fd);
		return (pfail(f, ERM_PERMISSION_DENIED, EINVAL,
		    "%s: changed while being opened", path));
	}
	*size = (uint64_t)sb2.st_size;
	return (fd);
}

/* Prepare a get's destination as the peer could write it; -1 with f. */
static int
open_dest(const struct speer *p, const char *path, struct storage_dest *d,
    struct pfail *f)
{
	struct stat	dsb, sb;

	memset(d, 0, sizeof(*d));
	snprintf(d->path, sizeof(d->path), "%s", path);
	if ((d->dirfd = walk_parent(p, path, d->name, sizeof(d->name),
	    f)) == -1)
		return (-1);
	if (fstat(d->dirfd, &dsb) == -1) {
		pfail_errno(f, errno, path);
		goto fail;
	}
	if (!speer_may(p, &dsb, 2 | 1)) {
		pfail(f, ERM_PERMISSION_DENIED, EACCES,
		    "%s: permission denied (write to the directory)", path);
		goto fail;
	}
	d->chown = geteuid() == 0;
	if (fstatat(d->dirfd, d->name, &sb, AT_SYMLINK_NOFOLLOW) == -1) {
		if (errno != ENOENT) {
			pfail_errno(f, errno, path);
			goto fail;
		}
		/* A new file belongs to the peer, like one it made itself. */
		d->mode = 0644;
		d->uid = p->uid;
		d->gid = p->gid;
		return (0);
	}
	if (S_ISLNK(sb.st_mode) || !S_ISREG(sb.st_mode)) {
		pfail(f, ERM_PERMISSION_DENIED, EINVAL, S_ISLNK(sb.st_mode) ?
		    "%s: is a symlink" : "%s: not a regular file", path);
		goto fail;
	}
	/* Replacing a file: the peer may write it, and the sticky bit of
	 * its directory (as in /tmp) is obeyed. */
	if (!speer_may(p, &sb, 2) || (p->uid != 0 && (dsb.st_mode & S_ISVTX) &&
	    sb.st_uid != p->uid && dsb.st_uid != p->uid)) {
		pfail(f, ERM_PERMISSION_DENIED, EACCES,
		    "%s: permission denied (replace)", path);
		goto fail;
	}
	/* The replacement keeps the file's owner and mode, as cp does. */
	d->mode = sb.st_mode & 07777;
	d->uid = sb.st_uid;
	d->gid = sb.st_gid;
	return (0);
fail:
	close(d->dirfd);
	d->dirfd = -1;
	return (-1);
}

static int
fail_path(struct ermd_req *req, const struct pfail *f, const char *path)
{
	json_t	*data;

	if (f->code == ERM_PERMISSION_DENIED)
		data = json_pack("{s:I}", "uid", (json_int_t)req->conn->uid);
	else
		data = json_pack("{s:s, s:s}", "errno",
		    strerrorname_np(f->err) != NULL ?
		    strerrorname_np(f->err) : "EIO", "path", path);
	return (req_fail(req, f->code, data, "%s", f->msg));
}

/* ---- handlers ------------------------------------------------------- */

static void
finish(struct storage_outcome *o, void *arg)
{
	struct ermd_req	*req = arg;

	if (o->code == 0) {
		req->result = o->result;
		req_finish(req, REQ_OK);
		return;
	}
	req_finish(req, req_fail(req, o->code, o->data, "%s", o->msg));
}

static int
fail_now(struct ermd_req *req, struct storage_outcome *o)
{
	return (req_fail(req, o->code, o->data, "%s", o->msg));
}

int
m_storage_status(struct ermd_req *req)
{
	static const char *const allowed[] = { NULL };
	struct param_err	 e;

	if (params_only(req->params, allowed, &e) == -1)
		return (req_param_fail(req, &e));
	if ((req->result = storage_status()) == NULL)
		return (req_fail(req, ERM_INTERNAL_ERROR, NULL,
		    "out of memory"));
	return (REQ_OK);
}

static int
not_found(struct ermd_req *req, const char *name)
{
	return (req_fail(req, ERM_NOT_FOUND, json_pack("{s:s, s:s}", "kind",
	    "backend", "name", name), "no backend named '%.64s'", name));
}

int
m_storage_select(struct ermd_req *req)
{
	static const char *const allowed[] = { "exclude", NULL };
	static const char *const types[] = { "dir", "http" };
	struct storage_choice	 c;
	struct param_err	 e;
	const char		**names = NULL;
	json_t			*ex, *v;
	size_t			 i, n;
	int			 rc;

	if (params_only(req->params, allowed, &e) == -1)
		return (req_param_fail(req, &e));
	ex = json_object_get(req->params, "exclude");
	if (ex != NULL && !json_is_array(ex)) {
		param_fail(&e, "exclude", "must be an array of backend names");
		return (req_param_fail(req, &e));
	}
	n = json_array_size(ex);
	if (n > 0 && (names = calloc(n, sizeof(*names))) == NULL)
		return (req_fail(req, ERM_INTERNAL_ERROR, NULL,
		    "out of memory"));
	json_array_foreach(ex, i, v) {
		if (!json_is_string(v)) {
			free(names);
			param_fail(&e, "exclude", "must be an array of backend "
			    "names");
			return (req_param_fail(req, &e));
		}
		if (!storage_backend_exists(json_string_value(v))) {
			rc = not_found(req, json_string_value(v));
			free(names);
			return (rc);
		}
		names[i] = json_string_value(v);
	}
	rc = storage_select_next(names, n, &c);
	free(names);
	if (rc == -1)
		return (req_fail(req, ERM_UNAVAILABLE, json_pack("{s:s}",
		    "reason", "no healthy backend"),
		    "no healthy storage backend"));
	req->result = json_pack("{s:s, s:s, s:s}", "backend", c.name, "type",
	    types[c.type], "location", c.location);
	return (REQ_OK);
}

/*
 * The members of an error object (PROTOCOL.md §4) and their types, checked
 * here without the classifier; text gets a short description for
 * last_error.
 */
static int
error_object(const json_t *err, char *text, size_t textsz, int *counts,
    struct param_err *e)
{
	static const char *const cats[] = { "NETWORK_ERROR", "STORAGE_ERROR",
	    "AUTHENTICATION_ERROR", "QUOTA_EXCEEDED", "FILE_NOT_FOUND",
	    "CORRUPTED_DATA", "TIMEOUT_ERROR", "RATE_LIMIT_ERROR",
	    "PERMISSION_ERROR", "SYSTEM_ERROR", NULL };
	static const char *const allowed[] = { "category", "errno",
	    "http_status", "exit_code", "signal", "exception", "message",
	    "retry_after_ms", NULL };
	const char	*msg = NULL, *exc = NULL, *en = NULL;
	json_t		*v;
	int64_t		 status = 0, x;
	int		 cat = -1;
	char		 field[64];

	if (!json_is_object(err) || json_object_size(err) == 0)
		return (param_fail(e, "error", "must be an error object with "
		    "at least one member"));
	if (params_only(err, allowed, e) == -1) {
		snprintf(field, sizeof(field), "error.%.50s", e->field);
		return (param_fail(e, field, "unknown member"));
	}
	if (param_enum(err, "category", cats, -1, &cat, e) == -1 ||
	    param_int(err, "http_status", 100, 599, 0, &status, e) == -1 ||
	    param_int(err, "exit_code", 0, 255, 0, &x, e) == -1 ||
	    param_int(err, "signal", 1, 64, 1, &x, e) == -1 ||
	    param_int(err, "retry_after_ms", 0, INT64_MAX, 0, &x, e) == -1 ||
	    param_str(err, "exception", 128, &exc, e) == -1 ||
	    param_str(err, "message", 4096, &msg, e) == -1) {
		snprintf(field, sizeof(field), "error.%.50s", e->field);
		snprintf(e->field, sizeof(e->field), "%s", field);
		return (-1);
	}
	v = json_object_get(err, "errno");
	if (v != NULL && json_is_string(v) && json_string_length(v) <= 32)
		en = json_string_value(v);
	else if (v != NULL && json_is_integer(v) && json_integer_value(v) > 0 &&
	    json_integer_value(v) < 4096)
		en = strerrorname_np((int)json_integer_value(v));
	else if (v != NULL)
		return (param_fail(e, "error.errno", "must be an errno name or "
		    "a positive number"));

	/*
	 * SEAM: with the classifier (classify.h) this becomes "count every
	 * category but FILE_NOT_FOUND". Until then a missing object (ENOENT,
	 * HTTP 404 or 410, category FILE_NOT_FOUND) says nothing about the
	 * backend's health, and every other failure counts.
	 */
	*counts = !(cat == 4 || status == 404 || status == 410 ||
	    (en != NULL && strcmp(en, "ENOENT") == 0));

	if (msg != NULL)
		snprintf(text, textsz, "%s", msg);
	else if (en != NULL)
		snprintf(text, textsz, "%s", en);
	else if (status != 0)
		snprintf(text, textsz, "HTTP %lld", (long long)status);
	else if (exc != NULL)
		snprintf(text, textsz, "%s", exc);
	else if (cat >= 0)
		snprintf(text, textsz, "%s", cats[cat]);
	else
		snprintf(text, textsz, "reported failure");
	return (0);
}

int
m_storage_report(struct ermd_req *req)
{
	static const char *const allowed[] = { "backend", "ok", "error",
	    "latency_ms", NULL };
	struct param_err	 e;
	const char		*name;
	char			 text[256] = "";
	json_t			*err;
	int64_t			 lat;
	int			 ok, counts = 1, healthy;

	if (params_only(req->params, allowed, &e) == -1 ||
	    param_str_req(req->params, "backend", STORAGE_NAME_MAX, &name,
	    &e) == -1 ||
	    param_bool(req->params, "ok", 0, &ok, &e) == -1 ||
	    param_int(req->params, "latency_ms", 0, INT64_C(86400000), -1,
	    &lat, &e) == -1)
		return (req_param_fail(req, &e));
	if (json_object_get(req->params, "ok") == NULL) {
		param_fail(&e, "ok", "missing");
		return (req_param_fail(req, &e));
	}
	if ((err = json_object_get(req->params, "error")) != NULL &&
	    error_object(err, text, sizeof(text), &counts, &e) == -1)
		return (req_param_fail(req, &e));
	if (storage_observe(name, ok, counts, text, lat, &healthy) == -1)
		return (not_found(req, name));
	req->result = json_pack("{s:b}", "healthy", healthy);
	return (REQ_OK);
}

int
m_storage_check(struct ermd_req *req)
{
	static const char *const allowed[] = { "backend", NULL };
	struct storage_outcome	 now;
	struct param_err	 e;
	const char		*name;

	if (params_only(req->params, allowed, &e) == -1 ||
	    param_str(req->params, "backend", STORAGE_NAME_MAX, &name,
	    &e) == -1)
		return (req_param_fail(req, &e));
	if (storage_check(name, finish, req, &now) == -1)
		return (fail_now(req, &now));
	return (REQ_ASYNC);
}

/* key and path, both required; key checked, path syntax checked. */
static int
key_and_path(struct ermd_req *req, const char **key, const char **path)
{
	static const char *const allowed[] = { "key", "path", NULL };
	struct param_err	 e;
	const char		*why;
	char			 reason[96];

	if (params_only(req->params, allowed, &e) == -1 ||
	    param_str_req(req->params, "key", 4096, key, &e) == -1 ||
	    param_str_req(req->params, "path", 8192, path, &e) == -1)
		return (req_param_fail(req, &e));
	if (storage_key_valid(*key, reason, sizeof(reason)) == -1) {
		param_fail(&e, "key", "%s", reason);
		return (req_param_fail(req, &e));
	}
	if ((why = path_syntax(*path)) != NULL) {
		param_fail(&e, "path", "%s", why);
		return (req_param_fail(req, &e));
	}
	return (REQ_OK);
}

int
m_storage_put(struct ermd_req *req)
{
	struct storage_outcome	 now;
	struct pfail		 f;
	struct speer		 p;
	const char		*key, *path;
	uint64_t		 size = 0;
	int			 fd;

	if (key_and_path(req, &key, &path) != REQ_OK)
		return (REQ_ERROR);
	speer_of(req->conn, &p);
	if ((fd = open_source(&p, path, &size, &f)) == -1)
		return (fail_path(req, &f, path));
	if (storage_put(key, fd, size, finish, req, &now) == -1)
		return (fail_now(req, &now));
	return (REQ_ASYNC);
}

int
m_storage_get(struct ermd_req *req)
{
	struct storage_outcome	 now;
	struct storage_dest	 d;
	struct pfail		 f;
	struct speer		 p;
	const char		*key, *path;

	if (key_and_path(req, &key, &path) != REQ_OK)
		return (REQ_ERROR);
	speer_of(req->conn, &p);
	if (open_dest(&p, path, &d, &f) == -1)
		return (fail_path(req, &f, path));
	if (storage_get(key, &d, finish, req, &now) == -1)
		return (fail_now(req, &now));
	return (REQ_ASYNC);
}
