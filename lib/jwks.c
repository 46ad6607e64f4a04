/*
 * jwks.c: P-256 JWKs in and out of OpenSSL 3 key objects.
 */
#include "cofre/jwks.h"

#include "cofre/common.h"
#include "cofre/log.h"

#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define COORD_BYTES 32 /* a P-256 coordinate */

void cofre_jwks_free(cofre_jwks_t *set)
{
    if (set == NULL)
        return;
    for (size_t i = 0; i < set->n; i++)
        EVP_PKEY_free(set->keys[i].key);
    free(set);
}

EVP_PKEY *cofre_jwks_find(const cofre_jwks_t *set, const char *kid)
{
    for (size_t i = 0; set != NULL && i < set->n; i++)
        if (strcmp(set->keys[i].kid, kid) == 0)
            return set->keys[i].key;
    return NULL;
}

bool cofre_jwks_superset(const cofre_jwks_t *new_set, const cofre_jwks_t *old_set)
{
    for (size_t i = 0; old_set != NULL && i < old_set->n; i++)
        if (cofre_jwks_find(new_set, old_set->keys[i].kid) == NULL)
            return false;
    return true;
}

/* A P-256 public key from its coordinates; NULL when the point is not on the curve. */
static EVP_PKEY *key_from_point(const uint8_t x[COORD_BYTES], const uint8_t y[COORD_BYTES])
{
    uint8_t point[1 + 2 * COORD_BYTES];
    point[0] = 0x04; /* uncompressed */
    memcpy(point + 1, x, COORD_BYTES);
    memcpy(point + 1 + COORD_BYTES, y, COORD_BYTES);
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, (char *)"prime256v1", 0),
        OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, point, sizeof(point)),
        OSSL_PARAM_construct_end(),
    };
    EVP_PKEY *key = NULL;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    if (ctx == NULL || EVP_PKEY_fromdata_init(ctx) != 1 ||
        EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_PUBLIC_KEY, params) != 1)
        key = NULL;
    EVP_PKEY_CTX_free(ctx);
    if (key != NULL) {
        EVP_PKEY_CTX *check = EVP_PKEY_CTX_new_from_pkey(NULL, key, NULL);
        if (check == NULL || EVP_PKEY_public_check(check) != 1) {
            EVP_PKEY_free(key);
            key = NULL;
        }
        EVP_PKEY_CTX_free(check);
    }
    ERR_clear_error();
    return key;
}

/* Decodes a coordinate member; false unless it is exactly 32 bytes of canonical base64url. */
static bool coordinate(const json_t *jwk, const char *name, uint8_t out[COORD_BYTES])
{
    const json_t *v = json_object_get(jwk, name);
    return json_is_string(v) && cofre_jwt_b64url_decode(json_string_value(v), json_string_length(v),
                                                        out, COORD_BYTES) == COORD_BYTES;
}

static bool member_is(const json_t *obj, const char *name, const char *value, bool absent_ok)
{
    const json_t *v = json_object_get(obj, name);
    if (v == NULL)
        return absent_ok;
    return json_is_string(v) && strcmp(json_string_value(v), value) == 0;
}

/* Adds one JWK to set. Returns 1 when added, 0 when skipped (not ours), -1 on error. */
static int add_key(cofre_jwks_t *set, const json_t *jwk, char *err, size_t errsz)
{
    if (!json_is_object(jwk)) {
        snprintf(err, errsz, "a key is not a JSON object");
        return -1;
    }
    if (!member_is(jwk, "kty", "EC", false) || !member_is(jwk, "crv", "P-256", false) ||
        !member_is(jwk, "alg", "ES256", true) || !member_is(jwk, "use", "sig", true))
        return 0;
    const json_t *kid = json_object_get(jwk, "kid");
    if (!json_is_string(kid) || json_string_length(kid) < 1 ||
        json_string_length(kid) > COFRE_JWT_KID_MAX) {
        snprintf(err, errsz, "an EC key has no valid \"kid\"");
        return -1;
    }
    if (cofre_jwks_find(set, json_string_value(kid)) != NULL) {
        snprintf(err, errsz, "duplicate kid \"%.64s\"", json_string_value(kid));
        return -1;
    }
    uint8_t x[COORD_BYTES], y[COORD_BYTES];
    EVP_PKEY *key = NULL;
    if (coordinate(jwk, "x", x) && coordinate(jwk, "y", y))
        key = key_from_point(x, y);
    if (key == NULL) {
        snprintf(err, errsz, "key \"%.64s\" is not a valid P-256 point", json_string_value(kid));
        return -1;
    }
    if (set->n == COFRE_JWKS_KEYS_MAX) {
        EVP_PKEY_free(key);
        snprintf(err, errsz, "more than %d keys", COFRE_JWKS_KEYS_MAX);
        return -1;
    }
    cofre_jwk_t *k = &set->keys[set->n++];
    snprintf(k->kid, sizeof(k->kid), "%s", json_string_value(kid));
    k->key = key;
    return 1;
}

cofre_jwks_t *cofre_jwks_parse(const char *json, size_t len, char *err, size_t errsz)
{
    if (len > COFRE_JWKS_BYTES_MAX) {
        snprintf(err, errsz, "the document exceeds %d bytes", COFRE_JWKS_BYTES_MAX);
        return NULL;
    }
    json_error_t jerr;
    json_t *doc = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    const json_t *keys = json_object_get(doc, "keys");
    if (doc == NULL || !json_is_array(keys)) {
        snprintf(err, errsz, "not a JWK Set (a JSON object with a \"keys\" array)");
        json_decref(doc);
        return NULL;
    }
    cofre_jwks_t *set = cofre_calloc(1, sizeof(*set));
    size_t i;
    const json_t *jwk;
    json_array_foreach(keys, i, jwk)
    {
        if (add_key(set, jwk, err, errsz) < 0) {
            cofre_jwks_free(set);
            json_decref(doc);
            return NULL;
        }
    }
    json_decref(doc);
    return set;
}

/* The coordinates of a P-256 key. Returns false when key is not one. */
static bool key_coordinates(EVP_PKEY *key, uint8_t x[COORD_BYTES], uint8_t y[COORD_BYTES])
{
    char group[32];
    if (EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
                                       NULL) != 1 ||
        strcmp(group, "prime256v1") != 0) {
        ERR_clear_error();
        return false;
    }
    BIGNUM *bx = NULL, *by = NULL;
    bool ok = EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_EC_PUB_X, &bx) == 1 &&
              EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_EC_PUB_Y, &by) == 1 &&
              BN_bn2binpad(bx, x, COORD_BYTES) == COORD_BYTES &&
              BN_bn2binpad(by, y, COORD_BYTES) == COORD_BYTES;
    BN_free(bx);
    BN_free(by);
    ERR_clear_error();
    return ok;
}

int cofre_jwks_write_key(cofre_jbuf_t *b, EVP_PKEY *key, const char *kid)
{
    uint8_t x[COORD_BYTES], y[COORD_BYTES];
    if (!key_coordinates(key, x, y))
        return COFRE_EINVAL;
    char ex[COFRE_JWT_B64URL_LEN(COORD_BYTES) + 1], ey[COFRE_JWT_B64URL_LEN(COORD_BYTES) + 1];
    cofre_jwt_b64url_encode(x, COORD_BYTES, ex);
    cofre_jwt_b64url_encode(y, COORD_BYTES, ey);
    cofre_jbuf_obj_begin(b);
    cofre_jbuf_kstr(b, "kty", "EC");
    cofre_jbuf_kstr(b, "crv", "P-256");
    cofre_jbuf_kstr(b, "x", ex);
    cofre_jbuf_kstr(b, "y", ey);
    cofre_jbuf_kstr(b, "kid", kid);
    cofre_jbuf_kstr(b, "use", "sig");
    cofre_jbuf_kstr(b, "alg", "ES256");
    cofre_jbuf_obj_end(b);
    return 0;
}

int cofre_jwks_thumbprint(EVP_PKEY *key, char kid[COFRE_JWKS_KID_LEN + 1])
{
    uint8_t x[COORD_BYTES], y[COORD_BYTES];
    if (!key_coordinates(key, x, y))
        return COFRE_EINVAL;
    char ex[COFRE_JWT_B64URL_LEN(COORD_BYTES) + 1], ey[COFRE_JWT_B64URL_LEN(COORD_BYTES) + 1];
    cofre_jwt_b64url_encode(x, COORD_BYTES, ex);
    cofre_jwt_b64url_encode(y, COORD_BYTES, ey);
    /* RFC 7638 §3.2: the required members only, in lexicographic order, no whitespace. */
    char canonical[160];
    int n = snprintf(canonical, sizeof(canonical),
                     "{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"%s\",\"y\":\"%s\"}", ex, ey);
    COFRE_ASSERT(n > 0 && (size_t)n < sizeof(canonical));
    uint8_t digest[SHA256_DIGEST_LENGTH];
    SHA256((const uint8_t *)canonical, (size_t)n, digest);
    cofre_jwt_b64url_encode(digest, sizeof(digest), kid);
    return 0;
}

EVP_PKEY *cofre_jwks_generate(void)
{
    EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    if (key == NULL) {
        COFRE_LOG(COFRE_LOG_ERROR, NULL, "key generation failed",
                  COFRE_LF_STR("error", ERR_reason_error_string(ERR_get_error())));
        ERR_clear_error();
    }
    return key;
}
