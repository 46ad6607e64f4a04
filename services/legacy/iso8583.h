/*
 * iso8583.h: the ISO 8583:1987 codec of the legacy link, shared by cofre-legacy (the adapter)
 * and cofre-legacy-sim (the simulated host). It knows the wire format of the contract and
 * nothing about what the messages mean (that is link.h):
 *
 *   frame   = length (2 bytes, big-endian, binary) + body
 *   body    = MTI (4 ASCII digits) + primary bitmap (8 bytes, binary)
 *             [+ secondary bitmap (8 bytes) when any field 65-128 is present] + fields
 *   field   = fixed: exactly the table's length; LLVAR / LLLVAR: 2 / 3 ASCII digits giving
 *             the length, then that many characters. Every field is ASCII except type b
 *             (binary bytes).
 *
 * Fields are described by a specification table (cofre_iso_field_spec) for all 128 fields of
 * the 1987 standard, so a message carrying fields cofre does not use still decodes. Decoding
 * checks every length, bound and character class and reads nothing past the input; any
 * malformed input returns an error code. A decoded message owns copies of its values, so the
 * input buffer may be reused at once.
 *
 * A message is a plain fixed-size struct (no allocation):
 *
 *   cofre_iso_msg_t m;
 *   cofre_iso_init(&m, "0800");
 *   cofre_iso_set_str(&m, 70, "301");
 *   cofre_iso_encode_frame(&m, buf, sizeof(buf), &len);
 */
#ifndef COFRE_LEGACY_ISO8583_H
#define COFRE_LEGACY_ISO8583_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define COFRE_ISO_FIELDS    128  /* fields 1..128; field 1 is the secondary bitmap */
#define COFRE_ISO_MSG_MAX   8192 /* largest body (without the 2-byte length) accepted or made */
#define COFRE_ISO_MSG_MIN   12   /* MTI + primary bitmap */
#define COFRE_ISO_FRAME_HDR 2    /* the big-endian length prefix */
#define COFRE_ISO_FRAME_MAX (COFRE_ISO_FRAME_HDR + COFRE_ISO_MSG_MAX)
#define COFRE_ISO_MTI_LEN   4

/* Character classes of the 1987 standard, as cofre checks them. */
typedef enum cofre_iso_type {
    COFRE_ISO_UNUSED = 0, /* a field cofre refuses (1, handled as the bitmap; 65) */
    COFRE_ISO_N,          /* digits 0-9 */
    COFRE_ISO_AN,         /* letters and digits */
    COFRE_ISO_ANS,        /* printable ASCII 0x20-0x7e */
    COFRE_ISO_NS,         /* digits and printable non-letters */
    COFRE_ISO_Z,          /* track 2 data: digits, '=' and 'D' */
    COFRE_ISO_XN,         /* 'C' or 'D', then digits (x+n amounts) */
    COFRE_ISO_B,          /* binary bytes */
} cofre_iso_type_t;

typedef enum cofre_iso_len_kind {
    COFRE_ISO_FIXED = 0, /* exactly max characters (bytes for b) */
    COFRE_ISO_LLVAR,     /* 2 ASCII digits of length, then up to max (<= 99) */
    COFRE_ISO_LLLVAR,    /* 3 ASCII digits of length, then up to max (<= 999) */
} cofre_iso_len_kind_t;

typedef struct cofre_iso_field_spec {
    uint8_t type;     /* cofre_iso_type_t */
    uint8_t len_kind; /* cofre_iso_len_kind_t */
    uint16_t max;     /* fixed length, or the variable field's maximum; characters (bytes for b) */
    const char *name;
} cofre_iso_field_spec_t;

/* A message: the MTI, which fields are present, and their values (each NUL-terminated). */
typedef struct cofre_iso_msg {
    char mti[COFRE_ISO_MTI_LEN + 1];
    bool present[COFRE_ISO_FIELDS + 1];
    uint16_t off[COFRE_ISO_FIELDS + 1];
    uint16_t len[COFRE_ISO_FIELDS + 1];
    uint16_t data_len;
    uint8_t data[COFRE_ISO_MSG_MAX + COFRE_ISO_FIELDS + 1];
} cofre_iso_msg_t;

/* Where and why decoding failed, for logs and format-error answers. */
typedef struct cofre_iso_error {
    unsigned field;     /* 0 when the MTI, a bitmap or the frame itself is at fault */
    size_t offset;      /* byte offset in the body where the problem was found */
    const char *reason; /* a constant string */
} cofre_iso_error_t;

/* The specification of field (1..128); NULL when field is out of range. */
const cofre_iso_field_spec_t *cofre_iso_field_spec(unsigned field);

/*
 * Empties m and sets its MTI. mti must be 4 ASCII digits (the program's own constant: asserted).
 */
void cofre_iso_init(cofre_iso_msg_t *m, const char *mti);

/* Replaces the MTI. Returns 0, or COFRE_EINVAL unless mti is 4 digits. */
int cofre_iso_set_mti(cofre_iso_msg_t *m, const char *mti);

/* True when field (1..128) is present. Field 1 is never reported: it is the bitmap. */
bool cofre_iso_has(const cofre_iso_msg_t *m, unsigned field);

/*
 * The value of field, NUL-terminated, with its length in *len (len may be NULL); NULL when
 * the field is absent. The pointer is valid until m changes.
 */
const char *cofre_iso_get(const cofre_iso_msg_t *m, unsigned field, size_t *len);

/*
 * Sets field (2..128, not 65) to len bytes of value, replacing any earlier value. The value
 * must fit the field's specification: its character class, and its exact length (fixed) or
 * at most its maximum (variable; at least 1). Returns 0; COFRE_EINVAL when the field is not
 * settable or the value does not fit its specification; COFRE_ETOOLARGE when the message
 * would exceed COFRE_ISO_MSG_MAX once encoded. On error m is unchanged.
 */
int cofre_iso_set(cofre_iso_msg_t *m, unsigned field, const void *value, size_t len);

/* cofre_iso_set with a NUL-terminated string. */
int cofre_iso_set_str(cofre_iso_msg_t *m, unsigned field, const char *value);

/*
 * Sets a fixed-length numeric field (type n) to v, zero-filled on the left to its length.
 * Returns 0; COFRE_EINVAL when the field is not fixed n; COFRE_ERANGE when v has more digits
 * than the field; COFRE_ETOOLARGE as cofre_iso_set.
 */
int cofre_iso_set_num(cofre_iso_msg_t *m, unsigned field, uint64_t v);

/*
 * Reads a numeric field (type n, at most 19 digits) into *v. Returns 0; COFRE_ENOENT when
 * absent; COFRE_EINVAL when not type n; COFRE_ERANGE when it does not fit uint64_t.
 */
int cofre_iso_get_num(const cofre_iso_msg_t *m, unsigned field, uint64_t *v);

/* Removes field (absent: nothing happens). */
void cofre_iso_unset(cofre_iso_msg_t *m, unsigned field);

/* Copies field from src to dst when present in src. Returns 0 or cofre_iso_set's errors. */
int cofre_iso_copy(cofre_iso_msg_t *dst, const cofre_iso_msg_t *src, unsigned field);

/* The number of bytes the body of m takes when encoded. */
size_t cofre_iso_encoded_len(const cofre_iso_msg_t *m);

/*
 * Encodes the body of m (no length prefix) into buf (cap bytes); *len is the body length.
 * Fields go out in ascending order; the secondary bitmap only when a field above 64 is set.
 * Returns 0, or COFRE_ETOOLARGE when cap is too small (nothing useful is left in buf).
 */
int cofre_iso_encode(const cofre_iso_msg_t *m, uint8_t *buf, size_t cap, size_t *len);

/* Encodes m as a whole frame: the 2-byte length, then the body. *len counts both. */
int cofre_iso_encode_frame(const cofre_iso_msg_t *m, uint8_t *buf, size_t cap, size_t *len);

/*
 * Decodes one body of len bytes (without the length prefix) into m. Reads only buf[0..len).
 * Returns 0; COFRE_ETOOLARGE when len > COFRE_ISO_MSG_MAX; COFRE_EINVAL when the body is
 * malformed: MTI not 4 digits or not version 0 (1987), truncated bitmap or field, a length
 * prefix that is not digits or exceeds the field's maximum, a value outside its character
 * class, field 65 (tertiary bitmap, unsupported), or bytes left over after the last field.
 * err (may be NULL) says where. m is emptied first, so on error it holds no message.
 */
int cofre_iso_decode(cofre_iso_msg_t *m, const uint8_t *buf, size_t len, cofre_iso_error_t *err);

/*
 * Frames a byte stream: looks at the avail bytes received so far. Returns 1 when a whole
 * frame is there (*body and *body_len are its body, *frame_len its full size to consume);
 * 0 when more bytes are needed; COFRE_EINVAL when the announced length is below
 * COFRE_ISO_MSG_MIN or COFRE_ETOOLARGE when above COFRE_ISO_MSG_MAX: the stream cannot be
 * trusted any more and the connection should be closed.
 */
int cofre_iso_frame_next(const uint8_t *buf, size_t avail, const uint8_t **body, size_t *body_len,
                         size_t *frame_len);

/* True when m and o have the same MTI and the same fields with the same values. */
bool cofre_iso_equal(const cofre_iso_msg_t *m, const cofre_iso_msg_t *o);

#endif
