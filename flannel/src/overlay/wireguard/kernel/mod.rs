//! The kernel's WireGuard: a `wireguard` link made over rtnetlink and
//! configured over generic netlink ([`genl`], [`convert`]).
//!
//! Unlike the user-space device, it outlives the daemon: a restart adopts
//! the running device, its peers and their sessions, and only diffs them
//! (flannel deletes and re-creates its device on start, dropping every
//! session). A kernel without the module refuses the link kind with
//! EOPNOTSUPP; [`create`] reports that as [`Created::Unsupported`] so the
//! caller can fall back to user space.

mod convert;
mod genl;

use host::link::Netlink;
use netlink_packet_wireguard::WireguardMessage;
use rtnetlink::LinkWireguard;

use super::WireguardError;
use super::key::{PrivateKey, WgKey};
use super::uapi::{DeviceState, PeerConfig};
use genl::{Genl, GenlError};

/// What creating a kernel device gave.
pub(super) enum Created {
    Device(KernelDevice),
    /// The kernel cannot make WireGuard links; the reason, for the log.
    Unsupported(String),
}

/// A kernel WireGuard link and the socket that configures it.
pub(super) struct KernelDevice {
    name: String,
    index: u32,
    genl: Genl,
}

/// Creates link `name` of kind `wireguard` in this thread's namespace.
pub(super) async fn create(netlink: &Netlink, name: &str) -> Result<Created, WireguardError> {
    let request = netlink
        .handle()
        .link()
        .add(LinkWireguard::new(name).build());
    if let Err(error) = request.execute().await {
        if is_unsupported(&error) {
            return Ok(Created::Unsupported(error.to_string()));
        }
        return Err(kernel_err(name, format!("create the link: {error}")));
    }
    let link = netlink
        .link_by_name(name)
        .await
        .map_err(|e| kernel_err(name, e.to_string()))?
        .ok_or_else(|| kernel_err(name, "the link is missing right after creation".into()))?;
    match Genl::open() {
        Ok(genl) => Ok(Created::Device(KernelDevice {
            name: name.to_string(),
            index: link.index,
            genl,
        })),
        Err(e) => {
            // A link we cannot configure is useless; user space needs the name.
            let _ = netlink.delete_link(name).await;
            match e {
                GenlError::NoFamily => Ok(Created::Unsupported(e.to_string())),
                e => Err(kernel_err(name, e.to_string())),
            }
        }
    }
}

/// "Unknown device type": no `wireguard` link kind in this kernel.
fn is_unsupported(error: &rtnetlink::Error) -> bool {
    matches!(error, rtnetlink::Error::NetlinkError(m) if m.raw_code() == -libc::EOPNOTSUPP)
}

fn kernel_err(name: &str, reason: String) -> WireguardError {
    WireguardError::Kernel {
        device: name.to_string(),
        reason,
    }
}

impl KernelDevice {
    /// Takes over a `wireguard` link found running (a previous daemon's).
    pub fn adopt(name: &str, index: u32) -> Result<KernelDevice, WireguardError> {
        let genl = Genl::open().map_err(|e| kernel_err(name, e.to_string()))?;
        Ok(KernelDevice {
            name: name.to_string(),
            index,
            genl,
        })
    }

    pub fn index(&self) -> u32 {
        self.index
    }

    pub fn get(&self) -> Result<DeviceState, WireguardError> {
        let answers = self
            .genl
            .dump(convert::get_request(self.index), "read the device")
            .map_err(|e| self.err(e))?;
        convert::device_state(&answers).map_err(|reason| kernel_err(&self.name, reason))
    }

    pub fn set_interface(&self, key: &PrivateKey, port: u16) -> Result<(), WireguardError> {
        let message = convert::set_interface(self.index, key, port);
        self.send([message], "set key and port")
    }

    pub fn remove_peers(&self, keys: &[WgKey]) -> Result<(), WireguardError> {
        self.send(convert::remove_peers(self.index, keys), "remove peers")
    }

    pub fn add_peers(&self, peers: &[PeerConfig]) -> Result<(), WireguardError> {
        self.send(convert::add_peers(self.index, peers), "add peers")
    }

    /// Each message in turn, each acknowledged before the next.
    fn send(
        &self,
        messages: impl IntoIterator<Item = WireguardMessage>,
        op: &'static str,
    ) -> Result<(), WireguardError> {
        for message in messages {
            self.genl.set(message, op).map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    fn err(&self, error: GenlError) -> WireguardError {
        kernel_err(&self.name, error.to_string())
    }
}

impl std::fmt::Debug for KernelDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KernelDevice({}, index {})", self.name, self.index)
    }
}

#[cfg(test)]
mod tests;
