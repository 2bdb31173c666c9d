//! Prometheus metrics with CoreDNS's names where they mean the same thing,
//! so dashboards built for K3s's CoreDNS keep working.
//!
//! The hot path only does relaxed atomic adds on counters sharded by
//! listener socket (each shard on its own cache lines), no locks and no
//! allocation; `render_metrics` sums the shards. Labels follow K3s's single
//! `.:53` server block: `server="dns://:53"`, `zone="."`.

mod histogram;
mod render;

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::forward::ForwardStats;
use crate::records::rtype;
pub use histogram::{DURATION_BUCKETS, Histogram, SYNC_BUCKETS};

/// Counter shards (listener sockets map onto them round-robin).
const SHARDS: usize = 8;

/// Query types with their own label value; everything else is "other"
/// (CoreDNS keeps a similar fixed list so label cardinality stays bounded).
pub const TYPES: [(u16, &str); 11] = [
    (rtype::A, "A"),
    (rtype::AAAA, "AAAA"),
    (rtype::CNAME, "CNAME"),
    (15, "MX"),
    (rtype::NS, "NS"),
    (rtype::PTR, "PTR"),
    (rtype::SOA, "SOA"),
    (rtype::SRV, "SRV"),
    (rtype::TXT, "TXT"),
    (65, "HTTPS"),
    (255, "ANY"),
];
const TYPE_SLOTS: usize = TYPES.len() + 1;

/// Response codes 0..=15 by name (RFC 6895); 16 stands for any extended one.
pub const RCODES: [&str; 17] = [
    "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "YXDOMAIN", "YXRRSET",
    "NXRRSET", "NOTAUTH", "NOTZONE", "RCODE11", "RCODE12", "RCODE13", "RCODE14", "RCODE15",
    "BADVERS",
];

/// Which part of the server wrote a response (CoreDNS's `plugin` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Answered from the cluster table (also NXDOMAIN/NODATA in zone).
    Kubernetes,
    /// Answered from the forwarder's cache.
    Cache,
    /// Answered after asking an upstream.
    Forward,
    /// Rejected before any of them (FORMERR, REFUSED, ...).
    Server,
}

impl Source {
    const ALL: [Source; 4] = [
        Source::Kubernetes,
        Source::Cache,
        Source::Forward,
        Source::Server,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Source::Kubernetes => "kubernetes",
            Source::Cache => "cache",
            Source::Forward => "forward",
            Source::Server => "",
        }
    }
}

/// Transport and address family of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin {
    pub tcp: bool,
    pub v6: bool,
    /// Which counter shard to use (the listener socket's index).
    pub shard: usize,
}

impl Origin {
    pub fn new(tcp: bool, peer: IpAddr, shard: usize) -> Origin {
        let v6 = match peer {
            IpAddr::V4(_) => false,
            IpAddr::V6(a) => a.to_ipv4_mapped().is_none(),
        };
        Origin { tcp, v6, shard }
    }
}

/// One shard of the per-request counters.
#[repr(align(128))]
struct Shard {
    /// [proto][family][type]
    requests: [[[AtomicU64; TYPE_SLOTS]; 2]; 2],
    /// [source][rcode]
    responses: [[AtomicU64; RCODES.len()]; 4],
    /// Per type.
    duration: [Histogram<{ DURATION_BUCKETS.len() }>; TYPE_SLOTS],
    cache_hits: [AtomicU64; 2],
}

impl Shard {
    fn new() -> Shard {
        Shard {
            requests: Default::default(),
            responses: Default::default(),
            duration: std::array::from_fn(|_| Histogram::new(&DURATION_BUCKETS)),
            cache_hits: Default::default(),
        }
    }
}

/// All DNS metrics of one component; outlives component restarts.
pub struct Metrics {
    shards: Box<[Shard]>,
    /// Watch event to table published.
    sync_latency: Histogram<{ SYNC_BUCKETS.len() }>,
    services: AtomicU64,
    /// Shared with every forwarder this component builds, so cache
    /// misses and upstream queries survive restarts.
    forward: Arc<ForwardStats>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

fn type_slot(qtype: u16) -> usize {
    TYPES
        .iter()
        .position(|(t, _)| *t == qtype)
        .unwrap_or(TYPES.len())
}

impl Metrics {
    pub fn new() -> Metrics {
        Metrics {
            shards: (0..SHARDS).map(|_| Shard::new()).collect(),
            sync_latency: Histogram::new(&SYNC_BUCKETS),
            services: AtomicU64::new(0),
            forward: Arc::default(),
        }
    }

    fn shard(&self, origin: Origin) -> &Shard {
        &self.shards[origin.shard % SHARDS]
    }

    /// A parsed query and the response written for it (`response` is
    /// the message bytes; its rcode is read from the header).
    pub fn observe(
        &self,
        origin: Origin,
        qtype: u16,
        response: &[u8],
        source: Source,
        started: Instant,
    ) {
        let shard = self.shard(origin);
        let slot = type_slot(qtype);
        shard.requests[origin.tcp as usize][origin.v6 as usize][slot]
            .fetch_add(1, Ordering::Relaxed);
        self.count_response(shard, response, source);
        shard.duration[slot].observe(started.elapsed());
    }

    /// A response to a message that was not a usable query.
    pub fn observe_rejected(&self, origin: Origin, response: &[u8]) {
        self.count_response(self.shard(origin), response, Source::Server);
    }

    fn count_response(&self, shard: &Shard, response: &[u8], source: Source) {
        let rcode = response.get(3).map_or(0, |b| (b & 0x0F) as usize);
        let src = Source::ALL.iter().position(|s| *s == source).unwrap_or(3);
        shard.responses[src][rcode].fetch_add(1, Ordering::Relaxed);
    }

    /// A forwarded question answered from the cache; `negative` for
    /// NXDOMAIN/NODATA (CoreDNS's `type="denial"`).
    pub fn cache_hit(&self, origin: Origin, negative: bool) {
        self.shard(origin).cache_hits[negative as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// The time from a watch event to the table built from it being served.
    pub fn sync_latency(&self, latency: Duration) {
        self.sync_latency.observe(latency);
    }

    /// Services in the published table.
    pub fn set_services(&self, count: usize) {
        self.services.store(count as u64, Ordering::Relaxed);
    }

    /// The forwarder counters (cache misses, upstream queries) to hand
    /// to `Forwarder::with_stats`.
    pub fn forward_stats(&self) -> Arc<ForwardStats> {
        self.forward.clone()
    }

    /// Appends every metric in Prometheus text format (0.0.4).
    pub fn render_metrics(&self, out: &mut String) {
        render::all(self, out);
    }
}

#[cfg(test)]
mod tests;
