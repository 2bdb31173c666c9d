//! API server unreachable: node-1's nodenet loses the API server (inside
//! node-1's namespace, its connections to the lab API server are reset), is
//! restarted while it still cannot reach it, and then gets the API back.
//! Throughout the outage the policies in force stay in force: intruders on
//! the same node and across nodes never get through, the allowed client
//! keeps opening connections and its established connection lives. A change
//! made while the node was cut off is applied once the API is back.

mod common;

use std::time::Duration;

use common::netpol::*;
use common::*;
use lab::Lab;
use lab::topology::{UNDERLAY_API_PORT, UNDERLAY_GATEWAY};
use serde_json::json;

const SECONDS: u64 = 12;
/// A table of the test's own in node-1's namespace; the daemon never reads
/// tables other than its own.
const CUT_TABLE: &str = "nodenet-test-api-cut";

/// Resets every TCP connection from `node` to the API server: the watches
/// break at once and every reconnection fails until [`restore_api`].
async fn cut_api(lab: &Lab, node: &str) {
    let cut = format!(
        "add table inet {CUT_TABLE}; \
         add chain inet {CUT_TABLE} out {{ type filter hook output priority 0; policy accept; }}; \
         add rule inet {CUT_TABLE} out ip daddr {UNDERLAY_GATEWAY} tcp dport {UNDERLAY_API_PORT} reject with tcp reset"
    );
    exec_on_node_ok(lab, node, &["nft", &cut]).await;
    let api = format!("{UNDERLAY_GATEWAY}:{UNDERLAY_API_PORT}");
    assert!(
        !probe_from_node(lab, node, "tcp", &api).await,
        "the API server is still reachable from {node}"
    );
}

async fn restore_api(lab: &Lab, node: &str) {
    let restore = format!("delete table inet {CUT_TABLE}");
    exec_on_node_ok(lab, node, &["nft", &restore]).await;
}

fn clients_only() -> serde_json::Value {
    json!({
        "podSelector": {"matchLabels": {"pod": "server"}},
        "policyTypes": ["Ingress"],
        "ingress": [{"from": [{"podSelector": {"matchLabels": {"role": "client"}}}]}]
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_hold_while_the_api_server_is_unreachable() {
    let root = RootNs::capture();
    let lab = lab(2).await;
    create_namespace(&lab, "x", &labels(&[("ns", "x")])).await;
    create_policy(&lab, &policy("x", "clients-only", clients_only())).await;
    let mut pods = start_pods(
        &lab,
        vec![
            server_pod("x", "server", "node-1", &labels(&[("pod", "server")])),
            server_pod(
                "x",
                "client",
                "node-2",
                &labels(&[("pod", "client"), ("role", "client")]),
            ),
            server_pod("x", "near", "node-1", &labels(&[("pod", "near")])),
            server_pod("x", "far", "node-2", &labels(&[("pod", "far")])),
        ],
    )
    .await;
    let pairs = [(1, 0, "TCP", 80), (2, 0, "TCP", 80), (3, 0, "TCP", 80)];
    let mut world = World {
        pods: pods.clone(),
        policies: vec![policy("x", "clients-only", clients_only())],
        ..World::default()
    };
    let (diff, _) = converge(&lab, &world, &pairs, Duration::from_secs(15)).await;
    assert!(
        diff.is_empty(),
        "policy not in force before the outage:\n{diff}"
    );

    cut_api(&lab, "node-1").await;
    let (client, near, far) = (&pods[1], &pods[2], &pods[3]);
    let (t80, t81) = (format!("{}:80", pods[0].ip), format!("{}:81", pods[0].ip));
    let restart_while_cut = async {
        tokio::time::sleep(Duration::from_secs(3)).await;
        lab.restart_nodenet("node-1")
            .await
            .expect("restart nodenet");
    };
    let (held, allowed, near, far, ()) = tokio::join!(
        hold(&lab, client, &t80, SECONDS),
        hammer(&lab, client, &t81, SECONDS),
        hammer(&lab, near, &t80, SECONDS),
        hammer(&lab, far, &t80, SECONDS),
        restart_while_cut,
    );
    let streams = Streams {
        held,
        allowed,
        near,
        far,
    };
    streams.assert_policy_held("while the API server was unreachable");

    // A change node-1 cannot see yet: `far` becomes a client.
    label_pod(&lab, "x", "far", json!({"role": "client"})).await;
    pods[3].labels.insert("role".into(), "client".into());
    world.pods = pods.clone();
    restore_api(&lab, "node-1").await;
    let (diff, probes) = converge(&lab, &world, &pairs, Duration::from_secs(90)).await;
    assert!(
        diff.is_empty(),
        "the change made during the outage was not applied after {probes} probes:\n{diff}"
    );

    teardown(lab).await;
    root.assert_unchanged();
}
