//! Routes in the main table.

use std::net::IpAddr;

use ipnet::IpNet;
use rtnetlink::RouteMessageBuilder;

use super::{LinkError, Netlink};

/// A route to add: `dst` [via `gateway`] [dev `dev`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteSpec {
    pub dst: IpNet,
    pub gateway: Option<IpAddr>,
    /// Output interface name.
    pub dev: Option<String>,
}

impl Netlink {
    /// Adds (or replaces) a route in the main table.
    pub async fn add_route(&self, route: &RouteSpec) -> Result<(), LinkError> {
        let subject = describe(route);
        let invalid = |reason: String| LinkError::InvalidRoute {
            subject: subject.clone(),
            reason,
        };
        let dst = route.dst.trunc();
        let mut builder = RouteMessageBuilder::<IpAddr>::new()
            .destination_prefix(dst.addr(), dst.prefix_len())
            .map_err(|e| invalid(e.to_string()))?;
        if let Some(gw) = route.gateway {
            builder = builder.gateway(gw).map_err(|e| invalid(e.to_string()))?;
        }
        if let Some(dev) = &route.dev {
            builder = builder.output_interface(self.require_link(dev).await?.index);
        }
        self.handle
            .route()
            .add(builder.build())
            .replace()
            .execute()
            .await
            .map_err(|e| LinkError::request("add route", subject, e))
    }
}

fn describe(route: &RouteSpec) -> String {
    let mut text = route.dst.to_string();
    if let Some(gw) = route.gateway {
        text.push_str(&format!(" via {gw}"));
    }
    if let Some(dev) = &route.dev {
        text.push_str(&format!(" dev {dev}"));
    }
    text
}
