/*
 * fuzz_iso8583.c: libFuzzer target for the ISO 8583 decoder, the part of the legacy link that
 * reads bytes from the network. The input is treated two ways: as a TCP byte stream cut into
 * frames by cofre_iso_frame_next (each body decoded), and as one body. Whatever decodes must
 * re-encode to the same bytes (unless it carried an empty secondary bitmap, which cofre never
 * sends) and decode again to an equal message; the link's request checks and response
 * builder must cope with any decoded message. The seed corpus holds the document's examples.
 */
#include "legacy/iso8583.h"
#include "legacy/link.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static bool has_high_fields(const cofre_iso_msg_t *m)
{
    for (unsigned f = 65; f <= COFRE_ISO_FIELDS; f++) {
        if (cofre_iso_has(m, f))
            return true;
    }
    return false;
}

static void check_body(const uint8_t *body, size_t len)
{
    static cofre_iso_msg_t m, again, resp;
    static uint8_t out[COFRE_ISO_MSG_MAX];
    cofre_iso_error_t err;
    if (cofre_iso_decode(&m, body, len, &err) != 0)
        return;
    size_t n = 0;
    if (cofre_iso_encode(&m, out, sizeof(out), &n) != 0)
        abort();
    bool empty_secondary = (body[4] & 0x80) != 0 && !has_high_fields(&m);
    if (!empty_secondary && (n != len || memcmp(out, body, len) != 0))
        abort();
    if (cofre_iso_decode(&again, out, n, NULL) != 0 || !cofre_iso_equal(&m, &again))
        abort();
    for (unsigned f = 1; f <= COFRE_ISO_FIELDS; f++) {
        size_t flen = 0;
        const char *v = cofre_iso_get(&m, f, &flen);
        if (v != NULL && v[flen] != '\0')
            abort();
    }
    unsigned missing;
    (void)cofre_link_check_request(&m, &missing);
    if (cofre_link_is_request(m.mti) && cofre_link_build_response(&resp, &m, "00", NULL) == 0 &&
        !cofre_link_response_matches(&m, &resp) && cofre_iso_has(&m, 11))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t off = 0;
    for (;;) {
        const uint8_t *body;
        size_t body_len, frame_len;
        int rc = cofre_iso_frame_next(data + off, size - off, &body, &body_len, &frame_len);
        if (rc != 1)
            break;
        check_body(body, body_len);
        off += frame_len;
    }
    check_body(data, size);
    return 0;
}
