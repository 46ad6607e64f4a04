/*
 * store.h: the ledger's storage, behind one interface with a SQLite implementation (the
 * embedded default) and a PostgreSQL one (production). A store handle is one connection, used
 * by one thread: the committer owns one for writes; each reader worker owns one for reads.
 *
 * The write path is batch-shaped so a networked database pays a few round trips per batch,
 * not per command: begin, lookup (everything the batch needs to decide, with the touched
 * accounts locked in id order), write (everything it decided), commit.
 */
#ifndef COFRE_CORE_STORE_H
#define COFRE_CORE_STORE_H

#include "core/ledger.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define COFRE_STORE_HASH_LEN   32
#define COFRE_STORE_CLIENT_MAX 128
#define COFRE_STORE_KEY_MAX    255

typedef struct cofre_store cofre_store_t;

/* A stored idempotent answer. */
typedef struct cofre_idem_record {
    bool found;
    uint8_t request_hash[COFRE_STORE_HASH_LEN];
    int status;
    char *body; /* owned; NUL-terminated */
    size_t body_len;
} cofre_idem_record_t;

typedef struct cofre_idem_key {
    const char *client_id;
    const char *key;
} cofre_idem_key_t;

/* What one batch needs to know before deciding. Arrays are the caller's. */
typedef struct cofre_lookup {
    size_t n_idem;
    const cofre_idem_key_t *idem_keys;
    cofre_idem_record_t *idem; /* out: n_idem records */

    size_t n_accounts;
    const char *const *account_ids; /* sorted by the caller; locked in this order */
    cofre_account_t *accounts;      /* out: n_accounts */
    bool *account_found;            /* out */

    size_t n_transfers;
    const char *const *transfer_ids; /* client-supplied transfer ids */
    bool *transfer_found;            /* out */

    size_t n_posts_max; /* transfers the batch may post (a store may number them ahead) */
} cofre_lookup_t;

typedef struct cofre_idem_write {
    const char *client_id;
    const char *key;
    const uint8_t *request_hash;
    int status;
    const char *body;
    size_t body_len;
} cofre_idem_write_t;

typedef struct cofre_transfer_write {
    const cofre_transfer_t *transfer;
    const char *client_id;
} cofre_transfer_write_t;

typedef struct cofre_outbox_write {
    char event_id[COFRE_UUID_LEN + 1];
    const char *topic;
    const char *partition_key;
    const char *type;
    const char *payload; /* the CloudEvents JSON */
    size_t payload_len;
    const char *traceparent;
} cofre_outbox_write_t;

/* Everything one batch decided. */
typedef struct cofre_write_set {
    const cofre_account_t **new_accounts; /* inserted with their totals */
    size_t n_new_accounts;
    const cofre_account_t **changed_accounts; /* totals updated */
    size_t n_changed_accounts;
    const cofre_transfer_write_t *transfers;
    size_t n_transfers;
    const cofre_idem_write_t *idem;
    size_t n_idem;
    const cofre_outbox_write_t *outbox;
    size_t n_outbox;
    int64_t now_unix; /* for idempotency retention */
} cofre_write_set_t;

/* An outbox row as the relay reads it. */
typedef struct cofre_outbox_row {
    int64_t seq;
    char event_id[COFRE_UUID_LEN + 1];
    char topic[64];
    char partition_key[COFRE_UUID_LEN + 1];
    char type[64];
    char traceparent[64];
    char *payload; /* owned: the CloudEvents JSON */
    size_t payload_len;
} cofre_outbox_row_t;

/* One page of a list read. The store fills at most limit + 1 items so the caller knows
 * whether another page follows. */
typedef struct cofre_page_query {
    const char *owner;      /* accounts: NULL for every owner */
    const char *account_id; /* transfers of this account */
    int64_t cursor_seq;     /* accounts: after this seq (0: from the start); transfers: before
                               it (INT64_MAX: from the newest) */
    size_t limit;
} cofre_page_query_t;

typedef struct cofre_store_ops {
    void (*close)(cofre_store_t *s);

    /* Write path. Errors: COFRE_ECONFLICT (retry the batch), COFRE_EUNAVAIL (database down),
     * COFRE_EIO (anything else). */
    int (*begin)(cofre_store_t *s);
    int (*lookup)(cofre_store_t *s, cofre_lookup_t *lk);
    int (*write)(cofre_store_t *s, const cofre_write_set_t *ws);
    int (*commit)(cofre_store_t *s);
    void (*rollback)(cofre_store_t *s);
    /* Deletes up to max idempotency records created before the given Unix time; returns the
     * number deleted or an error. Runs in its own transaction. */
    int (*prune_idempotency)(cofre_store_t *s, int64_t before_unix, int max);
    /* Housekeeping between batches, after their answers are sent (SQLite: checkpoints). */
    void (*maintain)(cofre_store_t *s);

    /* Read path: 0, COFRE_ENOENT, or an error as above. */
    int (*account_get)(cofre_store_t *s, const char *id, cofre_account_t *out);
    int (*transfer_get)(cofre_store_t *s, const char *id, cofre_transfer_t *out);
    /* Fill out[0..*n) (capacity q->limit + 1) and seqs. */
    int (*accounts_page)(cofre_store_t *s, const cofre_page_query_t *q, cofre_account_t *out,
                         int64_t *seqs, size_t *n);
    int (*transfers_page)(cofre_store_t *s, const cofre_page_query_t *q, cofre_transfer_t *out,
                          int64_t *seqs, size_t *n);
    /* True when the connection works (a cheap round trip). */
    bool (*ping)(cofre_store_t *s);

    /*
     * Outbox relay: fills out[0..*n) with up to max unpublished rows with seq > after_seq, in
     * seq order (for one partition key, seq order is commit order). The caller frees each
     * payload.
     */
    int (*outbox_fetch)(cofre_store_t *s, int64_t after_seq, size_t max, cofre_outbox_row_t *out,
                        size_t *n);
    /* Marks rows published (after the broker acknowledged them), in one transaction. */
    int (*outbox_mark_published)(cofre_store_t *s, const int64_t *seqs, size_t n);
    /* Unpublished rows, and the age in seconds of the oldest (0 when none). */
    int (*outbox_stats)(cofre_store_t *s, int64_t *pending, double *oldest_age_s);
} cofre_store_ops_t;

struct cofre_store {
    const cofre_store_ops_t *ops;
};

/*
 * Opens a connection for COFRE_DB url. Returns 0 and *out, or COFRE_EINVAL (bad url),
 * COFRE_EUNAVAIL / COFRE_EIO (logged). The schema must be migrated (cofre_store_migrate).
 */
int cofre_store_open(const char *url, bool readonly, cofre_store_t **out);

/*
 * Brings the schema to this binary's version. Safe to run from several processes at once;
 * refuses (COFRE_ERANGE) a database whose schema is newer than this binary knows.
 */
int cofre_store_migrate(const char *url);

void cofre_store_close(cofre_store_t *s);

/* Frees what a lookup's outputs hold (idempotency bodies, account metadata). */
void cofre_lookup_release(cofre_lookup_t *lk);

/* The SQLite implementation, for cofre_store_open. */
int cofre_store_sqlite_open(const char *path, bool readonly, cofre_store_t **out);
int cofre_store_sqlite_migrate(const char *path);

/*
 * The PostgreSQL implementation (url: postgres://... or postgresql://...). Open fails only on
 * a malformed URL (COFRE_EINVAL): a database that is down is connected to later, by itself,
 * and meanwhile every operation fails fast with COFRE_EUNAVAIL.
 */
int cofre_store_pg_open(const char *url, bool readonly, cofre_store_t **out);
int cofre_store_pg_migrate(const char *url);

#endif
