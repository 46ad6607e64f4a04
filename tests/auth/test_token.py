"""The token endpoint, the published metadata and introspection, as an OAuth client sees them.

Tokens are checked independently with PyJWT against the published JWK Set; every refusal is
the RFC 6749 §5.2 JSON with the right status; every issuance and failure leaves its event in
the outbox; Argon2id runs off the event loop.
"""

import json
import threading
import time

import jwt
import pytest
import requests

from authlib import ALL_SCOPES, AUDIENCE, ISSUER


@pytest.fixture(scope="module")
def app(auth, servers):
    secret = auth.add_client("app", scopes="accounts:read transfers:read transfers:write",
                             owner="alice")
    servers.secrets.append(secret)
    return "app", secret


def outbox(auth, where="1=1"):
    return auth.query(f"SELECT topic, partition_key, type, payload FROM outbox "
                      f"WHERE {where} ORDER BY seq")


def test_token_verifies_with_pyjwt_against_the_jwks(auth, app, servers):
    """A token from client_secret_basic is an RFC 9068 access token that PyJWT verifies with
    the published key: ES256, typ at+jwt, a kid, and the contract's claims."""
    r = auth.token_response(*app)
    assert r.status_code == 200, r.text
    assert r.headers["Cache-Control"] == "no-store"
    assert r.headers.get("Pragma") == "no-cache"
    body = r.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "scope"}
    assert body["token_type"] == "Bearer" and body["expires_in"] == 900
    assert body["scope"] == "accounts:read transfers:read transfers:write"
    token = body["access_token"]
    servers.secrets.append(token)
    header = jwt.get_unverified_header(token)
    assert header == {"alg": "ES256", "typ": "at+jwt", "kid": header["kid"]}
    keys = {k["kid"]: k for k in auth.jwks()["keys"]}
    assert header["kid"] in keys
    jwk = keys[header["kid"]]
    assert jwk["kty"] == "EC" and jwk["crv"] == "P-256" and "d" not in jwk
    claims = jwt.decode(token, jwt.PyJWK(jwk).key, algorithms=["ES256"], audience=AUDIENCE,
                        issuer=ISSUER, options={"require": ["exp", "iat", "nbf", "jti"]})
    assert claims["sub"] == "alice" and claims["client_id"] == "app"
    assert claims["scope"] == body["scope"]
    assert claims["exp"] - claims["iat"] == 900
    assert abs(claims["iat"] - time.time()) < 60
    # With another key the same token does not verify (the check above can fail).
    other = jwt.PyJWK({"kty": "EC", "crv": "P-256",
                       "x": "axfR8uEsQkf4vOblY6RA8ncDfYEt6zOg9KE5RdiYwpY",
                       "y": "T-NC4v4af5uO5-tKfA-eFivOM1drMV7Oy7ZAaDe_UfU"})
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token, other.key, algorithms=["ES256"], audience=AUDIENCE)


def test_client_secret_post_and_narrowed_scope(auth, app):
    """client_secret_post works too; a requested subset of the client's scopes is granted
    exactly, and every token has its own jti."""
    r = auth.token_response(*app, scope="transfers:read", method="post")
    assert r.status_code == 200, r.text
    assert r.json()["scope"] == "transfers:read"
    a = jwt.decode(r.json()["access_token"], options={"verify_signature": False})
    b = jwt.decode(auth.token(*app), options={"verify_signature": False})
    assert a["scope"] == "transfers:read" and a["jti"] != b["jti"]


REFUSALS = [
    # (description, request kwargs, status, error)
    ("scope not granted", dict(scope="ledger:admin"), 400, "invalid_scope"),
    ("unknown scope", dict(scope="accounts:read payments:all"), 400, "invalid_scope"),
    ("empty scope", dict(scope=""), 400, "invalid_scope"),
    ("other grant", dict(grant="password"), 400, "unsupported_grant_type"),
    ("no grant", dict(grant=None), 400, "invalid_request"),
    ("both methods", dict(both=True), 400, "invalid_request"),
    ("wrong secret", dict(secret="wrong-secret"), 401, "invalid_client"),
    ("unknown client", dict(client="nobody"), 401, "invalid_client"),
    ("no credentials", dict(anonymous=True), 401, "invalid_client"),
    ("bearer instead of basic", dict(bearer=True), 401, "invalid_client"),
    ("json body", dict(json_body=True), 400, "invalid_request"),
    ("repeated parameter", dict(raw="grant_type=client_credentials&grant_type=x"), 400,
     "invalid_request"),
]


@pytest.mark.parametrize("what,kw,status,error", REFUSALS, ids=[r[0] for r in REFUSALS])
def test_refusals_are_rfc6749_errors(auth, app, what, kw, status, error):
    """Each refused request answers the RFC 6749 error JSON with its status; invalid_client
    carries WWW-Authenticate: Basic; nothing is issued."""
    client, secret = kw.get("client", app[0]), kw.get("secret", app[1])
    data = {"grant_type": kw.get("grant", "client_credentials")}
    if data["grant_type"] is None:
        del data["grant_type"]
    if "scope" in kw:
        data["scope"] = kw["scope"]
    headers = {}
    auth_pair = (client, secret)
    if kw.get("both"):
        data.update(client_id=client, client_secret=secret)
    if kw.get("anonymous"):
        auth_pair = None
    if kw.get("bearer"):
        auth_pair, headers = None, {"Authorization": "Bearer abc"}
    before = auth.metric("cofre_auth_tokens_issued_total")
    if kw.get("json_body"):
        r = requests.post(auth.url("/oauth/token"), json=data, auth=auth_pair, timeout=15)
    elif "raw" in kw:
        r = requests.post(auth.url("/oauth/token"), data=kw["raw"], auth=auth_pair, timeout=15,
                          headers={"Content-Type": "application/x-www-form-urlencoded"})
    else:
        r = requests.post(auth.url("/oauth/token"), data=data, auth=auth_pair,
                          headers=headers, timeout=15)
    assert r.status_code == status, f"{what}: {r.status_code} {r.text}"
    assert r.headers["Content-Type"].startswith("application/json"), r.headers
    body = r.json()
    assert body["error"] == error, body
    assert isinstance(body.get("error_description"), str)
    if status == 401:
        assert r.headers.get("WWW-Authenticate", "").startswith("Basic"), r.headers
    assert auth.metric("cofre_auth_tokens_issued_total") == before


def test_unknown_client_and_wrong_secret_look_the_same(auth, app):
    """The answer does not tell whether a client id exists, and both take an Argon2id
    verification (measured by the hash histogram's count)."""
    count = auth.metric("cofre_auth_hash_seconds_count")
    a = auth.token_response("nobody-at-all", "x" * 43)
    b = auth.token_response(app[0], "x" * 43)
    assert a.status_code == b.status_code == 401
    assert a.json() == b.json()
    assert auth.metric("cofre_auth_hash_seconds_count") == count + 2


def test_events_in_the_outbox(auth, app):
    """Issuing and failing both write a CloudEvents row on cofre.auth.events keyed by the
    client id; the secret and the token are in none of them."""
    before = len(outbox(auth))
    token = auth.token(*app)
    auth.token_response(app[0], "wrong-secret-123")
    rows = outbox(auth)[before:]
    types = [r[2] for r in rows]
    assert types == ["cofre.auth.token.issued", "cofre.auth.authentication.failed"], types
    for topic, key, typ, payload in rows:
        assert topic == "cofre.auth.events" and key == "app"
        ev = json.loads(payload)
        assert ev["specversion"] == "1.0" and ev["type"] == typ and ev["source"] == "/cofre/auth"
        assert ev["subject"] == "app" and ev["datacontenttype"] == "application/json"
        assert ev["traceparent"].startswith("00-")
        assert token not in payload and app[1] not in payload and "wrong-secret" not in payload
    issued = json.loads(rows[0][3])["data"]
    assert issued["token"]["jti"] == jwt.decode(token, options={"verify_signature": False})["jti"]
    failed = json.loads(rows[1][3])["data"]
    assert failed["failure"]["reason"] == "bad_secret"
    assert failed["actor"]["address"] == "127.0.0.1"


def test_metadata_and_jwks(auth):
    """The metadata names the endpoints under the issuer and the supported methods; the JWK
    Set holds only public P-256 keys."""
    m = requests.get(auth.url("/.well-known/openid-configuration"), timeout=5).json()
    assert m["issuer"] == ISSUER
    assert m["token_endpoint"] == ISSUER + "/oauth/token"
    assert m["jwks_uri"] == ISSUER + "/.well-known/jwks.json"
    assert m["introspection_endpoint"] == ISSUER + "/oauth/introspect"
    assert m["grant_types_supported"] == ["client_credentials"]
    assert set(m["token_endpoint_auth_methods_supported"]) == {"client_secret_basic",
                                                               "client_secret_post"}
    assert set(m["scopes_supported"]) == set(ALL_SCOPES.split())
    for k in auth.jwks()["keys"]:
        assert set(k) == {"kty", "crv", "x", "y", "kid", "use", "alg"}, k
        assert (k["kty"], k["crv"], k["alg"], k["use"]) == ("EC", "P-256", "ES256", "sig")


def test_introspection(auth, app, servers):
    """RFC 7662: a client learns about its own active tokens; garbage, another client's token
    (without ledger:admin) and an unauthenticated call learn nothing."""
    other_secret = auth.add_client("other-app", scopes="accounts:read")
    admin_secret = auth.add_client("auditor", scopes="ledger:admin")
    servers.secrets += [other_secret, admin_secret]
    token = auth.token(*app)
    mine = auth.introspect(token, *app)
    assert mine["active"] is True
    assert mine["client_id"] == "app" and mine["sub"] == "alice"
    assert mine["scope"] == "accounts:read transfers:read transfers:write"
    assert mine["iss"] == ISSUER and mine["aud"] == AUDIENCE and mine["token_type"] == "Bearer"
    assert auth.introspect(token, "other-app", other_secret) == {"active": False}
    assert auth.introspect(token, "auditor", admin_secret)["active"] is True
    assert auth.introspect("not.a.token", *app) == {"active": False}
    assert auth.introspect(token[:-4] + "AAAA", *app) == {"active": False}
    r = requests.post(auth.url("/oauth/introspect"), data={"token": token}, timeout=5)
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"


def test_disabled_client(fresh):
    """After `client disable`: no new token, its tokens are inactive on introspection, and the
    command is idempotent."""
    auth = fresh.auth()
    secret = auth.add_client("temp", scopes="accounts:read")
    admin = auth.add_client("admin", scopes="ledger:admin")
    fresh.secrets += [secret, admin]
    token = auth.token("temp", secret)
    assert auth.introspect(token, "admin", admin)["active"] is True
    auth.cli("client", "disable", "temp")
    r = auth.token_response("temp", secret)
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    assert auth.introspect(token, "admin", admin) == {"active": False}
    _, out, _ = auth.cli("client", "disable", "temp")
    assert "already" in out
    assert auth.metric("cofre_auth_failures_total", reason="disabled_client") >= 1


def test_hashing_never_blocks_the_loop(fresh):
    """With one event loop and one slow hasher (Argon2id at 256 MiB), /healthz still answers
    at once while token requests queue for the hasher."""
    auth = fresh.auth(COFRE_THREADS="1", COFRE_AUTH_HASHERS="1",
                      COFRE_AUTH_ARGON2_OPSLIMIT="3", COFRE_AUTH_ARGON2_MEMLIMIT_KIB="262144")
    secret = auth.add_client("slow", scopes="accounts:read")
    fresh.secrets.append(secret)
    t0 = time.monotonic()
    auth.token("slow", secret)
    one_hash_s = time.monotonic() - t0
    assert one_hash_s > 0.1, f"the hash is too fast ({one_hash_s:.3f}s) to show anything"
    results = []
    threads = [threading.Thread(target=lambda: results.append(
        auth.token_response("slow", secret).status_code)) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(0.05)
    worst = 0.0
    while any(t.is_alive() for t in threads):
        s = time.monotonic()
        assert requests.get(auth.url("/healthz"), timeout=5).status_code == 200
        worst = max(worst, time.monotonic() - s)
        time.sleep(0.02)
    for t in threads:
        t.join()
    assert results == [200] * 4
    assert worst < one_hash_s / 2, f"/healthz took {worst:.3f}s while hashing"
