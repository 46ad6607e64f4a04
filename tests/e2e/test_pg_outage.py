"""PostgreSQL only: the database goes away and comes back while replicas run.

- Crashed (pg_ctl -m immediate) in the middle of a load over three replicas: every replica
  turns not ready, requests fail fast with 503, nothing hangs; the database recovers from its
  WAL, the replicas reconnect by themselves (same processes), the load goes on, and no
  acknowledged transfer is lost (pg_workload.check_invariants).
- Frozen (every server process stopped with SIGSTOP, as a partition looks): requests still
  answer 503 within the per-round deadline, and service resumes when it thaws.
- Down when a replica starts (COFRE_MIGRATE=off): it starts anyway, not ready, and becomes
  ready when the database comes up.
"""

import signal
import time

import pytest
import requests

from cofre_api import Api, new_key
from cofre_server import SLOW
import pg_workload

REPLICA_ENV = {"COFRE_COMMITTERS": "2", "COFRE_READERS": "2"}
FAST_503_S = 1.0 * SLOW      # an answer while the database is down (connection refused)
ROUND_DEADLINE_S = 6.0       # store_pg.c ROUND_TIMEOUT_MS
RECOVER_S = 15.0 * SLOW


@pytest.fixture(autouse=True)
def _postgres_only(backend):
    if backend.name != "postgres":
        pytest.skip("PostgreSQL only")
    yield
    if backend.cluster.running():
        backend.cluster.signal_all(signal.SIGCONT)  # never leave the session's cluster frozen
    else:
        backend.cluster.start()


def ready(base):
    try:
        return requests.get(base + "/readyz", timeout=2).status_code
    except requests.RequestException:
        return None


def wait_all(bases, status, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(ready(b) == status for b in bases):
            return True
        time.sleep(0.05)
    return False


def post_transfer(base, debit, credit, timeout=30):
    t0 = time.monotonic()
    r = requests.post(base + "/v1/transfers", timeout=timeout, headers={"Idempotency-Key": new_key()},
                      json={"debit_account_id": debit, "credit_account_id": credit, "amount": 1,
                            "currency": "EUR"})
    return r, time.monotonic() - t0


def test_crash_restart_during_load(backend, core_factory):
    """Crash the database under a load over three replicas; check readiness, fast 503s,
    recovery without restarting the replicas, and the invariants."""
    cluster = backend.cluster
    first = core_factory(env=REPLICA_ENV)
    replicas = [first] + [core_factory(db=first.db, env=REPLICA_ENV) for _ in range(2)]
    bases = [r.base for r in replicas]
    accounts = pg_workload.setup_accounts(bases[0])
    baseline = backend.query(first.db, "SELECT count(*) FROM transfers")[0][0]
    eur = accounts["EUR"]
    w = pg_workload.Workload(bases, accounts, seed=3).start(6)
    try:
        time.sleep(1.5)
        acked_before = len(w.ok)
        cluster.stop("immediate")
        assert wait_all(bases, 503, 5 * SLOW), [ready(b) for b in bases]
        for b in bases:
            r, took = post_transfer(b, eur[0]["id"], eur[1]["id"])
            assert r.status_code == 503, r.text
            assert took < FAST_503_S, f"503 took {took:.2f}s while the database was down"
            g = requests.get(b + f"/v1/accounts/{eur[1]['id']}", timeout=30)
            assert g.status_code == 503, g.text
        assert requests.get(bases[0] + "/healthz", timeout=5).status_code == 200
        time.sleep(1.0)
        cluster.start()
        assert wait_all(bases, 200, RECOVER_S), [ready(b) for b in bases]
        acked_outage = len(w.ok)
        time.sleep(2.0)
    finally:
        w.finish()
    assert acked_before > 20, f"only {acked_before} acknowledged before the crash"
    assert len(w.ok) > acked_outage + 20, "the load did not resume after the restart"
    assert w.non_final[503] > 0, "no request saw the outage"
    assert not w.unknown, f"{len(w.unknown)} transfers never got a final answer"
    for r in replicas:
        assert r.proc.poll() is None, "a replica exited"
    pg_workload.check_invariants(backend, first.db, w, baseline)


def test_frozen_database_answers_within_the_deadline(backend, core_factory):
    """SIGSTOP every server process: a write and a read each answer 503 within the round
    deadline (plus slack) instead of hanging, /readyz turns 503; after SIGCONT the service
    recovers by itself."""
    core = core_factory(env=REPLICA_ENV)
    api = Api(core.base)
    s, a = api.settlement("EUR"), api.open_account(owner="frozen")
    api.move(s, a, 10)
    api.close()
    cluster = backend.cluster
    cluster.signal_all(signal.SIGSTOP)
    try:
        r, took = post_transfer(core.base, s["id"], a["id"])
        assert r.status_code == 503, r.text
        assert took < ROUND_DEADLINE_S + 3 * SLOW, f"the write took {took:.1f}s"
        t0 = time.monotonic()
        g = requests.get(core.base + f"/v1/accounts/{a['id']}", timeout=30)
        took = time.monotonic() - t0
        assert g.status_code == 503, g.text
        assert took < ROUND_DEADLINE_S + 3 * SLOW, f"the read took {took:.1f}s"
        assert wait_all([core.base], 503, ROUND_DEADLINE_S + 5 * SLOW)
    finally:
        cluster.signal_all(signal.SIGCONT)
    assert wait_all([core.base], 200, RECOVER_S)
    deadline = time.monotonic() + RECOVER_S
    while True:
        r, _ = post_transfer(core.base, s["id"], a["id"])
        if r.status_code == 201 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert r.status_code == 201, r.text


def test_replica_starts_while_database_is_down(backend, core_factory):
    """With COFRE_MIGRATE=off a replica starts while the database is down: alive, not ready,
    503 on requests; once the database is up it becomes ready and serves, unrestarted."""
    cluster = backend.cluster
    db = backend.new_db(None)
    cluster.stop("fast")
    try:
        core = core_factory(db=db, env=dict(REPLICA_ENV, COFRE_MIGRATE="off"), ready=False)
        deadline = time.monotonic() + 10 * SLOW
        while requests_status(core.base + "/healthz") != 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert requests_status(core.base + "/healthz") == 200
        assert wait_all([core.base], 503, 5 * SLOW)
    finally:
        cluster.start()
    assert wait_all([core.base], 200, RECOVER_S)
    api = Api(core.base)
    try:
        s, a = api.settlement("EUR"), api.open_account(owner="late")
        api.move(s, a, 1)
    finally:
        api.close()
    assert core.proc.poll() is None


def requests_status(url):
    try:
        return requests.get(url, timeout=2).status_code
    except requests.RequestException:
        return None
