/*
 * The optional HTTP listener for Prometheus ([metrics] listen = ADDR:PORT,
 * off by default): GET /metrics only, bounded.
 */
#ifndef HTTPD_H
#define HTTPD_H

struct event_base;

void	httpd_register(void);
void	httpd_start(struct event_base *);
void	httpd_stop(void);

#endif
