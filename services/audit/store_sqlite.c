/*
 * store_sqlite.c: the audit trail on SQLite (see store.h). The schema is created on first
 * writable open; triggers make records and checkpoints append-only, so a changed or deleted
 * row takes someone who bypasses SQL's rules (and the chain then shows it).
 */
#include "audit/store.h"

#include "cofre/db.h"
#include "cofre/log.h"
#include "cofre/migrate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CACHE_KIB 8192

#define FIELD_COLUMNS                                                                              \
    "event_id, type, source, subject, time, recorded_at, client_id, owner, address, request_id, "  \
    "trace_id, outcome, reason, currency, debit_account_id, credit_account_id, topic, event"
#define RECORD_COLUMNS                                                                             \
    "seq, " FIELD_COLUMNS ", amount, time_us, kafka_partition, kafka_offset, hash"
#define TIME_FILTER " AND (?4 IS NULL OR time_us >= ?4) AND (?5 IS NULL OR time_us < ?5)"

/* migrations/audit/sqlite/, embedded by cmake/embed_migrations.cmake. */
extern const cofre_migration_t cofre_audit_migrations_sqlite[];
extern const size_t cofre_audit_migrations_sqlite_count;

enum {
    Q_BEGIN,
    Q_COMMIT,
    Q_ROLLBACK,
    Q_HEAD,
    Q_EXISTS,
    Q_INSERT,
    Q_PAGE_SUBJECT,
    Q_PAGE_TYPE,
    Q_PAGE_ANY,
    Q_SCAN,
    Q_CP_INSERT,
    Q_CP_LIST,
    Q_PING,
    Q_COUNT_,
};

static const char *const queries[Q_COUNT_] = {
    [Q_BEGIN] = "BEGIN IMMEDIATE",
    [Q_COMMIT] = "COMMIT",
    [Q_ROLLBACK] = "ROLLBACK",
    [Q_HEAD] = "SELECT seq, hash FROM audit_records ORDER BY seq DESC LIMIT 1",
    [Q_EXISTS] = "SELECT 1 FROM audit_records WHERE event_id = ?1",
    [Q_INSERT] = "INSERT INTO audit_records (" RECORD_COLUMNS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, "
                 "?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, "
                 "?23, ?24)",
    [Q_PAGE_SUBJECT] =
        "SELECT " RECORD_COLUMNS " FROM audit_records WHERE subject = ?2 AND "
        "seq > ?1 AND (?3 IS NULL OR type = ?3)" TIME_FILTER " ORDER BY seq LIMIT ?6",
    [Q_PAGE_TYPE] = "SELECT " RECORD_COLUMNS " FROM audit_records WHERE type = ?3 AND "
                    "seq > ?1 AND ?2 IS NULL" TIME_FILTER " ORDER BY seq LIMIT ?6",
    [Q_PAGE_ANY] = "SELECT " RECORD_COLUMNS " FROM audit_records WHERE seq > ?1 AND ?2 IS NULL "
                   "AND ?3 IS NULL" TIME_FILTER " ORDER BY seq LIMIT ?6",
    [Q_SCAN] = "SELECT " RECORD_COLUMNS " FROM audit_records WHERE seq > ?1 ORDER BY seq LIMIT ?2",
    [Q_CP_INSERT] = "INSERT INTO audit_checkpoints (seq, hash, created_at, public_key, signature) "
                    "VALUES (?1, ?2, ?3, ?4, ?5)",
    [Q_CP_LIST] = "SELECT seq, hash, created_at, public_key, signature FROM audit_checkpoints "
                  "WHERE seq > ?1 ORDER BY seq, id LIMIT ?2",
    [Q_PING] = "SELECT 1",
};

typedef struct sqlite_store {
    cofre_audit_store_t super;
    sqlite3 *db;
    sqlite3_stmt *stmts[Q_COUNT_];
} sqlite_store_t;

static int map_error(sqlite_store_t *s, int rc, const char *what)
{
    COFRE_LOG(COFRE_LOG_WARN, NULL, "audit store operation failed", COFRE_LF_STR("op", what),
              COFRE_LF_STR("error", sqlite3_errmsg(s->db)), COFRE_LF_INT("code", rc));
    switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return COFRE_ECONFLICT;
    case SQLITE_FULL:
    case SQLITE_CANTOPEN:
    case SQLITE_READONLY:
        return COFRE_EUNAVAIL;
    default:
        return COFRE_EIO;
    }
}

static int run(sqlite_store_t *s, int q)
{
    sqlite3_stmt *st = s->stmts[q];
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : map_error(s, rc, queries[q]);
}

static void bind_opt_text(sqlite3_stmt *st, int i, const char *v)
{
    if (v != NULL)
        sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, i);
}

static char *column_text(sqlite3_stmt *st, int col)
{
    const unsigned char *v = sqlite3_column_text(st, col);
    return v != NULL ? cofre_strndup((const char *)v, (size_t)sqlite3_column_bytes(st, col)) : NULL;
}

/* Copies a blob column of exactly len bytes; zeroes out when the length differs. */
static void column_blob(sqlite3_stmt *st, int col, uint8_t *out, size_t len)
{
    memset(out, 0, len);
    if ((size_t)sqlite3_column_bytes(st, col) == len)
        memcpy(out, sqlite3_column_blob(st, col), len);
}

/* Reads a row of RECORD_COLUMNS. */
static void read_record(sqlite3_stmt *st, cofre_audit_record_t *r)
{
    memset(r, 0, sizeof(*r));
    r->seq = sqlite3_column_int64(st, 0);
    for (int i = 0; i < COFRE_AUDIT_F_COUNT_; i++)
        r->f[i] = column_text(st, 1 + i);
    int c = 1 + COFRE_AUDIT_F_COUNT_;
    r->has_amount = sqlite3_column_type(st, c) != SQLITE_NULL;
    r->amount = sqlite3_column_int64(st, c);
    r->has_time_us = sqlite3_column_type(st, c + 1) != SQLITE_NULL;
    r->time_us = sqlite3_column_int64(st, c + 1);
    r->partition = (int32_t)sqlite3_column_int64(st, c + 2);
    r->offset = sqlite3_column_int64(st, c + 3);
    column_blob(st, c + 4, r->hash, COFRE_AUDIT_HASH_LEN);
}

static void bind_record(sqlite3_stmt *st, const cofre_audit_record_t *r)
{
    sqlite3_bind_int64(st, 1, r->seq);
    for (int i = 0; i < COFRE_AUDIT_F_COUNT_; i++)
        bind_opt_text(st, 2 + i, r->f[i]);
    int c = 2 + COFRE_AUDIT_F_COUNT_;
    if (r->has_amount)
        sqlite3_bind_int64(st, c, r->amount);
    else
        sqlite3_bind_null(st, c);
    if (r->has_time_us)
        sqlite3_bind_int64(st, c + 1, r->time_us);
    else
        sqlite3_bind_null(st, c + 1);
    sqlite3_bind_int64(st, c + 2, r->partition);
    sqlite3_bind_int64(st, c + 3, r->offset);
    sqlite3_bind_blob(st, c + 4, r->hash, COFRE_AUDIT_HASH_LEN, SQLITE_STATIC);
}

static int read_head(sqlite_store_t *s, int64_t *seq, uint8_t hash[COFRE_AUDIT_HASH_LEN])
{
    sqlite3_stmt *st = s->stmts[Q_HEAD];
    int rc = sqlite3_step(st);
    *seq = 0;
    memset(hash, 0, COFRE_AUDIT_HASH_LEN);
    if (rc == SQLITE_ROW) {
        *seq = sqlite3_column_int64(st, 0);
        column_blob(st, 1, hash, COFRE_AUDIT_HASH_LEN);
    }
    sqlite3_reset(st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : map_error(s, rc, queries[Q_HEAD]);
}

/* 1 when an event id is stored, 0 when not, or an error. */
static int exists(sqlite_store_t *s, const char *event_id)
{
    sqlite3_stmt *st = s->stmts[Q_EXISTS];
    sqlite3_bind_text(st, 1, event_id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc == SQLITE_ROW)
        return 1;
    return rc == SQLITE_DONE ? 0 : map_error(s, rc, queries[Q_EXISTS]);
}

static int append_one(sqlite_store_t *s, cofre_audit_record_t *r, int64_t *head_seq,
                      uint8_t head_hash[COFRE_AUDIT_HASH_LEN])
{
    int rc = exists(s, r->f[COFRE_AUDIT_F_EVENT_ID]);
    if (rc != 0)
        return rc < 0 ? rc : 0; /* a duplicate stays with seq 0 */
    r->seq = *head_seq + 1;
    cofre_audit_record_hash(head_hash, r, r->hash);
    bind_record(s->stmts[Q_INSERT], r);
    rc = run(s, Q_INSERT);
    sqlite3_clear_bindings(s->stmts[Q_INSERT]);
    if (rc != 0)
        return rc;
    *head_seq = r->seq;
    memcpy(head_hash, r->hash, COFRE_AUDIT_HASH_LEN);
    return 0;
}

static int sq_append(cofre_audit_store_t *base, cofre_audit_record_t *recs, size_t n,
                     int64_t *head_seq, uint8_t head_hash[COFRE_AUDIT_HASH_LEN])
{
    sqlite_store_t *s = (sqlite_store_t *)base;
    for (size_t i = 0; i < n; i++)
        recs[i].seq = 0;
    int rc = run(s, Q_BEGIN);
    if (rc != 0)
        return rc;
    rc = read_head(s, head_seq, head_hash);
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = append_one(s, &recs[i], head_seq, head_hash);
    if (rc == 0)
        rc = run(s, Q_COMMIT);
    if (rc == 0)
        return 0;
    run(s, Q_ROLLBACK);
    for (size_t i = 0; i < n; i++)
        recs[i].seq = 0;
    return rc;
}

static int sq_head(cofre_audit_store_t *base, int64_t *seq, uint8_t hash[COFRE_AUDIT_HASH_LEN])
{
    return read_head((sqlite_store_t *)base, seq, hash);
}

/* Steps st, reading up to max records into out. */
static int read_records(sqlite_store_t *s, int q, size_t max, cofre_audit_record_t *out, size_t *n)
{
    sqlite3_stmt *st = s->stmts[q];
    int rc = SQLITE_DONE;
    *n = 0;
    while (*n < max && (rc = sqlite3_step(st)) == SQLITE_ROW)
        read_record(st, &out[(*n)++]);
    if (*n == max)
        rc = SQLITE_DONE;
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc == SQLITE_DONE ? 0 : map_error(s, rc, queries[q]);
}

static int sq_page(cofre_audit_store_t *base, const cofre_audit_query_t *q,
                   cofre_audit_record_t *out, size_t *n)
{
    sqlite_store_t *s = (sqlite_store_t *)base;
    int which = q->subject != NULL ? Q_PAGE_SUBJECT : q->type != NULL ? Q_PAGE_TYPE : Q_PAGE_ANY;
    sqlite3_stmt *st = s->stmts[which];
    sqlite3_bind_int64(st, 1, q->after_seq);
    bind_opt_text(st, 2, q->subject);
    bind_opt_text(st, 3, q->type);
    if (q->has_from)
        sqlite3_bind_int64(st, 4, q->from_us);
    if (q->has_to)
        sqlite3_bind_int64(st, 5, q->to_us);
    sqlite3_bind_int64(st, 6, (int64_t)q->limit + 1);
    return read_records(s, which, q->limit + 1, out, n);
}

static int sq_scan(cofre_audit_store_t *base, int64_t after_seq, size_t max,
                   cofre_audit_record_t *out, size_t *n)
{
    sqlite_store_t *s = (sqlite_store_t *)base;
    sqlite3_stmt *st = s->stmts[Q_SCAN];
    sqlite3_bind_int64(st, 1, after_seq);
    sqlite3_bind_int64(st, 2, (int64_t)max);
    return read_records(s, Q_SCAN, max, out, n);
}

static int sq_checkpoint_add(cofre_audit_store_t *base, const cofre_audit_checkpoint_t *cp)
{
    sqlite_store_t *s = (sqlite_store_t *)base;
    sqlite3_stmt *st = s->stmts[Q_CP_INSERT];
    sqlite3_bind_int64(st, 1, cp->seq);
    sqlite3_bind_blob(st, 2, cp->hash, COFRE_AUDIT_HASH_LEN, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, cp->created_at, -1, SQLITE_STATIC);
    sqlite3_bind_blob(st, 4, cp->public_key, COFRE_AUDIT_PUBKEY_LEN, SQLITE_STATIC);
    sqlite3_bind_blob(st, 5, cp->signature, COFRE_AUDIT_SIG_LEN, SQLITE_STATIC);
    int rc = run(s, Q_CP_INSERT);
    sqlite3_clear_bindings(st);
    return rc;
}

static int sq_checkpoints(cofre_audit_store_t *base, int64_t after_seq, size_t max,
                          cofre_audit_checkpoint_t *out, size_t *n)
{
    sqlite_store_t *s = (sqlite_store_t *)base;
    sqlite3_stmt *st = s->stmts[Q_CP_LIST];
    sqlite3_bind_int64(st, 1, after_seq);
    sqlite3_bind_int64(st, 2, (int64_t)max);
    int rc = SQLITE_DONE;
    *n = 0;
    while (*n < max && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        cofre_audit_checkpoint_t *cp = &out[(*n)++];
        memset(cp, 0, sizeof(*cp));
        cp->seq = sqlite3_column_int64(st, 0);
        column_blob(st, 1, cp->hash, COFRE_AUDIT_HASH_LEN);
        const unsigned char *t = sqlite3_column_text(st, 2);
        snprintf(cp->created_at, sizeof(cp->created_at), "%s", t != NULL ? (const char *)t : "");
        column_blob(st, 3, cp->public_key, COFRE_AUDIT_PUBKEY_LEN);
        column_blob(st, 4, cp->signature, COFRE_AUDIT_SIG_LEN);
    }
    if (*n == max)
        rc = SQLITE_DONE;
    sqlite3_reset(st);
    return rc == SQLITE_DONE ? 0 : map_error(s, rc, queries[Q_CP_LIST]);
}

static bool sq_ping(cofre_audit_store_t *base)
{
    return run((sqlite_store_t *)base, Q_PING) == 0;
}

static void sq_close(cofre_audit_store_t *base)
{
    sqlite_store_t *s = (sqlite_store_t *)base;
    for (int i = 0; i < Q_COUNT_; i++)
        sqlite3_finalize(s->stmts[i]);
    sqlite3_close(s->db);
    free(s);
}

static const cofre_audit_store_ops_t sqlite_ops = {
    .close = sq_close,
    .append = sq_append,
    .head = sq_head,
    .page = sq_page,
    .scan = sq_scan,
    .checkpoint_add = sq_checkpoint_add,
    .checkpoints = sq_checkpoints,
    .ping = sq_ping,
};

/*
 * Brings the schema up to date (or, read-only, checks there is one this binary reads):
 * 0, COFRE_ERANGE for a newer schema, COFRE_EUNAVAIL or COFRE_EIO.
 */
static int ensure_schema(sqlite3 *db, bool readonly)
{
    const cofre_migrations_t m = {"cofre-audit", cofre_audit_migrations_sqlite,
                                  cofre_audit_migrations_sqlite_count, NULL, NULL};
    if (!readonly)
        return cofre_migrate_sqlite(db, &m);
    sqlite3_stmt *st = cofre_db_sqlite_prepare(db, "PRAGMA user_version");
    int version = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : -1;
    sqlite3_finalize(st);
    if (version > m.list[m.count - 1].version) {
        COFRE_LOG(COFRE_LOG_ERROR, NULL, "database schema is newer than this binary",
                  COFRE_LF_INT("schema", version));
        return COFRE_ERANGE;
    }
    if (version < 1) {
        cofre_log_msg(COFRE_LOG_ERROR, NULL, "audit database has no schema yet");
        return COFRE_EUNAVAIL;
    }
    return 0;
}

int cofre_audit_store_sqlite_open(const char *path, bool readonly, cofre_audit_store_t **out)
{
    sqlite3 *db = cofre_db_sqlite_open(path, readonly, CACHE_KIB);
    if (db == NULL)
        return COFRE_EUNAVAIL;
    int rc = ensure_schema(db, readonly);
    if (rc != 0) {
        sqlite3_close(db);
        return rc;
    }
    sqlite_store_t *s = cofre_calloc(1, sizeof(*s));
    s->super.ops = &sqlite_ops;
    s->db = db;
    for (int i = 0; i < Q_COUNT_; i++)
        s->stmts[i] = cofre_db_sqlite_prepare(db, queries[i]);
    *out = &s->super;
    return 0;
}

int cofre_audit_store_sqlite_migrate(const char *path)
{
    cofre_audit_store_t *s = NULL;
    int rc = cofre_audit_store_sqlite_open(path, false, &s);
    if (s != NULL)
        s->ops->close(s);
    return rc;
}
