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
