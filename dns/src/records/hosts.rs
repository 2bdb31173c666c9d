//! Host names served next to the cluster zone: every Node's name with its
//! InternalIPs (read from Node objects, no ConfigMap in between) and an
//! optional user hosts list.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use k8s_openapi::api::core::v1::Node;

use super::names::OwnedName;
use super::skip::{ObjectRef, Skipped, Skips};

/// The addresses of one host name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostAddrs {
    pub v4: Vec<Ipv4Addr>,
    pub v6: Vec<Ipv6Addr>,
}

/// Host names (lower-case wire format) to addresses, plus the reverse pairs.
#[derive(Debug, Clone, Default)]
pub struct Hosts {
    by_name: super::NameMap<Box<[u8]>, HostAddrs>,
    pairs: Vec<(IpAddr, OwnedName)>,
}

impl Hosts {
    /// Node InternalIPs (each family) under the node name, then `extra`
    /// entries (`ip`, `name`) such as a hosts file.
    pub fn build(nodes: &[&Node], extra: &[(IpAddr, String)], skipped: &mut Vec<Skipped>) -> Hosts {
        let mut hosts = Hosts::default();
        for node in nodes {
            hosts.add_node(node, skipped);
        }
        for (ip, name) in extra {
            match OwnedName::from_dotted(name) {
                Ok(n) if n.label_count() > 0 => hosts.add(*ip, n),
                Ok(_) => {}
                Err(e) => skipped.push(Skipped {
                    object: "hosts list".into(),
                    field: name.clone(),
                    reason: e.to_string(),
                }),
            }
        }
        hosts
    }

    fn add_node(&mut self, node: &Node, skipped: &mut Vec<Skipped>) {
        let name = node.metadata.name.as_deref().unwrap_or_default();
        let object = ObjectRef {
            kind: "Node",
            namespace: "",
            name,
        };
        let mut skips = Skips::new(&object, skipped);
        let owned = match OwnedName::from_dotted(name) {
            Ok(n) if n.label_count() > 0 => n,
            _ => {
                skips.push("metadata.name", "not a DNS name");
                return;
            }
        };
        let addresses = node.status.as_ref().and_then(|s| s.addresses.as_deref());
        for (i, a) in addresses.unwrap_or_default().iter().enumerate() {
            if a.type_ != "InternalIP" {
                continue;
            }
            match a.address.parse::<IpAddr>() {
                Ok(ip) => self.add(ip, owned.clone()),
                Err(_) => skips.push(
                    format!("status.addresses[{i}].address"),
                    format!("invalid IP {:?}", a.address),
                ),
            }
        }
    }

    fn add(&mut self, ip: IpAddr, name: OwnedName) {
        let entry = self.by_name.entry(name.wire().into()).or_default();
        match ip {
            IpAddr::V4(a) if !entry.v4.contains(&a) => entry.v4.push(a),
            IpAddr::V6(a) if !entry.v6.contains(&a) => entry.v6.push(a),
            _ => return,
        }
        self.pairs.push((ip, name));
    }

    /// The addresses of `wire` (lower-case wire name).
    pub fn get(&self, wire: &[u8]) -> Option<&HostAddrs> {
        self.by_name.get(wire)
    }

    /// Every (address, name) pair, for PTR records.
    pub fn pairs(&self) -> &[(IpAddr, OwnedName)] {
        &self.pairs
    }
}

/// Parses a hosts file (`ip name [alias..]`, `#` comments); bad lines are
/// skipped with a reason naming `source` and the line.
pub fn parse_hosts_file(
    text: &str,
    source: &str,
    skipped: &mut Vec<Skipped>,
) -> Vec<(IpAddr, String)> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or_default();
        let mut fields = line.split_whitespace();
        let Some(ip) = fields.next() else { continue };
        let Ok(ip) = ip.parse::<IpAddr>() else {
            skipped.push(Skipped {
                object: source.into(),
                field: format!("line {}", n + 1),
                reason: format!("invalid IP {ip:?}"),
            });
            continue;
        };
        out.extend(fields.map(|name| (ip, name.to_string())));
    }
    out
}
