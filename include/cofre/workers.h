/*
 * workers.h: a fixed pool of threads that run tasks from a bounded queue: reads against the
 * database, hashing, anything that would block a loop. Each thread may own per-thread state
 * (a database connection) made by thread_init; a task's run gets it. After run, the task is
 * completed back to its request's loop.
 */
#ifndef COFRE_WORKERS_H
#define COFRE_WORKERS_H

#include "cofre/http.h"

#include <stddef.h>

typedef struct cofre_workers cofre_workers_t;

typedef struct cofre_workers_config {
    const char *name; /* for metrics and logs: "readers" */
    unsigned threads;
    size_t queue_max;
    void *(*thread_init)(void *data); /* optional: per-thread state */
    void (*thread_fini)(void *thread_data);
    void *data;
} cofre_workers_config_t;

/* Starts the threads. */
cofre_workers_t *cofre_workers_start(const cofre_workers_config_t *cfg);

/*
 * Queues task (task->run must be set, and the task deferred on a request). Returns 0, or
 * COFRE_EFULL when the queue is full (answer 503 overloaded), COFRE_ECLOSED when stopping.
 */
int cofre_workers_submit(cofre_workers_t *w, cofre_task_t *task);

/* Tasks waiting (for a queue-depth gauge). */
size_t cofre_workers_queue_length(cofre_workers_t *w);

/* Runs what is queued, then joins the threads and frees the pool. */
void cofre_workers_stop(cofre_workers_t *w);

#endif
