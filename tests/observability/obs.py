"""Shared helpers of the observability tests: paths, the rule and dashboard files, and the
PromQL each of them holds, so that every test reads the same inventory."""
import glob
import json
import os
import re
import shutil
import subprocess

import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OBS = os.path.join(ROOT, "deploy", "observability")
PROM = os.path.join(OBS, "prometheus")
RULE_FILES = sorted(glob.glob(os.path.join(PROM, "rules", "*.yml")))
RULE_TESTS = sorted(glob.glob(os.path.join(PROM, "tests", "*.test.yml")))
DASHBOARDS = sorted(glob.glob(os.path.join(OBS, "grafana", "dashboards", "*.json")))
RUNBOOKS = os.path.join(ROOT, "docs", "runbooks")
RUNBOOK_BASE = "https://github.com/cofre-platform/cofre/blob/main/docs/runbooks/"
METRICS_DOC = os.path.join(ROOT, "docs", "metrics.md")


def run(cmd, timeout=120, **kw):
    """Runs a command, returns CompletedProcess with text output (never raises on status)."""
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT, **kw)


def have(tool):
    return shutil.which(tool) is not None


def rules():
    """Every rule of every rule file: dicts with group, record/alert, expr, labels, ..."""
    out = []
    for path in RULE_FILES:
        with open(path, encoding="utf-8") as f:
            for group in yaml.safe_load(f)["groups"]:
                for rule in group["rules"]:
                    out.append(dict(rule, group=group["name"], file=os.path.basename(path)))
    return out


def alert_names():
    return sorted({r["alert"] for r in rules() if "alert" in r})


def dashboards():
    out = []
    for path in DASHBOARDS:
        with open(path, encoding="utf-8") as f:
            out.append(json.load(f))
    return out


def panels(dashboard):
    """Every non-row panel, including panels nested in collapsed rows."""
    for p in dashboard["panels"]:
        if p["type"] == "row":
            yield from p.get("panels", [])
        else:
            yield p


def variable_defaults(dashboard):
    """Template variable name -> the value a query gets when the dashboard opens."""
    out = {}
    for v in dashboard.get("templating", {}).get("list", []):
        out[v["name"]] = v.get("current", {}).get("value", "")
    return out


def substitute(expr, variables, rate_interval="1m"):
    """A panel's PromQL with Grafana's variables replaced, the way Grafana sends it."""
    expr = expr.replace("$__rate_interval", rate_interval).replace("$__interval", "15s")
    expr = expr.replace("$__range", "1h")
    for name, value in sorted(variables.items(), key=lambda kv: -len(kv[0])):
        expr = expr.replace("${" + name + "}", value).replace("$" + name, value)
    return expr


def panel_queries(dashboard):
    """(panel title, refId, PromQL with variables substituted) of every panel target."""
    variables = variable_defaults(dashboard)
    for p in panels(dashboard):
        for t in p.get("targets", []):
            yield p["title"], t["refId"], substitute(t["expr"], variables)


# Names that are PromQL or Prometheus's own, not metrics of the contract.
PROMQL_WORDS = {
    "sum", "rate", "irate", "increase", "by", "on", "without", "ignoring", "group_left",
    "group_right", "or", "and", "unless", "max", "min", "avg", "count", "histogram_quantile",
    "changes", "clamp_min", "clamp_max", "label_replace", "vector", "min_over_time",
    "max_over_time", "avg_over_time", "round", "abs", "absent", "time", "bool", "offset",
    "le", "job", "instance", "route", "method", "code", "outcome", "currency", "reason",
    "slo", "service", "topic", "partition", "pool", "mti", "class", "namespace", "up",
    "ALERTS", "alertname", "alertstate", "severity", "inf", "nan", "version", "revision",
}
METRIC_TOKEN = re.compile(r"\b([a-zA-Z_][a-zA-Z0-9_:]*)\b")


def metric_names(expr):
    """Metric names a PromQL expression reads (recording rules, with ':', excluded)."""
    expr = re.sub(r'"[^"]*"', '""', expr)  # label values
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # range selectors
    names = set()
    for token in METRIC_TOKEN.findall(expr):
        if token in PROMQL_WORDS or ":" in token or token.isdigit():
            continue
        if re.fullmatch(r"\d+[smhdwy]", token):
            continue
        names.add(token)
    return names


def contract_metric_names():
    """Metric names documented in docs/metrics.md (histograms expand to their series)."""
    with open(METRICS_DOC, encoding="utf-8") as f:
        text = f.read()
    names = set()
    for row in re.findall(r"^\|\s*(`[^|]+)\|\s*([a-z]*)", text, flags=re.M):
        cell, kind = row
        for name in re.findall(r"`([a-z_][a-z0-9_]*)`", cell):
            names.add(name)
            if kind == "histogram":
                names.update({name + "_bucket", name + "_sum", name + "_count"})
    return names
