//! A WireGuard test bed: an underlay namespace with a bridge, per node a
//! namespace with `eth0` on it, `cni0` and a pod namespace behind it. Each
//! node's overlay (and so its user-space device and threads) runs in its
//! namespace; each serves its UAPI socket in its own temporary directory,
//! never in the real /var/run/wireguard.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::Ipv4Addr;
use std::os::unix::net::UnixStream;
use std::path::Path;

use flannel::overlay::wireguard::WireguardMode;
use flannel::overlay::{Backend, LocalNode, Overlay, OverlayConfig, OverlayError, ReconcileReport};
use host::netns::TestNetns;
use ipnet::IpNet;
use k8s_openapi::api::core::v1::{Node, NodeSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::Value;

use crate::lab::{require_root, sh};

pub const CLUSTER: &str = "10.42.0.0/16";

/// A peer as the device reports it: (hex key, endpoint, allowed IPs, keepalive).
pub type DevicePeer = (String, String, Vec<String>, String);

pub struct WgNode {
    /// First, so the device stops before its namespace is deleted.
    overlay: Option<Overlay>,
    pub name: String,
    pub ns: TestNetns,
    pub pod: TestNetns,
    pub ip: Ipv4Addr,
    pub subnet: IpNet,
    pub annotations: BTreeMap<String, String>,
    pub data_dir: tempfile::TempDir,
    pub sock_dir: tempfile::TempDir,
    /// The engine the node's devices get (`userspace` unless a test says).
    pub mode: WireguardMode,
}

pub struct WgBed {
    pub nodes: Vec<WgNode>,
    pub deleted: BTreeSet<String>,
    /// Kept for its Drop: the underlay namespace outlives the nodes.
    _underlay: TestNetns,
}

impl WgBed {
    /// Nodes running user-space devices, read back through UAPI.
    pub fn new(count: u8) -> WgBed {
        WgBed::with_mode(count, WireguardMode::Userspace)
    }

    pub fn with_mode(count: u8, mode: WireguardMode) -> WgBed {
        require_root();
        let underlay = TestNetns::new("wg-u").expect("underlay netns");
        sh(&underlay, &["link", "add", "br0", "type", "bridge"]);
        sh(&underlay, &["link", "set", "br0", "up"]);
        let nodes = (1..=count)
            .map(|i| WgNode::new(&underlay, i, mode))
            .collect();
        WgBed {
            nodes,
            deleted: BTreeSet::new(),
            _underlay: underlay,
        }
    }

    pub fn objects(&self) -> Vec<Node> {
        self.nodes
            .iter()
            .filter(|n| !self.deleted.contains(&n.name))
            .map(WgNode::object)
            .collect()
    }

    /// One pass of node `i`, applying its annotation patch as the API would.
    pub fn reconcile(&mut self, i: usize) -> ReconcileReport {
        let objects = self.objects();
        let report = self.nodes[i].reconcile(&objects);
        if let Some(patch) = &report.annotations_patch {
            self.nodes[i].apply_patch(patch);
        }
        report
    }

    pub fn converge(&mut self) {
        for _round in 0..3 {
            let mut patched = false;
            for i in 0..self.nodes.len() {
                if !self.deleted.contains(&self.nodes[i].name) {
                    patched |= self.reconcile(i).annotations_patch.is_some();
                }
            }
            if !patched {
                return;
            }
        }
        panic!("annotations did not settle after 3 rounds");
    }
}

fn config(backend: Backend, data_dir: &Path) -> OverlayConfig {
    OverlayConfig {
        backend,
        cluster_cidrs: vec![CLUSTER.parse().expect("cidr")],
        data_dir: data_dir.to_path_buf(),
        ipv6_masq: false,
        public_ip_overwrites: vec![],
    }
}

impl WgNode {
    fn new(underlay: &TestNetns, i: u8, mode: WireguardMode) -> WgNode {
        let ns = TestNetns::new(&format!("wg-n{i}")).expect("node netns");
        let pod = TestNetns::new(&format!("wg-p{i}")).expect("pod netns");
        let ip = Ipv4Addr::new(192, 168, 60, i);
        let uport = format!("u{i}");
        let peer_args = ["name", "eth0", "netns", ns.name()];
        let mut args = vec!["link", "add", &uport, "type", "veth", "peer"];
        args.extend_from_slice(&peer_args);
        sh(underlay, &args);
        sh(underlay, &["link", "set", &uport, "master", "br0", "up"]);
        sh(&ns, &["addr", "add", &format!("{ip}/24"), "dev", "eth0"]);
        sh(&ns, &["link", "set", "eth0", "up"]);
        sh(&ns, &["link", "add", "cni0", "type", "bridge"]);
        let gw = format!("10.42.{i}.1");
        sh(&ns, &["addr", "add", &format!("{gw}/24"), "dev", "cni0"]);
        sh(&ns, &["link", "set", "cni0", "up"]);
        let pod_args = ["name", "eth0", "netns", pod.name()];
        let mut args = vec!["link", "add", "vethpod", "type", "veth", "peer"];
        args.extend_from_slice(&pod_args);
        sh(&ns, &args);
        sh(&ns, &["link", "set", "vethpod", "master", "cni0", "up"]);
        sh(
            &pod,
            &["addr", "add", &format!("10.42.{i}.5/24"), "dev", "eth0"],
        );
        sh(&pod, &["link", "set", "eth0", "up"]);
        sh(&pod, &["route", "add", "default", "via", &gw]);
        ns.run(|| host::sysctl::ensure("net.ipv4.ip_forward", "1"))
            .expect("enter")
            .expect("ip_forward");
        let data_dir = tempfile::tempdir().expect("tempdir");
        let sock_dir = tempfile::tempdir().expect("tempdir");
        let mut node = WgNode {
            overlay: None,
            name: format!("node-{i}"),
            ns,
            pod,
            ip,
            subnet: format!("10.42.{i}.0/24").parse().expect("cidr"),
            annotations: BTreeMap::new(),
            data_dir,
            sock_dir,
            mode,
        };
        node.restart(Backend::Wireguard);
        node
    }

    /// A daemon restart: the old overlay (and its device) goes, a new one
    /// starts with the same data dir.
    pub fn restart(&mut self, backend: Backend) {
        self.overlay = None;
        let overlay = Overlay::new(config(backend, self.data_dir.path()))
            .with_wireguard_mode(self.mode)
            .with_wireguard_socket_dir(self.sock_dir.path().to_path_buf());
        self.overlay = Some(overlay);
    }

    pub fn pod_ip(&self) -> Ipv4Addr {
        let i = self.ip.octets()[3];
        Ipv4Addr::new(10, 42, i, 5)
    }

    pub fn object(&self) -> Node {
        Node {
            metadata: ObjectMeta {
                name: Some(self.name.clone()),
                annotations: Some(self.annotations.clone()),
                ..ObjectMeta::default()
            },
            spec: Some(NodeSpec {
                pod_cidr: Some(self.subnet.to_string()),
                ..NodeSpec::default()
            }),
            ..Node::default()
        }
    }

    fn reconcile(&mut self, objects: &[Node]) -> ReconcileReport {
        let name = self.name.clone();
        self.try_reconcile(objects)
            .unwrap_or_else(|e| panic!("{name}: reconcile failed: {e}"))
    }

    /// What the device of the IPv4 family runs on: `kernel` or `userspace`.
    pub fn engine_kind(&self) -> Option<&'static str> {
        self.overlay.as_ref()?.wireguard().engine_kind(false)
    }

    /// One pass, its error returned rather than failing the test.
    pub fn try_reconcile(&mut self, objects: &[Node]) -> Result<ReconcileReport, OverlayError> {
        let overlay = self.overlay.take().expect("overlay present");
        let local = LocalNode {
            name: self.name.clone(),
            pod_cidrs: vec![self.subnet],
            public_ipv4: Some(self.ip),
            public_ipv6: None,
        };
        let objects = objects.to_vec();
        let (overlay, result) = self
            .ns
            .block_on(move || async move {
                let mut overlay = overlay;
                let result = overlay.reconcile(&local, &objects).await;
                (overlay, result)
            })
            .expect("enter node netns");
        self.overlay = Some(overlay);
        result
    }

    fn apply_patch(&mut self, patch: &Value) {
        let annotations = patch["metadata"]["annotations"]
            .as_object()
            .expect("patch shape");
        for (key, value) in annotations {
            let value = value.as_str().expect("string annotation").to_string();
            self.annotations.insert(key.clone(), value);
        }
    }

    /// `get=1` on the node's UAPI socket, parsed here (independently of the
    /// daemon's parser): (own public key hex, listen port, peers).
    pub fn uapi_get(&self) -> (String, String, Vec<DevicePeer>) {
        let path = self.sock_dir.path().join("flannel-wg.sock");
        let mut stream = UnixStream::connect(&path)
            .unwrap_or_else(|e| panic!("{}: connect {}: {e}", self.name, path.display()));
        stream.write_all(b"get=1\n\n").expect("write");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).expect("read");
        assert!(answer.contains("errno=0\n"), "{answer}");
        let (mut own, mut port, mut peers) = (String::new(), String::new(), Vec::new());
        for line in answer.lines() {
            let Some((k, v)) = line.split_once('=') else {
                continue;
            };
            let last = peers.last_mut();
            match (k, last) {
                ("own_public_key", _) => own = v.to_string(),
                ("listen_port", _) => port = v.to_string(),
                ("public_key", _) => {
                    peers.push((v.to_string(), String::new(), Vec::new(), String::new()))
                }
                ("endpoint", Some(p)) => p.1 = v.to_string(),
                ("allowed_ip", Some(p)) => p.2.push(v.to_string()),
                ("persistent_keepalive_interval", Some(p)) => p.3 = v.to_string(),
                _ => {}
            }
        }
        peers.sort();
        (own, port, peers)
    }

    pub fn link_exists(&self, name: &str) -> bool {
        self.ns.ip(&["link", "show", "dev", name]).is_ok()
    }
}
