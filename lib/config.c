/*
 * config.c: typed, validated reads of environment variables.
 */
#include "cofre/config.h"

#include "cofre/common.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cofre_config_init(cofre_config_t *c, const char *program)
{
    c->program = program;
    c->error[0] = '\0';
}

bool cofre_config_ok(const cofre_config_t *c)
{
    return c->error[0] == '\0';
}

void cofre_config_reject(cofre_config_t *c, const char *name, const char *value,
                         const char *expected)
{
    if (!cofre_config_ok(c))
        return;
    if (value == NULL)
        snprintf(c->error, sizeof(c->error), "%s is not set: expected %s", name, expected);
    else
        snprintf(c->error, sizeof(c->error), "invalid %s=\"%.200s\": expected %s", name, value,
                 expected);
}

void cofre_config_finish(const cofre_config_t *c)
{
    if (cofre_config_ok(c))
        return;
    fprintf(stderr, "%s: %s\n", c->program, c->error);
    exit(2);
}

const char *cofre_config_str(cofre_config_t *c, const char *name, const char *def)
{
    (void)c;
    const char *v = getenv(name);
    return v != NULL ? v : def;
}

const char *cofre_config_required(cofre_config_t *c, const char *name)
{
    const char *v = getenv(name);
    if (v == NULL || v[0] == '\0') {
        cofre_config_reject(c, name, NULL, "a non-empty value");
        return "";
    }
    return v;
}

int64_t cofre_config_int(cofre_config_t *c, const char *name, int64_t def, int64_t min, int64_t max)
{
    COFRE_ASSERT(min <= def && def <= max);
    const char *v = getenv(name);
    if (v == NULL)
        return def;
    char *end = NULL;
    errno = 0;
    long long n = strtoll(v, &end, 10);
    if (v[0] == '\0' || *end != '\0' || errno != 0 || n < min || n > max) {
        char expected[96];
        snprintf(expected, sizeof(expected), "an integer from %" PRId64 " to %" PRId64, min, max);
        cofre_config_reject(c, name, v, expected);
        return def;
    }
    return (int64_t)n;
}

bool cofre_config_bool(cofre_config_t *c, const char *name, bool def)
{
    static const char *const choices[] = {"false", "true", "0", "1", NULL};
    int i = cofre_config_enum(c, name, def ? 1 : 0, choices);
    return i == 1 || i == 3;
}

int cofre_config_enum(cofre_config_t *c, const char *name, int def_index,
                      const char *const *choices)
{
    const char *v = getenv(name);
    if (v == NULL)
        return def_index;
    char expected[256] = "one of";
    for (int i = 0; choices[i] != NULL; i++) {
        if (strcmp(v, choices[i]) == 0)
            return i;
        size_t used = strlen(expected);
        snprintf(expected + used, sizeof(expected) - used, "%s %s", i == 0 ? "" : ",", choices[i]);
    }
    cofre_config_reject(c, name, v, expected);
    return def_index;
}

int cofre_config_parse_listen(const char *value, cofre_listen_t *out)
{
    const char *colon = strrchr(value, ':');
    if (colon == NULL || colon == value)
        return COFRE_EINVAL;
    const char *host = value;
    size_t host_len = (size_t)(colon - value);
    if (host[0] == '[') {
        if (host_len < 3 || host[host_len - 1] != ']')
            return COFRE_EINVAL;
        host++;
        host_len -= 2;
    } else if (memchr(host, ':', host_len) != NULL) {
        return COFRE_EINVAL;
    }
    if (host_len > COFRE_HOST_MAX)
        return COFRE_EINVAL;
    char *end = NULL;
    errno = 0;
    long port = strtol(colon + 1, &end, 10);
    if (colon[1] == '\0' || *end != '\0' || errno != 0 || port < 0 || port > 65535)
        return COFRE_EINVAL;
    memcpy(out->host, host, host_len);
    out->host[host_len] = '\0';
    out->port = (uint16_t)port;
    return 0;
}

void cofre_config_listen(cofre_config_t *c, const char *name, const char *def, cofre_listen_t *out)
{
    const char *v = getenv(name);
    if (v == NULL)
        v = def;
    if (cofre_config_parse_listen(v, out) != 0)
        cofre_config_reject(c, name, v, "host:port, for example 127.0.0.1:8081");
}
