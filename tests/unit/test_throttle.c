/* test_throttle.c: failure throttling: the burst is allowed, the next try waits for the refill
 * (and Retry-After says how long), keys are independent, and the table stays bounded. */
#include "unit.h"

#include "auth/throttle.h"

#include <stdio.h>
#include <string.h>

static void burst_then_wait(void **state)
{
    (void)state;
    cofre_throttle_t *t = cofre_throttle_new(64, 5, 60); /* 5 per minute: one per 12 s */
    uint64_t now = 1000000;
    for (int i = 0; i < 5; i++) {
        assert_int_equal(cofre_throttle_check(t, "app", now), 0);
        cofre_throttle_fail(t, "app", now);
    }
    assert_int_equal(cofre_throttle_check(t, "app", now), 12);
    assert_int_equal(cofre_throttle_check(t, "other", now), 0); /* keys are independent */
    assert_int_equal(cofre_throttle_check(t, "app", now + 6000), 6);
    assert_int_equal(cofre_throttle_check(t, "app", now + 11001), 1);
    assert_int_equal(cofre_throttle_check(t, "app", now + 12000), 0);
    cofre_throttle_fail(t, "app", now + 12000);
    assert_int_equal(cofre_throttle_check(t, "app", now + 12000), 12);
    /* a full minute gives the whole burst back */
    for (int i = 0; i < 5; i++) {
        assert_int_equal(cofre_throttle_check(t, "app", now + 72000), 0);
        cofre_throttle_fail(t, "app", now + 72000);
    }
    assert_true(cofre_throttle_check(t, "app", now + 72000) > 0);
    cofre_throttle_free(t);
}

static void racing_failures_lengthen_the_wait(void **state)
{
    (void)state;
    cofre_throttle_t *t = cofre_throttle_new(64, 2, 10);
    for (int i = 0; i < 6; i++) /* more failures than the check let through */
        cofre_throttle_fail(t, "k", 0);
    unsigned w = cofre_throttle_check(t, "k", 0);
    assert_int_equal(w, 15); /* at -2 tokens: 3 tokens short, 5 s each */
    cofre_throttle_free(t);
}

static void table_is_bounded(void **state)
{
    (void)state;
    cofre_throttle_t *t = cofre_throttle_new(100, 3, 60);
    char key[32];
    for (int i = 0; i < 10000; i++) {
        snprintf(key, sizeof(key), "client-%d", i);
        cofre_throttle_fail(t, key, 0);
    }
    assert_true(cofre_throttle_size(t) <= 100);
    /* A key being throttled is remembered over fresh keys with full buckets. */
    for (int i = 0; i < 3; i++)
        cofre_throttle_fail(t, "victim", 1);
    for (int i = 0; i < 10000; i++) {
        snprintf(key, sizeof(key), "fresh-%d", i);
        cofre_throttle_check(t, key, 1);
    }
    assert_true(cofre_throttle_check(t, "victim", 1) > 0);
    cofre_throttle_free(t);
}

static void long_keys_are_cut(void **state)
{
    (void)state;
    cofre_throttle_t *t = cofre_throttle_new(16, 1, 60);
    char a[300], b[300];
    memset(a, 'x', sizeof(a) - 1);
    a[sizeof(a) - 1] = '\0';
    memcpy(b, a, sizeof(b));
    b[250] = 'y'; /* differs only after the cut */
    cofre_throttle_fail(t, a, 0);
    assert_true(cofre_throttle_check(t, b, 0) > 0);
    cofre_throttle_free(t);
}

static void rates(void **state)
{
    (void)state;
    unsigned n, s;
    assert_int_equal(cofre_throttle_parse_rate("5/60", &n, &s), 0);
    assert_int_equal(n, 5);
    assert_int_equal(s, 60);
    static const char *const bad[] = {"",    "5",     "5/",    "/60",      "0/60",
                                      "5/0", "-1/60", "5/60x", "100001/1", "1/86401"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (cofre_throttle_parse_rate(bad[i], &n, &s) == 0)
            fail_msg("accepted \"%s\"", bad[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(burst_then_wait),
        cmocka_unit_test(racing_failures_lengthen_the_wait),
        cmocka_unit_test(table_is_bounded),
        cmocka_unit_test(long_keys_are_cut),
        cmocka_unit_test(rates),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
