"""cofre-audit's API and command line: query filters and pages, bad parameters, the routes
against docs/openapi-audit.yaml, readiness and lag, malformed messages on the topic, token
checks with a real cofre-auth, --help/--version, keygen and bad settings."""

import json
import os
import re
import subprocess
import uuid

import pytest
import requests
import yaml

from eventlib import (LEDGER_TOPIC, REPO, SLOW, Proc, base_env, binary, wait_for)

HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


@pytest.fixture
def filled(backend, stack):
    """A trail with 2 accounts and 12 transfers (3 of them to one subject we remember)."""
    stack.kafka()
    core = stack.core()
    audit = stack.audit(group="api")
    bank = core.open_account("bank", overdraft=True)
    alice = core.open_account("alice")
    ids = []
    for i in range(12):
        tid = str(uuid.uuid4())
        assert core.transfer(bank, alice, 10 + i, tid).status_code == 201
        ids.append(tid)
    wait_for(lambda: audit.metric("cofre_audit_records") == 14, 30, "14 records", interval=0.2)
    return core, audit, bank, alice, ids


def test_filters_and_pages(filled):
    core, audit, bank, alice, ids = filled
    everything = audit.events()
    assert [r["seq"] for r in everything] == list(range(1, 15))
    transfers = audit.events(type="cofre.transfer.posted")
    assert [r["subject"] for r in transfers] == ids  # chain order is commit order here
    one = audit.events(subject=ids[5])
    assert len(one) == 1 and one[0]["amount"] == 15 and one[0]["debit_account_id"] == bank
    assert audit.events(subject=alice, type="cofre.account.created")[0]["actor"]["client_id"]
    assert audit.events(subject="no-such-subject") == []

    # Pages of 5: three pages, cursors chain, the last one says null.
    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 5, "type": "cofre.transfer.posted"}
        if cursor:
            params["cursor"] = cursor
        page = audit.get("/v1/audit/events", params).json()
        seen += [r["subject"] for r in page["data"]]
        cursor, pages = page["next_cursor"], pages + 1
        if cursor is None:
            break
    assert seen == ids and pages == 3

    # Time window on the events' own time: [from, to).
    t5, t8 = transfers[5]["time"], transfers[8]["time"]
    window = audit.events(type="cofre.transfer.posted", **{"from": t5, "to": t8})
    assert [r["subject"] for r in window] == ids[5:8]
    assert audit.events(**{"from": "2000-01-01T00:00:00+01:00", "to": "2000-01-02T00:00:00Z"}) == []


@pytest.mark.parametrize("params,code", [
    ({"limit": "0"}, "invalid_request"),
    ({"limit": "1001"}, "invalid_request"),
    ({"limit": "ten"}, "invalid_request"),
    ({"cursor": "abc"}, "invalid_cursor"),
    ({"cursor": "-5"}, "invalid_cursor"),
    ({"from": "yesterday"}, "invalid_request"),
    ({"to": "2026-02-30T00:00:00Z"}, "invalid_request"),
    ({"subject": "x" * 257}, "invalid_request"),
    ({"colour": "blue"}, "invalid_request"),
])
def test_bad_query_parameters(stack, params, code):
    audit = stack.audit(brokers="")
    r = audit.get("/v1/audit/events", params)
    assert r.status_code == 400, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["code"] == code, r.json()
    assert audit.get("/v1/audit/verify", {"x": "1"}).status_code == 400
    assert audit.get("/v1/audit/events", {"limit": "1000"}).status_code == 200


def test_routes_equal_the_openapi_document():
    """--routes equals docs/openapi-audit.yaml's paths (served but undocumented, or documented
    but not served, both fail)."""
    r = subprocess.run([binary("cofre-audit"), "--routes"], capture_output=True, text=True,
                       timeout=10, check=True)
    served = {tuple(line.split()) for line in r.stdout.splitlines() if line.strip()}
    with open(os.path.join(REPO, "docs", "openapi-audit.yaml")) as f:
        doc = yaml.safe_load(f)
    documented = {(m.upper(), path) for path, item in doc["paths"].items()
                  for m in item if m in HTTP_METHODS}
    assert served == documented, (served - documented, documented - served)


def test_readiness_needs_the_group_and_lag_returns_to_zero(stack):
    """With every broker down cofre-audit starts but is not ready (no group); once they are
    back it joins, and after a burst of events its lag gauge returns to 0."""
    kafka = stack.kafka()
    kafka.all_brokers(up=False)
    audit = stack.audit(group="ready", ready=False)
    wait_for(lambda: "consumer group" in audit.get("/readyz").text, 10,
             "readiness to name the consumer group")
    assert audit.get("/readyz").status_code == 503
    assert audit.get("/healthz").status_code == 200
    kafka.all_brokers(up=True)
    audit.wait_ready(timeout=60)
    core = stack.core()
    bank = core.open_account("bank", overdraft=True)
    alice = core.open_account("alice")
    for _ in range(50):
        assert core.transfer(bank, alice, 1, str(uuid.uuid4())).status_code == 201
    wait_for(lambda: audit.metric("cofre_audit_records") == 52, 30, "52 records", interval=0.2)
    wait_for(lambda: audit.metric_sum("cofre_audit_consumer_lag") == 0, 10, "lag back to 0",
             interval=0.2)
    assert audit.metric("cofre_audit_group_member") == 1


def test_malformed_messages_are_kept_as_rejected_records(backend, stack):
    """Garbage on the ledger topic is stored as a rejected record (never dropped, never a
    crash), and a redelivery of it is still a duplicate."""
    kafka = stack.kafka()
    audit = stack.audit(group="malformed")
    for value in ("not json", '{"specversion":"1.0","id":"x"}'):
        subprocess.run(["kcat", "-b", kafka.bootstrap, "-P", "-t", LEDGER_TOPIC, "-p", "0"],
                       input=value + "\n", text=True, timeout=20 * SLOW, check=True)
    wait_for(lambda: audit.metric("cofre_audit_records") == 2, 30, "2 records", interval=0.2)
    recs = audit.events(type="cofre.audit.malformed_event")
    assert [r["outcome"] for r in recs] == ["rejected", "rejected"]
    assert recs[0]["event"] == "not json" and recs[0]["event_id"] == f"malformed:{LEDGER_TOPIC}:0:0"
    assert "type" in recs[1]["reason"]
    assert audit.metric("cofre_audit_malformed_events_total") == 2
    assert audit.verify()["ok"]


# ---- token checks with a real cofre-auth -------------------------------------------------------

ISSUER = "https://cofre.test"
AUDIENCE = "cofre-api"


def test_audit_routes_need_a_token_with_audit_read(stack, tmp_path):
    auth_dir = tmp_path / "auth"
    auth_dir.mkdir()
    env = base_env(COFRE_DB=f"sqlite:{auth_dir}/auth.db", COFRE_AUTH_ISSUER=ISSUER,
                   COFRE_AUTH_AUDIENCE=AUDIENCE, COFRE_AUTH_ARGON2_OPSLIMIT="1",
                   COFRE_AUTH_ARGON2_MEMLIMIT_KIB="1024")
    auth = Proc("cofre-auth", env, auth_dir)
    stack.procs.append(auth)
    auth.start()

    def client(name, scopes):
        r = subprocess.run([binary("cofre-auth"), "client", "add", "--name", name, "--scopes",
                            scopes], env=env, cwd=str(auth_dir), capture_output=True, text=True,
                           timeout=30 * SLOW, check=True)
        secret = re.search(r"^client_secret: (\S+)$", r.stdout, re.M).group(1)
        t = requests.post(auth.url("/oauth/token"), data={"grant_type": "client_credentials"},
                          auth=(name, secret), timeout=15)
        assert t.status_code == 200, t.text
        return {"Authorization": "Bearer " + t.json()["access_token"]}

    auditor = client("auditor", "audit:read")
    teller = client("teller", "transfers:read transfers:write")
    audit = stack.audit(brokers="", COFRE_AUTH="on", COFRE_AUTH_ISSUER=ISSUER,
                        COFRE_AUTH_AUDIENCE=AUDIENCE,
                        COFRE_JWKS_URL=auth.url("/.well-known/jwks.json"))
    for path in ("/v1/audit/events", "/v1/audit/verify", "/v1/audit/keys"):
        assert audit.get(path).status_code == 401, path
        assert audit.get(path, headers={"Authorization": "Bearer x.y.z"}).status_code == 401
        r = audit.get(path, headers=teller)
        assert r.status_code == 403 and r.json()["code"] == "forbidden", (path, r.text)
        assert audit.get(path, headers=auditor).status_code == 200, path
    assert audit.get("/healthz").status_code == 200  # probes need no token


# ---- the command line ------------------------------------------------------------------------


def run(name, args, env=None, timeout=10):
    return subprocess.run([binary(name)] + args, env=env or base_env(), capture_output=True,
                          text=True, timeout=timeout * SLOW, stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("name", ["cofre-audit", "cofre-kafka-dev"])
def test_version_and_help(name):
    r = run(name, ["--version"])
    assert r.returncode == 0 and r.stdout.startswith(name + " "), r
    r = run(name, ["--help"])
    assert r.returncode == 0 and "COFRE_LISTEN" in r.stdout, r


def test_keygen_never_overwrites(tmp_path):
    path = str(tmp_path / "k")
    r = run("cofre-audit", ["keygen", path])
    assert r.returncode == 0 and re.fullmatch(r"[0-9a-f]{64}\n", r.stdout), r
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"
    with open(path) as f:
        first = f.read()
    r = run("cofre-audit", ["keygen", path])
    assert r.returncode == 1 and "exists" in r.stderr, r
    with open(path) as f:
        assert f.read() == first


def bad_settings(tmp_path):
    key = str(tmp_path / "key")
    run("cofre-audit", ["keygen", key])
    good = dict(COFRE_DB=f"sqlite:{tmp_path}/a.db", COFRE_AUDIT_SIGNING_KEY_FILE=key,
                COFRE_AUTH="off")
    return good, [
        ("COFRE_AUDIT_SIGNING_KEY_FILE", {"COFRE_AUDIT_SIGNING_KEY_FILE": ""}),
        ("COFRE_AUDIT_SIGNING_KEY_FILE", {"COFRE_AUDIT_SIGNING_KEY_FILE": "/nonexistent"}),
        ("COFRE_AUDIT_SIGNING_KEY_FILE", {"COFRE_AUDIT_SIGNING_KEY_FILE": "/etc/hostname"}),
        ("COFRE_AUDIT_TRUSTED_KEYS", {"COFRE_AUDIT_TRUSTED_KEYS": "abcd"}),
        ("COFRE_DB", {"COFRE_DB": "mysql://u@h/db"}),
        ("COFRE_DB", {"COFRE_DB": "postgres://u@h/db?nosuchoption=1"}),
        ("COFRE_MIGRATE", {"COFRE_MIGRATE": "sometimes"}),
        ("COFRE_KAFKA_BROKERS", {"COFRE_KAFKA_BROKERS": "nohostport"}),
        ("COFRE_AUDIT_CHECKPOINT_RECORDS", {"COFRE_AUDIT_CHECKPOINT_RECORDS": "0"}),
        ("COFRE_AUDIT_SESSION_TIMEOUT_MS", {"COFRE_AUDIT_SESSION_TIMEOUT_MS": "100"}),
        ("COFRE_KAFKA_SECURITY_PROTOCOL", {"COFRE_KAFKA_SECURITY_PROTOCOL": "tls"}),
    ]


def test_bad_settings_stop_at_once_naming_the_variable(tmp_path):
    good, cases = bad_settings(tmp_path)
    for var, over in cases:
        r = run("cofre-audit", [], env=base_env(**{**good, **over}), timeout=5)
        lines = r.stderr.strip().splitlines()
        assert r.returncode != 0 and len(lines) == 1 and var in lines[0], (var, over, r)
        assert '"listening"' not in r.stdout


def test_kafka_dev_refuses_a_non_loopback_control_address(tmp_path):
    r = run("cofre-kafka-dev", [], env=base_env(COFRE_LISTEN="0.0.0.0:0"), timeout=5)
    assert r.returncode != 0 and "COFRE_LISTEN" in r.stderr, r
    r = run("cofre-kafka-dev", [], env=base_env(COFRE_KAFKA_DEV_TOPICS="a,,b"), timeout=5)
    assert r.returncode != 0 and "COFRE_KAFKA_DEV_TOPICS" in r.stderr, r
    r = run("cofre-kafka-dev", [], env=base_env(COFRE_KAFKA_DEV_BROKERS="10"), timeout=5)
    assert r.returncode != 0 and "COFRE_KAFKA_DEV_BROKERS" in r.stderr, r
