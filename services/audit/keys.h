/*
 * keys.h: the Ed25519 keys of cofre-audit's signed checkpoints (libsodium). The signing key is
 * a 32-byte seed kept in a file as 64 hex digits (COFRE_AUDIT_SIGNING_KEY_FILE, mode 0600,
 * made by `cofre-audit keygen FILE`); its public key is published at GET /v1/audit/keys.
 * Earlier signing keys stay trusted for verification when listed in COFRE_AUDIT_TRUSTED_KEYS
 * (hex public keys), so a rotation does not orphan old checkpoints; an auditor without the
 * secret verifies with the public keys alone.
 *
 * A checkpoint's signed message is the text
 *   "cofre-audit checkpoint v1\nseq=<seq>\nhash=<hex>\ncreated_at=<RFC 3339>\n".
 */
#ifndef COFRE_AUDIT_KEYS_H
#define COFRE_AUDIT_KEYS_H

#include "audit/store.h"
#include "cofre/jbuf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define COFRE_AUDIT_TRUSTED_MAX 16
#define COFRE_AUDIT_KID_LEN     16 /* hex digits of the key id */

typedef struct cofre_audit_keys {
    bool can_sign;
    uint8_t secret[64]; /* libsodium's secret key (seed + public key) */
    uint8_t public_key[COFRE_AUDIT_PUBKEY_LEN];
    size_t ntrusted; /* the signing key's public key first, when there is one */
    uint8_t trusted[COFRE_AUDIT_TRUSTED_MAX][COFRE_AUDIT_PUBKEY_LEN];
} cofre_audit_keys_t;

/* Initializes libsodium (once; any thread) and empties keys. Returns 0 or COFRE_EIO. */
int cofre_audit_keys_init(cofre_audit_keys_t *keys);

/* Loads the signing key from a seed file (before any cofre_audit_keys_trust). Returns 0,
 * COFRE_ENOENT (no such file), or COFRE_EINVAL (not 64 hex digits and a newline). Never logs the
 * key. */
int cofre_audit_keys_load(cofre_audit_keys_t *keys, const char *path);

/* Adds the public keys of a comma list of 64-hex-digit keys. Returns 0 or COFRE_EINVAL. */
int cofre_audit_keys_trust(cofre_audit_keys_t *keys, const char *hex_list);

/* Writes a new random seed to path (created 0600; an existing file is refused with
 * COFRE_EEXIST) and its public key in hex into pub_hex (65 bytes). */
int cofre_audit_keys_generate(const char *path, char pub_hex[2 * COFRE_AUDIT_PUBKEY_LEN + 1]);

/* The key id of a public key: the first 16 hex digits of its SHA-256. */
void cofre_audit_keys_kid(const uint8_t public_key[COFRE_AUDIT_PUBKEY_LEN],
                          char kid[COFRE_AUDIT_KID_LEN + 1]);

/* Appends the message a checkpoint signs (see above). */
void cofre_audit_checkpoint_message(const cofre_audit_checkpoint_t *cp, cofre_jbuf_t *out);

/* Fills cp's created_at (now), public key and signature over seq and hash. keys must sign. */
void cofre_audit_checkpoint_sign(const cofre_audit_keys_t *keys, cofre_audit_checkpoint_t *cp);

/* True when cp's key is trusted and its signature is valid. */
bool cofre_audit_checkpoint_valid(const cofre_audit_keys_t *keys,
                                  const cofre_audit_checkpoint_t *cp);

/* Appends {"keys": [{"kid", "alg": "Ed25519", "public_key": hex, "current": bool}]}. */
void cofre_audit_keys_json(const cofre_audit_keys_t *keys, cofre_jbuf_t *out);

#endif
