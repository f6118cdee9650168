/*
 * Regress harness: start a private ermd on a temp socket and state dir,
 * talk to it with raw frames or ermctl, and stop it. A failing test prints
 * the daemon's log.
 */
#ifndef HARNESS_H
#define HARNESS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

struct daemon {
	pid_t	pid;
	char	dir[64];		/* temp dir: sock, state, log, conf */
	char	sock[128];
	char	state[128];
	char	log[128];
	char	conf[128];
	int	has_conf;
	const char *const *args;
	const char *const *env;		/* "NAME=value" added for ermd */
	int	 pass_fd;		/* >= 0: handed to ermd as fd 3 */
	int	 nofile;		/* > 0: ermd's RLIMIT_NOFILE */
};

/*
 * Start ermd with the given config text (NULL: none) and extra arguments
 * (NULL-terminated, may be NULL); waits until it answers ping.
 */
void	 daemon_start(struct daemon *, const char *conf, const char *const *args);
/* The same with extra environment and, when pass_fd >= 0, a listening
 * socket handed over as systemd does (LISTEN_FDS=1, fd 3). Uses the temp
 * dir of a daemon_prepare() when one was made (d->dir set). */
void	 daemon_start_env(struct daemon *, const char *conf,
	    const char *const *args, const char *const *env, int pass_fd);
/* Make the temp dir and paths without starting anything. */
void	 daemon_prepare(struct daemon *);
/* Start again on the same socket, state and config (after a stop or kill). */
void	 daemon_restart(struct daemon *);
/* SIGTERM and wait; returns the exit status (or 128 + signal). Removes the
 * temp dir when ermd exited 0. */
int	 daemon_stop(struct daemon *);
/* The same, keeping the temp dir for a daemon_restart. */
int	 daemon_stop_keep(struct daemon *);
void	 daemon_kill9(struct daemon *);
/* Print the daemon's log to stderr (on failure). */
void	 daemon_dump_log(const struct daemon *);
/* 1 once the daemon's log holds needle, waiting up to wait_ms; else 0. */
int	 daemon_log_has(const struct daemon *, const char *needle,
	    int wait_ms);

/* A UUID (the v7 layout) for (group, n), so a test can name it again. */
void	 test_uuid(char *out, size_t sz, int group, int n);

/* Files. write_text creates or truncates path; the test fails if it cannot. */
void	 write_text(const char *path, const char *text);
/* The text of path (up to 1 MiB) in a static buffer; fails the test when
 * it cannot be read. */
const char *read_text(const char *path);
/* 1 once the file at path holds needle, waiting up to wait_ms; else 0
 * (a file not there yet is waited for too). */
int	 file_has(const char *path, const char *needle, int wait_ms);
/*
 * Write to dst the shipped conf/ermd.conf with every key it documents set
 * to the default it shows: "#key = value" lines uncommented,
 * "#[backend.NAME]" and "#[root.NAME]" made sections ([backend.doc]...;
 * prose is "# text"). The backend's url stays out: the file shows path and
 * url as the two kinds. Returns the number of keys uncommented.
 */
int	 documented_conf(const char *dst);
/* Replace the config file's text (for reload tests). */
void	 daemon_write_conf(struct daemon *, const char *conf);

/* Raw protocol access. */
int	 raw_connect(const char *sock);		/* -1 on failure */
void	 raw_send_bytes(int fd, const void *buf, size_t len);
void	 raw_send_frame(int fd, const char *json);
/* The same in one send: 0, or -1 when the peer has gone (no failure). */
int	 raw_try_send_frame(int fd, const char *json);
/* Next frame as JSON (new reference); NULL on EOF or after timeout_ms. */
json_t	*raw_recv(int fd, int timeout_ms);
/* 1 when the peer has closed (EOF within timeout_ms, after draining). */
int	 raw_closed(int fd, int timeout_ms);
/* Send a request and wait for the reply with the same id. */
json_t	*raw_call(int fd, const char *json);
/* A new connection pings and gets pong: the daemon still serves. */
void	 assert_serves(const struct daemon *);

/* The error code of a reply, or 0 when it is a success. */
int	 reply_code(const json_t *reply);
/*
 * Send the request fmt makes (printf-style, any length) on fd and wait
 * for its reply (a new reference); when none comes the test fails,
 * showing the log of the daemon started last.
 */
json_t	*call_on(int fd, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));
/* Move the daemon clock by ms (ermd runs with --manual-clock). */
void	 advance_on(int fd, int64_t ms);
/* The result of a success reply (borrowed); an error reply fails the test. */
json_t	*result(json_t *r);

/*
 * Run ermctl against the daemon with args (NULL-terminated), capturing
 * stdout into out (NUL-terminated, truncated to outsz). Returns the exit
 * status.
 */
int	 ermctl(const struct daemon *, char *out, size_t outsz,
	    const char *const *args);
/* Run a program; same conventions. */
int	 run_prog(char *out, size_t outsz, const char *const *argv);
/*
 * Start ermctl against the daemon with args (NULL-terminated) in the
 * background, its stdout into the file out_path (created or truncated),
 * for what runs until stopped (events, errors --follow). Its pid.
 */
pid_t	 ermctl_start(const struct daemon *, const char *out_path,
	    const char *const *args);
/* CLOCK_MONOTONIC in milliseconds. */
double	 mono_ms(void);

/*
 * The first column of the first row of sql (an integer) in the daemon's
 * database, read-only beside the running daemon; -1 when it cannot be
 * read. For what no method shows (the alerts table, for one).
 */
int64_t	 db_int(const struct daemon *, const char *sql);

/*
 * Mount a tmpfs of size ("2m") on dir, in a mount namespace of this test
 * process's own (and of the daemon it starts), so that it goes away with
 * them even when the test fails. Needs root: -1 after saying why on
 * stderr (the caller skips).
 */
int	 mount_small_tmpfs(const char *dir, const char *size);
/* Write dir/filler until the file system is full (ENOSPC). */
void	 fill_up(const char *dir);
/*
 * Stop a daemon whose state dir is a mount_small_tmpfs (asserting exit 0),
 * unmount it and remove the temp dir.
 */
void	 daemon_stop_unmount(struct daemon *);

/* A TCP port on 127.0.0.1 free a moment ago. */
int	 free_port(void);
/* A connection to 127.0.0.1:port, or -1. */
int	 tcp_connect(int port);

const char *ermd_path(void);
const char *ermctl_path(void);

#endif
