/*
 * wire.c: request decoding and response encoding for the core API.
 */
#include "core/wire.h"

#include "cofre/common.h"
#include "cofre/json.h"
#include "cofre/uuid.h"
#include "core/currency.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static const cofre_json_field_t account_fields[] = {
    {"id", COFRE_JSON_STRING, false},       {"owner", COFRE_JSON_STRING, true},
    {"currency", COFRE_JSON_STRING, true},  {"flags", COFRE_JSON_OBJECT, false},
    {"metadata", COFRE_JSON_OBJECT, false},
};

static const cofre_json_field_t flag_fields[] = {
    {"no_overdraft", COFRE_JSON_BOOL, false},
};

static const cofre_json_field_t transfer_fields[] = {
    {"id", COFRE_JSON_STRING, false},
    {"debit_account_id", COFRE_JSON_STRING, true},
    {"credit_account_id", COFRE_JSON_STRING, true},
    {"amount", COFRE_JSON_AMOUNT, true},
    {"currency", COFRE_JSON_STRING, true},
    {"reference", COFRE_JSON_STRING, false},
};

static const cofre_json_field_t batch_fields[] = {
    {"transfers", COFRE_JSON_ARRAY, true},
    {"atomic", COFRE_JSON_BOOL, false},
};

bool cofre_wire_owner_valid(const char *owner, size_t len)
{
    if (len < 1 || len > COFRE_LEDGER_OWNER_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = owner[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == ':' || c == '@' || c == '-';
        if (!ok)
            return false;
    }
    return true;
}

bool cofre_wire_idempotency_key_valid(const char *key, size_t len)
{
    if (len < 1 || len > COFRE_WIRE_IDEMPOTENCY_KEY_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if (key[i] < 0x21 || key[i] > 0x7e)
            return false;
    return true;
}

/* An id member: absent means generate one; present must be a UUID. */
static bool decode_id(const json_t *obj, const char *name, const char *prefix, bool generate,
                      char out[COFRE_UUID_LEN + 1], cofre_problem_t *err)
{
    const json_t *v = json_object_get(obj, name);
    if (v == NULL && generate) {
        cofre_uuid_v7(out);
        return true;
    }
    if (v != NULL && cofre_uuid_parse(json_string_value(v), json_string_length(v), out))
        return true;
    cofre_problem_set(err, COFRE_P_INVALID_REQUEST, "\"%s%s\" must be a UUID", prefix, name);
    return false;
}

static bool decode_currency(const json_t *obj, const char *prefix, char out[4],
                            cofre_problem_t *err)
{
    const json_t *v = json_object_get(obj, "currency");
    if (!cofre_currency_valid(json_string_value(v), json_string_length(v))) {
        cofre_problem_set(err, COFRE_P_INVALID_CURRENCY,
                          "\"%scurrency\" must be an ISO 4217 code such as \"EUR\"", prefix);
        return false;
    }
    memcpy(out, json_string_value(v), 4);
    return true;
}

/* Counts code points of valid UTF-8 (jansson has validated it). */
static size_t utf8_chars(const char *s, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++)
        if (((unsigned char)s[i] & 0xc0) != 0x80)
            n++;
    return n;
}

static bool decode_reference(const json_t *obj, const char *prefix, cofre_transfer_t *t,
                             cofre_problem_t *err)
{
    const json_t *v = json_object_get(obj, "reference");
    t->has_reference = v != NULL;
    if (v == NULL)
        return true;
    const char *s = json_string_value(v);
    size_t len = json_string_length(v);
    bool ok = utf8_chars(s, len) <= COFRE_LEDGER_REFERENCE_CHARS_MAX &&
              len <= COFRE_LEDGER_REFERENCE_BYTES_MAX;
    for (size_t i = 0; ok && i < len; i++)
        ok = (unsigned char)s[i] >= 0x20 && s[i] != 0x7f;
    if (!ok) {
        cofre_problem_set(err, COFRE_P_INVALID_REQUEST,
                          "\"%sreference\" must be at most %d printable characters", prefix,
                          COFRE_LEDGER_REFERENCE_CHARS_MAX);
        return false;
    }
    memcpy(t->reference, s, len);
    t->reference[len] = '\0';
    return true;
}

static bool decode_transfer_object(const json_t *obj, const char *prefix, cofre_transfer_t *t,
                                   cofre_problem_t *err)
{
    memset(t, 0, sizeof(*t));
    if (!cofre_json_check(obj, transfer_fields, COFRE_ARRAY_SIZE(transfer_fields), prefix, err))
        return false;
    t->amount = cofre_json_int(obj, "amount");
    t->id_generated = json_object_get(obj, "id") == NULL;
    if (!decode_id(obj, "id", prefix, true, t->id, err) ||
        !decode_id(obj, "debit_account_id", prefix, false, t->debit_account_id, err) ||
        !decode_id(obj, "credit_account_id", prefix, false, t->credit_account_id, err) ||
        !decode_currency(obj, prefix, t->currency, err) || !decode_reference(obj, prefix, t, err))
        return false;
    if (strcmp(t->debit_account_id, t->credit_account_id) == 0) {
        cofre_problem_set(err, COFRE_P_SAME_ACCOUNT,
                          "\"%sdebit_account_id\" and \"%scredit_account_id\" are the same", prefix,
                          prefix);
        return false;
    }
    return true;
}

bool cofre_wire_decode_transfer(const char *body, size_t len, cofre_transfer_t *t,
                                cofre_problem_t *err)
{
    json_t *obj = cofre_json_parse_object(body, len, err);
    if (obj == NULL)
        return false;
    bool ok = decode_transfer_object(obj, "", t, err);
    json_decref(obj);
    return ok;
}

static bool decode_transfer_list(const json_t *list, cofre_transfer_t *out, cofre_problem_t *err)
{
    size_t i;
    const json_t *item;
    json_array_foreach(list, i, item)
    {
        char prefix[32];
        snprintf(prefix, sizeof(prefix), "transfers[%zu].", i);
        if (!json_is_object(item)) {
            cofre_problem_set(err, COFRE_P_INVALID_REQUEST, "\"transfers[%zu]\" must be an object",
                              i);
            return false;
        }
        if (!decode_transfer_object(item, prefix, &out[i], err))
            return false;
    }
    return true;
}

bool cofre_wire_decode_batch(const char *body, size_t len, cofre_transfer_t **out, size_t *n,
                             bool *atomic, cofre_problem_t *err)
{
    json_t *obj = cofre_json_parse_object(body, len, err);
    if (obj == NULL)
        return false;
    bool ok = cofre_json_check(obj, batch_fields, COFRE_ARRAY_SIZE(batch_fields), NULL, err);
    const json_t *list = json_object_get(obj, "transfers");
    size_t count = ok ? json_array_size(list) : 0;
    if (ok && (count < 1 || count > COFRE_WIRE_BATCH_MAX)) {
        cofre_problem_set(err, COFRE_P_INVALID_REQUEST, "\"transfers\" must hold 1 to %d transfers",
                          COFRE_WIRE_BATCH_MAX);
        ok = false;
    }
    cofre_transfer_t *transfers = ok ? cofre_malloc(count * sizeof(*transfers)) : NULL;
    if (ok)
        ok = decode_transfer_list(list, transfers, err);
    if (ok) {
        *out = transfers;
        *n = count;
        *atomic = cofre_json_bool(obj, "atomic", false);
    } else {
        free(transfers);
    }
    json_decref(obj);
    return ok;
}

static bool decode_flags(const json_t *obj, cofre_account_t *a, cofre_problem_t *err)
{
    const json_t *flags = json_object_get(obj, "flags");
    a->no_overdraft = true;
    if (flags == NULL)
        return true;
    if (!cofre_json_check(flags, flag_fields, COFRE_ARRAY_SIZE(flag_fields), "flags.", err))
        return false;
    a->no_overdraft = cofre_json_bool(flags, "no_overdraft", true);
    return true;
}

static bool decode_metadata(const json_t *obj, cofre_account_t *a, cofre_problem_t *err)
{
    const json_t *meta = json_object_get(obj, "metadata");
    if (meta == NULL)
        return true;
    char *text = json_dumps(meta, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (text == NULL || strlen(text) > COFRE_LEDGER_METADATA_BYTES_MAX) {
        free(text);
        cofre_problem_set(err, COFRE_P_INVALID_REQUEST, "\"metadata\" must be at most %d bytes",
                          COFRE_LEDGER_METADATA_BYTES_MAX);
        return false;
    }
    a->metadata = text;
    return true;
}

static bool decode_owner(const json_t *obj, cofre_account_t *a, cofre_problem_t *err)
{
    const json_t *v = json_object_get(obj, "owner");
    if (!cofre_wire_owner_valid(json_string_value(v), json_string_length(v))) {
        cofre_problem_set(err, COFRE_P_INVALID_REQUEST,
                          "\"owner\" must be 1 to %d characters of A-Z a-z 0-9 . _ : @ -",
                          COFRE_LEDGER_OWNER_MAX);
        return false;
    }
    memcpy(a->owner, json_string_value(v), json_string_length(v) + 1);
    return true;
}

bool cofre_wire_decode_account(const char *body, size_t len, cofre_account_t *a,
                               cofre_problem_t *err)
{
    memset(a, 0, sizeof(*a));
    json_t *obj = cofre_json_parse_object(body, len, err);
    if (obj == NULL)
        return false;
    bool ok = cofre_json_check(obj, account_fields, COFRE_ARRAY_SIZE(account_fields), NULL, err) &&
              decode_id(obj, "id", "", true, a->id, err) && decode_owner(obj, a, err) &&
              decode_currency(obj, "", a->currency, err) && decode_flags(obj, a, err) &&
              decode_metadata(obj, a, err);
    json_decref(obj);
    if (!ok)
        cofre_account_release(a);
    return ok;
}

void cofre_wire_account(cofre_jbuf_t *b, const cofre_account_t *a)
{
    cofre_jbuf_obj_begin(b);
    cofre_jbuf_kstr(b, "id", a->id);
    cofre_jbuf_kstr(b, "owner", a->owner);
    cofre_jbuf_kstr(b, "currency", a->currency);
    cofre_jbuf_kint(b, "balance", a->credits_posted - a->debits_posted);
    cofre_jbuf_kint(b, "debits_posted", a->debits_posted);
    cofre_jbuf_kint(b, "credits_posted", a->credits_posted);
    cofre_jbuf_kint(b, "debits_pending", a->debits_pending);
    cofre_jbuf_kint(b, "credits_pending", a->credits_pending);
    cofre_jbuf_key(b, "flags");
    cofre_jbuf_obj_begin(b);
    cofre_jbuf_kbool(b, "no_overdraft", a->no_overdraft);
    cofre_jbuf_obj_end(b);
    cofre_jbuf_key(b, "metadata");
    if (a->metadata != NULL)
        cofre_jbuf_raw(b, a->metadata, strlen(a->metadata));
    else
        cofre_jbuf_null(b);
    cofre_jbuf_kstr(b, "created_at", a->created_at);
    cofre_jbuf_obj_end(b);
}

void cofre_wire_transfer(cofre_jbuf_t *b, const cofre_transfer_t *t)
{
    cofre_jbuf_obj_begin(b);
    cofre_jbuf_kstr(b, "id", t->id);
    cofre_jbuf_kstr(b, "debit_account_id", t->debit_account_id);
    cofre_jbuf_kstr(b, "credit_account_id", t->credit_account_id);
    cofre_jbuf_kint(b, "amount", t->amount);
    cofre_jbuf_kstr(b, "currency", t->currency);
    cofre_jbuf_kstr(b, "reference", t->has_reference ? t->reference : NULL);
    cofre_jbuf_kstr(b, "created_at", t->created_at);
    cofre_jbuf_obj_end(b);
}

bool cofre_wire_parse_limit(const char *s, size_t *limit)
{
    size_t n = 0, len = strlen(s);
    if (len < 1 || len > 4)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        n = n * 10 + (size_t)(s[i] - '0');
    }
    if (n < 1 || n > COFRE_WIRE_LIMIT_MAX)
        return false;
    *limit = n;
    return true;
}

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

void cofre_wire_cursor_encode(char kind, int64_t seq, char out[COFRE_WIRE_CURSOR_LEN + 1])
{
    uint8_t raw[9];
    raw[0] = (uint8_t)kind;
    for (int i = 0; i < 8; i++)
        raw[1 + i] = (uint8_t)((uint64_t)seq >> (56 - 8 * i));
    for (int i = 0; i < 3; i++) {
        uint32_t v = (uint32_t)raw[3 * i] << 16 | (uint32_t)raw[3 * i + 1] << 8 | raw[3 * i + 2];
        for (int j = 0; j < 4; j++)
            out[4 * i + j] = b64url[(v >> (18 - 6 * j)) & 0x3f];
    }
    out[COFRE_WIRE_CURSOR_LEN] = '\0';
}

bool cofre_wire_cursor_decode(const char *s, char kind, int64_t *seq)
{
    if (strlen(s) != COFRE_WIRE_CURSOR_LEN)
        return false;
    uint8_t raw[9];
    for (int i = 0; i < 3; i++) {
        uint32_t v = 0;
        for (int j = 0; j < 4; j++) {
            const char *p = strchr(b64url, s[4 * i + j]);
            if (p == NULL || s[4 * i + j] == '\0')
                return false;
            v = v << 6 | (uint32_t)(p - b64url);
        }
        raw[3 * i] = (uint8_t)(v >> 16);
        raw[3 * i + 1] = (uint8_t)(v >> 8);
        raw[3 * i + 2] = (uint8_t)v;
    }
    uint64_t u = 0;
    for (int i = 0; i < 8; i++)
        u = u << 8 | raw[1 + i];
    if (raw[0] != (uint8_t)kind || u == 0 || u > INT64_MAX)
        return false;
    *seq = (int64_t)u;
    return true;
}
