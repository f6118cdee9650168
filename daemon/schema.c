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
	NULL
};
