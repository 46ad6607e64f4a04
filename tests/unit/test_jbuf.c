/* test_jbuf.c: the JSON writer: separators, nesting, escaping, numbers at their limits. */
#include "unit.h"

#include "cofre/jbuf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void writes_nested_objects_with_commas(void **state)
{
    (void)state;
    cofre_jbuf_t b;
    cofre_jbuf_init(&b);
    cofre_jbuf_obj_begin(&b);
    cofre_jbuf_kstr(&b, "a", "x");
    cofre_jbuf_kint(&b, "n", -5);
    cofre_jbuf_key(&b, "list");
    cofre_jbuf_arr_begin(&b);
    cofre_jbuf_int(&b, 1);
    cofre_jbuf_obj_begin(&b);
    cofre_jbuf_kbool(&b, "t", true);
    cofre_jbuf_obj_end(&b);
    cofre_jbuf_null(&b);
    cofre_jbuf_arr_end(&b);
    cofre_jbuf_kstr(&b, "nil", NULL);
    cofre_jbuf_obj_end(&b);
    assert_string_equal(b.data,
                        "{\"a\":\"x\",\"n\":-5,\"list\":[1,{\"t\":true},null],\"nil\":null}");
    cofre_jbuf_release(&b);
}

static void integers_at_their_limits(void **state)
{
    (void)state;
    cofre_jbuf_t b;
    cofre_jbuf_init(&b);
    cofre_jbuf_arr_begin(&b);
    cofre_jbuf_int(&b, INT64_MIN);
    cofre_jbuf_int(&b, INT64_MAX);
    cofre_jbuf_uint(&b, UINT64_MAX);
    cofre_jbuf_int(&b, 0);
    cofre_jbuf_arr_end(&b);
    assert_string_equal(b.data,
                        "[-9223372036854775808,9223372036854775807,18446744073709551615,0]");
    cofre_jbuf_release(&b);
}

static void escapes_quotes_controls_and_bad_utf8(void **state)
{
    (void)state;
    cofre_jbuf_t b;
    cofre_jbuf_init(&b);
    const char in[] = "q\"b\\n\n\x01\xc3\xa9\xff\xe2\x82";
    cofre_jbuf_strn(&b, in, sizeof(in) - 1);
    assert_string_equal(b.data, "\"q\\\"b\\\\n\\u000a\\u0001\xc3\xa9\\ufffd\\ufffd\\ufffd\"");
    cofre_jbuf_release(&b);
}

static void rejects_overlong_and_surrogate_utf8(void **state)
{
    (void)state;
    cofre_jbuf_t b;
    cofre_jbuf_init(&b);
    const char overlong[] = "\xc0\xaf";      /* overlong '/' */
    const char surrogate[] = "\xed\xa0\x80"; /* U+D800 */
    cofre_jbuf_strn(&b, overlong, 2);
    assert_string_equal(b.data, "\"\\ufffd\\ufffd\"");
    cofre_jbuf_reset(&b);
    cofre_jbuf_strn(&b, surrogate, 3);
    assert_string_equal(b.data, "\"\\ufffd\\ufffd\\ufffd\"");
    cofre_jbuf_release(&b);
}

static void steal_hands_over_the_data(void **state)
{
    (void)state;
    cofre_jbuf_t b;
    cofre_jbuf_init(&b);
    cofre_jbuf_appendz(&b, "abc");
    size_t len = 0;
    char *p = cofre_jbuf_steal(&b, &len);
    assert_int_equal(len, 3);
    assert_string_equal(p, "abc");
    assert_null(b.data);
    free(p);
}

static void grows_past_its_first_allocation(void **state)
{
    (void)state;
    cofre_jbuf_t b;
    cofre_jbuf_init(&b);
    cofre_jbuf_arr_begin(&b);
    for (int i = 0; i < 10000; i++)
        cofre_jbuf_int(&b, i);
    cofre_jbuf_arr_end(&b);
    assert_true(b.len > 40000);
    assert_int_equal(b.data[b.len - 1], ']');
    assert_int_equal(strlen(b.data), b.len);
    cofre_jbuf_release(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(writes_nested_objects_with_commas),
        cmocka_unit_test(integers_at_their_limits),
        cmocka_unit_test(escapes_quotes_controls_and_bad_utf8),
        cmocka_unit_test(rejects_overlong_and_surrogate_utf8),
        cmocka_unit_test(steal_hands_over_the_data),
        cmocka_unit_test(grows_past_its_first_allocation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
