"""The live test: the built services (every one of services.txt whose binary exists) run on
loopback, run-local.sh starts a real Prometheus and Alertmanager scraping them, a client
drives ledger traffic, and then every recording rule, every alert expression and every
dashboard panel query is evaluated through Prometheus's HTTP API. None may error, and the
overview dashboard's panels must return data. Every wait is bounded; everything started is
stopped, also on failure."""
import json
import os
import random
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

import pytest

import obs

BIN_DIR = os.environ.get("COFRE_BIN_DIR", os.path.join(obs.ROOT, "build", "bin"))
WAIT_S = 60


def free(port):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def pick_ports():
    """A port offset under which every service port is free, and two free monitoring ports."""
    with open(os.path.join(obs.OBS, "services.txt"), encoding="utf-8") as f:
        ports = [int(ln.split()[1]) for ln in f if ln.split() and not ln.startswith("#")]
    for offset in random.sample(range(20000, 50000, 97), 50):
        wanted = [p + offset for p in ports] + [9090 + offset, 9093 + offset]
        if all(free(p) for p in wanted):
            return offset, 9090 + offset, 9093 + offset
    raise RuntimeError("no free port range")


def http(method, url, body=None, headers=None, timeout=5):
    """(status, headers, parsed JSON or text) of one request; never raises on HTTP status."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            raw, status, hdrs = r.read(), r.status, r.headers
    except urllib.error.HTTPError as e:
        raw, status, hdrs = e.read(), e.code, e.headers
    try:
        return status, hdrs, json.loads(raw)
    except ValueError:
        return status, hdrs, raw.decode(errors="replace")


class Platform:
    """The running services and monitoring of one test module."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.offset, self.prom_port, self.am_port = pick_ports()
        self.env = dict(os.environ, COFRE_BIN_DIR=BIN_DIR,
                        COFRE_OBS_PORT_OFFSET=str(self.offset))
        self.services_dir = os.path.join(tmp, "services")
        self.monitor = None
        self.urls = {}

    def start(self):
        os.makedirs(self.services_dir)
        r = subprocess.run([os.path.join(obs.OBS, "local-services.sh"), "start",
                            self.services_dir], env=self.env, capture_output=True, text=True,
                           timeout=WAIT_S * 4)
        assert r.returncode == 0, r.stdout + r.stderr
        with open(os.path.join(self.services_dir, "urls")) as f:
            self.urls = dict(line.split() for line in f if line.strip())
        assert "cofre-core" in self.urls, "cofre-core did not start"
        env = dict(self.env, COFRE_PROM_PORT=str(self.prom_port),
                   COFRE_AM_PORT=str(self.am_port), COFRE_OBS_INTERVAL="1s",
                   COFRE_OBS_DIR=os.path.join(self.tmp, "monitoring"),
                   COFRE_OBS_TARGETS=os.path.join(self.services_dir, "targets", "cofre.json"))
        os.makedirs(env["COFRE_OBS_DIR"])
        self.monitor_log = open(os.path.join(self.tmp, "run-local.out"), "w+")
        self.monitor = subprocess.Popen([os.path.join(obs.OBS, "run-local.sh")], env=env,
                                        stdout=self.monitor_log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        self.wait_for(lambda: "monitoring ready" in self.monitor_output(), "run-local.sh")

    def monitor_output(self):
        self.monitor_log.seek(0)
        out = self.monitor_log.read()
        if self.monitor.poll() is not None:
            raise AssertionError(f"run-local.sh exited {self.monitor.returncode}: {out}")
        return out

    def stop(self):
        if self.monitor is not None and self.monitor.poll() is None:
            self.monitor.send_signal(signal.SIGTERM)
            try:
                self.monitor.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.monitor.pid, signal.SIGKILL)
                self.monitor.wait(timeout=10)
        subprocess.run([os.path.join(obs.OBS, "local-services.sh"), "stop", self.services_dir],
                       env=self.env, timeout=WAIT_S)

    @staticmethod
    def wait_for(predicate, what, timeout_s=WAIT_S):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.5)
        raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")

    def prom(self, path, **params):
        url = f"http://127.0.0.1:{self.prom_port}{path}?{urllib.parse.urlencode(params)}"
        status, _, body = http("GET", url, timeout=15)
        return status, body

    def query(self, expr):
        status, body = self.prom("/api/v1/query", query=expr)
        assert status == 200 and body["status"] == "success", f"{expr}: {body}"
        return body["data"]["result"]

    def query_range(self, expr, minutes=5):
        end = time.time()
        status, body = self.prom("/api/v1/query_range", query=expr, start=end - minutes * 60,
                                 end=end, step="5")
        return status, body


def drive_traffic(core):
    """Ledger traffic of every kind the dashboards show: accounts, posted transfers,
    rejections, idempotent replays, reads, 404s."""
    def post(path, body, key):
        return http("POST", core + path, body, {"Idempotency-Key": key})

    s, _, bank = post("/v1/accounts", {"owner": "obs", "currency": "EUR",
                                       "flags": {"no_overdraft": False}}, "obs-bank")
    assert s == 201, bank
    customers = []
    for i in range(3):
        s, _, acct = post("/v1/accounts", {"owner": "obs", "currency": "EUR"}, f"obs-c{i}")
        assert s == 201, acct
        customers.append(acct["id"])
    for i in range(40):
        body = {"debit_account_id": bank["id"], "credit_account_id": customers[i % 3],
                "amount": 100 + i, "currency": "EUR"}
        s, _, t = post("/v1/transfers", body, f"obs-t{i}")
        assert s == 201, t
    s, hdrs, _ = post("/v1/transfers", {"debit_account_id": bank["id"],
                                        "credit_account_id": customers[0], "amount": 100,
                                        "currency": "EUR"}, "obs-t0")
    assert s == 201 and hdrs.get("Idempotency-Replayed") == "true"
    s, _, p = post("/v1/transfers", {"debit_account_id": customers[1],
                                     "credit_account_id": customers[2],
                                     "amount": 10 ** 12, "currency": "EUR"}, "obs-nsf")
    assert s == 422 and p["code"] == "insufficient_funds", p
    for acct in customers:
        assert http("GET", f"{core}/v1/accounts/{acct}")[0] == 200
    assert http("GET", f"{core}/v1/accounts/{uuid.uuid4()}")[0] == 404
    assert http("GET", f"{core}/no-such-path")[0] == 404


@pytest.fixture(scope="module")
def platform():
    if not os.path.exists(os.path.join(BIN_DIR, "cofre-core")):
        pytest.fail(f"{BIN_DIR}/cofre-core not built (make build)")
    with tempfile.TemporaryDirectory(prefix="cofre-obs-live-") as tmp:
        p = Platform(tmp)
        try:
            p.start()
            jobs = set(p.urls)
            p.wait_for(lambda: {r["metric"]["job"] for r in p.query("up == 1")} >= jobs,
                       f"Prometheus to scrape {sorted(jobs)}")
            # Traffic in two waves a few scrapes apart, so that rates have two points.
            drive_traffic(p.urls["cofre-core"])
            time.sleep(3)
            for _ in range(20):
                http("GET", p.urls["cofre-core"] + "/healthz")
            p.wait_for(lambda: p.query(
                'sum(rate(cofre_ledger_transfers_total{outcome="posted"}[1m])) > 0'),
                "a transfer rate")
            p.wait_for(lambda: p.query("job:cofre_http_requests:rate5m"),
                       "the recording rules' first evaluation")
            yield p
        finally:
            p.stop()


def test_every_service_is_scraped(platform):
    """Each started service is an `up` target under its job name, with cofre_build_info."""
    up = {r["metric"]["job"]: r["value"][1] for r in platform.query("up")}
    for job in platform.urls:
        assert up.get(job) == "1", (job, up)
        info = platform.query(f'cofre_build_info{{job="{job}"}}')
        assert info and info[0]["metric"]["service"] == job, info


def test_rules_loaded_and_healthy(platform):
    """Prometheus loaded every rule of the rule files, and none has an evaluation error."""
    status, body = platform.prom("/api/v1/rules")
    assert status == 200
    loaded = [r for g in body["data"]["groups"] for r in g["rules"]]
    assert len(loaded) == len(obs.rules())
    bad = [(r["name"], r.get("lastError")) for r in loaded
           if r.get("health") == "err" or r.get("lastError")]
    assert not bad, bad


def test_every_rule_expression_evaluates(platform):
    """Every recording rule and alert expression evaluates without error."""
    for rule in obs.rules():
        platform.query(rule["expr"])


def test_red_recording_rules_have_data(platform):
    """The RED and ledger recordings the overview needs hold data for cofre-core."""
    for expr in ('job:cofre_http_requests:rate5m{job="cofre-core"}',
                 'job:cofre_http_errors:ratio_rate5m{job="cofre-core"}',
                 'outcome:cofre_ledger_transfers:rate5m{outcome="posted"}'):
        assert platform.query(expr), expr
    ratio = float(platform.query('job:cofre_http_errors:ratio_rate5m{job="cofre-core"}')[0]
                  ["value"][1])
    assert ratio == 0.0, "cofre-core answered 5xx to the test traffic"


def test_no_alert_fires_on_a_healthy_platform(platform):
    """A healthy platform under light traffic raises no alert, firing or pending (latency
    SLOs aside: a busy 2-core CI machine may legitimately make a few requests slow)."""
    time.sleep(2)
    assert platform.query('ALERTS{slo!~".*-latency"}') == []


def test_alertmanager_is_wired(platform):
    """Prometheus found the local Alertmanager, which is up with the production routes."""
    status, body = platform.prom("/api/v1/alertmanagers")
    assert [a["url"] for a in body["data"]["activeAlertmanagers"]] == [
        f"http://127.0.0.1:{platform.am_port}/api/v2/alerts"]
    status, _, st = http("GET", f"http://127.0.0.1:{platform.am_port}/api/v2/status")
    assert status == 200 and "pagerduty" in st["config"]["original"]


def test_every_dashboard_query_evaluates(platform):
    """Every panel query of every dashboard runs as a range query without error."""
    errors = []
    for d in obs.dashboards():
        for title, ref, expr in obs.panel_queries(d):
            status, body = platform.query_range(expr)
            if status != 200 or body.get("status") != "success":
                errors.append((d["uid"], title, ref, expr, body))
    assert not errors, errors


def test_overview_panels_return_data(platform):
    """Every panel of the overview dashboard shows data for the running platform."""
    (overview,) = [d for d in obs.dashboards() if d["uid"] == "cofre-overview"]
    empty = []
    for title, ref, expr in obs.panel_queries(overview):
        status, body = platform.query_range(expr)
        assert status == 200, (title, body)
        if not body["data"]["result"]:
            empty.append((title, ref, expr))
    assert not empty, f"overview panels without data: {empty}"


def test_logs_fit_the_shipper(platform):
    """Every log line of every service is one JSON object with the fields the log shipper
    parses (ts in the parser's format, level, service), and request lines carry trace_id."""
    import re
    ts_format = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
    for job in platform.urls:
        with open(os.path.join(platform.services_dir, f"{job}.log"), encoding="utf-8") as f:
            lines = [ln for ln in f if ln.strip()]
        assert lines, job
        requests = 0
        for line in lines:
            rec = json.loads(line)
            assert ts_format.match(rec["ts"]), rec["ts"]
            assert rec["level"] in ("debug", "info", "warn", "error"), rec
            assert rec["service"] == job, rec
            if rec.get("msg") == "request":
                requests += 1
                assert re.fullmatch(r"[0-9a-f]{32}", rec["trace_id"]), rec
                assert rec.get("request_id"), rec
        if job == "cofre-core":
            assert requests > 0
