//! The kubelet stand-in: one per node, running that node's pods as network
//! namespaces wired through CNI, with their commands as processes.

pub mod cni;
pub mod container;
pub mod exec;
pub mod node;
pub mod pod;
pub mod probe;
pub mod process;
pub mod resolv;
pub mod status;

use crate::dirs::LabDirs;
use crate::netns;
use crate::procs::ProcRegistry;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Event, ObjectReference, Pod};
use kube::api::{Api, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

/// What a node's kubelet knows and shares with its pod workers.
pub struct NodeCtx {
    pub prefix: String,
    pub node_name: String,
    pub node_ip: IpAddr,
    /// Every address of the node, `node_ip` first (two in a dual-stack lab).
    pub node_ips: Vec<IpAddr>,
    pub node_netns: String,
    pub dirs: LabDirs,
    pub cni: cni::CniRuntime,
    pub dns: resolv::ClusterDns,
    pub client: kube::Client,
    pub registry: Arc<ProcRegistry>,
    /// Every namespace the lab created (shared by all nodes).
    pub created_netns: Arc<Mutex<BTreeSet<String>>>,
}

impl NodeCtx {
    pub fn node_netns_path(&self) -> PathBuf {
        netns::path(&self.node_netns)
    }

    pub fn note_netns(&self, name: &str) {
        self.created_netns
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_string());
    }

    /// Posts an Event about a pod, as the kubelet of this node; failures
    /// are only logged (events are best effort).
    pub async fn event(&self, pod: &Pod, reason: &str, message: &str) {
        let ns = pod
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let api: Api<Event> = Api::namespaced(self.client.clone(), &ns);
        let ev = event_for(pod, &self.node_name, reason, message);
        if let Err(e) = api.create(&PostParams::default(), &ev).await {
            tracing::debug!(node = %self.node_name, reason, error = %e, "event not posted");
        }
    }
}

/// A core/v1 Event about `pod` from the kubelet on `node`.
pub fn event_for(pod: &Pod, node: &str, reason: &str, message: &str) -> Event {
    let now = container::now();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let nanos = now.0.as_nanosecond();
    let mut ev = Event {
        involved_object: ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Pod".into()),
            name: Some(name.clone()),
            namespace: pod.metadata.namespace.clone(),
            uid: pod.metadata.uid.clone(),
            ..Default::default()
        },
        reason: Some(reason.into()),
        message: Some(message.into()),
        type_: Some(
            if reason == "Started" {
                "Normal"
            } else {
                "Warning"
            }
            .into(),
        ),
        source: Some(k8s_openapi::api::core::v1::EventSource {
            component: Some("kubelet".into()),
            host: Some(node.into()),
        }),
        first_timestamp: Some(now.clone()),
        last_timestamp: Some(now),
        count: Some(1),
        ..Default::default()
    };
    ev.metadata.name = Some(format!("{name}.{nanos:x}"));
    ev.metadata.namespace = pod.metadata.namespace.clone();
    ev
}

struct Worker {
    feed: watch::Sender<Option<Arc<Pod>>>,
    task: tokio::task::JoinHandle<()>,
}

/// Pod workers of one node, keyed by pod UID.
#[derive(Default)]
struct Workers {
    live: HashMap<String, Worker>,
    /// UIDs whose worker finished: never started again.
    done: HashSet<String>,
    /// UIDs listed since the last watch restart.
    listed: HashSet<String>,
}

impl Workers {
    fn apply(&mut self, ctx: &Arc<NodeCtx>, pod: Pod) {
        let Some(uid) = pod.metadata.uid.clone() else {
            return;
        };
        self.listed.insert(uid.clone());
        if self.done.contains(&uid) {
            return;
        }
        let pod = Arc::new(pod);
        if let Some(w) = self.live.get(&uid) {
            let _ = w.feed.send(Some(pod));
            return;
        }
        let (feed, rx) = watch::channel(Some(pod));
        let task = tokio::spawn(pod::run(ctx.clone(), rx));
        self.live.insert(uid, Worker { feed, task });
    }

    fn gone(&mut self, uid: &str) {
        if let Some(w) = self.live.get(uid) {
            let _ = w.feed.send(None);
        }
    }

    /// After a relist: pods that vanished meanwhile are gone.
    fn relisted(&mut self) {
        let vanished: Vec<String> = self
            .live
            .keys()
            .filter(|u| !self.listed.contains(*u))
            .cloned()
            .collect();
        vanished.iter().for_each(|u| self.gone(u));
    }

    fn reap(&mut self) {
        let finished: Vec<String> = self
            .live
            .iter()
            .filter(|(_, w)| w.task.is_finished())
            .map(|(u, _)| u.clone())
            .collect();
        for uid in finished {
            self.live.remove(&uid);
            self.done.insert(uid);
        }
    }
}

/// Runs the node's kubelet until the task is aborted.
pub async fn run(ctx: Arc<NodeCtx>) {
    let api: Api<Pod> = Api::all(ctx.client.clone());
    let cfg = watcher::Config::default().fields(&format!("spec.nodeName={}", ctx.node_name));
    let mut stream = watcher(api, cfg).default_backoff().boxed();
    let mut workers = Workers::default();
    let mut reap = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        tokio::select! {
            ev = stream.next() => match ev {
                Some(Ok(ev)) => handle(&ctx, &mut workers, ev),
                Some(Err(e)) => tracing::warn!(node = %ctx.node_name, error = %e, "pod watch error"),
                None => return,
            },
            _ = reap.tick() => workers.reap(),
        }
    }
}

fn handle(ctx: &Arc<NodeCtx>, workers: &mut Workers, ev: watcher::Event<Pod>) {
    match ev {
        watcher::Event::Apply(p) | watcher::Event::InitApply(p) => workers.apply(ctx, p),
        watcher::Event::Delete(p) => workers.gone(p.metadata.uid.as_deref().unwrap_or("")),
        watcher::Event::Init => workers.listed.clear(),
        watcher::Event::InitDone => workers.relisted(),
    }
}
