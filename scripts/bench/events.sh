#!/usr/bin/env bash
# The events benchmark (issue 6): does the outbox relay keep up with cofre-core at its maximum
# transfer rate, and does cofre-audit? In one run, on loopback:
#   1. the reference: durable POST /v1/transfers on SQLite with no event bus (as core.sh does);
#   2. the same load with the relay on (to cofre-kafka-dev) and cofre-audit consuming: the rate,
#      the oldest unpublished outbox row's age during the load and when it stops (goal <= 1 s),
#      the seconds until the outbox is empty, and until cofre-audit's consumer lag is back to 0
#      (goal <= 5 s), and that the trail then holds every event once and verifies.
# Prints a markdown section on stdout. Usage: scripts/bench/events.sh BIN_DIR
# Environment: BENCH_RUNS (3), BENCH_SECONDS (10), BENCH_TRANSFER_CONNECTIONS (128).
set -euo pipefail

bin_dir=$(cd "$1" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
runs=${BENCH_RUNS:-3}
seconds=${BENCH_SECONDS:-10}
conns=${BENCH_TRANSFER_CONNECTIONS:-128}
py=/usr/bin/python3
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

die() {
    echo "events.sh: $*" >&2
    exit 1
}

median() { sort -g | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
max() { sort -g | tail -n1; }
rps() { awk '/^Requests\/sec:/ {print $2}'; }
json_field() { $py -c 'import json,sys; v=json.load(sys.stdin)[sys.argv[1]]; print("n/a" if v is None else v)' "$1"; }

free_port() {
    $py -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_ready() {
    for _ in $(seq 1 600); do
        curl -sf "http://127.0.0.1:$1/readyz" >/dev/null 2>&1 && return 0
        sleep 0.05
    done
    die "service on port $1 did not become ready"
}

# start NAME PORT LOG ENV... : runs a binary in the background with the common settings.
start() {
    local name=$1 port=$2 log=$3
    shift 3
    env COFRE_LISTEN="127.0.0.1:$port" COFRE_LOG_LEVEL=warn COFRE_DRAIN_S=0 COFRE_AUTH=off "$@" \
        "$bin_dir/$name" >"$log" 2>&1 &
    pids+=("$!")
}

outbox_rows() { sqlite3 "file:$1?mode=ro" "SELECT count(*) FROM outbox"; }

load() {
    ACCOUNTS_FILE="$1" SCRIPT_DIR="$here" wrk -t2 -c"$conns" -d"$2" -s "$here/transfers.lua" \
        "http://127.0.0.1:$3"
}

# 1. The reference: the core alone.
reference() {
    local port
    port=$(free_port)
    start cofre-core "$port" "$work/ref.log" COFRE_DB="sqlite:$work/ref.db"
    wait_ready "$port"
    $py "$here/setup_accounts.py" "http://127.0.0.1:$port" 1000 "$work/ref-ids.txt"
    load "$work/ref-ids.txt" 3 "$port" >/dev/null
    local r=()
    for _ in $(seq 1 "$runs"); do
        r+=("$(load "$work/ref-ids.txt" "$seconds" "$port" | rps)")
    done
    ref_rate=$(printf '%s\n' "${r[@]}" | median)
    ref_all="${r[*]}"
    kill "${pids[-1]}"
    wait "${pids[-1]}" || true
}

# 2. The pipeline: kafka-dev, core with the relay, audit.
pipeline_up() {
    local kafka_port
    kafka_port=$(free_port)
    start cofre-kafka-dev "$kafka_port" "$work/kafka.log" \
        COFRE_KAFKA_DEV_BOOTSTRAP_FILE="$work/bootstrap"
    wait_ready "$kafka_port"
    brokers=$(cat "$work/bootstrap")
    core_port=$(free_port)
    start cofre-core "$core_port" "$work/core.log" COFRE_DB="sqlite:$work/core.db" \
        COFRE_KAFKA_BROKERS="$brokers"
    "$bin_dir/cofre-audit" keygen "$work/audit.key" >/dev/null
    audit_port=$(free_port)
    start cofre-audit "$audit_port" "$work/audit.log" COFRE_DB="sqlite:$work/audit.db" \
        COFRE_KAFKA_BROKERS="$brokers" COFRE_AUDIT_SIGNING_KEY_FILE="$work/audit.key" \
        COFRE_AUDIT_VERIFY_INTERVAL_S=0
    wait_ready "$core_port"
    wait_ready "$audit_port"
}

# Waits until the audit trail holds one record per outbox row.
wait_caught_up() {
    local want have
    for _ in $(seq 1 1200); do
        want=$(outbox_rows "$work/core.db")
        have=$(curl -s "http://127.0.0.1:$audit_port/metrics" | awk '$1 == "cofre_audit_records" {print $2}')
        [[ "${have%.*}" == "$want" ]] && return 0
        sleep 0.1
    done
    die "cofre-audit holds ${have:-?} records, the outbox $want rows"
}

pipeline() {
    pipeline_up
    $py "$here/setup_accounts.py" "http://127.0.0.1:$core_port" 1000 "$work/ids.txt"
    load "$work/ids.txt" 3 "$core_port" >/dev/null
    wait_caught_up
    local rates=() end_ages=() peak_ages=() drains=() lags=() p99s=() maxes=() failures=0
    for i in $(seq 1 "$runs"); do
        load "$work/ids.txt" "$seconds" "$core_port" >"$work/load$i.txt" &
        local load_pid=$!
        $py "$here/events_probe.py" "$work/core.db" "http://127.0.0.1:$core_port" \
            "http://127.0.0.1:$audit_port" "$work/audit.db" "$load_pid" >"$work/probe$i.json"
        wait "$load_pid"
        wait_caught_up
        rates+=("$(rps <"$work/load$i.txt")")
        end_ages+=("$(json_field oldest_age_at_end_s <"$work/probe$i.json")")
        peak_ages+=("$(json_field peak_oldest_age_s <"$work/probe$i.json")")
        drains+=("$(json_field outbox_drained_s <"$work/probe$i.json")")
        lags+=("$(json_field audit_lag_zero_s <"$work/probe$i.json")")
        p99s+=("$(json_field trail_latency_p99_s <"$work/probe$i.json")")
        maxes+=("$(json_field trail_latency_max_s <"$work/probe$i.json")")
        failures=$(json_field delivery_failures <"$work/probe$i.json")
    done
    relay_rate=$(printf '%s\n' "${rates[@]}" | median)
    relay_all="${rates[*]}"
    end_age=$(printf '%s\n' "${end_ages[@]}" | median)
    end_age_max=$(printf '%s\n' "${end_ages[@]}" | max)
    peak_age=$(printf '%s\n' "${peak_ages[@]}" | max)
    drain=$(printf '%s\n' "${drains[@]}" | median)
    drain_max=$(printf '%s\n' "${drains[@]}" | max)
    lag=$(printf '%s\n' "${lags[@]}" | median)
    lag_max=$(printf '%s\n' "${lags[@]}" | max)
    trail_p99=$(printf '%s\n' "${p99s[@]}" | median)
    trail_max=$(printf '%s\n' "${maxes[@]}" | max)
    delivery_failures=${failures%.*}
    events=$(outbox_rows "$work/core.db")
    verdict=$(curl -s "http://127.0.0.1:$audit_port/v1/audit/verify")
    [[ "$verdict" == *'"ok":true'* ]] || die "the audit trail does not verify: $verdict"
    records=$(echo "$verdict" | json_field records)
    [[ "$records" == "$events" ]] || die "$records audit records for $events events"
}

reference
pipeline

verdict_of() { awk -v v="$1" -v goal="$2" 'BEGIN {print (v != "n/a" && v <= goal) ? "met" : "NOT met"}'; }

cat <<EOF
## Events: the outbox relay and cofre-audit at the core's maximum rate

\`scripts/bench/events.sh\` (\`make bench-events\`): wrk, ${conns} connections, ${seconds} s per
run, ${runs} runs, durable \`POST /v1/transfers\` between 1000 funded accounts on SQLite (the
core benchmark's load). With the relay on, cofre-core, cofre-kafka-dev (3 mock brokers, 6
partitions) and cofre-audit share this machine's $(nproc) cores with wrk. The outbox age is read
from the outbox table every 100 ms; cofre-audit has caught up when \`cofre_audit_consumer_lag\`
is 0 (refreshed every second, offsets committed every second) and it holds one record per
outbox row.

| measure | result | goal |
| --- | --- | --- |
| durable transfers/s, no event bus (reference) | ${ref_rate} (runs: ${ref_all}) | |
| durable transfers/s, relay + dev cluster + audit | ${relay_rate} (runs: ${relay_all}) | |
| oldest outbox row not yet marked published, when the load stops (median of runs) | ${end_age} s (worst run ${end_age_max} s) | <= 1 s: $(verdict_of "$end_age" 1) |
| oldest outbox row not yet marked published, worst during the load | ${peak_age} s | |
| commit to audit record (relay, Kafka, cofre-audit), p99 / worst | ${trail_p99} s / ${trail_max} s | |
| outbox empty after the load stops | ${drain} s (worst ${drain_max} s) | |
| cofre-audit caught up (lag 0, every event stored) after the load stops (median) | ${lag} s (worst ${lag_max} s) | <= 5 s: $(verdict_of "$lag_max" 5) |
| events in the trail / outbox rows, trail verified | ${records} / ${events}, ok | all, once |
| delivery failures | ${delivery_failures} | 0 |
EOF
