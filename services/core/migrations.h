/*
 * migrations.h: the schema migrations compiled into cofre-core from the .sql files in
 * migrations/<backend>/ (see cmake/embed_migrations.cmake). Versions are the file names' numeric
 * prefixes, in order.
 */
#ifndef COFRE_CORE_MIGRATIONS_H
#define COFRE_CORE_MIGRATIONS_H

#include "cofre/migrate.h"

#include <stddef.h>

extern const cofre_migration_t cofre_migrations_sqlite[];
extern const size_t cofre_migrations_sqlite_count;
extern const cofre_migration_t cofre_migrations_postgres[];
extern const size_t cofre_migrations_postgres_count;

#endif
