//! What runs a family's WireGuard device: the kernel module, or boringtun
//! in user space. Both are driven with the same four operations, so the
//! peer diff ([`super::uapi::diff_peers`]) is one code path for both.

use super::WireguardError;
use super::device::UserspaceDevice;
use super::kernel::KernelDevice;
use super::key::{PrivateKey, WgKey};
use super::uapi::{self, DeviceState, PeerConfig};

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
            Engine::Userspace(device) => set(device, &uapi::render_add(peers)),
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
