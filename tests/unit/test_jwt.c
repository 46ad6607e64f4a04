/* test_jwt.c: base64url, ES256 signing and verification, and every rule of RFC 8725 the token
 * check enforces: each forged or broken token is refused for the right reason. */
#include "unit.h"

#include "cofre/http.h"
#include "cofre/jwks.h"
#include "cofre/jwt.h"
#include "tokens.h"

static EVP_PKEY *key;
static EVP_PKEY *other_key;
static const cofre_jwt_policy_t policy = {.issuer = "https://issuer.test", .audience = "cofre-api"};

static int setup(void **state)
{
    (void)state;
    key = cofre_jwks_generate();
    other_key = cofre_jwks_generate();
    return key != NULL && other_key != NULL ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    EVP_PKEY_free(key);
    EVP_PKEY_free(other_key);
    return 0;
}

/* Decodes and verifies token with key at now: the first reason to refuse it, or OK. */
static cofre_jwt_result_t check(const char *token, EVP_PKEY *k, int64_t now, cofre_jwt_t *out)
{
    cofre_jwt_t jwt = {0};
    cofre_jwt_t *j = out != NULL ? out : &jwt;
    cofre_jwt_result_t r = cofre_jwt_decode(token, strlen(token), &policy, j);
    if (r == COFRE_JWT_OK)
        r = cofre_jwt_check_time(j, now, 30);
    if (r == COFRE_JWT_OK)
        r = cofre_jwt_verify_signature(token, j, k);
    return r;
}

static void expect(const char *header, const char *claims, cofre_jwt_result_t want)
{
    char *token = tokens_make(key, header, claims);
    cofre_jwt_result_t got = check(token, key, tokens_now(), NULL);
    if (got != want)
        fail_msg("header %s claims %s: expected %s, got %s", header, claims,
                 cofre_jwt_result_name(want), cofre_jwt_result_name(got));
    free(token);
}

static void b64url_round_trips_every_length(void **state)
{
    (void)state;
    uint8_t in[70] = {0}, out[70];
    char text[COFRE_JWT_B64URL_LEN(70) + 1];
    for (size_t len = 0; len <= sizeof(in); len++) {
        for (size_t i = 0; i < len; i++)
            in[i] = (uint8_t)(i * 37 + len);
        size_t n = cofre_jwt_b64url_encode(in, len, text);
        assert_int_equal(n, COFRE_JWT_B64URL_LEN(len));
        assert_null(strpbrk(text, "+/="));
        assert_int_equal(cofre_jwt_b64url_decode(text, n, out, sizeof(out)), (long)len);
        assert_memory_equal(in, out, len);
    }
}

static void b64url_rejects_non_canonical_input(void **state)
{
    (void)state;
    uint8_t out[16];
    static const char *const bad[] = {"QQ==", "QQ=", "Q", "QR", "a+b/", "ab c", "ab\n", "Zm9v!"};
    for (size_t i = 0; i < COFRE_ARRAY_SIZE(bad); i++)
        if (cofre_jwt_b64url_decode(bad[i], strlen(bad[i]), out, sizeof(out)) != -1)
            fail_msg("\"%s\" decoded", bad[i]);
    /* "QQ" is the canonical "A"; "QR" differs only in unused bits and is refused above. */
    assert_int_equal(cofre_jwt_b64url_decode("QQ", 2, out, sizeof(out)), 1);
    assert_int_equal(out[0], 'A');
    assert_int_equal(cofre_jwt_b64url_decode("QUJD", 4, out, 2), -1); /* does not fit */
}

static void signed_token_verifies_and_yields_claims(void **state)
{
    (void)state;
    int64_t now = tokens_now();
    char *claims = tokens_claims(now, "");
    cofre_jbuf_t b;
    cofre_jbuf_init(&b);
    assert_int_equal(cofre_jwt_sign(key, "kid-1", claims, strlen(claims), &b), 0);
    cofre_jwt_t jwt;
    assert_int_equal(check(b.data, key, now, &jwt), COFRE_JWT_OK);
    assert_string_equal(jwt.kid, "kid-1");
    assert_string_equal(jwt.sub, "alice");
    assert_string_equal(jwt.client_id, "app-1");
    assert_string_equal(jwt.jti, "j-1");
    assert_int_equal(jwt.scopes, COFRE_SCOPE_ACCOUNTS_READ | COFRE_SCOPE_TRANSFERS_WRITE);
    assert_int_equal(jwt.exp, now + 900);
    /* The same token against another key: the signature is the only thing that fails. */
    assert_int_equal(check(b.data, other_key, now, NULL), COFRE_JWT_BAD_SIGNATURE);
    cofre_jbuf_release(&b);
    free(claims);
}

static void algorithms_other_than_es256_are_refused(void **state)
{
    (void)state;
    char *claims = tokens_claims(tokens_now(), "");
    static const char *const headers[] = {
        "{\"alg\":\"none\",\"typ\":\"at+jwt\",\"kid\":\"k\"}",
        "{\"alg\":\"HS256\",\"typ\":\"at+jwt\",\"kid\":\"k\"}",
        "{\"alg\":\"RS256\",\"typ\":\"at+jwt\",\"kid\":\"k\"}",
        "{\"alg\":\"ES384\",\"typ\":\"at+jwt\",\"kid\":\"k\"}",
        "{\"alg\":\"es256\",\"typ\":\"at+jwt\",\"kid\":\"k\"}",
        "{\"alg\":[\"ES256\"],\"typ\":\"at+jwt\",\"kid\":\"k\"}",
        "{\"typ\":\"at+jwt\",\"kid\":\"k\"}",
    };
    for (size_t i = 0; i < COFRE_ARRAY_SIZE(headers); i++)
        expect(headers[i], claims, COFRE_JWT_BAD_ALG);
    free(claims);
}

static void unsigned_token_is_refused(void **state)
{
    (void)state;
    /* alg none with an empty signature: refused before any key is looked at. */
    char *claims = tokens_claims(tokens_now(), "");
    cofre_jbuf_t b;
    cofre_jbuf_init(&b);
    const char *h = "{\"alg\":\"none\",\"typ\":\"at+jwt\",\"kid\":\"k\"}";
    tokens_append_b64(&b, h, strlen(h));
    cofre_jbuf_append(&b, ".", 1);
    tokens_append_b64(&b, claims, strlen(claims));
    cofre_jbuf_append(&b, ".", 1);
    cofre_jwt_t jwt;
    assert_int_equal(cofre_jwt_decode(b.data, b.len, &policy, &jwt), COFRE_JWT_BAD_ALG);
    cofre_jbuf_release(&b);
    free(claims);
}

static void typ_must_be_at_jwt(void **state)
{
    (void)state;
    char *claims = tokens_claims(tokens_now(), "");
    expect("{\"alg\":\"ES256\",\"typ\":\"JWT\",\"kid\":\"k\"}", claims, COFRE_JWT_BAD_TYP);
    expect("{\"alg\":\"ES256\",\"kid\":\"k\"}", claims, COFRE_JWT_BAD_TYP);
    expect("{\"alg\":\"ES256\",\"typ\":\"at+jwtx\",\"kid\":\"k\"}", claims, COFRE_JWT_BAD_TYP);
    expect("{\"alg\":\"ES256\",\"typ\":\"application/at+jwt\",\"kid\":\"k\"}", claims,
           COFRE_JWT_OK);
    expect("{\"alg\":\"ES256\",\"typ\":\"AT+JWT\",\"kid\":\"k\"}", claims, COFRE_JWT_OK);
    free(claims);
}

static void header_rules(void **state)
{
    (void)state;
    char *claims = tokens_claims(tokens_now(), "");
    /* crit names extensions this verifier does not implement: refused. */
    expect("{\"alg\":\"ES256\",\"typ\":\"at+jwt\",\"kid\":\"k\",\"crit\":[\"exp\"]}", claims,
           COFRE_JWT_MALFORMED);
    expect("{\"alg\":\"ES256\",\"typ\":\"at+jwt\"}", claims, COFRE_JWT_MALFORMED);
    expect("{\"alg\":\"ES256\",\"typ\":\"at+jwt\",\"kid\":\"\"}", claims, COFRE_JWT_MALFORMED);
    expect("{\"alg\":\"ES256\",\"typ\":\"at+jwt\",\"kid\":7}", claims, COFRE_JWT_MALFORMED);
    expect("{\"alg\":\"ES256\",\"alg\":\"none\",\"typ\":\"at+jwt\",\"kid\":\"k\"}", claims,
           COFRE_JWT_MALFORMED); /* a duplicate member */
    /* A key carried in the token is never used: the token verifies with our key only. */
    expect("{\"alg\":\"ES256\",\"typ\":\"at+jwt\",\"kid\":\"k\",\"jku\":\"http://evil\","
           "\"jwk\":{\"kty\":\"oct\"}}",
           claims, COFRE_JWT_OK);
    free(claims);
}

static void issuer_and_audience_match_exactly(void **state)
{
    (void)state;
    int64_t now = tokens_now();
    char claims[1024];
    const char *h = TOKENS_HEADER("k");
    static const char *const issuers[] = {"https://issuer.test/", "https://issuer.tes",
                                          "HTTPS://issuer.test", ""};
    for (size_t i = 0; i < COFRE_ARRAY_SIZE(issuers); i++) {
        snprintf(claims, sizeof(claims),
                 "{\"iss\":\"%s\",\"sub\":\"a\",\"aud\":\"cofre-api\",\"exp\":%lld,"
                 "\"iat\":%lld,\"jti\":\"j\",\"client_id\":\"c\"}",
                 issuers[i], (long long)now + 60, (long long)now);
        expect(h, claims, COFRE_JWT_BAD_ISSUER);
    }
    static const char *const auds[] = {"\"cofre\"", "\"cofre-api \"", "[\"x\",\"y\"]", "[]", "7",
                                       "null"};
    for (size_t i = 0; i < COFRE_ARRAY_SIZE(auds); i++) {
        snprintf(claims, sizeof(claims),
                 "{\"iss\":\"https://issuer.test\",\"sub\":\"a\",\"aud\":%s,\"exp\":%lld,"
                 "\"iat\":%lld,\"jti\":\"j\",\"client_id\":\"c\"}",
                 auds[i], (long long)now + 60, (long long)now);
        expect(h, claims, COFRE_JWT_BAD_AUDIENCE);
    }
    snprintf(claims, sizeof(claims),
             "{\"iss\":\"https://issuer.test\",\"sub\":\"a\",\"aud\":[\"x\",\"cofre-api\"],"
             "\"exp\":%lld,\"iat\":%lld,\"jti\":\"j\",\"client_id\":\"c\"}",
             (long long)now + 60, (long long)now);
    expect(h, claims, COFRE_JWT_OK);
}

static void times_with_leeway(void **state)
{
    (void)state;
    cofre_jwt_t jwt = {.exp = 1000, .iat = 500, .nbf = 600};
    assert_int_equal(cofre_jwt_check_time(&jwt, 999, 0), COFRE_JWT_OK);
    assert_int_equal(cofre_jwt_check_time(&jwt, 1000, 0), COFRE_JWT_EXPIRED);
    assert_int_equal(cofre_jwt_check_time(&jwt, 1059, 60), COFRE_JWT_OK);
    assert_int_equal(cofre_jwt_check_time(&jwt, 1060, 60), COFRE_JWT_EXPIRED);
    assert_int_equal(cofre_jwt_check_time(&jwt, 599, 0), COFRE_JWT_NOT_YET_VALID);
    assert_int_equal(cofre_jwt_check_time(&jwt, 600, 0), COFRE_JWT_OK);
    assert_int_equal(cofre_jwt_check_time(&jwt, 540, 60), COFRE_JWT_OK);
    assert_int_equal(cofre_jwt_check_time(&jwt, 539, 60), COFRE_JWT_NOT_YET_VALID);
    cofre_jwt_t future_iat = {.exp = 1000, .iat = 900};
    assert_int_equal(cofre_jwt_check_time(&future_iat, 800, 30), COFRE_JWT_NOT_YET_VALID);
}

static void expired_and_early_tokens_are_refused(void **state)
{
    (void)state;
    int64_t now = tokens_now();
    char claims[1024];
    const char *h = TOKENS_HEADER("k");
    const char *fmt = "{\"iss\":\"https://issuer.test\",\"sub\":\"a\",\"aud\":\"cofre-api\","
                      "\"exp\":%lld,\"iat\":%lld,\"nbf\":%lld,\"jti\":\"j\",\"client_id\":\"c\"}";
    snprintf(claims, sizeof(claims), fmt, (long long)now - 120, (long long)now - 1000,
             (long long)now - 1000);
    expect(h, claims, COFRE_JWT_EXPIRED);
    snprintf(claims, sizeof(claims), fmt, (long long)now + 1000, (long long)now,
             (long long)now + 120);
    expect(h, claims, COFRE_JWT_NOT_YET_VALID);
}

static void claims_must_be_present_and_typed(void **state)
{
    (void)state;
    int64_t now = tokens_now();
    char claims[1024];
    const char *h = TOKENS_HEADER("k");
    static const char *const bodies[] = {
        /* exp missing, exp a string, exp a float, exp negative, sub missing, sub empty,
           client_id missing, jti missing, scope not a string, scope with an empty item */
        "\"iat\":%2$lld,\"sub\":\"a\",\"jti\":\"j\",\"client_id\":\"c\"",
        "\"exp\":\"%1$lld\",\"iat\":%2$lld,\"sub\":\"a\",\"jti\":\"j\",\"client_id\":\"c\"",
        "\"exp\":%1$lld.5,\"iat\":%2$lld,\"sub\":\"a\",\"jti\":\"j\",\"client_id\":\"c\"",
        "\"exp\":-1,\"iat\":%2$lld,\"sub\":\"a\",\"jti\":\"j\",\"client_id\":\"c\"",
        "\"exp\":%1$lld,\"iat\":%2$lld,\"jti\":\"j\",\"client_id\":\"c\"",
        "\"exp\":%1$lld,\"iat\":%2$lld,\"sub\":\"\",\"jti\":\"j\",\"client_id\":\"c\"",
        "\"exp\":%1$lld,\"iat\":%2$lld,\"sub\":\"a\",\"jti\":\"j\"",
        "\"exp\":%1$lld,\"iat\":%2$lld,\"sub\":\"a\",\"client_id\":\"c\"",
        "\"exp\":%1$lld,\"iat\":%2$lld,\"sub\":\"a\",\"jti\":\"j\",\"client_id\":\"c\","
        "\"scope\":[\"accounts:read\"]",
        "\"exp\":%1$lld,\"iat\":%2$lld,\"sub\":\"a\",\"jti\":\"j\",\"client_id\":\"c\","
        "\"scope\":\"accounts:read  ledger:admin\"",
    };
    for (size_t i = 0; i < COFRE_ARRAY_SIZE(bodies); i++) {
        char members[512];
        snprintf(members, sizeof(members), bodies[i], (long long)now + 60, (long long)now);
        snprintf(claims, sizeof(claims),
                 "{\"iss\":\"https://issuer.test\",\"aud\":\"cofre-api\",%s}", members);
        expect(h, claims, COFRE_JWT_MALFORMED);
    }
}

static void unknown_scopes_are_ignored(void **state)
{
    (void)state;
    char *claims = tokens_claims_scope(tokens_now(), "payments:all ledger:admin", "");
    char *token = tokens_make(key, TOKENS_HEADER("k"), claims);
    cofre_jwt_t jwt;
    assert_int_equal(check(token, key, tokens_now(), &jwt), COFRE_JWT_OK);
    assert_int_equal(jwt.scopes, COFRE_SCOPE_LEDGER_ADMIN);
    free(token);
    free(claims);
}

static void tampering_breaks_the_signature(void **state)
{
    (void)state;
    int64_t now = tokens_now();
    char *claims = tokens_claims(now, "");
    char *token = tokens_make(key, TOKENS_HEADER("k"), claims);
    /* A payload claiming more scopes, under the original header and signature. */
    char *more = tokens_claims_scope(now, "ledger:admin", "");
    char *forged = tokens_make(key, TOKENS_HEADER("k"), more);
    char *dot1 = strchr(token, '.'), *dot2 = strrchr(token, '.');
    char *fdot1 = strchr(forged, '.'), *fdot2 = strrchr(forged, '.');
    cofre_jbuf_t b;
    cofre_jbuf_init(&b);
    cofre_jbuf_append(&b, token, (size_t)(dot1 - token));
    cofre_jbuf_append(&b, fdot1, (size_t)(fdot2 - fdot1));
    cofre_jbuf_appendz(&b, dot2);
    assert_int_equal(check(b.data, key, now, NULL), COFRE_JWT_BAD_SIGNATURE);
    cofre_jbuf_release(&b);
    /* Every single character of the signature changed: refused every time. */
    size_t sig_at = (size_t)(dot2 + 1 - token);
    for (size_t i = sig_at; token[i] != '\0'; i++) {
        char saved = token[i];
        token[i] = saved == 'A' ? 'B' : 'A';
        cofre_jwt_result_t r = check(token, key, now, NULL);
        if (r != COFRE_JWT_BAD_SIGNATURE && r != COFRE_JWT_MALFORMED)
            fail_msg("signature char %zu changed: %s", i - sig_at, cofre_jwt_result_name(r));
        token[i] = saved;
    }
    assert_int_equal(check(token, key, now, NULL), COFRE_JWT_OK);
    free(forged);
    free(more);
    free(token);
    free(claims);
}

static void shapes_that_are_not_tokens(void **state)
{
    (void)state;
    char *claims = tokens_claims(tokens_now(), "");
    char *token = tokens_make(key, TOKENS_HEADER("k"), claims);
    cofre_jwt_t jwt;
    static const char *const bad[] = {
        "", ".", "..", "...", "a.b", "a.b.c.d", "a.b.c", "eyJ9.e30.AAAA", "e30.e30.AAAA"};
    for (size_t i = 0; i < COFRE_ARRAY_SIZE(bad); i++)
        if (cofre_jwt_decode(bad[i], strlen(bad[i]), &policy, &jwt) == COFRE_JWT_OK)
            fail_msg("\"%s\" decoded", bad[i]);
    /* a fourth part, a truncated signature, a signature of the wrong length */
    cofre_jbuf_t b;
    cofre_jbuf_init(&b);
    cofre_jbuf_appendz(&b, token);
    cofre_jbuf_appendz(&b, ".AAAA");
    assert_int_equal(cofre_jwt_decode(b.data, b.len, &policy, &jwt), COFRE_JWT_MALFORMED);
    size_t len = strlen(token);
    assert_int_equal(cofre_jwt_decode(token, len - 4, &policy, &jwt), COFRE_JWT_MALFORMED);
    cofre_jbuf_reset(&b);
    cofre_jbuf_append(&b, token, (size_t)(strrchr(token, '.') - token));
    cofre_jbuf_appendz(&b,
                       ".AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    assert_int_equal(cofre_jwt_decode(b.data, b.len, &policy, &jwt), COFRE_JWT_MALFORMED);
    /* too long, at the limit */
    char *huge = cofre_calloc(1, COFRE_JWT_BYTES_MAX + 2);
    memset(huge, 'A', COFRE_JWT_BYTES_MAX + 1);
    assert_int_equal(cofre_jwt_decode(huge, COFRE_JWT_BYTES_MAX + 1, &policy, &jwt),
                     COFRE_JWT_MALFORMED);
    free(huge);
    cofre_jbuf_release(&b);
    free(token);
    free(claims);
}

static void hs256_with_the_public_key_as_secret_is_refused(void **state)
{
    (void)state;
    /* The classic confusion attack: HMAC keyed with the verifier's public key. It is refused
     * by its alg alone, so the verifier never treats key material as an HMAC secret. */
    char *claims = tokens_claims(tokens_now(), "");
    cofre_jbuf_t b;
    cofre_jbuf_init(&b);
    const char *h = "{\"alg\":\"HS256\",\"typ\":\"at+jwt\",\"kid\":\"k\"}";
    tokens_append_b64(&b, h, strlen(h));
    cofre_jbuf_append(&b, ".", 1);
    tokens_append_b64(&b, claims, strlen(claims));
    uint8_t mac[32] = {0};
    cofre_jbuf_append(&b, ".", 1);
    tokens_append_b64(&b, mac, sizeof(mac));
    cofre_jwt_t jwt;
    assert_int_equal(cofre_jwt_decode(b.data, b.len, &policy, &jwt), COFRE_JWT_BAD_ALG);
    cofre_jbuf_release(&b);
    free(claims);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(b64url_round_trips_every_length),
        cmocka_unit_test(b64url_rejects_non_canonical_input),
        cmocka_unit_test(signed_token_verifies_and_yields_claims),
        cmocka_unit_test(algorithms_other_than_es256_are_refused),
        cmocka_unit_test(unsigned_token_is_refused),
        cmocka_unit_test(typ_must_be_at_jwt),
        cmocka_unit_test(header_rules),
        cmocka_unit_test(issuer_and_audience_match_exactly),
        cmocka_unit_test(times_with_leeway),
        cmocka_unit_test(expired_and_early_tokens_are_refused),
        cmocka_unit_test(claims_must_be_present_and_typed),
        cmocka_unit_test(unknown_scopes_are_ignored),
        cmocka_unit_test(tampering_breaks_the_signature),
        cmocka_unit_test(shapes_that_are_not_tokens),
        cmocka_unit_test(hs256_with_the_public_key_as_secret_is_refused),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
