//! The flannel-compatible overlay: node annotations, the pure peer plan,
//! and diff-based apply of the VXLAN, host-gw or WireGuard backend plus
//! masquerade.
//!
//! Data flow (DESIGN.md): the daemon hands [`Overlay::reconcile`] its own
//! node facts and every Node object; [`plan::plan`] turns them into peers
//! (pure); [`state`] turns peers into the exact kernel objects wanted
//! (pure); the backend modules read what the kernel has on our devices /
//! with our route protocol and change only the difference.
//!
//! Everything acts on the network namespace of the calling thread.

pub mod annotations;
mod error;
mod hostgw;
pub mod masq;
pub mod plan;
mod reconcile;
pub mod state;
mod teardown;
mod underlay;
pub mod vtep_mac;
mod vxlan;
pub mod wireguard;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use ipnet::IpNet;

pub use error::OverlayError;
pub use reconcile::{ChangeCounts, Overlay, ReconcileReport};
pub use teardown::{TeardownReport, teardown_state};

/// VNI of flannel's VXLAN devices (K3s never changes it).
pub const VXLAN_VNI: u32 = 1;
/// UDP port of flannel's VXLAN (the Linux default flannel relies on).
pub const VXLAN_PORT: u16 = 8472;
/// Bytes VXLAN adds to each packet (flannel.md §1.5).
pub const VXLAN_OVERHEAD: u32 = 50;
/// Bytes VXLAN adds over an IPv6 underlay. flannel publishes 50 for both
/// (FLANNEL_MTU, and so do we), but the kernel refuses a `flannel-v6.1`
/// MTU above the underlay's minus 70 (it clamps it at creation, then
/// rejects raising it), so that device gets underlay - 70; oversized IPv6
/// pod packets get a Packet Too Big from the node, as under flannel.
pub const VXLAN_OVERHEAD_V6: u32 = 70;

/// The overlay backends implemented here (`--flannel-backend`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    Vxlan,
    HostGw,
    /// `wireguard-native`: user-space WireGuard ([`wireguard`]).
    Wireguard,
}

impl Backend {
    /// The `backend-type` annotation value flannel writes for this backend.
    pub fn annotation_type(self) -> &'static str {
        match self {
            Backend::Vxlan => "vxlan",
            Backend::HostGw => "host-gw",
            Backend::Wireguard => "wireguard",
        }
    }
}

/// Static configuration of the overlay (daemon flags).
#[derive(Debug, Clone)]
pub struct OverlayConfig {
    pub backend: Backend,
    /// --cluster-cidr, one entry per family (IPv4 and/or IPv6).
    pub cluster_cidrs: Vec<IpNet>,
    /// --data-dir; the VTEP MAC lives in `<data-dir>/flannel/`.
    pub data_dir: PathBuf,
    /// --flannel-ipv6-masq: masquerade IPv6 pod traffic leaving the cluster.
    pub ipv6_masq: bool,
    /// --flannel-external-ip: addresses to publish in
    /// `public-ip-overwrite` / `public-ipv6-overwrite` (K3s writes them from
    /// --node-external-ip). Empty: leave whatever the Node has.
    pub public_ip_overwrites: Vec<IpAddr>,
}

/// What this node is, as the daemon knows it for one reconcile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalNode {
    /// metadata.name of our Node.
    pub name: String,
    /// Our spec.podCIDRs (at most one per family), parsed.
    pub pod_cidrs: Vec<IpNet>,
    /// Our IPv4 underlay address (--node-ip / InternalIP); must be on an
    /// interface of this namespace: it is the VXLAN source and the
    /// interface holding it carries the overlay.
    pub public_ipv4: Option<Ipv4Addr>,
    /// Our IPv6 underlay address, for dual-stack / IPv6 clusters.
    pub public_ipv6: Option<Ipv6Addr>,
}

/// Which address families the cluster uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Families {
    pub v4: bool,
    pub v6: bool,
}

impl Families {
    /// The families of the cluster CIDRs.
    pub fn of(cluster_cidrs: &[IpNet]) -> Families {
        Families {
            v4: cluster_cidrs.iter().any(|n| matches!(n, IpNet::V4(_))),
            v6: cluster_cidrs.iter().any(|n| matches!(n, IpNet::V6(_))),
        }
    }

    /// The enabled families as `v6` flags, IPv4 first.
    pub fn iter(self) -> impl Iterator<Item = bool> {
        [(self.v4, false), (self.v6, true)]
            .into_iter()
            .filter(|(on, _)| *on)
            .map(|(_, v6)| v6)
    }
}
