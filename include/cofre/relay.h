/*
 * relay.h: the transactional outbox relay. A service writes one outbox row per effect in the
 * same database transaction as the effect; the relay, on its own thread, reads unpublished
 * rows in commit order, publishes each to Kafka with librdkafka's idempotent producer (acks
 * from every in-sync replica), and marks a row published only after its delivery report
 * succeeded. A crash anywhere republishes rather than loses (at-least-once; consumers drop
 * duplicates by event id); a rolled-back effect never had a row.
 *
 * The relay reads rows through a source (fetch, mark, stats callbacks), so cofre-core (its
 * ledger store) and cofre-auth (its auth-events table) use it alike.
 *
 * Order: rows are produced in seq order, keyed by the row's partition key (murmur2, as Java
 * clients hash), and the idempotent producer keeps a partition's order through retries. Messages
 * never time out inside librdkafka by default (message_timeout_ms 0): while brokers are down
 * they wait, in bounded number (in_flight_max), and are delivered in order when the brokers
 * return. A row whose delivery failed for good (the broker refused it) is produced again after
 * a backoff, before new rows.
 *
 * The service keeps serving meanwhile: readiness never depends on the relay. Metrics (one
 * relay per process): cofre_outbox_pending, cofre_outbox_oldest_pending_seconds,
 * cofre_outbox_published_total, cofre_outbox_delivery_failures_total.
 */
#ifndef COFRE_RELAY_H
#define COFRE_RELAY_H

#include "cofre/kafka.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define COFRE_RELAY_EVENT_ID_MAX    64
#define COFRE_RELAY_TOPIC_MAX       128
#define COFRE_RELAY_KEY_MAX         255
#define COFRE_RELAY_TRACEPARENT_MAX 64
#define COFRE_RELAY_PAYLOAD_MAX     (1024 * 1024)

typedef struct cofre_relay cofre_relay_t;

/* One outbox row, as a source hands it over. */
typedef struct cofre_relay_row {
    int64_t seq; /* > 0, increasing in commit order */
    char event_id[COFRE_RELAY_EVENT_ID_MAX + 1];
    char topic[COFRE_RELAY_TOPIC_MAX + 1];
    char key[COFRE_RELAY_KEY_MAX + 1];                 /* the partition key */
    char traceparent[COFRE_RELAY_TRACEPARENT_MAX + 1]; /* "" when none */
    char *payload; /* malloc'ed, NUL-terminated: the CloudEvents JSON; the relay frees it */
    size_t payload_len;
} cofre_relay_row_t;

/*
 * Where rows come from. open, fetch, stats and close run on the relay's thread; mark runs on
 * its marker thread, at the same time as fetch or stats: a source with a database keeps one
 * connection for each (a mark waits for the database's write lock without holding up
 * publishing). Errors are negative COFRE_E* codes; the relay logs them, backs off and tries
 * again.
 */
typedef struct cofre_relay_source {
    const char *name; /* for logs: "ledger", "auth" */
    /*
     * True when rows become visible in seq order (one writer, as SQLite has): then no row can
     * appear below the cursor, and the periodic rescan for such rows is skipped (rows whose
     * delivery failed are still produced again).
     */
    bool ordered;
    /*
     * Opens what the source needs (connections). Optional. COFRE_EEXIST means another process
     * relays this outbox (only one may): the relay stands by and tries again every
     * backoff_max_ms, so it takes over within seconds of that process's end.
     */
    int (*open)(void *data);
    /* Fills out[0..*n) with up to max unpublished rows with seq > after_seq, in seq order. */
    int (*fetch)(void *data, int64_t after_seq, size_t max, cofre_relay_row_t *out, size_t *n);
    /* Marks rows published, in one transaction (on the marker thread). */
    int (*mark)(void *data, const int64_t *seqs, size_t n);
    /* Unpublished rows, and the age in seconds of the oldest (0 when none). */
    int (*stats)(void *data, int64_t *pending, double *oldest_age_s);
    /* Releases what open made. Optional. */
    void (*close)(void *data);
    void *data;
} cofre_relay_source_t;

typedef struct cofre_relay_config {
    cofre_kafka_config_t kafka; /* brokers must not be empty */
    const char *client_id;      /* the service name */
    cofre_relay_source_t source;
    size_t batch_max;            /* rows per fetch (default 500) */
    size_t in_flight_max;        /* produced, not yet acknowledged (default 10000); rows
                                    acknowledged but not yet marked: up to 4 times that */
    unsigned poll_ms;            /* wait between fetches when idle (default 20) */
    unsigned rescan_ms;          /* look for rows committed out of seq order (default 1000) */
    unsigned backoff_max_ms;     /* after failures (default 5000) */
    unsigned stats_ms;           /* pending-row gauges refresh (default 1000) */
    unsigned flush_timeout_ms;   /* on stop: keep publishing at most this long (default 10000) */
    unsigned message_timeout_ms; /* librdkafka's message.timeout.ms; 0 (default) = never */
    unsigned linger_ms;          /* librdkafka's linger.ms (default 5) */
    unsigned mark_interval_ms;   /* gather acknowledgements this long per mark (default 50) */
} cofre_relay_config_t;

/* Fills cfg with the defaults above (and zeroes the rest). */
void cofre_relay_config_defaults(cofre_relay_config_t *cfg);

/*
 * Reads the relay's tuning variables (COFRE_RELAY_BATCH_MAX, COFRE_RELAY_IN_FLIGHT_MAX,
 * COFRE_RELAY_POLL_MS, COFRE_RELAY_MESSAGE_TIMEOUT_MS) and the Kafka settings into cfg, over
 * the defaults. brokers is the service's COFRE_KAFKA_BROKERS.
 */
void cofre_relay_config_read(cofre_config_t *c, const char *brokers, cofre_relay_config_t *cfg);

/*
 * Starts the relay thread (copying cfg; the source's data must outlive the relay). Never fails
 * for an unreachable database or broker: it retries. Returns NULL only when librdkafka rejects
 * the configuration (logged).
 */
cofre_relay_t *cofre_relay_start(const cofre_relay_config_t *cfg);

/*
 * Stops the relay: keeps publishing what is pending for at most flush_timeout_ms (so rows
 * committed just before shutdown leave now rather than at the next start), marks what was
 * acknowledged, then drops what is left unacknowledged (it stays unpublished in the outbox and
 * goes at the next start), joins the thread and frees the relay. Returns 0, or
 * COFRE_ETIMEDOUT when rows were left unpublished.
 */
int cofre_relay_stop(cofre_relay_t *r);

/* What the relay has done so far (tests, logs). */
typedef struct cofre_relay_stats {
    uint64_t published; /* rows acknowledged by the broker */
    uint64_t marked;    /* rows marked published in the source */
    uint64_t failures;  /* delivery reports with an error */
    uint64_t produced;  /* messages handed to librdkafka (retries of failed rows count) */
    size_t in_flight;   /* produced or acknowledged, not yet marked */
    int64_t pending;    /* the source's last stats */
    double oldest_age_s;
} cofre_relay_stats_t;

void cofre_relay_stats(cofre_relay_t *r, cofre_relay_stats_t *out);

#endif
