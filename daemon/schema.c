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
	NULL
};
