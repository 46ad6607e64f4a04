/*
 * consumer.c: cofre-audit's ingest thread (see consumer.h).
 */
#include "audit/consumer.h"

#include "audit/store.h"
#include "cofre/common.h"
#include "cofre/log.h"
#include "cofre/metrics.h"

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NS_PER_MS        1000000ull
#define NS_PER_S         1000000000ull
#define POLL_FIRST_MS    100
#define BACKOFF_MIN_MS   100u
#define BACKOFF_MAX_MS   5000u
#define PING_INTERVAL_NS NS_PER_S
#define STORE_STALE_NS   (5 * NS_PER_S) /* readiness fails after this long without success */
#define TOPICS_MAX       16

struct cofre_audit_consumer {
    cofre_audit_consumer_config_t cfg;
    pthread_t thread;
    atomic_bool stopping;
    atomic_bool member;               /* in the group, with an assignment (maybe empty) */
    atomic_uint_fast64_t store_ok_ns; /* last time the store answered */

    /* The thread's own. */
    rd_kafka_t *rk;
    cofre_audit_store_t *store;
    rd_kafka_message_t **msgs;
    cofre_audit_record_t *recs;
    int64_t head_seq;
    uint8_t head_hash[COFRE_AUDIT_HASH_LEN];
    int64_t checkpoint_seq; /* the chain's last checkpointed seq */
    uint64_t checkpoint_ns;
    uint64_t next_ping_ns;
    unsigned backoff_ms;
};

static struct {
    pthread_once_t once;
    cofre_metric_t *lag;
    cofre_series_t *stored, *duplicates, *malformed, *chain, *checkpoints, *checkpoint_seq, *member,
        *store_failures;
} metrics = {.once = PTHREAD_ONCE_INIT};

static void register_metrics(void)
{
    cofre_metric_t *events = cofre_metric_counter(
        "cofre_audit_events_total", "Events consumed, by result (stored, duplicate).", "result");
    metrics.stored = cofre_metric_with(events, (const char *[]){"stored"});
    metrics.duplicates = cofre_metric_with(events, (const char *[]){"duplicate"});
    metrics.malformed = cofre_metric_with(
        cofre_metric_counter("cofre_audit_malformed_events_total",
                             "Messages that were not cofre events (stored as rejected).", NULL),
        NULL);
    metrics.chain = cofre_metric_with(
        cofre_metric_gauge("cofre_audit_records", "Records in the audit chain (head seq).", NULL),
        NULL);
    metrics.checkpoints = cofre_metric_with(
        cofre_metric_counter("cofre_audit_checkpoints_total", "Signed checkpoints written.", NULL),
        NULL);
    metrics.checkpoint_seq =
        cofre_metric_with(cofre_metric_gauge("cofre_audit_last_checkpoint_seq",
                                             "Seq of the last signed checkpoint.", NULL),
                          NULL);
    metrics.member = cofre_metric_with(
        cofre_metric_gauge("cofre_audit_group_member",
                           "1 while this process is a member of its consumer group.", NULL),
        NULL);
    metrics.store_failures = cofre_metric_with(
        cofre_metric_counter("cofre_audit_store_failures_total",
                             "Batches the store failed to append (retried).", NULL),
        NULL);
    metrics.lag = cofre_metric_gauge("cofre_audit_consumer_lag",
                                     "Messages between the group's committed offset and the "
                                     "partition end.",
                                     "topic,partition");
}

/* ---- librdkafka callbacks (served by the consumer's poll, on the thread) ------------------- */

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    cofre_audit_consumer_t *c = opaque;
    bool assign = err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS;
    if (assign)
        rd_kafka_assign(rk, parts);
    else
        rd_kafka_assign(rk, NULL);
    atomic_store(&c->member, assign);
    cofre_gauge_set(metrics.member, assign ? 1 : 0);
    COFRE_LOG(COFRE_LOG_INFO, NULL, assign ? "partitions assigned" : "partitions revoked",
              COFRE_LF_STR("group", c->cfg.group), COFRE_LF_INT("partitions", parts->cnt));
}

/* Sets cofre_audit_consumer_lag from librdkafka's statistics (consumer_lag per partition). */
static int on_stats(rd_kafka_t *rk, char *json, size_t len, void *opaque)
{
    (void)rk;
    (void)opaque;
    json_t *root = json_loadb(json, len, 0, NULL);
    const char *topic;
    json_t *t;
    json_object_foreach(json_object_get(root, "topics"), topic, t)
    {
        const char *part;
        json_t *p;
        json_object_foreach(json_object_get(t, "partitions"), part, p)
        {
            if (strcmp(part, "-1") == 0)
                continue;
            json_int_t lag = json_integer_value(json_object_get(p, "consumer_lag"));
            cofre_gauge_set(cofre_metric_with(metrics.lag, (const char *[]){topic, part}),
                            lag > 0 ? (double)lag : 0);
        }
    }
    json_decref(root);
    return 0;
}

static rd_kafka_t *make_consumer(cofre_audit_consumer_t *c)
{
    const cofre_audit_consumer_config_t *cfg = &c->cfg;
    rd_kafka_conf_t *conf = cofre_kafka_conf_new(&cfg->kafka, cfg->client_id);
    cofre_kafka_conf_set(conf, "group.id", cfg->group);
    cofre_kafka_conf_set(conf, "enable.auto.commit", "true");
    cofre_kafka_conf_set(conf, "enable.auto.offset.store", "false");
    cofre_kafka_conf_set(conf, "auto.commit.interval.ms", "1000");
    cofre_kafka_conf_set(conf, "auto.offset.reset", "earliest");
    cofre_kafka_conf_set(conf, "enable.partition.eof", "false");
    char num[32];
    snprintf(num, sizeof(num), "%u", cfg->session_timeout_ms);
    cofre_kafka_conf_set(conf, "session.timeout.ms", num);
    snprintf(num, sizeof(num), "%u", COFRE_MAX(cfg->session_timeout_ms / 5, 500u));
    cofre_kafka_conf_set(conf, "heartbeat.interval.ms", num);
    cofre_kafka_conf_set(conf, "statistics.interval.ms", "1000");
    rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
    rd_kafka_conf_set_stats_cb(conf, on_stats);
    rd_kafka_conf_set_opaque(conf, c);
    char err[512];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
    if (rk == NULL) {
        COFRE_LOG(COFRE_LOG_ERROR, NULL, "consumer not created", COFRE_LF_STR("error", err));
        return NULL;
    }
    cofre_kafka_route_logs(rk);
    rd_kafka_poll_set_consumer(rk);
    return rk;
}

static int subscribe(cofre_audit_consumer_t *c)
{
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(TOPICS_MAX);
    const char *p = c->cfg.topics;
    while (*p != '\0') {
        const char *comma = strchr(p, ',');
        size_t len = comma != NULL ? (size_t)(comma - p) : strlen(p);
        char *topic = cofre_strndup(p, len);
        rd_kafka_topic_partition_list_add(list, topic, RD_KAFKA_PARTITION_UA);
        free(topic);
        p = comma != NULL ? comma + 1 : p + len;
    }
    rd_kafka_resp_err_t err = rd_kafka_subscribe(c->rk, list);
    rd_kafka_topic_partition_list_destroy(list);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
        COFRE_LOG(COFRE_LOG_ERROR, NULL, "subscribe failed",
                  COFRE_LF_STR("error", rd_kafka_err2str(err)));
    return err == RD_KAFKA_RESP_ERR_NO_ERROR ? 0 : COFRE_EIO;
}

/* ---- the store --------------------------------------------------------------------------- */

static void store_succeeded(cofre_audit_consumer_t *c)
{
    atomic_store(&c->store_ok_ns, cofre_now_mono_ns());
    c->backoff_ms = 0;
}

/* Sleeps a growing backoff (bounded), waking early on stop. */
static void backoff(cofre_audit_consumer_t *c)
{
    c->backoff_ms =
        c->backoff_ms == 0 ? BACKOFF_MIN_MS : COFRE_MIN(c->backoff_ms * 2, BACKOFF_MAX_MS);
    for (unsigned slept = 0; slept < c->backoff_ms && !atomic_load(&c->stopping); slept += 50) {
        struct timespec ts = {0, 50 * (long)NS_PER_MS};
        nanosleep(&ts, NULL);
    }
}

/* Opens the store (retrying until it works or stop) and learns the chain's head. */
static bool open_store(cofre_audit_consumer_t *c)
{
    while (!atomic_load(&c->stopping)) {
        int rc = cofre_audit_store_open(c->cfg.db_url, false, &c->store);
        if (rc == 0)
            rc = c->store->ops->head(c->store, &c->head_seq, c->head_hash);
        if (rc == 0) {
            store_succeeded(c);
            cofre_gauge_set(metrics.chain, (double)c->head_seq);
            return true;
        }
        cofre_audit_store_close(c->store);
        c->store = NULL;
        COFRE_LOG(COFRE_LOG_WARN, NULL, "audit store unavailable, retrying",
                  COFRE_LF_STR("error", cofre_strerror(rc)));
        backoff(c);
    }
    return false;
}

/* Signs a checkpoint of record seq (whose chain hash is hash) and stores it; logs it as a copy
 * outside the database. */
static void checkpoint_at(cofre_audit_consumer_t *c, int64_t seq, const uint8_t *hash)
{
    cofre_audit_checkpoint_t cp = {.seq = seq};
    memcpy(cp.hash, hash, COFRE_AUDIT_HASH_LEN);
    cofre_audit_checkpoint_sign(c->cfg.keys, &cp);
    int rc = c->store->ops->checkpoint_add(c->store, &cp);
    if (rc != 0)
        return; /* logged by the store; tried again next round */
    c->checkpoint_seq = cp.seq;
    c->checkpoint_ns = cofre_now_mono_ns();
    cofre_counter_inc(metrics.checkpoints);
    cofre_gauge_set(metrics.checkpoint_seq, (double)cp.seq);
    char hash_hex[2 * COFRE_AUDIT_HASH_LEN + 1], sig[2 * COFRE_AUDIT_SIG_LEN + 1];
    char kid[COFRE_AUDIT_KID_LEN + 1];
    cofre_hex_encode(cp.hash, COFRE_AUDIT_HASH_LEN, hash_hex);
    cofre_hex_encode(cp.signature, COFRE_AUDIT_SIG_LEN, sig);
    cofre_audit_keys_kid(cp.public_key, kid);
    COFRE_LOG(COFRE_LOG_INFO, NULL, "audit checkpoint", COFRE_LF_INT("seq", cp.seq),
              COFRE_LF_STR("hash", hash_hex), COFRE_LF_STR("created_at", cp.created_at),
              COFRE_LF_STR("kid", kid), COFRE_LF_STR("signature", sig));
}

static void checkpoint(cofre_audit_consumer_t *c)
{
    checkpoint_at(c, c->head_seq, c->head_hash);
}

/* After an append: a checkpoint at every record that completes N since the last one, so a
 * large batch still gets one per N records. */
static void checkpoint_batch(cofre_audit_consumer_t *c, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const cofre_audit_record_t *r = &c->recs[i];
        if (r->seq > 0 && r->seq - c->checkpoint_seq >= (int64_t)c->cfg.checkpoint_records)
            checkpoint_at(c, r->seq, r->hash);
    }
}

static void maybe_checkpoint(cofre_audit_consumer_t *c, uint64_t now)
{
    if (c->head_seq <= c->checkpoint_seq)
        return;
    bool by_count = c->head_seq - c->checkpoint_seq >= (int64_t)c->cfg.checkpoint_records;
    bool by_time = now - c->checkpoint_ns >= (uint64_t)c->cfg.checkpoint_interval_s * NS_PER_S;
    if (by_count || by_time)
        checkpoint(c);
}

/* At start: the head gets a checkpoint now unless it has one (a crash may have left it). */
static void checkpoint_head_at_start(cofre_audit_consumer_t *c)
{
    c->checkpoint_ns = cofre_now_mono_ns();
    if (c->head_seq == 0)
        return;
    cofre_audit_checkpoint_t cp;
    size_t n = 0;
    if (c->store->ops->checkpoints(c->store, c->head_seq - 1, 1, &cp, &n) == 0 && n == 1 &&
        cp.seq == c->head_seq) {
        c->checkpoint_seq = c->head_seq;
        return;
    }
    checkpoint(c);
}

/* ---- a batch ----------------------------------------------------------------------------- */

/* Polls up to batch_max messages: waits for the first, takes what else is there. */
static size_t poll_batch(cofre_audit_consumer_t *c)
{
    size_t n = 0;
    while (n < c->cfg.batch_max) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c->rk, n == 0 ? POLL_FIRST_MS : 0);
        if (m == NULL)
            break;
        if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
            COFRE_LOG(COFRE_LOG_WARN, NULL, "consumer error",
                      COFRE_LF_STR("error", rd_kafka_err2name(m->err)),
                      COFRE_LF_STR("detail", rd_kafka_message_errstr(m)));
            rd_kafka_message_destroy(m);
            continue;
        }
        c->msgs[n++] = m;
    }
    return n;
}

static void to_records(cofre_audit_consumer_t *c, size_t n)
{
    char now[COFRE_TIME_LEN + 1];
    cofre_time_format(cofre_now_wall_us(), now);
    for (size_t i = 0; i < n; i++) {
        const rd_kafka_message_t *m = c->msgs[i];
        cofre_audit_origin_t o = {
            .topic = rd_kafka_topic_name(m->rkt),
            .partition = m->partition,
            .offset = m->offset,
            .recorded_at = now,
        };
        if (!cofre_audit_record_from_event(m->payload, m->len, &o, &c->recs[i])) {
            cofre_counter_inc(metrics.malformed);
            COFRE_LOG(COFRE_LOG_WARN, NULL, "malformed event stored as rejected",
                      COFRE_LF_STR("topic", o.topic), COFRE_LF_INT("partition", o.partition),
                      COFRE_LF_INT("offset", o.offset),
                      COFRE_LF_STR("reason", c->recs[i].f[COFRE_AUDIT_F_REASON]));
        }
    }
}

/* Appends the batch, retrying until it is stored or stop. Returns true when stored. */
static bool append(cofre_audit_consumer_t *c, size_t n)
{
    for (;;) {
        int rc = c->store->ops->append(c->store, c->recs, n, &c->head_seq, c->head_hash);
        if (rc == 0) {
            store_succeeded(c);
            return true;
        }
        cofre_counter_inc(metrics.store_failures);
        if (atomic_load(&c->stopping))
            return false;
        backoff(c);
    }
}

/* Marks the batch consumed: its offsets are committed at the next auto-commit. */
static void store_offsets(cofre_audit_consumer_t *c, size_t n)
{
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new((int)n);
    for (size_t i = 0; i < n; i++) {
        const rd_kafka_message_t *m = c->msgs[i];
        const char *topic = rd_kafka_topic_name(m->rkt);
        rd_kafka_topic_partition_t *p =
            rd_kafka_topic_partition_list_find(list, topic, m->partition);
        if (p == NULL)
            p = rd_kafka_topic_partition_list_add(list, topic, m->partition);
        p->offset = m->offset + 1;
    }
    rd_kafka_resp_err_t err = rd_kafka_offsets_store(c->rk, list);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
        COFRE_LOG(COFRE_LOG_WARN, NULL, "offsets not stored (partitions moved: redelivery)",
                  COFRE_LF_STR("error", rd_kafka_err2name(err)));
    rd_kafka_topic_partition_list_destroy(list);
}

static void count_results(cofre_audit_consumer_t *c, size_t n)
{
    uint64_t stored = 0;
    for (size_t i = 0; i < n; i++)
        stored += c->recs[i].seq > 0;
    cofre_counter_add(metrics.stored, stored);
    cofre_counter_add(metrics.duplicates, n - stored);
    cofre_gauge_set(metrics.chain, (double)c->head_seq);
}

static void consume_batch(cofre_audit_consumer_t *c)
{
    size_t n = poll_batch(c);
    if (n == 0)
        return;
    to_records(c, n);
    if (append(c, n)) {
        store_offsets(c, n);
        count_results(c, n);
        checkpoint_batch(c, n);
    }
    for (size_t i = 0; i < n; i++) {
        cofre_audit_record_release(&c->recs[i]);
        rd_kafka_message_destroy(c->msgs[i]);
    }
}

/* Without a batch to store, the store is pinged now and then for readiness. */
static void ping_store(cofre_audit_consumer_t *c, uint64_t now)
{
    if (now < c->next_ping_ns)
        return;
    c->next_ping_ns = now + PING_INTERVAL_NS;
    if (c->store->ops->ping(c->store))
        store_succeeded(c);
}

static void *consumer_main(void *arg)
{
    cofre_audit_consumer_t *c = arg;
    if (!open_store(c))
        return NULL;
    checkpoint_head_at_start(c);
    while (!atomic_load(&c->stopping)) {
        if (c->rk != NULL)
            consume_batch(c);
        else {
            struct timespec ts = {0, POLL_FIRST_MS * (long)NS_PER_MS};
            nanosleep(&ts, NULL);
        }
        uint64_t now = cofre_now_mono_ns();
        ping_store(c, now);
        maybe_checkpoint(c, now);
    }
    if (c->head_seq > c->checkpoint_seq)
        checkpoint(c); /* the tail gets its checkpoint before exit */
    return NULL;
}

/* ---- public ------------------------------------------------------------------------------ */

cofre_audit_consumer_t *cofre_audit_consumer_start(const cofre_audit_consumer_config_t *cfg)
{
    COFRE_ASSERT(cfg->keys != NULL && cfg->keys->can_sign);
    COFRE_ASSERT(cfg->batch_max >= 1 && cfg->checkpoint_records >= 1);
    pthread_once(&metrics.once, register_metrics);
    cofre_audit_consumer_t *c = cofre_calloc(1, sizeof(*c));
    c->cfg = *cfg;
    c->msgs = cofre_calloc(cfg->batch_max, sizeof(*c->msgs));
    c->recs = cofre_calloc(cfg->batch_max, sizeof(*c->recs));
    if (cfg->kafka.brokers[0] != '\0') {
        c->rk = make_consumer(c);
        if (c->rk == NULL || subscribe(c) != 0) {
            if (c->rk != NULL)
                rd_kafka_destroy(c->rk);
            free(c->msgs);
            free(c->recs);
            free(c);
            return NULL;
        }
    }
    int rc = pthread_create(&c->thread, NULL, consumer_main, c);
    COFRE_ASSERT(rc == 0);
    return c;
}

bool cofre_audit_consumer_ready(cofre_audit_consumer_t *c, const char **reason)
{
    uint64_t ok_ns = atomic_load(&c->store_ok_ns);
    if (ok_ns == 0 || cofre_now_mono_ns() - ok_ns > STORE_STALE_NS) {
        *reason = "audit store unavailable";
        return false;
    }
    if (c->rk != NULL && !atomic_load(&c->member)) {
        *reason = "not a member of the consumer group";
        return false;
    }
    return true;
}

void cofre_audit_consumer_stop(cofre_audit_consumer_t *c)
{
    atomic_store(&c->stopping, true);
    pthread_join(c->thread, NULL);
    if (c->rk != NULL) {
        rd_kafka_resp_err_t err = rd_kafka_consumer_close(c->rk); /* commits, leaves the group */
        if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
            COFRE_LOG(COFRE_LOG_WARN, NULL, "consumer close",
                      COFRE_LF_STR("error", rd_kafka_err2name(err)));
        rd_kafka_destroy(c->rk);
    }
    cofre_audit_store_close(c->store);
    free(c->msgs);
    free(c->recs);
    free(c);
}
