#!/usr/bin/env bash
# Renders the gateway's NGINX configuration from nginx.conf.template and the environment.
#
#   deploy/gateway/render.sh [-t TEMPLATE] [-o OUT]     (default: the template beside this
#                                                       script, to stdout)
#   deploy/gateway/render.sh --list                     every variable with its default
#
# Every ${COFRE_GW_*} of the template is replaced by the variable of that name, or its default
# below. Each value is checked before use (a malformed one stops with one line naming it), so
# nothing from the environment can add a directive. Upstreams are comma lists of host:port,
# one `server` line each. The output holds no path of this machine unless one is given.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
template=$here/nginx.conf.template
out=-

# name | default | kind (what check_value accepts)
defaults='
COFRE_GW_HTTP_LISTEN|127.0.0.1:8080|listen
COFRE_GW_HTTPS_LISTEN|127.0.0.1:8443|listen
COFRE_GW_STATUS_LISTEN|127.0.0.1:8089|listen
COFRE_GW_CORE_UPSTREAMS|127.0.0.1:8081,127.0.0.1:8091|upstreams
COFRE_GW_AUTH_UPSTREAMS|127.0.0.1:8082|upstreams
COFRE_GW_AUDIT_UPSTREAMS|127.0.0.1:8083|upstreams
COFRE_GW_MAX_FAILS|2|count
COFRE_GW_FAIL_TIMEOUT|5s|duration
COFRE_GW_TLS_CERT|tls/cert.pem|path
COFRE_GW_TLS_KEY|tls/key.pem|path
COFRE_GW_PID|nginx.pid|path
COFRE_GW_TEMP_DIR|tmp|path
COFRE_GW_ACCESS_LOG|/dev/stdout|path
COFRE_GW_ERROR_LOG|stderr|path
COFRE_GW_WORKERS|auto|workers
COFRE_GW_WORKER_CONNECTIONS|4096|count
COFRE_GW_API_RATE|100r/s|rate
COFRE_GW_API_BURST|200|count
COFRE_GW_TOKEN_RATE|10r/s|rate
COFRE_GW_TOKEN_BURST|20|count
COFRE_GW_CONN_MAX|50|count
COFRE_GW_CLIENT_TIMEOUT|10s|duration
COFRE_GW_CONNECT_TIMEOUT|2s|duration
COFRE_GW_READ_TIMEOUT|15s|duration
COFRE_GW_RETRY_TRIES|3|count
COFRE_GW_RETRY_TIMEOUT|10s|duration
'

die() {
    echo "render.sh: $*" >&2
    exit 2
}

# check_value NAME VALUE KIND: exits with a message naming NAME when VALUE is not a KIND.
check_value() {
    local name=$1 value=$2 kind=$3 re
    case "$kind" in
    listen) re='^(([0-9]{1,3}\.){3}[0-9]{1,3}:|\[[0-9a-fA-F:]+\]:)?[0-9]{1,5}$' ;;
    upstreams) re='^[A-Za-z0-9._-]+:[0-9]{1,5}(,[A-Za-z0-9._-]+:[0-9]{1,5})*$' ;;
    count) re='^[1-9][0-9]{0,6}$' ;;
    duration) re='^[1-9][0-9]{0,5}(ms|s|m)$' ;;
    rate) re='^[1-9][0-9]{0,6}r/[sm]$' ;;
    workers) re='^(auto|[1-9][0-9]{0,2})$' ;;
    path) re='^[A-Za-z0-9._/+-]+$' ;;
    *) die "internal: unknown kind $kind" ;;
    esac
    [[ "$value" =~ $re ]] || die "$name='$value' is not a valid $kind"
}

# server_lines LIST: one `server host:port ...;` per entry of a comma list.
server_lines() {
    local list=$1 addr lines=""
    local -a addrs
    IFS=, read -r -a addrs <<<"$list"
    for addr in "${addrs[@]}"; do
        lines+="${lines:+ }server $addr max_fails=${values[COFRE_GW_MAX_FAILS]}"
        lines+=" fail_timeout=${values[COFRE_GW_FAIL_TIMEOUT]};"
    done
    printf '%s' "$lines"
}

list=0
while (($#)); do
    case "$1" in
    -t) template=${2:?-t needs a file}; shift 2 ;;
    -o) out=${2:?-o needs a file}; shift 2 ;;
    --list) list=1; shift ;;
    *) die "unknown argument '$1' (usage: render.sh [-t TEMPLATE] [-o OUT] | --list)" ;;
    esac
done

declare -A values
while IFS='|' read -r name default kind; do
    [[ -n "$name" ]] || continue
    if ((list)); then
        printf '%-28s %s\n' "$name" "$default"
        continue
    fi
    value=${!name-$default}
    check_value "$name" "$value" "$kind"
    values[$name]=$value
done <<<"$defaults"
((list)) && exit 0

values[COFRE_GW_CORE_SERVERS]=$(server_lines "${values[COFRE_GW_CORE_UPSTREAMS]}")
values[COFRE_GW_AUTH_SERVERS]=$(server_lines "${values[COFRE_GW_AUTH_UPSTREAMS]}")
values[COFRE_GW_AUDIT_SERVERS]=$(server_lines "${values[COFRE_GW_AUDIT_UPSTREAMS]}")

[[ -r "$template" ]] || die "cannot read the template $template"
text=$(<"$template")
for name in "${!values[@]}"; do
    text=${text//"\${$name}"/"${values[$name]}"}
done
if [[ "$text" =~ \$\{COFRE_GW_[A-Z0-9_]*\} ]]; then
    die "the template uses ${BASH_REMATCH[0]}, which render.sh does not define"
fi

if [[ "$out" == - ]]; then
    printf '%s\n' "$text"
else
    tmp=$out.tmp.$$
    printf '%s\n' "$text" >"$tmp"
    mv -f "$tmp" "$out"
fi
