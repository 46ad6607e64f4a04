/*
 * db.c: COFRE_DB parsing and SQLite connection set-up.
 */
#include "cofre/db.h"

#include "cofre/common.h"
#include "cofre/log.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#define SQLITE_BUSY_TIMEOUT_MS 5000

int cofre_db_parse_url(const char *url, cofre_db_kind_t *kind, const char **target)
{
    if (strncmp(url, "sqlite:", 7) == 0 && url[7] != '\0') {
        *kind = COFRE_DB_SQLITE;
        *target = url + 7;
        return 0;
    }
    if (strncmp(url, "postgres://", 11) == 0 || strncmp(url, "postgresql://", 13) == 0) {
        *kind = COFRE_DB_POSTGRES;
        *target = url;
        return 0;
    }
    return COFRE_EINVAL;
}

int cofre_db_sqlite_exec(sqlite3 *db, const char *sql)
{
    char *err = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK) {
        COFRE_LOG(COFRE_LOG_ERROR, NULL, "sqlite statement failed", COFRE_LF_STR("error", err),
                  COFRE_LF_STR("sql", sql));
        sqlite3_free(err);
        return COFRE_EIO;
    }
    return 0;
}

sqlite3_stmt *cofre_db_sqlite_prepare(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *stmt = NULL;
    int rc = sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt, NULL);
    if (rc != SQLITE_OK) {
        COFRE_LOG(COFRE_LOG_ERROR, NULL, "sqlite prepare failed",
                  COFRE_LF_STR("error", sqlite3_errmsg(db)), COFRE_LF_STR("sql", sql));
        COFRE_ASSERT(rc == SQLITE_OK);
    }
    return stmt;
}

static pthread_once_t sqlite_once = PTHREAD_ONCE_INIT;

/*
 * Before SQLite's first use: no memory statistics (they take a global mutex on every
 * allocation, from every connection) and no connection mutexes (each connection is used by
 * one thread at a time).
 */
static void sqlite_configure(void)
{
    sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
    sqlite3_config(SQLITE_CONFIG_MULTITHREAD);
}

sqlite3 *cofre_db_sqlite_open(const char *path, bool readonly, int cache_kib)
{
    pthread_once(&sqlite_once, sqlite_configure);
    sqlite3 *db = NULL;
    int flags = SQLITE_OPEN_NOMUTEX |
                (readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    if (sqlite3_open_v2(path, &db, flags, NULL) != SQLITE_OK) {
        COFRE_LOG(COFRE_LOG_ERROR, NULL, "cannot open sqlite database", COFRE_LF_STR("path", path),
                  COFRE_LF_STR("error", db != NULL ? sqlite3_errmsg(db) : "out of memory"));
        sqlite3_close(db);
        return NULL;
    }
    sqlite3_busy_timeout(db, SQLITE_BUSY_TIMEOUT_MS);
    char pragmas[256];
    snprintf(pragmas, sizeof(pragmas),
             "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;"
             " PRAGMA cache_size=-%d; PRAGMA temp_store=MEMORY;",
             cache_kib);
    if (cofre_db_sqlite_exec(db, readonly ? pragmas + strlen("PRAGMA journal_mode=WAL; ")
                                          : pragmas) != 0) {
        sqlite3_close(db);
        return NULL;
    }
    return db;
}
