#!/usr/bin/python3
"""Writes rules/slo.yml: the SLO recording rules and the multiwindow, multi-burn-rate alerts
(the SRE workbook's, chapter 5) for every SLO in SLOS below.

The SLOs are data; the rules are derived, so that 4 SLOs x 8 windows stay consistent. Run it
after changing SLOS (`make obs-generate`); the observability tests fail when rules/slo.yml is
not what this script writes. Usage: gen_slo_rules.py [OUTPUT]  (default: rules/slo.yml)
"""
import os
import sys
import textwrap

RUNBOOK_BASE = "https://github.com/cofre-platform/cofre/blob/main/docs/runbooks/"

# name, service (job), route regex, method, kind, objective, latency threshold (le bucket)
SLOS = [
    dict(slo="transfers-availability", service="cofre-core", route="/v1/transfers(/batch)?",
         method="POST", kind="availability", objective=0.9995,
         what="transfer requests answered without a server error"),
    dict(slo="transfers-latency", service="cofre-core", route="/v1/transfers(/batch)?",
         method="POST", kind="latency", objective=0.99, le="0.25",
         what="transfer requests answered within 250 ms (p99 <= 250 ms)"),
    dict(slo="tokens-availability", service="cofre-auth", route="/oauth/token",
         method="POST", kind="availability", objective=0.9995,
         what="token requests answered without a server error"),
    dict(slo="tokens-latency", service="cofre-auth", route="/oauth/token",
         method="POST", kind="latency", objective=0.99, le="0.1",
         what="token requests answered within 100 ms (p99 <= 100 ms)"),
]

WINDOWS = ["5m", "30m", "1h", "2h", "6h", "1d", "3d", "30d"]

# (severity, for, [(long window, short window, burn rate)]): SRE workbook table 5-8.
BURN_ALERTS = [
    ("CofreSLOFastBurn", "page", "2m", [("1h", "5m", 14.4), ("6h", "30m", 6)]),
    ("CofreSLOSlowBurn", "ticket", "15m", [("1d", "2h", 3), ("3d", "6h", 1)]),
]


def selector(s, extra=""):
    """The label matchers of an SLO's requests."""
    return (f'job="{s["service"]}",route=~"{s["route"]}",method="{s["method"]}"' + extra)


def error_ratio_expr(s, w):
    """PromQL for the fraction of an SLO's requests that were bad over window w."""
    all_sel = selector(s)
    # by (namespace): one ratio per environment on a shared Prometheus; none locally.
    if s["kind"] == "availability":
        bad_sel = selector(s, ',code=~"5.."')
        bad = f"sum by (namespace) (rate(cofre_http_requests_total{{{bad_sel}}}[{w}]))"
        total = f"sum by (namespace) (rate(cofre_http_requests_total{{{all_sel}}}[{w}]))"
        # 0 rather than nothing while requests flow without errors.
        return f"(\n  {bad}\n  or\n  0 * {total}\n)\n/\n{total}"
    good_sel = selector(s, ',le="' + s["le"] + '"')
    good = (f"sum by (namespace) "
            f"(rate(cofre_http_request_duration_seconds_bucket{{{good_sel}}}[{w}]))")
    total = (f"sum by (namespace) "
             f"(rate(cofre_http_request_duration_seconds_count{{{all_sel}}}[{w}]))")
    return f"1 - (\n  {good}\n  /\n  {total}\n)"


def indent(text, n):
    pad = " " * n
    return "\n".join(pad + line if line else line for line in text.splitlines())


def recording_group():
    out = ["  - name: cofre-slo-recording", "    interval: 30s", "    rules:"]
    for s in SLOS:
        labels = f'      labels: {{slo: {s["slo"]}, service: {s["service"]}}}'
        out += [f"    - record: slo:objective:ratio",
                f"      expr: vector({s['objective']})", labels]
        for w in WINDOWS:
            out += [f"    - record: slo:sli_error:ratio_rate{w}",
                    "      expr: |", indent(error_ratio_expr(s, w), 8), labels]
    return out


def alert_group(name, severity, for_, pairs):
    out = [f"  - name: cofre-slo-{severity}", "    rules:"]
    for s in SLOS:
        budget = round(1 - s["objective"], 6)
        sel = f'{{slo="{s["slo"]}"}}'
        terms = []
        for long_w, short_w, rate in pairs:
            thr = f"({rate} * {budget})"
            terms.append(f"(\n  slo:sli_error:ratio_rate{long_w}{sel} > {thr}\n  and\n"
                         f"  slo:sli_error:ratio_rate{short_w}{sel} > {thr}\n)")
        expr = "\nor\n".join(terms)
        windows = ", ".join(f"{r}x over {lw} and {sw}" for lw, sw, r in pairs)
        description = (
            f"SLO {s['slo']} ({s['objective'] * 100:g}% of {s['what']}) is burning its "
            f"30-day error budget at {windows}. Current 1h error ratio: "
            f"{{{{ with printf `slo:sli_error:ratio_rate1h{{slo=\"{s['slo']}\"}}` | query }}}}"
            f"{{{{ . | first | value | humanizePercentage }}}}{{{{ end }}}}.")
        wrapped = textwrap.wrap(description, width=88, break_long_words=False,
                                break_on_hyphens=False)
        speed = "fast" if severity == "page" else "slow"
        out += [f"    - alert: {name}", "      expr: |", indent(expr, 8),
                f"      for: {for_}",
                f"      labels: {{severity: {severity}, slo: {s['slo']}, "
                f"service: {s['service']}}}",
                "      annotations:",
                f"        summary: \"{s['service']}: {s['slo']} error budget burning "
                f"({speed})\"",
                "        description: >-"]
        out += ["          " + line for line in wrapped]
        out += [f"        runbook_url: {RUNBOOK_BASE}{name}.md"]
    return out


def render():
    lines = ["# GENERATED by gen_slo_rules.py from its SLOS table: do not edit by hand.",
             "# SLO recording rules and multiwindow, multi-burn-rate alerts (SRE workbook).",
             "groups:"]
    lines += recording_group()
    for name, severity, for_, pairs in BURN_ALERTS:
        lines += alert_group(name, severity, for_, pairs)
    return "\n".join(lines) + "\n"


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "rules", "slo.yml")
    with open(out, "w", encoding="utf-8") as f:
        f.write(render())


if __name__ == "__main__":
    main()
