//! A deleted pod's IP goes to a new pod only after the CNI DEL of the old one:
//! with a /29 pod subnet (five addresses after network, gateway and
//! broadcast), a sixth pod waits until one of the five is deleted, then gets
//! exactly the released address.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::*;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};
use lab::{Lab, LabConfig};
use serde_json::json;

const POD_ADDRESSES: usize = 5;

async fn small_subnet_lab() -> Lab {
    require_root();
    let mut config = LabConfig::from_target_dir(1)
        .expect("lab binaries (run cargo build --workspace --bins first)");
    config.api.node_cidr_prefix = 29;
    Lab::up(config).await.expect("lab comes up")
}

async fn pod_ip_of(api: &Api<Pod>, name: &str) -> Option<String> {
    let pod = api.get(name).await.expect("get pod");
    pod.status.and_then(|s| s.pod_ip)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_pods_ip_is_reused_only_after_del() {
    let root = RootNs::capture();
    let lab = small_subnet_lab().await;
    let api: Api<Pod> = Api::namespaced(lab.client(), "default");

    let mut held = HashSet::new();
    for i in 0..POD_ADDRESSES {
        let pod = create_pod(
            &lab,
            workload_pod(&format!("p{i}"), "node-1", &["sleep"], json!([])),
        )
        .await;
        assert!(held.insert(pod_ip(&pod)), "address handed out twice");
    }

    // The subnet is full: the next pod must not get an address, however long
    // the kubelet retries.
    let late = workload_pod("late", "node-1", &["sleep"], json!([]));
    api.create(&PostParams::default(), &late)
        .await
        .expect("create late pod");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        pod_ip_of(&api, "late").await,
        None,
        "a pod got an address from a full subnet"
    );

    let victim = lab
        .wait_pod_running("default", "p2", WAIT)
        .await
        .expect("p2 runs");
    let released = pod_ip(&victim);
    delete_pod(&lab, "p2").await;
    wait_pod_gone(&lab, "p2").await;

    let late = lab
        .wait_pod_running("default", "late", WAIT)
        .await
        .expect("late pod runs once an address is free");
    assert_eq!(
        pod_ip(&late),
        released,
        "the late pod should get the one released address"
    );

    teardown(lab).await;
    root.assert_unchanged();
}
