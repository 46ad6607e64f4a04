/*
 * adapter_reconcile.h: `cofre-legacy reconcile`, which compares what the ledger posted with
 * what the legacy host applied and reports every difference. The ledger side is the core's
 * database (its transfers table); the host side is the host's extract of applied transactions
 * as JSON lines, one per RRN, in the format `cofre-legacy-sim ledger` prints (rrn, state,
 * amount, currency, debit_account, credit_account). Optionally the adapter's own delivery
 * store explains a missing transfer (still pending, declined, failed).
 */
#ifndef COFRE_LEGACY_ADAPTER_RECONCILE_H
#define COFRE_LEGACY_ADAPTER_RECONCILE_H

#include <stdio.h>

#define COFRE_RECONCILE_TRANSFERS_MAX 50000000 /* core transfers compared in one run */
#define COFRE_RECONCILE_LINE_MAX      65536    /* bytes per host ledger line */

typedef struct cofre_adapter_reconcile_config {
    const char *core_db;     /* COFRE_DB-style url of the core's database (sqlite: or postgres:) */
    const char *host_ledger; /* a file of JSON lines, or "-" for standard input */
    const char *adapter_db;  /* the adapter's store, or NULL */
    FILE *out;               /* one JSON line per difference, then a summary line */
    FILE *err;               /* why it could not run */
} cofre_adapter_reconcile_config_t;

/*
 * Runs the comparison. Differences (each one JSON line with "difference"): "missing" (posted,
 * not in effect at the host: absent, declined or reversed there), "unexpected" (applied at the
 * host, not posted by the ledger), "mismatch" (both, but amount, currency or an account number
 * differs; "fields" names which), "duplicate" (the host lists an RRN twice). The last line is
 * {"summary": {...counts..., "ok": bool}}. Returns 0 when there is no difference, 1 when
 * there is any, 2 when an input cannot be read (said on err).
 */
int cofre_adapter_reconcile_run(const cofre_adapter_reconcile_config_t *cfg);

#endif
