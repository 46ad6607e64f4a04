/*
 * service.h: the start-up every cofre binary shares: --help and --version, the common
 * environment variables of the contract (COFRE_LISTEN, COFRE_THREADS, COFRE_LOG_LEVEL,
 * COFRE_DB, COFRE_KAFKA_BROKERS, COFRE_DRAIN_S, COFRE_SHUTDOWN_TIMEOUT_S), logging, metrics
 * and signal set-up. A service's main() calls cofre_service_init first, reads its own
 * variables from svc->config, then cofre_config_finish.
 */
#ifndef COFRE_SERVICE_H
#define COFRE_SERVICE_H

#include "cofre/config.h"
#include "cofre/http.h"

extern const char cofre_version[];
extern const char cofre_revision[];

typedef struct cofre_service {
    const char *name;
    cofre_config_t config;
    cofre_http_config_t http;  /* listen, threads, limits, drain and shutdown times */
    const char *db_url;        /* COFRE_DB */
    const char *kafka_brokers; /* COFRE_KAFKA_BROKERS; "" = no event bus */
} cofre_service_t;

/*
 * Answers --help (prints usage and the common variables) and --version, exiting 0; rejects
 * other options (exit 2) unless the service takes a command (has_commands: argv[1] is left to
 * the caller). Blocks SIGTERM and SIGINT in every thread created afterwards (the HTTP server
 * waits for them) and ignores SIGPIPE. Reads the common variables into svc; default_listen
 * and default_db are this service's defaults.
 */
void cofre_service_init(cofre_service_t *svc, const char *name, const char *usage,
                        const char *default_listen, const char *default_db, int argc, char **argv,
                        bool has_commands);

/* Number of online CPUs (at least 1). */
unsigned cofre_service_cpus(void);

#endif
