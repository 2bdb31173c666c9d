//! What runs a family's WireGuard device: the kernel module, or boringtun
//! in user space. Both are driven with the same four operations, so the
//! peer diff ([`super::uapi::diff_peers`]) is one code path for both.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};

use super::WireguardError;
use super::device::UserspaceDevice;
use super::kernel::KernelDevice;
use super::key::{PrivateKey, WgKey};
use super::uapi::{self, DeviceState, PeerConfig};

/// UDP discard (RFC 863): whatever answers there, nothing is served.
const DISCARD_PORT: u16 = 9;

/// `--flannel-wireguard-mode`: which WireGuard implementation to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WireguardMode {
    /// The kernel module when the kernel has it, user space otherwise.
    #[default]
    Auto,
    /// The kernel module only; without it the backend reports an error.
    Kernel,
    /// boringtun over TUN even when the kernel has the module.
    Userspace,
}

impl std::str::FromStr for WireguardMode {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "auto" => Ok(WireguardMode::Auto),
            "kernel" => Ok(WireguardMode::Kernel),
            "userspace" => Ok(WireguardMode::Userspace),
            other => Err(format!(
                "unknown WireGuard mode {other:?} (auto, kernel or userspace)"
            )),
        }
    }
}

/// A running device of either kind.
#[derive(Debug)]
pub(super) enum Engine {
    Kernel(KernelDevice),
    Userspace(UserspaceDevice),
}

impl Engine {
    /// `kernel` or `userspace`, for logs and tests.
    pub fn kind(&self) -> &'static str {
        match self {
            Engine::Kernel(_) => "kernel",
            Engine::Userspace(_) => "userspace",
        }
    }

    pub fn get(&self) -> Result<DeviceState, WireguardError> {
        match self {
            Engine::Kernel(device) => device.get(),
            Engine::Userspace(device) => {
                let answer = device.control().exchange(uapi::GET)?;
                uapi::parse_get(&answer).map_err(|reason| uapi_err(device, reason))
            }
        }
    }

    pub fn set_interface(&self, key: &PrivateKey, port: u16) -> Result<(), WireguardError> {
        match self {
            Engine::Kernel(device) => device.set_interface(key, port),
            Engine::Userspace(device) => set(device, &uapi::render_interface(key, port)),
        }
    }

    pub fn remove_peers(&self, keys: &[WgKey]) -> Result<(), WireguardError> {
        match self {
            Engine::Kernel(device) => device.remove_peers(keys),
            Engine::Userspace(device) => set(device, &uapi::render_remove(keys)),
        }
    }

    pub fn add_peers(&self, peers: &[PeerConfig]) -> Result<(), WireguardError> {
        match self {
            Engine::Kernel(device) => device.add_peers(peers),
            Engine::Userspace(device) => {
                set(device, &uapi::render_add(peers))?;
                kick_handshakes(peers);
                Ok(())
            }
        }
    }
}

/// The kernel starts a handshake as soon as a peer gets a persistent
/// keepalive; boringtun waits for the first keepalive (25 s). Until then a
/// peer still holding a session with our previous device (a daemon
/// restart) keeps sending into it, unanswered, until its own timers give
/// up (~15 s). One empty datagram to the discard port of each added
/// peer's subnet enters the device and makes it handshake at once.
fn kick_handshakes(peers: &[PeerConfig]) {
    for peer in peers.iter().filter(|p| p.keepalive > 0) {
        let Some(net) = peer.allowed_ips.first() else {
            continue;
        };
        let target = SocketAddr::new(net.network(), DISCARD_PORT);
        let unspecified: SocketAddr = match target {
            SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
            SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
        };
        let sent = UdpSocket::bind(unspecified).and_then(|s| s.send_to(&[], target));
        if let Err(error) = sent {
            tracing::debug!(component = "flannel", peer = %peer.public_key, %target, %error, "cannot kick the WireGuard handshake; the keepalive will start it");
        }
    }
}

fn set(device: &UserspaceDevice, request: &str) -> Result<(), WireguardError> {
    let answer = device.control().exchange(request)?;
    uapi::check_errno(&answer).map_err(|reason| uapi_err(device, reason))
}

fn uapi_err(device: &UserspaceDevice, reason: String) -> WireguardError {
    WireguardError::Uapi {
        device: format!("{device:?}"),
        reason,
    }
}
