//! Shared reflectors: each resource type is listed and watched once per
//! process, however many components read it.
//!
//! `Reflectors::shared::<K>()` starts the watch for `K` on first use and hands
//! every caller the same store plus a coalescing change signal. The store
//! is the kind's (`Kept`: kube-runtime's `Store`, or `compact::Objects` for
//! the compact kinds); readiness is announced only after the first full
//! list (a relist swaps the whole contents at its end), so a
//! component that waits for readiness never plans from a partial view. A
//! watch that fails is retried with kube-runtime's default backoff; the store
//! keeps its last contents meanwhile (the dataplane keeps its last state).
//! Objects are trimmed to what the components read before they are stored
//! (see `trim`): the stores hold every object of a type for the life of
//! the process.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{Stream, StreamExt};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::changes::Changes;
use crate::journal::{Journal, key_of};
use crate::store::{Apply, Kept};
use crate::trim::Trim;

/// How long a change signal waits for a burst to settle before waking.
/// Short, because it is added to every event's path to the dataplane (a
/// new peer's route, a DNS name): 100 ms put one-node overlay convergence
/// and DNS event-to-served latency over their 100 ms goals. Every pass is
/// diff-based, so a burst split over two passes costs little.
pub const DEFAULT_SETTLE: Duration = Duration::from_millis(20);

/// The bounds a resource type needs to be reflected.
pub trait Reflected:
    Resource<DynamicType = ()> + Trim + Kept + Clone + DeserializeOwned + Debug + Send + Sync + 'static
{
}
impl<K> Reflected for K where
    K: Resource<DynamicType = ()>
        + Trim
        + Kept
        + Clone
        + DeserializeOwned
        + Debug
        + Send
        + Sync
        + 'static
{
}

/// One reflected type as handed to a component: the store and its changes.
#[derive(Clone)]
pub struct Shared<K: Reflected> {
    store: K::Store,
    changed: watch::Receiver<u64>,
    ready: watch::Receiver<bool>,
    settle: Duration,
    journal: Arc<Journal<K>>,
}

/// The reflector of a type stopped before its first full list.
#[derive(Debug, thiserror::Error)]
#[error("the reflector stopped before its first full list")]
pub struct ReflectorStopped;

impl<K: Reflected> Shared<K> {
    /// The read-only cache of all objects of this type.
    pub fn store(&self) -> &K::Store {
        &self.store
    }

    /// Which objects changed (for readers that rebuild only those).
    pub fn journal(&self) -> &Journal<K> {
        &self.journal
    }

    /// A fresh coalescing change signal; it wakes for changes after now.
    pub fn changes(&self) -> Changes {
        let mut rx = self.changed.clone();
        rx.borrow_and_update();
        Changes::new(rx, self.settle)
    }

    /// Waits until the first full list has been stored.
    ///
    /// Not `Store::wait_until_ready`: its one-shot receiver keeps only the
    /// last poller's waker, so when two components wait concurrently (flannel
    /// and netpol both wait for Nodes) one of them is never woken. A watch
    /// channel wakes every waiter.
    pub async fn wait_ready(&self) -> Result<(), ReflectorStopped> {
        let mut ready = self.ready.clone();
        ready
            .wait_for(|r| *r)
            .await
            .map(|_| ())
            .map_err(|_| ReflectorStopped)
    }
}

/// Counters of one reflector, exported as metrics.
#[derive(Debug)]
pub struct ReflectorStats {
    /// The resource kind, e.g. `Node`.
    pub kind: String,
    events: AtomicU64,
    errors: AtomicU64,
    /// Flips to true once, at the first full list; components wait on it.
    ready: watch::Sender<bool>,
}

impl ReflectorStats {
    fn new(kind: String) -> Self {
        ReflectorStats {
            kind,
            events: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            ready: watch::Sender::new(false),
        }
    }
    /// Objects received: list items, applies and deletes (not the list
    /// start/end markers).
    pub fn events(&self) -> u64 {
        self.events.load(Ordering::Relaxed)
    }
    /// List or watch failures (each followed by a backoff and a retry).
    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }
    /// Whether the first full list has completed.
    pub fn ready(&self) -> bool {
        *self.ready.borrow()
    }

    fn subscribe_ready(&self) -> watch::Receiver<bool> {
        self.ready.subscribe()
    }
}

/// The per-process registry of reflectors, keyed by resource type.
pub struct Reflectors {
    client: Client,
    settle: Duration,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<TypeId, Box<dyn Any + Send + Sync>>,
    stats: Vec<Arc<ReflectorStats>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Reflectors {
    /// A registry whose watches use `client`; nothing is watched until a
    /// component asks for a type.
    pub fn new(client: Client) -> Self {
        Reflectors {
            client,
            settle: DEFAULT_SETTLE,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// The client the watches use (for writes such as Events).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The shared reflector of `K`, started on first use. Must be called
    /// inside a tokio runtime.
    pub fn shared<K: Reflected>(&self) -> Shared<K> {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let key = TypeId::of::<K>();
        let found = inner.entries.get(&key);
        if let Some(shared) = found.and_then(|f| f.downcast_ref::<Shared<K>>()) {
            return shared.clone();
        }
        let (shared, stats, task) = self.start::<K>();
        inner.entries.insert(key, Box::new(shared.clone()));
        inner.stats.push(stats);
        inner.tasks.push(task);
        shared
    }

    /// Counters of every started reflector.
    pub fn stats(&self) -> Vec<Arc<ReflectorStats>> {
        let inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.stats.clone()
    }

    fn start<K: Reflected>(&self) -> (Shared<K>, Arc<ReflectorStats>, JoinHandle<()>) {
        let (store, writer) = K::store();
        let (tx, changed) = watch::channel(0u64);
        let stats = Arc::new(ReflectorStats::new(K::kind(&()).into_owned()));
        let api: Api<K> = Api::all(self.client.clone());
        let events = trimmed(watcher(api, watcher::Config::default())).default_backoff();
        let journal = Arc::new(Journal::default());
        let sinks = Sinks {
            changed: tx,
            journal: journal.clone(),
            stats: stats.clone(),
        };
        let task = tokio::spawn(drive(events, writer, sinks));
        let shared = Shared {
            store,
            changed,
            ready: stats.subscribe_ready(),
            settle: self.settle,
            journal,
        };
        (shared, stats, task)
    }
}

impl Drop for Reflectors {
    fn drop(&mut self) {
        let inner = self.inner.get_mut().unwrap_or_else(|e| e.into_inner());
        for task in &inner.tasks {
            task.abort();
        }
    }
}

/// The watch stream with every object trimmed before anything stores it
/// (kube-runtime's own per-object hook).
fn trimmed<K, S>(events: S) -> impl Stream<Item = watcher::Result<watcher::Event<K>>>
where
    K: Reflected,
    S: Stream<Item = watcher::Result<watcher::Event<K>>>,
{
    events.modify(K::trim)
}

/// Where a reflector reports what it stored.
struct Sinks<K: Reflected> {
    changed: watch::Sender<u64>,
    journal: Arc<Journal<K>>,
    stats: Arc<ReflectorStats>,
}

/// Applies watch events to the store and signals changes; errors are
/// counted and logged, the (backed-off) stream then resumes by itself.
async fn drive<K, S>(events: S, mut writer: K::Writer, sinks: Sinks<K>)
where
    K: Reflected,
    S: Stream<Item = watcher::Result<watcher::Event<K>>>,
{
    let mut events = std::pin::pin!(events);
    while let Some(event) = events.next().await {
        match event {
            Ok(event) => apply(&mut writer, event, &sinks),
            Err(err) => {
                sinks.stats.errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(kind = %sinks.stats.kind, error = %err, "watch failed; retrying with backoff");
            }
        }
    }
}

/// Store first, then journal, then the signal: whoever is woken or reads
/// the journal finds the store at least that new.
/// The event is moved into the store (the compact stores keep the object
/// itself), so what the journal needs is taken from it first.
fn apply<K: Reflected>(writer: &mut K::Writer, event: watcher::Event<K>, sinks: &Sinks<K>) {
    let Sinks {
        changed,
        journal,
        stats,
    } = sinks;
    let key = match &event {
        watcher::Event::Apply(obj) | watcher::Event::Delete(obj) => Some(key_of(obj)),
        _ => None,
    };
    let carries_object = matches!(
        event,
        watcher::Event::Apply(_) | watcher::Event::Delete(_) | watcher::Event::InitApply(_)
    );
    // During a (re)list the store only swaps in the new contents at
    // InitDone, so Init and InitApply change nothing readers can see.
    let visible = !matches!(event, watcher::Event::Init | watcher::Event::InitApply(_));
    let relisted = matches!(event, watcher::Event::InitDone);
    writer.apply(event);
    match key {
        Some(key) => journal.changed_key(key),
        None if relisted => journal.replaced(),
        None => {}
    }
    if carries_object {
        stats.events.fetch_add(1, Ordering::Relaxed);
    }
    if visible {
        if relisted {
            stats.ready.send_replace(true);
        }
        changed.send_modify(|generation| *generation += 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::stream;
    use k8s_openapi::api::core::v1::Node;
    use kube::api::ObjectMeta;
    use kube::runtime::reflector::{self, ObjectRef, Store, store::Writer};

    use crate::journal::Changed;

    fn node(name: &str) -> Node {
        Node {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..ObjectMeta::default()
            },
            ..Node::default()
        }
    }

    fn failure() -> watcher::Error {
        watcher::Error::NoResourceVersion
    }

    struct Harness {
        store: Store<Node>,
        changes: Changes,
        stats: Arc<ReflectorStats>,
        tx: watch::Sender<u64>,
        writer: Option<Writer<Node>>,
        journal: Arc<Journal<Node>>,
    }

    fn harness() -> Harness {
        let (store, writer) = reflector::store::<Node>();
        let (tx, rx) = watch::channel(0u64);
        Harness {
            store,
            changes: Changes::new(rx, DEFAULT_SETTLE),
            stats: Arc::new(ReflectorStats::new("Node".into())),
            tx,
            writer: Some(writer),
            journal: Arc::new(Journal::default()),
        }
    }

    impl Harness {
        fn sinks(&self) -> Sinks<Node> {
            Sinks {
                changed: self.tx.clone(),
                journal: self.journal.clone(),
                stats: self.stats.clone(),
            }
        }

        async fn feed(&mut self, events: Vec<watcher::Result<watcher::Event<Node>>>) {
            let writer = self.writer.take().expect("feed once");
            drive(stream::iter(events), writer, self.sinks()).await;
        }
    }

    /// Two components waiting at once must both be woken by the first full
    /// list (kube's own `wait_until_ready` wakes only the last poller).
    #[tokio::test]
    async fn every_concurrent_waiter_wakes_at_the_first_full_list() {
        let mut h = harness();
        let shared = Shared {
            store: h.store.clone(),
            changed: h.tx.subscribe(),
            ready: h.stats.subscribe_ready(),
            settle: DEFAULT_SETTLE,
            journal: h.journal.clone(),
        };
        let waiters: Vec<_> = (0..2)
            .map(|_| {
                let shared = shared.clone();
                tokio::spawn(async move { shared.wait_ready().await })
            })
            .collect();
        tokio::task::yield_now().await;
        let list = vec![Ok(watcher::Event::Init), Ok(watcher::Event::InitDone)];
        h.feed(list).await;
        for waiter in waiters {
            let woke = tokio::time::timeout(Duration::from_secs(5), waiter).await;
            assert!(matches!(woke, Ok(Ok(Ok(())))), "a waiter was not woken");
        }
    }

    async fn wakes(changes: &mut Changes) -> bool {
        let long = Duration::from_secs(3600);
        tokio::time::timeout(long, changes.changed()).await.is_ok()
    }

    #[tokio::test(start_paused = true)]
    async fn ready_only_after_full_list_and_one_wake_per_list() {
        let mut h = harness();
        let events = vec![
            Ok(watcher::Event::Init),
            Ok(watcher::Event::InitApply(node("a"))),
            Ok(watcher::Event::InitApply(node("b"))),
        ];
        h.feed(events).await;
        assert!(!h.stats.ready());
        assert!(!wakes(&mut h.changes).await, "partial list must not wake");
        let ready = tokio::time::timeout(Duration::from_secs(1), h.store.wait_until_ready());
        // The writer is gone after the feed: the store must report that,
        // never "ready".
        assert!(
            !matches!(ready.await, Ok(Ok(()))),
            "store ready before InitDone"
        );
    }

    /// The store holds trimmed objects: what the watch delivers passes
    /// through `Trim` first.
    #[tokio::test]
    async fn the_store_holds_trimmed_objects() {
        let mut h = harness();
        let mut fat = node("a");
        fat.metadata.annotations = Some(
            [(
                "kubectl.kubernetes.io/last-applied-configuration".into(),
                "{}".into(),
            )]
            .into(),
        );
        let events = vec![
            Ok(watcher::Event::Init),
            Ok(watcher::Event::InitApply(fat.clone())),
            Ok(watcher::Event::InitDone),
            Ok(watcher::Event::Apply(Node {
                metadata: ObjectMeta {
                    name: Some("b".into()),
                    ..fat.metadata.clone()
                },
                ..Node::default()
            })),
        ];
        let writer = h.writer.take().expect("writer");
        let stream = trimmed(stream::iter(events));
        drive(stream, writer, h.sinks()).await;
        for name in ["a", "b"] {
            let stored = h.store.get(&ObjectRef::new(name)).expect("stored");
            assert!(stored.metadata.annotations.is_none(), "{name} not trimmed");
        }
    }

    /// The journal names what each event changed; a (re)list is
    /// "everything".
    #[tokio::test]
    async fn the_journal_records_applies_deletes_and_relists() {
        let mut h = harness();
        let mut cursor = h.journal.cursor();
        let events = vec![
            Ok(watcher::Event::Init),
            Ok(watcher::Event::InitApply(node("a"))),
            Ok(watcher::Event::InitDone),
        ];
        let writer = h.writer.take().expect("writer");
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let feeding = tokio::spawn(drive(tokio_stream_from(rx), writer, h.sinks()));
        for e in events {
            tx.send(e).expect("send");
        }
        wait_for_ready(&h.store).await;
        assert_eq!(h.journal.since(&mut cursor), Changed::Everything);
        tx.send(Ok(watcher::Event::Apply(node("b")))).expect("send");
        tx.send(Ok(watcher::Event::Delete(node("a"))))
            .expect("send");
        drop(tx);
        feeding.await.expect("drive");
        let Changed::Objects(mut refs) = h.journal.since(&mut cursor) else {
            panic!("objects expected");
        };
        refs.sort_by(|x, y| x.name.cmp(&y.name));
        assert_eq!(refs, [ObjectRef::new("a"), ObjectRef::new("b")]);
        assert!(h.store.get(&refs[0]).is_none() && h.store.get(&refs[1]).is_some());
    }

    /// A compact kind goes through the same path into its own store:
    /// trimmed, readiness at the end of the list, journaled.
    #[tokio::test]
    async fn a_compact_kind_is_kept_in_its_own_store() {
        use crate::compact::{Service, ServiceSpec};
        let (store, writer) = <Service as Kept>::store();
        let stats = Arc::new(ReflectorStats::new("Service".into()));
        let journal = Arc::new(Journal::<Service>::default());
        let mut cursor = journal.cursor();
        let sinks = Sinks {
            changed: watch::channel(0u64).0,
            journal: journal.clone(),
            stats: stats.clone(),
        };
        let svc = |name| Service::new("default", name, ServiceSpec::default());
        let events = vec![
            Ok(watcher::Event::Init),
            Ok(watcher::Event::InitApply(svc("a"))),
            Ok(watcher::Event::InitDone),
            Ok(watcher::Event::Apply(svc("b"))),
            Ok(watcher::Event::Delete(svc("a"))),
        ];
        drive(trimmed(stream::iter(events)), writer, sinks).await;
        assert!(stats.ready());
        assert_eq!(stats.events(), 3);
        assert!(store.get_named("default", "a").is_none());
        assert!(store.get_named("default", "b").is_some());
        assert_eq!(journal.since(&mut cursor), Changed::Everything);
        assert!(journal.since(&mut cursor).is_empty());
    }

    fn tokio_stream_from<T>(
        mut rx: tokio::sync::mpsc::UnboundedReceiver<T>,
    ) -> impl Stream<Item = T> {
        futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
    }

    async fn wait_for_ready(store: &Store<Node>) {
        tokio::time::timeout(Duration::from_secs(5), store.wait_until_ready())
            .await
            .expect("ready in time")
            .expect("ready");
    }

    #[tokio::test(start_paused = true)]
    async fn errors_are_counted_and_stream_resumes() {
        let mut h = harness();
        let events = vec![
            Err(failure()),
            Ok(watcher::Event::Init),
            Ok(watcher::Event::InitApply(node("a"))),
            Ok(watcher::Event::InitDone),
            Err(failure()),
            Ok(watcher::Event::Apply(node("b"))),
            Ok(watcher::Event::Delete(node("a"))),
        ];
        h.feed(events).await;
        assert_eq!(h.stats.errors(), 2);
        assert_eq!(h.stats.events(), 3, "list item, apply, delete");
        assert!(h.stats.ready());
        h.store.wait_until_ready().await.expect("ready");
        assert!(h.store.get(&ObjectRef::new("b")).is_some());
        assert!(h.store.get(&ObjectRef::new("a")).is_none());
        assert!(wakes(&mut h.changes).await);
        assert!(!wakes(&mut h.changes).await, "burst must be one wake");
    }
}
