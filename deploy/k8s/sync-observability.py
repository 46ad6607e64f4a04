#!/usr/bin/python3
"""Copies the observability area's Kubernetes monitoring objects into the kustomize base:
deploy/observability/k8s/servicemonitors.yaml (one ServiceMonitor per service of
deploy/observability/services.txt) and deploy/observability/k8s/prometheusrule.yaml (the rule
files promtool tests, as a PrometheusRule), both generated there by gen_k8s.py. Kustomize
cannot load files from outside the base, so the base holds a copy: this script refreshes it
(`make k8s-monitoring`) and test-deploy fails when the copy differs from the source.

The objects land in namespace cofre, so the ServiceMonitors select cofre's Services there.

Usage: sync-observability.py [--check]
"""
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
SOURCE = ROOT / "deploy/observability/k8s"
TARGET = ROOT / "deploy/k8s/base/monitoring"
FILES = ["servicemonitors.yaml", "prometheusrule.yaml"]
HEADER = ("# Copied by deploy/k8s/sync-observability.py from deploy/observability/k8s/{name}.\n"
          "# Do not edit: change the observability sources and run `make k8s-monitoring`.\n")


def expected(name):
    src = SOURCE / name
    if not src.is_file():
        raise SystemExit(f"{src.relative_to(ROOT)} is missing (deploy/observability/gen_k8s.py "
                         "writes it)")
    return HEADER.format(name=name) + src.read_text(encoding="utf-8")


def main():
    check = "--check" in sys.argv[1:]
    TARGET.mkdir(parents=True, exist_ok=True)
    stale = []
    for name in FILES:
        text = expected(name)
        out = TARGET / name
        current = out.read_text(encoding="utf-8") if out.exists() else None
        if current == text:
            continue
        if check:
            stale.append(str(out.relative_to(ROOT)))
        else:
            out.write_text(text, encoding="utf-8")
            print(f"wrote {out.relative_to(ROOT)}")
    if stale:
        print(f"stale copies of deploy/observability/k8s: {', '.join(stale)}: "
              "run `make k8s-monitoring`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
