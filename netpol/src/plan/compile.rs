//! Building a [`Plan`] from the inputs.

use std::collections::{BTreeMap, BTreeSet};

use crate::model::{
    Direction, Family, Labels, NamespaceInfo, NamespaceScope, Peer, PodInfo, Policy, Port,
    Protocol, Rule, Selector,
};

use super::names::{self, addr_kw, addr_type};
use super::{Chain, CounterInfo, Hook, Inputs, MapDef, Plan, SetDef};

const DIRECTIONS: [Direction; 2] = [Direction::Ingress, Direction::Egress];

/// Planner state for one build.
pub(super) struct Builder<'a> {
    inputs: &'a Inputs<'a>,
    families: Vec<Family>,
    /// Endpoint pods (see [`PodInfo::is_endpoint`]) by namespace.
    pods_by_ns: BTreeMap<&'a str, Vec<&'a PodInfo>>,
    ns_labels: BTreeMap<&'a str, &'a Labels>,
    plan: Plan,
}

impl<'a> Builder<'a> {
    pub(super) fn new(inputs: &'a Inputs<'a>) -> Self {
        let mut pods_by_ns: BTreeMap<&str, Vec<&PodInfo>> = BTreeMap::new();
        for pod in inputs.pods.iter().filter(|p| p.is_endpoint()) {
            pods_by_ns
                .entry(pod.namespace.as_str())
                .or_default()
                .push(pod);
        }
        let ns_labels = inputs
            .namespaces
            .iter()
            .map(|n| (n.name.as_str(), &n.labels))
            .collect();
        Builder {
            inputs,
            families: inputs.node.families(),
            pods_by_ns,
            ns_labels,
            plan: Plan::default(),
        }
    }

    pub(super) fn build(mut self) -> Plan {
        let policies = self.unique_policies();
        for dir in DIRECTIONS {
            let classes = self.policies_of_local_pods(&policies, dir);
            self.dispatch(dir, &classes);
        }
        self.local_pods_sets();
        self.base_chains();
        self.plan
    }

    /// Sorted by id; a duplicate id (impossible from the API) keeps the first.
    fn unique_policies(&self) -> Vec<&'a Policy> {
        let mut seen = BTreeSet::new();
        let mut out: Vec<&Policy> = self.inputs.policies.iter().collect();
        out.sort_by_key(|p| p.id());
        out.retain(|p| seen.insert(p.id()));
        out
    }

    fn local_endpoints(&self) -> impl Iterator<Item = &'a PodInfo> + '_ {
        let node = self.inputs.node.name.as_str();
        self.pods_by_ns
            .values()
            .flatten()
            .copied()
            .filter(move |p| p.node.as_deref() == Some(node))
    }

    /// For each local pod selected in `dir`: the ids of its policies.
    /// Compiles the chain of every policy that selects some local pod.
    fn policies_of_local_pods(
        &mut self,
        policies: &[&'a Policy],
        dir: Direction,
    ) -> BTreeMap<(String, String), (Vec<String>, &'a PodInfo)> {
        let node = self.inputs.node.name.clone();
        let mut classes: BTreeMap<(String, String), (Vec<String>, &PodInfo)> = BTreeMap::new();
        for policy in policies {
            let Some(rules) = policy.rules(dir) else {
                continue;
            };
            let in_ns = self.pods_by_ns.get(policy.namespace.as_str());
            let targets: Vec<&PodInfo> = in_ns
                .into_iter()
                .flatten()
                .copied()
                .filter(|p| p.node.as_deref() == Some(node.as_str()))
                .filter(|p| policy.pod_selector.matches(&p.labels))
                .collect();
            if targets.is_empty() {
                continue;
            }
            self.policy_chain(policy, dir, rules);
            for pod in targets {
                let key = (pod.namespace.clone(), pod.name.clone());
                classes
                    .entry(key)
                    .or_insert((Vec::new(), pod))
                    .0
                    .push(policy.id());
            }
        }
        classes
    }

    fn policy_chain(&mut self, policy: &Policy, dir: Direction, rules: &[Rule]) {
        let id = policy.id();
        let allow = names::policy_counter(&id, dir, "allow");
        let deny = names::policy_counter(&id, dir, "deny");
        for (name, verdict) in [(&allow, "allow"), (&deny, "deny")] {
            let info = CounterInfo {
                policy: id.clone(),
                direction: Some(dir),
                verdict,
            };
            self.plan.counters.insert(name.clone(), info);
        }
        let mut lines = Vec::new();
        for rule in rules {
            lines.extend(self.rule_lines(dir, rule, &allow));
        }
        let chain = Chain {
            hook: None,
            rules: lines,
        };
        self.plan
            .chains
            .insert(names::policy_chain(&id, dir), chain);
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
                let key = self.pod_set(namespaces, pods);
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

    /// Ensures the sets of the pods a peer selects exist; returns their key.
    fn pod_set(&mut self, scope: &NamespaceScope, pods: &Selector) -> String {
        let scope_key = match scope {
            NamespaceScope::Own(ns) => format!("ns={ns}"),
            NamespaceScope::Matching(sel) => format!("nssel={}", sel.canonical()),
        };
        let key = format!("{scope_key}|pods={}", pods.canonical());
        let first = names::selector_set(&key, self.families[0]);
        if self.plan.sets.contains_key(&first) {
            return key;
        }
        let mut by_family: BTreeMap<Family, BTreeSet<String>> = BTreeMap::new();
        for pod in self.peer_pods(scope, pods) {
            for ip in &pod.ips {
                by_family
                    .entry(Family::of(ip))
                    .or_default()
                    .insert(ip.to_string());
            }
        }
        for f in self.families.clone() {
            let elements = by_family.remove(&f).unwrap_or_default();
            self.add_set(names::selector_set(&key, f), addr_type(f), false, elements);
        }
        key
    }

    fn peer_pods(&self, scope: &NamespaceScope, pods: &Selector) -> Vec<&'a PodInfo> {
        let namespaces: Vec<&str> = match scope {
            NamespaceScope::Own(ns) => vec![ns.as_str()],
            NamespaceScope::Matching(sel) => self
                .pods_by_ns
                .keys()
                .copied()
                .filter(|ns| self.namespace_matches(ns, sel))
                .collect(),
        };
        namespaces
            .into_iter()
            .filter_map(|ns| self.pods_by_ns.get(ns))
            .flatten()
            .copied()
            .filter(|p| pods.matches(&p.labels))
            .collect()
    }

    fn namespace_matches(&self, ns: &str, sel: &Selector) -> bool {
        match self.ns_labels.get(ns) {
            Some(labels) => sel.matches(labels),
            // A pod whose Namespace object we have not seen: only its name label.
            None => sel.matches(&NamespaceInfo::new(ns, Labels::new()).labels),
        }
    }

    fn block_set(&mut self, block: &crate::model::IpBlock) -> String {
        let family = block.family();
        let elements: BTreeSet<String> = block.prefixes().iter().map(interval_element).collect();
        let key: Vec<&str> = elements.iter().map(String::as_str).collect();
        let name = names::block_set(&key.join(","), family);
        self.add_set(name.clone(), addr_type(family), true, elements);
        name
    }

    /// `daddr . l4proto . dport @np-*` per named port entry and family.
    fn named_port_exprs(&mut self, ports: &[Port], peer_family: Option<Family>) -> Vec<String> {
        let mut out = Vec::new();
        for port in ports {
            let Port::Named { protocol, name } = port else {
                continue;
            };
            let key = format!("{name}/{}", protocol.nft());
            let families: Vec<Family> = match peer_family {
                Some(f) => vec![f],
                None => self.families.clone(),
            };
            self.named_port_sets(&key, name, *protocol);
            for f in families {
                let set = names::named_port_set(&key, f);
                let expr = format!("{} daddr . meta l4proto . th dport @{set}", addr_kw(f));
                out.push(expr);
            }
        }
        out
    }

    /// (pod IP, protocol, number) of every endpoint declaring the name with
    /// that protocol: a named port is resolved on the destination pod.
    fn named_port_sets(&mut self, key: &str, name: &str, protocol: Protocol) {
        if self
            .plan
            .sets
            .contains_key(&names::named_port_set(key, self.families[0]))
        {
            return;
        }
        let mut by_family: BTreeMap<Family, BTreeSet<String>> = BTreeMap::new();
        for pod in self.pods_by_ns.values().flatten() {
            let numbers = pod
                .ports
                .iter()
                .filter(|p| p.name == name && p.protocol == protocol);
            for number in numbers.map(|p| p.port) {
                for ip in &pod.ips {
                    let element = format!("{ip} . {} . {number}", protocol.nft());
                    by_family.entry(Family::of(ip)).or_default().insert(element);
                }
            }
        }
        for f in self.families.clone() {
            let elements = by_family.remove(&f).unwrap_or_default();
            let key_type = format!("{} . inet_proto . inet_service", addr_type(f));
            self.add_set(names::named_port_set(key, f), &key_type, false, elements);
        }
    }

    fn add_set(
        &mut self,
        name: String,
        key_type: &str,
        interval: bool,
        elements: BTreeSet<String>,
    ) {
        let def = SetDef {
            key_type: key_type.to_string(),
            interval,
            elements,
        };
        self.plan.sets.insert(name, def);
    }

    /// Class chains and the verdict maps that lead local pods to them.
    fn dispatch(
        &mut self,
        dir: Direction,
        classes: &BTreeMap<(String, String), (Vec<String>, &PodInfo)>,
    ) {
        let mut maps: BTreeMap<Family, BTreeMap<String, String>> = BTreeMap::new();
        for (ids, pod) in classes.values() {
            let chain = names::class_chain(ids, dir);
            if !self.plan.chains.contains_key(&chain) {
                self.plan
                    .chains
                    .insert(chain.clone(), class_chain(ids, dir));
            }
            for ip in pod
                .ips
                .iter()
                .filter(|ip| self.families.contains(&Family::of(ip)))
            {
                let entry = maps.entry(Family::of(ip)).or_default();
                entry.insert(ip.to_string(), format!("jump {chain}"));
            }
        }
        for f in self.families.clone() {
            let def = MapDef {
                key_type: addr_type(f).to_string(),
                elements: maps.remove(&f).unwrap_or_default(),
            };
            self.plan.maps.insert(names::dispatch_map(dir, f), def);
        }
    }

    fn local_pods_sets(&mut self) {
        let mut by_family: BTreeMap<Family, BTreeSet<String>> = BTreeMap::new();
        for pod in self.local_endpoints() {
            for ip in &pod.ips {
                by_family
                    .entry(Family::of(ip))
                    .or_default()
                    .insert(ip.to_string());
            }
        }
        for f in self.families.clone() {
            let elements = by_family.remove(&f).unwrap_or_default();
            self.add_set(names::local_pods_set(f), addr_type(f), false, elements);
        }
    }

    fn base_chains(&mut self) {
        let guard = CounterInfo {
            policy: String::new(),
            direction: None,
            verdict: "deny",
        };
        self.plan
            .counters
            .insert(names::GUARD_COUNTER.into(), guard);
        let specs = [
            (names::EGRESS_FORWARD, "forward", 0, Direction::Egress),
            (names::INGRESS_FORWARD, "forward", 1, Direction::Ingress),
            (names::EGRESS_INPUT, "input", 0, Direction::Egress),
        ];
        for (name, hook, priority, dir) in specs {
            let chain = Chain {
                hook: Some(Hook { hook, priority }),
                rules: self.base_rules(dir, hook == "input"),
            };
            self.plan.chains.insert(name.to_string(), chain);
        }
    }

    fn base_rules(&self, dir: Direction, input: bool) -> Vec<String> {
        let mut rules = vec!["ct state established,related accept".to_string()];
        if self.families.contains(&Family::V6) {
            // Neighbour discovery is bridged between pods too; without it no
            // IPv6 traffic works at all, allowed or not.
            rules.push(
                "icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-solicit, nd-router-advert } accept".into(),
            );
        }
        let field = match dir {
            Direction::Ingress => "daddr",
            Direction::Egress => "saddr",
        };
        for f in &self.families {
            rules.extend(self.guard_rules(*f, field, input));
        }
        for f in &self.families {
            let map = names::dispatch_map(dir, *f);
            rules.push(format!("{} {field} vmap @{map}", addr_kw(*f)));
        }
        rules
    }

    /// Rejects pod-CIDR addresses that are not known running local pods.
    fn guard_rules(&self, family: Family, field: &str, input: bool) -> Vec<String> {
        let node = self.inputs.node;
        let cidrs: Vec<String> = node
            .pod_cidrs
            .iter()
            .filter(|c| Family::of(&c.network()) == family)
            .map(|c| c.trunc().to_string())
            .collect();
        if !node.fail_closed_unknown_pods || cidrs.is_empty() {
            return Vec::new();
        }
        let kw = addr_kw(family);
        let set = names::local_pods_set(family);
        // On input the node's own address inside the pod CIDR (cni0's
        // gateway) can be a source; it is the node, not an unknown pod.
        let local = if input {
            " fib saddr type != local"
        } else {
            ""
        };
        let matcher = format!(
            "{kw} {field} {{ {} }} {kw} {field} != @{set}{local}",
            cidrs.join(", ")
        );
        reject_rules(&matcher, &[names::GUARD_COUNTER.to_string()])
    }
}

/// A class chain: drop invalid, try each policy, reject the rest.
fn class_chain(ids: &[String], dir: Direction) -> Chain {
    let mut rules = vec!["ct state invalid drop".to_string()];
    rules.extend(
        ids.iter()
            .map(|id| format!("jump {}", names::policy_chain(id, dir))),
    );
    let denies: Vec<String> = ids
        .iter()
        .map(|id| names::policy_counter(id, dir, "deny"))
        .collect();
    rules.extend(reject_rules("", &denies));
    Chain { hook: None, rules }
}

/// TCP gets a reset (the client fails fast with ECONNREFUSED); everything
/// else an ICMP administratively-prohibited.
fn reject_rules(matcher: &str, counters: &[String]) -> Vec<String> {
    let counted: String = counters
        .iter()
        .map(|c| format!("counter name \"{c}\" "))
        .collect();
    let lead = if matcher.is_empty() {
        String::new()
    } else {
        format!("{matcher} ")
    };
    vec![
        format!("{lead}meta l4proto tcp {counted}reject with tcp reset"),
        format!("{lead}{counted}reject with icmpx admin-prohibited"),
    ]
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
