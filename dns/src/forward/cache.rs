//! A bounded answer cache, sharded to keep lock hold times short.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::cached::Cached;

const SHARDS: usize = 16;

type Shard = Mutex<HashMap<Box<[u8]>, Arc<Cached>, Hasher>>;
/// Seeded per process (keys are names from the wire), cheaper than SipHash.
type Hasher = foldhash::fast::RandomState;

/// Keyed by the lower-case question (name, type, class in wire form).
pub struct Cache {
    hasher: Hasher,
    per_shard: usize,
    shards: Vec<Shard>,
}

impl Cache {
    /// A cache of at most about `capacity` entries (0 disables it).
    pub fn new(capacity: usize) -> Cache {
        Cache {
            hasher: Hasher::default(),
            per_shard: capacity.div_ceil(SHARDS),
            shards: (0..SHARDS)
                .map(|_| Mutex::new(HashMap::default()))
                .collect(),
        }
    }

    fn shard(&self, key: &[u8]) -> &Shard {
        &self.shards[(self.hasher.hash_one(key) as usize) % SHARDS]
    }

    /// A live entry for `key`; expired entries are dropped on the way.
    pub fn get(&self, key: &[u8]) -> Option<Arc<Cached>> {
        let mut shard = self.shard(key).lock().unwrap_or_else(|e| e.into_inner());
        let entry = shard.get(key)?;
        if entry.is_expired(Instant::now()) {
            shard.remove(key);
            return None;
        }
        Some(entry.clone())
    }

    /// Stores `answer` if it may be cached. A full shard first drops its
    /// expired entries, then an arbitrary one.
    pub fn insert(&self, key: &[u8], answer: Arc<Cached>) {
        if answer.lifetime == 0 || self.per_shard == 0 {
            return;
        }
        let mut shard = self.shard(key).lock().unwrap_or_else(|e| e.into_inner());
        if shard.len() >= self.per_shard && !shard.contains_key(key) {
            let now = Instant::now();
            shard.retain(|_, v| !v.is_expired(now));
            if shard.len() >= self.per_shard
                && let Some(victim) = shard.keys().next().cloned()
            {
                shard.remove(&victim);
            }
        }
        shard.insert(key.into(), answer);
    }

    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).len())
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
