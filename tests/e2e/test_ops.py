"""Operations surface: probes, request ids, trace context in logs, access logs, routing errors,
and /metrics (promtool-clean, route labels are templates, never raw ids)."""

import re
import subprocess
import uuid

import pytest

from cofre_api import Api, assert_problem, new_key
from cofre_server import SLOW


def test_probes(api):
    """/healthz and /readyz answer 200 with a JSON status while the server runs."""
    r = api.get("/healthz")
    assert r.status_code == 200 and r.json()["status"] == "ok", r.text
    r = api.get("/readyz")
    assert r.status_code == 200 and r.json()["status"] in ("ok", "ready"), r.text


def test_every_response_has_request_id(api):
    """X-Request-Id is on every kind of answer: probe, 201, 200, 400, 404, 405, 415."""
    acct = api.post("/v1/accounts", {"owner": "rid", "currency": "EUR"})
    responses = [
        api.get("/healthz"),
        acct,
        api.get(f"/v1/accounts/{acct.json().get('id', uuid.uuid4())}"),
        api.get("/v1/accounts", params={"limit": "0"}),
        api.get("/no/such/path"),
        api.request("DELETE", "/v1/accounts"),
        api.post("/v1/accounts", raw=b"{}", content_type="text/plain"),
        api.get("/metrics"),
    ]
    ids = []
    for r in responses:
        rid = r.headers.get("X-Request-Id")
        assert rid, f"{r.request.method} {r.request.url} ({r.status_code}) has no X-Request-Id"
        ids.append(rid)
    assert len(set(ids)) == len(ids), f"request ids repeat: {ids}"


def test_valid_client_request_id_is_echoed(api):
    """A client X-Request-Id of [A-Za-z0-9._-]{1,128} is echoed, also inside problems; an
    invalid one is replaced by a generated id."""
    rid = "e2e." + uuid.uuid4().hex + "_x-1"
    r = api.get("/healthz", headers={"X-Request-Id": rid})
    assert r.headers.get("X-Request-Id") == rid
    r = api.get("/v1/accounts/" + str(uuid.uuid4()), headers={"X-Request-Id": rid})
    p = assert_problem(r, 404, "account_not_found")
    assert p["request_id"] == rid
    for bad in ("has space", "x" * 129, "semi;colon"):
        r = api.get("/healthz", headers={"X-Request-Id": bad})
        got = r.headers.get("X-Request-Id")
        assert got and got != bad, f"invalid request id {bad!r} was taken as {got!r}"


def test_traceparent_reaches_logs(core, api):
    """A client traceparent's trace id is the trace_id of every log line of that request; the
    access line has the contract's fields."""
    trace_id = uuid.uuid4().hex
    span = uuid.uuid4().hex[:16]
    rid = "tp-" + uuid.uuid4().hex
    r = api.post("/v1/accounts", {"owner": "tracer", "currency": "EUR"},
                 headers={"traceparent": f"00-{trace_id}-{span}-01", "X-Request-Id": rid})
    assert r.status_code == 201, r.text
    line = core.wait_log(lambda o: o.get("request_id") == rid and o.get("msg") == "request")
    assert line is not None, f"no access log line for request {rid}"
    for o in core.logs():
        if o.get("request_id") == rid:
            assert o.get("trace_id") == trace_id, o
    assert line["method"] == "POST" and line["path"] == "/v1/accounts", line
    assert line["route"] == "/v1/accounts" and line["status"] == 201, line
    assert isinstance(line["duration_ms"], (int, float)) and line["duration_ms"] >= 0, line
    assert re.fullmatch(r"[0-9a-f]{16}", line["span_id"]) and line["span_id"] != span, line
    assert line["level"] == "info" and line["service"] == "cofre-core", line


def test_log_lines_are_json_with_contract_fields(core, api):
    """Every stdout line is a JSON object with ts (RFC 3339 UTC, microseconds), level, service,
    msg; every API request (answered or not) gets exactly one access line."""
    rids = []
    for i, path in enumerate(["/nope", f"/v1/accounts/{uuid.uuid4()}", "/v1/accounts",
                              "/v1/accounts?limit=0"]):
        rid = f"acc-{i}-{uuid.uuid4().hex}"
        rids.append(rid)
        api.get(path, headers={"X-Request-Id": rid})
    assert core.wait_log(lambda o: o.get("request_id") == rids[-1]) is not None
    logs = core.logs()
    assert logs, "no log lines"
    for o in logs:
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", o["ts"]), o
        assert o["level"] in ("debug", "info", "warn", "error"), o
        assert o["service"] == "cofre-core" and isinstance(o["msg"], str), o
    for rid in rids:
        access = [o for o in logs if o.get("request_id") == rid and o.get("msg") == "request"]
        assert len(access) == 1, f"{len(access)} access lines for {rid}"
        assert re.fullmatch(r"[0-9a-f]{32}", access[0]["trace_id"]), access[0]


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics"])
def test_probe_access_lines_are_debug_level(core_factory, path):
    """Every request gets one access line; for probes and scrapes (called every few seconds by
    the kubelet and Prometheus) that line is at debug level, so at the default info level they
    do not drown the log (docs/operations.md). At debug, the line is there."""
    for level, expected in (("info", 0), ("debug", 1)):
        core = core_factory(env={"COFRE_LOG_LEVEL": level})
        api = Api(core.base)
        rid = "probe-" + uuid.uuid4().hex
        assert api.get(path, headers={"X-Request-Id": rid}).status_code == 200
        api.get("/nope", headers={"X-Request-Id": rid + "-next"})
        assert core.wait_log(lambda o: o.get("request_id") == rid + "-next") is not None
        access = [o for o in core.logs()
                  if o.get("request_id") == rid and o.get("msg") == "request"]
        assert len(access) == expected, f"{len(access)} access lines for GET {path} at {level}"
        if expected:
            assert access[0]["level"] == "debug"
            assert access[0]["route"] == path and access[0]["status"] == 200, access[0]
        api.close()


def test_unknown_path_is_404(api):
    for path in ("/nope", "/v1", "/v1/account", "/v1/accounts/x/y/z", "/v2/accounts"):
        assert_problem(api.get(path), 404, "not_found")


@pytest.mark.parametrize("method,path,allowed", [
    ("DELETE", "/v1/accounts", {"GET", "POST"}),
    ("PUT", "/v1/transfers", {"POST"}),
    ("GET", "/v1/transfers", {"POST"}),
    ("GET", "/v1/transfers/batch", {"POST"}),
    ("POST", "/v1/accounts/{id}", {"GET"}),
    ("PATCH", "/v1/accounts/{id}/transfers", {"GET"}),
    ("POST", "/healthz", {"GET"}),
])
def test_wrong_method_is_405_with_allow(api, method, path, allowed):
    """A known path with another method: 405 method_not_allowed and Allow naming the methods."""
    path = path.replace("{id}", str(uuid.uuid4()))
    r = api.request(method, path, headers={"Idempotency-Key": new_key(),
                                           "Content-Type": "application/json"}, data=b"{}")
    assert_problem(r, 405, "method_not_allowed")
    allow = {m.strip() for m in r.headers.get("Allow", "").split(",") if m.strip()}
    assert allowed <= allow and allow <= allowed | {"HEAD", "OPTIONS"}, (
        f"Allow: {r.headers.get('Allow')!r}, expected {allowed}")


def promtool_check(text):
    r = subprocess.run(["promtool", "check", "metrics"], input=text.encode(),
                       capture_output=True, timeout=30 * SLOW)
    return r.returncode, (r.stdout + r.stderr).decode()


def test_metrics_pass_promtool(api):
    """After traffic on every route kind (including 404s and errors), /metrics is Prometheus
    text format 0.0.4 and `promtool check metrics` finds nothing."""
    a = api.open_account(owner="m1")
    api.get(f"/v1/accounts/{a['id']}")
    api.get(f"/v1/accounts/{uuid.uuid4()}")
    api.get("/no/such")
    api.post("/v1/transfers", raw=b"{", content_type="application/json")
    r = api.get("/metrics")
    assert r.status_code == 200
    ctype = r.headers.get("Content-Type", "")
    assert ctype.startswith("text/plain") and "0.0.4" in ctype, ctype
    rc, out = promtool_check(r.text)
    assert rc == 0, f"promtool check metrics failed ({rc}):\n{out}"
    for family in ("cofre_build_info", "cofre_http_requests_total",
                   "cofre_http_request_duration_seconds", "process_resident_memory_bytes"):
        assert f"# TYPE {family} " in r.text, f"{family} missing"


def test_metric_routes_are_templates(api):
    """cofre_http_requests_total labels routes with templates ("/v1/accounts/{id}"), never raw
    ids or raw unknown paths, so the series count stays bounded."""
    a = api.open_account(owner="m2")
    ids = [a["id"], str(uuid.uuid4())]
    for i in ids:
        api.get(f"/v1/accounts/{i}")
        api.get(f"/v1/accounts/{i}/transfers")
        api.get(f"/v1/transfers/{i}")
    api.get("/raw/path/" + uuid.uuid4().hex)
    text = api.get("/metrics").text
    routes = set(re.findall(r'^cofre_http_requests_total\{[^}]*route="([^"]*)"', text, re.M))
    for want in ("/v1/accounts", "/v1/accounts/{id}", "/v1/accounts/{id}/transfers",
                 "/v1/transfers/{id}"):
        assert want in routes, f"no cofre_http_requests_total series for route {want}: {routes}"
    uuid_re = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-|[0-9a-f]{32}")
    for line in text.splitlines():
        if line.startswith("cofre_http_"):
            assert not uuid_re.search(line), f"raw id in a metric label: {line}"
    for route in routes:
        assert route == "unmatched" or route.startswith("/"), route
        assert "/raw/path" not in route, route


def scrape(api):
    """The /metrics samples as {(name, frozenset(labels)): value}."""
    out = {}
    for line in api.get("/metrics").text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.fullmatch(r'([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)(?: \d+)?', line)
        assert m, f"unparseable sample line: {line!r}"
        labels = frozenset(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"',
                                      m.group(2) or ""))
        out[(m.group(1), labels)] = float(m.group(3))
    return out


def delta(before, after, name, **labels):
    key = (name, frozenset(labels.items()))
    return after.get(key, 0.0) - before.get(key, 0.0)


def test_metric_counters_count(api):
    """Counters move by exactly what happened: requests per route/method/code, transfers by
    outcome, posted amounts by currency, idempotency replays (docs/metrics.md)."""
    s = api.settlement("EUR")
    a = api.open_account(owner="counted")
    b = api.open_account(owner="counted-2")
    before = scrape(api)
    for _ in range(3):
        api.get(f"/v1/accounts/{a['id']}")
    api.get(f"/v1/accounts/{uuid.uuid4()}")
    api.move(s, a, 100)
    api.move(a, b, 40)
    r = api.transfer(b, a, 1000)
    assert r.status_code == 422
    k = new_key()
    body = {"debit_account_id": a["id"], "credit_account_id": b["id"], "amount": 5,
            "currency": "EUR"}
    assert api.post("/v1/transfers", body, key=k).status_code == 201
    assert api.post("/v1/transfers", body, key=k).status_code == 201  # replayed
    after = scrape(api)
    route = "/v1/accounts/{id}"
    assert delta(before, after, "cofre_http_requests_total", route=route, method="GET",
                 code="200") == 3
    assert delta(before, after, "cofre_http_requests_total", route=route, method="GET",
                 code="404") == 1
    assert delta(before, after, "cofre_http_requests_total", route="/v1/transfers",
                 method="POST", code="201") == 4
    assert delta(before, after, "cofre_ledger_transfers_total", outcome="posted") == 3
    assert delta(before, after, "cofre_ledger_transfers_total", outcome="insufficient_funds") == 1
    assert delta(before, after, "cofre_ledger_amount_posted_minor_total", currency="EUR") == 145
    assert delta(before, after, "cofre_idempotency_replays_total") == 1


def test_libpq_is_loaded_only_for_postgresql(core, backend):
    """PostgreSQL's client library (and Kerberos, LDAP, GnuTLS behind it: about 3 MiB resident)
    is loaded only when COFRE_DB is a PostgreSQL URL (include/cofre/pq.h)."""
    with open(f"/proc/{core.proc.pid}/maps") as f:
        mapped = f.read()
    assert ("libpq.so" in mapped) == (backend.name == "postgres")
