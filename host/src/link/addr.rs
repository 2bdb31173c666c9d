//! Interface addresses.

use std::net::IpAddr;

use futures::TryStreamExt;
use ipnet::IpNet;
use netlink_packet_route::AddressFamily;
use netlink_packet_route::address::{AddressAttribute, AddressMessage};

use super::{LinkError, Netlink};

/// Which address family to act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressFamilyFilter {
    V4,
    V6,
    Any,
}

impl AddressFamilyFilter {
    fn matches(self, net: &IpNet) -> bool {
        match self {
            AddressFamilyFilter::V4 => matches!(net, IpNet::V4(_)),
            AddressFamilyFilter::V6 => matches!(net, IpNet::V6(_)),
            AddressFamilyFilter::Any => true,
        }
    }
}

impl Netlink {
    /// Adds `addr` (address + prefix) to link `name`; already present is fine.
    pub async fn add_address(&self, name: &str, addr: IpNet) -> Result<(), LinkError> {
        let link = self.require_link(name).await?;
        self.handle
            .address()
            .add(link.index, addr.addr(), addr.prefix_len())
            .replace()
            .execute()
            .await
            .map_err(|e| LinkError::request("add address", format!("{addr} on {name}"), e))
    }

    /// Addresses on link `name` of the given family.
    pub async fn addresses(
        &self,
        name: &str,
        family: AddressFamilyFilter,
    ) -> Result<Vec<IpNet>, LinkError> {
        let found = self.address_messages(name).await?;
        Ok(found
            .into_iter()
            .map(|(net, _)| net)
            .filter(|net| family.matches(net))
            .collect())
    }

    /// Removes every address of `family` from link `name` except `keep`;
    /// returns the removed ones.
    pub async fn flush_addresses_except(
        &self,
        name: &str,
        family: AddressFamilyFilter,
        keep: Option<IpNet>,
    ) -> Result<Vec<IpNet>, LinkError> {
        let mut removed = Vec::new();
        for (net, msg) in self.address_messages(name).await? {
            if !family.matches(&net) || Some(net) == keep || is_link_local(&net) {
                continue;
            }
            self.handle
                .address()
                .del(msg)
                .execute()
                .await
                .map_err(|e| LinkError::request("delete address", format!("{net} on {name}"), e))?;
            removed.push(net);
        }
        Ok(removed)
    }

    async fn address_messages(
        &self,
        name: &str,
    ) -> Result<Vec<(IpNet, AddressMessage)>, LinkError> {
        let link = self.require_link(name).await?;
        let stream = self
            .handle
            .address()
            .get()
            .set_link_index_filter(link.index)
            .execute();
        let messages: Vec<AddressMessage> = stream
            .try_collect()
            .await
            .map_err(|e| LinkError::request("list addresses of", name, e))?;
        Ok(messages
            .into_iter()
            // The dump filter is advisory on some kernels; check the index too.
            .filter(|m| m.header.index == link.index)
            .filter_map(|m| address_of(&m).map(|net| (net, m)))
            .collect())
    }
}

/// The interface address of a message: IFA_LOCAL for IPv4 (IFA_ADDRESS is the
/// peer on point-to-point links), IFA_ADDRESS for IPv6.
fn address_of(msg: &AddressMessage) -> Option<IpNet> {
    let find = |want_local: bool| {
        msg.attributes.iter().find_map(|a| match a {
            AddressAttribute::Local(ip) if want_local => Some(*ip),
            AddressAttribute::Address(ip) if !want_local => Some(*ip),
            _ => None,
        })
    };
    let ip: IpAddr = match msg.header.family {
        AddressFamily::Inet => find(true).or_else(|| find(false))?,
        _ => find(false)?,
    };
    IpNet::new(ip, msg.header.prefix_len).ok()
}

/// IPv6 link-local addresses belong to the kernel; never flush them.
fn is_link_local(net: &IpNet) -> bool {
    match net {
        IpNet::V6(v6) => (v6.addr().segments()[0] & 0xffc0) == 0xfe80,
        IpNet::V4(_) => false,
    }
}
