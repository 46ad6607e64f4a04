/*
 * test_pg.c: the parts of lib/pg.c that need no server: binary array parameters (the exact
 * bytes PostgreSQL's array_recv reads), time parsing, SQLSTATE mapping, and a connection to a
 * closed port failing fast and then backing off. The rest runs against a real server in
 * tests/e2e (COFRE_TEST_DBS=postgres).
 */
#include "unit.h"

#include "cofre/common.h"
#include "cofre/pg.h"

#include <string.h>

static uint32_t get32(const char *p)
{
    const unsigned char *u = (const unsigned char *)p;
    return (uint32_t)u[0] << 24 | (uint32_t)u[1] << 16 | (uint32_t)u[2] << 8 | u[3];
}

static void empty_array_has_no_dimensions(void **state)
{
    (void)state;
    cofre_pg_array_t a;
    cofre_pg_array_init(&a, COFRE_PG_UUID_ARRAY);
    cofre_pg_param_t p = cofre_pg_array_param(&a);
    assert_true(p.binary);
    assert_int_equal(p.type, COFRE_PG_UUID_ARRAY);
    assert_int_equal(p.len, 12);
    assert_int_equal(get32(p.value), 0);        /* ndim */
    assert_int_equal(get32(p.value + 4), 0);    /* no nulls */
    assert_int_equal(get32(p.value + 8), 2950); /* uuid */
    cofre_pg_array_release(&a);
}

static void int8_array_is_big_endian_with_one_dimension(void **state)
{
    (void)state;
    cofre_pg_array_t a;
    cofre_pg_array_init(&a, COFRE_PG_INT8_ARRAY);
    cofre_pg_array_int8(&a, 1);
    cofre_pg_array_int8(&a, -2);
    cofre_pg_param_t p = cofre_pg_array_param(&a);
    assert_int_equal(p.len, 20 + 2 * (4 + 8));
    assert_int_equal(get32(p.value), 1);
    assert_int_equal(get32(p.value + 8), 20); /* int8 */
    assert_int_equal(get32(p.value + 12), 2); /* elements */
    assert_int_equal(get32(p.value + 16), 1); /* lower bound */
    assert_int_equal(get32(p.value + 20), 8);
    assert_int_equal(get32(p.value + 24), 0);
    assert_int_equal(get32(p.value + 28), 1);
    assert_int_equal(get32(p.value + 36), 0xffffffffu);
    assert_int_equal(get32(p.value + 40), 0xfffffffeu);
    /* Reset keeps the type and starts over. */
    cofre_pg_array_reset(&a);
    cofre_pg_array_int8(&a, 7);
    p = cofre_pg_array_param(&a);
    assert_int_equal(p.len, 20 + 12);
    assert_int_equal(get32(p.value + 12), 1);
    cofre_pg_array_release(&a);
}

static void text_array_marks_nulls(void **state)
{
    (void)state;
    cofre_pg_array_t a;
    cofre_pg_array_init(&a, COFRE_PG_TEXT_ARRAY);
    cofre_pg_array_text(&a, "ab", 2);
    cofre_pg_array_null(&a);
    cofre_pg_param_t p = cofre_pg_array_param(&a);
    assert_int_equal(get32(p.value + 4), 1); /* has nulls */
    assert_int_equal(get32(p.value + 8), 25);
    assert_int_equal(get32(p.value + 20), 2);
    assert_memory_equal(p.value + 24, "ab", 2);
    assert_int_equal(get32(p.value + 26), 0xffffffffu); /* -1: NULL */
    assert_int_equal(p.len, 30);
    cofre_pg_array_release(&a);
}

static void uuid_elements_are_16_bytes_and_checked(void **state)
{
    (void)state;
    cofre_pg_array_t a;
    cofre_pg_array_init(&a, COFRE_PG_UUID_ARRAY);
    assert_int_equal(cofre_pg_array_uuid(&a, "01234567-89AB-cdef-0123-456789abcdef"), 0);
    static const char *const bad[] = {
        "", "01234567-89ab-cdef-0123-456789abcde", "01234567-89ab-cdef-0123-456789abcdef0",
        "0123456789ab-cdef-0123-456789abcdef-", "01234567-89ab-cdef-0123-456789abcdeg"};
    for (size_t i = 0; i < COFRE_ARRAY_SIZE(bad); i++)
        assert_int_equal(cofre_pg_array_uuid(&a, bad[i]), COFRE_EINVAL);
    cofre_pg_param_t p = cofre_pg_array_param(&a);
    assert_int_equal(get32(p.value + 12), 1); /* the bad ones appended nothing */
    assert_int_equal(get32(p.value + 20), 16);
    static const unsigned char want[16] = {0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef,
                                           0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef};
    assert_memory_equal(p.value + 24, want, 16);
    cofre_pg_array_release(&a);
}

static void timestamps_count_from_2000(void **state)
{
    (void)state;
    cofre_pg_array_t a;
    cofre_pg_array_init(&a, COFRE_PG_TIMESTAMPTZ_ARRAY);
    cofre_pg_array_timestamptz(&a, 946684800LL * 1000000 + 5); /* 2000-01-01T00:00:00.000005Z */
    cofre_pg_param_t p = cofre_pg_array_param(&a);
    assert_int_equal(get32(p.value + 8), 1184);
    assert_int_equal(get32(p.value + 24), 0);
    assert_int_equal(get32(p.value + 28), 5);
    cofre_pg_array_release(&a);
}

static void time_parse(void **state)
{
    (void)state;
    int64_t us = 0;
    assert_int_equal(cofre_pg_time_parse("2000-01-01T00:00:00.000005Z", &us), 0);
    assert_int_equal(us, 946684800LL * 1000000 + 5);
    assert_int_equal(cofre_pg_time_parse("1970-01-01T00:00:01.5Z", &us), 0);
    assert_int_equal(us, 1500000);
    assert_int_equal(cofre_pg_time_parse("1970-01-01T00:00:02Z", &us), 0);
    assert_int_equal(us, 2000000);
    char now[COFRE_TIME_LEN + 1];
    uint64_t wall = cofre_now_wall_us();
    cofre_time_format(wall, now);
    assert_int_equal(cofre_pg_time_parse(now, &us), 0);
    assert_int_equal(us, (int64_t)wall);
    static const char *const bad[] = {"",
                                      "2000-01-01",
                                      "2000-01-01T00:00:00",
                                      "2000-01-01T00:00:00.Z",
                                      "2000-01-01T00:00:00+01:00",
                                      "2000-01-01T00:00:00.1Zjunk"};
    for (size_t i = 0; i < COFRE_ARRAY_SIZE(bad); i++)
        assert_int_equal(cofre_pg_time_parse(bad[i], &us), COFRE_EINVAL);
}

static void sqlstates_map_to_retry_unavailable_or_error(void **state)
{
    (void)state;
    static const char *const conflict[] = {"40001", "40P01", "23505", "55P03"};
    static const char *const unavail[] = {"08006", "08001", "57P01", "57P03", "25006", "53300"};
    static const char *const other[] = {"23514", "23503", "42501", "22P02", "XX000", ""};
    for (size_t i = 0; i < COFRE_ARRAY_SIZE(conflict); i++)
        assert_int_equal(cofre_pg_map_sqlstate(conflict[i]), COFRE_ECONFLICT);
    for (size_t i = 0; i < COFRE_ARRAY_SIZE(unavail); i++)
        assert_int_equal(cofre_pg_map_sqlstate(unavail[i]), COFRE_EUNAVAIL);
    for (size_t i = 0; i < COFRE_ARRAY_SIZE(other); i++)
        assert_int_equal(cofre_pg_map_sqlstate(other[i]), COFRE_EIO);
}

static void closed_port_fails_fast_then_backs_off(void **state)
{
    (void)state;
    /* Port 1 on loopback: nothing listens, the kernel refuses at once. */
    cofre_pg_t *pg =
        cofre_pg_new(&(cofre_pg_config_t){.url = "postgresql://nobody@127.0.0.1:1/none",
                                          .connect_timeout_ms = 1000,
                                          .backoff_max_ms = 2000,
                                          .pipeline = true});
    uint64_t t0 = cofre_now_mono_ns();
    assert_int_equal(cofre_pg_connect(pg), COFRE_EUNAVAIL);
    /* Within the backoff: no attempt at all. */
    assert_int_equal(cofre_pg_connect(pg), COFRE_EUNAVAIL);
    cofre_pg_add(pg, "SELECT 1", NULL, 0);
    assert_int_equal(cofre_pg_exchange(pg, true), COFRE_EUNAVAIL);
    assert_int_equal(cofre_pg_queued(pg), 0);
    assert_false(cofre_pg_in_transaction(pg));
    assert_true(cofre_now_mono_ns() - t0 < 1000000000u);
    cofre_pg_free(pg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(empty_array_has_no_dimensions),
        cmocka_unit_test(int8_array_is_big_endian_with_one_dimension),
        cmocka_unit_test(text_array_marks_nulls),
        cmocka_unit_test(uuid_elements_are_16_bytes_and_checked),
        cmocka_unit_test(timestamps_count_from_2000),
        cmocka_unit_test(time_parse),
        cmocka_unit_test(sqlstates_map_to_retry_unavailable_or_error),
        cmocka_unit_test(closed_port_fails_fast_then_backs_off),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
