/*
 * workflow_sqlite: the baseline for bench/workflow.sh - how many step
 * transitions per second SQLite alone makes durable when each is its own
 * transaction (WAL, synchronous=FULL, as ermd's store with durability
 * full), i.e. what a workflow engine that commits every transition by
 * itself, one after another, could reach on this disk.
 *
 * usage: workflow_sqlite DB [SECONDS]
 */

#include <err.h>
#include <stdio.h>
#include <stdlib.h>
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
	double		 t0, t, secs = argc > 2 ? atof(argv[2]) : 3;
	long		 n = 0;
	int		 i;

	if (argc < 2)
		errx(2, "usage: workflow_sqlite DB [SECONDS]");
	if (sqlite3_open(argv[1], &db) != SQLITE_OK ||
	    sqlite3_exec(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous="
	    "FULL; CREATE TABLE IF NOT EXISTS workflow_steps (workflow_id "
	    "TEXT, idx INTEGER, state TEXT, attempts INTEGER, PRIMARY KEY "
	    "(workflow_id, idx)) WITHOUT ROWID;", NULL, NULL, NULL) !=
	    SQLITE_OK)
		errx(1, "sqlite: %s", sqlite3_errmsg(db));
	for (i = 0; i < 100; i++)
		sqlite3_exec(db, sqlite3_mprintf("INSERT OR REPLACE INTO "
		    "workflow_steps VALUES ('w', %d, 'pending', 0)", i), NULL,
		    NULL, NULL);
	if (sqlite3_prepare_v2(db, "UPDATE workflow_steps SET state = ?, "
	    "attempts = 1 WHERE workflow_id = 'w' AND idx = ?", -1, &st,
	    NULL) != SQLITE_OK)
		errx(1, "sqlite: %s", sqlite3_errmsg(db));
	t0 = now_s();
	do {
		/* Autocommit: one transaction, one fsync, per transition. */
		sqlite3_bind_text(st, 1, n % 2 ? "succeeded" : "running", -1,
		    SQLITE_STATIC);
		sqlite3_bind_int(st, 2, (int)(n / 2 % 100));
		if (sqlite3_step(st) != SQLITE_DONE)
			errx(1, "sqlite: %s", sqlite3_errmsg(db));
		sqlite3_reset(st);
		n++;
		t = now_s() - t0;
	} while (t < secs);
	printf("sqlite_commits_per_s=%.0f commits=%ld seconds=%.2f\n",
	    (double)n / t, n, t);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return (0);
}
