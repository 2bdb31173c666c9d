//! The lab's network: an underlay namespace with a bridge, and one
//! namespace per node whose `eth0` is a veth into that bridge.
//!
//! ```text
//!   <prefix>-ul:      br0 172.30.0.1/24  (the API server listens here too)
//!                      |-- u<i> <-veth-> eth0 172.30.0.<10+i>/24 in <prefix>-node-<i>
//! ```
//! A dual-stack lab ([`Topology::with_ipv6`]) adds fd30::1/64 on br0 and
//! fd30::<10+i>/64 (written in hex digits, e.g. fd30::11) on each eth0,
//! with duplicate address detection off in the lab's namespaces so the
//! addresses are usable at once.
//! Every link is made with `ip -n <lab namespace>`; the root namespace is
//! never touched.

use crate::netns::{self, NetnsError};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Underlay bridge address; the API server's in-lab address.
pub const UNDERLAY_GATEWAY: Ipv4Addr = Ipv4Addr::new(172, 30, 0, 1);
/// Prefix length of the underlay subnet.
pub const UNDERLAY_PREFIX_LEN: u8 = 24;
/// IPv6 underlay bridge address of a dual-stack lab (a ULA).
pub const UNDERLAY_GATEWAY_V6: Ipv6Addr = Ipv6Addr::new(0xfd30, 0, 0, 0, 0, 0, 0, 1);
/// Prefix length of the IPv6 underlay subnet.
pub const UNDERLAY_PREFIX_LEN_V6: u8 = 64;
/// Port of the API server inside the lab.
pub const UNDERLAY_API_PORT: u16 = 6443;
/// Name of the underlay bridge (inside the underlay namespace).
pub const UNDERLAY_BRIDGE: &str = "br0";
/// Nodes get 172.30.0.<NODE_IP_OFFSET + i>.
pub const NODE_IP_OFFSET: u8 = 10;
/// Most nodes a lab can have with the /24 underlay and the offset above.
pub const MAX_NODES: usize = 200;

/// A planned lab network.
#[derive(Debug, Clone, PartialEq)]
pub struct Topology {
    pub prefix: String,
    pub nodes: Vec<NodeNet>,
    /// Whether the underlay also carries IPv6.
    pub dual_stack: bool,
}

/// One node's place in the network.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeNet {
    /// Kubernetes node name, `node-<i>`.
    pub name: String,
    /// Network namespace name.
    pub netns: String,
    /// Underlay address (the node's InternalIP).
    pub ip: Ipv4Addr,
    /// IPv6 underlay address (its second InternalIP), in a dual-stack lab.
    pub ipv6: Option<Ipv6Addr>,
    /// Underlay-side veth name (inside the underlay namespace).
    pub uplink: String,
}

/// Name of the underlay namespace of a lab.
pub fn underlay_netns(prefix: &str) -> String {
    format!("{prefix}-ul")
}

/// Name of a pod's namespace: the prefix and the first 8 characters of its UID.
pub fn pod_netns(prefix: &str, uid: &str) -> String {
    let short: String = uid
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .take(8)
        .collect();
    format!("{prefix}-p-{short}")
}

impl Topology {
    /// Names and addresses for `nodes` nodes (1-based).
    pub fn plan(prefix: &str, nodes: usize) -> Topology {
        let nodes = (1..=nodes.min(MAX_NODES))
            .map(|i| NodeNet {
                name: format!("node-{i}"),
                netns: format!("{prefix}-node-{i}"),
                ip: Ipv4Addr::new(172, 30, 0, NODE_IP_OFFSET + i as u8),
                ipv6: None,
                uplink: format!("u{i}"),
            })
            .collect();
        Topology {
            prefix: prefix.to_string(),
            nodes,
            dual_stack: false,
        }
    }

    /// The same lab with an IPv6 underlay too: node `i` gets
    /// fd30::<10+i> (hex digits of the decimal number, so node-1 is
    /// fd30::11, matching 172.30.0.11).
    pub fn with_ipv6(mut self) -> Topology {
        for (i, node) in self.nodes.iter_mut().enumerate() {
            node.ipv6 = Some(node_ipv6(i + 1));
        }
        self.dual_stack = true;
        self
    }

    pub fn underlay_netns(&self) -> String {
        underlay_netns(&self.prefix)
    }

    pub fn node(&self, name: &str) -> Option<&NodeNet> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// Creates the namespaces and links. On error the caller tears down by
    /// prefix, which also catches whatever was half made.
    pub async fn create(&self) -> Result<(), NetnsError> {
        let ul = self.underlay_netns();
        netns::add(&ul).await?;
        self.prepare_ipv6(&ul)?;
        let gw = format!("{UNDERLAY_GATEWAY}/{UNDERLAY_PREFIX_LEN}");
        netns::ip(&["-n", &ul, "link", "add", UNDERLAY_BRIDGE, "type", "bridge"]).await?;
        netns::ip(&["-n", &ul, "addr", "add", &gw, "dev", UNDERLAY_BRIDGE]).await?;
        if self.dual_stack {
            let gw6 = format!("{UNDERLAY_GATEWAY_V6}/{UNDERLAY_PREFIX_LEN_V6}");
            netns::ip(&[
                "-n",
                &ul,
                "addr",
                "add",
                &gw6,
                "dev",
                UNDERLAY_BRIDGE,
                "nodad",
            ])
            .await?;
        }
        netns::ip(&["-n", &ul, "link", "set", UNDERLAY_BRIDGE, "up"]).await?;
        let made = self.nodes.iter().map(|n| self.create_node(n));
        futures::future::try_join_all(made).await?;
        Ok(())
    }

    /// In a dual-stack lab, turns duplicate address detection off in a lab
    /// namespace before its links exist: tentative addresses would drop
    /// the first packets of a test for a second or two. Only ever the
    /// lab's own namespaces; the root namespace is never touched.
    fn prepare_ipv6(&self, ns: &str) -> Result<(), NetnsError> {
        if !self.dual_stack {
            return Ok(());
        }
        for key in [
            "net/ipv6/conf/all/accept_dad",
            "net/ipv6/conf/default/accept_dad",
        ] {
            netns::sysctl(ns, key, "0")?;
        }
        Ok(())
    }

    async fn create_node(&self, node: &NodeNet) -> Result<(), NetnsError> {
        let ul = self.underlay_netns();
        netns::add(&node.netns).await?;
        self.prepare_ipv6(&node.netns)?;
        let peer_ns = &node.netns;
        netns::ip(&[
            "-n",
            &ul,
            "link",
            "add",
            &node.uplink,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            peer_ns,
        ])
        .await?;
        netns::ip(&[
            "-n",
            &ul,
            "link",
            "set",
            &node.uplink,
            "master",
            UNDERLAY_BRIDGE,
            "up",
        ])
        .await?;
        let addr = format!("{}/{UNDERLAY_PREFIX_LEN}", node.ip);
        netns::ip(&["-n", peer_ns, "addr", "add", &addr, "dev", "eth0"]).await?;
        if let Some(v6) = node.ipv6 {
            let addr = format!("{v6}/{UNDERLAY_PREFIX_LEN_V6}");
            netns::ip(&["-n", peer_ns, "addr", "add", &addr, "dev", "eth0", "nodad"]).await?;
        }
        netns::ip(&["-n", peer_ns, "link", "set", "eth0", "up"]).await?;
        // A default route makes the node look like a real host to programs
        // that pick "the default interface"; the underlay leads nowhere else.
        let gw = UNDERLAY_GATEWAY.to_string();
        netns::ip(&["-n", peer_ns, "route", "add", "default", "via", &gw]).await?;
        if node.ipv6.is_some() {
            let gw6 = UNDERLAY_GATEWAY_V6.to_string();
            netns::ip(&["-n", peer_ns, "-6", "route", "add", "default", "via", &gw6]).await?;
        }
        Ok(())
    }
}

/// Removes every namespace whose name starts with `<prefix>-`; returns the
/// names removed and the errors met (teardown keeps going).
pub fn teardown(prefix: &str) -> (Vec<String>, Vec<NetnsError>) {
    let mut removed = Vec::new();
    let mut errors = Vec::new();
    // Pods first, then nodes, then the underlay: inner links go with their
    // namespace, so the order only keeps the log readable.
    let mut names = netns::list_with_prefix(&format!("{prefix}-"));
    names.sort_by_key(|n| {
        if n.contains("-p-") {
            0
        } else if n.ends_with("-ul") {
            2
        } else {
            1
        }
    });
    for name in names {
        match netns::del_sync(&name) {
            Ok(true) => removed.push(name),
            Ok(false) => {}
            Err(e) => errors.push(e),
        }
    }
    (removed, errors)
}

/// The node address as an `IpAddr`.
pub fn node_ip(node: &NodeNet) -> IpAddr {
    IpAddr::V4(node.ip)
}

/// Every address of the node, IPv4 first (its InternalIPs, `--node-ip`).
pub fn node_ips(node: &NodeNet) -> Vec<IpAddr> {
    std::iter::once(node_ip(node))
        .chain(node.ipv6.map(IpAddr::V6))
        .collect()
}

/// fd30::<10+i>, the decimal digits read as hex (node-1 is fd30::11).
fn node_ipv6(i: usize) -> Ipv6Addr {
    let digits = format!("{}", usize::from(NODE_IP_OFFSET) + i);
    let last = u16::from_str_radix(&digits, 16).unwrap_or(0);
    Ipv6Addr::new(0xfd30, 0, 0, 0, 0, 0, 0, last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_names_and_addresses() {
        let t = Topology::plan("nlabc123", 3);
        assert_eq!(t.nodes.len(), 3);
        assert_eq!(t.nodes[0].name, "node-1");
        assert_eq!(t.nodes[0].netns, "nlabc123-node-1");
        assert_eq!(t.nodes[2].ip, Ipv4Addr::new(172, 30, 0, 13));
        assert_eq!(t.nodes[2].ipv6, None);
        assert!(!t.dual_stack);
        assert_eq!(t.underlay_netns(), "nlabc123-ul");
        assert_eq!(
            pod_netns("nlabc123", "0a1b2c3d-4e5f-6789"),
            "nlabc123-p-0a1b2c3d"
        );
    }

    #[test]
    fn dual_stack_plan_adds_matching_ipv6_addresses() {
        let t = Topology::plan("nlabc123", 200).with_ipv6();
        assert!(t.dual_stack);
        let v6 = |i: usize| t.nodes[i].ipv6.map(|a| a.to_string());
        assert_eq!(v6(0).as_deref(), Some("fd30::11"));
        assert_eq!(v6(2).as_deref(), Some("fd30::13"));
        assert_eq!(v6(199).as_deref(), Some("fd30::210"));
        assert_eq!(
            node_ips(&t.nodes[0]),
            vec![
                IpAddr::from([172, 30, 0, 11]),
                "fd30::11".parse::<IpAddr>().unwrap()
            ]
        );
    }
}
