/*
 * chains.h: the heads of the accounts' transfer chains during one committer batch (see
 * migrations/sqlite/0002_account_chains.sql). Each account row holds the seq of its newest
 * transfer; each transfer holds, per side, the seq of that account's previous one. A store
 * loads the heads with the accounts at lookup, advances them as it inserts the batch's
 * transfers, and writes them back with the accounts' totals.
 */
#ifndef COFRE_CORE_CHAINS_H
#define COFRE_CORE_CHAINS_H

#include "cofre/uuid.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct cofre_chain_head {
    const char *account_id; /* NULL: an empty cell */
    int64_t last_seq;       /* 0: the account has no transfer yet */
    bool moved;             /* a transfer of this batch joined the chain */
} cofre_chain_head_t;

typedef struct cofre_chains {
    cofre_chain_head_t *cells; /* open addressing; capacity a power of two */
    char (*ids)[COFRE_UUID_LEN + 1];
    size_t capacity;
    size_t count;
} cofre_chains_t;

/* Empties the table, sized for a batch touching up to accounts accounts. */
void cofre_chains_reset(cofre_chains_t *c, size_t accounts);

/* The head of account_id's chain, added (last_seq 0, not moved) when absent. */
cofre_chain_head_t *cofre_chains_head(cofre_chains_t *c, const char *account_id);

/*
 * Links a new transfer of seq between its two accounts: returns their previous heads in
 * *prev_debit and *prev_credit, and makes seq the head of both.
 */
void cofre_chains_link(cofre_chains_t *c, const char *debit, const char *credit, int64_t seq,
                       int64_t *prev_debit, int64_t *prev_credit);

void cofre_chains_release(cofre_chains_t *c);

#endif
