/*
 * adapter_engine.c: the delivery state machine (see adapter_engine.h).
 *
 * One thread runs a loop: wait for I/O (the pool calls back with answers, timeouts and lost
 * requests, which only change states and queues), load newly stored deliveries, wake the ones
 * whose wait is over, dispatch (reversals first, then 0200s, as far as the breaker and the
 * pool's windows allow), and commit. The commit is one store transaction per turn: the "sent"
 * marks of the 0200s just built and every final outcome (with its dead letter). Only after it
 * returns are those 0200s written to their connections and the finished deliveries dropped
 * from memory, so the store always knows of every transmission that may have reached the
 * host, and a restart can reverse it.
 *
 * On a shared store each turn also keeps the partition leases (adapter_lease.h): leases that
 * ran out locally are dropped, a lease round runs when due, and the deliveries of partitions no
 * longer leased leave memory once none has a request out. Loads read only leased partitions,
 * dispatch passes over deliveries whose lease would not outlive their answer (they wait in
 * their queue), and a commit the store refuses for a lost lease is redone without that
 * partition's changes (its built 0200s are never sent).
 */
#include "legacy/adapter_engine.h"

#include "cofre/common.h"
#include "cofre/jbuf.h"
#include "cofre/log.h"
#include "cofre/metrics.h"
#include "cofre/trace.h"
#include "legacy/adapter_breaker.h"
#include "legacy/adapter_event.h"
#include "legacy/adapter_metrics.h"
#include "legacy/adapter_store.h"
#include "legacy/link.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define NS_PER_MS      1000000ull
#define LOAD_EVERY_NS  (1000 * NS_PER_MS)
#define STORE_RETRY_NS (500 * NS_PER_MS)
#define IDLE_WAIT_NS   (1000 * NS_PER_MS)
#define LOAD_CHUNK     1024
#define DETAIL_CAP     (COFRE_ADAPTER_DETAIL_MAX + 1)

typedef enum dstate {
    D_READY,     /* in the ready queue: a 0200 goes next */
    D_REVERSE,   /* in the reverse queue: a 0400 goes next */
    D_WAIT,      /* waiting until due_ns; then ready or reverse (wait_reverse) */
    D_SENDING,   /* 0200 built, its "sent" mark in this turn's commit */
    D_SENT,      /* 0200 out */
    D_REVERSING, /* 0400 out */
    D_FINAL,     /* outcome decided, in the finals list until committed */
} dstate_t;

typedef struct delivery {
    cofre_adapter_delivery_t row; /* as stored, updated as it goes */
    dstate_t st;
    bool wait_reverse;
    bool queued;
    uint32_t reversal_tries; /* 0400s sent for the current transmission */
    uint64_t due_ns;
    cofre_adapter_slot_t *slot;
    struct delivery *next; /* queue or finals link */
    size_t index;          /* in the active table */
    bool dropping;         /* leaving memory: its partition is no longer leased */
    cofre_trace_t trace;
    /* final outcome */
    const char *reason; /* COFRE_ADAPTER_DLQ_*, NULL when applied */
    char detail[DETAIL_CAP];
    cofre_jbuf_t dead; /* the dead letter, when reason is set */
    char dead_keys[2][COFRE_ADAPTER_KEY_MAX + 1];
    cofre_adapter_dead_t dead_row;
} delivery_t;

typedef struct queue {
    delivery_t *head, *tail;
} queue_t;

/* A 0200 waiting for this turn's commit. */
typedef struct pending_send {
    delivery_t *d;
    cofre_adapter_slot_t *slot;
} pending_send_t;

struct cofre_adapter_engine {
    cofre_adapter_engine_config_t cfg;
    cofre_adapter_store_t *store;
    cofre_adapter_pool_t *pool;
    cofre_adapter_breaker_t breaker;
    pthread_t thread;
    int wake_fd;
    atomic_bool stop;
    atomic_bool notified;
    atomic_int ready_state; /* 0 ready; else an index into not_ready */
    delivery_t **active;    /* active_max entries; NULL free */
    size_t nactive;
    size_t free_hint;
    int64_t max_seq; /* every open delivery with seq <= max_seq is in memory */
    bool more_in_store;
    uint64_t load_at_ns;
    uint64_t store_retry_at_ns;
    uint64_t wait_due_ns; /* earliest due_ns of a waiting delivery */
    uint64_t opens_seen;  /* breaker openings already counted in the metric */
    bool store_ok;
    queue_t ready_q, reverse_q;
    delivery_t *finals;
    size_t nfinals;
    pending_send_t *sends;
    size_t nsends;
    cofre_adapter_update_t *updates;
    size_t updates_cap;
    cofre_adapter_delivery_t *rows; /* LOAD_CHUNK rows read by load() */
    cofre_iso_msg_t msg, orig;
    /* shared stores */
    cofre_adapter_leases_t *leases; /* NULL: the store is exclusive */
    bool busy[COFRE_ADAPTER_PARTITIONS_MAX];
    bool marked[COFRE_ADAPTER_PARTITIONS_MAX];
    int32_t parts[COFRE_ADAPTER_PARTITIONS_MAX];
    int64_t after[COFRE_ADAPTER_PARTITIONS_MAX];
    int32_t lost[COFRE_ADAPTER_STORE_BATCH_MAX];
};

static const char *const not_ready[] = {
    "ready",
    "delivery store unavailable",
    "legacy host circuit breaker open",
    "legacy host circuit breaker half-open",
    "no connection to the legacy host signed on",
};

/* ---- queues and the table ---------------------------------------------------------------- */

static void push(queue_t *q, delivery_t *d)
{
    COFRE_ASSERT(!d->queued);
    d->next = NULL;
    d->queued = true;
    if (q->tail != NULL)
        q->tail->next = d;
    else
        q->head = d;
    q->tail = d;
}

static void push_front(queue_t *q, delivery_t *d)
{
    COFRE_ASSERT(!d->queued);
    d->queued = true;
    d->next = q->head;
    q->head = d;
    if (q->tail == NULL)
        q->tail = d;
}

static delivery_t *pop(queue_t *q)
{
    delivery_t *d = q->head;
    if (d == NULL)
        return NULL;
    q->head = d->next;
    if (q->head == NULL)
        q->tail = NULL;
    d->next = NULL;
    d->queued = false;
    return d;
}

static void table_add(cofre_adapter_engine_t *e, delivery_t *d)
{
    COFRE_ASSERT(e->nactive < e->cfg.active_max);
    size_t i = e->free_hint;
    while (e->active[i] != NULL)
        i = (i + 1) % e->cfg.active_max;
    e->active[i] = d;
    d->index = i;
    e->free_hint = (i + 1) % e->cfg.active_max;
    e->nactive++;
}

static void table_remove(cofre_adapter_engine_t *e, delivery_t *d)
{
    COFRE_ASSERT(e->active[d->index] == d);
    e->active[d->index] = NULL;
    e->free_hint = d->index;
    e->nactive--;
    cofre_jbuf_release(&d->dead);
    free(d);
}

/* ---- logging ----------------------------------------------------------------------------- */

/* The debit and credit legacy account numbers, masked to their last 4 digits. */
static void masked_accounts(const delivery_t *d, char debit[COFRE_LINK_MASK_MAX],
                            char credit[COFRE_LINK_MASK_MAX])
{
    char num[COFRE_LINK_ACCOUNT_LEN + 1];
    const cofre_adapter_transfer_t *t = &d->row.t;
    debit[0] = credit[0] = '\0';
    if (cofre_link_account_number(t->debit_account_id, strlen(t->debit_account_id), num) == 0)
        cofre_link_mask(num, COFRE_LINK_ACCOUNT_LEN, debit, COFRE_LINK_MASK_MAX);
    if (cofre_link_account_number(t->credit_account_id, strlen(t->credit_account_id), num) == 0)
        cofre_link_mask(num, COFRE_LINK_ACCOUNT_LEN, credit, COFRE_LINK_MASK_MAX);
}

static void log_delivery(cofre_log_level_t level, const delivery_t *d, const char *msg)
{
    if (!cofre_log_enabled(level))
        return;
    char debit[COFRE_LINK_MASK_MAX], credit[COFRE_LINK_MASK_MAX];
    masked_accounts(d, debit, credit);
    const cofre_adapter_transfer_t *t = &d->row.t;
    COFRE_LOG(level, &d->trace, msg, COFRE_LF_STR("transfer_id", t->transfer_id),
              COFRE_LF_STR("rrn", t->rrn), COFRE_LF_STR("debit_account", debit),
              COFRE_LF_STR("credit_account", credit), COFRE_LF_INT("amount", t->amount_minor),
              COFRE_LF_STR("currency", t->currency), COFRE_LF_INT("attempts", d->row.attempts),
              COFRE_LF_INT("reversals", d->row.reversals),
              COFRE_LF_STR("response_code",
                           d->row.response_code[0] != '\0' ? d->row.response_code : NULL),
              COFRE_LF_STR("reason", d->reason));
}

/* ---- state changes ----------------------------------------------------------------------- */

static uint64_t backoff_ns(cofre_adapter_engine_t *e, unsigned attempt)
{
    return cofre_adapter_policy_backoff_ms(&e->cfg.retry, attempt, cofre_trace_rand64()) *
           NS_PER_MS;
}

static void wait_then(cofre_adapter_engine_t *e, delivery_t *d, bool reverse, uint64_t delay_ns)
{
    d->st = D_WAIT;
    d->wait_reverse = reverse;
    d->due_ns = cofre_now_mono_ns() + delay_ns;
    e->wait_due_ns = COFRE_MIN(e->wait_due_ns, d->due_ns);
}

static void to_reverse(cofre_adapter_engine_t *e, delivery_t *d)
{
    d->st = D_REVERSE;
    push(&e->reverse_q, d);
}

/* Builds the dead letter of d (reason and detail set). */
static void build_dead_letter(cofre_adapter_engine_t *e, delivery_t *d)
{
    const cofre_adapter_transfer_t *t = &d->row.t;
    cofre_adapter_dlq_source_t src = {
        .topic = e->cfg.topic, .partition = t->partition, .offset = t->offset};
    cofre_jbuf_reset(&d->dead);
    cofre_adapter_dlq_message(&d->dead, d->reason, d->detail,
                              d->row.response_code[0] != '\0' ? d->row.response_code : NULL,
                              d->row.attempts, t, &src, cofre_now_wall_us());
    snprintf(d->dead_keys[0], sizeof(d->dead_keys[0]), "transfer:%s", t->transfer_id);
    snprintf(d->dead_keys[1], sizeof(d->dead_keys[1]), "%s", t->transfer_id);
    d->dead_row = (cofre_adapter_dead_t){.source_key = d->dead_keys[0],
                                         .message_key = d->dead_keys[1],
                                         .reason = d->reason,
                                         .payload = d->dead.data,
                                         .payload_len = d->dead.len};
}

/* Decides d's outcome; it is written by the next commit. reason NULL: applied. */
static void finalize(cofre_adapter_engine_t *e, delivery_t *d, cofre_delivery_state_t state,
                     const char *reason, const char *code)
{
    d->st = D_FINAL;
    d->row.state = state;
    d->reason = reason;
    snprintf(d->row.response_code, sizeof(d->row.response_code), "%s", code != NULL ? code : "");
    if (reason != NULL) {
        if (d->detail[0] == '\0')
            snprintf(d->detail, sizeof(d->detail), "%s%s%s", reason, code != NULL ? " " : "",
                     code != NULL ? code : "");
        build_dead_letter(e, d);
    }
    d->next = e->finals;
    e->finals = d;
    e->nfinals++;
}

/* A transmission ended without applying (transient code, or acknowledged reversal). */
static void retry_or_fail(cofre_adapter_engine_t *e, delivery_t *d, const char *code)
{
    if (d->row.attempts >= e->cfg.retry_max) {
        snprintf(d->detail, sizeof(d->detail), "%u transmissions without approval",
                 d->row.attempts);
        finalize(e, d, COFRE_DELIVERY_FAILED, COFRE_ADAPTER_DLQ_EXHAUSTED, code);
        return;
    }
    wait_then(e, d, false, backoff_ns(e, d->row.attempts - 1));
}

/* ---- pool callbacks ---------------------------------------------------------------------- */

static void transfer_answered(cofre_adapter_engine_t *e, delivery_t *d, cofre_adapter_slot_t *s,
                              const cofre_iso_msg_t *resp)
{
    const char *code = cofre_link_response_code(resp);
    uint64_t now = cofre_now_mono_ns();
    switch (cofre_adapter_policy_classify(code)) {
    case COFRE_ADAPTER_RC_APPROVED: {
        cofre_adapter_breaker_success(&e->breaker, now, s->epoch);
        const char *auth = cofre_iso_get(resp, 38, NULL);
        snprintf(d->row.auth_id, sizeof(d->row.auth_id), "%s", auth != NULL ? auth : "");
        finalize(e, d, COFRE_DELIVERY_APPLIED, NULL, code);
        break;
    }
    case COFRE_ADAPTER_RC_TRANSIENT:
        cofre_adapter_breaker_failure(&e->breaker, now, s->epoch);
        cofre_counter_inc(cofre_adapter_metrics.transient);
        if (cofre_adapter_policy_needs_sign_on(code))
            cofre_adapter_pool_sign_on_again(e->pool, s->conn);
        snprintf(d->row.response_code, sizeof(d->row.response_code), "%s", code);
        log_delivery(COFRE_LOG_WARN, d, "transient decline; will retry");
        retry_or_fail(e, d, code);
        break;
    case COFRE_ADAPTER_RC_PERMANENT:
        cofre_adapter_breaker_success(&e->breaker, now, s->epoch);
        finalize(e, d, COFRE_DELIVERY_DECLINED,
                 code != NULL && strcmp(code, COFRE_LINK_RC_DUPLICATE) == 0
                     ? COFRE_ADAPTER_DLQ_DUPLICATE
                     : COFRE_ADAPTER_DLQ_DECLINED,
                 code);
        break;
    }
}

static void reversal_answered(cofre_adapter_engine_t *e, delivery_t *d, cofre_adapter_slot_t *s,
                              const cofre_iso_msg_t *resp)
{
    const char *code = cofre_link_response_code(resp);
    uint64_t now = cofre_now_mono_ns();
    switch (cofre_adapter_policy_classify(code)) {
    case COFRE_ADAPTER_RC_APPROVED:
        cofre_adapter_breaker_success(&e->breaker, now, s->epoch);
        cofre_counter_inc(cofre_adapter_metrics.reversed);
        d->row.reversals++;
        d->reversal_tries = 0;
        log_delivery(COFRE_LOG_INFO, d, "reversal acknowledged; will retry");
        retry_or_fail(e, d, NULL);
        break;
    case COFRE_ADAPTER_RC_TRANSIENT:
        cofre_adapter_breaker_failure(&e->breaker, now, s->epoch);
        cofre_counter_inc(cofre_adapter_metrics.transient);
        if (cofre_adapter_policy_needs_sign_on(code))
            cofre_adapter_pool_sign_on_again(e->pool, s->conn);
        wait_then(e, d, true, backoff_ns(e, d->reversal_tries));
        break;
    case COFRE_ADAPTER_RC_PERMANENT:
        cofre_adapter_breaker_success(&e->breaker, now, s->epoch);
        snprintf(d->detail, sizeof(d->detail),
                 "the host declined the reversal of transmission %06u with %s", d->row.stan,
                 code != NULL ? code : "no code");
        finalize(e, d, COFRE_DELIVERY_FAILED, COFRE_ADAPTER_DLQ_REV_DENIED, code);
        break;
    }
}

static void on_answered(void *data, cofre_adapter_slot_t *s, const cofre_iso_msg_t *resp,
                        uint64_t rtt_ns)
{
    cofre_adapter_engine_t *e = data;
    double secs = (double)rtt_ns / 1e9;
    delivery_t *d = s->owner;
    switch (s->kind) {
    case COFRE_ADAPTER_REQ_TRANSFER:
        cofre_histogram_observe(cofre_adapter_metrics.rtt_0200, secs);
        d->slot = NULL;
        transfer_answered(e, d, s, resp);
        break;
    case COFRE_ADAPTER_REQ_REVERSAL:
        cofre_histogram_observe(cofre_adapter_metrics.rtt_0400, secs);
        d->slot = NULL;
        reversal_answered(e, d, s, resp);
        break;
    default:
        cofre_histogram_observe(cofre_adapter_metrics.rtt_0800, secs);
        cofre_adapter_breaker_success(&e->breaker, cofre_now_mono_ns(), s->epoch);
        break;
    }
}

static void on_failed(void *data, cofre_adapter_slot_t *s, bool timed_out)
{
    cofre_adapter_engine_t *e = data;
    uint64_t now = cofre_now_mono_ns();
    /* A lost request is counted once, as its connection's failure (on_conn_failed). */
    if (timed_out)
        cofre_adapter_breaker_failure(&e->breaker, now, s->epoch);
    delivery_t *d = s->owner;
    switch (s->kind) {
    case COFRE_ADAPTER_REQ_TRANSFER:
        if (timed_out)
            cofre_counter_inc(cofre_adapter_metrics.timeouts_0200);
        d->slot = NULL;
        log_delivery(COFRE_LOG_WARN, d,
                     timed_out ? "no answer in time; reversing" : "connection lost; reversing");
        to_reverse(e, d);
        break;
    case COFRE_ADAPTER_REQ_REVERSAL:
        if (timed_out)
            cofre_counter_inc(cofre_adapter_metrics.timeouts_0400);
        d->slot = NULL;
        wait_then(e, d, true, backoff_ns(e, d->reversal_tries));
        break;
    default:
        if (timed_out)
            cofre_counter_inc(cofre_adapter_metrics.timeouts_0800);
        break;
    }
}

static void on_conn_failed(void *data)
{
    cofre_adapter_engine_t *e = data;
    cofre_adapter_breaker_failure(&e->breaker, cofre_now_mono_ns(),
                                  cofre_adapter_breaker_epoch(&e->breaker));
}

/* ---- loading ----------------------------------------------------------------------------- */

static void adopt(cofre_adapter_engine_t *e, const cofre_adapter_delivery_t *row)
{
    delivery_t *d = cofre_calloc(1, sizeof(*d));
    d->row = *row;
    cofre_jbuf_init(&d->dead);
    const char *tp = row->t.traceparent;
    cofre_trace_start(&d->trace, tp, strlen(tp));
    table_add(e, d);
    if (row->state == COFRE_DELIVERY_SENT) {
        /* The last run may have sent it: reverse that transmission before retrying. */
        log_delivery(COFRE_LOG_INFO, d, "resuming a transmission of unknown outcome; reversing");
        to_reverse(e, d);
    } else {
        d->st = D_READY;
        push(&e->ready_q, d);
    }
}

/* A store call worked: ready again (an idle engine commits nothing that would say so), but
 * not before the retry wait of a failed commit is over. */
static void store_works(cofre_adapter_engine_t *e, uint64_t now)
{
    if (!e->store_ok && now >= e->store_retry_at_ns)
        e->store_ok = true;
}

/* Reads up to want open deliveries after the cursor(s) into e->rows. */
static int load_rows(cofre_adapter_engine_t *e, uint64_t now, size_t want, size_t *n)
{
    if (e->leases == NULL)
        return cofre_adapter_store_load_open(e->store, e->max_seq, want, e->rows, n);
    size_t np = cofre_adapter_leases_loadable(e->leases, now, e->parts, e->after);
    return cofre_adapter_store_load_owned(e->store, e->parts, e->after, np, want, e->rows, n);
}

static void load(cofre_adapter_engine_t *e, uint64_t now)
{
    bool asked = atomic_exchange(&e->notified, false);
    if (e->leases != NULL && cofre_adapter_leases_gained(e->leases))
        asked = true;
    if (!asked && !e->more_in_store && now < e->load_at_ns)
        return;
    size_t room = e->cfg.active_max - e->nactive;
    if (room == 0) {
        e->more_in_store = true;
        return;
    }
    size_t want = COFRE_MIN(room, (size_t)LOAD_CHUNK), n = 0;
    if (load_rows(e, now, want, &n) != 0) {
        e->store_ok = false;
        e->load_at_ns = now + STORE_RETRY_NS;
        atomic_store(&e->notified, asked);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        adopt(e, &e->rows[i]);
        if (e->leases != NULL)
            cofre_adapter_leases_loaded(e->leases, e->rows[i].t.partition, e->rows[i].seq);
        else
            e->max_seq = e->rows[i].seq;
    }
    e->more_in_store = n == want;
    e->load_at_ns = now + LOAD_EVERY_NS;
    store_works(e, now);
}

/* Moves waiting deliveries whose time has come to their queue. */
static void wake_due(cofre_adapter_engine_t *e, uint64_t now)
{
    if (now < e->wait_due_ns)
        return;
    uint64_t next = UINT64_MAX;
    for (size_t i = 0; i < e->cfg.active_max; i++) {
        delivery_t *d = e->active[i];
        if (d == NULL || d->st != D_WAIT)
            continue;
        if (d->due_ns > now) {
            next = COFRE_MIN(next, d->due_ns);
        } else if (d->wait_reverse) {
            to_reverse(e, d);
        } else {
            d->st = D_READY;
            push(&e->ready_q, d);
        }
    }
    e->wait_due_ns = next;
}

/* ---- dispatch ---------------------------------------------------------------------------- */

static void transfer_of(const delivery_t *d, cofre_link_transfer_t *lt)
{
    const cofre_adapter_transfer_t *t = &d->row.t;
    *lt = (cofre_link_transfer_t){.transfer_id = t->transfer_id,
                                  .debit_account_id = t->debit_account_id,
                                  .credit_account_id = t->credit_account_id,
                                  .amount_minor = t->amount_minor,
                                  .currency = t->currency,
                                  .posted_at_us = t->posted_at_us};
}

static int encode_into(cofre_adapter_slot_t *s, const cofre_iso_msg_t *m)
{
    size_t len = 0;
    int rc = cofre_iso_encode_frame(m, s->frame, sizeof(s->frame), &len);
    s->frame_len = (uint16_t)len;
    return rc;
}

/* A stored row the link refuses (edited by hand?): dead-lettered rather than retried. */
static void unsendable(cofre_adapter_engine_t *e, delivery_t *d, int rc)
{
    snprintf(d->detail, sizeof(d->detail), "the stored transfer cannot be encoded: %s",
             cofre_strerror(rc));
    finalize(e, d, COFRE_DELIVERY_FAILED, COFRE_ADAPTER_DLQ_MALFORMED, NULL);
}

/* Makes room for one more update than the turn holds now. */
static void reserve_update(cofre_adapter_engine_t *e)
{
    size_t need = e->nsends + e->nfinals + 1;
    if (need <= e->updates_cap)
        return;
    e->updates_cap = COFRE_MAX(e->updates_cap * 2, need);
    e->updates = cofre_realloc(e->updates, e->updates_cap * sizeof(*e->updates));
    e->sends = cofre_realloc(e->sends, e->updates_cap * sizeof(*e->sends));
}

/* Builds the 0200 of d into s; its "sent" mark goes into this turn's commit. */
static void dispatch_transfer(cofre_adapter_engine_t *e, delivery_t *d, cofre_adapter_slot_t *s)
{
    cofre_link_transfer_t lt;
    transfer_of(d, &lt);
    uint64_t now_us = cofre_now_wall_us();
    int rc = cofre_link_build_transfer(&e->msg, &lt, s->stan, e->cfg.terminal, now_us);
    rc = rc != 0 ? rc : encode_into(s, &e->msg);
    if (rc != 0) {
        cofre_adapter_pool_cancel(e->pool, s);
        cofre_adapter_breaker_cancel(&e->breaker);
        unsendable(e, d, rc);
        return;
    }
    d->row.attempts++;
    if (d->row.attempts > 1)
        cofre_counter_inc(cofre_adapter_metrics.retries);
    d->row.stan = s->stan;
    d->row.sent_at_us = now_us;
    d->row.state = COFRE_DELIVERY_SENT;
    d->st = D_SENDING;
    d->slot = s;
    snprintf(s->rrn, sizeof(s->rrn), "%s", d->row.t.rrn);
    s->owner = d;
    reserve_update(e);
    e->sends[e->nsends++] = (pending_send_t){.d = d, .slot = s};
}

/* Builds and sends the 0400 reversing d's last transmission. */
static void dispatch_reversal(cofre_adapter_engine_t *e, delivery_t *d, cofre_adapter_slot_t *s)
{
    cofre_link_transfer_t lt;
    transfer_of(d, &lt);
    uint32_t stan = d->row.stan >= 1 && d->row.stan <= COFRE_LINK_STAN_MAX ? d->row.stan : 1;
    int rc = cofre_link_build_transfer(&e->orig, &lt, stan, e->cfg.terminal, d->row.sent_at_us);
    rc = rc != 0 ? rc : cofre_link_build_reversal(&e->msg, &e->orig, s->stan, cofre_now_wall_us());
    rc = rc != 0 ? rc : encode_into(s, &e->msg);
    if (rc != 0) {
        cofre_adapter_pool_cancel(e->pool, s);
        cofre_adapter_breaker_cancel(&e->breaker);
        unsendable(e, d, rc);
        return;
    }
    snprintf(s->rrn, sizeof(s->rrn), "%s", d->row.t.rrn);
    s->owner = d;
    d->st = D_REVERSING;
    d->slot = s;
    d->reversal_tries++;
    cofre_counter_inc(cofre_adapter_metrics.reversals);
    cofre_adapter_pool_send(e->pool, s);
}

/* In half-open with nothing to send: an echo is the probe. */
static void probe(cofre_adapter_engine_t *e, uint64_t now)
{
    if (!cofre_adapter_pool_has_room(e->pool) || !cofre_adapter_breaker_acquire(&e->breaker, now))
        return;
    cofre_adapter_slot_t *s = cofre_adapter_pool_reserve(e->pool, COFRE_ADAPTER_REQ_PROBE);
    COFRE_ASSERT(s != NULL);
    s->epoch = cofre_adapter_breaker_epoch(&e->breaker);
    int rc = cofre_link_build_network(&e->msg, COFRE_LINK_NMC_ECHO, s->stan, cofre_now_wall_us());
    rc = rc != 0 ? rc : encode_into(s, &e->msg);
    COFRE_ASSERT(rc == 0);
    cofre_adapter_pool_send(e->pool, s);
}

/* True when a 0200 sent now with stan would repeat d's last transmission (same fields 11 and
 * 7): the host would take it for that (reversed) transmission arriving late, and refuse it. */
static bool repeats_last(const delivery_t *d, uint32_t stan)
{
    if (d->row.attempts == 0 || d->row.stan != stan)
        return false;
    char now_f7[11], last_f7[11];
    cofre_link_format_time(cofre_now_wall_us(), now_f7, NULL, NULL);
    cofre_link_format_time(d->row.sent_at_us, last_f7, NULL, NULL);
    return memcmp(now_f7, last_f7, 10) == 0;
}

/* A slot for d's next request (the pool has room). */
static cofre_adapter_slot_t *reserve_for(cofre_adapter_engine_t *e, const delivery_t *d,
                                         bool reversal)
{
    cofre_adapter_slot_t *s = cofre_adapter_pool_reserve(
        e->pool, reversal ? COFRE_ADAPTER_REQ_REVERSAL : COFRE_ADAPTER_REQ_TRANSFER);
    COFRE_ASSERT(s != NULL);
    /* Taken again, a slot comes with the connection's next STAN. */
    for (int i = 0; i < 3 && !reversal && repeats_last(d, s->stan); i++) {
        cofre_adapter_pool_cancel(e->pool, s);
        s = cofre_adapter_pool_reserve(e->pool, COFRE_ADAPTER_REQ_TRANSFER);
        COFRE_ASSERT(s != NULL);
    }
    return s;
}

/* Puts the parked deliveries back at the front of q, in their order. */
static void unpark(queue_t *q, queue_t *parked)
{
    if (parked->head == NULL)
        return;
    parked->tail->next = q->head;
    q->head = parked->head;
    if (q->tail == NULL)
        q->tail = parked->tail;
}

/* True when a request for d may go out now (shared stores: its lease outlives the answer). */
static bool usable(const cofre_adapter_engine_t *e, const delivery_t *d, uint64_t now)
{
    return e->leases == NULL || cofre_adapter_leases_usable(e->leases, d->row.t.partition, now);
}

/* Sends reversals first, then 0200s (unless the store just failed), while allowed. Deliveries
 * whose lease is not usable are parked for this turn and keep their place. */
static void dispatch(cofre_adapter_engine_t *e, uint64_t now)
{
    bool sends_ok = e->store_ok || now >= e->store_retry_at_ns;
    bool any = false;
    queue_t parked[2] = {{0}, {0}};
    while (cofre_adapter_pool_has_room(e->pool)) {
        queue_t *q = e->reverse_q.head != NULL             ? &e->reverse_q
                     : sends_ok && e->ready_q.head != NULL ? &e->ready_q
                                                           : NULL;
        if (q != NULL && !usable(e, q->head, now)) {
            push(&parked[q == &e->ready_q], pop(q));
            continue;
        }
        if (q == NULL || !cofre_adapter_breaker_acquire(&e->breaker, now))
            break;
        bool reversal = q == &e->reverse_q;
        delivery_t *d = pop(q);
        cofre_adapter_slot_t *s = reserve_for(e, d, reversal);
        s->epoch = cofre_adapter_breaker_epoch(&e->breaker);
        if (reversal)
            dispatch_reversal(e, d, s);
        else
            dispatch_transfer(e, d, s);
        any = true;
    }
    unpark(&e->reverse_q, &parked[0]);
    unpark(&e->ready_q, &parked[1]);
    if (!any && e->reverse_q.head == NULL && e->ready_q.head == NULL &&
        cofre_adapter_breaker_state(&e->breaker, now) == COFRE_BREAKER_HALF_OPEN)
        probe(e, now);
}

/* ---- commit ------------------------------------------------------------------------------ */

static void fill_updates(cofre_adapter_engine_t *e)
{
    size_t n = 0;
    for (size_t i = 0; i < e->nsends; i++) {
        const delivery_t *d = e->sends[i].d;
        e->updates[n++] = (cofre_adapter_update_t){.seq = d->row.seq,
                                                   .partition = d->row.t.partition,
                                                   .state = COFRE_DELIVERY_SENT,
                                                   .attempts = d->row.attempts,
                                                   .reversals = d->row.reversals,
                                                   .stan = d->row.stan,
                                                   .sent_at_us = d->row.sent_at_us};
    }
    for (delivery_t *d = e->finals; d != NULL; d = d->next) {
        e->updates[n++] = (cofre_adapter_update_t){
            .seq = d->row.seq,
            .partition = d->row.t.partition,
            .state = d->row.state,
            .attempts = d->row.attempts,
            .reversals = d->row.reversals,
            .response_code = d->row.response_code,
            .auth_id = d->row.auth_id,
            .reason = d->reason,
            .dead = d->reason != NULL ? &d->dead_row : NULL,
        };
    }
}

/* Applies the updates in transactions of at most COFRE_ADAPTER_STORE_BATCH_MAX; a shared
 * store that refuses one for lost leases names their partitions in e->lost. */
static int apply_updates(cofre_adapter_engine_t *e, size_t n, size_t *nlost)
{
    int rc = 0;
    for (size_t off = 0; rc == 0 && off < n; off += COFRE_ADAPTER_STORE_BATCH_MAX)
        rc = cofre_adapter_store_apply_owned(
            e->store, e->updates + off, COFRE_MIN(n - off, (size_t)COFRE_ADAPTER_STORE_BATCH_MAX),
            e->lost, nlost);
    return rc;
}

static void finals_done(cofre_adapter_engine_t *e)
{
    bool dead = false;
    while (e->finals != NULL) {
        delivery_t *d = e->finals;
        e->finals = d->next;
        switch (d->row.state) {
        case COFRE_DELIVERY_APPLIED:
            cofre_counter_inc(cofre_adapter_metrics.approved);
            log_delivery(COFRE_LOG_INFO, d, "delivered to the legacy host");
            break;
        case COFRE_DELIVERY_DECLINED:
            cofre_counter_inc(cofre_adapter_metrics.declined);
            log_delivery(COFRE_LOG_WARN, d, "declined by the legacy host; dead-lettered");
            break;
        default:
            cofre_counter_inc(cofre_adapter_metrics.failed);
            log_delivery(COFRE_LOG_ERROR, d, "delivery failed; dead-lettered");
            break;
        }
        dead = dead || d->reason != NULL;
        table_remove(e, d);
    }
    e->nfinals = 0;
    if (dead && e->cfg.dead_lettered != NULL)
        e->cfg.dead_lettered(e->cfg.data);
}

/* The commit failed: the built 0200s go back to the front of the ready queue, unsent. */
static void undo_sends(cofre_adapter_engine_t *e)
{
    for (size_t i = e->nsends; i-- > 0;) {
        delivery_t *d = e->sends[i].d;
        cofre_adapter_pool_cancel(e->pool, e->sends[i].slot);
        cofre_adapter_breaker_cancel(&e->breaker);
        d->slot = NULL;
        d->row.attempts--;
        d->st = D_READY;
        push_front(&e->ready_q, d);
    }
}

/* Shared stores: this turn's 0200s and outcomes of partitions no longer leased go unsent and
 * unstored (the next owner resumes from what the store holds). */
static void purge_draining(cofre_adapter_engine_t *e)
{
    size_t keep = 0;
    for (size_t i = 0; i < e->nsends; i++) {
        delivery_t *d = e->sends[i].d;
        if (!cofre_adapter_leases_draining(e->leases, d->row.t.partition)) {
            e->sends[keep++] = e->sends[i];
            continue;
        }
        cofre_adapter_pool_cancel(e->pool, e->sends[i].slot);
        cofre_adapter_breaker_cancel(&e->breaker);
        table_remove(e, d);
    }
    e->nsends = keep;
    for (delivery_t **at = &e->finals; *at != NULL;) {
        delivery_t *d = *at;
        if (!cofre_adapter_leases_draining(e->leases, d->row.t.partition)) {
            at = &d->next;
            continue;
        }
        *at = d->next;
        e->nfinals--;
        table_remove(e, d);
    }
}

/* Fills and applies this turn's updates; on a shared store, a refusal for lost leases drops
 * those partitions' changes and applies the rest. */
static int commit_updates(cofre_adapter_engine_t *e)
{
    size_t nlost = 0;
    int rc = 0;
    for (int round = 0; round < 2; round++) {
        if (e->leases != NULL)
            purge_draining(e);
        size_t n = e->nsends + e->nfinals;
        if (n == 0)
            return 0;
        fill_updates(e);
        rc = apply_updates(e, n, &nlost);
        if (rc != COFRE_ECONFLICT || nlost == 0 || e->leases == NULL)
            return rc;
        for (size_t i = 0; i < nlost; i++)
            cofre_adapter_leases_lose(e->leases, e->lost[i]);
    }
    return rc;
}

static void commit(cofre_adapter_engine_t *e, uint64_t now)
{
    if (e->nsends + e->nfinals == 0)
        return;
    reserve_update(e);
    if (commit_updates(e) != 0) {
        e->store_ok = false;
        e->store_retry_at_ns = now + STORE_RETRY_NS;
        undo_sends(e);
        e->nsends = 0;
        return; /* the finals stay for the next turn */
    }
    e->store_ok = true;
    for (size_t i = 0; i < e->nsends; i++) {
        e->sends[i].d->st = D_SENT;
        cofre_adapter_pool_send(e->pool, e->sends[i].slot);
    }
    e->nsends = 0;
    finals_done(e);
}

/* ---- partition leases (shared stores) ---------------------------------------------------- */

static bool has_request(const delivery_t *d)
{
    return d->st == D_SENDING || d->st == D_SENT || d->st == D_REVERSING || d->st == D_FINAL;
}

/* Marks in e->busy the partitions with a request out or an outcome not yet stored. */
static void find_busy(cofre_adapter_engine_t *e)
{
    memset(e->busy, 0, sizeof(e->busy));
    for (size_t i = 0; i < e->cfg.active_max; i++) {
        const delivery_t *d = e->active[i];
        int32_t p = d != NULL ? d->row.t.partition : -1;
        if (p >= 0 && p < COFRE_ADAPTER_PARTITIONS_MAX && has_request(d))
            e->busy[p] = true;
    }
}

/* Removes the deliveries marked dropping from q. */
static void unqueue_dropping(queue_t *q)
{
    queue_t keep = {0};
    delivery_t *d;
    while ((d = pop(q)) != NULL)
        if (!d->dropping)
            push(&keep, d);
    *q = keep;
}

/* Lets the deliveries of partitions no longer leased leave memory, except those with a
 * request out (their answer is awaited, then dropped unstored); a partition with nothing left
 * may be loaded again. */
static void drain(cofre_adapter_engine_t *e)
{
    size_t np = cofre_adapter_leases_drains(e->leases, e->parts);
    if (np == 0)
        return;
    memset(e->marked, 0, sizeof(e->marked));
    for (size_t i = 0; i < np; i++)
        e->marked[e->parts[i]] = true;
    find_busy(e);
    size_t dropped = 0;
    for (size_t i = 0; i < e->cfg.active_max; i++) {
        delivery_t *d = e->active[i];
        int32_t p = d != NULL ? d->row.t.partition : -1;
        if (d != NULL && (p < 0 || p >= COFRE_ADAPTER_PARTITIONS_MAX || e->marked[p]) &&
            !has_request(d)) {
            d->dropping = true;
            dropped++;
        }
    }
    if (dropped > 0) {
        unqueue_dropping(&e->ready_q);
        unqueue_dropping(&e->reverse_q);
        for (size_t i = 0; i < e->cfg.active_max; i++)
            if (e->active[i] != NULL && e->active[i]->dropping)
                table_remove(e, e->active[i]);
        COFRE_LOG(COFRE_LOG_INFO, NULL, "deliveries of partitions no longer leased left memory",
                  COFRE_LF_INT("deliveries", (int64_t)dropped));
    }
    for (size_t i = 0; i < np; i++)
        if (!e->busy[e->parts[i]])
            cofre_adapter_leases_drained(e->leases, e->parts[i]);
}

/* Once per turn: leases that ran out, a lease round when due, draining. */
static void keep_leases(cofre_adapter_engine_t *e, uint64_t now)
{
    cofre_adapter_leases_expire(e->leases, now);
    if (now >= cofre_adapter_leases_due_ns(e->leases)) {
        find_busy(e);
        if (cofre_adapter_leases_round(e->leases, e->store, now, e->busy) != 0)
            e->store_ok = false;
        else
            store_works(e, now);
    }
    drain(e);
}

/* ---- the thread -------------------------------------------------------------------------- */

static int readiness(cofre_adapter_engine_t *e, uint64_t now)
{
    if (!e->store_ok)
        return 1;
    switch (cofre_adapter_breaker_state(&e->breaker, now)) {
    case COFRE_BREAKER_OPEN:
        return 2;
    case COFRE_BREAKER_HALF_OPEN:
        return 3;
    case COFRE_BREAKER_CLOSED:
        break;
    }
    return cofre_adapter_pool_ready(e->pool) == 0 ? 4 : 0;
}

static void publish_state(cofre_adapter_engine_t *e, uint64_t now)
{
    cofre_adapter_breaker_state_t st = cofre_adapter_breaker_state(&e->breaker, now);
    cofre_gauge_set(cofre_adapter_metrics.breaker_state, (double)st);
    if (e->breaker.opens != e->opens_seen) {
        cofre_counter_add(cofre_adapter_metrics.breaker_opens, e->breaker.opens - e->opens_seen);
        e->opens_seen = e->breaker.opens;
        COFRE_LOG(COFRE_LOG_WARN, NULL, "legacy host circuit breaker opened",
                  COFRE_LF_INT("opens", (int64_t)e->opens_seen),
                  COFRE_LF_INT("open_ms", (int64_t)e->cfg.breaker_open_ms));
    }
    cofre_gauge_set(cofre_adapter_metrics.in_flight, cofre_adapter_pool_in_flight(e->pool));
    cofre_gauge_set(cofre_adapter_metrics.active, (double)e->nactive);
    atomic_store(&e->ready_state, readiness(e, now));
}

/* How long the next wait may last. */
static uint64_t next_wait_ns(cofre_adapter_engine_t *e, uint64_t now)
{
    uint64_t due = now + IDLE_WAIT_NS;
    due = COFRE_MIN(due, e->load_at_ns);
    due = COFRE_MIN(due, e->wait_due_ns);
    if (e->more_in_store && e->nactive < e->cfg.active_max)
        due = now;
    uint64_t open = cofre_adapter_breaker_wait_ns(&e->breaker, now);
    if (open > 0)
        due = COFRE_MIN(due, now + open);
    if (e->leases != NULL)
        due = COFRE_MIN(due, cofre_adapter_leases_due_ns(e->leases));
    if (!e->store_ok && e->nfinals > 0)
        due = COFRE_MIN(due, e->store_retry_at_ns);
    return due > now ? due - now : 0;
}

/* One turn. Returns false when stopping and nothing is in flight any more. */
static bool turn(cofre_adapter_engine_t *e, bool stopping)
{
    uint64_t now = cofre_now_mono_ns();
    cofre_adapter_pool_run(e->pool, next_wait_ns(e, now));
    now = cofre_now_mono_ns();
    if (e->leases != NULL)
        keep_leases(e, now);
    if (!stopping) {
        load(e, now);
        wake_due(e, now);
        dispatch(e, now);
    }
    commit(e, now);
    cofre_adapter_pool_flush(e->pool);
    publish_state(e, now);
    cofre_log_flush();
    return !stopping || cofre_adapter_pool_in_flight(e->pool) > 0 || e->nfinals > 0;
}

static void *engine_main(void *arg)
{
    cofre_adapter_engine_t *e = arg;
    cofre_log_buffer_start();
    while (turn(e, false) && !atomic_load(&e->stop))
        ;
    uint64_t deadline = cofre_now_mono_ns() + e->cfg.shutdown_timeout_ms * NS_PER_MS;
    while (cofre_now_mono_ns() < deadline && turn(e, true))
        ;
    if (e->leases != NULL) {
        /* The next owners need not wait for these leases to expire. */
        find_busy(e);
        cofre_adapter_leases_release_all(e->leases, e->store, e->busy);
    }
    COFRE_LOG(COFRE_LOG_INFO, NULL, "delivery engine stopped",
              COFRE_LF_INT("in_flight", cofre_adapter_pool_in_flight(e->pool)),
              COFRE_LF_INT("open_deliveries", (int64_t)e->nactive));
    cofre_log_flush();
    return NULL;
}

static void engine_free(cofre_adapter_engine_t *e)
{
    cofre_adapter_pool_free(e->pool);
    cofre_adapter_store_close(e->store);
    for (size_t i = 0; e->active != NULL && i < e->cfg.active_max; i++) {
        if (e->active[i] != NULL) {
            cofre_jbuf_release(&e->active[i]->dead);
            free(e->active[i]);
        }
    }
    if (e->wake_fd >= 0)
        close(e->wake_fd);
    free(e->active);
    free(e->rows);
    free(e->updates);
    free(e->sends);
    free(e);
}

cofre_adapter_engine_t *cofre_adapter_engine_start(const cofre_adapter_engine_config_t *cfg)
{
    COFRE_ASSERT(cfg->retry_max >= 1);
    COFRE_ASSERT(cfg->active_max >= 1 && cfg->active_max <= COFRE_ADAPTER_ACTIVE_MAX);
    cofre_adapter_engine_t *e = cofre_calloc(1, sizeof(*e));
    e->cfg = *cfg;
    e->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    atomic_init(&e->stop, false);
    atomic_init(&e->notified, true);
    atomic_init(&e->ready_state, 4);
    e->active = cofre_calloc(cfg->active_max, sizeof(*e->active));
    e->rows = cofre_calloc(LOAD_CHUNK, sizeof(*e->rows));
    e->store_ok = true;
    e->wait_due_ns = UINT64_MAX;
    cofre_adapter_breaker_init(&e->breaker, cfg->breaker_failures, cfg->breaker_open_ms);
    cofre_adapter_pool_events_t ev = {
        .answered = on_answered, .failed = on_failed, .conn_failed = on_conn_failed, .data = e};
    if (e->wake_fd < 0 || cofre_adapter_store_open(cfg->db_url, false, &e->store) != 0 ||
        (e->pool = cofre_adapter_pool_new(&cfg->pool, &ev, e->wake_fd)) == NULL) {
        cofre_log_msg(COFRE_LOG_ERROR, NULL, "cannot start the delivery engine");
        engine_free(e);
        return NULL;
    }
    COFRE_ASSERT(cofre_adapter_store_shared(e->store) == (cfg->leases != NULL));
    e->leases = cfg->leases;
    if (e->leases != NULL)
        cofre_adapter_store_set_owner(e->store, cfg->owner);
    if (pthread_create(&e->thread, NULL, engine_main, e) != 0) {
        cofre_log_msg(COFRE_LOG_ERROR, NULL, "cannot start the delivery engine thread");
        engine_free(e);
        return NULL;
    }
    return e;
}

static void wake(cofre_adapter_engine_t *e)
{
    uint64_t one = 1;
    ssize_t w = write(e->wake_fd, &one, sizeof(one));
    (void)w; /* a full counter means a wake-up is pending anyway */
}

void cofre_adapter_engine_notify(cofre_adapter_engine_t *e)
{
    atomic_store(&e->notified, true);
    wake(e);
}

void cofre_adapter_engine_stop(cofre_adapter_engine_t *e)
{
    atomic_store(&e->stop, true);
    wake(e);
    pthread_join(e->thread, NULL);
    engine_free(e);
}

bool cofre_adapter_engine_ready(cofre_adapter_engine_t *e, const char **reason)
{
    int st = atomic_load(&e->ready_state);
    if (st == 0)
        return true;
    *reason = not_ready[st];
    return false;
}
