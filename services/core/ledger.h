/*
 * ledger.h: the ledger's rules, on the state one committer batch has loaded. The committer
 * loads the accounts and ids a batch touches (inside its database transaction), then asks the
 * ledger, command by command in arrival order, to open accounts and post transfers; the
 * ledger decides each one against the batch's current state and updates it, never touching
 * the database. What changed is then written back in the same transaction.
 *
 * Rules: a transfer moves amount from a debit to a credit account of its currency;
 * balance = credits_posted - debits_posted; an account with no_overdraft never goes below
 * zero; totals never pass 2^63-1; transfer and account ids are unique.
 */
#ifndef COFRE_CORE_LEDGER_H
#define COFRE_CORE_LEDGER_H

#include "cofre/problem.h"
#include "cofre/uuid.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define COFRE_LEDGER_OWNER_MAX           128
#define COFRE_LEDGER_REFERENCE_CHARS_MAX 140
#define COFRE_LEDGER_REFERENCE_BYTES_MAX (4 * COFRE_LEDGER_REFERENCE_CHARS_MAX)
#define COFRE_LEDGER_METADATA_BYTES_MAX  4096
#define COFRE_LEDGER_TIME_LEN            27

typedef struct cofre_account {
    char id[COFRE_UUID_LEN + 1];
    char owner[COFRE_LEDGER_OWNER_MAX + 1];
    char currency[4];
    bool no_overdraft;
    int64_t debits_posted;
    int64_t credits_posted;
    int64_t debits_pending;
    int64_t credits_pending;
    char *metadata; /* compact JSON object, or NULL; owned by whoever holds the struct */
    char created_at[COFRE_LEDGER_TIME_LEN + 1];
} cofre_account_t;

typedef struct cofre_transfer {
    char id[COFRE_UUID_LEN + 1];
    bool id_generated; /* made here (a new UUIDv7), not sent by the client: cannot exist yet */
    char debit_account_id[COFRE_UUID_LEN + 1];
    char credit_account_id[COFRE_UUID_LEN + 1];
    int64_t amount;
    char currency[4];
    bool has_reference;
    char reference[COFRE_LEDGER_REFERENCE_BYTES_MAX + 1];
    char created_at[COFRE_LEDGER_TIME_LEN + 1];
} cofre_transfer_t;

/* Frees what the account holds (its metadata). */
void cofre_account_release(cofre_account_t *a);

/* Copies src into dst, duplicating the metadata. */
void cofre_account_copy(cofre_account_t *dst, const cofre_account_t *src);

typedef struct cofre_ledger cofre_ledger_t;

cofre_ledger_t *cofre_ledger_new(void);
void cofre_ledger_free(cofre_ledger_t *l);

/* Forgets the state of the previous batch, keeping memory. */
void cofre_ledger_reset(cofre_ledger_t *l);

/* Loading: an account read from the store (copied, metadata duplicated). */
void cofre_ledger_load_account(cofre_ledger_t *l, const cofre_account_t *a);
/* Loading: a transfer id that exists in the store. */
void cofre_ledger_load_transfer_id(cofre_ledger_t *l, const char *id);

/*
 * Opens account a (copied) in the batch state. Returns COFRE_P_NONE, or
 * COFRE_P_ACCOUNT_EXISTS when its id is taken (loaded or opened earlier in the batch).
 */
cofre_problem_code_t cofre_ledger_open_account(cofre_ledger_t *l, const cofre_account_t *a);

/*
 * Posts transfer t against the batch state. When debit_owner is not NULL, the debit account
 * must belong to it (a caller moves only its own money; another owner's account is
 * answered as absent). Returns COFRE_P_NONE, or one of COFRE_P_TRANSFER_EXISTS,
 * COFRE_P_ACCOUNT_NOT_FOUND, COFRE_P_CURRENCY_MISMATCH, COFRE_P_BALANCE_OVERFLOW,
 * COFRE_P_INSUFFICIENT_FUNDS; on failure nothing changed. t must be valid as a request
 * (positive amount, two different accounts).
 */
cofre_problem_code_t cofre_ledger_post_transfer(cofre_ledger_t *l, const cofre_transfer_t *t,
                                                const char *debit_owner);

/* The account with this id in the batch state, or NULL when absent. */
const cofre_account_t *cofre_ledger_account(const cofre_ledger_t *l, const char *id);

/* A savepoint: cofre_ledger_undo(l, mark) reverts every change made after it. */
size_t cofre_ledger_mark(const cofre_ledger_t *l);
void cofre_ledger_undo(cofre_ledger_t *l, size_t mark);

/*
 * The accounts to write back: calls fn for each account opened in the batch (is_new) and for
 * each loaded account whose totals changed.
 */
void cofre_ledger_each_change(const cofre_ledger_t *l,
                              void (*fn)(const cofre_account_t *a, bool is_new, void *data),
                              void *data);

#endif
