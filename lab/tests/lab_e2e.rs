//! Privileged end-to-end tests of the lab itself: real namespaces, the real
//! nodenet binary as daemon and CNI plugin, real processes. They fail (never
//! skip) when not root or when the binaries are missing.

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, PostParams};
use lab::{Lab, LabConfig};
use serde_json::{Value, json};
use std::time::Duration;

const T: Duration = Duration::from_secs(60);

fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "lab tests need root (they create network namespaces); run them as root"
    );
}

fn config(nodes: usize) -> LabConfig {
    match LabConfig::from_target_dir(nodes) {
        Ok(c) => c,
        Err(e) => panic!("{e} (run cargo build --workspace first)"),
    }
}

/// What the root namespace looks like; the lab must never change it.
fn root_netns_snapshot() -> String {
    let run = |args: &[&str]| {
        let out = std::process::Command::new("ip")
            .args(args)
            .output()
            .expect("ip runs");
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    [
        run(&["-j", "link"]),
        run(&["-j", "addr"]),
        run(&["-j", "route", "show", "table", "all"]),
    ]
    .join("\n")
}

fn pod(name: &str, node: &str, argv: &[&str]) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"nodeName": node, "containers": [{"name": "main", "image": "nodenet-workload", "command": argv}]}
    }))
    .expect("valid pod")
}

/// Runs a probe from a pod until it succeeds (the server may still be binding).
async fn probe_from(lab: &Lab, pod: &str, args: &[&str]) -> Value {
    let mut argv = vec!["nodenet-workload", "probe"];
    argv.extend_from_slice(args);
    let mut last = String::new();
    for _ in 0..50 {
        let out = lab
            .exec_in_pod("default", pod, &argv, Duration::from_secs(5))
            .await
            .expect("exec in pod");
        last = String::from_utf8_lossy(&out.stdout).to_string();
        if out.status.success() {
            return serde_json::from_str(last.trim()).expect("probe prints JSON");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("probe {args:?} from {pod} never succeeded; last report {last}");
}

fn reply(report: &Value) -> Value {
    let text = report["reply"]
        .as_str()
        .or(report["body"].as_str())
        .unwrap_or("");
    serde_json::from_str(text.trim()).unwrap_or(Value::Null)
}

fn assert_gone(prefix: &str, dir: &std::path::Path, pids: &[lab::procs::ProcEntry]) {
    let left = lab::netns::list_with_prefix(&format!("{prefix}-"));
    assert!(left.is_empty(), "namespaces left after down: {left:?}");
    assert!(
        !dir.exists(),
        "lab directory {} left after down",
        dir.display()
    );
    let alive: Vec<_> = pids.iter().filter(|e| lab::procs::is_running(e)).collect();
    assert!(alive.is_empty(), "processes left after down: {alive:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_node_lab_runs_pods_and_down_removes_everything() {
    require_root();
    let before = root_netns_snapshot();
    let lab = Lab::up(config(2)).await.expect("lab comes up");
    let nodes: Api<Node> = Api::all(lab.client());
    let listed = nodes.list(&Default::default()).await.expect("list nodes");
    assert_eq!(listed.items.len(), 2);
    assert!(
        listed.items.iter().all(lab::kubelet::node::is_ready),
        "every node Ready"
    );

    let pods: Api<Pod> = Api::namespaced(lab.client(), "default");
    let server = pod(
        "server",
        "node-1",
        &[
            "nodenet-workload",
            "serve",
            "--tcp",
            "8080",
            "--udp",
            "5353",
            "--http",
            "80",
        ],
    );
    pods.create(&PostParams::default(), &server)
        .await
        .expect("create server");
    pods.create(
        &PostParams::default(),
        &pod("client", "node-1", &["nodenet-workload", "sleep"]),
    )
    .await
    .expect("create client");
    let server = lab
        .wait_pod_running("default", "server", T)
        .await
        .expect("server runs");
    lab.wait_pod_running("default", "client", T)
        .await
        .expect("client runs");
    let ip = server
        .status
        .and_then(|s| s.pod_ip)
        .expect("server has an IP");
    assert!(
        ip.starts_with("10.42."),
        "pod IP {ip} from the cluster CIDR"
    );

    for (proto, port) in [("tcp", "8080"), ("udp", "5353"), ("http", "80")] {
        let report = probe_from(&lab, "client", &[proto, &format!("{ip}:{port}")]).await;
        assert_eq!(
            reply(&report)["hostname"],
            "server",
            "{proto} answered by the server pod: {report}"
        );
    }

    lab.restart_nodenet("node-1")
        .await
        .expect("restart nodenet");
    let again = probe_from(&lab, "client", &["tcp", &format!("{ip}:8080")]).await;
    assert_eq!(reply(&again)["hostname"], "server");

    let (prefix, dir) = (lab.prefix().to_string(), lab.dir().to_path_buf());
    let created = lab.netns_names();
    assert!(
        created.iter().filter(|n| n.contains("-p-")).count() >= 2,
        "pod namespaces recorded: {created:?}"
    );
    let pids = lab::procs::read(&lab.dirs().pids());
    assert!(
        pids.len() >= 4,
        "nodenet x2 and two pod processes recorded: {pids:?}"
    );
    lab.down().await.expect("down");
    assert_gone(&prefix, &dir, &pids);
    assert_eq!(
        before,
        root_netns_snapshot(),
        "root network namespace changed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_lab_cleans_up_like_down() {
    require_root();
    let lab = Lab::up(config(1)).await.expect("lab comes up");
    let pods: Api<Pod> = Api::namespaced(lab.client(), "default");
    pods.create(
        &PostParams::default(),
        &pod("sleeper", "node-1", &["nodenet-workload", "sleep"]),
    )
    .await
    .expect("create");
    lab.wait_pod_running("default", "sleeper", T)
        .await
        .expect("pod runs");
    let (prefix, dir) = (lab.prefix().to_string(), lab.dir().to_path_buf());
    let pids = lab::procs::read(&lab.dirs().pids());
    drop(lab);
    assert_gone(&prefix, &dir, &pids);
}

#[test]
fn cli_down_cleans_up_after_the_lab_process_died() {
    require_root();
    let _ = config(1);
    let bin = env!("CARGO_BIN_EXE_nodenet-lab");
    let name = format!("t{}", std::process::id());
    let up = std::process::Command::new(bin)
        .args(["up", "--nodes", "1", "--name", &name])
        .output()
        .expect("run up");
    assert!(
        up.status.success(),
        "up failed: {}",
        String::from_utf8_lossy(&up.stderr)
    );
    let prefix = lab::cli::prefix_for(&name);
    let dir = lab::dirs::LabDirs::for_prefix(&prefix);
    let pids = lab::procs::read(&dir.pids());
    let state: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.root().join("serve.json")).expect("serve.json"),
    )
    .expect("json");
    let serve_pid = state["pid"].as_i64().expect("pid") as i32;
    // Kill the lab process without letting it clean up.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(serve_pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill serve");
    std::thread::sleep(Duration::from_millis(200));
    let down = std::process::Command::new(bin)
        .args(["down", "--name", &name])
        .output()
        .expect("run down");
    assert!(
        down.status.success(),
        "down failed: {}",
        String::from_utf8_lossy(&down.stderr)
    );
    assert_gone(&prefix, dir.root(), &pids);
}
