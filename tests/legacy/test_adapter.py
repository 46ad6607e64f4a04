"""Black-box tests of cofre-legacy, the legacy adapter (issue 7).

Each test runs the real binaries on loopback: cofre-kafka-dev, cofre-core (token checks off,
its outbox relay publishing to the cluster), cofre-legacy-sim and cofre-legacy. A random
workload goes through the core's API; faults are injected at the simulated host through its
control port (or by stopping the adapter); then `cofre-legacy reconcile` must find the core's
posted transfers and the host's applied ones equal, and the host's ledger must hold each
posted transfer in effect exactly once. Each test also checks the fault actually struck (the
host's fault counters, the adapter's metrics), so a test cannot pass by not testing.

Every scenario runs once per delivery store of COFRE_LEGACY_STORES (conftest.py): SQLite, and
PostgreSQL (a fresh migrated database per test, the adapter connecting as the service role and
holding the partitions' leases).
"""

import json
import os
import re
import signal
import subprocess
import time
import uuid

import pytest

from adapterhelp import (ACCOUNT_NUMBER, Adapter, Core, KafkaDev, Workload, bin_path,
                         exactly_once, host_ledger, reconcile, settle_all, store_url, wait_for)
from simhelp import SLOW, base_env

import iso8583 as iso


@pytest.fixture
def stack(tmp_path, make_sim, store, request):
    """Kafka, core and simulator running, and a delivery store of kind `store`; .adapter(**env)
    starts a cofre-legacy on it. Afterwards every process is stopped and each run must have
    exited 0 (or by the test's own SIGKILL) without a sanitizer report."""
    class Stack:
        pass
    s = Stack()
    s.tmp = tmp_path
    s.store = store
    s.pg = request.getfixturevalue("pg") if store == "postgres" else None
    s.db = store_url(store, tmp_path, s.pg)
    s.kafka = KafkaDev(tmp_path).start()
    s.core = Core(tmp_path, s.kafka.bootstrap).start()
    s.sim = make_sim(COFRE_SIM_SEED=11, COFRE_SIM_AMOUNT_MAX=999999999999)
    s.adapters = []

    def adapter(**env):
        a = Adapter(tmp_path, s.kafka.bootstrap, s.sim.iso_port, db=s.db, **env).start()
        s.adapters.append(a)
        return a
    s.adapter = adapter
    yield s
    for a in s.adapters:
        a.stop()
    s.core.stop()
    s.kafka.stop()
    for p in s.adapters + [s.core, s.kafka]:
        for rc, sig, flagged in p.exits:
            assert not flagged, f"{p.name}: {flagged}"
            assert rc == 0 or sig == signal.SIGKILL, f"{p.name} exited {rc} after {sig}"


def settle(stack, adapter, workload):
    """Waits until the host applied every posted transfer exactly once; checks the adapter is
    idle and ready. Returns the reconcile summary."""
    return settle_all(stack.core, stack.sim, adapter, workload.posted)


def fault_hits(sim, action):
    return sim.status()["injected"].get(action, 0)


def test_every_posted_transfer_reaches_the_host_once(stack):
    """No fault: a random workload (single and batched transfers, some refused by the core)
    reaches the host exactly once; /readyz is ready, the consumer group is cofre-legacy (the
    name KEDA scales on), the metrics of docs/metrics.md are served, lag and backlog fall to 0,
    and the logs carry trace ids and never a full account number."""
    a = stack.adapter()
    assert a.get("/healthz").status_code == 200
    started = a.wait_log("cofre-legacy started")
    assert started["group"] == "cofre-legacy"
    w = Workload(stack.core, seed=1).run(120)
    assert w.refused > 0 or len(w.posted) >= 120
    settle(stack, a, w)
    assert a.get("/readyz").json() == {"status": "ready"}
    m = a.metrics()
    for name in ("cofre_legacy_request_duration_seconds_count{mti=\"0200\"}",
                 "cofre_legacy_deliveries_total{outcome=\"approved\"}",
                 "cofre_legacy_breaker_state", "cofre_legacy_in_flight",
                 "cofre_legacy_reversals_total", "cofre_legacy_retries_total",
                 "cofre_legacy_dlq_total", "cofre_legacy_backlog"):
        assert name in m, name
    assert m["cofre_legacy_deliveries_total{outcome=\"approved\"}"] == len(w.posted)
    assert m["cofre_legacy_breaker_state"] == 0
    assert m["cofre_legacy_reversals_total"] == 0
    wait_for("consumer lag 0", lambda: a.metric("cofre_legacy_consumer_lag",
                                                 ) == 0 and any(
        k.startswith("cofre_legacy_consumer_lag{") for k in a.metrics()), 10)
    delivered = [r for r in a.logs() if r.get("msg") == "delivered to the legacy host"]
    assert len(delivered) == len(w.posted)
    assert all(len(r.get("trace_id", "")) == 32 for r in delivered)
    assert all(r["debit_account"].startswith("*" * 15) for r in delivered)
    leaked = [line for line in a.lines if ACCOUNT_NUMBER.search(line)]
    assert not leaked, leaked[:3]
    # The trace of the core's request carries into the adapter's line for that transfer.
    core_traces = {r.get("trace_id") for r in stack.core.logs()}
    assert any(r["trace_id"] in core_traces for r in delivered)


def test_responses_slower_than_the_timeout(stack):
    """Answers slower than the adapter's timeout: every 0200 times out, is reversed with a
    0400 and sent again; once the host is fast again everything is in effect exactly once
    (the host applied many transfers twice and undid one application of each)."""
    # No idle echo: a host slower than the timeout fails echoes and sign-ons too, and the
    # link would be dropped before any 0200 went out.
    a = stack.adapter(COFRE_LEGACY_TIMEOUT_MS=300, COFRE_LEGACY_BREAKER_FAILURES=1000,
                      COFRE_LEGACY_ECHO_MS=600000)
    wait_for("sign-on", lambda: a.metric("cofre_legacy_connections_ready") == 1, 10)
    stack.sim.ok("latency 450")
    w = Workload(stack.core, seed=2).run(60)
    wait_for("timeouts", lambda: a.metric("cofre_legacy_timeouts_total", mti="0200") >= 5, 20)
    time.sleep(1.0)
    stack.sim.ok("latency 0")
    settle(stack, a, w)
    assert a.metric("cofre_legacy_reversals_total") >= 5
    assert a.metric("cofre_legacy_deliveries_total", outcome="reversed") >= 5
    assert a.metric("cofre_legacy_retries_total") >= 5
    records = exactly_once(stack.sim, w.posted)
    assert sum(r["applications"] > 1 for r in records.values()) >= 5


def test_dropped_responses(stack):
    """The host applies some 0200s (and some 0400s) but never answers them: over a pool of
    three connections the adapter times out, reverses (again when a reversal's answer is
    dropped too) and retries, and each transfer is in effect once."""
    a = stack.adapter(COFRE_LEGACY_POOL=3, COFRE_LEGACY_TIMEOUT_MS=400,
                      COFRE_LEGACY_BREAKER_FAILURES=1000)
    wait_for("three connections", lambda: a.metric("cofre_legacy_connections_ready") == 3, 10)
    stack.sim.ok("drop p=0.2 on=0200")
    stack.sim.ok("drop 3 on=0400")
    w = Workload(stack.core, seed=3).run(80)
    wait_for("dropped answers", lambda: fault_hits(stack.sim, "drop") >= 8 and
             a.metric("cofre_legacy_timeouts_total", mti="0400") >= 1, 20)
    stack.sim.ok("clear")
    settle(stack, a, w)
    assert a.metric("cofre_legacy_timeouts_total", mti="0200") >= 5
    assert a.metric("cofre_legacy_timeouts_total", mti="0400") >= 1
    assert a.metric("cofre_legacy_reversals_total") >= 6


def test_disconnects_in_the_middle_of_messages(stack):
    """The host closes connections after applying a request, sometimes half-way through the
    answer's frame: the adapter loses those answers, reconnects (with backoff), reverses what
    was in flight and retries; each transfer is in effect once."""
    a = stack.adapter(COFRE_LEGACY_BREAKER_FAILURES=1000)
    stack.sim.ok("cut p=0.08 on=0200")
    stack.sim.ok("close p=0.05")
    w = Workload(stack.core, seed=4).run(100)
    wait_for("cut frames", lambda: fault_hits(stack.sim, "cut") >= 3 and
             fault_hits(stack.sim, "close") >= 2, 30)
    stack.sim.ok("clear")
    settle(stack, a, w)
    assert a.metric("cofre_legacy_connections_total", result="failed") >= 4
    assert a.metric("cofre_legacy_connections_total", result="signed_on") >= 5
    assert a.metric("cofre_legacy_reversals_total") >= 3


def test_host_down_opens_then_closes_the_breaker(stack):
    """The host goes down for a while in the middle of the stream: connections are refused,
    the breaker opens (metric 2, /readyz 503 naming it) and deliveries wait; when the host is
    back, a probe closes the breaker and every transfer is in effect once."""
    a = stack.adapter(COFRE_LEGACY_BREAKER_FAILURES=3, COFRE_LEGACY_BREAKER_OPEN_MS=700)
    w = Workload(stack.core, seed=5).run(30)
    stack.sim.control("down 4")
    w.run(40)
    seen = {}

    def breaker_open():
        r = a.get("/readyz")
        state = a.metric("cofre_legacy_breaker_state")
        if state == 2 and r.status_code == 503:
            seen["readyz"] = r.json()
        return "readyz" in seen
    wait_for("the breaker to open", breaker_open, 10, 0.05)
    assert "breaker" in seen["readyz"]["reason"], seen
    assert a.metric("cofre_legacy_breaker_opens_total") >= 1
    settle(stack, a, w)
    assert a.metric("cofre_legacy_breaker_state") == 0
    assert a.metric("cofre_legacy_connections_total", result="failed") >= 3


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_restart_in_the_middle_of_the_stream(stack, sig):
    """cofre-legacy stops in the middle of the stream (gracefully, or killed) and starts again
    on the same store: it resumes where it left off (transfers it had marked sent are reversed
    first), nothing is lost or applied twice. A graceful stop exits 0."""
    env = {"COFRE_LEGACY_BREAKER_FAILURES": 1000}
    a = stack.adapter(**env)
    stack.sim.ok("latency 30")
    w = Workload(stack.core, seed=6).run(60)
    wait_for("deliveries under way", lambda: a.metric(
        "cofre_legacy_deliveries_total", outcome="approved") >= 10, 20)
    rc = a.stop(sig)
    if sig == signal.SIGTERM:
        assert rc == 0
        stopped = [r for r in a.logs() if r.get("msg") == "delivery engine stopped"]
        assert stopped and stopped[0]["in_flight"] == 0
    w.run(40)
    b = stack.adapter(**env)
    stack.sim.ok("latency 0")
    settle(stack, b, w)
    first = sum(1 for r in a.logs() if r.get("msg") == "delivered to the legacy host")
    second = sum(1 for r in b.logs() if r.get("msg") == "delivered to the legacy host")
    assert first >= 10 and second >= 40
    if sig == signal.SIGTERM:
        # A killed adapter can lose the log lines of its last turn (its outcomes are stored,
        # so they are not delivered again): the count holds after a graceful stop only.
        assert first + second >= len(w.posted)


def test_garbage_and_truncated_frames_do_not_crash_it(stack):
    """The host answers with unframed garbage, with frames whose body does not decode, and
    with half frames: the adapter does not crash, drops the connection (nothing after a bad
    frame can be trusted), reconnects, reverses what was in flight, and delivers everything."""
    a = stack.adapter(COFRE_LEGACY_TIMEOUT_MS=500, COFRE_LEGACY_BREAKER_FAILURES=1000)
    stack.sim.ok("garbage 2 on=0200")
    stack.sim.ok("badframe 2 on=0200")
    stack.sim.ok("cut 2 on=0400")
    w = Workload(stack.core, seed=7).run(50)
    wait_for("the faults", lambda: fault_hits(stack.sim, "garbage") == 2 and
             fault_hits(stack.sim, "badframe") == 2, 20)
    settle(stack, a, w)
    assert a.running()
    assert a.metric("cofre_legacy_protocol_errors_total") >= 1
    assert a.metric("cofre_legacy_connections_total", result="failed") >= 2
    assert a.metric("cofre_legacy_connections_total", result="signed_on") >= 3


def dlq_messages(kafka, want, timeout=20):
    """Reads cofre.legacy.dlq from the start until `want` messages came (or the timeout)."""
    from confluent_kafka import Consumer
    c = Consumer({"bootstrap.servers": kafka.bootstrap, "group.id": "dlq-" + uuid.uuid4().hex,
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.subscribe(["cofre.legacy.dlq"])
    got = []
    deadline = time.monotonic() + timeout * SLOW
    try:
        while len(got) < want and time.monotonic() < deadline:
            m = c.poll(0.5)
            if m is not None and m.error() is None:
                got.append((m.key(), json.loads(m.value())))
    finally:
        c.close()
    return got


def test_declines_and_malformed_events_go_to_the_dlq(stack):
    """Permanent declines are not retried: each goes to cofre.legacy.dlq with its reason and
    response code; a malformed event on the ledger topic goes there too; reconcile reports the
    declined transfers as missing at the host (exit 1), explained by the adapter's store."""
    a = stack.adapter()
    stack.sim.ok("decline 05 3")
    w = Workload(stack.core, seed=8).run(20)
    from confluent_kafka import Producer
    p = Producer({"bootstrap.servers": stack.kafka.bootstrap})
    p.produce("cofre.ledger.events", key="junk", value=b"{\"not\": \"a cloudevent\"")
    p.flush(10)
    wait_for("dead letters published", lambda: a.metric("cofre_legacy_dlq_total") == 4, 30)
    msgs = dlq_messages(stack.kafka, 4)
    reasons = sorted(v["data"]["reason"] for _, v in msgs)
    assert reasons == ["declined", "declined", "declined", "malformed_event"], msgs
    declined = [v for _, v in msgs if v["data"]["reason"] == "declined"]
    assert all(v["data"]["response_code"] == "05" for v in declined)
    assert all(v["type"] == "cofre.legacy.dead_lettered" for v, in [(v,) for _, v in msgs])
    ids = {v["data"]["transfer"]["id"] for v in declined}
    assert ids <= set(w.posted) and len(ids) == 3
    assert a.metric("cofre_legacy_deliveries_total", outcome="declined") == 3
    # Reconcile: exactly the three declined transfers are missing, and the store says why.
    wait_for("the rest delivered", lambda: a.metric("cofre_legacy_backlog") == 0, 20)
    rc, diffs, summary = reconcile(stack.core, stack.sim, a)
    assert rc == 1
    assert summary["missing"] == 3 and summary["unexpected"] == 0, summary
    assert {d["transfer_id"] for d in diffs} == ids
    assert all(d["adapter_state"] == "declined" and d["host_state"] == "declined"
               for d in diffs), diffs
    assert summary["matched"] == len(w.posted) - 3


def run_legacy(args, **env):
    p = subprocess.run([bin_path("cofre-legacy")] + args, capture_output=True, text=True,
                       timeout=30 * SLOW, check=False, env=base_env(**env))
    return p.returncode, p.stdout, p.stderr


def test_help_and_configuration_errors(tmp_path):
    """--help documents every COFRE_LEGACY_* knob; a missing or malformed setting stops the
    service at start with one line naming the variable (exit 2)."""
    rc, out, _ = run_legacy(["--help"])
    assert rc == 0
    for knob in ("COFRE_LEGACY_HOST", "COFRE_LEGACY_POOL", "COFRE_LEGACY_TIMEOUT_MS",
                 "COFRE_LEGACY_RETRY_MAX", "COFRE_LEGACY_BREAKER_FAILURES",
                 "COFRE_LEGACY_BREAKER_OPEN_MS", "COFRE_LEGACY_ECHO_MS", "COFRE_LEGACY_GROUP",
                 "COFRE_LEGACY_LEASE_MS", "COFRE_MIGRATE", "postgres://", "migrate",
                 "reconcile"):
        assert knob in out, knob
    rc, out, _ = run_legacy(["--version"])
    assert rc == 0 and out.startswith("cofre-legacy ")
    db = "sqlite:" + str(tmp_path / "l.db")
    cases = [
        ({"COFRE_DB": db}, "COFRE_KAFKA_BROKERS"),
        ({"COFRE_DB": db, "COFRE_KAFKA_BROKERS": "nohostport"}, "COFRE_KAFKA_BROKERS"),
        ({"COFRE_DB": db, "COFRE_KAFKA_BROKERS": "127.0.0.1:9", "COFRE_LEGACY_POOL": "0"},
         "COFRE_LEGACY_POOL"),
        ({"COFRE_DB": db, "COFRE_KAFKA_BROKERS": "127.0.0.1:9", "COFRE_LEGACY_WINDOW": "257"},
         "COFRE_LEGACY_WINDOW"),
        ({"COFRE_DB": db, "COFRE_KAFKA_BROKERS": "127.0.0.1:9", "COFRE_LEGACY_HOST": "x"},
         "COFRE_LEGACY_HOST"),
        ({"COFRE_DB": db, "COFRE_KAFKA_BROKERS": "127.0.0.1:9",
          "COFRE_LEGACY_TERMINAL": "TOOLONG123"}, "COFRE_LEGACY_TERMINAL"),
        ({"COFRE_DB": db, "COFRE_KAFKA_BROKERS": "127.0.0.1:9",
          "COFRE_LEGACY_RETRY_MIN_MS": "500", "COFRE_LEGACY_RETRY_MAX_MS": "100"},
         "COFRE_LEGACY_RETRY_MAX_MS"),
        ({"COFRE_DB": "mysql://x/y", "COFRE_KAFKA_BROKERS": "127.0.0.1:9"}, "COFRE_DB"),
        ({"COFRE_DB": db, "COFRE_KAFKA_BROKERS": "127.0.0.1:9", "COFRE_MIGRATE": "sometimes"},
         "COFRE_MIGRATE"),
        # A lease must outlive two answer timeouts and their guards (PostgreSQL only).
        ({"COFRE_DB": "postgres://127.0.0.1:9/x", "COFRE_KAFKA_BROKERS": "127.0.0.1:9",
          "COFRE_LEGACY_TIMEOUT_MS": "5000", "COFRE_LEGACY_LEASE_MS": "11999"},
         "COFRE_LEGACY_LEASE_MS"),
    ]
    for env, name in cases:
        rc, out, err = run_legacy([], **env)
        assert rc == 2 and name in err and len(err.strip().splitlines()) == 1, (env, rc, err)
    # Unset, the lease follows a long answer timeout: the configuration passes, and the start
    # fails only at the migration (no database there), exit 1.
    rc, out, err = run_legacy([], COFRE_DB="postgres://127.0.0.1:1/x",
                              COFRE_KAFKA_BROKERS="127.0.0.1:9", COFRE_LEGACY_TIMEOUT_MS="15000")
    assert rc == 1 and "delivery store migration failed" in out, (rc, out, err)
    rc, out, _ = run_legacy(["migrate"], COFRE_DB="postgres://127.0.0.1:1/x")
    assert rc == 1 and "delivery store migration failed" in out
    rc, _, err = run_legacy(["reconcile"])
    assert rc == 2 and "--host-ledger" in err
    rc, _, err = run_legacy(["serve", "extra"])
    assert rc == 2
