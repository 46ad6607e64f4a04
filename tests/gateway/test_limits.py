"""Rate limits on the default configuration: a burst over the limit of one client address gets
429 problem+json with Retry-After, and /oauth/token is limited tighter than the API."""

import re
import subprocess
import threading
import time

import pytest
import requests

from gw import GATEWAY_DIR, Platform, is_problem


def defaults():
    out = subprocess.run([f"{GATEWAY_DIR}/render.sh", "--list"], capture_output=True, text=True,
                         check=True, timeout=30).stdout
    return dict(line.split(None, 1) for line in out.strip().splitlines())


def rate(value):
    n, unit = re.match(r"^(\d+)r/([sm])$", value).groups()
    return int(n) / (1 if unit == "s" else 60)


@pytest.fixture(scope="module")
def limited():
    """A gateway on the default limits, in front of one replica."""
    p = Platform(replicas=1)
    yield p
    p.close()


def burst(url, total, threads, verify=True):
    """total GETs from threads kept-alive clients as fast as they go; [(status, response)],
    and the seconds it took."""
    out, lock = [], threading.Lock()
    per = total // threads

    def client():
        with requests.Session() as s:
            for _ in range(per):
                r = s.get(url, timeout=10, verify=verify)
                with lock:
                    out.append(r)

    ts = [threading.Thread(target=client) for _ in range(threads)]
    t0 = time.monotonic()
    for t in ts:
        t.start()
    for t in ts:
        t.join(timeout=60)
    return out, time.monotonic() - t0


def test_api_burst_over_the_limit_gets_429(limited):
    """Over burst + rate x elapsed requests from one address, the rest are 429 problem+json
    with Retry-After; never more than the limit allows got through."""
    d = defaults()
    api_rate, api_burst = rate(d["COFRE_GW_API_RATE"]), int(d["COFRE_GW_API_BURST"])
    total = 3 * api_burst
    gw = limited.gateway
    out, elapsed = burst(gw.https + "/v1/accounts?owner=burst", total, 12, verify=gw.ca)
    assert len(out) == total
    ok = [r for r in out if r.status_code == 200]
    refused = [r for r in out if r.status_code == 429]
    assert len(ok) + len(refused) == total, {r.status_code for r in out}
    assert refused, f"no 429 among {total} requests in {elapsed:.2f}s"
    # +2: the limiter counts in milliseconds and the first request starts the clock.
    assert len(ok) <= api_burst + api_rate * elapsed + 2, (len(ok), elapsed)
    assert len(ok) >= api_burst, len(ok)
    body = is_problem(refused[0], 429, "rate_limited")
    assert body["request_id"] == refused[0].headers["X-Request-Id"]
    assert refused[0].headers["Retry-After"] == "1"
    # The limiter refused them at the gateway: the core never saw a 429's request.
    line = gw.access(refused[-1].headers["X-Request-Id"])
    assert line["status"] == 429 and line["upstream"] == "", line


def test_token_endpoint_is_limited_tighter(limited):
    """/oauth/token has its own, tighter limit: of a quick series far under the API's burst,
    only its burst (plus its rate) reaches cofre-auth (absent here: those are 502)."""
    d = defaults()
    tok_rate, tok_burst = rate(d["COFRE_GW_TOKEN_RATE"]), int(d["COFRE_GW_TOKEN_BURST"])
    assert tok_rate < rate(d["COFRE_GW_API_RATE"]) and tok_burst < int(d["COFRE_GW_API_BURST"])
    time.sleep(3)  # the API test's excess drains
    gw = limited.gateway
    total = 3 * tok_burst
    t0 = time.monotonic()
    with requests.Session() as s:
        out = [s.post(gw.http + "/oauth/token", data={"grant_type": "client_credentials"},
                      timeout=10) for _ in range(total)]
    elapsed = time.monotonic() - t0
    passed = [r for r in out if r.status_code != 429]
    refused = [r for r in out if r.status_code == 429]
    assert refused, f"no 429 among {total} token requests in {elapsed:.2f}s"
    assert len(passed) <= tok_burst + tok_rate * elapsed + 2, (len(passed), elapsed)
    assert {r.status_code for r in passed} == {502}, {r.status_code for r in passed}
    is_problem(refused[0], 429, "rate_limited")
    # The API is not affected by the token limit.
    r = requests.get(gw.http + "/v1/accounts?owner=x", timeout=10)
    assert r.status_code == 200, r.text
