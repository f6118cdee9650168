/* Logging to stderr; see log.h. */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

static int		 verbose;
static int		 journal;
static int		 to_syslog;
static const char	*prog = "ermd";

void
log_init(int v, const char *progname)
{
	verbose = v;
	prog = progname;
	journal = getenv("JOURNAL_STREAM") != NULL;
}

void
log_syslog(int on)
{
	to_syslog = on;
	if (on)
		openlog(prog, LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

/*
 * Under journald the "<N>" prefix carries the priority and the journal adds
 * its own timestamp and pid; on a terminal a short timestamp helps more.
 */
static void
vlog(int pri, const char *fmt, va_list ap, const char *suffix)
{
	char		ts[32];
	time_t		now;
	struct tm	tm;
	int		saved = errno;
	char		msg[1024];

	if (to_syslog) {
		vsnprintf(msg, sizeof(msg), fmt, ap);
		if (suffix != NULL)
			syslog(pri, "%s: %s", msg, suffix);
		else
			syslog(pri, "%s", msg);
		errno = saved;
		return;
	}
	/* The writer, worker and hasher threads log too: one line at once. */
	flockfile(stderr);
	if (journal)
		fprintf(stderr, "<%d>", pri);
	else {
		now = time(NULL);
		localtime_r(&now, &tm);
		strftime(ts, sizeof(ts), "%H:%M:%S", &tm);
		fprintf(stderr, "%s %s[%ld]: ", ts, prog, (long)getpid());
	}
	vfprintf(stderr, fmt, ap);
	if (suffix != NULL)
		fprintf(stderr, ": %s", suffix);
	fputc('\n', stderr);
	funlockfile(stderr);
	errno = saved;
}

#define LOGFN(name, pri, minv, errsuffix)				\
void									\
name(const char *fmt, ...)						\
{									\
	va_list	ap;							\
	const char *s = (errsuffix) ? strerror(errno) : NULL;		\
									\
	if (verbose < (minv))						\
		return;							\
	va_start(ap, fmt);						\
	vlog((pri), fmt, ap, s);					\
	va_end(ap);							\
}

LOGFN(log_crit, LOG_CRIT, 0, 0)
LOGFN(log_warn, LOG_WARNING, 0, 1)
LOGFN(log_warnx, LOG_WARNING, 0, 0)
LOGFN(log_info, LOG_INFO, 0, 0)
LOGFN(log_debug, LOG_DEBUG, 1, 0)

void
fatal(const char *fmt, ...)
{
	va_list		 ap;
	const char	*s = strerror(errno);

	va_start(ap, fmt);
	vlog(LOG_CRIT, fmt, ap, s);
	va_end(ap);
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	vlog(LOG_CRIT, fmt, ap, NULL);
	va_end(ap);
	exit(1);
}
