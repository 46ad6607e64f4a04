"""Static checks of the observability-as-code files: Prometheus config and rules (promtool),
rule unit tests, Alertmanager (amtool), runbooks, dashboards, the metric contract, generated
files, Loki/Fluent Bit labels and the Kubernetes rendering. Each test says what it checks."""
import json
import os
import re
import shutil
import tempfile

import pytest
import yaml

import obs


def test_promtool_check_config():
    """The local Prometheus config (with its rules and target files) is valid."""
    with tempfile.TemporaryDirectory() as tmp:
        shutil.copytree(os.path.join(obs.PROM, "rules"), os.path.join(tmp, "rules"))
        shutil.copy(os.path.join(obs.PROM, "prometheus.local.yml"), tmp)
        for sub, content in (("targets", '[{"targets":["127.0.0.1:8081"],"labels":{"service":"cofre-core"}}]'),
                             ("alertmanagers", '[{"targets":["127.0.0.1:9093"]}]')):
            os.makedirs(os.path.join(tmp, sub))
            with open(os.path.join(tmp, sub, "x.json"), "w") as f:
                f.write(content)
        r = obs.run(["promtool", "check", "config", os.path.join(tmp, "prometheus.local.yml")])
        assert r.returncode == 0, r.stdout + r.stderr
        assert "SUCCESS" in r.stdout + r.stderr


def test_promtool_check_rules():
    """Every rule file parses and every expression is valid PromQL."""
    r = obs.run(["promtool", "check", "rules"] + obs.RULE_FILES)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count("SUCCESS") == len(obs.RULE_FILES), r.stdout


def test_promtool_rule_unit_tests():
    """The alert and SLO unit tests pass (promtool test rules)."""
    r = obs.run(["promtool", "test", "rules"] + obs.RULE_TESTS)
    assert r.returncode == 0, r.stdout + r.stderr


def _alert_test_cases():
    """alertname -> list of expected alert lists, over every rule unit test file."""
    cases = {}
    for path in obs.RULE_TESTS:
        with open(path, encoding="utf-8") as f:
            doc = yaml.safe_load(f)
        for group in doc["tests"]:
            for case in group.get("alert_rule_test", []):
                cases.setdefault(case["alertname"], []).append(case.get("exp_alerts") or [])
    return cases


def test_every_alert_has_firing_and_silent_unit_tests():
    """Each alert is tested both firing (an expected alert) and silent (none expected)."""
    cases = _alert_test_cases()
    for name in obs.alert_names():
        assert name in cases, f"alert {name} has no promtool unit test"
        assert any(c for c in cases[name]), f"alert {name}: no test where it fires"
        assert any(not c for c in cases[name]), f"alert {name}: no test where it stays silent"


def test_every_alert_has_severity_and_runbook():
    """Each alert pages or tickets, and links its runbook, which exists and names it."""
    for rule in obs.rules():
        if "alert" not in rule:
            continue
        name = rule["alert"]
        assert rule.get("labels", {}).get("severity") in ("page", "ticket"), name
        url = rule.get("annotations", {}).get("runbook_url", "")
        assert url == obs.RUNBOOK_BASE + name + ".md", f"{name}: runbook_url {url!r}"
        path = os.path.join(obs.RUNBOOKS, name + ".md")
        assert os.path.isfile(path), f"{name}: missing {path}"
        with open(path, encoding="utf-8") as f:
            text = f.read()
        assert name in text, f"{path} does not name {name}"
        for section in ("## Meaning", "## Impact", "## Diagnosis", "## Mitigation"):
            assert section in text, f"{path}: no '{section}' section"
        for key in ("summary", "description"):
            assert rule["annotations"].get(key), f"{name}: no {key}"


def test_no_orphan_runbooks():
    """Every runbook belongs to an alert that exists (renamed alerts leave none behind)."""
    names = set(obs.alert_names())
    for entry in os.listdir(obs.RUNBOOKS):
        if entry.endswith(".md") and entry != "README.md":
            assert entry[:-3] in names, f"docs/runbooks/{entry} has no alert"


AM = os.path.join(obs.OBS, "alertmanager", "alertmanager.yml")


def test_amtool_check_config():
    """The Alertmanager config and its notification templates are valid."""
    r = obs.run(["amtool", "check-config", AM])
    assert r.returncode == 0, r.stdout + r.stderr
    assert "templates" in r.stdout


@pytest.mark.parametrize("labels,receiver", [
    (["severity=page", "alertname=CofreSLOFastBurn"], "pagerduty"),
    (["severity=ticket", "alertname=CofreSLOSlowBurn"], "tickets"),
    (["alertname=NoSeverity"], "tickets"),
])
def test_alertmanager_routes(labels, receiver):
    """Pages reach PagerDuty, tickets the ticket channel, and a label-less alert still arrives."""
    r = obs.run(["amtool", "config", "routes", "test", "--config.file=" + AM] + labels)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == receiver, (labels, r.stdout)


def test_alertmanager_secrets_are_files():
    """No integration key or webhook URL in the config: only *_file references."""
    with open(AM, encoding="utf-8") as f:
        cfg = yaml.safe_load(f)
    for receiver in cfg["receivers"]:
        for pd in receiver.get("pagerduty_configs", []):
            assert "routing_key_file" in pd and "routing_key" not in pd
        for sl in receiver.get("slack_configs", []):
            assert "api_url_file" in sl and "api_url" not in sl


def test_inhibit_rules_name_real_alerts():
    """Inhibition rules only name alerts that exist (a rename would silently disable them)."""
    with open(AM, encoding="utf-8") as f:
        cfg = yaml.safe_load(f)
    names = set(obs.alert_names())
    for rule in cfg["inhibit_rules"]:
        for matcher in rule["source_matchers"] + rule["target_matchers"]:
            m = re.fullmatch(r'alertname(=~|=)"([^"]+)"', matcher)
            if not m:
                continue
            for name in m.group(2).split("|"):
                assert name in names, f"inhibit rule names unknown alert {name}"


@pytest.mark.parametrize("script,target", [
    ("prometheus/gen_slo_rules.py", "prometheus/rules/slo.yml"),
    ("grafana/gen_dashboards.py", "grafana/dashboards"),
    ("gen_k8s.py", "k8s"),
])
def test_generated_files_in_sync(script, target):
    """Generated files are exactly what their generator writes (make obs-generate)."""
    with tempfile.TemporaryDirectory() as tmp:
        is_dir = os.path.isdir(os.path.join(obs.OBS, target))
        out = tmp if is_dir else os.path.join(tmp, os.path.basename(target))
        r = obs.run(["/usr/bin/python3", os.path.join(obs.OBS, script), out])
        assert r.returncode == 0, r.stderr
        committed = os.path.join(obs.OBS, target)
        pairs = ([(os.path.join(tmp, n), os.path.join(committed, n)) for n in os.listdir(tmp)]
                 if is_dir else [(out, committed)])
        if is_dir:
            assert sorted(os.listdir(tmp)) == sorted(
                n for n in os.listdir(committed) if not n.startswith(".")), target
        for fresh, old in pairs:
            with open(fresh, encoding="utf-8") as a, open(old, encoding="utf-8") as b:
                assert a.read() == b.read(), f"{old} is stale: run make obs-generate"


def test_dashboards_are_valid_grafana_json():
    """Each dashboard: unique uid, unique panel ids, a datasource variable, panels on the
    24-column grid, and every target a PromQL expression on that datasource."""
    uids = set()
    for d in obs.dashboards():
        assert d["uid"] not in uids
        uids.add(d["uid"])
        assert any(v["name"] == "datasource" for v in d["templating"]["list"]), d["uid"]
        ids = [p["id"] for p in d["panels"]]
        assert len(ids) == len(set(ids)), f"{d['uid']}: duplicate panel ids"
        n = 0
        for p in obs.panels(d):
            n += 1
            g = p["gridPos"]
            assert 0 <= g["x"] and g["x"] + g["w"] <= 24 and g["h"] > 0, (d["uid"], p["title"])
            assert p["datasource"]["uid"] == "${datasource}", (d["uid"], p["title"])
            assert p["targets"], (d["uid"], p["title"])
            for t in p["targets"]:
                assert t["expr"].strip(), (d["uid"], p["title"])
        assert n >= 4, f"{d['uid']}: only {n} panels"
    assert {"cofre-overview", "cofre-service", "cofre-ledger", "cofre-events", "cofre-legacy",
            "cofre-slo"} <= uids


def test_every_metric_used_is_in_the_contract():
    """Rules and dashboards read only metric names that docs/metrics.md lists."""
    contract = obs.contract_metric_names()
    used = {}
    for rule in obs.rules():
        for name in obs.metric_names(rule["expr"]):
            used.setdefault(name, f"rule {rule.get('record') or rule.get('alert')}")
    for d in obs.dashboards():
        for title, _, expr in obs.panel_queries(d):
            for name in obs.metric_names(expr):
                used.setdefault(name, f"dashboard {d['uid']} panel {title!r}")
    missing = {n: where for n, where in used.items() if n not in contract}
    assert not missing, f"metrics not in docs/metrics.md: {missing}"
    assert "cofre_http_requests_total" in used


def test_recording_rules_used_exist():
    """Every recording-rule name a rule or panel reads is defined by a rule file."""
    defined = {r["record"] for r in obs.rules() if "record" in r}
    exprs = [r["expr"] for r in obs.rules()]
    exprs += [e for d in obs.dashboards() for _, _, e in obs.panel_queries(d)]
    for expr in exprs:
        for name in re.findall(r"\b([a-z_]+:[a-z0-9_:]+)\b", re.sub(r'"[^"]*"', "", expr)):
            assert name in defined, f"{name} is read but never recorded"


def test_log_pipeline_labels_are_bounded():
    """Loki gets only service, level and namespace as labels; trace ids are metadata."""
    with open(os.path.join(obs.OBS, "fluent-bit", "fluent-bit.yaml"), encoding="utf-8") as f:
        fb = yaml.safe_load(f)
    (loki,) = [o for o in fb["pipeline"]["outputs"] if o["name"] == "loki"]
    labels = {kv.split("=")[0].strip() for kv in loki["labels"].split(",")}
    assert labels == {"service", "level", "namespace"}
    assert "trace_id=$trace_id" in loki["structured_metadata"].replace(" ", "")
    with open(os.path.join(obs.OBS, "loki", "loki.yml"), encoding="utf-8") as f:
        lk = yaml.safe_load(f)
    assert lk["limits_config"]["allow_structured_metadata"] is True
    assert lk["limits_config"]["max_label_names_per_series"] <= 8


def test_kustomize_renders_observability_objects():
    """deploy/observability renders: ServiceMonitors for every service, the PrometheusRule
    with every rule group, the dashboards ConfigMap and the Alertmanager secret."""
    if not obs.have("kubectl"):
        pytest.skip("kubectl not installed")
    r = obs.run(["kubectl", "kustomize", obs.OBS])
    assert r.returncode == 0, r.stderr
    docs = [d for d in yaml.safe_load_all(r.stdout) if d]
    kinds = [d["kind"] for d in docs]
    with open(os.path.join(obs.OBS, "services.txt"), encoding="utf-8") as f:
        jobs = [ln.split()[0] for ln in f if ln.split() and not ln.startswith("#")]
    monitors = {d["metadata"]["name"] for d in docs if d["kind"] == "ServiceMonitor"}
    assert monitors == set(jobs)
    (rule,) = [d for d in docs if d["kind"] == "PrometheusRule"]
    n_rules = sum(len(g["rules"]) for g in rule["spec"]["groups"])
    assert n_rules == len(obs.rules())
    assert kinds.count("ConfigMap") >= 1 and "Secret" in kinds


def test_yamllint():
    """yamllint passes on the workflows, observability and load files."""
    r = obs.run(["yamllint", "-s", "-c", "tests/observability/yamllint.yml",
                 "deploy/observability", ".github", "loadtest"])
    assert r.returncode == 0, r.stdout + r.stderr


def test_shellcheck():
    """shellcheck passes on every script of the area."""
    scripts = ["deploy/observability/run-local.sh", "deploy/observability/local-services.sh",
               "loadtest/wrk/run.sh", "tests/dast/run.sh"]
    gh = os.path.join(obs.ROOT, ".github", "scripts")
    scripts += [os.path.join(".github", "scripts", n) for n in sorted(os.listdir(gh))]
    r = obs.run(["shellcheck"] + scripts)
    assert r.returncode == 0, r.stdout + r.stderr


def test_k6_scripts_parse():
    """The k6 scenarios are valid ES modules, and every threshold names a scenario."""
    for path in ("loadtest/k6/platform.js", "loadtest/k6/lib/cofre.js"):
        # A .mjs copy: node checks it as an ES module on every version (Debian's 18 too).
        with tempfile.TemporaryDirectory() as tmp:
            copy = os.path.join(tmp, os.path.basename(path)[:-3] + ".mjs")
            shutil.copy(os.path.join(obs.ROOT, path), copy)
            r = obs.run(["node", "--check", copy])
        assert r.returncode == 0, r.stderr
    with open(os.path.join(obs.ROOT, "loadtest", "k6", "platform.js"), encoding="utf-8") as f:
        src = f.read()
    for scenario in set(re.findall(r"scenario:([a-z_]+)", src)):
        assert re.search(rf"\b{scenario}\b\s*[:=]|scenarios\.{scenario}\b", src), scenario
    assert "ramping-arrival-rate" in src and "phase:steady" in src
