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

/* m_storage.c */
int	m_storage_check(struct ermd_req *);
int	m_storage_get(struct ermd_req *);
int	m_storage_put(struct ermd_req *);
int	m_storage_report(struct ermd_req *);
int	m_storage_select(struct ermd_req *);
int	m_storage_status(struct ermd_req *);

/* m_backup.c */
int	m_backup_create(struct ermd_req *);
int	m_backup_get(struct ermd_req *);
int	m_backup_list(struct ermd_req *);
int	m_backup_prune(struct ermd_req *);
int	m_backup_restore(struct ermd_req *);
int	m_backup_verify(struct ermd_req *);
int	m_oplog_list(struct ermd_req *);

/* m_decide.c */
int	m_breaker_acquire(struct ermd_req *);
int	m_breaker_configure(struct ermd_req *);
int	m_breaker_force(struct ermd_req *);
int	m_breaker_get(struct ermd_req *);
int	m_breaker_list(struct ermd_req *);
int	m_breaker_record(struct ermd_req *);
int	m_breaker_reset(struct ermd_req *);
int	m_error_classify(struct ermd_req *);
int	m_retry_next(struct ermd_req *);
int	m_retry_policy(struct ermd_req *);
void	m_breaker_stop(void);

/* m_op.c */
int	m_op_begin(struct ermd_req *);
int	m_op_fail(struct ermd_req *);
int	m_op_get(struct ermd_req *);
int	m_op_succeed(struct ermd_req *);
void	m_op_start(void);
void	m_op_stop(void);

/* m_errors.c (issue 4) */
int	m_error_list(struct ermd_req *);
int	m_error_report(struct ermd_req *);
int	m_error_stats(struct ermd_req *);

/* m_workflow.c */
int	m_workflow_cancel(struct ermd_req *);
int	m_workflow_create(struct ermd_req *);
int	m_workflow_get(struct ermd_req *);
int	m_workflow_list(struct ermd_req *);
int	m_workflow_run(struct ermd_req *);
int	m_workflow_step_result(struct ermd_req *);
int	m_workflow_wait(struct ermd_req *);

#endif
