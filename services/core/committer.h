/*
 * committer.h: the batching committer. Every write (open an account, post transfers) is a
 * command queued here. A committer thread takes every command waiting, up to a bound, and
 * applies them in ONE database transaction: check idempotency, lock and load the touched
 * accounts in id order, decide each command in arrival order (a rejected transfer fails alone,
 * unless its batch is atomic), write transfers, balances, idempotency records and outbox rows,
 * commit once. One fsync serves the whole batch. Each command then completes back to its
 * request's loop with its answer.
 */
#ifndef COFRE_CORE_COMMITTER_H
#define COFRE_CORE_COMMITTER_H

#include "cofre/http.h"
#include "core/idempotency.h"
#include "core/ledger.h"
#include "core/store.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum cofre_cmd_kind {
    COFRE_CMD_OPEN_ACCOUNT,
    COFRE_CMD_POST_TRANSFERS,
} cofre_cmd_kind_t;

typedef struct cofre_cmd {
    cofre_task_t task; /* first member: the command is deferred on its HTTP request */
    cofre_cmd_kind_t kind;
    void *api; /* the API that queued it, for its done callback */

    /* Who asked, for idempotency scoping, owner checks and the events. */
    char client_id[COFRE_STORE_CLIENT_MAX + 1];
    char owner[COFRE_LEDGER_OWNER_MAX + 1]; /* the caller's owner identity, or "" */
    bool admin; /* ledger:admin: may move any account; else only the caller's owner's */
    char idem_key[COFRE_STORE_KEY_MAX + 1];
    uint8_t request_hash[COFRE_IDEMPOTENCY_HASH_LEN];
    char traceparent[COFRE_TRACEPARENT_LEN + 1];
    char request_id[COFRE_REQUEST_ID_MAX + 1];
    char peer[48];

    /* What. */
    cofre_account_t account;     /* OPEN_ACCOUNT */
    cofre_transfer_t *transfers; /* POST_TRANSFERS: owned array */
    size_t ntransfers;
    bool batch; /* answer in the batch shape */
    bool atomic;

    /* The answer, set by the committer. */
    int status;
    char *body; /* owned */
    size_t body_len;
    bool replayed;
} cofre_cmd_t;

/* Frees what a command holds, and the command. */
void cofre_cmd_free(cofre_cmd_t *cmd);

typedef struct cofre_committer cofre_committer_t;

typedef struct cofre_committer_config {
    const char *db_url;
    unsigned threads;     /* committers, each on its own connection (1 for SQLite) */
    size_t batch_max;     /* commands per transaction */
    size_t queue_max;     /* commands waiting; beyond, submit refuses */
    unsigned retention_h; /* idempotency records are kept at least this long */
} cofre_committer_config_t;

/* Opens the connections and starts the threads. Returns NULL (logged) when the DB fails. */
cofre_committer_t *cofre_committer_start(const cofre_committer_config_t *cfg);

/* Queues cmd (deferred on its request). Returns 0, COFRE_EFULL or COFRE_ECLOSED. */
int cofre_committer_submit(cofre_committer_t *c, cofre_cmd_t *cmd);

/* True while the last database operation succeeded (for readiness). */
bool cofre_committer_db_up(const cofre_committer_t *c);

/* Commits what is queued, then stops the threads and frees c. */
void cofre_committer_stop(cofre_committer_t *c);

#endif
