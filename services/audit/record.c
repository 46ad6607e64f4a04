/*
 * record.c: audit records from Kafka messages, their canonical bytes and chain hash (see
 * record.h). Every message is outside input: each member is checked for type and length, and
 * nothing in it is trusted to be well formed.
 */
#include "audit/record.h"

#include "cofre/common.h"
#include "cofre/trace.h"

#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SHORT_MAX  64 /* times, currencies, addresses, outcomes */
#define REASON_MAX 256
#define CANON_NULL 0xffffffffu
#define US_PER_S   1000000LL

const char *const cofre_audit_field_names[COFRE_AUDIT_F_COUNT_] = {
    [COFRE_AUDIT_F_EVENT_ID] = "event_id",
    [COFRE_AUDIT_F_TYPE] = "type",
    [COFRE_AUDIT_F_SOURCE] = "source",
    [COFRE_AUDIT_F_SUBJECT] = "subject",
    [COFRE_AUDIT_F_TIME] = "time",
    [COFRE_AUDIT_F_RECORDED_AT] = "recorded_at",
    [COFRE_AUDIT_F_CLIENT_ID] = "client_id",
    [COFRE_AUDIT_F_OWNER] = "owner",
    [COFRE_AUDIT_F_ADDRESS] = "address",
    [COFRE_AUDIT_F_REQUEST_ID] = "request_id",
    [COFRE_AUDIT_F_TRACE_ID] = "trace_id",
    [COFRE_AUDIT_F_OUTCOME] = "outcome",
    [COFRE_AUDIT_F_REASON] = "reason",
    [COFRE_AUDIT_F_CURRENCY] = "currency",
    [COFRE_AUDIT_F_DEBIT_ACCOUNT] = "debit_account_id",
    [COFRE_AUDIT_F_CREDIT_ACCOUNT] = "credit_account_id",
    [COFRE_AUDIT_F_TOPIC] = "topic",
    [COFRE_AUDIT_F_EVENT] = "event",
};

/* ---- time -------------------------------------------------------------------------------- */

static bool digits(const char *s, size_t n, int *out)
{
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar (H. Hinnant). */
static int64_t days_from_civil(int y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static bool leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static bool valid_date(int y, int mo, int d)
{
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (y < 1 || mo < 1 || mo > 12 || d < 1)
        return false;
    return d <= mdays[mo - 1] + (mo == 2 && leap(y));
}

/* Parses ".ffffff" (1..9 digits) at s; returns the characters used (0 when none), -1 bad. */
static long parse_fraction(const char *s, size_t len, int64_t *us)
{
    *us = 0;
    if (len == 0 || s[0] != '.')
        return 0;
    size_t i = 1;
    int64_t scale = 100000;
    while (i < len && s[i] >= '0' && s[i] <= '9' && i <= 9) {
        *us += (s[i] - '0') * scale;
        scale /= 10;
        i++;
    }
    return i == 1 ? -1 : (long)i;
}

static bool parse_zone(const char *s, size_t len, int64_t *offset_s)
{
    int hh, mm;
    if (len == 1 && s[0] == 'Z') {
        *offset_s = 0;
        return true;
    }
    if (len != 6 || (s[0] != '+' && s[0] != '-') || s[3] != ':' || !digits(s + 1, 2, &hh) ||
        !digits(s + 4, 2, &mm) || hh > 23 || mm > 59)
        return false;
    *offset_s = (s[0] == '-' ? -1 : 1) * (hh * 3600 + mm * 60);
    return true;
}

bool cofre_audit_time_parse(const char *s, size_t len, int64_t *us)
{
    int y, mo, d, h, mi, sec;
    if (len < 20 || len > 40 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' ||
        s[16] != ':')
        return false;
    if (!digits(s, 4, &y) || !digits(s + 5, 2, &mo) || !digits(s + 8, 2, &d) ||
        !digits(s + 11, 2, &h) || !digits(s + 14, 2, &mi) || !digits(s + 17, 2, &sec))
        return false;
    if (!valid_date(y, mo, d) || h > 23 || mi > 59 || sec > 60)
        return false;
    int64_t frac;
    long used = parse_fraction(s + 19, len - 19, &frac);
    int64_t offset_s;
    if (used < 0 || !parse_zone(s + 19 + used, len - 19 - (size_t)used, &offset_s))
        return false;
    int64_t secs = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - offset_s;
    *us = secs * US_PER_S + frac;
    return true;
}

/* ---- reading events ---------------------------------------------------------------------- */

/* Printable text without control characters, 1..max bytes. */
static bool clean_text(const char *s, size_t len, size_t max)
{
    if (len < 1 || len > max)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch < 0x20 || ch == 0x7f)
            return false;
    }
    return true;
}

/*
 * Copies member name of obj into rec->f[field]. Absent or null leaves it NULL (an error when
 * required); anything but clean text of at most max bytes is an error, with *why set.
 */
static bool take(const json_t *obj, const char *name, size_t max, bool required,
                 cofre_audit_record_t *rec, cofre_audit_field_t field, const char **why)
{
    const json_t *v = obj != NULL ? json_object_get(obj, name) : NULL;
    if (v == NULL || json_is_null(v)) {
        if (required)
            *why = name;
        return !required;
    }
    const char *s = json_string_value(v);
    size_t len = json_string_length(v);
    if (s == NULL || !clean_text(s, len, max)) {
        *why = name;
        return false;
    }
    free(rec->f[field]);
    rec->f[field] = cofre_strndup(s, len);
    return true;
}

/* An optional object member: NULL when absent or null; *bad when present but not an object. */
static const json_t *member_object(const json_t *obj, const char *name, bool *bad)
{
    const json_t *v = obj != NULL ? json_object_get(obj, name) : NULL;
    if (v == NULL || json_is_null(v))
        return NULL;
    if (!json_is_object(v))
        *bad = true;
    return json_is_object(v) ? v : NULL;
}

static bool read_envelope(const json_t *ev, cofre_audit_record_t *rec, const char **why)
{
    const char *spec = json_string_value(json_object_get(ev, "specversion"));
    if (spec == NULL || strcmp(spec, "1.0") != 0) {
        *why = "specversion";
        return false;
    }
    if (!take(ev, "id", COFRE_AUDIT_ID_MAX, true, rec, COFRE_AUDIT_F_EVENT_ID, why) ||
        !take(ev, "type", COFRE_AUDIT_NAME_MAX, true, rec, COFRE_AUDIT_F_TYPE, why) ||
        !take(ev, "source", COFRE_AUDIT_NAME_MAX, true, rec, COFRE_AUDIT_F_SOURCE, why) ||
        !take(ev, "subject", COFRE_AUDIT_NAME_MAX, false, rec, COFRE_AUDIT_F_SUBJECT, why) ||
        !take(ev, "time", SHORT_MAX, false, rec, COFRE_AUDIT_F_TIME, why))
        return false;
    const char *t = rec->f[COFRE_AUDIT_F_TIME];
    rec->has_time_us = t != NULL && cofre_audit_time_parse(t, strlen(t), &rec->time_us);
    const json_t *tp = json_object_get(ev, "traceparent");
    char trace_id[33], parent[17];
    uint8_t flags;
    if (json_is_string(tp) &&
        cofre_trace_parse(json_string_value(tp), json_string_length(tp), trace_id, parent, &flags))
        rec->f[COFRE_AUDIT_F_TRACE_ID] = cofre_strdup(trace_id);
    return true;
}

static bool read_actor(const json_t *data, cofre_audit_record_t *rec, const char **why)
{
    bool bad = false;
    const json_t *actor = member_object(data, "actor", &bad);
    if (bad) {
        *why = "data.actor";
        return false;
    }
    return take(actor, "client_id", COFRE_AUDIT_ID_MAX, false, rec, COFRE_AUDIT_F_CLIENT_ID, why) &&
           take(actor, "owner", COFRE_AUDIT_ID_MAX, false, rec, COFRE_AUDIT_F_OWNER, why) &&
           take(actor, "address", SHORT_MAX, false, rec, COFRE_AUDIT_F_ADDRESS, why) &&
           take(actor, "request_id", COFRE_AUDIT_ID_MAX, false, rec, COFRE_AUDIT_F_REQUEST_ID, why);
}

/* What moved: a transfer's amount and accounts, or an account's currency. */
static bool read_entity(const json_t *data, cofre_audit_record_t *rec, const char **why)
{
    bool bad = false;
    const json_t *transfer = member_object(data, "transfer", &bad);
    const json_t *account = member_object(data, "account", &bad);
    if (bad) {
        *why = "data.transfer or data.account";
        return false;
    }
    if (transfer != NULL) {
        const json_t *amount = json_object_get(transfer, "amount");
        if (amount != NULL && !json_is_integer(amount)) {
            *why = "data.transfer.amount";
            return false;
        }
        rec->has_amount = amount != NULL;
        rec->amount = amount != NULL ? (int64_t)json_integer_value(amount) : 0;
        return take(transfer, "currency", SHORT_MAX, false, rec, COFRE_AUDIT_F_CURRENCY, why) &&
               take(transfer, "debit_account_id", COFRE_AUDIT_ID_MAX, false, rec,
                    COFRE_AUDIT_F_DEBIT_ACCOUNT, why) &&
               take(transfer, "credit_account_id", COFRE_AUDIT_ID_MAX, false, rec,
                    COFRE_AUDIT_F_CREDIT_ACCOUNT, why);
    }
    return take(account, "currency", SHORT_MAX, false, rec, COFRE_AUDIT_F_CURRENCY, why);
}

static bool read_data(const json_t *ev, cofre_audit_record_t *rec, const char **why)
{
    bool bad = false;
    const json_t *data = member_object(ev, "data", &bad);
    if (bad) {
        *why = "data";
        return false;
    }
    if (!read_actor(data, rec, why) || !read_entity(data, rec, why) ||
        !take(data, "outcome", SHORT_MAX, false, rec, COFRE_AUDIT_F_OUTCOME, why) ||
        !take(data, "reason", REASON_MAX, false, rec, COFRE_AUDIT_F_REASON, why))
        return false;
    if (rec->f[COFRE_AUDIT_F_OUTCOME] != NULL)
        return true;
    /* cofre-auth's failures carry their reason in data.failure instead. */
    const json_t *failure = member_object(data, "failure", &bad);
    if (bad) {
        *why = "data.failure";
        return false;
    }
    rec->f[COFRE_AUDIT_F_OUTCOME] = cofre_strdup(failure != NULL ? "failure" : "success");
    return failure == NULL || rec->f[COFRE_AUDIT_F_REASON] != NULL ||
           take(failure, "reason", REASON_MAX, false, rec, COFRE_AUDIT_F_REASON, why);
}

static void set_origin(cofre_audit_record_t *rec, const cofre_audit_origin_t *o)
{
    rec->f[COFRE_AUDIT_F_TOPIC] = o->topic != NULL ? cofre_strdup(o->topic) : NULL;
    rec->f[COFRE_AUDIT_F_RECORDED_AT] = cofre_strdup(o->recorded_at);
    rec->partition = o->partition;
    rec->offset = o->offset;
}

/* Turns rec into the record of a malformed message (keeping its origin). */
static void make_malformed(cofre_audit_record_t *rec, const char *value, size_t len,
                           const cofre_audit_origin_t *o, const char *why)
{
    cofre_audit_record_release(rec);
    set_origin(rec, o);
    char buf[COFRE_AUDIT_NAME_MAX + 64];
    snprintf(buf, sizeof(buf), "malformed:%s:%d:%lld", o->topic != NULL ? o->topic : "",
             (int)o->partition, (long long)o->offset);
    rec->f[COFRE_AUDIT_F_EVENT_ID] = cofre_strdup(buf);
    rec->f[COFRE_AUDIT_F_TYPE] = cofre_strdup(COFRE_AUDIT_MALFORMED);
    rec->f[COFRE_AUDIT_F_SOURCE] = cofre_strdup("/cofre/audit");
    rec->f[COFRE_AUDIT_F_OUTCOME] = cofre_strdup("rejected");
    snprintf(buf, sizeof(buf), "malformed event: %s", why);
    rec->f[COFRE_AUDIT_F_REASON] = cofre_strdup(buf);
    cofre_jbuf_t b;
    cofre_jbuf_init(&b);
    cofre_jbuf_strn(&b, value != NULL ? value : "", COFRE_MIN(len, (size_t)COFRE_AUDIT_EVENT_MAX));
    rec->f[COFRE_AUDIT_F_EVENT] = cofre_jbuf_steal(&b, NULL);
}

bool cofre_audit_record_from_event(const char *value, size_t len, const cofre_audit_origin_t *o,
                                   cofre_audit_record_t *rec)
{
    memset(rec, 0, sizeof(*rec));
    const char *why = "not a JSON object";
    json_t *ev = NULL;
    if (value == NULL || len == 0)
        why = "empty";
    else if (len > COFRE_AUDIT_EVENT_MAX)
        why = "too large";
    else
        ev = json_loadb(value, len, JSON_REJECT_DUPLICATES, NULL);
    bool ok = json_is_object(ev) && read_envelope(ev, rec, &why) && read_data(ev, rec, &why);
    json_decref(ev);
    if (!ok) {
        make_malformed(rec, value, len, o, why);
        return false;
    }
    set_origin(rec, o);
    rec->f[COFRE_AUDIT_F_EVENT] = cofre_strndup(value, len);
    return true;
}

void cofre_audit_record_release(cofre_audit_record_t *rec)
{
    for (size_t i = 0; i < COFRE_AUDIT_F_COUNT_; i++)
        free(rec->f[i]);
    memset(rec, 0, sizeof(*rec));
}

/* ---- canonical bytes and hash ------------------------------------------------------------ */

static void canon_item(cofre_jbuf_t *out, const char *s, size_t len, bool null)
{
    uint32_t n = null ? CANON_NULL : (uint32_t)len;
    uint8_t be[4] = {(uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8), (uint8_t)n};
    cofre_jbuf_append(out, be, sizeof(be));
    if (!null)
        cofre_jbuf_append(out, s, len);
}

static void canon_int(cofre_jbuf_t *out, int64_t v, bool null)
{
    char buf[24];
    int n = snprintf(buf, sizeof(buf), "%lld", (long long)v);
    canon_item(out, buf, (size_t)n, null);
}

void cofre_audit_record_canonical(const cofre_audit_record_t *rec, cofre_jbuf_t *out)
{
    canon_item(out, COFRE_AUDIT_CANON_TAG, strlen(COFRE_AUDIT_CANON_TAG), false);
    canon_int(out, rec->seq, false);
    for (size_t i = 0; i < COFRE_AUDIT_F_COUNT_; i++) {
        const char *s = rec->f[i];
        canon_item(out, s, s != NULL ? strlen(s) : 0, s == NULL);
    }
    canon_int(out, rec->amount, !rec->has_amount);
    canon_int(out, rec->time_us, !rec->has_time_us);
    canon_int(out, rec->partition, false);
    canon_int(out, rec->offset, false);
}

void cofre_audit_record_hash(const uint8_t prev[COFRE_AUDIT_HASH_LEN],
                             const cofre_audit_record_t *rec, uint8_t out[COFRE_AUDIT_HASH_LEN])
{
    cofre_jbuf_t b;
    cofre_jbuf_init(&b);
    cofre_jbuf_append(&b, prev, COFRE_AUDIT_HASH_LEN);
    cofre_audit_record_canonical(rec, &b);
    unsigned int n = 0;
    int ok = EVP_Digest(b.data, b.len, out, &n, EVP_sha256(), NULL);
    COFRE_ASSERT(ok == 1 && n == COFRE_AUDIT_HASH_LEN);
    cofre_jbuf_release(&b);
}

/* ---- JSON -------------------------------------------------------------------------------- */

static void json_field(cofre_jbuf_t *out, const cofre_audit_record_t *rec, cofre_audit_field_t f)
{
    cofre_jbuf_kstr(out, cofre_audit_field_names[f], rec->f[f]);
}

void cofre_audit_record_json(const cofre_audit_record_t *rec, cofre_jbuf_t *out)
{
    static const cofre_audit_field_t head[] = {
        COFRE_AUDIT_F_EVENT_ID, COFRE_AUDIT_F_TYPE, COFRE_AUDIT_F_SOURCE,
        COFRE_AUDIT_F_SUBJECT,  COFRE_AUDIT_F_TIME, COFRE_AUDIT_F_RECORDED_AT,
    };
    static const cofre_audit_field_t tail[] = {
        COFRE_AUDIT_F_REQUEST_ID,     COFRE_AUDIT_F_TRACE_ID, COFRE_AUDIT_F_OUTCOME,
        COFRE_AUDIT_F_REASON,         COFRE_AUDIT_F_CURRENCY, COFRE_AUDIT_F_DEBIT_ACCOUNT,
        COFRE_AUDIT_F_CREDIT_ACCOUNT,
    };
    cofre_jbuf_obj_begin(out);
    cofre_jbuf_kint(out, "seq", rec->seq);
    for (size_t i = 0; i < COFRE_ARRAY_SIZE(head); i++)
        json_field(out, rec, head[i]);
    cofre_jbuf_key(out, "actor");
    cofre_jbuf_obj_begin(out);
    json_field(out, rec, COFRE_AUDIT_F_CLIENT_ID);
    json_field(out, rec, COFRE_AUDIT_F_OWNER);
    json_field(out, rec, COFRE_AUDIT_F_ADDRESS);
    cofre_jbuf_obj_end(out);
    for (size_t i = 0; i < COFRE_ARRAY_SIZE(tail); i++)
        json_field(out, rec, tail[i]);
    cofre_jbuf_key(out, "amount");
    if (rec->has_amount)
        cofre_jbuf_int(out, rec->amount);
    else
        cofre_jbuf_null(out);
    cofre_jbuf_key(out, "kafka");
    cofre_jbuf_obj_begin(out);
    json_field(out, rec, COFRE_AUDIT_F_TOPIC);
    cofre_jbuf_kint(out, "partition", rec->partition);
    cofre_jbuf_kint(out, "offset", rec->offset);
    cofre_jbuf_obj_end(out);
    cofre_jbuf_key(out, "event");
    const char *ev = rec->f[COFRE_AUDIT_F_EVENT];
    if (ev != NULL)
        cofre_jbuf_raw(out, ev, strlen(ev));
    else
        cofre_jbuf_null(out);
    char hex[2 * COFRE_AUDIT_HASH_LEN + 1];
    cofre_hex_encode(rec->hash, COFRE_AUDIT_HASH_LEN, hex);
    cofre_jbuf_kstr(out, "hash", hex);
    cofre_jbuf_obj_end(out);
}
