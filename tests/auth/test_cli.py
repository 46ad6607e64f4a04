"""The command lines: cofre-auth's client and key commands, its routes against
docs/openapi-auth.yaml, and the settings of both binaries (each bad or missing one stops the
service with one line naming it; COFRE_AUTH=off only when asked, with a warning)."""

import os
import re
import stat
import subprocess

import pytest
import requests
import yaml

from authlib import (ALL_SCOPES, AUDIENCE, FAST_ARGON2, ISSUER, REPO, SLOW, Auth, Proc,
                     base_env, bearer, binary)

HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


def run(name, args, env, cwd=None, timeout=15):
    return subprocess.run([binary(name)] + args, env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=timeout * SLOW)


def test_version_and_help():
    r = run("cofre-auth", ["--version"], base_env())
    assert r.returncode == 0 and r.stdout.startswith("cofre-auth "), r
    r = run("cofre-auth", ["--help"], base_env())
    assert r.returncode == 0
    for word in ("client add", "client ensure", "keys rotate", "COFRE_AUTH_ISSUER",
                 "COFRE_AUTH_TOKEN_TTL_S", "COFRE_AUTH_THROTTLE_CLIENT", "COFRE_DB"):
        assert word in r.stdout, word
    r = run("cofre-core", ["--help"], base_env())
    assert "COFRE_AUTH" in r.stdout


def test_routes_equal_openapi_auth():
    """--routes prints exactly the paths of docs/openapi-auth.yaml (both ways)."""
    r = run("cofre-auth", ["--routes"], base_env())
    assert r.returncode == 0, r
    served = {tuple(line.split()) for line in r.stdout.splitlines() if line.strip()}
    with open(os.path.join(REPO, "docs", "openapi-auth.yaml")) as f:
        doc = yaml.safe_load(f)
    documented = {(m.upper(), path) for path, item in doc["paths"].items()
                  for m in item if m in HTTP_METHODS}
    assert served - documented == set(), f"served, not documented: {served - documented}"
    assert documented - served == set(), f"documented, not served: {documented - served}"


AUTH_BAD = [
    ({"COFRE_AUTH_ISSUER": None}, "COFRE_AUTH_ISSUER"),
    ({"COFRE_AUTH_AUDIENCE": ""}, "COFRE_AUTH_AUDIENCE"),
    ({"COFRE_AUTH_TOKEN_TTL_S": "5"}, "COFRE_AUTH_TOKEN_TTL_S"),
    ({"COFRE_AUTH_ARGON2_MEMLIMIT_KIB": "lots"}, "COFRE_AUTH_ARGON2_MEMLIMIT_KIB"),
    ({"COFRE_AUTH_THROTTLE_ADDRESS": "10"}, "COFRE_AUTH_THROTTLE_ADDRESS"),
    ({"COFRE_DB": "postgres://x/y", "COFRE_AUTH_KEYS_DIR": None}, "COFRE_AUTH_KEYS_DIR"),
]


@pytest.mark.parametrize("change,var", AUTH_BAD, ids=[v for _, v in AUTH_BAD])
def test_cofre_auth_bad_settings(tmp_path, change, var):
    env = Auth(tmp_path).env
    for k, v in change.items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = v
    r = run("cofre-auth", [], env, cwd=str(tmp_path))
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2, r
    assert len(lines) == 1 and var in lines[0], lines


CORE_BAD = [
    ({}, "COFRE_AUTH_ISSUER"),
    ({"COFRE_AUTH_ISSUER": ISSUER}, "COFRE_AUTH_AUDIENCE"),
    ({"COFRE_AUTH_ISSUER": ISSUER, "COFRE_AUTH_AUDIENCE": AUDIENCE}, "COFRE_JWKS_URL"),
    ({"COFRE_AUTH_ISSUER": ISSUER, "COFRE_AUTH_AUDIENCE": AUDIENCE,
      "COFRE_JWKS_URL": "file:///etc/jwks"}, "COFRE_JWKS_URL"),
    ({"COFRE_AUTH_ISSUER": ISSUER, "COFRE_AUTH_AUDIENCE": AUDIENCE,
      "COFRE_JWKS_FILE": "/nonexistent/jwks.json"}, "COFRE_JWKS_FILE"),
    ({"COFRE_AUTH_ISSUER": ISSUER, "COFRE_AUTH_AUDIENCE": AUDIENCE,
      "COFRE_JWKS_URL": "http://127.0.0.1:1/j", "COFRE_JWKS_FILE": "/etc/hosts"},
     "COFRE_JWKS_FILE"),
    ({"COFRE_AUTH": "disabled"}, "COFRE_AUTH"),
    ({"COFRE_AUTH": "off", "COFRE_AUTH_LEEWAY_S": "120"}, "COFRE_AUTH_LEEWAY_S"),
]


@pytest.mark.parametrize("env_extra,var", CORE_BAD, ids=[f"{i}-{v}" for i, (_, v) in
                                                         enumerate(CORE_BAD)])
def test_cofre_core_needs_its_token_settings(tmp_path, env_extra, var):
    """Token checks are on by default: without their settings cofre-core does not start."""
    env = base_env(COFRE_DB=f"sqlite:{tmp_path}/core.db", **env_extra)
    r = run("cofre-core", [], env, cwd=str(tmp_path))
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2, r
    assert len(lines) == 1 and var in lines[0], lines
    assert '"listening"' not in r.stdout


def test_auth_off_is_explicit_and_warned(fresh, tmp_path):
    """COFRE_AUTH=off starts without any token setting, says so in a warning, and then every
    caller is the local admin."""
    core = Proc("cofre-core", base_env(COFRE_DB=f"sqlite:{tmp_path}/core.db", COFRE_AUTH="off"),
                tmp_path).start()
    fresh.started.append(core)
    warn = core.find_log(lambda o: "COFRE_AUTH=off" in o.get("msg", ""))
    assert warn is not None and warn["level"] == "warn", core.text()
    assert requests.get(core.url("/v1/accounts"), timeout=5).status_code == 200


def test_core_with_a_jwks_file(fresh, tmp_path):
    """COFRE_JWKS_FILE instead of a URL: tokens of the issuer whose keys it holds pass."""
    auth = fresh.auth()
    secret = auth.add_client("filed", scopes="accounts:read", owner="someone")
    fresh.secrets.append(secret)
    path = tmp_path / "jwks.json"
    path.write_text(requests.get(auth.url("/.well-known/jwks.json"), timeout=5).text)
    core = Proc("cofre-core", base_env(COFRE_DB=f"sqlite:{tmp_path}/core.db",
                                       COFRE_AUTH_ISSUER=ISSUER, COFRE_AUTH_AUDIENCE=AUDIENCE,
                                       COFRE_JWKS_FILE=str(path)), tmp_path).start()
    fresh.started.append(core)
    token = auth.token("filed", secret)
    assert requests.get(core.url("/v1/accounts"), headers=bearer(token),
                        timeout=5).status_code == 200
    assert requests.get(core.url("/v1/accounts"), timeout=5).status_code == 401


def secret_of(out):
    m = re.search(r"^client_secret: (\S+)$", out, re.M)
    assert m, out
    return m.group(1)


def test_client_commands(fresh):
    auth = fresh.auth()
    _, out, err = auth.cli("client", "add", "--name", "shop", "--scopes",
                           "accounts:read transfers:write", "--owner", "shop-owner")
    first = secret_of(out)
    fresh.secrets.append(first)
    assert len(first) >= 43 and "only this once" in err
    # the secret is stored as an Argon2id hash only
    stored = auth.stored_text()
    assert "$argon2id$" in stored and first not in stored
    rc, _, err = auth.cli("client", "add", "--name", "shop", "--scopes", "accounts:read",
                          check=False)
    assert rc == 1 and "exists" in err
    rc, _, err = auth.cli("client", "add", "--name", "x", "--scopes", "payments:all", check=False)
    assert rc == 2 and "--scopes" in err
    rc, _, err = auth.cli("client", "add", "--name", "bad name", "--scopes", "accounts:read",
                          check=False)
    assert rc == 2
    _, out, _ = auth.cli("client", "list")
    rows = [line.split("\t") for line in out.splitlines()]
    assert rows[0] == ["client_id", "owner", "status", "created_at", "scope"]
    assert rows[1][:3] == ["shop", "shop-owner", "enabled"]
    assert rows[1][4] == "accounts:read transfers:write"
    assert auth.token_response("shop", first).status_code == 200
    _, out, _ = auth.cli("client", "rotate-secret", "shop")
    second = secret_of(out)
    fresh.secrets.append(second)
    assert second != first
    assert auth.token_response("shop", first).status_code == 401
    assert auth.token_response("shop", second).status_code == 200
    rc, _, err = auth.cli("client", "disable", "ghost", check=False)
    assert rc == 1 and "no client" in err
    auth.cli("client", "disable", "shop")
    _, out, _ = auth.cli("client", "list")
    assert "\tdisabled\t" in out


def test_client_ensure_is_repeatable(fresh, tmp_path):
    """ensure creates the client once and keeps the secret file working: run again it changes
    nothing; with the file gone it writes a new secret; a secret already in the file (as
    run.sh may write one) becomes the client's."""
    auth = fresh.auth()
    path = tmp_path / "demo.secret"
    args = ["client", "ensure", "--id", "demo", "--scopes", ALL_SCOPES,
            "--secret-file", str(path)]
    _, out, _ = auth.cli(*args)
    assert "created" in out
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    s1 = path.read_text().strip()
    fresh.secrets.append(s1)
    assert auth.token_response("demo", s1).status_code == 200
    _, out, _ = auth.cli(*args)
    assert "holds its secret" in out and path.read_text().strip() == s1
    path.unlink()
    _, out, _ = auth.cli(*args)
    s2 = path.read_text().strip()
    fresh.secrets.append(s2)
    assert s2 != s1 and auth.token_response("demo", s2).status_code == 200
    assert auth.token_response("demo", s1).status_code == 401
    chosen = "c" * 48
    path.write_text(chosen + "\n")
    _, out, _ = auth.cli(*args)
    assert "now the one in" in out
    assert auth.token_response("demo", chosen).status_code == 200
    path.write_text("short\n")
    rc, _, err = auth.cli(*args, check=False)
    assert rc == 1 and "no acceptable secret" in err
    # the client's token names the owner it was made with (the id, without --owner)
    import jwt
    claims = jwt.decode(auth.token("demo", chosen), options={"verify_signature": False})
    assert claims["sub"] == "demo" and claims["scope"] == ALL_SCOPES


def test_keys_are_private_files(fresh):
    """The first start makes one key; its file is 0600 in a 0700 directory; the private key
    appears in no log, no JWK and not in the database."""
    auth = fresh.auth()
    files = os.listdir(auth.keys_dir)
    assert len(files) == 1 and files[0].endswith(".pem")
    assert stat.S_IMODE(os.stat(auth.keys_dir).st_mode) == 0o700
    path = os.path.join(auth.keys_dir, files[0])
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    pem = open(path).read()
    body = "".join(pem.strip().splitlines()[1:-1])
    assert body not in auth.text()
    stored = auth.stored_text()
    assert files[0][:-4] in stored and body[:40] not in stored
    assert all("d" not in k for k in auth.jwks()["keys"])
    _, out, _ = auth.cli("keys", "list")
    assert out.splitlines()[1].split("\t")[:2] == [files[0][:-4], "current"]


def test_migrate_and_unknown_command(tmp_path):
    env = Auth(tmp_path).env
    r = run("cofre-auth", ["migrate"], env, cwd=str(tmp_path))
    assert r.returncode == 0, r
    r = run("cofre-auth", ["migrate"], env, cwd=str(tmp_path))
    assert r.returncode == 0, r
    r = run("cofre-auth", ["frobnicate"], env, cwd=str(tmp_path))
    assert r.returncode == 2
    env.update(FAST_ARGON2)
    r = run("cofre-auth", ["client", "add"], env, cwd=str(tmp_path))
    assert r.returncode == 2
