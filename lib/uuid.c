/*
 * uuid.c: UUIDv7 generation (RFC 9562: 48-bit Unix milliseconds, version, 74 random bits) and
 * strict parsing.
 */
#include "cofre/uuid.h"

#include "cofre/common.h"
#include "cofre/trace.h"

#include <string.h>

static void format(const uint8_t b[16], char *out)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (size_t i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        out[o++] = hex[b[i] >> 4];
        out[o++] = hex[b[i] & 0xf];
    }
    out[o] = '\0';
}

void cofre_uuid_v7(char out[COFRE_UUID_LEN + 1])
{
    uint8_t b[16];
    uint64_t ms = cofre_now_wall_us() / 1000u;
    for (int i = 0; i < 6; i++)
        b[i] = (uint8_t)(ms >> (40 - 8 * i));
    uint64_t r1 = cofre_trace_rand64(), r2 = cofre_trace_rand64();
    memcpy(b + 6, &r1, 2);
    memcpy(b + 8, &r2, 8);
    b[6] = (uint8_t)(0x70 | (b[6] & 0x0f)); /* version 7 */
    b[8] = (uint8_t)(0x80 | (b[8] & 0x3f)); /* variant 10 */
    format(b, out);
}

bool cofre_uuid_parse(const char *s, size_t len, char out[COFRE_UUID_LEN + 1])
{
    if (s == NULL || len != COFRE_UUID_LEN)
        return false;
    char tmp[COFRE_UUID_LEN + 1];
    for (size_t i = 0; i < COFRE_UUID_LEN; i++) {
        char c = s[i];
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (c != '-')
                return false;
        } else if (c >= 'A' && c <= 'F') {
            c = (char)(c - 'A' + 'a');
        } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
            return false;
        }
        tmp[i] = c;
    }
    tmp[COFRE_UUID_LEN] = '\0';
    memcpy(out, tmp, sizeof(tmp));
    return true;
}
