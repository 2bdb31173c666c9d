//! Restart: while nodenet on the server's node is killed and started again,
//! intruders hammer the isolated pod (no connection may succeed), an
//! allowed client keeps opening new connections, and a long-lived allowed
//! connection opened before the restart exchanges echoes every 100 ms (it
//! must not break). The old table stays until the new daemon replaces it
//! in one transaction.

mod common;

use std::time::{Duration, Instant};

use common::netpol::*;
use common::*;
use serde_json::json;

const SECONDS: u64 = 12;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarting_nodenet_opens_nothing_and_breaks_nothing() {
    let root = RootNs::capture();
    let lab = lab(2).await;
    create_namespace(&lab, "x", &labels(&[("ns", "x")])).await;
    let allow_clients = json!({
        "podSelector": {"matchLabels": {"pod": "server"}},
        "policyTypes": ["Ingress"],
        "ingress": [{"from": [{"podSelector": {"matchLabels": {"role": "client"}}}]}]
    });
    create_policy(&lab, &policy("x", "clients-only", allow_clients)).await;
    let pods = start_pods(
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
    let (client, near, far) = (&pods[1], &pods[2], &pods[3]);
    let (t80, t81) = (format!("{}:80", pods[0].ip), format!("{}:81", pods[0].ip));
    // The policy is in force before the streams start.
    let pairs = [(1, 0, "TCP", 80), (2, 0, "TCP", 80), (3, 0, "TCP", 80)];
    let world = World {
        pods: pods.clone(),
        policies: vec![policy(
            "x",
            "clients-only",
            json!({
                "podSelector": {"matchLabels": {"pod": "server"}},
                "policyTypes": ["Ingress"],
                "ingress": [{"from": [{"podSelector": {"matchLabels": {"role": "client"}}}]}]
            }),
        )],
        ..World::default()
    };
    let (diff, _) = converge(&lab, &world, &pairs, Duration::from_secs(15)).await;
    assert!(
        diff.is_empty(),
        "policy not in force before the restart:\n{diff}"
    );

    let restart = async {
        tokio::time::sleep(Duration::from_secs(3)).await;
        let started = Instant::now();
        lab.restart_nodenet("node-1")
            .await
            .expect("restart nodenet");
        started.elapsed()
    };
    let (held, allowed, near, far, took) = tokio::join!(
        hold(&lab, client, &t80, SECONDS),
        hammer(&lab, client, &t81, SECONDS),
        hammer(&lab, near, &t80, SECONDS),
        hammer(&lab, far, &t80, SECONDS),
        restart,
    );
    eprintln!("restart took {} ms", took.as_millis());
    let streams = Streams {
        held,
        allowed,
        near,
        far,
    };
    streams.assert_policy_held("during the restart");
    teardown(lab).await;
    root.assert_unchanged();
}
