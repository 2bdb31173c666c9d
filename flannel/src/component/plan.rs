//! Pure part of the flannel component: from this Node's object and the
//! configuration to what the files should say.

use std::net::IpAddr;

use ipnet::IpNet;
use k8s_openapi::api::core::v1::Node;

use crate::subnet::{self, SubnetEnv, SubnetEnvError};

use super::Backend;

/// What the Node currently tells us about our pod subnet.
#[derive(Debug, PartialEq, Eq)]
pub enum PodCidrs {
    /// No podCIDR allocated yet: wait (not an error, the allocator runs later).
    Unallocated,
    /// spec.podCIDRs if set, else spec.podCIDR.
    Allocated(Vec<String>),
}

/// Reads spec.podCIDRs, falling back to spec.podCIDR (flannel's order).
pub fn pod_cidrs(node: &Node) -> PodCidrs {
    let spec = node.spec.as_ref();
    let many = spec.and_then(|s| s.pod_cidrs.clone()).unwrap_or_default();
    let many: Vec<String> = many.into_iter().filter(|c| !c.trim().is_empty()).collect();
    if !many.is_empty() {
        return PodCidrs::Allocated(many);
    }
    match spec.and_then(|s| s.pod_cidr.clone()) {
        Some(one) if !one.trim().is_empty() => PodCidrs::Allocated(vec![one]),
        _ => PodCidrs::Unallocated,
    }
}

/// The subnet.env for the allocated pod CIDRs; an error names the field.
pub fn subnet_env(
    cidrs: &[String],
    cluster: &[IpNet],
    mtu: u32,
) -> Result<SubnetEnv, SubnetEnvError> {
    subnet::derive(cidrs, cluster, mtu)
}

/// FLANNEL_MTU: the underlay MTU minus the backend's encapsulation
/// (flannel's numbers, so mixed clusters agree).
pub fn pod_mtu(underlay_mtu: u32, backend: Backend) -> u32 {
    underlay_mtu.saturating_sub(backend.mtu_overhead())
}

/// The address whose interface carries pod traffic off the node:
/// --node-ip (IPv4 first), else the Node's InternalIP.
pub fn underlay_ip(node_ips: &[IpAddr], node: &Node) -> Option<IpAddr> {
    let first_v4 = |ips: &[IpAddr]| ips.iter().find(|ip| ip.is_ipv4()).or(ips.first()).copied();
    if let Some(ip) = first_v4(node_ips) {
        return Some(ip);
    }
    let addresses = node.status.as_ref().and_then(|s| s.addresses.as_ref());
    let internal: Vec<IpAddr> = addresses
        .into_iter()
        .flatten()
        .filter(|a| a.type_ == "InternalIP")
        .filter_map(|a| a.address.parse().ok())
        .collect();
    first_v4(&internal)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{NodeAddress, NodeSpec, NodeStatus};

    fn node(pod_cidr: Option<&str>, pod_cidrs: &[&str]) -> Node {
        Node {
            spec: Some(NodeSpec {
                pod_cidr: pod_cidr.map(String::from),
                pod_cidrs: Some(pod_cidrs.iter().map(|c| c.to_string()).collect()),
                ..NodeSpec::default()
            }),
            ..Node::default()
        }
    }

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|n| n.parse().expect("net")).collect()
    }

    #[test]
    fn pod_cidrs_prefers_the_list_and_falls_back() {
        let n = node(Some("10.42.1.0/24"), &["10.42.2.0/24", "fd00:42:0:2::/64"]);
        let want = vec!["10.42.2.0/24".to_string(), "fd00:42:0:2::/64".to_string()];
        assert_eq!(pod_cidrs(&n), PodCidrs::Allocated(want));
        let n = node(Some("10.42.1.0/24"), &[]);
        assert_eq!(
            pod_cidrs(&n),
            PodCidrs::Allocated(vec!["10.42.1.0/24".into()])
        );
        assert_eq!(pod_cidrs(&node(None, &[])), PodCidrs::Unallocated);
        assert_eq!(pod_cidrs(&node(Some(""), &[])), PodCidrs::Unallocated);
        assert_eq!(pod_cidrs(&Node::default()), PodCidrs::Unallocated);
    }

    #[test]
    fn subnet_env_from_node_glue() {
        let PodCidrs::Allocated(cidrs) = pod_cidrs(&node(Some("10.42.3.0/24"), &[])) else {
            panic!("allocated");
        };
        let env = subnet_env(
            &cidrs,
            &nets(&["10.42.0.0/16"]),
            pod_mtu(1500, Backend::Vxlan),
        );
        let text = env.expect("valid").render();
        assert_eq!(
            text,
            "FLANNEL_NETWORK=10.42.0.0/16\nFLANNEL_SUBNET=10.42.3.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n"
        );
    }

    #[test]
    fn pod_cidr_outside_cluster_cidr_names_the_field() {
        let err = subnet_env(&["10.99.0.0/24".into()], &nets(&["10.42.0.0/16"]), 1450)
            .expect_err("outside");
        assert!(err.to_string().contains("spec.podCIDR"), "{err}");
    }

    #[test]
    fn mtu_per_backend() {
        assert_eq!(pod_mtu(1500, Backend::Vxlan), 1450);
        assert_eq!(pod_mtu(1500, Backend::WireguardNative), 1420);
        assert_eq!(pod_mtu(1500, Backend::HostGw), 1500);
        assert_eq!(pod_mtu(9000, Backend::Vxlan), 8950);
    }

    #[test]
    fn underlay_ip_prefers_flag_then_internal_ip() {
        let n = Node {
            status: Some(NodeStatus {
                addresses: Some(vec![
                    NodeAddress {
                        type_: "Hostname".into(),
                        address: "node-1".into(),
                    },
                    NodeAddress {
                        type_: "InternalIP".into(),
                        address: "fd00::5".into(),
                    },
                    NodeAddress {
                        type_: "InternalIP".into(),
                        address: "192.168.7.5".into(),
                    },
                ]),
                ..NodeStatus::default()
            }),
            ..Node::default()
        };
        let flag: IpAddr = "10.0.0.9".parse().expect("ip");
        assert_eq!(underlay_ip(&[flag], &n), Some(flag));
        assert_eq!(
            underlay_ip(&[], &n),
            Some("192.168.7.5".parse().expect("ip"))
        );
        assert_eq!(underlay_ip(&[], &Node::default()), None);
    }
}
