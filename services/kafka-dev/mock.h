/*
 * mock.h: the development Kafka cluster of cofre-kafka-dev, on librdkafka's mock cluster
 * (librdkafka/rdkafka_mock.h): brokers speaking the Kafka protocol over TCP on loopback
 * (ephemeral ports, so the bootstrap list is read from here), the contract's topics created
 * up front, and the fault injection the mock offers (a broker down or up, round-trip latency,
 * request errors, partition leadership), callable only inside this process. Data lives in
 * memory and dies with the process.
 *
 * Every function may be called from any thread; state changes are serialized by a lock.
 */
#ifndef COFRE_KAFKA_DEV_MOCK_H
#define COFRE_KAFKA_DEV_MOCK_H

#include "cofre/jbuf.h"

#include <librdkafka/rdkafka.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define COFRE_MOCK_BROKERS_MAX    9
#define COFRE_MOCK_TOPICS_MAX     16
#define COFRE_MOCK_PARTITIONS_MAX 64
#define COFRE_MOCK_TOPIC_MAX      128
#define COFRE_MOCK_ERRORS_MAX     1000 /* request errors pushed in one call */
#define COFRE_MOCK_RTT_MAX_MS     60000

typedef struct cofre_mock cofre_mock_t;

typedef struct cofre_mock_config {
    unsigned brokers;    /* 1..COFRE_MOCK_BROKERS_MAX */
    unsigned partitions; /* per topic, 1..COFRE_MOCK_PARTITIONS_MAX */
    const char *topics;  /* comma list */
} cofre_mock_config_t;

/*
 * Parses a comma list of topic names (Kafka's rules: 1..COFRE_MOCK_TOPIC_MAX characters of
 * [A-Za-z0-9._-], not "." or "..", at most COFRE_MOCK_TOPICS_MAX names). Returns the count, or
 * -1 when malformed. names may be NULL to only validate.
 */
int cofre_mock_parse_topics(const char *list, char names[][COFRE_MOCK_TOPIC_MAX + 1]);

/* Starts the cluster and creates the topics (replication factor min(3, brokers)). Returns NULL
 * and logs the reason on failure. */
cofre_mock_t *cofre_mock_new(const cofre_mock_config_t *cfg);

/* "127.0.0.1:port,..." (owned by the cluster). */
const char *cofre_mock_bootstrap(const cofre_mock_t *m);

/* Broker ids run from 1 to the number of brokers. These return 0, COFRE_ENOENT for an
 * unknown broker, topic or partition, COFRE_ERANGE for a value out of bounds, or COFRE_EIO
 * when the mock refused. */
int cofre_mock_broker_set_up(cofre_mock_t *m, int32_t id, bool up);
int cofre_mock_broker_set_rtt(cofre_mock_t *m, int32_t id, int rtt_ms);
int cofre_mock_set_leader(cofre_mock_t *m, const char *topic, int32_t partition, int32_t id);

/* Makes the next n requests of api (a Kafka ApiKey) fail with errs[0..n), in order, on
 * whichever broker gets them. */
int cofre_mock_push_errors(cofre_mock_t *m, int16_t api, size_t n, const rd_kafka_resp_err_t *errs);
/* Forgets the errors still queued for api. */
int cofre_mock_clear_errors(cofre_mock_t *m, int16_t api);

/* A Kafka API by name ("Produce", "Fetch", ...) or decimal key. Returns 0 or COFRE_EINVAL. */
int cofre_mock_api_parse(const char *name, int16_t *api);

/* A broker error by librdkafka's name ("NOT_LEADER_FOR_PARTITION", "_TRANSPORT") or decimal
 * code. Returns 0 or COFRE_EINVAL. */
int cofre_mock_error_parse(const char *name, rd_kafka_resp_err_t *err);

/* Appends {"bootstrap","brokers":[{"id","up","rtt_ms"}],"topics":[{"name","partitions"}]}. */
void cofre_mock_describe(cofre_mock_t *m, cofre_jbuf_t *out);

void cofre_mock_free(cofre_mock_t *m);

#endif
