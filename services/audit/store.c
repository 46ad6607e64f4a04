/*
 * store.c: picks the audit store for a COFRE_DB url: sqlite:PATH (store_sqlite.c) or
 * postgres:// and postgresql:// (store_pg.c, with libpq loaded on first use).
 */
#include "audit/store.h"

#include "cofre/common.h"
#include "cofre/db.h"
#include "cofre/pq.h"

bool cofre_audit_store_supported(const char *url)
{
    cofre_db_kind_t kind;
    const char *target;
    return cofre_db_parse_url(url, &kind, &target) == 0;
}

int cofre_audit_store_open(const char *url, bool readonly, cofre_audit_store_t **out)
{
    cofre_db_kind_t kind;
    const char *target;
    *out = NULL;
    if (cofre_db_parse_url(url, &kind, &target) != 0)
        return COFRE_EINVAL;
    if (kind == COFRE_DB_SQLITE)
        return cofre_audit_store_sqlite_open(target, readonly, out);
    if (cofre_pq_load() != 0)
        return COFRE_EUNAVAIL;
    return cofre_audit_store_pg_open(target, readonly, out);
}

int cofre_audit_store_migrate(const char *url)
{
    cofre_db_kind_t kind;
    const char *target;
    if (cofre_db_parse_url(url, &kind, &target) != 0)
        return COFRE_EINVAL;
    if (kind == COFRE_DB_SQLITE)
        return cofre_audit_store_sqlite_migrate(target);
    if (cofre_pq_load() != 0)
        return COFRE_EUNAVAIL;
    return cofre_audit_store_pg_migrate(target);
}

void cofre_audit_store_close(cofre_audit_store_t *s)
{
    if (s != NULL)
        s->ops->close(s);
}
