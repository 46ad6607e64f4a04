/*
 * adapter_lease.c: partition leases between Kafka's assignment and the shared store (see
 * adapter_lease.h). The consumer's side is two arrays of atomics; the rest belongs to the
 * engine thread.
 */
#include "legacy/adapter_lease.h"

#include "cofre/common.h"
#include "cofre/log.h"
#include "cofre/metrics.h"
#include "legacy/adapter_metrics.h"

#include <stdatomic.h>
#include <stdlib.h>

#define NS_PER_MS 1000000ull
#define RETRY_NS  (500 * NS_PER_MS) /* a failed round, or a partition still to settle */
#define PARTS     COFRE_ADAPTER_PARTITIONS_MAX

typedef struct part {
    uint64_t expiry_ns; /* local end of the lease; 0: not held */
    int64_t cursor;     /* last seq loaded; -1: nothing loaded (nothing in memory) */
    bool draining;      /* deliveries in memory must go */
    bool waiting_logged;
} part_t;

struct cofre_adapter_leases {
    atomic_bool assigned[PARTS];
    atomic_bool held[PARTS];
    atomic_uint changes; /* bumped by the consumer: assignment changed, or a recheck */
    /* engine thread */
    unsigned changes_seen;
    uint64_t lease_ns, guard_ns, renew_ns;
    uint64_t next_round_ns;
    bool gained;
    part_t parts[PARTS];
    cofre_adapter_lease_result_t results[PARTS];
    int32_t claim[PARTS], release[PARTS];
};

static bool valid(int32_t p)
{
    return p >= 0 && p < PARTS;
}

cofre_adapter_leases_t *cofre_adapter_leases_new(uint64_t lease_ms, uint64_t timeout_ms)
{
    COFRE_ASSERT(lease_ms >= 2 * timeout_ms + 2 * COFRE_ADAPTER_LEASE_GUARD_MS);
    cofre_adapter_leases_t *l = cofre_calloc(1, sizeof(*l));
    for (int i = 0; i < PARTS; i++) {
        atomic_init(&l->assigned[i], false);
        atomic_init(&l->held[i], false);
        l->parts[i] = (part_t){.cursor = -1};
    }
    atomic_init(&l->changes, 0);
    l->lease_ns = lease_ms * NS_PER_MS;
    l->guard_ns = (timeout_ms + COFRE_ADAPTER_LEASE_GUARD_MS) * NS_PER_MS;
    l->renew_ns = l->lease_ns / 4;
    return l;
}

void cofre_adapter_leases_free(cofre_adapter_leases_t *l)
{
    free(l);
}

/* ---- the consumer's side ------------------------------------------------------------------ */

void cofre_adapter_leases_assign(cofre_adapter_leases_t *l, int32_t p, bool assigned)
{
    if (!valid(p))
        return;
    atomic_store(&l->assigned[p], assigned);
    atomic_fetch_add(&l->changes, 1);
}

bool cofre_adapter_leases_held(const cofre_adapter_leases_t *l, int32_t p)
{
    return valid(p) && atomic_load(&l->held[p]);
}

void cofre_adapter_leases_recheck(cofre_adapter_leases_t *l)
{
    atomic_fetch_add(&l->changes, 1);
}

/* ---- the engine's side -------------------------------------------------------------------- */

uint64_t cofre_adapter_leases_due_ns(const cofre_adapter_leases_t *l)
{
    return atomic_load(&l->changes) != l->changes_seen ? 0 : l->next_round_ns;
}

static size_t held_count(const cofre_adapter_leases_t *l)
{
    size_t n = 0;
    for (int i = 0; i < PARTS; i++)
        n += l->parts[i].expiry_ns != 0;
    return n;
}

/* p is no longer ours: its deliveries drain (when any was loaded). */
static void drop(cofre_adapter_leases_t *l, int32_t p)
{
    part_t *x = &l->parts[p];
    x->expiry_ns = 0;
    x->draining = x->cursor >= 0;
    atomic_store(&l->held[p], false);
    cofre_gauge_set(cofre_adapter_metrics.partitions_leased, (double)held_count(l));
}

static void note_claim(cofre_adapter_leases_t *l, const cofre_adapter_lease_result_t *r,
                       uint64_t start)
{
    part_t *x = &l->parts[r->partition];
    if (r->held) {
        if (x->expiry_ns == 0) {
            l->gained = true;
            cofre_counter_inc(cofre_adapter_metrics.leases_acquired);
            COFRE_LOG(COFRE_LOG_INFO, NULL, "partition lease acquired",
                      COFRE_LF_INT("partition", r->partition),
                      COFRE_LF_STR("previous_owner", r->owner[0] != '\0' ? r->owner : NULL));
        }
        x->expiry_ns = start + l->lease_ns;
        x->waiting_logged = false;
        atomic_store(&l->held[r->partition], !x->draining);
        return;
    }
    if (x->expiry_ns != 0) {
        cofre_counter_inc(cofre_adapter_metrics.leases_lost);
        COFRE_LOG(COFRE_LOG_WARN, NULL, "partition lease lost",
                  COFRE_LF_INT("partition", r->partition), COFRE_LF_STR("owner", r->owner));
        drop(l, r->partition);
    } else if (!x->waiting_logged) {
        x->waiting_logged = true;
        COFRE_LOG(COFRE_LOG_INFO, NULL,
                  "partition leased to another replica; waiting for its release or expiry",
                  COFRE_LF_INT("partition", r->partition), COFRE_LF_STR("owner", r->owner));
    }
}

static void note_release(cofre_adapter_leases_t *l, int32_t p)
{
    cofre_counter_inc(cofre_adapter_metrics.leases_released);
    COFRE_LOG(COFRE_LOG_INFO, NULL, "partition lease released", COFRE_LF_INT("partition", p));
    drop(l, p);
}

/* Runs one round with the lists filled, started at start; on success applies its outcome. */
static int run_round(cofre_adapter_leases_t *l, cofre_adapter_store_t *store, uint64_t start,
                     size_t nclaim, size_t nrelease)
{
    int rc = cofre_adapter_store_lease(store, l->claim, nclaim, l->release, nrelease,
                                       l->lease_ns / NS_PER_MS, l->results);
    if (rc != 0)
        return rc;
    for (size_t i = 0; i < nrelease; i++)
        note_release(l, l->release[i]);
    for (size_t i = 0; i < nclaim; i++)
        note_claim(l, &l->results[i], start);
    cofre_gauge_set(cofre_adapter_metrics.partitions_leased, (double)held_count(l));
    return 0;
}

/* True when an assigned partition is not held, or a held one not assigned: the next round
 * comes soon. */
static bool unsettled(const cofre_adapter_leases_t *l)
{
    for (int32_t p = 0; p < PARTS; p++)
        if (atomic_load(&l->assigned[p]) != (l->parts[p].expiry_ns != 0))
            return true;
    return false;
}

int cofre_adapter_leases_round(cofre_adapter_leases_t *l, cofre_adapter_store_t *store,
                               uint64_t now, const bool busy[COFRE_ADAPTER_PARTITIONS_MAX])
{
    unsigned changes = atomic_load(&l->changes);
    size_t nclaim = 0, nrelease = 0;
    for (int32_t p = 0; p < PARTS; p++) {
        bool held = l->parts[p].expiry_ns != 0;
        if (atomic_load(&l->assigned[p]) || (held && busy[p]))
            l->claim[nclaim++] = p;
        else if (held)
            l->release[nrelease++] = p;
    }
    int rc = nclaim + nrelease > 0 ? run_round(l, store, now, nclaim, nrelease) : 0;
    if (rc == 0)
        l->changes_seen = changes;
    l->next_round_ns = now + (rc != 0 || unsettled(l) ? RETRY_NS : l->renew_ns);
    return rc;
}

int cofre_adapter_leases_release_all(cofre_adapter_leases_t *l, cofre_adapter_store_t *store,
                                     const bool busy[COFRE_ADAPTER_PARTITIONS_MAX])
{
    size_t nrelease = 0;
    for (int32_t p = 0; p < PARTS; p++)
        if (l->parts[p].expiry_ns != 0 && !busy[p])
            l->release[nrelease++] = p;
    return nrelease > 0 ? run_round(l, store, cofre_now_mono_ns(), 0, nrelease) : 0;
}

void cofre_adapter_leases_expire(cofre_adapter_leases_t *l, uint64_t now)
{
    for (int32_t p = 0; p < PARTS; p++) {
        part_t *x = &l->parts[p];
        if (x->expiry_ns == 0 || now < x->expiry_ns)
            continue;
        cofre_counter_inc(cofre_adapter_metrics.leases_lost);
        COFRE_LOG(COFRE_LOG_WARN, NULL, "partition lease ran out without renewal",
                  COFRE_LF_INT("partition", p));
        drop(l, p);
    }
}

void cofre_adapter_leases_lose(cofre_adapter_leases_t *l, int32_t p)
{
    if (!valid(p) || (l->parts[p].expiry_ns == 0 && l->parts[p].cursor < 0))
        return;
    if (l->parts[p].expiry_ns != 0) {
        cofre_counter_inc(cofre_adapter_metrics.leases_lost);
        COFRE_LOG(COFRE_LOG_WARN, NULL, "partition lease lost (the store refused a change)",
                  COFRE_LF_INT("partition", p));
    }
    drop(l, p);
    l->parts[p].draining = true;
    l->next_round_ns = 0;
}

bool cofre_adapter_leases_usable(const cofre_adapter_leases_t *l, int32_t p, uint64_t now)
{
    if (!valid(p))
        return false;
    const part_t *x = &l->parts[p];
    return !x->draining && x->expiry_ns > now + l->guard_ns && atomic_load(&l->assigned[p]);
}

bool cofre_adapter_leases_draining(const cofre_adapter_leases_t *l, int32_t p)
{
    return !valid(p) || l->parts[p].draining;
}

size_t cofre_adapter_leases_drains(const cofre_adapter_leases_t *l, int32_t *parts)
{
    size_t n = 0;
    for (int32_t p = 0; p < PARTS; p++)
        if (l->parts[p].draining)
            parts[n++] = p;
    return n;
}

void cofre_adapter_leases_drained(cofre_adapter_leases_t *l, int32_t p)
{
    part_t *x = &l->parts[p];
    x->draining = false;
    x->cursor = -1;
    if (x->expiry_ns != 0) {
        atomic_store(&l->held[p], true);
        l->gained = true;
    }
}

size_t cofre_adapter_leases_loadable(const cofre_adapter_leases_t *l, uint64_t now, int32_t *parts,
                                     int64_t *after)
{
    size_t n = 0;
    for (int32_t p = 0; p < PARTS; p++) {
        const part_t *x = &l->parts[p];
        if (x->draining || x->expiry_ns <= now)
            continue;
        parts[n] = p;
        after[n++] = COFRE_MAX(x->cursor, 0);
    }
    return n;
}

void cofre_adapter_leases_loaded(cofre_adapter_leases_t *l, int32_t p, int64_t seq)
{
    if (valid(p))
        l->parts[p].cursor = COFRE_MAX(l->parts[p].cursor, seq);
}

bool cofre_adapter_leases_gained(cofre_adapter_leases_t *l)
{
    bool g = l->gained;
    l->gained = false;
    return g;
}
