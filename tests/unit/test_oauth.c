/* test_oauth.c: form bodies and client authentication of the token endpoint: Basic and post
 * credentials, both at once, neither, malformed ones, and the RFC 6749 error JSON. */
#include "unit.h"

#include "auth/oauth.h"

#include <string.h>

static cofre_oauth_form_t form_of(const char *body)
{
    cofre_oauth_form_t f;
    const char *why = NULL;
    assert_true(cofre_oauth_form_parse(body, strlen(body), &f, &why));
    return f;
}

static void forms(void **state)
{
    (void)state;
    cofre_oauth_form_t f = form_of("grant_type=client_credentials&scope=a%3Ab+c%3Ad&x=1&&y");
    assert_string_equal(f.values[COFRE_OAUTH_P_GRANT_TYPE], "client_credentials");
    assert_string_equal(f.values[COFRE_OAUTH_P_SCOPE], "a:b c:d");
    assert_int_equal(f.lens[COFRE_OAUTH_P_SCOPE], 7);
    assert_null(f.values[COFRE_OAUTH_P_CLIENT_ID]);
    cofre_oauth_form_release(&f);
    f = form_of("");
    assert_null(f.values[COFRE_OAUTH_P_GRANT_TYPE]);
    cofre_oauth_form_release(&f);
    f = form_of("token=");
    assert_string_equal(f.values[COFRE_OAUTH_P_TOKEN], "");
    cofre_oauth_form_release(&f);

    static const char *const bad[] = {"grant_type=a&grant_type=b", "scope=%zz", "scope=%00",
                                      "client_id=a&client_id=a"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *why = NULL;
        if (cofre_oauth_form_parse(bad[i], strlen(bad[i]), &f, &why))
            fail_msg("accepted \"%s\"", bad[i]);
        assert_non_null(why);
        cofre_oauth_form_release(&f);
    }
    char many[1024] = "";
    for (int i = 0; i <= COFRE_OAUTH_PARAMS_MAX; i++)
        strcat(many, "a=1&");
    const char *why = NULL;
    assert_false(cofre_oauth_form_parse(many, strlen(many), &f, &why));
    cofre_oauth_form_release(&f);
}

static cofre_oauth_error_t auth(const char *header, const char *body, cofre_oauth_client_auth_t *a)
{
    cofre_oauth_form_t f = form_of(body);
    const char *why = NULL;
    cofre_oauth_error_t e =
        cofre_oauth_client_auth(header, header != NULL ? strlen(header) : 0, &f, a, &why);
    cofre_oauth_form_release(&f);
    if (e != COFRE_OAUTH_OK)
        assert_non_null(why);
    return e;
}

static void client_credentials(void **state)
{
    (void)state;
    cofre_oauth_client_auth_t a;
    /* base64("demo:s3cret") */
    assert_int_equal(auth("Basic ZGVtbzpzM2NyZXQ=", "grant_type=client_credentials", &a),
                     COFRE_OAUTH_OK);
    assert_int_equal(a.method, COFRE_OAUTH_BASIC);
    assert_string_equal(a.client_id, "demo");
    assert_string_equal(a.secret, "s3cret");
    assert_int_equal(a.secret_len, 6);
    /* the id and secret are form-encoded inside Basic: base64("a%3Ab:c%25d") */
    assert_int_equal(auth("basic YSUzQWI6YyUyNWQ=", "", &a), COFRE_OAUTH_OK);
    assert_string_equal(a.client_id, "a:b");
    assert_string_equal(a.secret, "c%d");
    assert_int_equal(auth(NULL, "client_id=demo&client_secret=s3cret", &a), COFRE_OAUTH_OK);
    assert_int_equal(a.method, COFRE_OAUTH_POST);
    assert_string_equal(a.secret, "s3cret");
    /* the same client_id beside Basic is fine; another is not */
    assert_int_equal(auth("Basic ZGVtbzpzM2NyZXQ=", "client_id=demo", &a), COFRE_OAUTH_OK);
    assert_int_equal(auth("Basic ZGVtbzpzM2NyZXQ=", "client_id=eve", &a),
                     COFRE_OAUTH_INVALID_REQUEST);
    assert_int_equal(auth("Basic ZGVtbzpzM2NyZXQ=", "client_id=demo&client_secret=x", &a),
                     COFRE_OAUTH_INVALID_REQUEST);
}

static void bad_credentials(void **state)
{
    (void)state;
    cofre_oauth_client_auth_t a;
    static const char *const headers[] = {"Bearer abc",
                                          "Basic",
                                          "Basic !!!!",
                                          "Basic ZGVtbw==" /* no colon */,
                                          "Basic OnNlY3JldA==" /* empty id */,
                                          "Basic ZGVtbzo=" /* empty secret */,
                                          "Basic ZGVtbzpzM2NyZXQ" /* unpadded */};
    for (size_t i = 0; i < sizeof(headers) / sizeof(headers[0]); i++)
        if (auth(headers[i], "", &a) != COFRE_OAUTH_INVALID_CLIENT)
            fail_msg("\"%s\" accepted", headers[i]);
    assert_int_equal(auth(NULL, "", &a), COFRE_OAUTH_INVALID_CLIENT);
    assert_int_equal(auth(NULL, "client_id=demo", &a), COFRE_OAUTH_INVALID_CLIENT);
    assert_int_equal(auth(NULL, "client_secret=x", &a), COFRE_OAUTH_INVALID_CLIENT);
    assert_int_equal(auth(NULL, "client_id=&client_secret=x", &a), COFRE_OAUTH_INVALID_CLIENT);
    char body[1024] = "client_id=demo&client_secret=";
    for (int i = 0; i < COFRE_SECRET_INPUT_MAX + 1; i++)
        strcat(body, "x");
    assert_int_equal(auth(NULL, body, &a), COFRE_OAUTH_INVALID_CLIENT);
}

static void error_json(void **state)
{
    (void)state;
    cofre_jbuf_t b;
    cofre_jbuf_init(&b);
    cofre_oauth_error_json(COFRE_OAUTH_INVALID_CLIENT, "no \"such\" client", &b);
    assert_string_equal(
        b.data, "{\"error\":\"invalid_client\",\"error_description\":\"no \\\"such\\\" client\"}");
    assert_int_equal(cofre_oauth_error_status(COFRE_OAUTH_INVALID_CLIENT), 401);
    assert_int_equal(cofre_oauth_error_status(COFRE_OAUTH_INVALID_SCOPE), 400);
    assert_string_equal(cofre_oauth_error_name(COFRE_OAUTH_UNSUPPORTED_GRANT_TYPE),
                        "unsupported_grant_type");
    cofre_jbuf_release(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(forms),
        cmocka_unit_test(client_credentials),
        cmocka_unit_test(bad_credentials),
        cmocka_unit_test(error_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
