//! IPv6 and dual-stack overlay in a dual-stack lab (underlay 172.30.0.0/24
//! and fd30::/64, nodenet run with `--cluster-cidr 10.42.0.0/16,fd42::/56`
//! and both `--node-ip`s), per backend:
//!
//! - every cross-node pod pair talks over TCP and UDP on IPv4 and on IPv6,
//!   and the server sees the client pod's own address of that family;
//! - each node publishes `public-ipv6` and `backend-v6-data` exactly as
//!   flannel writes them, and holds exactly flannel's IPv6 objects
//!   (`flannel-v6.1` VNI 1 port 8472 with one neighbour, FDB entry and
//!   onlink route per peer; host-gw routes via the peers' IPv6 addresses;
//!   `flannel-wg-v6` on port 51821 with one peer per node);
//! - a peer annotated for one family only gets that family's objects, and
//!   an Event names the missing annotation;
//! - a change of only the IPv4 public IP of a dual-stack node is applied
//!   (flannel drops it, flannel.md §1.2) and leaves IPv6 untouched;
//! - pod -> outside (a node address) is masqueraded on IPv4 always and on
//!   IPv6 only with `--flannel-ipv6-masq`;
//! - restarting the daemons on both ends of continuous IPv6 UDP and TCP
//!   streams between two pods loses no message, and leaves the IPv6 (and
//!   IPv4) routes, neighbours and FDB entries exactly as they were.

mod common;

use std::net::IpAddr;

use common::dualstack::*;
use common::overlay::streams::{assert_lost_nothing, streams_across_restarts};
use common::overlay::{
    Kernel, PREFIX, RouteRow, kernel_of, patch_annotations, peer_ip_of, probe_until_ok, wait_event,
    wait_kernel_of,
};
use common::*;
use serde_json::{Value, json};

const TCP: u16 = 8080;
const UDP: u16 = 8081;

/// The pods a, b, c on node-1..3 serving TCP and UDP; their (v4, v6) IPs.
async fn three_pods(lab: &lab::Lab) -> Vec<(IpAddr, IpAddr)> {
    three_serving_pods(lab)
        .await
        .iter()
        .map(pod_ips_dual)
        .collect()
}

/// Every ordered pair of pods on different nodes, both families, both
/// protocols: the probe gets through and the server saw the client's
/// own address of that family (no masquerade between pods).
async fn assert_all_pairs_talk(lab: &lab::Lab, ips: &[(IpAddr, IpAddr)]) {
    let pods = ["a", "b", "c"];
    let of = |ip: (IpAddr, IpAddr), v6: bool| if v6 { ip.1 } else { ip.0 };
    for v6 in [false, true] {
        for (i, from) in pods.iter().enumerate() {
            for (j, to) in pods.iter().enumerate().filter(|(j, _)| *j != i) {
                for (proto, port) in [("tcp", TCP), ("udp", UDP)] {
                    let dst = target(of(ips[j], v6), port);
                    let report = probe_until_ok(lab, from, proto, &dst).await;
                    assert_eq!(
                        peer_ip_of(&report),
                        of(ips[i], v6),
                        "{from} -> {to} ({dst}) over {proto}: the server must see the client pod's own address"
                    );
                }
            }
        }
    }
}

/// Node `node-<i>`'s underlay addresses in the lab.
fn underlay(i: usize) -> (String, String) {
    (format!("172.30.0.1{i}"), format!("fd30::1{i}"))
}

/// The annotations of every real node, as flannel writes them in a
/// dual-stack cluster; returns per node (annotations, podCIDRs).
async fn assert_annotations(
    lab: &lab::Lab,
    backend: DualBackend,
) -> Vec<(std::collections::BTreeMap<String, String>, Vec<String>)> {
    let mut out = Vec::new();
    for i in 1..=3 {
        let (ann, cidrs) = dual_peer(lab, &format!("node-{i}")).await;
        let (v4, v6) = underlay(i);
        assert_eq!(ann["public-ip"], v4, "node-{i}: {ann:?}");
        assert_eq!(ann["public-ipv6"], v6, "node-{i}: {ann:?}");
        assert_eq!(ann["backend-type"], backend.annotation());
        assert_eq!(ann["kube-subnet-manager"], "true");
        assert_family_data(backend, &ann["backend-data"], &ann["backend-v6-data"]);
        assert_eq!(cidrs.len(), 2, "node-{i} podCIDRs {cidrs:?}");
        assert!(
            cidrs[1].starts_with("fd42:") && cidrs[1].ends_with("/64"),
            "{cidrs:?}"
        );
        out.push((ann, cidrs));
    }
    out
}

/// backend-data / backend-v6-data byte for byte in flannel's shape.
fn assert_family_data(backend: DualBackend, v4: &str, v6: &str) {
    match backend {
        DualBackend::HostGw => assert_eq!((v4, v6), ("null", "null")),
        DualBackend::Vxlan => {
            let (m4, m6) = (mac_of(v4), mac_of(v6));
            assert_eq!(v4, vxlan_data(&m4));
            assert_eq!(v6, vxlan_data(&m6));
            assert_ne!(
                m4, m6,
                "flannel.1 and flannel-v6.1 have their own VTEP MACs"
            );
            assert_eq!(m6, m6.to_lowercase());
        }
        DualBackend::Wireguard => {
            let key = common::overlay::wireguard::key_of_data(v4);
            assert_eq!(v4, format!(r#"{{"PublicKey":"{key}","Port":51820}}"#));
            assert_eq!(v6, format!(r#"{{"PublicKey":"{key}","Port":51821}}"#));
        }
    }
}

/// The IPv6 overlay objects of node-1 are exactly those of its two peers.
async fn assert_ipv6_kernel(lab: &lab::Lab, backend: DualBackend, nodes: &[NodeAnn]) {
    let k = kernel_of(lab, "node-1", true).await;
    let routes = k.route_rows();
    assert_eq!(
        routes,
        want_v6_routes(backend, &nodes[1..]),
        "node-1 IPv6 routes"
    );
    if backend == DualBackend::Vxlan {
        let mut neigh = Vec::new();
        let mut fdb = Vec::new();
        for (ann, cidrs) in &nodes[1..] {
            let mac = mac_of(&ann["backend-v6-data"]);
            neigh.push((cidrs[1].trim_end_matches("/64").to_string(), mac.clone()));
            fdb.push((mac, ann["public-ipv6"].clone()));
        }
        neigh.sort();
        fdb.sort();
        assert_eq!(k.neighbours, neigh, "node-1 flannel-v6.1 neighbours");
        assert_eq!(k.fdb, fdb, "node-1 flannel-v6.1 FDB");
        assert_vxlan_v6_device(lab).await;
    }
}

/// VXLAN: an onlink route per peer via its subnet's network address on
/// flannel-v6.1; host-gw: via its public-ipv6 on eth0; WireGuard: one
/// route for the whole IPv6 cluster CIDR on flannel-wg-v6.
fn want_v6_routes(backend: DualBackend, peers: &[NodeAnn]) -> Vec<RouteRow> {
    let row = |dst: &str, gw: Option<String>, dev: &str, onlink| {
        (dst.to_string(), gw, dev.to_string(), onlink)
    };
    let mut want: Vec<RouteRow> = match backend {
        DualBackend::Wireguard => vec![row("fd42::/56", None, "flannel-wg-v6", false)],
        DualBackend::Vxlan => peers
            .iter()
            .map(|(_, c)| {
                row(
                    &c[1],
                    Some(c[1].trim_end_matches("/64").into()),
                    "flannel-v6.1",
                    true,
                )
            })
            .collect(),
        DualBackend::HostGw => peers
            .iter()
            .map(|(a, c)| row(&c[1], Some(a["public-ipv6"].clone()), "eth0", false))
            .collect(),
    };
    want.sort();
    want
}

type NodeAnn = (std::collections::BTreeMap<String, String>, Vec<String>);

/// flannel-wg-v6 on node-1: port 51821, one peer per other node with its
/// IPv6 pod CIDR and `[public-ipv6]:51821` as endpoint.
fn assert_wireguard_v6_peers(lab: &lab::Lab, nodes: &[NodeAnn]) {
    let socket = lab
        .dirs()
        .node("node-1")
        .run
        .join("wireguard/flannel-wg-v6.sock");
    let state = wireguard_get(&socket);
    let get = |key: &str| -> Vec<&str> {
        state
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    };
    assert_eq!(get("listen_port"), vec!["51821"], "{state:?}");
    let mut endpoints = get("endpoint");
    endpoints.sort();
    let mut allowed = get("allowed_ip");
    allowed.sort();
    let mut want_endpoints: Vec<String> = nodes[1..]
        .iter()
        .map(|(a, _)| format!("[{}]:51821", a["public-ipv6"]))
        .collect();
    want_endpoints.sort();
    let mut want_allowed: Vec<String> = nodes[1..].iter().map(|(_, c)| c[1].clone()).collect();
    want_allowed.sort();
    assert_eq!(endpoints, want_endpoints, "{state:?}");
    assert_eq!(allowed, want_allowed, "{state:?}");
}

/// With `ipv6_masq` nodenet runs with --flannel-ipv6-masq.
async fn pods_talk_on_both_families(backend: DualBackend, ipv6_masq: bool) {
    let root = RootNs::capture();
    let extra: &[&str] = if ipv6_masq {
        &["--flannel-ipv6-masq"]
    } else {
        &[]
    };
    let lab = dual_lab_with(3, backend, extra).await;
    let ips = three_pods(&lab).await;
    assert_all_pairs_talk(&lab, &ips).await;
    let nodes = assert_annotations(&lab, backend).await;
    assert_subnet_env(&lab, backend, &nodes[0].1);
    assert_ipv6_kernel(&lab, backend, &nodes).await;
    if backend == DualBackend::Wireguard {
        assert_wireguard_v6_peers(&lab, &nodes);
    }
    // A closed port on a remote pod is refused over IPv6 too.
    let closed = common::overlay::probe_json(&lab, "a", "tcp", &target(ips[1].1, 9999)).await;
    assert_eq!(closed["ok"], json!(false), "closed remote port: {closed}");
    // Pod -> remote node: IPv4 is masqueraded to node-1's address; IPv6
    // only with --flannel-ipv6-masq, else it keeps the pod's address.
    let (v4, v6) = underlay(1);
    let want_v6: IpAddr = if ipv6_masq {
        v6.parse().expect("ip")
    } else {
        ips[0].1
    };
    let seen = remote_node_sees(&lab, "a").await;
    assert_eq!(
        seen,
        (v4.parse().expect("ip"), want_v6),
        "pod -> node-2 sources"
    );

    teardown(lab).await;
    root.assert_unchanged();
}

/// node-1's subnet.env in K3s's order, with the IPv6 keys.
fn assert_subnet_env(lab: &lab::Lab, backend: DualBackend, cidrs: &[String]) {
    let gateway = |cidr: &str| {
        let net: ipnet::IpNet = cidr.parse().expect("podCIDR");
        let first = match net.network() {
            IpAddr::V4(a) => IpAddr::V4((u32::from(a) + 1).into()),
            IpAddr::V6(a) => IpAddr::V6((u128::from(a) + 1).into()),
        };
        format!("{first}/{}", net.prefix_len())
    };
    let mtu = match backend {
        DualBackend::Vxlan => 1450,
        DualBackend::HostGw => 1500,
        DualBackend::Wireguard => 1420,
    };
    let want = format!(
        "FLANNEL_NETWORK=10.42.0.0/16\nFLANNEL_SUBNET={}\nFLANNEL_IPV6_NETWORK=fd42::/56\nFLANNEL_IPV6_SUBNET={}\nFLANNEL_MTU={mtu}\nFLANNEL_IPMASQ=true\n",
        gateway(&cidrs[0]),
        gateway(&cidrs[1])
    );
    let path = lab.dirs().node("node-1").run.join("subnet.env");
    let text = std::fs::read_to_string(&path).expect("read subnet.env");
    assert_eq!(text, want, "{}", path.display());
}

/// Starts a hostNetwork TCP server on node-2 and probes it from `pod` on
/// both of node-2's addresses; the (IPv4, IPv6) sources node-2 saw.
async fn remote_node_sees(lab: &lab::Lab, pod: &str) -> (IpAddr, IpAddr) {
    create_host_pod(lab, "host-server", "node-2", &["serve", "--tcp", "9100"]).await;
    let (v4, v6) = underlay(2);
    let mut seen = Vec::new();
    for ip in [v4, v6] {
        let ip: IpAddr = ip.parse().expect("underlay address");
        let report = probe_until_ok(lab, pod, "tcp", &target(ip, 9100)).await;
        seen.push(peer_ip_of(&report));
    }
    (seen[0], seen[1])
}

/// With --flannel-ipv6-masq, IPv6 pod traffic leaving the cluster CIDR is
/// masqueraded to the node's IPv6 address, while pod to pod keeps its
/// source on both families; then a daemon restart keeps the IPv6 VTEP MAC.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vxlan_ipv6_masquerade_follows_the_flag_and_the_v6_mac_survives_restart() {
    let root = RootNs::capture();
    let lab = dual_lab_with(2, DualBackend::Vxlan, &["--flannel-ipv6-masq"]).await;
    let serve = ["serve", "--tcp", "8080"];
    let a = create_pod(&lab, workload_pod("a", "node-1", &serve, json!([]))).await;
    let b = create_pod(&lab, workload_pod("b", "node-2", &serve, json!([]))).await;
    let (a4, a6) = pod_ips_dual(&a);
    let (_, b6) = pod_ips_dual(&b);
    let report = probe_until_ok(&lab, "a", "tcp", &target(b6, TCP)).await;
    assert_eq!(
        peer_ip_of(&report),
        a6,
        "pod -> pod over IPv6 keeps its source"
    );
    let (n4, n6) = underlay(1);
    let seen = remote_node_sees(&lab, "a").await;
    let want: (IpAddr, IpAddr) = (n4.parse().expect("ip"), n6.parse().expect("ip"));
    assert_eq!(seen, want, "pod -> node-2 is masqueraded on both families");
    assert_ne!(seen.0, a4);
    v6_vtep_mac_survives_a_restart(&lab, b6).await;

    teardown(lab).await;
    root.assert_unchanged();
}

/// Restarting node-2's nodenet keeps flannel-v6.1's MAC (the persisted
/// one, also in backend-v6-data), and IPv6 pod traffic flows again.
async fn v6_vtep_mac_survives_a_restart(lab: &lab::Lab, b6: IpAddr) {
    let (before, _) = dual_peer(lab, "node-2").await;
    lab.restart_nodenet("node-2").await.expect("restart");
    common::overlay::wait_nodenet_ready(lab, "node-2").await;
    let (after, _) = dual_peer(lab, "node-2").await;
    assert_eq!(after["backend-v6-data"], before["backend-v6-data"]);
    let argv = ["ip", "-j", "link", "show", "flannel-v6.1"];
    let out = lab
        .exec_on_node("node-2", &argv, PROBE)
        .await
        .expect("ip link");
    let links: Value = serde_json::from_slice(&out.stdout).expect("ip -j link");
    assert_eq!(
        links[0]["address"],
        json!(mac_of(&before["backend-v6-data"]))
    );
    let report = probe_until_ok(lab, "a", "tcp", &target(b6, TCP)).await;
    assert_eq!(report["ok"], json!(true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vxlan_pods_talk_on_both_families() {
    pods_talk_on_both_families(DualBackend::Vxlan, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_gw_pods_talk_on_both_families() {
    pods_talk_on_both_families(DualBackend::HostGw, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wireguard_pods_talk_on_both_families() {
    // With --flannel-ipv6-masq: unmasqueraded, node-2's reply (source
    // fd30::12) would come back through the tunnel, and WireGuard drops an
    // inner source outside the peer's allowed IPs (its pod CIDR), as with
    // flannel; masqueraded, the reply takes the underlay.
    pods_talk_on_both_families(DualBackend::Wireguard, true).await;
}

/// Fake peers: `v4only` (IPv4 annotations only), `v6only` (IPv6 only),
/// `moving` (both). Their endpoints are on the underlay subnets, so
/// host-gw routes via them are valid; no daemon runs there.
const V4ONLY: [&str; 2] = ["10.42.200.0/24", "fd42:0:0:c8::/64"];
const V6ONLY: [&str; 2] = ["10.42.201.0/24", "fd42:0:0:c9::/64"];
const MOVING: [&str; 2] = ["10.42.202.0/24", "fd42:0:0:ca::/64"];

fn fake_data(backend: DualBackend, mac: &str) -> String {
    match backend {
        DualBackend::Vxlan => vxlan_data(mac),
        _ => "null".to_string(),
    }
}

async fn create_fake_peers(lab: &lab::Lab, backend: DualBackend) {
    let d = |mac: &str| fake_data(backend, mac);
    let (d4a, d6b, d4c, d6c) = (
        d("0e:00:00:00:c8:04"),
        d("0e:00:00:00:c9:06"),
        d("0e:00:00:00:ca:04"),
        d("0e:00:00:00:ca:06"),
    );
    let v4only = dual_annotations(backend, Some(("172.30.0.201", &d4a)), None);
    create_dual_fake_node(lab, "v4only", V4ONLY, v4only).await;
    let v6only = dual_annotations(backend, None, Some(("fd30::202", &d6b)));
    create_dual_fake_node(lab, "v6only", V6ONLY, v6only).await;
    let moving = dual_annotations(
        backend,
        Some(("172.30.0.203", &d4c)),
        Some(("fd30::203", &d6c)),
    );
    create_dual_fake_node(lab, "moving", MOVING, moving).await;
}

async fn each_family_stands_alone(backend: DualBackend) {
    let root = RootNs::capture();
    let lab = dual_lab(2, backend).await;
    create_fake_peers(&lab, backend).await;
    let (v4, v6) = wait_fake_peers(&lab, backend).await;
    assert!(
        v4.route(V6ONLY[0]).is_none(),
        "v6only has no IPv4 data: {v4:#?}"
    );
    assert!(
        v6.route(V4ONLY[1]).is_none(),
        "v4only has no IPv6 data: {v6:#?}"
    );
    let event = wait_event(&lab, "v4only", &format!("{PREFIX}public-ipv6]")).await;
    let message = event.message.unwrap_or_default();
    assert!(message.contains("no IPv6 overlay route"), "{message}");
    let event = wait_event(&lab, "v6only", &format!("{PREFIX}public-ip]")).await;
    let message = event.message.unwrap_or_default();
    assert!(message.contains("no IPv4 overlay route"), "{message}");

    ipv4_only_endpoint_change_is_applied(&lab, backend, &v6).await;

    teardown(lab).await;
    root.assert_unchanged();
}

/// Waits until node-1 holds, per family, the fake peers annotated for it;
/// node-1's (IPv4, IPv6) overlay state then.
async fn wait_fake_peers(lab: &lab::Lab, backend: DualBackend) -> (Kernel, Kernel) {
    let m = |mac: &'static str| {
        if backend == DualBackend::Vxlan {
            mac
        } else {
            ""
        }
    };
    let v4 = wait_kernel_of(lab, "node-1", false, "IPv4 peers v4only and moving", |k| {
        has_dual_peer(
            k,
            backend,
            false,
            V4ONLY[0],
            "172.30.0.201",
            m("0e:00:00:00:c8:04"),
        ) && has_dual_peer(
            k,
            backend,
            false,
            MOVING[0],
            "172.30.0.203",
            m("0e:00:00:00:ca:04"),
        )
    })
    .await;
    let v6 = wait_kernel_of(lab, "node-1", true, "IPv6 peers v6only and moving", |k| {
        has_dual_peer(
            k,
            backend,
            true,
            V6ONLY[1],
            "fd30::202",
            m("0e:00:00:00:c9:06"),
        ) && has_dual_peer(
            k,
            backend,
            true,
            MOVING[1],
            "fd30::203",
            m("0e:00:00:00:ca:06"),
        )
    })
    .await;
    (v4, v6)
}

/// `moving` changes only its IPv4 public IP: node-1's IPv4 FDB entry
/// (VXLAN) or route (host-gw) follows, nothing of IPv6 changes.
async fn ipv4_only_endpoint_change_is_applied(
    lab: &lab::Lab,
    backend: DualBackend,
    v6_before: &Kernel,
) {
    patch_annotations(lab, "moving", &[("public-ip", "172.30.0.204")]).await;
    let mac = if backend == DualBackend::Vxlan {
        "0e:00:00:00:ca:04"
    } else {
        ""
    };
    let v4 = wait_kernel_of(lab, "node-1", false, "moving's new IPv4 endpoint", |k| {
        has_dual_peer(k, backend, false, MOVING[0], "172.30.0.204", mac)
    })
    .await;
    assert_eq!(
        v4.count_mentions("172.30.0.203"),
        (0, 0, 0),
        "the old IPv4 endpoint is gone: {v4:#?}"
    );
    let v6_after = kernel_of(lab, "node-1", true).await;
    assert_eq!(&v6_after, v6_before, "IPv6 objects must not change");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vxlan_each_family_stands_alone_and_follows_an_ipv4_only_change() {
    each_family_stands_alone(DualBackend::Vxlan).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_gw_each_family_stands_alone_and_follows_an_ipv4_only_change() {
    each_family_stands_alone(DualBackend::HostGw).await;
}

/// IPv6 drift: `flannel-v6.1` deleted by hand comes back with its peer, and
/// so do an IPv6 route and FDB entry deleted by hand; the IPv4 side is
/// left as it was, and IPv6 pod traffic flows again each time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vxlan_ipv6_device_route_and_fdb_deleted_by_hand_come_back() {
    let root = RootNs::capture();
    let lab = dual_lab(2, DualBackend::Vxlan).await;
    let serve = ["serve", "--tcp", "8080"];
    create_pod(&lab, workload_pod("a", "node-1", &serve, json!([]))).await;
    let b = create_pod(&lab, workload_pod("b", "node-2", &serve, json!([]))).await;
    let (_, b6) = pod_ips_dual(&b);
    probe_until_ok(&lab, "a", "tcp", &target(b6, TCP)).await;
    let before6 = kernel_of(&lab, "node-1", true).await;
    let before4 = kernel_of(&lab, "node-1", false).await;
    assert_eq!(before6.routes.len(), 1, "{before6:#?}");

    exec_on_node_ok(&lab, "node-1", &["ip", "link", "del", "flannel-v6.1"]).await;
    let back = wait_kernel_of(&lab, "node-1", true, "flannel-v6.1 and its peer", |k| {
        k.has_vxlan_device && *k == before6
    })
    .await;
    assert_eq!(back, before6);
    assert_eq!(kernel_of(&lab, "node-1", false).await, before4);
    probe_until_ok(&lab, "a", "tcp", &target(b6, TCP)).await;

    let route = before6.routes[0].dst.clone();
    let (mac, _) = before6
        .fdb
        .first()
        .expect("an FDB entry for node-2")
        .clone();
    exec_on_node_ok(&lab, "node-1", &["ip", "-6", "route", "del", &route]).await;
    let fdb_del = ["bridge", "fdb", "del", &mac, "dev", "flannel-v6.1", "self"];
    exec_on_node_ok(&lab, "node-1", &fdb_del).await;
    let back = wait_kernel_of(&lab, "node-1", true, "route and FDB entry back", |k| {
        *k == before6
    })
    .await;
    assert_eq!(back, before6);
    assert_eq!(kernel_of(&lab, "node-1", false).await, before4);
    probe_until_ok(&lab, "a", "tcp", &target(b6, TCP)).await;

    teardown(lab).await;
    root.assert_unchanged();
}

/// Both families' overlay state of node-1 and node-2.
async fn overlay_state(lab: &lab::Lab) -> Vec<Kernel> {
    let mut out = Vec::new();
    for node in ["node-1", "node-2"] {
        for v6 in [true, false] {
            out.push(kernel_of(lab, node, v6).await);
        }
    }
    out
}

async fn ipv6_restart_loses_no_packets(backend: DualBackend) {
    let root = RootNs::capture();
    let lab = std::sync::Arc::new(dual_lab(3, backend).await);
    let serve = ["serve", "--tcp", "8080", "--udp", "8081"];
    create_pod(&lab, workload_pod("a", "node-1", &["sleep"], json!([]))).await;
    let b = create_pod(&lab, workload_pod("b", "node-2", &serve, json!([]))).await;
    let (_, b6) = pod_ips_dual(&b);
    probe_until_ok(&lab, "a", "udp", &target(b6, UDP)).await;
    probe_until_ok(&lab, "a", "tcp", &target(b6, TCP)).await;
    let before = overlay_state(&lab).await;
    assert!(
        before[0].routes.len() == 2 && before[2].routes.len() == 2,
        "node-1 and node-2 each route to their two IPv6 peers: {before:#?}"
    );

    let targets = [("udp", target(b6, UDP)), ("tcp", target(b6, TCP))];
    let nodes = ["node-1", "node-2"];
    for report in streams_across_restarts(&lab, "a", &targets, &nodes).await {
        assert_lost_nothing(&report);
        let over = report.1["target"].as_str().unwrap_or_default();
        assert!(
            over.starts_with("[fd42:"),
            "the stream must run over IPv6: {report:?}"
        );
    }
    // The restarted daemons found their state right and left it as it was.
    assert_eq!(overlay_state(&lab).await, before);

    let lab = std::sync::Arc::into_inner(lab).expect("stream tasks done");
    teardown(lab).await;
    root.assert_unchanged();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vxlan_ipv6_restart_loses_no_packets() {
    ipv6_restart_loses_no_packets(DualBackend::Vxlan).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_gw_ipv6_restart_loses_no_packets() {
    ipv6_restart_loses_no_packets(DualBackend::HostGw).await;
}
