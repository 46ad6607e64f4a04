#!/usr/bin/env bash
# Installs the cluster add-ons cofre's manifests rely on, at pinned chart versions, with the
# values files beside this script:
#   ingress-nginx (the gateway), metrics-server (HPA CPU), kube-prometheus-stack (Prometheus
#   Operator CRDs, Prometheus, Alertmanager, Grafana), prometheus-adapter (the HPA
#   requests-per-second metric), KEDA (Kafka lag scaling); on EKS also External Secrets
#   Operator and cert-manager. Then the cofre namespace (restricted Pod Security).
# Usage: install.sh kind|eks [helm flags, e.g. --kube-context X]
set -euo pipefail

target=${1:?usage: install.sh kind|eks [helm flags...]}
shift
here=$(cd "$(dirname "$0")" && pwd)

# name repo-name repo-url chart version namespace
charts=(
    "ingress-nginx ingress-nginx https://kubernetes.github.io/ingress-nginx ingress-nginx 4.11.3 ingress-nginx"
    "metrics-server metrics-server https://kubernetes-sigs.github.io/metrics-server metrics-server 3.12.2 kube-system"
    "kube-prometheus-stack prometheus-community https://prometheus-community.github.io/helm-charts kube-prometheus-stack 65.5.1 monitoring"
    "prometheus-adapter prometheus-community https://prometheus-community.github.io/helm-charts prometheus-adapter 4.11.0 monitoring"
    "keda kedacore https://kedacore.github.io/charts keda 2.15.2 keda"
)
if [[ $target == eks ]]; then
    charts+=(
        "external-secrets external-secrets https://charts.external-secrets.io external-secrets 0.17.0 external-secrets"
        "cert-manager jetstack https://charts.jetstack.io cert-manager v1.16.1 cert-manager"
    )
elif [[ $target != kind ]]; then
    echo "install.sh: target must be kind or eks" >&2
    exit 2
fi

# Per-target values on top of the shared ones.
extra_values() {
    case "$1/$target" in
    ingress-nginx/kind)
        echo "--set controller.hostPort.enabled=true --set controller.service.type=NodePort" \
            "--set controller.replicaCount=1 --set controller.minAvailable=0" \
            "--set controller.nodeSelector.ingress-ready=true" \
            "--set controller.tolerations[0].key=node-role.kubernetes.io/control-plane" \
            "--set controller.tolerations[0].effect=NoSchedule"
        ;;
    metrics-server/kind) echo "--set args[0]=--kubelet-insecure-tls" ;;
    cert-manager/eks) echo "--set crds.enabled=true" ;;
    esac
}

for line in "${charts[@]}"; do
    read -r name repo url chart version namespace <<<"$line"
    helm repo add "$repo" "$url" --force-update >/dev/null
    values=()
    [[ -f $here/$name.values.yaml ]] && values=(-f "$here/$name.values.yaml")
    read -r -a extra <<<"$(extra_values "$name")"
    echo "install.sh: $name $version" >&2
    helm upgrade --install "$name" "$repo/$chart" --version "$version" \
        --namespace "$namespace" --create-namespace --wait --timeout 10m \
        "${values[@]}" "${extra[@]}" "$@"
done
kubectl_args=()
for ((i = 1; i <= $#; i++)); do
    if [[ ${!i} == --kube-context ]]; then
        j=$((i + 1))
        kubectl_args=(--context "${!j}")
    fi
done
kubectl "${kubectl_args[@]}" apply -f "$here/security-headers.yaml" -f "$here/namespace.yaml"
