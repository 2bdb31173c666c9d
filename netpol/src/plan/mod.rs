//! The pure planner: policies, pods and namespaces in, the desired
//! `inet nodenet-netpol` table out, as data that renders to nft scripts.
//!
//! # Data path (why it looks like this)
//!
//! * Hooks. `forward` sees every packet between a local pod and anything
//!   else except the node itself: routed (cross-node, pod to outside) and
//!   bridged same-node pod-to-pod traffic. Bridged frames reach the inet
//!   forward hook only with br_netfilter (`net.bridge.bridge-nf-call-iptables`
//!   and `-ip6tables` = 1, per netns), which [`crate::apply::enable_bridge_netfilter`]
//!   sets. We chose that over a `bridge`-family table because one inet
//!   table then covers routed and bridged paths with the same rules and the
//!   same conntrack state (a bridge table would need a second copy of every
//!   rule for routed traffic), and because Service DNAT for same-node
//!   hairpin traffic needs br_netfilter anyway (K3s sets it for the same
//!   reason). `input` sees pods talking to the node (egress checks only).
//!   There is no `output` chain: traffic from the pod's own node is always
//!   allowed, as the API requires.
//! * No packet marks. Egress and ingress are two base chains on the forward
//!   hook (priority 0 then 1); an `accept` ends only its base chain, so the
//!   packet still meets the other direction's check, and a policy chain can
//!   simply `accept` on a match.
//! * Per-packet cost independent of the number of policies: verdict maps
//!   keyed by local pod IP jump to a *class chain* (one per distinct set of
//!   selecting policies), which jumps to the chains of just those policies;
//!   their rules look addresses up in sets. Pods no policy selects have no
//!   map entry and pass.
//! * Fail closed for unknown pods: with `fail_closed_unknown_pods`, an
//!   address of this node's pod CIDRs that is not a known running pod is
//!   rejected until the enforcer has seen the pod, so a pod never talks
//!   before its isolation is programmed, and a finished pod's IP loses its
//!   rights the moment it leaves `local-pods`.

mod compile;
mod delta;
mod diff;
mod incremental;
pub mod names;
mod render;

use std::collections::{BTreeMap, BTreeSet};

use ipnet::IpNet;

use crate::model::{Direction, Family, NamespaceInfo, PodInfo, Policy};

pub use delta::{Delta, ElementOp};
pub use diff::{Script, diff};
pub use incremental::{Incremental, PodKey};
pub use render::full_script;

/// A base chain's hook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hook {
    /// `forward` or `input`.
    pub hook: &'static str,
    pub priority: i32,
}

/// One chain: a base chain when `hook` is set.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Chain {
    pub hook: Option<Hook>,
    /// Rule bodies in order, as nft syntax.
    pub rules: Vec<String>,
}

/// A named set; elements are canonical nft element text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetDef {
    pub key_type: String,
    pub interval: bool,
    pub elements: BTreeSet<String>,
}

/// A verdict map: element key -> verdict (`jump <chain>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapDef {
    pub key_type: String,
    pub elements: BTreeMap<String, String>,
}

/// What a named counter counts (for metrics).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct CounterInfo {
    /// `namespace/name` of the policy; empty for the unknown-pod guard.
    pub policy: String,
    pub direction: Option<Direction>,
    /// `allow` or `deny`.
    pub verdict: &'static str,
}

/// The desired table.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    pub chains: BTreeMap<String, Chain>,
    pub sets: BTreeMap<String, SetDef>,
    pub maps: BTreeMap<String, MapDef>,
    pub counters: BTreeMap<String, CounterInfo>,
}

/// This node, as far as the planner cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeScope {
    /// The Node name pods carry in spec.nodeName.
    pub name: String,
    /// The node's pod CIDR(s); their families are the families we program
    /// (both when empty).
    pub pod_cidrs: Vec<IpNet>,
    /// Reject addresses of the pod CIDRs that are not known running pods.
    pub fail_closed_unknown_pods: bool,
}

impl NodeScope {
    /// The families with a pod CIDR (both when none is known).
    pub fn families(&self) -> Vec<Family> {
        let fams: BTreeSet<Family> = self
            .pod_cidrs
            .iter()
            .map(|c| Family::of(&c.network()))
            .collect();
        if fams.is_empty() {
            Family::ALL.to_vec()
        } else {
            fams.into_iter().collect()
        }
    }
}

/// Everything the planner reads.
#[derive(Debug, Clone, Copy)]
pub struct Inputs<'a> {
    pub policies: &'a [Policy],
    pub pods: &'a [PodInfo],
    pub namespaces: &'a [NamespaceInfo],
    pub node: &'a NodeScope,
}

/// Computes the desired table. Pure and deterministic.
pub fn build(inputs: &Inputs<'_>) -> Plan {
    compile::Builder::new(inputs).build()
}

#[cfg(test)]
mod tests;
