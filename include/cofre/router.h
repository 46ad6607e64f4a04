/*
 * router.h: maps a method and a path to a route, with path parameters: the template
 * "/v1/accounts/{id}/transfers" matches "/v1/accounts/abc/transfers" with id = "abc". The
 * template, not the raw path, labels metrics and logs. Routes are added at start and the
 * table is read-only afterwards, so matching needs no lock.
 */
#ifndef COFRE_ROUTER_H
#define COFRE_ROUTER_H

#include <stdbool.h>
#include <stddef.h>

#define COFRE_ROUTES_MAX         64
#define COFRE_ROUTE_SEGMENTS_MAX 8
#define COFRE_ROUTE_PARAMS_MAX   4
#define COFRE_ROUTE_PARAM_MAX    256 /* bytes of one decoded parameter */

typedef struct cofre_route {
    const char *method;
    const char *tmpl;
    void *data; /* the caller's handler record */
    size_t nsegments;
    const char *segments[COFRE_ROUTE_SEGMENTS_MAX]; /* "{name}" marks a parameter */
    size_t segment_lens[COFRE_ROUTE_SEGMENTS_MAX];
} cofre_route_t;

typedef struct cofre_router {
    size_t nroutes;
    cofre_route_t routes[COFRE_ROUTES_MAX];
} cofre_router_t;

typedef struct cofre_route_params {
    size_t count;
    const char *names[COFRE_ROUTE_PARAMS_MAX]; /* pointers into the template, not terminated */
    size_t name_lens[COFRE_ROUTE_PARAMS_MAX];
    char values[COFRE_ROUTE_PARAMS_MAX][COFRE_ROUTE_PARAM_MAX + 1]; /* percent-decoded */
} cofre_route_params_t;

typedef enum cofre_route_result {
    COFRE_ROUTE_FOUND,
    COFRE_ROUTE_NOT_FOUND,
    COFRE_ROUTE_METHOD_NOT_ALLOWED,
} cofre_route_result_t;

void cofre_router_init(cofre_router_t *r);

/*
 * Adds a route. method and tmpl must outlive the router (string literals). Aborts on a
 * malformed template or a full table: both are programming errors.
 */
void cofre_router_add(cofre_router_t *r, const char *method, const char *tmpl, void *data);

/*
 * Matches path (len bytes, no query string). On COFRE_ROUTE_FOUND sets *route and params.
 * On COFRE_ROUTE_METHOD_NOT_ALLOWED, writes the allowed methods ("GET, POST") into allow.
 * A parameter that is empty, too long or badly percent-encoded does not match.
 */
cofre_route_result_t cofre_router_match(const cofre_router_t *r, const char *method,
                                        const char *path, size_t len, const cofre_route_t **route,
                                        cofre_route_params_t *params, char *allow,
                                        size_t allow_size);

/* The value of parameter name, or NULL. */
const char *cofre_route_param(const cofre_route_params_t *params, const char *name);

#endif
