//! NetworkPolicy end-to-end helpers: namespaces, labelled pods, policies,
//! parallel probe matrices, and an independent model of the policy
//! semantics (written from the API documentation, not from netpol/src) that
//! computes the expected reachability.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use lab::Lab;
use serde_json::{Value, json};

use super::WAIT;

pub type Labels = BTreeMap<String, String>;

/// A served port: (protocol, number, name), as declared on the container.
pub const SERVED: [(&str, u16, &str); 4] = [
    ("TCP", 80, "serve-80-tcp"),
    ("TCP", 81, "serve-81-tcp"),
    ("UDP", 80, "serve-80-udp"),
    ("UDP", 81, "serve-81-udp"),
];

/// One pod as the model sees it.
#[derive(Debug, Clone)]
pub struct ModelPod {
    pub namespace: String,
    pub name: String,
    pub node: String,
    pub labels: Labels,
    pub ip: IpAddr,
}

impl ModelPod {
    pub fn id(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// Pods, namespace labels and policies: everything the model reads.
#[derive(Debug, Clone, Default)]
pub struct World {
    pub pods: Vec<ModelPod>,
    pub namespaces: BTreeMap<String, Labels>,
    pub policies: Vec<Value>,
}

pub fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

// ---------------------------------------------------------------- model

/// Whether a `proto`/`port` connection from `src` to `dst` is allowed.
pub fn allowed(world: &World, src: &ModelPod, dst: &ModelPod, proto: &str, port: u16) -> bool {
    let conn = Conn {
        world,
        src,
        dst,
        proto,
        port,
    };
    conn.direction_allows("Egress") && conn.direction_allows("Ingress")
}

struct Conn<'a> {
    world: &'a World,
    src: &'a ModelPod,
    dst: &'a ModelPod,
    proto: &'a str,
    port: u16,
}

impl Conn<'_> {
    /// The pod this direction's policies select, and the one on the other end.
    fn ends(&self, dir: &str) -> (&ModelPod, &ModelPod) {
        if dir == "Ingress" {
            (self.dst, self.src)
        } else {
            (self.src, self.dst)
        }
    }

    fn direction_allows(&self, dir: &str) -> bool {
        let (target, _) = self.ends(dir);
        let selecting: Vec<&Value> = self
            .world
            .policies
            .iter()
            .filter(|p| p["metadata"]["namespace"] == json!(target.namespace))
            .filter(|p| selector_matches(&p["spec"]["podSelector"], &target.labels))
            .filter(|p| policy_types(p).iter().any(|t| t == dir))
            .collect();
        if selecting.is_empty() {
            return true;
        }
        selecting.iter().any(|p| self.policy_allows(p, dir))
    }

    fn policy_allows(&self, policy: &Value, dir: &str) -> bool {
        let (list, peers_key) = if dir == "Ingress" {
            ("ingress", "from")
        } else {
            ("egress", "to")
        };
        let ns = policy["metadata"]["namespace"].as_str().unwrap_or_default();
        let rules = policy["spec"][list].as_array().cloned().unwrap_or_default();
        rules
            .iter()
            .any(|r| self.ports_match(&r["ports"]) && self.peers_match(&r[peers_key], ns, dir))
    }

    /// Ports are always those of the destination pod.
    fn ports_match(&self, ports: &Value) -> bool {
        let Some(list) = ports.as_array().filter(|l| !l.is_empty()) else {
            return true;
        };
        list.iter().any(|p| {
            let proto = p["protocol"].as_str().unwrap_or("TCP");
            if proto != self.proto {
                return false;
            }
            match &p["port"] {
                Value::Null => true,
                Value::Number(n) => {
                    let lo = n.as_u64().unwrap_or(0);
                    let hi = p["endPort"].as_u64().unwrap_or(lo);
                    (lo..=hi).contains(&u64::from(self.port))
                }
                Value::String(name) => SERVED
                    .iter()
                    .any(|(pr, num, nm)| nm == name && *pr == proto && *num == self.port),
                _ => false,
            }
        })
    }

    fn peers_match(&self, peers: &Value, policy_ns: &str, dir: &str) -> bool {
        let Some(list) = peers.as_array().filter(|l| !l.is_empty()) else {
            return true;
        };
        let (_, other) = self.ends(dir);
        list.iter()
            .any(|peer| self.peer_matches(peer, other, policy_ns))
    }

    fn peer_matches(&self, peer: &Value, other: &ModelPod, policy_ns: &str) -> bool {
        if let Some(block) = peer.get("ipBlock") {
            return block_matches(block, other.ip);
        }
        let ns_ok = match peer.get("namespaceSelector") {
            None => other.namespace == policy_ns,
            Some(sel) => {
                let empty = Labels::new();
                let ns_labels = self
                    .world
                    .namespaces
                    .get(&other.namespace)
                    .unwrap_or(&empty);
                selector_matches(sel, ns_labels)
            }
        };
        let pod_ok = match peer.get("podSelector") {
            None => true,
            Some(sel) => selector_matches(sel, &other.labels),
        };
        ns_ok && pod_ok
    }
}

fn policy_types(policy: &Value) -> Vec<String> {
    let listed: Vec<String> = policy["spec"]["policyTypes"]
        .as_array()
        .map(|l| {
            l.iter()
                .filter_map(|t| t.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    if !listed.is_empty() {
        return listed;
    }
    let mut types = vec!["Ingress".to_string()];
    if policy["spec"]["egress"]
        .as_array()
        .is_some_and(|e| !e.is_empty())
    {
        types.push("Egress".into());
    }
    types
}

fn block_matches(block: &Value, ip: IpAddr) -> bool {
    let net = |v: &Value| v.as_str().and_then(|s| s.parse::<IpNet>().ok());
    let Some(cidr) = net(&block["cidr"]) else {
        return false;
    };
    let excepted = block["except"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(net)
        .any(|e| e.contains(&ip));
    cidr.contains(&ip) && !excepted
}

/// matchLabels AND every matchExpression; `{}` matches everything.
pub fn selector_matches(sel: &Value, labels: &Labels) -> bool {
    let exact = sel["matchLabels"]
        .as_object()
        .into_iter()
        .flatten()
        .all(|(k, v)| labels.get(k).map(String::as_str) == v.as_str());
    let exprs = sel["matchExpressions"].as_array().into_iter().flatten();
    exact && exprs.into_iter().all(|e| expression_matches(e, labels))
}

fn expression_matches(expr: &Value, labels: &Labels) -> bool {
    let key = expr["key"].as_str().unwrap_or_default();
    let values: Vec<&str> = expr["values"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let value = labels.get(key).map(String::as_str);
    match expr["operator"].as_str().unwrap_or_default() {
        "In" => value.is_some_and(|v| values.contains(&v)),
        "NotIn" => value.is_none_or(|v| !values.contains(&v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        _ => false,
    }
}

// ------------------------------------------------------------- lab side

/// Creates a namespace with `labels` (plus the name label the API server
/// adds).
pub async fn create_namespace(lab: &Lab, name: &str, labels: &Labels) {
    let api: Api<Namespace> = Api::all(lab.client());
    let ns: Namespace = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": name, "labels": labels}
    }))
    .expect("namespace fixture");
    api.create(&PostParams::default(), &ns)
        .await
        .expect("create namespace");
}

/// Replaces a namespace's labels (merge patch; `None` removes a key).
pub async fn label_namespace(lab: &Lab, name: &str, labels: Value) {
    let api: Api<Namespace> = Api::all(lab.client());
    let patch = json!({"metadata": {"labels": labels}});
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("label namespace");
}

/// Merges `labels` into a pod's labels.
pub async fn label_pod(lab: &Lab, ns: &str, name: &str, labels: Value) {
    let api: Api<Pod> = Api::namespaced(lab.client(), ns);
    let patch = json!({"metadata": {"labels": labels}});
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("label pod");
}

/// A pod serving TCP and UDP 80 and 81 with named container ports.
pub fn server_pod(ns: &str, name: &str, node: &str, labels: &Labels) -> Pod {
    let ports: Vec<Value> = SERVED
        .iter()
        .map(
            |(proto, port, pname)| json!({"containerPort": port, "protocol": proto, "name": pname}),
        )
        .collect();
    let command = [
        "nodenet-workload",
        "serve",
        "--tcp",
        "80",
        "--tcp",
        "81",
        "--udp",
        "80",
        "--udp",
        "81",
    ];
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": labels},
        "spec": {
            "nodeName": node,
            "containers": [{"name": "main", "image": "nodenet/workload", "command": command, "ports": ports}]
        }
    }))
    .expect("pod fixture")
}

/// Creates the pods and waits until all run; returns them for the model.
pub async fn start_pods(lab: &Lab, pods: Vec<Pod>) -> Vec<ModelPod> {
    for pod in &pods {
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(lab.client(), &ns);
        api.create(&PostParams::default(), pod)
            .await
            .expect("create pod");
    }
    let mut out = Vec::new();
    for pod in pods {
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        let running = lab
            .wait_pod_running(&ns, &name, WAIT)
            .await
            .expect("pod runs");
        let ip = super::pod_ip(&running);
        out.push(ModelPod {
            namespace: ns,
            name,
            node: pod.spec.and_then(|s| s.node_name).unwrap_or_default(),
            labels: running.metadata.labels.unwrap_or_default(),
            ip,
        });
    }
    out
}

pub async fn create_policy(lab: &Lab, policy: &Value) {
    let ns = policy["metadata"]["namespace"]
        .as_str()
        .expect("policy namespace");
    let api: Api<NetworkPolicy> = Api::namespaced(lab.client(), ns);
    let typed: NetworkPolicy = serde_json::from_value(policy.clone()).expect("policy fixture");
    api.create(&PostParams::default(), &typed)
        .await
        .expect("create policy");
}

/// Deletes every NetworkPolicy in `namespaces`.
pub async fn delete_policies(lab: &Lab, namespaces: &[&str]) {
    for ns in namespaces {
        let api: Api<NetworkPolicy> = Api::namespaced(lab.client(), ns);
        let list = api
            .list(&ListParams::default())
            .await
            .expect("list policies");
        for p in list.items {
            let name = p.metadata.name.unwrap_or_default();
            api.delete(&name, &DeleteParams::default())
                .await
                .expect("delete policy");
        }
    }
}

/// `NetworkPolicy` JSON with defaults filled as a client writes it.
pub fn policy(ns: &str, name: &str, spec: Value) -> Value {
    json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": name, "namespace": ns},
        "spec": spec
    })
}

/// One probed pair: (from, to, protocol, port).
pub type Pair = (usize, usize, &'static str, u16);

/// Every ordered pair of distinct pods on every served port.
pub fn all_pairs(pods: &[ModelPod]) -> Vec<Pair> {
    let mut out = Vec::new();
    for from in 0..pods.len() {
        for to in (0..pods.len()).filter(|t| *t != from) {
            for (proto, port, _) in SERVED {
                out.push((from, to, proto, port));
            }
        }
    }
    out
}

/// Probes `pairs` (all sources at once, every target of a source in one
/// process); returns whether each connected.
pub async fn probe_pairs(lab: &Lab, pods: &[ModelPod], pairs: &[Pair]) -> Vec<bool> {
    let mut by_source: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
    for (i, (from, ..)) in pairs.iter().enumerate() {
        by_source.entry(*from).or_default().push(i);
    }
    let runs = by_source.iter().map(|(from, indexes)| {
        let targets: Vec<String> = indexes
            .iter()
            .map(|i| {
                let (_, to, proto, port) = pairs[*i];
                let addr = std::net::SocketAddr::new(pods[to].ip, port);
                format!("{}/{addr}", proto.to_lowercase())
            })
            .collect();
        probe_many(lab, &pods[*from], targets)
    });
    let results = futures::future::join_all(runs).await;
    let mut out = vec![false; pairs.len()];
    for ((_, indexes), verdicts) in by_source.iter().zip(results) {
        for (i, ok) in indexes.iter().zip(verdicts) {
            out[*i] = ok;
        }
    }
    out
}

async fn probe_many(lab: &Lab, from: &ModelPod, targets: Vec<String>) -> Vec<bool> {
    let mut argv = vec!["nodenet-workload", "probe-many", "--timeout", "1000"];
    argv.extend(targets.iter().map(String::as_str));
    let out = lab
        .exec_in_pod(&from.namespace, &from.name, &argv, Duration::from_secs(20))
        .await
        .expect("exec probe-many");
    let text = String::from_utf8_lossy(&out.stdout);
    let verdicts: Vec<bool> = text.lines().map(|l| l.starts_with("ok ")).collect();
    assert_eq!(
        verdicts.len(),
        targets.len(),
        "probe-many from {}: {text}\n{}",
        from.id(),
        String::from_utf8_lossy(&out.stderr)
    );
    verdicts
}

/// Expected verdicts of `pairs` per the model.
pub fn expected(world: &World, pairs: &[Pair]) -> Vec<bool> {
    pairs
        .iter()
        .map(|(from, to, proto, port)| {
            allowed(world, &world.pods[*from], &world.pods[*to], proto, *port)
        })
        .collect()
}

/// The mismatches as a readable table (empty: none).
pub fn mismatches(pods: &[ModelPod], pairs: &[Pair], want: &[bool], got: &[bool]) -> String {
    let mut out = String::new();
    for (i, (from, to, proto, port)) in pairs.iter().enumerate() {
        if want[i] != got[i] {
            let (f, t) = (&pods[*from], &pods[*to]);
            let _ = writeln!(
                out,
                "{} ({}) -> {} ({}) {proto}/{port}: want {}, got {}",
                f.id(),
                f.node,
                t.id(),
                t.node,
                verdict(want[i]),
                verdict(got[i])
            );
        }
    }
    out
}

fn verdict(ok: bool) -> &'static str {
    if ok { "allowed" } else { "denied" }
}

/// Probes until the matrix equals the model's (policies take a moment to
/// reach every node) or `deadline` passes; returns the last mismatches and
/// how many probes ran.
pub async fn converge(
    lab: &Lab,
    world: &World,
    pairs: &[Pair],
    deadline: Duration,
) -> (String, usize) {
    let want = expected(world, pairs);
    let until = tokio::time::Instant::now() + deadline;
    let mut probes = 0;
    loop {
        let got = probe_pairs(lab, &world.pods, pairs).await;
        probes += pairs.len();
        let diff = mismatches(&world.pods, pairs, &want, &got);
        if diff.is_empty() || tokio::time::Instant::now() > until {
            return (diff, probes);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `nodenet-workload ARGS` in `from` for about `seconds`; its stdout.
async fn workload_for(lab: &Lab, from: &ModelPod, argv: &[&str], seconds: u64) -> (bool, String) {
    let out = lab
        .exec_in_pod(
            &from.namespace,
            &from.name,
            argv,
            Duration::from_secs(seconds + 20),
        )
        .await
        .unwrap_or_else(|e| panic!("exec {argv:?} in {}: {e}", from.id()));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// `(attempts, connected)` of a `nodenet-workload hammer` run from `from`
/// to `target` for `seconds`: a new connection every 500 ms at most.
pub async fn hammer(lab: &Lab, from: &ModelPod, target: &str, seconds: u64) -> (u64, u64) {
    let secs = seconds.to_string();
    let argv = [
        "nodenet-workload",
        "hammer",
        "--seconds",
        &secs,
        "--attempt-ms",
        "500",
        target,
    ];
    let (_, text) = workload_for(lab, from, &argv, seconds).await;
    let fields: Vec<u64> = text
        .split_whitespace()
        .skip(1)
        .take(2)
        .filter_map(|f| f.parse().ok())
        .collect();
    assert_eq!(fields.len(), 2, "hammer output: {text}");
    (fields[0], fields[1])
}

/// Holds one connection from `from` to `target` for `seconds`, echoing
/// every 100 ms: (whether it lived to the end, the workload's report).
pub async fn hold(lab: &Lab, from: &ModelPod, target: &str, seconds: u64) -> (bool, String) {
    let secs = seconds.to_string();
    let argv = [
        "nodenet-workload",
        "hold",
        target,
        "--seconds",
        &secs,
        "--interval-ms",
        "100",
    ];
    workload_for(lab, from, &argv, seconds).await
}

/// What allowed and denied traffic saw while something was disrupted.
pub struct Streams {
    /// The established allowed connection: lived, and its report.
    pub held: (bool, String),
    /// `(attempts, connected)` of new allowed connections.
    pub allowed: (u64, u64),
    /// `(attempts, connected)` of a denied pod on the target's node.
    pub near: (u64, u64),
    /// `(attempts, connected)` of a denied pod on another node.
    pub far: (u64, u64),
}

impl Streams {
    /// Nothing denied got through, nothing allowed failed.
    pub fn assert_policy_held(&self, during: &str) {
        eprintln!("held connection: {}", self.held.1.trim());
        eprintln!(
            "allowed new connections: {:?}; same-node intruder: {:?}; cross-node intruder: {:?}",
            self.allowed, self.near, self.far
        );
        assert!(
            self.held.0,
            "the established allowed connection broke {during}: {}",
            self.held.1
        );
        assert_eq!(self.near.1, 0, "same-node intruder got through {during}");
        assert_eq!(self.far.1, 0, "cross-node intruder got through {during}");
        assert!(self.near.0 > 10 && self.far.0 > 10, "too few attempts");
        assert_eq!(
            self.allowed.0, self.allowed.1,
            "allowed new connections failed {during}"
        );
    }
}

/// How long a policy change may take to show in a probe matrix.
pub const CONVERGE: Duration = Duration::from_secs(15);

/// Probes every pair of `w`'s pods until the matrix equals the model's;
/// panics naming `case` with the differences otherwise.
pub async fn assert_matrix(lab: &Lab, w: &World, case: &str) {
    let started = std::time::Instant::now();
    let pairs = all_pairs(&w.pods);
    let (diff, probes) = converge(lab, w, &pairs, CONVERGE).await;
    eprintln!(
        "case {case}: {probes} probes, {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert!(
        diff.is_empty(),
        "case {case}: reachability differs:\n{diff}"
    );
}

/// A policy isolating `selector`'s pods for ingress with `ingress` rules.
pub fn ingress_to(ns: &str, name: &str, selector: Value, ingress: Value) -> Value {
    policy(
        ns,
        name,
        json!({"podSelector": selector, "policyTypes": ["Ingress"], "ingress": ingress}),
    )
}

/// The selector of the fixture pods named `a`.
pub fn pod_a() -> Value {
    json!({"matchLabels": {"pod": "a"}})
}

/// A pod for the model's own unit tests (no lab): labelled `pod=<name>`.
pub fn model_pod(ns: &str, name: &str, ip: &str) -> ModelPod {
    ModelPod {
        namespace: ns.into(),
        name: name.into(),
        node: "n".into(),
        labels: labels(&[("pod", name)]),
        ip: ip.parse().expect("ip"),
    }
}
