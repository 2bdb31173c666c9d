//! How the overlay follows Node objects, per backend, checked in the
//! kernel of the other nodes: a Node added programs exactly one route (and
//! for VXLAN one neighbour and one FDB entry); a changed public IP or VTEP
//! MAC moves them; a deleted Node takes them away while traffic between the
//! remaining nodes carries on. Fake Nodes (no daemon) stand in for peers
//! whose annotations a test can change freely.

mod common;

use common::overlay::*;
use common::*;
use serde_json::json;

const FAKE: &str = "fake-peer";
const FAKE_CIDR: &str = "10.42.100.0/24";
const FAKE_GW: &str = "10.42.100.0";
const MAC_1: &str = "0a:00:00:00:01:01";
const MAC_2: &str = "0a:00:00:00:01:02";
const IP_1: &str = "172.30.0.201";
const IP_2: &str = "172.30.0.202";

async fn peers_follow_node_objects(backend: Backend) {
    let root = RootNs::capture();
    let lab = overlay_lab(3, backend, false).await;
    let serve = ["serve", "--tcp", "8080", "--udp", "8081"];
    create_pod(&lab, workload_pod("a", "node-1", &serve, json!([]))).await;
    let b = create_pod(&lab, workload_pod("b", "node-2", &serve, json!([]))).await;
    let b_target = format!("{}:{TCP_PORT}", pod_ip(&b));
    probe_until_ok(&lab, "a", "tcp", &b_target).await;

    // Added: exactly one object of each kind for the new peer.
    create_fake_node(&lab, FAKE, FAKE_CIDR, annotations(backend, IP_1, MAC_1)).await;
    for node in ["node-1", "node-2", "node-3"] {
        let k = wait_kernel(&lab, node, "fake peer programmed", |k| {
            has_peer(k, backend, FAKE_CIDR, IP_1, MAC_1)
        })
        .await;
        assert_one_object_per_peer(&k, backend, 3);
    }

    // Public IP changed: the same objects, now towards the new address.
    patch_annotations(&lab, FAKE, &[("public-ip", IP_2)]).await;
    let k = wait_kernel(&lab, "node-1", "fake peer moved to its new IP", |k| {
        has_peer(k, backend, FAKE_CIDR, IP_2, MAC_1)
    })
    .await;
    assert_one_object_per_peer(&k, backend, 3);
    assert_eq!(
        k.count_mentions(IP_1),
        (0, 0, 0),
        "old IP left behind: {k:#?}"
    );

    if backend == Backend::Vxlan {
        // VTEP MAC changed: neighbour and FDB follow, the old MAC's FDB
        // entry goes (flannel leaks it; we do not).
        let data = format!(r#"{{"VNI":1,"VtepMAC":"{MAC_2}"}}"#);
        patch_annotations(&lab, FAKE, &[("backend-data", &data)]).await;
        let k = wait_kernel(&lab, "node-1", "fake peer's new MAC programmed", |k| {
            has_peer(k, backend, FAKE_CIDR, IP_2, MAC_2)
        })
        .await;
        assert_one_object_per_peer(&k, backend, 3);
        assert_eq!(
            k.count_mentions(MAC_1),
            (0, 0, 0),
            "old MAC left behind: {k:#?}"
        );
    }

    // Deleted: the fake peer and then node-3 vanish from the others' kernels.
    delete_node(&lab, FAKE).await;
    let node3_cidr = pod_cidr(&lab, "node-3").await;
    delete_node(&lab, "node-3").await;
    for node in ["node-1", "node-2"] {
        let k = wait_kernel(&lab, node, "deleted peers removed", |k| {
            k.route(FAKE_CIDR).is_none() && k.route(&node3_cidr).is_none()
        })
        .await;
        assert_one_object_per_peer(&k, backend, 1);
        let node3_gw = node3_cidr.split('/').next().unwrap_or_default();
        for gone in [FAKE_GW, node3_gw, IP_2, &lab.node_ip("node-3").to_string()] {
            assert_eq!(
                k.count_mentions(gone),
                (0, 0, 0),
                "{node} still mentions {gone}: {k:#?}"
            );
        }
    }
    // The remaining nodes still talk.
    let report = probe_until_ok(&lab, "a", "tcp", &b_target).await;
    assert_eq!(report["ok"], json!(true));
    let report = probe_until_ok(
        &lab,
        "b",
        "udp",
        &format!("{}:{UDP_PORT}", pod_ip_of(&lab, "a").await),
    )
    .await;
    assert_eq!(report["ok"], json!(true));

    teardown(lab).await;
    root.assert_unchanged();
}

async fn pod_ip_of(lab: &lab::Lab, pod: &str) -> std::net::IpAddr {
    pod_ip(
        &lab.wait_pod_running("default", pod, WAIT)
            .await
            .expect("pod runs"),
    )
}

/// `peers` remote nodes: that many routes, and for VXLAN that many
/// permanent neighbours and FDB entries, all on the backend's device.
fn assert_one_object_per_peer(k: &Kernel, backend: Backend, peers: usize) {
    assert_eq!(k.routes.len(), peers, "routes: {k:#?}");
    assert!(
        k.routes.iter().all(|r| r.dev == backend.route_device()),
        "routes on the wrong device: {k:#?}"
    );
    let (neigh, fdb) = match backend {
        Backend::Vxlan => (peers, peers),
        Backend::HostGw => (0, 0),
    };
    assert_eq!(k.neighbours.len(), neigh, "neighbours: {k:#?}");
    assert_eq!(k.fdb.len(), fdb, "FDB entries: {k:#?}");
    assert_eq!(
        k.has_vxlan_device,
        backend == Backend::Vxlan,
        "flannel.1 presence: {k:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vxlan_peers_follow_node_objects() {
    peers_follow_node_objects(Backend::Vxlan).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_gw_peers_follow_node_objects() {
    peers_follow_node_objects(Backend::HostGw).await;
}

/// Nodes with unusable data get nothing and an Event naming the field;
/// everything else stays as it was.
async fn unusable_peers_are_skipped(backend: Backend) {
    let root = RootNs::capture();
    // podCIDRs in 10.42.0.0/15 are accepted by the API, nodenet runs 10.42.0.0/16.
    let lab = overlay_lab(3, backend, true).await;
    let serve = ["serve", "--tcp", "8080"];
    create_pod(&lab, workload_pod("a", "node-1", &serve, json!([]))).await;
    let b = create_pod(&lab, workload_pod("b", "node-3", &serve, json!([]))).await;
    let before = wait_kernel(&lab, "node-1", "two real peers", |k| k.routes.len() == 2).await;

    let (bad_field, bad_value) = match backend {
        Backend::Vxlan => ("backend-data", r#"{"VNI":1,"VtepMAC":"not-a-mac"}"#),
        Backend::HostGw => ("public-ip", "300.1.2.3"),
    };
    let mut malformed = annotations(backend, IP_1, MAC_1);
    malformed.insert(format!("{PREFIX}{bad_field}"), bad_value.to_string());
    create_fake_node(&lab, "malformed", "10.42.101.0/24", malformed).await;
    create_fake_node(
        &lab,
        "outside",
        "10.43.200.0/24",
        annotations(backend, IP_2, MAC_2),
    )
    .await;

    let event = wait_event(&lab, "malformed", &format!("{PREFIX}{bad_field}")).await;
    assert_eq!(event.type_.as_deref(), Some("Warning"), "{event:?}");
    let event = wait_event(&lab, "outside", "10.43.200.0/24").await;
    assert!(
        event
            .message
            .as_deref()
            .unwrap_or_default()
            .contains("podCIDR"),
        "the out-of-cluster Event names the podCIDR field: {event:?}"
    );
    // Nothing programmed for either, the real peers untouched.
    for node in ["node-1", "node-2", "node-3"] {
        let k = kernel(&lab, node).await;
        assert_eq!(k.routes.len(), 2, "{node} routes: {k:#?}");
        for dst in ["10.42.101.0/24", "10.43.200.0/24"] {
            assert!(
                k.route(dst).is_none(),
                "{node} has a route to {dst}: {k:#?}"
            );
        }
        assert_eq!(k.count_mentions(IP_1), (0, 0, 0), "{node}: {k:#?}");
        assert_eq!(k.count_mentions(IP_2), (0, 0, 0), "{node}: {k:#?}");
    }
    assert_eq!(
        kernel(&lab, "node-1").await,
        before,
        "node-1's overlay changed"
    );
    probe_until_ok(&lab, "a", "tcp", &format!("{}:{TCP_PORT}", pod_ip(&b))).await;

    // Fixed, the malformed node becomes a peer like any other.
    patch_annotations(
        &lab,
        "malformed",
        &[(
            bad_field,
            &annotations(backend, IP_1, MAC_1)[&format!("{PREFIX}{bad_field}")],
        )],
    )
    .await;
    wait_kernel(&lab, "node-1", "repaired peer programmed", |k| {
        has_peer(k, backend, "10.42.101.0/24", IP_1, MAC_1)
    })
    .await;

    teardown(lab).await;
    root.assert_unchanged();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vxlan_unusable_peers_are_skipped() {
    unusable_peers_are_skipped(Backend::Vxlan).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_gw_unusable_peers_are_skipped() {
    unusable_peers_are_skipped(Backend::HostGw).await;
}

/// host-gw needs every peer on the underlay link: a peer whose public IP
/// is not (no route can be made via it) gets nothing, and peers added after
/// it are still programmed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_gw_unreachable_next_hop_does_not_block_other_peers() {
    let root = RootNs::capture();
    let lab = overlay_lab(2, Backend::HostGw, false).await;
    wait_kernel(&lab, "node-1", "the real peer", |k| k.routes.len() == 1).await;
    let off_link = annotations(Backend::HostGw, "192.0.2.1", "");
    create_fake_node(&lab, "off-link", "10.42.102.0/24", off_link).await;
    create_fake_node(
        &lab,
        "on-link",
        "10.42.103.0/24",
        annotations(Backend::HostGw, IP_1, ""),
    )
    .await;
    let k = wait_kernel(&lab, "node-1", "the on-link fake peer", |k| {
        has_peer(k, Backend::HostGw, "10.42.103.0/24", IP_1, "")
    })
    .await;
    assert!(k.route("10.42.102.0/24").is_none(), "{k:#?}");
    assert_eq!(k.routes.len(), 2, "{k:#?}");

    teardown(lab).await;
    root.assert_unchanged();
}
