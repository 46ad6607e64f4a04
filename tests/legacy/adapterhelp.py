"""Running the whole legacy link for cofre-legacy's black-box tests: cofre-kafka-dev, cofre-core
(posting transfers through its API, its relay publishing them to Kafka), cofre-legacy-sim
(simhelp.SimProcess) and cofre-legacy itself, each a real binary from COFRE_BIN_DIR on loopback
with its own files in the test's directory.

Every process keeps its stdout lines and is stopped with a signal; every wait is bounded
(stretched under sanitizers, COFRE_SANITIZED=1). The tests judge the outcome the way an
operator would: `cofre-legacy reconcile` over the core's database and the host's ledger
(`cofre-legacy-sim ledger`), the adapter's /metrics and /readyz, and the dead-letter topic.

Stores: the adapter keeps its deliveries in a SQLite file of the test's directory, or in a
fresh database of the session's PostgreSQL cluster (LegacyPg: migrated by `cofre-legacy
migrate` as the owner role, used by the replicas as the service role legacy_app, as in
production). cofre-core runs on SQLite, or on PostgreSQL too where a test asks.
"""

import itertools
import json
import os
import random
import re
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid

import requests

from simhelp import SLOW, base_env, parse_log

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", ".."))
START_TIMEOUT_S = 20.0 * SLOW
# The delivery stores cofre-legacy's tests run against (conftest.py parametrises them).
STORES = [s.strip() for s in os.environ.get("COFRE_LEGACY_STORES", "sqlite").split(",")
          if s.strip()]
ACCOUNT_NUMBER = re.compile(r"(?<![0-9])[0-9]{19}(?![0-9])")


def bin_path(name):
    d = os.environ.get("COFRE_BIN_DIR") or os.path.join(REPO, "build", "bin")
    path = os.path.join(d, name)
    if not os.access(path, os.X_OK):
        raise RuntimeError(f"{path} is missing: build first or set COFRE_BIN_DIR")
    return path


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what, pred, timeout, interval=0.1):
    """Polls pred() until it returns a true value (returned); fails naming what after timeout."""
    deadline = time.monotonic() + timeout * SLOW
    last = None
    while time.monotonic() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout * SLOW:.0f} s waiting for {what} "
                         f"(last: {last!r})")


class Proc:
    """A child process with its stdout kept line by line, stopped by signal."""

    def __init__(self, name, args, env):
        self.name = name
        self.args = args
        self.env = env
        self.proc = None
        self.lines = []
        self.exits = []  # (returncode, signal sent, lines naming a sanitizer) of every run
        self._reader = None

    def start(self):
        self.lines = []
        self.proc = subprocess.Popen(self.args, env=self.env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        self._reader = threading.Thread(target=self._read, args=(self.proc, self.lines),
                                        daemon=True)
        self._reader.start()
        return self

    @staticmethod
    def _read(proc, lines):
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def logs(self):
        return [r for r in (parse_log(line) for line in list(self.lines)) if r is not None]

    def wait_log(self, msg, timeout=START_TIMEOUT_S / SLOW):
        def find():
            if self.proc.poll() is not None:
                raise AssertionError(f"{self.name} exited {self.proc.returncode}:\n"
                                     + "\n".join(self.lines[-40:]))
            return next((r for r in self.logs() if r.get("msg") == msg), None)
        return wait_for(f"{self.name} to log {msg!r}", find, timeout)

    def stop(self, sig=signal.SIGTERM, timeout=30.0):
        """Signals the process and waits for it; returns its exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout=timeout * SLOW)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self._reader.join(timeout=5)
        flagged = [line for line in self.lines if "Sanitizer" in line or "runtime error:" in line]
        self.exits.append((rc, sig, flagged))
        self.proc = None
        return rc


class KafkaDev(Proc):
    """cofre-kafka-dev: the development cluster; its bootstrap list and control interface."""

    def __init__(self, workdir):
        self.bootstrap_file = os.path.join(str(workdir), "kafka.bootstrap")
        env = base_env(COFRE_LISTEN="127.0.0.1:0",
                       COFRE_KAFKA_DEV_BOOTSTRAP_FILE=self.bootstrap_file)
        super().__init__("cofre-kafka-dev", [bin_path("cofre-kafka-dev")], env)
        self.bootstrap = None
        self.control = None

    def start(self):
        super().start()
        up = self.wait_log("kafka dev cluster up")
        self.bootstrap = up["bootstrap"]
        self.control = up["control"]
        return self

    def broker(self, broker_id, action):
        r = requests.post(f"{self.control}/brokers/{broker_id}/{action}", timeout=10)
        assert r.status_code == 200, r.text


class LegacyPg:
    """The session's PostgreSQL cluster (tests/e2e/pg_cluster.py) for cofre-legacy and, where a
    test wants it, cofre-core: one fresh database per store, owned by cofre_owner."""

    APP = "legacy_app"

    def __init__(self):
        self.cluster = None
        self._ids = itertools.count(1)

    def start(self):
        import pg_cluster
        self.cluster = pg_cluster.PgCluster().init().start().create_roles()
        self.cluster.sql("CREATE ROLE cofre_legacy_service NOLOGIN")
        self.cluster.sql(f"CREATE ROLE {self.APP} LOGIN IN ROLE cofre_legacy_service")
        return self

    def stop(self):
        if self.cluster is not None:
            self.cluster.destroy()
            self.cluster = None

    def new_db(self, prefix):
        return self.cluster.create_db(f"{prefix}_{os.getpid()}_{next(self._ids)}")

    def legacy_db(self):
        """A migrated delivery store; returns the service role's COFRE_DB URL."""
        name = self.new_db("legacy")
        p = subprocess.run([bin_path("cofre-legacy"), "migrate"], capture_output=True, text=True,
                           timeout=60 * SLOW, check=False,
                           env=base_env(COFRE_DB=self.cluster.url(name, user="cofre_owner")))
        assert p.returncode == 0, p.stdout + p.stderr
        return self.cluster.url(name, user=self.APP)

    def core_db(self):
        """A migrated ledger; returns cofre-core's service role URL (cofre_app)."""
        name = self.new_db("core")
        p = subprocess.run([bin_path("cofre-core"), "migrate"], capture_output=True, text=True,
                           timeout=60 * SLOW, check=False,
                           env=base_env(COFRE_DB=self.cluster.url(name, user="cofre_owner")))
        assert p.returncode == 0, p.stdout + p.stderr
        return self.cluster.url(name)

    def query(self, url, sql):
        """Rows of one statement run as the superuser on the database of url."""
        return self.cluster.sql(sql, db=url.rsplit("/", 1)[1])

    def bouncer(self, pool_size):
        """PgBouncer in transaction mode in front of the cluster, legacy_app among its users
        (pg_cluster lists cofre-core's roles: the users file gets one more line, then a
        reload); the caller stops it."""
        import pg_cluster
        b = pg_cluster.PgBouncer(self.cluster, pool_size=pool_size).start()
        with open(os.path.join(self.cluster.dir, "pgbouncer-users.txt"), "a") as f:
            f.write(f'"{self.APP}" ""\n')
        b.proc.send_signal(signal.SIGHUP)
        time.sleep(0.5)
        return b


def store_url(store, workdir, pg=None):
    """The COFRE_DB of a fresh delivery store of kind store ("sqlite" or "postgres")."""
    if store == "sqlite":
        return "sqlite:" + os.path.join(str(workdir), "legacy.db")
    return pg.legacy_db()


class Core(Proc):
    """cofre-core with its relay to the development cluster, token checks off; on SQLite in
    the test's directory unless db names another database."""

    def __init__(self, workdir, brokers, db=None):
        self.port = free_port()
        self.db_url = db or "sqlite:" + os.path.join(str(workdir), "core.db")
        env = base_env(COFRE_LISTEN=f"127.0.0.1:{self.port}", COFRE_DB=self.db_url,
                       COFRE_KAFKA_BROKERS=brokers, COFRE_AUTH="off", COFRE_DRAIN_S=0,
                       COFRE_THREADS=1, COFRE_MIGRATE="off" if db else "auto")
        super().__init__("cofre-core", [bin_path("cofre-core")], env)
        self.base = f"http://127.0.0.1:{self.port}"
        self.http = requests.Session()

    def start(self):
        super().start()
        wait_for("cofre-core /readyz", self._ready, START_TIMEOUT_S / SLOW)
        return self

    def _ready(self):
        if self.proc.poll() is not None:
            raise AssertionError("cofre-core exited:\n" + "\n".join(self.lines[-40:]))
        try:
            return self.http.get(self.base + "/readyz", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def post(self, path, body):
        r = self.http.post(self.base + path, data=json.dumps(body), timeout=30,
                           headers={"Content-Type": "application/json",
                                    "Idempotency-Key": str(uuid.uuid4())})
        return r.status_code, r.json()

    def metric(self, name):
        text = self.http.get(self.base + "/metrics", timeout=5).text
        return sum(float(v) for n, v in parse_metrics(text) if n == name)


class Adapter(Proc):
    """cofre-legacy, with test-sized timeouts unless env says otherwise."""

    DEFAULTS = {
        "COFRE_LEGACY_TIMEOUT_MS": 1000,
        "COFRE_LEGACY_CONNECT_TIMEOUT_MS": 1000,
        "COFRE_LEGACY_RECONNECT_MIN_MS": 50,
        "COFRE_LEGACY_RECONNECT_MAX_MS": 500,
        "COFRE_LEGACY_RETRY_MIN_MS": 50,
        "COFRE_LEGACY_RETRY_MAX_MS": 500,
        "COFRE_LEGACY_RETRY_MAX": 1000,
        "COFRE_LEGACY_BREAKER_FAILURES": 5,
        "COFRE_LEGACY_BREAKER_OPEN_MS": 500,
        "COFRE_LEGACY_SESSION_TIMEOUT_MS": 6000,
        "COFRE_LEGACY_ECHO_MS": 2000,
        "COFRE_LEGACY_LEASE_MS": 5000,
    }

    def __init__(self, workdir, brokers, host_port, db=None, **env):
        self.port = free_port()
        self.db_url = db or "sqlite:" + os.path.join(str(workdir), "legacy.db")
        settings = dict(self.DEFAULTS)
        settings.update(env)
        full = base_env(COFRE_LISTEN=f"127.0.0.1:{self.port}", COFRE_DB=self.db_url,
                        COFRE_KAFKA_BROKERS=brokers, COFRE_LEGACY_HOST=f"127.0.0.1:{host_port}",
                        COFRE_DRAIN_S=0, COFRE_THREADS=1, **settings)
        super().__init__("cofre-legacy", [bin_path("cofre-legacy")], full)
        self.base = f"http://127.0.0.1:{self.port}"
        self.http = requests.Session()

    def start(self):
        super().start()
        self.wait_log("cofre-legacy started")
        return self

    def get(self, path):
        return self.http.get(self.base + path, timeout=5)

    def metrics(self):
        """{name{labels}: value} of every sample."""
        out = {}
        for key, value in parse_metrics(self.get("/metrics").text, with_labels=True):
            out[key] = float(value)
        return out

    def metric(self, name, **labels):
        want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        total = 0.0
        for key, value in self.metrics().items():
            base, _, rest = key.partition("{")
            if base != name:
                continue
            if labels and rest.rstrip("}") != want:
                continue
            total += value
        return total


def parse_metrics(text, with_labels=False):
    """(name, value) pairs of the exposition format (name{labels} when with_labels)."""
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        key, _, value = line.rpartition(" ")
        if not with_labels:
            key = key.partition("{")[0]
        else:
            name, brace, labels = key.partition("{")
            if brace:  # labels sorted, so tests can name them in any order
                parts = sorted(p for p in labels.rstrip("}").split(",") if p)
                key = name + "{" + ",".join(parts) + "}"
        yield key, value


class Workload:
    """A random workload through the core's API: accounts, funding, transfers (single and
    batched, some refused for funds). Remembers every transfer the core posted."""

    def __init__(self, core, seed=None, accounts=6, currency="BRL"):
        self.core = core
        self.rng = random.Random(seed)
        self.currency = currency
        self.posted = []  # transfer ids the core answered 201 for
        self.accounts = []
        self.refused = 0
        status, body = core.post("/v1/accounts", {"owner": "legacy-test", "currency": currency,
                                                  "flags": {"no_overdraft": False}})
        assert status == 201, body
        self.settlement = body["id"]
        for _ in range(accounts):
            status, body = core.post("/v1/accounts", {"owner": "legacy-test",
                                                      "currency": currency})
            assert status == 201, body
            self.accounts.append(body["id"])
            self._transfer(self.settlement, body["id"], self.rng.randint(5000, 50000))

    def _transfer(self, debit, credit, amount):
        status, body = self.core.post("/v1/transfers", {
            "debit_account_id": debit, "credit_account_id": credit, "amount": amount,
            "currency": self.currency, "reference": "legacy-test"})
        if status == 201:
            self.posted.append(body["id"])
        else:
            assert body.get("code") == "insufficient_funds", body
            self.refused += 1

    def _batch(self, n):
        items = []
        for _ in range(n):
            a, b = self.rng.sample(self.accounts, 2)
            items.append({"debit_account_id": a, "credit_account_id": b,
                          "amount": self.rng.randint(1, 3000), "currency": self.currency})
        status, body = self.core.post("/v1/transfers/batch", {"transfers": items,
                                                              "atomic": False})
        assert status == 201, body
        for r in body["results"]:
            if r["status"] == 201:
                self.posted.append(r["transfer"]["id"])
            else:
                assert r["error"]["code"] == "insufficient_funds", r
                self.refused += 1

    def run(self, transfers, pause_s=0.0):
        """Posts about `transfers` transfers (a few in batches) between random accounts."""
        done = 0
        while done < transfers:
            if self.rng.random() < 0.1 and transfers - done >= 5:
                n = self.rng.randint(2, 5)
                self._batch(n)
                done += n
            else:
                a, b = self.rng.sample(self.accounts, 2)
                self._transfer(a, b, self.rng.randint(1, 3000))
                done += 1
            if pause_s:
                time.sleep(pause_s)
        return self


def host_ledger(sim):
    """The host's ledger as `cofre-legacy-sim ledger` prints it: (lines text, parsed records)."""
    p = subprocess.run([bin_path("cofre-legacy-sim"), "ledger", "--db", "sqlite:" + sim.db_path],
                       capture_output=True, text=True, timeout=30 * SLOW, check=False,
                       env=base_env())
    assert p.returncode == 0, p.stderr
    return p.stdout, [json.loads(line) for line in p.stdout.splitlines()]


def reconcile(core, sim, adapter=None):
    """Runs `cofre-legacy reconcile`: (exit status, differences, summary)."""
    text, _ = host_ledger(sim)
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
        f.write(text)
        path = f.name
    try:
        args = [bin_path("cofre-legacy"), "reconcile", "--core-db", core.db_url,
                "--host-ledger", path]
        if adapter is not None:
            args += ["--adapter-db", adapter.db_url]
        p = subprocess.run(args, capture_output=True, text=True, timeout=60 * SLOW, check=False,
                           env=base_env())
    finally:
        os.unlink(path)
    assert p.returncode in (0, 1), f"reconcile failed ({p.returncode}): {p.stderr}{p.stdout[-2000:]}"
    records = [json.loads(line) for line in p.stdout.splitlines()]
    assert records and "summary" in records[-1], p.stdout
    return p.returncode, records[:-1], records[-1]["summary"]


def wait_reconciled(core, sim, adapter, expected, timeout=60):
    """Waits until reconcile agrees (exit 0) with `expected` posted transfers; returns the
    summary. On timeout the assertion names the differences left."""
    state = {}

    def agreed():
        rc, diffs, summary = reconcile(core, sim, adapter)
        state.update(rc=rc, diffs=diffs[:5], summary=summary)
        return summary if rc == 0 and summary["ledger_posted"] == expected else None
    try:
        return wait_for("the host to apply every posted transfer", agreed, timeout, 0.5)
    except AssertionError as e:
        raise AssertionError(f"{e}; adapter log tail:\n"
                             + "\n".join(adapter.lines[-15:])) from None


def settle_all(core, sim, adapter, posted, idle=(), timeout=60):
    """Waits until the host applied every posted transfer exactly once (reconcile over the
    core's database, the host's ledger and adapter's store); checks adapter and the other
    replicas in idle are idle and ready. Returns the reconcile summary."""
    summary = wait_reconciled(core, sim, adapter, len(posted), timeout)
    exactly_once(sim, posted)
    n = len(posted)
    assert summary == {"ledger_posted": n, "host_records": n, "host_applied": n, "matched": n,
                       "missing": 0, "unexpected": 0, "mismatched": 0, "duplicates": 0,
                       "ok": True}, summary
    for a in (adapter,) + tuple(idle):
        wait_for("the adapter to be idle", lambda a=a: a.metric("cofre_legacy_backlog") == 0 and
                 a.metric("cofre_legacy_in_flight") == 0, 10)
        wait_for("the adapter to be ready", lambda a=a: a.get("/readyz").status_code == 200, 10)
    return summary


def journal(sim):
    """The host's journal of events, oldest first."""
    p = subprocess.run([bin_path("cofre-legacy-sim"), "ledger", "--db", "sqlite:" + sim.db_path,
                        "--journal"], capture_output=True, text=True, timeout=30 * SLOW,
                       check=False, env=base_env())
    assert p.returncode == 0, p.stderr
    return [json.loads(line) for line in p.stdout.splitlines()]


def exactly_once(sim, posted_ids):
    """Asserts the host holds each posted transfer in effect exactly once and nothing else:
    its ledger says approved for exactly the posted RRNs, and its journal shows, for each, one
    application more than the reversals that undid one (a reversal of a transmission that
    never arrived undoes nothing). Returns the ledger by RRN."""
    import iso8583 as iso
    _, records = host_ledger(sim)
    want = {iso.rrn(t) for t in posted_ids}
    by_rrn = {}
    for r in records:
        assert r["rrn"] not in by_rrn, f"RRN {r['rrn']} listed twice"
        by_rrn[r["rrn"]] = r
    approved = {rrn for rrn, r in by_rrn.items() if r["state"] == "approved"}
    assert approved == want, (f"{len(want - approved)} posted transfers not in effect, "
                              f"{len(approved - want)} in effect but never posted")
    in_effect = {}
    for ev in journal(sim):
        delta = {"apply": 1, "reverse": -1}.get(ev["kind"], 0)
        in_effect[ev["rrn"]] = in_effect.get(ev["rrn"], 0) + delta
    wrong = {rrn: n for rrn, n in in_effect.items() if n != (1 if rrn in want else 0)}
    assert not wrong, f"applications minus undoing reversals: {list(wrong.items())[:5]}"
    return by_rrn
