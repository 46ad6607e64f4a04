"""Running cofre-auth and cofre-core (with token checks on) for the black-box tests.

Proc starts a binary from COFRE_BIN_DIR on 127.0.0.1:0, learns its port from the "listening"
log line, waits for /readyz, keeps every stdout line, and stops it with SIGTERM (which must
end in exit 0). Auth wraps a cofre-auth with its own registry (SQLite, or a PostgreSQL
database: authdb.py) and keys directory and runs its command line; core() starts a cofre-core that fetches that server's JWKS and
revocation list. Forger signs any header and claims with the server's real private key, so a
test can build exactly the broken token it needs. Every wait is bounded; under sanitizers
(COFRE_SANITIZED=1) the bounds are stretched.
"""

import base64
import glob
import json
import os
import re
import signal
import subprocess
import threading
import time

import jwt
import requests
from cryptography.hazmat.primitives import serialization

SLOW = 4.0 if os.environ.get("COFRE_SANITIZED") else 1.0
READY_TIMEOUT_S = 20.0 * SLOW
HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", ".."))
ISSUER = "https://cofre.test"
AUDIENCE = "cofre-api"
ALL_SCOPES = "accounts:read accounts:write transfers:read transfers:write audit:read ledger:admin"
# Cheap Argon2id for the tests that hash a lot; the defaults are measured in the bench.
FAST_ARGON2 = {"COFRE_AUTH_ARGON2_OPSLIMIT": "1", "COFRE_AUTH_ARGON2_MEMLIMIT_KIB": "1024"}


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


class Proc:
    """One running service."""

    def __init__(self, name, env, workdir):
        self.name = name
        self.env = env
        self.workdir = str(workdir)
        self.proc = None
        self.lines = []
        self.port = None
        self.base = None
        self.returncode = None
        self.stderr_path = os.path.join(self.workdir, f"{name}-{id(self)}.stderr")

    def start(self, ready=True):
        """Starts; waits for the listening line, then (unless ready=False) for /readyz 200."""
        with open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen([binary(self.name)], env=self.env, cwd=self.workdir,
                                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                         stderr=err, start_new_session=True)
        threading.Thread(target=self._read, daemon=True).start()
        deadline = time.monotonic() + READY_TIMEOUT_S
        while self.port is None:
            self._check_alive()
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"{self.name} never said it was listening: {self.text()}")
            line = self.find_log(lambda o: o.get("msg") == "listening")
            if line is not None:
                self.port = line["port"]
            time.sleep(0.01)
        self.base = f"http://127.0.0.1:{self.port}"
        if ready:
            self.wait_ready(deadline)
        return self

    def _read(self):
        for raw in self.proc.stdout:
            self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))

    def _check_alive(self):
        rc = self.proc.poll()
        if rc is not None:
            raise RuntimeError(f"{self.name} exited with {rc}: stderr {self.stderr()!r}; "
                               f"stdout {self.text()[-3000:]!r}")

    def wait_ready(self, deadline):
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                if requests.get(self.base + "/readyz", timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"{self.name} not ready: {self.text()[-3000:]}")

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

    def metric(self, name, **labels):
        """The value of one series of /metrics (0 when absent)."""
        text = requests.get(self.url("/metrics"), timeout=5).text
        want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        for line in text.splitlines():
            if line.startswith("#"):
                continue
            m = re.match(r"^([a-z_]+)(\{[^}]*\})? (\S+)$", line)
            if not m or m.group(1) != name:
                continue
            got = ",".join(sorted((m.group(2) or "{}")[1:-1].split(","))) if m.group(2) else ""
            if got == want:
                return float(m.group(3))
        return 0.0

    def stop(self, timeout=20):
        """SIGTERM; returns the exit code (SIGKILL and an error on a hang)."""
        if self.returncode is not None:
            return self.returncode
        if self.proc is None:
            return 0  # never started
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.returncode = self.proc.wait(timeout=timeout * SLOW)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"{self.name} did not exit within {timeout}s of SIGTERM")
        return self.returncode

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)
        self.returncode = self.proc.returncode if self.proc is not None else None


class Auth(Proc):
    """A cofre-auth with its own registry in workdir (a SQLite file), or on db (a COFRE_DB
    value of backend, see authdb.py) with the keys in keys_dir: replicas share both."""

    def __init__(self, workdir, db=None, backend=None, keys_dir=None, **env):
        import authdb
        self.backend = backend or authdb.SqliteDb()
        self.db = db or "sqlite:" + os.path.join(str(workdir), "auth.db")
        self.db_path = self.db[len("sqlite:"):] if self.db.startswith("sqlite:") else None
        self.keys_dir = keys_dir or os.path.join(str(workdir), "auth-keys")
        e = base_env(COFRE_DB=self.db, COFRE_AUTH_KEYS_DIR=self.keys_dir,
                     COFRE_AUTH_ISSUER=ISSUER, COFRE_AUTH_AUDIENCE=AUDIENCE, **env)
        super().__init__("cofre-auth", e, workdir)

    def query(self, sql):
        """Rows of one read-only SQL statement on this server's registry."""
        return self.backend.query(self.db, sql)

    def stored_text(self):
        """Everything the registry stores, as text."""
        return self.backend.stored_text(self.db)

    def cli(self, *args, check=True, timeout=30):
        """Runs `cofre-auth ARGS...` against this registry: (returncode, stdout, stderr)."""
        r = subprocess.run([binary("cofre-auth")] + list(args), env=self.env, cwd=self.workdir,
                           stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=timeout * SLOW, check=False)
        if check and r.returncode != 0:
            raise AssertionError(f"cofre-auth {' '.join(args)}: {r.returncode} {r.stderr}")
        return r.returncode, r.stdout, r.stderr

    def add_client(self, name, scopes=ALL_SCOPES, owner=None):
        """Registers a client; returns its secret (printed once)."""
        args = ["client", "add", "--name", name, "--scopes", scopes]
        if owner is not None:
            args += ["--owner", owner]
        _, out, _ = self.cli(*args)
        m = re.search(r"^client_secret: (\S+)$", out, re.M)
        assert m, out
        return m.group(1)

    def token_response(self, client, secret, scope=None, method="basic", session=None):
        data = {"grant_type": "client_credentials"}
        if scope is not None:
            data["scope"] = scope
        auth = None
        if method == "basic":
            auth = (client, secret)
        else:
            data.update(client_id=client, client_secret=secret)
        s = session or requests
        return s.post(self.url("/oauth/token"), data=data, auth=auth, timeout=15)

    def token(self, client, secret, scope=None, session=None):
        r = self.token_response(client, secret, scope, session=session)
        assert r.status_code == 200, f"token for {client}: {r.status_code} {r.text}"
        return r.json()["access_token"]

    def introspect(self, token, client, secret):
        r = requests.post(self.url("/oauth/introspect"), data={"token": token},
                          auth=(client, secret), timeout=15)
        assert r.status_code == 200, r.text
        return r.json()

    def jwks(self):
        r = requests.get(self.url("/.well-known/jwks.json"), timeout=5)
        assert r.status_code == 200, r.text
        return r.json()

    def core(self, workdir, **env):
        """A cofre-core that checks tokens against this server."""
        e = base_env(COFRE_DB="sqlite:" + os.path.join(str(workdir), "core.db"),
                     COFRE_AUTH_ISSUER=ISSUER, COFRE_AUTH_AUDIENCE=AUDIENCE,
                     COFRE_JWKS_URL=self.url("/.well-known/jwks.json"),
                     COFRE_AUTH_REVOCATIONS_URL=self.url("/oauth/revocations"),
                     COFRE_AUTH_REVOCATIONS_REFRESH_S="1", **env)
        return Proc("cofre-core", e, workdir).start()

    def private_keys(self):
        """{kid: private key} of every key file."""
        out = {}
        for path in glob.glob(os.path.join(self.keys_dir, "*.pem")):
            with open(path, "rb") as f:
                out[os.path.basename(path)[:-4]] = serialization.load_pem_private_key(
                    f.read(), password=None)
        return out


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class Forger:
    """Builds tokens signed with a cofre-auth's real current key."""

    def __init__(self, auth):
        kids = [k["kid"] for k in auth.jwks()["keys"]]
        keys = auth.private_keys()
        assert len(kids) == 1 and kids[0] in keys, (kids, list(keys))
        self.kid = kids[0]
        self.key = keys[self.kid]

    def claims(self, **over):
        now = int(time.time())
        c = {"iss": ISSUER, "sub": "forger", "aud": AUDIENCE, "exp": now + 600, "iat": now,
             "nbf": now, "jti": f"forged-{time.monotonic_ns()}", "scope": ALL_SCOPES,
             "client_id": "forger"}
        c.update(over)
        return {k: v for k, v in c.items() if v is not None}

    def token(self, headers=None, **over):
        h = {"kid": self.kid, "typ": "at+jwt"}
        h.update(headers or {})
        return jwt.encode(self.claims(**over), self.key, algorithm="ES256", headers=h)


def bearer(token):
    return {"Authorization": f"Bearer {token}"}
