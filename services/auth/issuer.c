/*
 * issuer.c: the token endpoint, introspection, the published metadata, and the keeper thread.
 *
 * A grant is one token or introspection request on its way through a hashing worker. What
 * the loop learnt (credentials, requested scopes, address, trace) goes in; the answer comes
 * back as a status and a body. The client secret is wiped as soon as it was verified.
 */
#include "auth/issuer.h"

#include "auth/oauth.h"
#include "auth/registry.h"
#include "cofre/common.h"
#include "cofre/jbuf.h"
#include "cofre/log.h"
#include "cofre/metrics.h"
#include "cofre/scope.h"
#include "cofre/uuid.h"

#include <arpa/inet.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define ADDRESS_MAX 64
#define NS_PER_MS   1000000ull
#define REVOKED_MAX 10000 /* disabled clients listed at most */

enum grant_kind { GRANT_TOKEN, GRANT_INTROSPECT };

/* Why a request failed, counted in cofre_auth_failures_total{reason}. */
enum failure {
    F_NONE,
    F_UNKNOWN_CLIENT,
    F_BAD_SECRET,
    F_DISABLED_CLIENT,
    F_INVALID_CLIENT, /* malformed or missing credentials */
    F_INVALID_REQUEST,
    F_INVALID_SCOPE,
    F_UNSUPPORTED_GRANT,
    F_THROTTLED,
    F_COUNT_
};

static const char *const failure_names[F_COUNT_] = {
    [F_NONE] = "none",
    [F_UNKNOWN_CLIENT] = "unknown_client",
    [F_BAD_SECRET] = "bad_secret",
    [F_DISABLED_CLIENT] = "disabled_client",
    [F_INVALID_CLIENT] = "invalid_client",
    [F_INVALID_REQUEST] = "invalid_request",
    [F_INVALID_SCOPE] = "invalid_scope",
    [F_UNSUPPORTED_GRANT] = "unsupported_grant_type",
    [F_THROTTLED] = "throttled",
};

struct cofre_issuer {
    cofre_issuer_config_t cfg;
    cofre_keyring_t *keys;
    cofre_workers_t *hashers;
    cofre_throttle_t *by_client;
    cofre_throttle_t *by_address;
    char dummy_hash[COFRE_REGISTRY_HASH_MAX];
    char *metadata; /* the openid-configuration document */
    size_t metadata_len;
    char proxies[COFRE_ISSUER_PROXIES_MAX][ADDRESS_MAX];
    size_t nproxies;

    pthread_mutex_t revoked_lock;
    char *revoked; /* the /oauth/revocations document */
    size_t revoked_len;

    _Atomic bool db_up;
    pthread_t keeper;
    pthread_mutex_t keeper_mu;
    pthread_cond_t keeper_cond;
    bool keeper_stop;

    cofre_series_t *issued;
    cofre_series_t *failures[F_COUNT_];
    cofre_series_t *hash_seconds;
    cofre_series_t *introspected_active;
    cofre_series_t *introspected_inactive;
    cofre_series_t *keys_gauge;
};

typedef struct grant {
    cofre_task_t task; /* first: the worker pool's handle */
    cofre_issuer_t *is;
    enum grant_kind kind;
    cofre_oauth_client_auth_t cred;
    bool scope_given;
    uint32_t scope_requested;
    char *token; /* introspection: the token asked about */
    size_t token_len;
    char address[ADDRESS_MAX];
    char traceparent[COFRE_TRACEPARENT_LEN + 1];
    char request_id[COFRE_REQUEST_ID_MAX + 1];
    /* the answer */
    int status;
    enum failure failure;
    bool auth_failed; /* counts against the throttles */
    bool problem;     /* the body is problem+json, not OAuth JSON */
    char *body;
    size_t body_len;
} grant_t;

static int64_t now_s(void)
{
    return (int64_t)(cofre_now_wall_us() / 1000000u);
}

static uint64_t now_ms(void)
{
    return cofre_now_mono_ns() / NS_PER_MS;
}

/* ---- answers ---------------------------------------------------------------------------- */

static void respond_oauth_error(cofre_req_t *req, cofre_oauth_error_t e, const char *description)
{
    cofre_jbuf_t b;
    cofre_jbuf_init(&b);
    cofre_oauth_error_json(e, description, &b);
    if (e == COFRE_OAUTH_INVALID_CLIENT)
        cofre_req_add_header(req, "www-authenticate", H2O_STRLIT("Basic realm=\"cofre\""));
    cofre_req_add_header(req, "pragma", H2O_STRLIT("no-cache"));
    cofre_req_respond_json(req, cofre_oauth_error_status(e), b.data, b.len);
    cofre_jbuf_release(&b);
}

static void respond_throttled(cofre_req_t *req, unsigned wait_s)
{
    cofre_problem_t p;
    cofre_problem_set(&p, COFRE_P_RATE_LIMITED,
                      "too many failed authentications from this client or address; retry in %u s",
                      wait_s);
    cofre_jbuf_t b;
    cofre_jbuf_init(&b);
    cofre_problem_render(&p, req->trace.request_id, &b);
    char retry[16];
    int n = snprintf(retry, sizeof(retry), "%u", wait_s);
    cofre_req_add_header(req, "retry-after", retry, (size_t)n);
    cofre_req_respond(req, 429, "application/problem+json", b.data, b.len);
    cofre_jbuf_release(&b);
}

/* Sets g's answer to an OAuth error. */
static void grant_error(grant_t *g, cofre_oauth_error_t e, enum failure f, const char *description)
{
    cofre_jbuf_t b;
    cofre_jbuf_init(&b);
    cofre_oauth_error_json(e, description, &b);
    g->status = cofre_oauth_error_status(e);
    g->failure = f;
    g->body = cofre_jbuf_steal(&b, &g->body_len);
}

static void grant_unavailable(grant_t *g, const char *detail)
{
    cofre_problem_t p;
    cofre_problem_set(&p, COFRE_P_UNAVAILABLE, "%s", detail);
    cofre_jbuf_t b;
    cofre_jbuf_init(&b);
    cofre_problem_render(&p, g->request_id, &b);
    g->status = 503;
    g->problem = true;
    g->body = cofre_jbuf_steal(&b, &g->body_len);
}

/* ---- the source address ----------------------------------------------------------------- */

static bool trusted_proxy(const cofre_issuer_t *is, const char *peer)
{
    for (size_t i = 0; i < is->nproxies; i++)
        if (strcmp(is->proxies[i], peer) == 0)
            return true;
    return false;
}

/*
 * The client's address: the peer, or, when the peer is a trusted proxy, the last address of
 * X-Forwarded-For (the one that proxy saw).
 */
static void source_address(cofre_issuer_t *is, cofre_req_t *req, char out[ADDRESS_MAX])
{
    const char *peer = cofre_req_peer(req);
    snprintf(out, ADDRESS_MAX, "%s", peer);
    if (!trusted_proxy(is, peer))
        return;
    size_t len = 0;
    const char *xff = cofre_req_header(req, "x-forwarded-for", &len);
    if (xff == NULL)
        return;
    const char *last = strrchr(xff, ',');
    last = last != NULL ? last + 1 : xff;
    while (*last == ' ')
        last++;
    char addr[ADDRESS_MAX];
    size_t n = strcspn(last, " ");
    if (n == 0 || n >= sizeof(addr))
        return;
    memcpy(addr, last, n);
    addr[n] = '\0';
    uint8_t bin[16];
    if (inet_pton(AF_INET, addr, bin) == 1 || inet_pton(AF_INET6, addr, bin) == 1)
        memcpy(out, addr, n + 1);
}

/* ---- events ----------------------------------------------------------------------------- */

static void grant_actor(const grant_t *g, const char *client_id, cofre_actor_t *a)
{
    *a =
        (cofre_actor_t){.client_id = client_id, .address = g->address, .request_id = g->request_id};
}

/* Records a failed authentication (best effort: a registry failure is logged, not answered). */
static void record_failure(cofre_registry_t *reg, const grant_t *g)
{
    cofre_jbuf_t b;
    cofre_jbuf_init(&b);
    cofre_jbuf_obj_begin(&b);
    cofre_jbuf_kstr(&b, "client_id", g->cred.client_id);
    cofre_jbuf_kstr(&b, "reason", failure_names[g->failure]);
    cofre_jbuf_kstr(&b, "method",
                    g->cred.method == COFRE_OAUTH_BASIC ? "client_secret_basic"
                                                        : "client_secret_post");
    cofre_jbuf_kstr(&b, "endpoint", g->kind == GRANT_TOKEN ? "token" : "introspect");
    cofre_jbuf_obj_end(&b);
    cofre_actor_t actor;
    grant_actor(g, NULL, &actor);
    cofre_event_t ev;
    cofre_registry_event(&ev, "cofre.auth.authentication.failed", g->cred.client_id, "failure",
                         b.data, &actor, g->traceparent);
    cofre_jbuf_release(&b);
    int rc = reg->ops->event_insert(reg, &ev);
    cofre_registry_event_release(&ev);
    if (rc != 0)
        COFRE_LOG(COFRE_LOG_WARN, NULL, "authentication failure not recorded in the outbox",
                  COFRE_LF_STR("error", cofre_strerror(rc)));
}

/* ---- worker side ------------------------------------------------------------------------ */

/*
 * Authenticates g's client: the registry lookup, then Argon2id against the stored hash (or
 * the dummy one, so unknown clients take as long). Fills client and returns true, or sets
 * g's answer and returns false.
 */
static bool authenticate_client(grant_t *g, cofre_registry_t *reg, cofre_client_t *client)
{
    cofre_issuer_t *is = g->is;
    int rc = reg->ops->client_get(reg, g->cred.client_id, client);
    if (rc != 0 && rc != COFRE_ENOENT) {
        atomic_store(&is->db_up, false);
        cofre_secret_wipe(g->cred.secret, sizeof(g->cred.secret));
        grant_unavailable(g, "the client registry is unavailable");
        return false;
    }
    uint64_t t0 = cofre_now_mono_ns();
    bool match = cofre_secret_verify(rc == 0 ? client->secret_hash : is->dummy_hash, g->cred.secret,
                                     g->cred.secret_len);
    cofre_histogram_observe(is->hash_seconds, (double)(cofre_now_mono_ns() - t0) / 1e9);
    cofre_secret_wipe(g->cred.secret, sizeof(g->cred.secret));
    enum failure f = rc != 0                    ? F_UNKNOWN_CLIENT
                     : !match                   ? F_BAD_SECRET
                     : client->disabled_at != 0 ? F_DISABLED_CLIENT
                                                : F_NONE;
    if (f == F_NONE)
        return true;
    /* One answer for every case, so the answer does not tell which ids exist. */
    grant_error(g, COFRE_OAUTH_INVALID_CLIENT, f, "client authentication failed");
    g->auth_failed = true;
    record_failure(reg, g);
    return false;
}

static void write_claims(const grant_t *g, const cofre_client_t *c, uint32_t scopes, int64_t now,
                         char jti[COFRE_UUID_LEN + 1], cofre_jbuf_t *b)
{
    const cofre_issuer_t *is = g->is;
    char names[COFRE_SCOPE_LIST_MAX];
    cofre_scope_format(scopes, names);
    cofre_uuid_v7(jti);
    cofre_jbuf_obj_begin(b);
    cofre_jbuf_kstr(b, "iss", is->cfg.issuer);
    cofre_jbuf_kstr(b, "sub", c->owner);
    cofre_jbuf_kstr(b, "aud", is->cfg.audience);
    cofre_jbuf_kint(b, "exp", now + (int64_t)is->cfg.token_ttl_s);
    cofre_jbuf_kint(b, "iat", now);
    cofre_jbuf_kint(b, "nbf", now);
    cofre_jbuf_kstr(b, "jti", jti);
    cofre_jbuf_kstr(b, "scope", names);
    cofre_jbuf_kstr(b, "client_id", c->client_id);
    cofre_jbuf_obj_end(b);
}

/* Writes the token.issued event; returns 0 or the registry's error. */
static int record_issued(cofre_registry_t *reg, const grant_t *g, const cofre_client_t *c,
                         const char *jti, const char *kid, uint32_t scopes, int64_t exp)
{
    char names[COFRE_SCOPE_LIST_MAX], expires[COFRE_TIME_LEN + 1];
    cofre_scope_format(scopes, names);
    cofre_time_format((uint64_t)exp * 1000000u, expires);
    cofre_jbuf_t b;
    cofre_jbuf_init(&b);
    cofre_jbuf_obj_begin(&b);
    cofre_jbuf_kstr(&b, "jti", jti);
    cofre_jbuf_kstr(&b, "client_id", c->client_id);
    cofre_jbuf_kstr(&b, "sub", c->owner);
    cofre_jbuf_kstr(&b, "scope", names);
    cofre_jbuf_kstr(&b, "kid", kid);
    cofre_jbuf_kstr(&b, "expires_at", expires);
    cofre_jbuf_obj_end(&b);
    cofre_actor_t actor;
    grant_actor(g, c->client_id, &actor);
    cofre_event_t ev;
    cofre_registry_event(&ev, "cofre.auth.token.issued", c->client_id, "token", b.data, &actor,
                         g->traceparent);
    cofre_jbuf_release(&b);
    int rc = reg->ops->event_insert(reg, &ev);
    cofre_registry_event_release(&ev);
    return rc;
}

static void issue_token(grant_t *g, cofre_registry_t *reg, const cofre_client_t *c)
{
    cofre_issuer_t *is = g->is;
    uint32_t scopes = c->scopes;
    if (g->scope_given) {
        if ((g->scope_requested & ~c->scopes) != 0) {
            grant_error(g, COFRE_OAUTH_INVALID_SCOPE, F_INVALID_SCOPE,
                        "a requested scope is not granted to this client");
            return;
        }
        scopes = g->scope_requested;
    }
    int64_t now = now_s();
    char jti[COFRE_UUID_LEN + 1], kid[COFRE_JWKS_KID_LEN + 1];
    cofre_jbuf_t claims, token;
    cofre_jbuf_init(&claims);
    cofre_jbuf_init(&token);
    write_claims(g, c, scopes, now, jti, &claims);
    int rc = cofre_keyring_sign(is->keys, now, claims.data, claims.len, &token, kid);
    cofre_jbuf_release(&claims);
    if (rc == 0)
        rc = record_issued(reg, g, c, jti, kid, scopes, now + (int64_t)is->cfg.token_ttl_s);
    if (rc != 0) {
        cofre_jbuf_release(&token);
        grant_unavailable(g, rc == COFRE_EUNAVAIL ? "no signing key is available"
                                                  : "the token could not be recorded");
        return;
    }
    char names[COFRE_SCOPE_LIST_MAX];
    cofre_scope_format(scopes, names);
    cofre_jbuf_t b;
    cofre_jbuf_init(&b);
    cofre_jbuf_obj_begin(&b);
    cofre_jbuf_kstr(&b, "access_token", token.data);
    cofre_jbuf_kstr(&b, "token_type", "Bearer");
    cofre_jbuf_kuint(&b, "expires_in", is->cfg.token_ttl_s);
    cofre_jbuf_kstr(&b, "scope", names);
    cofre_jbuf_obj_end(&b);
    cofre_secret_wipe(token.data, token.len);
    cofre_jbuf_release(&token);
    g->status = 200;
    g->body = cofre_jbuf_steal(&b, &g->body_len);
    cofre_counter_inc(is->issued);
}

/* Whether the token's client is known and enabled now. */
static bool client_active(cofre_registry_t *reg, const char *client_id)
{
    cofre_client_t c;
    return reg->ops->client_get(reg, client_id, &c) == 0 && c.disabled_at == 0;
}

static void introspect(grant_t *g, cofre_registry_t *reg, const cofre_client_t *caller)
{
    cofre_issuer_t *is = g->is;
    cofre_jwt_policy_t policy = {.issuer = is->cfg.issuer, .audience = is->cfg.audience};
    cofre_jwt_t jwt;
    bool active =
        g->token != NULL && cofre_keyring_verify(is->keys, g->token, g->token_len, &policy, now_s(),
                                                 0, &jwt) == COFRE_JWT_OK;
    /* A client learns only about its own tokens, unless it administers the ledger. */
    active = active && ((caller->scopes & COFRE_SCOPE_LEDGER_ADMIN) != 0 ||
                        strcmp(jwt.client_id, caller->client_id) == 0);
    active = active && client_active(reg, jwt.client_id);
    cofre_jbuf_t b;
    cofre_jbuf_init(&b);
    cofre_jbuf_obj_begin(&b);
    cofre_jbuf_kbool(&b, "active", active);
    if (active) {
        char names[COFRE_SCOPE_LIST_MAX];
        cofre_scope_format(jwt.scopes, names);
        cofre_jbuf_kstr(&b, "scope", names);
        cofre_jbuf_kstr(&b, "client_id", jwt.client_id);
        cofre_jbuf_kstr(&b, "sub", jwt.sub);
        cofre_jbuf_kstr(&b, "aud", is->cfg.audience);
        cofre_jbuf_kstr(&b, "iss", is->cfg.issuer);
        cofre_jbuf_kint(&b, "exp", jwt.exp);
        cofre_jbuf_kint(&b, "iat", jwt.iat);
        if (jwt.nbf != 0)
            cofre_jbuf_kint(&b, "nbf", jwt.nbf);
        cofre_jbuf_kstr(&b, "jti", jwt.jti);
        cofre_jbuf_kstr(&b, "token_type", "Bearer");
    }
    cofre_jbuf_obj_end(&b);
    g->status = 200;
    g->body = cofre_jbuf_steal(&b, &g->body_len);
    cofre_counter_inc(active ? is->introspected_active : is->introspected_inactive);
}

static void run_grant(cofre_task_t *task, void *thread_data)
{
    grant_t *g = (grant_t *)task;
    cofre_registry_t *reg = thread_data;
    if (reg == NULL) {
        cofre_secret_wipe(g->cred.secret, sizeof(g->cred.secret));
        grant_unavailable(g, "the client registry is unavailable");
        return;
    }
    cofre_client_t client;
    if (!authenticate_client(g, reg, &client))
        return;
    atomic_store(&g->is->db_up, true);
    if (g->kind == GRANT_TOKEN)
        issue_token(g, reg, &client);
    else
        introspect(g, reg, &client);
    cofre_secret_wipe(client.secret_hash, sizeof(client.secret_hash));
}

static void grant_free(grant_t *g)
{
    cofre_secret_wipe(g->cred.secret, sizeof(g->cred.secret));
    if (g->body != NULL) {
        cofre_secret_wipe(g->body, g->body_len); /* it may hold a token */
        free(g->body);
    }
    free(g->token);
    free(g);
}

/* ---- loop side -------------------------------------------------------------------------- */

static void grant_done(cofre_task_t *task)
{
    grant_t *g = (grant_t *)task;
    cofre_issuer_t *is = g->is;
    if (g->auth_failed) {
        uint64_t now = now_ms();
        cofre_throttle_fail(is->by_client, g->cred.client_id, now);
        cofre_throttle_fail(is->by_address, g->address, now);
    }
    if (g->failure != F_NONE)
        cofre_counter_inc(is->failures[g->failure]);
    cofre_req_t *req = task->req;
    if (req != NULL) {
        if (g->status == 401)
            cofre_req_add_header(req, "www-authenticate", H2O_STRLIT("Basic realm=\"cofre\""));
        if (g->status == 503)
            cofre_req_add_header(req, "retry-after", "1", 1);
        cofre_req_add_header(req, "pragma", H2O_STRLIT("no-cache"));
        cofre_req_respond(req, g->status,
                          g->problem ? "application/problem+json" : "application/json", g->body,
                          g->body_len);
    }
    grant_free(g);
}

static bool is_form(cofre_req_t *req)
{
    size_t len = 0;
    const char *ct = cofre_req_header(req, "content-type", &len);
    static const char form[] = "application/x-www-form-urlencoded";
    size_t n = sizeof(form) - 1;
    return ct != NULL && len >= n && strncasecmp(ct, form, n) == 0 &&
           (len == n || ct[n] == ';' || ct[n] == ' ');
}

/* Counts a failure found on the loop and answers it. */
static void fail_early(cofre_issuer_t *is, cofre_req_t *req, cofre_oauth_error_t e, enum failure f,
                       const char *description)
{
    cofre_counter_inc(is->failures[f]);
    respond_oauth_error(req, e, description);
}

/*
 * Starts a grant: the form, the client's credentials and the throttles. Returns NULL after
 * answering. form is left parsed for the caller (release it either way).
 */
static grant_t *start_grant(cofre_issuer_t *is, cofre_req_t *req, enum grant_kind kind,
                            cofre_oauth_form_t *form)
{
    h2o_iovec_t body = cofre_req_body(req);
    const char *why = NULL;
    memset(form, 0, sizeof(*form));
    if (!is_form(req)) {
        fail_early(is, req, COFRE_OAUTH_INVALID_REQUEST, F_INVALID_REQUEST,
                   "the body must be application/x-www-form-urlencoded");
        return NULL;
    }
    if (!cofre_oauth_form_parse(body.base, body.len, form, &why)) {
        fail_early(is, req, COFRE_OAUTH_INVALID_REQUEST, F_INVALID_REQUEST, why);
        return NULL;
    }
    grant_t *g = cofre_calloc(1, sizeof(*g));
    g->is = is;
    g->kind = kind;
    size_t alen = 0;
    const char *authorization = cofre_req_header(req, "authorization", &alen);
    cofre_oauth_error_t e = cofre_oauth_client_auth(authorization, alen, form, &g->cred, &why);
    if (e != COFRE_OAUTH_OK) {
        grant_free(g);
        fail_early(is, req, e,
                   e == COFRE_OAUTH_INVALID_CLIENT ? F_INVALID_CLIENT : F_INVALID_REQUEST, why);
        return NULL;
    }
    source_address(is, req, g->address);
    uint64_t now = now_ms();
    unsigned wait_s = COFRE_MAX(cofre_throttle_check(is->by_client, g->cred.client_id, now),
                                cofre_throttle_check(is->by_address, g->address, now));
    if (wait_s > 0) {
        grant_free(g);
        cofre_counter_inc(is->failures[F_THROTTLED]);
        respond_throttled(req, wait_s);
        return NULL;
    }
    cofre_trace_format(&req->trace, g->traceparent);
    snprintf(g->request_id, sizeof(g->request_id), "%s", req->trace.request_id);
    return g;
}

static void submit(cofre_issuer_t *is, cofre_req_t *req, grant_t *g)
{
    g->task.run = run_grant;
    g->task.done = grant_done;
    cofre_req_defer(req, &g->task);
    int rc = cofre_workers_submit(is->hashers, &g->task);
    if (rc == 0)
        return;
    cofre_req_undefer(req);
    grant_free(g);
    cofre_req_fail(req, COFRE_P_OVERLOADED, "too many token requests are waiting");
}

static void handle_token(cofre_req_t *req, void *data)
{
    cofre_issuer_t *is = data;
    cofre_oauth_form_t form;
    grant_t *g = start_grant(is, req, GRANT_TOKEN, &form);
    if (g == NULL) {
        cofre_oauth_form_release(&form);
        return;
    }
    const char *grant_type = form.values[COFRE_OAUTH_P_GRANT_TYPE];
    const char *scope = form.values[COFRE_OAUTH_P_SCOPE];
    unsigned unknown = 0;
    if (grant_type == NULL) {
        fail_early(is, req, COFRE_OAUTH_INVALID_REQUEST, F_INVALID_REQUEST,
                   "grant_type is missing");
    } else if (strcmp(grant_type, "client_credentials") != 0) {
        fail_early(is, req, COFRE_OAUTH_UNSUPPORTED_GRANT_TYPE, F_UNSUPPORTED_GRANT,
                   "only the client_credentials grant is supported");
    } else if (scope != NULL && (!cofre_scope_parse(scope, form.lens[COFRE_OAUTH_P_SCOPE],
                                                    &g->scope_requested, &unknown) ||
                                 unknown > 0 || g->scope_requested == 0)) {
        fail_early(is, req, COFRE_OAUTH_INVALID_SCOPE, F_INVALID_SCOPE,
                   "scope must be a space-separated list of known scopes");
    } else {
        g->scope_given = scope != NULL;
        cofre_oauth_form_release(&form);
        submit(is, req, g);
        return;
    }
    grant_free(g);
    cofre_oauth_form_release(&form);
}

static void handle_introspect(cofre_req_t *req, void *data)
{
    cofre_issuer_t *is = data;
    cofre_oauth_form_t form;
    grant_t *g = start_grant(is, req, GRANT_INTROSPECT, &form);
    if (g == NULL) {
        cofre_oauth_form_release(&form);
        return;
    }
    const char *token = form.values[COFRE_OAUTH_P_TOKEN];
    size_t len = form.lens[COFRE_OAUTH_P_TOKEN];
    if (token == NULL) {
        grant_free(g);
        cofre_oauth_form_release(&form);
        fail_early(is, req, COFRE_OAUTH_INVALID_REQUEST, F_INVALID_REQUEST, "token is missing");
        return;
    }
    if (len <= COFRE_JWT_BYTES_MAX) { /* a longer one is simply not active */
        g->token = cofre_strndup(token, len);
        g->token_len = len;
    }
    cofre_oauth_form_release(&form);
    submit(is, req, g);
}

static void handle_jwks(cofre_req_t *req, void *data)
{
    cofre_issuer_t *is = data;
    cofre_jbuf_t b;
    cofre_jbuf_init(&b);
    cofre_keyring_jwks(is->keys, &b);
    cofre_req_respond(req, 200, "application/jwk-set+json", b.data, b.len);
    cofre_jbuf_release(&b);
}

static void handle_metadata(cofre_req_t *req, void *data)
{
    cofre_issuer_t *is = data;
    cofre_req_respond_json(req, 200, is->metadata, is->metadata_len);
}

static void handle_revocations(cofre_req_t *req, void *data)
{
    cofre_issuer_t *is = data;
    pthread_mutex_lock(&is->revoked_lock);
    if (is->revoked != NULL)
        cofre_req_respond_json(req, 200, is->revoked, is->revoked_len);
    else
        cofre_req_fail(req, COFRE_P_UNAVAILABLE, "the revocation list is not loaded yet");
    pthread_mutex_unlock(&is->revoked_lock);
}

void cofre_issuer_register(cofre_issuer_t *is, cofre_http_server_t *s)
{
    cofre_http_route(s, "POST", "/oauth/token", 0, 0, handle_token, is);
    cofre_http_route(s, "POST", "/oauth/introspect", 0, 0, handle_introspect, is);
    cofre_http_route(s, "GET", "/oauth/revocations", COFRE_ROUTE_QUIET, 0, handle_revocations, is);
    cofre_http_route(s, "GET", "/.well-known/jwks.json", COFRE_ROUTE_QUIET, 0, handle_jwks, is);
    cofre_http_route(s, "GET", "/.well-known/openid-configuration", 0, 0, handle_metadata, is);
}

/* ---- the keeper: keys and revocations --------------------------------------------------- */

typedef struct revoked_builder {
    cofre_jbuf_t *b;
    size_t n;
} revoked_builder_t;

static bool add_revoked(const cofre_client_t *c, void *data)
{
    revoked_builder_t *rb = data;
    cofre_jbuf_obj_begin(rb->b);
    cofre_jbuf_kstr(rb->b, "client_id", c->client_id);
    cofre_jbuf_kint(rb->b, "disabled_at", c->disabled_at);
    cofre_jbuf_obj_end(rb->b);
    return ++rb->n < REVOKED_MAX;
}

static int reload_revoked(cofre_issuer_t *is, cofre_registry_t *reg)
{
    cofre_jbuf_t b;
    cofre_jbuf_init(&b);
    cofre_jbuf_obj_begin(&b);
    cofre_jbuf_kint(&b, "generated_at", now_s());
    cofre_jbuf_key(&b, "clients");
    cofre_jbuf_arr_begin(&b);
    revoked_builder_t rb = {.b = &b};
    int rc = reg->ops->disabled_list(reg, add_revoked, &rb);
    cofre_jbuf_arr_end(&b);
    cofre_jbuf_obj_end(&b);
    if (rc != 0) {
        cofre_jbuf_release(&b);
        return rc;
    }
    size_t len;
    char *doc = cofre_jbuf_steal(&b, &len);
    pthread_mutex_lock(&is->revoked_lock);
    char *old = is->revoked;
    is->revoked = doc;
    is->revoked_len = len;
    pthread_mutex_unlock(&is->revoked_lock);
    free(old);
    return 0;
}

static void keep_once(cofre_issuer_t *is, cofre_registry_t **reg)
{
    if (*reg == NULL && cofre_registry_open(is->cfg.db_url, reg) != 0)
        *reg = NULL;
    int rc = *reg == NULL ? COFRE_EUNAVAIL : cofre_keyring_reload(is->keys, *reg, now_s());
    if (rc == 0 && cofre_keyring_published(is->keys) == 0 && is->cfg.keys_dir != NULL) {
        /* The database was away at start: the first key is made now (once: the records). */
        rc = cofre_keyring_ensure(is->cfg.keys_dir, *reg, now_s());
        if (rc == 0)
            rc = cofre_keyring_reload(is->keys, *reg, now_s());
    }
    if (rc == 0)
        rc = reload_revoked(is, *reg);
    bool up = rc == 0;
    if (atomic_exchange(&is->db_up, up) != up)
        COFRE_LOG(up ? COFRE_LOG_INFO : COFRE_LOG_WARN, NULL,
                  up ? "registry reachable" : "registry unreachable",
                  COFRE_LF_STR("error", up ? NULL : cofre_strerror(rc)));
    cofre_gauge_set(is->keys_gauge, (double)cofre_keyring_published(is->keys));
}

static void *keeper_main(void *arg)
{
    cofre_issuer_t *is = arg;
    pthread_setname_np(pthread_self(), "keeper");
    cofre_registry_t *reg = NULL;
    pthread_mutex_lock(&is->keeper_mu);
    while (!is->keeper_stop) {
        pthread_mutex_unlock(&is->keeper_mu);
        keep_once(is, &reg);
        pthread_mutex_lock(&is->keeper_mu);
        struct timespec ts;
        uint64_t at = cofre_now_mono_ns() + COFRE_ISSUER_RELOAD_MS * NS_PER_MS;
        ts.tv_sec = (time_t)(at / 1000000000u);
        ts.tv_nsec = (long)(at % 1000000000u);
        if (!is->keeper_stop)
            pthread_cond_timedwait(&is->keeper_cond, &is->keeper_mu, &ts);
    }
    pthread_mutex_unlock(&is->keeper_mu);
    cofre_registry_close(reg);
    return NULL;
}

/* ---- life cycle ------------------------------------------------------------------------- */

static void *worker_init(void *data)
{
    cofre_issuer_t *is = data;
    cofre_registry_t *reg = NULL;
    if (cofre_registry_open(is->cfg.db_url, &reg) != 0)
        return NULL; /* its grants answer 503 */
    return reg;
}

static void worker_fini(void *thread_data)
{
    cofre_registry_close(thread_data);
}

static double hash_queue_depth(void *data)
{
    return (double)cofre_workers_queue_length(data);
}

static void init_metrics(cofre_issuer_t *is)
{
    is->issued = cofre_metric_with(
        cofre_metric_counter("cofre_auth_tokens_issued_total", "Access tokens issued.", NULL),
        NULL);
    cofre_metric_t *failures = cofre_metric_counter(
        "cofre_auth_failures_total",
        "Token and introspection requests refused, by reason (unknown_client, bad_secret, "
        "disabled_client, invalid_client, invalid_request, invalid_scope, "
        "unsupported_grant_type, throttled).",
        "reason");
    for (int f = F_UNKNOWN_CLIENT; f < F_COUNT_; f++)
        is->failures[f] = cofre_metric_with(failures, (const char *[]){failure_names[f]});
    is->hash_seconds = cofre_metric_with(
        cofre_metric_histogram("cofre_auth_hash_seconds",
                               "Time of one Argon2id client secret verification.", NULL,
                               cofre_metric_latency_buckets, cofre_metric_latency_buckets_count),
        NULL);
    cofre_metric_t *intro =
        cofre_metric_counter("cofre_auth_introspections_total",
                             "Introspection answers, by whether the token was active.", "active");
    is->introspected_active = cofre_metric_with(intro, (const char *[]){"true"});
    is->introspected_inactive = cofre_metric_with(intro, (const char *[]){"false"});
    is->keys_gauge =
        cofre_metric_with(cofre_metric_gauge("cofre_auth_signing_keys",
                                             "Signing keys published in the JWK Set.", NULL),
                          NULL);
}

static void build_metadata(cofre_issuer_t *is)
{
    const char *base = is->cfg.issuer;
    size_t blen = strlen(base);
    while (blen > 0 && base[blen - 1] == '/')
        blen--;
    char url[1024];
    cofre_jbuf_t b;
    cofre_jbuf_init(&b);
    cofre_jbuf_obj_begin(&b);
    cofre_jbuf_kstr(&b, "issuer", is->cfg.issuer);
#define ENDPOINT(key, path)                                                                        \
    snprintf(url, sizeof(url), "%.*s%s", (int)blen, base, path);                                   \
    cofre_jbuf_kstr(&b, key, url)
    ENDPOINT("token_endpoint", "/oauth/token");
    ENDPOINT("jwks_uri", "/.well-known/jwks.json");
    ENDPOINT("introspection_endpoint", "/oauth/introspect");
    ENDPOINT("revocation_list_uri", "/oauth/revocations");
#undef ENDPOINT
    static const char *const lists[][4] = {
        {"grant_types_supported", "client_credentials", NULL},
        {"token_endpoint_auth_methods_supported", "client_secret_basic", "client_secret_post",
         NULL},
        {"introspection_endpoint_auth_methods_supported", "client_secret_basic",
         "client_secret_post", NULL},
        {"response_types_supported", "token", NULL},
        {"token_endpoint_auth_signing_alg_values_supported", "ES256", NULL},
        {"id_token_signing_alg_values_supported", "ES256", NULL},
        {"subject_types_supported", "public", NULL},
    };
    for (size_t i = 0; i < COFRE_ARRAY_SIZE(lists); i++) {
        cofre_jbuf_key(&b, lists[i][0]);
        cofre_jbuf_arr_begin(&b);
        for (size_t j = 1; j < 4 && lists[i][j] != NULL; j++)
            cofre_jbuf_str(&b, lists[i][j]);
        cofre_jbuf_arr_end(&b);
    }
    cofre_jbuf_key(&b, "scopes_supported");
    cofre_jbuf_arr_begin(&b);
    for (uint32_t bit = 1; bit <= COFRE_SCOPE_ALL; bit <<= 1)
        cofre_jbuf_str(&b, cofre_scope_name(bit));
    cofre_jbuf_arr_end(&b);
    cofre_jbuf_obj_end(&b);
    is->metadata = cofre_jbuf_steal(&b, &is->metadata_len);
}

static void parse_proxies(cofre_issuer_t *is)
{
    const char *p = is->cfg.trusted_proxies != NULL ? is->cfg.trusted_proxies : "";
    while (*p != '\0' && is->nproxies < COFRE_ISSUER_PROXIES_MAX) {
        size_t n = strcspn(p, ",");
        if (n > 0 && n < ADDRESS_MAX) {
            memcpy(is->proxies[is->nproxies], p, n);
            is->proxies[is->nproxies++][n] = '\0';
        }
        p += n;
        if (*p == ',')
            p++;
    }
}

cofre_issuer_t *cofre_issuer_start(const cofre_issuer_config_t *cfg, cofre_keyring_t *keys)
{
    cofre_issuer_t *is = cofre_calloc(1, sizeof(*is));
    is->cfg = *cfg;
    is->keys = keys;
    char dummy[COFRE_SECRET_LEN + 1];
    cofre_secret_generate(dummy);
    if (cofre_secret_hash(&cfg->argon2, dummy, strlen(dummy), is->dummy_hash) != 0) {
        cofre_log_msg(COFRE_LOG_ERROR, NULL, "Argon2id hashing failed (memory limit too high?)");
        free(is);
        return NULL;
    }
    is->by_client =
        cofre_throttle_new(COFRE_ISSUER_THROTTLE_KEYS, cfg->client_burst, cfg->client_period_s);
    is->by_address =
        cofre_throttle_new(COFRE_ISSUER_THROTTLE_KEYS, cfg->address_burst, cfg->address_period_s);
    parse_proxies(is);
    build_metadata(is);
    init_metrics(is);
    pthread_mutex_init(&is->revoked_lock, NULL);
    pthread_mutex_init(&is->keeper_mu, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&is->keeper_cond, &attr);
    pthread_condattr_destroy(&attr);

    cofre_registry_t *reg = NULL;
    if (cofre_registry_open(cfg->db_url, &reg) == 0) {
        keep_once(is, &reg); /* keys and revocations before the first request */
        cofre_registry_close(reg);
    }
    cofre_workers_config_t w = {
        .name = "hashers",
        .threads = cfg->hashers,
        .queue_max = cfg->hash_queue_max,
        .thread_init = worker_init,
        .thread_fini = worker_fini,
        .data = is,
    };
    is->hashers = cofre_workers_start(&w);
    cofre_metric_gauge_fn("cofre_auth_hash_queue_depth",
                          "Token and introspection requests waiting for a hashing worker.",
                          hash_queue_depth, is->hashers);
    COFRE_ASSERT(pthread_create(&is->keeper, NULL, keeper_main, is) == 0);
    return is;
}

bool cofre_issuer_ready(void *data, const char **reason)
{
    cofre_issuer_t *is = data;
    if (!atomic_load(&is->db_up)) {
        *reason = "the client registry is unreachable";
        return false;
    }
    if (!cofre_keyring_ready(is->keys, now_s())) {
        *reason = "no signing key is available";
        return false;
    }
    return true;
}

void cofre_issuer_stop(cofre_issuer_t *is)
{
    if (is == NULL)
        return;
    pthread_mutex_lock(&is->keeper_mu);
    is->keeper_stop = true;
    pthread_cond_signal(&is->keeper_cond);
    pthread_mutex_unlock(&is->keeper_mu);
    pthread_join(is->keeper, NULL);
    cofre_workers_stop(is->hashers);
    cofre_throttle_free(is->by_client);
    cofre_throttle_free(is->by_address);
    pthread_mutex_destroy(&is->revoked_lock);
    pthread_mutex_destroy(&is->keeper_mu);
    pthread_cond_destroy(&is->keeper_cond);
    cofre_secret_wipe(is->dummy_hash, sizeof(is->dummy_hash));
    free(is->revoked);
    free(is->metadata);
    free(is);
}
