//! A sharded copy-on-write map: cloning it copies only the shard pointers,
//! and a write copies the one shard it touches. This is what lets one
//! Service change publish a new table without copying the whole table.

use std::borrow::Borrow;
use std::hash::{BuildHasher, Hash};
use std::sync::Arc;

use super::{NameHasher, NameMap};

#[derive(Debug)]
pub(crate) struct CowMap<K, V> {
    hasher: NameHasher,
    shards: Box<[Arc<NameMap<K, V>>]>,
}

impl<K, V> Clone for CowMap<K, V> {
    fn clone(&self) -> Self {
        CowMap {
            hasher: self.hasher.clone(),
            shards: self.shards.clone(),
        }
    }
}

impl<K: Hash + Eq + Clone, V: Clone> CowMap<K, V> {
    /// An empty map with `shards` shards (a power of two keeps the pick cheap).
    pub(crate) fn new(shards: usize) -> Self {
        let hasher = NameHasher::default();
        let shards = (0..shards.max(1))
            .map(|_| Arc::new(NameMap::with_hasher(hasher.clone())))
            .collect();
        CowMap { hasher, shards }
    }

    fn shard_of<Q: Hash + ?Sized>(&self, key: &Q) -> usize {
        // Bits 32.. are used by neither the bucket index (low bits) nor
        // the control tag (top 7 bits) of small and medium tables.
        let hash = self.hasher.hash_one(key);
        ((hash >> 32) as usize) % self.shards.len()
    }

    pub(crate) fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.shards[self.shard_of(key)].get(key)
    }

    pub(crate) fn insert(&mut self, key: K, value: V) {
        let shard = self.shard_of(&key);
        Arc::make_mut(&mut self.shards[shard]).insert(key, value);
    }

    pub(crate) fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let shard = self.shard_of(key);
        if !self.shards[shard].contains_key(key) {
            return None;
        }
        Arc::make_mut(&mut self.shards[shard]).remove(key)
    }

    pub(crate) fn keys(&self) -> impl Iterator<Item = &K> {
        self.shards.iter().flat_map(|s| s.keys())
    }

    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| s.len()).sum()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.shards.iter().all(|s| s.is_empty())
    }

    /// How many shards `self` and `other` share (tests check that a small
    /// change leaves most of the table shared).
    #[cfg(test)]
    pub(crate) fn shared_shards(&self, other: &Self) -> usize {
        self.shards
            .iter()
            .zip(other.shards.iter())
            .filter(|(a, b)| Arc::ptr_eq(a, b))
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_copies_one_shard_and_leaves_the_clone_untouched() {
        let mut map: CowMap<String, u32> = CowMap::new(16);
        for i in 0..1000 {
            map.insert(format!("k{i}"), i);
        }
        let before = map.clone();
        map.insert("k5".into(), 55);
        assert_eq!(before.get("k5"), Some(&5));
        assert_eq!(map.get("k5"), Some(&55));
        assert_eq!(map.shared_shards(&before), 15);
        assert_eq!(map.remove("k5"), Some(55));
        assert_eq!(map.remove("nope"), None);
        assert_eq!(map.len(), 999);
    }
}
