"""Regression tests of cofre-legacy-sim for bugs found while building cofre-legacy."""

import time

from simhelp import Transfer


def test_a_busy_connection_is_never_taken_for_idle(sim):
    """The idle check compared a time read before the turn's answers went out with the
    connection's last activity, stamped after: the unsigned difference wrapped and a busy
    connection was closed as "idle timeout" about once a second. Round trips one at a time
    for 3 s (three idle checks) must all be answered on one connection."""
    c = sim.connect()
    deadline = time.monotonic() + 3.0
    n = 0
    while time.monotonic() < deadline:
        _, f = c.post(Transfer(amount=100 + n % 1000))
        assert f[39] == "00"
        n += 1
    c.close()
    assert n > 100
    closed = [r for r in sim.logs() if r.get("msg") == "connection closed"]
    assert all(r["reason"] != "idle timeout" for r in closed), closed
