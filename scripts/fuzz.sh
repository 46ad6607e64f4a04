#!/usr/bin/env bash
# Runs every libFuzzer target in BIN_DIR (fuzz_*) for SECONDS each, starting from its seed
# corpus in tests/fuzz/corpus/<target>/ (new inputs go to a scratch copy, not into git).
# Usage: scripts/fuzz.sh BIN_DIR SECONDS
set -euo pipefail
bin_dir=$(cd "$1" && pwd) # absolute: the targets run from a scratch directory
seconds=$2
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
shopt -s nullglob
targets=("$bin_dir"/fuzz_*)
if [[ ${#targets[@]} -eq 0 ]]; then
    echo "fuzz.sh: no fuzz targets in $bin_dir" >&2
    exit 1
fi
for target in "${targets[@]}"; do
    name=$(basename "$target")
    corpus="$work/$name"
    mkdir -p "$corpus"
    if [[ -d "$root/tests/fuzz/corpus/$name" ]]; then
        cp -r "$root/tests/fuzz/corpus/$name/." "$corpus/"
    fi
    echo "fuzz: $name for ${seconds}s"
    (cd "$work" && "$target" -max_total_time="$seconds" -max_len=70000 -timeout=10 \
        -print_final_stats=0 "$corpus" 2>"$work/$name.log") || {
        tail -n 60 "$work/$name.log" >&2
        echo "fuzz: $name found a failure (log above)" >&2
        exit 1
    }
done
