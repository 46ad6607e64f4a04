/* test_router.c: templates, parameters, 404 versus 405, hostile paths. */
#include "unit.h"

#include "cofre/router.h"

#include <string.h>

static cofre_router_t router;
static int r_list, r_create, r_get, r_transfers, r_batch, r_transfer;

static int setup(void **state)
{
    (void)state;
    cofre_router_init(&router);
    cofre_router_add(&router, "GET", "/v1/accounts", &r_list);
    cofre_router_add(&router, "POST", "/v1/accounts", &r_create);
    cofre_router_add(&router, "GET", "/v1/accounts/{id}", &r_get);
    cofre_router_add(&router, "GET", "/v1/accounts/{id}/transfers", &r_transfers);
    cofre_router_add(&router, "GET", "/v1/transfers/{id}", &r_transfer);
    cofre_router_add(&router, "POST", "/v1/transfers/batch", &r_batch);
    return 0;
}

static cofre_route_result_t match(const char *method, const char *path, const cofre_route_t **route,
                                  cofre_route_params_t *params, char *allow)
{
    return cofre_router_match(&router, method, path, strlen(path), route, params, allow, 64);
}

static void matches_literals_and_parameters(void **state)
{
    (void)state;
    const cofre_route_t *route;
    cofre_route_params_t params;
    char allow[64];
    assert_int_equal(match("GET", "/v1/accounts", &route, &params, allow), COFRE_ROUTE_FOUND);
    assert_ptr_equal(route->data, &r_list);
    assert_int_equal(match("GET", "/v1/accounts/abc", &route, &params, allow), COFRE_ROUTE_FOUND);
    assert_ptr_equal(route->data, &r_get);
    assert_string_equal(cofre_route_param(&params, "id"), "abc");
    assert_null(cofre_route_param(&params, "other"));
    assert_int_equal(match("GET", "/v1/accounts/a%20b/transfers", &route, &params, allow),
                     COFRE_ROUTE_FOUND);
    assert_ptr_equal(route->data, &r_transfers);
    assert_string_equal(cofre_route_param(&params, "id"), "a b");
}

static void wrong_method_lists_allowed_ones(void **state)
{
    (void)state;
    const cofre_route_t *route;
    cofre_route_params_t params;
    char allow[64];
    assert_int_equal(match("DELETE", "/v1/accounts", &route, &params, allow),
                     COFRE_ROUTE_METHOD_NOT_ALLOWED);
    assert_string_equal(allow, "GET, POST");
    assert_int_equal(match("POST", "/v1/accounts/x", &route, &params, allow),
                     COFRE_ROUTE_METHOD_NOT_ALLOWED);
    assert_string_equal(allow, "GET");
}

static void literal_segments_beat_parameters(void **state)
{
    (void)state;
    const cofre_route_t *route;
    cofre_route_params_t params;
    char allow[64];
    assert_int_equal(match("POST", "/v1/transfers/batch", &route, &params, allow),
                     COFRE_ROUTE_FOUND);
    assert_ptr_equal(route->data, &r_batch);
    /* The literal route decides, so GET on it is 405, not a read of transfer "batch". */
    assert_int_equal(match("GET", "/v1/transfers/batch", &route, &params, allow),
                     COFRE_ROUTE_METHOD_NOT_ALLOWED);
    assert_string_equal(allow, "POST");
    assert_int_equal(match("GET", "/v1/transfers/abc", &route, &params, allow), COFRE_ROUTE_FOUND);
    assert_ptr_equal(route->data, &r_transfer);
}

static void unknown_and_hostile_paths_do_not_match(void **state)
{
    (void)state;
    static const char *const paths[] = {
        "",
        "v1/accounts",
        "/v1/accounts/",
        "/v1//accounts",
        "/v1/accounts/x/y",
        "/v2/accounts",
        "/v1/accounts/%zz",
        "/v1/accounts/%2F",
        "/v1/accounts/%00",
        "/",
        "/v1/accounts/x/transfers/",
    };
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        const cofre_route_t *route;
        cofre_route_params_t params;
        char allow[64];
        assert_int_equal(match("GET", paths[i], &route, &params, allow), COFRE_ROUTE_NOT_FOUND);
    }
}

static void long_parameter_is_refused(void **state)
{
    (void)state;
    char path[600] = "/v1/accounts/";
    memset(path + strlen(path), 'a', COFRE_ROUTE_PARAM_MAX + 1);
    const cofre_route_t *route;
    cofre_route_params_t params;
    char allow[64];
    assert_int_equal(match("GET", path, &route, &params, allow), COFRE_ROUTE_NOT_FOUND);
    path[strlen("/v1/accounts/") + COFRE_ROUTE_PARAM_MAX] = '\0';
    assert_int_equal(match("GET", path, &route, &params, allow), COFRE_ROUTE_FOUND);
}

static void deep_paths_are_refused(void **state)
{
    (void)state;
    const char *path = "/a/b/c/d/e/f/g/h/i/j/k";
    const cofre_route_t *route;
    cofre_route_params_t params;
    char allow[64];
    assert_int_equal(match("GET", path, &route, &params, allow), COFRE_ROUTE_NOT_FOUND);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(matches_literals_and_parameters),
        cmocka_unit_test(wrong_method_lists_allowed_ones),
        cmocka_unit_test(literal_segments_beat_parameters),
        cmocka_unit_test(unknown_and_hostile_paths_do_not_match),
        cmocka_unit_test(long_parameter_is_refused),
        cmocka_unit_test(deep_paths_are_refused),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
