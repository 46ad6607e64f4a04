/*
 * adapter_event.h: what cofre-legacy reads from cofre.ledger.events and writes to
 * cofre.legacy.dlq. It turns a CloudEvents 1.0 JSON message into a posted transfer the link
 * can send (checking everything the 0200 needs, so a transfer that could never be sent is
 * dead-lettered at once), and builds the dead-letter messages. No I/O.
 */
#ifndef COFRE_LEGACY_ADAPTER_EVENT_H
#define COFRE_LEGACY_ADAPTER_EVENT_H

#include "cofre/jbuf.h"
#include "cofre/trace.h"
#include "legacy/link.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define COFRE_ADAPTER_EVENT_ID_MAX 128   /* CloudEvents id, as stored */
#define COFRE_ADAPTER_EVENT_MAX    65536 /* a message value larger than this is malformed */
#define COFRE_ADAPTER_EVENT_TYPE   "cofre.transfer.posted"
#define COFRE_ADAPTER_DETAIL_MAX   200

/* A posted transfer, as the adapter stores and delivers it. */
typedef struct cofre_adapter_transfer {
    char event_id[COFRE_ADAPTER_EVENT_ID_MAX + 1];
    char transfer_id[COFRE_LINK_UUID_LEN + 1];
    char debit_account_id[COFRE_LINK_UUID_LEN + 1];
    char credit_account_id[COFRE_LINK_UUID_LEN + 1];
    char currency[4];
    char rrn[COFRE_LINK_RRN_LEN + 1];
    int64_t amount_minor;
    uint64_t posted_at_us;
    char traceparent[COFRE_TRACEPARENT_LEN + 1]; /* "" when the event had none */
    int32_t partition;                           /* where it was read; -1 unknown */
    int64_t offset;
} cofre_adapter_transfer_t;

/* What a message from the ledger topic is. */
typedef enum cofre_adapter_event_kind {
    COFRE_ADAPTER_EVENT_TRANSFER = 0, /* a posted transfer to deliver */
    COFRE_ADAPTER_EVENT_OTHER,        /* a well-formed event of another type: skipped */
    COFRE_ADAPTER_EVENT_MALFORMED,    /* to the dead-letter queue, with *detail */
} cofre_adapter_event_kind_t;

/*
 * Parses one message value (len bytes) into *t. header_traceparent (may be NULL) is the
 * message's traceparent header, used when the envelope has none. A transfer.posted event must
 * carry data.transfer with a UUID id, debit_account_id and credit_account_id, an integer
 * amount in 1..COFRE_LINK_AMOUNT_MAX (field 4 is n 12), a 3-letter currency and an RFC 3339
 * created_at; a value that is not a JSON object with string specversion, id and type is
 * malformed too. On COFRE_ADAPTER_EVENT_MALFORMED, detail (cap bytes) says why, naming the
 * member; it never holds an account number.
 */
cofre_adapter_event_kind_t cofre_adapter_event_parse(const char *value, size_t len,
                                                     const char *header_traceparent,
                                                     cofre_adapter_transfer_t *t, char *detail,
                                                     size_t cap);

/*
 * Parses an RFC 3339 time ("2026-11-29T19:43:51.123456Z", fraction optional, "Z" or an
 * offset "+hh:mm") into microseconds since the epoch. Returns 0 or COFRE_EINVAL.
 */
int cofre_adapter_time_parse(const char *s, uint64_t *us);

/* Why something was dead-lettered (the DLQ message's data.reason). */
#define COFRE_ADAPTER_DLQ_MALFORMED  "malformed_event"
#define COFRE_ADAPTER_DLQ_DECLINED   "declined"
#define COFRE_ADAPTER_DLQ_DUPLICATE  "duplicate_rrn"
#define COFRE_ADAPTER_DLQ_EXHAUSTED  "retries_exhausted"
#define COFRE_ADAPTER_DLQ_REV_DENIED "reversal_declined"

/* Where the dead-lettered input came from. */
typedef struct cofre_adapter_dlq_source {
    const char *topic;
    int32_t partition; /* -1: unknown */
    int64_t offset;
    const char *raw; /* the original message value (malformed events), or NULL */
    size_t raw_len;
} cofre_adapter_dlq_source_t;

/*
 * Writes the DLQ message value into out: a CloudEvents 1.0 object of type
 * cofre.legacy.dead_lettered, subject the transfer id (or the source event id), data
 * {reason, detail, response_code, attempts, transfer (when known, with the legacy RRN),
 * source {topic, partition, offset, event_id}, original (the raw value as a string, for
 * malformed events, at most COFRE_ADAPTER_EVENT_MAX bytes; original_base64 instead when the
 * value is not UTF-8 or holds a NUL)}. t may be NULL (nothing parsed);
 * code may be NULL. now_us stamps the event.
 */
void cofre_adapter_dlq_message(cofre_jbuf_t *out, const char *reason, const char *detail,
                               const char *code, unsigned attempts,
                               const cofre_adapter_transfer_t *t,
                               const cofre_adapter_dlq_source_t *src, uint64_t now_us);

/*
 * Checks that t can be sent as a 0200 (what cofre_link_build_transfer accepts) and fills t->rrn.
 * Returns 0, or COFRE_EINVAL / COFRE_ERANGE with detail filled.
 */
int cofre_adapter_transfer_check(cofre_adapter_transfer_t *t, char *detail, size_t cap);

#endif
