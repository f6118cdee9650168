/*
 * The database schema, as an ordered list of migrations. Migration i brings
 * the schema from user_version i to i + 1; never edit a released one, append.
 */

#include <stddef.h>

#include "schema.h"

const char *const schema_migrations[] = {
	/* 1: daemon metadata. */
	"CREATE TABLE meta ("
	"  key TEXT PRIMARY KEY,"
	"  value TEXT NOT NULL"
	");"
	"INSERT INTO meta (key, value) VALUES ('created_at',"
	"  CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER));",
	/*
	 * 2: backups: each distinct content once (backup_object, named by its
	 * SHA-256), a record per backup, and the oplog of every backup,
	 * restore, prune and corruption found.
	 */
	"CREATE TABLE backup_object ("
	"  sha256 TEXT PRIMARY KEY,"
	"  size INTEGER NOT NULL,"
	"  created_at INTEGER NOT NULL"
	") WITHOUT ROWID;"
	"CREATE TABLE backup ("
	"  seq INTEGER PRIMARY KEY,"
	"  id TEXT NOT NULL UNIQUE,"
	"  path TEXT NOT NULL,"
	"  sha256 TEXT NOT NULL REFERENCES backup_object (sha256),"
	"  size INTEGER NOT NULL,"
	"  mode INTEGER NOT NULL,"
	"  uid INTEGER NOT NULL,"
	"  gid INTEGER NOT NULL,"
	"  mtime_ns INTEGER NOT NULL,"
	"  tag TEXT,"
	"  created_at INTEGER NOT NULL,"
	"  peer_uid INTEGER NOT NULL,"
	"  peer_pid INTEGER NOT NULL"
	");"
	"CREATE INDEX backup_by_path ON backup (path, created_at);"
	"CREATE INDEX backup_by_sha ON backup (sha256);"
	"CREATE INDEX backup_by_created ON backup (created_at);"
	"CREATE TABLE oplog ("
	"  seq INTEGER PRIMARY KEY,"
	"  at INTEGER NOT NULL,"
	"  action TEXT NOT NULL,"
	"  path TEXT,"
	"  backup_id TEXT,"
	"  uid INTEGER NOT NULL,"
	"  pid INTEGER NOT NULL,"
	"  ok INTEGER NOT NULL,"
	"  error_code INTEGER NOT NULL,"
	"  error_message TEXT"
	");"
	"CREATE INDEX oplog_by_path ON oplog (path, seq);"
	"CREATE INDEX oplog_by_at ON oplog (at);",
	/*
	 * 3: the decision core: a snapshot per breaker (state, window,
	 * overrides; breaker.c's format) and every finished op.
	 */
	"CREATE TABLE breakers ("
	"  name TEXT PRIMARY KEY,"
	"  snapshot TEXT NOT NULL,"
	"  updated_at INTEGER NOT NULL"
	") WITHOUT ROWID;"
	"CREATE TABLE ops ("
	"  id TEXT PRIMARY KEY,"
	"  operation TEXT NOT NULL,"
	"  state TEXT NOT NULL,"
	"  reason TEXT,"
	"  breaker TEXT,"
	"  attempts INTEGER NOT NULL,"
	"  failures INTEGER NOT NULL,"
	"  recovered INTEGER NOT NULL,"
	"  started_at INTEGER NOT NULL,"
	"  finished_at INTEGER NOT NULL,"
	"  errors TEXT NOT NULL,"
	"  backups TEXT NOT NULL,"
	"  peer_uid INTEGER NOT NULL,"
	"  peer_pid INTEGER NOT NULL,"
	"  forwarded INTEGER NOT NULL DEFAULT 0"
	");"
	"CREATE INDEX ops_by_finished ON ops (finished_at);",
	/*
	 * Errors (issue 4): every error.report, once per id, and a counter
	 * per category that pruning never lowers.
	 */
	"CREATE TABLE errors ("
	"  seq INTEGER PRIMARY KEY,"
	"  id TEXT NOT NULL UNIQUE,"
	"  at INTEGER NOT NULL,"
	"  operation TEXT NOT NULL,"
	"  category TEXT NOT NULL,"
	"  strategy TEXT NOT NULL,"
	"  fallback TEXT,"
	"  matched TEXT NOT NULL,"
	"  severity TEXT NOT NULL,"
	"  message TEXT,"
	"  path TEXT,"
	"  context TEXT,"
	"  error TEXT NOT NULL,"
	"  forwarded INTEGER NOT NULL DEFAULT 0"
	");"
	"CREATE INDEX errors_by_at ON errors (at);"
	"CREATE TABLE error_counts ("
	"  category TEXT PRIMARY KEY,"
	"  n INTEGER NOT NULL"
	") WITHOUT ROWID;"
	"INSERT INTO error_counts (category, n) VALUES ('NETWORK_ERROR', 0),"
	"  ('STORAGE_ERROR', 0), ('AUTHENTICATION_ERROR', 0),"
	"  ('QUOTA_EXCEEDED', 0), ('FILE_NOT_FOUND', 0),"
	"  ('CORRUPTED_DATA', 0), ('TIMEOUT_ERROR', 0),"
	"  ('RATE_LIMIT_ERROR', 0), ('PERMISSION_ERROR', 0),"
	"  ('SYSTEM_ERROR', 0);",
	/*
	 * 5: workflows: the create request as given (spec) and the workflow's
	 * state; a row per step with its state and completion order
	 * (done_seq, for compensation in reverse). See workflow.c.
	 */
	"CREATE TABLE workflows ("
	"  id TEXT PRIMARY KEY,"
	"  name TEXT NOT NULL,"
	"  state TEXT NOT NULL,"
	"  spec TEXT NOT NULL,"
	"  created_at INTEGER NOT NULL,"
	"  started_at INTEGER NOT NULL,"
	"  finished_at INTEGER NOT NULL,"
	"  error TEXT,"
	"  peer TEXT NOT NULL,"
	"  exec_allowed INTEGER NOT NULL"
	");"
	"CREATE INDEX workflows_by_state ON workflows (state, id);"
	"CREATE TABLE workflow_steps ("
	"  workflow_id TEXT NOT NULL,"
	"  idx INTEGER NOT NULL,"
	"  name TEXT NOT NULL,"
	"  state TEXT NOT NULL,"
	"  attempts INTEGER NOT NULL,"
	"  started_at INTEGER NOT NULL,"
	"  finished_at INTEGER NOT NULL,"
	"  done_seq INTEGER NOT NULL,"
	"  error TEXT,"
	"  output TEXT,"
	"  PRIMARY KEY (workflow_id, idx)"
	") WITHOUT ROWID;",
	/*
	 * The outbox of the Supabase forwarder (issue 4): one row per record
	 * to forward (kind 0 errors, 1 recoveries, 2 alerts), its JSON as
	 * sent; delivered rows are deleted, refused ones kept with dead = 1.
	 */
	"CREATE TABLE outbox ("
	"  seq INTEGER PRIMARY KEY,"
	"  kind INTEGER NOT NULL,"
	"  row_id TEXT NOT NULL,"
	"  body TEXT NOT NULL,"
	"  severity INTEGER NOT NULL,"
	"  created_at INTEGER NOT NULL,"
	"  dead INTEGER NOT NULL DEFAULT 0,"
	"  dead_at INTEGER,"
	"  error TEXT"
	");"
	"CREATE INDEX outbox_by_kind ON outbox (kind, dead, seq);"
	"CREATE INDEX outbox_by_severity ON outbox (dead, severity, seq);",
	/* Alerts (issue 4): every alert raised, as sent to the sinks. */
	"CREATE TABLE alerts ("
	"  id TEXT PRIMARY KEY,"
	"  at INTEGER NOT NULL,"
	"  key TEXT NOT NULL,"
	"  kind TEXT NOT NULL,"
	"  severity TEXT NOT NULL,"
	"  message TEXT NOT NULL,"
	"  details TEXT NOT NULL"
	");"
	"CREATE INDEX alerts_by_at ON alerts (at);",
	/*
	 * 8: breaker outcomes go to a journal (journal.c); each snapshot
	 * keeps the journal seq it already includes.
	 */
	"ALTER TABLE breakers ADD COLUMN journal_seq INTEGER NOT NULL "
	"DEFAULT 0;",
	/*
	 * 9: retention. Finished ops are pruned with the errors ([errors]
	 * max_age_ms); the recovered and failed ones pruned still count in
	 * ermd_recoveries_total. Finished workflows are pruned by
	 * [workflow] max_age_ms, oldest first.
	 */
	"CREATE TABLE ops_pruned ("
	"  recovered INTEGER NOT NULL,"
	"  failed INTEGER NOT NULL"
	");"
	"INSERT INTO ops_pruned VALUES (0, 0);"
	"CREATE INDEX workflows_by_finished ON workflows (finished_at);",
	NULL
};
