/*
 * adapter_lease.h: which partitions of cofre.ledger.events this cofre-legacy process may
 * deliver, when the delivery store is shared by several replicas (PostgreSQL). Kafka's group
 * assignment says who should own a partition; a lease in the store (adapter_store.h) says who
 * does, and only the lease holder stores, sends and updates the partition's deliveries. Two
 * threads meet here:
 *
 *   - the consumer reports Kafka's assignment (cofre_adapter_leases_assign) and fetches a
 *     partition only once the engine holds its lease (cofre_adapter_leases_held);
 *   - the engine runs lease rounds on its own store connection: it claims every assigned
 *     partition (taken when free, released or expired; renewed every lease_ms / 4), releases a
 *     partition Kafka moved away once nothing of it is in flight, and notices leases lost.
 *
 * Locally a lease counts from the start of the round that took or renewed it; the database
 * set lease_until to at least that plus lease_ms on its own clock, so the local view never
 * outlives the real one. A request for a delivery goes to the host only while the lease
 * outlives the answer timeout plus a guard (cofre_adapter_leases_usable), so by the time a
 * lease can pass to another replica nothing of its partition is in flight here: two replicas
 * never have the same delivery in flight, and the next owner reverses what this one left
 * "sent". A partition that stops being leased is drained: its deliveries leave memory as soon
 * as none has a request out, and are loaded again from the store if it comes back.
 */
#ifndef COFRE_LEGACY_ADAPTER_LEASE_H
#define COFRE_LEGACY_ADAPTER_LEASE_H

#include "legacy/adapter_store.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define COFRE_ADAPTER_LEASE_GUARD_MS 1000 /* beyond the answer timeout */

typedef struct cofre_adapter_leases cofre_adapter_leases_t;

/*
 * Allocates the table for a process whose requests time out after timeout_ms; leases last
 * lease_ms (at least 2 timeout_ms + 2 guards, checked by the configuration).
 */
cofre_adapter_leases_t *cofre_adapter_leases_new(uint64_t lease_ms, uint64_t timeout_ms);
void cofre_adapter_leases_free(cofre_adapter_leases_t *l);

/* ---- the consumer's side (any thread; never blocks) --------------------------------------- */

/* Kafka assigned (true) or revoked (false) partition p; the engine claims or releases it. */
void cofre_adapter_leases_assign(cofre_adapter_leases_t *l, int32_t p, bool assigned);

/* True when the engine holds p's lease. */
bool cofre_adapter_leases_held(const cofre_adapter_leases_t *l, int32_t p);

/* Asks for a lease round soon (the store refused a partition the table said was held). */
void cofre_adapter_leases_recheck(cofre_adapter_leases_t *l);

/* ---- the engine's side (the engine thread only) ------------------------------------------- */

/* When the next lease round is due (monotonic ns); 0 when one is due at once. */
uint64_t cofre_adapter_leases_due_ns(const cofre_adapter_leases_t *l);

/*
 * One lease round on store (its owner set), started at monotonic time now (a lease taken or
 * renewed counts from there: pass a time read before the call): claims the assigned
 * partitions and those with a request out (busy[p]), releases the held ones Kafka took away
 * and not busy. Logs and counts every change. Returns 0 or the store's error (nothing changes;
 * the next round comes soon).
 */
int cofre_adapter_leases_round(cofre_adapter_leases_t *l, cofre_adapter_store_t *store,
                               uint64_t now, const bool busy[COFRE_ADAPTER_PARTITIONS_MAX]);

/* Releases every held partition not busy (at shutdown). Returns 0 or the store's error. */
int cofre_adapter_leases_release_all(cofre_adapter_leases_t *l, cofre_adapter_store_t *store,
                                     const bool busy[COFRE_ADAPTER_PARTITIONS_MAX]);

/* Leases whose local time ran out (no renewal got through) are dropped: their partitions
 * drain. Call once per turn. */
void cofre_adapter_leases_expire(cofre_adapter_leases_t *l, uint64_t now);

/* The store said p is not leased to us (an apply refused): p drains. */
void cofre_adapter_leases_lose(cofre_adapter_leases_t *l, int32_t p);

/* True when a request for a delivery of p may go out at now. */
bool cofre_adapter_leases_usable(const cofre_adapter_leases_t *l, int32_t p, uint64_t now);

/* True when p's deliveries must leave memory (and none of their outcomes be stored). */
bool cofre_adapter_leases_draining(const cofre_adapter_leases_t *l, int32_t p);

/* Fills parts (draining partitions, at most COFRE_ADAPTER_PARTITIONS_MAX); returns the count. */
size_t cofre_adapter_leases_drains(const cofre_adapter_leases_t *l, int32_t *parts);

/* Nothing of p is in memory any more: it may be loaded again once leased. */
void cofre_adapter_leases_drained(cofre_adapter_leases_t *l, int32_t p);

/*
 * The partitions whose open deliveries may be loaded now (leased, not draining) and the seq
 * after which each goes on; returns the count (at most COFRE_ADAPTER_PARTITIONS_MAX).
 */
size_t cofre_adapter_leases_loadable(const cofre_adapter_leases_t *l, uint64_t now, int32_t *parts,
                                     int64_t *after);

/* A delivery of p with this seq was loaded. */
void cofre_adapter_leases_loaded(cofre_adapter_leases_t *l, int32_t p, int64_t seq);

/* True (once) when partitions were gained since the last call: load from them at once. */
bool cofre_adapter_leases_gained(cofre_adapter_leases_t *l);

#endif
