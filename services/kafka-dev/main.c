/*
 * cofre-kafka-dev: a Kafka cluster for development and tests, on librdkafka's mock brokers.
 * main() reads the configuration, starts the cluster with the contract's topics, writes the
 * bootstrap list to a file (and logs it), serves the control interface on loopback until
 * SIGTERM, then removes the file and stops the cluster. Production runs a real Kafka; the
 * services are configured the same way for both (COFRE_KAFKA_BROKERS).
 */
#include "cofre/common.h"
#include "cofre/log.h"
#include "cofre/service.h"
#include "cofre/workers.h"
#include "kafka-dev/control.h"
#include "kafka-dev/mock.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DEFAULT_TOPICS "cofre.ledger.events,cofre.auth.events,cofre.legacy.dlq"

static const char usage[] =
    "Usage: cofre-kafka-dev [serve]   run the development Kafka cluster (the default)\n"
    "       cofre-kafka-dev --routes  print the control interface's routes\n"
    "\n"
    "A Kafka cluster for development and tests (librdkafka's mock brokers, data in memory).\n"
    "Production uses a real Kafka; services point COFRE_KAFKA_BROKERS at either alike.\n"
    "COFRE_LISTEN is the control interface (loopback only, default 127.0.0.1:8092).\n"
    "\n"
    "cofre-kafka-dev environment variables:\n"
    "  COFRE_KAFKA_DEV_BROKERS         brokers (default 3, at most 9)\n"
    "  COFRE_KAFKA_DEV_PARTITIONS      partitions per topic (default 6, at most 64)\n"
    "  COFRE_KAFKA_DEV_TOPICS          comma list (default " DEFAULT_TOPICS ")\n"
    "  COFRE_KAFKA_DEV_BOOTSTRAP_FILE  where the bootstrap list is written (default\n"
    "                                  var/kafka-dev.bootstrap; removed at exit)\n";

typedef struct kdev_config {
    cofre_mock_config_t mock;
    const char *bootstrap_file;
} kdev_config_t;

static bool loopback(const char *host)
{
    return strncmp(host, "127.", 4) == 0 || strcmp(host, "localhost") == 0 ||
           strcmp(host, "::1") == 0 || strcmp(host, "[::1]") == 0;
}

static void read_config(cofre_service_t *svc, kdev_config_t *cfg)
{
    cofre_config_t *c = &svc->config;
    if (!loopback(svc->http.listen.host))
        cofre_config_reject(c, "COFRE_LISTEN", svc->http.listen.host, "a loopback address");
    cfg->mock.brokers =
        (unsigned)cofre_config_int(c, "COFRE_KAFKA_DEV_BROKERS", 3, 1, COFRE_MOCK_BROKERS_MAX);
    cfg->mock.partitions = (unsigned)cofre_config_int(c, "COFRE_KAFKA_DEV_PARTITIONS", 6, 1,
                                                      COFRE_MOCK_PARTITIONS_MAX);
    cfg->mock.topics = cofre_config_str(c, "COFRE_KAFKA_DEV_TOPICS", DEFAULT_TOPICS);
    if (cofre_mock_parse_topics(cfg->mock.topics, NULL) < 1)
        cofre_config_reject(c, "COFRE_KAFKA_DEV_TOPICS", cfg->mock.topics,
                            "a comma list of Kafka topic names");
    cfg->bootstrap_file =
        cofre_config_str(c, "COFRE_KAFKA_DEV_BOOTSTRAP_FILE", "var/kafka-dev.bootstrap");
    if (cfg->bootstrap_file[0] == '\0')
        cofre_config_reject(c, "COFRE_KAFKA_DEV_BOOTSTRAP_FILE", "", "a file path");
}

/* Writes the bootstrap list and a newline to path, atomically (temp file, then rename). */
static int write_bootstrap(const char *path, const char *bootstrap)
{
    char tmp[4096];
    int n = snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    if (n < 0 || (size_t)n >= sizeof(tmp))
        return COFRE_ETOOLARGE;
    FILE *f = fopen(tmp, "w");
    if (f == NULL)
        goto out_fail;
    bool ok = fprintf(f, "%s\n", bootstrap) > 0;
    ok = fclose(f) == 0 && ok;
    if (ok && rename(tmp, path) == 0)
        return 0;
    unlink(tmp);
out_fail:
    COFRE_LOG(COFRE_LOG_ERROR, NULL, "bootstrap file not written", COFRE_LF_STR("path", path),
              COFRE_LF_STR("error", strerror(errno)));
    return COFRE_EIO;
}

static int serve(cofre_service_t *svc, const kdev_config_t *cfg)
{
    cofre_mock_t *mock = cofre_mock_new(&cfg->mock);
    if (mock == NULL)
        return 1;
    int rc = write_bootstrap(cfg->bootstrap_file, cofre_mock_bootstrap(mock));
    cofre_workers_config_t wc = {.name = "control", .threads = 1, .queue_max = 64};
    cofre_control_t ctl = {.mock = mock, .workers = cofre_workers_start(&wc)};
    cofre_http_server_t *server = cofre_http_server_new(&svc->http);
    cofre_control_register(&ctl, server);
    if (rc == 0)
        rc = cofre_http_server_listen(server);
    if (rc == 0) {
        char control[COFRE_HOST_MAX + 32];
        snprintf(control, sizeof(control), "http://%s:%u", svc->http.listen.host,
                 cofre_http_server_port(server));
        COFRE_LOG(COFRE_LOG_INFO, NULL, "kafka dev cluster up",
                  COFRE_LF_STR("bootstrap", cofre_mock_bootstrap(mock)),
                  COFRE_LF_STR("bootstrap_file", cfg->bootstrap_file),
                  COFRE_LF_INT("brokers", cfg->mock.brokers),
                  COFRE_LF_INT("partitions", cfg->mock.partitions),
                  COFRE_LF_STR("topics", cfg->mock.topics), COFRE_LF_STR("control", control));
        rc = cofre_http_server_run(server);
    }
    unlink(cfg->bootstrap_file);
    cofre_workers_stop(ctl.workers);
    cofre_http_server_free(server);
    cofre_mock_free(mock);
    cofre_log_msg(COFRE_LOG_INFO, NULL, "stopped");
    return rc == 0 ? 0 : 1;
}

static int print_routes(cofre_service_t *svc)
{
    cofre_control_t ctl = {0};
    cofre_http_server_t *server = cofre_http_server_new(&svc->http);
    cofre_control_register(&ctl, server);
    cofre_http_print_routes(server, stdout);
    cofre_http_server_free(server);
    return 0;
}

int main(int argc, char **argv)
{
    cofre_service_t svc;
    cofre_service_init(&svc, "cofre-kafka-dev", usage, "127.0.0.1:8092", "", argc, argv, true);
    const char *command = argc > 1 ? argv[1] : "serve";
    if (strcmp(command, "--routes") == 0)
        return print_routes(&svc);
    if (strcmp(command, "serve") != 0) {
        fprintf(stderr, "cofre-kafka-dev: unknown command \"%s\" (try --help)\n", command);
        return 2;
    }
    kdev_config_t cfg;
    read_config(&svc, &cfg);
    cofre_config_finish(&svc.config);
    return serve(&svc, &cfg);
}
