"""cofre-legacy-sim as a client sees it: the command line, sign-on and echo, the approval rules,
each RRN applied at most once, reversals, the durable ledger, many connections, malformed input
and masked logs. Every message is built by the Python codec (iso8583.py)."""

import re
import signal
import socket
import threading
import time

import pytest

import iso8583 as iso
from simhelp import SLOW, Client, Transfer, base_env, run


# -- command line ---------------------------------------------------------------------------

def test_help_and_version():
    rc, out, _ = run(["--help"])
    assert rc == 0
    for word in ("COFRE_SIM_CONTROL", "ledger", "bench", "COFRE_SIM_AMOUNT_MAX"):
        assert word in out
    rc, out, _ = run(["--version"])
    assert rc == 0 and re.match(r"cofre-legacy-sim \d+\.\d+\.\d+ \(", out)
    rc, _, err = run(["--bogus"])
    assert rc == 2 and "unknown" in err


@pytest.mark.parametrize("name,value", [
    ("COFRE_SIM_AMOUNT_MAX", "ten"),
    ("COFRE_SIM_CURRENCIES", "BRL,EURO"),
    ("COFRE_SIM_SYNC", "sometimes"),
    ("COFRE_DB", "postgres://localhost/x"),
    ("COFRE_SIM_CONTROL", "nohostport"),
])
def test_bad_setting_stops_with_one_line_naming_it(tmp_path, name, value):
    env = base_env(COFRE_DB=f"sqlite:{tmp_path}/x.db")
    env[name] = value
    rc, _, err = run([], env=env)
    assert rc == 2
    assert name in err and len(err.strip().splitlines()) == 1


def test_control_port_must_be_loopback(tmp_path):
    env = base_env(COFRE_DB=f"sqlite:{tmp_path}/x.db", COFRE_SIM_CONTROL="0.0.0.0:0")
    rc, out, _ = run([], env=env)
    assert rc == 1
    assert "loopback" in out


def test_ledger_of_a_missing_file_fails(tmp_path):
    rc, _, err = run(["ledger", "--db", f"sqlite:{tmp_path}/none.db"])
    assert rc == 1 and "cannot read" in err


def test_sigterm_stops_with_status_zero(sim):
    assert sim.stop(signal.SIGTERM) == 0


# -- network management ---------------------------------------------------------------------

def test_sign_on_echo_and_unknown_code(sim):
    c = sim.connect(sign_on=False)
    req = iso.network_fields("301", c.next_stan(), time.time())
    mti, f = c.call("0800", req)  # echo works before sign-on
    assert mti == "0810" and f == {**req, 39: "00"}
    req = iso.network_fields("001", c.next_stan(), time.time())
    assert c.call("0800", req) == ("0810", {**req, 39: "00"})
    req = iso.network_fields("999", c.next_stan(), time.time())
    assert c.call("0800", req)[1][39] == "12"
    assert sim.status()["signed_on"] == 1


def test_transfer_before_sign_on_is_declined_91(sim):
    c = sim.connect(sign_on=False)
    t = Transfer()
    _, f = c.post(t)
    assert f[39] == "91" and 38 not in f
    assert sim.ledger() == []
    c.sign_on()
    assert c.post(t)[1][39] == "00"
    req = iso.network_fields("002", c.next_stan(), time.time())  # sign-off
    assert c.call("0800", req)[1][39] == "00"
    assert c.post(Transfer())[1][39] == "91"


def test_sign_on_can_be_switched_off(make_sim):
    sim = make_sim(COFRE_SIM_REQUIRE_SIGN_ON="false")
    assert sim.connect(sign_on=False).post(Transfer())[1][39] == "00"


# -- 0200 rules -----------------------------------------------------------------------------

def test_approval_echoes_fields_and_is_recorded(sim):
    c = sim.connect()
    t = Transfer(amount=4321, currency="USD")
    req, f = c.post(t)
    assert f[39] == "00"
    assert re.fullmatch(r"[0-9]{6}", f[38])
    for field in (2, 3, 4, 7, 11, 12, 13, 37, 41, 49, 103):
        assert f[field] == req[field], field
    row = sim.ledger_by_rrn()[t.rrn]
    assert row["state"] == "approved" and row["response_code"] == "00"
    assert row["auth_id"] == f[38]
    assert (row["amount"], row["currency"]) == (4321, "USD")
    assert row["debit_account"] == iso.account_number(t.debit)
    assert row["credit_account"] == iso.account_number(t.credit)
    assert (row["stan"], row["transmission_time"]) == (req[11], req[7])
    assert (row["applications"], row["reversals"], row["duplicates"]) == (1, 0, 0)
    assert row["terminal"] == "COFRE001"


def test_amount_rules(sim):
    c = sim.connect()
    at_limit, over, zero = Transfer(amount=100000), Transfer(amount=100001), Transfer(amount=0)
    assert c.post(at_limit)[1][39] == "00"
    assert c.post(over)[1][39] == "61"
    assert c.post(zero)[1][39] == "13"
    rows = sim.ledger_by_rrn()
    assert rows[over.rrn]["state"] == "declined" and rows[over.rrn]["applications"] == 0
    assert rows[zero.rrn]["response_code"] == "13"


def test_processing_code_and_currency_rules(make_sim):
    sim = make_sim(COFRE_SIM_CURRENCIES="BRL,USD")
    c = sim.connect()
    t = Transfer(currency="EUR")
    assert c.post(t)[1][39] == "57"
    assert c.post(Transfer(currency="USD"))[1][39] == "00"
    req = c.transfer_fields(Transfer())
    req[3] = "010000"  # a withdrawal, not a transfer
    assert c.call("0200", req)[1][39] == "12"


def test_missing_mandatory_field_is_format_error(sim):
    c = sim.connect()
    for missing in (2, 4, 41, 49):
        req = c.transfer_fields(Transfer())
        del req[missing]
        mti, f = c.call("0200", req)
        assert (mti, f[39]) == ("0210", "30"), missing
    assert sim.ledger() == []
    assert sim.status()["format_errors"] == 4


def test_unused_mti_gets_12_and_responses_get_nothing(sim):
    c = sim.connect()
    mti, f = c.call("0100", {11: "000077", 7: iso.f7(time.time())})
    assert (mti, f[39], f[11]) == ("0110", "12", "000077")
    c.send("0210", {11: "000078", 39: "00"})
    with pytest.raises(socket.timeout):
        c.recv(timeout=0.5)
    assert c.call("0800", iso.network_fields("301", c.next_stan(), time.time()))[1][39] == "00"


# -- each RRN at most once --------------------------------------------------------------------

def test_duplicate_rrn_returns_the_first_answer(sim):
    c1, c2 = sim.connect(), sim.connect()
    t = Transfer()
    req1, first = c1.post(t)
    req2, again = c2.post(t)  # a retry: new STAN, new connection
    assert (again[39], again[38]) == (first[39], first[38])
    assert again[11] == req2[11]
    row = sim.ledger_by_rrn()[t.rrn]
    assert (row["applications"], row["duplicates"]) == (1, 1)
    kinds = [e["kind"] for e in sim.ledger(journal=True) if e["rrn"] == t.rrn]
    assert kinds == ["apply", "duplicate"]
    assert sim.status()["approved"] == 1


def test_rrn_reused_for_another_transfer_is_94(sim):
    c = sim.connect()
    t = Transfer(amount=500)
    c.post(t)
    other = Transfer(amount=501, tid=t.id)  # same id, so same RRN, other content
    assert c.post(other)[1][39] == "94"
    row = sim.ledger_by_rrn()[t.rrn]
    assert (row["amount"], row["applications"], row["state"]) == (500, 1, "approved")


def test_a_declined_rrn_is_evaluated_again(sim):
    c = sim.connect()
    t = Transfer()
    sim.ok("decline 05 1")
    assert c.post(t)[1][39] == "05"
    _, f = c.post(t)
    assert f[39] == "00"
    row = sim.ledger_by_rrn()[t.rrn]
    assert (row["state"], row["applications"]) == ("approved", 1)


# -- reversals --------------------------------------------------------------------------------

def test_reversal_undoes_and_a_retry_applies_again(sim):
    c = sim.connect()
    t = Transfer()
    req, first = c.post(t)
    _, ack = c.reverse(req)
    assert ack[39] == "00" and ack[90] == "0200" + req[11] + req[7] + "0" * 22
    row = sim.ledger_by_rrn()[t.rrn]
    assert (row["state"], row["reversals"]) == ("reversed", 1)
    _, again = c.reverse(req)  # a repeated reversal is acknowledged, nothing more
    assert again[39] == "00"
    assert sim.ledger_by_rrn()[t.rrn]["reversals"] == 1
    _, retry = c.post(t)  # the retry: a new transmission
    assert retry[39] == "00" and retry[38] != first[38]
    row = sim.ledger_by_rrn()[t.rrn]
    assert (row["state"], row["applications"], row["reversals"]) == ("approved", 2, 1)
    kinds = [e["kind"] for e in sim.ledger(journal=True) if e["rrn"] == t.rrn]
    assert kinds == ["apply", "reverse", "reverse-duplicate", "apply"]


def test_reversal_before_the_original_blocks_the_late_original(sim):
    c = sim.connect()
    t = Transfer()
    original = c.transfer_fields(t)  # never reaches the host in time
    _, ack = c.reverse(original)
    assert ack[39] == "00"
    row = sim.ledger_by_rrn()[t.rrn]
    assert (row["state"], row["applications"]) == ("reversed", 0)
    assert (row["stan"], row["transmission_time"]) == (original[11], original[7])
    mti, late = c.call("0200", original)  # the lost original arrives after all
    assert late[39] == "94"
    assert sim.ledger_by_rrn()[t.rrn]["applications"] == 0
    _, retry = c.post(t)
    assert retry[39] == "00"
    row = sim.ledger_by_rrn()[t.rrn]
    assert (row["state"], row["applications"]) == ("approved", 1)


def test_reversal_with_another_amount_is_refused(sim):
    c = sim.connect()
    t = Transfer(amount=700)
    req, _ = c.post(t)
    bad = dict(req)
    bad[4] = "%012d" % 701
    _, f = c.reverse(bad)
    assert f[39] == "13"
    assert sim.ledger_by_rrn()[t.rrn]["state"] == "approved"


def test_reversal_of_a_declined_transfer(sim):
    c = sim.connect()
    t = Transfer(amount=100001)
    req, f = c.post(t)
    assert f[39] == "61"
    assert c.reverse(req)[1][39] == "00"
    row = sim.ledger_by_rrn()[t.rrn]
    assert (row["state"], row["applications"]) == ("reversed", 0)


# -- durability -------------------------------------------------------------------------------

def test_ledger_and_first_answers_survive_a_restart(sim):
    c = sim.connect()
    t = Transfer()
    _, first = c.post(t)
    c.close()
    sim.restart()
    c = sim.connect()
    _, again = c.post(t)
    assert (again[39], again[38]) == ("00", first[38])
    row = sim.ledger_by_rrn()[t.rrn]
    assert (row["applications"], row["duplicates"]) == (1, 1)


def test_ledger_can_be_read_while_serving(sim):
    c = sim.connect()
    ts = [Transfer(amount=i + 1) for i in range(5)]
    for t in ts:
        c.post(t)
    rows = sim.ledger()
    assert [r["rrn"] for r in rows] == [t.rrn for t in ts]  # oldest first
    assert all(r["state"] == "approved" for r in rows)


# -- connections ------------------------------------------------------------------------------

def test_many_connections_at_once(sim):
    clients = [sim.connect() for _ in range(50)]
    results = [None] * len(clients)

    def post(i):
        results[i] = clients[i].post(Transfer(amount=i + 1))[1][39]

    threads = [threading.Thread(target=post, args=(i,)) for i in range(len(clients))]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=30 * SLOW)
    assert results == ["00"] * len(clients)
    assert len(sim.ledger()) == len(clients)
    assert sim.status()["connections"] == len(clients)


def test_pipelined_requests_on_one_connection(sim):
    c = sim.connect()
    ts = [Transfer(amount=i + 1) for i in range(40)]
    reqs = [c.transfer_fields(t) for t in ts]
    c.send_raw(b"".join(iso.encode_frame("0200", r) for r in reqs))
    answers = {}
    for _ in ts:
        mti, f = c.recv()
        answers[f[11]] = f
    assert set(answers) == {r[11] for r in reqs}
    assert all(answers[r[11]][37] == r[37] and answers[r[11]][39] == "00" for r in reqs)


def test_a_client_that_does_not_read_is_held_back_not_dropped(sim):
    """More requests than the queue (64) and the output buffer (64 KiB) hold: reading pauses
    and resumes, and every request is answered once the client reads."""
    c = sim.connect(rcvbuf=4096)
    ts = [Transfer(amount=i + 1) for i in range(3000)]
    data = b"".join(iso.encode_frame("0200", c.transfer_fields(t)) for t in ts)
    sender = threading.Thread(target=c.send_raw, args=(data,))
    sender.start()
    time.sleep(0.5 * SLOW)
    st = sim.status()
    assert st["queued"] <= 64 and st["answers"] < len(ts), st
    stans = set()
    for _ in ts:
        mti, f = c.recv()
        assert (mti, f[39]) == ("0210", "00")
        stans.add(f[11])
    sender.join(timeout=10 * SLOW)
    assert len(stans) == len(ts)
    assert len(sim.ledger()) == len(ts)


def test_connection_limit(make_sim):
    sim = make_sim(COFRE_SIM_CONNECTIONS_MAX=2)
    a, b = sim.connect(), sim.connect()
    extra = Client(sim.iso_port)
    assert extra.closed()
    assert sim.status()["refused"] == 1
    a.close()
    deadline = time.monotonic() + 5 * SLOW
    while sim.status()["connections"] != 1:  # the host notices the close
        assert time.monotonic() < deadline
        time.sleep(0.05)
    sim.connect()  # a slot is free again
    assert b.post(Transfer())[1][39] == "00"


def test_idle_connections_are_closed(make_sim):
    sim = make_sim(COFRE_SIM_IDLE_TIMEOUT_S=1)
    c = sim.connect()
    assert c.closed(timeout=4 * SLOW)


# -- hostile input ----------------------------------------------------------------------------

@pytest.mark.parametrize("data", [
    b"\xff\xff",                           # announces 65535 bytes: over the 8192 limit
    b"\x00\x05hello",                      # below the 12-byte minimum
    b"\x00\x10" + b"0200" + b"\x00" * 7,   # truncated inside a frame, then...
])
def test_bad_frames_close_the_connection_only(sim, data):
    bad = sim.connect()
    good = sim.connect()
    bad.send_raw(data)
    if data.startswith(b"\x00\x10"):
        bad.send_raw(b"\x00" * 5)  # ...completed by a body that does not decode
    assert bad.closed()
    assert good.post(Transfer())[1][39] == "00"
    st = sim.status()
    assert st["frame_errors"] + st["decode_errors"] == 1


def test_undecodable_bodies_close_the_connection(sim):
    for body in (b"02x0" + b"\x00" * 8, b"0200" + b"\x40" + b"\x00" * 7 + b"1",
                 iso.encode("0200", {11: "000001"}) + b"junk"):
        c = sim.connect()
        c.send_raw(iso.frame(body))
        assert c.closed()
    assert sim.status()["decode_errors"] == 3
    assert sim.connect().post(Transfer())[1][39] == "00"


def test_logs_never_hold_full_account_numbers(sim):
    c = sim.connect()
    t = Transfer()
    c.post(t)
    req, _ = c.post(t)
    c.reverse(req)
    text = "\n".join(sim.lines)
    debit = iso.account_number(t.debit)
    assert debit not in text
    assert iso.account_number(t.credit) not in text
    applied = [r for r in sim.logs() if r.get("msg") == "transfer applied"]
    assert applied and applied[0]["account"] == "*" * 15 + debit[-4:]
    assert applied[0]["rrn"] == t.rrn
