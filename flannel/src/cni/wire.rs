//! Kernel wiring of one pod: bridge, veth pair, pod interface, routes.
//! Runs in the node's network namespace (the plugin's current one); pod-side
//! work runs on a dedicated thread inside the pod namespace.

use std::fs::File;
use std::net::IpAddr;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

use host::link::{AddressFamilyFilter, LinkInfo, Netlink, RouteSpec, VethSpec};
use host::names;
use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use super::error::CniError;
use crate::subnet::SubnetEnv;

/// One pod address with its gateway (the bridge address of that family).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PodAddress {
    /// Address with the pod subnet's prefix (`10.42.0.5/24`).
    pub address: IpNet,
    pub gateway: IpAddr,
    /// The cluster CIDR of this family, routed via the gateway.
    pub cluster: Option<IpNet>,
}

/// Ensures cni0 exists, is up, and has exactly the gateway address(es)
/// (any other IPv4 address is removed: forceAddress, so a changed podCIDR
/// does not fail every pod with "cni0 already has an IP address").
pub async fn ensure_bridge(nl: &Netlink, env: &SubnetEnv) -> Result<LinkInfo, CniError> {
    let bridge = nl
        .ensure_bridge(names::BRIDGE, env.mtu)
        .await
        .map_err(|e| CniError::kernel(format!("ensure bridge {}", names::BRIDGE), e))?;
    if let Some(gw) = env.subnet {
        set_bridge_address(nl, IpNet::V4(gw), AddressFamilyFilter::V4).await?;
    }
    if let Some(gw) = env.ipv6_subnet {
        // A tentative (DAD) gateway would drop pod traffic for a second or two.
        let key = format!("net/ipv6/conf/{}/accept_dad", names::BRIDGE);
        sysctl(&key, "0")?;
        sysctl(&format!("net/ipv6/conf/{}/accept_ra", names::BRIDGE), "0")?;
        nl.add_address(names::BRIDGE, IpNet::V6(gw))
            .await
            .map_err(|e| CniError::kernel("add IPv6 gateway address", e))?;
    }
    Ok(bridge)
}

async fn set_bridge_address(
    nl: &Netlink,
    gw: IpNet,
    family: AddressFamilyFilter,
) -> Result<(), CniError> {
    let removed = nl
        .flush_addresses_except(names::BRIDGE, family, Some(gw))
        .await
        .map_err(|e| CniError::kernel("remove stale cni0 addresses", e))?;
    if !removed.is_empty() {
        tracing::info!(?removed, gateway = %gw, "replaced addresses on {}", names::BRIDGE);
    }
    nl.add_address(names::BRIDGE, gw)
        .await
        .map_err(|e| CniError::kernel(format!("add gateway {gw} to {}", names::BRIDGE), e))
}

/// Pod addresses' routes need forwarding on the node.
pub fn enable_forwarding(env: &SubnetEnv) -> Result<(), CniError> {
    if env.subnet.is_some() {
        sysctl("net/ipv4/ip_forward", "1")?;
    }
    if env.ipv6_subnet.is_some() {
        sysctl("net/ipv6/conf/all/forwarding", "1")?;
    }
    Ok(())
}

/// Creates the veth pair (peer directly inside the pod netns as `ifname`),
/// attaches the host end to cni0 with hairpin on, and sets it up.
pub async fn create_veth(
    nl: &Netlink,
    host_name: &str,
    ifname: &str,
    mtu: u32,
    pod_ns: &File,
) -> Result<LinkInfo, CniError> {
    let spec = VethSpec {
        host_name,
        peer_name: ifname,
        mtu,
        peer_netns: Some(pod_ns.as_fd()),
    };
    let kernel = |what: &str, e| CniError::kernel(format!("{what} {host_name}"), e);
    nl.create_veth(&spec)
        .await
        .map_err(|e| kernel("create veth", e))?;
    nl.set_master(host_name, names::BRIDGE)
        .await
        .map_err(|e| kernel("attach to cni0", e))?;
    nl.set_hairpin(host_name, true)
        .await
        .map_err(|e| kernel("set hairpin on", e))?;
    nl.set_up(host_name)
        .await
        .map_err(|e| kernel("set up", e))?;
    nl.require_link(host_name)
        .await
        .map_err(|e| kernel("read back", e))
}

/// Configures the pod side inside its namespace: `lo` up, addresses on
/// `ifname`, link up, routes (cluster CIDR and default via the gateway).
/// Returns the pod interface's MAC.
pub async fn configure_pod(
    netns: &Path,
    ifname: &str,
    addrs: &[PodAddress],
) -> Result<Option<String>, CniError> {
    let (ifname_owned, addrs_owned) = (ifname.to_string(), addrs.to_vec());
    host::netns::exec_in_netns(netns, move || async move {
        configure_pod_inside(&ifname_owned, &addrs_owned).await
    })
    .await
    .map_err(|e| CniError::kernel("enter pod network namespace", e))?
}

async fn configure_pod_inside(
    ifname: &str,
    addrs: &[PodAddress],
) -> Result<Option<String>, CniError> {
    let nl = Netlink::connect().map_err(|e| CniError::kernel("open netlink in pod", e))?;
    let kernel = |what: String, e| CniError::kernel(format!("{what} in pod"), e);
    nl.set_up("lo")
        .await
        .map_err(|e| kernel("set up lo".into(), e))?;
    if addrs.iter().any(|a| a.address.addr().is_ipv6()) {
        // No DAD inside the pod: the address is unique by IPAM, usable at once.
        sysctl(&format!("net/ipv6/conf/{ifname}/accept_dad"), "0")?;
    }
    for a in addrs {
        nl.add_address(ifname, a.address)
            .await
            .map_err(|e| kernel(format!("add {} to {ifname}", a.address), e))?;
    }
    nl.set_up(ifname)
        .await
        .map_err(|e| kernel(format!("set up {ifname}"), e))?;
    for route in addrs.iter().flat_map(pod_routes) {
        nl.add_route(&route)
            .await
            .map_err(|e| kernel(format!("add route {}", route.dst), e))?;
    }
    let link = nl
        .require_link(ifname)
        .await
        .map_err(|e| kernel(format!("read {ifname}"), e))?;
    Ok(link.mac)
}

/// Cluster CIDR and default route via the family's gateway.
pub fn pod_routes(a: &PodAddress) -> Vec<RouteSpec> {
    let default = match a.gateway {
        IpAddr::V4(_) => IpNet::V4(Ipv4Net::default()),
        IpAddr::V6(_) => IpNet::V6(Ipv6Net::default()),
    };
    a.cluster
        .into_iter()
        .chain(Some(default))
        .map(|dst| RouteSpec {
            dst,
            gateway: Some(a.gateway),
            dev: None,
        })
        .collect()
}

/// Deletes `ifname` inside the pod namespace if both exist (DEL, best effort).
pub async fn delete_pod_link(netns: PathBuf, ifname: &str) -> Result<bool, CniError> {
    if !netns.exists() {
        return Ok(false);
    }
    let name = ifname.to_string();
    host::netns::exec_in_netns(&netns, move || async move {
        host::link::delete_link(&name).await
    })
    .await
    .map_err(|e| CniError::kernel("enter pod network namespace", e))?
    .map_err(|e| CniError::kernel(format!("delete {ifname} in pod"), e))
}

/// Writes a sysctl of the current namespace (idempotent).
pub fn sysctl(key: &str, value: &str) -> Result<(), CniError> {
    host::sysctl::ensure(key, value)
        .map(drop)
        .map_err(|e| CniError::kernel(format!("set sysctl {key}={value}"), e))
}
