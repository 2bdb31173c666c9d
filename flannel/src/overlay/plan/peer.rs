//! Reading one Node into a peer candidate, or the reason it is skipped.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use k8s_openapi::api::core::v1::Node;

use super::{Peer, PeerFamily, PlanInput, SkipKind, SkippedNode};
use crate::overlay::annotations::{self as ann, VxlanData};
use crate::overlay::wireguard::WireguardData;
use crate::overlay::{Backend, Families, VXLAN_VNI};

type Annotations = BTreeMap<String, String>;

/// A node read as a peer: its usable families, and why each other enabled
/// family (`v6` flag) is not.
pub(super) struct Candidate {
    pub peer: Peer,
    pub missing: Vec<(bool, SkippedNode)>,
}

/// `Ok(None)` for our own node; `Err` names the field that disqualifies
/// the whole node. Each family is read on its own, so a node whose IPv6
/// annotations are missing still gets its IPv4 overlay.
pub(super) fn read(
    input: &PlanInput<'_>,
    families: Families,
    node: &Node,
) -> Result<Option<Candidate>, SkippedNode> {
    let Some(name) = node.metadata.name.clone().filter(|n| !n.is_empty()) else {
        return Err(skip(
            "<unnamed>",
            "metadata.name",
            "missing".into(),
            SkipKind::Invalid,
        ));
    };
    if name == input.local.name {
        return Ok(None);
    }
    let annotations = ann::of_node(node);
    check_membership(&name, &annotations, input.backend)?;
    let cidrs = pod_cidrs(&name, node)?;
    let mut candidate = Candidate {
        peer: Peer {
            name,
            families: Vec::new(),
        },
        missing: Vec::new(),
    };
    for v6 in families.iter() {
        match read_family(input, &candidate.peer.name, &annotations, &cidrs, v6) {
            Ok(family) => candidate.peer.families.push(family),
            Err(skip) => candidate.missing.push((v6, skip)),
        }
    }
    Ok(Some(candidate))
}

fn check_membership(
    name: &str,
    annotations: &Annotations,
    backend: Backend,
) -> Result<(), SkippedNode> {
    let manager = annotations
        .get(ann::KUBE_SUBNET_MANAGER)
        .map(String::as_str);
    if manager != Some("true") {
        let reason = match manager {
            None => "absent: the node's overlay daemon has not announced it".to_string(),
            Some(other) => format!("is {other:?}, not \"true\""),
        };
        return Err(skip(
            name,
            &annotation_field(ann::KUBE_SUBNET_MANAGER),
            reason,
            SkipKind::NotManaged,
        ));
    }
    let kind = annotations.get(ann::BACKEND_TYPE).map(String::as_str);
    if kind != Some(backend.annotation_type()) {
        let reason = format!(
            "is {:?}, this node runs {:?}",
            kind.unwrap_or(""),
            backend.annotation_type()
        );
        return Err(skip(
            name,
            &annotation_field(ann::BACKEND_TYPE),
            reason,
            SkipKind::OtherBackend,
        ));
    }
    Ok(())
}

/// spec.podCIDRs, else spec.podCIDR (flannel's order), parsed.
fn pod_cidrs(name: &str, node: &Node) -> Result<Vec<IpNet>, SkippedNode> {
    let spec = node.spec.as_ref();
    let many: Vec<String> = spec
        .and_then(|s| s.pod_cidrs.clone())
        .unwrap_or_default()
        .into_iter()
        .filter(|c| !c.trim().is_empty())
        .collect();
    let (field, texts) = if many.is_empty() {
        let one = spec
            .and_then(|s| s.pod_cidr.clone())
            .filter(|c| !c.trim().is_empty());
        let Some(one) = one else {
            return Err(skip(
                name,
                "spec.podCIDR",
                "missing: no pod subnet allocated".into(),
                SkipKind::Invalid,
            ));
        };
        ("spec.podCIDR", vec![one])
    } else {
        ("spec.podCIDRs", many)
    };
    texts
        .iter()
        .map(|text| {
            text.trim()
                .parse::<IpNet>()
                .map(|n| n.trunc())
                .map_err(|e| {
                    skip(
                        name,
                        field,
                        format!("{text:?} is not a CIDR ({e})"),
                        SkipKind::Invalid,
                    )
                })
        })
        .collect()
}

fn read_family(
    input: &PlanInput<'_>,
    name: &str,
    annotations: &Annotations,
    cidrs: &[IpNet],
    v6: bool,
) -> Result<PeerFamily, SkippedNode> {
    let family = if v6 { "IPv6" } else { "IPv4" };
    let invalid = |field: &str, reason: String| skip(name, field, reason, SkipKind::Invalid);
    let subnet = *cidrs
        .iter()
        .find(|c| c.addr().is_ipv6() == v6)
        .ok_or_else(|| {
            invalid(
                &pod_cidr_field(),
                format!("no {family} pod CIDR in a cluster with {family}"),
            )
        })?;
    let in_cluster = input
        .cluster_cidrs
        .iter()
        .any(|cluster| cluster.contains(&subnet));
    if !in_cluster {
        let clusters: Vec<String> = input
            .cluster_cidrs
            .iter()
            .map(ToString::to_string)
            .collect();
        return Err(invalid(
            &pod_cidr_field(),
            format!(
                "pod CIDR {subnet} is outside the cluster CIDR {}",
                clusters.join(",")
            ),
        ));
    }
    let public_ip = public_ip(name, annotations, v6)?;
    let (vtep_mac, wireguard) = match input.backend {
        Backend::Vxlan => (Some(vxlan_data(name, annotations, v6)?.vtep_mac), None),
        Backend::HostGw => (None, None),
        Backend::Wireguard => (None, Some(wireguard_data(name, annotations, v6)?)),
    };
    Ok(PeerFamily {
        subnet,
        public_ip,
        vtep_mac,
        wireguard,
    })
}

fn public_ip(name: &str, annotations: &Annotations, v6: bool) -> Result<IpAddr, SkippedNode> {
    let key = if v6 { ann::PUBLIC_IPV6 } else { ann::PUBLIC_IP };
    let field = annotation_field(key);
    let text = annotations
        .get(key)
        .ok_or_else(|| skip(name, &field, "missing".into(), SkipKind::Invalid))?;
    let parsed = if v6 {
        text.parse::<Ipv6Addr>().map(IpAddr::V6).ok()
    } else {
        text.parse::<Ipv4Addr>().map(IpAddr::V4).ok()
    };
    let family = if v6 { "IPv6" } else { "IPv4" };
    parsed.ok_or_else(|| {
        skip(
            name,
            &field,
            format!("{text:?} is not an {family} address"),
            SkipKind::Invalid,
        )
    })
}

fn vxlan_data(name: &str, annotations: &Annotations, v6: bool) -> Result<VxlanData, SkippedNode> {
    let key = if v6 {
        ann::BACKEND_V6_DATA
    } else {
        ann::BACKEND_DATA
    };
    let field = annotation_field(key);
    let text = annotations
        .get(key)
        .ok_or_else(|| skip(name, &field, "missing".into(), SkipKind::Invalid))?;
    let data = VxlanData::parse(text).map_err(|reason| {
        skip(
            name,
            &field,
            format!("{text:?}: {reason}"),
            SkipKind::Invalid,
        )
    })?;
    if data.vni != VXLAN_VNI {
        // Packets with another VNI would be dropped by both ends.
        let reason = format!("VNI {} differs from this node's {VXLAN_VNI}", data.vni);
        return Err(skip(name, &field, reason, SkipKind::Invalid));
    }
    Ok(data)
}

fn wireguard_data(
    name: &str,
    annotations: &Annotations,
    v6: bool,
) -> Result<WireguardData, SkippedNode> {
    let field = backend_data_field(v6);
    let key = if v6 {
        ann::BACKEND_V6_DATA
    } else {
        ann::BACKEND_DATA
    };
    let text = annotations
        .get(key)
        .ok_or_else(|| skip(name, &field, "missing".into(), SkipKind::Invalid))?;
    WireguardData::parse(text).map_err(|reason| {
        skip(
            name,
            &field,
            format!("{text:?}: {reason}"),
            SkipKind::Invalid,
        )
    })
}

/// How a pod CIDR conflict names its field.
pub(super) fn pod_cidr_field() -> String {
    "spec.podCIDRs".to_string()
}

/// The backend-data annotation of a family, as a field name.
pub(super) fn backend_data_field(v6: bool) -> String {
    annotation_field(if v6 {
        ann::BACKEND_V6_DATA
    } else {
        ann::BACKEND_DATA
    })
}

fn annotation_field(key: &str) -> String {
    format!("metadata.annotations[{key}]")
}

fn skip(name: &str, field: &str, reason: String, kind: SkipKind) -> SkippedNode {
    SkippedNode {
        name: name.to_string(),
        field: field.to_string(),
        reason,
        kind,
    }
}
