/*
 * adapter_pool.c: persistent connections to the legacy host (see adapter_pool.h).
 *
 * Each connection goes DOWN -> CONNECTING -> SIGNING_ON -> READY and back to DOWN on any
 * failure, with the reconnect backoff growing per consecutive failure and reset by a
 * successful sign-on. Requests in flight live in a fixed array of window + 2 slots per
 * connection (the 2 for the pool's own sign-on and echo); answers are matched by a scan of
 * that array, which is short. Output is queued per connection and written by
 * cofre_adapter_pool_flush and at the top of every run; a write error only marks the
 * connection broken, and the next run closes it, so callbacks never run inside a flush.
 */
#include "legacy/adapter_pool.h"

#include "cofre/common.h"
#include "cofre/log.h"
#include "cofre/metrics.h"
#include "cofre/trace.h"
#include "legacy/adapter_metrics.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define EVENTS_MAX 64
#define INTERNAL   2 /* slots for the pool's own sign-on and echo */
#define IN_CAP     (COFRE_ISO_FRAME_MAX * 2)
#define READS_MAX  16 /* reads per connection per run, so one busy peer cannot starve others */
#define NS_PER_MS  1000000ull

typedef enum conn_state { C_DOWN, C_CONNECTING, C_SIGNING_ON, C_READY } conn_state_t;

typedef struct conn {
    cofre_adapter_pool_t *pool;
    unsigned index;
    int fd;
    conn_state_t state;
    bool broken;   /* a write failed: close at the next run */
    bool want_out; /* EPOLLOUT is registered */
    bool echo_out; /* an echo is in flight */
    uint32_t stan;
    unsigned failures; /* consecutive, for the backoff */
    uint64_t retry_at_ns;
    uint64_t connect_deadline_ns;
    uint64_t last_io_ns;
    unsigned engine_in_flight; /* engine slots in use (reserved or sent) */
    unsigned nslots;
    cofre_adapter_slot_t *slots;
    uint8_t in[IN_CAP];
    size_t in_len;
    uint8_t *out;
    size_t out_len, out_cap;
} conn_t;

struct cofre_adapter_pool {
    cofre_adapter_pool_config_t cfg;
    cofre_adapter_pool_events_t ev;
    int epfd;
    int wake_fd;
    unsigned nconns;
    conn_t *conns;
    cofre_iso_msg_t msg;   /* scratch: the message being decoded and handled */
    cofre_iso_msg_t build; /* scratch: a message being built */
};

static const char *kind_mti(uint8_t kind)
{
    switch (kind) {
    case COFRE_ADAPTER_REQ_TRANSFER:
        return COFRE_LINK_MTI_TRANSFER;
    case COFRE_ADAPTER_REQ_REVERSAL:
        return COFRE_LINK_MTI_REVERSAL;
    default:
        break;
    }
    return COFRE_LINK_MTI_NETWORK;
}

static bool engine_kind(uint8_t kind)
{
    return kind == COFRE_ADAPTER_REQ_TRANSFER || kind == COFRE_ADAPTER_REQ_REVERSAL ||
           kind == COFRE_ADAPTER_REQ_PROBE;
}

static void free_slot(conn_t *c, cofre_adapter_slot_t *s)
{
    if (engine_kind(s->kind)) {
        COFRE_ASSERT(c->engine_in_flight > 0);
        c->engine_in_flight--;
    } else if (s->kind == COFRE_ADAPTER_REQ_ECHO) {
        c->echo_out = false;
    }
    s->in_use = false;
    s->sent = false;
    s->owner = NULL;
}

static cofre_adapter_slot_t *take_slot(conn_t *c, uint8_t kind)
{
    for (unsigned i = 0; i < c->nslots; i++) {
        cofre_adapter_slot_t *s = &c->slots[i];
        if (s->in_use)
            continue;
        c->stan = cofre_link_stan_next(c->stan);
        *s = (cofre_adapter_slot_t){
            .stan = c->stan, .kind = kind, .in_use = true, .conn = (uint16_t)c->index};
        if (engine_kind(kind))
            c->engine_in_flight++;
        return s;
    }
    return NULL;
}

/* ---- output ------------------------------------------------------------------------------ */

static void set_want_out(conn_t *c, bool want)
{
    if (c->want_out == want || c->fd < 0)
        return;
    struct epoll_event e = {.events = EPOLLIN | (want ? EPOLLOUT : 0), .data.ptr = c};
    if (epoll_ctl(c->pool->epfd, EPOLL_CTL_MOD, c->fd, &e) == 0)
        c->want_out = want;
}

static void queue_out(conn_t *c, const uint8_t *frame, size_t len)
{
    if (c->out_len + len > c->out_cap) {
        c->out_cap = COFRE_MAX(c->out_cap * 2, c->out_len + len);
        c->out = cofre_realloc(c->out, c->out_cap);
    }
    memcpy(c->out + c->out_len, frame, len);
    c->out_len += len;
}

static void write_out(conn_t *c, uint64_t now)
{
    size_t done = 0;
    while (done < c->out_len && !c->broken) {
        ssize_t w = send(c->fd, c->out + done, c->out_len - done, MSG_NOSIGNAL);
        if (w > 0) {
            done += (size_t)w;
            c->last_io_ns = now;
        } else if (w < 0 && errno == EINTR) {
            continue;
        } else if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            break;
        } else {
            c->broken = true;
        }
    }
    memmove(c->out, c->out + done, c->out_len - done);
    c->out_len -= done;
    if (!c->broken)
        set_want_out(c, c->out_len > 0);
}

void cofre_adapter_pool_flush(cofre_adapter_pool_t *p)
{
    uint64_t now = cofre_now_mono_ns();
    for (unsigned i = 0; i < p->nconns; i++) {
        conn_t *c = &p->conns[i];
        if (c->fd >= 0 && c->state != C_CONNECTING && c->out_len > 0)
            write_out(c, now);
    }
}

static void send_slot(conn_t *c, cofre_adapter_slot_t *s, uint64_t now)
{
    COFRE_ASSERT(s->in_use && !s->sent && s->frame_len > 0);
    s->sent = true;
    s->sent_ns = now;
    s->deadline_ns = now + c->pool->cfg.timeout_ms * NS_PER_MS;
    queue_out(c, s->frame, s->frame_len);
}

/* Builds and sends one of the pool's own 0800s. */
static void send_network(conn_t *c, uint8_t kind, const char *nmc, uint64_t now)
{
    cofre_adapter_slot_t *s = take_slot(c, kind);
    if (s == NULL)
        return; /* both internal slots busy: the next run tries again */
    cofre_iso_msg_t *m = &c->pool->build;
    size_t len = 0;
    int rc = cofre_link_build_network(m, nmc, s->stan, cofre_now_wall_us());
    rc = rc != 0 ? rc : cofre_iso_encode_frame(m, s->frame, sizeof(s->frame), &len);
    COFRE_ASSERT(rc == 0);
    s->frame_len = (uint16_t)len;
    if (kind == COFRE_ADAPTER_REQ_ECHO)
        c->echo_out = true;
    send_slot(c, s, now);
}

/* ---- connection life --------------------------------------------------------------------- */

static void close_fd(conn_t *c)
{
    if (c->fd >= 0) {
        epoll_ctl(c->pool->epfd, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
    }
    c->fd = -1;
    c->want_out = false;
    c->broken = false;
    c->in_len = 0;
    c->out_len = 0;
}

/* Closes c after a failure: its engine requests are lost; reconnects after a backoff. */
static void fail_conn(conn_t *c, const char *why, uint64_t now)
{
    cofre_adapter_pool_t *p = c->pool;
    bool was_up = c->state == C_READY || c->state == C_SIGNING_ON;
    COFRE_LOG(COFRE_LOG_WARN, NULL, "legacy host connection failed",
              COFRE_LF_INT("connection", c->index), COFRE_LF_STR("reason", why),
              COFRE_LF_BOOL("was_connected", was_up), COFRE_LF_INT("failures", c->failures + 1));
    close_fd(c);
    c->state = C_DOWN;
    for (unsigned i = 0; i < c->nslots; i++) {
        cofre_adapter_slot_t *s = &c->slots[i];
        if (!s->in_use)
            continue;
        COFRE_ASSERT(s->sent || !engine_kind(s->kind)); /* reserve/send never spans a run */
        if (engine_kind(s->kind))
            p->ev.failed(p->ev.data, s, false);
        free_slot(c, s);
    }
    uint64_t wait_ms =
        cofre_adapter_policy_backoff_ms(&p->cfg.reconnect, c->failures, cofre_trace_rand64());
    c->failures++;
    c->retry_at_ns = now + wait_ms * NS_PER_MS;
    cofre_counter_inc(cofre_adapter_metrics.connects_failed);
    p->ev.conn_failed(p->ev.data);
}

static int open_socket(const cofre_listen_t *host, bool *in_progress)
{
    char service[8];
    snprintf(service, sizeof(service), "%u", host->port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    if (getaddrinfo(host->host, service, &hints, &res) != 0 || res == NULL)
        return -1;
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd >= 0) {
        int on = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
        if (connect(fd, res->ai_addr, res->ai_addrlen) == 0) {
            *in_progress = false;
        } else if (errno == EINPROGRESS) {
            *in_progress = true;
        } else {
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    return fd;
}

static void signed_off(conn_t *c, uint64_t now)
{
    c->state = C_SIGNING_ON;
    send_network(c, COFRE_ADAPTER_REQ_SIGN_ON, COFRE_LINK_NMC_SIGN_ON, now);
}

static void start_connect(conn_t *c, uint64_t now)
{
    bool in_progress = false;
    int fd = open_socket(&c->pool->cfg.host, &in_progress);
    if (fd < 0) {
        c->state = C_CONNECTING; /* so the failure is logged as a connect that failed */
        fail_conn(c, "connect failed", now);
        return;
    }
    c->fd = fd;
    c->last_io_ns = now;
    struct epoll_event e = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
    epoll_ctl(c->pool->epfd, EPOLL_CTL_ADD, fd, &e);
    c->want_out = true;
    c->state = C_CONNECTING;
    c->connect_deadline_ns = now + c->pool->cfg.connect_timeout_ms * NS_PER_MS;
    if (!in_progress)
        signed_off(c, now);
}

static void finish_connect(conn_t *c, uint64_t now)
{
    int err = 0;
    socklen_t len = sizeof(err);
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
        fail_conn(c, err == ECONNREFUSED ? "connection refused" : "connect failed", now);
        return;
    }
    set_want_out(c, false);
    signed_off(c, now);
}

/* ---- input ------------------------------------------------------------------------------- */

static cofre_adapter_slot_t *find_slot(conn_t *c, const cofre_iso_msg_t *m)
{
    uint64_t stan = 0;
    if (cofre_iso_get_num(m, 11, &stan) != 0 || stan == 0 || stan > COFRE_LINK_STAN_MAX)
        return NULL;
    for (unsigned i = 0; i < c->nslots; i++) {
        cofre_adapter_slot_t *s = &c->slots[i];
        if (!s->in_use || !s->sent || s->stan != stan)
            continue;
        const char *req = kind_mti(s->kind);
        if (memcmp(m->mti, req, 2) != 0 || m->mti[2] != req[2] + 1 || m->mti[3] != req[3])
            return NULL;
        const char *rrn = cofre_iso_get(m, 37, NULL);
        if (s->rrn[0] != '\0' && (rrn == NULL || strcmp(rrn, s->rrn) != 0))
            return NULL;
        return cofre_link_response_code(m) != NULL ? s : NULL;
    }
    return NULL;
}

static void network_answered(conn_t *c, cofre_adapter_slot_t *s, const cofre_iso_msg_t *m,
                             uint64_t now)
{
    cofre_histogram_observe(cofre_adapter_metrics.rtt_0800, (double)(now - s->sent_ns) / 1e9);
    bool sign_on = s->kind == COFRE_ADAPTER_REQ_SIGN_ON;
    free_slot(c, s);
    if (!sign_on)
        return;
    const char *code = cofre_link_response_code(m);
    if (!cofre_link_code_approved(code)) {
        fail_conn(c, "sign-on declined", now);
        return;
    }
    if (c->state == C_SIGNING_ON) {
        c->state = C_READY;
        c->failures = 0;
        cofre_counter_inc(cofre_adapter_metrics.connects_ok);
        COFRE_LOG(COFRE_LOG_INFO, NULL, "signed on to the legacy host",
                  COFRE_LF_INT("connection", c->index));
    }
}

/* The host's own 0800 (an echo of its own): answered 00. */
static void answer_host_request(conn_t *c, const cofre_iso_msg_t *m)
{
    cofre_iso_msg_t *resp = &c->pool->build;
    uint8_t frame[COFRE_ADAPTER_FRAME_CAP];
    size_t len;
    if (strcmp(m->mti, COFRE_LINK_MTI_NETWORK) != 0 ||
        cofre_link_build_response(resp, m, COFRE_LINK_RC_APPROVED, NULL) != 0 ||
        cofre_iso_encode_frame(resp, frame, sizeof(frame), &len) != 0)
        return;
    queue_out(c, frame, len);
}

/* One decoded message. Returns false when c was closed. */
static bool handle_message(conn_t *c, const cofre_iso_msg_t *m, uint64_t now)
{
    cofre_adapter_pool_t *p = c->pool;
    if (cofre_link_is_request(m->mti)) {
        answer_host_request(c, m);
        return true;
    }
    cofre_adapter_slot_t *s = find_slot(c, m);
    if (s == NULL) {
        cofre_counter_inc(cofre_adapter_metrics.unmatched);
        COFRE_LOG(COFRE_LOG_DEBUG, NULL, "unmatched answer", COFRE_LF_STR("mti", m->mti),
                  COFRE_LF_STR("stan", cofre_iso_get(m, 11, NULL)));
        return true;
    }
    if (!engine_kind(s->kind)) {
        network_answered(c, s, m, now);
        return c->fd >= 0;
    }
    p->ev.answered(p->ev.data, s, m, now - s->sent_ns);
    free_slot(c, s);
    return c->fd >= 0;
}

/* Decodes every whole frame in the input buffer. Returns false when c was closed. */
static bool parse_input(conn_t *c, uint64_t now)
{
    size_t off = 0;
    bool open = true;
    while (open) {
        const uint8_t *body;
        size_t body_len, frame_len;
        int rc = cofre_iso_frame_next(c->in + off, c->in_len - off, &body, &body_len, &frame_len);
        if (rc == 0)
            break;
        if (rc < 0 || cofre_iso_decode(&c->pool->msg, body, body_len, NULL) != 0) {
            cofre_counter_inc(cofre_adapter_metrics.protocol_errors);
            fail_conn(c, rc < 0 ? "bad frame length" : "undecodable message", now);
            return false;
        }
        off += frame_len;
        open = handle_message(c, &c->pool->msg, now);
    }
    if (!open)
        return false;
    memmove(c->in, c->in + off, c->in_len - off);
    c->in_len -= off;
    return true;
}

static void read_conn(conn_t *c, uint64_t now)
{
    for (int i = 0; i < READS_MAX; i++) {
        ssize_t r = recv(c->fd, c->in + c->in_len, sizeof(c->in) - c->in_len, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (r <= 0) {
            fail_conn(c, r == 0 ? "closed by the host" : "read failed", now);
            return;
        }
        c->in_len += (size_t)r;
        c->last_io_ns = now;
        if (!parse_input(c, now))
            return;
    }
}

static void handle_event(conn_t *c, uint32_t events, uint64_t now)
{
    if (c->fd < 0)
        return;
    if (c->state == C_CONNECTING) {
        if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
            finish_connect(c, now);
        return;
    }
    if (events & (EPOLLIN | EPOLLERR | EPOLLHUP))
        read_conn(c, now);
    if (c->fd >= 0 && (events & EPOLLOUT))
        write_out(c, now);
}

/* ---- timers ------------------------------------------------------------------------------ */

/* Timeouts of the requests in flight on c. Returns false when c was closed. */
static bool expire_slots(conn_t *c, uint64_t now)
{
    cofre_adapter_pool_t *p = c->pool;
    for (unsigned i = 0; i < c->nslots; i++) {
        cofre_adapter_slot_t *s = &c->slots[i];
        if (!s->in_use || !s->sent || now < s->deadline_ns)
            continue;
        if (!engine_kind(s->kind)) {
            cofre_counter_inc(cofre_adapter_metrics.timeouts_0800);
            fail_conn(c,
                      s->kind == COFRE_ADAPTER_REQ_SIGN_ON ? "sign-on timed out" : "echo timed out",
                      now);
            return false;
        }
        p->ev.failed(p->ev.data, s, true);
        free_slot(c, s);
    }
    return true;
}

static void conn_timers(conn_t *c, uint64_t now)
{
    if (c->broken) {
        fail_conn(c, "write failed", now);
        return;
    }
    switch (c->state) {
    case C_DOWN:
        if (now >= c->retry_at_ns)
            start_connect(c, now);
        return;
    case C_CONNECTING:
        if (now >= c->connect_deadline_ns)
            fail_conn(c, "connect timed out", now);
        return;
    case C_SIGNING_ON:
    case C_READY:
        break;
    }
    if (!expire_slots(c, now))
        return;
    if (c->state == C_READY && !c->echo_out &&
        now - c->last_io_ns >= c->pool->cfg.echo_ms * NS_PER_MS)
        send_network(c, COFRE_ADAPTER_REQ_ECHO, COFRE_LINK_NMC_ECHO, now);
}

/* The earliest time something of c needs attention. */
static uint64_t conn_due(const conn_t *c)
{
    if (c->broken)
        return 0;
    switch (c->state) {
    case C_DOWN:
        return c->retry_at_ns;
    case C_CONNECTING:
        return c->connect_deadline_ns;
    case C_SIGNING_ON:
    case C_READY:
        break;
    }
    uint64_t due = UINT64_MAX;
    if (c->state == C_READY && !c->echo_out)
        due = c->last_io_ns + c->pool->cfg.echo_ms * NS_PER_MS;
    for (unsigned i = 0; i < c->nslots; i++) {
        const cofre_adapter_slot_t *s = &c->slots[i];
        if (s->in_use && s->sent)
            due = COFRE_MIN(due, s->deadline_ns);
    }
    return due;
}

/* ---- the pool ---------------------------------------------------------------------------- */

cofre_adapter_pool_t *cofre_adapter_pool_new(const cofre_adapter_pool_config_t *cfg,
                                             const cofre_adapter_pool_events_t *ev, int wake_fd)
{
    COFRE_ASSERT(cfg->connections >= 1 && cfg->connections <= COFRE_ADAPTER_POOL_MAX);
    COFRE_ASSERT(cfg->window >= 1 && cfg->window <= COFRE_ADAPTER_WINDOW_MAX);
    COFRE_ASSERT(cfg->timeout_ms >= 1 && cfg->echo_ms >= 1 && cfg->connect_timeout_ms >= 1);
    int epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0)
        return NULL;
    cofre_adapter_pool_t *p = cofre_calloc(1, sizeof(*p));
    p->cfg = *cfg;
    p->ev = *ev;
    p->epfd = epfd;
    p->wake_fd = wake_fd;
    if (wake_fd >= 0) {
        struct epoll_event e = {.events = EPOLLIN, .data.ptr = NULL};
        epoll_ctl(epfd, EPOLL_CTL_ADD, wake_fd, &e);
    }
    p->nconns = cfg->connections;
    p->conns = cofre_calloc(p->nconns, sizeof(conn_t));
    for (unsigned i = 0; i < p->nconns; i++) {
        conn_t *c = &p->conns[i];
        c->pool = p;
        c->index = i;
        c->fd = -1;
        c->state = C_DOWN;
        /* A random first STAN: a restarted adapter must not reuse the STANs (and field 7) of
         * the transmissions its last run may have left at the host (and reversed). */
        c->stan = (uint32_t)(cofre_trace_rand64() % COFRE_LINK_STAN_MAX);
        c->nslots = cfg->window + INTERNAL;
        c->slots = cofre_calloc(c->nslots, sizeof(cofre_adapter_slot_t));
        c->out_cap = (size_t)c->nslots * COFRE_ADAPTER_FRAME_CAP;
        c->out = cofre_malloc(c->out_cap);
    }
    return p;
}

void cofre_adapter_pool_free(cofre_adapter_pool_t *p)
{
    if (p == NULL)
        return;
    for (unsigned i = 0; i < p->nconns; i++) {
        close_fd(&p->conns[i]);
        free(p->conns[i].slots);
        free(p->conns[i].out);
    }
    close(p->epfd);
    free(p->conns);
    free(p);
}

static void drain_wake(int fd)
{
    uint64_t v;
    while (read(fd, &v, sizeof(v)) > 0)
        ;
}

void cofre_adapter_pool_run(cofre_adapter_pool_t *p, uint64_t timeout_ns)
{
    cofre_adapter_pool_flush(p);
    uint64_t now = cofre_now_mono_ns();
    uint64_t due = now + timeout_ns;
    for (unsigned i = 0; i < p->nconns; i++)
        due = COFRE_MIN(due, conn_due(&p->conns[i]));
    uint64_t wait_ns = due > now ? due - now : 0;
    int wait_ms = (int)COFRE_MIN((wait_ns + NS_PER_MS - 1) / NS_PER_MS, 60000u);
    struct epoll_event evs[EVENTS_MAX];
    int n = epoll_wait(p->epfd, evs, EVENTS_MAX, wait_ms);
    now = cofre_now_mono_ns();
    for (int i = 0; i < n; i++) {
        if (evs[i].data.ptr == NULL)
            drain_wake(p->wake_fd);
        else
            handle_event(evs[i].data.ptr, evs[i].events, now);
    }
    for (unsigned i = 0; i < p->nconns; i++)
        conn_timers(&p->conns[i], now);
    cofre_gauge_set(cofre_adapter_metrics.connections_ready, cofre_adapter_pool_ready(p));
}

cofre_adapter_slot_t *cofre_adapter_pool_reserve(cofre_adapter_pool_t *p,
                                                 cofre_adapter_req_kind_t kind)
{
    COFRE_ASSERT(engine_kind((uint8_t)kind));
    conn_t *best = NULL;
    for (unsigned i = 0; i < p->nconns; i++) {
        conn_t *c = &p->conns[i];
        if (c->state != C_READY || c->broken || c->engine_in_flight >= p->cfg.window)
            continue;
        if (best == NULL || c->engine_in_flight < best->engine_in_flight)
            best = c;
    }
    return best == NULL ? NULL : take_slot(best, (uint8_t)kind);
}

void cofre_adapter_pool_send(cofre_adapter_pool_t *p, cofre_adapter_slot_t *s)
{
    conn_t *c = &p->conns[s->conn];
    COFRE_ASSERT(c->fd >= 0);
    send_slot(c, s, cofre_now_mono_ns());
}

void cofre_adapter_pool_cancel(cofre_adapter_pool_t *p, cofre_adapter_slot_t *s)
{
    COFRE_ASSERT(s->in_use && !s->sent);
    free_slot(&p->conns[s->conn], s);
}

void cofre_adapter_pool_sign_on_again(cofre_adapter_pool_t *p, unsigned conn)
{
    COFRE_ASSERT(conn < p->nconns);
    conn_t *c = &p->conns[conn];
    if (c->state == C_READY)
        signed_off(c, cofre_now_mono_ns());
}

unsigned cofre_adapter_pool_in_flight(const cofre_adapter_pool_t *p)
{
    unsigned n = 0;
    for (unsigned i = 0; i < p->nconns; i++)
        n += p->conns[i].engine_in_flight;
    return n;
}

unsigned cofre_adapter_pool_ready(const cofre_adapter_pool_t *p)
{
    unsigned n = 0;
    for (unsigned i = 0; i < p->nconns; i++)
        n += p->conns[i].state == C_READY;
    return n;
}

bool cofre_adapter_pool_has_room(const cofre_adapter_pool_t *p)
{
    for (unsigned i = 0; i < p->nconns; i++) {
        const conn_t *c = &p->conns[i];
        if (c->state == C_READY && !c->broken && c->engine_in_flight < p->cfg.window)
            return true;
    }
    return false;
}
