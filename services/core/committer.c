/*
 * committer.c: the batching committer.
 *
 * A committer thread pops every command waiting (up to batch_max), splits them into chunks of
 * at most CHUNK_TRANSFERS_MAX transfers, and runs each chunk as one transaction:
 *
 *   begin -> lookup (idempotency records, accounts locked in id order, transfer ids)
 *         -> decide each command in arrival order on the ledger's in-memory batch state
 *         -> write (accounts, transfers, idempotency records, outbox rows) -> commit
 *
 * A conflict (another writer won a lock or a unique key) rolls back and redoes the chunk from
 * the lookup, a bounded number of times. A database failure answers every command of the
 * chunk 503: nothing of it was committed, and nothing of it was stored as an idempotent answer,
 * so a retry with the same key runs again.
 */
#include "core/committer.h"

#include "cofre/common.h"
#include "cofre/jbuf.h"
#include "cofre/log.h"
#include "cofre/metrics.h"
#include "cofre/queue.h"
#include "cofre/uuid.h"
#include "core/wire.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CHUNK_TRANSFERS_MAX 4096
#define ATTEMPTS_MAX        6
#define POP_WAIT_NS         100000000u
#define HEALTH_INTERVAL_NS  1000000000u
/* Expired idempotency records go in small chunks between batches, so a backlog never holds
 * a batch up for long: while chunks come back full, one more at each batch boundary. */
#define PRUNE_INTERVAL_NS     10000000000u
#define PRUNE_CHUNK_ROWS      256
#define COMMITTER_THREADS_MAX 16

static const char topic_ledger[] = "cofre.ledger.events";

/* Growable arrays of the chunk being committed; kept between chunks to reuse memory. */
typedef struct scratch {
    size_t cap_cmds, cap_ids, cap_transfers;
    cofre_idem_key_t *idem_keys;
    cofre_idem_record_t *idem;
    const char **account_ids;
    cofre_account_t *accounts;
    bool *account_found;
    const char **transfer_ids;
    bool *transfer_found;
    const cofre_account_t **new_accounts;
    const cofre_account_t **changed_accounts;
    cofre_transfer_write_t *transfer_writes;
    cofre_idem_write_t *idem_writes;
    cofre_outbox_write_t *outbox;
    char **payloads;
} scratch_t;

/* What one attempt decided, added to the metrics only once its transaction commits. */
typedef struct tally {
    uint64_t transfers[COFRE_P_COUNT_];
    uint64_t accounts[COFRE_P_COUNT_];
    uint64_t replays;
    uint64_t key_reused;
} tally_t;

typedef struct worker {
    cofre_committer_t *c;
    tally_t tally;
    pthread_t thread;
    cofre_store_t *store;
    cofre_ledger_t *ledger;
    scratch_t s;
    cofre_write_set_t ws;
    size_t npayloads;
    char now[COFRE_TIME_LEN + 1];
    uint64_t last_health_ns;
    uint64_t last_prune_ns;
    bool prune_backlog;   /* the last chunk was full: more are due now */
    uint64_t pruned_rows; /* since the last log line */
} worker_t;

struct cofre_committer {
    cofre_committer_config_t cfg;
    cofre_queue_t *queue;
    worker_t workers[COMMITTER_THREADS_MAX];
    _Atomic bool db_up;
    cofre_series_t *outcomes[COFRE_P_COUNT_];
    cofre_series_t *account_outcomes[COFRE_P_COUNT_];
    cofre_metric_t *amount_posted;
    cofre_series_t *replays;
    cofre_series_t *key_reused;
    cofre_series_t *batch_size;
    cofre_series_t *commit_seconds;
    cofre_series_t *failures_conflict;
    cofre_series_t *failures_unavailable;
    cofre_series_t *failures_error;
};

void cofre_cmd_free(cofre_cmd_t *cmd)
{
    cofre_account_release(&cmd->account);
    free(cmd->transfers);
    free(cmd->body);
    free(cmd);
}

/* ---- scratch memory --------------------------------------------------------------------- */

#define GROW(ptr, cap, need) ((ptr) = cofre_realloc((ptr), COFRE_MAX((need), 1) * sizeof(*(ptr))))

static void scratch_reserve(scratch_t *s, size_t ncmds, size_t ntransfers)
{
    size_t nids = 2 * ntransfers + ncmds;
    if (ncmds > s->cap_cmds) {
        GROW(s->idem_keys, s->cap_cmds, ncmds);
        GROW(s->idem, s->cap_cmds, ncmds);
        GROW(s->idem_writes, s->cap_cmds, ncmds);
        s->cap_cmds = ncmds;
    }
    if (nids > s->cap_ids) {
        GROW(s->account_ids, s->cap_ids, nids);
        GROW(s->accounts, s->cap_ids, nids);
        GROW(s->account_found, s->cap_ids, nids);
        GROW(s->new_accounts, s->cap_ids, nids);
        GROW(s->changed_accounts, s->cap_ids, nids);
        s->cap_ids = nids;
    }
    if (ntransfers + ncmds > s->cap_transfers) {
        size_t n = ntransfers + ncmds;
        GROW(s->transfer_ids, s->cap_transfers, n);
        GROW(s->transfer_found, s->cap_transfers, n);
        GROW(s->transfer_writes, s->cap_transfers, n);
        GROW(s->outbox, s->cap_transfers, n);
        GROW(s->payloads, s->cap_transfers, n);
        s->cap_transfers = n;
    }
}

static void scratch_release(scratch_t *s)
{
    free(s->idem_keys);
    free(s->idem);
    free(s->idem_writes);
    free(s->account_ids);
    free(s->accounts);
    free(s->account_found);
    free(s->new_accounts);
    free(s->changed_accounts);
    free(s->transfer_ids);
    free(s->transfer_found);
    free(s->transfer_writes);
    free(s->outbox);
    free(s->payloads);
}

/* ---- answers ---------------------------------------------------------------------------- */

static void set_answer(cofre_cmd_t *cmd, int status, cofre_jbuf_t *b)
{
    free(cmd->body);
    cmd->status = status;
    cmd->body = cofre_jbuf_steal(b, &cmd->body_len);
}

static void problem_answer(cofre_cmd_t *cmd, const cofre_problem_t *p)
{
    cofre_jbuf_t b;
    cofre_jbuf_init(&b);
    cofre_problem_render(p, cmd->request_id, &b);
    set_answer(cmd, cofre_problem_status(p->code), &b);
}

/* A problem for a ledger decision, naming the accounts involved. */
static void describe(cofre_ledger_t *l, const cofre_transfer_t *t, cofre_problem_code_t code,
                     cofre_problem_t *p)
{
    switch (code) {
    case COFRE_P_ACCOUNT_NOT_FOUND:
        cofre_problem_set(p, code, "account %s does not exist",
                          cofre_ledger_account(l, t->debit_account_id) == NULL ||
                                  cofre_ledger_account(l, t->credit_account_id) != NULL
                              ? t->debit_account_id
                              : t->credit_account_id);
        break;
    case COFRE_P_INSUFFICIENT_FUNDS:
        cofre_problem_set(p, code, "account %s has insufficient funds for %lld",
                          t->debit_account_id, (long long)t->amount);
        break;
    case COFRE_P_CURRENCY_MISMATCH:
        cofre_problem_set(p, code, "the transfer is in %s; both accounts must be too", t->currency);
        break;
    case COFRE_P_TRANSFER_EXISTS:
        cofre_problem_set(p, code, "transfer %s exists", t->id);
        break;
    default:
        cofre_problem_set(p, code, "%s", cofre_problem_title(code));
        break;
    }
}

/* ---- events ----------------------------------------------------------------------------- */

static void write_actor(cofre_jbuf_t *b, const cofre_cmd_t *cmd)
{
    cofre_jbuf_key(b, "actor");
    cofre_jbuf_obj_begin(b);
    cofre_jbuf_kstr(b, "client_id", cmd->client_id);
    cofre_jbuf_kstr(b, "owner", cmd->owner[0] != '\0' ? cmd->owner : NULL);
    cofre_jbuf_kstr(b, "address", cmd->peer);
    cofre_jbuf_kstr(b, "request_id", cmd->request_id);
    cofre_jbuf_obj_end(b);
}

/* Queues one outbox row: a CloudEvents 1.0 envelope around entity (written by write_entity). */
static void add_event(worker_t *w, const cofre_cmd_t *cmd, const char *type, const char *subject,
                      const char *key, const char *entity_name,
                      void (*write_entity)(cofre_jbuf_t *b, const void *entity), const void *entity)
{
    cofre_outbox_write_t *o = &w->s.outbox[w->ws.n_outbox++];
    cofre_uuid_v7(o->event_id);
    o->topic = topic_ledger;
    o->partition_key = key;
    o->type = type;
    o->traceparent = cmd->traceparent;
    cofre_jbuf_t b;
    cofre_jbuf_init(&b);
    cofre_jbuf_obj_begin(&b);
    cofre_jbuf_kstr(&b, "specversion", "1.0");
    cofre_jbuf_kstr(&b, "id", o->event_id);
    cofre_jbuf_kstr(&b, "source", "/cofre/core");
    cofre_jbuf_kstr(&b, "type", type);
    cofre_jbuf_kstr(&b, "time", w->now);
    cofre_jbuf_kstr(&b, "subject", subject);
    cofre_jbuf_kstr(&b, "datacontenttype", "application/json");
    cofre_jbuf_kstr(&b, "traceparent", cmd->traceparent);
    cofre_jbuf_key(&b, "data");
    cofre_jbuf_obj_begin(&b);
    cofre_jbuf_key(&b, entity_name);
    write_entity(&b, entity);
    write_actor(&b, cmd);
    cofre_jbuf_obj_end(&b);
    cofre_jbuf_obj_end(&b);
    char *payload = cofre_jbuf_steal(&b, &o->payload_len);
    o->payload = payload;
    w->s.payloads[w->npayloads++] = payload;
}

static void write_account_entity(cofre_jbuf_t *b, const void *a)
{
    cofre_wire_account(b, a);
}

static void write_transfer_entity(cofre_jbuf_t *b, const void *t)
{
    cofre_wire_transfer(b, t);
}

/* ---- deciding --------------------------------------------------------------------------- */

static void record_posted(worker_t *w, const cofre_cmd_t *cmd, const cofre_transfer_t *t)
{
    w->s.transfer_writes[w->ws.n_transfers++] = (cofre_transfer_write_t){t, cmd->client_id};
    add_event(w, cmd, "cofre.transfer.posted", t->id, t->debit_account_id, "transfer",
              write_transfer_entity, t);
}

static void open_account(worker_t *w, cofre_cmd_t *cmd)
{
    memcpy(cmd->account.created_at, w->now, sizeof(w->now));
    cofre_problem_code_t code = cofre_ledger_open_account(w->ledger, &cmd->account);
    w->tally.accounts[code]++;
    if (code != COFRE_P_NONE) {
        cofre_problem_t p;
        cofre_problem_set(&p, code, "account %s exists", cmd->account.id);
        problem_answer(cmd, &p);
        return;
    }
    const cofre_account_t *a = cofre_ledger_account(w->ledger, cmd->account.id);
    cofre_jbuf_t b;
    cofre_jbuf_init(&b);
    cofre_wire_account(&b, a);
    set_answer(cmd, 201, &b);
    add_event(w, cmd, "cofre.account.created", a->id, a->id, "account", write_account_entity, a);
}

static cofre_problem_code_t post_one(worker_t *w, const cofre_cmd_t *cmd, cofre_transfer_t *t,
                                     cofre_problem_t *p)
{
    memcpy(t->created_at, w->now, sizeof(w->now));
    const char *owner = cmd->admin ? NULL : cmd->owner;
    cofre_problem_code_t code = cofre_ledger_post_transfer(w->ledger, t, owner);
    if (code != COFRE_P_NONE)
        describe(w->ledger, t, code, p);
    return code;
}

static void post_single(worker_t *w, cofre_cmd_t *cmd)
{
    cofre_transfer_t *t = &cmd->transfers[0];
    cofre_problem_t p;
    cofre_problem_code_t code = post_one(w, cmd, t, &p);
    w->tally.transfers[code]++;
    if (code != COFRE_P_NONE) {
        problem_answer(cmd, &p);
        return;
    }
    record_posted(w, cmd, t);
    cofre_jbuf_t b;
    cofre_jbuf_init(&b);
    cofre_wire_transfer(&b, t);
    set_answer(cmd, 201, &b);
}

static void post_batch(worker_t *w, cofre_cmd_t *cmd)
{
    cofre_jbuf_t b;
    cofre_jbuf_init(&b);
    cofre_jbuf_obj_begin(&b);
    cofre_jbuf_kbool(&b, "atomic", false);
    cofre_jbuf_key(&b, "results");
    cofre_jbuf_arr_begin(&b);
    for (size_t i = 0; i < cmd->ntransfers; i++) {
        cofre_transfer_t *t = &cmd->transfers[i];
        cofre_problem_t p;
        cofre_jbuf_obj_begin(&b);
        cofre_problem_code_t code = post_one(w, cmd, t, &p);
        w->tally.transfers[code]++;
        if (code == COFRE_P_NONE) {
            record_posted(w, cmd, t);
            cofre_jbuf_kint(&b, "status", 201);
            cofre_jbuf_key(&b, "transfer");
            cofre_wire_transfer(&b, t);
        } else {
            cofre_jbuf_kint(&b, "status", cofre_problem_status(p.code));
            cofre_jbuf_key(&b, "error");
            cofre_jbuf_obj_begin(&b);
            cofre_problem_render_members(&p, 0, &b);
            cofre_jbuf_obj_end(&b);
        }
        cofre_jbuf_obj_end(&b);
    }
    cofre_jbuf_arr_end(&b);
    cofre_jbuf_obj_end(&b);
    set_answer(cmd, 201, &b);
}

static void post_atomic(worker_t *w, cofre_cmd_t *cmd)
{
    size_t mark = cofre_ledger_mark(w->ledger);
    for (size_t i = 0; i < cmd->ntransfers; i++) {
        cofre_problem_t p;
        if (post_one(w, cmd, &cmd->transfers[i], &p) == COFRE_P_NONE)
            continue;
        w->tally.transfers[p.code]++;
        cofre_ledger_undo(w->ledger, mark);
        cofre_jbuf_t b;
        cofre_jbuf_init(&b);
        cofre_jbuf_obj_begin(&b);
        cofre_problem_render_members(&p, 422, &b);
        cofre_jbuf_kuint(&b, "index", i);
        cofre_jbuf_kstr(&b, "request_id", cmd->request_id);
        cofre_jbuf_obj_end(&b);
        set_answer(cmd, 422, &b);
        return;
    }
    for (size_t i = 0; i < cmd->ntransfers; i++)
        record_posted(w, cmd, &cmd->transfers[i]);
    w->tally.transfers[COFRE_P_NONE] += cmd->ntransfers;
    cofre_jbuf_t b;
    cofre_jbuf_init(&b);
    cofre_jbuf_obj_begin(&b);
    cofre_jbuf_kbool(&b, "atomic", true);
    cofre_jbuf_key(&b, "results");
    cofre_jbuf_arr_begin(&b);
    for (size_t i = 0; i < cmd->ntransfers; i++) {
        cofre_jbuf_obj_begin(&b);
        cofre_jbuf_kint(&b, "status", 201);
        cofre_jbuf_key(&b, "transfer");
        cofre_wire_transfer(&b, &cmd->transfers[i]);
        cofre_jbuf_obj_end(&b);
    }
    cofre_jbuf_arr_end(&b);
    cofre_jbuf_obj_end(&b);
    set_answer(cmd, 201, &b);
}

/* Decides one command; returns true when its answer is to be stored as idempotent. */
static bool decide(worker_t *w, cofre_cmd_t *cmd, const cofre_idem_record_t *rec)
{
    cmd->replayed = false;
    if (rec->found) {
        if (memcmp(rec->request_hash, cmd->request_hash, COFRE_IDEMPOTENCY_HASH_LEN) != 0) {
            cofre_problem_t p;
            cofre_problem_set(&p, COFRE_P_IDEMPOTENCY_KEY_REUSED,
                              "the key \"%.64s\" was used with another request", cmd->idem_key);
            problem_answer(cmd, &p);
            w->tally.key_reused++;
            return false;
        }
        free(cmd->body);
        cmd->status = rec->status;
        cmd->body = cofre_strndup(rec->body, rec->body_len);
        cmd->body_len = rec->body_len;
        cmd->replayed = true;
        w->tally.replays++;
        return false;
    }
    if (cmd->kind == COFRE_CMD_OPEN_ACCOUNT)
        open_account(w, cmd);
    else if (!cmd->batch)
        post_single(w, cmd);
    else if (cmd->atomic)
        post_atomic(w, cmd);
    else
        post_batch(w, cmd);
    return true;
}

/* ---- one chunk, one transaction --------------------------------------------------------- */

static int compare_ids(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void build_lookup(worker_t *w, cofre_cmd_t **cmds, size_t n, cofre_lookup_t *lk)
{
    scratch_t *s = &w->s;
    size_t nids = 0, ntransfers = 0, nposts = 0;
    for (size_t i = 0; i < n; i++) {
        cofre_cmd_t *cmd = cmds[i];
        s->idem_keys[i] = (cofre_idem_key_t){cmd->client_id, cmd->idem_key};
        if (cmd->kind == COFRE_CMD_OPEN_ACCOUNT)
            s->account_ids[nids++] = cmd->account.id;
        nposts += cmd->ntransfers;
        for (size_t j = 0; j < cmd->ntransfers; j++) {
            const cofre_transfer_t *t = &cmd->transfers[j];
            s->account_ids[nids++] = t->debit_account_id;
            s->account_ids[nids++] = t->credit_account_id;
            /* Only an id the client chose can already exist (the table's unique key would
             * still refuse a generated one that somehow did). */
            if (!t->id_generated)
                s->transfer_ids[ntransfers++] = t->id;
        }
    }
    qsort(s->account_ids, nids, sizeof(char *), compare_ids);
    size_t unique = 0;
    for (size_t i = 0; i < nids; i++)
        if (unique == 0 || strcmp(s->account_ids[unique - 1], s->account_ids[i]) != 0)
            s->account_ids[unique++] = s->account_ids[i];
    *lk = (cofre_lookup_t){
        .n_idem = n,
        .idem_keys = s->idem_keys,
        .idem = s->idem,
        .n_accounts = unique,
        .account_ids = s->account_ids,
        .accounts = s->accounts,
        .account_found = s->account_found,
        .n_transfers = ntransfers,
        .transfer_ids = s->transfer_ids,
        .transfer_found = s->transfer_found,
        .n_posts_max = nposts,
    };
}

static void load_ledger(worker_t *w, const cofre_lookup_t *lk)
{
    cofre_ledger_reset(w->ledger);
    for (size_t i = 0; i < lk->n_accounts; i++)
        if (lk->account_found[i])
            cofre_ledger_load_account(w->ledger, &lk->accounts[i]);
    for (size_t i = 0; i < lk->n_transfers; i++)
        if (lk->transfer_found[i])
            cofre_ledger_load_transfer_id(w->ledger, lk->transfer_ids[i]);
}

static void collect_change(const cofre_account_t *a, bool is_new, void *data)
{
    worker_t *w = data;
    if (is_new)
        w->s.new_accounts[w->ws.n_new_accounts++] = a;
    else
        w->s.changed_accounts[w->ws.n_changed_accounts++] = a;
}

static void reset_write_set(worker_t *w)
{
    memset(&w->tally, 0, sizeof(w->tally));
    for (size_t i = 0; i < w->npayloads; i++)
        free(w->s.payloads[i]);
    w->npayloads = 0;
    w->ws = (cofre_write_set_t){
        .new_accounts = w->s.new_accounts,
        .changed_accounts = w->s.changed_accounts,
        .transfers = w->s.transfer_writes,
        .idem = w->s.idem_writes,
        .outbox = w->s.outbox,
        .now_unix = (int64_t)(cofre_now_wall_us() / 1000000u),
    };
    cofre_time_format(cofre_now_wall_us(), w->now);
}

static void decide_all(worker_t *w, cofre_cmd_t **cmds, size_t n, const cofre_lookup_t *lk)
{
    reset_write_set(w);
    load_ledger(w, lk);
    for (size_t i = 0; i < n; i++) {
        cofre_cmd_t *cmd = cmds[i];
        if (!decide(w, cmd, &lk->idem[i]))
            continue;
        w->s.idem_writes[w->ws.n_idem++] =
            (cofre_idem_write_t){cmd->client_id, cmd->idem_key, cmd->request_hash,
                                 cmd->status,    cmd->body,     cmd->body_len};
    }
    cofre_ledger_each_change(w->ledger, collect_change, w);
}

/* One attempt at the chunk's transaction. */
static int attempt(worker_t *w, cofre_cmd_t **cmds, size_t n)
{
    cofre_store_t *st = w->store;
    cofre_lookup_t lk;
    build_lookup(w, cmds, n, &lk);
    int rc = st->ops->begin(st);
    if (rc == 0)
        rc = st->ops->lookup(st, &lk);
    if (rc == 0) {
        decide_all(w, cmds, n, &lk);
        rc = st->ops->write(st, &w->ws);
    }
    if (rc == 0)
        rc = st->ops->commit(st);
    if (rc != 0)
        st->ops->rollback(st);
    cofre_lookup_release(&lk);
    return rc;
}

#define CURRENCIES_PER_BATCH_MAX 16

/* Amounts posted per currency: summed first, so the registry is asked once per currency. */
static void count_amounts(cofre_committer_t *c, const cofre_write_set_t *ws)
{
    const char *currencies[CURRENCIES_PER_BATCH_MAX];
    uint64_t sums[CURRENCIES_PER_BATCH_MAX];
    size_t n = 0;
    for (size_t i = 0; i < ws->n_transfers; i++) {
        const cofre_transfer_t *t = ws->transfers[i].transfer;
        size_t k = 0;
        while (k < n && strcmp(currencies[k], t->currency) != 0)
            k++;
        if (k == CURRENCIES_PER_BATCH_MAX) {
            cofre_counter_add(cofre_metric_with(c->amount_posted, (const char *[]){t->currency}),
                              (uint64_t)t->amount);
            continue;
        }
        if (k == n) {
            currencies[n] = t->currency;
            sums[n++] = 0;
        }
        sums[k] += (uint64_t)t->amount;
    }
    for (size_t k = 0; k < n; k++)
        cofre_counter_add(cofre_metric_with(c->amount_posted, (const char *[]){currencies[k]}),
                          sums[k]);
}

/* Adds a committed attempt's decisions to the metrics. */
static void count_committed(worker_t *w)
{
    cofre_committer_t *c = w->c;
    for (int i = 0; i < COFRE_P_COUNT_; i++) {
        if (w->tally.transfers[i] > 0) {
            COFRE_ASSERT(c->outcomes[i] != NULL);
            cofre_counter_add(c->outcomes[i], w->tally.transfers[i]);
        }
        if (w->tally.accounts[i] > 0) {
            COFRE_ASSERT(c->account_outcomes[i] != NULL);
            cofre_counter_add(c->account_outcomes[i], w->tally.accounts[i]);
        }
    }
    cofre_counter_add(c->replays, w->tally.replays);
    cofre_counter_add(c->key_reused, w->tally.key_reused);
    count_amounts(c, &w->ws);
}

static void note_failure(cofre_committer_t *c, int rc)
{
    if (rc == COFRE_ECONFLICT)
        cofre_counter_inc(c->failures_conflict);
    else if (rc == COFRE_EUNAVAIL)
        cofre_counter_inc(c->failures_unavailable);
    else
        cofre_counter_inc(c->failures_error);
}

static void fail_all(cofre_cmd_t **cmds, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        cofre_problem_t p;
        cofre_problem_set(&p, COFRE_P_UNAVAILABLE,
                          "the ledger database is unavailable; nothing was applied");
        problem_answer(cmds[i], &p);
        cmds[i]->replayed = false;
    }
}

static void commit_chunk(worker_t *w, cofre_cmd_t **cmds, size_t n)
{
    cofre_committer_t *c = w->c;
    uint64_t start = cofre_now_mono_ns();
    int rc = COFRE_ECONFLICT;
    for (int i = 0; i < ATTEMPTS_MAX && rc == COFRE_ECONFLICT; i++) {
        if (i > 0)
            usleep((useconds_t)((1000u << i) + cofre_trace_rand64() % 1000u));
        rc = attempt(w, cmds, n);
        if (rc != 0)
            note_failure(c, rc);
    }
    if (rc == 0)
        count_committed(w);
    reset_write_set(w);
    atomic_store(&c->db_up, rc == 0 || rc == COFRE_ECONFLICT);
    if (rc != 0) {
        COFRE_LOG(COFRE_LOG_ERROR, NULL, "batch not committed", COFRE_LF_INT("commands", n),
                  COFRE_LF_STR("error", cofre_strerror(rc)));
        fail_all(cmds, n);
        return;
    }
    cofre_histogram_observe(c->batch_size, (double)n);
    cofre_histogram_observe(c->commit_seconds, (double)(cofre_now_mono_ns() - start) / 1e9);
}

/* Splits the popped commands into chunks of bounded size and commits each. */
static void commit_commands(worker_t *w, cofre_cmd_t **cmds, size_t n)
{
    size_t start = 0;
    while (start < n) {
        size_t end = start, transfers = 0;
        while (end < n &&
               (end == start || transfers + cmds[end]->ntransfers <= CHUNK_TRANSFERS_MAX)) {
            transfers += cmds[end]->ntransfers;
            end++;
        }
        scratch_reserve(&w->s, end - start, transfers);
        commit_chunk(w, cmds + start, end - start);
        start = end;
    }
    for (size_t i = 0; i < n; i++)
        cofre_task_complete(&cmds[i]->task);
    w->store->ops->maintain(w->store);
}

/* ---- housekeeping between batches and while idle ---------------------------------------- */

static void prune_chunk(worker_t *w)
{
    int64_t before =
        (int64_t)(cofre_now_wall_us() / 1000000u) - (int64_t)w->c->cfg.retention_h * 3600;
    int deleted = w->store->ops->prune_idempotency(w->store, before, PRUNE_CHUNK_ROWS);
    w->prune_backlog = deleted == PRUNE_CHUNK_ROWS;
    if (deleted > 0)
        w->pruned_rows += (uint64_t)deleted;
    if (!w->prune_backlog && w->pruned_rows > 0) {
        COFRE_LOG(COFRE_LOG_INFO, NULL, "expired idempotency records deleted",
                  COFRE_LF_INT("rows", w->pruned_rows));
        w->pruned_rows = 0;
    }
}

static void housekeeping(worker_t *w, bool idle)
{
    uint64_t now = cofre_now_mono_ns();
    if (idle && now - w->last_health_ns >= HEALTH_INTERVAL_NS) {
        w->last_health_ns = now;
        atomic_store(&w->c->db_up, w->store->ops->ping(w->store));
    }
    if (w->prune_backlog || now - w->last_prune_ns >= PRUNE_INTERVAL_NS) {
        w->last_prune_ns = now;
        prune_chunk(w);
    }
}

static void *worker_main(void *arg)
{
    worker_t *w = arg;
    cofre_committer_t *c = w->c;
    pthread_setname_np(pthread_self(), "committer");
    cofre_cmd_t **cmds = cofre_malloc(c->cfg.batch_max * sizeof(*cmds));
    w->last_prune_ns = 0; /* prune once at start, then every interval */
    for (;;) {
        size_t n = cofre_queue_pop_many(c->queue, (void **)cmds, c->cfg.batch_max, POP_WAIT_NS);
        if (n > 0) {
            commit_commands(w, cmds, n);
            housekeeping(w, false);
            continue;
        }
        if (cofre_queue_is_closed(c->queue) && cofre_queue_length(c->queue) == 0)
            break;
        housekeeping(w, true);
    }
    free(cmds);
    return NULL;
}

/* ---- lifecycle -------------------------------------------------------------------------- */

static double queue_depth(void *data)
{
    cofre_committer_t *c = data;
    return (double)cofre_queue_length(c->queue);
}

static void register_metrics(cofre_committer_t *c)
{
    static const cofre_problem_code_t transfer_codes[] = {COFRE_P_NONE,
                                                          COFRE_P_ACCOUNT_NOT_FOUND,
                                                          COFRE_P_CURRENCY_MISMATCH,
                                                          COFRE_P_INSUFFICIENT_FUNDS,
                                                          COFRE_P_BALANCE_OVERFLOW,
                                                          COFRE_P_TRANSFER_EXISTS};
    cofre_metric_t *transfers =
        cofre_metric_counter("cofre_ledger_transfers_total",
                             "Transfers decided, by outcome (posted or a code).", "outcome");
    for (size_t i = 0; i < COFRE_ARRAY_SIZE(transfer_codes); i++) {
        cofre_problem_code_t code = transfer_codes[i];
        const char *name = code == COFRE_P_NONE ? "posted" : cofre_problem_name(code);
        c->outcomes[code] = cofre_metric_with(transfers, (const char *[]){name});
    }
    cofre_metric_t *accounts = cofre_metric_counter(
        "cofre_ledger_accounts_total", "Account openings decided, by outcome.", "outcome");
    c->account_outcomes[COFRE_P_NONE] = cofre_metric_with(accounts, (const char *[]){"created"});
    c->account_outcomes[COFRE_P_ACCOUNT_EXISTS] =
        cofre_metric_with(accounts, (const char *[]){"account_exists"});
    c->amount_posted =
        cofre_metric_counter("cofre_ledger_amount_posted_minor_total",
                             "Sum of posted amounts in minor units, by currency.", "currency");
    c->replays =
        cofre_metric_with(cofre_metric_counter("cofre_idempotency_replays_total",
                                               "Answers served from the idempotency store.", NULL),
                          NULL);
    c->key_reused =
        cofre_metric_with(cofre_metric_counter("cofre_idempotency_conflicts_total",
                                               "Idempotency keys misused, by code.", "code"),
                          (const char *[]){"idempotency_key_reused"});
    static const double sizes[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024};
    c->batch_size = cofre_metric_with(cofre_metric_histogram("cofre_committer_batch_size",
                                                             "Commands per committed transaction.",
                                                             NULL, sizes, COFRE_ARRAY_SIZE(sizes)),
                                      NULL);
    c->commit_seconds = cofre_metric_with(
        cofre_metric_histogram("cofre_committer_commit_seconds",
                               "Duration of one batch transaction, begin to commit.", NULL,
                               cofre_metric_latency_buckets, cofre_metric_latency_buckets_count),
        NULL);
    cofre_metric_t *failures =
        cofre_metric_counter("cofre_committer_failures_total",
                             "Batch transactions that did not commit, by reason.", "reason");
    c->failures_conflict = cofre_metric_with(failures, (const char *[]){"conflict"});
    c->failures_unavailable = cofre_metric_with(failures, (const char *[]){"unavailable"});
    c->failures_error = cofre_metric_with(failures, (const char *[]){"error"});
    cofre_metric_gauge_fn("cofre_committer_queue_depth", "Commands waiting for the committer.",
                          queue_depth, c);
}

cofre_committer_t *cofre_committer_start(const cofre_committer_config_t *cfg)
{
    COFRE_ASSERT(cfg->threads >= 1 && cfg->threads <= COMMITTER_THREADS_MAX);
    cofre_committer_t *c = cofre_calloc(1, sizeof(*c));
    c->cfg = *cfg;
    atomic_init(&c->db_up, true);
    for (unsigned i = 0; i < cfg->threads; i++) {
        worker_t *w = &c->workers[i];
        w->c = c;
        if (cofre_store_open(cfg->db_url, false, &w->store) != 0) {
            for (unsigned j = 0; j < i; j++)
                cofre_store_close(c->workers[j].store);
            free(c);
            return NULL;
        }
        w->ledger = cofre_ledger_new();
    }
    c->queue = cofre_queue_new(cfg->queue_max);
    register_metrics(c);
    for (unsigned i = 0; i < cfg->threads; i++)
        COFRE_ASSERT(pthread_create(&c->workers[i].thread, NULL, worker_main, &c->workers[i]) == 0);
    return c;
}

int cofre_committer_submit(cofre_committer_t *c, cofre_cmd_t *cmd)
{
    COFRE_ASSERT(cmd->task.req != NULL);
    return cofre_queue_push(c->queue, cmd);
}

bool cofre_committer_db_up(const cofre_committer_t *c)
{
    return atomic_load(&c->db_up);
}

void cofre_committer_stop(cofre_committer_t *c)
{
    cofre_queue_close(c->queue);
    for (unsigned i = 0; i < c->cfg.threads; i++) {
        worker_t *w = &c->workers[i];
        pthread_join(w->thread, NULL);
        cofre_store_close(w->store);
        cofre_ledger_free(w->ledger);
        scratch_release(&w->s);
    }
    cofre_queue_free(c->queue);
    free(c);
}
