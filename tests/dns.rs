//! Cluster DNS seen from pods, over the wire with `dig`: every node answers
//! on the cluster DNS address, pods' search paths resolve the short forms,
//! and names follow Services as they come and go.

mod common;

use std::time::Duration;

use common::*;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::json;

const CLUSTER_DNS: &str = "10.43.0.10";

/// `dig` in a pod; returns its answer lines (`+short`), or the status word
/// for `+noall +comments` queries.
async fn dig(lab: &lab::Lab, pod: &str, args: &[&str]) -> String {
    let mut argv = vec!["dig", "+time=2", "+tries=2"];
    argv.extend_from_slice(args);
    let out = lab
        .exec_in_pod("default", pod, &argv, PROBE)
        .await
        .expect("dig runs (bind9-dnsutils)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn web_service() -> Service {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}]}
    }))
    .expect("service fixture")
}

/// Polls until `check` holds for the answer (watch events take a moment).
async fn eventually(
    lab: &lab::Lab,
    pod: &str,
    args: &[&str],
    check: impl Fn(&str) -> bool,
) -> String {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let answer = dig(lab, pod, args).await;
        if check(&answer) {
            return answer;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "dig {args:?} never matched; last answer:\n{answer}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_on_every_node_resolve_services_by_every_search_form() {
    let root = RootNs::capture();
    let lab = lab(2).await;
    create_pod(
        &lab,
        workload_pod("web", "node-1", &["serve", "--tcp", "8080"], json!([])),
    )
    .await;
    create_pod(&lab, workload_pod("c1", "node-1", &["sleep"], json!([]))).await;
    create_pod(&lab, workload_pod("c2", "node-2", &["sleep"], json!([]))).await;
    let services: Api<Service> = Api::namespaced(lab.client(), "default");
    let svc = services
        .create(&PostParams::default(), &web_service())
        .await
        .expect("create service");
    let cluster_ip = svc
        .spec
        .and_then(|s| s.cluster_ip)
        .expect("ClusterIP allocated");

    // The kube-dns Service is kept with the cluster DNS address.
    let system: Api<Service> = Api::namespaced(lab.client(), "kube-system");
    let kube_dns = system
        .get("kube-dns")
        .await
        .expect("kube-system/kube-dns exists");
    assert_eq!(
        kube_dns.spec.and_then(|s| s.cluster_ip).as_deref(),
        Some(CLUSTER_DNS)
    );

    for client in ["c1", "c2"] {
        let full = [
            "+short",
            "@10.43.0.10",
            "web.default.svc.cluster.local",
            "A",
        ];
        let answer = eventually(&lab, client, &full, |a| a.trim() == cluster_ip).await;
        assert_eq!(answer.trim(), cluster_ip, "{client}: full name");
        // The pod's resolv.conf (search path, ndots:5) completes short forms.
        for short in ["web", "web.default", "web.default.svc"] {
            let answer = dig(&lab, client, &["+short", "+search", short, "A"]).await;
            assert_eq!(answer.trim(), cluster_ip, "{client}: {short}");
        }
        let srv = dig(
            &lab,
            client,
            &["+short", "_http._tcp.web.default.svc.cluster.local", "SRV"],
        )
        .await;
        assert!(
            srv.contains("80 web.default.svc.cluster.local."),
            "{client}: SRV answer {srv}"
        );
    }

    // NXDOMAIN for a name that does not exist, NOERROR/empty for a missing type.
    let missing = dig(
        &lab,
        "c1",
        &["@10.43.0.10", "nope.default.svc.cluster.local", "A"],
    )
    .await;
    assert!(missing.contains("status: NXDOMAIN"), "{missing}");
    let nodata = dig(
        &lab,
        "c1",
        &["@10.43.0.10", "web.default.svc.cluster.local", "TXT"],
    )
    .await;
    assert!(
        nodata.contains("status: NOERROR") && nodata.contains("ANSWER: 0"),
        "{nodata}"
    );

    // A deleted Service stops resolving.
    services
        .delete("web", &DeleteParams::default())
        .await
        .expect("delete service");
    let gone = ["@10.43.0.10", "web.default.svc.cluster.local", "A"];
    eventually(&lab, "c2", &gone, |a| a.contains("status: NXDOMAIN")).await;

    teardown(lab).await;
    root.assert_unchanged();
}
