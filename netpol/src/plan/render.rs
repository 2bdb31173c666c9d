//! Rendering plan objects as `nft -f` commands.

use std::fmt::Write as _;

use host::names::{NFT_NETPOL_FAMILY, NFT_NETPOL_TABLE};

use super::{Chain, MapDef, Plan, SetDef};

/// Elements per `add element` command: keeps single lines short for huge
/// sets (the parser's memory grows with line length).
const ELEMENTS_PER_COMMAND: usize = 2000;

/// `inet nodenet-netpol`.
pub(super) fn table() -> String {
    format!("{NFT_NETPOL_FAMILY} {NFT_NETPOL_TABLE}")
}

/// The whole table, replacing any previous one in the same transaction:
/// `add table` (so `delete` cannot fail), `delete table`, then everything.
/// Until the transaction commits the old rules stay in force, so no packet
/// ever sees an empty or half-built table.
pub fn full_script(plan: &Plan) -> String {
    let t = table();
    let mut out = format!("add table {t}\ndelete table {t}\nadd table {t}\n");
    for name in plan.counters.keys() {
        out.push_str(&counter_decl(name));
    }
    for (name, set) in &plan.sets {
        out.push_str(&set_decl(name, set));
        out.push_str(&set_elements("add", name, set.elements.iter()));
    }
    for (name, map) in &plan.maps {
        out.push_str(&map_decl(name, map));
    }
    for (name, chain) in &plan.chains {
        out.push_str(&chain_decl(name, chain));
    }
    for (name, chain) in &plan.chains {
        out.push_str(&chain_rules(name, chain));
    }
    for (name, map) in &plan.maps {
        out.push_str(&map_elements(name, map.elements.iter()));
    }
    out
}

pub(super) fn counter_decl(name: &str) -> String {
    format!("add counter {} {name}\n", table())
}

pub(super) fn set_decl(name: &str, set: &SetDef) -> String {
    let flags = if set.interval { " flags interval;" } else { "" };
    format!(
        "add set {} {name} {{ type {};{flags} }}\n",
        table(),
        set.key_type
    )
}

pub(super) fn map_decl(name: &str, map: &MapDef) -> String {
    format!(
        "add map {} {name} {{ type {} : verdict; }}\n",
        table(),
        map.key_type
    )
}

pub(super) fn chain_decl(name: &str, chain: &Chain) -> String {
    match &chain.hook {
        None => format!("add chain {} {name}\n", table()),
        Some(h) => format!(
            "add chain {} {name} {{ type filter hook {} priority {}; policy accept; }}\n",
            table(),
            h.hook,
            h.priority
        ),
    }
}

pub(super) fn chain_rules(name: &str, chain: &Chain) -> String {
    let t = table();
    let mut out = String::new();
    for rule in &chain.rules {
        let _ = writeln!(out, "add rule {t} {name} {rule}");
    }
    out
}

/// `verb element` commands (`add` or `delete`) for set elements.
pub(super) fn set_elements<'a>(
    verb: &str,
    name: &str,
    elements: impl Iterator<Item = &'a String>,
) -> String {
    let all: Vec<&str> = elements.map(String::as_str).collect();
    element_commands(verb, name, &all)
}

/// `add element` commands for verdict map entries.
pub(super) fn map_elements<'a>(
    name: &str,
    elements: impl Iterator<Item = (&'a String, &'a String)>,
) -> String {
    let all: Vec<String> = elements.map(|(k, v)| format!("{k} : {v}")).collect();
    let refs: Vec<&str> = all.iter().map(String::as_str).collect();
    element_commands("add", name, &refs)
}

fn element_commands(verb: &str, name: &str, elements: &[&str]) -> String {
    let t = table();
    let mut out = String::new();
    for chunk in elements.chunks(ELEMENTS_PER_COMMAND) {
        let _ = writeln!(out, "{verb} element {t} {name} {{ {} }}", chunk.join(", "));
    }
    out
}
