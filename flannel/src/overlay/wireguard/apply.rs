//! One pass over a family's WireGuard device: make sure it runs with our
//! key and port and the kernel side is right, then diff its peers.

use std::collections::BTreeMap;

use host::link::{LinkInfo, Netlink};

use super::device::{self, UserspaceDevice};
use super::engine::{Engine, WireguardMode};
use super::kernel::{self, Created, KernelDevice};
use super::key::WgKey;
use super::link::{self, LinkWant};
use super::socket::UapiSocket;
use super::uapi::{self, PeerConfig};
use super::{
    DeviceWant, FamilyDevice, OVERHEAD, Wireguard, WireguardError, delete_stray, device_name, get,
    listen_port,
};
use crate::overlay::OverlayError;
use crate::overlay::reconcile::Outcome;

impl Wireguard {
    /// Starts the device if it is not running (or its link was deleted or
    /// replaced behind our back), adopting a kernel device a previous run
    /// left, then sets key, port, MTU, address, up state and the cluster
    /// route where they differ.
    pub(in crate::overlay) async fn ensure_device(
        &mut self,
        netlink: &Netlink,
        want: &DeviceWant,
        outcome: &mut Outcome,
    ) -> Result<(), OverlayError> {
        let name = device_name(want.v6);
        let slot = usize::from(want.v6);
        let mut link = netlink.link_by_name(name).await?;
        let alive = match (&self.devices[slot], &link) {
            (Some(family), Some(l)) => family.index == l.index,
            _ => false,
        };
        if !alive {
            if self.devices[slot].take().is_some() {
                tracing::warn!(
                    component = "flannel",
                    device = name,
                    "WireGuard link gone or replaced; restarting the device"
                );
            }
            if let Some(adopted) = self.adopt(link.as_ref())? {
                self.devices[slot] = Some(adopted);
            } else {
                delete_stray(netlink, name, outcome).await?;
                let started = self.start(netlink, want.v6).await?;
                link = Some(started.1);
                self.devices[slot] = Some(started.0);
                outcome.devices_created.push(name.to_string());
            }
        }
        let link = link.ok_or_else(|| device_err(name, "link vanished".into()))?;
        self.ensure_interface(want.v6, outcome)?;
        let kernel = LinkWant {
            name,
            v6: want.v6,
            mtu: want.underlay_mtu.saturating_sub(OVERHEAD),
            own_subnet: want.own_subnet,
            cluster: want.cluster,
        };
        link::configure(netlink, &link, &kernel, outcome).await
    }

    /// A kernel WireGuard link already running under our name (a previous
    /// daemon's) is taken over as it is, sessions included.
    fn adopt(&self, link: Option<&LinkInfo>) -> Result<Option<FamilyDevice>, WireguardError> {
        let Some(link) = link.filter(|l| l.kind.as_deref() == Some("wireguard")) else {
            return Ok(None);
        };
        if self.mode == WireguardMode::Userspace {
            return Ok(None);
        }
        let device = KernelDevice::adopt(&link.name, link.index)?;
        tracing::info!(component = "flannel", device = %link.name, index = link.index, "adopted the running kernel WireGuard device");
        Ok(Some(FamilyDevice {
            index: device.index(),
            engine: Engine::Kernel(device),
            programmed: BTreeMap::new(),
            _socket: None,
        }))
    }

    /// Creates the device in this thread's namespace: in the kernel when
    /// the mode and the kernel allow, in user space otherwise.
    async fn start(
        &mut self,
        netlink: &Netlink,
        v6: bool,
    ) -> Result<(FamilyDevice, LinkInfo), OverlayError> {
        let name = device_name(v6);
        let engine = match self.start_kernel(netlink, name).await? {
            Some(device) => Engine::Kernel(device),
            None => {
                device::wait_port_free(listen_port(v6));
                Engine::Userspace(UserspaceDevice::create(name)?)
            }
        };
        let link = netlink
            .link_by_name(name)
            .await?
            .ok_or_else(|| device_err(name, "link missing after creation".into()))?;
        let socket = match &engine {
            Engine::Userspace(device) => self.serve_uapi(name, device),
            Engine::Kernel(_) => None,
        };
        tracing::info!(
            component = "flannel",
            device = name,
            index = link.index,
            engine = engine.kind(),
            "started WireGuard device"
        );
        let family = FamilyDevice {
            engine,
            index: link.index,
            programmed: BTreeMap::new(),
            _socket: socket,
        };
        Ok((family, link))
    }

    /// The kernel device, or `None` when user space must run it: the mode
    /// says so, or (`auto`) the kernel has no WireGuard, found out once.
    async fn start_kernel(
        &mut self,
        netlink: &Netlink,
        name: &str,
    ) -> Result<Option<KernelDevice>, WireguardError> {
        if self.mode == WireguardMode::Userspace || self.kernel_missing.is_some() {
            return Ok(None);
        }
        match kernel::create(netlink, name).await? {
            Created::Device(device) => Ok(Some(device)),
            Created::Unsupported(reason) if self.mode == WireguardMode::Kernel => {
                Err(WireguardError::KernelMissing { reason })
            }
            Created::Unsupported(reason) => {
                tracing::info!(component = "flannel", reason = %reason, "no WireGuard in this kernel; running WireGuard in user space");
                self.kernel_missing = Some(reason);
                Ok(None)
            }
        }
    }

    /// The UAPI socket for operators' `wg` (a kernel device needs none).
    fn serve_uapi(&self, name: &str, device: &UserspaceDevice) -> Option<UapiSocket> {
        let dir = self.socket_dir.as_ref()?;
        UapiSocket::serve(dir, name, device.control().clone())
            .inspect_err(|e| tracing::warn!(component = "flannel", error = %e, "no UAPI socket for wg tools"))
            .ok()
    }

    /// Private key and listen port, set when the device reports others.
    fn ensure_interface(&mut self, v6: bool, outcome: &mut Outcome) -> Result<(), OverlayError> {
        let public = self.public_key()?;
        let port = listen_port(v6);
        let Some(family) = self.devices[usize::from(v6)].as_ref() else {
            return Ok(());
        };
        let state = get(family)?;
        if state.public_key == Some(public) && state.listen_port == Some(port) {
            return Ok(());
        }
        let Some(key) = &self.key else {
            return Ok(());
        };
        family.engine.set_interface(key, port)?;
        outcome.counts.written += 1;
        Ok(())
    }

    /// Makes the family's peers exactly `desired`: removes peers that are
    /// gone or changed (a node's old key after a key change), then adds the
    /// missing ones. Peers already right are not touched.
    pub(in crate::overlay) fn apply_peers(
        &mut self,
        v6: bool,
        desired: BTreeMap<WgKey, PeerConfig>,
        outcome: &mut Outcome,
    ) -> Result<(), OverlayError> {
        let Some(family) = self.devices[usize::from(v6)].as_mut() else {
            return Ok(());
        };
        let device = get(family)?.peers;
        let diff = uapi::diff_peers(&desired, &device, &family.programmed);
        if !diff.remove.is_empty() {
            family.engine.remove_peers(&diff.remove)?;
            outcome.counts.removed += diff.remove.len();
        }
        if !diff.add.is_empty() {
            family.engine.add_peers(&diff.add)?;
            outcome.counts.written += diff.add.len();
        }
        family.programmed = desired;
        Ok(())
    }

    /// Stops the device of a family the cluster does not use (or every
    /// family when the backend is not WireGuard) and deletes stray links.
    pub(in crate::overlay) async fn remove_family(
        &mut self,
        netlink: &Netlink,
        v6: bool,
        outcome: &mut Outcome,
    ) -> Result<(), OverlayError> {
        let name = device_name(v6);
        if let Some(family) = self.devices[usize::from(v6)].take() {
            tracing::info!(
                component = "flannel",
                device = name,
                "stopping WireGuard device"
            );
            // A user-space device goes with its threads; a kernel one is
            // deleted with the stray links below.
            if matches!(family.engine, Engine::Userspace(_)) {
                drop(family);
                wait_gone(netlink, name).await?;
                outcome.devices_removed.push(name.to_string());
            }
        }
        delete_stray(netlink, name, outcome).await
    }
}

/// boringtun's threads close the TUN shortly after the handle is dropped;
/// wait for it, so a stray-link check right after does not delete it twice.
async fn wait_gone(netlink: &Netlink, name: &str) -> Result<(), OverlayError> {
    for _ in 0..100 {
        if netlink.link_by_name(name).await?.is_none() {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    Ok(())
}

fn device_err(name: &str, reason: String) -> WireguardError {
    WireguardError::Device {
        device: name.to_string(),
        reason,
    }
}
