/*
 * metrics.h: the process's Prometheus registry. Families (counters, gauges, histograms) are
 * registered at start; a series (one set of label values) is looked up once, under the
 * family's lock, and its pointer kept by the caller: updates on the hot path are relaxed
 * atomic adds, with no lock. cofre_metrics_render() writes the text exposition format 0.0.4,
 * including the standard process_* metrics.
 *
 *   static cofre_metric_t *posted;
 *   posted = cofre_metric_counter("cofre_ledger_transfers_total", "Transfers...", "outcome");
 *   cofre_series_t *ok = cofre_metric_with(posted, (const char *[]){"posted"});
 *   cofre_counter_inc(ok);
 */
#ifndef COFRE_METRICS_H
#define COFRE_METRICS_H

#include "cofre/jbuf.h"

#include <stddef.h>
#include <stdint.h>

#define COFRE_METRIC_LABELS_MAX  4
#define COFRE_METRIC_BUCKETS_MAX 24

typedef struct cofre_metric cofre_metric_t;
typedef struct cofre_series cofre_series_t;

/* Latency buckets in seconds used by every duration histogram, 100 us to 10 s. */
extern const double cofre_metric_latency_buckets[];
extern const size_t cofre_metric_latency_buckets_count;

/*
 * Registers a family. name must be a valid, unused metric name; labels is a comma-separated
 * list of label names ("route,method,code") or NULL. The registry keeps the pointers: pass
 * string literals. Aborts on a programming error (duplicate name, too many labels).
 */
cofre_metric_t *cofre_metric_counter(const char *name, const char *help, const char *labels);
cofre_metric_t *cofre_metric_gauge(const char *name, const char *help, const char *labels);
cofre_metric_t *cofre_metric_histogram(const char *name, const char *help, const char *labels,
                                       const double *buckets, size_t nbuckets);

/*
 * A gauge computed when scraped: fn(data) is called from the scraping thread, so it must be
 * thread-safe. No labels.
 */
void cofre_metric_gauge_fn(const char *name, const char *help, double (*fn)(void *data),
                           void *data);

/*
 * The series of m with these label values (as many as the family has labels; NULL for none).
 * Created on first use; the returned pointer stays valid for the life of the process. Values
 * are copied.
 */
cofre_series_t *cofre_metric_with(cofre_metric_t *m, const char *const *values);

void cofre_counter_inc(cofre_series_t *s);
void cofre_counter_add(cofre_series_t *s, uint64_t n);
void cofre_gauge_set(cofre_series_t *s, double v);
void cofre_gauge_add(cofre_series_t *s, double delta);
void cofre_histogram_observe(cofre_series_t *s, double v);

/* Reads a counter or gauge (tests and readiness checks). */
double cofre_series_value(const cofre_series_t *s);

/*
 * Sets the labels of cofre_build_info and the process start time. Call once at start, before
 * any other thread exists.
 */
void cofre_metrics_init(const char *service, const char *version, const char *revision);

/* Appends every family, then process_* metrics, in text format 0.0.4. */
void cofre_metrics_render(cofre_jbuf_t *out);

#endif
