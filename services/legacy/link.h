/*
 * link.h: the legacy link's message layout on top of the ISO 8583 codec (iso8583.h): which
 * fields each message carries, how cofre fills them (RRN and account numbers derived from
 * UUIDs, STAN, transmission times), the response codes, and the checks that a request is
 * complete and that a response answers a given request. cofre-legacy builds requests with it;
 * cofre-legacy-sim checks them and builds the answers. docs/legacy-iso8583.md is the prose
 * version of this file.
 */
#ifndef COFRE_LEGACY_LINK_H
#define COFRE_LEGACY_LINK_H

#include "legacy/iso8583.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Message types. */
#define COFRE_LINK_MTI_TRANSFER      "0200"
#define COFRE_LINK_MTI_TRANSFER_RESP "0210"
#define COFRE_LINK_MTI_REVERSAL      "0400"
#define COFRE_LINK_MTI_REVERSAL_RESP "0410"
#define COFRE_LINK_MTI_NETWORK       "0800"
#define COFRE_LINK_MTI_NETWORK_RESP  "0810"

/* Field 3: cardholder accounts transfer, default account types. */
#define COFRE_LINK_PROC_TRANSFER "400000"

/* Field 70: network management information codes. */
#define COFRE_LINK_NMC_SIGN_ON  "001"
#define COFRE_LINK_NMC_SIGN_OFF "002"
#define COFRE_LINK_NMC_ECHO     "301"

/* Field 39: the response codes cofre's host uses (ISO 8583:1987 meanings). */
#define COFRE_LINK_RC_APPROVED            "00"
#define COFRE_LINK_RC_INVALID_TRANSACTION "12"
#define COFRE_LINK_RC_INVALID_AMOUNT      "13"
#define COFRE_LINK_RC_FORMAT_ERROR        "30"
#define COFRE_LINK_RC_NOT_PERMITTED       "57"
#define COFRE_LINK_RC_AMOUNT_LIMIT        "61"
#define COFRE_LINK_RC_HOST_INOPERATIVE    "91"
#define COFRE_LINK_RC_DUPLICATE           "94"
#define COFRE_LINK_RC_MALFUNCTION         "96"

#define COFRE_LINK_UUID_LEN     36
#define COFRE_LINK_RRN_LEN      12
#define COFRE_LINK_ACCOUNT_LEN  19
#define COFRE_LINK_TERMINAL_LEN 8
#define COFRE_LINK_STAN_MAX     999999u
#define COFRE_LINK_AMOUNT_MAX   999999999999LL /* field 4 is n 12 */
#define COFRE_LINK_MASK_MAX     64

/* A posted transfer, as the adapter hands it to the link. */
typedef struct cofre_link_transfer {
    const char *transfer_id;       /* UUID */
    const char *debit_account_id;  /* UUID */
    const char *credit_account_id; /* UUID */
    int64_t amount_minor;
    const char *currency;  /* ISO 4217 alphabetic code, 3 letters */
    uint64_t posted_at_us; /* when the core posted it (fields 12 and 13) */
} cofre_link_transfer_t;

/*
 * The RRN (field 37) of a transfer: SHA-256 of the UUID's 36 lowercase characters, the first
 * 8 bytes read as a big-endian integer, reduced modulo 36^12 and written as 12 base-36 digits
 * (0-9, A-Z), zero-padded. The same transfer always gets the same RRN, so a retry is
 * recognisable. Hashing keeps RRNs spread even for time-ordered UUIDs (v7). out holds 13
 * bytes. Returns 0, or COFRE_EINVAL when id (len bytes) is not a UUID.
 */
int cofre_link_rrn(const char *id, size_t len, char out[COFRE_LINK_RRN_LEN + 1]);

/*
 * The legacy account number of an account (fields 2 and 103): the same SHA-256 integer as the
 * RRN, modulo 10^19, as 19 decimal digits, zero-padded. out holds 20 bytes. Returns 0, or
 * COFRE_EINVAL when id is not a UUID.
 */
int cofre_link_account_number(const char *id, size_t len, char out[COFRE_LINK_ACCOUNT_LEN + 1]);

/* The STAN after stan: 1, 2, ... 999999, then 1 again (0 is never used). */
uint32_t cofre_link_stan_next(uint32_t stan);

/*
 * Formats a wall-clock time (microseconds since the epoch, UTC) as field 7 (MMDDhhmmss,
 * 11 bytes), field 12 (hhmmss, 7 bytes) and field 13 (MMDD, 5 bytes). Any may be NULL.
 */
void cofre_link_format_time(uint64_t wall_us, char *f7, char *f12, char *f13);

/*
 * Builds the 0200 for a posted transfer: 2 (debit account number), 3, 4, 7 (now_us), 11
 * (stan), 12 and 13 (posted_at_us), 37 (RRN), 41 (terminal, space-padded to 8), 49, 103
 * (credit account number). Returns 0; COFRE_EINVAL when an id is not a UUID, the currency
 * is not 3 letters, the terminal is empty, longer than 8 or not printable, or stan is out of
 * 1..999999; COFRE_ERANGE when the amount is not in 1..COFRE_LINK_AMOUNT_MAX.
 */
int cofre_link_build_transfer(cofre_iso_msg_t *m, const cofre_link_transfer_t *t, uint32_t stan,
                              const char *terminal, uint64_t now_us);

/*
 * Builds the 0400 that reverses original (a 0200 built by cofre_link_build_transfer): the
 * original's 2, 3, 4, 12, 13, 37, 41, 49 and 103, a new 7 (now_us) and 11 (stan), and 90
 * (original data elements: original MTI, STAN and field 7, then 22 zeros for the acquiring
 * and forwarding institution codes). Returns 0, or COFRE_EINVAL when original is not a
 * complete 0200 or stan is out of range.
 */
int cofre_link_build_reversal(cofre_iso_msg_t *m, const cofre_iso_msg_t *original, uint32_t stan,
                              uint64_t now_us);

/*
 * Builds an 0800 with fields 7 (now_us), 11 (stan) and 70 (nmc, one of COFRE_LINK_NMC_*).
 * Returns 0, or COFRE_EINVAL when nmc is not 3 digits or stan is out of range.
 */
int cofre_link_build_network(cofre_iso_msg_t *m, const char *nmc, uint32_t stan, uint64_t now_us);

/*
 * Reads field 90 of m: the original MTI (5 bytes), STAN (7) and field 7 (11); any may be
 * NULL. Returns 0, COFRE_ENOENT when m has no field 90.
 */
int cofre_link_original(const cofre_iso_msg_t *m, char *mti, char *stan, char *f7);

/*
 * True when mti is a request or an advice (third digit 0 or 2), which gets an answer.
 */
bool cofre_link_is_request(const char *mti);

/*
 * Builds the answer to req: MTI with the third digit plus one (0200 -> 0210), req's echoed
 * fields (2, 3, 4, 7, 11, 12, 13, 37, 41, 49, 70, 90, 103, as far as present), 39 = code,
 * and 38 = auth_id when given (6 letters or digits). Returns 0, or COFRE_EINVAL when req is
 * not a request or code/auth_id do not fit their fields.
 */
int cofre_link_build_response(cofre_iso_msg_t *resp, const cofre_iso_msg_t *req, const char *code,
                              const char *auth_id);

/*
 * Checks that request m carries every field its MTI requires (0200: 2 3 4 7 11 12 13 37 41
 * 49; 0400: 3 4 7 11 37 41 49; 0800: 7 11 70). Returns 0; COFRE_ENOENT when the MTI is not
 * one the link uses; COFRE_EINVAL with *missing (may be NULL) set to the first absent field.
 */
int cofre_link_check_request(const cofre_iso_msg_t *m, unsigned *missing);

/*
 * True when resp answers req: the response MTI of req's, the same STAN (11), the same RRN
 * (37) when req has one, and a response code (39).
 */
bool cofre_link_response_matches(const cofre_iso_msg_t *req, const cofre_iso_msg_t *resp);

/* Field 39 of m, or NULL. */
const char *cofre_link_response_code(const cofre_iso_msg_t *m);

/* True when code is "00". */
bool cofre_link_code_approved(const char *code);

/*
 * Masks an account or card number for logs: every character but the last 4 becomes '*'
 * (all of them when len <= 4). out holds cap bytes (NUL-terminated, truncated to fit).
 */
void cofre_link_mask(const char *s, size_t len, char *out, size_t cap);

#endif
