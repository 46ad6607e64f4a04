/*
 * auth_outbox.h: cofre-auth's outbox behind the relay's source interface (cofre/relay.h): the
 * relay publishes each auth event on cofre.auth.events, keyed by the client id (the kid for
 * key events), and marks it published after the broker acknowledged it.
 *
 * One process relays an outbox at a time, however many replicas share the database, so each
 * event is published once (a takeover may publish rows again that the previous relay had
 * published but not marked: consumers drop those copies by event id). SQLite: an exclusive
 * lock on <db>-relay.lock (make run's processes on one file). PostgreSQL: a lease row in
 * relay_leases, renewed every COFRE_REGISTRY_LEASE_S / 3 seconds; when its holder dies another
 * replica takes over once it expires, and a holder that stops gives it up at once. A replica
 * that is not the relay stands by and tries again every few seconds.
 */
#ifndef COFRE_AUTH_AUTH_OUTBOX_H
#define COFRE_AUTH_AUTH_OUTBOX_H

#include "cofre/relay.h"

typedef struct cofre_auth_outbox cofre_auth_outbox_t;

/*
 * Creates the source for COFRE_DB db_url (copied) and fills *src to pass in the relay's
 * configuration. Opens nothing yet: the relay's thread does, and retries while the database
 * is away. Free it after the relay stopped.
 */
cofre_auth_outbox_t *cofre_auth_outbox_new(const char *db_url, cofre_relay_source_t *src);

/* Closes what the source holds (giving its relay claim up) and frees it; NULL is a no-op. */
void cofre_auth_outbox_free(cofre_auth_outbox_t *o);

#endif
