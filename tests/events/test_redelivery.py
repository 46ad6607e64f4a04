"""Redelivery: the consumer group's offsets rewound to the beginning, cofre-audit consumes every
event again and stores none twice; and offsets are committed only for what was stored.

librdkafka's mock cluster keeps a member that left until its session times out, and a member
joining meanwhile can wait for minutes: so the test waits out cofre-audit's session (6 s here)
before another consumer joins the group. A real Kafka rebalances at once on a clean leave."""

import time
import uuid

from confluent_kafka import Consumer, TopicPartition

from eventlib import LEDGER_TOPIC, wait_for

AUTH_TOPIC = "cofre.auth.events"
SESSION_S = 6


def committed(bootstrap, group, topics, partitions=6):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                  "enable.auto.commit": False})
    try:
        tps = [TopicPartition(t, p) for t in topics for p in range(partitions)]
        return {(tp.topic, tp.partition): tp.offset for tp in c.committed(tps, timeout=10)}
    finally:
        c.close()


def rewind(bootstrap, group, topics, partitions=6):
    """Joins group (which must have no other member) and commits offset 0 on every partition,
    as `kafka-consumer-groups --reset-offsets --to-earliest` would."""
    assigned = []
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                  "enable.auto.commit": False, "auto.offset.reset": "latest",
                  "session.timeout.ms": 6000, "heartbeat.interval.ms": 1000})
    try:
        c.subscribe(topics, on_assign=lambda consumer, parts: assigned.extend(parts))
        wait_for(lambda: c.poll(0.2) is None and len(assigned) == len(topics) * partitions, 30,
                 "the rewinding consumer's assignment")
        c.commit(offsets=[TopicPartition(t, p, 0) for t in topics for p in range(partitions)],
                 asynchronous=False)
    finally:
        c.close()


def test_rewound_offsets_store_no_duplicates(backend, stack):
    kafka = stack.kafka()
    core = stack.core()
    audit = stack.audit(group="redelivery", COFRE_AUDIT_SESSION_TIMEOUT_MS="6000")
    bank = core.open_account("bank", overdraft=True)
    alice = core.open_account("alice")
    for _ in range(30):
        assert core.transfer(bank, alice, 11, str(uuid.uuid4())).status_code == 201
    core.wait_outbox_published()
    wait_for(lambda: audit.metric("cofre_audit_records") == 32, 30, "32 records", interval=0.2)
    wait_for(lambda: audit.metric_sum("cofre_audit_consumer_lag") == 0
             and audit.metric("cofre_audit_group_member") == 1, 10, "consumer lag 0")
    before = audit.rows()
    assert audit.stop() == 0

    time.sleep(SESSION_S + 1)
    offsets = committed(kafka.bootstrap, "redelivery", [LEDGER_TOPIC])
    assert sum(o for o in offsets.values() if o > 0) == 32, offsets  # all stored, all committed
    rewind(kafka.bootstrap, "redelivery", [LEDGER_TOPIC, AUTH_TOPIC])
    assert sum(o for o in committed(kafka.bootstrap, "redelivery",
                                    [LEDGER_TOPIC]).values() if o > 0) == 0

    time.sleep(SESSION_S + 1)
    audit2 = stack.audit(group="redelivery", COFRE_AUDIT_SESSION_TIMEOUT_MS="6000")
    wait_for(lambda: audit2.metric("cofre_audit_events_total", result="duplicate") == 32, 30,
             "every event consumed again", interval=0.2)
    assert audit2.metric("cofre_audit_events_total", result="stored") == 0
    after = audit2.rows()
    assert after == before, "redelivery changed the trail"
    verdict = audit2.verify()
    assert verdict["ok"] and verdict["records"] == 32, verdict
