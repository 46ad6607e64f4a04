/*
 * adapter_store.c: picks the implementation for a COFRE_DB url and forwards the calls (see
 * adapter_store.h).
 */
#include "legacy/adapter_store.h"

#include "cofre/common.h"
#include "cofre/db.h"
#include "cofre/log.h"

#include <stdlib.h>

int cofre_adapter_store_open(const char *url, bool readonly, cofre_adapter_store_t **out)
{
    cofre_db_kind_t kind;
    const char *target;
    if (cofre_db_parse_url(url, &kind, &target) != 0)
        return COFRE_EINVAL;
    if (kind == COFRE_DB_SQLITE)
        return cofre_adapter_store_sqlite_open(target, readonly, out);
    cofre_log_msg(COFRE_LOG_ERROR, NULL,
                  "this build of cofre-legacy has no PostgreSQL store; use COFRE_DB=sqlite:PATH");
    return COFRE_EINVAL;
}

int cofre_adapter_store_enqueue(cofre_adapter_store_t *s, const cofre_adapter_transfer_t *ts,
                                size_t n, const cofre_adapter_dead_t *dead, size_t ndead,
                                size_t *inserted)
{
    *inserted = 0;
    if (n > COFRE_ADAPTER_STORE_BATCH_MAX || ndead > COFRE_ADAPTER_STORE_BATCH_MAX)
        return COFRE_EINVAL;
    return s->ops->enqueue(s, ts, n, dead, ndead, inserted);
}

int cofre_adapter_store_load_open(cofre_adapter_store_t *s, int64_t after_seq, size_t max,
                                  cofre_adapter_delivery_t *out, size_t *n)
{
    *n = 0;
    return s->ops->load_open(s, after_seq, COFRE_MIN(max, COFRE_ADAPTER_STORE_BATCH_MAX), out, n);
}

int cofre_adapter_store_apply(cofre_adapter_store_t *s, const cofre_adapter_update_t *u, size_t n)
{
    if (n > COFRE_ADAPTER_STORE_BATCH_MAX)
        return COFRE_EINVAL;
    return n == 0 ? 0 : s->ops->apply(s, u, n);
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
