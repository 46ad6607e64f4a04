/*
 * link.c: the legacy link's messages (see link.h and docs/legacy-iso8583.md).
 */
#include "legacy/link.h"

#include "cofre/common.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* Fields a response copies from its request, as far as the request has them. */
static const unsigned echoed[] = {2, 3, 4, 7, 11, 12, 13, 37, 41, 49, 70, 90, 103};

static const unsigned required_0200[] = {2, 3, 4, 7, 11, 12, 13, 37, 41, 49};
static const unsigned required_0400[] = {3, 4, 7, 11, 37, 41, 49};
static const unsigned required_0800[] = {7, 11, 70};

/* Writes the canonical lowercase form of a UUID; false when s is not one. */
static bool uuid_canonical(const char *s, size_t len, char out[COFRE_LINK_UUID_LEN + 1])
{
    if (len != COFRE_LINK_UUID_LEN)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash) {
            if (c != '-')
                return false;
        } else if (c >= 'A' && c <= 'F') {
            c = (char)(c - 'A' + 'a');
        } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
            return false;
        }
        out[i] = c;
    }
    out[len] = '\0';
    return true;
}

/* The first 8 bytes of SHA-256(canonical uuid), big-endian. */
static int uuid_hash64(const char *id, size_t len, uint64_t *out)
{
    char canon[COFRE_LINK_UUID_LEN + 1];
    if (!uuid_canonical(id, len, canon))
        return COFRE_EINVAL;
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    int ok = EVP_Digest(canon, COFRE_LINK_UUID_LEN, md, &mdlen, EVP_sha256(), NULL);
    COFRE_ASSERT(ok == 1 && mdlen == 32);
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | md[i];
    *out = v;
    return 0;
}

int cofre_link_rrn(const char *id, size_t len, char out[COFRE_LINK_RRN_LEN + 1])
{
    static const char digits[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    uint64_t v;
    if (uuid_hash64(id, len, &v) != 0)
        return COFRE_EINVAL;
    for (int i = COFRE_LINK_RRN_LEN; i-- > 0;) {
        out[i] = digits[v % 36];
        v /= 36;
    }
    out[COFRE_LINK_RRN_LEN] = '\0';
    return 0;
}

int cofre_link_account_number(const char *id, size_t len, char out[COFRE_LINK_ACCOUNT_LEN + 1])
{
    uint64_t v;
    if (uuid_hash64(id, len, &v) != 0)
        return COFRE_EINVAL;
    for (int i = COFRE_LINK_ACCOUNT_LEN; i-- > 0;) {
        out[i] = (char)('0' + v % 10);
        v /= 10;
    }
    out[COFRE_LINK_ACCOUNT_LEN] = '\0';
    return 0;
}

uint32_t cofre_link_stan_next(uint32_t stan)
{
    return stan >= COFRE_LINK_STAN_MAX ? 1 : stan + 1;
}

void cofre_link_format_time(uint64_t wall_us, char *f7, char *f12, char *f13)
{
    time_t secs = (time_t)(wall_us / 1000000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    char buf[16];
    snprintf(buf, sizeof(buf), "%02d%02d%02d%02d%02d", (tm.tm_mon + 1) % 100, tm.tm_mday % 100,
             tm.tm_hour % 100, tm.tm_min % 100, tm.tm_sec % 100);
    if (f7 != NULL)
        memcpy(f7, buf, 11);
    if (f12 != NULL)
        memcpy(f12, buf + 4, 7);
    if (f13 != NULL) {
        memcpy(f13, buf, 4);
        f13[4] = '\0';
    }
}

static bool stan_ok(uint32_t stan)
{
    return stan >= 1 && stan <= COFRE_LINK_STAN_MAX;
}

static bool currency_ok(const char *c)
{
    if (c == NULL || strlen(c) != 3)
        return false;
    for (int i = 0; i < 3; i++) {
        if (c[i] < 'A' || c[i] > 'Z')
            return false;
    }
    return true;
}

/* Fields 41: the terminal id, left-justified and space-filled to 8. */
static int set_terminal(cofre_iso_msg_t *m, const char *terminal)
{
    size_t n = terminal == NULL ? 0 : strlen(terminal);
    if (n == 0 || n > COFRE_LINK_TERMINAL_LEN)
        return COFRE_EINVAL;
    char padded[COFRE_LINK_TERMINAL_LEN];
    memset(padded, ' ', sizeof(padded));
    memcpy(padded, terminal, n);
    return cofre_iso_set(m, 41, padded, sizeof(padded));
}

/* Fields 7 and 11, common to every request. */
static int set_transmission(cofre_iso_msg_t *m, uint32_t stan, uint64_t now_us)
{
    if (!stan_ok(stan))
        return COFRE_EINVAL;
    char f7[11];
    cofre_link_format_time(now_us, f7, NULL, NULL);
    int rc = cofre_iso_set_str(m, 7, f7);
    return rc != 0 ? rc : cofre_iso_set_num(m, 11, stan);
}

static int set_accounts(cofre_iso_msg_t *m, const cofre_link_transfer_t *t)
{
    char rrn[COFRE_LINK_RRN_LEN + 1], debit[COFRE_LINK_ACCOUNT_LEN + 1],
        credit[COFRE_LINK_ACCOUNT_LEN + 1];
    if (t->transfer_id == NULL || t->debit_account_id == NULL || t->credit_account_id == NULL)
        return COFRE_EINVAL;
    if (cofre_link_rrn(t->transfer_id, strlen(t->transfer_id), rrn) != 0 ||
        cofre_link_account_number(t->debit_account_id, strlen(t->debit_account_id), debit) != 0 ||
        cofre_link_account_number(t->credit_account_id, strlen(t->credit_account_id), credit) != 0)
        return COFRE_EINVAL;
    int rc = cofre_iso_set_str(m, 2, debit);
    rc = rc != 0 ? rc : cofre_iso_set_str(m, 37, rrn);
    return rc != 0 ? rc : cofre_iso_set_str(m, 103, credit);
}

int cofre_link_build_transfer(cofre_iso_msg_t *m, const cofre_link_transfer_t *t, uint32_t stan,
                              const char *terminal, uint64_t now_us)
{
    if (t->amount_minor < 1 || t->amount_minor > COFRE_LINK_AMOUNT_MAX)
        return COFRE_ERANGE;
    if (!currency_ok(t->currency))
        return COFRE_EINVAL;
    cofre_iso_init(m, COFRE_LINK_MTI_TRANSFER);
    char f12[7], f13[5];
    cofre_link_format_time(t->posted_at_us, NULL, f12, f13);
    int rc = set_accounts(m, t);
    rc = rc != 0 ? rc : cofre_iso_set_str(m, 3, COFRE_LINK_PROC_TRANSFER);
    rc = rc != 0 ? rc : cofre_iso_set_num(m, 4, (uint64_t)t->amount_minor);
    rc = rc != 0 ? rc : set_transmission(m, stan, now_us);
    rc = rc != 0 ? rc : cofre_iso_set_str(m, 12, f12);
    rc = rc != 0 ? rc : cofre_iso_set_str(m, 13, f13);
    rc = rc != 0 ? rc : set_terminal(m, terminal);
    return rc != 0 ? rc : cofre_iso_set_str(m, 49, t->currency);
}

int cofre_link_build_reversal(cofre_iso_msg_t *m, const cofre_iso_msg_t *original, uint32_t stan,
                              uint64_t now_us)
{
    unsigned missing;
    if (strcmp(original->mti, COFRE_LINK_MTI_TRANSFER) != 0 ||
        cofre_link_check_request(original, &missing) != 0)
        return COFRE_EINVAL;
    cofre_iso_init(m, COFRE_LINK_MTI_REVERSAL);
    static const unsigned copied[] = {2, 3, 4, 12, 13, 37, 41, 49, 103};
    int rc = 0;
    for (size_t i = 0; i < COFRE_ARRAY_SIZE(copied) && rc == 0; i++)
        rc = cofre_iso_copy(m, original, copied[i]);
    if (rc != 0)
        return rc;
    rc = set_transmission(m, stan, now_us);
    if (rc != 0)
        return rc;
    char f90[43];
    snprintf(f90, sizeof(f90), "%s%s%s%022d", original->mti, cofre_iso_get(original, 11, NULL),
             cofre_iso_get(original, 7, NULL), 0);
    return cofre_iso_set_str(m, 90, f90);
}

int cofre_link_build_network(cofre_iso_msg_t *m, const char *nmc, uint32_t stan, uint64_t now_us)
{
    cofre_iso_init(m, COFRE_LINK_MTI_NETWORK);
    int rc = set_transmission(m, stan, now_us);
    return rc != 0 ? rc : cofre_iso_set_str(m, 70, nmc);
}

int cofre_link_original(const cofre_iso_msg_t *m, char *mti, char *stan, char *f7)
{
    const char *v = cofre_iso_get(m, 90, NULL);
    if (v == NULL)
        return COFRE_ENOENT;
    if (mti != NULL) {
        memcpy(mti, v, 4);
        mti[4] = '\0';
    }
    if (stan != NULL) {
        memcpy(stan, v + 4, 6);
        stan[6] = '\0';
    }
    if (f7 != NULL) {
        memcpy(f7, v + 10, 10);
        f7[10] = '\0';
    }
    return 0;
}

bool cofre_link_is_request(const char *mti)
{
    return strlen(mti) == COFRE_ISO_MTI_LEN && (mti[2] == '0' || mti[2] == '2');
}

int cofre_link_build_response(cofre_iso_msg_t *resp, const cofre_iso_msg_t *req, const char *code,
                              const char *auth_id)
{
    if (!cofre_link_is_request(req->mti))
        return COFRE_EINVAL;
    char mti[COFRE_ISO_MTI_LEN + 1];
    memcpy(mti, req->mti, sizeof(mti));
    mti[2] = (char)(mti[2] + 1);
    cofre_iso_init(resp, mti);
    int rc = 0;
    for (size_t i = 0; i < COFRE_ARRAY_SIZE(echoed) && rc == 0; i++)
        rc = cofre_iso_copy(resp, req, echoed[i]);
    if (rc == 0 && auth_id != NULL)
        rc = cofre_iso_set_str(resp, 38, auth_id);
    return rc != 0 ? rc : cofre_iso_set_str(resp, 39, code);
}

static int check_fields(const cofre_iso_msg_t *m, const unsigned *fields, size_t n,
                        unsigned *missing)
{
    for (size_t i = 0; i < n; i++) {
        if (!cofre_iso_has(m, fields[i])) {
            if (missing != NULL)
                *missing = fields[i];
            return COFRE_EINVAL;
        }
    }
    return 0;
}

int cofre_link_check_request(const cofre_iso_msg_t *m, unsigned *missing)
{
    if (strcmp(m->mti, COFRE_LINK_MTI_TRANSFER) == 0)
        return check_fields(m, required_0200, COFRE_ARRAY_SIZE(required_0200), missing);
    if (strcmp(m->mti, COFRE_LINK_MTI_REVERSAL) == 0)
        return check_fields(m, required_0400, COFRE_ARRAY_SIZE(required_0400), missing);
    if (strcmp(m->mti, COFRE_LINK_MTI_NETWORK) == 0)
        return check_fields(m, required_0800, COFRE_ARRAY_SIZE(required_0800), missing);
    return COFRE_ENOENT;
}

static bool same_field(const cofre_iso_msg_t *a, const cofre_iso_msg_t *b, unsigned field)
{
    size_t la, lb;
    const char *va = cofre_iso_get(a, field, &la);
    const char *vb = cofre_iso_get(b, field, &lb);
    return va != NULL && vb != NULL && la == lb && memcmp(va, vb, la) == 0;
}

bool cofre_link_response_matches(const cofre_iso_msg_t *req, const cofre_iso_msg_t *resp)
{
    if (!cofre_link_is_request(req->mti) || memcmp(req->mti, resp->mti, 2) != 0 ||
        resp->mti[2] != req->mti[2] + 1 || resp->mti[3] != req->mti[3])
        return false;
    if (!same_field(req, resp, 11) || !cofre_iso_has(resp, 39))
        return false;
    return !cofre_iso_has(req, 37) || same_field(req, resp, 37);
}

const char *cofre_link_response_code(const cofre_iso_msg_t *m)
{
    return cofre_iso_get(m, 39, NULL);
}

bool cofre_link_code_approved(const char *code)
{
    return code != NULL && strcmp(code, COFRE_LINK_RC_APPROVED) == 0;
}

void cofre_link_mask(const char *s, size_t len, char *out, size_t cap)
{
    if (cap == 0)
        return;
    size_t n = COFRE_MIN(len, cap - 1);
    size_t shown_from = len > 4 ? len - 4 : len;
    for (size_t i = 0; i < n; i++)
        out[i] = i >= shown_from ? s[i] : '*';
    out[n] = '\0';
}
