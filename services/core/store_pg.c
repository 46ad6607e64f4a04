/*
 * store_pg.c: the ledger store on PostgreSQL, for production: many cofre-core replicas, each
 * with several committer connections, on one database (directly or through PgBouncer in
 * transaction pooling mode).
 *
 * A committer batch is one READ COMMITTED transaction in two round trips (lib/pg.c pipelines):
 *
 *   1. BEGIN; per-transaction timeouts; SELECT the touched accounts FOR UPDATE ordered by id
 *      (every replica locks in the same order, so batches never deadlock on accounts); then,
 *      under those locks and with a fresh snapshot, the idempotency records and transfer ids.
 *   2. INSERT/UPDATE everything the batch decided, one statement per table whatever the batch
 *      size (binary array parameters through unnest), then COMMIT.
 *
 * A race with another replica on a key the locks do not cover (an idempotency key, a
 * client-chosen transfer id, a new account id) ends in a unique violation, which the
 * committer redoes from step 1 and then sees the winner's row. Statements are unnamed and no
 * session state survives a transaction, which is what PgBouncer's transaction mode needs.
 *
 * Reads are single statements on the reader's own connection. The connection layer
 * reconnects by itself, with backoff, and bounds every wait (see cofre/pg.h).
 */
#include "core/store.h"

#include "cofre/common.h"
#include "cofre/log.h"
#include "cofre/pg.h"
#include "core/chains.h"
#include "core/migrations.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * Settings of one committer transaction. The limits are a second line behind the client's own
 * round deadline: a lock held by a stuck peer, or a runaway statement, ends in an error. Every
 * committer statement reaches its rows by primary key; the planner is told so, because a plan
 * made while a table was small (a fresh database) would otherwise scan it whole for as long as
 * the connection caches that plan, however large the table grows.
 */
#define TXN_SETTINGS                                                                               \
    "SELECT set_config('lock_timeout', '2s', true), "                                              \
    "set_config('statement_timeout', '5s', true), "                                                \
    "set_config('idle_in_transaction_session_timeout', '10s', true), "                             \
    "set_config('plan_cache_mode', 'force_generic_plan', true), "                                  \
    "set_config('enable_seqscan', 'off', true), set_config('enable_hashjoin', 'off', true), "      \
    "set_config('enable_mergejoin', 'off', true)"
#define CONNECT_TIMEOUT_MS 2000
#define ROUND_TIMEOUT_MS   6000
#define BACKOFF_MAX_MS     2000
/* pg_advisory_xact_lock key of `cofre-core migrate` ("cofrecor" in ASCII). */
#define MIGRATE_LOCK_KEY "7165064481618424690"

#define PG_TIME(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
#define ACCOUNT_COLUMNS                                                                            \
    "id, owner, currency, no_overdraft, debits_posted, credits_posted, debits_pending, "           \
    "credits_pending, metadata, " PG_TIME("created_at")
#define TRANSFER_COLUMNS                                                                           \
    "id, debit_account_id, credit_account_id, amount, currency, reference, " PG_TIME("created_at")

static const char sql_lock_accounts[] = "SELECT " ACCOUNT_COLUMNS ", last_transfer_seq "
                                        "FROM accounts WHERE id = ANY($1::uuid[]) "
                                        "ORDER BY id FOR UPDATE";
/* Seqs for the transfers the batch may post, taken under the account locks: for each account,
 * a later batch's transfers get higher seqs, so its chain runs newest to oldest. */
static const char sql_number_transfers[] =
    "SELECT nextval(pg_get_serial_sequence('transfers', 'seq')) "
    "FROM generate_series(1, $1::int4)";
static const char sql_idem_get[] =
    "SELECT u.ord, encode(i.request_hash, 'hex'), i.status, i.body "
    "FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS u(client_id, key, ord) "
    "JOIN idempotency i ON i.client_id = u.client_id AND i.key = u.key";
static const char sql_transfers_exist[] = "SELECT id FROM transfers WHERE id = ANY($1::uuid[])";

static const char sql_account_insert[] =
    "INSERT INTO accounts (id, owner, currency, no_overdraft, debits_posted, credits_posted, "
    "debits_pending, credits_pending, metadata, created_at) SELECT * FROM unnest($1::uuid[], "
    "$2::text[], $3::text[], $4::bool[], $5::int8[], $6::int8[], $7::int8[], $8::int8[], "
    "$9::json[], $10::timestamptz[])";
static const char sql_account_update[] =
    "UPDATE accounts a SET debits_posted = u.d, credits_posted = u.c, last_transfer_seq = u.l "
    "FROM unnest($1::uuid[], $2::int8[], $3::int8[], $4::int8[]) AS u(id, d, c, l) "
    "WHERE a.id = u.id";
static const char sql_transfer_insert[] =
    "INSERT INTO transfers (id, debit_account_id, credit_account_id, amount, currency, "
    "reference, created_at, client_id, seq, prev_debit_seq, prev_credit_seq) "
    "OVERRIDING SYSTEM VALUE SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], "
    "$4::int8[], $5::text[], $6::text[], $7::timestamptz[], $8::text[], $9::int8[], "
    "$10::int8[], $11::int8[])";
static const char sql_idem_insert[] =
    "INSERT INTO idempotency (client_id, key, request_hash, status, body, created_at) "
    "SELECT c, k, h, s, b, to_timestamp($6::int8) FROM unnest($1::text[], $2::text[], "
    "$3::bytea[], $4::int4[], $5::text[]) AS u(c, k, h, s, b)";
static const char sql_outbox_insert[] =
    "INSERT INTO outbox (event_id, topic, partition_key, type, payload, traceparent, "
    "created_at) SELECT e, t, k, y, p, tp, $7::timestamptz FROM unnest($1::uuid[], "
    "$2::text[], $3::text[], $4::text[], $5::text[], $6::text[]) AS u(e, t, k, y, p, tp)";
static const char sql_idem_prune[] =
    "DELETE FROM idempotency WHERE (client_id, key) IN (SELECT client_id, key "
    "FROM idempotency WHERE created_at < to_timestamp($1::int8) LIMIT $2::int8)";

static const char sql_account_get[] =
    "SELECT " ACCOUNT_COLUMNS " FROM accounts WHERE id = $1::uuid";
static const char sql_transfer_get[] =
    "SELECT " TRANSFER_COLUMNS " FROM transfers WHERE id = $1::uuid";
static const char sql_accounts_page_owner[] = "SELECT " ACCOUNT_COLUMNS ", seq FROM accounts "
                                              "WHERE owner = $1 AND seq > $2::int8 "
                                              "ORDER BY seq LIMIT $3::int8";
static const char sql_accounts_page_all[] = "SELECT " ACCOUNT_COLUMNS ", seq FROM accounts "
                                            "WHERE seq > $1::int8 ORDER BY seq LIMIT $2::int8";
/*
 * An account's transfers, newest first, along its chain (migrations/postgres/0002). $2 is the
 * cursor: 0 starts at the account's newest transfer; otherwise the page starts after that
 * transfer, which must be the account's (-1 in the first row's seq column says it is not).
 */
static const char sql_transfers_page[] =
    "WITH RECURSIVE start(seq) AS (SELECT CASE WHEN $2::int8 = 0 THEN "
    "(SELECT last_transfer_seq FROM accounts WHERE id = $1::uuid) ELSE "
    "(SELECT CASE WHEN debit_account_id = $1::uuid THEN prev_debit_seq "
    "WHEN credit_account_id = $1::uuid THEN prev_credit_seq ELSE -1 END "
    "FROM transfers WHERE seq = $2::int8) END), "
    "chain(seq, n) AS (SELECT coalesce(seq, -1), 0 FROM start UNION ALL "
    "SELECT CASE WHEN t.debit_account_id = $1::uuid THEN t.prev_debit_seq "
    "ELSE t.prev_credit_seq END, chain.n + 1 FROM chain JOIN transfers t ON t.seq = chain.seq "
    "WHERE chain.n < $3::int8) "
    "SELECT " TRANSFER_COLUMNS ", t.seq, chain.n FROM chain LEFT JOIN transfers t "
    "ON t.seq = chain.seq WHERE chain.seq <> 0 ORDER BY chain.n LIMIT $3::int8";
static const char sql_outbox_fetch[] =
    "SELECT seq, event_id, topic, partition_key, type, traceparent, payload FROM outbox "
    "WHERE published_at IS NULL AND seq > $1::int8 ORDER BY seq LIMIT $2::int8";
static const char sql_outbox_mark[] = "UPDATE outbox SET published_at = clock_timestamp() "
                                      "WHERE seq = ANY($1::int8[]) AND published_at IS NULL";
static const char sql_outbox_stats[] =
    "SELECT count(*), COALESCE(EXTRACT(EPOCH FROM clock_timestamp() - min(created_at)), 0)"
    "::float8 FROM outbox WHERE published_at IS NULL";

/* The binary array parameters of one batch's writes, kept between batches. */
enum {
    A_ACC_ID,
    A_ACC_OWNER,
    A_ACC_CURRENCY,
    A_ACC_NO_OVERDRAFT,
    A_ACC_DEBITS,
    A_ACC_CREDITS,
    A_ACC_DEBITS_PENDING,
    A_ACC_CREDITS_PENDING,
    A_ACC_METADATA,
    A_ACC_CREATED,
    A_UPD_ID,
    A_UPD_DEBITS,
    A_UPD_CREDITS,
    A_UPD_LAST,
    A_TR_ID,
    A_TR_DEBIT,
    A_TR_CREDIT,
    A_TR_AMOUNT,
    A_TR_CURRENCY,
    A_TR_REFERENCE,
    A_TR_CREATED,
    A_TR_CLIENT,
    A_TR_SEQ,
    A_TR_PREV_DEBIT,
    A_TR_PREV_CREDIT,
    A_IDEM_CLIENT,
    A_IDEM_KEY,
    A_IDEM_HASH,
    A_IDEM_STATUS,
    A_IDEM_BODY,
    A_OB_EVENT,
    A_OB_TOPIC,
    A_OB_KEY,
    A_OB_TYPE,
    A_OB_PAYLOAD,
    A_OB_TRACEPARENT,
    A_LK_ACCOUNTS,
    A_LK_IDEM_CLIENT,
    A_LK_IDEM_KEY,
    A_LK_TRANSFERS,
    A_COUNT_
};

static const uint32_t array_types[A_COUNT_] = {
    [A_ACC_ID] = COFRE_PG_UUID_ARRAY,
    [A_ACC_OWNER] = COFRE_PG_TEXT_ARRAY,
    [A_ACC_CURRENCY] = COFRE_PG_TEXT_ARRAY,
    [A_ACC_NO_OVERDRAFT] = COFRE_PG_BOOL_ARRAY,
    [A_ACC_DEBITS] = COFRE_PG_INT8_ARRAY,
    [A_ACC_CREDITS] = COFRE_PG_INT8_ARRAY,
    [A_ACC_DEBITS_PENDING] = COFRE_PG_INT8_ARRAY,
    [A_ACC_CREDITS_PENDING] = COFRE_PG_INT8_ARRAY,
    [A_ACC_METADATA] = COFRE_PG_JSON_ARRAY,
    [A_ACC_CREATED] = COFRE_PG_TIMESTAMPTZ_ARRAY,
    [A_UPD_ID] = COFRE_PG_UUID_ARRAY,
    [A_UPD_DEBITS] = COFRE_PG_INT8_ARRAY,
    [A_UPD_CREDITS] = COFRE_PG_INT8_ARRAY,
    [A_UPD_LAST] = COFRE_PG_INT8_ARRAY,
    [A_TR_ID] = COFRE_PG_UUID_ARRAY,
    [A_TR_DEBIT] = COFRE_PG_UUID_ARRAY,
    [A_TR_CREDIT] = COFRE_PG_UUID_ARRAY,
    [A_TR_AMOUNT] = COFRE_PG_INT8_ARRAY,
    [A_TR_CURRENCY] = COFRE_PG_TEXT_ARRAY,
    [A_TR_REFERENCE] = COFRE_PG_TEXT_ARRAY,
    [A_TR_CREATED] = COFRE_PG_TIMESTAMPTZ_ARRAY,
    [A_TR_CLIENT] = COFRE_PG_TEXT_ARRAY,
    [A_TR_SEQ] = COFRE_PG_INT8_ARRAY,
    [A_TR_PREV_DEBIT] = COFRE_PG_INT8_ARRAY,
    [A_TR_PREV_CREDIT] = COFRE_PG_INT8_ARRAY,
    [A_IDEM_CLIENT] = COFRE_PG_TEXT_ARRAY,
    [A_IDEM_KEY] = COFRE_PG_TEXT_ARRAY,
    [A_IDEM_HASH] = COFRE_PG_BYTEA_ARRAY,
    [A_IDEM_STATUS] = COFRE_PG_INT4_ARRAY,
    [A_IDEM_BODY] = COFRE_PG_TEXT_ARRAY,
    [A_OB_EVENT] = COFRE_PG_UUID_ARRAY,
    [A_OB_TOPIC] = COFRE_PG_TEXT_ARRAY,
    [A_OB_KEY] = COFRE_PG_TEXT_ARRAY,
    [A_OB_TYPE] = COFRE_PG_TEXT_ARRAY,
    [A_OB_PAYLOAD] = COFRE_PG_TEXT_ARRAY,
    [A_OB_TRACEPARENT] = COFRE_PG_TEXT_ARRAY,
    [A_LK_ACCOUNTS] = COFRE_PG_UUID_ARRAY,
    [A_LK_IDEM_CLIENT] = COFRE_PG_TEXT_ARRAY,
    [A_LK_IDEM_KEY] = COFRE_PG_TEXT_ARRAY,
    [A_LK_TRANSFERS] = COFRE_PG_UUID_ARRAY,
};

typedef struct pg_store {
    cofre_store_t super;
    cofre_pg_t *pg;
    cofre_chains_t chains; /* committer: the batch's account chain heads */
    int64_t *seqs;         /* committer: seqs numbered ahead for the batch's transfers */
    size_t nseqs;
    size_t seqs_cap;
    cofre_pg_array_t arrays[A_COUNT_];
    cofre_pg_param_t params[A_COUNT_];
    char now[COFRE_TIME_LEN + 1];
    char now_unix[24];
    char nposts[24];
} pg_store_t;

static cofre_pg_array_t *arr(pg_store_t *s, int i)
{
    return &s->arrays[i];
}

/* Finishes arrays [first, first + n) as the parameters of one statement. */
static const cofre_pg_param_t *params_of(pg_store_t *s, int first, int n)
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
    if (v == NULL)
        cofre_pg_array_null(a);
    else
        cofre_pg_array_text(a, v, strlen(v));
}

/* Our own ids and times are valid; anything else is a bug upstream, answered as an error. */
static int add_uuid(cofre_pg_array_t *a, const char *id)
{
    if (cofre_pg_array_uuid(a, id) == 0)
        return 0;
    COFRE_LOG(COFRE_LOG_ERROR, NULL, "not a uuid", COFRE_LF_STR("value", id));
    return COFRE_EIO;
}

static int add_time(cofre_pg_array_t *a, const char *ts)
{
    int64_t us;
    if (cofre_pg_time_parse(ts, &us) != 0) {
        COFRE_LOG(COFRE_LOG_ERROR, NULL, "not an RFC 3339 time", COFRE_LF_STR("value", ts));
        return COFRE_EIO;
    }
    cofre_pg_array_timestamptz(a, us);
    return 0;
}

static void read_account(const PGresult *r, int row, cofre_account_t *a)
{
    memset(a, 0, sizeof(*a));
    cofre_pg_copy(r, row, 0, a->id, sizeof(a->id));
    cofre_pg_copy(r, row, 1, a->owner, sizeof(a->owner));
    cofre_pg_copy(r, row, 2, a->currency, sizeof(a->currency));
    a->no_overdraft = PQgetvalue(r, row, 3)[0] == 't';
    a->debits_posted = cofre_pg_int64(r, row, 4);
    a->credits_posted = cofre_pg_int64(r, row, 5);
    a->debits_pending = cofre_pg_int64(r, row, 6);
    a->credits_pending = cofre_pg_int64(r, row, 7);
    if (!PQgetisnull(r, row, 8))
        a->metadata = cofre_strndup(PQgetvalue(r, row, 8), (size_t)PQgetlength(r, row, 8));
    cofre_pg_copy(r, row, 9, a->created_at, sizeof(a->created_at));
}

static void read_transfer(const PGresult *r, int row, cofre_transfer_t *t)
{
    cofre_pg_copy(r, row, 0, t->id, sizeof(t->id));
    cofre_pg_copy(r, row, 1, t->debit_account_id, sizeof(t->debit_account_id));
    cofre_pg_copy(r, row, 2, t->credit_account_id, sizeof(t->credit_account_id));
    t->amount = cofre_pg_int64(r, row, 3);
    cofre_pg_copy(r, row, 4, t->currency, sizeof(t->currency));
    t->has_reference = !PQgetisnull(r, row, 5);
    cofre_pg_copy(r, row, 5, t->reference, sizeof(t->reference));
    cofre_pg_copy(r, row, 6, t->created_at, sizeof(t->created_at));
}

/* ---- write path ------------------------------------------------------------------------- */

static int pq_begin(cofre_store_t *base)
{
    pg_store_t *s = (pg_store_t *)base;
    cofre_pg_discard(s->pg);
    int rc = cofre_pg_connect(s->pg);
    if (rc != 0)
        return rc;
    cofre_pg_add(s->pg, "BEGIN", NULL, 0);
    cofre_pg_add(s->pg, TXN_SETTINGS, NULL, 0);
    return 0;
}

static int hex_nibble(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Decodes 2n hex digits into out; false (out partly written) on a digit that is not hex. */
static bool hex_decode(const char *hex, uint8_t *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int hi = hex_nibble(hex[2 * i]), lo = hex_nibble(hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return false;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return true;
}

static void read_idem(const PGresult *r, int row, cofre_idem_record_t *out)
{
    out->found = true;
    /* A hash that does not decode matches no request: the key then answers 422. */
    if (PQgetlength(r, row, 1) != 2 * COFRE_STORE_HASH_LEN ||
        !hex_decode(PQgetvalue(r, row, 1), out->request_hash, COFRE_STORE_HASH_LEN))
        memset(out->request_hash, 0, sizeof(out->request_hash));
    out->status = (int)cofre_pg_int64(r, row, 2);
    out->body_len = (size_t)PQgetlength(r, row, 3);
    out->body = cofre_strndup(PQgetvalue(r, row, 3), out->body_len);
}

static int compare_str(const void *key, const void *elem)
{
    return strcmp(key, *(const char *const *)elem);
}

/* Fills the lookup's outputs from the results of queries first.. of the lookup round. */
/* The seqs numbered ahead for the batch's transfers. */
static void read_seqs(pg_store_t *s, const PGresult *r)
{
    size_t n = (size_t)PQntuples(r);
    if (n > s->seqs_cap) {
        s->seqs = cofre_realloc(s->seqs, n * sizeof(*s->seqs));
        s->seqs_cap = n;
    }
    for (size_t i = 0; i < n; i++)
        s->seqs[i] = cofre_pg_int64(r, (int)i, 0);
    s->nseqs = n;
}

static void read_lookup(pg_store_t *s, cofre_lookup_t *lk, int q_accounts, int q_idem,
                        int q_transfers, int q_seqs)
{
    const PGresult *r;
    if (q_accounts >= 0 && (r = cofre_pg_result(s->pg, q_accounts)) != NULL) {
        for (int row = 0; row < PQntuples(r); row++) {
            const char *const *at = bsearch(PQgetvalue(r, row, 0), lk->account_ids, lk->n_accounts,
                                            sizeof(char *), compare_str);
            if (at == NULL)
                continue;
            size_t i = (size_t)(at - lk->account_ids);
            read_account(r, row, &lk->accounts[i]);
            lk->account_found[i] = true;
            cofre_chains_head(&s->chains, lk->accounts[i].id)->last_seq =
                cofre_pg_int64(r, row, 10);
        }
    }
    if (q_idem >= 0 && (r = cofre_pg_result(s->pg, q_idem)) != NULL) {
        for (int row = 0; row < PQntuples(r); row++) {
            int64_t ord = cofre_pg_int64(r, row, 0);
            if (ord >= 1 && (size_t)ord <= lk->n_idem && !lk->idem[ord - 1].found)
                read_idem(r, row, &lk->idem[ord - 1]);
        }
    }
    if (q_transfers >= 0 && (r = cofre_pg_result(s->pg, q_transfers)) != NULL) {
        for (int row = 0; row < PQntuples(r); row++)
            for (size_t i = 0; i < lk->n_transfers; i++)
                if (strcmp(PQgetvalue(r, row, 0), lk->transfer_ids[i]) == 0)
                    lk->transfer_found[i] = true;
    }
    if (q_seqs >= 0 && (r = cofre_pg_result(s->pg, q_seqs)) != NULL)
        read_seqs(s, r);
}

static int pq_lookup(cofre_store_t *base, cofre_lookup_t *lk)
{
    pg_store_t *s = (pg_store_t *)base;
    for (size_t i = 0; i < lk->n_idem; i++)
        lk->idem[i] = (cofre_idem_record_t){0};
    for (size_t i = 0; i < lk->n_accounts; i++)
        lk->account_found[i] = false;
    for (size_t i = 0; i < lk->n_transfers; i++)
        lk->transfer_found[i] = false;
    reset_arrays(s, A_LK_ACCOUNTS, A_LK_TRANSFERS);
    cofre_chains_reset(&s->chains, lk->n_accounts);
    s->nseqs = 0;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < lk->n_accounts; i++)
        rc = add_uuid(arr(s, A_LK_ACCOUNTS), lk->account_ids[i]);
    for (size_t i = 0; rc == 0 && i < lk->n_transfers; i++)
        rc = add_uuid(arr(s, A_LK_TRANSFERS), lk->transfer_ids[i]);
    for (size_t i = 0; i < lk->n_idem; i++) {
        text_or_null(arr(s, A_LK_IDEM_CLIENT), lk->idem_keys[i].client_id);
        text_or_null(arr(s, A_LK_IDEM_KEY), lk->idem_keys[i].key);
    }
    if (rc != 0)
        return rc;
    /* Locks first: the reads after them see what the previous holder committed. */
    int q = cofre_pg_queued(s->pg), q_accounts = -1, q_idem = -1, q_transfers = -1, q_seqs = -1;
    if (lk->n_accounts > 0) {
        cofre_pg_add(s->pg, sql_lock_accounts, params_of(s, A_LK_ACCOUNTS, 1), 1);
        q_accounts = q++;
    }
    if (lk->n_idem > 0) {
        cofre_pg_add(s->pg, sql_idem_get, params_of(s, A_LK_IDEM_CLIENT, 2), 2);
        q_idem = q++;
    }
    if (lk->n_transfers > 0) {
        cofre_pg_add(s->pg, sql_transfers_exist, params_of(s, A_LK_TRANSFERS, 1), 1);
        q_transfers = q++;
    }
    if (lk->n_posts_max > 0) {
        snprintf(s->nposts, sizeof(s->nposts), "%zu", lk->n_posts_max);
        const cofre_pg_param_t p[] = {COFRE_PG_TEXT(s->nposts)};
        cofre_pg_add(s->pg, sql_number_transfers, p, 1);
        q_seqs = q++;
    }
    if (q == 0)
        return 0;
    rc = cofre_pg_exchange(s->pg, true);
    if (rc == 0)
        read_lookup(s, lk, q_accounts, q_idem, q_transfers, q_seqs);
    return rc;
}

static int add_new_accounts(pg_store_t *s, const cofre_write_set_t *ws)
{
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < ws->n_new_accounts; i++) {
        const cofre_account_t *a = ws->new_accounts[i];
        rc = add_uuid(arr(s, A_ACC_ID), a->id);
        if (rc == 0)
            rc = add_time(arr(s, A_ACC_CREATED), a->created_at);
        text_or_null(arr(s, A_ACC_OWNER), a->owner);
        text_or_null(arr(s, A_ACC_CURRENCY), a->currency);
        cofre_pg_array_bool(arr(s, A_ACC_NO_OVERDRAFT), a->no_overdraft);
        cofre_pg_array_int8(arr(s, A_ACC_DEBITS), a->debits_posted);
        cofre_pg_array_int8(arr(s, A_ACC_CREDITS), a->credits_posted);
        cofre_pg_array_int8(arr(s, A_ACC_DEBITS_PENDING), a->debits_pending);
        cofre_pg_array_int8(arr(s, A_ACC_CREDITS_PENDING), a->credits_pending);
        text_or_null(arr(s, A_ACC_METADATA), a->metadata);
    }
    if (rc == 0 && ws->n_new_accounts > 0)
        cofre_pg_add(s->pg, sql_account_insert, params_of(s, A_ACC_ID, 10), 10);
    return rc;
}

static int add_account_update(pg_store_t *s, const cofre_account_t *a)
{
    cofre_pg_array_int8(arr(s, A_UPD_DEBITS), a->debits_posted);
    cofre_pg_array_int8(arr(s, A_UPD_CREDITS), a->credits_posted);
    cofre_pg_array_int8(arr(s, A_UPD_LAST), cofre_chains_head(&s->chains, a->id)->last_seq);
    return add_uuid(arr(s, A_UPD_ID), a->id);
}

/* Totals and chain heads of the accounts the batch changed, after its transfers are numbered
 * (an account opened in this batch was inserted with its totals; its head may have moved). */
static int add_changed_accounts(pg_store_t *s, const cofre_write_set_t *ws)
{
    int rc = 0;
    size_t n = 0;
    for (size_t i = 0; rc == 0 && i < ws->n_changed_accounts; i++, n++)
        rc = add_account_update(s, ws->changed_accounts[i]);
    for (size_t i = 0; rc == 0 && i < ws->n_new_accounts; i++) {
        const cofre_account_t *a = ws->new_accounts[i];
        if (cofre_chains_head(&s->chains, a->id)->moved) {
            rc = add_account_update(s, a);
            n++;
        }
    }
    if (rc == 0 && n > 0)
        cofre_pg_add(s->pg, sql_account_update, params_of(s, A_UPD_ID, 4), 4);
    return rc;
}

static int add_transfers(pg_store_t *s, const cofre_write_set_t *ws)
{
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < ws->n_transfers; i++) {
        const cofre_transfer_t *t = ws->transfers[i].transfer;
        rc = add_uuid(arr(s, A_TR_ID), t->id);
        if (rc == 0)
            rc = add_uuid(arr(s, A_TR_DEBIT), t->debit_account_id);
        if (rc == 0)
            rc = add_uuid(arr(s, A_TR_CREDIT), t->credit_account_id);
        if (rc == 0)
            rc = add_time(arr(s, A_TR_CREATED), t->created_at);
        cofre_pg_array_int8(arr(s, A_TR_AMOUNT), t->amount);
        text_or_null(arr(s, A_TR_CURRENCY), t->currency);
        text_or_null(arr(s, A_TR_REFERENCE), t->has_reference ? t->reference : NULL);
        text_or_null(arr(s, A_TR_CLIENT), ws->transfers[i].client_id);
        COFRE_ASSERT(i < s->nseqs); /* numbered at lookup, as many as the batch may post */
        int64_t prev_debit, prev_credit;
        cofre_chains_link(&s->chains, t->debit_account_id, t->credit_account_id, s->seqs[i],
                          &prev_debit, &prev_credit);
        cofre_pg_array_int8(arr(s, A_TR_SEQ), s->seqs[i]);
        cofre_pg_array_int8(arr(s, A_TR_PREV_DEBIT), prev_debit);
        cofre_pg_array_int8(arr(s, A_TR_PREV_CREDIT), prev_credit);
    }
    if (rc == 0 && ws->n_transfers > 0)
        cofre_pg_add(s->pg, sql_transfer_insert, params_of(s, A_TR_ID, 11), 11);
    return rc;
}

static void add_idem(pg_store_t *s, const cofre_write_set_t *ws)
{
    for (size_t i = 0; i < ws->n_idem; i++) {
        const cofre_idem_write_t *w = &ws->idem[i];
        text_or_null(arr(s, A_IDEM_CLIENT), w->client_id);
        text_or_null(arr(s, A_IDEM_KEY), w->key);
        cofre_pg_array_bytes(arr(s, A_IDEM_HASH), w->request_hash, COFRE_STORE_HASH_LEN);
        cofre_pg_array_int4(arr(s, A_IDEM_STATUS), w->status);
        cofre_pg_array_text(arr(s, A_IDEM_BODY), w->body, w->body_len);
    }
    if (ws->n_idem == 0)
        return;
    snprintf(s->now_unix, sizeof(s->now_unix), "%lld", (long long)ws->now_unix);
    cofre_pg_param_t p[6];
    memcpy(p, params_of(s, A_IDEM_CLIENT, 5), 5 * sizeof(p[0]));
    p[5] = COFRE_PG_TEXT(s->now_unix);
    cofre_pg_add(s->pg, sql_idem_insert, p, 6);
}

static int add_outbox(pg_store_t *s, const cofre_write_set_t *ws)
{
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < ws->n_outbox; i++) {
        const cofre_outbox_write_t *o = &ws->outbox[i];
        rc = add_uuid(arr(s, A_OB_EVENT), o->event_id);
        text_or_null(arr(s, A_OB_TOPIC), o->topic);
        text_or_null(arr(s, A_OB_KEY), o->partition_key);
        text_or_null(arr(s, A_OB_TYPE), o->type);
        cofre_pg_array_text(arr(s, A_OB_PAYLOAD), o->payload, o->payload_len);
        text_or_null(arr(s, A_OB_TRACEPARENT), o->traceparent);
    }
    if (rc != 0 || ws->n_outbox == 0)
        return rc;
    cofre_time_format(cofre_now_wall_us(), s->now);
    cofre_pg_param_t p[7];
    memcpy(p, params_of(s, A_OB_EVENT, 6), 6 * sizeof(p[0]));
    p[6] = COFRE_PG_TEXT(s->now);
    cofre_pg_add(s->pg, sql_outbox_insert, p, 7);
    return 0;
}

/* Queues the batch's writes; they travel with the COMMIT, in one round trip. */
static int pq_write(cofre_store_t *base, const cofre_write_set_t *ws)
{
    pg_store_t *s = (pg_store_t *)base;
    reset_arrays(s, A_ACC_ID, A_OB_TRACEPARENT);
    int rc = add_new_accounts(s, ws);
    if (rc == 0)
        rc = add_transfers(s, ws);
    if (rc == 0)
        rc = add_changed_accounts(s, ws);
    if (rc == 0) {
        add_idem(s, ws);
        rc = add_outbox(s, ws);
    }
    return rc;
}

static int pq_commit(cofre_store_t *base)
{
    pg_store_t *s = (pg_store_t *)base;
    cofre_pg_add(s->pg, "COMMIT", NULL, 0);
    return cofre_pg_exchange(s->pg, false);
}

static void pq_rollback(cofre_store_t *base)
{
    pg_store_t *s = (pg_store_t *)base;
    cofre_pg_discard(s->pg);
    if (!cofre_pg_in_transaction(s->pg))
        return;
    cofre_pg_add(s->pg, "ROLLBACK", NULL, 0);
    if (cofre_pg_exchange(s->pg, false) != 0)
        cofre_pg_disconnect(s->pg);
}

static int pq_prune_idempotency(cofre_store_t *base, int64_t before_unix, int max)
{
    pg_store_t *s = (pg_store_t *)base;
    char before[24], limit[24];
    snprintf(before, sizeof(before), "%lld", (long long)before_unix);
    snprintf(limit, sizeof(limit), "%d", max);
    const cofre_pg_param_t p[] = {COFRE_PG_TEXT(before), COFRE_PG_TEXT(limit)};
    /* In a transaction of its own with the committer's settings: the expired rows are found
     * through the BRIN index on created_at, never by reading the whole table. */
    int rc = pq_begin(base);
    if (rc != 0)
        return rc;
    cofre_pg_add(s->pg, sql_idem_prune, p, 2);
    cofre_pg_add(s->pg, "COMMIT", NULL, 0);
    rc = cofre_pg_exchange(s->pg, true);
    if (rc != 0) {
        pq_rollback(base);
        return rc;
    }
    return atoi(PQcmdTuples((PGresult *)cofre_pg_result(s->pg, 2)));
}

static void pq_maintain(cofre_store_t *base)
{
    (void)base; /* PostgreSQL's autovacuum and checkpointer do the housekeeping */
}

/* ---- read path -------------------------------------------------------------------------- */

/* Runs one read statement; *r is its result on success. */
static int read_one(pg_store_t *s, const char *sql, const cofre_pg_param_t *p, int n,
                    const PGresult **r)
{
    cofre_pg_add(s->pg, sql, p, n);
    int rc = cofre_pg_exchange(s->pg, true);
    *r = rc == 0 ? cofre_pg_result(s->pg, 0) : NULL;
    return rc;
}

static int pq_account_get(cofre_store_t *base, const char *id, cofre_account_t *out)
{
    const cofre_pg_param_t p[] = {COFRE_PG_TEXT(id)};
    const PGresult *r;
    int rc = read_one((pg_store_t *)base, sql_account_get, p, 1, &r);
    if (rc != 0)
        return rc;
    if (PQntuples(r) == 0)
        return COFRE_ENOENT;
    read_account(r, 0, out);
    return 0;
}

static int pq_transfer_get(cofre_store_t *base, const char *id, cofre_transfer_t *out)
{
    const cofre_pg_param_t p[] = {COFRE_PG_TEXT(id)};
    const PGresult *r;
    int rc = read_one((pg_store_t *)base, sql_transfer_get, p, 1, &r);
    if (rc != 0)
        return rc;
    if (PQntuples(r) == 0)
        return COFRE_ENOENT;
    read_transfer(r, 0, out);
    return 0;
}

static int pq_accounts_page(cofre_store_t *base, const cofre_page_query_t *q, cofre_account_t *out,
                            int64_t *seqs, size_t *n)
{
    char cursor[24], limit[24];
    snprintf(cursor, sizeof(cursor), "%lld", (long long)q->cursor_seq);
    snprintf(limit, sizeof(limit), "%zu", q->limit + 1);
    const PGresult *r;
    int rc;
    if (q->owner != NULL) {
        const cofre_pg_param_t p[] = {COFRE_PG_TEXT(q->owner), COFRE_PG_TEXT(cursor),
                                      COFRE_PG_TEXT(limit)};
        rc = read_one((pg_store_t *)base, sql_accounts_page_owner, p, 3, &r);
    } else {
        const cofre_pg_param_t p[] = {COFRE_PG_TEXT(cursor), COFRE_PG_TEXT(limit)};
        rc = read_one((pg_store_t *)base, sql_accounts_page_all, p, 2, &r);
    }
    *n = 0;
    if (rc != 0)
        return rc;
    for (int row = 0; row < PQntuples(r) && *n <= q->limit; row++) {
        read_account(r, row, &out[*n]);
        seqs[(*n)++] = cofre_pg_int64(r, row, 10);
    }
    return 0;
}

static int pq_transfers_page(cofre_store_t *base, const cofre_page_query_t *q,
                             cofre_transfer_t *out, int64_t *seqs, size_t *n)
{
    char cursor[24], limit[24];
    /* 0: from the account's newest transfer (the API's INT64_MAX). */
    snprintf(cursor, sizeof(cursor), "%lld",
             (long long)(q->cursor_seq == INT64_MAX ? 0 : q->cursor_seq));
    snprintf(limit, sizeof(limit), "%zu", q->limit + 1);
    const cofre_pg_param_t p[] = {COFRE_PG_TEXT(q->account_id), COFRE_PG_TEXT(cursor),
                                  COFRE_PG_TEXT(limit)};
    const PGresult *r;
    int rc = read_one((pg_store_t *)base, sql_transfers_page, p, 3, &r);
    *n = 0;
    if (rc != 0)
        return rc;
    for (int row = 0; row < PQntuples(r) && *n <= q->limit; row++) {
        if (PQgetisnull(r, row, 7))
            return q->cursor_seq != INT64_MAX && row == 0 ? COFRE_EINVAL : 0;
        read_transfer(r, row, &out[*n]);
        seqs[(*n)++] = cofre_pg_int64(r, row, 7);
    }
    return 0;
}

static bool pq_ping(cofre_store_t *base)
{
    const PGresult *r;
    return read_one((pg_store_t *)base, "SELECT 1", NULL, 0, &r) == 0;
}

static int pq_outbox_fetch(cofre_store_t *base, int64_t after_seq, size_t max,
                           cofre_outbox_row_t *out, size_t *n)
{
    char after[24], limit[24];
    snprintf(after, sizeof(after), "%lld", (long long)after_seq);
    snprintf(limit, sizeof(limit), "%zu", max);
    const cofre_pg_param_t p[] = {COFRE_PG_TEXT(after), COFRE_PG_TEXT(limit)};
    const PGresult *r;
    int rc = read_one((pg_store_t *)base, sql_outbox_fetch, p, 2, &r);
    *n = 0;
    if (rc != 0)
        return rc;
    for (int row = 0; row < PQntuples(r) && *n < max; row++) {
        cofre_outbox_row_t *o = &out[(*n)++];
        o->seq = cofre_pg_int64(r, row, 0);
        cofre_pg_copy(r, row, 1, o->event_id, sizeof(o->event_id));
        cofre_pg_copy(r, row, 2, o->topic, sizeof(o->topic));
        cofre_pg_copy(r, row, 3, o->partition_key, sizeof(o->partition_key));
        cofre_pg_copy(r, row, 4, o->type, sizeof(o->type));
        cofre_pg_copy(r, row, 5, o->traceparent, sizeof(o->traceparent));
        o->payload_len = (size_t)PQgetlength(r, row, 6);
        o->payload = cofre_strndup(PQgetvalue(r, row, 6), o->payload_len);
    }
    return 0;
}

static int pq_outbox_mark_published(cofre_store_t *base, const int64_t *seqs, size_t n)
{
    pg_store_t *s = (pg_store_t *)base;
    if (n == 0)
        return 0;
    cofre_pg_array_t a;
    cofre_pg_array_init(&a, COFRE_PG_INT8_ARRAY);
    for (size_t i = 0; i < n; i++)
        cofre_pg_array_int8(&a, seqs[i]);
    const cofre_pg_param_t p[] = {cofre_pg_array_param(&a)};
    const PGresult *r;
    /* One statement is one implicit transaction; marking twice is harmless. */
    int rc = read_one(s, sql_outbox_mark, p, 1, &r);
    cofre_pg_array_release(&a);
    return rc;
}

static int pq_outbox_stats(cofre_store_t *base, int64_t *pending, double *oldest_age_s)
{
    const PGresult *r;
    *pending = 0;
    *oldest_age_s = 0;
    int rc = read_one((pg_store_t *)base, sql_outbox_stats, NULL, 0, &r);
    if (rc != 0)
        return rc;
    *pending = cofre_pg_int64(r, 0, 0);
    *oldest_age_s = strtod(PQgetvalue(r, 0, 1), NULL);
    return 0;
}

static void pq_close(cofre_store_t *base)
{
    pg_store_t *s = (pg_store_t *)base;
    for (int i = 0; i < A_COUNT_; i++)
        cofre_pg_array_release(&s->arrays[i]);
    cofre_pg_free(s->pg);
    cofre_chains_release(&s->chains);
    free(s->seqs);
    free(s);
}

static const cofre_store_ops_t pg_ops = {
    .close = pq_close,
    .begin = pq_begin,
    .lookup = pq_lookup,
    .write = pq_write,
    .commit = pq_commit,
    .rollback = pq_rollback,
    .prune_idempotency = pq_prune_idempotency,
    .maintain = pq_maintain,
    .account_get = pq_account_get,
    .transfer_get = pq_transfer_get,
    .accounts_page = pq_accounts_page,
    .transfers_page = pq_transfers_page,
    .ping = pq_ping,
    .outbox_fetch = pq_outbox_fetch,
    .outbox_mark_published = pq_outbox_mark_published,
    .outbox_stats = pq_outbox_stats,
};

int cofre_store_pg_open(const char *url, bool readonly, cofre_store_t **out)
{
    if (!cofre_pg_url_valid(url))
        return COFRE_EINVAL;
    pg_store_t *s = cofre_calloc(1, sizeof(*s));
    s->super.ops = &pg_ops;
    s->pg = cofre_pg_new(&(cofre_pg_config_t){
        .url = url,
        .application_name = readonly ? "cofre-core reader" : "cofre-core committer",
        .connect_timeout_ms = CONNECT_TIMEOUT_MS,
        .round_timeout_ms = ROUND_TIMEOUT_MS,
        .backoff_max_ms = BACKOFF_MAX_MS,
        .pipeline = true,
        .prepare = true,
    });
    for (int i = 0; i < A_COUNT_; i++)
        cofre_pg_array_init(&s->arrays[i], array_types[i]);
    /* A database down now may be up in a second: the handle reconnects by itself, and the
     * service reports not ready meanwhile. */
    cofre_pg_connect(s->pg);
    *out = &s->super;
    return 0;
}

/* ---- migrations ------------------------------------------------------------------------- */

int cofre_store_pg_migrate(const char *url)
{
    if (!cofre_pg_url_valid(url))
        return COFRE_EINVAL;
    const cofre_migrations_t m = {"cofre-core", cofre_migrations_postgres,
                                  cofre_migrations_postgres_count, "cofre_schema_migrations",
                                  MIGRATE_LOCK_KEY};
    return cofre_migrate_pg(url, &m);
}
