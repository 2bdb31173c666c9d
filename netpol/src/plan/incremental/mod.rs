//! The incremental planner: keeps the inputs and everything derived from
//! them between events, so that a pod or namespace event costs work in
//! proportion to what it affects, and yields the change as a [`Delta`].
//!
//! The plan it keeps is always identical to [`super::build`] of the same
//! inputs (a property test applies random event sequences and compares
//! after every step). How each part follows its inputs:
//!
//! * Peer sets and named-port sets exist while an active policy chain
//!   refers to them (reference counted). Their elements are counted per
//!   contributing pod (two pods may share an address for a moment), so a
//!   pod event adds or removes exactly its own contribution to each set.
//! * A (policy, direction) is active while it selects some local endpoint
//!   pod: only then does it compile to a chain. A pod event re-evaluates
//!   the policies of the pod's namespace for that pod; the first target
//!   activates a policy, the last one leaving deactivates it.
//! * A local pod's class (the sorted ids of its active policies) picks its
//!   class chain (reference counted by pods) and its dispatch map entries.
//!   Only the changed pod's class can change on a pod event: a policy
//!   (de)activated by it selected no other local pod.
//! * A namespace label change re-evaluates the namespace-selector sets for
//!   that namespace's pods; a policy event (de)activates that policy and
//!   re-classes its targets; a node change rebuilds from scratch.

mod local;
mod sets;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::model::{Direction, Family, Labels, NamespaceInfo, PodInfo, Policy};

use super::compile::{Compiled, SetRequest, base_objects};
use super::delta::{Delta, Tracked};
use super::names::{self, addr_type};
use super::{MapDef, NodeScope, Plan, SetDef};

/// `(namespace, name)` of a pod.
pub type PodKey = (String, String);

const DIRECTIONS: [Direction; 2] = [Direction::Ingress, Direction::Egress];

/// The incremental planner (see the module docs).
#[derive(Debug)]
pub struct Incremental {
    node: NodeScope,
    families: Vec<Family>,
    pods: BTreeMap<PodKey, PodInfo>,
    /// Endpoint pods (see [`PodInfo::is_endpoint`]) by namespace.
    endpoints: BTreeMap<String, BTreeSet<String>>,
    /// Local endpoint pods (the only possible targets) by namespace.
    local: BTreeMap<String, BTreeSet<String>>,
    namespaces: BTreeMap<String, Labels>,
    /// By id (`namespace/name`).
    policies: BTreeMap<String, Policy>,
    /// Policy ids by namespace.
    policies_by_ns: BTreeMap<String, BTreeSet<String>>,
    /// Active (policy id, direction): its local targets and compiled chain.
    active: BTreeMap<(String, Direction), Active>,
    /// Sets referred to by active chains, by [`sets::request_id`].
    peer_sets: BTreeMap<String, PeerSet>,
    /// How many pods contribute each element, per counted set.
    counts: HashMap<String, HashMap<String, u32>>,
    /// Each local pod's class chain per direction, and the dispatch keys
    /// (addresses) it was entered under.
    /// Indexed like [`DIRECTIONS`].
    classes: BTreeMap<PodKey, [Option<Class>; 2]>,
    /// Pods per class chain.
    class_refs: BTreeMap<String, u32>,
    /// Dispatch entry candidates per (direction, address): the verdict of
    /// each pod with that address (the greatest pod key wins, as in the
    /// full build).
    dispatch: BTreeMap<(Direction, String), BTreeMap<PodKey, String>>,
    out: Tracked,
}

#[derive(Debug)]
struct Active {
    targets: BTreeSet<PodKey>,
    compiled: Compiled,
}

#[derive(Debug)]
struct PeerSet {
    refs: u32,
    request: SetRequest,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Class {
    chain: String,
    /// Sorted ids of the active policies selecting the pod.
    ids: Vec<String>,
    /// Planned-family addresses, with their family.
    ips: Vec<(Family, String)>,
}

impl Incremental {
    /// A planner with no pods, namespaces or policies yet.
    pub fn new(node: NodeScope) -> Incremental {
        let mut planner = Incremental {
            families: node.families(),
            node,
            pods: BTreeMap::new(),
            endpoints: BTreeMap::new(),
            local: BTreeMap::new(),
            namespaces: BTreeMap::new(),
            policies: BTreeMap::new(),
            policies_by_ns: BTreeMap::new(),
            active: BTreeMap::new(),
            peer_sets: BTreeMap::new(),
            counts: HashMap::new(),
            classes: BTreeMap::new(),
            class_refs: BTreeMap::new(),
            dispatch: BTreeMap::new(),
            out: Tracked::default(),
        };
        planner.base();
        planner
    }

    /// The current plan (equal to a full build of the current inputs).
    pub fn plan(&self) -> &Plan {
        self.out.plan()
    }

    /// What changed since the previous call (or since tracking resumed).
    pub fn take_delta(&mut self) -> Delta {
        self.out.take_delta()
    }

    /// Turns change tracking off (`false`) for a bulk load whose plan is
    /// applied whole, or back on (`true`): the current plan is then the
    /// baseline of the next [`Incremental::take_delta`].
    pub fn set_tracking(&mut self, on: bool) {
        self.out.set_recording(on);
    }

    /// Sets (`Some`) or removes (`None`) the pod `key`.
    pub fn set_pod(&mut self, key: PodKey, pod: Option<PodInfo>) {
        if self.pods.get(&key) == pod.as_ref() {
            return;
        }
        if let Some(old) = self.pods.remove(&key) {
            self.withdraw_pod(&key, &old);
        }
        if let Some(new) = pod {
            self.pods.insert(key.clone(), new);
            self.contribute_pod(&key);
        }
        self.retarget(&key);
    }

    /// Sets (`Some`) or removes (`None`) the namespace `name`.
    pub fn set_namespace(&mut self, name: &str, ns: Option<NamespaceInfo>) {
        let labels = ns.map(|n| n.labels);
        if self.namespaces.get(name) == labels.as_ref() {
            return;
        }
        let old = match labels {
            Some(l) => self.namespaces.insert(name.to_string(), l),
            None => self.namespaces.remove(name),
        };
        self.relabel_namespace(name, old.as_ref());
    }

    /// Sets (`Some`) or removes (`None`) the policy with id `id`.
    pub fn set_policy(&mut self, id: &str, policy: Option<Policy>) {
        if self.policies.get(id) == policy.as_ref() {
            return;
        }
        let mut reclass = BTreeSet::new();
        let mut released = Vec::new();
        if let Some(old) = self.policies.remove(id) {
            if let Some(ids) = self.policies_by_ns.get_mut(&old.namespace) {
                ids.remove(id);
            }
            for dir in DIRECTIONS {
                if let Some(active) = self.deactivate(id, dir) {
                    reclass.extend(active.targets);
                    released.extend(active.compiled.sets);
                }
            }
        }
        if let Some(new) = policy {
            let ns = new.namespace.clone();
            self.policies_by_ns
                .entry(ns)
                .or_default()
                .insert(id.to_string());
            self.policies.insert(id.to_string(), new);
            for dir in DIRECTIONS {
                reclass.extend(self.activate_if_selecting(id, dir));
            }
        }
        // Released after the new version took its references, so a set
        // both versions use is kept rather than dropped and refilled.
        for request in released {
            self.release_set(&request);
        }
        for key in reclass {
            self.reclass(&key);
        }
    }

    /// Changes the node scope; rebuilds everything when it differs.
    pub fn set_node(&mut self, node: NodeScope) {
        if node == self.node {
            return;
        }
        let pods = std::mem::take(&mut self.pods);
        let namespaces = std::mem::take(&mut self.namespaces);
        let policies = std::mem::take(&mut self.policies);
        let out = std::mem::take(&mut self.out);
        *self = Incremental::new(node);
        self.out = out;
        self.clear_plan();
        self.base();
        self.namespaces = namespaces;
        for (key, pod) in pods {
            self.set_pod(key, Some(pod));
        }
        for (id, policy) in policies {
            self.set_policy(&id, Some(policy));
        }
    }

    /// Removes every object of the current plan (through the journal).
    fn clear_plan(&mut self) {
        let plan = self.out.plan().clone();
        for name in plan.chains.keys() {
            self.out.put_chain(name, None);
        }
        for name in plan.counters.keys() {
            self.out.put_counter(name, None);
        }
        for name in plan.sets.keys() {
            self.out.delete_set(name);
        }
        for name in plan.maps.keys() {
            self.out.delete_map(name);
        }
    }

    /// Base chains, guard counter, empty dispatch maps and local-pod sets.
    fn base(&mut self) {
        let base = base_objects(&self.node, &self.families);
        for (name, chain) in base.chains {
            self.out.put_chain(&name, Some(chain));
        }
        for (name, counter) in base.counters {
            self.out.put_counter(&name, Some(counter));
        }
        for f in self.families.clone() {
            for dir in DIRECTIONS {
                let map = MapDef {
                    key_type: addr_type(f).to_string(),
                    elements: BTreeMap::new(),
                };
                self.out.put_map(&names::dispatch_map(dir, f), map);
            }
            let set = SetDef {
                key_type: addr_type(f).to_string(),
                interval: false,
                elements: BTreeSet::new(),
            };
            self.out.put_set(&names::local_pods_set(f), set);
        }
    }

    fn is_local(&self, pod: &PodInfo) -> bool {
        pod.is_endpoint() && pod.node.as_deref() == Some(self.node.name.as_str())
    }

    fn planned(&self, family: Family) -> bool {
        self.families.contains(&family)
    }
}
