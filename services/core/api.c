/*
 * api.c: the core API's handlers.
 *
 * Writes: validate the Idempotency-Key and the body on the loop, hold the key in the in-flight
 * registry, queue the command to the committer; command_done answers. Reads: validate on the
 * loop, queue a read task to the reader pool, whose thread queries its own connection and
 * encodes the answer; read_done sends it.
 */
#include "core/api.h"

#include "cofre/common.h"
#include "cofre/jbuf.h"
#include "cofre/log.h"
#include "cofre/uuid.h"
#include "core/store.h"
#include "core/wire.h"

#include <stdlib.h>
#include <string.h>

/* ---- writes ----------------------------------------------------------------------------- */

static void command_done(cofre_task_t *task)
{
    cofre_cmd_t *cmd = (cofre_cmd_t *)task;
    cofre_api_t *api = cmd->api;
    cofre_idem_release(api->inflight, cmd->client_id, cmd->idem_key);
    cofre_req_t *req = task->req;
    if (req != NULL) {
        if (cmd->replayed)
            cofre_req_add_header(req, "idempotency-replayed", "true", 4);
        if (cmd->status == 503)
            cofre_req_add_header(req, "retry-after", "1", 1);
        const char *type = cmd->status >= 400 ? "application/problem+json" : "application/json";
        cofre_req_respond(req, cmd->status, type, cmd->body, cmd->body_len);
    }
    cofre_cmd_free(cmd);
}

/* Starts a command from the request's identity and Idempotency-Key; NULL after answering. */
static cofre_cmd_t *start_command(cofre_api_t *api, cofre_req_t *req, cofre_cmd_kind_t kind)
{
    size_t key_len = 0;
    const char *key = cofre_req_header(req, "idempotency-key", &key_len);
    if (key == NULL || !cofre_wire_idempotency_key_valid(key, key_len)) {
        cofre_req_fail(req, COFRE_P_INVALID_REQUEST,
                       "the Idempotency-Key header is required: 1 to %d printable characters",
                       COFRE_WIRE_IDEMPOTENCY_KEY_MAX);
        return NULL;
    }
    cofre_cmd_t *cmd = cofre_calloc(1, sizeof(*cmd));
    cmd->api = api;
    cmd->kind = kind;
    snprintf(cmd->client_id, sizeof(cmd->client_id), "%s", req->caller.client_id);
    snprintf(cmd->owner, sizeof(cmd->owner), "%s", req->caller.owner);
    cmd->admin = (req->caller.scopes & COFRE_SCOPE_LEDGER_ADMIN) != 0;
    memcpy(cmd->idem_key, key, key_len + 1);
    cofre_trace_format(&req->trace, cmd->traceparent);
    snprintf(cmd->request_id, sizeof(cmd->request_id), "%s", req->trace.request_id);
    snprintf(cmd->peer, sizeof(cmd->peer), "%s", cofre_req_peer(req));
    h2o_iovec_t body = cofre_req_body(req);
    h2o_req_t *r = req->h2o;
    cofre_idem_request_hash(r->method.base, r->method.len, r->path.base, r->path.len, body.base,
                            body.len, cmd->request_hash);
    return cmd;
}

static void submit_command(cofre_api_t *api, cofre_req_t *req, cofre_cmd_t *cmd)
{
    if (!cofre_idem_acquire(api->inflight, cmd->client_id, cmd->idem_key)) {
        cofre_req_fail(req, COFRE_P_IDEMPOTENCY_IN_FLIGHT,
                       "a request with this Idempotency-Key is still running");
        cofre_cmd_free(cmd);
        return;
    }
    cmd->task.done = command_done;
    cofre_req_defer(req, &cmd->task);
    int rc = cofre_committer_submit(api->committer, cmd);
    if (rc == 0)
        return;
    cofre_req_undefer(req);
    cofre_idem_release(api->inflight, cmd->client_id, cmd->idem_key);
    cofre_cmd_free(cmd);
    cofre_req_fail(req, COFRE_P_OVERLOADED, "the ledger's write queue is full");
}

static void handle_create_account(cofre_req_t *req, void *data)
{
    cofre_api_t *api = data;
    cofre_cmd_t *cmd = start_command(api, req, COFRE_CMD_OPEN_ACCOUNT);
    if (cmd == NULL)
        return;
    h2o_iovec_t body = cofre_req_body(req);
    cofre_problem_t err;
    if (!cofre_wire_decode_account(body.base, body.len, &cmd->account, &err)) {
        cofre_cmd_free(cmd);
        cofre_req_respond_problem(req, &err);
        return;
    }
    if (!cmd->admin && strcmp(cmd->account.owner, cmd->owner) != 0) {
        cofre_cmd_free(cmd);
        cofre_req_fail(req, COFRE_P_FORBIDDEN, "only ledger:admin opens accounts for others");
        return;
    }
    /* An account that may go negative can create money: settlement accounts are the bank's. */
    if (!cmd->admin && !cmd->account.no_overdraft) {
        cofre_cmd_free(cmd);
        cofre_req_fail(req, COFRE_P_FORBIDDEN,
                       "only ledger:admin opens settlement accounts (no_overdraft false)");
        return;
    }
    submit_command(api, req, cmd);
}

static void handle_create_transfer(cofre_req_t *req, void *data)
{
    cofre_api_t *api = data;
    cofre_cmd_t *cmd = start_command(api, req, COFRE_CMD_POST_TRANSFERS);
    if (cmd == NULL)
        return;
    h2o_iovec_t body = cofre_req_body(req);
    cofre_problem_t err;
    cmd->transfers = cofre_malloc(sizeof(cofre_transfer_t));
    cmd->ntransfers = 1;
    if (!cofre_wire_decode_transfer(body.base, body.len, cmd->transfers, &err)) {
        cofre_cmd_free(cmd);
        cofre_req_respond_problem(req, &err);
        return;
    }
    submit_command(api, req, cmd);
}

static void handle_create_batch(cofre_req_t *req, void *data)
{
    cofre_api_t *api = data;
    cofre_cmd_t *cmd = start_command(api, req, COFRE_CMD_POST_TRANSFERS);
    if (cmd == NULL)
        return;
    h2o_iovec_t body = cofre_req_body(req);
    cofre_problem_t err;
    cmd->batch = true;
    if (!cofre_wire_decode_batch(body.base, body.len, &cmd->transfers, &cmd->ntransfers,
                                 &cmd->atomic, &err)) {
        cofre_cmd_free(cmd);
        cofre_req_respond_problem(req, &err);
        return;
    }
    submit_command(api, req, cmd);
}

/* ---- reads ------------------------------------------------------------------------------ */

typedef enum { READ_ACCOUNT, READ_TRANSFER, READ_ACCOUNTS, READ_ACCOUNT_TRANSFERS } read_kind_t;

typedef struct read_task {
    cofre_task_t task;
    read_kind_t kind;
    char id[COFRE_UUID_LEN + 1];
    char owner[COFRE_LEDGER_OWNER_MAX + 1]; /* READ_ACCOUNTS filter; "" for all */
    char caller_owner[COFRE_LEDGER_OWNER_MAX + 1];
    bool admin;
    int64_t cursor_seq;
    size_t limit;
    char request_id[COFRE_REQUEST_ID_MAX + 1];
    int status;
    cofre_jbuf_t body;
} read_task_t;

static void read_task_free(read_task_t *t)
{
    cofre_jbuf_release(&t->body);
    free(t);
}

static void read_fail(read_task_t *t, cofre_problem_code_t code, const char *what)
{
    cofre_problem_t p;
    cofre_problem_set(&p, code, "%s", what);
    cofre_jbuf_reset(&t->body);
    cofre_problem_render(&p, t->request_id, &t->body);
    t->status = cofre_problem_status(code);
}

/* Maps a store error to the answer; returns true when rc was an error. */
static bool read_error(read_task_t *t, int rc, cofre_problem_code_t absent, const char *what)
{
    if (rc == 0)
        return false;
    if (rc == COFRE_ENOENT)
        read_fail(t, absent, what);
    else
        read_fail(t, COFRE_P_UNAVAILABLE, "the ledger database is unavailable");
    return true;
}

static bool visible(const read_task_t *t, const char *owner)
{
    return t->admin || strcmp(owner, t->caller_owner) == 0;
}

static void run_account(read_task_t *t, cofre_store_t *st)
{
    cofre_account_t a;
    int rc = st->ops->account_get(st, t->id, &a);
    if (read_error(t, rc, COFRE_P_ACCOUNT_NOT_FOUND, "the account does not exist"))
        return;
    if (visible(t, a.owner)) {
        cofre_wire_account(&t->body, &a);
        t->status = 200;
    } else {
        read_fail(t, COFRE_P_ACCOUNT_NOT_FOUND, "the account does not exist");
    }
    cofre_account_release(&a);
}

/* True when the caller may see the transfer: it owns the debit or the credit account. */
static bool transfer_visible(read_task_t *t, cofre_store_t *st, const cofre_transfer_t *tr)
{
    if (t->admin)
        return true;
    const char *ids[2] = {tr->debit_account_id, tr->credit_account_id};
    for (int i = 0; i < 2; i++) {
        cofre_account_t a;
        if (st->ops->account_get(st, ids[i], &a) != 0)
            continue;
        bool mine = visible(t, a.owner);
        cofre_account_release(&a);
        if (mine)
            return true;
    }
    return false;
}

static void run_transfer(read_task_t *t, cofre_store_t *st)
{
    cofre_transfer_t tr;
    int rc = st->ops->transfer_get(st, t->id, &tr);
    if (read_error(t, rc, COFRE_P_TRANSFER_NOT_FOUND, "the transfer does not exist"))
        return;
    if (!transfer_visible(t, st, &tr)) {
        read_fail(t, COFRE_P_TRANSFER_NOT_FOUND, "the transfer does not exist");
        return;
    }
    cofre_wire_transfer(&t->body, &tr);
    t->status = 200;
}

static void write_next_cursor(read_task_t *t, char kind, size_t n, const int64_t *seqs)
{
    cofre_jbuf_key(&t->body, "next_cursor");
    if (n <= t->limit) {
        cofre_jbuf_null(&t->body);
        return;
    }
    char cursor[COFRE_WIRE_CURSOR_LEN + 1];
    cofre_wire_cursor_encode(kind, seqs[t->limit - 1], cursor);
    cofre_jbuf_str(&t->body, cursor);
}

static void run_accounts(read_task_t *t, cofre_store_t *st)
{
    cofre_page_query_t q = {.owner = t->owner[0] != '\0' ? t->owner : NULL,
                            .cursor_seq = t->cursor_seq,
                            .limit = t->limit};
    cofre_account_t *items = cofre_malloc((t->limit + 1) * sizeof(*items));
    int64_t *seqs = cofre_malloc((t->limit + 1) * sizeof(*seqs));
    size_t n = 0;
    int rc = st->ops->accounts_page(st, &q, items, seqs, &n);
    if (!read_error(t, rc, COFRE_P_INTERNAL, "")) {
        cofre_jbuf_obj_begin(&t->body);
        cofre_jbuf_key(&t->body, "data");
        cofre_jbuf_arr_begin(&t->body);
        for (size_t i = 0; i < n && i < t->limit; i++)
            cofre_wire_account(&t->body, &items[i]);
        cofre_jbuf_arr_end(&t->body);
        write_next_cursor(t, 'a', n, seqs);
        cofre_jbuf_obj_end(&t->body);
        t->status = 200;
    }
    for (size_t i = 0; i < n; i++)
        cofre_account_release(&items[i]);
    free(items);
    free(seqs);
}

static void run_account_transfers(read_task_t *t, cofre_store_t *st)
{
    cofre_account_t a;
    int rc = st->ops->account_get(st, t->id, &a);
    if (read_error(t, rc, COFRE_P_ACCOUNT_NOT_FOUND, "the account does not exist"))
        return;
    bool mine = visible(t, a.owner);
    cofre_account_release(&a);
    if (!mine) {
        read_fail(t, COFRE_P_ACCOUNT_NOT_FOUND, "the account does not exist");
        return;
    }
    cofre_page_query_t q = {.account_id = t->id, .cursor_seq = t->cursor_seq, .limit = t->limit};
    cofre_transfer_t *items = cofre_malloc((t->limit + 1) * sizeof(*items));
    int64_t *seqs = cofre_malloc((t->limit + 1) * sizeof(*seqs));
    size_t n = 0;
    rc = st->ops->transfers_page(st, &q, items, seqs, &n);
    if (rc == COFRE_EINVAL) {
        read_fail(t, COFRE_P_INVALID_CURSOR, "the cursor is not one of this account's pages");
    } else if (!read_error(t, rc, COFRE_P_INTERNAL, "")) {
        cofre_jbuf_obj_begin(&t->body);
        cofre_jbuf_key(&t->body, "data");
        cofre_jbuf_arr_begin(&t->body);
        for (size_t i = 0; i < n && i < t->limit; i++)
            cofre_wire_transfer(&t->body, &items[i]);
        cofre_jbuf_arr_end(&t->body);
        write_next_cursor(t, 't', n, seqs);
        cofre_jbuf_obj_end(&t->body);
        t->status = 200;
    }
    free(items);
    free(seqs);
}

static void read_run(cofre_task_t *task, void *thread_data)
{
    read_task_t *t = (read_task_t *)task;
    cofre_store_t *st = thread_data;
    if (st == NULL) {
        read_fail(t, COFRE_P_UNAVAILABLE, "the ledger database is unavailable");
        return;
    }
    switch (t->kind) {
    case READ_ACCOUNT:
        run_account(t, st);
        break;
    case READ_TRANSFER:
        run_transfer(t, st);
        break;
    case READ_ACCOUNTS:
        run_accounts(t, st);
        break;
    case READ_ACCOUNT_TRANSFERS:
        run_account_transfers(t, st);
        break;
    }
}

static void read_done(cofre_task_t *task)
{
    read_task_t *t = (read_task_t *)task;
    if (task->req != NULL) {
        if (t->status == 503)
            cofre_req_add_header(task->req, "retry-after", "1", 1);
        const char *type = t->status >= 400 ? "application/problem+json" : "application/json";
        cofre_req_respond(task->req, t->status, type, t->body.data, t->body.len);
    }
    read_task_free(t);
}

static read_task_t *read_task_new(cofre_req_t *req, read_kind_t kind)
{
    read_task_t *t = cofre_calloc(1, sizeof(*t));
    t->kind = kind;
    t->admin = (req->caller.scopes & COFRE_SCOPE_LEDGER_ADMIN) != 0;
    snprintf(t->caller_owner, sizeof(t->caller_owner), "%s", req->caller.owner);
    snprintf(t->request_id, sizeof(t->request_id), "%s", req->trace.request_id);
    t->limit = COFRE_WIRE_LIMIT_DEFAULT;
    t->task.run = read_run;
    t->task.done = read_done;
    cofre_jbuf_init(&t->body);
    return t;
}

static void submit_read(cofre_api_t *api, cofre_req_t *req, read_task_t *t)
{
    cofre_req_defer(req, &t->task);
    if (cofre_workers_submit(api->readers, &t->task) == 0)
        return;
    cofre_req_undefer(req);
    read_task_free(t);
    cofre_req_fail(req, COFRE_P_OVERLOADED, "the ledger's read queue is full");
}

/* Reads the {id} path parameter as a UUID; answers 400 and returns false when it is not one. */
static bool path_id(cofre_req_t *req, char out[COFRE_UUID_LEN + 1])
{
    const char *id = cofre_req_param(req, "id");
    if (id != NULL && cofre_uuid_parse(id, strlen(id), out))
        return true;
    cofre_req_fail(req, COFRE_P_INVALID_REQUEST, "the id in the path must be a UUID");
    return false;
}

/* Reads limit and cursor; answers 400 and returns false when either is malformed. */
static bool page_params(cofre_req_t *req, read_task_t *t, char kind)
{
    const char *v;
    int rc = cofre_req_query(req, "limit", &v);
    if (rc == COFRE_EINVAL || (rc == 0 && !cofre_wire_parse_limit(v, &t->limit))) {
        cofre_req_fail(req, COFRE_P_INVALID_REQUEST, "limit must be an integer from 1 to %d",
                       COFRE_WIRE_LIMIT_MAX);
        return false;
    }
    t->cursor_seq = kind == 't' ? INT64_MAX : 0;
    rc = cofre_req_query(req, "cursor", &v);
    if (rc == COFRE_EINVAL || (rc == 0 && !cofre_wire_cursor_decode(v, kind, &t->cursor_seq))) {
        cofre_req_fail(req, COFRE_P_INVALID_CURSOR, "cursor is not one this service issued");
        return false;
    }
    return true;
}

/* Answers 400 and returns false when the request has any query parameter. */
static bool no_query(cofre_req_t *req)
{
    static const char *const none[] = {NULL};
    cofre_problem_t err;
    if (cofre_req_query_allowed(req, none, &err))
        return true;
    cofre_req_respond_problem(req, &err);
    return false;
}

static void handle_get_account(cofre_req_t *req, void *data)
{
    char id[COFRE_UUID_LEN + 1];
    if (!no_query(req) || !path_id(req, id))
        return;
    read_task_t *t = read_task_new(req, READ_ACCOUNT);
    memcpy(t->id, id, sizeof(id));
    submit_read(data, req, t);
}

static void handle_get_transfer(cofre_req_t *req, void *data)
{
    char id[COFRE_UUID_LEN + 1];
    if (!no_query(req) || !path_id(req, id))
        return;
    read_task_t *t = read_task_new(req, READ_TRANSFER);
    memcpy(t->id, id, sizeof(id));
    submit_read(data, req, t);
}

/*
 * Reads the owner filter. A caller without ledger:admin lists its own accounts; asking for
 * another owner's finds none. Returns false after answering.
 */
static bool list_owner(cofre_req_t *req, read_task_t *t)
{
    const char *owner = NULL;
    int rc = cofre_req_query(req, "owner", &owner);
    if (rc == COFRE_EINVAL || (rc == 0 && !cofre_wire_owner_valid(owner, strlen(owner)))) {
        cofre_req_fail(req, COFRE_P_INVALID_REQUEST,
                       "owner must be 1 to %d characters of A-Z a-z 0-9 . _ : @ -",
                       COFRE_LEDGER_OWNER_MAX);
        return false;
    }
    if (!t->admin && owner != NULL && strcmp(owner, t->caller_owner) != 0) {
        cofre_req_respond_json(req, 200, H2O_STRLIT("{\"data\":[],\"next_cursor\":null}"));
        return false;
    }
    if (!t->admin)
        owner = t->caller_owner;
    if (owner != NULL)
        snprintf(t->owner, sizeof(t->owner), "%s", owner);
    return true;
}

static void handle_list_accounts(cofre_req_t *req, void *data)
{
    static const char *const allowed[] = {"owner", "limit", "cursor", NULL};
    cofre_problem_t err;
    if (!cofre_req_query_allowed(req, allowed, &err)) {
        cofre_req_respond_problem(req, &err);
        return;
    }
    read_task_t *t = read_task_new(req, READ_ACCOUNTS);
    if (!list_owner(req, t) || !page_params(req, t, 'a')) {
        read_task_free(t);
        return;
    }
    submit_read(data, req, t);
}

static void handle_list_account_transfers(cofre_req_t *req, void *data)
{
    static const char *const allowed[] = {"limit", "cursor", NULL};
    cofre_problem_t err;
    char id[COFRE_UUID_LEN + 1];
    if (!cofre_req_query_allowed(req, allowed, &err)) {
        cofre_req_respond_problem(req, &err);
        return;
    }
    if (!path_id(req, id))
        return;
    read_task_t *t = read_task_new(req, READ_ACCOUNT_TRANSFERS);
    memcpy(t->id, id, sizeof(id));
    if (!page_params(req, t, 't')) {
        read_task_free(t);
        return;
    }
    submit_read(data, req, t);
}

/* ---- wiring ----------------------------------------------------------------------------- */

void *cofre_api_reader_init(void *db_url)
{
    cofre_store_t *st = NULL;
    if (cofre_store_open(db_url, true, &st) != 0)
        return NULL;
    return st;
}

void cofre_api_reader_fini(void *store)
{
    cofre_store_close(store);
}

void cofre_api_register(cofre_api_t *api, cofre_http_server_t *s)
{
    const uint32_t admin = COFRE_SCOPE_LEDGER_ADMIN;
    cofre_http_route(s, "POST", "/v1/accounts", COFRE_ROUTE_JSON_BODY,
                     COFRE_SCOPE_ACCOUNTS_WRITE | admin, handle_create_account, api);
    cofre_http_route(s, "GET", "/v1/accounts", 0, COFRE_SCOPE_ACCOUNTS_READ | admin,
                     handle_list_accounts, api);
    cofre_http_route(s, "GET", "/v1/accounts/{id}", 0, COFRE_SCOPE_ACCOUNTS_READ | admin,
                     handle_get_account, api);
    cofre_http_route(s, "GET", "/v1/accounts/{id}/transfers", 0, COFRE_SCOPE_TRANSFERS_READ | admin,
                     handle_list_account_transfers, api);
    cofre_http_route(s, "POST", "/v1/transfers", COFRE_ROUTE_JSON_BODY,
                     COFRE_SCOPE_TRANSFERS_WRITE | admin, handle_create_transfer, api);
    cofre_http_route(s, "POST", "/v1/transfers/batch",
                     COFRE_ROUTE_JSON_BODY | COFRE_ROUTE_BULK_BODY,
                     COFRE_SCOPE_TRANSFERS_WRITE | admin, handle_create_batch, api);
    cofre_http_route(s, "GET", "/v1/transfers/{id}", 0, COFRE_SCOPE_TRANSFERS_READ | admin,
                     handle_get_transfer, api);
}
