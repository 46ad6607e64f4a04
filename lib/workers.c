/*
 * workers.c: the worker pool: threads popping tasks off one bounded queue.
 */
#include "cofre/workers.h"

#include "cofre/common.h"
#include "cofre/queue.h"

#include <pthread.h>
#include <stdlib.h>

#define WORKERS_THREADS_MAX 64
#define WORKERS_POP_WAIT_NS 1000000000u

struct cofre_workers {
    cofre_workers_config_t cfg;
    cofre_queue_t *queue;
    pthread_t threads[WORKERS_THREADS_MAX];
};

static void *worker_main(void *arg)
{
    cofre_workers_t *w = arg;
    pthread_setname_np(pthread_self(), w->cfg.name);
    void *thread_data = w->cfg.thread_init != NULL ? w->cfg.thread_init(w->cfg.data) : NULL;
    for (;;) {
        void *item;
        size_t n = cofre_queue_pop_many(w->queue, &item, 1, WORKERS_POP_WAIT_NS);
        if (n == 0) {
            if (cofre_queue_is_closed(w->queue) && cofre_queue_length(w->queue) == 0)
                break;
            continue;
        }
        cofre_task_t *task = item;
        task->run(task, thread_data);
        cofre_task_complete(task);
    }
    if (w->cfg.thread_fini != NULL)
        w->cfg.thread_fini(thread_data);
    return NULL;
}

cofre_workers_t *cofre_workers_start(const cofre_workers_config_t *cfg)
{
    COFRE_ASSERT(cfg->threads >= 1 && cfg->threads <= WORKERS_THREADS_MAX);
    cofre_workers_t *w = cofre_calloc(1, sizeof(*w));
    w->cfg = *cfg;
    w->queue = cofre_queue_new(cfg->queue_max);
    for (unsigned i = 0; i < cfg->threads; i++)
        COFRE_ASSERT(pthread_create(&w->threads[i], NULL, worker_main, w) == 0);
    return w;
}

int cofre_workers_submit(cofre_workers_t *w, cofre_task_t *task)
{
    COFRE_ASSERT(task->run != NULL && task->req != NULL);
    return cofre_queue_push(w->queue, task);
}

void cofre_workers_stop(cofre_workers_t *w)
{
    cofre_queue_close(w->queue);
    for (unsigned i = 0; i < w->cfg.threads; i++)
        pthread_join(w->threads[i], NULL);
    cofre_queue_free(w->queue);
    free(w);
}

size_t cofre_workers_queue_length(cofre_workers_t *w)
{
    return cofre_queue_length(w->queue);
}
