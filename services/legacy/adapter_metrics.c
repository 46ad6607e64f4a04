/*
 * adapter_metrics.c: registration of the cofre_legacy_* families (see adapter_metrics.h and
 * docs/metrics.md, which lists them for the dashboards and alerts).
 */
#include "legacy/adapter_metrics.h"

#include "cofre/common.h"

cofre_adapter_metrics_t cofre_adapter_metrics;

static cofre_series_t *one(cofre_metric_t *m, const char *value)
{
    return cofre_metric_with(m, (const char *[]){value});
}

static cofre_series_t *plain(cofre_metric_t *m)
{
    return cofre_metric_with(m, NULL);
}

static void engine_metrics(cofre_adapter_metrics_t *x)
{
    cofre_metric_t *rtt =
        cofre_metric_histogram("cofre_legacy_request_duration_seconds",
                               "ISO 8583 request to its matching response, by request MTI.", "mti",
                               cofre_metric_latency_buckets, cofre_metric_latency_buckets_count);
    x->rtt_0200 = one(rtt, "0200");
    x->rtt_0400 = one(rtt, "0400");
    x->rtt_0800 = one(rtt, "0800");
    cofre_metric_t *to = cofre_metric_counter("cofre_legacy_timeouts_total",
                                              "Requests whose answer did not come in time.", "mti");
    x->timeouts_0200 = one(to, "0200");
    x->timeouts_0400 = one(to, "0400");
    x->timeouts_0800 = one(to, "0800");
    x->in_flight = plain(cofre_metric_gauge(
        "cofre_legacy_in_flight", "Requests sent to the legacy host awaiting an answer.", NULL));
    x->breaker_state = plain(cofre_metric_gauge(
        "cofre_legacy_breaker_state",
        "Circuit breaker to the legacy core: 0 closed, 1 half-open, 2 open.", NULL));
    x->breaker_opens = plain(cofre_metric_counter("cofre_legacy_breaker_opens_total",
                                                  "Times the circuit breaker opened.", NULL));
    cofre_metric_t *del = cofre_metric_counter(
        "cofre_legacy_deliveries_total",
        "Transfers delivered to the legacy core, by result (reversed: an attempt undone by an "
        "acknowledged reversal before its retry).",
        "outcome");
    x->approved = one(del, "approved");
    x->declined = one(del, "declined");
    x->reversed = one(del, "reversed");
    x->failed = one(del, "failed");
    x->reversals =
        plain(cofre_metric_counter("cofre_legacy_reversals_total", "0400 reversals sent.", NULL));
    x->retries = plain(cofre_metric_counter(
        "cofre_legacy_retries_total", "0200s sent again for a transfer already attempted.", NULL));
    x->transient = plain(cofre_metric_counter(
        "cofre_legacy_transient_declines_total",
        "Answers with a transient code (19, 68, 91, 96): retried later.", NULL));
    x->unmatched = plain(cofre_metric_counter(
        "cofre_legacy_unmatched_responses_total",
        "Well-formed answers matching no request in flight (late answers, after a timeout).",
        NULL));
    x->connections_ready = plain(cofre_metric_gauge(
        "cofre_legacy_connections_ready", "Pool connections signed on and usable.", NULL));
    cofre_metric_t *conn =
        cofre_metric_counter("cofre_legacy_connections_total",
                             "Connection attempts to the legacy host, by result.", "result");
    x->connects_ok = one(conn, "signed_on");
    x->connects_failed = one(conn, "failed");
    x->protocol_errors = plain(cofre_metric_counter(
        "cofre_legacy_protocol_errors_total",
        "Connections closed because the host sent bytes that are not a valid frame.", NULL));
    x->active = plain(cofre_metric_gauge("cofre_legacy_deliveries_active",
                                         "Deliveries held by the engine (not yet final).", NULL));
    x->partitions_leased = plain(cofre_metric_gauge(
        "cofre_legacy_partitions_leased",
        "Partitions of cofre.ledger.events whose lease this replica holds (PostgreSQL).", NULL));
    cofre_metric_t *leases = cofre_metric_counter(
        "cofre_legacy_partition_lease_changes_total",
        "Partition leases acquired, released (Kafka moved the partition) or lost.", "change");
    x->leases_acquired = one(leases, "acquired");
    x->leases_released = one(leases, "released");
    x->leases_lost = one(leases, "lost");
}

static void consumer_metrics(cofre_adapter_metrics_t *x)
{
    cofre_metric_t *ev =
        cofre_metric_counter("cofre_legacy_events_total",
                             "Messages read from cofre.ledger.events, by what became of "
                             "them.",
                             "outcome");
    x->events_stored = one(ev, "stored");
    x->events_duplicate = one(ev, "duplicate");
    x->events_skipped = one(ev, "skipped");
    x->events_malformed = one(ev, "malformed");
    cofre_metric_t *commits = cofre_metric_counter("cofre_legacy_offset_commits_total",
                                                   "Kafka offset commits, by result.", "result");
    x->commits_ok = one(commits, "ok");
    x->commits_failed = one(commits, "failed");
    x->backlog = plain(cofre_metric_gauge(
        "cofre_legacy_backlog", "Stored deliveries not yet final (pending or sent).", NULL));
    x->dlq_total = plain(
        cofre_metric_counter("cofre_legacy_dlq_total",
                             "Dead letters acknowledged by the broker on cofre.legacy.dlq.", NULL));
    x->dlq_pending = plain(
        cofre_metric_gauge("cofre_legacy_dlq_pending",
                           "Dead letters stored but not yet acknowledged by the broker.", NULL));
    x->store_up = plain(cofre_metric_gauge(
        "cofre_legacy_store_up", "1 when the last delivery store operation succeeded.", NULL));
    x->consumer_lag = cofre_metric_gauge(
        "cofre_legacy_consumer_lag",
        "Messages between the cofre-legacy group's committed offset and the partition end.",
        "topic,partition");
}

void cofre_adapter_metrics_init(void)
{
    engine_metrics(&cofre_adapter_metrics);
    consumer_metrics(&cofre_adapter_metrics);
    cofre_gauge_set(cofre_adapter_metrics.store_up, 1);
}
