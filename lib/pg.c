/*
 * pg.c: PostgreSQL connections on libpq: lazy connection with backoff, rounds of pipelined
 * queries under a deadline, SQLSTATE mapping, and binary array parameters. See pg.h.
 *
 * The socket is non-blocking and every wait is a poll() bounded by the round's deadline, so
 * a database that stops answering (a partition, a stopped host) costs at most one
 * round_timeout_ms before the caller gets COFRE_EUNAVAIL; the connection is then dropped,
 * because a pipeline cut in the middle cannot be resumed.
 */
#include "cofre/pg.h"

#include "cofre/common.h"
#include "cofre/log.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CONNECT_TIMEOUT_MS_DEFAULT 2000u
#define ROUND_TIMEOUT_MS_DEFAULT   6000u
#define BACKOFF_MAX_MS_DEFAULT     2000u
#define BACKOFF_FIRST_MS           50u
#define NS_PER_MS                  1000000u
/* Seconds between the Unix epoch and PostgreSQL's (2000-01-01). */
#define PG_EPOCH_UNIX_S 946684800

typedef struct query {
    const char *sql;
    int nparams;
    Oid types[COFRE_PG_PARAMS_MAX];
    const char *values[COFRE_PG_PARAMS_MAX];
    int lengths[COFRE_PG_PARAMS_MAX];
    int formats[COFRE_PG_PARAMS_MAX];
    uint64_t hash;     /* of sql: names the prepared statement */
    bool named;        /* sent as a named prepared statement */
    bool prepare_sent; /* its Parse went with this round */
} query_t;

/* Named statements prepared on the current connection (beyond this, unnamed ones are used). */
#define PREPARED_MAX 64

struct cofre_pg {
    cofre_pg_config_t cfg;
    char *url;
    char *app;
    PGconn *conn;
    uint64_t next_attempt_ns; /* no connection attempt before this */
    unsigned backoff_ms;
    bool down_logged;
    int nqueued;
    query_t queued[COFRE_PG_ROUND_MAX];
    int nresults;
    PGresult *results[COFRE_PG_ROUND_MAX];
    char sqlstate[6];
    bool unnamed_only; /* named statements failed here once (a transaction-mode pooler) */
    bool fallback;     /* the last round failed because of named statements */
    int nprepared;
    uint64_t prepared[PREPARED_MAX];
};

/* ---- connecting ------------------------------------------------------------------------- */

bool cofre_pg_url_valid(const char *url)
{
    COFRE_ASSERT(cofre_pq_load() == 0);
    char *err = NULL;
    PQconninfoOption *opts = PQconninfoParse(url, &err);
    if (opts == NULL) {
        COFRE_LOG(COFRE_LOG_ERROR, NULL, "malformed PostgreSQL URL in COFRE_DB",
                  COFRE_LF_STR("error", err != NULL ? err : "out of memory"));
        PQfreemem(err);
        return false;
    }
    PQconninfoFree(opts);
    return true;
}

cofre_pg_t *cofre_pg_new(const cofre_pg_config_t *cfg)
{
    COFRE_ASSERT(cfg->url != NULL);
    COFRE_ASSERT(cofre_pq_load() == 0);
    cofre_pg_t *pg = cofre_calloc(1, sizeof(*pg));
    pg->cfg = *cfg;
    pg->url = cofre_strdup(cfg->url);
    pg->app = cofre_strdup(cfg->application_name != NULL ? cfg->application_name : "cofre");
    if (pg->cfg.connect_timeout_ms == 0)
        pg->cfg.connect_timeout_ms = CONNECT_TIMEOUT_MS_DEFAULT;
    if (pg->cfg.round_timeout_ms == 0)
        pg->cfg.round_timeout_ms = ROUND_TIMEOUT_MS_DEFAULT;
    if (pg->cfg.backoff_max_ms == 0)
        pg->cfg.backoff_max_ms = BACKOFF_MAX_MS_DEFAULT;
    return pg;
}

static void clear_results(cofre_pg_t *pg)
{
    for (int i = 0; i < pg->nresults; i++)
        PQclear(pg->results[i]);
    pg->nresults = 0;
}

void cofre_pg_disconnect(cofre_pg_t *pg)
{
    if (pg->conn != NULL)
        PQfinish(pg->conn);
    pg->conn = NULL;
    pg->nprepared = 0;
}

void cofre_pg_free(cofre_pg_t *pg)
{
    if (pg == NULL)
        return;
    clear_results(pg);
    cofre_pg_disconnect(pg);
    free(pg->url);
    free(pg->app);
    free(pg);
}

static void on_notice(void *data, const PGresult *r)
{
    (void)data;
    COFRE_LOG(COFRE_LOG_DEBUG, NULL, "postgresql notice",
              COFRE_LF_STR("message", PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY)));
}

/* Waits until the socket is ready for what libpq asked; COFRE_ETIMEDOUT past the deadline. */
static int wait_fd(int fd, short events, uint64_t deadline_ns)
{
    for (;;) {
        uint64_t now = cofre_now_mono_ns();
        if (now >= deadline_ns)
            return COFRE_ETIMEDOUT;
        int ms = (int)((deadline_ns - now + NS_PER_MS - 1) / NS_PER_MS);
        struct pollfd p = {.fd = fd, .events = events};
        int rc = poll(&p, 1, ms);
        if (rc > 0)
            return 0;
        if (rc == 0)
            return COFRE_ETIMEDOUT;
        if (errno != EINTR)
            return COFRE_EIO;
    }
}

/* Runs libpq's connection state machine under our own deadline. */
static PGconn *connect_now(cofre_pg_t *pg, const char **why)
{
    char timeout_s[16];
    snprintf(timeout_s, sizeof(timeout_s), "%u", (pg->cfg.connect_timeout_ms + 999) / 1000);
    /* Ours first: the URL's own settings, expanded from dbname, override them. */
    const char *const keys[] = {
        "application_name",    "connect_timeout",  "keepalives", "keepalives_idle",
        "keepalives_interval", "keepalives_count", "dbname",     NULL};
    const char *const values[] = {pg->app, timeout_s, "1", "10", "5", "3", pg->url, NULL};
    PGconn *conn = PQconnectStartParams(keys, values, 1);
    uint64_t deadline = cofre_now_mono_ns() + (uint64_t)pg->cfg.connect_timeout_ms * NS_PER_MS;
    PostgresPollingStatusType st = PGRES_POLLING_WRITING;
    while (conn != NULL && PQstatus(conn) != CONNECTION_BAD && st != PGRES_POLLING_OK &&
           st != PGRES_POLLING_FAILED) {
        short ev = st == PGRES_POLLING_READING ? POLLIN : POLLOUT;
        if (wait_fd(PQsocket(conn), ev, deadline) != 0) {
            *why = "connection attempt timed out";
            PQfinish(conn);
            return NULL;
        }
        st = PQconnectPoll(conn);
    }
    if (conn == NULL || PQstatus(conn) != CONNECTION_OK) {
        *why = conn != NULL ? PQerrorMessage(conn) : "out of memory";
        return conn; /* the caller logs the message, then frees */
    }
    return conn;
}

static int setup_conn(cofre_pg_t *pg, PGconn *conn)
{
    PQsetNoticeReceiver(conn, on_notice, NULL);
    if (PQsetnonblocking(conn, 1) != 0)
        return COFRE_EIO;
    if (pg->cfg.pipeline && PQenterPipelineMode(conn) != 1)
        return COFRE_EIO;
    return 0;
}

static void note_failure(cofre_pg_t *pg, const char *why)
{
    pg->backoff_ms = pg->backoff_ms == 0 ? BACKOFF_FIRST_MS
                                         : COFRE_MIN(pg->backoff_ms * 2, pg->cfg.backoff_max_ms);
    pg->next_attempt_ns = cofre_now_mono_ns() + (uint64_t)pg->backoff_ms * NS_PER_MS;
    if (!pg->down_logged) {
        char msg[256];
        snprintf(msg, sizeof(msg), "%s", why);
        msg[strcspn(msg, "\n")] = '\0';
        COFRE_LOG(COFRE_LOG_WARN, NULL, "postgresql connection failed", COFRE_LF_STR("error", msg),
                  COFRE_LF_INT("retry_in_ms", pg->backoff_ms));
        pg->down_logged = true;
    }
}

int cofre_pg_connect(cofre_pg_t *pg)
{
    if (pg->conn != NULL && PQstatus(pg->conn) == CONNECTION_OK)
        return 0;
    cofre_pg_disconnect(pg);
    if (cofre_now_mono_ns() < pg->next_attempt_ns)
        return COFRE_EUNAVAIL;
    const char *why = NULL;
    PGconn *conn = connect_now(pg, &why);
    if (conn == NULL || PQstatus(conn) != CONNECTION_OK) {
        note_failure(pg, why != NULL ? why : "unknown");
        if (conn != NULL)
            PQfinish(conn);
        return COFRE_EUNAVAIL;
    }
    if (setup_conn(pg, conn) != 0) {
        note_failure(pg, "cannot set up the connection");
        PQfinish(conn);
        return COFRE_EUNAVAIL;
    }
    if (pg->down_logged)
        cofre_log_msg(COFRE_LOG_INFO, NULL, "postgresql connection restored");
    pg->conn = conn;
    pg->backoff_ms = 0;
    pg->next_attempt_ns = 0;
    pg->down_logged = false;
    return 0;
}

bool cofre_pg_in_transaction(const cofre_pg_t *pg)
{
    if (pg->conn == NULL)
        return false;
    PGTransactionStatusType st = PQtransactionStatus(pg->conn);
    return st == PQTRANS_INTRANS || st == PQTRANS_INERROR;
}

/* ---- rounds ----------------------------------------------------------------------------- */

void cofre_pg_add(cofre_pg_t *pg, const char *sql, const cofre_pg_param_t *params, int nparams)
{
    COFRE_ASSERT(pg->nqueued < COFRE_PG_ROUND_MAX && (pg->cfg.pipeline || pg->nqueued == 0));
    COFRE_ASSERT(nparams >= 0 && nparams <= COFRE_PG_PARAMS_MAX);
    query_t *q = &pg->queued[pg->nqueued++];
    q->sql = sql;
    q->nparams = nparams;
    q->named = q->prepare_sent = false;
    q->hash = 1469598103934665603u; /* FNV-1a */
    for (const char *c = sql; *c != '\0'; c++)
        q->hash = (q->hash ^ (uint8_t)*c) * 1099511628211u;
    for (int i = 0; i < nparams; i++) {
        q->types[i] = params[i].type;
        q->values[i] = params[i].value;
        q->lengths[i] = params[i].len;
        q->formats[i] = params[i].binary ? 1 : 0;
    }
}

void cofre_pg_discard(cofre_pg_t *pg)
{
    pg->nqueued = 0;
}

int cofre_pg_queued(const cofre_pg_t *pg)
{
    return pg->nqueued;
}

const PGresult *cofre_pg_result(const cofre_pg_t *pg, int i)
{
    return i >= 0 && i < pg->nresults ? pg->results[i] : NULL;
}

const char *cofre_pg_sqlstate(const cofre_pg_t *pg)
{
    return pg->sqlstate;
}

int cofre_pg_map_sqlstate(const char *s)
{
    static const char *const conflict[] = {"40001", "40P01", "23505", "55P03"};
    static const char *const unavail[] = {"57P01", "57P02", "57P03", "53300", "25006", "57014"};
    for (size_t i = 0; i < COFRE_ARRAY_SIZE(conflict); i++)
        if (strcmp(s, conflict[i]) == 0)
            return COFRE_ECONFLICT;
    for (size_t i = 0; i < COFRE_ARRAY_SIZE(unavail); i++)
        if (strcmp(s, unavail[i]) == 0)
            return COFRE_EUNAVAIL;
    if (s[0] == '0' && s[1] == '8') /* connection exception */
        return COFRE_EUNAVAIL;
    return COFRE_EIO;
}

/* Writes everything out, reading meanwhile so neither side's buffers can block the other. */
static int flush_all(PGconn *conn, uint64_t deadline)
{
    for (;;) {
        int f = PQflush(conn);
        if (f == 0)
            return 0;
        if (f < 0)
            return COFRE_EUNAVAIL;
        int rc = wait_fd(PQsocket(conn), POLLIN | POLLOUT, deadline);
        if (rc != 0)
            return rc;
        if (PQconsumeInput(conn) == 0)
            return COFRE_EUNAVAIL;
    }
}

static bool is_prepared(const cofre_pg_t *pg, uint64_t hash)
{
    for (int i = 0; i < pg->nprepared; i++)
        if (pg->prepared[i] == hash)
            return true;
    return false;
}

static void statement_name(uint64_t hash, char name[32])
{
    snprintf(name, 32, "cofre_%016" PRIx64, hash);
}

/*
 * Sends one query: a named prepared statement (Parse once per connection, then Bind/Execute
 * only: no parsing or planning per batch) when allowed, otherwise the unnamed statement.
 * The name is a hash of the SQL text, so a name always means the same statement.
 */
static int send_query(cofre_pg_t *pg, query_t *q)
{
    PGconn *conn = pg->conn;
    q->prepare_sent = false; /* a round resent after the fallback sends no Parse */
    if (!pg->cfg.pipeline && q->nparams == 0)
        return PQsendQuery(conn, q->sql);
    q->named = pg->cfg.prepare && !pg->unnamed_only && pg->cfg.pipeline && q->nparams > 0 &&
               (is_prepared(pg, q->hash) || pg->nprepared < PREPARED_MAX);
    if (!q->named)
        return PQsendQueryParams(conn, q->sql, q->nparams, q->types, q->values, q->lengths,
                                 q->formats, 0);
    char name[32];
    statement_name(q->hash, name);
    q->prepare_sent = !is_prepared(pg, q->hash);
    if (q->prepare_sent && PQsendPrepare(conn, name, q->sql, q->nparams, q->types) != 1)
        return 0;
    return PQsendQueryPrepared(conn, name, q->nparams, q->values, q->lengths, q->formats, 0);
}

static int send_round(cofre_pg_t *pg, uint64_t deadline)
{
    for (int i = 0; i < pg->nqueued; i++)
        if (send_query(pg, &pg->queued[i]) != 1)
            return COFRE_EUNAVAIL;
    if (pg->cfg.pipeline && PQpipelineSync(pg->conn) != 1)
        return COFRE_EUNAVAIL;
    return flush_all(pg->conn, deadline);
}

/* Next result, waiting for input as needed; *out NULL marks the end of a query's results. */
static int next_result(PGconn *conn, uint64_t deadline, PGresult **out)
{
    while (PQisBusy(conn)) {
        int rc = wait_fd(PQsocket(conn), POLLIN, deadline);
        if (rc != 0)
            return rc;
        if (PQconsumeInput(conn) == 0)
            return COFRE_EUNAVAIL;
    }
    *out = PQgetResult(conn);
    return 0;
}

/* Keeps the first result of a query, except that an error always wins. */
static void keep(cofre_pg_t *pg, int i, PGresult *r)
{
    if (pg->results[i] == NULL) {
        pg->results[i] = r;
    } else if (PQresultStatus(r) == PGRES_FATAL_ERROR &&
               PQresultStatus(pg->results[i]) != PGRES_FATAL_ERROR) {
        PQclear(pg->results[i]);
        pg->results[i] = r;
    } else {
        PQclear(r);
    }
}

/* Reads the result of the Parse sent before query i; remembers the statement when it worked,
 * and keeps its error as the query's (the query itself is then only "aborted"). */
static int read_prepare(cofre_pg_t *pg, int i, uint64_t deadline)
{
    bool ok = false;
    for (;;) {
        PGresult *r = NULL;
        int rc = next_result(pg->conn, deadline, &r);
        if (rc != 0)
            return rc;
        if (r == NULL)
            break;
        ok = PQresultStatus(r) == PGRES_COMMAND_OK;
        if (ok)
            PQclear(r);
        else
            keep(pg, i, r);
    }
    uint64_t hash = pg->queued[i].hash;
    if (ok && !is_prepared(pg, hash) && pg->nprepared < PREPARED_MAX)
        pg->prepared[pg->nprepared++] = hash;
    return 0;
}

static int read_round(cofre_pg_t *pg, uint64_t deadline)
{
    PGconn *conn = pg->conn;
    pg->nresults = pg->nqueued;
    for (int i = 0; i < pg->nresults; i++)
        pg->results[i] = NULL;
    for (int i = 0; i < pg->nresults; i++) {
        if (pg->queued[i].prepare_sent) {
            int rc = read_prepare(pg, i, deadline);
            if (rc != 0)
                return rc;
        }
        for (;;) {
            PGresult *r = NULL;
            int rc = next_result(conn, deadline, &r);
            if (rc != 0)
                return rc;
            if (r == NULL)
                break;
            keep(pg, i, r);
        }
        if (PQstatus(conn) == CONNECTION_BAD)
            return COFRE_EUNAVAIL;
    }
    if (!pg->cfg.pipeline)
        return 0;
    PGresult *sync = NULL;
    int rc = next_result(conn, deadline, &sync);
    if (rc == 0 && (sync == NULL || PQresultStatus(sync) != PGRES_PIPELINE_SYNC))
        rc = PQstatus(conn) == CONNECTION_BAD ? COFRE_EUNAVAIL : COFRE_EIO;
    PQclear(sync);
    return rc;
}

/* The first failed query's mapped error, logged with its context; 0 when none failed. */
static int round_error(cofre_pg_t *pg)
{
    for (int i = 0; i < pg->nresults; i++) {
        const PGresult *r = pg->results[i];
        ExecStatusType st = r != NULL ? PQresultStatus(r) : PGRES_FATAL_ERROR;
        if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
            continue;
        const char *state = r != NULL ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
        snprintf(pg->sqlstate, sizeof(pg->sqlstate), "%s", state != NULL ? state : "");
        int rc = state != NULL ? cofre_pg_map_sqlstate(state) : COFRE_EIO;
        if (pg->queued[i].named &&
            (strcmp(pg->sqlstate, "26000") == 0 || strcmp(pg->sqlstate, "42P05") == 0)) {
            /* A prepared statement vanished or was there already: another client's session
             * shares this server connection (PgBouncer in transaction mode). */
            COFRE_LOG(COFRE_LOG_WARN, NULL,
                      "named prepared statements do not survive here (a transaction-mode "
                      "pooler?): using unnamed statements from now on",
                      COFRE_LF_STR("sqlstate", pg->sqlstate));
            pg->unnamed_only = true;
            pg->fallback = true;
            return COFRE_ECONFLICT;
        }
        const char *msg = r != NULL ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
        COFRE_LOG(rc == COFRE_ECONFLICT ? COFRE_LOG_DEBUG : COFRE_LOG_WARN, NULL,
                  "postgresql statement failed", COFRE_LF_STR("sqlstate", pg->sqlstate),
                  COFRE_LF_STR("error", msg != NULL ? msg : PQresStatus(st)),
                  COFRE_LF_STR("sql", pg->queued[i].sql));
        return rc;
    }
    return 0;
}

static int exchange_once(cofre_pg_t *pg, bool *broken, bool *timed_out)
{
    *broken = *timed_out = false;
    int rc = cofre_pg_connect(pg);
    if (rc != 0)
        return rc;
    uint64_t deadline = cofre_now_mono_ns() + (uint64_t)pg->cfg.round_timeout_ms * NS_PER_MS;
    rc = send_round(pg, deadline);
    if (rc == 0)
        rc = read_round(pg, deadline);
    bool transport = rc != 0;
    *timed_out = rc == COFRE_ETIMEDOUT;
    if (rc == 0)
        rc = round_error(pg);
    *broken = transport || rc == COFRE_EUNAVAIL || PQstatus(pg->conn) == CONNECTION_BAD;
    if (*broken) {
        char why[160];
        snprintf(why, sizeof(why), "%s",
                 *timed_out  ? "round trip timed out"
                 : transport ? PQerrorMessage(pg->conn)
                             : pg->sqlstate);
        why[strcspn(why, "\n")] = '\0';
        COFRE_LOG(COFRE_LOG_WARN, NULL, "postgresql connection dropped",
                  COFRE_LF_STR("error", why));
        cofre_pg_disconnect(pg);
        rc = COFRE_EUNAVAIL;
    }
    return rc;
}

int cofre_pg_exchange(cofre_pg_t *pg, bool retry_safe)
{
    COFRE_ASSERT(pg->nqueued > 0);
    clear_results(pg);
    pg->sqlstate[0] = '\0';
    bool fresh = pg->conn == NULL;
    bool broken = false, timed_out = false;
    pg->fallback = false;
    int rc = exchange_once(pg, &broken, &timed_out);
    /* Named statements just turned out unusable: outside a transaction nothing happened that
     * a resend with unnamed ones would repeat; inside one the caller redoes it (conflict). */
    if (pg->fallback && !cofre_pg_in_transaction(pg)) {
        clear_results(pg);
        pg->sqlstate[0] = '\0';
        rc = exchange_once(pg, &broken, &timed_out);
    }
    /* A connection that broke while idle (a restart, a pooler's timeout) is not news: redo a
     * round that cannot have had an effect on a new connection, once. */
    if (broken && !timed_out && retry_safe && !fresh) {
        clear_results(pg);
        pg->sqlstate[0] = '\0';
        rc = exchange_once(pg, &broken, &timed_out);
    }
    pg->nqueued = 0;
    return rc;
}

/* ---- results ---------------------------------------------------------------------------- */

int64_t cofre_pg_int64(const PGresult *r, int row, int col)
{
    if (PQgetisnull(r, row, col))
        return 0;
    return strtoll(PQgetvalue(r, row, col), NULL, 10);
}

void cofre_pg_copy(const PGresult *r, int row, int col, char *out, size_t size)
{
    size_t len = (size_t)PQgetlength(r, row, col);
    if (len >= size)
        len = size - 1;
    memcpy(out, PQgetvalue(r, row, col), len);
    out[len] = '\0';
}

/* ---- binary arrays ---------------------------------------------------------------------- */

/* The array header: ndim, has-null flag, element type, then one dimension (n, lower bound). */
#define ARRAY_HEADER_LEN 20

static uint32_t element_type(uint32_t array_type)
{
    switch (array_type) {
    case COFRE_PG_BOOL_ARRAY:
        return 16;
    case COFRE_PG_BYTEA_ARRAY:
        return 17;
    case COFRE_PG_INT4_ARRAY:
        return 23;
    case COFRE_PG_TEXT_ARRAY:
        return 25;
    case COFRE_PG_INT8_ARRAY:
        return 20;
    case COFRE_PG_JSON_ARRAY:
        return 114;
    case COFRE_PG_TIMESTAMPTZ_ARRAY:
        return 1184;
    case COFRE_PG_UUID_ARRAY:
        return 2950;
    default:
        COFRE_PANIC("unknown array type");
        return 0;
    }
}

static void put32(char *p, uint32_t v)
{
    p[0] = (char)(v >> 24);
    p[1] = (char)(v >> 16);
    p[2] = (char)(v >> 8);
    p[3] = (char)v;
}

static char *grow(cofre_pg_array_t *a, size_t more)
{
    if (a->len + more > a->cap) {
        a->cap = COFRE_MAX(a->cap * 2, a->len + more + 256);
        a->buf = cofre_realloc(a->buf, a->cap);
    }
    char *p = a->buf + a->len;
    a->len += more;
    return p;
}

void cofre_pg_array_init(cofre_pg_array_t *a, uint32_t array_type)
{
    *a = (cofre_pg_array_t){.elem_type = element_type(array_type)};
    a->type_oid = array_type;
    grow(a, ARRAY_HEADER_LEN);
}

void cofre_pg_array_reset(cofre_pg_array_t *a)
{
    a->len = ARRAY_HEADER_LEN;
    a->n = 0;
    a->has_null = false;
}

void cofre_pg_array_release(cofre_pg_array_t *a)
{
    free(a->buf);
    a->buf = NULL;
    a->len = a->cap = 0;
}

static void element(cofre_pg_array_t *a, const void *p, size_t len)
{
    COFRE_ASSERT(len <= INT32_MAX);
    char *dst = grow(a, 4 + len);
    put32(dst, (uint32_t)len);
    if (len > 0)
        memcpy(dst + 4, p, len);
    a->n++;
}

void cofre_pg_array_null(cofre_pg_array_t *a)
{
    put32(grow(a, 4), UINT32_MAX);
    a->n++;
    a->has_null = true;
}

void cofre_pg_array_text(cofre_pg_array_t *a, const char *s, size_t len)
{
    element(a, s, len);
}

void cofre_pg_array_bytes(cofre_pg_array_t *a, const void *p, size_t len)
{
    element(a, p, len);
}

void cofre_pg_array_int8(cofre_pg_array_t *a, int64_t v)
{
    char b[8];
    put32(b, (uint32_t)((uint64_t)v >> 32));
    put32(b + 4, (uint32_t)v);
    element(a, b, sizeof(b));
}

void cofre_pg_array_int4(cofre_pg_array_t *a, int32_t v)
{
    char b[4];
    put32(b, (uint32_t)v);
    element(a, b, sizeof(b));
}

void cofre_pg_array_bool(cofre_pg_array_t *a, bool v)
{
    char b = v ? 1 : 0;
    element(a, &b, 1);
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int cofre_pg_array_uuid(cofre_pg_array_t *a, const char *uuid)
{
    uint8_t b[16];
    size_t n = 0;
    for (size_t i = 0; uuid[i] != '\0'; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (uuid[i] != '-')
                return COFRE_EINVAL;
            continue;
        }
        int hi = hex_value(uuid[i]);
        int lo = hi >= 0 && uuid[i + 1] != '\0' ? hex_value(uuid[i + 1]) : -1;
        if (lo < 0 || n == sizeof(b))
            return COFRE_EINVAL;
        b[n++] = (uint8_t)(hi << 4 | lo);
        i++;
    }
    if (n != sizeof(b))
        return COFRE_EINVAL;
    element(a, b, sizeof(b));
    return 0;
}

void cofre_pg_array_timestamptz(cofre_pg_array_t *a, int64_t unix_us)
{
    cofre_pg_array_int8(a, unix_us - (int64_t)PG_EPOCH_UNIX_S * 1000000);
}

cofre_pg_param_t cofre_pg_array_param(cofre_pg_array_t *a)
{
    if (a->n == 0) {
        /* An empty array has no dimensions. */
        put32(a->buf, 0);
        put32(a->buf + 4, 0);
        put32(a->buf + 8, a->elem_type);
        return (cofre_pg_param_t){a->buf, 12, a->type_oid, true};
    }
    put32(a->buf, 1);
    put32(a->buf + 4, a->has_null ? 1 : 0);
    put32(a->buf + 8, a->elem_type);
    put32(a->buf + 12, a->n);
    put32(a->buf + 16, 1);
    COFRE_ASSERT(a->len <= INT32_MAX);
    return (cofre_pg_param_t){a->buf, (int)a->len, a->type_oid, true};
}

/* ---- time ------------------------------------------------------------------------------- */

int cofre_pg_time_parse(const char *s, int64_t *unix_us)
{
    struct tm tm = {0};
    const char *rest = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    if (rest == NULL)
        return COFRE_EINVAL;
    int64_t us = 0;
    if (*rest == '.') {
        int digits = 0;
        for (rest++; *rest >= '0' && *rest <= '9'; rest++, digits++)
            if (digits < 6)
                us = us * 10 + (*rest - '0');
        if (digits == 0)
            return COFRE_EINVAL;
        for (; digits < 6; digits++)
            us *= 10;
    }
    if (strcmp(rest, "Z") != 0)
        return COFRE_EINVAL;
    *unix_us = (int64_t)timegm(&tm) * 1000000 + us;
    return 0;
}
