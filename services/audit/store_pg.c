/*
 * store_pg.c: the audit trail on PostgreSQL (see store.h), for several cofre-audit replicas in
 * one consumer group on one database, directly or through PgBouncer in transaction mode.
 *
 * An append is one READ COMMITTED transaction in two round trips (lib/pg.c pipelines):
 *
 *   1. BEGIN; per-transaction timeouts; pg_advisory_xact_lock (appends of every replica take
 *      turns, so the chain stays linear); the head (a fresh snapshot, taken after the lock,
 *      sees the previous holder's commit); which of the batch's event ids are stored already.
 *   2. INSERT the new records (seq and hash computed here, one statement for the whole batch
 *      through json_populate_recordset), then COMMIT, which releases the lock.
 *
 * The unique event_id is the second line behind the dedup. The schema comes from
 * migrations/audit/postgres/, applied by `cofre-audit migrate` as the owner role under an
 * advisory lock; the service role may only SELECT and INSERT (the grants and triggers there).
 * No session state survives a transaction. Connections reconnect by themselves with backoff
 * and bound every wait (cofre/pg.h).
 */
#include "audit/store.h"

#include "cofre/common.h"
#include "cofre/jbuf.h"
#include "cofre/log.h"
#include "cofre/pg.h"
#include "cofre/migrate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern const cofre_migration_t cofre_audit_migrations_postgres[];
extern const size_t cofre_audit_migrations_postgres_count;

#define TXN_SETTINGS                                                                               \
    "SELECT set_config('lock_timeout', '5s', true), "                                              \
    "set_config('statement_timeout', '10s', true), "                                               \
    "set_config('idle_in_transaction_session_timeout', '15s', true)"
#define CONNECT_TIMEOUT_MS 2000
#define ROUND_TIMEOUT_MS   12000
#define BACKOFF_MAX_MS     2000
/* pg_advisory_xact_lock keys: appends ("cofreaud" in ASCII) and migrations ("cofreaum"). */
#define APPEND_LOCK_KEY  "7165064481618422116"
#define MIGRATE_LOCK_KEY "7165064481618422125"
#define MIGRATIONS_TABLE "cofre_audit_schema_migrations"

#define FIELD_COLUMNS                                                                              \
    "event_id, type, source, subject, time, recorded_at, client_id, owner, address, request_id, "  \
    "trace_id, outcome, reason, currency, debit_account_id, credit_account_id, topic, event"
#define INSERT_COLUMNS                                                                             \
    "seq, " FIELD_COLUMNS ", amount, time_us, kafka_partition, kafka_offset, hash"
#define RECORD_COLUMNS                                                                             \
    "seq, " FIELD_COLUMNS ", amount, time_us, kafka_partition, kafka_offset, encode(hash, 'hex')"
#define TIME_FILTER                                                                                \
    " AND ($4::int8 IS NULL OR time_us >= $4::int8) AND ($5::int8 IS NULL OR time_us < $5::int8)"

static const char sql_head[] =
    "SELECT seq, encode(hash, 'hex') FROM audit_records ORDER BY seq DESC LIMIT 1";
static const char sql_stored_ids[] =
    "SELECT event_id FROM audit_records WHERE event_id = ANY($1::text[])";
static const char sql_insert[] =
    "INSERT INTO audit_records (" INSERT_COLUMNS ") SELECT " INSERT_COLUMNS
    " FROM json_populate_recordset(NULL::audit_records, $1::json)";
static const char sql_page_subject[] =
    "SELECT " RECORD_COLUMNS " FROM audit_records WHERE subject = $2::text AND seq > $1::int8 "
    "AND ($3::text IS NULL OR type = $3::text)" TIME_FILTER " ORDER BY seq LIMIT $6::int8";
static const char sql_page_type[] =
    "SELECT " RECORD_COLUMNS " FROM audit_records WHERE type = $3::text AND seq > $1::int8 "
    "AND $2::text IS NULL" TIME_FILTER " ORDER BY seq LIMIT $6::int8";
static const char sql_page_any[] =
    "SELECT " RECORD_COLUMNS " FROM audit_records WHERE seq > $1::int8 AND $2::text IS NULL "
    "AND $3::text IS NULL" TIME_FILTER " ORDER BY seq LIMIT $6::int8";
static const char sql_scan[] =
    "SELECT " RECORD_COLUMNS " FROM audit_records WHERE seq > $1::int8 ORDER BY seq LIMIT $2::int8";
static const char sql_cp_insert[] =
    "INSERT INTO audit_checkpoints (seq, hash, created_at, public_key, signature) "
    "VALUES ($1::int8, decode($2, 'hex'), $3, decode($4, 'hex'), decode($5, 'hex'))";
static const char sql_cp_list[] =
    "SELECT seq, encode(hash, 'hex'), created_at, encode(public_key, 'hex'), "
    "encode(signature, 'hex') FROM audit_checkpoints WHERE seq > $1::int8 ORDER BY seq, id "
    "LIMIT $2::int8";

typedef struct pg_store {
    cofre_audit_store_t super;
    cofre_pg_t *pg;
    cofre_pg_array_t ids; /* the batch's event ids */
    cofre_jbuf_t rows;    /* the new records as a JSON array */
} pg_store_t;

/* ---- values ------------------------------------------------------------------------------ */

static int hex_nibble(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Decodes a hex text column of exactly 2*len digits into out; zeroes out otherwise. */
static void column_hex(const PGresult *r, int row, int col, uint8_t *out, size_t len)
{
    memset(out, 0, len);
    const char *v = PQgetvalue(r, row, col);
    if (PQgetisnull(r, row, col) || (size_t)PQgetlength(r, row, col) != 2 * len)
        return;
    for (size_t i = 0; i < len; i++) {
        int hi = hex_nibble(v[2 * i]), lo = hex_nibble(v[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            memset(out, 0, len);
            return;
        }
        out[i] = (uint8_t)(hi << 4 | lo);
    }
}

static char *column_text(const PGresult *r, int row, int col)
{
    if (PQgetisnull(r, row, col))
        return NULL;
    return cofre_strndup(PQgetvalue(r, row, col), (size_t)PQgetlength(r, row, col));
}

/* Reads a row of RECORD_COLUMNS. */
static void read_record(const PGresult *r, int row, cofre_audit_record_t *rec)
{
    memset(rec, 0, sizeof(*rec));
    rec->seq = cofre_pg_int64(r, row, 0);
    for (int i = 0; i < COFRE_AUDIT_F_COUNT_; i++)
        rec->f[i] = column_text(r, row, 1 + i);
    int c = 1 + COFRE_AUDIT_F_COUNT_;
    rec->has_amount = !PQgetisnull(r, row, c);
    rec->amount = cofre_pg_int64(r, row, c);
    rec->has_time_us = !PQgetisnull(r, row, c + 1);
    rec->time_us = cofre_pg_int64(r, row, c + 1);
    rec->partition = (int32_t)cofre_pg_int64(r, row, c + 2);
    rec->offset = cofre_pg_int64(r, row, c + 3);
    column_hex(r, row, c + 4, rec->hash, COFRE_AUDIT_HASH_LEN);
}

/* Appends rec as one element of the JSON array json_populate_recordset reads. */
static void record_json(cofre_jbuf_t *b, const cofre_audit_record_t *rec)
{
    cofre_jbuf_obj_begin(b);
    cofre_jbuf_kint(b, "seq", rec->seq);
    for (int i = 0; i < COFRE_AUDIT_F_COUNT_; i++)
        cofre_jbuf_kstr(b, cofre_audit_field_names[i], rec->f[i]);
    cofre_jbuf_key(b, "amount");
    if (rec->has_amount)
        cofre_jbuf_int(b, rec->amount);
    else
        cofre_jbuf_null(b);
    cofre_jbuf_key(b, "time_us");
    if (rec->has_time_us)
        cofre_jbuf_int(b, rec->time_us);
    else
        cofre_jbuf_null(b);
    cofre_jbuf_kint(b, "kafka_partition", rec->partition);
    cofre_jbuf_kint(b, "kafka_offset", rec->offset);
    char hex[2 + 2 * COFRE_AUDIT_HASH_LEN + 1] = "\\x";
    cofre_hex_encode(rec->hash, COFRE_AUDIT_HASH_LEN, hex + 2);
    cofre_jbuf_kstr(b, "hash", hex);
    cofre_jbuf_obj_end(b);
}

/* Runs one statement on its own (an implicit transaction); *r its result on success. */
static int run_one(pg_store_t *s, const char *sql, const cofre_pg_param_t *p, int n,
                   const PGresult **r)
{
    cofre_pg_add(s->pg, sql, p, n);
    int rc = cofre_pg_exchange(s->pg, true);
    *r = rc == 0 ? cofre_pg_result(s->pg, 0) : NULL;
    return rc;
}

/* ---- append ------------------------------------------------------------------------------ */

/* Ends a failed transaction (when the connection still has one). */
static void rollback(pg_store_t *s)
{
    if (!cofre_pg_in_transaction(s->pg))
        return;
    cofre_pg_add(s->pg, "ROLLBACK", NULL, 0);
    if (cofre_pg_exchange(s->pg, false) != 0)
        cofre_pg_disconnect(s->pg); /* the next round starts clean */
}

/* True when event_id is one of the stored ids of result r, or of recs[0..i). */
static bool is_duplicate(const PGresult *r, const cofre_audit_record_t *recs, size_t i)
{
    const char *id = recs[i].f[COFRE_AUDIT_F_EVENT_ID];
    for (int row = 0; row < PQntuples(r); row++)
        if (strcmp(PQgetvalue(r, row, 0), id) == 0)
            return true;
    for (size_t j = 0; j < i; j++)
        if (recs[j].seq > 0 && strcmp(recs[j].f[COFRE_AUDIT_F_EVENT_ID], id) == 0)
            return true;
    return false;
}

/* Round 1: lock, head, stored ids. */
static int append_lock_and_read(pg_store_t *s, const cofre_audit_record_t *recs, size_t n)
{
    cofre_pg_array_reset(&s->ids);
    for (size_t i = 0; i < n; i++) {
        const char *id = recs[i].f[COFRE_AUDIT_F_EVENT_ID];
        cofre_pg_array_text(&s->ids, id, strlen(id));
    }
    const cofre_pg_param_t ids = cofre_pg_array_param(&s->ids);
    cofre_pg_add(s->pg, "BEGIN", NULL, 0);
    cofre_pg_add(s->pg, TXN_SETTINGS, NULL, 0);
    cofre_pg_add(s->pg, "SELECT pg_advisory_xact_lock(" APPEND_LOCK_KEY ")", NULL, 0);
    cofre_pg_add(s->pg, sql_head, NULL, 0);
    cofre_pg_add(s->pg, sql_stored_ids, &ids, 1);
    return cofre_pg_exchange(s->pg, true);
}

/* Assigns seq and hash to each new record after the head; returns how many are new. */
static size_t chain_new(pg_store_t *s, cofre_audit_record_t *recs, size_t n, int64_t *head_seq,
                        uint8_t head_hash[COFRE_AUDIT_HASH_LEN])
{
    const PGresult *head = cofre_pg_result(s->pg, 3);
    const PGresult *stored = cofre_pg_result(s->pg, 4);
    *head_seq = 0;
    memset(head_hash, 0, COFRE_AUDIT_HASH_LEN);
    if (PQntuples(head) == 1) {
        *head_seq = cofre_pg_int64(head, 0, 0);
        column_hex(head, 0, 1, head_hash, COFRE_AUDIT_HASH_LEN);
    }
    size_t added = 0;
    cofre_jbuf_reset(&s->rows);
    cofre_jbuf_arr_begin(&s->rows);
    for (size_t i = 0; i < n; i++) {
        if (is_duplicate(stored, recs, i))
            continue; /* its seq stays 0 */
        recs[i].seq = *head_seq + 1;
        cofre_audit_record_hash(head_hash, &recs[i], recs[i].hash);
        *head_seq = recs[i].seq;
        memcpy(head_hash, recs[i].hash, COFRE_AUDIT_HASH_LEN);
        record_json(&s->rows, &recs[i]);
        added++;
    }
    cofre_jbuf_arr_end(&s->rows);
    return added;
}

static int pq_append(cofre_audit_store_t *base, cofre_audit_record_t *recs, size_t n,
                     int64_t *head_seq, uint8_t head_hash[COFRE_AUDIT_HASH_LEN])
{
    pg_store_t *s = (pg_store_t *)base;
    for (size_t i = 0; i < n; i++)
        recs[i].seq = 0;
    int rc = append_lock_and_read(s, recs, n);
    if (rc == 0) {
        size_t added = chain_new(s, recs, n, head_seq, head_hash);
        const cofre_pg_param_t rows = {.value = s->rows.data, .type = 114};
        if (added > 0)
            cofre_pg_add(s->pg, sql_insert, &rows, 1);
        cofre_pg_add(s->pg, "COMMIT", NULL, 0);
        rc = cofre_pg_exchange(s->pg, false);
    }
    if (rc == 0)
        return 0;
    /* Nothing is stored; a COMMIT whose answer was lost may have stored it all, which the
     * retry finds out through the dedup. */
    rollback(s);
    for (size_t i = 0; i < n; i++)
        recs[i].seq = 0;
    return rc;
}

/* ---- reads ------------------------------------------------------------------------------- */

static int pq_head(cofre_audit_store_t *base, int64_t *seq, uint8_t hash[COFRE_AUDIT_HASH_LEN])
{
    const PGresult *r;
    int rc = run_one((pg_store_t *)base, sql_head, NULL, 0, &r);
    *seq = 0;
    memset(hash, 0, COFRE_AUDIT_HASH_LEN);
    if (rc == 0 && PQntuples(r) == 1) {
        *seq = cofre_pg_int64(r, 0, 0);
        column_hex(r, 0, 1, hash, COFRE_AUDIT_HASH_LEN);
    }
    return rc;
}

static void read_records(const PGresult *r, size_t max, cofre_audit_record_t *out, size_t *n)
{
    *n = 0;
    for (int row = 0; row < PQntuples(r) && *n < max; row++)
        read_record(r, row, &out[(*n)++]);
}

static int pq_page(cofre_audit_store_t *base, const cofre_audit_query_t *q,
                   cofre_audit_record_t *out, size_t *n)
{
    char after[24], from[24], to[24], limit[24];
    snprintf(after, sizeof(after), "%lld", (long long)q->after_seq);
    snprintf(from, sizeof(from), "%lld", (long long)q->from_us);
    snprintf(to, sizeof(to), "%lld", (long long)q->to_us);
    snprintf(limit, sizeof(limit), "%zu", q->limit + 1);
    const cofre_pg_param_t p[] = {
        COFRE_PG_TEXT(after),
        COFRE_PG_TEXT(q->subject),
        COFRE_PG_TEXT(q->type),
        COFRE_PG_TEXT(q->has_from ? from : NULL),
        COFRE_PG_TEXT(q->has_to ? to : NULL),
        COFRE_PG_TEXT(limit),
    };
    const char *sql = q->subject != NULL ? sql_page_subject
                      : q->type != NULL  ? sql_page_type
                                         : sql_page_any;
    const PGresult *r;
    *n = 0;
    int rc = run_one((pg_store_t *)base, sql, p, 6, &r);
    if (rc == 0)
        read_records(r, q->limit + 1, out, n);
    return rc;
}

static int pq_scan(cofre_audit_store_t *base, int64_t after_seq, size_t max,
                   cofre_audit_record_t *out, size_t *n)
{
    char after[24], limit[24];
    snprintf(after, sizeof(after), "%lld", (long long)after_seq);
    snprintf(limit, sizeof(limit), "%zu", max);
    const cofre_pg_param_t p[] = {COFRE_PG_TEXT(after), COFRE_PG_TEXT(limit)};
    const PGresult *r;
    *n = 0;
    int rc = run_one((pg_store_t *)base, sql_scan, p, 2, &r);
    if (rc == 0)
        read_records(r, max, out, n);
    return rc;
}

static int pq_checkpoint_add(cofre_audit_store_t *base, const cofre_audit_checkpoint_t *cp)
{
    char seq[24], hash[2 * COFRE_AUDIT_HASH_LEN + 1], key[2 * COFRE_AUDIT_PUBKEY_LEN + 1];
    char sig[2 * COFRE_AUDIT_SIG_LEN + 1];
    snprintf(seq, sizeof(seq), "%lld", (long long)cp->seq);
    cofre_hex_encode(cp->hash, COFRE_AUDIT_HASH_LEN, hash);
    cofre_hex_encode(cp->public_key, COFRE_AUDIT_PUBKEY_LEN, key);
    cofre_hex_encode(cp->signature, COFRE_AUDIT_SIG_LEN, sig);
    const cofre_pg_param_t p[] = {COFRE_PG_TEXT(seq), COFRE_PG_TEXT(hash),
                                  COFRE_PG_TEXT(cp->created_at), COFRE_PG_TEXT(key),
                                  COFRE_PG_TEXT(sig)};
    const PGresult *r;
    return run_one((pg_store_t *)base, sql_cp_insert, p, 5, &r);
}

static int pq_checkpoints(cofre_audit_store_t *base, int64_t after_seq, size_t max,
                          cofre_audit_checkpoint_t *out, size_t *n)
{
    char after[24], limit[24];
    snprintf(after, sizeof(after), "%lld", (long long)after_seq);
    snprintf(limit, sizeof(limit), "%zu", max);
    const cofre_pg_param_t p[] = {COFRE_PG_TEXT(after), COFRE_PG_TEXT(limit)};
    const PGresult *r;
    *n = 0;
    int rc = run_one((pg_store_t *)base, sql_cp_list, p, 2, &r);
    for (int row = 0; rc == 0 && row < PQntuples(r) && *n < max; row++) {
        cofre_audit_checkpoint_t *cp = &out[(*n)++];
        memset(cp, 0, sizeof(*cp));
        cp->seq = cofre_pg_int64(r, row, 0);
        column_hex(r, row, 1, cp->hash, COFRE_AUDIT_HASH_LEN);
        cofre_pg_copy(r, row, 2, cp->created_at, sizeof(cp->created_at));
        column_hex(r, row, 3, cp->public_key, COFRE_AUDIT_PUBKEY_LEN);
        column_hex(r, row, 4, cp->signature, COFRE_AUDIT_SIG_LEN);
    }
    return rc;
}

static bool pq_ping(cofre_audit_store_t *base)
{
    const PGresult *r;
    return run_one((pg_store_t *)base, "SELECT 1", NULL, 0, &r) == 0;
}

static void pq_close(cofre_audit_store_t *base)
{
    pg_store_t *s = (pg_store_t *)base;
    cofre_pg_free(s->pg);
    cofre_pg_array_release(&s->ids);
    cofre_jbuf_release(&s->rows);
    free(s);
}

static const cofre_audit_store_ops_t pg_ops = {
    .close = pq_close,
    .append = pq_append,
    .head = pq_head,
    .page = pq_page,
    .scan = pq_scan,
    .checkpoint_add = pq_checkpoint_add,
    .checkpoints = pq_checkpoints,
    .ping = pq_ping,
};

int cofre_audit_store_pg_open(const char *url, bool readonly, cofre_audit_store_t **out)
{
    if (!cofre_pg_url_valid(url))
        return COFRE_EINVAL;
    pg_store_t *s = cofre_calloc(1, sizeof(*s));
    s->super.ops = &pg_ops;
    s->pg = cofre_pg_new(&(cofre_pg_config_t){
        .url = url,
        .application_name = readonly ? "cofre-audit reader" : "cofre-audit appender",
        .connect_timeout_ms = CONNECT_TIMEOUT_MS,
        .round_timeout_ms = ROUND_TIMEOUT_MS,
        .backoff_max_ms = BACKOFF_MAX_MS,
        .pipeline = true,
        .prepare = true,
    });
    cofre_pg_array_init(&s->ids, COFRE_PG_TEXT_ARRAY);
    cofre_jbuf_init(&s->rows);
    /* A database down now may be up in a second: the handle reconnects by itself. */
    cofre_pg_connect(s->pg);
    *out = &s->super;
    return 0;
}

/* ---- migrations ------------------------------------------------------------------------- */

int cofre_audit_store_pg_migrate(const char *url)
{
    if (!cofre_pg_url_valid(url))
        return COFRE_EINVAL;
    const cofre_migrations_t m = {"cofre-audit", cofre_audit_migrations_postgres,
                                  cofre_audit_migrations_postgres_count, MIGRATIONS_TABLE,
                                  MIGRATE_LOCK_KEY};
    return cofre_migrate_pg(url, &m);
}
