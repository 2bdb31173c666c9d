//! Nodes reconfigured and restarted, as an operator would, in a lab: what
//! the old configuration made must go, and nothing else.
//!
//! - switching `--flannel-backend` on both nodes (VXLAN -> host-gw ->
//!   WireGuard -> VXLAN): after each switch only the new backend's kernel
//!   objects are there, `backend-type` says the new backend, and pods on
//!   the two nodes talk;
//! - a node of a dual-stack cluster restarted with IPv4-only CIDRs keeps no
//!   IPv6 overlay state (routes of ours, devices, the IPv6 masquerade
//!   table) while its IPv4 overlay keeps working.

mod common;

use common::dualstack::{dual_lab, pod_ips_dual, target};
use common::overlay::wireguard::backend_annotations;
use common::overlay::*;
use common::*;
use serde_json::json;

const NODES: [&str; 2] = ["node-1", "node-2"];

/// Only `backend`'s objects for its one peer: the route on its device,
/// and no VXLAN device or WireGuard device of another backend.
fn holds_only(k: &Kernel, backend: Backend) -> bool {
    let [route] = k.routes.as_slice() else {
        return false;
    };
    let objects = match backend {
        Backend::Vxlan => k.has_vxlan_device && k.wireguard.is_none() && k.fdb.len() == 1,
        Backend::HostGw => !k.has_vxlan_device && k.wireguard.is_none(),
        Backend::Wireguard => !k.has_vxlan_device && k.wg_peers().count() == 1,
    };
    objects && route.dev == backend.route_device()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switching_backend_leaves_only_the_new_backends_state() {
    let root = RootNs::capture();
    let lab = overlay_lab(2, Backend::Vxlan, false).await;
    let serve = ["serve", "--tcp", "8080"];
    let a = create_pod(&lab, workload_pod("a", "node-1", &serve, json!([]))).await;
    let b = create_pod(&lab, workload_pod("b", "node-2", &serve, json!([]))).await;
    let (to_a, to_b) = (
        format!("{}:{TCP_PORT}", pod_ip(&a)),
        format!("{}:{TCP_PORT}", pod_ip(&b)),
    );
    wait_kernel(&lab, "node-1", "VXLAN peer", |k| {
        holds_only(k, Backend::Vxlan)
    })
    .await;

    for backend in [Backend::HostGw, Backend::Wireguard, Backend::Vxlan] {
        let args = backend.nodenet_args();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        for node in NODES {
            lab.restart_nodenet_with(node, &args)
                .await
                .expect("restart nodenet");
            wait_nodenet_ready(&lab, node).await;
        }
        for node in NODES {
            let what = format!("only {backend:?} state");
            wait_kernel(&lab, node, &what, |k| holds_only(k, backend)).await;
            let (kind, _) = backend_annotations(&lab, node).await;
            assert_eq!(kind, backend.annotation(), "{node} backend-type");
        }
        probe_until_ok(&lab, "a", "tcp", &to_b).await;
        probe_until_ok(&lab, "b", "tcp", &to_a).await;
    }

    teardown(lab).await;
    root.assert_unchanged();
}

/// IPv4-only CIDRs for a node of the dual-stack lab.
const IPV4_ONLY: [&str; 3] = [
    "--cluster-cidr=10.42.0.0/16",
    "--service-cidr=10.43.0.0/16",
    "--cluster-dns=10.43.0.10",
];

async fn node_turned_ipv4_only_drops_its_ipv6_overlay(backend: Backend) {
    let root = RootNs::capture();
    let lab = dual_lab(3, backend).await;
    let serve = ["serve", "--tcp", "8080"];
    create_pod(&lab, workload_pod("a", "node-1", &["sleep"], json!([]))).await;
    let b = create_pod(&lab, workload_pod("b", "node-2", &serve, json!([]))).await;
    let (b4, _) = pod_ips_dual(&b);
    wait_kernel_of(&lab, "node-1", true, "two IPv6 peers", |k| {
        k.peer_count(backend) == 2
    })
    .await;

    lab.restart_nodenet_with("node-1", &IPV4_ONLY)
        .await
        .expect("restart nodenet");
    wait_nodenet_ready(&lab, "node-1").await;
    let v6 = wait_kernel_of(&lab, "node-1", true, "no IPv6 overlay", |k| {
        k.routes.is_empty() && !k.has_vxlan_device && k.wireguard.is_none()
    })
    .await;
    assert!(v6.neighbours.is_empty() && v6.fdb.is_empty(), "{v6:#?}");
    let tables = lab
        .exec_on_node("node-1", &["nft", "list", "tables"], PROBE)
        .await
        .expect("nft list tables");
    let tables = String::from_utf8_lossy(&tables.stdout);
    assert!(!tables.contains("ip6 nodenet-flannel"), "{tables}");
    assert!(tables.contains("ip nodenet-flannel"), "{tables}");

    let v4 = kernel(&lab, "node-1").await;
    assert_eq!(v4.peer_count(backend), 2, "IPv4 overlay intact: {v4:#?}");
    probe_until_ok(&lab, "a", "tcp", &target(b4, TCP_PORT)).await;

    teardown(lab).await;
    root.assert_unchanged();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vxlan_node_turned_ipv4_only_drops_its_ipv6_overlay() {
    node_turned_ipv4_only_drops_its_ipv6_overlay(Backend::Vxlan).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_gw_node_turned_ipv4_only_drops_its_ipv6_overlay() {
    node_turned_ipv4_only_drops_its_ipv6_overlay(Backend::HostGw).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wireguard_node_turned_ipv4_only_drops_its_ipv6_overlay() {
    node_turned_ipv4_only_drops_its_ipv6_overlay(Backend::Wireguard).await;
}
