//! The WireGuard backend (`--flannel-backend=wireguard-native`), flannel's
//! wire format: device `flannel-wg` (UDP 51820) and `flannel-wg-v6` (UDP
//! 51821), one peer per remote node with its pod subnet as allowed IPs and
//! `public-ip:Port` as endpoint, persistent keepalive 25 s, the public key
//! in `backend-data`.
//!
//! Two engines run the device ([`engine`], `--flannel-wireguard-mode`):
//! the kernel module ([`kernel`], generic netlink) when the kernel has it,
//! and boringtun over TUN in user space ([`device`], the UAPI text
//! protocol) when it does not, as on this project's machines; `auto`
//! tries the kernel first. A kernel device outlives the daemon and is
//! adopted on restart with its sessions (flannel deletes and re-creates
//! it); a user-space device lives inside the daemon, so a restart
//! re-creates it, loses the packets of that moment, and handshakes with
//! every peer at once (see `engine::kick_handshakes`).
//!
//! Peers are programmed as a diff against what the device reports, so a
//! node's key change removes its old peer (k3s#5216) and a deleted node's
//! peer goes, while other peers keep their sessions.

mod apply;
pub mod data;
mod device;
mod engine;
mod kernel;
pub mod key;
mod link;
mod socket;
pub mod uapi;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use host::link::Netlink;
use ipnet::IpNet;

use self::engine::Engine;
use self::key::{PrivateKey, WgKey};
use self::socket::UapiSocket;
use self::uapi::PeerConfig;
use super::OverlayError;
use super::plan::Peer;
use super::reconcile::Outcome;

pub use data::WireguardData;
pub use engine::WireguardMode;

/// Device of the IPv4 overlay.
pub const DEVICE_V4: &str = "flannel-wg";
/// Device of the IPv6 overlay.
pub const DEVICE_V6: &str = "flannel-wg-v6";
/// Persistent keepalive K3s configures, seconds.
pub const KEEPALIVE: u16 = 25;
/// Bytes WireGuard adds to each packet (flannel.md §1.5).
pub const OVERHEAD: u32 = 80;
/// Where WireGuard tools look for user-space devices' UAPI sockets.
pub const DEFAULT_SOCKET_DIR: &str = "/var/run/wireguard";

/// The device name of a family.
pub fn device_name(v6: bool) -> &'static str {
    if v6 { DEVICE_V6 } else { DEVICE_V4 }
}

/// The listen port of a family's device.
pub fn listen_port(v6: bool) -> u16 {
    if v6 { 51821 } else { 51820 }
}

/// Failures of the WireGuard backend; each names its file or device.
#[derive(Debug, thiserror::Error)]
pub enum WireguardError {
    #[error("cannot {op} the WireGuard key file {path}: {source}")]
    KeyIo {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("WireGuard key file {path}: {reason}; delete it to get a new key")]
    KeyInvalid { path: PathBuf, reason: String },
    #[error("cannot start the user-space WireGuard device {device}: {reason}")]
    Device { device: String, reason: String },
    #[error("kernel WireGuard device {device}: {reason}")]
    Kernel { device: String, reason: String },
    #[error("--flannel-wireguard-mode=kernel, but this kernel cannot run WireGuard ({reason})")]
    KernelMissing { reason: String },
    #[error("WireGuard device {device} UAPI: {reason}")]
    Uapi { device: String, reason: String },
    #[error("WireGuard UAPI socket {path}: {reason}")]
    Socket { path: PathBuf, reason: String },
}

/// The peers one family's device must hold: the peers' subnets of that
/// family, keyed by their public keys. `Port` 0/missing means our port.
pub fn desired_peers(peers: &[Peer], v6: bool) -> BTreeMap<WgKey, PeerConfig> {
    peers
        .iter()
        .flat_map(|p| &p.families)
        .filter(|f| f.subnet.addr().is_ipv6() == v6)
        .filter_map(|f| {
            let data = f.wireguard?;
            let port = data.port.unwrap_or(listen_port(v6));
            let peer = PeerConfig {
                public_key: data.public_key,
                endpoint: Some(SocketAddr::new(f.public_ip, port)),
                allowed_ips: [f.subnet].into(),
                keepalive: KEEPALIVE,
            };
            Some((data.public_key, peer))
        })
        .collect()
}

/// A family's running device and what we programmed on it.
struct FamilyDevice {
    engine: Engine,
    index: u32,
    programmed: BTreeMap<WgKey, PeerConfig>,
    _socket: Option<UapiSocket>,
}

/// One family's device as [`Wireguard::ensure_device`] must leave it.
pub(super) struct DeviceWant {
    pub v6: bool,
    /// Underlay MTU; the device gets it minus [`OVERHEAD`].
    pub underlay_mtu: u32,
    pub own_subnet: IpNet,
    pub cluster: IpNet,
}

/// The WireGuard state of the overlay: our key and the running devices.
pub struct Wireguard {
    key_file: PathBuf,
    key: Option<PrivateKey>,
    socket_dir: Option<PathBuf>,
    mode: WireguardMode,
    /// Why the kernel could not make a device, once `auto` found out; later
    /// starts go straight to user space.
    kernel_missing: Option<String>,
    devices: [Option<FamilyDevice>; 2],
}

impl std::fmt::Debug for Wireguard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wireguard")
            .field("key", &self.key)
            .field("socket_dir", &self.socket_dir)
            .field("mode", &self.mode)
            .field(
                "devices",
                &self
                    .devices
                    .each_ref()
                    .map(|d| d.as_ref().map(|d| d.engine.kind())),
            )
            .finish()
    }
}

impl Wireguard {
    /// Keeps its key under `data_dir`; serves UAPI sockets in `socket_dir`
    /// (`None`: only the daemon configures the devices).
    pub fn new(data_dir: &std::path::Path, socket_dir: Option<PathBuf>) -> Wireguard {
        Wireguard {
            key_file: key::path(data_dir),
            key: None,
            socket_dir,
            mode: WireguardMode::Auto,
            kernel_missing: None,
            devices: [None, None],
        }
    }

    /// The same state running devices with `mode`'s engine.
    pub fn with_mode(mut self, mode: WireguardMode) -> Wireguard {
        self.mode = mode;
        self
    }

    /// Our public key, loading or creating the private key on first use.
    pub fn public_key(&mut self) -> Result<WgKey, WireguardError> {
        if let Some(key) = &self.key {
            return Ok(key.public_key());
        }
        let (key, created) = key::load_or_create(&self.key_file)?;
        let public = key.public_key();
        tracing::info!(component = "flannel", file = %self.key_file.display(), public_key = %public, created, "WireGuard key");
        self.key = Some(key);
        Ok(public)
    }

    /// Our public key if the private key is loaded.
    pub fn loaded_public_key(&self) -> Option<WgKey> {
        self.key.as_ref().map(PrivateKey::public_key)
    }

    /// The engine new devices get.
    pub fn mode(&self) -> WireguardMode {
        self.mode
    }

    /// Whether a device of that family is running.
    pub fn is_running(&self, v6: bool) -> bool {
        self.devices[usize::from(v6)].is_some()
    }

    /// What runs that family's device: `kernel` or `userspace`.
    pub fn engine_kind(&self, v6: bool) -> Option<&'static str> {
        let family = self.devices[usize::from(v6)].as_ref()?;
        Some(family.engine.kind())
    }

    /// The device state as `get=1` reports it.
    pub fn device_state(&self, v6: bool) -> Option<Result<uapi::DeviceState, WireguardError>> {
        let family = self.devices[usize::from(v6)].as_ref()?;
        Some(get(family))
    }
}

fn get(family: &FamilyDevice) -> Result<uapi::DeviceState, WireguardError> {
    family.engine.get()
}

/// Deletes a `flannel-wg*` link we do not run (K3s's kernel device, a
/// previous run's TUN, anything of the WireGuard or TUN kind).
pub(super) async fn delete_stray(
    netlink: &Netlink,
    name: &str,
    outcome: &mut Outcome,
) -> Result<(), OverlayError> {
    let Some(link) = netlink.link_by_name(name).await? else {
        return Ok(());
    };
    let ours = matches!(link.kind.as_deref(), Some("wireguard" | "tun"));
    if !ours {
        tracing::warn!(component = "flannel", link = name, kind = ?link.kind, "not a WireGuard or TUN link; left alone");
        return Ok(());
    }
    if netlink.delete_link(name).await? {
        tracing::info!(
            component = "flannel",
            device = name,
            "removed WireGuard device"
        );
        outcome.devices_removed.push(name.to_string());
    }
    Ok(())
}

#[cfg(test)]
mod tests;
