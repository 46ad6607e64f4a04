/*
 * secret.h: client secrets: generated from the kernel's random source, shown once, stored
 * only as Argon2id hashes (libsodium's crypto_pwhash_str, which records its parameters in the
 * hash, so a hash made with older parameters still verifies). Hashing and verification take
 * tens of milliseconds by design: call them on worker threads, never on an event loop.
 */
#ifndef COFRE_AUTH_SECRET_H
#define COFRE_AUTH_SECRET_H

#include "auth/registry.h"

#include <stdbool.h>
#include <stddef.h>

#define COFRE_SECRET_BYTES     32  /* 256 bits of entropy */
#define COFRE_SECRET_LEN       43  /* their base64url text */
#define COFRE_SECRET_INPUT_MAX 256 /* longest secret accepted from a client */

/* Argon2id cost. Defaults: t = 2 passes over m = 19 MiB (OWASP's first recommendation). */
#define COFRE_SECRET_OPSLIMIT_DEFAULT     2
#define COFRE_SECRET_MEMLIMIT_KIB_DEFAULT 19456

typedef struct cofre_secret_params {
    unsigned long long opslimit;
    size_t memlimit_kib;
} cofre_secret_params_t;

/* Initialises libsodium. Returns 0 or COFRE_EIO. Call once at start. */
int cofre_secret_init(void);

/* Writes a new random secret (COFRE_SECRET_LEN characters of base64url and a NUL). */
void cofre_secret_generate(char out[COFRE_SECRET_LEN + 1]);

/*
 * Hashes secret (len bytes) with Argon2id and params into out. Returns 0, or COFRE_EIO when
 * libsodium cannot (out of memory for memlimit).
 */
int cofre_secret_hash(const cofre_secret_params_t *params, const char *secret, size_t len,
                      char out[COFRE_REGISTRY_HASH_MAX]);

/* True when secret (len bytes) matches hash. Constant-time in the secret's content. */
bool cofre_secret_verify(const char *hash, const char *secret, size_t len);

/* True when hash was made with other parameters than params (worth re-hashing). */
bool cofre_secret_needs_rehash(const cofre_secret_params_t *params, const char *hash);

/* Overwrites len bytes at p with zeros in a way the compiler keeps. */
void cofre_secret_wipe(void *p, size_t len);

#endif
