"""Signing key rotation as verifiers see it.

`keys rotate` publishes the new key at once and signs with it only after the lead time, so
under a steady load of fresh tokens no request fails across the switch. `keys rotate --now`
(an emergency) makes the core meet an unknown kid: it refetches the JWK Set on a background
thread, at most once per 10 s however many such tokens arrive, and accepts the new key after.
"""

import json
import threading
import time
import uuid

import jwt
import requests

from authlib import ALL_SCOPES, bearer

LOAD_THREADS = 4


def open_account(core, token):
    r = requests.post(core.url("/v1/accounts"), data=json.dumps({"owner": "ops",
                                                                 "currency": "EUR"}),
                      headers={"Content-Type": "application/json",
                               "Idempotency-Key": str(uuid.uuid4()), **bearer(token)},
                      timeout=15)
    assert r.status_code == 201, r.text
    return r.json()["id"]


def kid_of(token):
    return jwt.get_unverified_header(token)["kid"]


def jwks_fetches(auth):
    return auth.metric("cofre_http_requests_total", route="/.well-known/jwks.json", method="GET",
                       code="200")


def test_rotation_under_load_fails_no_request(fresh):
    auth = fresh.auth(COFRE_AUTH_KEY_LEAD_S="3")
    core = fresh.core(auth, COFRE_JWKS_REFRESH_S="1")
    secret = auth.add_client("ops", scopes=ALL_SCOPES)
    fresh.secrets.append(secret)
    account = open_account(core, auth.token("ops", secret))
    old_kid = auth.jwks()["keys"][0]["kid"]
    stop = threading.Event()
    failures, seen = [], {}
    lock = threading.Lock()

    def load():
        s = requests.Session()
        token, n = None, 0
        while not stop.is_set():
            if n % 5 == 0:  # a fresh token every few requests, as clients that rotate do
                r = auth.token_response("ops", secret, session=s)
                if r.status_code != 200:
                    failures.append(("token", r.status_code, r.text))
                    continue
                token = r.json()["access_token"]
            r = s.get(core.url(f"/v1/accounts/{account}"), headers=bearer(token), timeout=15)
            with lock:
                seen[kid_of(token)] = seen.get(kid_of(token), 0) + 1
            if r.status_code != 200:
                failures.append(("read", kid_of(token), r.status_code, r.text))
            n += 1

    threads = [threading.Thread(target=load) for _ in range(LOAD_THREADS)]
    for t in threads:
        t.start()
    try:
        time.sleep(1.0)
        _, out, _ = auth.cli("keys", "rotate")
        new_kid = out.split("kid: ")[1].split()[0]
        assert new_kid != old_kid
        deadline = time.monotonic() + 30
        while seen.get(new_kid, 0) < 200 and time.monotonic() < deadline and not failures:
            time.sleep(0.2)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
    assert not failures, failures[:5]
    assert seen.get(old_kid, 0) > 0 and seen.get(new_kid, 0) >= 200, seen
    kids = [k["kid"] for k in auth.jwks()["keys"]]
    assert set(kids) == {old_kid, new_kid}, "the old key stays published while its tokens live"
    _, out, _ = auth.cli("keys", "list")
    states = dict(line.split("\t")[:2] for line in out.splitlines()[1:])
    assert states == {old_kid: "retiring", new_kid: "current"}, out


def test_unknown_kid_refetch_is_bounded(fresh):
    auth = fresh.auth()
    core = fresh.core(auth, COFRE_JWKS_REFRESH_S="3600")  # only the unknown-kid refetch
    secret = auth.add_client("ops", scopes=ALL_SCOPES)
    fresh.secrets.append(secret)
    account = open_account(core, auth.token("ops", secret))
    fetched = jwks_fetches(auth)
    _, out, _ = auth.cli("keys", "rotate", "--now")
    new_kid = out.split("kid: ")[1].split()[0]
    deadline = time.monotonic() + 10
    token = auth.token("ops", secret)
    while kid_of(token) != new_kid:  # cofre-auth picks its new key up within 2 s
        assert time.monotonic() < deadline, "cofre-auth never signed with the new key"
        time.sleep(0.1)
        token = auth.token("ops", secret)
    s = requests.Session()
    start = time.monotonic()
    codes = []
    while time.monotonic() - start < 15:
        r = s.get(core.url(f"/v1/accounts/{account}"), headers=bearer(token), timeout=15)
        codes.append(r.status_code)
        if r.status_code == 200:
            break
        assert r.status_code == 401 and "unknown key" in r.json()["detail"], r.text
        time.sleep(0.01)
    accepted_after = time.monotonic() - start
    assert codes[-1] == 200, f"the new key was never fetched: {codes[-5:]}"
    assert len(codes) > 50, "too few tries to show the refetch is rate-limited"
    # However many unknown-kid requests came, the core fetched the set once more.
    assert jwks_fetches(auth) - fetched == 1
    assert accepted_after <= 10 + 2, accepted_after
    assert core.metric("cofre_token_checks_total", result="unknown_kid") >= len(codes) - 1
