/*
 * queue.c: a ring buffer under one mutex, with a condition variable for consumers. Critical
 * sections are a few instructions long, so producers on event loops only ever wait for the
 * lock, never for space.
 */
#include "cofre/queue.h"

#include "cofre/common.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

struct cofre_queue {
    pthread_mutex_t lock;
    pthread_cond_t nonempty;
    size_t capacity;
    size_t head; /* next item to pop */
    size_t length;
    bool closed;
    void **items;
};

cofre_queue_t *cofre_queue_new(size_t capacity)
{
    COFRE_ASSERT(capacity >= 1);
    cofre_queue_t *q = cofre_calloc(1, sizeof(*q));
    pthread_mutex_init(&q->lock, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&q->nonempty, &attr);
    pthread_condattr_destroy(&attr);
    q->capacity = capacity;
    q->items = cofre_calloc(capacity, sizeof(void *));
    return q;
}

void cofre_queue_free(cofre_queue_t *q)
{
    if (q == NULL)
        return;
    COFRE_ASSERT(q->length == 0);
    pthread_cond_destroy(&q->nonempty);
    pthread_mutex_destroy(&q->lock);
    free(q->items);
    free(q);
}

int cofre_queue_push(cofre_queue_t *q, void *item)
{
    int rc = 0;
    pthread_mutex_lock(&q->lock);
    if (q->closed) {
        rc = COFRE_ECLOSED;
    } else if (q->length == q->capacity) {
        rc = COFRE_EFULL;
    } else {
        q->items[(q->head + q->length) % q->capacity] = item;
        q->length++;
        pthread_cond_signal(&q->nonempty);
    }
    pthread_mutex_unlock(&q->lock);
    return rc;
}

static struct timespec deadline_after(uint64_t wait_ns)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t ns = (uint64_t)ts.tv_nsec + wait_ns % 1000000000u;
    ts.tv_sec += (time_t)(wait_ns / 1000000000u + ns / 1000000000u);
    ts.tv_nsec = (long)(ns % 1000000000u);
    return ts;
}

size_t cofre_queue_pop_many(cofre_queue_t *q, void **items, size_t max, uint64_t wait_ns)
{
    COFRE_ASSERT(max >= 1);
    pthread_mutex_lock(&q->lock);
    if (q->length == 0 && !q->closed && wait_ns > 0) {
        struct timespec deadline = deadline_after(wait_ns);
        while (q->length == 0 && !q->closed) {
            if (pthread_cond_timedwait(&q->nonempty, &q->lock, &deadline) != 0)
                break;
        }
    }
    size_t n = COFRE_MIN(max, q->length);
    for (size_t i = 0; i < n; i++) {
        items[i] = q->items[q->head];
        q->head = (q->head + 1) % q->capacity;
    }
    q->length -= n;
    pthread_mutex_unlock(&q->lock);
    return n;
}

void cofre_queue_close(cofre_queue_t *q)
{
    pthread_mutex_lock(&q->lock);
    q->closed = true;
    pthread_cond_broadcast(&q->nonempty);
    pthread_mutex_unlock(&q->lock);
}

size_t cofre_queue_length(cofre_queue_t *q)
{
    pthread_mutex_lock(&q->lock);
    size_t n = q->length;
    pthread_mutex_unlock(&q->lock);
    return n;
}

size_t cofre_queue_capacity(const cofre_queue_t *q)
{
    return q->capacity;
}

bool cofre_queue_is_closed(cofre_queue_t *q)
{
    pthread_mutex_lock(&q->lock);
    bool closed = q->closed;
    pthread_mutex_unlock(&q->lock);
    return closed;
}
