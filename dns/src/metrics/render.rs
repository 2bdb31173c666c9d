//! Prometheus text exposition of [`Metrics`]; series that never moved are
//! left out, as CoreDNS does.

use std::fmt::Write;
use std::sync::atomic::Ordering;

use super::histogram::Snapshot;
use super::{Metrics, RCODES, Source, TYPE_SLOTS, TYPES};

const LABELS: &str = "server=\"dns://:53\",zone=\".\"";

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn type_name(slot: usize) -> &'static str {
    TYPES.get(slot).map_or("other", |(_, n)| n)
}

pub(super) fn all(m: &Metrics, out: &mut String) {
    requests(m, out);
    responses(m, out);
    durations(m, out);
    cache(m, out);
    sync(m, out);
}

fn requests(m: &Metrics, out: &mut String) {
    header(
        out,
        "coredns_dns_requests_total",
        "counter",
        "Counter of DNS requests made per zone, protocol and family.",
    );
    for (p, proto) in ["udp", "tcp"].iter().enumerate() {
        for family in 0..2 {
            for slot in 0..TYPE_SLOTS {
                let n: u64 = m
                    .shards
                    .iter()
                    .map(|s| s.requests[p][family][slot].load(Ordering::Relaxed))
                    .sum();
                if n > 0 {
                    let (f, t) = (family + 1, type_name(slot));
                    let _ = writeln!(
                        out,
                        "coredns_dns_requests_total{{{LABELS},proto=\"{proto}\",family=\"{f}\",type=\"{t}\"}} {n}"
                    );
                }
            }
        }
    }
}

fn responses(m: &Metrics, out: &mut String) {
    header(
        out,
        "coredns_dns_responses_total",
        "counter",
        "Counter of response status codes.",
    );
    for (s, source) in Source::ALL.iter().enumerate() {
        for (r, rcode) in RCODES.iter().enumerate() {
            let n: u64 = m
                .shards
                .iter()
                .map(|sh| sh.responses[s][r].load(Ordering::Relaxed))
                .sum();
            if n > 0 {
                let plugin = source.label();
                let _ = writeln!(
                    out,
                    "coredns_dns_responses_total{{{LABELS},rcode=\"{rcode}\",plugin=\"{plugin}\"}} {n}"
                );
            }
        }
    }
}

fn durations(m: &Metrics, out: &mut String) {
    let name = "coredns_dns_request_duration_seconds";
    header(
        out,
        name,
        "histogram",
        "Histogram of the time (in seconds) each request took.",
    );
    for slot in 0..TYPE_SLOTS {
        let mut snap = Snapshot::empty();
        for shard in m.shards.iter() {
            shard.duration[slot].add_to(&mut snap);
        }
        if snap.count > 0 {
            let labels = format!("{LABELS},type=\"{}\"", type_name(slot));
            histogram(out, name, &labels, &snap);
        }
    }
}

fn histogram(out: &mut String, name: &str, labels: &str, snap: &Snapshot) {
    let (sep, braced) = match labels {
        "" => ("", String::new()),
        l => (",", format!("{{{l}}}")),
    };
    for (bound, n) in &snap.cumulative {
        let _ = writeln!(out, "{name}_bucket{{{labels}{sep}le=\"{bound}\"}} {n}");
    }
    let _ = writeln!(
        out,
        "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {}",
        snap.count
    );
    let _ = writeln!(out, "{name}_sum{braced} {}", snap.sum_seconds);
    let _ = writeln!(out, "{name}_count{braced} {}", snap.count);
}

fn cache(m: &Metrics, out: &mut String) {
    header(
        out,
        "coredns_cache_hits_total",
        "counter",
        "The count of cache hits.",
    );
    for (i, kind) in ["success", "denial"].iter().enumerate() {
        let n: u64 = m
            .shards
            .iter()
            .map(|s| s.cache_hits[i].load(Ordering::Relaxed))
            .sum();
        let _ = writeln!(
            out,
            "coredns_cache_hits_total{{server=\"dns://:53\",type=\"{kind}\",zones=\".\"}} {n}"
        );
    }
    let misses = m.forward.cache_misses.load(Ordering::Relaxed);
    header(
        out,
        "coredns_cache_misses_total",
        "counter",
        "The count of cache misses.",
    );
    let _ = writeln!(
        out,
        "coredns_cache_misses_total{{server=\"dns://:53\",zones=\".\"}} {misses}"
    );
    let upstream = m.forward.upstream_queries.load(Ordering::Relaxed);
    header(
        out,
        "nodenet_dns_upstream_queries_total",
        "counter",
        "Queries sent to upstream resolvers (after cache and deduplication).",
    );
    let _ = writeln!(out, "nodenet_dns_upstream_queries_total {upstream}");
}

fn sync(m: &Metrics, out: &mut String) {
    let name = "nodenet_dns_sync_latency_seconds";
    header(
        out,
        name,
        "histogram",
        "Time from a watch event to the record table built from it being served.",
    );
    let snap = m.sync_latency.snapshot();
    histogram(out, name, "", &snap);
    header(
        out,
        "nodenet_dns_services",
        "gauge",
        "Services in the served record table.",
    );
    let services = m.services.load(Ordering::Relaxed);
    let _ = writeln!(out, "nodenet_dns_services {services}");
}
