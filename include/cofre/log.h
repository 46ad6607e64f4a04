/*
 * log.h: structured JSON logs on stdout, one object per line, with the contract's fields (ts,
 * level, service, msg, trace_id, request_id) and typed extra fields.
 *
 *   COFRE_LOG(COFRE_LOG_INFO, &req->trace, "transfer posted",
 *             COFRE_LF_STR("transfer_id", id), COFRE_LF_INT("amount", amount));
 *   cofre_log_msg(COFRE_LOG_WARN, NULL, "database unreachable");
 *
 * Event-loop threads call cofre_log_buffer_start() once and cofre_log_flush() after each loop
 * iteration, so many lines leave in one write; other threads write each line at once.
 * Secrets, tokens and full account or card numbers are never passed to the logger.
 */
#ifndef COFRE_LOG_H
#define COFRE_LOG_H

#include "cofre/trace.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum cofre_log_level {
    COFRE_LOG_DEBUG = 0,
    COFRE_LOG_INFO = 1,
    COFRE_LOG_WARN = 2,
    COFRE_LOG_ERROR = 3,
} cofre_log_level_t;

typedef enum cofre_log_type {
    COFRE_LOG_T_STR,
    COFRE_LOG_T_INT,
    COFRE_LOG_T_DOUBLE,
    COFRE_LOG_T_BOOL,
} cofre_log_type_t;

typedef struct cofre_log_field {
    const char *key;
    cofre_log_type_t type;
    union {
        const char *s; /* NULL is written as null */
        int64_t i;
        double d;
        bool b;
    } v;
} cofre_log_field_t;

#define COFRE_LF_STR(k, val)                                                                       \
    ((cofre_log_field_t){.key = (k), .type = COFRE_LOG_T_STR, .v.s = (val)})
#define COFRE_LF_INT(k, val)                                                                       \
    ((cofre_log_field_t){.key = (k), .type = COFRE_LOG_T_INT, .v.i = (int64_t)(val)})
#define COFRE_LF_DBL(k, val)                                                                       \
    ((cofre_log_field_t){.key = (k), .type = COFRE_LOG_T_DOUBLE, .v.d = (double)(val)})
#define COFRE_LF_BOOL(k, val)                                                                      \
    ((cofre_log_field_t){.key = (k), .type = COFRE_LOG_T_BOOL, .v.b = (val)})

/* Sets the service name written in every line and the minimum level. Call once at start. */
void cofre_log_init(const char *service, cofre_log_level_t level);

/* Parses "debug", "info", "warn" or "error". Returns 0 or COFRE_EINVAL. */
int cofre_log_level_parse(const char *s, cofre_log_level_t *out);

bool cofre_log_enabled(cofre_log_level_t level);

/* Writes one line. trace may be NULL (no trace_id / request_id fields). */
void cofre_log_write(cofre_log_level_t level, const cofre_trace_t *trace, const char *msg,
                     const cofre_log_field_t *fields, size_t nfields);

#define COFRE_LOG(level, trace, msg, ...)                                                          \
    do {                                                                                           \
        if (cofre_log_enabled(level)) {                                                            \
            const cofre_log_field_t cofre_log_fields_[] = {__VA_ARGS__};                           \
            cofre_log_write(level, trace, msg, cofre_log_fields_,                                  \
                            sizeof(cofre_log_fields_) / sizeof(cofre_log_fields_[0]));             \
        }                                                                                          \
    } while (0)

#define cofre_log_msg(level, trace, msg)                                                           \
    do {                                                                                           \
        if (cofre_log_enabled(level))                                                              \
            cofre_log_write(level, trace, msg, NULL, 0);                                           \
    } while (0)

/* Buffers this thread's lines until cofre_log_flush() (or until the buffer fills). */
void cofre_log_buffer_start(void);
/* Writes this thread's buffered lines. */
void cofre_log_flush(void);

/*
 * Redirects output to fd (default 1, stdout). For tests only; not thread-safe against
 * concurrent writers.
 */
void cofre_log_set_fd(int fd);

#endif
