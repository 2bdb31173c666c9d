//! Creating bridges and veth pairs.

use std::os::fd::{AsRawFd, BorrowedFd};

use netlink_packet_route::link::{InfoData, InfoKind, InfoVeth};
use rtnetlink::{LinkBridge, LinkMessageBuilder, LinkUnspec};

use super::{LinkError, LinkInfo, Netlink};

/// A veth pair to create in the current namespace.
#[derive(Debug)]
pub struct VethSpec<'a> {
    /// Name of the end that stays in the current namespace.
    pub host_name: &'a str,
    /// Name of the other end.
    pub peer_name: &'a str,
    /// MTU of both ends.
    pub mtu: u32,
    /// If set, the peer is created directly inside this namespace, so its
    /// name never has to be free in the current one (e.g. `eth0`).
    pub peer_netns: Option<BorrowedFd<'a>>,
}

impl Netlink {
    /// Ensures bridge `name` exists and is up. A new bridge gets `mtu`; an
    /// existing one keeps its MTU (as the CNI bridge plugin does). Errors if a
    /// link of another kind holds the name.
    pub async fn ensure_bridge(&self, name: &str, mtu: u32) -> Result<LinkInfo, LinkError> {
        if let Some(link) = self.link_by_name(name).await? {
            return self.reuse_bridge(link).await;
        }
        let msg = LinkBridge::new(name).mtu(mtu).up().build();
        match self.handle.link().add(msg).execute().await {
            Ok(()) => {}
            // Another plugin invocation created it between our lookup and add.
            Err(e) if is_exists(&e) => {}
            Err(e) => return Err(LinkError::request("create bridge", name, e)),
        }
        let link = self.require_link(name).await?;
        self.reuse_bridge(link).await
    }

    async fn reuse_bridge(&self, link: LinkInfo) -> Result<LinkInfo, LinkError> {
        if link.kind.as_deref() != Some("bridge") {
            return Err(LinkError::WrongKind {
                name: link.name,
                expected: "bridge",
                found: link.kind.unwrap_or_else(|| "link without kind".into()),
            });
        }
        if !link.up {
            self.set_up(&link.name).await?;
        }
        Ok(link)
    }

    /// Creates a veth pair (fails if `host_name` exists).
    pub async fn create_veth(&self, spec: &VethSpec<'_>) -> Result<LinkInfo, LinkError> {
        let mut peer = LinkUnspec::new_with_name(spec.peer_name).mtu(spec.mtu);
        if let Some(fd) = spec.peer_netns {
            peer = peer.setns_by_fd(fd.as_raw_fd());
        }
        let msg = LinkMessageBuilder::<LinkUnspec>::new_with_info_kind(InfoKind::Veth)
            .name(spec.host_name)
            .mtu(spec.mtu)
            .set_info_data(InfoData::Veth(InfoVeth::Peer(peer.build())))
            .build();
        self.handle
            .link()
            .add(msg)
            .execute()
            .await
            .map_err(|e| LinkError::request("create veth", spec.host_name, e))?;
        self.require_link(spec.host_name).await
    }
}

fn is_exists(e: &rtnetlink::Error) -> bool {
    matches!(e, rtnetlink::Error::NetlinkError(msg) if msg.raw_code().abs() == libc::EEXIST)
}
