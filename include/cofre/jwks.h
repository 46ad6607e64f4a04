/*
 * jwks.h: JSON Web Key Sets (RFC 7517) of P-256 signing keys: parsed from a JWKS document for
 * the token check, written for the issuer's /.well-known/jwks.json, and named by their RFC
 * 7638 thumbprints. A key set is immutable once parsed, so many threads may verify with it.
 */
#ifndef COFRE_JWKS_H
#define COFRE_JWKS_H

#include "cofre/jbuf.h"
#include "cofre/jwt.h"

#include <openssl/evp.h>
#include <stddef.h>

#define COFRE_JWKS_KEYS_MAX  32           /* keys kept from one document */
#define COFRE_JWKS_BYTES_MAX (256 * 1024) /* longest document read */
#define COFRE_JWKS_KID_LEN   43           /* a thumbprint: base64url of a SHA-256 */

typedef struct cofre_jwk {
    char kid[COFRE_JWT_KID_MAX + 1];
    EVP_PKEY *key; /* a P-256 public key */
} cofre_jwk_t;

typedef struct cofre_jwks {
    size_t n;
    cofre_jwk_t keys[COFRE_JWKS_KEYS_MAX];
} cofre_jwks_t;

/*
 * Parses a JWKS document. Keeps the keys usable for ES256 signatures: "kty" EC, "crv" P-256,
 * a "kid", "alg" ES256 or absent, "use" sig or absent; skips other key types (RFC 7517 §5).
 * An EC key with a point off the curve, a duplicate "kid", more than COFRE_JWKS_KEYS_MAX
 * usable keys, or a document that is not {"keys": [...]} is an error. Returns a new set (the
 * caller frees it with cofre_jwks_free), or NULL with a reason in err (errsz bytes).
 */
cofre_jwks_t *cofre_jwks_parse(const char *json, size_t len, char *err, size_t errsz);

/* The key named kid, or NULL. */
EVP_PKEY *cofre_jwks_find(const cofre_jwks_t *set, const char *kid);

/* True when every kid of old is also in new (nothing was withdrawn). */
bool cofre_jwks_superset(const cofre_jwks_t *new_set, const cofre_jwks_t *old_set);

void cofre_jwks_free(cofre_jwks_t *set);

/*
 * Appends the public JWK of key (a P-256 key, public or private) as a JSON value to b:
 * {"kty":"EC","crv":"P-256","x":...,"y":...,"kid":kid,"use":"sig","alg":"ES256"}.
 * Returns 0 or COFRE_EINVAL when key is not a P-256 key.
 */
int cofre_jwks_write_key(cofre_jbuf_t *b, EVP_PKEY *key, const char *kid);

/*
 * Writes the RFC 7638 thumbprint of key's public part (SHA-256, base64url) into kid.
 * Returns 0 or COFRE_EINVAL when key is not a P-256 key.
 */
int cofre_jwks_thumbprint(EVP_PKEY *key, char kid[COFRE_JWKS_KID_LEN + 1]);

/*
 * Generates a new P-256 key pair. Returns NULL (logged) only when OpenSSL fails.
 */
EVP_PKEY *cofre_jwks_generate(void);

#endif
