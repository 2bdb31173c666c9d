use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::NodeSpec;
use kube::api::ObjectMeta;

use super::*;
use crate::overlay::annotations as ann;
use crate::overlay::state::{self, FdbSpec, NeighbourSpec, RouteSpec};

fn net(s: &str) -> IpNet {
    s.parse().expect("test literal")
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test literal")
}

fn mac(s: &str) -> MacAddr {
    s.parse().expect("test literal")
}

fn node(name: &str, pod_cidr: &str, annotations: &[(&str, &str)]) -> Node {
    Node {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            annotations: Some(
                annotations
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect::<BTreeMap<_, _>>(),
            ),
            ..ObjectMeta::default()
        },
        spec: Some(NodeSpec {
            pod_cidr: Some(pod_cidr.to_string()),
            ..NodeSpec::default()
        }),
        ..Node::default()
    }
}

fn vxlan_node(name: &str, pod_cidr: &str, public_ip: &str, vtep: &str) -> Node {
    let data = format!(r#"{{"VNI":1,"VtepMAC":"{vtep}"}}"#);
    node(
        name,
        pod_cidr,
        &[
            (ann::KUBE_SUBNET_MANAGER, "true"),
            (ann::BACKEND_TYPE, "vxlan"),
            (ann::BACKEND_DATA, &data),
            (ann::PUBLIC_IP, public_ip),
        ],
    )
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
        pod_cidrs: vec![net("10.42.0.0/24")],
        public_ipv4: Some("192.168.50.1".parse().expect("ip")),
        public_ipv6: None,
    }
}

fn run(backend: Backend, nodes: &[Node]) -> DesiredOverlay {
    let local = local();
    let cluster = [net("10.42.0.0/16")];
    let macs = [mac("0e:00:00:00:00:01")];
    let input = PlanInput {
        local: &local,
        backend,
        cluster_cidrs: &cluster,
        local_vtep_macs: &macs,
        local_wg_key: None,
    };
    plan(&input, nodes)
}

fn names(d: &DesiredOverlay) -> Vec<&str> {
    d.peers.iter().map(|p| p.name.as_str()).collect()
}

fn skipped(d: &DesiredOverlay) -> Vec<(&str, &str, SkipKind)> {
    d.skipped
        .iter()
        .map(|s| (s.name.as_str(), s.field.as_str(), s.kind))
        .collect()
}

fn three_nodes() -> Vec<Node> {
    vec![
        vxlan_node(
            "node-3",
            "10.42.2.0/24",
            "192.168.50.3",
            "0e:00:00:00:00:03",
        ),
        vxlan_node(
            "node-1",
            "10.42.0.0/24",
            "192.168.50.1",
            "0e:00:00:00:00:01",
        ),
        vxlan_node(
            "node-2",
            "10.42.1.0/24",
            "192.168.50.2",
            "0e:00:00:00:00:02",
        ),
    ]
}

#[test]
fn peers_are_all_other_nodes_sorted() {
    let d = run(Backend::Vxlan, &three_nodes());
    assert_eq!(names(&d), vec!["node-2", "node-3"]);
    assert!(d.skipped.is_empty(), "{:?}", d.skipped);
    assert_eq!(
        d.peers[0].families,
        vec![PeerFamily {
            subnet: net("10.42.1.0/24"),
            public_ip: ip("192.168.50.2"),
            vtep_mac: Some(mac("0e:00:00:00:00:02")),
            wireguard: None,
        }]
    );
}

#[test]
fn vxlan_objects_are_exactly_one_of_each_per_peer() {
    let d = run(Backend::Vxlan, &three_nodes());
    let objects = state::vxlan_objects(&d.peers, false);
    let neighbours: Vec<NeighbourSpec> = objects.neighbours.into_iter().collect();
    assert_eq!(
        neighbours,
        vec![
            NeighbourSpec {
                ip: ip("10.42.1.0"),
                mac: mac("0e:00:00:00:00:02")
            },
            NeighbourSpec {
                ip: ip("10.42.2.0"),
                mac: mac("0e:00:00:00:00:03")
            },
        ]
    );
    let fdb: Vec<FdbSpec> = objects.fdb.into_iter().collect();
    assert_eq!(
        fdb,
        vec![
            FdbSpec {
                mac: mac("0e:00:00:00:00:02"),
                dst: ip("192.168.50.2")
            },
            FdbSpec {
                mac: mac("0e:00:00:00:00:03"),
                dst: ip("192.168.50.3")
            },
        ]
    );
    let routes: Vec<RouteSpec> = objects.routes.into_iter().collect();
    assert_eq!(
        routes,
        vec![
            RouteSpec {
                dst: net("10.42.1.0/24"),
                gateway: ip("10.42.1.0"),
                onlink: true
            },
            RouteSpec {
                dst: net("10.42.2.0/24"),
                gateway: ip("10.42.2.0"),
                onlink: true
            },
        ]
    );
    assert_eq!(state::vxlan_objects(&d.peers, true), Default::default());
}

#[test]
fn host_gw_routes_go_via_public_ips() {
    let nodes: Vec<Node> = three_nodes()
        .into_iter()
        .map(|n| with(n, ann::BACKEND_TYPE, Some("host-gw")))
        .map(|n| with(n, ann::BACKEND_DATA, Some("null")))
        .collect();
    let d = run(Backend::HostGw, &nodes);
    assert_eq!(names(&d), vec!["node-2", "node-3"]);
    assert_eq!(d.peers[0].families[0].vtep_mac, None);
    let routes: Vec<RouteSpec> = state::host_gw_routes(&d.peers, false).into_iter().collect();
    assert_eq!(
        routes,
        vec![
            RouteSpec {
                dst: net("10.42.1.0/24"),
                gateway: ip("192.168.50.2"),
                onlink: false
            },
            RouteSpec {
                dst: net("10.42.2.0/24"),
                gateway: ip("192.168.50.3"),
                onlink: false
            },
        ]
    );
}

#[test]
fn unmanaged_and_other_backend_nodes_are_skipped_by_kind() {
    let nodes = vec![
        with(
            vxlan_node("a", "10.42.5.0/24", "192.168.50.5", "0e:00:00:00:00:05"),
            ann::KUBE_SUBNET_MANAGER,
            None,
        ),
        with(
            vxlan_node("b", "10.42.6.0/24", "192.168.50.6", "0e:00:00:00:00:06"),
            ann::KUBE_SUBNET_MANAGER,
            Some("True"),
        ),
        with(
            vxlan_node("c", "10.42.7.0/24", "192.168.50.7", "0e:00:00:00:00:07"),
            ann::BACKEND_TYPE,
            Some("wireguard"),
        ),
        vxlan_node("d", "10.42.8.0/24", "192.168.50.8", "0e:00:00:00:00:08"),
    ];
    let d = run(Backend::Vxlan, &nodes);
    assert_eq!(names(&d), vec!["d"]);
    let ksm = "metadata.annotations[flannel.alpha.coreos.com/kube-subnet-manager]";
    let bt = "metadata.annotations[flannel.alpha.coreos.com/backend-type]";
    assert_eq!(
        skipped(&d),
        vec![
            ("a", ksm, SkipKind::NotManaged),
            ("b", ksm, SkipKind::NotManaged),
            ("c", bt, SkipKind::OtherBackend),
        ]
    );
}

#[test]
fn malformed_annotations_skip_only_that_node() {
    let good = vxlan_node("z", "10.42.9.0/24", "192.168.50.9", "0e:00:00:00:00:09");
    let base = |name: &str, n: u8| {
        vxlan_node(
            name,
            &format!("10.42.{n}.0/24"),
            &format!("192.168.50.{n}"),
            &format!("0e:00:00:00:01:{n:02x}"),
        )
    };
    let nodes = vec![
        with(base("a", 10), ann::PUBLIC_IP, None),
        with(base("b", 11), ann::PUBLIC_IP, Some("fd00::1")),
        with(base("c", 12), ann::PUBLIC_IP, Some("not-an-ip")),
        with(base("d", 13), ann::BACKEND_DATA, Some("{\"VNI\":1}")),
        with(base("e", 14), ann::BACKEND_DATA, Some("null")),
        with(
            base("f", 15),
            ann::BACKEND_DATA,
            Some("{\"VNI\":2,\"VtepMAC\":\"0e:00:00:00:00:0f\"}"),
        ),
        with(base("g", 16), ann::BACKEND_DATA, None),
        good,
    ];
    let d = run(Backend::Vxlan, &nodes);
    assert_eq!(names(&d), vec!["z"]);
    let ip_field = "metadata.annotations[flannel.alpha.coreos.com/public-ip]";
    let data_field = "metadata.annotations[flannel.alpha.coreos.com/backend-data]";
    let want: Vec<(&str, &str, SkipKind)> = vec![
        ("a", ip_field, SkipKind::Invalid),
        ("b", ip_field, SkipKind::Invalid),
        ("c", ip_field, SkipKind::Invalid),
        ("d", data_field, SkipKind::Invalid),
        ("e", data_field, SkipKind::Invalid),
        ("f", data_field, SkipKind::Invalid),
        ("g", data_field, SkipKind::Invalid),
    ];
    assert_eq!(skipped(&d), want);
    assert!(
        d.skipped[5].reason.contains("VNI 2"),
        "{}",
        d.skipped[5].reason
    );
    assert!(
        d.skipped[2].reason.contains("not-an-ip"),
        "{}",
        d.skipped[2].reason
    );
}

#[test]
fn bad_pod_cidrs_are_skipped_naming_the_field() {
    let mut missing = vxlan_node("a", "", "192.168.50.10", "0e:00:00:00:01:0a");
    missing.spec = None;
    let nodes = vec![
        missing,
        vxlan_node("b", "10.42.300.0/24", "192.168.50.11", "0e:00:00:00:01:0b"),
        vxlan_node("c", "10.99.0.0/24", "192.168.50.12", "0e:00:00:00:01:0c"),
        vxlan_node("d", "10.42.0.128/25", "192.168.50.13", "0e:00:00:00:01:0d"),
    ];
    let d = run(Backend::Vxlan, &nodes);
    assert!(d.peers.is_empty(), "{:?}", d.peers);
    assert_eq!(
        skipped(&d),
        vec![
            ("a", "spec.podCIDR", SkipKind::Invalid),
            ("b", "spec.podCIDR", SkipKind::Invalid),
            ("c", "spec.podCIDRs", SkipKind::Invalid),
            ("d", "spec.podCIDRs", SkipKind::Invalid),
        ]
    );
    assert!(
        d.skipped[2]
            .reason
            .contains("outside the cluster CIDR 10.42.0.0/16"),
        "{}",
        d.skipped[2].reason
    );
    assert!(
        d.skipped[3]
            .reason
            .contains("this node's pod CIDR 10.42.0.0/24"),
        "{}",
        d.skipped[3].reason
    );
}

#[test]
fn overlapping_peers_keep_the_first_name_whatever_the_order() {
    let x = vxlan_node(
        "node-x",
        "10.42.4.0/24",
        "192.168.50.20",
        "0e:00:00:00:02:01",
    );
    let y = vxlan_node(
        "node-y",
        "10.42.4.0/23",
        "192.168.50.21",
        "0e:00:00:00:02:02",
    );
    for nodes in [vec![x.clone(), y.clone()], vec![y, x]] {
        let d = run(Backend::Vxlan, &nodes);
        assert_eq!(names(&d), vec!["node-x"]);
        assert_eq!(
            skipped(&d),
            vec![("node-y", "spec.podCIDRs", SkipKind::Invalid)]
        );
        assert!(
            d.skipped[0].reason.contains("node node-x"),
            "{}",
            d.skipped[0].reason
        );
    }
}

#[test]
fn duplicate_or_own_vtep_mac_is_refused() {
    let nodes = vec![
        vxlan_node(
            "node-a",
            "10.42.4.0/24",
            "192.168.50.20",
            "0e:00:00:00:02:01",
        ),
        vxlan_node(
            "node-b",
            "10.42.5.0/24",
            "192.168.50.21",
            "0e:00:00:00:02:01",
        ),
        vxlan_node(
            "node-c",
            "10.42.6.0/24",
            "192.168.50.22",
            "0e:00:00:00:00:01",
        ),
    ];
    let d = run(Backend::Vxlan, &nodes);
    assert_eq!(names(&d), vec!["node-a"]);
    let data_field = "metadata.annotations[flannel.alpha.coreos.com/backend-data]";
    assert_eq!(
        skipped(&d),
        vec![
            ("node-b", data_field, SkipKind::Invalid),
            ("node-c", data_field, SkipKind::Invalid)
        ]
    );
}

#[test]
fn pod_cidrs_list_wins_and_each_family_stands_alone() {
    let local = LocalNode {
        name: "node-1".into(),
        pod_cidrs: vec![net("10.42.0.0/24"), net("fd42::/64")],
        public_ipv4: Some("192.168.50.1".parse().expect("ip")),
        public_ipv6: Some("fd50::1".parse().expect("ip")),
    };
    let cluster = [net("10.42.0.0/16"), net("fd42::/56")];
    let input = PlanInput {
        local: &local,
        backend: Backend::Vxlan,
        cluster_cidrs: &cluster,
        local_vtep_macs: &[],
        local_wg_key: None,
    };
    let dual = |name: &str, v4: &str, v6: &str| {
        let mut n = vxlan_node(
            name,
            "10.42.250.0/24",
            &format!("192.168.50.{v4}"),
            &format!("0e:00:00:00:04:0{v4}"),
        );
        n.spec.as_mut().expect("spec").pod_cidrs = Some(vec![
            format!("10.42.{v4}.0/24"),
            format!("fd42:0:0:{v6}::/64"),
        ]);
        n
    };
    let full = with(
        with(dual("node-2", "2", "2"), ann::PUBLIC_IPV6, Some("fd50::2")),
        ann::BACKEND_V6_DATA,
        Some(r#"{"VtepMAC":"0e:00:00:00:06:02","VNI":1}"#),
    );
    let no_v6_ip = with(
        dual("node-3", "3", "3"),
        ann::BACKEND_V6_DATA,
        Some(r#"{"VNI":1,"VtepMAC":"0e:00:00:00:06:03"}"#),
    );
    let d = plan(&input, &[full, no_v6_ip]);
    // node-3 lacks public-ipv6: its IPv4 overlay is still programmed.
    assert_eq!(names(&d), vec!["node-2", "node-3"]);
    assert_eq!(
        d.peers[1].families,
        vec![PeerFamily {
            subnet: net("10.42.3.0/24"),
            public_ip: ip("192.168.50.3"),
            vtep_mac: Some(mac("0e:00:00:00:04:03")),
            wireguard: None,
        }]
    );
    assert_eq!(
        d.peers[0].families,
        vec![
            PeerFamily {
                subnet: net("10.42.2.0/24"),
                public_ip: ip("192.168.50.2"),
                vtep_mac: Some(mac("0e:00:00:00:04:02")),
                wireguard: None,
            },
            PeerFamily {
                subnet: net("fd42:0:0:2::/64"),
                public_ip: ip("fd50::2"),
                vtep_mac: Some(mac("0e:00:00:00:06:02")),
                wireguard: None,
            },
        ]
    );
    let v6 = state::vxlan_objects(&d.peers, true);
    assert_eq!(
        v6.routes.into_iter().collect::<Vec<_>>(),
        vec![RouteSpec {
            dst: net("fd42:0:0:2::/64"),
            gateway: ip("fd42:0:0:2::"),
            onlink: true
        }]
    );
    assert_eq!(state::vxlan_objects(&d.peers, false).routes.len(), 2);
    assert_eq!(
        skipped(&d),
        vec![(
            "node-3",
            "metadata.annotations[flannel.alpha.coreos.com/public-ipv6]",
            SkipKind::InvalidFamily { v6: true }
        )]
    );
}

#[test]
fn diff_replaces_by_key_and_removes_the_rest() {
    use std::collections::BTreeSet;
    let n = |ip_: &str, m: &str| NeighbourSpec {
        ip: ip(ip_),
        mac: mac(m),
    };
    let desired: BTreeSet<_> = [
        n("10.42.1.0", "0e:00:00:00:00:02"),
        n("10.42.2.0", "0e:00:00:00:00:03"),
    ]
    .into();
    let current: BTreeSet<_> = [
        n("10.42.1.0", "0e:00:00:00:00:02"),
        n("10.42.2.0", "0e:00:00:00:00:99"),
        n("10.42.9.0", "0e:00:00:00:00:09"),
    ]
    .into();
    let d = state::diff(&desired, &current, |x| x.ip);
    assert_eq!(d.write, vec![n("10.42.2.0", "0e:00:00:00:00:03")]);
    assert_eq!(d.remove, vec![n("10.42.9.0", "0e:00:00:00:00:09")]);
    assert!(state::diff(&desired, &desired, |x| x.ip).is_empty());
}

fn wg_key(n: u8) -> crate::overlay::wireguard::key::WgKey {
    crate::overlay::wireguard::key::WgKey([n; 32])
}

fn wg_node(name: &str, pod_cidr: &str, public_ip: &str, key: u8, port: &str) -> Node {
    let data = format!(r#"{{"PublicKey":"{}"{port}}}"#, wg_key(key).to_base64());
    node(
        name,
        pod_cidr,
        &[
            (ann::KUBE_SUBNET_MANAGER, "true"),
            (ann::BACKEND_TYPE, "wireguard"),
            (ann::BACKEND_DATA, &data),
            (ann::PUBLIC_IP, public_ip),
        ],
    )
}

fn run_wg(nodes: &[Node]) -> DesiredOverlay {
    let local = local();
    let cluster = [net("10.42.0.0/16")];
    let input = PlanInput {
        local: &local,
        backend: Backend::Wireguard,
        cluster_cidrs: &cluster,
        local_vtep_macs: &[],
        local_wg_key: Some(wg_key(1)),
    };
    plan(&input, nodes)
}

#[test]
fn wireguard_peers_carry_key_and_port_and_become_one_uapi_peer_each() {
    use crate::overlay::wireguard::{self, WireguardData};
    let nodes = vec![
        wg_node(
            "node-2",
            "10.42.1.0/24",
            "192.168.50.2",
            2,
            ",\"Port\":51820",
        ),
        wg_node("node-3", "10.42.2.0/24", "192.168.50.3", 3, ""),
        vxlan_node(
            "node-4",
            "10.42.3.0/24",
            "192.168.50.4",
            "0e:00:00:00:00:04",
        ),
    ];
    let d = run_wg(&nodes);
    assert_eq!(names(&d), vec!["node-2", "node-3"]);
    assert_eq!(
        d.peers[0].families,
        vec![PeerFamily {
            subnet: net("10.42.1.0/24"),
            public_ip: ip("192.168.50.2"),
            vtep_mac: None,
            wireguard: Some(WireguardData {
                public_key: wg_key(2),
                port: Some(51820)
            }),
        }]
    );
    let bt = "metadata.annotations[flannel.alpha.coreos.com/backend-type]";
    assert_eq!(skipped(&d), vec![("node-4", bt, SkipKind::OtherBackend)]);
    let uapi = wireguard::desired_peers(&d.peers, false);
    let endpoints: Vec<String> = uapi
        .values()
        .map(|p| format!("{:?} {:?}", p.endpoint, p.allowed_ips))
        .collect();
    assert_eq!(
        endpoints,
        vec![
            "Some(192.168.50.2:51820) {10.42.1.0/24}",
            "Some(192.168.50.3:51820) {10.42.2.0/24}"
        ]
    );
    assert!(wireguard::desired_peers(&d.peers, true).is_empty());
}

#[test]
fn wireguard_bad_data_and_reused_keys_are_refused() {
    let data_field = "metadata.annotations[flannel.alpha.coreos.com/backend-data]";
    let nodes = vec![
        wg_node("node-a", "10.42.4.0/24", "192.168.50.20", 4, ""),
        // Same key as node-a (cloned VM): one peer per key.
        wg_node("node-b", "10.42.5.0/24", "192.168.50.21", 4, ""),
        // Our own key.
        wg_node("node-c", "10.42.6.0/24", "192.168.50.22", 1, ""),
        with(
            wg_node("node-d", "10.42.7.0/24", "192.168.50.23", 7, ""),
            ann::BACKEND_DATA,
            Some(r#"{"PublicKey":"short"}"#),
        ),
        with(
            wg_node("node-e", "10.42.8.0/24", "192.168.50.24", 8, ""),
            ann::BACKEND_DATA,
            Some("null"),
        ),
    ];
    let d = run_wg(&nodes);
    assert_eq!(names(&d), vec!["node-a"]);
    let want: Vec<(&str, &str, SkipKind)> = ["node-b", "node-c", "node-d", "node-e"]
        .into_iter()
        .map(|n| (n, data_field, SkipKind::Invalid))
        .collect();
    assert_eq!(skipped(&d), want);
    assert!(
        d.skipped[0].reason.contains("node node-a"),
        "{}",
        d.skipped[0].reason
    );
    assert!(
        d.skipped[1].reason.contains("own key"),
        "{}",
        d.skipped[1].reason
    );
}
