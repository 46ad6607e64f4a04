"""compose.yaml, checked without a Docker engine: every cofre service, image, port, file and
dependency it names exists in the project and agrees with the Dockerfile, the contract's
ports, the observability service list and the gateway configuration; third-party images are
pinned; the gateway configuration passes `nginx -t`."""

import re
import shutil
import subprocess

import pytest
import yaml

from conftest import ROOT

COMPOSE = ROOT / "compose.yaml"
DOCKERFILE = ROOT / "deploy/docker/Dockerfile"
GATEWAY = ROOT / "deploy/docker/compose/gateway.conf"
# contract.md, "Default local ports".
CONTRACT_PORTS = {"cofre-core": 8081, "cofre-auth": 8082, "cofre-audit": 8083,
                  "cofre-legacy": 8084, "cofre-legacy-sim": 8583}
STACK = {"postgres", "kafka", "gateway", "prometheus", "alertmanager", "grafana", "loki"}


@pytest.fixture(scope="module")
def compose():
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def targets():
    """Dockerfile stage name -> its EXPOSE port (or None)."""
    out, stage = {}, None
    for line in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        m = re.match(r"FROM\s+\S+\s+AS\s+(\S+)", line)
        if m:
            stage = m.group(1)
            out[stage] = None
        m = re.match(r"EXPOSE\s+(\d+)", line)
        if m and stage:
            out[stage] = int(m.group(1))
    return out


def cofre_services(compose):
    return {k: v for k, v in compose["services"].items() if k.startswith("cofre-")}


def test_full_stack_present(compose):
    names = set(compose["services"])
    missing = (STACK | set(CONTRACT_PORTS)) - names
    assert not missing, f"compose.yaml lacks {sorted(missing)}"
    assert any("fluent" in s.get("image", "") for s in compose["services"].values()), \
        "no log shipper for Loki"


def test_cofre_images_are_dockerfile_targets(compose, targets):
    bad = []
    for name, svc in cofre_services(compose).items():
        build = svc.get("build") or {}
        target = build.get("target")
        if build.get("dockerfile") != "deploy/docker/Dockerfile" or build.get("context") != ".":
            bad.append(f"{name}: build must be deploy/docker/Dockerfile from the repository root")
        if target not in targets:
            bad.append(f"{name}: build target {target} is not a Dockerfile stage")
        if svc.get("image") != f"cofre/{target}:dev":
            bad.append(f"{name}: image {svc.get('image')} is not cofre/{target}:dev")
    assert not bad, "\n".join(bad)


def test_cofre_ports_match_contract_dockerfile_and_observability(compose, targets):
    services_txt = {}
    for line in (ROOT / "deploy/observability/services.txt").read_text().splitlines():
        fields = line.split("#", 1)[0].split()
        if fields:
            services_txt[fields[0]] = int(fields[1])
    prom = yaml.safe_load((ROOT / "deploy/docker/compose/prometheus-targets/cofre.json")
                          .read_text())
    prom_targets = {t["labels"]["service"]: t["targets"][0] for t in prom}
    bad = []
    for name, svc in cofre_services(compose).items():
        listen = (svc.get("environment") or {}).get("COFRE_LISTEN")
        if listen is None:
            continue  # the migration job serves nothing
        port = int(listen.rsplit(":", 1)[1])
        target = svc["build"]["target"]
        if port != CONTRACT_PORTS.get(target):
            bad.append(f"{name}: COFRE_LISTEN port {port} is not the contract's "
                       f"{CONTRACT_PORTS.get(target)}")
        if targets.get(target) != port:
            bad.append(f"{name}: Dockerfile stage {target} exposes {targets.get(target)}")
        if target in services_txt:
            if services_txt[target] != port:
                bad.append(f"{name}: services.txt says port {services_txt[target]}")
            if prom_targets.get(target) != f"{name}:{port}":
                bad.append(f"{name}: Prometheus target {prom_targets.get(target)}")
    missing = set(services_txt) - set(prom_targets)
    if missing:
        bad.append(f"Prometheus targets lack {sorted(missing)} of services.txt")
    assert not bad, "\n".join(bad)


def test_cofre_services_hardened(compose):
    bad = []
    for name, svc in cofre_services(compose).items():
        if svc.get("read_only") is not True:
            bad.append(f"{name}: read_only")
        if svc.get("cap_drop") != ["ALL"]:
            bad.append(f"{name}: cap_drop ALL")
        if str(svc.get("user", "")).split(":")[0] in ("", "0", "root"):
            bad.append(f"{name}: runs as root")
    assert not bad, "\n".join(bad)


def test_bind_mounts_exist(compose):
    bad = []
    for name, svc in compose["services"].items():
        for vol in svc.get("volumes", []):
            src = vol.split(":", 1)[0]
            if src.startswith("./") and not (ROOT / src).exists():
                bad.append(f"{name}: {src} does not exist")
    assert not bad, "\n".join(bad)


def test_dependencies_and_volumes_declared(compose):
    bad = []
    names = set(compose["services"])
    for name, svc in compose["services"].items():
        for dep in svc.get("depends_on", {}):
            if dep not in names:
                bad.append(f"{name}: depends on unknown {dep}")
        for vol in svc.get("volumes", []):
            src = vol.split(":", 1)[0]
            if not src.startswith(("./", "/")) and src not in (compose.get("volumes") or {}):
                bad.append(f"{name}: volume {src} not declared")
    assert not bad, "\n".join(bad)


def test_images_pinned(compose):
    bad = []
    for name, svc in compose["services"].items():
        image = svc.get("image", "")
        tag = image.rsplit("/", 1)[-1].partition(":")[2]
        if not tag or tag == "latest":
            bad.append(f"{name}: image {image!r} is not pinned to a version")
    assert not bad, "\n".join(bad)


def test_no_inline_secrets(compose):
    """Passwords come from the environment of whoever runs compose, never from the file."""
    text = COMPOSE.read_text(encoding="utf-8")
    for m in re.finditer(r"(PASSWORD[A-Z_]*):\s*(\S+)", text):
        assert m.group(2).startswith("${"), f"{m.group(1)} is set inline: {m.group(2)}"


def test_gateway_upstreams_are_compose_services(compose):
    conf = GATEWAY.read_text(encoding="utf-8")
    bad = []
    for host, port in re.findall(r"server\s+([a-z0-9-]+):(\d+)", conf):
        env = (compose["services"].get(host) or {}).get("environment") or {}
        if host not in compose["services"]:
            bad.append(f"gateway upstream {host} is not a compose service")
        elif env.get("COFRE_LISTEN", "").rsplit(":", 1)[-1] != port:
            bad.append(f"gateway upstream {host}:{port} does not match its COFRE_LISTEN")
    for route in ("location /v1/ ", "location = /v1/transfers/batch", "location /v1/audit/",
                  "location /oauth/ ", "location = /oauth/token", "location /.well-known/"):
        if route not in conf:
            bad.append(f"gateway route missing: {route}")
    if "client_max_body_size 64k;" not in conf or "client_max_body_size 256k;" not in conf:
        bad.append("gateway body limits are not 64k / 256k")
    assert not bad, "\n".join(bad)


def test_gateway_config_nginx_t(tmp_path):
    if shutil.which("nginx") is None:
        pytest.fail("nginx is not installed (scripts/deps.sh run installs it)")
    conf = GATEWAY.read_text(encoding="utf-8")
    # Compose's DNS names do not resolve here: point the upstreams at loopback for the check.
    conf = re.sub(r"server\s+cofre-[a-z-]+:(\d+)", r"server 127.0.0.1:\1", conf)
    conf = conf.replace("resolver 127.0.0.11", "resolver 127.0.0.1")
    path = tmp_path / "gateway.conf"
    path.write_text(conf, encoding="utf-8")
    res = subprocess.run(["nginx", "-t", "-c", str(path), "-e", str(tmp_path / "error.log")],
                         capture_output=True, text=True, timeout=30, check=False)
    assert res.returncode == 0, res.stderr
