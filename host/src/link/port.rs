//! Changing link state: up, controller, namespace, bridge-port flags.

use std::os::fd::{AsRawFd, BorrowedFd};

use rtnetlink::{LinkBridgePort, LinkUnspec};

use super::{LinkError, Netlink};

impl Netlink {
    /// Sets link `name` administratively up.
    pub async fn set_up(&self, name: &str) -> Result<(), LinkError> {
        let link = self.require_link(name).await?;
        let msg = LinkUnspec::new_with_index(link.index).up().build();
        self.handle
            .link()
            .set(msg)
            .execute()
            .await
            .map_err(|e| LinkError::request("set up link", name, e))
    }

    /// Attaches link `name` to the bridge `master`.
    pub async fn set_master(&self, name: &str, master: &str) -> Result<(), LinkError> {
        let link = self.require_link(name).await?;
        let bridge = self.require_link(master).await?;
        let msg = LinkUnspec::new_with_index(link.index)
            .controller(bridge.index)
            .build();
        self.handle
            .link()
            .set(msg)
            .execute()
            .await
            .map_err(|e| LinkError::request("attach link", format!("{name} to {master}"), e))
    }

    /// Sets hairpin mode (IFLA_BRPORT_MODE) on bridge port `name`, so a pod can
    /// reach itself through a hostPort/Service address. Sent as bridge_slave
    /// data over netlink rather than through /sys, which shows the namespace
    /// that mounted /sys, not ours.
    pub async fn set_hairpin(&self, name: &str, on: bool) -> Result<(), LinkError> {
        let link = self.require_link(name).await?;
        let msg = LinkBridgePort::new(link.index).hairpin(on).build();
        self.handle
            .link()
            .set_port(msg)
            .execute()
            .await
            .map_err(|e| LinkError::request("set hairpin on bridge port", name, e))
    }

    /// Moves link `name` into the namespace referred to by `netns`.
    pub async fn move_to_netns(&self, name: &str, netns: BorrowedFd<'_>) -> Result<(), LinkError> {
        let link = self.require_link(name).await?;
        let msg = LinkUnspec::new_with_index(link.index)
            .setns_by_fd(netns.as_raw_fd())
            .build();
        self.handle
            .link()
            .set(msg)
            .execute()
            .await
            .map_err(|e| LinkError::request("move link to another netns", name, e))
    }
}
