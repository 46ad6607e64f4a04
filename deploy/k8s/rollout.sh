#!/usr/bin/env bash
# Applies one overlay to the current kubectl context in the order a rollout needs:
#   1. everything but the workloads and the migration Job (namespace, accounts, config,
#      ExternalSecrets, policies, Services, autoscalers, monitoring), then waits until the
#      secrets exist and, on kind, until PostgreSQL and Kafka are ready;
#   2. the migration Job (the previous one deleted first: a Job's template is immutable),
#      waiting until it completes; a failed migration stops the rollout with the old
#      version still serving;
#   3. the Deployments (label cofre.io/phase=workload), waiting for each rollout.
# The pipeline (deploy to staging, deploy to production) and make kind-up both call it.
#
# Usage: deploy/k8s/rollout.sh OVERLAY [kubectl flags...]   e.g. rollout.sh staging --context x
set -euo pipefail

overlay=${1:?usage: rollout.sh OVERLAY [kubectl flags...]}
shift
here=$(cd "$(dirname "$0")" && pwd)
dir=$here/overlays/$overlay
[[ -d $dir ]] || { echo "rollout.sh: no overlay $overlay" >&2; exit 2; }
timeout=${ROLLOUT_TIMEOUT:-600s}
ns=cofre
kc=(kubectl "$@")

rendered=$(mktemp)
trap 'rm -f "$rendered"' EXIT
"${kc[@]}" kustomize "$dir" >"$rendered"

echo "rollout.sh: 1/3 configuration, policies, services, autoscalers ($overlay)" >&2
"${kc[@]}" apply --server-side --force-conflicts -f "$rendered" \
    -l 'cofre.io/phase!=workload,app.kubernetes.io/component!=migration'
if "${kc[@]}" -n "$ns" get externalsecrets.external-secrets.io -o name 2>/dev/null | grep -q .; then
    "${kc[@]}" -n "$ns" wait externalsecrets.external-secrets.io --all \
        --for=condition=Ready --timeout="$timeout"
fi
for sts in $("${kc[@]}" -n "$ns" get statefulsets -o name); do
    "${kc[@]}" -n "$ns" rollout status "$sts" --timeout="$timeout"
done

echo "rollout.sh: 2/3 database migration" >&2
"${kc[@]}" -n "$ns" delete job cofre-core-migrate --ignore-not-found --wait=true
"${kc[@]}" apply --server-side --force-conflicts -f "$rendered" \
    -l 'app.kubernetes.io/component=migration'
if ! "${kc[@]}" -n "$ns" wait job/cofre-core-migrate --for=condition=Complete \
    --timeout="$timeout"; then
    "${kc[@]}" -n "$ns" logs job/cofre-core-migrate --tail=50 >&2 || true
    echo "rollout.sh: the migration did not complete; workloads left unchanged" >&2
    exit 1
fi

echo "rollout.sh: 3/3 workloads" >&2
"${kc[@]}" apply --server-side --force-conflicts -f "$rendered" -l 'cofre.io/phase=workload'
for deploy in $("${kc[@]}" -n "$ns" get deployments -l cofre.io/phase=workload -o name); do
    "${kc[@]}" -n "$ns" rollout status "$deploy" --timeout="$timeout"
done
echo "rollout.sh: $overlay rolled out" >&2
