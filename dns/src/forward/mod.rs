//! Forwarding names outside the cluster zone to the node's upstream
//! resolvers, with a positive and negative cache, deduplication of
//! identical in-flight questions and a bound on concurrent work.

mod cache;
mod cached;
pub mod resolv;
mod upstream;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Semaphore, oneshot};

pub use cache::Cache;
pub use cached::{Cached, ChasedRecord, DecodeError, TtlPolicy};
pub use upstream::ExchangeError;

use crate::wire::Query;

/// Forwarder settings.
#[derive(Debug, Clone)]
pub struct ForwardConfig {
    /// Upstream servers, tried in turn (starting point rotates).
    pub upstreams: Vec<SocketAddr>,
    /// Time allowed for one upstream exchange.
    pub timeout: Duration,
    /// Cache entries (positive and negative together); 0 disables.
    pub cache_size: usize,
    /// Forwarded questions handled at once; more get SERVFAIL.
    pub max_concurrent: usize,
    pub ttl: TtlPolicy,
}

impl Default for ForwardConfig {
    fn default() -> Self {
        ForwardConfig {
            upstreams: Vec::new(),
            timeout: Duration::from_secs(2),
            cache_size: 10_000,
            max_concurrent: 1000,
            ttl: TtlPolicy {
                max_positive: 3600,
                max_negative: 300,
            },
        }
    }
}

/// Why a question could not be forwarded.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ForwardError {
    /// Too many forwarded questions in flight.
    #[error("too many forwarded queries in flight")]
    Overloaded,
    /// No upstream gave a usable answer; the last failure.
    #[error("no upstream answered: {0}")]
    Failed(String),
}

/// Counters for metrics and tests.
#[derive(Debug, Default)]
pub struct ForwardStats {
    pub upstream_queries: AtomicU64,
    pub cache_hits: AtomicU64,
    pub cache_misses: AtomicU64,
}

type Waiters = Vec<oneshot::Sender<Result<Arc<Cached>, ForwardError>>>;

/// The forwarder shared by all listeners.
pub struct Forwarder {
    config: ForwardConfig,
    cache: Cache,
    inflight: Mutex<HashMap<Box<[u8]>, Waiters>>,
    permits: Semaphore,
    next: AtomicUsize,
    pub stats: Arc<ForwardStats>,
}

/// The cache key of a query: its lower-case name, type and class.
pub fn cache_key(q: &Query) -> ([u8; 259], usize) {
    let wire = q.name().wire();
    let mut key = [0u8; 259];
    key[..wire.len()].copy_from_slice(wire);
    key[wire.len()..wire.len() + 2].copy_from_slice(&q.qtype.to_be_bytes());
    key[wire.len() + 2..wire.len() + 4].copy_from_slice(&q.qclass.to_be_bytes());
    (key, wire.len() + 4)
}

impl Forwarder {
    pub fn new(config: ForwardConfig) -> Forwarder {
        Forwarder::with_stats(config, Arc::default())
    }

    /// A forwarder counting into `stats` (kept across component restarts).
    pub fn with_stats(config: ForwardConfig, stats: Arc<ForwardStats>) -> Forwarder {
        Forwarder {
            cache: Cache::new(config.cache_size),
            permits: Semaphore::new(config.max_concurrent),
            inflight: Mutex::default(),
            next: AtomicUsize::new(0),
            stats,
            config,
        }
    }

    pub fn upstreams(&self) -> &[SocketAddr] {
        &self.config.upstreams
    }

    pub fn cache(&self) -> &Cache {
        &self.cache
    }

    /// A cached answer for `q`, without waiting (the hot path).
    pub fn cached(&self, q: &Query) -> Option<Arc<Cached>> {
        let (key, len) = cache_key(q);
        self.cached_question(&key[..len])
    }

    /// A cached answer for `question` (lower-case name, type and class in
    /// wire form, which is also the cache key), without waiting.
    pub fn cached_question(&self, question: &[u8]) -> Option<Arc<Cached>> {
        let hit = self.cache.get(question);
        let counter = if hit.is_some() {
            &self.stats.cache_hits
        } else {
            &self.stats.cache_misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        hit
    }

    /// Answers `q` through the cache or the upstreams.
    pub async fn resolve(&self, q: &Query) -> Result<Arc<Cached>, ForwardError> {
        let (key, len) = cache_key(q);
        self.resolve_question(&key[..len]).await
    }

    /// Answers `question` (see [`Forwarder::cached_question`]) through the
    /// cache or the upstreams.
    pub async fn resolve_question(&self, question: &[u8]) -> Result<Arc<Cached>, ForwardError> {
        let _permit = self
            .permits
            .try_acquire()
            .map_err(|_| ForwardError::Overloaded)?;
        let key = question;
        if let Some(hit) = self.cache.get(key) {
            return Ok(hit);
        }
        let waiter = {
            let mut inflight = self.inflight.lock().unwrap_or_else(|e| e.into_inner());
            match inflight.get_mut(key) {
                Some(waiters) => {
                    let (tx, rx) = oneshot::channel();
                    waiters.push(tx);
                    Some(rx)
                }
                None => {
                    inflight.insert(key.into(), Vec::new());
                    None
                }
            }
        };
        if let Some(rx) = waiter {
            return rx
                .await
                .unwrap_or_else(|_| Err(ForwardError::Failed("leader dropped".into())));
        }
        // We lead: if this future is dropped, the guard still wakes waiters.
        let guard = Leader { fwd: self, key };
        let result = self.ask_upstreams(key).await;
        if let Ok(answer) = &result {
            self.cache.insert(key, answer.clone());
        }
        guard.finish(result.clone());
        result
    }

    async fn ask_upstreams(&self, question: &[u8]) -> Result<Arc<Cached>, ForwardError> {
        let upstreams = &self.config.upstreams;
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let mut last = ForwardError::Failed("no upstream configured".into());
        let mut fallback = None;
        for i in 0..upstreams.len() {
            let upstream = upstreams[(start + i) % upstreams.len()];
            match self.ask_one(upstream, question).await {
                // SERVFAIL or REFUSED: another upstream may do better.
                Ok(answer) if answer.rcode == 2 || answer.rcode == 5 => fallback = Some(answer),
                Ok(answer) => return Ok(answer),
                Err(e) => last = e,
            }
        }
        fallback.ok_or(last)
    }

    async fn ask_one(
        &self,
        upstream: SocketAddr,
        question: &[u8],
    ) -> Result<Arc<Cached>, ForwardError> {
        self.stats.upstream_queries.fetch_add(1, Ordering::Relaxed);
        let query = upstream::build_query(rand::random(), question);
        let answer = upstream::exchange(upstream, &query, self.config.timeout)
            .await
            .map_err(|e| ForwardError::Failed(e.to_string()))?;
        let cached = Cached::decode(&answer, question, self.config.ttl)
            .map_err(|e| ForwardError::Failed(format!("{upstream}: {e}")))?;
        Ok(Arc::new(cached))
    }
}

/// Removes the in-flight entry and wakes the waiters, also when the
/// leading future is cancelled.
struct Leader<'a> {
    fwd: &'a Forwarder,
    key: &'a [u8],
}

impl Leader<'_> {
    fn finish(self, result: Result<Arc<Cached>, ForwardError>) {
        self.wake(result);
        std::mem::forget(self);
    }

    fn wake(&self, result: Result<Arc<Cached>, ForwardError>) {
        let waiters = {
            let mut inflight = self.fwd.inflight.lock().unwrap_or_else(|e| e.into_inner());
            inflight.remove(self.key).unwrap_or_default()
        };
        for w in waiters {
            let _ = w.send(result.clone());
        }
    }
}

impl Drop for Leader<'_> {
    fn drop(&mut self) {
        self.wake(Err(ForwardError::Failed("query cancelled".into())));
    }
}
