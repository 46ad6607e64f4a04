"""cofre-auth's events reach cofre.auth.events through the outbox relay and cofre-kafka-dev,
once per effect, on either registry backend (COFRE_TEST_DBS).

Two replicas share one registry and keys directory, and each runs a relay: only one publishes
(SQLite: the lock file; PostgreSQL: the lease row), the other stands by and takes over when the
first stops. Every effect (command line changes, key rotation, tokens, failed
authentications) is published exactly once, validates against its JSON Schema in
docs/events/, is keyed by the client id (the kid for key events) and carries its traceparent
as a header; an effect that rolled back or changed nothing (a duplicate client, a second
disable, a refused scope) has no event. cofre-audit, consuming the topic, records each event
once, with the outcome and reason of the failed authentications, in a chain that verifies.
"""

import json
import os
import sys
import time

import jsonschema
import pytest

from authlib import REPO, SLOW

sys.path.insert(0, os.path.join(REPO, "tests", "events"))
from eventlib import Audit, KafkaDev, kcat_consume  # noqa: E402  (tests/events' harness)

TOPIC = "cofre.auth.events"
COFRE_LEASE_S = 15  # COFRE_REGISTRY_LEASE_S: how long a PostgreSQL relay lease lasts
SCHEMAS = os.path.join(REPO, "docs", "events")
AUTH_TYPES = ("cofre.auth.token.issued", "cofre.auth.authentication.failed",
              "cofre.auth.client.created", "cofre.auth.client.disabled",
              "cofre.auth.client.secret_rotated", "cofre.auth.key.created",
              "cofre.auth.key.rotated")


def validator(event_type):
    path = os.path.join(SCHEMAS, f"{event_type}.schema.json")
    assert os.path.exists(path), f"no schema for event type {event_type} in docs/events/"
    with open(path) as f:
        schema = json.load(f)
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())


def wait_until(pred, timeout, what):
    deadline = time.monotonic() + timeout * SLOW
    last = None
    while time.monotonic() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout * SLOW:.0f}s waiting for {what} ({last!r})")


def all_published(auth):
    rows = auth.query("SELECT count(*), count(published_at) FROM outbox")[0]
    return rows[0] > 0 and rows[0] == rows[1]


def relaying(procs):
    """The replica that publishes and the one that stands by (by their logs)."""
    def standby(p):
        return p.find_log(lambda o: "standing by" in str(o.get("msg")))
    idle = [p for p in procs if standby(p)]
    busy = [p for p in procs if not standby(p)]
    return (busy[0], idle[0]) if len(busy) == 1 and len(idle) == 1 else None


def consume_checked(kafka, auth):
    """Every message on the topic, each checked against its schema, key and headers; returns
    {type: [event]}, having checked that the messages are exactly the outbox's rows."""
    msgs = kcat_consume(kafka.bootstrap, TOPIC)
    rows = {r[0]: r[1] for r in auth.query("SELECT CAST(event_id AS text), type FROM outbox")}
    ids = []
    by_type = {}
    for m in msgs:
        ev = json.loads(m["payload"])
        validator(ev["type"]).validate(ev)
        assert m["key"] == ev["subject"], (m["key"], ev)
        h = m.get("headers") or []
        headers = dict(zip(h[0::2], h[1::2]))
        assert headers.get("traceparent") == ev["traceparent"], headers
        assert headers.get("content-type") == "application/cloudevents+json", headers
        ids.append(ev["id"])
        by_type.setdefault(ev["type"], []).append(ev)
    assert len(ids) == len(set(ids)), "an event was published twice"
    assert set(ids) == set(rows), (sorted(set(ids) ^ set(rows)))
    return by_type


@pytest.fixture
def kafka(tmp_path):
    wd = tmp_path / "kafka"
    wd.mkdir()
    k = KafkaDev(str(wd)).start()
    yield k
    k.stop()


def test_auth_events_reach_kafka_once_per_effect(fresh, kafka):
    env = {"COFRE_KAFKA_BROKERS": kafka.bootstrap, "COFRE_RELAY_POLL_MS": "10"}
    a = fresh.auth(**env)
    b = fresh.auth(db=a.db, keys_dir=a.keys_dir, **env)
    shop = a.add_client("shop", scopes="accounts:read transfers:read", owner="shop-owner")
    rc, _, err = a.cli("client", "add", "--name", "shop", "--scopes", "accounts:read",
                       check=False)
    assert rc == 1 and "exists" in err  # rolled back: no second client.created
    _, out, _ = a.cli("client", "rotate-secret", "shop")
    shop = out.split("client_secret: ", 1)[1].split()[0]
    other = b.add_client("other", scopes="accounts:read")
    fresh.secrets += [shop, other]
    a.cli("keys", "rotate")
    fresh.secrets += [a.token("shop", shop), a.token("shop", shop), b.token("shop", shop)]
    assert a.token_response("shop", "w" * 43).status_code == 401          # bad_secret
    assert b.token_response("ghost", "g" * 43).status_code == 401         # unknown_client
    assert a.token_response("shop", shop, scope="ledger:admin").status_code == 400  # no event
    a.cli("client", "disable", "other")
    _, out, _ = a.cli("client", "disable", "other")                       # changes nothing
    assert "already" in out
    assert b.token_response("other", other).status_code == 401            # disabled_client
    wait_until(lambda: all_published(a), 30, "every outbox row to be published")
    pair = wait_until(lambda: relaying([a, b]), 15, "one relay and one standing by")

    by_type = consume_checked(kafka, a)
    counts = {t: len(v) for t, v in by_type.items()}
    assert counts == {"cofre.auth.key.created": 1, "cofre.auth.client.created": 2,
                      "cofre.auth.client.secret_rotated": 1, "cofre.auth.key.rotated": 1,
                      "cofre.auth.token.issued": 3, "cofre.auth.authentication.failed": 3,
                      "cofre.auth.client.disabled": 1}, counts
    assert sorted(e["data"]["failure"]["reason"] for e in
                  by_type["cofre.auth.authentication.failed"]) == \
        ["bad_secret", "disabled_client", "unknown_client"]
    created = sorted(e["subject"] for e in by_type["cofre.auth.client.created"])
    assert created == ["other", "shop"], created
    assert all(e["data"]["token"]["client_id"] == "shop"
               for e in by_type["cofre.auth.token.issued"])
    for e in by_type["cofre.auth.token.issued"] + by_type["cofre.auth.client.created"]:
        assert shop not in json.dumps(e) and other not in json.dumps(e)

    # cofre-audit reads the auth events into its trail, each once.
    wd = os.path.join(a.workdir, "..", "audit")
    os.makedirs(wd, exist_ok=True)
    audit = Audit(wd, kafka.bootstrap)
    fresh.started.append(audit)
    audit.start()
    want = sum(counts.values())
    wait_until(lambda: audit.metric("cofre_audit_records") >= want, 30, f"{want} audit records")
    records = audit.events()
    assert sorted(r["event_id"] for r in records) == \
        sorted(e["id"] for v in by_type.values() for e in v)
    failures = [r for r in records if r["type"] == "cofre.auth.authentication.failed"]
    assert sorted(r["reason"] for r in failures) == \
        ["bad_secret", "disabled_client", "unknown_client"]
    assert all(r["outcome"] == "failure" for r in failures)
    assert audit.verify()["ok"]
    assert audit.stop() == 0

    # The publishing replica stops: the other takes the outbox over and publishes what comes.
    busy, idle = pair
    assert busy.stop() == 0
    fresh.secrets.append(idle.token("shop", shop))
    wait_until(lambda: all_published(idle), 30, "the standby to take over and publish")
    assert idle.find_log(lambda o: o.get("msg") == "outbox relay: taking over the outbox")
    by_type = consume_checked(kafka, idle)
    assert len(by_type["cofre.auth.token.issued"]) == 4


def test_every_auth_event_type_has_a_schema_that_refuses_junk():
    """The schemas are not vacuous: a good event passes; one without its id, with a secret
    hash in the client, with an unknown failure reason, or of another type fails."""
    good = {
        "specversion": "1.0", "id": "0190a0a0-0000-7000-8000-000000000001",
        "source": "/cofre/auth", "type": "cofre.auth.client.created",
        "time": "2026-11-29T19:43:51.123456Z", "subject": "shop",
        "datacontenttype": "application/json",
        "traceparent": "00-0123456789abcdef0123456789abcdef-0123456789abcdef-01",
        "data": {"client": {"client_id": "shop", "owner": "shop", "scope": "accounts:read",
                            "disabled": False, "created_at": "2026-11-29T19:43:51.123456Z"},
                 "actor": {"client_id": None, "address": None, "request_id": None,
                           "command": "client add"}}}
    v = validator("cofre.auth.client.created")
    v.validate(good)
    bad = []
    e = json.loads(json.dumps(good)); del e["id"]; bad.append(e)
    e = json.loads(json.dumps(good)); e["data"]["client"]["secret_hash"] = "$argon2id$"
    bad.append(e)
    e = json.loads(json.dumps(good)); e["data"]["client"]["scope"] = "payments:all"; bad.append(e)
    e = json.loads(json.dumps(good)); e["type"] = "cofre.auth.client.disabled"; bad.append(e)
    e = json.loads(json.dumps(good)); e["source"] = "/cofre/core"; bad.append(e)
    for e in bad:
        assert not v.is_valid(e), e
    failed = validator("cofre.auth.authentication.failed")
    ev = json.loads(json.dumps(good))
    ev.update(type="cofre.auth.authentication.failed")
    ev["data"] = {"failure": {"client_id": "shop", "reason": "bad_secret",
                              "method": "client_secret_basic", "endpoint": "token"},
                  "actor": {"client_id": None, "address": "127.0.0.1", "request_id": "r-1"}}
    failed.validate(ev)
    ev["data"]["failure"]["reason"] = "guessed_it"
    assert not failed.is_valid(ev)
    for t in AUTH_TYPES:
        validator(t)


def test_relay_taken_over_after_a_crash(fresh, kafka):
    """The publishing replica is killed (SIGKILL: no clean release). The standby takes the
    outbox over (SQLite: the kernel drops the dead process's lock; PostgreSQL: once the lease
    expires, 15 s) and publishes what the survivor writes; nothing is lost (rows the dead relay
    published but had not marked may go twice: consumers drop them by id)."""
    env = {"COFRE_KAFKA_BROKERS": kafka.bootstrap, "COFRE_RELAY_POLL_MS": "10"}
    a = fresh.auth(**env)
    b = fresh.auth(db=a.db, keys_dir=a.keys_dir, **env)
    secret = a.add_client("shop", scopes="accounts:read")
    fresh.secrets.append(secret)
    wait_until(lambda: all_published(a), 30, "the first events to be published")
    busy, idle = wait_until(lambda: relaying([a, b]), 15, "one relay and one standing by")
    busy.kill()
    fresh.started.remove(busy)  # killed on purpose: no clean exit to check
    t0 = time.monotonic()
    fresh.secrets.append(idle.token("shop", secret))
    wait_until(lambda: all_published(idle), 30, "the standby to take over and publish")
    took = time.monotonic() - t0
    assert took < (COFRE_LEASE_S + 8) * SLOW, took
    msgs = kcat_consume(kafka.bootstrap, TOPIC)
    ids = {json.loads(m["payload"])["id"] for m in msgs}
    rows = {r[0] for r in idle.query("SELECT CAST(event_id AS text) FROM outbox")}
    assert ids == rows, sorted(ids ^ rows)
