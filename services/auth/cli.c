/*
 * cli.c: the client and key commands. Each opens one registry connection (migrating the
 * schema first, so they work before the service ever started), does its change with its
 * event in one transaction, and prints the result.
 */
#include "auth/cli.h"

#include "auth/keyring.h"
#include "auth/registry.h"
#include "cofre/common.h"
#include "cofre/jbuf.h"
#include "cofre/log.h"
#include "cofre/scope.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define EXIT_USAGE            2
#define SECRET_FILE_MAX       512
#define COFRE_SECRET_FILE_MIN 32 /* shortest secret accepted from a secret file */

typedef struct args {
    const char *name;
    const char *scopes;
    const char *owner;
    const char *secret_file;
    const char *positional;
    bool now;
} args_t;

static int usage_error(const char *msg)
{
    fprintf(stderr, "cofre-auth: %s (try --help)\n", msg);
    return EXIT_USAGE;
}

static int fail(const char *fmt, const char *arg)
{
    fprintf(stderr, "cofre-auth: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n");
    return 1;
}

/* Parses --name, --scopes, --owner, --secret-file, --now and one positional argument. */
static bool parse_args(int argc, char **argv, args_t *a)
{
    memset(a, 0, sizeof(*a));
    for (int i = 0; i < argc; i++) {
        bool is_name = strcmp(argv[i], "--name") == 0 || strcmp(argv[i], "--id") == 0;
        const char **slot = is_name                                 ? &a->name
                            : strcmp(argv[i], "--scopes") == 0      ? &a->scopes
                            : strcmp(argv[i], "--owner") == 0       ? &a->owner
                            : strcmp(argv[i], "--secret-file") == 0 ? &a->secret_file
                                                                    : NULL;
        if (slot != NULL) {
            if (i + 1 == argc || *slot != NULL)
                return false;
            *slot = argv[++i];
        } else if (strcmp(argv[i], "--now") == 0) {
            a->now = true;
        } else if (argv[i][0] != '-' && a->positional == NULL) {
            a->positional = argv[i];
        } else {
            return false;
        }
    }
    return true;
}

static cofre_registry_t *open_registry(const cofre_authcli_config_t *cfg)
{
    cofre_registry_t *reg = NULL;
    if (cofre_registry_migrate(cfg->db_url) != 0 || cofre_registry_open(cfg->db_url, &reg) != 0) {
        fprintf(stderr, "cofre-auth: cannot open the registry %s\n", cfg->db_url);
        return NULL;
    }
    return reg;
}

static int64_t now_s(void)
{
    return (int64_t)(cofre_now_wall_us() / 1000000u);
}

static void client_event(cofre_event_t *ev, const cofre_client_t *c, const char *type,
                         const char *command)
{
    cofre_jbuf_t b;
    cofre_jbuf_init(&b);
    cofre_registry_client_json(c, &b);
    cofre_actor_t actor = {.command = command};
    cofre_registry_event(ev, type, c->client_id, "client", b.data, &actor, NULL);
    cofre_jbuf_release(&b);
}

/* ---- secrets ---------------------------------------------------------------------------- */

/* Writes secret and a newline to path, mode 0600, replacing it atomically. */
static int write_secret_file(const char *path, const char *secret)
{
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    bool ok = fd >= 0 && fchmod(fd, 0600) == 0;
    size_t len = strlen(secret);
    ok = ok && write(fd, secret, len) == (ssize_t)len && write(fd, "\n", 1) == 1 && fsync(fd) == 0;
    if (fd >= 0)
        ok = close(fd) == 0 && ok;
    ok = ok && rename(tmp, path) == 0;
    if (!ok) {
        fprintf(stderr, "cofre-auth: cannot write %s: %s\n", path, strerror(errno));
        unlink(tmp);
        return 1;
    }
    return 0;
}

/* Reads the secret in path (first line) into out; false when absent or unreadable. */
static bool read_secret_file(const char *path, char *out, size_t outsz)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return false;
    bool ok = fgets(out, (int)outsz, f) != NULL;
    fclose(f);
    out[strcspn(out, "\r\n")] = '\0';
    return ok && out[0] != '\0';
}

/* A new secret and its hash. */
static int new_secret(const cofre_authcli_config_t *cfg, char secret[COFRE_SECRET_LEN + 1],
                      char hash[COFRE_REGISTRY_HASH_MAX])
{
    cofre_secret_generate(secret);
    if (cofre_secret_hash(&cfg->argon2, secret, strlen(secret), hash) != 0)
        return fail("%s", "Argon2id hashing failed (is COFRE_AUTH_ARGON2_MEMLIMIT_KIB too high?)");
    return 0;
}

/* ---- client commands -------------------------------------------------------------------- */

/* Validates --name, --scopes and --owner into c. Returns 0 or EXIT_USAGE. */
static int client_from_args(const args_t *a, cofre_client_t *c)
{
    memset(c, 0, sizeof(*c));
    if (a->name == NULL || a->scopes == NULL)
        return usage_error("--name and --scopes are required");
    if (!cofre_registry_client_id_valid(a->name))
        return usage_error("--name must be 1 to 64 of A-Z a-z 0-9 . _ -");
    unsigned unknown = 0;
    if (!cofre_scope_parse(a->scopes, strlen(a->scopes), &c->scopes, &unknown) || unknown > 0)
        return usage_error("--scopes must be a space-separated list of: accounts:read "
                           "accounts:write transfers:read transfers:write audit:read ledger:admin");
    const char *owner = a->owner != NULL ? a->owner : a->name;
    if (!cofre_registry_owner_valid(owner))
        return usage_error("--owner must be 1 to 128 of A-Z a-z 0-9 . _ : @ -");
    snprintf(c->client_id, sizeof(c->client_id), "%s", a->name);
    snprintf(c->owner, sizeof(c->owner), "%s", owner);
    cofre_time_format(cofre_now_wall_us(), c->created_at);
    return 0;
}

static int insert_client(cofre_registry_t *reg, const cofre_client_t *c, const char *command)
{
    cofre_event_t ev;
    client_event(&ev, c, "cofre.auth.client.created", command);
    int rc = reg->ops->client_insert(reg, c, &ev);
    cofre_registry_event_release(&ev);
    if (rc == COFRE_EEXIST)
        return fail("client \"%s\" exists already", c->client_id);
    if (rc != 0)
        return fail("cannot create the client: %s", cofre_strerror(rc));
    return 0;
}

static int client_add(const cofre_authcli_config_t *cfg, cofre_registry_t *reg, const args_t *a)
{
    cofre_client_t c;
    int rc = client_from_args(a, &c);
    char secret[COFRE_SECRET_LEN + 1];
    if (rc == 0)
        rc = new_secret(cfg, secret, c.secret_hash);
    if (rc == 0)
        rc = insert_client(reg, &c, "client add");
    if (rc != 0)
        return rc;
    printf("client_id: %s\nclient_secret: %s\n", c.client_id, secret);
    fprintf(stderr, "cofre-auth: the secret is shown only this once: store it now\n");
    cofre_secret_wipe(secret, sizeof(secret));
    return 0;
}

static int set_secret(const cofre_authcli_config_t *cfg, cofre_registry_t *reg, cofre_client_t *c,
                      char secret[COFRE_SECRET_LEN + 1], const char *command)
{
    int rc = new_secret(cfg, secret, c->secret_hash);
    if (rc != 0)
        return rc;
    cofre_event_t ev;
    client_event(&ev, c, "cofre.auth.client.secret_rotated", command);
    rc = reg->ops->client_update(reg, c, COFRE_CLIENT_SET_SECRET, &ev);
    cofre_registry_event_release(&ev);
    return rc != 0 ? fail("cannot change the secret: %s", cofre_strerror(rc)) : 0;
}

/* Loads the client named by the positional argument. Returns 0, 1 or EXIT_USAGE. */
static int existing_client(cofre_registry_t *reg, const args_t *a, cofre_client_t *c)
{
    if (a->positional == NULL || a->name != NULL || a->scopes != NULL)
        return usage_error("expected one client id");
    int rc = reg->ops->client_get(reg, a->positional, c);
    if (rc == COFRE_ENOENT)
        return fail("no client \"%s\"", a->positional);
    return rc != 0 ? fail("cannot read the registry: %s", cofre_strerror(rc)) : 0;
}

static int client_rotate_secret(const cofre_authcli_config_t *cfg, cofre_registry_t *reg,
                                const args_t *a)
{
    cofre_client_t c;
    char secret[COFRE_SECRET_LEN + 1];
    int rc = existing_client(reg, a, &c);
    if (rc == 0)
        rc = set_secret(cfg, reg, &c, secret, "client rotate-secret");
    if (rc != 0)
        return rc;
    printf("client_id: %s\nclient_secret: %s\n", c.client_id, secret);
    fprintf(stderr, "cofre-auth: the old secret no longer works; the new one is shown only "
                    "this once\n");
    cofre_secret_wipe(secret, sizeof(secret));
    return 0;
}

static int client_disable(cofre_registry_t *reg, const args_t *a)
{
    cofre_client_t c;
    int rc = existing_client(reg, a, &c);
    if (rc != 0)
        return rc;
    if (c.disabled_at != 0) {
        printf("client %s was disabled already\n", c.client_id);
        return 0;
    }
    c.disabled_at = now_s();
    cofre_event_t ev;
    client_event(&ev, &c, "cofre.auth.client.disabled", "client disable");
    rc = reg->ops->client_update(reg, &c, COFRE_CLIENT_DISABLE, &ev);
    cofre_registry_event_release(&ev);
    if (rc != 0)
        return fail("cannot disable the client: %s", cofre_strerror(rc));
    printf("client %s disabled: no new tokens; its tokens are refused by every service that "
           "reads /oauth/revocations\n",
           c.client_id);
    return 0;
}

static bool print_client(const cofre_client_t *c, void *data)
{
    (void)data;
    char scopes[COFRE_SCOPE_LIST_MAX];
    cofre_scope_format(c->scopes, scopes);
    printf("%s\t%s\t%s\t%s\t%s\n", c->client_id, c->owner, c->disabled_at ? "disabled" : "enabled",
           c->created_at, scopes);
    return true;
}

static int client_list(cofre_registry_t *reg, const args_t *a)
{
    if (a->positional != NULL || a->name != NULL)
        return usage_error("client list takes no arguments");
    printf("client_id\towner\tstatus\tcreated_at\tscope\n");
    int rc = reg->ops->client_list(reg, print_client, NULL);
    return rc != 0 ? fail("cannot read the registry: %s", cofre_strerror(rc)) : 0;
}

/* Gives c the secret (hashing it) and records the change. */
static int store_secret(const cofre_authcli_config_t *cfg, cofre_registry_t *reg, cofre_client_t *c,
                        const char *secret, const char *command)
{
    if (cofre_secret_hash(&cfg->argon2, secret, strlen(secret), c->secret_hash) != 0)
        return fail("%s", "Argon2id hashing failed");
    cofre_event_t ev;
    client_event(&ev, c, "cofre.auth.client.secret_rotated", command);
    int rc = reg->ops->client_update(reg, c, COFRE_CLIENT_SET_SECRET, &ev);
    cofre_registry_event_release(&ev);
    return rc != 0 ? fail("cannot change the secret: %s", cofre_strerror(rc)) : 0;
}

/*
 * The secret ensure works with: the one in the file when it holds an acceptable one (at least
 * COFRE_SECRET_FILE_MIN printable characters), else a new one written to the file.
 */
static int ensure_secret(const char *path, char *secret, size_t size, bool *from_file)
{
    *from_file = read_secret_file(path, secret, size);
    size_t len = *from_file ? strlen(secret) : 0;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)secret[i] < 0x21 || (unsigned char)secret[i] > 0x7e)
            len = 0;
    if (*from_file && len >= COFRE_SECRET_FILE_MIN && len <= COFRE_SECRET_INPUT_MAX)
        return 0;
    if (*from_file)
        return fail("%s holds no acceptable secret (32 to 256 printable characters)", path);
    cofre_secret_generate(secret);
    return write_secret_file(path, secret);
}

/*
 * ensure: the demo client of `make run`, repeatable. The secret file is the source of truth:
 * a secret already in it (run.sh may write one) becomes the client's; without one, a new
 * secret is made and written there. Creates the client when absent; when present and its
 * secret differs from the file's, gives it the file's.
 */
static int client_ensure(const cofre_authcli_config_t *cfg, cofre_registry_t *reg, const args_t *a)
{
    cofre_client_t want, have;
    memset(&have, 0, sizeof(have));
    int rc = client_from_args(a, &want);
    if (rc != 0)
        return rc;
    if (a->secret_file == NULL)
        return usage_error("client ensure needs --secret-file");
    char secret[SECRET_FILE_MAX];
    bool from_file = false;
    rc = reg->ops->client_get(reg, want.client_id, &have);
    if (rc != 0 && rc != COFRE_ENOENT)
        return fail("cannot read the registry: %s", cofre_strerror(rc));
    if (rc == 0 && have.disabled_at != 0)
        return fail("client \"%s\" is disabled", have.client_id);
    bool exists = rc == 0;
    rc = ensure_secret(a->secret_file, secret, sizeof(secret), &from_file);
    if (rc == 0 && !exists) {
        rc = cofre_secret_hash(&cfg->argon2, secret, strlen(secret), want.secret_hash) != 0
                 ? fail("%s", "Argon2id hashing failed")
                 : insert_client(reg, &want, "client ensure");
        if (rc == 0)
            printf("client %s created; its secret is in %s\n", want.client_id, a->secret_file);
    } else if (rc == 0 && cofre_secret_verify(have.secret_hash, secret, strlen(secret))) {
        printf("client %s exists; %s holds its secret\n", have.client_id, a->secret_file);
    } else if (rc == 0) {
        rc = store_secret(cfg, reg, &have, secret, "client ensure");
        if (rc == 0)
            printf("client %s exists; its secret is now the one in %s\n", have.client_id,
                   a->secret_file);
    }
    if (rc == 0 && exists && (have.scopes != want.scopes || strcmp(have.owner, want.owner) != 0))
        fprintf(stderr,
                "cofre-auth: warning: client %s keeps its owner and scopes, which differ "
                "from the ones asked for\n",
                have.client_id);
    cofre_secret_wipe(secret, sizeof(secret));
    return rc;
}

/* ---- key commands ----------------------------------------------------------------------- */

static int keys_rotate(const cofre_authcli_config_t *cfg, cofre_registry_t *reg, const args_t *a)
{
    if (a->positional != NULL || a->name != NULL)
        return usage_error("keys rotate takes only --now");
    unsigned lead = a->now ? 0 : cfg->key_lead_s;
    char kid[COFRE_JWKS_KID_LEN + 1];
    cofre_actor_t actor = {.command = "keys rotate"};
    int64_t now = now_s();
    if (cofre_keyring_create(cfg->keys_dir, reg, now, lead, "cofre.auth.key.rotated", &actor,
                             kid) != 0)
        return fail("%s", "cannot create the new key");
    /* The record says when it activates (a key made in the newest one's second moves on). */
    int64_t activates = now + lead;
    cofre_key_record_t recs[COFRE_REGISTRY_KEYS_MAX];
    size_t n = 0;
    if (reg->ops->key_list(reg, recs, COFRE_REGISTRY_KEYS_MAX, &n) == 0)
        for (size_t i = 0; i < n; i++)
            if (strcmp(recs[i].kid, kid) == 0)
                activates = recs[i].activates_at;
    char at[COFRE_TIME_LEN + 1];
    cofre_time_format((uint64_t)activates * 1000000u, at);
    printf("kid: %s\nactivates_at: %s\n", kid, at);
    return 0;
}

static int keys_list(const cofre_authcli_config_t *cfg, cofre_registry_t *reg)
{
    cofre_key_record_t keys[COFRE_REGISTRY_KEYS_MAX];
    size_t n = 0;
    int rc = reg->ops->key_list(reg, keys, COFRE_REGISTRY_KEYS_MAX, &n);
    if (rc != 0)
        return fail("cannot read the registry: %s", cofre_strerror(rc));
    int64_t now = now_s();
    printf("kid\tstate\tactivates_at\n");
    for (size_t i = 0; i < n; i++) {
        char at[COFRE_TIME_LEN + 1];
        cofre_time_format((uint64_t)keys[i].activates_at * 1000000u, at);
        printf("%s\t%s\t%s\n", keys[i].kid, cofre_keyring_state(keys, n, i, now, cfg->token_ttl_s),
               at);
    }
    return 0;
}

/* ---- dispatch --------------------------------------------------------------------------- */

static int run(const cofre_authcli_config_t *cfg, cofre_registry_t *reg, const char *group,
               const char *verb, const args_t *a)
{
    if (strcmp(group, "client") == 0) {
        if (strcmp(verb, "add") == 0)
            return client_add(cfg, reg, a);
        if (strcmp(verb, "ensure") == 0)
            return client_ensure(cfg, reg, a);
        if (strcmp(verb, "list") == 0)
            return client_list(reg, a);
        if (strcmp(verb, "disable") == 0)
            return client_disable(reg, a);
        if (strcmp(verb, "rotate-secret") == 0)
            return client_rotate_secret(cfg, reg, a);
    } else if (strcmp(verb, "rotate") == 0) {
        return keys_rotate(cfg, reg, a);
    } else if (strcmp(verb, "list") == 0) {
        return keys_list(cfg, reg);
    }
    return usage_error("unknown command");
}

int cofre_authcli_run(const cofre_authcli_config_t *cfg, int argc, char **argv)
{
    COFRE_ASSERT(argc >= 1);
    if (argc < 2)
        return usage_error("missing command");
    args_t a;
    if (!parse_args(argc - 2, argv + 2, &a))
        return usage_error("bad arguments");
    cofre_log_set_fd(2); /* stdout is the command's answer */
    cofre_registry_t *reg = open_registry(cfg);
    if (reg == NULL)
        return 1;
    int rc = run(cfg, reg, argv[0], argv[1], &a);
    cofre_registry_close(reg);
    return rc;
}
