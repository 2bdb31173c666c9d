//! Record-table tests from fixtures, one module per section of the
//! Kubernetes DNS specification (plus CoreDNS/K3s behaviour it relies on).

mod apex_and_version;
mod cluster_ip;
mod compact;
mod external_name;
mod headless;
mod hosts_and_reverse;
mod invalid_input;
mod pods;
mod updates;

use std::net::IpAddr;
use std::sync::Arc;

use cluster::compact::{EndpointSlice, Service};
use k8s_openapi::api::core::v1::{Namespace, Node};
use serde_json::{Value, json};

use super::{Answer, OwnedName, Resolution, Skipped, Sources, Table, Zone, ZoneConfig, full_table};

pub(crate) fn zone() -> Arc<Zone> {
    let config = ZoneConfig {
        ns_addrs: vec!["10.43.0.10".parse().expect("ip")],
        ..ZoneConfig::default()
    };
    Arc::new(Zone::new(&config).expect("zone"))
}

fn from<T: k8s_openapi::serde::de::DeserializeOwned>(v: Value) -> Arc<T> {
    Arc::new(serde_json::from_value(v).expect("fixture"))
}

pub(crate) fn cluster_ip(ns: &str, name: &str, ips: &[&str], ports: Value) -> Arc<Service> {
    from(json!({"metadata": {"namespace": ns, "name": name},
        "spec": {"clusterIP": ips.first(), "clusterIPs": ips, "ports": ports}}))
}

pub(crate) fn headless(ns: &str, name: &str, ports: Value) -> Arc<Service> {
    from(json!({"metadata": {"namespace": ns, "name": name},
        "spec": {"clusterIP": "None", "clusterIPs": ["None"], "ports": ports}}))
}

pub(crate) fn external(ns: &str, name: &str, target: &str) -> Arc<Service> {
    from(json!({"metadata": {"namespace": ns, "name": name},
        "spec": {"type": "ExternalName", "externalName": target}}))
}

/// A slice; each endpoint is `{"addresses": [...], ...}` JSON.
pub(crate) fn slice(
    ns: &str,
    svc: &str,
    name: &str,
    family: &str,
    endpoints: Value,
    ports: Value,
) -> Arc<EndpointSlice> {
    from(json!({"metadata": {"namespace": ns, "name": name,
            "labels": {"kubernetes.io/service-name": svc}},
        "addressType": family, "endpoints": endpoints, "ports": ports}))
}

pub(crate) fn namespace(name: &str) -> Arc<Namespace> {
    from(json!({"metadata": {"name": name}}))
}

pub(crate) fn node(name: &str, ips: &[&str]) -> Arc<Node> {
    let addrs: Vec<Value> = ips
        .iter()
        .map(|ip| json!({"type": "InternalIP", "address": ip}))
        .chain(std::iter::once(
            json!({"type": "Hostname", "address": name}),
        ))
        .collect();
    from(json!({"metadata": {"name": name}, "status": {"addresses": addrs}}))
}

/// Owns the objects of one fixture.
#[derive(Default)]
pub(crate) struct Fixture {
    pub services: Vec<Arc<Service>>,
    pub slices: Vec<Arc<EndpointSlice>>,
    pub namespaces: Option<Vec<Arc<Namespace>>>,
    pub nodes: Vec<Arc<Node>>,
    pub extra_hosts: Vec<(IpAddr, String)>,
}

impl Fixture {
    pub(crate) fn build(&self) -> (Table, Vec<Skipped>) {
        let mut skipped = Vec::new();
        let sources = Sources {
            services: &self.services,
            slices: &self.slices,
            namespaces: self.namespaces.as_deref(),
            nodes: &self.nodes,
            extra_hosts: &self.extra_hosts,
        };
        (full_table(zone(), sources, &mut skipped), skipped)
    }

    pub(crate) fn table(&self) -> Table {
        let (table, skipped) = self.build();
        assert!(skipped.is_empty(), "unexpected skips: {skipped:?}");
        table
    }
}

/// A simplified, comparable view of a resolution.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Got {
    Forward,
    NotSynced,
    Nx,
    NoData,
    NoDataNoSoa,
    Addrs(Vec<String>),
    Srv(Vec<String>),
    Cname(String),
    Ptr(Vec<String>),
    Txt,
    Soa,
    Ns,
}

pub(crate) fn ask(table: &Table, name: &str, qtype: u16) -> Got {
    let owned = OwnedName::from_dotted(name).expect("query name");
    simplify(table.resolve(owned.as_query(), qtype))
}

fn simplify(res: Resolution<'_>) -> Got {
    match res {
        Resolution::Forward => Got::Forward,
        Resolution::NotSynced => Got::NotSynced,
        Resolution::NxDomain => Got::Nx,
        Resolution::NoData { soa: true } => Got::NoData,
        Resolution::NoData { soa: false } => Got::NoDataNoSoa,
        Resolution::Answer(a) => simplify_answer(a),
    }
}

fn simplify_answer(answer: Answer<'_>) -> Got {
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    match answer {
        Answer::V4(a) => Got::Addrs(sorted(a.iter().map(|x| x.to_string()).collect())),
        Answer::V6(a) => Got::Addrs(sorted(a.iter().map(|x| x.to_string()).collect())),
        Answer::Pod(ip) => Got::Addrs(vec![ip.to_string()]),
        Answer::Endpoints { endpoints, v4 } => Got::Addrs(sorted(
            endpoints
                .iter()
                .filter(|e| e.addr.is_ipv4() == v4)
                .map(|e| e.addr.to_string())
                .collect(),
        )),
        Answer::Srv {
            service, filter, ..
        } => Got::Srv(sorted(
            service
                .srv
                .iter()
                .filter(|s| filter.is_none_or(|(n, p)| s.name.as_bytes() == n && s.proto == p))
                .map(|s| format!("{} {}", s.port, s.target.as_deref().unwrap_or("@")))
                .collect(),
        )),
        Answer::Cname(n) => Got::Cname(n.to_string()),
        Answer::Ptr(entries) => Got::Ptr(sorted(entries.iter().map(|e| e.name()).collect())),
        Answer::VersionTxt => Got::Txt,
        Answer::Soa => Got::Soa,
        Answer::Ns => Got::Ns,
    }
}

pub(crate) fn addrs(list: &[&str]) -> Got {
    let mut v: Vec<String> = list.iter().map(|s| s.to_string()).collect();
    v.sort();
    Got::Addrs(v)
}
