#!/usr/bin/env bash
# Whole-system figures of the foundation: how long `nodenet-lab up` takes for
# a 3-node lab (until every node is Ready), and the resident memory of each
# idle `nodenet run` daemon 10 s after start. Release build; run as root.
#   benches/lab-start-and-rss.sh [runs]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
cargo build --release --workspace --bins >/dev/null
lab=target/release/nodenet-lab
name=bench-$$

cleanup() { "$lab" down --name "$name" >/dev/null 2>&1 || true; }
trap cleanup EXIT

rss_of_daemons() {
    local dir=$1 pid
    for pid in $(pgrep -f "nodenet run .*$dir" || true); do
        awk '/^VmRSS/ {printf "%d ", $2}' "/proc/$pid/status"
    done
}

echo "# $(date -u +%FT%TZ) $(uname -r), $(nproc) cores; command: $0 $runs"
for i in $(seq "$runs"); do
    start=$(date +%s.%N)
    out=$("$lab" up --nodes 3 --name "$name")
    end=$(date +%s.%N)
    dir=$(sed -n 's|^export KUBECONFIG=\(.*\)/kubeconfig$|\1|p' <<<"$out")
    sleep 10
    printf 'run %d: up %.2f s; daemon RSS kB: %s\n' "$i" "$(awk -v a="$start" -v b="$end" 'BEGIN{print b-a}')" "$(rss_of_daemons "$dir")"
    "$lab" down --name "$name" >/dev/null
done
