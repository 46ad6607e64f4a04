/*
 * db.h: the COFRE_DB setting (sqlite:PATH or a PostgreSQL URL) and opening SQLite the way
 * every cofre service needs it: WAL, synchronous=FULL (an acknowledged write survives power
 * loss), foreign keys on, a busy timeout.
 */
#ifndef COFRE_DB_H
#define COFRE_DB_H

#include <sqlite3.h>
#include <stdbool.h>

typedef enum cofre_db_kind {
    COFRE_DB_SQLITE,
    COFRE_DB_POSTGRES,
} cofre_db_kind_t;

/*
 * Parses a COFRE_DB value. For SQLite, *target is the file path (after "sqlite:"); for
 * PostgreSQL, the URL itself. Returns 0, or COFRE_EINVAL.
 */
int cofre_db_parse_url(const char *url, cofre_db_kind_t *kind, const char **target);

/*
 * Opens the SQLite database at path, creating it (and its directory must exist) unless
 * readonly. cache_kib sizes the page cache. Returns NULL and logs the reason on failure.
 */
sqlite3 *cofre_db_sqlite_open(const char *path, bool readonly, int cache_kib);

/* Runs sql (no results); logs and returns COFRE_EIO on failure. */
int cofre_db_sqlite_exec(sqlite3 *db, const char *sql);

/* Prepares a persistent statement; aborts on failure (the SQL is the program's own). */
sqlite3_stmt *cofre_db_sqlite_prepare(sqlite3 *db, const char *sql);

#endif
