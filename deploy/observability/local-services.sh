#!/usr/bin/env bash
# Starts (or stops) the cofre services listed in services.txt whose binaries are built, on
# loopback, each on its default port plus an offset, with SQLite files in a work directory.
# Used by the observability live test, `make load-smoke` and `make dast`, so that they never
# collide with a `make run` on the default ports.
#
#   local-services.sh start WORKDIR   # starts, waits for /readyz (bounded), writes
#                                     # WORKDIR/targets/cofre.json and WORKDIR/urls
#   local-services.sh stop WORKDIR    # SIGTERM, bounded wait, then SIGKILL
#
# Environment: COFRE_BIN_DIR (default build/bin), COFRE_OBS_PORT_OFFSET (default 31000),
# COFRE_OBS_READY_TIMEOUT_S (default 30), COFRE_OBS_ONLY (space-separated jobs to start).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
bin_dir=${COFRE_BIN_DIR:-build/bin}
offset=${COFRE_OBS_PORT_OFFSET:-31000}
ready_timeout_s=${COFRE_OBS_READY_TIMEOUT_S:-30}

die() { echo "local-services.sh: $*" >&2; exit 1; }

# Prints "job port binary env..." for every service line.
service_lines() {
    sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$here/services.txt"
}

wait_ready() {
    local job=$1 url=$2 pid=$3 deadline=$((SECONDS + ready_timeout_s))
    while ((SECONDS < deadline)); do
        kill -0 "$pid" 2>/dev/null || die "$job exited at start; its log: $(tail -5 "$work/$job.log")"
        if curl -fs -m 2 -o /dev/null "$url/readyz"; then
            return 0
        fi
        sleep 0.2
    done
    die "$job not ready at $url/readyz after ${ready_timeout_s}s"
}

# The development Kafka cluster (in memory), once, for the services whose environment names
# {brokers}.
start_kafka() {
    [[ ! -e "$work/cofre-kafka-dev.pid" ]] || return 0
    local url="http://127.0.0.1:$((8092 + offset))"
    env COFRE_LISTEN="${url#http://}" COFRE_KAFKA_DEV_BOOTSTRAP_FILE="$work/kafka.bootstrap" \
        "$bin_dir/cofre-kafka-dev" >"$work/cofre-kafka-dev.log" 2>&1 &
    echo $! >"$work/cofre-kafka-dev.pid"
    wait_ready cofre-kafka-dev "$url" "$!"
}

# Replaces {work}, {brokers} and {port:N} in a service's environment words.
expand() {
    local words=${1//\{work\}/$work} n
    [[ "$words" != *"{brokers}"* ]] || words=${words//\{brokers\}/$(cat "$work/kafka.bootstrap")}
    while [[ "$words" =~ \{port:([0-9]+)\} ]]; do
        n=${BASH_REMATCH[1]}
        words=${words//\{port:$n\}/$((n + offset))}
    done
    echo "$words"
}

# Waits until something accepts connections on host:port.
wait_listening() {
    local job=$1 addr=$2 pid=$3 deadline=$((SECONDS + ready_timeout_s))
    while ((SECONDS < deadline)); do
        kill -0 "$pid" 2>/dev/null || die "$job exited at start; its log: $(tail -5 "$work/$job.log")"
        (exec 3<>"/dev/tcp/${addr%:*}/${addr##*:}") 2>/dev/null && return 0
        sleep 0.2
    done
    die "$job not listening on $addr after ${ready_timeout_s}s"
}

# What a service's environment asks for before it starts: the signing key files it names
# (made with `binary keygen FILE`) and the legacy host (the simulator, listening there).
prepare() {
    local binary=$1 kv file addr
    for kv in $2; do
        file=${kv#*=}
        case "${kv%%=*}" in
        *_SIGNING_KEY_FILE)
            [[ -e "$file" ]] || "$bin_dir/$binary" keygen "$file" >/dev/null ||
                die "$binary keygen $file failed"
            ;;
        COFRE_LEGACY_HOST)
            addr=$file
            env COFRE_LISTEN="$addr" COFRE_DB="sqlite:$work/legacy-sim.db" \
                COFRE_SIM_CONTROL="127.0.0.1:$((${addr##*:} + 2))" \
                "$bin_dir/cofre-legacy-sim" >"$work/cofre-legacy-sim.log" 2>&1 &
            echo $! >"$work/cofre-legacy-sim.pid"
            wait_listening cofre-legacy-sim "$addr" "$!"
            ;;
        esac
    done
}

start() {
    mkdir -p "$work/targets"
    trap stop EXIT # a failed start leaves nothing running
    local targets="" job port binary env_kv url started=0
    : >"$work/urls"
    while read -r job port binary env_kv; do
        if [[ -n "${COFRE_OBS_ONLY:-}" && " $COFRE_OBS_ONLY " != *" $job "* ]]; then
            continue
        fi
        if [[ ! -x "$bin_dir/$binary" ]]; then
            echo "local-services.sh: $job: $bin_dir/$binary not built, skipped" >&2
            continue
        fi
        [[ "$env_kv" != *"{brokers}"* ]] || start_kafka
        env_kv=$(expand "$env_kv")
        prepare "$binary" "$env_kv"
        port=$((port + offset))
        url="http://127.0.0.1:$port"
        # shellcheck disable=SC2086 # env_kv is a list of KEY=VALUE words by design
        env COFRE_LISTEN="127.0.0.1:$port" COFRE_DB="sqlite:$work/$job.db" COFRE_DRAIN_S=0 \
            COFRE_LOG_LEVEL=info $env_kv "$bin_dir/$binary" >"$work/$job.log" 2>&1 &
        echo $! >"$work/$job.pid"
        wait_ready "$job" "$url" "$!"
        echo "$job $url" >>"$work/urls"
        targets+="${targets:+,}{\"targets\":[\"127.0.0.1:$port\"],\"labels\":{\"service\":\"$job\"}}"
        started=$((started + 1))
    done < <(service_lines)
    ((started > 0)) || die "no service binary found in $bin_dir"
    echo "[$targets]" >"$work/targets/cofre.json"
    trap - EXIT
}

stop() {
    local pidfile pid deadline
    for pidfile in "$work"/*.pid; do
        [[ -e "$pidfile" ]] || continue
        pid=$(cat "$pidfile")
        kill -TERM "$pid" 2>/dev/null || true
        deadline=$((SECONDS + 15))
        while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
        rm -f "$pidfile"
    done
}

[[ $# -eq 2 ]] || die "usage: local-services.sh start|stop WORKDIR"
work=$2
case "$1" in
start) start ;;
stop) stop ;;
*) die "usage: local-services.sh start|stop WORKDIR" ;;
esac
