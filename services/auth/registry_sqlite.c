/*
 * registry_sqlite.c: the registry on SQLite (WAL, synchronous=FULL, see cofre/db.h). Writers
 * take the write lock at BEGIN (BEGIN IMMEDIATE): several hashing workers, the key reloader
 * and the command line may write at once, from several processes, and wait in turn. Every
 * outbox row gets its seq under that lock, so rows become visible in seq order.
 *
 * Processes sharing one database file take turns relaying its outbox through an exclusive
 * lock on the file <db>-relay.lock beside it, which the kernel releases when the holder dies.
 */
#include "auth/registry.h"

#include "cofre/db.h"
#include "cofre/log.h"
#include "cofre/scope.h"
#include "cofre/migrate.h"

#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#define CACHE_KIB 1024

/* migrations/auth/sqlite/, embedded by cmake/embed_migrations.cmake. */
extern const cofre_migration_t cofre_auth_migrations_sqlite[];
extern const size_t cofre_auth_migrations_sqlite_count;

#define CLIENT_COLUMNS "client_id, owner, scopes, secret_hash, coalesce(disabled_at, 0), created_at"

enum {
    Q_BEGIN,
    Q_COMMIT,
    Q_ROLLBACK,
    Q_CLIENT_GET,
    Q_CLIENT_INSERT,
    Q_CLIENT_DISABLE,
    Q_CLIENT_SECRET,
    Q_CLIENT_LIST,
    Q_DISABLED_LIST,
    Q_KEY_INSERT,
    Q_KEY_LIST,
    Q_OUTBOX_INSERT,
    Q_PING,
    Q_OUTBOX_FETCH,
    Q_OUTBOX_MARK,
    Q_OUTBOX_STATS,
    Q_COUNT_
};

static const char *const queries[Q_COUNT_] = {
    [Q_BEGIN] = "BEGIN IMMEDIATE",
    [Q_COMMIT] = "COMMIT",
    [Q_ROLLBACK] = "ROLLBACK",
    [Q_CLIENT_GET] = "SELECT " CLIENT_COLUMNS " FROM clients WHERE client_id = ?1",
    [Q_CLIENT_INSERT] = "INSERT INTO clients (client_id, owner, scopes, secret_hash, created_at, "
                        "secret_changed_at) VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
    [Q_CLIENT_DISABLE] = "UPDATE clients SET disabled_at = ?2 "
                         "WHERE client_id = ?1 AND disabled_at IS NULL",
    [Q_CLIENT_SECRET] = "UPDATE clients SET secret_hash = ?2, secret_changed_at = ?3 "
                        "WHERE client_id = ?1",
    [Q_CLIENT_LIST] = "SELECT " CLIENT_COLUMNS " FROM clients ORDER BY client_id",
    [Q_DISABLED_LIST] = "SELECT " CLIENT_COLUMNS " FROM clients WHERE disabled_at IS NOT NULL "
                        "ORDER BY client_id",
    [Q_KEY_INSERT] = "INSERT INTO signing_keys (kid, public_jwk, created_at, activates_at) "
                     "VALUES (?1, ?4, ?2, ?3)",
    [Q_KEY_LIST] = "SELECT kid, created_at, activates_at, public_jwk FROM signing_keys "
                   "ORDER BY activates_at, created_at, kid",
    [Q_OUTBOX_INSERT] = "INSERT INTO outbox (event_id, topic, partition_key, type, payload, "
                        "traceparent, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    [Q_PING] = "SELECT 1",
    [Q_OUTBOX_FETCH] =
        "SELECT seq, event_id, topic, partition_key, traceparent, payload FROM outbox "
        "WHERE published_at IS NULL AND seq > ?1 ORDER BY seq LIMIT ?2",
    [Q_OUTBOX_MARK] = "UPDATE outbox SET published_at = ?2 WHERE seq = ?1 AND published_at IS NULL",
    [Q_OUTBOX_STATS] = "SELECT count(*), coalesce((julianday('now') - julianday(min(created_at))) "
                       "* 86400.0, 0) FROM outbox WHERE published_at IS NULL",
};

typedef struct sqlite_registry {
    cofre_registry_t base;
    sqlite3 *db;
    sqlite3_stmt *st[Q_COUNT_];
    char *lock_path; /* <db>-relay.lock */
    int lock_fd;     /* >= 0 while this handle holds the relay lock */
} sqlite_registry_t;

static sqlite_registry_t *impl(cofre_registry_t *r)
{
    return (sqlite_registry_t *)r;
}

/* Steps a statement to its end; translates the result. */
static int step_done(sqlite_registry_t *s, sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    int ext = sqlite3_extended_errcode(s->db);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (rc == SQLITE_DONE)
        return 0;
    if (ext == SQLITE_CONSTRAINT_PRIMARYKEY || ext == SQLITE_CONSTRAINT_UNIQUE)
        return COFRE_EEXIST;
    COFRE_LOG(COFRE_LOG_ERROR, NULL, "registry statement failed",
              COFRE_LF_STR("error", sqlite3_errmsg(s->db)), COFRE_LF_STR("sql", sqlite3_sql(st)));
    return rc == SQLITE_BUSY ? COFRE_EUNAVAIL : COFRE_EIO;
}

static void bind_text(sqlite3_stmt *st, int i, const char *s)
{
    sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
}

static int insert_event(sqlite_registry_t *s, const cofre_event_t *ev)
{
    char now[COFRE_TIME_LEN + 1];
    cofre_time_format(cofre_now_wall_us(), now);
    sqlite3_stmt *st = s->st[Q_OUTBOX_INSERT];
    bind_text(st, 1, ev->event_id);
    bind_text(st, 2, COFRE_REGISTRY_TOPIC);
    bind_text(st, 3, ev->partition_key);
    bind_text(st, 4, ev->type);
    sqlite3_bind_text(st, 5, ev->payload, (int)ev->payload_len, SQLITE_STATIC);
    bind_text(st, 6, ev->traceparent);
    bind_text(st, 7, now);
    return step_done(s, st);
}

/* Runs st (bound by the caller) and ev's outbox row in one transaction. A statement that
 * changed no row answers COFRE_ENOENT and rolls back. */
static int write_with_event(sqlite_registry_t *s, sqlite3_stmt *st, const cofre_event_t *ev)
{
    int rc = step_done(s, s->st[Q_BEGIN]);
    if (rc != 0) {
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
        return rc;
    }
    rc = step_done(s, st);
    if (rc == 0 && sqlite3_changes(s->db) == 0)
        rc = COFRE_ENOENT;
    if (rc == 0 && ev != NULL)
        rc = insert_event(s, ev);
    if (rc == 0)
        rc = step_done(s, s->st[Q_COMMIT]);
    if (rc != 0)
        step_done(s, s->st[Q_ROLLBACK]);
    return rc;
}

static void read_client(sqlite3_stmt *st, cofre_client_t *c)
{
    memset(c, 0, sizeof(*c));
    snprintf(c->client_id, sizeof(c->client_id), "%s", sqlite3_column_text(st, 0));
    snprintf(c->owner, sizeof(c->owner), "%s", sqlite3_column_text(st, 1));
    const char *scopes = (const char *)sqlite3_column_text(st, 2);
    if (scopes == NULL || !cofre_scope_parse(scopes, strlen(scopes), &c->scopes, NULL))
        c->scopes = 0;
    snprintf(c->secret_hash, sizeof(c->secret_hash), "%s", sqlite3_column_text(st, 3));
    c->disabled_at = sqlite3_column_int64(st, 4);
    snprintf(c->created_at, sizeof(c->created_at), "%s", sqlite3_column_text(st, 5));
}

static int client_get(cofre_registry_t *r, const char *client_id, cofre_client_t *out)
{
    sqlite_registry_t *s = impl(r);
    sqlite3_stmt *st = s->st[Q_CLIENT_GET];
    bind_text(st, 1, client_id);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        read_client(st, out);
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
        return 0;
    }
    if (rc != SQLITE_DONE)
        return step_done(s, st);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return COFRE_ENOENT;
}

static int client_insert(cofre_registry_t *r, const cofre_client_t *c, const cofre_event_t *ev)
{
    sqlite_registry_t *s = impl(r);
    char scopes[COFRE_SCOPE_LIST_MAX];
    cofre_scope_format(c->scopes, scopes);
    sqlite3_stmt *st = s->st[Q_CLIENT_INSERT];
    bind_text(st, 1, c->client_id);
    bind_text(st, 2, c->owner);
    bind_text(st, 3, scopes);
    bind_text(st, 4, c->secret_hash);
    bind_text(st, 5, c->created_at);
    return write_with_event(s, st, ev);
}

static int client_update(cofre_registry_t *r, const cofre_client_t *c, cofre_client_change_t change,
                         const cofre_event_t *ev)
{
    sqlite_registry_t *s = impl(r);
    sqlite3_stmt *st;
    if (change == COFRE_CLIENT_DISABLE) {
        st = s->st[Q_CLIENT_DISABLE];
        bind_text(st, 1, c->client_id);
        sqlite3_bind_int64(st, 2, c->disabled_at);
    } else {
        char now[COFRE_TIME_LEN + 1];
        cofre_time_format(cofre_now_wall_us(), now);
        st = s->st[Q_CLIENT_SECRET];
        bind_text(st, 1, c->client_id);
        bind_text(st, 2, c->secret_hash);
        sqlite3_bind_text(st, 3, now, -1, SQLITE_TRANSIENT);
    }
    return write_with_event(s, st, ev);
}

static int list_clients(sqlite_registry_t *s, sqlite3_stmt *st,
                        bool (*fn)(const cofre_client_t *c, void *data), void *data)
{
    int rc;
    size_t n = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW && n++ < COFRE_REGISTRY_CLIENTS_MAX) {
        cofre_client_t c;
        read_client(st, &c);
        if (!fn(&c, data)) {
            rc = SQLITE_DONE;
            break;
        }
    }
    if (rc == SQLITE_ROW)
        rc = SQLITE_DONE; /* the bound was reached */
    if (rc == SQLITE_DONE) {
        sqlite3_reset(st);
        return 0;
    }
    return step_done(s, st);
}

static int client_list(cofre_registry_t *r, bool (*fn)(const cofre_client_t *c, void *data),
                       void *data)
{
    sqlite_registry_t *s = impl(r);
    return list_clients(s, s->st[Q_CLIENT_LIST], fn, data);
}

static int disabled_list(cofre_registry_t *r, bool (*fn)(const cofre_client_t *c, void *data),
                         void *data)
{
    sqlite_registry_t *s = impl(r);
    return list_clients(s, s->st[Q_DISABLED_LIST], fn, data);
}

static int key_insert(cofre_registry_t *r, const cofre_key_record_t *k, const cofre_event_t *ev)
{
    sqlite_registry_t *s = impl(r);
    sqlite3_stmt *st = s->st[Q_KEY_INSERT];
    bind_text(st, 1, k->kid);
    sqlite3_bind_int64(st, 2, k->created_at);
    sqlite3_bind_int64(st, 3, k->activates_at);
    bind_text(st, 4, k->public_jwk);
    return write_with_event(s, st, ev);
}

static int key_list(cofre_registry_t *r, cofre_key_record_t *out, size_t max, size_t *n)
{
    sqlite_registry_t *s = impl(r);
    sqlite3_stmt *st = s->st[Q_KEY_LIST];
    *n = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (*n == max) {
            /* Keep the newest max: the list is oldest first. */
            memmove(out, out + 1, (max - 1) * sizeof(*out));
            (*n)--;
        }
        cofre_key_record_t *k = &out[(*n)++];
        snprintf(k->kid, sizeof(k->kid), "%s", sqlite3_column_text(st, 0));
        k->created_at = sqlite3_column_int64(st, 1);
        k->activates_at = sqlite3_column_int64(st, 2);
        snprintf(k->public_jwk, sizeof(k->public_jwk), "%s", sqlite3_column_text(st, 3));
    }
    if (rc == SQLITE_DONE) {
        sqlite3_reset(st);
        return 0;
    }
    return step_done(s, st);
}

static int event_insert(cofre_registry_t *r, const cofre_event_t *ev)
{
    return insert_event(impl(r), ev);
}

static bool ping(cofre_registry_t *r)
{
    sqlite_registry_t *s = impl(r);
    int rc = sqlite3_step(s->st[Q_PING]);
    sqlite3_reset(s->st[Q_PING]);
    return rc == SQLITE_ROW;
}

/* ---- the relay's side ------------------------------------------------------------------ */

/* A statement whose step answered rc (not a row, not done): logged, reset and translated. */
static int step_failed(sqlite_registry_t *s, sqlite3_stmt *st, int rc)
{
    COFRE_LOG(COFRE_LOG_ERROR, NULL, "registry statement failed",
              COFRE_LF_STR("error", sqlite3_errmsg(s->db)), COFRE_LF_STR("sql", sqlite3_sql(st)));
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc == SQLITE_BUSY || rc == SQLITE_LOCKED ? COFRE_EUNAVAIL : COFRE_EIO;
}

static void copy_text(sqlite3_stmt *st, int col, char *out, size_t size)
{
    const unsigned char *v = sqlite3_column_text(st, col);
    snprintf(out, size, "%s", v != NULL ? (const char *)v : "");
}

static int outbox_fetch(cofre_registry_t *r, int64_t after_seq, size_t max, cofre_relay_row_t *out,
                        size_t *n)
{
    sqlite_registry_t *s = impl(r);
    sqlite3_stmt *st = s->st[Q_OUTBOX_FETCH];
    sqlite3_bind_int64(st, 1, after_seq);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)max);
    int rc = SQLITE_DONE;
    *n = 0;
    while (*n < max && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        cofre_relay_row_t *o = &out[(*n)++];
        o->seq = sqlite3_column_int64(st, 0);
        copy_text(st, 1, o->event_id, sizeof(o->event_id));
        copy_text(st, 2, o->topic, sizeof(o->topic));
        copy_text(st, 3, o->key, sizeof(o->key));
        copy_text(st, 4, o->traceparent, sizeof(o->traceparent));
        o->payload_len = (size_t)sqlite3_column_bytes(st, 5);
        o->payload = cofre_strndup((const char *)sqlite3_column_text(st, 5), o->payload_len);
    }
    if (*n == max)
        rc = SQLITE_DONE;
    if (rc == SQLITE_DONE) {
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
        return 0;
    }
    return step_failed(s, st, rc); /* the rows read so far are the caller's to free */
}

static int outbox_mark(cofre_registry_t *r, const int64_t *seqs, size_t n)
{
    sqlite_registry_t *s = impl(r);
    char now[COFRE_TIME_LEN + 1];
    cofre_time_format(cofre_now_wall_us(), now);
    int rc = step_done(s, s->st[Q_BEGIN]);
    sqlite3_stmt *st = s->st[Q_OUTBOX_MARK];
    for (size_t i = 0; rc == 0 && i < n; i++) {
        sqlite3_bind_int64(st, 1, seqs[i]);
        bind_text(st, 2, now);
        rc = step_done(s, st);
    }
    if (rc == 0)
        return step_done(s, s->st[Q_COMMIT]);
    if (!sqlite3_get_autocommit(s->db))
        step_done(s, s->st[Q_ROLLBACK]);
    return rc;
}

static int outbox_stats(cofre_registry_t *r, int64_t *pending, double *oldest_age_s)
{
    sqlite_registry_t *s = impl(r);
    sqlite3_stmt *st = s->st[Q_OUTBOX_STATS];
    *pending = 0;
    *oldest_age_s = 0;
    int rc = sqlite3_step(st);
    if (rc != SQLITE_ROW)
        return step_failed(s, st, rc);
    *pending = sqlite3_column_int64(st, 0);
    double age = sqlite3_column_double(st, 1);
    *oldest_age_s = age > 0 ? age : 0;
    sqlite3_reset(st);
    return 0;
}

static int relay_claim(cofre_registry_t *r, const char *holder)
{
    (void)holder; /* the lock belongs to this process */
    sqlite_registry_t *s = impl(r);
    if (s->lock_fd >= 0)
        return 0;
    int fd = open(s->lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        COFRE_LOG(COFRE_LOG_ERROR, NULL, "cannot open the relay lock file",
                  COFRE_LF_STR("path", s->lock_path), COFRE_LF_STR("error", strerror(errno)));
        return COFRE_EIO;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int busy = errno == EWOULDBLOCK;
        close(fd);
        return busy ? COFRE_EEXIST : COFRE_EIO;
    }
    s->lock_fd = fd;
    return 0;
}

static void relay_release(cofre_registry_t *r, const char *holder)
{
    (void)holder;
    sqlite_registry_t *s = impl(r);
    if (s->lock_fd >= 0)
        close(s->lock_fd); /* releases the lock */
    s->lock_fd = -1;
}

static void close_registry(cofre_registry_t *r)
{
    sqlite_registry_t *s = impl(r);
    relay_release(r, NULL);
    for (size_t i = 0; i < Q_COUNT_; i++)
        sqlite3_finalize(s->st[i]);
    sqlite3_close(s->db);
    free(s->lock_path);
    free(s);
}

static const cofre_registry_ops_t sqlite_ops = {
    .close = close_registry,
    .client_get = client_get,
    .client_insert = client_insert,
    .client_update = client_update,
    .client_list = client_list,
    .disabled_list = disabled_list,
    .key_insert = key_insert,
    .key_list = key_list,
    .event_insert = event_insert,
    .ping = ping,
    .outbox_fetch = outbox_fetch,
    .outbox_mark = outbox_mark,
    .outbox_stats = outbox_stats,
    .relay_claim = relay_claim,
    .relay_release = relay_release,
};

int cofre_registry_sqlite_open(const char *path, cofre_registry_t **out)
{
    sqlite3 *db = cofre_db_sqlite_open(path, false, CACHE_KIB);
    if (db == NULL)
        return COFRE_EUNAVAIL;
    sqlite_registry_t *s = cofre_calloc(1, sizeof(*s));
    s->base.ops = &sqlite_ops;
    s->db = db;
    size_t len = strlen(path) + sizeof("-relay.lock");
    s->lock_path = cofre_malloc(len);
    snprintf(s->lock_path, len, "%s-relay.lock", path);
    s->lock_fd = -1;
    for (size_t i = 0; i < Q_COUNT_; i++)
        s->st[i] = cofre_db_sqlite_prepare(db, queries[i]);
    *out = &s->base;
    return 0;
}

/* ---- migrations ------------------------------------------------------------------------- */

int cofre_registry_sqlite_migrate(const char *path)
{
    sqlite3 *db = cofre_db_sqlite_open(path, false, CACHE_KIB);
    if (db == NULL)
        return COFRE_EUNAVAIL;
    const cofre_migrations_t m = {"cofre-auth", cofre_auth_migrations_sqlite,
                                  cofre_auth_migrations_sqlite_count, NULL, NULL};
    int rc = cofre_migrate_sqlite(db, &m);
    sqlite3_close(db);
    return rc;
}
