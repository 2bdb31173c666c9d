//! The underlay interface: the one holding the node's address. (K3s picks
//! the default-route interface; the node-ip interface is what its users
//! ask for in k3s#12459, and is what the component's MTU uses too.)

use std::net::IpAddr;

use host::link::{AddressFamilyFilter, Netlink};

use super::OverlayError;

/// The interface carrying overlay traffic for one family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Underlay {
    pub name: String,
    pub index: u32,
    pub mtu: u32,
    /// The node address on it (VXLAN source address).
    pub ip: IpAddr,
}

/// Finds the interface holding `ip` in the current namespace.
pub async fn resolve(netlink: &Netlink, ip: IpAddr) -> Result<Underlay, OverlayError> {
    for link in netlink.links().await? {
        let addresses = netlink
            .addresses(&link.name, AddressFamilyFilter::Any)
            .await?;
        if !addresses.iter().any(|net| net.addr() == ip) {
            continue;
        }
        let mtu = link
            .mtu
            .filter(|m| *m > 0)
            .ok_or_else(|| OverlayError::NoMtu {
                name: link.name.clone(),
            })?;
        return Ok(Underlay {
            name: link.name,
            index: link.index,
            mtu,
            ip,
        });
    }
    Err(OverlayError::NoUnderlay { ip })
}
