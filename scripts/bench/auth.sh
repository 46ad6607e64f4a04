#!/usr/bin/env bash
# What token checks cost: GET /v1/accounts/{id} with a valid bearer token against cofre-core
# with checks on (the verified-token cache at work), the same against a cofre-core with
# COFRE_AUTH=off, and (for scale) with checks on but no cache; same database, same wrk load,
# alternating in each of BENCH_ROUNDS rounds; then the issuance rate of POST /oauth/token,
# bounded by Argon2id by design. Prints a markdown section on stdout for scripts/bench.sh;
# progress goes to stderr. The goal: the check costs <= 10% of the throughput.
#
#   scripts/bench/auth.sh [BIN_DIR]       (default build/bin)
#
# Environment: BENCH_DURATION_S (5), BENCH_ROUNDS (3), BENCH_CONNECTIONS (32),
# BENCH_THREADS (2), BENCH_TOKEN_CONNECTIONS (4).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
bin_dir=$(cd "${1:-$repo/build/bin}" && pwd)
duration_s=${BENCH_DURATION_S:-5}
rounds=${BENCH_ROUNDS:-3}
connections=${BENCH_CONNECTIONS:-32}
threads=${BENCH_THREADS:-2}
token_connections=${BENCH_TOKEN_CONNECTIONS:-4}
issuer=https://cofre.bench
audience=cofre-api

die() {
    echo "auth.sh: $*" >&2
    exit 1
}
for tool in wrk curl /usr/bin/python3; do
    command -v "$tool" >/dev/null || die "$tool is missing (scripts/deps.sh bench installs it)"
done
for b in cofre-core cofre-auth; do
    [[ -x "$bin_dir/$b" ]] || die "$bin_dir/$b is not built"
done

work=$(mktemp -d -t cofre-bench-auth.XXXXXX)
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

free_port() {
    /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_http() {
    local url=$1 pid=$2 deadline=$((SECONDS + 30))
    while ((SECONDS < deadline)); do
        kill -0 "$pid" 2>/dev/null || die "the process for $url exited; see its log in $work"
        curl -fs -m 2 -o /dev/null "$url" && return 0
        sleep 0.05
    done
    die "$url not ready within 30s"
}

# start NAME PORT ENV...: runs a binary in the background with the common settings.
start() {
    local name=$1 port=$2
    shift 2
    env COFRE_LISTEN="127.0.0.1:$port" COFRE_LOG_LEVEL=warn COFRE_DRAIN_S=0 "$@" \
        >"$work/$name-$port.log" 2>&1 &
    pids+=("$!")
    wait_http "http://127.0.0.1:$port/readyz" "${pids[-1]}"
}

auth_port=$(free_port)
auth=http://127.0.0.1:$auth_port
auth_env=(COFRE_DB="sqlite:$work/auth.db" COFRE_AUTH_ISSUER="$issuer"
    COFRE_AUTH_AUDIENCE="$audience")
secret=$(env "${auth_env[@]}" "$bin_dir/cofre-auth" client add --name bench --scopes \
    "accounts:read accounts:write transfers:read transfers:write ledger:admin" 2>/dev/null |
    awk '/^client_secret:/ { print $2 }')
[[ -n "$secret" ]] || die "could not register the bench client"
start auth "$auth_port" "${auth_env[@]}" "$bin_dir/cofre-auth"

token=$(curl -fsS -u "bench:$secret" -d grant_type=client_credentials "$auth/oauth/token" |
    /usr/bin/python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])')
checks_env=(COFRE_DB="sqlite:$work/core.db" COFRE_AUTH_ISSUER="$issuer"
    COFRE_AUTH_AUDIENCE="$audience" COFRE_JWKS_URL="$auth/.well-known/jwks.json")
on_port=$(free_port)
start core-on "$on_port" "${checks_env[@]}" "$bin_dir/cofre-core"
off_port=$(free_port)
start core-off "$off_port" COFRE_DB="sqlite:$work/core.db" COFRE_AUTH=off "$bin_dir/cofre-core"
nocache_port=$(free_port)
start core-nocache "$nocache_port" "${checks_env[@]}" COFRE_AUTH_CACHE_MAX=0 "$bin_dir/cofre-core"

account=$(curl -fsS -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
    -H "Idempotency-Key: bench-$RANDOM$RANDOM" -d '{"owner":"bench","currency":"EUR"}' \
    "http://127.0.0.1:$on_port/v1/accounts" |
    /usr/bin/python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])')

# bench PORT: one wrk run of the read; prints "requests_per_s non_2xx".
bench() {
    local out rps non2xx
    out=$(wrk -t "$threads" -c "$connections" -d "${duration_s}s" \
        -H "Authorization: Bearer $token" "http://127.0.0.1:$1/v1/accounts/$account")
    rps=$(awk '/^Requests\/sec:/ { print $2 }' <<<"$out")
    non2xx=$(awk '/Non-2xx or 3xx responses:/ { print $NF }' <<<"$out")
    echo "$rps ${non2xx:-0}"
}

median() {
    sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2];
                                        else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

saved=$duration_s
duration_s=2
for port in "$on_port" "$off_port" "$nocache_port"; do
    bench "$port" >/dev/null
done
duration_s=$saved

declare -a on=() off=() nocache=() ratios=()
errors=0
for ((r = 1; r <= rounds; r++)); do
    read -r rps bad < <(bench "$off_port")
    off+=("$rps")
    errors=$((errors + bad))
    read -r rps bad < <(bench "$on_port")
    on+=("$rps")
    errors=$((errors + bad))
    read -r rps bad < <(bench "$nocache_port")
    nocache+=("$rps")
    errors=$((errors + bad))
    ratios+=("$(awk -v a="${on[-1]}" -v b="${off[-1]}" 'BEGIN { printf "%.3f", a / b }')")
    echo "auth.sh: round $r: off ${off[-1]}, on ${on[-1]}, on without cache ${nocache[-1]} req/s" >&2
done

# Issuance: every request is one Argon2id verification on a hashing worker.
cat >"$work/token.lua" <<EOF
wrk.method = "POST"
wrk.body = "grant_type=client_credentials"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "Basic $(printf 'bench:%s' "$secret" | base64 -w0)"
EOF
out=$(wrk -t 1 -c "$token_connections" -d "${duration_s}s" -s "$work/token.lua" "$auth/oauth/token")
issued_rps=$(awk '/^Requests\/sec:/ { print $2 }' <<<"$out")
bad=$(awk '/Non-2xx or 3xx responses:/ { print $NF }' <<<"$out")
errors=$((errors + ${bad:-0}))
metrics=$(curl -fsS "$auth/metrics")
hash_ms=$(awk '/^cofre_auth_hash_seconds_sum/ { s = $2 } /^cofre_auth_hash_seconds_count/ { c = $2 }
               END { if (c > 0) printf "%.1f", s / c * 1000; else print "?" }' <<<"$metrics")

om=$(printf '%s\n' "${on[@]}" | median)
fm=$(printf '%s\n' "${off[@]}" | median)
nm=$(printf '%s\n' "${nocache[@]}" | median)
ratio=$(printf '%s\n' "${ratios[@]}" | median)
verdict=$(awk -v r="$ratio" 'BEGIN { print (r >= 0.90 ? "met" : "NOT met") }')

cat <<EOF
## Token checks (cofre-core with a cofre-auth token)

\`GET /v1/accounts/{id}\` with one valid ES256 bearer token, wrk -t$threads -c$connections,
${duration_s} s per run after a 2 s warm-up each, $rounds rounds of: checks off
(\`COFRE_AUTH=off\`), checks on (verified-token cache), checks on without the cache
(\`COFRE_AUTH_CACHE_MAX=0\`, an ECDSA P-256 verification per request); medians. Three
cofre-core processes on one SQLite database; one machine: wrk and the servers share its
$(nproc) cores.

| cofre-core | reads/s (median) | runs |
| --- | ---: | --- |
| checks off | $fm | ${off[*]} |
| checks on, cached | $om | ${on[*]} |
| checks on, no cache | $nm | ${nocache[*]} |

Checks on / off, the median of the rounds' ratios (${ratios[*]}): **$ratio** (goal: the check
costs at most 10% of the throughput, a ratio >= 0.90: $verdict).

Token issuance (\`POST /oauth/token\`, client_secret_basic, wrk -t1 -c$token_connections):
**$issued_rps tokens/s**, one Argon2id verification each, $hash_ms ms on average (t=2,
m=19 MiB: OWASP's recommendation; client secrets carry 256 random bits, so the cost guards
leaked hashes, not guessing, and is kept where a client fetching a 15-minute token pays
nothing noticeable). Issuance is bounded by the hashing workers by design.
Answers other than 2xx: $errors.
Command: \`scripts/bench/auth.sh\` (BENCH_DURATION_S=$duration_s BENCH_ROUNDS=$rounds
BENCH_CONNECTIONS=$connections BENCH_THREADS=$threads).
EOF
