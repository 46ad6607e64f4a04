#!/usr/bin/env bash
# The legacy link's benchmark (issue 7), on loopback, in one run:
#   1. round trips per second to cofre-legacy-sim over one connection (its bench client: one
#      request in flight, then 32 pipelined), with p50 and p99;
#   2. cofre-legacy's delivery rate from a topic filled beforehand, store-and-forward included
#      (the consumer's transaction, the "sent" mark and the outcome, each durable), over one
#      connection and over a pool of 4, with the p99 of its 0200 round trips (its histogram);
#   3. whether the adapter keeps up with the core: wrk drives cofre-core (relay on, to
#      cofre-kafka-dev) at its maximum transfer rate for BENCH_SECONDS while cofre-legacy
#      delivers; once the load stops, the seconds until every posted transfer is applied at the
#      host (consumer lag, backlog and outbox all 0). It keeps up when that is at most 5 s.
# Prints a markdown section on stdout. Usage: scripts/bench/legacy.sh BIN_DIR
# Environment: BENCH_SECONDS (10), BENCH_LEGACY_COUNT (5000 round trips in 1),
# BENCH_LEGACY_EVENTS (20000 events in 2), BENCH_TRANSFER_CONNECTIONS (128), and the
# adapter's BENCH_LEGACY_WINDOW (32, requests in flight per connection) and BENCH_LEGACY_POOL
# (1, connections in 3); BENCH_KEEP keeps the work directory (databases, logs).
set -euo pipefail

bin_dir=$(cd "$1" && pwd)
here=$(cd "$(dirname "$0")" && pwd)
seconds=${BENCH_SECONDS:-10}
count=${BENCH_LEGACY_COUNT:-5000}
events=${BENCH_LEGACY_EVENTS:-20000}
conns=${BENCH_TRANSFER_CONNECTIONS:-128}
keep_pool=${BENCH_LEGACY_POOL:-1}
window=${BENCH_LEGACY_WINDOW:-32}
py=/usr/bin/python3
work=$(mktemp -d)
pids=()

cleanup() {
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    if [[ -n "${BENCH_KEEP:-}" ]]; then echo "legacy.sh: kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

die() {
    echo "legacy.sh: $*" >&2
    exit 1
}

free_port() {
    $py -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_log FILE SED_EXPR: the first match of SED_EXPR (a sed -n substitution) in FILE.
wait_log() {
    local v=""
    for _ in $(seq 1 200); do
        v=$(sed -nE "$2" "$1" | head -n1)
        [[ -n "$v" ]] && { echo "$v"; return 0; }
        sleep 0.05
    done
    die "no match for $2 in $1: $(tail -n 5 "$1")"
}

wait_ready() {
    for _ in $(seq 1 300); do
        curl -sf "http://127.0.0.1:$1/readyz" >/dev/null 2>&1 && return 0
        sleep 0.05
    done
    die "the service on port $1 did not become ready"
}

# metric PORT NAME: the sum of every sample of NAME (any labels) on the service's /metrics.
metric() {
    curl -s "http://127.0.0.1:$1/metrics" |
        awk -v n="$2" '{split($1, a, "{")} a[1] == n {s += $2} END {printf "%.0f\n", s}'
}

# finals PORT: the adapter's deliveries that reached a final outcome.
finals() {
    curl -s "http://127.0.0.1:$1/metrics" | awk '/^cofre_legacy_deliveries_total\{outcome="(approved|declined|failed)"\}/ {s += $2}
        END {printf "%.0f\n", s}'
}

# p99_0200 PORT: the upper bound in ms of the histogram bucket holding the 99th percentile.
p99_0200() {
    curl -s "http://127.0.0.1:$1/metrics" | awk '
        /^cofre_legacy_request_duration_seconds_bucket\{.*mti="0200"/ {
            match($0, /le="[^"]+"/); le = substr($0, RSTART + 4, RLENGTH - 5)
            les[++n] = le; cum[n] = $2 }
        END { total = cum[n]; for (i = 1; i <= n; i++) if (cum[i] >= 0.99 * total) {
            if (les[i] == "+Inf") print "> 10000"; else printf "%g\n", les[i] * 1000; exit } }'
}

start_sim() { # start_sim NAME: a simulator on a fresh ledger; sets sim_port
    COFRE_LISTEN=127.0.0.1:0 COFRE_SIM_CONTROL=127.0.0.1:0 COFRE_LOG_LEVEL=info \
        COFRE_DB="sqlite:$work/$1.db" COFRE_SIM_AMOUNT_MAX=999999999999 \
        "$bin_dir/cofre-legacy-sim" >"$work/$1.log" 2>&1 &
    sim_pid=$!
    pids+=("$sim_pid")
    sim_port=$(wait_log "$work/$1.log" 's/.*"msg":"listening","iso_port":([0-9]+).*/\1/p')
}

since() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.1f", b - a}'; }

stop_pid() {
    kill "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

start_kafka() { # a fresh cluster; sets kafka_pid and brokers
    rm -f "$work/kafka.bootstrap"
    COFRE_LISTEN=127.0.0.1:0 COFRE_LOG_LEVEL=warn COFRE_KAFKA_DEV_BOOTSTRAP_FILE="$work/kafka.bootstrap" \
        "$bin_dir/cofre-kafka-dev" >"$work/kafka.log" 2>&1 &
    kafka_pid=$!
    pids+=("$kafka_pid")
    for _ in $(seq 1 200); do
        [[ -s "$work/kafka.bootstrap" ]] && break
        sleep 0.05
    done
    brokers=$(cat "$work/kafka.bootstrap")
}

start_adapter() { # start_adapter NAME POOL: sets adapter_port and adapter_pid
    adapter_port=$(free_port)
    COFRE_LISTEN="127.0.0.1:$adapter_port" COFRE_DB="sqlite:$work/$1.db" COFRE_LOG_LEVEL=warn \
        COFRE_DRAIN_S=0 COFRE_THREADS=1 COFRE_KAFKA_BROKERS="$brokers" COFRE_LEGACY_GROUP="$1" \
        COFRE_LEGACY_HOST="127.0.0.1:$sim_port" COFRE_LEGACY_POOL="$2" COFRE_LEGACY_WINDOW="$window" \
        "$bin_dir/cofre-legacy" >"$work/$1.log" 2>&1 &
    adapter_pid=$!
    pids+=("$adapter_pid")
    wait_ready "$adapter_port"
}

# -- 1. the link alone --------------------------------------------------------------------------

bench_link() {
    start_sim link
    local w
    for w in 1 32; do
        "$bin_dir/cofre-legacy-sim" bench --connect "127.0.0.1:$sim_port" --count "$count" \
            --window "$w" >"$work/link$w.json"
    done
    stop_pid "$sim_pid"
}

link_field() { # link_field WINDOW KEY
    $py -c 'import json,sys; print(round(json.load(open(sys.argv[1]))[sys.argv[2]]))' \
        "$work/link$1.json" "$2"
}

# -- 2. the adapter from a filled topic ----------------------------------------------------------

produce_events() {
    $py - "$brokers" "$events" <<'PY'
import json, sys, uuid
from confluent_kafka import Producer
p = Producer({"bootstrap.servers": sys.argv[1], "linger.ms": 20})
accounts = [str(uuid.uuid4()) for _ in range(100)]
for i in range(int(sys.argv[2])):
    tid, d, c = str(uuid.uuid4()), accounts[i % 100], accounts[(i * 7 + 1) % 100]
    ev = {"specversion": "1.0", "id": str(uuid.uuid4()), "source": "/cofre/core",
          "type": "cofre.transfer.posted", "subject": tid, "datacontenttype": "application/json",
          "data": {"transfer": {"id": tid, "debit_account_id": d, "credit_account_id": c,
                                "amount": 1 + i % 50000, "currency": "EUR", "reference": None,
                                "created_at": "2026-11-29T19:43:51.000000Z"}}}
    while True:
        try:
            p.produce("cofre.ledger.events", key=d, value=json.dumps(ev))
            break
        except BufferError:
            p.poll(0.05)
    p.poll(0)
if p.flush(60) != 0:
    sys.exit("events not acknowledged")
PY
}

# drain_rate NAME POOL: deliveries per second from the first to the last of $events.
drain_rate() {
    start_sim "sim-$1"
    start_adapter "$1" "$2"
    local t0="" t1 n=0
    for _ in $(seq 1 1200); do
        n=$(finals "$adapter_port")
        if [[ -z "$t0" && "$n" -gt 0 ]]; then
            t0=$(date +%s.%N)
            n0=$n
        fi
        [[ "$n" -ge "$events" ]] && break
        sleep 0.05
    done
    t1=$(date +%s.%N)
    [[ "$n" -ge "$events" ]] || die "$1 delivered $n of $events"
    awk -v n="$n" -v n0="$n0" -v a="$t0" -v b="$t1" 'BEGIN {printf "%d\n", (n - n0) / (b - a)}' \
        >"$work/$1.rate"
    p99_0200 "$adapter_port" >"$work/$1.p99"
    stop_pid "$adapter_pid"
    stop_pid "$sim_pid"
}

# -- 3. keeping up with the core -----------------------------------------------------------------

# setup_accounts URL N FILE: N funded EUR accounts, their ids in FILE. As setup_accounts.py,
# but each funded with 10^11 minor units: 10^12 does not fit ISO 8583 field 4 (n 12), so the
# adapter would dead-letter the funding transfers instead of delivering them.
setup_accounts() {
    $py - "$@" <<'PY'
import json, sys, urllib.request, uuid
base, n, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
def post(path, body):
    req = urllib.request.Request(base + path, data=json.dumps(body).encode(), method="POST",
        headers={"Content-Type": "application/json", "Idempotency-Key": str(uuid.uuid4())})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.load(r)
bank = post("/v1/accounts", {"owner": "bench", "currency": "EUR",
                             "flags": {"no_overdraft": False}})["id"]
ids = [post("/v1/accounts", {"owner": "bench", "currency": "EUR"})["id"] for _ in range(n)]
for i in range(0, n, 500):
    post("/v1/transfers/batch", {"atomic": True, "transfers": [
        {"debit_account_id": bank, "credit_account_id": a, "amount": 10**11, "currency": "EUR"}
        for a in ids[i:i + 500]]})
open(out, "w").write("\n".join(ids) + "\n")
PY
}

bench_keep_up() {
    start_sim sim-keep
    local core_port
    core_port=$(free_port)
    COFRE_LISTEN="127.0.0.1:$core_port" COFRE_DB="sqlite:$work/core.db" COFRE_LOG_LEVEL=warn \
        COFRE_DRAIN_S=0 COFRE_AUTH=off COFRE_KAFKA_BROKERS="$brokers" \
        "$bin_dir/cofre-core" >"$work/core.log" 2>&1 &
    pids+=("$!")
    wait_ready "$core_port"
    start_adapter keep "$keep_pool"
    setup_accounts "http://127.0.0.1:$core_port" 1000 "$work/ids.txt"
    export ACCOUNTS_FILE="$work/ids.txt"
    local peak=0 lag backlog_peak=0 b
    wrk -t2 -c"$conns" -d"$seconds" -s "$here/transfers.lua" "http://127.0.0.1:$core_port" \
        >"$work/wrk.txt" &
    local load=$!
    while kill -0 "$load" 2>/dev/null; do
        lag=$(metric "$adapter_port" cofre_legacy_consumer_lag)
        ((lag > peak)) && peak=$lag
        b=$(metric "$adapter_port" cofre_legacy_backlog)
        ((b > backlog_peak)) && backlog_peak=$b
        sleep 0.25
    done
    wait "$load"
    local stop_at posted delivered backlog outbox lag now
    stop_at=$(date +%s.%N)
    keep_outbox_s="" keep_lag_s=""
    local give_up=$((SECONDS + 120))
    while ((SECONDS < give_up)); do
        posted=$(curl -s "http://127.0.0.1:$core_port/metrics" |
            awk '/^cofre_ledger_transfers_total\{outcome="posted"\}/ {print $2}')
        delivered=$(finals "$adapter_port")
        backlog=$(metric "$adapter_port" cofre_legacy_backlog)
        lag=$(metric "$adapter_port" cofre_legacy_consumer_lag)
        outbox=$(metric "$core_port" cofre_outbox_pending)
        now=$(date +%s.%N)
        [[ -z "$keep_outbox_s" && "$outbox" -eq 0 ]] && keep_outbox_s=$(since "$stop_at" "$now")
        [[ -z "$keep_lag_s" && "$outbox" -eq 0 && "$lag" -eq 0 ]] && keep_lag_s=$(since "$stop_at" "$now")
        [[ "$delivered" -ge "${posted%.*}" && "$backlog" -eq 0 && "$outbox" -eq 0 ]] && break
        sleep 0.05
    done
    keep_seconds=$(since "$stop_at" "$(date +%s.%N)")
    keep_posted=${posted%.*}
    keep_delivered=$delivered
    keep_rate=$(awk '/^Requests\/sec:/ {printf "%d", $2}' "$work/wrk.txt")
    keep_peak_lag=$peak
    keep_peak_backlog=$backlog_peak
    keep_p99=$(p99_0200 "$adapter_port")
}

start_kafka
bench_link
produce_events
drain_rate pool1 1
# The same events again, read by a second group into a fresh store and a fresh host.
drain_rate pool4 4
# A fresh cluster: the core's events only.
stop_pid "$kafka_pid"
start_kafka
bench_keep_up

verdict="keeps up"
awk -v s="$keep_seconds" 'BEGIN {exit !(s > 5)}' && verdict="does NOT keep up"
[[ "$keep_delivered" -ge "$keep_posted" ]] || verdict="did not deliver everything"

cat <<MD
## Legacy link (cofre-legacy, cofre-legacy-sim)

Command: \`scripts/bench/legacy.sh\` (BENCH_SECONDS=$seconds BENCH_LEGACY_COUNT=$count
BENCH_LEGACY_EVENTS=$events BENCH_TRANSFER_CONNECTIONS=$conns). Every part on loopback on this
machine; the simulator commits every answer (synchronous=FULL) before sending it.

| measure | round trips/s | p50 | p99 |
| --- | --- | --- | --- |
| simulator, one connection, 1 in flight | $(link_field 1 round_trips_per_second) | $(link_field 1 p50_us) us | $(link_field 1 p99_us) us |
| simulator, one connection, 32 in flight | $(link_field 32 round_trips_per_second) | $(link_field 32 p50_us) us | $(link_field 32 p99_us) us |

| cofre-legacy delivering $events stored events | deliveries/s | p99 of the 0200 round trip |
| --- | --- | --- |
| one connection (window $window) | $(cat "$work/pool1.rate") | <= $(cat "$work/pool1.p99") ms |
| pool of 4 connections (window $window each) | $(cat "$work/pool4.rate") | <= $(cat "$work/pool4.p99") ms |

Each delivery is durable three times on the adapter's side (stored by the consumer before the
offset commit, marked sent before the 0200 leaves, its outcome), in batches.

Keeping up with the core: wrk at the core's maximum ($conns connections, $seconds s, relay to
cofre-kafka-dev on, everything on the same cores; cofre-legacy with a pool of $keep_pool, window $window) posted $keep_rate transfers/s; the adapter's
consumer lag peaked at $keep_peak_lag messages and its backlog (stored, not yet delivered) at
$keep_peak_backlog. After the load stopped, the core's outbox was
empty after $keep_outbox_s s, the adapter's consumer lag was 0 after $keep_lag_s s, and all
$keep_posted posted transfers were applied at the host after **$keep_seconds s** ($keep_delivered
delivered, p99 of the 0200 round trip <= $keep_p99 ms): it **$verdict** (the bar: everything
delivered within 5 s).
MD
