//! NetworkPolicy and nodenet's node-local cluster DNS: an egress policy
//! written for CoreDNS (to pods `k8s-app=kube-dns` in kube-system, named
//! ports `dns`/`dns-tcp`) still lets its pods resolve, over UDP and TCP,
//! though nodenet answers at the cluster DNS address on the node; a pod
//! whose egress is denied cannot reach the DNS address either; and the
//! policy allows nothing else.

mod common;

use std::time::Duration;

use common::netpol::*;
use common::*;
use lab::Lab;
use serde_json::json;

const CLUSTER_DNS: &str = "10.43.0.10";
const KUBE_DNS: &str = "kube-dns.kube-system.svc.cluster.local";

/// Whether `dig` from the pod gets the kube-dns Service's address.
async fn resolves(lab: &Lab, pod: &ModelPod, tcp: bool) -> bool {
    let server = format!("@{CLUSTER_DNS}");
    let transport = if tcp { "+tcp" } else { "+notcp" };
    let argv = [
        "dig",
        "+time=1",
        "+tries=1",
        "+short",
        transport,
        server.as_str(),
        KUBE_DNS,
        "A",
    ];
    let out = lab
        .exec_in_pod(&pod.namespace, &pod.name, &argv, PROBE)
        .await
        .expect("dig runs (bind9-dnsutils)");
    String::from_utf8_lossy(&out.stdout).trim() == CLUSTER_DNS
}

/// Polls until `resolves` gives `want` over UDP and TCP, or panics.
async fn until_resolution(lab: &Lab, pod: &ModelPod, want: bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let udp = resolves(lab, pod, false).await;
        let tcp = resolves(lab, pod, true).await;
        if udp == want && tcp == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{}: resolution over UDP {udp}, TCP {tcp}; wanted {want}",
            pod.id()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn coredns_only() -> serde_json::Value {
    json!({
        "podSelector": {"matchLabels": {"pod": "a"}},
        "policyTypes": ["Egress"],
        "egress": [{
            "to": [{
                "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}
            }],
            "ports": [{"protocol": "UDP", "port": "dns"}, {"protocol": "TCP", "port": "dns-tcp"}]
        }]
    })
}

fn deny_egress() -> serde_json::Value {
    json!({"podSelector": {"matchLabels": {"pod": "b"}}, "policyTypes": ["Egress"]})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_written_for_coredns_hold_for_the_node_local_dns() {
    let root = RootNs::capture();
    let lab = lab(2).await;
    create_namespace(&lab, "x", &labels(&[("ns", "x")])).await;
    let pods = start_pods(
        &lab,
        vec![
            server_pod("x", "a", "node-1", &labels(&[("pod", "a")])),
            server_pod("x", "b", "node-2", &labels(&[("pod", "b")])),
        ],
    )
    .await;
    let (a, b) = (&pods[0], &pods[1]);
    // Without policies both resolve: the baseline the denial is read against.
    until_resolution(&lab, a, true).await;
    until_resolution(&lab, b, true).await;

    create_policy(&lab, &policy("x", "coredns-only", coredns_only())).await;
    create_policy(&lab, &policy("x", "deny-egress", deny_egress())).await;
    until_resolution(&lab, b, false).await;
    // `a` is isolated for egress too (it cannot reach b), yet resolves.
    let b80 = format!("{}:80", b.ip);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while probe_pairs(&lab, &pods, &[(0, 1, "TCP", 80)]).await[0] {
        assert!(
            tokio::time::Instant::now() < deadline,
            "a still reaches {b80}: its egress policy is not in force"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    until_resolution(&lab, a, true).await;

    teardown(lab).await;
    root.assert_unchanged();
}
