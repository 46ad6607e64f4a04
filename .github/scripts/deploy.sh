#!/usr/bin/env bash
# Deploys cofre to a Kubernetes overlay with images pinned by digest, the way the pipeline's
# stages 7 and 10 do (and the way deploy/k8s/rollout.sh orders it): the migration Job first,
# then `kubectl apply -k`, then the rollout. With PROGRESSIVE=1 (production) it rolls out a
# canary (the first new pod of every Deployment), holds it behind an SLO gate, completes the
# rollout, holds it behind a second gate, and on any failure rolls every Deployment back.
# Writes deployment-record.json (time, commit, environment, outcome, images) in the cwd.
#
#   deploy.sh OVERLAY IMAGES_FILE
#     OVERLAY       deploy/k8s/overlays/OVERLAY (staging, prod)
#     IMAGES_FILE   lines "SERVICE REGISTRY/SERVICE@sha256:..." (from the push stage)
# Environment: NAMESPACE (cofre), PROGRESSIVE (0|1), CANARY_WAIT_S (600), BAKE_S (900),
#   PROMETHEUS_URL (default: a port-forward to svc/prometheus-operated in MONITORING_NAMESPACE),
#   MONITORING_NAMESPACE (monitoring), GATE_POLL_S (30), MIGRATION_TIMEOUT_S (600),
#   ROLLOUT_TIMEOUT_S (900), KUBECTL (kubectl), RECORD_FILE (deployment-record.json).
set -euo pipefail

overlay=${1:?usage: deploy.sh OVERLAY IMAGES_FILE}
images_file=${2:?usage: deploy.sh OVERLAY IMAGES_FILE}
ns=${NAMESPACE:-cofre}
progressive=${PROGRESSIVE:-0}
canary_wait_s=${CANARY_WAIT_S:-600}
bake_s=${BAKE_S:-900}
gate_poll_s=${GATE_POLL_S:-30}
migration_timeout_s=${MIGRATION_TIMEOUT_S:-600}
rollout_timeout_s=${ROLLOUT_TIMEOUT_S:-900}
kubectl=${KUBECTL:-kubectl}
record=${RECORD_FILE:-deployment-record.json}
repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
started_at=$(date -u +%Y-%m-%dT%H:%M:%SZ)
outcome=failed
work=$(mktemp -d)
pf_pid=""

log() { echo "deploy.sh [$overlay] $*" >&2; }

write_record() {
    local images
    images=$(awk '{ printf "%s\"%s\": \"%s\"", (NR > 1 ? ", " : ""), $1, $2 }' "$images_file")
    cat >"$record" <<EOF
{"environment": "$overlay", "commit": "${GITHUB_SHA:-$(git -C "$repo_root" rev-parse HEAD 2>/dev/null || echo unknown)}",
 "started_at": "$started_at", "finished_at": "$(date -u +%Y-%m-%dT%H:%M:%SZ)",
 "outcome": "$outcome", "progressive": $progressive, "actor": "${GITHUB_ACTOR:-$(id -un)}",
 "run_url": "${GITHUB_SERVER_URL:-}/${GITHUB_REPOSITORY:-}/actions/runs/${GITHUB_RUN_ID:-}",
 "images": {$images}}
EOF
}

finish() {
    if [[ -n "$pf_pid" ]]; then
        kill "$pf_pid" 2>/dev/null || true
    fi
    write_record
    rm -rf "$work"
    log "outcome: $outcome"
}
trap finish EXIT

# A kustomization on top of the overlay that pins every image by digest (kustomize wants the
# overlay as a relative path).
render() {
    local dir="$work/overlay" rel
    mkdir -p "$dir"
    rel=$(/usr/bin/env python3 -c 'import os, sys; print(os.path.relpath(sys.argv[1], sys.argv[2]))' \
        "$repo_root/deploy/k8s/overlays/$overlay" "$dir")
    {
        echo "apiVersion: kustomize.config.k8s.io/v1beta1"
        echo "kind: Kustomization"
        echo "resources: [$rel]"
        echo "images:"
        while read -r service image; do
            [[ -n "$service" ]] || continue
            echo "  - name: cofre/$service"
            echo "    newName: ${image%@*}"
            echo "    digest: ${image#*@}"
        done <"$images_file"
    } >"$dir/kustomization.yaml"
    "$kubectl" kustomize "$dir" >"$work/rendered.yaml"
}

migrate() {
    log "migration Job"
    "$kubectl" -n "$ns" delete job cofre-core-migrate --ignore-not-found --wait=true
    "$kubectl" apply -f "$work/rendered.yaml" -l app.kubernetes.io/component=migration
    "$kubectl" -n "$ns" wait --for=condition=complete job/cofre-core-migrate \
        --timeout="${migration_timeout_s}s"
}

deployments() {
    "$kubectl" -n "$ns" get deployments -l app.kubernetes.io/part-of=cofre -o name
}

rollout_status() {
    local d
    for d in $(deployments); do
        "$kubectl" -n "$ns" rollout status "$d" --timeout="${rollout_timeout_s}s"
    done
}

rollback() {
    local d
    log "rolling back every Deployment"
    for d in $(deployments); do
        "$kubectl" -n "$ns" rollout resume "$d" 2>/dev/null || true
        "$kubectl" -n "$ns" rollout undo "$d"
    done
    rollout_status
    outcome=rolled_back
}

prometheus_url() {
    if [[ -n "${PROMETHEUS_URL:-}" ]]; then
        echo "$PROMETHEUS_URL"
        return
    fi
    "$kubectl" -n "${MONITORING_NAMESPACE:-monitoring}" port-forward svc/prometheus-operated \
        19090:9090 >/dev/null 2>&1 &
    pf_pid=$!
    sleep 3
    echo "http://127.0.0.1:19090"
}

# Prints the value of a scalar-ish PromQL query (0 when empty); fails when Prometheus fails.
query() {
    curl -fsS -m 10 --get "$prom/api/v1/query" --data-urlencode "query=$1" |
        /usr/bin/env python3 -c 'import json, sys
d = json.load(sys.stdin)
assert d["status"] == "success", d
r = d["data"]["result"]
print(max((float(s["value"][1]) for s in r), default=0))'
}

# Holds for duration_s; fails as soon as a page fires in the namespace or an SLO of the
# namespace burns its budget at the fast-burn rate over 5 minutes. No answer = failure.
slo_gate() {
    local name=$1 duration_s=$2 deadline=$((SECONDS + $2)) pages burn
    log "SLO gate '$name' for ${duration_s}s"
    while ((SECONDS < deadline)); do
        pages=$(query "count(ALERTS{alertstate=\"firing\",severity=\"page\",namespace=\"$ns\"})") ||
            { log "Prometheus did not answer"; return 1; }
        burn=$(query "max(slo:sli_error:ratio_rate5m{namespace=\"$ns\"} / on (slo, service) group_left() (1 - slo:objective:ratio))") ||
            { log "Prometheus did not answer"; return 1; }
        log "gate '$name': pages firing $pages, fastest 5m burn rate $burn"
        if awk -v p="$pages" -v b="$burn" 'BEGIN { exit !(p > 0 || b > 14.4) }'; then
            log "gate '$name' failed"
            return 1
        fi
        sleep "$gate_poll_s"
    done
}

# Canary: every Deployment paused, the new template applied, then released until one new pod
# of each is ready, and paused again.
canary() {
    local d want got deadline
    for d in $(deployments); do "$kubectl" -n "$ns" rollout pause "$d"; done
    "$kubectl" apply -f "$work/rendered.yaml"
    for d in $(deployments); do
        "$kubectl" -n "$ns" rollout resume "$d"
        deadline=$((SECONDS + rollout_timeout_s))
        while ((SECONDS < deadline)); do
            want=$("$kubectl" -n "$ns" get "$d" -o jsonpath='{.status.updatedReplicas}')
            got=$("$kubectl" -n "$ns" get "$d" -o jsonpath='{.status.readyReplicas}')
            [[ "${want:-0}" -ge 1 && "${got:-0}" -ge 1 ]] && break
            sleep 5
        done
        "$kubectl" -n "$ns" rollout pause "$d"
        ((SECONDS < deadline)) || { log "$d: no canary pod ready"; return 1; }
    done
}

main() {
    render
    migrate
    if [[ "$progressive" != "1" ]]; then
        "$kubectl" apply -f "$work/rendered.yaml"
        rollout_status
        outcome=succeeded
        return
    fi
    prom=$(prometheus_url)
    if ! canary || ! slo_gate canary "$canary_wait_s"; then
        rollback
        return 1
    fi
    local d
    for d in $(deployments); do "$kubectl" -n "$ns" rollout resume "$d"; done
    if ! rollout_status || ! slo_gate bake "$bake_s"; then
        rollback
        return 1
    fi
    outcome=succeeded
}

main
