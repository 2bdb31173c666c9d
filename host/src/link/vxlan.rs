//! VXLAN devices: creation with exactly the attributes flannel sends, and
//! reading back what an existing device was created with.

use std::net::IpAddr;

use futures::TryStreamExt;
use netlink_packet_route::link::{InfoData, InfoVxlan, LinkAttribute, LinkInfo as NlLinkInfo};
use rtnetlink::{LinkUnspec, LinkVxlan};

use super::{LinkError, LinkInfo, Netlink, mac::MacAddr};

/// A VXLAN device to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VxlanSpec {
    pub name: String,
    pub vni: u32,
    /// UDP destination port (flannel leaves the kernel default, 8472).
    pub port: u16,
    /// Source address of the encapsulated packets (IFLA_VXLAN_LOCAL/LOCAL6).
    pub local: IpAddr,
    /// Index of the underlay link (IFLA_VXLAN_LINK).
    pub underlay_index: u32,
    pub mtu: u32,
    pub mac: MacAddr,
}

/// The VXLAN attributes of an existing device that decide whether it can be
/// reused (flannel's compatibility check).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VxlanAttrs {
    pub vni: Option<u32>,
    pub local: Option<IpAddr>,
    pub underlay_index: Option<u32>,
    pub port: Option<u16>,
    pub learning: Option<bool>,
}

impl VxlanAttrs {
    /// Whether a device with these attributes carries `spec`'s traffic
    /// unchanged (MTU and MAC can be fixed in place, these cannot).
    pub fn matches(&self, spec: &VxlanSpec) -> bool {
        self.vni == Some(spec.vni)
            && self.local == Some(spec.local)
            && self.underlay_index == Some(spec.underlay_index)
            && self.port == Some(spec.port)
            && self.learning == Some(false)
    }
}

impl Netlink {
    /// Creates the device (learning, proxy, RSC, L2/L3 miss off; TTL/TOS 0),
    /// with its MTU and MAC, administratively down.
    pub async fn create_vxlan(&self, spec: &VxlanSpec) -> Result<LinkInfo, LinkError> {
        let mut builder = LinkVxlan::new(&spec.name, spec.vni)
            .dev(spec.underlay_index)
            .port(spec.port)
            .ttl(0)
            .tos(0)
            .learning(false)
            .proxy(false)
            .rsc(false)
            .l2miss(false)
            .l3miss(false)
            .udp_zero_csum6_tx(false)
            .udp_zero_csum6_rx(false);
        builder = match spec.local {
            IpAddr::V4(v4) => builder.local(v4),
            IpAddr::V6(v6) => builder.local6(v6),
        };
        let msg = builder.mtu(spec.mtu).address(spec.mac.0.to_vec()).build();
        self.handle
            .link()
            .add(msg)
            .execute()
            .await
            .map_err(|e| LinkError::request("create vxlan device", &spec.name, e))?;
        self.require_link(&spec.name).await
    }

    /// The link and its VXLAN attributes; `None` if no link has the name.
    /// A link of another kind is returned with default (empty) attributes.
    pub async fn vxlan_link(
        &self,
        name: &str,
    ) -> Result<Option<(LinkInfo, VxlanAttrs)>, LinkError> {
        let Some(link) = self.link_by_name(name).await? else {
            return Ok(None);
        };
        let request = self.handle.link().get().match_index(link.index);
        let msg = match request.execute().try_next().await {
            Ok(Some(msg)) => msg,
            Ok(None) => return Ok(None),
            Err(e) => return Err(LinkError::request("look up link", name, e)),
        };
        Ok(Some((link, vxlan_attrs(&msg.attributes))))
    }

    /// Sets the MTU of link `name`.
    pub async fn set_mtu(&self, name: &str, mtu: u32) -> Result<(), LinkError> {
        let link = self.require_link(name).await?;
        let msg = LinkUnspec::new_with_index(link.index).mtu(mtu).build();
        self.handle
            .link()
            .set(msg)
            .execute()
            .await
            .map_err(|e| LinkError::request("set MTU of", name, e))
    }

    /// Sets the hardware address of link `name`.
    pub async fn set_mac(&self, name: &str, mac: MacAddr) -> Result<(), LinkError> {
        let link = self.require_link(name).await?;
        let msg = LinkUnspec::new_with_index(link.index)
            .address(mac.0.to_vec())
            .build();
        self.handle
            .link()
            .set(msg)
            .execute()
            .await
            .map_err(|e| LinkError::request("set MAC address of", name, e))
    }
}

fn vxlan_attrs(attributes: &[LinkAttribute]) -> VxlanAttrs {
    let mut attrs = VxlanAttrs::default();
    let infos = attributes.iter().find_map(|a| match a {
        LinkAttribute::LinkInfo(infos) => Some(infos),
        _ => None,
    });
    let data = infos.into_iter().flatten().find_map(|i| match i {
        NlLinkInfo::Data(InfoData::Vxlan(data)) => Some(data),
        _ => None,
    });
    for item in data.into_iter().flatten() {
        match item {
            InfoVxlan::Id(vni) => attrs.vni = Some(*vni),
            InfoVxlan::Local(v4) => attrs.local = Some(IpAddr::V4(*v4)),
            InfoVxlan::Local6(v6) => attrs.local = Some(IpAddr::V6(*v6)),
            InfoVxlan::Link(index) => attrs.underlay_index = Some(*index),
            InfoVxlan::Port(port) => attrs.port = Some(*port),
            InfoVxlan::Learning(on) => attrs.learning = Some(*on),
            _ => {}
        }
    }
    attrs
}
