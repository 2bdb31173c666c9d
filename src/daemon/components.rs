//! Which components this configuration runs, and their supervisor adapters.

use std::sync::Arc;

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use tokio::sync::watch;

use cluster::Reflectors;
use cluster::events::Recorder;
use flannel::component::{Backend, Context, FlannelConfig};

use super::metrics::{ComponentMetrics, DnsMetrics, NetpolCounters};
use super::supervisor::Component;
use crate::config::{Config, Disableable};

/// The flannel component (subnet.env, CNI installation, overlay).
struct Flannel {
    ctx: Context,
}

impl Component for Flannel {
    fn name(&self) -> &'static str {
        "flannel"
    }

    fn run(self: Arc<Self>, ready: watch::Sender<bool>) -> BoxFuture<'static, anyhow::Result<()>> {
        Box::pin(async move { Ok(flannel::component::run(&self.ctx, &ready).await?) })
    }
}

/// The NetworkPolicy enforcer; runs in the daemon's network namespace.
struct Netpol {
    ctx: netpol::Context,
}

impl Component for Netpol {
    fn name(&self) -> &'static str {
        "netpol"
    }

    fn run(self: Arc<Self>, ready: watch::Sender<bool>) -> BoxFuture<'static, anyhow::Result<()>> {
        Box::pin(async move { Ok(netpol::run(&self.ctx, &ready).await?) })
    }
}

/// The cluster DNS server on the node's cluster DNS address.
struct Dns {
    component: dns::DnsComponent,
}

impl Component for Dns {
    fn name(&self) -> &'static str {
        "dns"
    }

    fn run(self: Arc<Self>, ready: watch::Sender<bool>) -> BoxFuture<'static, anyhow::Result<()>> {
        Box::pin(async move { Ok(self.component.run(&ready).await?) })
    }
}

/// What the daemon supervises, and the metric series those components add.
pub struct Built {
    pub components: Vec<Arc<dyn Component>>,
    pub metrics: Vec<Arc<dyn ComponentMetrics>>,
}

/// Builds the components to supervise; must run inside the runtime (the
/// shared reflectors start their watches on first use).
pub fn build(config: &Config, reflectors: &Reflectors) -> Built {
    let mut built = Built {
        components: Vec::new(),
        metrics: Vec::new(),
    };
    if let Some(backend) = config.flannel_backend {
        built
            .components
            .push(Arc::new(flannel(config, backend, reflectors)));
    }
    if config.enabled(Disableable::Netpol) {
        let (component, counters) = netpol(config, reflectors);
        built.components.push(Arc::new(component));
        built.metrics.push(counters);
    } else if let Err(err) = netpol::handshake::remove(&config.paths.run_dir) {
        // Left behind, it would make every CNI ADD wait for an enforcer
        // that does not run.
        tracing::warn!(component = "netpol", error = %err, "cannot remove the CNI hand-over directory");
    }
    if config.enabled(Disableable::Dns) {
        let component = dns(config, reflectors);
        built
            .metrics
            .push(Arc::new(DnsMetrics(component.component.metrics())));
        built.components.push(Arc::new(component));
    }
    built
}

/// The addresses our DNS answers on this node; policies see them as the
/// cluster DNS pods (netpol's `model::cluster_dns`). None when disabled:
/// then another DNS server owns the address.
fn served_dns(config: &Config) -> Vec<std::net::IpAddr> {
    if config.enabled(Disableable::Dns) {
        config.cluster_dns.clone()
    } else {
        Vec::new()
    }
}

/// Every `--cluster-dns` address is served (one per family, dual-stack).
fn dns(config: &Config, reflectors: &Reflectors) -> Dns {
    let dns_config = dns::DnsComponentConfig {
        cluster_dns: config.cluster_dns.clone(),
        cluster_domain: config.cluster_domain.clone(),
        resolv_conf: config.resolv_conf.clone(),
    };
    Dns {
        component: dns::DnsComponent::new(&dns_config, reflectors),
    }
}

fn flannel(config: &Config, backend: Backend, reflectors: &Reflectors) -> Flannel {
    let recorder = Recorder::new(
        reflectors.client().clone(),
        "nodenet-flannel",
        &config.node_name,
    );
    Flannel {
        ctx: Context {
            config: FlannelConfig {
                node_name: config.node_name.clone(),
                node_ips: config.node_ips.clone(),
                node_external_ips: config.node_external_ips.clone(),
                cluster_cidrs: config.cluster_cidrs.clone(),
                backend,
                iface: config.flannel.iface.clone(),
                external_ip: config.flannel.external_ip,
                ipv6_masq: config.flannel.ipv6_masq,
                wireguard_mode: config.flannel.wireguard_mode,
                run_dir: config.paths.run_dir.clone(),
                data_dir: config.paths.data_dir.clone(),
                cni_conf_dir: config.paths.cni_conf_dir.clone(),
                cni_bin_dir: config.paths.cni_bin_dir.clone(),
            },
            nodes: reflectors.shared::<Node>(),
            client: reflectors.client().clone(),
            events: Arc::new(recorder),
        },
    }
}

/// The enforcer's context; its applied plans feed the /metrics counters.
fn netpol(config: &Config, reflectors: &Reflectors) -> (Netpol, Arc<NetpolCounters>) {
    let recorder = Recorder::new(
        reflectors.client().clone(),
        "nodenet-netpol",
        &config.node_name,
    );
    let (applied, plans) = watch::channel(None);
    let counters = NetpolCounters::start(plans);
    let component = Netpol {
        ctx: netpol::Context {
            config: netpol::NetpolConfig {
                run_dir: Some(config.paths.run_dir.clone()),
                cluster_dns: served_dns(config),
                ..netpol::NetpolConfig::new(&config.node_name)
            },
            nodes: reflectors.shared::<Node>(),
            pods: reflectors.shared::<Pod>(),
            namespaces: reflectors.shared::<Namespace>(),
            policies: reflectors.shared::<NetworkPolicy>(),
            events: Arc::new(recorder),
            applied,
        },
    };
    (component, counters)
}

/// With dns disabled, a cluster DNS address a previous run left on `lo`
/// would capture the node's queries meant for whatever serves that ClusterIP
/// now (CoreDNS behind kube-proxy, say). Removes what our own table records,
/// nothing else; the other components keep their state until `cleanup`.
pub async fn release_disabled_dns(config: &Config) {
    if config.enabled(Disableable::Dns) {
        return;
    }
    match dns::node_local::teardown_recorded(false).await {
        Ok(removed) => {
            for item in removed {
                tracing::info!(component = "dns", %item, "disabled: removed");
            }
        }
        Err(err) => tracing::warn!(component = "dns", error = %err,
            "disabled, but cannot remove the node-local DNS address"),
    }
}

/// Logs once, at start, what runs and what does not, and why.
pub fn log_plan(config: &Config) {
    match config.flannel_backend {
        Some(backend) => tracing::info!(
            component = "flannel",
            backend = backend.name(),
            iface = ?config.flannel.iface,
            external_ip = config.flannel.external_ip,
            ipv6_masq = config.flannel.ipv6_masq,
            wireguard_mode = ?config.flannel.wireguard_mode,
            "runs: pod subnet, CNI plugin and overlay"
        ),
        None => tracing::info!(component = "flannel", "off (--flannel-backend=none)"),
    }
    for component in Disableable::ALL {
        if component == Disableable::Netpol && config.enabled(component) {
            tracing::info!(
                component = "netpol",
                "runs: NetworkPolicy enforcer (table inet nodenet-netpol)"
            );
        } else if component == Disableable::Dns && config.enabled(component) {
            tracing::info!(
                component = "dns",
                address = ?config.cluster_dns.first(),
                "runs: cluster DNS on the node-local cluster DNS address"
            );
        } else if config.enabled(component) {
            tracing::info!(
                component = component.name(),
                "enabled but not implemented yet: nothing runs for it"
            );
        } else {
            tracing::info!(component = component.name(), "disabled");
        }
    }
}

#[cfg(test)]
mod tests;
