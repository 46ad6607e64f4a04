/*
 * store_sqlite.c: the ledger store on SQLite, the embedded default. WAL with synchronous=FULL:
 * a commit returns after the WAL is on disk, so an acknowledged transfer survives power loss.
 * Writers take the write lock at BEGIN (BEGIN IMMEDIATE), so what a batch reads cannot change
 * before it commits, even with several processes on one file. All statements are prepared
 * once per connection.
 */
#include "core/store.h"

#include "cofre/common.h"
#include "cofre/db.h"
#include "cofre/log.h"
#include "core/chains.h"
#include "core/migrations.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define WRITER_CACHE_KIB 2048
#define READER_CACHE_KIB 512
/*
 * Checkpoints copy WAL frames into the database file. A thread of the writer's store does
 * that on its own connection, woken once the WAL holds CHECKPOINT_WAKE_FRAMES, so commits
 * never wait for it; it keeps up at any sustained rate below the maximum, and the WAL restarts
 * from its beginning whenever a checkpoint has copied everything. Only if the WAL still grows
 * past CHECKPOINT_FORCE_FRAMES (writes outrunning the copies) does the committer checkpoint
 * itself, between batches, to bound it.
 */
#define CHECKPOINT_WAKE_FRAMES  1024
#define CHECKPOINT_FORCE_FRAMES 65536
#define CHECKPOINT_IDLE_MS      1000
#define WAL_SIZE_LIMIT_BYTES    (64 * 1024 * 1024)

#define ACCOUNT_COLUMNS                                                                            \
    "id, owner, currency, no_overdraft, debits_posted, credits_posted, debits_pending, "           \
    "credits_pending, metadata, created_at"
#define TRANSFER_COLUMNS                                                                           \
    "id, debit_account_id, credit_account_id, amount, currency, reference, created_at"

enum {
    Q_BEGIN,
    Q_COMMIT,
    Q_ROLLBACK,
    Q_IDEM_GET,
    Q_ACCOUNT_GET,
    Q_TRANSFER_EXISTS,
    Q_ACCOUNT_INSERT,
    Q_ACCOUNT_UPDATE,
    Q_TRANSFER_INSERT,
    Q_IDEM_INSERT,
    Q_OUTBOX_INSERT,
    Q_IDEM_PRUNE,
    Q_TRANSFER_GET,
    Q_ACCOUNTS_PAGE_OWNER,
    Q_ACCOUNTS_PAGE_ALL,
    Q_TRANSFER_BY_SEQ,
    Q_ACCOUNT_HEAD,
    Q_PING,
    Q_TRANSFER_LAST_SEQ,
    Q_OUTBOX_FETCH,
    Q_OUTBOX_MARK,
    Q_OUTBOX_CURSOR,
    Q_OUTBOX_STATS,
    Q_COUNT_
};

static const char *const queries[Q_COUNT_] = {
    [Q_BEGIN] = "BEGIN IMMEDIATE",
    [Q_COMMIT] = "COMMIT",
    [Q_ROLLBACK] = "ROLLBACK",
    [Q_IDEM_GET] = "SELECT request_hash, status, body FROM idempotency "
                   "WHERE client_id = ?1 AND key = ?2",
    [Q_ACCOUNT_GET] = "SELECT " ACCOUNT_COLUMNS ", last_transfer_seq FROM accounts WHERE id = ?1",
    [Q_TRANSFER_EXISTS] = "SELECT 1 FROM transfers WHERE id = ?1",
    [Q_ACCOUNT_INSERT] = "INSERT INTO accounts (" ACCOUNT_COLUMNS
                         ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    [Q_ACCOUNT_UPDATE] = "UPDATE accounts SET debits_posted = ?2, credits_posted = ?3, "
                         "last_transfer_seq = ?4 WHERE id = ?1",
    [Q_TRANSFER_INSERT] = "INSERT INTO transfers (" TRANSFER_COLUMNS
                          ", client_id, prev_debit_seq, prev_credit_seq, seq) "
                          "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    [Q_TRANSFER_LAST_SEQ] = "SELECT coalesce(max(seq), 0) FROM transfers",
    [Q_IDEM_INSERT] = "INSERT INTO idempotency (client_id, key, request_hash, status, body, "
                      "created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    [Q_OUTBOX_INSERT] = "INSERT INTO outbox (event_id, topic, partition_key, type, payload, "
                        "traceparent, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    [Q_IDEM_PRUNE] = "DELETE FROM idempotency WHERE (client_id, key) IN (SELECT client_id, key "
                     "FROM idempotency WHERE created_at < ?1 LIMIT ?2)",
    [Q_TRANSFER_GET] = "SELECT " TRANSFER_COLUMNS " FROM transfers WHERE id = ?1",
    [Q_ACCOUNTS_PAGE_OWNER] = "SELECT " ACCOUNT_COLUMNS ", seq FROM accounts "
                              "WHERE owner = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
    [Q_ACCOUNTS_PAGE_ALL] = "SELECT " ACCOUNT_COLUMNS ", seq FROM accounts "
                            "WHERE seq > ?2 ORDER BY seq LIMIT ?3",
    /* An account's transfers are a chain: see migrations/sqlite/0002_account_chains.sql. */
    [Q_TRANSFER_BY_SEQ] = "SELECT " TRANSFER_COLUMNS ", prev_debit_seq, prev_credit_seq "
                          "FROM transfers WHERE seq = ?1",
    [Q_ACCOUNT_HEAD] = "SELECT last_transfer_seq FROM accounts WHERE id = ?1",
    [Q_PING] = "SELECT 1",
    /* Published rows are the prefix up to the watermark (migrations/sqlite/0003). */
    [Q_OUTBOX_FETCH] = "SELECT seq, event_id, topic, partition_key, type, traceparent, payload "
                       "FROM outbox WHERE seq > max(?1, (SELECT published_seq FROM outbox_cursor)) "
                       "ORDER BY seq LIMIT ?2",
    [Q_OUTBOX_MARK] = "UPDATE outbox_cursor SET published_seq = ?1 WHERE published_seq < ?1",
    [Q_OUTBOX_CURSOR] = "SELECT published_seq FROM outbox_cursor",
    [Q_OUTBOX_STATS] = "SELECT (SELECT coalesce(max(seq), 0) FROM outbox) - c.published_seq, "
                       "(SELECT created_at FROM outbox WHERE seq > c.published_seq ORDER BY seq "
                       "LIMIT 1) FROM outbox_cursor c",
};

typedef struct checkpointer {
    pthread_t thread;
    sqlite3 *db;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    bool due;
    bool stop;
} checkpointer_t;

typedef struct sqlite_store {
    cofre_store_t super;
    sqlite3 *db;
    sqlite3_stmt *stmts[Q_COUNT_];
    cofre_chains_t chains;        /* writer: the batch's account chain heads */
    int64_t next_seq;             /* writer: the seq the batch's next transfer gets */
    int wal_frames;               /* frames in the WAL after the last commit (writer only) */
    checkpointer_t *checkpointer; /* writer only */
    /* The relay's marks: the watermark (-1: not read yet) and the seqs acknowledged above it,
     * sorted. */
    int64_t published_seq;
    int64_t *acked;
    size_t nacked;
    size_t acked_cap;
} sqlite_store_t;

static int map_error(sqlite_store_t *s, int rc, const char *what)
{
    COFRE_LOG(COFRE_LOG_WARN, NULL, "sqlite operation failed", COFRE_LF_STR("op", what),
              COFRE_LF_STR("error", sqlite3_errmsg(s->db)), COFRE_LF_INT("code", rc));
    switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_CONSTRAINT:
        return COFRE_ECONFLICT;
    case SQLITE_FULL:
    case SQLITE_CANTOPEN:
    case SQLITE_READONLY:
        return COFRE_EUNAVAIL;
    default:
        return COFRE_EIO;
    }
}

/* Runs a statement with no result rows; resets it. */
static int run(sqlite_store_t *s, int q)
{
    sqlite3_stmt *st = s->stmts[q];
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE)
        return map_error(s, rc, queries[q]);
    return 0;
}

static void bind_text(sqlite3_stmt *st, int i, const char *v)
{
    if (v == NULL)
        sqlite3_bind_null(st, i);
    else
        sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC);
}

static void copy_column(sqlite3_stmt *st, int col, char *out, size_t size)
{
    const char *v = (const char *)sqlite3_column_text(st, col);
    size_t len = v != NULL ? (size_t)sqlite3_column_bytes(st, col) : 0;
    if (len >= size)
        len = size - 1;
    if (len > 0)
        memcpy(out, v, len);
    out[len] = '\0';
}

static void read_account(sqlite3_stmt *st, cofre_account_t *a)
{
    memset(a, 0, sizeof(*a));
    copy_column(st, 0, a->id, sizeof(a->id));
    copy_column(st, 1, a->owner, sizeof(a->owner));
    copy_column(st, 2, a->currency, sizeof(a->currency));
    a->no_overdraft = sqlite3_column_int(st, 3) != 0;
    a->debits_posted = sqlite3_column_int64(st, 4);
    a->credits_posted = sqlite3_column_int64(st, 5);
    a->debits_pending = sqlite3_column_int64(st, 6);
    a->credits_pending = sqlite3_column_int64(st, 7);
    const char *meta = (const char *)sqlite3_column_text(st, 8);
    a->metadata = meta != NULL ? cofre_strdup(meta) : NULL;
    copy_column(st, 9, a->created_at, sizeof(a->created_at));
}

static void read_transfer(sqlite3_stmt *st, cofre_transfer_t *t)
{
    copy_column(st, 0, t->id, sizeof(t->id));
    copy_column(st, 1, t->debit_account_id, sizeof(t->debit_account_id));
    copy_column(st, 2, t->credit_account_id, sizeof(t->credit_account_id));
    t->amount = sqlite3_column_int64(st, 3);
    copy_column(st, 4, t->currency, sizeof(t->currency));
    t->has_reference = sqlite3_column_type(st, 5) != SQLITE_NULL;
    copy_column(st, 5, t->reference, sizeof(t->reference));
    copy_column(st, 6, t->created_at, sizeof(t->created_at));
}

/* ---- write path ------------------------------------------------------------------------- */

static int sq_begin(cofre_store_t *base)
{
    return run((sqlite_store_t *)base, Q_BEGIN);
}

static int sq_commit(cofre_store_t *base)
{
    return run((sqlite_store_t *)base, Q_COMMIT);
}

static void sq_rollback(cofre_store_t *base)
{
    sqlite_store_t *s = (sqlite_store_t *)base;
    if (!sqlite3_get_autocommit(s->db))
        run(s, Q_ROLLBACK);
}

static int lookup_idem(sqlite_store_t *s, const cofre_idem_key_t *k, cofre_idem_record_t *out)
{
    sqlite3_stmt *st = s->stmts[Q_IDEM_GET];
    bind_text(st, 1, k->client_id);
    bind_text(st, 2, k->key);
    int rc = sqlite3_step(st);
    memset(out, 0, sizeof(*out));
    if (rc == SQLITE_ROW) {
        out->found = true;
        if (sqlite3_column_bytes(st, 0) == COFRE_STORE_HASH_LEN)
            memcpy(out->request_hash, sqlite3_column_blob(st, 0), COFRE_STORE_HASH_LEN);
        out->status = sqlite3_column_int(st, 1);
        out->body_len = (size_t)sqlite3_column_bytes(st, 2);
        out->body = cofre_strndup((const char *)sqlite3_column_text(st, 2), out->body_len);
        rc = SQLITE_DONE;
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : map_error(s, rc, queries[Q_IDEM_GET]);
}

static int lookup_account(sqlite_store_t *s, const char *id, cofre_account_t *out, bool *found)
{
    sqlite3_stmt *st = s->stmts[Q_ACCOUNT_GET];
    bind_text(st, 1, id);
    int rc = sqlite3_step(st);
    *found = rc == SQLITE_ROW;
    if (*found) {
        read_account(st, out);
        if (s->chains.capacity > 0)
            cofre_chains_head(&s->chains, id)->last_seq = sqlite3_column_int64(st, 10);
        rc = SQLITE_DONE;
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : map_error(s, rc, queries[Q_ACCOUNT_GET]);
}

static int lookup_transfer(sqlite_store_t *s, const char *id, bool *found)
{
    sqlite3_stmt *st = s->stmts[Q_TRANSFER_EXISTS];
    bind_text(st, 1, id);
    int rc = sqlite3_step(st);
    *found = rc == SQLITE_ROW;
    sqlite3_reset(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : map_error(s, rc, queries[Q_TRANSFER_EXISTS]);
}

/* The highest transfer seq: the batch numbers its transfers from the next one (under the
 * write lock, so no other writer can take them). */
static int last_transfer_seq(sqlite_store_t *s, int64_t *seq)
{
    sqlite3_stmt *st = s->stmts[Q_TRANSFER_LAST_SEQ];
    int rc = sqlite3_step(st);
    *seq = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_reset(st);
    return rc == SQLITE_ROW ? 0 : map_error(s, rc, queries[Q_TRANSFER_LAST_SEQ]);
}

static int sq_lookup(cofre_store_t *base, cofre_lookup_t *lk)
{
    sqlite_store_t *s = (sqlite_store_t *)base;
    cofre_chains_reset(&s->chains, lk->n_accounts);
    int rc = last_transfer_seq(s, &s->next_seq);
    s->next_seq++;
    for (size_t i = 0; i < lk->n_idem; i++)
        lk->idem[i] = (cofre_idem_record_t){0};
    for (size_t i = 0; i < lk->n_accounts; i++)
        lk->account_found[i] = false;
    for (size_t i = 0; rc == 0 && i < lk->n_idem; i++)
        rc = lookup_idem(s, &lk->idem_keys[i], &lk->idem[i]);
    for (size_t i = 0; rc == 0 && i < lk->n_accounts; i++)
        rc = lookup_account(s, lk->account_ids[i], &lk->accounts[i], &lk->account_found[i]);
    for (size_t i = 0; rc == 0 && i < lk->n_transfers; i++)
        rc = lookup_transfer(s, lk->transfer_ids[i], &lk->transfer_found[i]);
    return rc;
}

static int insert_account(sqlite_store_t *s, const cofre_account_t *a)
{
    sqlite3_stmt *st = s->stmts[Q_ACCOUNT_INSERT];
    bind_text(st, 1, a->id);
    bind_text(st, 2, a->owner);
    bind_text(st, 3, a->currency);
    sqlite3_bind_int(st, 4, a->no_overdraft);
    sqlite3_bind_int64(st, 5, a->debits_posted);
    sqlite3_bind_int64(st, 6, a->credits_posted);
    sqlite3_bind_int64(st, 7, a->debits_pending);
    sqlite3_bind_int64(st, 8, a->credits_pending);
    bind_text(st, 9, a->metadata);
    bind_text(st, 10, a->created_at);
    return run(s, Q_ACCOUNT_INSERT);
}

static int update_account(sqlite_store_t *s, const cofre_account_t *a)
{
    sqlite3_stmt *st = s->stmts[Q_ACCOUNT_UPDATE];
    bind_text(st, 1, a->id);
    sqlite3_bind_int64(st, 2, a->debits_posted);
    sqlite3_bind_int64(st, 3, a->credits_posted);
    sqlite3_bind_int64(st, 4, cofre_chains_head(&s->chains, a->id)->last_seq);
    int rc = run(s, Q_ACCOUNT_UPDATE);
    if (rc == 0 && sqlite3_changes(s->db) != 1)
        return COFRE_ECONFLICT;
    return rc;
}

static int insert_transfer(sqlite_store_t *s, const cofre_transfer_write_t *w)
{
    const cofre_transfer_t *t = w->transfer;
    sqlite3_stmt *st = s->stmts[Q_TRANSFER_INSERT];
    bind_text(st, 1, t->id);
    bind_text(st, 2, t->debit_account_id);
    bind_text(st, 3, t->credit_account_id);
    sqlite3_bind_int64(st, 4, t->amount);
    bind_text(st, 5, t->currency);
    bind_text(st, 6, t->has_reference ? t->reference : NULL);
    bind_text(st, 7, t->created_at);
    bind_text(st, 8, w->client_id);
    int64_t seq = s->next_seq++, prev_debit, prev_credit;
    cofre_chains_link(&s->chains, t->debit_account_id, t->credit_account_id, seq, &prev_debit,
                      &prev_credit);
    sqlite3_bind_int64(st, 9, prev_debit);
    sqlite3_bind_int64(st, 10, prev_credit);
    sqlite3_bind_int64(st, 11, seq);
    return run(s, Q_TRANSFER_INSERT);
}

static int insert_idem(sqlite_store_t *s, const cofre_idem_write_t *w, int64_t now)
{
    sqlite3_stmt *st = s->stmts[Q_IDEM_INSERT];
    bind_text(st, 1, w->client_id);
    bind_text(st, 2, w->key);
    sqlite3_bind_blob(st, 3, w->request_hash, COFRE_STORE_HASH_LEN, SQLITE_STATIC);
    sqlite3_bind_int(st, 4, w->status);
    sqlite3_bind_text(st, 5, w->body, (int)w->body_len, SQLITE_STATIC);
    sqlite3_bind_int64(st, 6, now);
    return run(s, Q_IDEM_INSERT);
}

static int insert_outbox(sqlite_store_t *s, const cofre_outbox_write_t *w, const char *now)
{
    sqlite3_stmt *st = s->stmts[Q_OUTBOX_INSERT];
    bind_text(st, 1, w->event_id);
    bind_text(st, 2, w->topic);
    bind_text(st, 3, w->partition_key);
    bind_text(st, 4, w->type);
    sqlite3_bind_text(st, 5, w->payload, (int)w->payload_len, SQLITE_STATIC);
    bind_text(st, 6, w->traceparent);
    bind_text(st, 7, now);
    return run(s, Q_OUTBOX_INSERT);
}

static int sq_write(cofre_store_t *base, const cofre_write_set_t *ws)
{
    sqlite_store_t *s = (sqlite_store_t *)base;
    int rc = 0;
    char now[COFRE_TIME_LEN + 1];
    cofre_time_format(cofre_now_wall_us(), now);
    /* Transfers before the account updates: those carry the chains' new heads. */
    for (size_t i = 0; rc == 0 && i < ws->n_new_accounts; i++)
        rc = insert_account(s, ws->new_accounts[i]);
    for (size_t i = 0; rc == 0 && i < ws->n_transfers; i++)
        rc = insert_transfer(s, &ws->transfers[i]);
    for (size_t i = 0; rc == 0 && i < ws->n_changed_accounts; i++)
        rc = update_account(s, ws->changed_accounts[i]);
    for (size_t i = 0; rc == 0 && i < ws->n_new_accounts; i++)
        if (cofre_chains_head(&s->chains, ws->new_accounts[i]->id)->moved)
            rc = update_account(s, ws->new_accounts[i]);
    for (size_t i = 0; rc == 0 && i < ws->n_idem; i++)
        rc = insert_idem(s, &ws->idem[i], ws->now_unix);
    for (size_t i = 0; rc == 0 && i < ws->n_outbox; i++)
        rc = insert_outbox(s, &ws->outbox[i], now);
    return rc;
}

static int sq_prune_idempotency(cofre_store_t *base, int64_t before_unix, int max)
{
    sqlite_store_t *s = (sqlite_store_t *)base;
    sqlite3_stmt *st = s->stmts[Q_IDEM_PRUNE];
    sqlite3_bind_int64(st, 1, before_unix);
    sqlite3_bind_int(st, 2, max);
    int rc = run(s, Q_IDEM_PRUNE);
    return rc != 0 ? rc : sqlite3_changes(s->db);
}

/* ---- read path -------------------------------------------------------------------------- */

static int sq_account_get(cofre_store_t *base, const char *id, cofre_account_t *out)
{
    bool found = false;
    int rc = lookup_account((sqlite_store_t *)base, id, out, &found);
    return rc != 0 ? rc : found ? 0 : COFRE_ENOENT;
}

static int sq_transfer_get(cofre_store_t *base, const char *id, cofre_transfer_t *out)
{
    sqlite_store_t *s = (sqlite_store_t *)base;
    sqlite3_stmt *st = s->stmts[Q_TRANSFER_GET];
    bind_text(st, 1, id);
    int rc = sqlite3_step(st);
    int result = COFRE_ENOENT;
    if (rc == SQLITE_ROW) {
        read_transfer(st, out);
        result = 0;
    } else if (rc != SQLITE_DONE) {
        result = map_error(s, rc, queries[Q_TRANSFER_GET]);
    }
    sqlite3_reset(st);
    return result;
}

static int sq_accounts_page(cofre_store_t *base, const cofre_page_query_t *q, cofre_account_t *out,
                            int64_t *seqs, size_t *n)
{
    sqlite_store_t *s = (sqlite_store_t *)base;
    int qi = q->owner != NULL ? Q_ACCOUNTS_PAGE_OWNER : Q_ACCOUNTS_PAGE_ALL;
    sqlite3_stmt *st = s->stmts[qi];
    if (q->owner != NULL)
        bind_text(st, 1, q->owner);
    sqlite3_bind_int64(st, 2, q->cursor_seq);
    sqlite3_bind_int64(st, 3, (int64_t)q->limit + 1);
    int rc;
    *n = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW && *n <= q->limit) {
        read_account(st, &out[*n]);
        seqs[(*n)++] = sqlite3_column_int64(st, 10);
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : map_error(s, rc, queries[qi]);
}

/* Reads the transfer at seq and, in *prev, the seq of account's previous one. Returns 0,
 * COFRE_ENOENT, or COFRE_EINVAL when the transfer does not involve the account. */
static int transfer_at(sqlite_store_t *s, int64_t seq, const char *account, cofre_transfer_t *t,
                       int64_t *prev)
{
    sqlite3_stmt *st = s->stmts[Q_TRANSFER_BY_SEQ];
    sqlite3_bind_int64(st, 1, seq);
    int rc = sqlite3_step(st);
    int result = COFRE_ENOENT;
    if (rc == SQLITE_ROW) {
        read_transfer(st, t);
        result = 0;
        if (strcmp(t->debit_account_id, account) == 0)
            *prev = sqlite3_column_int64(st, 7);
        else if (strcmp(t->credit_account_id, account) == 0)
            *prev = sqlite3_column_int64(st, 8);
        else
            result = COFRE_EINVAL;
    } else if (rc != SQLITE_DONE) {
        result = map_error(s, rc, queries[Q_TRANSFER_BY_SEQ]);
    }
    sqlite3_reset(st);
    return result;
}

static int chain_head_seq(sqlite_store_t *s, const char *account, int64_t *seq)
{
    sqlite3_stmt *st = s->stmts[Q_ACCOUNT_HEAD];
    bind_text(st, 1, account);
    int rc = sqlite3_step(st);
    *seq = rc == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_reset(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : map_error(s, rc, queries[Q_ACCOUNT_HEAD]);
}

/*
 * Newest first along the account's chain. A cursor is the seq of the last transfer of the
 * previous page: its previous one starts this page (COFRE_EINVAL when the cursor is not one
 * of the account's transfers).
 */
static int sq_transfers_page(cofre_store_t *base, const cofre_page_query_t *q,
                             cofre_transfer_t *out, int64_t *seqs, size_t *n)
{
    sqlite_store_t *s = (sqlite_store_t *)base;
    int64_t next = 0;
    int rc;
    *n = 0;
    if (q->cursor_seq == INT64_MAX) {
        rc = chain_head_seq(s, q->account_id, &next);
    } else {
        cofre_transfer_t t;
        rc = transfer_at(s, q->cursor_seq, q->account_id, &t, &next);
        rc = rc == COFRE_ENOENT ? COFRE_EINVAL : rc;
    }
    while (rc == 0 && next != 0 && *n <= q->limit) {
        seqs[*n] = next;
        rc = transfer_at(s, next, q->account_id, &out[*n], &next);
        if (rc == 0)
            (*n)++;
    }
    return rc;
}

static bool sq_ping(cofre_store_t *base)
{
    sqlite_store_t *s = (sqlite_store_t *)base;
    sqlite3_stmt *st = s->stmts[Q_PING];
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_ROW;
}

static int sq_outbox_fetch(cofre_store_t *base, int64_t after_seq, size_t max,
                           cofre_outbox_row_t *out, size_t *n)
{
    sqlite_store_t *s = (sqlite_store_t *)base;
    sqlite3_stmt *st = s->stmts[Q_OUTBOX_FETCH];
    sqlite3_bind_int64(st, 1, after_seq);
    sqlite3_bind_int64(st, 2, (int64_t)max);
    int rc;
    *n = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW && *n < max) {
        cofre_outbox_row_t *r = &out[(*n)++];
        r->seq = sqlite3_column_int64(st, 0);
        copy_column(st, 1, r->event_id, sizeof(r->event_id));
        copy_column(st, 2, r->topic, sizeof(r->topic));
        copy_column(st, 3, r->partition_key, sizeof(r->partition_key));
        copy_column(st, 4, r->type, sizeof(r->type));
        copy_column(st, 5, r->traceparent, sizeof(r->traceparent));
        r->payload_len = (size_t)sqlite3_column_bytes(st, 6);
        r->payload = cofre_strndup((const char *)sqlite3_column_text(st, 6), r->payload_len);
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : map_error(s, rc, queries[Q_OUTBOX_FETCH]);
}

static int compare_seq(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* Adds acknowledged seqs above the watermark to the sorted set, without duplicates. */
static void note_acked(sqlite_store_t *s, const int64_t *seqs, size_t n)
{
    if (s->nacked + n > s->acked_cap) {
        s->acked_cap = COFRE_MAX(2 * s->acked_cap, s->nacked + n);
        s->acked = cofre_realloc(s->acked, s->acked_cap * sizeof(*s->acked));
    }
    for (size_t i = 0; i < n; i++)
        if (seqs[i] > s->published_seq)
            s->acked[s->nacked++] = seqs[i];
    qsort(s->acked, s->nacked, sizeof(*s->acked), compare_seq);
    size_t kept = 0;
    for (size_t i = 0; i < s->nacked; i++)
        if (kept == 0 || s->acked[kept - 1] != s->acked[i])
            s->acked[kept++] = s->acked[i];
    s->nacked = kept;
}

static int read_watermark(sqlite_store_t *s)
{
    sqlite3_stmt *st = s->stmts[Q_OUTBOX_CURSOR];
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        s->published_seq = sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    return rc == SQLITE_ROW ? 0 : map_error(s, rc, queries[Q_OUTBOX_CURSOR]);
}

/*
 * Moves the watermark over the acknowledged rows that follow it without a gap (outbox seqs
 * have none: one writer, rowids in commit order). Rows acknowledged beyond a gap wait for it;
 * after a crash they are published again, which consumers drop by event id.
 */
static int sq_outbox_mark_published(cofre_store_t *base, const int64_t *seqs, size_t n)
{
    sqlite_store_t *s = (sqlite_store_t *)base;
    int rc = s->published_seq < 0 ? read_watermark(s) : 0;
    if (rc != 0)
        return rc;
    note_acked(s, seqs, n);
    size_t advanced = 0;
    while (advanced < s->nacked && s->acked[advanced] == s->published_seq + 1 + (int64_t)advanced)
        advanced++;
    if (advanced == 0)
        return 0;
    int64_t watermark = s->published_seq + (int64_t)advanced;
    sqlite3_bind_int64(s->stmts[Q_OUTBOX_MARK], 1, watermark);
    rc = run(s, Q_OUTBOX_MARK);
    if (rc != 0)
        return rc;
    s->published_seq = watermark;
    memmove(s->acked, s->acked + advanced, (s->nacked - advanced) * sizeof(*s->acked));
    s->nacked -= advanced;
    return 0;
}

/* Seconds between an RFC 3339 UTC timestamp of ours and now; 0 when it does not parse. */
static double age_seconds(const char *ts)
{
    struct tm tm = {0};
    const char *rest = strptime(ts, "%Y-%m-%dT%H:%M:%S", &tm);
    if (rest == NULL)
        return 0;
    double then = (double)timegm(&tm) + (rest[0] == '.' ? strtod(rest, NULL) : 0);
    double age = (double)cofre_now_wall_us() / 1e6 - then;
    return age > 0 ? age : 0;
}

static int sq_outbox_stats(cofre_store_t *base, int64_t *pending, double *oldest_age_s)
{
    sqlite_store_t *s = (sqlite_store_t *)base;
    sqlite3_stmt *st = s->stmts[Q_OUTBOX_STATS];
    int rc = sqlite3_step(st);
    *pending = 0;
    *oldest_age_s = 0;
    if (rc == SQLITE_ROW) {
        *pending = sqlite3_column_int64(st, 0);
        const char *oldest = (const char *)sqlite3_column_text(st, 1);
        if (oldest != NULL)
            *oldest_age_s = age_seconds(oldest);
        rc = SQLITE_DONE;
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : map_error(s, rc, queries[Q_OUTBOX_STATS]);
}

static void *checkpoint_main(void *arg)
{
    checkpointer_t *cp = arg;
    pthread_setname_np(pthread_self(), "checkpointer");
    pthread_mutex_lock(&cp->lock);
    while (!cp->stop) {
        if (!cp->due) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += CHECKPOINT_IDLE_MS / 1000;
            pthread_cond_timedwait(&cp->wake, &cp->lock, &ts);
            continue;
        }
        cp->due = false;
        pthread_mutex_unlock(&cp->lock);
        int frames = 0, copied = 0;
        int rc =
            sqlite3_wal_checkpoint_v2(cp->db, NULL, SQLITE_CHECKPOINT_PASSIVE, &frames, &copied);
        pthread_mutex_lock(&cp->lock);
        /* Frames committed meanwhile: go again (without sleeping) until it has copied all. */
        if (rc == SQLITE_OK && copied < frames)
            cp->due = true;
    }
    pthread_mutex_unlock(&cp->lock);
    return NULL;
}

static checkpointer_t *checkpointer_start(const char *path)
{
    sqlite3 *db = cofre_db_sqlite_open(path, false, READER_CACHE_KIB);
    if (db == NULL)
        return NULL;
    checkpointer_t *cp = cofre_calloc(1, sizeof(*cp));
    cp->db = db;
    pthread_mutex_init(&cp->lock, NULL);
    pthread_cond_init(&cp->wake, NULL);
    COFRE_ASSERT(pthread_create(&cp->thread, NULL, checkpoint_main, cp) == 0);
    return cp;
}

static void checkpointer_stop(checkpointer_t *cp)
{
    if (cp == NULL)
        return;
    pthread_mutex_lock(&cp->lock);
    cp->stop = true;
    pthread_cond_signal(&cp->wake);
    pthread_mutex_unlock(&cp->lock);
    pthread_join(cp->thread, NULL);
    sqlite3_close(cp->db);
    pthread_cond_destroy(&cp->wake);
    pthread_mutex_destroy(&cp->lock);
    free(cp);
}

/* After each commit on the writer: SQLite tells how many frames the WAL holds. */
static int on_wal_commit(void *data, sqlite3 *db, const char *name, int frames)
{
    (void)db;
    (void)name;
    sqlite_store_t *s = data;
    s->wal_frames = frames;
    if (frames >= CHECKPOINT_WAKE_FRAMES) {
        checkpointer_t *cp = s->checkpointer;
        pthread_mutex_lock(&cp->lock);
        cp->due = true;
        pthread_cond_signal(&cp->wake);
        pthread_mutex_unlock(&cp->lock);
    }
    return SQLITE_OK;
}

static void sq_maintain(cofre_store_t *base)
{
    sqlite_store_t *s = (sqlite_store_t *)base;
    if (s->wal_frames < CHECKPOINT_FORCE_FRAMES)
        return;
    int frames = 0, copied = 0;
    int rc = sqlite3_wal_checkpoint_v2(s->db, NULL, SQLITE_CHECKPOINT_PASSIVE, &frames, &copied);
    if (rc != SQLITE_OK && rc != SQLITE_BUSY)
        map_error(s, rc, "checkpoint");
    s->wal_frames = 0;
}

static void sq_close(cofre_store_t *base)
{
    sqlite_store_t *s = (sqlite_store_t *)base;
    checkpointer_stop(s->checkpointer);
    for (int i = 0; i < Q_COUNT_; i++)
        sqlite3_finalize(s->stmts[i]);
    sqlite3_close(s->db);
    cofre_chains_release(&s->chains);
    free(s->acked);
    free(s);
}

static const cofre_store_ops_t sqlite_ops = {
    .close = sq_close,
    .begin = sq_begin,
    .lookup = sq_lookup,
    .write = sq_write,
    .commit = sq_commit,
    .rollback = sq_rollback,
    .prune_idempotency = sq_prune_idempotency,
    .maintain = sq_maintain,
    .account_get = sq_account_get,
    .transfer_get = sq_transfer_get,
    .accounts_page = sq_accounts_page,
    .transfers_page = sq_transfers_page,
    .ping = sq_ping,
    .outbox_fetch = sq_outbox_fetch,
    .outbox_mark_published = sq_outbox_mark_published,
    .outbox_stats = sq_outbox_stats,
};

int cofre_store_sqlite_open(const char *path, bool readonly, cofre_store_t **out)
{
    sqlite3 *db = cofre_db_sqlite_open(path, false, readonly ? READER_CACHE_KIB : WRITER_CACHE_KIB);
    if (db == NULL)
        return COFRE_EUNAVAIL;
    sqlite_store_t *s = cofre_calloc(1, sizeof(*s));
    s->super.ops = &sqlite_ops;
    s->db = db;
    s->published_seq = -1;
    for (int i = 0; i < Q_COUNT_; i++)
        s->stmts[i] = cofre_db_sqlite_prepare(db, queries[i]);
    if (!readonly) {
        char pragmas[128];
        snprintf(pragmas, sizeof(pragmas),
                 "PRAGMA wal_autocheckpoint = 0; PRAGMA journal_size_limit = %d",
                 WAL_SIZE_LIMIT_BYTES);
        s->checkpointer = checkpointer_start(path);
        if (s->checkpointer == NULL || cofre_db_sqlite_exec(db, pragmas) != 0) {
            sq_close(&s->super);
            return COFRE_EUNAVAIL;
        }
        sqlite3_wal_hook(db, on_wal_commit, s);
    }
    *out = &s->super;
    return 0;
}

/* ---- migrations ------------------------------------------------------------------------- */

int cofre_store_sqlite_migrate(const char *path)
{
    sqlite3 *db = cofre_db_sqlite_open(path, false, READER_CACHE_KIB);
    if (db == NULL)
        return COFRE_EUNAVAIL;
    const cofre_migrations_t m = {"cofre-core", cofre_migrations_sqlite,
                                  cofre_migrations_sqlite_count, NULL, NULL};
    int rc = cofre_migrate_sqlite(db, &m);
    sqlite3_close(db);
    return rc;
}
