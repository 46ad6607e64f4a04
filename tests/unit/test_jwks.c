/* test_jwks.c: JWK Sets: written keys parse back and verify, RFC 7638 thumbprints, and every
 * kind of bad set refused (or a foreign key skipped). */
#include "unit.h"

#include "cofre/jwks.h"
#include "tokens.h"

static void written_key_parses_back_and_verifies(void **state)
{
    (void)state;
    EVP_PKEY *key = cofre_jwks_generate();
    char kid[COFRE_JWKS_KID_LEN + 1];
    assert_int_equal(cofre_jwks_thumbprint(key, kid), 0);
    assert_int_equal(strlen(kid), COFRE_JWKS_KID_LEN);
    cofre_jbuf_t b;
    cofre_jbuf_init(&b);
    cofre_jbuf_appendz(&b, "{\"keys\":[");
    assert_int_equal(cofre_jwks_write_key(&b, key, kid), 0);
    cofre_jbuf_appendz(&b, "]}");
    char err[200];
    cofre_jwks_t *set = cofre_jwks_parse(b.data, b.len, err, sizeof(err));
    assert_non_null(set);
    assert_int_equal(set->n, 1);
    EVP_PKEY *pub = cofre_jwks_find(set, kid);
    assert_non_null(pub);
    assert_null(cofre_jwks_find(set, "other"));
    /* The thumbprint of the parsed public key is the same kid. */
    char kid2[COFRE_JWKS_KID_LEN + 1];
    assert_int_equal(cofre_jwks_thumbprint(pub, kid2), 0);
    assert_string_equal(kid, kid2);
    /* A token signed with the private key verifies with the parsed public key. */
    char *claims = tokens_claims(tokens_now(), "");
    char *token = tokens_make(key, TOKENS_HEADER("x"), claims);
    cofre_jwt_policy_t policy = {"https://issuer.test", "cofre-api"};
    cofre_jwt_t jwt;
    assert_int_equal(cofre_jwt_decode(token, strlen(token), &policy, &jwt), COFRE_JWT_OK);
    assert_int_equal(cofre_jwt_verify_signature(token, &jwt, pub), COFRE_JWT_OK);
    free(token);
    free(claims);
    cofre_jwks_free(set);
    cofre_jbuf_release(&b);
    EVP_PKEY_free(key);
}

static void thumbprints_differ_per_key(void **state)
{
    (void)state;
    EVP_PKEY *a = cofre_jwks_generate(), *b = cofre_jwks_generate();
    char ka[COFRE_JWKS_KID_LEN + 1], kb[COFRE_JWKS_KID_LEN + 1], ka2[COFRE_JWKS_KID_LEN + 1];
    assert_int_equal(cofre_jwks_thumbprint(a, ka), 0);
    assert_int_equal(cofre_jwks_thumbprint(b, kb), 0);
    assert_int_equal(cofre_jwks_thumbprint(a, ka2), 0);
    assert_string_not_equal(ka, kb);
    assert_string_equal(ka, ka2);
    EVP_PKEY_free(a);
    EVP_PKEY_free(b);
}

/* A point on P-256 (the generator) and one off it. */
#define GX   "axfR8uEsQkf4vOblY6RA8ncDfYEt6zOg9KE5RdiYwpY"
#define GY   "T-NC4v4af5uO5-tKfA-eFivOM1drMV7Oy7ZAaDe_UfU"
#define BADY "T-NC4v4af5uO5-tKfA-eFivOM1drMV7Oy7ZAaDe_UfQ"

static void sets_and_keys(void **state)
{
    (void)state;
    char err[200];
    struct {
        const char *doc;
        long n; /* keys kept, or -1: refused */
    } cases[] = {
        {"{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"g\",\"x\":\"" GX "\",\"y\":\"" GY
         "\"}]}",
         1},
        {"{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"g\",\"x\":\"" GX "\",\"y\":\"" BADY
         "\"}]}",
         -1},
        {"{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"r\",\"n\":\"AQAB\",\"e\":\"AQAB\"}]}", 0},
        {"{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-384\",\"kid\":\"p\"}]}", 0},
        {"{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"alg\":\"ES384\",\"kid\":\"g\",\"x\":\"" GX
         "\",\"y\":\"" GY "\"}]}",
         0},
        {"{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"use\":\"enc\",\"kid\":\"g\",\"x\":\"" GX
         "\",\"y\":\"" GY "\"}]}",
         0},
        {"{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"" GX "\",\"y\":\"" GY "\"}]}", -1},
        {"{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"g\",\"x\":\"" GX "\",\"y\":\"" GY
         "\"},{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"g\",\"x\":\"" GX "\",\"y\":\"" GY "\"}]}",
         -1},
        {"{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"g\",\"x\":\"AAAA\",\"y\":\"" GY
         "\"}]}",
         -1},
        {"{\"keys\":{}}", -1},
        {"[]", -1},
        {"{\"keys\":[1]}", -1},
        {"{\"keys\":[]}", 0},
    };
    for (size_t i = 0; i < COFRE_ARRAY_SIZE(cases); i++) {
        cofre_jwks_t *set = cofre_jwks_parse(cases[i].doc, strlen(cases[i].doc), err, sizeof(err));
        long got = set != NULL ? (long)set->n : -1;
        if (got != cases[i].n)
            fail_msg("case %zu: expected %ld keys, got %ld (%s)", i, cases[i].n, got, err);
        cofre_jwks_free(set);
    }
}

static void too_many_keys(void **state)
{
    (void)state;
    cofre_jbuf_t b;
    cofre_jbuf_init(&b);
    cofre_jbuf_appendz(&b, "{\"keys\":[");
    for (int i = 0; i <= COFRE_JWKS_KEYS_MAX; i++) {
        char one[256];
        snprintf(one, sizeof(one),
                 "%s{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"k%d\",\"x\":\"" GX "\",\"y\":\"" GY
                 "\"}",
                 i > 0 ? "," : "", i);
        cofre_jbuf_appendz(&b, one);
    }
    cofre_jbuf_appendz(&b, "]}");
    char err[200];
    assert_null(cofre_jwks_parse(b.data, b.len, err, sizeof(err)));
    assert_non_null(strstr(err, "more than"));
    cofre_jbuf_release(&b);
}

static void superset(void **state)
{
    (void)state;
    char err[200];
    const char *one = "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"a\",\"x\":\"" GX
                      "\",\"y\":\"" GY "\"}]}";
    const char *two = "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"a\",\"x\":\"" GX
                      "\",\"y\":\"" GY "\"},{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"b\","
                      "\"x\":\"" GX "\",\"y\":\"" GY "\"}]}";
    cofre_jwks_t *a = cofre_jwks_parse(one, strlen(one), err, sizeof(err));
    cofre_jwks_t *ab = cofre_jwks_parse(two, strlen(two), err, sizeof(err));
    assert_true(cofre_jwks_superset(ab, a));
    assert_false(cofre_jwks_superset(a, ab));
    assert_true(cofre_jwks_superset(a, NULL));
    cofre_jwks_free(a);
    cofre_jwks_free(ab);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(written_key_parses_back_and_verifies),
        cmocka_unit_test(thumbprints_differ_per_key),
        cmocka_unit_test(sets_and_keys),
        cmocka_unit_test(too_many_keys),
        cmocka_unit_test(superset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
