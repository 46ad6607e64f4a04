/*
 * keys.c: checkpoint signing keys and signatures on libsodium (see keys.h).
 */
#include "audit/keys.h"

#include "cofre/common.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define SEED_HEX_LEN (2 * crypto_sign_SEEDBYTES)

int cofre_audit_keys_init(cofre_audit_keys_t *keys)
{
    memset(keys, 0, sizeof(*keys));
    return sodium_init() < 0 ? COFRE_EIO : 0;
}

static bool is_trusted(const cofre_audit_keys_t *keys, const uint8_t *pk)
{
    for (size_t i = 0; i < keys->ntrusted; i++) {
        if (sodium_memcmp(keys->trusted[i], pk, COFRE_AUDIT_PUBKEY_LEN) == 0)
            return true;
    }
    return false;
}

static int add_trusted(cofre_audit_keys_t *keys, const uint8_t *pk)
{
    if (is_trusted(keys, pk))
        return 0;
    if (keys->ntrusted == COFRE_AUDIT_TRUSTED_MAX)
        return COFRE_EFULL;
    memcpy(keys->trusted[keys->ntrusted++], pk, COFRE_AUDIT_PUBKEY_LEN);
    return 0;
}

/* Reads the seed file's 64 hex digits (and at most one newline) into hex. */
static int read_seed_file(const char *path, char hex[SEED_HEX_LEN + 2])
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? COFRE_ENOENT : COFRE_EIO;
    ssize_t n = read(fd, hex, SEED_HEX_LEN + 2);
    close(fd);
    if (n == SEED_HEX_LEN + 1 && hex[SEED_HEX_LEN] == '\n')
        n--;
    if (n != SEED_HEX_LEN)
        return COFRE_EINVAL;
    hex[SEED_HEX_LEN] = '\0';
    return 0;
}

int cofre_audit_keys_load(cofre_audit_keys_t *keys, const char *path)
{
    char hex[SEED_HEX_LEN + 2];
    uint8_t seed[crypto_sign_SEEDBYTES];
    size_t len = 0;
    COFRE_ASSERT(keys->ntrusted == 0);
    int rc = read_seed_file(path, hex);
    if (rc == 0 && (sodium_hex2bin(seed, sizeof(seed), hex, SEED_HEX_LEN, NULL, &len, NULL) != 0 ||
                    len != sizeof(seed)))
        rc = COFRE_EINVAL;
    if (rc == 0) {
        crypto_sign_seed_keypair(keys->public_key, keys->secret, seed);
        keys->can_sign = true;
        add_trusted(keys, keys->public_key); /* first: loaded before any other is trusted */
    }
    sodium_memzero(hex, sizeof(hex));
    sodium_memzero(seed, sizeof(seed));
    return rc;
}

int cofre_audit_keys_trust(cofre_audit_keys_t *keys, const char *hex_list)
{
    const char *p = hex_list;
    while (*p != '\0') {
        const char *comma = strchr(p, ',');
        size_t item = comma != NULL ? (size_t)(comma - p) : strlen(p);
        uint8_t pk[COFRE_AUDIT_PUBKEY_LEN];
        size_t len = 0;
        if (item != 2 * COFRE_AUDIT_PUBKEY_LEN ||
            sodium_hex2bin(pk, sizeof(pk), p, item, NULL, &len, NULL) != 0 || len != sizeof(pk) ||
            add_trusted(keys, pk) != 0)
            return COFRE_EINVAL;
        p = comma != NULL ? comma + 1 : p + item;
    }
    return 0;
}

int cofre_audit_keys_generate(const char *path, char pub_hex[2 * COFRE_AUDIT_PUBKEY_LEN + 1])
{
    uint8_t seed[crypto_sign_SEEDBYTES], pk[COFRE_AUDIT_PUBKEY_LEN], sk[64];
    char hex[SEED_HEX_LEN + 2];
    randombytes_buf(seed, sizeof(seed));
    crypto_sign_seed_keypair(pk, sk, seed);
    sodium_bin2hex(hex, sizeof(hex), seed, sizeof(seed));
    hex[SEED_HEX_LEN] = '\n';
    int rc = 0;
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        rc = errno == EEXIST ? COFRE_EEXIST : COFRE_EIO;
    else if (write(fd, hex, SEED_HEX_LEN + 1) != SEED_HEX_LEN + 1 || fsync(fd) != 0)
        rc = COFRE_EIO;
    if (fd >= 0 && close(fd) != 0)
        rc = COFRE_EIO;
    if (rc == 0)
        sodium_bin2hex(pub_hex, 2 * COFRE_AUDIT_PUBKEY_LEN + 1, pk, sizeof(pk));
    sodium_memzero(seed, sizeof(seed));
    sodium_memzero(sk, sizeof(sk));
    sodium_memzero(hex, sizeof(hex));
    return rc;
}

void cofre_audit_keys_kid(const uint8_t public_key[COFRE_AUDIT_PUBKEY_LEN],
                          char kid[COFRE_AUDIT_KID_LEN + 1])
{
    uint8_t h[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(h, public_key, COFRE_AUDIT_PUBKEY_LEN);
    cofre_hex_encode(h, COFRE_AUDIT_KID_LEN / 2, kid);
}

void cofre_audit_checkpoint_message(const cofre_audit_checkpoint_t *cp, cofre_jbuf_t *out)
{
    char hex[2 * COFRE_AUDIT_HASH_LEN + 1];
    cofre_hex_encode(cp->hash, COFRE_AUDIT_HASH_LEN, hex);
    cofre_jbuf_appendz(out, "cofre-audit checkpoint v1\nseq=");
    cofre_jbuf_append_int(out, cp->seq);
    cofre_jbuf_appendz(out, "\nhash=");
    cofre_jbuf_appendz(out, hex);
    cofre_jbuf_appendz(out, "\ncreated_at=");
    cofre_jbuf_appendz(out, cp->created_at);
    cofre_jbuf_appendz(out, "\n");
}

void cofre_audit_checkpoint_sign(const cofre_audit_keys_t *keys, cofre_audit_checkpoint_t *cp)
{
    COFRE_ASSERT(keys->can_sign);
    cofre_time_format(cofre_now_wall_us(), cp->created_at);
    memcpy(cp->public_key, keys->public_key, COFRE_AUDIT_PUBKEY_LEN);
    cofre_jbuf_t m;
    cofre_jbuf_init(&m);
    cofre_audit_checkpoint_message(cp, &m);
    crypto_sign_detached(cp->signature, NULL, (const unsigned char *)m.data, m.len, keys->secret);
    cofre_jbuf_release(&m);
}

bool cofre_audit_checkpoint_valid(const cofre_audit_keys_t *keys,
                                  const cofre_audit_checkpoint_t *cp)
{
    if (!is_trusted(keys, cp->public_key))
        return false;
    cofre_jbuf_t m;
    cofre_jbuf_init(&m);
    cofre_audit_checkpoint_message(cp, &m);
    bool ok = crypto_sign_verify_detached(cp->signature, (const unsigned char *)m.data, m.len,
                                          cp->public_key) == 0;
    cofre_jbuf_release(&m);
    return ok;
}

void cofre_audit_keys_json(const cofre_audit_keys_t *keys, cofre_jbuf_t *out)
{
    cofre_jbuf_obj_begin(out);
    cofre_jbuf_key(out, "keys");
    cofre_jbuf_arr_begin(out);
    for (size_t i = 0; i < keys->ntrusted; i++) {
        char kid[COFRE_AUDIT_KID_LEN + 1], hex[2 * COFRE_AUDIT_PUBKEY_LEN + 1];
        cofre_audit_keys_kid(keys->trusted[i], kid);
        cofre_hex_encode(keys->trusted[i], COFRE_AUDIT_PUBKEY_LEN, hex);
        cofre_jbuf_obj_begin(out);
        cofre_jbuf_kstr(out, "kid", kid);
        cofre_jbuf_kstr(out, "alg", "Ed25519");
        cofre_jbuf_kstr(out, "public_key", hex);
        cofre_jbuf_kbool(out, "current", keys->can_sign && i == 0);
        cofre_jbuf_obj_end(out);
    }
    cofre_jbuf_arr_end(out);
    cofre_jbuf_obj_end(out);
}
