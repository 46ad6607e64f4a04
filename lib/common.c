/*
 * common.c: error names, assertions, aborting allocation, clocks and hex helpers shared by
 * every module.
 */
#include "cofre/common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

const char *cofre_strerror(int err)
{
    switch (err) {
    case 0:
        return "success";
    case COFRE_EINVAL:
        return "invalid input";
    case COFRE_ENOENT:
        return "not found";
    case COFRE_EEXIST:
        return "already exists";
    case COFRE_EFULL:
        return "queue full";
    case COFRE_EIO:
        return "i/o error";
    case COFRE_ETIMEDOUT:
        return "timed out";
    case COFRE_ECLOSED:
        return "closed";
    case COFRE_ERANGE:
        return "out of range";
    case COFRE_ECONFLICT:
        return "conflict";
    case COFRE_ETOOLARGE:
        return "too large";
    case COFRE_EUNAVAIL:
        return "unavailable";
    default:
        return "unknown error";
    }
}

void cofre_assert_fail(const char *expr, const char *file, int line, const char *func)
{
    fprintf(stderr, "assertion failed: %s (%s:%d, %s)\n", expr, file, line, func);
    fflush(stderr);
    abort();
}

static void *check_alloc(void *p, size_t size)
{
    if (p == NULL && size != 0) {
        fprintf(stderr, "out of memory allocating %zu bytes\n", size);
        abort();
    }
    return p;
}

void *cofre_malloc(size_t size)
{
    return check_alloc(malloc(size), size);
}

void *cofre_calloc(size_t count, size_t size)
{
    return check_alloc(calloc(count, size), count * size);
}

void *cofre_realloc(void *ptr, size_t size)
{
    return check_alloc(realloc(ptr, size), size);
}

char *cofre_strdup(const char *s)
{
    return cofre_strndup(s, strlen(s));
}

char *cofre_strndup(const char *s, size_t len)
{
    char *p = cofre_malloc(len + 1);
    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

uint64_t cofre_now_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t cofre_now_wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

void cofre_time_format(uint64_t wall_us, char *buf)
{
    time_t secs = (time_t)(wall_us / 1000000u);
    struct tm tm;
    gmtime_r(&secs, &tm);
    size_t n = strftime(buf, COFRE_TIME_LEN + 1, "%Y-%m-%dT%H:%M:%S", &tm);
    COFRE_ASSERT(n == 19);
    snprintf(buf + n, COFRE_TIME_LEN + 1 - n, ".%06uZ", (unsigned)(wall_us % 1000000u));
}

void cofre_random_bytes(void *buf, size_t len)
{
    uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = getrandom(p, len, 0);
        if (n < 0) {
            perror("getrandom");
            abort();
        }
        p += n;
        len -= (size_t)n;
    }
}

void cofre_hex_encode(const uint8_t *in, size_t len, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 0xf];
    }
    out[2 * len] = '\0';
}

bool cofre_is_lower_hex(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return false;
    }
    return true;
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

long cofre_url_decode(const char *in, size_t len, char *out, size_t outsz, bool plus_is_space)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        char c = in[i];
        if (c == '%') {
            if (i + 2 >= len)
                return -1;
            int hi = hex_value(in[i + 1]), lo = hex_value(in[i + 2]);
            if (hi < 0 || lo < 0)
                return -1;
            c = (char)(hi << 4 | lo);
            i += 2;
        } else if (c == '+' && plus_is_space) {
            c = ' ';
        }
        if (c == '\0' || o + 1 >= outsz)
            return -1;
        out[o++] = c;
    }
    if (outsz == 0)
        return -1;
    out[o] = '\0';
    return (long)o;
}
