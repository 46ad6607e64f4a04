/*
 * auth_outbox.c: the registry's outbox as the relay's source (see auth_outbox.h). Two registry
 * handles: one on the relay's thread (claim, fetch, stats), one on its marker thread (marks).
 */
#include "auth/auth_outbox.h"

#include "auth/registry.h"
#include "cofre/common.h"
#include "cofre/db.h"
#include "cofre/log.h"
#include "cofre/uuid.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#define NS_PER_S 1000000000ull
/* The claim is renewed this often: a third of the lease, so two renewals may fail in a row. */
#define RENEW_NS ((uint64_t)COFRE_REGISTRY_LEASE_S * NS_PER_S / 3)

struct cofre_auth_outbox {
    char *db_url;
    char holder[COFRE_REGISTRY_HOLDER_MAX + 1]; /* host/pid/uuid: who holds the claim */
    cofre_registry_t *reg;                      /* claim, fetch and stats (relay thread) */
    cofre_registry_t *mark_reg;                 /* marks (marker thread) */
    bool held;                                  /* this process relays the outbox */
    uint64_t renew_at_ns;                       /* when the claim is renewed (monotonic) */
};

/* Claims the outbox, or renews the claim; logs when this process starts or stops being its
 * relay while running. Returns 0, COFRE_EEXIST or the registry's error. */
static int claim(cofre_auth_outbox_t *o)
{
    int rc = o->reg->ops->relay_claim(o->reg, o->holder);
    if (rc != 0 && rc != COFRE_EEXIST)
        return rc; /* the database is away: the next call tries again */
    bool held = rc == 0;
    if (o->held && !held)
        COFRE_LOG(COFRE_LOG_WARN, NULL,
                  "outbox relay: another replica took the auth outbox over; standing by",
                  COFRE_LF_STR("holder", o->holder));
    o->held = held;
    o->renew_at_ns = cofre_now_mono_ns() + RENEW_NS;
    return rc;
}

static int source_open(void *data)
{
    cofre_auth_outbox_t *o = data;
    int rc = o->reg != NULL ? 0 : cofre_registry_open(o->db_url, &o->reg);
    if (rc == 0 && o->mark_reg == NULL)
        rc = cofre_registry_open(o->db_url, &o->mark_reg);
    if (rc != 0)
        return rc;
    o->held = false;
    return claim(o);
}

static int source_fetch(void *data, int64_t after_seq, size_t max, cofre_relay_row_t *out,
                        size_t *n)
{
    cofre_auth_outbox_t *o = data;
    *n = 0;
    if (cofre_now_mono_ns() >= o->renew_at_ns) {
        bool was_held = o->held;
        int rc = claim(o);
        if (rc != 0 && rc != COFRE_EEXIST)
            return rc;
        if (!was_held && o->held)
            COFRE_LOG(COFRE_LOG_INFO, NULL, "outbox relay: relaying the auth outbox again",
                      COFRE_LF_STR("holder", o->holder));
    }
    if (!o->held)
        return 0; /* another replica publishes these rows */
    return o->reg->ops->outbox_fetch(o->reg, after_seq, max, out, n);
}

static int source_mark(void *data, const int64_t *seqs, size_t n)
{
    cofre_auth_outbox_t *o = data;
    return o->mark_reg->ops->outbox_mark(o->mark_reg, seqs, n);
}

static int source_stats(void *data, int64_t *pending, double *oldest_age_s)
{
    cofre_auth_outbox_t *o = data;
    return o->reg->ops->outbox_stats(o->reg, pending, oldest_age_s);
}

static void source_close(void *data)
{
    cofre_auth_outbox_t *o = data;
    if (o->reg != NULL && o->held)
        o->reg->ops->relay_release(o->reg, o->holder);
    o->held = false;
    cofre_registry_close(o->reg);
    cofre_registry_close(o->mark_reg);
    o->reg = o->mark_reg = NULL;
}

cofre_auth_outbox_t *cofre_auth_outbox_new(const char *db_url, cofre_relay_source_t *src)
{
    cofre_auth_outbox_t *o = cofre_calloc(1, sizeof(*o));
    o->db_url = cofre_strdup(db_url);
    char host[65] = "";
    if (gethostname(host, sizeof(host) - 1) != 0 || host[0] == '\0')
        snprintf(host, sizeof(host), "unknown");
    char id[COFRE_UUID_LEN + 1];
    cofre_uuid_v7(id);
    snprintf(o->holder, sizeof(o->holder), "%s/%ld/%s", host, (long)getpid(), id);
    cofre_db_kind_t kind = COFRE_DB_POSTGRES;
    const char *target = NULL;
    cofre_db_parse_url(db_url, &kind, &target);
    *src = (cofre_relay_source_t){
        .name = "auth",
        /* SQLite: one writer at a time, so rows become visible in seq order. PostgreSQL:
         * concurrent writers (hashers, replicas) may commit a smaller seq later. */
        .ordered = kind == COFRE_DB_SQLITE,
        .open = source_open,
        .fetch = source_fetch,
        .mark = source_mark,
        .stats = source_stats,
        .close = source_close,
        .data = o,
    };
    return o;
}

void cofre_auth_outbox_free(cofre_auth_outbox_t *o)
{
    if (o == NULL)
        return;
    source_close(o);
    free(o->db_url);
    free(o);
}
