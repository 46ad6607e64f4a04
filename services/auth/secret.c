/*
 * secret.c: client secrets with libsodium.
 */
#include "auth/secret.h"

#include "cofre/common.h"
#include "cofre/jwt.h"

#include <sodium.h>
#include <string.h>

int cofre_secret_init(void)
{
    return sodium_init() < 0 ? COFRE_EIO : 0;
}

void cofre_secret_generate(char out[COFRE_SECRET_LEN + 1])
{
    uint8_t raw[COFRE_SECRET_BYTES];
    cofre_random_bytes(raw, sizeof(raw));
    size_t n = cofre_jwt_b64url_encode(raw, sizeof(raw), out);
    COFRE_ASSERT(n == COFRE_SECRET_LEN);
    sodium_memzero(raw, sizeof(raw));
}

int cofre_secret_hash(const cofre_secret_params_t *params, const char *secret, size_t len,
                      char out[COFRE_REGISTRY_HASH_MAX])
{
    _Static_assert(COFRE_REGISTRY_HASH_MAX >= crypto_pwhash_STRBYTES, "hash buffer too small");
    if (crypto_pwhash_str_alg(out, secret, len, params->opslimit, params->memlimit_kib * 1024,
                              crypto_pwhash_ALG_ARGON2ID13) != 0)
        return COFRE_EIO;
    return 0;
}

bool cofre_secret_verify(const char *hash, const char *secret, size_t len)
{
    if (strncmp(hash, crypto_pwhash_argon2id_STRPREFIX,
                sizeof(crypto_pwhash_argon2id_STRPREFIX) - 1) != 0)
        return false;
    return crypto_pwhash_str_verify(hash, secret, len) == 0;
}

bool cofre_secret_needs_rehash(const cofre_secret_params_t *params, const char *hash)
{
    return crypto_pwhash_str_needs_rehash(hash, params->opslimit, params->memlimit_kib * 1024) != 0;
}

void cofre_secret_wipe(void *p, size_t len)
{
    sodium_memzero(p, len);
}
