//! Pure part of the flannel component: from this Node's object and the
//! configuration to what the files should say.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

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

/// This node's overlay endpoint addresses, at most one per family.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LocalAddrs {
    pub v4: Option<Ipv4Addr>,
    pub v6: Option<Ipv6Addr>,
}

impl LocalAddrs {
    /// The address whose interface gives the MTU (IPv4 first).
    pub fn primary(&self) -> Option<IpAddr> {
        self.v4.map(IpAddr::V4).or_else(|| self.v6.map(IpAddr::V6))
    }

    /// Only the families the cluster CIDRs use: in an IPv6-only cluster on a
    /// dual-stack host the IPv4 address is no endpoint, and must not pick
    /// the interface whose MTU the pods get (the overlay runs over the
    /// IPv6 one).
    pub fn of_families(self, cluster_cidrs: &[IpNet]) -> LocalAddrs {
        let has = |v6: bool| cluster_cidrs.iter().any(|c| c.addr().is_ipv6() == v6);
        LocalAddrs {
            v4: self.v4.filter(|_| has(false)),
            v6: self.v6.filter(|_| has(true)),
        }
    }

    /// Takes the first address of each family still unset from `ips`.
    fn fill(&mut self, ips: impl IntoIterator<Item = IpAddr>) {
        for ip in ips {
            match ip {
                IpAddr::V4(v4) if self.v4.is_none() => self.v4 = Some(v4),
                IpAddr::V6(v6) if self.v6.is_none() => self.v6 = Some(v6),
                _ => {}
            }
        }
    }
}

/// Per family: an address of --flannel-iface, else --node-ip, else the
/// Node's InternalIP (K3s takes the interface's address; without the flag
/// it uses the default-route interface, we use the node IP: k3s#12459).
pub fn local_addrs(iface: &[IpAddr], node_ips: &[IpAddr], node: &Node) -> LocalAddrs {
    let mut addrs = LocalAddrs::default();
    addrs.fill(iface.iter().copied());
    addrs.fill(node_ips.iter().copied());
    addrs.fill(internal_ips(node));
    addrs
}

fn internal_ips(node: &Node) -> Vec<IpAddr> {
    let addresses = node.status.as_ref().and_then(|s| s.addresses.as_ref());
    addresses
        .into_iter()
        .flatten()
        .filter(|a| a.type_ == "InternalIP")
        .filter_map(|a| a.address.trim().parse().ok())
        .collect()
}

/// The addresses of an interface that can be a tunnel endpoint, in the
/// kernel's order: link-local addresses cannot be reached from other nodes.
pub fn endpoint_candidates(addrs: &[IpNet]) -> Vec<IpAddr> {
    let link_local = |ip: &IpAddr| match ip {
        IpAddr::V4(v4) => v4.is_link_local(),
        IpAddr::V6(v6) => v6.segments()[0] & 0xffc0 == 0xfe80,
    };
    addrs
        .iter()
        .map(IpNet::addr)
        .filter(|ip| !link_local(ip))
        .collect()
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

    fn node_with_internal(addresses: &[&str]) -> Node {
        let list = addresses
            .iter()
            .map(|a| NodeAddress {
                type_: "InternalIP".into(),
                address: a.to_string(),
            })
            .chain([NodeAddress {
                type_: "Hostname".into(),
                address: "node-1".into(),
            }])
            .collect();
        Node {
            status: Some(NodeStatus {
                addresses: Some(list),
                ..NodeStatus::default()
            }),
            ..Node::default()
        }
    }

    fn ips(list: &[&str]) -> Vec<IpAddr> {
        list.iter().map(|a| a.parse().expect("ip")).collect()
    }

    #[test]
    fn local_addrs_iface_then_flag_then_internal_ip_per_family() {
        let n = node_with_internal(&["fd00::5", "192.168.7.5"]);
        let got = local_addrs(&[], &[], &n);
        assert_eq!(got.v4, Some(Ipv4Addr::new(192, 168, 7, 5)));
        assert_eq!(got.v6, Some("fd00::5".parse().expect("ip")));
        assert_eq!(got.primary(), Some("192.168.7.5".parse().expect("ip")));
        let got = local_addrs(&[], &ips(&["10.0.0.9"]), &n);
        assert_eq!(got.v4, Some(Ipv4Addr::new(10, 0, 0, 9)));
        assert_eq!(
            got.v6,
            Some("fd00::5".parse().expect("ip")),
            "v6 from the Node"
        );
        let got = local_addrs(&ips(&["172.16.0.2", "172.16.0.3"]), &ips(&["10.0.0.9"]), &n);
        assert_eq!(
            got.v4,
            Some(Ipv4Addr::new(172, 16, 0, 2)),
            "first iface address"
        );
        let none = local_addrs(&[], &[], &Node::default());
        assert_eq!(none, LocalAddrs::default());
        assert_eq!(none.primary(), None);
        let v6_only = local_addrs(&ips(&["fd00::7"]), &[], &Node::default());
        assert_eq!(v6_only.primary(), Some("fd00::7".parse().expect("ip")));
    }

    #[test]
    fn an_ipv6_only_cluster_ignores_the_ipv4_address() {
        let n = node_with_internal(&["192.168.7.5", "fd00::5"]);
        let all = local_addrs(&[], &[], &n);
        let v6_only = all.of_families(&nets(&["fd42::/56"]));
        assert_eq!(v6_only.v4, None);
        assert_eq!(v6_only.primary(), Some("fd00::5".parse().expect("ip")));
        assert_eq!(all.of_families(&nets(&["10.42.0.0/16", "fd42::/56"])), all);
        let v4_only = all.of_families(&nets(&["10.42.0.0/16"]));
        assert_eq!(v4_only.v6, None);
        assert_eq!(v4_only.primary(), Some("192.168.7.5".parse().expect("ip")));
        let none = local_addrs(&[], &ips(&["192.168.7.5"]), &Node::default());
        assert_eq!(none.of_families(&nets(&["fd42::/56"])).primary(), None);
    }

    #[test]
    fn endpoint_candidates_skip_link_local() {
        let addrs = nets(&[
            "fe80::1/64",
            "169.254.3.3/16",
            "192.168.1.4/24",
            "fd00::4/64",
        ]);
        assert_eq!(
            endpoint_candidates(&addrs),
            ips(&["192.168.1.4", "fd00::4"])
        );
    }
}
