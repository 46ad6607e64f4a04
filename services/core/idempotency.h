/*
 * idempotency.h: the in-process half of idempotency. Keys being executed are held in a
 * registry, so a second request with the same (client, key) while the first one runs gets 409
 * at once instead of waiting for it. The durable half (the stored answer, checked and written
 * in the same transaction as the effect) lives in the committer and the store.
 */
#ifndef COFRE_CORE_IDEMPOTENCY_H
#define COFRE_CORE_IDEMPOTENCY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define COFRE_IDEMPOTENCY_HASH_LEN 32

typedef struct cofre_idem_registry cofre_idem_registry_t;

cofre_idem_registry_t *cofre_idem_registry_new(void);
void cofre_idem_registry_free(cofre_idem_registry_t *r);

/* Marks (client_id, key) as running. Returns false when it already is. Thread-safe. */
bool cofre_idem_acquire(cofre_idem_registry_t *r, const char *client_id, const char *key);

/* Ends what cofre_idem_acquire started. Thread-safe. */
void cofre_idem_release(cofre_idem_registry_t *r, const char *client_id, const char *key);

/* Keys currently held (for tests and metrics). */
size_t cofre_idem_registry_size(cofre_idem_registry_t *r);

/*
 * The request fingerprint stored with an answer: SHA-256 over the method, the path and the
 * exact body bytes, each length-prefixed so no two requests share an encoding.
 */
void cofre_idem_request_hash(const char *method, size_t method_len, const char *path,
                             size_t path_len, const char *body, size_t body_len,
                             uint8_t out[COFRE_IDEMPOTENCY_HASH_LEN]);

#endif
