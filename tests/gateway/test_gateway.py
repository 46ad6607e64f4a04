"""The gateway in front of two cofre-core replicas: the walkthrough over HTTPS, routes, headers,
TLS versions, body limits, and one request id and trace id from the client to both logs."""

import json
import os
import re
import socket
import ssl
import subprocess
import uuid

import pytest
import requests

from gw import REPO, is_problem

HEX32 = re.compile(r"^[0-9a-f]{32}$")


def run_walkthrough(gateway_url, ca):
    """The walkthrough exactly as run.sh prints it, run by bash; returns its output lines."""
    text = subprocess.run([os.path.join(REPO, "scripts", "run.sh"), "walkthrough", gateway_url,
                           ca], capture_output=True, text=True, timeout=30, check=True).stdout
    start = text.index("# --- walkthrough")
    end = text.index("# --- end of the walkthrough ---")
    script = text[start:end]
    r = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", script], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, f"walkthrough failed ({r.returncode}): {r.stderr}\n{r.stdout}"
    assert r.stderr == "", r.stderr
    return r.stdout.splitlines()


def check_walkthrough_output(lines):
    """What the walkthrough's comments promise: accounts, a deposit, a transfer and its replay,
    the balances, Alice's two transfers newest first."""
    objs = [json.loads(line) for line in lines if line.startswith("{")]
    bank, alice, bob = (o for o in objs[:3])
    assert bank["flags"]["no_overdraft"] is False and alice["flags"]["no_overdraft"] is True
    deposit, pay = objs[3], objs[4]
    assert (deposit["debit_account_id"], deposit["credit_account_id"], deposit["amount"]) == \
        (bank["id"], alice["id"], 10000), deposit
    assert (pay["debit_account_id"], pay["credit_account_id"], pay["amount"]) == \
        (alice["id"], bob["id"], 2500), pay
    assert "status 201, replayed: true" in lines, lines
    balances = {o["id"]: o["balance"] for o in objs if set(o) == {"id", "balance"}}
    assert balances == {bank["id"]: -10000, alice["id"]: 7500, bob["id"]: 2500}, balances
    listed = [o for o in objs if "reference" in o and "id" not in o]
    assert [o["reference"] for o in listed] == ["rent", "deposit"], listed
    verify = [o for o in objs if "ok" in o]
    if verify:  # cofre-audit runs: the transfer's record, with the ids the gateway gave
        assert verify[-1]["ok"] is True and verify[-1]["records"] >= 5, verify
        audit = [o for o in objs if o.get("type") == "cofre.transfer.posted"]
        assert [o["subject"] for o in audit] == [pay["id"]], audit
        assert HEX32.match(audit[0]["request_id"]), audit
        assert audit[0]["trace_id"] == audit[0]["request_id"], audit
    return bank, alice, bob


def test_walkthrough_over_https(platform):
    """The printed walkthrough works as printed against the gateway's HTTPS port, trusting only
    the development certificate."""
    gw = platform.gateway
    lines = run_walkthrough(gw.https, gw.ca)
    check_walkthrough_output(lines)
    # It went over TLS, through the gateway, to the replicas.
    tls = [o for o in gw.json_lines() if o.get("path", "").startswith("/v1/")]
    assert tls and all(o["tls"] in ("TLSv1.2", "TLSv1.3") for o in tls), tls[:3]


@pytest.mark.parametrize("path", ["/metrics", "/healthz", "/readyz", "/", "/v1/../metrics",
                                  "/v1/%2e%2e/metrics", "/V1/accounts", "/internal/x"])
def test_only_public_routes(platform, path):
    """The services' probes and metrics, and anything outside the routes, are a 404
    problem+json from the gateway itself (no upstream was asked)."""
    gw = platform.gateway
    for base, verify in ((gw.http, True), (gw.https, gw.ca)):
        r = requests.get(base + path, verify=verify, timeout=10)
        is_problem(r, 404, "not_found")
        line = gw.access(r.headers["X-Request-Id"])
        assert line is not None and line["upstream"] == "", line


@pytest.mark.parametrize("path", ["/oauth/token", "/.well-known/jwks.json",
                                  "/v1/audit/events"])
def test_routes_to_absent_services_answer_502_problem(platform, path):
    """cofre-auth and cofre-audit are not running here: their routes are a 502 problem+json,
    never an HTML page, after trying the configured upstream."""
    gw = platform.gateway
    r = requests.get(gw.https + path, verify=gw.ca, timeout=10)
    is_problem(r, 502, "unavailable")
    line = gw.access(r.headers["X-Request-Id"])
    assert line["upstream"] != "" and line["status"] == 502, line


def test_security_headers(platform):
    """One X-Request-Id and one Cache-Control (the core's are replaced, not doubled), nosniff,
    no server version, HSTS on HTTPS only."""
    gw = platform.gateway
    for base, verify, hsts in ((gw.https, gw.ca, True), (gw.http, True, False)):
        r = requests.get(base + "/v1/accounts?owner=nobody", verify=verify, timeout=10)
        assert r.status_code == 200, r.text
        raw = r.raw.headers
        assert raw.getlist("X-Request-Id") == [r.headers["X-Request-Id"]]
        assert HEX32.match(r.headers["X-Request-Id"])
        assert raw.getlist("Cache-Control") == ["no-store"]
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        assert r.headers["Server"] == "nginx"
        assert ("Strict-Transport-Security" in r.headers) == hsts, r.headers


def handshake(port, ca, version):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(ca)
    ctx.minimum_version = version
    ctx.maximum_version = version
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        with ctx.wrap_socket(sock, server_hostname="localhost") as tls:
            return tls.version()


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1:DeprecationWarning")
def test_tls_versions(platform):
    """TLS 1.2 and 1.3 are served with the development certificate; 1.0 and 1.1 are refused by
    the server (the client here offers them)."""
    gw = platform.gateway
    assert handshake(gw.https_port, gw.ca, ssl.TLSVersion.TLSv1_3) == "TLSv1.3"
    assert handshake(gw.https_port, gw.ca, ssl.TLSVersion.TLSv1_2) == "TLSv1.2"
    for old in (ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1):
        with pytest.raises(ssl.SSLError):
            handshake(gw.https_port, gw.ca, old)


def new_account(base, verify, **extra):
    body = {"owner": "gw-test", "currency": "EUR"}
    body.update(extra)
    r = requests.post(base + "/v1/accounts", json=body, verify=verify, timeout=10,
                      headers={"Idempotency-Key": str(uuid.uuid4())})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def test_request_and_trace_id_in_both_logs(platform):
    """Without a traceparent the gateway starts one whose trace id is its request id; both ids
    are in its access log line and in the core's log line of that request."""
    gw = platform.gateway
    r = requests.post(gw.https + "/v1/accounts", json={"owner": "trace", "currency": "EUR"},
                      verify=gw.ca, timeout=10, headers={"Idempotency-Key": str(uuid.uuid4())})
    assert r.status_code == 201, r.text
    rid = r.headers["X-Request-Id"]
    assert HEX32.match(rid), rid
    access = gw.access(rid)
    assert access is not None, f"no access line for {rid}"
    assert access["trace_id"] == rid, access
    assert re.match(rf"^00-{rid}-[0-9a-f]{{16}}-01$", access["traceparent"]), access
    assert access["upstream_status"] == "201" and access["status"] == 201, access
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$", access["ts"]), access
    core = platform.core_line(lambda o: o.get("request_id") == rid)
    assert core is not None, f"no core log line with request_id {rid}"
    assert core["trace_id"] == rid and core["path"] == "/v1/accounts", core


def test_client_traceparent_is_kept(platform):
    """A valid traceparent from the client keeps its trace id through the gateway into the
    core; a malformed one is replaced by a new trace; a client's X-Request-Id is not trusted."""
    gw = platform.gateway
    trace = uuid.uuid4().hex
    r = requests.get(gw.http + "/v1/accounts?owner=t", timeout=10, headers={
        "traceparent": f"00-{trace}-00f067aa0ba902b7-01", "X-Request-Id": "client-chosen"})
    rid = r.headers["X-Request-Id"]
    assert rid != "client-chosen" and HEX32.match(rid)
    assert gw.access(rid)["trace_id"] == trace
    core = platform.core_line(lambda o: o.get("request_id") == rid)
    assert core is not None and core["trace_id"] == trace, core

    r = requests.get(gw.http + "/v1/accounts?owner=t", timeout=10,
                     headers={"traceparent": "00-not-a-trace-01"})
    rid = r.headers["X-Request-Id"]
    assert gw.access(rid)["trace_id"] == rid
    core = platform.core_line(lambda o: o.get("request_id") == rid)
    assert core is not None and core["trace_id"] == rid, core


def test_body_limits(platform):
    """64 KiB is the limit (one byte more is the gateway's 413 problem+json, and the core is
    not asked), except /v1/transfers/batch: 1000 transfers (well over 64 KiB) pass, 300 KiB
    does not."""
    gw = platform.gateway
    headers = {"Idempotency-Key": str(uuid.uuid4()), "Content-Type": "application/json"}
    for size in (100 * 1024, 64 * 1024 + 1):
        r = requests.post(gw.https + "/v1/transfers", data=b"x" * size, headers=headers,
                          verify=gw.ca, timeout=10)
        is_problem(r, 413, "payload_too_large")
        assert gw.access(r.headers["X-Request-Id"])["upstream"] == ""
    # At the limit the body reaches the core, which judges it (not JSON: 400 from the core).
    r = requests.post(gw.https + "/v1/transfers", data=b"x" * (64 * 1024), headers=headers,
                      verify=gw.ca, timeout=10)
    assert r.status_code == 400, r.text
    assert gw.access(r.headers["X-Request-Id"])["upstream_status"] == "400"

    a = new_account(gw.https, gw.ca, flags={"no_overdraft": False})
    b = new_account(gw.https, gw.ca)
    batch = {"atomic": False, "transfers": [
        {"id": str(uuid.uuid4()), "debit_account_id": a, "credit_account_id": b, "amount": 1,
         "currency": "EUR", "reference": "batch through the gateway"} for _ in range(1000)]}
    data = json.dumps(batch).encode()
    assert len(data) > 128 * 1024
    r = requests.post(gw.https + "/v1/transfers/batch", data=data, verify=gw.ca, timeout=30,
                      headers={"Idempotency-Key": str(uuid.uuid4()),
                               "Content-Type": "application/json"})
    assert r.status_code == 201, r.text[:500]
    got = requests.get(gw.https + f"/v1/accounts/{b}", verify=gw.ca, timeout=10).json()
    assert got["balance"] == 1000, got
    r = requests.post(gw.https + "/v1/transfers/batch", data=b"x" * (300 * 1024),
                      verify=gw.ca, timeout=10, headers=headers)
    is_problem(r, 413, "payload_too_large")


def test_core_errors_pass_through(platform):
    """The core's own problems reach the client unchanged (the gateway only answers for
    itself): a POST without Idempotency-Key is the core's 400 invalid_request."""
    gw = platform.gateway
    r = requests.post(gw.https + "/v1/transfers", json={}, verify=gw.ca, timeout=10)
    body = is_problem(r, 400, "invalid_request")
    assert "Idempotency-Key" in body["detail"], body
    assert body["request_id"] == r.headers["X-Request-Id"], body
