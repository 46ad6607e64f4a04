/*
 * service.c: common start-up of every cofre binary.
 */
#include "cofre/service.h"

#include "cofre/common.h"
#include "cofre/log.h"
#include "cofre/metrics.h"

#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef COFRE_VERSION
#define COFRE_VERSION "0.0.0"
#endif
#ifndef COFRE_REVISION
#define COFRE_REVISION "unknown"
#endif

const char cofre_version[] = COFRE_VERSION;
const char cofre_revision[] = COFRE_REVISION;

#define BODY_MAX_BYTES     (64 * 1024)
#define REQUEST_TIMEOUT_MS 10000

static const char common_usage[] =
    "Common environment variables:\n"
    "  COFRE_LISTEN              host:port to serve HTTP on\n"
    "  COFRE_THREADS             event loops (default: the number of CPUs)\n"
    "  COFRE_LOG_LEVEL           debug | info | warn | error (default info)\n"
    "  COFRE_DB                  sqlite:PATH or postgres://...\n"
    "  COFRE_KAFKA_BROKERS       comma-separated brokers; empty: no event bus\n"
    "  COFRE_DRAIN_S             seconds to keep serving after SIGTERM (default 5)\n"
    "  COFRE_SHUTDOWN_TIMEOUT_S  seconds to let in-flight requests finish (default 20)\n";

unsigned cofre_service_cpus(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1u : (unsigned)n;
}

static void handle_options(const char *name, const char *usage, int argc, char **argv,
                           bool has_commands)
{
    if (argc < 2)
        return;
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        printf("%s %s\n\n%s\n%s", name, cofre_version, usage, common_usage);
        exit(0);
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("%s %s (%s)\n", name, cofre_version, cofre_revision);
        exit(0);
    }
    if (!has_commands) {
        fprintf(stderr, "%s: unknown argument \"%s\" (try --help)\n", name, argv[1]);
        exit(2);
    }
}

static void setup_signals(void)
{
    signal(SIGPIPE, SIG_IGN);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
}

void cofre_service_init(cofre_service_t *svc, const char *name, const char *usage,
                        const char *default_listen, const char *default_db, int argc, char **argv,
                        bool has_commands)
{
    handle_options(name, usage, argc, argv, has_commands);
    setup_signals();
    /*
     * Two malloc arenas instead of one per thread: worker threads allocate and free in
     * bursts, and per-thread arenas keep that memory resident long after.
     */
    mallopt(M_ARENA_MAX, 2);
    memset(svc, 0, sizeof(*svc));
    svc->name = name;
    cofre_config_t *c = &svc->config;
    cofre_config_init(c, name);

    static const char *const levels[] = {"debug", "info", "warn", "error", NULL};
    int level = cofre_config_enum(c, "COFRE_LOG_LEVEL", COFRE_LOG_INFO, levels);
    cofre_log_init(name, (cofre_log_level_t)level);

    cofre_http_config_t *h = &svc->http;
    h->service = name;
    cofre_config_listen(c, "COFRE_LISTEN", default_listen, &h->listen);
    unsigned cpus = cofre_service_cpus();
    h->threads = (unsigned)cofre_config_int(c, "COFRE_THREADS", COFRE_MIN(cpus, 64), 1, 64);
    h->drain_s = (unsigned)cofre_config_int(c, "COFRE_DRAIN_S", 5, 0, 3600);
    h->shutdown_timeout_s = (unsigned)cofre_config_int(c, "COFRE_SHUTDOWN_TIMEOUT_S", 20, 1, 3600);
    h->body_max_bytes = BODY_MAX_BYTES;
    h->request_timeout_ms = REQUEST_TIMEOUT_MS;

    svc->db_url = cofre_config_str(c, "COFRE_DB", default_db);
    svc->kafka_brokers = cofre_config_str(c, "COFRE_KAFKA_BROKERS", "");
    cofre_metrics_init(name, cofre_version, cofre_revision);
}
