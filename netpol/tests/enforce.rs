//! Privileged: real traffic through an applied plan.
//!
//! One "node" namespace with bridge cni0 (10.42.0.1/24) and three "pod"
//! namespaces on veths: x/a 10.42.0.2, x/b 10.42.0.3, y/c 10.42.0.4 (all
//! same-node, so every pod-to-pod packet is bridged). Each pod serves TCP 80
//! (accept and close) and UDP 81 (echo). SCTP cannot be opened on this
//! kernel, so SCTP rules are checked in the live ruleset only.
//!
//! Needs root; fails (never skips) without it.

use std::io::ErrorKind;
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::time::Duration;

use host::netns::TestNetns;
use netpol::apply::{Enforcer, Outcome};
use netpol::handshake::{Disposition, Handshake, merge_pending};
use netpol::model::{Labels, NamespaceInfo, PodInfo, Policy};
use netpol::plan::{self, Inputs, NodeScope, Plan};
use serde_json::json;

const NODE: &str = "node-1";

/// Result of one probe.
#[derive(Debug, PartialEq, Eq)]
enum Probe {
    Allowed,
    /// TCP reset (ECONNREFUSED) or ICMP error: rejected fast.
    Rejected,
    /// Nothing came back in time.
    Silent,
}

struct Lab {
    node: TestNetns,
    pods: Vec<(TestNetns, PodInfo)>,
}

fn require_root() {
    let euid = nix::unistd::geteuid();
    assert!(
        euid.is_root(),
        "this test needs root (network namespaces, nft); euid is {euid}"
    );
}

fn sh(ns: &TestNetns, args: &[&str]) {
    ns.ip(args)
        .unwrap_or_else(|e| panic!("ip -n {} {args:?}: {e}", ns.name()));
}

fn pod_info(ns: &str, name: &str, ip: &str) -> PodInfo {
    let labels: Labels = [("pod".to_string(), name.to_string())].into();
    PodInfo {
        namespace: ns.into(),
        name: name.into(),
        node: Some(NODE.into()),
        ips: vec![ip.parse().expect("ip")],
        labels,
        ..PodInfo::default()
    }
}

impl Lab {
    fn new() -> Lab {
        require_root();
        let node = TestNetns::new("npnode").expect("node netns");
        sh(&node, &["link", "add", "cni0", "type", "bridge"]);
        sh(&node, &["addr", "add", "10.42.0.1/24", "dev", "cni0"]);
        sh(&node, &["link", "set", "cni0", "up"]);
        let mut pods = Vec::new();
        for (i, (ns, name)) in [("x", "a"), ("x", "b"), ("y", "c")].iter().enumerate() {
            let ip = format!("10.42.0.{}", i + 2);
            let pod = TestNetns::new(&format!("nppod{name}")).expect("pod netns");
            let veth = format!("vethnp{name}");
            sh(
                &node,
                &[
                    "link",
                    "add",
                    &veth,
                    "type",
                    "veth",
                    "peer",
                    "name",
                    "eth0",
                    "netns",
                    pod.name(),
                ],
            );
            sh(&node, &["link", "set", &veth, "master", "cni0", "up"]);
            sh(&pod, &["addr", "add", &format!("{ip}/24"), "dev", "eth0"]);
            sh(&pod, &["link", "set", "eth0", "up"]);
            sh(&pod, &["route", "add", "default", "via", "10.42.0.1"]);
            serve(&pod);
            pods.push((pod, pod_info(ns, name, &ip)));
        }
        let enabled = node
            .run(netpol::apply::enable_bridge_netfilter)
            .expect("run");
        enabled.expect("br_netfilter sysctls");
        Lab { node, pods }
    }

    fn pod(&self, name: &str) -> &TestNetns {
        &self
            .pods
            .iter()
            .find(|(_, p)| p.name == name)
            .expect("pod")
            .0
    }

    fn ip(&self, name: &str) -> IpAddr {
        self.pods
            .iter()
            .find(|(_, p)| p.name == name)
            .expect("pod")
            .1
            .ips[0]
    }

    fn infos(&self) -> Vec<PodInfo> {
        self.pods.iter().map(|(_, p)| p.clone()).collect()
    }

    fn tcp(&self, from: &str, to: &str) -> Probe {
        let addr = SocketAddr::new(self.ip(to), 80);
        self.pod(from)
            .run(move || tcp_probe(addr))
            .expect("probe thread")
    }

    fn udp(&self, from: &str, to: &str) -> Probe {
        let addr = SocketAddr::new(self.ip(to), 81);
        self.pod(from)
            .run(move || udp_probe(addr))
            .expect("probe thread")
    }

    fn tcp_from_node(&self, to: &str) -> Probe {
        let addr = SocketAddr::new(self.ip(to), 80);
        self.node
            .run(move || tcp_probe(addr))
            .expect("probe thread")
    }

    /// Applies `plan` inside the node namespace.
    fn apply(&self, enforcer: Enforcer, plan: Plan) -> (Enforcer, Outcome) {
        let (enforcer, result) = self
            .node
            .run(move || {
                let mut enforcer = enforcer;
                let result = enforcer.apply(plan);
                (enforcer, result)
            })
            .expect("node thread");
        (enforcer, result.unwrap_or_else(|e| panic!("apply: {e}")))
    }

    fn nft_owned(&self, args: &[&str]) -> String {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let out = self
            .node
            .run(move || std::process::Command::new("nft").args(&args).output())
            .expect("node thread")
            .expect("nft runs");
        assert!(
            out.status.success(),
            "nft: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn nft(&self, args: &'static [&'static str]) -> String {
        let out = self
            .node
            .run(move || std::process::Command::new("nft").args(args).output())
            .expect("node thread")
            .expect("nft runs");
        assert!(
            out.status.success(),
            "nft {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// TCP 80: accept and close; UDP 81: echo. Sockets are created inside the
/// pod namespace and served from plain threads (a socket keeps its netns).
fn serve(pod: &TestNetns) {
    let (tcp, udp) = pod
        .run(|| {
            let tcp = TcpListener::bind("0.0.0.0:80").expect("bind tcp 80");
            let udp = UdpSocket::bind("0.0.0.0:81").expect("bind udp 81");
            (tcp, udp)
        })
        .expect("pod thread");
    std::thread::spawn(move || {
        for stream in tcp.incoming() {
            drop(stream);
        }
    });
    std::thread::spawn(move || {
        let mut buf = [0u8; 64];
        while let Ok((n, peer)) = udp.recv_from(&mut buf) {
            let _ = udp.send_to(&buf[..n], peer);
        }
    });
}

fn tcp_probe(addr: SocketAddr) -> Probe {
    match TcpStream::connect_timeout(&addr, Duration::from_millis(1500)) {
        Ok(_) => Probe::Allowed,
        Err(e) if e.kind() == ErrorKind::ConnectionRefused => Probe::Rejected,
        Err(e) if e.kind() == ErrorKind::TimedOut || e.kind() == ErrorKind::WouldBlock => {
            Probe::Silent
        }
        Err(e) => panic!("tcp probe to {addr}: unexpected {e}"),
    }
}

fn udp_probe(addr: SocketAddr) -> Probe {
    let sock = UdpSocket::bind("0.0.0.0:0").expect("bind");
    sock.connect(addr).expect("connect");
    sock.set_read_timeout(Some(Duration::from_millis(700)))
        .expect("timeout");
    let mut buf = [0u8; 16];
    for _ in 0..2 {
        if sock.send(b"ping").is_err() {
            return Probe::Rejected;
        }
        match sock.recv(&mut buf) {
            Ok(n) if &buf[..n] == b"ping" => return Probe::Allowed,
            Ok(_) => continue,
            Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::TimedOut => {
                continue;
            }
            Err(_) => return Probe::Rejected,
        }
    }
    Probe::Silent
}

fn policy(ns: &str, name: &str, spec: serde_json::Value) -> Policy {
    let np =
        serde_json::from_value(json!({"metadata": {"namespace": ns, "name": name}, "spec": spec}))
            .expect("policy JSON");
    let mut problems = Vec::new();
    let p = Policy::from_api(&np, &mut problems);
    assert!(problems.is_empty(), "{problems:?}");
    p
}

fn build(policies: &[Policy], pods: &[PodInfo]) -> Plan {
    let namespaces: Vec<NamespaceInfo> = ["x", "y"]
        .iter()
        .map(|n| NamespaceInfo::new(n, Labels::new()))
        .collect();
    let node = NodeScope {
        name: NODE.into(),
        pod_cidrs: vec!["10.42.0.0/24".parse().expect("cidr")],
        fail_closed_unknown_pods: true,
    };
    plan::build(&Inputs {
        policies,
        pods,
        namespaces: &namespaces,
        node: &node,
    })
}

fn assert_elements_only(script: &str) {
    for line in script.lines() {
        assert!(
            line.starts_with("add element ") || line.starts_with("delete element "),
            "pod event re-created more than elements: {line}\n{script}"
        );
    }
}

#[test]
fn policies_enforced_on_bridged_traffic_with_incremental_updates() {
    let lab = Lab::new();
    let pods = lab.infos();

    // No policy: everything flows.
    let (enforcer, outcome) = lab.apply(Enforcer::new(), build(&[], &pods));
    assert!(matches!(outcome, Outcome::Applied(ref s) if s.replace));
    for (from, to) in [("a", "b"), ("b", "a"), ("c", "a"), ("a", "c")] {
        assert_eq!(
            lab.tcp(from, to),
            Probe::Allowed,
            "{from}->{to} tcp, no policy"
        );
        assert_eq!(
            lab.udp(from, to),
            Probe::Allowed,
            "{from}->{to} udp, no policy"
        );
    }

    // x/a accepts only x/b on TCP 80 (and SCTP 80, ruleset only);
    // y/c may only send UDP 81.
    let policies = vec![
        policy(
            "x",
            "a-from-b",
            json!({"podSelector": {"matchLabels": {"pod": "a"}},
            "ingress": [{"from": [{"podSelector": {"matchLabels": {"pod": "b"}}}],
                         "ports": [{"port": 80}, {"protocol": "SCTP", "port": 80}]}]}),
        ),
        policy(
            "y",
            "c-egress-udp",
            json!({"podSelector": {}, "policyTypes": ["Egress"],
            "egress": [{"ports": [{"protocol": "UDP", "port": 81}]}]}),
        ),
    ];
    let (enforcer, outcome) = lab.apply(enforcer, build(&policies, &pods));
    assert!(matches!(outcome, Outcome::Applied(ref s) if !s.replace));
    assert_eq!(
        lab.tcp("b", "a"),
        Probe::Allowed,
        "b->a tcp 80 allowed by rule"
    );
    assert_eq!(
        lab.udp("b", "a"),
        Probe::Rejected,
        "b->a udp 81 not in ports"
    );
    assert_eq!(
        lab.tcp("c", "a"),
        Probe::Rejected,
        "c->a: egress and ingress deny (TCP reset)"
    );
    assert_eq!(lab.tcp("a", "b"), Probe::Allowed, "b is not isolated");
    assert_eq!(
        lab.tcp("c", "b"),
        Probe::Rejected,
        "c egress allows only udp 81"
    );
    assert_eq!(lab.udp("c", "b"), Probe::Allowed, "c egress udp 81 allowed");
    assert_eq!(
        lab.tcp_from_node("a"),
        Probe::Allowed,
        "own node is always allowed"
    );
    let ruleset = lab.nft(&["list", "table", "inet", "nodenet-netpol"]);
    assert!(
        ruleset.contains("sctp . 80"),
        "SCTP port in the live ruleset:\n{ruleset}"
    );

    // Pod event: x/b loses its label; only elements change.
    let mut relabelled = pods.clone();
    relabelled[1].labels = [("pod".to_string(), "other".to_string())].into();
    let (enforcer, outcome) = lab.apply(enforcer, build(&policies, &relabelled));
    let Outcome::Applied(script) = outcome else {
        panic!("label change must apply")
    };
    assert_elements_only(&script.text);
    assert_eq!(
        lab.tcp("b", "a"),
        Probe::Rejected,
        "b no longer matches the peer selector"
    );

    // Back again, then the same plan once more: a no-op without nft.
    let (enforcer, outcome) = lab.apply(enforcer, build(&policies, &pods));
    let Outcome::Applied(script) = outcome else {
        panic!("revert must apply")
    };
    assert_elements_only(&script.text);
    assert_eq!(lab.tcp("b", "a"), Probe::Allowed);
    let before = lab.nft(&["-a", "list", "table", "inet", "nodenet-netpol"]);
    let (mut enforcer, outcome) = lab.apply(enforcer, build(&policies, &pods));
    assert_eq!(outcome, Outcome::Unchanged);
    let after = lab.nft(&["-a", "list", "table", "inet", "nodenet-netpol"]);
    assert_eq!(
        strip_counters(&before),
        strip_counters(&after),
        "reapply changed the table"
    );

    // Drift: someone flushes our ingress base chain; the check repairs it.
    lab.nft(&[
        "flush",
        "chain",
        "inet",
        "nodenet-netpol",
        "ingress-forward",
    ]);
    assert_eq!(lab.tcp("c", "b"), Probe::Rejected, "egress still enforced");
    let (enforcer_back, drift) = lab
        .node
        .run(move || {
            let d = enforcer.repair_drift();
            (enforcer, d)
        })
        .expect("node thread");
    enforcer = enforcer_back;
    assert!(
        !drift.expect("drift check").is_empty(),
        "flushed chain must count as drift"
    );
    assert_eq!(
        lab.udp("b", "a"),
        Probe::Rejected,
        "ingress restored after repair"
    );
    let (_, drift) = lab
        .node
        .run(move || {
            let d = enforcer.repair_drift();
            (enforcer, d)
        })
        .expect("node thread");
    assert_eq!(
        drift.expect("drift check"),
        Vec::<String>::new(),
        "repaired table matches"
    );
}

#[test]
fn unknown_pods_are_rejected_until_planned_and_cold_start_replaces() {
    let lab = Lab::new();
    let pods = lab.infos();
    // y/c is not known yet (its IP is not in the API view): fail closed.
    let known: Vec<PodInfo> = pods.iter().filter(|p| p.name != "c").cloned().collect();
    let (_, _) = lab.apply(Enforcer::new(), build(&[], &known));
    assert_eq!(
        lab.tcp("c", "a"),
        Probe::Rejected,
        "unknown source rejected"
    );
    assert_eq!(
        lab.tcp("a", "c"),
        Probe::Rejected,
        "unknown destination rejected"
    );
    assert_eq!(lab.tcp("a", "b"), Probe::Allowed, "known pods unaffected");

    // A restarted daemon (fresh enforcer) replaces the table whole.
    let (_, outcome) = lab.apply(Enforcer::new(), build(&[], &pods));
    assert!(matches!(outcome, Outcome::Applied(ref s) if s.replace));
    assert_eq!(lab.tcp("c", "a"), Probe::Allowed);
    let tables = lab.nft(&["list", "tables"]);
    assert_eq!(tables.matches("nodenet-netpol").count(), 1, "{tables}");
}

/// Counter values change with traffic; structure and handles must not.
fn strip_counters(listing: &str) -> String {
    listing
        .lines()
        .filter(|l| !l.trim_start().starts_with("packets "))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A scratch `--run-dir` for the CNI hand-over, removed on drop.
struct TempRunDir(std::path::PathBuf);

impl TempRunDir {
    fn new() -> TempRunDir {
        let path = std::env::temp_dir().join(format!("netpol-enforce-{}", std::process::id()));
        std::fs::create_dir_all(&path).expect("create temp run dir");
        TempRunDir(path)
    }
}

impl Drop for TempRunDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The CNI plugin's half (flannel::cni::netpol_handshake): announce y/c.
fn announce_c(run: &TempRunDir) -> std::path::PathBuf {
    let dir = run.0.join(host::names::NETPOL_HANDSHAKE_DIR);
    assert!(dir.is_dir(), "netpol creates the hand-over dir at start");
    let body = json!({"namespace": "y", "name": "c", "containerID": "cid-c"});
    let pending = dir.join(host::names::NETPOL_PENDING_DIR).join("10.42.0.4");
    std::fs::write(&pending, body.to_string()).expect("write pending");
    dir.join(host::names::NETPOL_READY_DIR).join("10.42.0.4")
}

#[test]
fn a_handed_over_pod_is_programmed_before_it_is_confirmed() {
    let lab = Lab::new();
    let run = TempRunDir::new();
    let mut handshake = Handshake::start(&run.0).expect("start hand-over");
    // y has a deny-all ingress policy; the API does not show y/c's IP yet.
    let policies = [policy("y", "deny", json!({"podSelector": {}}))];
    let mut api_pods = lab.infos();
    api_pods[2].ips.clear();
    let (enforcer, _) = lab.apply(Enforcer::new(), build(&policies, &api_pods));
    assert_eq!(lab.tcp("c", "a"), Probe::Rejected, "unknown pod: guard");

    let ready = announce_c(&run);
    let pending = handshake.scan().expect("scan");
    let mut pods = api_pods.clone();
    let dispositions = merge_pending(&mut pods, &pending, NODE);
    assert_eq!(dispositions, [Disposition::Merged]);
    let (enforcer, outcome) = lab.apply(enforcer, build(&policies, &pods));
    let Outcome::Applied(script) = outcome else {
        panic!("the hand-over changed nothing")
    };
    // An incremental change (y/c is the deny policy's first target, so its
    // chains come with it), not a table replace.
    assert!(!script.replace, "{}", script.text);
    assert!(!ready.exists(), "not confirmed before the plan is live");
    handshake.settle(&pending, &dispositions).expect("settle");
    assert_eq!(
        std::fs::read_to_string(&ready).expect("ready").trim(),
        "cid-c"
    );
    // Confirmed: its unrestricted direction works, its policy holds.
    assert_eq!(lab.tcp("c", "a"), Probe::Allowed, "egress not selected");
    assert_eq!(lab.tcp("a", "c"), Probe::Rejected, "ingress isolated");

    // The API catches up: same plan, the pending entry is dropped.
    let pending = handshake.scan().expect("scan");
    let mut pods = lab.infos();
    let dispositions = merge_pending(&mut pods, &pending, NODE);
    assert_eq!(dispositions, [Disposition::Settled]);
    let (_, outcome) = lab.apply(enforcer, build(&policies, &pods));
    assert_eq!(outcome, Outcome::Unchanged);
    handshake.settle(&pending, &dispositions).expect("settle");
    assert!(handshake.scan().expect("scan").is_empty());
    assert_eq!(lab.tcp("a", "c"), Probe::Rejected, "still isolated");
}

/// Applies `delta` inside the node namespace.
fn apply_delta(lab: &Lab, enforcer: Enforcer, delta: plan::Delta) -> (Enforcer, Outcome) {
    let (enforcer, result) = lab
        .node
        .run(move || {
            let mut enforcer = enforcer;
            let result = enforcer.apply_delta(&delta);
            (enforcer, result)
        })
        .expect("node thread");
    (
        enforcer,
        result.unwrap_or_else(|e| panic!("apply delta: {e}")),
    )
}

fn lab_node() -> NodeScope {
    NodeScope {
        name: NODE.into(),
        pod_cidrs: vec!["10.42.0.0/24".parse().expect("cidr")],
        fail_closed_unknown_pods: true,
    }
}

fn key(pod: &PodInfo) -> plan::PodKey {
    (pod.namespace.clone(), pod.name.clone())
}

/// Pod events through the incremental planner: element-only changes go
/// to the kernel as one netlink batch (no nft), the kernel state and the
/// traffic follow, and a batch the kernel rejects changes nothing.
#[test]
fn element_changes_go_through_one_netlink_batch() {
    let lab = Lab::new();
    let mut pods = lab.infos();
    let mut planner = plan::Incremental::new(lab_node());
    for ns in ["x", "y"] {
        planner.set_namespace(ns, Some(NamespaceInfo::new(ns, Labels::new())));
    }
    for pod in &pods {
        planner.set_pod(key(pod), Some(pod.clone()));
    }
    // x/a accepts x/b on a's named port "http" only.
    let named = policy(
        "x",
        "a-from-b-http",
        json!({"podSelector": {"matchLabels": {"pod": "a"}},
               "ingress": [{"from": [{"podSelector": {"matchLabels": {"pod": "b"}}}],
                            "ports": [{"port": "http"}]}]}),
    );
    planner.set_policy("x/a-from-b-http", Some(named));
    let (enforcer, _) = lab.apply(Enforcer::new(), planner.plan().clone());
    planner.take_delta();
    assert_eq!(
        lab.tcp("b", "a"),
        Probe::Rejected,
        "a declares no http port yet"
    );

    // a declares http = TCP 80: one element of a concatenated set.
    pods[0].ports = vec![netpol::model::NamedPort {
        name: "http".into(),
        protocol: netpol::model::Protocol::Tcp,
        port: 80,
    }];
    planner.set_pod(key(&pods[0]), Some(pods[0].clone()));
    let (enforcer, outcome) = apply_delta(&lab, enforcer, planner.take_delta());
    assert!(matches!(outcome, Outcome::Elements(_)), "{outcome:?}");
    let np = enforcer
        .applied()
        .and_then(|p| p.sets.keys().find(|n| n.starts_with("np-")).cloned())
        .expect("named-port set");
    let listing = lab.nft_owned(&["list", "set", "inet", "nodenet-netpol", &np]);
    assert!(listing.contains("10.42.0.2 . tcp . 80"), "{listing}");
    assert_eq!(lab.tcp("b", "a"), Probe::Allowed, "http resolved on a");

    // b loses the peer label: one element leaves the peer set.
    pods[1].labels = [("pod".to_string(), "other".to_string())].into();
    planner.set_pod(key(&pods[1]), Some(pods[1].clone()));
    let (enforcer, outcome) = apply_delta(&lab, enforcer, planner.take_delta());
    assert!(matches!(outcome, Outcome::Elements(_)), "{outcome:?}");
    assert_eq!(lab.tcp("b", "a"), Probe::Rejected, "b is no longer a peer");

    // A second pod of a's class: a verdict map entry (jump) and a local pod.
    let twin = PodInfo {
        name: "d".into(),
        ips: vec!["10.42.0.9".parse().expect("ip")],
        ..pods[0].clone()
    };
    planner.set_pod(key(&twin), Some(twin.clone()));
    let (enforcer, outcome) = apply_delta(&lab, enforcer, planner.take_delta());
    assert!(matches!(outcome, Outcome::Elements(_)), "{outcome:?}");
    let map = lab.nft_owned(&["list", "map", "inet", "nodenet-netpol", "dispatch-in-v4"]);
    assert!(map.contains("10.42.0.9 : jump cls-"), "{map}");
    let local = lab.nft_owned(&["list", "set", "inet", "nodenet-netpol", "local-pods-v4"]);
    assert!(local.contains("10.42.0.9"), "{local}");

    // A batch with one bad message (deleting an absent element) is
    // rejected whole: its add does not happen either.
    let ops = vec![
        plan::ElementOp {
            add: true,
            object: "local-pods-v4".into(),
            elements: vec![("10.42.0.50".into(), None)],
        },
        plan::ElementOp {
            add: false,
            object: "local-pods-v4".into(),
            elements: vec![("10.42.0.77".into(), None)],
        },
    ];
    let live = enforcer.applied().cloned().expect("applied");
    let rejected = lab
        .node
        .run(move || netpol::apply::netlink::apply_elements("nodenet-netpol", &live, &ops))
        .expect("node thread");
    assert!(
        matches!(
            rejected,
            Err(netpol::apply::netlink::NetlinkError::Rejected { .. })
        ),
        "{rejected:?}"
    );
    let local = lab.nft_owned(&["list", "set", "inet", "nodenet-netpol", "local-pods-v4"]);
    assert!(
        !local.contains("10.42.0.50"),
        "half a batch applied: {local}"
    );

    // The table is exactly the incremental plan.
    assert_eq!(enforcer.applied(), Some(planner.plan()));
    let mut enforcer = enforcer;
    let drift = lab
        .node
        .run(move || enforcer.repair_drift())
        .expect("node thread");
    assert_eq!(drift.expect("read back"), Vec::<String>::new());
}
