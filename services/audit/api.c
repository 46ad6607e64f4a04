/*
 * api.c: cofre-audit's HTTP handlers (see api.h). Handlers validate on the loop and hand the
 * work to a pool; the answer is written there and sent back on the loop.
 */
#include "audit/api.h"

#include "audit/store.h"
#include "audit/verify.h"
#include "cofre/common.h"
#include "cofre/log.h"
#include "cofre/metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define VERIFY_QUEUE_MAX 8
#define TEXT_PARAM_MAX   COFRE_AUDIT_NAME_MAX

struct cofre_audit_api {
    cofre_audit_api_config_t cfg;
    cofre_workers_t *readers;
    cofre_workers_t *verifiers;
    pthread_t periodic;
    bool has_periodic;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    bool stopping;
};

static struct {
    pthread_once_t once;
    cofre_series_t *ok, *last_verified, *verified_records;
} metrics = {.once = PTHREAD_ONCE_INIT};

static void register_metrics(void)
{
    metrics.ok = cofre_metric_with(
        cofre_metric_gauge("cofre_audit_verify_ok",
                           "1 when the last verification of the whole trail held, 0 when not.",
                           NULL),
        NULL);
    metrics.last_verified = cofre_metric_with(
        cofre_metric_gauge("cofre_audit_last_verified_timestamp_seconds",
                           "When the trail was last verified (Unix time), whatever the result.",
                           NULL),
        NULL);
    metrics.verified_records =
        cofre_metric_with(cofre_metric_gauge("cofre_audit_verified_records",
                                             "Records the last verification checked.", NULL),
                          NULL);
}

/* Verifies and records the result in the metrics and, when bad, the log. */
static int verify_and_record(cofre_audit_store_t *s, const cofre_audit_keys_t *keys,
                             cofre_audit_verdict_t *v)
{
    int rc = cofre_audit_verify(s, keys, v);
    if (rc != 0)
        return rc;
    cofre_gauge_set(metrics.ok, v->ok ? 1 : 0);
    cofre_gauge_set(metrics.last_verified, (double)cofre_now_wall_us() / 1e6);
    cofre_gauge_set(metrics.verified_records, (double)v->records);
    if (!v->ok)
        COFRE_LOG(COFRE_LOG_ERROR, NULL, "audit trail verification failed",
                  COFRE_LF_INT("first_bad", v->first_bad), COFRE_LF_STR("reason", v->reason));
    return 0;
}

/* ---- tasks -------------------------------------------------------------------------------- */

typedef enum task_kind {
    TASK_EVENTS,
    TASK_VERIFY,
} task_kind_t;

typedef struct api_task {
    cofre_task_t task; /* first */
    cofre_audit_api_t *api;
    task_kind_t kind;
    char subject[TEXT_PARAM_MAX + 1];
    char type[TEXT_PARAM_MAX + 1];
    cofre_audit_query_t q;
    int status;
    cofre_jbuf_t body;
} api_task_t;

static void task_fail(api_task_t *t, cofre_problem_code_t code, const char *detail)
{
    cofre_problem_t p;
    cofre_problem_set(&p, code, "%s", detail);
    cofre_jbuf_reset(&t->body);
    cofre_problem_render(&p, NULL, &t->body);
    t->status = cofre_problem_status(code);
}

static void run_events(api_task_t *t, cofre_audit_store_t *s)
{
    cofre_audit_record_t *recs = cofre_calloc(t->q.limit + 1, sizeof(*recs));
    size_t n = 0;
    int rc = s->ops->page(s, &t->q, recs, &n);
    if (rc != 0) {
        task_fail(t, COFRE_P_UNAVAILABLE, "the audit store failed");
    } else {
        cofre_jbuf_obj_begin(&t->body);
        cofre_jbuf_key(&t->body, "data");
        cofre_jbuf_arr_begin(&t->body);
        for (size_t i = 0; i < n && i < t->q.limit; i++)
            cofre_audit_record_json(&recs[i], &t->body);
        cofre_jbuf_arr_end(&t->body);
        char cursor[24];
        if (n > t->q.limit)
            snprintf(cursor, sizeof(cursor), "%lld", (long long)recs[t->q.limit - 1].seq);
        cofre_jbuf_kstr(&t->body, "next_cursor", n > t->q.limit ? cursor : NULL);
        cofre_jbuf_obj_end(&t->body);
        t->status = 200;
    }
    for (size_t i = 0; i < n; i++)
        cofre_audit_record_release(&recs[i]);
    free(recs);
}

static void run_verify(api_task_t *t, cofre_audit_store_t *s)
{
    cofre_audit_verdict_t v;
    if (verify_and_record(s, t->api->cfg.keys, &v) != 0) {
        task_fail(t, COFRE_P_UNAVAILABLE, "the audit store failed");
        return;
    }
    cofre_audit_verdict_json(&v, &t->body);
    t->status = 200;
}

static void task_run(cofre_task_t *task, void *thread_data)
{
    api_task_t *t = (api_task_t *)task;
    cofre_audit_store_t *s = thread_data;
    if (s == NULL) {
        task_fail(t, COFRE_P_UNAVAILABLE, "the audit store is unavailable");
        return;
    }
    if (t->kind == TASK_EVENTS)
        run_events(t, s);
    else
        run_verify(t, s);
}

static void task_free(api_task_t *t)
{
    cofre_jbuf_release(&t->body);
    free(t);
}

static void task_done(cofre_task_t *task)
{
    api_task_t *t = (api_task_t *)task;
    if (task->req != NULL) {
        if (t->status == 503)
            cofre_req_add_header(task->req, "retry-after", "1", 1);
        const char *type = t->status >= 400 ? "application/problem+json" : "application/json";
        cofre_req_respond(task->req, t->status, type, t->body.data, t->body.len);
    }
    task_free(t);
}

static api_task_t *task_new(cofre_audit_api_t *api, task_kind_t kind)
{
    api_task_t *t = cofre_calloc(1, sizeof(*t));
    t->api = api;
    t->kind = kind;
    t->task.run = task_run;
    t->task.done = task_done;
    cofre_jbuf_init(&t->body);
    return t;
}

static void submit(cofre_req_t *req, cofre_workers_t *pool, api_task_t *t)
{
    cofre_req_defer(req, &t->task);
    if (cofre_workers_submit(pool, &t->task) == 0)
        return;
    cofre_req_undefer(req);
    task_free(t);
    cofre_req_fail(req, COFRE_P_OVERLOADED, "too many audit reads waiting");
}

/* ---- handlers ----------------------------------------------------------------------------- */

bool cofre_audit_cursor_parse(const char *s, int64_t *seq)
{
    size_t len = strlen(s);
    if (len < 1 || len > 18 || s[0] == '0')
        return false;
    int64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *seq = v;
    return true;
}

static bool parse_limit(const char *s, size_t *limit)
{
    int64_t v;
    if (!cofre_audit_cursor_parse(s, &v) || v > COFRE_AUDIT_LIMIT_MAX)
        return false;
    *limit = (size_t)v;
    return true;
}

/* Reads an optional query parameter; answers 400 and returns false when malformed. */
static bool query_param(cofre_req_t *req, const char *name, const char **value)
{
    *value = NULL;
    int rc = cofre_req_query(req, name, value);
    if (rc == COFRE_ENOENT) {
        *value = NULL;
        return true;
    }
    if (rc != 0 || strlen(*value) < 1 || strlen(*value) > TEXT_PARAM_MAX) {
        cofre_req_fail(req, COFRE_P_INVALID_REQUEST, "query parameter %s is malformed", name);
        return false;
    }
    return true;
}

static bool time_param(cofre_req_t *req, const char *name, bool *has, int64_t *us)
{
    const char *v;
    if (!query_param(req, name, &v))
        return false;
    *has = v != NULL;
    if (v == NULL || cofre_audit_time_parse(v, strlen(v), us))
        return true;
    cofre_req_fail(req, COFRE_P_INVALID_REQUEST, "%s must be an RFC 3339 time", name);
    return false;
}

/* Fills t's query from the request; answers 400 and returns false when malformed. */
static bool read_query(cofre_req_t *req, api_task_t *t)
{
    static const char *const allowed[] = {"subject", "type", "from", "to", "limit", "cursor", NULL};
    cofre_problem_t err;
    if (!cofre_req_query_allowed(req, allowed, &err)) {
        cofre_req_respond_problem(req, &err);
        return false;
    }
    const char *subject, *type, *limit, *cursor;
    if (!query_param(req, "subject", &subject) || !query_param(req, "type", &type) ||
        !query_param(req, "limit", &limit) || !query_param(req, "cursor", &cursor) ||
        !time_param(req, "from", &t->q.has_from, &t->q.from_us) ||
        !time_param(req, "to", &t->q.has_to, &t->q.to_us))
        return false;
    t->q.limit = COFRE_AUDIT_LIMIT_DEFAULT;
    if (limit != NULL && !parse_limit(limit, &t->q.limit)) {
        cofre_req_fail(req, COFRE_P_INVALID_REQUEST, "limit must be 1 to %d",
                       COFRE_AUDIT_LIMIT_MAX);
        return false;
    }
    if (cursor != NULL && !cofre_audit_cursor_parse(cursor, &t->q.after_seq)) {
        cofre_req_fail(req, COFRE_P_INVALID_CURSOR, "the cursor is not one this API gave");
        return false;
    }
    if (subject != NULL) {
        snprintf(t->subject, sizeof(t->subject), "%s", subject);
        t->q.subject = t->subject;
    }
    if (type != NULL) {
        snprintf(t->type, sizeof(t->type), "%s", type);
        t->q.type = t->type;
    }
    return true;
}

static void handle_events(cofre_req_t *req, void *data)
{
    cofre_audit_api_t *api = data;
    api_task_t *t = task_new(api, TASK_EVENTS);
    if (!read_query(req, t)) {
        task_free(t);
        return;
    }
    submit(req, api->readers, t);
}

static bool no_query(cofre_req_t *req)
{
    static const char *const none[] = {NULL};
    cofre_problem_t err;
    if (cofre_req_query_allowed(req, none, &err))
        return true;
    cofre_req_respond_problem(req, &err);
    return false;
}

static void handle_verify(cofre_req_t *req, void *data)
{
    cofre_audit_api_t *api = data;
    if (no_query(req))
        submit(req, api->verifiers, task_new(api, TASK_VERIFY));
}

static void handle_keys(cofre_req_t *req, void *data)
{
    cofre_audit_api_t *api = data;
    if (!no_query(req))
        return;
    cofre_jbuf_t b;
    cofre_jbuf_init(&b);
    cofre_audit_keys_json(api->cfg.keys, &b);
    cofre_req_respond_json(req, 200, b.data, b.len);
    cofre_jbuf_release(&b);
}

void cofre_audit_api_register(cofre_audit_api_t *api, cofre_http_server_t *s)
{
    const uint32_t scope = COFRE_SCOPE_AUDIT_READ;
    cofre_http_route(s, "GET", "/v1/audit/events", 0, scope, handle_events, api);
    cofre_http_route(s, "GET", "/v1/audit/verify", 0, scope, handle_verify, api);
    cofre_http_route(s, "GET", "/v1/audit/keys", 0, scope, handle_keys, api);
}

/* ---- pools and the periodic verifier ------------------------------------------------------ */

static void *reader_init(void *data)
{
    const char *url = data;
    cofre_audit_store_t *s = NULL;
    return cofre_audit_store_open(url, true, &s) == 0 ? s : NULL;
}

static void reader_fini(void *thread_data)
{
    cofre_audit_store_close(thread_data);
}

static void *periodic_main(void *arg)
{
    cofre_audit_api_t *api = arg;
    cofre_audit_store_t *s = NULL;
    pthread_mutex_lock(&api->lock);
    while (!api->stopping) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += (time_t)api->cfg.verify_interval_s;
        pthread_cond_timedwait(&api->wake, &api->lock, &ts);
        if (api->stopping)
            break;
        pthread_mutex_unlock(&api->lock);
        if (s == NULL)
            cofre_audit_store_open(api->cfg.db_url, true, &s);
        cofre_audit_verdict_t v;
        if (s != NULL && verify_and_record(s, api->cfg.keys, &v) != 0) {
            cofre_audit_store_close(s);
            s = NULL;
        }
        pthread_mutex_lock(&api->lock);
    }
    pthread_mutex_unlock(&api->lock);
    cofre_audit_store_close(s);
    return NULL;
}

cofre_audit_api_t *cofre_audit_api_start(const cofre_audit_api_config_t *cfg)
{
    pthread_once(&metrics.once, register_metrics);
    cofre_audit_api_t *api = cofre_calloc(1, sizeof(*api));
    api->cfg = *cfg;
    pthread_mutex_init(&api->lock, NULL);
    pthread_cond_init(&api->wake, NULL);
    cofre_workers_config_t rc = {
        .name = "readers",
        .threads = cfg->readers,
        .queue_max = cfg->read_queue_max,
        .thread_init = reader_init,
        .thread_fini = reader_fini,
        .data = (void *)cfg->db_url,
    };
    api->readers = cofre_workers_start(&rc);
    cofre_workers_config_t vc = rc;
    vc.name = "verifier";
    vc.threads = 1;
    vc.queue_max = VERIFY_QUEUE_MAX;
    api->verifiers = cofre_workers_start(&vc);
    if (cfg->verify_interval_s > 0) {
        api->has_periodic = true;
        COFRE_ASSERT(pthread_create(&api->periodic, NULL, periodic_main, api) == 0);
    }
    return api;
}

void cofre_audit_api_stop(cofre_audit_api_t *api)
{
    if (api->has_periodic) {
        pthread_mutex_lock(&api->lock);
        api->stopping = true;
        pthread_cond_broadcast(&api->wake);
        pthread_mutex_unlock(&api->lock);
        pthread_join(api->periodic, NULL);
    }
    cofre_workers_stop(api->readers);
    cofre_workers_stop(api->verifiers);
    pthread_mutex_destroy(&api->lock);
    pthread_cond_destroy(&api->wake);
    free(api);
}
