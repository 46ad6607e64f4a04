#!/usr/bin/env bash
# PostgreSQL benchmark: a transaction-per-request design (pgbench's built-in TPC-B-like bank
# transfer) against cofre-core's batching committer (POST /v1/transfers through wrk), on ONE
# throwaway cluster, in one run, with synchronous_commit=on and fsync=on.
#
#   scripts/bench/pg.sh BIN_DIR
#
# Prints a markdown section (also written to $BENCH_MD when set): pgbench tps with 16 clients,
# cofre transfers/s with 16 connections, their ratio (goal >= 3), and the p99 latency of
# transfers at about half of cofre's maximum rate (goal <= 5 ms).
# The machine is shared and noisy, so pgbench and cofre run alternately BENCH_ROUNDS times
# and the medians are compared.
# Knobs: BENCH_KEEP (keep the work dir), BENCH_SECONDS (10), BENCH_ROUNDS (3), PGBENCH_SCALE
# (50), COFRE_COMMITTERS (2), BENCH_ACCOUNTS (2000).
set -euo pipefail

bin_dir=$(realpath "${1:?usage: pg.sh BIN_DIR}")
here=$(cd "$(dirname "$0")" && pwd)
seconds=${BENCH_SECONDS:-10}
rounds=${BENCH_ROUNDS:-3}
scale=${PGBENCH_SCALE:-50}
committers=${COFRE_COMMITTERS:-2}
naccounts=${BENCH_ACCOUNTS:-2000}
pgbin=/usr/lib/postgresql/15/bin
clients=16

for tool in wrk "$pgbin/pgbench" "$pgbin/initdb" /usr/bin/python3; do
    command -v "$tool" >/dev/null || { echo "pg.sh: $tool is missing (make deps-bench)" >&2; exit 1; }
done

work=$(mktemp -d /tmp/cofre-pgbench-XXXXXX)
as_pg=()
if [[ $(id -u) -eq 0 ]]; then
    chown postgres: "$work"
    as_pg=(runuser -u postgres --)
fi
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
http_port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
core_pid=""

cleanup() {
    [[ -n "$core_pid" ]] && kill "$core_pid" 2>/dev/null && wait "$core_pid" 2>/dev/null
    "${as_pg[@]}" "$pgbin/pg_ctl" -D "$work/data" -m immediate stop >/dev/null 2>&1 || true
    if [[ -n "${BENCH_KEEP:-}" ]]; then echo "pg.sh: kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

echo "pg.sh: cluster in $work on port $port" >&2
"${as_pg[@]}" "$pgbin/initdb" -D "$work/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 \
    --no-sync >/dev/null
cat >>"$work/data/postgresql.auto.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$work'
max_connections = 100
shared_buffers = 2GB
fsync = on
synchronous_commit = on
full_page_writes = on
max_wal_size = 2GB
EOF
"${as_pg[@]}" "$pgbin/pg_ctl" -D "$work/data" -l "$work/server.log" -w start >/dev/null
export PGHOST=127.0.0.1 PGPORT=$port PGUSER=postgres
psql_() { "$pgbin/psql" -qAtX -v ON_ERROR_STOP=1 "$@"; }

# ---- pgbench: one transaction per transfer ---------------------------------------------------
psql_ -c "CREATE DATABASE pgbench" postgres
"$pgbin/pgbench" -i -q -s "$scale" pgbench >/dev/null 2>&1

run_pgbench() { # prints tps
    "$pgbin/pgbench" -c "$clients" -j 2 -M prepared -T "$seconds" pgbench >"$work/pgbench.out" 2>&1
    awk '/^tps = / {printf "%.0f\n", $3}' "$work/pgbench.out"
}

# ---- cofre-core: the batching committer ------------------------------------------------------
psql_ -c "CREATE ROLE cofre_owner LOGIN" -c "CREATE ROLE cofre_core_service NOLOGIN" \
    -c "CREATE ROLE cofre_app LOGIN IN ROLE cofre_core_service" \
    -c "CREATE DATABASE cofre OWNER cofre_owner" postgres
COFRE_DB="postgresql://cofre_owner@127.0.0.1:$port/cofre" COFRE_LOG_LEVEL=warn \
    "$bin_dir/cofre-core" migrate
COFRE_DB="postgresql://cofre_app@127.0.0.1:$port/cofre" COFRE_LISTEN="127.0.0.1:$http_port" \
    COFRE_COMMITTERS="$committers" COFRE_LOG_LEVEL=warn COFRE_DRAIN_S=0 COFRE_AUTH=off \
    "$bin_dir/cofre-core" >"$work/core.log" 2>&1 &
core_pid=$!
base="http://127.0.0.1:$http_port"
for _ in $(seq 100); do
    curl -fs "$base/readyz" >/dev/null 2>&1 && break
    sleep 0.1
done
curl -fs "$base/readyz" >/dev/null
/usr/bin/python3 "$here/setup_accounts.py" "$base" "$naccounts" "$work/accounts.txt"

posted() {
    psql_ -c "SELECT count(*) FROM transfers" cofre
}

run_cofre() { # prints transfers/s stored, and keeps wrk's output in wrk-max.out
    local before after
    before=$(posted)
    ACCOUNTS_FILE="$work/accounts.txt" wrk -t 2 -c "$clients" -d "${seconds}s" --latency \
        -s "$here/transfers.lua" "$base" >"$work/wrk-max.out"
    after=$(posted)
    awk -v a="$after" -v b="$before" -v s="$seconds" 'BEGIN {printf "%.0f\n", (a - b) / s}'
}

median() { sort -n | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }

# Warm up (connections, caches), then alternate the two, round after round.
ACCOUNTS_FILE="$work/accounts.txt" wrk -t 2 -c "$clients" -d 3s -s "$here/transfers.lua" \
    "$base" >/dev/null
pg_all=() cofre_all=() p99_all=()
# Each measured run starts from a checkpoint (neither inherits the other's dirty buffers), and
# the order alternates (neither always runs second on a warmer or busier machine).
for round in $(seq "$rounds"); do
    if ((round % 2)); then
        psql_ -c CHECKPOINT postgres
        pg_all+=("$(run_pgbench)")
        psql_ -c CHECKPOINT postgres
        cofre_all+=("$(run_cofre)")
    else
        psql_ -c CHECKPOINT postgres
        cofre_all+=("$(run_cofre)")
        psql_ -c CHECKPOINT postgres
        pg_all+=("$(run_pgbench)")
    fi
    p99_all+=("$(awk '$1 == "99%" {print $2}' "$work/wrk-max.out")")
    echo "pg.sh: round $round: pgbench ${pg_all[-1]} tps, cofre ${cofre_all[-1]} transfers/s" >&2
done
pg_tps=$(printf '%s\n' "${pg_all[@]}" | median)
posted_ps=$(printf '%s\n' "${cofre_all[@]}" | median)
p99_max=${p99_all[-1]}

# About half the maximum rate: paced connections (each waits pace_ms after every answer). A
# short probe measures the rate the first guess gives, and the connections are scaled to it.
pace_ms=10
half=$(awk -v r="$posted_ps" 'BEGIN {printf "%.0f", r / 2}')
run_paced() { # connections seconds out -> prints transfers/s stored
    local before after
    before=$(posted)
    BENCH_DIR="$here" PACE_MS=$pace_ms ACCOUNTS_FILE="$work/accounts.txt" wrk -t 2 -c "$1" \
        -d "${2}s" --latency -s "$here/transfers_paced.lua" "$base" >"$3"
    after=$(posted)
    awk -v a="$after" -v b="$before" -v s="$2" 'BEGIN {printf "%.0f\n", (a - b) / s}'
}
conns=$(awk -v r="$half" -v p="$pace_ms" 'BEGIN {c = int(r * (p + 2) / 1000 + 0.5); print c < 2 ? 2 : c}')
psql_ -c CHECKPOINT postgres # as the rounds: no flush of pgbench's dirty pages in this run
probe=$(run_paced "$conns" 3 "$work/wrk-probe.out")
conns=$(awk -v c="$conns" -v h="$half" -v g="$probe" \
    'BEGIN {n = g > 0 ? int(c * h / g + 0.5) : c; print n < 2 ? 2 : n}')
half_ps=$(run_paced "$conns" "$seconds" "$work/wrk-half.out")
p99_half=$(awk '$1 == "99%" {print $2}' "$work/wrk-half.out")
p50_half=$(awk '$1 == "50%" {print $2}' "$work/wrk-half.out")
echo "pg.sh: cofre at ~half: posted/s=$half_ps p50=$p50_half p99=$p99_half ($conns connections)" >&2

ratio=$(awk -v c="$posted_ps" -v p="$pg_tps" 'BEGIN {printf "%.2f", c / p}')
ratios=$(for i in "${!pg_all[@]}"; do
    awk -v c="${cofre_all[$i]}" -v p="${pg_all[$i]}" 'BEGIN {printf "%.2f ", c / p}'
done)
batch=$(curl -fs "$base/metrics" | awk '
    /^cofre_committer_batch_size_sum/ {s = $2} /^cofre_committer_batch_size_count/ {n = $2}
    END {if (n > 0) printf "%.1f", s / n; else print "?"}')

section=$(cat <<EOF
## PostgreSQL: batching committer vs transaction per request

One throwaway PostgreSQL 15 cluster on this machine (fsync=on, synchronous_commit=on,
shared_buffers=2GB: both working sets fit), TCP on loopback for both; measured $(date -u +%Y-%m-%dT%H:%MZ) on $(nproc) cores
shared by the database, the load generator and the service.

| measure | value | goal |
| --- | --- | --- |
| pgbench tpcb-like, $clients clients, -M prepared, scale $scale (median of $rounds) | $pg_tps tps (rounds: ${pg_all[*]}) | |
| cofre-core POST /v1/transfers, $clients connections (wrk), $committers committers (median of $rounds) | $posted_ps transfers/s (rounds: ${cofre_all[*]}; p99 $p99_max) | |
| ratio cofre / pgbench (medians) | **${ratio}x** (per round: ${ratios% }) | >= 3x |
| cofre at about half its maximum ($half_ps transfers/s, $conns paced connections) | p50 $p50_half, **p99 $p99_half** | p99 <= 5 ms |
| mean commands per committed transaction at full speed | $batch | |

Transfers/s count the rows stored in \`transfers\`, not HTTP answers. Each round runs
pgbench and cofre for $seconds s each, each after a CHECKPOINT, in alternating order; the paced run uses transfers_paced.lua (each
connection waits $pace_ms ms after every answer). Command: \`make bench-postgres\` (that is
\`scripts/bench/pg.sh build/bin\`; knobs BENCH_SECONDS=$seconds, BENCH_ROUNDS=$rounds,
PGBENCH_SCALE=$scale, COFRE_COMMITTERS=$committers, BENCH_ACCOUNTS=$naccounts).
EOF
)
echo "$section"
if [[ -n "${BENCH_MD:-}" ]]; then
    echo "$section" >"$BENCH_MD"
fi
