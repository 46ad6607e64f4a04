/*
 * adapter_store_pg.c: the delivery store on PostgreSQL (see adapter_store.h), for production:
 * several cofre-legacy replicas on one database, directly or through PgBouncer in transaction
 * pooling mode (no session state: per-transaction settings, transaction-level locks only).
 *
 * The store is shared, so each Kafka partition is leased to one replica at a time
 * (legacy_partition_leases, migrations/legacy/postgres). Every transaction that stores or
 * changes deliveries first reads the leases of their partitions FOR SHARE: a takeover, which
 * must UPDATE the lease row, waits until that transaction ends, and a replica whose lease
 * expired or moved stores and changes nothing of that partition. Lease times are the database's
 * clock (clock_timestamp()), so replicas' clocks never need to agree.
 *
 *   enqueue  one round: BEGIN, the lease check and the insert in one statement (only the rows
 *            of leased partitions; a transfer id already stored is skipped), the dead letters,
 *            COMMIT
 *   apply    two rounds: BEGIN and the lease check; then, if every partition is leased, one
 *            UPDATE ... FROM unnest(...) for all rows, the dead letters, COMMIT
 *   lease    one round: release, then take or renew (INSERT ... ON CONFLICT DO UPDATE WHERE the
 *            lease is ours or expired)
 *
 * Batches travel as binary array parameters (lib/pg.c), so a transaction is a few statements
 * whatever its size. synchronous_commit is forced on per transaction: a delivery marked "sent"
 * must be on disk before its 0200 leaves. Transient conflicts (deadlock, lock timeout, a
 * pooler that dropped named statements) are redone here a few times.
 */
#include "legacy/adapter_store.h"

#include "cofre/common.h"
#include "cofre/log.h"
#include "cofre/pg.h"
#include "cofre/migrate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Generated from the .sql files of migrations/legacy/postgres (services/legacy/CMakeLists.txt). */
extern const cofre_migration_t cofre_migrations_legacy_postgres[];
extern const size_t cofre_migrations_legacy_postgres_count;

#define CONNECT_TIMEOUT_MS 2000
#define ROUND_TIMEOUT_MS   6000
#define BACKOFF_MAX_MS     2000
#define CONFLICT_TRIES     3
#define EACH_PAGE          1000
/* pg_advisory_xact_lock key of `cofre-legacy migrate` ("cofreleg" in ASCII). */
#define MIGRATE_LOCK_KEY "7165058173683656039"

#define TXN_SETTINGS                                                                               \
    "SELECT set_config('lock_timeout', '2s', true), "                                              \
    "set_config('statement_timeout', '5s', true), "                                                \
    "set_config('idle_in_transaction_session_timeout', '10s', true), "                             \
    "set_config('synchronous_commit', 'on', true)"

#define DELIVERY_COLUMNS                                                                           \
    "seq, transfer_id, event_id, rrn, debit_account_id, credit_account_id, amount, currency, "     \
    "posted_at_us, traceparent, kafka_partition, kafka_offset, state, attempts, reversals, "       \
    "stan, sent_at_us, response_code, auth_id"
#define FINAL_STATES "('applied', 'declined', 'failed')"
#define HELD(parts, owner)                                                                         \
    "SELECT partition FROM legacy_partition_leases WHERE partition = ANY(" parts "::int4[]) "      \
    "AND owner = " owner " AND lease_until > clock_timestamp() ORDER BY partition FOR SHARE"

static const char sql_enqueue[] = "WITH held AS (" HELD(
    "$12",
    "$13") "), ins AS (INSERT INTO legacy_deliveries (transfer_id, "
           "event_id, rrn, debit_account_id, credit_account_id, amount, currency, posted_at_us, "
           "traceparent, kafka_partition, kafka_offset, state, created_at_us, updated_at_us) "
           "SELECT t, e, r, d, c, a, cur, pa, tp, p, o, 'pending', $14::int8, $14::int8 "
           "FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int8[], "
           "$7::text[], $8::int8[], $9::text[], $10::int4[], $11::int8[]) WITH ORDINALITY "
           "AS u(t, e, r, d, c, a, cur, pa, tp, p, o, ord) WHERE p IN (SELECT partition FROM held) "
           "ORDER BY ord ON CONFLICT (transfer_id) DO NOTHING RETURNING 1) "
           "SELECT partition, (SELECT count(*) FROM ins) FROM held";
static const char sql_dead_insert[] =
    "INSERT INTO legacy_dead_letters (source_key, message_key, reason, payload, created_at_us) "
    "SELECT s, m, r, p, $5::int8 FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) "
    "WITH ORDINALITY AS u(s, m, r, p, ord) ORDER BY ord ON CONFLICT (source_key) DO NOTHING";
static const char sql_held[] = HELD("$1", "$2");
static const char sql_update[] =
    "UPDATE legacy_deliveries d SET state = u.st, attempts = u.at, reversals = u.rv, stan = u.sn, "
    "sent_at_us = u.su, response_code = u.rc, auth_id = u.ai, reason = u.re, "
    "updated_at_us = $10::int8 FROM unnest($1::int8[], $2::text[], $3::int4[], $4::int4[], "
    "$5::int4[], $6::int8[], $7::text[], $8::text[], $9::text[]) "
    "AS u(seq, st, at, rv, sn, su, rc, ai, re) WHERE d.seq = u.seq";
static const char sql_load_open[] = "SELECT " DELIVERY_COLUMNS " FROM legacy_deliveries "
                                    "WHERE seq > $1::int8 AND state IN ('pending', 'sent') "
                                    "ORDER BY seq LIMIT $2::int8";
static const char sql_load_owned[] =
    "SELECT d.* FROM unnest($1::int4[], $2::int8[]) AS c(p, after) CROSS JOIN LATERAL "
    "(SELECT " DELIVERY_COLUMNS " FROM legacy_deliveries WHERE kafka_partition = c.p "
    "AND seq > c.after AND state IN ('pending', 'sent') ORDER BY seq LIMIT $3::int8) d "
    "ORDER BY d.seq LIMIT $3::int8";
static const char sql_release[] =
    "UPDATE legacy_partition_leases SET lease_until = '-infinity', renewed_at = clock_timestamp() "
    "WHERE partition = ANY($1::int4[]) AND owner = $2";
/* Partitions visibly leased to another owner are left alone (not even locked). */
static const char sql_claim[] =
    "WITH before AS (SELECT partition, owner, lease_until > clock_timestamp() AS live "
    "FROM legacy_partition_leases WHERE partition = ANY($1::int4[])), "
    "up AS (INSERT INTO legacy_partition_leases AS l (partition, owner, lease_until, "
    "acquired_at, renewed_at) SELECT p, $2, clock_timestamp() + $3::int8 * interval '1 ms', "
    "clock_timestamp(), clock_timestamp() FROM unnest($1::int4[]) AS p WHERE NOT EXISTS "
    "(SELECT 1 FROM before b WHERE b.partition = p AND b.owner <> $2 AND b.live) "
    "ON CONFLICT (partition) DO UPDATE SET owner = EXCLUDED.owner, "
    "lease_until = EXCLUDED.lease_until, renewed_at = EXCLUDED.renewed_at, "
    "acquired_at = CASE WHEN l.owner = EXCLUDED.owner AND l.lease_until > EXCLUDED.renewed_at "
    "THEN l.acquired_at ELSE EXCLUDED.acquired_at END, "
    "handovers = l.handovers + CASE WHEN l.owner = EXCLUDED.owner THEN 0 ELSE 1 END "
    "WHERE l.owner = EXCLUDED.owner OR l.lease_until < clock_timestamp() RETURNING partition) "
    "SELECT c.p, up.partition IS NOT NULL, COALESCE(b.owner, ''), "
    "COALESCE(b.owner = $2 AND b.live, false) FROM unnest($1::int4[]) AS c(p) "
    "LEFT JOIN up ON up.partition = c.p LEFT JOIN before b ON b.partition = c.p ORDER BY c.p";
static const char sql_dlq_fetch[] =
    "WITH c AS (UPDATE legacy_dead_letters SET claimed_by = $2, claimed_until = "
    "clock_timestamp() + interval '60 s' WHERE seq IN (SELECT seq FROM legacy_dead_letters "
    "WHERE published_at_us IS NULL AND (claimed_until IS NULL OR claimed_until < "
    "clock_timestamp() OR claimed_by = $2) ORDER BY seq LIMIT $1::int8 FOR UPDATE SKIP LOCKED) "
    "RETURNING seq, message_key, payload) SELECT * FROM c ORDER BY seq";
static const char sql_dlq_mark[] = "UPDATE legacy_dead_letters SET published_at_us = $2::int8 "
                                   "WHERE seq = ANY($1::int8[]) AND published_at_us IS NULL";
static const char sql_stats[] =
    "SELECT (SELECT count(*) FROM legacy_deliveries WHERE state = 'pending'), "
    "(SELECT count(*) FROM legacy_deliveries WHERE state = 'sent'), "
    "(SELECT count(*) FROM legacy_dead_letters WHERE published_at_us IS NULL)";
static const char sql_each[] = "SELECT " DELIVERY_COLUMNS " FROM legacy_deliveries "
                               "WHERE seq > $1::int8 ORDER BY seq LIMIT $2::int8";
/* Looks at up to $2 rows after $1, stopping at the first stored at or after $3; deletes the
 * final ones among them. Returns the last seq looked at and how many were deleted. */
static const char sql_prune[] =
    "WITH scan AS (SELECT seq, state, created_at_us FROM legacy_deliveries WHERE seq > $1::int8 "
    "ORDER BY seq LIMIT $2::int8), stop AS (SELECT min(seq) AS seq FROM scan "
    "WHERE created_at_us >= $3::int8), looked AS (SELECT * FROM scan WHERE seq < "
    "COALESCE((SELECT seq FROM stop), 9223372036854775807)), del AS (DELETE FROM "
    "legacy_deliveries d USING looked l WHERE d.seq = l.seq AND l.state IN " FINAL_STATES
    " RETURNING 1) SELECT (SELECT max(seq) FROM looked), (SELECT count(*) FROM del)";
static const char sql_prune_dlq[] =
    "DELETE FROM legacy_dead_letters WHERE seq IN (SELECT seq FROM legacy_dead_letters "
    "WHERE published_at_us < $1::int8 ORDER BY seq LIMIT $2::int8)";

/* The binary array parameters, kept between calls. */
enum {
    A_T_ID,
    A_T_EVENT,
    A_T_RRN,
    A_T_DEBIT,
    A_T_CREDIT,
    A_T_AMOUNT,
    A_T_CURRENCY,
    A_T_POSTED,
    A_T_TRACEPARENT,
    A_T_PARTITION,
    A_T_OFFSET,
    A_T_PARTS,
    A_D_SOURCE,
    A_D_MESSAGE,
    A_D_REASON,
    A_D_PAYLOAD,
    A_U_SEQ,
    A_U_STATE,
    A_U_ATTEMPTS,
    A_U_REVERSALS,
    A_U_STAN,
    A_U_SENT_AT,
    A_U_CODE,
    A_U_AUTH,
    A_U_REASON,
    A_U_PARTS,
    A_L_CLAIM,
    A_L_RELEASE,
    A_L_AFTER,
    A_SEQS,
    A_COUNT_
};

static const uint32_t array_types[A_COUNT_] = {
    [A_T_ID] = COFRE_PG_TEXT_ARRAY,          [A_T_EVENT] = COFRE_PG_TEXT_ARRAY,
    [A_T_RRN] = COFRE_PG_TEXT_ARRAY,         [A_T_DEBIT] = COFRE_PG_TEXT_ARRAY,
    [A_T_CREDIT] = COFRE_PG_TEXT_ARRAY,      [A_T_AMOUNT] = COFRE_PG_INT8_ARRAY,
    [A_T_CURRENCY] = COFRE_PG_TEXT_ARRAY,    [A_T_POSTED] = COFRE_PG_INT8_ARRAY,
    [A_T_TRACEPARENT] = COFRE_PG_TEXT_ARRAY, [A_T_PARTITION] = COFRE_PG_INT4_ARRAY,
    [A_T_OFFSET] = COFRE_PG_INT8_ARRAY,      [A_T_PARTS] = COFRE_PG_INT4_ARRAY,
    [A_D_SOURCE] = COFRE_PG_TEXT_ARRAY,      [A_D_MESSAGE] = COFRE_PG_TEXT_ARRAY,
    [A_D_REASON] = COFRE_PG_TEXT_ARRAY,      [A_D_PAYLOAD] = COFRE_PG_TEXT_ARRAY,
    [A_U_SEQ] = COFRE_PG_INT8_ARRAY,         [A_U_STATE] = COFRE_PG_TEXT_ARRAY,
    [A_U_ATTEMPTS] = COFRE_PG_INT4_ARRAY,    [A_U_REVERSALS] = COFRE_PG_INT4_ARRAY,
    [A_U_STAN] = COFRE_PG_INT4_ARRAY,        [A_U_SENT_AT] = COFRE_PG_INT8_ARRAY,
    [A_U_CODE] = COFRE_PG_TEXT_ARRAY,        [A_U_AUTH] = COFRE_PG_TEXT_ARRAY,
    [A_U_REASON] = COFRE_PG_TEXT_ARRAY,      [A_U_PARTS] = COFRE_PG_INT4_ARRAY,
    [A_L_CLAIM] = COFRE_PG_INT4_ARRAY,       [A_L_RELEASE] = COFRE_PG_INT4_ARRAY,
    [A_L_AFTER] = COFRE_PG_INT8_ARRAY,       [A_SEQS] = COFRE_PG_INT8_ARRAY,
};

typedef struct pg_store {
    cofre_adapter_store_t base;
    cofre_pg_t *pg;
    cofre_pg_array_t arrays[A_COUNT_];
    cofre_pg_param_t params[A_COUNT_];
    char num[4][24]; /* text parameters */
    /* partitions of the current batch (a set) */
    bool in_batch[COFRE_ADAPTER_PARTITIONS_MAX];
    int32_t batch_parts[COFRE_ADAPTER_PARTITIONS_MAX];
    size_t nbatch_parts;
} pg_store_t;

static pg_store_t *self(cofre_adapter_store_t *s)
{
    return (pg_store_t *)s;
}

static cofre_pg_array_t *arr(pg_store_t *s, int i)
{
    return &s->arrays[i];
}

/* Finishes arrays [first, first + n) as consecutive parameters. */
static cofre_pg_param_t *params_of(pg_store_t *s, int first, int n)
{
    for (int i = first; i < first + n; i++)
        s->params[i] = cofre_pg_array_param(&s->arrays[i]);
    return &s->params[first];
}

static void reset_arrays(pg_store_t *s, int first, int last)
{
    for (int i = first; i <= last; i++)
        cofre_pg_array_reset(&s->arrays[i]);
}

static void text_or_null(cofre_pg_array_t *a, const char *v)
{
    if (v == NULL || v[0] == '\0')
        cofre_pg_array_null(a);
    else
        cofre_pg_array_text(a, v, strlen(v));
}

static const char *num(pg_store_t *s, int slot, int64_t v)
{
    snprintf(s->num[slot], sizeof(s->num[slot]), "%lld", (long long)v);
    return s->num[slot];
}

/* Ends a transaction that failed part-way: ROLLBACK, or drop the connection. */
static void abandon(pg_store_t *s)
{
    cofre_pg_discard(s->pg);
    if (!cofre_pg_in_transaction(s->pg))
        return;
    cofre_pg_add(s->pg, "ROLLBACK", NULL, 0);
    if (cofre_pg_exchange(s->pg, false) != 0)
        cofre_pg_disconnect(s->pg);
}

static void begin(pg_store_t *s)
{
    cofre_pg_discard(s->pg);
    cofre_pg_add(s->pg, "BEGIN", NULL, 0);
    cofre_pg_add(s->pg, TXN_SETTINGS, NULL, 0);
}

static bool in_set(const int32_t *set, size_t n, int32_t v)
{
    for (size_t i = 0; i < n; i++)
        if (set[i] == v)
            return true;
    return false;
}

/* ---- enqueue ----------------------------------------------------------------------------- */

/* Remembers p among the batch's partitions (partitions outside the table are never leased). */
static void note_partition(pg_store_t *s, int32_t p)
{
    if (p < 0 || p >= COFRE_ADAPTER_PARTITIONS_MAX || s->in_batch[p])
        return;
    s->in_batch[p] = true;
    s->batch_parts[s->nbatch_parts++] = p;
}

static void clear_partitions(pg_store_t *s)
{
    for (size_t i = 0; i < s->nbatch_parts; i++)
        s->in_batch[s->batch_parts[i]] = false;
    s->nbatch_parts = 0;
}

static void add_transfers(pg_store_t *s, const cofre_adapter_transfer_t *ts, size_t n)
{
    reset_arrays(s, A_T_ID, A_T_PARTS);
    for (size_t i = 0; i < n; i++) {
        const cofre_adapter_transfer_t *t = &ts[i];
        text_or_null(arr(s, A_T_ID), t->transfer_id);
        text_or_null(arr(s, A_T_EVENT), t->event_id);
        text_or_null(arr(s, A_T_RRN), t->rrn);
        text_or_null(arr(s, A_T_DEBIT), t->debit_account_id);
        text_or_null(arr(s, A_T_CREDIT), t->credit_account_id);
        cofre_pg_array_int8(arr(s, A_T_AMOUNT), t->amount_minor);
        text_or_null(arr(s, A_T_CURRENCY), t->currency);
        cofre_pg_array_int8(arr(s, A_T_POSTED), (int64_t)t->posted_at_us);
        text_or_null(arr(s, A_T_TRACEPARENT), t->traceparent);
        cofre_pg_array_int4(arr(s, A_T_PARTITION), t->partition);
        cofre_pg_array_int8(arr(s, A_T_OFFSET), t->offset);
        note_partition(s, t->partition);
    }
    for (size_t i = 0; i < s->nbatch_parts; i++)
        cofre_pg_array_int4(arr(s, A_T_PARTS), s->batch_parts[i]);
    cofre_pg_param_t *p = params_of(s, A_T_ID, 12);
    cofre_pg_param_t all[14];
    memcpy(all, p, 12 * sizeof(*p));
    all[12] = COFRE_PG_TEXT(s->base.owner);
    all[13] = COFRE_PG_TEXT(s->num[0]);
    cofre_pg_add(s->pg, sql_enqueue, all, 14);
}

static void add_dead(pg_store_t *s, const cofre_adapter_dead_t *dead, size_t ndead)
{
    reset_arrays(s, A_D_SOURCE, A_D_PAYLOAD);
    for (size_t i = 0; i < ndead; i++) {
        text_or_null(arr(s, A_D_SOURCE), dead[i].source_key);
        text_or_null(arr(s, A_D_MESSAGE), dead[i].message_key);
        text_or_null(arr(s, A_D_REASON), dead[i].reason);
        cofre_pg_array_text(arr(s, A_D_PAYLOAD), dead[i].payload, dead[i].payload_len);
    }
    cofre_pg_param_t p[5];
    memcpy(p, params_of(s, A_D_SOURCE, 4), 4 * sizeof(p[0]));
    p[4] = COFRE_PG_TEXT(s->num[0]);
    cofre_pg_add(s->pg, sql_dead_insert, p, 5);
}

/* Reads the held partitions and the insert count; lists the batch's other partitions. */
static void read_enqueued(const PGresult *r, const cofre_adapter_transfer_t *ts, size_t n,
                          size_t *inserted, int32_t *refused, size_t *nrefused)
{
    int32_t held[COFRE_ADAPTER_PARTITIONS_MAX];
    size_t nheld = 0;
    for (int row = 0; r != NULL && row < PQntuples(r) && nheld < COFRE_ARRAY_SIZE(held); row++) {
        held[nheld++] = (int32_t)cofre_pg_int64(r, row, 0);
        *inserted = (size_t)cofre_pg_int64(r, row, 1);
    }
    for (size_t i = 0; i < n; i++) {
        int32_t p = ts[i].partition;
        if (!in_set(held, nheld, p) && !in_set(refused, *nrefused, p))
            refused[(*nrefused)++] = p;
    }
}

static int enqueue_once(pg_store_t *s, const cofre_adapter_transfer_t *ts, size_t n,
                        const cofre_adapter_dead_t *dead, size_t ndead, size_t *inserted,
                        int32_t *refused, size_t *nrefused)
{
    num(s, 0, (int64_t)cofre_now_wall_us());
    begin(s);
    int q_transfers = n > 0 ? cofre_pg_queued(s->pg) : -1;
    if (n > 0)
        add_transfers(s, ts, n);
    clear_partitions(s);
    if (ndead > 0)
        add_dead(s, dead, ndead);
    cofre_pg_add(s->pg, "COMMIT", NULL, 0);
    int rc = cofre_pg_exchange(s->pg, false);
    if (rc != 0) {
        abandon(s);
        return rc;
    }
    *inserted = 0;
    *nrefused = 0;
    if (q_transfers >= 0)
        read_enqueued(cofre_pg_result(s->pg, q_transfers), ts, n, inserted, refused, nrefused);
    return 0;
}

static int pq_enqueue(cofre_adapter_store_t *base, const cofre_adapter_transfer_t *ts, size_t n,
                      const cofre_adapter_dead_t *dead, size_t ndead, size_t *inserted,
                      int32_t *refused, size_t *nrefused)
{
    COFRE_ASSERT(refused != NULL);
    pg_store_t *s = self(base);
    int rc = COFRE_ECONFLICT;
    for (int i = 0; rc == COFRE_ECONFLICT && i < CONFLICT_TRIES; i++)
        rc = enqueue_once(s, ts, n, dead, ndead, inserted, refused, nrefused);
    return rc;
}

/* ---- loading ----------------------------------------------------------------------------- */

static cofre_delivery_state_t state_from(const char *name)
{
    for (int i = 0; i < COFRE_DELIVERY_STATES; i++)
        if (strcmp(name, cofre_delivery_state_name((cofre_delivery_state_t)i)) == 0)
            return (cofre_delivery_state_t)i;
    return COFRE_DELIVERY_PENDING; /* the CHECK constraint allows no other name */
}

static void read_delivery(const PGresult *r, int row, cofre_adapter_delivery_t *d)
{
    memset(d, 0, sizeof(*d));
    cofre_adapter_transfer_t *t = &d->t;
    d->seq = cofre_pg_int64(r, row, 0);
    cofre_pg_copy(r, row, 1, t->transfer_id, sizeof(t->transfer_id));
    cofre_pg_copy(r, row, 2, t->event_id, sizeof(t->event_id));
    cofre_pg_copy(r, row, 3, t->rrn, sizeof(t->rrn));
    cofre_pg_copy(r, row, 4, t->debit_account_id, sizeof(t->debit_account_id));
    cofre_pg_copy(r, row, 5, t->credit_account_id, sizeof(t->credit_account_id));
    t->amount_minor = cofre_pg_int64(r, row, 6);
    cofre_pg_copy(r, row, 7, t->currency, sizeof(t->currency));
    t->posted_at_us = (uint64_t)cofre_pg_int64(r, row, 8);
    cofre_pg_copy(r, row, 9, t->traceparent, sizeof(t->traceparent));
    t->partition = (int32_t)cofre_pg_int64(r, row, 10);
    t->offset = cofre_pg_int64(r, row, 11);
    char state[16];
    cofre_pg_copy(r, row, 12, state, sizeof(state));
    d->state = state_from(state);
    d->attempts = (uint32_t)cofre_pg_int64(r, row, 13);
    d->reversals = (uint32_t)cofre_pg_int64(r, row, 14);
    d->stan = (uint32_t)cofre_pg_int64(r, row, 15);
    d->sent_at_us = (uint64_t)cofre_pg_int64(r, row, 16);
    cofre_pg_copy(r, row, 17, d->response_code, sizeof(d->response_code));
    cofre_pg_copy(r, row, 18, d->auth_id, sizeof(d->auth_id));
}

/* Runs one read statement; *r is its result on success. */
static int read_one(pg_store_t *s, const char *sql, const cofre_pg_param_t *p, int n,
                    const PGresult **r)
{
    cofre_pg_discard(s->pg);
    cofre_pg_add(s->pg, sql, p, n);
    int rc = cofre_pg_exchange(s->pg, true);
    *r = rc == 0 ? cofre_pg_result(s->pg, 0) : NULL;
    return rc;
}

static void read_deliveries(const PGresult *r, size_t max, cofre_adapter_delivery_t *out, size_t *n)
{
    for (int row = 0; row < PQntuples(r) && *n < max; row++)
        read_delivery(r, row, &out[(*n)++]);
}

static int pq_load_open(cofre_adapter_store_t *base, int64_t after_seq, size_t max,
                        cofre_adapter_delivery_t *out, size_t *n)
{
    pg_store_t *s = self(base);
    const cofre_pg_param_t p[] = {COFRE_PG_TEXT(num(s, 0, after_seq)),
                                  COFRE_PG_TEXT(num(s, 1, (int64_t)max))};
    const PGresult *r;
    int rc = read_one(s, sql_load_open, p, 2, &r);
    if (rc == 0)
        read_deliveries(r, max, out, n);
    return rc;
}

static int pq_load_owned(cofre_adapter_store_t *base, const int32_t *parts, const int64_t *after,
                         size_t nparts, size_t max, cofre_adapter_delivery_t *out, size_t *n)
{
    pg_store_t *s = self(base);
    reset_arrays(s, A_L_CLAIM, A_L_AFTER);
    for (size_t i = 0; i < nparts; i++) {
        cofre_pg_array_int4(arr(s, A_L_CLAIM), parts[i]);
        cofre_pg_array_int8(arr(s, A_L_AFTER), after[i]);
    }
    cofre_pg_param_t p[3];
    p[0] = cofre_pg_array_param(arr(s, A_L_CLAIM));
    p[1] = cofre_pg_array_param(arr(s, A_L_AFTER));
    p[2] = COFRE_PG_TEXT(num(s, 0, (int64_t)max));
    const PGresult *r;
    int rc = read_one(s, sql_load_owned, p, 3, &r);
    if (rc == 0)
        read_deliveries(r, max, out, n);
    return rc;
}

/* ---- apply ------------------------------------------------------------------------------- */

static void add_updates(pg_store_t *s, const cofre_adapter_update_t *u, size_t n)
{
    reset_arrays(s, A_U_SEQ, A_U_REASON);
    for (size_t i = 0; i < n; i++) {
        bool sent = u[i].state == COFRE_DELIVERY_SENT;
        cofre_pg_array_int8(arr(s, A_U_SEQ), u[i].seq);
        text_or_null(arr(s, A_U_STATE), cofre_delivery_state_name(u[i].state));
        cofre_pg_array_int4(arr(s, A_U_ATTEMPTS), (int32_t)u[i].attempts);
        cofre_pg_array_int4(arr(s, A_U_REVERSALS), (int32_t)u[i].reversals);
        if (sent) {
            cofre_pg_array_int4(arr(s, A_U_STAN), (int32_t)u[i].stan);
            cofre_pg_array_int8(arr(s, A_U_SENT_AT), (int64_t)u[i].sent_at_us);
        } else {
            cofre_pg_array_null(arr(s, A_U_STAN));
            cofre_pg_array_null(arr(s, A_U_SENT_AT));
        }
        text_or_null(arr(s, A_U_CODE), u[i].response_code);
        text_or_null(arr(s, A_U_AUTH), u[i].auth_id);
        text_or_null(arr(s, A_U_REASON), u[i].reason);
    }
    cofre_pg_param_t p[10];
    memcpy(p, params_of(s, A_U_SEQ, 9), 9 * sizeof(p[0]));
    p[9] = COFRE_PG_TEXT(s->num[0]);
    cofre_pg_add(s->pg, sql_update, p, 10);
}

/* The dead letters of the updates, as one insert. */
static void add_update_dead(pg_store_t *s, const cofre_adapter_update_t *u, size_t n)
{
    reset_arrays(s, A_D_SOURCE, A_D_PAYLOAD);
    size_t ndead = 0;
    for (size_t i = 0; i < n; i++) {
        const cofre_adapter_dead_t *d = u[i].dead;
        if (d == NULL)
            continue;
        text_or_null(arr(s, A_D_SOURCE), d->source_key);
        text_or_null(arr(s, A_D_MESSAGE), d->message_key);
        text_or_null(arr(s, A_D_REASON), d->reason);
        cofre_pg_array_text(arr(s, A_D_PAYLOAD), d->payload, d->payload_len);
        ndead++;
    }
    if (ndead == 0)
        return;
    cofre_pg_param_t p[5];
    memcpy(p, params_of(s, A_D_SOURCE, 4), 4 * sizeof(p[0]));
    p[4] = COFRE_PG_TEXT(s->num[0]);
    cofre_pg_add(s->pg, sql_dead_insert, p, 5);
}

/* Round 1: BEGIN and the lease check; lists the partitions of u not leased in lost. */
static int check_leases(pg_store_t *s, const cofre_adapter_update_t *u, size_t n, int32_t *lost,
                        size_t *nlost)
{
    reset_arrays(s, A_U_PARTS, A_U_PARTS);
    for (size_t i = 0; i < n; i++)
        note_partition(s, u[i].partition);
    for (size_t i = 0; i < s->nbatch_parts; i++)
        cofre_pg_array_int4(arr(s, A_U_PARTS), s->batch_parts[i]);
    clear_partitions(s);
    begin(s);
    const cofre_pg_param_t p[] = {cofre_pg_array_param(arr(s, A_U_PARTS)),
                                  COFRE_PG_TEXT(s->base.owner)};
    cofre_pg_add(s->pg, sql_held, p, 2);
    int rc = cofre_pg_exchange(s->pg, true);
    if (rc != 0)
        return rc;
    const PGresult *r = cofre_pg_result(s->pg, 2);
    int32_t held[COFRE_ADAPTER_PARTITIONS_MAX];
    size_t nheld = 0;
    for (int row = 0; row < PQntuples(r) && nheld < COFRE_ARRAY_SIZE(held); row++)
        held[nheld++] = (int32_t)cofre_pg_int64(r, row, 0);
    for (size_t i = 0; i < n; i++)
        if (!in_set(held, nheld, u[i].partition) && !in_set(lost, *nlost, u[i].partition))
            lost[(*nlost)++] = u[i].partition;
    return *nlost > 0 ? COFRE_ECONFLICT : 0;
}

static int apply_once(pg_store_t *s, const cofre_adapter_update_t *u, size_t n, int32_t *lost,
                      size_t *nlost)
{
    num(s, 0, (int64_t)cofre_now_wall_us());
    int rc = check_leases(s, u, n, lost, nlost);
    if (rc == 0) {
        cofre_pg_discard(s->pg);
        add_updates(s, u, n);
        add_update_dead(s, u, n);
        cofre_pg_add(s->pg, "COMMIT", NULL, 0);
        rc = cofre_pg_exchange(s->pg, false);
    }
    if (rc != 0)
        abandon(s);
    return rc;
}

static int pq_apply(cofre_adapter_store_t *base, const cofre_adapter_update_t *u, size_t n,
                    int32_t *lost, size_t *nlost)
{
    COFRE_ASSERT(lost != NULL);
    pg_store_t *s = self(base);
    int rc = COFRE_ECONFLICT;
    for (int i = 0; rc == COFRE_ECONFLICT && *nlost == 0 && i < CONFLICT_TRIES; i++)
        rc = apply_once(s, u, n, lost, nlost);
    if (rc == COFRE_ECONFLICT && *nlost == 0)
        rc = COFRE_EIO; /* conflicts that would not end: not a lost lease */
    return rc;
}

/* ---- leases ------------------------------------------------------------------------------ */

static void read_leases(const PGresult *r, size_t nclaim, cofre_adapter_lease_result_t *out)
{
    for (int row = 0; row < PQntuples(r) && (size_t)row < nclaim; row++) {
        cofre_adapter_lease_result_t *o = &out[row];
        o->partition = (int32_t)cofre_pg_int64(r, row, 0);
        o->held = PQgetvalue(r, row, 1)[0] == 't';
        cofre_pg_copy(r, row, 2, o->owner, sizeof(o->owner));
        o->taken = o->held && PQgetvalue(r, row, 3)[0] != 't';
    }
}

static int lease_once(pg_store_t *s, const int32_t *claim, size_t nclaim, const int32_t *release,
                      size_t nrelease, uint64_t lease_ms, cofre_adapter_lease_result_t *out)
{
    reset_arrays(s, A_L_CLAIM, A_L_RELEASE);
    for (size_t i = 0; i < nclaim; i++)
        cofre_pg_array_int4(arr(s, A_L_CLAIM), claim[i]);
    for (size_t i = 0; i < nrelease; i++)
        cofre_pg_array_int4(arr(s, A_L_RELEASE), release[i]);
    begin(s);
    int q_claim = -1;
    if (nrelease > 0) {
        const cofre_pg_param_t p[] = {cofre_pg_array_param(arr(s, A_L_RELEASE)),
                                      COFRE_PG_TEXT(s->base.owner)};
        cofre_pg_add(s->pg, sql_release, p, 2);
    }
    if (nclaim > 0) {
        const cofre_pg_param_t p[] = {cofre_pg_array_param(arr(s, A_L_CLAIM)),
                                      COFRE_PG_TEXT(s->base.owner),
                                      COFRE_PG_TEXT(num(s, 0, (int64_t)lease_ms))};
        q_claim = cofre_pg_queued(s->pg);
        cofre_pg_add(s->pg, sql_claim, p, 3);
    }
    cofre_pg_add(s->pg, "COMMIT", NULL, 0);
    int rc = cofre_pg_exchange(s->pg, false);
    if (rc != 0) {
        abandon(s);
        return rc;
    }
    if (q_claim >= 0)
        read_leases(cofre_pg_result(s->pg, q_claim), nclaim, out);
    return 0;
}

static int pq_lease(cofre_adapter_store_t *base, const int32_t *claim, size_t nclaim,
                    const int32_t *release, size_t nrelease, uint64_t lease_ms,
                    cofre_adapter_lease_result_t *out)
{
    pg_store_t *s = self(base);
    for (size_t i = 0; i < nclaim; i++)
        out[i] = (cofre_adapter_lease_result_t){.partition = claim[i]};
    return lease_once(s, claim, nclaim, release, nrelease, lease_ms, out);
}

/* ---- dead letters, stats, reading all, retention ----------------------------------------- */

static int pq_dlq_fetch(cofre_adapter_store_t *base, size_t max, cofre_adapter_dlq_row_t *out,
                        size_t *n)
{
    pg_store_t *s = self(base);
    const cofre_pg_param_t p[] = {COFRE_PG_TEXT(num(s, 0, (int64_t)max)),
                                  COFRE_PG_TEXT(s->base.owner[0] != '\0' ? s->base.owner : "-")};
    const PGresult *r;
    int rc = read_one(s, sql_dlq_fetch, p, 2, &r);
    for (int row = 0; rc == 0 && row < PQntuples(r) && *n < max; row++) {
        cofre_adapter_dlq_row_t *o = &out[(*n)++];
        o->seq = cofre_pg_int64(r, row, 0);
        o->message_key = cofre_strndup(PQgetvalue(r, row, 1), (size_t)PQgetlength(r, row, 1));
        o->payload_len = (size_t)PQgetlength(r, row, 2);
        o->payload = cofre_strndup(PQgetvalue(r, row, 2), o->payload_len);
    }
    return rc;
}

static int pq_dlq_mark(cofre_adapter_store_t *base, const int64_t *seqs, size_t n, uint64_t now_us)
{
    pg_store_t *s = self(base);
    reset_arrays(s, A_SEQS, A_SEQS);
    for (size_t i = 0; i < n; i++)
        cofre_pg_array_int8(arr(s, A_SEQS), seqs[i]);
    const cofre_pg_param_t p[] = {cofre_pg_array_param(arr(s, A_SEQS)),
                                  COFRE_PG_TEXT(num(s, 0, (int64_t)now_us))};
    const PGresult *r;
    return read_one(s, sql_dlq_mark, p, 2, &r); /* one statement: its own transaction */
}

static int pq_stats(cofre_adapter_store_t *base, cofre_adapter_store_stats_t *out)
{
    const PGresult *r;
    int rc = read_one(self(base), sql_stats, NULL, 0, &r);
    if (rc != 0)
        return rc;
    out->pending = cofre_pg_int64(r, 0, 0);
    out->sent = cofre_pg_int64(r, 0, 1);
    out->dlq_pending = cofre_pg_int64(r, 0, 2);
    return 0;
}

/* Pages through every delivery by seq, so a big store is never read into memory at once. */
static int pq_each(cofre_adapter_store_t *base,
                   int (*fn)(const cofre_adapter_delivery_t *d, void *data), void *data)
{
    pg_store_t *s = self(base);
    int64_t after = 0;
    cofre_adapter_delivery_t d;
    for (;;) {
        const cofre_pg_param_t p[] = {COFRE_PG_TEXT(num(s, 0, after)),
                                      COFRE_PG_TEXT(num(s, 1, EACH_PAGE))};
        const PGresult *r;
        int rc = read_one(s, sql_each, p, 2, &r);
        if (rc != 0)
            return rc;
        int rows = PQntuples(r);
        for (int row = 0; row < rows; row++) {
            read_delivery(r, row, &d);
            after = d.seq;
            int out = fn(&d, data);
            if (out != 0)
                return out;
        }
        if (rows < EACH_PAGE)
            return 0;
    }
}

static int pq_prune(cofre_adapter_store_t *base, int64_t after_seq, uint64_t before_us, size_t max,
                    int64_t *next_seq, size_t *deleted)
{
    pg_store_t *s = self(base);
    begin(s);
    const cofre_pg_param_t p[] = {COFRE_PG_TEXT(num(s, 0, after_seq)),
                                  COFRE_PG_TEXT(num(s, 1, (int64_t)max)),
                                  COFRE_PG_TEXT(num(s, 2, (int64_t)before_us))};
    cofre_pg_add(s->pg, sql_prune, p, 3);
    const cofre_pg_param_t q[] = {p[2], p[1]};
    cofre_pg_add(s->pg, sql_prune_dlq, q, 2);
    cofre_pg_add(s->pg, "COMMIT", NULL, 0);
    int rc = cofre_pg_exchange(s->pg, false);
    if (rc != 0) {
        abandon(s);
        return rc;
    }
    const PGresult *r = cofre_pg_result(s->pg, 2);
    if (!PQgetisnull(r, 0, 0))
        *next_seq = cofre_pg_int64(r, 0, 0);
    *deleted = (size_t)cofre_pg_int64(r, 0, 1);
    return 0;
}

static void pq_close(cofre_adapter_store_t *base)
{
    pg_store_t *s = self(base);
    for (int i = 0; i < A_COUNT_; i++)
        cofre_pg_array_release(&s->arrays[i]);
    cofre_pg_free(s->pg);
    free(s);
}

static const cofre_adapter_store_ops_t pg_ops = {
    .enqueue = pq_enqueue,
    .load_open = pq_load_open,
    .apply = pq_apply,
    .dlq_fetch = pq_dlq_fetch,
    .dlq_mark = pq_dlq_mark,
    .stats = pq_stats,
    .each = pq_each,
    .prune = pq_prune,
    .close = pq_close,
    .load_owned = pq_load_owned,
    .lease = pq_lease,
};

int cofre_adapter_store_pg_open(const char *url, bool readonly, cofre_adapter_store_t **out)
{
    if (!cofre_pg_url_valid(url))
        return COFRE_EINVAL;
    pg_store_t *s = cofre_calloc(1, sizeof(*s));
    s->base.ops = &pg_ops;
    s->base.shared = true;
    s->pg = cofre_pg_new(&(cofre_pg_config_t){
        .url = url,
        .application_name = readonly ? "cofre-legacy reader" : "cofre-legacy",
        .connect_timeout_ms = CONNECT_TIMEOUT_MS,
        .round_timeout_ms = ROUND_TIMEOUT_MS,
        .backoff_max_ms = BACKOFF_MAX_MS,
        .pipeline = true,
        .prepare = true,
    });
    for (int i = 0; i < A_COUNT_; i++)
        cofre_pg_array_init(&s->arrays[i], array_types[i]);
    /* Down now, up in a second: the handle reconnects by itself. A reader (reconcile) wants
     * to know at once. */
    int rc = cofre_pg_connect(s->pg);
    if (readonly && rc != 0) {
        pq_close(&s->base);
        return rc;
    }
    *out = &s->base;
    return 0;
}

/* ---- migrations -------------------------------------------------------------------------- */

int cofre_adapter_store_pg_migrate(const char *url)
{
    if (!cofre_pg_url_valid(url))
        return COFRE_EINVAL;
    const cofre_migrations_t m = {"cofre-legacy", cofre_migrations_legacy_postgres,
                                  cofre_migrations_legacy_postgres_count,
                                  "cofre_legacy_schema_migrations", MIGRATE_LOCK_KEY};
    return cofre_migrate_pg(url, &m);
}
