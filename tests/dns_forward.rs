//! Forwarding seen from pods, over the wire with `dig`: names outside the
//! cluster domain go to the node's upstream resolver (the lab's dnsmasq in
//! the underlay, see `lab::upstream`) over UDP and TCP, NXDOMAIN stays
//! NXDOMAIN, a truncated answer is completed over TCP, the cache keeps
//! answering through an upstream outage, and a resolv.conf that names the
//! cluster DNS address itself is not looped on; when it names nothing else,
//! cluster names are still served.

mod common;

use std::net::Ipv4Addr;
use std::time::Duration;

use common::*;
use lab::upstream;
use lab::{Lab, LabConfig};
use serde_json::json;

const CLUSTER_DNS: &str = "10.43.0.10";
/// The Service the component keeps, resolving to the cluster DNS address.
const KUBE_DNS: &str = "kube-dns.kube-system.svc.cluster.local";

/// `dig @<cluster DNS>` in a pod; returns its whole output.
async fn dig(lab: &Lab, pod: &str, args: &[&str]) -> String {
    let server = format!("@{CLUSTER_DNS}");
    let mut argv = vec!["dig", "+time=3", "+tries=1", server.as_str()];
    argv.extend_from_slice(args);
    let out = lab
        .exec_in_pod("default", pod, &argv, PROBE)
        .await
        .expect("dig runs (bind9-dnsutils)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The `+short` answer lines.
async fn short(lab: &Lab, pod: &str, args: &[&str]) -> Vec<String> {
    let mut argv = vec!["+short"];
    argv.extend_from_slice(args);
    let out = dig(lab, pod, &argv).await;
    out.lines().map(str::to_string).collect()
}

/// node's /metrics body (the daemon listens in the node's namespace).
async fn metrics(lab: &Lab, node: &str) -> String {
    let url = format!("{}/metrics", lab::nodenet::METRICS_ADDR);
    let argv = ["nodenet-workload", "probe", "http", url.as_str()];
    let out = lab.exec_on_node(node, &argv, PROBE).await.expect("scrape");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().last().unwrap_or_default();
    let v: serde_json::Value = serde_json::from_str(line)
        .unwrap_or_else(|e| panic!("probe output is not JSON ({e}): {text}"));
    v["body"]
        .as_str()
        .expect("probe gives the body")
        .to_string()
}

/// The sum of every series of metric `name`.
fn metric_sum(body: &str, name: &str) -> u64 {
    body.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// A two-node lab whose nodes read `resolv_conf` as their upstreams.
async fn lab_with_resolv_conf(resolv_conf: &std::path::Path) -> Lab {
    require_root();
    let mut config = LabConfig::from_target_dir(2)
        .expect("lab binaries (run cargo build --workspace --bins first)");
    config.nodenet_args = vec!["--resolv-conf".into(), resolv_conf.display().to_string()];
    Lab::up(config).await.expect("lab comes up")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_resolve_external_names_through_the_node_upstream() {
    let root = RootNs::capture();
    // The node's resolv.conf names the cluster DNS address first (a node
    // whose resolver points at the cluster DNS): it must be skipped.
    let dir = tempfile::tempdir().expect("tempdir");
    let resolv = dir.path().join("resolv.conf");
    let text = format!(
        "nameserver {CLUSTER_DNS}\nnameserver {}\n",
        upstream::ADDR.ip()
    );
    std::fs::write(&resolv, text).expect("write resolv.conf");
    let lab = lab_with_resolv_conf(&resolv).await;
    lab.start_upstream_dns()
        .await
        .expect("upstream dnsmasq starts");
    create_pod(&lab, workload_pod("c1", "node-1", &["sleep"], json!([]))).await;
    create_pod(&lab, workload_pod("c2", "node-2", &["sleep"], json!([]))).await;
    wait_serving(&lab, "c1").await;
    wait_serving(&lab, "c2").await;

    not_looped_on(&lab).await;
    for pod in ["c1", "c2"] {
        forwarded_over_udp_and_tcp(&lab, pod).await;
        large_answer_completed_over_tcp(&lab, pod).await;
    }
    cache_hits_counted(&lab).await;
    cache_survives_an_upstream_outage(&lab).await;
    only_ourselves_as_upstream(&lab, &resolv).await;

    teardown(lab).await;
    root.assert_unchanged();
}

/// Two uncached questions from node-1's pod: node-1 sees exactly those two
/// requests and asks its upstreams exactly twice. Had it forwarded to
/// itself (the first nameserver), the looped query would count as a
/// third request and a third upstream query.
async fn not_looped_on(lab: &Lab) {
    let before = metrics(lab, "node-1").await;
    assert_eq!(
        short(lab, "c1", &[upstream::WWW.0, "A"]).await,
        [upstream::WWW.1.to_string()]
    );
    let txt = short(lab, "c1", &[upstream::TXT.0, "TXT"]).await;
    assert_eq!(txt, [format!("\"{}\"", upstream::TXT.1)]);
    let after = metrics(lab, "node-1").await;
    for name in [
        "coredns_dns_requests_total",
        "nodenet_dns_upstream_queries_total",
    ] {
        let delta = metric_sum(&after, name) - metric_sum(&before, name);
        assert_eq!(delta, 2, "{name} rose by {delta} for two questions");
    }
}

async fn forwarded_over_udp_and_tcp(lab: &Lab, pod: &str) {
    let www = upstream::WWW.1.to_string();
    let answer = short(lab, pod, &[upstream::WWW.0, "A"]).await;
    assert_eq!(answer, [www.as_str()], "{pod}: over UDP");
    let tcp = dig(lab, pod, &["+tcp", upstream::WWW.0, "A"]).await;
    assert!(tcp.contains("(TCP)"), "{pod}: not over TCP:\n{tcp}");
    assert!(tcp.contains(&www), "{pod}: TCP answer:\n{tcp}");
    // NXDOMAIN from the upstream reaches the pod as NXDOMAIN.
    let missing = dig(lab, pod, &[upstream::MISSING, "A"]).await;
    assert!(missing.contains("status: NXDOMAIN"), "{pod}:\n{missing}");
}

async fn large_answer_completed_over_tcp(lab: &Lab, pod: &str) {
    // Over UDP alone: truncated (1 600 bytes of answers > 1 232).
    let udp = dig(
        lab,
        pod,
        &["+ignore", "+noall", "+comments", upstream::MANY, "A"],
    )
    .await;
    let flags = udp.lines().find(|l| l.starts_with(";; flags:"));
    assert!(
        flags.is_some_and(|f| f.split_whitespace().any(|w| w == "tc")),
        "{pod}: no TC over UDP:\n{udp}"
    );
    // dig's default: retry over TCP and get every record.
    let full = dig(lab, pod, &[upstream::MANY, "A"]).await;
    assert!(
        full.contains("Truncated, retrying in TCP mode"),
        "{pod}:\n{full}"
    );
    let mut got: Vec<Ipv4Addr> = short(lab, pod, &[upstream::MANY, "A"])
        .await
        .iter()
        .map(|l| l.parse().expect("an A record per line"))
        .collect();
    got.sort();
    assert_eq!(got, upstream::many_addrs(), "{pod}: the answer over TCP");
}

/// A repeated question is a cache hit in node-1's /metrics.
async fn cache_hits_counted(lab: &Lab) {
    let (name, ip) = upstream::SPARE[0];
    assert_eq!(short(lab, "c1", &[name, "A"]).await, [ip.to_string()]);
    let hits = |body: &str| metric_sum(body, "coredns_cache_hits_total");
    let before = hits(&metrics(lab, "node-1").await);
    assert_eq!(short(lab, "c1", &[name, "A"]).await, [ip.to_string()]);
    let after = hits(&metrics(lab, "node-1").await);
    assert!(after > before, "cache hits {before} -> {after}");
    // Cache it on node-2 too, for the outage below.
    assert_eq!(short(lab, "c2", &[name, "A"]).await, [ip.to_string()]);
}

/// With the upstream killed, cached names still answer and others get
/// SERVFAIL (not NXDOMAIN, not a timeout).
async fn cache_survives_an_upstream_outage(lab: &Lab) {
    assert!(lab.stop_upstream_dns().await.expect("stop upstream"));
    let (cached, ip) = upstream::SPARE[0];
    let (uncached, _) = upstream::SPARE[1];
    for pod in ["c1", "c2"] {
        assert_eq!(short(lab, pod, &[cached, "A"]).await, [ip.to_string()]);
        let out = dig(lab, pod, &[uncached, "A"]).await;
        assert!(out.contains("status: SERVFAIL"), "{pod}:\n{out}");
    }
    // Cluster names are unaffected.
    for pod in ["c1", "c2"] {
        let kube_dns = short(lab, pod, &[KUBE_DNS, "A"]).await;
        assert_eq!(kube_dns, [CLUSTER_DNS], "{pod}: {KUBE_DNS}");
    }
}

/// Waits until the pod's node serves cluster names (listening and synced).
async fn wait_serving(lab: &Lab, pod: &str) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while short(lab, pod, &[KUBE_DNS, "A"]).await != [CLUSTER_DNS] {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{pod}: {KUBE_DNS} never answered"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// node-1 restarts with a resolv.conf naming only the cluster DNS address:
/// it serves cluster names, answers SERVFAIL for the rest without asking
/// anyone (not even itself), while node-2 still forwards.
async fn only_ourselves_as_upstream(lab: &Lab, resolv: &std::path::Path) {
    lab.start_upstream_dns()
        .await
        .expect("upstream dnsmasq starts again");
    std::fs::write(resolv, format!("nameserver {CLUSTER_DNS}\n")).expect("write resolv.conf");
    lab.restart_nodenet("node-1")
        .await
        .expect("restart nodenet");
    wait_serving(lab, "c1").await;
    let before = metrics(lab, "node-1").await;
    let out = dig(lab, "c1", &[upstream::WWW.0, "A"]).await;
    assert!(out.contains("status: SERVFAIL"), "c1:\n{out}");
    let after = metrics(lab, "node-1").await;
    let asked = |body: &str| metric_sum(body, "nodenet_dns_upstream_queries_total");
    assert_eq!(asked(&after), asked(&before), "node-1 asked an upstream");
    let www = upstream::WWW.1.to_string();
    assert_eq!(
        short(lab, "c2", &[upstream::WWW.0, "A"]).await,
        [www.as_str()]
    );
}
