/*
 * http.c: the HTTP server on libh2o's evloop.
 *
 * Threads: the main thread owns signals and the shutdown sequence; each loop thread runs one
 * h2o event loop with its own SO_REUSEPORT listener. A request's cofre_req_t lives in the
 * h2o request pool, with a destructor that runs when h2o disposes of the request (after the
 * response is sent, or when the connection dies): it keeps the in-flight count and detaches
 * a pending task, so a late worker never touches a freed request.
 */
#include "cofre/http.h"

#include "cofre/common.h"
#include "cofre/log.h"
#include "cofre/metrics.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define HTTP_THREADS_MAX      64
#define HTTP_LISTEN_BACKLOG   4096
#define HTTP_ACCEPTS_PER_WAKE 64
#define HTTP_ENTITY_HARD_MAX  (1024 * 1024) /* h2o itself answers 413 above this */
/* Once shutting down, keep-alive connections idle this long are closed. */
#define HTTP_SHUTDOWN_IDLE_MS 1000

/* Status codes with a cached metrics series per route; others share the slow path. */
static const int cached_statuses[] = {200, 201, 204, 400, 401, 403, 404, 405, 409,
                                      413, 415, 422, 429, 500, 502, 503, 504};
#define STATUS_SLOTS COFRE_ARRAY_SIZE(cached_statuses)

enum { PHASE_RUNNING, PHASE_DRAINING, PHASE_CLOSING, PHASE_STOPPED };

typedef struct http_route_entry {
    cofre_http_handler_fn fn;
    void *data;
    unsigned flags;
    uint32_t scopes;
    const char *method;
    const char *tmpl;
    cofre_series_t *duration;
    _Atomic(cofre_series_t *) by_status[STATUS_SLOTS];
} http_route_entry_t;

typedef struct http_loop {
    cofre_http_server_t *server;
    pthread_t thread;
    h2o_evloop_t *loop;
    h2o_context_t ctx;
    h2o_accept_ctx_t accept_ctx;
    int listen_fd;
    h2o_socket_t *listener;
    h2o_multithread_queue_t *mq;
    h2o_multithread_receiver_t task_receiver;
    bool exit;
    _Atomic bool has_conns;  /* published after every loop iteration */
    cofre_task_t close_task; /* control messages from the main thread, each sent once */
    cofre_task_t exit_task;
} http_loop_t;

typedef struct http_handler {
    h2o_handler_t super;
    cofre_http_server_t *server;
} http_handler_t;

struct cofre_http_server {
    cofre_http_config_t cfg;
    h2o_globalconf_t h2o_config;
    cofre_router_t router;
    http_route_entry_t entries[COFRE_ROUTES_MAX];
    size_t nentries;
    http_route_entry_t unmatched; /* label for requests no route matched */
    http_loop_t loops[HTTP_THREADS_MAX];
    _Atomic int phase;
    _Atomic long in_flight;
    _Atomic unsigned loops_started;
    uint16_t port;
    cofre_metric_t *requests_total;
    cofre_metric_t *request_duration;
    cofre_series_t *in_flight_gauge;
};

/* ---- responses -------------------------------------------------------------------------- */

static const char *reason_phrase(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 204:
        return "No Content";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 409:
        return "Conflict";
    case 413:
        return "Content Too Large";
    case 415:
        return "Unsupported Media Type";
    case 422:
        return "Unprocessable Content";
    case 429:
        return "Too Many Requests";
    case 500:
        return "Internal Server Error";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    default:
        return "Unknown";
    }
}

static http_route_entry_t *route_entry(const cofre_req_t *req)
{
    return req->route != NULL ? req->route->data : &req->server->unmatched;
}

static cofre_series_t *status_series(cofre_http_server_t *s, http_route_entry_t *e, int status)
{
    char code[8];
    snprintf(code, sizeof(code), "%d", status);
    const char *labels[] = {e->tmpl, e->method, code};
    for (size_t i = 0; i < STATUS_SLOTS; i++) {
        if (cached_statuses[i] != status)
            continue;
        cofre_series_t *series = atomic_load_explicit(&e->by_status[i], memory_order_acquire);
        if (series == NULL) {
            series = cofre_metric_with(s->requests_total, labels);
            atomic_store_explicit(&e->by_status[i], series, memory_order_release);
        }
        return series;
    }
    return cofre_metric_with(s->requests_total, labels);
}

static void record_request(cofre_req_t *req, int status, size_t bytes)
{
    cofre_http_server_t *s = req->server;
    http_route_entry_t *e = route_entry(req);
    double seconds = (double)(cofre_now_mono_ns() - req->start_ns) / 1e9;
    cofre_counter_inc(status_series(s, e, status));
    if (e->duration != NULL)
        cofre_histogram_observe(e->duration, seconds);

    cofre_log_level_t level = status >= 500                    ? COFRE_LOG_WARN
                              : (e->flags & COFRE_ROUTE_QUIET) ? COFRE_LOG_DEBUG
                                                               : COFRE_LOG_INFO;
    if (!cofre_log_enabled(level))
        return;
    h2o_req_t *r = req->h2o;
    size_t path_len = r->query_at != SIZE_MAX ? r->query_at : r->path.len;
    char *method = h2o_mem_alloc_pool(&r->pool, r->method.len + 1);
    memcpy(method, r->method.base, r->method.len);
    method[r->method.len] = '\0';
    char *path = h2o_mem_alloc_pool(&r->pool, path_len + 1);
    memcpy(path, r->path.base, path_len);
    path[path_len] = '\0';
    COFRE_LOG(level, &req->trace, "request", COFRE_LF_STR("method", method),
              COFRE_LF_STR("path", path), COFRE_LF_STR("route", e->tmpl),
              COFRE_LF_INT("status", status), COFRE_LF_DBL("duration_ms", seconds * 1e3),
              COFRE_LF_INT("bytes", bytes), COFRE_LF_STR("peer", cofre_req_peer(req)),
              COFRE_LF_STR("client_id", req->caller.client_id));
}

void cofre_req_add_header(cofre_req_t *req, const char *name, const char *value, size_t len)
{
    h2o_req_t *r = req->h2o;
    char *v = h2o_mem_alloc_pool(&r->pool, len);
    memcpy(v, value, len);
    h2o_add_header_by_str(&r->pool, &r->res.headers, name, strlen(name), 1, NULL, v, len);
}

void cofre_req_respond(cofre_req_t *req, int status, const char *content_type, const char *body,
                       size_t len)
{
    COFRE_ASSERT(!req->responded);
    req->responded = true;
    h2o_req_t *r = req->h2o;
    r->res.status = status;
    r->res.reason = reason_phrase(status);
    h2o_add_header(&r->pool, &r->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, content_type,
                   strlen(content_type));
    h2o_add_header(&r->pool, &r->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL,
                   H2O_STRLIT("no-store"));
    h2o_add_header_by_str(&r->pool, &r->res.headers, H2O_STRLIT("x-request-id"), 0, NULL,
                          req->trace.request_id, strlen(req->trace.request_id));
    r->res.content_length = len;
    record_request(req, status, len);
    h2o_send_inline(r, body, len);
}

void cofre_req_respond_json(cofre_req_t *req, int status, const char *body, size_t len)
{
    cofre_req_respond(req, status, "application/json", body, len);
}

void cofre_req_respond_problem(cofre_req_t *req, const cofre_problem_t *p)
{
    cofre_jbuf_t b;
    cofre_jbuf_init(&b);
    cofre_problem_render(p, req->trace.request_id, &b);
    int status = cofre_problem_status(p->code);
    if (status == 503 || status == 429)
        cofre_req_add_header(req, "retry-after", "1", 1);
    cofre_req_respond(req, status, "application/problem+json", b.data, b.len);
    cofre_jbuf_release(&b);
}

void cofre_req_fail(cofre_req_t *req, cofre_problem_code_t code, const char *fmt, ...)
{
    cofre_problem_t p;
    va_list ap;
    va_start(ap, fmt);
    cofre_problem_vset(&p, code, fmt, ap);
    va_end(ap);
    cofre_req_respond_problem(req, &p);
}

/* ---- request accessors ------------------------------------------------------------------ */

const char *cofre_req_param(const cofre_req_t *req, const char *name)
{
    return cofre_route_param(&req->params, name);
}

h2o_iovec_t cofre_req_body(const cofre_req_t *req)
{
    return req->h2o->entity;
}

const char *cofre_req_header(const cofre_req_t *req, const char *name, size_t *len)
{
    h2o_req_t *r = req->h2o;
    ssize_t i = h2o_find_header_by_str(&r->headers, name, strlen(name), -1);
    if (i < 0)
        return NULL;
    h2o_iovec_t v = r->headers.entries[i].value;
    char *copy = h2o_mem_alloc_pool(&r->pool, v.len + 1);
    memcpy(copy, v.base, v.len);
    copy[v.len] = '\0';
    if (len != NULL)
        *len = v.len;
    return copy;
}

/* Calls fn for each name=value pair of the query; stops when fn returns false. */
static bool each_query_pair(const cofre_req_t *req,
                            bool (*fn)(const char *name, size_t nlen, const char *val, size_t vlen,
                                       void *data),
                            void *data)
{
    h2o_req_t *r = req->h2o;
    if (r->query_at == SIZE_MAX)
        return true;
    const char *p = r->path.base + r->query_at + 1;
    const char *end = r->path.base + r->path.len;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *pair_end = amp != NULL ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(pair_end - p));
        const char *name_end = eq != NULL ? eq : pair_end;
        const char *val = eq != NULL ? eq + 1 : pair_end;
        if (pair_end > p && !fn(p, (size_t)(name_end - p), val, (size_t)(pair_end - val), data))
            return false;
        p = pair_end + 1;
    }
    return true;
}

typedef struct {
    const char *name;
    const char *val;
    size_t vlen;
    int found;
} query_lookup_t;

static bool lookup_pair(const char *name, size_t nlen, const char *val, size_t vlen, void *data)
{
    query_lookup_t *q = data;
    if (strlen(q->name) != nlen || memcmp(q->name, name, nlen) != 0)
        return true;
    q->found++;
    q->val = val;
    q->vlen = vlen;
    return true;
}

int cofre_req_query(cofre_req_t *req, const char *name, const char **value)
{
    query_lookup_t q = {.name = name};
    each_query_pair(req, lookup_pair, &q);
    if (q.found == 0)
        return COFRE_ENOENT;
    if (q.found > 1)
        return COFRE_EINVAL;
    char *out = h2o_mem_alloc_pool(&req->h2o->pool, q.vlen + 1);
    if (cofre_url_decode(q.val, q.vlen, out, q.vlen + 1, true) < 0)
        return COFRE_EINVAL;
    *value = out;
    return 0;
}

typedef struct {
    const char *const *allowed;
    cofre_problem_t *err;
} query_allowed_t;

static bool check_allowed_pair(const char *name, size_t nlen, const char *val, size_t vlen,
                               void *data)
{
    (void)val;
    (void)vlen;
    query_allowed_t *q = data;
    for (const char *const *a = q->allowed; *a != NULL; a++)
        if (strlen(*a) == nlen && memcmp(*a, name, nlen) == 0)
            return true;
    cofre_problem_set(q->err, COFRE_P_INVALID_REQUEST, "unknown query parameter \"%.*s\"",
                      (int)COFRE_MIN(nlen, 64), name);
    return false;
}

bool cofre_req_query_allowed(cofre_req_t *req, const char *const *allowed, cofre_problem_t *err)
{
    query_allowed_t q = {allowed, err};
    return each_query_pair(req, check_allowed_pair, &q);
}

const char *cofre_req_peer(cofre_req_t *req)
{
    struct sockaddr_storage ss;
    h2o_conn_t *conn = req->h2o->conn;
    socklen_t len = conn->callbacks->get_peername(conn, (struct sockaddr *)&ss);
    char *out = h2o_mem_alloc_pool(&req->h2o->pool, INET6_ADDRSTRLEN);
    out[0] = '\0';
    if (len == 0)
        return out;
    if (ss.ss_family == AF_INET)
        inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, out, INET6_ADDRSTRLEN);
    else if (ss.ss_family == AF_INET6)
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, out, INET6_ADDRSTRLEN);
    return out;
}

/* ---- deferred work ---------------------------------------------------------------------- */

void cofre_req_defer(cofre_req_t *req, cofre_task_t *task)
{
    COFRE_ASSERT(req->pending == NULL && !req->responded && task->done != NULL);
    memset(&task->msg_, 0, sizeof(task->msg_));
    task->loop_ = H2O_STRUCT_FROM_MEMBER(http_loop_t, ctx, req->h2o->conn->ctx);
    task->req = req;
    req->pending = task;
}

void cofre_req_undefer(cofre_req_t *req)
{
    COFRE_ASSERT(req->pending != NULL);
    req->pending->req = NULL;
    req->pending = NULL;
}

void cofre_task_complete(cofre_task_t *task)
{
    http_loop_t *l = task->loop_;
    h2o_multithread_send_message(&l->task_receiver, &task->msg_);
}

static void on_task_messages(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    (void)receiver;
    while (!h2o_linklist_is_empty(messages)) {
        h2o_multithread_message_t *msg =
            H2O_STRUCT_FROM_MEMBER(h2o_multithread_message_t, link, messages->next);
        h2o_linklist_unlink(&msg->link);
        cofre_task_t *task = H2O_STRUCT_FROM_MEMBER(cofre_task_t, msg_, msg);
        if (task->req != NULL)
            task->req->pending = NULL;
        task->done(task);
    }
}

/* ---- request entry ---------------------------------------------------------------------- */

static void on_req_dispose(void *p)
{
    cofre_req_t *req = p;
    if (req->pending != NULL)
        req->pending->req = NULL;
    atomic_fetch_sub_explicit(&req->server->in_flight, 1, memory_order_relaxed);
    cofre_gauge_add(req->server->in_flight_gauge, -1);
}

static void start_trace(cofre_req_t *req)
{
    h2o_req_t *r = req->h2o;
    ssize_t i = h2o_find_header_by_str(&r->headers, H2O_STRLIT("traceparent"), -1);
    if (i >= 0)
        cofre_trace_start(&req->trace, r->headers.entries[i].value.base,
                          r->headers.entries[i].value.len);
    else
        cofre_trace_start(&req->trace, NULL, 0);
    i = h2o_find_header_by_str(&r->headers, H2O_STRLIT("x-request-id"), -1);
    if (i >= 0)
        cofre_trace_set_request_id(&req->trace, r->headers.entries[i].value.base,
                                   r->headers.entries[i].value.len);
    else
        cofre_trace_set_request_id(&req->trace, NULL, 0);
}

static bool is_json_content_type(const h2o_req_t *r)
{
    ssize_t i = h2o_find_header(&r->headers, H2O_TOKEN_CONTENT_TYPE, -1);
    if (i < 0)
        return false;
    h2o_iovec_t v = r->headers.entries[i].value;
    size_t n = sizeof("application/json") - 1;
    if (v.len < n || !h2o_lcstris(v.base, n, "application/json", n))
        return false;
    return v.len == n || v.base[n] == ';' || v.base[n] == ' ';
}

/* Applies the route's limits; returns false after answering when the request breaks one. */
static bool check_limits(cofre_req_t *req, const http_route_entry_t *e)
{
    h2o_req_t *r = req->h2o;
    size_t max = (e->flags & COFRE_ROUTE_BULK_BODY) ? COFRE_HTTP_BULK_BODY_MAX
                                                    : req->server->cfg.body_max_bytes;
    if (r->entity.len > max) {
        cofre_req_fail(req, COFRE_P_PAYLOAD_TOO_LARGE, "the body exceeds %zu bytes", max);
        return false;
    }
    if ((e->flags & COFRE_ROUTE_JSON_BODY) && !is_json_content_type(r)) {
        cofre_req_fail(req, COFRE_P_UNSUPPORTED_MEDIA_TYPE,
                       "the body must be sent as Content-Type: application/json");
        return false;
    }
    return true;
}

/* Runs the configured token check for a route that needs scopes; answers on failure. */
static bool authenticate(cofre_req_t *req, const http_route_entry_t *e)
{
    const cofre_http_config_t *cfg = &req->server->cfg;
    if (e->scopes == 0 || cfg->authenticate == NULL)
        return true;
    cofre_problem_t err = {.code = COFRE_P_UNAUTHORIZED};
    if (cfg->authenticate(cfg->authenticate_data, req, e->scopes, &err))
        return true;
    if (err.code == COFRE_P_UNAUTHORIZED)
        cofre_req_add_header(req, "www-authenticate", H2O_STRLIT("Bearer"));
    cofre_req_respond_problem(req, &err);
    return false;
}

static void dispatch(cofre_req_t *req)
{
    h2o_req_t *r = req->h2o;
    size_t path_len = r->query_at != SIZE_MAX ? r->query_at : r->path.len;
    char method[16];
    if (r->method.len >= sizeof(method)) {
        cofre_req_fail(req, COFRE_P_METHOD_NOT_ALLOWED, "unknown method");
        return;
    }
    memcpy(method, r->method.base, r->method.len);
    method[r->method.len] = '\0';
    char allow[64];
    const cofre_route_t *route = NULL;
    cofre_route_result_t m =
        cofre_router_match(&req->server->router, method, r->path.base, path_len, &route,
                           &req->params, allow, sizeof(allow));
    if (m == COFRE_ROUTE_NOT_FOUND) {
        cofre_req_fail(req, COFRE_P_NOT_FOUND, "no resource at this path");
        return;
    }
    if (m == COFRE_ROUTE_METHOD_NOT_ALLOWED) {
        cofre_req_add_header(req, "allow", allow, strlen(allow));
        cofre_req_fail(req, COFRE_P_METHOD_NOT_ALLOWED, "allowed: %s", allow);
        return;
    }
    req->route = route;
    http_route_entry_t *e = route->data;
    if (!check_limits(req, e) || !authenticate(req, e))
        return;
    e->fn(req, e->data);
}

static int on_req(h2o_handler_t *self, h2o_req_t *r)
{
    cofre_http_server_t *s = ((http_handler_t *)self)->server;
    cofre_req_t *req = h2o_mem_alloc_shared(&r->pool, sizeof(*req), on_req_dispose);
    memset(req, 0, sizeof(*req));
    req->h2o = r;
    req->server = s;
    req->start_ns = cofre_now_mono_ns();
    snprintf(req->caller.client_id, sizeof(req->caller.client_id), "local");
    req->caller.scopes = COFRE_SCOPE_ALL;
    atomic_fetch_add_explicit(&s->in_flight, 1, memory_order_relaxed);
    cofre_gauge_add(s->in_flight_gauge, 1);
    start_trace(req);
    dispatch(req);
    return 0;
}

/* ---- built-in routes -------------------------------------------------------------------- */

static void handle_healthz(cofre_req_t *req, void *data)
{
    (void)data;
    cofre_req_respond_json(req, 200, H2O_STRLIT("{\"status\":\"ok\"}"));
}

/* Readiness: "ready", "draining" or "unavailable" (with *reason). */
static const char *readiness(cofre_http_server_t *s, const char **reason)
{
    *reason = NULL;
    if (atomic_load(&s->phase) != PHASE_RUNNING)
        return "draining";
    if (s->cfg.ready != NULL && !s->cfg.ready(s->cfg.ready_data, reason))
        return "unavailable";
    return "ready";
}

static double ready_gauge(void *data)
{
    const char *reason;
    return strcmp(readiness(data, &reason), "ready") == 0 ? 1 : 0;
}

static void handle_readyz(cofre_req_t *req, void *data)
{
    const char *reason = NULL;
    const char *state = readiness(data, &reason);
    int status = strcmp(state, "ready") == 0 ? 200 : 503;
    cofre_jbuf_t b;
    cofre_jbuf_init(&b);
    cofre_jbuf_obj_begin(&b);
    cofre_jbuf_kstr(&b, "status", state);
    if (reason != NULL)
        cofre_jbuf_kstr(&b, "reason", reason);
    cofre_jbuf_obj_end(&b);
    cofre_req_respond_json(req, status, b.data, b.len);
    cofre_jbuf_release(&b);
}

static void handle_metrics(cofre_req_t *req, void *data)
{
    (void)data;
    cofre_jbuf_t b;
    cofre_jbuf_init(&b);
    cofre_metrics_render(&b);
    cofre_req_respond(req, 200, "text/plain; version=0.0.4; charset=utf-8", b.data, b.len);
    cofre_jbuf_release(&b);
}

/* ---- server setup ----------------------------------------------------------------------- */

cofre_http_server_t *cofre_http_server_new(const cofre_http_config_t *cfg)
{
    COFRE_ASSERT(cfg->threads >= 1 && cfg->threads <= HTTP_THREADS_MAX);
    COFRE_ASSERT(cfg->body_max_bytes <= HTTP_ENTITY_HARD_MAX);
    cofre_http_server_t *s = cofre_calloc(1, sizeof(*s));
    s->cfg = *cfg;
    cofre_router_init(&s->router);
    atomic_init(&s->phase, PHASE_RUNNING);
    atomic_init(&s->in_flight, 0);
    atomic_init(&s->loops_started, 0);

    h2o_config_init(&s->h2o_config);
    s->h2o_config.server_name = h2o_iovec_init(H2O_STRLIT("cofre"));
    s->h2o_config.max_request_entity_size = HTTP_ENTITY_HARD_MAX;
    s->h2o_config.http1.req_timeout = cfg->request_timeout_ms;
    s->h2o_config.http1.upgrade_to_http2 = 0;
    h2o_hostconf_t *host =
        h2o_config_register_host(&s->h2o_config, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *path = h2o_config_register_path(host, "/", 0);
    http_handler_t *handler = (http_handler_t *)h2o_create_handler(path, sizeof(*handler));
    handler->super.on_req = on_req;
    handler->server = s;

    s->requests_total = cofre_metric_counter("cofre_http_requests_total",
                                             "HTTP requests answered, by route template, method "
                                             "and status code.",
                                             "route,method,code");
    s->request_duration = cofre_metric_histogram(
        "cofre_http_request_duration_seconds",
        "Time from receiving a request to sending its answer, by route template and method.",
        "route,method", cofre_metric_latency_buckets, cofre_metric_latency_buckets_count);
    s->in_flight_gauge = cofre_metric_with(
        cofre_metric_gauge("cofre_http_requests_in_flight", "Requests being handled.", NULL), NULL);
    cofre_metric_gauge_fn("cofre_ready", "1 when /readyz would answer 200.", ready_gauge, s);
    s->unmatched.method = "";
    s->unmatched.tmpl = "unmatched";

    cofre_http_route(s, "GET", "/healthz", COFRE_ROUTE_QUIET, 0, handle_healthz, s);
    cofre_http_route(s, "GET", "/readyz", COFRE_ROUTE_QUIET, 0, handle_readyz, s);
    cofre_http_route(s, "GET", "/metrics", COFRE_ROUTE_QUIET, 0, handle_metrics, s);
    return s;
}

void cofre_http_route(cofre_http_server_t *s, const char *method, const char *tmpl, unsigned flags,
                      uint32_t scopes, cofre_http_handler_fn fn, void *data)
{
    COFRE_ASSERT(s->nentries < COFRE_ROUTES_MAX);
    http_route_entry_t *e = &s->entries[s->nentries++];
    e->fn = fn;
    e->data = data;
    e->flags = flags;
    e->scopes = scopes;
    e->method = method;
    e->tmpl = tmpl;
    e->duration = cofre_metric_with(s->request_duration, (const char *[]){tmpl, method});
    cofre_router_add(&s->router, method, tmpl, e);
}

static int compare_routes(const void *a, const void *b)
{
    const cofre_route_t *x = a, *y = b;
    int c = strcmp(x->tmpl, y->tmpl);
    return c != 0 ? c : strcmp(x->method, y->method);
}

void cofre_http_print_routes(const cofre_http_server_t *s, FILE *out)
{
    cofre_route_t sorted[COFRE_ROUTES_MAX];
    memcpy(sorted, s->router.routes, s->router.nroutes * sizeof(sorted[0]));
    qsort(sorted, s->router.nroutes, sizeof(sorted[0]), compare_routes);
    for (size_t i = 0; i < s->router.nroutes; i++)
        fprintf(out, "%s %s\n", sorted[i].method, sorted[i].tmpl);
}

/* ---- listeners -------------------------------------------------------------------------- */

static int resolve(const cofre_listen_t *l, uint16_t port, struct sockaddr_storage *ss,
                   socklen_t *len)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    char service[8];
    snprintf(service, sizeof(service), "%u", port);
    int rc = getaddrinfo(l->host[0] != '\0' ? l->host : NULL, service, &hints, &res);
    if (rc != 0) {
        COFRE_LOG(COFRE_LOG_ERROR, NULL, "cannot resolve listen address",
                  COFRE_LF_STR("host", l->host), COFRE_LF_STR("error", gai_strerror(rc)));
        return COFRE_EINVAL;
    }
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *len = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

static int bind_socket(const struct sockaddr_storage *ss, socklen_t len, bool reuseport)
{
    int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int on = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
    if (reuseport)
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof(on));
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
    if (bind(fd, (const struct sockaddr *)ss, len) != 0) {
        int err = errno;
        close(fd);
        return -err;
    }
    return fd;
}

static uint16_t bound_port(int fd)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    socklen_t len = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0)
        return 0;
    if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
        return ntohs(in6->sin6_port);
    }
    struct sockaddr_in *in4 = (struct sockaddr_in *)&ss;
    return ntohs(in4->sin_port);
}

static void set_port(struct sockaddr_storage *ss, uint16_t port)
{
    if (ss->ss_family == AF_INET6)
        ((struct sockaddr_in6 *)ss)->sin6_port = htons(port);
    else
        ((struct sockaddr_in *)ss)->sin_port = htons(port);
}

int cofre_http_server_listen(cofre_http_server_t *s)
{
    struct sockaddr_storage ss;
    socklen_t len;
    if (resolve(&s->cfg.listen, s->cfg.listen.port, &ss, &len) != 0)
        return COFRE_EIO;
    /*
     * SO_REUSEPORT would let us share a port with another process of the same user without a
     * word; a plain bind first tells us the port is free (and picks one for port 0).
     */
    int probe = bind_socket(&ss, len, false);
    if (probe < 0) {
        COFRE_LOG(COFRE_LOG_ERROR, NULL, "cannot listen: address in use or not permitted",
                  COFRE_LF_STR("host", s->cfg.listen.host),
                  COFRE_LF_INT("port", s->cfg.listen.port),
                  COFRE_LF_STR("error", strerror(-probe)));
        return COFRE_EIO;
    }
    s->port = bound_port(probe);
    close(probe);
    set_port(&ss, s->port);
    for (unsigned i = 0; i < s->cfg.threads; i++) {
        int fd = bind_socket(&ss, len, true);
        if (fd < 0 || listen(fd, HTTP_LISTEN_BACKLOG) != 0) {
            COFRE_LOG(COFRE_LOG_ERROR, NULL, "cannot listen", COFRE_LF_INT("port", s->port),
                      COFRE_LF_STR("error", strerror(fd < 0 ? -fd : errno)));
            for (unsigned j = 0; j < i; j++)
                close(s->loops[j].listen_fd);
            if (fd >= 0)
                close(fd);
            return COFRE_EIO;
        }
        s->loops[i].listen_fd = fd;
    }
    return 0;
}

uint16_t cofre_http_server_port(const cofre_http_server_t *s)
{
    return s->port;
}

/* ---- loops ------------------------------------------------------------------------------ */

static void on_accept(h2o_socket_t *listener, const char *err)
{
    http_loop_t *l = listener->data;
    if (err != NULL)
        return;
    for (int i = 0; i < HTTP_ACCEPTS_PER_WAKE; i++) {
        h2o_socket_t *sock = h2o_evloop_socket_accept(listener);
        if (sock == NULL)
            return;
        h2o_accept(&l->accept_ctx, sock);
    }
}

static void close_listener(http_loop_t *l)
{
    if (l->listener == NULL)
        return;
    h2o_socket_read_stop(l->listener);
    h2o_socket_close(l->listener);
    l->listener = NULL;
    /*
     * From now on answers carry Connection: close, and idle keep-alive connections time out
     * soon (h2o reads a timeout's length when it runs), so the clients of this loop move to
     * other replicas instead of having their next request cut off.
     */
    h2o_context_request_shutdown(&l->ctx);
    l->ctx.http1.req_timeout.timeout = HTTP_SHUTDOWN_IDLE_MS;
}

/* Control messages are tasks without a request, completed by the main thread. */
static void on_close_task(cofre_task_t *task)
{
    close_listener(H2O_STRUCT_FROM_MEMBER(http_loop_t, close_task, task));
}

static void on_exit_task(cofre_task_t *task)
{
    H2O_STRUCT_FROM_MEMBER(http_loop_t, exit_task, task)->exit = true;
}

static void *loop_main(void *arg)
{
    http_loop_t *l = arg;
    cofre_http_server_t *s = l->server;
    char name[16];
    snprintf(name, sizeof(name), "http-%u", (unsigned)(l - s->loops));
    pthread_setname_np(pthread_self(), name);
    cofre_log_buffer_start();
    l->loop = h2o_evloop_create();
    h2o_context_init(&l->ctx, l->loop, &s->h2o_config);
    l->accept_ctx.ctx = &l->ctx;
    l->accept_ctx.hosts = s->h2o_config.hosts;
    l->mq = h2o_multithread_create_queue(l->loop);
    h2o_multithread_register_receiver(l->mq, &l->task_receiver, on_task_messages);
    l->close_task = (cofre_task_t){.loop_ = l, .done = on_close_task};
    l->exit_task = (cofre_task_t){.loop_ = l, .done = on_exit_task};
    l->listener = h2o_evloop_socket_create(l->loop, l->listen_fd, H2O_SOCKET_FLAG_DONT_READ);
    l->listener->data = l;
    h2o_socket_read_start(l->listener, on_accept);
    atomic_fetch_add(&s->loops_started, 1);

    while (!l->exit) {
        h2o_evloop_run(l->loop, INT32_MAX);
        atomic_store(&l->has_conns, !h2o_linklist_is_empty(&l->ctx.http1._conns));
        cofre_log_flush();
    }
    close_listener(l);
    cofre_log_flush();
    return NULL;
}

static void close_listeners(cofre_http_server_t *s)
{
    for (unsigned i = 0; i < s->cfg.threads; i++)
        cofre_task_complete(&s->loops[i].close_task);
}

static void stop_loops(cofre_http_server_t *s)
{
    for (unsigned i = 0; i < s->cfg.threads; i++)
        cofre_task_complete(&s->loops[i].exit_task);
    for (unsigned i = 0; i < s->cfg.threads; i++)
        pthread_join(s->loops[i].thread, NULL);
}

/* Waits for SIGTERM or SIGINT up to timeout_ms (-1: forever). Returns true when one came. */
static bool wait_signal(long timeout_ms)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    if (timeout_ms < 0) {
        int sig;
        return sigwait(&set, &sig) == 0;
    }
    struct timespec ts = {.tv_sec = timeout_ms / 1000, .tv_nsec = (timeout_ms % 1000) * 1000000};
    for (;;) {
        int rc = sigtimedwait(&set, NULL, &ts);
        if (rc >= 0)
            return true;
        if (errno != EINTR)
            return false;
    }
}

static bool busy(cofre_http_server_t *s)
{
    if (atomic_load(&s->in_flight) > 0)
        return true;
    for (unsigned i = 0; i < s->cfg.threads; i++)
        if (atomic_load(&s->loops[i].has_conns))
            return true;
    return false;
}

/*
 * Waits until no request is in flight and no connection is open (a request may be on its way
 * over a kept-alive one), up to timeout_s. Returns 0 or COFRE_ETIMEDOUT.
 */
static int wait_idle(cofre_http_server_t *s, unsigned timeout_s)
{
    uint64_t deadline = cofre_now_mono_ns() + (uint64_t)timeout_s * 1000000000u;
    while (busy(s)) {
        if (cofre_now_mono_ns() >= deadline)
            return COFRE_ETIMEDOUT;
        usleep(5000);
    }
    return 0;
}

static void start_loops(cofre_http_server_t *s)
{
    for (unsigned i = 0; i < s->cfg.threads; i++) {
        s->loops[i].server = s;
        COFRE_ASSERT(pthread_create(&s->loops[i].thread, NULL, loop_main, &s->loops[i]) == 0);
    }
    while (atomic_load(&s->loops_started) < s->cfg.threads)
        usleep(200);
}

int cofre_http_server_run(cofre_http_server_t *s)
{
    start_loops(s);
    COFRE_LOG(COFRE_LOG_INFO, NULL, "listening", COFRE_LF_STR("host", s->cfg.listen.host),
              COFRE_LF_INT("port", s->port), COFRE_LF_INT("threads", s->cfg.threads));
    wait_signal(-1);

    atomic_store(&s->phase, PHASE_DRAINING);
    COFRE_LOG(COFRE_LOG_INFO, NULL, "draining: readiness fails, still serving",
              COFRE_LF_INT("drain_s", s->cfg.drain_s));
    if (s->cfg.drain_s > 0 && wait_signal((long)s->cfg.drain_s * 1000))
        cofre_log_msg(COFRE_LOG_WARN, NULL, "second signal: drain cut short");

    atomic_store(&s->phase, PHASE_CLOSING);
    close_listeners(s);
    cofre_log_msg(COFRE_LOG_INFO, NULL, "stopped accepting; finishing in-flight requests");
    int rc = wait_idle(s, s->cfg.shutdown_timeout_s);
    if (rc != 0)
        COFRE_LOG(COFRE_LOG_WARN, NULL, "shutdown timeout: requests still in flight",
                  COFRE_LF_INT("in_flight", atomic_load(&s->in_flight)));

    atomic_store(&s->phase, PHASE_STOPPED);
    stop_loops(s);
    return rc;
}

void cofre_http_server_stop(cofre_http_server_t *s)
{
    (void)s;
    kill(getpid(), SIGTERM);
}

bool cofre_http_server_draining(const cofre_http_server_t *s)
{
    return atomic_load(&s->phase) != PHASE_RUNNING;
}

void cofre_http_server_free(cofre_http_server_t *s)
{
    if (s == NULL)
        return;
    h2o_config_dispose(&s->h2o_config);
    free(s);
}
