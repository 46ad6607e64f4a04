/*
 * consumer.h: cofre-audit's ingest: one thread that consumes the event topics as one consumer
 * group, turns each message into an audit record, appends a batch to the store in one
 * transaction (dedup by event id), and only then stores the batch's offsets for the next
 * commit: a crash redelivers, never loses. Every N records or T seconds it signs a checkpoint
 * of the chain's head and logs it (the log line is a copy kept outside the database).
 *
 * With no brokers configured it only watches the store (readiness). Metrics: cofre_audit_*
 * (docs/metrics.md).
 */
#ifndef COFRE_AUDIT_CONSUMER_H
#define COFRE_AUDIT_CONSUMER_H

#include "audit/keys.h"
#include "cofre/kafka.h"

#include <stdbool.h>
#include <stddef.h>

typedef struct cofre_audit_consumer cofre_audit_consumer_t;

typedef struct cofre_audit_consumer_config {
    cofre_kafka_config_t kafka; /* brokers "" = no event bus: only watch the store */
    const char *client_id;
    const char *group;  /* the consumer group: "cofre-audit" */
    const char *topics; /* comma list */
    const char *db_url;
    const cofre_audit_keys_t *keys; /* must sign; must outlive the consumer */
    size_t batch_max;               /* messages per transaction */
    unsigned checkpoint_records;    /* sign after this many new records */
    unsigned checkpoint_interval_s; /* or after this long, when there are new records */
    unsigned session_timeout_ms;    /* the group forgets a member silent this long */
} cofre_audit_consumer_config_t;

/* Starts the thread (copying cfg). Returns NULL when librdkafka rejects the configuration. */
cofre_audit_consumer_t *cofre_audit_consumer_start(const cofre_audit_consumer_config_t *cfg);

/* Readiness, without blocking: the store answered lately, and (with a bus) this process is a
 * member of the group. */
bool cofre_audit_consumer_ready(cofre_audit_consumer_t *c, const char **reason);

/* Stops: finishes the batch in hand, commits stored offsets, leaves the group, joins, frees. */
void cofre_audit_consumer_stop(cofre_audit_consumer_t *c);

#endif
