//! Names of the objects inside our table.
//!
//! Names derived from API input are hashes, so they are short, never an nft
//! keyword, never contain characters the nft parser would choke on, and are
//! stable across restarts (a diff against the previous plan matches them).

use crate::model::{Direction, Family};

/// Base chain for traffic forwarded from local pods (routed or bridged).
pub const EGRESS_FORWARD: &str = "egress-forward";
/// Base chain for traffic forwarded to local pods; runs after
/// [`EGRESS_FORWARD`] on the same hook.
pub const INGRESS_FORWARD: &str = "ingress-forward";
/// Base chain for traffic from local pods to the node itself.
pub const EGRESS_INPUT: &str = "egress-input";
/// Counter of packets rejected because their pod is not known yet.
pub const GUARD_COUNTER: &str = "guard-deny";

/// Suffix of per-family objects.
pub fn fam(family: Family) -> &'static str {
    match family {
        Family::V4 => "v4",
        Family::V6 => "v6",
    }
}

/// nft address keyword of a family (`ip` / `ip6`).
pub fn addr_kw(family: Family) -> &'static str {
    match family {
        Family::V4 => "ip",
        Family::V6 => "ip6",
    }
}

/// nft type of an address of `family`.
pub fn addr_type(family: Family) -> &'static str {
    match family {
        Family::V4 => "ipv4_addr",
        Family::V6 => "ipv6_addr",
    }
}

/// Verdict map: local pod IP -> jump to its class chain for `dir`.
pub fn dispatch_map(dir: Direction, family: Family) -> String {
    format!("dispatch-{}-{}", dir.tag(), fam(family))
}

/// Set of the IPs of every pod running on this node.
pub fn local_pods_set(family: Family) -> String {
    format!("local-pods-{}", fam(family))
}

/// Chain holding the rules of one policy for one direction.
pub fn policy_chain(policy_id: &str, dir: Direction) -> String {
    format!("pol-{}-{}", hash(policy_id), dir.tag())
}

/// Named counter of one policy, direction and verdict (`allow`/`deny`).
pub fn policy_counter(policy_id: &str, dir: Direction, verdict: &str) -> String {
    format!("pol-{}-{}-{verdict}", hash(policy_id), dir.tag())
}

/// Chain shared by pods selected by exactly the policies `ids` (sorted).
pub fn class_chain(ids: &[String], dir: Direction) -> String {
    format!("cls-{}-{}", hash(&ids.join("\n")), dir.tag())
}

/// Set of the pod IPs a selector pair matches (key: canonical selectors).
pub fn selector_set(key: &str, family: Family) -> String {
    format!("sel-{}-{}", hash(key), fam(family))
}

/// Interval set of one ipBlock (key: its content, so it never changes).
pub fn block_set(key: &str, family: Family) -> String {
    format!("blk-{}-{}", hash(key), fam(family))
}

/// Set of (pod IP, protocol, port) tuples of one named port.
pub fn named_port_set(key: &str, family: Family) -> String {
    format!("np-{}-{}", hash(key), fam(family))
}

/// 16 hex digits of FNV-1a 64: stable across Rust versions and restarts.
pub fn hash(text: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text.bytes() {
        h ^= u64::from(byte);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_stable_and_distinct() {
        assert_eq!(
            policy_chain("x/a", Direction::Ingress),
            policy_chain("x/a", Direction::Ingress)
        );
        assert_ne!(
            policy_chain("x/a", Direction::Ingress),
            policy_chain("x/b", Direction::Ingress)
        );
        assert_ne!(
            policy_chain("x/a", Direction::Ingress),
            policy_chain("x/a", Direction::Egress)
        );
        assert_eq!(hash("a"), "af63dc4c8601ec8c");
    }
}
