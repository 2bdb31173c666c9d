//! The lab's network: an underlay namespace with a bridge, and one
//! namespace per node whose `eth0` is a veth into that bridge.
//!
//! ```text
//!   <prefix>-ul:      br0 172.30.0.1/24  (the API server listens here too)
//!                      |-- u<i> <-veth-> eth0 172.30.0.<10+i>/24 in <prefix>-node-<i>
//! ```
//! Every link is made with `ip -n <lab namespace>`; the root namespace is
//! never touched.

use crate::netns::{self, NetnsError};
use std::net::{IpAddr, Ipv4Addr};

/// Underlay bridge address; the API server's in-lab address.
pub const UNDERLAY_GATEWAY: Ipv4Addr = Ipv4Addr::new(172, 30, 0, 1);
/// Prefix length of the underlay subnet.
pub const UNDERLAY_PREFIX_LEN: u8 = 24;
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
                uplink: format!("u{i}"),
            })
            .collect();
        Topology {
            prefix: prefix.to_string(),
            nodes,
        }
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
        let gw = format!("{UNDERLAY_GATEWAY}/{UNDERLAY_PREFIX_LEN}");
        netns::ip(&["-n", &ul, "link", "add", UNDERLAY_BRIDGE, "type", "bridge"]).await?;
        netns::ip(&["-n", &ul, "addr", "add", &gw, "dev", UNDERLAY_BRIDGE]).await?;
        netns::ip(&["-n", &ul, "link", "set", UNDERLAY_BRIDGE, "up"]).await?;
        let made = self.nodes.iter().map(|n| self.create_node(n));
        futures::future::try_join_all(made).await?;
        Ok(())
    }

    async fn create_node(&self, node: &NodeNet) -> Result<(), NetnsError> {
        let ul = self.underlay_netns();
        netns::add(&node.netns).await?;
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
        netns::ip(&["-n", peer_ns, "link", "set", "eth0", "up"]).await?;
        // A default route makes the node look like a real host to programs
        // that pick "the default interface"; the underlay leads nowhere else.
        let gw = UNDERLAY_GATEWAY.to_string();
        netns::ip(&["-n", peer_ns, "route", "add", "default", "via", &gw]).await
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
        assert_eq!(t.underlay_netns(), "nlabc123-ul");
        assert_eq!(
            pod_netns("nlabc123", "0a1b2c3d-4e5f-6789"),
            "nlabc123-p-0a1b2c3d"
        );
    }
}
