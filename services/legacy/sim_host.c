/*
 * sim_host.c: the simulated host's answers (see sim_host.h and docs/legacy-iso8583.md).
 *
 * State of an RRN and what each request does to it:
 *   0200, RRN unknown or declined   -> evaluated: approved (applied) or declined (nothing)
 *   0200, RRN approved, same content -> the stored answer again, nothing applied (duplicate)
 *   0200, RRN approved, other content -> 94, nothing changes (an RRN reused)
 *   0200, RRN reversed, same transmission (STAN and field 7) as the reversed one -> 94
 *   0200, RRN reversed, a new transmission -> evaluated again (a retry after a reversal)
 *   0400, RRN approved -> reversed (effect undone); declined or unknown -> reversed (nothing
 *   to undo; an unknown RRN remembers field 90's transmission); reversed -> 00 again
 */
#include "legacy/sim_host.h"

#include "cofre/common.h"
#include "cofre/log.h"
#include "legacy/link.h"

#include <stdio.h>
#include <string.h>

/* Copies field f of m into out (cap bytes), "" when absent or too long. */
static void field_str(const cofre_iso_msg_t *m, unsigned f, char *out, size_t cap)
{
    size_t len = 0;
    const char *v = cofre_iso_get(m, f, &len);
    if (v == NULL || len >= cap)
        len = 0;
    if (len > 0)
        memcpy(out, v, len);
    out[len] = '\0';
}

static bool field_is(const cofre_iso_msg_t *m, unsigned f, const char *s)
{
    const char *v = cofre_iso_get(m, f, NULL);
    return v != NULL && strcmp(v, s) == 0;
}

int cofre_sim_rules_parse_currencies(cofre_sim_rules_t *rules, const char *list)
{
    rules->ncurrencies = 0;
    const char *p = list;
    while (*p != '\0') {
        size_t n = strcspn(p, ",");
        if (n != 3 || rules->ncurrencies == COFRE_SIM_CURRENCIES_MAX)
            return COFRE_EINVAL;
        bool alpha = p[0] >= 'A' && p[0] <= 'Z';
        for (size_t i = 0; i < 3; i++) {
            bool ok = alpha ? p[i] >= 'A' && p[i] <= 'Z' : p[i] >= '0' && p[i] <= '9';
            if (!ok)
                return COFRE_EINVAL;
        }
        memcpy(rules->currencies[rules->ncurrencies], p, 3);
        rules->currencies[rules->ncurrencies++][3] = '\0';
        p += n;
        if (*p == ',' && *++p == '\0')
            return COFRE_EINVAL;
    }
    return 0;
}

static bool currency_accepted(const cofre_sim_rules_t *r, const char *cur)
{
    if (r->ncurrencies == 0)
        return true;
    for (unsigned i = 0; i < r->ncurrencies; i++) {
        if (strcmp(r->currencies[i], cur) == 0)
            return true;
    }
    return false;
}

/* The rules, in order; "00" when the transfer may be applied. */
static const char *evaluate(const cofre_sim_host_t *h, const cofre_iso_msg_t *req, uint64_t amount)
{
    const char *proc = cofre_iso_get(req, 3, NULL);
    if (strncmp(proc, "40", 2) != 0)
        return COFRE_LINK_RC_INVALID_TRANSACTION;
    if (amount == 0)
        return COFRE_LINK_RC_INVALID_AMOUNT;
    if (amount > h->rules.amount_max_minor)
        return COFRE_LINK_RC_AMOUNT_LIMIT;
    if (!currency_accepted(&h->rules, cofre_iso_get(req, 49, NULL)))
        return COFRE_LINK_RC_NOT_PERMITTED;
    return COFRE_LINK_RC_APPROVED;
}

/* Fills the content fields of rec from a 0200 or 0400. */
static void record_from(cofre_sim_record_t *rec, const cofre_iso_msg_t *req, uint64_t amount)
{
    rec->amount_minor = amount;
    field_str(req, 49, rec->currency, sizeof(rec->currency));
    field_str(req, 3, rec->processing_code, sizeof(rec->processing_code));
    field_str(req, 2, rec->debit_account, sizeof(rec->debit_account));
    field_str(req, 103, rec->credit_account, sizeof(rec->credit_account));
    field_str(req, 41, rec->terminal, sizeof(rec->terminal));
}

static void transmission_from(cofre_sim_record_t *rec, const cofre_iso_msg_t *req)
{
    field_str(req, 11, rec->stan, sizeof(rec->stan));
    field_str(req, 7, rec->transmission_time, sizeof(rec->transmission_time));
}

/* True when req carries the same transfer as rec (a genuine repeat). */
static bool same_content(const cofre_sim_record_t *rec, const cofre_iso_msg_t *req, uint64_t amount)
{
    cofre_sim_record_t now;
    memset(&now, 0, sizeof(now));
    record_from(&now, req, amount);
    return amount == rec->amount_minor && strcmp(now.currency, rec->currency) == 0 &&
           strcmp(now.processing_code, rec->processing_code) == 0 &&
           strcmp(now.debit_account, rec->debit_account) == 0 &&
           strcmp(now.credit_account, rec->credit_account) == 0;
}

static bool same_transmission(const cofre_sim_record_t *rec, const cofre_iso_msg_t *req)
{
    return rec->stan[0] != '\0' && field_is(req, 11, rec->stan) &&
           field_is(req, 7, rec->transmission_time);
}

static void log_outcome(const cofre_sim_session_t *s, const cofre_iso_msg_t *req, const char *what,
                        const char *code)
{
    char masked[COFRE_LINK_MASK_MAX];
    size_t len = 0;
    const char *pan = cofre_iso_get(req, 2, &len);
    cofre_link_mask(pan != NULL ? pan : "", len, masked, sizeof(masked));
    uint64_t amount = 0;
    (void)cofre_iso_get_num(req, 4, &amount);
    COFRE_LOG(COFRE_LOG_INFO, NULL, what, COFRE_LF_INT("conn", s->conn_id),
              COFRE_LF_STR("mti", req->mti), COFRE_LF_STR("stan", cofre_iso_get(req, 11, NULL)),
              COFRE_LF_STR("rrn", cofre_iso_get(req, 37, NULL)), COFRE_LF_INT("amount", amount),
              COFRE_LF_STR("currency", cofre_iso_get(req, 49, NULL)),
              COFRE_LF_STR("account", masked), COFRE_LF_STR("response_code", code));
}

/* Evaluates a 0200 afresh and records the outcome; code gets the answer. */
static int apply_fresh(cofre_sim_host_t *h, cofre_sim_record_t *rec, bool exists,
                       const cofre_iso_msg_t *req, uint64_t amount, uint64_t now_us)
{
    const char *code = evaluate(h, req, amount);
    const char *injected =
        h->decline != NULL && cofre_link_code_approved(code) ? h->decline(h->decline_data) : NULL;
    if (injected != NULL)
        code = injected;
    if (!exists) {
        memset(rec, 0, sizeof(*rec));
        field_str(req, 37, rec->rrn, sizeof(rec->rrn));
        rec->created_us = now_us;
    }
    record_from(rec, req, amount);
    transmission_from(rec, req);
    memcpy(rec->response_code, code, 3);
    rec->updated_us = now_us;
    bool approved = cofre_link_code_approved(code);
    rec->state = approved ? COFRE_SIM_APPROVED : COFRE_SIM_DECLINED;
    rec->auth_id[0] = '\0';
    int64_t seq = 0;
    int rc = cofre_sim_ledger_journal(h->ledger, rec, approved ? "apply" : "decline", code,
                                      rec->stan, &seq);
    if (rc != 0)
        return rc;
    if (approved) {
        rec->applications++;
        uint32_t n = (uint32_t)(seq % 1000000);
        for (int i = 5; i >= 0; i--, n /= 10)
            rec->auth_id[i] = (char)('0' + n % 10);
        rec->auth_id[6] = '\0';
        h->stats.approved++;
    } else {
        h->stats.declined++;
    }
    return cofre_sim_ledger_put(h->ledger, rec);
}

static int answer(cofre_iso_msg_t *resp, const cofre_iso_msg_t *req, const char *code,
                  const char *auth_id)
{
    int rc = cofre_link_build_response(resp, req, code, auth_id);
    COFRE_ASSERT(rc == 0); /* the request decoded, so its echoed fields fit */
    return 1;
}

/* A 0200 whose RRN the ledger already has and that is not evaluated again: a duplicate of an
 * approval (replay), a reused RRN, or the reversed original itself coming late. NULL when
 * the request is to be evaluated afresh. */
static const char *repeat_kind(const cofre_sim_record_t *rec, const cofre_iso_msg_t *req,
                               uint64_t amount)
{
    if (rec->state == COFRE_SIM_APPROVED)
        return same_content(rec, req, amount) ? "duplicate" : "mismatch";
    if (rec->state == COFRE_SIM_REVERSED && same_transmission(rec, req))
        return "late-original";
    return NULL;
}

static int handle_repeat(cofre_sim_host_t *h, cofre_sim_session_t *s, cofre_sim_record_t *rec,
                         const char *kind, const cofre_iso_msg_t *req, cofre_iso_msg_t *resp,
                         uint64_t now_us)
{
    bool replay = strcmp(kind, "duplicate") == 0;
    const char *code = replay ? rec->response_code : COFRE_LINK_RC_DUPLICATE;
    int rc = 0;
    if (replay) {
        rec->duplicates++;
        rec->updated_us = now_us;
        h->stats.duplicates++;
        rc = cofre_sim_ledger_put(h->ledger, rec);
    } else {
        h->stats.declined++;
    }
    rc = rc != 0 ? rc
                 : cofre_sim_ledger_journal(h->ledger, rec, kind, code,
                                            cofre_iso_get(req, 11, NULL), NULL);
    if (rc != 0)
        return rc;
    log_outcome(s, req, kind, code);
    return answer(resp, req, code, replay && rec->auth_id[0] != '\0' ? rec->auth_id : NULL);
}

static int handle_transfer(cofre_sim_host_t *h, cofre_sim_session_t *s, const cofre_iso_msg_t *req,
                           cofre_iso_msg_t *resp, uint64_t now_us)
{
    uint64_t amount = 0;
    (void)cofre_iso_get_num(req, 4, &amount); /* n 12 always fits */
    cofre_sim_record_t rec;
    int rc = cofre_sim_ledger_get(h->ledger, cofre_iso_get(req, 37, NULL), &rec);
    if (rc == COFRE_EIO)
        return rc;
    bool exists = rc == 0;
    const char *kind = exists ? repeat_kind(&rec, req, amount) : NULL;
    if (kind != NULL)
        return handle_repeat(h, s, &rec, kind, req, resp, now_us);
    rc = apply_fresh(h, &rec, exists, req, amount, now_us);
    if (rc != 0)
        return rc;
    bool approved = rec.state == COFRE_SIM_APPROVED;
    log_outcome(s, req, approved ? "transfer applied" : "transfer declined", rec.response_code);
    return answer(resp, req, rec.response_code, approved ? rec.auth_id : NULL);
}

/* A reversal of an RRN the host never saw: remembered, with field 90's transmission, so that
 * the original is not applied if it comes late. */
static void tombstone(cofre_sim_record_t *rec, const cofre_iso_msg_t *req, uint64_t amount,
                      uint64_t now_us)
{
    memset(rec, 0, sizeof(*rec));
    field_str(req, 37, rec->rrn, sizeof(rec->rrn));
    record_from(rec, req, amount);
    (void)cofre_link_original(req, NULL, rec->stan, rec->transmission_time);
    rec->created_us = now_us;
}

/* What a 0400 does to the RRN's row; sets *code and whether the row changes. */
static const char *reversal_kind(const cofre_sim_record_t *rec, bool exists,
                                 const cofre_iso_msg_t *req, uint64_t amount, const char **code,
                                 bool *changes)
{
    *code = COFRE_LINK_RC_APPROVED;
    *changes = true;
    if (!exists)
        return "reverse-unknown";
    if (rec->state == COFRE_SIM_DECLINED)
        return "reverse-declined";
    *changes = false;
    if (rec->state == COFRE_SIM_REVERSED)
        return "reverse-duplicate";
    if (amount != rec->amount_minor || !field_is(req, 49, rec->currency)) {
        *code = COFRE_LINK_RC_INVALID_AMOUNT;
        return "reverse-mismatch";
    }
    *changes = true;
    return "reverse";
}

static int handle_reversal(cofre_sim_host_t *h, cofre_sim_session_t *s, const cofre_iso_msg_t *req,
                           cofre_iso_msg_t *resp, uint64_t now_us)
{
    uint64_t amount = 0;
    (void)cofre_iso_get_num(req, 4, &amount);
    cofre_sim_record_t rec;
    int rc = cofre_sim_ledger_get(h->ledger, cofre_iso_get(req, 37, NULL), &rec);
    if (rc == COFRE_EIO)
        return rc;
    bool exists = rc == 0, changes;
    const char *code;
    const char *kind = reversal_kind(&rec, exists, req, amount, &code, &changes);
    if (!exists)
        tombstone(&rec, req, amount, now_us);
    rc = 0;
    h->stats.reversals++;
    if (changes) {
        rec.state = COFRE_SIM_REVERSED;
        rec.reversals++;
        rec.updated_us = now_us;
        rc = cofre_sim_ledger_put(h->ledger, &rec);
    }
    rc = rc != 0 ? rc
                 : cofre_sim_ledger_journal(h->ledger, &rec, kind, code,
                                            cofre_iso_get(req, 11, NULL), NULL);
    if (rc != 0)
        return rc;
    log_outcome(s, req, kind, code);
    return answer(resp, req, code, NULL);
}

static int handle_network(cofre_sim_host_t *h, cofre_sim_session_t *s, const cofre_iso_msg_t *req,
                          cofre_iso_msg_t *resp)
{
    h->stats.network++;
    const char *code = COFRE_LINK_RC_APPROVED;
    if (field_is(req, 70, COFRE_LINK_NMC_SIGN_ON))
        s->signed_on = true;
    else if (field_is(req, 70, COFRE_LINK_NMC_SIGN_OFF))
        s->signed_on = false;
    else if (!field_is(req, 70, COFRE_LINK_NMC_ECHO))
        code = COFRE_LINK_RC_INVALID_TRANSACTION;
    COFRE_LOG(COFRE_LOG_DEBUG, NULL, "network management", COFRE_LF_INT("conn", s->conn_id),
              COFRE_LF_STR("code", cofre_iso_get(req, 70, NULL)),
              COFRE_LF_STR("response_code", code));
    return answer(resp, req, code, NULL);
}

/* Answers that need no ledger: unknown MTIs, missing fields, not signed on. NULL: none. */
static const char *precheck(const cofre_sim_host_t *h, const cofre_sim_session_t *s,
                            const cofre_iso_msg_t *req, unsigned *missing)
{
    int rc = cofre_link_check_request(req, missing);
    if (rc == COFRE_ENOENT)
        return COFRE_LINK_RC_INVALID_TRANSACTION;
    if (rc != 0)
        return COFRE_LINK_RC_FORMAT_ERROR;
    if (h->rules.require_sign_on && !s->signed_on && strcmp(req->mti, COFRE_LINK_MTI_NETWORK) != 0)
        return COFRE_LINK_RC_HOST_INOPERATIVE;
    return NULL;
}

int cofre_sim_host_handle(cofre_sim_host_t *h, cofre_sim_session_t *s, const cofre_iso_msg_t *req,
                          cofre_iso_msg_t *resp, uint64_t now_us)
{
    if (!cofre_link_is_request(req->mti)) {
        COFRE_LOG(COFRE_LOG_WARN, NULL, "response sent to the host ignored",
                  COFRE_LF_INT("conn", s->conn_id), COFRE_LF_STR("mti", req->mti));
        return 0;
    }
    h->stats.requests++;
    unsigned missing = 0;
    const char *early = precheck(h, s, req, &missing);
    if (early != NULL) {
        if (strcmp(early, COFRE_LINK_RC_FORMAT_ERROR) == 0)
            h->stats.format_errors++;
        h->stats.declined++;
        COFRE_LOG(COFRE_LOG_INFO, NULL, "request refused", COFRE_LF_INT("conn", s->conn_id),
                  COFRE_LF_STR("mti", req->mti), COFRE_LF_STR("response_code", early),
                  COFRE_LF_INT("missing_field", missing));
        return answer(resp, req, early, NULL);
    }
    if (strcmp(req->mti, COFRE_LINK_MTI_TRANSFER) == 0)
        return handle_transfer(h, s, req, resp, now_us);
    if (strcmp(req->mti, COFRE_LINK_MTI_REVERSAL) == 0)
        return handle_reversal(h, s, req, resp, now_us);
    return handle_network(h, s, req, resp);
}
