/*
 * test_sim_faults.c: the simulator's control commands and fault decisions: parsing and its
 * refusals, counts that run out, MTI filters, first-match order, probabilities reproducible
 * from a seed, injected declines only for 0200s, and the bounds.
 */
#include "unit.h"

#include "cofre/common.h"
#include "cofre/jbuf.h"
#include "legacy/sim_faults.h"

#include <string.h>

static cofre_sim_command_t cmd(cofre_sim_faults_t *f, const char *line, char *reply)
{
    uint64_t arg = 0;
    reply[0] = '\0';
    return cofre_sim_faults_command(f, line, reply, 256, &arg);
}

static void expect_ok(cofre_sim_faults_t *f, const char *line)
{
    char reply[256];
    assert_int_equal(cmd(f, line, reply), COFRE_SIM_CMD_DONE);
    if (strcmp(reply, "ok") != 0)
        fail_msg("%s -> %s", line, reply);
}

static void commands_parse_and_refuse(void **state)
{
    (void)state;
    cofre_sim_faults_t f;
    cofre_sim_faults_init(&f, 1);
    char reply[256];
    static const char *const bad[] = {
        "",
        "   ",
        "nope",
        "drop",
        "drop 0",
        "drop 1000001",
        "drop p=0",
        "drop p=1.01",
        "drop p=",
        "drop p=x",
        "drop 1x",
        "drop -3",
        "drop 1 on=0210",
        "drop 1 to=0200",
        "drop 1 on=0200 x",
        "latency",
        "latency 600001",
        "latency -1",
        "decline 00 1",
        "decline 5 1",
        "decline 051 1",
        "decline 05",
        "down",
        "down 0",
        "down 3601",
        "up now",
        "status x",
        "seed",
        "a b c d e",
    };
    for (size_t i = 0; i < COFRE_ARRAY_SIZE(bad); i++) {
        assert_int_equal(cmd(&f, bad[i], reply), COFRE_SIM_CMD_DONE);
        if (strncmp(reply, "error ", 6) != 0)
            fail_msg("\"%s\" was accepted: %s", bad[i], reply);
    }
    assert_int_equal(f.n, 0);
    assert_int_equal(f.latency_ms, 0);
    char longline[COFRE_SIM_LINE_MAX + 2];
    memset(longline, 'a', sizeof(longline) - 1);
    longline[sizeof(longline) - 1] = '\0';
    assert_int_equal(cmd(&f, longline, reply), COFRE_SIM_CMD_DONE);
    assert_string_equal(reply, "error line too long");
    uint64_t arg = 0;
    assert_int_equal(cofre_sim_faults_command(&f, "down 7", reply, 256, &arg), COFRE_SIM_CMD_DOWN);
    assert_int_equal(arg, 7);
    assert_int_equal(cmd(&f, "up", reply), COFRE_SIM_CMD_UP);
    assert_int_equal(cmd(&f, "disconnect", reply), COFRE_SIM_CMD_DISCONNECT);
    assert_int_equal(cmd(&f, "status", reply), COFRE_SIM_CMD_STATUS);
    assert_int_equal(cmd(&f, "quit", reply), COFRE_SIM_CMD_QUIT);
    assert_int_equal(cmd(&f, "ping", reply), COFRE_SIM_CMD_DONE);
    assert_string_equal(reply, "pong");
    expect_ok(&f, "latency 250");
    assert_int_equal(f.latency_ms, 250);
    expect_ok(&f, " drop\t2  on=0400 ");
    assert_int_equal(f.n, 1);
}

static void counts_run_out_in_order(void **state)
{
    (void)state;
    cofre_sim_faults_t f;
    cofre_sim_faults_init(&f, 1);
    expect_ok(&f, "drop 2 on=0200");
    expect_ok(&f, "cut 1");
    assert_int_equal(cofre_sim_faults_answer(&f, "0800"), COFRE_SIM_CUT); /* filter skips drop */
    assert_int_equal(cofre_sim_faults_answer(&f, "0800"), COFRE_SIM_RESPOND);
    assert_int_equal(cofre_sim_faults_answer(&f, "0200"), COFRE_SIM_DROP);
    assert_int_equal(cofre_sim_faults_answer(&f, "0200"), COFRE_SIM_DROP);
    assert_int_equal(cofre_sim_faults_answer(&f, "0200"), COFRE_SIM_RESPOND);
    assert_int_equal(f.n, 0); /* used-up faults are removed */
    assert_int_equal(f.applied[COFRE_SIM_DROP], 2);
    assert_int_equal(f.applied[COFRE_SIM_CUT], 1);
    expect_ok(&f, "garbage all");
    for (int i = 0; i < 100; i++)
        assert_int_equal(cofre_sim_faults_answer(&f, "0400"), COFRE_SIM_GARBAGE);
    expect_ok(&f, "clear");
    assert_int_equal(cofre_sim_faults_answer(&f, "0400"), COFRE_SIM_RESPOND);
}

static unsigned count_drops(uint64_t seed, unsigned n)
{
    cofre_sim_faults_t f;
    cofre_sim_faults_init(&f, seed);
    expect_ok(&f, "drop p=0.25");
    unsigned drops = 0;
    for (unsigned i = 0; i < n; i++)
        drops += cofre_sim_faults_answer(&f, "0200") == COFRE_SIM_DROP;
    return drops;
}

static void probabilities_are_seeded(void **state)
{
    (void)state;
    unsigned a = count_drops(42, 10000), b = count_drops(42, 10000), c = count_drops(43, 10000);
    assert_int_equal(a, b);
    assert_true(a > 2200 && a < 2800); /* 25% of 10000, loosely */
    assert_true(c > 2200 && c < 2800);
    cofre_sim_faults_t f;
    cofre_sim_faults_init(&f, 9);
    uint8_t x[32], y[32];
    cofre_sim_faults_random(&f, x, sizeof(x));
    cofre_sim_faults_init(&f, 9);
    cofre_sim_faults_random(&f, y, sizeof(y));
    assert_memory_equal(x, y, sizeof(x));
    expect_ok(&f, "seed 9");
    cofre_sim_faults_random(&f, y, sizeof(y));
    assert_memory_equal(x, y, sizeof(x));
}

static void declines_are_separate_from_answer_faults(void **state)
{
    (void)state;
    cofre_sim_faults_t f;
    cofre_sim_faults_init(&f, 1);
    expect_ok(&f, "decline 51 1");
    expect_ok(&f, "drop 1");
    assert_int_equal(cofre_sim_faults_answer(&f, "0200"), COFRE_SIM_DROP); /* not the decline */
    const char *code = cofre_sim_faults_decline(&f);
    assert_non_null(code);
    assert_string_equal(code, "51");
    assert_null(cofre_sim_faults_decline(&f));
    assert_int_equal(f.n, 0);
}

static void bounds_and_status(void **state)
{
    (void)state;
    cofre_sim_faults_t f;
    cofre_sim_faults_init(&f, 1);
    char reply[256];
    for (int i = 0; i < COFRE_SIM_FAULTS_MAX; i++)
        expect_ok(&f, "close 5");
    assert_int_equal(cmd(&f, "close 5", reply), COFRE_SIM_CMD_DONE);
    assert_string_equal(reply, "error too many faults (clear first)");
    cofre_jbuf_t b;
    cofre_jbuf_init(&b);
    cofre_jbuf_obj_begin(&b);
    cofre_sim_faults_json(&f, &b);
    cofre_jbuf_obj_end(&b);
    assert_non_null(strstr(b.data, "\"latency_ms\":0"));
    assert_non_null(strstr(b.data, "{\"fault\":\"close\",\"remaining\":5,\"on\":null}"));
    assert_non_null(strstr(b.data, "\"injected\":{\"drop\":0"));
    cofre_jbuf_release(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(commands_parse_and_refuse),
        cmocka_unit_test(counts_run_out_in_order),
        cmocka_unit_test(probabilities_are_seeded),
        cmocka_unit_test(declines_are_separate_from_answer_faults),
        cmocka_unit_test(bounds_and_status),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
