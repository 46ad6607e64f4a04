/*
 * test_adapter_lease.c: cofre-legacy's partition leases against a fake shared store (a table
 * of holders): assigned partitions are claimed and renewed every quarter lease; a request may
 * go out only while the lease outlives the answer timeout plus the guard, and only for an
 * assigned partition; a partition held elsewhere is polled for, then taken once released; a
 * revoked partition is released only when nothing of it is busy (and renewed meanwhile); a
 * lease lost, refused by the store or run out without renewal drains the partition, which is
 * loaded again only after the drain; cursors advance per partition.
 */
#include "unit.h"

#include "cofre/common.h"
#include "cofre/log.h"
#include "cofre/metrics.h"
#include "legacy/adapter_lease.h"
#include "legacy/adapter_metrics.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MS       1000000ull
#define LEASE_MS 10000
#define TIMEOUT  2000 /* answer timeout, ms: requests stop 3 s before the lease ends */
#define T0       (1000 * 1000 * MS)

/* The fake store: who holds each partition, and what the last round asked. */
typedef struct fake {
    cofre_adapter_store_t base;
    char holder[8][COFRE_ADAPTER_OWNER_MAX + 1];
    int fail; /* next rounds fail with this */
    size_t rounds;
    size_t nclaim, nrelease;
    int32_t claim[8], release[8];
} fake_t;

static int fake_lease(cofre_adapter_store_t *s, const int32_t *claim, size_t nclaim,
                      const int32_t *release, size_t nrelease, uint64_t lease_ms,
                      cofre_adapter_lease_result_t *out)
{
    fake_t *f = (fake_t *)s;
    assert_int_equal(lease_ms, LEASE_MS);
    f->rounds++;
    if (f->fail != 0)
        return f->fail;
    f->nclaim = nclaim;
    f->nrelease = nrelease;
    memcpy(f->claim, claim, nclaim * sizeof(*claim));
    memcpy(f->release, release, nrelease * sizeof(*release));
    for (size_t i = 0; i < nrelease; i++)
        if (strcmp(f->holder[release[i]], s->owner) == 0)
            f->holder[release[i]][0] = '\0';
    for (size_t i = 0; i < nclaim; i++) {
        char *h = f->holder[claim[i]];
        out[i] = (cofre_adapter_lease_result_t){.partition = claim[i]};
        snprintf(out[i].owner, sizeof(out[i].owner), "%s", h);
        out[i].held = h[0] == '\0' || strcmp(h, s->owner) == 0;
        out[i].taken = out[i].held && strcmp(h, s->owner) != 0;
        if (out[i].held)
            snprintf(h, COFRE_ADAPTER_OWNER_MAX + 1, "%s", s->owner);
    }
    return 0;
}

static const cofre_adapter_store_ops_t fake_ops = {.lease = fake_lease};

static bool busy[COFRE_ADAPTER_PARTITIONS_MAX];

static int setup(void **state)
{
    static bool once;
    if (!once) {
        once = true;
        cofre_log_init("test", COFRE_LOG_ERROR);
        cofre_log_set_fd(open("/dev/null", O_WRONLY));
        cofre_metrics_init("test", "0", "0");
        cofre_adapter_metrics_init();
    }
    fake_t *f = cofre_calloc(1, sizeof(*f));
    f->base.ops = &fake_ops;
    f->base.shared = true;
    cofre_adapter_store_set_owner(&f->base, "me");
    memset(busy, 0, sizeof(busy));
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    free(*state);
    return 0;
}

static void claims_renews_and_bounds_requests(void **state)
{
    fake_t *f = *state;
    cofre_adapter_leases_t *l = cofre_adapter_leases_new(LEASE_MS, TIMEOUT);
    assert_false(cofre_adapter_leases_usable(l, 1, T0));
    cofre_adapter_leases_assign(l, 1, true);
    cofre_adapter_leases_assign(l, 3, true);
    assert_int_equal(cofre_adapter_leases_due_ns(l), 0); /* the assignment changed */
    assert_int_equal(cofre_adapter_leases_round(l, &f->base, T0, busy), 0);
    assert_int_equal(f->nclaim, 2);
    assert_int_equal(f->claim[0], 1);
    assert_int_equal(f->claim[1], 3);
    assert_true(cofre_adapter_leases_held(l, 1) && cofre_adapter_leases_held(l, 3));
    assert_false(cofre_adapter_leases_held(l, 2));
    assert_true(cofre_adapter_leases_gained(l));
    assert_false(cofre_adapter_leases_gained(l));
    /* Renewed every quarter lease. */
    assert_int_equal(cofre_adapter_leases_due_ns(l), T0 + LEASE_MS / 4 * MS);
    /* Requests go out while the lease outlives the timeout and the 1 s guard: 7 s here. */
    assert_true(cofre_adapter_leases_usable(l, 1, T0 + 6999 * MS));
    assert_false(cofre_adapter_leases_usable(l, 1, T0 + 7000 * MS));
    assert_false(cofre_adapter_leases_usable(l, 2, T0));
    /* A renewal moves the end. */
    assert_int_equal(cofre_adapter_leases_round(l, &f->base, T0 + 2500 * MS, busy), 0);
    assert_true(cofre_adapter_leases_usable(l, 1, T0 + 9000 * MS));
    /* Revoked: no more requests at once, even with the lease still held. */
    cofre_adapter_leases_assign(l, 3, false);
    assert_false(cofre_adapter_leases_usable(l, 3, T0 + 2600 * MS));
    cofre_adapter_leases_free(l);
}

static void waits_for_another_owner(void **state)
{
    fake_t *f = *state;
    snprintf(f->holder[2], sizeof(f->holder[2]), "%s", "other");
    cofre_adapter_leases_t *l = cofre_adapter_leases_new(LEASE_MS, TIMEOUT);
    cofre_adapter_leases_assign(l, 2, true);
    assert_int_equal(cofre_adapter_leases_round(l, &f->base, T0, busy), 0);
    assert_false(cofre_adapter_leases_held(l, 2));
    assert_false(cofre_adapter_leases_usable(l, 2, T0));
    int32_t parts[COFRE_ADAPTER_PARTITIONS_MAX];
    int64_t after[COFRE_ADAPTER_PARTITIONS_MAX];
    assert_int_equal(cofre_adapter_leases_loadable(l, T0, parts, after), 0);
    /* Polled for every 0.5 s, not every quarter lease. */
    assert_int_equal(cofre_adapter_leases_due_ns(l), T0 + 500 * MS);
    f->holder[2][0] = '\0'; /* released (or expired) */
    assert_int_equal(cofre_adapter_leases_round(l, &f->base, T0 + 500 * MS, busy), 0);
    assert_true(cofre_adapter_leases_held(l, 2));
    assert_int_equal(cofre_adapter_leases_loadable(l, T0 + 500 * MS, parts, after), 1);
    assert_int_equal(parts[0], 2);
    assert_int_equal(after[0], 0);
    cofre_adapter_leases_free(l);
}

static void releases_revoked_partitions_once_idle(void **state)
{
    fake_t *f = *state;
    cofre_adapter_leases_t *l = cofre_adapter_leases_new(LEASE_MS, TIMEOUT);
    cofre_adapter_leases_assign(l, 4, true);
    assert_int_equal(cofre_adapter_leases_round(l, &f->base, T0, busy), 0);
    cofre_adapter_leases_loaded(l, 4, 17);
    cofre_adapter_leases_assign(l, 4, false);
    busy[4] = true; /* a request out: renewed, not released */
    assert_int_equal(cofre_adapter_leases_round(l, &f->base, T0 + MS, busy), 0);
    assert_int_equal(f->nrelease, 0);
    assert_int_equal(f->nclaim, 1);
    assert_true(cofre_adapter_leases_held(l, 4));
    assert_int_equal(cofre_adapter_leases_due_ns(l), T0 + 501 * MS); /* settling */
    busy[4] = false;
    assert_int_equal(cofre_adapter_leases_round(l, &f->base, T0 + 501 * MS, busy), 0);
    assert_int_equal(f->nrelease, 1);
    assert_int_equal(f->release[0], 4);
    assert_string_equal(f->holder[4], "");
    assert_false(cofre_adapter_leases_held(l, 4));
    /* Its deliveries were loaded: they drain, then the cursor starts over. */
    int32_t parts[COFRE_ADAPTER_PARTITIONS_MAX];
    assert_true(cofre_adapter_leases_draining(l, 4));
    assert_int_equal(cofre_adapter_leases_drains(l, parts), 1);
    cofre_adapter_leases_drained(l, 4);
    assert_false(cofre_adapter_leases_draining(l, 4));
    assert_int_equal(cofre_adapter_leases_drains(l, parts), 0);
    /* At shutdown every idle lease goes. */
    cofre_adapter_leases_assign(l, 5, true);
    assert_int_equal(cofre_adapter_leases_round(l, &f->base, T0 + 600 * MS, busy), 0);
    assert_string_equal(f->holder[5], "me");
    assert_int_equal(cofre_adapter_leases_release_all(l, &f->base, busy), 0);
    assert_string_equal(f->holder[5], "");
    cofre_adapter_leases_free(l);
}

static void lost_refused_and_expired_leases_drain(void **state)
{
    fake_t *f = *state;
    cofre_adapter_leases_t *l = cofre_adapter_leases_new(LEASE_MS, TIMEOUT);
    for (int32_t p = 0; p < 3; p++)
        cofre_adapter_leases_assign(l, p, true);
    assert_int_equal(cofre_adapter_leases_round(l, &f->base, T0, busy), 0);
    for (int32_t p = 0; p < 3; p++)
        cofre_adapter_leases_loaded(l, p, 10 + p);
    /* Lost: another owner holds partition 0 at the next renewal. */
    snprintf(f->holder[0], sizeof(f->holder[0]), "%s", "other");
    assert_int_equal(cofre_adapter_leases_round(l, &f->base, T0 + 2500 * MS, busy), 0);
    assert_false(cofre_adapter_leases_held(l, 0));
    assert_true(cofre_adapter_leases_draining(l, 0));
    assert_false(cofre_adapter_leases_usable(l, 0, T0 + 2500 * MS));
    /* Refused by the store (an apply): partition 1 drains and a round comes at once. */
    cofre_adapter_leases_lose(l, 1);
    assert_true(cofre_adapter_leases_draining(l, 1));
    assert_int_equal(cofre_adapter_leases_due_ns(l), 0);
    /* No renewal gets through: partition 2's lease runs out locally at T0 + 12.5 s. */
    f->fail = COFRE_EUNAVAIL;
    assert_int_equal(cofre_adapter_leases_round(l, &f->base, T0 + 3000 * MS, busy), COFRE_EUNAVAIL);
    cofre_adapter_leases_expire(l, T0 + 12499 * MS);
    assert_true(cofre_adapter_leases_held(l, 2));
    assert_false(cofre_adapter_leases_usable(l, 2, T0 + 9500 * MS)); /* 3 s before its end */
    cofre_adapter_leases_expire(l, T0 + 12500 * MS);
    assert_false(cofre_adapter_leases_held(l, 2));
    assert_true(cofre_adapter_leases_draining(l, 2));
    int32_t parts[COFRE_ADAPTER_PARTITIONS_MAX];
    int64_t after[COFRE_ADAPTER_PARTITIONS_MAX];
    assert_int_equal(cofre_adapter_leases_drains(l, parts), 3);
    /* Taken again while draining: not loaded (nor resumed by the consumer) before drained. */
    f->fail = 0;
    f->holder[0][0] = '\0';
    assert_int_equal(cofre_adapter_leases_round(l, &f->base, T0 + 13 * 1000 * MS, busy), 0);
    assert_false(cofre_adapter_leases_held(l, 0));
    assert_int_equal(cofre_adapter_leases_loadable(l, T0 + 13 * 1000 * MS, parts, after), 0);
    cofre_adapter_leases_drained(l, 0);
    assert_true(cofre_adapter_leases_held(l, 0));
    assert_int_equal(cofre_adapter_leases_loadable(l, T0 + 13 * 1000 * MS, parts, after), 1);
    assert_int_equal(after[0], 0); /* from the start again */
    cofre_adapter_leases_loaded(l, 0, 42);
    cofre_adapter_leases_loaded(l, 0, 40);
    assert_int_equal(cofre_adapter_leases_loadable(l, T0 + 13 * 1000 * MS, parts, after), 1);
    assert_int_equal(after[0], 42);
    cofre_adapter_leases_free(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(claims_renews_and_bounds_requests, setup, teardown),
        cmocka_unit_test_setup_teardown(waits_for_another_owner, setup, teardown),
        cmocka_unit_test_setup_teardown(releases_revoked_partitions_once_idle, setup, teardown),
        cmocka_unit_test_setup_teardown(lost_refused_and_expired_leases_drain, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
