/*
 * log.c: JSON log lines. Each thread formats into its own buffer; a buffered thread (an event
 * loop) hands the buffer to write(2) once per loop iteration, the others once per line. Lines
 * from different threads never interleave because each write carries whole lines.
 */
#include "cofre/log.h"

#include "cofre/common.h"
#include "cofre/jbuf.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#define LOG_BUFFER_FLUSH_AT (32 * 1024)
#define LOG_MSG_MAX         4096

static const char *log_service = "cofre";
static cofre_log_level_t log_level = COFRE_LOG_INFO;
static int log_fd = 1;

static _Thread_local cofre_jbuf_t thread_buf;
static _Thread_local bool thread_buffered;
static _Thread_local bool thread_registered;
static pthread_key_t exit_key;
static pthread_once_t exit_key_once = PTHREAD_ONCE_INIT;

/* A thread's buffer is freed when the thread ends (its lines were flushed before). */
static void release_thread_buffer(void *buf)
{
    cofre_jbuf_release(buf);
}

static void create_exit_key(void)
{
    COFRE_ASSERT(pthread_key_create(&exit_key, release_thread_buffer) == 0);
}

static cofre_jbuf_t *thread_buffer(void)
{
    if (!thread_registered) {
        pthread_once(&exit_key_once, create_exit_key);
        pthread_setspecific(exit_key, &thread_buf);
        thread_registered = true;
    }
    return &thread_buf;
}

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void cofre_log_init(const char *service, cofre_log_level_t level)
{
    log_service = service;
    log_level = level;
}

int cofre_log_level_parse(const char *s, cofre_log_level_t *out)
{
    for (size_t i = 0; i < COFRE_ARRAY_SIZE(level_names); i++) {
        if (strcmp(s, level_names[i]) == 0) {
            *out = (cofre_log_level_t)i;
            return 0;
        }
    }
    return COFRE_EINVAL;
}

bool cofre_log_enabled(cofre_log_level_t level)
{
    return level >= log_level;
}

void cofre_log_set_fd(int fd)
{
    log_fd = fd;
}

void cofre_log_buffer_start(void)
{
    thread_buffered = true;
}

void cofre_log_flush(void)
{
    cofre_jbuf_t *b = &thread_buf;
    size_t off = 0;
    while (off < b->len) {
        ssize_t n = write(log_fd, b->data + off, b->len - off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            break; /* nowhere to report a failing log; drop the lines */
        }
        off += (size_t)n;
    }
    cofre_jbuf_reset(b);
}

static void write_field(cofre_jbuf_t *b, const cofre_log_field_t *f)
{
    cofre_jbuf_key(b, f->key);
    switch (f->type) {
    case COFRE_LOG_T_STR:
        cofre_jbuf_str(b, f->v.s);
        break;
    case COFRE_LOG_T_INT:
        cofre_jbuf_int(b, f->v.i);
        break;
    case COFRE_LOG_T_DOUBLE:
        cofre_jbuf_double(b, f->v.d);
        break;
    case COFRE_LOG_T_BOOL:
        cofre_jbuf_bool(b, f->v.b);
        break;
    }
}

void cofre_log_write(cofre_log_level_t level, const cofre_trace_t *trace, const char *msg,
                     const cofre_log_field_t *fields, size_t nfields)
{
    COFRE_ASSERT(level >= COFRE_LOG_DEBUG && level <= COFRE_LOG_ERROR);
    cofre_jbuf_t *b = thread_buffer();
    char ts[COFRE_TIME_LEN + 1];
    cofre_time_format(cofre_now_wall_us(), ts);

    /* The buffer keeps whole lines; the JSON nesting restarts with each one. */
    b->depth = 0;
    b->after_key = false;
    b->has_items[0] = false;
    cofre_jbuf_obj_begin(b);
    cofre_jbuf_kstr(b, "ts", ts);
    cofre_jbuf_kstr(b, "level", level_names[level]);
    cofre_jbuf_kstr(b, "service", log_service);
    cofre_jbuf_key(b, "msg");
    cofre_jbuf_strn(b, msg, strnlen(msg, LOG_MSG_MAX));
    if (trace != NULL) {
        cofre_jbuf_kstr(b, "trace_id", trace->trace_id);
        cofre_jbuf_kstr(b, "span_id", trace->span_id);
        if (trace->request_id[0] != '\0')
            cofre_jbuf_kstr(b, "request_id", trace->request_id);
    }
    for (size_t i = 0; i < nfields; i++)
        write_field(b, &fields[i]);
    cofre_jbuf_obj_end(b);
    cofre_jbuf_append(b, "\n", 1);

    if (!thread_buffered || b->len >= LOG_BUFFER_FLUSH_AT)
        cofre_log_flush();
}
