//! Turning the change between two plans into one nft transaction that
//! touches only what changed.
//!
//! Order inside the transaction (each step only refers to objects that
//! exist at that point): create new objects; adjust set elements; rewrite
//! changed chains (flush + re-add, atomic with the rest); adjust verdict
//! maps; flush stale chains, delete stale maps, then the stale chains
//! (nothing jumps to them any more); delete stale sets and counters (no rule
//! refers to them any more).

use std::collections::{BTreeMap, BTreeSet};

use super::Plan;
use super::render::{
    chain_decl, chain_rules, counter_decl, full_script, map_decl, map_elements, set_decl,
    set_elements, table,
};

/// An nft script and what kind of change it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Script {
    /// The `nft -f -` input; empty when nothing changed.
    pub text: String,
    /// Whether the script replaces the whole table.
    pub replace: bool,
}

impl Script {
    /// Nothing to apply.
    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }
}

/// The script that turns table `old` (as applied) into `new`. Falls back to
/// a full replace when an object keeps its name but changes its type.
pub fn diff(old: &Plan, new: &Plan) -> Script {
    if !compatible(old, new) {
        return Script {
            text: full_script(new),
            replace: true,
        };
    }
    let mut out = String::new();
    create_new(old, new, &mut out);
    update_sets(old, new, &mut out);
    update_chains(old, new, &mut out);
    update_maps(old, new, &mut out);
    delete_stale(old, new, &mut out);
    Script {
        text: out,
        replace: false,
    }
}

fn compatible(old: &Plan, new: &Plan) -> bool {
    let sets = both(&old.sets, &new.sets)
        .all(|(a, b)| a.key_type == b.key_type && a.interval == b.interval);
    let maps = both(&old.maps, &new.maps).all(|(a, b)| a.key_type == b.key_type);
    let chains = both(&old.chains, &new.chains).all(|(a, b)| a.hook == b.hook);
    sets && maps && chains
}

/// Pairs of values present under the same key in both maps.
fn both<'a, V>(
    old: &'a BTreeMap<String, V>,
    new: &'a BTreeMap<String, V>,
) -> impl Iterator<Item = (&'a V, &'a V)> {
    old.iter().filter_map(|(k, a)| new.get(k).map(|b| (a, b)))
}

fn create_new(old: &Plan, new: &Plan, out: &mut String) {
    for name in new
        .counters
        .keys()
        .filter(|n| !old.counters.contains_key(*n))
    {
        out.push_str(&counter_decl(name));
    }
    for (name, set) in new.sets.iter().filter(|(n, _)| !old.sets.contains_key(*n)) {
        out.push_str(&set_decl(name, set));
        out.push_str(&set_elements("add", name, set.elements.iter()));
    }
    for (name, map) in new.maps.iter().filter(|(n, _)| !old.maps.contains_key(*n)) {
        out.push_str(&map_decl(name, map));
    }
    for (name, chain) in new
        .chains
        .iter()
        .filter(|(n, _)| !old.chains.contains_key(*n))
    {
        out.push_str(&chain_decl(name, chain));
    }
}

fn update_sets(old: &Plan, new: &Plan, out: &mut String) {
    for (name, set) in &new.sets {
        let Some(before) = old.sets.get(name) else {
            continue;
        };
        let gone = before.elements.difference(&set.elements);
        out.push_str(&set_elements("delete", name, gone));
        let added = set.elements.difference(&before.elements);
        out.push_str(&set_elements("add", name, added));
    }
}

fn update_chains(old: &Plan, new: &Plan, out: &mut String) {
    for (name, chain) in &new.chains {
        match old.chains.get(name) {
            Some(before) if before.rules == chain.rules => {}
            Some(_) => {
                out.push_str(&format!("flush chain {} {name}\n", table()));
                out.push_str(&chain_rules(name, chain));
            }
            None => out.push_str(&chain_rules(name, chain)),
        }
    }
}

fn update_maps(old: &Plan, new: &Plan, out: &mut String) {
    let empty = BTreeMap::new();
    for (name, map) in &new.maps {
        let before = old.maps.get(name).map_or(&empty, |m| &m.elements);
        let stale: BTreeSet<&String> = before
            .iter()
            .filter(|(k, v)| map.elements.get(*k) != Some(*v))
            .map(|(k, _)| k)
            .collect();
        out.push_str(&set_elements("delete", name, stale.into_iter()));
        let fresh = map
            .elements
            .iter()
            .filter(|(k, v)| before.get(*k) != Some(*v));
        out.push_str(&map_elements(name, fresh));
    }
}

fn delete_stale(old: &Plan, new: &Plan, out: &mut String) {
    let t = table();
    let stale_chains: Vec<&String> = old
        .chains
        .keys()
        .filter(|n| !new.chains.contains_key(*n))
        .collect();
    for name in &stale_chains {
        out.push_str(&format!("flush chain {t} {name}\n"));
    }
    // A stale map may still jump to stale chains: it goes first.
    for name in old.maps.keys().filter(|n| !new.maps.contains_key(*n)) {
        out.push_str(&format!("delete map {t} {name}\n"));
    }
    for name in &stale_chains {
        out.push_str(&format!("delete chain {t} {name}\n"));
    }
    for name in old.sets.keys().filter(|n| !new.sets.contains_key(*n)) {
        out.push_str(&format!("delete set {t} {name}\n"));
    }
    for name in old
        .counters
        .keys()
        .filter(|n| !new.counters.contains_key(*n))
    {
        out.push_str(&format!("delete counter {t} {name}\n"));
    }
}
