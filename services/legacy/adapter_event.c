/*
 * adapter_event.c: CloudEvents in, dead letters out (see adapter_event.h).
 */
#include "legacy/adapter_event.h"

#include "cofre/common.h"
#include "cofre/uuid.h"

#include <jansson.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* Flawfinder: ignore (fmt is always a literal here; the attribute has the compiler check it) */
__attribute__((format(printf, 3, 4))) static void set_detail(char *detail, size_t cap,
                                                             const char *fmt, ...)
{
    if (cap == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    /* The format attribute has the compiler check fmt; the analyzer reports every va_list
     * as uninitialized (a known false positive, as in lib/problem.c). */
    // NOLINTNEXTLINE(clang-analyzer-valist.Uninitialized)
    vsnprintf(detail, cap, fmt, ap); /* Flawfinder: ignore */
    va_end(ap);
}

/* Reads exactly n digits at s into *v. */
static bool digits(const char *s, int n, int *v)
{
    int x = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        x = x * 10 + (s[i] - '0');
    }
    *v = x;
    return true;
}

static bool days_ok(int year, int mon, int day)
{
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (mon < 1 || mon > 12 || day < 1)
        return false;
    bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    return day <= mdays[mon - 1] + (mon == 2 && leap ? 1 : 0);
}

/* The fraction after '.', up to 9 digits, as microseconds; *end past it. */
static bool fraction_us(const char *s, const char **end, uint64_t *us)
{
    uint64_t v = 0;
    int n = 0;
    while (s[n] >= '0' && s[n] <= '9') {
        if (n >= 9)
            return false;
        if (n < 6)
            v = v * 10 + (uint64_t)(s[n] - '0');
        n++;
    }
    if (n == 0)
        return false;
    for (int i = n; i < 6; i++)
        v *= 10;
    *us = v;
    *end = s + n;
    return true;
}

/* "Z" or "+hh:mm" / "-hh:mm" as seconds east of UTC. */
static bool zone_offset(const char *s, int64_t *secs)
{
    if ((s[0] == 'Z' || s[0] == 'z') && s[1] == '\0') {
        *secs = 0;
        return true;
    }
    int hh, mm;
    if ((s[0] != '+' && s[0] != '-') || !digits(s + 1, 2, &hh) || s[3] != ':' ||
        !digits(s + 4, 2, &mm) || s[6] != '\0' || hh > 23 || mm > 59)
        return false;
    *secs = (s[0] == '-' ? -1 : 1) * (int64_t)(hh * 3600 + mm * 60);
    return true;
}

int cofre_adapter_time_parse(const char *s, uint64_t *us)
{
    int y, mo, d, h, mi, se;
    if (strlen(s) < 20 || !digits(s, 4, &y) || s[4] != '-' || !digits(s + 5, 2, &mo) ||
        s[7] != '-' || !digits(s + 8, 2, &d) || (s[10] != 'T' && s[10] != 't') ||
        !digits(s + 11, 2, &h) || s[13] != ':' || !digits(s + 14, 2, &mi) || s[16] != ':' ||
        !digits(s + 17, 2, &se))
        return COFRE_EINVAL;
    if (y < 1970 || !days_ok(y, mo, d) || h > 23 || mi > 59 || se > 60)
        return COFRE_EINVAL;
    const char *p = s + 19;
    uint64_t frac = 0;
    if (*p == '.' && !fraction_us(p + 1, &p, &frac))
        return COFRE_EINVAL;
    int64_t off;
    if (!zone_offset(p, &off))
        return COFRE_EINVAL;
    struct tm tm = {.tm_year = y - 1900,
                    .tm_mon = mo - 1,
                    .tm_mday = d,
                    .tm_hour = h,
                    .tm_min = mi,
                    .tm_sec = COFRE_MIN(se, 59)};
    int64_t secs = (int64_t)timegm(&tm) - off;
    if (secs < 0)
        return COFRE_EINVAL;
    *us = (uint64_t)secs * 1000000u + frac;
    return 0;
}

static bool copy_uuid(const json_t *obj, const char *name, char out[COFRE_LINK_UUID_LEN + 1])
{
    const json_t *v = json_object_get(obj, name);
    return json_is_string(v) && cofre_uuid_parse(json_string_value(v), json_string_length(v), out);
}

static bool currency_ok(const char *c, size_t len)
{
    if (len != 3)
        return false;
    for (size_t i = 0; i < 3; i++) {
        if (c[i] < 'A' || c[i] > 'Z')
            return false;
    }
    return true;
}

/* Fills t from data.transfer; false with detail on the first bad member. */
static bool read_transfer(const json_t *tr, cofre_adapter_transfer_t *t, char *detail, size_t cap)
{
    if (!json_is_object(tr)) {
        set_detail(detail, cap, "data.transfer: missing or not an object");
        return false;
    }
    static const char *const ids[] = {"id", "debit_account_id", "credit_account_id"};
    char *outs[] = {t->transfer_id, t->debit_account_id, t->credit_account_id};
    for (size_t i = 0; i < COFRE_ARRAY_SIZE(ids); i++) {
        if (!copy_uuid(tr, ids[i], outs[i])) {
            set_detail(detail, cap, "data.transfer.%s: not a UUID", ids[i]);
            return false;
        }
    }
    const json_t *amount = json_object_get(tr, "amount");
    if (!json_is_integer(amount)) {
        set_detail(detail, cap, "data.transfer.amount: not an integer");
        return false;
    }
    t->amount_minor = (int64_t)json_integer_value(amount);
    const json_t *cur = json_object_get(tr, "currency");
    if (!json_is_string(cur) || !currency_ok(json_string_value(cur), json_string_length(cur))) {
        set_detail(detail, cap, "data.transfer.currency: not a 3-letter ISO 4217 code");
        return false;
    }
    memcpy(t->currency, json_string_value(cur), 4);
    const json_t *at = json_object_get(tr, "created_at");
    if (!json_is_string(at) ||
        cofre_adapter_time_parse(json_string_value(at), &t->posted_at_us) != 0) {
        set_detail(detail, cap, "data.transfer.created_at: not an RFC 3339 time");
        return false;
    }
    return true;
}

int cofre_adapter_transfer_check(cofre_adapter_transfer_t *t, char *detail, size_t cap)
{
    int rc = cofre_link_rrn(t->transfer_id, strlen(t->transfer_id), t->rrn);
    COFRE_ASSERT(rc == 0); /* a parsed UUID */
    if (t->amount_minor < 1 || t->amount_minor > COFRE_LINK_AMOUNT_MAX) {
        set_detail(detail, cap,
                   "data.transfer.amount: %lld is outside 1..%lld (ISO 8583 field 4 is n 12)",
                   (long long)t->amount_minor, (long long)COFRE_LINK_AMOUNT_MAX);
        return COFRE_ERANGE;
    }
    if (strcmp(t->debit_account_id, t->credit_account_id) == 0) {
        set_detail(detail, cap, "data.transfer: debit and credit accounts are the same");
        return COFRE_EINVAL;
    }
    return 0;
}

/* Copies the traceparent from the envelope, else the header, when well-formed. */
static void take_traceparent(const json_t *ev, const char *header, cofre_adapter_transfer_t *t)
{
    const json_t *tp = json_object_get(ev, "traceparent");
    const char *s = json_is_string(tp) ? json_string_value(tp) : header;
    char trace_id[33], parent[17];
    uint8_t flags;
    t->traceparent[0] = '\0';
    if (s != NULL && cofre_trace_parse(s, strlen(s), trace_id, parent, &flags))
        snprintf(t->traceparent, sizeof(t->traceparent), "%s", s);
}

static cofre_adapter_event_kind_t parse_envelope(const json_t *ev, const char *header_tp,
                                                 cofre_adapter_transfer_t *t, char *detail,
                                                 size_t cap)
{
    const json_t *spec = json_object_get(ev, "specversion");
    const json_t *id = json_object_get(ev, "id");
    const json_t *type = json_object_get(ev, "type");
    if (!json_is_string(spec) || !json_is_string(id) || !json_is_string(type)) {
        set_detail(detail, cap, "not a CloudEvent: specversion, id and type must be strings");
        return COFRE_ADAPTER_EVENT_MALFORMED;
    }
    size_t id_len = json_string_length(id);
    if (id_len == 0 || id_len > COFRE_ADAPTER_EVENT_ID_MAX) {
        set_detail(detail, cap, "id: 1 to %d characters", COFRE_ADAPTER_EVENT_ID_MAX);
        return COFRE_ADAPTER_EVENT_MALFORMED;
    }
    memcpy(t->event_id, json_string_value(id), id_len + 1);
    if (strcmp(json_string_value(type), COFRE_ADAPTER_EVENT_TYPE) != 0)
        return COFRE_ADAPTER_EVENT_OTHER;
    take_traceparent(ev, header_tp, t);
    const json_t *data = json_object_get(ev, "data");
    if (!read_transfer(json_is_object(data) ? json_object_get(data, "transfer") : NULL, t, detail,
                       cap))
        return COFRE_ADAPTER_EVENT_MALFORMED;
    return cofre_adapter_transfer_check(t, detail, cap) == 0 ? COFRE_ADAPTER_EVENT_TRANSFER
                                                             : COFRE_ADAPTER_EVENT_MALFORMED;
}

cofre_adapter_event_kind_t cofre_adapter_event_parse(const char *value, size_t len,
                                                     const char *header_traceparent,
                                                     cofre_adapter_transfer_t *t, char *detail,
                                                     size_t cap)
{
    memset(t, 0, sizeof(*t));
    t->partition = -1;
    if (cap > 0)
        detail[0] = '\0';
    if (value == NULL || len == 0 || len > COFRE_ADAPTER_EVENT_MAX) {
        set_detail(detail, cap, "value: empty or larger than %d bytes", COFRE_ADAPTER_EVENT_MAX);
        return COFRE_ADAPTER_EVENT_MALFORMED;
    }
    json_error_t err;
    json_t *ev = json_loadb(value, len, JSON_REJECT_DUPLICATES, &err);
    if (ev == NULL || !json_is_object(ev)) {
        set_detail(detail, cap, "value: not a JSON object");
        json_decref(ev);
        return COFRE_ADAPTER_EVENT_MALFORMED;
    }
    cofre_adapter_event_kind_t kind = parse_envelope(ev, header_traceparent, t, detail, cap);
    json_decref(ev);
    return kind;
}

static void write_transfer(cofre_jbuf_t *b, const cofre_adapter_transfer_t *t)
{
    cofre_jbuf_key(b, "transfer");
    cofre_jbuf_obj_begin(b);
    cofre_jbuf_kstr(b, "id", t->transfer_id);
    cofre_jbuf_kstr(b, "debit_account_id", t->debit_account_id);
    cofre_jbuf_kstr(b, "credit_account_id", t->credit_account_id);
    cofre_jbuf_kint(b, "amount", t->amount_minor);
    cofre_jbuf_kstr(b, "currency", t->currency);
    char at[COFRE_TIME_LEN + 1];
    cofre_time_format(t->posted_at_us, at);
    cofre_jbuf_kstr(b, "created_at", at);
    cofre_jbuf_kstr(b, "rrn", t->rrn);
    cofre_jbuf_obj_end(b);
}

static void write_source(cofre_jbuf_t *b, const cofre_adapter_dlq_source_t *src,
                         const cofre_adapter_transfer_t *t)
{
    cofre_jbuf_key(b, "source");
    cofre_jbuf_obj_begin(b);
    cofre_jbuf_kstr(b, "topic", src->topic);
    if (src->partition >= 0) {
        cofre_jbuf_kint(b, "partition", src->partition);
        cofre_jbuf_kint(b, "offset", src->offset);
    }
    cofre_jbuf_kstr(b, "event_id", t != NULL && t->event_id[0] != '\0' ? t->event_id : NULL);
    cofre_jbuf_obj_end(b);
}

/* The original value: as a string when it is UTF-8 without NUL, else as base64, so the bytes
 * survive exactly and every JSON reader accepts the message. */
static void write_original(cofre_jbuf_t *b, const char *raw, size_t len)
{
    json_t *s = memchr(raw, '\0', len) == NULL ? json_stringn(raw, len) : NULL;
    if (s != NULL) {
        json_decref(s);
        cofre_jbuf_key(b, "original");
        cofre_jbuf_strn(b, raw, len);
        return;
    }
    size_t cap = 4 * ((len + 2) / 3) + 1;
    unsigned char *enc = cofre_malloc(cap);
    int n = EVP_EncodeBlock(enc, (const unsigned char *)raw, (int)len);
    COFRE_ASSERT(n >= 0 && (size_t)n < cap);
    cofre_jbuf_key(b, "original_base64");
    cofre_jbuf_strn(b, (const char *)enc, (size_t)n);
    free(enc);
}

void cofre_adapter_dlq_message(cofre_jbuf_t *out, const char *reason, const char *detail,
                               const char *code, unsigned attempts,
                               const cofre_adapter_transfer_t *t,
                               const cofre_adapter_dlq_source_t *src, uint64_t now_us)
{
    char id[COFRE_UUID_LEN + 1], at[COFRE_TIME_LEN + 1];
    cofre_uuid_v7(id);
    cofre_time_format(now_us, at);
    bool has_transfer = t != NULL && t->transfer_id[0] != '\0' && t->rrn[0] != '\0';
    cofre_jbuf_obj_begin(out);
    cofre_jbuf_kstr(out, "specversion", "1.0");
    cofre_jbuf_kstr(out, "id", id);
    cofre_jbuf_kstr(out, "source", "/cofre/legacy");
    cofre_jbuf_kstr(out, "type", "cofre.legacy.dead_lettered");
    cofre_jbuf_kstr(out, "time", at);
    cofre_jbuf_kstr(out, "subject",
                    has_transfer ? t->transfer_id
                                 : (t != NULL && t->event_id[0] != '\0' ? t->event_id : NULL));
    cofre_jbuf_kstr(out, "datacontenttype", "application/json");
    if (t != NULL && t->traceparent[0] != '\0')
        cofre_jbuf_kstr(out, "traceparent", t->traceparent);
    cofre_jbuf_key(out, "data");
    cofre_jbuf_obj_begin(out);
    cofre_jbuf_kstr(out, "reason", reason);
    cofre_jbuf_kstr(out, "detail", detail);
    cofre_jbuf_kstr(out, "response_code", code);
    cofre_jbuf_kuint(out, "attempts", attempts);
    if (has_transfer)
        write_transfer(out, t);
    write_source(out, src, t);
    if (src->raw != NULL)
        write_original(out, src->raw, COFRE_MIN(src->raw_len, (size_t)COFRE_ADAPTER_EVENT_MAX));
    cofre_jbuf_obj_end(out);
    cofre_jbuf_obj_end(out);
}
