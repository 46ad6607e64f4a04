/*
 * cofre-core: the ledger service. main() reads the configuration, migrates the schema when
 * asked, wires the committer, the reader pool and the API onto the HTTP server, and runs it
 * until SIGTERM; then it drains the committer and exits.
 */
#include "cofre/auth.h"
#include "cofre/common.h"
#include "cofre/db.h"
#include "cofre/http.h"
#include "cofre/log.h"
#include "cofre/metrics.h"
#include "cofre/relay.h"
#include "cofre/service.h"
#include "cofre/workers.h"
#include "core/api.h"
#include "core/committer.h"
#include "core/idempotency.h"
#include "core/outbox_source.h"
#include "core/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "Usage: cofre-core [serve]   run the ledger service (the default)\n"
    "       cofre-core migrate   bring the database schema up to date, then exit\n"
    "       cofre-core --routes  print the HTTP routes\n"
    "\n"
    "cofre-core environment variables:\n"
    "  COFRE_MIGRATE                  auto (migrate at start, the default) | off\n"
    "  COFRE_COMMIT_BATCH_MAX         commands per transaction (default 512)\n"
    "  COFRE_COMMIT_QUEUE_MAX         commands waiting before 503 (default 8192)\n"
    "  COFRE_COMMITTERS               committer connections (default 2; SQLite uses 1)\n"
    "  COFRE_READERS                  reader connections (default 2)\n"
    "  COFRE_READ_QUEUE_MAX           reads waiting before 503 (default 4096)\n"
    "  COFRE_IDEMPOTENCY_RETENTION_H  hours idempotency keys are kept (default 24, min 24)\n"
    "  COFRE_RELAY_*, COFRE_KAFKA_*   the outbox relay to Kafka (docs/events/README.md); runs\n"
    "                                 when COFRE_KAFKA_BROKERS is set\n"
    "  COFRE_AUTH, COFRE_AUTH_*, COFRE_JWKS_*  token checks, on by default: see docs/auth.md\n";

typedef struct core_config {
    bool migrate;
    cofre_committer_config_t committer;
    unsigned readers;
    size_t read_queue_max;
    cofre_relay_config_t relay;
    cofre_auth_config_t auth;
} core_config_t;

static void read_config(cofre_service_t *svc, core_config_t *cfg)
{
    cofre_config_t *c = &svc->config;
    cofre_db_kind_t kind = COFRE_DB_SQLITE;
    const char *target;
    if (cofre_db_parse_url(svc->db_url, &kind, &target) != 0)
        cofre_config_reject(c, "COFRE_DB", svc->db_url, "sqlite:PATH or postgres://...");
    static const char *const migrate[] = {"auto", "off", NULL};
    cfg->migrate = cofre_config_enum(c, "COFRE_MIGRATE", 0, migrate) == 0;
    cfg->committer.db_url = svc->db_url;
    cfg->committer.batch_max = (size_t)cofre_config_int(c, "COFRE_COMMIT_BATCH_MAX", 512, 1, 4096);
    cfg->committer.queue_max =
        (size_t)cofre_config_int(c, "COFRE_COMMIT_QUEUE_MAX", 8192, 1, 1000000);
    unsigned committers = (unsigned)cofre_config_int(c, "COFRE_COMMITTERS", 2, 1, 16);
    cfg->committer.threads = kind == COFRE_DB_SQLITE ? 1 : committers;
    cfg->committer.retention_h =
        (unsigned)cofre_config_int(c, "COFRE_IDEMPOTENCY_RETENTION_H", 24, 24, 24 * 365);
    cfg->readers = (unsigned)cofre_config_int(c, "COFRE_READERS", 2, 1, 64);
    cfg->read_queue_max = (size_t)cofre_config_int(c, "COFRE_READ_QUEUE_MAX", 4096, 1, 1000000);
    cofre_relay_config_defaults(&cfg->relay);
    cfg->relay.client_id = svc->name;
    cfg->relay.flush_timeout_ms = svc->http.shutdown_timeout_s * 1000u;
    cofre_relay_config_read(c, svc->kafka_brokers, &cfg->relay);
}

static bool ready(void *data, const char **reason)
{
    cofre_committer_t *committer = data;
    if (cofre_committer_db_up(committer))
        return true;
    *reason = "database unreachable";
    return false;
}

static double readers_depth(void *data)
{
    return (double)cofre_workers_queue_length(data);
}

static int serve(cofre_service_t *svc, const core_config_t *cfg)
{
    cofre_api_t api = {0};
    api.committer = cofre_committer_start(&cfg->committer);
    if (api.committer == NULL)
        return 1;
    /* The outbox relay to Kafka, when there is an event bus; readiness never depends on it. */
    cofre_relay_config_t relay_cfg = cfg->relay;
    cofre_outbox_source_t *outbox = NULL;
    cofre_relay_t *relay = NULL;
    if (svc->kafka_brokers[0] != '\0') {
        outbox = cofre_outbox_source_new(svc->db_url, &relay_cfg.source);
        relay = cofre_relay_start(&relay_cfg);
        if (relay == NULL)
            return 1;
    }
    cofre_workers_config_t readers = {
        .name = "readers",
        .threads = cfg->readers,
        .queue_max = cfg->read_queue_max,
        .thread_init = cofre_api_reader_init,
        .thread_fini = cofre_api_reader_fini,
        .data = (void *)svc->db_url,
    };
    api.readers = cofre_workers_start(&readers);
    cofre_metric_gauge_fn("cofre_readers_queue_depth", "Reads waiting for a reader connection.",
                          readers_depth, api.readers);
    api.inflight = cofre_idem_registry_new();

    svc->http.ready = ready;
    svc->http.ready_data = api.committer;
    cofre_auth_t *auth = cofre_auth_start(&cfg->auth); /* NULL when COFRE_AUTH=off */
    cofre_auth_attach(auth, &svc->http);
    cofre_http_server_t *server = cofre_http_server_new(&svc->http);
    cofre_api_register(&api, server);
    int rc = cofre_http_server_listen(server);
    if (rc == 0)
        rc = cofre_http_server_run(server);
    cofre_committer_stop(api.committer);
    if (relay != NULL)
        cofre_relay_stop(relay); /* after the committer: its last rows still go out */
    cofre_outbox_source_free(outbox);
    cofre_workers_stop(api.readers);
    cofre_idem_registry_free(api.inflight);
    cofre_http_server_free(server);
    cofre_auth_free(auth);
    cofre_log_msg(COFRE_LOG_INFO, NULL, "stopped");
    return rc == 0 ? 0 : 1;
}

static int print_routes(cofre_service_t *svc)
{
    cofre_api_t api = {0};
    cofre_http_server_t *server = cofre_http_server_new(&svc->http);
    cofre_api_register(&api, server);
    cofre_http_print_routes(server, stdout);
    cofre_http_server_free(server);
    return 0;
}

int main(int argc, char **argv)
{
    cofre_service_t svc;
    cofre_service_init(&svc, "cofre-core", usage, "127.0.0.1:8081", "sqlite:var/core.db", argc,
                       argv, true);
    const char *command = argc > 1 ? argv[1] : "serve";
    if (strcmp(command, "--routes") == 0)
        return print_routes(&svc);
    if (strcmp(command, "serve") != 0 && strcmp(command, "migrate") != 0) {
        fprintf(stderr, "cofre-core: unknown command \"%s\" (try --help)\n", command);
        return 2;
    }
    core_config_t cfg;
    read_config(&svc, &cfg);
    if (strcmp(command, "serve") == 0)
        cofre_auth_config_read(&svc.config, &cfg.auth);
    cofre_config_finish(&svc.config);

    bool migrate_only = strcmp(command, "migrate") == 0;
    if (migrate_only || cfg.migrate) {
        int rc = cofre_store_migrate(svc.db_url);
        if (rc != 0) {
            COFRE_LOG(COFRE_LOG_ERROR, NULL, "migration failed",
                      COFRE_LF_STR("error", cofre_strerror(rc)));
            return 1;
        }
        if (migrate_only)
            return 0;
    }
    return serve(&svc, &cfg);
}
