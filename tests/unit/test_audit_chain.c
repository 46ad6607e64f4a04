/*
 * test_audit_chain.c: the audit store, signed checkpoints and the verifier together, on a real
 * SQLite file: appends chain and dedup; SQL cannot change or delete records; and each kind of
 * tampering (done as an attacker with the file would: triggers dropped first) is caught with the
 * first bad record named: a changed amount, a deleted record, two records swapped, a record
 * inserted, the chain rewritten and rehashed, the tail cut off behind a checkpoint, a forged
 * checkpoint.
 */
#include "unit.h"

#include "audit/keys.h"
#include "audit/store.h"
#include "audit/verify.h"
#include "cofre/common.h"
#include "cofre/log.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define RECORDS  40
#define CP_EVERY 10 /* checkpoints at 10, 20, 30, 40 */

typedef struct fixture {
    char dir[64];
    char path[96];
    char url[128];
    char keyfile[96];
    cofre_audit_keys_t keys;
    cofre_audit_store_t *store;
} fixture_t;

static void make_record(cofre_audit_record_t *r, size_t i, const char *event_id)
{
    memset(r, 0, sizeof(*r));
    char buf[64];
    snprintf(buf, sizeof(buf), "%s", event_id);
    r->f[COFRE_AUDIT_F_EVENT_ID] = cofre_strdup(buf);
    r->f[COFRE_AUDIT_F_TYPE] = cofre_strdup("cofre.transfer.posted");
    r->f[COFRE_AUDIT_F_SOURCE] = cofre_strdup("/cofre/core");
    snprintf(buf, sizeof(buf), "transfer-%zu", i);
    r->f[COFRE_AUDIT_F_SUBJECT] = cofre_strdup(buf);
    r->f[COFRE_AUDIT_F_RECORDED_AT] = cofre_strdup("2026-11-29T20:00:00Z");
    r->f[COFRE_AUDIT_F_OUTCOME] = cofre_strdup("success");
    r->f[COFRE_AUDIT_F_EVENT] = cofre_strdup("{}");
    r->has_amount = true;
    r->amount = (int64_t)(100 + i);
    r->partition = 0;
    r->offset = (int64_t)i;
}

static void append_one(fixture_t *f, size_t i, const char *event_id, int64_t want_seq)
{
    cofre_audit_record_t r;
    make_record(&r, i, event_id);
    int64_t head;
    uint8_t hash[COFRE_AUDIT_HASH_LEN];
    assert_int_equal(f->store->ops->append(f->store, &r, 1, &head, hash), 0);
    assert_int_equal(r.seq, want_seq);
    cofre_audit_record_release(&r);
}

static void checkpoint_head(fixture_t *f)
{
    cofre_audit_checkpoint_t cp = {0};
    assert_int_equal(f->store->ops->head(f->store, &cp.seq, cp.hash), 0);
    cofre_audit_checkpoint_sign(&f->keys, &cp);
    assert_int_equal(f->store->ops->checkpoint_add(f->store, &cp), 0);
}

static int setup(void **state)
{
    cofre_log_init("test_audit_chain", COFRE_LOG_ERROR);
    fixture_t *f = cofre_calloc(1, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/cofre-audit-test-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof(f->path), "%s/audit.db", f->dir);
    snprintf(f->url, sizeof(f->url), "sqlite:%s", f->path);
    snprintf(f->keyfile, sizeof(f->keyfile), "%s/audit.key", f->dir);
    char pub[65];
    assert_int_equal(cofre_audit_keys_init(&f->keys), 0);
    assert_int_equal(cofre_audit_keys_generate(f->keyfile, pub), 0);
    assert_int_equal(cofre_audit_keys_load(&f->keys, f->keyfile), 0);
    assert_int_equal(cofre_audit_store_open(f->url, false, &f->store), 0);
    for (size_t i = 1; i <= RECORDS; i++) {
        char id[32];
        snprintf(id, sizeof(id), "event-%zu", i);
        append_one(f, i, id, (int64_t)i);
        if (i % CP_EVERY == 0)
            checkpoint_head(f);
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    cofre_audit_store_close(f->store);
    char cmd[160];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

/* Runs SQL on the file as an attacker would: with the append-only triggers dropped. */
static void tamper(fixture_t *f, const char *sql)
{
    sqlite3 *db;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    char *err = NULL;
    const char *drop = "DROP TRIGGER IF EXISTS audit_records_no_update;"
                       "DROP TRIGGER IF EXISTS audit_records_no_delete;"
                       "DROP TRIGGER IF EXISTS audit_checkpoints_no_delete;";
    if (sqlite3_exec(db, drop, NULL, NULL, &err) != SQLITE_OK ||
        sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK)
        fail_msg("tampering SQL failed: %s", err);
    sqlite3_close(db);
}

static void expect_bad(fixture_t *f, int64_t first_bad, const char *reason_part)
{
    cofre_audit_verdict_t v;
    assert_int_equal(cofre_audit_verify(f->store, &f->keys, &v), 0);
    if (v.ok)
        fail_msg("tampering went unnoticed (%lld records)", (long long)v.records);
    if (v.first_bad != first_bad || strstr(v.reason, reason_part) == NULL)
        fail_msg("first bad %lld (%s), want %lld (%s)", (long long)v.first_bad, v.reason,
                 (long long)first_bad, reason_part);
}

/* ---- tests ------------------------------------------------------------------------------- */

static void intact_trail_verifies(void **state)
{
    fixture_t *f = *state;
    cofre_audit_verdict_t v;
    assert_int_equal(cofre_audit_verify(f->store, &f->keys, &v), 0);
    assert_true(v.ok);
    assert_int_equal(v.records, RECORDS);
    assert_int_equal(v.checkpoints, RECORDS / CP_EVERY);
    assert_int_equal(v.last_checkpoint_seq, RECORDS);
    int64_t head;
    uint8_t hash[COFRE_AUDIT_HASH_LEN];
    assert_int_equal(f->store->ops->head(f->store, &head, hash), 0);
    assert_int_equal(head, RECORDS);
    assert_memory_equal(hash, v.head, sizeof(hash));
}

static void duplicates_are_skipped(void **state)
{
    fixture_t *f = *state;
    cofre_audit_record_t r[3];
    make_record(&r[0], 41, "event-7"); /* stored before */
    make_record(&r[1], 42, "event-new");
    make_record(&r[2], 43, "event-new"); /* earlier in the same batch */
    int64_t head;
    uint8_t hash[COFRE_AUDIT_HASH_LEN];
    assert_int_equal(f->store->ops->append(f->store, r, 3, &head, hash), 0);
    assert_int_equal(r[0].seq, 0);
    assert_int_equal(r[1].seq, RECORDS + 1);
    assert_int_equal(r[2].seq, 0);
    assert_int_equal(head, RECORDS + 1);
    for (int i = 0; i < 3; i++)
        cofre_audit_record_release(&r[i]);
    cofre_audit_verdict_t v;
    assert_int_equal(cofre_audit_verify(f->store, &f->keys, &v), 0);
    assert_true(v.ok);
    assert_int_equal(v.records, RECORDS + 1);
}

static void sql_cannot_change_or_delete(void **state)
{
    fixture_t *f = *state;
    sqlite3 *db;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    static const char *const attempts[] = {
        "UPDATE audit_records SET amount = 1 WHERE seq = 3",
        "DELETE FROM audit_records WHERE seq = 3",
        "UPDATE audit_checkpoints SET seq = 1",
        "DELETE FROM audit_checkpoints",
    };
    for (size_t i = 0; i < COFRE_ARRAY_SIZE(attempts); i++) {
        char *err = NULL;
        if (sqlite3_exec(db, attempts[i], NULL, NULL, &err) == SQLITE_OK)
            fail_msg("allowed: %s", attempts[i]);
        assert_non_null(strstr(err, "append-only"));
        sqlite3_free(err);
    }
    sqlite3_close(db);
}

static void changed_amount_is_caught(void **state)
{
    fixture_t *f = *state;
    tamper(f, "UPDATE audit_records SET amount = amount + 1 WHERE seq = 17");
    expect_bad(f, 17, "does not match its hash");
}

static void deleted_record_is_caught(void **state)
{
    fixture_t *f = *state;
    tamper(f, "DELETE FROM audit_records WHERE seq = 23");
    expect_bad(f, 23, "missing");
}

static void renumbered_deletion_is_caught(void **state)
{
    fixture_t *f = *state;
    tamper(f, "DELETE FROM audit_records WHERE seq = 23;"
              "UPDATE audit_records SET seq = seq - 1 WHERE seq > 23;");
    expect_bad(f, 23, "does not match its hash");
}

static void swapped_records_are_caught(void **state)
{
    fixture_t *f = *state;
    /* Every column but seq exchanged between records 12 and 13. */
    tamper(f, "UPDATE audit_records SET seq = -12 WHERE seq = 12;"
              "UPDATE audit_records SET seq = 12 WHERE seq = 13;"
              "UPDATE audit_records SET seq = 13 WHERE seq = -12;");
    expect_bad(f, 12, "does not match its hash");
}

static void inserted_record_is_caught(void **state)
{
    fixture_t *f = *state;
    tamper(f, "UPDATE audit_records SET seq = seq + 1000 WHERE seq >= 5;"
              "UPDATE audit_records SET seq = seq - 999 WHERE seq >= 1005;"
              "INSERT INTO audit_records (seq, event_id, type, source, recorded_at, outcome, "
              "event, amount, kafka_partition, kafka_offset, hash) VALUES (5, 'forged', "
              "'cofre.transfer.posted', '/cofre/core', '2026-11-29T20:00:00Z', 'success', '{}', "
              "1000000, 0, 0, zeroblob(32));");
    expect_bad(f, 5, "does not match its hash");
}

static void rehashed_rewrite_is_caught_by_the_checkpoint(void **state)
{
    fixture_t *f = *state;
    /* The attacker changes record 15 and recomputes every hash after it: the chain is whole
     * again, but no longer the one the checkpoint at 20 signed. */
    tamper(f, "UPDATE audit_records SET amount = 1 WHERE seq = 15");
    cofre_audit_record_t *page = cofre_calloc(RECORDS, sizeof(*page));
    size_t n = 0;
    assert_int_equal(f->store->ops->scan(f->store, 0, RECORDS, page, &n), 0);
    assert_int_equal(n, RECORDS);
    uint8_t prev[COFRE_AUDIT_HASH_LEN] = {0};
    sqlite3 *db;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    for (size_t i = 0; i < n; i++) {
        cofre_audit_record_hash(prev, &page[i], prev);
        sqlite3_stmt *st;
        sqlite3_prepare_v2(db, "UPDATE audit_records SET hash = ?1 WHERE seq = ?2", -1, &st, NULL);
        sqlite3_bind_blob(st, 1, prev, sizeof(prev), SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, page[i].seq);
        assert_int_equal(sqlite3_step(st), SQLITE_DONE);
        sqlite3_finalize(st);
        cofre_audit_record_release(&page[i]);
    }
    sqlite3_close(db);
    free(page);
    expect_bad(f, 11, "rewritten");
}

static void truncated_tail_behind_a_checkpoint_is_caught(void **state)
{
    fixture_t *f = *state;
    tamper(f, "DELETE FROM audit_records WHERE seq > 34");
    expect_bad(f, 35, "truncated");
}

static void forged_checkpoint_is_caught(void **state)
{
    fixture_t *f = *state;
    cofre_audit_keys_t other;
    char keyfile[128], pub[65];
    snprintf(keyfile, sizeof(keyfile), "%s/other.key", f->dir);
    assert_int_equal(cofre_audit_keys_init(&other), 0);
    assert_int_equal(cofre_audit_keys_generate(keyfile, pub), 0);
    assert_int_equal(cofre_audit_keys_load(&other, keyfile), 0);
    cofre_audit_checkpoint_t cp = {0};
    assert_int_equal(f->store->ops->head(f->store, &cp.seq, cp.hash), 0);
    cp.seq = 25;
    cofre_audit_checkpoint_sign(&other, &cp); /* a key the verifier does not trust */
    assert_int_equal(f->store->ops->checkpoint_add(f->store, &cp), 0);
    expect_bad(f, 25, "untrusted key");
}

static void keys_load_trust_and_refuse(void **state)
{
    fixture_t *f = *state;
    char pub[65];
    assert_int_equal(cofre_audit_keys_generate(f->keyfile, pub), COFRE_EEXIST);
    cofre_audit_keys_t k;
    assert_int_equal(cofre_audit_keys_init(&k), 0);
    assert_int_equal(cofre_audit_keys_load(&k, "/nonexistent/key"), COFRE_ENOENT);
    assert_int_equal(cofre_audit_keys_trust(&k, "abc"), COFRE_EINVAL);
    char hex[2 * COFRE_AUDIT_PUBKEY_LEN + 1];
    cofre_hex_encode(f->keys.public_key, COFRE_AUDIT_PUBKEY_LEN, hex);
    assert_int_equal(cofre_audit_keys_trust(&k, hex), 0);
    /* Verification with the public key alone (an auditor without the secret). */
    cofre_audit_verdict_t v;
    assert_int_equal(cofre_audit_verify(f->store, &k, &v), 0);
    assert_true(v.ok);
    struct stat st;
    assert_int_equal(stat(f->keyfile, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    cofre_jbuf_t b;
    cofre_jbuf_init(&b);
    cofre_audit_keys_json(&f->keys, &b);
    assert_non_null(strstr(b.data, hex));
    assert_non_null(strstr(b.data, "\"current\":true"));
    cofre_jbuf_release(&b);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(intact_trail_verifies),
        T(duplicates_are_skipped),
        T(sql_cannot_change_or_delete),
        T(changed_amount_is_caught),
        T(deleted_record_is_caught),
        T(renumbered_deletion_is_caught),
        T(swapped_records_are_caught),
        T(inserted_record_is_caught),
        T(rehashed_rewrite_is_caught_by_the_checkpoint),
        T(truncated_tail_behind_a_checkpoint_is_caught),
        T(forged_checkpoint_is_caught),
        T(keys_load_trust_and_refuse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
