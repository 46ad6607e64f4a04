/*
 * chains.c: a small open-addressing table of chain heads, keyed by account id.
 */
#include "core/chains.h"

#include "cofre/common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cofre_chains_reset(cofre_chains_t *c, size_t accounts)
{
    size_t need = 16;
    while (need < 2 * accounts + 2)
        need *= 2;
    if (need > c->capacity) {
        free(c->cells);
        free(c->ids);
        c->cells = cofre_malloc(need * sizeof(*c->cells));
        c->ids = cofre_malloc(need * sizeof(*c->ids));
        c->capacity = need;
    }
    memset(c->cells, 0, c->capacity * sizeof(*c->cells));
    c->count = 0;
}

cofre_chain_head_t *cofre_chains_head(cofre_chains_t *c, const char *account_id)
{
    uint64_t h = 1469598103934665603ull;
    for (const char *p = account_id; *p != '\0'; p++)
        h = (h ^ (uint8_t)*p) * 1099511628211ull;
    size_t mask = c->capacity - 1;
    for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {
        cofre_chain_head_t *cell = &c->cells[i];
        if (cell->account_id == NULL) {
            COFRE_ASSERT(c->count + 1 < c->capacity);
            snprintf(c->ids[i], sizeof(c->ids[i]), "%s", account_id);
            cell->account_id = c->ids[i];
            c->count++;
            return cell;
        }
        if (strcmp(cell->account_id, account_id) == 0)
            return cell;
    }
}

void cofre_chains_link(cofre_chains_t *c, const char *debit, const char *credit, int64_t seq,
                       int64_t *prev_debit, int64_t *prev_credit)
{
    cofre_chain_head_t *d = cofre_chains_head(c, debit);
    cofre_chain_head_t *k = cofre_chains_head(c, credit);
    *prev_debit = d->last_seq;
    *prev_credit = k->last_seq;
    d->last_seq = k->last_seq = seq;
    d->moved = k->moved = true;
}

void cofre_chains_release(cofre_chains_t *c)
{
    free(c->cells);
    free(c->ids);
    memset(c, 0, sizeof(*c));
}
