//! Why a reconcile or teardown failed; each variant names its subject.

use std::net::IpAddr;
use std::path::PathBuf;

use host::link::LinkError;
use host::nft::NftError;

/// Errors of [`super::Overlay::reconcile`] and [`super::teardown_state`].
/// Bad *peer* data is never an error (it is a skipped node); these are
/// problems with this node or its kernel.
#[derive(Debug, thiserror::Error)]
pub enum OverlayError {
    /// An rtnetlink request failed.
    #[error("overlay: {0}")]
    Netlink(#[from] LinkError),
    /// The masquerade/forward nftables transaction failed.
    #[error("overlay masquerade rules: {0}")]
    Nft(#[from] NftError),
    /// Our own pod CIDRs do not fit the cluster configuration.
    #[error("Node {node} spec.podCIDRs: {reason}")]
    LocalPodCidr { node: String, reason: String },
    /// A family the cluster uses has no underlay address for this node.
    #[error(
        "Node {node}: the cluster has {family} but this node has no {family} address (--node-ip)"
    )]
    MissingPublicIp { node: String, family: &'static str },
    /// No interface of this namespace holds the node's address.
    #[error(
        "no interface holds the node address {ip}; the overlay needs it as tunnel endpoint (check --node-ip)"
    )]
    NoUnderlay { ip: IpAddr },
    /// The underlay interface reports no usable MTU.
    #[error("underlay interface {name} reports no MTU")]
    NoMtu { name: String },
    /// Reading or writing the persisted VTEP MAC failed.
    #[error("cannot {op} the VTEP MAC file {path}: {source}")]
    VtepMacIo {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The persisted VTEP MAC file holds something else than a MAC.
    #[error(
        "VTEP MAC file {path} holds {content:?}, not a unicast MAC; delete it to get a new MAC"
    )]
    VtepMacInvalid { path: PathBuf, content: String },
    /// The WireGuard backend failed (key file, device or its UAPI).
    #[error(transparent)]
    Wireguard(#[from] super::wireguard::WireguardError),
    /// Several steps of a teardown failed (teardown keeps going).
    #[error("overlay teardown: {}", .0.join("; "))]
    Teardown(Vec<String>),
}
