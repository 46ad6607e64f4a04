/*
 * throttle.c: token buckets in a set-associative table. A bucket holds up to `burst` tokens
 * in millionths; a failure takes a whole one, time gives back `burst` per period. A bucket may
 * go below zero when failures raced past the check, which only lengthens the wait.
 */
#include "auth/throttle.h"

#include "cofre/common.h"

#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WAYS  4
#define MILLI 1000000 /* fractions of a token */

typedef struct entry {
    bool used;
    char key[COFRE_THROTTLE_KEY_MAX + 1];
    int64_t micro_tokens;
    uint64_t updated_ms;
} entry_t;

struct cofre_throttle {
    pthread_mutex_t lock;
    uint8_t hash_key[crypto_shorthash_KEYBYTES];
    entry_t *entries;
    size_t nsets;
    int64_t capacity; /* in MILLI per token */
    unsigned period_s;
    size_t used;
};

cofre_throttle_t *cofre_throttle_new(size_t entries_max, unsigned burst, unsigned period_s)
{
    COFRE_ASSERT(burst >= 1 && period_s >= 1 && entries_max >= 1);
    cofre_throttle_t *t = cofre_calloc(1, sizeof(*t));
    pthread_mutex_init(&t->lock, NULL);
    cofre_random_bytes(t->hash_key, sizeof(t->hash_key));
    t->nsets = (entries_max + WAYS - 1) / WAYS;
    t->entries = cofre_calloc(t->nsets * WAYS, sizeof(entry_t));
    t->capacity = (int64_t)burst * MILLI;
    t->period_s = period_s;
    return t;
}

void cofre_throttle_free(cofre_throttle_t *t)
{
    if (t == NULL)
        return;
    pthread_mutex_destroy(&t->lock);
    free(t->entries);
    free(t);
}

/* Brings e's bucket up to now. */
static void refill(const cofre_throttle_t *t, entry_t *e, uint64_t now_ms)
{
    if (now_ms <= e->updated_ms)
        return;
    uint64_t period_ms = (uint64_t)t->period_s * 1000u;
    uint64_t elapsed = COFRE_MIN(now_ms - e->updated_ms, period_ms); /* a period fills it */
    int64_t gain = (int64_t)((uint64_t)t->capacity * elapsed / period_ms);
    e->micro_tokens = COFRE_MIN(t->capacity, e->micro_tokens + gain);
    e->updated_ms = now_ms;
}

static entry_t *set_of(cofre_throttle_t *t, const char *key, size_t len)
{
    uint8_t h[crypto_shorthash_BYTES];
    crypto_shorthash(h, (const uint8_t *)key, len, t->hash_key);
    uint64_t v;
    memcpy(&v, h, sizeof(v));
    return &t->entries[(v % t->nsets) * WAYS];
}

/* Finds key's entry; with create, makes one (evicting the fullest bucket of the set). */
static entry_t *find(cofre_throttle_t *t, const char *key, uint64_t now_ms, bool create)
{
    size_t len = strnlen(key, COFRE_THROTTLE_KEY_MAX);
    entry_t *set = set_of(t, key, len);
    entry_t *victim = NULL;
    for (size_t i = 0; i < WAYS; i++) {
        entry_t *e = &set[i];
        if (e->used && strncmp(e->key, key, len) == 0 && e->key[len] == '\0')
            return e;
        if (!e->used) {
            if (victim == NULL || victim->used)
                victim = e;
            continue;
        }
        refill(t, e, now_ms);
        if (victim == NULL || (victim->used && e->micro_tokens > victim->micro_tokens))
            victim = e;
    }
    if (!create)
        return NULL;
    if (!victim->used)
        t->used++;
    memcpy(victim->key, key, len);
    victim->key[len] = '\0';
    victim->used = true;
    victim->micro_tokens = t->capacity;
    victim->updated_ms = now_ms;
    return victim;
}

unsigned cofre_throttle_check(cofre_throttle_t *t, const char *key, uint64_t now_ms)
{
    pthread_mutex_lock(&t->lock);
    entry_t *e = find(t, key, now_ms, false);
    unsigned wait_s = 0;
    if (e != NULL) {
        refill(t, e, now_ms);
        if (e->micro_tokens < MILLI) {
            /* ms until one whole token: (MILLI - tokens) * period_ms / capacity, rounded up */
            uint64_t missing = (uint64_t)(MILLI - e->micro_tokens);
            uint64_t ms =
                (missing * t->period_s * 1000u + (uint64_t)t->capacity - 1) / (uint64_t)t->capacity;
            wait_s = (unsigned)COFRE_MAX((ms + 999) / 1000, 1);
        }
    }
    pthread_mutex_unlock(&t->lock);
    return wait_s;
}

void cofre_throttle_fail(cofre_throttle_t *t, const char *key, uint64_t now_ms)
{
    pthread_mutex_lock(&t->lock);
    entry_t *e = find(t, key, now_ms, true);
    refill(t, e, now_ms);
    e->micro_tokens = COFRE_MAX(e->micro_tokens - MILLI, -t->capacity);
    pthread_mutex_unlock(&t->lock);
}

size_t cofre_throttle_size(cofre_throttle_t *t)
{
    pthread_mutex_lock(&t->lock);
    size_t n = t->used;
    pthread_mutex_unlock(&t->lock);
    return n;
}

int cofre_throttle_parse_rate(const char *s, unsigned *burst, unsigned *period_s)
{
    unsigned n = 0, p = 0;
    int used = 0;
    if (sscanf(s, "%u/%u%n", &n, &p, &used) != 2 || s[used] != '\0' || s[0] < '0' || s[0] > '9' ||
        n < 1 || n > 100000 || p < 1 || p > 86400)
        return COFRE_EINVAL;
    *burst = n;
    *period_s = p;
    return 0;
}
