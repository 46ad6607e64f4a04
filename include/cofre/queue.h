/*
 * queue.h: a bounded multi-producer, multi-consumer queue of pointers. Producers (event loops)
 * never wait: a full queue is an answer (503), not a stall. Consumers (workers, the committer)
 * wait with a timeout and may take many items at once.
 */
#ifndef COFRE_QUEUE_H
#define COFRE_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct cofre_queue cofre_queue_t;

/* A queue holding at most capacity items (capacity >= 1). */
cofre_queue_t *cofre_queue_new(size_t capacity);

/* Frees the queue; it must be empty and have no waiting consumer. */
void cofre_queue_free(cofre_queue_t *q);

/* Adds item without waiting. Returns 0, COFRE_EFULL, or COFRE_ECLOSED after close. */
int cofre_queue_push(cofre_queue_t *q, void *item);

/*
 * Takes up to max items in FIFO order into items. Waits up to wait_ns for the first one
 * (0: do not wait); once one is there, also takes whatever else is there, without waiting.
 * Returns the number taken: 0 on timeout, or when the queue is closed and empty.
 */
size_t cofre_queue_pop_many(cofre_queue_t *q, void **items, size_t max, uint64_t wait_ns);

/* Refuses further pushes and wakes every waiting consumer; items already queued stay. */
void cofre_queue_close(cofre_queue_t *q);

size_t cofre_queue_length(cofre_queue_t *q);
bool cofre_queue_is_closed(cofre_queue_t *q);
size_t cofre_queue_capacity(const cofre_queue_t *q);

#endif
