/* test_common.c: clocks, time formatting, hex and URL decoding. */
#include "unit.h"

#include "cofre/common.h"

#include <string.h>

static void time_format_is_rfc3339_utc_with_microseconds(void **state)
{
    (void)state;
    char buf[COFRE_TIME_LEN + 1];
    cofre_time_format(1796083200123456ull, buf); /* 2026-12-01T00:00:00.123456Z */
    assert_string_equal(buf, "2026-12-01T00:00:00.123456Z");
    cofre_time_format(0, buf);
    assert_string_equal(buf, "1970-01-01T00:00:00.000000Z");
    assert_int_equal(strlen(buf), COFRE_TIME_LEN);
}

static void hex_encode_and_check(void **state)
{
    (void)state;
    uint8_t in[] = {0x00, 0xab, 0xff};
    char out[7];
    cofre_hex_encode(in, sizeof(in), out);
    assert_string_equal(out, "00abff");
    assert_true(cofre_is_lower_hex("00abff", 6));
    assert_false(cofre_is_lower_hex("00ABff", 6));
    assert_false(cofre_is_lower_hex("0g", 2));
}

static void url_decode_accepts_escapes_and_rejects_bad_ones(void **state)
{
    (void)state;
    char out[16];
    assert_int_equal(cofre_url_decode("a%20b+c", 7, out, sizeof(out), true), 5);
    assert_string_equal(out, "a b c");
    assert_int_equal(cofre_url_decode("a+b", 3, out, sizeof(out), false), 3);
    assert_string_equal(out, "a+b");
    assert_int_equal(cofre_url_decode("%4", 2, out, sizeof(out), false), -1);
    assert_int_equal(cofre_url_decode("%", 1, out, sizeof(out), false), -1);
    assert_int_equal(cofre_url_decode("%zz", 3, out, sizeof(out), false), -1);
    assert_int_equal(cofre_url_decode("%00", 3, out, sizeof(out), false), -1);
    /* One byte too long for the output (needs room for the NUL). */
    assert_int_equal(cofre_url_decode("0123456789abcdef", 16, out, sizeof(out), false), -1);
    assert_int_equal(cofre_url_decode("0123456789abcde", 15, out, sizeof(out), false), 15);
}

static void clocks_move_forward(void **state)
{
    (void)state;
    uint64_t a = cofre_now_mono_ns();
    uint64_t b = cofre_now_mono_ns();
    assert_true(b >= a);
    assert_true(cofre_now_wall_us() > 1700000000000000ull);
}

static void strerror_names_every_code(void **state)
{
    (void)state;
    for (int e = COFRE_EUNAVAIL; e <= 0; e++)
        assert_string_not_equal(cofre_strerror(e), "unknown error");
    assert_string_equal(cofre_strerror(-1000), "unknown error");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(time_format_is_rfc3339_utc_with_microseconds),
        cmocka_unit_test(hex_encode_and_check),
        cmocka_unit_test(url_decode_accepts_escapes_and_rejects_bad_ones),
        cmocka_unit_test(clocks_move_forward),
        cmocka_unit_test(strerror_names_every_code),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
