/*
 * jbuf.c: the JSON-writing buffer. Every write keeps data NUL-terminated so callers can hand
 * it to C string functions; commas are tracked per nesting level.
 */
#include "cofre/jbuf.h"

#include "cofre/common.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cofre_jbuf_init(cofre_jbuf_t *b)
{
    memset(b, 0, sizeof(*b));
}

void cofre_jbuf_release(cofre_jbuf_t *b)
{
    free(b->data);
    cofre_jbuf_init(b);
}

void cofre_jbuf_reset(cofre_jbuf_t *b)
{
    b->len = 0;
    b->depth = 0;
    b->after_key = false;
    b->has_items[0] = false;
    if (b->data != NULL)
        b->data[0] = '\0';
}

char *cofre_jbuf_steal(cofre_jbuf_t *b, size_t *len)
{
    if (b->data == NULL)
        cofre_jbuf_append(b, "", 0);
    char *data = b->data;
    if (len != NULL)
        *len = b->len;
    cofre_jbuf_init(b);
    return data;
}

static void reserve(cofre_jbuf_t *b, size_t extra)
{
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return;
    size_t cap = b->cap == 0 ? 256 : b->cap;
    while (cap < need)
        cap *= 2;
    b->data = cofre_realloc(b->data, cap);
    b->cap = cap;
}

void cofre_jbuf_append(cofre_jbuf_t *b, const void *data, size_t len)
{
    reserve(b, len);
    if (len > 0)
        memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
}

void cofre_jbuf_appendz(cofre_jbuf_t *b, const char *s)
{
    cofre_jbuf_append(b, s, strlen(s));
}

void cofre_jbuf_append_uint(cofre_jbuf_t *b, uint64_t v)
{
    char tmp[24];
    size_t n = 0;
    do {
        tmp[sizeof(tmp) - 1 - n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    cofre_jbuf_append(b, tmp + sizeof(tmp) - n, n);
}

void cofre_jbuf_append_int(cofre_jbuf_t *b, int64_t v)
{
    if (v < 0) {
        cofre_jbuf_append(b, "-", 1);
        /* Negate in unsigned arithmetic so INT64_MIN does not overflow. */
        cofre_jbuf_append_uint(b, (uint64_t)0 - (uint64_t)v);
        return;
    }
    cofre_jbuf_append_uint(b, (uint64_t)v);
}

/* Length of the valid UTF-8 sequence at s (at most len bytes), or 0 when invalid. */
static size_t utf8_seq_len(const unsigned char *s, size_t len)
{
    unsigned char c = s[0];
    size_t n;
    uint32_t cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
        cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (n > len)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

void cofre_jbuf_append_escaped(cofre_jbuf_t *b, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    reserve(b, len + 2);
    while (i < len) {
        size_t run = i;
        while (run < len && p[run] >= 0x20 && p[run] < 0x80 && p[run] != '"' && p[run] != '\\')
            run++;
        if (run > i) {
            cofre_jbuf_append(b, p + i, run - i);
            i = run;
            continue;
        }
        unsigned char c = p[i];
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            cofre_jbuf_append(b, esc, 2);
            i++;
        } else if (c < 0x20) {
            char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 0xf]};
            cofre_jbuf_append(b, esc, 6);
            i++;
        } else {
            size_t n = utf8_seq_len(p + i, len - i);
            if (n == 0) {
                cofre_jbuf_append(b, "\\ufffd", 6);
                i++;
            } else {
                cofre_jbuf_append(b, p + i, n);
                i += n;
            }
        }
    }
}

/* Writes the separator a new value or key needs at the current level. */
static void sep(cofre_jbuf_t *b)
{
    if (b->after_key) {
        b->after_key = false;
        return;
    }
    if (b->has_items[b->depth])
        cofre_jbuf_append(b, ",", 1);
    b->has_items[b->depth] = true;
}

static void open(cofre_jbuf_t *b, char c)
{
    sep(b);
    cofre_jbuf_append(b, &c, 1);
    COFRE_ASSERT(b->depth + 1 < COFRE_JBUF_DEPTH_MAX);
    b->depth++;
    b->has_items[b->depth] = false;
}

static void close_level(cofre_jbuf_t *b, char c)
{
    COFRE_ASSERT(b->depth > 0);
    b->depth--;
    cofre_jbuf_append(b, &c, 1);
}

void cofre_jbuf_obj_begin(cofre_jbuf_t *b)
{
    open(b, '{');
}

void cofre_jbuf_obj_end(cofre_jbuf_t *b)
{
    close_level(b, '}');
}

void cofre_jbuf_arr_begin(cofre_jbuf_t *b)
{
    open(b, '[');
}

void cofre_jbuf_arr_end(cofre_jbuf_t *b)
{
    close_level(b, ']');
}

void cofre_jbuf_key(cofre_jbuf_t *b, const char *key)
{
    sep(b);
    cofre_jbuf_append(b, "\"", 1);
    cofre_jbuf_append_escaped(b, key, strlen(key));
    cofre_jbuf_append(b, "\":", 2);
    b->after_key = true;
}

void cofre_jbuf_strn(cofre_jbuf_t *b, const char *s, size_t len)
{
    sep(b);
    cofre_jbuf_append(b, "\"", 1);
    cofre_jbuf_append_escaped(b, s, len);
    cofre_jbuf_append(b, "\"", 1);
}

void cofre_jbuf_str(cofre_jbuf_t *b, const char *s)
{
    if (s == NULL) {
        cofre_jbuf_null(b);
        return;
    }
    cofre_jbuf_strn(b, s, strlen(s));
}

void cofre_jbuf_int(cofre_jbuf_t *b, int64_t v)
{
    sep(b);
    cofre_jbuf_append_int(b, v);
}

void cofre_jbuf_uint(cofre_jbuf_t *b, uint64_t v)
{
    sep(b);
    cofre_jbuf_append_uint(b, v);
}

void cofre_jbuf_double(cofre_jbuf_t *b, double v)
{
    sep(b);
    if (!isfinite(v)) {
        cofre_jbuf_append(b, "null", 4);
        return;
    }
    char tmp[32];
    int n = snprintf(tmp, sizeof(tmp), "%.17g", v);
    cofre_jbuf_append(b, tmp, (size_t)n);
}

void cofre_jbuf_bool(cofre_jbuf_t *b, bool v)
{
    sep(b);
    if (v)
        cofre_jbuf_append(b, "true", 4);
    else
        cofre_jbuf_append(b, "false", 5);
}

void cofre_jbuf_null(cofre_jbuf_t *b)
{
    sep(b);
    cofre_jbuf_append(b, "null", 4);
}

void cofre_jbuf_raw(cofre_jbuf_t *b, const char *json, size_t len)
{
    sep(b);
    cofre_jbuf_append(b, json, len);
}

void cofre_jbuf_kstr(cofre_jbuf_t *b, const char *key, const char *s)
{
    cofre_jbuf_key(b, key);
    cofre_jbuf_str(b, s);
}

void cofre_jbuf_kint(cofre_jbuf_t *b, const char *key, int64_t v)
{
    cofre_jbuf_key(b, key);
    cofre_jbuf_int(b, v);
}

void cofre_jbuf_kuint(cofre_jbuf_t *b, const char *key, uint64_t v)
{
    cofre_jbuf_key(b, key);
    cofre_jbuf_uint(b, v);
}

void cofre_jbuf_kbool(cofre_jbuf_t *b, const char *key, bool v)
{
    cofre_jbuf_key(b, key);
    cofre_jbuf_bool(b, v);
}
