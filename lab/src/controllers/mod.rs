//! The controllers a cluster needs for networking: EndpointSlices from
//! Services, DaemonSet pods, and a scheduler. Each watches through shared
//! reflector stores and reconciles everything on change (the lab's clusters
//! are small, so a full pass is cheap and obviously correct).

pub mod daemonset;
pub mod endpointslice;
pub mod labels;
pub mod scheduler;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::Api;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use std::time::Duration;
use tokio::sync::watch;

/// Coalescing delay between a change and the next reconcile pass.
const DEBOUNCE: Duration = Duration::from_millis(50);
/// A full pass also runs this often without changes (retries failures).
const RESYNC: Duration = Duration::from_secs(5);

/// Read-only views shared by all controllers.
#[derive(Clone)]
pub struct Stores {
    pub pods: Store<Pod>,
    pub services: Store<Service>,
    pub nodes: Store<Node>,
    pub slices: Store<EndpointSlice>,
    pub daemonsets: Store<DaemonSet>,
    /// Bumped on every change of any store.
    pub changed: watch::Receiver<u64>,
    /// True once every store has its first full list.
    pub ready: watch::Receiver<bool>,
}

fn reflect<K>(api: Api<K>, tx: watch::Sender<u64>) -> (Store<K>, tokio::task::JoinHandle<()>)
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let (reader, writer) = reflector::store();
    let stream =
        reflector::reflector(writer, watcher(api, watcher::Config::default())).default_backoff();
    let task = tokio::spawn(async move {
        let mut stream = stream.boxed();
        while let Some(ev) = stream.next().await {
            if let Err(e) = ev {
                tracing::warn!(error = %e, "controller watch error");
            }
            tx.send_modify(|n| *n += 1);
        }
    });
    (reader, task)
}

/// Starts the reflectors; the handles must live as long as the stores.
pub fn start_stores(client: &kube::Client) -> (Stores, Vec<tokio::task::JoinHandle<()>>) {
    let (tx, changed) = watch::channel(0u64);
    let (pods, t1) = reflect(Api::all(client.clone()), tx.clone());
    let (services, t2) = reflect(Api::all(client.clone()), tx.clone());
    let (nodes, t3) = reflect(Api::all(client.clone()), tx.clone());
    let (slices, t4) = reflect(Api::all(client.clone()), tx.clone());
    let (daemonsets, t5) = reflect(Api::all(client.clone()), tx);
    let (ready_tx, ready) = watch::channel(false);
    let mut stores = Stores {
        pods,
        services,
        nodes,
        slices,
        daemonsets,
        changed,
        ready,
    };
    let waiter = stores.clone();
    // kube's Store::wait_until_ready wakes only one of several concurrent
    // waiters, so one task waits and broadcasts readiness to all.
    let t6 = tokio::spawn(async move {
        let _ = waiter.pods.wait_until_ready().await;
        let _ = waiter.services.wait_until_ready().await;
        let _ = waiter.nodes.wait_until_ready().await;
        let _ = waiter.slices.wait_until_ready().await;
        let _ = waiter.daemonsets.wait_until_ready().await;
        let _ = ready_tx.send(true);
    });
    stores.ready.mark_unchanged();
    (stores, vec![t1, t2, t3, t4, t5, t6])
}

impl Stores {
    /// Waits until every store has been listed once.
    pub async fn ready(&self) {
        let mut ready = self.ready.clone();
        let _ = ready.wait_for(|r| *r).await;
    }
}

/// Runs `pass` after every (debounced) change and every RESYNC.
pub async fn run_loop<F, Fut>(stores: Stores, name: &'static str, mut pass: F)
where
    F: FnMut(Stores) -> Fut,
    Fut: std::future::Future<Output = Result<(), kube::Error>>,
{
    stores.ready().await;
    tracing::debug!(controller = name, "stores ready");
    let mut changed = stores.changed.clone();
    loop {
        tracing::trace!(controller = name, "reconcile pass");
        if let Err(e) = pass(stores.clone()).await {
            tracing::warn!(controller = name, error = %e, "reconcile pass failed");
        }
        let _ = tokio::time::timeout(RESYNC, changed.changed()).await;
        tokio::time::sleep(DEBOUNCE).await;
        changed.borrow_and_update();
    }
}

/// Spawns the three controllers.
pub fn start(client: kube::Client, stores: Stores) -> Vec<tokio::task::JoinHandle<()>> {
    let c1 = client.clone();
    let c2 = client.clone();
    vec![
        tokio::spawn(run_loop(stores.clone(), "endpointslice", move |s| {
            endpointslice::reconcile(c1.clone(), s)
        })),
        tokio::spawn(run_loop(stores.clone(), "daemonset", move |s| {
            daemonset::reconcile(c2.clone(), s)
        })),
        tokio::spawn(run_loop(stores, "scheduler", move |s| {
            scheduler::reconcile(client.clone(), s)
        })),
    ]
}
