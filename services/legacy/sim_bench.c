/*
 * sim_bench.c: the round-trip benchmark client (see sim_bench.h). Requests in flight are kept
 * in window slots indexed by STAN modulo the window: STANs are consecutive, so the ones in
 * flight never share a slot.
 */
#include "legacy/sim_bench.h"

#include "cofre/common.h"
#include "cofre/jbuf.h"
#include "legacy/iso8583.h"
#include "legacy/link.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct slot {
    uint32_t stan; /* 0: free */
    uint64_t sent_ns;
    char rrn[COFRE_LINK_RRN_LEN + 1];
} slot_t;

typedef struct bench {
    const cofre_sim_bench_config_t *cfg;
    int fd;
    uint32_t stan;
    slot_t *slots;
    uint32_t *latency_us;
    unsigned sent, received, in_flight, approved;
    uint8_t in[COFRE_ISO_FRAME_MAX * 2];
    size_t in_len;
    char debit[COFRE_LINK_UUID_LEN + 1], credit[COFRE_LINK_UUID_LEN + 1];
    cofre_iso_msg_t msg;
} bench_t;

static void random_uuid(char out[COFRE_LINK_UUID_LEN + 1])
{
    uint8_t b[16];
    char hex[33];
    cofre_random_bytes(b, sizeof(b));
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
    cofre_hex_encode(b, sizeof(b), hex);
    snprintf(out, COFRE_LINK_UUID_LEN + 1, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12,
             hex + 16, hex + 20);
}

static int connect_to(const cofre_listen_t *l)
{
    char service[8];
    snprintf(service, sizeof(service), "%u", l->port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    if (getaddrinfo(l->host, service, &hints, &res) != 0)
        return -1;
    int fd = -1;
    for (struct addrinfo *a = res; a != NULL && fd < 0; a = a->ai_next) {
        fd = socket(a->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd >= 0 && connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    int on = 1;
    if (fd >= 0)
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
    return fd;
}

static int send_all(int fd, const uint8_t *buf, size_t len)
{
    while (len > 0) {
        ssize_t w = write(fd, buf, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return COFRE_EIO;
        buf += w;
        len -= (size_t)w;
    }
    return 0;
}

/* Reads until one whole frame is decoded into b->msg. */
static int read_answer(bench_t *b)
{
    for (;;) {
        const uint8_t *body;
        size_t body_len, frame_len;
        int rc = cofre_iso_frame_next(b->in, b->in_len, &body, &body_len, &frame_len);
        if (rc < 0)
            return COFRE_EINVAL;
        if (rc == 1) {
            rc = cofre_iso_decode(&b->msg, body, body_len, NULL);
            memmove(b->in, b->in + frame_len, b->in_len - frame_len);
            b->in_len -= frame_len;
            return rc;
        }
        struct pollfd p = {.fd = b->fd, .events = POLLIN};
        if (poll(&p, 1, (int)b->cfg->timeout_ms) == 0)
            return COFRE_ETIMEDOUT;
        ssize_t r = read(b->fd, b->in + b->in_len, sizeof(b->in) - b->in_len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return COFRE_EIO;
        b->in_len += (size_t)r;
    }
}

static int sign_on(bench_t *b)
{
    uint8_t frame[COFRE_ISO_FRAME_MAX];
    size_t len;
    b->stan = cofre_link_stan_next(b->stan);
    cofre_link_build_network(&b->msg, COFRE_LINK_NMC_SIGN_ON, b->stan, cofre_now_wall_us());
    cofre_iso_encode_frame(&b->msg, frame, sizeof(frame), &len);
    int rc = send_all(b->fd, frame, len);
    rc = rc != 0 ? rc : read_answer(b);
    if (rc == 0 && !cofre_link_code_approved(cofre_link_response_code(&b->msg)))
        rc = COFRE_EINVAL;
    return rc;
}

/* Sends requests until the window is full or all are sent, in one write. */
static int send_more(bench_t *b)
{
    static uint8_t buf[COFRE_SIM_BENCH_WINDOW_MAX * 160];
    size_t used = 0;
    while (b->in_flight < b->cfg->window && b->sent < b->cfg->count &&
           used + COFRE_ISO_FRAME_MAX / 16 < sizeof(buf)) {
        char id[COFRE_LINK_UUID_LEN + 1];
        random_uuid(id);
        uint64_t now_us = cofre_now_wall_us();
        cofre_link_transfer_t t = {.transfer_id = id,
                                   .debit_account_id = b->debit,
                                   .credit_account_id = b->credit,
                                   .amount_minor = 1 + (int64_t)(b->sent % 100000),
                                   .currency = "BRL",
                                   .posted_at_us = now_us};
        b->stan = cofre_link_stan_next(b->stan);
        int rc = cofre_link_build_transfer(&b->msg, &t, b->stan, "BENCH001", now_us);
        size_t len;
        rc = rc != 0 ? rc : cofre_iso_encode_frame(&b->msg, buf + used, sizeof(buf) - used, &len);
        COFRE_ASSERT(rc == 0);
        used += len;
        slot_t *s = &b->slots[b->stan % b->cfg->window];
        COFRE_ASSERT(s->stan == 0);
        s->stan = b->stan;
        s->sent_ns = cofre_now_mono_ns();
        cofre_link_rrn(id, strlen(id), s->rrn);
        b->sent++;
        b->in_flight++;
    }
    return used == 0 ? 0 : send_all(b->fd, buf, used);
}

static int receive_one(bench_t *b)
{
    int rc = read_answer(b);
    if (rc != 0)
        return rc;
    uint64_t stan = 0;
    if (cofre_iso_get_num(&b->msg, 11, &stan) != 0 || stan == 0 || stan > COFRE_LINK_STAN_MAX)
        return COFRE_EINVAL;
    slot_t *s = &b->slots[stan % b->cfg->window];
    const char *rrn = cofre_iso_get(&b->msg, 37, NULL);
    if (s->stan != stan || rrn == NULL || strcmp(rrn, s->rrn) != 0)
        return COFRE_EINVAL;
    uint64_t us = (cofre_now_mono_ns() - s->sent_ns) / 1000;
    b->latency_us[b->received++] = (uint32_t)COFRE_MIN(us, UINT32_MAX);
    b->approved += cofre_link_code_approved(cofre_link_response_code(&b->msg));
    s->stan = 0;
    b->in_flight--;
    return 0;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

static void report(bench_t *b, uint64_t elapsed_ns, FILE *out)
{
    qsort(b->latency_us, b->received, sizeof(uint32_t), cmp_u32);
    double secs = (double)elapsed_ns / 1e9;
    cofre_jbuf_t j;
    cofre_jbuf_init(&j);
    cofre_jbuf_obj_begin(&j);
    cofre_jbuf_kuint(&j, "round_trips", b->received);
    cofre_jbuf_kuint(&j, "window", b->cfg->window);
    cofre_jbuf_key(&j, "seconds");
    cofre_jbuf_double(&j, secs);
    cofre_jbuf_key(&j, "round_trips_per_second");
    cofre_jbuf_double(&j, secs > 0 ? (double)b->received / secs : 0);
    static const struct {
        const char *key;
        double q;
    } pct[] = {{"p50_us", 0.50}, {"p90_us", 0.90}, {"p99_us", 0.99}, {"max_us", 1.0}};
    for (size_t i = 0; i < COFRE_ARRAY_SIZE(pct); i++) {
        size_t k = (size_t)((double)(b->received - 1) * pct[i].q);
        cofre_jbuf_kuint(&j, pct[i].key, b->received > 0 ? b->latency_us[k] : 0);
    }
    cofre_jbuf_kuint(&j, "approved", b->approved);
    cofre_jbuf_obj_end(&j);
    fprintf(out, "%s\n", j.data);
    cofre_jbuf_release(&j);
}

int cofre_sim_bench_run(const cofre_sim_bench_config_t *cfg, FILE *out)
{
    COFRE_ASSERT(cfg->window >= 1 && cfg->window <= COFRE_SIM_BENCH_WINDOW_MAX);
    COFRE_ASSERT(cfg->count >= 1 && cfg->count <= COFRE_SIM_BENCH_COUNT_MAX);
    bench_t *b = cofre_calloc(1, sizeof(*b));
    b->cfg = cfg;
    b->slots = cofre_calloc(cfg->window, sizeof(slot_t));
    b->latency_us = cofre_calloc(cfg->count, sizeof(uint32_t));
    random_uuid(b->debit);
    random_uuid(b->credit);
    int rc = COFRE_EIO;
    b->fd = connect_to(&cfg->connect);
    if (b->fd >= 0)
        rc = sign_on(b);
    uint64_t start = cofre_now_mono_ns();
    while (rc == 0 && b->received < cfg->count) {
        rc = send_more(b);
        rc = rc != 0 ? rc : receive_one(b);
    }
    if (rc == 0)
        report(b, cofre_now_mono_ns() - start, out);
    if (b->fd >= 0)
        close(b->fd);
    free(b->latency_us);
    free(b->slots);
    free(b);
    return rc;
}
