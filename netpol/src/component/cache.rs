//! Which objects of a store changed since the last look.
//!
//! The reflector store replaces an object's `Arc` whenever a watch event
//! carries a new version, and keeps the same `Arc` otherwise. So an object
//! whose pointer we have seen before is unchanged, and only new pointers
//! need converting: a pass over 10 000 unchanged pods is 10 000 hash
//! lookups, not 10 000 conversions. The cache holds the `Arc`s it has
//! seen, so a pointer cannot be freed and reused for another object while
//! we remember it.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use kube::Resource;

use crate::plan::PodKey;

/// `(namespace, name)`; the namespace is empty for cluster-scoped objects.
pub fn key_of<K: Resource>(obj: &K) -> PodKey {
    let meta = obj.meta();
    let ns = meta.namespace.clone().unwrap_or_default();
    (ns, meta.name.clone().unwrap_or_default())
}

struct Entry<K> {
    key: PodKey,
    seen: u64,
    // Never read: held so the address stays this object's.
    _obj: Arc<K>,
}

/// The objects of one store as last seen (see the module docs).
pub struct StoreCache<K> {
    by_ptr: HashMap<usize, Entry<K>>,
    by_key: HashMap<PodKey, Arc<K>>,
    pass: u64,
}

impl<K: Resource> StoreCache<K> {
    pub fn new() -> Self {
        StoreCache {
            by_ptr: HashMap::new(),
            by_key: HashMap::new(),
            pass: 0,
        }
    }

    /// The object last seen under `key`.
    pub fn get(&self, key: &PodKey) -> Option<&Arc<K>> {
        self.by_key.get(key)
    }

    /// Takes the store's current objects; returns the keys whose object
    /// is new, replaced (`Some`: the current one) or gone (`None`).
    pub fn sync(&mut self, objects: Vec<Arc<K>>) -> BTreeMap<PodKey, Option<Arc<K>>> {
        self.pass += 1;
        let pass = self.pass;
        let mut fresh = Vec::new();
        for obj in objects {
            match self.by_ptr.get_mut(&ptr(&obj)) {
                Some(entry) => entry.seen = pass,
                None => fresh.push(obj),
            }
        }
        let mut changed = BTreeMap::new();
        self.by_ptr.retain(|_, entry| {
            let keep = entry.seen == pass;
            if !keep {
                changed.insert(entry.key.clone(), None);
            }
            keep
        });
        for key in changed.keys() {
            self.by_key.remove(key);
        }
        for obj in fresh {
            let key = key_of(obj.as_ref());
            let entry = Entry {
                key: key.clone(),
                seen: pass,
                _obj: obj.clone(),
            };
            self.by_ptr.insert(ptr(&obj), entry);
            self.by_key.insert(key.clone(), obj.clone());
            changed.insert(key, Some(obj));
        }
        changed
    }
}

fn ptr<K>(obj: &Arc<K>) -> usize {
    Arc::as_ptr(obj) as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Namespace;

    fn ns(name: &str) -> Arc<Namespace> {
        let mut obj = Namespace::default();
        obj.metadata.name = Some(name.into());
        Arc::new(obj)
    }

    #[test]
    fn reports_new_replaced_and_gone_objects_once() {
        let mut cache = StoreCache::new();
        let (a, b) = (ns("a"), ns("b"));
        let first = cache.sync(vec![a.clone(), b.clone()]);
        assert_eq!(first.len(), 2);
        assert!(
            cache.sync(vec![a.clone(), b.clone()]).is_empty(),
            "nothing changed"
        );
        let b2 = ns("b");
        let second = cache.sync(vec![a.clone(), b2.clone()]);
        let key = (String::new(), "b".to_string());
        assert_eq!(second.len(), 1);
        assert!(Arc::ptr_eq(second[&key].as_ref().expect("replaced"), &b2));
        let third = cache.sync(vec![b2.clone()]);
        assert_eq!(
            third.into_iter().collect::<Vec<_>>(),
            [((String::new(), "a".to_string()), None)]
        );
        assert!(cache.get(&(String::new(), "a".into())).is_none());
        assert!(cache.get(&key).is_some());
    }
}
