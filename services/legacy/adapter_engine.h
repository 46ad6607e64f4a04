/*
 * adapter_engine.h: the delivery state machine of cofre-legacy, on its own thread. It takes
 * the deliveries the consumer stored, in order, and drives each to a final state over the
 * connection pool:
 *
 *   ready --(mark "sent" durable, then 0200)--> sent --0210 00--> applied
 *                                                  |--0210 transient--> wait --> ready
 *                                                  |--0210 other--> declined (dead letter)
 *                                                  '--no answer / connection lost--> reverse
 *   reverse --0400--> reversing --0410 00--> wait --> ready (a new transmission, same RRN)
 *                          '--no answer / transient--> wait --> reverse (again, until a 0410)
 *
 * A transfer gets at most retry_max transmissions; then (after its reversal) it fails to the
 * dead-letter queue. Waits grow exponentially with jitter. The circuit breaker gates every
 * 0200 and 0400; while it is open deliveries wait, and in half-open one request (or an echo
 * when nothing waits) probes the host. A delivery stored as "sent" when the engine starts
 * (a crash or a cut-off shutdown) begins with the reversal of that exact transmission.
 *
 * On a shared store (PostgreSQL, several replicas) the engine delivers only the partitions
 * whose lease it holds (adapter_lease.h): it runs the lease rounds, loads each leased
 * partition's open deliveries from its own cursor, sends a request only while the lease
 * outlives the answer, commits only under a lease the store confirms, and lets a partition's
 * deliveries go once it is no longer leased. A partition taken over from another replica
 * resumes like a restart: its "sent" deliveries are reversed first.
 */
#ifndef COFRE_LEGACY_ADAPTER_ENGINE_H
#define COFRE_LEGACY_ADAPTER_ENGINE_H

#include "legacy/adapter_lease.h"
#include "legacy/adapter_policy.h"
#include "legacy/adapter_pool.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define COFRE_ADAPTER_ACTIVE_MAX 65536

typedef struct cofre_adapter_engine cofre_adapter_engine_t;

typedef struct cofre_adapter_engine_config {
    cofre_adapter_pool_config_t pool;
    const char *db_url;   /* COFRE_DB: the delivery store */
    const char *terminal; /* field 41, 1-8 printable characters */
    const char *topic;    /* the source topic, named in dead letters */
    unsigned retry_max;   /* 0200 transmissions per transfer, >= 1 */
    cofre_adapter_backoff_t retry;
    unsigned breaker_failures;
    uint64_t breaker_open_ms;
    size_t active_max;            /* deliveries held in memory, 1..COFRE_ADAPTER_ACTIVE_MAX */
    uint64_t shutdown_timeout_ms; /* how long stop waits for requests in flight */
    /* Shared stores: the lease table (shared with the consumer) and this process's owner
     * name; NULL for an exclusive (SQLite) store. */
    cofre_adapter_leases_t *leases;
    const char *owner;
    /* Called (on the engine thread) after dead letters became durable. */
    void (*dead_lettered)(void *data);
    void *data;
} cofre_adapter_engine_config_t;

/* Opens its store connection and starts the thread. NULL (logged) on failure. */
cofre_adapter_engine_t *cofre_adapter_engine_start(const cofre_adapter_engine_config_t *cfg);

/* New deliveries are stored: load them (any thread). */
void cofre_adapter_engine_notify(cofre_adapter_engine_t *e);

/*
 * Stops sending new 0200s, waits up to shutdown_timeout_ms for the answers to requests in
 * flight, commits the outcomes, closes the connections, joins and frees. Whatever is still
 * open stays in the store and resumes at the next start.
 */
void cofre_adapter_engine_stop(cofre_adapter_engine_t *e);

/*
 * True when the store works, the breaker is closed and a connection is signed on; else false
 * with *reason. Any thread; does not block.
 */
bool cofre_adapter_engine_ready(cofre_adapter_engine_t *e, const char **reason);

#endif
