#!/usr/bin/env bash
# Cluster DNS benchmark (issue 5, performance): nodenet's DNS server against
# dnsmasq with the same names, side by side in one run, inside a network
# namespace this script creates and removes (loopback only; the root
# namespace is never touched). Servers are pinned to core 0, dnsperf to
# core 1.
#
#   sudo benches/dns/run.sh [seconds-per-run [repeats]]   (default 10 3)
#
# Reports, for cluster names and for forwarded names with a warm cache:
#   - queries/s at maximum load (dnsperf -c 8 -q 500),
#   - CPU-seconds per million queries at a fixed 100 000 queries/s
#     (dnsperf -Q 100000; server utime+stime from /proc/<pid>/stat; the
#     median of `repeats` runs taken alternately with dnsmasq),
# and nodenet's RSS with 10 000 services and 50 000 pod endpoints.
set -euo pipefail

SECONDS_PER_RUN=${1:-10}
# Fixed-rate runs per server and name set (median reported).
REPEATS=${2:-3}
SERVICES=10000
PODS=50000
FORWARDED=5000
ROOT=$(cd "$(dirname "$0")/../.." && pwd)

if [ "$(id -u)" != 0 ]; then
    echo "run.sh: must run as root (network namespace, port 53)" >&2
    exit 1
fi
for tool in dnsperf dnsmasq; do
    if ! command -v "$tool" >/dev/null; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dnsperf dnsmasq-base >/dev/null
        break
    fi
done

(cd "$ROOT" && cargo build --release -q -p dns --example serve)
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
SERVE="$ROOT/target/release/examples/serve"

NS="nnbench-dns-$$"
WORK=$(mktemp -d)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    # Anything still inside the namespace was started by this script.
    for pid in $(ip netns pids "$NS" 2>/dev/null); do kill "$pid" 2>/dev/null || true; done
    ip netns delete "$NS" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT INT TERM
ip netns add "$NS"
ip -n "$NS" link set lo up
in_ns() { ip netns exec "$NS" "$@"; }

# The same names for everybody: cluster names (ClusterIPs as the example
# assigns them) and external names that only the upstream dnsmasq knows.
awk -v n="$SERVICES" 'BEGIN { for (i = 0; i < n; i++) { j = i + 256;
    printf "10.43.%d.%d svc-%d.default.svc.cluster.local\n", int(j / 256) % 256, j % 256, i } }' >"$WORK/cluster.hosts"
awk -v n="$FORWARDED" 'BEGIN { for (i = 0; i < n; i++)
    printf "198.18.%d.%d ext-%d.example.com\n", int(i / 256), i % 256, i }' >"$WORK/ext.hosts"
awk '{ print $2 " A" }' "$WORK/cluster.hosts" >"$WORK/cluster.queries"
awk '{ print $2 " A" }' "$WORK/ext.hosts" >"$WORK/ext.queries"

# dnsmasq #1 (127.0.0.1): answers every name from its hosts files; the
# cluster-name baseline, and the upstream for forwarded names.
# (Started with `ip netns exec` directly, not through a function, so that
# $! is the server's own PID after the exec chain.)
ip netns exec "$NS" taskset -c 0 dnsmasq --keep-in-foreground --conf-file=/dev/null --no-resolv --no-hosts \
    --addn-hosts="$WORK/cluster.hosts" --addn-hosts="$WORK/ext.hosts" --local-ttl=3600 \
    --listen-address=127.0.0.1 --bind-interfaces --port=53 --cache-size=10000 \
    --user=root --pid-file= --log-facility=/dev/null &
PIDS+=($!)
DNSMASQ=$!
# dnsmasq #2 (127.0.0.3): forwards to #1 and caches; the forwarded-name baseline.
ip netns exec "$NS" taskset -c 0 dnsmasq --keep-in-foreground --conf-file=/dev/null --no-resolv --no-hosts \
    --server=127.0.0.1#53 --listen-address=127.0.0.3 --bind-interfaces --port=53 \
    --cache-size=10000 --dns-forward-max=1000 --user=root --pid-file= --log-facility=/dev/null &
PIDS+=($!)
FORWARDER=$!
# nodenet (127.0.0.2): the synthetic cluster, forwarding to #1.
ip netns exec "$NS" taskset -c 0 "$SERVE" --listen 127.0.0.2:53 --services "$SERVICES" --pods "$PODS" \
    --upstream 127.0.0.1:53 >"$WORK/serve.out" 2>"$WORK/serve.err" &
PIDS+=($!)
OURS=$!
for _ in $(seq 1 300); do
    grep -q ready "$WORK/serve.out" 2>/dev/null && break
    sleep 0.1
done
grep -q ready "$WORK/serve.out" || { echo "serve did not start:"; cat "$WORK/serve.err"; exit 1; }
RSS_READY=$(sed -n 's/.*rss_kb=//p' "$WORK/serve.out")

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
perf() { in_ns taskset -c 1 dnsperf -s "$1" -p 53 -d "$2" -l "$SECONDS_PER_RUN" "${@:3}" 2>&1; }
field() { sed -n "s/^ *$1: *\([0-9.]*\).*/\1/p" | head -1; }

# max SERVER PID QUERIES -> "queries/s busy%" (busy% = server CPU use
# during the run; under 100 means dnsperf, not the server, was the limit)
max_qps() {
    local before after qps tck
    tck=$(getconf CLK_TCK)
    before=$(cpu_ticks "$2")
    qps=$(perf "$1" "$3" -c 8 -q 500 | field "Queries per second")
    after=$(cpu_ticks "$2")
    awk -v q="$qps" -v b="$before" -v a="$after" -v t="$tck" -v s="$SECONDS_PER_RUN" \
        'BEGIN { printf "%.0f %.0f", q, 100 * (a - b) / t / s }'
}
# fixed SERVER PID QUERIES -> "achieved-qps cpu-seconds-per-million lost"
fixed_cpu() {
    local before after out completed lost tck
    tck=$(getconf CLK_TCK)
    before=$(cpu_ticks "$2")
    out=$(perf "$1" "$3" -c 8 -q 500 -Q 100000)
    after=$(cpu_ticks "$2")
    completed=$(echo "$out" | sed -n 's/^ *Queries completed: *\([0-9]*\).*/\1/p')
    lost=$(echo "$out" | sed -n 's/^ *Queries lost: *\([0-9]*\).*/\1/p')
    awk -v b="$before" -v a="$after" -v c="$completed" -v t="$tck" -v s="$SECONDS_PER_RUN" -v l="$lost" \
        'BEGIN { printf "%.0f %.2f %d", c / s, (a - b) / t / (c / 1e6), l }'
}
warm() { in_ns taskset -c 1 dnsperf -s "$1" -p 53 -d "$2" -n 1 -c 8 -q 100 >/dev/null 2>&1; }

warm 127.0.0.2 "$WORK/ext.queries"
warm 127.0.0.3 "$WORK/ext.queries"

# Median of the fixed-rate runs, taken alternately (dnsmasq, nodenet, ...)
# so that load from other work on the machine hits both alike.
median_of() { sort -t' ' -k2,2n | awk '{ l[NR] = $0 } END { print l[int((NR + 1) / 2)] }'; }
alternate() { # SERVER-A PID-A SERVER-B PID-B QUERIES -> sets A_FIXED B_FIXED
    local a=() b=() i
    for i in $(seq 1 "$REPEATS"); do
        a+=("$(fixed_cpu "$1" "$2" "$5")")
        b+=("$(fixed_cpu "$3" "$4" "$5")")
    done
    A_FIXED=$(printf '%s\n' "${a[@]}" | median_of)
    B_FIXED=$(printf '%s\n' "${b[@]}" | median_of)
    echo "fixed-rate runs ($5): dnsmasq [${a[*]}] nodenet [${b[*]}]" >&2
}

declare -A R
R[dnsmasq_cluster_max]=$(max_qps 127.0.0.1 "$DNSMASQ" "$WORK/cluster.queries")
R[ours_cluster_max]=$(max_qps 127.0.0.2 "$OURS" "$WORK/cluster.queries")
alternate 127.0.0.1 "$DNSMASQ" 127.0.0.2 "$OURS" "$WORK/cluster.queries"
R[dnsmasq_cluster_fixed]=$A_FIXED
R[ours_cluster_fixed]=$B_FIXED
R[dnsmasq_fwd_max]=$(max_qps 127.0.0.3 "$FORWARDER" "$WORK/ext.queries")
R[ours_fwd_max]=$(max_qps 127.0.0.2 "$OURS" "$WORK/ext.queries")
alternate 127.0.0.3 "$FORWARDER" 127.0.0.2 "$OURS" "$WORK/ext.queries"
R[dnsmasq_fwd_fixed]=$A_FIXED
R[ours_fwd_fixed]=$B_FIXED
RSS_AFTER=$(awk '/VmRSS/ { print $2 }' "/proc/$OURS/status")

row() { # label dnsmasq-max ours-max dnsmasq-fixed ours-fixed
    read -r dm db <<<"$2"
    read -r om ob <<<"$3"
    read -r dq dc dl <<<"$4"
    read -r oq oc ol <<<"$5"
    printf "| %s | %s (%s%%) | %s (%s%%) | %s (%s q/s, %s lost) | %s (%s q/s, %s lost) | %s | %s |\n" \
        "$1" "$dm" "$db" "$om" "$ob" "$dc" "$dq" "$dl" "$oc" "$oq" "$ol" \
        "$(awk -v o="$om" -v d="$dm" 'BEGIN { printf "%.2f", o / d }')" \
        "$(awk -v o="$oc" -v d="$dc" 'BEGIN { printf "%.2f", o / d }')"
}
echo
echo "| names | dnsmasq q/s at max load (server CPU busy) | nodenet q/s at max load (server CPU busy) | dnsmasq CPU-s per 1M q at -Q 100000 | nodenet CPU-s per 1M q at -Q 100000 | q/s ratio | CPU ratio |"
echo "|---|---|---|---|---|---|---|"
row "cluster ($SERVICES)" "${R[dnsmasq_cluster_max]}" "${R[ours_cluster_max]}" "${R[dnsmasq_cluster_fixed]}" "${R[ours_cluster_fixed]}"
row "forwarded, warm ($FORWARDED)" "${R[dnsmasq_fwd_max]}" "${R[ours_fwd_max]}" "${R[dnsmasq_fwd_fixed]}" "${R[ours_fwd_fixed]}"
implied() { read -r _ c _ <<<"$1"; awk -v c="$c" 'BEGIN { printf "%.0f", 1e6 / c }'; }
echo
echo "Implied queries/s of one fully busy server core (1e6 / CPU-s per 1M q):" \
    "cluster names dnsmasq $(implied "${R[dnsmasq_cluster_fixed]}"), nodenet $(implied "${R[ours_cluster_fixed]}");" \
    "forwarded dnsmasq $(implied "${R[dnsmasq_fwd_fixed]}"), nodenet $(implied "${R[ours_fwd_fixed]}")"
echo
echo "nodenet RSS with $SERVICES services and $PODS pod endpoints: ${RSS_READY} kB when ready, ${RSS_AFTER} kB after the runs"
sed 's/^/serve: /' "$WORK/serve.err"
echo "load average before / after (other work on the machine skews both servers alike): $LOAD_BEFORE / $(cut -d' ' -f1-3 /proc/loadavg)"
