"""Static checks of the deploy area: every overlay renders and every rendered object validates
against its API schema (validate.mjs), the generated PrometheusRules are current, and the
scripts, YAML and Terraform pass their linters."""

import pathlib
import shutil
import subprocess

import pytest

from conftest import OVERLAYS, ROOT, rendered_text

HERE = pathlib.Path(__file__).resolve().parent


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False, **kw)


@pytest.mark.parametrize("name", OVERLAYS)
def test_overlay_validates_against_schemas(name, tmp_path):
    if not (HERE / "node_modules" / "kubernetes-models").is_dir():
        pytest.fail("tests/deploy/node_modules is missing: run `make test-deploy` (npm ci)")
    out = tmp_path / f"{name}.yaml"
    out.write_text(rendered_text(name), encoding="utf-8")
    res = run(["node", str(HERE / "validate.mjs"), str(out)], cwd=HERE)
    print(res.stdout)
    assert res.returncode == 0, f"overlays/{name}:\n{res.stderr}{res.stdout}"
    assert " 0 errors" in res.stdout


def test_monitoring_copies_are_current():
    res = run(["/usr/bin/python3", str(ROOT / "deploy/k8s/sync-observability.py"), "--check"])
    assert res.returncode == 0, res.stderr


def deploy_scripts():
    files = sorted(ROOT.glob("deploy/docker/*.sh")) + sorted(ROOT.glob("deploy/kind/*.sh")) + \
        sorted(ROOT.glob("deploy/k8s/**/*.sh"))
    assert files, "no deploy scripts found"
    return files


def test_shellcheck():
    res = run(["shellcheck", "--severity=style", *map(str, deploy_scripts())])
    assert res.returncode == 0, res.stdout + res.stderr


YAML_PATHS = ["deploy/k8s", "deploy/kind", "compose.yaml"]


def test_yamllint():
    cfg = str(HERE / "yamllint.yaml")
    paths = [str(ROOT / p) for p in YAML_PATHS if (ROOT / p).exists()]
    assert len(paths) == len(YAML_PATHS), f"missing: {set(YAML_PATHS) - set(paths)}"
    res = run(["yamllint", "--strict", "-c", cfg, *paths])
    assert res.returncode == 0, res.stdout + res.stderr


def test_terraform_fmt():
    if shutil.which("terraform") is None:
        pytest.fail("terraform is not installed (the machine image provides it)")
    tf = ROOT / "deploy/terraform"
    assert list(tf.rglob("*.tf")), "no Terraform files"
    res = run(["terraform", "fmt", "-check", "-recursive", "-diff", str(tf)])
    assert res.returncode == 0, f"terraform fmt -check:\n{res.stdout}{res.stderr}"


def test_kind_cluster_matches_manifests():
    """Three workers in three zones, ingress ports mapped to the control plane that
    install.sh schedules ingress-nginx on, and nodes new enough for preStop sleep (1.30+)."""
    import yaml

    cluster = yaml.safe_load((ROOT / "deploy/kind/cluster.yaml").read_text(encoding="utf-8"))
    nodes = cluster["nodes"]
    workers = [n for n in nodes if n["role"] == "worker"]
    planes = [n for n in nodes if n["role"] == "control-plane"]
    assert len(planes) == 1 and len(workers) == 3
    zones = {w["labels"]["topology.kubernetes.io/zone"] for w in workers}
    assert len(zones) == 3, f"workers must be in three zones: {zones}"
    ports = {(m["containerPort"], m["hostPort"]) for m in planes[0]["extraPortMappings"]}
    assert {(80, 80), (443, 443)} <= ports
    assert "ingress-ready=true" in planes[0]["kubeadmConfigPatches"][0]
    install = (ROOT / "deploy/k8s/platform/install.sh").read_text(encoding="utf-8")
    assert "controller.nodeSelector.ingress-ready=true" in install
    for n in nodes:
        minor = int(n["image"].split(":v1.")[1].split(".")[0])
        assert minor >= 30, f"{n['image']}: preStop sleep needs Kubernetes 1.30+"
