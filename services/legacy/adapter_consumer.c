/*
 * adapter_consumer.c: read, store, then commit; publish dead letters (see adapter_consumer.h).
 *
 * One thread owns both Kafka handles and the store connection. Each turn of its loop takes up
 * to batch_max messages (waiting at most POLL_MS for the first), turns them into deliveries
 * and dead letters, stores them in one transaction (retrying with backoff while the store
 * fails: nothing is committed meanwhile), commits the offsets past them, then serves the dead
 * letter outbox and, once a second, the gauges. Rebalances happen inside the poll, when every
 * message read so far is durable and (unless a commit failed) committed.
 *
 * Shared stores: an assigned partition is paused until the engine holds its lease, and resumed
 * at the next turn after that; a batch whose partitions the store refused stores the rest,
 * rewinds each refused partition to its first message of the batch and pauses it for at least
 * REFUSED_PAUSE_NS (its lease is being settled).
 */
#include "legacy/adapter_consumer.h"

#include "cofre/common.h"
#include "cofre/jbuf.h"
#include "cofre/log.h"
#include "legacy/adapter_event.h"
#include "legacy/adapter_metrics.h"
#include "legacy/adapter_store.h"

#include <librdkafka/rdkafka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define POLL_MS          100
#define DLQ_BATCH        256
#define DLQ_CHECK_NS     (1000 * 1000000ull)
#define GAUGES_NS        (1000 * 1000000ull)
#define STORE_RETRY_MIN  50
#define STORE_RETRY_MAX  2000
#define PROBE_NS         (5000 * 1000000ull)
#define FLUSH_TIMEOUT_MS 5000
#define PRUNE_NS         (60 * 1000000000ull)
#define PRUNE_MAX        4096
#define DETAIL_CAP       (COFRE_ADAPTER_DETAIL_MAX + 1)
#define REFUSED_PAUSE_NS (1000 * 1000000ull)
#define SEEK_TIMEOUT_MS  5000

typedef struct partition {
    bool assigned;
    bool paused;            /* shared stores: waiting for the lease */
    bool refused;           /* the store refused it in the current batch */
    uint64_t resume_at_ns;  /* not resumed before this */
    int64_t durable_next;   /* offset after the last message stored; -1 none */
    int64_t committed_next; /* what the group has committed; -1 unknown */
    cofre_series_t *lag;
} partition_t;

/* One batch being turned into rows. */
typedef struct batch {
    cofre_adapter_transfer_t *transfers;
    size_t ntransfers;
    cofre_adapter_dead_t *dead;
    cofre_jbuf_t *dead_bufs; /* payloads of dead */
    char (*dead_keys)[2][COFRE_ADAPTER_KEY_MAX + 1];
    size_t ndead;
    size_t skipped;
} batch_t;

struct cofre_adapter_consumer {
    cofre_adapter_consumer_config_t cfg;
    cofre_adapter_store_t *store;
    rd_kafka_t *rk;  /* consumer */
    rd_kafka_t *prk; /* dead-letter producer */
    pthread_t thread;
    atomic_bool stop;
    atomic_bool kick;
    atomic_bool store_ok;
    atomic_bool brokers_ok;
    partition_t parts[COFRE_ADAPTER_PARTITIONS_MAX];
    batch_t batch;
    rd_kafka_message_t **msgs;
    /* dead-letter outbox */
    size_t dlq_in_flight;
    int64_t dlq_acked[DLQ_BATCH];
    size_t ndlq_acked;
    uint64_t dlq_next_check_ns;
    uint64_t gauges_next_ns;
    uint64_t probe_next_ns;
    uint64_t prune_next_ns;
    int64_t prune_seq; /* where the retention scan goes on */
    int32_t *refused;  /* batch_max entries: partitions the store refused */
    size_t nrefused;
};

static void set_store_ok(cofre_adapter_consumer_t *c, bool ok)
{
    atomic_store(&c->store_ok, ok);
    cofre_gauge_set(cofre_adapter_metrics.store_up, ok ? 1 : 0);
}

/* ---- Kafka callbacks --------------------------------------------------------------------- */

static partition_t *part_of(cofre_adapter_consumer_t *c, int32_t p)
{
    return p >= 0 && p < COFRE_ADAPTER_PARTITIONS_MAX ? &c->parts[p] : NULL;
}

static void commit_pending(cofre_adapter_consumer_t *c);

/* Pauses the partitions of list whose lease this process does not hold yet. */
static void pause_unleased(cofre_adapter_consumer_t *c, const rd_kafka_topic_partition_list_t *list)
{
    rd_kafka_topic_partition_list_t *pause = rd_kafka_topic_partition_list_new(list->cnt);
    for (int i = 0; i < list->cnt; i++) {
        int32_t id = list->elems[i].partition;
        partition_t *p = part_of(c, id);
        if (p == NULL || cofre_adapter_leases_held(c->cfg.leases, id))
            continue;
        p->paused = true;
        p->resume_at_ns = 0;
        rd_kafka_topic_partition_list_add(pause, c->cfg.topic, id);
    }
    if (pause->cnt > 0)
        rd_kafka_pause_partitions(c->rk, pause);
    rd_kafka_topic_partition_list_destroy(pause);
}

/* Resumes the paused partitions whose lease is now held. */
static void resume_leased(cofre_adapter_consumer_t *c, uint64_t now)
{
    rd_kafka_topic_partition_list_t *resume = NULL;
    for (int32_t i = 0; i < COFRE_ADAPTER_PARTITIONS_MAX; i++) {
        partition_t *p = &c->parts[i];
        if (!p->assigned || !p->paused || now < p->resume_at_ns ||
            !cofre_adapter_leases_held(c->cfg.leases, i))
            continue;
        if (resume == NULL)
            resume = rd_kafka_topic_partition_list_new(4);
        rd_kafka_topic_partition_list_add(resume, c->cfg.topic, i);
        p->paused = false;
    }
    if (resume == NULL)
        return;
    rd_kafka_resume_partitions(c->rk, resume);
    COFRE_LOG(COFRE_LOG_INFO, NULL, "leased partitions resumed",
              COFRE_LF_INT("count", resume->cnt));
    rd_kafka_topic_partition_list_destroy(resume);
}

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *list, void *opaque)
{
    cofre_adapter_consumer_t *c = opaque;
    COFRE_ASSERT(c != NULL && list != NULL); /* our opaque; librdkafka always passes a list */
    bool assign = err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS;
    if (!assign)
        commit_pending(c);
    for (int i = 0; i < list->cnt; i++) {
        int32_t id = list->elems[i].partition;
        partition_t *p = part_of(c, id);
        if (p == NULL)
            continue;
        p->assigned = assign;
        p->paused = false;
        p->durable_next = -1;
        p->committed_next = -1;
        if (p->lag != NULL)
            cofre_gauge_set(p->lag, 0);
        if (c->cfg.leases != NULL)
            cofre_adapter_leases_assign(c->cfg.leases, id, assign);
    }
    COFRE_LOG(COFRE_LOG_INFO, NULL, assign ? "partitions assigned" : "partitions revoked",
              COFRE_LF_STR("topic", c->cfg.topic), COFRE_LF_INT("count", list->cnt));
    rd_kafka_assign(rk, assign ? list : NULL);
    if (assign && c->cfg.leases != NULL)
        pause_unleased(c, list);
    if (c->cfg.leases != NULL && c->cfg.stored != NULL)
        c->cfg.stored(c->cfg.stored_data); /* the engine's lease round is due */
}

/* Delivery report of a dead letter: its opaque is the row's seq. */
static void dr_msg_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    cofre_adapter_consumer_t *c = opaque;
    COFRE_ASSERT(c->dlq_in_flight > 0);
    c->dlq_in_flight--;
    if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        COFRE_LOG(COFRE_LOG_WARN, NULL, "dead letter not acknowledged; will retry",
                  COFRE_LF_STR("error", rd_kafka_err2str(m->err)));
        return;
    }
    if (c->ndlq_acked < DLQ_BATCH)
        c->dlq_acked[c->ndlq_acked++] = (int64_t)(intptr_t)m->_private;
}

/* ---- set-up ------------------------------------------------------------------------------ */

static rd_kafka_t *new_client(cofre_adapter_consumer_t *c, rd_kafka_type_t type,
                              rd_kafka_conf_t *conf)
{
    rd_kafka_conf_set_opaque(conf, c);
    char err[512];
    rd_kafka_t *rk = rd_kafka_new(type, conf, err, sizeof(err));
    if (rk == NULL) {
        COFRE_LOG(COFRE_LOG_ERROR, NULL, "kafka client failed", COFRE_LF_STR("error", err));
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    cofre_kafka_route_logs(rk);
    return rk;
}

static rd_kafka_t *new_consumer(cofre_adapter_consumer_t *c)
{
    rd_kafka_conf_t *conf = cofre_kafka_conf_new(&c->cfg.kafka, "cofre-legacy");
    char session[16];
    snprintf(session, sizeof(session), "%u", c->cfg.session_timeout_ms);
    cofre_kafka_conf_set(conf, "group.id", c->cfg.group);
    cofre_kafka_conf_set(conf, "enable.auto.commit", "false");
    cofre_kafka_conf_set(conf, "enable.auto.offset.store", "false");
    cofre_kafka_conf_set(conf, "auto.offset.reset", "earliest");
    cofre_kafka_conf_set(conf, "session.timeout.ms", session);
    cofre_kafka_conf_set(conf, "heartbeat.interval.ms", "1000");
    rd_kafka_conf_set_rebalance_cb(conf, rebalance_cb);
    rd_kafka_t *rk = new_client(c, RD_KAFKA_CONSUMER, conf);
    if (rk != NULL)
        rd_kafka_poll_set_consumer(rk);
    return rk;
}

static rd_kafka_t *new_producer(cofre_adapter_consumer_t *c)
{
    rd_kafka_conf_t *conf = cofre_kafka_conf_new(&c->cfg.kafka, "cofre-legacy-dlq");
    cofre_kafka_conf_set(conf, "enable.idempotence", "true");
    cofre_kafka_conf_set(conf, "acks", "all");
    cofre_kafka_conf_set(conf, "linger.ms", "5");
    cofre_kafka_conf_set(conf, "message.timeout.ms", "30000");
    rd_kafka_conf_set_dr_msg_cb(conf, dr_msg_cb);
    return new_client(c, RD_KAFKA_PRODUCER, conf);
}

static int subscribe(cofre_adapter_consumer_t *c)
{
    rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(topics, c->cfg.topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t err = rd_kafka_subscribe(c->rk, topics);
    rd_kafka_topic_partition_list_destroy(topics);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR)
        return 0;
    COFRE_LOG(COFRE_LOG_ERROR, NULL, "kafka subscribe failed",
              COFRE_LF_STR("error", rd_kafka_err2str(err)));
    return COFRE_EIO;
}

/* ---- one batch --------------------------------------------------------------------------- */

static void header_traceparent(const rd_kafka_message_t *m, char *out, size_t cap)
{
    rd_kafka_headers_t *hdrs = NULL;
    const void *v = NULL;
    size_t len = 0;
    out[0] = '\0';
    if (rd_kafka_message_headers(m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR &&
        rd_kafka_header_get_last(hdrs, "traceparent", &v, &len) == RD_KAFKA_RESP_ERR_NO_ERROR &&
        v != NULL && len < cap) {
        memcpy(out, v, len);
        out[len] = '\0';
    }
}

static void add_dead(cofre_adapter_consumer_t *c, const rd_kafka_message_t *m,
                     const cofre_adapter_transfer_t *t, const char *detail)
{
    batch_t *b = &c->batch;
    size_t i = b->ndead++;
    char(*keys)[COFRE_ADAPTER_KEY_MAX + 1] = b->dead_keys[i];
    if (t->transfer_id[0] != '\0')
        snprintf(keys[0], sizeof(keys[0]), "transfer:%s", t->transfer_id);
    else
        snprintf(keys[0], sizeof(keys[0]), "kafka:%s:%d:%lld", c->cfg.topic, (int)m->partition,
                 (long long)m->offset);
    snprintf(keys[1], sizeof(keys[1]), "%s",
             t->transfer_id[0] != '\0' ? t->transfer_id
                                       : (t->event_id[0] != '\0' ? t->event_id : keys[0]));
    cofre_adapter_dlq_source_t src = {.topic = c->cfg.topic,
                                      .partition = m->partition,
                                      .offset = m->offset,
                                      .raw = m->payload,
                                      .raw_len = m->len};
    cofre_jbuf_t *buf = &b->dead_bufs[i];
    cofre_jbuf_reset(buf);
    cofre_adapter_dlq_message(buf, COFRE_ADAPTER_DLQ_MALFORMED, detail, NULL, 0, t, &src,
                              cofre_now_wall_us());
    b->dead[i] = (cofre_adapter_dead_t){.source_key = keys[0],
                                        .message_key = keys[1],
                                        .reason = COFRE_ADAPTER_DLQ_MALFORMED,
                                        .payload = buf->data,
                                        .payload_len = buf->len};
    COFRE_LOG(COFRE_LOG_WARN, NULL, "malformed event dead-lettered",
              COFRE_LF_INT("partition", m->partition), COFRE_LF_INT("offset", m->offset),
              COFRE_LF_STR("detail", detail));
}

/* Sorts one message into the batch and records its offset. */
static void take_message(cofre_adapter_consumer_t *c, const rd_kafka_message_t *m)
{
    batch_t *b = &c->batch;
    char tp[COFRE_TRACEPARENT_LEN + 1], detail[DETAIL_CAP];
    header_traceparent(m, tp, sizeof(tp));
    cofre_adapter_transfer_t *t = &b->transfers[b->ntransfers];
    switch (cofre_adapter_event_parse(m->payload, m->len, tp, t, detail, sizeof(detail))) {
    case COFRE_ADAPTER_EVENT_TRANSFER:
        t->partition = m->partition;
        t->offset = m->offset;
        b->ntransfers++;
        break;
    case COFRE_ADAPTER_EVENT_OTHER:
        b->skipped++;
        break;
    case COFRE_ADAPTER_EVENT_MALFORMED:
        add_dead(c, m, t, detail);
        break;
    }
}

/* After the batch is durable: its offsets may be committed (not those of refused partitions). */
static void advance_offsets(cofre_adapter_consumer_t *c, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        partition_t *p = part_of(c, c->msgs[i]->partition);
        if (p != NULL && !p->refused)
            p->durable_next = COFRE_MAX(p->durable_next, c->msgs[i]->offset + 1);
    }
}

/* The store refused some partitions of the batch (their leases are not ours): each is
 * rewound to its first message of the batch and paused until its lease is held again. */
static void rewind_refused(cofre_adapter_consumer_t *c, size_t n, uint64_t now)
{
    for (size_t i = 0; i < c->nrefused; i++) {
        partition_t *p = part_of(c, c->refused[i]);
        if (p != NULL)
            p->refused = true;
    }
    bool rewound[COFRE_ADAPTER_PARTITIONS_MAX] = {false};
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(4);
    for (size_t i = 0; i < n; i++) {
        partition_t *p = part_of(c, c->msgs[i]->partition);
        if (p == NULL || !p->refused || rewound[c->msgs[i]->partition])
            continue;
        /* The batch is in order: this is the partition's first message in it. */
        rewound[c->msgs[i]->partition] = true;
        p->paused = true;
        p->resume_at_ns = now + REFUSED_PAUSE_NS;
        rd_kafka_topic_partition_list_add(list, c->cfg.topic, c->msgs[i]->partition)->offset =
            c->msgs[i]->offset;
    }
    rd_kafka_pause_partitions(c->rk, list);
    rd_kafka_error_t *err = rd_kafka_seek_partitions(c->rk, list, SEEK_TIMEOUT_MS);
    if (err != NULL) {
        COFRE_LOG(COFRE_LOG_ERROR, NULL, "kafka seek failed",
                  COFRE_LF_STR("error", rd_kafka_error_string(err)));
        rd_kafka_error_destroy(err);
    }
    COFRE_LOG(COFRE_LOG_INFO, NULL, "partitions not leased here: rewound and paused",
              COFRE_LF_INT("count", list->cnt));
    rd_kafka_topic_partition_list_destroy(list);
    cofre_adapter_leases_recheck(c->cfg.leases);
    if (c->cfg.stored != NULL)
        c->cfg.stored(c->cfg.stored_data);
}

static void clear_refused(cofre_adapter_consumer_t *c)
{
    for (size_t i = 0; i < c->nrefused; i++) {
        partition_t *p = part_of(c, c->refused[i]);
        if (p != NULL)
            p->refused = false;
    }
    c->nrefused = 0;
}

/* Up to batch_max messages: waits POLL_MS for the first, takes the rest without waiting. */
static size_t poll_batch(cofre_adapter_consumer_t *c)
{
    size_t n = 0;
    int wait = POLL_MS;
    while (n < c->cfg.batch_max) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c->rk, wait);
        if (m == NULL)
            break;
        wait = 0;
        if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
            if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                COFRE_LOG(COFRE_LOG_WARN, NULL, "kafka consume error",
                          COFRE_LF_STR("error", rd_kafka_message_errstr(m)));
            rd_kafka_message_destroy(m);
            continue;
        }
        atomic_store(&c->brokers_ok, true);
        c->msgs[n++] = m;
    }
    return n;
}

static void sleep_ms(uint64_t ms)
{
    struct timespec ts = {.tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* Transfers of the batch whose partitions the store refused (neither stored nor duplicates). */
static size_t refused_count(const cofre_adapter_consumer_t *c)
{
    size_t n = 0;
    for (size_t i = 0; c->nrefused > 0 && i < c->batch.ntransfers; i++) {
        for (size_t j = 0; j < c->nrefused; j++) {
            if (c->refused[j] == c->batch.transfers[i].partition) {
                n++;
                break;
            }
        }
    }
    return n;
}

/* Stores the batch, retrying while the store fails. False when stopped before it stored. */
static bool store_batch(cofre_adapter_consumer_t *c)
{
    batch_t *b = &c->batch;
    uint64_t wait = STORE_RETRY_MIN;
    for (;;) {
        size_t inserted = 0;
        int rc = cofre_adapter_store_enqueue_owned(c->store, b->transfers, b->ntransfers, b->dead,
                                                   b->ndead, &inserted, c->refused, &c->nrefused);
        if (rc == 0) {
            set_store_ok(c, true);
            cofre_counter_add(cofre_adapter_metrics.events_stored, inserted);
            size_t refused = refused_count(c);
            cofre_counter_add(cofre_adapter_metrics.events_duplicate,
                              b->ntransfers - inserted -
                                  COFRE_MIN(refused, b->ntransfers - inserted));
            cofre_counter_add(cofre_adapter_metrics.events_skipped, b->skipped);
            cofre_counter_add(cofre_adapter_metrics.events_malformed, b->ndead);
            if (inserted > 0 && c->cfg.stored != NULL)
                c->cfg.stored(c->cfg.stored_data);
            if (b->ndead > 0)
                atomic_store(&c->kick, true);
            return true;
        }
        set_store_ok(c, false);
        if (atomic_load(&c->stop))
            return false;
        sleep_ms(wait);
        wait = COFRE_MIN(wait * 2, (uint64_t)STORE_RETRY_MAX);
    }
}

/* Commits every partition whose durable offset is ahead of the committed one. */
static void commit_pending(cofre_adapter_consumer_t *c)
{
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(4);
    for (int32_t i = 0; i < COFRE_ADAPTER_PARTITIONS_MAX; i++) {
        partition_t *p = &c->parts[i];
        if (p->assigned && p->durable_next > p->committed_next)
            rd_kafka_topic_partition_list_add(list, c->cfg.topic, i)->offset = p->durable_next;
    }
    if (list->cnt > 0) {
        rd_kafka_resp_err_t err = rd_kafka_commit(c->rk, list, 0);
        if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
            for (int i = 0; i < list->cnt; i++)
                c->parts[list->elems[i].partition].committed_next = list->elems[i].offset;
            cofre_counter_inc(cofre_adapter_metrics.commits_ok);
        } else {
            cofre_counter_inc(cofre_adapter_metrics.commits_failed);
            COFRE_LOG(COFRE_LOG_WARN, NULL, "offset commit failed; will retry",
                      COFRE_LF_STR("error", rd_kafka_err2str(err)));
        }
    }
    rd_kafka_topic_partition_list_destroy(list);
}

static void release_batch(cofre_adapter_consumer_t *c, size_t n)
{
    for (size_t i = 0; i < n; i++)
        rd_kafka_message_destroy(c->msgs[i]);
    c->batch.ntransfers = 0;
    c->batch.ndead = 0;
    c->batch.skipped = 0;
}

/* One turn: poll, store, commit. False when stopping with a batch that was not stored. */
static bool consume_once(cofre_adapter_consumer_t *c)
{
    if (c->cfg.leases != NULL)
        resume_leased(c, cofre_now_mono_ns());
    size_t n = poll_batch(c);
    for (size_t i = 0; i < n; i++)
        take_message(c, c->msgs[i]);
    bool stored = n == 0 || store_batch(c);
    if (stored && c->nrefused > 0)
        rewind_refused(c, n, cofre_now_mono_ns());
    if (stored)
        advance_offsets(c, n);
    clear_refused(c);
    release_batch(c, n);
    if (!stored)
        return false;
    commit_pending(c);
    return true;
}

/* ---- dead letters ------------------------------------------------------------------------ */

static void dlq_mark_acked(cofre_adapter_consumer_t *c)
{
    if (c->ndlq_acked == 0)
        return;
    if (cofre_adapter_store_dlq_mark(c->store, c->dlq_acked, c->ndlq_acked, cofre_now_wall_us()) !=
        0) {
        set_store_ok(c, false);
        return; /* published again later: consumers of the DLQ drop duplicates by event id */
    }
    cofre_counter_add(cofre_adapter_metrics.dlq_total, c->ndlq_acked);
    c->ndlq_acked = 0;
}

/* Produces the unpublished dead letters, one round at a time. */
static void dlq_publish(cofre_adapter_consumer_t *c, uint64_t now)
{
    rd_kafka_poll(c->prk, 0);
    dlq_mark_acked(c);
    bool kicked = atomic_exchange(&c->kick, false);
    if (c->dlq_in_flight > 0 || c->ndlq_acked > 0 || (!kicked && now < c->dlq_next_check_ns))
        return;
    c->dlq_next_check_ns = now + DLQ_CHECK_NS;
    cofre_adapter_dlq_row_t rows[DLQ_BATCH];
    size_t n = 0;
    if (cofre_adapter_store_dlq_fetch(c->store, DLQ_BATCH, rows, &n) != 0) {
        set_store_ok(c, false);
        return;
    }
    set_store_ok(c, true); /* an idle consumer stores nothing that would say so */
    for (size_t i = 0; i < n; i++) {
        rd_kafka_resp_err_t err =
            rd_kafka_producev(c->prk, RD_KAFKA_V_TOPIC(c->cfg.dlq_topic),
                              RD_KAFKA_V_KEY(rows[i].message_key, strlen(rows[i].message_key)),
                              RD_KAFKA_V_VALUE(rows[i].payload, rows[i].payload_len),
                              RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                              RD_KAFKA_V_OPAQUE((void *)(intptr_t)rows[i].seq), RD_KAFKA_V_END);
        if (err == RD_KAFKA_RESP_ERR_NO_ERROR)
            c->dlq_in_flight++;
        else
            COFRE_LOG(COFRE_LOG_WARN, NULL, "dead letter not produced; will retry",
                      COFRE_LF_STR("error", rd_kafka_err2str(err)));
        cofre_adapter_dlq_row_release(&rows[i]);
    }
}

/* ---- gauges ------------------------------------------------------------------------------ */

static void update_lag(cofre_adapter_consumer_t *c)
{
    for (int32_t i = 0; i < COFRE_ADAPTER_PARTITIONS_MAX; i++) {
        partition_t *p = &c->parts[i];
        if (!p->assigned)
            continue;
        int64_t lo = -1, hi = -1;
        if (rd_kafka_get_watermark_offsets(c->rk, c->cfg.topic, i, &lo, &hi) !=
                RD_KAFKA_RESP_ERR_NO_ERROR ||
            hi < 0)
            continue;
        if (p->lag == NULL) {
            char part[16];
            snprintf(part, sizeof(part), "%d", (int)i);
            p->lag = cofre_metric_with(cofre_adapter_metrics.consumer_lag,
                                       (const char *[]){c->cfg.topic, part});
        }
        int64_t base = p->committed_next >= 0 ? p->committed_next : COFRE_MAX(lo, 0);
        cofre_gauge_set(p->lag, (double)COFRE_MAX(hi - base, 0));
    }
}

static void update_gauges(cofre_adapter_consumer_t *c, uint64_t now)
{
    if (now < c->gauges_next_ns)
        return;
    c->gauges_next_ns = now + GAUGES_NS;
    update_lag(c);
    cofre_adapter_store_stats_t st = {0};
    if (cofre_adapter_store_stats(c->store, &st) == 0) {
        cofre_gauge_set(cofre_adapter_metrics.backlog, (double)(st.pending + st.sent));
        cofre_gauge_set(cofre_adapter_metrics.dlq_pending, (double)st.dlq_pending);
    }
}

/* Every PROBE_NS, a metadata request (at most 500 ms) says whether the brokers answer. */
static void probe_brokers(cofre_adapter_consumer_t *c, uint64_t now)
{
    if (now < c->probe_next_ns)
        return;
    c->probe_next_ns = now + PROBE_NS;
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t err = rd_kafka_metadata(c->rk, 0, NULL, &md, 500);
    atomic_store(&c->brokers_ok, err == RD_KAFKA_RESP_ERR_NO_ERROR);
    if (md != NULL)
        rd_kafka_metadata_destroy(md);
}

/* Retention: one bounded pass a minute (a backlog of old rows goes in several passes). */
static void prune(cofre_adapter_consumer_t *c, uint64_t now)
{
    if (c->cfg.retention_h == 0 || now < c->prune_next_ns)
        return;
    c->prune_next_ns = now + PRUNE_NS;
    uint64_t keep_us = (uint64_t)c->cfg.retention_h * 3600u * 1000000u;
    uint64_t wall = cofre_now_wall_us();
    if (wall <= keep_us)
        return;
    size_t deleted = 0;
    if (cofre_adapter_store_prune(c->store, c->prune_seq, wall - keep_us, PRUNE_MAX, &c->prune_seq,
                                  &deleted) != 0)
        return;
    if (deleted > 0)
        COFRE_LOG(COFRE_LOG_INFO, NULL, "old deliveries deleted",
                  COFRE_LF_INT("deleted", (int64_t)deleted),
                  COFRE_LF_INT("retention_h", c->cfg.retention_h));
}

/* ---- the thread -------------------------------------------------------------------------- */

static void *consumer_main(void *arg)
{
    cofre_adapter_consumer_t *c = arg;
    while (!atomic_load(&c->stop)) {
        if (!consume_once(c))
            break;
        uint64_t now = cofre_now_mono_ns();
        dlq_publish(c, now);
        update_gauges(c, now);
        probe_brokers(c, now);
        prune(c, now);
    }
    commit_pending(c);
    rd_kafka_consumer_close(c->rk);
    rd_kafka_flush(c->prk, FLUSH_TIMEOUT_MS);
    dlq_mark_acked(c);
    cofre_log_flush();
    return NULL;
}

static void batch_init(batch_t *b, size_t max)
{
    b->transfers = cofre_calloc(max, sizeof(*b->transfers));
    b->dead = cofre_calloc(max, sizeof(*b->dead));
    b->dead_bufs = cofre_calloc(max, sizeof(*b->dead_bufs));
    b->dead_keys = cofre_calloc(max, sizeof(*b->dead_keys));
    for (size_t i = 0; i < max; i++)
        cofre_jbuf_init(&b->dead_bufs[i]);
}

static void batch_release(batch_t *b, size_t max)
{
    for (size_t i = 0; i < max; i++)
        cofre_jbuf_release(&b->dead_bufs[i]);
    free(b->transfers);
    free(b->dead);
    free(b->dead_bufs);
    free(b->dead_keys);
}

static void consumer_free(cofre_adapter_consumer_t *c)
{
    if (c->rk != NULL)
        rd_kafka_destroy(c->rk);
    if (c->prk != NULL)
        rd_kafka_destroy(c->prk);
    cofre_adapter_store_close(c->store);
    batch_release(&c->batch, c->cfg.batch_max);
    free(c->msgs);
    free(c->refused);
    free(c);
}

cofre_adapter_consumer_t *cofre_adapter_consumer_start(const cofre_adapter_consumer_config_t *cfg)
{
    COFRE_ASSERT(cfg->batch_max >= 1 && cfg->batch_max <= COFRE_ADAPTER_BATCH_MAX);
    cofre_adapter_consumer_t *c = cofre_calloc(1, sizeof(*c));
    c->cfg = *cfg;
    atomic_init(&c->stop, false);
    atomic_init(&c->kick, true);
    atomic_init(&c->store_ok, true);
    atomic_init(&c->brokers_ok, true);
    for (size_t i = 0; i < COFRE_ARRAY_SIZE(c->parts); i++)
        c->parts[i] = (partition_t){.durable_next = -1, .committed_next = -1};
    batch_init(&c->batch, cfg->batch_max);
    c->msgs = cofre_calloc(cfg->batch_max, sizeof(*c->msgs));
    c->refused = cofre_calloc(cfg->batch_max, sizeof(*c->refused));
    if (cofre_adapter_store_open(cfg->db_url, false, &c->store) != 0) {
        consumer_free(c);
        return NULL;
    }
    COFRE_ASSERT(cofre_adapter_store_shared(c->store) == (cfg->leases != NULL));
    if (cfg->leases != NULL)
        cofre_adapter_store_set_owner(c->store, cfg->owner);
    c->rk = new_consumer(c);
    c->prk = c->rk != NULL ? new_producer(c) : NULL;
    if (c->prk == NULL || subscribe(c) != 0) {
        consumer_free(c);
        return NULL;
    }
    if (pthread_create(&c->thread, NULL, consumer_main, c) != 0) {
        cofre_log_msg(COFRE_LOG_ERROR, NULL, "cannot start the consumer thread");
        consumer_free(c);
        return NULL;
    }
    return c;
}

void cofre_adapter_consumer_stop(cofre_adapter_consumer_t *c)
{
    atomic_store(&c->stop, true);
    pthread_join(c->thread, NULL);
    consumer_free(c);
}

void cofre_adapter_consumer_kick(cofre_adapter_consumer_t *c)
{
    atomic_store(&c->kick, true);
}

bool cofre_adapter_consumer_ready(cofre_adapter_consumer_t *c, const char **reason)
{
    if (!atomic_load(&c->store_ok)) {
        *reason = "delivery store unavailable";
        return false;
    }
    if (!atomic_load(&c->brokers_ok)) {
        *reason = "kafka brokers unreachable";
        return false;
    }
    return true;
}
