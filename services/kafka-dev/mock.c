/*
 * mock.c: the development cluster on librdkafka's mock brokers (see mock.h).
 */
#include "kafka-dev/mock.h"

#include "cofre/common.h"
#include "cofre/log.h"

#include <librdkafka/rdkafka_mock.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct mock_broker {
    bool up;
    int rtt_ms;
} mock_broker_t;

struct cofre_mock {
    rd_kafka_t *rk; /* the handle the mock cluster lives in */
    rd_kafka_mock_cluster_t *mc;
    char *bootstrap;
    pthread_mutex_t lock;
    unsigned nbrokers;
    mock_broker_t brokers[COFRE_MOCK_BROKERS_MAX];
    unsigned ntopics;
    unsigned partitions;
    char topics[COFRE_MOCK_TOPICS_MAX][COFRE_MOCK_TOPIC_MAX + 1];
};

static const struct {
    const char *name;
    int16_t key;
} apis[] = {
    {"Produce", 0},         {"Fetch", 1},       {"ListOffsets", 2},      {"Metadata", 3},
    {"OffsetCommit", 8},    {"OffsetFetch", 9}, {"FindCoordinator", 10}, {"JoinGroup", 11},
    {"Heartbeat", 12},      {"LeaveGroup", 13}, {"SyncGroup", 14},       {"ApiVersions", 18},
    {"InitProducerId", 22},
};

static bool topic_char(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '.' || ch == '_' || ch == '-';
}

static bool valid_topic(const char *s, size_t len)
{
    if (len < 1 || len > COFRE_MOCK_TOPIC_MAX)
        return false;
    if ((len == 1 && s[0] == '.') || (len == 2 && s[0] == '.' && s[1] == '.'))
        return false;
    for (size_t i = 0; i < len; i++) {
        if (!topic_char(s[i]))
            return false;
    }
    return true;
}

int cofre_mock_parse_topics(const char *list, char names[][COFRE_MOCK_TOPIC_MAX + 1])
{
    int count = 0;
    const char *p = list;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma != NULL ? (size_t)(comma - p) : strlen(p);
        if (!valid_topic(p, len) || count >= COFRE_MOCK_TOPICS_MAX)
            return -1;
        if (names != NULL) {
            memcpy(names[count], p, len);
            names[count][len] = '\0';
        }
        count++;
        if (comma == NULL)
            return count;
        p = comma + 1;
    }
}

static bool parse_decimal(const char *s, long min, long max, long *out)
{
    char *end;
    if (s[0] == '\0' || strlen(s) > 6)
        return false;
    long v = strtol(s, &end, 10);
    if (*end != '\0' || v < min || v > max)
        return false;
    *out = v;
    return true;
}

int cofre_mock_api_parse(const char *name, int16_t *api)
{
    for (size_t i = 0; i < COFRE_ARRAY_SIZE(apis); i++) {
        if (strcmp(apis[i].name, name) == 0) {
            *api = apis[i].key;
            return 0;
        }
    }
    long v;
    if (!parse_decimal(name, 0, 100, &v))
        return COFRE_EINVAL;
    *api = (int16_t)v;
    return 0;
}

int cofre_mock_error_parse(const char *name, rd_kafka_resp_err_t *err)
{
    const struct rd_kafka_err_desc *descs;
    size_t n;
    rd_kafka_get_err_descs(&descs, &n);
    for (size_t i = 0; i < n; i++) {
        if (descs[i].name != NULL && strcmp(descs[i].name, name) == 0) {
            *err = descs[i].code;
            return 0;
        }
    }
    long v;
    if (!parse_decimal(name, -199, 200, &v) || v == 0)
        return COFRE_EINVAL;
    *err = (rd_kafka_resp_err_t)v;
    return 0;
}

static bool create_topics(cofre_mock_t *m)
{
    int replicas = (int)COFRE_MIN(3u, m->nbrokers);
    for (unsigned i = 0; i < m->ntopics; i++) {
        rd_kafka_resp_err_t err =
            rd_kafka_mock_topic_create(m->mc, m->topics[i], (int)m->partitions, replicas);
        if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
            COFRE_LOG(COFRE_LOG_ERROR, NULL, "topic not created",
                      COFRE_LF_STR("topic", m->topics[i]),
                      COFRE_LF_STR("error", rd_kafka_err2str(err)));
            return false;
        }
    }
    return true;
}

cofre_mock_t *cofre_mock_new(const cofre_mock_config_t *cfg)
{
    COFRE_ASSERT(cfg->brokers >= 1 && cfg->brokers <= COFRE_MOCK_BROKERS_MAX);
    COFRE_ASSERT(cfg->partitions >= 1 && cfg->partitions <= COFRE_MOCK_PARTITIONS_MAX);
    cofre_mock_t *m = cofre_calloc(1, sizeof(*m));
    int ntopics = cofre_mock_parse_topics(cfg->topics, m->topics);
    COFRE_ASSERT(ntopics > 0);
    m->ntopics = (unsigned)ntopics;
    m->nbrokers = cfg->brokers;
    m->partitions = cfg->partitions;
    pthread_mutex_init(&m->lock, NULL);
    char err[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "client.id", "cofre-kafka-dev", err, sizeof(err));
    rd_kafka_conf_set(conf, "log_level", "3", err, sizeof(err));
    m->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    if (m->rk == NULL) {
        COFRE_LOG(COFRE_LOG_ERROR, NULL, "librdkafka handle not created",
                  COFRE_LF_STR("error", err));
        free(m);
        return NULL;
    }
    m->mc = rd_kafka_mock_cluster_new(m->rk, (int)cfg->brokers);
    if (m->mc == NULL || !create_topics(m)) {
        cofre_log_msg(COFRE_LOG_ERROR, NULL, "mock cluster not started");
        cofre_mock_free(m);
        return NULL;
    }
    m->bootstrap = cofre_strdup(rd_kafka_mock_cluster_bootstraps(m->mc));
    for (unsigned i = 0; i < m->nbrokers; i++)
        m->brokers[i].up = true;
    return m;
}

const char *cofre_mock_bootstrap(const cofre_mock_t *m)
{
    return m->bootstrap;
}

static bool known_broker(const cofre_mock_t *m, int32_t id)
{
    return id >= 1 && (unsigned)id <= m->nbrokers;
}

int cofre_mock_broker_set_up(cofre_mock_t *m, int32_t id, bool up)
{
    if (!known_broker(m, id))
        return COFRE_ENOENT;
    pthread_mutex_lock(&m->lock);
    rd_kafka_resp_err_t err =
        up ? rd_kafka_mock_broker_set_up(m->mc, id) : rd_kafka_mock_broker_set_down(m->mc, id);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR)
        m->brokers[id - 1].up = up;
    pthread_mutex_unlock(&m->lock);
    return err == RD_KAFKA_RESP_ERR_NO_ERROR ? 0 : COFRE_EIO;
}

int cofre_mock_broker_set_rtt(cofre_mock_t *m, int32_t id, int rtt_ms)
{
    if (!known_broker(m, id))
        return COFRE_ENOENT;
    if (rtt_ms < 0 || rtt_ms > COFRE_MOCK_RTT_MAX_MS)
        return COFRE_ERANGE;
    pthread_mutex_lock(&m->lock);
    rd_kafka_resp_err_t err = rd_kafka_mock_broker_set_rtt(m->mc, id, rtt_ms);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR)
        m->brokers[id - 1].rtt_ms = rtt_ms;
    pthread_mutex_unlock(&m->lock);
    return err == RD_KAFKA_RESP_ERR_NO_ERROR ? 0 : COFRE_EIO;
}

static bool known_topic(const cofre_mock_t *m, const char *topic)
{
    for (unsigned i = 0; i < m->ntopics; i++) {
        if (strcmp(m->topics[i], topic) == 0)
            return true;
    }
    return false;
}

int cofre_mock_set_leader(cofre_mock_t *m, const char *topic, int32_t partition, int32_t id)
{
    if (!known_broker(m, id) || !known_topic(m, topic) || partition < 0 ||
        (unsigned)partition >= m->partitions)
        return COFRE_ENOENT;
    pthread_mutex_lock(&m->lock);
    rd_kafka_resp_err_t err = rd_kafka_mock_partition_set_leader(m->mc, topic, partition, id);
    pthread_mutex_unlock(&m->lock);
    return err == RD_KAFKA_RESP_ERR_NO_ERROR ? 0 : COFRE_EIO;
}

int cofre_mock_push_errors(cofre_mock_t *m, int16_t api, size_t n, const rd_kafka_resp_err_t *errs)
{
    if (n < 1 || n > COFRE_MOCK_ERRORS_MAX)
        return COFRE_ERANGE;
    pthread_mutex_lock(&m->lock);
    rd_kafka_mock_push_request_errors_array(m->mc, api, n, errs);
    pthread_mutex_unlock(&m->lock);
    return 0;
}

int cofre_mock_clear_errors(cofre_mock_t *m, int16_t api)
{
    pthread_mutex_lock(&m->lock);
    rd_kafka_mock_clear_request_errors(m->mc, api);
    pthread_mutex_unlock(&m->lock);
    return 0;
}

void cofre_mock_describe(cofre_mock_t *m, cofre_jbuf_t *out)
{
    pthread_mutex_lock(&m->lock);
    cofre_jbuf_obj_begin(out);
    cofre_jbuf_kstr(out, "bootstrap", m->bootstrap);
    cofre_jbuf_key(out, "brokers");
    cofre_jbuf_arr_begin(out);
    for (unsigned i = 0; i < m->nbrokers; i++) {
        cofre_jbuf_obj_begin(out);
        cofre_jbuf_kint(out, "id", i + 1);
        cofre_jbuf_kbool(out, "up", m->brokers[i].up);
        cofre_jbuf_kint(out, "rtt_ms", m->brokers[i].rtt_ms);
        cofre_jbuf_obj_end(out);
    }
    cofre_jbuf_arr_end(out);
    cofre_jbuf_key(out, "topics");
    cofre_jbuf_arr_begin(out);
    for (unsigned i = 0; i < m->ntopics; i++) {
        cofre_jbuf_obj_begin(out);
        cofre_jbuf_kstr(out, "name", m->topics[i]);
        cofre_jbuf_kint(out, "partitions", m->partitions);
        cofre_jbuf_obj_end(out);
    }
    cofre_jbuf_arr_end(out);
    cofre_jbuf_obj_end(out);
    pthread_mutex_unlock(&m->lock);
}

void cofre_mock_free(cofre_mock_t *m)
{
    if (m == NULL)
        return;
    if (m->mc != NULL)
        rd_kafka_mock_cluster_destroy(m->mc);
    if (m->rk != NULL)
        rd_kafka_destroy(m->rk);
    pthread_mutex_destroy(&m->lock);
    free(m->bootstrap);
    free(m);
}
