/*
 * jbuf.h: a growable byte buffer that writes JSON. Responses, log lines and events are written
 * with it, in one pass and without building a tree; commas are placed by the buffer.
 *
 *   cofre_jbuf_t b;
 *   cofre_jbuf_init(&b);
 *   cofre_jbuf_obj_begin(&b);
 *   cofre_jbuf_kstr(&b, "id", id);
 *   cofre_jbuf_kint(&b, "amount", 100);
 *   cofre_jbuf_obj_end(&b);
 *   ... use b.data, b.len ...
 *   cofre_jbuf_release(&b);
 */
#ifndef COFRE_JBUF_H
#define COFRE_JBUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define COFRE_JBUF_DEPTH_MAX 32

typedef struct cofre_jbuf {
    char *data; /* always NUL-terminated after any write */
    size_t len;
    size_t cap;
    unsigned depth;
    bool after_key;
    bool has_items[COFRE_JBUF_DEPTH_MAX];
} cofre_jbuf_t;

void cofre_jbuf_init(cofre_jbuf_t *b);
void cofre_jbuf_release(cofre_jbuf_t *b);
/* Empties the buffer, keeping its memory. */
void cofre_jbuf_reset(cofre_jbuf_t *b);
/* Hands the data to the caller (who frees it) and leaves the buffer empty. */
char *cofre_jbuf_steal(cofre_jbuf_t *b, size_t *len);

/* Raw bytes, no separators: for building non-JSON text (metrics, headers). */
void cofre_jbuf_append(cofre_jbuf_t *b, const void *data, size_t len);
void cofre_jbuf_appendz(cofre_jbuf_t *b, const char *s);
void cofre_jbuf_append_int(cofre_jbuf_t *b, int64_t v);
void cofre_jbuf_append_uint(cofre_jbuf_t *b, uint64_t v);
/* Appends s as the body of a JSON string (escaped, without quotes); invalid UTF-8 becomes
 * U+FFFD. */
void cofre_jbuf_append_escaped(cofre_jbuf_t *b, const char *s, size_t len);

void cofre_jbuf_obj_begin(cofre_jbuf_t *b);
void cofre_jbuf_obj_end(cofre_jbuf_t *b);
void cofre_jbuf_arr_begin(cofre_jbuf_t *b);
void cofre_jbuf_arr_end(cofre_jbuf_t *b);
void cofre_jbuf_key(cofre_jbuf_t *b, const char *key);

/* Values, as array elements or after cofre_jbuf_key. */
void cofre_jbuf_str(cofre_jbuf_t *b, const char *s);
void cofre_jbuf_strn(cofre_jbuf_t *b, const char *s, size_t len);
void cofre_jbuf_int(cofre_jbuf_t *b, int64_t v);
void cofre_jbuf_uint(cofre_jbuf_t *b, uint64_t v);
void cofre_jbuf_double(cofre_jbuf_t *b, double v);
void cofre_jbuf_bool(cofre_jbuf_t *b, bool v);
void cofre_jbuf_null(cofre_jbuf_t *b);
/* A value that is already valid JSON text. */
void cofre_jbuf_raw(cofre_jbuf_t *b, const char *json, size_t len);

/* key + value in one call. A NULL string writes null. */
void cofre_jbuf_kstr(cofre_jbuf_t *b, const char *key, const char *s);
void cofre_jbuf_kint(cofre_jbuf_t *b, const char *key, int64_t v);
void cofre_jbuf_kuint(cofre_jbuf_t *b, const char *key, uint64_t v);
void cofre_jbuf_kbool(cofre_jbuf_t *b, const char *key, bool v);

#endif
