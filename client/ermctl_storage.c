/*
 * ermctl commands for fallback storage: storage status, check, put and get.
 */

#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ermctl.h"

/*
 * The daemon takes absolute paths only (it reads and writes them itself);
 * a relative FILE is taken from ermctl's working directory. For put the
 * file must exist; for get only its directory must.
 */
static int
absolute(const char *file, int must_exist, char *out, size_t outsz)
{
	char	 dir[PATH_MAX], copy1[PATH_MAX], copy2[PATH_MAX], *base;

	if (must_exist) {
		if (realpath(file, dir) == NULL)
			return (-1);
		if (snprintf(out, outsz, "%s", dir) >= (int)outsz) {
			errno = ENAMETOOLONG;
			return (-1);
		}
		return (0);
	}
	if (snprintf(copy1, sizeof(copy1), "%s", file) >= (int)sizeof(copy1) ||
	    snprintf(copy2, sizeof(copy2), "%s", file) >= (int)sizeof(copy2)) {
		errno = ENAMETOOLONG;
		return (-1);
	}
	base = basename(copy2);
	if (strcmp(base, ".") == 0 || strcmp(base, "..") == 0 ||
	    strcmp(base, "/") == 0 || file[strlen(file) - 1] == '/') {
		errno = EISDIR;
		return (-1);
	}
	if (realpath(dirname(copy1), dir) == NULL)
		return (-1);
	if (snprintf(out, outsz, "%s%s%s", dir, strcmp(dir, "/") == 0 ? "" :
	    "/", base) >= (int)outsz) {
		errno = ENAMETOOLONG;
		return (-1);
	}
	return (0);
}

int
cmd_storage_status(struct ctl *ctx, int argc, char **argv)
{
	int	r;

	if ((r = ctl_no_args(ctx, argc, argv)) != -1)
		return (r);
	return (ctl_call_print(ctx, "storage.status", json_object(), NULL));
}

/* Exits 1 when a checked backend is unhealthy, so scripts can test it. */
int
cmd_storage_check(struct ctl *ctx, int argc, char **argv)
{
	json_t	*params, *result = NULL, *b;
	size_t	 i;
	int	 r, bad = 0;

	if ((r = ctl_plain_args(ctx, argc, argv, 0, 1, NULL)) != -1)
		return (r);
	params = json_object();
	if (optind < argc)
		json_object_set_new(params, "backend",
		    json_string(argv[optind]));
	if ((r = ctl_call_print(ctx, "storage.check", params, &result)) !=
	    CTL_EXIT_OK)
		return (r);
	json_array_foreach(json_object_get(result, "backends"), i, b) {
		if (optind < argc && strcmp(json_string_value(
		    json_object_get(b, "name")), argv[optind]) != 0)
			continue;
		if (!json_is_true(json_object_get(b, "healthy")))
			bad = 1;
	}
	json_decref(result);
	return (bad ? CTL_EXIT_FAILED : CTL_EXIT_OK);
}

static int
put_or_get(struct ctl *ctx, int argc, char **argv, int put)
{
	char	path[PATH_MAX];
	int	r;

	if ((r = ctl_plain_args(ctx, argc, argv, 2, 2,
	    "key and file")) != -1)
		return (r);
	if (absolute(argv[optind + 1], put, path, sizeof(path)) == -1) {
		ctl_warnx("%s: %s", argv[optind + 1], strerror(errno));
		return (CTL_EXIT_FAILED);
	}
	return (ctl_call_print(ctx, put ? "storage.put" : "storage.get",
	    json_pack("{s:s, s:s}", "key", argv[optind], "path", path), NULL));
}

int
cmd_storage_put(struct ctl *ctx, int argc, char **argv)
{
	return (put_or_get(ctx, argc, argv, 1));
}

int
cmd_storage_get(struct ctl *ctx, int argc, char **argv)
{
	return (put_or_get(ctx, argc, argv, 0));
}
