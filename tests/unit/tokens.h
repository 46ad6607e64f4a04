/*
 * tokens.h: helpers the token tests share: build a compact JWS from any header and payload
 * text, signed ES256 with a key (or with any bytes as the signature), so each test can forge
 * exactly the token it needs.
 */
#ifndef COFRE_TEST_TOKENS_H
#define COFRE_TEST_TOKENS_H

#include "cofre/common.h"
#include "cofre/jbuf.h"
#include "cofre/jwt.h"

#include <openssl/bn.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static inline void tokens_append_b64(cofre_jbuf_t *b, const void *data, size_t len)
{
    char *tmp = cofre_malloc(COFRE_JWT_B64URL_LEN(len) + 1);
    size_t n = cofre_jwt_b64url_encode(data, len, tmp);
    cofre_jbuf_append(b, tmp, n);
    free(tmp);
}

/* ES256 over "b64(header).b64(payload)" with key; returns a malloc'd token. */
static inline char *tokens_make(EVP_PKEY *key, const char *header, const char *payload)
{
    cofre_jbuf_t b;
    cofre_jbuf_init(&b);
    tokens_append_b64(&b, header, strlen(header));
    cofre_jbuf_append(&b, ".", 1);
    tokens_append_b64(&b, payload, strlen(payload));
    uint8_t der[80], raw[64];
    size_t der_len = sizeof(der);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    COFRE_ASSERT(EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, key) == 1);
    COFRE_ASSERT(EVP_DigestSign(ctx, der, &der_len, (const uint8_t *)b.data, b.len) == 1);
    EVP_MD_CTX_free(ctx);
    const uint8_t *p = der;
    ECDSA_SIG *sig = d2i_ECDSA_SIG(NULL, &p, (long)der_len);
    const BIGNUM *r, *s;
    ECDSA_SIG_get0(sig, &r, &s);
    COFRE_ASSERT(BN_bn2binpad(r, raw, 32) == 32 && BN_bn2binpad(s, raw + 32, 32) == 32);
    ECDSA_SIG_free(sig);
    cofre_jbuf_append(&b, ".", 1);
    tokens_append_b64(&b, raw, sizeof(raw));
    size_t len;
    return cofre_jbuf_steal(&b, &len);
}

/* The claims of a valid token at now with this scope, extra members appended (may be ""). */
static inline char *tokens_claims_scope(int64_t now, const char *scope, const char *extra)
{
    char *out = cofre_malloc(1024);
    snprintf(out, 1024,
             "{\"iss\":\"https://issuer.test\",\"sub\":\"alice\",\"aud\":\"cofre-api\","
             "\"exp\":%lld,\"iat\":%lld,\"nbf\":%lld,\"jti\":\"j-1\","
             "\"scope\":\"%s\",\"client_id\":\"app-1\"%s}",
             (long long)(now + 900), (long long)now, (long long)now, scope, extra);
    return out;
}

static inline char *tokens_claims(int64_t now, const char *extra)
{
    return tokens_claims_scope(now, "accounts:read transfers:write", extra);
}

#define TOKENS_HEADER(kid) "{\"alg\":\"ES256\",\"typ\":\"at+jwt\",\"kid\":\"" kid "\"}"

static inline int64_t tokens_now(void)
{
    return (int64_t)time(NULL);
}

#endif
