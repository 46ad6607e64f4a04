"""Running cofre-legacy-sim for the black-box tests, and talking to it.

SimProcess starts the binary from COFRE_BIN_DIR (default build/bin) on loopback port 0 for
both the ISO 8583 port and the control port, reads the ports from its "listening" log line,
keeps every stdout line, and stops it with SIGTERM. Client speaks framed ISO 8583 using the
independent Python codec in iso8583.py. Every wait is bounded; under sanitizers
(COFRE_SANITIZED=1) the bounds are stretched.
"""

import json
import os
import signal
import socket
import subprocess
import threading
import time
import uuid

import iso8583 as iso

SLOW = 4.0 if os.environ.get("COFRE_SANITIZED") else 1.0
START_TIMEOUT_S = 10.0 * SLOW
ANSWER_TIMEOUT_S = 5.0 * SLOW
HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", ".."))


def binary():
    d = os.environ.get("COFRE_BIN_DIR") or os.path.join(REPO, "build", "bin")
    path = os.path.join(d, "cofre-legacy-sim")
    if not os.access(path, os.X_OK):
        raise RuntimeError(f"{path} is missing: build first or set COFRE_BIN_DIR")
    return path


def base_env(**extra):
    env = {k: v for k, v in os.environ.items()
           if k in ("PATH", "ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS", "TZ", "LANG")}
    env.update({"COFRE_LISTEN": "127.0.0.1:0", "COFRE_SIM_CONTROL": "127.0.0.1:0",
                "COFRE_LOG_LEVEL": "info"})
    env.update({k: str(v) for k, v in extra.items()})
    return env


def run(args, env=None, timeout=10.0 * SLOW):
    """Runs the binary to completion: (returncode, stdout, stderr)."""
    p = subprocess.run([binary()] + list(args), env=env or base_env(), capture_output=True,
                       text=True, timeout=timeout, check=False)
    return p.returncode, p.stdout, p.stderr


class SimProcess:
    """One running simulator with its ledger file in workdir."""

    def __init__(self, workdir, **env):
        self.db_path = os.path.join(str(workdir), "sim.db")
        self.env = base_env(COFRE_DB="sqlite:" + self.db_path, **env)
        self.proc = None
        self.lines = []
        self.iso_port = None
        self.control_port = None
        self._reader = None
        self._control = None
        self.exits = []  # exit status of every run, with the lines that mention a sanitizer

    def start(self):
        self.proc = subprocess.Popen([binary()], env=self.env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            for line in list(self.lines):
                rec = parse_log(line)
                if rec and rec.get("msg") == "listening":
                    self.iso_port = rec["iso_port"]
                    self.control_port = rec["control_port"]
                    return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        self.stop()
        raise RuntimeError("simulator did not start:\n" + "\n".join(self.lines))

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def stop(self, sig=signal.SIGTERM):
        """Stops the process; returns its exit status."""
        if self._control is not None:
            self._control.close()
            self._control = None
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout=10 * SLOW)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self._reader.join(timeout=5)
        self.proc = None
        flagged = [line for line in self.lines
                   if "Sanitizer" in line or "runtime error:" in line]
        self.exits.append((rc, flagged))
        return rc

    def restart(self):
        self.stop()
        self.lines = []
        return self.start()

    # -- control port ----------------------------------------------------------------------

    def control(self, line):
        """Sends one command on a kept control connection; returns the reply line."""
        if self._control is None:
            s = socket.create_connection(("127.0.0.1", self.control_port), timeout=5 * SLOW)
            self._control = s.makefile("rwb")
            self._control_sock = s
        self._control.write(line.encode() + b"\n")
        self._control.flush()
        reply = self._control.readline()
        if not reply:
            raise ConnectionError("control connection closed")
        return reply.decode().rstrip("\n")

    def ok(self, line):
        reply = self.control(line)
        assert reply == "ok", f"{line!r} -> {reply!r}"

    def status(self):
        return json.loads(self.control("status"))

    # -- ledger ----------------------------------------------------------------------------

    def ledger(self, journal=False):
        args = ["ledger", "--db", "sqlite:" + self.db_path] + (["--journal"] if journal else [])
        rc, out, err = run(args)
        assert rc == 0, err
        return [json.loads(line) for line in out.splitlines()]

    def ledger_by_rrn(self):
        return {r["rrn"]: r for r in self.ledger()}

    def logs(self):
        return [r for r in (parse_log(line) for line in self.lines) if r is not None]

    # -- clients ---------------------------------------------------------------------------

    def connect(self, sign_on=True, rcvbuf=None):
        c = Client(self.iso_port, rcvbuf=rcvbuf)
        if sign_on:
            c.sign_on()
        return c


def parse_log(line):
    try:
        rec = json.loads(line)
    except ValueError:
        return None
    return rec if isinstance(rec, dict) else None


class Transfer:
    """A posted transfer as the adapter would send it."""

    def __init__(self, amount=12345, currency="BRL", tid=None):
        self.id = tid or str(uuid.uuid4())
        self.debit = str(uuid.uuid4())
        self.credit = str(uuid.uuid4())
        self.amount = amount
        self.currency = currency
        self.posted = time.time()

    @property
    def rrn(self):
        return iso.rrn(self.id)


class Client:
    """One ISO 8583 connection to the simulator. STANs count up per client."""

    def __init__(self, port, timeout=ANSWER_TIMEOUT_S, rcvbuf=None):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:  # a small window, to make the host's output back up
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.stan = 0

    def close(self):
        self.sock.close()

    def next_stan(self):
        self.stan = self.stan % 999999 + 1
        return self.stan

    def send(self, mti, fields):
        self.sock.sendall(iso.encode_frame(mti, fields))

    def send_raw(self, data):
        self.sock.sendall(data)

    def read_exact(self, n, timeout=ANSWER_TIMEOUT_S):
        """n bytes, or fewer if the connection closes first (socket.timeout if none come)."""
        self.sock.settimeout(timeout)
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                break
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def recv(self, timeout=ANSWER_TIMEOUT_S):
        """The next answer as (mti, fields); raises socket.timeout, or EOFError on close."""
        head = self.read_exact(2, timeout)
        if len(head) < 2:
            raise EOFError("connection closed")
        n = int.from_bytes(head, "big")
        body = self.read_exact(n, timeout)
        if len(body) < n:
            raise EOFError(f"connection closed inside a frame ({len(body)} of {n} bytes)")
        return iso.decode(body)

    def closed(self, timeout=ANSWER_TIMEOUT_S):
        """True when the peer closes (EOF or reset) within timeout with no further bytes."""
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False
        self.buf += data
        return data == b""

    def call(self, mti, fields, timeout=ANSWER_TIMEOUT_S):
        self.send(mti, fields)
        return self.recv(timeout)

    def sign_on(self):
        mti, f = self.call("0800", iso.network_fields("001", self.next_stan(), time.time()))
        assert (mti, f[39]) == ("0810", "00"), (mti, f)

    def transfer_fields(self, t, stan=None, sent=None):
        return iso.transfer_fields(t.id, t.debit, t.credit, t.amount, t.currency,
                                   stan or self.next_stan(), sent or time.time(), t.posted)

    def post(self, t, timeout=ANSWER_TIMEOUT_S):
        """Sends the 0200 of t; returns (request fields, answer fields)."""
        req = self.transfer_fields(t)
        mti, f = self.call("0200", req, timeout)
        assert mti == "0210", mti
        assert f[11] == req[11] and f[37] == req[37], (req, f)
        return req, f

    def reverse(self, original, timeout=ANSWER_TIMEOUT_S):
        req = iso.reversal_fields(original, self.next_stan(), time.time())
        mti, f = self.call("0400", req, timeout)
        assert mti == "0410", mti
        assert f[11] == req[11] and f[37] == req[37], (req, f)
        return req, f
