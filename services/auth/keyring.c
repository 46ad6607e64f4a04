/*
 * keyring.c: key files, key records and the snapshot the server signs and publishes from.
 */
#include "auth/keyring.h"

#include "cofre/common.h"
#include "cofre/jwks.h"
#include "cofre/log.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PATH_MAX_LEN 4096

typedef struct snap_key {
    cofre_key_record_t rec;
    EVP_PKEY *priv; /* loaded for keys that sign now or will: current and next */
    bool published;
} snap_key_t;

typedef struct snapshot {
    size_t n;
    snap_key_t keys[COFRE_REGISTRY_KEYS_MAX];
    cofre_jwks_t *public_set; /* the published keys, for verification */
    char *jwks;               /* the published JWK Set document */
    size_t jwks_len;
} snapshot_t;

struct cofre_keyring {
    char *dir;
    unsigned token_ttl_s;
    pthread_rwlock_t lock;
    snapshot_t *snap;
};

void cofre_keyring_path(const char *dir, const char *kid, char *out, size_t outsz)
{
    snprintf(out, outsz, "%s/%s.pem", dir, kid);
}

cofre_keyring_t *cofre_keyring_new(const char *dir, unsigned token_ttl_s)
{
    cofre_keyring_t *kr = cofre_calloc(1, sizeof(*kr));
    kr->dir = cofre_strdup(dir);
    kr->token_ttl_s = token_ttl_s;
    pthread_rwlock_init(&kr->lock, NULL);
    return kr;
}

static void snapshot_free(snapshot_t *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->n; i++)
        EVP_PKEY_free(s->keys[i].priv);
    cofre_jwks_free(s->public_set);
    free(s->jwks);
    free(s);
}

void cofre_keyring_free(cofre_keyring_t *kr)
{
    if (kr == NULL)
        return;
    snapshot_free(kr->snap);
    pthread_rwlock_destroy(&kr->lock);
    free(kr->dir);
    free(kr);
}

/* ---- states ----------------------------------------------------------------------------- */

const char *cofre_keyring_state(const cofre_key_record_t *keys, size_t n, size_t i, int64_t now,
                                unsigned token_ttl_s)
{
    if (keys[i].activates_at > now)
        return "next";
    /* keys are in activation order: the next one, once active, supersedes this one */
    if (i + 1 == n || keys[i + 1].activates_at > now)
        return "current";
    int64_t until = keys[i + 1].activates_at + (int64_t)token_ttl_s + COFRE_JWT_LEEWAY_MAX_S;
    return now < until ? "retiring" : "retired";
}

/* ---- key files -------------------------------------------------------------------------- */

static int make_dir(const char *dir)
{
    if (mkdir(dir, 0700) == 0 || errno == EEXIST)
        return 0;
    COFRE_LOG(COFRE_LOG_ERROR, NULL, "cannot create the keys directory", COFRE_LF_STR("dir", dir),
              COFRE_LF_STR("error", strerror(errno)));
    return COFRE_EIO;
}

static void sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

/* Writes key's private half to <dir>/<kid>.pem, mode 0600, durably (temp file, rename). */
static int write_key_file(const char *dir, const char *kid, EVP_PKEY *key)
{
    char path[PATH_MAX_LEN], tmp[PATH_MAX_LEN];
    cofre_keyring_path(dir, kid, path, sizeof(path));
    snprintf(tmp, sizeof(tmp), "%s/.%s.pem.tmp", dir, kid);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    bool ok = f != NULL && fchmod(fd, 0600) == 0 &&
              PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL) == 1 && fflush(f) == 0 &&
              fsync(fd) == 0;
    if (f != NULL)
        ok = fclose(f) == 0 && ok;
    else if (fd >= 0)
        close(fd);
    ok = ok && rename(tmp, path) == 0;
    ERR_clear_error();
    if (!ok) {
        COFRE_LOG(COFRE_LOG_ERROR, NULL, "cannot write a private key file",
                  COFRE_LF_STR("path", path), COFRE_LF_STR("error", strerror(errno)));
        unlink(tmp);
        return COFRE_EIO;
    }
    sync_dir(dir);
    return 0;
}

/*
 * Loads <dir>/<kid>.pem; NULL (logged) on failure. Refuses a file that others may access, that
 * its group may write, or that belongs to another user than this process's (or root). A
 * Kubernetes Secret mounted as the directory passes: its files are symbolic links into the
 * Secret's current version, owned by root, readable by the pod's fsGroup (mode 0440).
 */
static EVP_PKEY *load_key_file(const char *dir, const char *kid)
{
    char path[PATH_MAX_LEN];
    cofre_keyring_path(dir, kid, path, sizeof(path));
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    const char *why = NULL;
    if (fd < 0)
        why = strerror(errno);
    else if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
        why = "not a regular file";
    else if ((st.st_mode & 027) != 0)
        why = "others may access it, or its group may write it: chmod 600";
    else if (st.st_uid != geteuid() && st.st_uid != 0)
        why = "it belongs to another user";
    EVP_PKEY *key = NULL;
    if (why == NULL) {
        FILE *f = fdopen(fd, "r");
        key = f != NULL ? PEM_read_PrivateKey(f, NULL, NULL, NULL) : NULL;
        if (f != NULL) {
            fclose(f);
            fd = -1;
        }
        ERR_clear_error();
        if (key == NULL)
            why = "not a PEM private key";
    }
    if (fd >= 0)
        close(fd);
    if (why != NULL)
        COFRE_LOG(COFRE_LOG_ERROR, NULL, "cannot load a private signing key",
                  COFRE_LF_STR("path", path), COFRE_LF_STR("error", why));
    return key;
}

static void key_event(cofre_event_t *ev, const cofre_key_record_t *rec, const char *type,
                      const cofre_actor_t *actor)
{
    char created[COFRE_TIME_LEN + 1], activates[COFRE_TIME_LEN + 1];
    cofre_time_format((uint64_t)rec->created_at * 1000000u, created);
    cofre_time_format((uint64_t)rec->activates_at * 1000000u, activates);
    cofre_jbuf_t b;
    cofre_jbuf_init(&b);
    cofre_jbuf_obj_begin(&b);
    cofre_jbuf_kstr(&b, "kid", rec->kid);
    cofre_jbuf_kstr(&b, "created_at", created);
    cofre_jbuf_kstr(&b, "activates_at", activates);
    cofre_jbuf_obj_end(&b);
    cofre_registry_event(ev, type, rec->kid, "key", b.data, actor, NULL);
    cofre_jbuf_release(&b);
}

int cofre_keyring_create(const char *dir, cofre_registry_t *reg, int64_t now, unsigned lead_s,
                         const char *event_type, const cofre_actor_t *actor,
                         char kid_out[COFRE_JWKS_KID_LEN + 1])
{
    if (make_dir(dir) != 0)
        return COFRE_EIO;
    /* Records are ordered by their times in seconds: a key made in the same second as the
     * newest one would tie with it (and the kid would decide which signs), so it is made one
     * second after it instead. */
    cofre_key_record_t recs[COFRE_REGISTRY_KEYS_MAX];
    size_t n = 0;
    if (reg->ops->key_list(reg, recs, COFRE_REGISTRY_KEYS_MAX, &n) != 0)
        return COFRE_EIO;
    for (size_t i = 0; i < n; i++)
        if (recs[i].created_at >= now)
            now = recs[i].created_at + 1;
    EVP_PKEY *key = cofre_jwks_generate();
    if (key == NULL)
        return COFRE_EIO;
    cofre_key_record_t rec = {.created_at = now, .activates_at = now + (int64_t)lead_s};
    COFRE_ASSERT(cofre_jwks_thumbprint(key, rec.kid) == 0);
    cofre_jbuf_t jwk;
    cofre_jbuf_init(&jwk);
    COFRE_ASSERT(cofre_jwks_write_key(&jwk, key, rec.kid) == 0);
    COFRE_ASSERT(jwk.len < sizeof(rec.public_jwk));
    memcpy(rec.public_jwk, jwk.data, jwk.len + 1);
    cofre_jbuf_release(&jwk);

    int rc = write_key_file(dir, rec.kid, key);
    EVP_PKEY_free(key);
    if (rc != 0)
        return rc;
    cofre_event_t ev;
    key_event(&ev, &rec, event_type, actor);
    rc = reg->ops->key_insert(reg, &rec, &ev);
    cofre_registry_event_release(&ev);
    if (rc != 0) {
        char path[PATH_MAX_LEN];
        cofre_keyring_path(dir, rec.kid, path, sizeof(path));
        unlink(path);
        COFRE_LOG(COFRE_LOG_ERROR, NULL, "cannot record a new signing key",
                  COFRE_LF_STR("error", cofre_strerror(rc)));
        return COFRE_EIO;
    }
    memcpy(kid_out, rec.kid, sizeof(rec.kid));
    COFRE_LOG(COFRE_LOG_INFO, NULL, "signing key created", COFRE_LF_STR("kid", rec.kid),
              COFRE_LF_INT("activates_in_s", lead_s), COFRE_LF_STR("event", event_type));
    return 0;
}

int cofre_keyring_ensure(const char *dir, cofre_registry_t *reg, int64_t now)
{
    cofre_key_record_t recs[1];
    size_t n = 0;
    int rc = reg->ops->key_list(reg, recs, 1, &n);
    if (rc != 0 || n > 0)
        return rc;
    char kid[COFRE_JWKS_KID_LEN + 1];
    cofre_actor_t actor = {.command = "first start"};
    return cofre_keyring_create(dir, reg, now, 0, "cofre.auth.key.created", &actor, kid);
}

/* ---- snapshots -------------------------------------------------------------------------- */

/* The private key of kid from the old snapshot (a new reference), or NULL. */
static EVP_PKEY *reuse_key(const snapshot_t *old, const char *kid)
{
    for (size_t i = 0; old != NULL && i < old->n; i++)
        if (old->keys[i].priv != NULL && strcmp(old->keys[i].rec.kid, kid) == 0) {
            EVP_PKEY_up_ref(old->keys[i].priv);
            return old->keys[i].priv;
        }
    return NULL;
}

/* Builds the published JWK Set document and its parsed form. */
static int publish(snapshot_t *s)
{
    cofre_jbuf_t b;
    cofre_jbuf_init(&b);
    cofre_jbuf_obj_begin(&b);
    cofre_jbuf_key(&b, "keys");
    cofre_jbuf_arr_begin(&b);
    for (size_t i = 0; i < s->n; i++)
        if (s->keys[i].published)
            cofre_jbuf_raw(&b, s->keys[i].rec.public_jwk, strlen(s->keys[i].rec.public_jwk));
    cofre_jbuf_arr_end(&b);
    cofre_jbuf_obj_end(&b);
    char err[200];
    s->public_set = cofre_jwks_parse(b.data, b.len, err, sizeof(err));
    if (s->public_set == NULL) {
        COFRE_LOG(COFRE_LOG_ERROR, NULL, "the signing key records do not form a JWK Set",
                  COFRE_LF_STR("error", err));
        cofre_jbuf_release(&b);
        return COFRE_EIO;
    }
    s->jwks = cofre_jbuf_steal(&b, &s->jwks_len);
    return 0;
}

int cofre_keyring_reload(cofre_keyring_t *kr, cofre_registry_t *reg, int64_t now)
{
    snapshot_t *s = cofre_calloc(1, sizeof(*s));
    cofre_key_record_t recs[COFRE_REGISTRY_KEYS_MAX];
    int rc = reg->ops->key_list(reg, recs, COFRE_REGISTRY_KEYS_MAX, &s->n);
    if (rc != 0) {
        free(s);
        return rc;
    }
    pthread_rwlock_rdlock(&kr->lock);
    for (size_t i = 0; i < s->n; i++) {
        snap_key_t *k = &s->keys[i];
        k->rec = recs[i];
        const char *state = cofre_keyring_state(recs, s->n, i, now, kr->token_ttl_s);
        k->published = strcmp(state, "retired") != 0;
        bool signs = strcmp(state, "current") == 0 || strcmp(state, "next") == 0;
        if (signs && (k->priv = reuse_key(kr->snap, k->rec.kid)) == NULL)
            k->priv = load_key_file(kr->dir, k->rec.kid);
    }
    pthread_rwlock_unlock(&kr->lock);
    if (publish(s) != 0) {
        snapshot_free(s);
        return COFRE_EIO;
    }
    pthread_rwlock_wrlock(&kr->lock);
    snapshot_t *old = kr->snap;
    kr->snap = s;
    pthread_rwlock_unlock(&kr->lock);
    snapshot_free(old);
    return 0;
}

/* The newest key active at now with its private key; NULL when none. Under the lock. */
static const snap_key_t *signing_key(const snapshot_t *s, int64_t now)
{
    for (size_t i = s != NULL ? s->n : 0; i > 0; i--) {
        const snap_key_t *k = &s->keys[i - 1];
        if (k->rec.activates_at <= now && k->priv != NULL)
            return k;
        if (k->rec.activates_at <= now)
            return NULL; /* the current key cannot sign here: do not fall back to an older one */
    }
    return NULL;
}

int cofre_keyring_sign(cofre_keyring_t *kr, int64_t now, const char *claims, size_t len,
                       cofre_jbuf_t *out, char kid[COFRE_JWKS_KID_LEN + 1])
{
    pthread_rwlock_rdlock(&kr->lock);
    const snap_key_t *k = signing_key(kr->snap, now);
    int rc = COFRE_EUNAVAIL;
    if (k != NULL) {
        memcpy(kid, k->rec.kid, COFRE_JWKS_KID_LEN + 1);
        rc = cofre_jwt_sign(k->priv, k->rec.kid, claims, len, out);
    }
    pthread_rwlock_unlock(&kr->lock);
    return rc;
}

cofre_jwt_result_t cofre_keyring_verify(cofre_keyring_t *kr, const char *token, size_t len,
                                        const cofre_jwt_policy_t *policy, int64_t now,
                                        unsigned leeway_s, cofre_jwt_t *out)
{
    cofre_jwt_result_t r = cofre_jwt_decode(token, len, policy, out);
    if (r == COFRE_JWT_OK)
        r = cofre_jwt_check_time(out, now, leeway_s);
    if (r != COFRE_JWT_OK)
        return r;
    pthread_rwlock_rdlock(&kr->lock);
    EVP_PKEY *key = kr->snap != NULL ? cofre_jwks_find(kr->snap->public_set, out->kid) : NULL;
    r = key == NULL ? COFRE_JWT_UNKNOWN_KID : cofre_jwt_verify_signature(token, out, key);
    pthread_rwlock_unlock(&kr->lock);
    return r;
}

void cofre_keyring_jwks(cofre_keyring_t *kr, cofre_jbuf_t *b)
{
    pthread_rwlock_rdlock(&kr->lock);
    if (kr->snap != NULL)
        cofre_jbuf_append(b, kr->snap->jwks, kr->snap->jwks_len);
    else
        cofre_jbuf_appendz(b, "{\"keys\":[]}");
    pthread_rwlock_unlock(&kr->lock);
}

bool cofre_keyring_ready(cofre_keyring_t *kr, int64_t now)
{
    pthread_rwlock_rdlock(&kr->lock);
    bool ok = signing_key(kr->snap, now) != NULL;
    pthread_rwlock_unlock(&kr->lock);
    return ok;
}

size_t cofre_keyring_published(cofre_keyring_t *kr)
{
    pthread_rwlock_rdlock(&kr->lock);
    size_t n = kr->snap != NULL && kr->snap->public_set != NULL ? kr->snap->public_set->n : 0;
    pthread_rwlock_unlock(&kr->lock);
    return n;
}
