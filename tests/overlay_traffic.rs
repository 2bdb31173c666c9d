//! Traffic across the overlay in a 3-node lab, per backend: pod to pod on
//! other nodes over TCP and UDP with the source address kept, and pod to a
//! remote node's underlay address, which leaves the cluster CIDR and is
//! therefore masqueraded to the sending node's address (flannel.md §3.1:
//! `-s <cluster> ! -d 224.0.0.0/4 -j MASQUERADE`); and a node to a remote
//! pod. With WireGuard, each node's device must also be exactly what the
//! nodes' annotations say.

mod common;

use common::overlay::*;
use common::*;
use serde_json::json;

async fn pods_reach_each_other_across_nodes(backend: Backend) {
    let root = RootNs::capture();
    let lab = overlay_lab(3, backend, false).await;
    let serve = ["serve", "--tcp", "8080", "--udp", "8081"];
    let mut ips = Vec::new();
    for (pod, node) in [("a", "node-1"), ("b", "node-2"), ("c", "node-3")] {
        let p = create_pod(&lab, workload_pod(pod, node, &serve, json!([]))).await;
        ips.push(pod_ip(&p));
    }
    let pods = ["a", "b", "c"];
    for (i, from) in pods.iter().enumerate() {
        for (j, to) in pods.iter().enumerate().filter(|(j, _)| *j != i) {
            for (proto, port) in [("tcp", TCP_PORT), ("udp", UDP_PORT)] {
                let target = format!("{}:{port}", ips[j]);
                let report = probe_until_ok(&lab, from, proto, &target).await;
                assert_eq!(
                    peer_ip_of(&report),
                    ips[i],
                    "{from} -> {to} over {proto}: the server must see the client pod's own address"
                );
            }
        }
    }
    // A closed port on a remote pod is refused, so the probes can fail.
    let closed = probe_json(&lab, "a", "tcp", &format!("{}:9999", ips[1])).await;
    assert_eq!(closed["ok"], json!(false), "closed remote port: {closed}");
    if backend == Backend::Wireguard {
        let nodes = ["node-1", "node-2", "node-3"];
        for node in nodes {
            wireguard::assert_device_matches_annotations(&lab, node, &nodes).await;
        }
    }

    teardown(lab).await;
    root.assert_unchanged();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vxlan_pods_reach_each_other_across_nodes() {
    pods_reach_each_other_across_nodes(Backend::Vxlan).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_gw_pods_reach_each_other_across_nodes() {
    pods_reach_each_other_across_nodes(Backend::HostGw).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wireguard_pods_reach_each_other_across_nodes() {
    pods_reach_each_other_across_nodes(Backend::Wireguard).await;
}

async fn pod_reaches_remote_node_masqueraded(backend: Backend) {
    let root = RootNs::capture();
    let lab = overlay_lab(3, backend, false).await;
    let serve = ["serve", "--tcp", "9100", "--udp", "9101"];
    create_host_pod(&lab, "host-server", "node-2", &serve).await;
    let server = create_pod(
        &lab,
        workload_pod("server", "node-2", &["serve", "--tcp", "8080"], json!([])),
    )
    .await;
    create_pod(
        &lab,
        workload_pod("client", "node-1", &["sleep"], json!([])),
    )
    .await;

    let node2 = lab.node_ip("node-2");
    let node1 = lab.node_ip("node-1");
    for (proto, port) in [("tcp", 9100), ("udp", 9101)] {
        let report = probe_until_ok(&lab, "client", proto, &format!("{node2}:{port}")).await;
        assert_eq!(
            peer_ip_of(&report),
            node1,
            "pod -> remote node IP over {proto}: leaves the cluster CIDR, so it is masqueraded to node-1's address"
        );
    }
    // The same client to a pod on that node keeps its own address.
    let report = probe_until_ok(&lab, "client", "tcp", &format!("{}:8080", pod_ip(&server))).await;
    let client_ip = lab
        .wait_pod_running("default", "client", WAIT)
        .await
        .map(|p| pod_ip(&p))
        .expect("client runs");
    assert_eq!(
        peer_ip_of(&report),
        client_ip,
        "pod -> pod is not masqueraded"
    );
    // node-1 itself -> that pod: through the overlay device, from its
    // address (the podCIDR's network address, as flannel sets it); host-gw
    // has no device, the packet leaves eth0 with node-1's address.
    let target = format!("{}:8080", pod_ip(&server));
    let report = node_probe_until_ok(&lab, "node-1", "tcp", &target).await;
    let want: std::net::IpAddr = match backend {
        Backend::HostGw => node1,
        Backend::Vxlan | Backend::Wireguard => {
            let cidr = pod_cidr(&lab, "node-1").await;
            cidr.split('/')
                .next()
                .unwrap_or_default()
                .parse()
                .expect("podCIDR")
        }
    };
    assert_eq!(peer_ip_of(&report), want, "node-1 -> pod on node-2: source");

    teardown(lab).await;
    root.assert_unchanged();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vxlan_pod_reaches_remote_node_masqueraded() {
    pod_reaches_remote_node_masqueraded(Backend::Vxlan).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_gw_pod_reaches_remote_node_masqueraded() {
    pod_reaches_remote_node_masqueraded(Backend::HostGw).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wireguard_pod_reaches_remote_node_masqueraded() {
    pod_reaches_remote_node_masqueraded(Backend::Wireguard).await;
}
