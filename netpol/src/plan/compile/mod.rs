//! Building a [`Plan`] from the inputs: the full build, the reference the
//! incremental planner must always equal.

mod base;
mod members;
mod policy;

use std::collections::{BTreeMap, BTreeSet};

use crate::model::{Direction, Family, Labels, NamespaceScope, PodInfo, Policy, Rule, Selector};

use super::names::{self, addr_type};
use super::{Inputs, MapDef, Plan, SetDef};

pub(super) use base::{base_objects, class_chain};
pub(super) use members::{named_port_elements, named_port_key_type, namespace_matches, pod_ips};
pub(super) use policy::{Compiled, SetRequest, compile};

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
        let compiled = policy::compile(policy, dir, rules, &self.families);
        self.plan.counters.extend(compiled.counters);
        self.plan.chains.insert(compiled.chain_name, compiled.chain);
        for request in compiled.sets {
            self.fill_set(request);
        }
    }

    /// Creates a set a chain refers to, unless an earlier chain did.
    fn fill_set(&mut self, request: SetRequest) {
        match request {
            SetRequest::Pods {
                key, scope, pods, ..
            } => {
                if self
                    .plan
                    .sets
                    .contains_key(&names::selector_set(&key, self.families[0]))
                {
                    return;
                }
                let members = self.peer_pods(&scope, &pods);
                let elements = members.iter().flat_map(|p| members::pod_ips(p));
                self.add_family_sets(
                    elements,
                    |f| names::selector_set(&key, f),
                    |f| addr_type(f).to_string(),
                );
            }
            SetRequest::NamedPort {
                key,
                name,
                protocol,
                ..
            } => {
                if self
                    .plan
                    .sets
                    .contains_key(&names::named_port_set(&key, self.families[0]))
                {
                    return;
                }
                let all: Vec<&PodInfo> = self.pods_by_ns.values().flatten().copied().collect();
                let elements = all
                    .iter()
                    .flat_map(|p| members::named_port_elements(p, &name, protocol));
                self.add_family_sets(
                    elements,
                    |f| names::named_port_set(&key, f),
                    members::named_port_key_type,
                );
            }
            SetRequest::Block { name, def } => {
                self.plan.sets.insert(name, def);
            }
        }
    }

    /// One set per planned family from (family, element) pairs; elements
    /// of other families are left out.
    fn add_family_sets(
        &mut self,
        elements: impl Iterator<Item = (Family, String)>,
        name: impl Fn(Family) -> String,
        key_type: impl Fn(Family) -> String,
    ) {
        let mut by_family: BTreeMap<Family, BTreeSet<String>> = BTreeMap::new();
        for (f, element) in elements {
            by_family.entry(f).or_default().insert(element);
        }
        for f in self.families.clone() {
            let elements = by_family.remove(&f).unwrap_or_default();
            self.add_set(name(f), &key_type(f), false, elements);
        }
    }

    fn peer_pods(&self, scope: &NamespaceScope, pods: &Selector) -> Vec<&'a PodInfo> {
        let namespaces: Vec<&str> = match scope {
            NamespaceScope::Own(ns) => vec![ns.as_str()],
            NamespaceScope::Matching(sel) => self
                .pods_by_ns
                .keys()
                .copied()
                .filter(|ns| members::namespace_matches(ns, self.ns_labels.get(ns).copied(), sel))
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
        let base = base::base_objects(self.inputs.node, &self.families);
        self.plan.chains.extend(base.chains);
        self.plan.counters.extend(base.counters);
    }
}
