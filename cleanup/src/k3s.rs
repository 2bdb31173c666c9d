//! What K3s's flannel leaves on a node, by name and kind (flannel.md §5).
//! `cni0`, its pod veths, `flannel.1` and `flannel-v6.1` have the names and
//! kinds nodenet uses and are removed by those steps.

use host::link::Netlink;

use crate::item::Item;
use crate::steps::{Found, Step};

/// K3s flannel's WireGuard links and the kinds they may have: `wireguard`
/// from the kernel module, `tun` from a user-space implementation.
pub const WIREGUARD_LINKS: [&str; 2] = ["flannel-wg", "flannel-wg-v6"];
/// Link kinds a [`WIREGUARD_LINKS`] link may have to count as flannel's.
pub const WIREGUARD_KINDS: [&str; 2] = ["wireguard", "tun"];
/// nftables tables of flannel's nftables mode, as (family, name).
pub const FLANNEL_NFT_TABLES: [(&str, &str); 2] = [("ip", "flannel-ipv4"), ("ip6", "flannel-ipv6")];

/// The WireGuard links; a link with such a name but another kind is not
/// flannel's and stays.
pub struct K3sLinks;

impl Step for K3sLinks {
    fn name(&self) -> &'static str {
        "K3s flannel links"
    }
    fn find(&self) -> Found<'_> {
        Box::pin(async {
            let netlink = Netlink::connect()?;
            let mut found = Vec::new();
            for name in WIREGUARD_LINKS {
                let Some(link) = netlink.link_by_name(name).await? else {
                    continue;
                };
                if link
                    .kind
                    .as_deref()
                    .is_some_and(|k| WIREGUARD_KINDS.contains(&k))
                {
                    found.push(Item::Link(link.name));
                } else {
                    tracing::info!(link = name, kind = ?link.kind, "not a WireGuard or TUN link; left alone");
                }
            }
            Ok(found)
        })
    }
}
