"""Fault injection of cofre-legacy-sim through its control port: each command behaves as
docs/legacy-iso8583.md says, as seen from an ISO 8583 client. A fault takes the answer, never
the processing: the ledger shows the request applied."""

import json
import socket
import time

import pytest

import iso8583 as iso
from simhelp import SLOW, Client, Transfer

QUIET_S = 0.6 * SLOW  # long enough to be sure an answer is not coming


def applied(sim, t):
    row = sim.ledger_by_rrn().get(t.rrn)
    return row is not None and row["state"] == "approved"


# -- the control protocol ---------------------------------------------------------------------

def test_control_commands_and_errors(sim):
    assert sim.control("ping") == "pong"
    assert sim.control("help").startswith("ok commands:")
    for bad in ("frobnicate", "drop", "drop 0", "drop -1", "drop p=0", "drop p=1.5", "drop x",
                "drop 1 on=0100", "drop 1 on=0200 extra", "latency", "latency 600001",
                "down 0", "down 3601", "decline 00 1", "decline 5 1", "decline 05",
                "seed", "status now", ""):
        reply = sim.control(bad)
        assert reply.startswith("error "), (bad, reply)
    st = sim.status()
    assert st["faults"] == [] and st["latency_ms"] == 0
    sim.ok("latency 5")
    sim.ok("drop 2 on=0200")
    sim.ok("decline 51 all")
    sim.ok("garbage p=0.25")
    st = sim.status()
    assert st["latency_ms"] == 5
    assert st["faults"] == [
        {"fault": "drop", "remaining": 2, "on": "0200"},
        {"fault": "decline", "remaining": -1, "on": "0200", "code": "51"},
        {"fault": "garbage", "per_million": 250000, "on": None},
    ]
    sim.ok("clear")
    st = sim.status()
    assert st["faults"] == [] and st["latency_ms"] == 0


def test_control_limits(sim):
    for i in range(16):
        sim.ok(f"drop {i + 1}")
    assert sim.control("drop 1").startswith("error too many faults")
    s = socket.create_connection(("127.0.0.1", sim.control_port), timeout=5 * SLOW)
    s.sendall(b"x" * 300 + b"\n")
    data = b""
    while True:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    assert data == b"error line too long\n"  # and the connection was closed


def test_status_counts(sim):
    c = sim.connect()
    t = Transfer()
    req, _ = c.post(t)
    c.post(t)
    c.reverse(req)
    st = sim.status()
    assert (st["approved"], st["duplicates"], st["reversals"]) == (1, 1, 1)
    assert st["connections"] == 1 and st["signed_on"] == 1 and st["up"] is True
    assert st["frames"] == 4 and st["answers"] == 4 and st["requests"] == 4
    assert json.loads(json.dumps(st)) == st


# -- answer faults ----------------------------------------------------------------------------

def test_latency_delays_processing_and_keeps_order(sim):
    c = sim.connect()
    sim.ok("latency 1000")
    t1, t2 = Transfer(), Transfer()
    r1, r2 = c.transfer_fields(t1), c.transfer_fields(t2)
    start = time.monotonic()
    c.send_raw(iso.encode_frame("0200", r1) + iso.encode_frame("0200", r2))
    time.sleep(0.1)
    st = sim.status()
    if time.monotonic() - start < 0.9:  # a slow host: both wait, nothing processed yet
        assert (st["queued"], st["approved"]) == (2, 0), st
    a1 = c.recv()[1]
    a2 = c.recv()[1]
    elapsed = time.monotonic() - start
    assert (a1[11], a2[11]) == (r1[11], r2[11])
    assert 1.0 <= elapsed < 1.0 + 2 * SLOW
    assert applied(sim, t1) and applied(sim, t2)
    sim.ok("latency 0")
    start = time.monotonic()
    c.post(Transfer())
    assert time.monotonic() - start < 0.5 * SLOW


def test_drop_applies_but_does_not_answer(sim):
    c = sim.connect()
    sim.ok("drop 1")
    t = Transfer()
    c.send("0200", c.transfer_fields(t))
    with pytest.raises(socket.timeout):
        c.recv(timeout=QUIET_S)
    assert applied(sim, t)
    _, f = c.post(t)  # the retry learns the outcome; the connection stayed open
    assert f[39] == "00"
    assert sim.ledger_by_rrn()[t.rrn]["applications"] == 1
    assert sim.status()["injected"]["drop"] == 1


def test_fault_filter_by_request_mti(sim):
    c = sim.connect()
    sim.ok("drop 1 on=0800")
    assert c.post(Transfer())[1][39] == "00"
    c.send("0800", iso.network_fields("301", c.next_stan(), time.time()))
    with pytest.raises(socket.timeout):
        c.recv(timeout=QUIET_S)
    assert c.call("0800", iso.network_fields("301", c.next_stan(), time.time()))[1][39] == "00"


def test_close_applies_then_closes(sim):
    c = sim.connect()
    sim.ok("close 1")
    t = Transfer()
    c.send("0200", c.transfer_fields(t))
    assert c.closed()
    assert c.buf == b""
    assert applied(sim, t)
    assert sim.connect().post(Transfer())[1][39] == "00"


def test_cut_sends_half_a_frame_then_closes(sim):
    c = sim.connect()
    sim.ok("cut 1")
    t = Transfer()
    req = c.transfer_fields(t)
    c.send("0200", req)
    full = iso.encode_frame("0210", iso.response_fields(req, "00", "000001"))
    got = c.read_exact(len(full))  # stops early at the close
    assert len(got) == len(full) // 2
    assert got[:6] == full[:6]  # the real answer's start: length and MTI
    assert c.closed()
    assert applied(sim, t)


def test_garbage_then_the_connection_goes_on(sim):
    c = sim.connect()
    sim.ok("seed 7")
    sim.ok("garbage 1")
    t = Transfer()
    req = c.transfer_fields(t)
    c.send("0200", req)
    junk = c.read_exact(64)
    assert len(junk) == 64
    real = iso.encode_frame("0210", iso.response_fields(req, "00", "000001"))
    assert junk != real[:64]
    assert applied(sim, t)
    _, f = c.post(Transfer())  # no more garbage: a normal answer follows on the same connection
    assert f[39] == "00"


def test_badframe_has_a_valid_length_and_a_random_body(sim):
    c = sim.connect()
    sim.ok("seed 11")
    sim.ok("badframe 1")
    c.send("0200", c.transfer_fields(Transfer()))
    head = c.read_exact(2)
    assert head == b"\x00\x28"
    body = c.read_exact(40)
    assert len(body) == 40
    with pytest.raises(iso.DecodeError):
        iso.decode(body)
    assert c.post(Transfer())[1][39] == "00"


def test_probability_faults_strike_some_answers(sim):
    c = sim.connect()
    sim.ok("seed 1234")
    sim.ok("drop p=0.5 on=0200")
    ts = [Transfer(amount=i + 1) for i in range(40)]
    reqs = [c.transfer_fields(t) for t in ts]
    c.send_raw(b"".join(iso.encode_frame("0200", r) for r in reqs))
    answered = 0
    try:
        while True:
            c.recv(timeout=QUIET_S)
            answered += 1
    except socket.timeout:
        pass
    assert 5 <= answered <= 35
    assert sim.status()["injected"]["drop"] == 40 - answered
    assert len([r for r in sim.ledger() if r["state"] == "approved"]) == 40


def test_decline_injection(sim):
    c = sim.connect()
    sim.ok("decline 51 2")
    ts = [Transfer() for _ in range(3)]
    codes = [c.post(t)[1][39] for t in ts]
    assert codes == ["51", "51", "00"]
    rows = sim.ledger_by_rrn()
    assert [rows[t.rrn]["state"] for t in ts] == ["declined", "declined", "approved"]
    sim.ok("decline 96 all")
    assert c.post(Transfer())[1][39] == "96"
    assert c.post(ts[2])[1][39] == "00"  # a duplicate of an approval is never declined
    sim.ok("clear")
    assert c.post(ts[0])[1][39] == "00"  # the declined one, retried, is applied now


# -- connection faults ------------------------------------------------------------------------

def test_disconnect_closes_every_client(sim):
    clients = [sim.connect() for _ in range(3)]
    sim.ok("disconnect")
    assert all(c.closed() for c in clients)
    assert sim.connect().post(Transfer())[1][39] == "00"


def test_down_refuses_connections_for_a_while(sim):
    c = sim.connect()
    sim.ok("down 2")
    start = time.monotonic()
    assert c.closed()
    with pytest.raises(ConnectionRefusedError):
        Client(sim.iso_port)
    assert sim.status()["up"] is False
    deadline = start + 2 + 3 * SLOW
    while True:
        try:
            back = sim.connect()
            break
        except ConnectionRefusedError:
            assert time.monotonic() < deadline, "still down"
            time.sleep(0.1)
    assert time.monotonic() - start >= 1.9
    assert back.post(Transfer())[1][39] == "00"


def test_up_ends_down_early(sim):
    sim.ok("down 60")
    with pytest.raises(ConnectionRefusedError):
        Client(sim.iso_port)
    sim.ok("up")
    assert sim.connect().post(Transfer())[1][39] == "00"
