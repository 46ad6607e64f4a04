/* test_ledger.c: the ledger's rules on a batch state: double entry, overdraft, overflow,
 * currency, ownership, ids, and undo for atomic batches. */
#include "unit.h"

#include "core/ledger.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define ID(n) "00000000-0000-7000-8000-00000000000" #n

static cofre_account_t account(const char *id, const char *owner, const char *currency,
                               bool no_overdraft, int64_t debits, int64_t credits)
{
    cofre_account_t a;
    memset(&a, 0, sizeof(a));
    snprintf(a.id, sizeof(a.id), "%s", id);
    snprintf(a.owner, sizeof(a.owner), "%s", owner);
    snprintf(a.currency, sizeof(a.currency), "%s", currency);
    a.no_overdraft = no_overdraft;
    a.debits_posted = debits;
    a.credits_posted = credits;
    return a;
}

static cofre_transfer_t transfer(const char *id, const char *debit, const char *credit,
                                 int64_t amount, const char *currency)
{
    cofre_transfer_t t;
    memset(&t, 0, sizeof(t));
    snprintf(t.id, sizeof(t.id), "%s", id);
    snprintf(t.debit_account_id, sizeof(t.debit_account_id), "%s", debit);
    snprintf(t.credit_account_id, sizeof(t.credit_account_id), "%s", credit);
    t.amount = amount;
    snprintf(t.currency, sizeof(t.currency), "%s", currency);
    return t;
}

static cofre_ledger_t *ledger_with_accounts(void)
{
    cofre_ledger_t *l = cofre_ledger_new();
    cofre_account_t bank = account(ID(1), "bank", "EUR", false, 0, 0);
    cofre_account_t alice = account(ID(2), "alice", "EUR", true, 0, 100);
    cofre_account_t bob = account(ID(3), "bob", "EUR", true, 0, 0);
    cofre_account_t usd = account(ID(4), "carol", "USD", true, 0, 50);
    cofre_ledger_load_account(l, &bank);
    cofre_ledger_load_account(l, &alice);
    cofre_ledger_load_account(l, &bob);
    cofre_ledger_load_account(l, &usd);
    return l;
}

static int64_t balance(cofre_ledger_t *l, const char *id)
{
    const cofre_account_t *a = cofre_ledger_account(l, id);
    assert_non_null(a);
    return a->credits_posted - a->debits_posted;
}

static void posts_double_entry(void **state)
{
    (void)state;
    cofre_ledger_t *l = ledger_with_accounts();
    cofre_transfer_t t = transfer(ID(9), ID(1), ID(3), 500, "EUR");
    assert_int_equal(cofre_ledger_post_transfer(l, &t, NULL), COFRE_P_NONE);
    assert_int_equal(balance(l, ID(1)), -500);
    assert_int_equal(balance(l, ID(3)), 500);
    cofre_ledger_free(l);
}

static void no_overdraft_allows_exactly_the_balance(void **state)
{
    (void)state;
    cofre_ledger_t *l = ledger_with_accounts();
    cofre_transfer_t over = transfer(ID(9), ID(2), ID(3), 101, "EUR");
    assert_int_equal(cofre_ledger_post_transfer(l, &over, NULL), COFRE_P_INSUFFICIENT_FUNDS);
    assert_int_equal(balance(l, ID(2)), 100);
    cofre_transfer_t all = transfer(ID(8), ID(2), ID(3), 100, "EUR");
    assert_int_equal(cofre_ledger_post_transfer(l, &all, NULL), COFRE_P_NONE);
    assert_int_equal(balance(l, ID(2)), 0);
    cofre_transfer_t one = transfer(ID(7), ID(2), ID(3), 1, "EUR");
    assert_int_equal(cofre_ledger_post_transfer(l, &one, NULL), COFRE_P_INSUFFICIENT_FUNDS);
    cofre_ledger_free(l);
}

static void rejects_unknown_accounts_currency_and_ids(void **state)
{
    (void)state;
    cofre_ledger_t *l = ledger_with_accounts();
    cofre_transfer_t ghost = transfer(ID(9), ID(1), ID(5), 1, "EUR");
    assert_int_equal(cofre_ledger_post_transfer(l, &ghost, NULL), COFRE_P_ACCOUNT_NOT_FOUND);
    cofre_transfer_t cross = transfer(ID(9), ID(1), ID(4), 1, "EUR");
    assert_int_equal(cofre_ledger_post_transfer(l, &cross, NULL), COFRE_P_CURRENCY_MISMATCH);
    cofre_transfer_t wrong = transfer(ID(9), ID(1), ID(3), 1, "USD");
    assert_int_equal(cofre_ledger_post_transfer(l, &wrong, NULL), COFRE_P_CURRENCY_MISMATCH);
    cofre_transfer_t ok = transfer(ID(9), ID(1), ID(3), 1, "EUR");
    assert_int_equal(cofre_ledger_post_transfer(l, &ok, NULL), COFRE_P_NONE);
    assert_int_equal(cofre_ledger_post_transfer(l, &ok, NULL), COFRE_P_TRANSFER_EXISTS);
    cofre_ledger_load_transfer_id(l, ID(6));
    cofre_transfer_t known = transfer(ID(6), ID(1), ID(3), 1, "EUR");
    assert_int_equal(cofre_ledger_post_transfer(l, &known, NULL), COFRE_P_TRANSFER_EXISTS);
    assert_int_equal(balance(l, ID(3)), 1);
    cofre_ledger_free(l);
}

static void totals_never_overflow(void **state)
{
    (void)state;
    cofre_ledger_t *l = ledger_with_accounts();
    cofre_transfer_t max = transfer(ID(9), ID(1), ID(3), INT64_MAX, "EUR");
    assert_int_equal(cofre_ledger_post_transfer(l, &max, NULL), COFRE_P_NONE);
    cofre_transfer_t more = transfer(ID(8), ID(1), ID(3), 1, "EUR");
    assert_int_equal(cofre_ledger_post_transfer(l, &more, NULL), COFRE_P_BALANCE_OVERFLOW);
    assert_int_equal(balance(l, ID(3)), INT64_MAX);
    cofre_ledger_free(l);
}

static void owner_restriction_hides_other_accounts(void **state)
{
    (void)state;
    cofre_ledger_t *l = ledger_with_accounts();
    cofre_transfer_t theft = transfer(ID(9), ID(2), ID(3), 10, "EUR");
    assert_int_equal(cofre_ledger_post_transfer(l, &theft, "bob"), COFRE_P_ACCOUNT_NOT_FOUND);
    assert_int_equal(cofre_ledger_post_transfer(l, &theft, "alice"), COFRE_P_NONE);
    cofre_ledger_free(l);
}

static void undo_reverts_to_the_mark(void **state)
{
    (void)state;
    cofre_ledger_t *l = ledger_with_accounts();
    cofre_account_t fresh = account(ID(5), "dave", "EUR", true, 0, 0);
    size_t mark = cofre_ledger_mark(l);
    assert_int_equal(cofre_ledger_open_account(l, &fresh), COFRE_P_NONE);
    cofre_transfer_t t1 = transfer(ID(9), ID(1), ID(5), 70, "EUR");
    cofre_transfer_t t2 = transfer(ID(8), ID(5), ID(3), 30, "EUR");
    assert_int_equal(cofre_ledger_post_transfer(l, &t1, NULL), COFRE_P_NONE);
    assert_int_equal(cofre_ledger_post_transfer(l, &t2, NULL), COFRE_P_NONE);
    cofre_ledger_undo(l, mark);
    assert_null(cofre_ledger_account(l, ID(5)));
    assert_int_equal(balance(l, ID(1)), 0);
    assert_int_equal(balance(l, ID(3)), 0);
    /* The ids are free again. */
    assert_int_equal(cofre_ledger_open_account(l, &fresh), COFRE_P_NONE);
    assert_int_equal(cofre_ledger_post_transfer(l, &t1, NULL), COFRE_P_NONE);
    cofre_ledger_free(l);
}

static void count_change(const cofre_account_t *a, bool is_new, void *data)
{
    int *counts = data;
    (void)a;
    counts[is_new ? 1 : 0]++;
}

static void changes_list_new_and_touched_accounts(void **state)
{
    (void)state;
    cofre_ledger_t *l = ledger_with_accounts();
    cofre_account_t fresh = account(ID(5), "dave", "EUR", true, 0, 0);
    assert_int_equal(cofre_ledger_open_account(l, &fresh), COFRE_P_NONE);
    assert_int_equal(cofre_ledger_open_account(l, &fresh), COFRE_P_ACCOUNT_EXISTS);
    cofre_transfer_t t = transfer(ID(9), ID(1), ID(3), 5, "EUR");
    assert_int_equal(cofre_ledger_post_transfer(l, &t, NULL), COFRE_P_NONE);
    int counts[2] = {0, 0};
    cofre_ledger_each_change(l, count_change, counts);
    assert_int_equal(counts[0], 2); /* bank and bob changed */
    assert_int_equal(counts[1], 1); /* dave is new */
    cofre_ledger_reset(l);
    counts[0] = counts[1] = 0;
    cofre_ledger_each_change(l, count_change, counts);
    assert_int_equal(counts[0] + counts[1], 0);
    cofre_ledger_free(l);
}

static void many_accounts_grow_the_table(void **state)
{
    (void)state;
    cofre_ledger_t *l = cofre_ledger_new();
    char id[40];
    for (int i = 0; i < 5000; i++) {
        snprintf(id, sizeof(id), "00000000-0000-7000-8000-%012d", i);
        cofre_account_t a = account(id, "o", "EUR", false, 0, 0);
        cofre_ledger_load_account(l, &a);
    }
    for (int i = 0; i < 5000; i += 499) {
        snprintf(id, sizeof(id), "00000000-0000-7000-8000-%012d", i);
        assert_non_null(cofre_ledger_account(l, id));
    }
    cofre_ledger_free(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(posts_double_entry),
        cmocka_unit_test(no_overdraft_allows_exactly_the_balance),
        cmocka_unit_test(rejects_unknown_accounts_currency_and_ids),
        cmocka_unit_test(totals_never_overflow),
        cmocka_unit_test(owner_restriction_hides_other_accounts),
        cmocka_unit_test(undo_reverts_to_the_mark),
        cmocka_unit_test(changes_list_new_and_touched_accounts),
        cmocka_unit_test(many_accounts_grow_the_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
