/*
 * test_kafka.c: the Kafka client settings every producer and consumer shares: the broker list,
 * the security protocol and SASL settings (required together, rejected when malformed), and the
 * error translation.
 */
#include "unit.h"

#include "cofre/common.h"
#include "cofre/kafka.h"

#include <stdlib.h>
#include <string.h>

static void broker_lists(void **state)
{
    (void)state;
    static const char *const good[] = {"127.0.0.1:9092", "a:1,b:65535", "kafka.svc:9092,[::1]:9093",
                                       "b-1.cofre.kafka.eu-west-1.amazonaws.com:9096"};
    static const char *const bad[] = {"",        "host",        ":9092",        "host:0",
                                      "h:65536", "h:9092,",     ",h:9092",      "h:90x2",
                                      "h :9092", "h:9092 ,x:1", "http://h:9092"};
    for (size_t i = 0; i < COFRE_ARRAY_SIZE(good); i++) {
        if (!cofre_kafka_brokers_valid(good[i]))
            fail_msg("rejected \"%s\"", good[i]);
    }
    for (size_t i = 0; i < COFRE_ARRAY_SIZE(bad); i++) {
        if (cofre_kafka_brokers_valid(bad[i]))
            fail_msg("accepted \"%s\"", bad[i]);
    }
}

static void clear_env(void)
{
    unsetenv("COFRE_KAFKA_SECURITY_PROTOCOL");
    unsetenv("COFRE_KAFKA_SASL_MECHANISM");
    unsetenv("COFRE_KAFKA_SASL_USERNAME");
    unsetenv("COFRE_KAFKA_SASL_PASSWORD");
    unsetenv("COFRE_KAFKA_SSL_CA_FILE");
}

static void read_config(cofre_config_t *c, const char *brokers, cofre_kafka_config_t *kc)
{
    cofre_config_init(c, "test");
    cofre_kafka_config_read(c, brokers, kc);
}

static void security_settings(void **state)
{
    (void)state;
    cofre_config_t c;
    cofre_kafka_config_t kc;
    clear_env();
    read_config(&c, "", &kc); /* no bus: fine */
    assert_true(cofre_config_ok(&c));
    assert_string_equal(kc.security_protocol, "plaintext");
    assert_null(kc.sasl_mechanism);

    read_config(&c, "not a broker", &kc);
    assert_false(cofre_config_ok(&c));
    assert_non_null(strstr(c.error, "COFRE_KAFKA_BROKERS"));

    setenv("COFRE_KAFKA_SECURITY_PROTOCOL", "sasl_ssl", 1);
    read_config(&c, "h:9096", &kc);
    assert_false(cofre_config_ok(&c)); /* username and password required */
    assert_non_null(strstr(c.error, "COFRE_KAFKA_SASL_USERNAME"));

    setenv("COFRE_KAFKA_SASL_USERNAME", "u", 1);
    setenv("COFRE_KAFKA_SASL_PASSWORD", "p", 1);
    read_config(&c, "h:9096", &kc);
    assert_true(cofre_config_ok(&c));
    assert_string_equal(kc.sasl_mechanism, "SCRAM-SHA-512");
    rd_kafka_conf_t *conf = cofre_kafka_conf_new(&kc, "test");
    char v[64];
    size_t len = sizeof(v);
    assert_int_equal(rd_kafka_conf_get(conf, "security.protocol", v, &len), RD_KAFKA_CONF_OK);
    assert_string_equal(v, "sasl_ssl");
    rd_kafka_conf_destroy(conf);

    setenv("COFRE_KAFKA_SASL_MECHANISM", "GSSAPI", 1);
    read_config(&c, "h:9096", &kc);
    assert_false(cofre_config_ok(&c));
    assert_non_null(strstr(c.error, "COFRE_KAFKA_SASL_MECHANISM"));

    setenv("COFRE_KAFKA_SECURITY_PROTOCOL", "tls", 1);
    read_config(&c, "h:9096", &kc);
    assert_false(cofre_config_ok(&c));
    assert_non_null(strstr(c.error, "COFRE_KAFKA_SECURITY_PROTOCOL"));
    clear_env();
}

static void errors_translate(void **state)
{
    (void)state;
    assert_int_equal(cofre_kafka_error(RD_KAFKA_RESP_ERR_NO_ERROR), 0);
    assert_int_equal(cofre_kafka_error(RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN), COFRE_EUNAVAIL);
    assert_int_equal(cofre_kafka_error(RD_KAFKA_RESP_ERR__MSG_TIMED_OUT), COFRE_ETIMEDOUT);
    assert_int_equal(cofre_kafka_error(RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE), COFRE_ETOOLARGE);
    assert_int_equal(cofre_kafka_error(RD_KAFKA_RESP_ERR__QUEUE_FULL), COFRE_EFULL);
    assert_int_equal(cofre_kafka_error(RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED), COFRE_EIO);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(broker_lists),
        cmocka_unit_test(security_settings),
        cmocka_unit_test(errors_translate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
