/*
 * cofre-audit: the tamper-evident audit trail. main() reads the configuration and runs one of:
 *   serve   consume the event topics into the hash-chained store and serve the Audit API
 *   migrate bring the store's schema up to date (PostgreSQL: as the owner role), then exit
 *   verify  verify the store offline; exit 0 when it holds, 1 naming the first bad record
 *   keygen  write a new checkpoint signing key to a file
 */
#include "audit/api.h"
#include "audit/consumer.h"
#include "audit/keys.h"
#include "audit/store.h"
#include "audit/verify.h"
#include "cofre/auth.h"
#include "cofre/common.h"
#include "cofre/db.h"
#include "cofre/kafka.h"
#include "cofre/log.h"
#include "cofre/pg.h"
#include "cofre/pq.h"
#include "cofre/service.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_TOPICS "cofre.ledger.events,cofre.auth.events"

static const char usage[] =
    "Usage: cofre-audit [serve]       consume the events into the audit trail and serve the\n"
    "                                 Audit API (the default)\n"
    "       cofre-audit migrate       bring the schema in COFRE_DB up to date, then exit\n"
    "                                 (PostgreSQL: run it as the owner role)\n"
    "       cofre-audit verify        verify the trail in COFRE_DB offline: exit 0 when it\n"
    "                                 holds, 1 naming the first bad record\n"
    "       cofre-audit keygen FILE   write a new checkpoint signing key (mode 0600)\n"
    "       cofre-audit --routes      print the HTTP routes\n"
    "\n"
    "cofre-audit environment variables:\n"
    "  COFRE_AUDIT_SIGNING_KEY_FILE       the Ed25519 key that signs checkpoints (serve: "
    "required)\n"
    "  COFRE_AUDIT_TRUSTED_KEYS           earlier signing keys' public keys, comma list of hex\n"
    "                                     (verify needs one of these two)\n"
    "  COFRE_AUDIT_GROUP                  Kafka consumer group (default cofre-audit)\n"
    "  COFRE_AUDIT_TOPICS                 topics consumed (default " DEFAULT_TOPICS ")\n"
    "  COFRE_AUDIT_BATCH_MAX              messages per store transaction (default 500)\n"
    "  COFRE_AUDIT_CHECKPOINT_RECORDS     sign a checkpoint every N records (default 1000)\n"
    "  COFRE_AUDIT_CHECKPOINT_INTERVAL_S  or every T seconds with new records (default 60)\n"
    "  COFRE_AUDIT_VERIFY_INTERVAL_S      verify the whole trail every T s (default 300; 0: off)\n"
    "  COFRE_AUDIT_SESSION_TIMEOUT_MS     the group drops a silent member after this long\n"
    "                                     (default 10000, at least 6000)\n"
    "  COFRE_AUDIT_READERS                reader connections (default 2)\n"
    "  COFRE_MIGRATE                      auto (migrate or check the schema at start, the\n"
    "                                     default) | off\n"
    "  COFRE_KAFKA_*                      Kafka security settings (docs/events/README.md)\n"
    "  COFRE_AUTH, COFRE_AUTH_*, COFRE_JWKS_*  token checks, on by default: see docs/auth.md\n";

typedef struct audit_config {
    bool migrate;
    cofre_audit_keys_t keys;
    cofre_audit_consumer_config_t consumer;
    cofre_audit_api_config_t api;
    cofre_auth_config_t auth;
} audit_config_t;

static void read_keys(cofre_config_t *c, cofre_audit_keys_t *keys, bool signing_required)
{
    if (cofre_audit_keys_init(keys) != 0) {
        fprintf(stderr, "cofre-audit: libsodium failed to initialise\n");
        exit(1);
    }
    const char *file = cofre_config_str(c, "COFRE_AUDIT_SIGNING_KEY_FILE", "");
    const char *trusted = cofre_config_str(c, "COFRE_AUDIT_TRUSTED_KEYS", "");
    if (file[0] != '\0') {
        int rc = cofre_audit_keys_load(keys, file);
        if (rc == COFRE_ENOENT)
            cofre_config_reject(c, "COFRE_AUDIT_SIGNING_KEY_FILE", file,
                                "an existing key file (make one with cofre-audit keygen FILE)");
        else if (rc != 0)
            cofre_config_reject(c, "COFRE_AUDIT_SIGNING_KEY_FILE", file,
                                "a file holding 64 hex digits (cofre-audit keygen FILE)");
    } else if (signing_required) {
        cofre_config_required(c, "COFRE_AUDIT_SIGNING_KEY_FILE");
    }
    if (cofre_audit_keys_trust(keys, trusted) != 0)
        cofre_config_reject(c, "COFRE_AUDIT_TRUSTED_KEYS", trusted,
                            "a comma list of 64-hex-digit Ed25519 public keys");
    if (!signing_required && file[0] == '\0' && trusted[0] == '\0')
        cofre_config_required(c, "COFRE_AUDIT_TRUSTED_KEYS");
}

/* COFRE_DB: a store kind this build has; libpq must load for a PostgreSQL URL. */
static void read_db(cofre_service_t *svc)
{
    cofre_db_kind_t kind;
    const char *target;
    if (!cofre_audit_store_supported(svc->db_url) ||
        cofre_db_parse_url(svc->db_url, &kind, &target) != 0)
        cofre_config_reject(&svc->config, "COFRE_DB", svc->db_url, "sqlite:PATH or postgres://...");
    else if (kind == COFRE_DB_POSTGRES && cofre_pq_load() != 0)
        cofre_config_reject(&svc->config, "COFRE_DB", svc->db_url,
                            "a URL whose client library loads (install libpq5 for PostgreSQL)");
    else if (kind == COFRE_DB_POSTGRES && !cofre_pg_url_valid(svc->db_url))
        cofre_config_reject(&svc->config, "COFRE_DB", svc->db_url,
                            "a libpq connection URI (postgres://user@host:port/db?...)");
}

static void read_config(cofre_service_t *svc, audit_config_t *cfg)
{
    cofre_config_t *c = &svc->config;
    read_db(svc);
    static const char *const migrate[] = {"auto", "off", NULL};
    cfg->migrate = cofre_config_enum(c, "COFRE_MIGRATE", 0, migrate) == 0;
    read_keys(c, &cfg->keys, true);
    cofre_audit_consumer_config_t *k = &cfg->consumer;
    cofre_kafka_config_read(c, svc->kafka_brokers, &k->kafka);
    k->client_id = svc->name;
    k->group = cofre_config_str(c, "COFRE_AUDIT_GROUP", "cofre-audit");
    if (k->group[0] == '\0' || strlen(k->group) > 255)
        cofre_config_reject(c, "COFRE_AUDIT_GROUP", k->group, "a consumer group name");
    k->topics = cofre_config_str(c, "COFRE_AUDIT_TOPICS", DEFAULT_TOPICS);
    if (k->topics[0] == '\0' || strstr(k->topics, ",,") != NULL || strchr(k->topics, ' ') != NULL)
        cofre_config_reject(c, "COFRE_AUDIT_TOPICS", k->topics, "a comma list of topics");
    k->db_url = svc->db_url;
    k->keys = &cfg->keys;
    k->batch_max = (size_t)cofre_config_int(c, "COFRE_AUDIT_BATCH_MAX", 500, 1, 10000);
    k->checkpoint_records =
        (unsigned)cofre_config_int(c, "COFRE_AUDIT_CHECKPOINT_RECORDS", 1000, 1, 10000000);
    k->checkpoint_interval_s =
        (unsigned)cofre_config_int(c, "COFRE_AUDIT_CHECKPOINT_INTERVAL_S", 60, 1, 86400);
    k->session_timeout_ms =
        (unsigned)cofre_config_int(c, "COFRE_AUDIT_SESSION_TIMEOUT_MS", 10000, 6000, 300000);
    cofre_audit_api_config_t *a = &cfg->api;
    a->db_url = svc->db_url;
    a->keys = &cfg->keys;
    a->readers = (unsigned)cofre_config_int(c, "COFRE_AUDIT_READERS", 2, 1, 64);
    a->read_queue_max = 1024;
    a->verify_interval_s =
        (unsigned)cofre_config_int(c, "COFRE_AUDIT_VERIFY_INTERVAL_S", 300, 0, 86400);
    cofre_auth_config_read(c, &cfg->auth);
}

static bool ready(void *data, const char **reason)
{
    return cofre_audit_consumer_ready(data, reason);
}

/*
 * Creates or checks the schema (the readers open read-only). A PostgreSQL database that is
 * unreachable now is not fatal: the service starts unready and its consumer waits for it.
 */
static int prepare_store(const char *url, bool migrate)
{
    cofre_db_kind_t kind = COFRE_DB_SQLITE;
    const char *target;
    cofre_db_parse_url(url, &kind, &target);
    if (!migrate && kind == COFRE_DB_POSTGRES)
        return 0;
    int rc = cofre_audit_store_migrate(url);
    if (rc == COFRE_EUNAVAIL && kind == COFRE_DB_POSTGRES) {
        cofre_log_msg(COFRE_LOG_WARN, NULL,
                      "audit database unreachable at start: schema not checked, waiting for it");
        return 0;
    }
    if (rc != 0)
        COFRE_LOG(COFRE_LOG_ERROR, NULL, "audit store not opened",
                  COFRE_LF_STR("error", cofre_strerror(rc)));
    return rc;
}

static int serve(cofre_service_t *svc, audit_config_t *cfg)
{
    if (prepare_store(svc->db_url, cfg->migrate) != 0)
        return 1;
    cofre_audit_consumer_t *consumer = cofre_audit_consumer_start(&cfg->consumer);
    if (consumer == NULL)
        return 1;
    cofre_audit_api_t *api = cofre_audit_api_start(&cfg->api);
    svc->http.ready = ready;
    svc->http.ready_data = consumer;
    cofre_auth_t *auth = cofre_auth_start(&cfg->auth); /* NULL when COFRE_AUTH=off */
    cofre_auth_attach(auth, &svc->http);
    cofre_http_server_t *server = cofre_http_server_new(&svc->http);
    cofre_audit_api_register(api, server);
    int rc = cofre_http_server_listen(server);
    if (rc == 0)
        rc = cofre_http_server_run(server);
    cofre_audit_consumer_stop(consumer);
    cofre_audit_api_stop(api);
    cofre_http_server_free(server);
    cofre_auth_free(auth);
    cofre_log_msg(COFRE_LOG_INFO, NULL, "stopped");
    return rc == 0 ? 0 : 1;
}

/* Offline verification: the verdict as JSON on stdout, a line naming the first bad record on
 * stderr, exit 1 when the trail does not hold (2 when it cannot be read). */
static int verify(cofre_service_t *svc)
{
    cofre_audit_keys_t keys;
    read_db(svc);
    read_keys(&svc->config, &keys, false);
    cofre_config_finish(&svc->config);
    cofre_db_kind_t kind;
    const char *path;
    cofre_db_parse_url(svc->db_url, &kind, &path);
    cofre_audit_store_t *s = NULL;
    int rc = cofre_audit_store_open(svc->db_url, true, &s);
    cofre_audit_verdict_t v;
    if (rc == 0)
        rc = cofre_audit_verify(s, &keys, &v);
    cofre_audit_store_close(s);
    if (rc != 0) {
        fprintf(stderr, "cofre-audit verify: cannot read %s: %s\n",
                kind == COFRE_DB_SQLITE ? path : "the PostgreSQL store in COFRE_DB",
                cofre_strerror(rc));
        return 2;
    }
    cofre_jbuf_t b;
    cofre_jbuf_init(&b);
    cofre_audit_verdict_json(&v, &b);
    printf("%s\n", b.data);
    cofre_jbuf_release(&b);
    if (!v.ok)
        fprintf(stderr, "cofre-audit verify: first bad record %lld: %s\n", (long long)v.first_bad,
                v.reason);
    return v.ok ? 0 : 1;
}

/* `cofre-audit migrate`: exit 0 when the schema is up to date, 1 otherwise (logged). */
static int migrate(cofre_service_t *svc)
{
    read_db(svc);
    cofre_config_finish(&svc->config);
    int rc = cofre_audit_store_migrate(svc->db_url);
    if (rc != 0)
        COFRE_LOG(COFRE_LOG_ERROR, NULL, "audit migration failed",
                  COFRE_LF_STR("error", cofre_strerror(rc)));
    return rc == 0 ? 0 : 1;
}

static int keygen(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "cofre-audit: usage: cofre-audit keygen FILE\n");
        return 2;
    }
    cofre_audit_keys_t keys;
    char pub[2 * COFRE_AUDIT_PUBKEY_LEN + 1];
    int rc = cofre_audit_keys_init(&keys);
    if (rc == 0)
        rc = cofre_audit_keys_generate(argv[2], pub);
    if (rc != 0) {
        fprintf(stderr, "cofre-audit keygen: %s: %s\n", argv[2],
                rc == COFRE_EEXIST ? "exists already (never overwritten)" : cofre_strerror(rc));
        return 1;
    }
    printf("%s\n", pub); /* the public key, for COFRE_AUDIT_TRUSTED_KEYS elsewhere */
    return 0;
}

static int print_routes(cofre_service_t *svc)
{
    cofre_http_server_t *server = cofre_http_server_new(&svc->http);
    cofre_audit_api_register(NULL, server);
    cofre_http_print_routes(server, stdout);
    cofre_http_server_free(server);
    return 0;
}

int main(int argc, char **argv)
{
    cofre_service_t svc;
    cofre_service_init(&svc, "cofre-audit", usage, "127.0.0.1:8083", "sqlite:var/audit.db", argc,
                       argv, true);
    const char *command = argc > 1 ? argv[1] : "serve";
    if (strcmp(command, "--routes") == 0)
        return print_routes(&svc);
    if (strcmp(command, "keygen") == 0)
        return keygen(argc, argv);
    if (strcmp(command, "verify") == 0 && argc == 2)
        return verify(&svc);
    if (strcmp(command, "migrate") == 0 && argc == 2)
        return migrate(&svc);
    if (strcmp(command, "serve") != 0 || argc > 2) {
        fprintf(stderr, "cofre-audit: unknown command \"%s\" (try --help)\n", command);
        return 2;
    }
    static audit_config_t cfg;
    read_config(&svc, &cfg);
    cofre_config_finish(&svc.config);
    return serve(&svc, &cfg);
}
