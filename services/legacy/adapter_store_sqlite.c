/*
 * adapter_store_sqlite.c: the delivery store on SQLite (see adapter_store.h). WAL and
 * synchronous=FULL (cofre_db_sqlite_open): a transaction that returned is on disk, which is
 * what lets the consumer commit its Kafka offsets after enqueue and the engine send a 0200
 * after marking it sent. The consumer's and the engine's connections write to the same file:
 * a process-wide mutex orders their write transactions, so neither sleeps in SQLite's busy
 * handler (whose waits grow to 100 ms) while the other commits; BEGIN IMMEDIATE and the busy
 * timeout still guard against another process.
 */
#include "legacy/adapter_store.h"

#include "cofre/common.h"
#include "cofre/db.h"
#include "cofre/log.h"
#include "cofre/migrate.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#define CACHE_KIB 8192

/* migrations/legacy/sqlite/, embedded by cmake/embed_migrations.cmake. */
extern const cofre_migration_t cofre_migrations_legacy_sqlite[];
extern const size_t cofre_migrations_legacy_sqlite_count;

#define DELIVERY_COLUMNS                                                                           \
    "seq, transfer_id, event_id, rrn, debit_account_id, credit_account_id, amount, currency,"      \
    " posted_at_us, traceparent, kafka_partition, kafka_offset, state, attempts, reversals,"       \
    " stan, sent_at_us, response_code, auth_id"

enum {
    Q_BEGIN,
    Q_COMMIT,
    Q_ROLLBACK,
    Q_INSERT,
    Q_INSERT_DEAD,
    Q_LOAD_OPEN,
    Q_UPDATE,
    Q_DLQ_FETCH,
    Q_DLQ_MARK,
    Q_COUNT_PENDING,
    Q_COUNT_SENT,
    Q_COUNT_DLQ,
    Q_EACH,
    Q_PRUNE_SCAN,
    Q_PRUNE_DELETE,
    Q_PRUNE_DLQ,
    Q_COUNT
};

static const char *const sql[Q_COUNT] = {
    [Q_BEGIN] = "BEGIN IMMEDIATE",
    [Q_COMMIT] = "COMMIT",
    [Q_ROLLBACK] = "ROLLBACK",
    [Q_INSERT] = "INSERT OR IGNORE INTO deliveries (transfer_id, event_id, rrn, debit_account_id,"
                 " credit_account_id, amount, currency, posted_at_us, traceparent,"
                 " kafka_partition, kafka_offset, state, created_at_us, updated_at_us)"
                 " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, 'pending', ?12, ?12)",
    [Q_INSERT_DEAD] = "INSERT OR IGNORE INTO dlq (source_key, message_key, reason, payload,"
                      " created_at_us) VALUES (?1, ?2, ?3, ?4, ?5)",
    [Q_LOAD_OPEN] = "SELECT " DELIVERY_COLUMNS " FROM deliveries"
                    " WHERE seq > ?1 AND state IN ('pending','sent') ORDER BY seq LIMIT ?2",
    [Q_UPDATE] = "UPDATE deliveries SET state = ?2, attempts = ?3, reversals = ?4, stan = ?5,"
                 " sent_at_us = ?6, response_code = ?7, auth_id = ?8, reason = ?9,"
                 " updated_at_us = ?10 WHERE seq = ?1",
    [Q_DLQ_FETCH] = "SELECT seq, message_key, payload FROM dlq WHERE published_at_us IS NULL"
                    " ORDER BY seq LIMIT ?1",
    [Q_DLQ_MARK] = "UPDATE dlq SET published_at_us = ?2 WHERE seq = ?1",
    [Q_COUNT_PENDING] = "SELECT count(*) FROM deliveries WHERE state IN ('pending','sent')"
                        " AND state = 'pending'",
    [Q_COUNT_SENT] = "SELECT count(*) FROM deliveries WHERE state IN ('pending','sent')"
                     " AND state = 'sent'",
    [Q_COUNT_DLQ] = "SELECT count(*) FROM dlq WHERE published_at_us IS NULL",
    [Q_EACH] = "SELECT " DELIVERY_COLUMNS " FROM deliveries ORDER BY seq",
    [Q_PRUNE_SCAN] = "SELECT seq, state, created_at_us FROM deliveries WHERE seq > ?1"
                     " ORDER BY seq LIMIT ?2",
    [Q_PRUNE_DELETE] = "DELETE FROM deliveries WHERE seq = ?1",
    [Q_PRUNE_DLQ] = "DELETE FROM dlq WHERE seq IN (SELECT seq FROM dlq WHERE published_at_us < ?1"
                    " ORDER BY seq LIMIT ?2)",
};

/* Orders the write transactions of every connection of this process. */
static pthread_mutex_t write_lock = PTHREAD_MUTEX_INITIALIZER;

typedef struct sqlite_store {
    cofre_adapter_store_t base;
    sqlite3 *db;
    sqlite3_stmt *q[Q_COUNT];
} sqlite_store_t;

static sqlite_store_t *self(cofre_adapter_store_t *s)
{
    return (sqlite_store_t *)s;
}

static int fail(sqlite_store_t *s, const char *what)
{
    COFRE_LOG(COFRE_LOG_ERROR, NULL, "delivery store failed", COFRE_LF_STR("operation", what),
              COFRE_LF_STR("error", sqlite3_errmsg(s->db)));
    return COFRE_EIO;
}

/* Runs a statement that returns no rows, then resets it. */
static int step_done(sqlite_store_t *s, sqlite3_stmt *st, const char *what)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc == SQLITE_DONE ? 0 : fail(s, what);
}

/* Begins a write transaction; on success the caller must call finish. */
static int begin(sqlite_store_t *s)
{
    pthread_mutex_lock(&write_lock);
    int rc = step_done(s, s->q[Q_BEGIN], "begin");
    if (rc != 0)
        pthread_mutex_unlock(&write_lock);
    return rc;
}

/* Commits, or rolls back when rc says the transaction failed; ends what begin started. */
static int finish(sqlite_store_t *s, int rc)
{
    if (rc == 0 && step_done(s, s->q[Q_COMMIT], "commit") == 0) {
        pthread_mutex_unlock(&write_lock);
        return 0;
    }
    if (!sqlite3_get_autocommit(s->db))
        step_done(s, s->q[Q_ROLLBACK], "rollback");
    pthread_mutex_unlock(&write_lock);
    return COFRE_EIO;
}

static void bind_text(sqlite3_stmt *st, int i, const char *v)
{
    if (v == NULL || v[0] == '\0')
        sqlite3_bind_null(st, i);
    else
        sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC);
}

static int insert_transfer(sqlite_store_t *s, const cofre_adapter_transfer_t *t, int64_t now,
                           bool *inserted)
{
    sqlite3_stmt *st = s->q[Q_INSERT];
    sqlite3_bind_text(st, 1, t->transfer_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, t->event_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, t->rrn, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, t->debit_account_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 5, t->credit_account_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 6, t->amount_minor);
    sqlite3_bind_text(st, 7, t->currency, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 8, (int64_t)t->posted_at_us);
    bind_text(st, 9, t->traceparent);
    if (t->partition >= 0) {
        sqlite3_bind_int(st, 10, t->partition);
        sqlite3_bind_int64(st, 11, t->offset);
    }
    sqlite3_bind_int64(st, 12, now);
    int rc = step_done(s, st, "insert delivery");
    *inserted = rc == 0 && sqlite3_changes(s->db) > 0;
    return rc;
}

static int insert_dead(sqlite_store_t *s, const cofre_adapter_dead_t *d, int64_t now)
{
    sqlite3_stmt *st = s->q[Q_INSERT_DEAD];
    sqlite3_bind_text(st, 1, d->source_key, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, d->message_key, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, d->reason, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, d->payload, (int)d->payload_len, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, now);
    return step_done(s, st, "insert dead letter");
}

/* One process owns the file: nothing is refused (refused is NULL). */
static int sq_enqueue(cofre_adapter_store_t *base, const cofre_adapter_transfer_t *ts, size_t n,
                      const cofre_adapter_dead_t *dead, size_t ndead, size_t *inserted,
                      int32_t *refused, size_t *nrefused)
{
    (void)refused;
    *nrefused = 0;
    sqlite_store_t *s = self(base);
    int64_t now = (int64_t)cofre_now_wall_us();
    size_t added = 0;
    int rc = begin(s);
    if (rc != 0)
        return rc;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        bool new_row = false;
        rc = insert_transfer(s, &ts[i], now, &new_row);
        added += new_row;
    }
    for (size_t i = 0; rc == 0 && i < ndead; i++)
        rc = insert_dead(s, &dead[i], now);
    rc = finish(s, rc);
    if (rc == 0)
        *inserted = added;
    return rc;
}

static void copy_col(sqlite3_stmt *st, int col, char *out, size_t cap)
{
    const unsigned char *v = sqlite3_column_text(st, col);
    size_t len = v == NULL ? 0 : (size_t)sqlite3_column_bytes(st, col);
    len = COFRE_MIN(len, cap - 1);
    if (len > 0)
        memcpy(out, v, len);
    out[len] = '\0';
}

static cofre_delivery_state_t state_from(const char *name)
{
    for (int i = 0; i < COFRE_DELIVERY_STATES; i++) {
        if (strcmp(name, cofre_delivery_state_name((cofre_delivery_state_t)i)) == 0)
            return (cofre_delivery_state_t)i;
    }
    return COFRE_DELIVERY_PENDING; /* the CHECK constraint allows no other name */
}

static void read_delivery(sqlite3_stmt *st, cofre_adapter_delivery_t *d)
{
    memset(d, 0, sizeof(*d));
    cofre_adapter_transfer_t *t = &d->t;
    d->seq = sqlite3_column_int64(st, 0);
    copy_col(st, 1, t->transfer_id, sizeof(t->transfer_id));
    copy_col(st, 2, t->event_id, sizeof(t->event_id));
    copy_col(st, 3, t->rrn, sizeof(t->rrn));
    copy_col(st, 4, t->debit_account_id, sizeof(t->debit_account_id));
    copy_col(st, 5, t->credit_account_id, sizeof(t->credit_account_id));
    t->amount_minor = sqlite3_column_int64(st, 6);
    copy_col(st, 7, t->currency, sizeof(t->currency));
    t->posted_at_us = (uint64_t)sqlite3_column_int64(st, 8);
    copy_col(st, 9, t->traceparent, sizeof(t->traceparent));
    bool has_part = sqlite3_column_type(st, 10) != SQLITE_NULL;
    t->partition = has_part ? sqlite3_column_int(st, 10) : -1;
    t->offset = has_part ? sqlite3_column_int64(st, 11) : -1;
    char state[16];
    copy_col(st, 12, state, sizeof(state));
    d->state = state_from(state);
    d->attempts = (uint32_t)sqlite3_column_int64(st, 13);
    d->reversals = (uint32_t)sqlite3_column_int64(st, 14);
    d->stan = (uint32_t)sqlite3_column_int64(st, 15);
    d->sent_at_us = (uint64_t)sqlite3_column_int64(st, 16);
    copy_col(st, 17, d->response_code, sizeof(d->response_code));
    copy_col(st, 18, d->auth_id, sizeof(d->auth_id));
}

static int sq_load_open(cofre_adapter_store_t *base, int64_t after_seq, size_t max,
                        cofre_adapter_delivery_t *out, size_t *n)
{
    sqlite_store_t *s = self(base);
    sqlite3_stmt *st = s->q[Q_LOAD_OPEN];
    sqlite3_bind_int64(st, 1, after_seq);
    sqlite3_bind_int64(st, 2, (int64_t)max);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW && *n < max)
        read_delivery(st, &out[(*n)++]);
    sqlite3_reset(st);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : fail(s, "load open deliveries");
}

static int update_one(sqlite_store_t *s, const cofre_adapter_update_t *u, int64_t now)
{
    sqlite3_stmt *st = s->q[Q_UPDATE];
    sqlite3_bind_int64(st, 1, u->seq);
    sqlite3_bind_text(st, 2, cofre_delivery_state_name(u->state), -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, u->attempts);
    sqlite3_bind_int64(st, 4, u->reversals);
    if (u->state == COFRE_DELIVERY_SENT) {
        sqlite3_bind_int64(st, 5, u->stan);
        sqlite3_bind_int64(st, 6, (int64_t)u->sent_at_us);
    }
    bind_text(st, 7, u->response_code);
    bind_text(st, 8, u->auth_id);
    bind_text(st, 9, u->reason);
    sqlite3_bind_int64(st, 10, now);
    int rc = step_done(s, st, "update delivery");
    if (rc == 0 && u->dead != NULL)
        rc = insert_dead(s, u->dead, now);
    return rc;
}

static int sq_apply(cofre_adapter_store_t *base, const cofre_adapter_update_t *u, size_t n,
                    int32_t *lost, size_t *nlost)
{
    (void)lost;
    *nlost = 0;
    sqlite_store_t *s = self(base);
    int64_t now = (int64_t)cofre_now_wall_us();
    int rc = begin(s);
    if (rc != 0)
        return rc;
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = update_one(s, &u[i], now);
    return finish(s, rc);
}

static int sq_dlq_fetch(cofre_adapter_store_t *base, size_t max, cofre_adapter_dlq_row_t *out,
                        size_t *n)
{
    sqlite_store_t *s = self(base);
    sqlite3_stmt *st = s->q[Q_DLQ_FETCH];
    sqlite3_bind_int64(st, 1, (int64_t)max);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW && *n < max) {
        cofre_adapter_dlq_row_t *r = &out[(*n)++];
        r->seq = sqlite3_column_int64(st, 0);
        r->message_key = cofre_strdup((const char *)sqlite3_column_text(st, 1));
        r->payload_len = (size_t)sqlite3_column_bytes(st, 2);
        r->payload = cofre_strndup((const char *)sqlite3_column_text(st, 2), r->payload_len);
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : fail(s, "fetch dead letters");
}

static int sq_dlq_mark(cofre_adapter_store_t *base, const int64_t *seqs, size_t n, uint64_t now_us)
{
    sqlite_store_t *s = self(base);
    int rc = begin(s);
    if (rc != 0)
        return rc;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        sqlite3_bind_int64(s->q[Q_DLQ_MARK], 1, seqs[i]);
        sqlite3_bind_int64(s->q[Q_DLQ_MARK], 2, (int64_t)now_us);
        rc = step_done(s, s->q[Q_DLQ_MARK], "mark dead letter");
    }
    return finish(s, rc);
}

static int count(sqlite_store_t *s, int q, int64_t *out)
{
    int rc = sqlite3_step(s->q[q]);
    *out = rc == SQLITE_ROW ? sqlite3_column_int64(s->q[q], 0) : 0;
    sqlite3_reset(s->q[q]);
    return rc == SQLITE_ROW ? 0 : fail(s, "count");
}

static int sq_stats(cofre_adapter_store_t *base, cofre_adapter_store_stats_t *out)
{
    sqlite_store_t *s = self(base);
    int rc = count(s, Q_COUNT_PENDING, &out->pending);
    rc = rc != 0 ? rc : count(s, Q_COUNT_SENT, &out->sent);
    return rc != 0 ? rc : count(s, Q_COUNT_DLQ, &out->dlq_pending);
}

static int sq_each(cofre_adapter_store_t *base,
                   int (*fn)(const cofre_adapter_delivery_t *d, void *data), void *data)
{
    sqlite_store_t *s = self(base);
    sqlite3_stmt *st = s->q[Q_EACH];
    cofre_adapter_delivery_t d;
    int rc, out = 0;
    while (out == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        read_delivery(st, &d);
        out = fn(&d, data);
    }
    sqlite3_reset(st);
    if (out != 0)
        return out;
    return rc == SQLITE_DONE ? 0 : fail(s, "read deliveries");
}

static bool final_state(const unsigned char *state)
{
    return state != NULL && (strcmp((const char *)state, "applied") == 0 ||
                             strcmp((const char *)state, "declined") == 0 ||
                             strcmp((const char *)state, "failed") == 0);
}

/* Collects the final rows of one scan into seqs (max entries); advances *next_seq. */
static int prune_scan(sqlite_store_t *s, int64_t after_seq, uint64_t before_us, size_t max,
                      int64_t *seqs, size_t *n, int64_t *next_seq)
{
    sqlite3_stmt *st = s->q[Q_PRUNE_SCAN];
    sqlite3_bind_int64(st, 1, after_seq);
    sqlite3_bind_int64(st, 2, (int64_t)max);
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if ((uint64_t)sqlite3_column_int64(st, 2) >= before_us)
            break;
        int64_t seq = sqlite3_column_int64(st, 0);
        *next_seq = seq;
        if (final_state(sqlite3_column_text(st, 1)) && *n < max)
            seqs[(*n)++] = seq;
    }
    sqlite3_reset(st);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : fail(s, "prune scan");
}

static int sq_prune(cofre_adapter_store_t *base, int64_t after_seq, uint64_t before_us, size_t max,
                    int64_t *next_seq, size_t *deleted)
{
    sqlite_store_t *s = self(base);
    int64_t *seqs = cofre_calloc(max, sizeof(*seqs));
    size_t n = 0;
    int rc = prune_scan(s, after_seq, before_us, max, seqs, &n, next_seq);
    rc = rc != 0 ? rc : begin(s);
    if (rc != 0) {
        free(seqs);
        return rc;
    }
    for (size_t i = 0; rc == 0 && i < n; i++) {
        sqlite3_bind_int64(s->q[Q_PRUNE_DELETE], 1, seqs[i]);
        rc = step_done(s, s->q[Q_PRUNE_DELETE], "prune delivery");
    }
    if (rc == 0) {
        sqlite3_bind_int64(s->q[Q_PRUNE_DLQ], 1, (int64_t)before_us);
        sqlite3_bind_int64(s->q[Q_PRUNE_DLQ], 2, (int64_t)max);
        rc = step_done(s, s->q[Q_PRUNE_DLQ], "prune dead letters");
    }
    free(seqs);
    rc = finish(s, rc);
    if (rc == 0)
        *deleted = n;
    return rc;
}

static void sq_close(cofre_adapter_store_t *base)
{
    sqlite_store_t *s = self(base);
    for (int i = 0; i < Q_COUNT; i++)
        sqlite3_finalize(s->q[i]);
    sqlite3_close(s->db);
    free(s);
}

static const cofre_adapter_store_ops_t sqlite_ops = {
    .enqueue = sq_enqueue,
    .load_open = sq_load_open,
    .apply = sq_apply,
    .dlq_fetch = sq_dlq_fetch,
    .dlq_mark = sq_dlq_mark,
    .stats = sq_stats,
    .each = sq_each,
    .prune = sq_prune,
    .close = sq_close,
};

/* Brings the schema up to date; refuses a newer one. */
static int migrate(sqlite3 *db)
{
    const cofre_migrations_t m = {"cofre-legacy", cofre_migrations_legacy_sqlite,
                                  cofre_migrations_legacy_sqlite_count, NULL, NULL};
    return cofre_migrate_sqlite(db, &m);
}

int cofre_adapter_store_sqlite_open(const char *path, bool readonly, cofre_adapter_store_t **out)
{
    sqlite3 *db = cofre_db_sqlite_open(path, readonly, CACHE_KIB);
    if (db == NULL)
        return COFRE_EIO;
    if (!readonly && migrate(db) != 0) {
        sqlite3_close(db);
        return COFRE_EIO;
    }
    sqlite_store_t *s = cofre_calloc(1, sizeof(*s));
    s->base.ops = &sqlite_ops;
    s->db = db;
    for (int i = 0; i < Q_COUNT; i++) {
        if (sqlite3_prepare_v3(db, sql[i], -1, SQLITE_PREPARE_PERSISTENT, &s->q[i], NULL) !=
            SQLITE_OK) {
            /* Read-only on a file without the schema: not a delivery store. */
            COFRE_LOG(COFRE_LOG_ERROR, NULL, "not a cofre-legacy delivery store",
                      COFRE_LF_STR("path", path), COFRE_LF_STR("error", sqlite3_errmsg(db)));
            sq_close(&s->base);
            return COFRE_EIO;
        }
    }
    *out = &s->base;
    return 0;
}
