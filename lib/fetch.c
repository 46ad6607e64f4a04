/*
 * fetch.c: HTTP/1.1 GET over a plain socket or OpenSSL, one request per connection
 * ("Connection: close"), so the response ends where the peer closes and the parser sees it
 * whole.
 */
#include "cofre/fetch.h"

#include "cofre/common.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define FETCH_HEADERS_MAX 16384
#define FETCH_REQUEST_MAX (COFRE_FETCH_PATH_MAX + COFRE_FETCH_HOST_MAX + 256)

/* ---- URLs ------------------------------------------------------------------------------- */

static bool url_char_ok(char c)
{
    return (unsigned char)c > 0x20 && (unsigned char)c < 0x7f && c != '#';
}

static int parse_authority(const char *a, size_t len, cofre_url_t *out)
{
    const char *host = a;
    size_t host_len;
    const char *rest;
    if (len > 0 && a[0] == '[') {
        const char *close = memchr(a, ']', len);
        if (close == NULL)
            return COFRE_EINVAL;
        host = a + 1;
        host_len = (size_t)(close - host);
        rest = close + 1;
    } else {
        const char *colon = memchr(a, ':', len);
        host_len = colon != NULL ? (size_t)(colon - a) : len;
        rest = a + host_len;
    }
    if (host_len == 0 || host_len > COFRE_FETCH_HOST_MAX || memchr(host, '@', host_len) != NULL)
        return COFRE_EINVAL;
    memcpy(out->host, host, host_len);
    out->host[host_len] = '\0';
    size_t rest_len = len - (size_t)(rest - a);
    if (rest_len == 0)
        return 0;
    if (rest[0] != ':' || rest_len < 2 || rest_len > 6)
        return COFRE_EINVAL;
    unsigned port = 0;
    for (size_t i = 1; i < rest_len; i++) {
        if (rest[i] < '0' || rest[i] > '9')
            return COFRE_EINVAL;
        port = port * 10 + (unsigned)(rest[i] - '0');
    }
    if (port < 1 || port > 65535)
        return COFRE_EINVAL;
    out->port = (uint16_t)port;
    return 0;
}

int cofre_fetch_parse_url(const char *url, cofre_url_t *out)
{
    memset(out, 0, sizeof(*out));
    const char *p;
    if (strncmp(url, "http://", 7) == 0) {
        p = url + 7;
        out->port = 80;
    } else if (strncmp(url, "https://", 8) == 0) {
        p = url + 8;
        out->tls = true;
        out->port = 443;
    } else {
        return COFRE_EINVAL;
    }
    for (const char *c = p; *c != '\0'; c++)
        if (!url_char_ok(*c))
            return COFRE_EINVAL;
    size_t auth_len = strcspn(p, "/?");
    if (parse_authority(p, auth_len, out) != 0)
        return COFRE_EINVAL;
    const char *path = p + auth_len;
    int n = snprintf(out->path, sizeof(out->path), "%s%s", path[0] == '/' ? "" : "/", path);
    return n > 0 && (size_t)n < sizeof(out->path) ? 0 : COFRE_EINVAL;
}

/* ---- responses -------------------------------------------------------------------------- */

/* Finds header name's value in the header block [h, end); NULL when absent. */
static const char *find_header(const char *h, const char *end, const char *name, size_t *vlen)
{
    size_t nlen = strlen(name);
    while (h < end) {
        const char *eol = memchr(h, '\n', (size_t)(end - h));
        const char *line_end = eol != NULL ? eol : end;
        size_t line_len = (size_t)(line_end - h);
        if (line_len > nlen && h[nlen] == ':' && strncasecmp(h, name, nlen) == 0) {
            const char *v = h + nlen + 1;
            while (v < line_end && (*v == ' ' || *v == '\t'))
                v++;
            const char *ve = line_end;
            while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ' || ve[-1] == '\t'))
                ve--;
            *vlen = (size_t)(ve - v);
            return v;
        }
        h = line_end + 1;
    }
    return NULL;
}

#define NUMBER_DIGITS_MAX 15 /* 15 hex digits are 60 bits: no overflow in a long long */

static int digit_value(char c, int base)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (base == 16 && c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (base == 16 && c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Parses the hex or decimal digits at s; -1 when there are none or more than
 * NUMBER_DIGITS_MAX. *used is the number of digits. */
static long long parse_number(const char *s, size_t len, int base, size_t *used)
{
    long long v = 0;
    size_t i = 0;
    for (; i < len; i++) {
        int d = digit_value(s[i], base);
        if (d < 0)
            break;
        if (i == NUMBER_DIGITS_MAX)
            return -1;
        v = v * base + d;
    }
    if (i == 0)
        return -1;
    *used = i;
    return v;
}

/* Decodes a chunked body from [p, end) into out (max bytes). Returns its length or an error. */
static long dechunk(const char *p, const char *end, char *out, size_t max)
{
    size_t n = 0;
    for (;;) {
        size_t used = 0;
        long long size = parse_number(p, (size_t)(end - p), 16, &used);
        if (size < 0)
            return COFRE_EIO;
        const char *eol = memchr(p + used, '\n', (size_t)(end - p) - used);
        if (eol == NULL)
            return COFRE_EIO;
        p = eol + 1;
        if (size == 0)
            return (long)n;
        if ((unsigned long long)size > max - n)
            return COFRE_ETOOLARGE;
        if ((long long)(end - p) < size + 2)
            return COFRE_EIO;
        memcpy(out + n, p, (size_t)size);
        n += (size_t)size;
        p += size;
        if (p[0] == '\r')
            p++;
        if (p >= end || p[0] != '\n')
            return COFRE_EIO;
        p++;
    }
}

static int parse_status(const char *buf, size_t len)
{
    if (len < 12 || (memcmp(buf, "HTTP/1.1 ", 9) != 0 && memcmp(buf, "HTTP/1.0 ", 9) != 0))
        return -1;
    size_t used = 0;
    long long status = parse_number(buf + 9, 3, 10, &used);
    return used == 3 && status >= 100 ? (int)status : -1;
}

int cofre_fetch_parse_response(const char *buf, size_t len, size_t max_bytes,
                               cofre_fetch_response_t *res)
{
    memset(res, 0, sizeof(*res));
    int status = parse_status(buf, len);
    const char *hend = memmem(buf, COFRE_MIN(len, FETCH_HEADERS_MAX), "\r\n\r\n", 4);
    if (status < 0 || hend == NULL)
        return COFRE_EIO;
    const char *headers = (const char *)memchr(buf, '\n', len) + 1;
    const char *body = hend + 4;
    const char *end = buf + len;
    size_t te_len = 0, cl_len = 0;
    const char *te = find_header(headers, hend + 2, "transfer-encoding", &te_len);
    const char *cl = find_header(headers, hend + 2, "content-length", &cl_len);
    char *out = cofre_malloc(max_bytes + 1);
    long n;
    if (te != NULL) { /* it wins over a Content-Length (RFC 9112 §6.3) */
        n = te_len >= 7 && strncasecmp(te + te_len - 7, "chunked", 7) == 0
                ? dechunk(body, end, out, max_bytes)
                : COFRE_EIO;
    } else if (cl != NULL) {
        size_t used = 0;
        long long want = parse_number(cl, cl_len, 10, &used);
        n = want < 0 || used != cl_len             ? COFRE_EIO
            : (unsigned long long)want > max_bytes ? COFRE_ETOOLARGE
            : end - body < want                    ? COFRE_EIO
                                                   : (long)want;
        if (n >= 0)
            memcpy(out, body, (size_t)n);
    } else {
        n = (size_t)(end - body) > max_bytes ? COFRE_ETOOLARGE : (long)(end - body);
        if (n >= 0)
            memcpy(out, body, (size_t)n);
    }
    if (n < 0) {
        free(out);
        return (int)n;
    }
    out[n] = '\0';
    res->status = status;
    res->body = out;
    res->len = (size_t)n;
    return 0;
}

/* ---- transport -------------------------------------------------------------------------- */

typedef struct conn {
    int fd;
    SSL_CTX *ctx;
    SSL *ssl;
    uint64_t deadline_ns;
} conn_t;

static long remaining_ms(const conn_t *c)
{
    uint64_t now = cofre_now_mono_ns();
    return now >= c->deadline_ns ? 0 : (long)((c->deadline_ns - now) / 1000000u) + 1;
}

/* Sets the socket's blocking timeouts to what is left of the deadline. */
static bool arm(conn_t *c)
{
    long ms = remaining_ms(c);
    if (ms <= 0)
        return false;
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    return true;
}

static int connect_one(const struct addrinfo *ai, conn_t *c)
{
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return COFRE_EUNAVAIL;
    int rc = connect(fd, ai->ai_addr, ai->ai_addrlen);
    if (rc != 0 && errno == EINPROGRESS) {
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        int err = 0;
        socklen_t len = sizeof(err);
        rc = poll(&p, 1, (int)remaining_ms(c));
        if (rc == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0)
            rc = 0;
        else
            rc = rc == 0 ? COFRE_ETIMEDOUT : COFRE_EUNAVAIL;
    } else if (rc != 0) {
        rc = COFRE_EUNAVAIL;
    }
    if (rc != 0) {
        close(fd);
        return rc;
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    c->fd = fd;
    return 0;
}

static int open_tcp(const cofre_url_t *url, conn_t *c, char *err, size_t errsz)
{
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    char port[8];
    snprintf(port, sizeof(port), "%u", url->port);
    int gai = getaddrinfo(url->host, port, &hints, &res);
    if (gai != 0) {
        snprintf(err, errsz, "cannot resolve %s: %s", url->host, gai_strerror(gai));
        return COFRE_EUNAVAIL;
    }
    int rc = COFRE_EUNAVAIL;
    for (const struct addrinfo *ai = res; ai != NULL && rc != 0; ai = ai->ai_next)
        rc = connect_one(ai, c);
    freeaddrinfo(res);
    if (rc != 0)
        snprintf(err, errsz, "cannot connect to %s:%u: %s", url->host, url->port,
                 rc == COFRE_ETIMEDOUT ? "timed out" : "refused or unreachable");
    return rc;
}

/* Names the peer the certificate must match: an IP literal by address (and no SNI, RFC 6066
 * §3), a name by host name (and SNI). */
static bool expect_peer(SSL *ssl, const char *host)
{
    uint8_t bin[16];
    if (inet_pton(AF_INET, host, bin) == 1 || inet_pton(AF_INET6, host, bin) == 1)
        return X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host) == 1;
    return SSL_set_tlsext_host_name(ssl, host) == 1 && SSL_set1_host(ssl, host) == 1;
}

static int open_tls(const cofre_url_t *url, conn_t *c, char *err, size_t errsz)
{
    c->ctx = SSL_CTX_new(TLS_client_method());
    if (c->ctx == NULL)
        return COFRE_EUNAVAIL;
    SSL_CTX_set_min_proto_version(c->ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_default_verify_paths(c->ctx); /* the system's CAs, or SSL_CERT_FILE */
    c->ssl = SSL_new(c->ctx);
    if (c->ssl == NULL || !expect_peer(c->ssl, url->host) || SSL_set_fd(c->ssl, c->fd) != 1 ||
        !arm(c) || SSL_connect(c->ssl) != 1) {
        long verify = c->ssl != NULL ? SSL_get_verify_result(c->ssl) : X509_V_OK;
        snprintf(err, errsz, "TLS with %s failed: %s", url->host,
                 verify != X509_V_OK ? X509_verify_cert_error_string(verify) : "handshake error");
        ERR_clear_error();
        return COFRE_EUNAVAIL;
    }
    return 0;
}

static long conn_write(conn_t *c, const char *buf, size_t len)
{
    if (!arm(c))
        return COFRE_ETIMEDOUT;
    if (c->ssl != NULL) {
        int n = SSL_write(c->ssl, buf, (int)len);
        return n > 0 ? n : COFRE_EIO;
    }
    ssize_t n = send(c->fd, buf, len, MSG_NOSIGNAL);
    return n > 0 ? n : (errno == EAGAIN ? COFRE_ETIMEDOUT : COFRE_EIO);
}

/* Reads some bytes: > 0 read, 0 at the end of the stream, < 0 an error. */
static long conn_read(conn_t *c, char *buf, size_t len)
{
    if (!arm(c))
        return COFRE_ETIMEDOUT;
    if (c->ssl != NULL) {
        int n = SSL_read(c->ssl, buf, (int)len);
        if (n > 0)
            return n;
        int e = SSL_get_error(c->ssl, n);
        ERR_clear_error();
        /* A peer that closes without close_notify still ended its response. */
        return e == SSL_ERROR_ZERO_RETURN || e == SSL_ERROR_SYSCALL ? 0 : COFRE_EIO;
    }
    ssize_t n = recv(c->fd, buf, len, 0);
    return n >= 0 ? n : (errno == EAGAIN ? COFRE_ETIMEDOUT : COFRE_EIO);
}

static void conn_close(conn_t *c)
{
    SSL_free(c->ssl);
    SSL_CTX_free(c->ctx);
    if (c->fd >= 0)
        close(c->fd);
}

/* Reads until the peer closes, up to cap bytes. Returns the length or an error. */
static long read_all(conn_t *c, char *buf, size_t cap)
{
    size_t n = 0;
    for (;;) {
        if (n == cap)
            return COFRE_ETOOLARGE;
        long got = conn_read(c, buf + n, cap - n);
        if (got < 0)
            return got;
        if (got == 0)
            return (long)n;
        n += (size_t)got;
    }
}

static int exchange(const cofre_url_t *url, conn_t *c, size_t max_bytes,
                    cofre_fetch_response_t *res, char *err, size_t errsz)
{
    char req[FETCH_REQUEST_MAX];
    bool v6 = strchr(url->host, ':') != NULL;
    int len = snprintf(req, sizeof(req),
                       "GET %s HTTP/1.1\r\nHost: %s%s%s:%u\r\nAccept: application/json\r\n"
                       "User-Agent: cofre\r\nConnection: close\r\n\r\n",
                       url->path, v6 ? "[" : "", url->host, v6 ? "]" : "", url->port);
    COFRE_ASSERT(len > 0 && (size_t)len < sizeof(req));
    for (size_t off = 0; off < (size_t)len;) {
        long n = conn_write(c, req + off, (size_t)len - off);
        if (n < 0) {
            snprintf(err, errsz, "sending the request failed");
            return (int)n;
        }
        off += (size_t)n;
    }
    size_t cap = 2 * max_bytes + FETCH_HEADERS_MAX; /* room for chunk framing */
    char *buf = cofre_malloc(cap);
    long n = read_all(c, buf, cap);
    int rc = n < 0 ? (int)n : cofre_fetch_parse_response(buf, (size_t)n, max_bytes, res);
    free(buf);
    if (rc != 0)
        snprintf(err, errsz, "%s",
                 rc == COFRE_ETIMEDOUT   ? "the response timed out"
                 : rc == COFRE_ETOOLARGE ? "the response is too large"
                                         : "malformed response");
    return rc;
}

int cofre_fetch_get(const cofre_url_t *url, unsigned timeout_ms, size_t max_bytes,
                    cofre_fetch_response_t *res, char *err, size_t errsz)
{
    conn_t c = {.fd = -1, .deadline_ns = cofre_now_mono_ns() + (uint64_t)timeout_ms * 1000000u};
    memset(res, 0, sizeof(*res));
    err[0] = '\0';
    int rc = open_tcp(url, &c, err, errsz);
    if (rc == 0 && url->tls)
        rc = open_tls(url, &c, err, errsz);
    if (rc == 0)
        rc = exchange(url, &c, max_bytes, res, err, errsz);
    conn_close(&c);
    return rc;
}
