"""A small ISO 8583:1987 encoder/decoder for the black-box tests of the legacy link.

Written from docs/legacy-iso8583.md and independent of the C codec (services/legacy/iso8583.c),
so the two check each other: the tests talk to the C simulator with messages this module
builds, and both sides are held to the hex examples in the document.
"""

import hashlib
import re
import struct
from datetime import datetime, timezone

# field: (type, length kind, max or fixed length). Only the fields the link uses, plus a few
# the hostile-input tests need.
FIELDS = {
    2: ("n", "LL", 19),
    3: ("n", "FIXED", 6),
    4: ("n", "FIXED", 12),
    7: ("n", "FIXED", 10),
    11: ("n", "FIXED", 6),
    12: ("n", "FIXED", 6),
    13: ("n", "FIXED", 4),
    37: ("an", "FIXED", 12),
    38: ("an", "FIXED", 6),
    39: ("an", "FIXED", 2),
    41: ("ans", "FIXED", 8),
    48: ("ans", "LLL", 999),
    49: ("an", "FIXED", 3),
    52: ("b", "FIXED", 8),
    70: ("n", "FIXED", 3),
    90: ("n", "FIXED", 42),
    103: ("ans", "LL", 28),
}

CHARSETS = {
    "n": re.compile(rb"[0-9]*"),
    "an": re.compile(rb"[A-Za-z0-9]*"),
    "ans": re.compile(rb"[\x20-\x7e]*"),
}


class DecodeError(ValueError):
    pass


def _check(field, value):
    kind, lkind, size = FIELDS[field]
    if kind != "b" and not CHARSETS[kind].fullmatch(value):
        raise ValueError(f"field {field}: bad characters {value!r}")
    if lkind == "FIXED" and len(value) != size:
        raise ValueError(f"field {field}: length {len(value)} != {size}")
    if lkind != "FIXED" and not 1 <= len(value) <= size:
        raise ValueError(f"field {field}: length {len(value)} out of 1..{size}")


def _as_bytes(v):
    return v if isinstance(v, bytes) else str(v).encode("ascii")


def encode(mti, fields):
    """Body (without the length prefix) of a message: mti str, fields {number: str|bytes}."""
    fields = {f: _as_bytes(v) for f, v in fields.items()}
    numbers = sorted(fields)
    secondary = any(f > 64 for f in numbers)
    bitmap = 0
    for f in numbers:
        bitmap |= 1 << (128 - f)
    if secondary:
        bitmap |= 1 << 127
    body = mti.encode("ascii")
    body += bitmap.to_bytes(16, "big") if secondary else (bitmap >> 64).to_bytes(8, "big")
    for f in numbers:
        value = fields[f]
        _check(f, value)
        lkind = FIELDS[f][1]
        if lkind == "LL":
            body += b"%02d" % len(value)
        elif lkind == "LLL":
            body += b"%03d" % len(value)
        body += value
    return body


def frame(body):
    return struct.pack(">H", len(body)) + body


def encode_frame(mti, fields):
    return frame(encode(mti, fields))


def decode(body):
    """(mti, {field: str}) from a body; raises DecodeError when malformed."""
    if len(body) < 12:
        raise DecodeError("short")
    mti = body[:4]
    if not re.fullmatch(rb"0[0-9]{3}", mti):
        raise DecodeError("mti")
    bitmap = int.from_bytes(body[4:12], "big") << 64
    pos = 12
    if bitmap >> 127:
        if len(body) < 20:
            raise DecodeError("secondary bitmap")
        bitmap |= int.from_bytes(body[12:20], "big")
        pos = 20
    fields = {}
    for f in range(2, 129):
        if not bitmap & (1 << (128 - f)):
            continue
        if f not in FIELDS:
            raise DecodeError(f"field {f} not known to the test codec")
        kind, lkind, size = FIELDS[f]
        if lkind == "FIXED":
            n = size
        else:
            digits = 2 if lkind == "LL" else 3
            prefix = body[pos : pos + digits]
            if len(prefix) != digits or not prefix.isdigit():
                raise DecodeError(f"field {f} length prefix")
            n = int(prefix)
            pos += digits
        value = body[pos : pos + n]
        if len(value) != n:
            raise DecodeError(f"field {f} truncated")
        try:
            _check(f, value)
        except ValueError as e:
            raise DecodeError(str(e)) from e
        fields[f] = value if kind == "b" else value.decode("ascii")
        pos += n
    if pos != len(body):
        raise DecodeError("trailing bytes")
    return mti.decode("ascii"), fields


def _hash64(uuid_text):
    digest = hashlib.sha256(uuid_text.lower().encode("ascii")).digest()
    return int.from_bytes(digest[:8], "big")


def rrn(transfer_id):
    """Field 37 of a transfer, as the document defines it."""
    v = _hash64(transfer_id) % 36**12
    digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    out = ""
    for _ in range(12):
        out = digits[v % 36] + out
        v //= 36
    return out


def account_number(account_id):
    """Fields 2 and 103 of an account, as the document defines them."""
    return "%019d" % (_hash64(account_id) % 10**19)


def f7(ts):
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%m%d%H%M%S")


def transfer_fields(transfer_id, debit_id, credit_id, amount, currency, stan, sent, posted,
                    terminal="COFRE001"):
    """The fields of a 0200, as cofre-legacy fills them."""
    posted_dt = datetime.fromtimestamp(posted, timezone.utc)
    return {
        2: account_number(debit_id),
        3: "400000",
        4: "%012d" % amount,
        7: f7(sent),
        11: "%06d" % stan,
        12: posted_dt.strftime("%H%M%S"),
        13: posted_dt.strftime("%m%d"),
        37: rrn(transfer_id),
        41: terminal.ljust(8),
        49: currency,
        103: account_number(credit_id),
    }


def reversal_fields(original, stan, sent):
    """The fields of the 0400 reversing a 0200's fields."""
    out = {f: original[f] for f in (2, 3, 4, 12, 13, 37, 41, 49, 103) if f in original}
    out[7] = f7(sent)
    out[11] = "%06d" % stan
    out[90] = "0200" + original[11] + original[7] + "0" * 22
    return out


def network_fields(code, stan, sent):
    return {7: f7(sent), 11: "%06d" % stan, 70: code}


def response_fields(request, code, auth_id=None):
    """What the host echoes (docs: 2 3 4 7 11 12 13 37 41 49 70 90 103), plus 38 and 39."""
    out = {f: v for f, v in request.items()
           if f in (2, 3, 4, 7, 11, 12, 13, 37, 41, 49, 70, 90, 103)}
    if auth_id is not None:
        out[38] = auth_id
    out[39] = code
    return out


def hexdump(data):
    """The document's hex layout: 16 bytes a line, upper case, space-separated."""
    lines = []
    for i in range(0, len(data), 16):
        lines.append(" ".join("%02X" % b for b in data[i : i + 16]))
    return "\n".join(lines)
