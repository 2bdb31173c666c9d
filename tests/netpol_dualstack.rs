//! NetworkPolicy over IPv6 as well as IPv4, in a dual-stack lab (pods with
//! an address from 10.42.0.0/16 and one from fd42::/56): a subset of
//! `netpol_conformance.rs`'s cases, x/y/z with pods a, b, c spread over two
//! nodes (same-node and cross-node pairs), every ordered pair probed on
//! every port in each family, the expected matrix from the independent
//! model in `common::netpol` (it reads an ipBlock of either family: an
//! IPv4 block never matches IPv6 traffic and the other way round).

mod common;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Instant;

use common::dualstack::{DualBackend, dual_lab, pod_ips_dual};
use common::netpol::*;
use common::*;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use lab::Lab;
use serde_json::{Value, json};

const NAMESPACES: [&str; 3] = ["x", "y", "z"];
const PODS: [&str; 3] = ["a", "b", "c"];

fn ns_labels(ns: &str) -> Labels {
    labels(&[("ns", ns), ("kubernetes.io/metadata.name", ns)])
}

/// The same pods seen through one family: the model and the probes use
/// `ModelPod::ip`, so each family gets its own world.
struct Worlds {
    v4: World,
    v6: World,
}

impl Worlds {
    fn set_policies(&mut self, policies: Vec<Value>) {
        self.v4.policies = policies.clone();
        self.v6.policies = policies;
    }

    fn pod_ip(&self, id: &str, v6: bool) -> IpAddr {
        let w = if v6 { &self.v6 } else { &self.v4 };
        w.pods.iter().find(|p| p.id() == id).expect("pod").ip
    }
}

/// x/a, x/b, ... alternate between the nodes; returns one world per family.
async fn worlds(lab: &Lab) -> Worlds {
    let mut v4 = World::default();
    let mut pods = Vec::new();
    for (i, ns) in NAMESPACES.iter().enumerate() {
        create_namespace(lab, ns, &ns_labels(ns)).await;
        v4.namespaces.insert(ns.to_string(), ns_labels(ns));
        for (j, name) in PODS.iter().enumerate() {
            let node = if (i + j) % 2 == 0 { "node-1" } else { "node-2" };
            pods.push(server_pod(ns, name, node, &labels(&[("pod", name)])));
        }
    }
    v4.pods = start_pods(lab, pods).await;
    let v6_ips = ipv6_of(lab, &v4).await;
    let mut v6 = v4.clone();
    for pod in &mut v6.pods {
        pod.ip = v6_ips[&pod.id()];
    }
    for pod in &v4.pods {
        assert!(
            pod.ip.is_ipv4(),
            "{}: status.podIP should be IPv4 first",
            pod.id()
        );
    }
    Worlds { v4, v6 }
}

/// Every pod's IPv6 address, by `ns/name`.
async fn ipv6_of(lab: &Lab, w: &World) -> BTreeMap<String, IpAddr> {
    let mut out = BTreeMap::new();
    for p in &w.pods {
        let api: Api<Pod> = Api::namespaced(lab.client(), &p.namespace);
        let pod = api.get(&p.name).await.expect("get pod");
        out.insert(p.id(), pod_ips_dual(&pod).1);
    }
    out
}

/// One case: apply `policies`, wait for both matrices, compare, remove them.
async fn case(lab: &Lab, w: &mut Worlds, name: &str, policies: Vec<Value>) {
    for p in &policies {
        create_policy(lab, p).await;
    }
    w.set_policies(policies);
    check(lab, w, name).await;
    delete_policies(lab, &NAMESPACES).await;
    w.set_policies(Vec::new());
}

async fn check(lab: &Lab, w: &Worlds, name: &str) {
    for (family, world) in [("IPv4", &w.v4), ("IPv6", &w.v6)] {
        assert_matrix(lab, world, &format!("{name} over {family}")).await;
    }
}

async fn selector_cases(lab: &Lab, w: &mut Worlds) {
    case(lab, w, "default allow", vec![]).await;
    case(
        lab,
        w,
        "deny all ingress in x",
        vec![ingress_to("x", "deny-all", json!({}), json!([]))],
    )
    .await;
    let same_ns = json!([{"from": [{"podSelector": {"matchLabels": {"pod": "b"}}}]}]);
    case(
        lab,
        w,
        "allow from a pod selector",
        vec![ingress_to("x", "from-b", json!({}), same_ns)],
    )
    .await;
    let from_y = json!([{"from": [{"namespaceSelector": {"matchLabels": {"ns": "y"}}}]}]);
    case(
        lab,
        w,
        "allow from a namespace selector",
        vec![ingress_to("x", "from-y", pod_a(), from_y)],
    )
    .await;
    let named =
        json!([{"ports": [{"port": "serve-81-tcp"}, {"protocol": "UDP", "port": "serve-80-udp"}]}]);
    case(
        lab,
        w,
        "allow to named ports",
        vec![ingress_to("x", "named", pod_a(), named)],
    )
    .await;
    let deny_egress = policy(
        "x",
        "deny-egress",
        json!({"podSelector": {}, "policyTypes": ["Egress"]}),
    );
    let egress = policy(
        "x",
        "egress-to-y",
        json!({
            "podSelector": {}, "policyTypes": ["Egress"],
            "egress": [{"to": [{"namespaceSelector": {"matchLabels": {"ns": "y"}}}]}]
        }),
    );
    case(lab, w, "deny all egress", vec![deny_egress.clone()]).await;
    case(
        lab,
        w,
        "deny all egress + allow egress to a namespace",
        vec![deny_egress, egress],
    )
    .await;
}

/// ipBlocks on IPv6: the pod range except y/b's /128 and z/b's node's /64
/// (the pods of one node share its IPv6 podCIDR, so that is every pod on
/// node-2); an ipBlock per family side by side; an IPv4 block alone
/// (IPv6 denied); an egress IPv6 block with except.
async fn ip_block_cases(lab: &Lab, w: &mut Worlds) {
    let yb = w.pod_ip("y/b", true);
    let zb6 = w.pod_ip("z/b", true);
    let zb_net = ipnet::Ipv6Net::new(as_v6(zb6), 64).expect("a /64").trunc();
    let rules = json!([{"from": [
        {"ipBlock": {"cidr": "fd42::/56", "except": [format!("{yb}/128"), zb_net.to_string()]}},
    ]}]);
    case(
        lab,
        w,
        "IPv6 ipBlock with except (a /128 and a node's /64)",
        vec![ingress_to("x", "block6", pod_a(), rules)],
    )
    .await;
    let xc4 = w.pod_ip("x/c", false);
    let both = json!([{"from": [
        {"ipBlock": {"cidr": "fd42::/56", "except": [format!("{yb}/128")]}},
        {"ipBlock": {"cidr": "10.42.0.0/16", "except": [format!("{xc4}/32")]}},
    ]}]);
    case(
        lab,
        w,
        "an ipBlock per family, each with an except",
        vec![ingress_to("x", "block46", pod_a(), both)],
    )
    .await;
    let only_v4 = json!([{"from": [{"ipBlock": {"cidr": "10.42.0.0/16"}}]}]);
    case(
        lab,
        w,
        "an IPv4 ipBlock only: IPv6 is denied",
        vec![ingress_to("x", "block4", pod_a(), only_v4)],
    )
    .await;
    let egress6 = policy(
        "y",
        "egress-block6",
        json!({
            "podSelector": {}, "policyTypes": ["Egress"],
            "egress": [{"to": [{"ipBlock": {"cidr": "fd42::/56", "except": [zb_net.to_string()]}}]}]
        }),
    );
    case(
        lab,
        w,
        "egress to an IPv6 ipBlock with except",
        vec![egress6],
    )
    .await;
}

fn as_v6(ip: IpAddr) -> std::net::Ipv6Addr {
    match ip {
        IpAddr::V6(v6) => v6,
        IpAddr::V4(v4) => panic!("{v4} is not IPv6"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dual_stack_matrix_matches_the_model_in_both_families() {
    let root = RootNs::capture();
    let lab = dual_lab(2, DualBackend::Vxlan).await;
    let started = Instant::now();
    let mut w = worlds(&lab).await;
    eprintln!(
        "9 dual-stack pods running after {:.1} s",
        started.elapsed().as_secs_f64()
    );
    selector_cases(&lab, &mut w).await;
    ip_block_cases(&lab, &mut w).await;
    eprintln!("all cases in {:.1} s", started.elapsed().as_secs_f64());
    teardown(lab).await;
    root.assert_unchanged();
}

/// The model reads IPv6 ipBlocks: a block of the other family never
/// matches, an except narrows within its family.
#[test]
fn model_reads_ipv6_blocks() {
    let pod = model_pod;
    let (xa, ya, yb) = (
        pod("x", "a", "fd42::2"),
        pod("y", "a", "fd42:0:0:1::2"),
        pod("y", "b", "fd42::3"),
    );
    let block = |from: Value| ingress_to("x", "p", pod_a(), json!([{"from": from}]));
    let mut w = World {
        pods: vec![xa.clone(), ya.clone(), yb.clone()],
        namespaces: [("x", ns_labels("x")), ("y", ns_labels("y"))]
            .map(|(k, v)| (k.to_string(), v))
            .into(),
        policies: vec![block(
            json!([{"ipBlock": {"cidr": "fd42::/56", "except": ["fd42:0:0:1::/64"]}}]),
        )],
    };
    assert!(!allowed(&w, &ya, &xa, "TCP", 80), "excepted /64");
    assert!(allowed(&w, &yb, &xa, "TCP", 80), "inside the block");
    w.policies = vec![block(json!([{"ipBlock": {"cidr": "10.42.0.0/16"}}]))];
    assert!(!allowed(&w, &yb, &xa, "UDP", 81), "IPv4 block, IPv6 source");
    w.policies = vec![block(
        json!([{"ipBlock": {"cidr": "fd42::/56", "except": ["fd42::3/128"]}}]),
    )];
    assert!(!allowed(&w, &yb, &xa, "TCP", 81));
    assert!(allowed(&w, &ya, &xa, "TCP", 81));
}
