/*
 * sim_ledger.c: the simulated host's SQLite ledger (see sim_ledger.h).
 */
#include "legacy/sim_ledger.h"

#include "cofre/common.h"
#include "cofre/db.h"
#include "cofre/jbuf.h"
#include "cofre/log.h"

#include <stdlib.h>
#include <string.h>

#define LEDGER_CACHE_KIB 8192

struct cofre_sim_ledger {
    sqlite3 *db;
    sqlite3_stmt *get;
    sqlite3_stmt *put;
    sqlite3_stmt *journal;
    sqlite3_stmt *begin;
    sqlite3_stmt *commit;
    sqlite3_stmt *rollback;
};

static const char schema[] =
    "CREATE TABLE IF NOT EXISTS sim_rrn ("
    " rrn TEXT PRIMARY KEY,"
    " state INTEGER NOT NULL,"
    " response_code TEXT NOT NULL,"
    " auth_id TEXT NOT NULL,"
    " amount INTEGER NOT NULL,"
    " currency TEXT NOT NULL,"
    " processing_code TEXT NOT NULL,"
    " debit_account TEXT NOT NULL,"
    " credit_account TEXT NOT NULL,"
    " terminal TEXT NOT NULL,"
    " stan TEXT NOT NULL,"
    " transmission_time TEXT NOT NULL,"
    " applications INTEGER NOT NULL,"
    " reversals INTEGER NOT NULL,"
    " duplicates INTEGER NOT NULL,"
    " created_us INTEGER NOT NULL,"
    " updated_us INTEGER NOT NULL) WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS sim_rrn_created ON sim_rrn (created_us, rrn);"
    "CREATE TABLE IF NOT EXISTS sim_journal ("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    " at_us INTEGER NOT NULL,"
    " rrn TEXT NOT NULL,"
    " kind TEXT NOT NULL,"
    " response_code TEXT NOT NULL,"
    " amount INTEGER NOT NULL,"
    " currency TEXT NOT NULL,"
    " stan TEXT NOT NULL);";

#define RECORD_COLUMNS                                                                             \
    "rrn, state, response_code, auth_id, amount, currency, processing_code, debit_account,"        \
    " credit_account, terminal, stan, transmission_time, applications, reversals, duplicates,"     \
    " created_us, updated_us"

const char *cofre_sim_state_name(cofre_sim_state_t s)
{
    switch (s) {
    case COFRE_SIM_APPROVED:
        return "approved";
    case COFRE_SIM_DECLINED:
        return "declined";
    case COFRE_SIM_REVERSED:
        return "reversed";
    }
    return "unknown";
}

static void prepare_all(cofre_sim_ledger_t *l, bool readonly)
{
    l->get =
        cofre_db_sqlite_prepare(l->db, "SELECT " RECORD_COLUMNS " FROM sim_rrn WHERE rrn = ?1");
    if (readonly)
        return;
    l->put = cofre_db_sqlite_prepare(
        l->db, "INSERT OR REPLACE INTO sim_rrn (" RECORD_COLUMNS ") VALUES (?1, ?2, ?3, ?4, ?5,"
               " ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)");
    l->journal = cofre_db_sqlite_prepare(
        l->db, "INSERT INTO sim_journal (at_us, rrn, kind, response_code, amount, currency, stan)"
               " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)");
    l->begin = cofre_db_sqlite_prepare(l->db, "BEGIN IMMEDIATE");
    l->commit = cofre_db_sqlite_prepare(l->db, "COMMIT");
    l->rollback = cofre_db_sqlite_prepare(l->db, "ROLLBACK");
}

cofre_sim_ledger_t *cofre_sim_ledger_open(const char *path, bool readonly, bool sync_full)
{
    sqlite3 *db = cofre_db_sqlite_open(path, readonly, LEDGER_CACHE_KIB);
    if (db == NULL)
        return NULL;
    if (!readonly && (cofre_db_sqlite_exec(db, schema) != 0 ||
                      (!sync_full && cofre_db_sqlite_exec(db, "PRAGMA synchronous=NORMAL") != 0))) {
        sqlite3_close(db);
        return NULL;
    }
    if (readonly && cofre_db_sqlite_exec(db, "SELECT 1 FROM sim_rrn LIMIT 0") != 0) {
        sqlite3_close(db); /* not a simulator ledger */
        return NULL;
    }
    cofre_sim_ledger_t *l = cofre_calloc(1, sizeof(*l));
    l->db = db;
    prepare_all(l, readonly);
    return l;
}

void cofre_sim_ledger_free(cofre_sim_ledger_t *l)
{
    if (l == NULL)
        return;
    sqlite3_stmt *stmts[] = {l->get, l->put, l->journal, l->begin, l->commit, l->rollback};
    for (size_t i = 0; i < COFRE_ARRAY_SIZE(stmts); i++)
        sqlite3_finalize(stmts[i]);
    sqlite3_close(l->db);
    free(l);
}

/* Steps a statement that returns no row, resets it, logs a failure. */
static int step_done(cofre_sim_ledger_t *l, sqlite3_stmt *s, const char *what)
{
    int rc = sqlite3_step(s);
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    if (rc != SQLITE_DONE) {
        COFRE_LOG(COFRE_LOG_ERROR, NULL, "simulator ledger write failed", COFRE_LF_STR("op", what),
                  COFRE_LF_STR("error", sqlite3_errmsg(l->db)));
        return COFRE_EIO;
    }
    return 0;
}

int cofre_sim_ledger_begin(cofre_sim_ledger_t *l)
{
    return step_done(l, l->begin, "begin");
}

int cofre_sim_ledger_commit(cofre_sim_ledger_t *l)
{
    return step_done(l, l->commit, "commit");
}

void cofre_sim_ledger_rollback(cofre_sim_ledger_t *l)
{
    if (!sqlite3_get_autocommit(l->db))
        (void)step_done(l, l->rollback, "rollback");
}

static void column_text(sqlite3_stmt *s, int col, char *out, size_t cap)
{
    const unsigned char *v = sqlite3_column_text(s, col);
    size_t n = v == NULL ? 0 : strnlen((const char *)v, cap - 1);
    if (n > 0)
        memcpy(out, v, n);
    out[n] = '\0';
}

static void read_record(sqlite3_stmt *s, cofre_sim_record_t *r)
{
    memset(r, 0, sizeof(*r));
    column_text(s, 0, r->rrn, sizeof(r->rrn));
    r->state = (cofre_sim_state_t)sqlite3_column_int(s, 1);
    column_text(s, 2, r->response_code, sizeof(r->response_code));
    column_text(s, 3, r->auth_id, sizeof(r->auth_id));
    r->amount_minor = (uint64_t)sqlite3_column_int64(s, 4);
    column_text(s, 5, r->currency, sizeof(r->currency));
    column_text(s, 6, r->processing_code, sizeof(r->processing_code));
    column_text(s, 7, r->debit_account, sizeof(r->debit_account));
    column_text(s, 8, r->credit_account, sizeof(r->credit_account));
    column_text(s, 9, r->terminal, sizeof(r->terminal));
    column_text(s, 10, r->stan, sizeof(r->stan));
    column_text(s, 11, r->transmission_time, sizeof(r->transmission_time));
    r->applications = sqlite3_column_int64(s, 12);
    r->reversals = sqlite3_column_int64(s, 13);
    r->duplicates = sqlite3_column_int64(s, 14);
    r->created_us = (uint64_t)sqlite3_column_int64(s, 15);
    r->updated_us = (uint64_t)sqlite3_column_int64(s, 16);
}

int cofre_sim_ledger_get(cofre_sim_ledger_t *l, const char *rrn, cofre_sim_record_t *rec)
{
    sqlite3_bind_text(l->get, 1, rrn, -1, SQLITE_STATIC);
    int rc = sqlite3_step(l->get);
    if (rc == SQLITE_ROW)
        read_record(l->get, rec);
    sqlite3_reset(l->get);
    sqlite3_clear_bindings(l->get);
    if (rc == SQLITE_ROW)
        return 0;
    if (rc == SQLITE_DONE)
        return COFRE_ENOENT;
    COFRE_LOG(COFRE_LOG_ERROR, NULL, "simulator ledger read failed",
              COFRE_LF_STR("error", sqlite3_errmsg(l->db)));
    return COFRE_EIO;
}

int cofre_sim_ledger_put(cofre_sim_ledger_t *l, const cofre_sim_record_t *r)
{
    sqlite3_stmt *s = l->put;
    COFRE_ASSERT(s != NULL);
    const char *texts[] = {r->rrn,
                           NULL,
                           r->response_code,
                           r->auth_id,
                           NULL,
                           r->currency,
                           r->processing_code,
                           r->debit_account,
                           r->credit_account,
                           r->terminal,
                           r->stan,
                           r->transmission_time};
    for (int i = 0; i < (int)COFRE_ARRAY_SIZE(texts); i++) {
        if (texts[i] != NULL)
            sqlite3_bind_text(s, i + 1, texts[i], -1, SQLITE_STATIC);
    }
    sqlite3_bind_int(s, 2, (int)r->state);
    sqlite3_bind_int64(s, 5, (sqlite3_int64)r->amount_minor);
    sqlite3_bind_int64(s, 13, r->applications);
    sqlite3_bind_int64(s, 14, r->reversals);
    sqlite3_bind_int64(s, 15, r->duplicates);
    sqlite3_bind_int64(s, 16, (sqlite3_int64)r->created_us);
    sqlite3_bind_int64(s, 17, (sqlite3_int64)r->updated_us);
    return step_done(l, s, "put");
}

int cofre_sim_ledger_journal(cofre_sim_ledger_t *l, const cofre_sim_record_t *rec, const char *kind,
                             const char *code, const char *stan, int64_t *seq)
{
    sqlite3_stmt *s = l->journal;
    COFRE_ASSERT(s != NULL);
    sqlite3_bind_int64(s, 1, (sqlite3_int64)cofre_now_wall_us());
    sqlite3_bind_text(s, 2, rec->rrn, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, kind, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 4, code, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 5, (sqlite3_int64)rec->amount_minor);
    sqlite3_bind_text(s, 6, rec->currency, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 7, stan, -1, SQLITE_STATIC);
    int rc = step_done(l, s, "journal");
    if (rc == 0 && seq != NULL)
        *seq = sqlite3_last_insert_rowid(l->db);
    return rc;
}

static void time_field(cofre_jbuf_t *b, const char *key, uint64_t us)
{
    char ts[COFRE_TIME_LEN + 1];
    cofre_time_format(us, ts);
    cofre_jbuf_kstr(b, key, ts);
}

static void record_json(cofre_jbuf_t *b, const cofre_sim_record_t *r)
{
    cofre_jbuf_obj_begin(b);
    cofre_jbuf_kstr(b, "rrn", r->rrn);
    cofre_jbuf_kstr(b, "state", cofre_sim_state_name(r->state));
    cofre_jbuf_kstr(b, "response_code", r->response_code);
    cofre_jbuf_kstr(b, "auth_id", r->auth_id);
    cofre_jbuf_kuint(b, "amount", r->amount_minor);
    cofre_jbuf_kstr(b, "currency", r->currency);
    cofre_jbuf_kstr(b, "processing_code", r->processing_code);
    cofre_jbuf_kstr(b, "debit_account", r->debit_account);
    cofre_jbuf_kstr(b, "credit_account", r->credit_account);
    cofre_jbuf_kstr(b, "terminal", r->terminal);
    cofre_jbuf_kstr(b, "stan", r->stan);
    cofre_jbuf_kstr(b, "transmission_time", r->transmission_time);
    cofre_jbuf_kint(b, "applications", r->applications);
    cofre_jbuf_kint(b, "reversals", r->reversals);
    cofre_jbuf_kint(b, "duplicates", r->duplicates);
    time_field(b, "created_at", r->created_us);
    time_field(b, "updated_at", r->updated_us);
    cofre_jbuf_obj_end(b);
}

static void journal_json(cofre_jbuf_t *b, sqlite3_stmt *s)
{
    cofre_jbuf_obj_begin(b);
    cofre_jbuf_kint(b, "seq", sqlite3_column_int64(s, 0));
    time_field(b, "at", (uint64_t)sqlite3_column_int64(s, 1));
    cofre_jbuf_kstr(b, "rrn", (const char *)sqlite3_column_text(s, 2));
    cofre_jbuf_kstr(b, "kind", (const char *)sqlite3_column_text(s, 3));
    cofre_jbuf_kstr(b, "response_code", (const char *)sqlite3_column_text(s, 4));
    cofre_jbuf_kint(b, "amount", sqlite3_column_int64(s, 5));
    cofre_jbuf_kstr(b, "currency", (const char *)sqlite3_column_text(s, 6));
    cofre_jbuf_kstr(b, "stan", (const char *)sqlite3_column_text(s, 7));
    cofre_jbuf_obj_end(b);
}

int cofre_sim_ledger_print(cofre_sim_ledger_t *l, FILE *out, bool journal)
{
    const char *sql = journal ? "SELECT seq, at_us, rrn, kind, response_code, amount, currency,"
                                " stan FROM sim_journal ORDER BY seq"
                              : "SELECT " RECORD_COLUMNS " FROM sim_rrn ORDER BY created_us, rrn";
    sqlite3_stmt *s = cofre_db_sqlite_prepare(l->db, sql);
    cofre_jbuf_t b;
    cofre_jbuf_init(&b);
    cofre_sim_record_t r;
    int rc;
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        cofre_jbuf_reset(&b);
        if (journal) {
            journal_json(&b, s);
        } else {
            read_record(s, &r);
            record_json(&b, &r);
        }
        cofre_jbuf_append(&b, "\n", 1);
        fwrite(b.data, 1, b.len, out);
    }
    cofre_jbuf_release(&b);
    sqlite3_finalize(s);
    if (rc != SQLITE_DONE) {
        COFRE_LOG(COFRE_LOG_ERROR, NULL, "simulator ledger read failed",
                  COFRE_LF_STR("error", sqlite3_errmsg(l->db)));
        return COFRE_EIO;
    }
    return fflush(out) == 0 ? 0 : COFRE_EIO;
}
