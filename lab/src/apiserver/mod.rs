//! An in-memory Kubernetes API server for the lab.
//!
//! It speaks the real Kubernetes HTTP/JSON API (plain HTTP, no TLS, no auth)
//! well enough for kube-rs clients and the real `kubectl`: discovery, get/list
//! with selectors and pagination, watch with resourceVersion, bookmarks and
//! 410 Gone, create/update/patch (merge, JSON, strategic merge, apply),
//! delete with finalizers, graceful pod deletion and owner-reference garbage
//! collection, and ClusterIP/NodePort/podCIDR allocation.
//!
//! Objects are stored as `serde_json::Value`; behaviour is generic over the
//! registry in [`resources`], with per-kind hooks only where Kubernetes has
//! per-kind semantics (`hooks.rs` defaulting, `allocate.rs`, pod deletion).
//!
//! Not supported (requests get a Status error or the field is ignored):
//! TLS and authentication/authorization; admission and schema validation
//! (unknown fields are stored, `fieldValidation` is ignored); `dryRun`
//! (refused with 400); aggregated discovery (clients fall back to the legacy
//! documents served) and `/openapi/v2` (`kubectl explain`); full OpenAPI v3
//! schemas (only what kubectl's field-validation probe reads); protobuf
//! bodies except create of ConfigMap/Secret/Namespace/ServiceAccount;
//! managedFields and field ownership (server-side apply is a strategic merge
//! that creates when missing; `force` and conflicts are not modelled);
//! `$retainKeys` and `$setElementOrder` patch directives (ignored); list
//! consistency across pages (each page reads the latest state) and
//! `resourceVersion`/`resourceVersionMatch` on lists; Foreground deletion
//! (treated as Background); subresources other than status and pods/binding
//! (no scale, exec, logs, eviction, proxy); controllers (no Deployment or
//! DaemonSet rollout, no Endpoints, no `kubernetes` Service); CRDs.
//! Dual-stack is opt-in: a second service range and IPv6 podCIDRs
//! (see [`ApiServerConfig`]).

mod allocate;
mod discovery;
mod error;
mod families;
mod gc;
mod hooks;
mod http;
mod kubeconfig;
mod meta;
mod openapi;
mod ops;
mod patch;
mod protobuf;
mod query;
mod render;
pub mod resources;
mod route;
mod selector;
mod store;
mod table;
mod time;
mod watch;

use std::ops::RangeInclusive;
use std::sync::Arc;

pub use error::ApiError;
pub use kubeconfig::kubeconfig_yaml;
pub use selector::{FieldSelector, LabelSelector, SelectorError};

use store::Store;

/// Address ranges the server allocates from.
#[derive(Debug, Clone)]
pub struct ApiServerConfig {
    /// Service ClusterIPs come from here (the primary family).
    pub service_cidr: ipnet::IpNet,
    /// The second service range of a dual-stack lab (its family must
    /// differ from `service_cidr`'s): Services then honour
    /// spec.ipFamilyPolicy and spec.ipFamilies as in a dual-stack cluster.
    pub service_cidr_v6: Option<ipnet::IpNet>,
    /// Node podCIDRs are carved from here.
    pub cluster_cidr: ipnet::IpNet,
    /// Prefix length of each node's podCIDR block.
    pub node_cidr_prefix: u8,
    /// The IPv6 cluster CIDR of a dual-stack lab: every Node then also
    /// gets a block of it in spec.podCIDRs (after the IPv4 one).
    pub cluster_cidr_v6: Option<ipnet::IpNet>,
    /// Prefix length of each node's IPv6 block (K3s's default is /64).
    pub node_cidr_prefix_v6: u8,
    /// Range of Service nodePorts.
    pub node_port_range: RangeInclusive<u16>,
}

impl Default for ApiServerConfig {
    fn default() -> Self {
        Self {
            service_cidr: ipnet::IpNet::V4(
                ipnet::Ipv4Net::new(std::net::Ipv4Addr::new(10, 43, 0, 0), 16)
                    .expect("static prefix length is valid"),
            ),
            service_cidr_v6: None,
            cluster_cidr: ipnet::IpNet::V4(
                ipnet::Ipv4Net::new(std::net::Ipv4Addr::new(10, 42, 0, 0), 16)
                    .expect("static prefix length is valid"),
            ),
            node_cidr_prefix: 24,
            cluster_cidr_v6: None,
            node_cidr_prefix_v6: 64,
            node_port_range: 30000..=32767,
        }
    }
}

/// The in-memory API server. Share it through the `Arc` returned by [`ApiServer::new`].
pub struct ApiServer {
    store: Store,
}

impl ApiServer {
    /// Creates the server with the default namespaces and, when called inside
    /// a tokio runtime, starts the periodic garbage collector on it.
    pub fn new(config: ApiServerConfig) -> Arc<ApiServer> {
        let server = Arc::new(ApiServer {
            store: Store::new(config),
        });
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(gc::run_periodic(Arc::downgrade(&server)));
        }
        server
    }

    /// Serves HTTP/1.1 (and h2c) on `listener` until accepting fails fatally.
    /// May run for several listeners at once.
    pub async fn serve(self: Arc<Self>, listener: tokio::net::TcpListener) -> std::io::Result<()> {
        http::serve(self, listener).await
    }

    /// Current value of the global resourceVersion counter.
    pub fn resource_version(&self) -> u64 {
        self.store.lock().rv()
    }
}
