//! The fixture the fuzz targets answer from: a small cluster table with
//! every kind of record the server writes (ClusterIP, headless with
//! hostnames and named ports, ExternalName inside and outside the zone,
//! node names), and one forwarded answer in the cache, so that a fuzzed
//! query can reach every answering path without a network.

use std::net::IpAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use dns::forward::{Cached, ForwardConfig, Forwarder, TtlPolicy};
use dns::metrics::Metrics;
use dns::records::{Zone, ZoneConfig};
use dns::run::Syncer;
use dns::run::compact::{EndpointSlice, Service};
use dns::server::Context;
use k8s_openapi::api::core::v1::Node;
use serde_json::{Value, json};

/// Caching limits of the fixture forwarder (the daemon's defaults).
pub const TTL: TtlPolicy = TtlPolicy {
    max_positive: 3600,
    max_negative: 300,
};

fn object<T: k8s_openapi::serde::de::DeserializeOwned>(v: Value) -> Arc<T> {
    Arc::new(serde_json::from_value(v).expect("fuzz fixture is valid JSON for its type"))
}

fn services() -> Vec<Arc<Service>> {
    let ports = json!([{"name": "http", "port": 80, "protocol": "TCP"},
                       {"name": "dns", "port": 53, "protocol": "UDP"}]);
    vec![
        object(json!({"metadata": {"namespace": "default", "name": "web"},
            "spec": {"clusterIP": "10.43.0.20", "clusterIPs": ["10.43.0.20", "fd00:43::20"],
                     "ports": ports}})),
        object(json!({"metadata": {"namespace": "default", "name": "db"},
            "spec": {"clusterIP": "None", "clusterIPs": ["None"], "ports": ports}})),
        object(json!({"metadata": {"namespace": "default", "name": "out"},
            "spec": {"type": "ExternalName", "externalName": "example.com"}})),
        object(
            json!({"metadata": {"namespace": "default", "name": "alias"},
            "spec": {"type": "ExternalName", "externalName": "web.default.svc.cluster.local"}}),
        ),
    ]
}

fn slices() -> Vec<Arc<EndpointSlice>> {
    let endpoint = |ip: &str, host: &str| json!({"addresses": [ip], "hostname": host, "conditions": {"ready": true}});
    vec![object(json!({
        "metadata": {"namespace": "default", "name": "db-1",
                     "labels": {"kubernetes.io/service-name": "db"}},
        "addressType": "IPv4",
        "endpoints": [endpoint("10.42.0.5", "db-0"), endpoint("10.42.1.6", "db-1")],
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}))]
}

fn nodes() -> Vec<Arc<Node>> {
    vec![object(json!({"metadata": {"name": "node-1"},
        "status": {"addresses": [{"type": "InternalIP", "address": "172.30.0.11"},
                                 {"type": "InternalIP", "address": "fd00:30::11"}]}}))]
}

/// A real upstream answer: `example.com. 300 IN A 192.0.2.1` to a query
/// for example.com/A with EDNS.
pub fn example_com_answer() -> Vec<u8> {
    let mut m = vec![0x12, 0x34, 0x81, 0x80, 0, 1, 0, 1, 0, 0, 0, 1];
    m.extend_from_slice(&example_com_question());
    m.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 1, 44, 0, 4, 192, 0, 2, 1]);
    m.extend_from_slice(&[0, 0, 41, 4, 208, 0, 0, 0, 0, 0, 0]);
    m
}

/// The question section for example.com/A/IN (also the cache key).
pub fn example_com_question() -> Vec<u8> {
    let mut q = b"\x07example\x03com\x00".to_vec();
    q.extend_from_slice(&[0, 1, 0, 1]);
    q
}

/// The listeners' shared state over the fixture table; the forwarder has
/// no upstreams (a miss fails at once) and example.com/A cached.
pub fn context() -> Context {
    let zone = Zone::new(&ZoneConfig {
        ns_addrs: vec![IpAddr::from([10, 43, 0, 10])],
        ..ZoneConfig::default()
    })
    .expect("the default cluster domain is valid");
    let mut syncer = Syncer::new(Arc::new(zone));
    let hosts = vec![(IpAddr::from([192, 0, 2, 9]), "registry.local".to_string())];
    let namespaces = Some(vec!["default".to_string(), "kube-system".to_string()]);
    syncer.apply(services(), slices(), namespaces, nodes(), hosts);
    let metrics = Arc::new(Metrics::new());
    let forwarder = Forwarder::with_stats(ForwardConfig::default(), metrics.forward_stats());
    let question = example_com_question();
    let cached =
        Cached::decode(&example_com_answer(), &question, TTL).expect("the fixture answer decodes");
    forwarder.cache().insert(&question, Arc::new(cached));
    Context {
        table: Arc::new(ArcSwap::new(syncer.table())),
        forwarder: Arc::new(forwarder),
        metrics,
    }
}
