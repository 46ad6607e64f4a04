"""COFRE_JWKS_URL over https: the key set is fetched with certificate and name checks. A
JWK Set served by `openssl s_server -WWW` with a development certificate is accepted when the
certificate is trusted (SSL_CERT_FILE) and matches the URL's host, by name or by IP address;
otherwise the service stays not ready, and its log says why."""

import os
import signal
import socket
import subprocess
import time

import pytest
import requests

from authlib import AUDIENCE, ISSUER, SLOW, Proc, base_env, bearer


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_cert(d, name, san):
    key, cert = os.path.join(d, f"{name}.key"), os.path.join(d, f"{name}.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-days", "1", "-subj", "/CN=cofre test",
                    "-addext", f"subjectAltName={san}", "-keyout", key, "-out", cert],
                   check=True, capture_output=True, timeout=30)
    return key, cert


class TlsServer:
    """openssl s_server -WWW serving the files of a directory."""

    def __init__(self, directory, key, cert):
        self.port = free_port()
        self.proc = subprocess.Popen(["openssl", "s_server", "-quiet", "-WWW", "-accept",
                                      f"127.0.0.1:{self.port}", "-key", key, "-cert", cert],
                                     cwd=str(directory), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10 * SLOW
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                assert time.monotonic() < deadline, "openssl s_server did not start"
                time.sleep(0.05)

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=10)


@pytest.fixture
def served(fresh, tmp_path):
    """A cofre-auth whose JWK Set is also in tmp_path/jwks.json, and the directory."""
    auth = fresh.auth()
    (tmp_path / "jwks.json").write_text(requests.get(auth.url("/.well-known/jwks.json"),
                                                     timeout=5).text)
    return auth, tmp_path


def core(fresh, wd, url, ready=True, **extra):
    env = base_env(COFRE_DB=f"sqlite:{wd}/core.db", COFRE_AUTH_ISSUER=ISSUER,
                   COFRE_AUTH_AUDIENCE=AUDIENCE, COFRE_JWKS_URL=url, **extra)
    p = Proc("cofre-core", env, wd)
    fresh.started.append(p)
    return p.start(ready=ready)


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1"])
def test_trusted_certificate(fresh, served, host):
    auth, d = served
    key, cert = make_cert(str(d), "server", "DNS:localhost,IP:127.0.0.1")
    srv = TlsServer(d, key, cert)
    try:
        c = core(fresh, d, f"https://{host}:{srv.port}/jwks.json", SSL_CERT_FILE=cert)
        secret = auth.add_client("tls", scopes="accounts:read")
        fresh.secrets.append(secret)
        r = requests.get(c.url("/v1/accounts"), headers=bearer(auth.token("tls", secret)),
                         timeout=5)
        assert r.status_code == 200, r.text
    finally:
        srv.stop()


def test_untrusted_or_mismatched_certificate(fresh, served):
    auth, d = served
    key, cert = make_cert(str(d), "server", "DNS:localhost,IP:127.0.0.1")
    _, stranger = make_cert(str(d), "stranger", "DNS:localhost")
    other_key, other_cert = make_cert(str(d), "other", "DNS:elsewhere.test")
    srv, other = TlsServer(d, key, cert), TlsServer(d, other_key, other_cert)
    cases = [
        ("no trust", f"https://localhost:{srv.port}/jwks.json", {}),
        ("another certificate trusted", f"https://localhost:{srv.port}/jwks.json",
         {"SSL_CERT_FILE": stranger}),
        ("name mismatch", f"https://localhost:{other.port}/jwks.json",
         {"SSL_CERT_FILE": other_cert}),
    ]
    try:
        for i, (what, url, extra) in enumerate(cases):
            wd = d / f"core{i}"
            wd.mkdir()
            c = core(fresh, wd, url, ready=False, **extra)
            deadline = time.monotonic() + 3 * SLOW
            while time.monotonic() < deadline:
                assert requests.get(c.url("/readyz"), timeout=5).status_code == 503, what
                time.sleep(0.2)
            warn = c.find_log(lambda o: o.get("msg") == "token keys not refreshed")
            assert warn is not None and "TLS" in warn["error"], (what, c.text()[-2000:])
            assert c.metric("cofre_jwks_keys") == 0
    finally:
        srv.stop()
        other.stop()
