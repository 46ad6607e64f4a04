/* test_chains.c: the batch's table of account chain heads. */
#include "unit.h"

#include "core/chains.h"

#include <stdio.h>

#define A "00000000-0000-7000-8000-00000000000a"
#define B "00000000-0000-7000-8000-00000000000b"
#define C "00000000-0000-7000-8000-00000000000c"

static void links_transfers_per_account(void **state)
{
    (void)state;
    cofre_chains_t c = {0};
    cofre_chains_reset(&c, 3);
    cofre_chains_head(&c, A)->last_seq = 7; /* loaded: A's newest transfer is 7 */
    int64_t pd, pc;
    cofre_chains_link(&c, A, B, 10, &pd, &pc);
    assert_int_equal(pd, 7);
    assert_int_equal(pc, 0);
    cofre_chains_link(&c, C, A, 11, &pd, &pc);
    assert_int_equal(pd, 0);
    assert_int_equal(pc, 10);
    assert_int_equal(cofre_chains_head(&c, A)->last_seq, 11);
    assert_int_equal(cofre_chains_head(&c, B)->last_seq, 10);
    assert_true(cofre_chains_head(&c, C)->moved);
    cofre_chains_reset(&c, 1);
    assert_int_equal(c.count, 0);
    assert_int_equal(cofre_chains_head(&c, A)->last_seq, 0);
    assert_false(cofre_chains_head(&c, A)->moved);
    cofre_chains_release(&c);
}

static void holds_many_accounts(void **state)
{
    (void)state;
    cofre_chains_t c = {0};
    cofre_chains_reset(&c, 5000);
    char id[40];
    for (int i = 0; i < 5000; i++) {
        snprintf(id, sizeof(id), "00000000-0000-7000-8000-%012d", i);
        cofre_chains_head(&c, id)->last_seq = i + 1;
    }
    assert_int_equal(c.count, 5000);
    for (int i = 0; i < 5000; i += 97) {
        snprintf(id, sizeof(id), "00000000-0000-7000-8000-%012d", i);
        assert_int_equal(cofre_chains_head(&c, id)->last_seq, i + 1);
    }
    cofre_chains_release(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(links_transfers_per_account),
        cmocka_unit_test(holds_many_accounts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
