//! Shared helpers of the end-to-end tests: privileges, pods, probes, and the
//! root-namespace check every test ends with.
#![allow(dead_code)] // each test binary uses a different part of this module

pub mod dualstack;
pub mod netpol;
pub mod overlay;
pub mod rootns;

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, PostParams};
use lab::{Lab, LabConfig};
use serde_json::json;

pub use rootns::RootNs;

pub const WAIT: Duration = Duration::from_secs(60);
pub const PROBE: Duration = Duration::from_secs(10);

/// End-to-end tests create network namespaces; without root they must fail,
/// loudly, rather than pass having tested nothing.
pub fn require_root() {
    let euid = nix_euid();
    assert_eq!(
        euid, 0,
        "end-to-end tests need root (network namespaces, nftables); run scripts/test as root"
    );
}

fn nix_euid() -> u32 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .expect("effective uid in /proc/self/status")
}

/// A lab of `nodes` nodes running the binaries of this build.
pub async fn lab(nodes: usize) -> Lab {
    require_root();
    let config = LabConfig::from_target_dir(nodes)
        .expect("lab binaries (run cargo build --workspace --bins first)");
    Lab::up(config).await.expect("lab comes up")
}

/// A pod on `node` running the test workload with `args`.
pub fn workload_pod(name: &str, node: &str, args: &[&str], ports: serde_json::Value) -> Pod {
    let mut command = vec!["nodenet-workload"];
    command.extend_from_slice(args);
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": {"app": name}},
        "spec": {
            "nodeName": node,
            "containers": [{"name": "main", "image": "nodenet/workload", "command": command, "ports": ports}]
        }
    }))
    .expect("pod fixture is valid")
}

/// Runs `nodenet-workload <args>` as a hostNetwork pod `name` on `node`
/// (a server in the node's own namespace) and waits until it runs.
pub async fn create_host_pod(lab: &Lab, name: &str, node: &str, args: &[&str]) -> Pod {
    let mut pod = workload_pod(name, node, args, json!([]));
    pod.spec.as_mut().expect("spec").host_network = Some(true);
    create_pod(lab, pod).await
}

pub async fn create_pod(lab: &Lab, pod: Pod) -> Pod {
    let name = pod.metadata.name.clone().expect("pod fixture has a name");
    let api: Api<Pod> = Api::namespaced(lab.client(), "default");
    api.create(&PostParams::default(), &pod)
        .await
        .expect("create pod");
    lab.wait_pod_running("default", &name, WAIT)
        .await
        .expect("pod runs")
}

pub async fn delete_pod(lab: &Lab, name: &str) {
    let api: Api<Pod> = Api::namespaced(lab.client(), "default");
    api.delete(name, &DeleteParams::default())
        .await
        .expect("delete pod");
}

pub fn pod_ip(pod: &Pod) -> IpAddr {
    pod.status
        .as_ref()
        .and_then(|s| s.pod_ip.as_deref())
        .and_then(|ip| ip.parse().ok())
        .expect("running pod has status.podIP")
}

/// Where a probe runs: a pod of namespace `default`, or a node's namespace.
#[derive(Debug, Clone, Copy)]
pub enum ProbeFrom<'a> {
    Pod(&'a str),
    Node(&'a str),
}

/// Runs `nodenet-workload probe <proto> <target>` (2 s timeout); its output.
pub async fn run_probe(
    lab: &Lab,
    from: ProbeFrom<'_>,
    proto: &str,
    target: &str,
) -> std::process::Output {
    let argv = [
        "nodenet-workload",
        "probe",
        proto,
        target,
        "--timeout",
        "2000",
    ];
    let out = match from {
        ProbeFrom::Pod(pod) => lab.exec_in_pod("default", pod, &argv, PROBE).await,
        ProbeFrom::Node(node) => lab.exec_on_node(node, &argv, PROBE).await,
    };
    out.unwrap_or_else(|e| panic!("exec probe from {from:?}: {e}"))
}

/// Runs a probe in a pod; true if it got through.
pub async fn probe_from_pod(lab: &Lab, pod: &str, proto: &str, target: &str) -> bool {
    let out = run_probe(lab, ProbeFrom::Pod(pod), proto, target).await;
    out.status.success()
}

/// Like `probe_from_pod`, from a node's network namespace.
pub async fn probe_from_node(lab: &Lab, node: &str, proto: &str, target: &str) -> bool {
    let out = run_probe(lab, ProbeFrom::Node(node), proto, target).await;
    out.status.success()
}

/// Runs `argv` in a node's namespace; panics with its stderr if it fails.
pub async fn exec_on_node_ok(lab: &Lab, node: &str, argv: &[&str]) {
    let out = lab
        .exec_on_node(node, argv, PROBE)
        .await
        .expect("exec on node");
    assert!(
        out.status.success(),
        "{argv:?} on {node}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Asserts that nothing of a lab that was torn down remains: namespaces,
/// files.
pub fn assert_lab_gone(netns: &[String], dir: &Path) {
    let listed = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list");
    let listed = String::from_utf8_lossy(&listed.stdout);
    for ns in netns {
        let present = listed
            .lines()
            .any(|l| l.split_whitespace().next() == Some(ns.as_str()));
        assert!(!present, "network namespace {ns} survived lab teardown");
    }
    assert!(
        !dir.exists(),
        "lab directory {} survived teardown",
        dir.display()
    );
}

/// Asserts that no process still runs with the lab directory on its command
/// line (the per-node daemons and pod processes all name it).
pub fn assert_no_lab_process(dir: &Path) {
    let needle = dir.to_string_lossy().into_owned();
    for entry in std::fs::read_dir("/proc").expect("read /proc").flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        assert!(
            !cmdline.contains(&needle),
            "process {} survived lab teardown: {cmdline}",
            entry.file_name().to_string_lossy()
        );
    }
}

/// Tears the lab down and proves nothing of it remains.
pub async fn teardown(lab: Lab) {
    let netns = lab.netns_names();
    let dir = lab.dir().to_path_buf();
    lab.down().await.expect("lab teardown");
    assert_lab_gone(&netns, &dir);
    assert_no_lab_process(&dir);
}

/// Waits until a deleted pod's object is gone (the kubelet ran CNI DEL and
/// confirmed the deletion).
pub async fn wait_pod_gone(lab: &Lab, name: &str) {
    let api: Api<Pod> = Api::namespaced(lab.client(), "default");
    let deadline = tokio::time::Instant::now() + WAIT;
    while api.get_opt(name).await.expect("get pod").is_some() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "pod {name} still exists after {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
