"""The command line: --version, --help, --routes against docs/openapi.yaml, and bad settings.

A bad setting must stop cofre-core at once with a non-zero exit and exactly one stderr line
naming the variable: it never falls back silently (contract, "Configuration").
"""

import os
import subprocess

import pytest
import yaml

from cofre_server import REPO, SLOW, base_env, binary, free_port

HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


def run(args, env=None, timeout=10):
    return subprocess.run([binary()] + args, env=env, stdin=subprocess.DEVNULL,
                          capture_output=True, timeout=timeout * SLOW)


def test_version_prints_name_and_version():
    """--version exits 0 and names the binary and a version."""
    r = run(["--version"])
    assert r.returncode == 0, r
    out = r.stdout.decode()
    assert out.startswith("cofre-core "), out
    assert len(out.split()) >= 2, out


def test_help_lists_settings():
    """--help exits 0 and documents the environment variables."""
    r = run(["--help"])
    assert r.returncode == 0, r
    out = r.stdout.decode()
    for var in ("COFRE_LISTEN", "COFRE_DB", "COFRE_DRAIN_S", "COFRE_SHUTDOWN_TIMEOUT_S"):
        assert var in out, f"--help does not mention {var}"


def openapi_routes():
    with open(os.path.join(REPO, "docs", "openapi.yaml")) as f:
        doc = yaml.safe_load(f)
    return {(m.upper(), path) for path, item in doc["paths"].items()
            for m in item if m in HTTP_METHODS}


def test_routes_equal_openapi():
    """--routes prints 'METHOD TEMPLATE' per line, sorted, and equals docs/openapi.yaml's paths
    (a route served but undocumented fails, and so does a documented route not served)."""
    r = run(["--routes"])
    assert r.returncode == 0, r
    lines = [l for l in r.stdout.decode().splitlines() if l.strip()]
    assert lines, "no routes printed"
    # "Sorted": by the whole line, or by template then method; either is a stable order.
    by_route = sorted(lines, key=lambda l: (l.split()[-1], l.split()[0]))
    assert lines in (sorted(lines), by_route), f"--routes is not sorted: {lines}"
    served = set()
    for line in lines:
        parts = line.split()
        assert len(parts) == 2, f"not 'METHOD TEMPLATE': {line!r}"
        assert (parts[0], parts[1]) not in served, f"duplicate route {line!r}"
        served.add((parts[0], parts[1]))
    documented = openapi_routes()
    assert served - documented == set(), f"served but not in openapi.yaml: {served - documented}"
    assert documented - served == set(), f"in openapi.yaml but not served: {documented - served}"


BAD_SETTINGS = [
    ("COFRE_THREADS", "abc"),
    ("COFRE_THREADS", "0"),
    ("COFRE_LISTEN", "nonsense"),
    ("COFRE_LISTEN", "127.0.0.1:99999"),
    ("COFRE_DB", "mysql://x"),
    ("COFRE_LOG_LEVEL", "loud"),
    ("COFRE_DRAIN_S", "-1"),
    ("COFRE_SHUTDOWN_TIMEOUT_S", "soon"),
]


@pytest.mark.parametrize("var,value", BAD_SETTINGS, ids=[f"{v}={x}" for v, x in BAD_SETTINGS])
def test_bad_setting_stops_at_once(var, value, backend, tmp_path):
    """A malformed setting: non-zero exit within seconds, one stderr line naming the variable,
    and the service never reports that it is listening."""
    env = base_env(free_port(), backend.new_db(tmp_path), **{var: value})
    try:
        r = run([], env=env, timeout=5)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{var}={value!r}: cofre-core kept running instead of exiting")
    err = r.stderr.decode().strip().splitlines()
    assert r.returncode != 0, f"{var}={value!r} exited 0"
    assert len(err) == 1, f"{var}={value!r}: expected one stderr line, got {err}"
    assert var in err[0], f"the stderr line does not name {var}: {err[0]!r}"
    assert b'"listening"' not in r.stdout, r.stdout
