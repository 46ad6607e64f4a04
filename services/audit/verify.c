/*
 * verify.c: the audit trail's verifier (see verify.h). It streams records and checkpoints in
 * seq order, in pages, so memory stays bounded whatever the trail's length.
 */
#include "audit/verify.h"

#include "cofre/common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define RECORDS_PAGE     512
#define CHECKPOINTS_PAGE 64
/* A checkpoint beyond the last record read may be a truncation, or a record and its
 * checkpoint appended (by a live service) after the scan passed: read on this many times. */
#define TAIL_RESCANS 3

typedef struct verify_state {
    cofre_audit_store_t *store;
    const cofre_audit_keys_t *keys;
    cofre_audit_verdict_t *v;
    cofre_audit_checkpoint_t cps[CHECKPOINTS_PAGE];
    size_t ncps, icp;
    bool cps_done;
    int64_t last_good_cp; /* seq of the last checkpoint that held */
    int64_t expect;       /* the next seq */
    uint8_t prev[COFRE_AUDIT_HASH_LEN];
} verify_state_t;

/* Marks the verdict bad at seq; the caller writes the reason (REASON). */
static void bad(verify_state_t *st, int64_t seq)
{
    st->v->ok = false;
    st->v->first_bad = seq;
}

#define REASON(st, ...) snprintf((st)->v->reason, sizeof((st)->v->reason), __VA_ARGS__)

/* The next checkpoint in seq order (NULL when none is left), loading pages as needed. */
static int peek_checkpoint(verify_state_t *st, const cofre_audit_checkpoint_t **cp)
{
    *cp = NULL;
    if (st->icp == st->ncps && !st->cps_done) {
        int64_t after = st->ncps > 0 ? st->cps[st->ncps - 1].seq : -1;
        st->icp = 0;
        int rc =
            st->store->ops->checkpoints(st->store, after, CHECKPOINTS_PAGE, st->cps, &st->ncps);
        if (rc != 0)
            return rc;
        st->cps_done = st->ncps < CHECKPOINTS_PAGE;
    }
    if (st->icp < st->ncps)
        *cp = &st->cps[st->icp];
    return 0;
}

/* Checks the checkpoints at seq (whose chain hash is h). Returns an error, or 0 (ok stays
 * true when they hold). */
static int check_checkpoints(verify_state_t *st, int64_t seq, const uint8_t *h)
{
    const cofre_audit_checkpoint_t *cp;
    int rc;
    while ((rc = peek_checkpoint(st, &cp)) == 0 && cp != NULL && cp->seq <= seq) {
        if (!cofre_audit_checkpoint_valid(st->keys, cp)) {
            REASON(st, "the checkpoint at seq %lld has a bad signature or an untrusted key",
                   (long long)cp->seq);
            bad(st, cp->seq);
            return 0;
        }
        if (cp->seq < seq || memcmp(cp->hash, h, COFRE_AUDIT_HASH_LEN) != 0) {
            REASON(st,
                   "records %lld..%lld differ from the checkpoint signed at seq %lld (rewritten)",
                   (long long)(st->last_good_cp + 1), (long long)cp->seq, (long long)cp->seq);
            bad(st, st->last_good_cp + 1);
            return 0;
        }
        st->last_good_cp = cp->seq;
        st->v->checkpoints++;
        st->v->last_checkpoint_seq = cp->seq;
        st->icp++;
    }
    return rc;
}

/* Checks one record. Returns an error, or 0 (st->v->ok false when it is bad). */
static int check_record(verify_state_t *st, const cofre_audit_record_t *r)
{
    if (r->seq != st->expect) {
        REASON(st, "record %lld is missing (deleted, or the trail renumbered)",
               (long long)st->expect);
        bad(st, st->expect);
        return 0;
    }
    uint8_t h[COFRE_AUDIT_HASH_LEN];
    cofre_audit_record_hash(st->prev, r, h);
    if (memcmp(h, r->hash, COFRE_AUDIT_HASH_LEN) != 0) {
        REASON(st, "record %lld does not match its hash (changed, swapped or inserted)",
               (long long)r->seq);
        bad(st, r->seq);
        return 0;
    }
    int rc = check_checkpoints(st, r->seq, h);
    if (rc != 0 || !st->v->ok)
        return rc;
    memcpy(st->prev, h, COFRE_AUDIT_HASH_LEN);
    memcpy(st->v->head, h, COFRE_AUDIT_HASH_LEN);
    st->v->records = r->seq;
    st->expect++;
    return 0;
}

/* After the last record: a valid checkpoint beyond it means the tail was cut off. */
static int check_tail(verify_state_t *st)
{
    const cofre_audit_checkpoint_t *cp;
    int rc = peek_checkpoint(st, &cp);
    if (rc != 0 || cp == NULL)
        return rc;
    if (!cofre_audit_checkpoint_valid(st->keys, cp)) {
        REASON(st, "the checkpoint at seq %lld has a bad signature or an untrusted key",
               (long long)cp->seq);
        bad(st, cp->seq);
    } else {
        REASON(st,
               "records %lld..%lld are missing: the checkpoint signed at seq %lld covers them "
               "(truncated)",
               (long long)st->expect, (long long)cp->seq, (long long)cp->seq);
        bad(st, st->expect);
    }
    return 0;
}

/* Checks the records after *after, page by page, until a short page or a bad record. */
static int scan_records(verify_state_t *st, cofre_audit_record_t *page, int64_t *after)
{
    for (;;) {
        size_t n = 0;
        int rc = st->store->ops->scan(st->store, *after, RECORDS_PAGE, page, &n);
        for (size_t i = 0; rc == 0 && st->v->ok && i < n; i++)
            rc = check_record(st, &page[i]);
        if (n > 0)
            *after = page[n - 1].seq;
        for (size_t i = 0; i < n; i++)
            cofre_audit_record_release(&page[i]);
        if (rc != 0 || !st->v->ok || n < RECORDS_PAGE)
            return rc;
    }
}

int cofre_audit_verify(cofre_audit_store_t *s, const cofre_audit_keys_t *keys,
                       cofre_audit_verdict_t *out)
{
    cofre_audit_record_t *page = cofre_calloc(RECORDS_PAGE, sizeof(*page));
    verify_state_t *st = cofre_calloc(1, sizeof(*st));
    st->store = s;
    st->keys = keys;
    st->v = out;
    st->expect = 1;
    memset(out, 0, sizeof(*out));
    out->ok = true;
    int64_t after = 0;
    int rc = scan_records(st, page, &after);
    for (int rescan = 0; rc == 0 && out->ok; rescan++) {
        const cofre_audit_checkpoint_t *cp;
        rc = peek_checkpoint(st, &cp);
        if (rc != 0 || cp == NULL)
            break;
        int64_t before = after;
        if (rescan < TAIL_RESCANS)
            rc = scan_records(st, page, &after);
        if (rc == 0 && out->ok && after == before)
            rc = check_tail(st); /* nothing new arrived: the tail was cut off */
        if (after == before)
            break;
    }
    free(page);
    free(st);
    return rc;
}

void cofre_audit_verdict_json(const cofre_audit_verdict_t *v, cofre_jbuf_t *out)
{
    char hex[2 * COFRE_AUDIT_HASH_LEN + 1];
    cofre_hex_encode(v->head, COFRE_AUDIT_HASH_LEN, hex);
    cofre_jbuf_obj_begin(out);
    cofre_jbuf_kbool(out, "ok", v->ok);
    cofre_jbuf_kint(out, "records", v->records);
    cofre_jbuf_kstr(out, "head", hex);
    if (!v->ok) {
        cofre_jbuf_kint(out, "first_bad", v->first_bad);
        cofre_jbuf_kstr(out, "reason", v->reason);
    }
    cofre_jbuf_kuint(out, "checkpoints", v->checkpoints);
    cofre_jbuf_kint(out, "last_checkpoint_seq", v->last_checkpoint_seq);
    cofre_jbuf_obj_end(out);
}
