//! A lock-free histogram: one atomic per bucket (not cumulative; summed
//! when rendered), a count and a sum in nanoseconds.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// CoreDNS's request duration buckets: 0.25 ms doubling up to ~8.2 s.
pub const DURATION_BUCKETS: [f64; 16] = [
    0.00025, 0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024,
    2.048, 4.096, 8.192,
];

/// Buckets for the watch-event-to-served latency.
pub const SYNC_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0, 2.5, 10.0,
];

/// Upper bounds in seconds (`bounds`) and one counter per bound plus +Inf.
pub struct Histogram<const N: usize> {
    bounds: &'static [f64; N],
    bounds_ns: [u64; N],
    buckets: [AtomicU64; N],
    inf: AtomicU64,
    sum_ns: AtomicU64,
}

/// A consistent-enough copy for rendering (cumulative counts).
pub struct Snapshot {
    pub cumulative: Vec<(f64, u64)>,
    pub count: u64,
    pub sum_seconds: f64,
}

impl<const N: usize> Histogram<N> {
    pub fn new(bounds: &'static [f64; N]) -> Self {
        Histogram {
            bounds,
            bounds_ns: bounds.map(|b| (b * 1e9) as u64),
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            inf: AtomicU64::new(0),
            sum_ns: AtomicU64::new(0),
        }
    }

    pub fn observe(&self, d: Duration) {
        let ns = d.as_nanos().min(u128::from(u64::MAX)) as u64;
        match self.bounds_ns.iter().position(|b| ns <= *b) {
            Some(i) => self.buckets[i].fetch_add(1, Ordering::Relaxed),
            None => self.inf.fetch_add(1, Ordering::Relaxed),
        };
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }

    /// Adds this histogram's counts into `into` (same bounds).
    pub fn add_to(&self, into: &mut Snapshot) {
        if into.cumulative.is_empty() {
            into.cumulative = self.bounds.iter().map(|b| (*b, 0)).collect();
        }
        let mut running = 0;
        for (i, bucket) in self.buckets.iter().enumerate() {
            running += bucket.load(Ordering::Relaxed);
            into.cumulative[i].1 += running;
        }
        running += self.inf.load(Ordering::Relaxed);
        into.count += running;
        into.sum_seconds += self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9;
    }

    pub fn snapshot(&self) -> Snapshot {
        let mut s = Snapshot::empty();
        self.add_to(&mut s);
        s
    }
}

impl Snapshot {
    pub fn empty() -> Snapshot {
        Snapshot {
            cumulative: Vec::new(),
            count: 0,
            sum_seconds: 0.0,
        }
    }
}
