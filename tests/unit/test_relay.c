/*
 * test_relay.c: the outbox relay against librdkafka's mock cluster in this process, with an
 * in-memory outbox: every row published once and marked, one key's rows in order, the
 * traceparent header, brokers down (rows wait, then go), mark failures retried without
 * republishing, refused deliveries produced again in order, and the flush on stop.
 */
#include "unit.h"

#include "cofre/common.h"
#include "cofre/log.h"
#include "cofre/relay.h"

#include <librdkafka/rdkafka_mock.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ROWS_MAX   2000
#define KEYS       5
#define PARTITIONS 4
#define TOPIC      "relay.test"
#define WAIT_MS    15000

/* ---- an in-memory outbox ------------------------------------------------------------------ */

typedef struct fake_row {
    char key[16];
    char payload[64];
    bool published;
} fake_row_t;

typedef struct fake_source {
    pthread_mutex_t lock;
    fake_row_t rows[ROWS_MAX]; /* seq = index + 1 */
    size_t n;
    int mark_failures; /* the next this many marks fail */
    size_t fetches;
    size_t per_key[KEYS]; /* rows added per key so far */
    int busy_opens;       /* the next this many opens say another process relays */
    int opens;
} fake_source_t;

static int fake_open(void *data)
{
    fake_source_t *s = data;
    pthread_mutex_lock(&s->lock);
    s->opens++;
    int rc = s->busy_opens > 0 ? COFRE_EEXIST : 0;
    if (s->busy_opens > 0)
        s->busy_opens--;
    pthread_mutex_unlock(&s->lock);
    return rc;
}

static int fake_fetch(void *data, int64_t after, size_t max, cofre_relay_row_t *out, size_t *n)
{
    fake_source_t *s = data;
    pthread_mutex_lock(&s->lock);
    s->fetches++;
    *n = 0;
    for (size_t i = (size_t)(after < 0 ? 0 : after); i < s->n && *n < max; i++) {
        if (s->rows[i].published)
            continue;
        cofre_relay_row_t *r = &out[(*n)++];
        memset(r, 0, sizeof(*r));
        r->seq = (int64_t)i + 1;
        snprintf(r->event_id, sizeof(r->event_id), "ev-%zu", i + 1);
        snprintf(r->topic, sizeof(r->topic), "%s", TOPIC);
        snprintf(r->key, sizeof(r->key), "%s", s->rows[i].key);
        snprintf(r->traceparent, sizeof(r->traceparent), "00-%032zx-00f067aa0ba902b7-01", i + 1);
        r->payload = cofre_strdup(s->rows[i].payload);
        r->payload_len = strlen(r->payload);
    }
    pthread_mutex_unlock(&s->lock);
    return 0;
}

static int fake_mark(void *data, const int64_t *seqs, size_t n)
{
    fake_source_t *s = data;
    pthread_mutex_lock(&s->lock);
    int rc = 0;
    if (s->mark_failures > 0) {
        s->mark_failures--;
        rc = COFRE_EIO;
    }
    for (size_t i = 0; rc == 0 && i < n; i++) {
        assert_true(seqs[i] >= 1 && (size_t)seqs[i] <= s->n);
        if (s->rows[seqs[i] - 1].published)
            fail_msg("row %lld marked twice", (long long)seqs[i]);
        s->rows[seqs[i] - 1].published = true;
    }
    pthread_mutex_unlock(&s->lock);
    return rc;
}

static int fake_stats(void *data, int64_t *pending, double *oldest)
{
    fake_source_t *s = data;
    pthread_mutex_lock(&s->lock);
    *pending = 0;
    for (size_t i = 0; i < s->n; i++)
        *pending += !s->rows[i].published;
    pthread_mutex_unlock(&s->lock);
    *oldest = 0;
    return 0;
}

/* Adds rows to the outbox, round-robin over KEYS keys; each payload names its key and its
 * position among that key's rows. */
static void add_rows(fake_source_t *s, size_t count)
{
    pthread_mutex_lock(&s->lock);
    assert_true(s->n + count <= ROWS_MAX);
    for (size_t i = 0; i < count; i++) {
        fake_row_t *r = &s->rows[s->n];
        size_t k = s->n % KEYS;
        snprintf(r->key, sizeof(r->key), "key-%zu", k);
        snprintf(r->payload, sizeof(r->payload), "{\"key\":%zu,\"n\":%zu}", k, s->per_key[k]++);
        s->n++;
    }
    pthread_mutex_unlock(&s->lock);
}

static size_t published(fake_source_t *s)
{
    size_t n = 0;
    pthread_mutex_lock(&s->lock);
    for (size_t i = 0; i < s->n; i++)
        n += s->rows[i].published;
    pthread_mutex_unlock(&s->lock);
    return n;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void wait_published(fake_source_t *s, size_t want)
{
    for (unsigned waited = 0; waited < WAIT_MS; waited += 20) {
        if (published(s) == want)
            return;
        sleep_ms(20);
    }
    fail_msg("published %zu rows, want %zu", published(s), want);
}

/* ---- the cluster and a reader ------------------------------------------------------------ */

typedef struct fixture {
    rd_kafka_t *host;
    rd_kafka_mock_cluster_t *mc;
    fake_source_t src;
    cofre_relay_config_t cfg;
} fixture_t;

static int setup(void **state)
{
    static bool quiet;
    if (!quiet) {
        cofre_log_init("test_relay", COFRE_LOG_ERROR);
        quiet = true;
    }
    fixture_t *f = cofre_calloc(1, sizeof(*f));
    char err[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "log_level", "0", err, sizeof(err));
    f->host = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    assert_non_null(f->host);
    f->mc = rd_kafka_mock_cluster_new(f->host, 3);
    assert_non_null(f->mc);
    assert_int_equal(rd_kafka_mock_topic_create(f->mc, TOPIC, PARTITIONS, 3), 0);
    pthread_mutex_init(&f->src.lock, NULL);
    cofre_relay_config_defaults(&f->cfg);
    f->cfg.kafka.brokers = rd_kafka_mock_cluster_bootstraps(f->mc);
    f->cfg.kafka.security_protocol = "plaintext";
    f->cfg.client_id = "test-relay";
    f->cfg.batch_max = 50;
    f->cfg.in_flight_max = 400;
    f->cfg.poll_ms = 5;
    f->cfg.backoff_max_ms = 200;
    f->cfg.flush_timeout_ms = 5000;
    f->cfg.source = (cofre_relay_source_t){.name = "test",
                                           .open = fake_open,
                                           .fetch = fake_fetch,
                                           .mark = fake_mark,
                                           .stats = fake_stats,
                                           .data = &f->src};
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    rd_kafka_mock_cluster_destroy(f->mc);
    rd_kafka_destroy(f->host);
    pthread_mutex_destroy(&f->src.lock);
    free(f);
    return 0;
}

static void set_brokers_up(fixture_t *f, bool up)
{
    for (int32_t id = 1; id <= 3; id++)
        assert_int_equal(up ? rd_kafka_mock_broker_set_up(f->mc, id)
                            : rd_kafka_mock_broker_set_down(f->mc, id),
                         0);
}

/* What the topic holds: messages per key in arrival order. */
typedef struct readback {
    size_t total;
    size_t per_key[KEYS];
    bool in_order;
    bool headers_ok;
} readback_t;

static void check_message(const rd_kafka_message_t *m, size_t *per_key, readback_t *out)
{
    unsigned k = 0;
    size_t n = 0;
    char body[80];
    snprintf(body, sizeof(body), "%.*s", (int)m->len, (const char *)m->payload);
    assert_int_equal(sscanf(body, "{\"key\":%u,\"n\":%zu}", &k, &n), 2);
    assert_true(k < KEYS);
    char key[16];
    snprintf(key, sizeof(key), "key-%u", k);
    assert_int_equal(m->key_len, strlen(key));
    assert_memory_equal(m->key, key, m->key_len);
    if (n != per_key[k])
        out->in_order = false;
    per_key[k] = n + 1;
    out->per_key[k]++;
    rd_kafka_headers_t *h = NULL;
    const void *v;
    size_t vlen;
    if (rd_kafka_message_headers(m, &h) != 0 ||
        rd_kafka_header_get_last(h, "traceparent", &v, &vlen) != 0 || vlen != 55)
        out->headers_ok = false;
}

/* Reads every partition from the start until want messages came (or a timeout). */
static void read_back(fixture_t *f, size_t want, readback_t *out)
{
    memset(out, 0, sizeof(*out));
    out->in_order = out->headers_ok = true;
    char err[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", f->cfg.kafka.brokers, err, sizeof(err));
    rd_kafka_conf_set(conf, "group.id", "test-reader", err, sizeof(err));
    rd_kafka_conf_set(conf, "log_level", "0", err, sizeof(err));
    rd_kafka_t *c = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
    assert_non_null(c);
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(PARTITIONS);
    for (int p = 0; p < PARTITIONS; p++)
        rd_kafka_topic_partition_list_add(parts, TOPIC, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
    assert_int_equal(rd_kafka_assign(c, parts), 0);
    rd_kafka_topic_partition_list_destroy(parts);
    size_t per_key[KEYS] = {0};
    uint64_t deadline = cofre_now_mono_ns() + (uint64_t)WAIT_MS * 1000000u;
    while (out->total < want && cofre_now_mono_ns() < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 100);
        if (m == NULL)
            continue;
        if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
            check_message(m, per_key, out);
            out->total++;
        }
        rd_kafka_message_destroy(m);
    }
    /* Anything beyond want would be a duplicate: give it a moment to show up. */
    rd_kafka_message_t *extra = rd_kafka_consumer_poll(c, 300);
    if (extra != NULL) {
        if (extra->err == RD_KAFKA_RESP_ERR_NO_ERROR)
            out->total++;
        rd_kafka_message_destroy(extra);
    }
    rd_kafka_consumer_close(c);
    rd_kafka_destroy(c);
}

static void expect_all_once_in_order(fixture_t *f)
{
    readback_t rb;
    read_back(f, f->src.n, &rb);
    if (rb.total != f->src.n)
        fail_msg("the topic holds %zu messages, want %zu", rb.total, f->src.n);
    assert_true(rb.in_order);
    assert_true(rb.headers_ok);
}

/* ---- tests --------------------------------------------------------------------------------- */

static void publishes_every_row_once_in_key_order(void **state)
{
    fixture_t *f = *state;
    add_rows(&f->src, 300);
    cofre_relay_t *r = cofre_relay_start(&f->cfg);
    assert_non_null(r);
    wait_published(&f->src, 300);
    add_rows(&f->src, 200); /* rows committed while it runs */
    wait_published(&f->src, 500);
    cofre_relay_stats_t st;
    cofre_relay_stats(r, &st);
    assert_int_equal(st.published, 500);
    assert_int_equal(st.produced, 500);
    assert_int_equal(st.failures, 0);
    assert_int_equal(cofre_relay_stop(r), 0);
    expect_all_once_in_order(f);
}

static void brokers_down_rows_wait_then_go(void **state)
{
    fixture_t *f = *state;
    cofre_relay_t *r = cofre_relay_start(&f->cfg);
    add_rows(&f->src, 20);
    wait_published(&f->src, 20);
    set_brokers_up(f, false);
    add_rows(&f->src, 100);
    sleep_ms(1500);
    assert_int_equal(published(&f->src), 20); /* nothing is marked without an ack */
    set_brokers_up(f, true);
    wait_published(&f->src, 120);
    assert_int_equal(cofre_relay_stop(r), 0);
    expect_all_once_in_order(f);
}

static void mark_failures_are_retried_without_republishing(void **state)
{
    fixture_t *f = *state;
    f->src.mark_failures = 3;
    cofre_relay_t *r = cofre_relay_start(&f->cfg);
    add_rows(&f->src, 60);
    wait_published(&f->src, 60);
    cofre_relay_stats_t st;
    cofre_relay_stats(r, &st);
    assert_int_equal(st.produced, 60);
    assert_int_equal(st.marked, 60);
    assert_int_equal(cofre_relay_stop(r), 0);
    expect_all_once_in_order(f);
}

static void refused_deliveries_go_again_in_order(void **state)
{
    fixture_t *f = *state;
    static const rd_kafka_resp_err_t errs[] = {
        RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED,
        RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED,
        RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED,
    };
    rd_kafka_mock_push_request_errors_array(f->mc, 0 /* Produce */, 3, errs);
    cofre_relay_t *r = cofre_relay_start(&f->cfg);
    add_rows(&f->src, 100);
    wait_published(&f->src, 100);
    cofre_relay_stats_t st;
    cofre_relay_stats(r, &st);
    assert_true(st.failures >= 1);
    assert_int_equal(st.published, 100);
    assert_int_equal(cofre_relay_stop(r), 0);
    expect_all_once_in_order(f);
}

static void stop_flushes_what_is_pending(void **state)
{
    fixture_t *f = *state;
    cofre_relay_t *r = cofre_relay_start(&f->cfg);
    add_rows(&f->src, 150);
    assert_int_equal(cofre_relay_stop(r), 0); /* at once: the rows still go out */
    assert_int_equal(published(&f->src), 150);
    expect_all_once_in_order(f);
}

static void stop_with_brokers_down_gives_up_in_time(void **state)
{
    fixture_t *f = *state;
    f->cfg.flush_timeout_ms = 500;
    cofre_relay_t *r = cofre_relay_start(&f->cfg);
    add_rows(&f->src, 10);
    wait_published(&f->src, 10);
    set_brokers_up(f, false);
    add_rows(&f->src, 10);
    sleep_ms(200);
    uint64_t t0 = cofre_now_mono_ns();
    assert_int_equal(cofre_relay_stop(r), COFRE_ETIMEDOUT);
    uint64_t took_ms = (cofre_now_mono_ns() - t0) / 1000000;
    if (took_ms > 3000)
        fail_msg("stop took %llu ms with a 500 ms flush timeout", (unsigned long long)took_ms);
    assert_int_equal(published(&f->src), 10); /* the rest stays for the next start */
    set_brokers_up(f, true);
    r = cofre_relay_start(&f->cfg);
    wait_published(&f->src, 20);
    assert_int_equal(cofre_relay_stop(r), 0);
}

static void stands_by_while_another_process_relays(void **state)
{
    fixture_t *f = *state;
    f->src.busy_opens = 3;
    add_rows(&f->src, 30);
    cofre_relay_t *r = cofre_relay_start(&f->cfg);
    sleep_ms(250);
    assert_int_equal(published(&f->src), 0); /* nothing while the other one relays */
    wait_published(&f->src, 30);             /* then it takes over */
    assert_int_equal(f->src.opens, 4);
    assert_int_equal(cofre_relay_stop(r), 0);

    f->src.busy_opens = 1000; /* stopping while standing by is immediate and leaves no work */
    add_rows(&f->src, 5);
    r = cofre_relay_start(&f->cfg);
    sleep_ms(50);
    uint64_t t0 = cofre_now_mono_ns();
    assert_int_equal(cofre_relay_stop(r), 0);
    assert_true(cofre_now_mono_ns() - t0 < 1000000000ull);
    assert_int_equal(published(&f->src), 30);
}

static void config_rejects_bad_values(void **state)
{
    (void)state;
    cofre_config_t c;
    cofre_relay_config_t cfg;
    setenv("COFRE_RELAY_BATCH_MAX", "0", 1);
    cofre_config_init(&c, "test");
    cofre_relay_config_defaults(&cfg);
    cofre_relay_config_read(&c, "127.0.0.1:9092", &cfg);
    assert_false(cofre_config_ok(&c));
    assert_non_null(strstr(c.error, "COFRE_RELAY_BATCH_MAX"));
    unsetenv("COFRE_RELAY_BATCH_MAX");
    cofre_config_init(&c, "test");
    cofre_relay_config_defaults(&cfg);
    cofre_relay_config_read(&c, "127.0.0.1:9092,kafka:9093", &cfg);
    assert_true(cofre_config_ok(&c));
    assert_int_equal(cfg.batch_max, 500);
    assert_int_equal(cfg.message_timeout_ms, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(publishes_every_row_once_in_key_order, setup, teardown),
        cmocka_unit_test_setup_teardown(brokers_down_rows_wait_then_go, setup, teardown),
        cmocka_unit_test_setup_teardown(mark_failures_are_retried_without_republishing, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(refused_deliveries_go_again_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(stop_flushes_what_is_pending, setup, teardown),
        cmocka_unit_test_setup_teardown(stop_with_brokers_down_gives_up_in_time, setup, teardown),
        cmocka_unit_test_setup_teardown(stands_by_while_another_process_relays, setup, teardown),
        cmocka_unit_test(config_rejects_bad_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
