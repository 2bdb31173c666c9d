//! The exact kernel objects a set of peers needs (pure), and the diff
//! against what the kernel has. One neighbour, one FDB entry and one route
//! per VXLAN peer and family; one route per host-gw peer and family.

use std::collections::BTreeSet;
use std::net::IpAddr;

use host::link::mac::MacAddr;
use ipnet::IpNet;

use super::plan::Peer;

/// A permanent neighbour on the VXLAN device: peer subnet's network
/// address -> peer VTEP MAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NeighbourSpec {
    pub ip: IpAddr,
    pub mac: MacAddr,
}

/// A permanent `self` FDB entry on the VXLAN device: VTEP MAC -> endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FdbSpec {
    pub mac: MacAddr,
    pub dst: IpAddr,
}

/// A route on one device (the device is implied by the set it is in).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RouteSpec {
    pub dst: IpNet,
    pub gateway: IpAddr,
    /// VXLAN routes point at the peer subnet's network address, which no
    /// local prefix covers, so the kernel must be told it is on the link.
    pub onlink: bool,
}

/// Everything one VXLAN device (one family) must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VxlanObjects {
    pub neighbours: BTreeSet<NeighbourSpec>,
    pub fdb: BTreeSet<FdbSpec>,
    pub routes: BTreeSet<RouteSpec>,
}

/// The VXLAN objects of the peers' `v6` family.
pub fn vxlan_objects(peers: &[Peer], v6: bool) -> VxlanObjects {
    let mut out = VxlanObjects::default();
    let families = peers.iter().flat_map(|p| &p.families);
    for family in families.filter(|f| f.subnet.addr().is_ipv6() == v6) {
        let Some(mac) = family.vtep_mac else { continue };
        let gateway = family.subnet.network();
        out.neighbours.insert(NeighbourSpec { ip: gateway, mac });
        out.fdb.insert(FdbSpec {
            mac,
            dst: family.public_ip,
        });
        out.routes.insert(RouteSpec {
            dst: family.subnet,
            gateway,
            onlink: true,
        });
    }
    out
}

/// The host-gw routes (on the underlay device) of the peers' `v6` family.
pub fn host_gw_routes(peers: &[Peer], v6: bool) -> BTreeSet<RouteSpec> {
    peers
        .iter()
        .flat_map(|p| &p.families)
        .filter(|f| f.subnet.addr().is_ipv6() == v6)
        .map(|f| RouteSpec {
            dst: f.subnet,
            gateway: f.public_ip,
            onlink: false,
        })
        .collect()
}

/// What to write and what to remove so `current` becomes `desired`, when
/// objects are identified by `key` (a changed object is written with
/// replace semantics and not removed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diff<T> {
    /// Missing or different: write with replace semantics.
    pub write: Vec<T>,
    /// Present but unwanted, and no desired object has the same key.
    pub remove: Vec<T>,
}

impl<T> Diff<T> {
    /// Whether nothing needs doing.
    pub fn is_empty(&self) -> bool {
        self.write.is_empty() && self.remove.is_empty()
    }
}

/// Diffs two sets whose objects are replaced in place by `key`.
pub fn diff<T, K>(desired: &BTreeSet<T>, current: &BTreeSet<T>, key: impl Fn(&T) -> K) -> Diff<T>
where
    T: Ord + Clone,
    K: Ord,
{
    let desired_keys: BTreeSet<K> = desired.iter().map(&key).collect();
    Diff {
        write: desired.difference(current).cloned().collect(),
        remove: current
            .difference(desired)
            .filter(|c| !desired_keys.contains(&key(c)))
            .cloned()
            .collect(),
    }
}
