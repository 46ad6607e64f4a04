"""Real processes for the gateway suite: cofre-core replicas and NGINX rendered from deploy/gateway.

Core runs cofre-core from COFRE_BIN_DIR on a fixed loopback port (so a replica can be restarted
where the gateway expects it) and captures its stdout lines. Gateway renders the template with
deploy/gateway/render.sh, makes the development certificate with dev-cert.sh, checks the file
with `nginx -t` and runs NGINX in the foreground in its own prefix directory, capturing its JSON
access log (stdout). Every wait is bounded; stop() checks each process exited 0.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

import requests

SLOW = 4.0 if os.environ.get("COFRE_SANITIZED") else 1.0
READY_TIMEOUT_S = 15.0 * SLOW
HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", ".."))
GATEWAY_DIR = os.path.join(REPO, "deploy", "gateway")


def bin_dir():
    return os.environ.get("COFRE_BIN_DIR") or os.path.join(REPO, "build", "bin")


def free_ports(n):
    """n distinct loopback ports that were free a moment ago."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def workdir(prefix):
    """A temp directory NGINX's workers (nobody, under root) can enter."""
    d = tempfile.mkdtemp(prefix=prefix)
    os.chmod(d, 0o755)
    return d


class Proc:
    """A child process whose stdout lines are kept as (arrival time, text)."""

    def __init__(self, name, argv, env, cwd):
        self.name = name
        self.argv = argv
        self.env = env
        self.cwd = cwd
        self.proc = None
        self.lines = []
        self.returncode = None
        self._reader = None
        self.stderr_path = os.path.join(cwd, f"{name}.stderr")

    def start(self):
        self.lines = []
        self.returncode = None
        with open(self.stderr_path, "ab") as err:
            self.proc = subprocess.Popen(self.argv, env=self.env, cwd=self.cwd,
                                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                         stderr=err, start_new_session=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for raw in self.proc.stdout:
            self.lines.append((time.time(), raw.decode("utf-8", "replace").rstrip("\n")))

    @property
    def pid(self):
        return self.proc.pid

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def send(self, sig):
        os.kill(self.proc.pid, sig)

    def wait(self, timeout):
        """The exit code, or None when still running after timeout seconds."""
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        self._reader.join(timeout=5)
        self.returncode = rc
        return rc

    def kill9(self):
        if self.running():
            self.proc.kill()
        return self.wait(30)

    def stop(self, sig=signal.SIGTERM, timeout=20.0):
        """Signals, waits (bounded); SIGKILLs and returns a description on a hang."""
        if not self.running():
            return self.wait(5) if self.proc else 0
        try:
            self.send(sig)
        except ProcessLookupError:
            pass
        rc = self.wait(timeout * SLOW)
        if rc is None:
            self.kill9()
            return f"{self.name} did not exit within {timeout}s of {sig!r}"
        return rc

    def stderr(self):
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def json_lines(self):
        out = []
        for _t, line in list(self.lines):
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if isinstance(obj, dict):
                out.append(obj)
        return out

    def wait_line(self, pred, timeout=5.0):
        """Waits until a JSON stdout line satisfies pred; returns it or None."""
        deadline = time.monotonic() + timeout * SLOW
        while time.monotonic() < deadline:
            for obj in self.json_lines():
                if pred(obj):
                    return obj
            time.sleep(0.05)
        return None


def wait_http(url, proc, timeout=READY_TIMEOUT_S, verify=True):
    """Until url answers 200; raises when proc exits first or the time is up."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.running():
            raise RuntimeError(f"{proc.name} exited with {proc.proc.poll()} before ready: "
                               f"{proc.stderr()[-2000:]!r}")
        try:
            if requests.get(url, timeout=1, verify=verify).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.02)
    raise RuntimeError(f"{proc.name}: {url} not ready within {timeout}s")


class Core(Proc):
    """One cofre-core replica on a fixed port; tokens off (the gateway suite is not about auth)."""

    def __init__(self, name, port, db_path, wd, env=None):
        self.port = port
        self.db_path = db_path
        self.base = f"http://127.0.0.1:{port}"
        e = {k: v for k, v in os.environ.items()
             if k in ("PATH", "ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS", "LANG")}
        e.update({"COFRE_LISTEN": f"127.0.0.1:{port}", "COFRE_DB": f"sqlite:{db_path}",
                  "COFRE_LOG_LEVEL": "info", "COFRE_DRAIN_S": "0", "COFRE_THREADS": "1",
                  "COFRE_AUTH": "off"})
        e.update({k: str(v) for k, v in (env or {}).items()})
        super().__init__(name, [os.path.join(bin_dir(), "cofre-core")], e, wd)

    def start(self):
        super().start()
        wait_http(self.base + "/readyz", self)
        return self


class Gateway(Proc):
    """NGINX from the rendered template, in its own prefix directory."""

    def __init__(self, wd, core_ports, env=None, auth_port=None, audit_port=None):
        self.dir = os.path.join(wd, "gateway")
        os.makedirs(os.path.join(self.dir, "tmp"), exist_ok=True)
        os.chmod(self.dir, 0o755)
        self.http_port, self.https_port, self.status_port, spare1, spare2 = free_ports(5)
        self.http = f"http://127.0.0.1:{self.http_port}"
        self.https = f"https://127.0.0.1:{self.https_port}"
        self.status = f"http://127.0.0.1:{self.status_port}"
        self.ca = os.path.join(self.dir, "tls", "cert.pem")
        self.conf = os.path.join(self.dir, "nginx.conf")
        self.render_env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "COFRE_GW_HTTP_LISTEN": f"127.0.0.1:{self.http_port}",
            "COFRE_GW_HTTPS_LISTEN": f"127.0.0.1:{self.https_port}",
            "COFRE_GW_STATUS_LISTEN": f"127.0.0.1:{self.status_port}",
            "COFRE_GW_CORE_UPSTREAMS": ",".join(f"127.0.0.1:{p}" for p in core_ports),
            # Nothing listens there: these routes answer 502 unless a test says otherwise.
            "COFRE_GW_AUTH_UPSTREAMS": f"127.0.0.1:{auth_port or spare1}",
            "COFRE_GW_AUDIT_UPSTREAMS": f"127.0.0.1:{audit_port or spare2}",
        }
        self.render_env.update({k: str(v) for k, v in (env or {}).items()})
        subprocess.run([os.path.join(GATEWAY_DIR, "dev-cert.sh"), os.path.join(self.dir, "tls")],
                       check=True, timeout=30)
        render(self.render_env, self.conf)
        nginx_test(self.dir, self.conf)
        argv = ["nginx", "-e", "stderr", "-p", self.dir + "/", "-c", self.conf,
                "-g", "daemon off;"]
        super().__init__("nginx", argv, {"PATH": self.render_env["PATH"], "TZ": "UTC"}, self.dir)

    def start(self):
        super().start()
        wait_http(self.status + "/healthz", self)
        return self

    def stop(self, sig=signal.SIGQUIT, timeout=20.0):
        """SIGQUIT is NGINX's graceful stop."""
        return super().stop(sig, timeout)

    def access(self, request_id, timeout=5.0):
        """The access log line of request_id (None when none came within timeout)."""
        return self.wait_line(lambda o: o.get("request_id") == request_id, timeout)


def render(env, out):
    """Renders the template with exactly env (plus nothing else from this process)."""
    r = subprocess.run([os.path.join(GATEWAY_DIR, "render.sh"), "-o", out], env=env,
                       capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        raise RuntimeError(f"render.sh failed ({r.returncode}): {r.stderr}")


def nginx_test(prefix, conf):
    r = subprocess.run(["nginx", "-t", "-e", "stderr", "-p", prefix + "/", "-c", conf],
                       capture_output=True, text=True, timeout=30)
    if r.returncode != 0:
        raise RuntimeError(f"nginx -t refused {conf}: {r.stderr}")
    return r


class Platform:
    """Core replicas on one SQLite file behind one gateway, all stopped by close()."""

    def __init__(self, replicas=2, gw_env=None, core_env=None, start=True):
        self.wd = workdir("cofre-gw-")
        self.db = os.path.join(self.wd, "core.db")
        self.cores = []
        for i, port in enumerate(free_ports(replicas)):
            self.cores.append(Core(f"core{i + 1}", port, self.db, self.wd, core_env))
        self.gateway = Gateway(self.wd, [c.port for c in self.cores], gw_env)
        if start:
            try:
                for c in self.cores:
                    c.start()
                self.gateway.start()
            except BaseException:
                self.close(check=False)
                raise

    def core_lines(self):
        out = []
        for c in self.cores:
            out.extend(c.json_lines())
        return out

    def core_line(self, pred, timeout=5.0):
        deadline = time.monotonic() + timeout * SLOW
        while time.monotonic() < deadline:
            for obj in self.core_lines():
                if pred(obj):
                    return obj
            time.sleep(0.05)
        return None

    def close(self, check=True):
        """Stops everything; with check, a process that did not exit 0 is reported."""
        problems = []
        rc = self.gateway.stop() if self.gateway.proc else 0
        if rc != 0:
            problems.append(f"nginx: {rc}; stderr {self.gateway.stderr()[-1000:]!r}")
        for c in self.cores:
            if c.proc is None:
                continue
            was_running = c.running()
            rc = c.stop()
            if was_running and rc != 0:
                problems.append(f"{c.name}: exit {rc}; stderr {c.stderr()[-1000:]!r}")
        if not problems or not check:
            shutil.rmtree(self.wd, ignore_errors=True)
        if check:
            assert not problems, "; ".join(problems)


def is_problem(resp, status, code=None):
    """resp is a problem+json answer of this status (and code)."""
    assert resp.status_code == status, (resp.status_code, resp.text[:300])
    ctype = resp.headers.get("Content-Type", "")
    assert ctype.startswith("application/problem+json"), (ctype, resp.text[:300])
    body = resp.json()
    assert body["status"] == status, body
    assert body.get("type") and body.get("title"), body
    if code is not None:
        assert body.get("code") == code, body
    return body
