"""The cofre-core image, run the way Kubernetes runs it.

`make test-image` builds the image (deploy/docker/build.sh) and runs this file with
COFRE_IMAGE (the image reference) and COFRE_CONTAINER_ENGINE (podman or docker) set. The
container runs with a read-only root file system, a volume for the SQLite database, a tmpfs
for /tmp,
every capability dropped, no privilege escalation and the image's own non-root user, on a free
loopback port. The tests check readiness, the HEALTHCHECK command, what the image holds (no
shell, package manager or compiler) and its size, and then a real transfer through the ledger
API with an Idempotency-Key, replayed once.

The ledger API is checked as soon as it exists: a missing route fails the test, it is never
skipped. Tokens: the test mints an ES256 token (RFC 9068) against a JWKS file it mounts, so the
same test keeps working once the core enforces tokens.
"""

import base64
import json
import os
import shutil
import socket
import subprocess
import tarfile
import tempfile
import time
import uuid

import jwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import ec

ENGINE = os.environ.get("COFRE_CONTAINER_ENGINE", "podman")
IMAGE = os.environ.get("COFRE_IMAGE", "")
SIZE_GOAL_BYTES = 50 * 1000 * 1000
READY_TIMEOUT_S = 30
ISSUER = "http://cofre-auth.test"
AUDIENCE = "cofre-api"
KID = "image-test-1"


def engine(*args, check=True, **kw):
    """Runs the container engine; returns the CompletedProcess (text mode)."""
    return subprocess.run([ENGINE, *args], check=check, capture_output=True, text=True,
                          timeout=120, **kw)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def b64url(n, size):
    return base64.urlsafe_b64encode(n.to_bytes(size, "big")).rstrip(b"=").decode()


@pytest.fixture(scope="module")
def signing_key(tmp_dir):
    """An ES256 key; its public half is written as jwks.json in the mounted directory."""
    key = ec.generate_private_key(ec.SECP256R1())
    pub = key.public_key().public_numbers()
    jwks = {"keys": [{"kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": KID,
                      "x": b64url(pub.x, 32), "y": b64url(pub.y, 32)}]}
    path = os.path.join(tmp_dir, "jwks.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(jwks, f)
    os.chmod(path, 0o644)
    return key


@pytest.fixture(scope="module")
def tmp_dir():
    d = tempfile.mkdtemp(prefix="cofre-image-test-")
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def token(signing_key):
    now = int(time.time())
    claims = {"iss": ISSUER, "sub": "image-test", "aud": AUDIENCE, "iat": now, "nbf": now,
              "exp": now + 600, "jti": str(uuid.uuid4()), "client_id": "image-test",
              "scope": "accounts:read accounts:write transfers:read transfers:write "
                       "ledger:admin"}
    return jwt.encode(claims, signing_key, algorithm="ES256",
                      headers={"kid": KID, "typ": "at+jwt"})


@pytest.fixture(scope="module")
def container(tmp_dir, signing_key):
    """cofre-core from the image, hardened as in deploy/k8s; yields (name, base_url)."""
    if not IMAGE:
        pytest.fail("COFRE_IMAGE is not set: run this through `make test-image`")
    port = free_port()
    name = f"cofre-image-test-{os.getpid()}"
    # The database volume: a directory owned by the image's user, as an emptyDir with the
    # pod's fsGroup is on Kubernetes. (A podman tmpfs over the image's directory comes up
    # root-owned with the directory's mode 0750, so a bind mount is used for both engines.)
    data_dir = os.path.join(tmp_dir, "data")
    os.mkdir(data_dir, 0o700)
    os.chown(data_dir, 10001, 10001)
    engine("rm", "-f", name, check=False)
    hardening = ["--read-only", "--tmpfs", "/tmp:rw,size=16m,mode=1777", "--cap-drop=ALL",
                 "--security-opt=no-new-privileges", "-v", f"{data_dir}:/var/lib/cofre"]
    # The schema first, as the Kubernetes migration Job does (`cofre-core migrate`), then the
    # service with COFRE_MIGRATE=off, as the Deployment runs it.
    migrate = engine("run", "--rm", "--network=host", *hardening, IMAGE, "migrate", check=False)
    if migrate.returncode != 0:
        pytest.fail(f"`cofre-core migrate` from the image failed:\n{migrate.stderr}")
    engine("run", "-d", "--name", name, "--network=host", *hardening,
           "-v", f"{tmp_dir}:/etc/cofre/jwks:ro",
           "-e", f"COFRE_LISTEN=127.0.0.1:{port}", "-e", "COFRE_THREADS=2",
           "-e", "COFRE_MIGRATE=off", "-e", "COFRE_DRAIN_S=3", "-e", "COFRE_SHUTDOWN_TIMEOUT_S=5",
           "-e", f"COFRE_AUTH_ISSUER={ISSUER}", "-e", f"COFRE_AUTH_AUDIENCE={AUDIENCE}",
           "-e", "COFRE_JWKS_FILE=/etc/cofre/jwks/jwks.json",
           IMAGE)
    base = f"http://127.0.0.1:{port}"
    try:
        yield name, base
    finally:
        logs = engine("logs", name, check=False)
        print("container log:\n" + logs.stdout[-4000:] + logs.stderr[-4000:])
        engine("rm", "-f", "-t", "5", name, check=False)


def wait_ready(name, base):
    deadline = time.monotonic() + READY_TIMEOUT_S
    last = None
    while time.monotonic() < deadline:
        state = engine("inspect", "--format", "{{.State.Running}}", name).stdout.strip()
        if state != "true":
            logs = engine("logs", name, check=False)
            pytest.fail(f"the container exited before ready:\n{logs.stdout}{logs.stderr}")
        try:
            last = requests.get(base + "/readyz", timeout=2)
            if last.status_code == 200:
                return
        except requests.ConnectionError as e:
            last = e
        time.sleep(0.3)
    pytest.fail(f"/readyz not 200 within {READY_TIMEOUT_S}s: last answer {last}")


def test_ready_on_read_only_root(container, tmp_dir):
    """The service starts and gets ready with nothing writable but its tmpfs mounts."""
    name, base = container
    wait_ready(name, base)
    inspect = json.loads(engine("inspect", name).stdout)[0]
    assert inspect["HostConfig"]["ReadonlyRootfs"] is True
    assert inspect["Config"]["User"] == "10001:10001", inspect["Config"]["User"]
    assert requests.get(base + "/healthz", timeout=2).status_code == 200
    metrics = requests.get(base + "/metrics", timeout=2).text
    assert 'cofre_build_info{service="cofre-core"' in metrics, metrics[:500]
    db = os.path.join(tmp_dir, "data", "core.db")
    assert os.path.exists(db), "the SQLite database is not on the mounted volume"
    assert os.stat(db).st_uid == 10001, "the database is not owned by the image's user"


def test_healthcheck_command(container):
    """The image's HEALTHCHECK command (cofre-probe, no shell in the image) passes."""
    name, base = container
    wait_ready(name, base)
    hc = engine("inspect", "--format", "{{json .Config.Healthcheck.Test}}", name).stdout
    assert json.loads(hc) == ["CMD", "/usr/local/bin/cofre-probe", "/healthz"], hc
    run = engine("exec", name, "/usr/local/bin/cofre-probe", "/healthz", check=False)
    assert run.returncode == 0, run.stderr
    bad = engine("exec", name, "/usr/local/bin/cofre-probe", "/no-such-path", check=False)
    assert bad.returncode == 1, (bad.returncode, bad.stderr)


def test_image_contents_and_size(container):
    """No shell, package manager or compiler; root-owned files; size within the goal."""
    name, _ = container
    with tempfile.TemporaryDirectory() as d:
        tar_path = os.path.join(d, "fs.tar")
        engine("export", "-o", tar_path, name)
        with tarfile.open(tar_path) as tar:
            members = {m.name.lstrip("./"): m for m in tar.getmembers()}
    banned = ["bin/sh", "bin/bash", "usr/bin/sh", "usr/bin/apt", "usr/bin/apt-get",
              "usr/bin/dpkg", "usr/bin/gcc", "usr/bin/cc", "usr/bin/perl", "bin/busybox"]
    present = [b for b in banned if b in members]
    assert not present, f"the runtime image holds {present}"
    assert "usr/local/bin/cofre-core" in members
    binary = members["usr/local/bin/cofre-core"]
    assert binary.uid == 0 and not binary.mode & 0o022, "binary must be root-owned, not writable"
    assert members["var/lib/cofre"].uid == 10001
    size = int(engine("image", "inspect", "--format", "{{.Size}}", IMAGE).stdout.strip())
    print(f"image {IMAGE}: {size} bytes ({size / 1e6:.1f} MB), goal <= 50 MB")
    assert size <= SIZE_GOAL_BYTES, f"image is {size / 1e6:.1f} MB, over the 50 MB goal"


def post(base, path, body, token, key=None):
    headers = {"Authorization": f"Bearer {token}",
               "Idempotency-Key": key or str(uuid.uuid4())}
    return requests.post(base + path, json=body, headers=headers, timeout=5)


def must(resp, status, what):
    if resp.status_code == 404 and "account_not_found" not in resp.text:
        pytest.fail(f"{what}: route {resp.request.method} {resp.request.path_url} is missing "
                    f"(404) in this image: the ledger API must answer here")
    assert resp.status_code == status, f"{what}: {resp.status_code} {resp.text}"
    return resp.json()


def test_transfer(container, token):
    """Open a settlement and a customer account, move money, replay with the same key."""
    name, base = container
    wait_ready(name, base)
    owner = "image-test"
    settle = must(post(base, "/v1/accounts", {"owner": owner, "currency": "EUR",
                                              "flags": {"no_overdraft": False}}, token),
                  201, "open settlement account")
    cust = must(post(base, "/v1/accounts", {"owner": owner, "currency": "EUR"}, token),
                201, "open customer account")
    key = str(uuid.uuid4())
    body = {"debit_account_id": settle["id"], "credit_account_id": cust["id"],
            "amount": 12345, "currency": "EUR", "reference": "image test"}
    first = post(base, "/v1/transfers", body, token, key)
    transfer = must(first, 201, "transfer")
    assert transfer["amount"] == 12345
    again = post(base, "/v1/transfers", body, token, key)
    assert again.status_code == 201, again.text
    assert again.headers.get("Idempotency-Replayed") == "true"
    assert again.json()["id"] == transfer["id"]
    auth = {"Authorization": f"Bearer {token}"}
    got = requests.get(f"{base}/v1/accounts/{cust['id']}", headers=auth, timeout=5)
    assert got.status_code == 200, got.text
    assert got.json()["balance"] == 12345, got.json()
    src = requests.get(f"{base}/v1/accounts/{settle['id']}", headers=auth, timeout=5).json()
    assert src["balance"] == -12345, src


def test_graceful_stop(container):
    """SIGTERM: /readyz fails at once while /healthz still answers (the drain), then exit 0.
    Runs last: it stops the module's container."""
    name, base = container
    wait_ready(name, base)
    engine("kill", "--signal", "TERM", name)
    ready = requests.get(base + "/readyz", timeout=2)
    alive = requests.get(base + "/healthz", timeout=2)
    assert ready.status_code == 503, f"/readyz during the drain: {ready.status_code}"
    assert alive.status_code == 200, f"/healthz during the drain: {alive.status_code}"
    engine("wait", name, check=False)
    code = engine("inspect", "--format", "{{.State.ExitCode}}", name).stdout.strip()
    assert code == "0", f"exit code after SIGTERM: {code}"
