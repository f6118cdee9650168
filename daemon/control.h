/*
 * The listening socket: created safely or taken from systemd, accepted from
 * with the connection limit and the EMFILE pause.
 */
#ifndef CONTROL_H
#define CONTROL_H

/*
 * Listen on path, or on the socket systemd passed (LISTEN_FDS). Returns -1
 * with *cause (malloc'ed) when another ermd answers on path, the path is
 * something other than a socket, or the socket cannot be made.
 */
int	control_listen(const char *path, int mode, char **cause);
/* Stop accepting; remove the socket file when this process made it. */
void	control_close(void);
int	control_activated(void);

#endif
