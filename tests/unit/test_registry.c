/* test_registry.c: cofre-auth's SQLite registry: clients in and out, a duplicate refused,
 * disabling and secret changes, the outbox row of every change in the same transaction (and
 * none for a change that failed), migrations that can run again, and the relay's side: rows
 * read in seq order, marked once, counted, and one relay per database file. (The PostgreSQL
 * registry is tested black-box in tests/auth against a real cluster.) */
#include "unit.h"

#include "auth/registry.h"
#include "cofre/log.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[] = "/tmp/cofre-test-registry-XXXXXX";
static char url[320];
static char path[300];

static int setup(void **state)
{
    (void)state;
    cofre_log_init("test", COFRE_LOG_ERROR);
    if (mkdtemp(dir) == NULL)
        return -1;
    snprintf(path, sizeof(path), "%s/auth.db", dir);
    snprintf(url, sizeof(url), "sqlite:%s", path);
    return cofre_registry_migrate(url);
}

static int teardown(void **state)
{
    (void)state;
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static long count_rows(const char *sql)
{
    sqlite3 *db;
    sqlite3_open(path, &db);
    sqlite3_stmt *st;
    sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    long n = sqlite3_step(st) == SQLITE_ROW ? (long)sqlite3_column_int64(st, 0) : -1;
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n;
}

static void event_for(cofre_event_t *ev, const char *type, const char *key)
{
    cofre_actor_t actor = {.command = "test"};
    cofre_registry_event(ev, type, key, "client", "{\"x\":1}", &actor, NULL);
}

static cofre_client_t client(const char *id)
{
    cofre_client_t c;
    memset(&c, 0, sizeof(c));
    snprintf(c.client_id, sizeof(c.client_id), "%s", id);
    snprintf(c.owner, sizeof(c.owner), "owner-%s", id);
    c.scopes = COFRE_SCOPE_ACCOUNTS_READ | COFRE_SCOPE_LEDGER_ADMIN;
    snprintf(c.secret_hash, sizeof(c.secret_hash), "$argon2id$v=19$fake");
    cofre_time_format(cofre_now_wall_us(), c.created_at);
    return c;
}

static void clients_round_trip_with_their_events(void **state)
{
    (void)state;
    cofre_registry_t *r;
    assert_int_equal(cofre_registry_open(url, &r), 0);
    long events = count_rows("SELECT count(*) FROM outbox");
    cofre_client_t c = client("app-1"), got;
    cofre_event_t ev;
    event_for(&ev, "cofre.auth.client.created", c.client_id);
    assert_int_equal(r->ops->client_insert(r, &c, &ev), 0);
    assert_int_equal(count_rows("SELECT count(*) FROM outbox"), events + 1);
    /* the same id again: refused, and no event for it */
    assert_int_equal(r->ops->client_insert(r, &c, &ev), COFRE_EEXIST);
    assert_int_equal(count_rows("SELECT count(*) FROM outbox"), events + 1);
    cofre_registry_event_release(&ev);

    assert_int_equal(r->ops->client_get(r, "app-1", &got), 0);
    assert_string_equal(got.owner, "owner-app-1");
    assert_int_equal(got.scopes, c.scopes);
    assert_int_equal(got.disabled_at, 0);
    assert_int_equal(r->ops->client_get(r, "nobody", &got), COFRE_ENOENT);

    c.disabled_at = 12345;
    event_for(&ev, "cofre.auth.client.disabled", c.client_id);
    assert_int_equal(r->ops->client_update(r, &c, COFRE_CLIENT_DISABLE, &ev), 0);
    /* disabling twice changes nothing and writes no second event */
    assert_int_equal(r->ops->client_update(r, &c, COFRE_CLIENT_DISABLE, &ev), COFRE_ENOENT);
    cofre_registry_event_release(&ev);
    assert_int_equal(count_rows("SELECT count(*) FROM outbox"), events + 2);
    assert_int_equal(r->ops->client_get(r, "app-1", &got), 0);
    assert_int_equal(got.disabled_at, 12345);
    assert_int_equal(count_rows("SELECT count(*) FROM outbox WHERE topic = 'cofre.auth.events' "
                                "AND partition_key = 'app-1' AND type LIKE 'cofre.auth.client.%'"),
                     2);
    cofre_registry_close(r);
}

static void secret_changes_and_lists(void **state)
{
    (void)state;
    cofre_registry_t *r;
    assert_int_equal(cofre_registry_open(url, &r), 0);
    cofre_client_t c = client("app-2"), got;
    cofre_event_t ev;
    event_for(&ev, "cofre.auth.client.created", c.client_id);
    assert_int_equal(r->ops->client_insert(r, &c, &ev), 0);
    snprintf(c.secret_hash, sizeof(c.secret_hash), "$argon2id$v=19$other");
    assert_int_equal(r->ops->client_update(r, &c, COFRE_CLIENT_SET_SECRET, &ev), 0);
    assert_int_equal(r->ops->client_get(r, "app-2", &got), 0);
    assert_string_equal(got.secret_hash, "$argon2id$v=19$other");
    cofre_client_t ghost = client("ghost");
    assert_int_equal(r->ops->client_update(r, &ghost, COFRE_CLIENT_SET_SECRET, &ev), COFRE_ENOENT);
    cofre_registry_event_release(&ev);
    /* the schema refuses a hash that is not Argon2id */
    cofre_client_t weak = client("weak");
    snprintf(weak.secret_hash, sizeof(weak.secret_hash), "plaintext");
    event_for(&ev, "cofre.auth.client.created", weak.client_id);
    assert_int_not_equal(r->ops->client_insert(r, &weak, &ev), 0);
    cofre_registry_event_release(&ev);
    cofre_registry_close(r);
}

static void migrations_run_again(void **state)
{
    (void)state;
    assert_int_equal(cofre_registry_migrate(url), 0);
    assert_int_equal(count_rows("PRAGMA user_version"), 1);
}

static void event_envelope(void **state)
{
    (void)state;
    cofre_event_t ev;
    cofre_actor_t actor = {.client_id = "app", .address = "10.0.0.1", .request_id = "r1"};
    cofre_registry_event(&ev, "cofre.auth.token.issued", "app", "token", "{\"jti\":\"j\"}", &actor,
                         "00-0123456789abcdef0123456789abcdef-0123456789abcdef-01");
    const char *want[] = {"\"specversion\":\"1.0\"",
                          "\"source\":\"/cofre/auth\"",
                          "\"type\":\"cofre.auth.token.issued\"",
                          "\"subject\":\"app\"",
                          ("\"data\":{\"token\":{\"jti\":\"j\"},\"actor\":{\"client_id\":\"app\","
                           "\"address\":\"10.0.0.1\",\"request_id\":\"r1\"}}"),
                          "\"traceparent\":\"00-0123456789abcdef0123456789abcdef-"};
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        if (strstr(ev.payload, want[i]) == NULL)
            fail_msg("%s lacks %s", ev.payload, want[i]);
    assert_int_equal(strlen(ev.event_id), COFRE_UUID_LEN);
    cofre_registry_event_release(&ev);
}

static void outbox_rows_for_the_relay(void **state)
{
    (void)state;
    cofre_registry_t *r;
    assert_int_equal(cofre_registry_open(url, &r), 0);
    int64_t pending = -1;
    double age = -1;
    assert_int_equal(r->ops->outbox_stats(r, &pending, &age), 0);
    long before = count_rows("SELECT count(*) FROM outbox WHERE published_at IS NULL");
    assert_int_equal(pending, before);
    assert_true(before >= 3 && age >= 0 && age < 60);
    cofre_relay_row_t rows[2];
    size_t n = 0;
    assert_int_equal(r->ops->outbox_fetch(r, 0, 2, rows, &n), 0);
    assert_int_equal(n, 2); /* bounded by max */
    assert_true(rows[0].seq < rows[1].seq);
    assert_string_equal(rows[0].topic, COFRE_REGISTRY_TOPIC);
    assert_true(strstr(rows[0].payload, rows[0].event_id) != NULL);
    int64_t seqs[] = {rows[0].seq, rows[1].seq};
    int64_t after = rows[1].seq;
    free(rows[0].payload);
    free(rows[1].payload);
    assert_int_equal(r->ops->outbox_mark(r, seqs, 2), 0);
    assert_int_equal(r->ops->outbox_mark(r, seqs, 2), 0); /* twice: no change */
    assert_int_equal(r->ops->outbox_stats(r, &pending, &age), 0);
    assert_int_equal(pending, before - 2);
    /* marked rows are not read again; the next ones follow */
    assert_int_equal(r->ops->outbox_fetch(r, 0, 2, rows, &n), 0);
    assert_true(n >= 1 && rows[0].seq > after);
    for (size_t i = 0; i < n; i++)
        free(rows[i].payload);
    cofre_registry_close(r);
}

static void one_relay_per_database_file(void **state)
{
    (void)state;
    cofre_registry_t *a, *b;
    assert_int_equal(cofre_registry_open(url, &a), 0);
    assert_int_equal(cofre_registry_open(url, &b), 0);
    assert_int_equal(a->ops->relay_claim(a, "a"), 0);
    assert_int_equal(a->ops->relay_claim(a, "a"), 0); /* renewing is holding */
    assert_int_equal(b->ops->relay_claim(b, "b"), COFRE_EEXIST);
    a->ops->relay_release(a, "a");
    assert_int_equal(b->ops->relay_claim(b, "b"), 0);
    cofre_registry_close(b); /* closing releases too */
    assert_int_equal(a->ops->relay_claim(a, "a"), 0);
    cofre_registry_close(a);
}

static void names(void **state)
{
    (void)state;
    assert_true(cofre_registry_client_id_valid("demo_app-1.x"));
    assert_false(cofre_registry_client_id_valid(""));
    assert_false(cofre_registry_client_id_valid("a:b"));
    assert_false(cofre_registry_client_id_valid("a b"));
    char long_id[70];
    memset(long_id, 'a', 65);
    long_id[65] = '\0';
    assert_false(cofre_registry_client_id_valid(long_id));
    assert_true(cofre_registry_owner_valid("alice@bank:eu"));
    assert_false(cofre_registry_owner_valid("alice/bob"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(clients_round_trip_with_their_events),
        cmocka_unit_test(secret_changes_and_lists),
        cmocka_unit_test(migrations_run_again),
        cmocka_unit_test(event_envelope),
        cmocka_unit_test(outbox_rows_for_the_relay),
        cmocka_unit_test(one_relay_per_database_file),
        cmocka_unit_test(names),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
