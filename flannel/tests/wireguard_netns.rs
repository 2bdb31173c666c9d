//! The WireGuard backend against a real kernel: three "nodes" (network
//! namespaces) on an enclosed underlay bridge, each running the overlay —
//! and so its WireGuard device (user space over TUN unless a test picks
//! another mode) — in its namespace.
//! Device state is read back through each node's UAPI socket and with
//! `ip -j`, and compared with what the other nodes' annotations say;
//! traffic is real TCP between pod namespaces, through the tunnels.

#[path = "wireguard_netns/bed.rs"]
mod bed;
#[allow(dead_code)]
#[path = "overlay_netns/lab.rs"]
mod lab;

use std::os::unix::fs::PermissionsExt;

use base64::Engine;
use bed::{DevicePeer, WgBed, WgNode};
use flannel::overlay::Backend;
use flannel::overlay::annotations as ann;
use flannel::overlay::wireguard::{WireguardData, WireguardMode};
use lab::tcp_source_seen;

fn hex_of_base64(text: &str) -> String {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .expect("base64 key");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn annotated_key(node: &WgNode) -> String {
    let data = WireguardData::parse(&node.annotations[ann::BACKEND_DATA]).expect("backend-data");
    assert_eq!(data.port, Some(51820), "{}", node.name);
    data.public_key.to_base64()
}

/// The peers node `me` must hold, from the other nodes' annotations.
fn expected_peers(bed: &WgBed, me: usize) -> Vec<DevicePeer> {
    let mut peers: Vec<DevicePeer> = bed
        .nodes
        .iter()
        .enumerate()
        .filter(|(i, n)| *i != me && !bed.deleted.contains(&n.name))
        .map(|(_, n)| {
            (
                hex_of_base64(&annotated_key(n)),
                format!("{}:51820", n.ip),
                vec![n.subnet.to_string()],
                "25".to_string(),
            )
        })
        .collect();
    peers.sort();
    peers
}

fn assert_device(bed: &WgBed, me: usize) {
    let node = &bed.nodes[me];
    let (own, port, peers) = node.uapi_get();
    assert_eq!(
        own,
        hex_of_base64(&annotated_key(node)),
        "{} key",
        node.name
    );
    assert_eq!(port, "51820");
    assert_eq!(peers, expected_peers(bed, me), "{} peers", node.name);
    let link = node
        .ns
        .ip_json(&["-d", "link", "show", "dev", "flannel-wg"])
        .expect("ip link");
    assert_eq!(link[0]["linkinfo"]["info_kind"], "tun", "{link}");
    assert_eq!(link[0]["mtu"], 1420, "underlay 1500 - 80: {link}");
    let addrs = node
        .ns
        .ip_json(&["-4", "addr", "show", "dev", "flannel-wg"])
        .expect("ip addr");
    let local: Vec<String> = addrs[0]["addr_info"]
        .as_array()
        .expect("addr_info")
        .iter()
        .map(|a| format!("{}/{}", a["local"].as_str().unwrap_or(""), a["prefixlen"]))
        .collect();
    assert_eq!(local, vec![format!("{}/32", node.subnet.network())]);
    let routes = node
        .ns
        .ip_json(&["route", "show", "dev", "flannel-wg"])
        .expect("ip route");
    let cluster: Vec<String> = routes
        .as_array()
        .expect("routes")
        .iter()
        .map(|r| format!("{} {}", r["dst"].as_str().unwrap_or(""), r["scope"]))
        .collect();
    assert_eq!(cluster, vec!["10.42.0.0/16 \"link\"".to_string()]);
}

fn assert_pods_talk(bed: &WgBed, port: u16) {
    for (i, a) in bed.nodes.iter().enumerate() {
        for (j, b) in bed.nodes.iter().enumerate() {
            if i == j || bed.deleted.contains(&a.name) || bed.deleted.contains(&b.name) {
                continue;
            }
            let seen = tcp_source_seen(&a.pod, &b.pod, b.pod_ip(), port + (i * 10 + j) as u16)
                .unwrap_or_else(|e| panic!("{} pod -> {} pod: {e}", a.name, b.name));
            assert_eq!(seen, a.pod_ip().to_string(), "{} -> {}", a.name, b.name);
        }
    }
}

#[test]
fn wireguard_pods_talk_and_devices_match_annotations() {
    let mut bed = WgBed::new(3);
    bed.converge();
    for i in 0..3 {
        let node = &bed.nodes[i];
        assert_eq!(node.annotations[ann::BACKEND_TYPE], "wireguard");
        assert_eq!(node.annotations[ann::PUBLIC_IP], node.ip.to_string());
        let key_file = node.data_dir.path().join("flannel/wg-private-key");
        let mode = std::fs::metadata(&key_file)
            .expect("key file")
            .permissions();
        assert_eq!(mode.mode() & 0o777, 0o600, "{}", key_file.display());
        assert_device(&bed, i);
    }
    assert_pods_talk(&bed, 9000);
    // Idle passes change nothing: same peers, no device restart.
    for i in 0..3 {
        let report = bed.reconcile(i);
        assert!(
            !report.changed_kernel(),
            "{}: {report:?}",
            bed.nodes[i].name
        );
        assert_eq!(report.annotations_patch, None);
        assert_eq!(report.peers.len(), 2);
    }
    // The socket is read-only: wg tools cannot desynchronise the daemon.
    let path = bed.nodes[0].sock_dir.path().join("flannel-wg.sock");
    let answer = uapi_raw(&path, "set=1\nlisten_port=1\n\n");
    assert_eq!(answer, "errno=1\n\n");
}

fn uapi_raw(path: &std::path::Path, request: &str) -> String {
    use std::io::{Read, Write};
    let mut stream = std::os::unix::net::UnixStream::connect(path).expect("connect");
    stream.write_all(request.as_bytes()).expect("write");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read");
    answer
}

#[test]
fn wireguard_key_change_replaces_the_peer_and_deleted_node_is_pruned() {
    let mut bed = WgBed::new(3);
    bed.converge();
    let old_key = annotated_key(&bed.nodes[1]);
    // node-2 loses its key (reinstall) and restarts: a new key is published.
    std::fs::remove_file(bed.nodes[1].data_dir.path().join("flannel/wg-private-key"))
        .expect("remove key");
    bed.nodes[1].restart(Backend::Wireguard);
    let report = bed.reconcile(1);
    assert_eq!(report.devices_created, vec!["flannel-wg".to_string()]);
    assert!(report.annotations_patch.is_some(), "new key published");
    let new_key = annotated_key(&bed.nodes[1]);
    assert_ne!(old_key, new_key);
    for i in [0, 2] {
        let report = bed.reconcile(i);
        assert_eq!(
            (report.changes.removed, report.changes.written),
            (1, 1),
            "old peer removed, new added, nothing else: {report:?}"
        );
        assert_device(&bed, i);
        let (_, _, peers) = bed.nodes[i].uapi_get();
        assert!(
            peers.iter().all(|p| p.0 != hex_of_base64(&old_key)),
            "old key gone (k3s#5216)"
        );
    }
    assert_pods_talk(&bed, 9100);

    // node-3 is deleted from the API: its peer goes, the other stays.
    bed.deleted.insert("node-3".into());
    let report = bed.reconcile(0);
    assert_eq!((report.changes.removed, report.changes.written), (1, 0));
    assert_device(&bed, 0);
    assert_eq!(bed.nodes[0].uapi_get().2.len(), 1);
    assert_pods_talk(&bed, 9200);
}

#[test]
fn wireguard_restart_keeps_the_key_and_deleted_device_comes_back() {
    let mut bed = WgBed::new(2);
    bed.converge();
    let key = annotated_key(&bed.nodes[0]);
    bed.nodes[0].restart(Backend::Wireguard);
    let report = bed.reconcile(0);
    assert_eq!(report.annotations_patch, None, "the key survives a restart");
    assert_eq!(report.devices_created, vec!["flannel-wg".to_string()]);
    assert_eq!(annotated_key(&bed.nodes[0]), key);
    assert_device(&bed, 0);
    assert_pods_talk(&bed, 9300);

    // Deleted by hand: the next pass starts a device with all its peers.
    lab::sh(&bed.nodes[0].ns, &["link", "del", "flannel-wg"]);
    let report = bed.reconcile(0);
    assert_eq!(report.devices_created, vec!["flannel-wg".to_string()]);
    assert_device(&bed, 0);
    assert_pods_talk(&bed, 9400);

    // Switching to VXLAN stops the device.
    for i in 0..2 {
        bed.nodes[i].restart(Backend::Vxlan);
    }
    bed.converge();
    for node in &bed.nodes {
        assert!(!node.link_exists("flannel-wg"), "{}", node.name);
        assert!(node.link_exists("flannel.1"), "{}", node.name);
    }
    assert_pods_talk(&bed, 9500);
}

/// Built in or loaded, a kernel's WireGuard shows under /sys/module.
fn kernel_has_wireguard() -> bool {
    std::path::Path::new("/sys/module/wireguard").exists()
}

fn link_kind(node: &WgNode) -> String {
    let link = node
        .ns
        .ip_json(&["-d", "link", "show", "dev", "flannel-wg"])
        .expect("ip link");
    link[0]["linkinfo"]["info_kind"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn auto_mode_runs_the_kernel_device_when_the_kernel_has_one_and_user_space_otherwise() {
    let mut bed = WgBed::with_mode(2, WireguardMode::Auto);
    bed.converge();
    let (engine, kind) = if kernel_has_wireguard() {
        ("kernel", "wireguard")
    } else {
        ("userspace", "tun")
    };
    for node in &bed.nodes {
        assert_eq!(node.engine_kind(), Some(engine), "{}", node.name);
        assert_eq!(link_kind(node), kind, "{}", node.name);
    }
    assert_pods_talk(&bed, 9600);
    // Idle passes neither restart the device nor touch its peers.
    for i in 0..2 {
        let report = bed.reconcile(i);
        assert!(!report.changed_kernel(), "{report:?}");
    }
}

#[test]
fn kernel_mode_on_a_kernel_without_wireguard_fails_saying_so_and_leaves_no_link() {
    let mut bed = WgBed::with_mode(2, WireguardMode::Kernel);
    if kernel_has_wireguard() {
        bed.converge();
        for node in &bed.nodes {
            assert_eq!(node.engine_kind(), Some("kernel"), "{}", node.name);
            assert_eq!(link_kind(node), "wireguard", "{}", node.name);
        }
        assert_pods_talk(&bed, 9700);
        return;
    }
    let objects = bed.objects();
    for _pass in 0..2 {
        let error = bed.nodes[0]
            .try_reconcile(&objects)
            .expect_err("kernel mode without kernel WireGuard must fail");
        let text = error.to_string();
        assert!(text.contains("--flannel-wireguard-mode=kernel"), "{text}");
        assert!(
            !bed.nodes[0].link_exists("flannel-wg"),
            "no half-made device"
        );
        assert_eq!(bed.nodes[0].engine_kind(), None);
    }
}
