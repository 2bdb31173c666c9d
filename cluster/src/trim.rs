//! What the shared stores keep of each object: only the fields some
//! component reads. API objects carry far more (managedFields alone is
//! often larger than the rest; kubectl's last-applied annotation repeats
//! the whole spec; a Node's status lists every container image), and the
//! stores hold every object of a type for the life of the process.
//!
//! Trimming runs once per object as it arrives from the watch (through
//! kube-runtime's `WatchStreamExt::modify`), before the store sees it.
//! The readers, by resource type (keep this list current when a
//! component starts reading a new field):
//!
//! - Node: flannel (name, uid for Events, `flannel.alpha.coreos.com/*`
//!   annotations, spec.podCIDR(s), status.addresses), netpol
//!   (spec.podCIDR(s)), dns (name, status.addresses).
//! - Pod: netpol (namespace, name, labels, deletionTimestamp,
//!   spec.nodeName, spec.hostNetwork, container and init-container port
//!   names, numbers and protocols, status.phase, status.podIP(s)).
//! - Namespace: netpol (name, labels), dns (name).
//! - NetworkPolicy: netpol (namespace, name, uid, the whole spec).
//!
//! Services and EndpointSlices, the numerous kinds (10 000s) that only
//! dns reads, are not k8s-openapi objects in the stores but the compact
//! types of `crate::compact`, which hold only what dns reads from the
//! start (their `Trim` drops the resourceVersion, which only the watcher
//! needed). Lists kept here are shrunk to their length: a list parsed
//! from JSON owns up to twice the room it needs.
//!
//! Objects are never written back from a store (flannel patches its own
//! annotations with a merge patch), so dropping fields cannot erase them
//! in the API.

use k8s_openapi::api::core::v1::{
    Container, ContainerPort, Namespace, Node, NodeSpec, NodeStatus, Pod, PodSpec, PodStatus,
};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// Annotations some component reads (flannel's node annotations); every
/// other annotation is dropped.
pub const KEPT_ANNOTATION_PREFIXES: &[&str] = &["flannel.alpha.coreos.com/"];

/// An object that can drop what no component reads.
pub trait Trim {
    /// Removes every field no component reads, in place.
    fn trim(&mut self);
}

/// The metadata every reader may use: identity, labels, lifecycle and the
/// kept annotations. Gone: managedFields, ownerReferences, finalizers,
/// generateName, selfLink and the other annotations.
fn trim_meta(meta: &mut ObjectMeta) {
    meta.managed_fields = None;
    meta.owner_references = None;
    meta.finalizers = None;
    meta.generate_name = None;
    meta.self_link = None;
    if let Some(annotations) = &mut meta.annotations {
        annotations.retain(|key, _| {
            KEPT_ANNOTATION_PREFIXES
                .iter()
                .any(|prefix| key.starts_with(prefix))
        });
    }
    if meta.annotations.as_ref().is_some_and(|a| a.is_empty()) {
        meta.annotations = None;
    }
}

/// Frees the spare capacity of a list read from JSON.
fn shrink<T>(list: &mut Option<Vec<T>>) {
    if let Some(list) = list {
        list.shrink_to_fit();
    }
}

impl Trim for Node {
    fn trim(&mut self) {
        trim_meta(&mut self.metadata);
        self.spec = self.spec.take().map(|mut spec| {
            shrink(&mut spec.pod_cidrs);
            NodeSpec {
                pod_cidr: spec.pod_cidr,
                pod_cidrs: spec.pod_cidrs,
                provider_id: spec.provider_id,
                unschedulable: spec.unschedulable,
                ..NodeSpec::default()
            }
        });
        // Images, conditions, capacity, node info and volumes are most of
        // a Node; only the addresses are read.
        self.status = self.status.take().map(|mut status| {
            shrink(&mut status.addresses);
            NodeStatus {
                addresses: status.addresses,
                ..NodeStatus::default()
            }
        });
    }
}

/// A container reduced to its name and ports (for named ports).
fn trim_container(c: Container) -> Container {
    // collect() from an exact-size iterator allocates exactly.
    let ports = c.ports.map(|ports| {
        ports
            .into_iter()
            .map(|p| ContainerPort {
                name: p.name,
                container_port: p.container_port,
                protocol: p.protocol,
                ..ContainerPort::default()
            })
            .collect()
    });
    Container {
        name: c.name,
        ports,
        ..Container::default()
    }
}

impl Trim for Pod {
    fn trim(&mut self) {
        trim_meta(&mut self.metadata);
        self.spec = self.spec.take().map(|spec| PodSpec {
            node_name: spec.node_name,
            host_network: spec.host_network,
            containers: spec.containers.into_iter().map(trim_container).collect(),
            init_containers: spec
                .init_containers
                .map(|cs| cs.into_iter().map(trim_container).collect()),
            ..PodSpec::default()
        });
        self.status = self.status.take().map(|mut status| {
            shrink(&mut status.pod_ips);
            PodStatus {
                phase: status.phase,
                pod_ip: status.pod_ip,
                pod_ips: status.pod_ips,
                host_ip: status.host_ip,
                host_ips: status.host_ips,
                ..PodStatus::default()
            }
        });
    }
}

impl Trim for Namespace {
    fn trim(&mut self) {
        trim_meta(&mut self.metadata);
        // spec holds only finalizers; status.phase (Terminating) is kept.
        self.spec = None;
    }
}

impl Trim for NetworkPolicy {
    fn trim(&mut self) {
        trim_meta(&mut self.metadata);
    }
}

#[cfg(test)]
mod tests;
