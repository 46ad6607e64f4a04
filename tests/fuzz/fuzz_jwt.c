/*
 * fuzz_jwt.c: libFuzzer target for everything the token check and cofre-auth read from the
 * outside world: access tokens (decode, then signature verification), base64url, JWK Sets,
 * revocation lists, the JWKS fetcher's HTTP responses, and the token endpoint's form bodies
 * and Basic credentials. The first byte picks the parser; the rest is the input. Parsers must
 * never crash, leak or read out of bounds, and what they accept must satisfy their contract.
 */
#include "auth/oauth.h"
#include "cofre/auth.h"
#include "cofre/common.h"
#include "cofre/fetch.h"
#include "cofre/jwks.h"
#include "cofre/jwt.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The P-256 generator as a public key: a valid key no fuzzed signature will match. */
static const char jwks_doc[] = "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"k\","
                               "\"x\":\"axfR8uEsQkf4vOblY6RA8ncDfYEt6zOg9KE5RdiYwpY\","
                               "\"y\":\"T-NC4v4af5uO5-tKfA-eFivOM1drMV7Oy7ZAaDe_UfU\"}]}";
static cofre_jwks_t *keys;
static const cofre_jwt_policy_t policy = {.issuer = "https://issuer.test", .audience = "cofre-api"};

static void fuzz_token(const char *s, size_t len)
{
    cofre_jwt_t jwt;
    if (cofre_jwt_decode(s, len, &policy, &jwt) != COFRE_JWT_OK)
        return;
    COFRE_ASSERT(jwt.kid[0] != '\0' && jwt.sub[0] != '\0' && jwt.client_id[0] != '\0');
    COFRE_ASSERT(jwt.exp >= 0 && jwt.exp <= COFRE_JWT_TIME_MAX);
    COFRE_ASSERT(jwt.signing_input_len < len);
    COFRE_ASSERT((jwt.scopes & ~COFRE_SCOPE_ALL) == 0);
    (void)cofre_jwt_check_time(&jwt, 1700000000, 60);
    EVP_PKEY *key = cofre_jwks_find(keys, jwt.kid);
    if (key != NULL)
        (void)cofre_jwt_verify_signature(s, &jwt, key);
}

/* Canonical base64url: whatever decodes re-encodes to exactly the input. */
static void fuzz_b64url(const char *s, size_t len)
{
    uint8_t out[1024];
    long n = cofre_jwt_b64url_decode(s, len, out, sizeof(out));
    if (n < 0)
        return;
    char back[1400];
    size_t m = cofre_jwt_b64url_encode(out, (size_t)n, back);
    COFRE_ASSERT(m == len && memcmp(back, s, len) == 0);
}

static void fuzz_documents(uint8_t which, const char *s, size_t len)
{
    char err[256];
    if (which == 2) {
        cofre_jwks_t *set = cofre_jwks_parse(s, len, err, sizeof(err));
        COFRE_ASSERT(set == NULL || set->n <= COFRE_JWKS_KEYS_MAX);
        cofre_jwks_free(set);
    } else if (which == 3) {
        char(*ids)[COFRE_CLIENT_ID_MAX + 1] = NULL;
        long n = cofre_auth_parse_revocations(s, len, &ids);
        for (long i = 1; i < n; i++)
            COFRE_ASSERT(strcmp(ids[i - 1], ids[i]) <= 0);
        free(ids);
    } else {
        cofre_fetch_response_t r;
        if (cofre_fetch_parse_response(s, len, 4096, &r) == 0) {
            COFRE_ASSERT(r.len <= 4096 && r.body[r.len] == '\0');
            free(r.body);
        }
    }
}

/* "header\nbody": the Authorization header (empty: none) and a form body. */
static void fuzz_oauth(const char *s, size_t len)
{
    const char *nl = memchr(s, '\n', len);
    size_t hlen = nl != NULL ? (size_t)(nl - s) : 0;
    const char *body = nl != NULL ? nl + 1 : s;
    size_t blen = len - (size_t)(body - s);
    cofre_oauth_form_t f;
    const char *why = NULL;
    if (cofre_oauth_form_parse(body, blen, &f, &why)) {
        cofre_oauth_client_auth_t a;
        if (cofre_oauth_client_auth(hlen > 0 ? s : NULL, hlen, &f, &a, &why) == COFRE_OAUTH_OK)
            COFRE_ASSERT(a.client_id[0] != '\0' && a.secret_len > 0 &&
                         a.secret_len <= COFRE_SECRET_INPUT_MAX);
    }
    cofre_oauth_form_release(&f);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    char err[256];
    keys = cofre_jwks_parse(jwks_doc, strlen(jwks_doc), err, sizeof(err));
    COFRE_ASSERT(keys != NULL && keys->n == 1);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t which = data[0] % 6;
    /* A private, exactly sized copy so reads past the end are caught. */
    size_t len = size - 1;
    char *s = malloc(len > 0 ? len : 1);
    memcpy(s, data + 1, len);
    if (which == 0)
        fuzz_token(s, len);
    else if (which == 1)
        fuzz_b64url(s, len);
    else if (which <= 4)
        fuzz_documents(which, s, len);
    else
        fuzz_oauth(s, len);
    free(s);
    return 0;
}
