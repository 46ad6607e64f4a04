/*
 * test_adapter_event.c: what cofre-legacy accepts from cofre.ledger.events: a transfer.posted
 * CloudEvent becomes a transfer with its RRN and traceparent (from the envelope, else the
 * header); other event types are skipped; every malformed case is named (not JSON, not a
 * CloudEvent, each bad member, an amount field 4 cannot carry), at the bounds; RFC 3339
 * parsing; and the dead letter's shape.
 */
#include "unit.h"

#include "cofre/common.h"
#include "cofre/jbuf.h"
#include "legacy/adapter_event.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#define TID "0192f3a4-5b6c-7d8e-9fa0-b1c2d3e4f5a6"
#define DID "0192f3a0-1111-7222-8333-444455556666"
#define CID "0192f3a0-7777-7888-8999-aaaabbbbcccc"
#define TP  "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

static char detail[256];

/* A transfer.posted event with one member of data.transfer replaced by raw JSON text. */
static const char *event_with(const char *member, const char *raw)
{
    static char buf[2048];
    const char *names[] = {"id",     "debit_account_id", "credit_account_id",
                           "amount", "currency",         "created_at"};
    const char *values[] = {"\"" TID "\"", "\"" DID "\"", "\"" CID "\"",
                            "12345",       "\"BRL\"",     "\"2026-11-29T19:43:51.123456Z\""};
    char transfer[1024] = "";
    for (size_t i = 0; i < COFRE_ARRAY_SIZE(names); i++) {
        bool replaced = member != NULL && strcmp(member, names[i]) == 0;
        if (replaced && raw == NULL)
            continue;
        char part[256];
        snprintf(part, sizeof(part), "%s\"%s\":%s", transfer[0] != '\0' ? "," : "", names[i],
                 replaced ? raw : values[i]);
        strcat(transfer, part);
    }
    snprintf(buf, sizeof(buf),
             "{\"specversion\":\"1.0\",\"id\":\"ev-1\",\"source\":\"/cofre/core\","
             "\"type\":\"cofre.transfer.posted\",\"time\":\"2026-11-29T19:43:51Z\","
             "\"subject\":\"" TID "\",\"traceparent\":\"" TP "\","
             "\"data\":{\"transfer\":{%s},\"actor\":{\"client_id\":\"local\"}}}",
             transfer);
    return buf;
}

static cofre_adapter_event_kind_t parse(const char *s, cofre_adapter_transfer_t *t)
{
    return cofre_adapter_event_parse(s, strlen(s), NULL, t, detail, sizeof(detail));
}

static void posted_transfer_is_read(void **state)
{
    (void)state;
    cofre_adapter_transfer_t t;
    assert_int_equal(parse(event_with(NULL, NULL), &t), COFRE_ADAPTER_EVENT_TRANSFER);
    assert_string_equal(t.event_id, "ev-1");
    assert_string_equal(t.transfer_id, TID);
    assert_string_equal(t.debit_account_id, DID);
    assert_string_equal(t.credit_account_id, CID);
    assert_int_equal(t.amount_minor, 12345);
    assert_string_equal(t.currency, "BRL");
    assert_int_equal(t.posted_at_us, 1795981431123456ull);
    assert_string_equal(t.rrn, "D1RB0AYR7OR3"); /* the doc's example */
    assert_string_equal(t.traceparent, TP);
    assert_int_equal(t.partition, -1);
    /* Uppercase ids are taken in canonical lowercase. */
    char upper[64];
    snprintf(upper, sizeof(upper), "\"%s\"", "0192F3A4-5B6C-7D8E-9FA0-B1C2D3E4F5A6");
    assert_int_equal(parse(event_with("id", upper), &t), COFRE_ADAPTER_EVENT_TRANSFER);
    assert_string_equal(t.transfer_id, TID);
}

static void header_traceparent_is_the_fallback(void **state)
{
    (void)state;
    cofre_adapter_transfer_t t;
    const char *hdr = "00-11111111111111111111111111111111-2222222222222222-01";
    char ev[] = "{\"specversion\":\"1.0\",\"id\":\"e\",\"type\":\"cofre.transfer.posted\","
                "\"data\":{\"transfer\":{\"id\":\"" TID "\",\"debit_account_id\":\"" DID "\","
                "\"credit_account_id\":\"" CID "\",\"amount\":1,\"currency\":\"EUR\","
                "\"created_at\":\"2026-11-29T19:43:51Z\"}}}";
    assert_int_equal(cofre_adapter_event_parse(ev, strlen(ev), hdr, &t, detail, sizeof(detail)),
                     COFRE_ADAPTER_EVENT_TRANSFER);
    assert_string_equal(t.traceparent, hdr);
    /* A malformed header is dropped, not stored. */
    assert_int_equal(cofre_adapter_event_parse(ev, strlen(ev), "junk", &t, detail, sizeof(detail)),
                     COFRE_ADAPTER_EVENT_TRANSFER);
    assert_string_equal(t.traceparent, "");
}

static void other_types_are_skipped(void **state)
{
    (void)state;
    cofre_adapter_transfer_t t;
    const char *ev = "{\"specversion\":\"1.0\",\"id\":\"a1\",\"type\":\"cofre.account.created\","
                     "\"data\":{\"account\":{}}}";
    assert_int_equal(parse(ev, &t), COFRE_ADAPTER_EVENT_OTHER);
}

static void expect_malformed(const char *ev, const char *needle)
{
    cofre_adapter_transfer_t t;
    cofre_adapter_event_kind_t k = parse(ev, &t);
    if (k != COFRE_ADAPTER_EVENT_MALFORMED || strstr(detail, needle) == NULL)
        fail_msg("kind %d detail \"%s\" (wanted \"%s\") for %s", k, detail, needle, ev);
}

static void malformed_cases_are_named(void **state)
{
    (void)state;
    expect_malformed("not json", "not a JSON object");
    expect_malformed("[1,2]", "not a JSON object");
    expect_malformed("{\"a\":1,\"a\":2}", "not a JSON object"); /* duplicate keys */
    expect_malformed("{\"specversion\":\"1.0\",\"type\":\"x\"}", "not a CloudEvent");
    expect_malformed("{\"specversion\":\"1.0\",\"id\":5,\"type\":\"x\"}", "not a CloudEvent");
    expect_malformed("{\"specversion\":\"1.0\",\"id\":\"\",\"type\":\"x\"}", "id:");
    expect_malformed("{\"specversion\":\"1.0\",\"id\":\"e\",\"type\":\"cofre.transfer.posted\"}",
                     "data.transfer: missing");
    expect_malformed(event_with("id", "\"nope\""), "data.transfer.id");
    expect_malformed(event_with("id", NULL), "data.transfer.id");
    expect_malformed(event_with("debit_account_id", "7"), "data.transfer.debit_account_id");
    expect_malformed(event_with("credit_account_id", "\"\""), "data.transfer.credit_account_id");
    expect_malformed(event_with("credit_account_id", "\"" DID "\""), "are the same");
    expect_malformed(event_with("amount", "\"12\""), "data.transfer.amount");
    expect_malformed(event_with("amount", "1.5"), "data.transfer.amount");
    expect_malformed(event_with("amount", NULL), "data.transfer.amount");
    expect_malformed(event_with("amount", "0"), "outside 1..999999999999");
    expect_malformed(event_with("amount", "-5"), "outside");
    expect_malformed(event_with("amount", "1000000000000"), "field 4 is n 12");
    expect_malformed(event_with("currency", "\"brl\""), "data.transfer.currency");
    expect_malformed(event_with("currency", "\"BRLX\""), "data.transfer.currency");
    expect_malformed(event_with("created_at", "\"yesterday\""), "data.transfer.created_at");
    /* The bounds themselves are accepted. */
    cofre_adapter_transfer_t t;
    assert_int_equal(parse(event_with("amount", "1"), &t), COFRE_ADAPTER_EVENT_TRANSFER);
    assert_int_equal(parse(event_with("amount", "999999999999"), &t), COFRE_ADAPTER_EVENT_TRANSFER);
    /* An oversized value is refused before parsing. */
    static char big[COFRE_ADAPTER_EVENT_MAX + 2];
    memset(big, ' ', sizeof(big) - 1);
    assert_int_equal(
        cofre_adapter_event_parse(big, sizeof(big) - 1, NULL, &t, detail, sizeof(detail)),
        COFRE_ADAPTER_EVENT_MALFORMED);
    assert_int_equal(cofre_adapter_event_parse(NULL, 0, NULL, &t, detail, sizeof(detail)),
                     COFRE_ADAPTER_EVENT_MALFORMED);
}

static void times_parse_strictly(void **state)
{
    (void)state;
    uint64_t us;
    assert_int_equal(cofre_adapter_time_parse("1970-01-01T00:00:00Z", &us), 0);
    assert_int_equal(us, 0);
    assert_int_equal(cofre_adapter_time_parse("2026-11-29T19:43:51Z", &us), 0);
    assert_int_equal(us, 1795981431000000ull);
    assert_int_equal(cofre_adapter_time_parse("2026-11-29T19:43:51.5Z", &us), 0);
    assert_int_equal(us, 1795981431500000ull);
    assert_int_equal(cofre_adapter_time_parse("2026-11-29T19:43:51.123456789Z", &us), 0);
    assert_int_equal(us, 1795981431123456ull);
    assert_int_equal(cofre_adapter_time_parse("2026-11-29T16:43:51-03:00", &us), 0);
    assert_int_equal(us, 1795981431000000ull);
    assert_int_equal(cofre_adapter_time_parse("2024-02-29T00:00:00Z", &us), 0);
    static const char *const bad[] = {"",
                                      "2026-11-29",
                                      "2026-11-29 19:43:51Z",
                                      "2026-13-01T00:00:00Z",
                                      "2025-02-29T00:00:00Z",
                                      "2026-11-29T24:00:00Z",
                                      "2026-11-29T19:43:51",
                                      "2026-11-29T19:43:51.Z",
                                      "2026-11-29T19:43:51.1234567890Z",
                                      "2026-11-29T19:43:51+3:00",
                                      "1969-12-31T23:59:59Z",
                                      "2026-11-29T19:43:51Zjunk"};
    for (size_t i = 0; i < COFRE_ARRAY_SIZE(bad); i++) {
        if (cofre_adapter_time_parse(bad[i], &us) != COFRE_EINVAL)
            fail_msg("accepted \"%s\"", bad[i]);
    }
}

static void dead_letter_is_a_cloudevent(void **state)
{
    (void)state;
    cofre_adapter_transfer_t t;
    assert_int_equal(parse(event_with(NULL, NULL), &t), COFRE_ADAPTER_EVENT_TRANSFER);
    t.partition = 3;
    t.offset = 77;
    cofre_adapter_dlq_source_t src = {.topic = "cofre.ledger.events", .partition = 3, .offset = 77};
    cofre_jbuf_t b;
    cofre_jbuf_init(&b);
    cofre_adapter_dlq_message(&b, COFRE_ADAPTER_DLQ_DECLINED, "declined 05", "05", 1, &t, &src,
                              1795981431000000ull);
    json_error_t err;
    json_t *ev = json_loads(b.data, 0, &err);
    assert_non_null(ev);
    assert_string_equal(json_string_value(json_object_get(ev, "specversion")), "1.0");
    assert_string_equal(json_string_value(json_object_get(ev, "type")),
                        "cofre.legacy.dead_lettered");
    assert_string_equal(json_string_value(json_object_get(ev, "subject")), TID);
    assert_string_equal(json_string_value(json_object_get(ev, "traceparent")), TP);
    json_t *data = json_object_get(ev, "data");
    assert_string_equal(json_string_value(json_object_get(data, "reason")), "declined");
    assert_string_equal(json_string_value(json_object_get(data, "response_code")), "05");
    json_t *tr = json_object_get(data, "transfer");
    assert_string_equal(json_string_value(json_object_get(tr, "rrn")), "D1RB0AYR7OR3");
    assert_int_equal(json_integer_value(json_object_get(tr, "amount")), 12345);
    json_t *source = json_object_get(data, "source");
    assert_int_equal(json_integer_value(json_object_get(source, "offset")), 77);
    assert_string_equal(json_string_value(json_object_get(source, "event_id")), "ev-1");
    assert_null(json_object_get(data, "original"));
    json_decref(ev);
    /* A malformed input: no transfer, the original kept as a string. */
    cofre_adapter_transfer_t none;
    assert_int_equal(parse("garbage", &none), COFRE_ADAPTER_EVENT_MALFORMED);
    src.raw = "garbage";
    src.raw_len = 7;
    cofre_jbuf_reset(&b);
    cofre_adapter_dlq_message(&b, COFRE_ADAPTER_DLQ_MALFORMED, detail, NULL, 0, &none, &src, 0);
    ev = json_loads(b.data, 0, &err);
    assert_non_null(ev);
    data = json_object_get(ev, "data");
    assert_null(json_object_get(data, "transfer"));
    assert_string_equal(json_string_value(json_object_get(data, "original")), "garbage");
    assert_true(json_is_null(json_object_get(ev, "subject")));
    json_decref(ev);
    /* Bytes that are not UTF-8 (or hold a NUL) travel as base64, exactly. */
    static const char bin[] = {'a', '\0', (char)0xff, 'b'};
    src.raw = bin;
    src.raw_len = sizeof(bin);
    cofre_jbuf_reset(&b);
    cofre_adapter_dlq_message(&b, COFRE_ADAPTER_DLQ_MALFORMED, detail, NULL, 0, &none, &src, 0);
    ev = json_loads(b.data, 0, &err);
    assert_non_null(ev);
    data = json_object_get(ev, "data");
    assert_null(json_object_get(data, "original"));
    assert_string_equal(json_string_value(json_object_get(data, "original_base64")), "YQD/Yg==");
    json_decref(ev);
    cofre_jbuf_release(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(posted_transfer_is_read),
        cmocka_unit_test(header_traceparent_is_the_fallback),
        cmocka_unit_test(other_types_are_skipped),
        cmocka_unit_test(malformed_cases_are_named),
        cmocka_unit_test(times_parse_strictly),
        cmocka_unit_test(dead_letter_is_a_cloudevent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
