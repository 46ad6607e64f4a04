/*
 * auth.c: the token check: configuration, the key set and the thread that keeps it fresh,
 * the verified-token cache, and the HTTP hook.
 *
 * Threads: event loops call cofre_auth_check. The key set is swapped by the refresh thread
 * under a rwlock that loops hold (read) only around a signature verification. The cache is
 * set-associative, one mutex per set of CACHE_WAYS entries, so loops rarely meet.
 */
#include "cofre/auth.h"

#include "cofre/common.h"
#include "cofre/fetch.h"
#include "cofre/jwks.h"
#include "cofre/log.h"
#include "cofre/metrics.h"
#include "cofre/scope.h"

#include <errno.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define CACHE_WAYS            8
#define CACHE_MAX             (1u << 22)
#define DIGEST_BYTES          32
#define BACKOFF_MAX_S         10
#define REFRESH_DEFAULT_S     60
#define LEEWAY_DEFAULT_S      30
#define CACHE_DEFAULT         16384
#define REVOKED_MAX           10000
#define REVOCATIONS_BYTES_MAX (2 * 1024 * 1024)
#define NS_PER_S              1000000000ull

const char cofre_auth_usage[] =
    "Token checks (every /v1 route needs a valid access token):\n"
    "  COFRE_AUTH            on (default) | off: off is for development and benchmarks only\n"
    "  COFRE_AUTH_ISSUER     the exact \"iss\" of accepted tokens (required when on)\n"
    "  COFRE_AUTH_AUDIENCE   the audience tokens must name in \"aud\" (required when on)\n"
    "  COFRE_JWKS_URL        http(s) URL of the issuer's JWK Set, or\n"
    "  COFRE_JWKS_FILE       a file holding the JWK Set\n"
    "  COFRE_JWKS_REFRESH_S  seconds between key set refreshes (default 60)\n"
    "  COFRE_AUTH_LEEWAY_S   clock skew allowed on exp/nbf/iat, 0..60 (default 30)\n"
    "  COFRE_AUTH_CACHE_MAX  verified tokens cached (default 16384; 0 disables the cache)\n"
    "  COFRE_AUTH_REVOCATIONS_URL        the issuer's list of disabled clients, whose tokens\n"
    "                                    are refused before they expire (optional)\n"
    "  COFRE_AUTH_REVOCATIONS_REFRESH_S  seconds between fetches of that list (default 10)\n";

/* Outcomes counted in cofre_token_checks_total{result}. */
enum {
    RESULT_CACHED = COFRE_JWT_RESULT_COUNT_, /* after the cofre_jwt_result_t values */
    RESULT_MISSING,
    RESULT_FORBIDDEN,
    RESULT_COUNT_
};

typedef struct cache_entry {
    uint8_t digest[DIGEST_BYTES];
    int64_t exp; /* 0: empty */
    uint32_t epoch;
    cofre_caller_t caller;
} cache_entry_t;

typedef struct cache_set {
    pthread_mutex_t lock;
    cache_entry_t ways[CACHE_WAYS];
} cache_set_t;

struct cofre_auth {
    cofre_auth_config_t cfg;
    cofre_jwt_policy_t policy;
    cofre_url_t url;
    cofre_url_t revocations_url;
    EVP_MD *sha256; /* fetched once: an implicit fetch per digest costs more than the digest */

    pthread_rwlock_t revoked_lock;
    char (*revoked)[COFRE_CLIENT_ID_MAX + 1]; /* sorted client ids */
    _Atomic size_t nrevoked;

    pthread_rwlock_t keys_lock;
    cofre_jwks_t *keys;
    _Atomic size_t nkeys;
    _Atomic uint32_t epoch; /* bumped when a key is withdrawn: older cache entries are stale */

    cache_set_t *sets;
    size_t nsets; /* a power of two, or 0 without a cache */

    pthread_t thread;
    pthread_mutex_t mu; /* guards the fields below */
    pthread_cond_t cond;
    bool stop;
    bool want_refetch;
    _Atomic bool refetch_pending; /* a cheap check before taking mu on the hot path */

    bool (*prev_ready)(void *data, const char **reason);
    void *prev_ready_data;

    cofre_series_t *results[RESULT_COUNT_];
    cofre_series_t *refresh_ok;
    cofre_series_t *refresh_error;
    cofre_series_t *revocations_ok;
    cofre_series_t *revocations_error;
    cofre_series_t *keys_gauge;
};

/* ---- configuration ---------------------------------------------------------------------- */

/* Reads and parses a JWKS file. Returns the set or NULL with err filled. */
static cofre_jwks_t *load_file(const char *path, char *err, size_t errsz)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        snprintf(err, errsz, "cannot open: %s", strerror(errno));
        return NULL;
    }
    char *buf = cofre_malloc(COFRE_JWKS_BYTES_MAX + 1);
    size_t n = fread(buf, 1, COFRE_JWKS_BYTES_MAX + 1, f);
    bool read_error = ferror(f) != 0;
    fclose(f);
    cofre_jwks_t *set = NULL;
    if (read_error)
        snprintf(err, errsz, "cannot read");
    else if (n > COFRE_JWKS_BYTES_MAX)
        snprintf(err, errsz, "larger than %d bytes", COFRE_JWKS_BYTES_MAX);
    else
        set = cofre_jwks_parse(buf, n, err, errsz);
    free(buf);
    return set;
}

static void read_sources(cofre_config_t *c, cofre_auth_config_t *cfg)
{
    const char *url = cofre_config_str(c, "COFRE_JWKS_URL", NULL);
    const char *file = cofre_config_str(c, "COFRE_JWKS_FILE", NULL);
    if (url != NULL && url[0] == '\0')
        url = NULL;
    if (file != NULL && file[0] == '\0')
        file = NULL;
    if (url == NULL && file == NULL) {
        cofre_config_reject(c, "COFRE_JWKS_URL", NULL,
                            "the issuer's JWK Set URL (or set COFRE_JWKS_FILE), or COFRE_AUTH=off");
        return;
    }
    if (url != NULL && file != NULL) {
        cofre_config_reject(c, "COFRE_JWKS_FILE", file, "unset when COFRE_JWKS_URL is set");
        return;
    }
    cofre_url_t parsed;
    if (url != NULL && cofre_fetch_parse_url(url, &parsed) != 0)
        cofre_config_reject(c, "COFRE_JWKS_URL", url, "an http:// or https:// URL");
    if (file != NULL) {
        char err[200];
        cofre_jwks_t *set = load_file(file, err, sizeof(err));
        if (set != NULL && set->n == 0)
            snprintf(err, sizeof(err), "no ES256 P-256 key in it");
        if (set == NULL || set->n == 0) {
            char expected[300];
            snprintf(expected, sizeof(expected), "a readable JWK Set file (%s)", err);
            cofre_config_reject(c, "COFRE_JWKS_FILE", file, expected);
        }
        cofre_jwks_free(set);
    }
    cfg->jwks_url = url;
    cfg->jwks_file = file;
}

void cofre_auth_config_read(cofre_config_t *c, cofre_auth_config_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    static const char *const modes[] = {"on", "off", NULL};
    cfg->enabled = cofre_config_enum(c, "COFRE_AUTH", 0, modes) == 0;
    cfg->leeway_s = (unsigned)cofre_config_int(c, "COFRE_AUTH_LEEWAY_S", LEEWAY_DEFAULT_S, 0,
                                               COFRE_JWT_LEEWAY_MAX_S);
    cfg->refresh_s =
        (unsigned)cofre_config_int(c, "COFRE_JWKS_REFRESH_S", REFRESH_DEFAULT_S, 1, 86400);
    cfg->cache_max =
        (size_t)cofre_config_int(c, "COFRE_AUTH_CACHE_MAX", CACHE_DEFAULT, 0, CACHE_MAX);
    cfg->revocations_refresh_s =
        (unsigned)cofre_config_int(c, "COFRE_AUTH_REVOCATIONS_REFRESH_S", 10, 1, 3600);
    const char *rev = cofre_config_str(c, "COFRE_AUTH_REVOCATIONS_URL", NULL);
    cofre_url_t parsed;
    if (rev != NULL && rev[0] != '\0' && cofre_fetch_parse_url(rev, &parsed) != 0)
        cofre_config_reject(c, "COFRE_AUTH_REVOCATIONS_URL", rev, "an http:// or https:// URL");
    cfg->revocations_url = rev != NULL && rev[0] != '\0' ? rev : NULL;
    if (!cfg->enabled)
        return;
    cfg->issuer = cofre_config_required(c, "COFRE_AUTH_ISSUER");
    cfg->audience = cofre_config_required(c, "COFRE_AUTH_AUDIENCE");
    if (cofre_config_ok(c))
        read_sources(c, cfg);
}

/* ---- the key set ------------------------------------------------------------------------ */

/* Installs set (taking it) unless it holds the same kids as the current one. */
static void install_keys(cofre_auth_t *a, cofre_jwks_t *set)
{
    pthread_rwlock_wrlock(&a->keys_lock);
    cofre_jwks_t *old = a->keys;
    bool same = old != NULL && cofre_jwks_superset(set, old) && cofre_jwks_superset(old, set);
    if (same) {
        pthread_rwlock_unlock(&a->keys_lock);
        cofre_jwks_free(set);
        return;
    }
    if (!cofre_jwks_superset(set, old))
        atomic_fetch_add(&a->epoch, 1); /* a key was withdrawn: forget what it verified */
    a->keys = set;
    atomic_store(&a->nkeys, set->n);
    pthread_rwlock_unlock(&a->keys_lock);
    cofre_jwks_free(old);
    cofre_gauge_set(a->keys_gauge, (double)set->n);
    COFRE_LOG(COFRE_LOG_INFO, NULL, "token keys loaded", COFRE_LF_INT("keys", set->n),
              COFRE_LF_STR("source", a->cfg.jwks_url != NULL ? "url" : "file"));
}

/* Fetches or reads the key set once. Returns true when a usable set was installed or kept. */
static bool refresh_once(cofre_auth_t *a)
{
    char err[256] = "";
    cofre_jwks_t *set = NULL;
    if (a->cfg.jwks_url != NULL) {
        cofre_fetch_response_t res;
        int rc = cofre_fetch_get(&a->url, COFRE_AUTH_FETCH_TIMEOUT_MS, COFRE_JWKS_BYTES_MAX, &res,
                                 err, sizeof(err));
        if (rc == 0 && res.status != 200)
            snprintf(err, sizeof(err), "the JWKS URL answered %d", res.status);
        else if (rc == 0)
            set = cofre_jwks_parse(res.body, res.len, err, sizeof(err));
        free(res.body);
    } else {
        set = load_file(a->cfg.jwks_file, err, sizeof(err));
    }
    if (set != NULL && set->n == 0) {
        snprintf(err, sizeof(err), "the key set has no ES256 P-256 key");
        cofre_jwks_free(set);
        set = NULL;
    }
    if (set == NULL) {
        cofre_counter_inc(a->refresh_error);
        COFRE_LOG(COFRE_LOG_WARN, NULL, "token keys not refreshed", COFRE_LF_STR("error", err),
                  COFRE_LF_INT("keys_kept", atomic_load(&a->nkeys)));
        return false;
    }
    cofre_counter_inc(a->refresh_ok);
    install_keys(a, set);
    return true;
}

/* ---- the revocation list ---------------------------------------------------------------- */

static int compare_ids(const void *a, const void *b)
{
    return strcmp(a, b);
}

long cofre_auth_parse_revocations(const char *json, size_t len,
                                  char (**ids)[COFRE_CLIENT_ID_MAX + 1])
{
    *ids = NULL;
    json_error_t jerr;
    json_t *doc = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    const json_t *clients = json_object_get(doc, "clients");
    if (doc == NULL || !json_is_array(clients) || json_array_size(clients) > REVOKED_MAX) {
        json_decref(doc);
        return -1;
    }
    size_t n = json_array_size(clients);
    char(*out)[COFRE_CLIENT_ID_MAX + 1] = cofre_calloc(n > 0 ? n : 1, sizeof(*out));
    for (size_t i = 0; i < n; i++) {
        const json_t *id = json_object_get(json_array_get(clients, i), "client_id");
        if (!json_is_string(id) || json_string_length(id) < 1 ||
            json_string_length(id) > COFRE_CLIENT_ID_MAX) {
            free(out);
            json_decref(doc);
            return -1;
        }
        memcpy(out[i], json_string_value(id), json_string_length(id) + 1);
    }
    json_decref(doc);
    qsort(out, n, sizeof(*out), compare_ids);
    *ids = out;
    return (long)n;
}

static bool refresh_revocations(cofre_auth_t *a)
{
    char err[256] = "";
    cofre_fetch_response_t res;
    int rc = cofre_fetch_get(&a->revocations_url, COFRE_AUTH_FETCH_TIMEOUT_MS,
                             REVOCATIONS_BYTES_MAX, &res, err, sizeof(err));
    char(*ids)[COFRE_CLIENT_ID_MAX + 1] = NULL;
    long n = -1;
    if (rc == 0 && res.status != 200)
        snprintf(err, sizeof(err), "the revocations URL answered %d", res.status);
    else if (rc == 0 && (n = cofre_auth_parse_revocations(res.body, res.len, &ids)) < 0)
        snprintf(err, sizeof(err), "the revocation list is malformed");
    free(res.body);
    if (n < 0) {
        cofre_counter_inc(a->revocations_error);
        COFRE_LOG(COFRE_LOG_WARN, NULL, "revocation list not refreshed", COFRE_LF_STR("error", err),
                  COFRE_LF_INT("revoked_kept", atomic_load(&a->nrevoked)));
        return false;
    }
    cofre_counter_inc(a->revocations_ok);
    pthread_rwlock_wrlock(&a->revoked_lock);
    char(*old)[COFRE_CLIENT_ID_MAX + 1] = a->revoked;
    size_t old_n = atomic_load(&a->nrevoked);
    a->revoked = ids;
    atomic_store(&a->nrevoked, (size_t)n);
    pthread_rwlock_unlock(&a->revoked_lock);
    free(old);
    if ((size_t)n != old_n)
        COFRE_LOG(COFRE_LOG_INFO, NULL, "revocation list loaded", COFRE_LF_INT("clients", n));
    return true;
}

static bool revoked(cofre_auth_t *a, const char *client_id)
{
    if (atomic_load_explicit(&a->nrevoked, memory_order_relaxed) == 0)
        return false;
    pthread_rwlock_rdlock(&a->revoked_lock);
    bool found = a->revoked != NULL && bsearch(client_id, a->revoked, atomic_load(&a->nrevoked),
                                               sizeof(*a->revoked), compare_ids) != NULL;
    pthread_rwlock_unlock(&a->revoked_lock);
    return found;
}

size_t cofre_auth_revoked_count(cofre_auth_t *a)
{
    return atomic_load(&a->nrevoked);
}

static void deadline_after(struct timespec *ts, uint64_t mono_ns)
{
    ts->tv_sec = (time_t)(mono_ns / NS_PER_S);
    ts->tv_nsec = (long)(mono_ns % NS_PER_S);
}

/* One periodic fetch: when it is due next, and its backoff after failures. */
typedef struct schedule {
    uint64_t next_ns;
    uint64_t backoff_s;
    unsigned period_s;
} schedule_t;

static void reschedule(schedule_t *sc, bool ok, uint64_t now)
{
    sc->next_ns = now + (ok ? sc->period_s : sc->backoff_s) * NS_PER_S;
    sc->backoff_s = ok ? 1 : COFRE_MIN(sc->backoff_s * 2, BACKOFF_MAX_S);
}

/*
 * The refresh thread: refreshes the key set when its period is due, or on request (an unknown
 * kid) once COFRE_AUTH_REFETCH_MIN_S have passed since the last attempt, and the revocation
 * list when its period is due; retries failures with a backoff of 1 s doubling to
 * BACKOFF_MAX_S.
 */
static void *refresh_main(void *arg)
{
    cofre_auth_t *a = arg;
    pthread_setname_np(pthread_self(), "jwks");
    bool have_keys = atomic_load(&a->nkeys) > 0;
    schedule_t keys = {.backoff_s = 1, .period_s = a->cfg.refresh_s};
    keys.next_ns = have_keys ? cofre_now_mono_ns() + keys.period_s * NS_PER_S : 0;
    schedule_t revs = {.backoff_s = 1, .period_s = a->cfg.revocations_refresh_s};
    bool with_revs = a->cfg.revocations_url != NULL;
    uint64_t last_ns = have_keys ? cofre_now_mono_ns() : 0;
    pthread_mutex_lock(&a->mu);
    while (!a->stop) {
        uint64_t now = cofre_now_mono_ns();
        uint64_t refetch_at = last_ns + COFRE_AUTH_REFETCH_MIN_S * NS_PER_S;
        bool keys_due =
            now >= keys.next_ns || (a->want_refetch && (last_ns == 0 || now >= refetch_at));
        bool revs_due = with_revs && now >= revs.next_ns;
        if (!keys_due && !revs_due) {
            uint64_t wake = a->want_refetch ? COFRE_MIN(keys.next_ns, refetch_at) : keys.next_ns;
            if (with_revs)
                wake = COFRE_MIN(wake, revs.next_ns);
            struct timespec ts;
            deadline_after(&ts, wake);
            pthread_cond_timedwait(&a->cond, &a->mu, &ts);
            continue;
        }
        if (keys_due)
            a->want_refetch = false;
        pthread_mutex_unlock(&a->mu);
        bool keys_ok = keys_due && refresh_once(a);
        if (keys_due)
            atomic_store(&a->refetch_pending, false);
        bool revs_ok = revs_due && refresh_revocations(a);
        pthread_mutex_lock(&a->mu);
        now = cofre_now_mono_ns();
        if (keys_due) {
            last_ns = now;
            reschedule(&keys, keys_ok, now);
        }
        if (revs_due)
            reschedule(&revs, revs_ok, now);
    }
    pthread_mutex_unlock(&a->mu);
    return NULL;
}

static void request_refetch(cofre_auth_t *a)
{
    if (atomic_exchange(&a->refetch_pending, true))
        return; /* already asked; the thread will get to it */
    pthread_mutex_lock(&a->mu);
    a->want_refetch = true;
    pthread_cond_signal(&a->cond);
    pthread_mutex_unlock(&a->mu);
}

/* ---- the cache -------------------------------------------------------------------------- */

static void cache_init(cofre_auth_t *a, size_t max)
{
    if (max == 0)
        return;
    size_t nsets = 1;
    while (nsets * CACHE_WAYS < max)
        nsets *= 2;
    a->nsets = nsets;
    a->sets = cofre_calloc(nsets, sizeof(cache_set_t));
    for (size_t i = 0; i < nsets; i++)
        pthread_mutex_init(&a->sets[i].lock, NULL);
}

static cache_set_t *cache_set(cofre_auth_t *a, const uint8_t digest[DIGEST_BYTES])
{
    uint64_t h;
    memcpy(&h, digest, sizeof(h));
    return &a->sets[h & (a->nsets - 1)];
}

/* Looks digest up. Returns true with caller and *exp filled on a hit. */
static bool cache_get(cofre_auth_t *a, const uint8_t digest[DIGEST_BYTES], cofre_caller_t *caller,
                      int64_t *exp)
{
    if (a->nsets == 0)
        return false;
    uint32_t epoch = atomic_load_explicit(&a->epoch, memory_order_acquire);
    cache_set_t *set = cache_set(a, digest);
    bool hit = false;
    pthread_mutex_lock(&set->lock);
    for (size_t i = 0; i < CACHE_WAYS && !hit; i++) {
        const cache_entry_t *e = &set->ways[i];
        if (e->exp != 0 && e->epoch == epoch && memcmp(e->digest, digest, DIGEST_BYTES) == 0) {
            *caller = e->caller;
            *exp = e->exp;
            hit = true;
        }
    }
    pthread_mutex_unlock(&set->lock);
    return hit;
}

/* Keeps a verified token: replaces an empty, stale or expired way, else the soonest to expire. */
static void cache_put(cofre_auth_t *a, const uint8_t digest[DIGEST_BYTES], uint32_t epoch,
                      int64_t exp, const cofre_caller_t *caller, int64_t now_s)
{
    if (a->nsets == 0)
        return;
    cache_set_t *set = cache_set(a, digest);
    pthread_mutex_lock(&set->lock);
    cache_entry_t *victim = &set->ways[0];
    for (size_t i = 0; i < CACHE_WAYS; i++) {
        cache_entry_t *e = &set->ways[i];
        if (e->exp == 0 || e->epoch != epoch || e->exp + (int64_t)a->cfg.leeway_s <= now_s) {
            victim = e;
            break;
        }
        if (e->exp < victim->exp)
            victim = e;
    }
    memcpy(victim->digest, digest, DIGEST_BYTES);
    victim->exp = exp;
    victim->epoch = epoch;
    victim->caller = *caller;
    pthread_mutex_unlock(&set->lock);
}

/* ---- checking --------------------------------------------------------------------------- */

static int64_t now_s(void)
{
    return (int64_t)(cofre_now_wall_us() / 1000000u);
}

static void count(cofre_auth_t *a, int result)
{
    cofre_counter_inc(a->results[result]);
}

/* Full verification of a token not in the cache. */
static cofre_jwt_result_t verify(cofre_auth_t *a, const char *token, size_t len,
                                 const uint8_t digest[DIGEST_BYTES], cofre_caller_t *caller,
                                 int64_t now)
{
    cofre_jwt_t jwt;
    cofre_jwt_result_t r = cofre_jwt_decode(token, len, &a->policy, &jwt);
    if (r == COFRE_JWT_OK)
        r = cofre_jwt_check_time(&jwt, now, a->cfg.leeway_s);
    if (r != COFRE_JWT_OK)
        return r;
    pthread_rwlock_rdlock(&a->keys_lock);
    uint32_t epoch = atomic_load_explicit(&a->epoch, memory_order_acquire);
    EVP_PKEY *key = cofre_jwks_find(a->keys, jwt.kid);
    r = key == NULL ? COFRE_JWT_UNKNOWN_KID : cofre_jwt_verify_signature(token, &jwt, key);
    pthread_rwlock_unlock(&a->keys_lock);
    if (r == COFRE_JWT_UNKNOWN_KID)
        request_refetch(a);
    if (r != COFRE_JWT_OK)
        return r;
    memset(caller, 0, sizeof(*caller));
    memcpy(caller->client_id, jwt.client_id, sizeof(jwt.client_id));
    memcpy(caller->owner, jwt.sub, sizeof(jwt.sub));
    caller->scopes = jwt.scopes;
    cache_put(a, digest, epoch, jwt.exp, caller, now);
    return COFRE_JWT_OK;
}

bool cofre_auth_check(cofre_auth_t *a, const char *token, size_t len, cofre_caller_t *caller,
                      cofre_jwt_result_t *why)
{
    if (len == 0 || len > COFRE_JWT_BYTES_MAX) {
        *why = COFRE_JWT_MALFORMED;
        count(a, *why);
        return false;
    }
    uint8_t digest[DIGEST_BYTES];
    COFRE_ASSERT(EVP_Digest(token, len, digest, NULL, a->sha256, NULL) == 1);
    int64_t now = now_s();
    int64_t exp;
    int result;
    if (cache_get(a, digest, caller, &exp)) {
        *why = now >= exp + (int64_t)a->cfg.leeway_s ? COFRE_JWT_EXPIRED : COFRE_JWT_OK;
        result = *why == COFRE_JWT_OK ? RESULT_CACHED : (int)*why;
    } else {
        *why = verify(a, token, len, digest, caller, now);
        result = (int)*why;
    }
    if (*why == COFRE_JWT_OK && revoked(a, caller->client_id))
        result = (int)(*why = COFRE_JWT_REVOKED);
    count(a, result);
    return *why == COFRE_JWT_OK;
}

/* The token of "Authorization: Bearer <token>"; NULL when absent or not exactly one. */
static const char *bearer_token(cofre_req_t *req, size_t *len)
{
    h2o_req_t *r = req->h2o;
    ssize_t i = h2o_find_header(&r->headers, H2O_TOKEN_AUTHORIZATION, -1);
    if (i < 0 || h2o_find_header(&r->headers, H2O_TOKEN_AUTHORIZATION, i) >= 0)
        return NULL;
    h2o_iovec_t v = r->headers.entries[i].value;
    if (v.len < 7 || strncasecmp(v.base, "bearer ", 7) != 0)
        return NULL;
    const char *p = v.base + 7;
    const char *end = v.base + v.len;
    while (p < end && *p == ' ')
        p++;
    while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    *len = (size_t)(end - p);
    return *len > 0 ? p : NULL;
}

static const char *result_detail(cofre_jwt_result_t r)
{
    switch (r) {
    case COFRE_JWT_EXPIRED:
        return "the access token has expired";
    case COFRE_JWT_NOT_YET_VALID:
        return "the access token is not valid yet";
    case COFRE_JWT_UNKNOWN_KID:
        return "the access token is signed with an unknown key";
    case COFRE_JWT_REVOKED:
        return "the access token's client is disabled";
    default:
        return "the access token is invalid";
    }
}

static void scope_problem(uint32_t scopes, cofre_problem_t *err)
{
    char names[COFRE_SCOPE_LIST_MAX];
    cofre_scope_format(scopes, names);
    cofre_problem_set(err, COFRE_P_FORBIDDEN, "this operation needs one of the scopes: %s", names);
}

static bool authenticate(void *data, cofre_req_t *req, uint32_t scopes, cofre_problem_t *err)
{
    cofre_auth_t *a = data;
    memset(&req->caller, 0, sizeof(req->caller)); /* nobody, until the token says otherwise */
    size_t len = 0;
    const char *token = bearer_token(req, &len);
    if (token == NULL) {
        count(a, RESULT_MISSING);
        cofre_problem_set(err, COFRE_P_UNAUTHORIZED,
                          "an access token is required: Authorization: Bearer <token>");
        return false;
    }
    cofre_caller_t caller;
    cofre_jwt_result_t why;
    if (!cofre_auth_check(a, token, len, &caller, &why)) {
        cofre_problem_set(err, COFRE_P_UNAUTHORIZED, "%s", result_detail(why));
        return false;
    }
    req->caller = caller;
    if ((caller.scopes & scopes) == 0) {
        count(a, RESULT_FORBIDDEN);
        scope_problem(scopes, err);
        return false;
    }
    return true;
}

/* ---- life cycle ------------------------------------------------------------------------- */

static cofre_metric_t *results_family;
static cofre_metric_t *refresh_family;
static cofre_metric_t *revocations_family;
static cofre_metric_t *keys_family;

static void register_metrics(void)
{
    results_family = cofre_metric_counter(
        "cofre_token_checks_total",
        "Access token checks by result: cached, ok (verified), missing, forbidden, or why the "
        "token was refused.",
        "result");
    refresh_family = cofre_metric_counter("cofre_jwks_refreshes_total",
                                          "Key set refreshes by result (ok, error).", "result");
    revocations_family =
        cofre_metric_counter("cofre_revocations_refreshes_total",
                             "Revocation list refreshes by result (ok, error).", "result");
    keys_family =
        cofre_metric_gauge("cofre_jwks_keys", "Token signing keys currently known.", NULL);
}

static const char *result_label(int r)
{
    switch (r) {
    case RESULT_CACHED:
        return "cached";
    case RESULT_MISSING:
        return "missing";
    case RESULT_FORBIDDEN:
        return "forbidden";
    default:
        return cofre_jwt_result_name((cofre_jwt_result_t)r);
    }
}

static void init_metrics(cofre_auth_t *a)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, register_metrics);
    for (int r = 0; r < RESULT_COUNT_; r++)
        a->results[r] = cofre_metric_with(results_family, (const char *[]){result_label(r)});
    a->refresh_ok = cofre_metric_with(refresh_family, (const char *[]){"ok"});
    a->refresh_error = cofre_metric_with(refresh_family, (const char *[]){"error"});
    a->revocations_ok = cofre_metric_with(revocations_family, (const char *[]){"ok"});
    a->revocations_error = cofre_metric_with(revocations_family, (const char *[]){"error"});
    a->keys_gauge = cofre_metric_with(keys_family, NULL);
}

cofre_auth_t *cofre_auth_start(const cofre_auth_config_t *cfg)
{
    if (!cfg->enabled) {
        cofre_log_msg(COFRE_LOG_WARN, NULL,
                      "token checks are OFF (COFRE_AUTH=off): every caller is the local admin "
                      "client; use this only for development and benchmarks");
        return NULL;
    }
    cofre_auth_t *a = cofre_calloc(1, sizeof(*a));
    a->cfg = *cfg;
    a->policy = (cofre_jwt_policy_t){.issuer = cfg->issuer, .audience = cfg->audience};
    if (cfg->jwks_url != NULL)
        COFRE_ASSERT(cofre_fetch_parse_url(cfg->jwks_url, &a->url) == 0);
    if (cfg->revocations_url != NULL)
        COFRE_ASSERT(cofre_fetch_parse_url(cfg->revocations_url, &a->revocations_url) == 0);
    pthread_rwlock_init(&a->revoked_lock, NULL);
    a->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    COFRE_ASSERT(a->sha256 != NULL);
    pthread_rwlock_init(&a->keys_lock, NULL);
    pthread_mutex_init(&a->mu, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&a->cond, &attr);
    pthread_condattr_destroy(&attr);
    cache_init(a, cfg->cache_max);
    init_metrics(a);
    if (cfg->jwks_file != NULL)
        refresh_once(a); /* validated at configuration: the service starts with its keys */
    COFRE_ASSERT(pthread_create(&a->thread, NULL, refresh_main, a) == 0);
    return a;
}

static bool ready(void *data, const char **reason)
{
    cofre_auth_t *a = data;
    if (!cofre_auth_ready(a, reason))
        return false;
    return a->prev_ready == NULL || a->prev_ready(a->prev_ready_data, reason);
}

void cofre_auth_attach(cofre_auth_t *a, cofre_http_config_t *http)
{
    if (a == NULL)
        return;
    a->prev_ready = http->ready;
    a->prev_ready_data = http->ready_data;
    http->ready = ready;
    http->ready_data = a;
    http->authenticate = authenticate;
    http->authenticate_data = a;
}

bool cofre_auth_ready(cofre_auth_t *a, const char **reason)
{
    if (atomic_load(&a->nkeys) > 0)
        return true;
    *reason = "no token signing keys yet (JWKS not loaded)";
    return false;
}

size_t cofre_auth_key_count(cofre_auth_t *a)
{
    return atomic_load(&a->nkeys);
}

void cofre_auth_free(cofre_auth_t *a)
{
    if (a == NULL)
        return;
    pthread_mutex_lock(&a->mu);
    a->stop = true;
    pthread_cond_signal(&a->cond);
    pthread_mutex_unlock(&a->mu);
    pthread_join(a->thread, NULL);
    for (size_t i = 0; i < a->nsets; i++)
        pthread_mutex_destroy(&a->sets[i].lock);
    free(a->sets);
    cofre_jwks_free(a->keys);
    EVP_MD_free(a->sha256);
    free(a->revoked);
    pthread_rwlock_destroy(&a->revoked_lock);
    pthread_rwlock_destroy(&a->keys_lock);
    pthread_mutex_destroy(&a->mu);
    pthread_cond_destroy(&a->cond);
    free(a);
}
