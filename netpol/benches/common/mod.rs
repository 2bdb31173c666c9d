//! Synthetic clusters for the netpol benchmarks, built as API objects (Pod,
//! Namespace, NetworkPolicy JSON) so that the daemon's conversion step
//! (`views_from_api`) is measured along with the planner.
//!
//! Shape (deterministic, no randomness):
//! * 100 namespaces `ns-000..ns-099`, labels `team=team-<s%10>`,
//!   `env=prod|dev`.
//! * `pods` pods spread evenly over 50 nodes: pod `i = 50q + r` runs on
//!   node `node-<r>` with IP `10.42.<r>.<q+2>` (node r owns 10.42.r.0/24),
//!   in namespace `ns-<(51q + r) % 100>` (51 is coprime with 100, so every
//!   node gets pods of every namespace). This node is `node-0`: it owns
//!   exactly 1/50 = 2 % of the pods (20 of 1 000, 200 of 10 000 - above
//!   the kubelet's default 110 max-pods, i.e. a busy node).
//! * Labels `app=app-<(i/7)%30>`, `tier=web|api|db`, `version=v0|v1`; each
//!   container declares the named port `http` (TCP 8080), every 4th also
//!   `metrics` (TCP 9090).
//! * Policies `pol-<p>` in `ns-<p%100>`, five kinds cycling with p: pod
//!   selector + own-namespace peer; matchExpressions In + namespace AND pod
//!   selector + port range (endPort); ipBlock with except + named port +
//!   egress ipBlock; NotIn + namespaceSelector In + egress to pods of all
//!   namespaces; Exists selectors with UDP and SCTP ports.

#![allow(dead_code)]

use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use netpol::model::{NamespaceInfo, PodInfo, Policy};
use netpol::plan::NodeScope;
use serde_json::{Value, json};

/// Nodes the pods are spread over.
pub const NODES: usize = 50;
/// Namespaces of the synthetic cluster.
pub const NAMESPACES: usize = 100;
/// The node whose table is planned.
pub const THIS_NODE: &str = "node-0";

/// The API objects of one synthetic cluster.
pub struct ApiObjects {
    pub policies: Vec<NetworkPolicy>,
    pub pods: Vec<Pod>,
    pub namespaces: Vec<Namespace>,
}

/// The planner's views of one synthetic cluster.
pub struct Views {
    pub policies: Vec<Policy>,
    pub pods: Vec<PodInfo>,
    pub namespaces: Vec<NamespaceInfo>,
}

impl ApiObjects {
    /// `policies` policies over `pods` pods.
    pub fn new(policies: usize, pods: usize) -> ApiObjects {
        ApiObjects {
            policies: (0..policies).map(policy).collect(),
            pods: (0..pods).map(pod).collect(),
            namespaces: (0..NAMESPACES).map(namespace).collect(),
        }
    }

    /// The daemon's conversion step; panics if a synthetic policy has a
    /// problem (the fixtures are meant to be valid).
    pub fn views(&self) -> Views {
        let (policies, pods, namespaces, problems) = netpol::views_from_api(
            self.policies.iter(),
            self.pods.iter(),
            self.namespaces.iter(),
        );
        assert!(problems.is_empty(), "fixture problems: {problems:?}");
        Views {
            policies,
            pods,
            namespaces,
        }
    }
}

/// `node-0` with its pod CIDR, failing closed like the daemon's default.
pub fn node_scope() -> NodeScope {
    NodeScope {
        name: THIS_NODE.into(),
        pod_cidrs: vec!["10.42.0.0/24".parse().expect("cidr")],
        fail_closed_unknown_pods: true,
    }
}

/// Where pod `i` lives: (node index, namespace index, IP).
pub fn placement(i: usize) -> (usize, usize, String) {
    let (q, r) = (i / NODES, i % NODES);
    let ns = (51 * q + r) % NAMESPACES;
    (r, ns, format!("10.42.{r}.{}", q + 2))
}

/// Pod `i` as an API object (Running, with its IP).
pub fn pod(i: usize) -> Pod {
    let (node, ns, ip) = placement(i);
    let tier = ["web", "api", "db"][i % 3];
    let labels = json!({
        "app": format!("app-{}", (i / 7) % 30),
        "tier": tier,
        "version": format!("v{}", i % 2),
    });
    pod_object(
        &format!("ns-{ns:03}"),
        &format!("pod-{i}"),
        node,
        &ip,
        labels,
        i.is_multiple_of(4),
    )
}

/// A Running pod object; `metrics` adds a second named port.
pub fn pod_object(
    ns: &str,
    name: &str,
    node: usize,
    ip: &str,
    labels: Value,
    metrics: bool,
) -> Pod {
    let mut ports = vec![json!({"name": "http", "containerPort": 8080})];
    if metrics {
        ports.push(json!({"name": "metrics", "containerPort": 9090}));
    }
    serde_json::from_value(json!({
        "metadata": {"namespace": ns, "name": name, "labels": labels},
        "spec": {"nodeName": format!("node-{node}"),
                 "containers": [{"name": "main", "image": "x", "ports": ports}]},
        "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]}
    }))
    .expect("pod JSON")
}

fn namespace(s: usize) -> Namespace {
    let env = if s.is_multiple_of(2) { "prod" } else { "dev" };
    serde_json::from_value(json!({
        "metadata": {"name": format!("ns-{s:03}"),
                     "labels": {"team": format!("team-{}", s % 10), "env": env,
                                "kubernetes.io/metadata.name": format!("ns-{s:03}")}}
    }))
    .expect("namespace JSON")
}

/// Policy `p` (kind `p % 5`, see the module docs).
pub fn policy(p: usize) -> NetworkPolicy {
    let spec = match p % 5 {
        0 => json!({
            "podSelector": {"matchLabels": {"app": format!("app-{}", p % 30)}},
            "ingress": [{"from": [{"podSelector": {"matchLabels": {"tier": "web"}}}],
                         "ports": [{"protocol": "TCP", "port": 8080}]}]
        }),
        1 => json!({
            "podSelector": {"matchExpressions": [{"key": "app", "operator": "In",
                "values": [format!("app-{}", p % 30), format!("app-{}", (p + 1) % 30)]}]},
            "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"team": format!("team-{}", p % 10)}},
                                   "podSelector": {"matchLabels": {"tier": "api"}}}],
                         "ports": [{"port": 80}, {"port": 8000, "endPort": 8100}]}]
        }),
        2 => json!({
            "podSelector": {"matchLabels": {"tier": "db"}},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/8",
                                               "except": [format!("10.42.{}.0/24", p % 50)]}}],
                         "ports": [{"port": "http"}]}],
            "egress": [{"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["169.254.0.0/16"]}}],
                        "ports": [{"protocol": "UDP", "port": 53}, {"port": 443}]}]
        }),
        3 => json!({
            "podSelector": {"matchLabels": {"app": format!("app-{}", p % 30)},
                            "matchExpressions": [{"key": "version", "operator": "NotIn", "values": ["v1"]}]},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [{"from": [{"namespaceSelector": {"matchExpressions": [
                {"key": "env", "operator": "In", "values": ["prod"]}]}}]}],
            "egress": [{"to": [{"namespaceSelector": {},
                                "podSelector": {"matchLabels": {"app": format!("app-{}", (p + 3) % 30)}}}],
                        "ports": [{"port": 5432}]}]
        }),
        _ => json!({
            "podSelector": {"matchLabels": {"app": format!("app-{}", p % 30)}},
            "ingress": [{"from": [{"namespaceSelector": {"matchExpressions": [{"key": "team", "operator": "Exists"}]},
                                   "podSelector": {"matchExpressions": [{"key": "app", "operator": "Exists"}]}}],
                         "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "SCTP", "port": 9999}]}]
        }),
    };
    policy_object(
        &format!("ns-{:03}", p % NAMESPACES),
        &format!("pol-{p}"),
        spec,
    )
}

/// A NetworkPolicy object.
pub fn policy_object(ns: &str, name: &str, spec: Value) -> NetworkPolicy {
    serde_json::from_value(json!({"metadata": {"namespace": ns, "name": name}, "spec": spec}))
        .expect("policy JSON")
}

/// Median of `samples` (sorted in place).
pub fn median(samples: &mut [f64]) -> f64 {
    samples.sort_by(f64::total_cmp);
    let n = samples.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        samples[n / 2]
    } else {
        (samples[n / 2 - 1] + samples[n / 2]) / 2.0
    }
}

/// One pod event against the base cluster, as the API objects after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// A new pod on this node (ns-002, tier=db: selected by that
    /// namespace's ipBlock/egress policies, a peer of several sets).
    AddLocal,
    /// That pod's tier label changes db -> web (leaves its policies).
    Relabel,
    /// That pod is deleted (back to the base cluster).
    DeleteLocal,
    /// A new pod on another node (changes only peer sets).
    AddRemote,
    /// A new pod on this node with the namespace and labels of an
    /// existing local pod (pod 0): its policies already have chains, so
    /// only elements change (the common case of a scale-up).
    AddLocalTwin,
    /// That pod is deleted again.
    DeleteLocalTwin,
}

impl Event {
    /// The events in the order the apply benchmark cycles through them;
    /// each starts from the state the previous one left.
    pub const CYCLE: [Event; 6] = [
        Event::AddLocal,
        Event::Relabel,
        Event::DeleteLocal,
        Event::AddRemote,
        Event::AddLocalTwin,
        Event::DeleteLocalTwin,
    ];

    /// Short name for reports.
    pub fn name(self) -> &'static str {
        match self {
            Event::AddLocal => "pod-add-local",
            Event::Relabel => "pod-label-change",
            Event::DeleteLocal => "pod-delete-local",
            Event::AddRemote => "pod-add-remote",
            Event::AddLocalTwin => "pod-add-local-existing-class",
            Event::DeleteLocalTwin => "pod-delete-local-existing-class",
        }
    }

    /// Applies the event to `objects` (the remote pod is removed again by
    /// the next [`Event::AddLocal`], so the cycle can repeat).
    pub fn apply_to(self, objects: &mut ApiObjects) {
        let labels = |tier: &str| json!({"app": "app-0", "tier": tier, "version": "v0"});
        match self {
            Event::AddLocal => {
                objects
                    .pods
                    .retain(|p| p.metadata.name.as_deref() != Some("pod-remote"));
                let pod = pod_object("ns-002", "pod-new", 0, "10.42.0.250", labels("db"), true);
                objects.pods.push(pod);
            }
            Event::Relabel => {
                if let Some(pod) = objects
                    .pods
                    .iter_mut()
                    .find(|p| p.metadata.name.as_deref() == Some("pod-new"))
                {
                    *pod = pod_object("ns-002", "pod-new", 0, "10.42.0.250", labels("web"), true);
                }
            }
            Event::DeleteLocal => {
                objects
                    .pods
                    .retain(|p| p.metadata.name.as_deref() != Some("pod-new"));
            }
            Event::AddRemote => {
                let pod = pod_object("ns-002", "pod-remote", 7, "10.42.7.250", labels("db"), true);
                objects.pods.push(pod);
            }
            Event::AddLocalTwin => {
                let model = pod(0);
                let ns = model.metadata.namespace.clone().unwrap_or_default();
                let same = serde_json::to_value(model.metadata.labels.clone().unwrap_or_default())
                    .expect("labels JSON");
                let twin = pod_object(&ns, "pod-twin", 0, "10.42.0.251", same, true);
                objects.pods.push(twin);
            }
            Event::DeleteLocalTwin => {
                objects
                    .pods
                    .retain(|p| p.metadata.name.as_deref() != Some("pod-twin"));
            }
        }
    }
}

/// The objects as a reflector store holds them: one `Arc` per object,
/// replaced only when the object changes (what the daemon's change
/// detection relies on).
#[derive(Default, Clone)]
pub struct ArcStore {
    pods: std::collections::BTreeMap<(String, String), std::sync::Arc<Pod>>,
    namespaces: Vec<std::sync::Arc<Namespace>>,
    policies: Vec<std::sync::Arc<NetworkPolicy>>,
}

impl ArcStore {
    /// Takes `objects`, keeping the `Arc` of every pod that did not change.
    /// Namespaces and policies are taken once (pod events only).
    pub fn refresh(&mut self, objects: &ApiObjects) {
        use std::sync::Arc;
        if self.namespaces.is_empty() {
            self.namespaces = objects.namespaces.iter().cloned().map(Arc::new).collect();
            self.policies = objects.policies.iter().cloned().map(Arc::new).collect();
        }
        let mut next = std::collections::BTreeMap::new();
        for pod in &objects.pods {
            let key = (
                pod.metadata.namespace.clone().unwrap_or_default(),
                pod.metadata.name.clone().unwrap_or_default(),
            );
            let arc = match self.pods.remove(&key) {
                Some(old) if *old == *pod => old,
                _ => Arc::new(pod.clone()),
            };
            next.insert(key, arc);
        }
        self.pods = next;
    }

    /// What `Store::state()` of each store returns.
    pub fn snapshot(&self) -> netpol::Snapshot<'static> {
        netpol::Snapshot {
            pods: self.pods.values().cloned().collect(),
            namespaces: self.namespaces.clone(),
            policies: self.policies.clone(),
            node: node_scope(),
            pending: &[],
            cluster_dns: &[],
        }
    }
}
