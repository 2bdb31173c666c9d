#!/usr/bin/env bash
# Overlay benchmark (issue 3, performance section), release build, as root:
#   (a) pod-to-pod TCP throughput across nodes with iperf3 (client pinned to
#       CPU 0, server to CPU 1, 3 runs of 8 s, median) as a ratio to the
#       same nodes' underlay (node-to-node veth) throughput;
#   (b) convergence: a real Node object re-appearing -> first UDP echo
#       between pods on the two nodes; 1 and then 200 fake Nodes (flannel
#       annotations, no daemon) created at once -> node-1's kernel holds
#       exactly one route (+ neighbour + FDB entry for VXLAN) per peer;
#   (c) RSS of node-1's daemon with 202 remote nodes.
# Each line printed is one JSON result; every throughput run records the
# 1-minute load average it started under. Usage:
#   benches/overlay/run.sh [vxlan host-gw wireguard-native]
# (default: all three; RUNS=<n> sets the throughput runs per path, default 5)
set -euo pipefail
cd "$(dirname "$0")/../.."
backends=("${@:-vxlan}")
[ $# -eq 0 ] && backends=(vxlan host-gw wireguard-native)
runs=${RUNS:-5}
command -v iperf3 >/dev/null || apt-get install -y iperf3 >/dev/null
cargo build --release --workspace --bins >/dev/null
cargo build --release -p lab --example overlay_bench >/dev/null
# Copies, so that a concurrent build cannot replace a binary mid-run.
bin=$(mktemp -d /tmp/overlay-bench.XXXXXX)
trap 'rm -rf "$bin"' EXIT
cp target/release/nodenet target/release/nodenet-workload \
    target/release/examples/overlay_bench "$bin/"
export NODENET_BIN=$bin/nodenet
export NODENET_WORKLOAD_BIN=$bin/nodenet-workload
bench=$bin/overlay_bench
echo "# $(date -u +%FT%TZ) $(uname -r), $(nproc) cores, $(iperf3 --version | head -1); command: $0 $*"
for backend in "${backends[@]}"; do
    echo "# $(date -u +%FT%TZ) $backend, load: $(cut -d' ' -f1-3 /proc/loadavg)"
    "$bench" throughput "$backend" "$runs"
    "$bench" convergence "$backend"
done
