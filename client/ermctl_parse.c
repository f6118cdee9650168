/*
 * Option values: counts, durations and paths, for every ermctl command.
 * Apart so that tests which build a command file alone can have the real
 * parsers.
 */

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ermctl.h"

int
ctl_parse_count(struct ctl *ctx, const char *opt, const char *s,
    int64_t min, int64_t *out)
{
	char		*end;
	long long	 v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (*s == '\0' || *end != '\0' || errno != 0 || v < min) {
		ctl_usage_error(ctx, "%s needs a number, %lld or more: '%s'",
		    opt, (long long)min, s);
		return (-1);
	}
	*out = v;
	return (0);
}

int
ctl_parse_duration(struct ctl *ctx, const char *opt, const char *s,
    int64_t bare_ms, int64_t min_ms, int64_t *out)
{
	static const struct {
		const char	*unit;
		int64_t		 ms;
	} units[] = {
		{ "ms", 1 }, { "s", 1000 }, { "m", 60000 }, { "h", 3600000 },
		{ "d", 86400000 },
	};
	char		*end;
	long long	 v;
	int64_t		 unit = -1;
	size_t		 i;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (*s < '0' || *s > '9' || errno != 0)
		goto bad;
	if (*end == '\0')
		unit = bare_ms;
	for (i = 0; i < sizeof(units) / sizeof(units[0]); i++)
		if (strcmp(end, units[i].unit) == 0)
			unit = units[i].ms;
	if (unit == -1 || v > INT64_MAX / unit || v * unit < min_ms)
		goto bad;
	*out = v * unit;
	return (0);
bad:
	ctl_usage_error(ctx, "%s needs a duration such as 500ms, 30s, 10m, "
	    "2h or 1d (a bare number is %s)%s: '%s'", opt, bare_ms == 1 ?
	    "milliseconds" : bare_ms == 1000 ? "seconds" : "scaled",
	    min_ms > 0 ? ", more than zero" : "", s);
	return (-1);
}

/* Shared by every command that sends a path (backup, run --backup). */
char *
ctl_absolute(const char *arg)
{
	char	 cwd[PATH_MAX], *joined, *out, *p, *seg, *save;
	size_t	 len;

	if (arg[0] == '/')
		joined = strdup(arg);
	else {
		if (getcwd(cwd, sizeof(cwd)) == NULL) {
			ctl_warnx("getcwd: %s", strerror(errno));
			return (NULL);
		}
		if (asprintf(&joined, "%s/%s", cwd, arg) == -1)
			joined = NULL;
	}
	if (joined == NULL || (out = malloc(strlen(joined) + 2)) == NULL) {
		free(joined);
		ctl_warnx("out of memory");
		return (NULL);
	}
	out[0] = '\0';
	len = 0;
	for (p = joined; (seg = strtok_r(p, "/", &save)) != NULL; p = NULL) {
		if (strcmp(seg, ".") == 0)
			continue;
		len += (size_t)sprintf(out + len, "/%s", seg);
	}
	if (len == 0)
		strcpy(out, "/");
	free(joined);
	return (out);
}
