/*
 * jwt.h: JSON Web Tokens the way cofre uses them: RFC 9068 access tokens, signed ES256
 * (RFC 7515/7518), checked by the rules of RFC 8725. Only the compact serialisation; only
 * ES256 (anything else, "none" and HS* included, is refused before any key is touched); an
 * exact "typ" of at+jwt; exact "iss" and "aud"; "exp", "iat" and an optional "nbf" within a
 * leeway of at most COFRE_JWT_LEEWAY_MAX_S. Keys never come from the token itself: "jku",
 * "jwk", "x5u" and "x5c" are ignored, "crit" is refused.
 *
 * Verification is three steps so a cache can skip the costly one: cofre_jwt_decode (shape,
 * header and claims against a policy), cofre_jwt_check_time (again on every cache hit), and
 * cofre_jwt_verify_signature (the ECDSA check, against the key its "kid" names).
 */
#ifndef COFRE_JWT_H
#define COFRE_JWT_H

#include "cofre/http.h"
#include "cofre/jbuf.h"

#include <openssl/evp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define COFRE_JWT_BYTES_MAX    8192 /* longest token accepted */
#define COFRE_JWT_KID_MAX      64
#define COFRE_JWT_JTI_MAX      64
#define COFRE_JWT_AUD_MAX      16 /* items of an "aud" array */
#define COFRE_JWT_LEEWAY_MAX_S 60
#define COFRE_JWT_SIG_BYTES    64                 /* ES256: R and S, 32 bytes each */
#define COFRE_JWT_TIME_MAX     (INT64_C(1) << 40) /* far beyond any real date, far from overflow */

/* Why a token was refused. The names (cofre_jwt_result_name) are metric label values. */
typedef enum cofre_jwt_result {
    COFRE_JWT_OK = 0,
    COFRE_JWT_MALFORMED,     /* not a compact JWS of two JSON objects, or a claim is missing
                                or of the wrong type */
    COFRE_JWT_BAD_ALG,       /* "alg" is not ES256 */
    COFRE_JWT_BAD_TYP,       /* "typ" is not at+jwt */
    COFRE_JWT_BAD_ISSUER,    /* "iss" is not the configured issuer */
    COFRE_JWT_BAD_AUDIENCE,  /* "aud" does not name the configured audience */
    COFRE_JWT_EXPIRED,       /* "exp" has passed (beyond the leeway) */
    COFRE_JWT_NOT_YET_VALID, /* "nbf" or "iat" is in the future (beyond the leeway) */
    COFRE_JWT_UNKNOWN_KID,   /* no published key has this "kid" (found by the caller) */
    COFRE_JWT_BAD_SIGNATURE, /* the ECDSA signature does not verify */
    COFRE_JWT_REVOKED,       /* its client is disabled (found by the caller) */
    COFRE_JWT_RESULT_COUNT_,
} cofre_jwt_result_t;

/* What a token must match. */
typedef struct cofre_jwt_policy {
    const char *issuer;   /* exact "iss" */
    const char *audience; /* must equal "aud" or one of its items */
} cofre_jwt_policy_t;

/* A decoded token: the header's kid, the claims cofre uses, and the raw signature. */
typedef struct cofre_jwt {
    char kid[COFRE_JWT_KID_MAX + 1];
    char client_id[COFRE_CLIENT_ID_MAX + 1];
    char sub[COFRE_OWNER_MAX + 1];
    char jti[COFRE_JWT_JTI_MAX + 1];
    uint32_t scopes; /* COFRE_SCOPE_* bits of "scope"; unknown names are ignored */
    int64_t exp;
    int64_t iat;
    int64_t nbf;              /* 0 when absent */
    size_t signing_input_len; /* bytes of "header.payload" at the start of the token */
    uint8_t sig[COFRE_JWT_SIG_BYTES];
} cofre_jwt_t;

/* A short stable name for r ("expired", "bad_signature"). */
const char *cofre_jwt_result_name(cofre_jwt_result_t r);

/*
 * Decodes token (len bytes, not necessarily NUL-terminated) and checks its header and claims
 * against policy; does not check times or the signature. Returns COFRE_JWT_OK with out
 * filled, or the first reason found to refuse it (out is then unspecified).
 */
cofre_jwt_result_t cofre_jwt_decode(const char *token, size_t len, const cofre_jwt_policy_t *policy,
                                    cofre_jwt_t *out);

/*
 * Checks exp, nbf and iat against now_s (seconds since the epoch) allowing leeway_s
 * (<= COFRE_JWT_LEEWAY_MAX_S) of clock skew. Returns OK, EXPIRED or NOT_YET_VALID.
 */
cofre_jwt_result_t cofre_jwt_check_time(const cofre_jwt_t *jwt, int64_t now_s, unsigned leeway_s);

/*
 * Verifies the ES256 signature of token (the same bytes given to cofre_jwt_decode) with key,
 * a P-256 public key. Returns OK or BAD_SIGNATURE. Safe to call from many threads with one
 * key.
 */
cofre_jwt_result_t cofre_jwt_verify_signature(const char *token, const cofre_jwt_t *jwt,
                                              EVP_PKEY *key);

/*
 * Signs claims (a JSON object's text, len bytes) with key, a P-256 private key, under a
 * header {"alg":"ES256","typ":"at+jwt","kid":kid}, and appends the compact token to out.
 * Returns 0, or COFRE_EIO when OpenSSL fails (logged).
 */
int cofre_jwt_sign(EVP_PKEY *key, const char *kid, const char *claims, size_t len,
                   cofre_jbuf_t *out);

/* Bytes cofre_jwt_b64url_encode writes for len input bytes (without the NUL). */
#define COFRE_JWT_B64URL_LEN(len) (((len) / 3) * 4 + ((len) % 3 == 0 ? 0 : (len) % 3 + 1))

/* Base64url without padding (RFC 7515 §2) of len bytes into out, NUL-terminated. Returns the
 * length written. */
size_t cofre_jwt_b64url_encode(const void *in, size_t len, char *out);

/*
 * Strict base64url decoding: the URL-safe alphabet only, no padding, no whitespace, and the
 * unused bits of the last character zero (so each byte string has exactly one encoding).
 * Returns the decoded length, or -1 when the input is not canonical base64url or the result
 * does not fit in outsz bytes.
 */
long cofre_jwt_b64url_decode(const char *in, size_t len, uint8_t *out, size_t outsz);

#endif
