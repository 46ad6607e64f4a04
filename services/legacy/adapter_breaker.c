/*
 * adapter_breaker.c: the closed / open / half-open circuit breaker (see adapter_breaker.h).
 */
#include "legacy/adapter_breaker.h"

#include "cofre/common.h"

void cofre_adapter_breaker_init(cofre_adapter_breaker_t *b, unsigned failures_max, uint64_t open_ms)
{
    COFRE_ASSERT(failures_max >= 1 && open_ms >= 1);
    *b = (cofre_adapter_breaker_t){
        .state = COFRE_BREAKER_CLOSED,
        .failures_max = failures_max,
        .open_ns = open_ms * 1000000u,
    };
}

static void trip(cofre_adapter_breaker_t *b, uint64_t now_ns)
{
    b->state = COFRE_BREAKER_OPEN;
    b->opened_at_ns = now_ns;
    b->probe_out = false;
    b->failures = 0;
    b->opens++;
}

cofre_adapter_breaker_state_t cofre_adapter_breaker_state(cofre_adapter_breaker_t *b,
                                                          uint64_t now_ns)
{
    if (b->state == COFRE_BREAKER_OPEN && now_ns - b->opened_at_ns >= b->open_ns) {
        b->state = COFRE_BREAKER_HALF_OPEN;
        b->probe_out = false;
    }
    return b->state;
}

bool cofre_adapter_breaker_acquire(cofre_adapter_breaker_t *b, uint64_t now_ns)
{
    switch (cofre_adapter_breaker_state(b, now_ns)) {
    case COFRE_BREAKER_CLOSED:
        return true;
    case COFRE_BREAKER_HALF_OPEN:
        if (b->probe_out)
            return false;
        b->probe_out = true;
        return true;
    case COFRE_BREAKER_OPEN:
        break;
    }
    return false;
}

void cofre_adapter_breaker_cancel(cofre_adapter_breaker_t *b)
{
    if (b->state == COFRE_BREAKER_HALF_OPEN)
        b->probe_out = false;
}

uint64_t cofre_adapter_breaker_epoch(const cofre_adapter_breaker_t *b)
{
    return b->opens;
}

void cofre_adapter_breaker_success(cofre_adapter_breaker_t *b, uint64_t now_ns, uint64_t epoch)
{
    if (epoch != b->opens)
        return;
    switch (cofre_adapter_breaker_state(b, now_ns)) {
    case COFRE_BREAKER_CLOSED:
        b->failures = 0;
        break;
    case COFRE_BREAKER_HALF_OPEN:
        b->state = COFRE_BREAKER_CLOSED;
        b->failures = 0;
        b->probe_out = false;
        break;
    case COFRE_BREAKER_OPEN:
        break; /* an answer while open is not a probe's: wait for half-open */
    }
}

void cofre_adapter_breaker_failure(cofre_adapter_breaker_t *b, uint64_t now_ns, uint64_t epoch)
{
    if (epoch != b->opens)
        return;
    switch (cofre_adapter_breaker_state(b, now_ns)) {
    case COFRE_BREAKER_CLOSED:
        if (++b->failures >= b->failures_max)
            trip(b, now_ns);
        break;
    case COFRE_BREAKER_HALF_OPEN:
        trip(b, now_ns);
        break;
    case COFRE_BREAKER_OPEN:
        break;
    }
}

uint64_t cofre_adapter_breaker_wait_ns(const cofre_adapter_breaker_t *b, uint64_t now_ns)
{
    if (b->state != COFRE_BREAKER_OPEN)
        return 0;
    uint64_t elapsed = now_ns - b->opened_at_ns;
    return elapsed >= b->open_ns ? 0 : b->open_ns - elapsed;
}

const char *cofre_adapter_breaker_name(cofre_adapter_breaker_state_t s)
{
    switch (s) {
    case COFRE_BREAKER_CLOSED:
        return "closed";
    case COFRE_BREAKER_HALF_OPEN:
        return "half-open";
    case COFRE_BREAKER_OPEN:
        break;
    }
    return "open";
}
