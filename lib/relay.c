/*
 * relay.c: the outbox relay (see relay.h). The relay thread owns the producer, the cursor and
 * the set of rows in flight. Each step it serves delivery reports, hands what the broker
 * acknowledged to the marker, produces rows that came after the cursor, and (after a failure,
 * or every second for a source that is not ordered) looks again below the cursor for rows that
 * are neither published nor in flight: rows whose delivery failed, and rows a concurrent
 * committer made visible out of seq order (PostgreSQL).
 *
 * A failed delivery stops new rows ("retrying") until every row in flight has reported;
 * then, after a backoff, the failed rows are produced again in seq order, and new rows resume
 * once those went through. So one key's events never overtake each other across a retry.
 *
 * Marking runs on a second thread, the marker: a mark is a write transaction on the service's
 * database, and on SQLite it waits for the one write lock, which the committer holds nearly all
 * the time under load. The relay thread hands acknowledged seqs over and keeps publishing; the
 * marker marks them in batches whenever it gets the lock, and hands them back to be forgotten.
 */
#include "cofre/relay.h"

#include "cofre/common.h"
#include "cofre/log.h"
#include "cofre/metrics.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NS_PER_MS      1000000ull
#define BACKOFF_MIN_MS 100u
#define IDLE_SLICE_MS  10u
#define HELD_FACTOR                                                                                \
    4u /* acknowledged rows may wait for their mark, up to this many times                         \
          in_flight_max in all */

/* ---- a set of seqs (open addressing, linear probing, backward-shift deletion) ------------- */

typedef struct seqset {
    int64_t *slots; /* 0 = empty (seqs are > 0) */
    size_t mask;
    size_t count;
} seqset_t;

static void seqset_init(seqset_t *s, size_t max_items)
{
    size_t cap = 16;
    while (cap < max_items * 2)
        cap <<= 1;
    s->slots = cofre_calloc(cap, sizeof(int64_t));
    s->mask = cap - 1;
    s->count = 0;
}

static size_t seqset_home(const seqset_t *s, int64_t seq)
{
    uint64_t h = (uint64_t)seq * 0x9e3779b97f4a7c15ull;
    return (size_t)(h >> 17) & s->mask;
}

static bool seqset_has(const seqset_t *s, int64_t seq)
{
    for (size_t i = seqset_home(s, seq);; i = (i + 1) & s->mask) {
        if (s->slots[i] == seq)
            return true;
        if (s->slots[i] == 0)
            return false;
    }
}

static void seqset_add(seqset_t *s, int64_t seq)
{
    COFRE_ASSERT(seq > 0 && s->count < (s->mask + 1) / 2);
    size_t i = seqset_home(s, seq);
    while (s->slots[i] != 0 && s->slots[i] != seq)
        i = (i + 1) & s->mask;
    if (s->slots[i] == 0)
        s->count++;
    s->slots[i] = seq;
}

static void seqset_del(seqset_t *s, int64_t seq)
{
    size_t i = seqset_home(s, seq);
    while (s->slots[i] != seq) {
        if (s->slots[i] == 0)
            return;
        i = (i + 1) & s->mask;
    }
    s->slots[i] = 0;
    s->count--;
    /* Shift back later members of the probe run that could sit closer to home. */
    for (size_t j = (i + 1) & s->mask; s->slots[j] != 0; j = (j + 1) & s->mask) {
        size_t home = seqset_home(s, s->slots[j]);
        bool movable = i <= j ? (home <= i || home > j) : (home <= i && home > j);
        if (movable) {
            s->slots[i] = s->slots[j];
            s->slots[j] = 0;
            i = j;
        }
    }
}

/* ---- state ---------------------------------------------------------------------------------- */

/* A failing operation's state: when it may run again, and whether its failure was logged. */
typedef struct backoff {
    unsigned ms;
    uint64_t until_ns;
    bool failing;
} backoff_t;

struct cofre_relay {
    cofre_relay_config_t cfg;
    pthread_t thread;
    uint64_t stop_deadline_ns; /* set before stopping */
    pthread_mutex_t lock;      /* guards stats and the wakeup */
    pthread_cond_t wake;
    cofre_relay_stats_t stats;

    /* Owned by the relay thread. */
    rd_kafka_t *rk;
    int64_t cursor;     /* every row with seq <= cursor was produced at least once */
    seqset_t in_flight; /* produced, not yet marked (what a rescan skips) */
    size_t held_max;    /* bound on in_flight: HELD_FACTOR times in_flight_max */
    seqset_t unacked;   /* produced, no delivery report yet */
    int64_t *acked;     /* acknowledged, not yet handed to the marker */
    size_t nacked;
    int64_t *returned; /* marked, taken back from the marker */
    cofre_relay_row_t *rows;
    uint64_t failures_at_retry;                     /* failures when the last retry was produced */
    backoff_t open_bo, fetch_bo, mark_bo, retry_bo; /* mark_bo: the marker's */
    uint64_t next_rescan_ns, next_stats_ns;

    /* The marker thread, and what it shares with the relay thread (under mlock). */
    pthread_t marker;
    pthread_mutex_t mlock;
    pthread_cond_t mwake;
    int64_t *to_mark; /* handed over, not yet marked */
    size_t nto_mark;
    int64_t *marked; /* marked, not yet taken back */
    size_t nmarked;
    int64_t *marking; /* the marker's own: the batch being marked */

    enum { RETRY_NONE, RETRY_WAITING, RETRY_SENT } retry_phase;
    int result;
    atomic_bool stopping;
    bool marker_stop;     /* under mlock */
    bool source_open;     /* relay thread, as below */
    bool standing_by;     /* the source said another process relays it */
    bool fetch_full;      /* the last fetch after the cursor filled its page */
    bool retrying;        /* a delivery failed: new rows wait */
    bool final_fetch_due; /* stopping: rows committed just before must still go */
};

static struct {
    pthread_once_t once;
    cofre_series_t *pending, *oldest, *published, *failures;
} metrics = {.once = PTHREAD_ONCE_INIT};

static void register_metrics(void)
{
    metrics.pending =
        cofre_metric_with(cofre_metric_gauge("cofre_outbox_pending",
                                             "Outbox rows not yet acknowledged by Kafka.", NULL),
                          NULL);
    metrics.oldest =
        cofre_metric_with(cofre_metric_gauge("cofre_outbox_oldest_pending_seconds",
                                             "Age of the oldest unpublished outbox row.", NULL),
                          NULL);
    metrics.published =
        cofre_metric_with(cofre_metric_counter("cofre_outbox_published_total",
                                               "Outbox rows acknowledged by the broker.", NULL),
                          NULL);
    metrics.failures = cofre_metric_with(
        cofre_metric_counter("cofre_outbox_delivery_failures_total",
                             "Outbox deliveries whose report carried an error.", NULL),
        NULL);
}

static uint64_t ms_ns(unsigned ms)
{
    return (uint64_t)ms * NS_PER_MS;
}

static size_t unacked(const cofre_relay_t *r)
{
    return r->unacked.count;
}

/* Whether another row may be produced: librdkafka holds at most in_flight_max unacknowledged,
 * and rows acknowledged but not yet marked (the marker waits for the database) are bounded too. */
static bool has_room(const cofre_relay_t *r)
{
    return r->unacked.count < r->cfg.in_flight_max && r->in_flight.count < r->held_max;
}

/* ---- backoff and logging of source operations ------------------------------------------- */

static bool backoff_ready(const backoff_t *b, uint64_t now)
{
    return now >= b->until_ns;
}

static void backoff_fail(cofre_relay_t *r, backoff_t *b, const char *what, int err)
{
    b->ms = b->ms == 0 ? BACKOFF_MIN_MS : COFRE_MIN(b->ms * 2, r->cfg.backoff_max_ms);
    b->until_ns = cofre_now_mono_ns() + ms_ns(b->ms);
    if (!b->failing)
        COFRE_LOG(COFRE_LOG_WARN, NULL, "outbox relay: operation failing, retrying with backoff",
                  COFRE_LF_STR("source", r->cfg.source.name), COFRE_LF_STR("op", what),
                  COFRE_LF_STR("error", cofre_strerror(err)));
    b->failing = true;
}

static void backoff_ok(cofre_relay_t *r, backoff_t *b, const char *what)
{
    if (b->failing)
        COFRE_LOG(COFRE_LOG_INFO, NULL, "outbox relay: operation recovered",
                  COFRE_LF_STR("source", r->cfg.source.name), COFRE_LF_STR("op", what));
    b->ms = 0;
    b->until_ns = 0;
    b->failing = false;
}

/* ---- producer ------------------------------------------------------------------------------ */

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    cofre_relay_t *r = opaque;
    int64_t seq = (int64_t)(intptr_t)m->_private;
    seqset_del(&r->unacked, seq);
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        COFRE_ASSERT(r->nacked < r->held_max);
        r->acked[r->nacked++] = seq;
        cofre_counter_inc(metrics.published);
        pthread_mutex_lock(&r->lock);
        r->stats.published++;
        pthread_mutex_unlock(&r->lock);
        return;
    }
    seqset_del(&r->in_flight, seq);
    if (m->err == RD_KAFKA_RESP_ERR__PURGE_QUEUE || m->err == RD_KAFKA_RESP_ERR__PURGE_INFLIGHT)
        return; /* our own purge: the row stays in the outbox for later */
    cofre_counter_inc(metrics.failures);
    pthread_mutex_lock(&r->lock);
    r->stats.failures++;
    pthread_mutex_unlock(&r->lock);
    if (!r->retrying)
        COFRE_LOG(COFRE_LOG_WARN, NULL, "outbox relay: delivery failed, new rows wait for retry",
                  COFRE_LF_STR("source", r->cfg.source.name), COFRE_LF_INT("seq", seq),
                  COFRE_LF_STR("error", rd_kafka_err2name(m->err)));
    r->retrying = true;
}

static bool make_producer(cofre_relay_t *r)
{
    const cofre_relay_config_t *c = &r->cfg;
    rd_kafka_conf_t *conf = cofre_kafka_conf_new(&c->kafka, c->client_id);
    char num[32];
    cofre_kafka_conf_set(conf, "enable.idempotence", "true");
    cofre_kafka_conf_set(conf, "acks", "all");
    cofre_kafka_conf_set(conf, "partitioner", "murmur2_random");
    snprintf(num, sizeof(num), "%u", c->message_timeout_ms);
    cofre_kafka_conf_set(conf, "message.timeout.ms", num);
    snprintf(num, sizeof(num), "%u", c->linger_ms);
    cofre_kafka_conf_set(conf, "linger.ms", num);
    snprintf(num, sizeof(num), "%zu", c->in_flight_max + c->batch_max);
    cofre_kafka_conf_set(conf, "queue.buffering.max.messages", num);
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_conf_set_opaque(conf, r);
    char err[512];
    r->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    if (r->rk == NULL) {
        COFRE_LOG(COFRE_LOG_ERROR, NULL, "outbox relay: producer not created",
                  COFRE_LF_STR("error", err));
        return false;
    }
    cofre_kafka_route_logs(r->rk);
    return true;
}

/* Drops the producer: rows not yet acknowledged stay unpublished in the outbox. */
static void drop_producer(cofre_relay_t *r)
{
    if (r->rk == NULL)
        return;
    rd_kafka_purge(r->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    rd_kafka_flush(r->rk, 2000); /* serves the purge reports */
    rd_kafka_destroy(r->rk);
    r->rk = NULL;
    /* Rows whose report never came (the flush ran out of time) stay in the outbox too. */
    for (size_t i = 0; i <= r->unacked.mask; i++) {
        if (r->unacked.slots[i] != 0)
            seqset_del(&r->in_flight, r->unacked.slots[i]);
    }
    memset(r->unacked.slots, 0, (r->unacked.mask + 1) * sizeof(int64_t));
    r->unacked.count = 0;
}

/* Produces one row. Returns 0; COFRE_EFULL when librdkafka's queue is full (try later); or
 * another error when the row cannot be produced (it is treated as a failed delivery). The
 * payload is handed over on success and freed otherwise. */
static int produce(cofre_relay_t *r, cofre_relay_row_t *row)
{
    rd_kafka_headers_t *h = rd_kafka_headers_new(2);
    rd_kafka_header_add(h, "content-type", -1, "application/cloudevents+json", -1);
    if (row->traceparent[0] != '\0')
        rd_kafka_header_add(h, "traceparent", -1, row->traceparent, -1);
    rd_kafka_resp_err_t err = rd_kafka_producev(
        r->rk, RD_KAFKA_V_TOPIC(row->topic), RD_KAFKA_V_KEY(row->key, strlen(row->key)),
        RD_KAFKA_V_VALUE(row->payload, row->payload_len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_FREE),
        RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_OPAQUE((void *)(intptr_t)row->seq), RD_KAFKA_V_END);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        rd_kafka_headers_destroy(h);
        free(row->payload);
        row->payload = NULL;
        return err == RD_KAFKA_RESP_ERR__QUEUE_FULL ? COFRE_EFULL : cofre_kafka_error(err);
    }
    row->payload = NULL;
    seqset_add(&r->in_flight, row->seq);
    seqset_add(&r->unacked, row->seq);
    pthread_mutex_lock(&r->lock);
    r->stats.produced++;
    pthread_mutex_unlock(&r->lock);
    return 0;
}

static void free_rows(cofre_relay_row_t *rows, size_t from, size_t n)
{
    for (size_t i = from; i < n; i++) {
        free(rows[i].payload);
        rows[i].payload = NULL;
    }
}

static void refuse_row(cofre_relay_t *r, const cofre_relay_row_t *row, int err)
{
    cofre_counter_inc(metrics.failures);
    pthread_mutex_lock(&r->lock);
    r->stats.failures++;
    pthread_mutex_unlock(&r->lock);
    COFRE_LOG(COFRE_LOG_WARN, NULL, "outbox relay: row refused by the producer",
              COFRE_LF_STR("source", r->cfg.source.name), COFRE_LF_INT("seq", row->seq),
              COFRE_LF_STR("error", cofre_strerror(err)));
    r->retrying = true;
}

/* ---- the steps ------------------------------------------------------------------------------ */

static bool valid_row(const cofre_relay_row_t *row)
{
    return row->seq > 0 && row->payload != NULL && row->topic[0] != '\0' &&
           row->payload_len <= COFRE_RELAY_PAYLOAD_MAX;
}

/*
 * Fetches rows with seq > after (at most max) and produces those that pass keep (rows above the
 * cursor: all; below it: those not in flight). Returns the number fetched, or -1 on a fetch
 * error. *last is the seq of the last row fetched; the cursor moves only over produced rows.
 */
static long fetch_produce(cofre_relay_t *r, int64_t after, size_t max, bool below_cursor,
                          int64_t *last)
{
    size_t n = 0;
    int rc = r->cfg.source.fetch(r->cfg.source.data, after, max, r->rows, &n);
    if (rc != 0) {
        free_rows(r->rows, 0, n);
        backoff_fail(r, &r->fetch_bo, "fetch", rc);
        return -1;
    }
    backoff_ok(r, &r->fetch_bo, "fetch");
    COFRE_ASSERT(n <= max);
    size_t i = 0;
    for (; i < n; i++) {
        cofre_relay_row_t *row = &r->rows[i];
        *last = row->seq;
        if (below_cursor && (row->seq > r->cursor || seqset_has(&r->in_flight, row->seq))) {
            free_rows(r->rows, i, i + 1);
            continue;
        }
        if (!has_room(r))
            break;
        rc = valid_row(row) ? produce(r, row) : COFRE_EINVAL;
        if (rc == COFRE_EFULL)
            break;
        if (rc != 0)
            refuse_row(r, row, rc);
        if (!below_cursor)
            r->cursor = row->seq;
    }
    free_rows(r->rows, i, n);
    return (long)n;
}

/* Produces new rows after the cursor, as many as the in-flight bound allows. */
static bool step_new_rows(cofre_relay_t *r, uint64_t now)
{
    if (r->retrying || !backoff_ready(&r->fetch_bo, now))
        return false;
    if (!has_room(r))
        return false;
    size_t room =
        COFRE_MIN(r->cfg.in_flight_max - r->unacked.count, r->held_max - r->in_flight.count);
    size_t max = COFRE_MIN(room, r->cfg.batch_max);
    int64_t last = 0;
    int64_t before = r->cursor;
    long n = fetch_produce(r, r->cursor, max, false, &last);
    r->fetch_full = n == (long)max;
    if (n >= 0)
        r->final_fetch_due = false;
    return n > 0 && r->cursor != before;
}

/* Looks below the cursor for rows neither published nor in flight, and produces them. */
static void step_rescan(cofre_relay_t *r)
{
    size_t pages = r->held_max / r->cfg.batch_max + 1;
    int64_t after = 0;
    for (size_t p = 0; p < pages && after < r->cursor; p++) {
        if (!has_room(r))
            return;
        int64_t last = after;
        long n = fetch_produce(r, after, r->cfg.batch_max, true, &last);
        if (n < (long)r->cfg.batch_max)
            return;
        after = last;
    }
}

/*
 * While retrying, once nothing is in flight: when the last retry went through, new rows
 * resume; otherwise, after the backoff, the failed rows are produced again (in seq order).
 */
static void step_retry(cofre_relay_t *r, uint64_t now)
{
    if (!r->retrying || unacked(r) > 0)
        return;
    uint64_t failures = r->stats.failures; /* written only by this thread */
    if (r->retry_phase == RETRY_SENT) {
        if (failures == r->failures_at_retry) {
            r->retrying = false;
            r->retry_phase = RETRY_NONE;
            backoff_ok(r, &r->retry_bo, "delivery");
            return;
        }
        r->retry_phase = RETRY_NONE; /* failed again */
    }
    if (r->retry_phase == RETRY_NONE) {
        backoff_fail(r, &r->retry_bo, "delivery", COFRE_EIO);
        r->retry_phase = RETRY_WAITING;
    }
    if (!backoff_ready(&r->retry_bo, now))
        return;
    r->failures_at_retry = failures;
    r->retry_phase = RETRY_SENT;
    step_rescan(r);
}

/*
 * Hands what the broker acknowledged to the marker, and forgets what the marker marked.
 * Returns the number of seqs moved either way.
 */
static size_t step_hand_over(cofre_relay_t *r)
{
    pthread_mutex_lock(&r->mlock);
    size_t given = r->nacked, back = r->nmarked;
    COFRE_ASSERT(r->nto_mark + given <= r->held_max);
    memcpy(r->to_mark + r->nto_mark, r->acked, given * sizeof(int64_t));
    r->nto_mark += given;
    r->nacked = 0;
    memcpy(r->returned, r->marked, back * sizeof(int64_t));
    r->nmarked = 0;
    if (given > 0)
        pthread_cond_signal(&r->mwake);
    pthread_mutex_unlock(&r->mlock);
    for (size_t i = 0; i < back; i++)
        seqset_del(&r->in_flight, r->returned[i]);
    return given + back;
}

/* The marker waits for seqs (at most mark_interval_ms between marks, so acknowledgements
 * gather into one transaction), marks them, and hands them back; a failed mark keeps them and
 * retries after a backoff. Once stopped it makes one last attempt. */
static void *marker_main(void *arg)
{
    cofre_relay_t *r = arg;
    pthread_mutex_lock(&r->mlock);
    for (;;) {
        while (r->nto_mark == 0 && !r->marker_stop)
            pthread_cond_wait(&r->mwake, &r->mlock);
        if (r->nto_mark == 0)
            break;
        size_t n = r->nto_mark;
        memcpy(r->marking, r->to_mark, n * sizeof(int64_t));
        r->nto_mark = 0;
        bool last = r->marker_stop;
        pthread_mutex_unlock(&r->mlock);
        int rc = r->cfg.source.mark(r->cfg.source.data, r->marking, n);
        pthread_mutex_lock(&r->mlock);
        if (rc == 0) {
            backoff_ok(r, &r->mark_bo, "mark");
            memcpy(r->marked + r->nmarked, r->marking, n * sizeof(int64_t));
            r->nmarked += n;
            pthread_mutex_lock(&r->lock);
            r->stats.marked += n;
            pthread_mutex_unlock(&r->lock);
        } else {
            backoff_fail(r, &r->mark_bo, "mark", rc);
            memmove(r->to_mark + n, r->to_mark, r->nto_mark * sizeof(int64_t));
            memcpy(r->to_mark, r->marking, n * sizeof(int64_t));
            r->nto_mark += n;
            if (last)
                break;
        }
        if (r->marker_stop)
            continue;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t ns =
            (uint64_t)ts.tv_nsec + ms_ns(rc == 0 ? r->cfg.mark_interval_ms : r->mark_bo.ms);
        ts.tv_sec += (time_t)(ns / 1000000000ull);
        ts.tv_nsec = (long)(ns % 1000000000ull);
        pthread_cond_timedwait(&r->mwake, &r->mlock, &ts);
    }
    pthread_mutex_unlock(&r->mlock);
    return NULL;
}

static void step_stats(cofre_relay_t *r, uint64_t now)
{
    if (now < r->next_stats_ns)
        return;
    r->next_stats_ns = now + ms_ns(r->cfg.stats_ms);
    int64_t pending = 0;
    double oldest = 0;
    if (r->cfg.source.stats(r->cfg.source.data, &pending, &oldest) != 0)
        return;
    cofre_gauge_set(metrics.pending, (double)pending);
    cofre_gauge_set(metrics.oldest, oldest);
    pthread_mutex_lock(&r->lock);
    r->stats.pending = pending;
    r->stats.oldest_age_s = oldest;
    r->stats.in_flight = r->in_flight.count;
    pthread_mutex_unlock(&r->lock);
}

/* Sleeps up to ms, waking early when stop is requested. */
static void nap(cofre_relay_t *r, unsigned ms)
{
    if (r->rk != NULL) {
        rd_kafka_poll(r->rk, (int)ms);
        return;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t ns = (uint64_t)ts.tv_nsec + ms_ns(ms);
    ts.tv_sec += (time_t)(ns / 1000000000ull);
    ts.tv_nsec = (long)(ns % 1000000000ull);
    pthread_mutex_lock(&r->lock);
    if (!atomic_load(&r->stopping))
        pthread_cond_timedwait(&r->wake, &r->lock, &ts);
    pthread_mutex_unlock(&r->lock);
}

/* Makes sure the source is open and the producer exists. */
static bool step_connect(cofre_relay_t *r, uint64_t now)
{
    if (!r->source_open) {
        if (!backoff_ready(&r->open_bo, now))
            return false;
        int rc = r->cfg.source.open != NULL ? r->cfg.source.open(r->cfg.source.data) : 0;
        if (rc == COFRE_EEXIST) {
            if (!r->standing_by)
                COFRE_LOG(COFRE_LOG_INFO, NULL,
                          "outbox relay: another process relays this outbox; standing by",
                          COFRE_LF_STR("source", r->cfg.source.name));
            r->standing_by = true;
            r->open_bo.until_ns = now + ms_ns(r->cfg.backoff_max_ms);
            return false;
        }
        if (rc != 0) {
            backoff_fail(r, &r->open_bo, "open", rc);
            return false;
        }
        if (r->standing_by)
            COFRE_LOG(COFRE_LOG_INFO, NULL, "outbox relay: taking over the outbox",
                      COFRE_LF_STR("source", r->cfg.source.name));
        r->standing_by = false;
        backoff_ok(r, &r->open_bo, "open");
        r->source_open = true;
    }
    if (r->rk == NULL && !make_producer(r))
        return false;
    char err[256];
    if (rd_kafka_fatal_error(r->rk, err, sizeof(err)) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        COFRE_LOG(COFRE_LOG_ERROR, NULL, "outbox relay: producer failed, making a new one",
                  COFRE_LF_STR("source", r->cfg.source.name), COFRE_LF_STR("error", err));
        drop_producer(r);
        r->retrying = true;
        return false;
    }
    return true;
}

/* One round. Returns true when it did work (so the next round should not wait). */
static bool relay_step(cofre_relay_t *r)
{
    uint64_t now = cofre_now_mono_ns();
    if (!step_connect(r, now))
        return false;
    rd_kafka_poll(r->rk, 0);
    size_t moved = step_hand_over(r);
    step_retry(r, now);
    bool produced = step_new_rows(r, now);
    if (!r->retrying && !r->cfg.source.ordered && now >= r->next_rescan_ns) {
        r->next_rescan_ns = now + ms_ns(r->cfg.rescan_ms);
        step_rescan(r);
    }
    step_stats(r, now);
    return produced || moved > 0;
}

static bool drained(const cofre_relay_t *r)
{
    if (r->standing_by)
        return true; /* another process publishes these rows */
    return r->source_open && r->rk != NULL && !r->final_fetch_due && !r->fetch_full &&
           r->in_flight.count == 0 && !r->retrying;
}

static void *relay_main(void *arg)
{
    cofre_relay_t *r = arg;
    bool stop_seen = false;
    for (;;) {
        bool stopping = atomic_load(&r->stopping);
        if (stopping && !stop_seen) {
            stop_seen = true;
            r->final_fetch_due = true;
            r->fetch_bo.until_ns = 0;
        }
        if (stopping && (drained(r) || cofre_now_mono_ns() >= r->stop_deadline_ns))
            break;
        if (!relay_step(r))
            nap(r, stopping ? IDLE_SLICE_MS : r->cfg.poll_ms);
    }
    bool left = !drained(r);
    drop_producer(r);
    step_hand_over(r);
    pthread_mutex_lock(&r->mlock);
    r->marker_stop = true;
    pthread_cond_signal(&r->mwake);
    pthread_mutex_unlock(&r->mlock);
    pthread_join(r->marker, NULL);
    if (r->source_open && r->cfg.source.close != NULL)
        r->cfg.source.close(r->cfg.source.data);
    r->result = left ? COFRE_ETIMEDOUT : 0;
    return NULL;
}

/* ---- public --------------------------------------------------------------------------------- */

void cofre_relay_config_defaults(cofre_relay_config_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->client_id = "cofre";
    cfg->batch_max = 500;
    cfg->in_flight_max = 10000;
    cfg->poll_ms = 20;
    cfg->rescan_ms = 1000;
    cfg->backoff_max_ms = 5000;
    cfg->stats_ms = 1000;
    cfg->flush_timeout_ms = 10000;
    cfg->message_timeout_ms = 0;
    cfg->linger_ms = 5;
    cfg->mark_interval_ms = 50;
}

void cofre_relay_config_read(cofre_config_t *c, const char *brokers, cofre_relay_config_t *cfg)
{
    cofre_kafka_config_read(c, brokers, &cfg->kafka);
    cfg->batch_max =
        (size_t)cofre_config_int(c, "COFRE_RELAY_BATCH_MAX", (int64_t)cfg->batch_max, 1, 10000);
    cfg->in_flight_max = (size_t)cofre_config_int(c, "COFRE_RELAY_IN_FLIGHT_MAX",
                                                  (int64_t)cfg->in_flight_max, 1, 1000000);
    cfg->poll_ms = (unsigned)cofre_config_int(c, "COFRE_RELAY_POLL_MS", cfg->poll_ms, 1, 10000);
    cfg->message_timeout_ms = (unsigned)cofre_config_int(c, "COFRE_RELAY_MESSAGE_TIMEOUT_MS",
                                                         cfg->message_timeout_ms, 0, 86400000);
}

static void relay_free(cofre_relay_t *r)
{
    pthread_mutex_destroy(&r->lock);
    pthread_cond_destroy(&r->wake);
    pthread_mutex_destroy(&r->mlock);
    pthread_cond_destroy(&r->mwake);
    free(r->rows);
    free(r->acked);
    free(r->returned);
    free(r->to_mark);
    free(r->marked);
    free(r->marking);
    free(r->in_flight.slots);
    free(r->unacked.slots);
    free(r);
}

cofre_relay_t *cofre_relay_start(const cofre_relay_config_t *cfg)
{
    COFRE_ASSERT(cfg->kafka.brokers != NULL && cfg->kafka.brokers[0] != '\0');
    COFRE_ASSERT(cfg->source.fetch != NULL && cfg->source.mark != NULL);
    COFRE_ASSERT(cfg->source.stats != NULL);
    COFRE_ASSERT(cfg->batch_max >= 1 && cfg->in_flight_max >= 1);
    pthread_once(&metrics.once, register_metrics);
    cofre_relay_t *r = cofre_calloc(1, sizeof(*r));
    r->cfg = *cfg;
    if (r->cfg.source.name == NULL)
        r->cfg.source.name = "outbox";
    pthread_mutex_init(&r->lock, NULL);
    pthread_cond_init(&r->wake, NULL);
    pthread_mutex_init(&r->mlock, NULL);
    pthread_cond_init(&r->mwake, NULL);
    r->held_max = cfg->in_flight_max * HELD_FACTOR;
    seqset_init(&r->in_flight, r->held_max);
    seqset_init(&r->unacked, cfg->in_flight_max);
    int64_t **arrays[] = {&r->acked, &r->returned, &r->to_mark, &r->marked, &r->marking};
    for (size_t i = 0; i < COFRE_ARRAY_SIZE(arrays); i++)
        *arrays[i] = cofre_calloc(r->held_max, sizeof(int64_t));
    r->rows = cofre_calloc(cfg->batch_max, sizeof(cofre_relay_row_t));
    if (!make_producer(r)) {
        relay_free(r);
        return NULL;
    }
    COFRE_LOG(COFRE_LOG_INFO, NULL, "outbox relay started",
              COFRE_LF_STR("source", r->cfg.source.name),
              COFRE_LF_STR("brokers", cfg->kafka.brokers));
    int rc = pthread_create(&r->marker, NULL, marker_main, r);
    COFRE_ASSERT(rc == 0);
    rc = pthread_create(&r->thread, NULL, relay_main, r);
    COFRE_ASSERT(rc == 0);
    return r;
}

int cofre_relay_stop(cofre_relay_t *r)
{
    pthread_mutex_lock(&r->lock);
    r->stop_deadline_ns = cofre_now_mono_ns() + ms_ns(r->cfg.flush_timeout_ms);
    atomic_store(&r->stopping, true);
    pthread_cond_broadcast(&r->wake);
    pthread_mutex_unlock(&r->lock);
    pthread_join(r->thread, NULL);
    int rc = r->result;
    COFRE_LOG(rc == 0 ? COFRE_LOG_INFO : COFRE_LOG_WARN, NULL, "outbox relay stopped",
              COFRE_LF_STR("source", r->cfg.source.name),
              COFRE_LF_INT("published", r->stats.published), COFRE_LF_BOOL("rows_left", rc != 0));
    relay_free(r);
    return rc;
}

void cofre_relay_stats(cofre_relay_t *r, cofre_relay_stats_t *out)
{
    pthread_mutex_lock(&r->lock);
    *out = r->stats;
    pthread_mutex_unlock(&r->lock);
}
