"""Brute force: failed authentications are throttled per client id and per source address,
with 429 and a Retry-After, before any secret is hashed; other clients are not harmed; and
behind a trusted proxy the address is the one X-Forwarded-For names."""

import time

import requests

from authlib import SLOW


def wrong(auth, client, headers=None):
    return requests.post(auth.url("/oauth/token"), data={"grant_type": "client_credentials"},
                         auth=(client, "not-the-secret-" + "x" * 30), headers=headers or {},
                         timeout=15)


def test_wrong_secrets_get_429_and_others_still_work(fresh):
    """Five wrong secrets for one client are answered 401; the sixth try is 429 with a
    Retry-After (even with the right secret), without hashing; another client's right secret
    from the same address still gets its token; after Retry-After the client may try again."""
    auth = fresh.auth(COFRE_AUTH_THROTTLE_CLIENT="5/10", COFRE_AUTH_THROTTLE_ADDRESS="100/60")
    victim = auth.add_client("victim", scopes="accounts:read")
    bystander = auth.add_client("bystander", scopes="accounts:read")
    fresh.secrets += [victim, bystander]
    for i in range(5):
        r = wrong(auth, "victim")
        assert r.status_code == 401, (i, r.status_code, r.text)
    hashes = auth.metric("cofre_auth_hash_seconds_count")
    r = wrong(auth, "victim")
    assert r.status_code == 429, r.text
    retry = int(r.headers["Retry-After"])
    assert 1 <= retry <= 10, retry
    assert r.headers["Content-Type"].startswith("application/problem+json")
    assert r.json()["code"] == "rate_limited"
    right = auth.token_response("victim", victim)
    assert right.status_code == 429, "the right secret must not reveal itself while throttled"
    assert auth.metric("cofre_auth_hash_seconds_count") == hashes, "a throttled try was hashed"
    assert auth.token_response("bystander", bystander).status_code == 200
    time.sleep(retry + 0.2)
    assert auth.token_response("victim", victim).status_code == 200
    assert auth.metric("cofre_auth_failures_total", reason="throttled") >= 2
    assert auth.metric("cofre_auth_failures_total", reason="bad_secret") == 5


def test_one_address_trying_many_ids_is_throttled(fresh):
    """Spraying wrong secrets over many client ids from one address: the address runs out
    (429 for everything from it, a right secret included)."""
    auth = fresh.auth(COFRE_AUTH_THROTTLE_CLIENT="5/60", COFRE_AUTH_THROTTLE_ADDRESS="8/60")
    secret = auth.add_client("real", scopes="accounts:read")
    fresh.secrets.append(secret)
    codes = [wrong(auth, f"guess-{i}").status_code for i in range(8)]
    assert codes == [401] * 8, codes
    assert wrong(auth, "guess-new").status_code == 429
    assert auth.token_response("real", secret).status_code == 429


def test_trusted_proxy_forwarded_address(fresh):
    """Behind a trusted proxy each client address has its own budget; from an untrusted peer
    X-Forwarded-For is ignored (it cannot buy a new budget per forged header)."""
    auth = fresh.auth(COFRE_AUTH_THROTTLE_CLIENT="100/60", COFRE_AUTH_THROTTLE_ADDRESS="3/60",
                      COFRE_AUTH_TRUSTED_PROXIES="127.0.0.1")
    for i in range(3):
        assert wrong(auth, f"a{i}", {"X-Forwarded-For": "10.0.0.1"}).status_code == 401
    assert wrong(auth, "a9", {"X-Forwarded-For": "10.0.0.1"}).status_code == 429
    assert wrong(auth, "b0", {"X-Forwarded-For": "192.0.2.7, 10.0.0.2"}).status_code == 401
    untrusted = fresh.auth(COFRE_AUTH_THROTTLE_CLIENT="100/60",
                           COFRE_AUTH_THROTTLE_ADDRESS="3/60")
    for i in range(3):
        assert wrong(untrusted, f"c{i}", {"X-Forwarded-For": f"10.0.1.{i}"}).status_code == 401
    assert wrong(untrusted, "c9", {"X-Forwarded-For": "10.0.1.99"}).status_code == 429


def test_throttle_settings_are_validated(fresh, tmp_path):
    """A malformed rate stops the service at start with one line naming the variable."""
    import subprocess

    from authlib import Auth, binary
    a = Auth(tmp_path, COFRE_AUTH_THROTTLE_CLIENT="lots")
    r = subprocess.run([binary("cofre-auth")], env=a.env, capture_output=True, text=True,
                       timeout=10 * SLOW)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "COFRE_AUTH_THROTTLE_CLIENT" in lines[0], r.stderr
