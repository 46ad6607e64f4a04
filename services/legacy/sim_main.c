/*
 * cofre-legacy-sim: a legacy core host for development and tests. It speaks the legacy link
 * (ISO 8583:1987, docs/legacy-iso8583.md), keeps a durable ledger of what it applied, and
 * takes fault-injection commands on a loopback control port. main() reads the configuration
 * and runs one of the commands: serve (the default), ledger, bench.
 */
#include "cofre/common.h"
#include "cofre/config.h"
#include "cofre/db.h"
#include "cofre/log.h"
#include "cofre/service.h"
#include "legacy/link.h"
#include "legacy/sim_bench.h"
#include "legacy/sim_host.h"
#include "legacy/sim_ledger.h"
#include "legacy/sim_server.h"

#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char usage[] =
    "Usage: cofre-legacy-sim [serve]      the simulated legacy host (ISO 8583 on COFRE_LISTEN)\n"
    "       cofre-legacy-sim ledger [--db sqlite:PATH] [--journal]\n"
    "                                     print what the host applied, one JSON object a line\n"
    "       cofre-legacy-sim bench [--connect HOST:PORT] [--count N] [--window N]\n"
    "                                     round trips per second over one connection\n"
    "       cofre-legacy-sim --help | --version\n"
    "\n"
    "Variables of serve (COFRE_LISTEN is the ISO 8583 address, default 127.0.0.1:8583;\n"
    "COFRE_DB must be sqlite:PATH, default sqlite:var/legacy-sim.db):\n"
    "  COFRE_SIM_CONTROL          loopback host:port of the control port (127.0.0.1:8585)\n"
    "  COFRE_SIM_AMOUNT_MAX       largest field 4 approved, minor units (100000000)\n"
    "  COFRE_SIM_CURRENCIES       accepted field 49 codes, comma-separated (empty: any)\n"
    "  COFRE_SIM_REQUIRE_SIGN_ON  decline 0200/0400 before an 0800 sign-on (true)\n"
    "  COFRE_SIM_CONNECTIONS_MAX  client connections at once (256)\n"
    "  COFRE_SIM_IDLE_TIMEOUT_S   close a connection silent this long (300)\n"
    "  COFRE_SIM_SYNC             full | normal: SQLite synchronous setting (full)\n"
    "  COFRE_SIM_SEED             seed of the fault generator (0: random)\n"
    "See docs/legacy-iso8583.md for the messages, the rules and the control commands.\n";

#define DEFAULT_LISTEN  "127.0.0.1:8583"
#define DEFAULT_CONTROL "127.0.0.1:8585"
#define DEFAULT_DB      "sqlite:var/legacy-sim.db"

/* The SQLite path of a COFRE_DB value (a bare path is accepted too); NULL if PostgreSQL. */
static const char *sqlite_path(const char *url)
{
    cofre_db_kind_t kind;
    const char *target;
    if (cofre_db_parse_url(url, &kind, &target) != 0)
        return url[0] != '\0' ? url : NULL;
    return kind == COFRE_DB_SQLITE ? target : NULL;
}

static void make_parent_dir(const char *path)
{
    char copy[4096];
    snprintf(copy, sizeof(copy), "%s", path);
    const char *dir = dirname(copy);
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        fprintf(stderr, "cofre-legacy-sim: cannot create %s: %s\n", dir, strerror(errno));
}

static void read_rules(cofre_service_t *svc, cofre_sim_rules_t *rules)
{
    cofre_config_t *c = &svc->config;
    rules->amount_max_minor =
        (uint64_t)cofre_config_int(c, "COFRE_SIM_AMOUNT_MAX", 100000000, 1, COFRE_LINK_AMOUNT_MAX);
    const char *cur = cofre_config_str(c, "COFRE_SIM_CURRENCIES", "");
    if (cofre_sim_rules_parse_currencies(rules, cur) != 0)
        cofre_config_reject(c, "COFRE_SIM_CURRENCIES", cur,
                            "comma-separated 3-letter or 3-digit codes (at most 32)");
    rules->require_sign_on = cofre_config_bool(c, "COFRE_SIM_REQUIRE_SIGN_ON", true);
}

static int serve(cofre_service_t *svc)
{
    cofre_config_t *c = &svc->config;
    cofre_sim_config_t cfg = {.listen = svc->http.listen};
    cofre_config_listen(c, "COFRE_SIM_CONTROL", DEFAULT_CONTROL, &cfg.control);
    cfg.connections_max = (unsigned)cofre_config_int(c, "COFRE_SIM_CONNECTIONS_MAX", 256, 1, 4096);
    cfg.idle_timeout_s = (unsigned)cofre_config_int(c, "COFRE_SIM_IDLE_TIMEOUT_S", 300, 1, 86400);
    cfg.seed = (uint64_t)cofre_config_int(c, "COFRE_SIM_SEED", 0, 0, INT64_MAX);
    static const char *const syncs[] = {"full", "normal", NULL};
    bool sync_full = cofre_config_enum(c, "COFRE_SIM_SYNC", 0, syncs) == 0;
    cofre_sim_host_t host = {0};
    read_rules(svc, &host.rules);
    const char *path = sqlite_path(svc->db_url);
    if (path == NULL)
        cofre_config_reject(c, "COFRE_DB", svc->db_url, "sqlite:PATH (the simulator's ledger)");
    cofre_config_finish(c); /* exits on any invalid setting */
    if (path == NULL)
        return 2;
    make_parent_dir(path);
    host.ledger = cofre_sim_ledger_open(path, false, sync_full);
    if (host.ledger == NULL)
        return 1;
    int rc = cofre_sim_server_run(&cfg, &host);
    cofre_sim_ledger_free(host.ledger);
    return rc == 0 ? 0 : 1;
}

/* Value of option name at argv[*i], advancing past it; NULL (and an error) when missing. */
static const char *option_value(int argc, char **argv, int *i)
{
    if (*i + 1 >= argc) {
        fprintf(stderr, "cofre-legacy-sim: %s needs a value\n", argv[*i]);
        exit(2);
    }
    return argv[++*i];
}

static int ledger(cofre_service_t *svc, int argc, char **argv)
{
    const char *url = svc->db_url;
    bool journal = false;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--db") == 0) {
            url = option_value(argc, argv, &i);
        } else if (strcmp(argv[i], "--journal") == 0) {
            journal = true;
        } else {
            fprintf(stderr, "cofre-legacy-sim: unknown ledger option \"%s\"\n", argv[i]);
            return 2;
        }
    }
    const char *path = sqlite_path(url);
    if (path == NULL) {
        fprintf(stderr, "cofre-legacy-sim: --db must be sqlite:PATH\n");
        return 2;
    }
    cofre_sim_ledger_t *l = cofre_sim_ledger_open(path, true, true);
    if (l == NULL) {
        fprintf(stderr, "cofre-legacy-sim: cannot read the ledger at %s\n", path);
        return 1;
    }
    int rc = cofre_sim_ledger_print(l, stdout, journal);
    cofre_sim_ledger_free(l);
    return rc == 0 ? 0 : 1;
}

static unsigned number_option(int argc, char **argv, int *i, unsigned max)
{
    const char *name = argv[*i];
    const char *v = option_value(argc, argv, i);
    char *end;
    errno = 0;
    unsigned long n = strtoul(v, &end, 10);
    if (*v < '0' || *v > '9' || *end != '\0' || errno != 0 || n < 1 || n > max) {
        fprintf(stderr, "cofre-legacy-sim: %s must be 1-%u\n", name, max);
        exit(2);
    }
    return (unsigned)n;
}

static int bench(int argc, char **argv)
{
    cofre_sim_bench_config_t cfg = {.count = 10000, .window = 1, .timeout_ms = 10000};
    cofre_config_parse_listen(DEFAULT_LISTEN, &cfg.connect);
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--connect") == 0) {
            if (cofre_config_parse_listen(option_value(argc, argv, &i), &cfg.connect) != 0) {
                fprintf(stderr, "cofre-legacy-sim: --connect takes HOST:PORT\n");
                return 2;
            }
        } else if (strcmp(argv[i], "--count") == 0) {
            cfg.count = number_option(argc, argv, &i, COFRE_SIM_BENCH_COUNT_MAX);
        } else if (strcmp(argv[i], "--window") == 0) {
            cfg.window = number_option(argc, argv, &i, COFRE_SIM_BENCH_WINDOW_MAX);
        } else {
            fprintf(stderr, "cofre-legacy-sim: unknown bench option \"%s\"\n", argv[i]);
            return 2;
        }
    }
    int rc = cofre_sim_bench_run(&cfg, stdout);
    if (rc != 0)
        fprintf(stderr, "cofre-legacy-sim: bench failed: %s\n", cofre_strerror(rc));
    return rc == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    cofre_service_t svc;
    cofre_service_init(&svc, "cofre-legacy-sim", usage, DEFAULT_LISTEN, DEFAULT_DB, argc, argv,
                       true);
    const char *cmd = argc > 1 ? argv[1] : "serve";
    if (strcmp(cmd, "serve") == 0) {
        if (argc <= 2)
            return serve(&svc);
        fprintf(stderr, "cofre-legacy-sim: serve takes no arguments (configure it with the "
                        "environment; try --help)\n");
        return 2;
    }
    cofre_config_finish(&svc.config);
    if (strcmp(cmd, "ledger") == 0)
        return ledger(&svc, argc, argv);
    if (strcmp(cmd, "bench") == 0)
        return bench(argc, argv);
    fprintf(stderr, "cofre-legacy-sim: unknown command \"%s\" (try --help)\n", argv[1]);
    return 2;
}
