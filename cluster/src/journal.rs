//! Which objects of one type changed: for a component that rebuilds only
//! what changed instead of comparing every stored object on every wake.
//!
//! The reflector records each applied or deleted object's reference after
//! the store has it (so a reader that sees a reference finds the store at
//! least that new) and before the change signal fires. A relist swaps the
//! whole store and is recorded as "everything". The log is bounded: a
//! reader that falls more than `CAPACITY` changes behind is told
//! "everything" and re-reads the store, which is what it would do anyway
//! for a burst that large. Nothing is recorded until a reader asks for a
//! cursor, so types no one reads this way pay nothing.

use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;

use kube::Resource;
use kube::runtime::reflector::ObjectRef;

/// Changes kept for readers that have not caught up yet.
pub const CAPACITY: usize = 1024;

/// What changed since a reader last looked.
#[derive(Debug, PartialEq, Eq)]
pub enum Changed<K: Resource<DynamicType = ()>> {
    /// These objects were applied or deleted (each once, in no order).
    Objects(Vec<ObjectRef<K>>),
    /// The store was replaced (a relist) or the reader fell behind: any
    /// object may have changed.
    Everything,
}

impl<K: Resource<DynamicType = ()>> Changed<K> {
    pub fn is_empty(&self) -> bool {
        matches!(self, Changed::Objects(list) if list.is_empty())
    }
}

/// A reader's position in a journal.
#[derive(Debug)]
pub struct Cursor(u64);

enum Entry<K: Resource<DynamicType = ()>> {
    Object(ObjectRef<K>),
    Everything,
}

struct Log<K: Resource<DynamicType = ()>> {
    /// Set by the first `cursor()`: nothing is recorded before.
    read: bool,
    /// Sequence number of `entries[0]`.
    start: u64,
    entries: VecDeque<Entry<K>>,
}

/// The change log of one reflected type.
pub struct Journal<K: Resource<DynamicType = ()>> {
    log: Mutex<Log<K>>,
}

impl<K: Resource<DynamicType = ()>> Default for Journal<K> {
    fn default() -> Self {
        Journal {
            log: Mutex::new(Log {
                read: false,
                start: 0,
                entries: VecDeque::new(),
            }),
        }
    }
}

/// The store key of `obj`, without the resource version and uid the
/// store does not compare (less to keep per entry).
pub fn key_of<K: Resource<DynamicType = ()>>(obj: &K) -> ObjectRef<K> {
    let meta = obj.meta();
    let key = ObjectRef::new(meta.name.as_deref().unwrap_or_default());
    match meta.namespace.as_deref() {
        Some(ns) => key.within(ns),
        None => key,
    }
}

impl<K: Resource<DynamicType = ()>> Journal<K> {
    fn lock(&self) -> std::sync::MutexGuard<'_, Log<K>> {
        self.log.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn push(&self, entry: Entry<K>) {
        let mut log = self.lock();
        if !log.read {
            return;
        }
        if log.entries.len() >= CAPACITY {
            log.entries.pop_front();
            log.start += 1;
        }
        log.entries.push_back(entry);
    }

    /// Records that `obj` was applied or deleted.
    #[cfg(test)]
    pub(crate) fn changed(&self, obj: &K) {
        self.changed_key(key_of(obj));
    }

    /// Records that the object `key` names was applied or deleted.
    pub(crate) fn changed_key(&self, key: ObjectRef<K>) {
        self.push(Entry::Object(key));
    }

    /// Records that the whole store was replaced.
    pub(crate) fn replaced(&self) {
        self.push(Entry::Everything);
    }

    /// A cursor after every change recorded so far: read the store after
    /// taking it, and `since` reports what changed after that read.
    pub fn cursor(&self) -> Cursor {
        let mut log = self.lock();
        log.read = true;
        Cursor(log.start + log.entries.len() as u64)
    }

    /// What changed since `cursor`, which moves past it.
    pub fn since(&self, cursor: &mut Cursor) -> Changed<K> {
        let log = self.lock();
        let end = log.start + log.entries.len() as u64;
        let from = cursor.0;
        cursor.0 = end;
        let Some(skip) = from.checked_sub(log.start) else {
            return Changed::Everything;
        };
        let mut seen = HashSet::new();
        let mut objects = Vec::new();
        for entry in log.entries.iter().skip(skip as usize) {
            match entry {
                Entry::Everything => return Changed::Everything,
                Entry::Object(key) if seen.insert(key) => objects.push(key.clone()),
                Entry::Object(_) => {}
            }
        }
        Changed::Objects(objects)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Node;
    use kube::api::ObjectMeta;

    fn node(name: &str) -> Node {
        Node {
            metadata: ObjectMeta {
                name: Some(name.into()),
                resource_version: Some("7".into()),
                ..ObjectMeta::default()
            },
            ..Node::default()
        }
    }

    fn names(changed: Changed<Node>) -> Vec<String> {
        let Changed::Objects(list) = changed else {
            panic!("expected objects, got everything");
        };
        let mut names: Vec<String> = list.into_iter().map(|r| r.name).collect();
        names.sort();
        names
    }

    #[test]
    fn nothing_is_recorded_before_a_reader_exists() {
        let journal = Journal::<Node>::default();
        journal.changed(&node("a"));
        let mut cursor = journal.cursor();
        assert!(journal.since(&mut cursor).is_empty());
        assert_eq!(journal.lock().entries.len(), 0);
    }

    #[test]
    fn a_reader_sees_each_changed_object_once() {
        let journal = Journal::<Node>::default();
        let mut cursor = journal.cursor();
        for name in ["a", "b", "a"] {
            journal.changed(&node(name));
        }
        assert_eq!(names(journal.since(&mut cursor)), ["a", "b"]);
        assert!(journal.since(&mut cursor).is_empty());
        journal.changed(&node("c"));
        assert_eq!(names(journal.since(&mut cursor)), ["c"]);
    }

    #[test]
    fn two_readers_move_independently() {
        let journal = Journal::<Node>::default();
        let mut early = journal.cursor();
        journal.changed(&node("a"));
        let mut late = journal.cursor();
        journal.changed(&node("b"));
        assert_eq!(names(journal.since(&mut late)), ["b"]);
        assert_eq!(names(journal.since(&mut early)), ["a", "b"]);
    }

    #[test]
    fn a_relist_or_falling_behind_is_everything() {
        let journal = Journal::<Node>::default();
        let mut cursor = journal.cursor();
        journal.changed(&node("a"));
        journal.replaced();
        assert_eq!(journal.since(&mut cursor), Changed::Everything);
        assert!(journal.since(&mut cursor).is_empty());
        for i in 0..=CAPACITY {
            journal.changed(&node(&format!("n{i}")));
        }
        assert_eq!(journal.since(&mut cursor), Changed::Everything);
        assert_eq!(journal.lock().entries.len(), CAPACITY, "bounded");
        journal.changed(&node("z"));
        assert_eq!(names(journal.since(&mut cursor)), ["z"]);
    }
}
