//! The overlay against a real kernel: three "nodes" (network namespaces)
//! on an enclosed underlay bridge, each with a pod behind cni0. Reconcile
//! runs inside each node namespace, as the daemon does. Kernel state is
//! read back with `ip -j` / `bridge -j` and compared with what the other
//! nodes' annotations say; traffic is real TCP between pod namespaces.

#[path = "overlay_netns/lab.rs"]
mod lab;

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use flannel::overlay::Backend;
use flannel::overlay::annotations::{self as ann, VxlanData};
use lab::{Bed, OUTSIDE, TestNode, tcp_source_seen};

type Pairs = BTreeSet<(String, String)>;
type Routes = BTreeSet<(String, String, String, bool)>;

/// What node `me` must hold for the other (non-deleted) nodes, computed
/// from the peers' annotations and kernel facts, not from the plan code:
/// (neighbours, FDB entries, routes).
fn expected_vxlan(bed: &Bed, me: usize) -> (Pairs, Pairs, Routes) {
    let mut neigh = BTreeSet::new();
    let mut fdb = BTreeSet::new();
    let mut routes = BTreeSet::new();
    for (i, peer) in bed.nodes.iter().enumerate() {
        if i == me || bed.deleted.contains(&peer.name) {
            continue;
        }
        let data =
            VxlanData::parse(&peer.annotations[ann::BACKEND_DATA]).expect("peer backend-data");
        let mac = data.vtep_mac.to_string();
        assert_eq!(
            mac,
            peer.vtep_mac(),
            "{}: annotation and device MAC agree",
            peer.name
        );
        let gw = peer.subnet.network().to_string();
        neigh.insert((gw.clone(), mac.clone()));
        fdb.insert((mac, peer.ip.to_string()));
        routes.insert((peer.subnet.to_string(), gw, "flannel.1".to_string(), true));
    }
    (neigh, fdb, routes)
}

fn assert_vxlan_state(bed: &Bed, me: usize) {
    let node = &bed.nodes[me];
    let (neigh, fdb, routes) = expected_vxlan(bed, me);
    assert_eq!(node.neighbours(), neigh, "{} neighbours", node.name);
    assert_eq!(node.fdb(), fdb, "{} fdb", node.name);
    assert_eq!(node.routes(), routes, "{} routes", node.name);
}

fn assert_device(node: &TestNode) {
    let link = node
        .ns
        .ip_json(&["-d", "link", "show", "dev", "flannel.1"])
        .expect("ip link");
    let link = &link[0];
    let info = &link["linkinfo"]["info_data"];
    assert_eq!(link["linkinfo"]["info_kind"], "vxlan");
    assert_eq!(info["id"], 1, "{link}");
    assert_eq!(info["port"], 8472, "{link}");
    assert_eq!(info["local"], node.ip.to_string(), "{link}");
    assert_eq!(info["learning"], false, "{link}");
    assert_eq!(info["link"], "eth0", "{link}");
    assert_eq!(link["mtu"], 1450, "{link}");
    let addrs = node
        .ns
        .ip_json(&["-4", "addr", "show", "dev", "flannel.1"])
        .expect("ip addr");
    let local: Vec<String> = addrs[0]["addr_info"]
        .as_array()
        .expect("addr_info")
        .iter()
        .map(|a| format!("{}/{}", a["local"].as_str().unwrap_or(""), a["prefixlen"]))
        .collect();
    assert_eq!(local, vec![format!("{}/32", node.subnet.network())]);
}

/// Pod-to-pod TCP across every ordered pair keeps the pod source address.
fn assert_pods_talk(bed: &Bed, port: u16) {
    for (i, a) in bed.nodes.iter().enumerate() {
        for (j, b) in bed.nodes.iter().enumerate() {
            if i == j || bed.deleted.contains(&a.name) || bed.deleted.contains(&b.name) {
                continue;
            }
            let seen = tcp_source_seen(&a.pod, &b.pod, b.pod_ip(), port + (i * 10 + j) as u16)
                .unwrap_or_else(|e| panic!("{} pod -> {} pod: {e}", a.name, b.name));
            assert_eq!(
                seen,
                a.pod_ip().to_string(),
                "{} -> {}: pod source must survive",
                a.name,
                b.name
            );
        }
    }
}

#[test]
fn vxlan_pods_talk_and_kernel_matches_annotations() {
    let mut bed = Bed::new(Backend::Vxlan);
    bed.converge();
    for i in 0..3 {
        assert_device(&bed.nodes[i]);
        assert_vxlan_state(&bed, i);
        let a = &bed.nodes[i].annotations;
        assert_eq!(a[ann::KUBE_SUBNET_MANAGER], "true");
        assert_eq!(a[ann::BACKEND_TYPE], "vxlan");
        assert_eq!(a[ann::PUBLIC_IP], bed.nodes[i].ip.to_string());
    }
    assert_pods_talk(&bed, 7000);
    // Pods reaching outside the cluster are masqueraded to the node IP.
    let outside: Ipv4Addr = OUTSIDE.parse().expect("ip");
    let seen =
        tcp_source_seen(&bed.nodes[0].pod, &bed.underlay, outside, 7100).expect("pod -> outside");
    assert_eq!(seen, bed.nodes[0].ip.to_string());

    // Idempotence: a second pass changes nothing, not even the nft table.
    let before: Vec<String> = bed.nodes.iter().map(TestNode::snapshot).collect();
    for i in 0..3 {
        let report = bed.reconcile(i);
        assert!(
            !report.changed_kernel(),
            "{}: {report:?}",
            bed.nodes[i].name
        );
        assert_eq!(report.annotations_patch, None);
        assert_eq!(report.peers.len(), 2);
        assert!(report.skipped.is_empty(), "{:?}", report.skipped);
    }
    let after: Vec<String> = bed.nodes.iter().map(TestNode::snapshot).collect();
    for (b, a) in before.iter().zip(&after) {
        let first = b.lines().zip(a.lines()).find(|(x, y)| x != y);
        assert!(
            first.is_none(),
            "kernel state changed by an idle pass: {first:?}"
        );
    }
}

#[test]
fn vxlan_restart_prunes_deleted_node_and_keeps_its_mac() {
    let mut bed = Bed::new(Backend::Vxlan);
    bed.converge();
    let mac_before = bed.nodes[0].vtep_mac();
    // node-3 is deleted from the API while node-1's daemon is down.
    bed.deleted.insert("node-3".into());
    bed.restart(Backend::Vxlan);
    let report = bed.reconcile(0);
    assert_eq!(
        report.annotations_patch, None,
        "the MAC must survive the restart"
    );
    assert!(
        report.devices_created.is_empty(),
        "restart reuses the device"
    );
    assert_eq!(report.changes.removed, 3, "{report:?}");
    assert_eq!(bed.nodes[0].vtep_mac(), mac_before);
    assert_vxlan_state(&bed, 0);
    assert_eq!(bed.nodes[0].routes().len(), 1);
    // Something not ours on flannel.1's neighbours of another device, and
    // a route with another protocol, are left alone by later passes.
    lab::sh(
        &bed.nodes[0].ns,
        &[
            "route",
            "add",
            "10.42.200.0/24",
            "via",
            "192.168.50.3",
            "proto",
            "static",
        ],
    );
    let report = bed.reconcile(0);
    assert!(!report.changed_kernel(), "{report:?}");
    let foreign = bed.nodes[0]
        .ns
        .ip_json(&["route", "show", "10.42.200.0/24"])
        .expect("ip route");
    assert_eq!(foreign.as_array().map(Vec::len), Some(1));
    assert_pods_talk(&bed, 7200);
}

#[test]
fn vxlan_public_ip_change_rewrites_the_fdb() {
    let mut bed = Bed::new(Backend::Vxlan);
    bed.converge();
    bed.nodes[1].change_ip(Ipv4Addr::new(192, 168, 50, 12));
    let report = bed.reconcile(1);
    // The device's local address changed, so it is rebuilt with its peers.
    assert_eq!(report.devices_created, vec!["flannel.1".to_string()]);
    let patch = report.annotations_patch.expect("public-ip changes");
    assert_eq!(
        patch["metadata"]["annotations"][ann::PUBLIC_IP],
        "192.168.50.12"
    );
    assert_vxlan_state(&bed, 1);
    for i in [0, 2] {
        let report = bed.reconcile(i);
        assert_eq!(report.changes.written, 1, "only the FDB entry: {report:?}");
        assert_vxlan_state(&bed, i);
    }
    let mac = bed.nodes[1].vtep_mac();
    let dsts: Vec<String> = bed.nodes[0]
        .fdb()
        .into_iter()
        .filter(|(m, _)| *m == mac)
        .map(|(_, d)| d)
        .collect();
    assert_eq!(dsts, vec!["192.168.50.12".to_string()]);
    assert_pods_talk(&bed, 7300);
}

#[test]
fn vxlan_repairs_deleted_device_route_fdb_and_rules() {
    let mut bed = Bed::new(Backend::Vxlan);
    bed.converge();
    let mac = bed.nodes[0].vtep_mac();
    lab::sh(&bed.nodes[0].ns, &["link", "del", "flannel.1"]);
    let report = bed.reconcile(0);
    assert_eq!(report.devices_created, vec!["flannel.1".to_string()]);
    assert_eq!(report.annotations_patch, None);
    assert_eq!(bed.nodes[0].vtep_mac(), mac, "re-created with the same MAC");
    assert_device(&bed.nodes[0]);
    assert_vxlan_state(&bed, 0);
    assert_pods_talk(&bed, 7400);

    // Hand-deleted route and FDB entry come back; nothing else is touched.
    let peer_mac = bed.nodes[1].vtep_mac();
    lab::sh(&bed.nodes[0].ns, &["route", "del", "10.42.2.0/24"]);
    let out = std::process::Command::new("bridge")
        .args([
            "-n",
            bed.nodes[0].ns.name(),
            "fdb",
            "del",
            &peer_mac,
            "dev",
            "flannel.1",
            "dst",
            "192.168.50.2",
            "self",
        ])
        .status()
        .expect("bridge");
    assert!(out.success());
    let nft = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            bed.nodes[0].ns.name(),
            "nft",
            "delete",
            "table",
            "ip",
            "nodenet-flannel",
        ])
        .status()
        .expect("nft");
    assert!(nft.success());
    let report = bed.reconcile(0);
    assert_eq!(report.changes.written, 2, "{report:?}");
    assert_eq!(report.changes.removed, 0, "{report:?}");
    assert!(report.masq_applied);
    assert_vxlan_state(&bed, 0);
    assert!(!bed.reconcile(0).changed_kernel());
}

#[test]
fn switching_vxlan_to_host_gw_and_back_removes_the_old_state() {
    let mut bed = Bed::new(Backend::Vxlan);
    bed.converge();
    bed.restart(Backend::HostGw);
    bed.converge();
    for (i, node) in bed.nodes.iter().enumerate() {
        assert!(
            !node.link_exists("flannel.1"),
            "{}: flannel.1 must be gone",
            node.name
        );
        assert_eq!(node.annotations[ann::BACKEND_TYPE], "host-gw");
        assert_eq!(node.annotations[ann::BACKEND_DATA], "null");
        let want: BTreeSet<(String, String, String, bool)> = bed
            .nodes
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, p)| {
                (
                    p.subnet.to_string(),
                    p.ip.to_string(),
                    "eth0".to_string(),
                    false,
                )
            })
            .collect();
        assert_eq!(node.routes(), want, "{} host-gw routes", node.name);
    }
    assert_pods_talk(&bed, 7500);
    for i in 0..3 {
        assert!(!bed.reconcile(i).changed_kernel());
    }
    // A deleted node's host-gw route is pruned.
    bed.deleted.insert("node-2".into());
    let report = bed.reconcile(0);
    assert_eq!(report.changes.removed, 1, "{report:?}");
    assert_eq!(bed.nodes[0].routes().len(), 1);
    bed.deleted.clear();

    bed.restart(Backend::Vxlan);
    bed.converge();
    for i in 0..3 {
        assert_vxlan_state(&bed, i);
    }
    assert_pods_talk(&bed, 7600);
}

#[test]
fn teardown_removes_only_overlay_state() {
    let mut bed = Bed::new(Backend::Vxlan);
    bed.converge();
    let node = &bed.nodes[0];
    lab::sh(
        &node.ns,
        &[
            "route",
            "add",
            "10.42.200.0/24",
            "via",
            "192.168.50.3",
            "proto",
            "static",
        ],
    );
    let dry = node
        .ns
        .block_on(|| async {
            flannel::overlay::teardown_state(&["10.42.0.0/16".parse().expect("cidr")], true).await
        })
        .expect("enter")
        .expect("dry run");
    assert!(node.link_exists("flannel.1"), "dry run changes nothing");
    assert_eq!(
        dry.removed,
        vec![
            "link flannel.1".to_string(),
            "nft table ip nodenet-flannel".to_string()
        ]
    );
    let report = node
        .ns
        .block_on(|| async { flannel::overlay::teardown_state(&[], false).await })
        .expect("enter")
        .expect("teardown");
    assert_eq!(report, dry);
    assert!(!node.link_exists("flannel.1"));
    assert!(node.link_exists("cni0") && node.link_exists("eth0"));
    let foreign = node
        .ns
        .ip_json(&["route", "show", "10.42.200.0/24"])
        .expect("ip route");
    assert_eq!(
        foreign.as_array().map(Vec::len),
        Some(1),
        "foreign route kept"
    );
    let tables = node
        .ns
        .run(host::nft::list_tables)
        .expect("enter")
        .expect("nft");
    assert!(
        tables.iter().all(|t| t.name != "nodenet-flannel"),
        "{tables:?}"
    );
}
