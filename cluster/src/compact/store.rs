//! The store of the compact kinds: a set of the objects themselves, looked
//! up by the namespace and name each object holds. Per object that is one
//! 8-byte slot (plus the table's spare room), where kube-runtime's store
//! keeps a 96-byte `ObjectRef` with its own copies of both strings.

use std::borrow::Borrow;
use std::collections::HashSet;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, RwLock};

use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;

use crate::store::Apply;

/// A compact kind's identity, as the store keys it.
pub trait Named {
    /// Empty when absent.
    fn namespace(&self) -> &str;
    fn name(&self) -> &str;
}

/// Something with a store key; lets the set be searched by a borrowed
/// `(namespace, name)` without building an entry.
trait Key {
    fn key(&self) -> (&str, &str);
}

impl Key for (&str, &str) {
    fn key(&self) -> (&str, &str) {
        *self
    }
}

impl Hash for dyn Key + '_ {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.key().hash(state);
    }
}

impl PartialEq for dyn Key + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl Eq for dyn Key + '_ {}

/// One stored object; equal and hashed by its key (as `dyn Key` is, which
/// `Borrow` requires).
struct Entry<K>(Arc<K>);

impl<K: Named> Key for Entry<K> {
    fn key(&self) -> (&str, &str) {
        (self.0.namespace(), self.0.name())
    }
}

impl<K: Named> Hash for Entry<K> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.key().hash(state);
    }
}

impl<K: Named> PartialEq for Entry<K> {
    fn eq(&self, other: &Self) -> bool {
        self.key() == other.key()
    }
}

impl<K: Named> Eq for Entry<K> {}

impl<'a, K: Named + 'a> Borrow<dyn Key + 'a> for Entry<K> {
    fn borrow(&self) -> &(dyn Key + 'a) {
        self
    }
}

type Set<K> = HashSet<Entry<K>>;

/// The objects of one compact kind (cheap to clone: all clones read the
/// same set).
pub struct Objects<K> {
    set: Arc<RwLock<Set<K>>>,
}

impl<K> Clone for Objects<K> {
    fn clone(&self) -> Self {
        Objects {
            set: self.set.clone(),
        }
    }
}

impl<K: Named> Objects<K> {
    /// An empty store and the writer that fills it.
    pub fn new() -> (Objects<K>, ObjectsWriter<K>) {
        let set = Arc::new(RwLock::new(HashSet::new()));
        let writer = ObjectsWriter {
            set: set.clone(),
            relist: None,
        };
        (Objects { set }, writer)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Set<K>> {
        self.set.read().unwrap_or_else(|e| e.into_inner())
    }

    /// The object `namespace/name`.
    pub fn get_named(&self, namespace: &str, name: &str) -> Option<Arc<K>> {
        let key: &dyn Key = &(namespace, name);
        self.read().get(key).map(|e| e.0.clone())
    }

    /// The object a journal or a caller names (no namespace: empty).
    pub fn get(&self, key: &ObjectRef<K>) -> Option<Arc<K>>
    where
        K: kube::Resource<DynamicType = ()>,
    {
        self.get_named(key.namespace.as_deref().unwrap_or_default(), &key.name)
    }

    /// Every object, in no order.
    pub fn state(&self) -> Vec<Arc<K>> {
        self.read().iter().map(|e| e.0.clone()).collect()
    }

    pub fn len(&self) -> usize {
        self.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Applies watch events to an `Objects`, moving each object in.
pub struct ObjectsWriter<K> {
    set: Arc<RwLock<Set<K>>>,
    /// The list in progress (from `Init` to `InitDone`).
    relist: Option<Set<K>>,
}

impl<K: Named> ObjectsWriter<K> {
    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Set<K>> {
        self.set.write().unwrap_or_else(|e| e.into_inner())
    }
}

impl<K: Named> Apply<K> for ObjectsWriter<K> {
    fn apply(&mut self, event: watcher::Event<K>) {
        match event {
            watcher::Event::Init => self.relist = Some(HashSet::new()),
            watcher::Event::InitApply(obj) => {
                self.relist
                    .get_or_insert_with(HashSet::new)
                    .replace(Entry(Arc::new(obj)));
            }
            watcher::Event::InitDone => {
                *self.write() = self.relist.take().unwrap_or_default();
            }
            watcher::Event::Apply(obj) => {
                self.write().replace(Entry(Arc::new(obj)));
            }
            watcher::Event::Delete(obj) => {
                let key: &dyn Key = &(obj.namespace(), obj.name());
                self.write().remove(key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compact::{Service, ServiceSpec};

    fn svc(ns: &str, name: &str, port: i32) -> Service {
        let port = crate::compact::ServicePort {
            name: None,
            port,
            protocol: None,
        };
        let spec = ServiceSpec {
            ports: vec![port].into(),
            ..ServiceSpec::default()
        };
        Service::new(ns, name, spec)
    }

    fn port(store: &Objects<Service>, ns: &str, name: &str) -> Option<i32> {
        store.get_named(ns, name).map(|s| s.spec.ports[0].port)
    }

    #[test]
    fn objects_are_found_by_namespace_and_name() {
        let (store, mut writer) = Objects::new();
        writer.apply(watcher::Event::Init);
        writer.apply(watcher::Event::InitApply(svc("a", "web", 80)));
        writer.apply(watcher::Event::InitApply(svc("b", "web", 81)));
        writer.apply(watcher::Event::InitDone);
        assert_eq!(port(&store, "a", "web"), Some(80));
        assert_eq!(port(&store, "b", "web"), Some(81));
        assert_eq!(port(&store, "a", "b"), None);
        let key = ObjectRef::new("web").within("b");
        assert_eq!(store.get(&key).map(|s| s.spec.ports[0].port), Some(81));
        assert_eq!(store.len(), 2);
    }

    #[test]
    fn applies_replace_and_deletes_remove() {
        let (store, mut writer) = Objects::new();
        writer.apply(watcher::Event::Apply(svc("a", "web", 80)));
        writer.apply(watcher::Event::Apply(svc("a", "web", 8080)));
        assert_eq!(port(&store, "a", "web"), Some(8080));
        assert_eq!(store.state().len(), 1);
        // A delete names the object; its other fields do not matter.
        writer.apply(watcher::Event::Delete(svc("a", "web", 1)));
        assert!(store.is_empty());
    }

    /// A relist is seen whole at its end: until then readers keep the
    /// old contents, after it objects missing from the list are gone.
    #[test]
    fn a_relist_replaces_the_contents_at_its_end() {
        let (store, mut writer) = Objects::new();
        writer.apply(watcher::Event::Apply(svc("a", "old", 80)));
        writer.apply(watcher::Event::Init);
        writer.apply(watcher::Event::InitApply(svc("a", "new", 81)));
        assert_eq!(port(&store, "a", "old"), Some(80));
        assert_eq!(port(&store, "a", "new"), None);
        writer.apply(watcher::Event::InitDone);
        assert_eq!(port(&store, "a", "old"), None);
        assert_eq!(port(&store, "a", "new"), Some(81));
        assert_eq!(store.len(), 1);
    }
}
