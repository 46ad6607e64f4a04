/*
 * adapter_store.c: picks the implementation for a COFRE_DB url (sqlite:PATH in
 * adapter_store_sqlite.c, postgres:// and postgresql:// in adapter_store_pg.c) and forwards the
 * calls, checking the limits every implementation shares (see adapter_store.h).
 */
#include "legacy/adapter_store.h"

#include "cofre/common.h"
#include "cofre/db.h"
#include "cofre/log.h"
#include "cofre/pq.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cofre_adapter_store_open(const char *url, bool readonly, cofre_adapter_store_t **out)
{
    cofre_db_kind_t kind;
    const char *target;
    if (cofre_db_parse_url(url, &kind, &target) != 0)
        return COFRE_EINVAL;
    if (kind == COFRE_DB_SQLITE)
        return cofre_adapter_store_sqlite_open(target, readonly, out);
    if (cofre_pq_load() != 0)
        return COFRE_EUNAVAIL;
    return cofre_adapter_store_pg_open(target, readonly, out);
}

int cofre_adapter_store_migrate(const char *url)
{
    cofre_db_kind_t kind;
    const char *target;
    if (cofre_db_parse_url(url, &kind, &target) != 0)
        return COFRE_EINVAL;
    if (kind == COFRE_DB_POSTGRES) {
        if (cofre_pq_load() != 0)
            return COFRE_EUNAVAIL;
        return cofre_adapter_store_pg_migrate(target);
    }
    cofre_adapter_store_t *s = NULL;
    int rc = cofre_adapter_store_sqlite_open(target, false, &s);
    cofre_adapter_store_close(s);
    return rc;
}

bool cofre_adapter_store_shared(const cofre_adapter_store_t *s)
{
    return s->shared;
}

void cofre_adapter_store_set_owner(cofre_adapter_store_t *s, const char *owner)
{
    COFRE_ASSERT(owner != NULL && owner[0] != '\0' && strlen(owner) <= COFRE_ADAPTER_OWNER_MAX);
    snprintf(s->owner, sizeof(s->owner), "%s", owner);
}

int cofre_adapter_store_enqueue_owned(cofre_adapter_store_t *s, const cofre_adapter_transfer_t *ts,
                                      size_t n, const cofre_adapter_dead_t *dead, size_t ndead,
                                      size_t *inserted, int32_t *refused, size_t *nrefused)
{
    *inserted = 0;
    *nrefused = 0;
    if (n > COFRE_ADAPTER_STORE_BATCH_MAX || ndead > COFRE_ADAPTER_STORE_BATCH_MAX)
        return COFRE_EINVAL;
    COFRE_ASSERT(!s->shared || s->owner[0] != '\0');
    return s->ops->enqueue(s, ts, n, dead, ndead, inserted, s->shared ? refused : NULL, nrefused);
}

int cofre_adapter_store_enqueue(cofre_adapter_store_t *s, const cofre_adapter_transfer_t *ts,
                                size_t n, const cofre_adapter_dead_t *dead, size_t ndead,
                                size_t *inserted)
{
    int32_t *refused = s->shared ? cofre_calloc(n + 1, sizeof(*refused)) : NULL;
    size_t nrefused = 0;
    int rc = cofre_adapter_store_enqueue_owned(s, ts, n, dead, ndead, inserted, refused, &nrefused);
    free(refused);
    return rc == 0 && nrefused > 0 ? COFRE_ECONFLICT : rc;
}

int cofre_adapter_store_load_open(cofre_adapter_store_t *s, int64_t after_seq, size_t max,
                                  cofre_adapter_delivery_t *out, size_t *n)
{
    *n = 0;
    return s->ops->load_open(s, after_seq, COFRE_MIN(max, COFRE_ADAPTER_STORE_BATCH_MAX), out, n);
}

int cofre_adapter_store_apply_owned(cofre_adapter_store_t *s, const cofre_adapter_update_t *u,
                                    size_t n, int32_t *lost, size_t *nlost)
{
    *nlost = 0;
    if (n > COFRE_ADAPTER_STORE_BATCH_MAX)
        return COFRE_EINVAL;
    COFRE_ASSERT(!s->shared || s->owner[0] != '\0');
    return n == 0 ? 0 : s->ops->apply(s, u, n, s->shared ? lost : NULL, nlost);
}

int cofre_adapter_store_apply(cofre_adapter_store_t *s, const cofre_adapter_update_t *u, size_t n)
{
    int32_t *lost = s->shared && n > 0 ? cofre_calloc(n, sizeof(*lost)) : NULL;
    size_t nlost = 0;
    int rc = cofre_adapter_store_apply_owned(s, u, n, lost, &nlost);
    free(lost);
    return rc;
}

int cofre_adapter_store_load_owned(cofre_adapter_store_t *s, const int32_t *parts,
                                   const int64_t *after, size_t nparts, size_t max,
                                   cofre_adapter_delivery_t *out, size_t *n)
{
    *n = 0;
    if (!s->shared || nparts > COFRE_ADAPTER_PARTITIONS_MAX)
        return COFRE_EINVAL;
    if (nparts == 0 || max == 0)
        return 0;
    COFRE_ASSERT(s->owner[0] != '\0');
    return s->ops->load_owned(s, parts, after, nparts,
                              COFRE_MIN(max, COFRE_ADAPTER_STORE_BATCH_MAX), out, n);
}

int cofre_adapter_store_lease(cofre_adapter_store_t *s, const int32_t *claim, size_t nclaim,
                              const int32_t *release, size_t nrelease, uint64_t lease_ms,
                              cofre_adapter_lease_result_t *out)
{
    if (!s->shared || nclaim > COFRE_ADAPTER_PARTITIONS_MAX ||
        nrelease > COFRE_ADAPTER_PARTITIONS_MAX)
        return COFRE_EINVAL;
    for (size_t i = 1; i < nclaim; i++)
        COFRE_ASSERT(claim[i - 1] < claim[i]);
    if (nclaim + nrelease == 0)
        return 0;
    COFRE_ASSERT(s->owner[0] != '\0' && lease_ms > 0);
    return s->ops->lease(s, claim, nclaim, release, nrelease, lease_ms, out);
}

int cofre_adapter_store_dlq_fetch(cofre_adapter_store_t *s, size_t max,
                                  cofre_adapter_dlq_row_t *out, size_t *n)
{
    *n = 0;
    return s->ops->dlq_fetch(s, COFRE_MIN(max, COFRE_ADAPTER_STORE_BATCH_MAX), out, n);
}

void cofre_adapter_dlq_row_release(cofre_adapter_dlq_row_t *r)
{
    free(r->message_key);
    free(r->payload);
    r->message_key = NULL;
    r->payload = NULL;
}

int cofre_adapter_store_dlq_mark(cofre_adapter_store_t *s, const int64_t *seqs, size_t n,
                                 uint64_t now_us)
{
    if (n > COFRE_ADAPTER_STORE_BATCH_MAX)
        return COFRE_EINVAL;
    return n == 0 ? 0 : s->ops->dlq_mark(s, seqs, n, now_us);
}

int cofre_adapter_store_stats(cofre_adapter_store_t *s, cofre_adapter_store_stats_t *out)
{
    return s->ops->stats(s, out);
}

int cofre_adapter_store_each(cofre_adapter_store_t *s,
                             int (*fn)(const cofre_adapter_delivery_t *d, void *data), void *data)
{
    return s->ops->each(s, fn, data);
}

int cofre_adapter_store_prune(cofre_adapter_store_t *s, int64_t after_seq, uint64_t before_us,
                              size_t max, int64_t *next_seq, size_t *deleted)
{
    *next_seq = after_seq;
    *deleted = 0;
    return s->ops->prune(s, after_seq, before_us, COFRE_MIN(max, COFRE_ADAPTER_STORE_BATCH_MAX),
                         next_seq, deleted);
}

void cofre_adapter_store_close(cofre_adapter_store_t *s)
{
    if (s != NULL)
        s->ops->close(s);
}

const char *cofre_delivery_state_name(cofre_delivery_state_t st)
{
    static const char *const names[COFRE_DELIVERY_STATES] = {"pending", "sent", "applied",
                                                             "declined", "failed"};
    return st < COFRE_DELIVERY_STATES ? names[st] : "unknown";
}
