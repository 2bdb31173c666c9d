//! The daemon-facing DNS component: node-local addresses and notrack
//! table, the kube-system/kube-dns Service, and the server on port 53 of
//! every `--cluster-dns` address (one per family when dual-stack).

mod service;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use cluster::compact::{EndpointSlice, Service};
use k8s_openapi::api::core::v1::{Namespace, Node};
use tokio::sync::watch;

use crate::forward::resolv;
use crate::metrics::Metrics;
use crate::records::ZoneConfig;
use crate::run::{DnsConfig, DnsError, DnsViews, Upstreams};
use crate::server::ServerConfig;

pub use service::{KUBE_DNS_NAME, KUBE_DNS_NAMESPACE, kube_dns_service};

/// What the daemon passes from its flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsComponentConfig {
    /// `--cluster-dns`: every address is served on every node; the first
    /// is the kube-dns ClusterIP, all of them its ClusterIPs. Not empty
    /// (the daemon's configuration guarantees it).
    pub cluster_dns: Vec<IpAddr>,
    /// `--cluster-domain`.
    pub cluster_domain: String,
    /// `--resolv-conf`; default /etc/resolv.conf (following
    /// systemd-resolved's stub to its real upstreams).
    pub resolv_conf: Option<PathBuf>,
}

impl DnsComponentConfig {
    /// The server settings this configuration implies.
    pub fn dns_config(&self) -> DnsConfig {
        let udp_sockets = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(4);
        DnsConfig {
            zone: ZoneConfig {
                domain: self.cluster_domain.clone(),
                ns_addrs: self.cluster_dns.clone(),
                ..ZoneConfig::default()
            },
            server: ServerConfig {
                listen: self
                    .cluster_dns
                    .iter()
                    .map(|&ip| SocketAddr::new(ip, 53))
                    .collect(),
                udp_sockets,
                ..ServerConfig::default()
            },
            upstreams: Upstreams::ResolvConf {
                path: self
                    .resolv_conf
                    .clone()
                    .unwrap_or_else(|| "/etc/resolv.conf".into()),
                systemd_resolved: resolv::SYSTEMD_RESOLVED_UPSTREAMS.into(),
            },
            ..DnsConfig::default()
        }
    }
}

/// One DNS component: build it once (it starts the shared watches it
/// needs), run it as often as the supervisor likes; the metrics survive
/// restarts.
pub struct DnsComponent {
    cluster_dns: Vec<IpAddr>,
    config: DnsConfig,
    views: DnsViews,
    client: kube::Client,
    metrics: Arc<Metrics>,
}

impl DnsComponent {
    /// Must be called inside the runtime (reflectors start on first use).
    pub fn new(config: &DnsComponentConfig, reflectors: &cluster::Reflectors) -> DnsComponent {
        DnsComponent {
            cluster_dns: config.cluster_dns.clone(),
            config: config.dns_config(),
            views: DnsViews {
                services: reflectors.shared::<Service>(),
                slices: reflectors.shared::<EndpointSlice>(),
                nodes: reflectors.shared::<Node>(),
                namespaces: Some(reflectors.shared::<Namespace>()),
            },
            client: reflectors.client().clone(),
            metrics: Arc::new(Metrics::new()),
        }
    }

    /// The handle whose `render_metrics` the daemon's /metrics appends.
    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    /// Sets up node-local serving, then serves and keeps the kube-dns
    /// Service until cancelled or failed. Dropping the future stops the
    /// listeners and leaves the address and table in place (see
    /// [`crate::node_local`] for why that is the safe state).
    pub async fn run(&self, ready: &watch::Sender<bool>) -> Result<(), DnsError> {
        let changed = crate::node_local::ensure_all(&self.cluster_dns).await?;
        tracing::info!(addresses = ?self.cluster_dns, added_address = changed.address,
            wrote_table = changed.table, "DNS: cluster DNS addresses terminate on this node");
        let services = self.views.services.clone();
        let keep = service::keep(self.client.clone(), services, &self.cluster_dns);
        tokio::select! {
            res = crate::run(&self.config, &self.views, &self.metrics, ready) => res,
            never = keep => match never {},
        }
    }
}

/// One run of the component from the daemon's registry (convenience over
/// [`DnsComponent`]; a fresh metrics handle each call, so prefer
/// `DnsComponent` when /metrics should show DNS counters).
pub async fn run_component(
    config: DnsComponentConfig,
    reflectors: &cluster::Reflectors,
    ready: watch::Sender<bool>,
) -> Result<(), DnsError> {
    DnsComponent::new(&config, reflectors).run(&ready).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_daemon_flags_become_a_server_on_the_cluster_dns_address() {
        let config = DnsComponentConfig {
            cluster_dns: vec!["10.43.0.10".parse().expect("ip")],
            cluster_domain: "example.internal".into(),
            resolv_conf: Some("/run/custom-resolv.conf".into()),
        };
        let dns = config.dns_config();
        assert_eq!(
            dns.server.listen,
            ["10.43.0.10:53".parse::<SocketAddr>().expect("addr")]
        );
        assert_eq!(dns.zone.domain, "example.internal");
        assert_eq!(dns.zone.ns_addrs, config.cluster_dns);
        let Upstreams::ResolvConf { path, .. } = &dns.upstreams else {
            panic!("upstreams from a resolv.conf");
        };
        assert_eq!(path, &PathBuf::from("/run/custom-resolv.conf"));
        let default = DnsComponentConfig {
            resolv_conf: None,
            ..config
        };
        let Upstreams::ResolvConf { path, .. } = default.dns_config().upstreams else {
            panic!("upstreams from a resolv.conf");
        };
        assert_eq!(path, PathBuf::from("/etc/resolv.conf"));
    }

    #[test]
    fn every_cluster_dns_address_is_listened_on_and_an_apex_ns_address() {
        let config = DnsComponentConfig {
            cluster_dns: vec![
                "10.43.0.10".parse().expect("ip"),
                "fd00:43::a".parse().expect("ip"),
            ],
            cluster_domain: "cluster.local".into(),
            resolv_conf: None,
        };
        let dns = config.dns_config();
        let want: Vec<SocketAddr> = vec![
            "10.43.0.10:53".parse().expect("addr"),
            "[fd00:43::a]:53".parse().expect("addr"),
        ];
        assert_eq!(dns.server.listen, want);
        assert_eq!(dns.zone.ns_addrs, config.cluster_dns);
    }

    fn assert_send<T: Send>(_: &T) {}

    /// The daemon boxes these futures into `BoxFuture<'static>` (Send).
    #[tokio::test]
    async fn the_component_and_teardown_futures_are_send() {
        let client = kube::Client::try_from(kube::Config::new(
            "http://127.0.0.1:1".parse().expect("uri"),
        ))
        .expect("client");
        let reflectors = cluster::Reflectors::new(client);
        let config = DnsComponentConfig {
            cluster_dns: vec!["10.43.0.10".parse().expect("ip")],
            cluster_domain: "cluster.local".into(),
            resolv_conf: None,
        };
        let component = DnsComponent::new(&config, &reflectors);
        let (tx, _rx) = watch::channel(false);
        assert_send(&component.run(&tx));
        assert_send(&run_component(config.clone(), &reflectors, tx.clone()));
        assert_send(&crate::node_local::teardown_all(&config.cluster_dns, true));
        assert_send(&crate::node_local::teardown_recorded(true));
        fn assert_sync<T: Send + Sync>(_: &T) {}
        assert_sync(&component);
    }
}
