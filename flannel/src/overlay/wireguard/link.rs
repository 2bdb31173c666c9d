//! The kernel side of a WireGuard device, whatever runs it: MTU, the
//! address (our pod subnet's network address, /32 or /128), up, and one
//! route for the whole cluster CIDR through it (`scope link`, as flannel
//! installs it; WireGuard picks the peer by allowed IPs, not the kernel).

use std::net::IpAddr;

use host::link::{AddressFamilyFilter, LinkInfo, Netlink};
use ipnet::IpNet;
use netlink_packet_route::route::{RouteProtocol, RouteScope};
use rtnetlink::RouteMessageBuilder;

use super::super::OverlayError;
use super::super::reconcile::Outcome;

/// RTPROT_BOOT, the protocol flannel's route has (netlink library default).
/// Not our tag: the route belongs to the device and goes with it, so the
/// host-gw pruning (which lists our tag) never sees it.
const RTPROT_BOOT: u8 = 3;

/// One family's device as it must be configured in the kernel.
pub(super) struct LinkWant<'a> {
    pub name: &'a str,
    pub v6: bool,
    pub mtu: u32,
    pub own_subnet: IpNet,
    pub cluster: IpNet,
}

impl LinkWant<'_> {
    fn address(&self) -> IpNet {
        let host_len = if self.v6 { 128 } else { 32 };
        IpNet::new(self.own_subnet.network(), host_len).unwrap_or(self.own_subnet)
    }

    fn family(&self) -> AddressFamilyFilter {
        if self.v6 {
            AddressFamilyFilter::V6
        } else {
            AddressFamilyFilter::V4
        }
    }
}

/// Brings `link` to `want`; counts what it changed.
pub(super) async fn configure(
    netlink: &Netlink,
    link: &LinkInfo,
    want: &LinkWant<'_>,
    outcome: &mut Outcome,
) -> Result<(), OverlayError> {
    if link.mtu != Some(want.mtu) {
        outcome.wrote(netlink.set_mtu(want.name, want.mtu).await)?;
    }
    ensure_address(netlink, want, outcome).await?;
    if want.v6 {
        // Router advertisements must not configure the tunnel device.
        let key = format!("net/ipv6/conf/{}/accept_ra", want.name);
        if let Err(e) = host::sysctl::ensure(&key, "0") {
            tracing::warn!(component = "flannel", error = %e, "cannot disable accept_ra");
        }
    }
    if !link.up {
        netlink.set_up(want.name).await?;
    }
    ensure_route(netlink, link.index, want, outcome).await
}

async fn ensure_address(
    netlink: &Netlink,
    want: &LinkWant<'_>,
    outcome: &mut Outcome,
) -> Result<(), OverlayError> {
    let address = want.address();
    let current: Vec<IpNet> = netlink
        .addresses(want.name, want.family())
        .await?
        .into_iter()
        .filter(|a| !is_link_local(a))
        .collect();
    if current == [address] {
        return Ok(());
    }
    outcome.wrote(netlink.add_address(want.name, address).await)?;
    let removed = netlink
        .flush_addresses_except(want.name, want.family(), Some(address))
        .await?;
    outcome.counts.removed += removed.len();
    Ok(())
}

fn is_link_local(net: &IpNet) -> bool {
    matches!(net, IpNet::V6(v6) if (v6.addr().segments()[0] & 0xffc0) == 0xfe80)
}

async fn ensure_route(
    netlink: &Netlink,
    index: u32,
    want: &LinkWant<'_>,
    outcome: &mut Outcome,
) -> Result<(), OverlayError> {
    let present = netlink
        .routes_with_protocol(want.v6, RTPROT_BOOT)
        .await?
        .iter()
        .any(|r| r.dst == want.cluster && r.oif == Some(index) && r.gateway.is_none());
    if present {
        return Ok(());
    }
    let cluster = want.cluster.trunc();
    let subject = format!("{cluster} dev {} scope link", want.name);
    let message = RouteMessageBuilder::<IpAddr>::new()
        .destination_prefix(cluster.addr(), cluster.prefix_len())
        .map_err(|e| host::link::LinkError::InvalidRoute {
            subject: subject.clone(),
            reason: e.to_string(),
        })?
        .output_interface(index)
        .scope(RouteScope::Link)
        .protocol(RouteProtocol::from(RTPROT_BOOT))
        .build();
    let result = netlink
        .handle()
        .route()
        .add(message)
        .replace()
        .execute()
        .await;
    outcome.wrote(result.map_err(|source| host::link::LinkError::Request {
        op: "replace route",
        subject,
        source,
    }))
}
