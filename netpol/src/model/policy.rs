//! A validated view of one networking.k8s.io/v1 NetworkPolicy.
//!
//! Validation never widens access: a bad port entry drops its whole rule (a
//! rule without its ports would allow every port), a bad peer drops the peer,
//! and a rule whose every peer was dropped is dropped (an empty peer list
//! would mean "any peer"). The policy keeps isolating its pods whatever was
//! dropped.

use k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicyPeer, NetworkPolicyPort};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::ipblock::IpBlock;
use super::ports::{Port, parse_port};
use super::selector::Selector;

/// A field of a policy that was skipped, and why (becomes an Event).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// `namespace/name` of the policy.
    pub policy: String,
    /// JSON path of the offending field, e.g. `spec.ingress[0].from[1].ipBlock.cidr`.
    pub field: String,
    /// What is wrong and what was done about it.
    pub reason: String,
}

/// Direction of a rule list, seen from the selected pod.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Direction {
    Ingress,
    Egress,
}

impl Direction {
    /// Short tag used in nft object names.
    pub fn tag(self) -> &'static str {
        match self {
            Direction::Ingress => "in",
            Direction::Egress => "eg",
        }
    }
}

/// Which namespaces a pod peer looks in.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NamespaceScope {
    /// Only the policy's own namespace (no namespaceSelector).
    Own(String),
    /// Namespaces whose labels match.
    Matching(Selector),
}

/// One peer of a rule.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Peer {
    /// Pods matching `pods` inside namespaces of `namespaces` (AND).
    Pods {
        namespaces: NamespaceScope,
        pods: Selector,
    },
    /// Addresses of a CIDR minus its excepts.
    Block(IpBlock),
}

/// One rule: matches iff some peer AND some port matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// `None`: any peer (from/to absent or empty).
    pub peers: Option<Vec<Peer>>,
    /// `None`: any port and protocol.
    pub ports: Option<Vec<Port>>,
}

/// A validated NetworkPolicy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub namespace: String,
    pub name: String,
    /// Pods of `namespace` the policy selects.
    pub pod_selector: Selector,
    /// `Some` when the policy isolates ingress (possibly with no rule).
    pub ingress: Option<Vec<Rule>>,
    /// `Some` when the policy isolates egress.
    pub egress: Option<Vec<Rule>>,
}

impl Policy {
    /// `namespace/name`.
    pub fn id(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// The rules of `dir`, when the policy isolates that direction.
    pub fn rules(&self, dir: Direction) -> Option<&[Rule]> {
        match dir {
            Direction::Ingress => self.ingress.as_deref(),
            Direction::Egress => self.egress.as_deref(),
        }
    }

    /// Validates `np`, appending what was skipped to `problems`.
    pub fn from_api(np: &NetworkPolicy, problems: &mut Vec<Problem>) -> Policy {
        let namespace = np.metadata.namespace.clone().unwrap_or_default();
        let name = np.metadata.name.clone().unwrap_or_default();
        let mut cx = Cx {
            policy: format!("{namespace}/{name}"),
            namespace: namespace.clone(),
            problems,
        };
        let spec = np.spec.clone().unwrap_or_default();
        let pod_selector = cx.target_selector(spec.pod_selector.as_ref());
        let (isolate_in, isolate_eg) = cx.policy_types(&spec);
        let ingress = isolate_in.then(|| cx.ingress_rules(spec.ingress.as_deref()));
        let egress = isolate_eg.then(|| cx.egress_rules(spec.egress.as_deref()));
        Policy {
            namespace,
            name,
            pod_selector,
            ingress,
            egress,
        }
    }
}

/// Validation context of one policy.
struct Cx<'a> {
    policy: String,
    namespace: String,
    problems: &'a mut Vec<Problem>,
}

impl Cx<'_> {
    fn problem(&mut self, field: String, reason: String) {
        self.problems.push(Problem {
            policy: self.policy.clone(),
            field,
            reason,
        });
    }

    /// An invalid target selector cannot say which pods to isolate; the
    /// closed choice is all pods of the namespace (narrows, never widens).
    fn target_selector(&mut self, sel: Option<&LabelSelector>) -> Selector {
        let Some(sel) = sel else {
            return Selector::everything();
        };
        Selector::parse(sel, "spec.podSelector").unwrap_or_else(|(field, reason)| {
            let reason =
                format!("{reason}; isolating every pod of the namespace instead (fail closed)");
            self.problem(field, reason);
            Selector::everything()
        })
    }

    /// Defaulting as the API server does when policyTypes is empty:
    /// Ingress always, Egress iff egress rules exist.
    fn policy_types(
        &mut self,
        spec: &k8s_openapi::api::networking::v1::NetworkPolicySpec,
    ) -> (bool, bool) {
        let (mut ingress, mut egress) = (false, false);
        for (i, t) in spec.policy_types.iter().flatten().enumerate() {
            match t.as_str() {
                "Ingress" => ingress = true,
                "Egress" => egress = true,
                other => self.problem(
                    format!("spec.policyTypes[{i}]"),
                    format!("unknown policy type {other:?} ignored"),
                ),
            }
        }
        if ingress || egress {
            return (ingress, egress);
        }
        (true, spec.egress.as_ref().is_some_and(|e| !e.is_empty()))
    }

    fn ingress_rules(
        &mut self,
        rules: Option<&[k8s_openapi::api::networking::v1::NetworkPolicyIngressRule]>,
    ) -> Vec<Rule> {
        let mut out = Vec::new();
        for (i, r) in rules.unwrap_or_default().iter().enumerate() {
            let at = format!("spec.ingress[{i}]");
            let peers = r.from.as_deref();
            out.extend(self.rule(&at, "from", peers, r.ports.as_deref()));
        }
        out
    }

    fn egress_rules(
        &mut self,
        rules: Option<&[k8s_openapi::api::networking::v1::NetworkPolicyEgressRule]>,
    ) -> Vec<Rule> {
        let mut out = Vec::new();
        for (i, r) in rules.unwrap_or_default().iter().enumerate() {
            let at = format!("spec.egress[{i}]");
            out.extend(self.rule(&at, "to", r.to.as_deref(), r.ports.as_deref()));
        }
        out
    }

    fn rule(
        &mut self,
        at: &str,
        peer_key: &str,
        peers: Option<&[NetworkPolicyPeer]>,
        ports: Option<&[NetworkPolicyPort]>,
    ) -> Option<Rule> {
        let ports = self.ports(at, ports)?;
        let peers = match peers {
            None | Some([]) => None,
            Some(list) => Some(self.peers(at, peer_key, list)?),
        };
        Some(Rule { peers, ports })
    }

    fn ports(
        &mut self,
        at: &str,
        ports: Option<&[NetworkPolicyPort]>,
    ) -> Option<Option<Vec<Port>>> {
        let list = match ports {
            None | Some([]) => return Some(None),
            Some(list) => list,
        };
        let mut out = Vec::new();
        for (i, raw) in list.iter().enumerate() {
            match parse_port(raw) {
                Ok(p) => out.push(p),
                Err((field, reason)) => {
                    let reason = format!("{reason}; rule skipped");
                    self.problem(format!("{at}.ports[{i}].{field}"), reason);
                    return None;
                }
            }
        }
        Some(Some(out))
    }

    /// `None` when every peer was invalid: the rule must then be dropped.
    fn peers(&mut self, at: &str, key: &str, list: &[NetworkPolicyPeer]) -> Option<Vec<Peer>> {
        let mut out = Vec::new();
        for (i, raw) in list.iter().enumerate() {
            let field = format!("{at}.{key}[{i}]");
            match self.peer(raw) {
                Ok(peer) => out.push(peer),
                Err((sub, reason)) => {
                    self.problem(format!("{field}{sub}"), format!("{reason}; peer skipped"));
                }
            }
        }
        if out.is_empty() {
            let reason = "every peer of the rule is invalid; rule skipped".to_string();
            self.problem(format!("{at}.{key}"), reason);
            return None;
        }
        Some(out)
    }

    fn peer(&self, raw: &NetworkPolicyPeer) -> Result<Peer, (String, String)> {
        if let Some(block) = &raw.ip_block {
            if raw.pod_selector.is_some() || raw.namespace_selector.is_some() {
                let reason = "ipBlock cannot be combined with a selector".to_string();
                return Err((String::new(), reason));
            }
            let except = block.except.clone().unwrap_or_default();
            return IpBlock::parse(&block.cidr, &except)
                .map(Peer::Block)
                .map_err(|(f, r)| (format!(".ipBlock.{f}"), r));
        }
        let namespaces = match &raw.namespace_selector {
            None => NamespaceScope::Own(self.namespace.clone()),
            Some(sel) => NamespaceScope::Matching(Selector::parse(sel, ".namespaceSelector")?),
        };
        let pods = match &raw.pod_selector {
            None if raw.namespace_selector.is_none() => {
                let reason = "peer sets none of podSelector, namespaceSelector, ipBlock";
                return Err((String::new(), reason.to_string()));
            }
            None => Selector::everything(),
            Some(sel) => Selector::parse(sel, ".podSelector")?,
        };
        Ok(Peer::Pods { namespaces, pods })
    }
}
