/*
 * test_adapter_store.c: cofre-legacy's SQLite delivery store: enqueue is idempotent by
 * transfer id and dead-letter source; open deliveries load in order after a seq; "sent"
 * marks and final outcomes (with their dead letter, in the same transaction) survive a
 * reopen; dead letters are fetched until marked; the counts; the batch limits; a read-only
 * open of a file that is not a store fails cleanly; retention deletes old final rows and
 * published dead letters only, a bounded number at a time.
 */
#include "unit.h"

#include "cofre/common.h"
#include "cofre/log.h"
#include "legacy/adapter_store.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[64];
static char url[128];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/cofre-test-store-XXXXXX");
    if (mkdtemp(dir) == NULL)
        return -1;
    snprintf(url, sizeof(url), "sqlite:%s/legacy.db", dir);
    int fd = open("/dev/null", O_WRONLY);
    cofre_log_set_fd(fd); /* the store logs its failures; keep the test output clean */
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd);
}

static cofre_adapter_transfer_t transfer(int i)
{
    cofre_adapter_transfer_t t = {.amount_minor = 100 + i,
                                  .posted_at_us = 1795981431000000ull,
                                  .partition = i % 3,
                                  .offset = i};
    snprintf(t.event_id, sizeof(t.event_id), "ev-%d", i);
    snprintf(t.transfer_id, sizeof(t.transfer_id), "00000000-0000-4000-8000-%012d", i);
    snprintf(t.debit_account_id, sizeof(t.debit_account_id), "00000000-0000-4000-8000-1%011d", i);
    snprintf(t.credit_account_id, sizeof(t.credit_account_id), "00000000-0000-4000-8000-2%011d", i);
    snprintf(t.currency, sizeof(t.currency), "BRL");
    snprintf(t.rrn, sizeof(t.rrn), "RRN%09d", i);
    return t;
}

static cofre_adapter_store_t *open_store(void)
{
    cofre_adapter_store_t *s = NULL;
    assert_int_equal(cofre_adapter_store_open(url, false, &s), 0);
    return s;
}

static void enqueue_is_idempotent_and_ordered(void **state)
{
    (void)state;
    cofre_adapter_store_t *s = open_store();
    cofre_adapter_transfer_t ts[5];
    for (int i = 0; i < 5; i++)
        ts[i] = transfer(i);
    ts[2].traceparent[0] = '\0';
    snprintf(ts[1].traceparent, sizeof(ts[1].traceparent),
             "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
    cofre_adapter_dead_t dead = {.source_key = "kafka:t:0:9",
                                 .message_key = "k",
                                 .reason = "malformed_event",
                                 .payload = "{}",
                                 .payload_len = 2};
    size_t inserted = 0;
    assert_int_equal(cofre_adapter_store_enqueue(s, ts, 5, &dead, 1, &inserted), 0);
    assert_int_equal(inserted, 5);
    /* The same batch again (a re-read after a crash before the offset commit). */
    assert_int_equal(cofre_adapter_store_enqueue(s, ts, 5, &dead, 1, &inserted), 0);
    assert_int_equal(inserted, 0);
    cofre_adapter_delivery_t out[8];
    size_t n = 0;
    assert_int_equal(cofre_adapter_store_load_open(s, 0, 8, out, &n), 0);
    assert_int_equal(n, 5);
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(out[i].t.transfer_id, ts[i].transfer_id);
        assert_int_equal(out[i].state, COFRE_DELIVERY_PENDING);
        assert_int_equal(out[i].t.amount_minor, 100 + (int64_t)i);
        assert_int_equal(out[i].t.partition, (int32_t)i % 3);
        if (i > 0)
            assert_true(out[i].seq > out[i - 1].seq);
    }
    assert_string_equal(out[1].t.traceparent, ts[1].traceparent);
    assert_string_equal(out[1].t.rrn, "RRN000000001");
    /* After a seq, and at most max. */
    assert_int_equal(cofre_adapter_store_load_open(s, out[2].seq, 2, out, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(out[0].t.transfer_id, ts[3].transfer_id);
    cofre_adapter_store_stats_t st;
    assert_int_equal(cofre_adapter_store_stats(s, &st), 0);
    assert_int_equal(st.pending, 5);
    assert_int_equal(st.sent, 0);
    assert_int_equal(st.dlq_pending, 1);
    /* Limits. */
    assert_int_equal(
        cofre_adapter_store_enqueue(s, ts, COFRE_ADAPTER_STORE_BATCH_MAX + 1, NULL, 0, &inserted),
        COFRE_EINVAL);
    cofre_adapter_store_close(s);
}

static void outcomes_survive_a_reopen(void **state)
{
    (void)state;
    cofre_adapter_store_t *s = open_store();
    cofre_adapter_delivery_t d[5];
    size_t n = 0;
    assert_int_equal(cofre_adapter_store_load_open(s, 0, 5, d, &n), 0);
    assert_int_equal(n, 5);
    cofre_adapter_dead_t dead = {.source_key = "transfer:x",
                                 .message_key = "x",
                                 .reason = "declined",
                                 .payload = "{\"a\":1}",
                                 .payload_len = 7};
    cofre_adapter_update_t u[3] = {
        {.seq = d[0].seq,
         .state = COFRE_DELIVERY_SENT,
         .attempts = 1,
         .stan = 42,
         .sent_at_us = 1795981432000000ull},
        {.seq = d[1].seq,
         .state = COFRE_DELIVERY_APPLIED,
         .attempts = 2,
         .reversals = 1,
         .response_code = "00",
         .auth_id = "000017"},
        {.seq = d[2].seq,
         .state = COFRE_DELIVERY_DECLINED,
         .attempts = 1,
         .response_code = "05",
         .reason = "declined",
         .dead = &dead},
    };
    assert_int_equal(cofre_adapter_store_apply(s, u, 3), 0);
    cofre_adapter_store_close(s);

    s = open_store();
    cofre_adapter_delivery_t open[5];
    assert_int_equal(cofre_adapter_store_load_open(s, 0, 5, open, &n), 0);
    assert_int_equal(n, 3); /* 0 (sent), 3, 4 (pending) */
    assert_int_equal(open[0].seq, d[0].seq);
    assert_int_equal(open[0].state, COFRE_DELIVERY_SENT);
    assert_int_equal(open[0].stan, 42);
    assert_int_equal(open[0].sent_at_us, 1795981432000000ull);
    assert_int_equal(open[0].attempts, 1);
    assert_int_equal(open[1].seq, d[3].seq);
    cofre_adapter_store_stats_t st;
    assert_int_equal(cofre_adapter_store_stats(s, &st), 0);
    assert_int_equal(st.pending, 2);
    assert_int_equal(st.sent, 1);
    assert_int_equal(st.dlq_pending, 2);
    cofre_adapter_store_close(s);
}

typedef struct seen {
    int n;
    cofre_adapter_delivery_t d[8];
} seen_t;

static int collect(const cofre_adapter_delivery_t *d, void *data)
{
    seen_t *s = data;
    s->d[s->n++] = *d;
    return s->n == 8 ? 7 : 0;
}

static void each_reads_every_state(void **state)
{
    (void)state;
    cofre_adapter_store_t *s = open_store();
    seen_t seen = {0};
    assert_int_equal(cofre_adapter_store_each(s, collect, &seen), 0);
    assert_int_equal(seen.n, 5);
    assert_int_equal(seen.d[1].state, COFRE_DELIVERY_APPLIED);
    assert_string_equal(seen.d[1].response_code, "00");
    assert_string_equal(seen.d[1].auth_id, "000017");
    assert_int_equal(seen.d[1].reversals, 1);
    assert_int_equal(seen.d[2].state, COFRE_DELIVERY_DECLINED);
    assert_string_equal(cofre_delivery_state_name(seen.d[2].state), "declined");
    cofre_adapter_store_close(s);
}

static void dead_letters_until_marked(void **state)
{
    (void)state;
    cofre_adapter_store_t *s = open_store();
    cofre_adapter_dlq_row_t rows[4];
    size_t n = 0;
    assert_int_equal(cofre_adapter_store_dlq_fetch(s, 4, rows, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(rows[0].message_key, "k");
    assert_string_equal(rows[1].payload, "{\"a\":1}");
    assert_int_equal(rows[1].payload_len, 7);
    int64_t first = rows[0].seq;
    for (size_t i = 0; i < n; i++)
        cofre_adapter_dlq_row_release(&rows[i]);
    assert_int_equal(cofre_adapter_store_dlq_mark(s, &first, 1, 1), 0);
    assert_int_equal(cofre_adapter_store_dlq_fetch(s, 4, rows, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(rows[0].message_key, "x");
    cofre_adapter_dlq_row_release(&rows[0]);
    /* A dead letter with a source already stored is not written twice. */
    cofre_adapter_dead_t again = {.source_key = "transfer:x",
                                  .message_key = "x",
                                  .reason = "declined",
                                  .payload = "{}",
                                  .payload_len = 2};
    size_t inserted;
    assert_int_equal(cofre_adapter_store_enqueue(s, NULL, 0, &again, 1, &inserted), 0);
    assert_int_equal(cofre_adapter_store_dlq_fetch(s, 4, rows, &n), 0);
    assert_int_equal(n, 1);
    cofre_adapter_dlq_row_release(&rows[0]);
    cofre_adapter_store_close(s);
}

static void bad_urls_and_files_fail(void **state)
{
    (void)state;
    cofre_adapter_store_t *s = NULL;
    assert_int_equal(cofre_adapter_store_open("postgres://127.0.0.1/y?nonsense=1", false, &s),
                     COFRE_EINVAL);
    assert_int_equal(cofre_adapter_store_open("mysql:x", false, &s), COFRE_EINVAL);
    /* PostgreSQL connects lazily: a writer opens while the database is down and fails each call
     * fast; a reader (reconcile) wants the database now. */
    assert_int_equal(cofre_adapter_store_open("postgres://127.0.0.1:1/y", true, &s),
                     COFRE_EUNAVAIL);
    assert_int_equal(cofre_adapter_store_open("postgres://127.0.0.1:1/y", false, &s), 0);
    assert_true(cofre_adapter_store_shared(s));
    cofre_adapter_store_stats_t down;
    assert_int_equal(cofre_adapter_store_stats(s, &down), COFRE_EUNAVAIL);
    cofre_adapter_store_close(s);
    char other[160];
    snprintf(other, sizeof(other), "sqlite:%s/empty.db", dir);
    FILE *f = fopen(other + 7, "w");
    assert_non_null(f);
    fclose(f);
    assert_int_equal(cofre_adapter_store_open(other, true, &s), COFRE_EIO);
    /* A read-only handle reads what a writer stored. */
    assert_int_equal(cofre_adapter_store_open(url, true, &s), 0);
    seen_t seen = {0};
    assert_int_equal(cofre_adapter_store_each(s, collect, &seen), 0);
    assert_int_equal(seen.n, 5);
    cofre_adapter_store_close(s);
}

static void retention_deletes_only_old_final_rows(void **state)
{
    (void)state;
    char other[160];
    snprintf(other, sizeof(other), "sqlite:%s/prune.db", dir);
    cofre_adapter_store_t *s = NULL;
    assert_int_equal(cofre_adapter_store_open(other, false, &s), 0);
    cofre_adapter_transfer_t ts[6];
    for (int i = 0; i < 6; i++)
        ts[i] = transfer(100 + i);
    cofre_adapter_dead_t dead[2] = {
        {.source_key = "a", .message_key = "a", .reason = "r", .payload = "{}", .payload_len = 2},
        {.source_key = "b", .message_key = "b", .reason = "r", .payload = "{}", .payload_len = 2}};
    size_t inserted;
    assert_int_equal(cofre_adapter_store_enqueue(s, ts, 6, dead, 2, &inserted), 0);
    cofre_adapter_delivery_t d[6];
    size_t n;
    assert_int_equal(cofre_adapter_store_load_open(s, 0, 6, d, &n), 0);
    cofre_adapter_update_t u[4] = {
        {.seq = d[0].seq, .state = COFRE_DELIVERY_APPLIED},
        {.seq = d[1].seq, .state = COFRE_DELIVERY_DECLINED},
        {.seq = d[3].seq, .state = COFRE_DELIVERY_FAILED},
        {.seq = d[4].seq, .state = COFRE_DELIVERY_SENT, .stan = 7, .sent_at_us = 1},
    };
    assert_int_equal(cofre_adapter_store_apply(s, u, 4), 0);
    cofre_adapter_dlq_row_t rows[2];
    assert_int_equal(cofre_adapter_store_dlq_fetch(s, 2, rows, &n), 0);
    int64_t published = rows[0].seq;
    cofre_adapter_dlq_row_release(&rows[0]);
    cofre_adapter_dlq_row_release(&rows[1]);
    assert_int_equal(cofre_adapter_store_dlq_mark(s, &published, 1, 1000), 0);
    /* Nothing is old yet: nothing goes, and the scan does not move. */
    int64_t next = -1;
    size_t deleted = 99;
    assert_int_equal(cofre_adapter_store_prune(s, 0, 1, 100, &next, &deleted), 0);
    assert_int_equal(deleted, 0);
    assert_int_equal(next, 0);
    /* At most max rows are looked at. */
    uint64_t future = cofre_now_wall_us() + 1000000;
    assert_int_equal(cofre_adapter_store_prune(s, 0, future, 2, &next, &deleted), 0);
    assert_int_equal(deleted, 2);
    assert_int_equal(next, d[1].seq);
    /* Then the rest: the failed row goes, open rows stay whatever their age. */
    assert_int_equal(cofre_adapter_store_prune(s, next, future, 100, &next, &deleted), 0);
    assert_int_equal(deleted, 1);
    assert_int_equal(next, d[5].seq);
    cofre_adapter_store_stats_t st;
    assert_int_equal(cofre_adapter_store_stats(s, &st), 0);
    assert_int_equal(st.pending, 2);
    assert_int_equal(st.sent, 1);
    assert_int_equal(st.dlq_pending, 1); /* the unpublished dead letter stays */
    seen_t seen = {0};
    assert_int_equal(cofre_adapter_store_each(s, collect, &seen), 0);
    assert_int_equal(seen.n, 3);
    cofre_adapter_store_close(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(enqueue_is_idempotent_and_ordered),
        cmocka_unit_test(outcomes_survive_a_reopen),
        cmocka_unit_test(each_reads_every_state),
        cmocka_unit_test(dead_letters_until_marked),
        cmocka_unit_test(bad_urls_and_files_fail),
        cmocka_unit_test(retention_deletes_only_old_final_rows),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
