/*
 * sim_server.h: the network side of cofre-legacy-sim. One thread runs an epoll loop over the
 * ISO 8583 listener, the client connections, the control port and a signalfd. Frames read
 * from clients wait in their connection's queue (for the injected latency), then each loop
 * iteration processes every due request in one ledger transaction, commits, and only then
 * writes the answers (group commit: one fsync serves every connection). Everything is
 * bounded: connections, bytes buffered per connection in each direction, queued requests per
 * connection and in total, requests per transaction, control connections and line length.
 */
#ifndef COFRE_LEGACY_SIM_SERVER_H
#define COFRE_LEGACY_SIM_SERVER_H

#include "cofre/config.h"
#include "legacy/sim_host.h"

#include <stdint.h>

typedef struct cofre_sim_config {
    cofre_listen_t listen;  /* ISO 8583 (port 0: any free port, logged) */
    cofre_listen_t control; /* the control port; must be a loopback address */
    unsigned connections_max;
    unsigned idle_timeout_s; /* a connection silent this long is closed */
    uint64_t seed;           /* fault generator seed; 0: random */
} cofre_sim_config_t;

/*
 * Serves until SIGTERM or SIGINT (which the caller has blocked, as cofre_service_init does).
 * host holds the ledger and the rules; the server plugs its fault injection into it. Logs a
 * "listening" line with both ports once it accepts connections. Returns 0 after a signal, or
 * COFRE_EIO when a listener cannot be set up (logged).
 */
int cofre_sim_server_run(const cofre_sim_config_t *cfg, cofre_sim_host_t *host);

#endif
