//! The daemon side of flannel (this issue: subnet and CNI, no overlay yet).
//!
//! Watches this node's Node object through the shared reflector, and for its
//! spec.podCIDR(s) writes `<run-dir>/subnet.env`, installs the running
//! binary as the CNI plugin and the conflist naming it. Ready after the first
//! complete write; rewritten (only what differs) whenever the Node changes.
//! A podCIDR that is malformed or outside --cluster-cidr is reported as an
//! Event on the Node naming the field, the component turns not-ready and
//! waits for the next change; I/O failures end `run` with an error so the
//! supervisor restarts it with backoff.

mod install;
mod mtu;
pub mod plan;

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use cluster::Shared;
use cluster::events::{Recorder, Warning};
use host::names;
use ipnet::IpNet;
use k8s_openapi::api::core::v1::{Node, ObjectReference};
use kube::runtime::reflector::ObjectRef;
use tokio::sync::watch;

use crate::conflist::{self, ConflistParams};
use crate::subnet::{SubnetEnv, SubnetEnvError};
pub use install::InstallError;
pub use mtu::MtuError;
use plan::PodCidrs;

/// The overlay backend (`--flannel-backend`; `none` means no component).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Vxlan,
    HostGw,
    WireguardNative,
}

impl Backend {
    /// Bytes of encapsulation subtracted from the underlay MTU (flannel.md §1.5).
    pub fn mtu_overhead(self) -> u32 {
        match self {
            Backend::Vxlan => 50,
            Backend::WireguardNative => 80,
            Backend::HostGw => 0,
        }
    }

    /// The `--flannel-backend` spelling.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Vxlan => "vxlan",
            Backend::HostGw => "host-gw",
            Backend::WireguardNative => "wireguard-native",
        }
    }
}

/// What the component needs from the daemon's configuration.
#[derive(Debug, Clone)]
pub struct FlannelConfig {
    pub node_name: String,
    /// --node-ip; empty means "the Node's InternalIP".
    pub node_ips: Vec<IpAddr>,
    pub cluster_cidrs: Vec<IpNet>,
    pub backend: Backend,
    pub run_dir: PathBuf,
    pub data_dir: PathBuf,
    pub cni_conf_dir: PathBuf,
    pub cni_bin_dir: PathBuf,
}

/// Why the component stopped (the supervisor restarts it).
#[derive(Debug, thiserror::Error)]
pub enum FlannelError {
    /// The Node reflector stopped before or after its first list.
    #[error("the Node watch stopped; the daemon is shutting down")]
    WatchStopped,
    /// Neither --node-ip nor the Node's InternalIP gives an underlay address.
    #[error("Node {node}: no --node-ip and no InternalIP in status.addresses; cannot pick the MTU")]
    NoNodeIp { node: String },
    /// The underlay MTU could not be read.
    #[error(transparent)]
    Mtu(#[from] MtuError),
    /// Writing subnet.env, the plugin or the conflist failed.
    #[error(transparent)]
    Install(#[from] InstallError),
    /// Enabling IP forwarding failed.
    #[error(transparent)]
    Sysctl(#[from] host::sysctl::SysctlError),
}

/// Shared inputs of [`run`].
pub struct Context {
    pub config: FlannelConfig,
    pub nodes: Shared<Node>,
    pub events: Arc<Recorder>,
}

/// Runs until the Node watch stops or an I/O step fails. `ready` turns true
/// after the first complete write and false while the Node is unusable.
pub async fn run(ctx: &Context, ready: &watch::Sender<bool>) -> Result<(), FlannelError> {
    ready.send_replace(false);
    enable_forwarding(&ctx.config.cluster_cidrs)?;
    let mut changes = ctx.nodes.changes();
    ctx.nodes
        .wait_ready()
        .await
        .map_err(|_| FlannelError::WatchStopped)?;
    let mut state = State::default();
    loop {
        let complete = reconcile(ctx, &mut state).await?;
        ready.send_replace(complete);
        changes
            .changed()
            .await
            .map_err(|_| FlannelError::WatchStopped)?;
    }
}

/// What is remembered between reconciles of one `run`.
#[derive(Default)]
struct State {
    /// Computed once per start, as flannel does (later MTU changes of the
    /// interface are not followed).
    mtu: Option<u32>,
    plugin_installed: bool,
}

/// One pass; Ok(true) when everything is written, Ok(false) when the Node is
/// missing or unusable (wait for a change).
async fn reconcile(ctx: &Context, state: &mut State) -> Result<bool, FlannelError> {
    let cfg = &ctx.config;
    let Some(node) = ctx.nodes.store().get(&ObjectRef::new(&cfg.node_name)) else {
        tracing::info!(component = "flannel", node = %cfg.node_name, "waiting for the Node object");
        return Ok(false);
    };
    let PodCidrs::Allocated(cidrs) = plan::pod_cidrs(&node) else {
        tracing::info!(component = "flannel", node = %cfg.node_name, "waiting for spec.podCIDR");
        return Ok(false);
    };
    let mtu = underlay_mtu(cfg, &node, state).await?;
    match plan::subnet_env(&cidrs, &cfg.cluster_cidrs, mtu) {
        Ok(env) => install(cfg, &env, state).map(|()| true),
        Err(err) => {
            report_bad_pod_cidr(ctx, &node, &err).await;
            Ok(false)
        }
    }
}

async fn underlay_mtu(
    cfg: &FlannelConfig,
    node: &Node,
    state: &mut State,
) -> Result<u32, FlannelError> {
    if let Some(mtu) = state.mtu {
        return Ok(mtu);
    }
    let ip = plan::underlay_ip(&cfg.node_ips, node).ok_or_else(|| FlannelError::NoNodeIp {
        node: cfg.node_name.clone(),
    })?;
    let mtu = plan::pod_mtu(mtu::mtu_of_interface_with(ip).await?, cfg.backend);
    tracing::info!(component = "flannel", %ip, mtu, backend = cfg.backend.name(), "pod MTU");
    state.mtu = Some(mtu);
    Ok(mtu)
}

/// Writes in dependency order: the runtime acts on the conflist, which
/// makes it exec the plugin, which reads subnet.env; so the conflist comes
/// last and a runtime never calls a plugin that is not there yet.
fn install(cfg: &FlannelConfig, env: &SubnetEnv, state: &mut State) -> Result<(), FlannelError> {
    if !state.plugin_installed {
        let plugin = cfg.cni_bin_dir.join(names::CNI_PLUGIN_TYPE);
        if install::install_self(&plugin)? {
            tracing::info!(component = "flannel", path = %plugin.display(), "installed CNI plugin");
        }
        state.plugin_installed = true;
    }
    let subnet_file = cfg.run_dir.join(names::SUBNET_ENV_FILE);
    write_logged(&subnet_file, env.render().as_bytes())?;
    let params = ConflistParams {
        run_dir: cfg.run_dir.clone(),
        data_dir: cfg.data_dir.clone(),
    };
    let conflist_file = cfg.cni_conf_dir.join(names::CNI_CONFLIST_FILE);
    write_logged(&conflist_file, conflist::render(&params).as_bytes())?;
    Ok(())
}

fn write_logged(path: &std::path::Path, content: &[u8]) -> Result<(), FlannelError> {
    if install::write_if_changed(path, content, 0o644)? {
        tracing::info!(component = "flannel", path = %path.display(), "wrote");
    }
    Ok(())
}

/// IP forwarding in the daemon's network namespace, per configured family:
/// without it the node cannot route pod traffic.
fn enable_forwarding(cluster_cidrs: &[IpNet]) -> Result<(), FlannelError> {
    if cluster_cidrs.iter().any(|n| n.addr().is_ipv4()) {
        host::sysctl::ensure("net.ipv4.ip_forward", "1")?;
    }
    if cluster_cidrs.iter().any(|n| n.addr().is_ipv6()) {
        host::sysctl::ensure("net.ipv6.conf.all.forwarding", "1")?;
    }
    Ok(())
}

async fn report_bad_pod_cidr(ctx: &Context, node: &Node, err: &SubnetEnvError) {
    let field = match err {
        SubnetEnvError::PodCidr { field, .. } => *field,
        _ => "spec.podCIDR",
    };
    tracing::warn!(component = "flannel", node = %ctx.config.node_name, field, error = %err, "unusable pod CIDR; not ready until the Node changes");
    let warning = Warning {
        object: node_reference(node),
        reason: "InvalidPodCIDR",
        field,
        message: format!("{err}; nodenet cannot wire pods on this node"),
    };
    if let Err(post) = ctx.events.warn(&warning).await {
        tracing::warn!(component = "flannel", error = %post, "cannot post Event");
    }
}

fn node_reference(node: &Node) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Node".into()),
        name: node.metadata.name.clone(),
        uid: node.metadata.uid.clone(),
        ..ObjectReference::default()
    }
}
