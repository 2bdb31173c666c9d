//! The host-gw backend: one route per peer subnet via the peer's address on
//! the underlay device, tagged with our route protocol; anything else of
//! ours in the cluster range is pruned.

use std::collections::BTreeSet;

use host::link::Netlink;
use host::link::owned_route::TaggedRoute;
use host::names;
use ipnet::IpNet;

use super::OverlayError;
use super::reconcile::{Outcome, device_name};
use super::state::{self, RouteSpec};

/// Where host-gw routes may be and which routes count as host-gw's.
pub(super) struct Scope<'a> {
    pub v6: bool,
    /// Cluster CIDRs: only routes of ours inside them are considered; an
    /// empty slice means every route with our protocol.
    pub cluster_cidrs: &'a [IpNet],
}

/// Makes our host-gw routes of one family exactly `desired` (on the
/// underlay `index`); `desired` empty removes them all (other backend).
pub(super) async fn apply(
    netlink: &Netlink,
    scope: &Scope<'_>,
    desired: &BTreeSet<RouteSpec>,
    underlay_index: Option<u32>,
    outcome: &mut Outcome,
) -> Result<(), OverlayError> {
    let desired: BTreeSet<TaggedRoute> = desired
        .iter()
        .map(|r| TaggedRoute {
            dst: r.dst,
            gateway: Some(r.gateway),
            oif: underlay_index,
            onlink: r.onlink,
        })
        .collect();
    let current = current(netlink, scope).await?;
    let diff = state::diff(&desired, &current, |r| r.dst);
    for route in &diff.write {
        // One peer whose next hop the kernel refuses (host-gw needs every
        // peer on the underlay link) must not keep the others unprogrammed:
        // like flannel, log it and go on; the next pass retries it.
        match netlink
            .replace_tagged_route(route, names::RTPROT_NODENET)
            .await
        {
            Ok(()) => outcome.counts.written += 1,
            Err(err) => tracing::warn!(component = "flannel", dst = %route.dst,
                gateway = ?route.gateway, error = %err,
                "cannot add host-gw route (is the peer's public-ip on this node's underlay link?); skipping it"),
        }
    }
    for route in &diff.remove {
        outcome.removed(
            netlink
                .delete_tagged_route(route, names::RTPROT_NODENET)
                .await,
        )?;
    }
    Ok(())
}

/// Our routes of the family in the cluster range, except those on the
/// VXLAN devices (they belong to the VXLAN backend and go with the device).
pub(super) async fn current(
    netlink: &Netlink,
    scope: &Scope<'_>,
) -> Result<BTreeSet<TaggedRoute>, OverlayError> {
    let mut vxlan_indexes = Vec::new();
    for v6 in [false, true] {
        if let Some(link) = netlink.link_by_name(device_name(v6)).await? {
            vxlan_indexes.push(link.index);
        }
    }
    let routes = netlink
        .routes_with_protocol(scope.v6, names::RTPROT_NODENET)
        .await?;
    Ok(routes
        .into_iter()
        .filter(|r| r.oif.is_none_or(|oif| !vxlan_indexes.contains(&oif)))
        .filter(|r| {
            scope.cluster_cidrs.is_empty() || scope.cluster_cidrs.iter().any(|c| c.contains(&r.dst))
        })
        .collect())
}
