/*
 * errors_sqlite: the baseline for bench/errors.sh - how many error rows
 * per second SQLite alone makes durable when each row is its own
 * transaction (WAL, synchronous FULL or NORMAL), with the same table and
 * index as ermd's `errors`: what a tracker that commits every report by
 * itself could reach on this disk.
 *
 * usage: errors_sqlite DB full|normal [SECONDS]
 */

#include <err.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sqlite3.h>

static double
now_s(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((double)ts.tv_sec + (double)ts.tv_nsec / 1e9);
}

int
main(int argc, char *argv[])
{
	sqlite3		*db;
	sqlite3_stmt	*st;
	char		 id[48], sql[200];
	double		 t0, t, secs = argc > 3 ? atof(argv[3]) : 3;
	long		 n = 0;

	if (argc < 3 || (strcmp(argv[2], "full") != 0 &&
	    strcmp(argv[2], "normal") != 0))
		errx(2, "usage: errors_sqlite DB full|normal [SECONDS]");
	snprintf(sql, sizeof(sql), "PRAGMA journal_mode=WAL; "
	    "PRAGMA synchronous=%s;", argv[2]);
	if (sqlite3_open(argv[1], &db) != SQLITE_OK ||
	    sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_exec(db, "CREATE TABLE IF NOT EXISTS errors (seq INTEGER "
	    "PRIMARY KEY, id TEXT NOT NULL UNIQUE, at INTEGER NOT NULL, "
	    "operation TEXT NOT NULL, category TEXT NOT NULL, strategy TEXT "
	    "NOT NULL, fallback TEXT, matched TEXT NOT NULL, severity TEXT NOT "
	    "NULL, message TEXT, path TEXT, context TEXT, error TEXT NOT NULL, "
	    "forwarded INTEGER NOT NULL DEFAULT 0); CREATE INDEX IF NOT EXISTS "
	    "errors_by_at ON errors (at);", NULL, NULL, NULL) != SQLITE_OK)
		errx(1, "sqlite: %s", sqlite3_errmsg(db));
	if (sqlite3_prepare_v2(db, "INSERT INTO errors (id, at, operation, "
	    "category, strategy, fallback, matched, severity, error) VALUES "
	    "(?, ?, 'bench', 'NETWORK_ERROR', 'retry_with_backoff', "
	    "'fallback_storage', 'errno:ECONNRESET', 'error', "
	    "'{\"errno\":\"ECONNRESET\"}')", -1, &st, NULL) != SQLITE_OK)
		errx(1, "sqlite: %s", sqlite3_errmsg(db));
	t0 = now_s();
	do {
		/* Autocommit: one transaction (one fsync at FULL) per row. */
		snprintf(id, sizeof(id), "0190a000-0000-7000-8000-%012lx", n);
		sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
		sqlite3_bind_int64(st, 2, (sqlite3_int64)n);
		if (sqlite3_step(st) != SQLITE_DONE)
			errx(1, "sqlite: %s", sqlite3_errmsg(db));
		sqlite3_reset(st);
		n++;
		t = now_s() - t0;
	} while (t < secs);
	printf("sqlite_rows_per_s=%.0f rows=%ld seconds=%.2f\n",
	    (double)n / t, n, t);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return (0);
}
