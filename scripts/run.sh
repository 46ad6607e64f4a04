#!/usr/bin/env bash
# The whole cofre platform on one machine, on loopback: what `make run` starts once it has
# installed what is missing and built. Starts every built service of the table below on its
# embedded defaults (SQLite files under var/, kept across runs), then the NGINX gateway in
# front of them, waits until each answers (bounded), prints the URLs and a walkthrough with curl,
# and streams every log line prefixed with its service's name. Ctrl-C (or SIGTERM) stops the
# gateway gracefully, then sends SIGINT to each service in reverse start order, waiting for each
# (bounded), and exits 0 when every one stopped cleanly.
#
#   scripts/run.sh                       start the platform (make run)
#   scripts/run.sh walkthrough URL CA [CLIENT_ID CLIENT_SECRET]
#                                        print only the walkthrough for a gateway at URL whose
#                                        certificate is the file CA (with a token of that client
#                                        when given); tests/gateway runs it
#
# Environment:
#   COFRE_BIN_DIR         the binaries (default $BUILD_DIR/bin, as make passes it; build/bin)
#   COFRE_VAR_DIR         data, logs and the gateway's files (default var/)
#   COFRE_PORT_OFFSET     added to every port (default 0), to run a second platform beside one
#   COFRE_READY_TIMEOUT_S how long each part may take to become ready (default 30)
#   COFRE_STOP_TIMEOUT_S  how long each part may take to stop before SIGKILL (default 30)
#   MONITORING=1          also Prometheus and Alertmanager (deploy/observability/run-local.sh)
#   COFRE_LOG_LEVEL and the gateway's COFRE_GW_* (deploy/gateway/render.sh --list) pass through.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# The services, in start order: one line each, so a new service is one more line. A service
# whose binary is not built is skipped (its routes on the gateway answer 502).
#   name       the prefix of its log lines (and var/log/NAME.log)
#   binary     in COFRE_BIN_DIR
#   ports      comma list; the first is COFRE_LISTEN and the readiness probe's; all are checked
#              free before anything starts ("-": none)
#   probe      http:PATH (200 means ready) or tcp (accepts connections)
#   env        KEY=VALUE words. Placeholders: {data} the data directory, {port:N} port N plus
#              the offset, {brokers} the development Kafka's bootstrap list (empty: no event
#              bus), {gateway} the gateway's HTTPS URL (the public base URL, the token issuer)
# Beside these, every service gets COFRE_LOG_LEVEL, COFRE_DRAIN_S=0, COFRE_KAFKA_BROKERS and the
# token settings (COFRE_AUTH_* and COFRE_JWKS_URL when cofre-auth is built, else COFRE_AUTH=off).
# A function prepare_NAME (dashes as underscores), when defined below, runs before NAME starts;
# setup_NAME runs once NAME is ready.
services_table='
cofre-kafka-dev   cofre-kafka-dev   8092       http:/readyz   COFRE_KAFKA_DEV_BOOTSTRAP_FILE={data}/kafka-dev.bootstrap
cofre-auth        cofre-auth        8082       http:/readyz   COFRE_DB=sqlite:{data}/auth.db COFRE_AUTH_TRUSTED_PROXIES=127.0.0.1
cofre-core-1      cofre-core        8081       http:/readyz   COFRE_DB=sqlite:{data}/core.db
cofre-core-2      cofre-core        8091       http:/readyz   COFRE_DB=sqlite:{data}/core.db
cofre-audit       cofre-audit       8083       http:/readyz   COFRE_DB=sqlite:{data}/audit.db COFRE_AUDIT_SIGNING_KEY_FILE={data}/audit-signing.key
cofre-legacy-sim  cofre-legacy-sim  8583,8585  tcp            COFRE_DB=sqlite:{data}/legacy-sim.db COFRE_SIM_CONTROL=127.0.0.1:{port:8585}
cofre-legacy      cofre-legacy      8084       http:/readyz   COFRE_DB=sqlite:{data}/legacy.db COFRE_LEGACY_HOST=127.0.0.1:{port:8583}
'
# The gateway's own ports: HTTP, HTTPS, status (liveness, never public).
gw_http_port=8080
gw_https_port=8443
gw_status_port=8089
prom_port=9090
am_port=9093
# The demo client of the walkthrough (created at first start when cofre-auth is built).
demo_client_id=demo
# It plays the bank in the walkthrough: opening the settlement account through which money
# enters the ledger needs ledger:admin.
demo_scopes="accounts:read accounts:write transfers:read transfers:write audit:read ledger:admin"

bin_dir=${COFRE_BIN_DIR:-$repo/${BUILD_DIR:-build}/bin}
var_dir=${COFRE_VAR_DIR:-$repo/var}
offset=${COFRE_PORT_OFFSET:-0}
ready_timeout_s=${COFRE_READY_TIMEOUT_S:-30}
stop_timeout_s=${COFRE_STOP_TIMEOUT_S:-30}
monitoring=${MONITORING:-0}

die() {
    echo "run.sh: $*" >&2
    exit 1
}

# -- the walkthrough ---------------------------------------------------------------------------

# walkthrough URL CA AUDIT [CLIENT_ID SECRET]: prints shell commands that use the platform
# through the gateway at URL (with a token of the demo client when one is given, and reading
# the audit trail when AUDIT is yes). Lines between the two marker comments are what
# tests/gateway runs, as printed.
walkthrough() {
    local url=$1 ca=$2 audit=$3 client=${4:-} secret=${5:-}
    cat <<EOF
# --- walkthrough (bash or zsh; paste it whole or line by line) ---
# The gateway speaks HTTPS with a development certificate made at first run: trust only that.
export GW=$url CA=$ca
EOF
    if [[ -n "$client" ]]; then
        cat <<EOF
# 1. A token for the demo client (OAuth2 client credentials), valid for a while.
export TOKEN=\$(curl -sS --cacert "\$CA" -u '$client:$secret' -d grant_type=client_credentials "\$GW/oauth/token" | jq -r .access_token)
cofre() { curl -sS -w '\n' --cacert "\$CA" -H "Authorization: Bearer \$TOKEN" -H 'Content-Type: application/json' "\$@"; }
EOF
    else
        cat <<'EOF'
# 1. (No token yet: cofre-auth is not built, so the core runs with COFRE_AUTH=off.)
cofre() { curl -sS -w '\n' --cacert "$CA" -H 'Content-Type: application/json' "$@"; }
EOF
    fi
    cat <<'EOF'
# 2. Three EUR accounts, with ids we choose: a settlement account (it may go negative: money
#    enters the ledger through it) and two customers (never below zero). Every POST carries an
#    Idempotency-Key: sending it again replays the first answer instead of acting twice.
BANK=$(cat /proc/sys/kernel/random/uuid) ALICE=$(cat /proc/sys/kernel/random/uuid) BOB=$(cat /proc/sys/kernel/random/uuid) PAY=$(cat /proc/sys/kernel/random/uuid)
cofre "$GW/v1/accounts" -H "Idempotency-Key: open-$BANK" -d '{"id":"'$BANK'","owner":"demo","currency":"EUR","flags":{"no_overdraft":false}}'
cofre "$GW/v1/accounts" -H "Idempotency-Key: open-$ALICE" -d '{"id":"'$ALICE'","owner":"demo","currency":"EUR"}'
cofre "$GW/v1/accounts" -H "Idempotency-Key: open-$BOB" -d '{"id":"'$BOB'","owner":"demo","currency":"EUR"}'
# 3. A deposit: 100.00 EUR (amounts are in cents) from the settlement account to Alice.
cofre "$GW/v1/transfers" -H "Idempotency-Key: deposit-$ALICE" -d '{"debit_account_id":"'$BANK'","credit_account_id":"'$ALICE'","amount":10000,"currency":"EUR","reference":"deposit"}'
# 4. A transfer of 25.00 EUR from Alice to Bob, then the same request again: the second answer
#    is the first one replayed (Idempotency-Replayed: true), not a second transfer.
cofre "$GW/v1/transfers" -H "Idempotency-Key: pay-$PAY" -d '{"id":"'$PAY'","debit_account_id":"'$ALICE'","credit_account_id":"'$BOB'","amount":2500,"currency":"EUR","reference":"rent"}'
cofre "$GW/v1/transfers" -H "Idempotency-Key: pay-$PAY" -d '{"id":"'$PAY'","debit_account_id":"'$ALICE'","credit_account_id":"'$BOB'","amount":2500,"currency":"EUR","reference":"rent"}' -o /dev/null -w 'status %{http_code}, replayed: %header{idempotency-replayed}\n'
# 5. The balances: settlement -10000, Alice 7500, Bob 2500. Then Alice's transfers, newest first.
for a in $BANK $ALICE $BOB; do cofre "$GW/v1/accounts/$a" | jq -c '{id, balance}'; done
cofre "$GW/v1/accounts/$ALICE/transfers" | jq -c '.data[] | {amount, debit_account_id, credit_account_id, reference}'
EOF
    if [[ "$audit" == yes ]]; then
        cat <<'EOF'
# 6. The audit trail: the events reach cofre-audit through Kafka within moments, each record
#    with the request id and trace id the gateway gave the request. Then the check of the
#    whole hash chain.
sleep 3
cofre "$GW/v1/audit/events?subject=$PAY" | jq -c '.data[] | {type, subject, request_id, trace_id}'
cofre "$GW/v1/audit/verify"
EOF
    fi
    echo "# --- end of the walkthrough ---"
}

if [[ "${1:-}" == walkthrough ]]; then
    (($# == 3 || $# == 5)) || die "usage: run.sh walkthrough URL CA [CLIENT_ID CLIENT_SECRET]"
    walkthrough "$2" "$3" no "${4:-}" "${5:-}"
    exit 0
fi
(($# == 0)) || die "unknown arguments '$*' (usage: run.sh | run.sh walkthrough URL CA [ID SECRET])"

[[ "$offset" =~ ^[0-9]{1,5}$ ]] || die "COFRE_PORT_OFFSET='$offset' is not a number"
[[ "$ready_timeout_s" =~ ^[1-9][0-9]*$ ]] || die "COFRE_READY_TIMEOUT_S='$ready_timeout_s' is not a number"
[[ "$stop_timeout_s" =~ ^[1-9][0-9]*$ ]] || die "COFRE_STOP_TIMEOUT_S='$stop_timeout_s' is not a number"
command -v nginx >/dev/null || die "nginx is not installed (scripts/deps.sh run installs it)"
command -v curl >/dev/null || die "curl is not installed (scripts/deps.sh run installs it)"
command -v setsid >/dev/null || die "setsid (util-linux) is missing"
if [[ "$monitoring" == 1 ]]; then
    for tool in prometheus prometheus-alertmanager; do
        command -v "$tool" >/dev/null || die "MONITORING=1 needs $tool (scripts/deps.sh test installs it)"
    done
fi

# -- the parts that will run -------------------------------------------------------------------

# The databases sit where each service looks by default (var/core.db, var/auth.db, ...), so
# their commands (cofre-audit verify, cofre-legacy reconcile, ...) find them without flags.
data_dir=$var_dir
log_dir=$var_dir/log
gw_dir=$var_dir/gateway
mkdir -p "$log_dir" "$gw_dir/tmp" "$gw_dir/tls"
# NGINX's workers (nobody, when started as root) must reach the gateway's directory.
chmod 0755 "$var_dir" "$gw_dir" 2>/dev/null || true

declare -a names=() binaries=() portlists=() probes=() envs=() skipped=()
declare -A facts=([data]=$data_dir [brokers]="" [gateway]="https://127.0.0.1:$((gw_https_port + offset))")
while read -r name binary ports probe env_words; do
    [[ -n "$name" ]] || continue
    if [[ ! -x "$bin_dir/$binary" ]]; then
        skipped+=("$name")
        continue
    fi
    names+=("$name")
    binaries+=("$binary")
    portlists+=("$ports")
    probes+=("$probe")
    envs+=("$env_words")
done <<<"$services_table"
((${#names[@]})) || die "nothing is built in $bin_dir (make build)"

has_service() {
    local n
    for n in "${names[@]}"; do
        [[ "$n" == "$1" ]] && return 0
    done
    return 1
}

# upstreams BINARY DEFAULT_PORT: the comma list of addresses of the replicas of BINARY (its
# default port when it is not built, so the gateway's route answers 502 until it is).
upstreams() {
    local i list=""
    for i in "${!names[@]}"; do
        if [[ "${binaries[$i]}" == "$1" ]]; then
            list+="${list:+,}127.0.0.1:$((${portlists[$i]%%,*} + offset))"
        fi
    done
    echo "${list:-127.0.0.1:$(($2 + offset))}"
}

# -- ports ---------------------------------------------------------------------------------------

# port_user PORT: who listens on PORT (empty when nobody does).
port_user() {
    local port=$1
    if command -v ss >/dev/null; then
        ss -Hltnp "sport = :$port" 2>/dev/null | head -1 | sed -n 's/.*users:((\("[^"]*"\),pid=\([0-9]*\).*/\1 (pid \2)/p;t;s/.*/something/p'
    elif (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        echo something
    fi
}

check_ports() {
    local i p label busy=0 who
    local -a ps
    local -a want=("$gw_http_port:gateway (HTTP)" "$gw_https_port:gateway (HTTPS)"
        "$gw_status_port:gateway (status)")
    for i in "${!names[@]}"; do
        [[ "${portlists[$i]}" == - ]] && continue
        IFS=, read -r -a ps <<<"${portlists[$i]}"
        for p in "${ps[@]}"; do
            want+=("$p:${names[$i]}")
        done
    done
    if [[ "$monitoring" == 1 ]]; then
        want+=("$prom_port:Prometheus" "$am_port:Alertmanager")
    fi
    for label in "${want[@]}"; do
        p=$((${label%%:*} + offset))
        who=$(port_user "$p")
        if [[ -n "$who" ]]; then
            echo "run.sh: port $p (for ${label#*:}) is in use by $who." >&2
            busy=1
        fi
    done
    if ((busy)); then
        echo "run.sh: stop what holds these ports (a platform still running from an earlier" \
            "make run?), or run beside it with COFRE_PORT_OFFSET=1000 make run." >&2
        exit 1
    fi
}

# -- processes -----------------------------------------------------------------------------------

declare -a run_names=() run_pids=() run_stop_sigs=()
stopping=0

# prefix NAME: copies stdin to stdout with NAME in front of every line, line by line (mawk
# would wait for a full buffer).
prefix() {
    sed -u "s#^#$(printf '%-17s| ' "$1")#"
}

# launch NAME STOP_SIGNAL COMMAND...: starts COMMAND in its own session (so Ctrl-C reaches
# only this script, which then stops everything in order), its output appended to
# var/log/NAME.log and streamed with a prefix. Ctrl-C must not kill the log streams either.
launch() {
    local name=$1 sig=$2
    shift 2
    local log=$log_dir/$name.log
    : >"$log"
    setsid "$@" </dev/null > >(trap '' INT; tee -a "$log" | prefix "$name") 2>&1 &
    run_names+=("$name")
    run_pids+=("$!")
    run_stop_sigs+=("$sig")
}

# alive PID: the process exists and has not exited (a zombie has).
alive() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    stat=${stat##*) }
    [[ "${stat%% *}" != Z ]]
}

# wait_ready NAME PID PROBE PORT: until the probe passes, bounded; dies when the process exits.
wait_ready() {
    local name=$1 pid=$2 probe=$3 port=$4 deadline=$((SECONDS + ready_timeout_s))
    while ((SECONDS < deadline)); do
        alive "$pid" || die "$name exited while starting; the end of var/log/$name.log:
$(tail -n 15 "$log_dir/$name.log")"
        case "$probe" in
        http:*)
            curl -fs -m 2 -o /dev/null "http://127.0.0.1:$port${probe#http:}" && return 0
            ;;
        tcp)
            (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
            ;;
        *) die "$name: unknown probe '$probe'" ;;
        esac
        sleep 0.1
    done
    die "$name was not ready within ${ready_timeout_s}s (probe $probe); see var/log/$name.log"
}

# expand WORD: the placeholders of a table word replaced.
expand() {
    local word=$1 key
    while [[ "$word" =~ \{port:([0-9]+)\} ]]; do
        word=${word//"${BASH_REMATCH[0]}"/"$((BASH_REMATCH[1] + offset))"}
    done
    for key in "${!facts[@]}"; do
        word=${word//"{$key}"/"${facts[$key]}"}
    done
    [[ "$word" != *"{"*"}"* ]] || die "unknown placeholder in '$1'"
    printf '%s' "$word"
}

# The settings every service shares.
common_env() {
    local -n out=$1
    out=("COFRE_LOG_LEVEL=${COFRE_LOG_LEVEL:-info}" "COFRE_DRAIN_S=0"
        "COFRE_KAFKA_BROKERS=${facts[brokers]}")
    if has_service cofre-auth; then
        local auth=http://127.0.0.1:$((8082 + offset))
        out+=("COFRE_AUTH_ISSUER=${facts[gateway]}" "COFRE_AUTH_AUDIENCE=cofre-api"
            "COFRE_JWKS_URL=$auth/.well-known/jwks.json"
            "COFRE_AUTH_REVOCATIONS_URL=$auth/oauth/revocations")
    else
        out+=("COFRE_AUTH=off")
    fi
}

start_service() {
    local i=$1 name=${names[$1]} port="" word
    local -a env=()
    common_env env
    if [[ "${portlists[$i]}" != - ]]; then
        port=$((${portlists[$i]%%,*} + offset))
        env+=("COFRE_LISTEN=127.0.0.1:$port")
    fi
    for word in ${envs[$i]}; do
        env+=("$(expand "$word")")
    done
    if declare -F "prepare_${name//-/_}" >/dev/null; then
        "prepare_${name//-/_}"
    fi
    launch "$name" INT env "${env[@]}" "$bin_dir/${binaries[$i]}"
    wait_ready "$name" "${run_pids[-1]}" "${probes[$i]}" "$port"
    if declare -F "setup_${name//-/_}" >/dev/null; then
        "setup_${name//-/_}"
    fi
}

# The development Kafka writes its bootstrap list to a file once it runs.
# shellcheck disable=SC2317 # called by start_service, through its name
setup_cofre_kafka_dev() {
    local file=$data_dir/kafka-dev.bootstrap deadline=$((SECONDS + ready_timeout_s))
    until [[ -s "$file" ]]; do
        ((SECONDS < deadline)) || die "cofre-kafka-dev wrote no bootstrap list to $file"
        sleep 0.1
    done
    facts[brokers]=$(<"$file")
}

# The audit trail's checkpoint signing key, made once and kept with the trail.
# shellcheck disable=SC2317 # called by start_service, through its name
prepare_cofre_audit() {
    local key=$data_dir/audit-signing.key
    [[ -s "$key" ]] && return 0
    "$bin_dir/cofre-audit" keygen "$key" >>"$log_dir/cofre-audit.keygen.log" 2>&1 ||
        die "cofre-audit keygen failed: $(tail -n 3 "$log_dir/cofre-audit.keygen.log")"
}

# The demo client of the walkthrough: made at first start, and its secret kept in var/
# (cofre-auth makes the file hold a working secret, run after run).
demo_secret=""
# shellcheck disable=SC2317 # called by start_service, through its name
setup_cofre_auth() {
    local secret_file=$data_dir/demo-client.secret
    local -a env=()
    common_env env
    env "${env[@]}" COFRE_DB="sqlite:$data_dir/auth.db" "$bin_dir/cofre-auth" client ensure \
        --name "$demo_client_id" --scopes "$demo_scopes" --secret-file "$secret_file" \
        >>"$log_dir/cofre-auth.log" 2>&1 ||
        die "could not create the demo client; the end of var/log/cofre-auth.log:
$(tail -n 5 "$log_dir/cofre-auth.log")"
    demo_secret=$(<"$secret_file")
}

start_gateway() {
    local cert=$gw_dir/tls/cert.pem
    "$repo/deploy/gateway/dev-cert.sh" "$gw_dir/tls"
    COFRE_GW_HTTP_LISTEN=127.0.0.1:$((gw_http_port + offset)) \
        COFRE_GW_HTTPS_LISTEN=127.0.0.1:$((gw_https_port + offset)) \
        COFRE_GW_STATUS_LISTEN=127.0.0.1:$((gw_status_port + offset)) \
        COFRE_GW_CORE_UPSTREAMS=$(upstreams cofre-core 8081) \
        COFRE_GW_AUTH_UPSTREAMS=$(upstreams cofre-auth 8082) \
        COFRE_GW_AUDIT_UPSTREAMS=$(upstreams cofre-audit 8083) \
        "$repo/deploy/gateway/render.sh" -o "$gw_dir/nginx.conf"
    nginx -q -t -e stderr -p "$gw_dir/" -c "$gw_dir/nginx.conf" ||
        die "nginx -t refused $gw_dir/nginx.conf"
    # SIGQUIT is NGINX's graceful stop (finish what is in flight).
    launch gateway QUIT env TZ=UTC nginx -e stderr -p "$gw_dir/" -c "$gw_dir/nginx.conf" \
        -g 'daemon off;'
    wait_ready gateway "${run_pids[-1]}" http:/healthz "$((gw_status_port + offset))"
    [[ -s "$cert" ]] || die "no certificate at $cert"
}

start_monitoring() {
    local targets=$var_dir/monitoring-targets.json i job list=""
    for i in "${!names[@]}"; do
        [[ "${probes[$i]}" == http:* ]] || continue
        job=${binaries[$i]}
        list+="${list:+,}{\"targets\":[\"127.0.0.1:$((${portlists[$i]%%,*} + offset))\"],"
        list+="\"labels\":{\"service\":\"$job\",\"replica\":\"${names[$i]}\"}}"
    done
    echo "[$list]" >"$targets"
    launch monitoring TERM env COFRE_PROM_PORT=$((prom_port + offset)) \
        COFRE_AM_PORT=$((am_port + offset)) COFRE_OBS_TARGETS="$targets" \
        COFRE_OBS_DIR="$var_dir/monitoring" "$repo/deploy/observability/run-local.sh"
    wait_ready monitoring "${run_pids[-1]}" http:/-/ready "$((prom_port + offset))"
}

# stop_all: one by one in reverse start order (the gateway first, so nothing new reaches the
# services; the event bus last, so nobody loses it while stopping): its signal, then a wait of
# at most the stop timeout, then SIGKILL. Returns 1 when one did not exit 0.
stop_all() {
    local i rc failed=0 deadline
    for ((i = ${#run_pids[@]} - 1; i >= 0; i--)); do
        kill -s "${run_stop_sigs[$i]}" "${run_pids[$i]}" 2>/dev/null || true
        deadline=$((SECONDS + stop_timeout_s))
        while alive "${run_pids[$i]}" && ((SECONDS < deadline)); do sleep 0.02; done
        if alive "${run_pids[$i]}"; then
            echo "run.sh: ${run_names[$i]} did not stop within ${stop_timeout_s}s: SIGKILL" >&2
            kill -KILL "${run_pids[$i]}" 2>/dev/null || true
        fi
        rc=0
        wait "${run_pids[$i]}" 2>/dev/null || rc=$?
        if ((rc != 0)); then
            echo "run.sh: ${run_names[$i]} exited with status $rc" >&2
            failed=1
        fi
    done
    run_pids=()
    sleep 0.2 # the log streams print what the services said last
    return "$failed"
}

# shellcheck disable=SC2317 # a trap handler
on_exit() {
    local rc=$?
    trap - EXIT INT TERM HUP
    # A signal during the start (a probe or a sleep interrupted) is a stop asked for, not an error.
    if ((stopping)); then
        rc=0
    fi
    if ((${#run_pids[@]})); then
        stop_all || rc=1
    fi
    exit "$rc"
}

# shellcheck disable=SC2317 # a trap handler
on_signal() {
    stopping=1
    echo
    echo "run.sh: $1: stopping the platform"
}

print_banner() {
    local i gw_http=http://127.0.0.1:$((gw_http_port + offset)) client="" n audit
    cat <<EOF

================================================================================
cofre is running on loopback. Data: $data_dir (kept across runs). Logs: $log_dir
  gateway           ${facts[gateway]}  and  $gw_http  (the only public entry)
                    status (never public): http://127.0.0.1:$((gw_status_port + offset))/stub_status
EOF
    for i in "${!names[@]}"; do
        n=127.0.0.1:$((${portlists[$i]%%,*} + offset))
        if [[ "${names[$i]}" == cofre-kafka-dev ]]; then
            n="$n (control); brokers ${facts[brokers]}"
        fi
        printf '  %-17s %s\n' "${names[$i]}" "$n"
    done
    if [[ "$monitoring" == 1 ]]; then
        printf '  %-17s %s\n' prometheus "http://127.0.0.1:$((prom_port + offset))" \
            alertmanager "http://127.0.0.1:$((am_port + offset))"
    fi
    if ((${#skipped[@]})); then
        echo "  not built yet (skipped): ${skipped[*]}"
    fi
    echo
    if has_service cofre-auth; then
        client=$demo_client_id
    fi
    audit=no
    if has_service cofre-audit; then
        audit=yes
    fi
    walkthrough "${facts[gateway]}" "$gw_dir/tls/cert.pem" "$audit" ${client:+"$client" "$demo_secret"}
    cat <<EOF

Logs follow, one line per event, prefixed by the service. Ctrl-C stops everything.
================================================================================
EOF
}

# -- main ------------------------------------------------------------------------------------------

check_ports
trap on_exit EXIT
trap 'on_signal SIGINT' INT
trap 'on_signal SIGTERM' TERM
trap 'on_signal SIGHUP' HUP

for i in "${!names[@]}"; do
    start_service "$i"
    ((stopping == 0)) || exit 0
done
start_gateway
if [[ "$monitoring" == 1 ]]; then
    start_monitoring
fi
((stopping == 0)) || exit 0
print_banner
echo "run.sh: ready" >&2

# Until a signal, or until a part exits by itself (then everything stops, status 1).
while ((stopping == 0)); do
    exited=""
    wait -n -p exited "${run_pids[@]}" || true
    ((stopping == 0)) || break
    if [[ -n "$exited" ]]; then
        for i in "${!run_pids[@]}"; do
            if [[ "${run_pids[$i]}" == "$exited" ]]; then
                echo "run.sh: ${run_names[$i]} exited by itself; stopping the platform" >&2
                unset 'run_pids[i]' 'run_names[i]' 'run_stop_sigs[i]'
            fi
        done
        run_pids=("${run_pids[@]}") run_names=("${run_names[@]}") run_stop_sigs=("${run_stop_sigs[@]}")
        exit 1
    fi
done
stop_all
trap - EXIT
echo "run.sh: stopped" >&2
exit 0
