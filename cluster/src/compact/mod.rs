//! Store types of our own for the numerous kinds only DNS reads: Services
//! and EndpointSlices (10 000s of each in a large cluster).
//!
//! k8s-openapi's structs have a fixed inline size that trimming cannot
//! shrink (an `Endpoint` is 352 bytes, a `Service` 824); these hold only
//! what the DNS component reads, with addresses parsed (an IP inline, no
//! allocation) and enums for the closed string sets. They deserialize
//! straight from the API's JSON (unknown fields such as managedFields are
//! skipped by serde without being built), so the full object never exists
//! in memory, and implement `kube::Resource` for the real API paths, so
//! kube-runtime lists and watches them like any built-in type.
//!
//! Deserialization is as strict as k8s-openapi's on types (a string where
//! a number belongs fails the object) and lenient on values: an address
//! that does not parse is kept as text, so the DNS component can report it
//! naming the object and field instead of the whole list failing.
//!
//! Metadata keeps namespace and name (the store keys objects by them) and
//! the resourceVersion, which kube-runtime's watcher reads from every
//! watch event to resume from; `Trim` then drops it (the stores run it
//! after the watcher). Nobody posts Events about these kinds or writes
//! them back. They are held in an `Identity`, not in k8s-openapi's
//! 360-byte `ObjectMeta`, which is built only for kube's `meta()` calls
//! on objects in flight (see `identity`).

mod address;
mod identity;
mod service;
mod slice;
mod store;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use serde::Deserialize;

pub use address::{Address, Addresses};
use identity::Identity;
pub use service::{ClusterIps, Service, ServicePort, ServiceSpec, ServiceType};
pub use slice::{AddressType, Endpoint, EndpointPort, EndpointSlice};
pub use store::{Named, Objects, ObjectsWriter};

/// The one EndpointSlice label a reader uses: the name of the slice's
/// Service (the same string as `dns::records::SERVICE_NAME_LABEL`).
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// A port's protocol: one of the three the API allows, or what was sent
/// (kept to report it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Protocol {
    Tcp,
    Udp,
    Sctp,
    Other(Box<str>),
}

impl Protocol {
    fn parse(text: String) -> Protocol {
        match text.as_str() {
            "TCP" => Protocol::Tcp,
            "UDP" => Protocol::Udp,
            "SCTP" => Protocol::Sctp,
            _ => Protocol::Other(text.into()),
        }
    }

    /// The API spelling.
    pub fn as_str(&self) -> &str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
            Protocol::Other(text) => text,
        }
    }
}

/// The metadata fields read on ingest; everything else is skipped.
#[derive(Deserialize, Default)]
struct MetaIn {
    name: Option<String>,
    namespace: Option<String>,
    labels: Option<BTreeMap<String, String>>,
    #[serde(rename = "resourceVersion")]
    resource_version: Option<String>,
}

impl MetaIn {
    /// Namespace, name and resourceVersion, with no spare room.
    fn identity(&mut self) -> Identity {
        Identity::new(
            self.namespace.take(),
            self.name.take(),
            self.resource_version.take(),
        )
    }
}

/// Implements `kube::Resource` for a namespaced compact type.
macro_rules! namespaced_resource {
    ($ty:ty, $kind:literal, $group:literal, $version:literal, $plural:literal) => {
        impl kube::Resource for $ty {
            type DynamicType = ();
            type Scope = k8s_openapi::NamespaceResourceScope;

            fn kind(_: &()) -> std::borrow::Cow<'_, str> {
                $kind.into()
            }
            fn group(_: &()) -> std::borrow::Cow<'_, str> {
                $group.into()
            }
            fn version(_: &()) -> std::borrow::Cow<'_, str> {
                $version.into()
            }
            fn plural(_: &()) -> std::borrow::Cow<'_, str> {
                $plural.into()
            }
            fn meta(&self) -> &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                self.metadata.meta()
            }
            fn meta_mut(
                &mut self,
            ) -> &mut k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                self.metadata.meta_mut()
            }
        }

        /// Holds only what is read from the start; the resourceVersion
        /// was needed by the watcher only, which has seen it by now.
        impl crate::trim::Trim for $ty {
            fn trim(&mut self) {
                self.metadata.forget_version();
            }
        }

        /// Kept in a store of our own (see `store`).
        impl crate::store::Kept for $ty {
            type Store = Objects<$ty>;
            type Writer = ObjectsWriter<$ty>;

            fn store() -> (Objects<$ty>, ObjectsWriter<$ty>) {
                Objects::new()
            }
        }

        impl Named for $ty {
            fn namespace(&self) -> &str {
                self.metadata.namespace()
            }
            fn name(&self) -> &str {
                self.metadata.name()
            }
        }

        impl $ty {
            /// `metadata.namespace`, empty when absent.
            pub fn namespace(&self) -> &str {
                self.metadata.namespace()
            }
            /// `metadata.name`, empty when absent.
            pub fn name(&self) -> &str {
                self.metadata.name()
            }
        }
    };
}

namespaced_resource!(Service, "Service", "", "v1", "services");
namespaced_resource!(
    EndpointSlice,
    "EndpointSlice",
    "discovery.k8s.io",
    "v1",
    "endpointslices"
);

/// An optional string without spare room.
fn boxed(s: Option<String>) -> Option<Box<str>> {
    s.map(String::into_boxed_str)
}
