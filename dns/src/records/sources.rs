//! Building a whole table from the objects of the watched kinds, and the
//! grouping of EndpointSlices by Service that incremental updates reuse.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use cluster::compact::{EndpointSlice, Service};
use k8s_openapi::api::core::v1::{Namespace, Node};

use super::hosts::Hosts;
use super::service::build;
use super::skip::Skipped;
use super::table::Table;
use super::zone::Zone;

/// `(namespace, service name)`.
pub type ServiceKey = (String, String);

/// The objects a table is built from.
#[derive(Default, Clone, Copy)]
pub struct Sources<'a> {
    pub services: &'a [Arc<Service>],
    pub slices: &'a [Arc<EndpointSlice>],
    /// None when Namespaces are not watched: a namespace then exists while
    /// it holds a Service.
    pub namespaces: Option<&'a [Arc<Namespace>]>,
    pub nodes: &'a [Arc<Node>],
    /// Extra host entries, e.g. from a hosts file.
    pub extra_hosts: &'a [(IpAddr, String)],
}

/// The Service a slice belongs to, from its `kubernetes.io/service-name`.
pub fn slice_service(slice: &EndpointSlice) -> Option<ServiceKey> {
    let service = slice.service_name.as_deref()?;
    let ns = slice.namespace();
    (!ns.is_empty()).then(|| (ns.to_owned(), service.to_owned()))
}

/// Slices grouped by their Service.
pub fn slices_by_service(
    slices: &[Arc<EndpointSlice>],
) -> HashMap<ServiceKey, Vec<&EndpointSlice>> {
    let mut out: HashMap<ServiceKey, Vec<&EndpointSlice>> = HashMap::new();
    for slice in slices {
        if let Some(key) = slice_service(slice) {
            out.entry(key).or_default().push(slice);
        }
    }
    out
}

/// The key of a Service object.
pub fn service_key(svc: &Service) -> Option<ServiceKey> {
    let key = (svc.namespace(), svc.name());
    (!key.0.is_empty() && !key.1.is_empty()).then(|| (key.0.to_owned(), key.1.to_owned()))
}

/// A complete, synced table (serial left at 0 for the caller to set).
pub fn full_table(zone: Arc<Zone>, sources: Sources<'_>, skipped: &mut Vec<Skipped>) -> Table {
    let zone_ref = zone.clone();
    let mut table = Table::new(zone);
    let by_service = slices_by_service(sources.slices);
    for svc in sources.services {
        let Some(key) = service_key(svc) else {
            continue;
        };
        let slices = by_service.get(&key).map(Vec::as_slice).unwrap_or_default();
        if let Some(records) = build(svc, slices, &zone_ref, skipped) {
            table.set_service(&key.0, &key.1, Some(Arc::new(records)));
        }
    }
    for ns in sources.namespaces.unwrap_or_default() {
        if let Some(name) = ns.metadata.name.as_deref() {
            table.set_namespace(name, true);
        }
    }
    let nodes: Vec<&Node> = sources.nodes.iter().map(|n| &**n).collect();
    table.set_hosts(Hosts::build(&nodes, sources.extra_hosts, skipped));
    table.mark_synced();
    table
}
