//! What K3s's NetworkPolicy controller (kube-router) leaves on a node
//! (netpol.md §3.5): its filter-table chains `KUBE-ROUTER-INPUT/FORWARD/OUTPUT`,
//! `KUBE-POD-FW-*`, `KUBE-NWPLCY-*` and the rules jumping to them, in every
//! iptables front-end, then its ipsets `KUBE-SRC-*`, `KUBE-DST-*` and
//! `kube-router-local-pods*` (IPv6 ones carry an `inet6:` prefix). Chains go
//! before sets: a set referenced by a rule cannot be destroyed. kube-router's
//! newer nftables backend (`--use-nftables-for-netpol`, netpol.md §2.4) keeps
//! everything in two tables of its own, removed whole.

use std::collections::BTreeSet;

use crate::ipset;
use crate::iptables::{self, Chain, IptablesError, Rule, SavedTable, parse};
use crate::item::Item;
use crate::steps::{Found, Step};

/// Fixed chain names of kube-router's netpol controller.
pub const CHAINS: [&str; 3] = [
    "KUBE-ROUTER-INPUT",
    "KUBE-ROUTER-FORWARD",
    "KUBE-ROUTER-OUTPUT",
];
/// Prefixes of its per-pod and per-policy chains.
pub const CHAIN_PREFIXES: [&str; 2] = ["KUBE-POD-FW-", "KUBE-NWPLCY-"];
/// Prefixes of its ipsets (after an optional `inet6:`).
pub const IPSET_PREFIXES: [&str; 3] = ["KUBE-SRC-", "KUBE-DST-", "kube-router-local-pods"];

/// Tables of kube-router's nftables backend, one per IP family.
pub const NFT_TABLES: [&str; 2] = ["kube-router-filter-ipv4", "kube-router-filter-ipv6"];

/// Whether a filter-table chain is kube-router's.
pub fn is_chain(name: &str) -> bool {
    CHAINS.contains(&name) || CHAIN_PREFIXES.iter().any(|p| name.starts_with(p))
}

/// Whether an ipset is kube-router's.
pub fn is_ipset(name: &str) -> bool {
    let bare = name.strip_prefix("inet6:").unwrap_or(name);
    IPSET_PREFIXES.iter().any(|p| bare.starts_with(p))
}

/// The chains of one iptables front-end.
pub struct KubeRouterChains {
    pub tool: &'static str,
}

impl Step for KubeRouterChains {
    fn name(&self) -> &'static str {
        "K3s kube-router iptables"
    }
    fn find(&self) -> Found<'_> {
        Box::pin(async move {
            let Some(text) = iptables::save(self.tool)? else {
                return Ok(Vec::new());
            };
            let tables = parse(&text).map_err(|source| IptablesError::Parse {
                tool: self.tool.into(),
                source,
            })?;
            Ok(leftovers(self.tool, &tables))
        })
    }
}

/// Rules outside kube-router's chains that jump to them, then the chains,
/// each before the chains it jumps to (flushing a chain drops its
/// references, so every chain is unreferenced when its turn comes).
pub fn leftovers(tool: &str, tables: &[SavedTable]) -> Vec<Item> {
    let Some(filter) = tables.iter().find(|t| t.name == "filter") else {
        return Vec::new();
    };
    let ours: Vec<&str> = filter
        .chains
        .iter()
        .map(String::as_str)
        .filter(|c| is_chain(c))
        .collect();
    let jumps = filter
        .rules
        .iter()
        .filter(|r| !is_chain(&r.chain) && r.target().is_some_and(is_chain));
    let mut items: Vec<Item> = jumps
        .map(|saved| {
            Item::IptablesRule(Rule {
                tool: tool.into(),
                table: "filter".into(),
                saved: saved.clone(),
            })
        })
        .collect();
    items.extend(parents_first(filter, &ours).into_iter().map(|chain| {
        Item::IptablesChain(Chain {
            tool: tool.into(),
            table: "filter".into(),
            chain: chain.into(),
        })
    }));
    items
}

/// `chains` ordered so that every chain comes before the chains it jumps
/// to. Chains in a cycle (kube-router
/// makes none) keep their saved order at the end.
fn parents_first<'a>(table: &'a SavedTable, chains: &[&'a str]) -> Vec<&'a str> {
    let mut left: Vec<&str> = chains.to_vec();
    let mut out = Vec::new();
    while !left.is_empty() {
        let referenced: BTreeSet<&str> = table
            .rules
            .iter()
            .filter(|r| left.contains(&r.chain.as_str()))
            .filter_map(|r| r.target())
            .collect();
        let (free, rest): (Vec<&str>, Vec<&str>) =
            left.iter().partition(|c| !referenced.contains(*c));
        if free.is_empty() {
            out.extend(rest);
            break;
        }
        out.extend(free);
        left = rest;
    }
    out
}

/// kube-router's ipsets; runs after every front-end's chains are gone.
pub struct KubeRouterIpsets;

impl Step for KubeRouterIpsets {
    fn name(&self) -> &'static str {
        "K3s kube-router ipsets"
    }
    fn find(&self) -> Found<'_> {
        Box::pin(async {
            let Some(names) = ipset::list_names()? else {
                return Ok(Vec::new());
            };
            let ours = names.into_iter().filter(|n| is_ipset(n));
            Ok(ours.map(Item::Ipset).collect())
        })
    }
}

/// The tables of kube-router's nftables backend. They are matched by name in
/// any family: the name is kube-router's alone, and a table left in a family
/// other than the one we expect would otherwise survive a cleanup.
pub struct KubeRouterNftTables;

impl Step for KubeRouterNftTables {
    fn name(&self) -> &'static str {
        "K3s kube-router nftables"
    }
    fn find(&self) -> Found<'_> {
        Box::pin(async {
            let tables = host::nft::list_tables()?;
            let theirs = tables
                .into_iter()
                .filter(|t| NFT_TABLES.contains(&t.name.as_str()));
            Ok(theirs
                .map(|t| Item::NftTable {
                    family: t.family,
                    name: t.name,
                })
                .collect())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_names_and_nothing_else() {
        for ours in [
            "KUBE-ROUTER-FORWARD",
            "KUBE-POD-FW-ABCDEF",
            "KUBE-NWPLCY-DEFAULT",
        ] {
            assert!(is_chain(ours), "{ours}");
        }
        for theirs in [
            "KUBE-ROUTER-SERVICES",
            "KUBE-FORWARD",
            "KUBE-SERVICES",
            "FORWARD",
        ] {
            assert!(!is_chain(theirs), "{theirs}");
        }
        for ours in [
            "KUBE-SRC-ABC",
            "KUBE-DST-XYZ",
            "kube-router-local-pods",
            "inet6:kube-router-local-pods",
            "inet6:KUBE-SRC-ABC",
        ] {
            assert!(is_ipset(ours), "{ours}");
        }
        for theirs in [
            "KUBE-CLUSTER-IP",
            "kube-router-local-ips",
            "my-KUBE-SRC-x",
            "TMP-ABC",
        ] {
            assert!(!is_ipset(theirs), "{theirs}");
        }
    }

    #[test]
    fn jumps_first_then_chains_parents_before_children() {
        let text = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n\
            :KUBE-NWPLCY-AAA - [0:0]\n:KUBE-POD-FW-BBB - [0:0]\n:KUBE-ROUTER-FORWARD - [0:0]\n:USER - [0:0]\n\
            -A FORWARD -m comment --comment \"kube-router netpol - X\" -j KUBE-ROUTER-FORWARD\n\
            -A FORWARD -j USER\n\
            -A KUBE-ROUTER-FORWARD -d 10.42.0.5/32 -j KUBE-POD-FW-BBB\n\
            -A KUBE-POD-FW-BBB -j KUBE-NWPLCY-AAA\n\
            -A KUBE-NWPLCY-AAA -m set --match-set KUBE-SRC-X src -j ACCEPT\n\
            -A USER -j KUBE-NWPLCY-AAA\nCOMMIT\n\
            *nat\n:KUBE-ROUTER-FORWARD - [0:0]\nCOMMIT\n";
        let tables = parse(text).expect("valid");
        let found: Vec<String> = leftovers("iptables-nft", &tables)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            found,
            [
                "iptables-nft -t filter -A FORWARD -m comment --comment \"kube-router netpol - X\" -j KUBE-ROUTER-FORWARD",
                "iptables-nft -t filter -A USER -j KUBE-NWPLCY-AAA",
                "iptables-nft -t filter chain KUBE-ROUTER-FORWARD",
                "iptables-nft -t filter chain KUBE-POD-FW-BBB",
                "iptables-nft -t filter chain KUBE-NWPLCY-AAA",
            ]
        );
    }
}
