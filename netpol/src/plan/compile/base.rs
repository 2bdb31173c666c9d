//! Chains that come from no single policy: the base chains (hooks, the
//! unknown-pod guard, dispatch) and the class chains.

use crate::model::{Direction, Family};

use super::super::names::{self, addr_kw};
use super::super::{Chain, CounterInfo, Hook, NodeScope, Plan};

/// The base chains and the guard counter: they depend on the node only.
pub(in crate::plan) fn base_objects(node: &NodeScope, families: &[Family]) -> Plan {
    let mut plan = Plan::default();
    let guard = CounterInfo {
        policy: String::new(),
        direction: None,
        verdict: "deny",
    };
    plan.counters.insert(names::GUARD_COUNTER.into(), guard);
    let specs = [
        (names::EGRESS_FORWARD, "forward", 0, Direction::Egress),
        (names::INGRESS_FORWARD, "forward", 1, Direction::Ingress),
        (names::EGRESS_INPUT, "input", 0, Direction::Egress),
    ];
    for (name, hook, priority, dir) in specs {
        let chain = Chain {
            hook: Some(Hook { hook, priority }),
            rules: base_rules(node, families, dir, hook == "input"),
        };
        plan.chains.insert(name.to_string(), chain);
    }
    plan
}

fn base_rules(node: &NodeScope, families: &[Family], dir: Direction, input: bool) -> Vec<String> {
    let mut rules = vec!["ct state established,related accept".to_string()];
    if families.contains(&Family::V6) {
        // Neighbour discovery is bridged between pods too; without it no
        // IPv6 traffic works at all, allowed or not.
        rules.push(
            "icmpv6 type { nd-neighbor-solicit, nd-neighbor-advert, nd-router-solicit, nd-router-advert } accept".into(),
        );
    }
    let field = match dir {
        Direction::Ingress => "daddr",
        Direction::Egress => "saddr",
    };
    for f in families {
        rules.extend(guard_rules(node, *f, field, input));
    }
    for f in families {
        let map = names::dispatch_map(dir, *f);
        rules.push(format!("{} {field} vmap @{map}", addr_kw(*f)));
    }
    rules
}

/// Rejects pod-CIDR addresses that are not known running local pods.
fn guard_rules(node: &NodeScope, family: Family, field: &str, input: bool) -> Vec<String> {
    let cidrs: Vec<String> = node
        .pod_cidrs
        .iter()
        .filter(|c| Family::of(&c.network()) == family)
        .map(|c| c.trunc().to_string())
        .collect();
    if !node.fail_closed_unknown_pods || cidrs.is_empty() {
        return Vec::new();
    }
    let kw = addr_kw(family);
    let set = names::local_pods_set(family);
    // On input the node's own address inside the pod CIDR (cni0's
    // gateway) can be a source; it is the node, not an unknown pod.
    let local = if input {
        " fib saddr type != local"
    } else {
        ""
    };
    let matcher = format!(
        "{kw} {field} {{ {} }} {kw} {field} != @{set}{local}",
        cidrs.join(", ")
    );
    reject_rules(&matcher, &[names::GUARD_COUNTER.to_string()])
}

/// A class chain: drop invalid, try each policy, reject the rest.
pub(in crate::plan) fn class_chain(ids: &[String], dir: Direction) -> Chain {
    let mut rules = vec!["ct state invalid drop".to_string()];
    rules.extend(
        ids.iter()
            .map(|id| format!("jump {}", names::policy_chain(id, dir))),
    );
    let denies: Vec<String> = ids
        .iter()
        .map(|id| names::policy_counter(id, dir, "deny"))
        .collect();
    rules.extend(reject_rules("", &denies));
    Chain { hook: None, rules }
}

/// TCP gets a reset (the client fails fast with ECONNREFUSED); everything
/// else an ICMP administratively-prohibited.
fn reject_rules(matcher: &str, counters: &[String]) -> Vec<String> {
    let counted: String = counters
        .iter()
        .map(|c| format!("counter name \"{c}\" "))
        .collect();
    let lead = if matcher.is_empty() {
        String::new()
    } else {
        format!("{matcher} ")
    };
    vec![
        format!("{lead}meta l4proto tcp {counted}reject with tcp reset"),
        format!("{lead}{counted}reject with icmpx admin-prohibited"),
    ]
}
