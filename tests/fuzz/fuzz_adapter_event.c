/*
 * fuzz_adapter_event.c: libFuzzer target for what cofre-legacy reads from Kafka: a message
 * value is a posted transfer, another event, or malformed; a transfer must be one the link can
 * send (its 0200 builds and encodes), and the dead letter written for any input (the value kept
 * as a string) must be valid JSON. The first bytes also drive the RFC 3339 parser. None may
 * crash, leak or read out of bounds.
 */
#include "cofre/common.h"
#include "cofre/jbuf.h"
#include "legacy/adapter_event.h"
#include "legacy/iso8583.h"
#include "legacy/link.h"

#include <jansson.h>
#include <stdint.h>
#include <string.h>

static void check_transfer(const cofre_adapter_transfer_t *t)
{
    cofre_link_transfer_t lt = {.transfer_id = t->transfer_id,
                                .debit_account_id = t->debit_account_id,
                                .credit_account_id = t->credit_account_id,
                                .amount_minor = t->amount_minor,
                                .currency = t->currency,
                                .posted_at_us = t->posted_at_us};
    static cofre_iso_msg_t m;
    uint8_t frame[COFRE_ISO_FRAME_MAX];
    size_t len;
    COFRE_ASSERT(cofre_link_build_transfer(&m, &lt, 1, "FUZZ0001", t->posted_at_us) == 0);
    COFRE_ASSERT(cofre_iso_encode_frame(&m, frame, sizeof(frame), &len) == 0);
    COFRE_ASSERT(strlen(t->rrn) == COFRE_LINK_RRN_LEN);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cofre_adapter_transfer_t t;
    char detail[COFRE_ADAPTER_DETAIL_MAX + 1];
    cofre_adapter_event_kind_t kind =
        cofre_adapter_event_parse((const char *)data, size, NULL, &t, detail, sizeof(detail));
    if (kind == COFRE_ADAPTER_EVENT_TRANSFER)
        check_transfer(&t);
    cofre_adapter_dlq_source_t src = {.topic = "cofre.ledger.events",
                                      .partition = 1,
                                      .offset = 2,
                                      .raw = (const char *)data,
                                      .raw_len = size};
    cofre_jbuf_t b;
    cofre_jbuf_init(&b);
    cofre_adapter_dlq_message(&b, COFRE_ADAPTER_DLQ_MALFORMED, detail, NULL, 0, &t, &src, 0);
    json_t *o = json_loadb(b.data, b.len, 0, NULL);
    COFRE_ASSERT(json_is_object(o));
    json_decref(o);
    cofre_jbuf_release(&b);
    char s[40];
    size_t n = size < sizeof(s) - 1 ? size : sizeof(s) - 1;
    memcpy(s, data, n);
    s[n] = '\0';
    uint64_t us;
    (void)cofre_adapter_time_parse(s, &us);
    return 0;
}
