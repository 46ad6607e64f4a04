/*
 * sim_host.h: what the simulated legacy host does with one request, independent of sockets:
 * the approval rules, each RRN applied at most once (a repeat of an approval gets the first
 * answer), reversals, sign-on and echo. It reads and writes the ledger (sim_ledger.h) inside
 * the caller's transaction. The rules and answers are documented in docs/legacy-iso8583.md.
 */
#ifndef COFRE_LEGACY_SIM_HOST_H
#define COFRE_LEGACY_SIM_HOST_H

#include "legacy/iso8583.h"
#include "legacy/sim_ledger.h"

#include <stdbool.h>
#include <stdint.h>

#define COFRE_SIM_CURRENCIES_MAX 32

typedef struct cofre_sim_rules {
    uint64_t amount_max_minor; /* a larger field 4 is declined 61 */
    /* accepted field 49 values; none listed: any (others are declined 57) */
    char currencies[COFRE_SIM_CURRENCIES_MAX][4];
    unsigned ncurrencies;
    bool require_sign_on; /* 0200 and 0400 before an 0800 sign-on are declined 91 */
} cofre_sim_rules_t;

typedef struct cofre_sim_stats {
    uint64_t requests;
    uint64_t approved;
    uint64_t declined;
    uint64_t duplicates;
    uint64_t reversals;
    uint64_t format_errors;
    uint64_t network;
} cofre_sim_stats_t;

/*
 * An injected decline (the control port's `decline`): called only when a 0200 is evaluated
 * afresh, returns a 2-character response code or NULL for none.
 */
typedef const char *(*cofre_sim_decline_fn)(void *data);

typedef struct cofre_sim_host {
    cofre_sim_ledger_t *ledger;
    cofre_sim_rules_t rules;
    cofre_sim_stats_t stats;
    cofre_sim_decline_fn decline;
    void *decline_data;
} cofre_sim_host_t;

/* One connection's state as the host sees it. */
typedef struct cofre_sim_session {
    uint64_t conn_id;
    bool signed_on;
} cofre_sim_session_t;

/*
 * Parses a comma-separated list of currency codes (3 letters or 3 digits each, at most
 * COFRE_SIM_CURRENCIES_MAX) into rules. "" means any. Returns 0 or COFRE_EINVAL.
 */
int cofre_sim_rules_parse_currencies(cofre_sim_rules_t *rules, const char *list);

/*
 * Answers the decoded request req on session s at time now_us. Returns 1 with the answer in
 * resp; 0 when req gets no answer (it is itself a response); COFRE_EIO when the ledger
 * failed, in which case the caller rolls back the batch and answers nothing.
 */
int cofre_sim_host_handle(cofre_sim_host_t *h, cofre_sim_session_t *s, const cofre_iso_msg_t *req,
                          cofre_iso_msg_t *resp, uint64_t now_us);

#endif
