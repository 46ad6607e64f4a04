/* test_secret.c: client secrets: random and well-formed, Argon2id hashes that verify only the
 * right secret, and the parameters recorded in the hash. */
#include "unit.h"

#include "auth/secret.h"

#include <string.h>

static const cofre_secret_params_t fast = {.opslimit = 1, .memlimit_kib = 64};

static int setup(void **state)
{
    (void)state;
    return cofre_secret_init();
}

static void generated_secrets(void **state)
{
    (void)state;
    char a[COFRE_SECRET_LEN + 1], b[COFRE_SECRET_LEN + 1];
    cofre_secret_generate(a);
    cofre_secret_generate(b);
    assert_int_equal(strlen(a), COFRE_SECRET_LEN);
    assert_string_not_equal(a, b);
    assert_int_equal(strspn(a, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
                     COFRE_SECRET_LEN);
}

static void hash_and_verify(void **state)
{
    (void)state;
    char hash[COFRE_REGISTRY_HASH_MAX], hash2[COFRE_REGISTRY_HASH_MAX];
    assert_int_equal(cofre_secret_hash(&fast, "correct horse", 13, hash), 0);
    assert_int_equal(strncmp(hash, "$argon2id$", 10), 0);
    assert_non_null(strstr(hash, "m=64,t=1"));
    assert_true(cofre_secret_verify(hash, "correct horse", 13));
    assert_false(cofre_secret_verify(hash, "correct horsf", 13));
    assert_false(cofre_secret_verify(hash, "correct hors", 12));
    assert_false(cofre_secret_verify(hash, "", 0));
    /* salted: the same secret hashes differently */
    assert_int_equal(cofre_secret_hash(&fast, "correct horse", 13, hash2), 0);
    assert_string_not_equal(hash, hash2);
    /* a hash of another algorithm, or garbage, never verifies */
    assert_false(cofre_secret_verify("$argon2i$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaA", "x", 1));
    assert_false(cofre_secret_verify("plain", "plain", 5));
    cofre_secret_params_t other = {.opslimit = 2, .memlimit_kib = 64};
    assert_true(cofre_secret_needs_rehash(&other, hash));
    assert_false(cofre_secret_needs_rehash(&fast, hash));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(generated_secrets),
        cmocka_unit_test(hash_and_verify),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
