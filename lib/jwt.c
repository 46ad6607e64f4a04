/*
 * jwt.c: decoding, checking and signing of ES256 access tokens. Everything from outside is
 * bounded before it is parsed: the token's length, each part's decoded size, every string
 * claim. JSON goes through jansson with duplicate keys refused, so a claim cannot be given
 * twice with two meanings.
 */
#include "cofre/jwt.h"

#include "cofre/common.h"
#include "cofre/log.h"
#include "cofre/scope.h"

#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/ecdsa.h>
#include <openssl/err.h>
#include <string.h>
#include <strings.h>

/* Decoded size limits of the header and the payload: generous for real tokens, bounded. */
#define JWT_HEADER_MAX  1024
#define JWT_PAYLOAD_MAX 4096
#define JWT_DER_SIG_MAX 80 /* DER of two 32-byte integers: at most 72 bytes */

static const char *const result_names[COFRE_JWT_RESULT_COUNT_] = {
    [COFRE_JWT_OK] = "ok",
    [COFRE_JWT_MALFORMED] = "malformed",
    [COFRE_JWT_BAD_ALG] = "bad_alg",
    [COFRE_JWT_BAD_TYP] = "bad_typ",
    [COFRE_JWT_BAD_ISSUER] = "bad_issuer",
    [COFRE_JWT_BAD_AUDIENCE] = "bad_audience",
    [COFRE_JWT_EXPIRED] = "expired",
    [COFRE_JWT_NOT_YET_VALID] = "not_yet_valid",
    [COFRE_JWT_UNKNOWN_KID] = "unknown_kid",
    [COFRE_JWT_BAD_SIGNATURE] = "bad_signature",
    [COFRE_JWT_REVOKED] = "revoked",
};

const char *cofre_jwt_result_name(cofre_jwt_result_t r)
{
    COFRE_ASSERT(r >= 0 && r < COFRE_JWT_RESULT_COUNT_);
    return result_names[r];
}

/* ---- base64url -------------------------------------------------------------------------- */

static const char b64url_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

size_t cofre_jwt_b64url_encode(const void *in, size_t len, char *out)
{
    const uint8_t *p = in;
    size_t n = 0;
    size_t i = 0;
    for (; i + 3 <= len; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        out[n++] = b64url_alphabet[v >> 18];
        out[n++] = b64url_alphabet[(v >> 12) & 63];
        out[n++] = b64url_alphabet[(v >> 6) & 63];
        out[n++] = b64url_alphabet[v & 63];
    }
    if (len - i == 1) {
        uint32_t v = (uint32_t)p[i] << 16;
        out[n++] = b64url_alphabet[v >> 18];
        out[n++] = b64url_alphabet[(v >> 12) & 63];
    } else if (len - i == 2) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
        out[n++] = b64url_alphabet[v >> 18];
        out[n++] = b64url_alphabet[(v >> 12) & 63];
        out[n++] = b64url_alphabet[(v >> 6) & 63];
    }
    out[n] = '\0';
    return n;
}

static int b64url_value(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

long cofre_jwt_b64url_decode(const char *in, size_t len, uint8_t *out, size_t outsz)
{
    if (len % 4 == 1)
        return -1;
    size_t need = len / 4 * 3 + (len % 4 == 0 ? 0 : len % 4 - 1);
    if (need > outsz)
        return -1;
    uint32_t acc = 0;
    unsigned bits = 0;
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        int v = b64url_value(in[i]);
        if (v < 0)
            return -1;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[n++] = (uint8_t)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    if (acc != 0) /* leftover bits must be zero: one encoding per byte string */
        return -1;
    COFRE_ASSERT(n == need);
    return (long)n;
}

/* ---- decoding --------------------------------------------------------------------------- */

/* Decodes one base64url part into a JSON object (the caller decrefs); NULL when it is not. */
static json_t *decode_json_part(const char *part, size_t len, size_t max)
{
    uint8_t buf[JWT_PAYLOAD_MAX];
    COFRE_ASSERT(max <= sizeof(buf));
    long n = cofre_jwt_b64url_decode(part, len, buf, max);
    if (n <= 0)
        return NULL;
    json_error_t jerr;
    json_t *obj = json_loadb((const char *)buf, (size_t)n, JSON_REJECT_DUPLICATES, &jerr);
    if (obj != NULL && !json_is_object(obj)) {
        json_decref(obj);
        return NULL;
    }
    return obj;
}

/* True when s is 1..max printable ASCII characters without spaces. */
static bool printable(const char *s, size_t len, size_t max)
{
    if (len < 1 || len > max)
        return false;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
            return false;
    return true;
}

/* Copies string member name of obj into out (max chars); false when absent or invalid. */
static bool copy_string(const json_t *obj, const char *name, char *out, size_t max)
{
    const json_t *v = json_object_get(obj, name);
    if (!json_is_string(v))
        return false;
    size_t len = json_string_length(v);
    if (!printable(json_string_value(v), len, max))
        return false;
    memcpy(out, json_string_value(v), len + 1);
    return true;
}

static bool typ_ok(const json_t *typ)
{
    if (!json_is_string(typ))
        return false;
    const char *s = json_string_value(typ);
    /* RFC 9068 §4: "at+jwt" or its full media type; media types compare case-insensitively. */
    return strcasecmp(s, "at+jwt") == 0 || strcasecmp(s, "application/at+jwt") == 0;
}

static cofre_jwt_result_t check_header(const json_t *h, cofre_jwt_t *out)
{
    const json_t *alg = json_object_get(h, "alg");
    if (!json_is_string(alg) || strcmp(json_string_value(alg), "ES256") != 0)
        return COFRE_JWT_BAD_ALG;
    if (!typ_ok(json_object_get(h, "typ")))
        return COFRE_JWT_BAD_TYP;
    if (json_object_get(h, "crit") != NULL) /* no extension is understood here */
        return COFRE_JWT_MALFORMED;
    if (!copy_string(h, "kid", out->kid, COFRE_JWT_KID_MAX))
        return COFRE_JWT_MALFORMED;
    return COFRE_JWT_OK;
}

static bool audience_ok(const json_t *aud, const char *audience)
{
    if (json_is_string(aud))
        return strcmp(json_string_value(aud), audience) == 0;
    if (!json_is_array(aud) || json_array_size(aud) > COFRE_JWT_AUD_MAX)
        return false;
    size_t i;
    const json_t *item;
    bool found = false;
    json_array_foreach(aud, i, item)
    {
        if (!json_is_string(item))
            return false;
        if (strcmp(json_string_value(item), audience) == 0)
            found = true;
    }
    return found;
}

/* Reads a NumericDate; false when present but not an integer in range (absent: *out = 0). */
static bool read_time(const json_t *obj, const char *name, bool required, int64_t *out)
{
    const json_t *v = json_object_get(obj, name);
    *out = 0;
    if (v == NULL)
        return !required;
    if (!json_is_integer(v))
        return false;
    json_int_t t = json_integer_value(v);
    if (t < 0 || t > COFRE_JWT_TIME_MAX)
        return false;
    *out = (int64_t)t;
    return true;
}

static cofre_jwt_result_t check_claims(const json_t *c, const cofre_jwt_policy_t *policy,
                                       cofre_jwt_t *out)
{
    const json_t *iss = json_object_get(c, "iss");
    if (!json_is_string(iss) || strcmp(json_string_value(iss), policy->issuer) != 0)
        return COFRE_JWT_BAD_ISSUER;
    if (!audience_ok(json_object_get(c, "aud"), policy->audience))
        return COFRE_JWT_BAD_AUDIENCE;
    if (!read_time(c, "exp", true, &out->exp) || !read_time(c, "iat", true, &out->iat) ||
        !read_time(c, "nbf", false, &out->nbf))
        return COFRE_JWT_MALFORMED;
    if (!copy_string(c, "sub", out->sub, COFRE_OWNER_MAX) ||
        !copy_string(c, "client_id", out->client_id, COFRE_CLIENT_ID_MAX) ||
        !copy_string(c, "jti", out->jti, COFRE_JWT_JTI_MAX))
        return COFRE_JWT_MALFORMED;
    out->scopes = 0;
    const json_t *scope = json_object_get(c, "scope");
    if (scope != NULL && (!json_is_string(scope) ||
                          !cofre_scope_parse(json_string_value(scope), json_string_length(scope),
                                             &out->scopes, NULL)))
        return COFRE_JWT_MALFORMED;
    return COFRE_JWT_OK;
}

/* Splits token into its three parts at the two dots; false unless there are exactly two. */
static bool split(const char *token, size_t len, size_t *dot1, size_t *dot2)
{
    const char *a = memchr(token, '.', len);
    if (a == NULL)
        return false;
    const char *b = memchr(a + 1, '.', len - (size_t)(a + 1 - token));
    if (b == NULL || memchr(b + 1, '.', len - (size_t)(b + 1 - token)) != NULL)
        return false;
    *dot1 = (size_t)(a - token);
    *dot2 = (size_t)(b - token);
    return true;
}

cofre_jwt_result_t cofre_jwt_decode(const char *token, size_t len, const cofre_jwt_policy_t *policy,
                                    cofre_jwt_t *out)
{
    size_t dot1, dot2;
    if (len == 0 || len > COFRE_JWT_BYTES_MAX || !split(token, len, &dot1, &dot2))
        return COFRE_JWT_MALFORMED;
    memset(out, 0, sizeof(*out));
    json_t *header = decode_json_part(token, dot1, JWT_HEADER_MAX);
    if (header == NULL)
        return COFRE_JWT_MALFORMED;
    cofre_jwt_result_t r = check_header(header, out);
    json_decref(header);
    if (r != COFRE_JWT_OK)
        return r;
    json_t *claims = decode_json_part(token + dot1 + 1, dot2 - dot1 - 1, JWT_PAYLOAD_MAX);
    if (claims == NULL)
        return COFRE_JWT_MALFORMED;
    r = check_claims(claims, policy, out);
    json_decref(claims);
    if (r != COFRE_JWT_OK)
        return r;
    if (cofre_jwt_b64url_decode(token + dot2 + 1, len - dot2 - 1, out->sig, sizeof(out->sig)) !=
        COFRE_JWT_SIG_BYTES)
        return COFRE_JWT_MALFORMED;
    out->signing_input_len = dot2;
    return COFRE_JWT_OK;
}

cofre_jwt_result_t cofre_jwt_check_time(const cofre_jwt_t *jwt, int64_t now_s, unsigned leeway_s)
{
    COFRE_ASSERT(leeway_s <= COFRE_JWT_LEEWAY_MAX_S);
    int64_t leeway = (int64_t)leeway_s;
    if (now_s >= jwt->exp + leeway)
        return COFRE_JWT_EXPIRED;
    if (jwt->nbf > now_s + leeway || jwt->iat > now_s + leeway)
        return COFRE_JWT_NOT_YET_VALID;
    return COFRE_JWT_OK;
}

/* ---- signatures ------------------------------------------------------------------------- */

/* R||S (JWS form) to DER (OpenSSL's form). Returns the DER length, or 0. */
static size_t sig_to_der(const uint8_t raw[COFRE_JWT_SIG_BYTES], uint8_t *der, size_t dersz)
{
    ECDSA_SIG *sig = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(raw, 32, NULL);
    BIGNUM *s = BN_bin2bn(raw + 32, 32, NULL);
    size_t n = 0;
    if (sig != NULL && r != NULL && s != NULL && ECDSA_SIG_set0(sig, r, s) == 1) {
        r = s = NULL; /* owned by sig now */
        int len = i2d_ECDSA_SIG(sig, NULL);
        if (len > 0 && (size_t)len <= dersz) {
            uint8_t *p = der;
            n = (size_t)i2d_ECDSA_SIG(sig, &p);
        }
    }
    BN_free(r);
    BN_free(s);
    ECDSA_SIG_free(sig);
    return n;
}

cofre_jwt_result_t cofre_jwt_verify_signature(const char *token, const cofre_jwt_t *jwt,
                                              EVP_PKEY *key)
{
    uint8_t der[JWT_DER_SIG_MAX];
    size_t der_len = sig_to_der(jwt->sig, der, sizeof(der));
    if (der_len == 0)
        return COFRE_JWT_BAD_SIGNATURE;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    COFRE_ASSERT(ctx != NULL);
    int ok =
        EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, key) == 1 &&
        EVP_DigestVerify(ctx, der, der_len, (const uint8_t *)token, jwt->signing_input_len) == 1;
    EVP_MD_CTX_free(ctx);
    ERR_clear_error(); /* a failed verification leaves errors on this thread's queue */
    return ok ? COFRE_JWT_OK : COFRE_JWT_BAD_SIGNATURE;
}

/* DER (OpenSSL's form) to R||S. Returns false when der is not a P-256 signature. */
static bool der_to_sig(const uint8_t *der, size_t len, uint8_t raw[COFRE_JWT_SIG_BYTES])
{
    const uint8_t *p = der;
    ECDSA_SIG *sig = d2i_ECDSA_SIG(NULL, &p, (long)len);
    if (sig == NULL)
        return false;
    const BIGNUM *r, *s;
    ECDSA_SIG_get0(sig, &r, &s);
    bool ok = BN_bn2binpad(r, raw, 32) == 32 && BN_bn2binpad(s, raw + 32, 32) == 32;
    ECDSA_SIG_free(sig);
    return ok;
}

static void append_b64url(cofre_jbuf_t *out, const void *data, size_t len)
{
    char *tmp = cofre_malloc(COFRE_JWT_B64URL_LEN(len) + 1);
    size_t n = cofre_jwt_b64url_encode(data, len, tmp);
    cofre_jbuf_append(out, tmp, n);
    free(tmp);
}

int cofre_jwt_sign(EVP_PKEY *key, const char *kid, const char *claims, size_t len,
                   cofre_jbuf_t *out)
{
    cofre_jbuf_t header;
    cofre_jbuf_init(&header);
    cofre_jbuf_obj_begin(&header);
    cofre_jbuf_kstr(&header, "alg", "ES256");
    cofre_jbuf_kstr(&header, "typ", "at+jwt");
    cofre_jbuf_kstr(&header, "kid", kid);
    cofre_jbuf_obj_end(&header);
    size_t start = out->len;
    append_b64url(out, header.data, header.len);
    cofre_jbuf_append(out, ".", 1);
    append_b64url(out, claims, len);
    cofre_jbuf_release(&header);

    uint8_t der[JWT_DER_SIG_MAX];
    size_t der_len = sizeof(der);
    uint8_t raw[COFRE_JWT_SIG_BYTES];
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    COFRE_ASSERT(ctx != NULL);
    bool ok = EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, key) == 1 &&
              EVP_DigestSign(ctx, der, &der_len, (const uint8_t *)out->data + start,
                             out->len - start) == 1 &&
              der_to_sig(der, der_len, raw);
    EVP_MD_CTX_free(ctx);
    if (!ok) {
        unsigned long e = ERR_get_error();
        ERR_clear_error();
        COFRE_LOG(COFRE_LOG_ERROR, NULL, "token signing failed",
                  COFRE_LF_STR("error", ERR_reason_error_string(e)));
        return COFRE_EIO;
    }
    cofre_jbuf_append(out, ".", 1);
    append_b64url(out, raw, sizeof(raw));
    return 0;
}
