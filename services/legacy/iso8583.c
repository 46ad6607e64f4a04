/*
 * iso8583.c: ISO 8583:1987 encoding and decoding from the field specification table. The
 * decoder is the part that reads the outside world: every read goes through take(), which
 * checks the remaining length first.
 */
#include "legacy/iso8583.h"

#include "cofre/common.h"

#include <string.h>

#define N   COFRE_ISO_N
#define AN  COFRE_ISO_AN
#define ANS COFRE_ISO_ANS
#define NS  COFRE_ISO_NS
#define Z   COFRE_ISO_Z
#define XN  COFRE_ISO_XN
#define B   COFRE_ISO_B
#define FX  COFRE_ISO_FIXED
#define LL  COFRE_ISO_LLVAR
#define LLL COFRE_ISO_LLLVAR
#define F(t, k, m, s)                                                                              \
    {                                                                                              \
        .type = (t), .len_kind = (k), .max = (m), .name = (s)                                      \
    }
#define RESERVED(s) F(ANS, LLL, 999, s)

/* ISO 8583:1987 data elements. Binary lengths are in bytes (b 64 = 8 bytes). */
static const cofre_iso_field_spec_t specs[COFRE_ISO_FIELDS + 1] = {
    [1] = F(COFRE_ISO_UNUSED, FX, 8, "secondary bitmap"),
    [2] = F(N, LL, 19, "primary account number"),
    [3] = F(N, FX, 6, "processing code"),
    [4] = F(N, FX, 12, "amount, transaction"),
    [5] = F(N, FX, 12, "amount, settlement"),
    [6] = F(N, FX, 12, "amount, cardholder billing"),
    [7] = F(N, FX, 10, "transmission date and time"),
    [8] = F(N, FX, 8, "amount, cardholder billing fee"),
    [9] = F(N, FX, 8, "conversion rate, settlement"),
    [10] = F(N, FX, 8, "conversion rate, cardholder billing"),
    [11] = F(N, FX, 6, "systems trace audit number"),
    [12] = F(N, FX, 6, "time, local transaction"),
    [13] = F(N, FX, 4, "date, local transaction"),
    [14] = F(N, FX, 4, "date, expiration"),
    [15] = F(N, FX, 4, "date, settlement"),
    [16] = F(N, FX, 4, "date, conversion"),
    [17] = F(N, FX, 4, "date, capture"),
    [18] = F(N, FX, 4, "merchant type"),
    [19] = F(N, FX, 3, "acquiring institution country code"),
    [20] = F(N, FX, 3, "PAN extended, country code"),
    [21] = F(N, FX, 3, "forwarding institution country code"),
    [22] = F(N, FX, 3, "point of service entry mode"),
    [23] = F(N, FX, 3, "card sequence number"),
    [24] = F(N, FX, 3, "network international identifier"),
    [25] = F(N, FX, 2, "point of service condition code"),
    [26] = F(N, FX, 2, "point of service capture code"),
    [27] = F(N, FX, 1, "authorizing identification response length"),
    [28] = F(XN, FX, 9, "amount, transaction fee"),
    [29] = F(XN, FX, 9, "amount, settlement fee"),
    [30] = F(XN, FX, 9, "amount, transaction processing fee"),
    [31] = F(XN, FX, 9, "amount, settlement processing fee"),
    [32] = F(N, LL, 11, "acquiring institution identification code"),
    [33] = F(N, LL, 11, "forwarding institution identification code"),
    [34] = F(NS, LL, 28, "primary account number, extended"),
    [35] = F(Z, LL, 37, "track 2 data"),
    [36] = F(N, LLL, 104, "track 3 data"),
    [37] = F(AN, FX, 12, "retrieval reference number"),
    [38] = F(AN, FX, 6, "authorization identification response"),
    [39] = F(AN, FX, 2, "response code"),
    [40] = F(AN, FX, 3, "service restriction code"),
    [41] = F(ANS, FX, 8, "card acceptor terminal identification"),
    [42] = F(ANS, FX, 15, "card acceptor identification code"),
    [43] = F(ANS, FX, 40, "card acceptor name/location"),
    [44] = F(ANS, LL, 25, "additional response data"),
    [45] = F(ANS, LL, 76, "track 1 data"),
    [46] = RESERVED("additional data, ISO"),
    [47] = RESERVED("additional data, national"),
    [48] = RESERVED("additional data, private"),
    [49] = F(AN, FX, 3, "currency code, transaction"),
    [50] = F(AN, FX, 3, "currency code, settlement"),
    [51] = F(AN, FX, 3, "currency code, cardholder billing"),
    [52] = F(B, FX, 8, "personal identification number data"),
    [53] = F(N, FX, 16, "security related control information"),
    [54] = F(ANS, LLL, 120, "additional amounts"),
    [55] = RESERVED("reserved ISO"),
    [56] = RESERVED("reserved ISO"),
    [57] = RESERVED("reserved national"),
    [58] = RESERVED("reserved national"),
    [59] = RESERVED("reserved national"),
    [60] = RESERVED("reserved national"),
    [61] = RESERVED("reserved private"),
    [62] = RESERVED("reserved private"),
    [63] = RESERVED("reserved private"),
    [64] = F(B, FX, 8, "message authentication code"),
    [65] = F(COFRE_ISO_UNUSED, FX, 1, "bitmap, extended (unsupported)"),
    [66] = F(N, FX, 1, "settlement code"),
    [67] = F(N, FX, 2, "extended payment code"),
    [68] = F(N, FX, 3, "receiving institution country code"),
    [69] = F(N, FX, 3, "settlement institution country code"),
    [70] = F(N, FX, 3, "network management information code"),
    [71] = F(N, FX, 4, "message number"),
    [72] = F(N, FX, 4, "message number, last"),
    [73] = F(N, FX, 6, "date, action"),
    [74] = F(N, FX, 10, "credits, number"),
    [75] = F(N, FX, 10, "credits reversal, number"),
    [76] = F(N, FX, 10, "debits, number"),
    [77] = F(N, FX, 10, "debits reversal, number"),
    [78] = F(N, FX, 10, "transfer, number"),
    [79] = F(N, FX, 10, "transfer reversal, number"),
    [80] = F(N, FX, 10, "inquiries, number"),
    [81] = F(N, FX, 10, "authorizations, number"),
    [82] = F(N, FX, 12, "credits, processing fee amount"),
    [83] = F(N, FX, 12, "credits, transaction fee amount"),
    [84] = F(N, FX, 12, "debits, processing fee amount"),
    [85] = F(N, FX, 12, "debits, transaction fee amount"),
    [86] = F(N, FX, 16, "credits, amount"),
    [87] = F(N, FX, 16, "credits reversal, amount"),
    [88] = F(N, FX, 16, "debits, amount"),
    [89] = F(N, FX, 16, "debits reversal, amount"),
    [90] = F(N, FX, 42, "original data elements"),
    [91] = F(AN, FX, 1, "file update code"),
    [92] = F(AN, FX, 2, "file security code"),
    [93] = F(AN, FX, 5, "response indicator"),
    [94] = F(AN, FX, 7, "service indicator"),
    [95] = F(AN, FX, 42, "replacement amounts"),
    [96] = F(B, FX, 8, "message security code"),
    [97] = F(XN, FX, 17, "amount, net settlement"),
    [98] = F(ANS, FX, 25, "payee"),
    [99] = F(N, LL, 11, "settlement institution identification code"),
    [100] = F(N, LL, 11, "receiving institution identification code"),
    [101] = F(ANS, LL, 17, "file name"),
    [102] = F(ANS, LL, 28, "account identification 1"),
    [103] = F(ANS, LL, 28, "account identification 2"),
    [104] = F(ANS, LLL, 100, "transaction description"),
    [105] = RESERVED("reserved ISO"),
    [106] = RESERVED("reserved ISO"),
    [107] = RESERVED("reserved ISO"),
    [108] = RESERVED("reserved ISO"),
    [109] = RESERVED("reserved ISO"),
    [110] = RESERVED("reserved ISO"),
    [111] = RESERVED("reserved ISO"),
    [112] = RESERVED("reserved national"),
    [113] = RESERVED("reserved national"),
    [114] = RESERVED("reserved national"),
    [115] = RESERVED("reserved national"),
    [116] = RESERVED("reserved national"),
    [117] = RESERVED("reserved national"),
    [118] = RESERVED("reserved national"),
    [119] = RESERVED("reserved national"),
    [120] = RESERVED("reserved private"),
    [121] = RESERVED("reserved private"),
    [122] = RESERVED("reserved private"),
    [123] = RESERVED("reserved private"),
    [124] = RESERVED("reserved private"),
    [125] = RESERVED("reserved private"),
    [126] = RESERVED("reserved private"),
    [127] = RESERVED("reserved private"),
    [128] = F(B, FX, 8, "message authentication code"),
};

const cofre_iso_field_spec_t *cofre_iso_field_spec(unsigned field)
{
    if (field < 1 || field > COFRE_ISO_FIELDS)
        return NULL;
    return &specs[field];
}

static bool is_digit(uint8_t c)
{
    return c >= '0' && c <= '9';
}

static bool is_alpha(uint8_t c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

static bool is_print(uint8_t c)
{
    return c >= 0x20 && c <= 0x7e;
}

static bool char_ok(cofre_iso_type_t type, uint8_t c)
{
    switch (type) {
    case COFRE_ISO_N:
        return is_digit(c);
    case COFRE_ISO_AN:
        return is_digit(c) || is_alpha(c);
    case COFRE_ISO_ANS:
        return is_print(c);
    case COFRE_ISO_NS:
        return is_print(c) && !is_alpha(c);
    case COFRE_ISO_Z:
        return is_digit(c) || c == '=' || c == 'D';
    case COFRE_ISO_XN:
        return is_digit(c);
    case COFRE_ISO_B:
        return true;
    case COFRE_ISO_UNUSED:
        return false;
    }
    return false;
}

/* True when the value has the class and length the spec allows. */
static bool value_ok(const cofre_iso_field_spec_t *s, const uint8_t *v, size_t len)
{
    if (s->type == COFRE_ISO_UNUSED)
        return false;
    if (s->len_kind == COFRE_ISO_FIXED ? len != s->max : (len < 1 || len > s->max))
        return false;
    size_t i = 0;
    if (s->type == COFRE_ISO_XN) {
        if (v[0] != 'C' && v[0] != 'D')
            return false;
        i = 1;
    }
    for (; i < len; i++) {
        if (!char_ok((cofre_iso_type_t)s->type, v[i]))
            return false;
    }
    return true;
}

static size_t prefix_len(const cofre_iso_field_spec_t *s)
{
    return s->len_kind == COFRE_ISO_LLVAR ? 2 : s->len_kind == COFRE_ISO_LLLVAR ? 3 : 0;
}

static bool mti_ok(const char *mti, size_t len)
{
    if (len != COFRE_ISO_MTI_LEN)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (!is_digit((uint8_t)mti[i]))
            return false;
    }
    return true;
}

void cofre_iso_init(cofre_iso_msg_t *m, const char *mti)
{
    COFRE_ASSERT(mti_ok(mti, strlen(mti)));
    memset(m->present, 0, sizeof(m->present));
    m->data_len = 0;
    memcpy(m->mti, mti, COFRE_ISO_MTI_LEN + 1);
}

int cofre_iso_set_mti(cofre_iso_msg_t *m, const char *mti)
{
    if (!mti_ok(mti, strlen(mti)))
        return COFRE_EINVAL;
    memcpy(m->mti, mti, COFRE_ISO_MTI_LEN + 1);
    return 0;
}

bool cofre_iso_has(const cofre_iso_msg_t *m, unsigned field)
{
    return field >= 2 && field <= COFRE_ISO_FIELDS && m->present[field];
}

const char *cofre_iso_get(const cofre_iso_msg_t *m, unsigned field, size_t *len)
{
    if (!cofre_iso_has(m, field))
        return NULL;
    if (len != NULL)
        *len = m->len[field];
    return (const char *)m->data + m->off[field];
}

size_t cofre_iso_encoded_len(const cofre_iso_msg_t *m)
{
    size_t n = COFRE_ISO_MTI_LEN + 8;
    bool secondary = false;
    for (unsigned f = 2; f <= COFRE_ISO_FIELDS; f++) {
        if (!m->present[f])
            continue;
        n += prefix_len(&specs[f]) + m->len[f];
        secondary = secondary || f > 64;
    }
    return secondary ? n + 8 : n;
}

/* Packs the present values to the front of data, in field order, so freed space is reused. */
static void compact(cofre_iso_msg_t *m)
{
    uint8_t tmp[sizeof(m->data)];
    uint16_t used = 0;
    for (unsigned f = 2; f <= COFRE_ISO_FIELDS; f++) {
        if (!m->present[f])
            continue;
        memcpy(tmp + used, m->data + m->off[f], (size_t)m->len[f] + 1);
        m->off[f] = used;
        used = (uint16_t)(used + m->len[f] + 1);
    }
    memcpy(m->data, tmp, used);
    m->data_len = used;
}

/* Stores a value already checked against its spec. The caller checked the encoded size. */
static void store(cofre_iso_msg_t *m, unsigned field, const void *value, size_t len)
{
    if (m->present[field] && len <= m->len[field]) {
        memcpy(m->data + m->off[field], value, len); /* fits where the old value was */
    } else {
        m->present[field] = false;
        if (m->data_len + len + 1 > sizeof(m->data))
            compact(m);
        COFRE_ASSERT(m->data_len + len + 1 <= sizeof(m->data));
        memcpy(m->data + m->data_len, value, len);
        m->off[field] = m->data_len;
        m->data_len = (uint16_t)(m->data_len + len + 1);
    }
    m->data[m->off[field] + len] = '\0';
    m->len[field] = (uint16_t)len;
    m->present[field] = true;
}

static bool has_secondary_fields(const cofre_iso_msg_t *m)
{
    for (unsigned f = 65; f <= COFRE_ISO_FIELDS; f++) {
        if (m->present[f])
            return true;
    }
    return false;
}

int cofre_iso_set(cofre_iso_msg_t *m, unsigned field, const void *value, size_t len)
{
    if (field < 2 || field > COFRE_ISO_FIELDS)
        return COFRE_EINVAL;
    const cofre_iso_field_spec_t *s = &specs[field];
    if (!value_ok(s, value, len))
        return COFRE_EINVAL;
    size_t total = cofre_iso_encoded_len(m) + prefix_len(s) + len;
    if (m->present[field])
        total -= prefix_len(s) + m->len[field];
    else if (field > 64 && !has_secondary_fields(m))
        total += 8;
    if (total > COFRE_ISO_MSG_MAX)
        return COFRE_ETOOLARGE;
    store(m, field, value, len);
    return 0;
}

int cofre_iso_set_str(cofre_iso_msg_t *m, unsigned field, const char *value)
{
    return cofre_iso_set(m, field, value, strlen(value));
}

int cofre_iso_set_num(cofre_iso_msg_t *m, unsigned field, uint64_t v)
{
    const cofre_iso_field_spec_t *s = cofre_iso_field_spec(field);
    if (s == NULL || s->type != COFRE_ISO_N || s->len_kind != COFRE_ISO_FIXED || s->max > 20)
        return COFRE_EINVAL;
    char digits[21];
    size_t n = s->max;
    for (size_t i = n; i-- > 0;) {
        digits[i] = (char)('0' + v % 10);
        v /= 10;
    }
    if (v != 0)
        return COFRE_ERANGE;
    return cofre_iso_set(m, field, digits, n);
}

int cofre_iso_get_num(const cofre_iso_msg_t *m, unsigned field, uint64_t *v)
{
    size_t len;
    const char *s = cofre_iso_get(m, field, &len);
    if (s == NULL)
        return COFRE_ENOENT;
    if (specs[field].type != COFRE_ISO_N)
        return COFRE_EINVAL;
    uint64_t r = 0;
    for (size_t i = 0; i < len; i++) {
        uint64_t d = (uint64_t)(s[i] - '0');
        if (r > (UINT64_MAX - d) / 10)
            return COFRE_ERANGE;
        r = r * 10 + d;
    }
    *v = r;
    return 0;
}

void cofre_iso_unset(cofre_iso_msg_t *m, unsigned field)
{
    if (field >= 2 && field <= COFRE_ISO_FIELDS)
        m->present[field] = false;
}

int cofre_iso_copy(cofre_iso_msg_t *dst, const cofre_iso_msg_t *src, unsigned field)
{
    size_t len;
    const char *v = cofre_iso_get(src, field, &len);
    return v == NULL ? 0 : cofre_iso_set(dst, field, v, len);
}

static void put_bitmap(uint8_t *out, const cofre_iso_msg_t *m, unsigned first)
{
    memset(out, 0, 8);
    for (unsigned f = first; f < first + 64; f++) {
        bool on = f == 1 ? has_secondary_fields(m) : m->present[f];
        if (on)
            out[(f - first) / 8] |= (uint8_t)(0x80u >> ((f - first) % 8));
    }
}

static void put_len_prefix(uint8_t *out, size_t digits, size_t len)
{
    for (size_t i = digits; i-- > 0;) {
        out[i] = (uint8_t)('0' + len % 10);
        len /= 10;
    }
}

int cofre_iso_encode(const cofre_iso_msg_t *m, uint8_t *buf, size_t cap, size_t *len)
{
    size_t need = cofre_iso_encoded_len(m);
    COFRE_ASSERT(need <= COFRE_ISO_MSG_MAX);
    if (need > cap)
        return COFRE_ETOOLARGE;
    memcpy(buf, m->mti, COFRE_ISO_MTI_LEN);
    size_t pos = COFRE_ISO_MTI_LEN;
    put_bitmap(buf + pos, m, 1);
    pos += 8;
    if (has_secondary_fields(m)) {
        put_bitmap(buf + pos, m, 65);
        pos += 8;
    }
    for (unsigned f = 2; f <= COFRE_ISO_FIELDS; f++) {
        if (!m->present[f])
            continue;
        size_t digits = prefix_len(&specs[f]);
        put_len_prefix(buf + pos, digits, m->len[f]);
        pos += digits;
        memcpy(buf + pos, m->data + m->off[f], m->len[f]);
        pos += m->len[f];
    }
    COFRE_ASSERT(pos == need);
    *len = pos;
    return 0;
}

int cofre_iso_encode_frame(const cofre_iso_msg_t *m, uint8_t *buf, size_t cap, size_t *len)
{
    if (cap < COFRE_ISO_FRAME_HDR)
        return COFRE_ETOOLARGE;
    size_t body;
    int rc = cofre_iso_encode(m, buf + COFRE_ISO_FRAME_HDR, cap - COFRE_ISO_FRAME_HDR, &body);
    if (rc != 0)
        return rc;
    buf[0] = (uint8_t)(body >> 8);
    buf[1] = (uint8_t)(body & 0xff);
    *len = body + COFRE_ISO_FRAME_HDR;
    return 0;
}

/* The decoder's cursor over the input: every read checks what is left first. */
typedef struct reader {
    const uint8_t *buf;
    size_t len;
    size_t pos;
    cofre_iso_error_t *err;
} reader_t;

static int fail(reader_t *r, unsigned field, const char *reason)
{
    if (r->err != NULL) {
        r->err->field = field;
        r->err->offset = r->pos;
        r->err->reason = reason;
    }
    return COFRE_EINVAL;
}

/* Points *out at the next n bytes and advances; false when fewer than n remain. */
static bool take(reader_t *r, size_t n, const uint8_t **out)
{
    if (n > r->len - r->pos)
        return false;
    *out = r->buf + r->pos;
    r->pos += n;
    return true;
}

static int read_len_prefix(reader_t *r, unsigned field, size_t digits, size_t *len)
{
    const uint8_t *p;
    if (!take(r, digits, &p))
        return fail(r, field, "truncated length prefix");
    size_t v = 0;
    for (size_t i = 0; i < digits; i++) {
        if (!is_digit(p[i]))
            return fail(r, field, "length prefix is not digits");
        v = v * 10 + (size_t)(p[i] - '0');
    }
    *len = v;
    return 0;
}

static int decode_field(cofre_iso_msg_t *m, reader_t *r, unsigned field)
{
    const cofre_iso_field_spec_t *s = &specs[field];
    if (s->type == COFRE_ISO_UNUSED)
        return fail(r, field, "unsupported field");
    size_t len = s->max;
    if (s->len_kind != COFRE_ISO_FIXED) {
        int rc = read_len_prefix(r, field, prefix_len(s), &len);
        if (rc != 0)
            return rc;
        if (len < 1 || len > s->max)
            return fail(r, field, "length out of bounds");
    }
    const uint8_t *v;
    if (!take(r, len, &v))
        return fail(r, field, "truncated field");
    if (!value_ok(s, v, len))
        return fail(r, field, "character not allowed in field");
    store(m, field, v, len);
    return 0;
}

static bool bit_set(const uint8_t *bitmap, unsigned index)
{
    return (bitmap[index / 8] & (0x80u >> (index % 8))) != 0;
}

int cofre_iso_decode(cofre_iso_msg_t *m, const uint8_t *buf, size_t len, cofre_iso_error_t *err)
{
    memset(m->present, 0, sizeof(m->present));
    m->data_len = 0;
    m->mti[0] = '\0';
    reader_t r = {.buf = buf, .len = len, .pos = 0, .err = err};
    if (len > COFRE_ISO_MSG_MAX) {
        fail(&r, 0, "message too large");
        return COFRE_ETOOLARGE;
    }
    const uint8_t *mti, *primary, *secondary = NULL;
    if (!take(&r, COFRE_ISO_MTI_LEN, &mti) || !mti_ok((const char *)mti, COFRE_ISO_MTI_LEN))
        return fail(&r, 0, "MTI is not 4 digits");
    if (mti[0] != '0')
        return fail(&r, 0, "MTI version is not 1987");
    if (!take(&r, 8, &primary))
        return fail(&r, 0, "truncated primary bitmap");
    if (bit_set(primary, 0) && !take(&r, 8, &secondary))
        return fail(&r, 1, "truncated secondary bitmap");
    for (unsigned f = 2; f <= COFRE_ISO_FIELDS; f++) {
        bool on =
            f <= 64 ? bit_set(primary, f - 1) : secondary != NULL && bit_set(secondary, f - 65);
        if (!on)
            continue;
        int rc = decode_field(m, &r, f);
        if (rc != 0) {
            memset(m->present, 0, sizeof(m->present));
            return rc;
        }
    }
    if (r.pos != len) {
        memset(m->present, 0, sizeof(m->present));
        return fail(&r, 0, "bytes after the last field");
    }
    memcpy(m->mti, mti, COFRE_ISO_MTI_LEN);
    m->mti[COFRE_ISO_MTI_LEN] = '\0';
    return 0;
}

int cofre_iso_frame_next(const uint8_t *buf, size_t avail, const uint8_t **body, size_t *body_len,
                         size_t *frame_len)
{
    if (avail < COFRE_ISO_FRAME_HDR)
        return 0;
    size_t n = ((size_t)buf[0] << 8) | buf[1];
    if (n > COFRE_ISO_MSG_MAX)
        return COFRE_ETOOLARGE;
    if (n < COFRE_ISO_MSG_MIN)
        return COFRE_EINVAL;
    if (avail - COFRE_ISO_FRAME_HDR < n)
        return 0;
    *body = buf + COFRE_ISO_FRAME_HDR;
    *body_len = n;
    *frame_len = n + COFRE_ISO_FRAME_HDR;
    return 1;
}

bool cofre_iso_equal(const cofre_iso_msg_t *m, const cofre_iso_msg_t *o)
{
    if (strcmp(m->mti, o->mti) != 0)
        return false;
    for (unsigned f = 2; f <= COFRE_ISO_FIELDS; f++) {
        if (m->present[f] != o->present[f])
            return false;
        if (m->present[f] && (m->len[f] != o->len[f] ||
                              memcmp(m->data + m->off[f], o->data + o->off[f], m->len[f]) != 0))
            return false;
    }
    return true;
}
