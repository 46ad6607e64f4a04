/*
 * adapter_metrics.h: the cofre_legacy_* metrics of cofre-legacy (docs/metrics.md), registered
 * once at start; the consumer and the engine update the series through the global handle.
 */
#ifndef COFRE_LEGACY_ADAPTER_METRICS_H
#define COFRE_LEGACY_ADAPTER_METRICS_H

#include "cofre/metrics.h"

/* Series the modules update (all non-NULL after cofre_adapter_metrics_init). */
typedef struct cofre_adapter_metrics {
    /* engine */
    cofre_series_t *rtt_0200, *rtt_0400, *rtt_0800; /* request_duration_seconds{mti} */
    cofre_series_t *timeouts_0200, *timeouts_0400, *timeouts_0800;
    cofre_series_t *in_flight;
    cofre_series_t *breaker_state;
    cofre_series_t *breaker_opens;
    cofre_series_t *approved, *declined, *reversed, *failed; /* deliveries_total{outcome} */
    cofre_series_t *reversals;                               /* 0400s sent */
    cofre_series_t *retries;                                 /* 0200 retransmissions */
    cofre_series_t *transient;                               /* transient answers */
    cofre_series_t *unmatched;
    cofre_series_t *connections_ready;
    cofre_series_t *connects_ok, *connects_failed; /* connections_total{result} */
    cofre_series_t *protocol_errors;
    cofre_series_t *active;
    /* partition leases (shared stores) */
    cofre_series_t *partitions_leased;
    cofre_series_t *leases_acquired, *leases_released, *leases_lost; /* lease_changes_total */
    /* consumer */
    cofre_series_t *events_stored, *events_duplicate, *events_skipped, *events_malformed;
    cofre_series_t *commits_ok, *commits_failed;
    cofre_series_t *backlog;
    cofre_series_t *dlq_total;
    cofre_series_t *dlq_pending;
    cofre_series_t *store_up;
    cofre_metric_t *consumer_lag; /* {topic, partition}: series made per partition */
} cofre_adapter_metrics_t;

extern cofre_adapter_metrics_t cofre_adapter_metrics;

/* Registers every family and makes the fixed series. Call once, after cofre_metrics_init. */
void cofre_adapter_metrics_init(void);

#endif
