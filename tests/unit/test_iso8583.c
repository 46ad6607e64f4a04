/*
 * test_iso8583.c: the ISO 8583:1987 codec. Known-answer tests read the hex examples straight
 * from docs/legacy-iso8583.md (so the document and the code cannot drift apart); round trips
 * for every message type; and malformed, truncated, oversized and hostile inputs, each decoded
 * from a buffer of exactly its size so that AddressSanitizer sees any over-read.
 */
#include "unit.h"

#include "cofre/common.h"
#include "legacy/iso8583.h"
#include "legacy/link.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef COFRE_DOCS_DIR
#error "COFRE_DOCS_DIR must name the docs/ directory"
#endif

/* 2026-11-29T19:43:51Z, the posting time of the document's examples. */
#define POSTED_US 1795981431000000ull
#define SENT_US   (POSTED_US + 1000000ull)

static const char transfer_id[] = "0192f3a4-5b6c-7d8e-9fa0-b1c2d3e4f5a6";
static const char debit_id[] = "0192f3a0-1111-7222-8333-444455556666";
static const char credit_id[] = "0192f3a0-7777-7888-8999-aaaabbbbcccc";

/* ---- helpers ---- */

static char *read_doc(void)
{
    FILE *f = fopen(COFRE_DOCS_DIR "/legacy-iso8583.md", "rb");
    assert_non_null(f);
    static char text[64 * 1024];
    size_t n = fread(text, 1, sizeof(text) - 1, f);
    fclose(f);
    text[n] = '\0';
    return text;
}

/* The frame of the example marked <!-- kat:name --> in the document; *len its size. */
static uint8_t *doc_frame(const char *name, size_t *len)
{
    char marker[64];
    snprintf(marker, sizeof(marker), "<!-- kat:%s -->", name);
    const char *p = strstr(read_doc(), marker);
    assert_non_null(p);
    p = strstr(p, "```text\n");
    assert_non_null(p);
    p += 8;
    const char *end = strstr(p, "```");
    assert_non_null(end);
    static uint8_t out[COFRE_ISO_FRAME_MAX];
    size_t n = 0;
    while (p < end) {
        unsigned byte;
        int used;
        if (sscanf(p, " %2x%n", &byte, &used) != 1)
            break;
        out[n++] = (uint8_t)byte;
        p += used;
    }
    *len = n;
    return out;
}

/* Decodes len bytes from a heap copy of exactly that size. */
static int decode_exact(cofre_iso_msg_t *m, const uint8_t *body, size_t len, cofre_iso_error_t *err)
{
    uint8_t *copy = malloc(len == 0 ? 1 : len);
    if (len > 0)
        memcpy(copy, body, len);
    int rc = cofre_iso_decode(m, copy, len, err);
    free(copy);
    return rc;
}

static void build_0200(cofre_iso_msg_t *m)
{
    cofre_link_transfer_t t = {.transfer_id = transfer_id,
                               .debit_account_id = debit_id,
                               .credit_account_id = credit_id,
                               .amount_minor = 12345,
                               .currency = "BRL",
                               .posted_at_us = POSTED_US};
    assert_int_equal(cofre_link_build_transfer(m, &t, 42, "COFRE001", SENT_US), 0);
}

/* Builds the document's example named name with the link's builders. */
static void build_example(const char *name, cofre_iso_msg_t *m)
{
    cofre_iso_msg_t req;
    if (strcmp(name, "0200") == 0) {
        build_0200(m);
    } else if (strcmp(name, "0210") == 0) {
        build_0200(&req);
        assert_int_equal(cofre_link_build_response(m, &req, "00", "000001"), 0);
    } else if (strncmp(name, "0400", 4) == 0 || strncmp(name, "0410", 4) == 0) {
        cofre_iso_msg_t orig;
        build_0200(&orig);
        cofre_iso_msg_t *rev = name[2] == '0' ? m : &req;
        assert_int_equal(cofre_link_build_reversal(rev, &orig, 43, SENT_US + 30000000ull), 0);
        if (rev == &req)
            assert_int_equal(cofre_link_build_response(m, &req, "00", NULL), 0);
    } else {
        bool echo = strstr(name, "echo") != NULL;
        cofre_iso_msg_t *net = name[2] == '0' ? m : &req;
        assert_int_equal(cofre_link_build_network(net, echo ? "301" : "001", echo ? 2 : 1,
                                                  POSTED_US - (echo ? 21 : 51) * 1000000ull),
                         0);
        if (net == &req)
            assert_int_equal(cofre_link_build_response(m, &req, "00", NULL), 0);
    }
}

static const char *const examples[] = {"0200",        "0210",        "0400",      "0410",
                                       "0800-signon", "0810-signon", "0800-echo", "0810-echo"};

/* ---- known answers ---- */

static void doc_examples_encode_byte_for_byte(void **state)
{
    (void)state;
    for (size_t i = 0; i < COFRE_ARRAY_SIZE(examples); i++) {
        size_t want_len;
        const uint8_t *want = doc_frame(examples[i], &want_len);
        cofre_iso_msg_t m;
        build_example(examples[i], &m);
        uint8_t got[COFRE_ISO_FRAME_MAX];
        size_t got_len;
        assert_int_equal(cofre_iso_encode_frame(&m, got, sizeof(got), &got_len), 0);
        printf("# %s: %zu bytes\n", examples[i], got_len);
        assert_int_equal(got_len, want_len);
        assert_memory_equal(got, want, want_len);
    }
}

static void doc_examples_decode_to_their_fields(void **state)
{
    (void)state;
    for (size_t i = 0; i < COFRE_ARRAY_SIZE(examples); i++) {
        size_t len;
        const uint8_t *frame = doc_frame(examples[i], &len);
        const uint8_t *body;
        size_t body_len, frame_len;
        assert_int_equal(cofre_iso_frame_next(frame, len, &body, &body_len, &frame_len), 1);
        assert_int_equal(frame_len, len);
        cofre_iso_msg_t got, want;
        assert_int_equal(decode_exact(&got, body, body_len, NULL), 0);
        build_example(examples[i], &want);
        assert_true(cofre_iso_equal(&got, &want));
        assert_memory_equal(got.mti, examples[i], 4);
    }
    size_t len;
    const uint8_t *frame = doc_frame("0200", &len);
    cofre_iso_msg_t m;
    assert_int_equal(decode_exact(&m, frame + 2, len - 2, NULL), 0);
    assert_string_equal(cofre_iso_get(&m, 2, NULL), "7798644626488375109");
    assert_string_equal(cofre_iso_get(&m, 4, NULL), "000000012345");
    assert_string_equal(cofre_iso_get(&m, 7, NULL), "1129194352");
    assert_string_equal(cofre_iso_get(&m, 37, NULL), "D1RB0AYR7OR3");
    assert_string_equal(cofre_iso_get(&m, 41, NULL), "COFRE001");
    assert_string_equal(cofre_iso_get(&m, 103, NULL), "8676245170660303205");
    uint64_t amount;
    assert_int_equal(cofre_iso_get_num(&m, 4, &amount), 0);
    assert_int_equal(amount, 12345);
}

/* ---- round trips ---- */

static void round_trip(const cofre_iso_msg_t *m)
{
    uint8_t buf[COFRE_ISO_FRAME_MAX];
    size_t len;
    assert_int_equal(cofre_iso_encode_frame(m, buf, sizeof(buf), &len), 0);
    assert_int_equal(len, cofre_iso_encoded_len(m) + 2);
    assert_int_equal(((size_t)buf[0] << 8 | buf[1]), len - 2);
    cofre_iso_msg_t back;
    cofre_iso_error_t err = {0};
    int rc = decode_exact(&back, buf + 2, len - 2, &err);
    if (rc != 0)
        fail_msg("decode: %s at field %u", err.reason, err.field);
    assert_true(cofre_iso_equal(m, &back));
}

static void every_message_type_round_trips(void **state)
{
    (void)state;
    for (size_t i = 0; i < COFRE_ARRAY_SIZE(examples); i++) {
        cofre_iso_msg_t m;
        build_example(examples[i], &m);
        round_trip(&m);
    }
    /* Declines (no field 38) and a message with every kind of field. */
    cofre_iso_msg_t req, resp;
    build_0200(&req);
    assert_int_equal(cofre_link_build_response(&resp, &req, "61", NULL), 0);
    round_trip(&resp);
    cofre_iso_msg_t m;
    cofre_iso_init(&m, "0100");
    assert_int_equal(cofre_iso_set_str(&m, 28, "D00000100"), 0);                   /* x+n */
    assert_int_equal(cofre_iso_set_str(&m, 34, "12-34/56"), 0);                    /* ns */
    assert_int_equal(cofre_iso_set_str(&m, 35, "4111111111111111=D2512"), 0);      /* z */
    assert_int_equal(cofre_iso_set(&m, 52, "\x00\xff\x10\n\r\x01\x02\x03", 8), 0); /* b */
    assert_int_equal(cofre_iso_set_str(&m, 48, "free text ~ with spaces"), 0);     /* LLL ans */
    assert_int_equal(cofre_iso_set(&m, 128, "\x01\x02\x03\x04\x05\x06\x07\x08", 8), 0);
    round_trip(&m);
}

static void only_primary_bitmap_without_high_fields(void **state)
{
    (void)state;
    cofre_iso_msg_t m;
    cofre_iso_init(&m, "0200");
    assert_int_equal(cofre_iso_set_str(&m, 11, "000001"), 0);
    uint8_t buf[64];
    size_t len;
    assert_int_equal(cofre_iso_encode(&m, buf, sizeof(buf), &len), 0);
    assert_int_equal(len, 4 + 8 + 6);
    assert_int_equal(buf[4] & 0x80, 0); /* no secondary bitmap */
    assert_int_equal(cofre_iso_set_str(&m, 70, "301"), 0);
    assert_int_equal(cofre_iso_encode(&m, buf, sizeof(buf), &len), 0);
    assert_int_equal(len, 4 + 16 + 6 + 3);
    assert_int_equal(buf[4] & 0x80, 0x80);
    cofre_iso_unset(&m, 70);
    assert_int_equal(cofre_iso_encoded_len(&m), 4 + 8 + 6);
    /* A small output buffer is refused, not overrun. */
    assert_int_equal(cofre_iso_encode(&m, buf, 17, &len), COFRE_ETOOLARGE);
    assert_int_equal(cofre_iso_encode_frame(&m, buf, 1, &len), COFRE_ETOOLARGE);
}

/* ---- setting values ---- */

static void set_checks_length_and_class(void **state)
{
    (void)state;
    cofre_iso_msg_t m;
    cofre_iso_init(&m, "0200");
    assert_int_equal(cofre_iso_set_str(&m, 3, "40000"), COFRE_EINVAL);   /* short fixed */
    assert_int_equal(cofre_iso_set_str(&m, 3, "4000000"), COFRE_EINVAL); /* long fixed */
    assert_int_equal(cofre_iso_set_str(&m, 3, "40000A"), COFRE_EINVAL);  /* letter in n */
    assert_int_equal(cofre_iso_set_str(&m, 2, ""), COFRE_EINVAL);        /* empty LLVAR */
    assert_int_equal(cofre_iso_set_str(&m, 2, "12345678901234567890"), COFRE_EINVAL); /* 20 */
    assert_int_equal(cofre_iso_set_str(&m, 2, "1234567890123456789"), 0);             /* 19 */
    assert_int_equal(cofre_iso_set_str(&m, 37, "ABC-12345678"), COFRE_EINVAL); /* '-' in an */
    assert_int_equal(cofre_iso_set(&m, 41, "TERM\x01XYZ", 8), COFRE_EINVAL);   /* control */
    assert_int_equal(cofre_iso_set_str(&m, 28, "X00000100"), COFRE_EINVAL);    /* x+n sign */
    assert_int_equal(cofre_iso_set_str(&m, 35, "4111=d"), COFRE_EINVAL);       /* z */
    assert_int_equal(cofre_iso_set_str(&m, 34, "12A"), COFRE_EINVAL);          /* ns */
    assert_int_equal(cofre_iso_set_str(&m, 1, "x"), COFRE_EINVAL);
    assert_int_equal(cofre_iso_set_str(&m, 65, "1"), COFRE_EINVAL);
    assert_int_equal(cofre_iso_set_str(&m, 0, "1"), COFRE_EINVAL);
    assert_int_equal(cofre_iso_set_str(&m, 129, "1"), COFRE_EINVAL);
    assert_int_equal(cofre_iso_set_mti(&m, "02x0"), COFRE_EINVAL);
    assert_int_equal(cofre_iso_set_mti(&m, "02000"), COFRE_EINVAL);
    assert_string_equal(m.mti, "0200");
    assert_false(cofre_iso_has(&m, 3));
    assert_true(cofre_iso_has(&m, 2));
    assert_false(cofre_iso_has(&m, 1));
}

static void set_num_pads_and_checks_range(void **state)
{
    (void)state;
    cofre_iso_msg_t m;
    cofre_iso_init(&m, "0200");
    assert_int_equal(cofre_iso_set_num(&m, 4, 12345), 0);
    assert_string_equal(cofre_iso_get(&m, 4, NULL), "000000012345");
    assert_int_equal(cofre_iso_set_num(&m, 4, 999999999999ull), 0);
    assert_int_equal(cofre_iso_set_num(&m, 4, 1000000000000ull), COFRE_ERANGE);
    assert_string_equal(cofre_iso_get(&m, 4, NULL), "999999999999");
    assert_int_equal(cofre_iso_set_num(&m, 2, 1), COFRE_EINVAL);  /* variable */
    assert_int_equal(cofre_iso_set_num(&m, 37, 1), COFRE_EINVAL); /* an */
    uint64_t v;
    assert_int_equal(cofre_iso_get_num(&m, 11, &v), COFRE_ENOENT);
    assert_int_equal(cofre_iso_set_str(&m, 37, "ABC123ABC123"), 0);
    assert_int_equal(cofre_iso_get_num(&m, 37, &v), COFRE_EINVAL);
    char track3[105];
    memset(track3, '9', 104);
    track3[104] = '\0';
    assert_int_equal(cofre_iso_set_str(&m, 36, track3), 0);
    assert_int_equal(cofre_iso_get_num(&m, 36, &v), COFRE_ERANGE);
    assert_int_equal(cofre_iso_set_str(&m, 2, "18446744073709551615"), COFRE_EINVAL); /* 20 */
    assert_int_equal(cofre_iso_set_str(&m, 2, "9999999999999999999"), 0);
    assert_int_equal(cofre_iso_get_num(&m, 2, &v), 0);
    assert_true(v == 9999999999999999999ull);
}

static void replacing_values_reuses_space(void **state)
{
    (void)state;
    cofre_iso_msg_t m;
    cofre_iso_init(&m, "0200");
    char big[1000];
    memset(big, 'x', sizeof(big));
    /* Replace a 999-byte value many times: without reuse the store would run out. */
    for (int i = 0; i < 100; i++) {
        size_t n = 999 - (size_t)(i % 3) * 400;
        assert_int_equal(cofre_iso_set(&m, 48, big, n), 0);
        assert_int_equal(cofre_iso_set_str(&m, 11, i % 2 ? "000001" : "000002"), 0);
        size_t got;
        assert_non_null(cofre_iso_get(&m, 48, &got));
        assert_int_equal(got, n);
    }
    assert_string_equal(cofre_iso_get(&m, 11, NULL), "000001");
    round_trip(&m);
}

static void message_size_limit_is_enforced(void **state)
{
    (void)state;
    cofre_iso_msg_t m;
    cofre_iso_init(&m, "0200");
    char big[1000];
    memset(big, 'y', sizeof(big));
    static const unsigned lll[] = {46, 47, 48, 55, 56, 57, 58, 59, 60};
    int rc = 0;
    size_t i;
    for (i = 0; i < COFRE_ARRAY_SIZE(lll) && rc == 0; i++)
        rc = cofre_iso_set(&m, lll[i], big, 999);
    assert_int_equal(rc, COFRE_ETOOLARGE); /* 9 x 1002 > 8192 - 12 */
    assert_false(cofre_iso_has(&m, lll[i - 1]));
    assert_true(cofre_iso_encoded_len(&m) <= COFRE_ISO_MSG_MAX);
    /* A field above 64 also pays for the secondary bitmap it brings. */
    size_t room = COFRE_ISO_MSG_MAX - cofre_iso_encoded_len(&m);
    cofre_iso_msg_t copy = m;
    assert_true(room >= 8 + 3 + 1);
    if (room - 8 - 3 <= 999) {
        assert_int_equal(cofre_iso_set(&copy, 105, big, room - 3 - 8 + 1), COFRE_ETOOLARGE);
        assert_int_equal(cofre_iso_set(&copy, 105, big, room - 3 - 8), 0);
        assert_int_equal(cofre_iso_encoded_len(&copy), COFRE_ISO_MSG_MAX);
        round_trip(&copy);
    }
}

/* ---- hostile input ---- */

static void expect_invalid(const uint8_t *body, size_t len, unsigned field, const char *why)
{
    cofre_iso_msg_t m;
    cofre_iso_error_t err = {0};
    int rc = decode_exact(&m, body, len, &err);
    if (rc != COFRE_EINVAL)
        fail_msg("%s: decode returned %d, want COFRE_EINVAL", why, rc);
    if (err.field != field)
        fail_msg("%s: error names field %u (%s), want %u", why, err.field, err.reason, field);
    assert_non_null(err.reason);
    assert_false(cofre_iso_has(&m, 11));
}

/* The 0200 example's body, for mutation. */
static size_t body_0200(uint8_t *out)
{
    size_t len;
    const uint8_t *frame = doc_frame("0200", &len);
    memcpy(out, frame + 2, len - 2);
    return len - 2;
}

static void every_truncation_is_refused(void **state)
{
    (void)state;
    uint8_t body[COFRE_ISO_MSG_MAX];
    size_t len = body_0200(body);
    for (size_t n = 0; n < len; n++) {
        cofre_iso_msg_t m;
        int rc = decode_exact(&m, body, n, NULL);
        if (rc != COFRE_EINVAL)
            fail_msg("a body cut to %zu of %zu bytes decoded (%d)", n, len, rc);
    }
    /* One byte too many: left over after the last field. */
    body[len] = '5';
    expect_invalid(body, len + 1, 0, "trailing byte");
}

static void bad_headers_are_refused(void **state)
{
    (void)state;
    uint8_t body[COFRE_ISO_MSG_MAX];
    size_t len = body_0200(body);
    body[1] = 'X';
    expect_invalid(body, len, 0, "letter in MTI");
    body_0200(body);
    body[0] = '1';
    expect_invalid(body, len, 0, "MTI of the 1993 version");
    body_0200(body);
    expect_invalid(body, 10, 0, "truncated primary bitmap");
    uint8_t secondary_cut[14] = {'0', '2', '0', '0', 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    expect_invalid(secondary_cut, sizeof(secondary_cut), 1, "truncated secondary bitmap");
    uint8_t tertiary[20] = {'0', '8', '0',  '0', 0x80, 0, 0, 0, 0, 0,
                            0,   0,   0x80, 0,   0,    0, 0, 0, 0, 0};
    expect_invalid(tertiary, sizeof(tertiary), 65, "field 65");
}

static void bad_fields_are_refused(void **state)
{
    (void)state;
    uint8_t body[COFRE_ISO_MSG_MAX];
    size_t len = body_0200(body);
    const size_t f2 = 20; /* after MTI and both bitmaps: field 2's "19" */
    body[f2] = 'A';
    expect_invalid(body, len, 2, "letter in an LL prefix");
    body_0200(body);
    body[f2] = '2'; /* 29 > 19 */
    expect_invalid(body, len, 2, "LL length above the maximum");
    body_0200(body);
    body[f2] = '0';
    body[f2 + 1] = '0';
    expect_invalid(body, len, 2, "LL length zero");
    body_0200(body);
    body[f2 + 2] = 'A';
    expect_invalid(body, len, 2, "letter in field 2 (n)");
    body_0200(body);
    body[f2 + 21] = ' '; /* first digit of field 3 */
    expect_invalid(body, len, 3, "space in field 3 (n)");
    body_0200(body);
    uint8_t *rrn = memmem(body, len, "D1RB0AYR7OR3", 12);
    assert_non_null(rrn);
    rrn[5] = '#';
    expect_invalid(body, len, 37, "'#' in field 37 (an)");
    body_0200(body);
    uint8_t *term = memmem(body, len, "COFRE001", 8);
    term[2] = 0x7f;
    expect_invalid(body, len, 41, "DEL in field 41 (ans)");
    body_0200(body);
    term = memmem(body, len, "COFRE001", 8);
    term[2] = 0xc3;
    expect_invalid(body, len, 41, "non-ASCII in field 41 (ans)");
}

static void frame_lengths_are_checked(void **state)
{
    (void)state;
    const uint8_t *body;
    size_t body_len, frame_len;
    uint8_t buf[COFRE_ISO_FRAME_MAX + 2] = {0};
    assert_int_equal(cofre_iso_frame_next(buf, 0, &body, &body_len, &frame_len), 0);
    assert_int_equal(cofre_iso_frame_next(buf, 1, &body, &body_len, &frame_len), 0);
    buf[0] = 0;
    buf[1] = 11; /* below the 12-byte minimum */
    assert_int_equal(cofre_iso_frame_next(buf, 2, &body, &body_len, &frame_len), COFRE_EINVAL);
    buf[0] = 0x20;
    buf[1] = 0x01; /* 8193 */
    assert_int_equal(cofre_iso_frame_next(buf, 2, &body, &body_len, &frame_len), COFRE_ETOOLARGE);
    buf[0] = 0xff;
    buf[1] = 0xff;
    assert_int_equal(cofre_iso_frame_next(buf, sizeof(buf), &body, &body_len, &frame_len),
                     COFRE_ETOOLARGE);
    buf[0] = 0x20;
    buf[1] = 0x00; /* exactly 8192: waits for all of it */
    assert_int_equal(
        cofre_iso_frame_next(buf, COFRE_ISO_FRAME_MAX - 1, &body, &body_len, &frame_len), 0);
    assert_int_equal(cofre_iso_frame_next(buf, COFRE_ISO_FRAME_MAX, &body, &body_len, &frame_len),
                     1);
    assert_int_equal(body_len, COFRE_ISO_MSG_MAX);
    assert_ptr_equal(body, buf + 2);
    cofre_iso_msg_t m;
    assert_int_equal(decode_exact(&m, buf + 2, COFRE_ISO_MSG_MAX + 1, NULL), COFRE_ETOOLARGE);
}

static void every_byte_mutation_decodes_or_fails_cleanly(void **state)
{
    (void)state;
    uint8_t orig[COFRE_ISO_MSG_MAX], body[COFRE_ISO_MSG_MAX], again[COFRE_ISO_MSG_MAX];
    size_t len = body_0200(orig);
    static const uint8_t values[] = {0x00, 0x7f, 0x80, 0xff, '0', '9', 'A', ' '};
    unsigned decoded = 0;
    for (size_t pos = 0; pos < len; pos++) {
        for (size_t v = 0; v < sizeof(values); v++) {
            memcpy(body, orig, len);
            body[pos] = values[v];
            cofre_iso_msg_t m;
            if (decode_exact(&m, body, len, NULL) != 0)
                continue;
            decoded++;
            size_t n;
            assert_int_equal(cofre_iso_encode(&m, again, sizeof(again), &n), 0);
            assert_int_equal(n, len);
            assert_memory_equal(again, body, len);
        }
    }
    assert_true(decoded > 0); /* digit-for-digit changes stay valid */
}

static void random_bytes_never_crash(void **state)
{
    (void)state;
    uint64_t x = 0x243f6a8885a308d3ull;
    uint8_t body[512];
    for (int i = 0; i < 20000; i++) {
        size_t len = (size_t)(x % sizeof(body));
        for (size_t k = 0; k < len; k++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            body[k] = (uint8_t)x;
        }
        if (len >= 4 && i % 2 == 0)
            memcpy(body, "0200", 4); /* get past the MTI half of the time */
        cofre_iso_msg_t m;
        int rc = decode_exact(&m, body, len, NULL);
        assert_true(rc == 0 || rc == COFRE_EINVAL);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(doc_examples_encode_byte_for_byte),
        cmocka_unit_test(doc_examples_decode_to_their_fields),
        cmocka_unit_test(every_message_type_round_trips),
        cmocka_unit_test(only_primary_bitmap_without_high_fields),
        cmocka_unit_test(set_checks_length_and_class),
        cmocka_unit_test(set_num_pads_and_checks_range),
        cmocka_unit_test(replacing_values_reuses_space),
        cmocka_unit_test(message_size_limit_is_enforced),
        cmocka_unit_test(every_truncation_is_refused),
        cmocka_unit_test(bad_headers_are_refused),
        cmocka_unit_test(bad_fields_are_refused),
        cmocka_unit_test(frame_lengths_are_checked),
        cmocka_unit_test(every_byte_mutation_decodes_or_fails_cleanly),
        cmocka_unit_test(random_bytes_never_crash),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
