use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;
use crate::model::{Direction, Family, Labels, NamespaceInfo, PodInfo, Policy};
use crate::plan::{self, Inputs, NodeScope, names};

/// A scratch run dir, removed on drop (panics included).
struct TempRunDir(PathBuf);

impl TempRunDir {
    fn new() -> TempRunDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("netpol-hs-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&path).expect("create temp run dir");
        TempRunDir(path)
    }
}

impl Drop for TempRunDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn entry(ip: &str, name: &str, cid: &str) -> PendingPod {
    PendingPod {
        ip: ip.parse().expect("ip"),
        namespace: "x".into(),
        name: name.into(),
        container_id: cid.into(),
    }
}

/// What the plugin writes (flannel::cni::netpol_handshake).
fn announce(hs: &Handshake, e: &PendingPod) {
    let body = serde_json::json!({"namespace": e.namespace, "name": e.name, "containerID": e.container_id});
    std::fs::write(
        hs.dir().join(NETPOL_PENDING_DIR).join(e.ip.to_string()),
        body.to_string(),
    )
    .expect("write pending");
}

fn ready_of(hs: &Handshake, ip: &str) -> Option<String> {
    std::fs::read_to_string(hs.dir().join(NETPOL_READY_DIR).join(ip)).ok()
}

fn pending_exists(hs: &Handshake, ip: &str) -> bool {
    hs.dir().join(NETPOL_PENDING_DIR).join(ip).exists()
}

#[test]
fn start_makes_private_dirs_clears_ready_and_keeps_pending() {
    let run = TempRunDir::new();
    let first = Handshake::start(&run.0).expect("start");
    announce(&first, &entry("10.42.0.5", "a", "c1"));
    std::fs::write(first.dir().join(NETPOL_READY_DIR).join("10.42.0.9"), "old").expect("write");
    let hs = Handshake::start(&run.0).expect("restart");
    for sub in [NETPOL_PENDING_DIR, NETPOL_READY_DIR] {
        let mode = std::fs::metadata(hs.dir().join(sub))
            .expect("stat")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700, "{sub}");
    }
    assert_eq!(
        ready_of(&hs, "10.42.0.9"),
        None,
        "stale confirmation cleared"
    );
    assert_eq!(
        hs.scan().expect("scan"),
        vec![entry("10.42.0.5", "a", "c1")]
    );
}

#[test]
fn scan_ignores_temporary_and_malformed_files() {
    let run = TempRunDir::new();
    let hs = Handshake::start(&run.0).expect("start");
    let pending = hs.dir().join(NETPOL_PENDING_DIR);
    std::fs::write(pending.join(".10.42.0.6.tmp.77"), "{}").expect("write");
    std::fs::write(pending.join("10.42.0.7"), "not json").expect("write");
    std::fs::write(pending.join("10.42.0.8"), r#"{"namespace":"x","name":"b"}"#).expect("write");
    announce(&hs, &entry("fd00::5", "a", "c1"));
    announce(&hs, &entry("10.42.0.5", "a", "c1"));
    let want = vec![entry("10.42.0.5", "a", "c1"), entry("fd00::5", "a", "c1")];
    assert_eq!(hs.scan().expect("scan"), want);
}

#[test]
fn settle_confirms_merged_drops_settled_and_gone_entries() {
    let run = TempRunDir::new();
    let mut hs = Handshake::start(&run.0).expect("start");
    let (a, b, c) = (
        entry("10.42.0.5", "a", "c1"),
        entry("10.42.0.6", "b", "c2"),
        entry("10.42.0.7", "c", "c3"),
    );
    for e in [&a, &b, &c] {
        announce(&hs, e);
    }
    let all = hs.scan().expect("scan");
    use Disposition::{Merged, Settled, Wait};
    hs.settle(&all, &[Merged, Merged, Wait]).expect("settle");
    assert_eq!(ready_of(&hs, "10.42.0.5").as_deref(), Some("c1"));
    assert_eq!(ready_of(&hs, "10.42.0.6").as_deref(), Some("c2"));
    assert_eq!(
        ready_of(&hs, "10.42.0.7"),
        None,
        "unknown pod not confirmed"
    );
    assert!(pending_exists(&hs, "10.42.0.5") && pending_exists(&hs, "10.42.0.7"));

    // a: the API now shows its IP; b: its Pod left the store; c: still unknown.
    hs.settle(&all, &[Settled, Wait, Wait]).expect("settle");
    assert!(!pending_exists(&hs, "10.42.0.5"));
    assert!(!pending_exists(&hs, "10.42.0.6"), "gone pod dropped");
    assert!(
        pending_exists(&hs, "10.42.0.7"),
        "never-seen pod keeps waiting"
    );
    assert_eq!(ready_of(&hs, "10.42.0.5").as_deref(), Some("c1"));
}

#[test]
fn a_pending_file_of_a_newer_container_is_not_dropped() {
    let run = TempRunDir::new();
    let mut hs = Handshake::start(&run.0).expect("start");
    let old = entry("10.42.0.5", "a", "c1");
    announce(&hs, &old);
    let scanned = hs.scan().expect("scan");
    // DEL of c1 and ADD of c2 with the same IP happen after the scan.
    announce(&hs, &entry("10.42.0.5", "a2", "c2"));
    hs.settle(&scanned, &[Disposition::Settled])
        .expect("settle");
    assert!(pending_exists(&hs, "10.42.0.5"));
    assert_eq!(
        hs.scan().expect("scan"),
        vec![entry("10.42.0.5", "a2", "c2")]
    );
}

fn scope() -> NodeScope {
    NodeScope {
        name: "node-1".into(),
        pod_cidrs: vec!["10.42.0.0/24".parse().expect("cidr")],
        fail_closed_unknown_pods: true,
    }
}

fn deny_all(ns: &str) -> Policy {
    let np = serde_json::from_value(serde_json::json!({
        "metadata": {"namespace": ns, "name": "deny"},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}
    }))
    .expect("policy JSON");
    let mut problems = Vec::new();
    Policy::from_api(&np, &mut problems)
}

#[test]
fn merged_pods_are_known_to_the_plan_and_isolated_if_selected() {
    // x/a (no policy in x) and y/b (deny-all in y) were just added by CNI;
    // the API shows neither IP yet.
    let ipless = |ns: &str, name: &str| PodInfo {
        namespace: ns.into(),
        name: name.into(),
        node: Some("node-1".into()),
        labels: Labels::new(),
        ..PodInfo::default()
    };
    let mut pods = vec![ipless("x", "a"), ipless("y", "b")];
    let pending = [
        entry("10.42.0.5", "a", "c1"),
        PendingPod {
            namespace: "y".into(),
            ..entry("10.42.0.6", "b", "c2")
        },
    ];
    assert_eq!(
        merge_pending(&mut pods, &pending, "node-1"),
        vec![Disposition::Merged; 2]
    );
    let namespaces = [
        NamespaceInfo::new("x", Labels::new()),
        NamespaceInfo::new("y", Labels::new()),
    ];
    let policies = [deny_all("y")];
    let node = scope();
    let plan = plan::build(&Inputs {
        policies: &policies,
        pods: &pods,
        namespaces: &namespaces,
        node: &node,
    });
    let local = &plan.sets[&names::local_pods_set(Family::V4)].elements;
    assert!(
        local.contains("10.42.0.5"),
        "unselected pod passes the guard: {local:?}"
    );
    assert!(local.contains("10.42.0.6"), "{local:?}");
    let ingress = &plan.maps[&names::dispatch_map(Direction::Ingress, Family::V4)].elements;
    assert!(
        ingress.contains_key("10.42.0.6"),
        "selected pod isolated: {ingress:?}"
    );
    assert!(!ingress.contains_key("10.42.0.5"), "{ingress:?}");
}
