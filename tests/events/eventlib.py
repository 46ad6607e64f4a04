"""Running the event pipeline for the black-box tests: cofre-kafka-dev, cofre-core with its
outbox relay, cofre-audit, and reading topics with kcat.

Proc starts a binary from COFRE_BIN_DIR on 127.0.0.1:0, learns its port from the "listening"
log line, keeps every stdout line, and stops with SIGTERM (a clean stop must exit 0). Every wait
is bounded; under sanitizers (COFRE_SANITIZED=1) the bounds are stretched.
"""

import json
import os
import re
import signal
import subprocess
import threading
import time
import uuid

import requests

from stores import SQLITE

SLOW = 4.0 if os.environ.get("COFRE_SANITIZED") else 1.0
START_TIMEOUT_S = 20.0 * SLOW
HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", ".."))
LEDGER_TOPIC = "cofre.ledger.events"


def bin_dir():
    return os.environ.get("COFRE_BIN_DIR") or os.path.join(REPO, "build", "bin")


def binary(name):
    path = os.path.join(bin_dir(), name)
    if not os.access(path, os.X_OK):
        raise RuntimeError(f"{path} is missing: build first or set COFRE_BIN_DIR")
    return path


def base_env(**extra):
    env = {k: v for k, v in os.environ.items()
           if k in ("PATH", "ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS", "TZ", "LANG")}
    env.update({"COFRE_LISTEN": "127.0.0.1:0", "COFRE_LOG_LEVEL": "info", "COFRE_DRAIN_S": "0",
                "COFRE_THREADS": "2"})
    env.update({k: str(v) for k, v in extra.items()})
    return env


def cofre_db(db, default_path):
    """A COFRE_DB value from db: a COFRE_DB value already, a SQLite path, or None (default)."""
    if db is None:
        return "sqlite:" + default_path
    return db if db.startswith(("sqlite:", "postgres://", "postgresql://")) else "sqlite:" + db


def wait_for(pred, timeout, what, interval=0.05):
    """Polls pred() until it returns something truthy; returns it, or fails naming what."""
    deadline = time.monotonic() + timeout * SLOW
    last = None
    while time.monotonic() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout * SLOW:.0f}s waiting for {what} "
                         f"(last: {last!r})")


class Proc:
    """One running service."""

    def __init__(self, name, env, workdir, args=()):
        self.name = name
        self.env = env
        self.args = list(args)
        self.workdir = str(workdir)
        self.proc = None
        self.lines = []
        self.port = None
        self.base = None
        self.returncode = None
        self.stderr_path = os.path.join(self.workdir, f"{name}-{id(self)}.stderr")

    def start(self, ready=True):
        """Starts the process, learns its port; with ready, waits for /readyz 200."""
        with open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen([binary(self.name)] + self.args, env=self.env,
                                         cwd=self.workdir, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.PIPE, stderr=err,
                                         start_new_session=True)
        threading.Thread(target=self._read, daemon=True).start()
        line = wait_for(lambda: self._alive() and self.find_log(
            lambda o: o.get("msg") == "listening"), START_TIMEOUT_S, f"{self.name} to listen")
        self.port = line["port"]
        self.base = f"http://127.0.0.1:{self.port}"
        if ready:
            self.wait_ready()
        return self

    def _read(self):
        for raw in self.proc.stdout:
            self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))

    def _alive(self):
        rc = self.proc.poll()
        if rc is not None:
            raise RuntimeError(f"{self.name} exited with {rc}: stderr {self.stderr()!r}; "
                               f"stdout {self.text()[-3000:]!r}")
        return True

    def ready(self):
        try:
            return requests.get(self.base + "/readyz", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def wait_ready(self, timeout=START_TIMEOUT_S):
        wait_for(lambda: self._alive() and self.ready(), timeout, f"{self.name} to be ready")

    def logs(self):
        out = []
        for line in list(self.lines):
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if isinstance(obj, dict):
                out.append(obj)
        return out

    def find_log(self, pred):
        for obj in self.logs():
            if pred(obj):
                return obj
        return None

    def text(self):
        return "\n".join(self.lines)

    def stderr(self):
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def url(self, path):
        return self.base + path

    def metrics(self):
        """{(name, frozenset(labels)): value} of /metrics."""
        out = {}
        text = requests.get(self.url("/metrics"), timeout=5).text
        for line in text.splitlines():
            m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})? (\S+)$", line)
            if not m or line.startswith("#"):
                continue
            labels = frozenset(re.findall(r'(\w+)="([^"]*)"', m.group(3) or ""))
            out[(m.group(1), labels)] = float(m.group(4))
        return out

    def metric(self, name, **labels):
        """One series' value (0 when absent)."""
        return self.metrics().get((name, frozenset(labels.items())), 0.0)

    def metric_sum(self, name):
        return sum(v for (n, _), v in self.metrics().items() if n == name)

    def stop(self, timeout=30):
        """SIGTERM; returns the exit code (SIGKILL and an error on a hang)."""
        if self.returncode is not None:
            return self.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.returncode = self.proc.wait(timeout=timeout * SLOW)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"{self.name} did not exit within {timeout}s of SIGTERM")
        return self.returncode

    def kill(self):
        """SIGKILL: a crash, nothing flushed."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)
        self.returncode = self.proc.returncode if self.proc is not None else None


class KafkaDev(Proc):
    """cofre-kafka-dev, its bootstrap list and its control interface."""

    def __init__(self, workdir, **env):
        self.bootstrap_file = os.path.join(str(workdir), "kafka-dev.bootstrap")
        super().__init__("cofre-kafka-dev", base_env(
            COFRE_KAFKA_DEV_BOOTSTRAP_FILE=self.bootstrap_file, **env), workdir)
        self.bootstrap = None

    def start(self, ready=True):
        super().start(ready)
        with open(self.bootstrap_file) as f:
            self.bootstrap = f.read().strip()
        return self

    def control(self, method, path, body=None, expect=200):
        r = requests.request(method, self.url(path), json=body, timeout=10 * SLOW)
        assert r.status_code == expect, f"{method} {path}: {r.status_code} {r.text}"
        return r.json()

    def broker(self, broker_id, up):
        return self.control("POST", f"/brokers/{broker_id}/{'up' if up else 'down'}")

    def all_brokers(self, up):
        for b in self.control("GET", "/cluster")["brokers"]:
            self.broker(b["id"], up)

    def leader_of(self, topic, partition):
        """The broker leading a partition, from the cluster's metadata (kcat -L)."""
        out = subprocess.run(["kcat", "-b", self.bootstrap, "-L", "-t", topic, "-J"],
                             capture_output=True, text=True, timeout=20 * SLOW, check=True)
        md = json.loads(out.stdout)
        for t in md["topics"]:
            for p in t["partitions"]:
                if p["partition"] == partition:
                    return p["leader"]
        raise AssertionError(f"no partition {topic}[{partition}] in {md}")


class Core(Proc):
    """cofre-core with token checks off, relaying its outbox to brokers. db: a COFRE_DB value
    or a SQLite path (default: core.db in workdir); backend: the store kind that reads it."""

    def __init__(self, workdir, brokers, db=None, backend=SQLITE, **env):
        self.db = cofre_db(db, os.path.join(str(workdir), "core.db"))
        self.db_path = self.db[len("sqlite:"):] if self.db.startswith("sqlite:") else None
        self.backend = backend
        super().__init__("cofre-core", base_env(
            COFRE_AUTH="off", COFRE_KAFKA_BROKERS=brokers, COFRE_DB=self.db,
            COFRE_RELAY_POLL_MS="10", **env), workdir)

    def post(self, path, body, session=None):
        s = session or requests
        return s.post(self.url(path), json=body, timeout=15 * SLOW,
                      headers={"Idempotency-Key": "events-" + uuid.uuid4().hex})

    def open_account(self, owner, currency="EUR", overdraft=False, session=None):
        r = self.post("/v1/accounts", {"owner": owner, "currency": currency,
                                       "flags": {"no_overdraft": not overdraft}}, session)
        assert r.status_code == 201, r.text
        return r.json()["id"]

    def transfer(self, debit, credit, amount, transfer_id=None, session=None):
        body = {"id": transfer_id or str(uuid.uuid4()), "debit_account_id": debit,
                "credit_account_id": credit, "amount": amount, "currency": "EUR"}
        return self.post("/v1/transfers", body, session)

    def outbox(self):
        """(seq, event_id, published) of every outbox row, from the database."""
        rows = self.backend.query(self.db, self.backend.OUTBOX_SQL)
        return [(r["seq"], str(r["event_id"]), bool(r["p"])) for r in rows]

    def wait_outbox_published(self, timeout=30):
        wait_for(lambda: all(p for _, _, p in self.outbox()), timeout,
                 "every outbox row to be published", interval=0.1)


class Audit(Proc):
    """cofre-audit with its own store and signing key in workdir."""

    def __init__(self, workdir, brokers, db=None, group="cofre-audit", backend=SQLITE, **env):
        self.workdir_ = str(workdir)
        self.db = cofre_db(db, os.path.join(self.workdir_, "audit.db"))
        self.db_path = self.db[len("sqlite:"):] if self.db.startswith("sqlite:") else None
        self.backend = backend
        self.key_file = os.path.join(self.workdir_, "audit-signing.key")
        if not os.path.exists(self.key_file):
            r = subprocess.run([binary("cofre-audit"), "keygen", self.key_file],
                               capture_output=True, text=True, timeout=10, check=True)
            assert re.fullmatch(r"[0-9a-f]{64}\n", r.stdout), r.stdout
        e = dict(COFRE_AUTH="off", COFRE_KAFKA_BROKERS=brokers, COFRE_DB=self.db,
                 COFRE_AUDIT_SIGNING_KEY_FILE=self.key_file, COFRE_AUDIT_GROUP=group,
                 COFRE_AUDIT_CHECKPOINT_RECORDS="25", COFRE_AUDIT_VERIFY_INTERVAL_S="0")
        e.update(env)
        super().__init__("cofre-audit", base_env(**e), workdir)

    def get(self, path, params=None, headers=None):
        return requests.get(self.url(path), params=params, headers=headers, timeout=30 * SLOW)

    def events(self, **filters):
        """Every record matching filters, walking the pages."""
        out, cursor = [], None
        for _ in range(10000):
            params = dict(filters, limit=1000)
            if cursor:
                params["cursor"] = cursor
            r = self.get("/v1/audit/events", params)
            assert r.status_code == 200, r.text
            page = r.json()
            out += page["data"]
            cursor = page["next_cursor"]
            if cursor is None:
                return out
        raise AssertionError("too many pages")

    def verify(self):
        r = self.get("/v1/audit/verify")
        assert r.status_code == 200, r.text
        return r.json()

    def rows(self):
        """Every audit record row, in seq order, straight from the database."""
        return self.backend.query(self.db, "SELECT * FROM audit_records ORDER BY seq")

    def checkpoints(self):
        """(seq, hash, created_at, public_key, signature) of every checkpoint, in seq order."""
        rows = self.backend.query(self.db, "SELECT seq, hash, created_at, public_key, signature "
                                           "FROM audit_checkpoints ORDER BY seq, id")
        return [tuple(bytes(v) if isinstance(v, (bytes, memoryview)) else v for v in r.values())
                for r in rows]


def run_verify(db, **env):
    """`cofre-audit verify` on a database (a COFRE_DB value or a SQLite path): (exit code,
    verdict JSON, stderr)."""
    r = subprocess.run([binary("cofre-audit"), "verify"],
                       env=base_env(COFRE_DB=cofre_db(db, ""), **env),
                       capture_output=True, text=True, timeout=60 * SLOW)
    verdict = json.loads(r.stdout) if r.stdout.strip() else None
    return r.returncode, verdict, r.stderr


def kcat_consume(bootstrap, topic):
    """Every message of topic from the beginning: kcat -J envelopes (headers, key, payload)."""
    r = subprocess.run(["kcat", "-b", bootstrap, "-C", "-t", topic, "-o", "beginning", "-e",
                        "-J", "-q"], capture_output=True, text=True, timeout=60 * SLOW)
    assert r.returncode == 0, r.stderr
    return [json.loads(line) for line in r.stdout.splitlines() if line.strip()]
