"""The pipeline's deploy script (.github/scripts/deploy.sh) against a stand-in kubectl that
records its calls and a stand-in Prometheus that answers the SLO gate's queries: the order of
a deploy (migration Job before the rollout), the canary and both gates in production, the
automatic rollback when the SLO burns, and the deployment record in every case."""
import http.server
import json
import os
import stat
import subprocess
import threading
import urllib.parse

import pytest

import obs

DEPLOY = os.path.join(obs.ROOT, ".github", "scripts", "deploy.sh")

FAKE_KUBECTL = r"""#!/usr/bin/env bash
# Records every call; answers like a cluster where each Deployment is healthy.
echo "$*" >>"$KUBECTL_LOG"
case "$*" in
  kustomize*) echo "kind: Deployment" ;;
  *"get deployments"*) printf 'deployment.apps/cofre-core\ndeployment.apps/cofre-auth\n' ;;
  *jsonpath*) echo 1 ;;
esac
exit 0
"""


class FakePrometheus(http.server.BaseHTTPRequestHandler):
    burn = "0"
    queries = []

    def log_message(self, *args):
        pass

    def do_GET(self):
        q = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)["query"][0]
        FakePrometheus.queries.append(q)
        value = FakePrometheus.burn if "slo:sli_error" in q else "0"
        body = json.dumps({"status": "success", "data": {"resultType": "vector", "result": [
            {"metric": {}, "value": [0, value]}]}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def cluster(tmp_path):
    kubectl = tmp_path / "kubectl"
    kubectl.write_text(FAKE_KUBECTL)
    kubectl.chmod(kubectl.stat().st_mode | stat.S_IEXEC)
    images = tmp_path / "images.txt"
    images.write_text("cofre-core 1.dkr.ecr.eu-west-1.amazonaws.com/cofre-core@sha256:" + "a" * 64
                      + "\ncofre-auth 1.dkr.ecr.eu-west-1.amazonaws.com/cofre-auth@sha256:"
                      + "b" * 64 + "\n")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakePrometheus)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    FakePrometheus.queries = []
    env = dict(os.environ, KUBECTL=str(kubectl), KUBECTL_LOG=str(tmp_path / "calls"),
               PROMETHEUS_URL=f"http://127.0.0.1:{server.server_address[1]}",
               RECORD_FILE=str(tmp_path / "record.json"), CANARY_WAIT_S="1", BAKE_S="1",
               GATE_POLL_S="0.2", GITHUB_SHA="c0ffee", GITHUB_ACTOR="tester")
    yield tmp_path, images, env
    server.shutdown()


def deploy(env, images, overlay, progressive, burn="0"):
    FakePrometheus.burn = burn
    return subprocess.run([DEPLOY, overlay, str(images)], env=dict(env, PROGRESSIVE=progressive),
                          capture_output=True, text=True, timeout=60, cwd=obs.ROOT)


def calls(tmp):
    return (tmp / "calls").read_text().splitlines()


def record(tmp):
    return json.loads((tmp / "record.json").read_text())


def test_staging_migrates_then_applies(cluster):
    tmp, images, env = cluster
    r = deploy(env, images, "staging", "0")
    assert r.returncode == 0, r.stderr
    log = calls(tmp)
    order = [next(i for i, c in enumerate(log) if c.startswith(p)) for p in (
        "kustomize", "-n cofre delete job cofre-core-migrate",
        "apply -f", "-n cofre wait --for=condition=complete job/cofre-core-migrate")]
    assert order == sorted(order), log
    assert "-l app.kubernetes.io/component=migration" in log[order[2]]
    assert any(c.startswith("-n cofre rollout status deployment.apps/cofre-core") for c in log)
    rec = record(tmp)
    assert rec["outcome"] == "succeeded" and rec["environment"] == "staging"
    assert rec["commit"] == "c0ffee"
    assert rec["images"]["cofre-auth"].endswith("@sha256:" + "b" * 64)
    assert not any("rollout undo" in c for c in log)


def test_production_canary_and_gates_then_success(cluster):
    tmp, images, env = cluster
    r = deploy(env, images, "prod", "1", burn="0.5")
    assert r.returncode == 0, r.stderr
    log = calls(tmp)
    assert any("rollout pause deployment.apps/cofre-core" in c for c in log)
    assert any("rollout resume deployment.apps/cofre-auth" in c for c in log)
    assert "gate 'canary'" in r.stderr and "gate 'bake'" in r.stderr
    assert any("ALERTS" in q for q in FakePrometheus.queries)
    assert record(tmp)["outcome"] == "succeeded"


def test_production_rolls_back_when_the_slo_burns(cluster):
    tmp, images, env = cluster
    r = deploy(env, images, "prod", "1", burn="20")
    assert r.returncode != 0
    log = calls(tmp)
    assert any("rollout undo deployment.apps/cofre-core" in c for c in log)
    assert any("rollout undo deployment.apps/cofre-auth" in c for c in log)
    assert record(tmp)["outcome"] == "rolled_back"


def test_production_rolls_back_when_prometheus_is_unreachable(cluster):
    tmp, images, env = cluster
    env = dict(env, PROMETHEUS_URL="http://127.0.0.1:9")
    r = deploy(env, images, "prod", "1")
    assert r.returncode != 0
    assert any("rollout undo" in c for c in calls(tmp))
    assert record(tmp)["outcome"] == "rolled_back"
