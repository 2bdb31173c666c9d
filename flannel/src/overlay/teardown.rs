//! Removing everything the overlay made in the current network namespace,
//! for `nodenet cleanup`. Keeps going past failures and reports them all.

use host::link::Netlink;
use host::names;
use ipnet::IpNet;

use super::OverlayError;
use super::hostgw;
use super::reconcile::device_name;

/// What a teardown removed (or, in a dry run, would remove).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TeardownReport {
    /// Human-readable items, e.g. `link flannel.1`, `route 10.42.1.0/24 via 192.168.50.2 dev #2`,
    /// `nft table ip nodenet-flannel`.
    pub removed: Vec<String>,
}

/// Removes the VXLAN devices (with their neighbours, FDB entries and
/// routes), our host-gw routes and our nftables tables. Routes count as
/// ours by protocol [`names::RTPROT_NODENET`], restricted to
/// `cluster_cidrs` when given (empty: every route with our protocol).
/// The persisted VTEP MAC is kept so a reinstall keeps its identity.
/// Order: devices first (their routes go with them), then host-gw routes,
/// then the nft tables, so no route is left pointing into a removed path.
pub async fn teardown_state(
    cluster_cidrs: &[IpNet],
    dry_run: bool,
) -> Result<TeardownReport, OverlayError> {
    let netlink = Netlink::connect()?;
    let mut report = TeardownReport::default();
    let mut failures = Vec::new();
    for v6 in [false, true] {
        let name = device_name(v6);
        match remove_vxlan(&netlink, name, dry_run).await {
            Ok(true) => report.removed.push(format!("link {name}")),
            Ok(false) => {}
            Err(e) => failures.push(e.to_string()),
        }
    }
    for v6 in [false, true] {
        let scope = hostgw::Scope { v6, cluster_cidrs };
        match remove_routes(&netlink, &scope, dry_run).await {
            Ok(mut removed) => report.removed.append(&mut removed),
            Err(e) => failures.push(e.to_string()),
        }
    }
    for family in ["ip", "ip6"] {
        match remove_table(family, dry_run) {
            Ok(true) => report
                .removed
                .push(format!("nft table {family} {}", names::NFT_FLANNEL_TABLE)),
            Ok(false) => {}
            Err(e) => failures.push(e.to_string()),
        }
    }
    if failures.is_empty() {
        Ok(report)
    } else {
        Err(OverlayError::Teardown(failures))
    }
}

/// Only a VXLAN link of that name is ours to delete.
async fn remove_vxlan(netlink: &Netlink, name: &str, dry_run: bool) -> Result<bool, OverlayError> {
    let Some(link) = netlink.link_by_name(name).await? else {
        return Ok(false);
    };
    if link.kind.as_deref() != Some("vxlan") {
        tracing::warn!(component = "flannel", link = name, kind = ?link.kind, "not a VXLAN device; left alone");
        return Ok(false);
    }
    if dry_run {
        return Ok(true);
    }
    Ok(netlink.delete_link(name).await?)
}

async fn remove_routes(
    netlink: &Netlink,
    scope: &hostgw::Scope<'_>,
    dry_run: bool,
) -> Result<Vec<String>, OverlayError> {
    let mut removed = Vec::new();
    for route in hostgw::current(netlink, scope).await? {
        if dry_run
            || netlink
                .delete_tagged_route(&route, names::RTPROT_NODENET)
                .await?
        {
            removed.push(format!("route {route} proto {}", names::RTPROT_NODENET));
        }
    }
    Ok(removed)
}

fn remove_table(family: &str, dry_run: bool) -> Result<bool, OverlayError> {
    if dry_run {
        return Ok(host::nft::table_exists(family, names::NFT_FLANNEL_TABLE)?);
    }
    Ok(host::nft::delete_table(family, names::NFT_FLANNEL_TABLE)?)
}
