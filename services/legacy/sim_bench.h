/*
 * sim_bench.h: a small load client for cofre-legacy-sim (`cofre-legacy-sim bench`): one
 * connection, sign-on, then count 0200s for new random transfers with up to window of them
 * in flight (matched by STAN), timing each round trip. It prints one JSON line with the
 * rate and the latency percentiles. It is the measuring tool of the legacy link; the full
 * benchmark drives the adapter.
 */
#ifndef COFRE_LEGACY_SIM_BENCH_H
#define COFRE_LEGACY_SIM_BENCH_H

#include "cofre/config.h"

#include <stdio.h>

#define COFRE_SIM_BENCH_COUNT_MAX  10000000
#define COFRE_SIM_BENCH_WINDOW_MAX 1024

typedef struct cofre_sim_bench_config {
    cofre_listen_t connect;
    unsigned count;
    unsigned window;
    unsigned timeout_ms; /* for each answer */
} cofre_sim_bench_config_t;

/*
 * Runs the benchmark and writes the JSON result line to out. Returns 0; COFRE_EIO when the
 * connection fails; COFRE_ETIMEDOUT when an answer does not come in time; COFRE_EINVAL when an
 * answer does not match a request in flight.
 */
int cofre_sim_bench_run(const cofre_sim_bench_config_t *cfg, FILE *out);

#endif
