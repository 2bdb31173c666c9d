//! Pod networking on one node: pods talk over cni0, reach their node, and
//! hostPorts reach pods. Each test runs in its own lab and ends by proving the
//! lab is gone and the root network namespace unchanged.

mod common;

use common::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_pods_on_one_node_talk_over_tcp_and_udp() {
    let root = RootNs::capture();
    let lab = lab(1).await;
    let serve = ["serve", "--tcp", "8080", "--udp", "8081"];
    let a = create_pod(&lab, workload_pod("a", "node-1", &serve, json!([]))).await;
    let b = create_pod(&lab, workload_pod("b", "node-1", &serve, json!([]))).await;
    let (ip_a, ip_b) = (pod_ip(&a), pod_ip(&b));
    assert_ne!(ip_a, ip_b, "two live pods got the same IP");

    assert!(
        probe_from_pod(&lab, "b", "tcp", &format!("{ip_a}:8080")).await,
        "b -> a TCP"
    );
    assert!(
        probe_from_pod(&lab, "b", "udp", &format!("{ip_a}:8081")).await,
        "b -> a UDP"
    );
    assert!(
        probe_from_pod(&lab, "a", "tcp", &format!("{ip_b}:8080")).await,
        "a -> b TCP"
    );
    assert!(
        probe_from_pod(&lab, "a", "udp", &format!("{ip_b}:8081")).await,
        "a -> b UDP"
    );
    // A port nobody serves is refused: the probe can fail.
    assert!(
        !probe_from_pod(&lab, "a", "tcp", &format!("{ip_b}:9999")).await,
        "a -> b closed port"
    );

    teardown(lab).await;
    root.assert_unchanged();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_reaches_its_node() {
    let root = RootNs::capture();
    let lab = lab(1).await;
    create_host_pod(&lab, "on-node", "node-1", &["serve", "--tcp", "9100"]).await;
    create_pod(
        &lab,
        workload_pod("a", "node-1", &["serve", "--tcp", "8080"], json!([])),
    )
    .await;

    let node_ip = lab.node_ip("node-1");
    assert!(
        probe_from_pod(&lab, "a", "tcp", &format!("{node_ip}:9100")).await,
        "pod -> node IP"
    );

    teardown(lab).await;
    root.assert_unchanged();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_port_reaches_its_pod() {
    let root = RootNs::capture();
    let lab = lab(2).await;
    let ports = json!([
        {"containerPort": 8080, "hostPort": 30080, "protocol": "TCP"},
        {"containerPort": 8081, "hostPort": 30081, "protocol": "UDP"}
    ]);
    create_pod(
        &lab,
        workload_pod(
            "web",
            "node-1",
            &["serve", "--tcp", "8080", "--udp", "8081"],
            ports,
        ),
    )
    .await;
    let node_ip = lab.node_ip("node-1");

    // From another node across the underlay, from the node itself, and from a
    // pod on the same node (hairpin through the node's own address).
    assert!(
        probe_from_node(&lab, "node-2", "tcp", &format!("{node_ip}:30080")).await,
        "node-2 -> hostPort TCP"
    );
    assert!(
        probe_from_node(&lab, "node-2", "udp", &format!("{node_ip}:30081")).await,
        "node-2 -> hostPort UDP"
    );
    assert!(
        probe_from_node(&lab, "node-1", "tcp", &format!("{node_ip}:30080")).await,
        "node-1 -> own hostPort"
    );
    create_pod(
        &lab,
        workload_pod("client", "node-1", &["sleep"], json!([])),
    )
    .await;
    assert!(
        probe_from_pod(&lab, "client", "tcp", &format!("{node_ip}:30080")).await,
        "pod -> hostPort hairpin"
    );

    // Once the pod is gone, so is its mapping.
    delete_pod(&lab, "web").await;
    wait_pod_gone(&lab, "web").await;
    assert!(
        !probe_from_node(&lab, "node-2", "tcp", &format!("{node_ip}:30080")).await,
        "hostPort after pod deletion"
    );

    teardown(lab).await;
    root.assert_unchanged();
}
