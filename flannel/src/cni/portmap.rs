//! hostPort mappings as nftables DNAT in table `inet nodenet-hostport`.
//!
//! Layout (the base chains are rewritten identically on every ADD):
//! - `prerouting` (nat, dstnat) and `output` (nat, -100): traffic to a local
//!   address (`fib daddr type local`) jumps to `hostports`;
//! - `hostports`: one `jump ctr-<hash>` rule per container with mappings;
//! - `ctr-<hash>`: per mapping, mark hairpin (pod subnet) and loopback-sourced
//!   connections, then DNAT to podIP:containerPort;
//! - `postrouting` (nat, srcnat): masquerade marked connections, so replies
//!   come back through the node (like portmap's CNI-HOSTPORT-MASQ).
//!
//! DEL removes exactly the container's jump rule(s) and chain.

use std::net::IpAddr;

use host::names::{
    HOSTPORT_DNAT_CHAIN as DNAT, HOSTPORT_MASQ_MARK as MARK, HOSTPORT_OUTPUT_CHAIN as OUTPUT,
    HOSTPORT_POSTROUTING_CHAIN as POSTROUTING, HOSTPORT_PREROUTING_CHAIN as PREROUTING,
    NFT_HOSTPORT_FAMILY as FAMILY, NFT_HOSTPORT_TABLE as TABLE,
};
use host::nft::{self, NftError};
use ipnet::IpNet;
use serde_json::Value;

use super::config::PortMapping;

/// One nft script: table skeleton, old jumps to `chain` removed, the
/// container chain rebuilt from `mappings`, one jump to it.
pub fn add_script(
    chain: &str,
    container_id: &str,
    mappings: &[PortMapping],
    pod_ips: &[IpNet],
    stale_jumps: &[u64],
) -> String {
    let mut s = skeleton();
    for handle in stale_jumps {
        s.push_str(&format!(
            "delete rule {FAMILY} {TABLE} {DNAT} handle {handle}\n"
        ));
    }
    s.push_str(&format!("add chain {FAMILY} {TABLE} {chain}\n"));
    s.push_str(&format!("flush chain {FAMILY} {TABLE} {chain}\n"));
    for mapping in mappings {
        for pod in pod_ips {
            for rule in mapping_rules(mapping, pod) {
                s.push_str(&format!("add rule {FAMILY} {TABLE} {chain} {rule}\n"));
            }
        }
    }
    s.push_str(&format!(
        "add rule {FAMILY} {TABLE} {DNAT} jump {chain} comment \"container {container_id}\"\n"
    ));
    s
}

/// The base chains, recreated identically each time (idempotent).
fn skeleton() -> String {
    let mark = format!("0x{MARK:08x}");
    let base = [
        (
            PREROUTING,
            "type nat hook prerouting priority dstnat; policy accept;",
            format!("fib daddr type local jump {DNAT}"),
        ),
        (
            OUTPUT,
            "type nat hook output priority -100; policy accept;",
            format!("fib daddr type local jump {DNAT}"),
        ),
        (
            POSTROUTING,
            "type nat hook postrouting priority srcnat; policy accept;",
            format!("meta mark & {mark} == {mark} masquerade"),
        ),
    ];
    let mut s = format!("add table {FAMILY} {TABLE}\nadd chain {FAMILY} {TABLE} {DNAT}\n");
    for (chain, spec, rule) in base {
        s.push_str(&format!(
            "add chain {FAMILY} {TABLE} {chain} {{ {spec} }}\n"
        ));
        s.push_str(&format!("flush chain {FAMILY} {TABLE} {chain}\n"));
        s.push_str(&format!("add rule {FAMILY} {TABLE} {chain} {rule}\n"));
    }
    s
}

/// Rules of one mapping for one pod address (none if the mapping's hostIP is
/// of the other family).
fn mapping_rules(m: &PortMapping, pod: &IpNet) -> Vec<String> {
    let (ip, nfproto, loopback, to) = match pod.addr() {
        IpAddr::V4(a) => (
            "ip",
            "ipv4",
            "127.0.0.0/8".to_string(),
            format!("{a}:{}", m.container_port),
        ),
        IpAddr::V6(a) => (
            "ip6",
            "ipv6",
            "::1".to_string(),
            format!("[{a}]:{}", m.container_port),
        ),
    };
    let daddr = match m.host_ip {
        Some(h) if h.is_ipv4() != pod.addr().is_ipv4() => return Vec::new(),
        Some(h) => format!(" {ip} daddr {h}"),
        None => String::new(),
    };
    let matcher = format!(
        "meta nfproto {nfproto}{daddr} meta l4proto {} th dport {}",
        m.protocol.as_str(),
        m.host_port
    );
    let set_mark = format!("meta mark set meta mark | 0x{MARK:08x}");
    vec![
        format!("{matcher} {ip} saddr {} {set_mark}", pod.trunc()),
        format!("{matcher} {ip} saddr {loopback} {set_mark}"),
        format!("{matcher} dnat {ip} to {to}"),
    ]
}

/// Handles of rules in `hostports` that jump to `chain`.
pub fn jump_handles(table: &Value, chain: &str) -> Vec<u64> {
    rules_of(table, DNAT)
        .filter(|rule| exprs_jump_to(rule, chain))
        .filter_map(|rule| rule.get("handle").and_then(Value::as_u64))
        .collect()
}

fn exprs_jump_to(rule: &Value, chain: &str) -> bool {
    let exprs = rule.get("expr").and_then(Value::as_array);
    exprs.is_some_and(|e| e.iter().any(|x| x["jump"]["target"] == chain))
}

/// The `rule` objects of `chain` in `nft -j list table` output.
pub fn rules_of<'a>(table: &'a Value, chain: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    table["nftables"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|item| item.get("rule"))
        .filter(move |rule| rule["chain"] == chain)
}

/// Whether `chain` exists in the table JSON.
pub fn has_chain(table: &Value, chain: &str) -> bool {
    let items = table["nftables"].as_array().into_iter().flatten();
    items
        .filter_map(|i| i.get("chain"))
        .any(|c| c["name"] == chain)
}

/// The script removing `chain` and the jumps to it; `None` if nothing is there.
pub fn remove_script(table: &Value, chain: &str) -> Option<String> {
    let handles = jump_handles(table, chain);
    let exists = has_chain(table, chain);
    if handles.is_empty() && !exists {
        return None;
    }
    let mut s = String::new();
    for handle in handles {
        s.push_str(&format!(
            "delete rule {FAMILY} {TABLE} {DNAT} handle {handle}\n"
        ));
    }
    if exists {
        s.push_str(&format!("delete chain {FAMILY} {TABLE} {chain}\n"));
    }
    Some(s)
}

/// Installs the container's mappings in one transaction (current netns).
pub fn install(
    chain: &str,
    container_id: &str,
    mappings: &[PortMapping],
    pod_ips: &[IpNet],
) -> Result<(), NftError> {
    let stale = match nft::table_json(FAMILY, TABLE)? {
        Some(table) => jump_handles(&table, chain),
        None => Vec::new(),
    };
    nft::apply(&add_script(chain, container_id, mappings, pod_ips, &stale))
}

/// Removes the container's chain and jumps; returns whether anything existed.
pub fn uninstall(chain: &str) -> Result<bool, NftError> {
    let Some(table) = nft::table_json(FAMILY, TABLE)? else {
        return Ok(false);
    };
    match remove_script(&table, chain) {
        Some(script) => nft::apply(&script).map(|()| true),
        None => Ok(false),
    }
}

/// CHECK: what is missing for `mappings` to `pod_ips` (empty = all present).
pub fn missing(
    table: Option<&Value>,
    chain: &str,
    mappings: &[PortMapping],
    pod_ips: &[IpNet],
) -> Vec<String> {
    let Some(table) = table else {
        return vec![format!("nft table {FAMILY} {TABLE}")];
    };
    let mut missing = Vec::new();
    if jump_handles(table, chain).is_empty() {
        missing.push(format!("jump to {chain} in chain {DNAT}"));
    }
    let dnats: Vec<&Value> = rules_of(table, chain).collect();
    for m in mappings {
        for pod in pod_ips
            .iter()
            .filter(|p| m.host_ip.is_none_or(|h| h.is_ipv4() == p.addr().is_ipv4()))
        {
            if !dnats.iter().any(|r| rule_dnats(r, m, pod.addr())) {
                missing.push(format!(
                    "hostPort {}/{} DNAT to {}:{}",
                    m.host_port,
                    m.protocol.as_str(),
                    pod.addr(),
                    m.container_port
                ));
            }
        }
    }
    missing
}

fn rule_dnats(rule: &Value, m: &PortMapping, pod: IpAddr) -> bool {
    let exprs = rule["expr"].as_array().into_iter().flatten();
    let mut dport = false;
    let mut dnat = false;
    for e in exprs {
        if e["match"]["left"]["payload"]["field"] == "dport" && e["match"]["right"] == m.host_port {
            dport = true;
        }
        if e["dnat"]["addr"] == pod.to_string() && e["dnat"]["port"] == m.container_port {
            dnat = true;
        }
    }
    dport && dnat
}

#[cfg(test)]
#[path = "portmap_tests.rs"]
mod tests;
