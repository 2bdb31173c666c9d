//! The pure peer plan: from our node and every Node object to the peers to
//! program and the nodes skipped (each with the field that made it so).

mod peer;

use std::net::IpAddr;

use host::link::mac::MacAddr;
use ipnet::IpNet;
use k8s_openapi::api::core::v1::Node;

use super::wireguard::WireguardData;
use super::wireguard::key::WgKey;
use super::{Backend, Families, LocalNode};

/// One remote node to program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub name: String,
    /// One entry per enabled address family, IPv4 first.
    pub families: Vec<PeerFamily>,
}

/// A peer's pod subnet and endpoint in one address family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerFamily {
    /// The peer's pod CIDR (network address form).
    pub subnet: IpNet,
    /// Where its tunnel ends / its next hop (`public-ip` / `public-ipv6`).
    pub public_ip: IpAddr,
    /// The peer's VTEP MAC (VXLAN backend only).
    pub vtep_mac: Option<MacAddr>,
    /// The peer's public key and port (WireGuard backend only).
    pub wireguard: Option<WireguardData>,
}

/// Why a node was skipped, coarsely, so the daemon can choose what
/// deserves a warning Event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipKind {
    /// No `kube-subnet-manager: "true"`: not (yet) an overlay member.
    NotManaged,
    /// Runs another backend; flannel ignores such peers too.
    OtherBackend,
    /// Malformed or conflicting data: the node's owner must fix it.
    Invalid,
    /// One address family's data is missing or malformed while the other
    /// family's is fine: that other family is programmed (the `v6` flag
    /// names the family left out). flannel skips the whole node instead.
    InvalidFamily { v6: bool },
}

/// A node that gets nothing programmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedNode {
    pub name: String,
    /// The field or annotation at fault, e.g. `spec.podCIDR` or
    /// `metadata.annotations[flannel.alpha.coreos.com/public-ip]`.
    pub field: String,
    pub reason: String,
    pub kind: SkipKind,
}

/// The result of [`plan`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DesiredOverlay {
    /// Sorted by name.
    pub peers: Vec<Peer>,
    /// Sorted by name.
    pub skipped: Vec<SkippedNode>,
}

/// What [`plan`] needs besides the Nodes.
#[derive(Debug, Clone, Copy)]
pub struct PlanInput<'a> {
    pub local: &'a LocalNode,
    pub backend: Backend,
    pub cluster_cidrs: &'a [IpNet],
    /// Our own VTEP MACs (VXLAN): a peer announcing one of them is refused.
    pub local_vtep_macs: &'a [MacAddr],
    /// Our WireGuard public key: a peer announcing it is refused.
    pub local_wg_key: Option<WgKey>,
}

/// Plans the peers. Our own node is left out silently. Nodes are visited
/// in name order, so when two peers' subnets overlap the lexicographically
/// first keeps it, whatever order the API returned them in.
pub fn plan(input: &PlanInput<'_>, nodes: &[Node]) -> DesiredOverlay {
    let mut sorted: Vec<&Node> = nodes.iter().collect();
    sorted.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    let families = Families::of(input.cluster_cidrs);
    let mut out = DesiredOverlay::default();
    for node in sorted {
        match peer::read(input, families, node) {
            Ok(None) => {}
            Ok(Some(candidate)) => accept(input, &mut out, candidate),
            Err(skip) => out.skipped.push(skip),
        }
    }
    out
}

/// Takes a candidate whose families were read: none usable skips the node;
/// otherwise the usable ones are programmed unless they conflict, and each
/// family left out is reported on its own.
fn accept(input: &PlanInput<'_>, out: &mut DesiredOverlay, candidate: peer::Candidate) {
    let peer::Candidate { peer, missing } = candidate;
    if peer.families.is_empty() {
        out.skipped
            .extend(missing.into_iter().map(|(_, skip)| skip));
        return;
    }
    if let Some(skip) = conflict(input, &out.peers, &peer) {
        out.skipped.push(skip);
        return;
    }
    out.peers.push(peer);
    let partial = missing.into_iter().map(|(v6, skip)| SkippedNode {
        kind: SkipKind::InvalidFamily { v6 },
        ..skip
    });
    out.skipped.extend(partial);
}

/// A subnet overlapping ours or an accepted peer's would hijack traffic;
/// flannel silently lets the last event win, we keep the first by name.
/// The same holds for a VTEP MAC: one FDB entry per MAC can point to one
/// node; and for a WireGuard key: one peer per key.
fn conflict(input: &PlanInput<'_>, accepted: &[Peer], candidate: &Peer) -> Option<SkippedNode> {
    let skip = |field: String, reason: String| SkippedNode {
        name: candidate.name.clone(),
        field,
        reason,
        kind: SkipKind::Invalid,
    };
    for family in &candidate.families {
        if let Some(reason) = subnet_conflict(input.local, accepted, family.subnet) {
            return Some(skip(peer::pod_cidr_field(), reason));
        }
        let other = mac_conflict(input.local_vtep_macs, accepted, family)
            .or_else(|| wg_key_conflict(input.local_wg_key, accepted, family));
        if let Some(reason) = other {
            return Some(skip(
                peer::backend_data_field(family.subnet.addr().is_ipv6()),
                reason,
            ));
        }
    }
    None
}

fn subnet_conflict(local: &LocalNode, accepted: &[Peer], subnet: IpNet) -> Option<String> {
    if let Some(own) = local.pod_cidrs.iter().find(|own| overlaps(own, &subnet)) {
        return Some(format!(
            "pod CIDR {subnet} overlaps this node's pod CIDR {own}"
        ));
    }
    accepted.iter().find_map(|peer| {
        let theirs = peer
            .families
            .iter()
            .find(|f| overlaps(&f.subnet, &subnet))?;
        Some(format!(
            "pod CIDR {subnet} overlaps {} of node {}, which sorts first and keeps it",
            theirs.subnet, peer.name
        ))
    })
}

fn mac_conflict(local_macs: &[MacAddr], accepted: &[Peer], family: &PeerFamily) -> Option<String> {
    let mac = family.vtep_mac?;
    if local_macs.contains(&mac) {
        return Some(format!("VtepMAC {mac} is this node's own VTEP MAC"));
    }
    accepted.iter().find_map(|peer| {
        peer.families
            .iter()
            .any(|f| f.vtep_mac == Some(mac))
            .then(|| {
                format!(
                    "VtepMAC {mac} is already used by node {}, which sorts first and keeps it",
                    peer.name
                )
            })
    })
}

fn wg_key_conflict(
    local_key: Option<WgKey>,
    accepted: &[Peer],
    family: &PeerFamily,
) -> Option<String> {
    let key = family.wireguard?.public_key;
    if local_key == Some(key) {
        return Some(format!("PublicKey {key} is this node's own key"));
    }
    accepted.iter().find_map(|peer| {
        peer.families
            .iter()
            .any(|f| f.wireguard.is_some_and(|w| w.public_key == key))
            .then(|| {
                format!(
                    "PublicKey {key} is already used by node {}, which sorts first and keeps it",
                    peer.name
                )
            })
    })
}

/// Whether two prefixes share any address.
pub fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

#[cfg(test)]
mod dual_tests;
#[cfg(test)]
mod tests;
