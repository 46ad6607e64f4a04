/*
 * store.h: the audit trail's storage, behind one interface: SQLite (the embedded default,
 * store_sqlite.c) and PostgreSQL (production, store_pg.c; its service role may only SELECT and
 * INSERT). A handle is one connection used by one thread.
 *
 * Records are append-only: both schemas have triggers that abort any UPDATE or DELETE of
 * records or checkpoints. append() is the only writer of the chain: in one transaction it
 * takes the store's append lock (SQLite's write lock; a PostgreSQL advisory lock), reads the
 * head, skips events already stored (dedup by event id), assigns each new record the next seq
 * and its chain hash, and inserts it; so concurrent appenders (several replicas on one
 * PostgreSQL) still build one linear chain.
 */
#ifndef COFRE_AUDIT_STORE_H
#define COFRE_AUDIT_STORE_H

#include "audit/record.h"
#include "cofre/common.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define COFRE_AUDIT_PUBKEY_LEN 32
#define COFRE_AUDIT_SIG_LEN    64

typedef struct cofre_audit_store cofre_audit_store_t;

/* A signed statement that the chain's record seq has hash. */
typedef struct cofre_audit_checkpoint {
    int64_t seq;
    uint8_t hash[COFRE_AUDIT_HASH_LEN];
    char created_at[COFRE_TIME_LEN + 1];
    uint8_t public_key[COFRE_AUDIT_PUBKEY_LEN];
    uint8_t signature[COFRE_AUDIT_SIG_LEN];
} cofre_audit_checkpoint_t;

/* A page of the query API: filters (NULL / has_ = false: any), then seq > after_seq. */
typedef struct cofre_audit_query {
    const char *subject;
    const char *type;
    bool has_from;
    int64_t from_us; /* the event's time >= from */
    bool has_to;
    int64_t to_us; /* the event's time < to */
    int64_t after_seq;
    size_t limit;
} cofre_audit_query_t;

typedef struct cofre_audit_store_ops {
    void (*close)(cofre_audit_store_t *s);
    /*
     * Appends recs[0..n) in order, in one transaction. A record whose event id is stored
     * already (or earlier in recs) is skipped: its seq stays 0. Stored ones get seq and hash.
     * *head_seq / head_hash: the chain's head after the append. Returns 0, or COFRE_EUNAVAIL /
     * COFRE_ECONFLICT / COFRE_EIO with nothing stored (every seq left 0).
     */
    int (*append)(cofre_audit_store_t *s, cofre_audit_record_t *recs, size_t n, int64_t *head_seq,
                  uint8_t head_hash[COFRE_AUDIT_HASH_LEN]);
    /* The last record's seq and hash (0 and zeros when empty). */
    int (*head)(cofre_audit_store_t *s, int64_t *seq, uint8_t hash[COFRE_AUDIT_HASH_LEN]);
    /* Fills out[0..*n) (capacity q->limit + 1) with matching records, in seq order. */
    int (*page)(cofre_audit_store_t *s, const cofre_audit_query_t *q, cofre_audit_record_t *out,
                size_t *n);
    /* Fills out[0..*n) with up to max records with seq > after_seq, in seq order, whatever
     * their seqs (the verifier looks for gaps). */
    int (*scan)(cofre_audit_store_t *s, int64_t after_seq, size_t max, cofre_audit_record_t *out,
                size_t *n);
    int (*checkpoint_add)(cofre_audit_store_t *s, const cofre_audit_checkpoint_t *cp);
    /* Up to max checkpoints with seq > after_seq, in seq order. */
    int (*checkpoints)(cofre_audit_store_t *s, int64_t after_seq, size_t max,
                       cofre_audit_checkpoint_t *out, size_t *n);
    /* True when the connection works. */
    bool (*ping)(cofre_audit_store_t *s);
} cofre_audit_store_ops_t;

struct cofre_audit_store {
    const cofre_audit_store_ops_t *ops;
};

/*
 * Opens a handle for COFRE_DB url. SQLite: creates the schema when writable and missing.
 * PostgreSQL: connects lazily (a database down now is retried by every call, with backoff);
 * the schema comes from cofre_audit_store_migrate. Returns 0 and *out, COFRE_EINVAL for a URL
 * this build cannot store to, or COFRE_EUNAVAIL / COFRE_EIO (logged).
 */
int cofre_audit_store_open(const char *url, bool readonly, cofre_audit_store_t **out);

/*
 * Brings the schema to this binary's version. PostgreSQL: applies migrations/audit/postgres/
 * in one transaction under an advisory lock (safe from several processes; idempotent); with
 * the service role, a schema that is up to date is only checked. Returns 0, COFRE_ERANGE (the
 * schema is newer than this binary), COFRE_EUNAVAIL (unreachable), or COFRE_EIO (logged).
 */
int cofre_audit_store_migrate(const char *url);

/* True when url names a store kind this build has. */
bool cofre_audit_store_supported(const char *url);

void cofre_audit_store_close(cofre_audit_store_t *s);

/* The SQLite implementation. */
int cofre_audit_store_sqlite_open(const char *path, bool readonly, cofre_audit_store_t **out);
int cofre_audit_store_sqlite_migrate(const char *path);

/* The PostgreSQL implementation (libpq must be loaded: cofre_pq_load). */
int cofre_audit_store_pg_open(const char *url, bool readonly, cofre_audit_store_t **out);
int cofre_audit_store_pg_migrate(const char *url);

#endif
