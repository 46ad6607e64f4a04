/*
 * test_adapter_consumer.c: cofre-legacy's consumer against librdkafka's mock cluster, in
 * process: posted transfers become pending deliveries and the group's committed offsets reach
 * the end of every partition only once they are stored; other event types are skipped; a
 * malformed message becomes a dead letter published to cofre.legacy.dlq (and marked
 * published); after a restart the group resumes where it committed, and events read again
 * (the same transfers) add no delivery.
 */
#include "unit.h"

#include "cofre/common.h"
#include "cofre/log.h"
#include "cofre/metrics.h"
#include "legacy/adapter_consumer.h"
#include "legacy/adapter_metrics.h"
#include "legacy/adapter_store.h"

#include <fcntl.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define TOPIC      "cofre.ledger.events"
#define DLQ        "cofre.legacy.dlq"
#define PARTITIONS 3
#define GROUP      "cofre-legacy-test"

static char dir[64], url[128];
static rd_kafka_t *admin; /* owns the mock cluster; also the producer */
static rd_kafka_mock_cluster_t *mock;
static const char *bootstrap;
static atomic_int stored_calls;

static void stored(void *data)
{
    (void)data;
    atomic_fetch_add(&stored_calls, 1);
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/cofre-test-consumer-XXXXXX");
    if (mkdtemp(dir) == NULL)
        return -1;
    snprintf(url, sizeof(url), "sqlite:%s/legacy.db", dir);
    cofre_log_init("test", COFRE_LOG_ERROR);
    cofre_log_set_fd(open("/dev/null", O_WRONLY));
    cofre_metrics_init("test", "0", "0");
    cofre_adapter_metrics_init();
    char err[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "log_level", "0", err, sizeof(err));
    admin = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    if (admin == NULL)
        return -1;
    mock = rd_kafka_mock_cluster_new(admin, 1);
    rd_kafka_mock_topic_create(mock, TOPIC, PARTITIONS, 1);
    rd_kafka_mock_topic_create(mock, DLQ, 1, 1);
    bootstrap = rd_kafka_mock_cluster_bootstraps(mock);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    rd_kafka_mock_cluster_destroy(mock);
    rd_kafka_destroy(admin);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd);
}

static rd_kafka_t *client(rd_kafka_type_t type, const char *group)
{
    char err[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, err, sizeof(err));
    rd_kafka_conf_set(conf, "log_level", "0", err, sizeof(err));
    if (group != NULL) {
        rd_kafka_conf_set(conf, "group.id", group, err, sizeof(err));
        rd_kafka_conf_set(conf, "auto.offset.reset", "earliest", err, sizeof(err));
        rd_kafka_conf_set(conf, "enable.auto.commit", "false", err, sizeof(err));
    }
    rd_kafka_t *rk = rd_kafka_new(type, conf, err, sizeof(err));
    assert_non_null(rk);
    return rk;
}

static void produce(rd_kafka_t *p, const char *key, const char *value)
{
    assert_int_equal(rd_kafka_producev(p, RD_KAFKA_V_TOPIC(TOPIC), RD_KAFKA_V_KEY(key, strlen(key)),
                                       RD_KAFKA_V_VALUE((void *)value, strlen(value)),
                                       RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END),
                     RD_KAFKA_RESP_ERR_NO_ERROR);
}

static void produce_transfer(rd_kafka_t *p, int i, const char *event_id)
{
    char tid[40], did[40], cid[40], ev[1024];
    snprintf(tid, sizeof(tid), "00000000-0000-4000-8000-%012d", i);
    snprintf(did, sizeof(did), "00000000-0000-4000-8000-1%011d", i % 7);
    snprintf(cid, sizeof(cid), "00000000-0000-4000-8000-2%011d", i);
    snprintf(ev, sizeof(ev),
             "{\"specversion\":\"1.0\",\"id\":\"%s\",\"source\":\"/cofre/core\","
             "\"type\":\"cofre.transfer.posted\",\"data\":{\"transfer\":{\"id\":\"%s\","
             "\"debit_account_id\":\"%s\",\"credit_account_id\":\"%s\",\"amount\":%d,"
             "\"currency\":\"BRL\",\"created_at\":\"2026-11-29T19:43:51Z\"}}}",
             event_id, tid, did, cid, 100 + i);
    produce(p, did, ev);
}

static void sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

static cofre_adapter_consumer_t *start(void)
{
    cofre_adapter_consumer_config_t cfg = {.kafka = {.brokers = bootstrap},
                                           .group = GROUP,
                                           .topic = TOPIC,
                                           .dlq_topic = DLQ,
                                           .db_url = url,
                                           .batch_max = 7,
                                           .session_timeout_ms = 6000,
                                           .stored = stored};
    cofre_adapter_consumer_t *c = cofre_adapter_consumer_start(&cfg);
    assert_non_null(c);
    return c;
}

/* Sum over partitions of the group's committed offsets (-1001 counts as 0). */
static int64_t committed_total(void)
{
    rd_kafka_t *rk = client(RD_KAFKA_CONSUMER, GROUP);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(PARTITIONS);
    for (int p = 0; p < PARTITIONS; p++)
        rd_kafka_topic_partition_list_add(l, TOPIC, p);
    int64_t sum = -1;
    if (rd_kafka_committed(rk, l, 5000) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        sum = 0;
        for (int i = 0; i < l->cnt; i++)
            sum += l->elems[i].offset > 0 ? l->elems[i].offset : 0;
    }
    rd_kafka_topic_partition_list_destroy(l);
    rd_kafka_destroy(rk);
    return sum;
}

static int64_t stored_rows(void)
{
    cofre_adapter_store_t *s = NULL;
    if (cofre_adapter_store_open(url, true, &s) != 0)
        return -1;
    cofre_adapter_store_stats_t st = {0};
    int rc = cofre_adapter_store_stats(s, &st);
    cofre_adapter_store_close(s);
    return rc == 0 ? st.pending + st.sent : -1;
}

static int64_t dlq_unpublished(void)
{
    cofre_adapter_store_t *s = NULL;
    if (cofre_adapter_store_open(url, true, &s) != 0)
        return -1;
    cofre_adapter_store_stats_t st = {0};
    int rc = cofre_adapter_store_stats(s, &st);
    cofre_adapter_store_close(s);
    return rc == 0 ? st.dlq_pending : -1;
}

/* Waits up to 20 s for committed_total() == want; returns the last value seen. */
static int64_t wait_committed(int64_t want)
{
    int64_t got = -1;
    for (int i = 0; i < 200 && (got = committed_total()) != want; i++)
        sleep_ms(100);
    return got;
}

/* Reads the DLQ topic from the start; returns the number of messages, the first in *value. */
static int read_dlq(char *value, size_t cap)
{
    rd_kafka_t *rk = client(RD_KAFKA_CONSUMER, "dlq-reader");
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, DLQ, 0)->offset = RD_KAFKA_OFFSET_BEGINNING;
    rd_kafka_assign(rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    int n = 0;
    for (int i = 0; i < 30; i++) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (m == NULL)
            continue;
        if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
            if (n++ == 0)
                snprintf(value, cap, "%.*s", (int)m->len, (const char *)m->payload);
        }
        rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return n;
}

static void stores_then_commits(void **state)
{
    (void)state;
    rd_kafka_t *p = client(RD_KAFKA_PRODUCER, NULL);
    for (int i = 0; i < 40; i++) {
        char ev[16];
        snprintf(ev, sizeof(ev), "ev-%d", i);
        produce_transfer(p, i, ev);
    }
    produce(p, "acct", "{\"specversion\":\"1.0\",\"id\":\"a\",\"type\":\"cofre.account.created\"}");
    produce(p, "junk", "{not json");
    assert_int_equal(rd_kafka_flush(p, 5000), RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_destroy(p);

    cofre_adapter_consumer_t *c = start();
    int64_t got = wait_committed(42);
    if (got != 42)
        fail_msg("committed %lld of 42 offsets", (long long)got);
    /* Committed only after stored: every transfer is in the store. */
    assert_int_equal(stored_rows(), 40);
    assert_true(atomic_load(&stored_calls) >= 1);
    for (int i = 0; i < 50 && dlq_unpublished() != 0; i++)
        sleep_ms(100);
    assert_int_equal(dlq_unpublished(), 0);
    const char *reason;
    assert_true(cofre_adapter_consumer_ready(c, &reason));
    cofre_adapter_consumer_stop(c);
    assert_int_equal(cofre_series_value(cofre_adapter_metrics.events_stored), 40);
    assert_int_equal(cofre_series_value(cofre_adapter_metrics.events_skipped), 1);
    assert_int_equal(cofre_series_value(cofre_adapter_metrics.events_malformed), 1);
    assert_int_equal(cofre_series_value(cofre_adapter_metrics.dlq_total), 1);

    char value[4096] = "";
    assert_int_equal(read_dlq(value, sizeof(value)), 1);
    assert_non_null(strstr(value, "\"reason\":\"malformed_event\""));
    assert_non_null(strstr(value, "\"original\":\"{not json\""));
}

static void restart_resumes_and_skips_repeats(void **state)
{
    (void)state;
    rd_kafka_t *p = client(RD_KAFKA_PRODUCER, NULL);
    /* Transfers 30..39 again (a relay publishing twice), then 10 new ones. */
    for (int i = 30; i < 50; i++) {
        char ev[16];
        snprintf(ev, sizeof(ev), "ev-again-%d", i);
        produce_transfer(p, i, ev);
    }
    assert_int_equal(rd_kafka_flush(p, 5000), RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_destroy(p);
    cofre_adapter_consumer_t *c = start();
    int64_t got = wait_committed(62);
    if (got != 62)
        fail_msg("committed %lld of 62 offsets", (long long)got);
    cofre_adapter_consumer_stop(c);
    assert_int_equal(stored_rows(), 50);
    /* Only the 20 new messages were read: nothing before the committed offsets. */
    assert_int_equal(cofre_series_value(cofre_adapter_metrics.events_stored), 50);
    assert_int_equal(cofre_series_value(cofre_adapter_metrics.events_duplicate), 10);
    assert_int_equal(cofre_series_value(cofre_adapter_metrics.events_malformed), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(stores_then_commits),
        cmocka_unit_test(restart_resumes_and_skips_repeats),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
