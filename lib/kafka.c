/*
 * kafka.c: librdkafka configuration shared by cofre's producers and consumers (see kafka.h).
 */
#include "cofre/kafka.h"

#include "cofre/common.h"
#include "cofre/log.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ERROR_LOG_INTERVAL_NS (10ull * 1000000000ull)
#define ERROR_KINDS_MAX       16
#define BROKERS_LEN_MAX       4096

static const char *const protocols[] = {"plaintext", "ssl", "sasl_plaintext", "sasl_ssl", NULL};
static const char *const mechanisms[] = {"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", NULL};

static bool valid_broker(const char *s, size_t len)
{
    const char *colon = memrchr(s, ':', len);
    if (colon == NULL || colon == s)
        return false;
    size_t digits = len - (size_t)(colon - s) - 1;
    if (digits < 1 || digits > 5)
        return false;
    unsigned port = 0;
    for (size_t i = 0; i < digits; i++) {
        char ch = colon[1 + i];
        if (ch < '0' || ch > '9')
            return false;
        port = port * 10 + (unsigned)(ch - '0');
    }
    for (const char *p = s; p < colon; p++) {
        if (*p == ' ' || *p == '\t' || *p == '/')
            return false;
    }
    return port >= 1 && port <= 65535;
}

bool cofre_kafka_brokers_valid(const char *brokers)
{
    size_t len = strlen(brokers);
    if (len == 0 || len > BROKERS_LEN_MAX)
        return false;
    const char *p = brokers;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t item = comma != NULL ? (size_t)(comma - p) : strlen(p);
        if (!valid_broker(p, item))
            return false;
        if (comma == NULL)
            return true;
        p = comma + 1;
    }
}

void cofre_kafka_config_read(cofre_config_t *c, const char *brokers, cofre_kafka_config_t *out)
{
    memset(out, 0, sizeof(*out));
    out->brokers = brokers;
    if (brokers[0] != '\0' && !cofre_kafka_brokers_valid(brokers))
        cofre_config_reject(c, "COFRE_KAFKA_BROKERS", brokers, "a comma list of host:port");
    int proto = cofre_config_enum(c, "COFRE_KAFKA_SECURITY_PROTOCOL", 0, protocols);
    out->security_protocol = protocols[proto < 0 ? 0 : proto];
    if (strncmp(out->security_protocol, "sasl_", 5) == 0) {
        int mech = cofre_config_enum(c, "COFRE_KAFKA_SASL_MECHANISM", 2, mechanisms);
        out->sasl_mechanism = mechanisms[mech < 0 ? 2 : mech];
        out->sasl_username = cofre_config_required(c, "COFRE_KAFKA_SASL_USERNAME");
        out->sasl_password = cofre_config_required(c, "COFRE_KAFKA_SASL_PASSWORD");
    }
    const char *ca = cofre_config_str(c, "COFRE_KAFKA_SSL_CA_FILE", "");
    out->ssl_ca_file = ca[0] != '\0' ? ca : NULL;
}

void cofre_kafka_conf_set(rd_kafka_conf_t *conf, const char *name, const char *value)
{
    char err[256];
    if (rd_kafka_conf_set(conf, name, value, err, sizeof(err)) != RD_KAFKA_CONF_OK) {
        fprintf(stderr, "librdkafka refused %s: %s\n", name, err);
        COFRE_PANIC("librdkafka refused a property this program sets");
    }
}

/* librdkafka's syslog levels (0 emergency .. 7 debug) to ours. Its level 3 is mostly a broker
 * connection failing, which the client rides out: a warning. */
static cofre_log_level_t map_level(int level)
{
    if (level <= 2)
        return COFRE_LOG_ERROR;
    if (level <= 4)
        return COFRE_LOG_WARN;
    if (level <= 6)
        return COFRE_LOG_INFO;
    return COFRE_LOG_DEBUG;
}

static void log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    cofre_log_level_t l = map_level(level);
    COFRE_LOG(l, NULL, "kafka client", COFRE_LF_STR("client", rd_kafka_name(rk)),
              COFRE_LF_STR("facility", fac), COFRE_LF_STR("detail", buf));
}

static struct {
    pthread_mutex_t lock;
    int errs[ERROR_KINDS_MAX];
    uint64_t last_ns[ERROR_KINDS_MAX];
    size_t n;
} error_log = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* True when err was not logged in the last ERROR_LOG_INTERVAL_NS (and records it now). */
static bool error_log_due(int err)
{
    uint64_t now = cofre_now_mono_ns();
    bool due = true;
    pthread_mutex_lock(&error_log.lock);
    size_t i = 0;
    while (i < error_log.n && error_log.errs[i] != err)
        i++;
    if (i == error_log.n && error_log.n < ERROR_KINDS_MAX)
        error_log.errs[error_log.n++] = err;
    if (i < error_log.n) {
        due = error_log.last_ns[i] == 0 || now - error_log.last_ns[i] >= ERROR_LOG_INTERVAL_NS;
        if (due)
            error_log.last_ns[i] = now;
    }
    pthread_mutex_unlock(&error_log.lock);
    return due;
}

static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    (void)opaque;
    bool fatal = err == RD_KAFKA_RESP_ERR__FATAL;
    if (!fatal && !error_log_due(err))
        return;
    COFRE_LOG(fatal ? COFRE_LOG_ERROR : COFRE_LOG_WARN, NULL, "kafka error",
              COFRE_LF_STR("client", rd_kafka_name(rk)),
              COFRE_LF_STR("error", rd_kafka_err2name((rd_kafka_resp_err_t)err)),
              COFRE_LF_STR("detail", reason));
}

rd_kafka_conf_t *cofre_kafka_conf_new(const cofre_kafka_config_t *kc, const char *client_id)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    cofre_kafka_conf_set(conf, "bootstrap.servers", kc->brokers);
    cofre_kafka_conf_set(conf, "client.id", client_id);
    cofre_kafka_conf_set(conf, "security.protocol",
                         kc->security_protocol != NULL ? kc->security_protocol : "plaintext");
    if (kc->sasl_mechanism != NULL) {
        cofre_kafka_conf_set(conf, "sasl.mechanisms", kc->sasl_mechanism);
        cofre_kafka_conf_set(conf, "sasl.username", kc->sasl_username);
        cofre_kafka_conf_set(conf, "sasl.password", kc->sasl_password);
    }
    if (kc->ssl_ca_file != NULL)
        cofre_kafka_conf_set(conf, "ssl.ca.location", kc->ssl_ca_file);
    /* Reconnect within 2 s of a broker's return rather than librdkafka's default 10 s. */
    cofre_kafka_conf_set(conf, "reconnect.backoff.max.ms", "2000");
    cofre_kafka_conf_set(conf, "socket.keepalive.enable", "true");
    cofre_kafka_conf_set(conf, "log.queue", "true");
    cofre_kafka_conf_set(conf, "log.connection.close", "false");
    rd_kafka_conf_set_log_cb(conf, log_cb);
    rd_kafka_conf_set_error_cb(conf, error_cb);
    return conf;
}

void cofre_kafka_route_logs(rd_kafka_t *rk)
{
    rd_kafka_resp_err_t err = rd_kafka_set_log_queue(rk, NULL);
    COFRE_ASSERT(err == RD_KAFKA_RESP_ERR_NO_ERROR);
}

int cofre_kafka_error(rd_kafka_resp_err_t err)
{
    switch (err) {
    case RD_KAFKA_RESP_ERR_NO_ERROR:
        return 0;
    case RD_KAFKA_RESP_ERR__TRANSPORT:
    case RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN:
    case RD_KAFKA_RESP_ERR__RESOLVE:
    case RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE:
    case RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION:
    case RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS:
    case RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS_AFTER_APPEND:
    case RD_KAFKA_RESP_ERR_BROKER_NOT_AVAILABLE:
    case RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE:
        return COFRE_EUNAVAIL;
    case RD_KAFKA_RESP_ERR__MSG_TIMED_OUT:
    case RD_KAFKA_RESP_ERR__TIMED_OUT:
    case RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT:
        return COFRE_ETIMEDOUT;
    case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE:
        return COFRE_ETOOLARGE;
    case RD_KAFKA_RESP_ERR__QUEUE_FULL:
        return COFRE_EFULL;
    default:
        return COFRE_EIO;
    }
}
