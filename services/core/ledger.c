/*
 * ledger.c: the batch state (an open-addressing table of account and transfer-id slots, in
 * stable chunked storage) and the rules applied to it, with an undo log for atomic batches.
 */
#include "core/ledger.h"

#include "cofre/common.h"

#include <stdlib.h>
#include <string.h>

#define CHUNK_SLOTS 256

enum { SLOT_ACCOUNT, SLOT_TRANSFER };
enum { STATE_ABSENT, STATE_LOADED, STATE_NEW };

typedef struct slot {
    uint8_t kind;
    uint8_t state;
    bool dirty;
    char id[COFRE_UUID_LEN + 1];
    cofre_account_t account; /* SLOT_ACCOUNT only */
} slot_t;

typedef struct undo_entry {
    slot_t *slot;
    uint8_t state;
    bool dirty;
    int64_t debits_posted;
    int64_t credits_posted;
} undo_entry_t;

struct cofre_ledger {
    slot_t **chunks;
    size_t nchunks;
    size_t nslots;
    slot_t **table; /* capacity entries, power of two */
    size_t capacity;
    undo_entry_t *undo;
    size_t nundo;
    size_t undo_cap;
};

void cofre_account_release(cofre_account_t *a)
{
    free(a->metadata);
    a->metadata = NULL;
}

void cofre_account_copy(cofre_account_t *dst, const cofre_account_t *src)
{
    *dst = *src;
    dst->metadata = src->metadata != NULL ? cofre_strdup(src->metadata) : NULL;
}

cofre_ledger_t *cofre_ledger_new(void)
{
    cofre_ledger_t *l = cofre_calloc(1, sizeof(*l));
    l->capacity = 1024;
    l->table = cofre_calloc(l->capacity, sizeof(slot_t *));
    return l;
}

void cofre_ledger_reset(cofre_ledger_t *l)
{
    for (size_t i = 0; i < l->nslots; i++) {
        slot_t *s = &l->chunks[i / CHUNK_SLOTS][i % CHUNK_SLOTS];
        if (s->kind == SLOT_ACCOUNT)
            cofre_account_release(&s->account);
    }
    l->nslots = 0;
    l->nundo = 0;
    memset(l->table, 0, l->capacity * sizeof(slot_t *));
}

void cofre_ledger_free(cofre_ledger_t *l)
{
    if (l == NULL)
        return;
    cofre_ledger_reset(l);
    for (size_t i = 0; i < l->nchunks; i++)
        free(l->chunks[i]);
    free(l->chunks);
    free(l->table);
    free(l->undo);
    free(l);
}

static size_t hash_key(uint8_t kind, const char *id)
{
    uint64_t h = 1469598103934665603ull ^ kind;
    for (const char *p = id; *p != '\0'; p++)
        h = (h ^ (uint8_t)*p) * 1099511628211ull;
    return (size_t)h;
}

static slot_t **find_cell(const cofre_ledger_t *l, uint8_t kind, const char *id)
{
    size_t mask = l->capacity - 1;
    for (size_t i = hash_key(kind, id) & mask;; i = (i + 1) & mask) {
        slot_t **cell = &l->table[i];
        if (*cell == NULL || ((*cell)->kind == kind && strcmp((*cell)->id, id) == 0))
            return cell;
    }
}

static void grow_table(cofre_ledger_t *l)
{
    slot_t **old = l->table;
    size_t old_cap = l->capacity;
    l->capacity *= 2;
    l->table = cofre_calloc(l->capacity, sizeof(slot_t *));
    for (size_t i = 0; i < old_cap; i++)
        if (old[i] != NULL)
            *find_cell(l, old[i]->kind, old[i]->id) = old[i];
    free(old);
}

static slot_t *new_slot(cofre_ledger_t *l)
{
    if (l->nslots == l->nchunks * CHUNK_SLOTS) {
        l->chunks = cofre_realloc(l->chunks, (l->nchunks + 1) * sizeof(slot_t *));
        l->chunks[l->nchunks++] = cofre_malloc(CHUNK_SLOTS * sizeof(slot_t));
    }
    slot_t *s = &l->chunks[l->nslots / CHUNK_SLOTS][l->nslots % CHUNK_SLOTS];
    l->nslots++;
    memset(s, 0, sizeof(*s));
    return s;
}

/* The slot for (kind, id), created ABSENT when unknown. */
static slot_t *get_slot(cofre_ledger_t *l, uint8_t kind, const char *id)
{
    if ((l->nslots + 1) * 2 > l->capacity)
        grow_table(l);
    slot_t **cell = find_cell(l, kind, id);
    if (*cell == NULL) {
        slot_t *s = new_slot(l);
        s->kind = kind;
        s->state = STATE_ABSENT;
        size_t len = strlen(id);
        COFRE_ASSERT(len <= COFRE_UUID_LEN);
        memcpy(s->id, id, len + 1);
        *cell = s;
    }
    return *cell;
}

static const slot_t *peek_slot(const cofre_ledger_t *l, uint8_t kind, const char *id)
{
    return *find_cell(l, kind, id);
}

static void remember(cofre_ledger_t *l, slot_t *s)
{
    if (l->nundo == l->undo_cap) {
        l->undo_cap = l->undo_cap == 0 ? 64 : l->undo_cap * 2;
        l->undo = cofre_realloc(l->undo, l->undo_cap * sizeof(undo_entry_t));
    }
    l->undo[l->nundo++] =
        (undo_entry_t){s, s->state, s->dirty, s->account.debits_posted, s->account.credits_posted};
}

void cofre_ledger_load_account(cofre_ledger_t *l, const cofre_account_t *a)
{
    slot_t *s = get_slot(l, SLOT_ACCOUNT, a->id);
    COFRE_ASSERT(s->state == STATE_ABSENT);
    cofre_account_copy(&s->account, a);
    s->state = STATE_LOADED;
}

void cofre_ledger_load_transfer_id(cofre_ledger_t *l, const char *id)
{
    get_slot(l, SLOT_TRANSFER, id)->state = STATE_LOADED;
}

cofre_problem_code_t cofre_ledger_open_account(cofre_ledger_t *l, const cofre_account_t *a)
{
    slot_t *s = get_slot(l, SLOT_ACCOUNT, a->id);
    if (s->state != STATE_ABSENT)
        return COFRE_P_ACCOUNT_EXISTS;
    remember(l, s);
    cofre_account_copy(&s->account, a);
    s->state = STATE_NEW;
    return COFRE_P_NONE;
}

const cofre_account_t *cofre_ledger_account(const cofre_ledger_t *l, const char *id)
{
    const slot_t *s = peek_slot(l, SLOT_ACCOUNT, id);
    return s != NULL && s->state != STATE_ABSENT ? &s->account : NULL;
}

static bool would_overflow(int64_t total, int64_t amount)
{
    return total > INT64_MAX - amount;
}

/* The rules, checked in a fixed order so the same request always gets the same answer. */
static cofre_problem_code_t check_transfer(const slot_t *debit, const slot_t *credit,
                                           const cofre_transfer_t *t, const char *debit_owner)
{
    if (debit->state == STATE_ABSENT || credit->state == STATE_ABSENT)
        return COFRE_P_ACCOUNT_NOT_FOUND;
    if (debit_owner != NULL && strcmp(debit->account.owner, debit_owner) != 0)
        return COFRE_P_ACCOUNT_NOT_FOUND;
    const cofre_account_t *d = &debit->account, *c = &credit->account;
    if (strcmp(d->currency, t->currency) != 0 || strcmp(c->currency, t->currency) != 0)
        return COFRE_P_CURRENCY_MISMATCH;
    if (would_overflow(d->debits_posted, t->amount) ||
        would_overflow(c->credits_posted, t->amount) ||
        would_overflow(d->debits_posted + t->amount, d->debits_pending))
        return COFRE_P_BALANCE_OVERFLOW;
    if (d->no_overdraft && d->debits_posted + d->debits_pending + t->amount > d->credits_posted)
        return COFRE_P_INSUFFICIENT_FUNDS;
    return COFRE_P_NONE;
}

cofre_problem_code_t cofre_ledger_post_transfer(cofre_ledger_t *l, const cofre_transfer_t *t,
                                                const char *debit_owner)
{
    COFRE_ASSERT(t->amount > 0 && strcmp(t->debit_account_id, t->credit_account_id) != 0);
    slot_t *id = get_slot(l, SLOT_TRANSFER, t->id);
    if (id->state != STATE_ABSENT)
        return COFRE_P_TRANSFER_EXISTS;
    slot_t *debit = get_slot(l, SLOT_ACCOUNT, t->debit_account_id);
    slot_t *credit = get_slot(l, SLOT_ACCOUNT, t->credit_account_id);
    cofre_problem_code_t code = check_transfer(debit, credit, t, debit_owner);
    if (code != COFRE_P_NONE)
        return code;
    remember(l, id);
    remember(l, debit);
    remember(l, credit);
    id->state = STATE_NEW;
    debit->account.debits_posted += t->amount;
    credit->account.credits_posted += t->amount;
    debit->dirty = true;
    credit->dirty = true;
    return COFRE_P_NONE;
}

size_t cofre_ledger_mark(const cofre_ledger_t *l)
{
    return l->nundo;
}

void cofre_ledger_undo(cofre_ledger_t *l, size_t mark)
{
    COFRE_ASSERT(mark <= l->nundo);
    while (l->nundo > mark) {
        undo_entry_t *u = &l->undo[--l->nundo];
        slot_t *s = u->slot;
        if (s->state == STATE_NEW && u->state == STATE_ABSENT && s->kind == SLOT_ACCOUNT)
            cofre_account_release(&s->account);
        s->state = u->state;
        s->dirty = u->dirty;
        s->account.debits_posted = u->debits_posted;
        s->account.credits_posted = u->credits_posted;
    }
}

void cofre_ledger_each_change(const cofre_ledger_t *l,
                              void (*fn)(const cofre_account_t *a, bool is_new, void *data),
                              void *data)
{
    for (size_t i = 0; i < l->nslots; i++) {
        const slot_t *s = &l->chunks[i / CHUNK_SLOTS][i % CHUNK_SLOTS];
        if (s->kind != SLOT_ACCOUNT)
            continue;
        if (s->state == STATE_NEW)
            fn(&s->account, true, data);
        else if (s->state == STATE_LOADED && s->dirty)
            fn(&s->account, false, data);
    }
}
