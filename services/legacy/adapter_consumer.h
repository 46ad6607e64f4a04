/*
 * adapter_consumer.h: the Kafka side of cofre-legacy, on its own thread. It reads
 * cofre.ledger.events in the consumer group (cofre-legacy: the KEDA objects scale on its lag),
 * stores every posted transfer as a pending delivery and every malformed event as a dead
 * letter in one transaction per batch, and only then commits the batch's offsets: a crash
 * between the two re-reads messages whose deliveries are already stored, and the store skips
 * them by transfer id. It also publishes stored dead letters to cofre.legacy.dlq (idempotent
 * producer, marked published on the broker's acknowledgement), keeps the lag and backlog
 * gauges, and once a minute deletes final deliveries and published dead letters older than the
 * retention.
 *
 * On a shared store (PostgreSQL) it also tells the lease table (adapter_lease.h) what Kafka
 * assigned, and fetches a partition only once this process holds its lease: a newly assigned
 * partition stays paused until then, and a partition the store refuses (its lease moved) is
 * rewound to the first message not stored and paused again, so nothing is committed past a
 * message that was not stored.
 */
#ifndef COFRE_LEGACY_ADAPTER_CONSUMER_H
#define COFRE_LEGACY_ADAPTER_CONSUMER_H

#include "cofre/kafka.h"
#include "legacy/adapter_lease.h"

#include <stdbool.h>
#include <stddef.h>

#define COFRE_ADAPTER_BATCH_MAX 4096

typedef struct cofre_adapter_consumer cofre_adapter_consumer_t;

typedef struct cofre_adapter_consumer_config {
    cofre_kafka_config_t kafka; /* COFRE_KAFKA_BROKERS and the security settings */
    const char *group;          /* consumer group id */
    const char *topic;          /* cofre.ledger.events */
    const char *dlq_topic;      /* cofre.legacy.dlq */
    const char *db_url;         /* COFRE_DB: the delivery store */
    size_t batch_max;           /* messages per store transaction, 1..COFRE_ADAPTER_BATCH_MAX */
    unsigned session_timeout_ms;
    unsigned retention_h; /* final deliveries older than this are deleted; 0: kept forever */
    /* Shared stores: the lease table and this process's owner name (NULL: exclusive store). */
    cofre_adapter_leases_t *leases;
    const char *owner;
    /* Called (on the consumer thread) after new deliveries became durable, and when the
     * assignment changed (the engine's lease round is due). */
    void (*stored)(void *data);
    void *stored_data;
} cofre_adapter_consumer_config_t;

/*
 * Opens its store connection and Kafka handles and starts the thread. Returns NULL (logged)
 * when the store cannot be opened or librdkafka refuses the configuration.
 */
cofre_adapter_consumer_t *cofre_adapter_consumer_start(const cofre_adapter_consumer_config_t *cfg);

/*
 * Stops reading, commits what is durable, leaves the group, waits up to 5 s for dead letters
 * in flight to the broker, and frees everything.
 */
void cofre_adapter_consumer_stop(cofre_adapter_consumer_t *c);

/* Asks the thread to publish dead letters now (the engine wrote some). Any thread. */
void cofre_adapter_consumer_kick(cofre_adapter_consumer_t *c);

/*
 * True when the store and the brokers answered lately; else false with *reason. Any thread;
 * does not block.
 */
bool cofre_adapter_consumer_ready(cofre_adapter_consumer_t *c, const char **reason);

#endif
