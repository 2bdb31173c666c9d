//! The pure plan of a dual-stack cluster (10.42.0.0/16 + fd42::/56, nodes
//! on 172.30.0.0/24 + fd30::/64, as in the dual-stack lab): the exact
//! kernel objects per family, each family standing alone, and an IPv4-only
//! endpoint change.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::NodeSpec;
use kube::api::ObjectMeta;

use super::*;
use crate::overlay::annotations as ann;
use crate::overlay::state::{self, FdbSpec, NeighbourSpec, RouteSpec, VxlanObjects};
use crate::overlay::wireguard::key::WgKey;
use crate::overlay::wireguard::{self, WireguardData};

const CLUSTER: [&str; 2] = ["10.42.0.0/16", "fd42::/56"];
const PUBLIC_IPV6_FIELD: &str = "metadata.annotations[flannel.alpha.coreos.com/public-ipv6]";
const PUBLIC_IP_FIELD: &str = "metadata.annotations[flannel.alpha.coreos.com/public-ip]";

fn net(s: &str) -> IpNet {
    s.parse().expect("test literal")
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test literal")
}

fn mac(s: &str) -> MacAddr {
    s.parse().expect("test literal")
}

fn v4_mac(i: u8) -> String {
    format!("0e:00:00:00:04:0{i}")
}

fn v6_mac(i: u8) -> String {
    format!("0e:00:00:00:06:0{i}")
}

fn wg_key(i: u8) -> WgKey {
    WgKey([i; 32])
}

/// Node `node-<i>`: pod CIDRs 10.42.<i-1>.0/24 and fd42:0:0:<i-1>::/64,
/// underlay 172.30.0.1<i> and fd30::1<i>, every annotation of `backend`
/// for both families, as flannel writes them.
fn dual_node(i: u8, backend: Backend) -> Node {
    let j = i - 1;
    let (v4, v6) = match backend {
        Backend::Vxlan => (
            format!(r#"{{"VNI":1,"VtepMAC":"{}"}}"#, v4_mac(i)),
            format!(r#"{{"VNI":1,"VtepMAC":"{}"}}"#, v6_mac(i)),
        ),
        Backend::HostGw => ("null".to_string(), "null".to_string()),
        Backend::Wireguard => {
            let key = wg_key(i).to_base64();
            (
                format!(r#"{{"PublicKey":"{key}","Port":51820}}"#),
                format!(r#"{{"PublicKey":"{key}","Port":51821}}"#),
            )
        }
    };
    let annotations: BTreeMap<String, String> = [
        (ann::KUBE_SUBNET_MANAGER, "true".to_string()),
        (ann::BACKEND_TYPE, backend.annotation_type().to_string()),
        (ann::BACKEND_DATA, v4),
        (ann::BACKEND_V6_DATA, v6),
        (ann::PUBLIC_IP, format!("172.30.0.1{i}")),
        (ann::PUBLIC_IPV6, format!("fd30::1{i}")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let cidrs = vec![format!("10.42.{j}.0/24"), format!("fd42:0:0:{j}::/64")];
    Node {
        metadata: ObjectMeta {
            name: Some(format!("node-{i}")),
            annotations: Some(annotations),
            ..ObjectMeta::default()
        },
        spec: Some(NodeSpec {
            pod_cidr: Some(cidrs[0].clone()),
            pod_cidrs: Some(cidrs),
            ..NodeSpec::default()
        }),
        ..Node::default()
    }
}

fn with(mut n: Node, key: &str, value: Option<&str>) -> Node {
    let annotations = n.metadata.annotations.get_or_insert_with(BTreeMap::new);
    match value {
        Some(v) => annotations.insert(key.to_string(), v.to_string()),
        None => annotations.remove(key),
    };
    n
}

fn local() -> LocalNode {
    LocalNode {
        name: "node-1".into(),
        pod_cidrs: vec![net("10.42.0.0/24"), net("fd42::/64")],
        public_ipv4: Some("172.30.0.11".parse().expect("ip")),
        public_ipv6: Some("fd30::11".parse().expect("ip")),
    }
}

fn run(backend: Backend, nodes: &[Node]) -> DesiredOverlay {
    let local = local();
    let cluster: Vec<IpNet> = CLUSTER.iter().map(|c| net(c)).collect();
    let macs = [mac(&v4_mac(1)), mac(&v6_mac(1))];
    let input = PlanInput {
        local: &local,
        backend,
        cluster_cidrs: &cluster,
        local_vtep_macs: &macs,
        local_wg_key: Some(wg_key(1)),
    };
    plan(&input, nodes)
}

fn three(backend: Backend) -> Vec<Node> {
    (1..=3).map(|i| dual_node(i, backend)).collect()
}

fn skipped(d: &DesiredOverlay) -> Vec<(&str, &str, SkipKind)> {
    d.skipped
        .iter()
        .map(|s| (s.name.as_str(), s.field.as_str(), s.kind))
        .collect()
}

/// The VXLAN objects a peer `i` needs in one family, as flannel programs them.
fn vxlan_peer(subnet: &str, gw: &str, vtep: &str, endpoint: &str) -> VxlanObjects {
    VxlanObjects {
        neighbours: [NeighbourSpec {
            ip: ip(gw),
            mac: mac(vtep),
        }]
        .into(),
        fdb: [FdbSpec {
            mac: mac(vtep),
            dst: ip(endpoint),
        }]
        .into(),
        routes: [RouteSpec {
            dst: net(subnet),
            gateway: ip(gw),
            onlink: true,
        }]
        .into(),
    }
}

fn merged(parts: &[VxlanObjects]) -> VxlanObjects {
    let mut out = VxlanObjects::default();
    for p in parts {
        out.neighbours.extend(p.neighbours.iter().copied());
        out.fdb.extend(p.fdb.iter().copied());
        out.routes.extend(p.routes.iter().copied());
    }
    out
}

#[test]
fn vxlan_dual_stack_objects_are_exact_per_family() {
    let d = run(Backend::Vxlan, &three(Backend::Vxlan));
    assert!(d.skipped.is_empty(), "{:?}", d.skipped);
    assert_eq!(d.peers.len(), 2);
    let v4 = merged(&[
        vxlan_peer("10.42.1.0/24", "10.42.1.0", &v4_mac(2), "172.30.0.12"),
        vxlan_peer("10.42.2.0/24", "10.42.2.0", &v4_mac(3), "172.30.0.13"),
    ]);
    let v6 = merged(&[
        vxlan_peer("fd42:0:0:1::/64", "fd42:0:0:1::", &v6_mac(2), "fd30::12"),
        vxlan_peer("fd42:0:0:2::/64", "fd42:0:0:2::", &v6_mac(3), "fd30::13"),
    ]);
    assert_eq!(state::vxlan_objects(&d.peers, false), v4);
    assert_eq!(state::vxlan_objects(&d.peers, true), v6);
}

#[test]
fn host_gw_dual_stack_routes_go_via_each_familys_endpoint() {
    let d = run(Backend::HostGw, &three(Backend::HostGw));
    assert!(d.skipped.is_empty(), "{:?}", d.skipped);
    let route = |dst: &str, gw: &str| RouteSpec {
        dst: net(dst),
        gateway: ip(gw),
        onlink: false,
    };
    let v4: BTreeSet<RouteSpec> = [
        route("10.42.1.0/24", "172.30.0.12"),
        route("10.42.2.0/24", "172.30.0.13"),
    ]
    .into();
    let v6: BTreeSet<RouteSpec> = [
        route("fd42:0:0:1::/64", "fd30::12"),
        route("fd42:0:0:2::/64", "fd30::13"),
    ]
    .into();
    assert_eq!(state::host_gw_routes(&d.peers, false), v4);
    assert_eq!(state::host_gw_routes(&d.peers, true), v6);
}

#[test]
fn wireguard_dual_stack_peers_use_port_51821_and_bracketed_endpoints() {
    let d = run(Backend::Wireguard, &three(Backend::Wireguard));
    assert!(d.skipped.is_empty(), "{:?}", d.skipped);
    assert_eq!(
        d.peers[0].families[1].wireguard,
        Some(WireguardData {
            public_key: wg_key(2),
            port: Some(51821)
        })
    );
    let show = |v6: bool| -> Vec<String> {
        wireguard::desired_peers(&d.peers, v6)
            .into_iter()
            .map(|(key, p)| {
                let endpoint = p.endpoint.map(|e| e.to_string()).unwrap_or_default();
                let allowed: Vec<String> = p.allowed_ips.iter().map(|n| n.to_string()).collect();
                format!("{} {endpoint} {}", key.0[0], allowed.join(","))
            })
            .collect()
    };
    assert_eq!(
        show(false),
        vec![
            "2 172.30.0.12:51820 10.42.1.0/24",
            "3 172.30.0.13:51820 10.42.2.0/24"
        ]
    );
    assert_eq!(
        show(true),
        vec![
            "2 [fd30::12]:51821 fd42:0:0:1::/64",
            "3 [fd30::13]:51821 fd42:0:0:2::/64"
        ]
    );
}

#[test]
fn a_node_with_only_ipv4_annotations_gets_only_ipv4_objects() {
    let v4_only = with(
        with(dual_node(2, Backend::Vxlan), ann::PUBLIC_IPV6, None),
        ann::BACKEND_V6_DATA,
        None,
    );
    let d = run(Backend::Vxlan, &[v4_only, dual_node(3, Backend::Vxlan)]);
    assert_eq!(d.peers.len(), 2);
    assert_eq!(d.peers[0].families.len(), 1, "{:?}", d.peers[0]);
    assert_eq!(d.peers[0].families[0].subnet, net("10.42.1.0/24"));
    assert_eq!(
        skipped(&d),
        vec![(
            "node-2",
            PUBLIC_IPV6_FIELD,
            SkipKind::InvalidFamily { v6: true }
        )]
    );
    let v6 = state::vxlan_objects(&d.peers, true);
    assert_eq!(
        v6,
        vxlan_peer("fd42:0:0:2::/64", "fd42:0:0:2::", &v6_mac(3), "fd30::13")
    );
    assert_eq!(state::vxlan_objects(&d.peers, false).routes.len(), 2);
}

#[test]
fn a_node_with_only_ipv6_annotations_gets_only_ipv6_objects() {
    let v6_only = with(
        with(dual_node(2, Backend::HostGw), ann::PUBLIC_IP, None),
        ann::BACKEND_DATA,
        None,
    );
    let d = run(Backend::HostGw, &[v6_only]);
    assert_eq!(d.peers.len(), 1);
    assert_eq!(
        state::host_gw_routes(&d.peers, true),
        [RouteSpec {
            dst: net("fd42:0:0:1::/64"),
            gateway: ip("fd30::12"),
            onlink: false
        }]
        .into()
    );
    assert!(state::host_gw_routes(&d.peers, false).is_empty());
    assert_eq!(
        skipped(&d),
        vec![(
            "node-2",
            PUBLIC_IP_FIELD,
            SkipKind::InvalidFamily { v6: false }
        )]
    );
}

#[test]
fn a_node_unusable_in_both_families_is_skipped_naming_both_fields() {
    let neither = with(
        with(
            dual_node(2, Backend::Vxlan),
            ann::PUBLIC_IP,
            Some("fd30::12"),
        ),
        ann::PUBLIC_IPV6,
        Some("172.30.0.12"),
    );
    let d = run(Backend::Vxlan, &[neither]);
    assert!(d.peers.is_empty(), "{:?}", d.peers);
    assert_eq!(
        skipped(&d),
        vec![
            ("node-2", PUBLIC_IP_FIELD, SkipKind::Invalid),
            ("node-2", PUBLIC_IPV6_FIELD, SkipKind::Invalid),
        ]
    );
}

#[test]
fn an_ipv6_pod_cidr_outside_the_cluster_leaves_only_ipv4() {
    let mut outside = dual_node(2, Backend::Vxlan);
    outside.spec.as_mut().expect("spec").pod_cidrs =
        Some(vec!["10.42.1.0/24".into(), "fd99::/64".into()]);
    let d = run(Backend::Vxlan, &[outside]);
    assert_eq!(d.peers.len(), 1);
    assert_eq!(d.peers[0].families.len(), 1);
    assert_eq!(d.skipped.len(), 1, "{:?}", d.skipped);
    assert_eq!(d.skipped[0].field, "spec.podCIDRs");
    assert_eq!(d.skipped[0].kind, SkipKind::InvalidFamily { v6: true });
    assert!(
        d.skipped[0].reason.contains("fd99::/64"),
        "{}",
        d.skipped[0].reason
    );
}

/// flannel drops an update whose only change is the IPv4 public IP of a
/// dual-stack node (flannel.md §1.2); the plan is computed from the whole
/// Node each pass, so exactly the IPv4 FDB entry (VXLAN) or route
/// (host-gw) changes and nothing of IPv6 does.
#[test]
fn an_ipv4_only_public_ip_change_moves_exactly_the_ipv4_fdb_entry() {
    let before = run(Backend::Vxlan, &three(Backend::Vxlan));
    let moved = with(
        dual_node(2, Backend::Vxlan),
        ann::PUBLIC_IP,
        Some("172.30.0.99"),
    );
    let after = run(
        Backend::Vxlan,
        &[
            moved,
            dual_node(1, Backend::Vxlan),
            dual_node(3, Backend::Vxlan),
        ],
    );
    let (old4, new4) = (
        state::vxlan_objects(&before.peers, false),
        state::vxlan_objects(&after.peers, false),
    );
    let fdb = state::diff(&new4.fdb, &old4.fdb, |f| f.mac);
    assert_eq!(
        fdb.write,
        vec![FdbSpec {
            mac: mac(&v4_mac(2)),
            dst: ip("172.30.0.99")
        }]
    );
    assert!(fdb.remove.is_empty());
    assert_eq!(new4.neighbours, old4.neighbours);
    assert_eq!(new4.routes, old4.routes);
    assert_eq!(
        state::vxlan_objects(&before.peers, true),
        state::vxlan_objects(&after.peers, true)
    );
}

#[test]
fn an_ipv4_only_public_ip_change_moves_exactly_the_ipv4_host_gw_route() {
    let before = run(Backend::HostGw, &three(Backend::HostGw));
    let moved = with(
        dual_node(2, Backend::HostGw),
        ann::PUBLIC_IP,
        Some("172.30.0.99"),
    );
    let after = run(Backend::HostGw, &[moved, dual_node(3, Backend::HostGw)]);
    let routes = state::diff(
        &state::host_gw_routes(&after.peers, false),
        &state::host_gw_routes(&before.peers, false),
        |r| r.dst,
    );
    assert_eq!(
        routes.write,
        vec![RouteSpec {
            dst: net("10.42.1.0/24"),
            gateway: ip("172.30.0.99"),
            onlink: false
        }]
    );
    assert!(routes.remove.is_empty());
    assert_eq!(
        state::host_gw_routes(&before.peers, true),
        state::host_gw_routes(&after.peers, true)
    );
}
