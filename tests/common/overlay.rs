//! Helpers of the overlay end-to-end tests: labs per backend, fake Node
//! objects carrying flannel annotations, and the kernel state of a node's
//! overlay read back with `ip -j` / `bridge -j` (and, for WireGuard, the
//! device's UAPI socket: [`wireguard`]).

pub mod streams;
pub mod wireguard;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, Node};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use lab::{Lab, LabConfig};
use serde_json::{Value, json};

use self::wireguard::{WgDevice, WgPeer};
use super::{PROBE, ProbeFrom, WAIT, require_root, run_probe};

pub const PREFIX: &str = "flannel.alpha.coreos.com/";
/// The cluster CIDR nodenet runs with (its default).
pub const CLUSTER_CIDR: &str = "10.42.0.0/16";
/// The IPv6 cluster CIDR of a dual-stack lab (`lab::config::DUAL_STACK_CLUSTER_CIDRS`).
pub const CLUSTER_CIDR_V6: &str = "fd42::/56";
/// Ports the test servers listen on.
pub const TCP_PORT: u16 = 8080;
pub const UDP_PORT: u16 = 8081;

/// The overlay backends under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Vxlan,
    HostGw,
    /// `wireguard-native`: the user-space device `flannel-wg`.
    Wireguard,
}

impl Backend {
    /// The `--flannel-backend` value.
    pub fn flag(self) -> &'static str {
        match self {
            Backend::Wireguard => "wireguard-native",
            other => other.annotation(),
        }
    }

    /// The `backend-type` annotation value (flannel writes `wireguard`
    /// for `wireguard-native`, flannel.md §1.1).
    pub fn annotation(self) -> &'static str {
        match self {
            Backend::Vxlan => "vxlan",
            Backend::HostGw => "host-gw",
            Backend::Wireguard => "wireguard",
        }
    }

    /// `nodenet run` arguments selecting it. WireGuard runs in user space
    /// on every kernel (the device and UAPI socket the tests read),
    /// whether or not the kernel has the module.
    pub fn nodenet_args(self) -> Vec<String> {
        let mut args = vec![format!("--flannel-backend={}", self.flag())];
        if self == Backend::Wireguard {
            args.push("--flannel-wireguard-mode=userspace".into());
        }
        args
    }

    /// The device peer routes go through on a lab node (WireGuard: the one
    /// route for the whole cluster CIDR).
    pub fn route_device(self) -> &'static str {
        match self {
            Backend::Vxlan => "flannel.1",
            Backend::HostGw => "eth0",
            Backend::Wireguard => "flannel-wg",
        }
    }
}

/// A lab whose nodenets run `backend`; with `wide_api_range` the API server
/// accepts podCIDRs in 10.42.0.0/15, so a Node can carry one outside
/// nodenet's cluster CIDR 10.42.0.0/16 (real nodes still get 10.42.x.0/24).
pub async fn overlay_lab(nodes: usize, backend: Backend, wide_api_range: bool) -> Lab {
    require_root();
    let mut config = LabConfig::from_target_dir(nodes)
        .expect("lab binaries (run cargo build --workspace --bins first)");
    config.nodenet_args = backend.nodenet_args();
    if wide_api_range {
        config.api.cluster_cidr = "10.42.0.0/15".parse().expect("static CIDR");
    }
    Lab::up(config).await.expect("lab comes up")
}

/// The annotations a flannel node of `backend` publishes; `id` is its
/// VTEP MAC (VXLAN) or public key (WireGuard, base64), unused for host-gw.
pub fn annotations(backend: Backend, public_ip: &str, id: &str) -> BTreeMap<String, String> {
    let data = match backend {
        Backend::Vxlan => format!(r#"{{"VNI":1,"VtepMAC":"{id}"}}"#),
        Backend::HostGw => "null".to_string(),
        Backend::Wireguard => wireguard::data(id, 51820),
    };
    [
        ("kube-subnet-manager", "true".to_string()),
        ("backend-type", backend.annotation().to_string()),
        ("backend-data", data),
        ("public-ip", public_ip.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (format!("{PREFIX}{k}"), v))
    .collect()
}

/// Creates a Node no daemon runs on, with `pod_cidr` and `annotations`.
pub async fn create_fake_node(
    lab: &Lab,
    name: &str,
    pod_cidr: &str,
    ann: BTreeMap<String, String>,
) {
    let node: Node = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "annotations": ann},
        "spec": {"podCIDR": pod_cidr, "podCIDRs": [pod_cidr]}
    }))
    .expect("node fixture is valid");
    let api: Api<Node> = Api::all(lab.client());
    api.create(&PostParams::default(), &node)
        .await
        .unwrap_or_else(|e| panic!("create Node {name}: {e}"));
}

/// Merge-patches annotations (short keys, without the flannel prefix).
pub async fn patch_annotations(lab: &Lab, name: &str, changes: &[(&str, &str)]) {
    let map: serde_json::Map<String, Value> = changes
        .iter()
        .map(|(k, v)| (format!("{PREFIX}{k}"), json!(v)))
        .collect();
    let api: Api<Node> = Api::all(lab.client());
    let patch = json!({"metadata": {"annotations": map}});
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap_or_else(|e| panic!("patch Node {name}: {e}"));
}

pub async fn delete_node(lab: &Lab, name: &str) {
    let api: Api<Node> = Api::all(lab.client());
    api.delete(name, &DeleteParams::default())
        .await
        .unwrap_or_else(|e| panic!("delete Node {name}: {e}"));
}

/// spec.podCIDR of a Node.
pub async fn pod_cidr(lab: &Lab, name: &str) -> String {
    let api: Api<Node> = Api::all(lab.client());
    let node = api.get(name).await.expect("get Node");
    node.spec
        .and_then(|s| s.pod_cidr)
        .unwrap_or_else(|| panic!("Node {name} has no podCIDR"))
}

/// A route of the node's main table, as `ip -j route` shows it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Route {
    pub dst: String,
    pub gateway: Option<String>,
    pub dev: String,
    pub onlink: bool,
}

/// The overlay's kernel objects on one node: routes into the cluster CIDR
/// (except the node's own pod subnet on cni0), permanent neighbours and
/// `self` FDB entries of flannel.1, and the WireGuard device if it runs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Kernel {
    pub routes: Vec<Route>,
    /// (IP, MAC)
    pub neighbours: Vec<(String, String)>,
    /// (MAC, destination)
    pub fdb: Vec<(String, String)>,
    pub has_vxlan_device: bool,
    /// The family's WireGuard device as its UAPI socket reports it.
    pub wireguard: Option<WgDevice>,
}

/// A route as (dst, gateway, dev, onlink), for exact comparisons.
pub type RouteRow = (String, Option<String>, String, bool);

impl Kernel {
    /// Every route as a [`RouteRow`], sorted.
    pub fn route_rows(&self) -> Vec<RouteRow> {
        let mut rows: Vec<RouteRow> = self
            .routes
            .iter()
            .map(|r| (r.dst.clone(), r.gateway.clone(), r.dev.clone(), r.onlink))
            .collect();
        rows.sort();
        rows
    }

    /// The route to `dst`, if any.
    pub fn route(&self, dst: &str) -> Option<&Route> {
        self.routes.iter().find(|r| r.dst == dst)
    }

    /// Routes / neighbours / FDB entries whose key mentions `needle`.
    pub fn count_mentions(&self, needle: &str) -> (usize, usize, usize) {
        (
            self.routes
                .iter()
                .filter(|r| r.dst == needle || r.gateway.as_deref() == Some(needle))
                .count(),
            self.neighbours
                .iter()
                .filter(|(ip, mac)| ip == needle || mac == needle)
                .count(),
            self.fdb
                .iter()
                .filter(|(mac, dst)| mac == needle || dst == needle)
                .count(),
        )
    }

    /// Routes, neighbours, FDB entries and WireGuard peers mentioning
    /// `needle` (an address, a MAC, a subnet, a public key).
    pub fn mentions(&self, needle: &str) -> usize {
        let (routes, neighbours, fdb) = self.count_mentions(needle);
        let peers = self.wg_peers().filter(|p| p.mentions(needle)).count();
        routes + neighbours + fdb + peers
    }

    /// The WireGuard device's peers (none without a device).
    pub fn wg_peers(&self) -> impl Iterator<Item = &WgPeer> {
        self.wireguard.iter().flat_map(|d| &d.peers)
    }

    /// How many remote nodes the overlay of `backend` serves: WireGuard
    /// peers, else routes (one per peer for VXLAN and host-gw).
    pub fn peer_count(&self, backend: Backend) -> usize {
        match backend {
            Backend::Wireguard => self.wg_peers().count(),
            _ => self.routes.len(),
        }
    }
}

async fn json_of(lab: &Lab, node: &str, argv: &[&str]) -> Option<Vec<Value>> {
    let out = lab
        .exec_on_node(node, argv, PROBE)
        .await
        .unwrap_or_else(|e| panic!("{argv:?} on {node}: {e}"));
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let text = if text.trim().is_empty() {
        "[]"
    } else {
        text.trim()
    };
    Some(serde_json::from_str(text).unwrap_or_else(|e| panic!("{argv:?}: bad JSON ({e}): {text}")))
}

fn str_field(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(String::from)
}

fn has_flag(v: &Value, key: &str, flag: &str) -> bool {
    match v.get(key) {
        Some(Value::Array(a)) => a
            .iter()
            .any(|f| f.as_str().is_some_and(|s| s.eq_ignore_ascii_case(flag))),
        Some(Value::String(s)) => s.eq_ignore_ascii_case(flag),
        _ => false,
    }
}

/// Reads the overlay's kernel state of `node`.
pub async fn kernel(lab: &Lab, node: &str) -> Kernel {
    kernel_of(lab, node, false).await
}

/// Reads one family's overlay state of `node`: routes into that family's
/// cluster CIDR (except the node's own pod subnet on cni0, and for IPv6
/// the kernel's own prefix routes of device addresses), permanent
/// neighbours and `self` FDB entries of that family's VXLAN device
/// (`flannel.1` / `flannel-v6.1`).
pub async fn kernel_of(lab: &Lab, node: &str, v6: bool) -> Kernel {
    let (family, cluster, device) = if v6 {
        ("-6", CLUSTER_CIDR_V6, "flannel-v6.1")
    } else {
        ("-4", CLUSTER_CIDR, "flannel.1")
    };
    let cluster: ipnet::IpNet = cluster.parse().expect("static CIDR");
    let routes = json_of(lab, node, &["ip", "-j", family, "route", "show"])
        .await
        .expect("ip route");
    let routes = routes
        .iter()
        .filter(|r| !(v6 && str_field(r, "protocol").as_deref() == Some("kernel")))
        .filter_map(|r| {
            let dst = str_field(r, "dst")?;
            let net: ipnet::IpNet = dst.parse().ok()?;
            let dev = str_field(r, "dev").unwrap_or_default();
            (cluster.contains(&net) && dev != "cni0").then(|| Route {
                dst,
                gateway: str_field(r, "gateway"),
                dev,
                onlink: has_flag(r, "flags", "onlink"),
            })
        })
        .collect();
    let neighbours = json_of(lab, node, &["ip", "-j", "neigh", "show", "dev", device]).await;
    let has_vxlan_device = neighbours.is_some();
    let neighbours = neighbours
        .unwrap_or_default()
        .iter()
        .filter(|n| has_flag(n, "state", "permanent"))
        .filter_map(|n| Some((str_field(n, "dst")?, str_field(n, "lladdr")?)))
        .collect();
    let fdb = json_of(lab, node, &["bridge", "-j", "fdb", "show", "dev", device])
        .await
        .unwrap_or_default()
        .iter()
        .filter(|f| has_flag(f, "flags", "self") && has_flag(f, "state", "permanent"))
        .filter_map(|f| Some((str_field(f, "mac")?, str_field(f, "dst")?)))
        .collect();
    let mut k = Kernel {
        routes,
        neighbours,
        fdb,
        has_vxlan_device,
        wireguard: wireguard::wg_device(lab, node, v6).await,
    };
    k.routes.sort();
    k.neighbours.sort();
    k.fdb.sort();
    k
}

/// The interface index of `device` on `node`, `None` without such a link.
pub async fn link_index(lab: &Lab, node: &str, device: &str) -> Option<u64> {
    let links = json_of(lab, node, &["ip", "-j", "link", "show", "dev", device]).await?;
    links.first()?["ifindex"].as_u64()
}

/// Polls `kernel(node)` until `want` holds; panics naming `what` and the
/// last state after [`WAIT`].
pub async fn wait_kernel(
    lab: &Lab,
    node: &str,
    what: &str,
    want: impl Fn(&Kernel) -> bool,
) -> Kernel {
    wait_kernel_of(lab, node, false, what, want).await
}

/// Polls one family's overlay state of `node` until `want` holds.
pub async fn wait_kernel_of(
    lab: &Lab,
    node: &str,
    v6: bool,
    what: &str,
    want: impl Fn(&Kernel) -> bool,
) -> Kernel {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let k = kernel_of(lab, node, v6).await;
        if want(&k) {
            return k;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{node} (IPv{}): {what} not reached after {WAIT:?}; kernel state: {k:#?}",
            if v6 { 6 } else { 4 }
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// What the overlay of `backend` must hold for one peer: the route to
/// `subnet` via the peer's endpoint (host-gw); or via its VTEP with the
/// neighbour and FDB entry (VXLAN, `id` is the MAC); or the cluster route
/// on flannel-wg and a peer with key `id`, endpoint `public_ip:51820`,
/// `subnet` as its only allowed IP and keepalive 25 (WireGuard).
pub fn has_peer(k: &Kernel, backend: Backend, subnet: &str, public_ip: &str, id: &str) -> bool {
    let gw = subnet.split('/').next().unwrap_or_default();
    match backend {
        Backend::Wireguard => {
            let want = WgPeer::expected(id, public_ip, 51820, subnet);
            has_wireguard_route(k) && k.wg_peers().any(|p| *p == want)
        }
        Backend::HostGw => k
            .route(subnet)
            .is_some_and(|r| r.gateway.as_deref() == Some(public_ip) && r.dev == "eth0"),
        Backend::Vxlan => {
            k.route(subnet).is_some_and(|r| {
                r.gateway.as_deref() == Some(gw) && r.dev == "flannel.1" && r.onlink
            }) && k.neighbours.contains(&(gw.to_string(), id.to_string()))
                && k.fdb.contains(&(id.to_string(), public_ip.to_string()))
        }
    }
}

/// The one route WireGuard needs: the whole cluster CIDR, `scope link` on
/// flannel-wg (the device picks the peer by allowed IPs).
pub fn has_wireguard_route(k: &Kernel) -> bool {
    k.route(CLUSTER_CIDR)
        .is_some_and(|r| r.dev == "flannel-wg" && r.gateway.is_none() && !r.onlink)
}

/// Runs `nodenet-workload probe` in a pod; the parsed JSON report.
pub async fn probe_json(lab: &Lab, pod: &str, proto: &str, target: &str) -> Value {
    report_of(&run_probe(lab, ProbeFrom::Pod(pod), proto, target).await)
}

fn report_of(out: &std::process::Output) -> Value {
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("probe output {text:?}: {e}"))
}

/// Retries `nodenet-workload probe` from a node's own namespace until it
/// succeeds; the successful report.
pub async fn node_probe_until_ok(lab: &Lab, node: &str, proto: &str, target: &str) -> Value {
    let what = format!("{node} -> {proto} {target}");
    until_ok(&what, || async {
        report_of(&run_probe(lab, ProbeFrom::Node(node), proto, target).await)
    })
    .await
}

/// Retries a probe until it succeeds (the overlay may still be converging);
/// the successful report.
pub async fn probe_until_ok(lab: &Lab, pod: &str, proto: &str, target: &str) -> Value {
    let what = format!("{pod} -> {proto} {target}");
    until_ok(&what, || probe_json(lab, pod, proto, target)).await
}

/// Runs `probe` until its report says ok, for at most [`WAIT`].
async fn until_ok<F, Fut>(what: &str, mut probe: F) -> Value
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Value>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let report = probe().await;
        if report["ok"] == json!(true) {
            return report;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} still failing after {WAIT:?}: {report}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The client address the server reported in a successful probe's reply.
pub fn peer_ip_of(report: &Value) -> IpAddr {
    assert_eq!(report["ok"], json!(true), "probe failed: {report}");
    let reply = report["reply"].as_str().unwrap_or_default();
    let reply: Value = serde_json::from_str(reply.lines().next().unwrap_or_default())
        .unwrap_or_else(|e| panic!("reply {reply:?} is not JSON: {e}"));
    let peer = reply["peer"].as_str().unwrap_or_default();
    let addr: std::net::SocketAddr = peer.parse().unwrap_or_else(|_| panic!("peer {peer:?}"));
    addr.ip()
}

/// Waits until the node's nodenet answers /readyz (after a restart: the
/// new daemon finished its first overlay pass).
pub async fn wait_nodenet_ready(lab: &Lab, node: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let argv = [
            "nodenet-workload",
            "probe",
            "http",
            "127.0.0.1:10260/readyz",
            "--timeout",
            "1000",
        ];
        let out = lab
            .exec_on_node(node, &argv, PROBE)
            .await
            .expect("exec readyz probe");
        if out.status.success() {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "nodenet on {node} not ready after {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Warning Events about Node `name` (Events of Nodes live in "default").
pub async fn node_events(lab: &Lab, name: &str) -> Vec<Event> {
    let api: Api<Event> = Api::namespaced(lab.client(), "default");
    let list = api.list(&Default::default()).await.expect("list Events");
    list.items
        .into_iter()
        .filter(|e| e.involved_object.name.as_deref() == Some(name))
        .collect()
}

/// Waits for a Warning Event about `name` whose message contains `needle`.
pub async fn wait_event(lab: &Lab, name: &str, needle: &str) -> Event {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let events = node_events(lab, name).await;
        if let Some(e) = events
            .iter()
            .find(|e| e.message.as_deref().unwrap_or_default().contains(needle))
        {
            return e.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no Event about Node {name} mentioning {needle:?} after {WAIT:?}; events: {:?}",
            events.iter().map(|e| e.message.clone()).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A real lab node as its peers must see it: (podCIDR, public IP, VTEP MAC
/// or WireGuard public key, "" for host-gw), read from its Node once its
/// daemon annotated it.
pub async fn real_peer(lab: &Lab, name: &str) -> (String, String, String) {
    let api: Api<Node> = Api::all(lab.client());
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let node = api.get(name).await.expect("get Node");
        let ann = node.metadata.annotations.clone().unwrap_or_default();
        let get = |k: &str| ann.get(&format!("{PREFIX}{k}")).cloned();
        if let (Some(ip), Some(data), Some(cidr)) = (
            get("public-ip"),
            get("backend-data"),
            node.spec.as_ref().and_then(|s| s.pod_cidr.clone()),
        ) {
            let data: Value = serde_json::from_str(&data).expect("backend-data is JSON");
            let id = data["VtepMAC"]
                .as_str()
                .or(data["PublicKey"].as_str())
                .unwrap_or_default();
            return (cidr, ip, id.to_string());
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "Node {name} not annotated after {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
