/* test_log.c: log lines are JSON with the contract's fields, buffered per thread. */
#include "unit.h"

#include "cofre/log.h"

#include <jansson.h>
#include <string.h>
#include <unistd.h>

static char out[65536];

/* Captures what the logger writes while fn runs. */
static size_t capture(void (*fn)(void))
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    cofre_log_set_fd(fds[1]);
    fn();
    cofre_log_set_fd(1);
    close(fds[1]);
    size_t n = 0;
    ssize_t r;
    while ((r = read(fds[0], out + n, sizeof(out) - 1 - n)) > 0)
        n += (size_t)r;
    close(fds[0]);
    out[n] = '\0';
    return n;
}

static void write_one(void)
{
    cofre_trace_t t;
    cofre_trace_start(&t, NULL, 0);
    cofre_trace_set_request_id(&t, "req-1", 5);
    COFRE_LOG(COFRE_LOG_WARN, &t, "hello \"world\"", COFRE_LF_STR("k", "v\n"),
              COFRE_LF_INT("n", -3), COFRE_LF_BOOL("b", true), COFRE_LF_STR("null", NULL));
}

static void line_has_contract_fields(void **state)
{
    (void)state;
    cofre_log_init("svc", COFRE_LOG_INFO);
    capture(write_one);
    assert_int_equal(out[strlen(out) - 1], '\n');
    json_error_t err;
    json_t *line = json_loads(out, 0, &err);
    assert_non_null(line);
    assert_string_equal(json_string_value(json_object_get(line, "level")), "warn");
    assert_string_equal(json_string_value(json_object_get(line, "service")), "svc");
    assert_string_equal(json_string_value(json_object_get(line, "msg")), "hello \"world\"");
    assert_string_equal(json_string_value(json_object_get(line, "request_id")), "req-1");
    assert_int_equal(strlen(json_string_value(json_object_get(line, "trace_id"))), 32);
    assert_int_equal(strlen(json_string_value(json_object_get(line, "ts"))), 27);
    assert_string_equal(json_string_value(json_object_get(line, "k")), "v\n");
    assert_int_equal(json_integer_value(json_object_get(line, "n")), -3);
    assert_true(json_is_null(json_object_get(line, "null")));
    json_decref(line);
}

static void write_filtered(void)
{
    cofre_log_msg(COFRE_LOG_DEBUG, NULL, "hidden");
    cofre_log_msg(COFRE_LOG_ERROR, NULL, "shown");
}

static void level_filters(void **state)
{
    (void)state;
    cofre_log_init("svc", COFRE_LOG_WARN);
    capture(write_filtered);
    assert_null(strstr(out, "hidden"));
    assert_non_null(strstr(out, "shown"));
    cofre_log_level_t l;
    assert_int_equal(cofre_log_level_parse("error", &l), 0);
    assert_int_equal(l, COFRE_LOG_ERROR);
    assert_int_not_equal(cofre_log_level_parse("loud", &l), 0);
}

static void write_buffered(void)
{
    cofre_log_buffer_start();
    cofre_log_msg(COFRE_LOG_INFO, NULL, "one");
    cofre_log_msg(COFRE_LOG_INFO, NULL, "two");
    cofre_log_flush();
}

static void buffered_lines_arrive_whole(void **state)
{
    (void)state;
    cofre_log_init("svc", COFRE_LOG_INFO);
    capture(write_buffered);
    char *second = strchr(out, '\n');
    assert_non_null(second);
    assert_non_null(strstr(out, "\"msg\":\"one\""));
    assert_non_null(strstr(second, "\"msg\":\"two\""));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(line_has_contract_fields),
        cmocka_unit_test(level_filters),
        cmocka_unit_test(buffered_lines_arrive_whole),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
