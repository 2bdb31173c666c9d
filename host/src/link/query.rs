//! Looking links up.

use futures::TryStreamExt;
use netlink_packet_route::link::{self as nl, LinkAttribute, LinkFlags, LinkMessage};

use super::{LinkError, Netlink};

/// What we need to know about an existing link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkInfo {
    pub index: u32,
    pub name: String,
    /// `IFLA_INFO_KIND` (`bridge`, `veth`, ...); `None` for kind-less links like `lo`.
    pub kind: Option<String>,
    /// Index of the controller (bridge) this link is attached to.
    pub master: Option<u32>,
    pub mtu: Option<u32>,
    /// Administratively up.
    pub up: bool,
    /// Hardware address as `aa:bb:cc:dd:ee:ff` (lower case), if the link has one.
    pub mac: Option<String>,
}

impl Netlink {
    /// Looks up link `name`; `None` if it does not exist.
    pub async fn link_by_name(&self, name: &str) -> Result<Option<LinkInfo>, LinkError> {
        let request = self.handle.link().get().match_name(name.to_string());
        match request.execute().try_next().await {
            Ok(Some(msg)) => Ok(Some(link_info(&msg))),
            Ok(None) => Ok(None),
            Err(e) if is_no_such_device(&e) => Ok(None),
            Err(e) => Err(LinkError::request("look up link", name, e)),
        }
    }

    /// Looks up link `name`; error if it does not exist.
    pub async fn require_link(&self, name: &str) -> Result<LinkInfo, LinkError> {
        self.link_by_name(name)
            .await?
            .ok_or_else(|| LinkError::NotFound {
                name: name.to_string(),
            })
    }

    /// Whether link `name` exists.
    pub async fn link_exists(&self, name: &str) -> Result<bool, LinkError> {
        Ok(self.link_by_name(name).await?.is_some())
    }

    /// Deletes link `name`; returns whether it existed. Deleting one end of a
    /// veth pair removes the peer too.
    pub async fn delete_link(&self, name: &str) -> Result<bool, LinkError> {
        let Some(link) = self.link_by_name(name).await? else {
            return Ok(false);
        };
        match self.handle.link().del(link.index).execute().await {
            Ok(()) => Ok(true),
            // Raced with another deleter (e.g. the peer's namespace went away).
            Err(e) if is_no_such_device(&e) => Ok(false),
            Err(e) => Err(LinkError::request("delete link", name, e)),
        }
    }

    /// All links of the namespace.
    pub async fn links(&self) -> Result<Vec<LinkInfo>, LinkError> {
        let stream = self.handle.link().get().execute();
        let messages: Vec<LinkMessage> = stream
            .try_collect()
            .await
            .map_err(|e| LinkError::request("list", "links", e))?;
        Ok(messages.iter().map(link_info).collect())
    }
}

fn link_info(msg: &LinkMessage) -> LinkInfo {
    let mut info = LinkInfo {
        index: msg.header.index,
        name: String::new(),
        kind: None,
        master: None,
        mtu: None,
        up: msg.header.flags.contains(LinkFlags::Up),
        mac: None,
    };
    for attr in &msg.attributes {
        match attr {
            LinkAttribute::IfName(name) => info.name = name.clone(),
            LinkAttribute::Controller(index) => info.master = Some(*index),
            LinkAttribute::Mtu(mtu) => info.mtu = Some(*mtu),
            LinkAttribute::LinkInfo(infos) => info.kind = kind_of(infos),
            LinkAttribute::Address(bytes) if !bytes.is_empty() => {
                info.mac = Some(format_mac(bytes))
            }
            _ => {}
        }
    }
    info
}

fn kind_of(infos: &[nl::LinkInfo]) -> Option<String> {
    infos.iter().find_map(|i| match i {
        nl::LinkInfo::Kind(kind) => Some(kind.to_string()),
        _ => None,
    })
}

fn format_mac(bytes: &[u8]) -> String {
    let parts: Vec<String> = bytes.iter().map(|b| format!("{b:02x}")).collect();
    parts.join(":")
}

/// ENODEV is how the kernel says "no such link" to RTM_GETLINK/RTM_DELLINK.
pub(super) fn is_no_such_device(e: &rtnetlink::Error) -> bool {
    matches!(e, rtnetlink::Error::NetlinkError(msg) if msg.raw_code().abs() == libc::ENODEV)
}
