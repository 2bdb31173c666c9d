//! A three-node overlay test bed made of network namespaces: an underlay
//! namespace with a bridge, per node a namespace with `eth0` on that
//! bridge, a `cni0` bridge and a pod namespace behind it. Nothing touches
//! the machine's root namespace; every namespace is a TestNetns guard.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use flannel::overlay::{Backend, LocalNode, Overlay, OverlayConfig, ReconcileReport};
use host::netns::TestNetns;
use ipnet::IpNet;
use k8s_openapi::api::core::v1::{Node, NodeSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::Value;

pub const CLUSTER: &str = "10.42.0.0/16";
/// Address of the "outside world" host on the underlay bridge.
pub const OUTSIDE: &str = "192.168.50.100";

pub fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "overlay netns tests must run as root (they create network namespaces)"
    );
}

/// One node of the test bed.
pub struct TestNode {
    pub name: String,
    pub ns: TestNetns,
    pub pod: TestNetns,
    pub ip: Ipv4Addr,
    pub subnet: IpNet,
    pub annotations: BTreeMap<String, String>,
    pub data_dir: tempfile::TempDir,
    overlay: Option<Overlay>,
}

pub struct Bed {
    pub underlay: TestNetns,
    pub nodes: Vec<TestNode>,
    /// Nodes absent from the API (deleted) are left out of `objects()`.
    pub deleted: BTreeSet<String>,
}

impl Bed {
    pub fn new(backend: Backend) -> Bed {
        require_root();
        let underlay = TestNetns::new("ovl-u").expect("underlay netns");
        sh(&underlay, &["link", "add", "br0", "type", "bridge"]);
        sh(
            &underlay,
            &["addr", "add", &format!("{OUTSIDE}/24"), "dev", "br0"],
        );
        sh(&underlay, &["link", "set", "br0", "up"]);
        let nodes = (1..=3)
            .map(|i| TestNode::new(&underlay, i, backend))
            .collect();
        Bed {
            underlay,
            nodes,
            deleted: BTreeSet::new(),
        }
    }

    /// The Node objects the API would return now.
    pub fn objects(&self) -> Vec<Node> {
        self.nodes
            .iter()
            .filter(|n| !self.deleted.contains(&n.name))
            .map(TestNode::object)
            .collect()
    }

    /// Reconciles node `i` (0-based) against the current objects and applies
    /// the annotation patch it asks for, as the daemon would.
    pub fn reconcile(&mut self, i: usize) -> ReconcileReport {
        let objects = self.objects();
        let report = self.nodes[i].reconcile(&objects);
        if let Some(patch) = &report.annotations_patch {
            self.nodes[i].apply_patch(patch);
        }
        report
    }

    /// Reconciles every node until no annotation changes (two rounds: the
    /// first publishes annotations, the second programs the peers).
    pub fn converge(&mut self) {
        for _round in 0..3 {
            let mut patched = false;
            for i in 0..self.nodes.len() {
                if self.deleted.contains(&self.nodes[i].name) {
                    continue;
                }
                patched |= self.reconcile(i).annotations_patch.is_some();
            }
            if !patched {
                return;
            }
        }
        panic!("annotations did not settle after 3 rounds");
    }

    /// Replaces every node's overlay by a fresh one (a daemon restart),
    /// optionally with another backend.
    pub fn restart(&mut self, backend: Backend) {
        for node in &mut self.nodes {
            node.overlay = Some(Overlay::new(config(backend, node.data_dir.path())));
        }
    }
}

fn config(backend: Backend, data_dir: &std::path::Path) -> OverlayConfig {
    OverlayConfig {
        backend,
        cluster_cidrs: vec![CLUSTER.parse().expect("cidr")],
        data_dir: data_dir.to_path_buf(),
        ipv6_masq: false,
        public_ip_overwrites: vec![],
    }
}

impl TestNode {
    fn new(underlay: &TestNetns, i: u8, backend: Backend) -> TestNode {
        let ns = TestNetns::new(&format!("ovl-n{i}")).expect("node netns");
        let pod = TestNetns::new(&format!("ovl-p{i}")).expect("pod netns");
        let ip = Ipv4Addr::new(192, 168, 50, i);
        let uport = format!("u{i}");
        sh(
            underlay,
            &[
                "link",
                "add",
                &uport,
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                ns.name(),
            ],
        );
        sh(underlay, &["link", "set", &uport, "master", "br0", "up"]);
        sh(&ns, &["addr", "add", &format!("{ip}/24"), "dev", "eth0"]);
        sh(&ns, &["link", "set", "eth0", "up"]);
        sh(&ns, &["link", "add", "cni0", "type", "bridge"]);
        sh(
            &ns,
            &["addr", "add", &format!("10.42.{i}.1/24"), "dev", "cni0"],
        );
        sh(&ns, &["link", "set", "cni0", "up"]);
        sh(
            &ns,
            &[
                "link",
                "add",
                "vethpod",
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "netns",
                pod.name(),
            ],
        );
        sh(&ns, &["link", "set", "vethpod", "master", "cni0", "up"]);
        sh(
            &pod,
            &["addr", "add", &format!("10.42.{i}.5/24"), "dev", "eth0"],
        );
        sh(&pod, &["link", "set", "eth0", "up"]);
        sh(
            &pod,
            &["route", "add", "default", "via", &format!("10.42.{i}.1")],
        );
        ns.run(|| host::sysctl::ensure("net.ipv4.ip_forward", "1"))
            .expect("enter")
            .expect("ip_forward");
        let data_dir = tempfile::tempdir().expect("tempdir");
        let overlay = Some(Overlay::new(config(backend, data_dir.path())));
        TestNode {
            name: format!("node-{i}"),
            ns,
            pod,
            ip,
            subnet: format!("10.42.{i}.0/24").parse().expect("cidr"),
            annotations: BTreeMap::new(),
            data_dir,
            overlay,
        }
    }

    pub fn pod_ip(&self) -> Ipv4Addr {
        match self.subnet.network() {
            std::net::IpAddr::V4(v4) => Ipv4Addr::from(u32::from(v4) + 5),
            std::net::IpAddr::V6(_) => unreachable!("IPv4 test bed"),
        }
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
                pod_cidrs: Some(vec![self.subnet.to_string()]),
                ..NodeSpec::default()
            }),
            ..Node::default()
        }
    }

    fn local(&self) -> LocalNode {
        LocalNode {
            name: self.name.clone(),
            pod_cidrs: vec![self.subnet],
            public_ipv4: Some(self.ip),
            public_ipv6: None,
        }
    }

    /// Runs one reconcile inside the node namespace.
    pub fn reconcile(&mut self, objects: &[Node]) -> ReconcileReport {
        let overlay = self.overlay.take().expect("overlay present");
        let local = self.local();
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
        result.unwrap_or_else(|e| panic!("{}: reconcile failed: {e}", self.name))
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

    /// Moves the node to a new underlay address.
    pub fn change_ip(&mut self, ip: Ipv4Addr) {
        sh(
            &self.ns,
            &["addr", "del", &format!("{}/24", self.ip), "dev", "eth0"],
        );
        sh(
            &self.ns,
            &["addr", "add", &format!("{ip}/24"), "dev", "eth0"],
        );
        self.ip = ip;
    }

    /// The MAC of flannel.1 as the kernel shows it.
    pub fn vtep_mac(&self) -> String {
        let link = self
            .ns
            .ip_json(&["-d", "link", "show", "dev", "flannel.1"])
            .expect("ip link");
        link[0]["address"].as_str().expect("address").to_string()
    }

    /// Permanent neighbours on flannel.1 as (ip, mac).
    pub fn neighbours(&self) -> BTreeSet<(String, String)> {
        let v = self
            .ns
            .ip_json(&["neigh", "show", "dev", "flannel.1"])
            .expect("ip neigh");
        rows(&v)
            .filter(|n| {
                n["state"]
                    .as_array()
                    .is_some_and(|s| s.iter().any(|x| x == "PERMANENT"))
            })
            .map(|n| (str_of(n, "dst"), str_of(n, "lladdr")))
            .collect()
    }

    /// Permanent self FDB entries on flannel.1 as (mac, dst).
    pub fn fdb(&self) -> BTreeSet<(String, String)> {
        let out = run(
            "bridge",
            &[
                "-n",
                self.ns.name(),
                "-j",
                "fdb",
                "show",
                "dev",
                "flannel.1",
            ],
        );
        let v: Value = serde_json::from_str(if out.trim().is_empty() { "[]" } else { &out })
            .expect("bridge -j");
        rows(&v)
            .filter(|e| {
                e["flags"]
                    .as_array()
                    .is_some_and(|f| f.iter().any(|x| x == "self"))
            })
            .filter(|e| e["state"] == "permanent")
            .map(|e| (str_of(e, "mac"), str_of(e, "dst")))
            .collect()
    }

    /// Routes with protocol 231 as (dst, gateway, dev, onlink).
    pub fn routes(&self) -> BTreeSet<(String, String, String, bool)> {
        let v = self
            .ns
            .ip_json(&["route", "show", "proto", "231"])
            .expect("ip route");
        rows(&v)
            .map(|r| {
                let onlink = r["flags"]
                    .as_array()
                    .is_some_and(|f| f.iter().any(|x| x == "onlink"));
                (
                    str_of(r, "dst"),
                    str_of(r, "gateway"),
                    str_of(r, "dev"),
                    onlink,
                )
            })
            .collect()
    }

    /// The identifying parts of links, addresses, neighbours, FDB, every
    /// main-table route and the nft ruleset (with rule handles, which change
    /// when a table is rewritten), for before/after comparisons. Timers and
    /// counters are left out: they move on their own.
    pub fn snapshot(&self) -> String {
        let links = self.ns.ip_json(&["-d", "link", "show"]).expect("ip link");
        let links: Vec<String> = rows(&links)
            .map(|l| {
                format!(
                    "{} {} {} {} {}",
                    l["ifname"],
                    l["mtu"],
                    l["address"],
                    l["flags"],
                    l["linkinfo"]["info_data"]["id"]
                )
            })
            .collect();
        let addrs = self.ns.ip_json(&["addr", "show"]).expect("ip addr");
        let addrs: Vec<String> = rows(&addrs)
            .map(|a| format!("{} {}", a["ifname"], a["addr_info"]))
            .collect();
        let routes = self
            .ns
            .ip_json(&["route", "show", "table", "all"])
            .expect("ip route");
        let nft = run(
            "ip",
            &[
                "netns",
                "exec",
                self.ns.name(),
                "nft",
                "-j",
                "list",
                "ruleset",
            ],
        );
        format!(
            "{links:?}\n{addrs:?}\n{:?}\n{:?}\n{routes}\n{nft}",
            self.neighbours(),
            self.fdb()
        )
    }

    pub fn link_exists(&self, name: &str) -> bool {
        self.ns.ip(&["link", "show", "dev", name]).is_ok()
    }
}

fn rows(v: &Value) -> impl Iterator<Item = &Value> {
    v.as_array().into_iter().flatten()
}

fn str_of(v: &Value, key: &str) -> String {
    v[key].as_str().unwrap_or("").to_string()
}

/// `ip -n <ns> args...`, panicking with the command on failure (test setup).
pub fn sh(ns: &TestNetns, args: &[&str]) {
    if let Err(e) = ns.ip(args) {
        panic!("ip -n {} {}: {e}", ns.name(), args.join(" "));
    }
}

fn run(program: &str, args: &[&str]) -> String {
    let out = Command::new(program).args(args).output().expect("spawn");
    assert!(
        out.status.success(),
        "{program} {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Opens a TCP connection from `from` to `to_ip:port` served in `to`; the
/// server replies with the source address it saw. Returns that address,
/// or the error text when no connection could be made within 5 s.
pub fn tcp_source_seen(
    from: &TestNetns,
    to: &TestNetns,
    to_ip: Ipv4Addr,
    port: u16,
) -> Result<String, String> {
    let bind = SocketAddr::from((to_ip, port));
    let listener = to
        .run(move || TcpListener::bind(bind))
        .expect("enter")
        .map_err(|e| format!("bind {bind}: {e}"))?;
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;
    let server = std::thread::spawn(move || serve_once(&listener));
    let reply = from
        .run(move || -> Result<String, String> {
            let mut stream = TcpStream::connect_timeout(&bind, Duration::from_secs(5))
                .map_err(|e| format!("connect {bind}: {e}"))?;
            stream
                .set_read_timeout(Some(Duration::from_secs(5)))
                .map_err(|e| e.to_string())?;
            stream.write_all(b"ping\n").map_err(|e| e.to_string())?;
            let mut reply = String::new();
            stream
                .read_to_string(&mut reply)
                .map_err(|e| e.to_string())?;
            Ok(reply)
        })
        .expect("enter");
    let served = server.join().expect("server thread");
    let reply = reply?;
    served?;
    Ok(reply)
}

fn serve_once(listener: &TcpListener) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(6);
    loop {
        match listener.accept() {
            Ok((mut stream, peer)) => {
                stream.set_nonblocking(false).map_err(|e| e.to_string())?;
                let mut line = [0u8; 5];
                stream.read_exact(&mut line).map_err(|e| e.to_string())?;
                return stream
                    .write_all(peer.ip().to_string().as_bytes())
                    .map_err(|e| e.to_string());
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => return Err(format!("accept: {e}")),
        }
    }
}
