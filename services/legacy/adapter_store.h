/*
 * adapter_store.h: the delivery state of cofre-legacy (store-and-forward), behind one small
 * interface with two implementations: SQLite (the embedded default, COFRE_DB=sqlite:PATH; one
 * process owns the file) and PostgreSQL (COFRE_DB=postgres://..., shared by several replicas).
 * A handle is one connection used by one thread: the consumer owns one (it stores what it read
 * before committing offsets, and publishes dead letters), the delivery engine owns another (it
 * marks transmissions and outcomes).
 *
 * One row per posted transfer, in the order consumed (seq), through these states:
 *
 *   pending   stored; not sent yet, or to be sent again (after a reversal or a transient
 *             decline)
 *   sent      a 0200 is, or may be, out: (stan, sent_at_us) name the transmission, so a
 *             restart can reverse exactly it before retrying
 *   applied   the host approved it (final)
 *   declined  the host declined it for good (final; dead-lettered)
 *   failed    retries exhausted, or a reversal declined (final; dead-lettered)
 *
 * Dead letters are rows of their own, written in the same transaction as the cause and
 * published to Kafka afterwards (an outbox), so none is lost between the two.
 *
 * A shared store (cofre_adapter_store_shared) leases each Kafka partition to one owner (a name
 * unique to one process, cofre_adapter_store_set_owner) at a time: the owner's handles store,
 * load and update only the deliveries of the partitions it leases, and every such transaction
 * checks the lease under a lock that keeps a takeover out until it commits. A lease is taken
 * when free, released or expired, renewed by its owner, and released by it (adapter_lease.h
 * drives this from Kafka's assignment).
 */
#ifndef COFRE_LEGACY_ADAPTER_STORE_H
#define COFRE_LEGACY_ADAPTER_STORE_H

#include "legacy/adapter_event.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define COFRE_ADAPTER_STORE_BATCH_MAX 4096 /* rows per call */
#define COFRE_ADAPTER_KEY_MAX         160  /* dead-letter source and message keys */
#define COFRE_ADAPTER_OWNER_MAX       128  /* a lease owner's name */
#define COFRE_ADAPTER_PARTITIONS_MAX  1024 /* partitions of the topic the adapter tracks */

typedef enum cofre_delivery_state {
    COFRE_DELIVERY_PENDING = 0,
    COFRE_DELIVERY_SENT,
    COFRE_DELIVERY_APPLIED,
    COFRE_DELIVERY_DECLINED,
    COFRE_DELIVERY_FAILED,
    COFRE_DELIVERY_STATES
} cofre_delivery_state_t;

/* A stored delivery. */
typedef struct cofre_adapter_delivery {
    int64_t seq;
    cofre_adapter_transfer_t t;
    cofre_delivery_state_t state;
    uint32_t attempts;  /* 0200 transmissions so far */
    uint32_t reversals; /* 0400s acknowledged */
    uint32_t stan;      /* sent: the transmission's field 11 */
    uint64_t sent_at_us;
    char response_code[3]; /* final states: field 39 of the last answer, or "" */
    char auth_id[7];
} cofre_adapter_delivery_t;

/* A dead letter to write: its Kafka key and CloudEvents value. */
typedef struct cofre_adapter_dead {
    const char *source_key;  /* unique: "transfer:<id>", "event:<id>" or "kafka:<p>:<o>" */
    const char *message_key; /* the DLQ message's Kafka key */
    const char *reason;      /* COFRE_ADAPTER_DLQ_* */
    const char *payload;
    size_t payload_len;
} cofre_adapter_dead_t;

/* A change to one delivery (by seq). */
typedef struct cofre_adapter_update {
    int64_t seq;
    int32_t partition; /* the delivery's Kafka partition (a shared store checks its lease) */
    cofre_delivery_state_t state;
    uint32_t attempts;
    uint32_t reversals;
    uint32_t stan;                    /* sent */
    uint64_t sent_at_us;              /* sent */
    const char *response_code;        /* final states; may be NULL */
    const char *auth_id;              /* may be NULL */
    const char *reason;               /* declined / failed; may be NULL */
    const cofre_adapter_dead_t *dead; /* written in the same transaction; may be NULL */
} cofre_adapter_update_t;

/* An unpublished dead letter (owned strings: cofre_adapter_dlq_row_release). */
typedef struct cofre_adapter_dlq_row {
    int64_t seq;
    char *message_key;
    char *payload;
    size_t payload_len;
} cofre_adapter_dlq_row_t;

/* What is still to do (cheap to count: partial indexes). */
typedef struct cofre_adapter_store_stats {
    int64_t pending;
    int64_t sent;
    int64_t dlq_pending; /* dead letters not yet acknowledged by the broker */
} cofre_adapter_store_stats_t;

/* The outcome of one lease round for one partition asked for. */
typedef struct cofre_adapter_lease_result {
    int32_t partition;
    bool held;                               /* this owner holds it now */
    bool taken;                              /* it was not this owner's before the round */
    char owner[COFRE_ADAPTER_OWNER_MAX + 1]; /* the owner before the round ("" none) */
} cofre_adapter_lease_result_t;

typedef struct cofre_adapter_store cofre_adapter_store_t;

typedef struct cofre_adapter_store_ops {
    /* refused/nrefused: partitions not leased (shared stores; NULL for exclusive ones) */
    int (*enqueue)(cofre_adapter_store_t *s, const cofre_adapter_transfer_t *ts, size_t n,
                   const cofre_adapter_dead_t *dead, size_t ndead, size_t *inserted,
                   int32_t *refused, size_t *nrefused);
    int (*load_open)(cofre_adapter_store_t *s, int64_t after_seq, size_t max,
                     cofre_adapter_delivery_t *out, size_t *n);
    /* lost/nlost: as enqueue's refused */
    int (*apply)(cofre_adapter_store_t *s, const cofre_adapter_update_t *u, size_t n, int32_t *lost,
                 size_t *nlost);
    int (*dlq_fetch)(cofre_adapter_store_t *s, size_t max, cofre_adapter_dlq_row_t *out, size_t *n);
    int (*dlq_mark)(cofre_adapter_store_t *s, const int64_t *seqs, size_t n, uint64_t now_us);
    int (*stats)(cofre_adapter_store_t *s, cofre_adapter_store_stats_t *out);
    int (*each)(cofre_adapter_store_t *s, int (*fn)(const cofre_adapter_delivery_t *d, void *data),
                void *data);
    int (*prune)(cofre_adapter_store_t *s, int64_t after_seq, uint64_t before_us, size_t max,
                 int64_t *next_seq, size_t *deleted);
    void (*close)(cofre_adapter_store_t *s);
    /* Shared stores only (NULL in exclusive ones). */
    int (*load_owned)(cofre_adapter_store_t *s, const int32_t *parts, const int64_t *after,
                      size_t nparts, size_t max, cofre_adapter_delivery_t *out, size_t *n);
    int (*lease)(cofre_adapter_store_t *s, const int32_t *claim, size_t nclaim,
                 const int32_t *release, size_t nrelease, uint64_t lease_ms,
                 cofre_adapter_lease_result_t *out);
} cofre_adapter_store_ops_t;

struct cofre_adapter_store {
    const cofre_adapter_store_ops_t *ops;
    bool shared;                             /* several processes: partitions are leased */
    char owner[COFRE_ADAPTER_OWNER_MAX + 1]; /* "" until set_owner */
};

/*
 * Opens a handle on the COFRE_DB url. SQLite: opens the file, creating the schema when missing
 * (unless readonly). PostgreSQL: connects lazily (a database down now may be up in a second:
 * every call fails with COFRE_EUNAVAIL meanwhile and the handle reconnects by itself); the
 * schema is cofre_adapter_store_migrate's job. Returns 0 with *out set; COFRE_EINVAL for a
 * malformed url; COFRE_EUNAVAIL when libpq cannot be loaded; COFRE_EIO when the SQLite file
 * cannot be opened or migrated.
 */
int cofre_adapter_store_open(const char *url, bool readonly, cofre_adapter_store_t **out);

/*
 * Brings the schema to this binary's version. SQLite: what open does. PostgreSQL: the embedded
 * migrations (migrations/legacy/postgres) in one transaction under an advisory lock, so
 * replicas may run it at once; refuses a schema newer than the binary (COFRE_ERANGE). Returns
 * 0, COFRE_EINVAL (url), COFRE_EUNAVAIL (unreachable), COFRE_ERANGE or COFRE_EIO (logged).
 */
int cofre_adapter_store_migrate(const char *url);

/* True when several processes may share the store, and partitions are leased. */
bool cofre_adapter_store_shared(const cofre_adapter_store_t *s);

/* Names this handle's owner (copied, at most COFRE_ADAPTER_OWNER_MAX bytes): required before
 * enqueue, apply, load_owned and lease on a shared store. */
void cofre_adapter_store_set_owner(cofre_adapter_store_t *s, const char *owner);

/*
 * Stores posted transfers as pending deliveries (a transfer id already stored is skipped:
 * events arrive at least once) and dead letters (a source_key already stored is skipped), all
 * in one transaction, durable when this returns 0. *inserted counts new deliveries. Returns
 * 0, COFRE_EINVAL (n or ndead above COFRE_ADAPTER_STORE_BATCH_MAX), COFRE_ECONFLICT (shared
 * store: some transfers' partitions are not leased to this owner; the rest was stored), or
 * COFRE_EIO / COFRE_EUNAVAIL (nothing was stored).
 */
int cofre_adapter_store_enqueue(cofre_adapter_store_t *s, const cofre_adapter_transfer_t *ts,
                                size_t n, const cofre_adapter_dead_t *dead, size_t ndead,
                                size_t *inserted);

/*
 * Like enqueue, but a shared store skips the transfers of partitions whose lease this owner
 * does not hold (returning 0) and lists those partitions in refused (room for n entries; each
 * once) with *nrefused; dead letters are stored whatever their partition. Exclusive stores
 * refuse nothing.
 */
int cofre_adapter_store_enqueue_owned(cofre_adapter_store_t *s, const cofre_adapter_transfer_t *ts,
                                      size_t n, const cofre_adapter_dead_t *dead, size_t ndead,
                                      size_t *inserted, int32_t *refused, size_t *nrefused);

/*
 * Reads up to max deliveries in state pending or sent with seq > after_seq, in seq order,
 * into out. Returns 0 or COFRE_EIO.
 */
int cofre_adapter_store_load_open(cofre_adapter_store_t *s, int64_t after_seq, size_t max,
                                  cofre_adapter_delivery_t *out, size_t *n);

/*
 * Applies every update (and writes their dead letters) in one transaction, durable when this
 * returns 0. Returns 0, COFRE_EINVAL (n too large), COFRE_ECONFLICT (shared store: a partition
 * of the updates is not leased to this owner; nothing changed) or COFRE_EIO / COFRE_EUNAVAIL
 * (nothing changed).
 */
int cofre_adapter_store_apply(cofre_adapter_store_t *s, const cofre_adapter_update_t *u, size_t n);

/*
 * Like apply; on COFRE_ECONFLICT lists the partitions not leased in lost (room for n entries)
 * with *nlost.
 */
int cofre_adapter_store_apply_owned(cofre_adapter_store_t *s, const cofre_adapter_update_t *u,
                                    size_t n, int32_t *lost, size_t *nlost);

/*
 * Shared stores: reads up to max open deliveries (pending or sent) of the partitions parts[i]
 * with seq > after[i], in seq order, into out. Returns 0, COFRE_EINVAL (an exclusive store, or
 * nparts above COFRE_ADAPTER_PARTITIONS_MAX), or COFRE_EIO / COFRE_EUNAVAIL.
 */
int cofre_adapter_store_load_owned(cofre_adapter_store_t *s, const int32_t *parts,
                                   const int64_t *after, size_t nparts, size_t max,
                                   cofre_adapter_delivery_t *out, size_t *n);

/*
 * Shared stores, one transaction: releases the leases of release[] this owner holds (they
 * expire at once), then takes or renews those of claim[] (sorted ascending, distinct) for
 * lease_ms by the database's clock: a lease is taken when nobody holds it, when it is this
 * owner's, or when it expired. out[i] tells claim[i]'s outcome. Returns 0, COFRE_EINVAL (an
 * exclusive store, or more than COFRE_ADAPTER_PARTITIONS_MAX partitions), COFRE_ECONFLICT (a
 * lock wait ran out: try again) or COFRE_EIO / COFRE_EUNAVAIL.
 */
int cofre_adapter_store_lease(cofre_adapter_store_t *s, const int32_t *claim, size_t nclaim,
                              const int32_t *release, size_t nrelease, uint64_t lease_ms,
                              cofre_adapter_lease_result_t *out);

/* Reads up to max unpublished dead letters, oldest first. Returns 0 or COFRE_EIO. */
int cofre_adapter_store_dlq_fetch(cofre_adapter_store_t *s, size_t max,
                                  cofre_adapter_dlq_row_t *out, size_t *n);

/* Frees the strings of a fetched row. */
void cofre_adapter_dlq_row_release(cofre_adapter_dlq_row_t *r);

/* Marks dead letters published (the broker acknowledged them). Returns 0 or COFRE_EIO. */
int cofre_adapter_store_dlq_mark(cofre_adapter_store_t *s, const int64_t *seqs, size_t n,
                                 uint64_t now_us);

/* Counts open deliveries and unpublished dead letters. Returns 0 or COFRE_EIO. */
int cofre_adapter_store_stats(cofre_adapter_store_t *s, cofre_adapter_store_stats_t *out);

/*
 * Calls fn for every delivery in seq order (reconciliation); stops at the first non-zero
 * return of fn and returns it. Returns 0, fn's value, or COFRE_EIO.
 */
int cofre_adapter_store_each(cofre_adapter_store_t *s,
                             int (*fn)(const cofre_adapter_delivery_t *d, void *data), void *data);

/*
 * Retention: looks at up to max deliveries with seq > after_seq, in seq order, stopping at the
 * first stored at or after before_us; deletes the final ones among them (open ones are kept,
 * whatever their age), and the dead letters published before before_us (at most max), in one
 * transaction. *next_seq is where the next call should start (the last seq looked at, or
 * after_seq); *deleted counts deleted deliveries. Returns 0, or COFRE_EIO.
 */
int cofre_adapter_store_prune(cofre_adapter_store_t *s, int64_t after_seq, uint64_t before_us,
                              size_t max, int64_t *next_seq, size_t *deleted);

void cofre_adapter_store_close(cofre_adapter_store_t *s);

/* "pending", "sent", "applied", "declined", "failed". */
const char *cofre_delivery_state_name(cofre_delivery_state_t st);

/* The SQLite implementation (adapter_store_sqlite.c); path is the file. */
int cofre_adapter_store_sqlite_open(const char *path, bool readonly, cofre_adapter_store_t **out);

/* The PostgreSQL implementation (adapter_store_pg.c); url is the libpq URI (libpq loaded). */
int cofre_adapter_store_pg_open(const char *url, bool readonly, cofre_adapter_store_t **out);
int cofre_adapter_store_pg_migrate(const char *url);

#endif
