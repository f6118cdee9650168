/* Protocol handlers, one family per m_*.c file, listed in dispatch.c. */
#ifndef METHODS_H
#define METHODS_H

struct ermd_req;

/* m_daemon.c */
int	m_hello(struct ermd_req *);
int	m_ping(struct ermd_req *);
int	m_status(struct ermd_req *);
int	m_config_reload(struct ermd_req *);
int	m_debug_advance(struct ermd_req *);
int	m_events_subscribe(struct ermd_req *);
int	m_metrics_get(struct ermd_req *);
int	m_metrics_prometheus(struct ermd_req *);

#endif
