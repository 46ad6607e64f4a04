/*
 * kafka.h: what every librdkafka client of cofre shares (the outbox relay's producer and the
 * consumers of cofre-audit and cofre-legacy): the brokers of COFRE_KAFKA_BROKERS and the
 * security settings, read the same way whether the cluster is cofre-kafka-dev on loopback or a
 * managed Kafka (MSK) over SASL/TLS; librdkafka's log lines and global errors go to cofre's
 * JSON log, never to stderr; and broker errors translated to COFRE_E* codes.
 *
 * Settings (besides COFRE_KAFKA_BROKERS):
 *   COFRE_KAFKA_SECURITY_PROTOCOL  plaintext (default) | ssl | sasl_plaintext | sasl_ssl
 *   COFRE_KAFKA_SASL_MECHANISM     PLAIN | SCRAM-SHA-256 | SCRAM-SHA-512 (with sasl_*)
 *   COFRE_KAFKA_SASL_USERNAME, COFRE_KAFKA_SASL_PASSWORD   (required with sasl_*)
 *   COFRE_KAFKA_SSL_CA_FILE        CA bundle for ssl / sasl_ssl (default: the system's)
 */
#ifndef COFRE_KAFKA_H
#define COFRE_KAFKA_H

#include "cofre/config.h"

#include <librdkafka/rdkafka.h>
#include <stdbool.h>

typedef struct cofre_kafka_config {
    const char *brokers;           /* "host:port,host:port"; "" = no event bus */
    const char *security_protocol; /* librdkafka's value: "plaintext", "sasl_ssl", ... */
    const char *sasl_mechanism;    /* NULL unless sasl_* */
    const char *sasl_username;
    const char *sasl_password;
    const char *ssl_ca_file; /* NULL: the system's CA store */
} cofre_kafka_config_t;

/*
 * Reads the security settings above from c (rejecting malformed ones there) and sets
 * out->brokers to brokers (the service's COFRE_KAFKA_BROKERS). The strings stay owned by the
 * environment.
 */
void cofre_kafka_config_read(cofre_config_t *c, const char *brokers, cofre_kafka_config_t *out);

/* True when brokers is a comma list of host:port items (each port 1..65535, no spaces). */
bool cofre_kafka_brokers_valid(const char *brokers);

/*
 * A new librdkafka configuration with the brokers, security settings and client.id set, its
 * log lines routed to cofre's log and its global errors logged (at most one line per error
 * kind every 10 s). The caller sets the client-specific properties (cofre_kafka_conf_set) and
 * passes it to rd_kafka_new, which takes ownership.
 */
rd_kafka_conf_t *cofre_kafka_conf_new(const cofre_kafka_config_t *kc, const char *client_id);

/*
 * Sets one property. A property this program sets is a programming error when librdkafka
 * refuses it: aborts with the property named.
 */
void cofre_kafka_conf_set(rd_kafka_conf_t *conf, const char *name, const char *value);

/*
 * After rd_kafka_new: makes librdkafka's log lines arrive through the handle's main queue, so
 * they are written by the thread that polls it (rd_kafka_poll or the consumer's poll), not by
 * librdkafka's internal threads.
 */
void cofre_kafka_route_logs(rd_kafka_t *rk);

/* Translates a librdkafka error: COFRE_EUNAVAIL for transport and broker availability,
 * COFRE_ETIMEDOUT for timeouts, COFRE_ETOOLARGE for message size, COFRE_EIO otherwise. */
int cofre_kafka_error(rd_kafka_resp_err_t err);

#endif
