#!/usr/bin/env bash
# The k6 scenarios' shapes, run locally with wrk (make load-smoke; .ci/run). wrk is a closed
# model (a fixed number of connections), so the "ramping arrival rate" becomes ramping
# connections: a short unmeasured ramp (1, then half the connections), then a measured steady
# window at full connections. Each scenario passes when, in the steady window, p99 stays under
# its SLO bound, errors (non-2xx, socket errors) stay under 0.1%, and throughput is at least
# LOAD_MIN_RPS (a server that answers too slowly to matter fails too).
#
#   loadtest/wrk/run.sh [SCENARIO...]   transfers reads tokens (default: transfers reads, and
#                                       tokens when CLIENT_ID is set)
# Environment:
#   COFRE_URL      base URL to test (the gateway, or a service); unset: cofre-core is started
#                  from COFRE_BIN_DIR (build/bin) on a private port and stopped at the end
#   COFRE_TOKEN    bearer token for /v1 (through the gateway); CLIENT_ID, CLIENT_SECRET
#   LOAD_THREADS (2) LOAD_CONNECTIONS (8) LOAD_RAMP_S (3) LOAD_STEADY_S (15)
#   LOAD_ACCOUNTS (50) LOAD_MIN_RPS (200) LOAD_MAX_ERROR_RATE (0.001) LOAD_OUT (temp dir)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
threads=${LOAD_THREADS:-2}
conns=${LOAD_CONNECTIONS:-8}
ramp_s=${LOAD_RAMP_S:-3}
steady_s=${LOAD_STEADY_S:-15}
n_accounts=${LOAD_ACCOUNTS:-50}
min_rps=${LOAD_MIN_RPS:-200}
max_error_rate=${LOAD_MAX_ERROR_RATE:-0.001}
currency=EUR
out=${LOAD_OUT:-$(mktemp -d -t cofre-load.XXXXXX)}
mkdir -p "$out"
services_dir=""

# p99 bound of each scenario in ms (the SLOs in docs/operations.md).
declare -A p99_ms=([transfers]=250 [reads]=100 [tokens]=100)

die() { echo "load: $*" >&2; exit 1; }
command -v wrk >/dev/null || die "wrk not installed (scripts/deps.sh bench installs it)"

cleanup() {
    if [[ -n "$services_dir" ]]; then
        "$root/deploy/observability/local-services.sh" stop "$services_dir"
    fi
}
trap cleanup EXIT

if [[ -z "${COFRE_URL:-}" ]]; then
    services_dir="$out/services"
    mkdir -p "$services_dir"
    COFRE_BIN_DIR=${COFRE_BIN_DIR:-$root/build/bin} COFRE_OBS_ONLY=cofre-core \
        "$root/deploy/observability/local-services.sh" start "$services_dir"
    COFRE_URL=$(awk '$1 == "cofre-core" { print $2 }' "$services_dir/urls")
fi
COFRE_URL=${COFRE_URL%/}

auth=()
if [[ -n "${COFRE_TOKEN:-}" ]]; then
    auth=(-H "Authorization: Bearer $COFRE_TOKEN")
fi

post() { # post PATH KEY BODY -> prints the id of the created object
    curl -fsS -m 10 -X POST "$COFRE_URL$1" "${auth[@]}" -H "Idempotency-Key: $2" \
        -H 'Content-Type: application/json' -d "$3" |
        /usr/bin/python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])'
}

# Test data: a settlement account and funded customers, so no transfer lacks funds.
setup_accounts() {
    local run settlement id i
    run="$(date +%s)-$$"
    settlement=$(post /v1/accounts "load-$run-s" \
        "{\"owner\":\"loadtest\",\"currency\":\"$currency\",\"flags\":{\"no_overdraft\":false}}")
    : >"$out/accounts"
    for ((i = 0; i < n_accounts; i++)); do
        id=$(post /v1/accounts "load-$run-a$i" "{\"owner\":\"loadtest\",\"currency\":\"$currency\"}")
        post /v1/transfers "load-$run-f$i" "{\"debit_account_id\":\"$settlement\",\"credit_account_id\":\"$id\",\"amount\":1000000000,\"currency\":\"$currency\"}" >/dev/null
        echo "$id" >>"$out/accounts"
    done
}

# wrk SCENARIO CONNECTIONS SECONDS SUMMARY_FILE
run_wrk() {
    local c=$2
    ((c >= threads)) || c=$threads
    WRK_LUA_DIR=$here ACCOUNTS_FILE="$out/accounts" CURRENCY=$currency RUN_ID="$$-$1-$c" \
        WRK_SUMMARY=$4 wrk -t "$threads" -c "$c" -d "${3}s" --timeout 5s \
        -s "$here/$1.lua" "$COFRE_URL" >"$out/$1-c$c.txt"
}

judge() { # judge SCENARIO SUMMARY_FILE -> 0 pass, 1 fail; prints one line
    /usr/bin/python3 - "$1" "$2" "${p99_ms[$1]}" "$max_error_rate" "$min_rps" <<'PY'
import json, sys
name, path, p99_ms, max_err, min_rps = sys.argv[1], sys.argv[2], float(sys.argv[3]), \
    float(sys.argv[4]), float(sys.argv[5])
s = json.load(open(path))
n = s["requests"]
errors = s["non_2xx_3xx"] + s["connect_errors"] + s["read_errors"] + s["write_errors"] + s["timeouts"]
rps = n / (s["duration_us"] / 1e6)
err_rate = errors / n if n else 1.0
p99 = s["p99_us"] / 1000
failures = []
if p99 >= p99_ms: failures.append(f"p99 {p99:.1f} ms >= {p99_ms:g} ms")
if err_rate >= max_err: failures.append(f"error rate {err_rate:.4%} >= {max_err:.2%}")
if rps < min_rps: failures.append(f"{rps:.0f} req/s < {min_rps:g}")
verdict = "FAIL " + "; ".join(failures) if failures else "ok"
print(f"load {name:9s} {n:7d} req {rps:8.0f} req/s  p50 {s['p50_us']/1000:6.2f} ms  "
      f"p95 {s['p95_us']/1000:6.2f} ms  p99 {p99:6.2f} ms  errors {errors} ({err_rate:.3%})  {verdict}")
sys.exit(1 if failures else 0)
PY
}

scenarios=("$@")
if [[ ${#scenarios[@]} -eq 0 ]]; then
    scenarios=(transfers reads)
    [[ -n "${CLIENT_ID:-}" ]] && scenarios+=(tokens)
fi
setup_accounts
passed=0
failed=0
for s in "${scenarios[@]}"; do
    [[ -f "$here/$s.lua" ]] || die "no scenario $s"
    run_wrk "$s" 1 "$ramp_s" /dev/null
    run_wrk "$s" $((conns / 2)) "$ramp_s" /dev/null
    run_wrk "$s" "$conns" "$steady_s" "$out/$s.json"
    if judge "$s" "$out/$s.json"; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
    fi
done
echo "load-smoke: $passed passed, $failed failed (outputs in $out)"
((failed == 0))
