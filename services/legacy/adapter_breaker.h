/*
 * adapter_breaker.h: the circuit breaker between cofre-legacy and the legacy host. While the
 * host keeps failing (timeouts, refused or broken connections, "inoperative" answers),
 * deliveries wait instead of piling onto it:
 *
 *   closed     requests flow; failures_max consecutive failures open it
 *   open       no request goes out; after open_ms it becomes half-open
 *   half-open  one request (the probe) may go out; its success closes the breaker, its
 *              failure opens it again for another open_ms
 *
 * Only 0200 and 0400 requests (and an echo used as a probe) pass through the breaker; sign-on
 * and reconnects follow their own backoff. Outcomes carry the epoch the request went out in
 * (the breaker's count of openings at the time): an outcome from before the latest opening is
 * ignored, so the stragglers of a failing period cannot re-open a breaker whose probe just
 * succeeded, or close one on a late answer. Time is passed in (monotonic nanoseconds), so the
 * module has no clock and no I/O; one thread owns a breaker.
 */
#ifndef COFRE_LEGACY_ADAPTER_BREAKER_H
#define COFRE_LEGACY_ADAPTER_BREAKER_H

#include <stdbool.h>
#include <stdint.h>

/* The values of the cofre_legacy_breaker_state gauge (docs/metrics.md). */
typedef enum cofre_adapter_breaker_state {
    COFRE_BREAKER_CLOSED = 0,
    COFRE_BREAKER_HALF_OPEN = 1,
    COFRE_BREAKER_OPEN = 2,
} cofre_adapter_breaker_state_t;

typedef struct cofre_adapter_breaker {
    cofre_adapter_breaker_state_t state;
    unsigned failures;     /* consecutive, while closed */
    unsigned failures_max; /* >= 1 */
    uint64_t open_ns;      /* how long it stays open */
    uint64_t opened_at_ns;
    bool probe_out; /* half-open: the one request allowed is out */
    uint64_t opens; /* times it opened (closed or half-open -> open): the epoch */
} cofre_adapter_breaker_t;

/* A closed breaker that opens after failures_max (>= 1) failures in a row, for open_ms (>= 1). */
void cofre_adapter_breaker_init(cofre_adapter_breaker_t *b, unsigned failures_max,
                                uint64_t open_ms);

/* The state at now_ns (moves open -> half-open when open_ms has passed). */
cofre_adapter_breaker_state_t cofre_adapter_breaker_state(cofre_adapter_breaker_t *b,
                                                          uint64_t now_ns);

/*
 * May a request go out now? Closed: yes. Open: no. Half-open: yes once (the probe); then no
 * until that probe's outcome is reported (success, failure or cancel).
 */
bool cofre_adapter_breaker_acquire(cofre_adapter_breaker_t *b, uint64_t now_ns);

/* The probe taken by acquire did not go out after all: another request may be the probe. */
void cofre_adapter_breaker_cancel(cofre_adapter_breaker_t *b);

/* The epoch to tag a request going out now with. */
uint64_t cofre_adapter_breaker_epoch(const cofre_adapter_breaker_t *b);

/*
 * The host answered a request of epoch (any code but a transient one): resets the failure
 * count, closes a half-open breaker. Ignored when epoch is not the current one.
 */
void cofre_adapter_breaker_success(cofre_adapter_breaker_t *b, uint64_t now_ns, uint64_t epoch);

/*
 * The host failed a request or a connection of epoch. Closed: counts, and opens at
 * failures_max. Half-open: opens again. Open: nothing changes (the open period is not
 * extended). Ignored when epoch is not the current one.
 */
void cofre_adapter_breaker_failure(cofre_adapter_breaker_t *b, uint64_t now_ns, uint64_t epoch);

/* Nanoseconds until an open breaker turns half-open (0 when it is not open). */
uint64_t cofre_adapter_breaker_wait_ns(const cofre_adapter_breaker_t *b, uint64_t now_ns);

/* "closed", "half-open" or "open". */
const char *cofre_adapter_breaker_name(cofre_adapter_breaker_state_t s);

#endif
