"""Shared fixtures of the deploy tests: the rendered overlays, once per session."""

import pathlib
import subprocess

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = ["kind", "staging", "prod"]


def render(overlay):
    """`kubectl kustomize` of one overlay: (yaml text, list of objects)."""
    run = subprocess.run(["kubectl", "kustomize", str(K8S / "overlays" / overlay)],
                         capture_output=True, text=True, timeout=120, check=False)
    if run.returncode != 0:
        pytest.fail(f"kubectl kustomize overlays/{overlay} failed:\n{run.stderr}")
    return run.stdout, [d for d in yaml.safe_load_all(run.stdout) if d]


_cache = {}


@pytest.fixture(scope="session", params=OVERLAYS)
def overlay(request):
    """(name, objects) of each overlay."""
    name = request.param
    if name not in _cache:
        _cache[name] = render(name)
    return name, _cache[name][1]


def rendered_text(name):
    if name not in _cache:
        _cache[name] = render(name)
    return _cache[name][0]
