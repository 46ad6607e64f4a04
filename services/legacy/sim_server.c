/*
 * sim_server.c: the epoll loop of cofre-legacy-sim (see sim_server.h). Connections live in a
 * fixed array of slots; the epoll data of each descriptor says which kind and which slot.
 */
#include "legacy/sim_server.h"

#include "cofre/common.h"
#include "cofre/jbuf.h"
#include "cofre/log.h"
#include "legacy/iso8583.h"
#include "legacy/link.h"
#include "legacy/sim_faults.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#define CONN_OUT_CAP      (64 * 1024)
#define CONN_PENDING_MAX  64   /* requests queued per connection before reading pauses */
#define PENDING_TOTAL_MAX 8192 /* and over all connections */
#define BATCH_MAX         512  /* requests per ledger transaction */
#define CONTROLS_MAX      8
#define CONTROL_OUT_CAP   8192
#define EVENTS_MAX        64
#define LISTEN_BACKLOG    128
#define TICK_MS           1000
#define REBIND_RETRY_MS   200
#define ANSWER_ROOM       (COFRE_ISO_FRAME_MAX + COFRE_SIM_GARBAGE_LEN)

enum { K_LISTEN = 1, K_CONTROL_LISTEN, K_SIGNAL, K_CONN, K_CONTROL };

typedef struct pending {
    struct pending *next;
    uint64_t due_ns;
    size_t len;
    uint8_t body[];
} pending_t;

typedef struct conn {
    int fd; /* -1: free slot */
    cofre_sim_session_t session;
    uint8_t in[COFRE_ISO_FRAME_MAX];
    size_t in_len;
    uint8_t *out;
    size_t out_len, out_off;
    size_t batch_mark; /* out_len when the current batch started; SIZE_MAX: not in it */
    pending_t *head, *tail;
    unsigned npending;
    uint64_t last_due_ns;
    uint64_t last_active_ns;
    bool closing; /* answers nothing more; closes once out is written */
    uint32_t events;
} conn_t;

typedef struct control {
    int fd;
    char line[COFRE_SIM_LINE_MAX + 2];
    size_t line_len;
    char out[CONTROL_OUT_CAP];
    size_t out_len;
    bool closing;
    uint32_t events;
} control_t;

typedef struct counters {
    uint64_t accepted, refused, frames, answers, decode_errors, frame_errors, batches;
} counters_t;

typedef struct server {
    const cofre_sim_config_t *cfg;
    cofre_sim_host_t *host;
    cofre_sim_faults_t faults;
    int ep, listen_fd, control_fd, signal_fd;
    uint16_t iso_port, control_port;
    conn_t *conns;
    unsigned nconns, high; /* open connections; slots in use are below high */
    control_t controls[CONTROLS_MAX];
    unsigned pending_total;
    bool down, stopping;
    uint64_t down_until_ns, next_bind_ns, next_tick_ns;
    counters_t n;
    cofre_iso_msg_t req, resp;
} server_t;

static uint64_t tag(int kind, unsigned index)
{
    return ((uint64_t)kind << 32) | index;
}

static int ep_set(server_t *s, int op, int fd, uint32_t events, uint64_t data)
{
    struct epoll_event ev = {.events = events, .data.u64 = data};
    return epoll_ctl(s->ep, op, fd, &ev);
}

/* Creates a listening socket on l; *port gets the bound port. loopback_only refuses others. */
static int listen_on(const cofre_listen_t *l, uint16_t port, bool loopback_only, uint16_t *bound)
{
    char service[8];
    snprintf(service, sizeof(service), "%u", port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    if (getaddrinfo(l->host[0] != '\0' ? l->host : NULL, service, &hints, &res) != 0)
        return -1;
    int fd = -1;
    for (struct addrinfo *a = res; a != NULL && fd < 0; a = a->ai_next) {
        bool loop = a->ai_family == AF_INET
                        ? (ntohl(((struct sockaddr_in *)a->ai_addr)->sin_addr.s_addr) >> 24) == 127
                        : IN6_IS_ADDR_LOOPBACK(&((struct sockaddr_in6 *)a->ai_addr)->sin6_addr);
        if (loopback_only && !loop)
            continue;
        fd = socket(a->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        int on = 1;
        if (fd >= 0 &&
            (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) != 0 ||
             bind(fd, a->ai_addr, a->ai_addrlen) != 0 || listen(fd, LISTEN_BACKLOG) != 0)) {
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof(ss));
    socklen_t sl = sizeof(ss);
    if (fd >= 0 && getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
        *bound = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                               : ((struct sockaddr_in6 *)&ss)->sin6_port);
    return fd;
}

static int open_iso_listener(server_t *s)
{
    int fd = listen_on(&s->cfg->listen, s->iso_port, false, &s->iso_port);
    if (fd < 0)
        return COFRE_EIO;
    s->listen_fd = fd;
    if (ep_set(s, EPOLL_CTL_ADD, fd, EPOLLIN, tag(K_LISTEN, 0)) != 0) {
        close(fd);
        s->listen_fd = -1;
        return COFRE_EIO;
    }
    return 0;
}

/* ---- connections ---- */

static void free_pending(server_t *s, conn_t *c)
{
    while (c->head != NULL) {
        pending_t *p = c->head;
        c->head = p->next;
        free(p);
    }
    s->pending_total -= c->npending;
    c->npending = 0;
    c->tail = NULL;
}

static void conn_close(server_t *s, conn_t *c, const char *why)
{
    COFRE_LOG(COFRE_LOG_INFO, NULL, "connection closed", COFRE_LF_INT("conn", c->session.conn_id),
              COFRE_LF_STR("reason", why), COFRE_LF_INT("dropped_requests", c->npending));
    close(c->fd); /* also leaves the epoll set */
    c->fd = -1;
    free_pending(s, c);
    free(c->out);
    c->out = NULL;
    s->nconns--;
}

static void close_all(server_t *s, const char *why)
{
    for (unsigned i = 0; i < s->high; i++) {
        if (s->conns[i].fd >= 0)
            conn_close(s, &s->conns[i], why);
    }
}

/* Recomputes what the connection waits for: input while it may queue more, output while any. */
static void conn_interest(server_t *s, conn_t *c, unsigned index)
{
    bool room = !c->closing && c->npending < CONN_PENDING_MAX &&
                s->pending_total < PENDING_TOTAL_MAX && c->in_len < sizeof(c->in);
    uint32_t ev = (room ? EPOLLIN : 0) | (c->out_len > c->out_off ? EPOLLOUT : 0);
    if (ev != c->events && ep_set(s, EPOLL_CTL_MOD, c->fd, ev, tag(K_CONN, index)) == 0)
        c->events = ev;
}

static void conn_accept(server_t *s)
{
    for (;;) {
        int fd = accept4(s->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return; /* EAGAIN, or a connection that went away meanwhile */
        unsigned i = 0;
        while (i < s->cfg->connections_max && s->conns[i].fd >= 0)
            i++;
        if (i == s->cfg->connections_max) {
            close(fd);
            s->n.refused++;
            COFRE_LOG(COFRE_LOG_WARN, NULL, "connection refused: limit reached",
                      COFRE_LF_INT("connections_max", s->cfg->connections_max));
            continue;
        }
        int on = 1, sndbuf = CONN_OUT_CAP; /* kernel buffering bounded too, no autotuning */
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
        conn_t *c = &s->conns[i];
        memset(c, 0, sizeof(*c));
        c->fd = fd;
        c->session.conn_id = ++s->n.accepted;
        c->out = cofre_malloc(CONN_OUT_CAP);
        c->batch_mark = SIZE_MAX;
        c->last_active_ns = cofre_now_mono_ns();
        c->events = EPOLLIN;
        s->nconns++;
        s->high = COFRE_MAX(s->high, i + 1);
        if (ep_set(s, EPOLL_CTL_ADD, fd, EPOLLIN, tag(K_CONN, i)) != 0) {
            conn_close(s, c, "epoll");
            continue;
        }
        COFRE_LOG(COFRE_LOG_INFO, NULL, "connection accepted",
                  COFRE_LF_INT("conn", c->session.conn_id));
    }
}

/* Moves whole frames from c->in to its queue, as far as the bounds allow. */
static int conn_queue_frames(server_t *s, conn_t *c)
{
    size_t off = 0;
    uint64_t now = cofre_now_mono_ns();
    while (!c->closing && c->npending < CONN_PENDING_MAX && s->pending_total < PENDING_TOTAL_MAX) {
        const uint8_t *body;
        size_t body_len, frame_len;
        int rc = cofre_iso_frame_next(c->in + off, c->in_len - off, &body, &body_len, &frame_len);
        if (rc < 0) {
            s->n.frame_errors++;
            COFRE_LOG(COFRE_LOG_WARN, NULL, "bad frame length",
                      COFRE_LF_INT("conn", c->session.conn_id),
                      COFRE_LF_STR("error", cofre_strerror(rc)));
            return rc;
        }
        if (rc == 0)
            break;
        pending_t *p = cofre_malloc(sizeof(*p) + body_len);
        memcpy(p->body, body, body_len);
        p->len = body_len;
        p->next = NULL;
        p->due_ns = COFRE_MAX(now + (uint64_t)s->faults.latency_ms * 1000000u, c->last_due_ns);
        c->last_due_ns = p->due_ns;
        if (c->tail != NULL)
            c->tail->next = p;
        else
            c->head = p;
        c->tail = p;
        c->npending++;
        s->pending_total++;
        s->n.frames++;
        off += frame_len;
    }
    memmove(c->in, c->in + off, c->in_len - off);
    c->in_len -= off;
    return 0;
}

static void conn_read(server_t *s, conn_t *c, unsigned index)
{
    while (c->in_len < sizeof(c->in)) {
        ssize_t r = read(c->fd, c->in + c->in_len, sizeof(c->in) - c->in_len);
        if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
            conn_close(s, c, r == 0 ? "peer closed" : "read error");
            return;
        }
        if (r < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        c->in_len += (size_t)r;
        c->last_active_ns = cofre_now_mono_ns();
    }
    if (conn_queue_frames(s, c) != 0) {
        conn_close(s, c, "bad frame length");
        return;
    }
    conn_interest(s, c, index);
}

static void conn_write(server_t *s, conn_t *c, unsigned index)
{
    while (c->out_off < c->out_len) {
        ssize_t w = write(c->fd, c->out + c->out_off, c->out_len - c->out_off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno == EAGAIN)
            break;
        if (w < 0) {
            conn_close(s, c, "write error");
            return;
        }
        c->out_off += (size_t)w;
        c->last_active_ns = cofre_now_mono_ns();
    }
    if (c->out_off == c->out_len) {
        c->out_off = c->out_len = 0;
        if (c->closing) {
            conn_close(s, c, "fault injected");
            return;
        }
    }
    conn_interest(s, c, index);
}

/* ---- answering ---- */

static void out_append(conn_t *c, const void *data, size_t len)
{
    COFRE_ASSERT(c->out_len + len <= CONN_OUT_CAP);
    memcpy(c->out + c->out_len, data, len);
    c->out_len += len;
}

/* Writes the answer into c's output as the injected faults say. */
static void conn_answer(server_t *s, conn_t *c, const cofre_iso_msg_t *resp, const char *req_mti)
{
    uint8_t frame[COFRE_ISO_FRAME_MAX];
    size_t len = 0;
    int rc = cofre_iso_encode_frame(resp, frame, sizeof(frame), &len);
    COFRE_ASSERT(rc == 0);
    cofre_sim_action_t a = cofre_sim_faults_answer(&s->faults, req_mti);
    if (a != COFRE_SIM_RESPOND)
        COFRE_LOG(COFRE_LOG_INFO, NULL, "fault injected", COFRE_LF_INT("conn", c->session.conn_id),
                  COFRE_LF_STR("fault", cofre_sim_action_name(a)), COFRE_LF_STR("mti", resp->mti));
    switch (a) {
    case COFRE_SIM_RESPOND:
        out_append(c, frame, len);
        s->n.answers++;
        break;
    case COFRE_SIM_CUT:
        out_append(c, frame, len / 2);
        c->closing = true;
        break;
    case COFRE_SIM_CLOSE:
        c->closing = true;
        break;
    case COFRE_SIM_GARBAGE:
        cofre_sim_faults_random(&s->faults, frame, COFRE_SIM_GARBAGE_LEN);
        out_append(c, frame, COFRE_SIM_GARBAGE_LEN);
        break;
    case COFRE_SIM_BADFRAME:
        frame[0] = 0;
        frame[1] = COFRE_SIM_BADFRAME_BODY;
        cofre_sim_faults_random(&s->faults, frame + 2, COFRE_SIM_BADFRAME_BODY);
        out_append(c, frame, 2 + COFRE_SIM_BADFRAME_BODY);
        break;
    default: /* COFRE_SIM_DROP */
        break;
    }
}

/* Handles c's next queued request inside the batch. Returns COFRE_EIO when the ledger failed. */
static int conn_process_one(server_t *s, conn_t *c, uint64_t now_us)
{
    pending_t *p = c->head;
    c->head = p->next;
    if (c->head == NULL)
        c->tail = NULL;
    c->npending--;
    s->pending_total--;
    if (c->batch_mark == SIZE_MAX)
        c->batch_mark = c->out_len;
    cofre_iso_error_t err = {0};
    int rc = cofre_iso_decode(&s->req, p->body, p->len, &err);
    free(p);
    if (rc != 0) {
        s->n.decode_errors++;
        COFRE_LOG(COFRE_LOG_WARN, NULL, "undecodable message",
                  COFRE_LF_INT("conn", c->session.conn_id), COFRE_LF_INT("field", err.field),
                  COFRE_LF_INT("offset", err.offset), COFRE_LF_STR("reason", err.reason));
        c->closing = true;
        return 0;
    }
    rc = cofre_sim_host_handle(s->host, &c->session, &s->req, &s->resp, now_us);
    if (rc == 1)
        conn_answer(s, c, &s->resp, s->req.mti);
    return rc < 0 ? rc : 0;
}

/* True when c has a due request and room to answer it. */
static bool conn_ready(conn_t *c, uint64_t now)
{
    if (c->fd < 0 || c->closing || c->head == NULL || c->head->due_ns > now)
        return false;
    if (c->out_len + ANSWER_ROOM > CONN_OUT_CAP && c->out_off > 0) {
        memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
        c->out_len -= c->out_off;
        c->out_off = 0;
    }
    return c->out_len + ANSWER_ROOM <= CONN_OUT_CAP;
}

/* After a failed batch: nothing of it is sent, and its connections close (outcome unknown). */
static void batch_abort(server_t *s)
{
    cofre_sim_ledger_rollback(s->host->ledger);
    for (unsigned i = 0; i < s->high; i++) {
        conn_t *c = &s->conns[i];
        if (c->fd >= 0 && c->batch_mark != SIZE_MAX) {
            c->out_len = c->batch_mark;
            c->closing = true;
        }
    }
}

/*
 * Sends what the batch answered, and queues input that waited for room: room freed on this
 * connection, or in the total, which may unblock a connection that took no part in the batch.
 */
static void conn_after_batch(server_t *s, conn_t *c, unsigned index)
{
    if (c->fd < 0)
        return;
    bool answered = c->batch_mark != SIZE_MAX;
    c->batch_mark = SIZE_MAX;
    if (c->in_len >= COFRE_ISO_FRAME_HDR && conn_queue_frames(s, c) != 0)
        c->closing = true;
    if (answered || c->closing)
        conn_write(s, c, index);
    else
        conn_interest(s, c, index);
}

/* Processes every due request (up to BATCH_MAX) in one transaction; answers wait for commit. */
static void process_due(server_t *s)
{
    uint64_t now = cofre_now_mono_ns(), now_us = cofre_now_wall_us();
    unsigned done = 0;
    bool begun = false, failed = false, progress = true;
    while (progress && done < BATCH_MAX && !failed) {
        progress = false;
        for (unsigned i = 0; i < s->high && done < BATCH_MAX && !failed; i++) {
            conn_t *c = &s->conns[i];
            if (!conn_ready(c, now))
                continue;
            if (!begun && cofre_sim_ledger_begin(s->host->ledger) != 0)
                return; /* retried next iteration */
            begun = true;
            failed = conn_process_one(s, c, now_us) != 0;
            done++;
            progress = true;
        }
    }
    if (begun) {
        s->n.batches++;
        if (failed || cofre_sim_ledger_commit(s->host->ledger) != 0)
            batch_abort(s);
    }
    for (unsigned i = 0; i < s->high; i++)
        conn_after_batch(s, &s->conns[i], i);
}

/* ---- control port ---- */

static void control_send(control_t *k, const char *text, size_t len)
{
    if (k->out_len + len + 1 > sizeof(k->out)) {
        k->closing = true; /* a reader that does not read loses its connection */
        return;
    }
    memcpy(k->out + k->out_len, text, len);
    k->out[k->out_len + len] = '\n';
    k->out_len += len + 1;
}

static void status_line(server_t *s, cofre_jbuf_t *b)
{
    unsigned signed_on = 0;
    for (unsigned i = 0; i < s->high; i++)
        signed_on += s->conns[i].fd >= 0 && s->conns[i].session.signed_on;
    const cofre_sim_stats_t *h = &s->host->stats;
    cofre_jbuf_obj_begin(b);
    cofre_jbuf_kbool(b, "up", !s->down);
    cofre_jbuf_kuint(b, "iso_port", s->iso_port);
    cofre_jbuf_kuint(b, "connections", s->nconns);
    cofre_jbuf_kuint(b, "signed_on", signed_on);
    cofre_jbuf_kuint(b, "queued", s->pending_total);
    cofre_jbuf_kuint(b, "accepted", s->n.accepted);
    cofre_jbuf_kuint(b, "refused", s->n.refused);
    cofre_jbuf_kuint(b, "frames", s->n.frames);
    cofre_jbuf_kuint(b, "answers", s->n.answers);
    cofre_jbuf_kuint(b, "decode_errors", s->n.decode_errors);
    cofre_jbuf_kuint(b, "frame_errors", s->n.frame_errors);
    cofre_jbuf_kuint(b, "batches", s->n.batches);
    cofre_jbuf_kuint(b, "requests", h->requests);
    cofre_jbuf_kuint(b, "approved", h->approved);
    cofre_jbuf_kuint(b, "declined", h->declined);
    cofre_jbuf_kuint(b, "duplicates", h->duplicates);
    cofre_jbuf_kuint(b, "reversals", h->reversals);
    cofre_jbuf_kuint(b, "format_errors", h->format_errors);
    cofre_jbuf_kuint(b, "network", h->network);
    cofre_sim_faults_json(&s->faults, b);
    cofre_jbuf_obj_end(b);
}

static void go_down(server_t *s, uint64_t seconds)
{
    if (s->listen_fd >= 0) {
        close(s->listen_fd);
        s->listen_fd = -1;
    }
    close_all(s, "host down");
    s->down = true;
    s->down_until_ns = cofre_now_mono_ns() + seconds * 1000000000ull;
    s->next_bind_ns = s->down_until_ns;
    COFRE_LOG(COFRE_LOG_WARN, NULL, "host down", COFRE_LF_INT("seconds", seconds));
}

static void come_up(server_t *s)
{
    if (open_iso_listener(s) != 0) {
        s->next_bind_ns = cofre_now_mono_ns() + REBIND_RETRY_MS * 1000000ull;
        COFRE_LOG(COFRE_LOG_WARN, NULL, "cannot listen again yet",
                  COFRE_LF_INT("port", s->iso_port));
        return;
    }
    s->down = false;
    COFRE_LOG(COFRE_LOG_INFO, NULL, "host up", COFRE_LF_INT("port", s->iso_port));
}

static void control_line(server_t *s, control_t *k, const char *line)
{
    char reply[512];
    reply[0] = '\0';
    uint64_t arg = 0;
    cofre_sim_command_t cmd =
        cofre_sim_faults_command(&s->faults, line, reply, sizeof(reply), &arg);
    COFRE_LOG(COFRE_LOG_INFO, NULL, "control command", COFRE_LF_STR("command", line));
    if (cmd == COFRE_SIM_CMD_STATUS) {
        cofre_jbuf_t b;
        cofre_jbuf_init(&b);
        status_line(s, &b);
        control_send(k, b.data, b.len);
        cofre_jbuf_release(&b);
        return;
    }
    if (cmd == COFRE_SIM_CMD_DOWN)
        go_down(s, arg);
    else if (cmd == COFRE_SIM_CMD_UP && s->down)
        come_up(s);
    else if (cmd == COFRE_SIM_CMD_DISCONNECT)
        close_all(s, "disconnect command");
    else if (cmd == COFRE_SIM_CMD_QUIT)
        k->closing = true;
    if (cmd != COFRE_SIM_CMD_DONE)
        snprintf(reply, sizeof(reply), "ok");
    control_send(k, reply, strlen(reply));
}

static void control_close(control_t *k)
{
    close(k->fd);
    k->fd = -1;
}

static void control_flush(server_t *s, control_t *k, unsigned index)
{
    size_t off = 0;
    while (off < k->out_len) {
        ssize_t w = write(k->fd, k->out + off, k->out_len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno != EAGAIN) {
            control_close(k);
            return;
        }
        if (w < 0)
            break;
        off += (size_t)w;
    }
    memmove(k->out, k->out + off, k->out_len - off);
    k->out_len -= off;
    if (k->closing && k->out_len == 0) {
        control_close(k);
        return;
    }
    uint32_t ev = k->closing ? 0 : EPOLLIN;
    ev |= k->out_len > 0 ? EPOLLOUT : 0;
    if (ev != k->events && ep_set(s, EPOLL_CTL_MOD, k->fd, ev, tag(K_CONTROL, index)) == 0)
        k->events = ev;
}

/* Splits what arrived into lines; a line longer than the limit ends the connection. */
static void control_read(server_t *s, control_t *k, unsigned index)
{
    char buf[1024];
    ssize_t r = -1;
    while (!k->closing && (r = read(k->fd, buf, sizeof(buf))) != 0) {
        if (r < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN)
                k->closing = true;
            break;
        }
        for (ssize_t i = 0; i < r && !k->closing; i++) {
            if (buf[i] == '\n') {
                k->line[k->line_len] = '\0';
                control_line(s, k, k->line);
                k->line_len = 0;
            } else if (k->line_len < COFRE_SIM_LINE_MAX) {
                k->line[k->line_len++] = buf[i];
            } else {
                control_send(k, "error line too long", 19);
                k->closing = true;
            }
        }
    }
    if (r == 0)
        k->closing = true;
    control_flush(s, k, index);
}

static void control_accept(server_t *s)
{
    for (;;) {
        int fd = accept4(s->control_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        unsigned i = 0;
        while (i < CONTROLS_MAX && s->controls[i].fd >= 0)
            i++;
        if (i == CONTROLS_MAX) {
            close(fd);
            continue;
        }
        control_t *k = &s->controls[i];
        k->fd = fd;
        k->line_len = k->out_len = 0;
        k->closing = false;
        k->events = EPOLLIN;
        if (ep_set(s, EPOLL_CTL_ADD, fd, EPOLLIN, tag(K_CONTROL, i)) != 0)
            control_close(k);
    }
}

/* ---- the loop ---- */

static void dispatch(server_t *s, const struct epoll_event *ev)
{
    int kind = (int)(ev->data.u64 >> 32);
    unsigned index = (unsigned)(ev->data.u64 & 0xffffffffu);
    if (kind == K_LISTEN && s->listen_fd >= 0) {
        conn_accept(s);
    } else if (kind == K_CONTROL_LISTEN) {
        control_accept(s);
    } else if (kind == K_SIGNAL) {
        struct signalfd_siginfo si;
        if (read(s->signal_fd, &si, sizeof(si)) == (ssize_t)sizeof(si))
            s->stopping = true;
    } else if (kind == K_CONN && s->conns[index].fd >= 0) {
        conn_t *c = &s->conns[index];
        if (ev->events & (EPOLLIN | EPOLLHUP | EPOLLERR))
            conn_read(s, c, index);
        if (c->fd >= 0 && (ev->events & EPOLLOUT))
            conn_write(s, c, index);
    } else if (kind == K_CONTROL && s->controls[index].fd >= 0) {
        control_t *k = &s->controls[index];
        if (ev->events & (EPOLLIN | EPOLLHUP | EPOLLERR))
            control_read(s, k, index);
        else
            control_flush(s, k, index);
    }
}

/* Milliseconds until the next due request, the end of a down period, or the next tick. */
static int next_timeout_ms(server_t *s)
{
    uint64_t now = cofre_now_mono_ns(), next = s->next_tick_ns;
    if (s->down)
        next = COFRE_MIN(next, s->next_bind_ns);
    for (unsigned i = 0; i < s->high; i++) {
        conn_t *c = &s->conns[i];
        if (c->fd >= 0 && !c->closing && c->head != NULL)
            next = COFRE_MIN(next, c->head->due_ns);
    }
    if (next <= now)
        return 0;
    return (int)((next - now + 999999) / 1000000);
}

static void tick(server_t *s, uint64_t now)
{
    if (now < s->next_tick_ns)
        return;
    s->next_tick_ns = now + TICK_MS * 1000000ull;
    uint64_t idle_ns = (uint64_t)s->cfg->idle_timeout_s * 1000000000ull;
    for (unsigned i = 0; i < s->high; i++) {
        conn_t *c = &s->conns[i];
        /* No bytes moved either way, and nothing waiting for the injected latency. now was
         * read before this iteration's answers went out, so last_active_ns may be later. */
        bool waiting = c->head != NULL && c->head->due_ns > now;
        if (c->fd >= 0 && !waiting && now > c->last_active_ns && now - c->last_active_ns > idle_ns)
            conn_close(s, c, "idle timeout");
    }
    while (s->high > 0 && s->conns[s->high - 1].fd < 0)
        s->high--;
}

static int setup(server_t *s)
{
    s->ep = epoll_create1(EPOLL_CLOEXEC);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    s->signal_fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (s->ep < 0 || s->signal_fd < 0 ||
        ep_set(s, EPOLL_CTL_ADD, s->signal_fd, EPOLLIN, tag(K_SIGNAL, 0)) != 0)
        return COFRE_EIO;
    s->iso_port = s->cfg->listen.port;
    if (open_iso_listener(s) != 0) {
        COFRE_LOG(COFRE_LOG_ERROR, NULL, "cannot listen (COFRE_LISTEN)",
                  COFRE_LF_STR("host", s->cfg->listen.host),
                  COFRE_LF_INT("port", s->cfg->listen.port),
                  COFRE_LF_STR("error", strerror(errno)));
        return COFRE_EIO;
    }
    s->control_fd = listen_on(&s->cfg->control, s->cfg->control.port, true, &s->control_port);
    if (s->control_fd < 0 ||
        ep_set(s, EPOLL_CTL_ADD, s->control_fd, EPOLLIN, tag(K_CONTROL_LISTEN, 0)) != 0) {
        COFRE_LOG(COFRE_LOG_ERROR, NULL, "cannot listen on a loopback address (COFRE_SIM_CONTROL)",
                  COFRE_LF_STR("host", s->cfg->control.host),
                  COFRE_LF_INT("port", s->cfg->control.port));
        return COFRE_EIO;
    }
    return 0;
}

static void teardown(server_t *s)
{
    close_all(s, "shutdown");
    for (unsigned i = 0; i < CONTROLS_MAX; i++) {
        if (s->controls[i].fd >= 0)
            control_close(&s->controls[i]);
    }
    int fds[] = {s->listen_fd, s->control_fd, s->signal_fd, s->ep};
    for (size_t i = 0; i < COFRE_ARRAY_SIZE(fds); i++) {
        if (fds[i] >= 0)
            close(fds[i]);
    }
    free(s->conns);
}

int cofre_sim_server_run(const cofre_sim_config_t *cfg, cofre_sim_host_t *host)
{
    server_t *s = cofre_calloc(1, sizeof(*s));
    s->cfg = cfg;
    s->host = host;
    s->ep = s->listen_fd = s->control_fd = s->signal_fd = -1;
    s->conns = cofre_calloc(cfg->connections_max, sizeof(conn_t));
    for (unsigned i = 0; i < cfg->connections_max; i++)
        s->conns[i].fd = -1;
    for (unsigned i = 0; i < CONTROLS_MAX; i++)
        s->controls[i].fd = -1;
    cofre_sim_faults_init(&s->faults, cfg->seed);
    host->decline = cofre_sim_faults_decline;
    host->decline_data = &s->faults;
    cofre_log_buffer_start();
    int rc = setup(s);
    if (rc == 0)
        COFRE_LOG(COFRE_LOG_INFO, NULL, "listening", COFRE_LF_INT("iso_port", s->iso_port),
                  COFRE_LF_INT("control_port", s->control_port),
                  COFRE_LF_INT("connections_max", cfg->connections_max));
    struct epoll_event events[EVENTS_MAX];
    while (rc == 0 && !s->stopping) {
        cofre_log_flush();
        int n = epoll_wait(s->ep, events, EVENTS_MAX, next_timeout_ms(s));
        if (n < 0 && errno != EINTR) {
            rc = COFRE_EIO;
            break;
        }
        for (int i = 0; i < n; i++)
            dispatch(s, &events[i]);
        uint64_t now = cofre_now_mono_ns();
        if (s->down && now >= s->next_bind_ns)
            come_up(s);
        process_due(s);
        tick(s, now);
    }
    COFRE_LOG(COFRE_LOG_INFO, NULL, "stopping", COFRE_LF_INT("connections", s->nconns));
    teardown(s);
    cofre_log_flush();
    free(s);
    return rc;
}
