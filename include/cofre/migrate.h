/*
 * migrate.h: versioned schema migrations, the same way for every service and both databases.
 * A service's migrations are the SQL files of migrations/<service>/<backend>/NNNN_name.sql,
 * compiled into its binary (cmake/embed_migrations.cmake); a run applies, in order and in one
 * transaction, those newer than the database's version, and refuses a database whose schema
 * is newer than the binary knows.
 */
#ifndef COFRE_MIGRATE_H
#define COFRE_MIGRATE_H

#include <sqlite3.h>
#include <stddef.h>

typedef struct cofre_migration {
    int version;
    const char *name;
    const char *sql;
} cofre_migration_t;

typedef struct cofre_migrations {
    const char *program;           /* in logs and as the connection's name: "cofre-core" */
    const cofre_migration_t *list; /* in version order */
    size_t count;
    const char *pg_table;    /* PostgreSQL: the table of applied versions */
    const char *pg_lock_key; /* PostgreSQL: the advisory lock's key, a decimal int64 */
} cofre_migrations_t;

/*
 * SQLite: applies what is newer than PRAGMA user_version on db (opened for writing), in one
 * BEGIN IMMEDIATE transaction, so processes sharing the file migrate once. Returns 0,
 * COFRE_ERANGE when the schema is newer than m (logged), or COFRE_EIO (logged).
 */
int cofre_migrate_sqlite(sqlite3 *db, const cofre_migrations_t *m);

/*
 * PostgreSQL: connects to url and applies what is newer than m->pg_table records, in one
 * transaction under a transaction-level advisory lock (safe from several replicas at once,
 * and through PgBouncer's transaction mode): a second migrator waits, then finds nothing to
 * do. Returns 0, COFRE_ERANGE (newer schema), COFRE_EUNAVAIL (no database) or COFRE_EIO (a
 * statement failed: typically not the owner role); each logged.
 */
int cofre_migrate_pg(const char *url, const cofre_migrations_t *m);

#endif
