#!/usr/bin/env bash
# Starts Prometheus and Alertmanager on loopback beside a locally running cofre platform
# (`make run MONITORING=1` calls this), with the same rules and routing tree as production:
# Prometheus scrapes every service of services.txt, evaluates rules/*.yml and sends alerts to
# the local Alertmanager, whose receivers are blackholed (nothing leaves the machine; the
# alerts are visible in its UI). Prints the URLs, runs until SIGTERM/SIGINT, then stops both.
#
# Environment:
#   COFRE_PROM_PORT (9090), COFRE_AM_PORT (9093)       where to listen, on 127.0.0.1
#   COFRE_OBS_TARGETS   a file_sd JSON to use instead of services.txt's default ports
#   COFRE_OBS_DIR       work directory (default: a temp dir, removed at exit)
#   COFRE_OBS_INTERVAL  scrape and evaluation interval (default 5s)
#   COFRE_OBS_READY_TIMEOUT_S (30)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
prom_port=${COFRE_PROM_PORT:-9090}
am_port=${COFRE_AM_PORT:-9093}
interval=${COFRE_OBS_INTERVAL:-5s}
ready_timeout_s=${COFRE_OBS_READY_TIMEOUT_S:-30}
work=${COFRE_OBS_DIR:-}
remove_work=0
if [[ -z "$work" ]]; then
    work=$(mktemp -d -t cofre-obs.XXXXXX)
    remove_work=1
fi
pids=()

die() { echo "run-local.sh: $*" >&2; exit 1; }

for tool in prometheus prometheus-alertmanager; do
    command -v "$tool" >/dev/null || die "$tool not installed (scripts/deps.sh test installs it)"
done

cleanup() {
    local pid
    for pid in "${pids[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    if ((remove_work)); then
        rm -rf "$work"
    fi
}
trap cleanup EXIT
trap 'exit 0' TERM INT

# The scrape targets: the given file, or every service of services.txt on its default port.
write_targets() {
    mkdir -p "$work/prometheus/targets" "$work/prometheus/alertmanagers"
    if [[ -n "${COFRE_OBS_TARGETS:-}" ]]; then
        cp "$COFRE_OBS_TARGETS" "$work/prometheus/targets/cofre.json"
    else
        sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$here/services.txt" |
            awk 'BEGIN { printf "[" }
                 { printf "%s{\"targets\":[\"127.0.0.1:%s\"],\"labels\":{\"service\":\"%s\"}}",
                   (NR > 1 ? "," : ""), $2, $1 }
                 END { print "]" }' >"$work/prometheus/targets/cofre.json"
    fi
    echo "[{\"targets\":[\"127.0.0.1:$am_port\"]}]" >"$work/prometheus/alertmanagers/local.json"
}

write_config() {
    cp -r "$here/prometheus/rules" "$work/prometheus/"
    sed -e "s/^  scrape_interval: .*/  scrape_interval: $interval/" \
        -e "s/^  evaluation_interval: .*/  evaluation_interval: $interval/" \
        "$here/prometheus/prometheus.local.yml" >"$work/prometheus/prometheus.yml"
    mkdir -p "$work/alertmanager"
    cp -r "$here/alertmanager/templates" "$work/alertmanager/"
    # Same routes and inhibitions as production; receivers without integrations.
    /usr/bin/python3 - "$here/alertmanager/alertmanager.yml" "$work/alertmanager/alertmanager.yml" <<'EOF'
import sys, yaml
cfg = yaml.safe_load(open(sys.argv[1]))
cfg["receivers"] = [{"name": r["name"]} for r in cfg["receivers"]]
yaml.safe_dump(cfg, open(sys.argv[2], "w"), sort_keys=False)
EOF
}

wait_ready() {
    local name=$1 url=$2 pid=$3 deadline=$((SECONDS + ready_timeout_s))
    while ((SECONDS < deadline)); do
        kill -0 "$pid" 2>/dev/null || die "$name exited at start: $(tail -5 "$work/$name.log")"
        curl -fs -m 2 -o /dev/null "$url/-/ready" && return 0
        sleep 0.2
    done
    die "$name not ready at $url after ${ready_timeout_s}s"
}

write_targets
write_config
prometheus-alertmanager --config.file="$work/alertmanager/alertmanager.yml" \
    --storage.path="$work/alertmanager/data" --web.listen-address="127.0.0.1:$am_port" \
    --cluster.listen-address= --log.level=warn >"$work/alertmanager.log" 2>&1 &
pids+=("$!")
wait_ready alertmanager "http://127.0.0.1:$am_port" "$!"
prometheus --config.file="$work/prometheus/prometheus.yml" \
    --storage.tsdb.path="$work/prometheus/data" --storage.tsdb.retention.time=1d \
    --web.listen-address="127.0.0.1:$prom_port" --log.level=warn >"$work/prometheus.log" 2>&1 &
pids+=("$!")
wait_ready prometheus "http://127.0.0.1:$prom_port" "$!"

echo "Prometheus:   http://127.0.0.1:$prom_port   (alerts: /alerts, targets: /targets)"
echo "Alertmanager: http://127.0.0.1:$am_port"
echo "run-local.sh: monitoring ready (work dir $work); SIGTERM or Ctrl-C stops it"
# Wait on the children so that a signal interrupts the wait at once; exit if either dies.
while true; do
    for pid in "${pids[@]}"; do
        kill -0 "$pid" 2>/dev/null || die "a monitoring process exited; see $work/*.log"
    done
    sleep 1 &
    wait $! || true
done
