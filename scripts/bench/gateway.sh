#!/usr/bin/env bash
# What the gateway costs: durable POST /v1/transfers (scripts/bench/transfers.lua, a new
# Idempotency-Key per request) with wrk, straight to cofre-core and through NGINX rendered from
# deploy/gateway (HTTP, rate limits raised out of the way), same load, same run, alternating
# direct / gateway for BENCH_ROUNDS rounds. Prints a markdown section (medians, ratio, p99) on
# stdout for scripts/bench.sh; progress goes to stderr. The goal: the gateway costs <= 15% of
# the throughput.
#
#   scripts/bench/gateway.sh [BIN_DIR]       (default build/bin)
#
# Environment: BENCH_DURATION_S (5), BENCH_ROUNDS (3), BENCH_CONNECTIONS (32),
# BENCH_THREADS (2), BENCH_ACCOUNTS (1000), BENCH_TLS=1 to add a round pair over HTTPS.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
bin_dir=$(cd "${1:-$repo/build/bin}" && pwd)
duration_s=${BENCH_DURATION_S:-5}
rounds=${BENCH_ROUNDS:-3}
connections=${BENCH_CONNECTIONS:-32}
threads=${BENCH_THREADS:-2}
accounts=${BENCH_ACCOUNTS:-1000}
tls=${BENCH_TLS:-0}

die() {
    echo "gateway.sh: $*" >&2
    exit 1
}
for tool in wrk nginx curl /usr/bin/python3; do
    command -v "$tool" >/dev/null || die "$tool is missing (scripts/deps.sh bench installs it)"
done
[[ -x "$bin_dir/cofre-core" ]] || die "$bin_dir/cofre-core is not built"

work=$(mktemp -d -t cofre-bench-gw.XXXXXX)
chmod 0755 "$work"
pids=()
cleanup() {
    local pid
    for pid in "${pids[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT

# free_port: a loopback port the kernel just handed out.
free_port() {
    /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_http() {
    local url=$1 pid=$2 deadline=$((SECONDS + 30))
    while ((SECONDS < deadline)); do
        kill -0 "$pid" 2>/dev/null || die "the process for $url exited; see $work"
        curl -fsk -m 2 -o /dev/null "$url" && return 0
        sleep 0.05
    done
    die "$url not ready within 30s"
}

core_port=$(free_port)
gw_port=$(free_port)
gw_tls_port=$(free_port)
gw_status_port=$(free_port)
core=http://127.0.0.1:$core_port

env COFRE_LISTEN="127.0.0.1:$core_port" COFRE_DB="sqlite:$work/core.db" COFRE_AUTH=off \
    COFRE_LOG_LEVEL=warn COFRE_DRAIN_S=0 "$bin_dir/cofre-core" >"$work/core.log" 2>&1 &
pids+=("$!")
wait_http "$core/readyz" "${pids[-1]}"

mkdir -p "$work/gateway/tmp"
chmod 0755 "$work/gateway"
"$repo/deploy/gateway/dev-cert.sh" "$work/gateway/tls"
COFRE_GW_HTTP_LISTEN="127.0.0.1:$gw_port" COFRE_GW_HTTPS_LISTEN="127.0.0.1:$gw_tls_port" \
    COFRE_GW_STATUS_LISTEN="127.0.0.1:$gw_status_port" \
    COFRE_GW_CORE_UPSTREAMS="127.0.0.1:$core_port" COFRE_GW_API_RATE=1000000r/s \
    COFRE_GW_API_BURST=1000000 COFRE_GW_CONN_MAX=60000 \
    COFRE_GW_ACCESS_LOG="$work/gateway/access.log" \
    "$repo/deploy/gateway/render.sh" -o "$work/gateway/nginx.conf"
TZ=UTC nginx -e stderr -p "$work/gateway/" -c "$work/gateway/nginx.conf" -g 'daemon off;' \
    >"$work/nginx.log" 2>&1 &
pids+=("$!")
wait_http "http://127.0.0.1:$gw_status_port/healthz" "${pids[-1]}"

echo "gateway.sh: $accounts funded accounts" >&2
/usr/bin/python3 "$repo/scripts/bench/setup_accounts.py" "$core" "$accounts" "$work/accounts"

# cpu_ticks PID...: user + system CPU time of the processes, in clock ticks.
cpu_ticks() {
    local p t=0
    for p in "$@"; do
        t=$((t + $(awk '{ print $14 + $15 }' "/proc/$p/stat" 2>/dev/null || echo 0)))
    done
    echo "$t"
}
core_pid=${pids[0]}
mapfile -t nginx_pids < <(pgrep -P "${pids[1]}")
nginx_pids+=("${pids[1]}")
tick_us=$((1000000 / $(getconf CLK_TCK)))

# bench URL: one wrk run; prints "requests_per_s p99_ms non_2xx core_us nginx_us", the last two
# the CPU time cofre-core and NGINX spent per request.
bench() {
    local out rps p99 non2xx n c0 n0 c1 n1
    c0=$(cpu_ticks "$core_pid")
    n0=$(cpu_ticks "${nginx_pids[@]}")
    out=$(ACCOUNTS_FILE="$work/accounts" wrk -t "$threads" -c "$connections" \
        -d "${duration_s}s" --latency -s "$repo/scripts/bench/transfers.lua" "$1")
    c1=$(cpu_ticks "$core_pid")
    n1=$(cpu_ticks "${nginx_pids[@]}")
    n=$(awk '/ requests in / { print $1 }' <<<"$out")
    rps=$(awk '/^Requests\/sec:/ { print $2 }' <<<"$out")
    p99=$(awk '$1 == "99%" { v = $2; if (v ~ /us$/) { sub(/us$/, "", v); v /= 1000 }
                             else if (v ~ /ms$/) { sub(/ms$/, "", v) }
                             else if (v ~ /s$/) { sub(/s$/, "", v); v *= 1000 }
                             printf "%.2f", v }' <<<"$out")
    non2xx=$(awk '/Non-2xx or 3xx responses:/ { print $NF }' <<<"$out")
    echo "$rps $p99 ${non2xx:-0} $(((c1 - c0) * tick_us / n)) $(((n1 - n0) * tick_us / n))"
}

median() {
    sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2];
                                        else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# A short run each way first, not counted: caches, the database file and NGINX's upstream
# connections warm up.
saved=$duration_s
duration_s=2
bench "$core" >/dev/null
bench "http://127.0.0.1:$gw_port" >/dev/null
duration_s=$saved

declare -a d_rps=() d_p99=() g_rps=() g_p99=() ratios=() d_core=() g_core=() g_nginx=()
errors=0
for ((r = 1; r <= rounds; r++)); do
    read -r rps p99 bad core_us nginx_us < <(bench "$core")
    echo "gateway.sh: round $r direct:  $rps req/s, p99 $p99 ms, non-2xx $bad," \
        "CPU/request: core $core_us us" >&2
    d_rps+=("$rps") d_p99+=("$p99") d_core+=("$core_us")
    errors=$((errors + bad))
    read -r rps p99 bad core_us nginx_us < <(bench "http://127.0.0.1:$gw_port")
    echo "gateway.sh: round $r gateway: $rps req/s, p99 $p99 ms, non-2xx $bad," \
        "CPU/request: core $core_us us, nginx $nginx_us us" >&2
    g_rps+=("$rps") g_p99+=("$p99") g_core+=("$core_us") g_nginx+=("$nginx_us")
    errors=$((errors + bad))
    ratios+=("$(awk -v g="$rps" -v d="${d_rps[-1]}" 'BEGIN { printf "%.3f", g / d }')")
done
if [[ "$tls" == 1 ]]; then
    read -r t_rps t_p99 bad t_core t_nginx < <(bench "https://127.0.0.1:$gw_tls_port")
    errors=$((errors + bad))
fi

dm=$(printf '%s\n' "${d_rps[@]}" | median)
gm=$(printf '%s\n' "${g_rps[@]}" | median)
dp=$(printf '%s\n' "${d_p99[@]}" | median)
gp=$(printf '%s\n' "${g_p99[@]}" | median)
# The paired ratio (each round's gateway run over the direct run just before it) is the
# figure: the machine's load drifts between rounds more than within one.
ratio=$(printf '%s\n' "${ratios[@]}" | median)
verdict=$(awk -v r="$ratio" 'BEGIN { print (r >= 0.85 ? "met" : "NOT met") }')

cat <<EOF
## Gateway overhead (NGINX in front of cofre-core)

Durable \`POST /v1/transfers\` on SQLite between $accounts random accounts, a new
Idempotency-Key per request (\`scripts/bench/transfers.lua\`), wrk -t$threads -c$connections,
${duration_s} s per run after a 2 s warm-up each way, $rounds rounds each of a direct run then a
run through the gateway (HTTP; the template of \`deploy/gateway\`, rate limits raised),
medians. One machine: wrk, NGINX and cofre-core share its $(nproc) cores.

| path | transfers/s (median) | p99 (median) | CPU per transfer: core, NGINX (median) | runs (transfers/s) |
| --- | ---: | ---: | ---: | --- |
| direct to cofre-core | $dm | $dp ms | $(printf '%s\n' "${d_core[@]}" | median) us, - | ${d_rps[*]} |
| through the gateway | $gm | $gp ms | $(printf '%s\n' "${g_core[@]}" | median) us, $(printf '%s\n' "${g_nginx[@]}" | median) us | ${g_rps[*]} |
EOF
if [[ "$tls" == 1 ]]; then
    echo "| through the gateway, HTTPS (one run) | $t_rps | $t_p99 ms | $t_core us, $t_nginx us | $t_rps |"
fi
cat <<EOF

Gateway / direct, the median of the rounds' ratios (${ratios[*]}): **$ratio** (goal: the
gateway costs at most 15% of the throughput, a ratio >= 0.85: $verdict).
Answers other than 2xx: $errors.
Command: \`scripts/bench/gateway.sh\` (BENCH_DURATION_S=$duration_s BENCH_ROUNDS=$rounds
BENCH_CONNECTIONS=$connections BENCH_THREADS=$threads).
EOF
