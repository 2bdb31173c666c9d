//! Sets whose elements come from pods: peer sets, named-port sets and the
//! local-pod sets, with elements counted per contributing pod.

use std::collections::{BTreeMap, HashMap};

use crate::model::{Family, Labels, NamespaceScope, PodInfo, Selector};

use super::super::SetDef;
use super::super::compile::{
    SetRequest, named_port_elements, named_port_key_type, namespace_matches, pod_ips,
};
use super::super::names::{self, addr_type};
use super::{Incremental, PeerSet, PodKey};

/// The identity of a requested set (its kind and key).
pub(super) fn request_id(request: &SetRequest) -> String {
    match request {
        SetRequest::Pods { key, .. } => format!("sel:{key}"),
        SetRequest::NamedPort { key, .. } => format!("np:{key}"),
        SetRequest::Block { name, .. } => format!("blk:{name}"),
    }
}

impl Incremental {
    /// Takes a reference on a set; the first one creates and fills it.
    pub(super) fn acquire_set(&mut self, request: &SetRequest) {
        let id = request_id(request);
        if let Some(set) = self.peer_sets.get_mut(&id) {
            set.refs += 1;
            return;
        }
        self.create_set(request);
        let set = PeerSet {
            refs: 1,
            request: request.clone(),
        };
        self.peer_sets.insert(id, set);
    }

    /// Drops a reference; the last one deletes the set.
    pub(super) fn release_set(&mut self, request: &SetRequest) {
        let id = request_id(request);
        let Some(set) = self.peer_sets.get_mut(&id) else {
            return;
        };
        set.refs -= 1;
        if set.refs > 0 {
            return;
        }
        self.peer_sets.remove(&id);
        for name in self.set_names(request) {
            self.counts.remove(&name);
            self.out.delete_set(&name);
        }
    }

    fn set_names(&self, request: &SetRequest) -> Vec<String> {
        let per_family = |f: Family| match request {
            SetRequest::Pods { key, .. } => names::selector_set(key, f),
            SetRequest::NamedPort { key, .. } => names::named_port_set(key, f),
            SetRequest::Block { name, .. } => name.clone(),
        };
        let mut out: Vec<String> = self.families.iter().map(|f| per_family(*f)).collect();
        out.dedup();
        out
    }

    /// Creates the sets of `request`, filled by scanning the pods.
    fn create_set(&mut self, request: &SetRequest) {
        if let SetRequest::Block { name, def } = request {
            self.out.put_set(name, def.clone());
            return;
        }
        let mut contributions: Vec<(String, String)> = Vec::new();
        for pod in self.candidates(request) {
            contributions.extend(self.elements_of(request, pod));
        }
        let mut counted: BTreeMap<String, HashMap<String, u32>> = BTreeMap::new();
        for (set, element) in contributions {
            *counted.entry(set).or_default().entry(element).or_default() += 1;
        }
        for f in self.families.clone() {
            let (name, key_type) = match request {
                SetRequest::Pods { key, .. } => {
                    (names::selector_set(key, f), addr_type(f).to_string())
                }
                SetRequest::NamedPort { key, .. } => {
                    (names::named_port_set(key, f), named_port_key_type(f))
                }
                SetRequest::Block { .. } => return,
            };
            let counts = counted.remove(&name).unwrap_or_default();
            let def = SetDef {
                key_type,
                interval: false,
                elements: counts.keys().cloned().collect(),
            };
            self.out.put_set(&name, def);
            self.counts.insert(name, counts);
        }
    }

    /// The pods `request` selects (peer sets) or may hold (named-port
    /// sets). Namespaces are matched once each, pods by a range scan of
    /// their namespace (pods are keyed by namespace first).
    fn candidates<'s>(&'s self, request: &'s SetRequest) -> Vec<&'s PodInfo> {
        let SetRequest::Pods { scope, pods, .. } = request else {
            return self.pods.values().collect();
        };
        let mut out = Vec::new();
        for ns in self.endpoints.keys() {
            let in_scope = match scope {
                NamespaceScope::Own(own) => own == ns,
                NamespaceScope::Matching(sel) => {
                    namespace_matches(ns, self.namespaces.get(ns), sel)
                }
            };
            if !in_scope {
                continue;
            }
            let from = (ns.clone(), String::new());
            let in_ns = self.pods.range(from..).take_while(|(k, _)| k.0 == *ns);
            out.extend(in_ns.map(|(_, p)| p).filter(|p| pods.matches(&p.labels)));
        }
        out
    }

    /// (set name, element) pairs `pod` puts into the sets of `request`.
    fn contribution(&self, request: &SetRequest, pod: &PodInfo) -> Vec<(String, String)> {
        if let SetRequest::Pods { scope, pods, .. } = request
            && !self.selects(scope, pods, pod, None)
        {
            return Vec::new();
        }
        self.elements_of(request, pod)
    }

    /// The pairs `pod` would put into the sets of `request` if selected.
    fn elements_of(&self, request: &SetRequest, pod: &PodInfo) -> Vec<(String, String)> {
        if !pod.is_endpoint() {
            return Vec::new();
        }
        let pairs: Vec<(Family, String)> = match request {
            SetRequest::Pods { .. } => pod_ips(pod).collect(),
            SetRequest::NamedPort { name, protocol, .. } => {
                named_port_elements(pod, name, *protocol)
            }
            SetRequest::Block { .. } => Vec::new(),
        };
        let sets: &[(Family, String)] = match request {
            SetRequest::Pods { names, .. } | SetRequest::NamedPort { names, .. } => names,
            SetRequest::Block { .. } => &[],
        };
        // Only planned families have a set.
        let set_of = |f: Family| sets.iter().find(|(g, _)| *g == f).map(|(_, n)| n.clone());
        pairs
            .into_iter()
            .filter_map(|(f, e)| set_of(f).map(|n| (n, e)))
            .collect()
    }

    /// Whether a peer (`scope`, `pods`) selects `pod`; `ns_labels` overrides
    /// the labels of the pod's namespace (for a relabelling).
    fn selects(
        &self,
        scope: &NamespaceScope,
        pods: &Selector,
        pod: &PodInfo,
        ns_labels: Option<Option<&Labels>>,
    ) -> bool {
        let in_scope = match scope {
            NamespaceScope::Own(ns) => *ns == pod.namespace,
            NamespaceScope::Matching(sel) => {
                let labels = ns_labels.unwrap_or_else(|| self.namespaces.get(&pod.namespace));
                namespace_matches(&pod.namespace, labels, sel)
            }
        };
        in_scope && pods.matches(&pod.labels)
    }

    /// Adds the pod `key` (already stored) to every set it belongs in.
    pub(super) fn contribute_pod(&mut self, key: &PodKey) {
        let Some(pod) = self.pods.get(key) else {
            return;
        };
        if pod.is_endpoint() {
            let names = self.endpoints.entry(key.0.clone()).or_default();
            names.insert(key.1.clone());
        }
        if self.is_local(pod) {
            let names = self.local.entry(key.0.clone()).or_default();
            names.insert(key.1.clone());
        }
        let pairs = self.pod_pairs(pod);
        for (set, element) in pairs {
            self.count_up(&set, &element);
        }
    }

    /// Removes the pod `old` (no longer stored) from every set.
    pub(super) fn withdraw_pod(&mut self, key: &PodKey, old: &PodInfo) {
        for index in [&mut self.endpoints, &mut self.local] {
            if let Some(names) = index.get_mut(&key.0) {
                names.remove(&key.1);
                if names.is_empty() {
                    index.remove(&key.0);
                }
            }
        }
        for (set, element) in self.pod_pairs(old) {
            self.count_down(&set, &element);
        }
    }

    /// Everything `pod` contributes: peer and named-port sets, local pods.
    fn pod_pairs(&self, pod: &PodInfo) -> Vec<(String, String)> {
        let mut pairs: Vec<(String, String)> = Vec::new();
        for set in self.peer_sets.values() {
            pairs.extend(self.contribution(&set.request, pod));
        }
        if self.is_local(pod) {
            let local = pod_ips(pod).filter(|(f, _)| self.planned(*f));
            pairs.extend(local.map(|(f, e)| (names::local_pods_set(f), e)));
        }
        pairs
    }

    /// A namespace's labels changed from `old`: re-evaluate the
    /// namespace-selector sets for its pods.
    pub(super) fn relabel_namespace(&mut self, ns: &str, old: Option<&Labels>) {
        let Some(names) = self.endpoints.get(ns) else {
            return;
        };
        let keys: Vec<PodKey> = names.iter().map(|n| (ns.to_string(), n.clone())).collect();
        let mut changes: Vec<(bool, String, String)> = Vec::new();
        for set in self.peer_sets.values() {
            let SetRequest::Pods { scope, pods, .. } = &set.request else {
                continue;
            };
            if matches!(scope, NamespaceScope::Own(_)) {
                continue;
            }
            for key in &keys {
                let pod = &self.pods[key];
                let before = self.selects(scope, pods, pod, Some(old));
                let now = self.selects(scope, pods, pod, None);
                if before != now {
                    let pairs = self.elements_of(&set.request, pod);
                    changes.extend(pairs.into_iter().map(|(s, e)| (now, s, e)));
                }
            }
        }
        for (add, set, element) in changes {
            match add {
                true => self.count_up(&set, &element),
                false => self.count_down(&set, &element),
            }
        }
    }

    fn count_up(&mut self, set: &str, element: &str) {
        let counts = self.counts.entry(set.to_string()).or_default();
        let n = counts.entry(element.to_string()).or_default();
        *n += 1;
        if *n == 1 {
            self.out.insert_element(set, element);
        }
    }

    fn count_down(&mut self, set: &str, element: &str) {
        let Some(counts) = self.counts.get_mut(set) else {
            return;
        };
        let Some(n) = counts.get_mut(element) else {
            return;
        };
        *n -= 1;
        if *n == 0 {
            counts.remove(element);
            self.out.remove_element(set, element);
        }
    }
}
