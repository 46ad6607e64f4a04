/* test_scope.c: scope lists: parsing (RFC 6749 §3.3 syntax, unknown names counted), and
 * formatting in the contract's order. */
#include "unit.h"

#include "cofre/common.h"
#include "cofre/http.h"
#include "cofre/scope.h"

#include <string.h>

static void parse_lists(void **state)
{
    (void)state;
    uint32_t bits;
    unsigned unknown;
    const char *s = "ledger:admin accounts:read other:thing";
    assert_true(cofre_scope_parse(s, strlen(s), &bits, &unknown));
    assert_int_equal(bits, COFRE_SCOPE_LEDGER_ADMIN | COFRE_SCOPE_ACCOUNTS_READ);
    assert_int_equal(unknown, 1);
    assert_true(cofre_scope_parse("", 0, &bits, &unknown));
    assert_int_equal(bits, 0);
    static const char *const bad[] = {" a", "a ", "a  b", "a\tb", "a\"b", "a\\b", "\x7f"};
    for (size_t i = 0; i < COFRE_ARRAY_SIZE(bad); i++)
        if (cofre_scope_parse(bad[i], strlen(bad[i]), &bits, &unknown))
            fail_msg("accepted \"%s\"", bad[i]);
    char big[COFRE_SCOPE_INPUT_MAX + 2];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_false(cofre_scope_parse(big, strlen(big), &bits, NULL));
    assert_true(cofre_scope_parse(big, COFRE_SCOPE_INPUT_MAX, &bits, NULL));
}

static void format_in_order(void **state)
{
    (void)state;
    char out[COFRE_SCOPE_LIST_MAX];
    cofre_scope_format(COFRE_SCOPE_LEDGER_ADMIN | COFRE_SCOPE_ACCOUNTS_READ, out);
    assert_string_equal(out, "accounts:read ledger:admin");
    cofre_scope_format(0, out);
    assert_string_equal(out, "");
    cofre_scope_format(COFRE_SCOPE_ALL, out);
    assert_string_equal(out, "accounts:read accounts:write transfers:read transfers:write "
                             "audit:read ledger:admin");
    uint32_t bits;
    assert_true(cofre_scope_parse(out, strlen(out), &bits, NULL));
    assert_int_equal(bits, COFRE_SCOPE_ALL);
    assert_null(cofre_scope_name(COFRE_SCOPE_ALL));
    assert_string_equal(cofre_scope_name(COFRE_SCOPE_AUDIT_READ), "audit:read");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parse_lists),
        cmocka_unit_test(format_in_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
