/*
 * control.h: cofre-kafka-dev's control interface, HTTP on loopback through libcofre, for tests
 * and developers to break the cluster on purpose:
 *
 *   GET    /cluster                       the bootstrap list, brokers (up, rtt) and topics
 *   POST   /brokers/{id}/down             the broker closes its connections and refuses new ones
 *   POST   /brokers/{id}/up
 *   POST   /brokers/{id}/rtt              {"rtt_ms": n}: added round-trip latency, 0..60000
 *   POST   /errors                        {"api": "Produce", "errors":
 * ["NOT_LEADER_FOR_PARTITION"]}: the next requests of that API fail with these errors DELETE
 * /errors/{api}                  forgets the errors still queued for that API POST
 * /partitions/leader             {"topic", "partition", "broker"}: moves leadership
 *
 * Each answers the cluster's description (as GET /cluster) or a problem+json. The mock calls
 * wait for the mock's own thread, so they run on a worker, never on an event loop.
 */
#ifndef COFRE_KAFKA_DEV_CONTROL_H
#define COFRE_KAFKA_DEV_CONTROL_H

#include "cofre/http.h"
#include "cofre/workers.h"
#include "kafka-dev/mock.h"

typedef struct cofre_control {
    cofre_mock_t *mock;
    cofre_workers_t *workers;
} cofre_control_t;

/* Registers the routes above on s. */
void cofre_control_register(cofre_control_t *ctl, cofre_http_server_t *s);

#endif
