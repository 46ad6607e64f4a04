"""cofre-kafka-dev: three brokers and the contract's topics with several partitions, the
bootstrap list in its file (removed at exit), and the control interface: brokers down and up,
latency, request errors, leadership moves; bad commands are refused."""

import json
import os
import subprocess
import time

import requests

from eventlib import LEDGER_TOPIC, SLOW, kcat_consume

TOPICS = {"cofre.ledger.events", "cofre.auth.events", "cofre.legacy.dlq"}


def kcat(args, input_text=None, timeout=30):
    return subprocess.run(["kcat"] + args, input=input_text, capture_output=True, text=True,
                          timeout=timeout * SLOW)


def metadata(bootstrap):
    r = kcat(["-b", bootstrap, "-L", "-J", "-m", "3"], timeout=15)
    return json.loads(r.stdout) if r.returncode == 0 and r.stdout.strip() else None


def produce(bootstrap, value, partition=0, extra=()):
    return kcat(["-b", bootstrap, "-P", "-t", LEDGER_TOPIC, "-p", str(partition),
                 "-X", "enable.idempotence=true", "-X", "message.timeout.ms=3000"] + list(extra),
                input_text=value + "\n")


def test_cluster_topics_and_bootstrap_file(stack):
    kafka = stack.kafka()
    state = kafka.control("GET", "/cluster")
    assert state["bootstrap"] == kafka.bootstrap
    assert [b["id"] for b in state["brokers"]] == [1, 2, 3]
    assert all(b["up"] for b in state["brokers"])
    assert {t["name"]: t["partitions"] for t in state["topics"]} == {t: 6 for t in TOPICS}
    md = metadata(kafka.bootstrap)
    assert len(md["brokers"]) == 3
    for t in md["topics"]:
        if t["topic"] in TOPICS:
            assert len(t["partitions"]) == 6
            assert all(len(p["replicas"]) == 3 for p in t["partitions"])
    assert {t["topic"] for t in md["topics"]} >= TOPICS
    log = kafka.find_log(lambda o: o.get("msg") == "kafka dev cluster up")
    assert log["bootstrap"] == kafka.bootstrap and log["brokers"] == 3
    assert kafka.stop() == 0
    assert not os.path.exists(kafka.bootstrap_file), "the bootstrap file outlived the cluster"


def test_broker_down_and_up(stack):
    kafka = stack.kafka()
    brokers = {b["id"]: b for b in metadata(kafka.bootstrap)["brokers"]}
    only_2 = f"{brokers[2]['name']}"
    assert metadata(only_2) is not None
    state = kafka.broker(2, up=False)
    assert [b["up"] for b in state["brokers"]] == [True, False, True]
    assert metadata(only_2) is None, "a broker that is down answered"
    assert metadata(kafka.bootstrap) is not None, "the others still answer"
    kafka.broker(2, up=True)
    deadline = time.monotonic() + 10 * SLOW
    while metadata(only_2) is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert metadata(only_2) is not None


def test_request_errors_and_latency(stack):
    kafka = stack.kafka()
    assert produce(kafka.bootstrap, "warm-up").returncode == 0
    kafka.control("POST", "/errors", {"api": "Produce", "errors": ["TOPIC_AUTHORIZATION_FAILED"]})
    r = produce(kafka.bootstrap, "refused")
    assert "authorization" in r.stderr.lower(), r.stderr
    kafka.control("POST", "/errors", {"api": "0", "errors": ["TOPIC_AUTHORIZATION_FAILED"] * 3})
    kafka.control("DELETE", "/errors/Produce")
    r = produce(kafka.bootstrap, "accepted")
    assert r.returncode == 0 and "failed" not in r.stderr.lower(), r.stderr
    values = [m["payload"] for m in kcat_consume(kafka.bootstrap, LEDGER_TOPIC)]
    assert "accepted" in values and "refused" not in values

    for b in (1, 2, 3):
        state = kafka.control("POST", f"/brokers/{b}/rtt", {"rtt_ms": 400})
    assert all(b["rtt_ms"] == 400 for b in state["brokers"])
    t0 = time.monotonic()
    assert produce(kafka.bootstrap, "slow").returncode == 0
    assert time.monotonic() - t0 >= 0.4


def test_leadership_moves(stack):
    kafka = stack.kafka()
    current = kafka.leader_of(LEDGER_TOPIC, 0)
    target = 1 if current != 1 else 2
    kafka.control("POST", "/partitions/leader",
                  {"topic": LEDGER_TOPIC, "partition": 0, "broker": target})
    deadline = time.monotonic() + 10 * SLOW
    while kafka.leader_of(LEDGER_TOPIC, 0) != target and time.monotonic() < deadline:
        time.sleep(0.2)
    assert kafka.leader_of(LEDGER_TOPIC, 0) == target


def test_bad_commands_are_refused(stack):
    kafka = stack.kafka()
    url = kafka.url
    assert requests.post(url("/brokers/4/down"), timeout=5).status_code == 404
    assert requests.post(url("/brokers/x/down"), timeout=5).status_code == 404
    assert requests.get(url("/brokers/1/down"), timeout=5).status_code == 405
    bad = [
        ("/brokers/1/rtt", {"rtt_ms": -1}),
        ("/brokers/1/rtt", {"rtt_ms": 60001}),
        ("/brokers/1/rtt", {"rtt": 5}),
        ("/errors", {"api": "Nope", "errors": ["NOT_LEADER_FOR_PARTITION"]}),
        ("/errors", {"api": "Produce", "errors": ["NO_SUCH_ERROR"]}),
        ("/errors", {"api": "Produce", "errors": []}),
        ("/errors", {"api": "Produce", "errors": ["NOT_LEADER_FOR_PARTITION"] * 1001}),
        ("/partitions/leader", {"topic": "a b", "partition": 0, "broker": 1}),
        ("/partitions/leader", {"topic": LEDGER_TOPIC, "partition": 0, "broker": 0}),
    ]
    for path, body in bad:
        r = requests.post(url(path), json=body, timeout=5)
        assert r.status_code == 400, (path, body, r.status_code, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
    r = requests.post(url("/partitions/leader"), timeout=5,
                      json={"topic": "unknown.topic", "partition": 0, "broker": 1})
    assert r.status_code == 404, r.text
    r = requests.post(url("/brokers/1/rtt"), data="{}", timeout=5)  # no content-type
    assert r.status_code == 415, r.text
    assert requests.delete(url("/errors/Nope"), timeout=5).status_code == 404
    assert all(b["up"] and b["rtt_ms"] == 0 for b in kafka.control("GET", "/cluster")["brokers"])
