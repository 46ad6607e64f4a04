/*
 * adapter_pool.h: cofre-legacy's connections to the legacy host. A pool of persistent TCP
 * connections (COFRE_LEGACY_POOL, one by default), each of which:
 *
 *   - connects without blocking, then signs on (0800 001) before carrying any request;
 *   - sends an echo (0800 301) after echo_ms without traffic, and is closed when an echo
 *     gets no answer in time;
 *   - reconnects after a failure with exponential backoff and jitter;
 *   - frames the byte stream and matches each answer to its request by MTI, STAN (field 11)
 *     and RRN (field 37); a stream that is not valid ISO 8583 (garbage, a bad length, a body
 *     that does not decode) closes the connection, since nothing after it can be trusted;
 *   - keeps at most window requests in flight.
 *
 * The engine (adapter_engine.c) owns the pool and runs it from one thread: it reserves a slot
 * (which picks a connection and a STAN), builds and encodes the message into the slot, then
 * sends or cancels it; the pool reports answers, timeouts and requests lost with their
 * connection through callbacks, from inside cofre_adapter_pool_run.
 */
#ifndef COFRE_LEGACY_ADAPTER_POOL_H
#define COFRE_LEGACY_ADAPTER_POOL_H

#include "cofre/config.h"
#include "legacy/adapter_policy.h"
#include "legacy/iso8583.h"
#include "legacy/link.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define COFRE_ADAPTER_POOL_MAX   64  /* connections */
#define COFRE_ADAPTER_WINDOW_MAX 256 /* requests in flight per connection */
#define COFRE_ADAPTER_FRAME_CAP  320 /* the largest frame cofre sends (a 0400 is ~200 bytes) */

/* What a slot carries. Sign-ons and echoes are the pool's own; the rest are the engine's. */
typedef enum cofre_adapter_req_kind {
    COFRE_ADAPTER_REQ_TRANSFER = 0, /* 0200 */
    COFRE_ADAPTER_REQ_REVERSAL,     /* 0400 */
    COFRE_ADAPTER_REQ_PROBE,        /* 0800 echo sent as the breaker's half-open probe */
    COFRE_ADAPTER_REQ_SIGN_ON,      /* 0800 001 (internal) */
    COFRE_ADAPTER_REQ_ECHO,         /* 0800 301 when idle (internal) */
} cofre_adapter_req_kind_t;

/* A request reserved or in flight. The engine reads stan and fills frame, owner and epoch. */
typedef struct cofre_adapter_slot {
    uint32_t stan;
    uint8_t kind; /* cofre_adapter_req_kind_t */
    bool in_use;
    bool sent;
    uint16_t conn;
    void *owner;    /* the engine's delivery, or NULL */
    uint64_t epoch; /* the breaker epoch it went out in */
    uint64_t sent_ns;
    uint64_t deadline_ns;
    char rrn[COFRE_LINK_RRN_LEN + 1]; /* "" for 0800s */
    uint16_t frame_len;
    uint8_t frame[COFRE_ADAPTER_FRAME_CAP];
} cofre_adapter_slot_t;

typedef struct cofre_adapter_pool_config {
    cofre_listen_t host; /* COFRE_LEGACY_HOST */
    unsigned connections;
    unsigned window;
    uint64_t timeout_ms;         /* answer timeout (every request, sign-on and echo too) */
    uint64_t connect_timeout_ms; /* TCP connect */
    uint64_t echo_ms;            /* idle time before an echo */
    cofre_adapter_backoff_t reconnect;
} cofre_adapter_pool_config_t;

/* Callbacks, called on the engine's thread from inside cofre_adapter_pool_run. */
typedef struct cofre_adapter_pool_events {
    /* resp answered slot s (MTI, STAN and RRN match); the slot is freed after this returns. */
    void (*answered)(void *data, cofre_adapter_slot_t *s, const cofre_iso_msg_t *resp,
                     uint64_t rtt_ns);
    /*
     * No answer to s: timed_out (no answer in time; the connection stays) or lost with its
     * connection (closed, broken, or a protocol error). Freed after this returns.
     */
    void (*failed)(void *data, cofre_adapter_slot_t *s, bool timed_out);
    /* A connection attempt, sign-on or established connection failed. */
    void (*conn_failed)(void *data);
    void *data;
} cofre_adapter_pool_events_t;

typedef struct cofre_adapter_pool cofre_adapter_pool_t;

/*
 * A pool that starts connecting on the first run. wake_fd (an eventfd, or -1) is watched
 * too: when it is readable run drains it and returns. Returns NULL when epoll cannot be made.
 */
cofre_adapter_pool_t *cofre_adapter_pool_new(const cofre_adapter_pool_config_t *cfg,
                                             const cofre_adapter_pool_events_t *ev, int wake_fd);

/* Closes every connection (no callbacks) and frees the pool. */
void cofre_adapter_pool_free(cofre_adapter_pool_t *p);

/*
 * Waits up to timeout_ns for I/O, then handles whatever is due: reads and answers, timeouts,
 * connects, sign-ons, echoes, reconnects. Writes pending output first.
 */
void cofre_adapter_pool_run(cofre_adapter_pool_t *p, uint64_t timeout_ns);

/*
 * Reserves a slot of kind (TRANSFER, REVERSAL or PROBE) on the signed-on connection with the
 * fewest requests in flight, and gives it the connection's next STAN. NULL when no connection
 * is signed on with room in its window.
 */
cofre_adapter_slot_t *cofre_adapter_pool_reserve(cofre_adapter_pool_t *p,
                                                 cofre_adapter_req_kind_t kind);

/*
 * Sends a reserved slot whose frame (and rrn, owner, epoch) the caller filled: queues the
 * frame on its connection and starts its timeout. If the connection went away meanwhile, the
 * failed callback runs at the next cofre_adapter_pool_run.
 */
void cofre_adapter_pool_send(cofre_adapter_pool_t *p, cofre_adapter_slot_t *s);

/* Frees a reserved slot that was not sent. */
void cofre_adapter_pool_cancel(cofre_adapter_pool_t *p, cofre_adapter_slot_t *s);

/* Writes queued output now (the engine calls it after a dispatch round). */
void cofre_adapter_pool_flush(cofre_adapter_pool_t *p);

/*
 * Signs connection conn on again (the host answered 91: it does not know us): no new request
 * goes out on it until its 0810; requests in flight on it are left alone.
 */
void cofre_adapter_pool_sign_on_again(cofre_adapter_pool_t *p, unsigned conn);

/* Requests sent and awaiting an answer, over every connection. */
unsigned cofre_adapter_pool_in_flight(const cofre_adapter_pool_t *p);

/* Connections signed on. */
unsigned cofre_adapter_pool_ready(const cofre_adapter_pool_t *p);

/* True when some signed-on connection has room for one more request. */
bool cofre_adapter_pool_has_room(const cofre_adapter_pool_t *p);

#endif
