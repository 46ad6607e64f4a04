/*
 * test_adapter_reconcile.c: `cofre-legacy reconcile`: a ledger and a host ledger that agree
 * give exit 0 and a summary; each kind of difference (missing, with the host's and the
 * adapter's state; unexpected; mismatch naming the fields; duplicate) is reported and gives 1;
 * unreadable inputs give 2.
 */
#include "unit.h"

#include "cofre/common.h"
#include "cofre/log.h"
#include "legacy/adapter_reconcile.h"
#include "legacy/adapter_store.h"
#include "legacy/link.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define N 6

static char dir[64], core_url[128], host_path[128], adapter_url[128];

static void id_of(char out[37], int kind, int i)
{
    snprintf(out, 37, "00000000-0000-4000-8000-%d%011d", kind, i);
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/cofre-test-reconcile-XXXXXX");
    if (mkdtemp(dir) == NULL)
        return -1;
    cofre_log_set_fd(open("/dev/null", O_WRONLY));
    snprintf(core_url, sizeof(core_url), "sqlite:%s/core.db", dir);
    snprintf(host_path, sizeof(host_path), "%s/host.jsonl", dir);
    snprintf(adapter_url, sizeof(adapter_url), "sqlite:%s/legacy.db", dir);
    sqlite3 *db;
    if (sqlite3_open(core_url + 7, &db) != SQLITE_OK)
        return -1;
    sqlite3_exec(db,
                 "CREATE TABLE transfers (seq INTEGER PRIMARY KEY, id TEXT, debit_account_id TEXT,"
                 " credit_account_id TEXT, amount INTEGER, currency TEXT)",
                 NULL, NULL, NULL);
    for (int i = 0; i < N; i++) {
        char tid[37], did[37], cid[37], sql[512];
        id_of(tid, 0, i);
        id_of(did, 1, i);
        id_of(cid, 2, i);
        snprintf(sql, sizeof(sql),
                 "INSERT INTO transfers (id, debit_account_id, credit_account_id, amount,"
                 " currency) VALUES ('%s', '%s', '%s', %d, 'BRL')",
                 tid, did, cid, 100 + i);
        sqlite3_exec(db, sql, NULL, NULL, NULL);
    }
    sqlite3_close(db);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd);
}

/* Writes the host line of transfer i, with state and amount as given. */
static void host_line(FILE *f, int i, const char *state, int amount, const char *currency)
{
    char tid[37], did[37], cid[37], rrn[13], debit[20], credit[20];
    id_of(tid, 0, i);
    id_of(did, 1, i);
    id_of(cid, 2, i);
    cofre_link_rrn(tid, 36, rrn);
    cofre_link_account_number(did, 36, debit);
    cofre_link_account_number(cid, 36, credit);
    fprintf(f,
            "{\"rrn\":\"%s\",\"state\":\"%s\",\"response_code\":\"00\",\"amount\":%d,"
            "\"currency\":\"%s\",\"processing_code\":\"400000\",\"debit_account\":\"%s\","
            "\"credit_account\":\"%s\",\"applications\":1,\"reversals\":0}\n",
            rrn, state, amount, currency, debit, credit);
}

/* Runs reconcile, capturing its output. */
static int run(const char *adapter, char *out, size_t cap)
{
    FILE *o = tmpfile(), *e = tmpfile();
    cofre_adapter_reconcile_config_t cfg = {
        .core_db = core_url, .host_ledger = host_path, .adapter_db = adapter, .out = o, .err = e};
    int rc = cofre_adapter_reconcile_run(&cfg);
    rewind(o);
    size_t n = fread(out, 1, cap - 1, o);
    out[n] = '\0';
    fclose(o);
    fclose(e);
    return rc;
}

static void agreement_exits_zero(void **state)
{
    (void)state;
    FILE *f = fopen(host_path, "w");
    for (int i = N; i-- > 0;) /* order does not matter */
        host_line(f, i, "approved", 100 + i, "BRL");
    fclose(f);
    char out[8192];
    assert_int_equal(run(NULL, out, sizeof(out)), 0);
    assert_non_null(strstr(out, "\"ledger_posted\":6"));
    assert_non_null(strstr(out, "\"matched\":6"));
    assert_non_null(strstr(out, "\"ok\":true"));
    assert_null(strstr(out, "difference"));
}

static void differences_are_reported(void **state)
{
    (void)state;
    FILE *f = fopen(host_path, "w");
    host_line(f, 0, "approved", 100, "BRL");
    host_line(f, 1, "reversed", 101, "BRL"); /* not in effect: missing */
    host_line(f, 2, "approved", 999, "BRL"); /* amount differs */
    host_line(f, 3, "approved", 103, "EUR"); /* currency differs */
    host_line(f, 4, "approved", 104, "BRL");
    host_line(f, 4, "approved", 104, "BRL"); /* listed twice */
    host_line(f, 77, "approved", 5, "BRL");  /* the ledger never posted it */
    host_line(f, 78, "declined", 5, "BRL");  /* not applied: no difference */
    fclose(f);                               /* 5: absent at the host */
    char out[8192];
    assert_int_equal(run(NULL, out, sizeof(out)), 1);
    assert_non_null(strstr(out, "\"difference\":\"mismatch\""));
    assert_non_null(strstr(out, "\"fields\":[\"amount\"]"));
    assert_non_null(strstr(out, "\"fields\":[\"currency\"]"));
    assert_non_null(strstr(out, "\"difference\":\"duplicate\""));
    assert_non_null(strstr(out, "\"difference\":\"unexpected\""));
    assert_non_null(strstr(out, "\"host_state\":\"reversed\""));
    assert_non_null(strstr(out, "\"host_state\":null"));
    assert_non_null(
        strstr(out, "\"missing\":2,\"unexpected\":1,\"mismatched\":2,\"duplicates\":1"));
    assert_non_null(strstr(out, "\"ok\":false"));
    /* No account number appears in the report. */
    char did[37], num[20];
    id_of(did, 1, 2);
    cofre_link_account_number(did, 36, num);
    assert_null(strstr(out, num));
}

static void adapter_state_explains_missing(void **state)
{
    (void)state;
    cofre_adapter_store_t *s = NULL;
    assert_int_equal(cofre_adapter_store_open(adapter_url, false, &s), 0);
    cofre_adapter_transfer_t t = {.amount_minor = 105, .partition = -1};
    id_of(t.transfer_id, 0, 5);
    id_of(t.debit_account_id, 1, 5);
    id_of(t.credit_account_id, 2, 5);
    snprintf(t.currency, sizeof(t.currency), "BRL");
    snprintf(t.event_id, sizeof(t.event_id), "e5");
    cofre_link_rrn(t.transfer_id, 36, t.rrn);
    size_t inserted;
    assert_int_equal(cofre_adapter_store_enqueue(s, &t, 1, NULL, 0, &inserted), 0);
    cofre_adapter_store_close(s);
    FILE *f = fopen(host_path, "w");
    for (int i = 0; i < N - 1; i++)
        host_line(f, i, "approved", 100 + i, "BRL");
    fclose(f);
    char out[8192];
    assert_int_equal(run(adapter_url, out, sizeof(out)), 1);
    assert_non_null(strstr(out, "\"difference\":\"missing\""));
    assert_non_null(strstr(out, "\"adapter_state\":\"pending\""));
}

static void unreadable_inputs_exit_two(void **state)
{
    (void)state;
    char out[8192];
    FILE *f = fopen(host_path, "w");
    fprintf(f, "{\"rrn\":\"short\",\"state\":\"approved\"}\n");
    fclose(f);
    assert_int_equal(run(NULL, out, sizeof(out)), 2);
    f = fopen(host_path, "w");
    fprintf(f, "not json\n");
    fclose(f);
    assert_int_equal(run(NULL, out, sizeof(out)), 2);
    unlink(host_path);
    assert_int_equal(run(NULL, out, sizeof(out)), 2);
    f = fopen(host_path, "w");
    fclose(f);
    char saved[128];
    snprintf(saved, sizeof(saved), "%s", core_url);
    snprintf(core_url, sizeof(core_url), "sqlite:%s/nothing.db", dir);
    assert_int_equal(run(NULL, out, sizeof(out)), 2);
    snprintf(core_url, sizeof(core_url), "postgres://localhost/core");
    assert_int_equal(run(NULL, out, sizeof(out)), 2);
    snprintf(core_url, sizeof(core_url), "%s", saved);
    /* An empty host ledger is readable: every posted transfer is missing. */
    assert_int_equal(run(NULL, out, sizeof(out)), 1);
    assert_non_null(strstr(out, "\"missing\":6"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(agreement_exits_zero),
        cmocka_unit_test(differences_are_reported),
        cmocka_unit_test(adapter_state_explains_missing),
        cmocka_unit_test(unreadable_inputs_exit_two),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
