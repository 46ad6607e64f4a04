/*
 * wire.h: the core API's JSON on the wire. Decoding turns request bodies into validated
 * ledger values (or a problem with the contract's code); encoding writes accounts and
 * transfers. Decoding is the attack surface: it is strict, bounded and fuzzed
 * (tests/fuzz/fuzz_core_wire.c).
 */
#ifndef COFRE_CORE_WIRE_H
#define COFRE_CORE_WIRE_H

#include "cofre/jbuf.h"
#include "cofre/problem.h"
#include "core/ledger.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define COFRE_WIRE_BATCH_MAX           1000
#define COFRE_WIRE_CURSOR_LEN          12
#define COFRE_WIRE_LIMIT_DEFAULT       100
#define COFRE_WIRE_LIMIT_MAX           1000
#define COFRE_WIRE_IDEMPOTENCY_KEY_MAX 255

/*
 * Decodes a POST /v1/accounts body into a (metadata allocated: cofre_account_release). An
 * absent id is generated. Balances start at zero; created_at is left empty for the committer.
 */
bool cofre_wire_decode_account(const char *body, size_t len, cofre_account_t *a,
                               cofre_problem_t *err);

/* Decodes a POST /v1/transfers body. An absent id is generated. */
bool cofre_wire_decode_transfer(const char *body, size_t len, cofre_transfer_t *t,
                                cofre_problem_t *err);

/*
 * Decodes a POST /v1/transfers/batch body into a new array *out of *n transfers (the caller
 * frees it).
 */
bool cofre_wire_decode_batch(const char *body, size_t len, cofre_transfer_t **out, size_t *n,
                             bool *atomic, cofre_problem_t *err);

void cofre_wire_account(cofre_jbuf_t *b, const cofre_account_t *a);
void cofre_wire_transfer(cofre_jbuf_t *b, const cofre_transfer_t *t);

/* Idempotency-Key: 1 to 255 printable ASCII characters. */
bool cofre_wire_idempotency_key_valid(const char *key, size_t len);

/* An owner: 1 to 128 characters of [A-Za-z0-9._:@-]. */
bool cofre_wire_owner_valid(const char *owner, size_t len);

/* A limit query value: a decimal integer from 1 to COFRE_WIRE_LIMIT_MAX. */
bool cofre_wire_parse_limit(const char *s, size_t *limit);

/* Opaque page cursors: kind 'a' (accounts) or 't' (transfers) and a position. */
void cofre_wire_cursor_encode(char kind, int64_t seq, char out[COFRE_WIRE_CURSOR_LEN + 1]);
bool cofre_wire_cursor_decode(const char *s, char kind, int64_t *seq);

#endif
