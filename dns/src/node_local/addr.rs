//! The cluster DNS address on `lo`.

use std::net::IpAddr;

use futures::TryStreamExt;
use host::link::{AddressFamilyFilter, LinkError, Netlink};
use ipnet::IpNet;
use netlink_packet_route::address::{AddressAttribute, AddressMessage};

use super::{NodeLocalError, host_prefix};

const LO: &str = "lo";

fn host_net(addr: IpAddr) -> IpNet {
    // A host prefix is always valid for its family.
    IpNet::new(addr, host_prefix(addr)).unwrap_or_else(|_| IpNet::from(addr))
}

fn err(addr: IpAddr) -> impl FnOnce(LinkError) -> NodeLocalError {
    move |source| NodeLocalError::Address {
        addr,
        source: Box::new(source),
    }
}

/// Adds `addr`/32 (/128) to `lo` unless present; returns whether it added.
pub async fn ensure_address(addr: IpAddr) -> Result<bool, NodeLocalError> {
    let netlink = Netlink::connect().map_err(err(addr))?;
    let present = netlink
        .addresses(LO, AddressFamilyFilter::Any)
        .await
        .map_err(err(addr))?;
    let want = host_net(addr);
    if present.contains(&want) {
        return Ok(false);
    }
    netlink.add_address(LO, want).await.map_err(err(addr))?;
    Ok(true)
}

/// Removes `addr` from `lo` if it is there with a host prefix (the form we
/// add; the same address with another prefix was put there by someone
/// else). Returns whether it was (with `dry_run`: would be) removed.
pub async fn remove_address(addr: IpAddr, dry_run: bool) -> Result<bool, NodeLocalError> {
    let netlink = Netlink::connect().map_err(err(addr))?;
    let lo = netlink.require_link(LO).await.map_err(err(addr))?;
    let messages: Vec<AddressMessage> = netlink
        .handle()
        .address()
        .get()
        .set_link_index_filter(lo.index)
        .execute()
        .try_collect()
        .await
        .map_err(|e| NodeLocalError::Address {
            addr,
            source: Box::new(LinkError::Request {
                op: "list addresses of",
                subject: LO.into(),
                source: e,
            }),
        })?;
    let want = host_prefix(addr);
    let Some(msg) = messages
        .into_iter()
        .find(|m| m.header.index == lo.index && m.header.prefix_len == want && holds(m, addr))
    else {
        return Ok(false);
    };
    if !dry_run {
        netlink
            .handle()
            .address()
            .del(msg)
            .execute()
            .await
            .map_err(|e| NodeLocalError::Address {
                addr,
                source: Box::new(LinkError::Request {
                    op: "delete address",
                    subject: format!("{addr} on lo"),
                    source: e,
                }),
            })?;
    }
    Ok(true)
}

fn holds(msg: &AddressMessage, addr: IpAddr) -> bool {
    msg.attributes.iter().any(|a| match a {
        AddressAttribute::Local(ip) | AddressAttribute::Address(ip) => *ip == addr,
        _ => false,
    })
}
