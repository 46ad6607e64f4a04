"""A random concurrent transfer workload through the whole pipeline (cofre-core, the outbox
relay, cofre-kafka-dev, cofre-audit) with a broker taken down and brought back in the middle
and cofre-audit restarted once: afterwards every transfer that got a 201 is in the audit trail
exactly once, nothing is there for the rejected ones, and the trail verifies (by the service
and by an independent implementation of the chain)."""

import random
import threading
import time
import uuid

import requests

import audit_chain
from eventlib import LEDGER_TOPIC, SLOW, wait_for

THREADS = 4
TRANSFERS_PER_THREAD = 60
CUSTOMERS = 6


def run_workload(core, customers, progress, results, seed):
    """One client thread: random transfers between customers, some beyond the balance."""
    rng = random.Random(seed)
    with requests.Session() as s:
        for _ in range(TRANSFERS_PER_THREAD):
            debit, credit = rng.sample(customers, 2)
            amount = rng.choice([1, 5, 20, 100, 400, 5000])  # 5000: often more than there is
            tid = str(uuid.uuid4())
            r = core.transfer(debit, credit, amount, tid, session=s)
            results.append((tid, r.status_code, r.json().get("code")))
            progress.append(1)
            time.sleep(0.01)


def test_workload_with_broker_outage_and_audit_restart(backend, stack):
    kafka = stack.kafka()
    core = stack.core()
    audit = stack.audit(group="workload", COFRE_AUDIT_SESSION_TIMEOUT_MS="6000")
    bank = core.open_account("bank", overdraft=True)
    customers = [core.open_account(f"customer-{i}") for i in range(CUSTOMERS)]
    funded = []
    for c in customers:
        tid = str(uuid.uuid4())
        assert core.transfer(bank, c, 2000, tid).status_code == 201
        funded.append(tid)

    # The broker leading partition 0 of the ledger topic goes down a third of the way in, cofre-audit
    # restarts half-way, and the broker comes back two thirds of the way.
    down_broker = kafka.leader_of(LEDGER_TOPIC, 0)
    progress, results = [], []
    threads = [threading.Thread(target=run_workload, args=(core, customers, progress, results, i))
               for i in range(THREADS)]
    for t in threads:
        t.start()
    total = THREADS * TRANSFERS_PER_THREAD
    wait_for(lambda: len(progress) >= total // 3, 60, "a third of the workload")
    kafka.broker(down_broker, up=False)
    assert core.ready(), "cofre-core must stay ready while a broker is down"
    wait_for(lambda: len(progress) >= total // 2, 60, "half of the workload")
    assert audit.stop() == 0
    audit = stack.audit(group="workload", ready=False,  # same store, same group
                        COFRE_AUDIT_SESSION_TIMEOUT_MS="6000")
    wait_for(lambda: len(progress) >= 2 * total // 3, 60, "two thirds of the workload")
    kafka.broker(down_broker, up=True)
    for t in threads:
        t.join(timeout=120 * SLOW)
        assert not t.is_alive(), "a workload thread hung"
    audit.wait_ready()

    posted = set(funded) | {tid for tid, status, _ in results if status == 201}
    rejected = {tid for tid, status, _ in results if status != 201}
    assert {code for _, status, code in results if status != 201} <= {"insufficient_funds"}
    assert rejected, "the workload should have rejected some transfers"
    assert len(posted) > len(funded)

    core.wait_outbox_published(timeout=60)
    want = len(posted) + len(customers) + 1  # transfers and account openings
    wait_for(lambda: audit.metric("cofre_audit_records") >= want, 60,
             f"{want} records in the audit trail", interval=0.2)

    records = audit.events(type="cofre.transfer.posted")
    subjects = [r["subject"] for r in records]
    assert len(subjects) == len(set(subjects)), "a transfer appears more than once"
    assert set(subjects) == posted, (f"missing: {posted - set(subjects)}; "
                                     f"unexpected: {set(subjects) - posted}")
    assert not rejected & set(subjects)
    accounts = [r["subject"] for r in audit.events(type="cofre.account.created")]
    assert sorted(accounts) == sorted(customers + [bank])
    for r in records:
        assert r["outcome"] == "success"
        assert r["actor"]["address"] == "127.0.0.1"
        assert r["request_id"] and len(r["trace_id"]) == 32
        assert r["amount"] == r["event"]["data"]["transfer"]["amount"]

    verdict = audit.verify()
    assert verdict["ok"], verdict
    assert verdict["records"] == want
    rows = audit.rows()
    assert [seq for seq, _, _ in audit_chain.chain(rows)] == list(range(1, want + 1))
    for seq, computed, stored in audit_chain.chain(rows):
        assert computed == stored, f"record {seq}: the independent chain disagrees"
    assert verdict["head"] == bytes(rows[-1]["hash"]).hex()
    wait_for(lambda: core.metric("cofre_outbox_pending") == 0, 5, "the pending gauge to drop")
    assert core.metric("cofre_outbox_published_total") >= want
