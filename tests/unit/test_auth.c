/* test_auth.c: the token check of every service: its configuration (each missing or bad
 * setting named), checks against a JWKS file, the verified-token cache (hits, expiry on a hit,
 * a withdrawn key), and the revocation list parser. */
#include "unit.h"

#include "cofre/auth.h"
#include "cofre/jwks.h"
#include "cofre/log.h"
#include "cofre/metrics.h"
#include "tokens.h"

#include <stdlib.h>
#include <unistd.h>

static char dir[] = "/tmp/cofre-test-auth-XXXXXX";
static char jwks_path[256];
static EVP_PKEY *key_a, *key_b;

static void write_jwks(EVP_PKEY *const *keys, const char *const *kids, size_t n)
{
    cofre_jbuf_t b;
    cofre_jbuf_init(&b);
    cofre_jbuf_obj_begin(&b);
    cofre_jbuf_key(&b, "keys");
    cofre_jbuf_arr_begin(&b);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(cofre_jwks_write_key(&b, keys[i], kids[i]), 0);
    cofre_jbuf_arr_end(&b);
    cofre_jbuf_obj_end(&b);
    char tmp[300];
    snprintf(tmp, sizeof(tmp), "%s.tmp", jwks_path);
    FILE *f = fopen(tmp, "w");
    assert_non_null(f);
    fwrite(b.data, 1, b.len, f);
    fclose(f);
    assert_int_equal(rename(tmp, jwks_path), 0);
    cofre_jbuf_release(&b);
}

static void clear_env(void)
{
    static const char *const vars[] = {
        "COFRE_AUTH",           "COFRE_AUTH_ISSUER",    "COFRE_AUTH_AUDIENCE",
        "COFRE_JWKS_URL",       "COFRE_JWKS_FILE",      "COFRE_AUTH_LEEWAY_S",
        "COFRE_JWKS_REFRESH_S", "COFRE_AUTH_CACHE_MAX", "COFRE_AUTH_REVOCATIONS_URL"};
    for (size_t i = 0; i < COFRE_ARRAY_SIZE(vars); i++)
        unsetenv(vars[i]);
}

static void file_env(void)
{
    clear_env();
    setenv("COFRE_AUTH_ISSUER", "https://issuer.test", 1);
    setenv("COFRE_AUTH_AUDIENCE", "cofre-api", 1);
    setenv("COFRE_JWKS_FILE", jwks_path, 1);
}

static int setup(void **state)
{
    (void)state;
    cofre_metrics_init("test", "0", "test");
    /* Quiet: libcofre keeps a log buffer per thread until the process exits, which LSan
     * reports for the key refresh thread (a line at info level from it is enough). */
    cofre_log_init("test", COFRE_LOG_WARN);
    if (mkdtemp(dir) == NULL)
        return -1;
    snprintf(jwks_path, sizeof(jwks_path), "%s/jwks.json", dir);
    key_a = cofre_jwks_generate();
    key_b = cofre_jwks_generate();
    EVP_PKEY *keys[] = {key_a};
    const char *kids[] = {"a"};
    write_jwks(keys, kids, 1);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    unlink(jwks_path);
    rmdir(dir);
    EVP_PKEY_free(key_a);
    EVP_PKEY_free(key_b);
    clear_env();
    return 0;
}

/* Reads the configuration; returns the error text ("" when valid). */
static const char *config_error(cofre_auth_config_t *cfg)
{
    static cofre_config_t c;
    cofre_config_init(&c, "test");
    cofre_auth_config_read(&c, cfg);
    return c.error;
}

static void missing_settings_are_named(void **state)
{
    (void)state;
    cofre_auth_config_t cfg;
    clear_env();
    assert_non_null(strstr(config_error(&cfg), "COFRE_AUTH_ISSUER"));
    setenv("COFRE_AUTH_ISSUER", "https://issuer.test", 1);
    assert_non_null(strstr(config_error(&cfg), "COFRE_AUTH_AUDIENCE"));
    setenv("COFRE_AUTH_AUDIENCE", "cofre-api", 1);
    assert_non_null(strstr(config_error(&cfg), "COFRE_JWKS_URL"));
    setenv("COFRE_JWKS_URL", "ftp://x/jwks", 1);
    assert_non_null(strstr(config_error(&cfg), "COFRE_JWKS_URL"));
    setenv("COFRE_JWKS_URL", "http://127.0.0.1:8082/.well-known/jwks.json", 1);
    assert_string_equal(config_error(&cfg), "");
    assert_true(cfg.enabled);
    setenv("COFRE_JWKS_FILE", jwks_path, 1);
    assert_non_null(strstr(config_error(&cfg), "COFRE_JWKS_FILE")); /* both set */
    unsetenv("COFRE_JWKS_URL");
    setenv("COFRE_JWKS_FILE", "/nonexistent/jwks.json", 1);
    assert_non_null(strstr(config_error(&cfg), "COFRE_JWKS_FILE"));
    setenv("COFRE_JWKS_FILE", jwks_path, 1);
    assert_string_equal(config_error(&cfg), "");
    setenv("COFRE_AUTH_LEEWAY_S", "61", 1);
    assert_non_null(strstr(config_error(&cfg), "COFRE_AUTH_LEEWAY_S"));
    unsetenv("COFRE_AUTH_LEEWAY_S");
    setenv("COFRE_AUTH", "maybe", 1);
    assert_non_null(strstr(config_error(&cfg), "COFRE_AUTH"));
}

static void off_needs_nothing_else(void **state)
{
    (void)state;
    clear_env();
    setenv("COFRE_AUTH", "off", 1);
    cofre_auth_config_t cfg;
    assert_string_equal(config_error(&cfg), "");
    assert_false(cfg.enabled);
    assert_null(cofre_auth_start(&cfg));
}

static cofre_auth_t *start_from_file(size_t cache_max, unsigned leeway_s)
{
    file_env();
    char v[32];
    snprintf(v, sizeof(v), "%zu", cache_max);
    setenv("COFRE_AUTH_CACHE_MAX", v, 1);
    snprintf(v, sizeof(v), "%u", leeway_s);
    setenv("COFRE_AUTH_LEEWAY_S", v, 1);
    setenv("COFRE_JWKS_REFRESH_S", "1", 1);
    cofre_auth_config_t cfg;
    assert_string_equal(config_error(&cfg), "");
    cofre_auth_t *a = cofre_auth_start(&cfg);
    assert_non_null(a);
    const char *reason = NULL;
    assert_true(cofre_auth_ready(a, &reason));
    return a;
}

static void valid_token_fills_the_caller(void **state)
{
    (void)state;
    cofre_auth_t *a = start_from_file(64, 0);
    char *claims = tokens_claims(tokens_now(), "");
    char *token = tokens_make(key_a, TOKENS_HEADER("a"), claims);
    cofre_caller_t caller;
    cofre_jwt_result_t why;
    for (int i = 0; i < 3; i++) { /* verified, then cached */
        assert_true(cofre_auth_check(a, token, strlen(token), &caller, &why));
        assert_string_equal(caller.client_id, "app-1");
        assert_string_equal(caller.owner, "alice");
        assert_int_equal(caller.scopes, COFRE_SCOPE_ACCOUNTS_READ | COFRE_SCOPE_TRANSFERS_WRITE);
    }
    /* Signed by a key the set does not have under that kid: refused, every time. */
    char *forged = tokens_make(key_b, TOKENS_HEADER("a"), claims);
    for (int i = 0; i < 2; i++) {
        assert_false(cofre_auth_check(a, forged, strlen(forged), &caller, &why));
        assert_int_equal(why, COFRE_JWT_BAD_SIGNATURE);
    }
    char *unknown = tokens_make(key_b, TOKENS_HEADER("b"), claims);
    assert_false(cofre_auth_check(a, unknown, strlen(unknown), &caller, &why));
    assert_int_equal(why, COFRE_JWT_UNKNOWN_KID);
    free(unknown);
    free(forged);
    free(token);
    free(claims);
    cofre_auth_free(a);
}

static void cached_token_still_expires(void **state)
{
    (void)state;
    cofre_auth_t *a = start_from_file(64, 0);
    int64_t now = tokens_now();
    char claims[512];
    snprintf(claims, sizeof(claims),
             "{\"iss\":\"https://issuer.test\",\"sub\":\"a\",\"aud\":\"cofre-api\",\"exp\":%lld,"
             "\"iat\":%lld,\"jti\":\"j\",\"client_id\":\"c\",\"scope\":\"accounts:read\"}",
             (long long)now + 2, (long long)now);
    char *token = tokens_make(key_a, TOKENS_HEADER("a"), claims);
    cofre_caller_t caller;
    cofre_jwt_result_t why;
    assert_true(cofre_auth_check(a, token, strlen(token), &caller, &why)); /* now cached */
    sleep(3);
    assert_false(cofre_auth_check(a, token, strlen(token), &caller, &why));
    assert_int_equal(why, COFRE_JWT_EXPIRED);
    free(token);
    cofre_auth_free(a);
}

static void withdrawn_key_invalidates_cached_tokens(void **state)
{
    (void)state;
    cofre_auth_t *a = start_from_file(64, 0);
    char *claims = tokens_claims(tokens_now(), "");
    char *token = tokens_make(key_a, TOKENS_HEADER("a"), claims);
    cofre_caller_t caller;
    cofre_jwt_result_t why;
    assert_true(cofre_auth_check(a, token, strlen(token), &caller, &why));
    EVP_PKEY *keys[] = {key_b};
    const char *kids[] = {"b"};
    write_jwks(keys, kids, 1); /* the refresh (every second) drops key "a" */
    bool refused = false;
    for (int i = 0; i < 50 && !refused; i++) {
        usleep(100000);
        refused = !cofre_auth_check(a, token, strlen(token), &caller, &why);
    }
    assert_true(refused);
    assert_int_equal(why, COFRE_JWT_UNKNOWN_KID);
    EVP_PKEY *both[] = {key_a, key_b};
    const char *both_kids[] = {"a", "b"};
    write_jwks(both, both_kids, 2);
    bool back = false;
    for (int i = 0; i < 50 && !back; i++) {
        usleep(100000);
        back = cofre_auth_check(a, token, strlen(token), &caller, &why);
    }
    assert_true(back);
    free(token);
    free(claims);
    cofre_auth_free(a);
}

static void small_cache_serves_many_tokens(void **state)
{
    (void)state;
    cofre_auth_t *a = start_from_file(8, 0);
    char *tokens[40];
    for (size_t i = 0; i < COFRE_ARRAY_SIZE(tokens); i++) {
        char extra[32];
        snprintf(extra, sizeof(extra), ",\"n\":%zu", i);
        char *claims = tokens_claims(tokens_now(), extra);
        tokens[i] = tokens_make(key_a, TOKENS_HEADER("a"), claims);
        free(claims);
    }
    for (int round = 0; round < 3; round++)
        for (size_t i = 0; i < COFRE_ARRAY_SIZE(tokens); i++) {
            cofre_caller_t caller;
            cofre_jwt_result_t why;
            assert_true(cofre_auth_check(a, tokens[i], strlen(tokens[i]), &caller, &why));
        }
    for (size_t i = 0; i < COFRE_ARRAY_SIZE(tokens); i++)
        free(tokens[i]);
    cofre_auth_free(a);
}

static void no_cache_still_checks(void **state)
{
    (void)state;
    cofre_auth_t *a = start_from_file(0, 0);
    char *claims = tokens_claims(tokens_now(), "");
    char *token = tokens_make(key_a, TOKENS_HEADER("a"), claims);
    cofre_caller_t caller;
    cofre_jwt_result_t why;
    assert_true(cofre_auth_check(a, token, strlen(token), &caller, &why));
    assert_true(cofre_auth_check(a, token, strlen(token), &caller, &why));
    token[strlen(token) - 3] ^= 1;
    assert_false(cofre_auth_check(a, token, strlen(token), &caller, &why));
    free(token);
    free(claims);
    cofre_auth_free(a);
}

static void revocation_lists(void **state)
{
    (void)state;
    char(*ids)[COFRE_CLIENT_ID_MAX + 1] = NULL;
    const char *doc = "{\"generated_at\":1,\"clients\":[{\"client_id\":\"zed\",\"disabled_at\":5},"
                      "{\"client_id\":\"amy\",\"disabled_at\":6}]}";
    assert_int_equal(cofre_auth_parse_revocations(doc, strlen(doc), &ids), 2);
    assert_string_equal(ids[0], "amy"); /* sorted, for bsearch */
    assert_string_equal(ids[1], "zed");
    free(ids);
    static const char *const bad[] = {"",
                                      "[]",
                                      "{}",
                                      "{\"clients\":{}}",
                                      "{\"clients\":[{\"client_id\":7}]}",
                                      "{\"clients\":[{\"client_id\":\"\"}]}",
                                      "{\"clients\":[1]}"};
    for (size_t i = 0; i < COFRE_ARRAY_SIZE(bad); i++) {
        if (cofre_auth_parse_revocations(bad[i], strlen(bad[i]), &ids) != -1)
            fail_msg("accepted %s", bad[i]);
        assert_null(ids);
    }
    const char *empty = "{\"clients\":[]}";
    assert_int_equal(cofre_auth_parse_revocations(empty, strlen(empty), &ids), 0);
    free(ids);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(missing_settings_are_named),
        cmocka_unit_test(off_needs_nothing_else),
        cmocka_unit_test(valid_token_fills_the_caller),
        cmocka_unit_test(cached_token_still_expires),
        cmocka_unit_test(withdrawn_key_invalidates_cached_tokens),
        cmocka_unit_test(small_cache_serves_many_tokens),
        cmocka_unit_test(no_cache_still_checks),
        cmocka_unit_test(revocation_lists),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
