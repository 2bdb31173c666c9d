//! The VXLAN backend: the device per family and its neighbour, FDB and
//! route entries, applied as a diff against what the device holds.

use std::collections::BTreeSet;

use host::link::mac::MacAddr;
use host::link::owned_route::TaggedRoute;
use host::link::vxlan::VxlanSpec;
use host::link::{AddressFamilyFilter, Netlink};
use host::names;
use ipnet::IpNet;

use super::reconcile::{Outcome, device_name};
use super::state::{self, FdbSpec, NeighbourSpec, RouteSpec, VxlanObjects};
use super::underlay::Underlay;
use super::{OverlayError, VXLAN_OVERHEAD, VXLAN_OVERHEAD_V6, VXLAN_PORT, VXLAN_VNI};

/// One family's VXLAN device as it must be.
pub(super) struct DeviceWant<'a> {
    pub v6: bool,
    pub underlay: &'a Underlay,
    pub mac: MacAddr,
    /// Our pod CIDR of this family; its network address goes on the device.
    pub own_subnet: IpNet,
}

impl DeviceWant<'_> {
    fn spec(&self) -> VxlanSpec {
        VxlanSpec {
            name: device_name(self.v6).to_string(),
            vni: VXLAN_VNI,
            port: VXLAN_PORT,
            local: self.underlay.ip,
            underlay_index: self.underlay.index,
            mtu: self.underlay.mtu.saturating_sub(self.overhead()),
            mac: self.mac,
        }
    }

    /// Encapsulation bytes of the underlay's family (see [`VXLAN_OVERHEAD_V6`]).
    fn overhead(&self) -> u32 {
        if self.underlay.ip.is_ipv6() {
            VXLAN_OVERHEAD_V6
        } else {
            VXLAN_OVERHEAD
        }
    }

    fn address(&self) -> IpNet {
        let host_len = if self.v6 { 128 } else { 32 };
        IpNet::new(self.own_subnet.network(), host_len).unwrap_or(self.own_subnet)
    }
}

/// Ensures the device exists with the wanted attributes (recreating it
/// when VNI, port, endpoint, underlay or MAC differ), address, MTU and up
/// state. Returns its index.
pub(super) async fn ensure_device(
    netlink: &Netlink,
    want: &DeviceWant<'_>,
    outcome: &mut Outcome,
) -> Result<u32, OverlayError> {
    let spec = want.spec();
    let existing = netlink.vxlan_link(&spec.name).await?;
    let reusable = existing.as_ref().filter(|(link, attrs)| {
        link.kind.as_deref() == Some("vxlan")
            && attrs.matches(&spec)
            && link.mac.as_deref() == Some(spec.mac.to_string().as_str())
    });
    let link = match reusable {
        Some((link, _)) => link.clone(),
        None => {
            if existing.is_some() {
                tracing::warn!(component = "flannel", device = %spec.name, "existing device does not match; recreating it");
                netlink.delete_link(&spec.name).await?;
            }
            outcome.devices_created.push(spec.name.clone());
            netlink.create_vxlan(&spec).await?
        }
    };
    if link.mtu != Some(spec.mtu) {
        netlink.set_mtu(&spec.name, spec.mtu).await?;
        outcome.counts.written += 1;
    }
    ensure_address(netlink, want, outcome).await?;
    if want.v6 {
        // Router advertisements must not configure the tunnel device.
        let key = format!("net/ipv6/conf/{}/accept_ra", spec.name);
        if let Err(e) = host::sysctl::ensure(&key, "0") {
            tracing::warn!(component = "flannel", error = %e, "cannot disable accept_ra");
        }
    }
    if !link.up {
        netlink.set_up(&spec.name).await?;
    }
    Ok(link.index)
}

async fn ensure_address(
    netlink: &Netlink,
    want: &DeviceWant<'_>,
    outcome: &mut Outcome,
) -> Result<(), OverlayError> {
    let name = device_name(want.v6);
    let family = if want.v6 {
        AddressFamilyFilter::V6
    } else {
        AddressFamilyFilter::V4
    };
    let address = want.address();
    let current = netlink.addresses(name, family).await?;
    let current: Vec<IpNet> = current.into_iter().filter(|a| !is_link_local(a)).collect();
    if current == [address] {
        return Ok(());
    }
    netlink.add_address(name, address).await?;
    let removed = netlink
        .flush_addresses_except(name, family, Some(address))
        .await?;
    outcome.counts.written += 1;
    outcome.counts.removed += removed.len();
    Ok(())
}

fn is_link_local(net: &IpNet) -> bool {
    matches!(net, IpNet::V6(v6) if (v6.addr().segments()[0] & 0xffc0) == 0xfe80)
}

/// Makes the device's neighbours, FDB entries and routes exactly `desired`.
/// Writes go first (replace semantics, so a changed endpoint is rewritten
/// in place without a gap), removals after, routes last on the way in and
/// first on the way out so a route never points at a missing neighbour.
pub(super) async fn apply_objects(
    netlink: &Netlink,
    index: u32,
    v6: bool,
    desired: &VxlanObjects,
    outcome: &mut Outcome,
) -> Result<(), OverlayError> {
    let neighbours = state::diff(
        &desired.neighbours,
        &current_neighbours(netlink, index, v6).await?,
        |n| n.ip,
    );
    let fdb = state::diff(&desired.fdb, &current_fdb(netlink, index, v6).await?, |f| {
        *f
    });
    let routes = state::diff(
        &desired.routes,
        &current_routes(netlink, index, v6).await?,
        |r| r.dst,
    );
    for n in &neighbours.write {
        outcome.wrote(netlink.replace_neighbour(index, n.ip, n.mac).await)?;
    }
    for f in &fdb.write {
        outcome.wrote(netlink.replace_fdb(index, f.mac, f.dst).await)?;
    }
    for r in &routes.write {
        outcome.wrote(
            netlink
                .replace_tagged_route(&tagged(r, index), names::RTPROT_NODENET)
                .await,
        )?;
    }
    for r in &routes.remove {
        outcome.removed(
            netlink
                .delete_tagged_route(&tagged(r, index), names::RTPROT_NODENET)
                .await,
        )?;
    }
    for f in &fdb.remove {
        outcome.removed(netlink.delete_fdb(index, f.mac, f.dst).await)?;
    }
    for n in &neighbours.remove {
        outcome.removed(netlink.delete_neighbour(index, n.ip).await)?;
    }
    Ok(())
}

/// Permanent neighbours are ours (the kernel's resolver never makes them);
/// others are left to age out.
async fn current_neighbours(
    netlink: &Netlink,
    index: u32,
    v6: bool,
) -> Result<BTreeSet<NeighbourSpec>, OverlayError> {
    let entries = netlink.neighbours(index, v6).await?;
    Ok(entries
        .into_iter()
        .filter(|e| e.permanent)
        .filter_map(|e| {
            Some(NeighbourSpec {
                ip: e.ip,
                mac: e.mac?,
            })
        })
        .collect())
}

async fn current_fdb(
    netlink: &Netlink,
    index: u32,
    v6: bool,
) -> Result<BTreeSet<FdbSpec>, OverlayError> {
    let entries = netlink.fdb_entries(index).await?;
    Ok(entries
        .into_iter()
        .filter(|e| e.self_entry && e.permanent)
        .filter_map(|e| {
            Some(FdbSpec {
                mac: e.mac,
                dst: e.dst?,
            })
        })
        .filter(|f| f.dst.is_ipv6() == v6)
        .collect())
}

async fn current_routes(
    netlink: &Netlink,
    index: u32,
    v6: bool,
) -> Result<BTreeSet<RouteSpec>, OverlayError> {
    let routes = netlink
        .routes_with_protocol(v6, names::RTPROT_NODENET)
        .await?;
    Ok(routes
        .into_iter()
        .filter(|r| r.oif == Some(index))
        .filter_map(|r| {
            Some(RouteSpec {
                dst: r.dst,
                gateway: r.gateway?,
                onlink: r.onlink,
            })
        })
        .collect())
}

fn tagged(route: &RouteSpec, index: u32) -> TaggedRoute {
    TaggedRoute {
        dst: route.dst,
        gateway: Some(route.gateway),
        oif: Some(index),
        onlink: route.onlink,
    }
}
