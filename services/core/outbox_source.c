/*
 * outbox_source.c: the ledger store's outbox behind the relay's source interface.
 */
#include "core/outbox_source.h"

#include "cofre/common.h"
#include "cofre/db.h"
#include "core/store.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

struct cofre_outbox_source {
    char *db_url;
    char *lock_path; /* SQLite: the file whose lock makes one process the relay */
    int lock_fd;
    cofre_store_t *store;      /* fetch and stats, on the relay thread */
    cofre_store_t *mark_store; /* marks, on the relay's marker thread */
    cofre_outbox_row_t *rows;  /* the store's rows, converted to the relay's */
    size_t rows_cap;
};

/*
 * SQLite: processes sharing one database file (make run's two core replicas) take turns
 * relaying its outbox through an exclusive lock on a file beside it, released by the kernel
 * when the holder dies. PostgreSQL's replicas each relay (see docs/events/README.md).
 */
static int take_relay_lock(cofre_outbox_source_t *s)
{
    if (s->lock_path == NULL || s->lock_fd >= 0)
        return 0;
    int fd = open(s->lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return COFRE_EIO;
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int busy = errno == EWOULDBLOCK;
        close(fd);
        return busy ? COFRE_EEXIST : COFRE_EIO;
    }
    s->lock_fd = fd;
    return 0;
}

static int source_open(void *data)
{
    cofre_outbox_source_t *s = data;
    int rc = take_relay_lock(s);
    if (rc != 0)
        return rc;
    rc = s->store != NULL ? 0 : cofre_store_open(s->db_url, false, &s->store);
    if (rc == 0 && s->mark_store == NULL)
        rc = cofre_store_open(s->db_url, false, &s->mark_store);
    return rc;
}

static void copy_field(char *dst, size_t size, const char *src)
{
    snprintf(dst, size, "%s", src);
}

static int source_fetch(void *data, int64_t after_seq, size_t max, cofre_relay_row_t *out,
                        size_t *n)
{
    cofre_outbox_source_t *s = data;
    if (max > s->rows_cap) {
        s->rows = cofre_realloc(s->rows, max * sizeof(*s->rows));
        s->rows_cap = max;
    }
    size_t got = 0;
    int rc = s->store->ops->outbox_fetch(s->store, after_seq, max, s->rows, &got);
    for (size_t i = 0; i < got; i++) {
        cofre_outbox_row_t *in = &s->rows[i];
        cofre_relay_row_t *o = &out[i];
        o->seq = in->seq;
        copy_field(o->event_id, sizeof(o->event_id), in->event_id);
        copy_field(o->topic, sizeof(o->topic), in->topic);
        copy_field(o->key, sizeof(o->key), in->partition_key);
        copy_field(o->traceparent, sizeof(o->traceparent), in->traceparent);
        o->payload = in->payload; /* handed over */
        o->payload_len = in->payload_len;
    }
    *n = got;
    return rc;
}

static int source_mark(void *data, const int64_t *seqs, size_t n)
{
    cofre_outbox_source_t *s = data;
    return s->mark_store->ops->outbox_mark_published(s->mark_store, seqs, n);
}

static int source_stats(void *data, int64_t *pending, double *oldest_age_s)
{
    cofre_outbox_source_t *s = data;
    return s->store->ops->outbox_stats(s->store, pending, oldest_age_s);
}

static void source_close(void *data)
{
    cofre_outbox_source_t *s = data;
    if (s->store != NULL)
        cofre_store_close(s->store);
    if (s->mark_store != NULL)
        cofre_store_close(s->mark_store);
    s->store = s->mark_store = NULL;
    if (s->lock_fd >= 0)
        close(s->lock_fd); /* releases the lock */
    s->lock_fd = -1;
}

cofre_outbox_source_t *cofre_outbox_source_new(const char *db_url, cofre_relay_source_t *src)
{
    cofre_outbox_source_t *s = cofre_calloc(1, sizeof(*s));
    s->db_url = cofre_strdup(db_url);
    s->lock_fd = -1;
    cofre_db_kind_t kind = COFRE_DB_POSTGRES;
    const char *target = NULL;
    cofre_db_parse_url(db_url, &kind, &target);
    if (kind == COFRE_DB_SQLITE) {
        size_t len = strlen(target) + sizeof("-relay.lock");
        s->lock_path = cofre_malloc(len);
        snprintf(s->lock_path, len, "%s-relay.lock", target);
    }
    *src = (cofre_relay_source_t){
        .name = "ledger",
        .ordered = kind == COFRE_DB_SQLITE, /* one committer: commit order is seq order */
        .open = source_open,
        .fetch = source_fetch,
        .mark = source_mark,
        .stats = source_stats,
        .close = source_close,
        .data = s,
    };
    return s;
}

void cofre_outbox_source_free(cofre_outbox_source_t *s)
{
    if (s == NULL)
        return;
    source_close(s);
    free(s->rows);
    free(s->lock_path);
    free(s->db_url);
    free(s);
}
