//! Cluster DNS in a dual-stack lab (Services from 10.43.0.0/16 and
//! fd43::/112, pods with an IPv4 and an IPv6 address, nodenet run with
//! `--cluster-dns 10.43.0.10,fd43::a`), seen from pods on both nodes with
//! `dig`, asking the cluster DNS over IPv4 and over IPv6, by section of the
//! Kubernetes DNS specification (../shared/reference/dns.md):
//!
//! - §2.3 ClusterIP: A and AAAA of a dual-stack Service; AAAA of a
//!   single-stack IPv6 Service and NODATA for its A; SRV of a named port;
//!   PTR of an IPv6 ClusterIP under ip6.arpa;
//! - §2.4 headless: per-endpoint A and AAAA, SRV per endpoint hostname
//!   (the dashed address) and family, PTR of an IPv6 endpoint (one per
//!   Service it backs);
//! - pod records for IPv6 (`fd42-...--5.<ns>.pod.<zone>` AAAA, NODATA for A);
//! - node names resolve to both InternalIPs;
//! - the kube-dns Service holds both cluster DNS addresses;
//! - a forwarded name (A and AAAA) is answered, and the lab's upstream
//!   (listening on 172.30.0.1 and fd30::1, both in the nodes'
//!   resolv.conf) saw questions from each node's IPv6 address.

mod common;

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::Duration;

use common::dualstack::{DualBackend, dual_lab, pod_ips_dual};
use common::*;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, PostParams};
use lab::{Lab, upstream};
use serde_json::{Value, json};

/// The cluster DNS addresses: each client asks both.
const SERVERS: [&str; 2] = ["10.43.0.10", "fd43::a"];
const CLIENTS: [&str; 2] = ["c1", "c2"];
const ZONE: &str = "default.svc.cluster.local";

/// `dig @server` in a pod; its whole output.
async fn dig(lab: &Lab, pod: &str, server: &str, args: &[&str]) -> String {
    let at = format!("@{server}");
    let mut argv = vec!["dig", "+time=2", "+tries=2", at.as_str()];
    argv.extend_from_slice(args);
    let out = lab
        .exec_in_pod("default", pod, &argv, PROBE)
        .await
        .expect("dig runs (bind9-dnsutils)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The `+short` answer lines as a set (answers may come in any order).
async fn short(lab: &Lab, pod: &str, server: &str, args: &[&str]) -> BTreeSet<String> {
    let mut argv = vec!["+short"];
    argv.extend_from_slice(args);
    let out = dig(lab, pod, server, &argv).await;
    out.lines().map(str::to_string).collect()
}

fn set<T: ToString>(items: impl IntoIterator<Item = T>) -> BTreeSet<String> {
    items.into_iter().map(|i| i.to_string()).collect()
}

/// Polls until the answer is `want` (watch events take a moment).
async fn eventually(lab: &Lab, pod: &str, server: &str, args: &[&str], want: &BTreeSet<String>) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let got = short(lab, pod, server, args).await;
        if &got == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{pod} @{server} {args:?}: want {want:?}, last answer {got:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The label CoreDNS gives an endpoint without a hostname: its address
/// with `.`/`:` as `-` (a trailing `-` gets a `0`).
fn dashed(ip: IpAddr) -> String {
    let text = ip.to_string().replace(['.', ':'], "-");
    if text.ends_with('-') {
        format!("{text}0")
    } else {
        text
    }
}

fn service(name: &str, spec: Value) -> Service {
    let mut spec = spec;
    spec["ports"] = json!([{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}]);
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": "default"},
        "spec": spec
    }))
    .expect("service fixture")
}

/// Creates a Service; its spec.clusterIPs.
async fn create_service(lab: &Lab, name: &str, spec: Value) -> Vec<IpAddr> {
    let api: Api<Service> = Api::namespaced(lab.client(), "default");
    let svc = api
        .create(&PostParams::default(), &service(name, spec))
        .await
        .unwrap_or_else(|e| panic!("create Service {name}: {e}"));
    let ips = svc.spec.and_then(|s| s.cluster_ips).unwrap_or_default();
    ips.iter().filter_map(|ip| ip.parse().ok()).collect()
}

/// What the test made: the web pods' (v4, v6) addresses, the clients'
/// IPv6 addresses, and the ClusterIPs of `dual` and `v6only`.
struct Fixture {
    web: Vec<(IpAddr, IpAddr)>,
    client_v6: Vec<IpAddr>,
    dual: Vec<IpAddr>,
    v6only: IpAddr,
}

async fn fixture(lab: &Lab) -> Fixture {
    let serve = ["serve", "--tcp", "8080"];
    let mut web = Vec::new();
    for (name, node) in [("web-1", "node-1"), ("web-2", "node-2")] {
        let mut pod = workload_pod(name, node, &serve, json!([]));
        pod.metadata.labels = Some([("app".to_string(), "web".to_string())].into());
        web.push(pod_ips_dual(&create_pod(lab, pod).await));
    }
    let mut client_v6 = Vec::new();
    for (name, node) in CLIENTS.iter().zip(["node-1", "node-2"]) {
        let pod = create_pod(lab, workload_pod(name, node, &["sleep"], json!([]))).await;
        client_v6.push(pod_ips_dual(&pod).1);
    }
    let selector = json!({"app": "web"});
    let dual = create_service(
        lab,
        "dual",
        json!({"selector": selector, "ipFamilyPolicy": "RequireDualStack"}),
    )
    .await;
    assert_eq!(
        dual.len(),
        2,
        "RequireDualStack gives two ClusterIPs: {dual:?}"
    );
    assert!(dual[0].is_ipv4() && dual[1].is_ipv6(), "{dual:?}");
    let v6 = create_service(
        lab,
        "v6only",
        json!({"selector": selector, "ipFamilies": ["IPv6"]}),
    )
    .await;
    assert!(v6.len() == 1 && v6[0].is_ipv6(), "{v6:?}");
    let hl = create_service(
        lab,
        "hl",
        json!({"selector": selector, "clusterIP": "None", "ipFamilyPolicy": "RequireDualStack"}),
    )
    .await;
    assert!(hl.is_empty(), "headless keeps clusterIPs [None]: {hl:?}");
    Fixture {
        web,
        client_v6,
        dual,
        v6only: v6[0],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dual_stack_records_over_both_families_from_every_node() {
    let root = RootNs::capture();
    let lab = dual_lab(2, DualBackend::Vxlan).await;
    lab.start_upstream_dns()
        .await
        .expect("upstream dnsmasq starts");
    let f = fixture(&lab).await;
    kube_dns_has_both_addresses(&lab).await;
    for (i, client) in CLIENTS.iter().enumerate() {
        for server in SERVERS {
            let who = Who { client, server };
            who.cluster_ip_services(&lab, &f).await;
            who.headless_service(&lab, &f).await;
            who.reverse_names(&lab, &f).await;
            who.pod_and_node_names(&lab, f.client_v6[i]).await;
            who.forwarded(&lab).await;
        }
        over_tcp_on_ipv6(&lab, client, &f).await;
    }
    upstream_saw_ipv6_queries(&lab);
    teardown(lab).await;
    root.assert_unchanged();
}

async fn kube_dns_has_both_addresses(lab: &Lab) {
    let api: Api<Service> = Api::namespaced(lab.client(), "kube-system");
    let deadline = tokio::time::Instant::now() + WAIT;
    let svc = loop {
        if let Some(svc) = api.get_opt("kube-dns").await.expect("get kube-dns") {
            break svc;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no kube-system/kube-dns"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let spec = svc.spec.expect("kube-dns has a spec");
    assert_eq!(spec.cluster_ips.unwrap_or_default(), SERVERS);
    assert_eq!(spec.ip_families.unwrap_or_default(), ["IPv4", "IPv6"]);
    assert_eq!(spec.ip_family_policy.as_deref(), Some("RequireDualStack"));
}

/// One client pod asking one cluster DNS address.
struct Who<'a> {
    client: &'a str,
    server: &'a str,
}

impl Who<'_> {
    async fn eventually(&self, lab: &Lab, args: &[&str], want: BTreeSet<String>) {
        eventually(lab, self.client, self.server, args, &want).await;
    }

    async fn full(&self, lab: &Lab, args: &[&str]) -> String {
        dig(lab, self.client, self.server, args).await
    }

    /// NOERROR with an empty answer and the zone's SOA (NODATA).
    async fn assert_nodata(&self, lab: &Lab, name: &str, qtype: &str) {
        let out = self.full(lab, &[name, qtype]).await;
        assert!(
            out.contains("status: NOERROR") && out.contains("ANSWER: 0") && out.contains("SOA"),
            "{} @{}: {name} {qtype} should be NODATA:\n{out}",
            self.client,
            self.server
        );
    }

    async fn cluster_ip_services(&self, lab: &Lab, f: &Fixture) {
        let dual = format!("dual.{ZONE}");
        self.eventually(lab, &[&dual, "A"], set([f.dual[0]])).await;
        self.eventually(lab, &[&dual, "AAAA"], set([f.dual[1]]))
            .await;
        let v6 = format!("v6only.{ZONE}");
        self.eventually(lab, &[&v6, "AAAA"], set([f.v6only])).await;
        self.assert_nodata(lab, &v6, "A").await;
        // One SRV for the named port whatever the number of families.
        let srv = short(
            lab,
            self.client,
            self.server,
            &[&format!("_http._tcp.{dual}"), "SRV"],
        )
        .await;
        let targets: Vec<(String, String)> = srv
            .iter()
            .filter_map(|l| {
                let w: Vec<&str> = l.split_whitespace().collect();
                Some((w.get(2)?.to_string(), w.get(3)?.to_string()))
            })
            .collect();
        assert_eq!(
            targets,
            [("80".to_string(), format!("{dual}."))],
            "{} @{}: SRV of dual: {srv:?}",
            self.client,
            self.server
        );
    }

    async fn headless_service(&self, lab: &Lab, f: &Fixture) {
        let hl = format!("hl.{ZONE}");
        self.eventually(lab, &[&hl, "A"], set(f.web.iter().map(|w| w.0)))
            .await;
        self.eventually(lab, &[&hl, "AAAA"], set(f.web.iter().map(|w| w.1)))
            .await;
        // Each endpoint's own name, in its family only.
        let (v4, v6) = f.web[0];
        let name6 = format!("{}.{hl}", dashed(v6));
        self.eventually(lab, &[&name6, "AAAA"], set([v6])).await;
        self.assert_nodata(lab, &name6, "A").await;
        let name4 = format!("{}.{hl}", dashed(v4));
        self.eventually(lab, &[&name4, "A"], set([v4])).await;
        // SRV: one per endpoint hostname (each address), endpoint port.
        let srv = short(
            lab,
            self.client,
            self.server,
            &[&format!("_http._tcp.{hl}"), "SRV"],
        )
        .await;
        let got: BTreeSet<String> = srv
            .iter()
            .filter_map(|l| {
                let w: Vec<&str> = l.split_whitespace().collect();
                Some(format!("{} {}", w.get(2)?, w.get(3)?))
            })
            .collect();
        let want = set(f
            .web
            .iter()
            .flat_map(|(a, b)| [*a, *b])
            .map(|ip| format!("8080 {}.{hl}.", dashed(ip))));
        assert_eq!(got, want, "{} @{}: SRV of hl", self.client, self.server);
    }

    async fn reverse_names(&self, lab: &Lab, f: &Fixture) {
        let dual_v6 = f.dual[1].to_string();
        self.eventually(lab, &["-x", &dual_v6], set([format!("dual.{ZONE}.")]))
            .await;
        let v6only = f.v6only.to_string();
        self.eventually(lab, &["-x", &v6only], set([format!("v6only.{ZONE}.")]))
            .await;
        // An IPv6 endpoint: one PTR per Service it backs with that family
        // (dual and v6only through their IPv6 slices, hl).
        let ep = f.web[1].1;
        let want = set(["dual", "v6only", "hl"].map(|s| format!("{}.{s}.{ZONE}.", dashed(ep))));
        self.eventually(lab, &["-x", &ep.to_string()], want).await;
        let out = self.full(lab, &["-x", &ep.to_string()]).await;
        assert!(
            out.contains("ip6.arpa"),
            "PTR question not under ip6.arpa:\n{out}"
        );
    }

    async fn pod_and_node_names(&self, lab: &Lab, own_v6: IpAddr) {
        let pod = format!(
            "{}.default.pod.cluster.local",
            own_v6.to_string().replace(':', "-")
        );
        self.eventually(lab, &[&pod, "AAAA"], set([own_v6])).await;
        self.assert_nodata(lab, &pod, "A").await;
        for (node, v4, v6) in [
            ("node-1", "172.30.0.11", "fd30::11"),
            ("node-2", "172.30.0.12", "fd30::12"),
        ] {
            self.eventually(lab, &[node, "A"], set([v4])).await;
            self.eventually(lab, &[node, "AAAA"], set([v6])).await;
        }
    }

    async fn forwarded(&self, lab: &Lab) {
        let (name, v4, v6) = upstream::DUAL;
        self.eventually(lab, &[name, "A"], set([v4])).await;
        self.eventually(lab, &[name, "AAAA"], set([v6])).await;
        let (www, ip) = upstream::WWW;
        self.eventually(lab, &[www, "A"], set([ip])).await;
    }
}

/// TCP on the IPv6 cluster DNS address too.
async fn over_tcp_on_ipv6(lab: &Lab, client: &str, f: &Fixture) {
    let name = format!("dual.{ZONE}");
    let out = dig(lab, client, SERVERS[1], &["+tcp", &name, "AAAA"]).await;
    assert!(out.contains("(TCP)"), "{client}: not over TCP:\n{out}");
    assert!(
        out.contains(&f.dual[1].to_string()),
        "{client}: AAAA over TCP:\n{out}"
    );
}

/// Each node asked at least two uncached questions, which its forwarder
/// spreads over both upstream addresses: dnsmasq logs the IPv6 ones as
/// coming from the node's IPv6 underlay address.
fn upstream_saw_ipv6_queries(lab: &Lab) {
    let log = std::fs::read_to_string(lab.upstream_dns_log()).expect("read the dnsmasq log");
    for node_v6 in ["fd30::11", "fd30::12"] {
        let from = format!(" from {node_v6}");
        assert!(
            log.lines()
                .any(|l| l.contains("query[") && l.ends_with(&from)),
            "the upstream got no query over IPv6 from {node_v6}; its log:\n{log}"
        );
    }
}
