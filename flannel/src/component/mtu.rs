//! The underlay MTU: the MTU of --flannel-iface, else of the interface that
//! holds the node's IP.
//! (K3s uses the default-route interface; using the --node-ip interface is
//! the fix K3s users ask for in k3s#12459.)

use std::net::IpAddr;

use host::link::{AddressFamilyFilter, LinkError, Netlink};

/// The underlay MTU could not be found.
#[derive(Debug, thiserror::Error)]
pub enum MtuError {
    /// Listing links or addresses failed.
    #[error("cannot read interfaces to find the MTU: {0}")]
    Netlink(#[from] LinkError),
    /// No interface in this network namespace holds the address.
    #[error("no interface holds the node IP {0}; set --node-ip to an address of this node")]
    NoInterface(IpAddr),
    /// The configured interface does not exist.
    #[error("--flannel-iface {0}: no such interface in this network namespace")]
    NoSuchInterface(String),
    /// The interface reports no MTU.
    #[error("interface {0} reports no MTU")]
    NoMtu(String),
}

/// MTU of the interface holding `ip` in the current network namespace.
pub async fn mtu_of_interface_with(ip: IpAddr) -> Result<u32, MtuError> {
    let netlink = Netlink::connect()?;
    for link in netlink.links().await? {
        let addresses = netlink
            .addresses(&link.name, AddressFamilyFilter::Any)
            .await?;
        if addresses.iter().any(|net| net.addr() == ip) {
            return link
                .mtu
                .filter(|m| *m > 0)
                .ok_or(MtuError::NoMtu(link.name));
        }
    }
    Err(MtuError::NoInterface(ip))
}

/// MTU of interface `name` (--flannel-iface) in the current network namespace.
pub async fn mtu_of_interface(name: &str) -> Result<u32, MtuError> {
    let netlink = Netlink::connect()?;
    let link = netlink
        .link_by_name(name)
        .await?
        .ok_or_else(|| MtuError::NoSuchInterface(name.to_string()))?;
    link.mtu
        .filter(|m| *m > 0)
        .ok_or(MtuError::NoMtu(link.name))
}
