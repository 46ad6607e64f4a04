/* test_idempotency.c: the in-flight registry and the request fingerprint. */
#include "unit.h"

#include "core/idempotency.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

static void one_holder_per_client_and_key(void **state)
{
    (void)state;
    cofre_idem_registry_t *r = cofre_idem_registry_new();
    assert_true(cofre_idem_acquire(r, "c1", "k"));
    assert_false(cofre_idem_acquire(r, "c1", "k"));
    assert_true(cofre_idem_acquire(r, "c2", "k")); /* keys are scoped per client */
    assert_int_equal(cofre_idem_registry_size(r), 2);
    cofre_idem_release(r, "c1", "k");
    assert_true(cofre_idem_acquire(r, "c1", "k"));
    cofre_idem_registry_free(r);
}

static cofre_idem_registry_t *shared;
static int winners;
static pthread_mutex_t winners_lock = PTHREAD_MUTEX_INITIALIZER;

static void *race(void *arg)
{
    (void)arg;
    for (int i = 0; i < 1000; i++) {
        char key[16];
        snprintf(key, sizeof(key), "k%d", i);
        if (cofre_idem_acquire(shared, "c", key)) {
            pthread_mutex_lock(&winners_lock);
            winners++;
            pthread_mutex_unlock(&winners_lock);
        }
    }
    return NULL;
}

static void concurrent_acquires_have_one_winner_per_key(void **state)
{
    (void)state;
    shared = cofre_idem_registry_new();
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, race, NULL);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(winners, 1000);
    assert_int_equal(cofre_idem_registry_size(shared), 1000);
    cofre_idem_registry_free(shared);
}

static void hash_covers_method_path_and_body(void **state)
{
    (void)state;
    uint8_t a[32], b[32];
    cofre_idem_request_hash("POST", 4, "/v1/x", 5, "{}", 2, a);
    cofre_idem_request_hash("POST", 4, "/v1/x", 5, "{}", 2, b);
    assert_memory_equal(a, b, 32);
    cofre_idem_request_hash("POST", 4, "/v1/y", 5, "{}", 2, b);
    assert_memory_not_equal(a, b, 32);
    cofre_idem_request_hash("POST", 4, "/v1/x", 5, "{ }", 3, b);
    assert_memory_not_equal(a, b, 32);
    /* Length prefixes: moving a byte between fields changes the hash. */
    cofre_idem_request_hash("POST", 4, "/v1/x{", 6, "}", 1, b);
    assert_memory_not_equal(a, b, 32);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(one_holder_per_client_and_key),
        cmocka_unit_test(concurrent_acquires_have_one_winner_per_key),
        cmocka_unit_test(hash_covers_method_path_and_body),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
