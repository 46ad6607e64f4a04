/*
 * common.h: what every module of libcofre and every service uses: error codes, assertions,
 * allocation that aborts on exhaustion, clocks and small string helpers.
 */
#ifndef COFRE_COMMON_H
#define COFRE_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Error codes: action functions return 0 or one of these (negative). */
#define COFRE_EINVAL    -1  /* an argument or input is malformed */
#define COFRE_ENOENT    -2  /* the thing asked for does not exist */
#define COFRE_EEXIST    -3  /* the thing to create exists already */
#define COFRE_EFULL     -4  /* a bounded queue or table is full */
#define COFRE_EIO       -5  /* a database, file or socket failed */
#define COFRE_ETIMEDOUT -6  /* a wait ran out of time */
#define COFRE_ECLOSED   -7  /* the queue, connection or service is shutting down */
#define COFRE_ERANGE    -8  /* a value is out of its allowed range */
#define COFRE_ECONFLICT -9  /* a concurrent writer won; the caller may retry */
#define COFRE_ETOOLARGE -10 /* an input exceeds its size limit */
#define COFRE_EUNAVAIL  -11 /* a dependency (database, broker) is unreachable */

/* Returns a short constant description of a COFRE_E* code. */
const char *cofre_strerror(int err);

/*
 * Always-on assertion for programmer errors (never for outside input): prints the expression,
 * file and line to stderr and aborts.
 */
#define COFRE_ASSERT(expr)                                                                         \
    ((expr) ? (void)0 : cofre_assert_fail(#expr, __FILE__, __LINE__, __func__))

_Noreturn void cofre_assert_fail(const char *expr, const char *file, int line, const char *func);

/* Aborts like a failed assertion, for a branch that must never run (a programming error). */
#define COFRE_PANIC(msg) cofre_assert_fail(msg, __FILE__, __LINE__, __func__)

/* Allocation: aborts the process when memory is exhausted, so callers never check. */
void *cofre_malloc(size_t size);
void *cofre_calloc(size_t count, size_t size);
void *cofre_realloc(void *ptr, size_t size);
char *cofre_strdup(const char *s);
char *cofre_strndup(const char *s, size_t len);

/* Clocks. */
uint64_t cofre_now_mono_ns(void); /* CLOCK_MONOTONIC, for durations */
uint64_t cofre_now_wall_us(void); /* CLOCK_REALTIME, microseconds since the epoch */

/*
 * Formats a wall-clock time in microseconds as RFC 3339 UTC with microseconds
 * ("2026-11-29T19:43:51.123456Z") into buf, which must hold COFRE_TIME_LEN + 1 bytes.
 */
#define COFRE_TIME_LEN 27
void cofre_time_format(uint64_t wall_us, char *buf);

/* Fills buf with len cryptographically random bytes (getrandom); aborts if the kernel cannot. */
void cofre_random_bytes(void *buf, size_t len);

/* Writes 2*len lowercase hex digits and a NUL into out. */
void cofre_hex_encode(const uint8_t *in, size_t len, char *out);

/* Returns true when s (of len bytes) is only lowercase hex digits. */
bool cofre_is_lower_hex(const char *s, size_t len);

/*
 * Percent-decodes len bytes of in into out (outsz bytes, NUL-terminated); '+' is a space when
 * plus_is_space (form and query encoding). Returns the decoded length, or -1 when the input
 * has a bad escape, decodes to a NUL byte, or does not fit.
 */
long cofre_url_decode(const char *in, size_t len, char *out, size_t outsz, bool plus_is_space);

#define COFRE_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define COFRE_MIN(a, b)     ((a) < (b) ? (a) : (b))
#define COFRE_MAX(a, b)     ((a) > (b) ? (a) : (b))

#endif
