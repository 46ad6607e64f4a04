/*
 * idempotency.c: a chained hash set of running (client, key) pairs under one mutex (held for
 * a lookup only), and the request hash.
 */
#include "core/idempotency.h"

#include "cofre/common.h"

#include <openssl/evp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define REGISTRY_BUCKETS 4096

typedef struct entry {
    struct entry *next;
    char *client_id;
    char *key;
} entry_t;

struct cofre_idem_registry {
    pthread_mutex_t lock;
    size_t size;
    entry_t *buckets[REGISTRY_BUCKETS];
};

cofre_idem_registry_t *cofre_idem_registry_new(void)
{
    cofre_idem_registry_t *r = cofre_calloc(1, sizeof(*r));
    pthread_mutex_init(&r->lock, NULL);
    return r;
}

void cofre_idem_registry_free(cofre_idem_registry_t *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < REGISTRY_BUCKETS; i++) {
        entry_t *e = r->buckets[i];
        while (e != NULL) {
            entry_t *next = e->next;
            free(e->client_id);
            free(e->key);
            free(e);
            e = next;
        }
    }
    pthread_mutex_destroy(&r->lock);
    free(r);
}

static size_t bucket_of(const char *client_id, const char *key)
{
    uint64_t h = 1469598103934665603ull;
    for (const char *p = client_id; *p != '\0'; p++)
        h = (h ^ (uint8_t)*p) * 1099511628211ull;
    h = (h ^ 0xff) * 1099511628211ull;
    for (const char *p = key; *p != '\0'; p++)
        h = (h ^ (uint8_t)*p) * 1099511628211ull;
    return (size_t)(h % REGISTRY_BUCKETS);
}

static entry_t **find(cofre_idem_registry_t *r, const char *client_id, const char *key)
{
    entry_t **e = &r->buckets[bucket_of(client_id, key)];
    while (*e != NULL && (strcmp((*e)->client_id, client_id) != 0 || strcmp((*e)->key, key) != 0))
        e = &(*e)->next;
    return e;
}

bool cofre_idem_acquire(cofre_idem_registry_t *r, const char *client_id, const char *key)
{
    pthread_mutex_lock(&r->lock);
    entry_t **slot = find(r, client_id, key);
    bool acquired = *slot == NULL;
    if (acquired) {
        entry_t *e = cofre_malloc(sizeof(*e));
        e->next = NULL;
        e->client_id = cofre_strdup(client_id);
        e->key = cofre_strdup(key);
        *slot = e;
        r->size++;
    }
    pthread_mutex_unlock(&r->lock);
    return acquired;
}

void cofre_idem_release(cofre_idem_registry_t *r, const char *client_id, const char *key)
{
    pthread_mutex_lock(&r->lock);
    entry_t **slot = find(r, client_id, key);
    entry_t *e = *slot;
    COFRE_ASSERT(e != NULL);
    *slot = e->next;
    r->size--;
    pthread_mutex_unlock(&r->lock);
    free(e->client_id);
    free(e->key);
    free(e);
}

size_t cofre_idem_registry_size(cofre_idem_registry_t *r)
{
    pthread_mutex_lock(&r->lock);
    size_t n = r->size;
    pthread_mutex_unlock(&r->lock);
    return n;
}

static void update_prefixed(EVP_MD_CTX *ctx, const char *data, size_t len)
{
    uint8_t prefix[8];
    for (int i = 0; i < 8; i++)
        prefix[i] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
    EVP_DigestUpdate(ctx, prefix, sizeof(prefix));
    EVP_DigestUpdate(ctx, data, len);
}

void cofre_idem_request_hash(const char *method, size_t method_len, const char *path,
                             size_t path_len, const char *body, size_t body_len,
                             uint8_t out[COFRE_IDEMPOTENCY_HASH_LEN])
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    COFRE_ASSERT(ctx != NULL);
    COFRE_ASSERT(EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1);
    update_prefixed(ctx, method, method_len);
    update_prefixed(ctx, path, path_len);
    update_prefixed(ctx, body, body_len);
    unsigned int len = 0;
    COFRE_ASSERT(EVP_DigestFinal_ex(ctx, out, &len) == 1 && len == COFRE_IDEMPOTENCY_HASH_LEN);
    EVP_MD_CTX_free(ctx);
}
