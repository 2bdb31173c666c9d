//! NetworkPolicy conformance in the lab, modelled on the upstream e2e
//! suite: namespaces x, y, z with pods a, b, c serving TCP and UDP 80 and
//! 81, spread over two nodes (same-node and cross-node pairs), every
//! ordered pair probed on every port, the expected matrix computed by the
//! independent model in `common::netpol`. SCTP has no sockets on this
//! kernel: its rule is checked in the node's ruleset instead.

mod common;

use std::time::{Duration, Instant};

use common::netpol::*;
use common::*;
use lab::Lab;
use serde_json::{Value, json};

const NAMESPACES: [&str; 3] = ["x", "y", "z"];
const PODS: [&str; 3] = ["a", "b", "c"];

fn ns_labels(ns: &str) -> Labels {
    labels(&[("ns", ns), ("kubernetes.io/metadata.name", ns)])
}

/// x/a, y/b, z/c... alternate between the nodes so that every namespace
/// has pods on both.
async fn world(lab: &Lab) -> World {
    let mut w = World::default();
    let mut pods = Vec::new();
    for (i, ns) in NAMESPACES.iter().enumerate() {
        create_namespace(lab, ns, &ns_labels(ns)).await;
        w.namespaces.insert(ns.to_string(), ns_labels(ns));
        for (j, name) in PODS.iter().enumerate() {
            let node = if (i + j) % 2 == 0 { "node-1" } else { "node-2" };
            pods.push(server_pod(ns, name, node, &labels(&[("pod", name)])));
        }
    }
    w.pods = start_pods(lab, pods).await;
    w
}

/// One case: apply `policies`, wait for the matrix, compare, remove them.
async fn case(lab: &Lab, w: &mut World, name: &str, policies: Vec<Value>) {
    for p in &policies {
        create_policy(lab, p).await;
    }
    w.policies = policies;
    assert_matrix(lab, w, name).await;
    delete_policies(lab, &NAMESPACES).await;
    w.policies.clear();
}

async fn upstream_cases(lab: &Lab, w: &mut World) {
    case(lab, w, "default allow", vec![]).await;
    case(
        lab,
        w,
        "deny all ingress in x",
        vec![ingress_to("x", "deny-all", json!({}), json!([]))],
    )
    .await;
    let same_ns = json!([{"from": [{"podSelector": {}}]}]);
    case(
        lab,
        w,
        "allow from same namespace",
        vec![ingress_to("x", "same-ns", json!({}), same_ns)],
    )
    .await;
    let from_y = json!([{"from": [{"namespaceSelector": {"matchLabels": {"ns": "y"}}}]}]);
    case(
        lab,
        w,
        "allow from namespace by label",
        vec![ingress_to("x", "from-y", pod_a(), from_y)],
    )
    .await;
    let and = json!([{"from": [{
        "namespaceSelector": {"matchExpressions": [{"key": "ns", "operator": "In", "values": ["y", "z"]}]},
        "podSelector": {"matchLabels": {"pod": "b"}}
    }]}]);
    case(
        lab,
        w,
        "podSelector AND namespaceSelector",
        vec![ingress_to("x", "and", pod_a(), and)],
    )
    .await;
    let or = json!([{"from": [
        {"namespaceSelector": {"matchExpressions": [{"key": "ns", "operator": "NotIn", "values": ["x", "y"]}]}},
        {"podSelector": {"matchExpressions": [{"key": "pod", "operator": "Exists"}, {"key": "role", "operator": "DoesNotExist"}]}}
    ]}]);
    case(
        lab,
        w,
        "podSelector OR namespaceSelector",
        vec![ingress_to("x", "or", pod_a(), or)],
    )
    .await;
    let named =
        json!([{"ports": [{"port": "serve-81-tcp"}, {"protocol": "UDP", "port": "serve-80-udp"}]}]);
    case(
        lab,
        w,
        "allow to a named port",
        vec![ingress_to("x", "named", pod_a(), named)],
    )
    .await;
    let range = json!([{"ports": [{"protocol": "TCP", "port": 81, "endPort": 90}, {"protocol": "UDP", "port": 70, "endPort": 80}]}]);
    case(
        lab,
        w,
        "endPort range",
        vec![ingress_to("x", "range", pod_a(), range)],
    )
    .await;
    let egress = policy(
        "x",
        "egress-to-y",
        json!({
            "podSelector": {}, "policyTypes": ["Egress"],
            "egress": [{"to": [{"namespaceSelector": {"matchLabels": {"ns": "y"}}}]}]
        }),
    );
    let deny_egress = policy(
        "x",
        "deny-egress",
        json!({"podSelector": {}, "policyTypes": ["Egress"]}),
    );
    case(
        lab,
        w,
        "deny all egress + allow egress to a namespace",
        vec![deny_egress, egress],
    )
    .await;
}

/// ipBlock over the cluster CIDR except y/b; another peer of the same rule
/// (z's pods) must still let z through where the except would not.
async fn ip_block_case(lab: &Lab, w: &mut World) {
    let yb = w.pods.iter().find(|p| p.id() == "y/b").expect("y/b").ip;
    let zb = w.pods.iter().find(|p| p.id() == "z/b").expect("z/b").ip;
    let rules = json!([{"from": [
        {"ipBlock": {"cidr": "10.42.0.0/16", "except": [format!("{yb}/32"), format!("{zb}/32")]}},
        {"namespaceSelector": {"matchLabels": {"ns": "z"}}}
    ]}]);
    case(
        lab,
        w,
        "ipBlock with except",
        vec![ingress_to("x", "block", pod_a(), rules)],
    )
    .await;
}

/// Live label changes: a namespace gains the label a policy selects, then
/// a pod gains (and loses) the label another policy selects.
async fn live_update_case(lab: &Lab, w: &mut World) {
    let p = ingress_to(
        "x",
        "live",
        pod_a(),
        json!([{"from": [
            {"namespaceSelector": {"matchLabels": {"team": "blue"}}},
            {"podSelector": {"matchLabels": {"role": "client"}}}
        ]}]),
    );
    create_policy(lab, &p).await;
    w.policies = vec![p];
    assert_matrix(lab, w, "live: before label changes").await;

    label_namespace(lab, "z", json!({"team": "blue"})).await;
    w.namespaces
        .get_mut("z")
        .expect("z")
        .insert("team".into(), "blue".into());
    assert_matrix(lab, w, "live: namespace z labelled").await;

    label_pod(lab, "x", "c", json!({"role": "client"})).await;
    set_pod_label(w, "x/c", Some("client"));
    assert_matrix(lab, w, "live: pod x/c labelled").await;

    label_pod(lab, "x", "c", json!({"role": null})).await;
    set_pod_label(w, "x/c", None);
    label_namespace(lab, "z", json!({"team": null})).await;
    w.namespaces.get_mut("z").expect("z").remove("team");
    assert_matrix(lab, w, "live: labels removed").await;
    delete_policies(lab, &NAMESPACES).await;
    w.policies.clear();
}

fn set_pod_label(w: &mut World, id: &str, role: Option<&str>) {
    let pod = w.pods.iter_mut().find(|p| p.id() == id).expect("pod");
    match role {
        Some(r) => pod.labels.insert("role".into(), r.into()),
        None => pod.labels.remove("role"),
    };
}

/// An SCTP port becomes an `sctp` match in the table of the node running
/// the selected pod.
async fn sctp_rule_case(lab: &Lab, w: &World) {
    let p = ingress_to(
        "x",
        "sctp",
        pod_a(),
        json!([{"ports": [{"protocol": "SCTP", "port": 80}]}]),
    );
    create_policy(lab, &p).await;
    let node = &w.pods.iter().find(|p| p.id() == "x/a").expect("x/a").node;
    let until = Instant::now() + CONVERGE;
    let argv = ["nft", "-j", "list", "table", "inet", "nodenet-netpol"];
    loop {
        let out = lab
            .exec_on_node(node, &argv, PROBE)
            .await
            .expect("nft on node");
        let json: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        if has_sctp_port_rule(&json, 80) {
            break;
        }
        assert!(Instant::now() < until, "no SCTP 80 rule on {node}: {json}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    delete_policies(lab, &NAMESPACES).await;
}

/// A rule whose expression mentions protocol `sctp` next to port `port`
/// (as a concatenation element or a plain match).
fn has_sctp_port_rule(table: &Value, port: u64) -> bool {
    let items = table["nftables"].as_array().cloned().unwrap_or_default();
    items.iter().filter_map(|i| i.get("rule")).any(|rule| {
        let text = rule["expr"].to_string();
        text.contains("\"sctp\"") && text.contains(&port.to_string())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_matrix_matches_the_model() {
    let root = RootNs::capture();
    let lab = lab(2).await;
    let started = Instant::now();
    let mut w = world(&lab).await;
    eprintln!(
        "9 pods running after {:.1} s",
        started.elapsed().as_secs_f64()
    );
    upstream_cases(&lab, &mut w).await;
    ip_block_case(&lab, &mut w).await;
    live_update_case(&lab, &mut w).await;
    sctp_rule_case(&lab, &w).await;
    eprintln!("all cases in {:.1} s", started.elapsed().as_secs_f64());
    teardown(lab).await;
    root.assert_unchanged();
}

/// The model itself, on a tiny world (no lab): the statements of the
/// semantics checklist it encodes.
#[test]
fn model_follows_the_api_semantics() {
    let pod = model_pod;
    let (xa, xb, ya) = (
        pod("x", "a", "10.42.0.2"),
        pod("x", "b", "10.42.0.3"),
        pod("y", "a", "10.42.1.2"),
    );
    let mut w = World {
        pods: vec![xa.clone(), xb.clone(), ya.clone()],
        namespaces: [("x", ns_labels("x")), ("y", ns_labels("y"))]
            .map(|(k, v)| (k.to_string(), v))
            .into(),
        policies: vec![],
    };
    assert!(allowed(&w, &ya, &xa, "TCP", 80), "no policy: allowed");
    // Egress rules without policyTypes also isolate ingress.
    w.policies = vec![policy(
        "x",
        "p",
        json!({"podSelector": pod_a(), "egress": [{}]}),
    )];
    assert!(!allowed(&w, &ya, &xa, "TCP", 80));
    assert!(allowed(&w, &xa, &ya, "UDP", 81));
    // A named port resolves on the destination; protocol defaults to TCP.
    w.policies = vec![ingress_to(
        "x",
        "p",
        pod_a(),
        json!([{"ports": [{"port": "serve-81-tcp"}]}]),
    )];
    assert!(allowed(&w, &xb, &xa, "TCP", 81));
    assert!(!allowed(&w, &xb, &xa, "TCP", 80));
    assert!(!allowed(&w, &xb, &xa, "UDP", 81));
    // A podSelector-only peer is the policy's namespace only.
    w.policies = vec![ingress_to(
        "x",
        "p",
        pod_a(),
        json!([{"from": [{"podSelector": {}}]}]),
    )];
    assert!(allowed(&w, &xb, &xa, "TCP", 80));
    assert!(!allowed(&w, &ya, &xa, "TCP", 80));
    // An except narrows its own peer only.
    w.policies = vec![ingress_to(
        "x",
        "p",
        pod_a(),
        json!([{"from": [
            {"ipBlock": {"cidr": "10.42.0.0/16", "except": ["10.42.1.0/24"]}},
            {"namespaceSelector": {"matchLabels": {"ns": "y"}}}
        ]}]),
    )];
    assert!(allowed(&w, &ya, &xa, "TCP", 80));
    w.policies = vec![ingress_to(
        "x",
        "p",
        pod_a(),
        json!([{"from": [
            {"ipBlock": {"cidr": "10.42.0.0/16", "except": ["10.42.1.0/24"]}}
        ]}]),
    )];
    assert!(!allowed(&w, &ya, &xa, "TCP", 80));
    assert!(allowed(&w, &xb, &xa, "TCP", 80));
}
