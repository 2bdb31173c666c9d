//! The resolv.conf a kubelet writes for a pod, from its dnsPolicy and
//! dnsConfig (Kubernetes "Pod's DNS Policy").

use k8s_openapi::api::core::v1::Pod;
use std::net::IpAddr;

/// Cluster DNS settings the kubelet is configured with.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterDns {
    /// kubelet's `clusterDNS`: every address becomes a nameserver line.
    pub servers: Vec<IpAddr>,
    pub domain: String,
}

impl Default for ClusterDns {
    fn default() -> Self {
        ClusterDns {
            servers: vec![IpAddr::from([10, 43, 0, 10])],
            domain: "cluster.local".into(),
        }
    }
}

impl ClusterDns {
    /// A dual-stack lab's kubelets: both cluster DNS addresses
    /// ([`crate::config::DUAL_STACK_CLUSTER_DNS`]), IPv4 first.
    pub fn dual_stack() -> Self {
        let servers = crate::config::DUAL_STACK_CLUSTER_DNS
            .split(',')
            .filter_map(|ip| ip.parse().ok())
            .collect();
        ClusterDns {
            servers,
            ..ClusterDns::default()
        }
    }

    /// An IPv6-only lab's kubelets: [`crate::config::IPV6_ONLY_CLUSTER_DNS`].
    pub fn ipv6_only() -> Self {
        let servers = crate::config::IPV6_ONLY_CLUSTER_DNS
            .parse()
            .into_iter()
            .collect();
        ClusterDns {
            servers,
            ..ClusterDns::default()
        }
    }
}

/// The parts of a resolv.conf.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Resolv {
    pub nameservers: Vec<String>,
    pub searches: Vec<String>,
    pub options: Vec<String>,
}

impl Resolv {
    /// resolv.conf text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for ns in &self.nameservers {
            out.push_str(&format!("nameserver {ns}\n"));
        }
        if !self.searches.is_empty() {
            out.push_str(&format!("search {}\n", self.searches.join(" ")));
        }
        if !self.options.is_empty() {
            out.push_str(&format!("options {}\n", self.options.join(" ")));
        }
        out
    }
}

/// The cluster-first configuration for a pod in `namespace`.
pub fn cluster_first(namespace: &str, dns: &ClusterDns) -> Resolv {
    let d = &dns.domain;
    Resolv {
        nameservers: dns.servers.iter().map(ToString::to_string).collect(),
        searches: vec![
            format!("{namespace}.svc.{d}"),
            format!("svc.{d}"),
            d.clone(),
        ],
        options: vec!["ndots:5".into()],
    }
}

/// What the pod's /etc/resolv.conf should be; `None` means the node's own
/// file (policy `Default`, or `ClusterFirst` on the host network).
pub fn for_pod(pod: &Pod, dns: &ClusterDns) -> Option<Resolv> {
    let spec = pod.spec.as_ref()?;
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let host_net = spec.host_network == Some(true);
    let mut base = match spec.dns_policy.as_deref().unwrap_or("ClusterFirst") {
        "None" => Resolv::default(),
        "Default" => return custom_only(pod),
        "ClusterFirst" if host_net => return custom_only(pod),
        _ => cluster_first(namespace, dns),
    };
    if let Some(cfg) = &spec.dns_config {
        base.nameservers
            .extend(cfg.nameservers.iter().flatten().cloned());
        base.searches.extend(cfg.searches.iter().flatten().cloned());
        for opt in cfg.options.iter().flatten() {
            let name = opt.name.clone().unwrap_or_default();
            base.options
                .retain(|o| o.split(':').next() != Some(name.as_str()));
            base.options.push(match &opt.value {
                Some(v) => format!("{name}:{v}"),
                None => name,
            });
        }
    }
    Some(base)
}

/// `Default` policy keeps the node's file unless dnsConfig adds to it; the
/// lab does not merge into the node's file, so dnsConfig is then used alone.
fn custom_only(pod: &Pod) -> Option<Resolv> {
    let cfg = pod.spec.as_ref()?.dns_config.as_ref()?;
    let r = Resolv {
        nameservers: cfg.nameservers.clone().unwrap_or_default(),
        searches: cfg.searches.clone().unwrap_or_default(),
        options: Vec::new(),
    };
    (!r.nameservers.is_empty()).then_some(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodDNSConfig, PodDNSConfigOption, PodSpec};

    fn pod(policy: Option<&str>, host_net: bool) -> Pod {
        let mut p = Pod {
            spec: Some(PodSpec {
                dns_policy: policy.map(String::from),
                host_network: Some(host_net),
                ..Default::default()
            }),
            ..Default::default()
        };
        p.metadata.namespace = Some("shop".into());
        p
    }

    #[test]
    fn cluster_first_text() {
        let text = for_pod(&pod(None, false), &ClusterDns::default())
            .unwrap()
            .render();
        assert_eq!(
            text,
            "nameserver 10.43.0.10\nsearch shop.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n"
        );
    }

    #[test]
    fn dual_stack_kubelets_list_both_cluster_dns_addresses() {
        let r = for_pod(&pod(None, false), &ClusterDns::dual_stack()).unwrap();
        assert_eq!(r.nameservers, ["10.43.0.10", "fd43::a"]);
        let r = for_pod(&pod(None, false), &ClusterDns::ipv6_only()).unwrap();
        assert_eq!(r.nameservers, ["fd43::a"]);
    }

    #[test]
    fn host_network_and_default_use_node_file() {
        assert_eq!(for_pod(&pod(None, true), &ClusterDns::default()), None);
        assert_eq!(
            for_pod(&pod(Some("Default"), false), &ClusterDns::default()),
            None
        );
        assert!(
            for_pod(
                &pod(Some("ClusterFirstWithHostNet"), true),
                &ClusterDns::default()
            )
            .is_some()
        );
    }

    #[test]
    fn dns_config_merges_and_overrides_options() {
        let mut p = pod(None, false);
        if let Some(spec) = p.spec.as_mut() {
            spec.dns_config = Some(PodDNSConfig {
                nameservers: Some(vec!["1.1.1.1".into()]),
                searches: Some(vec!["corp".into()]),
                options: Some(vec![PodDNSConfigOption {
                    name: Some("ndots".into()),
                    value: Some("2".into()),
                }]),
            });
        }
        let r = for_pod(&p, &ClusterDns::default()).unwrap();
        assert_eq!(r.nameservers, vec!["10.43.0.10", "1.1.1.1"]);
        assert_eq!(r.searches.last().unwrap(), "corp");
        assert_eq!(r.options, vec!["ndots:2"]);
    }
}
