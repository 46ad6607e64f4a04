/*
 * router.c: segment-by-segment matching of paths against route templates. Tables are small
 * (tens of routes), so a linear scan beats anything cleverer and stays obvious.
 */
#include "cofre/router.h"

#include "cofre/common.h"

#include <stdio.h>
#include <string.h>

void cofre_router_init(cofre_router_t *r)
{
    memset(r, 0, sizeof(*r));
}

static bool is_param(const char *seg, size_t len)
{
    return len >= 3 && seg[0] == '{' && seg[len - 1] == '}';
}

void cofre_router_add(cofre_router_t *r, const char *method, const char *tmpl, void *data)
{
    COFRE_ASSERT(r->nroutes < COFRE_ROUTES_MAX);
    COFRE_ASSERT(tmpl[0] == '/');
    cofre_route_t *route = &r->routes[r->nroutes++];
    route->method = method;
    route->tmpl = tmpl;
    route->data = data;
    const char *p = tmpl + 1;
    size_t nparams = 0;
    while (*p != '\0') {
        size_t len = strcspn(p, "/");
        COFRE_ASSERT(len > 0 && route->nsegments < COFRE_ROUTE_SEGMENTS_MAX);
        route->segments[route->nsegments] = p;
        route->segment_lens[route->nsegments++] = len;
        if (is_param(p, len))
            COFRE_ASSERT(++nparams <= COFRE_ROUTE_PARAMS_MAX);
        p += len;
        if (*p == '/')
            p++;
    }
}

/* Splits path into segments; returns the count, or -1 when malformed or too deep. */
static int split_path(const char *path, size_t len, const char **segs, size_t *lens)
{
    if (len == 0 || path[0] != '/')
        return -1;
    size_t n = 0, i = 1;
    if (len == 1)
        return 0;
    while (i <= len) {
        size_t start = i;
        while (i < len && path[i] != '/')
            i++;
        if (n == COFRE_ROUTE_SEGMENTS_MAX)
            return -1;
        segs[n] = path + start;
        lens[n++] = i - start;
        i++;
    }
    return (int)n;
}

static bool match_route(const cofre_route_t *route, const char **segs, const size_t *lens,
                        size_t nsegs, cofre_route_params_t *params)
{
    if (route->nsegments != nsegs)
        return false;
    params->count = 0;
    for (size_t i = 0; i < nsegs; i++) {
        const char *t = route->segments[i];
        size_t tlen = route->segment_lens[i];
        if (!is_param(t, tlen)) {
            if (tlen != lens[i] || memcmp(t, segs[i], tlen) != 0)
                return false;
            continue;
        }
        size_t k = params->count;
        long n =
            cofre_url_decode(segs[i], lens[i], params->values[k], COFRE_ROUTE_PARAM_MAX + 1, false);
        if (n <= 0 || memchr(params->values[k], '/', (size_t)n) != NULL)
            return false;
        params->names[k] = t + 1;
        params->name_lens[k] = tlen - 2;
        params->count++;
    }
    return true;
}

static void append_allow(char *allow, size_t size, const char *method)
{
    size_t used = strlen(allow);
    if (strstr(allow, method) != NULL)
        return;
    snprintf(allow + used, size - used, "%s%s", used > 0 ? ", " : "", method);
}

/* Literal segments in a template: a literal beats a parameter ("/transfers/batch" wins over
 * "/transfers/{id}"), whatever the order routes were added in. */
static size_t literal_count(const cofre_route_t *route)
{
    size_t n = 0;
    for (size_t i = 0; i < route->nsegments; i++)
        if (!is_param(route->segments[i], route->segment_lens[i]))
            n++;
    return n;
}

cofre_route_result_t cofre_router_match(const cofre_router_t *r, const char *method,
                                        const char *path, size_t len, const cofre_route_t **route,
                                        cofre_route_params_t *params, char *allow,
                                        size_t allow_size)
{
    const char *segs[COFRE_ROUTE_SEGMENTS_MAX];
    size_t lens[COFRE_ROUTE_SEGMENTS_MAX];
    int nsegs = split_path(path, len, segs, lens);
    if (allow_size > 0)
        allow[0] = '\0';
    if (nsegs < 0)
        return COFRE_ROUTE_NOT_FOUND;
    /* The most specific template matching the path decides; then the method. */
    const char *best_tmpl = NULL;
    size_t best_literals = 0;
    cofre_route_params_t scratch;
    for (size_t i = 0; i < r->nroutes; i++) {
        const cofre_route_t *candidate = &r->routes[i];
        size_t literals = literal_count(candidate);
        if ((best_tmpl == NULL || literals > best_literals) &&
            match_route(candidate, segs, lens, (size_t)nsegs, &scratch)) {
            best_tmpl = candidate->tmpl;
            best_literals = literals;
        }
    }
    if (best_tmpl == NULL)
        return COFRE_ROUTE_NOT_FOUND;
    for (size_t i = 0; i < r->nroutes; i++) {
        const cofre_route_t *candidate = &r->routes[i];
        COFRE_ASSERT(candidate->tmpl != NULL && candidate->method != NULL);
        if (strcmp(candidate->tmpl, best_tmpl) != 0)
            continue;
        if (strcmp(candidate->method, method) == 0) {
            match_route(candidate, segs, lens, (size_t)nsegs, params);
            *route = candidate;
            return COFRE_ROUTE_FOUND;
        }
        if (allow_size > 0)
            append_allow(allow, allow_size, candidate->method);
    }
    return COFRE_ROUTE_METHOD_NOT_ALLOWED;
}

const char *cofre_route_param(const cofre_route_params_t *params, const char *name)
{
    size_t len = strlen(name);
    for (size_t i = 0; i < params->count; i++)
        if (params->name_lens[i] == len && memcmp(params->names[i], name, len) == 0)
            return params->values[i];
    return NULL;
}
