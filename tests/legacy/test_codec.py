"""The Python test codec against docs/legacy-iso8583.md: the document's hex examples decode to
the fields the document lists and re-encode byte for byte, with the RRN and account numbers
derived as the document says. The C codec is held to the same examples
(tests/unit/test_iso8583.c), so the two codecs agree through the document."""

import os
import re
from datetime import datetime, timezone

import pytest

import iso8583 as iso

DOC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "docs",
                   "legacy-iso8583.md")
TRANSFER = "0192f3a4-5b6c-7d8e-9fa0-b1c2d3e4f5a6"
DEBIT = "0192f3a0-1111-7222-8333-444455556666"
CREDIT = "0192f3a0-7777-7888-8999-aaaabbbbcccc"
POSTED = datetime(2026, 11, 29, 19, 43, 51, tzinfo=timezone.utc).timestamp()


def doc_examples():
    with open(DOC, encoding="utf-8") as f:
        text = f.read()
    found = re.findall(r"<!-- kat:(\S+) -->\n```text\n(.*?)```", text, re.S)
    return {name: bytes.fromhex(hx.replace("\n", " ")) for name, hx in found}


def expected():
    req = iso.transfer_fields(TRANSFER, DEBIT, CREDIT, 12345, "BRL", 42, POSTED + 1, POSTED)
    rev = iso.reversal_fields(req, 43, POSTED + 31)
    signon = iso.network_fields("001", 1, POSTED - 51)
    echo = iso.network_fields("301", 2, POSTED - 21)
    return {
        "0200": ("0200", req),
        "0210": ("0210", iso.response_fields(req, "00", "000001")),
        "0400": ("0400", rev),
        "0410": ("0410", iso.response_fields(rev, "00")),
        "0800-signon": ("0800", signon),
        "0810-signon": ("0810", iso.response_fields(signon, "00")),
        "0800-echo": ("0800", echo),
        "0810-echo": ("0810", iso.response_fields(echo, "00")),
    }


def test_document_has_every_example():
    assert set(doc_examples()) == set(expected())


@pytest.mark.parametrize("name", sorted(expected()))
def test_example_decodes_and_reencodes(name):
    frame = doc_examples()[name]
    assert int.from_bytes(frame[:2], "big") == len(frame) - 2
    mti, fields = iso.decode(frame[2:])
    assert (mti, fields) == expected()[name]
    assert iso.encode_frame(mti, fields) == frame


def test_derivations_match_the_document():
    assert iso.rrn(TRANSFER) == "D1RB0AYR7OR3"
    assert iso.rrn(TRANSFER.upper()) == "D1RB0AYR7OR3"
    assert iso.account_number(DEBIT) == "7798644626488375109"
    assert iso.account_number(CREDIT) == "8676245170660303205"


def test_test_codec_refuses_what_the_document_refuses():
    body = doc_examples()["0200"][2:]
    for n in range(len(body)):
        with pytest.raises(iso.DecodeError):
            iso.decode(body[:n])
    with pytest.raises(iso.DecodeError):
        iso.decode(body + b"0")
    with pytest.raises(iso.DecodeError):
        iso.decode(b"1" + body[1:])
