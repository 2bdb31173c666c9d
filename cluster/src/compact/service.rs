//! A Service as the DNS component reads it: type, cluster IPs,
//! externalName and ports.

use serde::Deserialize;

use super::{Address, Identity, MetaIn, Protocol, boxed};

/// `spec.type`; an unknown type is kept as `Other` (DNS treats every type
/// but ExternalName alike).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ServiceType {
    /// Absent: the API defaults it to ClusterIP.
    #[default]
    Unset,
    ClusterIp,
    NodePort,
    LoadBalancer,
    ExternalName,
    Other,
}

impl ServiceType {
    fn parse(text: Option<String>) -> ServiceType {
        match text.as_deref() {
            None => ServiceType::Unset,
            Some("ClusterIP") => ServiceType::ClusterIp,
            Some("NodePort") => ServiceType::NodePort,
            Some("LoadBalancer") => ServiceType::LoadBalancer,
            Some("ExternalName") => ServiceType::ExternalName,
            Some(_) => ServiceType::Other,
        }
    }
}

/// The cluster IPs, from the field that carries them: `spec.clusterIPs`
/// when set (the API keeps its first entry equal to `spec.clusterIP`),
/// else `spec.clusterIP` (older objects, hand-written fixtures). A
/// headless Service holds the text `None`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ClusterIps {
    #[default]
    Unset,
    /// `spec.clusterIP` alone.
    Single(Address),
    /// `spec.clusterIPs`.
    List(Box<[Address]>),
}

impl ClusterIps {
    /// The addresses and the field they came from (for reports).
    pub fn field(&self) -> (&'static str, &[Address]) {
        match self {
            ClusterIps::Unset => ("spec.clusterIP", &[]),
            ClusterIps::Single(a) => ("spec.clusterIP", std::slice::from_ref(a)),
            ClusterIps::List(list) => ("spec.clusterIPs", list),
        }
    }

    /// The primary cluster IP (`spec.clusterIP`).
    pub fn primary(&self) -> Option<&Address> {
        self.field().1.first()
    }
}

/// One `spec.ports` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePort {
    pub name: Option<Box<str>>,
    pub port: i32,
    /// Absent means TCP.
    pub protocol: Option<Protocol>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServiceSpec {
    pub type_: ServiceType,
    pub cluster_ips: ClusterIps,
    pub external_name: Option<Box<str>>,
    pub ports: Box<[ServicePort]>,
}

/// A Service (see the module documentation of `compact`).
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(from = "ServiceIn")]
pub struct Service {
    pub(super) metadata: Identity,
    pub spec: ServiceSpec,
}

impl Service {
    /// A Service with this identity and spec (tests, fixtures).
    pub fn new(namespace: &str, name: &str, spec: ServiceSpec) -> Service {
        let metadata = Identity::new(Some(namespace.into()), Some(name.into()), None);
        Service { metadata, spec }
    }
}

#[derive(Deserialize)]
struct ServiceIn {
    #[serde(default)]
    metadata: MetaIn,
    spec: Option<SpecIn>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SpecIn {
    #[serde(rename = "type")]
    type_: Option<String>,
    #[serde(rename = "clusterIP")]
    cluster_ip: Option<Address>,
    #[serde(rename = "clusterIPs")]
    cluster_ips: Option<Vec<Address>>,
    external_name: Option<String>,
    ports: Option<Vec<PortIn>>,
}

#[derive(Deserialize)]
struct PortIn {
    name: Option<String>,
    port: i32,
    protocol: Option<String>,
}

impl From<ServiceIn> for Service {
    fn from(mut s: ServiceIn) -> Service {
        Service {
            metadata: s.metadata.identity(),
            spec: s.spec.map(ServiceSpec::from).unwrap_or_default(),
        }
    }
}

impl From<SpecIn> for ServiceSpec {
    fn from(s: SpecIn) -> ServiceSpec {
        let cluster_ips = match (s.cluster_ips, s.cluster_ip) {
            (Some(list), _) if !list.is_empty() => ClusterIps::List(list.into_boxed_slice()),
            (_, Some(single)) => ClusterIps::Single(single),
            _ => ClusterIps::Unset,
        };
        let ports = s
            .ports
            .unwrap_or_default()
            .into_iter()
            .map(|p| ServicePort {
                name: boxed(p.name),
                port: p.port,
                protocol: p.protocol.map(Protocol::parse),
            });
        ServiceSpec {
            type_: ServiceType::parse(s.type_),
            cluster_ips,
            external_name: boxed(s.external_name),
            ports: ports.collect(),
        }
    }
}
