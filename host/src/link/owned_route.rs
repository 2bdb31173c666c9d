//! Routes in the main table tagged with a routing-protocol number, so a
//! reconciler can list exactly the routes it made and prune the rest without
//! touching anyone else's (kernel, DHCP, static, other daemons).

use std::net::IpAddr;

use futures::TryStreamExt;
use ipnet::IpNet;
use netlink_packet_route::AddressFamily;
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteHeader, RouteMessage, RouteProtocol, RouteType,
};
use rtnetlink::RouteMessageBuilder;

use super::{LinkError, Netlink};

/// A unicast route in the main table as the owner sees it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaggedRoute {
    /// Destination, truncated to its network address.
    pub dst: IpNet,
    pub gateway: Option<IpAddr>,
    /// Output interface index.
    pub oif: Option<u32>,
    /// RTNH_F_ONLINK: the gateway is on the link even without a covering subnet.
    pub onlink: bool,
}

impl std::fmt::Display for TaggedRoute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.dst)?;
        if let Some(gw) = self.gateway {
            write!(f, " via {gw}")?;
        }
        if let Some(oif) = self.oif {
            write!(f, " dev #{oif}")?;
        }
        if self.onlink {
            write!(f, " onlink")?;
        }
        Ok(())
    }
}

impl Netlink {
    /// Main-table routes of one family whose protocol is `protocol`.
    pub async fn routes_with_protocol(
        &self,
        v6: bool,
        protocol: u8,
    ) -> Result<Vec<TaggedRoute>, LinkError> {
        let mut query = RouteMessage::default();
        query.header.address_family = if v6 {
            AddressFamily::Inet6
        } else {
            AddressFamily::Inet
        };
        let messages: Vec<RouteMessage> = self
            .handle
            .route()
            .get(query)
            .execute()
            .try_collect()
            .await
            .map_err(|e| LinkError::request("list", "routes", e))?;
        Ok(messages
            .iter()
            .filter(|m| u8::from(m.header.protocol) == protocol)
            .filter(|m| table_of(m) == u32::from(RouteHeader::RT_TABLE_MAIN))
            .filter(|m| m.header.kind == RouteType::Unicast)
            .filter_map(tagged_route)
            .collect())
    }

    /// `ip route replace <route> proto <protocol>` in the main table.
    pub async fn replace_tagged_route(
        &self,
        route: &TaggedRoute,
        protocol: u8,
    ) -> Result<(), LinkError> {
        let msg = route_message(route, protocol)?;
        self.handle
            .route()
            .add(msg)
            .replace()
            .execute()
            .await
            .map_err(|e| LinkError::request("replace route", route.to_string(), e))
    }

    /// Deletes the route (matching its protocol, gateway and interface);
    /// returns whether it existed.
    pub async fn delete_tagged_route(
        &self,
        route: &TaggedRoute,
        protocol: u8,
    ) -> Result<bool, LinkError> {
        let msg = route_message(route, protocol)?;
        match self.handle.route().del(msg).execute().await {
            Ok(()) => Ok(true),
            Err(rtnetlink::Error::NetlinkError(e))
                if matches!(e.raw_code().abs(), libc::ESRCH | libc::ENOENT) =>
            {
                Ok(false)
            }
            Err(e) => Err(LinkError::request("delete route", route.to_string(), e)),
        }
    }
}

fn route_message(route: &TaggedRoute, protocol: u8) -> Result<RouteMessage, LinkError> {
    let invalid = |reason: String| LinkError::InvalidRoute {
        subject: route.to_string(),
        reason,
    };
    let dst = route.dst.trunc();
    let mut builder = RouteMessageBuilder::<IpAddr>::new()
        .destination_prefix(dst.addr(), dst.prefix_len())
        .map_err(|e| invalid(e.to_string()))?
        .protocol(RouteProtocol::from(protocol));
    if let Some(gw) = route.gateway {
        builder = builder.gateway(gw).map_err(|e| invalid(e.to_string()))?;
    }
    if let Some(oif) = route.oif {
        builder = builder.output_interface(oif);
    }
    if route.onlink {
        builder = builder.onlink();
    }
    Ok(builder.build())
}

fn table_of(msg: &RouteMessage) -> u32 {
    msg.attributes
        .iter()
        .find_map(|a| match a {
            RouteAttribute::Table(t) => Some(*t),
            _ => None,
        })
        .unwrap_or(u32::from(msg.header.table))
}

fn tagged_route(msg: &RouteMessage) -> Option<TaggedRoute> {
    let mut dst_addr = None;
    let mut gateway = None;
    let mut oif = None;
    for attr in &msg.attributes {
        match attr {
            RouteAttribute::Destination(a) => dst_addr = ip_of(a),
            RouteAttribute::Gateway(a) => gateway = ip_of(a),
            RouteAttribute::Oif(i) => oif = Some(*i),
            _ => {}
        }
    }
    let dst_addr = dst_addr.or(match msg.header.address_family {
        AddressFamily::Inet => Some(IpAddr::from([0u8; 4])),
        AddressFamily::Inet6 => Some(IpAddr::from([0u8; 16])),
        _ => None,
    })?;
    Some(TaggedRoute {
        dst: IpNet::new(dst_addr, msg.header.destination_prefix_length).ok()?,
        gateway,
        oif,
        onlink: msg.header.flags.contains(RouteFlags::Onlink),
    })
}

fn ip_of(addr: &RouteAddress) -> Option<IpAddr> {
    match addr {
        RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        _ => None,
    }
}
