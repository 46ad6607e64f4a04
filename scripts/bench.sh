#!/usr/bin/env bash
# `make bench`: every benchmark of the project in one run, on this machine, side by side with
# its reference, written with the command that produced it to docs/benchmarks.md.
# Each section is a script in scripts/bench/ that prints markdown; a section that fails is
# reported as failed, and the run exits non-zero.
set -uo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
bin_dir=${BIN_DIR:-$root/build/bin}
out=${BENCH_OUT:-$root/docs/benchmarks.md}
sections=(core pg auth gateway events legacy)
body=$(mktemp)
trap 'rm -f "$body"' EXIT
failed=0

for name in "${sections[@]}"; do
    script="$root/scripts/bench/$name.sh"
    [[ -x "$script" ]] || continue
    echo "bench: $name" >&2
    if ! "$script" "$bin_dir" >>"$body" 2>"$body.$name.err"; then
        failed=1
        {
            printf '\n## %s\n\nThe %s benchmark failed on this run:\n\n```\n' "$name" "$name"
            tail -n 20 "$body.$name.err"
            printf '```\n'
        } >>"$body"
    fi
    rm -f "$body.$name.err"
    printf '\n' >>"$body"
done

{
    printf '# Benchmarks\n\n'
    printf 'Produced by make bench (scripts/bench.sh) on %s, revision %s.\n' \
        "$(date -u +%Y-%m-%dT%H:%MZ)" "$(git -C "$root" rev-parse --short HEAD)"
    printf 'Machine: %s cores (%s), %s GiB RAM, %s. The machine is shared and noisy:\n' \
        "$(nproc)" "$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)" \
        "$(awk '/MemTotal/ {printf "%d", $2 / 1048576}' /proc/meminfo)" "$(uname -sr)"
    printf 'figures are medians of repeated runs, and comparisons run back to back in one run.\n'
    printf 'Load average at the end: %s.\n\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
    cat "$body"
} >"$out"
cat "$out"
exit "$failed"
