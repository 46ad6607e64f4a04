/*
 * adapter_reconcile.c: ledger versus host (see adapter_reconcile.h). The core's transfers
 * are loaded into an open-addressing table keyed by RRN (the link derives the RRN from the
 * transfer id, so both sides share the key); the host's lines are streamed against it. The
 * core's database is SQLite or PostgreSQL (read through a cursor, FETCH_ROWS at a time).
 */
#include "legacy/adapter_reconcile.h"

#include "cofre/common.h"
#include "cofre/db.h"
#include "cofre/jbuf.h"
#include "cofre/pg.h"
#include "legacy/adapter_store.h"
#include "legacy/link.h"

#include <jansson.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#define FETCH_ROWS "10000"

typedef struct posted {
    char rrn[COFRE_LINK_RRN_LEN + 1];
    char id[COFRE_LINK_UUID_LEN + 1];
    char debit[COFRE_LINK_ACCOUNT_LEN + 1];
    char credit[COFRE_LINK_ACCOUNT_LEN + 1];
    char currency[4];
    int64_t amount;
    char host_state[12];    /* "" not seen at the host */
    char adapter_state[12]; /* "" unknown to the adapter */
} posted_t;

/* The ledger's transfers in posting order, and an index by RRN. */
typedef struct table {
    posted_t *v;
    size_t n, vcap;
    uint32_t *idx; /* entry + 1; 0 is free */
    size_t cap;    /* a power of two, at least 2 n */
} table_t;

typedef struct counts {
    uint64_t posted, host_records, host_applied, matched, missing, unexpected, mismatched,
        duplicates;
} counts_t;

typedef struct run {
    const cofre_adapter_reconcile_config_t *cfg;
    table_t t;
    counts_t c;
    cofre_jbuf_t line;
} run_t;

static uint64_t rrn_hash(const char *rrn)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (const char *p = rrn; *p != '\0'; p++)
        h = (h ^ (uint8_t)*p) * 1099511628211ull;
    return h;
}

/* The index slot for rrn: the one naming its entry, or the free one where it would go. */
static uint32_t *index_of(const table_t *t, const char *rrn)
{
    size_t i = rrn_hash(rrn) & (t->cap - 1);
    while (t->idx[i] != 0 && strcmp(t->v[t->idx[i] - 1].rrn, rrn) != 0)
        i = (i + 1) & (t->cap - 1);
    return &t->idx[i];
}

static posted_t *find(const table_t *t, const char *rrn)
{
    if (t->cap == 0)
        return NULL;
    uint32_t i = *index_of(t, rrn);
    return i == 0 ? NULL : &t->v[i - 1];
}

static void table_grow(table_t *t)
{
    free(t->idx);
    t->cap = t->cap == 0 ? 1024 : t->cap * 2;
    t->idx = cofre_calloc(t->cap, sizeof(uint32_t));
    for (size_t i = 0; i < t->n; i++)
        *index_of(t, t->v[i].rrn) = (uint32_t)(i + 1);
}

/* Adds p; false when its RRN is there already. */
static bool table_add(table_t *t, const posted_t *p)
{
    if (t->n + 1 > t->cap / 2)
        table_grow(t);
    uint32_t *slot = index_of(t, p->rrn);
    if (*slot != 0)
        return false;
    if (t->n == t->vcap) {
        t->vcap = t->vcap == 0 ? 1024 : t->vcap * 2;
        t->v = cofre_realloc(t->v, t->vcap * sizeof(posted_t));
    }
    t->v[t->n] = *p;
    *slot = (uint32_t)(++t->n);
    return true;
}

static void emit(run_t *r)
{
    fprintf(r->cfg->out, "%s\n", r->line.data);
    cofre_jbuf_reset(&r->line);
}

/* ---- the ledger -------------------------------------------------------------------------- */

/* One transfer of the ledger (any argument may be NULL: then it is not valid). */
static int add_posted(run_t *r, const char *id, const char *debit, const char *credit,
                      int64_t amount, const char *cur)
{
    posted_t p = {.amount = amount};
    if (id == NULL || debit == NULL || credit == NULL || cur == NULL ||
        cofre_link_rrn(id, strlen(id), p.rrn) != 0 ||
        cofre_link_account_number(debit, strlen(debit), p.debit) != 0 ||
        cofre_link_account_number(credit, strlen(credit), p.credit) != 0) {
        fprintf(r->cfg->err, "reconcile: the ledger has a transfer without valid ids\n");
        return 2;
    }
    snprintf(p.id, sizeof(p.id), "%s", id);
    snprintf(p.currency, sizeof(p.currency), "%s", cur);
    if (!table_add(&r->t, &p)) {
        fprintf(r->cfg->err, "reconcile: transfers %s and %s share RRN %s\n",
                find(&r->t, p.rrn)->id, p.id, p.rrn);
        return 2;
    }
    r->c.posted++;
    return 0;
}

/* Counts one more transfer; 2 (said on err) past the limit. */
static int add_counted(run_t *r, const char *id, const char *debit, const char *credit,
                       int64_t amount, const char *cur)
{
    if (r->c.posted >= COFRE_RECONCILE_TRANSFERS_MAX) {
        fprintf(r->cfg->err, "reconcile: more than %d transfers\n", COFRE_RECONCILE_TRANSFERS_MAX);
        return 2;
    }
    return add_posted(r, id, debit, credit, amount, cur);
}

/* Runs the queued statements of one round; says why on err when it fails. */
static int pg_round(run_t *r, cofre_pg_t *pg)
{
    int rc = cofre_pg_exchange(pg, false);
    if (rc != 0)
        fprintf(r->cfg->err,
                "reconcile: reading the transfers of the core's PostgreSQL "
                "database failed (%s)\n",
                cofre_pg_sqlstate(pg)[0] != '\0' ? cofre_pg_sqlstate(pg) : cofre_strerror(rc));
    return rc == 0 ? 0 : 2;
}

/* The core's transfers through a cursor in one read-only transaction, FETCH_ROWS at a time. */
static int read_ledger_pg(run_t *r, const char *url)
{
    if (cofre_pq_load() != 0) {
        fprintf(r->cfg->err, "reconcile: a PostgreSQL --core-db needs libpq.so.5\n");
        return 2;
    }
    cofre_pg_t *pg = cofre_pg_new(&(cofre_pg_config_t){.url = url,
                                                       .application_name = "cofre-legacy reconcile",
                                                       .pipeline = true,
                                                       .round_timeout_ms = 600000});
    cofre_pg_add(pg, "BEGIN READ ONLY", NULL, 0);
    cofre_pg_add(pg,
                 "DECLARE posted NO SCROLL CURSOR FOR SELECT id::text, debit_account_id::text, "
                 "credit_account_id::text, amount, currency FROM transfers ORDER BY seq",
                 NULL, 0);
    int rc = pg_round(r, pg);
    for (bool more = rc == 0; more;) {
        cofre_pg_add(pg, "FETCH " FETCH_ROWS " FROM posted", NULL, 0);
        rc = pg_round(r, pg);
        const PGresult *res = rc == 0 ? cofre_pg_result(pg, 0) : NULL;
        int rows = res != NULL ? PQntuples(res) : 0;
        for (int i = 0; rc == 0 && i < rows; i++)
            rc = add_counted(r, PQgetvalue(res, i, 0), PQgetvalue(res, i, 1), PQgetvalue(res, i, 2),
                             cofre_pg_int64(res, i, 3), PQgetvalue(res, i, 4));
        more = rc == 0 && rows == atoi(FETCH_ROWS);
    }
    cofre_pg_free(pg); /* the read-only transaction ends with the connection */
    return rc;
}

static int read_ledger(run_t *r)
{
    cofre_db_kind_t kind;
    const char *path;
    if (cofre_db_parse_url(r->cfg->core_db, &kind, &path) != 0) {
        fprintf(r->cfg->err,
                "reconcile: --core-db must be sqlite:PATH or postgres://... (got "
                "%s)\n",
                r->cfg->core_db);
        return 2;
    }
    if (kind == COFRE_DB_POSTGRES)
        return read_ledger_pg(r, path);
    sqlite3 *db = cofre_db_sqlite_open(path, true, 8192);
    sqlite3_stmt *st = NULL;
    if (db == NULL ||
        sqlite3_prepare_v2(db,
                           "SELECT id, debit_account_id, credit_account_id, amount, currency"
                           " FROM transfers ORDER BY seq",
                           -1, &st, NULL) != SQLITE_OK) {
        fprintf(r->cfg->err, "reconcile: cannot read the transfers of %s: %s\n", path,
                db != NULL ? sqlite3_errmsg(db) : "cannot open");
        sqlite3_close(db);
        return 2;
    }
    int rc = 0, step;
    while (rc == 0 && (step = sqlite3_step(st)) == SQLITE_ROW)
        rc = add_counted(r, (const char *)sqlite3_column_text(st, 0),
                         (const char *)sqlite3_column_text(st, 1),
                         (const char *)sqlite3_column_text(st, 2), sqlite3_column_int64(st, 3),
                         (const char *)sqlite3_column_text(st, 4));
    if (rc == 0 && step != SQLITE_DONE) {
        fprintf(r->cfg->err, "reconcile: reading %s failed: %s\n", path, sqlite3_errmsg(db));
        rc = 2;
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return rc;
}

/* ---- the adapter's store ----------------------------------------------------------------- */

static int note_delivery(const cofre_adapter_delivery_t *d, void *data)
{
    run_t *r = data;
    posted_t *e = find(&r->t, d->t.rrn);
    if (e != NULL)
        snprintf(e->adapter_state, sizeof(e->adapter_state), "%s",
                 cofre_delivery_state_name(d->state));
    return 0;
}

static int read_adapter(run_t *r)
{
    if (r->cfg->adapter_db == NULL)
        return 0;
    cofre_adapter_store_t *s = NULL;
    if (cofre_adapter_store_open(r->cfg->adapter_db, true, &s) != 0) {
        fprintf(r->cfg->err, "reconcile: cannot read the adapter store %s\n", r->cfg->adapter_db);
        return 2;
    }
    int rc = cofre_adapter_store_each(s, note_delivery, r);
    cofre_adapter_store_close(s);
    if (rc != 0)
        fprintf(r->cfg->err, "reconcile: reading the adapter store failed\n");
    return rc == 0 ? 0 : 2;
}

/* ---- the host ---------------------------------------------------------------------------- */

static const char *jstr(const json_t *o, const char *k)
{
    const json_t *v = json_object_get(o, k);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static void begin_difference(run_t *r, const char *kind, const char *rrn, const posted_t *p)
{
    cofre_jbuf_obj_begin(&r->line);
    cofre_jbuf_kstr(&r->line, "difference", kind);
    cofre_jbuf_kstr(&r->line, "rrn", rrn);
    if (p != NULL) {
        cofre_jbuf_kstr(&r->line, "transfer_id", p->id);
        cofre_jbuf_kint(&r->line, "amount", p->amount);
        cofre_jbuf_kstr(&r->line, "currency", p->currency);
    }
}

static void compare(run_t *r, posted_t *p, const json_t *rec)
{
    const char *cur = jstr(rec, "currency"), *debit = jstr(rec, "debit_account"),
               *credit = jstr(rec, "credit_account");
    const json_t *amount = json_object_get(rec, "amount");
    const char *bad[4];
    size_t nbad = 0;
    if (!json_is_integer(amount) || json_integer_value(amount) != p->amount)
        bad[nbad++] = "amount";
    if (cur == NULL || strcmp(cur, p->currency) != 0)
        bad[nbad++] = "currency";
    if (debit == NULL || strcmp(debit, p->debit) != 0)
        bad[nbad++] = "debit_account";
    if (credit != NULL && strcmp(credit, p->credit) != 0)
        bad[nbad++] = "credit_account";
    if (nbad == 0) {
        r->c.matched++;
        return;
    }
    r->c.mismatched++;
    begin_difference(r, "mismatch", p->rrn, p);
    cofre_jbuf_key(&r->line, "fields");
    cofre_jbuf_arr_begin(&r->line);
    for (size_t i = 0; i < nbad; i++)
        cofre_jbuf_str(&r->line, bad[i]);
    cofre_jbuf_arr_end(&r->line);
    cofre_jbuf_obj_end(&r->line);
    emit(r);
}

/* One host record. Returns 0, or 2 when it is not a ledger record. */
static int host_record(run_t *r, const json_t *rec)
{
    const char *rrn = jstr(rec, "rrn"), *state = jstr(rec, "state");
    if (rrn == NULL || state == NULL || strlen(rrn) != COFRE_LINK_RRN_LEN)
        return 2;
    r->c.host_records++;
    posted_t *p = find(&r->t, rrn);
    if (strcmp(state, "approved") != 0) {
        if (p != NULL && p->host_state[0] == '\0')
            snprintf(p->host_state, sizeof(p->host_state), "%s", state);
        return 0;
    }
    r->c.host_applied++;
    if (p == NULL) {
        r->c.unexpected++;
        begin_difference(r, "unexpected", rrn, NULL);
        const json_t *amount = json_object_get(rec, "amount");
        if (json_is_integer(amount))
            cofre_jbuf_kint(&r->line, "amount", (int64_t)json_integer_value(amount));
        cofre_jbuf_kstr(&r->line, "currency", jstr(rec, "currency"));
        cofre_jbuf_obj_end(&r->line);
        emit(r);
    } else if (strcmp(p->host_state, "approved") == 0) {
        r->c.duplicates++;
        begin_difference(r, "duplicate", rrn, p);
        cofre_jbuf_obj_end(&r->line);
        emit(r);
    } else {
        snprintf(p->host_state, sizeof(p->host_state), "approved");
        compare(r, p, rec);
    }
    return 0;
}

static int read_host(run_t *r)
{
    bool stdin_in = strcmp(r->cfg->host_ledger, "-") == 0;
    FILE *f = stdin_in ? stdin : fopen(r->cfg->host_ledger, "r");
    if (f == NULL) {
        fprintf(r->cfg->err, "reconcile: cannot open %s\n", r->cfg->host_ledger);
        return 2;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t len;
    int rc = 0;
    unsigned long lineno = 0;
    while (rc == 0 && (len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        if (len == 0 || (len == 1 && line[0] == '\n'))
            continue;
        json_t *rec =
            len <= COFRE_RECONCILE_LINE_MAX ? json_loadb(line, (size_t)len, 0, NULL) : NULL;
        rc = json_is_object(rec) ? host_record(r, rec) : 2;
        json_decref(rec);
        if (rc != 0)
            fprintf(r->cfg->err, "reconcile: %s line %lu is not a host ledger record\n",
                    r->cfg->host_ledger, lineno);
    }
    free(line);
    if (!stdin_in)
        fclose(f);
    return rc;
}

/* ---- report ------------------------------------------------------------------------------ */

static void report_missing(run_t *r)
{
    if (r->t.v == NULL)
        return; /* the ledger posted nothing */
    for (size_t i = 0; i < r->t.n; i++) {
        posted_t *p = &r->t.v[i];
        if (strcmp(p->host_state, "approved") == 0)
            continue;
        r->c.missing++;
        begin_difference(r, "missing", p->rrn, p);
        cofre_jbuf_kstr(&r->line, "host_state", p->host_state[0] != '\0' ? p->host_state : NULL);
        if (r->cfg->adapter_db != NULL)
            cofre_jbuf_kstr(&r->line, "adapter_state",
                            p->adapter_state[0] != '\0' ? p->adapter_state : NULL);
        cofre_jbuf_obj_end(&r->line);
        emit(r);
    }
}

static bool report_summary(run_t *r)
{
    const counts_t *c = &r->c;
    bool ok = c->missing + c->unexpected + c->mismatched + c->duplicates == 0;
    cofre_jbuf_obj_begin(&r->line);
    cofre_jbuf_key(&r->line, "summary");
    cofre_jbuf_obj_begin(&r->line);
    cofre_jbuf_kuint(&r->line, "ledger_posted", c->posted);
    cofre_jbuf_kuint(&r->line, "host_records", c->host_records);
    cofre_jbuf_kuint(&r->line, "host_applied", c->host_applied);
    cofre_jbuf_kuint(&r->line, "matched", c->matched);
    cofre_jbuf_kuint(&r->line, "missing", c->missing);
    cofre_jbuf_kuint(&r->line, "unexpected", c->unexpected);
    cofre_jbuf_kuint(&r->line, "mismatched", c->mismatched);
    cofre_jbuf_kuint(&r->line, "duplicates", c->duplicates);
    cofre_jbuf_kbool(&r->line, "ok", ok);
    cofre_jbuf_obj_end(&r->line);
    cofre_jbuf_obj_end(&r->line);
    emit(r);
    return ok;
}

int cofre_adapter_reconcile_run(const cofre_adapter_reconcile_config_t *cfg)
{
    run_t r = {.cfg = cfg};
    cofre_jbuf_init(&r.line);
    int rc = read_ledger(&r);
    rc = rc != 0 ? rc : read_adapter(&r);
    rc = rc != 0 ? rc : read_host(&r);
    if (rc == 0) {
        report_missing(&r);
        rc = report_summary(&r) ? 0 : 1;
    }
    fflush(cfg->out);
    cofre_jbuf_release(&r.line);
    free(r.t.v);
    free(r.t.idx);
    return rc;
}
