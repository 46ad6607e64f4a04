#!/usr/bin/python3
"""Writes the provisioned Grafana dashboards (dashboards/*.json) from the short descriptions
below, so that six dashboards share one layout, one datasource variable and one style.

Every query uses only names from docs/metrics.md (and the recording rules in
../prometheus/rules); the live test evaluates each one against a real Prometheus. Run after
editing (`make obs-generate`); the tests fail when the JSON is not what this script writes.
Usage: gen_dashboards.py [OUTPUT_DIR]  (default: dashboards/)
"""
import json
import os
import sys

DS = {"type": "prometheus", "uid": "${datasource}"}
RUNBOOKS = "https://github.com/cofre-platform/cofre/blob/main/docs/runbooks/"


def ts(title, targets, unit="short", desc="", stack=False, w=12, h=8):
    """A time series panel. targets: [(expr, legend)]."""
    return dict(type="timeseries", title=title, description=desc, unit=unit, targets=targets,
                w=w, h=h, stack=stack)


def stat(title, expr, unit="short", desc="", w=4, h=4, thresholds=None):
    return dict(type="stat", title=title, description=desc, unit=unit, targets=[(expr, "")],
                w=w, h=h, thresholds=thresholds)


def table(title, expr, desc="", w=24, h=6):
    return dict(type="table", title=title, description=desc, unit="short",
                targets=[(expr, "")], w=w, h=h, instant=True)


def panel_json(p, pid, x, y):
    fc = {"defaults": {"unit": p["unit"]}, "overrides": []}
    if p["type"] == "timeseries":
        fc["defaults"]["custom"] = {"lineWidth": 1, "fillOpacity": 10, "showPoints": "never",
                                    "stacking": {"mode": "normal" if p["stack"] else "none"}}
    if p.get("thresholds"):
        fc["defaults"]["thresholds"] = {"mode": "absolute", "steps": p["thresholds"]}
    targets = []
    for i, (expr, legend) in enumerate(p["targets"]):
        t = {"datasource": DS, "expr": expr, "refId": chr(ord("A") + i)}
        if legend:
            t["legendFormat"] = legend
        if p.get("instant"):
            t["instant"] = True
            t["format"] = "table"
        targets.append(t)
    out = {"id": pid, "type": p["type"], "title": p["title"], "datasource": DS,
           "gridPos": {"x": x, "y": y, "w": p["w"], "h": p["h"]}, "fieldConfig": fc,
           "targets": targets}
    if p["description"]:
        out["description"] = p["description"]
    if p["type"] == "stat":
        out["options"] = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "",
                                            "values": False},
                          "colorMode": "value", "graphMode": "area"}
    if p["type"] == "timeseries":
        out["options"] = {"legend": {"displayMode": "list", "placement": "bottom"},
                          "tooltip": {"mode": "multi"}}
    return out


def layout(rows):
    """rows: [(row title, [panels])] -> Grafana panels with rows and grid positions."""
    panels, pid, y = [], 1, 0
    for title, items in rows:
        panels.append({"id": pid, "type": "row", "title": title, "collapsed": False,
                       "gridPos": {"x": 0, "y": y, "w": 24, "h": 1}, "panels": []})
        pid, y, x, row_h = pid + 1, y + 1, 0, 0
        for p in items:
            if x + p["w"] > 24:
                x, y, row_h = 0, y + row_h, 0
            panels.append(panel_json(p, pid, x, y))
            pid, x, row_h = pid + 1, x + p["w"], max(row_h, p["h"])
        y += row_h
    return panels


def variables(extra):
    ds = {"name": "datasource", "label": "Prometheus", "type": "datasource",
          "query": "prometheus", "current": {"text": "Prometheus", "value": "prometheus"},
          "hide": 0}
    return {"list": [ds] + extra}


def job_var(default="cofre-core"):
    return {"name": "job", "label": "service", "type": "query", "datasource": DS,
            "query": {"query": 'label_values(up{job=~"cofre-.+"}, job)', "refId": "jobs"},
            "definition": 'label_values(up{job=~"cofre-.+"}, job)', "refresh": 2,
            "current": {"text": default, "value": default}, "includeAll": False,
            "multi": False, "sort": 1}


def dashboard(uid, title, desc, rows, tags, extra_vars=()):
    return {
        "uid": uid, "title": title, "description": desc, "tags": ["cofre"] + tags,
        "timezone": "utc", "schemaVersion": 39, "version": 1, "editable": False,
        "refresh": "30s", "time": {"from": "now-3h", "to": "now"},
        "graphTooltip": 1, "templating": variables(list(extra_vars)),
        "annotations": {"list": [{
            "name": "Deployments", "datasource": DS, "enable": True, "iconColor": "blue",
            "expr": 'changes(cofre_build_info[2m]) > 0',
            "titleFormat": "{{job}} {{version}} ({{revision}})"}]},
        "links": [{"title": "Runbooks", "type": "link", "url": RUNBOOKS, "targetBlank": True},
                  {"title": "cofre dashboards", "type": "dashboards", "tags": ["cofre"],
                   "asDropdown": True}],
        "panels": layout(rows),
    }


RED = 'job=~"cofre-.+"'
GREEN_RED = [{"color": "red", "value": None}, {"color": "green", "value": 1}]


def overview():
    rows = [
        ("Platform", [
            stat("Services up", f'sum(up{{{RED}}})', thresholds=GREEN_RED,
                 desc="Scraped cofre processes answering /metrics."),
            stat("Requests/s", f'sum(rate(cofre_http_requests_total{{{RED}}}[$__rate_interval]))',
                 unit="reqps"),
            stat("5xx share", 'sum(job:cofre_http_errors:ratio_rate5m * job:cofre_http_requests:rate5m)'
                 ' / sum(job:cofre_http_requests:rate5m)', unit="percentunit",
                 thresholds=[{"color": "green", "value": None},
                             {"color": "red", "value": 0.001}]),
            stat("p99 latency", f'histogram_quantile(0.99, sum by (le) (rate('
                 f'cofre_http_request_duration_seconds_bucket{{{RED}}}[$__rate_interval])))',
                 unit="s"),
            stat("Transfers posted/s", 'sum(rate(cofre_ledger_transfers_total{outcome="posted"}'
                 '[$__rate_interval]))', unit="ops"),
            stat("Restarts (1h)", f'sum(changes(process_start_time_seconds{{{RED}}}[1h]))',
                 thresholds=[{"color": "green", "value": None}, {"color": "red", "value": 1}]),
        ]),
        ("Traffic, errors, latency", [
            ts("Requests by service", [(f'sum by (job) (rate(cofre_http_requests_total{{{RED}}}'
                                        f'[$__rate_interval]))', "{{job}}")], unit="reqps"),
            ts("Answers by status class", [(
                f'sum by (class) (label_replace(rate(cofre_http_requests_total{{{RED}}}'
                f'[$__rate_interval]), "class", "${{1}}xx", "code", "([0-9]).."))',
                "{{class}}")], unit="reqps", stack=True),
            ts("5xx share by service", [("job:cofre_http_errors:ratio_rate5m", "{{job}}")],
               unit="percentunit"),
            ts("p99 latency by service", [("job:cofre_http_request_duration_seconds:p99_5m",
                                           "{{job}}")], unit="s"),
        ]),
        ("Processes", [
            ts("Resident memory", [(f'sum by (job, instance) (process_resident_memory_bytes'
                                    f'{{{RED}}})', "{{job}} {{instance}}")], unit="bytes", w=8),
            ts("CPU", [(f'sum by (job, instance) (rate(process_cpu_seconds_total{{{RED}}}'
                        f'[$__rate_interval]))', "{{job}} {{instance}}")], unit="percentunit",
               w=8),
            ts("Open file descriptors", [(f'sum by (job, instance) (process_open_fds{{{RED}}})',
                                          "{{job}} {{instance}}")], w=8),
            table("Running builds", f'max by (job, service, version, revision) '
                  f'(cofre_build_info{{{RED}}})',
                  desc="What runs where: one row per service, version and revision."),
        ]),
    ]
    return dashboard("cofre-overview", "cofre / Overview",
                     "The whole platform at a glance: services, traffic, errors, latency.",
                     rows, ["overview"])


def service():
    sel = 'job="$job"'
    rows = [
        ("Rate, errors, duration", [
            ts("Requests by route", [(f'sum by (route, method) (rate(cofre_http_requests_total'
                                      f'{{{sel}}}[$__rate_interval]))', "{{method}} {{route}}")],
               unit="reqps"),
            ts("Errors by route and code", [(
                f'sum by (route, code) (rate(cofre_http_requests_total{{{sel},code=~"[45].."}}'
                f'[$__rate_interval]))', "{{code}} {{route}}")], unit="reqps"),
            ts("Latency p50 / p95 / p99", [
                (f'histogram_quantile({q}, sum by (le) (rate('
                 f'cofre_http_request_duration_seconds_bucket{{{sel}}}[$__rate_interval])))',
                 f"p{int(q * 100)}") for q in (0.5, 0.95, 0.99)], unit="s"),
            ts("p99 by route", [(f'histogram_quantile(0.99, sum by (route, le) (rate('
                                 f'cofre_http_request_duration_seconds_bucket{{{sel}}}'
                                 f'[$__rate_interval])))', "{{route}}")], unit="s"),
        ]),
        ("Saturation and health", [
            ts("In flight", [(f'sum by (instance) (cofre_http_requests_in_flight{{{sel}}})',
                              "{{instance}}")], w=8),
            ts("Ready instances", [(f'sum(cofre_ready{{{sel}}})', "ready"),
                                   (f'count(up{{{sel}}})', "instances")], w=8),
            ts("Scrape up", [(f'up{{{sel}}}', "{{instance}}")], w=8),
            ts("CPU", [(f'rate(process_cpu_seconds_total{{{sel}}}[$__rate_interval])',
                        "{{instance}}")], unit="percentunit", w=8),
            ts("Resident memory", [(f'process_resident_memory_bytes{{{sel}}}', "{{instance}}")],
               unit="bytes", w=8),
            ts("File descriptors used", [(f'process_open_fds{{{sel}}} / process_max_fds{{{sel}}}',
                                          "{{instance}}")], unit="percentunit", w=8),
        ]),
    ]
    return dashboard("cofre-service", "cofre / Service (RED)",
                     "Rate, errors and duration of one service, by route.", rows, ["red"],
                     [job_var()])


def ledger():
    rows = [
        ("Transfers", [
            ts("Transfers decided by outcome", [(
                'sum by (outcome) (rate(cofre_ledger_transfers_total[$__rate_interval]))',
                "{{outcome}}")], unit="ops", stack=True),
            ts("Rejections by code", [(
                'sum by (outcome) (rate(cofre_ledger_transfers_total{outcome!="posted"}'
                '[$__rate_interval]))', "{{outcome}}")], unit="ops"),
            ts("Amount posted by currency (minor units/s)", [(
                'sum by (currency) (rate(cofre_ledger_amount_posted_minor_total'
                '[$__rate_interval]))', "{{currency}}")]),
            ts("Accounts opened by outcome", [(
                'sum by (outcome) (rate(cofre_ledger_accounts_total[$__rate_interval]))',
                "{{outcome}}")], unit="ops"),
            ts("Idempotency replays and conflicts", [
                ('sum(rate(cofre_idempotency_replays_total[$__rate_interval]))', "replays"),
                ('sum by (code) (rate(cofre_idempotency_conflicts_total[$__rate_interval]))',
                 "{{code}}")], unit="ops"),
        ]),
        ("Batching committer and database", [
            ts("Batch size (mean, p99)", [
                ('sum(rate(cofre_committer_batch_size_sum[$__rate_interval])) / '
                 'sum(rate(cofre_committer_batch_size_count[$__rate_interval]))', "mean"),
                ('histogram_quantile(0.99, sum by (le) (rate(cofre_committer_batch_size_bucket'
                 '[$__rate_interval])))', "p99")], w=8),
            ts("Commit duration p50 / p99", [
                (f'histogram_quantile({q}, sum by (le) (rate(cofre_committer_commit_seconds_bucket'
                 f'[$__rate_interval])))', f"p{int(q * 100)}") for q in (0.5, 0.99)],
               unit="s", w=8),
            ts("Commits/s", [('sum(rate(cofre_committer_commit_seconds_count[$__rate_interval]))',
                              "commits")], unit="ops", w=8),
            ts("Queues", [('sum by (instance) (cofre_committer_queue_depth)',
                           "committer {{instance}}"),
                          ('sum by (instance) (cofre_readers_queue_depth)',
                           "readers {{instance}}")], w=8),
            ts("Committer failures by reason", [(
                'sum by (reason) (rate(cofre_committer_failures_total[$__rate_interval]))',
                "{{reason}}")], unit="ops", w=8),
            ts("Database up", [('min by (instance) (cofre_db_up)', "{{instance}}")], w=8),
        ]),
    ]
    return dashboard("cofre-ledger", "cofre / Ledger",
                     "Transfers, amounts, rejections by code, and the batching committer.",
                     rows, ["ledger"])


def events():
    rows = [
        ("Outbox (cofre-core to Kafka)", [
            ts("Pending rows", [('sum by (instance) (cofre_outbox_pending)', "{{instance}}")],
               w=8),
            ts("Oldest pending", [('max by (instance) (cofre_outbox_oldest_pending_seconds)',
                                   "{{instance}}")], unit="s", w=8),
            ts("Published and failed per second", [
                ('sum(rate(cofre_outbox_published_total[$__rate_interval]))', "published"),
                ('sum(rate(cofre_outbox_delivery_failures_total[$__rate_interval]))', "failed")],
               unit="ops", w=8),
        ]),
        ("Consumers of cofre.ledger.events", [
            ts("Audit consumer lag", [('sum by (partition) (cofre_audit_consumer_lag)',
                                       "partition {{partition}}")]),
            ts("Legacy consumer lag", [('sum by (partition) (cofre_legacy_consumer_lag)',
                                        "partition {{partition}}")]),
        ]),
    ]
    return dashboard("cofre-events", "cofre / Events",
                     "The transactional outbox and the consumers' lag.", rows, ["events"])


def legacy():
    rows = [
        ("ISO 8583 link", [
            stat("Breaker (0 closed, 1 half-open, 2 open)",
                 'max(cofre_legacy_breaker_state)', w=6,
                 thresholds=[{"color": "green", "value": None}, {"color": "orange", "value": 1},
                             {"color": "red", "value": 2}]),
            stat("Dead letters (24h)", 'sum(increase(cofre_legacy_dlq_total[24h]))', w=6,
                 thresholds=[{"color": "green", "value": None}, {"color": "red", "value": 1}]),
            stat("Deliveries/s", 'sum(rate(cofre_legacy_deliveries_total[$__rate_interval]))',
                 unit="ops", w=6),
            stat("Consumer lag", 'sum(cofre_legacy_consumer_lag)', w=6),
            ts("Deliveries by outcome", [(
                'sum by (outcome) (rate(cofre_legacy_deliveries_total[$__rate_interval]))',
                "{{outcome}}")], unit="ops"),
            ts("Round trip p50 / p99 by message type", [
                (f'histogram_quantile({q}, sum by (mti, le) (rate('
                 f'cofre_legacy_request_duration_seconds_bucket[$__rate_interval])))',
                 f"p{int(q * 100)} {{{{mti}}}}") for q in (0.5, 0.99)], unit="s"),
            ts("Breaker state", [('max by (instance) (cofre_legacy_breaker_state)',
                                  "{{instance}}")]),
            ts("Adapter requests by route", [(
                'sum by (route, code) (rate(cofre_http_requests_total{job="cofre-legacy"}'
                '[$__rate_interval]))', "{{code}} {{route}}")], unit="reqps"),
        ]),
    ]
    return dashboard("cofre-legacy", "cofre / Legacy link",
                     "Delivery of posted transfers to the legacy core over ISO 8583.",
                     rows, ["legacy"])


def slo():
    budget = ('clamp_min(1 - slo:sli_error:ratio_rate30d / on (slo, service) group_left() '
              '(1 - slo:objective:ratio), -1)')
    rows = [
        ("Objectives (30 days)", [
            table("SLOs", 'slo:objective:ratio',
                  desc="Each SLO and its objective; see docs/operations.md.", h=5),
            ts("Error budget remaining (30d)", [(budget, "{{slo}}")], unit="percentunit"),
            ts("SLI over 30 days", [('1 - slo:sli_error:ratio_rate30d', "{{slo}}")],
               unit="percentunit"),
        ]),
        ("Burn rates (1 = spending exactly the budget in 30 days)", [
            ts(f"Burn rate {w}", [(f'slo:sli_error:ratio_rate{w} / on (slo, service) '
                                   f'group_left() (1 - slo:objective:ratio)', "{{slo}}")], w=8)
            for w in ("5m", "1h", "6h")
        ] + [
            ts("Firing SLO alerts", [('sum by (alertname, slo) (ALERTS{alertname=~"CofreSLO.+",'
                                      'alertstate="firing"})', "{{alertname}} {{slo}}")], w=24),
        ]),
    ]
    return dashboard("cofre-slo", "cofre / SLOs and error budgets",
                     "Availability and p99 latency SLOs for transfers and token issuance, "
                     "with multiwindow burn rates.", rows, ["slo"])


DASHBOARDS = [overview, service, ledger, events, legacy, slo]


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "dashboards")
    os.makedirs(out, exist_ok=True)
    for make in DASHBOARDS:
        d = make()
        with open(os.path.join(out, d["uid"] + ".json"), "w", encoding="utf-8") as f:
            json.dump(d, f, indent=2, sort_keys=True)
            f.write("\n")


if __name__ == "__main__":
    main()
