/*
 * cofre-auth: the OAuth 2.0 authorization server for cofre's API clients. main() reads the
 * configuration, runs an administrative command, or migrates the schema, makes sure a
 * signing key exists, wires the issuer onto the HTTP server (and, with an event bus, the
 * outbox relay to cofre.auth.events) and runs it until SIGTERM.
 */
#include "auth/auth_outbox.h"
#include "auth/cli.h"
#include "auth/issuer.h"
#include "auth/keyring.h"
#include "auth/registry.h"
#include "auth/secret.h"
#include "auth/throttle.h"
#include "cofre/common.h"
#include "cofre/db.h"
#include "cofre/http.h"
#include "cofre/log.h"
#include "cofre/pq.h"
#include "cofre/relay.h"
#include "cofre/service.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEYS_DIR_MAX 4096

static const char usage[] =
    "Usage: cofre-auth [serve]                 run the authorization server (the default)\n"
    "       cofre-auth migrate                 bring the database schema up to date, then exit\n"
    "       cofre-auth --routes                print the HTTP routes\n"
    "       cofre-auth client add --name N --scopes \"S\" [--owner O]\n"
    "                                          register a client (--id N is the same as\n"
    "                                          --name N); prints its secret once\n"
    "       cofre-auth client ensure --name N --scopes \"S\" [--owner O] --secret-file F\n"
    "                                          create N unless it exists and make F's secret\n"
    "                                          its secret (a new one written to F if F has\n"
    "                                          none); repeatable, for make run\n"
    "       cofre-auth client list\n"
    "       cofre-auth client disable N        no new tokens; its tokens become inactive\n"
    "       cofre-auth client rotate-secret N  a new secret (printed once); the old one stops\n"
    "       cofre-auth keys rotate [--now]     a new signing key, signing after the lead time\n"
    "                                          (at once with --now: verifiers may lag 10 s)\n"
    "       cofre-auth keys list\n"
    "Scopes: accounts:read accounts:write transfers:read transfers:write audit:read "
    "ledger:admin\n"
    "\n"
    "cofre-auth environment variables:\n"
    "  COFRE_AUTH_ISSUER                the \"iss\" of tokens, and the public base URL (serve)\n"
    "  COFRE_AUTH_AUDIENCE              the \"aud\" of tokens (serve)\n"
    "  COFRE_AUTH_TOKEN_TTL_S           token lifetime (default 900)\n"
    "  COFRE_AUTH_KEYS_DIR              private signing keys (default: auth-keys/ next to\n"
    "                                   the SQLite database; required with PostgreSQL)\n"
    "  COFRE_AUTH_KEY_LEAD_S            a rotated key is published this long before it signs\n"
    "                                   (default 120: longer than verifiers' JWKS refresh)\n"
    "  COFRE_AUTH_ARGON2_OPSLIMIT       Argon2id passes (default 2)\n"
    "  COFRE_AUTH_ARGON2_MEMLIMIT_KIB   Argon2id memory (default 19456 = 19 MiB)\n"
    "  COFRE_AUTH_THROTTLE_CLIENT       failed authentications allowed per client id, N/S\n"
    "                                   seconds (default 5/60), then 429 with Retry-After\n"
    "  COFRE_AUTH_THROTTLE_ADDRESS      the same per source address (default 30/60)\n"
    "  COFRE_AUTH_TRUSTED_PROXIES       comma list of proxy addresses whose X-Forwarded-For\n"
    "                                   names the source address (default none)\n"
    "  COFRE_AUTH_HASHERS               hashing worker threads (default: the CPUs)\n"
    "  COFRE_AUTH_HASH_QUEUE_MAX        requests waiting for a hasher before 503 (default 256)\n"
    "  COFRE_MIGRATE                    auto (migrate at start, the default) | off\n"
    "  COFRE_RELAY_*, COFRE_KAFKA_*     the outbox relay to cofre.auth.events\n"
    "                                   (docs/events/README.md); runs when COFRE_KAFKA_BROKERS\n"
    "                                   is set\n"
    "COFRE_DB is sqlite:PATH (the default) or a PostgreSQL URL (docs/postgres.md).\n";

typedef struct auth_config {
    bool migrate;
    char keys_dir[KEYS_DIR_MAX];
    cofre_issuer_config_t issuer;
    cofre_authcli_config_t cli;
    cofre_relay_config_t relay;
} auth_config_t;

/* The keys directory: COFRE_AUTH_KEYS_DIR, or auth-keys next to the SQLite database; needed
 * by every command but migrate. */
static void read_keys_dir(cofre_config_t *c, const char *db_url, bool needed, auth_config_t *cfg)
{
    const char *dir = cofre_config_str(c, "COFRE_AUTH_KEYS_DIR", NULL);
    cofre_db_kind_t kind = COFRE_DB_SQLITE;
    const char *target = "";
    if (cofre_db_parse_url(db_url, &kind, &target) != 0) {
        cofre_config_reject(c, "COFRE_DB", db_url, "sqlite:PATH or postgres://...");
        return;
    }
    if (dir != NULL && dir[0] != '\0') {
        snprintf(cfg->keys_dir, sizeof(cfg->keys_dir), "%s", dir);
    } else if (kind == COFRE_DB_SQLITE) {
        const char *slash = strrchr(target, '/');
        int n = slash != NULL ? (int)(slash - target) : 0;
        snprintf(cfg->keys_dir, sizeof(cfg->keys_dir), "%.*s%sauth-keys", n, target,
                 slash != NULL ? "/" : "");
    } else if (needed) {
        cofre_config_reject(c, "COFRE_AUTH_KEYS_DIR", NULL,
                            "the private keys directory (required with PostgreSQL)");
    }
}

static void read_rate(cofre_config_t *c, const char *name, const char *def, unsigned *burst,
                      unsigned *period_s)
{
    const char *v = cofre_config_str(c, name, def);
    if (cofre_throttle_parse_rate(v, burst, period_s) != 0)
        cofre_config_reject(c, name, v, "N/S: N failures (1-100000) per S seconds (1-86400)");
}

/* What every command needs: the registry, the keys, the hashing cost. */
static void read_common(cofre_service_t *svc, bool migrate_only, auth_config_t *cfg)
{
    cofre_config_t *c = &svc->config;
    static const char *const migrate[] = {"auto", "off", NULL};
    cfg->migrate = cofre_config_enum(c, "COFRE_MIGRATE", 0, migrate) == 0;
    read_keys_dir(c, svc->db_url, !migrate_only, cfg);
    cofre_authcli_config_t *cli = &cfg->cli;
    cli->db_url = svc->db_url;
    cli->keys_dir = cfg->keys_dir;
    cli->argon2.opslimit = (unsigned long long)cofre_config_int(
        c, "COFRE_AUTH_ARGON2_OPSLIMIT", COFRE_SECRET_OPSLIMIT_DEFAULT, 1, 10);
    cli->argon2.memlimit_kib = (size_t)cofre_config_int(
        c, "COFRE_AUTH_ARGON2_MEMLIMIT_KIB", COFRE_SECRET_MEMLIMIT_KIB_DEFAULT, 8, 1024 * 1024);
    cli->key_lead_s = (unsigned)cofre_config_int(c, "COFRE_AUTH_KEY_LEAD_S", 120, 0, 86400);
    cli->token_ttl_s = (unsigned)cofre_config_int(c, "COFRE_AUTH_TOKEN_TTL_S", 900, 60, 86400);
}

/* What serving needs besides. */
static void read_serve(cofre_service_t *svc, auth_config_t *cfg)
{
    cofre_config_t *c = &svc->config;
    cofre_issuer_config_t *is = &cfg->issuer;
    is->db_url = svc->db_url;
    is->keys_dir = cfg->keys_dir;
    is->issuer = cofre_config_required(c, "COFRE_AUTH_ISSUER");
    is->audience = cofre_config_required(c, "COFRE_AUTH_AUDIENCE");
    is->token_ttl_s = cfg->cli.token_ttl_s;
    is->argon2 = cfg->cli.argon2;
    read_rate(c, "COFRE_AUTH_THROTTLE_CLIENT", "5/60", &is->client_burst, &is->client_period_s);
    read_rate(c, "COFRE_AUTH_THROTTLE_ADDRESS", "30/60", &is->address_burst, &is->address_period_s);
    is->trusted_proxies = cofre_config_str(c, "COFRE_AUTH_TRUSTED_PROXIES", "");
    unsigned cpus = cofre_service_cpus();
    is->hashers = (unsigned)cofre_config_int(c, "COFRE_AUTH_HASHERS", COFRE_MIN(cpus, 64), 1, 64);
    is->hash_queue_max = (size_t)cofre_config_int(c, "COFRE_AUTH_HASH_QUEUE_MAX", 256, 1, 100000);
    cofre_relay_config_defaults(&cfg->relay);
    cfg->relay.client_id = svc->name;
    cfg->relay.flush_timeout_ms = svc->http.shutdown_timeout_s * 1000u;
    cofre_relay_config_read(c, svc->kafka_brokers, &cfg->relay);
}

/* libpq is loaded only for a PostgreSQL URL; without it nothing can work. */
static bool load_libpq(const char *db_url)
{
    cofre_db_kind_t kind = COFRE_DB_SQLITE;
    const char *target;
    if (cofre_db_parse_url(db_url, &kind, &target) != 0 || kind != COFRE_DB_POSTGRES)
        return true;
    if (cofre_pq_load() == 0)
        return true;
    fprintf(stderr, "cofre-auth: COFRE_DB names PostgreSQL, but libpq (libpq.so.5, Debian "
                    "package libpq5) cannot be loaded\n");
    return false;
}

static int serve(cofre_service_t *svc, auth_config_t *cfg)
{
    int64_t now = (int64_t)(cofre_now_wall_us() / 1000000u);
    cofre_registry_t *reg = NULL;
    int rc = cofre_registry_open(svc->db_url, &reg);
    if (rc == 0)
        rc = cofre_keyring_ensure(cfg->keys_dir, reg, now);
    cofre_registry_close(reg);
    if (rc == COFRE_EUNAVAIL) {
        /* A database away at start may be back in a second: serve (not ready) meanwhile; the
         * keeper makes the first key if the registry turns out to have none. */
        COFRE_LOG(COFRE_LOG_WARN, NULL, "registry unreachable at start; serving, not ready",
                  COFRE_LF_STR("error", cofre_strerror(rc)));
        rc = 0;
    }
    if (rc != 0) {
        COFRE_LOG(COFRE_LOG_ERROR, NULL, "cannot prepare the signing keys",
                  COFRE_LF_STR("error", cofre_strerror(rc)), COFRE_LF_STR("dir", cfg->keys_dir));
        return 1;
    }
    cofre_keyring_t *keys = cofre_keyring_new(cfg->keys_dir, cfg->issuer.token_ttl_s);
    cofre_issuer_t *issuer = cofre_issuer_start(&cfg->issuer, keys);
    if (issuer == NULL) {
        cofre_keyring_free(keys);
        return 1;
    }
    /* The outbox relay to Kafka, when there is an event bus; readiness never depends on it. */
    cofre_relay_config_t relay_cfg = cfg->relay;
    cofre_auth_outbox_t *outbox = NULL;
    cofre_relay_t *relay = NULL;
    if (svc->kafka_brokers[0] != '\0') {
        outbox = cofre_auth_outbox_new(svc->db_url, &relay_cfg.source);
        relay = cofre_relay_start(&relay_cfg);
        if (relay == NULL) {
            cofre_auth_outbox_free(outbox);
            cofre_issuer_stop(issuer);
            cofre_keyring_free(keys);
            return 1;
        }
    }
    svc->http.ready = cofre_issuer_ready;
    svc->http.ready_data = issuer;
    cofre_http_server_t *server = cofre_http_server_new(&svc->http);
    cofre_issuer_register(issuer, server);
    rc = cofre_http_server_listen(server);
    if (rc == 0)
        rc = cofre_http_server_run(server);
    cofre_issuer_stop(issuer);
    if (relay != NULL)
        cofre_relay_stop(relay); /* after the hashers: their last events still go out */
    cofre_auth_outbox_free(outbox);
    cofre_keyring_free(keys);
    cofre_http_server_free(server);
    cofre_log_msg(COFRE_LOG_INFO, NULL, "stopped");
    return rc == 0 ? 0 : 1;
}

static int print_routes(cofre_service_t *svc)
{
    cofre_http_server_t *server = cofre_http_server_new(&svc->http);
    cofre_issuer_register(NULL, server);
    cofre_http_print_routes(server, stdout);
    cofre_http_server_free(server);
    return 0;
}

static int migrate(const char *db_url)
{
    int rc = cofre_registry_migrate(db_url);
    if (rc != 0)
        COFRE_LOG(COFRE_LOG_ERROR, NULL, "migration failed",
                  COFRE_LF_STR("error", cofre_strerror(rc)));
    return rc;
}

int main(int argc, char **argv)
{
    cofre_service_t svc;
    cofre_service_init(&svc, "cofre-auth", usage, "127.0.0.1:8082", "sqlite:var/auth.db", argc,
                       argv, true);
    const char *command = argc > 1 ? argv[1] : "serve";
    if (strcmp(command, "--routes") == 0)
        return print_routes(&svc);
    bool admin = strcmp(command, "client") == 0 || strcmp(command, "keys") == 0;
    if (!admin && strcmp(command, "serve") != 0 && strcmp(command, "migrate") != 0) {
        fprintf(stderr, "cofre-auth: unknown command \"%s\" (try --help)\n", command);
        return 2;
    }
    auth_config_t cfg;
    memset(&cfg, 0, sizeof(cfg));
    read_common(&svc, strcmp(command, "migrate") == 0, &cfg);
    if (strcmp(command, "serve") == 0)
        read_serve(&svc, &cfg);
    cofre_config_finish(&svc.config);
    if (!load_libpq(svc.db_url))
        return 1;
    if (cofre_secret_init() != 0) {
        cofre_log_msg(COFRE_LOG_ERROR, NULL, "libsodium cannot start");
        return 1;
    }
    if (admin)
        return cofre_authcli_run(&cfg.cli, argc - 1, argv + 1);
    bool migrate_only = strcmp(command, "migrate") == 0;
    if (migrate_only || cfg.migrate) {
        int rc = migrate(svc.db_url);
        if (rc != 0 || migrate_only)
            return rc == 0 ? 0 : 1;
    }
    return serve(&svc, &cfg);
}
