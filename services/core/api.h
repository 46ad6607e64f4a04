/*
 * api.h: the core HTTP API (contract "Core API (v1)"). Handlers validate on the event loop,
 * then hand writes to the committer and reads to the reader pool; answers come back to the
 * loop. Owner scoping: a caller without ledger:admin sees and moves only its own accounts;
 * others answer as if absent.
 */
#ifndef COFRE_CORE_API_H
#define COFRE_CORE_API_H

#include "cofre/http.h"
#include "cofre/workers.h"
#include "core/committer.h"
#include "core/idempotency.h"

typedef struct cofre_api {
    cofre_committer_t *committer;
    cofre_workers_t *readers;
    cofre_idem_registry_t *inflight;
} cofre_api_t;

/* Registers the /v1 routes on server; api must outlive it. */
void cofre_api_register(cofre_api_t *api, cofre_http_server_t *server);

/* Per-thread state of a reader worker: opens a store connection (cofre_workers thread_init). */
void *cofre_api_reader_init(void *db_url);
void cofre_api_reader_fini(void *store);

#endif
