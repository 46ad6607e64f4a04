/*
 * registry.h: cofre-auth's storage: the client registry, the signing keys' public records and
 * the outbox of auth events, behind one interface with a SQLite implementation (the embedded
 * default); a PostgreSQL one plugs in as another cofre_registry_ops_t (issue 3). A handle is
 * one connection used by one thread: each hashing worker owns one, the key reloader one, the
 * command line one.
 *
 * Every change writes its event to the outbox in the same transaction, so an effect without
 * its event (or an event without its effect) never commits.
 */
#ifndef COFRE_AUTH_REGISTRY_H
#define COFRE_AUTH_REGISTRY_H

#include "cofre/common.h"
#include "cofre/http.h"
#include "cofre/jwks.h"
#include "cofre/relay.h"
#include "cofre/uuid.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define COFRE_REGISTRY_HASH_MAX    128 /* an Argon2id string (crypto_pwhash_STRBYTES) */
#define COFRE_REGISTRY_SCOPES_MAX  96
#define COFRE_REGISTRY_KEYS_MAX    COFRE_JWKS_KEYS_MAX
#define COFRE_REGISTRY_CLIENTS_MAX 100000 /* listed by the command line at most */

/* The topic auth events are published on (by the outbox relay, auth_outbox.c). */
#define COFRE_REGISTRY_TOPIC "cofre.auth.events"

typedef struct cofre_registry cofre_registry_t;

typedef struct cofre_client {
    char client_id[COFRE_CLIENT_ID_MAX + 1];
    char owner[COFRE_OWNER_MAX + 1];
    uint32_t scopes;
    char secret_hash[COFRE_REGISTRY_HASH_MAX];
    int64_t disabled_at; /* Unix seconds; 0 while enabled */
    char created_at[COFRE_TIME_LEN + 1];
} cofre_client_t;

/* A signing key's public record; its private half is a file named after kid. */
#define COFRE_REGISTRY_JWK_MAX 320

typedef struct cofre_key_record {
    char kid[COFRE_JWKS_KID_LEN + 1];
    char public_jwk[COFRE_REGISTRY_JWK_MAX]; /* the JWK's JSON text */
    int64_t created_at;                      /* Unix seconds */
    int64_t activates_at;                    /* signing starts then; published from creation */
} cofre_key_record_t;

/* One outbox row: a CloudEvents 1.0 JSON payload built by cofre_registry_event. */
typedef struct cofre_event {
    char event_id[COFRE_UUID_LEN + 1];
    const char *type;          /* "cofre.auth.token.issued" */
    const char *partition_key; /* the client id (the kid for key events) */
    char *payload;             /* owned */
    size_t payload_len;
    char traceparent[64];
} cofre_event_t;

/* Who caused an event: a request (address, request id) or a command. */
typedef struct cofre_actor {
    const char *client_id; /* the authenticated client, or NULL */
    const char *address;   /* the source address, or NULL */
    const char *request_id;
    const char *command; /* "client add", or NULL for requests */
} cofre_actor_t;

/* Which change a client update makes. */
typedef enum cofre_client_change {
    COFRE_CLIENT_DISABLE,
    COFRE_CLIENT_SET_SECRET,
} cofre_client_change_t;

typedef struct cofre_registry_ops {
    void (*close)(cofre_registry_t *r);
    /* 0, COFRE_ENOENT, COFRE_EUNAVAIL or COFRE_EIO. */
    int (*client_get)(cofre_registry_t *r, const char *client_id, cofre_client_t *out);
    /* 0, COFRE_EEXIST, or an error. Writes ev in the same transaction. */
    int (*client_insert)(cofre_registry_t *r, const cofre_client_t *c, const cofre_event_t *ev);
    /* Applies change (c->disabled_at or c->secret_hash) to an existing client, with ev. */
    int (*client_update)(cofre_registry_t *r, const cofre_client_t *c, cofre_client_change_t change,
                         const cofre_event_t *ev);
    /* Calls fn for each client in client_id order; stops early when fn returns false. */
    int (*client_list)(cofre_registry_t *r, bool (*fn)(const cofre_client_t *c, void *data),
                       void *data);
    /* Disabled clients (client_id, disabled_at) for the revocation list, in client_id order. */
    int (*disabled_list)(cofre_registry_t *r, bool (*fn)(const cofre_client_t *c, void *data),
                         void *data);
    int (*key_insert)(cofre_registry_t *r, const cofre_key_record_t *k, const cofre_event_t *ev);
    /* Every key record, oldest first (at most max; *n set). */
    int (*key_list)(cofre_registry_t *r, cofre_key_record_t *out, size_t max, size_t *n);
    /* An event that stands alone (a token issued, an authentication failed). */
    int (*event_insert)(cofre_registry_t *r, const cofre_event_t *ev);
    bool (*ping)(cofre_registry_t *r);

    /* ---- the outbox relay's side (auth_outbox.c) ---- */
    /* Up to max unpublished rows with seq > after_seq into out, in seq order; each payload is
     * malloc'ed and handed over. */
    int (*outbox_fetch)(cofre_registry_t *r, int64_t after_seq, size_t max, cofre_relay_row_t *out,
                        size_t *n);
    /* Marks rows published (rows marked already stay as they were). */
    int (*outbox_mark)(cofre_registry_t *r, const int64_t *seqs, size_t n);
    /* Unpublished rows, and the age in seconds of the oldest (0 when none). */
    int (*outbox_stats)(cofre_registry_t *r, int64_t *pending, double *oldest_age_s);
    /*
     * Makes this handle's process the one that relays the outbox, or renews that claim for at
     * least COFRE_REGISTRY_LEASE_S from the call: 0, COFRE_EEXIST (another process holds it),
     * or an error. SQLite: an exclusive lock on the file <db>-relay.lock, held until release
     * or the process ends. PostgreSQL: the relay_leases row, held by holder until it expires.
     */
    int (*relay_claim)(cofre_registry_t *r, const char *holder);
    /* Gives the claim up (best effort), so another process takes over at once. */
    void (*relay_release)(cofre_registry_t *r, const char *holder);
} cofre_registry_ops_t;

/* How long a PostgreSQL relay claim lasts; its holder renews it every third of that. */
#define COFRE_REGISTRY_LEASE_S    15
#define COFRE_REGISTRY_HOLDER_MAX 200

struct cofre_registry {
    const cofre_registry_ops_t *ops;
};

/*
 * Opens a handle for COFRE_DB url. Returns 0 and *out, COFRE_EINVAL (a malformed URL), or
 * COFRE_EUNAVAIL (logged: SQLite cannot open the file, or libpq cannot be loaded). A
 * PostgreSQL handle connects lazily and by itself: it opens while the database is down, its
 * calls fail fast with COFRE_EUNAVAIL meanwhile, and it reconnects with backoff.
 */
int cofre_registry_open(const char *url, cofre_registry_t **out);

/*
 * Brings the schema up to date: safe from several processes at once, idempotent, and refusing
 * a schema newer than this binary (COFRE_ERANGE). With PostgreSQL's service role (no rights
 * to create), an up-to-date schema is only checked.
 */
int cofre_registry_migrate(const char *url);

void cofre_registry_close(cofre_registry_t *r);

/*
 * Builds ev: a CloudEvents 1.0 envelope (source "/cofre/auth") of type, subject key, with
 * data {"<entity_name>": <entity JSON text>, "actor": {...}}, a new event id and the trace
 * context traceparent (may be NULL: a new trace). Release with cofre_registry_event_release.
 */
void cofre_registry_event(cofre_event_t *ev, const char *type, const char *key,
                          const char *entity_name, const char *entity_json,
                          const cofre_actor_t *actor, const char *traceparent);
void cofre_registry_event_release(cofre_event_t *ev);

/* Writes c as the JSON entity of client events (no secret hash). */
void cofre_registry_client_json(const cofre_client_t *c, cofre_jbuf_t *b);

/* True when s is a valid client id: 1 to 64 of A-Z a-z 0-9 . _ - */
bool cofre_registry_client_id_valid(const char *s);

/* True when s is a valid owner: 1 to COFRE_OWNER_MAX of A-Z a-z 0-9 . _ : @ - */
bool cofre_registry_owner_valid(const char *s);

/* The SQLite implementation. */
int cofre_registry_sqlite_open(const char *path, cofre_registry_t **out);
int cofre_registry_sqlite_migrate(const char *path);

/* The PostgreSQL implementation (libpq must be loaded: cofre_pq_load). */
int cofre_registry_pg_open(const char *url, cofre_registry_t **out);
int cofre_registry_pg_migrate(const char *url);

#endif
