"""An independent implementation of cofre-audit's record hash chain (docs/audit.md), so the
tests check the stored trail without trusting the service's own verifier.

Rows are dicts of the audit_records table's columns (read with sqlite3 or psycopg2).
"""

import hashlib

TAG = b"cofre.audit.record.v1"
NULL = 0xFFFFFFFF

# The string columns, in canonical order.
FIELDS = ["event_id", "type", "source", "subject", "time", "recorded_at", "client_id", "owner",
          "address", "request_id", "trace_id", "outcome", "reason", "currency",
          "debit_account_id", "credit_account_id", "topic", "event"]


def _item(value):
    if value is None:
        return NULL.to_bytes(4, "big")
    data = value if isinstance(value, bytes) else str(value).encode()
    return len(data).to_bytes(4, "big") + data


def canonical(row):
    out = _item(TAG) + _item(row["seq"])
    for name in FIELDS:
        out += _item(row[name])
    for name in ("amount", "time_us", "kafka_partition", "kafka_offset"):
        out += _item(row[name])
    return out


def chain(rows):
    """Yields (seq, computed hash, stored hash) along rows in seq order."""
    prev = bytes(32)
    for row in rows:
        h = hashlib.sha256(prev + canonical(row)).digest()
        yield row["seq"], h, bytes(row["hash"])
        prev = h


def checkpoint_message(seq, hash_bytes, created_at):
    return (f"cofre-audit checkpoint v1\nseq={seq}\nhash={hash_bytes.hex()}\n"
            f"created_at={created_at}\n").encode()
