//! The DNS component's entry point for the daemon: validate, bind, serve
//! SERVFAIL for cluster names until the views are synced, then keep the
//! table current from watch events.

mod sync;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use cluster::compact::{EndpointSlice, Service};
use k8s_openapi::api::core::v1::{Namespace, Node};
use tokio::sync::watch;

use cluster::Shared;

use crate::forward::{ForwardConfig, Forwarder, resolv};
use crate::metrics::Metrics;
use crate::records::{NameError, Table, Zone, ZoneConfig};
use crate::server::{Context, Server, ServerConfig, ServerError};

/// The store types `Syncer` reads (for callers without a `cluster`
/// dependency, such as the fuzz fixture).
pub use cluster::compact;
pub use sync::{ChangedObjects, Stores, Syncer};

/// Where upstream servers come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Upstreams {
    /// A resolv.conf (`--resolv-conf`, default /etc/resolv.conf); a file
    /// naming only systemd-resolved's stub is followed to `systemd_resolved`.
    ResolvConf {
        path: PathBuf,
        systemd_resolved: PathBuf,
    },
    /// Fixed servers (tests, or an explicit setting).
    Static(Vec<SocketAddr>),
}

/// Everything the DNS component needs besides the views.
#[derive(Debug, Clone)]
pub struct DnsConfig {
    pub zone: ZoneConfig,
    pub server: ServerConfig,
    pub upstreams: Upstreams,
    /// Forwarder limits; its `upstreams` field is filled from `upstreams`.
    pub forward: ForwardConfig,
    /// An optional hosts file served next to node names (re-read on every
    /// table sync and every `hosts_reload`).
    pub hosts_file: Option<PathBuf>,
    pub hosts_reload: Duration,
    /// The settle window of the views' change signals (to date watch
    /// events for the sync latency metric).
    pub settle: Duration,
}

impl Default for DnsConfig {
    fn default() -> Self {
        DnsConfig {
            zone: ZoneConfig::default(),
            server: ServerConfig::default(),
            upstreams: Upstreams::ResolvConf {
                path: "/etc/resolv.conf".into(),
                systemd_resolved: resolv::SYSTEMD_RESOLVED_UPSTREAMS.into(),
            },
            forward: ForwardConfig::default(),
            hosts_file: None,
            hosts_reload: Duration::from_secs(15),
            settle: cluster::reflectors::DEFAULT_SETTLE,
        }
    }
}

/// The shared reflectors the table is built from. Services and
/// EndpointSlices are the compact store types (`cluster::compact`): no
/// other component reads them, and they are the numerous kinds.
#[derive(Clone)]
pub struct DnsViews {
    pub services: Shared<Service>,
    pub slices: Shared<EndpointSlice>,
    pub nodes: Shared<Node>,
    /// Optional: without it a namespace exists while it holds a Service.
    pub namespaces: Option<Shared<Namespace>>,
}

/// The component failed.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    /// `zone.domain` is not a valid domain name.
    #[error("cluster domain: {0}")]
    Domain(#[from] NameError),
    #[error(transparent)]
    Bind(#[from] ServerError),
    /// The node-local address or notrack table could not be set up.
    #[error(transparent)]
    NodeLocal(#[from] crate::node_local::NodeLocalError),
    /// A reflector's writer went away (the daemon is shutting down).
    #[error("a watched view closed")]
    ViewClosed,
}

/// Runs the DNS component until cancelled (dropping the future stops the
/// listeners). `ready` turns true after the first full table is served.
/// `metrics` is counted into (keep it across restarts).
pub async fn run(
    config: &DnsConfig,
    views: &DnsViews,
    metrics: &Arc<Metrics>,
    ready: &watch::Sender<bool>,
) -> Result<(), DnsError> {
    let zone = Arc::new(Zone::new(&config.zone)?);
    let forward = ForwardConfig {
        upstreams: upstreams(config),
        ..config.forward.clone()
    };
    let table = Arc::new(ArcSwap::from_pointee(Table::new(zone.clone())));
    let ctx = Arc::new(Context {
        table: table.clone(),
        forwarder: Arc::new(Forwarder::with_stats(forward, metrics.forward_stats())),
        metrics: metrics.clone(),
    });
    let server = Server::bind(&config.server, ctx).await?;
    tracing::info!(udp = ?server.udp_addrs(), tcp = ?server.tcp_addrs(), "DNS listening");
    tokio::select! {
        () = server.serve() => Ok(()),
        res = sync::keep_synced(zone, views, config, table, metrics, ready) => res,
    }
}

/// The upstream servers, without ourselves. With none left (resolv.conf
/// unreadable, empty, or naming only our own addresses) the cluster zone is
/// still served and every other name gets SERVFAIL: failing the component
/// instead would take cluster names down with it.
fn upstreams(config: &DnsConfig) -> Vec<SocketAddr> {
    let listen = &config.server.listen;
    let found = match &config.upstreams {
        Upstreams::ResolvConf {
            path,
            systemd_resolved,
        } => resolv::load(path, systemd_resolved, listen).map_err(|e| e.to_string()),
        Upstreams::Static(list) => {
            let (kept, skipped) = resolv::without_self(list.clone(), listen);
            if kept.is_empty() {
                Err(format!(
                    "no static upstream left (skipped as our own: {skipped:?})"
                ))
            } else {
                Ok(kept)
            }
        }
    };
    found.unwrap_or_else(|why| {
        tracing::error!(%why, "no upstream DNS server: cluster names are served, other names get SERVFAIL");
        Vec::new()
    })
}
