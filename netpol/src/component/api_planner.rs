//! API objects -> the incremental planner, converting each object only
//! when the store holds a new version of it, and folding in the pending
//! hand-overs of the CNI plugin.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::api::networking::v1::NetworkPolicy;

use super::cache::StoreCache;
use crate::handshake::{Disposition, PendingPod, merge_pending};
use crate::model::{NamespaceInfo, PodInfo, Policy, Problem, cluster_dns};
use crate::plan::{Delta, Incremental, NodeScope, Plan, PodKey};

/// The current objects of the stores (`Store::state()`), the node and the
/// pending hand-overs.
pub struct Snapshot<'a> {
    pub pods: Vec<Arc<Pod>>,
    pub namespaces: Vec<Arc<Namespace>>,
    pub policies: Vec<Arc<NetworkPolicy>>,
    pub node: NodeScope,
    pub pending: &'a [PendingPod],
    /// The cluster DNS addresses served on this node (fixed for the run).
    pub cluster_dns: &'a [IpAddr],
}

/// What one [`ApiPlanner::sync`] found.
#[derive(Debug)]
pub struct Update {
    /// The change of the plan since the previous sync; `None` on the
    /// first sync (there is no previous plan: apply [`ApiPlanner::plan`]
    /// whole).
    pub delta: Option<Delta>,
    /// Problems of the policies converted in this sync.
    pub problems: Vec<Problem>,
    /// One per entry of `Snapshot::pending`.
    pub dispositions: Vec<Disposition>,
}

/// Keeps planner views per object between syncs (see the module docs).
pub struct ApiPlanner {
    pods: StoreCache<Pod>,
    namespaces: StoreCache<Namespace>,
    policies: StoreCache<NetworkPolicy>,
    planner: Incremental,
    /// Pods whose view carries a pending hand-over.
    overlaid: BTreeSet<PodKey>,
    /// Whether the cluster DNS stand-in is planned.
    cluster_dns: bool,
    synced: bool,
}

impl ApiPlanner {
    /// Nothing known yet; the first sync converts everything.
    pub fn new(node: NodeScope) -> ApiPlanner {
        ApiPlanner {
            pods: StoreCache::new(),
            namespaces: StoreCache::new(),
            policies: StoreCache::new(),
            planner: Incremental::new(node),
            overlaid: BTreeSet::new(),
            cluster_dns: false,
            synced: false,
        }
    }

    /// The plan of `snapshot` by the full path (every object converted, one
    /// [`crate::plan::build`]), without touching any planner state: the
    /// reference, and the fastest way to a first plan.
    pub fn full_plan(snapshot: &Snapshot<'_>) -> Plan {
        let (policies, mut pods, mut namespaces, _) = crate::views_from_api(
            snapshot.policies.iter().map(AsRef::as_ref),
            snapshot.pods.iter().map(AsRef::as_ref),
            snapshot.namespaces.iter().map(AsRef::as_ref),
        );
        merge_pending(&mut pods, snapshot.pending, &snapshot.node.name);
        cluster_dns::add_to(&mut pods, &mut namespaces, snapshot.cluster_dns);
        crate::plan::build(&crate::plan::Inputs {
            policies: &policies,
            pods: &pods,
            namespaces: &namespaces,
            node: &snapshot.node,
        })
    }

    /// The current plan (what a full build of the last snapshot gives).
    pub fn plan(&self) -> &Plan {
        self.planner.plan()
    }

    /// Brings the plan up to `snapshot`; returns what changed.
    pub fn sync(&mut self, snapshot: Snapshot<'_>) -> Update {
        // The first sync loads everything and is applied whole: recording
        // every element of it as a change would only cost time.
        let first = !self.synced;
        self.planner.set_tracking(!first);
        self.planner.set_node(snapshot.node.clone());
        if first {
            self.add_cluster_dns(snapshot.cluster_dns);
        }
        for (key, ns) in self.namespaces.sync(snapshot.namespaces) {
            let info = ns.map(|n| NamespaceInfo::from_api(&n));
            // The stand-in's namespace outlives a missing or deleted
            // kube-system, as in the full build.
            let info = info.or_else(|| {
                let ours = self.cluster_dns && key.1 == cluster_dns::NAMESPACE;
                ours.then(cluster_dns::namespace)
            });
            self.planner.set_namespace(&key.1, info);
        }
        // Pods before policies: on a bulk load, a policy then finds its
        // targets and fills its sets in one scan each, instead of every pod
        // being checked against every set already referred to.
        let changed = self.pods.sync(snapshot.pods);
        let dispositions = self.sync_pods(changed, snapshot.pending, &snapshot.node.name);
        let mut problems = Vec::new();
        for (key, np) in self.policies.sync(snapshot.policies) {
            let policy = np.map(|np| Policy::from_api(&np, &mut problems));
            let id = format!("{}/{}", key.0, key.1);
            self.planner.set_policy(&id, policy);
        }
        self.synced = true;
        let delta = match first {
            true => {
                self.planner.set_tracking(true);
                None
            }
            false => Some(self.planner.take_delta()),
        };
        Update {
            delta,
            problems,
            dispositions,
        }
    }

    /// Plans the cluster DNS stand-in and its namespace (the store's
    /// kube-system, synced next, replaces the latter).
    fn add_cluster_dns(&mut self, addresses: &[IpAddr]) {
        let Some(pod) = cluster_dns::stand_in(addresses) else {
            return;
        };
        self.cluster_dns = true;
        let ns = cluster_dns::namespace();
        self.planner.set_namespace(&ns.name, Some(ns.clone()));
        let key = (pod.namespace.clone(), pod.name.clone());
        self.planner.set_pod(key, Some(pod));
    }

    /// Feeds changed pods, and every pod with a pending hand-over now or
    /// at the previous sync, to the planner.
    fn sync_pods(
        &mut self,
        changed: BTreeMap<PodKey, Option<Arc<Pod>>>,
        pending: &[PendingPod],
        node: &str,
    ) -> Vec<Disposition> {
        let mut by_pod: BTreeMap<PodKey, Vec<(usize, &PendingPod)>> = BTreeMap::new();
        for (i, entry) in pending.iter().enumerate() {
            let key = (entry.namespace.clone(), entry.name.clone());
            by_pod.entry(key).or_default().push((i, entry));
        }
        let mut dirty: BTreeSet<PodKey> = changed.keys().cloned().collect();
        dirty.extend(std::mem::take(&mut self.overlaid));
        dirty.extend(by_pod.keys().cloned());
        let mut dispositions = vec![Disposition::Wait; pending.len()];
        for key in dirty {
            let mut view: Vec<PodInfo> = self
                .pods
                .get(&key)
                .map(|p| PodInfo::from_api(p))
                .into_iter()
                .collect();
            if let Some(entries) = by_pod.get(&key) {
                let group: Vec<PendingPod> = entries.iter().map(|(_, e)| (*e).clone()).collect();
                let results = merge_pending(&mut view, &group, node);
                for ((i, _), disposition) in entries.iter().zip(results) {
                    dispositions[*i] = disposition;
                }
                self.overlaid.insert(key.clone());
            }
            self.planner.set_pod(key, view.pop());
        }
        dispositions
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Inputs, build};
    use serde_json::json;

    fn pod(name: &str, ip: Option<&str>, tier: &str) -> Arc<Pod> {
        let status = match ip {
            Some(ip) => json!({"phase": "Running", "podIP": ip}),
            None => json!({"phase": "Pending"}),
        };
        Arc::new(
            serde_json::from_value(json!({
                "metadata": {"namespace": "x", "name": name, "labels": {"tier": tier}},
                "spec": {"nodeName": "node-1", "containers": []},
                "status": status
            }))
            .expect("pod JSON"),
        )
    }

    fn node() -> NodeScope {
        NodeScope {
            name: "node-1".into(),
            pod_cidrs: vec!["10.42.0.0/24".parse().expect("cidr")],
            fail_closed_unknown_pods: true,
        }
    }

    /// What the daemon planned before: every object converted, pending
    /// merged, one full build.
    fn reference(
        pods: &[Arc<Pod>],
        policies: &[Arc<NetworkPolicy>],
        pending: &[PendingPod],
    ) -> (Plan, Vec<Disposition>) {
        let (policies, mut pods, namespaces, _) = crate::views_from_api(
            policies.iter().map(AsRef::as_ref),
            pods.iter().map(AsRef::as_ref),
            std::iter::empty(),
        );
        let dispositions = merge_pending(&mut pods, pending, "node-1");
        let inputs = Inputs {
            policies: &policies,
            pods: &pods,
            namespaces: &namespaces,
            node: &node(),
        };
        (build(&inputs), dispositions)
    }

    #[test]
    fn equals_the_full_path_with_pending_hand_overs_coming_and_going() {
        let policy: Arc<NetworkPolicy> = Arc::new(
            serde_json::from_value(json!({
                "metadata": {"namespace": "x", "name": "db"},
                "spec": {"podSelector": {"matchLabels": {"tier": "db"}},
                         "ingress": [{"from": [{"podSelector": {"matchLabels": {"tier": "web"}}}]}]}
            }))
            .expect("policy JSON"),
        );
        let policies = vec![policy];
        let pending = [PendingPod {
            ip: "10.42.0.9".parse().expect("ip"),
            namespace: "x".into(),
            name: "new".into(),
            container_id: "c1".into(),
        }];
        let mut planner = ApiPlanner::new(node());
        let steps: Vec<(Vec<Arc<Pod>>, &[PendingPod])> = vec![
            (
                vec![pod("a", Some("10.42.0.2"), "db"), pod("new", None, "db")],
                &pending,
            ),
            (
                vec![pod("a", Some("10.42.0.2"), "web"), pod("new", None, "db")],
                &pending,
            ),
            (
                vec![
                    pod("a", Some("10.42.0.2"), "web"),
                    pod("new", Some("10.42.0.9"), "db"),
                ],
                &[],
            ),
            (vec![pod("new", Some("10.42.0.9"), "web")], &[]),
        ];
        for (i, (pods, pending)) in steps.into_iter().enumerate() {
            let snapshot = Snapshot {
                pods: pods.clone(),
                namespaces: Vec::new(),
                policies: policies.clone(),
                node: node(),
                pending,
                cluster_dns: &[],
            };
            let full = ApiPlanner::full_plan(&Snapshot {
                pods: pods.clone(),
                namespaces: Vec::new(),
                policies: policies.clone(),
                node: node(),
                pending,
                cluster_dns: &[],
            });
            let update = planner.sync(snapshot);
            let (plan, dispositions) = reference(&pods, &policies, pending);
            assert_eq!(full, plan, "step {i}: full_plan");
            assert_eq!(planner.plan(), &plan, "step {i}");
            assert_eq!(update.dispositions, dispositions, "step {i}");
        }
    }

    fn namespace(name: &str, labels: serde_json::Value) -> Arc<Namespace> {
        Arc::new(
            serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}}))
                .expect("namespace JSON"),
        )
    }

    /// A policy written for CoreDNS (egress to `k8s-app=kube-dns` pods in
    /// kube-system on the named port `dns`) allows the cluster DNS address,
    /// whether or not the store holds kube-system, and the incremental
    /// planner agrees with the full build throughout.
    #[test]
    fn a_coredns_egress_rule_allows_the_cluster_dns_address() {
        let policy: Arc<NetworkPolicy> = Arc::new(
            serde_json::from_value(json!({
                "metadata": {"namespace": "x", "name": "dns-only"},
                "spec": {"podSelector": {}, "policyTypes": ["Egress"], "egress": [{
                    "to": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                            "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}],
                    "ports": [{"protocol": "UDP", "port": "dns"}]
                }]}
            }))
            .expect("policy JSON"),
        );
        let dns: [IpAddr; 1] = ["10.43.0.10".parse().expect("ip")];
        let pods = vec![pod("a", Some("10.42.0.2"), "web")];
        let kube_system = namespace("kube-system", json!({"team": "platform"}));
        let mut planner = ApiPlanner::new(node());
        for (i, namespaces) in [vec![], vec![kube_system], vec![]].into_iter().enumerate() {
            let snapshot = || Snapshot {
                pods: pods.clone(),
                namespaces: namespaces.clone(),
                policies: vec![policy.clone()],
                node: node(),
                pending: &[],
                cluster_dns: &dns,
            };
            let full = ApiPlanner::full_plan(&snapshot());
            planner.sync(snapshot());
            assert_eq!(planner.plan(), &full, "step {i}");
            let script = crate::plan::full_script(&full);
            assert!(
                script.contains("10.43.0.10 . udp . 53"),
                "step {i}: the DNS address is not allowed:\n{script}"
            );
        }
        // Without nodenet's DNS there is nothing to allow.
        let none = ApiPlanner::full_plan(&Snapshot {
            pods,
            namespaces: Vec::new(),
            policies: vec![policy],
            node: node(),
            pending: &[],
            cluster_dns: &[],
        });
        assert!(!crate::plan::full_script(&none).contains("10.43.0.10"));
    }
}
