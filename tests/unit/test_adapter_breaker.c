/*
 * test_adapter_breaker.c: the circuit breaker: closed until failures_max failures in a row (a
 * success in between resets the count), open for open_ms with nothing allowed, half-open with
 * exactly one probe, closing on the probe's success and re-opening on its failure; outcomes
 * of requests from before the latest opening are ignored.
 */
#include "unit.h"

#include "legacy/adapter_breaker.h"

#define MS 1000000ull

static void opens_after_consecutive_failures(void **state)
{
    (void)state;
    cofre_adapter_breaker_t b;
    cofre_adapter_breaker_init(&b, 3, 1000);
    uint64_t ep = cofre_adapter_breaker_epoch(&b);
    cofre_adapter_breaker_failure(&b, 1 * MS, ep);
    cofre_adapter_breaker_failure(&b, 2 * MS, ep);
    cofre_adapter_breaker_success(&b, 3 * MS, ep); /* resets */
    cofre_adapter_breaker_failure(&b, 4 * MS, ep);
    cofre_adapter_breaker_failure(&b, 5 * MS, ep);
    assert_int_equal(cofre_adapter_breaker_state(&b, 5 * MS), COFRE_BREAKER_CLOSED);
    assert_true(cofre_adapter_breaker_acquire(&b, 5 * MS));
    cofre_adapter_breaker_failure(&b, 6 * MS, ep);
    assert_int_equal(cofre_adapter_breaker_state(&b, 6 * MS), COFRE_BREAKER_OPEN);
    assert_int_equal(b.opens, 1);
    assert_false(cofre_adapter_breaker_acquire(&b, 7 * MS));
    assert_int_equal(cofre_adapter_breaker_wait_ns(&b, 106 * MS), 900 * MS);
}

static void half_open_allows_one_probe(void **state)
{
    (void)state;
    cofre_adapter_breaker_t b;
    cofre_adapter_breaker_init(&b, 1, 1000);
    cofre_adapter_breaker_failure(&b, 0, 0);
    assert_int_equal(cofre_adapter_breaker_state(&b, 999 * MS), COFRE_BREAKER_OPEN);
    assert_false(cofre_adapter_breaker_acquire(&b, 999 * MS));
    assert_int_equal(cofre_adapter_breaker_state(&b, 1000 * MS), COFRE_BREAKER_HALF_OPEN);
    assert_int_equal(cofre_adapter_breaker_wait_ns(&b, 1000 * MS), 0);
    assert_true(cofre_adapter_breaker_acquire(&b, 1000 * MS));
    assert_false(cofre_adapter_breaker_acquire(&b, 1001 * MS));
    /* A probe that did not go out frees the slot for another. */
    cofre_adapter_breaker_cancel(&b);
    assert_true(cofre_adapter_breaker_acquire(&b, 1002 * MS));
    uint64_t ep = cofre_adapter_breaker_epoch(&b);
    cofre_adapter_breaker_success(&b, 1003 * MS, ep);
    assert_int_equal(cofre_adapter_breaker_state(&b, 1003 * MS), COFRE_BREAKER_CLOSED);
    assert_true(cofre_adapter_breaker_acquire(&b, 1004 * MS));
    assert_true(cofre_adapter_breaker_acquire(&b, 1004 * MS));
}

static void failed_probe_reopens(void **state)
{
    (void)state;
    cofre_adapter_breaker_t b;
    cofre_adapter_breaker_init(&b, 2, 500);
    cofre_adapter_breaker_failure(&b, 0, 0);
    cofre_adapter_breaker_failure(&b, 0, 0);
    assert_true(cofre_adapter_breaker_acquire(&b, 500 * MS));
    cofre_adapter_breaker_failure(&b, 600 * MS, cofre_adapter_breaker_epoch(&b));
    assert_int_equal(cofre_adapter_breaker_state(&b, 600 * MS), COFRE_BREAKER_OPEN);
    assert_int_equal(b.opens, 2);
    /* Open again for a whole period from the new opening. */
    assert_int_equal(cofre_adapter_breaker_state(&b, 1099 * MS), COFRE_BREAKER_OPEN);
    assert_int_equal(cofre_adapter_breaker_state(&b, 1100 * MS), COFRE_BREAKER_HALF_OPEN);
    /* Failures while open do not extend it. */
    cofre_adapter_breaker_t c;
    cofre_adapter_breaker_init(&c, 1, 500);
    cofre_adapter_breaker_failure(&c, 0, 0);
    cofre_adapter_breaker_failure(&c, 400 * MS, cofre_adapter_breaker_epoch(&c));
    assert_int_equal(cofre_adapter_breaker_state(&c, 500 * MS), COFRE_BREAKER_HALF_OPEN);
}

static void stale_outcomes_are_ignored(void **state)
{
    (void)state;
    cofre_adapter_breaker_t b;
    cofre_adapter_breaker_init(&b, 1, 100);
    uint64_t before = cofre_adapter_breaker_epoch(&b);
    cofre_adapter_breaker_failure(&b, 0, before);
    assert_true(cofre_adapter_breaker_acquire(&b, 100 * MS)); /* the probe */
    /* A straggler sent before the opening times out now: the breaker stays half-open. */
    cofre_adapter_breaker_failure(&b, 101 * MS, before);
    assert_int_equal(cofre_adapter_breaker_state(&b, 101 * MS), COFRE_BREAKER_HALF_OPEN);
    /* Nor does a straggler's late success close it. */
    cofre_adapter_breaker_success(&b, 102 * MS, before);
    assert_int_equal(cofre_adapter_breaker_state(&b, 102 * MS), COFRE_BREAKER_HALF_OPEN);
    cofre_adapter_breaker_success(&b, 103 * MS, cofre_adapter_breaker_epoch(&b));
    assert_int_equal(cofre_adapter_breaker_state(&b, 103 * MS), COFRE_BREAKER_CLOSED);
    /* And once closed again, stragglers from the failing period do not count. */
    cofre_adapter_breaker_failure(&b, 104 * MS, before);
    assert_int_equal(cofre_adapter_breaker_state(&b, 104 * MS), COFRE_BREAKER_CLOSED);
    assert_string_equal(cofre_adapter_breaker_name(COFRE_BREAKER_CLOSED), "closed");
    assert_string_equal(cofre_adapter_breaker_name(COFRE_BREAKER_HALF_OPEN), "half-open");
    assert_string_equal(cofre_adapter_breaker_name(COFRE_BREAKER_OPEN), "open");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(opens_after_consecutive_failures),
        cmocka_unit_test(half_open_allows_one_probe),
        cmocka_unit_test(failed_probe_reopens),
        cmocka_unit_test(stale_outcomes_are_ignored),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
