//! The daemon component: watch Pods, Namespaces, NetworkPolicies and our
//! Node; on every (coalesced) change plan and apply; on a timer read the
//! table back and repair drift.
//!
//! Planning is incremental ([`ApiPlanner`]): objects are converted only
//! when the store holds a new version, and a change costs planner work in
//! proportion to what it affects. The first pass of a run applies the
//! whole plan (replacing any previous table in one transaction); every
//! later pass applies only the change, as one netlink batch when it only
//! moves set elements, else as one `nft -f` transaction.
//!
//! Start-up fails closed: nothing is applied before all four reflectors have
//! completed their first list (a plan from a partial view could drop
//! isolation), and until then the table left by the previous run stays in
//! force. While the API server is unreachable the stores keep their last
//! contents and so does the table.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cluster::Shared;
use cluster::events::{Recorder, Warning};
use ipnet::IpNet;
use k8s_openapi::api::core::v1::{Namespace, Node, ObjectReference, Pod};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::runtime::reflector::ObjectRef;
use tokio::sync::watch;

use crate::apply::{ApplyError, Enforcer, Outcome};
use crate::handshake::{Disposition, Handshake, HandshakeError, PendingPod};
use crate::model::{NamespaceInfo, PodInfo, Policy, Problem};
use crate::plan::{NodeScope, Plan};

mod api_planner;
mod cache;

pub use api_planner::{ApiPlanner, Snapshot, Update};

/// What the component needs from the daemon's configuration.
#[derive(Debug, Clone)]
pub struct NetpolConfig {
    /// --node-name.
    pub node_name: String,
    /// Reject this node's pod-CIDR addresses that are not known running
    /// pods (closes the window between CNI ADD and the first plan that
    /// knows the pod). On by default.
    pub fail_closed_unknown_pods: bool,
    /// How often the table is read back and repaired.
    pub resync_interval: Duration,
    /// The cluster DNS addresses nodenet serves on this node (empty when
    /// its DNS is disabled): planned as a CoreDNS-like peer, see
    /// [`crate::model::cluster_dns`].
    pub cluster_dns: Vec<IpAddr>,
    /// --run-dir: home of the hand-over with the CNI plugin
    /// (`<run-dir>/netpol`, see [`crate::handshake`]). `None`: no hand-over.
    pub run_dir: Option<PathBuf>,
}

impl NetpolConfig {
    /// Defaults for `node_name`: fail closed, resync every 5 minutes, no
    /// hand-over with the CNI plugin (set `run_dir` for it), no cluster DNS.
    pub fn new(node_name: &str) -> Self {
        NetpolConfig {
            node_name: node_name.to_string(),
            fail_closed_unknown_pods: true,
            resync_interval: Duration::from_secs(300),
            cluster_dns: Vec::new(),
            run_dir: None,
        }
    }
}

/// Why the component stopped (the supervisor restarts it).
#[derive(Debug, thiserror::Error)]
pub enum NetpolError {
    /// A reflector stopped: the daemon is shutting down.
    #[error("a watch stopped; the daemon is shutting down")]
    WatchStopped,
    /// Applying or reading the table failed.
    #[error(transparent)]
    Apply(#[from] ApplyError),
    /// The hand-over directory with the CNI plugin failed.
    #[error(transparent)]
    Handshake(#[from] HandshakeError),
    /// The blocking nft task panicked or was cancelled.
    #[error("the nft task did not finish: {0}")]
    Task(String),
}

/// Shared inputs of [`run`].
pub struct Context {
    pub config: NetpolConfig,
    pub nodes: Shared<Node>,
    pub pods: Shared<Pod>,
    pub namespaces: Shared<Namespace>,
    pub policies: Shared<NetworkPolicy>,
    pub events: Arc<Recorder>,
    /// Receives the live plan's named counters (a [`Plan`] holding only
    /// `counters`) whenever they change (for /metrics: pass it to
    /// [`crate::apply::read_counters`]). Only the counters, because a copy
    /// of the whole plan per event would cost more than the event.
    pub applied: watch::Sender<Option<Arc<Plan>>>,
}

/// Runs until a watch stops or nft fails. `ready` turns true after the
/// first successful apply.
pub async fn run(ctx: &Context, ready: &watch::Sender<bool>) -> Result<(), NetpolError> {
    ready.send_replace(false);
    crate::apply::enable_bridge_netfilter()?;
    let changes = ctx
        .pods
        .changes()
        .and(ctx.namespaces.changes())
        .and(ctx.policies.changes())
        .and(ctx.nodes.changes());
    for ready in [
        ctx.nodes.wait_ready().await,
        ctx.pods.wait_ready().await,
        ctx.namespaces.wait_ready().await,
        ctx.policies.wait_ready().await,
    ] {
        ready.map_err(|_| NetpolError::WatchStopped)?;
    }
    let mut handshake = match &ctx.config.run_dir {
        Some(dir) => Some(Handshake::start(dir)?),
        None => None,
    };
    let mut wake = Wake::new(changes, ctx.config.resync_interval).await;
    let mut enforcer = Enforcer::new();
    let mut planner = ApiPlanner::new(node_scope(ctx));
    loop {
        let pending = scan(handshake.as_ref())?;
        let dispositions;
        (enforcer, dispositions) = reconcile(ctx, enforcer, &mut planner, &pending).await?;
        if let Some(handshake) = handshake.as_mut() {
            handshake.settle(&pending, &dispositions)?;
        }
        ready.send_replace(true);
        enforcer = wake.next(enforcer, handshake.as_ref(), &pending).await?;
    }
}

/// What makes the component plan again.
struct Wake {
    changes: ChangeSignal,
    resync: tokio::time::Interval,
    poll: tokio::time::Interval,
}

impl Wake {
    async fn new(changes: cluster::Changes, resync_interval: Duration) -> Wake {
        let mut resync = tokio::time::interval(resync_interval);
        resync.tick().await;
        let mut poll = tokio::time::interval(PENDING_POLL);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        Wake {
            changes: ChangeSignal::spawn(changes),
            resync,
            poll,
        }
    }

    /// Returns once a store changed, the table was repaired, or the
    /// pending hand-overs differ from `planned`.
    async fn next(
        &mut self,
        enforcer: Enforcer,
        handshake: Option<&Handshake>,
        planned: &[PendingPod],
    ) -> Result<Enforcer, NetpolError> {
        loop {
            tokio::select! {
                changed = self.changes.changed() => {
                    changed?;
                    return Ok(enforcer);
                }
                _ = self.resync.tick() => return repair(enforcer).await,
                _ = self.poll.tick(), if handshake.is_some() => {
                    if scan(handshake)? != planned {
                        return Ok(enforcer);
                    }
                }
            }
        }
    }
}

/// `Changes::changed` consumes the change before its settle window ends, so
/// dropping it inside a `select!` (the hand-over poll ticks every 10 ms)
/// would lose the wake-up. A task owns it and forwards each wake through a
/// watch channel, whose `changed` is cancel-safe.
struct ChangeSignal {
    rx: watch::Receiver<()>,
    task: tokio::task::JoinHandle<()>,
}

impl ChangeSignal {
    fn spawn(mut changes: cluster::Changes) -> ChangeSignal {
        let (tx, rx) = watch::channel(());
        // Returning drops `tx`, which the receiver sees as the watch stopping.
        let task = tokio::spawn(async move {
            while changes.changed().await.is_ok() {
                tx.send_replace(());
            }
        });
        ChangeSignal { rx, task }
    }

    async fn changed(&mut self) -> Result<(), NetpolError> {
        self.rx
            .changed()
            .await
            .map_err(|_| NetpolError::WatchStopped)
    }
}

impl Drop for ChangeSignal {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// How often the pending hand-over directory is read: a readdir of a few
/// tmpfs entries, and a bound on what the CNI plugin's wait adds to ADD.
const PENDING_POLL: Duration = Duration::from_millis(10);

fn scan(handshake: Option<&Handshake>) -> Result<Vec<PendingPod>, NetpolError> {
    Ok(handshake
        .map(Handshake::scan)
        .transpose()?
        .unwrap_or_default())
}

/// One plan + apply pass; returns what the plan did with each pending
/// hand-over (to be settled only now that the plan is live).
async fn reconcile(
    ctx: &Context,
    enforcer: Enforcer,
    planner: &mut ApiPlanner,
    pending: &[PendingPod],
) -> Result<(Enforcer, Vec<Disposition>), NetpolError> {
    let started = Instant::now();
    let snapshot = Snapshot {
        pods: ctx.pods.store().state(),
        namespaces: ctx.namespaces.store().state(),
        policies: ctx.policies.store().state(),
        node: node_scope(ctx),
        pending,
        cluster_dns: &ctx.config.cluster_dns,
    };
    if enforcer.applied().is_none() {
        return first_pass(ctx, enforcer, planner, snapshot, started).await;
    }
    let update = planner.sync(snapshot);
    report(ctx, &update.problems).await;
    let (enforcer, outcome, counters_changed) = match update.delta {
        Some(delta) => {
            let changed = !delta.before.counters.is_empty() || !delta.after.counters.is_empty();
            let (e, outcome) = blocking(enforcer, move |e| e.apply_delta(&delta)).await?;
            (e, outcome, changed)
        }
        // A planner without a baseline: apply its plan whole.
        None => {
            let plan = planner.plan().clone();
            let (e, outcome) = blocking(enforcer, move |e| e.apply(plan)).await?;
            (e, outcome, true)
        }
    };
    log_outcome(&outcome?, started);
    if counters_changed {
        let counters = enforcer.applied().map(|p| Plan {
            counters: p.counters.clone(),
            ..Plan::default()
        });
        ctx.applied.send_replace(counters.map(Arc::new));
    }
    Ok((enforcer, update.dispositions))
}

/// The first pass of a run replaces whatever table is there. The table
/// goes live fastest through the full build (a bulk load of the
/// incremental planner costs about twice as much CPU), so the full plan is
/// applied first and the planner loads the same snapshot afterwards (run
/// concurrently, the two fight for the CPU and both finish later); their
/// plans are then equal (the planner's property tests), checked once here.
async fn first_pass(
    ctx: &Context,
    enforcer: Enforcer,
    planner: &mut ApiPlanner,
    snapshot: Snapshot<'_>,
    started: Instant,
) -> Result<(Enforcer, Vec<Disposition>), NetpolError> {
    let full = ApiPlanner::full_plan(&snapshot);
    let (mut enforcer, outcome) = blocking(enforcer, move |e| e.apply(full)).await?;
    log_outcome(&outcome?, started);
    let update = planner.sync(snapshot);
    if enforcer.applied() != Some(planner.plan()) {
        tracing::error!(
            component = "netpol",
            "incremental planner differs from the full build; applying its plan"
        );
        let plan = planner.plan().clone();
        let outcome;
        (enforcer, outcome) = blocking(enforcer, move |e| e.apply(plan)).await?;
        outcome?;
    }
    report(ctx, &update.problems).await;
    let counters = enforcer.applied().map(|p| Plan {
        counters: p.counters.clone(),
        ..Plan::default()
    });
    ctx.applied.send_replace(counters.map(Arc::new));
    Ok((enforcer, update.dispositions))
}

fn log_outcome(outcome: &Outcome, started: Instant) {
    let (script, via) = match outcome {
        Outcome::Unchanged => return,
        Outcome::Applied(script) => (script, "nft"),
        Outcome::Elements(script) => (script, "netlink"),
    };
    tracing::info!(
        component = "netpol",
        replace = script.replace,
        via,
        bytes = script.text.len(),
        elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
        "applied"
    );
}

async fn repair(enforcer: Enforcer) -> Result<Enforcer, NetpolError> {
    let (enforcer, result) = blocking(enforcer, |e| e.repair_drift()).await?;
    result?;
    Ok(enforcer)
}

/// Runs nft work off the async workers, handing the enforcer back.
async fn blocking<T: Send + 'static>(
    mut enforcer: Enforcer,
    work: impl FnOnce(&mut Enforcer) -> Result<T, ApplyError> + Send + 'static,
) -> Result<(Enforcer, Result<T, ApplyError>), NetpolError> {
    tokio::task::spawn_blocking(move || {
        let result = work(&mut enforcer);
        (enforcer, result)
    })
    .await
    .map_err(|e| NetpolError::Task(e.to_string()))
}

/// This node as the planner sees it (pod CIDRs from our Node object).
fn node_scope(ctx: &Context) -> NodeScope {
    let node = ctx
        .nodes
        .store()
        .get(&ObjectRef::new(&ctx.config.node_name));
    NodeScope {
        name: ctx.config.node_name.clone(),
        pod_cidrs: node.as_deref().map(pod_cidrs).unwrap_or_default(),
        fail_closed_unknown_pods: ctx.config.fail_closed_unknown_pods,
    }
}

/// Planner views from API objects, plus the problems found in policies.
pub fn views_from_api<'a>(
    policies: impl Iterator<Item = &'a NetworkPolicy>,
    pods: impl Iterator<Item = &'a Pod>,
    namespaces: impl Iterator<Item = &'a Namespace>,
) -> (Vec<Policy>, Vec<PodInfo>, Vec<NamespaceInfo>, Vec<Problem>) {
    let mut problems = Vec::new();
    let policies = policies
        .map(|p| Policy::from_api(p, &mut problems))
        .collect();
    let pods = pods.map(PodInfo::from_api).collect();
    let namespaces = namespaces.map(NamespaceInfo::from_api).collect();
    (policies, pods, namespaces, problems)
}

/// spec.podCIDRs (or spec.podCIDR); unparsable entries are left out (the
/// flannel component reports them on the Node).
fn pod_cidrs(node: &Node) -> Vec<IpNet> {
    let Some(spec) = node.spec.as_ref() else {
        return Vec::new();
    };
    let listed = spec.pod_cidrs.iter().flatten().map(String::as_str);
    let mut out: Vec<IpNet> = listed
        .chain(spec.pod_cidr.as_deref())
        .filter_map(|c| c.parse::<IpNet>().ok())
        .map(|c| c.trunc())
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Posts one Warning Event per problem (the recorder drops repeats).
async fn report(ctx: &Context, problems: &[Problem]) {
    for problem in problems {
        let (namespace, name) = problem
            .policy
            .split_once('/')
            .unwrap_or(("", &problem.policy));
        let warning = Warning {
            object: ObjectReference {
                api_version: Some("networking.k8s.io/v1".into()),
                kind: Some("NetworkPolicy".into()),
                namespace: Some(namespace.into()),
                name: Some(name.into()),
                ..ObjectReference::default()
            },
            reason: "InvalidNetworkPolicy",
            field: &problem.field,
            message: problem.reason.clone(),
        };
        if let Err(err) = ctx.events.warn(&warning).await {
            tracing::warn!(component = "netpol", error = %err, "cannot post Event");
        }
        tracing::warn!(component = "netpol", policy = %problem.policy, field = %problem.field, reason = %problem.reason, "skipped part of a NetworkPolicy");
    }
}
