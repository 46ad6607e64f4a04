/*
 * trace.h: W3C Trace Context (traceparent) and request ids. Every request either continues the
 * caller's trace or starts one; the ids are carried into logs, events and outbound calls.
 */
#ifndef COFRE_TRACE_H
#define COFRE_TRACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define COFRE_TRACEPARENT_LEN 55 /* "00-" 32 hex "-" 16 hex "-" 2 hex */
#define COFRE_REQUEST_ID_MAX  128

typedef struct cofre_trace {
    char trace_id[33];  /* 32 lowercase hex */
    char span_id[17];   /* this service's span, 16 lowercase hex */
    char parent_id[17]; /* the caller's span, or "" when this service started the trace */
    uint8_t flags;      /* trace-flags; bit 0 is "sampled" */
    char request_id[COFRE_REQUEST_ID_MAX + 1];
} cofre_trace_t;

/*
 * Continues the trace in a traceparent header value (may be NULL or malformed: then a new
 * trace is started) with a new span id of this service. Returns true when the header was
 * valid and continued.
 */
bool cofre_trace_start(cofre_trace_t *t, const char *traceparent, size_t len);

/*
 * Sets the request id from a client-supplied value when it is acceptable (1 to 128 characters
 * of [A-Za-z0-9._-]), else generates one (32 hex). Returns true when the value was taken.
 */
bool cofre_trace_set_request_id(cofre_trace_t *t, const char *value, size_t len);

/* Writes the traceparent for this service's span (COFRE_TRACEPARENT_LEN + 1 bytes). */
void cofre_trace_format(const cofre_trace_t *t, char *out);

/* Parses a traceparent strictly enough for W3C level 1; fills trace id, parent id, flags. */
bool cofre_trace_parse(const char *s, size_t len, char trace_id[33], char parent_id[17],
                       uint8_t *flags);

/* Fast per-thread random 64-bit numbers (not for secrets). */
uint64_t cofre_trace_rand64(void);

#endif
