"""Every event the relay publishes, read back with kcat, validates against its JSON Schema in
docs/events/, is keyed as the contract says, and carries its traceparent as a header too."""

import json
import os

import jsonschema

from eventlib import LEDGER_TOPIC, REPO, kcat_consume

SCHEMAS = os.path.join(REPO, "docs", "events")


def load_schema(event_type):
    path = os.path.join(SCHEMAS, f"{event_type}.schema.json")
    assert os.path.exists(path), f"no schema for event type {event_type} in docs/events/"
    with open(path) as f:
        schema = json.load(f)
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())


def headers_of(msg):
    h = msg.get("headers") or []
    return dict(zip(h[0::2], h[1::2]))


def test_published_events_validate_against_their_schemas(stack):
    """Accounts with and without metadata and transfers with and without a reference: each
    message's value validates against the schema of its type, its key is the account id (the
    debit account for a transfer), and its traceparent header equals the value's."""
    kafka = stack.kafka()
    core = stack.core()
    bank = core.open_account("bank", overdraft=True)
    alice = core.open_account("alice")
    r = core.post("/v1/accounts", {"owner": "bob", "currency": "EUR",
                                   "metadata": {"segment": "retail", "tier": 2}})
    assert r.status_code == 201, r.text
    assert core.transfer(bank, alice, 1500).status_code == 201
    r = core.post("/v1/transfers", {"debit_account_id": alice, "credit_account_id": bank,
                                    "amount": 250, "currency": "EUR", "reference": "fee 7/11"})
    assert r.status_code == 201, r.text
    assert core.transfer(alice, bank, 10**9).status_code == 422  # no event for a rejection
    core.wait_outbox_published()

    msgs = kcat_consume(kafka.bootstrap, LEDGER_TOPIC)
    assert len(msgs) == 5, [m["payload"] for m in msgs]
    types = {}
    for m in msgs:
        ev = json.loads(m["payload"])
        load_schema(ev["type"]).validate(ev)
        types[ev["type"]] = types.get(ev["type"], 0) + 1
        data = ev["data"]
        want_key = data["account"]["id"] if "account" in data else data["transfer"]["debit_account_id"]
        assert m["key"] == want_key, (m["key"], ev)
        h = headers_of(m)
        assert h.get("traceparent") == ev["traceparent"], (h, ev["traceparent"])
        assert h.get("content-type") == "application/cloudevents+json", h
    assert types == {"cofre.account.created": 3, "cofre.transfer.posted": 2}


def test_schemas_reject_what_the_contract_forbids():
    """The schemas are not vacuous: an event missing its id, with a float amount, or with an
    unknown member fails validation."""
    v = load_schema("cofre.transfer.posted")
    with open(os.path.join(REPO, "tests", "fuzz", "corpus", "fuzz_audit_event",
                           "transfer_posted")) as f:
        good = json.load(f)
    v.validate(good)
    bad_cases = []
    e = json.loads(json.dumps(good)); del e["id"]; bad_cases.append(e)
    e = json.loads(json.dumps(good)); e["data"]["transfer"]["amount"] = 1.5; bad_cases.append(e)
    e = json.loads(json.dumps(good)); e["data"]["extra"] = 1; bad_cases.append(e)
    e = json.loads(json.dumps(good)); e["type"] = "cofre.account.created"; bad_cases.append(e)
    for e in bad_cases:
        assert not v.is_valid(e), e
