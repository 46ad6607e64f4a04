/*
 * fuzz_core_wire.c: libFuzzer target for cofre-core's request decoding and validation: the
 * account, transfer and batch bodies, cursors, limits, UUIDs and idempotency keys. The first
 * byte picks the decoder; the rest is the input. Decoders must never crash, leak or read out
 * of bounds, and a decoded value must satisfy what the ledger asserts.
 */
#include "cofre/common.h"
#include "cofre/uuid.h"
#include "core/ledger.h"
#include "core/wire.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void check_transfer(const cofre_transfer_t *t)
{
    COFRE_ASSERT(t->amount >= 1);
    COFRE_ASSERT(strcmp(t->debit_account_id, t->credit_account_id) != 0);
    COFRE_ASSERT(strlen(t->currency) == 3);
    COFRE_ASSERT(strlen(t->id) == COFRE_UUID_LEN);
}

static void fuzz_bodies(uint8_t which, const char *data, size_t len)
{
    cofre_problem_t err;
    if (which % 3 == 0) {
        cofre_account_t a;
        if (cofre_wire_decode_account(data, len, &a, &err)) {
            COFRE_ASSERT(cofre_wire_owner_valid(a.owner, strlen(a.owner)));
            cofre_jbuf_t b;
            cofre_jbuf_init(&b);
            cofre_wire_account(&b, &a);
            cofre_jbuf_release(&b);
            cofre_account_release(&a);
        }
    } else if (which % 3 == 1) {
        cofre_transfer_t t;
        if (cofre_wire_decode_transfer(data, len, &t, &err))
            check_transfer(&t);
    } else {
        cofre_transfer_t *ts = NULL;
        size_t n = 0;
        bool atomic = false;
        if (cofre_wire_decode_batch(data, len, &ts, &n, &atomic, &err)) {
            COFRE_ASSERT(n >= 1 && n <= COFRE_WIRE_BATCH_MAX);
            for (size_t i = 0; i < n; i++)
                check_transfer(&ts[i]);
            free(ts);
        }
    }
}

static void fuzz_small(const char *data, size_t len)
{
    char *s = cofre_strndup(data, len);
    int64_t seq;
    if (cofre_wire_cursor_decode(s, 't', &seq)) {
        char again[COFRE_WIRE_CURSOR_LEN + 1];
        cofre_wire_cursor_encode('t', seq, again);
        COFRE_ASSERT(strcmp(again, s) == 0);
    }
    size_t limit;
    if (cofre_wire_parse_limit(s, &limit))
        COFRE_ASSERT(limit >= 1 && limit <= COFRE_WIRE_LIMIT_MAX);
    char id[COFRE_UUID_LEN + 1];
    if (cofre_uuid_parse(data, len, id))
        COFRE_ASSERT(strlen(id) == COFRE_UUID_LEN);
    (void)cofre_wire_idempotency_key_valid(data, len);
    free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const char *input = (const char *)data + 1;
    size_t len = size - 1;
    if (data[0] < 0xf0)
        fuzz_bodies(data[0], input, len);
    else
        fuzz_small(input, len);
    return 0;
}
