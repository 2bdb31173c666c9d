//! What one pod contributes to the sets: shared by the full build and the
//! incremental planner, so both fill sets with exactly the same elements.

use crate::model::{Family, Labels, NamespaceInfo, PodInfo, Protocol, Selector};

use super::super::names::addr_type;

/// The pod's addresses as set elements, with their family.
pub(in crate::plan) fn pod_ips(pod: &PodInfo) -> impl Iterator<Item = (Family, String)> + '_ {
    pod.ips.iter().map(|ip| (Family::of(ip), ip.to_string()))
}

/// `ip . proto . number` elements for every port the pod declares under
/// `name` with `protocol` (a named port resolves on the destination pod).
pub(in crate::plan) fn named_port_elements(
    pod: &PodInfo,
    name: &str,
    protocol: Protocol,
) -> Vec<(Family, String)> {
    let numbers = pod
        .ports
        .iter()
        .filter(|p| p.name == name && p.protocol == protocol)
        .map(|p| p.port);
    let mut out = Vec::new();
    for number in numbers {
        for ip in &pod.ips {
            let element = format!("{ip} . {} . {number}", protocol.nft());
            out.push((Family::of(ip), element));
        }
    }
    out
}

/// The nft type of a named-port set of `family`.
pub(in crate::plan) fn named_port_key_type(family: Family) -> String {
    format!("{} . inet_proto . inet_service", addr_type(family))
}

/// Whether namespace `ns` (with `labels` when its object is known)
/// matches a namespaceSelector.
pub(in crate::plan) fn namespace_matches(
    ns: &str,
    labels: Option<&Labels>,
    sel: &Selector,
) -> bool {
    match labels {
        Some(labels) => sel.matches(labels),
        // A pod whose Namespace object we have not seen: only its name label.
        None => sel.matches(&NamespaceInfo::new(ns, Labels::new()).labels),
    }
}
