/*
 * issuer.h: cofre-auth's HTTP API: POST /oauth/token (client credentials, RFC 6749 §4.4),
 * POST /oauth/introspect (RFC 7662), GET /.well-known/jwks.json, GET
 * /.well-known/openid-configuration (RFC 8414 metadata) and GET /oauth/revocations (the
 * disabled clients, for verifiers).
 *
 * On the loop a request is parsed, its client credentials found and its client id and
 * source address checked against the failure throttles; then the Argon2id verification, the
 * registry lookup, the signing and the outbox write run on a hashing worker, and the answer
 * goes back to the loop. A keeper thread reloads the signing keys and the disabled clients
 * from the registry every COFRE_ISSUER_RELOAD_MS.
 */
#ifndef COFRE_AUTH_ISSUER_H
#define COFRE_AUTH_ISSUER_H

#include "auth/keyring.h"
#include "auth/secret.h"
#include "auth/throttle.h"
#include "cofre/http.h"
#include "cofre/workers.h"

#include <stdbool.h>

#define COFRE_ISSUER_RELOAD_MS     2000
#define COFRE_ISSUER_THROTTLE_KEYS 65536 /* keys tracked per throttle table */
#define COFRE_ISSUER_PROXIES_MAX   16

typedef struct cofre_issuer_config {
    const char *db_url;
    const char *keys_dir; /* where the first key is made when the registry has none, or NULL */
    const char *issuer;   /* "iss", and the base of the endpoint URLs in the metadata */
    const char *audience; /* "aud" */
    unsigned token_ttl_s;
    cofre_secret_params_t argon2;
    unsigned client_burst, client_period_s;   /* failures allowed per client id */
    unsigned address_burst, address_period_s; /* failures allowed per source address */
    const char *trusted_proxies; /* comma list of proxy addresses whose X-Forwarded-For counts */
    unsigned hashers;
    size_t hash_queue_max;
} cofre_issuer_config_t;

typedef struct cofre_issuer cofre_issuer_t;

/*
 * Creates the issuer over keys (not owned): the throttles, the dummy hash that unknown
 * clients are verified against (so they take as long as known ones), the hashing workers and
 * the keeper thread. Returns NULL (logged) when the registry cannot be opened.
 */
cofre_issuer_t *cofre_issuer_start(const cofre_issuer_config_t *cfg, cofre_keyring_t *keys);

/* Adds the routes to s. is may be NULL (only to print the routes). */
void cofre_issuer_register(cofre_issuer_t *is, cofre_http_server_t *s);

/* Readiness: the registry answers and a key may sign. */
bool cofre_issuer_ready(void *data, const char **reason);

/* Stops the workers and the keeper thread, and frees the issuer. */
void cofre_issuer_stop(cofre_issuer_t *is);

#endif
