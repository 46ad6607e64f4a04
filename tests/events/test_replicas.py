"""Two cofre-core replicas on one SQLite file (as make run starts them): one relays the shared
outbox, the other stands by, so each event is published once; when the relaying one dies, the
other takes over within seconds and nothing is lost."""

import json
import uuid

from eventlib import LEDGER_TOPIC, kcat_consume, wait_for


def event_ids(bootstrap):
    return [json.loads(m["payload"])["id"] for m in kcat_consume(bootstrap, LEDGER_TOPIC)]


def test_one_relay_per_outbox_and_takeover(stack):
    kafka = stack.kafka()
    first = stack.core()
    second = stack.core(db=first.db_path)
    assert wait_for(lambda: second.find_log(lambda o: "standing by" in o.get("msg", "")), 10,
                    "the second replica to stand by")
    bank = second.open_account("bank", overdraft=True)
    alice = first.open_account("alice")
    for i in range(20):
        replica = first if i % 2 else second
        assert replica.transfer(bank, alice, 5, str(uuid.uuid4())).status_code == 201
    first.wait_outbox_published()
    ids = event_ids(kafka.bootstrap)
    assert len(ids) == 22 and len(set(ids)) == 22, "each event published once"
    assert second.metric("cofre_outbox_published_total") == 0

    first.kill()  # the relaying replica dies
    for _ in range(10):
        assert second.transfer(bank, alice, 5, str(uuid.uuid4())).status_code == 201
    second.wait_outbox_published(timeout=30)
    assert second.find_log(lambda o: "taking over" in o.get("msg", ""))
    ids = event_ids(kafka.bootstrap)
    outbox = {event_id for _, event_id, _ in second.outbox()}
    assert set(ids) == outbox and len(outbox) == 32
