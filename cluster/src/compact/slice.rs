//! An EndpointSlice as the DNS component reads it: its Service, address
//! type, ports, and per endpoint the addresses, readiness and hostname.

use serde::Deserialize;

use super::{Addresses, Identity, MetaIn, Protocol, SERVICE_NAME_LABEL, boxed};

/// `addressType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AddressType {
    #[default]
    IPv4,
    IPv6,
    /// FQDN (deprecated) or a type this code does not know: no addresses
    /// DNS can serve.
    Other,
}

/// One endpoint (48 bytes: there are as many as pods behind Services).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Endpoint {
    pub addresses: Addresses,
    pub hostname: Option<Box<str>>,
    /// `conditions.ready`; absent means unknown, which consumers treat as
    /// ready.
    pub ready: Option<bool>,
}

/// One `ports` entry of a slice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointPort {
    pub name: Option<Box<str>>,
    pub port: Option<i32>,
    pub protocol: Option<Protocol>,
}

/// An EndpointSlice (see the module documentation of `compact`).
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(from = "SliceIn")]
pub struct EndpointSlice {
    pub(super) metadata: Identity,
    /// The `kubernetes.io/service-name` label.
    pub service_name: Option<Box<str>>,
    pub address_type: AddressType,
    pub endpoints: Box<[Endpoint]>,
    pub ports: Box<[EndpointPort]>,
}

impl EndpointSlice {
    /// A slice with this identity (tests, fixtures); fill the fields.
    pub fn new(namespace: &str, name: &str) -> EndpointSlice {
        let metadata = Identity::new(Some(namespace.into()), Some(name.into()), None);
        EndpointSlice {
            metadata,
            ..EndpointSlice::default()
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SliceIn {
    #[serde(default)]
    metadata: MetaIn,
    address_type: Option<String>,
    endpoints: Option<Vec<EndpointIn>>,
    ports: Option<Vec<PortIn>>,
}

#[derive(Deserialize)]
struct EndpointIn {
    #[serde(default)]
    addresses: Addresses,
    hostname: Option<String>,
    conditions: Option<ConditionsIn>,
}

#[derive(Deserialize)]
struct ConditionsIn {
    ready: Option<bool>,
}

#[derive(Deserialize)]
struct PortIn {
    name: Option<String>,
    port: Option<i32>,
    protocol: Option<String>,
}

impl From<SliceIn> for EndpointSlice {
    fn from(mut s: SliceIn) -> EndpointSlice {
        let service_name = s
            .metadata
            .labels
            .take()
            .and_then(|mut labels| labels.remove(SERVICE_NAME_LABEL));
        let endpoints = s
            .endpoints
            .unwrap_or_default()
            .into_iter()
            .map(|e| Endpoint {
                addresses: e.addresses,
                hostname: boxed(e.hostname),
                ready: e.conditions.and_then(|c| c.ready),
            });
        let ports = s
            .ports
            .unwrap_or_default()
            .into_iter()
            .map(|p| EndpointPort {
                name: boxed(p.name),
                port: p.port,
                protocol: p.protocol.map(Protocol::parse),
            });
        EndpointSlice {
            metadata: s.metadata.identity(),
            service_name: boxed(service_name),
            address_type: match s.address_type.as_deref() {
                Some("IPv4") => AddressType::IPv4,
                Some("IPv6") => AddressType::IPv6,
                _ => AddressType::Other,
            },
            endpoints: endpoints.collect(),
            ports: ports.collect(),
        }
    }
}
