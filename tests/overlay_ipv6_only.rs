//! IPv6-only overlay in an IPv6-only lab (`LabConfig::with_ipv6_only`:
//! cluster CIDR fd42::/56 only, a /64 podCIDR and only the fd30::/64
//! InternalIP per Node, nodenet run with only IPv6 `--node-ip`,
//! `--cluster-cidr`, `--service-cidr`, `--cluster-dns` and
//! `--flannel-ipv6-masq`; the underlay keeps its IPv4 addresses, which
//! nothing of the cluster may use), per backend:
//!
//! - every pod has one address, IPv6; every cross-node pod pair talks over
//!   TCP and UDP and the server sees the client pod's own address;
//! - each node carries exactly the flannel annotations of an IPv6-only
//!   flannel node: `kube-subnet-manager`, `backend-type`,
//!   `backend-v6-data` and `public-ipv6` (flannel.md §1.1: the IPv4 pair
//!   `backend-data` / `public-ip` only with IPv4 enabled), although the
//!   node has an IPv4 address;
//! - subnet.env has the IPv6 lines and no IPv4 network or subnet;
//! - no IPv4 overlay exists: no `flannel.1` / `flannel-wg`, no IPv4 route
//!   of ours, no IPv4 nftables table; the IPv6 objects are exactly
//!   flannel's (`flannel-v6.1` with one neighbour, FDB entry and onlink
//!   route per peer; host-gw routes via the peers' IPv6 addresses;
//!   `flannel-wg-v6` on 51821 with one peer per node);
//! - a pod reaches a remote node, masqueraded to its own node's IPv6
//!   address (`--flannel-ipv6-masq`);
//! - a Node annotated as K3s's flannel annotates an IPv6-only node (no
//!   daemon runs there) becomes a peer: VXLAN neighbour, FDB entry and
//!   route on `flannel-v6.1`, or a host-gw route via its `public-ipv6`.

mod common;

use std::collections::BTreeMap;
use std::net::IpAddr;

use common::dualstack::{
    DualBackend, assert_vxlan_v6_device, flannel_annotations, has_dual_peer, mac_of, target,
    three_serving_pods, vxlan_data, wireguard_get,
};
use common::overlay::{
    PREFIX, RouteRow, kernel_of, peer_ip_of, probe_json, probe_until_ok, wait_kernel_of,
};
use common::*;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, PostParams};
use lab::{Lab, LabConfig};
use serde_json::{Value, json};

const TCP: u16 = 8080;
const UDP: u16 = 8081;
/// The IPv6-only lab's cluster CIDR (`lab::config::IPV6_ONLY_CLUSTER_CIDR`).
const CLUSTER_V6: &str = "fd42::/56";

/// An IPv6-only lab whose nodenets run `backend` with --flannel-ipv6-masq.
async fn ipv6_only_lab(nodes: usize, backend: DualBackend) -> Lab {
    require_root();
    let mut config = LabConfig::from_target_dir(nodes)
        .expect("lab binaries (run cargo build --workspace --bins first)")
        .with_ipv6_only();
    config.nodenet_args = backend.nodenet_args();
    config.nodenet_args.push("--flannel-ipv6-masq".into());
    Lab::up(config).await.expect("IPv6-only lab comes up")
}

/// Node `node-<i>`'s IPv6 underlay address (its only InternalIP).
fn underlay_v6(i: usize) -> String {
    format!("fd30::1{i}")
}

/// A pod's only address: status.podIPs holds exactly one, IPv6, and
/// status.podIP is the same.
fn pod_ipv6(pod: &Pod) -> IpAddr {
    let status = pod.status.as_ref().expect("running pod has a status");
    let ips: Vec<&str> = status
        .pod_ips
        .iter()
        .flatten()
        .map(|p| p.ip.as_str())
        .collect();
    let [only] = ips[..] else {
        panic!(
            "pod {:?} should have one address, has {ips:?}",
            pod.metadata.name
        );
    };
    let ip: IpAddr = only.parse().expect("podIPs[0] is an address");
    assert!(
        ip.is_ipv6(),
        "pod {:?} has IPv4 address {ip}",
        pod.metadata.name
    );
    assert!(
        CLUSTER_V6
            .parse::<ipnet::IpNet>()
            .expect("CIDR")
            .contains(&ip),
        "{ip} outside {CLUSTER_V6}"
    );
    assert_eq!(status.pod_ip.as_deref(), Some(only), "status.podIP");
    ip
}

/// The pods a, b, c on node-1..3 serving TCP and UDP; their addresses.
async fn three_pods(lab: &Lab) -> Vec<IpAddr> {
    three_serving_pods(lab).await.iter().map(pod_ipv6).collect()
}

/// Every ordered pair of pods on different nodes, TCP and UDP: the probe
/// gets through and the server saw the client pod's own address.
async fn assert_all_pairs_talk(lab: &Lab, ips: &[IpAddr]) {
    let pods = ["a", "b", "c"];
    for (i, from) in pods.iter().enumerate() {
        for (j, to) in pods.iter().enumerate().filter(|(j, _)| *j != i) {
            for (proto, port) in [("tcp", TCP), ("udp", UDP)] {
                let dst = target(ips[j], port);
                let report = probe_until_ok(lab, from, proto, &dst).await;
                assert_eq!(
                    peer_ip_of(&report),
                    ips[i],
                    "{from} -> {to} ({dst}) over {proto}: the server must see the client pod's own address"
                );
            }
        }
    }
}

/// A real node as the API shows it once its daemon annotated it.
#[derive(Debug, Clone)]
struct NodeView {
    /// flannel annotations, short keys.
    ann: BTreeMap<String, String>,
    pod_cidrs: Vec<String>,
    pod_cidr: Option<String>,
    internal_ips: Vec<String>,
}

async fn node_view(lab: &Lab, name: &str) -> NodeView {
    let api: Api<Node> = Api::all(lab.client());
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let node = api.get(name).await.expect("get Node");
        let ann = flannel_annotations(&node);
        if ann.contains_key("public-ipv6") && ann.contains_key("backend-v6-data") {
            let spec = node.spec.unwrap_or_default();
            let addresses = node.status.and_then(|s| s.addresses).unwrap_or_default();
            return NodeView {
                ann,
                pod_cidrs: spec.pod_cidrs.unwrap_or_default(),
                pod_cidr: spec.pod_cidr,
                internal_ips: addresses
                    .into_iter()
                    .filter(|a| a.type_ == "InternalIP")
                    .map(|a| a.address)
                    .collect(),
            };
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "Node {name} has no IPv6 flannel annotations after {WAIT:?}: {ann:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// Every real node: only its IPv6 InternalIP, one IPv6 /64 podCIDR, and
/// exactly the four annotations of an IPv6-only flannel node.
async fn assert_nodes(lab: &Lab, backend: DualBackend) -> Vec<NodeView> {
    let mut out = Vec::new();
    for i in 1..=3 {
        let view = node_view(lab, &format!("node-{i}")).await;
        assert_eq!(view.internal_ips, [underlay_v6(i)], "node-{i}: {view:?}");
        assert_eq!(
            lab.node_ip(&format!("node-{i}")).to_string(),
            underlay_v6(i)
        );
        let [cidr] = &view.pod_cidrs[..] else {
            panic!("node-{i} should have one podCIDR: {view:?}");
        };
        assert!(
            cidr.starts_with("fd42:") && cidr.ends_with("/64"),
            "{view:?}"
        );
        assert_eq!(view.pod_cidr.as_ref(), Some(cidr), "spec.podCIDR");
        let keys: Vec<&str> = view.ann.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "backend-type",
                "backend-v6-data",
                "kube-subnet-manager",
                "public-ipv6"
            ],
            "node-{i}: an IPv6-only node publishes no backend-data / public-ip: {:?}",
            view.ann
        );
        assert_eq!(view.ann["public-ipv6"], underlay_v6(i));
        assert_eq!(view.ann["backend-type"], backend.annotation());
        assert_eq!(view.ann["kube-subnet-manager"], "true");
        assert_v6_data(backend, &view.ann["backend-v6-data"]);
        out.push(view);
    }
    out
}

/// backend-v6-data byte for byte in flannel's shape.
fn assert_v6_data(backend: DualBackend, data: &str) {
    match backend {
        DualBackend::HostGw => assert_eq!(data, "null"),
        DualBackend::Vxlan => {
            let mac = mac_of(data);
            assert_eq!(data, vxlan_data(&mac));
            assert_eq!(mac, mac.to_lowercase());
        }
        DualBackend::Wireguard => {
            let key = common::overlay::wireguard::key_of_data(data);
            assert_eq!(key.len(), 44, "base64 of a 32-byte key: {data}");
            assert_eq!(data, format!(r#"{{"PublicKey":"{key}","Port":51821}}"#));
        }
    }
}

/// node-1's subnet.env: the IPv6 lines only, in K3s's order.
fn assert_subnet_env(lab: &Lab, backend: DualBackend, cidr: &str) {
    let net: ipnet::Ipv6Net = cidr.parse().expect("IPv6 podCIDR");
    let gateway = std::net::Ipv6Addr::from(u128::from(net.network()) + 1);
    let mtu = match backend {
        DualBackend::Vxlan => 1450,
        DualBackend::HostGw => 1500,
        DualBackend::Wireguard => 1420,
    };
    let want = format!(
        "FLANNEL_IPV6_NETWORK={CLUSTER_V6}\nFLANNEL_IPV6_SUBNET={gateway}/64\nFLANNEL_MTU={mtu}\nFLANNEL_IPMASQ=true\n"
    );
    let path = lab.dirs().node("node-1").run.join("subnet.env");
    let text = std::fs::read_to_string(&path).expect("read subnet.env");
    assert_eq!(text, want, "{}", path.display());
}

/// Runs `argv` on `node` and parses its JSON output.
async fn json_on(lab: &Lab, node: &str, argv: &[&str]) -> Value {
    let out = lab
        .exec_on_node(node, argv, PROBE)
        .await
        .unwrap_or_else(|e| panic!("{argv:?} on {node}: {e}"));
    assert!(
        out.status.success(),
        "{argv:?} on {node}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let text = if text.trim().is_empty() {
        "[]"
    } else {
        text.trim()
    };
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{argv:?}: bad JSON ({e}): {text}"))
}

/// The flannel devices on a node, sorted.
async fn flannel_links(lab: &Lab, node: &str) -> Vec<String> {
    let links = json_on(lab, node, &["ip", "-j", "link", "show"]).await;
    let mut names: Vec<String> = links
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| l["ifname"].as_str())
        .filter(|n| n.starts_with("flannel"))
        .map(String::from)
        .collect();
    names.sort();
    names
}

/// On every node: only the IPv6 device of the backend (none for host-gw);
/// IPv4 routes and addresses only on the underlay (eth0) and loopback,
/// none with our route protocol (no IPv4 overlay route, pod gateway or
/// pod address); only the IPv6 nftables table, which masquerades
/// (--flannel-ipv6-masq).
async fn assert_no_ipv4_overlay(lab: &Lab, backend: DualBackend) {
    let want: &[&str] = match backend {
        DualBackend::Vxlan => &["flannel-v6.1"],
        DualBackend::HostGw => &[],
        DualBackend::Wireguard => &["flannel-wg-v6"],
    };
    for node in ["node-1", "node-2", "node-3"] {
        assert_eq!(flannel_links(lab, node).await, want, "{node} devices");
        assert_ipv4_only_underlay(lab, node).await;
        assert_only_ipv6_masq_table(lab, node).await;
    }
}

async fn assert_ipv4_only_underlay(lab: &Lab, node: &str) {
    // `ip -j` prints a protocol without a name in rt_protos as a string.
    let ours = json!(host::names::RTPROT_NODENET.to_string());
    let argv = ["ip", "-j", "-4", "route", "show", "table", "all"];
    let routes = json_on(lab, node, &argv).await;
    let foreign: Vec<&Value> = routes
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| {
            let dev = r["dev"].as_str().unwrap_or_default();
            !matches!(dev, "eth0" | "lo") || r["protocol"] == ours
        })
        .collect();
    assert!(
        foreign.is_empty(),
        "{node}: IPv4 routes beyond the underlay: {foreign:?}"
    );
    let addrs = json_on(lab, node, &["ip", "-j", "-4", "addr", "show"]).await;
    let mut with_v4: Vec<&str> = addrs
        .as_array()
        .into_iter()
        .flatten()
        .filter(|l| l["addr_info"].as_array().is_some_and(|a| !a.is_empty()))
        .filter_map(|l| l["ifname"].as_str())
        .collect();
    with_v4.sort();
    assert_eq!(
        with_v4,
        ["eth0", "lo"],
        "{node}: links with an IPv4 address"
    );
}

async fn assert_only_ipv6_masq_table(lab: &Lab, node: &str) {
    let tables = json_on(lab, node, &["nft", "-j", "list", "tables"]).await;
    let ours: Vec<&str> = tables["nftables"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t.get("table"))
        .filter(|t| t["name"] == "nodenet-flannel")
        .filter_map(|t| t["family"].as_str())
        .collect();
    assert_eq!(ours, ["ip6"], "{node}: nodenet-flannel tables");
    let argv = ["nft", "list", "table", "ip6", "nodenet-flannel"];
    let out = lab.exec_on_node(node, &argv, PROBE).await.expect("nft");
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("ip6 saddr fd42::/56 ip6 daddr != ff00::/8 masquerade"),
        "{node}: {table}"
    );
}

/// node-1's IPv6 overlay objects are exactly those of its two peers.
async fn assert_ipv6_kernel(lab: &Lab, backend: DualBackend, nodes: &[NodeView]) {
    let k = kernel_of(lab, "node-1", true).await;
    let routes = k.route_rows();
    let peers = &nodes[1..];
    let row = |dst: &str, gw: Option<String>, dev: &str, onlink| {
        (dst.to_string(), gw, dev.to_string(), onlink)
    };
    let mut want: Vec<RouteRow> = match backend {
        DualBackend::Wireguard => vec![row(CLUSTER_V6, None, "flannel-wg-v6", false)],
        DualBackend::Vxlan => peers
            .iter()
            .map(|v| {
                let gw = v.pod_cidrs[0].trim_end_matches("/64").to_string();
                row(&v.pod_cidrs[0], Some(gw), "flannel-v6.1", true)
            })
            .collect(),
        DualBackend::HostGw => peers
            .iter()
            .map(|v| {
                row(
                    &v.pod_cidrs[0],
                    Some(v.ann["public-ipv6"].clone()),
                    "eth0",
                    false,
                )
            })
            .collect(),
    };
    want.sort();
    assert_eq!(routes, want, "node-1 IPv6 routes");
    if backend == DualBackend::Vxlan {
        let mut neigh = Vec::new();
        let mut fdb = Vec::new();
        for v in peers {
            let mac = mac_of(&v.ann["backend-v6-data"]);
            let gw = v.pod_cidrs[0].trim_end_matches("/64").to_string();
            neigh.push((gw, mac.clone()));
            fdb.push((mac, v.ann["public-ipv6"].clone()));
        }
        neigh.sort();
        fdb.sort();
        assert_eq!(k.neighbours, neigh, "node-1 flannel-v6.1 neighbours");
        assert_eq!(k.fdb, fdb, "node-1 flannel-v6.1 FDB");
        assert_vxlan_v6_only_device(lab, &nodes[0]).await;
    }
}

/// flannel-v6.1 on node-1 as in a dual-stack cluster, with no IPv4
/// source and the annotated MAC.
async fn assert_vxlan_v6_only_device(lab: &Lab, node_1: &NodeView) {
    let link = assert_vxlan_v6_device(lab).await;
    let data = &link["linkinfo"]["info_data"];
    assert_eq!(data.get("local"), None, "no IPv4 source: {data}");
    assert_eq!(
        link["address"],
        json!(mac_of(&node_1.ann["backend-v6-data"]))
    );
}

/// flannel-wg-v6 on node-1: port 51821, one peer per other node with its
/// pod CIDR and `[public-ipv6]:51821`; no IPv4 device socket.
fn assert_wireguard_v6_peers(lab: &Lab, nodes: &[NodeView]) {
    let dir = lab.dirs().node("node-1").run.join("wireguard");
    assert!(
        !dir.join("flannel-wg.sock").exists(),
        "an IPv4 WireGuard device runs"
    );
    let state = wireguard_get(&dir.join("flannel-wg-v6.sock"));
    let get = |key: &str| -> Vec<String> {
        let mut v: Vec<String> = state
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .collect();
        v.sort();
        v
    };
    assert_eq!(get("listen_port"), ["51821"], "{state:?}");
    let mut endpoints: Vec<String> = nodes[1..]
        .iter()
        .map(|v| format!("[{}]:51821", v.ann["public-ipv6"]))
        .collect();
    endpoints.sort();
    let mut allowed: Vec<String> = nodes[1..].iter().map(|v| v.pod_cidrs[0].clone()).collect();
    allowed.sort();
    assert_eq!(get("endpoint"), endpoints, "{state:?}");
    assert_eq!(get("allowed_ip"), allowed, "{state:?}");
}

/// A hostNetwork TCP server on node-2; the source address it saw from a
/// probe by `pod` to its IPv6 address.
async fn remote_node_sees(lab: &Lab, pod: &str) -> IpAddr {
    create_host_pod(lab, "host-server", "node-2", &["serve", "--tcp", "9100"]).await;
    let ip: IpAddr = underlay_v6(2).parse().expect("underlay address");
    let report = probe_until_ok(lab, pod, "tcp", &target(ip, 9100)).await;
    peer_ip_of(&report)
}

/// The IPv6 pod CIDR and endpoint of the flannel-annotated fake node.
const FLANNEL_PEER: (&str, &str, &str) = ("fd42:0:0:c8::/64", "fd30::99", "0e:00:00:00:c8:06");

/// A Node carrying exactly an IPv6-only flannel node's annotations and a
/// single IPv6 podCIDR; node-1 programs it as a peer.
async fn flannel_ipv6_only_peer_is_programmed(lab: &Lab, backend: DualBackend) {
    let (cidr, endpoint, mac) = FLANNEL_PEER;
    let data = match backend {
        DualBackend::Vxlan => vxlan_data(mac),
        _ => "null".to_string(),
    };
    let ann: BTreeMap<String, String> = [
        ("kube-subnet-manager", "true"),
        ("backend-type", backend.annotation()),
        ("backend-v6-data", &data),
        ("public-ipv6", endpoint),
    ]
    .into_iter()
    .map(|(k, v)| (format!("{PREFIX}{k}"), v.to_string()))
    .collect();
    let node: Node = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": "flannel-v6", "annotations": ann},
        "spec": {"podCIDR": cidr, "podCIDRs": [cidr]}
    }))
    .expect("node fixture is valid");
    let api: Api<Node> = Api::all(lab.client());
    api.create(&PostParams::default(), &node)
        .await
        .expect("create Node flannel-v6");
    let mac = if backend == DualBackend::Vxlan {
        mac
    } else {
        ""
    };
    wait_kernel_of(lab, "node-1", true, "the flannel IPv6-only peer", |k| {
        has_dual_peer(k, backend, true, cidr, endpoint, mac)
    })
    .await;
}

async fn ipv6_only_cluster_works(backend: DualBackend) {
    let root = RootNs::capture();
    let lab = ipv6_only_lab(3, backend).await;
    let ips = three_pods(&lab).await;
    assert_all_pairs_talk(&lab, &ips).await;
    let nodes = assert_nodes(&lab, backend).await;
    assert_subnet_env(&lab, backend, &nodes[0].pod_cidrs[0]);
    assert_no_ipv4_overlay(&lab, backend).await;
    assert_ipv6_kernel(&lab, backend, &nodes).await;
    if backend == DualBackend::Wireguard {
        assert_wireguard_v6_peers(&lab, &nodes);
    } else {
        flannel_ipv6_only_peer_is_programmed(&lab, backend).await;
    }
    // A closed port on a remote pod is refused, not silently dropped.
    let closed = probe_json(&lab, "a", "tcp", &target(ips[1], 9999)).await;
    assert_eq!(closed["ok"], json!(false), "closed remote port: {closed}");
    let seen = remote_node_sees(&lab, "a").await;
    let node_1: IpAddr = underlay_v6(1).parse().expect("ip");
    assert_eq!(
        seen, node_1,
        "pod -> node-2 is masqueraded to node-1's IPv6 address"
    );

    teardown(lab).await;
    root.assert_unchanged();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vxlan_ipv6_only_cluster() {
    ipv6_only_cluster_works(DualBackend::Vxlan).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_gw_ipv6_only_cluster() {
    ipv6_only_cluster_works(DualBackend::HostGw).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wireguard_ipv6_only_cluster() {
    ipv6_only_cluster_works(DualBackend::Wireguard).await;
}
