"""`make run`'s script (scripts/run.sh) end to end, on private ports (COFRE_PORT_OFFSET) and a
private var/: it starts every built service and the gateway, prints a walkthrough that works
as printed, streams prefixed logs, keeps data across restarts, refuses to start on a taken port
or with a service that cannot start (leaving nothing running), and stops cleanly on SIGINT."""

import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import time

import pytest
import requests

from gw import REPO, SLOW, bin_dir, workdir
from test_gateway import check_walkthrough_output

RUN = os.path.join(REPO, "scripts", "run.sh")
# run.sh's default ports (the contract's), the gateway's status port, and the monitoring ones.
PORTS = [8080, 8443, 8089, 8092, 8081, 8091, 8082, 8083, 8084, 8583, 8585]
MONITORING_PORTS = [9090, 9093]
START_TIMEOUT_S = 60 * SLOW
STOP_TIMEOUT_S = 45 * SLOW


def port_free(port):
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def pick_offset(ports):
    """An offset where every port is free (away from the observability tests' 31000)."""
    for _ in range(50):
        off = random.randrange(12000, 22000, 10)
        if all(port_free(p + off) for p in ports):
            return off
    pytest.fail("no free port range found")


class Run:
    """One scripts/run.sh, its stdout and stderr in files."""

    def __init__(self, var_dir, offset, **env):
        self.var_dir, self.offset = var_dir, offset
        self.out_path = os.path.join(os.path.dirname(var_dir), f"run-{time.monotonic_ns()}.out")
        self.err_path = self.out_path[:-4] + ".err"
        e = dict(os.environ, COFRE_BIN_DIR=bin_dir(), COFRE_VAR_DIR=var_dir,
                 COFRE_PORT_OFFSET=str(offset))
        e.pop("MONITORING", None)
        e.update(env)
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen([RUN], env=e, stdout=out, stderr=err,
                                         stdin=subprocess.DEVNULL, start_new_session=True)

    def out(self):
        return open(self.out_path, encoding="utf-8", errors="replace").read()

    def err(self):
        return open(self.err_path, encoding="utf-8", errors="replace").read()

    def wait_ready(self):
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if "run.sh: ready" in self.err():
                return
            if self.proc.poll() is not None:
                pytest.fail(f"run.sh exited {self.proc.returncode} before ready:\n{self.err()}")
            time.sleep(0.1)
        self.kill()
        pytest.fail(f"run.sh not ready within {START_TIMEOUT_S}s:\n{self.err()}")

    def interrupt(self):
        """Ctrl-C: SIGINT; returns the exit code (bounded wait)."""
        self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"run.sh did not stop within {STOP_TIMEOUT_S}s of SIGINT")

    def kill(self):
        """Last resort: the script and its services (their own sessions) by pid."""
        pids = [self.proc.pid]
        try:
            out = subprocess.run(["ps", "-e", "-o", "pid=,args="], capture_output=True,
                                 text=True, timeout=10).stdout
            pids += [int(line.split()[0]) for line in out.splitlines()
                     if self.var_dir in line or f"127.0.0.1:{8081 + self.offset}" in line]
        except (OSError, subprocess.SubprocessError):
            pass
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait(timeout=30)


@pytest.fixture
def var_dir():
    d = workdir("cofre-run-")
    yield os.path.join(d, "var")
    shutil.rmtree(d, ignore_errors=True)


def walkthrough_from(stdout):
    start = stdout.index("# --- walkthrough")
    end = stdout.index("# --- end of the walkthrough ---")
    return stdout[start:end]


def demo_token_header(var_dir, https, ca):
    """A bearer token of run.sh's demo client when cofre-auth runs (no header otherwise)."""
    secret_file = os.path.join(var_dir, "demo-client.secret")
    if not os.path.exists(secret_file):
        return {}
    secret = open(secret_file, encoding="utf-8").read().strip()
    r = requests.post(f"{https}/oauth/token", data={"grant_type": "client_credentials"},
                      auth=("demo", secret), verify=ca, timeout=10)
    assert r.status_code == 200, r.text
    return {"Authorization": "Bearer " + r.json()["access_token"]}


def assert_all_ports_free(offset, ports=PORTS):
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        busy = [p + offset for p in ports if not port_free(p + offset)]
        if not busy:
            return
        time.sleep(0.1)
    pytest.fail(f"ports still in use after run.sh stopped: {busy}")


def test_run_walkthrough_logs_restart_and_ctrl_c(var_dir):
    """The platform comes up, the walkthrough works exactly as printed (over HTTPS), logs are
    streamed with a per-service prefix, Ctrl-C stops all with status 0, and a second start
    finds the data and the certificate of the first."""
    off = pick_offset(PORTS)
    run = Run(var_dir, off)
    try:
        run.wait_ready()
        out = run.out()
        https = f"https://127.0.0.1:{8443 + off}"
        assert https in out and f"http://127.0.0.1:{8080 + off}" in out, out[:2000]
        r = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", walkthrough_from(out)],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 0 and r.stderr == "", (r.returncode, r.stderr, r.stdout)
        _bank, alice, _bob = check_walkthrough_output(r.stdout.splitlines())
        time.sleep(0.5)
        out = run.out()
        for name in ("cofre-core-1", "cofre-core-2", "gateway"):
            assert re.search(rf"^{name} +\| \{{", out, re.M), f"no prefixed log line of {name}"
        access = [json.loads(line.split("| ", 1)[1]) for line in out.splitlines()
                  if line.startswith("gateway ") and '"msg":"access"' in line]
        assert any(a["path"] == f"/v1/accounts/{alice['id']}" for a in access), access[-3:]
    finally:
        rc = run.interrupt()
    assert rc == 0, f"run.sh exited {rc} on SIGINT:\n{run.err()}"
    assert "run.sh: stopped" in run.err()
    assert_all_ports_free(off)
    ca = os.path.join(var_dir, "gateway", "tls", "cert.pem")
    cert = open(ca, "rb").read()

    run = Run(var_dir, off)
    try:
        run.wait_ready()
        got = requests.get(f"{https}/v1/accounts/{alice['id']}", verify=ca, timeout=10,
                           headers=demo_token_header(var_dir, https, ca))
        assert got.status_code == 200 and got.json()["balance"] == 7500, got.text
        assert open(ca, "rb").read() == cert, "the certificate was made again"
    finally:
        rc = run.interrupt()
    assert rc == 0, run.err()
    assert_all_ports_free(off)


def test_port_in_use_is_a_clear_message(var_dir):
    """A taken port stops run.sh before it starts anything, naming the port and its user."""
    off = pick_offset(PORTS)
    taken = 8443 + off
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", taken))
        s.listen()
        run = Run(var_dir, off)
        try:
            rc = run.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            run.kill()
            pytest.fail("run.sh did not stop on a taken port")
    assert rc == 1, (rc, run.err())
    err = run.err()
    assert f"port {taken} (for gateway (HTTPS)) is in use by" in err, err
    assert "COFRE_PORT_OFFSET" in err, err
    logs = os.path.join(var_dir, "log")
    assert not os.path.isdir(logs) or os.listdir(logs) == [], "something was started"


def test_a_service_that_cannot_start_stops_everything(var_dir):
    """A service that exits at start (a malformed setting) ends run.sh with status 1, the tail
    of that service's log, and nothing left running."""
    off = pick_offset(PORTS)
    run = Run(var_dir, off, COFRE_LOG_LEVEL="loud")
    try:
        rc = run.proc.wait(timeout=START_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        run.kill()
        pytest.fail("run.sh did not stop when a service could not start")
    err = run.err()
    assert rc == 1, (rc, err)
    assert "exited while starting" in err and "COFRE_LOG_LEVEL" in err, err
    assert_all_ports_free(off)


def test_monitoring_beside_the_platform(var_dir):
    """MONITORING=1 adds Prometheus (scraping both core replicas) and Alertmanager, and
    Ctrl-C stops them too."""
    if not shutil.which("prometheus"):
        pytest.fail("prometheus is not installed: scripts/deps.sh test installs it")
    off = pick_offset(PORTS + MONITORING_PORTS)
    run = Run(var_dir, off, MONITORING="1")
    try:
        run.wait_ready()
        prom = f"http://127.0.0.1:{9090 + off}"
        assert prom in run.out()
        deadline = time.monotonic() + 30 * SLOW
        while True:  # file-based discovery loads the targets a moment after start
            active = requests.get(prom + "/api/v1/targets", timeout=10).json()["data"][
                "activeTargets"]
            cores = sorted(t["labels"].get("replica", "") for t in active
                           if t["labels"].get("job") == "cofre-core")
            if cores or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert cores == ["cofre-core-1", "cofre-core-2"], active
    finally:
        rc = run.interrupt()
    assert rc == 0, run.err()
    assert_all_ports_free(off, PORTS + MONITORING_PORTS)


def test_ctrl_c_while_starting(var_dir):
    """Ctrl-C before the platform is ready stops what was started, with status 0."""
    off = pick_offset(PORTS)
    run = Run(var_dir, off)
    first = os.path.join(var_dir, "log", "cofre-core-1.log")
    deadline = time.monotonic() + START_TIMEOUT_S
    while not os.path.exists(first) and time.monotonic() < deadline:
        if run.proc.poll() is not None:
            pytest.fail(f"run.sh exited {run.proc.returncode}:\n{run.err()}")
        time.sleep(0.01)
    assert "run.sh: ready" not in run.err()
    rc = run.interrupt()
    assert rc == 0, (rc, run.err())
    assert_all_ports_free(off)
