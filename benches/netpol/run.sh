#!/usr/bin/env bash
# NetworkPolicy benchmark (issue 4, performance section), release builds, as root.
#   plan:  pure planner timings (criterion):   cargo bench -p netpol --bench plan
#   apply: cold-start plan + nft apply for 10/100/1 000 policies x 1 000/10 000
#          pods, and pod event -> rules live at 1 000 x 10 000 with the nft
#          transaction count and script bytes per event:
#                                              cargo bench -p netpol --bench apply
#   iperf: per-packet cost. Two pod namespaces on veths behind bridge cni0 in a
#          node namespace (br_netfilter on, as the daemon sets it); client
#          pinned to CPU 0, server to CPU 1, 5 s each: iperf3 TCP (established
#          after the SYN) and a one-way UDP flood (lab example netpol_udpblast,
#          1400-byte datagrams, never answered, so every datagram is conntrack
#          state "new" and walks the whole policy path), with the node's table
#          holding none / 0 / 1 / 1 000 policies (scripts from the apply
#          bench's emit-iperf mode: 10 000 pods, the server selected by one
#          policy allowing the client on TCP 5201 and UDP 5300, the other 999
#          selecting other pods). 3 alternating rounds, medians.
# Usage: benches/netpol/run.sh [plan] [apply] [iperf]   (default: all three)
# Everything privileged happens in namespaces created here (nnbench-*), removed
# on exit; only processes started here are killed, by PID.
set -euo pipefail
cd "$(dirname "$0")/../.."
parts=("$@")
[ $# -eq 0 ] && parts=(plan apply iperf)
[ "$(id -u)" = 0 ] || { echo "run.sh needs root (network namespaces, nft)" >&2; exit 1; }
command -v iperf3 >/dev/null || apt-get install -y iperf3 >/dev/null
command -v jq >/dev/null || apt-get install -y jq >/dev/null

tag=$$
node=nnbench-np-node-$tag; client=nnbench-np-client-$tag; server=nnbench-np-server-$tag
work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    for ns in "$client" "$server" "$node"; do
        ip netns delete "$ns" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT

echo "# $(date -u +%FT%TZ) $(uname -r), $(nproc) cores, $(nft --version), $(iperf3 --version | head -1); command: $0 ${parts[*]}"

run_plan() {
    timeout 1200 cargo bench -p netpol --bench plan 2>&1 | grep -E '^(cold|build|event)/|time:|diff script'
}

run_apply() {
    timeout 600 cargo bench -p netpol --bench apply 2>&1 | grep -vE '^\s*(Compiling|Finished|Running)'
}

in_ns() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

setup_pods() {
    for ns in "$node" "$client" "$server"; do
        ip netns add "$ns"
        ip -n "$ns" link set lo up
    done
    ip -n "$node" link add cni0 type bridge
    ip -n "$node" addr add 10.42.0.1/24 dev cni0
    ip -n "$node" link set cni0 up
    in_ns "$node" sysctl -qw net.bridge.bridge-nf-call-iptables=1 net.bridge.bridge-nf-call-ip6tables=1
    local i=2
    for ns in "$client" "$server"; do
        ip -n "$node" link add "veth$i" type veth peer name eth0 netns "$ns"
        ip -n "$node" link set "veth$i" master cni0 up
        ip -n "$ns" addr add "10.42.0.$i/24" dev eth0
        ip -n "$ns" link set eth0 up
        ip -n "$ns" route add default via 10.42.0.1
        i=$((i + 1))
    done
}

# Loads one configuration into the node namespace's table.
load() {
    if [ "$1" = none ]; then
        in_ns "$node" nft delete table inet nodenet-netpol 2>/dev/null || true
    else
        in_ns "$node" nft -f "$work/$1.nft"
    fi
}

# One run; TCP: the receiver's bits/s; UDP: "sent received" bits/s (sending
# costs the client's CPU the whole bridge + nft path: veth delivery runs in
# the sender's softirq, so the sent rate is the per-packet-cost figure; the
# receiver may drop at its socket).
measure() {
    local proto=$1 out rpid
    if [ "$proto" = tcp ]; then
        out=$(in_ns "$client" taskset -c 0 timeout 30 iperf3 -c 10.42.0.3 -t 5 -J)
        jq -r '.end.sum_received.bits_per_second' <<<"$out"
    else
        ip netns exec "$server" taskset -c 1 timeout 20 "$blast" recv 5300 6.5 >"$work/recv.json" &
        # Not in $pids: it is waited for below and ends by itself (6.5 s),
        # so cleanup never signals a PID that may have been reused.
        rpid=$!
        sleep 0.3
        out=$(in_ns "$client" taskset -c 0 timeout 20 "$blast" send 10.42.0.3:5300 5)
        wait "$rpid"
        echo "$(jq -r '.sent * 1400 * 8 / 5' <<<"$out") $(jq -r '.gbps * 1e9' "$work/recv.json")"
    fi
}

median3() { printf '%s\n' "$@" | sort -g | sed -n 2p; }

run_iperf() {
    timeout 600 cargo bench -p netpol --bench apply -- emit-iperf "$work" 2>&1 | grep -E '^p[0-9]'
    timeout 900 cargo build --release -p lab --example netpol_udpblast 2>/dev/null
    blast=$PWD/target/release/examples/netpol_udpblast
    setup_pods
    # Not through a shell function: `ip netns exec` and taskset exec in
    # place, so $! is iperf3's own PID (what cleanup kills).
    ip netns exec "$server" taskset -c 1 iperf3 -s -p 5201 >/dev/null 2>&1 &
    pids+=($!)
    # Same server on a port the policy does not allow: must be refused.
    ip netns exec "$server" taskset -c 1 iperf3 -s -p 5202 >/dev/null 2>&1 &
    pids+=($!)
    sleep 1
    configs=(none p0 p1 p1000)
    echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
    declare -A runs
    for round in 1 2 3; do
        for cfg in "${configs[@]}"; do
            load "$cfg"
            runs[$cfg.tcp]+="$(measure tcp) "
            read -r sent received < <(measure udp)
            runs[$cfg.udp]+="$sent "
            runs[$cfg.udprecv]+="$received "
        done
    done
    # p1000 was loaded last: its counter holds the last round's packets.
    local counted
    counted=$(in_ns "$node" nft list counter inet nodenet-netpol "$(cat "$work/counter")" | grep -o 'packets [0-9]* bytes [0-9]*')
    if in_ns "$client" timeout 10 iperf3 -c 10.42.0.3 -p 5202 -t 1 >/dev/null 2>&1; then
        echo "ERROR: port 5202 reachable with p1000 loaded (policy not enforced)" >&2
        exit 1
    fi
    echo "p1000 loaded: client -> server:5202 refused (enforced); iperf policy allow counter after the last p1000 run: $counted"
    echo "| table | iperf3 TCP Gbit/s (runs) | TCP median | one-way UDP sent Gbit/s (runs) | UDP sent median | UDP received (runs) | UDP received median |"
    echo "|---|---|---|---|---|---|---|"
    declare -A med
    for cfg in "${configs[@]}"; do
        for proto in tcp udp udprecv; do
            # shellcheck disable=SC2086
            med[$cfg.$proto]=$(median3 ${runs[$cfg.$proto]})
        done
        echo "| $cfg | $(gbit_list "${runs[$cfg.tcp]}") | $(gbit "${med[$cfg.tcp]}") | $(gbit_list "${runs[$cfg.udp]}") | $(gbit "${med[$cfg.udp]}") | $(gbit_list "${runs[$cfg.udprecv]}") | $(gbit "${med[$cfg.udprecv]}") |"
    done
    for proto in tcp udp udprecv; do
        echo "ratio $proto p1000/p0: $(jq -n "${med[p1000.$proto]} / ${med[p0.$proto]} * 1000 | round / 1000")" \
            "(p1000/none: $(jq -n "${med[p1000.$proto]} / ${med[none.$proto]} * 1000 | round / 1000"))"
    done
}

gbit() { jq -n "$1 / 1e9 * 100 | round / 100"; }
gbit_list() { local out=() v; for v in $1; do out+=("$(gbit "$v")"); done; echo "${out[*]}"; }

for part in "${parts[@]}"; do
    case $part in
        plan) run_plan ;;
        apply) run_apply ;;
        iperf) run_iperf ;;
        *) echo "unknown part $part (plan, apply, iperf)" >&2; exit 2 ;;
    esac
done
