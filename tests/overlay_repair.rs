//! The overlay repairs what is taken from it and survives its own restart:
//! `flannel.1` / `flannel-wg` deleted by hand comes back with every peer; a
//! peer route (WireGuard: the cluster route, the device address, MTU and
//! up state) taken by hand comes back; restarting the daemons on both ends of a
//! continuous stream of packets between two pods loses none of them
//! (VXLAN, host-gw; WireGuard's restart is in overlay_wireguard.rs).

mod common;

use common::overlay::streams::{assert_lost_nothing, client_and_server, streams_across_restarts};
use common::overlay::*;
use common::*;
use serde_json::json;

async fn device_deleted_by_hand_comes_back_with_its_peers(backend: Backend) {
    let root = RootNs::capture();
    let lab = overlay_lab(3, backend, false).await;
    let serve = ["serve", "--tcp", "8080", "--udp", "8081"];
    create_pod(&lab, workload_pod("a", "node-1", &serve, json!([]))).await;
    let b = create_pod(&lab, workload_pod("b", "node-2", &serve, json!([]))).await;
    let target = format!("{}:{UDP_PORT}", pod_ip(&b));
    probe_until_ok(&lab, "a", "udp", &target).await;
    let before = wait_kernel(&lab, "node-1", "both peers", |k| k.peer_count(backend) == 2).await;
    assert!(
        before.has_vxlan_device || before.wireguard.is_some(),
        "{before:#?}"
    );

    let device = backend.route_device();
    let index = link_index(&lab, "node-1", device).await;
    exec_on_node_ok(&lab, "node-1", &["ip", "link", "del", device]).await;
    // (It may come back at once: a Node status heartbeat also wakes a pass.)
    // Within a few reconcile periods the device and all its peers are back
    // (WireGuard: the same key, port, peers, MTU, address and route).
    let after = wait_kernel(&lab, "node-1", "the device and its peers back", |k| {
        *k == before
    })
    .await;
    assert_eq!(after, before);
    let new_index = link_index(&lab, "node-1", device).await;
    assert!(
        new_index.is_some() && new_index != index,
        "{device} re-created"
    );
    probe_until_ok(&lab, "a", "udp", &target).await;
    probe_until_ok(
        &lab,
        "b",
        "tcp",
        &format!("{}:{TCP_PORT}", pod_ip_of(&lab, "a").await),
    )
    .await;

    teardown(lab).await;
    root.assert_unchanged();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vxlan_device_deleted_by_hand_comes_back_with_its_peers() {
    device_deleted_by_hand_comes_back_with_its_peers(Backend::Vxlan).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wireguard_device_deleted_by_hand_comes_back_with_its_peers() {
    device_deleted_by_hand_comes_back_with_its_peers(Backend::Wireguard).await;
}

async fn pod_ip_of(lab: &lab::Lab, pod: &str) -> std::net::IpAddr {
    pod_ip(
        &lab.wait_pod_running("default", pod, WAIT)
            .await
            .expect("pod runs"),
    )
}

async fn peer_route_deleted_by_hand_comes_back(backend: Backend) {
    let root = RootNs::capture();
    let lab = overlay_lab(2, backend, false).await;
    create_pod(&lab, workload_pod("a", "node-1", &["sleep"], json!([]))).await;
    let b = create_pod(
        &lab,
        workload_pod("b", "node-2", &["serve", "--tcp", "8080"], json!([])),
    )
    .await;
    let target = format!("{}:{TCP_PORT}", pod_ip(&b));
    probe_until_ok(&lab, "a", "tcp", &target).await;
    let cidr = pod_cidr(&lab, "node-2").await;
    let before = kernel(&lab, "node-1").await;
    let index = link_index(&lab, "node-1", backend.route_device()).await;
    if backend == Backend::Wireguard {
        delete_wireguard_route_and_address(&lab, &before).await;
    } else {
        assert!(before.route(&cidr).is_some(), "{before:#?}");
        exec_on_node_ok(&lab, "node-1", &["ip", "route", "del", &cidr]).await;
    }
    if backend == Backend::Vxlan {
        let (_, _, mac) = real_peer(&lab, "node-2").await;
        let dev = "flannel.1";
        exec_on_node_ok(
            &lab,
            "node-1",
            &["bridge", "fdb", "del", &mac, "dev", dev, "self"],
        )
        .await;
    }
    let after = wait_kernel(&lab, "node-1", "deleted objects back", |k| *k == before).await;
    assert_eq!(after, before);
    let index_after = link_index(&lab, "node-1", backend.route_device()).await;
    assert_eq!(
        index_after, index,
        "the device was repaired, not re-created"
    );
    probe_until_ok(&lab, "a", "tcp", &target).await;

    teardown(lab).await;
    root.assert_unchanged();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vxlan_peer_route_and_fdb_deleted_by_hand_come_back() {
    peer_route_deleted_by_hand_comes_back(Backend::Vxlan).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_gw_peer_route_deleted_by_hand_comes_back() {
    peer_route_deleted_by_hand_comes_back(Backend::HostGw).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wireguard_route_address_mtu_and_up_state_taken_by_hand_come_back() {
    peer_route_deleted_by_hand_comes_back(Backend::Wireguard).await;
}

/// WireGuard's kernel objects besides the device's peers: the one route
/// for the cluster CIDR, the device's address (the source of node -> pod
/// packets), its MTU and up state. All taken away by hand; the daemon
/// keeps the same device (and so its peers) and puts them back.
async fn delete_wireguard_route_and_address(lab: &lab::Lab, before: &Kernel) {
    assert!(has_wireguard_route(before), "{before:#?}");
    let device = before.wireguard.as_ref().expect("flannel-wg runs");
    assert_eq!(device.addresses.len(), 1, "{device:#?}");
    let del_route = ["ip", "route", "del", CLUSTER_CIDR, "dev", "flannel-wg"];
    exec_on_node_ok(lab, "node-1", &del_route).await;
    let address = device.addresses[0].as_str();
    let del_addr = ["ip", "addr", "del", address, "dev", "flannel-wg"];
    exec_on_node_ok(lab, "node-1", &del_addr).await;
    let mtu = ["ip", "link", "set", "flannel-wg", "mtu", "1300"];
    exec_on_node_ok(lab, "node-1", &mtu).await;
    exec_on_node_ok(lab, "node-1", &["ip", "link", "set", "flannel-wg", "down"]).await;
}

async fn restart_loses_no_packets(backend: Backend) {
    let root = RootNs::capture();
    let lab = std::sync::Arc::new(overlay_lab(3, backend, false).await);
    let ip_b = client_and_server(&lab).await;
    let before = [kernel(&lab, "node-1").await, kernel(&lab, "node-2").await];

    let targets = [
        ("udp", format!("{ip_b}:{UDP_PORT}")),
        ("tcp", format!("{ip_b}:{TCP_PORT}")),
    ];
    let nodes = ["node-1", "node-2"];
    for report in streams_across_restarts(&lab, "a", &targets, &nodes).await {
        assert_lost_nothing(&report);
    }
    // The restarted daemons found their state right and left it as it was.
    assert_eq!(
        [kernel(&lab, "node-1").await, kernel(&lab, "node-2").await],
        before
    );

    let lab = std::sync::Arc::into_inner(lab).expect("stream tasks done");
    teardown(lab).await;
    root.assert_unchanged();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vxlan_restart_loses_no_packets() {
    restart_loses_no_packets(Backend::Vxlan).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_gw_restart_loses_no_packets() {
    restart_loses_no_packets(Backend::HostGw).await;
}
