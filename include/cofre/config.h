/*
 * config.h: configuration from environment variables, validated at start. Each getter reads one
 * variable; the first malformed one is remembered, and cofre_config_finish() prints it as one
 * line naming the variable and exits non-zero. Nothing falls back silently: a set but invalid
 * value is an error, only an unset one takes the default.
 */
#ifndef COFRE_CONFIG_H
#define COFRE_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#define COFRE_HOST_MAX 255

typedef struct cofre_config {
    const char *program;
    char error[512]; /* "" while every value read so far was valid */
} cofre_config_t;

typedef struct cofre_listen {
    char host[COFRE_HOST_MAX + 1];
    uint16_t port;
} cofre_listen_t;

void cofre_config_init(cofre_config_t *c, const char *program);

/* The value of name, or def when unset. An empty value counts as set. */
const char *cofre_config_str(cofre_config_t *c, const char *name, const char *def);

/* A required string: unset or empty is an error. Returns "" on error. */
const char *cofre_config_required(cofre_config_t *c, const char *name);

/* A decimal integer in [min, max]; def when unset. */
int64_t cofre_config_int(cofre_config_t *c, const char *name, int64_t def, int64_t min,
                         int64_t max);

/* "true"/"false"/"1"/"0"; def when unset. */
bool cofre_config_bool(cofre_config_t *c, const char *name, bool def);

/* One of choices (a NULL-terminated list); returns its index, def_index when unset. */
int cofre_config_enum(cofre_config_t *c, const char *name, int def_index,
                      const char *const *choices);

/* "host:port" (host may be a name, an IPv4 address or "[IPv6]"); def when unset. */
void cofre_config_listen(cofre_config_t *c, const char *name, const char *def, cofre_listen_t *out);

/* Parses "host:port" into out. Returns 0 or COFRE_EINVAL. */
int cofre_config_parse_listen(const char *value, cofre_listen_t *out);

/* Records an error about name found by the caller's own validation (first one wins). */
void cofre_config_reject(cofre_config_t *c, const char *name, const char *value,
                         const char *expected);

bool cofre_config_ok(const cofre_config_t *c);

/* When any value was invalid: prints "<program>: <error>" on stderr and exits with status 2. */
void cofre_config_finish(const cofre_config_t *c);

#endif
