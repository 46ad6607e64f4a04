/*
 * outbox_source.h: cofre-core's outbox as a source for the relay (cofre/relay.h): the relay's
 * fetch, mark and stats go to the ledger store's outbox operations, on two store connections
 * of the relay's own, one for its thread and one for its marker (opened on the relay's thread,
 * so a database that is down at start is connected to later).
 */
#ifndef COFRE_CORE_OUTBOX_SOURCE_H
#define COFRE_CORE_OUTBOX_SOURCE_H

#include "cofre/relay.h"

typedef struct cofre_outbox_source cofre_outbox_source_t;

/* A source reading the outbox of the COFRE_DB url (copied). Fills *src to hand to the relay. */
cofre_outbox_source_t *cofre_outbox_source_new(const char *db_url, cofre_relay_source_t *src);

/* Frees the source, after the relay using it stopped. */
void cofre_outbox_source_free(cofre_outbox_source_t *s);

#endif
