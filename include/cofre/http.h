/*
 * http.h: the HTTP server every cofre service runs, on libh2o's evloop. One event loop per
 * thread, each with its own SO_REUSEPORT listener. Handlers run on a loop and must not block:
 * they answer at once, or hand a task to a worker and return; the worker completes the task,
 * and the task's done callback runs back on the request's loop to answer.
 *
 * The server adds what every service needs: /healthz, /readyz and /metrics; a trace context
 * and X-Request-Id per request; an access log line and RED metrics labelled by route
 * template; body size and content-type limits; graceful shutdown on SIGTERM (readiness fails
 * at once, serving continues for the drain period, then listeners close and in-flight
 * requests finish).
 */
#ifndef COFRE_HTTP_H
#define COFRE_HTTP_H

#include "cofre/config.h"
#include "cofre/jbuf.h"
#include "cofre/problem.h"
#include "cofre/router.h"
#include "cofre/trace.h"

#include <h2o.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct cofre_http_server cofre_http_server_t;
typedef struct cofre_req cofre_req_t;
typedef struct cofre_task cofre_task_t;

#define COFRE_CLIENT_ID_MAX 128
#define COFRE_OWNER_MAX     128

/* Scopes of the contract, as bits. */
#define COFRE_SCOPE_ACCOUNTS_READ   (1u << 0)
#define COFRE_SCOPE_ACCOUNTS_WRITE  (1u << 1)
#define COFRE_SCOPE_TRANSFERS_READ  (1u << 2)
#define COFRE_SCOPE_TRANSFERS_WRITE (1u << 3)
#define COFRE_SCOPE_AUDIT_READ      (1u << 4)
#define COFRE_SCOPE_LEDGER_ADMIN    (1u << 5)
#define COFRE_SCOPE_ALL             0x3fu

/*
 * Who is calling. Until token checks are enabled every request is the fixed local client
 * ("local", every scope); a token check fills it from the verified token.
 */
typedef struct cofre_caller {
    char client_id[COFRE_CLIENT_ID_MAX + 1];
    char owner[COFRE_OWNER_MAX + 1]; /* the token's sub */
    uint32_t scopes;
} cofre_caller_t;

typedef void (*cofre_http_handler_fn)(cofre_req_t *req, void *data);

/* Route options. */
#define COFRE_ROUTE_JSON_BODY (1u << 0) /* requires Content-Type: application/json */
#define COFRE_ROUTE_QUIET     (1u << 1) /* probes and scrapes: access log at debug level */
#define COFRE_ROUTE_BULK_BODY (1u << 2) /* bodies up to COFRE_HTTP_BULK_BODY_MAX (batches) */

#define COFRE_HTTP_BULK_BODY_MAX (256 * 1024)

struct cofre_req {
    h2o_req_t *h2o;
    cofre_http_server_t *server;
    const cofre_route_t *route;
    cofre_route_params_t params;
    cofre_trace_t trace;
    cofre_caller_t caller;
    uint64_t start_ns;
    bool responded;
    cofre_task_t *pending; /* the task deferred on this request, if any */
};

/*
 * A unit of work handed from a loop to another thread. Embed it as the first member of the
 * caller's own struct. run executes on a worker; done executes on the request's loop
 * afterwards, always: with req == NULL when the request went away meanwhile (done must still
 * release what the task holds, and free it).
 */
struct cofre_task {
    h2o_multithread_message_t msg_; /* private */
    void *loop_;                    /* private: the loop to return to */
    cofre_req_t *req;
    void (*run)(cofre_task_t *task, void *thread_data);
    void (*done)(cofre_task_t *task);
};

typedef struct cofre_http_config {
    const char *service; /* "cofre-core" */
    cofre_listen_t listen;
    unsigned threads;            /* event loops */
    size_t body_max_bytes;       /* larger bodies get 413 */
    uint64_t request_timeout_ms; /* to receive a whole request, and idle keep-alive */
    unsigned drain_s;            /* serving after SIGTERM with /readyz failing */
    unsigned shutdown_timeout_s; /* then at most this long for in-flight requests */
    /* Readiness of the service's dependencies, called by /readyz on a loop: must not block. */
    bool (*ready)(void *data, const char **reason);
    void *ready_data;
    /*
     * Token check, on a loop, before the handler of every route that needs scopes: fills
     * req->caller from the request's credentials and returns true, or fills err (unauthorized,
     * forbidden) and returns false. NULL: token checks are off and every caller is the fixed
     * local client with every scope.
     */
    bool (*authenticate)(void *data, cofre_req_t *req, uint32_t scopes, cofre_problem_t *err);
    void *authenticate_data;
} cofre_http_config_t;

/* Creates a server (copying cfg). Registers /healthz, /readyz and /metrics. */
cofre_http_server_t *cofre_http_server_new(const cofre_http_config_t *cfg);

/*
 * Adds a route: method ("GET"), template ("/v1/accounts/{id}"), COFRE_ROUTE_* flags, and the
 * scopes a caller needs (COFRE_SCOPE_* bits, any one of which suffices; 0: a public route that
 * never asks for a token, such as the probes).
 */
void cofre_http_route(cofre_http_server_t *s, const char *method, const char *tmpl, unsigned flags,
                      uint32_t scopes, cofre_http_handler_fn fn, void *data);

/* Writes "METHOD TEMPLATE\n" for every route, sorted (used by the OpenAPI check). */
void cofre_http_print_routes(const cofre_http_server_t *s, FILE *out);

/*
 * Binds the listeners. Returns 0, or COFRE_EIO with a logged reason (address in use,
 * permission). Port 0 picks a free port, shared by every loop.
 */
int cofre_http_server_listen(cofre_http_server_t *s);

/* The bound port (after listen). */
uint16_t cofre_http_server_port(const cofre_http_server_t *s);

/*
 * Runs the loops until SIGTERM or SIGINT, then shuts down gracefully (see above). Blocks the
 * calling thread, which must be the main thread: it owns signal handling. Returns 0 when
 * every in-flight request finished, COFRE_ETIMEDOUT when the shutdown timeout cut some off.
 */
int cofre_http_server_run(cofre_http_server_t *s);

/* Starts a graceful shutdown as if SIGTERM had arrived (any thread). */
void cofre_http_server_stop(cofre_http_server_t *s);

/* True once shutdown has begun: readiness fails. */
bool cofre_http_server_draining(const cofre_http_server_t *s);

void cofre_http_server_free(cofre_http_server_t *s);

/* Request accessors, on the request's loop. */
const char *cofre_req_param(const cofre_req_t *req, const char *name);
h2o_iovec_t cofre_req_body(const cofre_req_t *req);
/* A request header (name in lowercase); NULL when absent. */
const char *cofre_req_header(const cofre_req_t *req, const char *name, size_t *len);

/*
 * Reads query parameter name, percent-decoded, into the request's memory. Returns 0,
 * COFRE_ENOENT when absent, COFRE_EINVAL when malformed or repeated.
 */
int cofre_req_query(cofre_req_t *req, const char *name, const char **value);

/* Checks every query parameter is in allowed (NULL-terminated); else fills err. */
bool cofre_req_query_allowed(cofre_req_t *req, const char *const *allowed, cofre_problem_t *err);

/* The peer's address as text ("127.0.0.1"), in the request's memory. */
const char *cofre_req_peer(cofre_req_t *req);

/* Adds a response header (before responding); name lowercase. Values are copied. */
void cofre_req_add_header(cofre_req_t *req, const char *name, const char *value, size_t len);

/* Responds with a JSON body (copied). */
void cofre_req_respond_json(cofre_req_t *req, int status, const char *body, size_t len);

/* Responds with application/problem+json for p. */
void cofre_req_respond_problem(cofre_req_t *req, const cofre_problem_t *p);

/* Responds with a problem built from code and a formatted detail. */
void cofre_req_fail(cofre_req_t *req, cofre_problem_code_t code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Responds with any content type (copied). */
void cofre_req_respond(cofre_req_t *req, int status, const char *content_type, const char *body,
                       size_t len);

/*
 * Defers the answer: attaches task to req (sets task->req) so that when it is completed, its
 * done callback runs on this loop. The handler then returns; nothing else may touch req
 * until done.
 */
void cofre_req_defer(cofre_req_t *req, cofre_task_t *task);

/* Takes back a deferral whose task was never handed to another thread (a full queue). */
void cofre_req_undefer(cofre_req_t *req);

/* Completes a deferred task from any thread: queues task->done on the request's loop. */
void cofre_task_complete(cofre_task_t *task);

#endif
