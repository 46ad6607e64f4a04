/*
 * keyring.h: cofre-auth's signing keys. Each key is a P-256 key pair named by its RFC 7638
 * thumbprint (the kid): its public record (JWK, creation and activation times) is in the
 * registry, so every replica publishes the same JWK Set; its private half is a PEM file
 * <dir>/<kid>.pem of mode 0600 that is never logged and never enters the database.
 *
 * Rotation without failures: a new key is published at once but signs only from its
 * activation time (now + the lead, COFRE_AUTH_KEY_LEAD_S), by when every verifier has
 * refreshed its key set; the key it supersedes stays published until every token it signed
 * has expired (token lifetime + the largest clock leeway).
 *
 * A snapshot of the keys is rebuilt from the registry by cofre_keyring_reload (a background
 * thread calls it every few seconds); loops and workers read it under a rwlock.
 */
#ifndef COFRE_AUTH_KEYRING_H
#define COFRE_AUTH_KEYRING_H

#include "auth/registry.h"
#include "cofre/jbuf.h"
#include "cofre/jwt.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct cofre_keyring cofre_keyring_t;

/* dir: where private keys live; token_ttl_s: the longest lifetime of a token signed. */
cofre_keyring_t *cofre_keyring_new(const char *dir, unsigned token_ttl_s);
void cofre_keyring_free(cofre_keyring_t *kr);

/*
 * Rebuilds the snapshot from reg's key records at now (Unix seconds), loading the private key
 * of every key that may sign. Returns 0, or an error (the previous snapshot stays).
 */
int cofre_keyring_reload(cofre_keyring_t *kr, cofre_registry_t *reg, int64_t now);

/*
 * Creates a key pair: writes its private key file, then its record and an event of
 * event_type ("cofre.auth.key.rotated") in one transaction. It activates at now + lead_s,
 * where now moves to one second after the newest key's creation when it is not later (so
 * keys never tie). Writes its kid into kid_out. Returns 0, or COFRE_EIO (file or registry;
 * logged).
 */
int cofre_keyring_create(const char *dir, cofre_registry_t *reg, int64_t now, unsigned lead_s,
                         const char *event_type, const cofre_actor_t *actor,
                         char kid_out[COFRE_JWKS_KID_LEN + 1]);

/* Creates the first key when reg has none (first start). Returns 0 or an error. */
int cofre_keyring_ensure(const char *dir, cofre_registry_t *reg, int64_t now);

/*
 * Signs claims (JSON text) with the key current at now, appending the token to out and
 * writing the kid used. Returns 0, COFRE_EUNAVAIL (no current key with its private key
 * loaded), or COFRE_EIO.
 */
int cofre_keyring_sign(cofre_keyring_t *kr, int64_t now, const char *claims, size_t len,
                       cofre_jbuf_t *out, char kid[COFRE_JWKS_KID_LEN + 1]);

/*
 * Fully checks a token against the published keys (for introspection): decoding under
 * policy, times with leeway_s, then the signature. Returns COFRE_JWT_OK with out filled, or
 * the reason to refuse it.
 */
cofre_jwt_result_t cofre_keyring_verify(cofre_keyring_t *kr, const char *token, size_t len,
                                        const cofre_jwt_policy_t *policy, int64_t now,
                                        unsigned leeway_s, cofre_jwt_t *out);

/* Appends the JWK Set of the published keys to b. */
void cofre_keyring_jwks(cofre_keyring_t *kr, cofre_jbuf_t *b);

/* True when a key may sign at now. */
bool cofre_keyring_ready(cofre_keyring_t *kr, int64_t now);

/* The keys published in the last snapshot. */
size_t cofre_keyring_published(cofre_keyring_t *kr);

/* Key state at now for `keys list`: "next", "current", "retiring" or "retired". */
const char *cofre_keyring_state(const cofre_key_record_t *keys, size_t n, size_t i, int64_t now,
                                unsigned token_ttl_s);

/* The path of kid's private key file in dir. */
void cofre_keyring_path(const char *dir, const char *kid, char *out, size_t outsz);

#endif
