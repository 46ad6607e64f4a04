/*
 * test_link.c: the legacy link's message layout: RRN and account-number derivations (known
 * answers from docs/legacy-iso8583.md), STAN wrap, request checks, response matching, masks.
 */
#include "unit.h"

#include "cofre/common.h"
#include "legacy/link.h"

#include <string.h>

#define POSTED_US 1795981431000000ull /* 2026-11-29T19:43:51Z */

static const char transfer_id[] = "0192f3a4-5b6c-7d8e-9fa0-b1c2d3e4f5a6";
static const char debit_id[] = "0192f3a0-1111-7222-8333-444455556666";
static const char credit_id[] = "0192f3a0-7777-7888-8999-aaaabbbbcccc";

static void rrn_is_derived_from_the_transfer_id(void **state)
{
    (void)state;
    char rrn[13], again[13];
    assert_int_equal(cofre_link_rrn(transfer_id, strlen(transfer_id), rrn), 0);
    assert_string_equal(rrn, "D1RB0AYR7OR3");
    /* Case does not matter: the canonical (lowercase) text is hashed. */
    assert_int_equal(cofre_link_rrn("0192F3A4-5B6C-7D8E-9FA0-B1C2D3E4F5A6", 36, again), 0);
    assert_string_equal(again, rrn);
    /* Another id, another RRN. */
    assert_int_equal(cofre_link_rrn(debit_id, strlen(debit_id), again), 0);
    assert_string_not_equal(again, rrn);
    assert_int_equal(strlen(again), 12);
    static const char *const bad[] = {
        "", "0192f3a4-5b6c-7d8e-9fa0-b1c2d3e4f5a", "0192f3a4-5b6c-7d8e-9fa0-b1c2d3e4f5a67",
        "0192f3a4_5b6c-7d8e-9fa0-b1c2d3e4f5a6", "0192f3a4-5b6c-7d8e-9fa0-b1c2d3e4f5g6"};
    for (size_t i = 0; i < COFRE_ARRAY_SIZE(bad); i++)
        assert_int_equal(cofre_link_rrn(bad[i], strlen(bad[i]), rrn), COFRE_EINVAL);
}

static void account_numbers_are_19_digits(void **state)
{
    (void)state;
    char n[20];
    assert_int_equal(cofre_link_account_number(debit_id, strlen(debit_id), n), 0);
    assert_string_equal(n, "7798644626488375109");
    assert_int_equal(cofre_link_account_number(credit_id, strlen(credit_id), n), 0);
    assert_string_equal(n, "8676245170660303205");
    assert_int_equal(cofre_link_account_number("x", 1, n), COFRE_EINVAL);
}

static void stan_wraps_and_skips_zero(void **state)
{
    (void)state;
    assert_int_equal(cofre_link_stan_next(0), 1);
    assert_int_equal(cofre_link_stan_next(1), 2);
    assert_int_equal(cofre_link_stan_next(999998), 999999);
    assert_int_equal(cofre_link_stan_next(999999), 1);
}

static void times_are_utc_fields(void **state)
{
    (void)state;
    char f7[11], f12[7], f13[5];
    cofre_link_format_time(POSTED_US, f7, f12, f13);
    assert_string_equal(f7, "1129194351");
    assert_string_equal(f12, "194351");
    assert_string_equal(f13, "1129");
    cofre_link_format_time(0, f7, NULL, NULL);
    assert_string_equal(f7, "0101000000");
}

static cofre_link_transfer_t transfer(int64_t amount, const char *currency)
{
    cofre_link_transfer_t t = {.transfer_id = transfer_id,
                               .debit_account_id = debit_id,
                               .credit_account_id = credit_id,
                               .amount_minor = amount,
                               .currency = currency,
                               .posted_at_us = POSTED_US};
    return t;
}

static void transfer_build_checks_its_inputs(void **state)
{
    (void)state;
    cofre_iso_msg_t m;
    cofre_link_transfer_t t = transfer(1, "BRL");
    assert_int_equal(cofre_link_build_transfer(&m, &t, 1, "T", POSTED_US), 0);
    assert_string_equal(cofre_iso_get(&m, 41, NULL), "T       "); /* space-filled */
    t = transfer(COFRE_LINK_AMOUNT_MAX, "BRL");
    assert_int_equal(cofre_link_build_transfer(&m, &t, 1, "T", POSTED_US), 0);
    assert_string_equal(cofre_iso_get(&m, 4, NULL), "999999999999");
    t = transfer(COFRE_LINK_AMOUNT_MAX + 1, "BRL");
    assert_int_equal(cofre_link_build_transfer(&m, &t, 1, "T", POSTED_US), COFRE_ERANGE);
    t = transfer(0, "BRL");
    assert_int_equal(cofre_link_build_transfer(&m, &t, 1, "T", POSTED_US), COFRE_ERANGE);
    t = transfer(-5, "BRL");
    assert_int_equal(cofre_link_build_transfer(&m, &t, 1, "T", POSTED_US), COFRE_ERANGE);
    t = transfer(1, "brl");
    assert_int_equal(cofre_link_build_transfer(&m, &t, 1, "T", POSTED_US), COFRE_EINVAL);
    t = transfer(1, "BRL");
    assert_int_equal(cofre_link_build_transfer(&m, &t, 0, "T", POSTED_US), COFRE_EINVAL);
    assert_int_equal(cofre_link_build_transfer(&m, &t, 1000000, "T", POSTED_US), COFRE_EINVAL);
    assert_int_equal(cofre_link_build_transfer(&m, &t, 1, "", POSTED_US), COFRE_EINVAL);
    assert_int_equal(cofre_link_build_transfer(&m, &t, 1, "TOOLONG99", POSTED_US), COFRE_EINVAL);
    t.debit_account_id = "not-a-uuid";
    assert_int_equal(cofre_link_build_transfer(&m, &t, 1, "T", POSTED_US), COFRE_EINVAL);
}

static void requests_are_checked_per_mti(void **state)
{
    (void)state;
    cofre_iso_msg_t m;
    cofre_link_transfer_t t = transfer(100, "BRL");
    assert_int_equal(cofre_link_build_transfer(&m, &t, 7, "T", POSTED_US), 0);
    unsigned missing = 0;
    assert_int_equal(cofre_link_check_request(&m, &missing), 0);
    cofre_iso_unset(&m, 103); /* optional */
    assert_int_equal(cofre_link_check_request(&m, &missing), 0);
    cofre_iso_unset(&m, 37);
    assert_int_equal(cofre_link_check_request(&m, &missing), COFRE_EINVAL);
    assert_int_equal(missing, 37);
    cofre_iso_init(&m, "0800");
    assert_int_equal(cofre_link_check_request(&m, &missing), COFRE_EINVAL);
    assert_int_equal(missing, 7);
    cofre_iso_init(&m, "0100");
    assert_int_equal(cofre_link_check_request(&m, &missing), COFRE_ENOENT);
}

static void responses_match_by_mti_stan_and_rrn(void **state)
{
    (void)state;
    cofre_iso_msg_t req, resp, other;
    cofre_link_transfer_t t = transfer(100, "BRL");
    assert_int_equal(cofre_link_build_transfer(&req, &t, 7, "T", POSTED_US), 0);
    assert_int_equal(cofre_link_build_response(&resp, &req, "00", "123456"), 0);
    assert_string_equal(resp.mti, "0210");
    assert_true(cofre_link_response_matches(&req, &resp));
    assert_true(cofre_link_code_approved(cofre_link_response_code(&resp)));
    assert_string_equal(cofre_iso_get(&resp, 38, NULL), "123456");
    other = resp;
    assert_int_equal(cofre_iso_set_str(&other, 11, "000008"), 0);
    assert_false(cofre_link_response_matches(&req, &other));
    other = resp;
    assert_int_equal(cofre_iso_set_str(&other, 37, "AAAAAAAAAAAA"), 0);
    assert_false(cofre_link_response_matches(&req, &other));
    other = resp;
    assert_int_equal(cofre_iso_set_mti(&other, "0410"), 0);
    assert_false(cofre_link_response_matches(&req, &other));
    other = resp;
    cofre_iso_unset(&other, 39);
    assert_false(cofre_link_response_matches(&req, &other));
    assert_false(cofre_link_response_matches(&resp, &req)); /* a response is not a request */
    assert_int_equal(cofre_link_build_response(&other, &resp, "00", NULL), COFRE_EINVAL);
    assert_int_equal(cofre_link_build_response(&other, &req, "000", NULL), COFRE_EINVAL);
    assert_false(cofre_link_code_approved("05"));
    assert_false(cofre_link_code_approved(NULL));
}

static void reversal_names_the_original(void **state)
{
    (void)state;
    cofre_iso_msg_t orig, rev;
    cofre_link_transfer_t t = transfer(100, "BRL");
    assert_int_equal(cofre_link_build_transfer(&orig, &t, 42, "T", POSTED_US + 1000000), 0);
    assert_int_equal(cofre_link_build_reversal(&rev, &orig, 43, POSTED_US + 31000000), 0);
    char mti[5], stan[7], f7[11];
    assert_int_equal(cofre_link_original(&rev, mti, stan, f7), 0);
    assert_string_equal(mti, "0200");
    assert_string_equal(stan, "000042");
    assert_string_equal(f7, "1129194352");
    assert_string_equal(cofre_iso_get(&rev, 37, NULL), cofre_iso_get(&orig, 37, NULL));
    assert_string_equal(cofre_iso_get(&rev, 11, NULL), "000043");
    assert_int_equal(cofre_link_original(&orig, mti, stan, f7), COFRE_ENOENT);
    /* Only a complete 0200 can be reversed. */
    assert_int_equal(cofre_link_build_reversal(&orig, &rev, 44, POSTED_US), COFRE_EINVAL);
}

static void masks_keep_only_the_last_four(void **state)
{
    (void)state;
    char out[COFRE_LINK_MASK_MAX];
    cofre_link_mask("7798644626488375109", 19, out, sizeof(out));
    assert_string_equal(out, "***************5109");
    cofre_link_mask("1234", 4, out, sizeof(out));
    assert_string_equal(out, "****");
    cofre_link_mask("", 0, out, sizeof(out));
    assert_string_equal(out, "");
    cofre_link_mask("7798644626488375109", 19, out, 6);
    assert_string_equal(out, "*****"); /* truncated, never showing more */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(rrn_is_derived_from_the_transfer_id),
        cmocka_unit_test(account_numbers_are_19_digits),
        cmocka_unit_test(stan_wraps_and_skips_zero),
        cmocka_unit_test(times_are_utc_fields),
        cmocka_unit_test(transfer_build_checks_its_inputs),
        cmocka_unit_test(requests_are_checked_per_mti),
        cmocka_unit_test(responses_match_by_mti_stan_and_rrn),
        cmocka_unit_test(reversal_names_the_original),
        cmocka_unit_test(masks_keep_only_the_last_four),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
