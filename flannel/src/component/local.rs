//! This node's endpoint addresses, read in the daemon's network namespace.
//! Re-read on every pass, so an address change of --flannel-iface is
//! followed (flannel reads it once at start).

use std::net::IpAddr;

use host::link::{AddressFamilyFilter, Netlink};
use k8s_openapi::api::core::v1::Node;

use super::plan::{self, LocalAddrs};
use super::{FlannelConfig, FlannelError};

/// Per family of the cluster CIDRs: --flannel-iface, else --node-ip, else
/// the Node's InternalIP.
pub async fn resolve(cfg: &FlannelConfig, node: &Node) -> Result<LocalAddrs, FlannelError> {
    let iface = match &cfg.iface {
        Some(name) => iface_addresses(name).await?,
        None => Vec::new(),
    };
    let addrs = plan::local_addrs(&iface, &cfg.node_ips, node).of_families(&cfg.cluster_cidrs);
    if addrs.primary().is_none() {
        return Err(FlannelError::NoNodeIp {
            node: cfg.node_name.clone(),
        });
    }
    Ok(addrs)
}

/// The usable addresses of the interface; it must exist and have one (K3s
/// refuses to start otherwise too).
async fn iface_addresses(name: &str) -> Result<Vec<IpAddr>, FlannelError> {
    let netlink = Netlink::connect()?;
    if !netlink.link_exists(name).await? {
        return Err(FlannelError::NoIface { name: name.into() });
    }
    let all = netlink.addresses(name, AddressFamilyFilter::Any).await?;
    let usable = plan::endpoint_candidates(&all);
    if usable.is_empty() {
        return Err(FlannelError::IfaceWithoutAddress { name: name.into() });
    }
    Ok(usable)
}
