/*
 * trace.c: traceparent parsing and formatting per W3C Trace Context level 1, and request ids.
 * Ids come from a per-thread xoshiro256** generator seeded from the kernel: unique enough
 * for tracing, cheap enough to run on every request.
 */
#include "cofre/trace.h"

#include "cofre/common.h"

#include <string.h>

static _Thread_local uint64_t rng_state[4];
static _Thread_local bool rng_seeded;

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t cofre_trace_rand64(void)
{
    uint64_t *s = rng_state;
    if (!rng_seeded) {
        do {
            cofre_random_bytes(rng_state, sizeof(rng_state));
        } while ((s[0] | s[1] | s[2] | s[3]) == 0);
        rng_seeded = true;
    }
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

static void random_hex(char *out, size_t bytes)
{
    uint8_t raw[16];
    COFRE_ASSERT(bytes <= sizeof(raw));
    do {
        for (size_t i = 0; i < bytes; i += 8) {
            uint64_t r = cofre_trace_rand64();
            memcpy(raw + i, &r, COFRE_MIN(8, bytes - i));
        }
        cofre_hex_encode(raw, bytes, out);
        /* All-zero ids are invalid in W3C trace context. */
    } while (strspn(out, "0") == 2 * bytes);
}

static bool all_zero(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (s[i] != '0')
            return false;
    return true;
}

bool cofre_trace_parse(const char *s, size_t len, char trace_id[33], char parent_id[17],
                       uint8_t *flags)
{
    /* version 00 is exactly 55 characters; a later version may append "-..." fields. */
    if (s == NULL || len < COFRE_TRACEPARENT_LEN)
        return false;
    if (!cofre_is_lower_hex(s, 2) || memcmp(s, "ff", 2) == 0)
        return false;
    if (memcmp(s, "00", 2) == 0 && len != COFRE_TRACEPARENT_LEN)
        return false;
    if (len > COFRE_TRACEPARENT_LEN && s[COFRE_TRACEPARENT_LEN] != '-')
        return false;
    if (s[2] != '-' || s[35] != '-' || s[52] != '-')
        return false;
    if (!cofre_is_lower_hex(s + 3, 32) || !cofre_is_lower_hex(s + 36, 16) ||
        !cofre_is_lower_hex(s + 53, 2))
        return false;
    if (all_zero(s + 3, 32) || all_zero(s + 36, 16))
        return false;
    memcpy(trace_id, s + 3, 32);
    trace_id[32] = '\0';
    memcpy(parent_id, s + 36, 16);
    parent_id[16] = '\0';
    uint8_t hi = (uint8_t)(s[53] <= '9' ? s[53] - '0' : s[53] - 'a' + 10);
    uint8_t lo = (uint8_t)(s[54] <= '9' ? s[54] - '0' : s[54] - 'a' + 10);
    *flags = (uint8_t)(hi << 4 | lo);
    return true;
}

bool cofre_trace_start(cofre_trace_t *t, const char *traceparent, size_t len)
{
    bool continued = cofre_trace_parse(traceparent, len, t->trace_id, t->parent_id, &t->flags);
    if (!continued) {
        random_hex(t->trace_id, 16);
        t->parent_id[0] = '\0';
        t->flags = 1;
    }
    random_hex(t->span_id, 8);
    return continued;
}

static bool request_id_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.';
}

bool cofre_trace_set_request_id(cofre_trace_t *t, const char *value, size_t len)
{
    bool ok = value != NULL && len >= 1 && len <= COFRE_REQUEST_ID_MAX;
    for (size_t i = 0; ok && i < len; i++)
        ok = request_id_char(value[i]);
    if (ok) {
        memcpy(t->request_id, value, len);
        t->request_id[len] = '\0';
    } else {
        random_hex(t->request_id, 16);
    }
    return ok;
}

void cofre_trace_format(const cofre_trace_t *t, char *out)
{
    static const char hex[] = "0123456789abcdef";
    memcpy(out, "00-", 3);
    memcpy(out + 3, t->trace_id, 32);
    out[35] = '-';
    memcpy(out + 36, t->span_id, 16);
    out[52] = '-';
    out[53] = hex[t->flags >> 4];
    out[54] = hex[t->flags & 0xf];
    out[55] = '\0';
}
