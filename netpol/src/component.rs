//! The daemon component: watch Pods, Namespaces, NetworkPolicies and our
//! Node; on every (coalesced) change plan and apply; on a timer read the
//! table back and repair drift.
//!
//! Start-up fails closed: nothing is applied before all four reflectors have
//! completed their first list (a plan from a partial view could drop
//! isolation), and until then the table left by the previous run stays in
//! force. While the API server is unreachable the stores keep their last
//! contents and so does the table.

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
use crate::handshake::{Disposition, Handshake, HandshakeError, PendingPod, merge_pending};
use crate::model::{NamespaceInfo, PodInfo, Policy, Problem};
use crate::plan::{self, Inputs, NodeScope, Plan};

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
    /// --run-dir: home of the hand-over with the CNI plugin
    /// (`<run-dir>/netpol`, see [`crate::handshake`]). `None`: no hand-over.
    pub run_dir: Option<PathBuf>,
}

impl NetpolConfig {
    /// Defaults for `node_name`: fail closed, resync every 5 minutes, no
    /// hand-over with the CNI plugin (set `run_dir` for it).
    pub fn new(node_name: &str) -> Self {
        NetpolConfig {
            node_name: node_name.to_string(),
            fail_closed_unknown_pods: true,
            resync_interval: Duration::from_secs(300),
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
    /// Receives every plan once it is live (for /metrics: pass it to
    /// [`crate::apply::read_counters`]).
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
    loop {
        let pending = scan(handshake.as_ref())?;
        let dispositions;
        (enforcer, dispositions) = reconcile(ctx, enforcer, &pending).await?;
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
    pending: &[PendingPod],
) -> Result<(Enforcer, Vec<Disposition>), NetpolError> {
    let started = Instant::now();
    let (plan, problems, dispositions) = plan_from_stores(ctx, pending);
    report(ctx, &problems).await;
    let (enforcer, outcome) = blocking(enforcer, move |e| e.apply(plan)).await?;
    if let Outcome::Applied(script) = &outcome? {
        tracing::info!(
            component = "netpol",
            replace = script.replace,
            bytes = script.text.len(),
            elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
            "applied"
        );
    }
    let live = enforcer.applied().cloned().map(Arc::new);
    ctx.applied.send_replace(live);
    Ok((enforcer, dispositions))
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

fn plan_from_stores(
    ctx: &Context,
    pending: &[PendingPod],
) -> (Plan, Vec<Problem>, Vec<Disposition>) {
    let node = ctx
        .nodes
        .store()
        .get(&ObjectRef::new(&ctx.config.node_name));
    let scope = NodeScope {
        name: ctx.config.node_name.clone(),
        pod_cidrs: node.as_deref().map(pod_cidrs).unwrap_or_default(),
        fail_closed_unknown_pods: ctx.config.fail_closed_unknown_pods,
    };
    let pods: Vec<Arc<Pod>> = ctx.pods.store().state();
    let namespaces: Vec<Arc<Namespace>> = ctx.namespaces.store().state();
    let policies: Vec<Arc<NetworkPolicy>> = ctx.policies.store().state();
    let (policies, mut pods, namespaces, problems) = views_from_api(
        policies.iter().map(AsRef::as_ref),
        pods.iter().map(AsRef::as_ref),
        namespaces.iter().map(AsRef::as_ref),
    );
    let dispositions = merge_pending(&mut pods, pending, &ctx.config.node_name);
    let inputs = Inputs {
        policies: &policies,
        pods: &pods,
        namespaces: &namespaces,
        node: &scope,
    };
    (plan::build(&inputs), problems, dispositions)
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
