/* test_json.c: strict body decoding: duplicates, unknown fields, types, amounts. */
#include "unit.h"

#include "cofre/json.h"

#include <string.h>

static const cofre_json_field_t fields[] = {
    {"name", COFRE_JSON_STRING, true},
    {"amount", COFRE_JSON_AMOUNT, true},
    {"flag", COFRE_JSON_BOOL, false},
};

static cofre_problem_code_t check(const char *body, cofre_problem_t *err)
{
    json_t *obj = cofre_json_parse_object(body, strlen(body), err);
    if (obj == NULL)
        return err->code;
    bool ok = cofre_json_check(obj, fields, 3, NULL, err);
    json_decref(obj);
    return ok ? COFRE_P_NONE : err->code;
}

static void accepts_a_valid_body(void **state)
{
    (void)state;
    cofre_problem_t err;
    assert_int_equal(check("{\"name\":\"x\",\"amount\":1,\"flag\":true}", &err), COFRE_P_NONE);
    assert_int_equal(check("{\"name\":\"x\",\"amount\":9223372036854775807}", &err), COFRE_P_NONE);
}

static void rejects_malformed_bodies(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "{",
        "[]",
        "1",
        "null",
        "{\"name\":\"x\",\"amount\":1} trailing",
        "{\"name\":\"x\",\"name\":\"y\",\"amount\":1}", /* duplicate key */
        "{\"name\":\"x\",\"amount\":1,\"extra\":0}",    /* unknown field */
        "{\"amount\":1}",                               /* missing required */
        "{\"name\":1,\"amount\":1}",                    /* wrong type */
        "{\"name\":\"a\\u0000b\",\"amount\":1}",        /* NUL in a string */
        "{\"name\":\"x\",\"amount\":1,\"flag\":\"true\"}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cofre_problem_t err = {0};
        assert_int_equal(check(bad[i], &err), COFRE_P_INVALID_REQUEST);
        assert_true(strlen(err.detail) > 0);
    }
}

static void rejects_bad_amounts_as_invalid_amount(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "{\"name\":\"x\",\"amount\":0}",
        "{\"name\":\"x\",\"amount\":-1}",
        "{\"name\":\"x\",\"amount\":1.0}",
        "{\"name\":\"x\",\"amount\":1e3}",
        "{\"name\":\"x\",\"amount\":\"100\"}",
        "{\"name\":\"x\",\"amount\":null}",
        "{\"name\":\"x\",\"amount\":9223372036854775808}",
        "{\"name\":\"x\",\"amount\":-9223372036854775809}",
        "{\"name\":\"x\",\"amount\":99999999999999999999999999}",
        "{\"name\":\"x\"}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cofre_problem_t err = {0};
        assert_int_equal(check(bad[i], &err), COFRE_P_INVALID_AMOUNT);
    }
}

static void problem_table_is_consistent(void **state)
{
    (void)state;
    for (int c = 1; c < COFRE_P_COUNT_; c++) {
        const char *name = cofre_problem_name((cofre_problem_code_t)c);
        assert_int_equal(cofre_problem_by_name(name), c);
        int status = cofre_problem_status((cofre_problem_code_t)c);
        assert_true(status >= 400 && status <= 599);
    }
    cofre_problem_t p;
    cofre_problem_set(&p, COFRE_P_INSUFFICIENT_FUNDS, "need %d", 5);
    cofre_jbuf_t b;
    cofre_jbuf_init(&b);
    cofre_problem_render(&p, "rid", &b);
    assert_string_equal(b.data, "{\"type\":\"urn:cofre:problem:insufficient_funds\",\"title\":"
                                "\"The debit account has insufficient funds\",\"status\":422,"
                                "\"detail\":\"need 5\",\"code\":\"insufficient_funds\","
                                "\"request_id\":\"rid\"}");
    cofre_jbuf_release(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(accepts_a_valid_body),
        cmocka_unit_test(rejects_malformed_bodies),
        cmocka_unit_test(rejects_bad_amounts_as_invalid_amount),
        cmocka_unit_test(problem_table_is_consistent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
