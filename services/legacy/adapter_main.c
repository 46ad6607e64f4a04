/*
 * cofre-legacy: delivers every posted transfer of the ledger to the bank's legacy core over
 * ISO 8583:1987 (docs/legacy-iso8583.md). main() reads the configuration and wires three
 * parts: the consumer (adapter_consumer.c: Kafka to the delivery store), the engine
 * (adapter_engine.c: the store to the host, over adapter_pool.c's connections) and libcofre's
 * HTTP server for /healthz, /readyz and /metrics. On PostgreSQL (several replicas on one
 * database) the two share a lease table (adapter_lease.c) and a name unique to this process,
 * the owner of the partitions it leases. `cofre-legacy migrate` brings the PostgreSQL schema up
 * to date; `cofre-legacy reconcile` compares the ledger with the host's ledger
 * (adapter_reconcile.c).
 */
#include "cofre/common.h"
#include "cofre/config.h"
#include "cofre/db.h"
#include "cofre/http.h"
#include "cofre/kafka.h"
#include "cofre/log.h"
#include "cofre/metrics.h"
#include "cofre/pq.h"
#include "cofre/service.h"
#include "cofre/trace.h"
#include "legacy/adapter_consumer.h"
#include "legacy/adapter_engine.h"
#include "legacy/adapter_metrics.h"
#include "legacy/adapter_reconcile.h"

#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char usage[] =
    "Usage: cofre-legacy [serve]     deliver posted transfers to the legacy host (the default)\n"
    "       cofre-legacy migrate     bring the delivery store's schema up to date, then exit\n"
    "       cofre-legacy reconcile --host-ledger FILE|- [--core-db URL] [--adapter-db URL]\n"
    "                              compare the ledger's posted transfers with what the host\n"
    "                              applied (JSON lines, as `cofre-legacy-sim ledger` prints);\n"
    "                              one JSON line per difference, then a summary; exit 1 on\n"
    "                              any difference, 2 when an input cannot be read\n"
    "\n"
    "serve reads cofre.ledger.events (COFRE_KAFKA_BROKERS, required; COFRE_KAFKA_SECURITY_*,\n"
    "COFRE_KAFKA_SASL_*, COFRE_KAFKA_SSL_CA_FILE as for every service) in its own consumer\n"
    "group, keeps the delivery state in COFRE_DB (sqlite:PATH, default sqlite:var/legacy.db, or\n"
    "postgres://... shared by several replicas), serves /healthz, /readyz and /metrics on\n"
    "COFRE_LISTEN (default 127.0.0.1:8084), and:\n"
    "  COFRE_MIGRATE                      auto (migrate the PostgreSQL schema at start, the\n"
    "                                     default) | off\n"
    "  COFRE_LEGACY_HOST                  host:port of the legacy host (127.0.0.1:8583)\n"
    "  COFRE_LEGACY_POOL                  connections to it (1; 1-64)\n"
    "  COFRE_LEGACY_WINDOW                requests in flight per connection (32; 1-256)\n"
    "  COFRE_LEGACY_TIMEOUT_MS            answer timeout; then a 0400 reversal (5000)\n"
    "  COFRE_LEGACY_CONNECT_TIMEOUT_MS    TCP connect timeout (3000)\n"
    "  COFRE_LEGACY_ECHO_MS               idle time before an 0800 echo (30000)\n"
    "  COFRE_LEGACY_RECONNECT_MIN_MS      reconnect backoff, first wait (100)\n"
    "  COFRE_LEGACY_RECONNECT_MAX_MS      reconnect backoff, longest wait (10000)\n"
    "  COFRE_LEGACY_RETRY_MAX             0200 transmissions per transfer before it is\n"
    "                                     dead-lettered (10)\n"
    "  COFRE_LEGACY_RETRY_MIN_MS          retry backoff, first wait (200)\n"
    "  COFRE_LEGACY_RETRY_MAX_MS          retry backoff, longest wait (30000)\n"
    "  COFRE_LEGACY_BREAKER_FAILURES      failures in a row that open the breaker (5)\n"
    "  COFRE_LEGACY_BREAKER_OPEN_MS       how long it stays open before a probe (5000)\n"
    "  COFRE_LEGACY_TERMINAL              field 41, this instance's terminal id (COFRE001)\n"
    "  COFRE_LEGACY_GROUP                 Kafka consumer group (cofre-legacy)\n"
    "  COFRE_LEGACY_TOPIC                 topic read (cofre.ledger.events)\n"
    "  COFRE_LEGACY_DLQ_TOPIC             dead-letter topic (cofre.legacy.dlq)\n"
    "  COFRE_LEGACY_BATCH_MAX             messages stored per transaction (500; 1-4096)\n"
    "  COFRE_LEGACY_SESSION_TIMEOUT_MS    Kafka group session timeout (10000)\n"
    "  COFRE_LEGACY_ACTIVE_MAX            deliveries held in memory (4096; 1-65536)\n"
    "  COFRE_LEGACY_RETENTION_H           hours final deliveries are kept (720; 0: forever)\n"
    "  COFRE_LEGACY_LEASE_MS              PostgreSQL: how long a replica's lease on a partition\n"
    "                                     lasts without renewal, the longest a takeover waits\n"
    "                                     after a crash (20000, or 2 x TIMEOUT_MS + 2000 when\n"
    "                                     that is more; at least that)\n"
    "Reconcile's URLs are sqlite:PATH or postgres://...; --core-db defaults to\n"
    "sqlite:var/core.db (the core's default database).\n";

#define DEFAULT_LISTEN "127.0.0.1:8084"
#define DEFAULT_DB     "sqlite:var/legacy.db"

#define OWNER_HOST_MAX   64
#define DEFAULT_LEASE_MS 20000

typedef struct adapter_config {
    cofre_adapter_consumer_config_t consumer;
    cofre_adapter_engine_config_t engine;
    bool postgres;
    bool migrate;
    uint64_t lease_ms;
    char owner[COFRE_ADAPTER_OWNER_MAX + 1];
} adapter_config_t;

static uint64_t ms_var(cofre_config_t *c, const char *name, int64_t def, int64_t min, int64_t max)
{
    return (uint64_t)cofre_config_int(c, name, def, min, max);
}

static void read_link(cofre_config_t *c, cofre_adapter_engine_config_t *e)
{
    cofre_adapter_pool_config_t *p = &e->pool;
    cofre_config_listen(c, "COFRE_LEGACY_HOST", "127.0.0.1:8583", &p->host);
    p->connections =
        (unsigned)cofre_config_int(c, "COFRE_LEGACY_POOL", 1, 1, COFRE_ADAPTER_POOL_MAX);
    p->window =
        (unsigned)cofre_config_int(c, "COFRE_LEGACY_WINDOW", 32, 1, COFRE_ADAPTER_WINDOW_MAX);
    p->timeout_ms = ms_var(c, "COFRE_LEGACY_TIMEOUT_MS", 5000, 10, 600000);
    p->connect_timeout_ms = ms_var(c, "COFRE_LEGACY_CONNECT_TIMEOUT_MS", 3000, 10, 600000);
    p->echo_ms = ms_var(c, "COFRE_LEGACY_ECHO_MS", 30000, 100, 3600000);
    p->reconnect.min_ms = ms_var(c, "COFRE_LEGACY_RECONNECT_MIN_MS", 100, 1, 600000);
    p->reconnect.max_ms = ms_var(c, "COFRE_LEGACY_RECONNECT_MAX_MS", 10000, 1, 3600000);
    if (p->reconnect.max_ms < p->reconnect.min_ms)
        cofre_config_reject(c, "COFRE_LEGACY_RECONNECT_MAX_MS", "",
                            "at least COFRE_LEGACY_RECONNECT_MIN_MS");
}

static void read_delivery(cofre_config_t *c, cofre_adapter_engine_config_t *e)
{
    e->retry_max = (unsigned)cofre_config_int(c, "COFRE_LEGACY_RETRY_MAX", 10, 1, 1000);
    e->retry.min_ms = ms_var(c, "COFRE_LEGACY_RETRY_MIN_MS", 200, 1, 600000);
    e->retry.max_ms = ms_var(c, "COFRE_LEGACY_RETRY_MAX_MS", 30000, 1, 3600000);
    if (e->retry.max_ms < e->retry.min_ms)
        cofre_config_reject(c, "COFRE_LEGACY_RETRY_MAX_MS", "",
                            "at least COFRE_LEGACY_RETRY_MIN_MS");
    e->breaker_failures =
        (unsigned)cofre_config_int(c, "COFRE_LEGACY_BREAKER_FAILURES", 5, 1, 1000);
    e->breaker_open_ms = ms_var(c, "COFRE_LEGACY_BREAKER_OPEN_MS", 5000, 10, 3600000);
    e->terminal = cofre_config_str(c, "COFRE_LEGACY_TERMINAL", "COFRE001");
    size_t tlen = strlen(e->terminal);
    bool printable = tlen >= 1 && tlen <= COFRE_LINK_TERMINAL_LEN;
    for (size_t i = 0; printable && i < tlen; i++)
        printable = e->terminal[i] >= 0x20 && e->terminal[i] <= 0x7e;
    if (!printable)
        cofre_config_reject(c, "COFRE_LEGACY_TERMINAL", e->terminal, "1 to 8 printable characters");
    e->active_max =
        (size_t)cofre_config_int(c, "COFRE_LEGACY_ACTIVE_MAX", 4096, 1, COFRE_ADAPTER_ACTIVE_MAX);
}

static void read_kafka(cofre_service_t *svc, cofre_adapter_consumer_config_t *k)
{
    cofre_config_t *c = &svc->config;
    cofre_kafka_config_read(c, svc->kafka_brokers, &k->kafka);
    if (!cofre_kafka_brokers_valid(svc->kafka_brokers))
        cofre_config_reject(c, "COFRE_KAFKA_BROKERS", svc->kafka_brokers,
                            "host:port[,host:port...]: the brokers cofre-legacy consumes from");
    k->group = cofre_config_str(c, "COFRE_LEGACY_GROUP", "cofre-legacy");
    k->topic = cofre_config_str(c, "COFRE_LEGACY_TOPIC", "cofre.ledger.events");
    k->dlq_topic = cofre_config_str(c, "COFRE_LEGACY_DLQ_TOPIC", "cofre.legacy.dlq");
    if (k->group[0] == '\0' || k->topic[0] == '\0' || k->dlq_topic[0] == '\0')
        cofre_config_reject(c, "COFRE_LEGACY_GROUP/TOPIC/DLQ_TOPIC", "", "non-empty names");
    k->batch_max =
        (size_t)cofre_config_int(c, "COFRE_LEGACY_BATCH_MAX", 500, 1, COFRE_ADAPTER_BATCH_MAX);
    k->session_timeout_ms =
        (unsigned)cofre_config_int(c, "COFRE_LEGACY_SESSION_TIMEOUT_MS", 10000, 1000, 300000);
    k->retention_h = (unsigned)cofre_config_int(c, "COFRE_LEGACY_RETENTION_H", 720, 0, 87600);
    k->db_url = svc->db_url;
}

/* COFRE_DB and, on PostgreSQL, what several replicas need. */
static void read_store(cofre_config_t *c, const char *db_url, adapter_config_t *cfg)
{
    cofre_db_kind_t kind;
    const char *target;
    if (cofre_db_parse_url(db_url, &kind, &target) != 0)
        cofre_config_reject(c, "COFRE_DB", db_url, "sqlite:PATH or postgres://...");
    cfg->postgres = kind == COFRE_DB_POSTGRES;
    if (cfg->postgres && cofre_pq_load() != 0)
        cofre_config_reject(c, "COFRE_DB", "postgres://...",
                            "a PostgreSQL URL needs libpq.so.5 (Debian: libpq5), which cannot be "
                            "loaded");
    static const char *const migrate[] = {"auto", "off", NULL};
    cfg->migrate = cofre_config_enum(c, "COFRE_MIGRATE", 0, migrate) == 0;
    uint64_t floor_ms = 2 * cfg->engine.pool.timeout_ms + 2 * COFRE_ADAPTER_LEASE_GUARD_MS;
    int64_t def_ms = (int64_t)COFRE_MAX(floor_ms, (uint64_t)DEFAULT_LEASE_MS);
    cfg->lease_ms = ms_var(c, "COFRE_LEGACY_LEASE_MS", def_ms, 1000, 3600000);
    if (cfg->postgres && cfg->lease_ms < floor_ms) {
        static char value[24]; /* the configuration may keep it until it reports */
        snprintf(value, sizeof(value), "%llu", (unsigned long long)cfg->lease_ms);
        cofre_config_reject(c, "COFRE_LEGACY_LEASE_MS", value,
                            "at least 2 x COFRE_LEGACY_TIMEOUT_MS + 2000");
    }
}

/* A name unique to this process: host (the pod's name), pid, and a random part (a restarted
 * process with the same pid, pid 1 in a container, is another owner). */
static void make_owner(adapter_config_t *cfg)
{
    char host[OWNER_HOST_MAX + 1] = "";
    if (gethostname(host, sizeof(host) - 1) != 0 || host[0] == '\0')
        snprintf(host, sizeof(host), "%s", "cofre-legacy");
    host[OWNER_HOST_MAX] = '\0';
    snprintf(cfg->owner, sizeof(cfg->owner), "%s/%ld/%08x", host, (long)getpid(),
             (unsigned)(cofre_trace_rand64() & 0xffffffffu));
}

static void read_config(cofre_service_t *svc, adapter_config_t *cfg)
{
    cofre_config_t *c = &svc->config;
    read_link(c, &cfg->engine);
    read_store(c, svc->db_url, cfg);
    read_delivery(c, &cfg->engine);
    read_kafka(svc, &cfg->consumer);
    cfg->engine.db_url = svc->db_url;
    cfg->engine.topic = cfg->consumer.topic;
    cfg->engine.shutdown_timeout_ms = (uint64_t)svc->http.shutdown_timeout_s * 1000u;
}

/* Creates the directory of a sqlite:PATH database (var/ on a fresh checkout). */
static void make_db_dir(const char *url)
{
    cofre_db_kind_t kind;
    const char *path;
    if (cofre_db_parse_url(url, &kind, &path) != 0 || kind != COFRE_DB_SQLITE)
        return;
    char copy[4096];
    snprintf(copy, sizeof(copy), "%s", path);
    const char *dir = dirname(copy);
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        COFRE_LOG(COFRE_LOG_WARN, NULL, "cannot create the database directory",
                  COFRE_LF_STR("path", dir), COFRE_LF_STR("error", strerror(errno)));
}

typedef struct parts {
    cofre_adapter_consumer_t *consumer;
    cofre_adapter_engine_t *engine;
    cofre_adapter_leases_t *leases;
} parts_t;

static bool ready(void *data, const char **reason)
{
    parts_t *p = data;
    cofre_adapter_consumer_t *consumer = __atomic_load_n(&p->consumer, __ATOMIC_ACQUIRE);
    if (consumer == NULL) {
        *reason = "stopping";
        return false;
    }
    return cofre_adapter_consumer_ready(consumer, reason) &&
           cofre_adapter_engine_ready(p->engine, reason);
}

static void stored_cb(void *data)
{
    parts_t *p = data;
    cofre_adapter_engine_notify(p->engine);
}

static void dead_cb(void *data)
{
    parts_t *p = data;
    cofre_adapter_consumer_t *consumer = __atomic_load_n(&p->consumer, __ATOMIC_ACQUIRE);
    if (consumer != NULL)
        cofre_adapter_consumer_kick(consumer);
}

/* On PostgreSQL: migrates (COFRE_MIGRATE=auto), names this process, makes the lease table. */
static int prepare_shared(cofre_service_t *svc, adapter_config_t *cfg, parts_t *parts)
{
    if (!cfg->postgres)
        return 0;
    if (cfg->migrate) {
        int rc = cofre_adapter_store_migrate(svc->db_url);
        if (rc != 0) {
            COFRE_LOG(COFRE_LOG_ERROR, NULL, "delivery store migration failed",
                      COFRE_LF_STR("error", cofre_strerror(rc)));
            return rc;
        }
    }
    make_owner(cfg);
    parts->leases = cofre_adapter_leases_new(cfg->lease_ms, cfg->engine.pool.timeout_ms);
    cfg->engine.leases = cfg->consumer.leases = parts->leases;
    cfg->engine.owner = cfg->consumer.owner = cfg->owner;
    return 0;
}

static int serve(cofre_service_t *svc, adapter_config_t *cfg)
{
    make_db_dir(svc->db_url);
    cofre_adapter_metrics_init();
    static parts_t parts; /* callbacks of both threads point here until both stopped */
    if (prepare_shared(svc, cfg, &parts) != 0)
        return 1;
    cfg->engine.dead_lettered = dead_cb;
    cfg->engine.data = &parts;
    parts.engine = cofre_adapter_engine_start(&cfg->engine);
    if (parts.engine == NULL) {
        cofre_adapter_leases_free(parts.leases);
        return 1;
    }
    cfg->consumer.stored = stored_cb;
    cfg->consumer.stored_data = &parts;
    cofre_adapter_consumer_t *consumer = cofre_adapter_consumer_start(&cfg->consumer);
    if (consumer == NULL) {
        cofre_adapter_engine_stop(parts.engine);
        cofre_adapter_leases_free(parts.leases);
        return 1;
    }
    __atomic_store_n(&parts.consumer, consumer, __ATOMIC_RELEASE);
    svc->http.ready = ready;
    svc->http.ready_data = &parts;
    cofre_http_server_t *server = cofre_http_server_new(&svc->http);
    int rc = cofre_http_server_listen(server);
    if (rc == 0) {
        COFRE_LOG(COFRE_LOG_INFO, NULL, "cofre-legacy started",
                  COFRE_LF_INT("http_port", cofre_http_server_port(server)),
                  COFRE_LF_STR("legacy_host", cfg->engine.pool.host.host),
                  COFRE_LF_INT("legacy_port", cfg->engine.pool.host.port),
                  COFRE_LF_STR("group", cfg->consumer.group),
                  COFRE_LF_INT("pool", cfg->engine.pool.connections),
                  COFRE_LF_STR("store", cfg->postgres ? "postgres" : "sqlite"),
                  COFRE_LF_STR("owner", cfg->postgres ? cfg->owner : NULL));
        rc = cofre_http_server_run(server);
    }
    cofre_adapter_consumer_stop(consumer);
    __atomic_store_n(&parts.consumer, NULL, __ATOMIC_RELEASE);
    cofre_adapter_engine_stop(parts.engine);
    cofre_adapter_leases_free(parts.leases);
    cofre_http_server_free(server);
    cofre_log_msg(COFRE_LOG_INFO, NULL, "stopped");
    return rc == 0 ? 0 : 1;
}

static const char *option_value(int argc, char **argv, int *i)
{
    if (*i + 1 >= argc) {
        fprintf(stderr, "cofre-legacy: %s needs a value\n", argv[*i]);
        exit(2);
    }
    return argv[++*i];
}

static int reconcile(int argc, char **argv)
{
    cofre_adapter_reconcile_config_t cfg = {
        .core_db = "sqlite:var/core.db", .out = stdout, .err = stderr};
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--core-db") == 0) {
            cfg.core_db = option_value(argc, argv, &i);
        } else if (strcmp(argv[i], "--host-ledger") == 0) {
            cfg.host_ledger = option_value(argc, argv, &i);
        } else if (strcmp(argv[i], "--adapter-db") == 0) {
            cfg.adapter_db = option_value(argc, argv, &i);
        } else {
            fprintf(stderr, "cofre-legacy: unknown reconcile option \"%s\" (try --help)\n",
                    argv[i]);
            return 2;
        }
    }
    if (cfg.host_ledger == NULL) {
        fprintf(stderr, "cofre-legacy: reconcile needs --host-ledger FILE (or - for stdin)\n");
        return 2;
    }
    return cofre_adapter_reconcile_run(&cfg);
}

int main(int argc, char **argv)
{
    cofre_service_t svc;
    cofre_service_init(&svc, "cofre-legacy", usage, DEFAULT_LISTEN, DEFAULT_DB, argc, argv, true);
    const char *cmd = argc > 1 ? argv[1] : "serve";
    if (strcmp(cmd, "reconcile") == 0) {
        cofre_config_finish(&svc.config);
        return reconcile(argc, argv);
    }
    if (strcmp(cmd, "migrate") == 0) {
        adapter_config_t cfg = {0};
        read_store(&svc.config, svc.db_url, &cfg);
        cofre_config_finish(&svc.config);
        make_db_dir(svc.db_url);
        int rc = cofre_adapter_store_migrate(svc.db_url);
        if (rc != 0)
            COFRE_LOG(COFRE_LOG_ERROR, NULL, "delivery store migration failed",
                      COFRE_LF_STR("error", cofre_strerror(rc)));
        return rc == 0 ? 0 : 1;
    }
    if (strcmp(cmd, "serve") != 0) {
        fprintf(stderr, "cofre-legacy: unknown command \"%s\" (try --help)\n", cmd);
        return 2;
    }
    if (argc > 2) {
        fprintf(stderr, "cofre-legacy: serve takes no arguments (configure it with the "
                        "environment; try --help)\n");
        return 2;
    }
    adapter_config_t cfg = {0};
    read_config(&svc, &cfg);
    cofre_config_finish(&svc.config);
    return serve(&svc, &cfg);
}
