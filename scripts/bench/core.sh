#!/usr/bin/env bash
# The core ledger's benchmark (issue 2), side by side in one run:
#   1. GET /healthz on cofre-core against NGINX answering 200 from memory (same wrk load);
#   2. durable POST /v1/transfers on SQLite between random accounts, each with a new
#      Idempotency-Key: the maximum rate, then p99 at half of it;
#   3. cofre-core's resident memory under that load, and the time from exec to /readyz 200.
# Prints a markdown section on stdout. Usage: scripts/bench/core.sh BIN_DIR
set -euo pipefail

bin_dir=$(cd "$1" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
runs=${BENCH_RUNS:-3}
seconds=${BENCH_SECONDS:-10}
health_conns=${BENCH_HEALTH_CONNECTIONS:-64}
transfer_conns=${BENCH_TRANSFER_CONNECTIONS:-128}
core_port=${BENCH_CORE_PORT:-18181}
nginx_port=${BENCH_NGINX_PORT:-18182}
work=$(mktemp -d)
pids=()

cleanup() {
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT

median() { sort -g | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
rps() { awk '/^Requests\/sec:/ {print $2}'; }
p99_ms() {
    awk '$1 == "99%" {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v*=1000}; print v}'
}

wait_ready() {
    for _ in $(seq 1 200); do
        curl -sf "http://127.0.0.1:$1/readyz" >/dev/null 2>&1 && return 0
        sleep 0.05
    done
    echo "core.sh: service on port $1 did not become ready" >&2
    exit 1
}

start_core() {
    env COFRE_LISTEN="127.0.0.1:$core_port" COFRE_DB="sqlite:$work/$1.db" COFRE_LOG_LEVEL=warn \
        COFRE_DRAIN_S=0 COFRE_AUTH=off "$bin_dir/cofre-core" >"$work/$1.log" 2>&1 &
    core_pid=$!
    pids+=("$core_pid")
    wait_ready "$core_port"
}

stop_core() {
    kill "$core_pid"
    wait "$core_pid" || true
}

start_nginx() {
    mkdir -p "$work/nginx"
    sed -e "s|@PREFIX@|$work/nginx|g" -e "s|@PORT@|$nginx_port|g" "$here/nginx-return200.conf" \
        >"$work/nginx/nginx.conf"
    nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" 2>>"$work/nginx/error.log" &
    pids+=("$!")
    for _ in $(seq 1 100); do
        curl -sf "http://127.0.0.1:$nginx_port/" >/dev/null 2>&1 && return 0
        sleep 0.05
    done
    echo "core.sh: nginx did not start" >&2
    exit 1
}

# Highest VmRSS of a process, sampled every 100 ms while a command runs.
run_sampling_rss() {
    local pid=$1
    shift
    local peak=0
    "$@" &
    local load=$!
    while kill -0 "$load" 2>/dev/null; do
        local kb
        kb=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null || echo 0)
        ((kb > peak)) && peak=$kb
        sleep 0.1
    done
    wait "$load"
    echo "$peak" >"$work/rss_peak"
}

bench_health() {
    start_core health
    start_nginx
    local core_runs=() nginx_runs=()
    for _ in $(seq 1 "$runs"); do
        nginx_runs+=("$(wrk -t2 -c"$health_conns" -d"$seconds" "http://127.0.0.1:$nginx_port/healthz" | rps)")
        core_runs+=("$(wrk -t2 -c"$health_conns" -d"$seconds" "http://127.0.0.1:$core_port/healthz" | rps)")
    done
    stop_core
    health_core=$(printf '%s\n' "${core_runs[@]}" | median)
    health_nginx=$(printf '%s\n' "${nginx_runs[@]}" | median)
    health_core_all="${core_runs[*]}"
    health_nginx_all="${nginx_runs[*]}"
}

bench_transfers() {
    start_core transfers
    /usr/bin/python3 "$here/setup_accounts.py" "http://127.0.0.1:$core_port" 1000 "$work/ids.txt"
    export ACCOUNTS_FILE="$work/ids.txt" SCRIPT_DIR="$here"
    # Warm the caches, then measure.
    wrk -t2 -c"$transfer_conns" -d3 -s "$here/transfers.lua" "http://127.0.0.1:$core_port" >/dev/null
    local max_runs=() rss_peaks=()
    for i in $(seq 1 "$runs"); do
        run_sampling_rss "$core_pid" sh -c "wrk -t2 -c$transfer_conns -d$seconds --latency \
            -s '$here/transfers.lua' http://127.0.0.1:$core_port > '$work/max$i.txt'"
        max_runs+=("$(rps <"$work/max$i.txt")")
        rss_peaks+=("$(cat "$work/rss_peak")")
    done
    transfers_max=$(printf '%s\n' "${max_runs[@]}" | median)
    transfers_max_all="${max_runs[*]}"
    transfers_max_p99=$(p99_ms <"$work/max1.txt")
    rss_peak_kib=$(printf '%s\n' "${rss_peaks[@]}" | sort -n | tail -1)
    local half half_conns=64 half_p99=() half_rates=()
    half=$(awk -v m="$transfers_max" 'BEGIN {printf "%d", m / 2}')
    for i in $(seq 1 "$runs"); do
        RATE=$half CONNECTIONS=$half_conns wrk -t2 -c"$half_conns" -d"$seconds" --latency \
            -s "$here/transfers_rate.lua" "http://127.0.0.1:$core_port" >"$work/half$i.txt"
        half_p99+=("$(p99_ms <"$work/half$i.txt")")
        half_rates+=("$(rps <"$work/half$i.txt")")
    done
    transfers_half_target=$half
    transfers_half_rate=$(printf '%s\n' "${half_rates[@]}" | median)
    transfers_half_p99=$(printf '%s\n' "${half_p99[@]}" | median)
    transfers_half_p99_all="${half_p99[*]}"
    curl -s "http://127.0.0.1:$core_port/metrics" |
        awk '/^cofre_committer_batch_size_(sum|count) / {v[$1]=$2} END {
            printf "%.1f\n", v["cofre_committer_batch_size_sum"] / v["cofre_committer_batch_size_count"]}' \
            >"$work/batch"
    transfers_batch=$(cat "$work/batch")
    stop_core
}

bench_startup() {
    read -r startup_fresh startup_fresh_max < <(/usr/bin/python3 "$here/startup.py" \
        "$bin_dir/cofre-core" "$core_port" 10 fresh)
    read -r startup_existing startup_existing_max < <(/usr/bin/python3 "$here/startup.py" \
        "$bin_dir/cofre-core" "$core_port" 10 existing)
}

bench_health
bench_transfers
bench_startup

ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
verdict() { awk -v v="$1" -v goal="$2" -v dir="$3" 'BEGIN {
    ok = (dir == "min") ? (v >= goal) : (v <= goal); print ok ? "met" : "NOT met" }'; }
rss_mib=$(awk -v k="$rss_peak_kib" 'BEGIN {printf "%.1f", k / 1024}')
health_ratio=$(ratio "$health_core" "$health_nginx")

cat <<EOF
## Core ledger (issue 2)

\`scripts/bench/core.sh\`: wrk -t2, ${seconds} s per run, median of ${runs} runs, cofre-core with
COFRE_THREADS = cores, SQLite WAL with synchronous=FULL, log level warn.

| measure | result | goal | |
| --- | --- | --- | --- |
| GET /healthz, cofre-core vs NGINX \`return 200\` (${health_conns} connections) | ${health_core} vs ${health_nginx} req/s = **${health_ratio}x** | >= 0.9x | $(verdict "$health_ratio" 0.9 min) |
| durable POST /v1/transfers, maximum (${transfer_conns} connections) | **${transfers_max} transfers/s** (runs: ${transfers_max_all}; p99 ${transfers_max_p99} ms; ${transfers_batch} commands per commit) | >= 20000 | $(verdict "$transfers_max" 20000 min) |
| p99 at half the maximum (target ${transfers_half_target}/s, achieved ${transfers_half_rate}/s) | **${transfers_half_p99} ms** (runs: ${transfers_half_p99_all}) | <= 10 ms | $(verdict "$transfers_half_p99" 10 max) |
| resident memory, peak under the transfer load | **${rss_mib} MiB** | <= 16 MiB | $(verdict "$rss_mib" 16 max) |
| exec to /readyz 200, new database (schema created) | **${startup_fresh} ms** median, ${startup_fresh_max} ms max of 10 | <= 50 ms | $(verdict "$startup_fresh" 50 max) |
| exec to /readyz 200, existing database | **${startup_existing} ms** median, ${startup_existing_max} ms max of 10 | <= 50 ms | $(verdict "$startup_existing" 50 max) |

Runs, /healthz: cofre-core ${health_core_all}; NGINX ${health_nginx_all}.
EOF
