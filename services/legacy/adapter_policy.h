/*
 * adapter_policy.h: the retry policy of cofre-legacy, kept free of I/O so it can be tested on
 * its own: which response codes mean "applied", "try again later" or "never", and how long to
 * wait before the next attempt (exponential backoff with jitter, for reconnects and retries).
 */
#ifndef COFRE_LEGACY_ADAPTER_POLICY_H
#define COFRE_LEGACY_ADAPTER_POLICY_H

#include <stdbool.h>
#include <stdint.h>

/* What a response code (field 39) of a 0210 or 0410 means for the adapter. */
typedef enum cofre_adapter_rc_class {
    COFRE_ADAPTER_RC_APPROVED = 0, /* "00": done */
    COFRE_ADAPTER_RC_TRANSIENT,    /* the host cannot process it now: retry later */
    COFRE_ADAPTER_RC_PERMANENT,    /* a decline that a retry will not change: dead-letter */
} cofre_adapter_rc_class_t;

/*
 * Classifies a response code. Transient: 19 (re-enter transaction), 68 (response received too
 * late), 91 (issuer or switch inoperative), 96 (system malfunction). Every other code but 00,
 * a NULL and a malformed one are permanent. Nothing was applied at the host for any code but
 * 00 (docs/legacy-iso8583.md, "The exchange").
 */
cofre_adapter_rc_class_t cofre_adapter_policy_classify(const char *code);

/* True when code asks the client to sign on again (91 on a 0200 or 0400). */
bool cofre_adapter_policy_needs_sign_on(const char *code);

/* Exponential backoff bounds, in milliseconds (1 <= min_ms <= max_ms). */
typedef struct cofre_adapter_backoff {
    uint64_t min_ms;
    uint64_t max_ms;
} cofre_adapter_backoff_t;

/*
 * The wait before attempt number attempt (0 for the first retry): the ceiling
 * d = min(max_ms, min_ms * 2^attempt), with "equal jitter": d/2 plus a random part of up to
 * d/2 taken from rand (any 64-bit value; pass a fresh random number). Never below min_ms / 2,
 * never above max_ms. Jitter keeps many clients (or many deliveries) from retrying in step.
 */
uint64_t cofre_adapter_policy_backoff_ms(const cofre_adapter_backoff_t *b, unsigned attempt,
                                         uint64_t rand);

#endif
