/*
 * test_audit_record.c: reading audit records from Kafka messages (cofre's events, auth-style
 * events with an outcome, and malformed input of every kind), RFC 3339 times, the canonical
 * bytes' known answer (computed independently by tests/events/audit_chain.py), and the JSON
 * the API serves.
 */
#include "unit.h"

#include "audit/record.h"
#include "cofre/common.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const cofre_audit_origin_t origin = {.topic = "cofre.ledger.events",
                                            .partition = 3,
                                            .offset = 42,
                                            .recorded_at = "2026-11-29T20:00:00.000001Z"};

static const char transfer_event[] =
    "{\"specversion\":\"1.0\",\"id\":\"01a2-ev\",\"source\":\"/cofre/core\","
    "\"type\":\"cofre.transfer.posted\",\"time\":\"2026-11-29T19:43:51.123456Z\","
    "\"subject\":\"tr-1\",\"datacontenttype\":\"application/json\","
    "\"traceparent\":\"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\","
    "\"data\":{\"transfer\":{\"id\":\"tr-1\",\"debit_account_id\":\"acc-a\","
    "\"credit_account_id\":\"acc-b\",\"amount\":1500,\"currency\":\"EUR\",\"reference\":null,"
    "\"created_at\":\"2026-11-29T19:43:51.123456Z\"},\"actor\":{\"client_id\":\"app-1\","
    "\"owner\":\"alice\",\"address\":\"10.0.0.7\",\"request_id\":\"req-9\"}}}";

static void expect_field(const cofre_audit_record_t *r, cofre_audit_field_t f, const char *want)
{
    const char *got = r->f[f];
    if (want == NULL ? got != NULL : got == NULL || strcmp(got, want) != 0)
        fail_msg("%s: got \"%s\", want \"%s\"", cofre_audit_field_names[f],
                 got != NULL ? got : "(null)", want != NULL ? want : "(null)");
}

static void reads_a_transfer_event(void **state)
{
    (void)state;
    cofre_audit_record_t r;
    assert_true(cofre_audit_record_from_event(transfer_event, strlen(transfer_event), &origin, &r));
    expect_field(&r, COFRE_AUDIT_F_EVENT_ID, "01a2-ev");
    expect_field(&r, COFRE_AUDIT_F_TYPE, "cofre.transfer.posted");
    expect_field(&r, COFRE_AUDIT_F_SUBJECT, "tr-1");
    expect_field(&r, COFRE_AUDIT_F_CLIENT_ID, "app-1");
    expect_field(&r, COFRE_AUDIT_F_OWNER, "alice");
    expect_field(&r, COFRE_AUDIT_F_ADDRESS, "10.0.0.7");
    expect_field(&r, COFRE_AUDIT_F_REQUEST_ID, "req-9");
    expect_field(&r, COFRE_AUDIT_F_TRACE_ID, "0af7651916cd43dd8448eb211c80319c");
    expect_field(&r, COFRE_AUDIT_F_OUTCOME, "success");
    expect_field(&r, COFRE_AUDIT_F_REASON, NULL);
    expect_field(&r, COFRE_AUDIT_F_CURRENCY, "EUR");
    expect_field(&r, COFRE_AUDIT_F_DEBIT_ACCOUNT, "acc-a");
    expect_field(&r, COFRE_AUDIT_F_CREDIT_ACCOUNT, "acc-b");
    expect_field(&r, COFRE_AUDIT_F_TOPIC, "cofre.ledger.events");
    expect_field(&r, COFRE_AUDIT_F_RECORDED_AT, origin.recorded_at);
    expect_field(&r, COFRE_AUDIT_F_EVENT, transfer_event);
    assert_true(r.has_amount);
    assert_int_equal(r.amount, 1500);
    assert_true(r.has_time_us);
    assert_int_equal(r.time_us, 1795981431123456LL);
    assert_int_equal(r.partition, 3);
    assert_int_equal(r.offset, 42);
    cofre_audit_record_release(&r);
}

static void reads_an_account_event_and_an_auth_failure(void **state)
{
    (void)state;
    const char account[] =
        "{\"specversion\":\"1.0\",\"id\":\"ev-a\",\"source\":\"/cofre/core\","
        "\"type\":\"cofre.account.created\",\"subject\":\"acc-1\",\"data\":{\"account\":"
        "{\"id\":\"acc-1\",\"currency\":\"USD\",\"owner\":\"bob\"},\"actor\":{\"client_id\":\"c\","
        "\"owner\":null}}}";
    cofre_audit_record_t r;
    assert_true(cofre_audit_record_from_event(account, strlen(account), &origin, &r));
    expect_field(&r, COFRE_AUDIT_F_CURRENCY, "USD");
    expect_field(&r, COFRE_AUDIT_F_OWNER, NULL);
    assert_false(r.has_amount);
    assert_false(r.has_time_us);
    cofre_audit_record_release(&r);

    const char failed[] =
        "{\"specversion\":\"1.0\",\"id\":\"ev-f\",\"source\":\"/cofre/auth\","
        "\"type\":\"cofre.auth.authentication_failed\",\"subject\":\"client-7\","
        "\"time\":\"2026-11-29T20:43:51+01:00\",\"data\":{\"outcome\":\"failure\","
        "\"reason\":\"invalid_client\",\"actor\":{\"client_id\":\"client-7\","
        "\"address\":\"192.0.2.1\"}}}";
    assert_true(cofre_audit_record_from_event(failed, strlen(failed), &origin, &r));
    expect_field(&r, COFRE_AUDIT_F_OUTCOME, "failure");
    expect_field(&r, COFRE_AUDIT_F_REASON, "invalid_client");
    expect_field(&r, COFRE_AUDIT_F_ADDRESS, "192.0.2.1");
    assert_true(r.has_time_us);
    assert_int_equal(r.time_us, 1795981431000000LL);
    cofre_audit_record_release(&r);

    /* cofre-auth's shape: the failure as the event's entity. */
    const char auth[] =
        "{\"specversion\":\"1.0\",\"id\":\"ev-g\",\"source\":\"/cofre/auth\","
        "\"type\":\"cofre.auth.authentication.failed\",\"subject\":\"client-8\","
        "\"data\":{\"failure\":{\"client_id\":\"client-8\",\"reason\":\"bad_secret\"},"
        "\"actor\":{\"client_id\":\"client-8\",\"address\":\"192.0.2.2\","
        "\"request_id\":\"q\",\"command\":null}}}";
    assert_true(cofre_audit_record_from_event(auth, strlen(auth), &origin, &r));
    expect_field(&r, COFRE_AUDIT_F_OUTCOME, "failure");
    expect_field(&r, COFRE_AUDIT_F_REASON, "bad_secret");
    expect_field(&r, COFRE_AUDIT_F_CLIENT_ID, "client-8");
    cofre_audit_record_release(&r);
}

static void malformed_messages_become_rejected_records(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "not json",
        "[1,2]",
        "{\"specversion\":\"0.3\",\"id\":\"x\",\"type\":\"t\",\"source\":\"s\"}",
        "{\"specversion\":\"1.0\",\"type\":\"t\",\"source\":\"s\"}",
        "{\"specversion\":\"1.0\",\"id\":\"\",\"type\":\"t\",\"source\":\"s\"}",
        "{\"specversion\":\"1.0\",\"id\":7,\"type\":\"t\",\"source\":\"s\"}",
        "{\"specversion\":\"1.0\",\"id\":\"a\\nb\",\"type\":\"t\",\"source\":\"s\"}",
        "{\"specversion\":\"1.0\",\"id\":\"x\",\"id\":\"y\",\"type\":\"t\",\"source\":\"s\"}",
        "{\"specversion\":\"1.0\",\"id\":\"x\",\"type\":\"t\",\"source\":\"s\",\"data\":[]}",
        "{\"specversion\":\"1.0\",\"id\":\"x\",\"type\":\"t\",\"source\":\"s\",\"data\":"
        "{\"transfer\":{\"amount\":\"10\"}}}",
        "{\"specversion\":\"1.0\",\"id\":\"x\",\"type\":\"t\",\"source\":\"s\",\"data\":"
        "{\"actor\":\"me\"}}",
        "{\"specversion\":\"1.0\",\"id\":\"x\",\"type\":\"t\",\"source\":\"s\"} trailing",
        "{\"specversion\":\"1.0\",\"id\":\"x\\u0000\",\"type\":\"t\",\"source\":\"s\"}",
    };
    for (size_t i = 0; i < COFRE_ARRAY_SIZE(bad); i++) {
        cofre_audit_record_t r;
        if (cofre_audit_record_from_event(bad[i], strlen(bad[i]), &origin, &r))
            fail_msg("accepted malformed input %zu: %s", i, bad[i]);
        expect_field(&r, COFRE_AUDIT_F_EVENT_ID, "malformed:cofre.ledger.events:3:42");
        expect_field(&r, COFRE_AUDIT_F_TYPE, COFRE_AUDIT_MALFORMED);
        expect_field(&r, COFRE_AUDIT_F_OUTCOME, "rejected");
        assert_non_null(r.f[COFRE_AUDIT_F_REASON]);
        json_t *ev = json_loads(r.f[COFRE_AUDIT_F_EVENT], JSON_DECODE_ANY, NULL);
        assert_true(json_is_string(ev)); /* the raw bytes, kept as a JSON string */
        json_decref(ev);
        cofre_audit_record_release(&r);
    }
}

static void oversized_and_binary_messages_are_kept_bounded(void **state)
{
    (void)state;
    size_t len = COFRE_AUDIT_EVENT_MAX + 10;
    char *big = cofre_malloc(len);
    for (size_t i = 0; i < len; i++)
        big[i] = (char)(i % 251); /* NULs and invalid UTF-8 included */
    cofre_audit_record_t r;
    assert_false(cofre_audit_record_from_event(big, len, &origin, &r));
    json_t *ev = json_loads(r.f[COFRE_AUDIT_F_EVENT], JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    assert_true(json_is_string(ev));
    assert_true(json_string_length(ev) >= COFRE_AUDIT_EVENT_MAX / 2);
    json_decref(ev);
    cofre_audit_record_release(&r);
    free(big);
}

static void parses_rfc3339_times(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        int64_t us;
    } good[] = {
        {"1970-01-01T00:00:00Z", 0},
        {"2026-01-02T03:04:05.000006Z", 1767323045000006LL},
        {"2026-01-02T03:04:05.0000069Z", 1767323045000006LL}, /* beyond us: truncated */
        {"2026-01-02T04:04:05.5+01:00", 1767323045500000LL},
        {"2024-02-29T00:00:00-00:30", 1709166600000000LL},
    };
    for (size_t i = 0; i < COFRE_ARRAY_SIZE(good); i++) {
        int64_t us = -1;
        if (!cofre_audit_time_parse(good[i].s, strlen(good[i].s), &us) || us != good[i].us)
            fail_msg("%s: got %lld, want %lld", good[i].s, (long long)us, (long long)good[i].us);
    }
    static const char *const bad[] = {
        "2026-13-01T00:00:00Z",     "2026-02-30T00:00:00Z",     "2025-02-29T00:00:00Z",
        "2026-01-01T24:00:00Z",     "2026-01-01T00:00:00",      "2026-01-01 00:00:00Z",
        "2026-01-01T00:00:00.Z",    "2026-01-01T00:00:00+1:00", "x",
        "2026-01-01T00:00:00Zjunk",
    };
    for (size_t i = 0; i < COFRE_ARRAY_SIZE(bad); i++) {
        int64_t us;
        if (cofre_audit_time_parse(bad[i], strlen(bad[i]), &us))
            fail_msg("accepted \"%s\"", bad[i]);
    }
}

static void known_record(cofre_audit_record_t *r)
{
    static const char *const v[COFRE_AUDIT_F_COUNT_] = {
        [COFRE_AUDIT_F_EVENT_ID] = "e1",
        [COFRE_AUDIT_F_TYPE] = "cofre.transfer.posted",
        [COFRE_AUDIT_F_SOURCE] = "/cofre/core",
        [COFRE_AUDIT_F_SUBJECT] = "t1",
        [COFRE_AUDIT_F_TIME] = "2026-01-02T03:04:05.000006Z",
        [COFRE_AUDIT_F_RECORDED_AT] = "2026-01-02T03:04:06Z",
        [COFRE_AUDIT_F_CLIENT_ID] = "c",
        [COFRE_AUDIT_F_ADDRESS] = "127.0.0.1",
        [COFRE_AUDIT_F_REQUEST_ID] = "r",
        [COFRE_AUDIT_F_OUTCOME] = "success",
        [COFRE_AUDIT_F_CURRENCY] = "EUR",
        [COFRE_AUDIT_F_DEBIT_ACCOUNT] = "a",
        [COFRE_AUDIT_F_CREDIT_ACCOUNT] = "b",
        [COFRE_AUDIT_F_TOPIC] = "cofre.ledger.events",
        [COFRE_AUDIT_F_EVENT] = "{}",
    };
    memset(r, 0, sizeof(*r));
    r->seq = 1;
    for (size_t i = 0; i < COFRE_AUDIT_F_COUNT_; i++)
        r->f[i] = v[i] != NULL ? cofre_strdup(v[i]) : NULL;
    r->has_amount = true;
    r->amount = 500;
    r->has_time_us = true;
    r->time_us = 1767323045000006LL;
    r->partition = 2;
    r->offset = 7;
}

static void canonical_hash_known_answer(void **state)
{
    (void)state;
    cofre_audit_record_t r;
    known_record(&r);
    uint8_t zero[COFRE_AUDIT_HASH_LEN] = {0}, h[COFRE_AUDIT_HASH_LEN];
    cofre_audit_record_hash(zero, &r, h);
    char hex[2 * COFRE_AUDIT_HASH_LEN + 1];
    cofre_hex_encode(h, sizeof(h), hex);
    assert_string_equal(hex, "648d40e3108723ac3d4730360b0c9be52defd802447d4440b97a90eac0fdc3d6");
    cofre_audit_record_release(&r);
}

static void every_field_changes_the_hash(void **state)
{
    (void)state;
    cofre_audit_record_t r;
    known_record(&r);
    uint8_t zero[COFRE_AUDIT_HASH_LEN] = {0}, base[COFRE_AUDIT_HASH_LEN], h[COFRE_AUDIT_HASH_LEN];
    cofre_audit_record_hash(zero, &r, base);
    for (size_t i = 0; i < COFRE_AUDIT_F_COUNT_; i++) {
        char *saved = r.f[i];
        r.f[i] = cofre_strdup("changed");
        cofre_audit_record_hash(zero, &r, h);
        if (memcmp(h, base, sizeof(h)) == 0)
            fail_msg("changing %s left the hash as it was", cofre_audit_field_names[i]);
        free(r.f[i]);
        r.f[i] = saved;
    }
    r.amount++;
    cofre_audit_record_hash(zero, &r, h);
    assert_memory_not_equal(h, base, sizeof(h));
    r.amount--;
    r.seq = 2;
    cofre_audit_record_hash(zero, &r, h);
    assert_memory_not_equal(h, base, sizeof(h));
    r.seq = 1;
    uint8_t other_prev[COFRE_AUDIT_HASH_LEN] = {1};
    cofre_audit_record_hash(other_prev, &r, h);
    assert_memory_not_equal(h, base, sizeof(h));
    /* A null and an empty string differ. */
    free(r.f[COFRE_AUDIT_F_REASON]);
    r.f[COFRE_AUDIT_F_REASON] = cofre_strdup("");
    cofre_audit_record_hash(zero, &r, h);
    assert_memory_not_equal(h, base, sizeof(h));
    cofre_audit_record_release(&r);
}

static void json_has_the_api_shape(void **state)
{
    (void)state;
    cofre_audit_record_t r;
    assert_true(cofre_audit_record_from_event(transfer_event, strlen(transfer_event), &origin, &r));
    r.seq = 9;
    cofre_jbuf_t b;
    cofre_jbuf_init(&b);
    cofre_audit_record_json(&r, &b);
    json_error_t err;
    json_t *o = json_loads(b.data, JSON_REJECT_DUPLICATES, &err);
    if (o == NULL)
        fail_msg("not JSON (%s): %s", err.text, b.data);
    assert_int_equal(json_integer_value(json_object_get(o, "seq")), 9);
    assert_int_equal(json_integer_value(json_object_get(o, "amount")), 1500);
    assert_string_equal(json_string_value(json_object_get(json_object_get(o, "actor"), "owner")),
                        "alice");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(o, "kafka"), "offset")),
                     42);
    assert_true(json_is_object(json_object_get(o, "event")));
    assert_int_equal(json_string_length(json_object_get(o, "hash")), 64);
    json_decref(o);
    cofre_jbuf_release(&b);
    cofre_audit_record_release(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(reads_a_transfer_event),
        cmocka_unit_test(reads_an_account_event_and_an_auth_failure),
        cmocka_unit_test(malformed_messages_become_rejected_records),
        cmocka_unit_test(oversized_and_binary_messages_are_kept_bounded),
        cmocka_unit_test(parses_rfc3339_times),
        cmocka_unit_test(canonical_hash_known_answer),
        cmocka_unit_test(every_field_changes_the_hash),
        cmocka_unit_test(json_has_the_api_shape),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
