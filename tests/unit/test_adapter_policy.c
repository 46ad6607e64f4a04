/*
 * test_adapter_policy.c: cofre-legacy's retry policy: which response codes are approved,
 * transient or permanent, and the exponential backoff with jitter (its bounds at every
 * attempt, its growth, its cap, and that jitter spreads the waits).
 */
#include "unit.h"

#include "cofre/common.h"
#include "legacy/adapter_policy.h"

static void codes_are_classified(void **state)
{
    (void)state;
    assert_int_equal(cofre_adapter_policy_classify("00"), COFRE_ADAPTER_RC_APPROVED);
    static const char *const transient[] = {"19", "68", "91", "96"};
    for (size_t i = 0; i < COFRE_ARRAY_SIZE(transient); i++)
        assert_int_equal(cofre_adapter_policy_classify(transient[i]), COFRE_ADAPTER_RC_TRANSIENT);
    static const char *const permanent[] = {"05", "12", "13", "30", "51", "57", "61", "94", "Z1"};
    for (size_t i = 0; i < COFRE_ARRAY_SIZE(permanent); i++)
        assert_int_equal(cofre_adapter_policy_classify(permanent[i]), COFRE_ADAPTER_RC_PERMANENT);
    /* Malformed or absent: never "approved". */
    assert_int_equal(cofre_adapter_policy_classify(NULL), COFRE_ADAPTER_RC_PERMANENT);
    assert_int_equal(cofre_adapter_policy_classify(""), COFRE_ADAPTER_RC_PERMANENT);
    assert_int_equal(cofre_adapter_policy_classify("000"), COFRE_ADAPTER_RC_PERMANENT);
    assert_int_equal(cofre_adapter_policy_classify("0"), COFRE_ADAPTER_RC_PERMANENT);
    assert_true(cofre_adapter_policy_needs_sign_on("91"));
    assert_false(cofre_adapter_policy_needs_sign_on("96"));
    assert_false(cofre_adapter_policy_needs_sign_on(NULL));
}

static void backoff_grows_within_bounds(void **state)
{
    (void)state;
    cofre_adapter_backoff_t b = {.min_ms = 100, .max_ms = 10000};
    for (unsigned attempt = 0; attempt < 40; attempt++) {
        uint64_t ceiling = 100;
        for (unsigned i = 0; i < attempt && ceiling < 10000; i++)
            ceiling *= 2;
        ceiling = COFRE_MIN(ceiling, 10000u);
        /* rand 0 gives the floor, rand = ceiling/2 the ceiling. */
        uint64_t lo = cofre_adapter_policy_backoff_ms(&b, attempt, 0);
        uint64_t hi = cofre_adapter_policy_backoff_ms(&b, attempt, ceiling / 2);
        if (lo != ceiling - ceiling / 2 || hi != ceiling)
            fail_msg("attempt %u: lo %llu hi %llu ceiling %llu", attempt, (unsigned long long)lo,
                     (unsigned long long)hi, (unsigned long long)ceiling);
        for (uint64_t r = 1; r < 5000; r += 37) {
            uint64_t v = cofre_adapter_policy_backoff_ms(&b, attempt, r * 2654435761u);
            assert_in_range(v, ceiling - ceiling / 2, ceiling);
        }
    }
    /* Huge attempt numbers do not overflow. */
    assert_in_range(cofre_adapter_policy_backoff_ms(&b, 4000000000u, 12345), 5000, 10000);
}

static void jitter_spreads_waits(void **state)
{
    (void)state;
    cofre_adapter_backoff_t b = {.min_ms = 1000, .max_ms = 1000};
    uint64_t seen_lo = UINT64_MAX, seen_hi = 0;
    for (uint64_t r = 0; r < 1000; r++) {
        uint64_t v = cofre_adapter_policy_backoff_ms(&b, 3, r * 7919);
        seen_lo = COFRE_MIN(seen_lo, v);
        seen_hi = COFRE_MAX(seen_hi, v);
    }
    assert_true(seen_lo <= 550 && seen_hi >= 950);
    /* min == max == 1: always 1 ms (the smallest wait is never 0). */
    cofre_adapter_backoff_t one = {.min_ms = 1, .max_ms = 1};
    for (uint64_t r = 0; r < 10; r++)
        assert_int_equal(cofre_adapter_policy_backoff_ms(&one, (unsigned)r, r), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(codes_are_classified),
        cmocka_unit_test(backoff_grows_within_bounds),
        cmocka_unit_test(jitter_spreads_waits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
