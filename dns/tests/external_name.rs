//! ExternalName Services over the wire: the CNAME plus the target's
//! records, chased inside our data or through the forwarder.

mod common;

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;
use dns::records::{Sources, Table, full_table};
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{RData, RecordType};
use serde_json::{Value, json};

fn from<T: k8s_openapi::serde::de::DeserializeOwned>(v: Value) -> Arc<T> {
    Arc::new(serde_json::from_value(v).expect("fixture"))
}

fn external(name: &str, target: &str) -> Value {
    json!({"metadata": {"namespace": "default", "name": name},
        "spec": {"type": "ExternalName", "externalName": target}})
}

/// web (ClusterIP 10.43.0.20), node-1, and ExternalNames pointing out of
/// the zone, at web, at a missing service, at another ExternalName, at a
/// node name and at themselves.
fn table() -> Table {
    let services = vec![
        from(json!({"metadata": {"namespace": "default", "name": "web"},
            "spec": {"clusterIP": "10.43.0.20", "clusterIPs": ["10.43.0.20"]}})),
        from(external("out", "foo.example.com")),
        from(external("outnx", "nx.example.com")),
        from(external("in", "web.default.svc.cluster.local")),
        from(external("missing", "gone.default.svc.cluster.local")),
        from(external("twice", "in.default.svc.cluster.local")),
        from(external("node", "node-1")),
        from(external("loop", "loop.default.svc.cluster.local")),
    ];
    let nodes = vec![from(json!({"metadata": {"name": "node-1"},
        "status": {"addresses": [{"type": "InternalIP", "address": "192.168.50.11"}]}}))];
    let sources = Sources {
        services: &services,
        nodes: &nodes,
        ..Sources::default()
    };
    let mut skipped = Vec::new();
    let table = full_table(zone(), sources, &mut skipped);
    assert!(skipped.is_empty(), "{skipped:?}");
    table
}

/// (owner, CNAME target) pairs and A records with their owners, in order.
fn chain(m: &Message) -> Vec<String> {
    m.answers
        .iter()
        .map(|r| match &r.data {
            RData::CNAME(c) => format!("{} CNAME {}", r.name.to_ascii(), c.0.to_ascii()),
            RData::A(a) => format!("{} A {}", r.name.to_ascii(), a.0),
            other => format!("{} {other:?}", r.name.to_ascii()),
        })
        .collect()
}

#[tokio::test]
async fn a_target_outside_the_zone_is_resolved_through_the_forwarder() {
    let up = upstream(Duration::ZERO).await;
    let s = start(table(), vec![up.addr]).await;
    let m = ask(s.udp, "out.default.svc.cluster.local.", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(
        chain(&m),
        [
            "out.default.svc.cluster.local. CNAME foo.example.com.",
            "foo.example.com. A 192.0.2.1"
        ]
    );
    assert_eq!(up.queries.load(Ordering::SeqCst), 1);
    // Again: from the forwarder's cache, the upstream is not asked.
    let again = ask(s.udp, "OUT.default.svc.cluster.local.", RecordType::A).await;
    assert_eq!(
        chain(&again)[0],
        "OUT.default.svc.cluster.local. CNAME foo.example.com.",
        "owner names keep the client's spelling"
    );
    assert_eq!(chain(&again)[1], chain(&m)[1]);
    assert_eq!(up.queries.load(Ordering::SeqCst), 1);
    // The CNAME question itself is answered without chasing.
    let cname = ask(s.udp, "out.default.svc.cluster.local.", RecordType::CNAME).await;
    assert_eq!(chain(&cname).len(), 1);
    // Over TCP too.
    let tcp_answer = tcp(
        s.tcp,
        &[query("out.default.svc.cluster.local.", RecordType::A, None)],
    )
    .await;
    assert_eq!(chain(&tcp_answer[0]), chain(&m));
}

#[tokio::test]
async fn upstream_nxdomain_and_upstream_failure_keep_the_cname() {
    let up = upstream(Duration::ZERO).await;
    let s = start(table(), vec![up.addr]).await;
    let m = ask(s.udp, "outnx.default.svc.cluster.local.", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(
        chain(&m),
        ["outnx.default.svc.cluster.local. CNAME nx.example.com."]
    );
    let dead = start(table(), vec!["127.0.0.1:9".parse().expect("addr")]).await;
    let m = ask(dead.udp, "out.default.svc.cluster.local.", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
    assert_eq!(chain(&m).len(), 1, "the CNAME is still given");
}

#[tokio::test]
async fn a_target_inside_the_zone_is_chased_in_the_table() {
    let s = start(table(), vec![]).await;
    let m = ask(s.udp, "in.default.svc.cluster.local.", RecordType::A).await;
    assert_eq!(
        chain(&m),
        [
            "in.default.svc.cluster.local. CNAME web.default.svc.cluster.local.",
            "web.default.svc.cluster.local. A 10.43.0.20"
        ]
    );
    let m = ask(s.udp, "twice.default.svc.cluster.local.", RecordType::A).await;
    assert_eq!(
        chain(&m),
        [
            "twice.default.svc.cluster.local. CNAME in.default.svc.cluster.local.",
            "in.default.svc.cluster.local. CNAME web.default.svc.cluster.local.",
            "web.default.svc.cluster.local. A 10.43.0.20"
        ]
    );
    let m = ask(s.udp, "node.default.svc.cluster.local.", RecordType::A).await;
    assert_eq!(a_records(&m), vec![Ipv4Addr::new(192, 168, 50, 11)]);
    // No AAAA for web: the CNAME and NODATA with the SOA.
    let m = ask(s.udp, "in.default.svc.cluster.local.", RecordType::AAAA).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(chain(&m).len(), 1);
    assert!(has_soa(&m));
}

#[tokio::test]
async fn a_missing_target_gives_nxdomain_and_a_loop_ends() {
    let s = start(table(), vec![]).await;
    let m = ask(s.udp, "missing.default.svc.cluster.local.", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(chain(&m).len(), 1);
    assert!(has_soa(&m));
    let m = ask(s.udp, "loop.default.svc.cluster.local.", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(chain(&m).len(), 8, "the chain stops after 8 CNAMEs");
}

#[tokio::test]
async fn chased_answers_are_counted_as_kubernetes_and_cache_hits() {
    let up = upstream(Duration::ZERO).await;
    let s = start(table(), vec![up.addr]).await;
    ask(s.udp, "out.default.svc.cluster.local.", RecordType::A).await;
    ask(s.udp, "out.default.svc.cluster.local.", RecordType::A).await;
    let mut text = String::new();
    s.metrics.render_metrics(&mut text);
    let value = |prefix: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(prefix))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {prefix} in\n{text}"))
    };
    let l = "server=\"dns://:53\",zone=\".\"";
    assert_eq!(
        value(&format!(
            "coredns_dns_requests_total{{{l},proto=\"udp\",family=\"1\",type=\"A\"}}"
        )),
        2
    );
    assert_eq!(
        value(&format!(
            "coredns_dns_responses_total{{{l},rcode=\"NOERROR\",plugin=\"kubernetes\"}}"
        )),
        2
    );
    assert_eq!(
        value("coredns_cache_hits_total{server=\"dns://:53\",type=\"success\",zones=\".\"}"),
        1
    );
    assert_eq!(
        value("coredns_cache_misses_total{server=\"dns://:53\",zones=\".\"}"),
        1
    );
}
