/*
 * fuzz_audit_event.c: libFuzzer target for what cofre-audit reads from Kafka: a message value
 * becomes an audit record (a cofre event, or a record of a malformed message), which is then
 * hashed and written as the API's JSON; and RFC 3339 times as the query API parses them. None
 * may crash, leak or read out of bounds; every record must carry its event id, type and
 * outcome, and its JSON must be valid.
 */
#include "audit/record.h"
#include "cofre/common.h"

#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void check_record(const cofre_audit_record_t *r)
{
    COFRE_ASSERT(r->f[COFRE_AUDIT_F_EVENT_ID] != NULL);
    COFRE_ASSERT(r->f[COFRE_AUDIT_F_TYPE] != NULL);
    COFRE_ASSERT(r->f[COFRE_AUDIT_F_OUTCOME] != NULL);
    COFRE_ASSERT(r->f[COFRE_AUDIT_F_EVENT] != NULL);
    uint8_t zero[COFRE_AUDIT_HASH_LEN] = {0}, h[COFRE_AUDIT_HASH_LEN];
    cofre_audit_record_hash(zero, r, h);
    cofre_jbuf_t b;
    cofre_jbuf_init(&b);
    cofre_audit_record_json(r, &b);
    json_t *o = json_loadb(b.data, b.len, JSON_ALLOW_NUL, NULL);
    COFRE_ASSERT(json_is_object(o));
    json_decref(o);
    cofre_jbuf_release(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const cofre_audit_origin_t origin = {.topic = "cofre.ledger.events",
                                         .partition = 1,
                                         .offset = 2,
                                         .recorded_at = "2026-11-29T20:00:00Z"};
    cofre_audit_record_t r;
    cofre_audit_record_from_event((const char *)data, size, &origin, &r);
    check_record(&r);
    cofre_audit_record_release(&r);
    int64_t us;
    if (size <= 64)
        (void)cofre_audit_time_parse((const char *)data, size, &us);
    return 0;
}
