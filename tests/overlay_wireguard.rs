//! WireGuard across daemon restarts, in a lab. The user-space device lives
//! inside the daemon, so a restart takes it down and brings up a new one
//! (as flannel deletes and re-creates its device on start): not hitless.
//! What a user can rely on, and what this test holds the daemon to:
//!
//! - the key survives: the private key file under the data dir (mode
//!   0600) is reused, so `backend-data` and the device's own key are
//!   unchanged and the peers need no update;
//! - the peers come back, on the restarted nodes and the others alike,
//!   exactly as the annotations say;
//! - a TCP connection between pods on the two restarted nodes rides out
//!   both restarts (TCP retransmits across the gap) and completes, every
//!   message echoed, without error;
//! - UDP messages sent while a device was down are lost: their number is
//!   printed, not asserted; once the daemons are back a UDP stream loses
//!   none.
//!
//! A restarted node is reachable from its peers at once, even by traffic
//! they start: its new device has no session, while theirs still holds
//! the old one, which it would keep using (and the new device drop) until
//! WireGuard's rekey timers give up on it (~15 s) unless the new device
//! handshakes first, as the kernel's does when a peer gets a persistent
//! keepalive.
//!
//! And a node that comes back with a new key (its key file gone, as after
//! a reboot of a K3s node, whose key lives on tmpfs) replaces its old peer
//! on every other node instead of leaving it behind (k3s#5216).

mod common;

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;

use common::overlay::streams::{self, assert_lost_nothing, client_and_server, stream};
use common::overlay::wireguard::{self, WgDevice, assert_device_matches_annotations};
use common::overlay::*;
use common::*;
use serde_json::json;

/// Messages of the UDP stream after the restarts (~1 s).
const AFTER_COUNT: &str = "200";
const NODES: [&str; 3] = ["node-1", "node-2", "node-3"];

/// What must not change across a restart of `node`: the key file's
/// content and mode, and the `backend-data` annotation.
async fn key_facts(lab: &lab::Lab, node: &str) -> (String, u32, String) {
    let path = lab.dirs().node(node).data.join("flannel/wg-private-key");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mode = std::fs::metadata(&path)
        .expect("key file")
        .permissions()
        .mode()
        & 0o777;
    let (_, data) = wireguard::backend_annotations(lab, node).await;
    (text, mode, data)
}

async fn devices(lab: &lab::Lab) -> Vec<WgDevice> {
    let mut out = Vec::new();
    for node in NODES {
        out.push(assert_device_matches_annotations(lab, node, &NODES).await);
    }
    out
}

/// A UDP and a TCP stream from pod a (node-1) to `ip_b` (node-2) while
/// both daemons restart: TCP completes, every message echoed; UDP's loss
/// is printed.
async fn restart_both_under_streams(lab: &Arc<lab::Lab>, ip_b: std::net::IpAddr) {
    let targets = [
        ("udp", format!("{ip_b}:{UDP_PORT}")),
        ("tcp", format!("{ip_b}:{TCP_PORT}")),
    ];
    let nodes = ["node-1", "node-2"];
    let reports = streams::streams_across_restarts(lab, "a", &targets, &nodes).await;
    let (_, udp) = &reports[0];
    eprintln!(
        "UDP across two WireGuard daemon restarts: {} of {} messages lost ({udp})",
        udp["lost_count"], udp["sent"]
    );
    assert_eq!(udp["sent"], json!(4000), "{udp}");
    assert_lost_nothing(&reports[1]);
    assert!(reports[1].1.get("error").is_none(), "{:?}", reports[1]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wireguard_restart_keeps_key_and_peers_and_a_tcp_stream_completes() {
    let root = RootNs::capture();
    let lab = Arc::new(overlay_lab(3, Backend::Wireguard, false).await);
    let ip_b = client_and_server(&lab).await;
    let devices_before = devices(&lab).await;
    let mut keys_before = Vec::new();
    for node in ["node-1", "node-2"] {
        let facts = key_facts(&lab, node).await;
        assert_eq!(facts.1, 0o600, "{node}: key file mode");
        keys_before.push(facts);
    }

    restart_both_under_streams(&lab, ip_b).await;

    // Same keys, same devices and peers on every node.
    for (node, before) in ["node-1", "node-2"].into_iter().zip(&keys_before) {
        assert_eq!(&key_facts(&lab, node).await, before, "{node}: key changed");
    }
    assert_eq!(devices(&lab).await, devices_before);
    // Steady again: UDP loses nothing.
    let (ok, after) = stream(&lab, "a", "udp", &format!("{ip_b}:{UDP_PORT}"), AFTER_COUNT).await;
    assert!(ok, "UDP stream after the restarts lost messages: {after}");

    let lab = Arc::into_inner(lab).expect("stream tasks done");
    teardown(lab).await;
    root.assert_unchanged();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wireguard_new_key_of_a_node_replaces_its_old_peer() {
    let root = RootNs::capture();
    let lab = overlay_lab(3, Backend::Wireguard, false).await;
    let serve = ["serve", "--tcp", "8080"];
    let a = create_pod(&lab, workload_pod("a", "node-1", &serve, json!([]))).await;
    let c = create_pod(&lab, workload_pod("c", "node-3", &serve, json!([]))).await;
    probe_until_ok(&lab, "a", "tcp", &format!("{}:{TCP_PORT}", pod_ip(&c))).await;
    devices(&lab).await;
    let (old_key, _, old_data) = key_facts(&lab, "node-3").await;

    let key_file = lab
        .dirs()
        .node("node-3")
        .data
        .join("flannel/wg-private-key");
    std::fs::remove_file(&key_file).expect("remove node-3's key file");
    lab.restart_nodenet("node-3")
        .await
        .expect("restart nodenet");
    wait_nodenet_ready(&lab, "node-3").await;
    let (new_key, mode, new_data) = key_facts(&lab, "node-3").await;
    assert_ne!(new_key, old_key, "a new private key");
    assert_eq!(mode, 0o600);
    assert_ne!(
        new_data, old_data,
        "backend-data carries the new public key"
    );

    let after = devices(&lab).await;
    let old_public = wireguard::key_of_data(&old_data);
    for (node, device) in NODES.iter().zip(&after) {
        let stale = device.peers.iter().filter(|p| p.public_key == old_public);
        assert_eq!(
            stale.count(),
            0,
            "{node} kept node-3's old peer: {device:#?}"
        );
    }
    probe_until_ok(&lab, "a", "tcp", &format!("{}:{TCP_PORT}", pod_ip(&c))).await;
    probe_until_ok(&lab, "c", "tcp", &format!("{}:{TCP_PORT}", pod_ip(&a))).await;

    teardown(lab).await;
    root.assert_unchanged();
}

/// Traffic started by node-2 towards node-1 right after node-1's restart
/// (node-1 sends nothing first): a UDP stream b -> a loses nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wireguard_restarted_node_is_reachable_from_its_peers_at_once() {
    let root = RootNs::capture();
    let lab = overlay_lab(2, Backend::Wireguard, false).await;
    let serve = ["serve", "--udp", "8081"];
    let a = create_pod(&lab, workload_pod("a", "node-1", &serve, json!([]))).await;
    create_pod(&lab, workload_pod("b", "node-2", &["sleep"], json!([]))).await;
    let target = format!("{}:{UDP_PORT}", pod_ip(&a));
    // node-2's device gets a session with node-1's.
    probe_until_ok(&lab, "b", "udp", &target).await;

    lab.restart_nodenet("node-1")
        .await
        .expect("restart nodenet");
    wait_nodenet_ready(&lab, "node-1").await;
    for node in ["node-1", "node-2"] {
        assert_device_matches_annotations(&lab, node, &["node-1", "node-2"]).await;
    }
    let (ok, report) = stream(&lab, "b", "udp", &target, AFTER_COUNT).await;
    assert!(
        ok,
        "node-2 -> restarted node-1 lost messages (node-2 still uses its old session?): {report}"
    );

    teardown(lab).await;
    root.assert_unchanged();
}
