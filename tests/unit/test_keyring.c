/* test_keyring.c: cofre-auth's signing keys: the first key made once, private key files of
 * mode 0600 (refused when others may read them or the group may write them; a Secret's 0440
 * loads), rotation with a lead time (published first, signing later), a key made in the same
 * second as the newest still superseding it, retirement after the tokens' lifetime, and tokens
 * that verify against the published set. */
#include "unit.h"

#include "auth/keyring.h"
#include "cofre/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[] = "/tmp/cofre-test-keyring-XXXXXX";
static char keys_dir[300];
static char url[300];
static cofre_registry_t *reg;
static const cofre_jwt_policy_t policy = {"https://issuer.test", "cofre-api"};
#define TTL 900

static int setup(void **state)
{
    (void)state;
    cofre_log_init("test", COFRE_LOG_ERROR);
    if (mkdtemp(dir) == NULL)
        return -1;
    snprintf(keys_dir, sizeof(keys_dir), "%s/keys", dir);
    snprintf(url, sizeof(url), "sqlite:%s/auth.db", dir);
    if (cofre_registry_migrate(url) != 0)
        return -1;
    return cofre_registry_open(url, &reg);
}

static int teardown(void **state)
{
    (void)state;
    cofre_registry_close(reg);
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static size_t published(cofre_keyring_t *kr)
{
    return cofre_keyring_published(kr);
}

/* Signs a token at now; returns it (malloc'd) and the kid used. */
static char *sign(cofre_keyring_t *kr, int64_t now, char kid[COFRE_JWKS_KID_LEN + 1])
{
    char claims[512];
    snprintf(claims, sizeof(claims),
             "{\"iss\":\"https://issuer.test\",\"sub\":\"a\",\"aud\":\"cofre-api\",\"exp\":%lld,"
             "\"iat\":%lld,\"jti\":\"j\",\"client_id\":\"c\"}",
             (long long)now + TTL, (long long)now);
    cofre_jbuf_t b;
    cofre_jbuf_init(&b);
    assert_int_equal(cofre_keyring_sign(kr, now, claims, strlen(claims), &b, kid), 0);
    size_t len;
    return cofre_jbuf_steal(&b, &len);
}

static void first_key_and_rotation(void **state)
{
    (void)state;
    int64_t t0 = 1000000;
    assert_int_equal(cofre_keyring_ensure(keys_dir, reg, t0), 0);
    assert_int_equal(cofre_keyring_ensure(keys_dir, reg, t0), 0); /* once only */
    cofre_key_record_t recs[8];
    size_t n;
    assert_int_equal(reg->ops->key_list(reg, recs, 8, &n), 0);
    assert_int_equal(n, 1);
    char path[400];
    cofre_keyring_path(keys_dir, recs[0].kid, path, sizeof(path));
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(stat(keys_dir, &st), 0);
    assert_int_equal(st.st_mode & 0077, 0);

    cofre_keyring_t *kr = cofre_keyring_new(keys_dir, TTL);
    assert_false(cofre_keyring_ready(kr, t0)); /* nothing loaded yet */
    assert_int_equal(cofre_keyring_reload(kr, reg, t0), 0);
    assert_true(cofre_keyring_ready(kr, t0));
    assert_int_equal(published(kr), 1);
    char kid1[COFRE_JWKS_KID_LEN + 1], kid[COFRE_JWKS_KID_LEN + 1];
    char *tok1 = sign(kr, t0, kid1);
    assert_string_equal(kid1, recs[0].kid);

    /* rotate with a lead of 120 s: published at once, signing only from t0 + 120 */
    char kid2[COFRE_JWKS_KID_LEN + 1];
    cofre_actor_t actor = {.command = "test"};
    assert_int_equal(
        cofre_keyring_create(keys_dir, reg, t0 + 10, 120, "cofre.auth.key.rotated", &actor, kid2),
        0);
    assert_int_equal(cofre_keyring_reload(kr, reg, t0 + 10), 0);
    assert_int_equal(published(kr), 2);
    free(sign(kr, t0 + 10, kid));
    assert_string_equal(kid, kid1);
    free(sign(kr, t0 + 130, kid)); /* the next key became current without a reload */
    assert_string_equal(kid, kid2);

    /* the old key stays published while its tokens live, then leaves the set */
    cofre_jwt_t jwt;
    assert_int_equal(cofre_keyring_reload(kr, reg, t0 + 130 + TTL), 0);
    assert_int_equal(published(kr), 2);
    assert_int_equal(cofre_keyring_verify(kr, tok1, strlen(tok1), &policy, t0 + 100, 0, &jwt),
                     COFRE_JWT_OK);
    assert_int_equal(cofre_keyring_reload(kr, reg, t0 + 130 + TTL + COFRE_JWT_LEEWAY_MAX_S), 0);
    assert_int_equal(published(kr), 1);
    assert_int_equal(cofre_keyring_verify(kr, tok1, strlen(tok1), &policy, t0 + 100, 0, &jwt),
                     COFRE_JWT_UNKNOWN_KID);
    cofre_jbuf_t b;
    cofre_jbuf_init(&b);
    cofre_keyring_jwks(kr, &b);
    assert_non_null(strstr(b.data, kid2));
    assert_null(strstr(b.data, kid1));
    cofre_jbuf_release(&b);
    assert_int_equal(reg->ops->key_list(reg, recs, 8, &n), 0);
    assert_string_equal(cofre_keyring_state(recs, n, 0, t0 + 5000, TTL), "retired");
    assert_string_equal(cofre_keyring_state(recs, n, 1, t0 + 5000, TTL), "current");
    assert_string_equal(cofre_keyring_state(recs, n, 1, t0 + 20, TTL), "next");
    assert_string_equal(cofre_keyring_state(recs, n, 0, t0 + 200, TTL), "retiring");
    /* one event per key: created, then rotated */
    free(tok1);
    cofre_keyring_free(kr);
}

static void readable_key_files_are_refused(void **state)
{
    (void)state;
    cofre_key_record_t recs[8];
    size_t n;
    assert_int_equal(reg->ops->key_list(reg, recs, 8, &n), 0);
    char path[400];
    cofre_keyring_path(keys_dir, recs[n - 1].kid, path, sizeof(path));
    assert_int_equal(chmod(path, 0644), 0);
    cofre_keyring_t *kr = cofre_keyring_new(keys_dir, TTL);
    int64_t later = 1000000 + 10000;
    assert_int_equal(cofre_keyring_reload(kr, reg, later), 0);
    assert_false(cofre_keyring_ready(kr, later)); /* the current key would not load */
    assert_int_equal(chmod(path, 0600), 0);
    assert_int_equal(cofre_keyring_reload(kr, reg, later), 0);
    assert_true(cofre_keyring_ready(kr, later));
    cofre_keyring_free(kr);
}

static void keys_never_tie(void **state)
{
    (void)state;
    cofre_key_record_t recs[8];
    size_t n;
    assert_int_equal(reg->ops->key_list(reg, recs, 8, &n), 0);
    int64_t newest = 0;
    for (size_t i = 0; i < n; i++)
        newest = recs[i].created_at > newest ? recs[i].created_at : newest;
    char kid[COFRE_JWKS_KID_LEN + 1], used[COFRE_JWKS_KID_LEN + 1];
    cofre_actor_t actor = {.command = "test"};
    /* made "now" in the very second of the newest key: it lands one second later */
    assert_int_equal(
        cofre_keyring_create(keys_dir, reg, newest, 0, "cofre.auth.key.rotated", &actor, kid), 0);
    assert_int_equal(reg->ops->key_list(reg, recs, 8, &n), 0);
    size_t mine = n;
    for (size_t i = 0; i < n; i++)
        if (strcmp(recs[i].kid, kid) == 0)
            mine = i;
    assert_true(mine < n);
    assert_int_equal(recs[mine].created_at, newest + 1);
    assert_int_equal(recs[mine].activates_at, newest + 1);
    char path[400];
    cofre_keyring_path(keys_dir, kid, path, sizeof(path));
    cofre_keyring_t *kr = cofre_keyring_new(keys_dir, TTL);
    /* a Kubernetes Secret's mode (0440: the pod's group reads) loads; group-writable does not */
    assert_int_equal(chmod(path, 0440), 0);
    assert_int_equal(cofre_keyring_reload(kr, reg, newest + 1), 0);
    free(sign(kr, newest + 1, used));
    assert_string_equal(used, kid);
    cofre_keyring_free(kr);
    kr = cofre_keyring_new(keys_dir, TTL);
    assert_int_equal(chmod(path, 0460), 0);
    assert_int_equal(cofre_keyring_reload(kr, reg, newest + 1), 0);
    assert_false(cofre_keyring_ready(kr, newest + 1));
    assert_int_equal(chmod(path, 0600), 0);
    cofre_keyring_free(kr);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(first_key_and_rotation),
        cmocka_unit_test(readable_key_files_are_refused),
        cmocka_unit_test(keys_never_tie),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
