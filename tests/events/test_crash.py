"""Crashes of cofre-core around the publish: committed effects whose events were not yet
published (the brokers down, then SIGKILL) still arrive after a restart; events published but
not yet marked (a crash between the broker's ack and the mark) are published again, and the
audit trail still holds each once."""

import uuid

from eventlib import LEDGER_TOPIC, kcat_consume, wait_for


def subjects(audit, event_type):
    return [r["subject"] for r in audit.events(type=event_type)]


def test_crash_between_commit_and_publish(backend, stack):
    """Brokers down: transfers commit (201), their events wait in the outbox (pending gauge),
    cofre-core stays ready; SIGKILL; brokers back; a new cofre-core on the same database
    publishes them, and the audit trail gets each transfer exactly once."""
    kafka = stack.kafka()
    core = stack.core()
    audit = stack.audit(group="crash")
    bank = core.open_account("bank", overdraft=True)
    alice = core.open_account("alice")
    core.wait_outbox_published()

    kafka.all_brokers(up=False)
    ids = []
    for _ in range(25):
        tid = str(uuid.uuid4())
        assert core.transfer(bank, alice, 7, tid).status_code == 201
        ids.append(tid)
    wait_for(lambda: core.metric("cofre_outbox_pending") == 25, 10, "25 pending outbox rows")
    wait_for(lambda: core.metric("cofre_outbox_oldest_pending_seconds") > 0, 5,
             "the oldest pending age to grow")
    assert core.ready(), "readiness must not depend on Kafka"
    assert sum(1 for _, _, p in core.outbox() if not p) == 25
    core.kill()  # a crash: nothing flushed, nothing marked

    kafka.all_brokers(up=True)
    core2 = stack.core()
    core2.wait_outbox_published()
    wait_for(lambda: set(ids) <= set(subjects(audit, "cofre.transfer.posted")), 30,
             "the 25 transfers in the audit trail", interval=0.2)
    got = subjects(audit, "cofre.transfer.posted")
    assert sorted(got) == sorted(ids), "each transfer exactly once"
    assert audit.verify()["ok"]


def test_published_but_not_marked_is_published_again_once_in_audit(backend, stack):
    """Events acknowledged by the broker but whose rows were not marked (as after a crash right
    after the ack) are published a second time at the next start: the topic holds them twice,
    the audit trail once."""
    kafka = stack.kafka()
    core = stack.core()
    audit = stack.audit(group="unmarked")
    bank = core.open_account("bank", overdraft=True)
    alice = core.open_account("alice")
    ids = [str(uuid.uuid4()) for _ in range(10)]
    for tid in ids:
        assert core.transfer(bank, alice, 3, tid).status_code == 201
    core.wait_outbox_published()
    wait_for(lambda: len(subjects(audit, "cofre.transfer.posted")) == 10, 30,
             "10 transfers in the audit trail", interval=0.2)
    assert core.stop() == 0

    backend.unpublish_outbox(core.db)
    core2 = stack.core()
    core2.wait_outbox_published()
    wait_for(lambda: audit.metric("cofre_audit_events_total", result="duplicate") >= 12, 30,
             "the republished events to reach cofre-audit", interval=0.2)

    msgs = kcat_consume(kafka.bootstrap, LEDGER_TOPIC)
    assert len(msgs) == 24, "every event twice on the topic"
    assert sorted(subjects(audit, "cofre.transfer.posted")) == sorted(ids)
    assert len(audit.events()) == 12
    assert audit.verify()["ok"]
