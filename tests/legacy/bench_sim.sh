#!/usr/bin/env bash
# Round trips per second to cofre-legacy-sim over one connection: starts a simulator on a
# fresh ledger (synchronous=FULL, the default) on loopback, runs `cofre-legacy-sim bench` with
# one request in flight and then with a window of 32 (pipelined, matched by STAN), prints the
# two JSON result lines, and stops the simulator.
# Usage: tests/legacy/bench_sim.sh BIN_DIR [COUNT]
set -euo pipefail
bin=$1/cofre-legacy-sim
count=${2:-5000}
root=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$root/var"
work=$(mktemp -d "$root/var/bench-sim.XXXXXX")
pid=""
cleanup() {
    if [[ -n "$pid" ]]; then
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

COFRE_LISTEN=127.0.0.1:0 COFRE_SIM_CONTROL=127.0.0.1:0 COFRE_LOG_LEVEL=info \
    COFRE_DB="sqlite:$work/sim.db" COFRE_SIM_AMOUNT_MAX=999999999999 \
    "$bin" >"$work/sim.log" 2>&1 &
pid=$!
port=""
for _ in $(seq 100); do
    port=$(sed -nE 's/.*"msg":"listening","iso_port":([0-9]+).*/\1/p' "$work/sim.log")
    [[ -n "$port" ]] && break
    sleep 0.05
done
if [[ -z "$port" ]]; then
    echo "bench_sim.sh: the simulator did not start" >&2
    cat "$work/sim.log" >&2
    exit 1
fi
for window in 1 32; do
    "$bin" bench --connect "127.0.0.1:$port" --count "$count" --window "$window"
done
