/* The listening socket; see control.h. */

#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <systemd/sd-daemon.h>

#include "config.h"
#include "conn.h"
#include "control.h"
#include "erm_proto.h"
#include "ermd.h"
#include "log.h"

#define ACCEPTS_PER_WAKEUP	64

static struct {
	int		 fd;
	int		 lockfd;
	int		 activated;	/* systemd owns the socket file */
	char		 path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	char		 lockpath[sizeof(((struct sockaddr_un *)0)->sun_path) + 8];
	struct event	*ev;
	struct event	*pause_ev;
} ctl = { .fd = -1, .lockfd = -1 };

int
control_activated(void)
{
	return (ctl.activated);
}

/*
 * The EMFILE pause runs on real time even with --manual-clock: it paces the
 * daemon's dealings with the kernel, not anything a client can observe.
 */
static void
resume_accept(int fd, short ev, void *arg)
{
	(void)fd;
	(void)ev;
	(void)arg;
	event_add(ctl.ev, NULL);
}

static void
pause_accept(void)
{
	struct timeval	tv = { 1, 0 };

	log_warnx("accept: out of file descriptors; pausing for a second");
	event_del(ctl.ev);
	if (ctl.pause_ev == NULL)
		ctl.pause_ev = evtimer_new(ermd.base, resume_accept, NULL);
	if (ctl.pause_ev != NULL)
		evtimer_add(ctl.pause_ev, &tv);
}

/* One error frame, written straight to the new socket, then close. */
static void
refuse(int fd)
{
	json_t	*m;
	uint8_t	*frame;
	size_t	 len;

	m = json_pack("{s:n, s:{s:i, s:s, s:{s:s, s:I}}}", "id", "error",
	    "code", ERM_LIMIT_EXCEEDED, "message", "too many connections",
	    "data", "limit", "max_connections", "value",
	    (json_int_t)ermd.cfg->max_connections);
	if (m != NULL && (frame = erm_frame_encode(m, UINT32_MAX,
	    &len)) != NULL) {
		(void)send(fd, frame, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		free(frame);
	}
	json_decref(m);
	close(fd);
}

static void
control_accept(int lfd, short ev, void *arg)
{
	int	fd, i;

	(void)ev;
	(void)arg;
	for (i = 0; i < ACCEPTS_PER_WAKEUP; i++) {
		fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd == -1) {
			if (errno == EMFILE || errno == ENFILE)
				pause_accept();
			else if (errno != EAGAIN && errno != EINTR &&
			    errno != ECONNABORTED)
				log_warn("accept");
			return;
		}
		if (conn_count() >= (unsigned)ermd.cfg->max_connections) {
			log_debug("refusing a connection: max_connections "
			    "(%lld) reached", (long long)ermd.cfg->max_connections);
			refuse(fd);
			continue;
		}
		(void)conn_new(fd);
	}
}

/*
 * Is an ermd answering on path? A stale socket (left by a crash) refuses
 * connections; only then is it safe to remove.
 */
static int
socket_alive(const char *path)
{
	struct sockaddr_un	sun;
	int			fd, alive;

	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return (0);
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, path, strlen(path));
	alive = connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == 0;
	close(fd);
	return (alive);
}

static int
make_socket(const char *path, int mode, char **cause)
{
	struct sockaddr_un	sun;
	struct stat		sb;
	mode_t			old;
	int			fd, rc;

	if (strlen(path) >= sizeof(sun.sun_path)) {
		asprintf(cause, "%s: socket path longer than %zu bytes", path,
		    sizeof(sun.sun_path) - 1);
		return (-1);
	}
	/*
	 * The lock file makes the check-then-unlink below safe between two
	 * ermds starting at once: whoever holds it owns the path.
	 */
	snprintf(ctl.lockpath, sizeof(ctl.lockpath), "%s.lock", path);
	if ((fd = open(ctl.lockpath, O_RDWR | O_CREAT | O_CLOEXEC,
	    0600)) == -1) {
		asprintf(cause, "%s: %s", ctl.lockpath, strerror(errno));
		return (-1);
	}
	if (flock(fd, LOCK_EX | LOCK_NB) == -1) {
		asprintf(cause, "another ermd is running on %s", path);
		close(fd);
		return (-1);
	}
	ctl.lockfd = fd;
	if (lstat(path, &sb) == 0) {
		if (!S_ISSOCK(sb.st_mode)) {
			asprintf(cause, "%s exists and is not a socket; not "
			    "removing it", path);
			return (-1);
		}
		if (socket_alive(path)) {
			asprintf(cause, "another ermd is answering on %s",
			    path);
			return (-1);
		}
		log_info("removing stale socket %s", path);
		if (unlink(path) == -1) {
			asprintf(cause, "unlink %s: %s", path,
			    strerror(errno));
			return (-1);
		}
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0)) == -1) {
		asprintf(cause, "socket: %s", strerror(errno));
		return (-1);
	}
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, path, strlen(path));
	/* The mode is right from the moment the file exists: no chmod race. */
	old = umask(~(mode_t)mode & 0777);
	rc = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
	umask(old);
	if (rc == -1 || listen(fd, 511) == -1) {
		asprintf(cause, "%s: %s", path, strerror(errno));
		close(fd);
		return (-1);
	}
	snprintf(ctl.path, sizeof(ctl.path), "%s", path);
	return (fd);
}

int
control_listen(const char *path, int mode, char **cause)
{
	int	n, fd;

	*cause = NULL;
	n = sd_listen_fds(1);
	if (n > 1) {
		asprintf(cause, "systemd passed %d sockets; expected one", n);
		return (-1);
	}
	if (n == 1) {
		fd = SD_LISTEN_FDS_START;
		if (sd_is_socket_unix(fd, SOCK_STREAM, 1, NULL, 0) <= 0) {
			asprintf(cause, "the socket systemd passed is not a "
			    "listening Unix stream socket");
			return (-1);
		}
		if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) == -1 ||
		    fcntl(fd, F_SETFD, FD_CLOEXEC) == -1) {
			asprintf(cause, "fcntl: %s", strerror(errno));
			return (-1);
		}
		ctl.activated = 1;
		log_info("listening on the socket passed by systemd");
	} else if ((fd = make_socket(path, mode, cause)) == -1)
		return (-1);
	ctl.fd = fd;
	ctl.ev = event_new(ermd.base, fd, EV_READ | EV_PERSIST, control_accept,
	    NULL);
	if (ctl.ev == NULL || event_add(ctl.ev, NULL) == -1) {
		asprintf(cause, "event_new failed");
		return (-1);
	}
	return (0);
}

void
control_close(void)
{
	if (ctl.ev != NULL)
		event_free(ctl.ev);
	if (ctl.pause_ev != NULL)
		event_free(ctl.pause_ev);
	ctl.ev = ctl.pause_ev = NULL;
	if (ctl.fd != -1)
		close(ctl.fd);
	ctl.fd = -1;
	if (!ctl.activated && ctl.path[0] != '\0') {
		unlink(ctl.path);
		ctl.path[0] = '\0';
	}
	/* The lock file stays: unlinking it would let a second ermd lock a
	 * new file while a third still holds the old one. */
	if (ctl.lockfd != -1) {
		close(ctl.lockfd);
		ctl.lockfd = -1;
	}
}
