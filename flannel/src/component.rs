//! The daemon side of flannel: pod subnet, CNI installation and overlay.
//!
//! Watches the Nodes through the shared reflector. For this node's
//! spec.podCIDR(s) it writes `<run-dir>/subnet.env`, installs the running
//! binary as the CNI plugin and the conflist naming it; then (VXLAN,
//! host-gw or WireGuard) runs an [`Overlay`](crate::overlay::Overlay) pass over every
//! Node, annotates our Node as flannel does and reports unusable peers.
//! Passes run on every Node change (coalesced) and every [`RESYNC`], so a
//! deleted device or route comes back. Ready after the first complete
//! pass. A podCIDR that is malformed or outside --cluster-cidr is reported
//! as an Event on the Node naming the field, the component turns not-ready
//! and waits for the next change; I/O and kernel failures end `run` with an
//! error so the supervisor restarts it with backoff.

mod driver;
mod install;
mod local;
mod mtu;
pub mod plan;
mod report;

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use cluster::Shared;
use cluster::events::Recorder;
use host::names;
use ipnet::IpNet;
use k8s_openapi::api::core::v1::Node;
use kube::runtime::reflector::ObjectRef;
use tokio::sync::watch;

use crate::conflist::{self, ConflistParams};
use crate::overlay::{self, OverlayError};
use crate::subnet::{SubnetEnv, SubnetEnvError};
use driver::Driver;
pub use install::InstallError;
pub use mtu::MtuError;
use plan::{LocalAddrs, PodCidrs};

/// Period of the reconcile that repairs drift when no Node changes.
pub const RESYNC: Duration = Duration::from_secs(10);

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

    /// The overlay backend, `None` where no overlay is built yet.
    pub fn overlay(self) -> overlay::Backend {
        match self {
            Backend::Vxlan => overlay::Backend::Vxlan,
            Backend::HostGw => overlay::Backend::HostGw,
            Backend::WireguardNative => overlay::Backend::Wireguard,
        }
    }
}

/// What the component needs from the daemon's configuration.
#[derive(Debug, Clone)]
pub struct FlannelConfig {
    pub node_name: String,
    /// --node-ip; empty means "the Node's InternalIP".
    pub node_ips: Vec<IpAddr>,
    /// --node-external-ip.
    pub node_external_ips: Vec<IpAddr>,
    pub cluster_cidrs: Vec<IpNet>,
    pub backend: Backend,
    /// --flannel-iface: its addresses are the tunnel endpoints.
    pub iface: Option<String>,
    /// --flannel-external-ip: publish `node_external_ips` as endpoints.
    pub external_ip: bool,
    /// --flannel-ipv6-masq.
    pub ipv6_masq: bool,
    /// --flannel-wireguard-mode.
    pub wireguard_mode: crate::overlay::wireguard::WireguardMode,
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
    /// Neither --flannel-iface, --node-ip nor the Node's InternalIP gives an
    /// address of a family of the cluster CIDRs.
    #[error(
        "Node {node}: no --flannel-iface, --node-ip or InternalIP (status.addresses) address of the --cluster-cidr families; cannot pick the overlay endpoint"
    )]
    NoNodeIp { node: String },
    /// --flannel-iface names no interface of this network namespace.
    #[error("--flannel-iface {name}: no such interface in this network namespace")]
    NoIface { name: String },
    /// --flannel-iface has no address other nodes could reach.
    #[error("--flannel-iface {name}: the interface has no address other than link-local")]
    IfaceWithoutAddress { name: String },
    /// Reading interfaces failed.
    #[error("cannot read interfaces: {0}")]
    Link(#[from] host::link::LinkError),
    /// The underlay MTU could not be read.
    #[error(transparent)]
    Mtu(#[from] MtuError),
    /// Writing subnet.env, the plugin or the conflist failed.
    #[error(transparent)]
    Install(#[from] InstallError),
    /// Enabling IP forwarding failed.
    #[error(transparent)]
    Sysctl(#[from] host::sysctl::SysctlError),
    /// The overlay pass failed in the kernel.
    #[error(transparent)]
    Overlay(#[from] OverlayError),
}

/// Shared inputs of [`run`].
pub struct Context {
    pub config: FlannelConfig,
    pub nodes: Shared<Node>,
    /// For patching our Node's annotations.
    pub client: kube::Client,
    pub events: Arc<Recorder>,
}

/// Runs until the Node watch stops or a step fails. `ready` turns true
/// after the first complete pass and false while the Node is unusable.
pub async fn run(ctx: &Context, ready: &watch::Sender<bool>) -> Result<(), FlannelError> {
    ready.send_replace(false);
    enable_forwarding(&ctx.config.cluster_cidrs)?;
    let mut changes = ctx.nodes.changes();
    ctx.nodes
        .wait_ready()
        .await
        .map_err(|_| FlannelError::WatchStopped)?;
    let mut state = State::new(&ctx.config);
    loop {
        let complete = reconcile(ctx, &mut state).await?;
        ready.send_replace(complete);
        // A timeout is the periodic pass; both wake the same reconcile.
        if let Ok(Err(_)) = tokio::time::timeout(RESYNC, changes.changed()).await {
            return Err(FlannelError::WatchStopped);
        }
    }
}

/// What is remembered between passes of one `run`.
struct State {
    /// Computed once per start, as flannel does (later MTU changes of the
    /// interface are not followed).
    mtu: Option<u32>,
    plugin_installed: bool,
    driver: Driver,
}

impl State {
    fn new(cfg: &FlannelConfig) -> State {
        State {
            mtu: None,
            plugin_installed: false,
            driver: Driver::new(cfg),
        }
    }
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
    let addrs = local::resolve(cfg, &node).await?;
    let mtu = underlay_mtu(cfg, &addrs, state).await?;
    let env = match plan::subnet_env(&cidrs, &cfg.cluster_cidrs, mtu) {
        Ok(env) => env,
        Err(err) => {
            report_bad_pod_cidr(ctx, &err).await;
            return Ok(false);
        }
    };
    install(cfg, &env, state)?;
    state.driver.pass(ctx, &env, &addrs).await
}

async fn underlay_mtu(
    cfg: &FlannelConfig,
    addrs: &LocalAddrs,
    state: &mut State,
) -> Result<u32, FlannelError> {
    if let Some(mtu) = state.mtu {
        return Ok(mtu);
    }
    let base = match (&cfg.iface, addrs.primary()) {
        (Some(name), _) => mtu::mtu_of_interface(name).await?,
        (None, Some(ip)) => mtu::mtu_of_interface_with(ip).await?,
        (None, None) => {
            return Err(FlannelError::NoNodeIp {
                node: cfg.node_name.clone(),
            });
        }
    };
    let mtu = plan::pod_mtu(base, cfg.backend);
    tracing::info!(component = "flannel", addrs = ?addrs, mtu, backend = cfg.backend.name(), "pod MTU");
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

async fn report_bad_pod_cidr(ctx: &Context, err: &SubnetEnvError) {
    let field = match err {
        SubnetEnvError::PodCidr { field, .. } => *field,
        _ => "spec.podCIDR",
    };
    let node = &ctx.config.node_name;
    tracing::warn!(component = "flannel", node = %node, field, error = %err, "unusable pod CIDR; not ready until the Node changes");
    let message = format!("{err}; nodenet cannot wire pods on this node");
    report::warn_node(ctx, node, "InvalidPodCIDR", field, message).await;
}
