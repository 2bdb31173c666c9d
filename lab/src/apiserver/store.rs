//! The object store: one map under one lock, a global resourceVersion
//! counter, a bounded event history for watches and a broadcast of new events.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{Value, json};
use tokio::sync::broadcast;

use super::ApiServerConfig;
use super::allocate::Allocator;
use super::meta;
use super::resources::{self, ResourceType};
use super::time;

/// Events kept for watches that resume from an older resourceVersion.
pub(crate) const HISTORY_LEN: usize = 4096;
/// Broadcast buffer; a watcher lagging more than this is ended with 410.
const BROADCAST_LEN: usize = 8192;

/// Where an object lives: resource index, namespace ("" when cluster-scoped), name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    pub res: usize,
    pub ns: String,
    pub name: String,
}

impl Key {
    pub fn new(res: &ResourceType, ns: &str, name: &str) -> Self {
        Key {
            res: res.index(),
            ns: if res.namespaced {
                ns.to_string()
            } else {
                String::new()
            },
            name: name.to_string(),
        }
    }

    /// The key of a stored object of type `res`.
    pub fn of(res: &ResourceType, obj: &Value) -> Self {
        Key::new(res, meta::namespace(obj), meta::name(obj))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Added,
    Modified,
    Deleted,
}

/// One change, with the previous state so watchers with selectors can tell
/// "stopped matching" from "changed".
#[derive(Debug)]
pub struct Event {
    pub rv: u64,
    pub kind: EventKind,
    pub res: usize,
    pub object: Value,
    pub old: Option<Value>,
}

/// Past events to replay plus the receiver for the ones after them.
pub type Backlog = (Vec<Arc<Event>>, broadcast::Receiver<Arc<Event>>);

pub struct State {
    objects: BTreeMap<Key, Value>,
    rv: u64,
    history: VecDeque<Arc<Event>>,
    /// Highest rv dropped from `history`; watches from below it get 410.
    evicted_rv: u64,
    pub alloc: Allocator,
    tx: broadcast::Sender<Arc<Event>>,
}

pub struct Store {
    state: Mutex<State>,
}

impl Store {
    pub fn new(config: ApiServerConfig) -> Self {
        let (tx, _) = broadcast::channel(BROADCAST_LEN);
        let mut state = State {
            objects: BTreeMap::new(),
            rv: 0,
            history: VecDeque::new(),
            evicted_rv: 0,
            alloc: Allocator::new(config),
            tx,
        };
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            state.insert_new(resources::namespaces(), initial_namespace(ns));
        }
        Store {
            state: Mutex::new(state),
        }
    }

    /// Locks the store; a panic while locked cannot leave it half-written in a
    /// way later readers must avoid, so poisoning is ignored.
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn initial_namespace(name: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": name, "uid": meta::new_uid(),
                     "creationTimestamp": time::now_rfc3339(),
                     "labels": {"kubernetes.io/metadata.name": name}},
        "spec": {"finalizers": ["kubernetes"]},
        "status": {"phase": "Active"},
    })
}

impl State {
    pub fn rv(&self) -> u64 {
        self.rv
    }

    pub fn get(&self, key: &Key) -> Option<&Value> {
        self.objects.get(key)
    }

    /// Objects of one resource, optionally in one namespace, ordered by (ns, name).
    pub fn list(&self, res: &ResourceType, ns: Option<&str>) -> Vec<&Value> {
        let index = res.index();
        let start = Key {
            res: index,
            ns: ns.unwrap_or("").to_string(),
            name: String::new(),
        };
        self.objects
            .range(start..)
            .take_while(|(k, _)| k.res == index && ns.is_none_or(|n| k.ns == n))
            .map(|(_, v)| v)
            .collect()
    }

    /// All objects of every type, with their resource index.
    pub fn all(&self) -> impl Iterator<Item = (&Key, &Value)> {
        self.objects.iter()
    }

    /// Stores a new object, stamping a fresh resourceVersion; emits ADDED.
    pub fn insert_new(&mut self, res: &ResourceType, obj: Value) -> Value {
        self.write(res, obj, None)
    }

    /// Replaces an object, stamping a fresh resourceVersion; emits MODIFIED.
    pub fn replace(&mut self, res: &ResourceType, obj: Value, old: Value) -> Value {
        self.write(res, obj, Some(old))
    }

    fn write(&mut self, res: &ResourceType, mut obj: Value, old: Option<Value>) -> Value {
        self.rv += 1;
        meta::set(&mut obj, "resourceVersion", json!(self.rv.to_string()));
        self.objects.insert(Key::of(res, &obj), obj.clone());
        let kind = if old.is_some() {
            EventKind::Modified
        } else {
            EventKind::Added
        };
        self.record(res, kind, obj.clone(), old);
        obj
    }

    /// Removes an object, releasing what it allocated; emits DELETED.
    pub fn remove(&mut self, key: &Key) -> Option<Value> {
        let mut obj = self.objects.remove(key)?;
        let res = resources::by_index(key.res)?;
        self.alloc.release(res, &obj);
        self.rv += 1;
        meta::set(&mut obj, "resourceVersion", json!(self.rv.to_string()));
        self.record(res, EventKind::Deleted, obj.clone(), None);
        Some(obj)
    }

    fn record(&mut self, res: &ResourceType, kind: EventKind, object: Value, old: Option<Value>) {
        let event = Arc::new(Event {
            rv: self.rv,
            kind,
            res: res.index(),
            object,
            old,
        });
        if self.history.len() >= HISTORY_LEN
            && let Some(dropped) = self.history.pop_front()
        {
            self.evicted_rv = dropped.rv;
        }
        self.history.push_back(event.clone());
        // No receivers is normal when nobody watches.
        let _ = self.tx.send(event);
    }

    /// Events after `rv` (of any type) and a receiver for later ones, taken
    /// atomically so nothing is missed or duplicated. `None` if `rv` is older
    /// than the history kept.
    pub fn events_since(&self, rv: u64) -> Option<Backlog> {
        if rv < self.evicted_rv {
            return None;
        }
        let past = self.history.iter().filter(|e| e.rv > rv).cloned().collect();
        Some((past, self.tx.subscribe()))
    }

    /// The oldest resourceVersion a watch may still resume from.
    pub fn oldest_rv(&self) -> u64 {
        self.evicted_rv
    }

    /// A receiver for events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.tx.subscribe()
    }
}
