#!/usr/bin/env bash
# make kind-down: deletes the local kind cluster and everything in it (secrets included).
set -euo pipefail
cluster=${KIND_CLUSTER:-cofre}
command -v kind >/dev/null || { echo "kind-down.sh: kind is required" >&2; exit 1; }
if kind get clusters | grep -qx "$cluster"; then
    kind delete cluster --name "$cluster"
else
    echo "kind-down.sh: no cluster $cluster" >&2
fi
