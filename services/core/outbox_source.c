/*
 * outbox_source.c: the ledger store's outbox behind the relay's source interface, with one
 * relay per outbox whatever the number of cofre-core replicas: the others stand by (open
 * answers COFRE_EEXIST) and take over within seconds when the relaying one ends.
 *
 * SQLite: an exclusive flock on a file beside the database, released by the kernel when the
 * holder dies.
 *
 * PostgreSQL: a transaction-level advisory lock held in a transaction kept open on a
 * connection of the relay's own (the lock connection). It holds no snapshot between
 * statements (READ COMMITTED, and the simple query protocol: the extended one's unnamed portal
 * would keep its snapshot until the next statement) and touches no table, so it holds back
 * neither vacuum nor DDL;
 * and as a transaction it keeps its server connection through PgBouncer in transaction mode
 * too (which a session-level lock would not). The relay relays only while the lock is known
 * to be held: a heartbeat on that transaction every second, and a lease of 5 s since the last
 * heartbeat that succeeded. The server ends the transaction, and so releases the lock, when
 * the holder's connection closes (the process died) or when it stays silent for 10 s
 * (idle_in_transaction_session_timeout: a frozen or cut-off holder), always after the holder
 * stopped trusting its lease. A standby tries to take the lock every backoff_max_ms of the
 * relay; a holder that lost it relays nothing (its fetch finds no rows) and tries again every
 * second. Rows in flight at a takeover may be published by both: at-least-once, as always.
 */
#include "core/outbox_source.h"

#include "cofre/common.h"
#include "cofre/db.h"
#include "cofre/log.h"
#include "cofre/pg.h"
#include "core/store.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

/* PostgreSQL's relay lock (see above). The key is "cofrerel" in ASCII. */
#define RELAY_LOCK_KEY    "7165064481618159980"
#define LOCK_HEARTBEAT_NS (1000 * 1000000ull)
#define LOCK_LEASE_NS     (5000 * 1000000ull)
#define LOCK_RETRY_NS     (1000 * 1000000ull)
#define LOCK_ROUND_MS     2000
#define LOCK_TXN_SETTINGS                                                                          \
    "SELECT set_config('idle_in_transaction_session_timeout', '10s', true), "                      \
    "set_config('statement_timeout', '2s', true)"

struct cofre_outbox_source {
    char *db_url;
    char *lock_path; /* SQLite: the file whose lock makes one process the relay */
    int lock_fd;
    bool pg;                   /* PostgreSQL: the advisory lock below */
    cofre_pg_t *lock_pg;       /* the lock connection */
    bool lock_held;            /* the lock was held at lock_ok_ns */
    uint64_t lock_ok_ns;       /* when the last heartbeat that succeeded was sent */
    uint64_t lock_retry_ns;    /* lost: no attempt to take it again before this */
    cofre_store_t *store;      /* fetch and stats, on the relay thread */
    cofre_store_t *mark_store; /* marks, on the relay's marker thread */
    cofre_outbox_row_t *rows;  /* the store's rows, converted to the relay's */
    size_t rows_cap;
};

/*
 * SQLite: processes sharing one database file (make run's two core replicas) take turns
 * relaying its outbox through an exclusive lock on a file beside it, released by the kernel
 * when the holder dies.
 */
static int take_relay_lock(cofre_outbox_source_t *s)
{
    if (s->lock_path == NULL || s->lock_fd >= 0)
        return 0;
    int fd = open(s->lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return COFRE_EIO;
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int busy = errno == EWOULDBLOCK;
        close(fd);
        return busy ? COFRE_EEXIST : COFRE_EIO;
    }
    s->lock_fd = fd;
    return 0;
}

/* Ends the lock's transaction (closing the connection releases the lock at once). */
static void drop_pg_lock(cofre_outbox_source_t *s)
{
    if (s->lock_pg != NULL)
        cofre_pg_disconnect(s->lock_pg);
    s->lock_held = false;
}

/*
 * PostgreSQL: opens the lock's transaction and tries the lock. Returns 0 when held,
 * COFRE_EEXIST when another replica holds it, or a connection error.
 */
static int take_pg_lock(cofre_outbox_source_t *s)
{
    if (s->lock_pg == NULL)
        s->lock_pg = cofre_pg_new(&(cofre_pg_config_t){
            .url = s->db_url,
            .application_name = "cofre-core relay lock",
            .connect_timeout_ms = LOCK_ROUND_MS,
            .round_timeout_ms = LOCK_ROUND_MS,
            .pipeline = false, /* the simple protocol: no portal keeps a snapshot */
        });
    uint64_t sent = cofre_now_mono_ns();
    cofre_pg_add(s->lock_pg, "BEGIN; " LOCK_TXN_SETTINGS, NULL, 0);
    int rc = cofre_pg_exchange(s->lock_pg, true);
    if (rc == 0) {
        cofre_pg_add(s->lock_pg, "SELECT pg_try_advisory_xact_lock(" RELAY_LOCK_KEY ")", NULL, 0);
        rc = cofre_pg_exchange(s->lock_pg, false);
    }
    const PGresult *r = rc == 0 ? cofre_pg_result(s->lock_pg, 0) : NULL;
    if (r != NULL && PQntuples(r) == 1 && PQgetvalue(r, 0, 0)[0] == 't') {
        s->lock_held = true;
        s->lock_ok_ns = sent;
        return 0;
    }
    if (rc == 0) { /* held by another replica: end the transaction, keep the connection */
        cofre_pg_add(s->lock_pg, "ROLLBACK", NULL, 0);
        if (cofre_pg_exchange(s->lock_pg, false) == 0)
            return COFRE_EEXIST;
    }
    drop_pg_lock(s);
    return rc != 0 ? rc : COFRE_EEXIST;
}

/* Renews the lease: one statement in the lock's transaction. */
static void heartbeat_pg_lock(cofre_outbox_source_t *s, uint64_t now)
{
    cofre_pg_add(s->lock_pg, "SELECT 1", NULL, 0);
    if (cofre_pg_exchange(s->lock_pg, false) == 0 && cofre_pg_in_transaction(s->lock_pg))
        s->lock_ok_ns = now;
    else
        s->lock_ok_ns = 0; /* the transaction, and so the lock, is gone */
}

/*
 * True while this process may relay: always for SQLite (its flock is held since open); for
 * PostgreSQL while the lease is fresh, renewing it when due and taking the lock again (at
 * most every LOCK_RETRY_NS) after it was lost.
 */
static bool may_relay(cofre_outbox_source_t *s)
{
    if (!s->pg)
        return true;
    uint64_t now = cofre_now_mono_ns();
    if (!s->lock_held) {
        if (now < s->lock_retry_ns)
            return false;
        s->lock_retry_ns = now + LOCK_RETRY_NS;
        if (take_pg_lock(s) != 0)
            return false;
        cofre_log_msg(COFRE_LOG_INFO, NULL, "outbox relay: relay lock taken again; relaying");
        return true;
    }
    if (now - s->lock_ok_ns >= LOCK_HEARTBEAT_NS)
        heartbeat_pg_lock(s, now);
    if (s->lock_ok_ns != 0 && now - s->lock_ok_ns < LOCK_LEASE_NS)
        return true;
    cofre_log_msg(COFRE_LOG_WARN, NULL,
                  "outbox relay: lost the relay lock (its connection failed); standing by");
    drop_pg_lock(s);
    s->lock_retry_ns = now + LOCK_RETRY_NS;
    return false;
}

static int source_open(void *data)
{
    cofre_outbox_source_t *s = data;
    int rc = s->pg ? (s->lock_held ? 0 : take_pg_lock(s)) : take_relay_lock(s);
    if (rc != 0)
        return rc;
    rc = s->store != NULL ? 0 : cofre_store_open(s->db_url, false, &s->store);
    if (rc == 0 && s->mark_store == NULL)
        rc = cofre_store_open(s->db_url, false, &s->mark_store);
    return rc;
}

static void copy_field(char *dst, size_t size, const char *src)
{
    snprintf(dst, size, "%s", src);
}

static int source_fetch(void *data, int64_t after_seq, size_t max, cofre_relay_row_t *out,
                        size_t *n)
{
    cofre_outbox_source_t *s = data;
    if (!may_relay(s)) {
        *n = 0; /* another replica relays these rows now */
        return 0;
    }
    if (max > s->rows_cap) {
        s->rows = cofre_realloc(s->rows, max * sizeof(*s->rows));
        s->rows_cap = max;
    }
    size_t got = 0;
    int rc = s->store->ops->outbox_fetch(s->store, after_seq, max, s->rows, &got);
    for (size_t i = 0; i < got; i++) {
        cofre_outbox_row_t *in = &s->rows[i];
        cofre_relay_row_t *o = &out[i];
        o->seq = in->seq;
        copy_field(o->event_id, sizeof(o->event_id), in->event_id);
        copy_field(o->topic, sizeof(o->topic), in->topic);
        copy_field(o->key, sizeof(o->key), in->partition_key);
        copy_field(o->traceparent, sizeof(o->traceparent), in->traceparent);
        o->payload = in->payload; /* handed over */
        o->payload_len = in->payload_len;
    }
    *n = got;
    return rc;
}

static int source_mark(void *data, const int64_t *seqs, size_t n)
{
    cofre_outbox_source_t *s = data;
    return s->mark_store->ops->outbox_mark_published(s->mark_store, seqs, n);
}

static int source_stats(void *data, int64_t *pending, double *oldest_age_s)
{
    cofre_outbox_source_t *s = data;
    may_relay(s); /* the lease is renewed here too while publishing waits (brokers down) */
    return s->store->ops->outbox_stats(s->store, pending, oldest_age_s);
}

static void source_close(void *data)
{
    cofre_outbox_source_t *s = data;
    if (s->store != NULL)
        cofre_store_close(s->store);
    if (s->mark_store != NULL)
        cofre_store_close(s->mark_store);
    s->store = s->mark_store = NULL;
    if (s->lock_fd >= 0)
        close(s->lock_fd); /* releases the lock */
    s->lock_fd = -1;
    drop_pg_lock(s);
}

cofre_outbox_source_t *cofre_outbox_source_new(const char *db_url, cofre_relay_source_t *src)
{
    cofre_outbox_source_t *s = cofre_calloc(1, sizeof(*s));
    s->db_url = cofre_strdup(db_url);
    s->lock_fd = -1;
    cofre_db_kind_t kind = COFRE_DB_POSTGRES;
    const char *target = NULL;
    cofre_db_parse_url(db_url, &kind, &target);
    s->pg = kind == COFRE_DB_POSTGRES;
    if (kind == COFRE_DB_SQLITE) {
        size_t len = strlen(target) + sizeof("-relay.lock");
        s->lock_path = cofre_malloc(len);
        snprintf(s->lock_path, len, "%s-relay.lock", target);
    }
    *src = (cofre_relay_source_t){
        .name = "ledger",
        .ordered = kind == COFRE_DB_SQLITE, /* one committer: commit order is seq order */
        .open = source_open,
        .fetch = source_fetch,
        .mark = source_mark,
        .stats = source_stats,
        .close = source_close,
        .data = s,
    };
    return s;
}

void cofre_outbox_source_free(cofre_outbox_source_t *s)
{
    if (s == NULL)
        return;
    source_close(s);
    cofre_pg_free(s->lock_pg);
    free(s->rows);
    free(s->lock_path);
    free(s->db_url);
    free(s);
}
