/* test_config.c: environment variables: defaults, valid values, and one clear error. */
#include "unit.h"

#include "cofre/config.h"

#include <stdlib.h>
#include <string.h>

static void unset_values_take_defaults(void **state)
{
    (void)state;
    unsetenv("T_INT");
    unsetenv("T_LISTEN");
    cofre_config_t c;
    cofre_config_init(&c, "test");
    assert_int_equal(cofre_config_int(&c, "T_INT", 7, 1, 10), 7);
    cofre_listen_t l;
    cofre_config_listen(&c, "T_LISTEN", "127.0.0.1:8081", &l);
    assert_string_equal(l.host, "127.0.0.1");
    assert_int_equal(l.port, 8081);
    assert_true(cofre_config_ok(&c));
}

static void bad_integer_is_named(void **state)
{
    (void)state;
    static const char *const bad[] = {"abc", "", "11", "0", "5x", "99999999999999999999"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        setenv("T_INT", bad[i], 1);
        cofre_config_t c;
        cofre_config_init(&c, "test");
        cofre_config_int(&c, "T_INT", 7, 1, 10);
        assert_false(cofre_config_ok(&c));
        assert_non_null(strstr(c.error, "T_INT"));
        assert_non_null(strstr(c.error, "from 1 to 10"));
    }
    setenv("T_INT", "10", 1);
    cofre_config_t c;
    cofre_config_init(&c, "test");
    assert_int_equal(cofre_config_int(&c, "T_INT", 7, 1, 10), 10);
    assert_true(cofre_config_ok(&c));
    unsetenv("T_INT");
}

static void first_error_wins(void **state)
{
    (void)state;
    setenv("T_A", "x", 1);
    setenv("T_B", "y", 1);
    cofre_config_t c;
    cofre_config_init(&c, "test");
    cofre_config_int(&c, "T_A", 1, 0, 2);
    cofre_config_bool(&c, "T_B", false);
    assert_non_null(strstr(c.error, "T_A"));
    assert_null(strstr(c.error, "T_B"));
    unsetenv("T_A");
    unsetenv("T_B");
}

static void listen_addresses(void **state)
{
    (void)state;
    cofre_listen_t l;
    assert_int_equal(cofre_config_parse_listen("0.0.0.0:80", &l), 0);
    assert_string_equal(l.host, "0.0.0.0");
    assert_int_equal(cofre_config_parse_listen("[::1]:8081", &l), 0);
    assert_string_equal(l.host, "::1");
    assert_int_equal(cofre_config_parse_listen("localhost:0", &l), 0);
    assert_int_not_equal(cofre_config_parse_listen("::1:80", &l), 0);
    assert_int_not_equal(cofre_config_parse_listen("host", &l), 0);
    assert_int_not_equal(cofre_config_parse_listen("host:", &l), 0);
    assert_int_not_equal(cofre_config_parse_listen(":80", &l), 0);
    assert_int_not_equal(cofre_config_parse_listen("h:65536", &l), 0);
    assert_int_not_equal(cofre_config_parse_listen("h:-1", &l), 0);
    assert_int_not_equal(cofre_config_parse_listen("[::1:80", &l), 0);
}

static void enums_and_bools(void **state)
{
    (void)state;
    static const char *const levels[] = {"debug", "info", NULL};
    setenv("T_E", "info", 1);
    setenv("T_BOOL", "true", 1);
    cofre_config_t c;
    cofre_config_init(&c, "test");
    assert_int_equal(cofre_config_enum(&c, "T_E", 0, levels), 1);
    assert_true(cofre_config_bool(&c, "T_BOOL", false));
    assert_true(cofre_config_ok(&c));
    setenv("T_E", "INFO", 1);
    cofre_config_enum(&c, "T_E", 0, levels);
    assert_non_null(strstr(c.error, "one of debug, info"));
    unsetenv("T_E");
    unsetenv("T_BOOL");
}

static void required_values(void **state)
{
    (void)state;
    setenv("T_REQ", "", 1);
    cofre_config_t c;
    cofre_config_init(&c, "test");
    assert_string_equal(cofre_config_required(&c, "T_REQ"), "");
    assert_non_null(strstr(c.error, "T_REQ is not set"));
    unsetenv("T_REQ");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(unset_values_take_defaults),
        cmocka_unit_test(bad_integer_is_named),
        cmocka_unit_test(first_error_wins),
        cmocka_unit_test(listen_addresses),
        cmocka_unit_test(enums_and_bools),
        cmocka_unit_test(required_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
