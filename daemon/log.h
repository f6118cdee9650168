/*
 * Logging to stderr, with sd-daemon "<N>" priority prefixes when stderr is
 * the journal (JOURNAL_STREAM set), in the manner of OpenBSD's log.c.
 */
#ifndef LOG_H
#define LOG_H

#include <stdarg.h>

void	log_init(int verbose, const char *progname);
/* Send messages to syslog instead of stderr (a detached daemon). */
void	log_syslog(int on);
void	log_crit(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_warn(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_warnx(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_info(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_debug(const char *, ...) __attribute__((format(printf, 1, 2)));
void	fatal(const char *, ...)
	    __attribute__((format(printf, 1, 2), noreturn));
void	fatalx(const char *, ...)
	    __attribute__((format(printf, 1, 2), noreturn));

#endif
