//! How the overlay follows Node objects, per backend, checked in the
//! kernel of the other nodes: a Node added programs exactly one route (and
//! for VXLAN one neighbour and one FDB entry; for WireGuard one device peer
//! under the one cluster route); a changed public IP, VTEP MAC or public
//! key moves them; a deleted Node takes them away while traffic between
//! the remaining nodes carries on. Fake Nodes (no daemon) stand in for
//! peers whose annotations a test can change freely.

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

/// A fake peer's identity `n` (1 or 2) in `backend`'s data: its VTEP MAC
/// (VXLAN) or WireGuard public key; host-gw has none.
fn id(backend: Backend, n: u8) -> String {
    match (backend, n) {
        (Backend::Vxlan, 1) => MAC_1.to_string(),
        (Backend::Vxlan, _) => MAC_2.to_string(),
        (Backend::HostGw, _) => String::new(),
        (Backend::Wireguard, n) => wireguard::fake_key(n),
    }
}

async fn peers_follow_node_objects(backend: Backend) {
    let root = RootNs::capture();
    let lab = overlay_lab(3, backend, false).await;
    let serve = ["serve", "--tcp", "8080", "--udp", "8081"];
    create_pod(&lab, workload_pod("a", "node-1", &serve, json!([]))).await;
    let b = create_pod(&lab, workload_pod("b", "node-2", &serve, json!([]))).await;
    let b_target = format!("{}:{TCP_PORT}", pod_ip(&b));
    probe_until_ok(&lab, "a", "tcp", &b_target).await;

    // Added: exactly one object of each kind for the new peer.
    let id_1 = id(backend, 1);
    create_fake_node(&lab, FAKE, FAKE_CIDR, annotations(backend, IP_1, &id_1)).await;
    for node in ["node-1", "node-2", "node-3"] {
        let k = wait_kernel(&lab, node, "fake peer programmed", |k| {
            has_peer(k, backend, FAKE_CIDR, IP_1, &id_1)
        })
        .await;
        assert_one_object_per_peer(&k, backend, 3);
    }

    // Public IP changed: the same objects, now towards the new address.
    patch_annotations(&lab, FAKE, &[("public-ip", IP_2)]).await;
    let k = wait_kernel(&lab, "node-1", "fake peer moved to its new IP", |k| {
        has_peer(k, backend, FAKE_CIDR, IP_2, &id_1)
    })
    .await;
    assert_one_object_per_peer(&k, backend, 3);
    assert_eq!(k.mentions(IP_1), 0, "old IP left behind: {k:#?}");

    if backend != Backend::HostGw {
        identity_change_replaces_the_old_one(&lab, backend).await;
    }
    deleted_peers_vanish(&lab, backend).await;

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

/// The fake peer's VTEP MAC (VXLAN) or public key (WireGuard) changes:
/// its objects follow, and nothing keeps the old one: flannel leaks the
/// old MAC's FDB entry, and keeps the old key's peer with no allowed IPs
/// (k3s#5216); we do neither.
async fn identity_change_replaces_the_old_one(lab: &lab::Lab, backend: Backend) {
    let (id_1, id_2) = (id(backend, 1), id(backend, 2));
    let data = annotations(backend, IP_2, &id_2)[&format!("{PREFIX}backend-data")].clone();
    patch_annotations(lab, FAKE, &[("backend-data", &data)]).await;
    let k = wait_kernel(lab, "node-1", "fake peer's new MAC / key programmed", |k| {
        has_peer(k, backend, FAKE_CIDR, IP_2, &id_2)
    })
    .await;
    assert_one_object_per_peer(&k, backend, 3);
    assert_eq!(k.mentions(&id_1), 0, "old MAC / key left behind: {k:#?}");
}

/// The fake peer and then node-3 are deleted: they vanish from the
/// others' kernels, nothing of them left.
async fn deleted_peers_vanish(lab: &lab::Lab, backend: Backend) {
    delete_node(lab, FAKE).await;
    let node3_cidr = pod_cidr(lab, "node-3").await;
    delete_node(lab, "node-3").await;
    let node3_gw = node3_cidr.split('/').next().unwrap_or_default();
    let node3_ip = lab.node_ip("node-3").to_string();
    let (id_1, id_2) = (id(backend, 1), id(backend, 2));
    for node in ["node-1", "node-2"] {
        let k = wait_kernel(lab, node, "deleted peers removed", |k| {
            k.mentions(FAKE_CIDR) == 0 && k.mentions(&node3_cidr) == 0
        })
        .await;
        assert_one_object_per_peer(&k, backend, 1);
        let gone = [FAKE_GW, node3_gw, IP_2, &node3_ip, &id_1, &id_2];
        for gone in gone.into_iter().filter(|g| !g.is_empty()) {
            assert_eq!(k.mentions(gone), 0, "{node} still mentions {gone}: {k:#?}");
        }
    }
}

async fn pod_ip_of(lab: &lab::Lab, pod: &str) -> std::net::IpAddr {
    pod_ip(
        &lab.wait_pod_running("default", pod, WAIT)
            .await
            .expect("pod runs"),
    )
}

/// `peers` remote nodes: that many routes, and for VXLAN that many
/// permanent neighbours and FDB entries, all on the backend's device; for
/// WireGuard the one cluster route and that many device peers.
fn assert_one_object_per_peer(k: &Kernel, backend: Backend, peers: usize) {
    let routes = match backend {
        Backend::Wireguard => 1,
        _ => peers,
    };
    assert_eq!(k.routes.len(), routes, "routes: {k:#?}");
    assert!(
        k.routes.iter().all(|r| r.dev == backend.route_device()),
        "routes on the wrong device: {k:#?}"
    );
    assert_eq!(k.peer_count(backend), peers, "peers: {k:#?}");
    if backend == Backend::Wireguard {
        assert!(has_wireguard_route(k), "{k:#?}");
        assert!(
            k.wg_peers().all(|p| p.keepalive == wireguard::KEEPALIVE),
            "{k:#?}"
        );
    }
    let (neigh, fdb) = match backend {
        Backend::Vxlan => (peers, peers),
        Backend::HostGw | Backend::Wireguard => (0, 0),
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wireguard_peers_follow_node_objects() {
    peers_follow_node_objects(Backend::Wireguard).await;
}

/// Fake peers no node may program: (name, podCIDR, public IP).
const MALFORMED: (&str, &str, &str) = ("malformed", "10.42.101.0/24", IP_1);
const OUTSIDE: (&str, &str, &str) = ("outside", "10.43.200.0/24", IP_2);
const MISSING: (&str, &str, &str) = ("missing-ip", "10.42.104.0/24", "172.30.0.203");
const OTHER: (&str, &str, &str) = ("other-backend", "10.42.105.0/24", "172.30.0.204");
/// Claims half of node-2's podCIDR (sorts after it: node-2 keeps it).
const OVERLAP: (&str, &str) = ("overlap", "172.30.0.206");
/// Announces node-2's VTEP MAC / public key (sorts after it: node-2 keeps it).
const SAME_ID: (&str, &str, &str) = ("same-id", "10.42.106.0/24", "172.30.0.205");

/// Another backend than `backend`, whose annotations a peer may carry.
fn other_backend(backend: Backend) -> Backend {
    match backend {
        Backend::Vxlan => Backend::HostGw,
        Backend::HostGw | Backend::Wireguard => Backend::Vxlan,
    }
}

/// Creates the unusable fake peers: malformed data (a bad MAC, address or
/// key), a podCIDR outside the cluster CIDR, no `public-ip`, another
/// backend's annotations, and (VXLAN, WireGuard) node-2's VTEP MAC or
/// public key. Returns the malformed annotation (short key) and its valid
/// value.
async fn create_unusable_peers(lab: &lab::Lab, backend: Backend) -> (&'static str, String) {
    let (bad_field, bad_value) = match backend {
        Backend::Vxlan => ("backend-data", r#"{"VNI":1,"VtepMAC":"not-a-mac"}"#),
        Backend::HostGw => ("public-ip", "300.1.2.3"),
        Backend::Wireguard => ("backend-data", r#"{"PublicKey":"not-a-key","Port":51820}"#),
    };
    let good = annotations(backend, MALFORMED.2, &id(backend, 1));
    let mut malformed = good.clone();
    malformed.insert(format!("{PREFIX}{bad_field}"), bad_value.to_string());
    create_fake_node(lab, MALFORMED.0, MALFORMED.1, malformed).await;
    let outside = annotations(backend, OUTSIDE.2, &id(backend, 2));
    create_fake_node(lab, OUTSIDE.0, OUTSIDE.1, outside).await;
    let other = other_backend(backend);
    let other_ann = annotations(other, OTHER.2, &id(other, 2));
    create_fake_node(lab, OTHER.0, OTHER.1, other_ann).await;
    if backend != Backend::HostGw {
        let (_, _, node2_id) = real_peer(lab, "node-2").await;
        let same = annotations(backend, SAME_ID.2, &node2_id);
        create_fake_node(lab, SAME_ID.0, SAME_ID.1, same).await;
    }
    let overlap = annotations(backend, OVERLAP.1, &id(backend, 6));
    create_fake_node(lab, OVERLAP.0, &overlapping_node_2(lab).await, overlap).await;
    // Created last: the pass that reports it has seen all the others.
    let mut missing = annotations(backend, MISSING.2, &id(backend, 2));
    missing.remove(&format!("{PREFIX}public-ip"));
    create_fake_node(lab, MISSING.0, MISSING.1, missing).await;
    (bad_field, good[&format!("{PREFIX}{bad_field}")].clone())
}

/// The first half of node-2's podCIDR.
async fn overlapping_node_2(lab: &lab::Lab) -> String {
    let node2: ipnet::Ipv4Net = pod_cidr(lab, "node-2").await.parse().expect("IPv4 podCIDR");
    let half = ipnet::Ipv4Net::new(node2.network(), node2.prefix_len() + 1).expect("a /25");
    half.to_string()
}

/// The Warning Event of each skipped peer, naming its field (none for
/// another backend: flannel only logs that). They also prove a pass saw
/// every fake peer.
async fn assert_skip_events(lab: &lab::Lab, backend: Backend, bad_field: &str) {
    let event = wait_event(lab, MALFORMED.0, &format!("{PREFIX}{bad_field}")).await;
    assert_eq!(event.type_.as_deref(), Some("Warning"), "{event:?}");
    let event = wait_event(lab, OUTSIDE.0, OUTSIDE.1).await;
    assert!(
        event
            .message
            .as_deref()
            .unwrap_or_default()
            .contains("podCIDR"),
        "the out-of-cluster Event names the podCIDR field: {event:?}"
    );
    let event = wait_event(lab, OVERLAP.0, "which sorts first and keeps it").await;
    let message = event.message.unwrap_or_default();
    assert!(message.contains("node-2"), "{message}");
    let event = wait_event(lab, MISSING.0, &format!("{PREFIX}public-ip]")).await;
    let message = event.message.unwrap_or_default();
    assert!(message.contains("missing"), "{message}");
    if backend != Backend::HostGw {
        let event = wait_event(lab, SAME_ID.0, "already used by node node-2").await;
        let message = event.message.unwrap_or_default();
        assert!(
            message.contains(&format!("{PREFIX}backend-data")),
            "{message}"
        );
    }
}

/// Nodes with unusable data get nothing, and an Event naming the field
/// unless they merely run another backend (flannel only logs that);
/// everything else stays as it was. A podCIDR overlapping another node's
/// goes to the node whose name sorts first, whatever the order of events.
async fn unusable_peers_are_skipped(backend: Backend) {
    let root = RootNs::capture();
    // podCIDRs in 10.42.0.0/15 are accepted by the API, nodenet runs 10.42.0.0/16.
    let lab = overlay_lab(3, backend, true).await;
    let serve = ["serve", "--tcp", "8080"];
    create_pod(&lab, workload_pod("a", "node-1", &serve, json!([]))).await;
    let b = create_pod(&lab, workload_pod("b", "node-3", &serve, json!([]))).await;
    let before = wait_kernel(&lab, "node-1", "two real peers", |k| {
        k.peer_count(backend) == 2
    })
    .await;

    let (bad_field, good_value) = create_unusable_peers(&lab, backend).await;
    assert_skip_events(&lab, backend, bad_field).await;
    // Nothing programmed for any of them, the real peers untouched.
    for node in ["node-1", "node-2", "node-3"] {
        let k = kernel(&lab, node).await;
        assert_eq!(k.peer_count(backend), 2, "{node} peers: {k:#?}");
        for (name, cidr, ip) in [MALFORMED, OUTSIDE, MISSING, OTHER, SAME_ID] {
            assert_eq!(k.mentions(cidr), 0, "{node} programs {name}: {k:#?}");
            assert_eq!(k.mentions(ip), 0, "{node} programs {name}: {k:#?}");
        }
        assert_eq!(k.mentions(OVERLAP.1), 0, "{node} programs overlap: {k:#?}");
    }
    assert_eq!(
        kernel(&lab, "node-1").await,
        before,
        "node-1's overlay changed"
    );
    probe_until_ok(&lab, "a", "tcp", &format!("{}:{TCP_PORT}", pod_ip(&b))).await;

    // Fixed, the malformed node becomes a peer like any other.
    patch_annotations(&lab, MALFORMED.0, &[(bad_field, &good_value)]).await;
    wait_kernel(&lab, "node-1", "repaired peer programmed", |k| {
        has_peer(k, backend, MALFORMED.1, MALFORMED.2, &id(backend, 1))
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wireguard_unusable_peers_are_skipped() {
    unusable_peers_are_skipped(Backend::Wireguard).await;
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
