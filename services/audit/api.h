/*
 * api.h: cofre-audit's HTTP API (docs/openapi-audit.yaml), every route behind the token check
 * with scope audit:read:
 *
 *   GET /v1/audit/events?subject=&type=&from=&to=&limit=&cursor=   records in chain order
 *   GET /v1/audit/verify   the whole trail verified now: {"ok","records","head","first_bad"?}
 *   GET /v1/audit/keys     the public keys that sign checkpoints
 *
 * Reads run on a pool of reader connections, verification on a pool of its own (one thread:
 * verifying the whole trail is heavy, so requests for it queue, bounded). A verifier thread
 * also verifies every verify_interval_s, so cofre_audit_verify_ok and
 * cofre_audit_last_verified_timestamp_seconds tell monitoring when the trail last held.
 */
#ifndef COFRE_AUDIT_API_H
#define COFRE_AUDIT_API_H

#include "audit/keys.h"
#include "cofre/http.h"
#include "cofre/workers.h"

#include <pthread.h>

#define COFRE_AUDIT_LIMIT_DEFAULT 100
#define COFRE_AUDIT_LIMIT_MAX     1000

typedef struct cofre_audit_api cofre_audit_api_t;

typedef struct cofre_audit_api_config {
    const char *db_url;
    const cofre_audit_keys_t *keys; /* must outlive the API */
    unsigned readers;
    size_t read_queue_max;
    unsigned verify_interval_s; /* 0: no periodic verification */
} cofre_audit_api_config_t;

/* Starts the reader and verifier pools and the periodic verifier (copying cfg). */
cofre_audit_api_t *cofre_audit_api_start(const cofre_audit_api_config_t *cfg);

/* Registers the routes on s. api may be NULL (for --routes). */
void cofre_audit_api_register(cofre_audit_api_t *api, cofre_http_server_t *s);

/* Stops the pools and the verifier thread and frees api. */
void cofre_audit_api_stop(cofre_audit_api_t *api);

/* Parses a cursor (the decimal seq of the last record of the previous page). */
bool cofre_audit_cursor_parse(const char *s, int64_t *seq);

#endif
