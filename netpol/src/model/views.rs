//! The few facts about Pods and Namespaces the planner needs, extracted from
//! API objects once (so the planner is pure and tests build them directly).

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{Namespace, Pod};

use super::ports::Protocol;
use super::selector::Labels;

/// The label the control plane puts on every namespace (its name).
pub const NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// A named container port, for named-port resolution.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NamedPort {
    pub name: String,
    pub protocol: Protocol,
    pub port: u16,
}

/// A pod as the planner sees it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PodInfo {
    pub namespace: String,
    pub name: String,
    /// spec.nodeName (None while unscheduled).
    pub node: Option<String>,
    /// status.podIPs (and podIP); unparsable entries are left out.
    pub ips: Vec<IpAddr>,
    pub labels: Labels,
    pub host_network: bool,
    /// Phase Succeeded or Failed: its IP may already belong to a new pod.
    pub terminal: bool,
    pub ports: Vec<NamedPort>,
}

impl PodInfo {
    /// Whether the pod takes part in policy at all, as target or peer:
    /// it has an IP, its own network namespace, and is not finished.
    pub fn is_endpoint(&self) -> bool {
        !self.ips.is_empty() && !self.host_network && !self.terminal
    }

    /// Extracts the view from an API Pod; never fails (missing fields
    /// simply make the pod a non-endpoint).
    pub fn from_api(pod: &Pod) -> PodInfo {
        let spec = pod.spec.as_ref();
        let status = pod.status.as_ref();
        let phase = status.and_then(|s| s.phase.as_deref());
        PodInfo {
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            name: pod.metadata.name.clone().unwrap_or_default(),
            node: spec.and_then(|s| s.node_name.clone()),
            ips: pod_ips(pod),
            labels: pod.metadata.labels.clone().unwrap_or_default(),
            host_network: spec.and_then(|s| s.host_network).unwrap_or(false),
            terminal: matches!(phase, Some("Succeeded" | "Failed")),
            ports: named_ports(pod),
        }
    }
}

fn pod_ips(pod: &Pod) -> Vec<IpAddr> {
    let Some(status) = pod.status.as_ref() else {
        return Vec::new();
    };
    let listed = status.pod_ips.iter().flatten().map(|p| p.ip.as_str());
    let mut ips: Vec<IpAddr> = listed
        .chain(status.pod_ip.as_deref())
        .filter_map(|raw| raw.parse().ok())
        .collect();
    ips.sort();
    ips.dedup();
    ips
}

fn named_ports(pod: &Pod) -> Vec<NamedPort> {
    let Some(spec) = pod.spec.as_ref() else {
        return Vec::new();
    };
    let containers = spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten());
    let mut out = Vec::new();
    for port in containers.flat_map(|c| c.ports.iter().flatten()) {
        let (Some(name), Ok(protocol)) = (&port.name, Protocol::parse(port.protocol.as_deref()))
        else {
            continue;
        };
        if let Ok(number) = u16::try_from(port.container_port) {
            out.push(NamedPort {
                name: name.clone(),
                protocol,
                port: number,
            });
        }
    }
    out
}

/// A namespace as the planner sees it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NamespaceInfo {
    pub name: String,
    pub labels: Labels,
}

impl NamespaceInfo {
    /// Adds `kubernetes.io/metadata.name` when missing (a real control plane
    /// always sets it; policies select namespaces by name through it).
    pub fn new(name: &str, labels: BTreeMap<String, String>) -> NamespaceInfo {
        let mut labels = labels;
        labels
            .entry(NAMESPACE_NAME_LABEL.to_string())
            .or_insert_with(|| name.to_string());
        NamespaceInfo {
            name: name.to_string(),
            labels,
        }
    }

    /// Extracts the view from an API Namespace.
    pub fn from_api(ns: &Namespace) -> NamespaceInfo {
        let name = ns.metadata.name.clone().unwrap_or_default();
        NamespaceInfo::new(&name, ns.metadata.labels.clone().unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(value: serde_json::Value) -> PodInfo {
        PodInfo::from_api(&serde_json::from_value(value).expect("pod JSON"))
    }

    #[test]
    fn extracts_ips_ports_and_lifecycle() {
        let p = pod(serde_json::json!({
            "metadata": {"namespace": "x", "name": "a", "labels": {"pod": "a"}},
            "spec": {"nodeName": "node-1", "containers": [{"name": "c", "ports": [
                {"name": "http", "containerPort": 8080},
                {"name": "dns", "containerPort": 53, "protocol": "UDP"},
                {"containerPort": 9000}
            ]}]},
            "status": {"phase": "Running", "podIP": "10.42.0.2",
                       "podIPs": [{"ip": "10.42.0.2"}, {"ip": "fd00::2"}, {"ip": "bogus"}]}
        }));
        assert_eq!(p.node.as_deref(), Some("node-1"));
        assert_eq!(p.ips.len(), 2);
        assert!(p.is_endpoint());
        assert_eq!(
            p.ports,
            [
                NamedPort {
                    name: "http".into(),
                    protocol: Protocol::Tcp,
                    port: 8080
                },
                NamedPort {
                    name: "dns".into(),
                    protocol: Protocol::Udp,
                    port: 53
                },
            ]
        );
    }

    #[test]
    fn host_network_finished_and_ipless_pods_are_not_endpoints() {
        let base = |spec: serde_json::Value, status: serde_json::Value| {
            pod(serde_json::json!({"metadata": {"name": "p"}, "spec": spec, "status": status}))
        };
        let containers = serde_json::json!([]);
        let host = base(
            serde_json::json!({"hostNetwork": true, "containers": containers}),
            serde_json::json!({"podIP": "192.168.1.1"}),
        );
        assert!(!host.is_endpoint());
        let done = base(
            serde_json::json!({"containers": containers}),
            serde_json::json!({"phase": "Succeeded", "podIP": "10.42.0.9"}),
        );
        assert!(!done.is_endpoint());
        let pending = base(
            serde_json::json!({"containers": containers}),
            serde_json::json!({}),
        );
        assert!(!pending.is_endpoint());
    }

    #[test]
    fn namespaces_get_their_name_label() {
        let ns = NamespaceInfo::new("x", Labels::new());
        assert_eq!(
            ns.labels.get(NAMESPACE_NAME_LABEL).map(String::as_str),
            Some("x")
        );
    }
}
