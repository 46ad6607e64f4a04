/* test_wire.c: core request decoding (ids, currencies, references, batches, owners, metadata),
 * encoding, cursors and limits. */
#include "unit.h"

#include "core/wire.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define A "0190a5b2-7c3d-7e4f-8a1b-2c3d4e5f6a7c"
#define B "0190a5b2-7c3d-7e4f-8a1b-2c3d4e5f6a7d"

static cofre_problem_code_t transfer(const char *body, cofre_transfer_t *t)
{
    cofre_problem_t err = {0};
    return cofre_wire_decode_transfer(body, strlen(body), t, &err) ? COFRE_P_NONE : err.code;
}

static void decodes_a_transfer_and_normalises_ids(void **state)
{
    (void)state;
    cofre_transfer_t t;
    assert_int_equal(transfer("{\"debit_account_id\":\"0190A5B2-7C3D-7E4F-8A1B-2C3D4E5F6A7C\","
                              "\"credit_account_id\":\"" B "\",\"amount\":5,\"currency\":\"EUR\","
                              "\"reference\":\"rent \\u00e9\"}",
                              &t),
                     COFRE_P_NONE);
    assert_string_equal(t.debit_account_id, A);
    assert_int_equal(strlen(t.id), 36);
    assert_int_equal(t.id[14], '7'); /* a generated id is a UUIDv7 */
    assert_true(t.has_reference);
    assert_string_equal(t.reference, "rent \xc3\xa9");
}

static void rejects_bad_transfers_with_the_right_code(void **state)
{
    (void)state;
    cofre_transfer_t t;
    assert_int_equal(transfer("{\"debit_account_id\":\"x\",\"credit_account_id\":\"" B
                              "\",\"amount\":5,\"currency\":\"EUR\"}",
                              &t),
                     COFRE_P_INVALID_REQUEST);
    assert_int_equal(transfer("{\"debit_account_id\":\"" A "\",\"credit_account_id\":\"" A
                              "\",\"amount\":5,\"currency\":\"EUR\"}",
                              &t),
                     COFRE_P_SAME_ACCOUNT);
    assert_int_equal(transfer("{\"debit_account_id\":\"" A "\",\"credit_account_id\":\"" B
                              "\",\"amount\":5,\"currency\":\"XYZ\"}",
                              &t),
                     COFRE_P_INVALID_CURRENCY);
    assert_int_equal(transfer("{\"debit_account_id\":\"" A "\",\"credit_account_id\":\"" B
                              "\",\"amount\":5,\"currency\":\"eur\"}",
                              &t),
                     COFRE_P_INVALID_CURRENCY);
    assert_int_equal(transfer("{\"debit_account_id\":\"" A "\",\"credit_account_id\":\"" B
                              "\",\"amount\":5.5,\"currency\":\"EUR\"}",
                              &t),
                     COFRE_P_INVALID_AMOUNT);
    assert_int_equal(transfer("{\"debit_account_id\":\"" A "\",\"credit_account_id\":\"" B
                              "\",\"amount\":5,\"currency\":\"EUR\",\"reference\":\"a\\nb\"}",
                              &t),
                     COFRE_P_INVALID_REQUEST);
}

static void reference_limit_counts_characters(void **state)
{
    (void)state;
    char body[2048];
    char ref[600] = "";
    for (int i = 0; i < 140; i++)
        strcat(ref, "\xc3\xa9"); /* 140 characters, 280 bytes */
    snprintf(body, sizeof(body),
             "{\"debit_account_id\":\"" A "\",\"credit_account_id\":\"" B
             "\",\"amount\":5,\"currency\":\"EUR\",\"reference\":\"%s\"}",
             ref);
    cofre_transfer_t t;
    assert_int_equal(transfer(body, &t), COFRE_P_NONE);
    strcat(ref, "x");
    snprintf(body, sizeof(body),
             "{\"debit_account_id\":\"" A "\",\"credit_account_id\":\"" B
             "\",\"amount\":5,\"currency\":\"EUR\",\"reference\":\"%s\"}",
             ref);
    assert_int_equal(transfer(body, &t), COFRE_P_INVALID_REQUEST);
}

static void batches_are_bounded(void **state)
{
    (void)state;
    cofre_problem_t err;
    cofre_transfer_t *ts = NULL;
    size_t n = 0;
    bool atomic = false;
    const char *empty = "{\"transfers\":[]}";
    assert_false(cofre_wire_decode_batch(empty, strlen(empty), &ts, &n, &atomic, &err));
    assert_int_equal(err.code, COFRE_P_INVALID_REQUEST);
    const char *bad_item = "{\"transfers\":[1]}";
    assert_false(cofre_wire_decode_batch(bad_item, strlen(bad_item), &ts, &n, &atomic, &err));
    assert_non_null(strstr(err.detail, "transfers[0]"));
    const char *ok = "{\"atomic\":true,\"transfers\":[{\"debit_account_id\":\"" A
                     "\",\"credit_account_id\":\"" B "\",\"amount\":1,\"currency\":\"EUR\"}]}";
    assert_true(cofre_wire_decode_batch(ok, strlen(ok), &ts, &n, &atomic, &err));
    assert_int_equal(n, 1);
    assert_true(atomic);
    free(ts);
}

static void accounts_validate_owner_flags_and_metadata(void **state)
{
    (void)state;
    cofre_problem_t err;
    cofre_account_t a;
    const char *ok = "{\"owner\":\"alice@bank\",\"currency\":\"BRL\",\"flags\":{\"no_overdraft\":"
                     "false},\"metadata\":{\"k\":[1,\"v\"]}}";
    assert_true(cofre_wire_decode_account(ok, strlen(ok), &a, &err));
    assert_false(a.no_overdraft);
    assert_string_equal(a.metadata, "{\"k\":[1,\"v\"]}");
    cofre_jbuf_t b;
    cofre_jbuf_init(&b);
    cofre_wire_account(&b, &a);
    assert_non_null(strstr(b.data, "\"metadata\":{\"k\":[1,\"v\"]}"));
    assert_non_null(strstr(b.data, "\"balance\":0"));
    cofre_jbuf_release(&b);
    cofre_account_release(&a);
    const char *bad_flag = "{\"owner\":\"a\",\"currency\":\"BRL\",\"flags\":{\"frozen\":true}}";
    assert_false(cofre_wire_decode_account(bad_flag, strlen(bad_flag), &a, &err));
    assert_non_null(strstr(err.detail, "flags.frozen"));
    const char *bad_owner = "{\"owner\":\"a b\",\"currency\":\"BRL\"}";
    assert_false(cofre_wire_decode_account(bad_owner, strlen(bad_owner), &a, &err));
    char big[8192];
    char *pad = calloc(1, 4200);
    memset(pad, 'x', 4100);
    snprintf(big, sizeof(big), "{\"owner\":\"a\",\"currency\":\"BRL\",\"metadata\":{\"k\":\"%s\"}}",
             pad);
    free(pad);
    assert_false(cofre_wire_decode_account(big, strlen(big), &a, &err));
    assert_int_equal(err.code, COFRE_P_INVALID_REQUEST);
}

static void cursors_round_trip_and_reject_garbage(void **state)
{
    (void)state;
    char c[COFRE_WIRE_CURSOR_LEN + 1];
    int64_t seq = 0;
    cofre_wire_cursor_encode('t', 123456789, c);
    assert_true(cofre_wire_cursor_decode(c, 't', &seq));
    assert_int_equal(seq, 123456789);
    assert_false(cofre_wire_cursor_decode(c, 'a', &seq)); /* another list's cursor */
    assert_false(cofre_wire_cursor_decode("", 't', &seq));
    assert_false(cofre_wire_cursor_decode("!!!!!!!!!!!!", 't', &seq));
    assert_false(cofre_wire_cursor_decode("YQAAAAAAAAA", 't', &seq));
    cofre_wire_cursor_encode('a', INT64_MAX, c);
    assert_true(cofre_wire_cursor_decode(c, 'a', &seq));
    assert_int_equal(seq, INT64_MAX);
}

static void limits_and_keys(void **state)
{
    (void)state;
    size_t limit = 0;
    assert_true(cofre_wire_parse_limit("1", &limit) && limit == 1);
    assert_true(cofre_wire_parse_limit("1000", &limit) && limit == 1000);
    assert_false(cofre_wire_parse_limit("0", &limit));
    assert_false(cofre_wire_parse_limit("1001", &limit));
    assert_false(cofre_wire_parse_limit("-1", &limit));
    assert_false(cofre_wire_parse_limit("", &limit));
    assert_false(cofre_wire_parse_limit("10a", &limit));
    assert_true(cofre_wire_idempotency_key_valid("k", 1));
    assert_false(cofre_wire_idempotency_key_valid("", 0));
    assert_false(cofre_wire_idempotency_key_valid("a b", 3));
    char key[257];
    memset(key, 'k', sizeof(key));
    assert_true(cofre_wire_idempotency_key_valid(key, 255));
    assert_false(cofre_wire_idempotency_key_valid(key, 256));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(decodes_a_transfer_and_normalises_ids),
        cmocka_unit_test(rejects_bad_transfers_with_the_right_code),
        cmocka_unit_test(reference_limit_counts_characters),
        cmocka_unit_test(batches_are_bounded),
        cmocka_unit_test(accounts_validate_owner_flags_and_metadata),
        cmocka_unit_test(cursors_round_trip_and_reject_garbage),
        cmocka_unit_test(limits_and_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
