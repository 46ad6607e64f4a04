/*
 * verify.h: checks the whole audit trail, the same way for GET /v1/audit/verify and the
 * offline `cofre-audit verify`: seqs run 1, 2, 3... without a gap; each record's hash is
 * SHA-256(previous hash || its canonical bytes); every checkpoint is signed by a trusted key
 * and names the hash the chain has at its seq; no checkpoint lies beyond the last record.
 *
 * What each tampering looks like: a changed field, two records swapped, or a record inserted
 * breaks the hash at that record; a deleted record leaves a gap at its seq; a chain rewritten
 * and rehashed disagrees with the next signed checkpoint (named as the first record after the
 * last checkpoint that still holds); records cut off the tail behind a checkpoint are named
 * from the first missing seq. Records after the last checkpoint can be cut off unseen: the
 * checkpoint period (N records or T seconds) bounds that window.
 */
#ifndef COFRE_AUDIT_VERIFY_H
#define COFRE_AUDIT_VERIFY_H

#include "audit/keys.h"
#include "audit/store.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct cofre_audit_verdict {
    bool ok;
    int64_t records; /* records checked (up to the first bad one) */
    uint8_t head[COFRE_AUDIT_HASH_LEN];
    int64_t first_bad; /* the first bad record's seq; 0 when ok */
    char reason[256];
    size_t checkpoints;          /* checkpoints checked */
    int64_t last_checkpoint_seq; /* 0 when none */
} cofre_audit_verdict_t;

/*
 * Verifies the trail in s against keys' trusted public keys. Returns 0 with out filled (ok or
 * not), or a store error (the verdict is then meaningless).
 */
int cofre_audit_verify(cofre_audit_store_t *s, const cofre_audit_keys_t *keys,
                       cofre_audit_verdict_t *out);

/* Appends {"ok","records","head","first_bad"?,"reason"?,"checkpoints","last_checkpoint_seq"}. */
void cofre_audit_verdict_json(const cofre_audit_verdict_t *v, cofre_jbuf_t *out);

#endif
