//! Neighbour (ARP/NDP) entries and VXLAN forwarding-database entries of one
//! link. Used by the overlay, which owns every entry on its VXLAN devices.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use futures::TryStreamExt;
use netlink_packet_route::AddressFamily;
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};

use super::{LinkError, Netlink, mac::MacAddr};

/// One neighbour entry (`ip neigh`) of a link.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NeighbourEntry {
    pub ip: IpAddr,
    /// `None` for entries without a resolved link-layer address.
    pub mac: Option<MacAddr>,
    /// NUD_PERMANENT: set by someone, never by the kernel's resolver.
    pub permanent: bool,
}

/// One forwarding-database entry (`bridge fdb`) of a link.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FdbEntry {
    pub mac: MacAddr,
    /// The VXLAN remote (`dst`), if the entry has one.
    pub dst: Option<IpAddr>,
    /// NTF_SELF: the entry lives in the device's own table (VXLAN), not a bridge's.
    pub self_entry: bool,
    pub permanent: bool,
}

impl Netlink {
    /// Neighbour entries of `family` (V4 or V6) on link `index`.
    pub async fn neighbours(&self, index: u32, v6: bool) -> Result<Vec<NeighbourEntry>, LinkError> {
        let family = if v6 {
            AddressFamily::Inet6
        } else {
            AddressFamily::Inet
        };
        let messages = self.dump_neighbours(family).await?;
        Ok(messages
            .iter()
            .filter(|m| m.header.ifindex == index)
            .filter_map(neighbour_entry)
            .collect())
    }

    /// `ip neigh replace <ip> lladdr <mac> dev <index> nud permanent`.
    pub async fn replace_neighbour(
        &self,
        index: u32,
        ip: IpAddr,
        mac: MacAddr,
    ) -> Result<(), LinkError> {
        self.handle
            .neighbours()
            .add(index, ip)
            .link_layer_address(&mac.0)
            .state(NeighbourState::Permanent)
            .replace()
            .execute()
            .await
            .map_err(|e| LinkError::request("replace neighbour", format!("{ip} lladdr {mac}"), e))
    }

    /// Deletes the neighbour `ip` on link `index`; returns whether it existed.
    pub async fn delete_neighbour(&self, index: u32, ip: IpAddr) -> Result<bool, LinkError> {
        let mut msg = NeighbourMessage::default();
        msg.header.family = family_of(ip);
        msg.header.ifindex = index;
        msg.attributes
            .push(NeighbourAttribute::Destination(NeighbourAddress::from(ip)));
        let result = self.handle.neighbours().del(msg).execute().await;
        not_found_is_false(result, "delete neighbour", ip.to_string())
    }

    /// Forwarding-database entries of link `index` (family AF_BRIDGE).
    pub async fn fdb_entries(&self, index: u32) -> Result<Vec<FdbEntry>, LinkError> {
        let messages = self.dump_neighbours(AddressFamily::Bridge).await?;
        Ok(messages
            .iter()
            .filter(|m| m.header.ifindex == index)
            .filter_map(fdb_entry)
            .collect())
    }

    /// `bridge fdb replace <mac> dev <index> dst <dst> self permanent`: a
    /// new `dst` for an existing MAC rewrites that entry's remote.
    pub async fn replace_fdb(
        &self,
        index: u32,
        mac: MacAddr,
        dst: IpAddr,
    ) -> Result<(), LinkError> {
        self.handle
            .neighbours()
            .add_bridge(index, &mac.0)
            .flags(NeighbourFlags::Own)
            .state(NeighbourState::Permanent)
            .destination(dst)
            .replace()
            .execute()
            .await
            .map_err(|e| LinkError::request("replace fdb entry", format!("{mac} dst {dst}"), e))
    }

    /// Deletes the FDB entry (`mac`, `dst`) of link `index`; returns whether it existed.
    pub async fn delete_fdb(
        &self,
        index: u32,
        mac: MacAddr,
        dst: IpAddr,
    ) -> Result<bool, LinkError> {
        let mut msg = NeighbourMessage::default();
        msg.header.family = AddressFamily::Bridge;
        msg.header.ifindex = index;
        msg.header.flags = NeighbourFlags::Own;
        msg.header.state = NeighbourState::Permanent;
        msg.attributes
            .push(NeighbourAttribute::LinkLayerAddress(mac.0.to_vec()));
        msg.attributes
            .push(NeighbourAttribute::Destination(NeighbourAddress::from(dst)));
        let result = self.handle.neighbours().del(msg).execute().await;
        not_found_is_false(result, "delete fdb entry", format!("{mac} dst {dst}"))
    }

    async fn dump_neighbours(
        &self,
        family: AddressFamily,
    ) -> Result<Vec<NeighbourMessage>, LinkError> {
        self.handle
            .neighbours()
            .get()
            .set_address_family(family)
            .execute()
            .try_collect()
            .await
            .map_err(|e| LinkError::request("list", format!("{family:?} neighbours"), e))
    }
}

fn neighbour_entry(msg: &NeighbourMessage) -> Option<NeighbourEntry> {
    let ip = msg.attributes.iter().find_map(|a| match a {
        NeighbourAttribute::Destination(addr) => ip_of(addr),
        _ => None,
    })?;
    Some(NeighbourEntry {
        ip,
        mac: lladdr(msg),
        permanent: msg.header.state == NeighbourState::Permanent,
    })
}

fn fdb_entry(msg: &NeighbourMessage) -> Option<FdbEntry> {
    Some(FdbEntry {
        mac: lladdr(msg)?,
        dst: msg.attributes.iter().find_map(|a| match a {
            NeighbourAttribute::Destination(addr) => ip_of(addr),
            _ => None,
        }),
        self_entry: msg.header.flags.contains(NeighbourFlags::Own),
        permanent: msg.header.state == NeighbourState::Permanent,
    })
}

fn lladdr(msg: &NeighbourMessage) -> Option<MacAddr> {
    msg.attributes.iter().find_map(|a| match a {
        NeighbourAttribute::LinkLayerAddress(bytes) => MacAddr::from_bytes(bytes),
        _ => None,
    })
}

/// FDB dumps carry NDA_DST as raw bytes (the family is AF_BRIDGE), so the
/// address family is told by the length.
fn ip_of(addr: &NeighbourAddress) -> Option<IpAddr> {
    match addr {
        NeighbourAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        NeighbourAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        NeighbourAddress::Other(bytes) => match bytes.len() {
            4 => <[u8; 4]>::try_from(bytes.as_slice())
                .ok()
                .map(|b| IpAddr::V4(Ipv4Addr::from(b))),
            16 => <[u8; 16]>::try_from(bytes.as_slice())
                .ok()
                .map(|b| IpAddr::V6(Ipv6Addr::from(b))),
            _ => None,
        },
        _ => None,
    }
}

fn family_of(ip: IpAddr) -> AddressFamily {
    match ip {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    }
}

/// Deleting something already gone is success for a reconciler.
fn not_found_is_false(
    result: Result<(), rtnetlink::Error>,
    op: &'static str,
    subject: String,
) -> Result<bool, LinkError> {
    match result {
        Ok(()) => Ok(true),
        Err(rtnetlink::Error::NetlinkError(msg)) if msg.raw_code().abs() == libc::ENOENT => {
            Ok(false)
        }
        Err(e) => Err(LinkError::request(op, subject, e)),
    }
}
