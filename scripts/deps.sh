#!/usr/bin/env bash
# Installs the Debian 12 packages cofre needs, only those missing, so that a fresh machine
# needs nothing but `make run` or `make test`. Usage: scripts/deps.sh {build|run|test|bench|lint|deploy}...
set -euo pipefail

build_pkgs=(build-essential cmake pkg-config clang libclang-rt-14-dev
    libh2o-evloop-dev libjansson-dev libsqlite3-dev libpq-dev libssl-dev libsodium-dev
    librdkafka-dev libcmocka-dev)
run_pkgs=(nginx openssl curl sqlite3 jq)
test_pkgs=(python3 python3-pytest python3-requests python3-yaml python3-psycopg2 python3-jwt
    python3-cryptography python3-confluent-kafka python3-jsonschema kcat postgresql postgresql-contrib pgbouncer prometheus
    prometheus-alertmanager procps iproute2)
lint_pkgs=(clang-format clang-tidy cppcheck shellcheck yamllint flawfinder)
bench_pkgs=(wrk postgresql-contrib)
dast_pkgs=(wapiti sqlmap curl)
deploy_pkgs=(podman buildah runc mmdebstrap uidmap yamllint shellcheck python3-pytest
    python3-requests python3-yaml python3-jwt python3-cryptography)

want=()
for group in "$@"; do
    case "$group" in
    build) want+=("${build_pkgs[@]}") ;;
    run) want+=("${build_pkgs[@]}" "${run_pkgs[@]}") ;;
    test) want+=("${build_pkgs[@]}" "${run_pkgs[@]}" "${test_pkgs[@]}" "${lint_pkgs[@]}") ;;
    lint) want+=("${lint_pkgs[@]}") ;;
    bench) want+=("${build_pkgs[@]}" "${run_pkgs[@]}" "${test_pkgs[@]}" "${bench_pkgs[@]}") ;;
    dast) want+=("${dast_pkgs[@]}") ;;
    deploy) want+=("${deploy_pkgs[@]}") ;;
    *) echo "deps.sh: unknown group '$group' (build|run|test|bench|lint|deploy|dast)" >&2; exit 2 ;;
    esac
done

missing=()
for p in "${want[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    [[ "$status" == "install ok installed" ]] || missing+=("$p")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

# De-duplicate while keeping order, for a readable message.
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | awk '!seen[$0]++')
echo "deps.sh: installing ${missing[*]}" >&2
sudo=()
[[ $(id -u) -eq 0 ]] || sudo=(sudo)
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
