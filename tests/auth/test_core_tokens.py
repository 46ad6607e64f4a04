"""cofre-core with token checks on, against a real cofre-auth.

The attack table: each forged, broken or revoked token is answered 401 (with WWW-Authenticate:
Bearer) on a read and on a write, and the write changes nothing in the ledger. The control
row, a token forged the same way but valid, is accepted, so the harness can tell. Then scopes
(403), owners (404 for read and for transfer, as if absent), and idempotency keys per client.
"""

import base64
import json
import sqlite3
import time
import uuid

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization

from authlib import ALL_SCOPES, Forger, b64url, bearer

SETTLE_S = 15.0  # revocations are fetched every second; leave room on a loaded machine


def snapshot(core):
    db = core.env["COFRE_DB"][len("sqlite:"):]
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        counts = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                  for t in ("accounts", "transfers", "idempotency", "outbox")}
        rows = conn.execute("SELECT id, debits_posted, credits_posted FROM accounts").fetchall()
        return counts, sorted(rows)
    finally:
        conn.close()


def post(core, path, body, token=None, key=None, headers=None):
    h = {"Content-Type": "application/json", "Idempotency-Key": key or f"k-{uuid.uuid4()}"}
    if token is not None:
        h.update(bearer(token))
    h.update(headers or {})
    return requests.post(core.url(path), data=json.dumps(body), headers=h, timeout=15)


def get(core, path, token=None, headers=None):
    h = dict(headers or {})
    if token is not None:
        h.update(bearer(token))
    return requests.get(core.url(path), headers=h, timeout=15)


@pytest.fixture(scope="module")
def ledger(auth, core, servers):
    """An admin client, and two EUR accounts funded from a settlement account."""
    secret = auth.add_client("ops", scopes=ALL_SCOPES)
    servers.secrets.append(secret)
    token = auth.token("ops", secret)
    servers.secrets.append(token)
    ids = {}
    for name, owner, no_overdraft in (("bank", "bank", False), ("alice", "alice", True),
                                      ("bob", "bob", True)):
        r = post(core, "/v1/accounts", {"owner": owner, "currency": "EUR",
                                        "flags": {"no_overdraft": no_overdraft}}, token)
        assert r.status_code == 201, r.text
        ids[name] = r.json()["id"]
    for who in ("alice", "bob"):
        r = post(core, "/v1/transfers", {"debit_account_id": ids["bank"],
                                         "credit_account_id": ids[who], "amount": 1000,
                                         "currency": "EUR"}, token)
        assert r.status_code == 201, r.text
    return ids


def hs256_with_public_key(auth, forger):
    """HS256 keyed with the issuer's public key (PEM and JWK text both tried by attackers)."""
    pem = forger.key.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
    header = {"alg": "HS256", "typ": "at+jwt", "kid": forger.kid}
    signing_input = (b64url(json.dumps(header).encode()) + "." +
                     b64url(json.dumps(forger.claims()).encode()))
    import hashlib
    import hmac
    mac = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + b64url(mac)


def alg_none(forger):
    header = {"alg": "none", "typ": "at+jwt", "kid": forger.kid}
    return (b64url(json.dumps(header).encode()) + "." +
            b64url(json.dumps(forger.claims()).encode()) + ".")


def tamper_payload(token):
    h, p, s = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))
    claims["sub"] = "bank"
    return h + "." + b64url(json.dumps(claims).encode()) + "." + s


def tamper_signature(token):
    h, p, s = token.split(".")
    raw = bytearray(base64.urlsafe_b64decode(s + "=" * (-len(s) % 4)))
    raw[10] ^= 0x01
    return h + "." + p + "." + b64url(bytes(raw))


def unknown_kid(forger):
    from cryptography.hazmat.primitives.asymmetric import ec
    stranger = ec.generate_private_key(ec.SECP256R1())
    return jwt.encode(forger.claims(), stranger, algorithm="ES256",
                      headers={"kid": "no-such-key", "typ": "at+jwt"})


def attack_tokens(auth, forger, disabled_token):
    now = int(time.time())
    good = forger.token()
    return {
        "alg none": alg_none(forger),
        "HS256 with the public key": hs256_with_public_key(auth, forger),
        "expired": forger.token(exp=now - 120, iat=now - 1000, nbf=now - 1000),
        "not yet valid": forger.token(nbf=now + 300, iat=now),
        "wrong iss": forger.token(iss="https://evil.test"),
        "wrong aud": forger.token(aud="other-api"),
        "unknown kid": unknown_kid(forger),
        "tampered payload": tamper_payload(good),
        "tampered signature": tamper_signature(good),
        "wrong typ": forger.token(headers={"typ": "JWT"}),
        "disabled client": disabled_token,
    }


def test_attack_table(auth, core, ledger, servers):
    """Every row: 401 with WWW-Authenticate: Bearer on GET and POST, and the POST changed
    nothing; the control token built the same way passes."""
    forger = Forger(auth)
    secret = auth.add_client("short-lived", scopes=ALL_SCOPES)
    servers.secrets.append(secret)
    disabled_token = auth.token("short-lived", secret)
    assert get(core, f"/v1/accounts/{ledger['alice']}", disabled_token).status_code == 200
    auth.cli("client", "disable", "short-lived")
    assert auth.introspect(disabled_token, "ops", servers.secrets[0]) == {"active": False}
    attacks = attack_tokens(auth, forger, disabled_token)
    attacks["no token"] = None
    deadline = time.monotonic() + SETTLE_S
    transfer = {"debit_account_id": ledger["alice"], "credit_account_id": ledger["bob"],
                "amount": 7, "currency": "EUR"}
    for name, token in attacks.items():
        before = snapshot(core)
        while True:
            r = get(core, f"/v1/accounts/{ledger['alice']}", token)
            # the revocation of the disabled client reaches the core within its refresh
            if r.status_code == 401 or name != "disabled client" or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert r.status_code == 401, f"{name}: GET answered {r.status_code} {r.text}"
        assert r.headers.get("WWW-Authenticate") == "Bearer", (name, r.headers)
        assert r.json()["code"] == "unauthorized", (name, r.text)
        w = post(core, "/v1/transfers", transfer, token)
        assert w.status_code == 401, f"{name}: POST answered {w.status_code} {w.text}"
        assert snapshot(core) == before, f"{name}: the ledger changed"
    # The control: a token forged the same way, but valid, is accepted.
    control = forger.token(sub="alice", client_id="ops")
    r = get(core, f"/v1/accounts/{ledger['alice']}", control)
    assert r.status_code == 200, r.text


def test_bearer_header_forms(auth, core, ledger, servers):
    """Bearer is case-insensitive; anything but exactly one Bearer credential is refused."""
    secret = auth.add_client("forms", scopes="accounts:read", owner="alice")
    servers.secrets.append(secret)
    token = auth.token("forms", secret)
    servers.secrets.append(token)
    path = f"/v1/accounts/{ledger['alice']}"
    assert get(core, path, headers={"Authorization": f"bearer {token}"}).status_code == 200
    for value in (f"Basic {token}", "Bearer", "Bearer ", f"Token {token}", token):
        r = get(core, path, headers={"Authorization": value})
        assert r.status_code == 401, (value[:20], r.status_code)
    # the probes and metrics never ask for a token
    for probe in ("/healthz", "/readyz", "/metrics"):
        assert requests.get(core.url(probe), timeout=5).status_code == 200


def test_missing_scope_is_403(auth, core, ledger, servers):
    """A valid token without the route's scope: 403 forbidden naming the scopes needed; one
    with it passes."""
    secret = auth.add_client("reader", scopes="accounts:read", owner="alice")
    servers.secrets.append(secret)
    token = auth.token("reader", secret)
    assert get(core, f"/v1/accounts/{ledger['alice']}", token).status_code == 200
    before = snapshot(core)
    r = post(core, "/v1/transfers", {"debit_account_id": ledger["alice"],
                                     "credit_account_id": ledger["bob"], "amount": 1,
                                     "currency": "EUR"}, token)
    assert r.status_code == 403, r.text
    assert r.json()["code"] == "forbidden" and "transfers:write" in r.json()["detail"]
    r = post(core, "/v1/accounts", {"owner": "alice", "currency": "EUR"}, token)
    assert r.status_code == 403, r.text
    r = get(core, f"/v1/accounts/{ledger['alice']}/transfers", token)
    assert r.status_code == 403, r.text
    assert snapshot(core) == before


def test_other_owners_accounts_are_404(auth, core, ledger, servers):
    """Without ledger:admin a token sees and moves only its own owner's accounts: another
    owner's account is 404 to read and to transfer from, and absent from lists."""
    secret = auth.add_client("bob-app", scopes="accounts:read accounts:write transfers:read "
                                               "transfers:write", owner="bob")
    servers.secrets.append(secret)
    token = auth.token("bob-app", secret)
    assert get(core, f"/v1/accounts/{ledger['bob']}", token).status_code == 200
    r = get(core, f"/v1/accounts/{ledger['alice']}", token)
    assert r.status_code == 404 and r.json()["code"] == "account_not_found", r.text
    missing = get(core, f"/v1/accounts/{uuid.uuid4()}", token)
    assert missing.status_code == 404
    assert set(r.json()) == set(missing.json()) and r.json()["code"] == missing.json()["code"]
    r = get(core, f"/v1/accounts/{ledger['alice']}/transfers", token)
    assert r.status_code == 404, r.text
    listed = get(core, "/v1/accounts", token).json()["data"]
    assert {a["owner"] for a in listed} == {"bob"}
    before = snapshot(core)
    r = post(core, "/v1/transfers", {"debit_account_id": ledger["alice"],
                                     "credit_account_id": ledger["bob"], "amount": 5,
                                     "currency": "EUR"}, token)
    assert r.status_code == 404 and r.json()["code"] == "account_not_found", r.text
    assert snapshot(core)[1] == before[1], "a balance changed"
    # Bob may move his own money to Alice: the credit side may be anyone's.
    r = post(core, "/v1/transfers", {"debit_account_id": ledger["bob"],
                                     "credit_account_id": ledger["alice"], "amount": 5,
                                     "currency": "EUR"}, token)
    assert r.status_code == 201, r.text
    # Opening an account for someone else needs ledger:admin.
    r = post(core, "/v1/accounts", {"owner": "alice", "currency": "EUR"}, token)
    assert r.status_code == 403, r.text
    # So does opening a settlement account (one that may go negative), even one's own: it
    # would let a client create money.
    before = snapshot(core)
    r = post(core, "/v1/accounts", {"owner": "bob", "currency": "EUR",
                                    "flags": {"no_overdraft": False}}, token)
    assert r.status_code == 403 and r.json()["code"] == "forbidden", r.text
    assert snapshot(core) == before
    r = post(core, "/v1/accounts", {"owner": "bob", "currency": "EUR"}, token)
    assert r.status_code == 201 and r.json()["flags"]["no_overdraft"] is True, r.text


def test_idempotency_keys_are_per_client(auth, core, ledger, servers):
    """The same Idempotency-Key from two clients is two requests; from one client it is a
    replay, whatever token of that client carries it."""
    sa = auth.add_client("idem-a", scopes="transfers:write transfers:read", owner="alice")
    sb = auth.add_client("idem-b", scopes="transfers:write transfers:read", owner="bob")
    servers.secrets += [sa, sb]
    ta, tb = auth.token("idem-a", sa), auth.token("idem-b", sb)
    key = f"shared-{uuid.uuid4()}"
    ra = post(core, "/v1/transfers", {"debit_account_id": ledger["alice"],
                                      "credit_account_id": ledger["bob"], "amount": 3,
                                      "currency": "EUR"}, ta, key=key)
    assert ra.status_code == 201, ra.text
    rb = post(core, "/v1/transfers", {"debit_account_id": ledger["bob"],
                                      "credit_account_id": ledger["alice"], "amount": 4,
                                      "currency": "EUR"}, tb, key=key)
    assert rb.status_code == 201, rb.text
    assert rb.headers.get("Idempotency-Replayed") is None
    assert rb.json()["id"] != ra.json()["id"]
    again = post(core, "/v1/transfers", {"debit_account_id": ledger["alice"],
                                         "credit_account_id": ledger["bob"], "amount": 3,
                                         "currency": "EUR"}, auth.token("idem-a", sa), key=key)
    assert again.status_code == 201 and again.headers.get("Idempotency-Replayed") == "true"
    assert again.json()["id"] == ra.json()["id"]


def test_checks_are_counted(core):
    """The core counts its token checks by result, cached hits included."""
    assert core.metric("cofre_token_checks_total", result="cached") > 0
    assert core.metric("cofre_token_checks_total", result="ok") > 0
    assert core.metric("cofre_token_checks_total", result="expired") >= 1
    assert core.metric("cofre_token_checks_total", result="revoked") >= 1
    assert core.metric("cofre_token_checks_total", result="forbidden") >= 1
    assert core.metric("cofre_jwks_keys") == 1


def test_issue_use_and_verify_independently(auth, core, ledger, servers):
    """The whole flow: a token from cofre-auth works on cofre-core, and a third party
    verifies it with PyJWT from the published JWKS URL alone."""
    secret = auth.add_client("third-party-check", scopes="accounts:read", owner="alice")
    servers.secrets.append(secret)
    token = auth.token("third-party-check", secret)
    servers.secrets.append(token)
    r = get(core, f"/v1/accounts/{ledger['alice']}", token)
    assert r.status_code == 200 and r.json()["owner"] == "alice", r.text
    client = jwt.PyJWKClient(auth.url("/.well-known/jwks.json"))
    key = client.get_signing_key_from_jwt(token)
    claims = jwt.decode(token, key.key, algorithms=["ES256"], audience="cofre-api",
                        issuer="https://cofre.test")
    assert claims["client_id"] == "third-party-check" and claims["sub"] == "alice"
