/* test_trace.c: traceparent parsing (valid, malformed, future versions) and request ids. */
#include "unit.h"

#include "cofre/trace.h"

#include <string.h>

#define TP "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

static void continues_a_valid_traceparent(void **state)
{
    (void)state;
    cofre_trace_t t;
    assert_true(cofre_trace_start(&t, TP, strlen(TP)));
    assert_string_equal(t.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_string_equal(t.parent_id, "00f067aa0ba902b7");
    assert_int_equal(t.flags, 1);
    assert_int_equal(strlen(t.span_id), 16);
    assert_string_not_equal(t.span_id, t.parent_id);
    char out[COFRE_TRACEPARENT_LEN + 1];
    cofre_trace_format(&t, out);
    assert_int_equal(strncmp(out, "00-4bf92f3577b34da6a3ce929d0e0e4736-", 36), 0);
    assert_string_equal(out + 52, "-01");
}

static void starts_a_new_trace_on_bad_input(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",      /* short */
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",   /* uppercase */
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",   /* zero trace id */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",   /* zero parent */
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",   /* forbidden version */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x", /* v00 with extra */
        "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",   /* separator */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cofre_trace_t t;
        assert_false(cofre_trace_start(&t, bad[i], strlen(bad[i])));
        assert_int_equal(strlen(t.trace_id), 32);
        assert_string_equal(t.parent_id, "");
        assert_string_not_equal(t.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
    }
}

static void accepts_a_future_version_with_more_fields(void **state)
{
    (void)state;
    const char *tp = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-what-ever";
    cofre_trace_t t;
    assert_true(cofre_trace_start(&t, tp, strlen(tp)));
    assert_int_equal(t.flags, 0);
}

static void request_id_is_taken_when_safe(void **state)
{
    (void)state;
    cofre_trace_t t;
    assert_true(cofre_trace_set_request_id(&t, "abc-123_X.y", 11));
    assert_string_equal(t.request_id, "abc-123_X.y");
    assert_false(cofre_trace_set_request_id(&t, "bad id", 6));
    assert_int_equal(strlen(t.request_id), 32);
    assert_false(cofre_trace_set_request_id(&t, "x\n", 2));
    char longid[200];
    memset(longid, 'a', sizeof(longid));
    assert_false(cofre_trace_set_request_id(&t, longid, sizeof(longid)));
    assert_true(cofre_trace_set_request_id(&t, longid, COFRE_REQUEST_ID_MAX));
}

static void new_ids_differ(void **state)
{
    (void)state;
    cofre_trace_t a, b;
    cofre_trace_start(&a, NULL, 0);
    cofre_trace_start(&b, NULL, 0);
    assert_string_not_equal(a.trace_id, b.trace_id);
    assert_string_not_equal(a.span_id, b.span_id);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(continues_a_valid_traceparent),
        cmocka_unit_test(starts_a_new_trace_on_bad_input),
        cmocka_unit_test(accepts_a_future_version_with_more_fields),
        cmocka_unit_test(request_id_is_taken_when_safe),
        cmocka_unit_test(new_ids_differ),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
