/*
 * registry_pg.c: the registry on PostgreSQL, for production: several cofre-auth replicas on one
 * database (directly or through PgBouncer in transaction pooling mode) behave as one service.
 * The clients, the signing keys' public records and the outbox are shared, so a client added
 * or disabled through any replica, or a key rotated by the command line, is seen by every
 * replica within one reload (COFRE_ISSUER_RELOAD_MS).
 *
 * Every change and its outbox row are ONE statement (a data-modifying WITH whose event row is
 * inserted from the changed row), so they commit together, and a change that touched no row
 * writes no event. Statements are unnamed and no session state survives a statement, which is
 * what PgBouncer's transaction mode needs; the connection layer (cofre/pg.h) connects lazily,
 * bounds every wait, fails fast while the database is away and reconnects with backoff.
 */
#include "auth/registry.h"

#include "cofre/common.h"
#include "cofre/log.h"
#include "cofre/pg.h"
#include "cofre/scope.h"
#include "cofre/migrate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* migrations/auth/postgres/, embedded by cmake/embed_migrations.cmake. */
extern const cofre_migration_t cofre_auth_migrations_postgres[];
extern const size_t cofre_auth_migrations_postgres_count;

#define CONNECT_TIMEOUT_MS 2000
#define ROUND_TIMEOUT_MS   5000
#define BACKOFF_MAX_MS     2000
#define LIST_PAGE          500 /* clients read per round by the list calls */
/* pg_advisory_xact_lock key of `cofre-auth migrate` ("cofreaut" in ASCII). */
#define MIGRATE_LOCK_KEY "7165058173682939252"
/* The relay_leases row of this outbox. */
#define LEASE_NAME "auth-outbox"

#define STR_(x) #x
#define STR(x)  STR_(x)

#define PG_TIME(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
#define PG_UNIX(col) "floor(extract(epoch FROM " col "))::int8"
#define CLIENT_COLUMNS                                                                             \
    "client_id, owner, scopes, secret_hash, COALESCE(" PG_UNIX("disabled_at") ", 0), " PG_TIME(    \
        "created_at")
/* The event's parameters are always $1..$6; the change's follow from $7. */
#define EVENT_FROM(src)                                                                            \
    " INSERT INTO outbox (event_id, topic, partition_key, type, payload, traceparent, "            \
    "created_at) SELECT $1::uuid, $2, $3, $4, $5, $6, clock_timestamp() FROM " src
#define EVENT_PARAMS 6

static const char sql_client_get[] = "SELECT " CLIENT_COLUMNS " FROM clients WHERE client_id = $1";
static const char sql_client_insert[] =
    "WITH c AS (INSERT INTO clients (client_id, owner, scopes, secret_hash, created_at, "
    "secret_changed_at) VALUES ($7, $8, $9, $10, $11::timestamptz, $11::timestamptz) "
    "RETURNING client_id)" EVENT_FROM("c");
static const char sql_client_disable[] =
    "WITH c AS (UPDATE clients SET disabled_at = to_timestamp($8::int8) WHERE client_id = $7 "
    "AND disabled_at IS NULL RETURNING client_id)" EVENT_FROM("c");
static const char sql_client_secret[] =
    "WITH c AS (UPDATE clients SET secret_hash = $8, secret_changed_at = clock_timestamp() "
    "WHERE client_id = $7 RETURNING client_id)" EVENT_FROM("c");
static const char sql_clients_page[] =
    "SELECT " CLIENT_COLUMNS " FROM clients "
    "WHERE client_id > $1 ORDER BY client_id LIMIT " STR(LIST_PAGE);
static const char sql_disabled_page[] =
    "SELECT " CLIENT_COLUMNS " FROM clients WHERE disabled_at IS NOT NULL AND client_id > $1 "
    "ORDER BY client_id LIMIT " STR(LIST_PAGE);
static const char sql_key_insert[] =
    "WITH k AS (INSERT INTO signing_keys (kid, public_jwk, created_at, activates_at) VALUES "
    "($7, $8, to_timestamp($9::int8), to_timestamp($10::int8)) RETURNING kid)" EVENT_FROM("k");
/* The newest max, newest first; key_list turns them around. */
static const char sql_key_list[] = "SELECT kid, " PG_UNIX("created_at") ", " PG_UNIX(
    "activates_at") ", public_jwk "
                    "FROM signing_keys ORDER BY activates_at DESC, created_at DESC, kid COLLATE "
                    "\"C\" DESC "
                    "LIMIT $1::int8";
static const char sql_event_insert[] =
    "INSERT INTO outbox (event_id, topic, partition_key, type, payload, traceparent, created_at) "
    "VALUES ($1::uuid, $2, $3, $4, $5, $6, clock_timestamp())";

static const char sql_outbox_fetch[] =
    "SELECT seq, event_id, topic, partition_key, traceparent, payload FROM outbox "
    "WHERE published_at IS NULL AND seq > $1::int8 ORDER BY seq LIMIT $2::int8";
static const char sql_outbox_mark[] = "UPDATE outbox SET published_at = clock_timestamp() "
                                      "WHERE seq = ANY($1::int8[]) AND published_at IS NULL";
static const char sql_outbox_stats[] =
    "SELECT count(*), COALESCE(EXTRACT(EPOCH FROM clock_timestamp() - min(created_at)), 0)"
    "::float8 FROM outbox WHERE published_at IS NULL";
/* Taken when free or expired, renewed by its holder; no row back: another holds it. */
static const char sql_relay_claim[] =
    "INSERT INTO relay_leases AS l (name, holder, expires_at) VALUES ('" LEASE_NAME "', $1, "
    "clock_timestamp() + interval '" STR(
        COFRE_REGISTRY_LEASE_S) " seconds') "
                                "ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, "
                                "expires_at = EXCLUDED.expires_at "
                                "WHERE l.holder = EXCLUDED.holder OR l.expires_at < "
                                "clock_timestamp() RETURNING holder";
static const char sql_relay_release[] =
    "UPDATE relay_leases SET expires_at = clock_timestamp() WHERE name = '" LEASE_NAME "' "
    "AND holder = $1 AND expires_at > clock_timestamp()";

typedef struct pg_registry {
    cofre_registry_t base;
    cofre_pg_t *pg;
} pg_registry_t;

static pg_registry_t *impl(cofre_registry_t *r)
{
    return (pg_registry_t *)r;
}

/* Runs one statement; *res is its result on success. Reads may be resent once on a connection
 * found broken while idle; writes never are (their first sending may have committed). */
static int run(pg_registry_t *s, const char *sql, const cofre_pg_param_t *p, int n, bool read,
               const PGresult **res)
{
    cofre_pg_add(s->pg, sql, p, n);
    int rc = cofre_pg_exchange(s->pg, read);
    *res = rc == 0 ? cofre_pg_result(s->pg, 0) : NULL;
    return rc;
}

/* The registry's answer for a failed write: a taken key is COFRE_EEXIST; a conflict the
 * caller could redo (a lock or serialization failure) is reported as unavailable. */
static int write_error(const pg_registry_t *s, int rc)
{
    if (rc == COFRE_ECONFLICT && strcmp(cofre_pg_sqlstate(s->pg), "23505") == 0)
        return COFRE_EEXIST;
    return rc == COFRE_ECONFLICT ? COFRE_EUNAVAIL : rc;
}

/* Fills p[0..EVENT_PARAMS) from ev (borrowed). */
static void event_params(const cofre_event_t *ev, cofre_pg_param_t *p)
{
    p[0] = COFRE_PG_TEXT(ev->event_id);
    p[1] = COFRE_PG_TEXT(COFRE_REGISTRY_TOPIC);
    p[2] = COFRE_PG_TEXT(ev->partition_key);
    p[3] = COFRE_PG_TEXT(ev->type);
    p[4] = COFRE_PG_TEXT(ev->payload); /* NUL-terminated JSON */
    p[5] = COFRE_PG_TEXT(ev->traceparent[0] != '\0' ? ev->traceparent : NULL);
}

/* Runs a change with its event (p[0..EVENT_PARAMS) are filled here); a change that touched no
 * row is COFRE_ENOENT, and wrote no event. */
static int write_with_event(pg_registry_t *s, const char *sql, cofre_pg_param_t *p, int n,
                            const cofre_event_t *ev)
{
    COFRE_ASSERT(ev != NULL && ev->payload != NULL && n <= COFRE_PG_PARAMS_MAX);
    event_params(ev, p);
    const PGresult *r;
    int rc = run(s, sql, p, n, false, &r);
    if (rc != 0)
        return write_error(s, rc);
    return strcmp(PQcmdTuples((PGresult *)r), "0") == 0 ? COFRE_ENOENT : 0;
}

static void read_client(const PGresult *r, int row, cofre_client_t *c)
{
    memset(c, 0, sizeof(*c));
    cofre_pg_copy(r, row, 0, c->client_id, sizeof(c->client_id));
    cofre_pg_copy(r, row, 1, c->owner, sizeof(c->owner));
    const char *scopes = PQgetvalue(r, row, 2);
    if (!cofre_scope_parse(scopes, strlen(scopes), &c->scopes, NULL))
        c->scopes = 0;
    cofre_pg_copy(r, row, 3, c->secret_hash, sizeof(c->secret_hash));
    c->disabled_at = cofre_pg_int64(r, row, 4);
    cofre_pg_copy(r, row, 5, c->created_at, sizeof(c->created_at));
}

static int client_get(cofre_registry_t *base, const char *client_id, cofre_client_t *out)
{
    const cofre_pg_param_t p[] = {COFRE_PG_TEXT(client_id)};
    const PGresult *r;
    int rc = run(impl(base), sql_client_get, p, 1, true, &r);
    if (rc != 0)
        return rc == COFRE_ECONFLICT ? COFRE_EUNAVAIL : rc;
    if (PQntuples(r) == 0)
        return COFRE_ENOENT;
    read_client(r, 0, out);
    return 0;
}

static int client_insert(cofre_registry_t *base, const cofre_client_t *c, const cofre_event_t *ev)
{
    char scopes[COFRE_SCOPE_LIST_MAX];
    cofre_scope_format(c->scopes, scopes);
    cofre_pg_param_t p[EVENT_PARAMS + 5];
    p[6] = COFRE_PG_TEXT(c->client_id);
    p[7] = COFRE_PG_TEXT(c->owner);
    p[8] = COFRE_PG_TEXT(scopes);
    p[9] = COFRE_PG_TEXT(c->secret_hash);
    p[10] = COFRE_PG_TEXT(c->created_at);
    return write_with_event(impl(base), sql_client_insert, p, EVENT_PARAMS + 5, ev);
}

static int client_update(cofre_registry_t *base, const cofre_client_t *c,
                         cofre_client_change_t change, const cofre_event_t *ev)
{
    cofre_pg_param_t p[EVENT_PARAMS + 2];
    char disabled_at[24];
    p[6] = COFRE_PG_TEXT(c->client_id);
    if (change == COFRE_CLIENT_DISABLE) {
        snprintf(disabled_at, sizeof(disabled_at), "%lld", (long long)c->disabled_at);
        p[7] = COFRE_PG_TEXT(disabled_at);
        return write_with_event(impl(base), sql_client_disable, p, EVENT_PARAMS + 2, ev);
    }
    p[7] = COFRE_PG_TEXT(c->secret_hash);
    return write_with_event(impl(base), sql_client_secret, p, EVENT_PARAMS + 2, ev);
}

/* Walks sql's pages (keyset on client_id), calling fn per client, at most CLIENTS_MAX. */
static int list_pages(pg_registry_t *s, const char *sql,
                      bool (*fn)(const cofre_client_t *c, void *data), void *data)
{
    char after[COFRE_CLIENT_ID_MAX + 1] = "";
    size_t seen = 0;
    for (;;) {
        const cofre_pg_param_t p[] = {COFRE_PG_TEXT(after)};
        const PGresult *r;
        int rc = run(s, sql, p, 1, true, &r);
        if (rc != 0)
            return rc == COFRE_ECONFLICT ? COFRE_EUNAVAIL : rc;
        int rows = PQntuples(r);
        for (int row = 0; row < rows; row++) {
            cofre_client_t c;
            read_client(r, row, &c);
            if (!fn(&c, data) || ++seen >= COFRE_REGISTRY_CLIENTS_MAX)
                return 0;
            memcpy(after, c.client_id, sizeof(after));
        }
        if (rows < LIST_PAGE)
            return 0;
    }
}

static int client_list(cofre_registry_t *base, bool (*fn)(const cofre_client_t *c, void *data),
                       void *data)
{
    return list_pages(impl(base), sql_clients_page, fn, data);
}

static int disabled_list(cofre_registry_t *base, bool (*fn)(const cofre_client_t *c, void *data),
                         void *data)
{
    return list_pages(impl(base), sql_disabled_page, fn, data);
}

static int key_insert(cofre_registry_t *base, const cofre_key_record_t *k, const cofre_event_t *ev)
{
    char created[24], activates[24];
    snprintf(created, sizeof(created), "%lld", (long long)k->created_at);
    snprintf(activates, sizeof(activates), "%lld", (long long)k->activates_at);
    cofre_pg_param_t p[EVENT_PARAMS + 4];
    p[6] = COFRE_PG_TEXT(k->kid);
    p[7] = COFRE_PG_TEXT(k->public_jwk);
    p[8] = COFRE_PG_TEXT(created);
    p[9] = COFRE_PG_TEXT(activates);
    return write_with_event(impl(base), sql_key_insert, p, EVENT_PARAMS + 4, ev);
}

static int key_list(cofre_registry_t *base, cofre_key_record_t *out, size_t max, size_t *n)
{
    char limit[24];
    snprintf(limit, sizeof(limit), "%zu", max);
    const cofre_pg_param_t p[] = {COFRE_PG_TEXT(limit)};
    const PGresult *r;
    *n = 0;
    int rc = run(impl(base), sql_key_list, p, 1, true, &r);
    if (rc != 0)
        return rc == COFRE_ECONFLICT ? COFRE_EUNAVAIL : rc;
    size_t rows = (size_t)PQntuples(r);
    for (size_t i = 0; i < rows && i < max; i++) {
        cofre_key_record_t *k = &out[rows - 1 - i]; /* oldest first */
        cofre_pg_copy(r, (int)i, 0, k->kid, sizeof(k->kid));
        k->created_at = cofre_pg_int64(r, (int)i, 1);
        k->activates_at = cofre_pg_int64(r, (int)i, 2);
        cofre_pg_copy(r, (int)i, 3, k->public_jwk, sizeof(k->public_jwk));
    }
    *n = rows < max ? rows : max;
    return 0;
}

static int event_insert(cofre_registry_t *base, const cofre_event_t *ev)
{
    cofre_pg_param_t p[EVENT_PARAMS];
    event_params(ev, p);
    const PGresult *r;
    int rc = run(impl(base), sql_event_insert, p, EVENT_PARAMS, false, &r);
    return rc != 0 ? write_error(impl(base), rc) : 0;
}

static bool ping(cofre_registry_t *base)
{
    const PGresult *r;
    return run(impl(base), "SELECT 1", NULL, 0, true, &r) == 0;
}

/* ---- the relay's side ------------------------------------------------------------------ */

static int outbox_fetch(cofre_registry_t *base, int64_t after_seq, size_t max,
                        cofre_relay_row_t *out, size_t *n)
{
    char after[24], limit[24];
    snprintf(after, sizeof(after), "%lld", (long long)after_seq);
    snprintf(limit, sizeof(limit), "%zu", max);
    const cofre_pg_param_t p[] = {COFRE_PG_TEXT(after), COFRE_PG_TEXT(limit)};
    const PGresult *r;
    *n = 0;
    int rc = run(impl(base), sql_outbox_fetch, p, 2, true, &r);
    if (rc != 0)
        return rc;
    for (int row = 0; row < PQntuples(r) && *n < max; row++) {
        cofre_relay_row_t *o = &out[(*n)++];
        o->seq = cofre_pg_int64(r, row, 0);
        cofre_pg_copy(r, row, 1, o->event_id, sizeof(o->event_id));
        cofre_pg_copy(r, row, 2, o->topic, sizeof(o->topic));
        cofre_pg_copy(r, row, 3, o->key, sizeof(o->key));
        cofre_pg_copy(r, row, 4, o->traceparent, sizeof(o->traceparent));
        o->payload_len = (size_t)PQgetlength(r, row, 5);
        o->payload = cofre_strndup(PQgetvalue(r, row, 5), o->payload_len);
    }
    return 0;
}

static int outbox_mark(cofre_registry_t *base, const int64_t *seqs, size_t n)
{
    if (n == 0)
        return 0;
    cofre_pg_array_t a;
    cofre_pg_array_init(&a, COFRE_PG_INT8_ARRAY);
    for (size_t i = 0; i < n; i++)
        cofre_pg_array_int8(&a, seqs[i]);
    const cofre_pg_param_t p[] = {cofre_pg_array_param(&a)};
    const PGresult *r;
    /* One statement, one implicit transaction; marking twice changes nothing: a resend is
     * safe. */
    int rc = run(impl(base), sql_outbox_mark, p, 1, true, &r);
    cofre_pg_array_release(&a);
    return rc;
}

static int outbox_stats(cofre_registry_t *base, int64_t *pending, double *oldest_age_s)
{
    const PGresult *r;
    *pending = 0;
    *oldest_age_s = 0;
    int rc = run(impl(base), sql_outbox_stats, NULL, 0, true, &r);
    if (rc != 0)
        return rc;
    *pending = cofre_pg_int64(r, 0, 0);
    *oldest_age_s = strtod(PQgetvalue(r, 0, 1), NULL);
    return 0;
}

static int relay_claim(cofre_registry_t *base, const char *holder)
{
    const cofre_pg_param_t p[] = {COFRE_PG_TEXT(holder)};
    const PGresult *r;
    /* Taking or renewing the lease twice is the same as once: a resend is safe. */
    int rc = run(impl(base), sql_relay_claim, p, 1, true, &r);
    if (rc != 0)
        return rc == COFRE_ECONFLICT ? COFRE_EUNAVAIL : rc;
    return PQntuples(r) == 1 ? 0 : COFRE_EEXIST;
}

static void relay_release(cofre_registry_t *base, const char *holder)
{
    const cofre_pg_param_t p[] = {COFRE_PG_TEXT(holder)};
    const PGresult *r;
    if (run(impl(base), sql_relay_release, p, 1, false, &r) != 0)
        COFRE_LOG(COFRE_LOG_WARN, NULL,
                  "could not give the relay lease up; another replica takes over when it expires",
                  COFRE_LF_INT("lease_s", COFRE_REGISTRY_LEASE_S));
}

static void close_registry(cofre_registry_t *base)
{
    pg_registry_t *s = impl(base);
    cofre_pg_free(s->pg);
    free(s);
}

static const cofre_registry_ops_t pg_ops = {
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

int cofre_registry_pg_open(const char *url, cofre_registry_t **out)
{
    if (!cofre_pg_url_valid(url))
        return COFRE_EINVAL;
    pg_registry_t *s = cofre_calloc(1, sizeof(*s));
    s->base.ops = &pg_ops;
    s->pg = cofre_pg_new(&(cofre_pg_config_t){
        .url = url,
        .application_name = "cofre-auth",
        .connect_timeout_ms = CONNECT_TIMEOUT_MS,
        .round_timeout_ms = ROUND_TIMEOUT_MS,
        .backoff_max_ms = BACKOFF_MAX_MS,
        .pipeline = true,
        .prepare = false, /* Argon2id bounds the rate: parsing is not worth session state */
    });
    /* Down now, up in a second: the handle reconnects by itself, and the service reports not
     * ready meanwhile. */
    cofre_pg_connect(s->pg);
    *out = &s->base;
    return 0;
}

/* ---- migrations ------------------------------------------------------------------------- */

/* Runs one statement (or a multi-statement script without parameters) of the migration. */
int cofre_registry_pg_migrate(const char *url)
{
    if (!cofre_pg_url_valid(url))
        return COFRE_EINVAL;
    const cofre_migrations_t m = {"cofre-auth", cofre_auth_migrations_postgres,
                                  cofre_auth_migrations_postgres_count,
                                  "cofre_auth_schema_migrations", MIGRATE_LOCK_KEY};
    return cofre_migrate_pg(url, &m);
}
