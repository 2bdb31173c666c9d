//! One pass over a family's WireGuard device: make sure it runs with our
//! key and port and the kernel side is right, then diff its peers.

use std::collections::BTreeMap;

use host::link::{LinkInfo, Netlink};

use super::device::UserspaceDevice;
use super::key::WgKey;
use super::link::{self, LinkWant};
use super::socket::UapiSocket;
use super::uapi::{self, PeerConfig};
use super::{
    DeviceWant, FamilyDevice, OVERHEAD, Wireguard, WireguardError, delete_stray, device_name, get,
    listen_port, uapi_err,
};
use crate::overlay::OverlayError;
use crate::overlay::reconcile::Outcome;

impl Wireguard {
    /// Starts the device if it is not running (or its link was deleted or
    /// replaced behind our back), then sets key, port, MTU, address, up
    /// state and the cluster route where they differ.
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
            delete_stray(netlink, name, outcome).await?;
            let started = self.start(netlink, want.v6).await?;
            link = Some(started.1);
            self.devices[slot] = Some(started.0);
            outcome.devices_created.push(name.to_string());
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

    /// Creates the TUN device and its threads in this thread's namespace.
    async fn start(
        &mut self,
        netlink: &Netlink,
        v6: bool,
    ) -> Result<(FamilyDevice, LinkInfo), OverlayError> {
        let name = device_name(v6);
        let device = UserspaceDevice::create(name)?;
        let link = netlink
            .link_by_name(name)
            .await?
            .ok_or_else(|| device_err(name, "TUN link missing after creation".into()))?;
        let socket = self.socket_dir.as_ref().and_then(|dir| {
            UapiSocket::serve(dir, name, device.control().clone())
                .inspect_err(|e| tracing::warn!(component = "flannel", error = %e, "no UAPI socket for wg tools"))
                .ok()
        });
        tracing::info!(
            component = "flannel",
            device = name,
            index = link.index,
            "started user-space WireGuard device"
        );
        let family = FamilyDevice {
            device,
            index: link.index,
            programmed: BTreeMap::new(),
            _socket: socket,
        };
        Ok((family, link))
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
        set(family, &uapi::render_interface(key, port))?;
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
            set(family, &uapi::render_remove(&diff.remove))?;
            outcome.counts.removed += diff.remove.len();
        }
        if !diff.add.is_empty() {
            set(family, &uapi::render_add(&diff.add))?;
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
        if self.devices[usize::from(v6)].take().is_some() {
            tracing::info!(
                component = "flannel",
                device = name,
                "stopping WireGuard device"
            );
            wait_gone(netlink, name).await?;
            outcome.devices_removed.push(name.to_string());
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

fn set(family: &FamilyDevice, request: &str) -> Result<(), WireguardError> {
    let answer = family.device.control().exchange(request)?;
    uapi::check_errno(&answer).map_err(|reason| uapi_err(family, reason))
}

fn device_err(name: &str, reason: String) -> WireguardError {
    WireguardError::Device {
        device: name.to_string(),
        reason,
    }
}
