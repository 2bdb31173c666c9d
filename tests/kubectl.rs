//! The real kubectl against a lab: what it lists is what exists.

mod common;

use std::process::Command;

use common::*;
use serde_json::{Value, json};

fn kubectl(lab: &lab::Lab, args: &[&str]) -> std::process::Output {
    Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(lab.kubeconfig())
        .args(args)
        .output()
        .expect("kubectl is installed (scripts/install-deps)")
}

fn names_of_kind(list: &Value, kind: &str) -> Vec<String> {
    let mut names: Vec<String> = list["items"]
        .as_array()
        .expect("kubectl -o json prints a List")
        .iter()
        .filter(|o| o["kind"] == kind)
        .filter_map(|o| o["metadata"]["name"].as_str().map(str::to_string))
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_lists_the_nodes_and_pods_that_exist() {
    let root = RootNs::capture();
    let lab = lab(2).await;
    create_pod(&lab, workload_pod("a", "node-1", &["sleep"], json!([]))).await;
    create_pod(&lab, workload_pod("b", "node-2", &["sleep"], json!([]))).await;

    let out = kubectl(&lab, &["get", "nodes,pods", "-A", "-o", "json"]);
    assert!(
        out.status.success(),
        "kubectl get failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list: Value = serde_json::from_slice(&out.stdout).expect("kubectl prints JSON");
    assert_eq!(names_of_kind(&list, "Node"), ["node-1", "node-2"]);
    assert_eq!(names_of_kind(&list, "Pod"), ["a", "b"]);

    // The human table works too and names every object.
    let table = kubectl(&lab, &["get", "nodes,pods", "-A"]);
    assert!(
        table.status.success(),
        "kubectl get (table) failed: {}",
        String::from_utf8_lossy(&table.stderr)
    );
    let text = String::from_utf8_lossy(&table.stdout);
    for name in ["node-1", "node-2", "pod/a", "pod/b"] {
        assert!(text.contains(name), "kubectl table misses {name}:\n{text}");
    }

    teardown(lab).await;
    root.assert_unchanged();
}
