//! A validated view of NetworkPolicies, Pods and Namespaces: the planner's
//! input. Conversion from API objects never panics; what cannot be used is
//! reported as a [`Problem`] and skipped without widening access.

pub mod cluster_dns;
mod ipblock;
mod policy;
mod ports;
mod selector;
mod views;

pub use ipblock::{Family, IpBlock};
pub use policy::{Direction, NamespaceScope, Peer, Policy, Problem, Rule};
pub use ports::{Port, Protocol, parse_port};
pub use selector::{Labels, Selector};
pub use views::{NAMESPACE_NAME_LABEL, NamedPort, NamespaceInfo, PodInfo};
