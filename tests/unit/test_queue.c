/* test_queue.c: bounds, FIFO order, batches, timeouts, close, and concurrent use. */
#include "unit.h"

#include "cofre/common.h"
#include "cofre/queue.h"

#include <pthread.h>

static void full_queue_refuses_without_waiting(void **state)
{
    (void)state;
    cofre_queue_t *q = cofre_queue_new(2);
    int a, b, c;
    assert_int_equal(cofre_queue_push(q, &a), 0);
    assert_int_equal(cofre_queue_push(q, &b), 0);
    assert_int_equal(cofre_queue_push(q, &c), COFRE_EFULL);
    void *items[4];
    assert_int_equal(cofre_queue_pop_many(q, items, 4, 0), 2);
    assert_ptr_equal(items[0], &a);
    assert_ptr_equal(items[1], &b);
    cofre_queue_free(q);
}

static void pop_many_respects_max_and_wraps(void **state)
{
    (void)state;
    cofre_queue_t *q = cofre_queue_new(3);
    int v[10];
    void *items[3];
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 3; i++)
            assert_int_equal(cofre_queue_push(q, &v[i]), 0);
        assert_int_equal(cofre_queue_pop_many(q, items, 2, 0), 2);
        assert_ptr_equal(items[0], &v[0]);
        assert_int_equal(cofre_queue_pop_many(q, items, 2, 0), 1);
        assert_ptr_equal(items[0], &v[2]);
    }
    cofre_queue_free(q);
}

static void empty_pop_times_out(void **state)
{
    (void)state;
    cofre_queue_t *q = cofre_queue_new(1);
    void *item;
    uint64_t t0 = cofre_now_mono_ns();
    assert_int_equal(cofre_queue_pop_many(q, &item, 1, 20000000), 0);
    assert_true(cofre_now_mono_ns() - t0 >= 15000000);
    cofre_queue_free(q);
}

static void close_refuses_pushes_and_keeps_items(void **state)
{
    (void)state;
    cofre_queue_t *q = cofre_queue_new(2);
    int a;
    void *item;
    cofre_queue_push(q, &a);
    cofre_queue_close(q);
    assert_true(cofre_queue_is_closed(q));
    assert_int_equal(cofre_queue_push(q, &a), COFRE_ECLOSED);
    assert_int_equal(cofre_queue_pop_many(q, &item, 1, 1000000000), 1);
    assert_int_equal(cofre_queue_pop_many(q, &item, 1, 1000000000), 0);
    cofre_queue_free(q);
}

#define PRODUCERS    4
#define PER_PRODUCER 20000

static void *producer(void *arg)
{
    cofre_queue_t *q = arg;
    for (uintptr_t i = 1; i <= PER_PRODUCER; i++)
        while (cofre_queue_push(q, (void *)i) == COFRE_EFULL)
            ;
    return NULL;
}

static void concurrent_producers_lose_nothing(void **state)
{
    (void)state;
    cofre_queue_t *q = cofre_queue_new(64);
    pthread_t t[PRODUCERS];
    for (int i = 0; i < PRODUCERS; i++)
        pthread_create(&t[i], NULL, producer, q);
    uint64_t sum = 0, count = 0;
    void *items[16];
    while (count < PRODUCERS * PER_PRODUCER) {
        size_t n = cofre_queue_pop_many(q, items, 16, 100000000);
        for (size_t i = 0; i < n; i++)
            sum += (uintptr_t)items[i];
        count += n;
    }
    for (int i = 0; i < PRODUCERS; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(sum, (uint64_t)PRODUCERS * PER_PRODUCER * (PER_PRODUCER + 1) / 2);
    cofre_queue_free(q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(full_queue_refuses_without_waiting),
        cmocka_unit_test(pop_many_respects_max_and_wraps),
        cmocka_unit_test(empty_pop_times_out),
        cmocka_unit_test(close_refuses_pushes_and_keeps_items),
        cmocka_unit_test(concurrent_producers_lose_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
