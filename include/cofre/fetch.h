/*
 * fetch.h: a small blocking HTTP/1.1 GET client (http:// and https:// with certificate and
 * host name verification) for the few documents a service reads from another one, such as
 * the token issuer's JWKS. It blocks: call it only from a background thread, never from an
 * event loop. Every step is bounded: connect, send and receive share one deadline, and the
 * response size is capped.
 */
#ifndef COFRE_FETCH_H
#define COFRE_FETCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define COFRE_FETCH_HOST_MAX 255
#define COFRE_FETCH_PATH_MAX 2048

typedef struct cofre_url {
    bool tls;
    char host[COFRE_FETCH_HOST_MAX + 1]; /* a name, an IPv4 address, or an IPv6 one unbracketed */
    uint16_t port;
    char path[COFRE_FETCH_PATH_MAX + 1]; /* with the query; "/" when the URL has none */
} cofre_url_t;

/*
 * Parses an absolute http:// or https:// URL (no user info, no fragment). Returns 0, or
 * COFRE_EINVAL.
 */
int cofre_fetch_parse_url(const char *url, cofre_url_t *out);

typedef struct cofre_fetch_response {
    int status;
    char *body; /* malloc'd, NUL-terminated; the caller frees it */
    size_t len;
} cofre_fetch_response_t;

/*
 * GETs url within timeout_ms, accepting a body of at most max_bytes. Returns 0 with res
 * filled (any status), or COFRE_EUNAVAIL (name, connect or TLS failure), COFRE_ETIMEDOUT,
 * COFRE_ETOOLARGE, COFRE_EIO (a malformed response). The reason is in err (errsz bytes).
 */
int cofre_fetch_get(const cofre_url_t *url, unsigned timeout_ms, size_t max_bytes,
                    cofre_fetch_response_t *res, char *err, size_t errsz);

/*
 * Parses a complete HTTP/1.1 response held in buf (len bytes, read until the peer closed).
 * Handles Content-Length, chunked transfer coding, and bodies delimited by the close.
 * Returns 0 with res filled (body copied), COFRE_ETOOLARGE, or COFRE_EIO. Exposed for tests
 * and fuzzing.
 */
int cofre_fetch_parse_response(const char *buf, size_t len, size_t max_bytes,
                               cofre_fetch_response_t *res);

#endif
