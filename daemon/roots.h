/*
 * Path confinement: the configured roots ([root.NAME]), each held open as a
 * directory, and the resolution of a client's path beneath one of them,
 * one component at a time with openat2(RESOLVE_BENEATH |
 * RESOLVE_NO_SYMLINKS), so that no path a client sends reaches a file
 * outside the roots or one the client could not reach itself.
 *
 * roots_find() runs on the loop thread and does no I/O: it checks the text
 * of the path and the root's allow lists. The open functions run on worker
 * threads and touch nothing but their arguments.
 */
#ifndef ROOTS_H
#define ROOTS_H

#include <sys/stat.h>
#include <sys/types.h>

#define PEER_MAX_GROUPS		64
#define ROOT_NAME_MAX		64

/* Who asked: a connection's credentials (SO_PEERCRED and its groups). */
struct peer {
	uid_t	uid;
	gid_t	gid;
	pid_t	pid;
	int	admin;			/* may call admin methods */
	int	ngroups;
	gid_t	groups[PEER_MAX_GROUPS];
};

/* Why a path was refused or could not be opened. */
struct root_err {
	int	code;		/* ERM_PERMISSION_DENIED, ERM_IO_ERROR */
	int	err;		/* errno, for ERM_IO_ERROR; ENOTDIR for a
				   component that is no directory; else 0 */
	char	msg[256];
};

#define ROOT_ALLOW_HARDLINKS	0x01

/*
 * A path matched to a root: what a worker needs to walk it. rootfd is a
 * duplicate the holder closes with root_path_clear(), so a reload that
 * closes the roots never pulls a directory from under a copy in flight.
 */
struct root_path {
	int	 rootfd;
	int	 flags;			/* ROOT_ALLOW_HARDLINKS */
	char	*path;		/* canonical, absolute; owned */
	char	*rel;		/* beneath the root; in path */
	char	 root[ROOT_NAME_MAX];	/* the root's name */
};

/* Register the [root.NAME] config sections. */
void	 roots_register(void);
/* Close every root (shutdown). */
void	 roots_clear(void);
unsigned roots_count(void);

/*
 * Match path (len bytes: a NUL inside is refused) to the root with the
 * longest matching directory, and check that the peer may use that root.
 * Returns 0 with *out filled (root_path_clear it), or -1 with e set
 * (always ERM_PERMISSION_DENIED). No I/O.
 */
int	 roots_find(const char *path, size_t len, const struct peer *,
	    struct root_path *out, struct root_err *e);
/* Does path lie beneath a root that the peer may use? (No I/O.) */
int	 roots_visible(const char *path, const struct peer *);
void	 root_path_clear(struct root_path *);

/*
 * On a worker: open the regular file rp names for reading, walking each
 * directory without following symlinks and checking that the peer may
 * search it and read the file. *st is the file's status. Returns 0, or -1
 * with e set.
 */
int	 roots_open_read(const struct root_path *rp, const struct peer *,
	    int *fd, struct stat *st, struct root_err *e);

/*
 * On a worker: open the directory that holds rp's file, for a restore that
 * writes a temp file there and renames it over the file. *exists tells
 * whether the file is there now (a regular file, *st its status, which the
 * peer may write) or not (the peer may write the directory). *name points
 * into rp. Returns 0 with *dirfd open, or -1 with e set; a name that is
 * there but is no regular file is refused with *exists 1 and *st its
 * status (a directory, say).
 */
int	 roots_open_parent(const struct root_path *rp, const struct peer *,
	    int *dirfd, const char **name, int *exists, struct stat *st,
	    struct root_err *e);

/*
 * Does rp's directory still resolve to dirfd's directory? A restore asks
 * just before its rename, so a directory moved out of the root meanwhile
 * is not written into. 1 yes, 0 no.
 */
int	 roots_same_parent(const struct root_path *rp, int dirfd);

/* Tests: 0 walks with the O_NOFOLLOW fallback even where openat2 exists. */
void	 roots_use_openat2(int on);

/* May the peer do want (R_OK, W_OK, X_OK, or'ed) to a file with st? */
int	 peer_may(const struct peer *, const struct stat *st, int want);
int	 peer_in_group(const struct peer *, gid_t);

#endif
