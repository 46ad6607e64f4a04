/*
 * test_mock.c: cofre-kafka-dev's cluster module: topic lists, Kafka API and error names, and a
 * real mock cluster whose brokers go down and up (a client sees it) and whose state is
 * described.
 */
#include "unit.h"

#include "cofre/common.h"
#include "cofre/log.h"
#include "kafka-dev/mock.h"

#include <stdlib.h>
#include <string.h>

static void topic_lists(void **state)
{
    (void)state;
    char names[COFRE_MOCK_TOPICS_MAX][COFRE_MOCK_TOPIC_MAX + 1];
    assert_int_equal(cofre_mock_parse_topics("a.b,c_d-e", names), 2);
    assert_string_equal(names[1], "c_d-e");
    static const char *const bad[] = {
        "", ",", "a,", "a,,b", ".", "..", "a b", "a/b", "a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p,q"};
    for (size_t i = 0; i < COFRE_ARRAY_SIZE(bad); i++) {
        if (cofre_mock_parse_topics(bad[i], NULL) >= 0)
            fail_msg("accepted \"%s\"", bad[i]);
    }
}

static void api_and_error_names(void **state)
{
    (void)state;
    int16_t api;
    assert_int_equal(cofre_mock_api_parse("Produce", &api), 0);
    assert_int_equal(api, 0);
    assert_int_equal(cofre_mock_api_parse("FindCoordinator", &api), 0);
    assert_int_equal(api, 10);
    assert_int_equal(cofre_mock_api_parse("22", &api), 0);
    assert_int_equal(api, 22);
    assert_int_equal(cofre_mock_api_parse("produce", &api), COFRE_EINVAL);
    assert_int_equal(cofre_mock_api_parse("1000", &api), COFRE_EINVAL);
    rd_kafka_resp_err_t err;
    assert_int_equal(cofre_mock_error_parse("NOT_LEADER_FOR_PARTITION", &err), 0);
    assert_int_equal(err, RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION);
    assert_int_equal(cofre_mock_error_parse("_TRANSPORT", &err), 0);
    assert_int_equal(err, RD_KAFKA_RESP_ERR__TRANSPORT);
    assert_int_equal(cofre_mock_error_parse("29", &err), 0);
    assert_int_equal(cofre_mock_error_parse("0", &err), COFRE_EINVAL); /* not an error */
    assert_int_equal(cofre_mock_error_parse("NO_SUCH_ERROR", &err), COFRE_EINVAL);
}

/* True when a client reaches the cluster's metadata within timeout_ms. */
static bool reachable(const char *bootstrap, int timeout_ms)
{
    char err[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, err, sizeof(err));
    rd_kafka_conf_set(conf, "log_level", "0", err, sizeof(err));
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    const struct rd_kafka_metadata *md = NULL;
    bool ok = rd_kafka_metadata(rk, 1, NULL, &md, timeout_ms) == RD_KAFKA_RESP_ERR_NO_ERROR;
    if (md != NULL)
        rd_kafka_metadata_destroy(md);
    rd_kafka_destroy(rk);
    return ok;
}

static void brokers_down_and_up(void **state)
{
    (void)state;
    cofre_log_init("test_mock", COFRE_LOG_ERROR);
    cofre_mock_config_t cfg = {.brokers = 3, .partitions = 4, .topics = "x.events,y.events"};
    cofre_mock_t *m = cofre_mock_new(&cfg);
    assert_non_null(m);
    const char *bootstrap = cofre_mock_bootstrap(m);
    assert_int_equal(strchr(bootstrap, ',') != NULL, 1);
    assert_true(reachable(bootstrap, 5000));
    for (int32_t id = 1; id <= 3; id++)
        assert_int_equal(cofre_mock_broker_set_up(m, id, false), 0);
    assert_false(reachable(bootstrap, 1500));
    for (int32_t id = 1; id <= 3; id++)
        assert_int_equal(cofre_mock_broker_set_up(m, id, true), 0);
    assert_true(reachable(bootstrap, 5000));
    assert_int_equal(cofre_mock_broker_set_up(m, 4, false), COFRE_ENOENT);
    assert_int_equal(cofre_mock_broker_set_rtt(m, 2, 250), 0);
    assert_int_equal(cofre_mock_broker_set_rtt(m, 2, -1), COFRE_ERANGE);
    assert_int_equal(cofre_mock_set_leader(m, "x.events", 3, 2), 0);
    assert_int_equal(cofre_mock_set_leader(m, "x.events", 4, 2), COFRE_ENOENT);
    assert_int_equal(cofre_mock_set_leader(m, "nope", 0, 2), COFRE_ENOENT);
    const rd_kafka_resp_err_t errs[] = {RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION};
    assert_int_equal(cofre_mock_push_errors(m, 0, 1, errs), 0);
    assert_int_equal(cofre_mock_push_errors(m, 0, 0, errs), COFRE_ERANGE);
    assert_int_equal(cofre_mock_clear_errors(m, 0), 0);
    cofre_jbuf_t b;
    cofre_jbuf_init(&b);
    cofre_mock_describe(m, &b);
    assert_non_null(strstr(b.data, "{\"id\":2,\"up\":true,\"rtt_ms\":250}"));
    assert_non_null(strstr(b.data, "{\"name\":\"y.events\",\"partitions\":4}"));
    cofre_jbuf_release(&b);
    cofre_mock_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(topic_lists),
        cmocka_unit_test(api_and_error_names),
        cmocka_unit_test(brokers_down_and_up),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
