/*
 * throttle.h: throttling of failed authentications, one table per kind of key (the client id
 * tried, the source address). Each key has a token bucket of `burst` failures that refills at
 * burst per period_s; a key whose bucket is empty is refused (429) until it refills, before
 * any secret is hashed. The table is bounded: set-associative with a keyed hash (SipHash, a
 * random key per process) so an attacker cannot aim many keys at one set, and eviction drops
 * the entry that remembers the least (the fullest bucket).
 *
 * Thread-safe (one mutex; every operation is a few hundred nanoseconds). Times are
 * monotonic milliseconds, passed in so tests control the clock.
 */
#ifndef COFRE_AUTH_THROTTLE_H
#define COFRE_AUTH_THROTTLE_H

#include <stddef.h>
#include <stdint.h>

#define COFRE_THROTTLE_KEY_MAX 128

typedef struct cofre_throttle cofre_throttle_t;

/*
 * A table of about entries_max keys allowing burst failures per period_s per key
 * (burst >= 1, period_s >= 1).
 */
cofre_throttle_t *cofre_throttle_new(size_t entries_max, unsigned burst, unsigned period_s);

/*
 * Returns 0 when key may try now, or the whole seconds to wait before its next try (for
 * Retry-After). Keys longer than COFRE_THROTTLE_KEY_MAX are cut there.
 */
unsigned cofre_throttle_check(cofre_throttle_t *t, const char *key, uint64_t now_ms);

/* Records a failure of key. */
void cofre_throttle_fail(cofre_throttle_t *t, const char *key, uint64_t now_ms);

/* Keys tracked (tests). */
size_t cofre_throttle_size(cofre_throttle_t *t);

void cofre_throttle_free(cofre_throttle_t *t);

/*
 * Parses "N/S" (N failures per S seconds, 1 <= N <= 100000, 1 <= S <= 86400). Returns 0 or
 * COFRE_EINVAL.
 */
int cofre_throttle_parse_rate(const char *s, unsigned *burst, unsigned *period_s);

#endif
