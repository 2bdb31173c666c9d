//! The incremental planner against the reference: random event sequences,
//! and after every step the kept plan, the plan rebuilt from the deltas
//! and the delta's script must equal the full build and its diff.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde_json::{Value, json};

use super::*;
use crate::model::{NamedPort, Protocol};
use crate::plan::{Inputs, build, diff};

const NODE: &str = "node-1";

/// xorshift64*: deterministic, seedable, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

const NAMESPACES: [&str; 3] = ["x", "y", "z"];

fn random_labels(rng: &mut Rng) -> Labels {
    let mut labels = Labels::new();
    for (key, values) in [("app", ["a", "b", "c"]), ("tier", ["web", "db", "web"])] {
        if rng.chance(80) {
            labels.insert(key.into(), rng.pick(&values).to_string());
        }
    }
    labels
}

fn random_pod(rng: &mut Rng, ns: &str, name: &str) -> PodInfo {
    // A small address pool, so that pods share addresses now and then.
    let v4: IpAddr = format!("10.42.0.{}", 2 + rng.below(10))
        .parse()
        .expect("ip");
    let v6: IpAddr = format!("fd00::{}", 2 + rng.below(10)).parse().expect("ip");
    let ips = match rng.below(5) {
        0 => vec![],
        1 => vec![v4, v6],
        _ => vec![v4],
    };
    let node = match rng.below(4) {
        0 => None,
        1 => Some("node-2".to_string()),
        _ => Some(NODE.to_string()),
    };
    let mut ports = vec![NamedPort {
        name: "http".into(),
        protocol: Protocol::Tcp,
        port: *rng.pick(&[80, 8080]),
    }];
    if rng.chance(50) {
        ports.push(NamedPort {
            name: "dns".into(),
            protocol: Protocol::Udp,
            port: 53,
        });
    }
    PodInfo {
        namespace: ns.into(),
        name: name.into(),
        node,
        ips,
        labels: random_labels(rng),
        host_network: rng.chance(5),
        terminal: rng.chance(5),
        ports,
    }
}

fn random_selector(rng: &mut Rng) -> Value {
    match rng.below(5) {
        0 => json!({}),
        1 => json!({"matchLabels": {"app": rng.pick(&["a", "b"])}}),
        2 => json!({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["web"]}]}),
        3 => json!({"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["c"]}]}),
        _ => json!({"matchExpressions": [{"key": "tier", "operator": "Exists"}]}),
    }
}

fn random_peer(rng: &mut Rng) -> Value {
    match rng.below(4) {
        0 => json!({"podSelector": random_selector(rng)}),
        1 => json!({"namespaceSelector": {"matchLabels": {"team": rng.pick(&["red", "blue"])}},
                    "podSelector": random_selector(rng)}),
        2 => json!({"namespaceSelector": random_selector(rng)}),
        _ => json!({"ipBlock": {"cidr": rng.pick(&["10.0.0.0/8", "fd00::/64"]),
                                "except": [rng.pick(&["10.1.0.0/16", "fd00::/96"])]}}),
    }
}

fn random_rule(rng: &mut Rng) -> Value {
    let peers: Vec<Value> = (0..rng.below(3)).map(|_| random_peer(rng)).collect();
    let ports = match rng.below(3) {
        0 => json!([]),
        1 => {
            json!([{"protocol": "TCP", "port": 80}, {"protocol": "UDP", "port": 53, "endPort": 60}])
        }
        _ => json!([{"protocol": "TCP", "port": "http"}, {"protocol": "UDP", "port": "dns"}]),
    };
    json!({"from": peers, "to": peers, "ports": ports})
}

fn random_policy(rng: &mut Rng, ns: &str, name: &str) -> Policy {
    let types = [
        json!(["Ingress"]),
        json!(["Egress"]),
        json!(["Ingress", "Egress"]),
    ][rng.below(3)]
    .clone();
    let ingress: Vec<Value> = (0..rng.below(3)).map(|_| random_rule(rng)).collect();
    let egress: Vec<Value> = (0..rng.below(3)).map(|_| random_rule(rng)).collect();
    let np: k8s_openapi::api::networking::v1::NetworkPolicy = serde_json::from_value(json!({
        "metadata": {"namespace": ns, "name": name},
        "spec": {"podSelector": random_selector(rng), "policyTypes": types,
                 "ingress": ingress, "egress": egress}
    }))
    .expect("policy JSON");
    Policy::from_api(&np, &mut Vec::new())
}

fn random_node(rng: &mut Rng) -> NodeScope {
    let cidrs = match rng.below(3) {
        0 => vec!["10.42.0.0/24"],
        1 => vec!["10.42.0.0/24", "fd00::/64"],
        _ => vec![],
    };
    NodeScope {
        name: NODE.into(),
        pod_cidrs: cidrs.iter().map(|c| c.parse().expect("cidr")).collect(),
        fail_closed_unknown_pods: rng.chance(80),
    }
}

/// The inputs, as the reference sees them.
#[derive(Default)]
struct World {
    pods: BTreeMap<PodKey, PodInfo>,
    namespaces: BTreeMap<String, NamespaceInfo>,
    policies: BTreeMap<String, Policy>,
}

impl World {
    fn build(&self, node: &NodeScope) -> Plan {
        let policies: Vec<Policy> = self.policies.values().cloned().collect();
        let pods: Vec<PodInfo> = self.pods.values().cloned().collect();
        let namespaces: Vec<NamespaceInfo> = self.namespaces.values().cloned().collect();
        build(&Inputs {
            policies: &policies,
            pods: &pods,
            namespaces: &namespaces,
            node,
        })
    }
}

/// Applies one random event to both the world and the planner.
fn step(rng: &mut Rng, world: &mut World, planner: &mut Incremental, node: &mut NodeScope) {
    let ns = *rng.pick(&NAMESPACES);
    match rng.below(20) {
        0..=11 => {
            let key = (ns.to_string(), format!("p{}", rng.below(8)));
            let pod = (!rng.chance(20)).then(|| random_pod(rng, ns, &key.1));
            match &pod {
                Some(p) => world.pods.insert(key.clone(), p.clone()),
                None => world.pods.remove(&key),
            };
            planner.set_pod(key, pod);
        }
        12..=14 => {
            let team = rng.pick(&["red", "blue"]);
            let info = (!rng.chance(20))
                .then(|| NamespaceInfo::new(ns, [("team".to_string(), team.to_string())].into()));
            match &info {
                Some(i) => world.namespaces.insert(ns.to_string(), i.clone()),
                None => world.namespaces.remove(ns),
            };
            planner.set_namespace(ns, info);
        }
        15..=18 => {
            let name = format!("pol{}", rng.below(4));
            let id = format!("{ns}/{name}");
            let policy = (!rng.chance(20)).then(|| random_policy(rng, ns, &name));
            match &policy {
                Some(p) => world.policies.insert(id.clone(), p.clone()),
                None => world.policies.remove(&id),
            };
            planner.set_policy(&id, policy);
        }
        _ => {
            *node = random_node(rng);
            planner.set_node(node.clone());
        }
    }
}

fn run(seed: u64, steps: usize) {
    let mut rng = Rng(seed);
    let mut node = random_node(&mut rng);
    let mut world = World::default();
    let mut planner = Incremental::new(node.clone());
    let mut live = world.build(&node);
    assert_eq!(*planner.plan(), live, "seed {seed}: empty start");
    planner.take_delta();
    for i in 0..steps {
        step(&mut rng, &mut world, &mut planner, &mut node);
        let expected = world.build(&node);
        assert_eq!(*planner.plan(), expected, "seed {seed} step {i}: kept plan");
        let delta = planner.take_delta();
        assert_eq!(
            delta.script(),
            diff(&live, &expected),
            "seed {seed} step {i}: delta script"
        );
        live.apply_delta(&delta);
        assert_eq!(
            live, expected,
            "seed {seed} step {i}: plan rebuilt from deltas"
        );
    }
}

#[test]
fn random_event_sequences_equal_the_full_build() {
    for seed in 1..=40u64 {
        run(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15), 300);
    }
}

#[test]
fn element_only_deltas_are_recognised() {
    let node = NodeScope {
        name: NODE.into(),
        pod_cidrs: vec!["10.42.0.0/24".parse().expect("cidr")],
        fail_closed_unknown_pods: true,
    };
    let mut planner = Incremental::new(node);
    let pod = |ip: &str, node: &str| PodInfo {
        namespace: "x".into(),
        name: "a".into(),
        node: Some(node.into()),
        ips: vec![ip.parse().expect("ip")],
        ..PodInfo::default()
    };
    planner.take_delta();
    planner.set_pod(("x".into(), "a".into()), Some(pod("10.42.0.2", NODE)));
    let ops = planner.take_delta().element_ops().expect("element-only");
    assert_eq!(ops.len(), 1);
    assert!(ops[0].add);
    assert_eq!(ops[0].object, "local-pods-v4");
    assert_eq!(ops[0].elements, [("10.42.0.2".to_string(), None)]);
    let np = serde_json::from_value(json!({
        "metadata": {"namespace": "x", "name": "p"},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}
    }))
    .expect("policy JSON");
    planner.set_policy("x/p", Some(Policy::from_api(&np, &mut Vec::new())));
    let delta = planner.take_delta();
    assert!(!delta.is_empty());
    assert!(delta.element_ops().is_none(), "a new chain is structural");
}
