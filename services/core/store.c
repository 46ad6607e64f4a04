/*
 * store.c: picks the store implementation for a COFRE_DB url: sqlite:PATH (store_sqlite.c) or
 * postgres:// and postgresql:// (store_pg.c).
 */
#include "core/store.h"

#include "cofre/common.h"
#include "cofre/db.h"
#include "cofre/log.h"
#include "cofre/pq.h"

#include <stdlib.h>

int cofre_store_open(const char *url, bool readonly, cofre_store_t **out)
{
    cofre_db_kind_t kind;
    const char *target;
    if (cofre_db_parse_url(url, &kind, &target) != 0)
        return COFRE_EINVAL;
    if (kind == COFRE_DB_SQLITE)
        return cofre_store_sqlite_open(target, readonly, out);
    if (cofre_pq_load() != 0)
        return COFRE_EUNAVAIL;
    return cofre_store_pg_open(target, readonly, out);
}

int cofre_store_migrate(const char *url)
{
    cofre_db_kind_t kind;
    const char *target;
    if (cofre_db_parse_url(url, &kind, &target) != 0)
        return COFRE_EINVAL;
    if (kind == COFRE_DB_SQLITE)
        return cofre_store_sqlite_migrate(target);
    if (cofre_pq_load() != 0)
        return COFRE_EUNAVAIL;
    return cofre_store_pg_migrate(target);
}

void cofre_store_close(cofre_store_t *s)
{
    if (s != NULL)
        s->ops->close(s);
}

void cofre_lookup_release(cofre_lookup_t *lk)
{
    for (size_t i = 0; i < lk->n_idem; i++) {
        free(lk->idem[i].body);
        lk->idem[i].body = NULL;
    }
    for (size_t i = 0; i < lk->n_accounts; i++)
        if (lk->account_found[i])
            cofre_account_release(&lk->accounts[i]);
}
