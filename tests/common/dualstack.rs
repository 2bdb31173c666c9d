//! Helpers of the dual-stack overlay tests: a dual-stack lab per backend
//! (IPv6 underlay fd30::/64, cluster 10.42.0.0/16 + fd42::/56), pods'
//! addresses per family, and the annotations a dual-stack flannel node
//! publishes.

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, PostParams};
use lab::{Lab, LabConfig};
use serde_json::{Value, json};

use super::overlay::PREFIX;
use super::{WAIT, require_root};

/// The backends, as the single-stack overlay tests name them.
pub use super::overlay::Backend as DualBackend;

/// A dual-stack lab whose nodenets run `backend`.
pub async fn dual_lab(nodes: usize, backend: DualBackend) -> Lab {
    dual_lab_with(nodes, backend, &[]).await
}

/// Same, with more `nodenet run` arguments (e.g. `--flannel-ipv6-masq`).
pub async fn dual_lab_with(nodes: usize, backend: DualBackend, extra: &[&str]) -> Lab {
    require_root();
    let mut config = LabConfig::from_target_dir(nodes)
        .expect("lab binaries (run cargo build --workspace --bins first)")
        .with_dual_stack();
    config.nodenet_args = backend.nodenet_args();
    config
        .nodenet_args
        .extend(extra.iter().map(|a| a.to_string()));
    Lab::up(config).await.expect("dual-stack lab comes up")
}

/// A pod's (IPv4, IPv6) addresses from status.podIPs; panics unless it
/// has exactly one of each.
pub fn pod_ips_dual(pod: &Pod) -> (IpAddr, IpAddr) {
    let ips: Vec<IpAddr> = pod
        .status
        .as_ref()
        .and_then(|s| s.pod_ips.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|p| p.ip.parse().ok())
        .collect();
    match ips[..] {
        [v4 @ IpAddr::V4(_), v6 @ IpAddr::V6(_)] => (v4, v6),
        _ => panic!(
            "pod {:?} should have one IPv4 and one IPv6 address, has {ips:?}",
            pod.metadata.name
        ),
    }
}

/// `HOST:PORT` with brackets around an IPv6 host.
pub fn target(ip: IpAddr, port: u16) -> String {
    std::net::SocketAddr::new(ip, port).to_string()
}

/// The flannel annotations of a dual-stack node, short keys; `v4`/`v6`
/// give (public IP, backend data) of a family, `None` leaves the family's
/// annotations out.
pub fn dual_annotations(
    backend: DualBackend,
    v4: Option<(&str, &str)>,
    v6: Option<(&str, &str)>,
) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = [
        ("kube-subnet-manager", "true"),
        ("backend-type", backend.annotation()),
    ]
    .into_iter()
    .map(|(k, v)| (format!("{PREFIX}{k}"), v.to_string()))
    .collect();
    let families = [
        (v4, "public-ip", "backend-data"),
        (v6, "public-ipv6", "backend-v6-data"),
    ];
    for (family, ip_key, data_key) in families {
        if let Some((ip, data)) = family {
            out.insert(format!("{PREFIX}{ip_key}"), ip.to_string());
            out.insert(format!("{PREFIX}{data_key}"), data.to_string());
        }
    }
    out
}

/// VXLAN backend data with a VTEP MAC, as flannel writes it.
pub fn vxlan_data(mac: &str) -> String {
    format!(r#"{{"VNI":1,"VtepMAC":"{mac}"}}"#)
}

/// Creates a Node no daemon runs on, with both podCIDRs and `ann`.
pub async fn create_dual_fake_node(
    lab: &Lab,
    name: &str,
    cidrs: [&str; 2],
    ann: BTreeMap<String, String>,
) {
    let node: Node = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "annotations": ann},
        "spec": {"podCIDR": cidrs[0], "podCIDRs": cidrs}
    }))
    .expect("node fixture is valid");
    let api: Api<Node> = Api::all(lab.client());
    api.create(&PostParams::default(), &node)
        .await
        .unwrap_or_else(|e| panic!("create Node {name}: {e}"));
}

/// Pods a, b, c on node-1..3, each serving TCP 8080 and UDP 8081.
pub async fn three_serving_pods(lab: &Lab) -> Vec<Pod> {
    let serve = ["serve", "--tcp", "8080", "--udp", "8081"];
    let mut pods = Vec::new();
    for (pod, node) in [("a", "node-1"), ("b", "node-2"), ("c", "node-3")] {
        pods.push(
            super::create_pod(
                lab,
                super::workload_pod(pod, node, &serve, serde_json::json!([])),
            )
            .await,
        );
    }
    pods
}

/// flannel-v6.1 on node-1: VNI 1, UDP 8472 from its IPv6 address,
/// learning off, MTU 1500 - 70; its `ip -j -d link` object.
pub async fn assert_vxlan_v6_device(lab: &Lab) -> Value {
    let argv = ["ip", "-j", "-d", "link", "show", "flannel-v6.1"];
    let out = lab
        .exec_on_node("node-1", &argv, super::PROBE)
        .await
        .expect("ip link");
    let links: Value = serde_json::from_slice(&out.stdout).expect("ip -j link");
    let link = links[0].clone();
    let data = &link["linkinfo"]["info_data"];
    assert_eq!(link["linkinfo"]["info_kind"], "vxlan", "{link}");
    assert_eq!(data["id"], 1, "{data}");
    assert_eq!(data["port"], 8472, "{data}");
    assert_eq!(data["local6"], "fd30::11", "{data}");
    assert_eq!(data["learning"], false, "{data}");
    assert_eq!(link["mtu"], 1430, "{link}");
    link
}

/// A Node's flannel annotations, keyed without the prefix.
pub fn flannel_annotations(node: &Node) -> BTreeMap<String, String> {
    let annotations = node.metadata.annotations.clone().unwrap_or_default();
    annotations
        .into_iter()
        .filter_map(|(k, v)| Some((k.strip_prefix(PREFIX)?.to_string(), v)))
        .collect()
}

/// The VTEP MAC of a VXLAN `backend-data`.
pub fn mac_of(data: &str) -> String {
    data_json(data)["VtepMAC"]
        .as_str()
        .unwrap_or_else(|| panic!("no VtepMAC in {data}"))
        .to_string()
}

/// A real dual-stack lab node as its peers see it, once its daemon
/// annotated it: the flannel annotations (short keys) and spec.podCIDRs.
pub async fn dual_peer(lab: &Lab, name: &str) -> (BTreeMap<String, String>, Vec<String>) {
    let api: Api<Node> = Api::all(lab.client());
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let node = api.get(name).await.expect("get Node");
        let ann = flannel_annotations(&node);
        let cidrs = node.spec.and_then(|s| s.pod_cidrs).unwrap_or_default();
        if ann.contains_key("public-ipv6") && ann.contains_key("backend-v6-data") {
            return (ann, cidrs);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "Node {name} has no IPv6 flannel annotations after {WAIT:?}: {ann:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// Parses a backend-data annotation.
pub fn data_json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("backend data {text:?}: {e}"))
}

/// Whether one family's overlay of a node holds the peer: for host-gw the
/// route via its endpoint on eth0; for VXLAN the onlink route via the
/// subnet's network address on that family's device, the neighbour and
/// the FDB entry.
pub fn has_dual_peer(
    k: &super::overlay::Kernel,
    backend: DualBackend,
    v6: bool,
    subnet: &str,
    public_ip: &str,
    mac: &str,
) -> bool {
    let gw = subnet.split('/').next().unwrap_or_default();
    let device = if v6 { "flannel-v6.1" } else { "flannel.1" };
    match backend {
        DualBackend::HostGw => k
            .route(subnet)
            .is_some_and(|r| r.gateway.as_deref() == Some(public_ip) && r.dev == "eth0"),
        DualBackend::Vxlan => {
            k.route(subnet)
                .is_some_and(|r| r.gateway.as_deref() == Some(gw) && r.dev == device && r.onlink)
                && k.neighbours.contains(&(gw.to_string(), mac.to_string()))
                && k.fdb.contains(&(mac.to_string(), public_ip.to_string()))
        }
        DualBackend::Wireguard => panic!("WireGuard peers are not kernel routes"),
    }
}

/// Asks a user-space WireGuard device for its state over its UAPI socket
/// (`get=1`); the `key=value` lines of the answer.
pub fn wireguard_get(socket: &std::path::Path) -> Vec<(String, String)> {
    use std::io::{Read, Write};
    let mut stream = std::os::unix::net::UnixStream::connect(socket)
        .unwrap_or_else(|e| panic!("connect {}: {e}", socket.display()));
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .expect("socket timeout");
    stream.write_all(b"get=1\n\n").expect("send get=1");
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    while !answer.ends_with(b"\n\n") {
        let n = stream.read(&mut buf).expect("read UAPI answer");
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&answer)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}
