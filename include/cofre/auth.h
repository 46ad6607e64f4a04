/*
 * auth.h: the token check every cofre service runs in front of its /v1 routes. It verifies
 * the request's "Authorization: Bearer" access token locally (cofre/jwt.h) against the
 * issuer's published keys, fills req->caller from it, and checks the route's scopes.
 *
 * Keys come from COFRE_JWKS_URL, fetched by a background thread (never by an event loop): at
 * start, every COFRE_JWKS_REFRESH_S, and again when a token names an unknown "kid", at most
 * once per COFRE_AUTH_REFETCH_MIN_S (10 s). Or from COFRE_JWKS_FILE, read the same way. A
 * bounded cache of verified tokens (keyed by the SHA-256 of the whole token, kept until the
 * token expires) spares the hot path the ECDSA verification; expiry is still checked on every
 * hit, and a key withdrawn from the set invalidates every token cached before.
 *
 * Optionally, COFRE_AUTH_REVOCATIONS_URL names the issuer's list of disabled clients
 * (cofre-auth's /oauth/revocations), fetched by the same thread every
 * COFRE_AUTH_REVOCATIONS_REFRESH_S: a token of a client on it is refused even before it
 * expires. When the list cannot be fetched, the last one fetched stays in force.
 *
 * Configuration: checks are on unless COFRE_AUTH=off (development and benchmarks only: every
 * caller is then the local admin client, and a warning says so at start). When on,
 * COFRE_AUTH_ISSUER, COFRE_AUTH_AUDIENCE and one of COFRE_JWKS_URL / COFRE_JWKS_FILE are
 * required.
 */
#ifndef COFRE_AUTH_H
#define COFRE_AUTH_H

#include "cofre/config.h"
#include "cofre/http.h"
#include "cofre/jwt.h"

#include <stdbool.h>
#include <stddef.h>

#define COFRE_AUTH_REFETCH_MIN_S    10 /* unknown-kid refetches are at most this frequent */
#define COFRE_AUTH_FETCH_TIMEOUT_MS 5000

typedef struct cofre_auth cofre_auth_t;

typedef struct cofre_auth_config {
    bool enabled;          /* COFRE_AUTH: on (default) | off */
    const char *issuer;    /* COFRE_AUTH_ISSUER: the exact "iss" */
    const char *audience;  /* COFRE_AUTH_AUDIENCE: must be in "aud" */
    const char *jwks_url;  /* COFRE_JWKS_URL, or NULL */
    const char *jwks_file; /* COFRE_JWKS_FILE, or NULL */
    unsigned leeway_s;     /* COFRE_AUTH_LEEWAY_S: clock skew allowed, 0..60 (default 30) */
    unsigned refresh_s;    /* COFRE_JWKS_REFRESH_S: key set refresh period (default 60) */
    size_t cache_max;      /* COFRE_AUTH_CACHE_MAX: verified tokens kept (default 16384; 0: none) */
    const char *revocations_url;    /* COFRE_AUTH_REVOCATIONS_URL, or NULL */
    unsigned revocations_refresh_s; /* COFRE_AUTH_REVOCATIONS_REFRESH_S (default 10) */
} cofre_auth_config_t;

/*
 * Reads the token-check variables into cfg. Errors go to c (one line naming the variable at
 * cofre_config_finish): a required one missing, both or neither of the JWKS sources, a URL
 * that is not http(s), a JWKS file that cannot be read or holds no usable key.
 */
void cofre_auth_config_read(cofre_config_t *c, cofre_auth_config_t *cfg);

/* Help text for the variables above, for a service's --help. */
extern const char cofre_auth_usage[];

/*
 * Starts the token check: loads the keys from the file, or starts the thread that fetches
 * them. Returns NULL when cfg->enabled is false, after logging the warning that checks are
 * off.
 */
cofre_auth_t *cofre_auth_start(const cofre_auth_config_t *cfg);

/*
 * Plugs the check into an HTTP server configuration: sets its authenticate hook, and chains
 * its readiness so /readyz also fails until a key set is loaded. a == NULL (checks off)
 * leaves http as it is. Call after the service set its own ready callback.
 */
void cofre_auth_attach(cofre_auth_t *a, cofre_http_config_t *http);

/*
 * Checks one bearer token (len bytes): from the cache, or by full verification. Returns true
 * with caller filled (client_id, owner = "sub", scopes), or false with *why set. Thread-safe;
 * never blocks on I/O (an unknown kid only wakes the fetching thread).
 */
bool cofre_auth_check(cofre_auth_t *a, const char *token, size_t len, cofre_caller_t *caller,
                      cofre_jwt_result_t *why);

/* True once a key set is loaded; else false with a reason. */
bool cofre_auth_ready(cofre_auth_t *a, const char **reason);

/* Clients on the revocation list now (tests, logs). */
size_t cofre_auth_revoked_count(cofre_auth_t *a);

/*
 * Parses a revocation list document ({"clients": [{"client_id": ..., ...}, ...]}) into a
 * sorted array of client ids (malloc'd, the caller frees it). Returns the number of ids, or
 * -1 when the document is malformed. Exposed for tests and fuzzing.
 */
long cofre_auth_parse_revocations(const char *json, size_t len,
                                  char (**ids)[COFRE_CLIENT_ID_MAX + 1]);

/* Number of keys in the current set (tests, logs). */
size_t cofre_auth_key_count(cofre_auth_t *a);

/* Stops the fetching thread and frees everything. NULL is a no-op. */
void cofre_auth_free(cofre_auth_t *a);

#endif
