/*
 * sim_ledger.h: the simulated legacy host's durable ledger, in SQLite. One row per RRN holds
 * the RRN's current state (approved: its effect stands; declined: nothing applied; reversed:
 * its effect was undone, or a reversal came first) and the first answer that a repeat gets;
 * a journal keeps every event in order. The host (sim_host.h) reads and writes it inside one
 * transaction per batch of messages, and answers only after the commit, so an answer the
 * client saw is never lost by a restart. `cofre-legacy-sim ledger` prints it as JSON lines.
 */
#ifndef COFRE_LEGACY_SIM_LEDGER_H
#define COFRE_LEGACY_SIM_LEDGER_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

typedef struct cofre_sim_ledger cofre_sim_ledger_t;

typedef enum cofre_sim_state {
    COFRE_SIM_APPROVED = 0,
    COFRE_SIM_DECLINED = 1,
    COFRE_SIM_REVERSED = 2,
} cofre_sim_state_t;

/* One RRN's row. Strings are NUL-terminated; "" when the request lacked the field. */
typedef struct cofre_sim_record {
    char rrn[13];
    cofre_sim_state_t state;
    char response_code[3]; /* of the latest 0200 evaluation */
    char auth_id[7];       /* field 38 of the approval ("" unless approved) */
    uint64_t amount_minor;
    char currency[4];
    char processing_code[7];
    char debit_account[20];  /* field 2 */
    char credit_account[29]; /* field 103 */
    char terminal[9];
    char stan[7];               /* the transmission that set the state (for 0400: field 90's) */
    char transmission_time[11]; /* its field 7 */
    int64_t applications;       /* times a 0200 was applied (history; in effect: approved) */
    int64_t reversals;
    int64_t duplicates; /* repeats answered from the stored answer */
    uint64_t created_us;
    uint64_t updated_us;
} cofre_sim_record_t;

/*
 * Opens (creating unless readonly) the ledger at path and its tables. sync_full keeps the
 * libcofre default synchronous=FULL; false sets NORMAL (WAL: survives a process crash, not a
 * power loss). Returns NULL and logs the reason on failure.
 */
cofre_sim_ledger_t *cofre_sim_ledger_open(const char *path, bool readonly, bool sync_full);

/* Closes the ledger and frees it. NULL is ignored. */
void cofre_sim_ledger_free(cofre_sim_ledger_t *l);

/* Transactions around a batch. Return 0 or COFRE_EIO (logged). */
int cofre_sim_ledger_begin(cofre_sim_ledger_t *l);
int cofre_sim_ledger_commit(cofre_sim_ledger_t *l);
void cofre_sim_ledger_rollback(cofre_sim_ledger_t *l);

/* Reads the row of rrn into rec. Returns 0, COFRE_ENOENT, or COFRE_EIO. */
int cofre_sim_ledger_get(cofre_sim_ledger_t *l, const char *rrn, cofre_sim_record_t *rec);

/* Inserts or replaces rec's row. Returns 0 or COFRE_EIO. */
int cofre_sim_ledger_put(cofre_sim_ledger_t *l, const cofre_sim_record_t *rec);

/*
 * Appends an event (kind: apply, decline, duplicate, mismatch, late-original, reverse,
 * reverse-unknown, reverse-declined, reverse-duplicate, reverse-mismatch) about rec with the
 * answer code, and sets *seq to its sequence number (may be NULL). Returns 0 or COFRE_EIO.
 */
int cofre_sim_ledger_journal(cofre_sim_ledger_t *l, const cofre_sim_record_t *rec, const char *kind,
                             const char *code, const char *stan, int64_t *seq);

/*
 * Writes every row (journal: every event instead) as one JSON object per line to out, in the
 * order they were created. Returns 0 or COFRE_EIO.
 */
int cofre_sim_ledger_print(cofre_sim_ledger_t *l, FILE *out, bool journal);

/* "approved", "declined" or "reversed". */
const char *cofre_sim_state_name(cofre_sim_state_t s);

#endif
