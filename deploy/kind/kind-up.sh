#!/usr/bin/env bash
# make kind-up: a local cofre on a three-zone kind cluster, from nothing.
#   1. creates the cluster (deploy/kind/cluster.yaml) unless it exists;
#   2. builds the images (deploy/docker/build.sh, tag "dev") and loads them into the nodes;
#   3. installs the platform add-ons (ingress-nginx, metrics-server, kube-prometheus-stack,
#      prometheus-adapter, KEDA: deploy/k8s/platform/install.sh kind);
#   4. creates the secrets (random passwords, a self-signed certificate), never from git;
#   5. rolls out the kind overlay (deploy/k8s/rollout.sh kind) and prints the URLs.
# Needs docker, kind (>= 0.24), kubectl, helm and openssl. Idempotent: run it again to rebuild
# and roll out the current tree.
set -euo pipefail
cd "$(dirname "$0")/../.."

cluster=${KIND_CLUSTER:-cofre}
ctx=kind-$cluster
ns=cofre
host=cofre.localtest.me

for tool in docker kind kubectl helm openssl; do
    command -v "$tool" >/dev/null || { echo "kind-up.sh: $tool is required" >&2; exit 1; }
done
docker info >/dev/null 2>&1 || { echo "kind-up.sh: the Docker engine does not answer" >&2; exit 1; }

if ! kind get clusters | grep -qx "$cluster"; then
    kind create cluster --name "$cluster" --config deploy/kind/cluster.yaml --wait 120s
fi
kc=(kubectl --context "$ctx")

echo "kind-up.sh: building images" >&2
mapfile -t services < <(CONTAINER_ENGINE=docker IMAGE_TAG=dev deploy/docker/build.sh |
    awk '/^image /{ split($2, a, ":"); sub(/^cofre\//, "", a[1]); print a[1] }')
for svc in "${services[@]}"; do
    kind load docker-image --name "$cluster" "cofre/$svc:dev"
done

deploy/k8s/platform/install.sh kind --kube-context "$ctx"

# Secrets: random each time the cluster is created, kept while it lives.
if ! "${kc[@]}" -n "$ns" get secret cofre-postgresql >/dev/null 2>&1; then
    pw=$(openssl rand -hex 24)
    "${kc[@]}" -n "$ns" create secret generic cofre-postgresql --from-literal=password="$pw"
    for svc in core auth audit legacy; do
        "${kc[@]}" -n "$ns" create secret generic "cofre-$svc-db" --from-literal=url="postgres://cofre:$pw@postgresql.$ns.svc.cluster.local:5432/cofre_$svc?sslmode=disable"
    done
fi
if ! "${kc[@]}" -n "$ns" get secret cofre-audit-signing-key >/dev/null 2>&1; then
    "${kc[@]}" -n "$ns" create secret generic cofre-audit-signing-key \
        --from-literal=key="$(openssl rand -hex 32)"
fi
if ! "${kc[@]}" -n "$ns" get secret cofre-api-tls >/dev/null 2>&1; then
    tmp=$(mktemp -d)
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 365 \
        -subj "/CN=$host" -addext "subjectAltName=DNS:$host" \
        -keyout "$tmp/tls.key" -out "$tmp/tls.crt" 2>/dev/null
    "${kc[@]}" -n "$ns" create secret tls cofre-api-tls --cert "$tmp/tls.crt" --key "$tmp/tls.key"
    rm -rf "$tmp"
fi

deploy/k8s/rollout.sh kind --context "$ctx"

cat <<MSG
cofre is running on kind (cluster $cluster, context $ctx):
  API        https://$host/v1/   (self-signed certificate: curl -k)
  tokens     https://$host/oauth/token
  Grafana    kubectl --context $ctx -n monitoring port-forward svc/kube-prometheus-stack-grafana 3000:80
  Prometheus kubectl --context $ctx -n monitoring port-forward svc/kube-prometheus-stack-prometheus 9090
Remove it with: make kind-down
MSG
