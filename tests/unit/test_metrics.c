/* test_metrics.c: counters, gauges, histograms, labels and the text format. */
#include "unit.h"

#include "cofre/metrics.h"

#include <pthread.h>
#include <string.h>

static cofre_metric_t *requests, *temperature, *latency;

static int setup(void **state)
{
    (void)state;
    cofre_metrics_init("test", "1.2.3", "abc");
    requests = cofre_metric_counter("t_requests_total", "Requests.", "route,code");
    temperature = cofre_metric_gauge("t_temperature", "A \"gauge\"\nwith two lines.", NULL);
    static const double buckets[] = {0.1, 1};
    latency = cofre_metric_histogram("t_latency_seconds", "Latency.", "op", buckets, 2);
    return 0;
}

static void render_contains(const char *needle)
{
    cofre_jbuf_t b;
    cofre_jbuf_init(&b);
    cofre_metrics_render(&b);
    if (strstr(b.data, needle) == NULL)
        fail_msg("metrics output lacks \"%s\":\n%s", needle, b.data);
    cofre_jbuf_release(&b);
}

static void counters_by_label(void **state)
{
    (void)state;
    cofre_series_t *a = cofre_metric_with(requests, (const char *[]){"/x", "200"});
    cofre_series_t *b = cofre_metric_with(requests, (const char *[]){"/x\"y", "500"});
    assert_ptr_equal(a, cofre_metric_with(requests, (const char *[]){"/x", "200"}));
    cofre_counter_inc(a);
    cofre_counter_add(a, 2);
    cofre_counter_inc(b);
    assert_int_equal((int)cofre_series_value(a), 3);
    render_contains("t_requests_total{route=\"/x\",code=\"200\"} 3\n");
    render_contains("t_requests_total{route=\"/x\\\"y\",code=\"500\"} 1\n");
    render_contains("# TYPE t_requests_total counter\n");
}

static void gauges_and_help_escaping(void **state)
{
    (void)state;
    cofre_series_t *g = cofre_metric_with(temperature, NULL);
    cofre_gauge_set(g, 1.5);
    cofre_gauge_add(g, -0.25);
    render_contains("t_temperature 1.25\n");
    render_contains("# HELP t_temperature A \"gauge\"\\nwith two lines.\n");
    render_contains("cofre_build_info{service=\"test\",version=\"1.2.3\",revision=\"abc\"} 1\n");
    render_contains("process_resident_memory_bytes ");
}

static void histograms_are_cumulative(void **state)
{
    (void)state;
    cofre_series_t *h = cofre_metric_with(latency, (const char *[]){"read"});
    cofre_histogram_observe(h, 0.05);
    cofre_histogram_observe(h, 0.1); /* le is inclusive */
    cofre_histogram_observe(h, 0.5);
    cofre_histogram_observe(h, 7);
    render_contains("t_latency_seconds_bucket{op=\"read\",le=\"0.1\"} 2\n");
    render_contains("t_latency_seconds_bucket{op=\"read\",le=\"1\"} 3\n");
    render_contains("t_latency_seconds_bucket{op=\"read\",le=\"+Inf\"} 4\n");
    render_contains("t_latency_seconds_count{op=\"read\"} 4\n");
    render_contains("t_latency_seconds_sum{op=\"read\"} 7.65");
}

static void *hammer(void *arg)
{
    for (int i = 0; i < 100000; i++)
        cofre_counter_inc(arg);
    return NULL;
}

static void concurrent_increments_are_not_lost(void **state)
{
    (void)state;
    cofre_series_t *s = cofre_metric_with(requests, (const char *[]){"/c", "200"});
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, hammer, s);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    assert_int_equal((int)cofre_series_value(s), 400000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(counters_by_label),
        cmocka_unit_test(gauges_and_help_escaping),
        cmocka_unit_test(histograms_are_cumulative),
        cmocka_unit_test(concurrent_increments_are_not_lost),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
