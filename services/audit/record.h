/*
 * record.h: one audit record: what cofre-audit keeps of an event (who, what, when, where from,
 * outcome: PCI DSS 10.2.2), how it is read from a Kafka message, its canonical bytes, and the
 * hash chain over them.
 *
 * Canonical bytes (version 1), the input of the chain hash, are a sequence of items, each a
 * 4-byte big-endian length followed by that many bytes (a null is the length 0xffffffff with
 * no bytes): the tag "cofre.audit.record.v1", seq, every string field in the order of
 * cofre_audit_field_t, amount, time_us, kafka partition, kafka offset; integers as decimal
 * ASCII. The record's hash is SHA-256(previous record's hash || canonical bytes); the first
 * record's previous hash is 32 zero bytes. docs/audit.md says the same, for independent
 * verifiers.
 */
#ifndef COFRE_AUDIT_RECORD_H
#define COFRE_AUDIT_RECORD_H

#include "cofre/jbuf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define COFRE_AUDIT_HASH_LEN  32
#define COFRE_AUDIT_EVENT_MAX (256 * 1024) /* a larger message is malformed */
#define COFRE_AUDIT_ID_MAX    128          /* event ids, client ids, request ids */
#define COFRE_AUDIT_NAME_MAX  256          /* types, sources, subjects, reasons */
#define COFRE_AUDIT_MALFORMED "cofre.audit.malformed_event"
#define COFRE_AUDIT_CANON_TAG "cofre.audit.record.v1"

typedef enum cofre_audit_field {
    COFRE_AUDIT_F_EVENT_ID,    /* the CloudEvents id: the dedup key */
    COFRE_AUDIT_F_TYPE,        /* what: cofre.transfer.posted, ... */
    COFRE_AUDIT_F_SOURCE,      /* the emitting service: /cofre/core */
    COFRE_AUDIT_F_SUBJECT,     /* the entity: a transfer or account id, a client id */
    COFRE_AUDIT_F_TIME,        /* when it happened (the event's time) */
    COFRE_AUDIT_F_RECORDED_AT, /* when cofre-audit stored it */
    COFRE_AUDIT_F_CLIENT_ID,   /* who: the API client */
    COFRE_AUDIT_F_OWNER,       /* who: the token's subject */
    COFRE_AUDIT_F_ADDRESS,     /* where from: the source address */
    COFRE_AUDIT_F_REQUEST_ID,  /* where from: the request */
    COFRE_AUDIT_F_TRACE_ID,    /* where from: the W3C trace */
    COFRE_AUDIT_F_OUTCOME,     /* success, failure, rejected */
    COFRE_AUDIT_F_REASON,      /* why, when not success */
    COFRE_AUDIT_F_CURRENCY,
    COFRE_AUDIT_F_DEBIT_ACCOUNT,
    COFRE_AUDIT_F_CREDIT_ACCOUNT,
    COFRE_AUDIT_F_TOPIC, /* the Kafka topic it came from */
    COFRE_AUDIT_F_EVENT, /* the event as received (JSON text; a JSON string when malformed) */
    COFRE_AUDIT_F_COUNT_,
} cofre_audit_field_t;

/* Field names: database columns and JSON members alike. */
extern const char *const cofre_audit_field_names[COFRE_AUDIT_F_COUNT_];

typedef struct cofre_audit_record {
    int64_t seq;                   /* position in the chain, from 1; 0 before stored */
    char *f[COFRE_AUDIT_F_COUNT_]; /* owned; NULL is null */
    bool has_amount;               /* transfers */
    int64_t amount;                /* minor units */
    bool has_time_us;              /* the event's time parsed */
    int64_t time_us;               /* microseconds since the epoch */
    int32_t partition;             /* Kafka partition (-1: none) */
    int64_t offset;                /* Kafka offset (-1: none) */
    uint8_t hash[COFRE_AUDIT_HASH_LEN];
} cofre_audit_record_t;

/* Where a message came from. */
typedef struct cofre_audit_origin {
    const char *topic;
    int32_t partition;
    int64_t offset;
    const char *recorded_at; /* RFC 3339 */
} cofre_audit_origin_t;

/*
 * Reads a Kafka message value (untrusted) into rec. A CloudEvents 1.0 JSON object of cofre's
 * (specversion, id, type, source; optional subject, time, traceparent, data with actor,
 * outcome, reason, transfer or account) becomes a record of that event. Anything else becomes a
 * record of type COFRE_AUDIT_MALFORMED (outcome "rejected", the reason, the raw bytes as a
 * JSON string, id "malformed:<topic>:<partition>:<offset>") so it stays accounted for. Returns
 * true for a well-formed event, false for a malformed one; rec is filled either way (release
 * it with cofre_audit_record_release).
 */
bool cofre_audit_record_from_event(const char *value, size_t len, const cofre_audit_origin_t *o,
                                   cofre_audit_record_t *rec);

/* Frees what rec holds and zeroes it. */
void cofre_audit_record_release(cofre_audit_record_t *rec);

/* Appends rec's canonical bytes (see above) to out. */
void cofre_audit_record_canonical(const cofre_audit_record_t *rec, cofre_jbuf_t *out);

/* out = SHA-256(prev || canonical bytes of rec). */
void cofre_audit_record_hash(const uint8_t prev[COFRE_AUDIT_HASH_LEN],
                             const cofre_audit_record_t *rec, uint8_t out[COFRE_AUDIT_HASH_LEN]);

/* Appends rec as the API's JSON object (see docs/openapi-audit.yaml). */
void cofre_audit_record_json(const cofre_audit_record_t *rec, cofre_jbuf_t *out);

/*
 * Parses an RFC 3339 timestamp ("2026-11-29T19:43:51.123456Z", "...+01:00"; fractions beyond
 * microseconds are truncated) into microseconds since the epoch. Returns false when malformed.
 */
bool cofre_audit_time_parse(const char *s, size_t len, int64_t *us);

#endif
