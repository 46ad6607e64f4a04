/*
 * pg.h: PostgreSQL connections the way every cofre service needs them, on libpq.
 *
 * One cofre_pg_t is one connection used by one thread. It connects lazily and by itself:
 * after a failure it waits a growing backoff before the next attempt, and in between every
 * call fails at once with COFRE_EUNAVAIL, so a service whose database is down answers 503
 * fast instead of queueing on connection attempts. Every wait is bounded: connecting by
 * connect_timeout_ms, each round trip by round_timeout_ms (past it the connection is dropped).
 *
 * Queries travel in rounds: queue a few with cofre_pg_add, then cofre_pg_exchange sends them
 * in one pipeline (libpq pipeline mode, extended protocol, unnamed statements) and collects
 * every result, so a transaction costs a few round trips however many statements it has. No
 * session state is kept between transactions (no named statements, no SET), so connections
 * work through PgBouncer in transaction pooling mode.
 *
 * Parameters are text, or binary one-dimensional arrays built with cofre_pg_array_* (no
 * quoting, no parsing on the server), so one statement can carry a whole batch of rows
 * (INSERT ... SELECT FROM unnest($1::uuid[], ...)).
 */
#ifndef COFRE_PG_H
#define COFRE_PG_H

#include "cofre/pq.h"

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define COFRE_PG_ROUND_MAX  16 /* queries in one round */
#define COFRE_PG_PARAMS_MAX 16 /* parameters of one query */

/* Type OIDs of the parameters cofre sends (pg_type.dat). */
#define COFRE_PG_BOOL_ARRAY        1000
#define COFRE_PG_BYTEA_ARRAY       1001
#define COFRE_PG_INT4_ARRAY        1007
#define COFRE_PG_TEXT_ARRAY        1009
#define COFRE_PG_INT8_ARRAY        1016
#define COFRE_PG_JSON_ARRAY        199
#define COFRE_PG_TIMESTAMPTZ_ARRAY 1185
#define COFRE_PG_UUID_ARRAY        2951

typedef struct cofre_pg cofre_pg_t;

typedef struct cofre_pg_config {
    const char *url;              /* postgres://... or postgresql://... (libpq URI) */
    const char *application_name; /* shown in pg_stat_activity; the URL may override it */
    unsigned connect_timeout_ms;  /* one connection attempt (0: 2000) */
    unsigned round_timeout_ms;    /* one round trip (0: 6000) */
    unsigned backoff_max_ms;      /* longest wait between connection attempts (0: 2000) */
    bool pipeline;                /* pipeline mode; false allows multi-statement SQL */
    /* Named prepared statements (parsed and planned once per connection). They do not work
     * through a transaction-mode pooler (PgBouncer 1.18): the first round that finds out
     * fails with COFRE_ECONFLICT (or is resent at once outside a transaction), and the
     * handle uses unnamed statements from then on. */
    bool prepare;
} cofre_pg_config_t;

/* A query parameter: text (binary false) or binary (an array from cofre_pg_array_finish). */
typedef struct cofre_pg_param {
    const char *value; /* NULL: SQL NULL */
    int len;           /* bytes, for binary values */
    uint32_t type;     /* type OID, or 0 to let the server infer it (text only) */
    bool binary;
} cofre_pg_param_t;

#define COFRE_PG_TEXT(v) ((cofre_pg_param_t){.value = (v)})

/* True when libpq (loaded) parses url; logs why when it does not (naming COFRE_DB). */
bool cofre_pg_url_valid(const char *url);

/*
 * Allocates a connection handle (copying cfg's strings); does not connect. libpq must load
 * (cofre_pq_load, checked when the configuration is read): aborts otherwise.
 */
cofre_pg_t *cofre_pg_new(const cofre_pg_config_t *cfg);

/* Closes the connection (if any) and frees the handle; NULL is a no-op. */
void cofre_pg_free(cofre_pg_t *pg);

/*
 * Makes sure the connection is up: connects when it is not and the backoff allows. Returns 0,
 * or COFRE_EUNAVAIL (down, refused, timed out, authentication failed, or still backing off;
 * logged once per failure).
 */
int cofre_pg_connect(cofre_pg_t *pg);

/* Drops the connection; the next call reconnects (at once: no backoff). */
void cofre_pg_disconnect(cofre_pg_t *pg);

/* True when a transaction is open on the connection (between BEGIN and its end). */
bool cofre_pg_in_transaction(const cofre_pg_t *pg);

/*
 * Queues one query for the next round. sql and the parameter values are borrowed: they must
 * stay valid until cofre_pg_exchange returns. Without pipeline mode a round holds one query,
 * and a query without parameters may hold several statements.
 */
void cofre_pg_add(cofre_pg_t *pg, const char *sql, const cofre_pg_param_t *params, int nparams);

/* Forgets the queries queued and not yet exchanged. */
void cofre_pg_discard(cofre_pg_t *pg);

/* Queries queued and not yet exchanged. */
int cofre_pg_queued(const cofre_pg_t *pg);

/*
 * Sends the queued queries in one round trip and collects their results (read them with
 * cofre_pg_result until the next add or exchange). Connects first when needed. When
 * retry_safe (the round only reads, or opens a transaction), a connection found broken is
 * re-opened once and the round sent again. Returns 0 when every query succeeded, or the
 * first failure: COFRE_ECONFLICT (serialization failure, deadlock, unique violation, lock
 * timeout: redo the transaction), COFRE_EUNAVAIL (connection lost, timed out, server
 * shutting down or read-only; the connection is dropped), COFRE_EIO (anything else; the
 * SQLSTATE is logged and kept, see cofre_pg_sqlstate).
 */
int cofre_pg_exchange(cofre_pg_t *pg, bool retry_safe);

/* The result of query i of the last round (NULL when it never ran). */
const PGresult *cofre_pg_result(const cofre_pg_t *pg, int i);

/* The SQLSTATE of the last round's failure ("" when none). */
const char *cofre_pg_sqlstate(const cofre_pg_t *pg);

/* Maps a SQLSTATE to COFRE_ECONFLICT, COFRE_EUNAVAIL or COFRE_EIO (see exchange). */
int cofre_pg_map_sqlstate(const char *sqlstate);

/* ---- results ---------------------------------------------------------------------------- */

/* Text value of a column as int64 (0 for NULL or junk: the SQL is the program's own). */
int64_t cofre_pg_int64(const PGresult *r, int row, int col);

/* Copies a text column into out (size bytes, NUL-terminated, truncated to fit). */
void cofre_pg_copy(const PGresult *r, int row, int col, char *out, size_t size);

/* ---- binary array parameters ------------------------------------------------------------ */

typedef struct cofre_pg_array {
    char *buf;
    size_t len, cap;
    uint32_t n;
    uint32_t type_oid;  /* the array type */
    uint32_t elem_type; /* its element type */
    bool has_null;
} cofre_pg_array_t;

/* Starts an empty array of the given array type (COFRE_PG_*_ARRAY). */
void cofre_pg_array_init(cofre_pg_array_t *a, uint32_t array_type);
void cofre_pg_array_release(cofre_pg_array_t *a);
/* Empties it, keeping its memory and type. */
void cofre_pg_array_reset(cofre_pg_array_t *a);

void cofre_pg_array_null(cofre_pg_array_t *a);
void cofre_pg_array_text(cofre_pg_array_t *a, const char *s, size_t len);  /* text, json */
void cofre_pg_array_bytes(cofre_pg_array_t *a, const void *p, size_t len); /* bytea */
void cofre_pg_array_int8(cofre_pg_array_t *a, int64_t v);
void cofre_pg_array_int4(cofre_pg_array_t *a, int32_t v);
void cofre_pg_array_bool(cofre_pg_array_t *a, bool v);
/* Appends a canonical UUID (any case); returns 0 or COFRE_EINVAL (nothing appended). */
int cofre_pg_array_uuid(cofre_pg_array_t *a, const char *uuid);
/* Appends a time given as Unix microseconds. */
void cofre_pg_array_timestamptz(cofre_pg_array_t *a, int64_t unix_us);

/* The array as a binary parameter (valid until the array changes). */
cofre_pg_param_t cofre_pg_array_param(cofre_pg_array_t *a);

/*
 * Parses an RFC 3339 UTC time as cofre writes it ("2026-11-29T19:43:51.123456Z"; the fraction
 * may be shorter or absent) into Unix microseconds. Returns 0 or COFRE_EINVAL.
 */
int cofre_pg_time_parse(const char *s, int64_t *unix_us);

#endif
