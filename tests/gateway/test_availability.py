"""High availability through the gateway: every replica down or hung gives a problem+json
within the configured timeouts; one replica SIGKILLed under a concurrent transfer load, and a
rolling restart with SIGTERM under load, cost the clients nothing: zero failed requests, and
every transfer sent is in the ledger exactly once."""

import signal
import time
import uuid

import requests

from conftest import HIGH_LIMITS
from gw import SLOW, is_problem
from load import TransferLoad, check_ledger, failures, open_accounts

ACCOUNTS = 20
THREADS = 8


def test_all_replicas_down_is_502_problem_at_once(make_platform):
    """Both replicas killed: GET and POST get 502 problem+json, without waiting for a timeout
    (connections are refused), each replica tried once."""
    p = make_platform(replicas=2, gw_env=HIGH_LIMITS)
    for c in p.cores:
        c.kill9()
    gw = p.gateway
    for method, path in (("GET", "/v1/accounts?owner=x"), ("POST", "/v1/transfers")):
        t0 = time.monotonic()
        r = requests.request(method, gw.https + path, json={}, verify=gw.ca, timeout=30,
                             headers={"Idempotency-Key": str(uuid.uuid4())})
        elapsed = time.monotonic() - t0
        is_problem(r, 502, "unavailable")
        assert elapsed < 1.0 * SLOW, elapsed
        line = gw.access(r.headers["X-Request-Id"])
        assert line is not None and line["status"] == 502, line


def test_all_replicas_hung_is_504_problem_within_the_timeout(make_platform):
    """Both replicas stopped (SIGSTOP: connections are accepted by the kernel, no answer):
    each is given the read timeout once, then 504 problem+json, well within
    tries x read timeout."""
    read_timeout_s = 1
    p = make_platform(replicas=2, gw_env=dict(HIGH_LIMITS,
                                              COFRE_GW_READ_TIMEOUT=f"{read_timeout_s}s"))
    gw = p.gateway
    for c in p.cores:
        c.send(signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        r = requests.get(gw.https + "/v1/accounts?owner=x", verify=gw.ca, timeout=30)
        elapsed = time.monotonic() - t0
        is_problem(r, 504, "upstream_timeout")
        assert 2 * read_timeout_s <= elapsed < 2 * read_timeout_s + 1.5 * SLOW, elapsed
        line = gw.access(r.headers["X-Request-Id"])
        assert line["upstream"].count(",") == 1, line  # both replicas were tried
    finally:
        for c in p.cores:
            c.send(signal.SIGCONT)


def run_load(p, during):
    """Accounts, then a load of THREADS clients while during(load) runs; returns the results
    after checking the clients saw no failure and the ledger has each transfer once."""
    gw = p.gateway
    _settlement, accounts = open_accounts(gw.http, ACCOUNTS)
    load = TransferLoad(gw.http, accounts, threads=THREADS).start()
    try:
        during(load)
    finally:
        results = load.stop()
    bad = failures(results)
    assert not bad, f"{len(bad)} of {len(results)} client requests failed, e.g. {bad[:3]}"
    live = next(c for c in p.cores if c.running())
    check_ledger(live.base, p.db, accounts, results, setup_transfers=ACCOUNTS)
    return results


def retried_lines(gw):
    """Access lines of requests that NGINX passed to more than one replica."""
    return [o for o in gw.json_lines() if "," in o.get("upstream", "")]


def test_failover_sigkill_under_load(make_platform):
    """Two replicas on one SQLite file; one gets SIGKILL while clients send transfers with
    their own ids and keys: every client request succeeds (NGINX retries the interrupted
    POSTs on the other replica, which replays or performs them), and each transfer is in the
    ledger exactly once."""
    p = make_platform(replicas=2, gw_env=HIGH_LIMITS)
    victim = p.cores[0]

    def kill_midway(load):
        assert load.wait_completed(300), "the load did not start"
        victim.kill9()
        at_kill = load.completed()
        assert load.wait_completed(at_kill + 600), "the load stalled after the kill"

    results = run_load(p, kill_midway)
    retried = retried_lines(p.gateway)
    assert retried, "no request was retried on the other replica: the kill hit nothing"
    assert all(o["status"] == 201 for o in retried if o["method"] == "POST"), retried[:3]
    print(f"failover: {len(results)} transfers, {len(retried)} retried by the gateway, "
          f"{sum(r['replayed'] for r in results)} replayed, 0 failed")


def wait_serving(gw, core, since, timeout):
    """Until the gateway's log shows core answering a request again after `since`."""
    addr = f"127.0.0.1:{core.port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for t, line in list(gw.lines):
            if t >= since and f'"upstream":"{addr}"' in line and '"upstream_status":"201"' in line:
                return True
        time.sleep(0.05)
    return False


def test_rolling_restart_under_load(make_platform):
    """Each replica in turn gets SIGTERM (it fails readiness, drains 1 s, stops accepting,
    finishes its requests, exits 0) and is started again, while clients send transfers: zero
    failed requests, each transfer once. The next replica goes only after the gateway sends
    traffic to the restarted one again (at most the passive health's fail_timeout)."""
    p = make_platform(replicas=2, gw_env=HIGH_LIMITS, core_env={"COFRE_DRAIN_S": "1"})
    gw = p.gateway

    def roll(load):
        assert load.wait_completed(200), "the load did not start"
        for core in p.cores:
            core.send(signal.SIGTERM)
            rc = core.wait(20 * SLOW)
            assert rc == 0, f"{core.name} exited {rc} after SIGTERM: {core.stderr()[-500:]}"
            core.start()
            assert wait_serving(gw, core, time.time(), 15 * SLOW), \
                f"the gateway did not send traffic to the restarted {core.name}"
        n = load.completed()
        assert load.wait_completed(n + 200), "the load stalled after the restarts"

    results = run_load(p, roll)
    print(f"rolling restart: {len(results)} transfers, {len(retried_lines(gw))} retried by the "
          f"gateway, {sum(r['replayed'] for r in results)} replayed, 0 failed")
