/*
 * migrate.c: the migration runner of every service, on SQLite and on PostgreSQL.
 */
#include "cofre/migrate.h"

#include "cofre/common.h"
#include "cofre/db.h"
#include "cofre/log.h"
#include "cofre/pg.h"

#include <stdio.h>

#define PG_CONNECT_TIMEOUT_MS 2000
/* A migration may wait for another replica's, and be slow on big tables. */
#define PG_ROUND_TIMEOUT_MS 600000
#define PG_LOCK_TIMEOUT     "'300s'"
#define SQL_MAX             256

static int latest_version(const cofre_migrations_t *m)
{
    COFRE_ASSERT(m->count > 0);
    return m->list[m->count - 1].version;
}

static void log_applied(const cofre_migrations_t *m, const cofre_migration_t *one)
{
    COFRE_LOG(COFRE_LOG_INFO, NULL, "migration applied", COFRE_LF_STR("program", m->program),
              COFRE_LF_STR("name", one->name), COFRE_LF_INT("version", one->version));
}

/* Logs the outcome of a run that found version current; returns rc. */
static int log_outcome(const cofre_migrations_t *m, int current, int rc)
{
    if (rc == COFRE_ERANGE)
        COFRE_LOG(COFRE_LOG_ERROR, NULL, "database schema is newer than this binary",
                  COFRE_LF_STR("program", m->program), COFRE_LF_INT("schema", current),
                  COFRE_LF_INT("known", latest_version(m)));
    else if (rc == 0 && current == latest_version(m))
        COFRE_LOG(COFRE_LOG_INFO, NULL, "schema up to date", COFRE_LF_STR("program", m->program),
                  COFRE_LF_INT("version", current));
    return rc;
}

/* ---- SQLite ----------------------------------------------------------------------------- */

static int sqlite_version(sqlite3 *db)
{
    sqlite3_stmt *st = cofre_db_sqlite_prepare(db, "PRAGMA user_version");
    int v = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : -1;
    sqlite3_finalize(st);
    return v;
}

static int sqlite_apply(sqlite3 *db, const cofre_migrations_t *m, int current)
{
    for (size_t i = 0; i < m->count; i++) {
        const cofre_migration_t *one = &m->list[i];
        if (one->version <= current)
            continue;
        char sql[SQL_MAX];
        snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", one->version);
        if (cofre_db_sqlite_exec(db, one->sql) != 0 || cofre_db_sqlite_exec(db, sql) != 0)
            return COFRE_EIO;
        log_applied(m, one);
    }
    return 0;
}

int cofre_migrate_sqlite(sqlite3 *db, const cofre_migrations_t *m)
{
    int rc = cofre_db_sqlite_exec(db, "BEGIN IMMEDIATE");
    int current = rc == 0 ? sqlite_version(db) : -1;
    if (rc == 0 && current < 0)
        rc = COFRE_EIO;
    else if (rc == 0 && current > latest_version(m))
        rc = COFRE_ERANGE;
    else if (rc == 0)
        rc = sqlite_apply(db, m, current);
    if (rc == 0)
        rc = cofre_db_sqlite_exec(db, "COMMIT");
    else
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    return log_outcome(m, current, rc);
}

/* ---- PostgreSQL ------------------------------------------------------------------------- */

/* Runs one statement (or a script without parameters); *r, when asked, is its result. */
static int pg_step(cofre_pg_t *pg, const char *sql, const cofre_pg_param_t *p, int n,
                   const PGresult **r)
{
    cofre_pg_add(pg, sql, p, n);
    int rc = cofre_pg_exchange(pg, false);
    if (r != NULL)
        *r = rc == 0 ? cofre_pg_result(pg, 0) : NULL;
    return rc;
}

/* The schema version, creating the version table on a fresh database. */
static int pg_version(cofre_pg_t *pg, const cofre_migrations_t *m, int *version)
{
    char sql[SQL_MAX];
    const PGresult *r;
    snprintf(sql, sizeof(sql), "SELECT to_regclass('%s') IS NOT NULL", m->pg_table);
    int rc = pg_step(pg, sql, NULL, 0, &r);
    if (rc == 0 && PQgetvalue(r, 0, 0)[0] != 't') {
        snprintf(sql, sizeof(sql),
                 "CREATE TABLE %s (version integer PRIMARY KEY, name text NOT NULL, "
                 "applied_at timestamptz NOT NULL DEFAULT now())",
                 m->pg_table);
        rc = pg_step(pg, sql, NULL, 0, NULL);
    }
    snprintf(sql, sizeof(sql), "SELECT COALESCE(max(version), 0) FROM %s", m->pg_table);
    if (rc == 0)
        rc = pg_step(pg, sql, NULL, 0, &r);
    if (rc == 0)
        *version = (int)cofre_pg_int64(r, 0, 0);
    return rc;
}

static int pg_apply(cofre_pg_t *pg, const cofre_migrations_t *m, int current)
{
    char record[SQL_MAX];
    snprintf(record, sizeof(record), "INSERT INTO %s (version, name) VALUES ($1::int4, $2)",
             m->pg_table);
    for (size_t i = 0; i < m->count; i++) {
        const cofre_migration_t *one = &m->list[i];
        if (one->version <= current)
            continue;
        char version[16];
        snprintf(version, sizeof(version), "%d", one->version);
        const cofre_pg_param_t p[] = {COFRE_PG_TEXT(version), COFRE_PG_TEXT(one->name)};
        int rc = pg_step(pg, one->sql, NULL, 0, NULL);
        if (rc == 0)
            rc = pg_step(pg, record, p, 2, NULL);
        if (rc != 0) {
            COFRE_LOG(COFRE_LOG_ERROR, NULL, "migration failed (run migrate as the owner role)",
                      COFRE_LF_STR("program", m->program), COFRE_LF_STR("name", one->name),
                      COFRE_LF_STR("sqlstate", cofre_pg_sqlstate(pg)));
            return rc == COFRE_EUNAVAIL ? rc : COFRE_EIO;
        }
        log_applied(m, one);
    }
    return 0;
}

static int pg_migrate_locked(cofre_pg_t *pg, const cofre_migrations_t *m, int *current)
{
    char lock[SQL_MAX];
    snprintf(lock, sizeof(lock), "SELECT pg_advisory_xact_lock(%s)", m->pg_lock_key);
    int rc = pg_step(pg, "BEGIN", NULL, 0, NULL);
    if (rc == 0)
        rc = pg_step(pg, "SELECT set_config('lock_timeout', " PG_LOCK_TIMEOUT ", true)", NULL, 0,
                     NULL);
    if (rc == 0)
        rc = pg_step(pg, lock, NULL, 0, NULL);
    if (rc == 0 && (rc = pg_version(pg, m, current)) != 0 && rc != COFRE_EUNAVAIL) {
        COFRE_LOG(COFRE_LOG_ERROR, NULL,
                  "schema not created or not readable with this role (run migrate as the "
                  "owner role)",
                  COFRE_LF_STR("program", m->program), COFRE_LF_STR("table", m->pg_table),
                  COFRE_LF_STR("sqlstate", cofre_pg_sqlstate(pg)));
        rc = COFRE_EIO;
    }
    if (rc == 0 && *current > latest_version(m))
        rc = COFRE_ERANGE;
    else if (rc == 0)
        rc = pg_apply(pg, m, *current);
    if (rc == 0)
        rc = pg_step(pg, "COMMIT", NULL, 0, NULL);
    return rc;
}

int cofre_migrate_pg(const char *url, const cofre_migrations_t *m)
{
    char name[64];
    snprintf(name, sizeof(name), "%s migrate", m->program);
    cofre_pg_t *pg = cofre_pg_new(&(cofre_pg_config_t){
        .url = url,
        .application_name = name,
        .connect_timeout_ms = PG_CONNECT_TIMEOUT_MS,
        .round_timeout_ms = PG_ROUND_TIMEOUT_MS,
        .pipeline = false,
    });
    int current = 0;
    int rc = cofre_pg_connect(pg);
    if (rc == 0)
        rc = pg_migrate_locked(pg, m, &current);
    cofre_pg_free(pg); /* an open transaction ends with the connection: rolled back */
    return log_outcome(m, current, rc);
}
