//! One policy's chain for one direction, compiled without looking at pods:
//! the rules only name sets, and which sets they need is returned as
//! [`SetRequest`]s that the caller fills from the pods it knows (the full
//! build scans every pod, the incremental planner keeps them up to date).

use std::collections::{BTreeMap, BTreeSet};

use crate::model::{
    Direction, Family, NamespaceScope, Peer, Policy, Port, Protocol, Rule, Selector,
};

use super::super::names::{self, addr_kw, addr_type};
use super::super::{Chain, CounterInfo, SetDef};

/// A set a compiled chain refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(in crate::plan) enum SetRequest {
    /// IPs of the endpoint pods `pods` selects in `scope`; one set per
    /// family, named by [`names::selector_set`] of `key`.
    Pods {
        key: String,
        scope: NamespaceScope,
        pods: Selector,
        /// The set of each planned family (computed once: hashing the key
        /// per element would dominate an incremental update).
        names: Vec<(Family, String)>,
    },
    /// (IP, protocol, number) of every endpoint declaring the named port;
    /// one set per family, named by [`names::named_port_set`] of `key`.
    NamedPort {
        key: String,
        name: String,
        protocol: Protocol,
        /// The set of each planned family.
        names: Vec<(Family, String)>,
    },
    /// An ipBlock's interval set: its content never depends on pods.
    Block { name: String, def: SetDef },
}

/// A policy chain, its named counters and the sets its rules look up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(in crate::plan) struct Compiled {
    pub chain_name: String,
    pub chain: Chain,
    pub counters: Vec<(String, CounterInfo)>,
    /// In first-use order; may repeat a set.
    pub sets: Vec<SetRequest>,
}

/// Compiles the rules of `policy` for `dir` (which must isolate `dir`).
pub(in crate::plan) fn compile(
    policy: &Policy,
    dir: Direction,
    rules: &[Rule],
    families: &[Family],
) -> Compiled {
    let id = policy.id();
    let allow = names::policy_counter(&id, dir, "allow");
    let deny = names::policy_counter(&id, dir, "deny");
    let counters = [(allow.clone(), "allow"), (deny, "deny")]
        .into_iter()
        .map(|(name, verdict)| {
            let info = CounterInfo {
                policy: id.clone(),
                direction: Some(dir),
                verdict,
            };
            (name, info)
        })
        .collect();
    let mut cx = Cx {
        families,
        sets: Vec::new(),
    };
    let lines = rules
        .iter()
        .flat_map(|rule| cx.rule_lines(dir, rule, &allow))
        .collect();
    Compiled {
        chain_name: names::policy_chain(&id, dir),
        chain: Chain {
            hook: None,
            rules: lines,
        },
        counters,
        sets: cx.sets,
    }
}

/// The key of the peer set of (`scope`, `pods`): equal selectors share it.
pub(in crate::plan) fn pod_set_key(scope: &NamespaceScope, pods: &Selector) -> String {
    let scope_key = match scope {
        NamespaceScope::Own(ns) => format!("ns={ns}"),
        NamespaceScope::Matching(sel) => format!("nssel={}", sel.canonical()),
    };
    format!("{scope_key}|pods={}", pods.canonical())
}

/// The key of a named port's set.
pub(in crate::plan) fn named_port_key(name: &str, protocol: Protocol) -> String {
    format!("{name}/{}", protocol.nft())
}

struct Cx<'a> {
    families: &'a [Family],
    sets: Vec<SetRequest>,
}

impl Cx<'_> {
    fn per_family(&self, name: impl Fn(Family) -> String) -> Vec<(Family, String)> {
        self.families.iter().map(|f| (*f, name(*f))).collect()
    }

    /// One nft rule per (peer x port kind); all accept on a match.
    fn rule_lines(&mut self, dir: Direction, rule: &Rule, allow: &str) -> Vec<String> {
        let peers: Vec<Option<(Family, String)>> = match &rule.peers {
            None => vec![None],
            Some(list) => list
                .iter()
                .flat_map(|peer| self.peer_exprs(peer, dir))
                .map(Some)
                .collect(),
        };
        let tail = format!("counter name \"{allow}\" accept");
        let mut out = Vec::new();
        for peer in &peers {
            let head = peer
                .as_ref()
                .map(|(_, e)| format!("{e} "))
                .unwrap_or_default();
            let Some(ports) = &rule.ports else {
                out.push(format!("{head}{tail}"));
                continue;
            };
            if let Some(numeric) = numeric_ports_expr(ports) {
                out.push(format!("{head}{numeric} {tail}"));
            }
            for named in self.named_port_exprs(ports, peer.as_ref().map(|p| p.0)) {
                out.push(format!("{head}{named} {tail}"));
            }
        }
        out
    }

    /// Match expressions of one peer, one per family it applies to.
    fn peer_exprs(&mut self, peer: &Peer, dir: Direction) -> Vec<(Family, String)> {
        let field = match dir {
            Direction::Ingress => "saddr",
            Direction::Egress => "daddr",
        };
        match peer {
            Peer::Pods { namespaces, pods } => {
                let key = pod_set_key(namespaces, pods);
                let names = self.per_family(|f| names::selector_set(&key, f));
                self.sets.push(SetRequest::Pods {
                    key: key.clone(),
                    scope: namespaces.clone(),
                    pods: pods.clone(),
                    names,
                });
                self.families
                    .iter()
                    .map(|f| {
                        let set = names::selector_set(&key, *f);
                        (*f, format!("{} {field} @{set}", addr_kw(*f)))
                    })
                    .collect()
            }
            Peer::Block(block) => {
                let family = block.family();
                if !self.families.contains(&family) {
                    return Vec::new();
                }
                let set = self.block_set(block);
                vec![(family, format!("{} {field} @{set}", addr_kw(family)))]
            }
        }
    }

    fn block_set(&mut self, block: &crate::model::IpBlock) -> String {
        let family = block.family();
        let elements: BTreeSet<String> = block.prefixes().iter().map(interval_element).collect();
        let key: Vec<&str> = elements.iter().map(String::as_str).collect();
        let name = names::block_set(&key.join(","), family);
        let def = SetDef {
            key_type: addr_type(family).to_string(),
            interval: true,
            elements,
        };
        self.sets.push(SetRequest::Block {
            name: name.clone(),
            def,
        });
        name
    }

    /// `daddr . l4proto . dport @np-*` per named port entry and family.
    fn named_port_exprs(&mut self, ports: &[Port], peer_family: Option<Family>) -> Vec<String> {
        let mut out = Vec::new();
        for port in ports {
            let Port::Named { protocol, name } = port else {
                continue;
            };
            let key = named_port_key(name, *protocol);
            let families: Vec<Family> = match peer_family {
                Some(f) => vec![f],
                None => self.families.to_vec(),
            };
            let names = self.per_family(|f| names::named_port_set(&key, f));
            self.sets.push(SetRequest::NamedPort {
                key: key.clone(),
                name: name.clone(),
                protocol: *protocol,
                names,
            });
            for f in families {
                let set = names::named_port_set(&key, f);
                let expr = format!("{} daddr . meta l4proto . th dport @{set}", addr_kw(f));
                out.push(expr);
            }
        }
        out
    }
}

/// `meta l4proto . th dport { tcp . 80, udp . 53-60 }` for the numeric and
/// whole-protocol entries, with overlapping ranges merged (an nft interval
/// set rejects overlaps).
fn numeric_ports_expr(ports: &[Port]) -> Option<String> {
    let mut ranges: BTreeMap<Protocol, Vec<(u16, u16)>> = BTreeMap::new();
    for port in ports {
        match port {
            Port::All(p) => ranges.entry(*p).or_default().push((0, u16::MAX)),
            Port::Range { protocol, from, to } => {
                ranges.entry(*protocol).or_default().push((*from, *to))
            }
            Port::Named { .. } => {}
        }
    }
    if ranges.is_empty() {
        return None;
    }
    let mut elements = Vec::new();
    for (protocol, list) in ranges {
        for (lo, hi) in merge_ranges(list) {
            let span = if lo == hi {
                lo.to_string()
            } else {
                format!("{lo}-{hi}")
            };
            elements.push(format!("{} . {span}", protocol.nft()));
        }
    }
    Some(format!(
        "meta l4proto . th dport {{ {} }}",
        elements.join(", ")
    ))
}

fn merge_ranges(mut list: Vec<(u16, u16)>) -> Vec<(u16, u16)> {
    list.sort_unstable();
    let mut out: Vec<(u16, u16)> = Vec::new();
    for (lo, hi) in list {
        match out.last_mut() {
            Some(last) if u32::from(lo) <= u32::from(last.1) + 1 => last.1 = last.1.max(hi),
            _ => out.push((lo, hi)),
        }
    }
    out
}

/// Interval-set element text as nft lists it (a host prefix is a bare address).
fn interval_element(net: &ipnet::IpNet) -> String {
    if net.prefix_len() == net.max_prefix_len() {
        net.addr().to_string()
    } else {
        net.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_overlapping_and_adjacent_ranges() {
        assert_eq!(
            merge_ranges(vec![(80, 90), (85, 85), (91, 95), (100, 100)]),
            vec![(80, 95), (100, 100)]
        );
        assert_eq!(merge_ranges(vec![(0, 65535), (80, 80)]), vec![(0, 65535)]);
    }
}
