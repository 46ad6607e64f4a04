"""Starting and stopping a real cofre-core process for the black-box suite.

CoreProcess runs the binary from COFRE_BIN_DIR on a free loopback port and a database given by
a backend, captures every stdout line (with the time it arrived), waits for /readyz, and
stops it with a signal. Every wait is bounded; under sanitizers (COFRE_SANITIZED=1) the
bounds are stretched.
"""

import json
import os
import signal
import socket
import subprocess
import threading
import time

import requests

SLOW = 4.0 if os.environ.get("COFRE_SANITIZED") else 1.0
READY_TIMEOUT_S = 15.0 * SLOW
HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", ".."))


def bin_dir():
    return os.environ.get("COFRE_BIN_DIR") or os.path.join(REPO, "build", "bin")


def binary(name="cofre-core"):
    path = os.path.join(bin_dir(), name)
    if not os.access(path, os.X_OK):
        raise RuntimeError(f"{path} is missing: build first or set COFRE_BIN_DIR")
    return path


def free_port():
    """A loopback port that was free a moment ago (the kernel's pick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def base_env(port, db, **extra):
    """The environment of a test server: only what the test says, plus PATH and sanitizers."""
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "ASAN_OPTIONS", "UBSAN_OPTIONS",
                                                       "LSAN_OPTIONS", "TZ", "LANG")}
    env.update({
        "COFRE_LISTEN": f"127.0.0.1:{port}",
        "COFRE_DB": db,
        "COFRE_LOG_LEVEL": "info",
        "COFRE_DRAIN_S": "0",
        "COFRE_AUTH": "off",  # token checks have their own suite (tests/auth)
    })
    env.update({k: str(v) for k, v in extra.items()})
    return env


class CoreProcess:
    """One running cofre-core: base URL, database, process, captured stdout lines."""

    def __init__(self, db, workdir, env=None, backend=None):
        self.db = db
        self.backend = backend
        self.workdir = str(workdir)
        self.extra_env = dict(env or {})
        self.proc = None
        self.port = None
        self.base = None
        self.lines = []  # (arrival time.time(), raw line without newline)
        self.stopped = False
        self.returncode = None
        self._reader = None
        self.stderr_path = None

    # -- life cycle ---------------------------------------------------------------------------

    def start(self, ready=True):
        """Starts the process (retrying on a port race) and waits for /readyz 200."""
        last = None
        for _attempt in range(3):
            self.port = free_port()
            self.base = f"http://127.0.0.1:{self.port}"
            env = base_env(self.port, self.db, **self.extra_env)
            self.stderr_path = os.path.join(self.workdir, f"core-{self.port}.stderr")
            self.lines = []
            with open(self.stderr_path, "wb") as err:
                self.proc = subprocess.Popen(
                    [binary()], env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                    stderr=err, cwd=self.workdir, start_new_session=True)
            self.stopped = False
            self._reader = threading.Thread(target=self._read_stdout, daemon=True)
            self._reader.start()
            if not ready:
                return self
            try:
                self.wait_ready()
                return self
            except RuntimeError as e:  # exited early: maybe the port was taken meanwhile
                last = e
                if "address" not in self.stderr().lower():
                    raise
        raise last

    def _read_stdout(self):
        for raw in self.proc.stdout:
            self.lines.append((time.time(), raw.decode("utf-8", "replace").rstrip("\n")))

    def wait_ready(self, timeout=READY_TIMEOUT_S):
        deadline = time.monotonic() + timeout
        with requests.Session() as s:
            while time.monotonic() < deadline:
                rc = self.proc.poll()
                if rc is not None:
                    self.stopped = True
                    self.returncode = rc
                    raise RuntimeError(
                        f"cofre-core exited with {rc} before ready; stderr: {self.stderr()!r}; "
                        f"stdout: {self.stdout_text()[-2000:]!r}")
                try:
                    r = s.get(self.base + "/readyz", timeout=1)
                    if r.status_code == 200:
                        return
                except requests.RequestException:
                    pass
                time.sleep(0.02)
        self.kill9()
        raise RuntimeError(f"cofre-core not ready within {timeout}s; stderr: {self.stderr()!r}")

    def signal(self, sig):
        os.kill(self.proc.pid, sig)

    def wait(self, timeout):
        """Waits for exit up to timeout seconds; returns the exit code or None."""
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        self._finish(rc)
        return rc

    def _finish(self, rc):
        self.stopped = True
        self.returncode = rc
        if self._reader is not None:
            self._reader.join(timeout=5)

    def stop(self, timeout=None):
        """SIGTERM, then waits (bounded). Returns the exit code; SIGKILLs and raises on a hang."""
        if self.stopped:
            return self.returncode
        drain = float(self.extra_env.get("COFRE_DRAIN_S", 0))
        timeout = timeout if timeout is not None else (drain + 15) * SLOW
        self.signal(signal.SIGTERM)
        rc = self.wait(timeout)
        if rc is None:
            self.kill9()
            raise AssertionError(f"cofre-core did not exit within {timeout}s of SIGTERM")
        return rc

    def kill9(self):
        if self.stopped:
            return self.returncode
        try:
            self.proc.kill()
        except ProcessLookupError:
            pass
        rc = self.proc.wait(timeout=30)
        self._finish(rc)
        return rc

    # -- output -------------------------------------------------------------------------------

    def stderr(self):
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def stdout_text(self):
        return "\n".join(line for _t, line in list(self.lines))

    def logs(self):
        """Every stdout line parsed as JSON (raises on a line that is not a JSON object)."""
        out = []
        for _t, line in list(self.lines):
            if not line.strip():
                continue
            obj = json.loads(line)
            assert isinstance(obj, dict), line
            out.append(obj)
        return out

    def wait_log(self, pred, timeout=5.0):
        """Waits until a parsed log line satisfies pred; returns it (or None on timeout)."""
        deadline = time.monotonic() + timeout * SLOW
        seen = 0
        while time.monotonic() < deadline:
            lines = list(self.lines)
            for _t, line in lines[seen:]:
                try:
                    obj = json.loads(line)
                except ValueError:
                    continue
                if isinstance(obj, dict) and pred(obj):
                    return obj
            seen = len(lines)
            time.sleep(0.02)
        return None

    def snapshot(self):
        """The backend's view of this server's database (row counts and account totals)."""
        return self.backend.snapshot(self.db)

    def transfer_ids(self):
        return self.backend.transfer_ids(self.db)

    def url(self, path):
        return self.base + path
