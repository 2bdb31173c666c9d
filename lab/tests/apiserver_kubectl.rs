//! The real kubectl against the in-memory API server on 127.0.0.1.
//! Output is parsed from `-o json`; table output is only checked for names.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use lab::apiserver::{ApiServer, ApiServerConfig, kubeconfig_yaml};
use serde_json::Value;

const KUBECTL: &str = "/usr/bin/kubectl";

/// A server on its own runtime thread plus a kubeconfig in a temp dir.
struct Cluster {
    dir: tempfile::TempDir,
}

impl Cluster {
    fn start() -> Self {
        assert!(
            Path::new(KUBECTL).exists(),
            "{KUBECTL} is required for this test and is missing"
        );
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("bind");
                tx.send(listener.local_addr().expect("addr"))
                    .expect("send addr");
                let server = ApiServer::new(ApiServerConfig::default());
                server.serve(listener).await.expect("serve");
            });
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("server started");
        let dir = tempfile::tempdir().expect("temp dir");
        let yaml = kubeconfig_yaml(&format!("http://{addr}"), "lab-test");
        std::fs::write(dir.path().join("kubeconfig"), yaml).expect("write kubeconfig");
        Cluster { dir }
    }

    fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("kubeconfig")
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(KUBECTL);
        cmd.arg("--kubeconfig")
            .arg(self.kubeconfig())
            .arg("--request-timeout=20s")
            .args(args);
        // Keep kubectl's discovery cache out of the real home directory.
        cmd.env("KUBECACHEDIR", self.dir.path().join("cache"));
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("kubectl runs")
    }

    /// Runs kubectl and requires success.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        serde_json::from_str(&self.ok(&all)).expect("kubectl printed JSON")
    }

    fn apply(&self, manifest: &str, extra: &[&str]) -> String {
        let path = self.dir.path().join("manifest.yaml");
        std::fs::write(&path, manifest).expect("write manifest");
        let path = path.to_string_lossy().into_owned();
        let mut args = vec!["apply", "-f", &path];
        args.extend(extra);
        self.ok(&args)
    }
}

fn cm_manifest(label: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  labels:\n    tier: \"{label}\"\ndata:\n  key: value\n"
    )
}

#[test]
fn get_lists_nodes_and_pods_across_namespaces() {
    let c = Cluster::start();
    c.apply(
        "apiVersion: v1\nkind: Node\nmetadata:\n  name: node-1\n",
        &[],
    );
    c.apply(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: dns-0\n  namespace: kube-system\nspec:\n  nodeName: node-1\n  containers:\n  - name: c\n    image: busybox\n",
        &[],
    );
    for wide in [&[][..], &["-o", "wide"][..]] {
        let mut args = vec!["get", "nodes,pods", "-A"];
        args.extend(wide);
        let table = c.ok(&args);
        assert!(
            table.contains("node-1") && table.contains("dns-0"),
            "{table}"
        );
    }
    let nodes = c.json(&["get", "nodes"]);
    assert_eq!(nodes["items"][0]["spec"]["podCIDR"], "10.42.0.0/24");
    let ns = c.json(&["get", "namespaces"]);
    let names: Vec<&str> = ns["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|n| n["metadata"]["name"].as_str())
        .collect();
    assert_eq!(
        names,
        ["default", "kube-node-lease", "kube-public", "kube-system"]
    );
}

#[test]
fn apply_twice_label_and_delete() {
    let c = Cluster::start();
    assert!(c.apply(&cm_manifest("one"), &[]).contains("created"));
    assert!(c.apply(&cm_manifest("one"), &[]).contains("unchanged"));
    assert!(c.apply(&cm_manifest("two"), &[]).contains("configured"));
    let cm = c.json(&["get", "configmap", "settings"]);
    assert_eq!(cm["metadata"]["labels"]["tier"], "two");
    let last = cm["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
        .as_str()
        .expect("annotation");
    assert!(last.contains("\"two\""), "{last}");

    c.ok(&["label", "configmap", "settings", "team=net"]);
    let cm = c.json(&["get", "configmap", "-l", "team=net,tier in (two)"]);
    assert_eq!(cm["items"].as_array().map(Vec::len), Some(1));

    c.ok(&["delete", "configmap", "settings"]);
    let out = c.run(&["get", "configmap", "settings"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("NotFound"));
}

#[test]
fn apply_merges_and_removes_list_entries() {
    let c = Cluster::start();
    let ds = |extra: &str| {
        format!(
            "apiVersion: apps/v1\nkind: DaemonSet\nmetadata:\n  name: agent\n  namespace: kube-system\nspec:\n  selector:\n    matchLabels: {{app: agent}}\n  template:\n    metadata:\n      labels: {{app: agent}}\n    spec:\n      containers:\n      - name: main\n        image: agent:1\n        env:\n        - {{name: A, value: \"1\"}}\n{extra}"
        )
    };
    c.apply(&ds("      - name: sidecar\n        image: side:1\n"), &[]);
    c.apply(&ds(""), &[]);
    let got = c.json(&["get", "daemonset", "agent", "-n", "kube-system"]);
    let containers = got["spec"]["template"]["spec"]["containers"]
        .as_array()
        .expect("containers");
    let names: Vec<&str> = containers
        .iter()
        .filter_map(|x| x["name"].as_str())
        .collect();
    assert_eq!(names, ["main"]);
    assert_eq!(containers[0]["env"][0]["value"], "1");
    assert_eq!(got["metadata"]["generation"], 2);
}

#[test]
fn server_side_apply_and_create() {
    let c = Cluster::start();
    c.apply(&cm_manifest("one"), &["--server-side"]);
    c.apply(&cm_manifest("two"), &["--server-side"]);
    let cm = c.json(&["get", "configmap", "settings"]);
    assert_eq!(cm["metadata"]["labels"]["tier"], "two");

    let path = c.dir.path().join("svc.yaml");
    let svc = "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  type: NodePort\n  selector: {app: web}\n  ports:\n  - {port: 80}\n";
    std::fs::write(&path, svc).expect("write");
    c.ok(&["create", "-f", &path.to_string_lossy()]);
    let out = c.run(&["create", "-f", &path.to_string_lossy()]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("AlreadyExists"));
    let svc = c.json(&["get", "service", "web"]);
    assert_eq!(svc["spec"]["clusterIP"], svc["spec"]["clusterIPs"][0]);
    assert_eq!(svc["spec"]["ports"][0]["nodePort"], 30000);
    let table = c.ok(&["get", "services"]);
    assert!(table.contains("80:30000/TCP"), "{table}");
}

#[test]
fn get_watch_prints_new_objects() {
    let c = Cluster::start();
    let mut child = c
        .command(&["get", "configmaps", "-w"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn kubectl get -w");
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    // Give the watch time to start, then create the object it must report.
    std::thread::sleep(Duration::from_millis(1500));
    c.apply(&cm_manifest("one"), &[]);
    let seen = std::iter::from_fn(|| rx.recv_timeout(Duration::from_secs(10)).ok())
        .any(|line| line.starts_with("settings "));
    child.kill().expect("kill the kubectl we spawned");
    let _ = child.wait();
    assert!(seen, "kubectl get -w did not print the new ConfigMap");
}

#[test]
fn typed_create_subcommands_and_namespace_deletion() {
    let c = Cluster::start();
    c.ok(&["create", "namespace", "team"]);
    c.ok(&[
        "create",
        "configmap",
        "conf",
        "-n",
        "team",
        "--from-literal=a=b",
    ]);
    c.ok(&[
        "create",
        "secret",
        "generic",
        "pw",
        "-n",
        "team",
        "--from-literal=p=q",
    ]);
    c.ok(&["create", "serviceaccount", "robot", "-n", "team"]);
    let cm = c.json(&["get", "configmap", "conf", "-n", "team"]);
    assert_eq!(cm["data"]["a"], "b");
    let secret = c.json(&["get", "secret", "pw", "-n", "team"]);
    assert_eq!(secret["data"]["p"], "cQ==");
    assert_eq!(
        c.json(&["get", "namespace", "team"])["metadata"]["labels"]["kubernetes.io/metadata.name"],
        "team"
    );

    c.ok(&["delete", "namespace", "team"]);
    let left = c.json(&["get", "configmaps,secrets,serviceaccounts", "-A"]);
    let in_team = left["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|o| o["metadata"]["namespace"] == "team")
        .count();
    assert_eq!(in_team, 0);
    let out = c.run(&["get", "namespace", "team"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("NotFound"));
}
