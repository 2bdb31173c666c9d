//! One pod on one node: sandbox (namespace + CNI ADD, or the node's network
//! for hostNetwork pods), containers, status reports, and teardown when the
//! pod is deleted.

use super::NodeCtx;
use super::cni::{self, ConfList, PodRef};
use super::container::{ContainerTask, StopSignal, now};
use super::process::{PodContext, PodFields};
use super::resolv;
use super::status::{self, ContainerRun, PodRun};
use crate::netns::{self, Enter};
use crate::topology;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// Latest version of the pod from the watch; `None` once it left the API.
pub type PodFeed = watch::Receiver<Option<Arc<Pod>>>;

/// Longest a container gets between SIGTERM and SIGKILL in the lab.
const MAX_GRACE: Duration = Duration::from_secs(10);
const SANDBOX_BACKOFF_MAX: Duration = Duration::from_secs(5);

/// The network side of a running pod.
#[derive(Debug, Clone)]
pub struct Sandbox {
    pub netns: String,
    pub ips: Vec<IpAddr>,
    /// CNI attachment (absent for hostNetwork pods).
    pub cni: Option<(ConfList, PodRef)>,
    pub enter: Enter,
}

/// Whether the pod (as last seen) is being deleted or is gone.
fn leaving(feed: &PodFeed) -> bool {
    feed.borrow()
        .as_ref()
        .is_none_or(|p| p.metadata.deletion_timestamp.is_some())
}

fn grace(pod: &Pod) -> Duration {
    let secs = pod
        .metadata
        .deletion_grace_period_seconds
        .or_else(|| pod.spec.as_ref()?.termination_grace_period_seconds)
        .unwrap_or(30);
    Duration::from_secs(secs.max(0) as u64).min(MAX_GRACE)
}

fn is_host_network(pod: &Pod) -> bool {
    pod.spec.as_ref().and_then(|s| s.host_network) == Some(true)
}

fn key(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or(""),
        pod.metadata.name.as_deref().unwrap_or("")
    )
}

/// Drives one pod from first sight to deletion.
pub async fn run(ctx: Arc<NodeCtx>, mut feed: PodFeed) {
    let Some(pod) = feed.borrow().clone() else {
        return;
    };
    let terminal = matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    );
    if terminal {
        // Finished before this kubelet saw it (e.g. the lab restarted): nothing to run.
        wait_leaving(&mut feed).await;
        finish(&ctx, &feed, &pod).await;
        return;
    }
    let start_time = now();
    if let Some(sandbox) = setup_sandbox(&ctx, &pod, &mut feed, &start_time).await {
        run_containers(&ctx, &pod, &sandbox, &mut feed, start_time).await;
        teardown_sandbox(&ctx, &pod, &sandbox).await;
    }
    finish(&ctx, &feed, &pod).await;
}

async fn wait_leaving(feed: &mut PodFeed) {
    while !leaving(feed) {
        if feed.changed().await.is_err() {
            return;
        }
    }
}

/// Creates the pod's network; retries CNI ADD with backoff until it works
/// or the pod is deleted (`None`).
async fn setup_sandbox(
    ctx: &Arc<NodeCtx>,
    pod: &Pod,
    feed: &mut PodFeed,
    start: &status::Time,
) -> Option<Sandbox> {
    let mut enter = pod_files(ctx, pod).await;
    if is_host_network(pod) {
        enter.hostname = Some(ctx.node_name.clone());
        let netns = ctx.node_netns.clone();
        return Some(Sandbox {
            netns,
            ips: ctx.node_ips.clone(),
            cni: None,
            enter,
        });
    }
    report_pending(ctx, pod, start).await;
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let name = topology::pod_netns(&ctx.prefix, &uid);
    let (ips, list, pref) = attach_with_retry(ctx, pod, feed, &name).await?;
    enter.netns = Some(netns::path(&name));
    enter.hostname = pod
        .metadata
        .name
        .as_ref()
        .map(|n| n.chars().take(63).collect());
    Some(Sandbox {
        netns: name,
        ips,
        cni: Some((list, pref)),
        enter,
    })
}

/// The pod directory and resolv.conf; returns how to enter the node with
/// that resolv.conf bound over /etc/resolv.conf.
async fn pod_files(ctx: &Arc<NodeCtx>, pod: &Pod) -> Enter {
    let dir = ctx
        .dirs
        .pod(pod.metadata.uid.as_deref().unwrap_or_default());
    if let Err(e) = std::fs::create_dir_all(&dir) {
        let msg = format!("pod dir {}: {e}", dir.display());
        ctx.event(pod, "FailedCreatePodSandBox", &msg).await;
    }
    let mut enter = Enter::netns(ctx.node_netns_path());
    if let Some(resolv) = resolv::for_pod(pod, &ctx.dns) {
        let file = dir.join("resolv.conf");
        match std::fs::write(&file, resolv.render()) {
            Ok(()) => enter.binds.push((file, PathBuf::from("/etc/resolv.conf"))),
            Err(e) => {
                ctx.event(pod, "DNSConfigForming", &format!("{}: {e}", file.display()))
                    .await
            }
        }
    }
    enter
}

/// CNI ADD until it succeeds; `None` when the pod leaves first (its
/// namespace is then removed).
async fn attach_with_retry(
    ctx: &Arc<NodeCtx>,
    pod: &Pod,
    feed: &mut PodFeed,
    name: &str,
) -> Option<(Vec<IpAddr>, ConfList, PodRef)> {
    let mut backoff = Duration::from_millis(200);
    for attempt in 1u32.. {
        if leaving(feed) {
            let _ = netns::del_sync(name);
            return None;
        }
        match attach(ctx, pod, name).await {
            Ok(done) => return Some(done),
            Err(msg) => {
                tracing::info!(node = %ctx.node_name, pod = %key(pod), attempt, "sandbox not ready: {msg}");
                if attempt == 1 || attempt.is_multiple_of(10) {
                    ctx.event(pod, "FailedCreatePodSandBox", &msg).await;
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            changed = feed.changed() => if changed.is_err() {
                return None; // the kubelet is shutting down
            },
        }
        backoff = (backoff * 2).min(SANDBOX_BACKOFF_MAX);
    }
    None
}

/// One CNI ADD attempt: namespace, conflist, plugin; cached for DEL.
async fn attach(
    ctx: &Arc<NodeCtx>,
    pod: &Pod,
    name: &str,
) -> Result<(Vec<IpAddr>, ConfList, PodRef), String> {
    let list = cni::load_conflist(&ctx.cni.conf_dir).map_err(|e| e.to_string())?;
    if !netns::path(name).exists() {
        netns::add(name).await.map_err(|e| e.to_string())?;
        ctx.note_netns(name);
    }
    let pref = PodRef::from_pod(pod, netns::path(name));
    let result = ctx.cni.add(&list, &pref).await.map_err(|e| e.to_string())?;
    let ips = cni::result_ips(&result);
    if ips.is_empty() {
        // An ADD without addresses is useless; undo it and try again.
        let _ = ctx.cni.del(&list, &pref).await;
        return Err(format!("CNI result has no ips: {result}"));
    }
    let cache = ctx.dirs.pod(&pref.uid).join("cni-conflist.json");
    let _ = std::fs::write(cache, list.to_json().to_string());
    Ok((ips, list, pref))
}

async fn report_pending(ctx: &Arc<NodeCtx>, pod: &Pod, start: &status::Time) {
    let containers = pod
        .spec
        .as_ref()
        .map(|s| s.containers.as_slice())
        .unwrap_or_default();
    let run = PodRun {
        host_ip: ctx.node_ip,
        pod_ips: Vec::new(),
        start_time: start.clone(),
        sandbox_ready: false,
        containers: containers
            .iter()
            .map(|c| {
                ContainerRun::waiting(
                    &c.name,
                    c.image.as_deref().unwrap_or(""),
                    "ContainerCreating",
                )
            })
            .collect(),
    };
    patch_status(ctx, pod, &status::render(&run, &now())).await;
}

/// Starts every container and reports status until the pod leaves.
async fn run_containers(
    ctx: &Arc<NodeCtx>,
    pod: &Arc<Pod>,
    sb: &Sandbox,
    feed: &mut PodFeed,
    start: status::Time,
) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (stop_tx, stop_rx) = watch::channel(None);
    let containers = pod
        .spec
        .as_ref()
        .map(|s| s.containers.clone())
        .unwrap_or_default();
    let mut run = PodRun {
        host_ip: ctx.node_ip,
        pod_ips: sb.ips.clone(),
        start_time: start,
        sandbox_ready: true,
        containers: Vec::new(),
    };
    let mut tasks = tokio::task::JoinSet::new();
    for (index, spec) in containers.into_iter().enumerate() {
        run.containers.push(ContainerRun::waiting(
            &spec.name,
            spec.image.as_deref().unwrap_or(""),
            "ContainerCreating",
        ));
        tasks.spawn(container_task(ctx, pod, sb, index, spec, tx.clone(), stop_rx.clone()).run());
    }
    drop(tx);
    let mut last = String::new();
    loop {
        tokio::select! {
            Some((i, c)) = rx.recv() => {
                if let Some(slot) = run.containers.get_mut(i) { *slot = c; }
                while let Ok((i, c)) = rx.try_recv() {
                    if let Some(slot) = run.containers.get_mut(i) { *slot = c; }
                }
                let st = status::render(&run, &now());
                let fp = status::fingerprint(&st);
                if fp != last {
                    patch_status(ctx, pod, &st).await;
                    last = fp;
                }
            }
            changed = feed.changed() => if changed.is_err() || leaving(feed) { break },
        }
    }
    let g = feed
        .borrow()
        .as_ref()
        .map(|p| grace(p))
        .unwrap_or(Duration::ZERO);
    let _ = stop_tx.send(Some(g));
    while tasks.join_next().await.is_some() {}
}

fn container_task(
    ctx: &Arc<NodeCtx>,
    pod: &Arc<Pod>,
    sb: &Sandbox,
    index: usize,
    spec: k8s_openapi::api::core::v1::Container,
    updates: mpsc::UnboundedSender<(usize, ContainerRun)>,
    stop: StopSignal,
) -> ContainerTask {
    let pod_name = pod.metadata.name.clone().unwrap_or_default();
    let base_env = vec![
        (
            "HOSTNAME".into(),
            sb.enter
                .hostname
                .clone()
                .unwrap_or_else(|| pod_name.clone()),
        ),
        ("POD_NAME".into(), pod_name),
        (
            "POD_NAMESPACE".into(),
            pod.metadata.namespace.clone().unwrap_or_default(),
        ),
    ];
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let mut enter = sb.enter.clone();
    enter.new_group = true;
    let pod_ctx = PodContext {
        enter,
        search_path: ctx.dirs.search_path(),
        base_env,
        log_dir: ctx.dirs.pod(&uid),
    };
    let fields = PodFields {
        pod_ip: sb.ips.first().map(|i| i.to_string()).unwrap_or_default(),
        host_ip: ctx.node_ip.to_string(),
        node_name: ctx.node_name.clone(),
    };
    let pod_ip = sb.ips.first().copied();
    ContainerTask {
        ctx: ctx.clone(),
        pod: pod.clone(),
        index,
        spec,
        pod_ctx,
        fields,
        pod_ip,
        updates,
        stop,
    }
}

async fn patch_status(ctx: &NodeCtx, pod: &Pod, st: &k8s_openapi::api::core::v1::PodStatus) {
    let (ns, name) = (
        pod.metadata.namespace.as_deref().unwrap_or("default"),
        pod.metadata.name.as_deref().unwrap_or(""),
    );
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    let body = serde_json::json!({ "status": st });
    if let Err(e) = api
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&body))
        .await
    {
        tracing::warn!(node = %ctx.node_name, pod = %key(pod), error = %e, "status update failed");
    }
}

/// CNI DEL (retried), then the namespace goes.
async fn teardown_sandbox(ctx: &Arc<NodeCtx>, pod: &Pod, sb: &Sandbox) {
    let Some((list, pref)) = &sb.cni else { return };
    let mut tries = 0;
    while let Err(e) = ctx.cni.del(list, pref).await {
        tries += 1;
        tracing::warn!(node = %ctx.node_name, pod = %key(pod), error = %e, "CNI DEL failed");
        if tries >= 3 {
            ctx.event(pod, "FailedKillPodSandBox", &e.to_string()).await;
            break;
        }
        tokio::time::sleep(Duration::from_millis(300 * tries)).await;
    }
    if let Err(e) = netns::del_sync(&sb.netns) {
        tracing::warn!(node = %ctx.node_name, pod = %key(pod), error = %e, "pod netns not removed");
    }
}

/// Removes the pod from the API once its resources are gone (only a pod
/// being deleted, and only the same UID).
async fn finish(ctx: &NodeCtx, feed: &PodFeed, pod: &Pod) {
    let still_there = feed
        .borrow()
        .as_ref()
        .is_some_and(|p| p.metadata.deletion_timestamp.is_some());
    if !still_there {
        return;
    }
    let (ns, name) = (
        pod.metadata.namespace.as_deref().unwrap_or("default"),
        pod.metadata.name.as_deref().unwrap_or(""),
    );
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    let dp = DeleteParams {
        grace_period_seconds: Some(0),
        preconditions: Some(Preconditions {
            uid: pod.metadata.uid.clone(),
            resource_version: None,
        }),
        ..Default::default()
    };
    if let Err(e) = api.delete(name, &dp).await {
        tracing::debug!(node = %ctx.node_name, pod = %key(pod), error = %e, "final delete");
    }
}
